//! The `husk` command line with the `vm` backend, end to end: busybox
//! bundles run, created, started, signalled, exec'd into and deleted
//! through the real binary, each container in its own VM, the way conmon
//! and containerd's shim call runc (CLIENTS.md): stdout and stderr in files
//! the container inherits, and the test process as the callers' child
//! subreaper, which reaps husk-vmm and takes its status as the container's.
//!
//! Needs a KVM that boots guests (tests/run-all runs this inside the test
//! host), root, busybox-static, e2fsprogs, the guest kernel, initramfs and
//! husk-vmm (HUSK_KERNEL, HUSK_INITRAMFS, HUSK_VMM) and a built husk
//! (HUSK_BIN, else target/release/husk).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use husk_tests::bundle::Bundle;
use husk_tests::husk_cli::{
    check_run_of_a_spec_bundle, children_of, container_cgroup_dirs, is_running, process_state,
    processes_of, read_pid_file, read_text, reap, send_signal, wait_until, HostBaseline, Husk,
};
use husk_tests::{path_str, Artifacts, BOOT_TIMEOUT};
use serde_json::{json, Value};

/// How long a test waits for a container (and its VM) to act on its own.
const CONTAINER_TIMEOUT: Duration = BOOT_TIMEOUT;

/// A container ID of this test alone.
fn unique_id(name: &str) -> String {
    format!("vm-{name}-{}", std::process::id())
}

/// A busybox bundle running `script`, given the test host's boot time.
fn bundle_running(name: &str, script: &str) -> Bundle {
    let mut bundle = Bundle::busybox(&format!("cli-vm-{name}"));
    bundle.shell(script).set(
        "/annotations",
        json!({"run.husk.vm.boot-timeout": BOOT_TIMEOUT.as_secs().to_string()}),
    );
    bundle
}

/// Fails the test unless nothing of container `id` is left: no state
/// directory, no image, no husk-vmm, no process of the container's, no
/// host cgroup.
fn assert_nothing_left(husk: &Husk, id: &str, image: Option<&Path>, vmm: Option<i32>) {
    assert!(
        !husk.root().join(id).exists(),
        "the state directory of {id} is still there"
    );
    if let Some(image) = image {
        assert!(!image.exists(), "{} is still there", image.display());
    }
    if let Some(pid) = vmm {
        assert!(!is_running(pid), "husk-vmm (pid {pid}) still runs");
    }
    assert_eq!(
        processes_of(&husk.root(), id),
        Vec::<String>::new(),
        "processes of container {id} still run"
    );
    assert_eq!(
        container_cgroup_dirs(id),
        Vec::<PathBuf>::new(),
        "the host cgroup of container {id} is still there"
    );
}

/// Waits until `pid` (a child of this subreaper) has ended, and returns its
/// status as a shell shows it.
fn reap_within(pid: i32, timeout: Duration) -> i32 {
    wait_until(&format!("process {pid} ends"), timeout, || !is_running(pid));
    reap(pid)
}

#[test]
fn run_relays_stdout_and_passes_the_exit_code_through() {
    let husk = Husk::vm("run");
    let bundle = bundle_running("run", "echo hello; echo to-stderr >&2; exit 3");
    let id = unique_id("run");
    let call = husk.run(&[
        "--backend",
        "vm",
        "run",
        "--bundle",
        path_str(&bundle.dir),
        &id,
    ]);
    call.expect_code(3);
    assert_eq!(call.stdout, "hello\n", "stderr:\n{}", call.stderr);
    assert!(call.stderr.contains("to-stderr"), "{}", call.stderr);
    assert_nothing_left(&husk, &id, None, None);
}

#[test]
fn run_of_a_husk_spec_bundle_holds_the_terminal_and_exec_enters_the_vm() {
    let husk = Husk::vm("spec-bundle");
    let id = unique_id("spec-bundle");
    check_run_of_a_spec_bundle(
        &|args| husk.command(&[&["--backend", "vm"], args].concat()),
        "cli-vm-spec-bundle",
        &id,
        husk.timeout(),
    );
    assert_nothing_left(&husk, &id, None, None);
}

