//! Faults in the life of a `vm` container, end to end through the husk
//! command line: husk-vmm killed with SIGKILL at random moments of
//! `create`, `start` and `exec`; the guest kernel panicking under a running
//! container and under `husk run`; the container filling its root
//! filesystem. Each fault must end the husk call in flight with a clear
//! error (or let it complete), `husk state` must tell the truth afterwards
//! (`stopped`, or no such container when `create` failed and took
//! everything back), and `husk delete` must remove everything: state
//! directory, image, sockets, logs, jail directory, host cgroup and
//! processes.
//!
//! The moments of the kills are drawn from a seeded generator. Each test
//! prints its seed (`HUSK_FAULT_SEED=N`, shown with a failing test's
//! output); setting that variable replays the same moments, and
//! HUSK_FAULT_ROUNDS=N draws N moments of each kind instead of one.
//!
//! A guest kernel or initramfs that husk can tell is broken before it
//! boots is cli_faults'; an initramfs corrupt behind a valid header, which
//! only the guest kernel notices, is cli_vm's.
//!
//! Needs a KVM that boots guests (tests/run-all runs this inside the test
//! host), root, busybox-static, e2fsprogs, the guest kernel, initramfs and
//! husk-vmm (HUSK_KERNEL, HUSK_INITRAMFS, HUSK_VMM) and a built husk
//! (HUSK_BIN, else target/release/husk).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use std::{fs, thread};

use husk_tests::bundle::Bundle;
use husk_tests::husk_cli::{
    children_of, is_running, read_pid_file, read_text, reap, wait_until, HostBaseline, Husk,
    HuskRun,
};
use husk_tests::{path_str, BOOT_TIMEOUT};
use serde_json::{json, Value};

/// How long a test waits for a container (and its VM) to act on its own.
const CONTAINER_TIMEOUT: Duration = BOOT_TIMEOUT;

/// husk-vmm's status when the guest crashed: a kernel panic resets the VM
/// (vmm/src/main.rs, `EXIT_GUEST_CRASHED`).
const EXIT_GUEST_CRASHED: i32 = 250;

/// The status of a process killed with SIGKILL, as a shell shows it.
const KILLED: i32 = 128 + libc::SIGKILL;

/// The status `husk exec` gives a process whose VM went away under it:
/// 137, as if killed, or 255 when its status was lost with the VM.
const EXEC_STATUSES_OF_A_LOST_VM: [i32; 2] = [KILLED, 255];

/// A container ID of this test alone.
fn unique_id(name: &str) -> String {
    format!("fault-vm-{name}-{}", std::process::id())
}

/// A busybox bundle running `script`, given the test host's boot time.
fn bundle_running(name: &str, script: &str) -> Bundle {
    let mut bundle = Bundle::busybox(&format!("faults-vm-{name}"));
    bundle.shell(script).set(
        "/annotations",
        json!({"run.husk.vm.boot-timeout": BOOT_TIMEOUT.as_secs().to_string()}),
    );
    bundle
}

/// The file the record names under `husk.paths.extra.<key>`.
fn recorded_extra(husk: &Husk, id: &str, key: &str) -> PathBuf {
    let record: Value = serde_json::from_str(&read_text(&husk.root().join(id).join("state.json")))
        .expect("state.json is JSON");
    PathBuf::from(
        record["husk"]["paths"]["extra"][key]
            .as_str()
            .unwrap_or_else(|| panic!("the record names no {key}")),
    )
}

/// `husk create --pid-file FILE --bundle BUNDLE ID` as arguments.
fn create_args<'a>(bundle: &'a Bundle, pid_file: &'a Path, id: &'a str) -> [&'a str; 6] {
    [
        "create",
        "--bundle",
        path_str(&bundle.dir),
        "--pid-file",
        path_str(pid_file),
        id,
    ]
}

