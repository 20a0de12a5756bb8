//! husk-bench-vsock: virtio-vsock stream performance seen from the host,
//! husk-vmm (its Unix-socket host end, `CONNECT <port>`) against QEMU's
//! microvm with a vhost-vsock-device (an AF_VSOCK socket to CID 3), same
//! kernel and initramfs, same KVM, alternating runs. The guest runs
//! husk-init's `vsock-echo` selftest, which echoes every stream on port 5000.
//! Per run: echo throughput (a writer and a reader thread on one stream, the
//! echoed bytes checked against what was sent) and the round-trip latency of
//! 1-byte ping-pongs. Prints medians and husk/QEMU ratios; writes `vsock.csv`
//! and one SVG per metric.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use husk_benches::stats::Summary;
use husk_benches::{kvm_can_boot, report_comparison, require_files, QEMU_MACHINE};

const USAGE: &str = "\
Usage: husk-bench-vsock --kernel VMLINUX --initrd INITRAMFS [OPTIONS]

Options:
  --runs N          runs per VMM [default: 3]
  --mib N           MiB echoed through one stream per run [default: 32]
  --vmm PATH        husk-vmm binary [default: next to this program]
  --qemu PATH       QEMU binary [default: qemu-system-x86_64]
  --out DIR         where vsock.csv and the SVGs go [default: target/bench]
Needs a KVM that can boot a guest and, for QEMU, the host's vhost_vsock
module (/dev/vhost-vsock): run it through tests/testhost/run here, e.g.
  HUSK_TESTHOST_MODULES=vhost_vsock tests/testhost/run -- husk-bench-vsock ...
";

const METRICS: [(&str, &str); 3] = [
    ("echo_mib_s", "echo throughput, MiB/s"),
    ("rtt_median_us", "1-byte round trip, median us"),
    ("rtt_p99_us", "1-byte round trip, p99 us"),
];
const GUEST_PORT: u32 = 5000;
const GUEST_CID: u32 = 3;
const READY_LINE: &str = "husk-init selftest vsock-echo ok listening";
const PING_PONGS: usize = 2000;
const WARMUP_PING_PONGS: usize = 20;
const CHUNK: usize = 64 * 1024;
/// Boot until the echo server listens (the nested test host is slow).
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);
/// Any single read, write or connect on a stream.
const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// How long husk-vmm gets to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

struct Options {
    runs: usize,
    mib: usize,
    kernel: PathBuf,
    initrd: PathBuf,
    vmm: PathBuf,
    qemu: PathBuf,
    out: PathBuf,
}

