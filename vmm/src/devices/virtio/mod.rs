//! Virtio devices (virtio 1.2, "modern" only) and the virtio-mmio transport
//! that presents them to the guest.
//!
//! A device implements [`VirtioDevice`]: it describes itself (type, queues,
//! features, config space) and, once the driver sets DRIVER_OK, receives its
//! queues through [`VirtioDevice::activate`]. Each queue has an eventfd that
//! KVM signals when the driver notifies it (an ioeventfd on QueueNotify);
//! the device holds a copy from the start and processes its queues in its
//! event handler on the VMM's event loop. The transport (`mmio.rs`) runs on
//! vCPU threads and only handles register accesses.

pub mod block;
pub mod mmio;
pub mod rng;
pub mod vsock;

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use virtio_queue::Queue;
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

/// Device IDs (virtio 1.2 §5).
pub const TYPE_BLOCK: u32 = 2;
pub const TYPE_RNG: u32 = 4;
pub const TYPE_VSOCK: u32 = 19;

/// The device conforms to virtio 1.x (§6): the only kind husk offers.
pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;
/// Used and available ring event suppression (§2.7.10).
pub const VIRTIO_RING_F_EVENT_IDX: u64 = 1 << 29;

/// Why a device interrupts (the bits of the mmio InterruptStatus register,
/// §4.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterruptReason {
    /// A used ring was updated.
    Queue = 1,
    /// The configuration space changed.
    Config = 2,
}

/// How a device raises its interrupt; tests and fuzzers pass a no-op.
pub trait VirtioInterrupt: Send + Sync {
    fn trigger(&self, reason: InterruptReason) -> io::Result<()>;
}

/// The interrupt of an mmio device: sets the reason in InterruptStatus (which
/// the driver reads and acknowledges) and pulses the device's irqfd.
pub struct MmioInterrupt {
    status: Arc<AtomicU32>,
    irqfd: EventFd,
}

impl MmioInterrupt {
    pub fn new(status: Arc<AtomicU32>, irqfd: EventFd) -> Self {
        Self { status, irqfd }
    }
}

impl VirtioInterrupt for MmioInterrupt {
    fn trigger(&self, reason: InterruptReason) -> io::Result<()> {
        self.status.fetch_or(reason as u32, Ordering::AcqRel);
        self.irqfd.write(1)
    }
}

/// Everything a device gets when the driver starts it.
pub struct Activation {
    pub mem: GuestMemoryMmap,
    /// One per queue, in queue order, already validated against `mem`.
    pub queues: Vec<Queue>,
    pub interrupt: Arc<dyn VirtioInterrupt>,
    /// Features the driver accepted.
    pub acked_features: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    #[error("the device needs {expected} queues, got {got}")]
    QueueCount { expected: usize, got: usize },
    #[error("{0}")]
    Device(String),
}

/// A virtio device as the transport sees it.
pub trait VirtioDevice: Send {
    fn device_type(&self) -> u32;
    /// The maximum size of each queue; the length is the queue count.
    fn queue_max_sizes(&self) -> &[u16];
    /// Feature bits the device offers (VIRTIO_F_VERSION_1 included).
    fn device_features(&self) -> u64;
    /// Reads from the device-specific configuration space; bytes past its
    /// end read as zero.
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// Writes to the configuration space; most devices ignore them.
    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}
    /// The driver set DRIVER_OK: start processing.
    fn activate(&mut self, activation: Activation) -> Result<(), ActivateError>;
    /// The driver reset the device: drop the queues and go back to the
    /// inactive state. Returns false if the device can't be reset (then the
    /// transport reports DEVICE_NEEDS_RESET instead).
    fn reset(&mut self) -> bool;
}

/// Reads `data.len()` bytes at `offset` from a configuration space held as
/// bytes; out-of-range bytes read as zero.
pub fn read_config_bytes(config: &[u8], offset: u64, data: &mut [u8]) {
    data.fill(0);
    let Ok(start) = usize::try_from(offset) else {
        return;
    };
    if start >= config.len() {
        return;
    }
    let end = config.len().min(start.saturating_add(data.len()));
    data[..end - start].copy_from_slice(&config[start..end]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_reads_clip_to_the_space() {
        let config = [1u8, 2, 3, 4];
        let mut data = [0xffu8; 4];
        read_config_bytes(&config, 2, &mut data);
        assert_eq!(data, [3, 4, 0, 0]);
        read_config_bytes(&config, 10, &mut data);
        assert_eq!(data, [0; 4]);
        read_config_bytes(&config, u64::MAX, &mut data);
        assert_eq!(data, [0; 4]);
    }

    #[test]
    fn mmio_interrupt_sets_the_status_bit_and_signals() {
        let status = Arc::new(AtomicU32::new(0));
        let irqfd = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let interrupt = MmioInterrupt::new(status.clone(), irqfd.try_clone().unwrap());
        interrupt.trigger(InterruptReason::Config).unwrap();
        interrupt.trigger(InterruptReason::Queue).unwrap();
        assert_eq!(status.load(Ordering::Acquire), 3);
        assert_eq!(irqfd.read().unwrap(), 2);
    }
}
