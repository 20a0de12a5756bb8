//! What the `husk` command line does with bad input, on both backends: a
//! missing bundle, a bundle without config.json, a malformed config.json,
//! an unknown, invalid or duplicate container ID, and a `vm` backend that
//! lacks its kernel or initramfs or is given something that is not a
//! kernel. Each call must fail with one clear `husk: ...` line and runc's
//! exit status (1), write that same message as the one error line of its
//! `--log` file (containerd reads it there, CLIENTS.md), and leave nothing
//! behind: no state directory, image, process, mount or cgroup.
//!
//! The `vm` backend checks its input before it boots anything, so these run
//! on any host. Needs root, busybox-static, e2fsprogs (the image of the
//! not-a-kernel test) and a built husk and husk-vmm (`cargo build --release
//! -p husk-shim -p husk-vmm`, HUSK_BIN=target/release/husk).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use husk_tests::bundle::Bundle;
use husk_tests::husk_cli::{
    is_running, read_pid_file, read_text, reap, vmm_binary, wait_for_output, HostBaseline, Husk,
};
use husk_tests::path_str;
use serde_json::{json, Value};

const BACKENDS: [&str; 2] = ["container", "vm"];

/// runc's exit status for every error of its own.
const EXIT_ERROR: i32 = 1;

/// A container ID no other test (or test binary) uses at the same time:
/// the default cgroup, `/husk/<id>`, is shared by every `--root`.
fn unique_id(name: &str) -> String {
    format!("bad-{name}-{}", std::process::id())
}

/// Numbers the log files, so that each call has one of its own.
static LOG_FILES: AtomicU32 = AtomicU32::new(0);

/// The JSON lines of a `--log-format json` file; fails the test on a line
/// that is not a JSON object with a level, a message and a time.
fn log_lines(path: &Path) -> Vec<Value> {
    read_text(path)
        .lines()
        .map(|line| {
            let entry: Value = serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("not a JSON log line ({error}): {line}"));
            assert!(
                entry["level"].is_string() && entry["msg"].is_string() && entry["time"].is_string(),
                "a log line without level, msg and time: {line}"
            );
            entry
        })
        .collect()
}

