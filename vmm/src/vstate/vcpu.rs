//! vCPUs: their boot state and their run loop.

use std::sync::atomic::{AtomicBool, Ordering};

use kvm_bindings::Msrs;
use kvm_ioctls::{VcpuExit, VcpuFd};
use vmm_sys_util::signal::{register_signal_handler, SIGRTMIN};

use super::kvm::KvmContext;
use super::vm::Vm;
use crate::arch::x86_64::cpuid::{self, VcpuTopology};
use crate::arch::x86_64::interrupts::set_lint_delivery_modes;
use crate::arch::x86_64::msr::boot_msr_entries;
use crate::arch::x86_64::regs::{self, EntryPoint};
use crate::devices::bus::{Bus, BusAction};
use crate::timing::{Phase, Timeline};

#[derive(Debug, thiserror::Error)]
pub enum VcpuError {
    #[error("create vCPU {index}")]
    Create {
        index: u8,
        #[source]
        source: kvm_ioctls::Error,
    },
    #[error("configure vCPU {index}: {step}")]
    Configure {
        index: u8,
        step: &'static str,
        #[source]
        source: kvm_ioctls::Error,
    },
    #[error("configure vCPU {index}: KVM took {set} of the {wanted} boot MSRs")]
    PartialMsrs {
        index: u8,
        set: usize,
        wanted: usize,
    },
    #[error("build the MSR list for vCPU {index}")]
    MsrList {
        index: u8,
        #[source]
        source: vmm_sys_util::fam::Error,
    },
    #[error("install the vCPU kick signal handler")]
    KickHandler(#[source] vmm_sys_util::errno::Error),
    #[error("vCPU {index}: KVM_RUN failed")]
    Run {
        index: u8,
        #[source]
        source: kvm_ioctls::Error,
    },
    #[error(
        "vCPU {index}: KVM could not enter the guest (hardware entry failure reason {reason:#x})"
    )]
    FailEntry { index: u8, reason: u64 },
    #[error("vCPU {index}: KVM internal error (emulation failure); this host's KVM may not be able to run the guest")]
    InternalError { index: u8 },
    #[error("vCPU {index}: unexpected exit {exit}")]
    UnexpectedExit { index: u8, exit: String },
}

/// Why a vCPU stopped running.
#[derive(Debug)]
pub enum VcpuStop {
    /// The guest wrote its exit status to the guest signal port.
    GuestExit(u8),
    /// The guest reset the machine through the keyboard controller.
    GuestReset,
    /// A triple fault: KVM reports the VM as shut down. Carries the
    /// faulting vCPU's registers, for the report.
    TripleFault(String),
    /// The VMM asked the vCPU to stop.
    Stopped,
    Failed(VcpuError),
}

pub struct Vcpu {
    fd: VcpuFd,
    index: u8,
}

/// vCPU threads are kicked out of KVM_RUN with this signal; the handler does
/// nothing, the interrupted ioctl returning EINTR is the point.
pub fn kick_signal() -> libc::c_int {
    SIGRTMIN()
}

extern "C" fn ignore_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

pub fn install_kick_handler() -> Result<(), VcpuError> {
    register_signal_handler(kick_signal(), ignore_kick).map_err(VcpuError::KickHandler)
}

impl Vcpu {
    pub fn new(vm: &Vm, index: u8) -> Result<Self, VcpuError> {
        let fd = vm
            .fd()
            .create_vcpu(u64::from(index))
            .map_err(|source| VcpuError::Create { index, source })?;
        Ok(Self { fd, index })
    }

    pub fn index(&self) -> u8 {
        self.index
    }

    /// CPUID, MSRs, FPU and LAPIC for every vCPU; registers for the boot
    /// vCPU, which starts at `entry`. The others wait in KVM for the boot
    /// vCPU's INIT/SIPI.
    pub fn configure(
        &self,
        kvm: &KvmContext,
        count: u8,
        entry: EntryPoint,
    ) -> Result<(), VcpuError> {
        let index = self.index;
        let step = |step| {
            move |source| VcpuError::Configure {
                index,
                step,
                source,
            }
        };

        let mut cpuid = kvm.supported_cpuid().clone();
        cpuid::adjust_for_vcpu(&mut cpuid, VcpuTopology { index, count });
        self.fd.set_cpuid2(&cpuid).map_err(step("set CPUID"))?;

        let entries = boot_msr_entries();
        let msrs =
            Msrs::from_entries(&entries).map_err(|source| VcpuError::MsrList { index, source })?;
        let set = self.fd.set_msrs(&msrs).map_err(step("set MSRs"))?;
        if set != entries.len() {
            return Err(VcpuError::PartialMsrs {
                index,
                set,
                wanted: entries.len(),
            });
        }

        self.fd
            .set_fpu(&regs::boot_fpu())
            .map_err(step("set FPU state"))?;

        let mut lapic = self.fd.get_lapic().map_err(step("get LAPIC"))?;
        set_lint_delivery_modes(&mut lapic);
        self.fd.set_lapic(&lapic).map_err(step("set LAPIC"))?;

        if index == 0 {
            let sregs = self.fd.get_sregs().map_err(step("get special registers"))?;
            self.fd
                .set_sregs(&regs::boot_sregs(sregs, entry.protocol))
                .map_err(step("set special registers"))?;
            self.fd
                .set_regs(&regs::boot_regs(entry))
                .map_err(step("set registers"))?;
        }
        Ok(())
    }

