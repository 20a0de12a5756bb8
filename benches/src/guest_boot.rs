//! Booting the guest kernel and initramfs to husk-init's ready line, with
//! husk-vmm or with QEMU's `microvm` machine, timed the same way for both:
//! from just before the VMM process is spawned to the moment the ready line
//! arrives on the VMM's serial output (stdout). Shared by husk-bench-boot
//! and husk-bench-startup, which uses it as the VMM reference.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use std::{fs, thread};

use crate::QEMU_MACHINE;

/// How long a boot may take to print husk-init's ready line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(180);

/// The guest both VMMs boot: the same kernel, initramfs, memory and vCPUs.
#[derive(Debug, Clone, Copy)]
pub struct GuestMachine<'a> {
    pub kernel: &'a Path,
    pub initrd: &'a Path,
    pub memory_mib: u64,
    pub vcpus: u32,
}

/// The kernel command line of a boot; `exit` is husk-init's `husk.exit=`
/// (`hold` keeps the guest up until the VMM is stopped).
pub fn cmdline(exit: &str) -> String {
    format!("console=ttyS0 reboot=k panic=-1 husk.exit={exit}")
}

/// One boot's measurements.
#[derive(Debug, Default, Clone)]
pub struct BootSample {
    pub ready_ms: f64,
    pub rss_kib: u64,
    pub guest_kib: u64,
    /// husk-vmm's own phase timings, from its --timings line.
    pub first_kvm_run_ms: Option<f64>,
    pub init_started_ms: Option<f64>,
}

/// Resident memory of `pid`, and of its guest RAM mapping (the anonymous
/// mapping exactly `guest_kib` large).
fn memory_of(pid: u32, guest_size_kib: u64) -> (u64, u64) {
    let smaps = fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let (mut total, mut guest, mut in_guest) = (0, 0, false);
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        match (fields.next(), fields.next()) {
            (Some("Size:"), Some(kib)) => in_guest = kib.parse() == Ok(guest_size_kib),
            (Some("Rss:"), Some(kib)) => {
                let kib: u64 = kib.parse().unwrap_or(0);
                total += kib;
                if in_guest {
                    guest += kib;
                }
            }
            _ => {}
        }
    }
    (total, guest)
}

/// `name=12.345ms` out of husk-vmm's timing line.
pub fn timing(stderr: &str, name: &str) -> Option<f64> {
    let line = stderr.lines().find(|l| l.starts_with("husk-vmm: timing"))?;
    line.split_whitespace().find_map(|pair| {
        pair.strip_prefix(name)?
            .strip_prefix('=')?
            .strip_suffix("ms")?
            .parse()
            .ok()
    })
}

/// `name=N` out of husk-vmm's memory line.
pub fn memory_field(stderr: &str, name: &str) -> Option<u64> {
    let line = stderr.lines().find(|l| l.starts_with("husk-vmm: memory"))?;
    line.split_whitespace()
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
}

/// Reads `pipe` to its end on a thread of its own.
pub fn read_all<R: Read + Send + 'static>(pipe: R) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        let _ = BufReader::new(pipe).read_to_string(&mut text);
        text
    })
}

