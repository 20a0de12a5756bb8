//! Hostile guests: husk-init's selftests misbehave on purpose (they flood
//! vsock streams nobody reads, or never read what the host sends), and
//! these tests check from the host that husk-vmm stays responsive, keeps
//! its own memory within the vsock device's buffers, and holds host
//! programs back instead of buffering for the guest. Runs on a KVM that
//! can boot a guest (tests/run-all runs it inside the nested test host
//! where needed).
//!
//! Garbage in the virtio-mmio registers is not written from inside a
//! guest: the guest kernel has no /dev/mem (CONFIG_DEVMEM is off, and
//! turning it on would widen every production guest for one test). The
//! transport's unit tests write garbage of every width at every register
//! offset of each device instead (vmm/src/devices/virtio/mmio.rs), and the
//! `mmio_transport` fuzz target drives it with arbitrary access sequences.

use std::fs::{self, File};
use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use husk_protocol::selftest::{
    VSOCK_ECHO_PORT, VSOCK_FLOOD_PORT, VSOCK_FLOOD_STREAMS, VSOCK_NO_ACK_PORT,
};
use husk_tests::vm::{connect_guest_port, vmm_overhead_kib};
use husk_tests::{
    cmdline, path_str as path, require_bootable_kvm, wait_for_console, wait_with_deadline,
    Artifacts, Scratch, BOOT_TIMEOUT,
};

/// Guest RAM; small, since none of these guests needs much.
const MEMORY_MIB: u64 = 128;
/// The most husk-vmm holds of one stream's guest data for a host program
/// that does not read: the vsock device's per-stream buffer (BUFFER_SIZE in
/// vmm/src/devices/virtio/vsock/connection.rs), which is also all the
/// credit it gives the guest.
const STREAM_BUFFER_KIB: u64 = 256;
/// Room for the allocator beyond the buffers themselves: a buffer that
/// grows by doubling may take twice its length, freed memory is not always
/// given back at once, and the echo streams and the event loop allocate a
/// little of their own.
const ALLOCATOR_SLACK_KIB: u64 = 8 << 10;
/// The flood runs at least this long, and until the host sockets are full.
const FLOOD_HOLD: Duration = Duration::from_secs(5);
/// With no progress for this long, the flood has filled every buffer, or
/// a host writer is held back.
const STALL: Duration = Duration::from_secs(3);
/// An echo on another stream must come back within this while the guest
/// misbehaves. Generous, because the nested test host emulates the guest;
/// an event loop stuck on the flood would not answer at all.
const RESPONSIVE_WITHIN: Duration = Duration::from_secs(30);
/// More than a host program can write into a stream whose guest never
/// reads: the guest's credit (Linux gives 256 KiB) and the Unix socket's
/// buffers. A VMM that buffered for the guest would take it all.
const BACKPRESSURE_LIMIT: usize = 16 << 20;

/// husk-vmm running a misbehaving guest, its console in a file. Killed on
/// drop if still running.
struct HostileVm {
    vmm: Child,
    initramfs: PathBuf,
    uds: PathBuf,
    console: PathBuf,
    stderr: PathBuf,
}