/// The container `id`, whose VM (husk-vmm, `pid`) has ended: `state` says
/// stopped with no pid, the subreaper reaps husk-vmm with `status`, verbs
/// that need the VM say it is not running, and `delete` removes every file
/// of it and leaves nothing on the host.
fn assert_stopped_then_deleted_leaving_nothing(
    husk: &Husk,
    id: &str,
    pid: i32,
    status: i32,
    baseline: &HostBaseline,
) {
    wait_until("husk-vmm ends", CONTAINER_TIMEOUT, || !is_running(pid));
    let state = husk.state(id);
    assert_eq!(state["status"], "stopped", "{state}");
    assert_eq!(state["pid"], 0, "{state}");
    assert_eq!(reap(pid), status, "husk-vmm's status");
    assert_eq!(husk.status(id), "stopped", "after husk-vmm was reaped");
    let kill = husk.run(&["kill", id, "TERM"]);
    assert!(
        kill.expect_code(1).contains("container not running"),
        "{}",
        kill.stderr
    );

    let files = husk.recorded_files(id);
    husk.run(&["delete", id]).success();
    for file in &files {
        assert!(!file.exists(), "{} is still there", file.display());
    }
    baseline.assert_nothing_left(&husk.root(), id);
    let state = husk.run(&["state", id]);
    assert!(
        state.expect_code(1).contains("does not exist"),
        "{}",
        state.stderr
    );
}

// ---- SIGKILL of husk-vmm at random moments ----

/// splitmix64: small, fast and enough to spread kills over a window.
struct Moments {
    state: u64,
}

impl Moments {
    /// From HUSK_FAULT_SEED, else the clock; the seed is printed so that a
    /// failure can be replayed.
    fn seeded(test: &str) -> Moments {
        let seed = match std::env::var("HUSK_FAULT_SEED") {
            Ok(text) => text
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("HUSK_FAULT_SEED={text:?} is not a number")),
            Err(_) => {
                let nanos = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos() as u64;
                nanos ^ u64::from(std::process::id()).rotate_left(32)
            }
        };
        eprintln!("{test}: HUSK_FAULT_SEED={seed} replays these moments");
        Moments { state: seed }
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut mixed = self.state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        mixed ^ (mixed >> 31)
    }

    /// A delay in [0, `window`).
    fn delay_within(&mut self, window: Duration) -> Duration {
        let nanos = window.as_nanos().min(u128::from(u64::MAX)) as u64;
        Duration::from_nanos(if nanos == 0 { 0 } else { self.next() % nanos })
    }

    /// Which of husk-vmm's two processes to kill.
    fn target(&mut self) -> Target {
        if self.next() % 2 == 0 {
            Target::Waiter
        } else {
            Target::Jailed
        }
    }
}

/// husk-vmm jails itself as two processes (vmm/src/jail/mod.rs): the
/// waiter, whose pid is the container's, and the jailed husk-vmm, its one
/// child, that runs the VM.
#[derive(Debug, Clone, Copy)]
enum Target {
    Waiter,
    Jailed,
}

/// The child of `pid` that runs husk-vmm (after its exec: before it, a
/// forked child still has its parent's name).
fn vmm_child_of(pid: i32) -> Option<i32> {
    children_of(pid)
        .into_iter()
        .find(|child| read_text(Path::new(&format!("/proc/{child}/comm"))).trim_end() == "husk-vmm")
}

/// Sends SIGKILL to `target` of the husk-vmm whose waiter is `waiter`: the
/// jailed process if it exists yet, else the waiter. Says what it killed.
fn kill_vmm(waiter: i32, target: Target) -> String {
    let (victim, what) = match (target, children_of(waiter).first()) {
        (Target::Jailed, Some(jailed)) => (*jailed, "the jailed husk-vmm"),
        (Target::Jailed, None) => (waiter, "the waiter (no jailed husk-vmm yet)"),
        (Target::Waiter, _) => (waiter, "the waiter"),
    };
    // SAFETY: kill(2) takes two integers; a process that has ended
    // already (ESRCH) is no error here.
    unsafe { libc::kill(victim, libc::SIGKILL) };
    format!("SIGKILL to {what} (pid {victim})")
}

