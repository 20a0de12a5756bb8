//! What a user does with each client, the same against either husk
//! backend: run a container in the foreground (output, exit code, stdin,
//! a terminal, an interactive shell), run one detached and work with it
//! (exec, pause, signals, stop, restart, update, forced removal), and
//! check what that user would notice at each step, then that nothing of
//! the container is left: no husk state, no cgroup.
//!
//! Each scenario keeps the number of containers low, since with the `vm`
//! backend every container boots a VM and the nested test host emulates
//! the CPU: one detached container takes all the steps that need a
//! running one.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use super::terminal::Terminal;
use super::{
    assert_no_husk_state, build_image_archive, cgroup_dirs_of, wait_for, Backend, ClientRun, Ctr,
    Docker, Podman, IMAGE_HOSTNAME, IMAGE_REFERENCE,
};
use crate::husk_cli::read_text;
use crate::path_str;

/// The clients share host paths (/run/containerd for the shims) and each
/// test removes what it created there: one at a time, whatever
/// --test-threads says.
static ONE_CLIENT_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_client_at_a_time() -> MutexGuard<'static, ()> {
    ONE_CLIENT_AT_A_TIME
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// A detached container's program: a line `tick` every 0.2 s, and a line
/// `got-usr1` for each SIGUSR1 (busybox sh runs the trap once the `sleep`
/// in progress ends). It has no SIGTERM handler, so as PID 1 of its pid
/// namespace it never sees SIGTERM (pid_namespaces(7)): a stop has to go
/// on with SIGKILL.
const TICKER: &str = "trap 'echo got-usr1' USR1; while :; do echo tick; sleep 0.2; done";

/// The container ID a detached `podman run`/`docker run` prints.
#[track_caller]
fn printed_id(run: &ClientRun) -> String {
    let id = run.success().trim().to_string();
    assert!(
        id.len() == 64 && id.bytes().all(|byte| byte.is_ascii_hexdigit()),
        "expected a container ID: {}",
        run.report()
    );
    id
}

/// A stop whose SIGTERM the container ignores goes on with SIGKILL after
/// the timeout: husk was called with 15, then with 9.
#[track_caller]
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
#[track_caller]
fn assert_no_cgroups(id: &str) {
    let left = cgroup_dirs_of(id);
    assert!(left.is_empty(), "container {id} left cgroups: {left:?}");
}

/// How many lines of `text` are exactly `line`.
fn count_lines(text: &str, line: &str) -> usize {
    text.lines()
        .filter(|candidate| candidate.trim_end_matches('\r') == line)
        .count()
}

/// Checks that a container printing [`TICKER`]'s ticks stops printing
/// while paused and prints again once resumed: `ticks` counts the ticks
/// the client shows so far, `pause` and `resume` ask the client.
fn assert_output_stops_while_paused(
    backend: Backend,
    timeout: Duration,
    mut ticks: impl FnMut() -> usize,
    pause: impl FnOnce(),
    resume: impl FnOnce(),
) {
    let (watch, settle) = backend.pause_watch();
    let before = ticks();
    wait_for("a new tick before the pause", timeout, || ticks() > before);
    pause();
    // A tick printed just before the freeze may still be on its way
    // through conmon, the shim or the VM's stdio relay.
    thread::sleep(settle);
    let frozen = ticks();
    thread::sleep(watch);
    let later = ticks();
    assert_eq!(
        later, frozen,
        "the paused container went on printing ({frozen} ticks, {later} after {watch:?})"
    );
    resume();
    wait_for("a new tick after the resume", timeout, || ticks() > later);
}

/// Drives `sh` on a terminal as a person would: waits for the prompt,
/// runs `tty` and an arithmetic echo, checks both answers, and leaves
/// with `exit 5`, which the client passes on as its own exit code.
fn drive_interactive_shell(mut terminal: Terminal) {
    // busybox sh prompts (`/ # ` for root) only when its stdin is a
    // terminal: the prompt already shows that `-t` gave it one.
    terminal.expect("# ");
    // The shell's echo of this line holds neither the pts path nor 42.
    terminal.send("tty; echo \"answer $((6 * 7))\"\n");
    let answer = terminal.expect("answer 42");
    assert!(
        answer.contains("/dev/pts/0"),
        "`tty` in the interactive shell did not name a pty:\n{}",
        terminal.transcript()
    );
    terminal.expect("# ");
    terminal.send("exit 5\n");
    terminal.finish().expect_code(5);
}

