//! Real clients driving `husk` (container backend) exactly as they drive
//! runc: podman with conmon, containerd's runc v2 shim through `ctr`, and
//! dockerd. Each test loads a locally built busybox image, runs a
//! container in the foreground and one detached, execs into it, stops and
//! removes it, and checks what a user of that client would see: the
//! output, the exit codes, the container listed and then gone, and that
//! neither husk's state nor a cgroup outlives it.
//!
//! Needs root, the Debian packages podman, containerd and docker.io
//! (`scripts/install-host-deps`), and a built husk:
//!
//! ```sh
//! cargo build --release -p husk-shim
//! HUSK_BIN=$PWD/target/release/husk cargo test --release -p husk-tests --test clients -- --test-threads=1
//! ```

use std::sync::{Mutex, MutexGuard, PoisonError};

use husk_tests::clients::{
    assert_no_husk_state, build_image_archive, cgroup_dirs_of, wait_for, Ctr, Docker, Podman,
    IMAGE_HOSTNAME, IMAGE_REFERENCE,
};
use husk_tests::path_str;

/// The clients share host paths (/run/containerd for the shims) and each
/// test removes what it created there: one at a time, whatever
/// --test-threads says.
static ONE_CLIENT_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_client_at_a_time() -> MutexGuard<'static, ()> {
    ONE_CLIENT_AT_A_TIME
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// The container ID a detached `podman run`/`docker run` prints.
fn printed_id(stdout: &str) -> String {
    let id = stdout.trim().to_string();
    assert!(
        id.len() == 64 && id.bytes().all(|byte| byte.is_ascii_hexdigit()),
        "expected a container ID, got {stdout:?}"
    );
    id
}

/// A stop whose SIGTERM the container ignores (`sleep` as PID 1 has no
/// handler, so the kernel drops it, pid_namespaces(7)) goes on with
/// SIGKILL after the timeout: husk was called with 15, then with 9.
fn assert_term_then_kill(calls: &str, id: &str) {
    let position = |signal: &str| {
        calls
            .lines()
            .position(|line| line.ends_with(&format!("kill {id} {signal}")))
            .unwrap_or_else(|| panic!("no `kill {id} {signal}` among husk's calls:\n{calls}"))
    };
    assert!(
        position("15") < position("9"),
        "SIGKILL came before SIGTERM:\n{calls}"
    );
}

/// Nothing of a removed container is left: no cgroup named after it.
fn assert_no_cgroups(id: &str) {
    let left = cgroup_dirs_of(id);
    assert!(left.is_empty(), "container {id} left cgroups: {left:?}");
}

