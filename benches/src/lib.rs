//! What husk's benchmark programs share: statistics, the SVG plot, and how
//! to tell whether this host's KVM can boot a guest.

pub mod plot;
pub mod stats;

use std::path::Path;

/// Whether this host's /dev/kvm can boot an ordinary guest.
pub fn kvm_can_boot() -> bool {
    let module = |name: &str| Path::new("/sys/module").join(name).exists();
    Path::new("/dev/kvm").exists()
        && !module("kvm_pvm")
        && (module("kvm_intel") || module("kvm_amd"))
}

/// The QEMU machine both benchmarks compare against: the leanest microvm
/// (no option ROMs, no ACPI tables — the guest kernel has no ACPI and reads
/// the MP table — no RTC), on KVM.
pub const QEMU_MACHINE: [&str; 6] = [
    "-M",
    "microvm,x-option-roms=off,acpi=off,rtc=off",
    "-accel",
    "kvm",
    "-cpu",
    "host",
];
