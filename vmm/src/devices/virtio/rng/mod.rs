//! virtio-rng (virtio 1.2 §5.4): one queue of device-writable buffers, which
//! the device fills from the host's getrandom(2).

pub mod device;
mod event_handler;

pub use device::Rng;