#[test]
fn create_start_kill_delete_goes_through_every_status_and_leaves_nothing() {
    let husk = Husk::vm("lifecycle");
    let bundle = bundle_running(
        "lifecycle",
        "trap 'echo got-term; exit 7' TERM; echo ready; sleep 1000 & wait",
    );
    let id = unique_id("lifecycle");
    let pid_file = husk.file("container.pid");
    let create = husk.run(&[
        "--backend",
        "vm",
        "create",
        "--bundle",
        path_str(&bundle.dir),
        "--pid-file",
        path_str(&pid_file),
        &id,
    ]);
    create.success();
    let pid = read_pid_file(&pid_file);
    let state = husk.state(&id);
    assert_eq!(state["status"], "created");
    assert_eq!(state["pid"], pid);
    assert_eq!(state["husk"]["backend"], "vm");
    let timings = &state["husk"]["timingsMicros"];
    for phase in [
        "image_built",
        "vmm_spawned",
        "guest_ready",
        "container_created",
    ] {
        assert!(timings[phase].is_u64(), "no {phase} in {timings}");
        assert_eq!(
            state["annotations"][format!("run.husk.phase-us.{phase}")],
            timings[phase].to_string(),
            "the {phase} annotation"
        );
    }
    assert_eq!(state["annotations"]["run.husk.backend"], "vm");
    // The container's pid is husk-vmm's, and this subreaper is its parent,
    // as conmon is.
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).expect("husk-vmm runs");
    assert_eq!(comm.trim(), "husk-vmm");
    assert_eq!(
        process_state(pid).map(|(_, parent)| parent),
        Some(std::process::id() as i32)
    );
    let record: Value =
        serde_json::from_str(&read_text(&husk.root().join(&id).join("state.json"))).unwrap();
    let image = PathBuf::from(
        record["husk"]["paths"]["rootfsImage"]
            .as_str()
            .expect("the record names the image"),
    );
    assert!(image.is_file(), "{}", image.display());
    // The recorded pid waits outside husk-vmm's jail; its one child runs
    // the VM as a user of the container's own, which owns the image.
    let jailed = children_of(pid);
    assert_eq!(jailed.len(), 1, "the jailed husk-vmm: {jailed:?}");
    let status = read_text(&PathBuf::from(format!("/proc/{}/status", jailed[0])));
    let uid: u32 = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        .and_then(|uid| uid.parse().ok())
        .unwrap_or_else(|| panic!("no Uid in {status}"));
    assert!(
        (2_100_000_000..2_100_065_536).contains(&uid),
        "husk-vmm's jailed uid {uid}"
    );
    assert_eq!(
        fs::metadata(&image).unwrap().uid(),
        uid,
        "the image's owner"
    );

    husk.run(&["start", &id]).success();
    assert_eq!(husk.status(&id), "running");
    // The container's stdout is create's.
    wait_until("the container prints ready", CONTAINER_TIMEOUT, || {
        read_text(&create.stdout_path).contains("ready")
    });

    husk.run(&["kill", &id, "TERM"]).success();
    assert_eq!(reap_within(pid, CONTAINER_TIMEOUT), 7);
    assert_eq!(husk.status(&id), "stopped");
    assert!(read_text(&create.stdout_path).contains("got-term"));
    let error = husk.run(&["kill", &id, "KILL"]).expect_code(1).to_string();
    assert!(error.contains("container not running"), "{error}");

    husk.run(&["delete", &id]).success();
    assert_nothing_left(&husk, &id, Some(&image), Some(pid));
}

