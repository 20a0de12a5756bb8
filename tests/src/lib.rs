//! Helpers shared by husk's end-to-end tests: where the artifacts are, how
//! to run husk-vmm with a deadline, and how to read husk-init's ready line.
//!
//! The tests use real parts only: the guest kernel from `kernel-config/build`,
//! the initramfs from `guest-init/build`, the release `husk-vmm`, and a KVM
//! that can boot them (directly, or inside the nested test host). Run them
//! with `tests/run-all`, which builds all of that and sets the variables
//! below; run by hand, a missing piece fails the test with what to do.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use std::{fs, thread};

pub mod bundle;
pub mod checks;
pub mod clients;
pub mod husk_cli;
pub mod vm;

/// The pieces a VM test needs.
pub struct Artifacts {
    pub vmm: PathBuf,
    pub vmlinux: PathBuf,
    pub bzimage: PathBuf,
    pub initramfs: PathBuf,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn required_path(variable: &str, how: &str) -> PathBuf {
    let path = std::env::var_os(variable)
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("{variable} is not set: {how} (tests/run-all sets it)"));
    assert!(
        path.is_file(),
        "{variable}={} does not exist: {how}",
        path.display()
    );
    path
}

impl Artifacts {
    pub fn get() -> Self {
        let vmm = std::env::var_os("HUSK_VMM")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("target/release/husk-vmm"));
        assert!(
            vmm.is_file(),
            "{} does not exist: run `cargo build --release` (or set HUSK_VMM)",
            vmm.display()
        );
        let vmlinux = required_path(
            "HUSK_KERNEL",
            "set it to the vmlinux path kernel-config/build prints",
        );
        let bzimage = vmlinux.with_file_name("bzImage");
        assert!(
            bzimage.is_file(),
            "{} does not exist next to HUSK_KERNEL",
            bzimage.display()
        );
        let initramfs = required_path(
            "HUSK_INITRAMFS",
            "set it to the path guest-init/build prints",
        );
        Self {
            vmm,
            vmlinux,
            bzimage,
            initramfs,
        }
    }
}

/// Fails the test unless /dev/kvm here can boot an ordinary guest kernel.
pub fn require_bootable_kvm() {
    let module = |name: &str| Path::new("/sys/module").join(name).exists();
    assert!(
        Path::new("/dev/kvm").exists(),
        "no /dev/kvm here: VM tests need KVM; run them through tests/testhost/run"
    );
    assert!(
        !module("kvm_pvm") && (module("kvm_intel") || module("kvm_amd")),
        "/dev/kvm here is not hardware-backed (kvm_pvm, or neither kvm_intel nor kvm_amd): \
         it cannot boot a guest; run these tests through tests/testhost/run"
    );
}

/// Every boot gets this long; the nested test host runs guests under
/// emulation, so the bound is generous. A hang still fails the test.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(240);

/// What one husk-vmm run produced.
#[derive(Debug)]
pub struct VmmRun {
    /// None: it ran past its deadline and was killed.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl VmmRun {
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|status| status.code())
    }

    pub fn timed_out(&self) -> bool {
        self.status.is_none()
    }
}

/// Reads a pipe to the end on its own thread, so neither pipe can fill up
/// and block the child.
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    })
}

/// Waits for `child` until `timeout`; past that, kills it and returns None.
pub fn wait_with_deadline(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Polls the console file of a running husk-vmm until `done` accepts its
/// text, and returns that text. Fails the test (killing the VMM) when the
/// VMM exits first or BOOT_TIMEOUT passes, quoting the console.
pub fn wait_for_console(
    child: &mut Child,
    console: &Path,
    what: &str,
    done: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + BOOT_TIMEOUT;
    loop {
        let text = fs::read_to_string(console).unwrap_or_default();
        if done(&text) {
            return text;
        }
        if Instant::now() > deadline || child.try_wait().expect("wait for husk-vmm").is_some() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} never showed on the console:\n{text}");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Runs husk-vmm with `args` to completion (bounded by `timeout`).
pub fn run_vmm(vmm: &Path, args: &[&str], timeout: Duration) -> VmmRun {
    let mut child = Command::new(vmm)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", vmm.display()));
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = wait_with_deadline(&mut child, timeout);
    VmmRun {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// husk-init's ready line, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadyLine {
    pub uptime_ms: u64,
    pub cpus: u32,
    pub mem_total_kib: u64,
}

/// Finds and parses `husk-init ready uptime_ms=.. cpus=.. mem_total_kib=..`.
pub fn find_ready_line(console: &str) -> Option<ReadyLine> {
    let line = console.lines().find_map(|line| {
        line.trim_end_matches('\r')
            .split_once(husk_protocol::READY_LINE_PREFIX)
            .map(|(_, rest)| rest)
    })?;
    let field = |key: &str| -> Option<u64> {
        line.split_whitespace()
            .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
    };
    Some(ReadyLine {
        uptime_ms: field("uptime_ms")?,
        cpus: field("cpus")? as u32,
        mem_total_kib: field("mem_total_kib")?,
    })
}

/// A per-test scratch directory under the system temp dir, removed on drop.
pub struct Scratch {
    pub path: PathBuf,
}

impl Scratch {
    pub fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("husk-test-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create scratch dir");
        Self { path }
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// A path as a command-line argument; test paths are UTF-8.
pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// The kernel command line the tests boot with: husk-vmm's default plus
/// `extra`.
pub fn cmdline(extra: &str) -> String {
    format!("{} {extra}", husk_vmm::config::DEFAULT_CMDLINE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_line_is_parsed_among_kernel_messages() {
        let console = "[    0.5] Run /init as init process\r\nhusk-init ready uptime_ms=412 cpus=2 mem_total_kib=1012345\r\n";
        assert_eq!(
            find_ready_line(console),
            Some(ReadyLine {
                uptime_ms: 412,
                cpus: 2,
                mem_total_kib: 1_012_345
            })
        );
        assert_eq!(find_ready_line("husk-init ready cpus=2"), None);
        assert_eq!(find_ready_line("no line"), None);
    }
}