    /// Runs the guest until it ends the VM, fails, or `stop` is set (the
    /// caller then kicks this thread with [`kick_signal`]). Port I/O goes to
    /// `io_bus`, MMIO to `mmio_bus`; unclaimed reads return all ones.
    pub fn run(
        &mut self,
        io_bus: &Bus,
        mmio_bus: &Bus,
        timeline: &Timeline,
        stop: &AtomicBool,
    ) -> VcpuStop {
        let index = self.index;
        if index == 0 {
            timeline.record(Phase::FirstKvmRun);
        }
        loop {
            if stop.load(Ordering::Acquire) {
                return VcpuStop::Stopped;
            }
            match self.fd.run() {
                Ok(VcpuExit::IoOut(port, data)) => match io_bus.write(u64::from(port), data) {
                    Some(BusAction::Reset) => return VcpuStop::GuestReset,
                    Some(BusAction::Exit(status)) => return VcpuStop::GuestExit(status),
                    Some(BusAction::None) | None => {}
                },
                Ok(VcpuExit::IoIn(port, data)) => {
                    // Nothing answers on an unclaimed port: the bus floats high.
                    if !io_bus.read(u64::from(port), data) {
                        data.fill(0xff);
                    }
                }
                Ok(VcpuExit::MmioRead(addr, data)) => {
                    if !mmio_bus.read(addr, data) {
                        data.fill(0xff);
                    }
                }
                Ok(VcpuExit::MmioWrite(addr, data)) => {
                    // Devices on the MMIO bus never end the VM.
                    let _ = mmio_bus.write(addr, data);
                }
                // With the in-kernel LAPIC, HLT is handled in KVM; a stray
                // one just resumes.
                Ok(VcpuExit::Hlt) => {}
                Ok(VcpuExit::Shutdown) => return VcpuStop::TripleFault(self.register_summary()),
                Ok(VcpuExit::SystemEvent(..)) => return VcpuStop::GuestReset,
                Ok(VcpuExit::FailEntry(reason, _)) => {
                    return VcpuStop::Failed(VcpuError::FailEntry { index, reason })
                }
                Ok(VcpuExit::InternalError) => {
                    return VcpuStop::Failed(VcpuError::InternalError { index })
                }
                Ok(exit) => {
                    return VcpuStop::Failed(VcpuError::UnexpectedExit {
                        index,
                        exit: format!("{exit:?}"),
                    })
                }
                Err(error) if matches!(error.errno(), libc::EINTR | libc::EAGAIN) => {}
                Err(source) => return VcpuStop::Failed(VcpuError::Run { index, source }),
            }
        }
    }

    /// One line with where the vCPU was and its paging and mode state, for
    /// a crash report.
    fn register_summary(&self) -> String {
        let index = self.index;
        match (self.fd.get_regs(), self.fd.get_sregs()) {
            // KVM on AMD re-initializes the vCPU after a shutdown intercept
            // (the VMCB is undefined afterwards, AMD APM vol. 2 §15.9): the
            // registers then show the reset vector.
            (Ok(regs), Ok(sregs)) if regs.rip == 0xfff0 && sregs.cs.base == 0xffff_0000 => {
                format!(
                    "vCPU {index}: KVM reset the vCPU at the shutdown, so where it faulted is \
                     not known"
                )
            }
            (Ok(regs), Ok(sregs)) => format!(
                "vCPU {index}: rip={:#x} rsp={:#x} rflags={:#x} cs={:#x} cr0={:#x} cr2={:#x} \
                 cr3={:#x} cr4={:#x} efer={:#x} idt={:#x}/{:#x} gdt={:#x}/{:#x}",
                regs.rip,
                regs.rsp,
                regs.rflags,
                sregs.cs.selector,
                sregs.cr0,
                sregs.cr2,
                sregs.cr3,
                sregs.cr4,
                sregs.efer,
                sregs.idt.base,
                sregs.idt.limit,
                sregs.gdt.base,
                sregs.gdt.limit,
            ),
            (Err(error), _) | (_, Err(error)) => {
                format!("vCPU {index}: registers unreadable ({error})")
            }
        }
    }
}