#[test]
fn exec_runs_in_the_container_with_args_stdin_and_detached() {
    let husk = Husk::vm("exec");
    let bundle = bundle_running("exec", "echo ready; sleep 1000 & wait");
    let id = unique_id("exec");
    let pid_file = husk.file("container.pid");
    husk.run(&[
        "--backend",
        "vm",
        "run",
        "--detach",
        "--bundle",
        path_str(&bundle.dir),
        "--pid-file",
        path_str(&pid_file),
        &id,
    ])
    .success();
    let pid = read_pid_file(&pid_file);

    let call = husk.run(&[
        "exec",
        &id,
        "sh",
        "-c",
        "echo \"$0:$1:$2\"; echo to-stderr >&2; exit 5",
        "zero",
        "one",
        "two three",
    ]);
    call.expect_code(5);
    assert_eq!(call.stdout, "zero:one:two three\n");
    assert!(call.stderr.contains("to-stderr"), "{}", call.stderr);

    let call = husk.run_with_stdin(&["exec", &id, "cat"], "piped in\n");
    assert_eq!(call.success(), "piped in\n");

    // --detach returns once the process runs; the pid in the pid file is
    // a host process this subreaper reaps, with the process's status.
    let exec_pid_file = husk.file("exec.pid");
    husk.run(&[
        "exec",
        "--detach",
        "--pid-file",
        path_str(&exec_pid_file),
        &id,
        "sh",
        "-c",
        "sleep 1; echo detached > /dev/shm/marker; exit 6",
    ])
    .success();
    let exec_pid = read_pid_file(&exec_pid_file);
    assert_eq!(reap_within(exec_pid, CONTAINER_TIMEOUT), 6);
    let call = husk.run(&["exec", &id, "cat", "/dev/shm/marker"]);
    assert_eq!(call.success(), "detached\n");

    // A program the container does not have: 127, as runc.
    let call = husk.run(&["exec", &id, "/bin/no-such-program"]);
    assert!(
        call.expect_code(127).contains("no-such-program"),
        "{}",
        call.stderr
    );

    husk.run(&["delete", "--force", &id]).success();
    assert_eq!(reap_within(pid, CONTAINER_TIMEOUT), 128 + libc::SIGKILL);
    assert_nothing_left(&husk, &id, None, Some(pid));
}

#[test]
fn a_bind_mounted_host_file_arrives_and_a_directory_as_a_read_only_copy_with_a_warning() {
    let husk = Husk::vm("files");
    let hosts = husk.file("hosts");
    let contents = "127.0.0.1 localhost\n10.1.2.3 from-the-host\n";
    fs::write(&hosts, contents).unwrap();
    let shared = husk.file("shared");
    fs::create_dir_all(&shared).unwrap();
    fs::write(shared.join("note"), "from a host directory\n").unwrap();
    let mut bundle = bundle_running(
        "files",
        "cat /etc/hosts /data/note; touch /data/new 2>/dev/null; echo touch=$?",
    );
    let mut mounts = bundle.config["mounts"].as_array().unwrap().clone();
    mounts.push(json!({"destination": "/etc/hosts", "type": "bind",
                       "source": hosts, "options": ["rbind", "ro"]}));
    mounts.push(json!({"destination": "/data", "type": "bind",
                       "source": shared, "options": ["rbind"]}));
    bundle.set("/mounts", Value::Array(mounts));
    let id = unique_id("files");
    let call = husk.run(&[
        "--backend",
        "vm",
        "run",
        "--bundle",
        path_str(&bundle.dir),
        &id,
    ]);
    assert_eq!(
        call.success(),
        format!("{contents}from a host directory\ntouch=1\n")
    );
    assert!(
        call.stderr.contains(&format!(
            "bind mount of the host directory {} on /data arrives as a read-only copy",
            shared.display()
        )),
        "{}",
        call.stderr
    );
    assert_nothing_left(&husk, &id, None, None);
}