#[test]
fn podman_runs_execs_stops_and_removes_containers_through_husk() {
    let _serial = one_client_at_a_time();
    let podman = Podman::set_up();
    let archive = build_image_archive(&podman.footprint.dir);
    podman
        .run(&["load", "--input", path_str(&archive)])
        .success();
    let images = podman.run(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(
        images.success().lines().any(|line| line == IMAGE_REFERENCE),
        "{}",
        images.report()
    );

    // `podman info` asks the runtime for `--version`.
    let runtime = podman.run(&["info", "--format", "{{.Host.OCIRuntime.Version}}"]);
    assert!(
        runtime.success().starts_with("husk version"),
        "{}",
        runtime.report()
    );

    // Foreground: output and exit status pass through conmon.
    let hello = podman.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        IMAGE_REFERENCE,
        "echo",
        "hello",
    ]);
    assert_eq!(hello.success(), "hello\n", "{}", hello.report());
    podman
        .run(&[
            "run",
            "--rm",
            "--network",
            "none",
            IMAGE_REFERENCE,
            "sh",
            "-c",
            "exit 3",
        ])
        .expect_code(3);
    // podman turns a runtime error saying "not found" into 127, as a
    // shell does (CLIENTS.md).
    podman
        .run(&[
            "run",
            "--rm",
            "--network",
            "none",
            IMAGE_REFERENCE,
            "/no/such/program",
        ])
        .expect_code(127);

    // Detached, exec'd into, stopped and removed.
    let started = podman.run(&[
        "run",
        "--detach",
        "--name",
        "husk-podman",
        "--hostname",
        "podman-host",
        "--network",
        "none",
        IMAGE_REFERENCE,
        "sleep",
        "60",
    ]);
    let id = printed_id(started.success());
    assert!(
        podman.husk_root.join(&id).join("state.json").exists(),
        "husk keeps no state for {id}; its calls:\n{}",
        podman.wrapper.calls()
    );
    let listed = podman.run(&["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert!(
        listed
            .success()
            .lines()
            .any(|line| line.starts_with("husk-podman Up")),
        "{}",
        listed.report()
    );
    let hostname = podman.run(&["exec", "husk-podman", "cat", "/etc/hostname"]);
    assert_eq!(
        hostname.success().trim(),
        "podman-host",
        "{}",
        hostname.report()
    );
    podman
        .run(&["exec", "husk-podman", "sh", "-c", "exit 4"])
        .expect_code(4);

    podman
        .run(&["stop", "--time", "1", "husk-podman"])
        .success();
    assert_term_then_kill(&podman.wrapper.calls(), &id);
    let exit_code = podman.run(&["inspect", "--format", "{{.State.ExitCode}}", "husk-podman"]);
    assert_eq!(exit_code.success().trim(), "137", "{}", exit_code.report());
    podman.run(&["rm", "husk-podman"]).success();
    let all = podman.run(&["ps", "--all", "--no-trunc", "--format", "{{.ID}}"]);
    assert!(!all.success().contains(&id), "{}", all.report());
    assert_no_cgroups(&id);
    assert_no_husk_state(&podman.husk_root);

    // A terminal: husk makes the pty and hands conmon its master over
    // --console-socket; conmon relays it to podman's stdout, so podman
    // needs no terminal of its own (stdin here is /dev/null).
    let tty = podman.run(&[
        "run",
        "--rm",
        "--tty",
        "--network",
        "none",
        IMAGE_REFERENCE,
        "tty",
    ]);
    assert_eq!(tty.success().trim_end(), "/dev/pts/0", "{}", tty.report());
    assert!(
        podman.wrapper.calls().contains("--console-socket"),
        "podman never passed a console socket:\n{}",
        podman.wrapper.calls()
    );
    assert_no_husk_state(&podman.husk_root);
}

#[test]
fn containerd_runs_execs_kills_and_deletes_tasks_through_husk() {
    let _serial = one_client_at_a_time();
    let ctr = Ctr::start();
    let archive = build_image_archive(&ctr.footprint.dir);
    ctr.run(&["image", "import", path_str(&archive)]).success();
    let images = ctr.run(&["image", "ls", "--quiet"]);
    assert!(
        images.success().lines().any(|line| line == IMAGE_REFERENCE),
        "{}",
        images.report()
    );

    let hello = ctr.run_container(&["--rm", IMAGE_REFERENCE, "ctr-hello", "echo", "hello"]);
    assert_eq!(hello.success(), "hello\n", "{}", hello.report());
    ctr.run_container(&["--rm", IMAGE_REFERENCE, "ctr-exit", "sh", "-c", "exit 3"])
        .expect_code(3);

    // A task that ends on SIGTERM (a PID 1 gets only the signals it
    // handles).
    let id = "ctr-detached";
    ctr.run_container(&[
        "--detach",
        IMAGE_REFERENCE,
        id,
        "sh",
        "-c",
        "trap 'exit 0' TERM; sleep 60 & wait",
    ])
    .success();
    let (_, init_pid, status) = ctr
        .tasks()
        .into_iter()
        .find(|(task, _, _)| task == id)
        .unwrap_or_else(|| panic!("ctr task ls does not list {id}"));
    assert_eq!(status, "RUNNING");
    // The shim calls husk with `--root <runc-root>/<namespace>`.
    let husk_state = ctr.husk_root.join(&ctr.namespace).join(id);
    assert!(
        husk_state.join("state.json").exists(),
        "husk keeps no state for {id} under --runc-root; its calls:\n{}",
        ctr.wrapper.calls()
    );

    // containerd mounts no /etc/hostname: the exec'd process reads the
    // image's, which shows it runs in the container's root.
    let hostname = ctr.run(&[
        "task",
        "exec",
        "--exec-id",
        "hostname",
        id,
        "cat",
        "/etc/hostname",
    ]);
    assert_eq!(
        hostname.success().trim(),
        IMAGE_HOSTNAME,
        "{}",
        hostname.report()
    );
    ctr.run(&[
        "task",
        "exec",
        "--exec-id",
        "exit",
        id,
        "sh",
        "-c",
        "exit 4",
    ])
    .expect_code(4);

    // `ctr task ps` is `husk ps --format json`: the init and its sleep.
    let processes = ctr.run(&["task", "ps", id]);
    let pids: Vec<&str> = processes
        .success()
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert!(
        pids.contains(&init_pid.as_str()) && pids.len() >= 2,
        "expected the init ({init_pid}) and its sleep: {}",
        processes.report()
    );

    ctr.run(&["task", "kill", id]).success();
    wait_for(&format!("task {id} stopped after SIGTERM"), || {
        ctr.tasks()
            .iter()
            .any(|(task, _, status)| task == id && status == "STOPPED")
    });
    let deleted = ctr.run(&["task", "delete", id]);
    deleted.success();
    assert!(
        !deleted.stderr.contains("non-zero exit code"),
        "the trap exits 0: {}",
        deleted.report()
    );
    ctr.run(&["container", "rm", id]).success();
    assert!(ctr.tasks().iter().all(|(task, _, _)| task != id));
    let containers = ctr.run(&["container", "ls", "--quiet"]);
    assert!(
        containers.success().trim().is_empty(),
        "{}",
        containers.report()
    );
    assert_no_cgroups(id);
    assert_no_husk_state(&ctr.husk_root);
}

