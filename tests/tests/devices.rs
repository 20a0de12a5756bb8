//! virtio devices seen from inside the guest: husk-init's selftests
//! (`husk.selftest=`) exercise them, these tests prepare the host side and
//! check both ends. Runs on a KVM that can boot a guest (tests/run-all runs
//! it inside the nested test host where needed).

use std::fs;
use std::path::Path;
use std::process::Command;

use husk_protocol::selftest::{BLK_READ_FILE, BLK_WRITE_FILE, BLK_WRITTEN_TEXT};
use husk_tests::{
    cmdline, require_bootable_kvm, run_vmm, Artifacts, Scratch, VmmRun, BOOT_TIMEOUT,
};

fn path(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

/// Boots with `extra_args`, the console on stdout, `kernel_args` added.
fn boot(extra_args: &[&str], kernel_args: &str) -> VmmRun {
    require_bootable_kvm();
    let artifacts = Artifacts::get();
    let cmdline = cmdline(kernel_args);
    let mut args = vec![
        "--kernel",
        path(&artifacts.vmlinux),
        "--initrd",
        path(&artifacts.initramfs),
        "--cmdline",
        &cmdline,
    ];
    args.extend_from_slice(extra_args);
    let run = run_vmm(&artifacts.vmm, &args, BOOT_TIMEOUT);
    assert!(
        !run.timed_out(),
        "husk-vmm ran past {BOOT_TIMEOUT:?}; console:\n{}",
        run.stdout
    );
    run
}

/// The line selftest `name` printed.
fn selftest_line<'a>(run: &'a VmmRun, name: &str) -> &'a str {
    let prefix = format!("husk-init selftest {name} ");
    run.stdout
        .lines()
        .map(|line| line.trim_end_matches('\r'))
        .find(|line| line.starts_with(&prefix))
        .unwrap_or_else(|| {
            panic!(
                "no {name} selftest line; stderr:\n{}\nconsole:\n{}",
                run.stderr, run.stdout
            )
        })
}

/// An ext4 image made with e2fsprogs from a directory holding one file.
fn ext4_image(scratch: &Scratch, name: &str, text: &str) -> std::path::PathBuf {
    let content = scratch.file(&format!("{name}-content"));
    fs::create_dir_all(&content).unwrap();
    fs::write(content.join(BLK_READ_FILE), text).unwrap();
    let image = scratch.file(&format!("{name}.ext4"));
    let status = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-d", path(&content), path(&image), "16M"])
        .status()
        .expect("run mkfs.ext4 (e2fsprogs)");
    assert!(status.success(), "mkfs.ext4 failed");
    image
}

/// A file's contents inside an ext4 image, read with debugfs.
fn read_from_image(image: &Path, file: &str) -> String {
    let output = Command::new("debugfs")
        .args(["-R", &format!("cat /{file}"), path(image)])
        .output()
        .expect("run debugfs (e2fsprogs)");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn guest_reads_and_writes_an_ext4_disk_and_the_host_sees_the_write() {
    let scratch = Scratch::new("blk");
    let image = ext4_image(&scratch, "rw", "placed by the host\n");
    let disk = path(&image).to_owned();
    let run = boot(&["--disk", &disk], "husk.exit=0 husk.selftest=blk");
    assert_eq!(run.code(), Some(0), "stderr:\n{}", run.stderr);
    let line = selftest_line(&run, "blk");
    assert_eq!(
        line,
        "husk-init selftest blk ok read=\"placed by the host\""
    );
    assert_eq!(read_from_image(&image, BLK_WRITE_FILE), BLK_WRITTEN_TEXT);
}

#[test]
fn a_read_only_disk_refuses_writes_inside_the_guest() {
    let scratch = Scratch::new("blk-ro");
    let writable = ext4_image(&scratch, "rw", "first disk\n");
    let read_only = ext4_image(&scratch, "ro", "second disk\n");
    let before = fs::read(&read_only).unwrap();
    let first = path(&writable).to_owned();
    let second = format!("{},ro", path(&read_only));
    let run = boot(
        &["--disk", &first, "--disk", &second],
        "husk.exit=0 husk.selftest=blk-ro",
    );
    assert_eq!(run.code(), Some(0), "stderr:\n{}", run.stderr);
    let line = selftest_line(&run, "blk-ro");
    assert!(
        line.starts_with("husk-init selftest blk-ro ok read=\"second disk\" write_refused="),
        "{line}"
    );
    assert_eq!(
        fs::read(&read_only).unwrap(),
        before,
        "the read-only image is byte for byte unchanged"
    );
}

#[test]
fn virtio_rng_feeds_dev_hwrng_in_the_guest() {
    let run = boot(&["--rng"], "husk.exit=0 husk.selftest=hwrng");
    assert_eq!(run.code(), Some(0), "stderr:\n{}", run.stderr);
    let line = selftest_line(&run, "hwrng");
    assert!(
        line.starts_with("husk-init selftest hwrng ok bytes=128 source=virtio_rng"),
        "{line}"
    );
    assert!(
        run.stdout.contains("virtio_mmio.device=4K@0xd0000000:5"),
        "device on the command line"
    );
}

#[test]
fn without_rng_the_guest_has_no_hwrng() {
    let run = boot(&[], "husk.exit=0 husk.selftest=hwrng");
    assert_eq!(run.code(), Some(0), "stderr:\n{}", run.stderr);
    // The hw_random core is built in, so /dev/hwrng exists; with no device
    // behind it, reading fails.
    let line = selftest_line(&run, "hwrng");
    assert!(
        line.starts_with("husk-init selftest hwrng failed: read /dev/hwrng: No such device"),
        "{line}"
    );
}