/// Kills `target` of husk-vmm `delay` after this call, on a thread, unless
/// `in_flight` (the husk call the kill is aimed at) has ended by then.
fn kill_during(
    in_flight: i32,
    waiter: i32,
    delay: Duration,
    target: Target,
) -> thread::JoinHandle<Option<String>> {
    thread::spawn(move || {
        thread::sleep(delay);
        is_running(in_flight).then(|| kill_vmm(waiter, target))
    })
}

/// How long each step took on a container that met no fault: the windows
/// the kills are drawn from.
struct Windows {
    /// From husk-vmm's start to the end of `create`: the boot and the
    /// container's creation in the guest.
    create: Duration,
    start: Duration,
    exec: Duration,
}

/// What the exec of a round runs: it takes a while, so that a kill can
/// land while it runs as well as while it is being set up.
const EXEC_SCRIPT: &str = "echo exec-began; sleep 2; echo exec-ended";
const EXEC_RUN_TIME: Duration = Duration::from_secs(2);

/// Creates, starts, execs in and deletes one container, timing each step.
fn measure_windows(husk: &Husk, bundle: &Bundle) -> Windows {
    let id = unique_id("sigkill-baseline");
    let pid_file = husk.file("baseline.pid");
    let began = Instant::now();
    let create = husk.start(&create_args(bundle, &pid_file, &id));
    let mut vmm_seen = None;
    while is_running(create.pid()) && vmm_seen.is_none() {
        vmm_seen = vmm_child_of(create.pid()).map(|_| Instant::now());
        thread::sleep(Duration::from_millis(1));
    }
    create.finish().success();
    let create_window = vmm_seen.unwrap_or(began).elapsed();
    let pid = read_pid_file(&pid_file);

    let began = Instant::now();
    husk.run(&["start", &id]).success();
    let start_window = began.elapsed();
    let began = Instant::now();
    assert_eq!(
        husk.run(&["exec", &id, "sh", "-c", EXEC_SCRIPT]).success(),
        "exec-began\nexec-ended\n"
    );
    let exec_window = began.elapsed();

    husk.run(&["delete", "--force", &id]).success();
    wait_until("the baseline's husk-vmm ends", CONTAINER_TIMEOUT, || {
        !is_running(pid)
    });
    assert_eq!(reap(pid), KILLED);
    let windows = Windows {
        create: create_window,
        start: start_window,
        exec: exec_window,
    };
    eprintln!(
        "windows: create {:?} (from husk-vmm's start), start {:?}, exec {:?}",
        windows.create, windows.start, windows.exec
    );
    windows
}

/// Where in a container's life a round kills husk-vmm.
#[derive(Debug, Clone, Copy)]
enum Moment {
    /// After `create` started husk-vmm, before it returns.
    DuringCreate,
    /// After `create` returned, before `start`.
    BetweenCreateAndStart,
    DuringStart,
    /// During `exec`: while it sets up the process, or while it runs.
    DuringExec,
}

/// What one round drew and did, for the failure messages.
struct Round {
    id: String,
    moment: Moment,
    delay: Duration,
    target: Target,
}

impl std::fmt::Display for Round {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "container {}: SIGKILL {:?}, {:?} in, aimed at the {:?}",
            self.id, self.moment, self.delay, self.target
        )
    }
}

