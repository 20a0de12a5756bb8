//! The device end to end, in process: a mock driver on split queues in
//! guest memory, the device on a real event loop, and real Unix sockets
//! for the host side.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use event_manager::{EventManager, SubscriberOps};
use virtio_queue::desc::split::Descriptor as SplitDescriptor;
use virtio_queue::desc::RawDescriptor;
use virtio_queue::mock::MockSplitQueue;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::tempdir::TempDir;

use super::connection::{ConnectionKey, BUFFER_SIZE, CREDIT_UPDATE_THRESHOLD};
use super::muxer::MAX_CONNECTIONS;
use super::packet::{
    Header, Op, HEADER_SIZE, HOST_CID, MAX_PAYLOAD, SHUTDOWN_RCV, SHUTDOWN_SEND, TYPE_STREAM,
};
use super::unix_backend::port_path;
use super::{Vsock, VsockError};
use crate::devices::virtio::{
    Activation, InterruptReason, VirtioDevice, VirtioInterrupt, TYPE_VSOCK, VIRTIO_F_VERSION_1,
};

const GUEST_CID: u64 = 3;
const QUEUE_SIZE: u16 = 64;
/// What the mock guest advertises as its per-stream buffer.
const GUEST_BUFFER: u32 = 64 * 1024;
/// Linux posts receive buffers of 4 KiB.
const RX_BUFFER_LEN: u32 = 4096;
const RX_BUFFERS: u64 = 0x10_0000;
const RX_SLOT: u64 = 0x1_0000;
const TX_HEADER: u64 = 0x80_0000;
const TX_PAYLOAD: u64 = 0x80_1000;
const WRITE: u16 = 2; // VRING_DESC_F_WRITE
const NEXT: u16 = 1; // VRING_DESC_F_NEXT
const TIMEOUT: Duration = Duration::from_secs(5);
/// Where each queue's rings start.
const RX_RING: u64 = 0;
const TX_RING: u64 = 0x1_0000;
const EVENT_RING: u64 = 0x2_0000;
/// The used ring's offset from the start of its queue. The mock would put
/// it where it overlaps the available ring of a queue this size once more
/// than half the ring is used, so the tests place it themselves.
const USED_RING_OFFSET: u64 = 0x800;

#[derive(Default)]
struct CountingInterrupt(AtomicUsize);

impl VirtioInterrupt for CountingInterrupt {
    fn trigger(&self, reason: InterruptReason) -> io::Result<()> {
        assert_eq!(reason, InterruptReason::Queue);
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn memory() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x100_0000)]).unwrap()
}

fn desc(addr: u64, len: u32, flags: u16, next: u16) -> RawDescriptor {
    RawDescriptor::from(SplitDescriptor::new(addr, len, flags, next))
}

/// The driver's side of the device: its queues and buffers, and the device
/// on an event loop.
struct Guest<'a> {
    mem: &'a GuestMemoryMmap,
    rx: MockSplitQueue<'a, GuestMemoryMmap>,
    tx: MockSplitQueue<'a, GuestMemoryMmap>,
    /// Receive descriptors (one buffer each) the device does not hold.
    free_rx: VecDeque<u16>,
    rx_seen: u16,
    tx_seen: u16,
    device: Arc<Mutex<Vsock>>,
    event_loop: EventManager<Arc<Mutex<Vsock>>>,
    rx_notifier: EventFd,
    tx_notifier: EventFd,
    interrupts: Arc<CountingInterrupt>,
    /// Packets received and not yet looked at.
    inbox: VecDeque<(Header, Vec<u8>)>,
    path: PathBuf,
    _dir: TempDir,
}

