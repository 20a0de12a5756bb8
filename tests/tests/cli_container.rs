//! The `husk` command line with the `container` backend, end to end: busybox
//! bundles created, started, signalled, exec'd into, paused, updated and
//! deleted through the real binary, the way conmon, containerd's shim and
//! docker call runc (CLIENTS.md), with the test process as the callers'
//! child subreaper.
//!
//! Needs root, busybox-static and a built husk (`cargo build -p husk-shim`,
//! or HUSK_BIN=/path/to/husk).

use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Duration;
use std::{fs, thread};

use husk_tests::bundle::Bundle;
use husk_tests::checks::Check;
use husk_tests::husk_cli::{
    check_run_of_a_spec_bundle, container_cgroup_dirs, container_cgroup_file, is_running,
    process_state, read_pid_file, read_terminal, read_text, reap, receive_console, send_signal,
    wait_for_output, wait_until, Husk, HuskRun, CONTAINER_TIMEOUT,
};
use husk_tests::path_str;
use serde_json::{json, Value};

/// A container ID no other test (or test binary) uses at the same time:
/// the default cgroup, `/husk/<id>`, is shared by every `--root`.
fn unique_id(name: &str) -> String {
    format!("cli-{name}-{}", std::process::id())
}

/// A busybox bundle whose process runs `script`.
fn bundle_running(name: &str, script: &str) -> Bundle {
    let mut bundle = Bundle::busybox(&format!("cli-{name}"));
    bundle.shell(script);
    bundle
}

/// A shell that waits for a signal: `wait` returns when one arrives, and
/// a trap can end it (a container's PID 1 only gets the signals it
/// handles, pid_namespaces(7)).
const SLEEP_IN_BACKGROUND: &str = "sleep 1000 & echo ready; wait";

/// `husk create --pid-file` of `bundle` as `id`, which must succeed;
/// returns the call (its stdout file is the container's stdout) and the
/// container init's pid from the pid file.
fn create(husk: &Husk, bundle: &Bundle, id: &str) -> (HuskRun, i32) {
    let pid_file = husk.file("init.pid");
    let create = husk.run(&[
        "create",
        "--bundle",
        path_str(&bundle.dir),
        "--pid-file",
        path_str(&pid_file),
        id,
    ]);
    create.success();
    (create, read_pid_file(&pid_file))
}

/// Starts a detached container running `script`; returns its init's pid
/// and the file its stdout goes to.
fn run_detached(husk: &Husk, bundle: &Bundle, id: &str) -> (i32, PathBuf) {
    let pid_file = husk.file(&format!("{id}.pid"));
    let run = husk.run(&[
        "run",
        "--detach",
        "--bundle",
        path_str(&bundle.dir),
        "--pid-file",
        path_str(&pid_file),
        id,
    ]);
    run.success();
    (read_pid_file(&pid_file), run.stdout_path)
}

/// The pids of the container's processes, from `husk ps --format json`.
fn container_pids(husk: &Husk, id: &str) -> Vec<i32> {
    serde_json::from_str(husk.run(&["ps", "--format", "json", id]).success()).unwrap()
}

/// Checks that nothing of the container is left: no state directory, no
/// cgroup directory, no running process among `pids`, and `husk state`
/// does not know it.
fn assert_gone(husk: &Husk, id: &str, pids: &[i32]) {
    assert!(
        !husk.root().join(id).exists(),
        "{} is still there",
        husk.root().join(id).display()
    );
    assert_eq!(
        container_cgroup_dirs(id),
        Vec::<PathBuf>::new(),
        "leftover cgroups"
    );
    for &pid in pids {
        assert!(
            !is_running(pid),
            "process {pid} of container {id} still runs"
        );
    }
    let stderr = husk.run(&["state", id]).expect_code(1).to_string();
    assert!(stderr.contains("does not exist"), "{stderr}");
}

// ---- lifecycle ----