/// A kill during `create`: once husk-vmm runs, after a delay within the
/// boot window. `create` fails saying the VM ended, and takes everything
/// back; or it got to the end first, and the container is there, stopped.
fn kill_during_create(husk: &Husk, bundle: &Bundle, round: &Round) {
    let baseline = HostBaseline::take();
    let pid_file = husk.file(&format!("{}.pid", round.id));
    let create = husk.start(&create_args(bundle, &pid_file, &round.id));
    let husk_pid = create.pid();
    let (delay, target) = (round.delay, round.target);
    let killer = thread::spawn(move || {
        let vmm = loop {
            if !is_running(husk_pid) {
                return None;
            }
            if let Some(vmm) = vmm_child_of(husk_pid) {
                break vmm;
            }
            thread::sleep(Duration::from_millis(1));
        };
        thread::sleep(delay);
        is_running(husk_pid).then(|| (vmm, kill_vmm(vmm, target)))
    });
    let call = create.finish();
    let killed = killer.join().expect("the killing thread");
    eprintln!(
        "{round}: {}; create exited {:?}",
        killed
            .as_ref()
            .map_or("create ended first", |(_, what)| what),
        call.code
    );
    match call.code {
        Some(0) => {
            let pid = read_pid_file(&pid_file);
            if let Some((vmm, _)) = &killed {
                assert_eq!(*vmm, pid, "{round}: the pid file names another process");
            } else {
                // create won the race: the kill comes right after it.
                kill_vmm(pid, target);
            }
            assert_stopped_then_deleted_leaving_nothing(husk, &round.id, pid, KILLED, &baseline);
        }
        Some(1) => {
            assert!(
                killed.is_some(),
                "{round}: create failed with no kill\n{}",
                call.stderr
            );
            let first_line = call.stderr.lines().next().unwrap_or_default();
            assert!(
                first_line.starts_with(&format!(
                    "husk: create container \"{}\": vm backend: ",
                    round.id
                )),
                "{round}:\n{}",
                call.stderr
            );
            assert!(
                first_line.contains("before the guest was ready")
                    || first_line.contains("the VM went away before it answered"),
                "{round}: the error does not say the VM ended:\n{}",
                call.stderr
            );
            assert!(
                !pid_file.exists(),
                "{round}: a failed create wrote its pid file"
            );
            let state = husk.run(&["state", &round.id]);
            assert!(
                state.expect_code(1).contains("does not exist"),
                "{round}: {}",
                state.stderr
            );
            baseline.assert_nothing_left(&husk.root(), &round.id);
        }
        other => panic!("{round}: create exited {other:?}\n{}", call.stderr),
    }
}

/// Creates the round's container (started too with `started`); returns
/// husk-vmm's pid.
fn create_for(husk: &Husk, bundle: &Bundle, round: &Round, started: bool) -> i32 {
    let pid_file = husk.file(&format!("{}.pid", round.id));
    husk.run(&create_args(bundle, &pid_file, &round.id))
        .success();
    if started {
        husk.run(&["start", &round.id]).success();
    }
    read_pid_file(&pid_file)
}

/// A kill between `create` and `start`: the container is stopped, and
/// `start` says so.
fn kill_between_create_and_start(husk: &Husk, bundle: &Bundle, round: &Round) {
    let baseline = HostBaseline::take();
    let pid = create_for(husk, bundle, round, false);
    thread::sleep(round.delay);
    eprintln!("{round}: {}", kill_vmm(pid, round.target));
    wait_until("husk-vmm ends", CONTAINER_TIMEOUT, || !is_running(pid));
    let start = husk.run(&["start", &round.id]);
    assert!(
        start.expect_code(1).contains(&format!(
            "cannot start container \"{}\": it has stopped",
            round.id
        )),
        "{round}: {}",
        start.stderr
    );
    assert_stopped_then_deleted_leaving_nothing(husk, &round.id, pid, KILLED, &baseline);
}

