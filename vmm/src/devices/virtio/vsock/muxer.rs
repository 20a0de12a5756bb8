//! Routes packets between the device's queues and its streams: the
//! connection table, the packets owed to the guest, and the transmit and
//! receive queue processing.

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::epoll::EventSet;

use super::connection::{Connection, ConnectionKey, Produced, Verdict};
use super::packet::{self, Header, Op, HEADER_SIZE};
use super::unix_backend;

/// Streams open at once, at most. Each may hold up to
/// [`super::connection::BUFFER_SIZE`] of guest data for a slow host reader,
/// so this bounds that memory too (64 MiB).
pub const MAX_CONNECTIONS: usize = 256;
/// RSTs owed to the guest that belong to no stream (replies to packets for
/// unknown streams, and the last word of closed ones). Past this, replies to
/// stray packets are dropped; closing streams get a little more room.
const MAX_STRAY_RSTS: usize = 256;
const MAX_QUEUED_RSTS: usize = MAX_STRAY_RSTS + MAX_CONNECTIONS;
/// Host-initiated streams get host ports from here up.
const FIRST_EPHEMERAL_PORT: u32 = 1 << 30;

/// A host socket that left the connection table: the event loop stops
/// watching it (if it did) before it is closed, so its fd number can't be
/// reused while still registered.
pub struct Retired {
    pub stream: UnixStream,
    pub registered: bool,
}

pub struct Muxer {
    guest_cid: u64,
    /// Guest connections to host port P go to `<host_socket>_P`.
    host_socket: PathBuf,
    connections: HashMap<ConnectionKey, Connection>,
    by_fd: HashMap<RawFd, ConnectionKey>,
    /// RSTs for the guest that belong to no open stream, oldest first.
    rsts: VecDeque<Header>,
    /// Streams with a packet for the guest, served in turn.
    rx_ready: VecDeque<ConnectionKey>,
    retired: Vec<Retired>,
    next_ephemeral_port: u32,
}

impl Muxer {
    pub fn new(guest_cid: u64, host_socket: PathBuf) -> Muxer {
        Muxer {
            guest_cid,
            host_socket,
            connections: HashMap::new(),
            by_fd: HashMap::new(),
            rsts: VecDeque::new(),
            rx_ready: VecDeque::new(),
            retired: Vec::new(),
            next_ephemeral_port: FIRST_EPHEMERAL_PORT,
        }
    }

    #[cfg(test)]
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    #[cfg(test)]
    pub fn connection(&self, key: ConnectionKey) -> Option<&Connection> {
        self.connections.get(&key)
    }

    /// Streams waiting in the receive round.
    #[cfg(test)]
    pub fn rx_round_len(&self) -> usize {
        self.rx_ready.len()
    }

    /// Guest data held for host sockets, over every stream.
    #[cfg(test)]
    pub fn buffered_total(&self) -> usize {
        self.connections.values().map(Connection::buffered).sum()
    }

    /// A checked packet from the guest (virtio 1.2 §5.10.6).
    pub fn handle_guest_packet(&mut self, header: &Header, op: Op, payload: &[u8]) {
        let key = header.key_from_guest();
        let Some(connection) = self.connections.get_mut(&key) else {
            match op {
                Op::Request => self.open_from_guest(header),
                // Nothing to reset.
                Op::Rst => {}
                // No such stream: tell the guest with an RST.
                _ => self.queue_rst(key, MAX_STRAY_RSTS),
            }
            return;
        };
        // A second REQUEST for an open stream: the guest lost track of it.
        let verdict = if op == Op::Request {
            Verdict::Reset
        } else {
            connection.on_guest_packet(header, op, payload)
        };
        self.apply(key, verdict);
    }

    /// A packet the guest addressed to `key` was malformed: reset the
    /// stream if there is one, rather than deliver its data with a hole.
    pub fn reset_if_open(&mut self, key: ConnectionKey) {
        if self.connections.contains_key(&key) {
            self.close(key, true);
        }
    }

    /// The host socket behind `fd` became ready. Returns false if no open
    /// stream has that fd.
    pub fn handle_host_event(&mut self, fd: RawFd, events: EventSet) -> bool {
        let Some(&key) = self.by_fd.get(&fd) else {
            return false;
        };
        let Some(connection) = self.connections.get_mut(&key) else {
            return false;
        };
        let failed = events.intersects(EventSet::HANG_UP | EventSet::ERROR);
        let verdict = connection.on_host_event(
            failed || events.contains(EventSet::IN),
            failed || events.contains(EventSet::OUT),
        );
        self.apply(key, verdict);
        true
    }