#[test]
fn create_start_kill_delete() {
    let husk = Husk::new("lifecycle");
    let id = unique_id("lifecycle");
    let bundle = bundle_running(
        "lifecycle",
        "trap 'echo got-term; exit 42' TERM; echo started; sleep 1000 & wait",
    );
    let (create, pid) = create(&husk, &bundle, &id);

    let state = husk.state(&id);
    assert_eq!(state["status"], "created");
    assert_eq!(state["pid"], pid);
    assert_eq!(state["bundle"], path_str(&bundle.dir));
    assert_eq!(state["husk"]["backend"], "container");
    assert!(
        state["husk"]["timingsMicros"]["create_returned"].as_u64() > Some(0),
        "{state}"
    );
    // The same, in the runtime spec's annotations for tools that read only
    // those.
    assert_eq!(state["annotations"]["run.husk.backend"], "container");
    assert_eq!(
        state["annotations"]["run.husk.phase-us.create_returned"],
        state["husk"]["timingsMicros"]["create_returned"].to_string()
    );
    // runc's model: once husk has exited, the init is the caller's (this
    // subreaper's) to reap, and it waits for start before running anything.
    assert_eq!(
        process_state(pid).map(|(_, parent)| parent),
        Some(std::process::id() as i32)
    );
    assert!(is_running(pid));
    assert_eq!(read_text(&create.stdout_path), "");
    assert!(!container_cgroup_dirs(&id).is_empty());

    husk.run(&["start", &id]).success();
    wait_for_output(&create.stdout_path, "started\n");
    assert_eq!(husk.status(&id), "running");

    husk.run(&["kill", &id]).success();
    assert_eq!(
        reap(pid),
        42,
        "the subreaper sees the container's exit status"
    );
    assert_eq!(read_text(&create.stdout_path), "started\ngot-term\n");
    let state = husk.state(&id);
    assert_eq!(state["status"], "stopped");
    assert_eq!(state["pid"], 0);
    // A stopped container keeps its cgroup until it is deleted, as runc's.
    assert!(!container_cgroup_dirs(&id).is_empty());
    let stderr = husk.run(&["kill", &id, "9"]).expect_code(1).to_string();
    assert!(stderr.contains("container not running"), "{stderr}");

    husk.run(&["delete", &id]).success();
    assert_gone(&husk, &id, &[pid]);
}

#[test]
fn run_in_the_foreground_exits_with_the_container_s_status() {
    let husk = Husk::new("run");
    let id = unique_id("run");
    let bundle = bundle_running("run", "echo hello; echo oops >&2; exit 3");
    let run = husk.run(&["run", "--bundle", path_str(&bundle.dir), &id]);
    let stderr = run.expect_code(3);
    assert_eq!(run.stdout, "hello\n");
    assert_eq!(stderr, "oops\n");
    assert_gone(&husk, &id, &[]);
}

#[test]
fn run_of_a_husk_spec_bundle_holds_the_terminal_and_exec_enters_the_container() {
    let husk = Husk::new("spec-bundle");
    let id = unique_id("spec-bundle");
    check_run_of_a_spec_bundle(
        &|args| husk.command(args),
        "cli-spec-bundle",
        &id,
        CONTAINER_TIMEOUT,
    );
    assert_gone(&husk, &id, &[]);
}

#[test]
fn run_forwards_signals_and_reports_a_kill_as_128_plus_n() {
    let husk = Husk::new("run-signals");

    // SIGTERM for husk reaches the container, whose trap decides the status.
    let id = unique_id("run-term");
    let bundle = bundle_running(
        "run-term",
        &format!("trap 'echo got-term; exit 5' TERM; {SLEEP_IN_BACKGROUND}"),
    );
    let running = husk.start(&["run", "--bundle", path_str(&bundle.dir), &id]);
    wait_for_output(&running.stdout_path, "ready\n");
    send_signal(running.pid(), libc::SIGTERM);
    let run = running.finish();
    run.expect_code(5);
    assert_eq!(run.stdout, "ready\ngot-term\n");
    assert_gone(&husk, &id, &[]);

    // A container killed by signal 9 makes `run` exit 137.
    let id = unique_id("run-kill");
    let bundle = bundle_running("run-kill", SLEEP_IN_BACKGROUND);
    let running = husk.start(&["run", "--bundle", path_str(&bundle.dir), &id]);
    wait_for_output(&running.stdout_path, "ready\n");
    husk.run(&["kill", &id, "KILL"]).success();
    running.finish().expect_code(137);
    assert_gone(&husk, &id, &[]);
}