/// A kill during `start`: it completes, or fails saying the container
/// does not run.
fn kill_during_start(husk: &Husk, bundle: &Bundle, round: &Round) {
    let baseline = HostBaseline::take();
    let pid = create_for(husk, bundle, round, false);
    let start = husk.start(&["start", &round.id]);
    let killer = kill_during(start.pid(), pid, round.delay, round.target);
    let call = start.finish();
    let killed = killer.join().expect("the killing thread");
    eprintln!(
        "{round}: {}; start exited {:?}",
        killed.as_deref().unwrap_or("start ended first"),
        call.code
    );
    match call.code {
        Some(0) => {
            if killed.is_none() {
                kill_vmm(pid, round.target);
            }
        }
        Some(1) => {
            assert!(killed.is_some(), "{round}: start failed with no kill");
            let says_it_stopped = call.stderr.contains(&format!(
                "husk: start container \"{}\": vm backend: container not running (its VM has \
                 stopped)",
                round.id
            )) || call.stderr.contains(&format!(
                "husk: cannot start container \"{}\": it has stopped",
                round.id
            ));
            assert!(says_it_stopped, "{round}:\n{}", call.stderr);
        }
        other => panic!("{round}: start exited {other:?}\n{}", call.stderr),
    }
    assert_stopped_then_deleted_leaving_nothing(husk, &round.id, pid, KILLED, &baseline);
}

/// A kill during `exec`: it completes; or the process it ran ends with the
/// VM, and it says so; or it fails saying the container does not run.
fn kill_during_exec(husk: &Husk, bundle: &Bundle, round: &Round) {
    let baseline = HostBaseline::take();
    let pid = create_for(husk, bundle, round, true);
    let exec = husk.start(&["exec", &round.id, "sh", "-c", EXEC_SCRIPT]);
    let killer = kill_during(exec.pid(), pid, round.delay, round.target);
    let call = exec.finish();
    let killed = killer.join().expect("the killing thread");
    eprintln!(
        "{round}: {}; exec exited {:?}",
        killed.as_deref().unwrap_or("exec ended first"),
        call.code
    );
    match call.code {
        Some(0) => {
            assert_eq!(call.stdout, "exec-began\nexec-ended\n", "{round}");
            if killed.is_none() {
                kill_vmm(pid, round.target);
            }
        }
        Some(code) if EXEC_STATUSES_OF_A_LOST_VM.contains(&code) => {
            assert!(killed.is_some(), "{round}: exec ended {code} with no kill");
            assert!(
                call.stderr.contains(&format!(
                    "container {}: the VM stopped while the exec process ran, which ended with it",
                    round.id
                )),
                "{round}: exec ended {code} without saying why:\n{}",
                call.stderr
            );
        }
        Some(1) => {
            assert!(killed.is_some(), "{round}: exec failed with no kill");
            let says_it_stopped = call.stderr.contains(&format!(
                "husk: exec in container \"{}\": vm backend: container not running (its VM has \
                 stopped)",
                round.id
            )) || call.stderr.contains(&format!(
                "husk: cannot exec in container \"{}\": it has stopped",
                round.id
            ));
            assert!(says_it_stopped, "{round}:\n{}", call.stderr);
        }
        other => panic!("{round}: exec exited {other:?}\n{}", call.stderr),
    }
    assert_stopped_then_deleted_leaving_nothing(husk, &round.id, pid, KILLED, &baseline);
}

