//! The VM: in-kernel interrupt controllers and timer, memory slots, irqfds.

use kvm_bindings::{kvm_pit_config, KVM_PIT_SPEAKER_DUMMY};
use kvm_ioctls::{IoEventAddress, VmFd};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

use super::kvm::KvmContext;
use super::memory::{self, MemoryError};
use crate::arch::x86_64::layout::KVM_TSS_ADDRESS;

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("create the KVM VM")]
    Create(#[source] kvm_ioctls::Error),
    #[error("set the TSS address")]
    SetTssAddress(#[source] kvm_ioctls::Error),
    #[error("create the in-kernel interrupt controllers")]
    CreateIrqchip(#[source] kvm_ioctls::Error),
    #[error("create the in-kernel PIT")]
    CreatePit(#[source] kvm_ioctls::Error),
    #[error("register guest memory")]
    Memory(#[from] MemoryError),
    #[error("register an ioeventfd for {device} at {addr:#x}")]
    RegisterIoevent {
        device: &'static str,
        addr: u64,
        #[source]
        source: kvm_ioctls::Error,
    },
    #[error("register an irqfd for {device} on IRQ {irq}")]
    RegisterIrqfd {
        device: &'static str,
        irq: u32,
        #[source]
        source: kvm_ioctls::Error,
    },
}

pub struct Vm {
    fd: VmFd,
}

impl Vm {
    /// A VM with the PC's interrupt controllers (PIC, I/O APIC, LAPICs) and
    /// PIT emulated in the kernel, so timer ticks and IPIs never come to
    /// userspace.
    pub fn new(kvm: &KvmContext) -> Result<Self, VmError> {
        let fd = kvm.kvm().create_vm().map_err(VmError::Create)?;
        Ok(Self { fd })
    }

    /// The in-kernel PIC, I/O APIC and PIT. Must come before any vCPU is
    /// created (KVM attaches each vCPU's LAPIC to the irqchip then).
    pub fn create_interrupt_controllers(&self) -> Result<(), VmError> {
        // Intel needs three pages for the real-mode TSS before the irqchip
        // exists; harmless elsewhere.
        self.fd
            .set_tss_address(KVM_TSS_ADDRESS as usize)
            .map_err(VmError::SetTssAddress)?;
        self.fd.create_irq_chip().map_err(VmError::CreateIrqchip)?;
        let pit_config = kvm_pit_config {
            flags: KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        };
        self.fd
            .create_pit2(pit_config)
            .map_err(VmError::CreatePit)?;
        Ok(())
    }

    pub fn register_memory(&self, mem: &GuestMemoryMmap) -> Result<(), VmError> {
        Ok(memory::register_guest_memory(&self.fd, mem)?)
    }

    /// Writes to `event` raise `irq` on the in-kernel PIC and I/O APIC.
    pub fn register_irqfd(
        &self,
        device: &'static str,
        event: &EventFd,
        irq: u32,
    ) -> Result<(), VmError> {
        self.fd
            .register_irqfd(event, irq)
            .map_err(|source| VmError::RegisterIrqfd {
                device,
                irq,
                source,
            })
    }

    /// Guest writes of `datamatch` (32 bits) to the MMIO address `addr`
    /// signal `event` inside KVM, without an exit to the VMM.
    pub fn register_ioevent(
        &self,
        device: &'static str,
        event: &EventFd,
        addr: u64,
        datamatch: u32,
    ) -> Result<(), VmError> {
        self.fd
            .register_ioevent(event, &IoEventAddress::Mmio(addr), datamatch)
            .map_err(|source| VmError::RegisterIoevent {
                device,
                addr,
                source,
            })
    }

    pub fn fd(&self) -> &VmFd {
        &self.fd
    }
}