#[test]
fn run_detached_returns_while_the_container_runs() {
    let husk = Husk::new("detached");
    let id = unique_id("detached");
    let bundle = bundle_running("detached", SLEEP_IN_BACKGROUND);
    let (pid, stdout) = run_detached(&husk, &bundle, &id);
    wait_for_output(&stdout, "ready\n");
    assert!(is_running(pid));
    let state = husk.state(&id);
    assert_eq!(state["status"], "running");
    assert_eq!(state["pid"], pid);

    // Running: delete needs --force, which kills it.
    let stderr = husk.run(&["delete", &id]).expect_code(1).to_string();
    assert!(stderr.contains("not stopped"), "{stderr}");
    husk.run(&["delete", "--force", &id]).success();
    assert_eq!(reap(pid), 128 + libc::SIGKILL);
    assert_gone(&husk, &id, &[pid]);

    // containerd deletes twice; the second finds nothing and succeeds.
    husk.run(&["delete", "--force", &id]).success();
}

#[test]
fn the_annotation_picks_the_container_backend() {
    let husk = Husk::new("annotation").without_backend_flag();
    let id = unique_id("annotation");
    let mut bundle = bundle_running("annotation", SLEEP_IN_BACKGROUND);
    bundle.set("/annotations", json!({"run.husk.backend": "container"}));
    let (pid, _) = run_detached(&husk, &bundle, &id);
    let state = husk.state(&id);
    assert_eq!(state["husk"]["backend"], "container");
    assert_eq!(state["annotations"]["run.husk.backend"], "container");
    husk.run(&["delete", "--force", &id]).success();
    reap(pid);
    assert_gone(&husk, &id, &[pid]);
}

#[test]
fn poststart_and_poststop_hooks_run_and_their_failures_are_warnings() {
    let husk = Husk::new("hooks");
    let id = unique_id("hooks");
    let mut bundle = bundle_running("hooks", SLEEP_IN_BACKGROUND);
    let poststart = husk.file("poststart.json");
    let poststop = husk.file("poststop.json");
    let save_state = |path: &Path| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {}", path.display())]});
    bundle.set(
        "/hooks",
        json!({
            "poststart": [{"path": "/bin/false"}, save_state(&poststart)],
            "poststop": [save_state(&poststop)],
        }),
    );
    let (_, init) = create(&husk, &bundle, &id);

    // runtime.md: a failing poststart hook is a warning; the rest still run.
    let start = husk.run(&["start", &id]);
    let stderr = start.success_with_stderr();
    assert!(
        stderr.contains("level=warning") && stderr.contains("hooks.poststart"),
        "{stderr}"
    );
    let state: Value = serde_json::from_str(&read_text(&poststart)).unwrap();
    assert_eq!(state["id"], id.as_str());
    assert_eq!(state["status"], "running");
    assert_eq!(state["pid"], init);
    assert_eq!(state["bundle"], path_str(&bundle.dir));

    // The poststop hooks come from the configuration saved at create:
    // containerd deletes after it has removed the bundle.
    fs::remove_dir_all(&bundle.dir).unwrap();
    husk.run(&["delete", "--force", &id]).success();
    reap(init);
    let state: Value = serde_json::from_str(&read_text(&poststop)).unwrap();
    assert_eq!(state["id"], id.as_str());
    assert_eq!(state["status"], "stopped");
    assert_gone(&husk, &id, &[init]);
}

// ---- exec ----

