//! husk-vmm's seccomp policies at work: each test runs its body in a child
//! process that confines itself and does what the thread kind does, or
//! something its policy forbids.

mod support;

use std::io::{Read, Write};
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use std::{fs, thread};

use event_manager::{EventManager, MutEventSubscriber, SubscriberOps};
use husk_vmm::devices::bus::BusDevice;
use husk_vmm::devices::virtio::block::Block;
use husk_vmm::devices::virtio::mmio::{
    MmioTransport, STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_DRIVER_OK, STATUS_FEATURES_OK,
};
use husk_vmm::devices::virtio::vsock::Vsock;
use husk_vmm::devices::virtio::{
    Activation, InterruptReason, VirtioDevice, VirtioInterrupt, VIRTIO_F_VERSION_1,
};
use husk_vmm::seccomp::{self, SeccompMode, ThreadKind};
use husk_vmm::timing::{Phase, Timeline};
use husk_vmm::vstate::vcpu::{install_kick_handler, kick_signal};
use husk_vmm::{metrics, os};
use support::{assert_killed_by_seccomp, assert_succeeded, child_scratch, describe, run_in_child};
use virtio_queue::desc::split::Descriptor;
use virtio_queue::desc::RawDescriptor;
use virtio_queue::mock::MockSplitQueue;
use virtio_queue::Queue;
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};
use vmm_sys_util::signal::Killable;
use vmm_sys_util::tempdir::TempDir;

const HUSK_VMM: &str = env!("CARGO_BIN_EXE_husk-vmm");

fn scratch_dir() -> TempDir {
    TempDir::new_with_prefix("/tmp/husk-seccomp-test").expect("a scratch directory")
}

fn confine(kind: ThreadKind, mode: SeccompMode) {
    seccomp::confine_current_thread(kind, mode)
        .unwrap_or_else(|error| panic!("confine the {kind} thread: {error}"));
}

/// Runs the calling test again in a child, in a fresh scratch directory.
fn run_child(test: &str) -> std::process::Output {
    let scratch = scratch_dir();
    run_in_child(test, scratch.as_path().to_str().unwrap(), |_| {})
}

#[test]
fn husk_vmm_refuses_an_unknown_seccomp_mode() {
    let output = Command::new(HUSK_VMM)
        .args(["--kernel", "/nonexistent", "--seccomp", "bogus"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(125), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--seccomp \"bogus\": expected kill, log or off"),
        "{stderr}"
    );

    let help = Command::new(HUSK_VMM).arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("--seccomp kill|log|off"));
}

#[test]
fn a_call_outside_the_vcpu_policy_kills_the_process() {
    if child_scratch().is_some() {
        confine(ThreadKind::Vcpu, SeccompMode::Kill);
        // A vCPU thread opens no socket at all.
        let _ = UdpSocket::bind("127.0.0.1:0");
        eprintln!("still alive after socket(AF_INET)");
        return;
    }
    assert_killed_by_seccomp(&run_child(
        "a_call_outside_the_vcpu_policy_kills_the_process",
    ));
}

#[test]
fn arguments_outside_the_policy_kill_too() {
    if let Some(scratch) = child_scratch() {
        let path = Path::new(&scratch).join("listener");
        let _listener = UnixListener::bind(&path).unwrap();
        confine(ThreadKind::EventLoop, SeccompMode::Kill);
        // The event loop connects Unix sockets (vsock's host side)...
        UnixStream::connect(&path).expect("a Unix socket is allowed");
        eprintln!("unix socket connected");
        // ...and nothing else.
        let _ = UdpSocket::bind("127.0.0.1:0");
        eprintln!("still alive after socket(AF_INET)");
        return;
    }
    let output = run_child("arguments_outside_the_policy_kill_too");
    assert_killed_by_seccomp(&output);
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("unix socket connected"),
        "{}",
        describe(&output)
    );
}