impl HostileVm {
    /// Boots a guest (2 vCPUs, MEMORY_MIB) with a vsock device whose socket
    /// is `uds`, `kernel_args` added to the command line.
    fn boot(scratch: &Scratch, uds: &Path, kernel_args: &str) -> HostileVm {
        require_bootable_kvm();
        let artifacts = Artifacts::get();
        let console = scratch.file("console.log");
        let stderr = scratch.file("husk-vmm.stderr");
        let vmm = Command::new(&artifacts.vmm)
            .args(["--kernel", path(&artifacts.vmlinux)])
            .args(["--initrd", path(&artifacts.initramfs)])
            .args(["--vsock", path(uds), "--serial", path(&console)])
            .args(["--vcpus", "2", "--memory-mib", &MEMORY_MIB.to_string()])
            .args(["--cmdline", &cmdline(kernel_args)])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&stderr).expect("create the stderr file"))
            .spawn()
            .expect("start husk-vmm");
        HostileVm {
            vmm,
            initramfs: artifacts.initramfs,
            uds: uds.to_owned(),
            console,
            stderr,
        }
    }

    fn console(&self) -> String {
        fs::read_to_string(&self.console).unwrap_or_default()
    }

    /// The console and husk-vmm's messages, for failures.
    fn report(&self) -> String {
        format!(
            "husk-vmm stderr:\n{}\nconsole:\n{}",
            fs::read_to_string(&self.stderr).unwrap_or_default(),
            self.console()
        )
    }

    /// Fails the test if husk-vmm has exited.
    fn assert_running(&mut self, during: &str) {
        if let Some(status) = self.vmm.try_wait().expect("wait for husk-vmm") {
            panic!(
                "husk-vmm exited ({status}) during {during}\n{}",
                self.report()
            );
        }
    }

    /// The line selftest `name` printed on the console.
    fn selftest_line(&self, name: &str) -> String {
        let prefix = format!("husk-init selftest {name} ");
        self.console()
            .lines()
            .map(|line| line.trim_end_matches('\r'))
            .find(|line| line.starts_with(&prefix))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no {name} selftest line\n{}", self.report()))
    }

    /// Ends husk-vmm with SIGTERM, as a caller does, and returns its exit
    /// code.
    fn terminate(&mut self) -> Option<i32> {
        // SAFETY: kill(2) on our own child, which is not reaped yet.
        unsafe { libc::kill(self.vmm.id() as libc::pid_t, libc::SIGTERM) };
        wait_with_deadline(&mut self.vmm, BOOT_TIMEOUT).and_then(|status| status.code())
    }
}

impl Drop for HostileVm {
    fn drop(&mut self) {
        let _ = self.vmm.kill();
        let _ = self.vmm.wait();
    }
}

/// The least and the most husk-vmm held of its own memory (outside guest
/// RAM) over the samples taken.
#[derive(Default)]
struct Footprint {
    least_kib: Option<u64>,
    most_kib: Option<u64>,
}

impl Footprint {
    fn sample(&mut self, vm: &HostileVm) {
        if let Some(kib) = vmm_overhead_kib(vm.vmm.id(), &vm.initramfs, MEMORY_MIB) {
            self.least_kib = Some(self.least_kib.map_or(kib, |least| least.min(kib)));
            self.most_kib = Some(self.most_kib.map_or(kib, |most| most.max(kib)));
        }
    }

    /// How much it grew; fails the test when nothing was measured.
    fn growth_kib(&self, vm: &HostileVm) -> u64 {
        match (self.least_kib, self.most_kib) {
            (Some(least), Some(most)) => most - least,
            _ => panic!(
                "husk-vmm's memory was never measured: no mapping of {} in /proc/{}/smaps",
                vm.initramfs.display(),
                vm.vmm.id()
            ),
        }
    }
}

/// Bytes waiting unread in a socket's receive queue (SIOCINQ, unix(7)).
fn unread_bytes(stream: &UnixStream) -> usize {
    let mut count: libc::c_int = 0;
    // SAFETY: SIOCINQ (FIONREAD) writes one int through the pointer, which
    // points at `count` for the whole call; the descriptor is ours.
    let result = unsafe { libc::ioctl(stream.as_raw_fd(), libc::FIONREAD, &mut count) };
    assert_eq!(result, 0, "SIOCINQ: {}", std::io::Error::last_os_error());
    count as usize
}

