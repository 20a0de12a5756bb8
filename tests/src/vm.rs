//! Runs a bundle inside a VM through husk-init's agent: the bundle's rootfs
//! becomes an ext4 image (mkfs.ext4 -d), husk-vmm boots with it as
//! /dev/vda and a vsock device, and the test speaks the control protocol
//! the way the husk CLI does: create, stdio streams, start, wait, shutdown.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use husk_protocol::{
    CreateContainerRequest, ExitStatus, GuestError, ProcessRef, Request, Response, RootfsSource,
    StdioSetup, StreamKind,
};
use husk_vmm::guest_agent::{self, AgentError, GuestAgent};

use crate::bundle::Bundle;
use crate::{cmdline, path_str, wait_with_deadline, Artifacts, Scratch, BOOT_TIMEOUT};

/// What a container run in a VM gave.
#[derive(Debug)]
pub struct VmContainerRun {
    pub stdout: String,
    pub stderr: String,
    /// How the container process ended, or the guest's refusal to create or
    /// start it.
    pub outcome: Result<ExitStatus, GuestError>,
    /// husk-vmm's exit code: the container process's, after a shutdown.
    pub vmm_code: Option<i32>,
    /// The guest's serial console, for failure messages.
    pub console: String,
}

impl VmContainerRun {
    /// The container's stdout; fails the test unless it exited 0.
    pub fn success(self) -> String {
        assert_eq!(
            self.outcome,
            Ok(ExitStatus::Code(0)),
            "the container failed\nstdout:\n{}\nstderr:\n{}\nconsole:\n{}",
            self.stdout,
            self.stderr,
            self.console
        );
        self.stdout
    }

    /// The exit code a shell would show (128+N for a signal), or the
    /// guest's error code for a refused create.
    pub fn code(&self) -> Option<i32> {
        match &self.outcome {
            Ok(status) => Some(status.exit_code()),
            Err(error) => error.exit_code,
        }
    }
}

/// Builds an ext4 image of `rootfs` (its size plus room to write) at
/// `image`.
pub fn make_ext4_image(rootfs: &Path, image: &Path) {
    let du = Command::new("du")
        .args(["-s", "--block-size=1M"])
        .arg(rootfs)
        .output()
        .expect("run du");
    let used_mib: u64 = String::from_utf8_lossy(&du.stdout)
        .split_whitespace()
        .next()
        .and_then(|size| size.parse().ok())
        .expect("du prints a size");
    let size = format!("{}M", used_mib * 2 + 32);
    let mkfs = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-d"])
        .arg(rootfs)
        .arg(image)
        .arg(&size)
        .output()
        .expect("run mkfs.ext4 (e2fsprogs)");
    assert!(
        mkfs.status.success(),
        "mkfs.ext4 -d {} failed: {}",
        rootfs.display(),
        String::from_utf8_lossy(&mkfs.stderr)
    );
}

fn read_all(mut stream: UnixStream) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// A booted VM whose guest agent is connected, for tests that drive it
/// step by step. The VM is killed on drop if it is still running.
pub struct GuestSandbox {
    pub agent: GuestAgent,
    pub vsock: PathBuf,
    console: PathBuf,
    vmm: Child,
    _scratch: Scratch,
}

/// Waits up to [`BOOT_TIMEOUT`] for the guest agent, giving up as soon as
/// husk-vmm exits (its stderr, inherited, says why).
fn accept_while_running(listener: &UnixListener, vmm: &mut Child) -> Result<GuestAgent, String> {
    let deadline = Instant::now() + BOOT_TIMEOUT;
    loop {
        match GuestAgent::accept(listener, Duration::from_millis(250)) {
            Ok(agent) => return Ok(agent),
            Err(AgentError::ConnectTimeout { .. }) => {}
            Err(error) => return Err(error.to_string()),
        }
        if let Ok(Some(status)) = vmm.try_wait() {
            return Err(format!(
                "husk-vmm exited ({status}) before the guest agent was ready"
            ));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the guest agent was not ready within {BOOT_TIMEOUT:?}"
            ));
        }
    }
}