impl<'a> Guest<'a> {
    /// A device with its socket in a fresh directory, not yet activated.
    fn new(mem: &'a GuestMemoryMmap) -> Guest<'a> {
        let dir = TempDir::new_with_prefix("/tmp/husk-vsock").unwrap();
        let path = dir.as_path().join("v.sock");
        let notifiers: [EventFd; 3] =
            std::array::from_fn(|_| EventFd::new(libc::EFD_NONBLOCK).unwrap());
        let rx_notifier = notifiers[0].try_clone().unwrap();
        let tx_notifier = notifiers[1].try_clone().unwrap();
        let device = Arc::new(Mutex::new(Vsock::new(GUEST_CID, &path, notifiers).unwrap()));
        let mut event_loop = EventManager::new().unwrap();
        event_loop.add_subscriber(device.clone());
        Guest {
            mem,
            rx: MockSplitQueue::create(mem, GuestAddress(RX_RING), QUEUE_SIZE),
            tx: MockSplitQueue::create(mem, GuestAddress(TX_RING), QUEUE_SIZE),
            free_rx: (0..QUEUE_SIZE).collect(),
            rx_seen: 0,
            tx_seen: 0,
            device,
            event_loop,
            rx_notifier,
            tx_notifier,
            interrupts: Arc::new(CountingInterrupt::default()),
            inbox: VecDeque::new(),
            path,
            _dir: dir,
        }
    }

    /// A device the driver has started.
    fn started(mem: &'a GuestMemoryMmap) -> Guest<'a> {
        let mut guest = Guest::new(mem);
        guest.activate();
        guest
    }

    fn activate(&mut self) {
        let event = MockSplitQueue::create(self.mem, GuestAddress(EVENT_RING), QUEUE_SIZE);
        let queues = vec![
            driver_queue(&self.rx),
            driver_queue(&self.tx),
            driver_queue(&event),
        ];
        self.device
            .lock()
            .unwrap()
            .activate(Activation {
                mem: self.mem.clone(),
                queues,
                interrupt: self.interrupts.clone(),
                acked_features: VIRTIO_F_VERSION_1,
            })
            .unwrap();
        self.pump();
    }

    /// Runs the event loop until it has nothing left to do.
    fn pump(&mut self) {
        for _ in 0..10_000 {
            if self.event_loop.run_with_timeout(0).unwrap() == 0 {
                return;
            }
        }
        panic!("the event loop never settles: something spins");
    }

    /// Posts `count` receive buffers of `len` bytes and notifies.
    fn give_rx_buffers(&mut self, count: usize, len: u32) {
        for _ in 0..count {
            let index = self.free_rx.pop_front().expect("a free receive descriptor");
            let addr = RX_BUFFERS + u64::from(index) * RX_SLOT;
            offer(self.mem, &self.rx, &[desc(addr, len, WRITE, 0)], index);
        }
        self.rx_notifier.write(1).unwrap();
        self.pump();
    }

    /// Keeps `count` receive buffers posted, as a driver refills its ring.
    fn top_up_rx(&mut self, count: usize) {
        let posted = usize::from(QUEUE_SIZE) - self.free_rx.len();
        self.give_rx_buffers(count.saturating_sub(posted), RX_BUFFER_LEN);
    }

    /// Sends a packet as Linux does: header and payload in separate
    /// buffers.
    fn send(&mut self, header: Header, payload: &[u8]) {
        self.mem
            .write_slice(&header.encode(), GuestAddress(TX_HEADER))
            .unwrap();
        if payload.is_empty() {
            self.send_chain(&[desc(TX_HEADER, HEADER_SIZE as u32, 0, 0)]);
        } else {
            self.mem
                .write_slice(payload, GuestAddress(TX_PAYLOAD))
                .unwrap();
            self.send_chain(&[
                desc(TX_HEADER, HEADER_SIZE as u32, NEXT, 1),
                desc(TX_PAYLOAD, payload.len() as u32, 0, 0),
            ]);
        }
    }

    /// Sends any chain; the device must give it back at once.
    fn send_chain(&mut self, descriptors: &[RawDescriptor]) {
        offer(self.mem, &self.tx, descriptors, 0);
        self.tx_notifier.write(1).unwrap();
        self.pump();
        let used = self.used_idx(&self.tx);
        assert_eq!(used, self.tx_seen.wrapping_add(1), "tx buffers come back");
        self.tx_seen = used;
    }

    fn used_idx(&self, queue: &MockSplitQueue<GuestMemoryMmap>) -> u16 {
        self.mem
            .read_obj(used_ring(queue).unchecked_add(2))
            .unwrap()
    }

    /// Collects the packets the device put in receive buffers.
    fn collect(&mut self) {
        let used = self.used_idx(&self.rx);
        while self.rx_seen != used {
            let entry =
                used_ring(&self.rx).unchecked_add(4 + u64::from(self.rx_seen % QUEUE_SIZE) * 8);
            let id: u32 = self.mem.read_obj(entry).unwrap();
            let len: u32 = self.mem.read_obj(entry.unchecked_add(4)).unwrap();
            let addr = GuestAddress(RX_BUFFERS + u64::from(id) * RX_SLOT);
            let mut bytes = [0u8; HEADER_SIZE];
            self.mem.read_slice(&mut bytes, addr).unwrap();
            let header = Header::decode(&bytes);
            assert_eq!(len as usize, HEADER_SIZE + header.len as usize);
            let mut payload = vec![0u8; header.len as usize];
            self.mem
                .read_slice(&mut payload, addr.unchecked_add(HEADER_SIZE as u64))
                .unwrap();
            assert_eq!(
                (header.src_cid, header.dst_cid, header.socket_type),
                (HOST_CID, GUEST_CID, TYPE_STREAM)
            );
            self.inbox.push_back((header, payload));
            self.free_rx.push_back(id as u16);
            self.rx_seen = self.rx_seen.wrapping_add(1);
        }
    }

    /// The next packet for the guest, given a buffer for it if needed.
    fn next_packet(&mut self) -> (Header, Vec<u8>) {
        self.collect();
        if self.inbox.is_empty() {
            self.give_rx_buffers(1, RX_BUFFER_LEN);
            self.collect();
        }
        self.inbox.pop_front().expect("a packet for the guest")
    }

    /// Asserts the guest is owed nothing more, even with buffers.
    fn expect_silence(&mut self) {
        self.give_rx_buffers(1, RX_BUFFER_LEN);
        self.collect();
        assert!(self.inbox.is_empty(), "unexpected {:?}", self.inbox);
    }

    fn expect(&mut self, op: Op, key: ConnectionKey) -> (Header, Vec<u8>) {
        let (header, payload) = self.next_packet();
        assert_eq!(
            (header.op, header.src_port, header.dst_port),
            (op as u16, key.local_port, key.peer_port),
            "{header:?}"
        );
        (header, payload)
    }

    fn connection_count(&self) -> usize {
        self.device.lock().unwrap().muxer.connection_count()
    }

    /// A guest connection from `guest_port` to the host listener at
    /// `host_port`; returns the accepted host end.
    fn connect_to_host(&mut self, listener: &UnixListener, key: ConnectionKey) -> UnixStream {
        self.send(from_guest(key, Op::Request), &[]);
        let (response, _) = self.expect(Op::Response, key);
        assert_eq!(response.buf_alloc, BUFFER_SIZE);
        let (host, _) = listener.accept().unwrap();
        host
    }

    /// A host program's connection to `guest_port`, accepted by the guest.
    fn connect_from_host(&mut self, guest_port: u32) -> (UnixStream, ConnectionKey) {
        let mut client = UnixStream::connect(&self.path).unwrap();
        client
            .write_all(format!("CONNECT {guest_port}\n").as_bytes())
            .unwrap();
        self.pump();
        let (request, _) = self.next_packet();
        assert_eq!(request.op, Op::Request as u16);
        assert_eq!(request.dst_port, guest_port);
        let key = ConnectionKey {
            local_port: request.src_port,
            peer_port: guest_port,
        };
        self.send(from_guest(key, Op::Response), &[]);
        let line = read_host(self, &mut client, format!("OK {}\n", key.local_port).len());
        assert_eq!(line, format!("OK {}\n", key.local_port).as_bytes());
        (client, key)
    }
}

fn used_ring(queue: &MockSplitQueue<GuestMemoryMmap>) -> GuestAddress {
    queue.desc_table_addr().unchecked_add(USED_RING_OFFSET)
}

/// The queue as the driver configured it.
fn driver_queue(mock: &MockSplitQueue<GuestMemoryMmap>) -> Queue {
    let mut queue: Queue = mock.create_queue().unwrap();
    let used = used_ring(mock).raw_value();
    queue.set_used_ring_address(Some(used as u32), Some((used >> 32) as u32));
    queue
}

/// Puts a chain in the descriptor table from `first` on and makes it
/// available, wrapping around the ring as a driver does.
fn offer(
    mem: &GuestMemoryMmap,
    queue: &MockSplitQueue<GuestMemoryMmap>,
    descriptors: &[RawDescriptor],
    first: u16,
) {
    for (index, descriptor) in (first..).zip(descriptors) {
        queue.desc_table().store(index, *descriptor).unwrap();
    }
    let avail = queue.avail_addr();
    let idx: u16 = mem.read_obj(avail.unchecked_add(2)).unwrap();
    mem.write_obj(
        first,
        avail.unchecked_add(4 + u64::from(idx % QUEUE_SIZE) * 2),
    )
    .unwrap();
    mem.write_obj(idx.wrapping_add(1), avail.unchecked_add(2))
        .unwrap();
}

fn from_guest(key: ConnectionKey, op: Op) -> Header {
    Header {
        src_cid: GUEST_CID,
        dst_cid: HOST_CID,
        src_port: key.peer_port,
        dst_port: key.local_port,
        len: 0,
        socket_type: TYPE_STREAM,
        op: op as u16,
        flags: 0,
        buf_alloc: GUEST_BUFFER,
        fwd_cnt: 0,
    }
}

fn data(key: ConnectionKey, len: usize) -> Header {
    Header {
        len: len as u32,
        ..from_guest(key, Op::Rw)
    }
}

fn shutdown(key: ConnectionKey, flags: u32) -> Header {
    Header {
        flags,
        ..from_guest(key, Op::Shutdown)
    }
}

/// Reads `len` bytes from a host socket, running the device meanwhile.
fn read_host(guest: &mut Guest, stream: &mut UnixStream, len: usize) -> Vec<u8> {
    stream.set_nonblocking(true).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    let mut buffer = vec![0u8; 256 * 1024];
    while got.len() < len {
        assert!(
            Instant::now() < deadline,
            "timed out after {} bytes",
            got.len()
        );
        guest.pump();
        let want = (len - got.len()).min(buffer.len());
        match stream.read(&mut buffer[..want]) {
            Ok(0) => panic!("end of file after {} bytes", got.len()),
            Ok(count) => got.extend_from_slice(&buffer[..count]),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => panic!("{error}"),
        }
    }
    got
}

/// Whether the device closed its end of a host socket: end of file, or a
/// reset if it closed with our bytes unread.
fn at_eof(guest: &mut Guest, stream: &mut UnixStream) -> bool {
    guest.pump();
    stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Err(error) => error.kind() == io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    }
}

fn host_listener(guest: &Guest, port: u32) -> UnixListener {
    UnixListener::bind(port_path(&guest.path, port)).unwrap()
}

const GUEST_TO_52: ConnectionKey = ConnectionKey {
    local_port: 52,
    peer_port: 1000,
};

#[test]
fn the_device_describes_itself() {
    let mem = memory();
    let guest = Guest::new(&mem);
    let device = guest.device.lock().unwrap();
    assert_eq!(device.device_type(), TYPE_VSOCK);
    assert_eq!(device.queue_max_sizes(), &[256, 256, 256]);
    assert_eq!(device.device_features(), VIRTIO_F_VERSION_1);
    let mut config = [0u8; 8];
    device.read_config(0, &mut config);
    assert_eq!(u64::from_le_bytes(config), GUEST_CID);
    let mut high = [0xffu8; 4];
    device.read_config(4, &mut high);
    assert_eq!(high, [0; 4]);
}

#[test]
fn reserved_cids_and_bad_paths_are_refused() {
    let dir = TempDir::new_with_prefix("/tmp/husk-vsock").unwrap();
    let path = dir.as_path().join("v.sock");
    let events = || std::array::from_fn(|_| EventFd::new(libc::EFD_NONBLOCK).unwrap());
    for cid in [0, 1, 2, u64::from(u32::MAX), 1 << 32] {
        assert!(matches!(
            Vsock::new(cid, &path, events()),
            Err(VsockError::InvalidCid(_))
        ));
    }
    let missing = Path::new("/nonexistent/husk/v.sock");
    let error = Vsock::new(GUEST_CID, missing, events()).err().unwrap();
    assert!(error.to_string().contains("/nonexistent/husk/v.sock"));
    let device = Vsock::new(7, &path, events()).unwrap();
    assert_eq!(device.guest_cid(), 7);
    assert_eq!(device.uds_path(), path);
}

#[test]
fn guest_connects_to_a_host_port_and_data_flows_both_ways() {
    let mem = memory();
    let mut guest = Guest::started(&mem);
    let listener = host_listener(&guest, 52);
    let mut host = guest.connect_to_host(&listener, GUEST_TO_52);

    guest.send(data(GUEST_TO_52, 5), b"hello");
    assert_eq!(read_host(&mut guest, &mut host, 5), b"hello");

    host.write_all(b"world").unwrap();
    guest.pump();
    let (header, payload) = guest.expect(Op::Rw, GUEST_TO_52);
    assert_eq!(payload, b"world");
    assert_eq!(header.buf_alloc, BUFFER_SIZE);
    assert_eq!(header.fwd_cnt, 5, "our count of the guest's bytes");
    assert!(guest.interrupts.0.load(Ordering::SeqCst) > 0);
    guest.expect_silence();
}

#[test]
fn guest_connection_to_a_port_nobody_listens_on_is_reset() {
    let mem = memory();
    let mut guest = Guest::started(&mem);
    guest.send(from_guest(GUEST_TO_52, Op::Request), &[]);
    guest.expect(Op::Rst, GUEST_TO_52);
    assert_eq!(guest.connection_count(), 0);
    // Packets for streams that don't exist get an RST too; an RST doesn't.
    guest.send(data(GUEST_TO_52, 1), b"x");
    guest.expect(Op::Rst, GUEST_TO_52);
    guest.send(from_guest(GUEST_TO_52, Op::Rst), &[]);
    guest.expect_silence();
}

#[test]
fn host_connects_with_the_handshake_and_data_flows_both_ways() {
    let mem = memory();
    let mut guest = Guest::started(&mem);
    let (mut client, key) = guest.connect_from_host(52);
    assert!(key.local_port >= 1 << 30);

    client.write_all(b"ping").unwrap();
    guest.pump();
    let (_, payload) = guest.expect(Op::Rw, key);
    assert_eq!(payload, b"ping");
    guest.send(data(key, 4), b"pong");
    assert_eq!(read_host(&mut guest, &mut client, 4), b"pong");

    // Two programs get two host ports.
    let (_second, second_key) = guest.connect_from_host(52);
    assert_ne!(second_key.local_port, key.local_port);
}

#[test]
fn data_sent_right_after_the_handshake_line_is_kept() {
    let mem = memory();
    let mut guest = Guest::started(&mem);
    let mut client = UnixStream::connect(&guest.path).unwrap();
    client.write_all(b"CONNECT 7\nearly").unwrap();
    guest.pump();
    let (request, _) = guest.next_packet();
    let key = ConnectionKey {
        local_port: request.src_port,
        peer_port: 7,
    };
    guest.send(from_guest(key, Op::Response), &[]);
    let (_, payload) = guest.expect(Op::Rw, key);
    assert_eq!(payload, b"early");
}

#[test]
fn host_connect_before_the_driver_starts_waits_for_it() {
    let mem = memory();
    let mut guest = Guest::new(&mem);
    let mut client = UnixStream::connect(&guest.path).unwrap();
    client.write_all(b"CONNECT 52\n").unwrap();
    guest.pump();
    guest.activate();
    let (request, _) = guest.next_packet();
    assert_eq!((request.op, request.dst_port), (Op::Request as u16, 52));
}

#[test]
fn host_connect_refused_by_the_guest_closes_the_stream() {
    let mem = memory();
    let mut guest = Guest::started(&mem);
    let mut client = UnixStream::connect(&guest.path).unwrap();
    client.write_all(b"CONNECT 52\n").unwrap();
    guest.pump();
    let (request, _) = guest.next_packet();
    let key = ConnectionKey {
        local_port: request.src_port,
        peer_port: 52,
    };
    guest.send(from_guest(key, Op::Rst), &[]);
    assert!(at_eof(&mut guest, &mut client));
    assert_eq!(guest.connection_count(), 0);
    guest.expect_silence();
}

#[test]
fn bad_handshakes_are_closed() {
    let mem = memory();
    let mut guest = Guest::started(&mem);
    for line in [&b"HELLO\n"[..], b"CONNECT x\n", &[b'C'; 100]] {
        let mut client = UnixStream::connect(&guest.path).unwrap();
        client.write_all(line).unwrap();
        assert!(at_eof(&mut guest, &mut client), "{line:?}");
    }
    let client = UnixStream::connect(&guest.path).unwrap();
    drop(client);
    guest.pump();
    guest.expect_silence();
    assert_eq!(guest.connection_count(), 0);
}

#[test]
fn host_close_reaches_the_guest_as_shutdown_then_guest_close_resets() {
    let mem = memory();
    let mut guest = Guest::started(&mem);
    let listener = host_listener(&guest, 52);
    let mut host = guest.connect_to_host(&listener, GUEST_TO_52);

    host.write_all(b"last words").unwrap();
    host.shutdown(Shutdown::Write).unwrap();
    guest.pump();
    let (_, payload) = guest.expect(Op::Rw, GUEST_TO_52);
    assert_eq!(payload, b"last words");
    let (header, _) = guest.expect(Op::Shutdown, GUEST_TO_52);
    assert_eq!(header.flags, SHUTDOWN_SEND);

    // Half-closed: the guest can still send.
    guest.send(data(GUEST_TO_52, 3), b"ack");
    assert_eq!(read_host(&mut guest, &mut host, 3), b"ack");

    // The guest closes too: the device ends the stream with RST.
    guest.send(shutdown(GUEST_TO_52, SHUTDOWN_RCV | SHUTDOWN_SEND), &[]);
    guest.expect(Op::Rst, GUEST_TO_52);
    assert!(at_eof(&mut guest, &mut host));
    assert_eq!(guest.connection_count(), 0);
}

#[test]
fn guest_half_close_then_host_close_ends_the_stream() {
    let mem = memory();
    let mut guest = Guest::started(&mem);
    let listener = host_listener(&guest, 52);
    let mut host = guest.connect_to_host(&listener, GUEST_TO_52);

    guest.send(data(GUEST_TO_52, 4), b"done");
    guest.send(shutdown(GUEST_TO_52, SHUTDOWN_SEND), &[]);
    assert_eq!(read_host(&mut guest, &mut host, 4), b"done");
    assert!(
        at_eof(&mut guest, &mut host),
        "the host reader sees the end"
    );

    host.write_all(b"reply").unwrap();
    guest.pump();
    let (_, payload) = guest.expect(Op::Rw, GUEST_TO_52);
    assert_eq!(payload, b"reply");
    drop(host);
    guest.pump();
    guest.expect(Op::Rst, GUEST_TO_52);
    assert_eq!(guest.connection_count(), 0);
}

#[test]
fn guest_reset_closes_the_host_socket() {
    let mem = memory();
    let mut guest = Guest::started(&mem);
    let listener = host_listener(&guest, 52);
    let mut host = guest.connect_to_host(&listener, GUEST_TO_52);
    guest.send(from_guest(GUEST_TO_52, Op::Rst), &[]);
    assert!(at_eof(&mut guest, &mut host));
    assert_eq!(guest.connection_count(), 0);
    guest.expect_silence();
}

#[test]
fn host_hang_up_with_guest_data_pending_resets_the_guest() {
    let mem = memory();
    let mut guest = Guest::started(&mem);
    let listener = host_listener(&guest, 52);
    let host = guest.connect_to_host(&listener, GUEST_TO_52);
    drop(host);
    guest.send(data(GUEST_TO_52, 3), b"abc");
    guest.collect();
    // End of file, then a reset for the data nobody will read, or straight
    // to the reset: either way the stream ends with RST.
    let (last, _) = loop {
        let packet = guest.next_packet();
        if packet.0.op != Op::Shutdown as u16 {
            break packet;
        }
    };
    assert_eq!(last.op, Op::Rst as u16);
    assert_eq!(guest.connection_count(), 0);
}

#[test]
fn host_data_never_exceeds_the_guest_credit() {
    let mem = memory();
    let mut guest = Guest::started(&mem);
    let listener = host_listener(&guest, 52);
    let small = 10_000;
    guest.send(
        Header {
            buf_alloc: small,
            ..from_guest(GUEST_TO_52, Op::Request)
        },
        &[],
    );
    guest.expect(Op::Response, GUEST_TO_52);
    let (mut host, _) = listener.accept().unwrap();
    host.set_nonblocking(true).unwrap();
    let sent: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
    let mut written = host.write(&sent).unwrap();

    let mut received = Vec::new();
    let mut guest_forwarded = 0u32;
    let deadline = Instant::now() + TIMEOUT;
    while received.len() < sent.len() {
        assert!(Instant::now() < deadline);
        if written < sent.len() {
            written += host.write(&sent[written..]).unwrap_or(0);
        }
        // Plenty of buffers: only credit limits the device.
        guest.top_up_rx(16);
        guest.collect();
        while let Some((header, payload)) = guest.inbox.pop_front() {
            assert_eq!(header.op, Op::Rw as u16);
            received.extend_from_slice(&payload);
            let in_flight = received.len() as u32 - guest_forwarded;
            assert!(in_flight <= small, "{in_flight} bytes beyond credit");
        }
        // The guest app reads half of what is in flight, now and then.
        let in_flight = received.len() as u32 - guest_forwarded;
        if in_flight == small {
            guest_forwarded += small / 2;
            guest.send(
                Header {
                    buf_alloc: small,
                    fwd_cnt: guest_forwarded,
                    ..from_guest(GUEST_TO_52, Op::CreditUpdate)
                },
                &[],
            );
        }
    }
    assert_eq!(received, sent);
}

#[test]
fn guest_data_for_a_slow_host_reader_is_held_within_credit() {
    let mem = memory();
    let mut guest = Guest::started(&mem);
    let listener = host_listener(&guest, 52);
    let mut host = guest.connect_to_host(&listener, GUEST_TO_52);

    // The guest sends as much as the device's credit allows, as a driver
    // must; the host reader is slow.
    let total = 4 * BUFFER_SIZE as usize;
    let message: Vec<u8> = (0..total).map(|i| (i * 7) as u8).collect();
    let mut sent = 0usize;
    let mut peer_buffer = BUFFER_SIZE;
    let mut peer_forwarded = 0u32;
    let mut received = Vec::new();
    let mut most_held = 0;
    let deadline = Instant::now() + TIMEOUT;
    host.set_nonblocking(true).unwrap();
    while received.len() < total {
        assert!(Instant::now() < deadline, "stalled at {}", received.len());
        let credit = peer_buffer - (sent as u32 - peer_forwarded);
        let chunk = (credit as usize)
            .min(MAX_PAYLOAD as usize)
            .min(total - sent);
        if chunk > 0 {
            guest.send(data(GUEST_TO_52, chunk), &message[sent..sent + chunk]);
            sent += chunk;
        }
        // The host reads a little at a time.
        let mut buffer = [0u8; 16 * 1024];
        if let Ok(count) = host.read(&mut buffer) {
            received.extend_from_slice(&buffer[..count]);
        }
        guest.pump();
        guest.top_up_rx(2);
        guest.collect();
        while let Some((header, _)) = guest.inbox.pop_front() {
            assert_eq!(header.op, Op::CreditUpdate as u16, "{header:?}");
            peer_buffer = header.buf_alloc;
            peer_forwarded = header.fwd_cnt;
        }
        let held = guest
            .device
            .lock()
            .unwrap()
            .muxer
            .connection(GUEST_TO_52)
            .map(|connection| connection.buffered())
            .unwrap();
        assert!(held <= BUFFER_SIZE as usize);
        most_held = most_held.max(held);
    }
    assert_eq!(received, message);
    assert!(
        most_held > 0,
        "the reader was slow enough for the device to hold data"
    );
}

#[test]
fn guest_data_beyond_credit_resets_the_stream() {
    let mem = memory();
    let mut guest = Guest::started(&mem);
    let listener = host_listener(&guest, 52);
    let _host = guest.connect_to_host(&listener, GUEST_TO_52);
    let chunk = vec![0u8; MAX_PAYLOAD as usize];
    // Nobody reads and the guest ignores credit: the host holds at most
    // BUFFER_SIZE, then gives up on the stream.
    for _ in 0..(2 * BUFFER_SIZE / MAX_PAYLOAD + 8) {
        if guest.connection_count() == 0 {
            break;
        }
        guest.send(data(GUEST_TO_52, chunk.len()), &chunk);
    }
    assert_eq!(guest.connection_count(), 0);
    guest.collect();
    let (last, _) = loop {
        let packet = guest.next_packet();
        if packet.0.op != Op::CreditUpdate as u16 {
            break packet;
        }
    };
    assert_eq!(last.op, Op::Rst as u16);
}

#[test]
fn credit_requests_are_answered() {
    let mem = memory();
    let mut guest = Guest::started(&mem);
    let listener = host_listener(&guest, 52);
    let _host = guest.connect_to_host(&listener, GUEST_TO_52);
    guest.send(data(GUEST_TO_52, 3), b"abc");
    guest.send(from_guest(GUEST_TO_52, Op::CreditRequest), &[]);
    let (update, _) = guest.expect(Op::CreditUpdate, GUEST_TO_52);
    assert_eq!((update.buf_alloc, update.fwd_cnt), (BUFFER_SIZE, 3));
}

#[test]
fn many_streams_keep_their_own_data() {
    let mem = memory();
    let mut guest = Guest::started(&mem);
    let listener = host_listener(&guest, 52);
    let count = 64u32;
    let mut hosts = Vec::new();
    for port in 0..count {
        let key = ConnectionKey {
            local_port: 52,
            peer_port: 2000 + port,
        };
        hosts.push((key, guest.connect_to_host(&listener, key)));
    }
    assert_eq!(guest.connection_count(), count as usize);
    for (key, _) in &hosts {
        let message = format!("stream {}", key.peer_port);
        guest.send(data(*key, message.len()), message.as_bytes());
    }
    for (key, host) in &mut hosts {
        let message = format!("stream {}", key.peer_port);
        assert_eq!(
            read_host(&mut guest, host, message.len()),
            message.as_bytes()
        );
        host.write_all(message.as_bytes()).unwrap();
    }
    guest.pump();
    let mut replies = HashMap::new();
    for _ in 0..count {
        let (header, payload) = guest.next_packet();
        assert_eq!(header.op, Op::Rw as u16);
        replies.insert(header.dst_port, payload);
    }
    for (key, _) in &hosts {
        assert_eq!(
            replies[&key.peer_port],
            format!("stream {}", key.peer_port).as_bytes()
        );
    }
}

#[test]
fn the_connection_table_is_bounded() {
    let mem = memory();
    let mut guest = Guest::started(&mem);
    let listener = host_listener(&guest, 52);
    let mut hosts = Vec::new();
    for port in 0..MAX_CONNECTIONS as u32 {
        let key = ConnectionKey {
            local_port: 52,
            peer_port: 10_000 + port,
        };
        guest.send(from_guest(key, Op::Request), &[]);
        guest.collect();
        if guest.inbox.len() > 8 {
            guest.inbox.clear();
        }
        if guest.free_rx.len() < 8 {
            guest.give_rx_buffers(4, RX_BUFFER_LEN);
            guest.collect();
            guest.inbox.clear();
        }
        if let Ok((host, _)) = listener.accept() {
            hosts.push(host);
        }
    }
    guest.give_rx_buffers(32, RX_BUFFER_LEN);
    guest.collect();
    guest.inbox.clear();
    assert_eq!(guest.connection_count(), MAX_CONNECTIONS);
    let one_more = ConnectionKey {
        local_port: 52,
        peer_port: 9,
    };
    guest.send(from_guest(one_more, Op::Request), &[]);
    guest.expect(Op::Rst, one_more);
}

#[test]
fn malformed_packets_are_dropped_and_reset_their_stream() {
    let mem = memory();
    let mut guest = Guest::started(&mem);
    let listener = host_listener(&guest, 52);
    let mut host = guest.connect_to_host(&listener, GUEST_TO_52);

    // A short header, buffers outside memory, a device-writable header, a
    // wrong CID: dropped, no reply, the stream untouched.
    guest.send_chain(&[desc(TX_HEADER, 20, 0, 0)]);
    guest.send_chain(&[desc(0xffff_0000, HEADER_SIZE as u32, 0, 0)]);
    guest
        .mem
        .write_slice(&data(GUEST_TO_52, 0).encode(), GuestAddress(TX_HEADER))
        .unwrap();
    guest.send_chain(&[desc(TX_HEADER, HEADER_SIZE as u32, WRITE, 0)]);
    guest.send(
        Header {
            src_cid: 9,
            ..data(GUEST_TO_52, 1)
        },
        b"x",
    );
    guest.expect_silence();
    assert_eq!(guest.connection_count(), 1);

    // A payload shorter than announced: the stream can't go on.
    guest
        .mem
        .write_slice(&data(GUEST_TO_52, 100).encode(), GuestAddress(TX_HEADER))
        .unwrap();
    guest.send_chain(&[
        desc(TX_HEADER, HEADER_SIZE as u32, NEXT, 1),
        desc(TX_PAYLOAD, 10, 0, 0),
    ]);
    guest.expect(Op::Rst, GUEST_TO_52);
    assert!(at_eof(&mut guest, &mut host));

    // An oversized one for no stream: dropped.
    guest
        .mem
        .write_slice(
            &data(GUEST_TO_52, MAX_PAYLOAD as usize + 1).encode(),
            GuestAddress(TX_HEADER),
        )
        .unwrap();
    guest.send_chain(&[desc(TX_HEADER, HEADER_SIZE as u32, 0, 0)]);
    guest.expect_silence();
}

#[test]
fn packets_split_anywhere_across_buffers_are_read_whole() {
    let mem = memory();
    let mut guest = Guest::started(&mem);
    let listener = host_listener(&guest, 52);
    let mut host = guest.connect_to_host(&listener, GUEST_TO_52);
    // Header and payload back to back, cut in three: inside the header,
    // and inside the payload.
    let mut bytes = data(GUEST_TO_52, 6).encode().to_vec();
    bytes.extend_from_slice(b"spread");
    mem.write_slice(&bytes, GuestAddress(TX_HEADER)).unwrap();
    guest.send_chain(&[
        desc(TX_HEADER, 10, NEXT, 1),
        desc(TX_HEADER + 10, 37, NEXT, 2),
        desc(TX_HEADER + 47, 3, 0, 0),
    ]);
    assert_eq!(read_host(&mut guest, &mut host, 6), b"spread");
}

#[test]
fn tiny_receive_buffers_are_returned_empty() {
    let mem = memory();
    let mut guest = Guest::started(&mem);
    guest.send(from_guest(GUEST_TO_52, Op::Request), &[]);
    guest.give_rx_buffers(1, 10);
    let used: u16 = guest.used_idx(&guest.rx);
    assert_eq!(used, 1);
    let len: u32 = mem.read_obj(used_ring(&guest.rx).unchecked_add(8)).unwrap();
    assert_eq!(len, 0);
    guest.rx_seen = 1;
    guest.free_rx.push_back(0);
    guest.expect(Op::Rst, GUEST_TO_52);
}

#[test]
fn a_driver_reset_closes_every_stream() {
    let mem = memory();
    let mut guest = Guest::started(&mem);
    let listener = host_listener(&guest, 52);
    let mut host = guest.connect_to_host(&listener, GUEST_TO_52);
    let (mut client, _) = guest.connect_from_host(80);
    assert!(guest.device.lock().unwrap().reset());
    assert!(at_eof(&mut guest, &mut host));
    assert!(at_eof(&mut guest, &mut client));
    assert_eq!(guest.connection_count(), 0);

    // The listener still takes host programs, for the next driver.
    let mut next = UnixStream::connect(&guest.path).unwrap();
    next.write_all(b"CONNECT 80\n").unwrap();
    guest.pump();
    assert!(!at_eof(&mut guest, &mut next));
}

#[test]
fn the_socket_file_goes_with_the_device() {
    let mem = memory();
    let guest = Guest::started(&mem);
    let path = guest.path.clone();
    assert!(path.exists());
    let Guest {
        device, event_loop, ..
    } = guest;
    drop(event_loop);
    drop(device);
    assert!(!path.exists());
}

// A hostile or broken driver: it floods streams, never takes what it is
// sent, or hands the device rings and chains no real driver would. The
// device must stay bounded in memory, never spin (`pump` fails on a busy
// loop), and keep serving its other streams.

const INDIRECT: u16 = 4; // VRING_DESC_F_INDIRECT

impl Guest<'_> {
    /// The driver resets the device and starts it again on fresh rings, as
    /// Linux does after a failure (virtio 1.2 §3.1.1).
    fn restart(&mut self) {
        assert!(self.device.lock().unwrap().reset());
        self.pump();
        for queue in [&self.rx, &self.tx] {
            self.mem
                .write_obj(0u16, queue.avail_addr().unchecked_add(2))
                .unwrap();
            self.mem
                .write_obj(0u16, used_ring(queue).unchecked_add(2))
                .unwrap();
        }
        self.free_rx = (0..QUEUE_SIZE).collect();
        self.rx_seen = 0;
        self.tx_seen = 0;
        self.inbox.clear();
        self.activate();
    }

