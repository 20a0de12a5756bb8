//! Boots the real guest kernel and husk-init with husk-vmm on a KVM that can
//! run it (tests/run-all runs this binary inside the nested test host where
//! the host's own KVM can't).

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use husk_tests::{
    cmdline, find_ready_line, path_str as path, require_bootable_kvm, run_vmm, wait_for_console,
    wait_with_deadline, Artifacts, ReadyLine, Scratch, BOOT_TIMEOUT,
};

/// husk-vmm's exit status for a crashed guest (see `husk-vmm --help`).
const EXIT_GUEST_CRASHED: i32 = 250;

/// Boots `kernel` with husk-init, the serial console going to `serial`, and
/// `kernel_args` added to the default command line.
fn run_guest(
    kernel: &Path,
    serial: &str,
    kernel_args: &str,
    extra_args: &[&str],
) -> husk_tests::VmmRun {
    require_bootable_kvm();
    let artifacts = Artifacts::get();
    let cmdline = cmdline(kernel_args);
    let mut args = vec![
        "--kernel",
        path(kernel),
        "--initrd",
        path(&artifacts.initramfs),
        "--serial",
        serial,
        "--cmdline",
        &cmdline,
        "--timings",
    ];
    args.extend_from_slice(extra_args);
    run_vmm(&artifacts.vmm, &args, BOOT_TIMEOUT)
}

/// Boots the vmlinux with a console file and returns the run and the
/// console text.
fn boot(name: &str, extra_args: &[&str], kernel_args: &str) -> (husk_tests::VmmRun, String) {
    let scratch = Scratch::new(name);
    let console = scratch.file("console.log");
    let run = run_guest(
        &Artifacts::get().vmlinux,
        path(&console),
        kernel_args,
        extra_args,
    );
    let console = fs::read_to_string(&console).unwrap_or_default();
    if run.timed_out() {
        let tail: Vec<&str> = console.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "husk-vmm ({name}) ran past {BOOT_TIMEOUT:?} and was killed\nstderr:\n{}\nconsole tail:\n{}",
            run.stderr,
            tail.join("\n")
        );
    }
    (run, console)
}

fn ready(run: &husk_tests::VmmRun, console: &str) -> ReadyLine {
    find_ready_line(console).unwrap_or_else(|| {
        panic!(
            "no husk-init ready line; exit {:?}\nstderr:\n{}\nconsole:\n{console}",
            run.status, run.stderr
        )
    })
}

fn assert_boots_with(vcpus: u32, memory_mib: u64) {
    let (run, console) = boot(
        &format!("boot-{vcpus}-{memory_mib}"),
        &[
            "--vcpus",
            &vcpus.to_string(),
            "--memory-mib",
            &memory_mib.to_string(),
        ],
        "husk.exit=0",
    );
    let ready = ready(&run, &console);
    assert_eq!(run.code(), Some(0), "stderr:\n{}", run.stderr);
    assert_eq!(
        ready.cpus, vcpus,
        "vCPUs the guest brought online\n{console}"
    );
    // MemTotal is what the kernel didn't keep for itself (its image, page
    // structs): most of what it got, never more.
    let given_kib = memory_mib * 1024;
    assert!(
        ready.mem_total_kib <= given_kib && ready.mem_total_kib >= given_kib * 3 / 4,
        "guest MemTotal {} KiB for {memory_mib} MiB given",
        ready.mem_total_kib
    );
}

#[test]
fn boots_with_one_vcpu_and_128_mib() {
    assert_boots_with(1, 128);
}

#[test]
fn boots_with_two_vcpus_and_128_mib() {
    assert_boots_with(2, 128);
}

#[test]
fn boots_with_one_vcpu_and_1024_mib() {
    assert_boots_with(1, 1024);
}

#[test]
fn boots_with_two_vcpus_and_1024_mib() {
    assert_boots_with(2, 1024);
}

#[test]
fn memory_above_the_mmio_gap_reaches_the_guest() {
    // 4 GiB: 3.25 GiB below the MMIO gap, the rest above 4 GiB (e820).
    assert_boots_with(1, 4096);
}

#[test]
fn boots_a_bzimage_through_the_linux_boot_protocol() {
    let run = run_guest(&Artifacts::get().bzimage, "stdout", "husk.exit=0", &[]);
    ready(&run, &run.stdout);
    assert_eq!(run.code(), Some(0), "stderr:\n{}", run.stderr);
}

#[test]
fn serial_console_reaches_stdout() {
    let run = run_guest(&Artifacts::get().vmlinux, "stdout", "husk.exit=0", &[]);
    assert_eq!(run.code(), Some(0), "stderr:\n{}", run.stderr);
    ready(&run, &run.stdout);
    assert!(
        run.stdout.contains("Linux version 6.12"),
        "kernel banner on stdout:\n{}",
        run.stdout
    );
}