impl GuestSandbox {
    /// Boots a VM (2 vCPUs, 256 MiB) with `bundle`'s rootfs as /dev/vda
    /// and waits for its agent.
    pub fn boot(bundle: &Bundle, id: &str) -> GuestSandbox {
        let scratch = Scratch::new(&format!("vm-{id}"));
        let image = scratch.file("rootfs.ext4");
        make_ext4_image(&bundle.rootfs(), &image);
        let vsock = scratch.file("vsock");
        let console = scratch.file("console.log");
        let listener = guest_agent::listen(&vsock).expect("listen for the guest agent");
        let artifacts = Artifacts::get();
        let mut vmm = Command::new(&artifacts.vmm)
            .args(["--kernel", path_str(&artifacts.vmlinux)])
            .args(["--initrd", path_str(&artifacts.initramfs)])
            .args(["--disk", path_str(&image)])
            .args(["--vsock", path_str(&vsock)])
            .args(["--serial", path_str(&console)])
            .args(["--vcpus", "2", "--memory-mib", "256", "--rng"])
            .args(["--cmdline", &cmdline("husk.agent")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start husk-vmm");
        let agent = match accept_while_running(&listener, &mut vmm) {
            Ok(agent) => agent,
            Err(error) => {
                let _ = vmm.kill();
                let _ = vmm.wait();
                let text = std::fs::read_to_string(&console).unwrap_or_default();
                panic!("{error}\nconsole:\n{text}");
            }
        };
        GuestSandbox {
            agent,
            vsock,
            console,
            vmm,
            _scratch: scratch,
        }
    }

    pub fn console(&self) -> String {
        std::fs::read_to_string(&self.console).unwrap_or_default()
    }

    /// Sends a request; a broken connection fails the test with the
    /// guest's console.
    pub fn request(&mut self, request: Request) -> Response {
        match self.agent.request(request) {
            Ok(response) => response,
            Err(error) => panic!("{error}\nconsole:\n{}", self.console()),
        }
    }

    /// Opens `process`'s stdio streams for `setup` and returns readers of
    /// its output (stdout, stderr; a terminal's output as stdout).
    pub fn open_output(
        &self,
        process: &ProcessRef,
        setup: &StdioSetup,
    ) -> (JoinHandle<String>, JoinHandle<String>) {
        let open = |kind| {
            guest_agent::open_stream(&self.vsock, process, kind).expect("open a stdio stream")
        };
        match setup {
            StdioSetup::Terminal => (
                read_all(open(StreamKind::Terminal)),
                thread::spawn(String::new),
            ),
            StdioSetup::Pipes { .. } => (
                read_all(open(StreamKind::Stdout)),
                read_all(open(StreamKind::Stderr)),
            ),
        }
    }

    /// Sends CreateContainer for `bundle`, its disk as the root.
    pub fn create(&mut self, bundle: &Bundle, id: &str, stdio: StdioSetup) -> Response {
        let spec = serde_json::from_value(bundle.config.clone()).expect("config.json is a spec");
        self.request(Request::CreateContainer(Box::new(CreateContainerRequest {
            id: id.to_string(),
            spec,
            bundle: path_str(&bundle.dir).to_string(),
            rootfs: RootfsSource::Block {
                device: "/dev/vda".into(),
                fs_type: "ext4".into(),
                // The engine may still create mount points and the cwd in
                // the image; root.readonly then makes the container's view
                // of it read-only, as runc does.
                read_only: false,
            },
            stdio,
            files: Vec::new(),
            directories: Vec::new(),
        })))
    }

    /// Waits for `process` to end.
    pub fn wait(&mut self, process: ProcessRef) -> ExitStatus {
        match self.request(Request::Wait { process }) {
            Response::Exited { status, .. } => status,
            other => panic!("Wait answered {other:?}"),
        }
    }

    /// Says Shutdown and returns husk-vmm's exit code.
    pub fn shut_down(mut self) -> Option<i32> {
        // The guest answers and ends the VM at once: the answer can be
        // lost with the VM, which is the same outcome.
        match self.agent.request(Request::Shutdown) {
            Ok(Response::Ok) | Err(guest_agent::AgentError::Closed) => {}
            Ok(other) => panic!("Shutdown answered {other:?}"),
            Err(error) => panic!("{error}\nconsole:\n{}", self.console()),
        }
        wait_with_deadline(&mut self.vmm, BOOT_TIMEOUT).and_then(|status| status.code())
    }
}

impl Drop for GuestSandbox {
    fn drop(&mut self) {
        let _ = self.vmm.kill();
        let _ = self.vmm.wait();
    }
}

/// How a bundle's process gets its stdio: a terminal if it asks for one.
pub fn stdio_for(bundle: &Bundle) -> StdioSetup {
    if bundle.config["process"]["terminal"] == true {
        StdioSetup::Terminal
    } else {
        StdioSetup::Pipes {
            stdin: false,
            stdout: true,
            stderr: true,
        }
    }
}

/// Runs `bundle` to the end inside a fresh VM.
pub fn run_bundle(bundle: &Bundle, id: &str) -> VmContainerRun {
    let mut sandbox = GuestSandbox::boot(bundle, id);
    let stdio = stdio_for(bundle);
    let (stdout, stderr) = sandbox.open_output(&ProcessRef::Init, &stdio);
    let outcome = match sandbox.create(bundle, id, stdio) {
        Response::Created { .. } => match sandbox.request(Request::Start) {
            Response::Started => Ok(sandbox.wait(ProcessRef::Init)),
            Response::Error(error) => Err(error),
            other => panic!("Start answered {other:?}"),
        },
        Response::Error(error) => Err(error),
        other => panic!("CreateContainer answered {other:?}"),
    };
    let console = sandbox.console();
    let vmm_code = sandbox.shut_down();
    VmContainerRun {
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
        outcome,
        vmm_code,
        console,
    }
}

/// Connects a host program to guest `port` through husk-vmm's vsock socket
/// `uds` with the `CONNECT <port>` handshake, and returns the stream once
/// the guest accepted. Reads and writes on it time out after `timeout`, so
/// a stalled guest fails the test instead of hanging it.
pub fn connect_guest_port(uds: &Path, port: u32, timeout: Duration) -> UnixStream {
    let mut stream = UnixStream::connect(uds)
        .unwrap_or_else(|error| panic!("connect to the vsock socket {}: {error}", uds.display()));
    stream.set_read_timeout(Some(timeout)).unwrap();
    stream.set_write_timeout(Some(timeout)).unwrap();
    stream
        .write_all(format!("CONNECT {port}\n").as_bytes())
        .unwrap();
    // A byte at a time: what follows the line is the guest's.
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while answer.last() != Some(&b'\n') {
        match stream.read(&mut byte) {
            Ok(0) => panic!("the vsock socket closed the handshake for guest port {port}"),
            Ok(_) => answer.push(byte[0]),
            Err(error) => panic!("the handshake for guest port {port}: {error}"),
        }
    }
    assert!(
        answer.starts_with(b"OK "),
        "guest port {port} refused: {:?}",
        String::from_utf8_lossy(&answer)
    );
    stream
}

/// husk-vmm's own resident memory in KiB: the resident set of process `pid`
/// less its guest RAM, from /proc/PID/smaps (proc(5)). Guest RAM is found
/// through the initramfs, which husk-vmm maps at the very top of the
/// guest's low RAM (vmm/src/arch/x86_64/boot.rs, `load_initrd`): it is the
/// `memory_mib` MiB that end where that mapping ends, as long as the guest
/// has no RAM above the MMIO gap (3.25 GiB). None while the initramfs is
/// not mapped yet, or once the process is gone.
pub fn vmm_overhead_kib(pid: u32, initramfs: &Path, memory_mib: u64) -> Option<u64> {
    assert!(
        memory_mib << 20 <= husk_vmm::arch::x86_64::layout::MMIO_GAP_START,
        "a guest of {memory_mib} MiB has RAM above the MMIO gap"
    );
    let initramfs = initramfs
        .canonicalize()
        .unwrap_or_else(|_| initramfs.to_owned());
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).ok()?;
    // Mapping lines: `start-end perms offset device inode path`.
    let end = smaps.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (_, end) = fields.next()?.split_once('-')?;
        let path = fields.nth(4)?;
        if Path::new(path) != initramfs {
            return None;
        }
        u64::from_str_radix(end, 16).ok()
    })?;
    let start = end.checked_sub(memory_mib << 20)?;
    Some(husk_vmm::metrics::parse_smaps(&smaps, &[(start, end)]).overhead_kib())
}