#[test]
fn exec_with_arguments_and_with_a_process_file() {
    let husk = Husk::new("exec");
    let id = unique_id("exec");
    let mut bundle = bundle_running("exec", SLEEP_IN_BACKGROUND);
    bundle.set("/hostname", json!("box"));
    let (init, container_stdout) = run_detached(&husk, &bundle, &id);
    wait_for_output(&container_stdout, "ready\n");

    // Arguments after the ID, in the foreground: husk exits with the
    // process's status, and the process is in the container's pid
    // namespace (not its PID 1).
    let run = husk.run(&["exec", &id, "sh", "-c", "echo in-exec $$; hostname; exit 4"]);
    run.expect_code(4);
    let (first, hostname) = run.stdout.split_once('\n').unwrap();
    let exec_pid: i32 = first.strip_prefix("in-exec ").unwrap().parse().unwrap();
    assert!(exec_pid > 1, "{}", run.stdout);
    assert_eq!(hostname, "box\n");

    // --process FILE, as podman and containerd call it.
    let process_file = husk.file("process.json");
    let write_process = |script: &str| {
        fs::write(&process_file, bundle.exec_process(script).to_string()).unwrap();
    };
    write_process("echo from-file; exit 6");
    let run = husk.run(&["exec", "--process", path_str(&process_file), &id]);
    run.expect_code(6);
    assert_eq!(run.stdout, "from-file\n");

    // --detach with a pid file: husk returns once the process runs; the
    // caller (a subreaper) reaps it and gets its status.
    let pid_file = husk.file("exec.pid");
    let exec_detached = |script: &str| {
        write_process(script);
        let run = husk.run(&[
            "exec",
            "--process",
            path_str(&process_file),
            "--detach",
            "--pid-file",
            path_str(&pid_file),
            &id,
        ]);
        run.success();
        (run, read_pid_file(&pid_file))
    };
    let (run, detached) = exec_detached("echo detached; exit 9");
    assert_eq!(reap(detached), 9);
    assert_eq!(read_text(&run.stdout_path), "detached\n");

    // A detached process that keeps running is one of the container's.
    let (_, sleeper) = exec_detached("exec sleep 1000");
    let pids = container_pids(&husk, &id);
    assert!(pids.contains(&init) && pids.contains(&sleeper), "{pids:?}");

    // A program that does not exist: 127, as runc.
    let stderr = husk
        .run(&["exec", &id, "no-such-program"])
        .expect_code(127)
        .to_string();
    assert!(
        stderr.contains("exec: \"no-such-program\": executable file not found in $PATH"),
        "{stderr}"
    );

    // The container's init ends only once every process of its pid
    // namespace has been reaped (pid_namespaces(7)); the sleeper's reaper
    // is this test, which must be at it while husk deletes, as conmon is.
    let sleeper_status = thread::spawn(move || reap(sleeper));
    husk.run(&["delete", "--force", &id]).success();
    assert_eq!(sleeper_status.join().unwrap(), 128 + libc::SIGKILL);
    reap(init);
    assert_gone(&husk, &id, &[init, sleeper]);
}

#[test]
fn terminals_go_through_the_console_socket() {
    let husk = Husk::new("terminal");
    let socket_path = husk.file("console.sock");
    let listener = UnixListener::bind(&socket_path).expect("bind the console socket");

    // create --console-socket: the init's terminal (podman run -t).
    let id = unique_id("terminal");
    let mut bundle = bundle_running("terminal", "tty; echo create-tty-ok; sleep 1000 & wait");
    bundle.set("/process/terminal", json!(true));
    let pid_file = husk.file("init.pid");
    let mut creating = husk.start(&[
        "create",
        "--bundle",
        path_str(&bundle.dir),
        "--console-socket",
        path_str(&socket_path),
        "--pid-file",
        path_str(&pid_file),
        &id,
    ]);
    let init_master = receive_console(&listener, &mut creating);
    creating.finish().success();
    let init = read_pid_file(&pid_file);
    husk.run(&["start", &id]).success();

    // exec --tty --console-socket, in the foreground: the process's output
    // goes to the pty, its status to husk's.
    let mut executing = husk.start(&[
        "exec",
        "--tty",
        "--console-socket",
        path_str(&socket_path),
        &id,
        "sh",
        "-c",
        "tty; echo exec-tty-ok; exit 2",
    ]);
    let exec_master = receive_console(&listener, &mut executing);
    let console = read_terminal(exec_master);
    let run = executing.finish();
    run.expect_code(2);
    assert_eq!(
        run.stdout, "",
        "the process writes to its pty, not husk's stdout"
    );
    assert!(
        console.contains("/dev/pts/") && console.contains("exec-tty-ok\r\n"),
        "{console:?}"
    );

    husk.run(&["delete", "--force", &id]).success();
    reap(init);
    let console = read_terminal(init_master);
    assert!(
        console.contains("/dev/pts/0\r\ncreate-tty-ok\r\n"),
        "{console:?}"
    );
    assert_gone(&husk, &id, &[init]);
}

// ---- pause, resume, ps, update, events ----