    /// A host program finished its `CONNECT <port>` handshake on `stream`;
    /// `registered` says whether the event loop watches it. The guest gets a
    /// REQUEST from a fresh host port.
    pub fn connect_from_host(&mut self, stream: UnixStream, guest_port: u32, registered: bool) {
        let Some(local_port) = self.allocate_port() else {
            self.retired.push(Retired { stream, registered });
            return;
        };
        let key = ConnectionKey {
            local_port,
            peer_port: guest_port,
        };
        let mut connection = Connection::from_host(stream, key, self.guest_cid);
        connection.registered = registered.then_some(EventSet::IN);
        self.insert(connection);
    }

    /// A host port no open stream uses, or None when the table is full.
    fn allocate_port(&mut self) -> Option<u32> {
        if self.connections.len() >= MAX_CONNECTIONS {
            return None;
        }
        loop {
            let port = self.next_ephemeral_port;
            // u32::MAX is VMADDR_PORT_ANY; wrap before it.
            self.next_ephemeral_port = if port >= u32::MAX - 1 {
                FIRST_EPHEMERAL_PORT
            } else {
                port + 1
            };
            // At most MAX_CONNECTIONS ports are taken, so this ends quickly.
            if !self.connections.keys().any(|key| key.local_port == port) {
                return Some(port);
            }
        }
    }

    /// A guest REQUEST for a stream that does not exist: connect to the
    /// host listener for that port, RESPONSE if it is there, RST if not.
    fn open_from_guest(&mut self, request: &Header) {
        let key = request.key_from_guest();
        if self.connections.len() >= MAX_CONNECTIONS {
            self.queue_rst(key, MAX_STRAY_RSTS);
            return;
        }
        match unix_backend::connect_to_port(&self.host_socket, key.local_port) {
            Ok(stream) => {
                let connection = Connection::from_guest(stream, request, self.guest_cid);
                self.insert(connection);
            }
            Err(_) => self.queue_rst(key, MAX_STRAY_RSTS),
        }
    }

    fn insert(&mut self, connection: Connection) {
        let key = connection.key();
        self.by_fd.insert(connection.stream.as_raw_fd(), key);
        self.connections.insert(key, connection);
    }

    fn apply(&mut self, key: ConnectionKey, verdict: Verdict) {
        match verdict {
            Verdict::Keep => {}
            Verdict::Reset => self.close(key, true),
            Verdict::Closed => self.close(key, false),
        }
    }

    /// Drops a stream; its host socket is closed by the event loop.
    fn close(&mut self, key: ConnectionKey, send_rst: bool) {
        let Some(connection) = self.connections.remove(&key) else {
            return;
        };
        self.by_fd.remove(&connection.stream.as_raw_fd());
        // Its turn in the receive round goes too. Left there, a guest that
        // never posts receive buffers could open and reset the same stream
        // over and over and grow the round by one stale entry each time;
        // without them the round holds each open stream at most once.
        self.rx_ready.retain(|queued| *queued != key);
        // A stream the guest never heard of needs no RST.
        let guest_knows = connection.guest_knows();
        self.retired.push(Retired {
            registered: connection.registered.is_some(),
            stream: connection.stream,
        });
        if send_rst && guest_knows {
            self.queue_rst(key, MAX_QUEUED_RSTS);
        }
    }

    fn queue_rst(&mut self, key: ConnectionKey, limit: usize) {
        if self.rsts.len() < limit {
            self.rsts
                .push_back(Header::to_guest(self.guest_cid, key, Op::Rst));
        }
    }

    /// The driver reset the device: every stream ends (the guest forgot
    /// them), their host sockets close.
    pub fn reset(&mut self) {
        let keys: Vec<ConnectionKey> = self.connections.keys().copied().collect();
        for key in keys {
            self.close(key, false);
        }
        self.rsts.clear();
        self.rx_ready.clear();
    }

    /// Host sockets to stop watching and close.
    pub fn take_retired(&mut self) -> Vec<Retired> {
        std::mem::take(&mut self.retired)
    }