/// `podman run` with husk on `backend`: foreground runs (output, exit
/// codes, `-i`, `-t`, `-it`), then one detached container that is
/// exec'd into (plain, `-t`, `-u -w -e`), paused and unpaused, sent
/// SIGUSR1, stopped (SIGTERM, then SIGKILL), restarted, and removed
/// with `rm -f` while it runs.
pub fn podman(backend: Backend) {
    let _serial = one_client_at_a_time();
    let podman = Podman::set_up(backend);
    let timeout = podman.podman.timeout();
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
    let run_rm = |options: &[&str], command: &[&str]| -> Vec<String> {
        ["run", "--rm", "--network", "none"]
            .iter()
            .chain(options)
            .chain(&[IMAGE_REFERENCE])
            .chain(command)
            .map(|arg| arg.to_string())
            .collect()
    };
    let call = |args: &[String]| podman.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let hi = call(&run_rm(&[], &["echo", "hi"]));
    assert_eq!(hi.success(), "hi\n", "{}", hi.report());
    call(&run_rm(&[], &["sh", "-c", "exit 7"])).expect_code(7);
    // podman turns a runtime error saying "not found" into 127, as a
    // shell does (CLIENTS.md).
    call(&run_rm(&[], &["/no/such/program"])).expect_code(127);

    // `-i`: podman's stdin reaches the container, and its end ends `cat`.
    let input = "first line\nsecond line\n";
    let args = run_rm(&["--interactive"], &["cat"]);
    let piped = podman
        .podman
        .run_with_input(&args.iter().map(String::as_str).collect::<Vec<_>>(), input);
    assert_eq!(piped.success(), input, "{}", piped.report());

    // `-t`: husk makes the pty and hands conmon its master over
    // --console-socket; conmon relays it to podman's stdout, so podman
    // needs no terminal of its own (stdin here is /dev/null).
    let tty = call(&run_rm(&["--tty"], &["tty"]));
    assert_eq!(tty.success().trim_end(), "/dev/pts/0", "{}", tty.report());
    assert!(
        podman.wrapper.calls().contains("--console-socket"),
        "podman never passed a console socket:\n{}",
        podman.wrapper.calls()
    );

    // `-it`: an interactive shell on podman's terminal.
    let args = run_rm(&["--interactive", "--tty"], &["sh"]);
    drive_interactive_shell(
        podman
            .podman
            .run_in_terminal(&args.iter().map(String::as_str).collect::<Vec<_>>()),
    );
    assert_no_husk_state(&podman.husk_root);

    // Detached. A stop timeout of 1 s: `stop` and `rm -f` send SIGTERM,
    // which the ticker ignores, and SIGKILL after that long.
    let name = "husk-podman";
    let started = podman.run(&[
        "run",
        "--detach",
        "--name",
        name,
        "--hostname",
        "podman-host",
        "--stop-timeout",
        "1",
        "--network",
        "none",
        IMAGE_REFERENCE,
        "sh",
        "-c",
        TICKER,
    ]);
    let id = printed_id(&started);
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
            .any(|line| line.starts_with(&format!("{name} Up"))),
        "{}",
        listed.report()
    );
    let inspect = |format: &str| {
        let run = podman.run(&["inspect", "--format", format, name]);
        run.success().trim().to_string()
    };

    // exec: plain, with a terminal, and as another user in another
    // directory with another environment.
    let hostname = podman.run(&["exec", name, "cat", "/etc/hostname"]);
    assert_eq!(
        hostname.success().trim(),
        "podman-host",
        "{}",
        hostname.report()
    );
    podman
        .run(&["exec", name, "sh", "-c", "exit 4"])
        .expect_code(4);
    let exec_tty = podman.run(&["exec", "--tty", name, "tty"]);
    let exec_tty_name = exec_tty.success().trim_end();
    assert!(
        exec_tty_name
            .strip_prefix("/dev/pts/")
            .is_some_and(|number| number.parse::<u32>().is_ok()),
        "`exec --tty` gave no pty: {}",
        exec_tty.report()
    );
    let as_user = podman.run(&[
        "exec",
        "--user",
        "1000",
        "--workdir",
        "/tmp",
        "--env",
        "FOO=bar",
        name,
        "sh",
        "-c",
        "id -u; pwd; echo $FOO",
    ]);
    assert_eq!(
        as_user.success(),
        "1000\n/tmp\nbar\n",
        "{}",
        as_user.report()
    );

    // pause / unpause: the ticks stop while the container is frozen.
    let ticks = || count_lines(&podman.run(&["logs", name]).stdout, "tick");
    assert_output_stops_while_paused(
        backend,
        timeout,
        ticks,
        || {
            podman.run(&["pause", name]).success();
            assert_eq!(inspect("{{.State.Status}}"), "paused");
        },
        || {
            podman.run(&["unpause", name]).success();
            assert_eq!(inspect("{{.State.Status}}"), "running");
        },
    );

    // kill -s USR1: the container's trap answers in its log.
    podman.run(&["kill", "--signal", "USR1", name]).success();
    wait_for("`got-usr1` in podman logs", timeout, || {
        podman.run(&["logs", name]).stdout.contains("got-usr1")
    });
    assert!(
        podman
            .wrapper
            .calls()
            .lines()
            .any(|line| line.ends_with(&format!("kill {id} 10"))),
        "podman never called `kill {id} 10`:\n{}",
        podman.wrapper.calls()
    );

    // stop: SIGTERM, ignored, then SIGKILL.
    podman.run(&["stop", "--time", "1", name]).success();
    assert_term_then_kill(&podman.wrapper.calls(), &id);
    assert_eq!(inspect("{{.State.ExitCode}}"), "137");
    let stopped_pid = inspect("{{.State.Pid}}");

    // restart: the container runs again, as a new process.
    let first_start = inspect("{{.State.StartedAt}}");
    podman.run(&["restart", name]).success();
    assert_eq!(inspect("{{.State.Status}}"), "running");
    let restarted_pid = inspect("{{.State.Pid}}");
    assert!(
        restarted_pid != "0" && restarted_pid != stopped_pid,
        "the restarted container has pid {restarted_pid} (before: {stopped_pid})"
    );
    let second_start = inspect("{{.State.StartedAt}}");
    assert_ne!(second_start, first_start, "restart did not start it again");
    assert!(
        podman.husk_root.join(&id).join("state.json").exists(),
        "husk keeps no state for the restarted {id}; its calls:\n{}",
        podman.wrapper.calls()
    );

    // rm -f of the running container.
    podman.run(&["rm", "--force", name]).success();
    let all = podman.run(&["ps", "--all", "--no-trunc", "--format", "{{.ID}}"]);
    assert!(!all.success().contains(&id), "{}", all.report());
    assert_no_cgroups(&id);
    assert_no_husk_state(&podman.husk_root);
}