#[test]
fn log_mode_lets_a_forbidden_call_through() {
    if child_scratch().is_some() {
        confine(ThreadKind::Vcpu, SeccompMode::Log);
        UdpSocket::bind("127.0.0.1:0").expect("logged, not refused");
        return;
    }
    assert_succeeded(&run_child("log_mode_lets_a_forbidden_call_through"));
}

/// A thread started by a confined thread and narrowed to its own policy is
/// held to that policy, in the mode its parent was confined with.
#[test]
fn a_narrowed_thread_is_held_to_its_own_policy() {
    if let Some(scratch) = child_scratch() {
        let path = Path::new(&scratch).join("listener");
        let _listener = UnixListener::bind(&path).unwrap();
        confine(ThreadKind::EventLoop, SeccompMode::Kill);
        let mode = seccomp::current_thread_mode();
        assert_eq!(mode, SeccompMode::Kill);
        let worker = thread::Builder::new()
            .name("husk-blk-io0".into())
            .spawn(move || {
                seccomp::narrow_current_thread(ThreadKind::BlockWorker, mode);
                eprintln!("narrowed");
                // The event loop may connect Unix sockets, a block worker
                // may not.
                let _ = UnixStream::connect(&path);
                eprintln!("still alive after connecting");
            })
            .unwrap();
        let _ = worker.join();
        return;
    }
    let output = run_child("a_narrowed_thread_is_held_to_its_own_policy");
    assert_killed_by_seccomp(&output);
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("narrowed"),
        "{}",
        describe(&output)
    );
}