fn parse_options() -> Result<Options, String> {
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_owned))
        .unwrap_or_default();
    let mut options = Options {
        runs: 3,
        mib: 32,
        kernel: PathBuf::new(),
        initrd: PathBuf::new(),
        vmm: exe_dir.join("husk-vmm"),
        qemu: PathBuf::from("qemu-system-x86_64"),
        out: PathBuf::from("target/bench"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--runs" => options.runs = value()?.parse().map_err(|_| "--runs: expected a number")?,
            "--mib" => options.mib = value()?.parse().map_err(|_| "--mib: expected a number")?,
            "--kernel" => options.kernel = value()?.into(),
            "--initrd" => options.initrd = value()?.into(),
            "--vmm" => options.vmm = value()?.into(),
            "--qemu" => options.qemu = value()?.into(),
            "--out" => options.out = value()?.into(),
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    require_files(&[
        ("--kernel", &options.kernel),
        ("--initrd", &options.initrd),
        ("--vmm", &options.vmm),
    ])?;
    if options.runs == 0 || options.mib == 0 {
        return Err("--runs and --mib must be at least 1".into());
    }
    Ok(options)
}

fn cmdline() -> String {
    "console=ttyS0 reboot=k panic=-1 husk.exit=hold husk.selftest=vsock-echo".to_owned()
}

/// A running VMM: its console lines arrive on `lines`; dropping it stops it
/// (SIGTERM then SIGKILL for husk-vmm, SIGKILL for QEMU).
struct Vm {
    name: &'static str,
    child: Child,
    graceful: bool,
    lines: Receiver<String>,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
    stopped: bool,
}

impl Vm {
    fn start(name: &'static str, mut command: Command, graceful: bool) -> Result<Self, String> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .map_err(|e| format!("start {command:?}: {e}"))?;
        let (sender, lines) = mpsc::channel();
        let stdout = child.stdout.take().map(|out| {
            thread::spawn(move || {
                let mut all = String::new();
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    all.push_str(&line);
                    all.push('\n');
                    let _ = sender.send(line);
                }
                all
            })
        });
        let stderr = child.stderr.take().map(|mut err| {
            thread::spawn(move || {
                let mut bytes = Vec::new();
                let _ = err.read_to_end(&mut bytes);
                String::from_utf8_lossy(&bytes).into_owned()
            })
        });
        Ok(Self {
            name,
            child,
            graceful,
            lines,
            stdout,
            stderr,
            stopped: false,
        })
    }

    /// Waits until the guest's echo server listens.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + BOOT_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(READY_LINE) => return Ok(()),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    return Err(self.failure(&format!(
                        "the guest's echo server did not report listening within {BOOT_TIMEOUT:?}"
                    )))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(self.failure("the VMM ended before the echo server listened"))
                }
            }
        }
    }

    /// Stops the VMM and returns what it printed.
    fn stop(&mut self) -> (String, String) {
        if !self.stopped {
            self.stopped = true;
            if self.graceful && matches!(self.child.try_wait(), Ok(None)) {
                if let Ok(pid) = i32::try_from(self.child.id()) {
                    // SAFETY: kill() only sends a signal; `pid` is our own
                    // child, not yet reaped, so the id cannot be reused.
                    unsafe { libc::kill(pid, libc::SIGTERM) };
                }
                let deadline = Instant::now() + STOP_TIMEOUT;
                while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                    thread::sleep(Duration::from_millis(20));
                }
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let join = |handle: Option<JoinHandle<String>>| {
            handle.and_then(|h| h.join().ok()).unwrap_or_default()
        };
        (join(self.stdout.take()), join(self.stderr.take()))
    }

    /// Stops the VMM and describes `what` went wrong with its last output.
    fn failure(&mut self, what: &str) -> String {
        let (stdout, stderr) = self.stop();
        format!(
            "{}: {what}\n--- console (tail) ---\n{}\n--- stderr (tail) ---\n{}",
            self.name,
            tail(&stdout),
            tail(&stderr)
        )
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.stop();
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

fn os_error(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Bounds every blocking read and write on the socket `fd`.
fn set_timeouts(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: libc::suseconds_t::from(timeout.subsec_micros()),
    };
    for option in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
        // SAFETY: `fd` is an open socket; `tv` is a valid timeval that
        // outlives the call and its size is passed along.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&raw const tv).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(os_error("setsockopt"));
        }
    }
    Ok(())
}

/// An AF_VSOCK stream to `cid`:`port` (QEMU's vhost-vsock guest).
fn vsock_connect(cid: u32, port: u32) -> io::Result<File> {
    // SAFETY: socket() takes no pointers; the result is checked below.
    let raw = unsafe { libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(os_error("socket(AF_VSOCK)"));
    }
    // SAFETY: `raw` is a freshly created descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    set_timeouts(fd.as_fd(), IO_TIMEOUT)?;
    // SAFETY: sockaddr_vm is plain old data; all zeroes is a valid value.
    let mut addr: libc::sockaddr_vm = unsafe { std::mem::zeroed() };
    addr.svm_family = libc::AF_VSOCK as libc::sa_family_t;
    addr.svm_cid = cid;
    addr.svm_port = port;
    // SAFETY: `addr` is an initialized sockaddr_vm that outlives the call,
    // and its exact size is passed along.
    let rc = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&raw const addr).cast(),
            std::mem::size_of::<libc::sockaddr_vm>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(os_error(&format!("connect to vsock {cid}:{port}")));
    }
    Ok(File::from(fd))
}

