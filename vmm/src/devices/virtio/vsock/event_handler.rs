//! The vsock device on the event loop: its queue notifiers, the host
//! listener, host programs in their handshake and every stream's host
//! socket. A socket is watched only for what the device can act on now, so
//! level-triggered epoll never reports something it would ignore.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use event_manager::{EventOps, Events, MutEventSubscriber};
use vmm_sys_util::epoll::EventSet;

use super::device::{Vsock, EVENT_QUEUE, RX_QUEUE, TX_QUEUE};
use super::unix_backend::HandshakeProgress;

/// Host programs accepted per listener event; the listener stays readable
/// for the rest, and other events get their turn.
const MAX_ACCEPTS_PER_EVENT: usize = 32;

impl MutEventSubscriber for Vsock {
    fn process(&mut self, events: Events, ops: &mut EventOps) {
        let fd = events.fd();
        if fd == self.queue_events[RX_QUEUE].as_raw_fd() {
            // New receive buffers (or a wake-up): the rx pass below uses
            // them. Drain first so later notifications signal again.
            let _ = self.queue_events[RX_QUEUE].read();
        } else if fd == self.queue_events[TX_QUEUE].as_raw_fd() {
            let _ = self.queue_events[TX_QUEUE].read();
            self.process_tx();
        } else if fd == self.queue_events[EVENT_QUEUE].as_raw_fd() {
            let _ = self.queue_events[EVENT_QUEUE].read();
        } else if fd == self.backend.listener.as_raw_fd() {
            self.accept_host_programs(ops);
        } else if !self.muxer.handle_host_event(fd, events.event_set()) {
            self.advance_handshake(fd, ops);
        }
        // Whatever happened may have left packets owed to the guest and
        // changed what each socket should be watched for.
        self.process_rx_and_interrupt();
        self.update_watches(ops);
    }

    fn init(&mut self, ops: &mut EventOps) {
        // Registration only fails on a broken epoll fd, which the event loop
        // reports itself.
        for event in &self.queue_events {
            let _ = ops.add(Events::new(event, EventSet::IN));
        }
        self.backend.listener_watched = ops
            .add(Events::new(&self.backend.listener, EventSet::IN))
            .is_ok();
    }
}

impl Vsock {
    fn accept_host_programs(&mut self, ops: &mut EventOps) {
        for _ in 0..MAX_ACCEPTS_PER_EVENT {
            match self.backend.listener.accept() {
                Ok((stream, _)) => {
                    // A stream we can't watch or make non-blocking is
                    // closed: the program sees end of file.
                    if stream.set_nonblocking(true).is_err()
                        || ops.add(Events::new(&stream, EventSet::IN)).is_err()
                    {
                        continue;
                    }
                    if let Some(evicted) = self.backend.start_handshake(stream) {
                        let _ = ops.remove(Events::empty(&evicted.stream));
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(_) => {
                    // Out of file descriptors, most likely: the pending
                    // connection stays and the listener stays readable. Stop
                    // watching it until one of our sockets closes.
                    if ops.remove(Events::empty(&self.backend.listener)).is_ok() {
                        self.backend.listener_watched = false;
                    }
                    break;
                }
            }
        }
    }

    fn advance_handshake(&mut self, fd: RawFd, ops: &mut EventOps) {
        let Some((progress, finished)) = self.backend.advance_handshake(fd) else {
            return;
        };
        let Some(handshake) = finished else {
            return;
        };
        match progress {
            // Still watched for reading; the muxer takes it from there.
            HandshakeProgress::Connect(port) => {
                self.muxer.connect_from_host(handshake.stream, port, true)
            }
            _ => {
                let _ = ops.remove(Events::empty(&handshake.stream));
            }
        }
    }

    /// Closes the host sockets of streams that ended (unwatching them
    /// first, so their fd numbers are free in the event loop too) and
    /// brings every open stream's watch in line with what it can act on.
    fn update_watches(&mut self, ops: &mut EventOps) {
        let retired = self.muxer.take_retired();
        let freed_any = !retired.is_empty();
        for socket in retired {
            if socket.registered {
                let _ = ops.remove(Events::empty(&socket.stream));
            }
        }
        for (fd, registered, wanted) in self.muxer.interests() {
            watch(ops, fd, registered, wanted);
        }
        if freed_any && !self.backend.listener_watched {
            self.backend.listener_watched = ops
                .add(Events::new(&self.backend.listener, EventSet::IN))
                .is_ok();
        }
    }
}

/// Adds, changes or removes `fd`'s registration so that it matches
/// `wanted`; an empty set means not registered at all (epoll reports
/// hang-ups and errors whatever the mask). A failed change is retried on
/// the next pass.
fn watch(ops: &mut EventOps, fd: RawFd, registered: &mut Option<EventSet>, wanted: EventSet) {
    let wanted = (!wanted.is_empty()).then_some(wanted);
    if *registered == wanted {
        return;
    }
    let result = match (*registered, wanted) {
        (None, Some(set)) => ops.add(Events::new_raw(fd, set)),
        (Some(_), Some(set)) => ops.modify(Events::new_raw(fd, set)),
        (Some(_), None) => ops.remove(Events::empty_raw(fd)),
        (None, None) => Ok(()),
    };
    if result.is_ok() {
        *registered = wanted;
    }
}