/// Sends 64 KiB through the guest's echo server on a stream of its own
/// and checks they come back unchanged; returns how long that took.
fn echo_round_trip(vm: &HostileVm) -> Duration {
    let started = Instant::now();
    let stream = connect_guest_port(&vm.uds, VSOCK_ECHO_PORT, RESPONSIVE_WITHIN);
    let data: Vec<u8> = (0..64 << 10).map(husk_protocol::pattern_byte).collect();
    let mut writer = stream.try_clone().unwrap();
    let sent = data.clone();
    let sender = thread::spawn(move || {
        writer.write_all(&sent)?;
        writer.shutdown(Shutdown::Write)
    });
    let mut echoed = Vec::new();
    if let Err(error) = (&stream).read_to_end(&mut echoed) {
        panic!("the echo did not come back: {error}\n{}", vm.report());
    }
    sender
        .join()
        .unwrap()
        .unwrap_or_else(|error| panic!("send to the echo server: {error}\n{}", vm.report()));
    assert!(
        echoed == data,
        "the echo came back changed ({} of {} bytes)",
        echoed.len(),
        data.len()
    );
    started.elapsed()
}

#[test]
fn a_guest_flooding_streams_nobody_reads_leaves_the_vmm_responsive_and_bounded() {
    let scratch = Scratch::new("hostile-flood");
    let uds = scratch.file("vsock");
    let listener = UnixListener::bind(format!("{}_{VSOCK_FLOOD_PORT}", path(&uds))).unwrap();
    listener.set_nonblocking(true).unwrap();
    let mut vm = HostileVm::boot(
        &scratch,
        &uds,
        "husk.exit=0 husk.selftest=vsock-echo,vsock-flood",
    );
    let mut footprint = Footprint::default();

    // The guest opens its streams once it is up; they are accepted and
    // never read.
    let mut flood = Vec::new();
    let deadline = Instant::now() + BOOT_TIMEOUT;
    while flood.len() < VSOCK_FLOOD_STREAMS as usize {
        match listener.accept() {
            Ok((stream, _)) => flood.push(stream),
            Err(error) if error.kind() == ErrorKind::WouldBlock => {
                vm.assert_running("the boot");
                assert!(
                    Instant::now() < deadline,
                    "the guest opened {} of {VSOCK_FLOOD_STREAMS} flood streams within \
                     {BOOT_TIMEOUT:?}\n{}",
                    flood.len(),
                    vm.report()
                );
                // Measured from when the guest is up: the VMM's threads and
                // devices are all there by then.
                if vm.console().contains(husk_protocol::READY_LINE_PREFIX) {
                    footprint.sample(&vm);
                }
                thread::sleep(Duration::from_millis(10));
            }
            Err(error) => panic!("accept a flood stream: {error}"),
        }
    }

    // Flood until every buffer on the way is full: the host sockets stop
    // filling, the device holds what the guest may still send, the guest's
    // writers wait for credit.
    let flood_started = Instant::now();
    let mut unread = 0;
    let mut last_change = Instant::now();
    while flood_started.elapsed() < FLOOD_HOLD || last_change.elapsed() < STALL {
        vm.assert_running("the flood");
        footprint.sample(&vm);
        let now_unread: usize = flood.iter().map(unread_bytes).sum();
        if now_unread != unread {
            unread = now_unread;
            last_change = Instant::now();
        }
        assert!(
            flood_started.elapsed() < BOOT_TIMEOUT,
            "the host sockets were still filling after {BOOT_TIMEOUT:?}\n{}",
            vm.report()
        );
        thread::sleep(Duration::from_millis(100));
    }
    assert!(
        unread > 0,
        "no flood data reached the host\n{}",
        vm.report()
    );

    // With every buffer full, another stream is still served promptly.
    let echo = echo_round_trip(&vm);
    assert!(
        echo < RESPONSIVE_WITHIN,
        "an echo took {echo:?} during the flood\n{}",
        vm.report()
    );
    footprint.sample(&vm);

    // Closing the streams ends the guest's writers; it reports, and the
    // VM ends.
    drop(flood);
    let status = wait_with_deadline(&mut vm.vmm, BOOT_TIMEOUT);
    assert_eq!(
        status.and_then(|status| status.code()),
        Some(0),
        "husk-vmm did not end cleanly\n{}",
        vm.report()
    );
    let line = vm.selftest_line("vsock-flood");
    let prefix = format!("husk-init selftest vsock-flood ok streams={VSOCK_FLOOD_STREAMS} bytes=");
    let written: usize = line
        .strip_prefix(&prefix)
        .and_then(|bytes| bytes.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(
        written >= unread,
        "the guest wrote {written} bytes, the host got {unread}"
    );

    let growth = footprint.growth_kib(&vm);
    let bound = u64::from(VSOCK_FLOOD_STREAMS) * 2 * STREAM_BUFFER_KIB + ALLOCATOR_SLACK_KIB;
    assert!(
        growth <= bound,
        "husk-vmm's own memory grew by {growth} KiB during the flood; its buffers allow \
         {bound} KiB"
    );
}

#[test]
fn a_guest_that_never_reads_holds_the_host_writer_back_instead_of_the_vmm_buffering() {
    let scratch = Scratch::new("hostile-no-ack");
    let uds = scratch.file("vsock");
    let mut vm = HostileVm::boot(
        &scratch,
        &uds,
        "husk.exit=hold husk.selftest=vsock-echo,vsock-no-ack",
    );
    let listening =
        format!("husk-init selftest vsock-no-ack ok listening port={VSOCK_NO_ACK_PORT}");
    let console = wait_for_console(
        &mut vm.vmm,
        &vm.console,
        "the guest's never-reading server",
        |text| text.contains(&listening) || text.contains("vsock-no-ack failed"),
    );
    assert!(console.contains(&listening), "{}", vm.report());
    let mut footprint = Footprint::default();
    footprint.sample(&vm);

    // Write until the stream takes nothing more for a while: the guest's
    // credit is used up and the socket is full.
    let mut stream = connect_guest_port(&uds, VSOCK_NO_ACK_PORT, RESPONSIVE_WITHIN);
    stream.set_nonblocking(true).unwrap();
    let chunk = vec![0x5au8; 64 << 10];
    let mut written = 0usize;
    let mut last_progress = Instant::now();
    while last_progress.elapsed() < STALL {
        match stream.write(&chunk) {
            Ok(count) => {
                written += count;
                last_progress = Instant::now();
            }
            Err(error) if error.kind() == ErrorKind::WouldBlock => {
                vm.assert_running("the writes");
                footprint.sample(&vm);
                thread::sleep(Duration::from_millis(50));
            }
            Err(error) => panic!("write to the never-reading guest: {error}\n{}", vm.report()),
        }
        assert!(
            written <= BACKPRESSURE_LIMIT,
            "a guest that reads nothing took {written} bytes without the writer being held \
             back: husk-vmm is buffering them\n{}",
            vm.report()
        );
    }
    assert!(written > 0, "the stream took nothing\n{}", vm.report());

    // The VMM still serves everything else: the echo answers, and the
    // never-reading server takes one more stream.
    let echo = echo_round_trip(&vm);
    assert!(
        echo < RESPONSIVE_WITHIN,
        "an echo took {echo:?} while a stream was stalled\n{}",
        vm.report()
    );
    let _second = connect_guest_port(&uds, VSOCK_NO_ACK_PORT, RESPONSIVE_WITHIN);
    footprint.sample(&vm);

    // Host data for the guest is read straight into the guest's buffers, a
    // packet at a time: none of it stays in husk-vmm.
    let growth = footprint.growth_kib(&vm);
    assert!(
        growth <= ALLOCATOR_SLACK_KIB,
        "husk-vmm's own memory grew by {growth} KiB while the guest read nothing"
    );
    vm.assert_running("the stalled stream");
    assert_eq!(
        vm.terminate(),
        Some(143),
        "husk-vmm ends on SIGTERM\n{}",
        vm.report()
    );
}