/// A driver's walk through a virtio-mmio device's registers (virtio 1.2
/// §3.1.1, §4.2.3): negotiation, queue setup, DRIVER_OK (the device
/// activates), a configuration read, and a reset.
fn drive_mmio_device(transport: &mut MmioTransport, queues: u32) {
    // Register offsets (§4.2.2).
    const DRIVER_FEATURES: u64 = 0x020;
    const DRIVER_FEATURES_SEL: u64 = 0x024;
    const QUEUE_SEL: u64 = 0x030;
    const QUEUE_NUM: u64 = 0x038;
    const QUEUE_READY: u64 = 0x044;
    const QUEUE_DESC_LOW: u64 = 0x080;
    const QUEUE_DRIVER_LOW: u64 = 0x090;
    const QUEUE_DEVICE_LOW: u64 = 0x0a0;
    const STATUS: u64 = 0x070;
    const CONFIG: u64 = 0x100;
    let mut write = |offset, value: u32| {
        transport.write(offset, &value.to_le_bytes());
    };
    write(STATUS, STATUS_ACKNOWLEDGE);
    write(STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    write(DRIVER_FEATURES_SEL, 1);
    write(DRIVER_FEATURES, 1); // VIRTIO_F_VERSION_1
    let negotiated = STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK;
    write(STATUS, negotiated);
    for queue in 0..queues {
        let base = 0x1_0000 + queue * 0x1_0000;
        write(QUEUE_SEL, queue);
        write(QUEUE_NUM, 16);
        write(QUEUE_DESC_LOW, base);
        write(QUEUE_DRIVER_LOW, base + 0x1000);
        write(QUEUE_DEVICE_LOW, base + 0x2000);
        write(QUEUE_READY, 1);
    }
    write(STATUS, negotiated | STATUS_DRIVER_OK);
    let mut status = [0u8; 4];
    transport.read(STATUS, &mut status);
    assert_eq!(
        u32::from_le_bytes(status),
        negotiated | STATUS_DRIVER_OK,
        "activated"
    );
    let mut config = [0u8; 8];
    transport.read(CONFIG, &mut config);
    transport.write(STATUS, &0u32.to_le_bytes());
}

/// What a vCPU thread does besides KVM_RUN (which needs a VM): device
/// emulation (serial output, eventfds, virtio-mmio registers with device
/// activation and reset), the timeline, a virtio-blk reset's wait on the
/// workers' eventfd, reporting its end on a channel, the kick signal, and
/// ending.
#[test]
fn a_vcpu_thread_does_its_work_under_its_policy() {
    if let Some(scratch) = child_scratch() {
        let scratch = Path::new(&scratch);
        // The devices behind their transports, as the builder makes them.
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x100_0000)]).unwrap();
        let image = scratch.join("disk.img");
        fs::write(&image, [0u8; 4096]).unwrap();
        let block = Block::new(&image, false, EventFd::new(EFD_NONBLOCK).unwrap()).unwrap();
        let vsock_queues = [(); 3].map(|()| EventFd::new(EFD_NONBLOCK).unwrap());
        let vsock = Vsock::new(3, &scratch.join("vsock"), vsock_queues).unwrap();
        let mut transports = Vec::new();
        for (device, queues) in [
            (
                Arc::new(Mutex::new(block)) as Arc<Mutex<dyn VirtioDevice>>,
                1,
            ),
            (
                Arc::new(Mutex::new(vsock)) as Arc<Mutex<dyn VirtioDevice>>,
                3,
            ),
        ] {
            let notifiers = (0..queues)
                .map(|_| EventFd::new(EFD_NONBLOCK).unwrap())
                .collect();
            let irqfd = EventFd::new(EFD_NONBLOCK).unwrap();
            let transport = MmioTransport::new(device, mem.clone(), notifiers, irqfd).unwrap();
            transports.push((transport, queues));
        }
        install_kick_handler().unwrap();
        let (mut serial_in, serial_out) = std::io::pipe().unwrap();
        let irqfd = EventFd::new(EFD_NONBLOCK).unwrap();
        let irq_seen = irqfd.try_clone().unwrap();
        let timeline = Arc::new(Timeline::new(Instant::now()));
        let (stops_tx, stops_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let vcpu_timeline = Arc::clone(&timeline);
        // A block device's completion eventfd, made when it was built.
        let finished = EventFd::new(EFD_NONBLOCK).unwrap();
        let vcpu = thread::Builder::new()
            .name("vcpu0".into())
            .spawn(move || {
                confine(ThreadKind::Vcpu, SeccompMode::Kill);
                for (transport, queues) in &mut transports {
                    drive_mmio_device(transport, *queues);
                }
                let mut serial = std::io::LineWriter::new(serial_out);
                serial.write_all(b"[    0.000000] Linux version\n").unwrap();
                irqfd.write(1).unwrap();
                vcpu_timeline.record(Phase::FirstKvmRun);
                // Workers::drain waits like this for in-flight requests.
                finished.write(1).unwrap();
                let epoll = Epoll::new().unwrap();
                epoll
                    .ctl(
                        ControlOperation::Add,
                        finished.as_raw_fd(),
                        EpollEvent::new(EventSet::IN, 0),
                    )
                    .unwrap();
                let mut events = [EpollEvent::default()];
                epoll.wait(-1, &mut events).unwrap();
                assert_eq!(finished.read().unwrap(), 1);
                // Waits here, as in KVM_RUN, until kicked and told to go.
                let _ = go_rx.recv();
                stops_tx.send(format!("vCPU {} stopped", 0)).unwrap();
                // The devices go back to be dropped where husk-vmm drops
                // them: on the main thread, with the VM.
                transports
            })
            .unwrap();
        let mut line = [0u8; 29];
        serial_in.read_exact(&mut line).unwrap();
        assert_eq!(&line, b"[    0.000000] Linux version\n");
        while timeline.get(Phase::FirstKvmRun).is_none() {
            thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(irq_seen.read().unwrap(), 1);
        thread::sleep(Duration::from_millis(20));
        vcpu.kill(kick_signal()).unwrap();
        thread::sleep(Duration::from_millis(20));
        go_tx.send(()).unwrap();
        assert_eq!(stops_rx.recv().unwrap(), "vCPU 0 stopped");
        let transports = vcpu.join().expect("the vCPU thread ends normally");
        drop(transports);
        return;
    }
    assert_succeeded(&run_child("a_vcpu_thread_does_its_work_under_its_policy"));
}

