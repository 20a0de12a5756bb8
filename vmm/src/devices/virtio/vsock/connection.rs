//! One stream between a guest socket and a host Unix stream: its state
//! machine (virtio 1.2 §5.10.6.5) and its flow control (§5.10.6.3).

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;

use vmm_sys_util::epoll::EventSet;

use super::packet::{Header, Op, HEADER_SIZE, MAX_PAYLOAD, SHUTDOWN_RCV, SHUTDOWN_SEND};

/// What the host holds of the guest's data per stream, at most: our
/// `buf_alloc`. The guest must not send more than we have room for.
pub const BUFFER_SIZE: u32 = 256 * 1024;
/// Once this much of the guest's data has reached the host socket since we
/// last told the guest, we tell it (CREDIT_UPDATE) so it never stalls on a
/// stale view of our buffer.
pub const CREDIT_UPDATE_THRESHOLD: u32 = BUFFER_SIZE / 4;

/// A stream, named by the host's port and the guest's port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectionKey {
    pub local_port: u32,
    pub peer_port: u32,
}

/// The byte counters of §5.10.6.3, all wrapping u32s as on the wire.
#[derive(Debug, Clone, Default)]
pub struct Credit {
    /// Guest bytes written to the host socket: our `fwd_cnt`.
    forwarded: u32,
    /// Our `fwd_cnt` as the guest last saw it.
    advertised: u32,
    /// Bytes sent to the guest: our `tx_cnt`.
    sent: u32,
    /// The guest's `buf_alloc` and `fwd_cnt`, from its latest packet.
    peer_buffer: u32,
    peer_forwarded: u32,
}

impl Credit {
    /// Every packet from the guest carries its current buffer and count.
    pub fn update_from_peer(&mut self, buf_alloc: u32, fwd_cnt: u32) {
        self.peer_buffer = buf_alloc;
        self.peer_forwarded = fwd_cnt;
    }

    /// How many more bytes the guest has room for. Wrapping arithmetic: a
    /// count the guest could not have reached (more forwarded than sent)
    /// makes everything look in flight, so it leaves no room rather than
    /// extra room.
    pub fn peer_free(&self) -> u32 {
        let in_flight = self.sent.wrapping_sub(self.peer_forwarded);
        self.peer_buffer.saturating_sub(in_flight)
    }

    pub fn record_sent(&mut self, bytes: u32) {
        self.sent = self.sent.wrapping_add(bytes);
    }

    pub fn record_forwarded(&mut self, bytes: u32) {
        self.forwarded = self.forwarded.wrapping_add(bytes);
    }

    /// Whether the guest should hear about the room we made.
    pub fn update_due(&self) -> bool {
        self.forwarded.wrapping_sub(self.advertised) >= CREDIT_UPDATE_THRESHOLD
    }

    /// Puts our buffer and count in an outgoing header: every packet tells
    /// the guest where we stand.
    pub fn stamp(&mut self, header: &mut Header) {
        header.buf_alloc = BUFFER_SIZE;
        header.fwd_cnt = self.forwarded;
        self.advertised = self.forwarded;
    }
}

/// Where the stream is in its life; closed streams are dropped, not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A host program asked for a guest port: REQUEST is sent or owed,
    /// RESPONSE not yet received.
    Connecting,
    Established,
}

/// What the caller must do with a stream after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    /// Send RST to the guest and drop the stream: a protocol violation, a
    /// host socket error, or both directions are finished.
    Reset,
    /// The guest reset the stream: drop it without a reply.
    Closed,
}

/// What [`Connection::produce`] put in a receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Produced {
    /// A packet; its payload (RW only) is in the caller's buffer.
    Packet(Header),
    Nothing,
    /// The host socket failed or the stream finished: reset it.
    Reset,
}