#[test]
fn pause_stops_every_process_until_resume() {
    let husk = Husk::new("pause");
    let id = unique_id("pause");
    let bundle = bundle_running("pause", "while :; do echo tick; usleep 20000; done");
    let (init, stdout) = run_detached(&husk, &bundle, &id);
    wait_for_output(&stdout, "tick\n");

    husk.run(&["pause", &id]).success();
    assert_eq!(husk.status(&id), "paused");
    let freezer = container_cgroup_file(&id, "freezer", "freezer.state", "cgroup.freeze");
    let frozen = read_text(&freezer);
    assert!(matches!(frozen.trim(), "FROZEN" | "1"), "{frozen:?}");
    let ticks = read_text(&stdout).len();
    thread::sleep(Duration::from_millis(300));
    assert_eq!(
        read_text(&stdout).len(),
        ticks,
        "a paused container went on ticking"
    );
    let stderr = husk.run(&["exec", &id, "true"]).expect_code(1).to_string();
    assert!(stderr.contains("paused"), "{stderr}");
    // Refused rather than left hanging with a half-made, frozen process.
    let stderr = husk
        .run(&["exec", "--ignore-paused", &id, "true"])
        .expect_code(1)
        .to_string();
    assert!(stderr.contains("resume it first"), "{stderr}");
    let stderr = husk.run(&["pause", &id]).expect_code(1).to_string();
    assert!(stderr.contains("already paused"), "{stderr}");

    husk.run(&["resume", &id]).success();
    assert_eq!(husk.status(&id), "running");
    wait_until("ticks after resume", CONTAINER_TIMEOUT, || {
        read_text(&stdout).len() > ticks
    });

    // SIGKILL ends a paused container (podman's stop of one).
    husk.run(&["pause", &id]).success();
    husk.run(&["kill", &id, "9"]).success();
    assert_eq!(reap(init), 128 + libc::SIGKILL);
    assert_eq!(husk.status(&id), "stopped");
    husk.run(&["delete", &id]).success();
    assert_gone(&husk, &id, &[init]);

    // And delete --force of a paused one.
    let id = unique_id("pause-delete");
    let bundle = bundle_running("pause-delete", SLEEP_IN_BACKGROUND);
    let (init, stdout) = run_detached(&husk, &bundle, &id);
    wait_for_output(&stdout, "ready\n");
    husk.run(&["pause", &id]).success();
    husk.run(&["delete", "--force", &id]).success();
    assert_eq!(reap(init), 128 + libc::SIGKILL);
    assert_gone(&husk, &id, &[init]);
}

#[test]
fn ps_update_and_events() {
    let husk = Husk::new("resources");
    let id = unique_id("resources");
    let bundle = bundle_running("resources", SLEEP_IN_BACKGROUND);
    let (init, stdout) = run_detached(&husk, &bundle, &id);
    wait_for_output(&stdout, "ready\n");

    let pids = container_pids(&husk, &id);
    assert_eq!(pids.len(), 2, "the shell and its sleep: {pids:?}");
    assert!(pids.contains(&init), "{pids:?}");
    let table = husk.run(&["ps", &id]).success().to_string();
    assert!(table.contains("sleep 1000"), "{table}");

    // dockerd's update: the resources object on stdin.
    let limit = 64u64 << 20;
    husk.run_with_stdin(
        &["update", "--resources", "-", &id],
        &json!({"memory": {"limit": limit}}).to_string(),
    )
    .success();
    let limit_file = container_cgroup_file(&id, "memory", "memory.limit_in_bytes", "memory.max");
    assert_eq!(read_text(&limit_file).trim(), limit.to_string());

    let output = husk.run(&["events", "--stats", &id]).success().to_string();
    assert_eq!(output.lines().count(), 1, "{output}");
    let event: Value = serde_json::from_str(&output).unwrap();
    assert_eq!(event["type"], "stats");
    assert_eq!(event["id"], id.as_str());
    let data = &event["data"];
    assert!(
        data["memory"]["usage"]["usage"].as_u64() > Some(0),
        "{data}"
    );
    assert_eq!(data["memory"]["usage"]["limit"], limit);
    assert!(data["cpu"]["usage"]["total"].as_u64() > Some(0), "{data}");
    assert_eq!(data["pids"]["current"], 2);
    assert!(
        data["husk"]["timingsMicros"]["create_returned"].is_u64(),
        "{data}"
    );

    husk.run(&["delete", "--force", &id]).success();
    reap(init);
    assert_gone(&husk, &id, &pids);
}

// ---- kill and delete ----