/// Counts interrupts instead of raising them.
#[derive(Default)]
struct CountingInterrupt(AtomicUsize);

impl VirtioInterrupt for CountingInterrupt {
    fn trigger(&self, _reason: InterruptReason) -> std::io::Result<()> {
        self.0.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }
}

// virtio 1.2 §2.7.5 and §5.2.6.
const NEXT: u16 = 1;
const WRITE: u16 = 2;
const VIRTIO_BLK_T_IN: u32 = 0;
const VIRTIO_BLK_T_OUT: u32 = 1;
const VIRTIO_BLK_T_FLUSH: u32 = 4;
const HEADERS: u64 = 0x4000;
const STATUSES: u64 = 0x5000;
const DATA: u64 = 0x10_0000;

/// A block request at descriptor `first`: header, one data buffer of
/// `len` bytes at `data` (none for a flush), status.
fn add_block_request(
    mock: &MockSplitQueue<GuestMemoryMmap>,
    mem: &GuestMemoryMmap,
    first: u16,
    request_type: u32,
    sector: u64,
    data: Option<(u64, u32)>,
) {
    let header = HEADERS + u64::from(first) * 16;
    let mut bytes = [0u8; 16];
    bytes[..4].copy_from_slice(&request_type.to_le_bytes());
    bytes[8..].copy_from_slice(&sector.to_le_bytes());
    mem.write_slice(&bytes, GuestAddress(header)).unwrap();
    let data_flags = if request_type == VIRTIO_BLK_T_IN {
        WRITE
    } else {
        0
    };
    let mut parts = vec![(header, 16, 0)];
    parts.extend(data.map(|(addr, len)| (addr, len, data_flags)));
    parts.push((STATUSES + u64::from(first), 1, WRITE));
    let descriptors: Vec<RawDescriptor> = parts
        .iter()
        .enumerate()
        .map(|(index, &(addr, len, flags))| {
            let last = index + 1 == parts.len();
            let (flags, next) = if last {
                (flags, 0)
            } else {
                (flags | NEXT, first + index as u16 + 1)
            };
            RawDescriptor::from(Descriptor::new(addr, len, flags, next))
        })
        .collect();
    mock.add_desc_chains(&descriptors, first).unwrap();
}

fn used_count(mock: &MockSplitQueue<GuestMemoryMmap>, mem: &GuestMemoryMmap) -> u16 {
    mem.read_obj(mock.used_addr().unchecked_add(2)).unwrap()
}