/// A stream to the guest port through husk-vmm's Unix socket: `CONNECT`,
/// then the `OK <port>` line read byte by byte so no stream data is lost.
fn husk_connect(socket: &Path, port: u32) -> io::Result<File> {
    let stream = UnixStream::connect(socket)
        .map_err(|e| io::Error::new(e.kind(), format!("connect {}: {e}", socket.display())))?;
    let mut stream = File::from(OwnedFd::from(stream));
    set_timeouts(stream.as_fd(), IO_TIMEOUT)?;
    stream.write_all(format!("CONNECT {port}\n").as_bytes())?;
    let mut line = Vec::new();
    let mut byte = [0u8];
    while byte[0] != b'\n' {
        stream.read_exact(&mut byte)?;
        line.push(byte[0]);
        if line.len() > 64 {
            break;
        }
    }
    if !line.starts_with(b"OK ") {
        return Err(io::Error::other(format!(
            "husk-vmm answered {:?} to CONNECT {port}",
            String::from_utf8_lossy(&line)
        )));
    }
    Ok(stream)
}

/// 64-bit FNV-1a, continued from `hash`.
fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}
const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// Sends `total` bytes while a second thread reads the echo back; returns
/// MiB/s over the time until the last byte came back.
fn echo_throughput(stream: File, total: usize) -> Result<f64, String> {
    let mut reader = stream.try_clone().map_err(|e| format!("dup stream: {e}"))?;
    let mut writer = stream;
    let mut block = vec![0u8; CHUNK];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for word in block.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        word.copy_from_slice(&state.to_le_bytes()[..word.len()]);
    }
    let start = Instant::now();
    let receiving = thread::spawn(move || -> io::Result<(u64, Instant)> {
        let mut buffer = vec![0u8; CHUNK];
        let (mut received, mut hash) = (0usize, FNV_START);
        while received < total {
            let want = buffer.len().min(total - received);
            let n = reader.read(&mut buffer[..want])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("echo ended after {received} of {total} bytes"),
                ));
            }
            hash = fnv(hash, &buffer[..n]);
            received += n;
        }
        Ok((hash, Instant::now()))
    });
    let (mut sent, mut sent_hash) = (0usize, FNV_START);
    let mut send_error = None;
    while sent < total {
        // Rotate the block so every chunk differs from the previous one.
        let n = CHUNK.min(total - sent);
        block.rotate_left(1 + sent / CHUNK % 7);
        if let Err(e) = writer.write_all(&block[..n]) {
            send_error = Some(e);
            break;
        }
        sent_hash = fnv(sent_hash, &block[..n]);
        sent += n;
    }
    if let Some(e) = send_error {
        // Unblock the reader rather than wait out its timeout.
        // SAFETY: shutdown() only changes the socket's state; the fd is open.
        unsafe { libc::shutdown(writer.as_raw_fd(), libc::SHUT_RDWR) };
        let _ = receiving.join();
        return Err(format!("send after {sent} bytes: {e}"));
    }
    let (echo_hash, end) = receiving
        .join()
        .map_err(|_| "the reader thread panicked".to_owned())?
        .map_err(|e| format!("receive echo: {e}"))?;
    if echo_hash != sent_hash {
        return Err(format!(
            "echoed bytes differ from the sent ones (FNV {echo_hash:#x} vs {sent_hash:#x})"
        ));
    }
    let seconds = (end - start).as_secs_f64();
    Ok(total as f64 / f64::from(1u32 << 20) / seconds)
}

/// 1-byte ping-pongs on one stream: (median, p99) round trip in µs.
fn round_trips(mut stream: File) -> Result<(f64, f64), String> {
    let mut samples = Vec::with_capacity(PING_PONGS);
    let mut byte = [0u8];
    for i in 0..WARMUP_PING_PONGS + PING_PONGS {
        let ping = [i as u8];
        let start = Instant::now();
        stream
            .write_all(&ping)
            .and_then(|()| stream.read_exact(&mut byte))
            .map_err(|e| format!("ping-pong {i}: {e}"))?;
        let elapsed = start.elapsed();
        if byte != ping {
            return Err(format!("ping-pong {i}: sent {ping:?}, got {byte:?}"));
        }
        if i >= WARMUP_PING_PONGS {
            samples.push(elapsed.as_secs_f64() * 1e6);
        }
    }
    samples.sort_by(f64::total_cmp);
    let median = Summary::of(&samples).map_or(f64::NAN, |s| s.median);
    let p99 = samples[((samples.len() - 1) as f64 * 0.99).round() as usize];
    Ok((median, p99))
}