    /// Guest data the device holds for the host socket of `key`.
    fn held_for(&self, key: ConnectionKey) -> usize {
        self.device
            .lock()
            .unwrap()
            .muxer
            .connection(key)
            .map_or(0, |connection| connection.buffered())
    }

    /// Moves the available index of `queue` `by` entries on, without any
    /// chain behind them.
    fn advance_avail_index(&self, queue: &MockSplitQueue<GuestMemoryMmap>, by: u16) {
        let index = queue.avail_addr().unchecked_add(2);
        let idx: u16 = self.mem.read_obj(index).unwrap();
        self.mem.write_obj(idx.wrapping_add(by), index).unwrap();
    }
}

/// Writes to a non-blocking host socket, running the device between
/// writes, until the socket takes nothing more with the device idle: the
/// bytes it took. Fails if it takes far more than socket buffers hold,
/// which means someone (the device) keeps reading what the guest never
/// receives.
fn write_until_blocked(guest: &mut Guest, host: &mut UnixStream) -> usize {
    const NEVER_BLOCKS: usize = 64 << 20;
    host.set_nonblocking(true).unwrap();
    let chunk = vec![0x5au8; 64 * 1024];
    let mut written = 0;
    loop {
        guest.pump();
        match host.write(&chunk) {
            Ok(count) => written += count,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return written,
            Err(error) => panic!("host write: {error}"),
        }
        assert!(
            written < NEVER_BLOCKS,
            "the host socket never filled: something takes data the guest does not"
        );
    }
}