pub struct Connection {
    pub stream: UnixStream,
    key: ConnectionKey,
    guest_cid: u64,
    phase: Phase,
    credit: Credit,
    /// Bytes for the host socket that it would not take yet. The first
    /// `unaccounted` of them are the handshake reply, not guest data.
    to_host: VecDeque<u8>,
    unaccounted: usize,
    owe_request: bool,
    owe_response: bool,
    owe_credit_update: bool,
    /// The host socket has bytes to read: epoll said so and no read has
    /// come up empty since.
    host_readable: bool,
    /// The host socket reached end of file: the host sends no more.
    host_eof: bool,
    /// The guest was told (SHUTDOWN with SEND) that the host sends no more.
    shutdown_sent: bool,
    /// The guest will send no more, or receive no more (its SHUTDOWN).
    guest_done_sending: bool,
    guest_done_receiving: bool,
    /// shutdown(2) for writing was done on the host socket.
    host_write_closed: bool,
    /// What the event loop watches on `stream` (None: not registered).
    pub registered: Option<EventSet>,
    /// Whether the stream waits in the muxer's receive round.
    pub scheduled: bool,
}

impl Connection {
    /// A guest REQUEST that reached a host listener: RESPONSE is owed.
    pub fn from_guest(stream: UnixStream, request: &Header, guest_cid: u64) -> Connection {
        let mut connection = Connection::new(stream, request.key_from_guest(), guest_cid);
        connection.phase = Phase::Established;
        connection.owe_response = true;
        connection
            .credit
            .update_from_peer(request.buf_alloc, request.fwd_cnt);
        connection
    }

    /// A host program's CONNECT: REQUEST is owed.
    pub fn from_host(stream: UnixStream, key: ConnectionKey, guest_cid: u64) -> Connection {
        let mut connection = Connection::new(stream, key, guest_cid);
        connection.owe_request = true;
        connection
    }

    fn new(stream: UnixStream, key: ConnectionKey, guest_cid: u64) -> Connection {
        Connection {
            stream,
            key,
            guest_cid,
            phase: Phase::Connecting,
            credit: Credit::default(),
            to_host: VecDeque::new(),
            unaccounted: 0,
            owe_request: false,
            owe_response: false,
            owe_credit_update: false,
            host_readable: false,
            host_eof: false,
            shutdown_sent: false,
            guest_done_sending: false,
            guest_done_receiving: false,
            host_write_closed: false,
            registered: None,
            scheduled: false,
        }
    }

    pub fn key(&self) -> ConnectionKey {
        self.key
    }

    #[cfg(test)]
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether the guest has heard of the stream: it asked for it, or our
    /// REQUEST went out. Only then does closing it need an RST.
    pub fn guest_knows(&self) -> bool {
        !self.owe_request
    }

    #[cfg(test)]
    pub fn credit(&self) -> &Credit {
        &self.credit
    }

    /// Bytes of guest data held for the host socket.
    pub fn buffered(&self) -> usize {
        self.to_host.len() - self.unaccounted
    }

    /// A checked packet from the guest for this stream.
    pub fn on_guest_packet(&mut self, header: &Header, op: Op, payload: &[u8]) -> Verdict {
        self.credit
            .update_from_peer(header.buf_alloc, header.fwd_cnt);
        match (self.phase, op) {
            (_, Op::Rst) => Verdict::Closed,
            (Phase::Connecting, Op::Response) => {
                self.phase = Phase::Established;
                let reply = format!("OK {}\n", self.key.local_port);
                self.unaccounted = reply.len();
                self.to_host.extend(reply.as_bytes());
                self.flush_to_host()
            }
            (Phase::Connecting, _) => Verdict::Reset,
            (Phase::Established, Op::Rw) => self.accept_guest_data(payload),
            // The credit it carries is all there is to it.
            (Phase::Established, Op::CreditUpdate) => Verdict::Keep,
            (Phase::Established, Op::CreditRequest) => {
                self.owe_credit_update = true;
                Verdict::Keep
            }
            (Phase::Established, Op::Shutdown) => self.on_guest_shutdown(header.flags),
            (Phase::Established, Op::Request | Op::Response) => Verdict::Reset,
        }
    }