#[test]
fn kill_by_number_by_name_and_all() {
    let husk = Husk::new("kill");
    for (name, args) in [("kill-number", &["9"][..]), ("kill-name", &["SIGKILL"][..])] {
        let id = unique_id(name);
        let bundle = bundle_running(name, SLEEP_IN_BACKGROUND);
        let (init, stdout) = run_detached(&husk, &bundle, &id);
        wait_for_output(&stdout, "ready\n");
        let mut kill = vec!["kill", id.as_str()];
        kill.extend_from_slice(args);
        husk.run(&kill).success();
        assert_eq!(reap(init), 137, "kill {args:?}");
        assert_eq!(husk.status(&id), "stopped");
        husk.run(&["delete", &id]).success();
        assert_gone(&husk, &id, &[init]);
    }

    // --all reaches every process of the cgroup: SIGTERM ends the sleep,
    // which has no handler, and reaches the init's trap, which is all a
    // container's PID 1 takes from outside (pid_namespaces(7)).
    let id = unique_id("kill-all");
    let bundle = bundle_running(
        "kill-all",
        "trap 'echo init-got-term' TERM; sleep 1000 & echo ready; wait; exec sleep 1000",
    );
    let (init, stdout) = run_detached(&husk, &bundle, &id);
    wait_for_output(&stdout, "ready\n");
    let pids = container_pids(&husk, &id);
    assert_eq!(pids.len(), 2, "{pids:?}");
    let child = pids.iter().copied().find(|pid| *pid != init).unwrap();
    husk.run(&["kill", "--all", &id, "TERM"]).success();
    wait_for_output(&stdout, "init-got-term\n");
    wait_until("the sleep to end", CONTAINER_TIMEOUT, || !is_running(child));
    assert!(is_running(init));
    husk.run(&["kill", "--all", &id, "9"]).success();
    assert_eq!(reap(init), 137);
    husk.run(&["delete", &id]).success();
    assert_gone(&husk, &id, &[init, child]);
}