#[test]
fn a_guest_without_receive_buffers_cannot_grow_the_receive_round() {
    let mem = memory();
    let mut guest = Guest::started(&mem);
    let listener = host_listener(&guest, 52);
    listener.set_nonblocking(true).unwrap();
    // Each REQUEST owes the guest a RESPONSE it has no buffer for; the RST
    // right after ends the stream before the answer goes out.
    let cycles = 4 * MAX_CONNECTIONS;
    for _ in 0..cycles {
        guest.send(from_guest(GUEST_TO_52, Op::Request), &[]);
        guest.send(from_guest(GUEST_TO_52, Op::Rst), &[]);
        while let Ok((host, _)) = listener.accept() {
            drop(host);
        }
    }
    assert_eq!(guest.connection_count(), 0);
    let round = guest.device.lock().unwrap().muxer.rx_round_len();
    assert_eq!(
        round, 0,
        "{round} ended streams wait for receive buffers after {cycles} cycles"
    );
    guest.expect_silence();
}

#[test]
fn host_data_for_a_guest_that_never_takes_it_stays_in_the_host_socket() {
    let mem = memory();
    let mut guest = Guest::started(&mem);
    let listener = host_listener(&guest, 52);
    let mut host = guest.connect_to_host(&listener, GUEST_TO_52);

    // No receive buffers at all: the device reads nothing, so the host
    // writer is held back by its own socket.
    let first = write_until_blocked(&mut guest, &mut host);
    guest.collect();
    assert!(guest.inbox.is_empty(), "{:?}", guest.inbox);

    // Buffers, but the guest never acknowledges what it got: it receives
    // exactly its advertised buffer, then nothing more.
    let mut received = 0usize;
    loop {
        guest.top_up_rx(16);
        guest.collect();
        if guest.inbox.is_empty() {
            break;
        }
        while let Some((header, payload)) = guest.inbox.pop_front() {
            assert_eq!(header.op, Op::Rw as u16, "{header:?}");
            received += payload.len();
        }
    }
    assert_eq!(received, GUEST_BUFFER as usize);
    let second = write_until_blocked(&mut guest, &mut host);
    assert!(
        second <= GUEST_BUFFER as usize,
        "the device made room for {second} bytes though the guest took {received}"
    );
    guest.expect_silence();
    assert!(first + second > received, "the host socket held the rest");

    // The guest finally consumes what it got: data flows again.
    guest.send(
        Header {
            fwd_cnt: GUEST_BUFFER,
            ..from_guest(GUEST_TO_52, Op::CreditUpdate)
        },
        &[],
    );
    guest.expect(Op::Rw, GUEST_TO_52);
}