/// The main thread once the VM runs: the event loop with virtio-blk (whose
/// workers start under it and narrow its filter), vsock's host side, and
/// virtio-rng's entropy; then the teardown: kicking a vCPU thread, the
/// memory report, removing sockets.
#[test]
fn the_event_loop_runs_its_devices_under_its_policy() {
    if let Some(scratch) = child_scratch() {
        let scratch = Path::new(&scratch);
        // Built before the event loop confines itself, as build_vmm does.
        let contents: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
        let image = scratch.join("disk.img");
        fs::write(&image, &contents).unwrap();
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x100_0000)]).unwrap();
        let mock = MockSplitQueue::new(&mem, 32);
        // Six requests at once: the first five go to workers (up to four of
        // them), the last is done on the event loop.
        for (index, first) in [0u16, 3, 6, 9].into_iter().enumerate() {
            let data = DATA + index as u64 * 0x1_0000;
            add_block_request(
                &mock,
                &mem,
                first,
                VIRTIO_BLK_T_IN,
                index as u64 * 8,
                Some((data, 4096)),
            );
        }
        mem.write_slice(&[0xaa; 512], GuestAddress(DATA + 0x8_0000))
            .unwrap();
        add_block_request(
            &mock,
            &mem,
            12,
            VIRTIO_BLK_T_OUT,
            100,
            Some((DATA + 0x8_0000, 512)),
        );
        add_block_request(&mock, &mem, 15, VIRTIO_BLK_T_FLUSH, 0, None);
        let queue_event = EventFd::new(EFD_NONBLOCK).unwrap();
        let mut block = Block::new(&image, false, queue_event.try_clone().unwrap()).unwrap();
        let interrupt = Arc::new(CountingInterrupt::default());
        block
            .activate(Activation {
                mem: mem.clone(),
                queues: vec![mock.create_queue::<Queue>().unwrap()],
                interrupt: interrupt.clone(),
                acked_features: VIRTIO_F_VERSION_1,
            })
            .unwrap();
        let vsock_path = scratch.join("vsock");
        let vsock_queues = [(); 3].map(|()| EventFd::new(EFD_NONBLOCK).unwrap());
        let vsock = Vsock::new(3, &vsock_path, vsock_queues).unwrap();
        let guest_port = UnixListener::bind(scratch.join("vsock_52")).unwrap();
        let stale_file = scratch.join("stale");
        fs::write(&stale_file, b"").unwrap();
        install_kick_handler().unwrap();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let vcpu = thread::Builder::new()
            .name("vcpu0".into())
            .spawn(move || {
                confine(ThreadKind::Vcpu, SeccompMode::Kill);
                let _ = go_rx.recv();
            })
            .unwrap();

        confine(ThreadKind::EventLoop, SeccompMode::Kill);

        let mut event_manager =
            EventManager::<Arc<Mutex<dyn MutEventSubscriber + Send>>>::new().unwrap();
        let block: Arc<Mutex<dyn MutEventSubscriber + Send>> = Arc::new(Mutex::new(block));
        event_manager.add_subscriber(block.clone());
        event_manager.add_subscriber(Arc::new(Mutex::new(vsock)));
        // The guest notifies the queue (KVM signals the ioeventfd).
        queue_event.write(1).unwrap();
        // A host program connects to the vsock socket and asks for a port.
        let mut host_program = UnixStream::connect(&vsock_path).unwrap();
        host_program.write_all(b"CONNECT 52\n").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while used_count(&mock, &mem) < 6 && Instant::now() < deadline {
            event_manager.run_with_timeout(100).unwrap();
        }
        assert_eq!(used_count(&mock, &mem), 6, "every request completed");
        for index in 0..4u64 {
            let mut read = vec![0u8; 4096];
            mem.read_slice(&mut read, GuestAddress(DATA + index * 0x1_0000))
                .unwrap();
            let start = index as usize * 4096;
            assert_eq!(read, contents[start..start + 4096], "request {index}");
        }
        for first in [0u64, 3, 6, 9, 12, 15] {
            let status: u8 = mem.read_obj(GuestAddress(STATUSES + first)).unwrap();
            assert_eq!(status, 0, "request at descriptor {first} succeeded");
        }
        assert!(interrupt.0.load(Ordering::Acquire) > 0);
        // A guest stream connected to a host listener (the muxer's path).
        os::connect_unix_nonblocking(&scratch.join("vsock_52")).unwrap();
        drop(guest_port);
        // virtio-rng.
        let mut entropy = [0u8; 64];
        assert!(os::fill_from_getrandom(&mut entropy));
        // Teardown.
        vcpu.kill(kick_signal()).unwrap();
        thread::sleep(Duration::from_millis(5));
        go_tx.send(()).unwrap();
        vcpu.join().unwrap();
        assert!(
            metrics::memory_usage(&[]).is_some(),
            "read /proc/self/smaps"
        );
        fs::remove_file(&stale_file).unwrap();
        drop(host_program);
        drop(event_manager);
        drop(block);
        assert!(!vsock_path.exists(), "the vsock device removed its socket");
        eprintln!("event loop done");
        return;
    }
    let output = run_child("the_event_loop_runs_its_devices_under_its_policy");
    assert_succeeded(&output);
    assert!(String::from_utf8_lossy(&output.stderr).contains("event loop done"));
}