#[test]
fn sigkill_of_husk_vmm_at_random_moments_of_create_start_and_exec() {
    let husk = Husk::vm("sigkill-moments");
    let bundle = bundle_running("sigkill-moments", "echo ready; sleep 1000 & wait");
    let mut moments = Moments::seeded("sigkill_of_husk_vmm_at_random_moments");
    let rounds: usize = match std::env::var("HUSK_FAULT_ROUNDS") {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("HUSK_FAULT_ROUNDS={text:?} is not a number")),
        Err(_) => 1,
    };
    let windows = measure_windows(&husk, &bundle);

    let mut number = 0;
    for _ in 0..rounds {
        for moment in [
            Moment::DuringCreate,
            Moment::BetweenCreateAndStart,
            Moment::DuringStart,
            Moment::DuringExec,
        ] {
            number += 1;
            let window = match moment {
                Moment::DuringCreate => windows.create,
                // Soon after create, or a while after.
                Moment::BetweenCreateAndStart => Duration::from_secs(1),
                Moment::DuringStart => windows.start,
                Moment::DuringExec => windows.exec.max(EXEC_RUN_TIME),
            };
            let round = Round {
                id: unique_id(&format!("sigkill-{number}")),
                moment,
                delay: moments.delay_within(window),
                target: moments.target(),
            };
            match moment {
                Moment::DuringCreate => kill_during_create(&husk, &bundle, &round),
                Moment::BetweenCreateAndStart => {
                    kill_between_create_and_start(&husk, &bundle, &round)
                }
                Moment::DuringStart => kill_during_start(&husk, &bundle, &round),
                Moment::DuringExec => kill_during_exec(&husk, &bundle, &round),
            }
        }
    }
}

// ---- the guest kernel panics ----

/// Makes the guest kernel panic from inside the container: with
/// vm.panic_on_oom at 2 the first out-of-memory panics (mm/oom_kill.c,
/// `check_panic_on_oom`: "Out of memory: compulsory panic_on_oom is
/// enabled"), and files on a tmpfs larger than the VM's memory run it out
/// (tmpfs pages cannot be reclaimed without swap). The guest kernel has no
/// magic SysRq (kernel-config/husk.config) to panic it more directly.
const PANIC_SCRIPT: &str =
    "echo 2 > /proc/sys/vm/panic_on_oom && dd if=/dev/zero of=/fill/memory bs=1M";

/// The line the guest kernel prints first when it panics so.
const PANIC_LINE: &str = "Kernel panic - not syncing: Out of memory";

/// A bundle whose container can run [`PANIC_SCRIPT`]: /proc/sys writable
/// (it is among runc's read-only paths by default) and a 4 GiB tmpfs on
/// /fill.
fn bundle_that_can_panic(name: &str, script: &str) -> Bundle {
    let mut bundle = bundle_running(name, script);
    let read_only: Vec<Value> = bundle.config["linux"]["readonlyPaths"]
        .as_array()
        .expect("the default spec has read-only paths")
        .iter()
        .filter(|path| *path != "/proc/sys")
        .cloned()
        .collect();
    let mut mounts = bundle.config["mounts"].as_array().unwrap().clone();
    mounts.push(
        json!({"destination": "/fill", "type": "tmpfs", "source": "tmpfs",
                       "options": ["nosuid", "nodev", "size=4g"]}),
    );
    bundle
        .set("/linux/readonlyPaths", Value::Array(read_only))
        .set("/mounts", Value::Array(mounts));
    bundle
}

#[test]
fn a_guest_kernel_panic_stops_the_container_and_the_exec_in_flight_says_why() {
    let husk = Husk::vm("panic-exec");
    let bundle = bundle_that_can_panic("panic-exec", "echo ready; sleep 1000 & wait");
    let id = unique_id("panic-exec");
    let baseline = HostBaseline::take();
    let pid_file = husk.file("container.pid");
    let create = husk.run(&create_args(&bundle, &pid_file, &id));
    create.success();
    let pid = read_pid_file(&pid_file);
    husk.run(&["start", &id]).success();
    wait_until("the container prints ready", CONTAINER_TIMEOUT, || {
        read_text(&create.stdout_path).contains("ready")
    });
    let console_log = recorded_extra(&husk, &id, "consoleLog");

    let call = husk.run(&["exec", &id, "sh", "-c", PANIC_SCRIPT]);

    assert!(
        call.code
            .is_some_and(|code| EXEC_STATUSES_OF_A_LOST_VM.contains(&code)),
        "exec exited {:?}, not as a process whose VM went away\nstdout:\n{}\nstderr:\n{}",
        call.code,
        call.stdout,
        call.stderr
    );
    for expected in [
        format!("container {id}: the VM stopped while the exec process ran, which ended with it"),
        format!("the guest kernel panicked: {PANIC_LINE}"),
        console_log.display().to_string(),
    ] {
        assert!(
            call.stderr.contains(&expected),
            "expected {expected:?} in exec's stderr:\n{}",
            call.stderr
        );
    }
    // The console keeps the panic until delete.
    assert!(
        read_text(&console_log).contains(PANIC_LINE),
        "no panic on the console:\n{}",
        read_text(&console_log)
    );
    assert_stopped_then_deleted_leaving_nothing(&husk, &id, pid, EXIT_GUEST_CRASHED, &baseline);
}