#[test]
fn a_flood_on_many_streams_is_held_within_each_stream_s_credit() {
    /// The guest's view of one stream's credit (§5.10.6.3).
    struct Sender {
        key: ConnectionKey,
        peer_buffer: u32,
        peer_forwarded: u32,
        sent: u32,
    }
    impl Sender {
        fn room(&self) -> u32 {
            self.peer_buffer - self.sent.wrapping_sub(self.peer_forwarded)
        }
    }

    const STREAMS: u32 = 32;
    let mem = memory();
    let mut guest = Guest::started(&mem);
    let listener = host_listener(&guest, 52);
    // The host programs accept and never read.
    let mut hosts = Vec::new();
    let mut senders = Vec::new();
    for index in 0..STREAMS {
        let key = ConnectionKey {
            local_port: 52,
            peer_port: 3000 + index,
        };
        hosts.push(guest.connect_to_host(&listener, key));
        senders.push(Sender {
            key,
            peer_buffer: BUFFER_SIZE,
            peer_forwarded: 0,
            sent: 0,
        });
    }

    // Every stream sends as fast as its credit allows, until none can.
    let chunk = vec![0xa5u8; MAX_PAYLOAD as usize];
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds < 1000, "the flood never ran out of credit");
        let mut progress = false;
        for sender in &mut senders {
            let len = sender.room().min(MAX_PAYLOAD) as usize;
            if len > 0 {
                guest.send(data(sender.key, len), &chunk[..len]);
                sender.sent = sender.sent.wrapping_add(len as u32);
                progress = true;
            }
        }
        guest.top_up_rx(16);
        guest.collect();
        while let Some((header, _)) = guest.inbox.pop_front() {
            // Credit updates only: a guest within its credit is never reset.
            assert_eq!(header.op, Op::CreditUpdate as u16, "{header:?}");
            let sender = senders
                .iter_mut()
                .find(|sender| sender.key.peer_port == header.dst_port)
                .expect("an update for a flooding stream");
            sender.peer_buffer = header.buf_alloc;
            sender.peer_forwarded = header.fwd_cnt;
            progress = true;
        }
        for sender in &senders {
            assert!(guest.held_for(sender.key) <= BUFFER_SIZE as usize);
        }
        if !progress {
            break;
        }
    }

    assert_eq!(guest.connection_count(), STREAMS as usize);
    let held = guest.device.lock().unwrap().muxer.buffered_total();
    assert!(
        held <= (STREAMS * BUFFER_SIZE) as usize,
        "{held} bytes held for {STREAMS} streams"
    );
    for sender in &senders {
        assert_eq!(
            sender.room(),
            0,
            "stream {} still has credit",
            sender.key.peer_port
        );
        assert!(
            guest.held_for(sender.key) > 0,
            "the flood on stream {} reached the device's buffer",
            sender.key.peer_port
        );
    }

    // One host reader wakes up: its stream drains whole and its guest hears
    // of the room, while the others stay held.
    let first = &senders[0];
    let drained = read_host(&mut guest, &mut hosts[0], first.sent as usize);
    assert!(drained.iter().all(|&byte| byte == 0xa5));
    assert_eq!(guest.held_for(first.key), 0);
    // The update went into a buffer the flood left posted, as soon as a
    // threshold's worth reached the host reader.
    guest.collect();
    let (update, _) = guest.inbox.pop_back().expect("a credit update");
    assert_eq!(
        (update.op, update.dst_port),
        (Op::CreditUpdate as u16, first.key.peer_port)
    );
    assert!(first.sent.wrapping_sub(update.fwd_cnt) < CREDIT_UPDATE_THRESHOLD);
    assert!(guest.held_for(senders[1].key) > 0);
}