    /// The event loop saw the host socket readable and/or writable (or
    /// hung up, which reads and writes then report).
    pub fn on_host_event(&mut self, readable: bool, writable: bool) -> Verdict {
        if readable && self.wants_host_data() {
            self.host_readable = true;
        }
        if writable {
            return self.flush_to_host();
        }
        Verdict::Keep
    }

    /// Guest data: straight to the host socket, the rest held within our
    /// advertised buffer. Data past SHUTDOWN or past our credit breaks the
    /// protocol and resets the stream.
    fn accept_guest_data(&mut self, payload: &[u8]) -> Verdict {
        if self.guest_done_sending || self.buffered() + payload.len() > BUFFER_SIZE as usize {
            return Verdict::Reset;
        }
        let mut written = 0;
        if self.to_host.is_empty() {
            while written < payload.len() {
                match self.stream.write(&payload[written..]) {
                    Ok(0) => return Verdict::Reset,
                    Ok(count) => written += count,
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => return Verdict::Reset,
                }
            }
            self.credit.record_forwarded(written as u32);
        }
        self.to_host.extend(&payload[written..]);
        self.after_forwarding()
    }

    /// Writes what is held for the host socket, as far as it takes it.
    fn flush_to_host(&mut self) -> Verdict {
        while !self.to_host.is_empty() {
            let (front, back) = self.to_host.as_slices();
            let slices = [IoSlice::new(front), IoSlice::new(back)];
            match self.stream.write_vectored(&slices) {
                Ok(0) => return Verdict::Reset,
                Ok(count) => {
                    self.to_host.drain(..count);
                    let ours = count.min(self.unaccounted);
                    self.unaccounted -= ours;
                    self.credit.record_forwarded((count - ours) as u32);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return Verdict::Reset,
            }
        }
        self.after_forwarding()
    }

    fn after_forwarding(&mut self) -> Verdict {
        if self.credit.update_due() {
            self.owe_credit_update = true;
        }
        if self.guest_done_sending && self.to_host.is_empty() && !self.host_write_closed {
            // The host reader sees end of file. The peer may be gone
            // already, which the next read reports.
            let _ = self.stream.shutdown(Shutdown::Write);
            self.host_write_closed = true;
        }
        self.verdict_if_finished()
    }

    fn on_guest_shutdown(&mut self, flags: u32) -> Verdict {
        if flags & SHUTDOWN_RCV != 0 && !self.guest_done_receiving {
            self.guest_done_receiving = true;
            self.host_readable = false;
            // Host writes now fail (EPIPE) instead of piling up.
            let _ = self.stream.shutdown(Shutdown::Read);
        }
        if flags & SHUTDOWN_SEND != 0 {
            self.guest_done_sending = true;
        }
        self.flush_to_host()
    }

    /// Both directions are over: the guest sends nothing more and all it
    /// sent reached the host, and the host sends nothing more or the guest
    /// takes nothing more. A clean close ends with our RST (§5.10.6.5).
    fn finished(&self) -> bool {
        self.host_write_closed && (self.host_eof || self.guest_done_receiving)
    }

    fn verdict_if_finished(&self) -> Verdict {
        if self.finished() {
            Verdict::Reset
        } else {
            Verdict::Keep
        }
    }

    /// Whether host data would be forwarded now.
    fn wants_host_data(&self) -> bool {
        self.phase == Phase::Established && !self.host_eof && !self.guest_done_receiving
    }

    fn can_send_data(&self) -> bool {
        self.wants_host_data() && self.credit.peer_free() > 0
    }

    fn owe_shutdown(&self) -> bool {
        self.host_eof && !self.shutdown_sent && !self.guest_done_receiving
    }

    /// Whether the stream has a packet for the guest.
    pub fn has_rx_work(&self) -> bool {
        self.owe_request
            || self.owe_response
            || self.owe_credit_update
            || self.owe_shutdown()
            || (self.host_readable && self.can_send_data())
    }

    /// What the event loop should watch the host socket for. Nothing at all
    /// when there is nothing to do: epoll reports a hang-up whatever the
    /// mask, and a level-triggered report we can't act on would spin.
    pub fn interest(&self) -> EventSet {
        let mut interest = EventSet::empty();
        // Read only with room in the guest; once readable, wait for receive
        // buffers rather than for epoll.
        if self.can_send_data() && !self.host_readable {
            interest |= EventSet::IN;
        }
        if !self.to_host.is_empty() {
            interest |= EventSet::OUT;
        }
        interest
    }

    /// The stream's next packet for a receive buffer of `capacity` bytes
    /// (header included); payload bytes go to `payload`.
    pub fn produce(&mut self, capacity: usize, payload: &mut Vec<u8>) -> Produced {
        payload.clear();
        if self.owe_request {
            self.owe_request = false;
            return Produced::Packet(self.header(Op::Request));
        }
        if self.owe_response {
            self.owe_response = false;
            return Produced::Packet(self.header(Op::Response));
        }
        if self.host_readable && self.can_send_data() {
            let room = capacity
                .saturating_sub(HEADER_SIZE)
                .min(self.credit.peer_free() as usize)
                .min(MAX_PAYLOAD as usize);
            if room > 0 {
                payload.resize(room, 0);
                match self.stream.read(payload) {
                    Ok(0) => {
                        payload.clear();
                        self.host_readable = false;
                        self.host_eof = true;
                        if self.finished() {
                            return Produced::Reset;
                        }
                    }
                    Ok(count) => {
                        payload.truncate(count);
                        // A short read most likely drained the socket; epoll
                        // says when there is more.
                        if count < room {
                            self.host_readable = false;
                        }
                        self.credit.record_sent(count as u32);
                        let mut header = self.header(Op::Rw);
                        header.len = count as u32;
                        return Produced::Packet(header);
                    }
                    Err(error)
                        if matches!(
                            error.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                        ) =>
                    {
                        payload.clear();
                        self.host_readable = false;
                    }
                    Err(_) => {
                        payload.clear();
                        return Produced::Reset;
                    }
                }
            }
        }
        if self.owe_shutdown() {
            self.shutdown_sent = true;
            let mut header = self.header(Op::Shutdown);
            header.flags = SHUTDOWN_SEND;
            return Produced::Packet(header);
        }
        if self.owe_credit_update {
            return Produced::Packet(self.header(Op::CreditUpdate));
        }
        Produced::Nothing
    }

    /// A header for this stream carrying our credit, which also settles any
    /// credit update owed.
    fn header(&mut self, op: Op) -> Header {
        let mut header = Header::to_guest(self.guest_cid, self.key, op);
        self.credit.stamp(&mut header);
        self.owe_credit_update = false;
        header
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::virtio::vsock::packet::{HOST_CID, TYPE_STREAM};

    const GUEST_CID: u64 = 3;
    const KEY: ConnectionKey = ConnectionKey {
        local_port: 52,
        peer_port: 1000,
    };

    fn guest_header(op: Op, len: u32, buf_alloc: u32, fwd_cnt: u32) -> Header {
        Header {
            src_cid: GUEST_CID,
            dst_cid: HOST_CID,
            src_port: KEY.peer_port,
            dst_port: KEY.local_port,
            len,
            socket_type: TYPE_STREAM,
            op: op as u16,
            flags: 0,
            buf_alloc,
            fwd_cnt,
        }
    }

    fn shutdown(flags: u32) -> Header {
        let mut header = guest_header(Op::Shutdown, 0, 4096, 0);
        header.flags = flags;
        header
    }

    /// A guest-initiated stream with its RESPONSE already produced, and
    /// the host program's end.
    fn established(guest_buffer: u32) -> (Connection, UnixStream) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let request = guest_header(Op::Request, 0, guest_buffer, 0);
        let mut connection = Connection::from_guest(ours, &request, GUEST_CID);
        let mut payload = Vec::new();
        let Produced::Packet(response) = connection.produce(4096, &mut payload) else {
            panic!("a RESPONSE is owed");
        };
        assert_eq!(response.op, Op::Response as u16);
        assert_eq!(response.buf_alloc, BUFFER_SIZE);
        (connection, theirs)
    }

    #[test]
    fn credit_counts_wrap_and_never_overstate_the_peer() {
        let mut credit = Credit::default();
        credit.update_from_peer(1000, 0);
        assert_eq!(credit.peer_free(), 1000);
        credit.record_sent(600);
        assert_eq!(credit.peer_free(), 400);
        credit.update_from_peer(1000, 600);
        assert_eq!(credit.peer_free(), 1000);

        // Counters wrap on the wire.
        let mut credit = Credit {
            sent: u32::MAX - 10,
            peer_forwarded: u32::MAX - 10,
            peer_buffer: 100,
            ..Credit::default()
        };
        credit.record_sent(50);
        assert_eq!(credit.peer_free(), 50);

        // The peer shrank its buffer below what is in flight, or claims to
        // have forwarded more than it got: no room.
        credit.update_from_peer(10, u32::MAX - 10);
        assert_eq!(credit.peer_free(), 0);
        credit.update_from_peer(1000, 100);
        assert_eq!(credit.peer_free(), 0);
    }

    #[test]
    fn credit_updates_are_due_after_a_quarter_buffer() {
        let mut credit = Credit::default();
        credit.record_forwarded(CREDIT_UPDATE_THRESHOLD - 1);
        assert!(!credit.update_due());
        credit.record_forwarded(1);
        assert!(credit.update_due());
        let mut header = Header::default();
        credit.stamp(&mut header);
        assert_eq!(header.fwd_cnt, CREDIT_UPDATE_THRESHOLD);
        assert_eq!(header.buf_alloc, BUFFER_SIZE);
        assert!(!credit.update_due());
    }

    #[test]
    fn guest_data_reaches_the_host_and_is_counted() {
        let (mut connection, mut host) = established(4096);
        let verdict =
            connection.on_guest_packet(&guest_header(Op::Rw, 5, 4096, 0), Op::Rw, b"hello");
        assert_eq!(verdict, Verdict::Keep);
        let mut got = [0u8; 5];
        host.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello");
        assert_eq!(connection.credit().forwarded, 5);
        assert_eq!(connection.interest(), EventSet::IN);
    }

    #[test]
    fn host_data_is_sent_within_the_guest_credit() {
        let (mut connection, mut host) = established(10);
        host.write_all(&[7u8; 100]).unwrap();
        assert_eq!(connection.on_host_event(true, false), Verdict::Keep);
        assert!(connection.has_rx_work());
        assert_eq!(
            connection.interest(),
            EventSet::empty(),
            "waits for buffers"
        );

        let mut payload = Vec::new();
        let Produced::Packet(header) = connection.produce(4096, &mut payload) else {
            panic!("data is readable");
        };
        assert_eq!((header.op, header.len), (Op::Rw as u16, 10));
        assert_eq!(payload, [7u8; 10]);
        // No credit left: nothing more to send, nothing to watch.
        assert!(!connection.has_rx_work());
        assert_eq!(connection.interest(), EventSet::empty());
        assert_eq!(connection.produce(4096, &mut payload), Produced::Nothing);

        // The guest's app read the data: reading resumes.
        let update = guest_header(Op::CreditUpdate, 0, 10, 10);
        assert_eq!(
            connection.on_guest_packet(&update, Op::CreditUpdate, &[]),
            Verdict::Keep
        );
        assert!(connection.has_rx_work());
        let Produced::Packet(header) = connection.produce(HEADER_SIZE + 4, &mut payload) else {
            panic!("more data");
        };
        assert_eq!(header.len, 4, "bounded by the receive buffer");
    }

    #[test]
    fn guest_data_past_our_credit_resets() {
        let (mut connection, host) = established(4096);
        // Nobody reads the host end: the socket fills, the rest is held.
        let chunk = vec![1u8; MAX_PAYLOAD as usize];
        let mut sent = 0usize;
        loop {
            let header = guest_header(Op::Rw, MAX_PAYLOAD, 4096, 0);
            let verdict = connection.on_guest_packet(&header, Op::Rw, &chunk);
            if verdict == Verdict::Reset {
                break;
            }
            sent += chunk.len();
            assert!(connection.buffered() <= BUFFER_SIZE as usize);
            assert!(sent < 64 * 1024 * 1024, "the guest is never refused");
        }
        assert!(connection.buffered() > BUFFER_SIZE as usize - chunk.len());
        assert_eq!(connection.interest(), EventSet::IN | EventSet::OUT);
        drop(host);
    }

    #[test]
    fn held_data_flushes_when_the_host_drains_and_credit_follows() {
        let (mut connection, mut host) = established(4096);
        let chunk = vec![2u8; MAX_PAYLOAD as usize];
        while connection.buffered() + chunk.len() <= BUFFER_SIZE as usize {
            let header = guest_header(Op::Rw, MAX_PAYLOAD, 4096, 0);
            assert_eq!(
                connection.on_guest_packet(&header, Op::Rw, &chunk),
                Verdict::Keep
            );
        }
        let total = connection.credit().forwarded as usize + connection.buffered();
        host.set_nonblocking(true).unwrap();
        let mut drained = 0;
        let mut buffer = vec![0u8; 1 << 20];
        while drained < total {
            match host.read(&mut buffer) {
                Ok(count) => drained += count,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    assert_eq!(connection.on_host_event(false, true), Verdict::Keep);
                }
                Err(error) => panic!("{error}"),
            }
        }
        assert_eq!(connection.buffered(), 0);
        assert_eq!(connection.credit().forwarded as usize, total);
        // The guest hears how much room there is now.
        let mut payload = Vec::new();
        assert!(connection.has_rx_work());
        let Produced::Packet(update) = connection.produce(4096, &mut payload) else {
            panic!("a credit update is owed");
        };
        assert_eq!(update.op, Op::CreditUpdate as u16);
        assert_eq!(update.fwd_cnt as usize, total);
    }

