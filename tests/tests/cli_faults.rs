//! Faults the `vm` backend meets on the host before a guest runs, through
//! the `husk` command line: the host's disk filling up while the rootfs
//! image is built, and a guest kernel or initramfs that is corrupt (not a
//! kernel or initramfs at all, or cut short). Each `create` (and `run`)
//! must fail with one clear `husk: ...` line naming the container, the file
//! and what to do, leave `husk state` saying the container does not exist,
//! and leave nothing behind: no state directory, image, partial file,
//! socket directory, process, mount or cgroup.
//!
//! A missing kernel or initramfs is cli_bad_input's; faults that need a
//! guest (husk-vmm killed, a guest kernel panic, the guest's disk full, an
//! initramfs that is corrupt behind a valid header) are faults_vm's and
//! cli_vm's.
//!
//! None of these boots anything, so they run on any host. Needs root, a
//! tmpfs, busybox-static, e2fsprogs, the guest kernel (vmlinux and the
//! bzImage beside it) and initramfs (HUSK_KERNEL, HUSK_INITRAMFS), husk-vmm
//! (HUSK_VMM, else next to husk) and a built husk (HUSK_BIN, else
//! target/debug/husk).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use husk_tests::bundle::Bundle;
use husk_tests::husk_cli::{read_text, vmm_binary, HostBaseline, Husk};
use husk_tests::{path_str, Artifacts};
use serde_json::json;

/// runc's exit status for every error of its own.
const EXIT_ERROR: i32 = 1;

/// Where the vm backend puts the sockets of a state directory whose path
/// is too long for them (shim/src/backend/vm/layout.rs).
const SHORT_SOCKET_ROOT: &str = "/run/husk-vm";

/// A container ID no other test uses at the same time: the default
/// cgroup, `/husk/<id>`, is shared by every `--root`.
fn unique_id(name: &str) -> String {
    format!("fault-{name}-{}", std::process::id())
}

/// A husk on a root of its own with the `vm` backend, booting `kernel` and
/// `initramfs`.
fn vm_husk(name: &str, kernel: &Path, initramfs: &Path) -> Husk {
    let husk = Husk::new(name).with_backend("vm");
    husk.configure(&json!({
        "kernel": kernel,
        "initramfs": initramfs,
        "vmm": vmm_binary(),
    }));
    husk
}