#[test]
fn docker_runs_execs_updates_stops_and_removes_containers_through_husk() {
    let _serial = one_client_at_a_time();
    let docker = Docker::start();
    let archive = build_image_archive(&docker.footprint.dir);
    docker
        .run(&["load", "--input", path_str(&archive)])
        .success();
    let images = docker.run(&["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(
        images.success().lines().any(|line| line == IMAGE_REFERENCE),
        "{}",
        images.report()
    );

    let hello = docker.run(&[
        "run",
        "--rm",
        "--runtime",
        "husk",
        "--network",
        "none",
        IMAGE_REFERENCE,
        "echo",
        "hello",
    ]);
    assert_eq!(hello.success(), "hello\n", "{}", hello.report());
    docker
        .run(&[
            "run",
            "--rm",
            "--runtime",
            "husk",
            "--network",
            "none",
            IMAGE_REFERENCE,
            "sh",
            "-c",
            "exit 3",
        ])
        .expect_code(3);

    let started = docker.run(&[
        "run",
        "--detach",
        "--name",
        "husk-docker",
        "--hostname",
        "docker-host",
        "--runtime",
        "husk",
        "--network",
        "none",
        IMAGE_REFERENCE,
        "sleep",
        "60",
    ]);
    let id = printed_id(started.success());
    assert!(
        docker
            .husk_root
            .join("moby")
            .join(&id)
            .join("state.json")
            .exists(),
        "husk keeps no state for {id}; its calls:\n{}",
        docker.wrapper.calls()
    );
    let listed = docker.run(&["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert!(
        listed
            .success()
            .lines()
            .any(|line| line.starts_with("husk-docker Up")),
        "{}",
        listed.report()
    );
    let hostname = docker.run(&["exec", "husk-docker", "cat", "/etc/hostname"]);
    assert_eq!(
        hostname.success().trim(),
        "docker-host",
        "{}",
        hostname.report()
    );
    docker
        .run(&["exec", "husk-docker", "sh", "-c", "exit 4"])
        .expect_code(4);

    // `docker update` reaches husk as `update --resources -` with the
    // resources JSON on stdin; the container sees its new limit.
    docker
        .run(&[
            "update",
            "--memory",
            "64m",
            "--memory-swap",
            "64m",
            "husk-docker",
        ])
        .success();
    assert!(
        docker
            .wrapper
            .calls()
            .lines()
            .any(|line| line.ends_with(&format!("update --resources - {id}"))),
        "dockerd never called `update --resources -`:\n{}",
        docker.wrapper.calls()
    );
    let limit = docker.run(&[
        "exec",
        "husk-docker",
        "sh",
        "-c",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max",
    ]);
    assert_eq!(limit.success().trim(), "67108864", "{}", limit.report());

    docker
        .run(&["stop", "--time", "1", "husk-docker"])
        .success();
    assert_term_then_kill(&docker.wrapper.calls(), &id);
    let exit_code = docker.run(&["inspect", "--format", "{{.State.ExitCode}}", "husk-docker"]);
    assert_eq!(exit_code.success().trim(), "137", "{}", exit_code.report());
    docker.run(&["rm", "husk-docker"]).success();
    let all = docker.run(&["ps", "--all", "--no-trunc", "--format", "{{.ID}}"]);
    assert!(!all.success().contains(&id), "{}", all.report());
    assert_no_cgroups(&id);
    assert_no_husk_state(&docker.husk_root);
}