    #[test]
    fn credit_request_is_answered() {
        let (mut connection, _host) = established(4096);
        let request = guest_header(Op::CreditRequest, 0, 4096, 0);
        connection.on_guest_packet(&request, Op::CreditRequest, &[]);
        let mut payload = Vec::new();
        let Produced::Packet(update) = connection.produce(4096, &mut payload) else {
            panic!("a credit update is owed");
        };
        assert_eq!(update.op, Op::CreditUpdate as u16);
        assert!(!connection.has_rx_work());
    }

    #[test]
    fn guest_close_after_host_close_finishes_the_stream() {
        let (mut connection, host) = established(4096);
        drop(host);
        connection.on_host_event(true, false);
        let mut payload = Vec::new();
        let Produced::Packet(header) = connection.produce(4096, &mut payload) else {
            panic!("end of file is reported");
        };
        assert_eq!(
            (header.op, header.flags),
            (Op::Shutdown as u16, SHUTDOWN_SEND)
        );
        assert_eq!(connection.interest(), EventSet::empty());
        // Half-closed: the guest may still send... until it closes too.
        let verdict = connection.on_guest_packet(&shutdown(SHUTDOWN_SEND), Op::Shutdown, &[]);
        assert_eq!(verdict, Verdict::Reset, "both directions are done");
    }

