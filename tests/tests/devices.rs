//! virtio devices seen from inside the guest: husk-init's selftests
//! (`husk.selftest=`) exercise them, these tests prepare the host side and
//! check both ends. Runs on a KVM that can boot a guest (tests/run-all runs
//! it inside the nested test host where needed).

use std::fs;
use std::path::Path;
use std::process::Command;

use husk_protocol::selftest::{BLK_READ_FILE, BLK_WRITE_FILE, BLK_WRITTEN_TEXT};
use husk_tests::{
    cmdline, path_str as path, require_bootable_kvm, run_vmm, wait_for_console, Artifacts, Scratch,
    VmmRun, BOOT_TIMEOUT,
};

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
        .stdout(std::process::Stdio::null())
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

/// FNV-1a, 64 bits: enough to compare two transfers.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// `len` pattern bytes from `offset` on.
fn pattern(offset: u64, len: usize) -> Vec<u8> {
    (offset..offset + len as u64)
        .map(husk_protocol::pattern_byte)
        .collect()
}

#[test]
fn vsock_guest_to_host_streams_echo_1_mib_and_64_at_once() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixListener;
    use std::time::Duration;

    use husk_protocol::selftest::{VSOCK_CLIENT_STREAMS, VSOCK_HOST_PORT};

    let scratch = Scratch::new("vsock-g2h");
    let uds = scratch.file("vsock");
    let listener = UnixListener::bind(format!("{}_{VSOCK_HOST_PORT}", path(&uds))).unwrap();
    // The 1 MiB stream, then the 64 concurrent ones: each echoed on its own
    // thread; the server returns what every stream carried.
    let server = std::thread::spawn(move || -> Vec<Vec<u8>> {
        let echoes: Vec<_> = (0..1 + VSOCK_CLIENT_STREAMS)
            .map(|_| {
                let (mut stream, _) = listener.accept().expect("the guest connects");
                // A stalled stream fails the test instead of hanging it.
                stream
                    .set_read_timeout(Some(Duration::from_secs(120)))
                    .unwrap();
                std::thread::spawn(move || {
                    let mut received = Vec::new();
                    stream.read_to_end(&mut received).unwrap();
                    stream.write_all(&received).unwrap();
                    received
                })
            })
            .collect();
        echoes
            .into_iter()
            .map(|echo| echo.join().unwrap())
            .collect()
    });
    let run = boot(
        &["--vsock", path(&uds), "--vcpus", "2"],
        "husk.exit=0 husk.selftest=vsock-client,vsock-clients",
    );
    assert_eq!(run.code(), Some(0), "stderr:\n{}", run.stderr);
    assert_eq!(
        selftest_line(&run, "vsock-client"),
        "husk-init selftest vsock-client ok bytes=1048576"
    );
    assert_eq!(
        selftest_line(&run, "vsock-clients"),
        "husk-init selftest vsock-clients ok streams=64 bytes=65536"
    );
    let received = server.join().unwrap();
    assert_eq!(
        fnv1a(&received[0]),
        fnv1a(&pattern(0, 1 << 20)),
        "the host got the guest's 1 MiB intact"
    );
    let mut concurrent: Vec<u64> = received[1..].iter().map(|bytes| fnv1a(bytes)).collect();
    let mut expected: Vec<u64> = (0..VSOCK_CLIENT_STREAMS)
        .map(|offset| fnv1a(&pattern(offset, 64 << 10)))
        .collect();
    // The streams connect in any order.
    concurrent.sort_unstable();
    expected.sort_unstable();
    assert_eq!(
        concurrent, expected,
        "each of the 64 streams arrived intact"
    );
}

/// One host → guest stream through the CONNECT handshake: sends `data`,
/// returns what came back.
fn host_to_guest_echo(uds: &Path, data: &[u8]) -> Vec<u8> {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::os::unix::net::UnixStream;

    let stream = UnixStream::connect(uds).expect("connect to the vsock socket");
    // A stalled stream fails the test instead of hanging it.
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(120)))
        .unwrap();
    stream
        .set_write_timeout(Some(std::time::Duration::from_secs(120)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    writer
        .write_all(format!("CONNECT {}\n", husk_protocol::selftest::VSOCK_ECHO_PORT).as_bytes())
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut answer = String::new();
    reader.read_line(&mut answer).unwrap();
    assert!(answer.starts_with("OK "), "handshake answer: {answer:?}");
    let data = data.to_vec();
    let sender = std::thread::spawn(move || {
        writer.write_all(&data).unwrap();
        writer.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut echoed = Vec::new();
    reader.read_to_end(&mut echoed).unwrap();
    sender.join().unwrap();
    echoed
}

#[test]
fn vsock_host_to_guest_streams_echo_1_mib_and_64_at_once() {
    use std::process::Stdio;
    use std::time::Duration;

    require_bootable_kvm();
    let artifacts = Artifacts::get();
    let scratch = Scratch::new("vsock-h2g");
    let uds = scratch.file("vsock");
    let console = scratch.file("console.log");
    let mut child = Command::new(&artifacts.vmm)
        .args([
            "--kernel",
            path(&artifacts.vmlinux),
            "--initrd",
            path(&artifacts.initramfs),
        ])
        .args([
            "--vsock",
            path(&uds),
            "--serial",
            path(&console),
            "--vcpus",
            "2",
        ])
        .args([
            "--cmdline",
            &cmdline("husk.exit=hold husk.selftest=vsock-echo"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start husk-vmm");
    let listening = "husk-init selftest vsock-echo ok listening port=5000";
    let console_text = wait_for_console(&mut child, &console, "the guest's echo server", |text| {
        text.contains(listening) || text.contains("vsock-echo failed")
    });
    assert!(
        console_text.contains(listening),
        "the guest's echo server never came up:\n{console_text}"
    );

    let big = pattern(0, 1 << 20);
    let echoed = host_to_guest_echo(&uds, &big);
    assert_eq!(echoed.len(), big.len());
    assert_eq!(fnv1a(&echoed), fnv1a(&big), "1 MiB came back intact");

    let streams: Vec<_> = (0..64)
        .map(|i| {
            let uds = uds.clone();
            std::thread::spawn(move || {
                let data: Vec<u8> = pattern(0, 64 * 1024 + i * 7)
                    .into_iter()
                    .map(|b| b ^ i as u8)
                    .collect();
                (fnv1a(&data), fnv1a(&host_to_guest_echo(&uds, &data)))
            })
        })
        .collect();
    for (i, stream) in streams.into_iter().enumerate() {
        let (sent, got) = stream.join().unwrap();
        assert_eq!(sent, got, "stream {i} came back intact");
    }

    // SAFETY: kill(2) on our own unreaped child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = husk_tests::wait_with_deadline(&mut child, Duration::from_secs(30))
        .expect("husk-vmm ends on SIGTERM");
    assert_eq!(status.code(), Some(143));
    assert!(!uds.exists(), "husk-vmm removed its vsock socket");
}
