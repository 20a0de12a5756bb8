//! husk-vmm refuses bad input with one line naming the problem, exit status
//! 125, and no process left running. None of these boot a guest, so they
//! run on any host (KVM is needed only where the check comes after opening
//! it: the initrd that does not fit).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use husk_tests::{path_str as path, run_vmm, Artifacts, Scratch, VmmRun};

const EXIT_VMM_ERROR: i32 = 125;
const TIMEOUT: Duration = Duration::from_secs(30);

/// Asserts the run failed the way bad input should and the message says
/// `expected`.
fn assert_refused(run: &VmmRun, expected: &str) {
    assert_eq!(run.code(), Some(EXIT_VMM_ERROR), "stderr:\n{}", run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line of error, got:\n{}", run.stderr);
    assert!(lines[0].starts_with("husk-vmm: "), "{}", lines[0]);
    assert!(
        lines[0].contains(expected),
        "expected {expected:?} in: {}",
        lines[0]
    );
    assert_eq!(run.stdout, "");
}

fn vmm() -> std::path::PathBuf {
    let vmm = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/husk-vmm");
    std::env::var_os("HUSK_VMM").map(Into::into).unwrap_or(vmm)
}

/// A file that passes every check before the kernel is loaded.
fn fake_elf(scratch: &Scratch) -> std::path::PathBuf {
    let file = scratch.file("fake-vmlinux");
    fs::write(&file, b"\x7fELF\x02\x01\x01\0").unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    file
}

#[test]
fn missing_kernel() {
    let run = run_vmm(&vmm(), &["--kernel", "/nonexistent/vmlinux"], TIMEOUT);
    assert_refused(
        &run,
        "cannot read kernel /nonexistent/vmlinux: No such file or directory",
    );
}

#[test]
fn kernel_that_is_a_directory() {
    let run = run_vmm(&vmm(), &["--kernel", "/tmp"], TIMEOUT);
    assert_refused(&run, "kernel /tmp is not a regular file");
}

#[test]
fn unreadable_kernel() {
    let scratch = Scratch::new("unreadable-kernel");
    fs::set_permissions(&scratch.path, fs::Permissions::from_mode(0o755)).unwrap();
    let kernel = scratch.file("vmlinux");
    fs::write(&kernel, b"\x7fELF").unwrap();
    fs::set_permissions(&kernel, fs::Permissions::from_mode(0o000)).unwrap();
    // Root reads anything; an unprivileged user can't read a 000 file.
    let run = as_nobody(&["--kernel", path(&kernel)]);
    assert_refused(
        &run,
        &format!("cannot read kernel {}: Permission denied", kernel.display()),
    );
}

#[test]
fn kernel_that_is_a_fifo_does_not_hang() {
    let scratch = Scratch::new("fifo-kernel");
    let fifo = scratch.file("vmlinux");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(status.success());
    let run = run_vmm(&vmm(), &["--kernel", path(&fifo)], TIMEOUT);
    assert_refused(&run, "is not a regular file");
}

#[test]
fn kernel_that_is_neither_elf_nor_bzimage() {
    let scratch = Scratch::new("not-a-kernel");
    let kernel = scratch.file("kernel.txt");
    fs::write(&kernel, "#!/bin/sh\necho not a kernel\n".repeat(100)).unwrap();
    let run = run_vmm(
        &vmm(),
        &["--kernel", path(&kernel), "--serial", "none"],
        TIMEOUT,
    );
    assert_refused(&run, "is neither an ELF vmlinux nor a bzImage");
}

#[test]
fn initrd_that_does_not_fit_in_memory() {
    let artifacts = Artifacts::get();
    let scratch = Scratch::new("huge-initrd");
    let initrd = scratch.file("huge.cpio");
    // Sparse: 100 MiB of apparent size, nothing on disk.
    fs::File::create(&initrd)
        .unwrap()
        .set_len(100 << 20)
        .unwrap();
    let run = run_vmm(
        &artifacts.vmm,
        &[
            "--kernel",
            path(&artifacts.vmlinux),
            "--initrd",
            path(&initrd),
            "--memory-mib",
            "64",
            "--serial",
            "none",
        ],
        TIMEOUT,
    );
    assert_refused(&run, "does not fit in guest memory above the kernel");
    assert!(
        run.stderr.contains("--memory-mib"),
        "says what to do: {}",
        run.stderr
    );
}

#[test]
fn missing_disk_image() {
    let scratch = Scratch::new("missing-disk");
    let run = run_vmm(
        &vmm(),
        &[
            "--kernel",
            path(&fake_elf(&scratch)),
            "--disk",
            "/nonexistent/disk.img",
        ],
        TIMEOUT,
    );
    assert_refused(
        &run,
        "cannot read disk /nonexistent/disk.img: No such file or directory",
    );
}

#[test]
fn disk_that_is_a_directory() {
    let scratch = Scratch::new("directory-disk");
    let run = run_vmm(
        &vmm(),
        &["--kernel", path(&fake_elf(&scratch)), "--disk", "/tmp"],
        TIMEOUT,
    );
    assert_refused(
        &run,
        "disk /tmp is neither a regular file nor a block device",
    );
}

#[test]
fn disk_option_that_is_not_ro() {
    let run = run_vmm(&vmm(), &["--kernel", "/k", "--disk", "/a.img,rw"], TIMEOUT);
    assert_refused(
        &run,
        "--disk \"/a.img,rw\": unknown option \"rw\" (only `ro`)",
    );
}

#[test]
fn zero_vcpus() {
    let scratch = Scratch::new("zero-vcpus");
    let run = run_vmm(
        &vmm(),
        &["--kernel", path(&fake_elf(&scratch)), "--vcpus", "0"],
        TIMEOUT,
    );
    assert_refused(&run, "--vcpus 0: a VM needs between 1 and");
}

#[test]
fn memory_below_the_minimum() {
    let scratch = Scratch::new("small-memory");
    let run = run_vmm(
        &vmm(),
        &["--kernel", path(&fake_elf(&scratch)), "--memory-mib", "16"],
        TIMEOUT,
    );
    assert_refused(&run, "--memory-mib 16: guest memory must be between 32 and");
}

#[test]
fn no_kvm_device() {
    let scratch = Scratch::new("no-kvm");
    let run = run_vmm(
        &vmm(),
        &[
            "--kernel",
            path(&fake_elf(&scratch)),
            "--kvm",
            "/nonexistent/kvm",
        ],
        TIMEOUT,
    );
    assert_refused(
        &run,
        "/nonexistent/kvm does not exist: this host offers no KVM",
    );
}

#[test]
fn no_permission_on_kvm() {
    assert!(
        Path::new("/dev/kvm").exists(),
        "this test needs /dev/kvm (root-only, mode 0600 or 0660)"
    );
    let scratch = Scratch::new("no-kvm-permission");
    fs::set_permissions(&scratch.path, fs::Permissions::from_mode(0o755)).unwrap();
    let run = as_nobody(&["--kernel", path(&fake_elf(&scratch))]);
    assert_refused(&run, "no permission to open /dev/kvm");
}

#[test]
fn kernel_command_line_too_long() {
    let scratch = Scratch::new("long-cmdline");
    let cmdline = "x".repeat(3000);
    let run = run_vmm(
        &vmm(),
        &["--kernel", path(&fake_elf(&scratch)), "--cmdline", &cmdline],
        TIMEOUT,
    );
    assert_refused(
        &run,
        "kernel command line is 3000 bytes; the x86 kernel accepts at most 2047",
    );
}

#[test]
fn unknown_flag_and_missing_value() {
    assert_refused(
        &run_vmm(&vmm(), &["--kernel", "/k", "--bogus"], TIMEOUT),
        "unknown argument \"--bogus\"",
    );
    assert_refused(
        &run_vmm(&vmm(), &["--memory-mib"], TIMEOUT),
        "--memory-mib needs a value",
    );
}

/// Runs husk-vmm as the unprivileged user `nobody` (setpriv, util-linux).
fn as_nobody(args: &[&str]) -> VmmRun {
    let vmm = vmm();
    // husk-vmm itself must be reachable by nobody: copy it somewhere open.
    let scratch = Scratch::new("nobody-vmm");
    fs::set_permissions(&scratch.path, fs::Permissions::from_mode(0o755)).unwrap();
    let copy = scratch.file("husk-vmm");
    fs::copy(&vmm, &copy).unwrap();
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
    let mut full = vec![
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
        path(&copy),
    ];
    full.extend_from_slice(args);
    run_vmm(Path::new("/usr/bin/setpriv"), &full, TIMEOUT)
}