/// The socket directories under [`SHORT_SOCKET_ROOT`].
fn short_socket_dirs() -> Vec<PathBuf> {
    match fs::read_dir(SHORT_SOCKET_ROOT) {
        Ok(entries) => entries.flatten().map(|entry| entry.path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// `husk VERB --bundle BUNDLE ID` must fail with one `husk: MESSAGE` line
/// and nothing on stdout, leaving no container `id` (state says so) and
/// nothing of it on the host. Returns MESSAGE.
fn refused_leaving_nothing(husk: &Husk, verb: &str, bundle: &Path, id: &str) -> String {
    let sockets_before = short_socket_dirs();
    let baseline = HostBaseline::take();
    let run = husk.run(&[verb, "--bundle", path_str(bundle), id]);
    let stderr = run.expect_code(EXIT_ERROR);
    assert_eq!(run.stdout, "", "husk {verb} printed on stdout");
    let message = stderr
        .strip_prefix("husk: ")
        .and_then(|message| message.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("husk {verb}: stderr is not `husk: MESSAGE`:\n{stderr}"));
    assert!(
        !message.contains('\n'),
        "husk {verb}: one line of error, got:\n{message}"
    );
    baseline.assert_nothing_left(&husk.root(), id);
    let new_socket_dirs: Vec<PathBuf> = short_socket_dirs()
        .into_iter()
        .filter(|dir| !sockets_before.contains(dir))
        .collect();
    assert_eq!(
        new_socket_dirs,
        Vec::<PathBuf>::new(),
        "socket directories left in {SHORT_SOCKET_ROOT}"
    );
    let state = husk.run(&["state", id]);
    assert!(
        state.expect_code(EXIT_ERROR).contains("does not exist"),
        "husk state after the failed {verb}: {}",
        state.stderr
    );
    message.to_string()
}

/// Asserts `message` holds every one of `expected`.
fn assert_says(message: &str, expected: &[&str]) {
    for part in expected {
        assert!(message.contains(part), "expected {part:?} in:\n{message}");
    }
}

/// `bytes` bytes that no filesystem can store in fewer blocks: mkfs.ext4
/// -d skips blocks of zeros, and a compressing filesystem would shrink a
/// pattern (xorshift64, a fixed seed).
fn incompressible(bytes: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut data = Vec::with_capacity(bytes + 8);
    while data.len() < bytes {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data.extend_from_slice(&state.to_le_bytes());
    }
    data.truncate(bytes);
    data
}

/// A tmpfs mounted for the length of a test (mount(8)); unmounted on drop.
struct SmallDisk {
    mount_point: PathBuf,
}

impl SmallDisk {
    fn mount(mount_point: &Path, size: &str) -> SmallDisk {
        fs::create_dir_all(mount_point).expect("create the mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size},mode=0700"))
            .arg("tmpfs")
            .arg(mount_point)
            .status()
            .expect("run mount(8)");
        assert!(
            status.success(),
            "mount -t tmpfs on {} failed ({status}): this test needs root and tmpfs",
            mount_point.display()
        );
        SmallDisk {
            mount_point: mount_point.to_path_buf(),
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazily: a test that failed may have left something open there.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.mount_point)
            .status();
    }
}

#[test]
fn a_host_disk_that_fills_up_while_the_image_is_built_fails_create_and_leaves_nothing() {
    let artifacts = Artifacts::get();
    let husk = vm_husk("fault-disk-full", &artifacts.vmlinux, &artifacts.initramfs);
    // The state root, where the image is built, on an 8 MiB disk; the
    // rootfs holds three times that.
    let disk = SmallDisk::mount(&husk.root(), "8m");
    let mut bundle = Bundle::busybox("fault-disk-full");
    bundle
        .shell("echo never-runs")
        .set("/annotations", json!({"run.husk.vm.boot-timeout": "10"}));
    fs::write(bundle.rootfs().join("big"), incompressible(24 << 20))
        .expect("write a large file into the rootfs");
    let id = unique_id("disk-full");

    for verb in ["create", "run"] {
        let message = refused_leaving_nothing(&husk, verb, &bundle.dir, &id);
        let image = husk.root().join(&id).join("rootfs.ext4");
        assert_says(
            &message,
            &[
                &format!("create container \"{id}\""),
                "build the root filesystem image",
                &format!(
                    "no space left on the filesystem holding {}",
                    image.display()
                ),
                &format!("while mkfs.ext4 copied {}", bundle.rootfs().display()),
                "free space there, or give husk a --root on a filesystem with more room",
            ],
        );
        // Not even a partial file on the full disk.
        let left: Vec<PathBuf> = fs::read_dir(&disk.mount_point)
            .expect("list the state root")
            .flatten()
            .map(|entry| entry.path())
            .collect();
        assert_eq!(left, Vec::<PathBuf>::new(), "left on the full disk");
    }
    drop(disk);
}

/// One way the guest kernel or initramfs can be broken, and what husk must
/// say about it.
struct BrokenFile {
    what: &'static str,
    /// The kernel and initramfs husk is given.
    kernel: PathBuf,
    initramfs: PathBuf,
    /// The broken one of the two, and what husk says is wrong with it.
    broken: PathBuf,
    problem: String,
}

/// The first `length` bytes of `source`, as a file `name` in `husk`'s
/// scratch directory: a copy that was cut short.
fn cut_short(husk: &Husk, source: &Path, name: &str, length: usize) -> PathBuf {
    let bytes =
        fs::read(source).unwrap_or_else(|error| panic!("read {}: {error}", source.display()));
    assert!(
        bytes.len() > length,
        "{} is too small to cut",
        source.display()
    );
    let path = husk.file(name);
    fs::write(&path, &bytes[..length]).expect("write the cut copy");
    path
}

#[test]
fn a_corrupt_or_cut_short_kernel_or_initramfs_is_refused_naming_it_and_how_to_build_it() {
    let artifacts = Artifacts::get();
    let husk = Husk::new("fault-broken-boot-files").with_backend("vm");
    let garbage = husk.file("garbage");
    fs::write(
        &garbage,
        "this is no kernel and no initramfs\n".repeat(1000),
    )
    .expect("write a file of text");
    let bzimage_size = fs::metadata(&artifacts.bzimage).expect("the bzImage").len() as usize;
    let vmlinux_size = fs::metadata(&artifacts.vmlinux).expect("vmlinux").len() as usize;
    let half_bzimage = cut_short(&husk, &artifacts.bzimage, "half-bzImage", bzimage_size / 2);
    // The loadable segments of vmlinux end well before its end (symbols
    // and section headers follow them): half of it lacks some of them.
    let half_vmlinux = cut_short(&husk, &artifacts.vmlinux, "half-vmlinux", vmlinux_size / 2);
    let cases = [
        BrokenFile {
            what: "a kernel that is text",
            kernel: garbage.clone(),
            initramfs: artifacts.initramfs.clone(),
            broken: garbage.clone(),
            problem: "is neither an ELF vmlinux nor a bzImage".to_string(),
        },
        BrokenFile {
            what: "half a bzImage",
            kernel: half_bzimage.clone(),
            initramfs: artifacts.initramfs.clone(),
            broken: half_bzimage,
            problem: format!(
                "is truncated or damaged: its bzImage headers describe {bzimage_size} bytes, the \
                 file has {}",
                bzimage_size / 2
            ),
        },
        BrokenFile {
            what: "half a vmlinux",
            kernel: half_vmlinux.clone(),
            initramfs: artifacts.initramfs.clone(),
            broken: half_vmlinux,
            problem: "is truncated or damaged: its ELF headers describe".to_string(),
        },
        BrokenFile {
            what: "an initramfs that is text",
            kernel: artifacts.vmlinux.clone(),
            initramfs: garbage.clone(),
            broken: garbage.clone(),
            problem: "is not an initramfs: at byte 0 there is neither a cpio archive".to_string(),
        },
    ];
    let mut bundle = Bundle::busybox("fault-broken-boot-files");
    bundle
        .shell("echo never-runs")
        .set("/annotations", json!({"run.husk.vm.boot-timeout": "10"}));
    let config = husk.file("husk-config.json");

    for (number, case) in cases.iter().enumerate() {
        husk.configure(&json!({
            "kernel": case.kernel,
            "initramfs": case.initramfs,
            "vmm": vmm_binary(),
        }));
        let (piece, how_to_build, key) = if case.broken == case.kernel {
            (
                "guest kernel (vmlinux)",
                "kernel-config/build",
                "HUSK_KERNEL or \"kernel\"",
            )
        } else {
            (
                "guest initramfs (husk-init)",
                "guest-init/build",
                "HUSK_INITRAMFS or \"initramfs\"",
            )
        };
        let id = unique_id(&format!("broken-{number}"));
        for verb in ["create", "run"] {
            let message = refused_leaving_nothing(&husk, verb, &bundle.dir, &id);
            assert_says(
                &message,
                &[
                    &format!("create container \"{id}\""),
                    &format!("{piece} {} {}", case.broken.display(), case.problem),
                    &format!("build it with {how_to_build}"),
                    &format!("or point {key} in {} at a good one", config.display()),
                ],
            );
            assert!(
                !message.contains("boot the VM"),
                "{}: refused only once husk-vmm ran:\n{message}",
                case.what
            );
        }
    }
    // The files were read, never changed.
    assert_eq!(
        read_text(&garbage),
        "this is no kernel and no initramfs\n".repeat(1000)
    );
}
