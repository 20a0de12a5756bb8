//! Where things live in guest physical memory. Everything the VMM writes for
//! the boot lives in the first MiB (real-mode conventional memory), the kernel
//! is loaded where its ELF program headers (or the boot protocol) ask, and a
//! gap below 4 GiB is left for device MMIO, as on a PC.

/// The GDT used for the boot entry (four 8-byte descriptors).
pub const BOOT_GDT_START: u64 = 0x500;
/// An empty IDT: interrupts stay disabled until the kernel installs its own.
pub const BOOT_IDT_START: u64 = 0x520;
/// PVH `hvm_start_info`, followed directly by its memory map table.
pub const PVH_INFO_START: u64 = 0x6000;
/// The Linux boot protocol's "zero page" (`struct boot_params`).
pub const ZERO_PAGE_START: u64 = 0x7000;
/// Initial stack for the 64-bit entry (the kernel switches away at once).
pub const BOOT_STACK_POINTER: u64 = 0x8ff0;
/// Identity-mapping page tables for the 64-bit entry: PML4, PDPT, PD.
pub const PML4_START: u64 = 0x9000;
pub const PDPTE_START: u64 = 0xa000;
pub const PDE_START: u64 = 0xb000;
/// The kernel command line. x86's COMMAND_LINE_SIZE is 2048 bytes, NUL
/// included (arch/x86/include/asm/setup.h).
pub const CMDLINE_START: u64 = 0x20000;
pub const CMDLINE_MAX_SIZE: usize = 2048;
/// Start of the Extended BIOS Data Area: usable RAM below 1 MiB ends here, and
/// the MP table sits in the last KiB of conventional memory (where Linux's
/// `find_smp_config` looks).
pub const EBDA_START: u64 = 0x9fc00;
/// First byte of memory above the legacy ISA hole.
pub const HIMEM_START: u64 = 0x10_0000;

/// The MMIO gap: [MMIO_GAP_START, 4 GiB) is never RAM. Virtio-mmio devices,
/// the I/O APIC (0xfec0_0000) and the local APICs (0xfee0_0000) live here.
pub const MMIO_GAP_START: u64 = 0xd000_0000;
pub const MMIO_GAP_END: u64 = 0x1_0000_0000;

/// Virtio-mmio register windows start at the bottom of the MMIO gap.
pub const VIRTIO_MMIO_START: u64 = MMIO_GAP_START;
/// I/O APIC pins for virtio devices: 5 and up (4 is the serial port; the
/// I/O APIC has 24 pins).
pub const FIRST_VIRTIO_IRQ: u32 = 5;
pub const LAST_VIRTIO_IRQ: u32 = 23;

/// I/O APIC and local APIC addresses as the MP table announces them.
pub const IOAPIC_ADDR: u32 = 0xfec0_0000;
pub const APIC_ADDR: u32 = 0xfee0_0000;

/// KVM needs three pages of guest-physical address space for the real-mode
/// TSS on Intel (KVM_SET_TSS_ADDR); put them just below the I/O APIC, inside
/// the MMIO gap where no RAM is.
pub const KVM_TSS_ADDRESS: u64 = 0xfffb_d000;