/// The messages of the error lines of a JSON log file.
fn logged_errors(path: &Path) -> Vec<String> {
    log_lines(path)
        .into_iter()
        .filter(|entry| entry["level"] == "error")
        .map(|entry| entry["msg"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Runs `husk --log FILE --log-format json ARGS...`, which must fail with
/// `code`: nothing on stdout, `husk: MESSAGE` on stderr, and MESSAGE as the
/// one error line of the log file. Returns MESSAGE.
fn refused_with_log(husk: &Husk, args: &[&str], code: i32) -> String {
    let log = husk.file(&format!(
        "husk-log-{}.json",
        LOG_FILES.fetch_add(1, Ordering::Relaxed)
    ));
    let mut arguments = vec!["--log", path_str(&log), "--log-format", "json"];
    arguments.extend_from_slice(args);
    let run = husk.run(&arguments);
    let stderr = run.expect_code(code);
    assert_eq!(run.stdout, "", "husk {args:?} printed on stdout");
    let message = stderr
        .strip_prefix("husk: ")
        .and_then(|message| message.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("husk {args:?}: stderr is not `husk: MESSAGE`:\n{stderr}"));
    assert_eq!(
        logged_errors(&log),
        [message],
        "husk {args:?}: the log's error lines, against stderr"
    );
    message.to_string()
}

/// [`refused_with_log`] for a message that must fit on one line.
fn refused(husk: &Husk, args: &[&str]) -> String {
    let message = refused_with_log(husk, args, EXIT_ERROR);
    assert!(
        !message.contains('\n'),
        "husk {args:?}: one line of error, got:\n{message}"
    );
    message
}

/// Asserts `message` holds every one of `expected`.
fn assert_says(message: &str, expected: &[&str]) {
    for part in expected {
        assert!(message.contains(part), "expected {part:?} in:\n{message}");
    }
}

/// `create` and `run` of `bundle_dir` as container `id` must both fail
/// saying `expected`, and leave nothing behind.
fn assert_create_and_run_refused(husk: &Husk, bundle_dir: &Path, id: &str, expected: &[&str]) {
    for verb in ["create", "run"] {
        let baseline = HostBaseline::take();
        let message = refused(husk, &[verb, "--bundle", path_str(bundle_dir), id]);
        assert_says(&message, expected);
        baseline.assert_nothing_left(&husk.root(), id);
    }
}

// ---- the bundle ----

#[test]
fn a_missing_bundle_directory_is_named() {
    for backend in BACKENDS {
        let husk = Husk::new(&format!("bad-no-bundle-{backend}")).with_backend(backend);
        let id = unique_id(&format!("no-bundle-{backend}"));
        let bundle = husk.file("no-such-bundle");
        assert_create_and_run_refused(
            &husk,
            &bundle,
            &id,
            &[
                &bundle.join("config.json").display().to_string(),
                "No such file or directory",
            ],
        );
    }
}

#[test]
fn a_bundle_without_config_json_names_the_file() {
    for backend in BACKENDS {
        let husk = Husk::new(&format!("bad-no-config-{backend}")).with_backend(backend);
        let id = unique_id(&format!("no-config-{backend}"));
        let bundle = Bundle::busybox(&format!("bad-no-config-{backend}"));
        fs::remove_file(bundle.dir.join("config.json")).expect("remove config.json");
        assert_create_and_run_refused(
            &husk,
            &bundle.dir,
            &id,
            &[
                &bundle.dir.join("config.json").display().to_string(),
                "No such file or directory",
            ],
        );
    }
}

#[test]
fn a_config_json_that_is_not_json_names_the_file_and_the_position() {
    for backend in BACKENDS {
        let husk = Husk::new(&format!("bad-not-json-{backend}")).with_backend(backend);
        let id = unique_id(&format!("not-json-{backend}"));
        let bundle = Bundle::busybox(&format!("bad-not-json-{backend}"));
        let config = bundle.dir.join("config.json");
        fs::write(&config, "{\"ociVersion\": \"1.0.2\",\n  process: {}\n}\n")
            .expect("write a broken config.json");
        assert_create_and_run_refused(
            &husk,
            &bundle.dir,
            &id,
            &[
                &format!("{}: not valid JSON", config.display()),
                "line 2 column 3",
            ],
        );
    }
}

#[test]
fn a_config_json_with_a_wrong_type_names_the_field() {
    for backend in BACKENDS {
        let husk = Husk::new(&format!("bad-types-{backend}")).with_backend(backend);
        let id = unique_id(&format!("types-{backend}"));
        let mut bundle = Bundle::busybox(&format!("bad-types-{backend}"));
        let config = bundle.dir.join("config.json").display().to_string();

        bundle.set("/process/args", json!("sh -c true"));
        assert_create_and_run_refused(
            &husk,
            &bundle.dir,
            &id,
            &[
                &format!("{config}: process.args: invalid type: string"),
                "expected a sequence",
            ],
        );

        bundle.set("/process/args", json!(["sh", "-c", "true"]));
        bundle.set("/process/user/uid", json!("root"));
        assert_create_and_run_refused(
            &husk,
            &bundle.dir,
            &id,
            &[&format!("{config}: process.user.uid: invalid type: string")],
        );
    }
}

#[test]
fn an_unknown_namespace_type_names_the_field() {
    for backend in BACKENDS {
        let husk = Husk::new(&format!("bad-namespace-{backend}")).with_backend(backend);
        let id = unique_id(&format!("namespace-{backend}"));
        let mut bundle = Bundle::busybox(&format!("bad-namespace-{backend}"));
        bundle.set("/linux/namespaces/1", json!({"type": "netns"}));
        assert_create_and_run_refused(
            &husk,
            &bundle.dir,
            &id,
            &[&format!(
                "{}: linux.namespaces[1].type: unknown namespace type \"netns\"",
                bundle.dir.join("config.json").display()
            )],
        );
    }
}

// ---- container IDs ----

#[test]
fn every_verb_on_an_unknown_id_says_it_does_not_exist() {
    for backend in BACKENDS {
        let husk = Husk::new(&format!("bad-unknown-{backend}")).with_backend(backend);
        let id = unique_id(&format!("unknown-{backend}"));
        let baseline = HostBaseline::take();
        let not_found = format!("container \"{id}\" does not exist");
        for args in [
            vec!["start", &id],
            vec!["kill", &id],
            vec!["kill", &id, "KILL"],
            vec!["state", &id],
            vec!["exec", &id, "true"],
            vec!["delete", &id],
            vec!["ps", &id],
            vec!["pause", &id],
            vec!["resume", &id],
            vec!["events", "--stats", &id],
            vec!["update", "--memory", "1000000", &id],
        ] {
            let message = refused(&husk, &args);
            assert_says(&message, &[&not_found, "husk list"]);
        }

        // containerd deletes twice, the second time after the container
        // is gone: --force succeeds quietly, as runc's does.
        let log = husk.file("delete-force.json");
        husk.run(&[
            "--log",
            path_str(&log),
            "--log-format",
            "json",
            "delete",
            "--force",
            &id,
        ])
        .success();
        assert_eq!(logged_errors(&log), Vec::<String>::new());

        // `list` on a root with nothing in it lists nothing.
        let listed = husk.run(&["list", "--quiet"]);
        assert_eq!(listed.success(), "");
        baseline.assert_nothing_left(&husk.root(), &id);
    }
}

#[test]
fn an_invalid_id_is_refused_before_anything_is_made() {
    for backend in BACKENDS {
        let husk = Husk::new(&format!("bad-invalid-id-{backend}")).with_backend(backend);
        let bundle = Bundle::busybox(&format!("bad-invalid-id-{backend}"));
        let escape = format!("../escape-{backend}");
        for id in [escape.as_str(), "a/b"] {
            let baseline = HostBaseline::take();
            let message = refused(&husk, &["create", "--bundle", path_str(&bundle.dir), id]);
            assert_says(&message, &[&format!("invalid container ID {id:?}")]);
            baseline.assert_nothing_left(&husk.root(), id);
        }
        assert!(
            !husk.file(&format!("escape-{backend}")).exists(),
            "a state directory was made outside --root"
        );
        let message = refused(&husk, &["create", "--bundle", path_str(&bundle.dir), ""]);
        assert_says(&message, &["invalid container ID \"\": it is empty"]);
        assert!(!husk.root().exists(), "an empty ID made the state root");
    }
}

#[test]
fn a_duplicate_id_is_refused_and_the_first_container_is_left_intact() {
    // Each call names its backend.
    let husk = Husk::new("bad-duplicate").without_backend_flag();
    let id = unique_id("duplicate");
    let baseline = HostBaseline::take();
    let mut bundle = Bundle::busybox("bad-duplicate");
    bundle.shell("echo started");
    let pid_file = husk.file("first.pid");
    let first = husk.run(&[
        "--backend",
        "container",
        "create",
        "--bundle",
        path_str(&bundle.dir),
        "--pid-file",
        path_str(&pid_file),
        &id,
    ]);
    first.success();
    let pid = read_pid_file(&pid_file);
    let state_before = husk.state(&id);

    // The ID is taken whatever the backend of the second try; `run` too.
    let second_pid_file = husk.file("second.pid");
    for (backend, verb) in [
        ("container", "create"),
        ("vm", "create"),
        ("container", "run"),
    ] {
        let message = refused(
            &husk,
            &[
                "--backend",
                backend,
                verb,
                "--bundle",
                path_str(&bundle.dir),
                "--pid-file",
                path_str(&second_pid_file),
                &id,
            ],
        );
        assert_says(
            &message,
            &[
                &format!("container ID \"{id}\" already exists"),
                &format!("husk delete {id}"),
            ],
        );
        assert!(
            !second_pid_file.exists(),
            "the refused {verb} wrote a pid file"
        );
    }

    // The first is as it was, and still starts.
    assert_eq!(husk.state(&id), state_before);
    assert!(is_running(pid), "the first container's init is gone");
    assert_eq!(read_text(&first.stdout_path), "");
    husk.run(&["start", &id]).success();
    wait_for_output(&first.stdout_path, "started\n");
    assert_eq!(reap(pid), 0);
    assert_eq!(husk.status(&id), "stopped");
    husk.run(&["delete", &id]).success();
    baseline.assert_nothing_left(&husk.root(), &id);
}

// ---- what the vm backend boots ----

/// A file where the vm backend expects its kernel or initramfs: it exists,
/// so the lookup takes it.
fn placeholder(husk: &Husk, name: &str) -> PathBuf {
    let path = husk.file(name);
    fs::write(&path, b"placeholder\n").expect("write a placeholder file");
    path
}

#[test]
fn the_vm_backend_without_its_kernel_says_how_to_build_it() {
    let bundle = Bundle::busybox("bad-no-kernel");
    let config_key = "\"kernel\" in ";

    // Named by the environment.
    let husk = Husk::new("bad-no-kernel-variable")
        .with_backend("vm")
        .with_env("HUSK_KERNEL", "/nonexistent/vmlinux");
    let id = unique_id("no-kernel-variable");
    let config = husk.file("husk-config.json").display().to_string();
    assert_create_and_run_refused(
        &husk,
        &bundle.dir,
        &id,
        &[
            &format!("create container \"{id}\""),
            "guest kernel (vmlinux) /nonexistent/vmlinux (from HUSK_KERNEL) does not exist",
            "kernel-config/build",
            &format!("HUSK_KERNEL or {config_key}{config}"),
        ],
    );

    // Named by the configuration file, which wins over the environment.
    let husk = Husk::new("bad-no-kernel-config").with_backend("vm");
    let kernel = placeholder(&husk, "vmlinux");
    let husk = husk.with_env("HUSK_KERNEL", &kernel);
    let id = unique_id("no-kernel-config");
    let config = husk.file("husk-config.json");
    fs::write(&config, r#"{"kernel": "/nonexistent/vmlinux"}"#)
        .expect("write the husk configuration");
    assert_create_and_run_refused(
        &husk,
        &bundle.dir,
        &id,
        &[
            &format!(
                "guest kernel (vmlinux) /nonexistent/vmlinux (from the configuration file {}) \
                 does not exist",
                config.display()
            ),
            "kernel-config/build",
            &format!("HUSK_KERNEL or {config_key}{}", config.display()),
        ],
    );
}

#[test]
fn the_vm_backend_without_its_initramfs_says_how_to_build_it() {
    let bundle = Bundle::busybox("bad-no-initramfs");
    let husk = Husk::new("bad-no-initramfs").with_backend("vm");
    let kernel = placeholder(&husk, "vmlinux");
    let husk = husk
        .with_env("HUSK_KERNEL", &kernel)
        .with_env("HUSK_INITRAMFS", "/nonexistent/husk-initramfs.cpio");
    let id = unique_id("no-initramfs");
    let config = husk.file("husk-config.json").display().to_string();
    assert_create_and_run_refused(
        &husk,
        &bundle.dir,
        &id,
        &[
            "guest initramfs (husk-init) /nonexistent/husk-initramfs.cpio (from HUSK_INITRAMFS) \
             does not exist",
            "guest-init/build",
            &format!("HUSK_INITRAMFS or \"initramfs\" in {config}"),
        ],
    );
}

/// What `/run/husk-vm` (where the vm backend puts the sockets of a state
/// directory whose path is too long for them) holds.
fn short_socket_dirs() -> Vec<PathBuf> {
    match fs::read_dir("/run/husk-vm") {
        Ok(entries) => entries.flatten().map(|entry| entry.path()).collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn a_kernel_that_is_not_a_kernel_fails_create_and_leaves_nothing() {
    assert!(
        Path::new("/dev/kvm").exists(),
        "no /dev/kvm here: husk-vmm opens it before it reads the kernel; this test needs it \
         (though not a KVM that can boot a guest)"
    );
    let husk = Husk::new("bad-not-a-kernel").with_backend("vm");
    // An ELF64 header and nothing it describes: whole as far as husk's
    // check of the headers goes (a file that fails that check is refused
    // before anything starts: cli_faults), but no kernel to husk-vmm's
    // loader, which runs only once the VM is being built.
    let garbage = husk.file("vmlinux");
    let mut elf = vec![0_u8; 64 * 1024];
    elf[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
    fs::write(&garbage, elf).expect("write a file that is no kernel");
    let initramfs = husk.file("husk-initramfs.cpio");
    fs::write(&initramfs, b"070701").expect("write the start of a cpio archive");
    let config = json!({
        "kernel": garbage,
        "initramfs": initramfs,
        "vmm": vmm_binary(),
    });
    fs::write(husk.file("husk-config.json"), config.to_string())
        .expect("write the husk configuration");
    let mut bundle = Bundle::busybox("bad-not-a-kernel");
    bundle.set("/annotations", json!({"run.husk.vm.boot-timeout": "20"}));
    // containerd's IDs are 64 characters: too long for the sockets to sit
    // in the state directory, so they get a directory in /run/husk-vm,
    // which must go too.
    let id = format!("{:0>64}", unique_id("not-a-kernel"));
    let sockets_before = short_socket_dirs();
    let baseline = HostBaseline::take();

    let message = refused_with_log(
        &husk,
        &["create", "--bundle", path_str(&bundle.dir), &id],
        EXIT_ERROR,
    );
    assert_says(
        &message,
        &[
            &format!("create container \"{id}\""),
            "boot the VM",
            "before the guest was ready",
            // The reason, from husk-vmm's log, which goes with the rest.
            &format!("load kernel {} into", garbage.display()),
        ],
    );
    baseline.assert_nothing_left(&husk.root(), &id);
    let sockets_after: Vec<PathBuf> = short_socket_dirs()
        .into_iter()
        .filter(|dir| !sockets_before.contains(dir))
        .collect();
    assert_eq!(
        sockets_after,
        Vec::<PathBuf>::new(),
        "socket directories left in /run/husk-vm"
    );
}
