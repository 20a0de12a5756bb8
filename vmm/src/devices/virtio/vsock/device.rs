//! The vsock device: its configuration, life cycle and queues.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use virtio_queue::Queue;
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

use super::muxer::{self, Muxer};
use super::unix_backend::UnixBackend;
use crate::devices::virtio::{
    read_config_bytes, ActivateError, Activation, InterruptReason, VirtioDevice, VirtioInterrupt,
    TYPE_VSOCK, VIRTIO_F_VERSION_1,
};

/// The guest's CID unless configured otherwise: the lowest one not
/// reserved (0 hypervisor, 1 local, 2 host).
pub const DEFAULT_GUEST_CID: u64 = 3;
const QUEUE_SIZE: u16 = 256;
/// Queue order (virtio 1.2 §5.10.2).
pub(super) const RX_QUEUE: usize = 0;
pub(super) const TX_QUEUE: usize = 1;
pub(super) const EVENT_QUEUE: usize = 2;
const QUEUE_COUNT: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum VsockError {
    #[error("guest CID {0} is reserved or out of range; pick one from 3 to 4294967294")]
    InvalidCid(u64),
    #[error("inspect the vsock socket path {path}")]
    Inspect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} exists and is not a socket; remove it or choose another vsock socket path")]
    NotASocket { path: PathBuf },
    #[error("remove the stale vsock socket {path}")]
    RemoveStale {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("listen on the vsock socket {path}")]
    Bind {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("make the vsock socket {path} non-blocking")]
    NonBlocking {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Where the device is in its life (CONVENTIONS: explicit state).
pub(super) enum State {
    Inactive,
    Activated(Active),
}

pub(super) struct Active {
    pub(super) mem: GuestMemoryMmap,
    pub(super) rx: Queue,
    pub(super) tx: Queue,
    /// The event queue only carries transport resets (device events,
    /// §5.10.6.7), which this device never sends: it is held, not used.
    pub(super) _event: Queue,
    pub(super) interrupt: Arc<dyn VirtioInterrupt>,
}

/// A virtio-vsock device whose host side is a Unix socket.
pub struct Vsock {
    pub(super) guest_cid: u64,
    pub(super) state: State,
    /// The notifiers of the rx, tx and event queues, in queue order
    /// (copies of the ones the transport registers with KVM).
    pub(super) queue_events: [EventFd; QUEUE_COUNT],
    pub(super) backend: UnixBackend,
    pub(super) muxer: Muxer,
    /// The guest should look at its queues once this event is handled.
    pub(super) interrupt_pending: bool,
}

impl Vsock {
    /// A device for a guest with CID `guest_cid`, listening for host
    /// programs at `uds_path` (a stale socket there is replaced; the file is
    /// removed when the device is dropped). Guest connections to host port
    /// P go to the socket `<uds_path>_P`. `queue_events` are the notifiers
    /// of the rx, tx and event queues, in that order.
    pub fn new(
        guest_cid: u64,
        uds_path: &Path,
        queue_events: [EventFd; 3],
    ) -> Result<Vsock, VsockError> {
        // The upper 32 bits are reserved (§5.10.4); u32::MAX is
        // VMADDR_CID_ANY.
        if !(DEFAULT_GUEST_CID..u64::from(u32::MAX)).contains(&guest_cid) {
            return Err(VsockError::InvalidCid(guest_cid));
        }
        let backend = UnixBackend::bind(uds_path)?;
        Ok(Vsock {
            guest_cid,
            state: State::Inactive,
            queue_events,
            muxer: Muxer::new(guest_cid, uds_path.to_owned()),
            backend,
            interrupt_pending: false,
        })
    }

    pub fn guest_cid(&self) -> u64 {
        self.guest_cid
    }

    /// The socket host programs connect to.
    pub fn uds_path(&self) -> &Path {
        self.backend.path()
    }

    /// Wakes the device's event handler from outside the event loop (the
    /// vCPU thread that activates or resets it), as a notification would.
    fn wake_event_loop(&self) {
        // Only fails if the counter would overflow, and then it is
        // signalled already.
        let _ = self.queue_events[RX_QUEUE].write(1);
    }

    /// Runs the transmit queue.
    pub(super) fn process_tx(&mut self) {
        if let State::Activated(active) = &mut self.state {
            if muxer::process_tx_queue(&mut active.tx, &active.mem, &mut self.muxer) {
                self.interrupt_pending = true;
            }
        }
    }

    /// Gives the guest what it is owed while it has receive buffers, then
    /// interrupts it if either queue was used.
    pub(super) fn process_rx_and_interrupt(&mut self) {
        let mut notify = std::mem::take(&mut self.interrupt_pending);
        if let State::Activated(active) = &mut self.state {
            notify |= muxer::process_rx_queue(&mut active.rx, &active.mem, &mut self.muxer);
            if notify {
                let _ = active.interrupt.trigger(InterruptReason::Queue);
            }
        }
    }
}

impl VirtioDevice for Vsock {
    fn device_type(&self) -> u32 {
        TYPE_VSOCK
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE; QUEUE_COUNT]
    }

    fn device_features(&self) -> u64 {
        VIRTIO_F_VERSION_1
    }

    /// `le64 guest_cid` (§5.10.4).
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.guest_cid.to_le_bytes(), offset, data);
    }

    fn activate(&mut self, activation: Activation) -> Result<(), ActivateError> {
        let got = activation.queues.len();
        let mut queues = activation.queues.into_iter();
        let (Some(rx), Some(tx), Some(event), None) =
            (queues.next(), queues.next(), queues.next(), queues.next())
        else {
            return Err(ActivateError::QueueCount {
                expected: QUEUE_COUNT,
                got,
            });
        };
        self.state = State::Activated(Active {
            mem: activation.mem,
            rx,
            tx,
            _event: event,
            interrupt: activation.interrupt,
        });
        // Host programs may have asked for guest ports before the driver
        // was up: their REQUESTs can go out now.
        self.wake_event_loop();
        Ok(())
    }

    fn reset(&mut self) -> bool {
        self.state = State::Inactive;
        self.muxer.reset();
        // The event loop closes the streams' host sockets.
        self.wake_event_loop();
        true
    }
}