#[test]
fn a_guest_kernel_panic_under_run_ends_it_with_the_vms_status_and_says_why() {
    let husk = Husk::vm("panic-run");
    let bundle = bundle_that_can_panic("panic-run", PANIC_SCRIPT);
    let id = unique_id("panic-run");
    let baseline = HostBaseline::take();

    let call: HuskRun = husk.run(&[
        "--backend",
        "vm",
        "run",
        "--bundle",
        path_str(&bundle.dir),
        &id,
    ]);

    // husk-vmm's status for a crashed guest, with why: `run` removes the
    // logs that say it.
    let stderr = call.expect_code(EXIT_GUEST_CRASHED);
    for expected in [
        format!(
            "container {id}: husk-vmm exited with {EXIT_GUEST_CRASHED}: the VM failed, not the \
             container"
        ),
        format!("the guest kernel panicked: {PANIC_LINE}"),
    ] {
        assert!(
            stderr.contains(&expected),
            "expected {expected:?} in run's stderr:\n{stderr}"
        );
    }
    baseline.assert_nothing_left(&husk.root(), &id);
    let state = husk.run(&["state", &id]);
    assert!(
        state.expect_code(1).contains("does not exist"),
        "{}",
        state.stderr
    );
}

// ---- the guest's disk fills up ----

#[test]
fn a_container_that_fills_its_disk_gets_enospc_and_its_vm_stays_healthy() {
    let husk = Husk::vm("disk-full");
    let mut bundle = bundle_running("disk-full", "echo ready; sleep 1000 & wait");
    bundle.set("/root/readonly", json!(false));
    let id = unique_id("disk-full");
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
    let image = husk.recorded_files(&id).remove(0);
    let image_size = fs::metadata(&image).expect("the image").len();

    let fill = husk.run(&["exec", &id, "dd", "if=/dev/zero", "of=/fill", "bs=1M"]);

    assert_eq!(
        fill.code,
        Some(1),
        "dd did not fail\nstdout:\n{}\nstderr:\n{}",
        fill.stdout,
        fill.stderr
    );
    assert!(
        fill.stderr.contains("No space left on device"),
        "dd did not meet ENOSPC:\n{}",
        fill.stderr
    );
    // The VM carries on: the container still runs, the full disk is
    // readable, and writable again once the file goes.
    assert_eq!(husk.status(&id), "running");
    let after = husk.run(&[
        "exec",
        &id,
        "sh",
        "-c",
        "test -s /fill && echo full; rm /fill && echo written-after > /after && cat /after",
    ]);
    assert_eq!(after.success(), "full\nwritten-after\n");
    // The tenant's disk is bounded on the host: the image did not grow.
    assert_eq!(
        fs::metadata(&image).expect("the image").len(),
        image_size,
        "the image grew"
    );

    let files = husk.recorded_files(&id);
    husk.run(&["delete", "--force", &id]).success();
    wait_until("husk-vmm ends", CONTAINER_TIMEOUT, || !is_running(pid));
    assert_eq!(reap(pid), KILLED);
    for file in &files {
        assert!(!file.exists(), "{} is still there", file.display());
    }
    baseline.assert_nothing_left(&husk.root(), &id);
}