/// `ctr run --runc-binary husk` on `backend`: foreground runs (output,
/// exit code, `-t`), then a detached task that is exec'd into, listed
/// with `task ps`, paused and resumed, and ended with `task kill -a`,
/// and one removed with `task delete -f` while it runs.
pub fn ctr(backend: Backend) {
    let _serial = one_client_at_a_time();
    let ctr = Ctr::start(backend);
    let timeout = ctr.ctr.timeout();
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
    ctr.run_container(&["--rm", IMAGE_REFERENCE, "ctr-exit", "sh", "-c", "exit 7"])
        .expect_code(7);

    // `-t`: ctr wants a terminal of its own and relays it.
    let tty = ctr
        .ctr
        .run_in_terminal(&ctr.run_container_args(&[
            "--rm",
            "--tty",
            IMAGE_REFERENCE,
            "ctr-tty",
            "tty",
        ]))
        .finish();
    assert_eq!(tty.success().trim(), "/dev/pts/0", "{}", tty.report());

    // A task whose init ignores SIGTERM and waits for its ticker: only
    // `kill --all` reaches the ticker, which ends the wait and with it
    // the task (143: the ticker's SIGTERM). Its output goes to a file
    // (`--log-uri`), where the ticks show.
    let id = "ctr-detached";
    let log = ctr.footprint.file("ctr-detached.log");
    let log_uri = format!("file://{}", path_str(&log));
    ctr.run_container(&[
        "--detach",
        "--log-uri",
        &log_uri,
        IMAGE_REFERENCE,
        id,
        "sh",
        "-c",
        "(while :; do echo tick; sleep 0.2; done) & trap '' TERM; wait $!",
    ])
    .success();
    let task_status = || {
        ctr.tasks()
            .into_iter()
            .find(|(task, _, _)| task == id)
            .map(|(_, _, status)| status)
            .unwrap_or_default()
    };
    let (_, init_pid, status) = ctr
        .tasks()
        .into_iter()
        .find(|(task, _, _)| task == id)
        .unwrap_or_else(|| panic!("ctr task ls does not list {id}"));
    assert_eq!(status, "RUNNING");
    wait_for("the first tick in the task's log", timeout, || {
        count_lines(&read_text(&log), "tick") > 0
    });
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

    // `ctr task ps` is `husk ps --format json`: the init and its ticker
    // (and the ticker's `sleep` now and then). With the `vm` backend the
    // pids are the guest's, and the task's pid is husk-vmm's on the host
    // (README, "husk, the OCI runtime"), so only the container backend
    // lists the task's pid itself.
    let processes = ctr.run(&["task", "ps", id]);
    let pids: Vec<&str> = processes
        .success()
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert!(
        pids.len() >= 2,
        "expected the init and its ticker: {}",
        processes.report()
    );
    if backend == Backend::Container {
        assert!(
            pids.contains(&init_pid.as_str()),
            "expected the init ({init_pid}) among the task's processes: {}",
            processes.report()
        );
    }

    // pause / resume: the ticks stop while the task is frozen.
    assert_output_stops_while_paused(
        backend,
        timeout,
        || count_lines(&read_text(&log), "tick"),
        || {
            ctr.run(&["task", "pause", id]).success();
            assert_eq!(task_status(), "PAUSED");
        },
        || {
            ctr.run(&["task", "resume", id]).success();
            assert_eq!(task_status(), "RUNNING");
        },
    );

    // kill -a: SIGTERM to every process of the task.
    ctr.run(&["task", "kill", "--all", id]).success();
    assert!(
        ctr.wrapper
            .calls()
            .lines()
            .any(|line| line.ends_with(&format!("kill --all {id} 15"))),
        "the shim never called `kill --all {id} 15`:\n{}",
        ctr.wrapper.calls()
    );
    wait_for(
        &format!("task {id} stopped after kill --all"),
        timeout,
        || task_status() == "STOPPED",
    );
    // ctr reports the task's exit status when it deletes the task.
    let deleted = ctr.run(&["task", "delete", id]);
    deleted.success();
    assert!(
        deleted.stderr.contains("exit code 143"),
        "the ticker's SIGTERM ended the task: {}",
        deleted.report()
    );
    ctr.run(&["container", "rm", id]).success();
    assert_no_cgroups(id);

    // delete -f of a running task.
    let forced = "ctr-forced";
    ctr.run_container(&["--detach", IMAGE_REFERENCE, forced, "sleep", "600"])
        .success();
    assert!(ctr
        .tasks()
        .iter()
        .any(|(task, _, status)| task == forced && status == "RUNNING"));
    ctr.run(&["task", "delete", "--force", forced]).success();
    assert!(
        ctr.tasks().iter().all(|(task, _, _)| task != forced),
        "`task delete --force` left {forced} listed"
    );
    ctr.run(&["container", "rm", forced]).success();

    let containers = ctr.run(&["container", "ls", "--quiet"]);
    assert!(
        containers.success().trim().is_empty(),
        "{}",
        containers.report()
    );
    assert_no_cgroups(forced);
    assert_no_husk_state(&ctr.husk_root);
}