    #[test]
    fn guest_half_close_ends_the_host_readers_stream() {
        let (mut connection, mut host) = established(4096);
        connection.on_guest_packet(&guest_header(Op::Rw, 3, 4096, 0), Op::Rw, b"bye");
        let verdict = connection.on_guest_packet(&shutdown(SHUTDOWN_SEND), Op::Shutdown, &[]);
        assert_eq!(verdict, Verdict::Keep, "the host may still send");
        let mut got = Vec::new();
        host.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"bye");
        // Data after SHUTDOWN(SEND) breaks the protocol.
        let verdict = connection.on_guest_packet(&guest_header(Op::Rw, 1, 4096, 0), Op::Rw, b"x");
        assert_eq!(verdict, Verdict::Reset);
    }

    #[test]
    fn guest_full_close_flushes_then_finishes() {
        let (mut connection, mut host) = established(4096);
        connection.on_guest_packet(&guest_header(Op::Rw, 2, 4096, 0), Op::Rw, b"ok");
        let verdict =
            connection.on_guest_packet(&shutdown(SHUTDOWN_SEND | SHUTDOWN_RCV), Op::Shutdown, &[]);
        assert_eq!(verdict, Verdict::Reset);
        let mut got = Vec::new();
        host.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"ok");
    }

    #[test]
    fn host_connect_waits_for_the_guest_and_replies_ok() {
        let (ours, mut host) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let key = ConnectionKey {
            local_port: 1 << 30,
            peer_port: 52,
        };
        let mut connection = Connection::from_host(ours, key, GUEST_CID);
        assert_eq!(connection.interest(), EventSet::empty());
        let mut payload = Vec::new();
        let Produced::Packet(request) = connection.produce(4096, &mut payload) else {
            panic!("a REQUEST is owed");
        };
        assert_eq!(request.op, Op::Request as u16);
        assert_eq!(
            (request.src_port, request.dst_port, request.dst_cid),
            (1 << 30, 52, GUEST_CID)
        );

        // Data before RESPONSE breaks the protocol.
        let mut early = connection_from_host_pair(key);
        let rw = response_from(key, Op::Rw, 1);
        assert_eq!(early.on_guest_packet(&rw, Op::Rw, b"x"), Verdict::Reset);

        let response = response_from(key, Op::Response, 0);
        assert_eq!(
            connection.on_guest_packet(&response, Op::Response, &[]),
            Verdict::Keep
        );
        assert_eq!(connection.phase(), Phase::Established);
        let mut line = [0u8; 14];
        host.read_exact(&mut line).unwrap();
        assert_eq!(&line, b"OK 1073741824\n");
        // The reply is not guest data: no credit is consumed by it.
        assert_eq!(connection.credit().forwarded, 0);
        assert_eq!(connection.interest(), EventSet::IN);
    }

    fn connection_from_host_pair(key: ConnectionKey) -> Connection {
        let (ours, _theirs) = UnixStream::pair().unwrap();
        Connection::from_host(ours, key, GUEST_CID)
    }

    fn response_from(key: ConnectionKey, op: Op, len: u32) -> Header {
        Header {
            src_cid: GUEST_CID,
            dst_cid: HOST_CID,
            src_port: key.peer_port,
            dst_port: key.local_port,
            len,
            socket_type: TYPE_STREAM,
            op: op as u16,
            flags: 0,
            buf_alloc: 4096,
            fwd_cnt: 0,
        }
    }

    #[test]
    fn guest_rst_closes_without_reply() {
        let (mut connection, _host) = established(4096);
        let rst = guest_header(Op::Rst, 0, 0, 0);
        assert_eq!(
            connection.on_guest_packet(&rst, Op::Rst, &[]),
            Verdict::Closed
        );
    }

    #[test]
    fn a_broken_host_socket_resets() {
        let (mut connection, host) = established(4096);
        drop(host);
        let verdict = connection.on_guest_packet(&guest_header(Op::Rw, 1, 4096, 0), Op::Rw, b"x");
        assert_eq!(verdict, Verdict::Reset);
    }
}