/// Spawns `command`, waits for the ready line on its stdout, samples its
/// memory, then stops it (`stop_signal`) and collects its stderr.
pub fn boot_to_ready(
    mut command: Command,
    guest_kib: u64,
    stop_signal: libc::c_int,
) -> Result<BootSample, String> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child: Child = command
        .spawn()
        .map_err(|e| format!("start {command:?}: {e}"))?;
    let stdout = child.stdout.take().unwrap();
    let stderr = read_all(child.stderr.take().unwrap());
    let (ready_tx, ready_rx) = mpsc::channel();
    let console = thread::spawn(move || {
        let mut text = String::new();
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            if line.contains(husk_protocol::READY_LINE_PREFIX) {
                let _ = ready_tx.send(Instant::now());
            }
            text.push_str(&line);
            line.clear();
        }
        text
    });
    let ready = ready_rx.recv_timeout(READY_TIMEOUT);
    let (rss_kib, guest_kib) = memory_of(child.id(), guest_kib);
    // SAFETY: kill(2) on our own child, which has not been reaped yet.
    unsafe { libc::kill(child.id() as libc::pid_t, stop_signal) };
    let _ = child.wait();
    let stderr = stderr.join().unwrap_or_default();
    let console = console.join().unwrap_or_default();
    let ready = ready.map_err(|_| {
        let tail: Vec<&str> = console.lines().rev().take(15).collect();
        format!(
            "no ready line within {READY_TIMEOUT:?} from {command:?}\nstderr: {stderr}\nconsole tail:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    })?;
    // husk-vmm reports its own split (it knows exactly which host ranges
    // are guest RAM, also where files are mapped into it); QEMU's guest RAM
    // is the one anonymous mapping of the guest's size.
    let (rss_kib, guest_kib) = match (
        memory_field(&stderr, "rss_kib"),
        memory_field(&stderr, "guest_kib"),
    ) {
        (Some(rss), Some(guest)) => (rss, guest),
        _ => (rss_kib, guest_kib),
    };
    Ok(BootSample {
        ready_ms: (ready - start).as_secs_f64() * 1000.0,
        rss_kib,
        guest_kib,
        first_kvm_run_ms: timing(&stderr, "first_kvm_run"),
        init_started_ms: timing(&stderr, "init_started"),
    })
}

/// husk-vmm booting `machine` with the serial console going to `serial`,
/// printing its timings at exit.
pub fn husk_vmm_command(
    vmm: &Path,
    machine: &GuestMachine<'_>,
    serial: &str,
    exit: &str,
) -> Command {
    let mut command = Command::new(vmm);
    command.args(["--kernel".as_ref(), machine.kernel.as_os_str()]);
    command.args(["--initrd".as_ref(), machine.initrd.as_os_str()]);
    command.args([
        "--memory-mib",
        &machine.memory_mib.to_string(),
        "--vcpus",
        &machine.vcpus.to_string(),
    ]);
    command.args(["--serial", serial, "--timings", "--cmdline", &cmdline(exit)]);
    command
}

/// QEMU's microvm booting `machine`, serial console on stdout, held up
/// until it is killed.
pub fn qemu_microvm_command(qemu: &Path, machine: &GuestMachine<'_>) -> Command {
    let mut command = Command::new(qemu);
    command.args(QEMU_MACHINE);
    command.args([
        "-m",
        &machine.memory_mib.to_string(),
        "-smp",
        &machine.vcpus.to_string(),
    ]);
    command.args([
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-serial",
        "stdio",
    ]);
    command.args(["-kernel".as_ref(), machine.kernel.as_os_str()]);
    command.args(["-initrd".as_ref(), machine.initrd.as_os_str()]);
    command.args(["-append", &cmdline("hold")]);
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn husk_vmm_lines_are_read_by_name() {
        let stderr = "husk-vmm: timing kvm_ready=1.5ms first_kvm_run=2.25ms exit=9ms\n\
                      husk-vmm: memory rss_kib=30000 guest_kib=20000 overhead_kib=10000\n";
        assert_eq!(timing(stderr, "first_kvm_run"), Some(2.25));
        assert_eq!(timing(stderr, "init_started"), None);
        assert_eq!(memory_field(stderr, "guest_kib"), Some(20000));
    }

    #[test]
    fn both_vmms_boot_the_same_guest() {
        let machine = GuestMachine {
            kernel: Path::new("/k"),
            initrd: Path::new("/i"),
            memory_mib: 64,
            vcpus: 2,
        };
        let args = |command: &Command| {
            command
                .get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        };
        let husk = args(&husk_vmm_command(
            Path::new("/vmm"),
            &machine,
            "stdout",
            "hold",
        ));
        let qemu = args(&qemu_microvm_command(Path::new("/qemu"), &machine));
        for expected in ["/k", "/i", "64", "2", &cmdline("hold")] {
            assert!(
                husk.iter().any(|a| a == expected),
                "{husk:?} lacks {expected}"
            );
            assert!(
                qemu.iter().any(|a| a == expected),
                "{qemu:?} lacks {expected}"
            );
        }
    }
}