#[test]
fn serial_none_discards_the_console() {
    let run = run_guest(&Artifacts::get().vmlinux, "none", "husk.exit=5", &[]);
    // The guest still ran to the end (its status came back), silently.
    assert_eq!(run.code(), Some(5), "stderr:\n{}", run.stderr);
    assert_eq!(run.stdout, "");
}

#[test]
fn serial_file_gets_the_console_and_timings_cover_every_phase() {
    let (run, console) = boot("serial-file", &[], "husk.exit=0");
    assert_eq!(run.code(), Some(0), "stderr:\n{}", run.stderr);
    assert!(
        console.contains("Linux version 6.12"),
        "kernel banner in the file:\n{console}"
    );
    ready(&run, &console);
    assert_eq!(run.stdout, "", "console went to the file, not stdout");

    let timing = run
        .stderr
        .lines()
        .find(|l| l.starts_with("husk-vmm: timing"))
        .unwrap_or_else(|| panic!("no timing line:\n{}", run.stderr));
    let phase = |name: &str| -> f64 {
        timing
            .split_whitespace()
            .find_map(|pair| {
                pair.strip_prefix(name)?
                    .strip_prefix('=')?
                    .strip_suffix("ms")?
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no {name} in {timing}"))
    };
    let phases = [
        "kvm_ready",
        "first_kvm_run",
        "init_started",
        "init_ready",
        "exit",
    ]
    .map(phase);
    assert!(
        phases.windows(2).all(|w| w[0] <= w[1]),
        "phases out of order: {timing}"
    );
    assert!(
        run.stderr.contains("husk-vmm: memory rss_kib="),
        "{}",
        run.stderr
    );
}

#[test]
fn guest_exit_status_becomes_the_vmm_exit_code() {
    for status in [42, 1, 255] {
        let (run, console) = boot(
            &format!("exit-{status}"),
            &[],
            &format!("husk.exit={status}"),
        );
        ready(&run, &console);
        assert_eq!(run.code(), Some(status), "stderr:\n{}", run.stderr);
    }
}

#[test]
fn guest_panic_ends_the_vmm_with_the_crash_code_and_says_why() {
    let (run, console) = boot("panic", &[], "husk.exit=panic");
    ready(&run, &console);
    assert_eq!(
        run.code(),
        Some(EXIT_GUEST_CRASHED),
        "stderr:\n{}",
        run.stderr
    );
    assert!(console.contains("Kernel panic"), "console:\n{console}");
    assert!(
        run.stderr
            .contains("the guest reset without handing back an exit status"),
        "stderr:\n{}",
        run.stderr
    );
    // The message quotes the end of the console, panic included.
    assert!(
        run.stderr.contains("| ") && run.stderr.contains("Kernel panic"),
        "stderr:\n{}",
        run.stderr
    );
}

/// Starts a guest that holds, waits for its ready line, sends `signal`.
fn stop_holding_guest_with(signal: libc::c_int) -> (Option<i32>, String) {
    require_bootable_kvm();
    let artifacts = Artifacts::get();
    let scratch = Scratch::new(&format!("signal-{signal}"));
    let console = scratch.file("console.log");
    let mut child = Command::new(&artifacts.vmm)
        .args([
            "--kernel",
            path(&artifacts.vmlinux),
            "--initrd",
            path(&artifacts.initramfs),
            "--vcpus",
            "2",
            "--serial",
            path(&console),
            "--cmdline",
            &cmdline("husk.exit=hold"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start husk-vmm");
    wait_for_console(&mut child, &console, "the ready line", |text| {
        find_ready_line(text).is_some()
    });
    // The guest is idle in init now; only the signal can end it.
    // SAFETY: plain kill(2) on our own child's PID.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
    let status = wait_with_deadline(&mut child, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("husk-vmm still ran 30 s after signal {signal}"));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status.code(), stderr)
}

#[test]
fn sigterm_ends_the_vm_and_the_process() {
    let (code, stderr) = stop_holding_guest_with(libc::SIGTERM);
    assert_eq!(code, Some(128 + libc::SIGTERM), "stderr:\n{stderr}");
    assert!(
        stderr.contains("stopped the VM on signal 15"),
        "stderr:\n{stderr}"
    );
}

#[test]
fn sigint_ends_the_vm_and_the_process() {
    let (code, stderr) = stop_holding_guest_with(libc::SIGINT);
    assert_eq!(code, Some(128 + libc::SIGINT), "stderr:\n{stderr}");
}
