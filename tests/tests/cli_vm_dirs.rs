//! Bind-mounted host directories with `husk --backend vm`, end to end:
//! until there is a shared filesystem, each arrives in the guest as a
//! read-only copy taken at create, on a disk of its own (README, "vm"
//! backend). The container reads the directory's files, its writes fail
//! with EROFS, the host directory is left as it was, and `delete` takes the
//! copies with the rest.
//!
//! Needs a KVM that boots guests (the nested test host provides one), root,
//! busybox-static, e2fsprogs, the guest kernel, initramfs and husk-vmm
//! (HUSK_KERNEL, HUSK_INITRAMFS, HUSK_VMM) and a built husk (HUSK_BIN, else
//! target/release/husk).

use std::fs;
use std::path::Path;

use husk_tests::bundle::Bundle;
use husk_tests::husk_cli::{Husk, HuskRun};
use husk_tests::{path_str, BOOT_TIMEOUT};
use serde_json::{json, Value};

/// How many bind-mounted host directories the vm backend takes
/// (shim/src/backend/vm/directories.rs, `MAX_DIRECTORIES`).
const MAX_DIRECTORIES: usize = 12;

/// `husk --root ROOT --backend vm run --bundle BUNDLE ID` to its end.
fn run(husk: &Husk, bundle: &Bundle, id: &str) -> HuskRun {
    husk.run(&[
        "--backend",
        "vm",
        "run",
        "--bundle",
        path_str(&bundle.dir),
        id,
    ])
}

/// Fails the test unless nothing of container `id` is left: no state
/// directory, and no directory image anywhere under the root.
fn assert_nothing_left(husk: &Husk, id: &str) {
    assert!(
        !husk.root().join(id).exists(),
        "the state directory of {id} is still there"
    );
    let mut pending = vec![husk.root()];
    while let Some(directory) = pending.pop() {
        for entry in fs::read_dir(&directory).into_iter().flatten().flatten() {
            let path = entry.path();
            assert!(
                !path.to_string_lossy().ends_with(".ext4"),
                "{} is still there",
                path.display()
            );
            if path.is_dir() {
                pending.push(path);
            }
        }
    }
}

/// A busybox bundle running `script` with `mounts` added to the default
/// ones, given the test host's boot time.
fn bundle_with_mounts(name: &str, script: &str, extra_mounts: Vec<Value>) -> Bundle {
    let mut bundle = Bundle::busybox(&format!("cli-vm-dirs-{name}"));
    let mut mounts = bundle.config["mounts"].as_array().unwrap().clone();
    mounts.extend(extra_mounts);
    bundle
        .shell(script)
        .set("/mounts", Value::Array(mounts))
        .set(
            "/annotations",
            json!({"run.husk.vm.boot-timeout": BOOT_TIMEOUT.as_secs().to_string()}),
        );
    bundle
}

/// The names in `directory`, sorted.
fn names_in(directory: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_bind_mounted_host_directory_arrives_as_a_read_only_copy() {
    let husk = Husk::vm("dirs-copy");
    let shared = husk.file("shared");
    fs::create_dir_all(shared.join("sub")).unwrap();
    fs::write(shared.join("a"), "from the host\n").unwrap();
    fs::write(shared.join("sub/b"), "from a subdirectory\n").unwrap();
    let bundle = bundle_with_mounts(
        "copy",
        "ls /data; cat /data/a /data/sub/b; touch /data/new; echo status=$?",
        vec![json!({"destination": "/data", "type": "bind",
                    "source": shared, "options": ["rbind"]})],
    );
    let id = format!("vm-dirs-copy-{}", std::process::id());

    let call = run(&husk, &bundle, &id);

    assert_eq!(
        call.code,
        Some(0),
        "husk run failed\nstdout:\n{}\nstderr:\n{}",
        call.stdout,
        call.stderr
    );
    // Exactly the directory's entries (no lost+found of the copy's own),
    // its files' contents, and a write that fails.
    assert_eq!(
        call.stdout, "a\nsub\nfrom the host\nfrom a subdirectory\nstatus=1\n",
        "stderr:\n{}",
        call.stderr
    );
    assert!(
        call.stderr.contains("/data/new: Read-only file system"),
        "touch did not fail with EROFS:\n{}",
        call.stderr
    );
    assert!(
        call.stderr.contains(&format!(
            "bind mount of the host directory {} on /data arrives as a read-only copy (guest \
             device /dev/vdb",
            shared.display()
        )),
        "no warning about the copy:\n{}",
        call.stderr
    );
    assert_eq!(
        names_in(&shared),
        ["a", "sub"],
        "the host directory changed"
    );
    assert_nothing_left(&husk, &id);
}

#[test]
fn more_directories_than_the_vm_takes_are_refused_naming_the_mount_and_leave_nothing() {
    let husk = Husk::vm("dirs-too-many");
    let shared = husk.file("shared");
    fs::create_dir_all(&shared).unwrap();
    let mounts = (0..=MAX_DIRECTORIES)
        .map(|number| {
            json!({"destination": format!("/d{number}"), "type": "bind",
                   "source": shared, "options": ["rbind"]})
        })
        .collect();
    let bundle = bundle_with_mounts("too-many", "true", mounts);
    let id = format!("vm-dirs-too-many-{}", std::process::id());

    let call = run(&husk, &bundle, &id);

    assert_eq!(call.code, Some(1), "stderr:\n{}", call.stderr);
    assert!(call.stdout.is_empty(), "{}", call.stdout);
    let default_mounts = bundle.config["mounts"].as_array().unwrap().len() - MAX_DIRECTORIES - 1;
    let first_too_many = default_mounts + MAX_DIRECTORIES;
    assert!(
        call.stderr.contains(&format!(
            "mounts[{first_too_many}] (destination /d{MAX_DIRECTORIES}): more than \
             {MAX_DIRECTORIES} bind-mounted host directories"
        )),
        "{}",
        call.stderr
    );
    assert_nothing_left(&husk, &id);
}