#[test]
fn a_missing_program_exits_127_with_the_error_and_leaves_nothing() {
    let husk = Husk::vm("missing");
    let mut bundle = bundle_running("missing", "true");
    bundle.set("/process/args", json!(["/bin/nope"]));
    let id = unique_id("missing");
    let call = husk.run(&[
        "--backend",
        "vm",
        "run",
        "--bundle",
        path_str(&bundle.dir),
        &id,
    ]);
    let stderr = call.expect_code(127);
    assert!(stderr.contains("/bin/nope"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_nothing_left(&husk, &id, None, None);
}

// ---- faults: a VMM that dies, a guest that cannot boot ----

#[test]
fn a_vmm_killed_with_sigkill_leaves_a_stopped_container_that_delete_removes() {
    let husk = Husk::vm("sigkill");
    let bundle = bundle_running("sigkill", "sleep 600");
    let id = unique_id("sigkill");
    let baseline = HostBaseline::take();
    let pid_file = husk.file("container.pid");
    husk.run(&[
        "--backend",
        "vm",
        "run",
        "--detach",
        "--bundle",
        path_str(&bundle.dir),
        "--pid-file",
        path_str(&pid_file),
        &id,
    ])
    .success();
    let pid = read_pid_file(&pid_file);
    assert_eq!(husk.status(&id), "running");
    let files = husk.recorded_files(&id);
    assert!(files[0].is_file(), "no image {}", files[0].display());
    assert!(!container_cgroup_dirs(&id).is_empty(), "no host cgroup");

    // The VM dies with its VMM, without a word to anyone.
    send_signal(pid, libc::SIGKILL);
    wait_until("husk-vmm ends", CONTAINER_TIMEOUT, || !is_running(pid));
    // Stopped before the caller has reaped it, and after.
    let state = husk.state(&id);
    assert_eq!(state["status"], "stopped", "{state}");
    assert_eq!(state["pid"], 0, "{state}");
    assert_eq!(reap(pid), 128 + libc::SIGKILL);
    assert_eq!(husk.status(&id), "stopped");
    let call = husk.run(&["kill", &id, "TERM"]);
    assert!(
        call.expect_code(1).contains("container not running"),
        "{}",
        call.stderr
    );

    husk.run(&["delete", &id]).success();
    for file in &files {
        assert!(!file.exists(), "{} is still there", file.display());
    }
    assert_nothing_left(&husk, &id, None, Some(pid));
    baseline.assert_nothing_left(&husk.root(), &id);
    let call = husk.run(&["state", &id]);
    assert!(
        call.expect_code(1).contains("does not exist"),
        "{}",
        call.stderr
    );
}

#[test]
fn delete_force_removes_a_container_whose_vmm_was_killed_before_start() {
    let husk = Husk::vm("half-created");
    let bundle = bundle_running("half-created", "echo never-runs");
    let id = unique_id("half-created");
    let baseline = HostBaseline::take();
    let pid_file = husk.file("container.pid");
    let create = husk.run(&[
        "--backend",
        "vm",
        "create",
        "--bundle",
        path_str(&bundle.dir),
        "--pid-file",
        path_str(&pid_file),
        &id,
    ]);
    create.success();
    let pid = read_pid_file(&pid_file);
    assert_eq!(husk.status(&id), "created");
    let files = husk.recorded_files(&id);

    send_signal(pid, libc::SIGKILL);
    assert_eq!(reap_within(pid, CONTAINER_TIMEOUT), 128 + libc::SIGKILL);
    assert_eq!(husk.status(&id), "stopped");
    let call = husk.run(&["start", &id]);
    assert!(
        call.expect_code(1).contains("it has stopped"),
        "{}",
        call.stderr
    );

    husk.run(&["delete", "--force", &id]).success();
    assert_eq!(read_text(&create.stdout_path), "", "the process ran");
    for file in &files {
        assert!(!file.exists(), "{} is still there", file.display());
    }
    assert_nothing_left(&husk, &id, None, Some(pid));
    baseline.assert_nothing_left(&husk.root(), &id);
}

/// The boot timeout of the guest that cannot boot.
const SHORT_BOOT_TIMEOUT: Duration = Duration::from_secs(20);

/// Past the boot timeout, `create` may still build the image before it
/// and kill husk-vmm and clean up after it.
const CREATE_OVERHEAD: Duration = Duration::from_secs(40);

#[test]
fn a_corrupt_initramfs_fails_create_within_the_boot_timeout_and_leaves_nothing() {
    let husk = Husk::vm("corrupt-initramfs");
    let artifacts = Artifacts::get();
    // A cpio archive's magic, so that husk and husk-vmm take it (a file
    // without one is refused before anything boots: cli_faults), then
    // garbage: the guest kernel's unpacking fails, it finds no init,
    // panics, and with panic=-1 resets the VM at once (or is still at it
    // when the boot timeout ends the wait).
    let garbage = husk.file("garbage-initramfs.cpio");
    let mut state = 0x2545_f491_u32;
    let bytes: Vec<u8> = b"070701"
        .iter()
        .copied()
        .chain((0..1 << 20).map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_le_bytes()[0]
        }))
        .collect();
    fs::write(&garbage, bytes).expect("write the corrupt initramfs");
    husk.configure(&json!({
        "kernel": artifacts.vmlinux,
        "initramfs": garbage,
        "vmm": artifacts.vmm,
    }));
    let mut bundle = Bundle::busybox("cli-vm-corrupt-initramfs");
    bundle.shell("echo never-runs").set(
        "/annotations",
        json!({"run.husk.vm.boot-timeout": SHORT_BOOT_TIMEOUT.as_secs().to_string()}),
    );
    let id = unique_id("corrupt-initramfs");
    let baseline = HostBaseline::take();
    let log = husk.file("log.json");

    let started = Instant::now();
    let call = husk.run(&[
        "--log",
        path_str(&log),
        "--log-format",
        "json",
        "--backend",
        "vm",
        "create",
        "--bundle",
        path_str(&bundle.dir),
        &id,
    ]);
    let took = started.elapsed();
    let stderr = call.expect_code(1);
    assert!(
        took < SHORT_BOOT_TIMEOUT + CREATE_OVERHEAD,
        "create took {took:?} with a boot timeout of {SHORT_BOOT_TIMEOUT:?}"
    );
    assert!(
        stderr.starts_with(&format!(
            "husk: create container \"{id}\": vm backend: boot the VM: "
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("before the guest was ready")
            || stderr.contains(&format!(
                "not ready within {}.0 s",
                SHORT_BOOT_TIMEOUT.as_secs()
            )),
        "the error says neither that the VM ended nor that it timed out:\n{stderr}"
    );
    let errors: Vec<Value> = read_text(&log)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .filter(|line: &Value| line["level"] == "error")
        .collect();
    assert_eq!(errors.len(), 1, "one error line in the log:\n{errors:#?}");
    assert_eq!(
        format!("husk: {}\n", errors[0]["msg"].as_str().unwrap_or_default()),
        *stderr
    );
    assert_eq!(read_text(&call.stdout_path), "");
    assert_nothing_left(&husk, &id, None, None);
    baseline.assert_nothing_left(&husk.root(), &id);
}

/// In the VM backend the hooks whose path is on the host run on the host
/// (prestart, createRuntime, poststart, poststop, each with the state on
/// stdin), and startContainer runs inside the guest, in the container,
/// before its process: docs/engine.md.
#[test]
fn hooks_run_on_the_host_and_in_the_container_in_order() {
    let husk = Husk::vm("hooks");
    let log = husk.file("hooks.log");
    let host_hook = |stage: &str| {
        json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", format!(
                "state=$(cat); echo \"{stage} $(echo \"$state\" | grep -o '\"status\":\"[a-z]*\"')\" >> {}",
                log.display()
            )]
        })
    };
    let mut bundle = bundle_running("hooks", "cat /dev/shm/from-hook");
    bundle.set(
        "/hooks",
        json!({
            "prestart": [host_hook("prestart")],
            "createRuntime": [host_hook("createRuntime")],
            "poststart": [host_hook("poststart")],
            "poststop": [host_hook("poststop")],
            "startContainer": [{
                "path": "/bin/sh",
                "args": ["sh", "-c", "echo startContainer-in-the-container > /dev/shm/from-hook"]
            }]
        }),
    );
    let id = unique_id("hooks");
    let call = husk.run(&[
        "--backend",
        "vm",
        "run",
        "--bundle",
        path_str(&bundle.dir),
        &id,
    ]);
    assert_eq!(call.success(), "startContainer-in-the-container\n");
    let stages: Vec<String> = fs::read_to_string(&log)
        .expect("the host hooks wrote their log")
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(
        stages,
        [
            "prestart \"status\":\"creating\"",
            "createRuntime \"status\":\"creating\"",
            "poststart \"status\":\"running\"",
            "poststop \"status\":\"stopped\"",
        ],
        "host hooks in the spec's order, each with the state"
    );
    assert_nothing_left(&husk, &id, None, None);
}