/// `docker run --runtime husk` on `backend`: foreground runs (output,
/// exit code, `-it`), then a detached container that is exec'd into,
/// given a new memory limit, stopped (SIGTERM, then SIGKILL), started
/// again and removed with `rm -f` while it runs.
pub fn docker(backend: Backend) {
    let _serial = one_client_at_a_time();
    let docker = Docker::start(backend);
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

    let run_rm = |options: &[&'static str], command: &[&'static str]| -> Vec<&'static str> {
        ["run", "--rm", "--runtime", "husk", "--network", "none"]
            .iter()
            .chain(options)
            .chain(&[IMAGE_REFERENCE])
            .chain(command)
            .copied()
            .collect()
    };
    let hello = docker.run(&run_rm(&[], &["echo", "hello"]));
    assert_eq!(hello.success(), "hello\n", "{}", hello.report());
    docker
        .run(&run_rm(&[], &["sh", "-c", "exit 7"]))
        .expect_code(7);

    // `-it`: docker refuses it unless its stdin is a terminal.
    drive_interactive_shell(
        docker
            .docker
            .run_in_terminal(&run_rm(&["--interactive", "--tty"], &["sh"])),
    );

    // Detached; `sleep` as PID 1 ignores SIGTERM (pid_namespaces(7)).
    let name = "husk-docker";
    let started = docker.run(&[
        "run",
        "--detach",
        "--name",
        name,
        "--hostname",
        "docker-host",
        "--runtime",
        "husk",
        "--network",
        "none",
        IMAGE_REFERENCE,
        "sleep",
        "600",
    ]);
    let id = printed_id(&started);
    let husk_state = docker.husk_root.join("moby").join(&id).join("state.json");
    assert!(
        husk_state.exists(),
        "husk keeps no state for {id}; its calls:\n{}",
        docker.wrapper.calls()
    );
    let listed = docker.run(&["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert!(
        listed
            .success()
            .lines()
            .any(|line| line.starts_with(&format!("{name} Up"))),
        "{}",
        listed.report()
    );
    let inspect = |format: &str| {
        let run = docker.run(&["inspect", "--format", format, name]);
        run.success().trim().to_string()
    };
    let hostname = docker.run(&["exec", name, "cat", "/etc/hostname"]);
    assert_eq!(
        hostname.success().trim(),
        "docker-host",
        "{}",
        hostname.report()
    );
    docker
        .run(&["exec", name, "sh", "-c", "exit 4"])
        .expect_code(4);

    // `docker update` reaches husk as `update --resources -` with the
    // resources JSON on stdin; the container sees its new limit (cgroup
    // v1 here, v2 in a VM's guest).
    docker
        .run(&["update", "--memory", "64m", "--memory-swap", "64m", name])
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
        name,
        "sh",
        "-c",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max",
    ]);
    assert_eq!(limit.success().trim(), "67108864", "{}", limit.report());

    // stop: SIGTERM, ignored, then SIGKILL.
    docker.run(&["stop", "--time", "1", name]).success();
    assert_term_then_kill(&docker.wrapper.calls(), &id);
    assert_eq!(inspect("{{.State.ExitCode}}"), "137");

    // Started again, then removed with rm -f while it runs.
    docker.run(&["start", name]).success();
    assert_eq!(inspect("{{.State.Running}}"), "true");
    assert!(
        husk_state.exists(),
        "husk keeps no state for the started {id}; its calls:\n{}",
        docker.wrapper.calls()
    );
    docker.run(&["rm", "--force", name]).success();
    let all = docker.run(&["ps", "--all", "--no-trunc", "--format", "{{.ID}}"]);
    assert!(!all.success().contains(&id), "{}", all.report());
    assert_no_cgroups(&id);
    assert_no_husk_state(&docker.husk_root);
}