#[test]
fn looping_descriptor_chains_are_cut_short_and_given_back() {
    let mem = memory();
    let mut guest = Guest::started(&mem);
    let listener = host_listener(&guest, 52);
    let mut host = guest.connect_to_host(&listener, GUEST_TO_52);

    // A header that names itself as its next descriptor: the chain only ends
    // where the queue size cuts it, and then holds more bytes than the
    // header announces. The stream can't be trusted any more.
    mem.write_slice(
        &from_guest(GUEST_TO_52, Op::CreditRequest).encode(),
        GuestAddress(TX_HEADER),
    )
    .unwrap();
    guest.send_chain(&[desc(TX_HEADER, HEADER_SIZE as u32, NEXT, 0)]);
    guest.expect(Op::Rst, GUEST_TO_52);
    assert!(at_eof(&mut guest, &mut host));

    // Header and payload pointing at each other.
    let mut host = guest.connect_to_host(&listener, GUEST_TO_52);
    mem.write_slice(&data(GUEST_TO_52, 4).encode(), GuestAddress(TX_HEADER))
        .unwrap();
    mem.write_slice(b"loop", GuestAddress(TX_PAYLOAD)).unwrap();
    guest.send_chain(&[
        desc(TX_HEADER, HEADER_SIZE as u32, NEXT, 1),
        desc(TX_PAYLOAD, 4, NEXT, 0),
    ]);
    guest.expect(Op::Rst, GUEST_TO_52);
    assert!(at_eof(&mut guest, &mut host));

    // A loop inside an indirect table (not offered, followed anyway by the
    // queue library): cut at the table's length.
    let table = 0x90_0000u64;
    for index in 0..4u16 {
        let entry = desc(TX_HEADER, HEADER_SIZE as u32, NEXT, (index + 1) % 4);
        mem.write_obj(entry, GuestAddress(table + u64::from(index) * 16))
            .unwrap();
    }
    guest.send_chain(&[desc(table, 4 * 16, INDIRECT, 0)]);
    guest.expect_silence();
    assert_eq!(guest.connection_count(), 0);

    // A receive chain that loops over one small buffer: the packet is
    // written (over itself) and the chain comes back used.
    let (mut established, key) = guest.connect_from_host(80);
    let mut client = UnixStream::connect(&guest.path).unwrap();
    client.write_all(b"CONNECT 81\n").unwrap();
    guest.pump();
    let index = guest.free_rx.pop_front().unwrap();
    let buffer = RX_BUFFERS + u64::from(index) * RX_SLOT;
    offer(
        &mem,
        &guest.rx,
        &[desc(buffer, 16, WRITE | NEXT, index)],
        index,
    );
    guest.rx_notifier.write(1).unwrap();
    guest.pump();
    let entry = used_ring(&guest.rx).unchecked_add(4 + u64::from(guest.rx_seen % QUEUE_SIZE) * 8);
    let used_id: u32 = mem.read_obj(entry).unwrap();
    let used_len: u32 = mem.read_obj(entry.unchecked_add(4)).unwrap();
    assert_eq!((used_id, used_len), (u32::from(index), HEADER_SIZE as u32));
    guest.rx_seen = guest.rx_seen.wrapping_add(1);
    guest.free_rx.push_back(index);
    // The device goes on as before on the stream it already had.
    guest.send(data(key, 2), b"ok");
    assert_eq!(read_host(&mut guest, &mut established, 2), b"ok");
    guest.expect_silence();
}

