//! virtio-vsock (virtio 1.2 §5.10), stream sockets only, with the host side
//! on Unix sockets.
//!
//! The guest sees an ordinary vsock device with its own CID; the host is
//! CID 2. On the host every stream is a Unix stream socket:
//!
//! - Host to guest: a host program connects to the device's socket and
//!   writes `CONNECT <port>\n`; the device asks the guest for that port and
//!   answers `OK <host port>\n` once the guest accepts (or closes the
//!   stream if the guest refuses). From then on the stream carries the
//!   connection's bytes both ways.
//! - Guest to host: a guest connection to host port P is connected to the
//!   Unix socket `<socket path>_P`, which a host program listens on.
//!
//! Layout: `packet` parses and checks the packet header, `connection` holds
//! one stream's state machine and flow control, `muxer` routes packets
//! between the queues and the connections, `unix_backend` owns the host
//! listener and the connect handshake, `device` is the virtio device and
//! `event_handler` its place on the event loop.

mod connection;
mod device;
mod event_handler;
mod muxer;
pub mod packet;
mod unix_backend;

#[cfg(test)]
mod tests;

pub use device::{Vsock, VsockError, DEFAULT_GUEST_CID};
pub use packet::HOST_CID;
