//! Devices the guest reaches through port I/O or MMIO.

pub mod bus;
pub mod legacy;
pub mod virtio;

use std::io;

use vmm_sys_util::eventfd::EventFd;

/// How a device raises its interrupt in the guest.
///
/// Devices only know that they have a line to pulse; the VMM decides whether
/// that is an irqfd registered with KVM or, in tests, a counter.
pub trait InterruptLine: Send {
    /// Signals one interrupt edge to the guest.
    fn trigger(&self) -> io::Result<()>;
}

/// An eventfd registered with KVM as an irqfd: each write injects the GSI it
/// was registered for.
impl InterruptLine for EventFd {
    fn trigger(&self) -> io::Result<()> {
        self.write(1)
    }
}