#[test]
fn an_available_index_beyond_the_ring_stops_the_queue_until_a_reset() {
    let mem = memory();
    let mut guest = Guest::started(&mem);

    // The driver claims more chains than either ring holds. The device
    // takes nothing from them and does not spin on them.
    guest.advance_avail_index(&guest.tx, QUEUE_SIZE + 1);
    guest.tx_notifier.write(1).unwrap();
    guest.pump();
    assert_eq!(guest.used_idx(&guest.tx), guest.tx_seen, "nothing taken");

    guest.advance_avail_index(&guest.rx, QUEUE_SIZE + 1);
    let mut client = UnixStream::connect(&guest.path).unwrap();
    client.write_all(b"CONNECT 52\n").unwrap();
    guest.pump();
    guest.rx_notifier.write(1).unwrap();
    guest.pump();
    assert_eq!(guest.used_idx(&guest.rx), 0, "nothing written");
    assert!(!at_eof(&mut guest, &mut client), "the host program waits");

    // A reset drops the stream that never got through; the device works
    // again on the driver's fresh rings.
    guest.restart();
    assert!(at_eof(&mut guest, &mut client));
    let (mut client, key) = guest.connect_from_host(52);
    guest.send(data(key, 4), b"back");
    assert_eq!(read_host(&mut guest, &mut client, 4), b"back");
}