    /// Each open stream's host socket, what the event loop watches on it,
    /// and what it should watch.
    pub fn interests(&mut self) -> impl Iterator<Item = (RawFd, &mut Option<EventSet>, EventSet)> {
        self.connections.values_mut().map(|connection| {
            let interest = connection.interest();
            (
                connection.stream.as_raw_fd(),
                &mut connection.registered,
                interest,
            )
        })
    }

    /// Queues every stream with a packet for the guest that is not queued.
    fn schedule(&mut self) {
        for connection in self.connections.values_mut() {
            if !connection.scheduled && connection.has_rx_work() {
                connection.scheduled = true;
                self.rx_ready.push_back(connection.key());
            }
        }
    }
}

/// Runs the transmit queue: every packet from the guest is checked and
/// routed; its buffers go back at once. Returns whether to interrupt.
pub fn process_tx_queue(queue: &mut Queue, mem: &GuestMemoryMmap, muxer: &mut Muxer) -> bool {
    let mut used_any = false;
    let mut payload = Vec::new();
    while let Some(chain) = queue.pop_descriptor_chain(mem) {
        let head = chain.head_index();
        match packet::read_guest_packet(chain, mem, muxer.guest_cid, &mut payload) {
            Ok((header, op)) => muxer.handle_guest_packet(&header, op, &payload),
            Err(error) => {
                if let Some(key) = error.connection() {
                    muxer.reset_if_open(key);
                }
            }
        }
        // add_used fails for a head index beyond the queue size, which a
        // hostile driver can put in the available ring: that chain is
        // dropped, and doesn't count as something to interrupt for.
        used_any |= queue.add_used(mem, head, 0).is_ok();
    }
    used_any && queue.needs_notification(mem).unwrap_or(true)
}

/// Where the next receive buffer's packet comes from.
enum Source {
    Rst,
    Connection(ConnectionKey),
}

/// Fills receive buffers with what the guest is owed: stray RSTs first,
/// then one packet per stream in turn. Stops when nothing is owed or the
/// guest has no more buffers. Returns whether to interrupt.
pub fn process_rx_queue(queue: &mut Queue, mem: &GuestMemoryMmap, muxer: &mut Muxer) -> bool {
    let mut used_any = false;
    let mut payload = Vec::new();
    muxer.schedule();
    loop {
        let source = if !muxer.rsts.is_empty() {
            Source::Rst
        } else if let Some(key) = muxer.rx_ready.pop_front() {
            Source::Connection(key)
        } else {
            break;
        };
        let Some(chain) = queue.pop_descriptor_chain(mem) else {
            if let Source::Connection(key) = source {
                muxer.rx_ready.push_front(key);
            }
            break;
        };
        let head = chain.head_index();
        let mut writer = match chain.writer(mem) {
            Ok(writer) if writer.available_bytes() >= HEADER_SIZE => writer,
            // Unusable (outside guest memory, or too small for a header):
            // give it back empty.
            _ => {
                if let Source::Connection(key) = source {
                    muxer.rx_ready.push_front(key);
                }
                used_any |= queue.add_used(mem, head, 0).is_ok();
                continue;
            }
        };
        let header = match source {
            Source::Rst => muxer.rsts.pop_front(),
            Source::Connection(key) => match muxer.connections.get_mut(&key) {
                None => None,
                Some(connection) => {
                    connection.scheduled = false;
                    match connection.produce(writer.available_bytes(), &mut payload) {
                        Produced::Packet(header) => {
                            if connection.has_rx_work() {
                                connection.scheduled = true;
                                muxer.rx_ready.push_back(key);
                            }
                            Some(header)
                        }
                        Produced::Nothing => None,
                        Produced::Reset => {
                            muxer.close(key, true);
                            None
                        }
                    }
                }
            },
        };
        match header {
            Some(header) => {
                let written = packet::write_host_packet(&mut writer, &header, &payload)
                    .unwrap_or(writer.bytes_written() as u32);
                used_any |= queue.add_used(mem, head, written).is_ok();
            }
            // Nothing to send after all: the buffer stays the guest's for
            // the next packet.
            None => queue.set_next_avail(queue.next_avail().wrapping_sub(1)),
        }
    }
    used_any && queue.needs_notification(mem).unwrap_or(true)
}