/// runc's create leaves an init that outlives it whatever the namespaces.
#[test]
fn a_container_without_a_pid_namespace_outlives_husk_create() {
    let husk = Husk::new("no-pid-namespace");
    let id = unique_id("no-pid-namespace");
    let mut bundle = bundle_running("no-pid-namespace", SLEEP_IN_BACKGROUND);
    bundle.set(
        "/linux/namespaces",
        json!([{"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]),
    );
    let (init, stdout) = run_detached(&husk, &bundle, &id);
    wait_for_output(&stdout, "ready\n");
    assert_eq!(husk.status(&id), "running");
    husk.run(&["delete", "--force", &id]).success();
    assert_eq!(reap(init), 137);
    assert_gone(&husk, &id, &[init]);
}

#[test]
fn delete_force_of_an_unknown_container_succeeds() {
    let husk = Husk::new("unknown");
    husk.run(&["delete", "--force", &unique_id("never-created")])
        .success();
    let stderr = husk
        .run(&["delete", &unique_id("never-created")])
        .expect_code(1)
        .to_string();
    assert!(stderr.contains("does not exist"), "{stderr}");
}

#[test]
fn a_created_container_can_be_deleted_without_starting_it() {
    let husk = Husk::new("created");
    let id = unique_id("created");
    let bundle = bundle_running("created", "echo never-runs");
    let (create, init) = create(&husk, &bundle, &id);
    // containerd removes the bundle before its last delete.
    fs::remove_dir_all(&bundle.dir).unwrap();
    husk.run(&["delete", &id]).success();
    assert_eq!(reap(init), 128 + libc::SIGKILL);
    assert_eq!(read_text(&create.stdout_path), "");
    assert_gone(&husk, &id, &[init]);
}

// ---- what a bad create leaves: nothing ----

/// Runs `husk create` on a bundle that must fail: the exit code, the text
/// in the one line of stderr, and nothing left behind.
fn assert_create_refused(name: &str, bundle: &Bundle, expected: &str, code: i32) {
    let husk = Husk::new(name);
    let id = unique_id(name);
    let stderr = husk
        .run(&["create", "--bundle", path_str(&bundle.dir), &id])
        .expect_code(code)
        .to_string();
    assert!(
        stderr.contains(expected),
        "expected {expected:?} in:\n{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one line of error:\n{stderr}");
    assert!(stderr.starts_with("husk: "), "{stderr}");
    assert!(!husk.root().join(&id).exists(), "leftover state directory");
    assert_eq!(
        container_cgroup_dirs(&id),
        Vec::<PathBuf>::new(),
        "leftover cgroups"
    );
}

#[test]
fn a_bundle_without_root_names_the_field() {
    let mut bundle = Bundle::busybox("cli-no-root");
    bundle.remove("/root");
    assert_create_refused(
        "no-root",
        &bundle,
        &format!(
            "{}: root: missing",
            bundle.dir.join("config.json").display()
        ),
        1,
    );
}

#[test]
fn an_unknown_namespace_type_names_the_field() {
    let mut bundle = Bundle::busybox("cli-bad-namespace");
    bundle.set("/linux/namespaces/0", json!({"type": "pidx"}));
    assert_create_refused(
        "bad-namespace",
        &bundle,
        "config.json: linux.namespaces[0].type: unknown namespace type \"pidx\"",
        1,
    );
}

#[test]
fn a_missing_program_exits_127() {
    let mut bundle = Bundle::busybox("cli-missing-program");
    bundle.set("/process/args", json!(["no-such-program"]));
    assert_create_refused(
        "missing-program",
        &bundle,
        "exec: \"no-such-program\": executable file not found in $PATH",
        127,
    );
    // `run` too, as podman reads it.
    let husk = Husk::new("missing-program-run");
    let id = unique_id("missing-program-run");
    husk.run(&["run", "--bundle", path_str(&bundle.dir), &id])
        .expect_code(127);
    assert!(!husk.root().join(&id).exists());
    assert_eq!(container_cgroup_dirs(&id), Vec::<PathBuf>::new());
}

#[test]
fn a_failing_create_writes_a_json_error_line_to_the_log() {
    let husk = Husk::new("log");
    let id = unique_id("log");
    let mut bundle = Bundle::busybox("cli-log");
    bundle.set("/process/args", json!(["no-such-program"]));
    let log = husk.file("log.json");
    husk.run(&[
        "--log",
        path_str(&log),
        "--log-format",
        "json",
        "create",
        "--bundle",
        path_str(&bundle.dir),
        &id,
    ])
    .expect_code(127);
    let text = read_text(&log);
    let errors: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .filter(|line: &Value| line["level"] == "error")
        .collect();
    assert_eq!(errors.len(), 1, "{text}");
    let message = errors[0]["msg"].as_str().unwrap();
    assert!(
        message.contains(&format!("create container \"{id}\""))
            && message.contains("exec: \"no-such-program\": executable file not found in $PATH"),
        "{message}"
    );
    assert!(errors[0]["time"].is_string());
}

#[test]
fn unsupported_flags_are_refused_clearly() {
    let husk = Husk::new("unsupported");
    let bundle = bundle_running("unsupported", "true");
    for (flag, expected) in [
        ("--no-pivot", "--no-pivot: "),
        ("--preserve-fds=1", "--preserve-fds 1: "),
    ] {
        let id = unique_id("unsupported");
        let stderr = husk
            .run(&["create", flag, "--bundle", path_str(&bundle.dir), &id])
            .expect_code(1)
            .to_string();
        assert!(stderr.contains(expected), "{stderr}");
        assert!(stderr.contains("drop the flag"), "{stderr}");
        assert!(!husk.root().join(&id).exists());
    }
    // --no-new-keyring asks for what the engine does anyway.
    let id = unique_id("keyring");
    husk.run(&[
        "run",
        "--no-new-keyring",
        "--bundle",
        path_str(&bundle.dir),
        &id,
    ])
    .success();
}

// ---- what the container sees, through `husk run` ----

fn check_through_husk_run(check: &Check) {
    let husk = Husk::new(&format!("check-{}", check.name));
    let id = unique_id(&format!("check-{}", check.name));
    let bundle = check.bundle();
    let run = husk.run(&["run", "--bundle", path_str(&bundle.dir), &id]);
    check.verify(run.code, &run.stdout, &run.stderr);
    assert!(!Path::new(&husk.root().join(&id)).exists());
}

husk_tests::check_tests! {
    run with check_through_husk_run;
    hostname_and_pid_1 => HOSTNAME_AND_PID_1,
    all_five_capability_sets => ALL_FIVE_CAPABILITY_SETS,
    seccomp_denies_with_the_configured_errno => SECCOMP_ERRNO,
    the_exit_status_of_the_container => EXIT_STATUS,
}