/// Boots `vm`'s guest, measures both metrics over fresh streams from
/// `connect`, and stops the VMM.
fn measure(
    mut vm: Vm,
    connect: &dyn Fn() -> io::Result<File>,
    options: &Options,
) -> Result<Vec<f64>, String> {
    vm.wait_ready()?;
    let result = (|| -> Result<Vec<f64>, String> {
        let stream = connect().map_err(|e| format!("open the throughput stream: {e}"))?;
        let mib_s = echo_throughput(stream, options.mib << 20)?;
        let stream = connect().map_err(|e| format!("open the latency stream: {e}"))?;
        let (median, p99) = round_trips(stream)?;
        Ok(vec![mib_s, median, p99])
    })();
    match result {
        Ok(values) => {
            vm.stop();
            Ok(values)
        }
        Err(what) => Err(vm.failure(&what)),
    }
}

fn husk_run(options: &Options, dir: &Path) -> Result<Vec<f64>, String> {
    let socket = dir.join("v.sock");
    let mut command = Command::new(&options.vmm);
    command
        .arg("--kernel")
        .arg(&options.kernel)
        .arg("--initrd")
        .arg(&options.initrd)
        .args(["--memory-mib", "256", "--serial", "stdout"])
        .arg("--vsock")
        .arg(&socket)
        .args(["--cmdline", &cmdline()]);
    let vm = Vm::start("husk-vmm", command, true)?;
    measure(vm, &|| husk_connect(&socket, GUEST_PORT), options)
}

fn qemu_run(options: &Options) -> Result<Vec<f64>, String> {
    let mut command = Command::new(&options.qemu);
    command
        .args(QEMU_MACHINE)
        .args(["-m", "256", "-smp", "1", "-no-reboot"]);
    command.args([
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-serial",
        "stdio",
    ]);
    command
        .arg("-kernel")
        .arg(&options.kernel)
        .arg("-initrd")
        .arg(&options.initrd);
    command.args(["-append", &cmdline()]);
    command.args([
        "-device",
        &format!("vhost-vsock-device,guest-cid={GUEST_CID}"),
    ]);
    let vm = Vm::start("qemu", command, false)?;
    measure(vm, &|| vsock_connect(GUEST_CID, GUEST_PORT), options)
}

/// A private directory for husk-vmm's socket, removed when dropped.
struct SocketDir(PathBuf);

impl SocketDir {
    fn new(run: usize) -> Result<Self, String> {
        let path =
            std::env::temp_dir().join(format!("husk-bench-vsock-{}-{run}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).map_err(|e| format!("create {}: {e}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn run(options: &Options) -> Result<(), String> {
    if !kvm_can_boot() {
        return Err("this host's KVM cannot boot a guest: run through tests/testhost/run".into());
    }
    if !Path::new("/dev/vhost-vsock").exists() {
        return Err(
            "/dev/vhost-vsock is missing, so QEMU's vhost-vsock-device cannot run: \
             load the vhost_vsock module (through the test host: \
             HUSK_TESTHOST_MODULES=vhost_vsock tests/testhost/run -- ...)"
                .into(),
        );
    }
    fs::create_dir_all(&options.out)
        .map_err(|e| format!("create {}: {e}", options.out.display()))?;
    println!(
        "husk-bench-vsock: {} runs, {} MiB echoed, {PING_PONGS} 1-byte round trips, \
         256 MiB guest, 1 vCPU",
        options.runs, options.mib
    );

    let (mut husk, mut qemu): (Vec<Vec<f64>>, Vec<Vec<f64>>) = (Vec::new(), Vec::new());
    for run in 0..options.runs {
        let dir = SocketDir::new(run)?;
        husk.push(husk_run(options, &dir.0)?);
        drop(dir);
        qemu.push(qemu_run(options)?);
        eprintln!(
            "run {}/{}: husk {:.1?}, qemu {:.1?}",
            run + 1,
            options.runs,
            husk[run],
            qemu[run]
        );
    }

    report_comparison(
        "vsock",
        "virtio-vsock",
        &METRICS,
        &husk,
        &qemu,
        &options.out,
    )?;
    Ok(())
}

fn main() {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("husk-bench-vsock: {message}");
            std::process::exit(2);
        }
    };
    if let Err(message) = run(&options) {
        eprintln!("husk-bench-vsock: {message}");
        std::process::exit(1);
    }
}
