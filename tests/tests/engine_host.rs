//! The container engine on this machine, without a VM: busybox bundles run
//! through `husk-engine run`, checked from inside the container the way a
//! user would look (hostname, id, /proc/self/status, errors of denied
//! operations), processes exec'd into running containers (`--exec`) checked
//! the same way, and bad bundles checked for a clear error and nothing left
//! behind (mounts, processes, cgroups).
//!
//! Needs root, busybox-static and a built husk-engine
//! (`cargo build -p husk-init --bins`, or HUSK_ENGINE=/path/to/husk-engine).

use std::io::{BufRead, BufReader, Read};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::os::unix::prelude::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use std::{fs, thread};

use husk_tests::bundle::Bundle;
use husk_tests::checks::Check;
use husk_tests::husk_cli::read_terminal;
use husk_tests::wait_with_deadline;
use serde_json::{json, Value};

/// Each run gets this long; a container that hangs fails its test.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

fn engine() -> PathBuf {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the engine host tests create namespaces, mounts and cgroups: run them as root"
    );
    let engine = std::env::var_os("HUSK_ENGINE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .unwrap()
                .join("target/debug/husk-engine")
        });
    assert!(
        engine.is_file(),
        "{} does not exist: run `cargo build -p husk-init --bins` first (or set HUSK_ENGINE)",
        engine.display()
    );
    engine
}

struct EngineRun {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl EngineRun {
    /// The container's stdout; fails the test unless it exited 0.
    fn success(self) -> String {
        assert_eq!(
            self.code,
            Some(0),
            "husk-engine failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self.stdout
    }
}

fn unique_id(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

fn run_engine(bundle: &Bundle, id: &str, extra: &[&str]) -> EngineRun {
    let mut child = Command::new(engine())
        .args(["run", "--bundle"])
        .arg(&bundle.dir)
        .args(["--id", id])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start husk-engine");
    let stdout = read_on_a_thread(child.stdout.take().unwrap());
    let stderr = read_on_a_thread(child.stderr.take().unwrap());
    let status = wait_with_deadline(&mut child, RUN_TIMEOUT);
    let run = EngineRun {
        code: status.and_then(|status| status.code()),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    };
    assert!(
        status.is_some(),
        "husk-engine ran past {RUN_TIMEOUT:?}; stderr:\n{}",
        run.stderr
    );
    run
}

/// Reads `pipe` to its end on a thread of its own, so that neither of a
/// child's pipes can fill up and block it while the test reads the other.
fn read_on_a_thread(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    })
}

fn run(bundle: &Bundle, name: &str) -> EngineRun {
    run_engine(bundle, &unique_id(name), &[])
}

// ---- what the container sees ----

/// Runs one of the checks shared with the VM tests through husk-engine.
fn check(check: &Check) {
    let bundle = check.bundle();
    let run = run(&bundle, check.name);
    check.verify(run.code, &run.stdout, &run.stderr);
}

husk_tests::engine_check_tests! {
    run with check;
}

/// Only ipc, uts, mount and network namespaces: without a pid namespace
/// the container's process is not PID 1.
fn without_pid_namespace(bundle: &mut Bundle) -> &mut Bundle {
    bundle.set(
        "/linux/namespaces",
        json!([{"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}]),
    )
}

/// The default namespaces plus a user namespace whose root is host uid and
/// gid 100000, 65536 ids wide.
fn with_user_namespace(bundle: &mut Bundle) -> &mut Bundle {
    let mapping = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    bundle
        .set(
            "/linux/namespaces",
            json!([{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"},
                   {"type": "mount"}, {"type": "user"}, {"type": "cgroup"}]),
        )
        .set("/linux/uidMappings", mapping.clone())
        .set("/linux/gidMappings", mapping)
}

/// /proc/self/uid_map inside [`with_user_namespace`]'s container, split
/// into its fields.
const USER_NAMESPACE_UID_MAP: [&str; 3] = ["0", "100000", "65536"];

#[test]
fn without_a_pid_namespace_a_signal_death_is_128_plus_n() {
    let mut bundle = Bundle::busybox("no-pidns");
    without_pid_namespace(&mut bundle).shell("[ $$ != 1 ] && echo not-pid-1; kill -TERM $$");
    let run = run(&bundle, "no-pidns");
    assert_eq!(run.stdout, "not-pid-1\n");
    assert_eq!(
        run.code,
        Some(128 + libc::SIGTERM),
        "stderr:\n{}",
        run.stderr
    );
}

#[test]
fn sigterm_to_husk_engine_reaches_the_container() {
    let mut bundle = Bundle::busybox("forward");
    bundle.shell("trap 'echo got TERM; exit 3' TERM; echo ready; while true; do sleep 1; done");
    let mut child = Command::new(engine())
        .args(["run", "--bundle"])
        .arg(&bundle.dir)
        .args(["--id", &unique_id("forward")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start husk-engine");
    let mut stdout = child.stdout.take().unwrap();
    let mut ready = [0u8; 6];
    stdout
        .read_exact(&mut ready)
        .expect("the container says it is ready");
    assert_eq!(&ready, b"ready\n");
    // SAFETY: kill(2) with a pid we spawned and a valid signal.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let status = wait_with_deadline(&mut child, RUN_TIMEOUT).expect("husk-engine exits");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "got TERM\n");
    assert_eq!(status.code(), Some(3));
}

#[test]
fn a_namespace_given_by_path_is_joined() {
    let mut bundle = Bundle::busybox("join-net");
    // This test's network namespace: the container sees the host's
    // interfaces instead of a lone "lo".
    let path = format!("/proc/{}/ns/net", std::process::id());
    bundle
        .set(
            "/linux/namespaces/1",
            json!({"type": "network", "path": path}),
        )
        .shell("ls /sys/class/net");
    let mut host: Vec<String> = fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    host.sort();
    let output = run(&bundle, "join-net").success();
    let mut seen: Vec<&str> = output.lines().collect();
    seen.sort();
    assert_eq!(seen, host);
}

#[test]
fn user_namespace_maps_root() {
    let mut bundle = Bundle::busybox("userns");
    with_user_namespace(&mut bundle)
        .shell("id -u; cat /proc/self/uid_map; head -c 3 /dev/zero | wc -c");
    let output = run(&bundle, "userns").success();
    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(lines[0], "0");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        USER_NAMESPACE_UID_MAP
    );
    assert_eq!(lines[2], "3", "/dev/zero is bound from the host");
}

#[test]
fn hooks_run_in_order_with_the_state_on_stdin() {
    let mut bundle = Bundle::busybox("hooks");
    let log = bundle.dir.join("hooks.log");
    let host_hook = |label: &str| {
        json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("{{ printf '{label} '; cat; echo; }} >> {}", log.display())],
            "env": ["PATH=/usr/bin:/bin"]
        })
    };
    // startContainer runs inside the container: its /bin/sh is busybox and
    // /tmp is the bundle's rootfs/tmp.
    let container_hook = json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", "{ printf 'startContainer '; cat; echo; } >> /tmp/start.log"]
    });
    bundle
        .set("/root/readonly", json!(false))
        .set(
            "/hooks",
            json!({
                "prestart": [host_hook("prestart")],
                "createRuntime": [host_hook("createRuntime")],
                "createContainer": [host_hook("createContainer")],
                "startContainer": [container_hook],
                "poststart": [host_hook("poststart")],
                "poststop": [host_hook("poststop")]
            }),
        )
        .shell("echo process");
    let id = unique_id("hooks");
    let output = run_engine(&bundle, &id, &[]).success();
    assert_eq!(output, "process\n");

    let text = fs::read_to_string(&log).expect("the hooks wrote their log");
    let entries: Vec<(String, serde_json::Value)> = text
        .lines()
        .map(|line| {
            let (label, state) = line.split_once(' ').expect("label and state");
            (
                label.to_owned(),
                serde_json::from_str(state).expect("the state is JSON"),
            )
        })
        .collect();
    let labels: Vec<&str> = entries.iter().map(|(label, _)| label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "poststart",
            "poststop"
        ]
    );
    let statuses: Vec<&str> = entries
        .iter()
        .map(|(_, state)| state["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["creating", "creating", "creating", "running", "stopped"]
    );
    for (label, state) in &entries {
        assert_eq!(state["id"], json!(id), "{label}");
        assert!(
            state["pid"].as_i64().unwrap() > 1,
            "{label}: the init's host pid"
        );
        assert_eq!(
            state["bundle"],
            json!(bundle.dir.to_str().unwrap()),
            "{label}"
        );
    }
    let start =
        fs::read_to_string(bundle.rootfs().join("tmp/start.log")).expect("startContainer ran");
    let (label, state) = start.trim_end().split_once(' ').unwrap();
    assert_eq!(label, "startContainer");
    let state: serde_json::Value = serde_json::from_str(state).unwrap();
    assert_eq!(state["status"], "created");
}

#[test]
fn terminal_goes_through_the_console_socket() {
    let mut bundle = Bundle::busybox("terminal");
    bundle
        .set("/process/terminal", json!(true))
        .set("/process/consoleSize", json!({"height": 30, "width": 100}))
        .shell("echo hello from the tty; tty; stty size");
    let socket_path = bundle.dir.join("console.sock");
    let receiver = console_output(&socket_path);
    let run = run_engine(
        &bundle,
        &unique_id("terminal"),
        &["--console-socket", socket_path.to_str().unwrap()],
    );
    let stdout = run.success();
    assert_eq!(
        stdout, "",
        "the process writes to the pty, not to husk-engine's stdout"
    );
    let console = receiver.join().unwrap();
    assert_eq!(console, "hello from the tty\r\n/dev/pts/0\r\n30 100\r\n");
}

/// Listens on a console socket at `path` (runc's --console-socket) and, on
/// a thread, takes the pty master husk-engine sends there and reads from
/// it everything the container writes to its terminal.
fn console_output(path: &Path) -> thread::JoinHandle<String> {
    let listener = UnixListener::bind(path).expect("bind the console socket");
    thread::spawn(move || {
        let (connection, _) = listener.accept().expect("husk-engine connects");
        read_terminal(receive_fd(connection.as_raw_fd()))
    })
}

/// Receives one descriptor sent with SCM_RIGHTS (unix(7)).
fn receive_fd(socket: i32) -> OwnedFd {
    let mut payload = [0u8; 256];
    let mut iov = libc::iovec {
        iov_base: payload.as_mut_ptr().cast(),
        iov_len: payload.len(),
    };
    // SAFETY: CMSG_SPACE computes a size from a constant.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<i32>() as u32) } as usize;
    let mut control = vec![0u8; space];
    // SAFETY: msghdr is plain data; the fields used are set below.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = &mut iov;
    message.msg_iovlen = 1;
    message.msg_control = control.as_mut_ptr().cast();
    message.msg_controllen = space;
    // SAFETY: `message` points at `payload` and `control`, both writable and
    // alive for the call.
    let received = unsafe { libc::recvmsg(socket, &mut message, 0) };
    assert!(received >= 0, "recvmsg on the console socket failed");
    // SAFETY: the kernel filled `message`; CMSG_FIRSTHDR reads its control
    // fields and returns null when there is no header.
    let header = unsafe { libc::CMSG_FIRSTHDR(&message) };
    assert!(
        !header.is_null(),
        "no descriptor came with the console message"
    );
    // SAFETY: a non-null header from the kernel with SCM_RIGHTS data holds
    // at least one descriptor after CMSG_DATA.
    let fd = unsafe {
        assert_eq!((*header).cmsg_type, libc::SCM_RIGHTS);
        std::ptr::read_unaligned(libc::CMSG_DATA(header).cast::<i32>())
    };
    // SAFETY: the descriptor was just received and belongs to nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

// ---- processes exec'd into a running container ----

/// The container's init: it waits until husk-engine's stdin closes, which
/// the test does once every exec has reported back.
const WAIT_FOR_STDIN: &str = "read line; exit 0";

struct ExecRun {
    /// husk-engine's exit status: the init's.
    code: Option<i32>,
    /// The init's and the exec'd processes' stdout.
    stdout: String,
    stderr: String,
    /// N of each `exec exited N` line, in order.
    exec_codes: Vec<i32>,
}

/// Runs the bundle with WAIT_FOR_STDIN as its init and `processes` exec'd
/// into it one after the other (`husk-engine run --exec FILE...`).
fn run_with_execs(bundle: &mut Bundle, name: &str, processes: &[Value], extra: &[&str]) -> ExecRun {
    bundle.shell(WAIT_FOR_STDIN);
    let files: Vec<PathBuf> = processes
        .iter()
        .enumerate()
        .map(|(index, process)| {
            let file = bundle.dir.join(format!("exec-{index}.json"));
            fs::write(&file, serde_json::to_vec(process).unwrap()).expect("write process.json");
            file
        })
        .collect();
    let mut command = Command::new(engine());
    command
        .args(["run", "--bundle"])
        .arg(&bundle.dir)
        .args(["--id", &unique_id(name)]);
    for file in &files {
        command.arg("--exec").arg(file);
    }
    let mut child = command
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start husk-engine");
    let mut stdin = child.stdin.take();
    let stdout = read_on_a_thread(child.stdout.take().unwrap());
    let stderr_pipe = child.stderr.take().unwrap();
    let expected_execs = processes.len();
    let stderr = thread::spawn(move || {
        let mut text = String::new();
        let mut reported = 0;
        for line in BufReader::new(stderr_pipe).lines() {
            let Ok(line) = line else { break };
            if line.starts_with("exec exited ") {
                reported += 1;
                if reported == expected_execs {
                    // Every exec is done: the init may end.
                    stdin.take();
                }
            }
            text += &line;
            text.push('\n');
        }
        text
    });
    let status = wait_with_deadline(&mut child, RUN_TIMEOUT);
    let stderr = stderr.join().unwrap();
    assert!(
        status.is_some(),
        "husk-engine ran past {RUN_TIMEOUT:?}; stderr:\n{stderr}"
    );
    let exec_codes = stderr
        .lines()
        .filter_map(|line| line.strip_prefix("exec exited "))
        .map(|code| code.parse().expect("exec exited N"))
        .collect();
    ExecRun {
        code: status.and_then(|status| status.code()),
        stdout: stdout.join().unwrap(),
        stderr,
        exec_codes,
    }
}

impl ExecRun {
    /// The stdout; fails the test unless the init and every exec'd process
    /// exited 0.
    fn success(self, execs: usize) -> String {
        assert_eq!(
            (self.code, self.exec_codes.clone()),
            (Some(0), vec![0; execs]),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self.stdout
    }
}

/// The pids a shell sees in /proc (a glob, so that no child of the shell
/// shows up).
const LIST_PIDS: &str = "echo /proc/[0-9]*";

#[test]
fn an_exec_is_in_the_containers_pid_namespace() {
    let mut bundle = Bundle::busybox("exec-pidns");
    let process = bundle.exec_process(&format!("{LIST_PIDS}; echo $$"));
    let output = run_with_execs(&mut bundle, "exec-pidns", &[process], &[]).success(1);
    let lines: Vec<&str> = output.lines().collect();
    let own_pid = lines[1];
    assert_ne!(own_pid, "1", "the init is PID 1, not the exec'd process");
    let mut seen: Vec<&str> = lines[0].split(' ').collect();
    seen.sort();
    let mut expected = vec!["/proc/1".to_string(), format!("/proc/{own_pid}")];
    expected.sort();
    assert_eq!(seen, expected, "the init and itself, nothing of the host");
}

#[test]
fn an_exec_sees_the_containers_hostname_root_and_its_own_cwd() {
    let mut bundle = Bundle::busybox("exec-root");
    fs::write(bundle.rootfs().join("etc/marker"), "inside the container\n").unwrap();
    bundle.set("/hostname", json!("box"));
    let mut process = bundle.exec_process("hostname; cat /etc/marker; pwd; echo $FOO");
    process["cwd"] = json!("/tmp");
    process["env"] = json!(["PATH=/bin", "FOO=from the exec"]);
    let output = run_with_execs(&mut bundle, "exec-root", &[process], &[]).success(1);
    assert_eq!(output, "box\ninside the container\n/tmp\nfrom the exec\n");
}

#[test]
fn an_exec_runs_with_the_user_and_capabilities_of_its_process() {
    let mut bundle = Bundle::busybox("exec-ids");
    let mut process =
        bundle.exec_process("id -u; id -g; id -G; echo $HOME; grep ^Cap /proc/self/status");
    process["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [10, 29]});
    process["capabilities"] = json!({
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_SETGID", "CAP_SETUID"],
        "effective": ["CAP_CHOWN", "CAP_KILL"],
        "permitted": ["CAP_CHOWN", "CAP_KILL"],
        "inheritable": ["CAP_CHOWN", "CAP_KILL"],
        "ambient": ["CAP_KILL"]
    });
    let output = run_with_execs(&mut bundle, "exec-ids", &[process], &[]).success(1);
    // The init runs as root with runc's default set; the exec'd process
    // gets what its own process.json says (for a non-root exec, the ambient
    // set as effective and permitted, capabilities(7)).
    assert_eq!(
        output,
        "1000\n1000\n1000 10 29\n/home/app\n\
         CapInh:\t0000000000000021\n\
         CapPrm:\t0000000000000020\n\
         CapEff:\t0000000000000020\n\
         CapBnd:\t00000000000000e1\n\
         CapAmb:\t0000000000000020\n"
    );
}

#[test]
fn an_exec_reports_its_own_exit_status_with_or_without_a_pid_namespace() {
    for pid_namespace in [true, false] {
        let mut bundle = Bundle::busybox("exec-status");
        if !pid_namespace {
            without_pid_namespace(&mut bundle);
        }
        let processes = [
            bundle.exec_process("exit 7"),
            bundle.exec_process("kill -TERM $$"),
        ];
        let run = run_with_execs(&mut bundle, "exec-status", &processes, &[]);
        assert_eq!(
            (run.exec_codes, run.code),
            (vec![7, 128 + libc::SIGTERM], Some(0)),
            "pid namespace: {pid_namespace}; the init is unaffected; stderr:\n{}",
            run.stderr
        );
    }
}

#[test]
fn an_exec_of_a_missing_program_fails_clearly_and_leaves_nothing() {
    let mut bundle = Bundle::busybox("exec-missing");
    let mut missing = bundle.exec_process("");
    missing["args"] = json!(["no-such-program", "--flag"]);
    let mut not_executable = bundle.exec_process("");
    not_executable["args"] = json!(["/etc/not-a-program"]);
    let survey = bundle.exec_process(LIST_PIDS);
    let run = run_with_execs(
        &mut bundle,
        "exec-missing",
        &[missing, not_executable, survey],
        &[],
    );
    assert_eq!(run.exec_codes, [127, 126, 0], "stderr:\n{}", run.stderr);
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|line| line.starts_with("husk-engine: "))
        .collect();
    assert_eq!(errors.len(), 2, "one line per failed exec:\n{}", run.stderr);
    assert!(
        errors[0].ends_with(
            "exec-0.json: exec: \"no-such-program\": executable file not found in $PATH"
        ),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].ends_with("exec-1.json: exec: \"/etc/not-a-program\": permission denied"),
        "{}",
        errors[1]
    );
    // The last exec finds no trace of the failed ones in the container.
    let pids: Vec<&str> = run.stdout.trim_end().split(' ').collect();
    assert_eq!(pids.len(), 2, "the init and the survey only: {pids:?}");
    assert_eq!(run.code, Some(0), "the container goes on");
}

#[test]
fn an_exec_with_a_terminal_gets_a_pty_through_the_console_socket() {
    let mut bundle = Bundle::busybox("exec-tty");
    let mut process =
        bundle.exec_process("tty; stty size; echo through the controlling tty > /dev/tty");
    process["terminal"] = json!(true);
    process["consoleSize"] = json!({"height": 20, "width": 60});
    let socket_path = bundle.dir.join("exec-console.sock");
    let receiver = console_output(&socket_path);
    let stdout = run_with_execs(
        &mut bundle,
        "exec-tty",
        &[process],
        &["--exec-console-socket", socket_path.to_str().unwrap()],
    )
    .success(1);
    assert_eq!(stdout, "", "the exec'd process writes to its pty");
    assert_eq!(
        receiver.join().unwrap(),
        "/dev/pts/0\r\n20 60\r\nthrough the controlling tty\r\n",
        "a pty of the container's devpts, sized, and the controlling terminal"
    );
}

#[test]
fn an_exec_is_in_the_containers_cgroup() {
    let mut bundle = Bundle::busybox("exec-cgroup");
    let process = bundle.exec_process("cat /proc/self/cgroup; echo; cat /proc/1/cgroup");
    let output = run_with_execs(&mut bundle, "exec-cgroup", &[process], &[]).success(1);
    let (own, init) = output.split_once("\n\n").expect("two cgroup lists");
    assert_eq!(own, init.trim_end(), "the same cgroups as the init");
    // With the container's cgroup namespace joined, its cgroup is the root.
    for line in own.lines() {
        assert!(line.ends_with(":/"), "{line} in\n{own}");
    }
}

#[test]
fn the_containers_seccomp_profile_applies_to_an_exec() {
    let mut bundle = Bundle::busybox("exec-seccomp");
    bundle.set(
        "/linux/seccomp",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
        }),
    );
    let script =
        "mkdir /dev/shm/forbidden-$$; echo status=$?; touch /dev/shm/allowed-$$ && echo touched";
    // Installed right before the exec with no_new_privs, before the
    // capabilities drop without.
    let mut privileged = bundle.exec_process(script);
    privileged["noNewPrivileges"] = json!(false);
    let processes = [bundle.exec_process(script), privileged];
    let run = run_with_execs(&mut bundle, "exec-seccomp", &processes, &[]);
    let stderr = run.stderr.clone();
    assert_eq!(run.success(2), "status=1\ntouched\nstatus=1\ntouched\n");
    assert_eq!(stderr.matches("Permission denied").count(), 2, "{stderr}");
}

#[test]
fn an_exec_joins_the_containers_user_namespace() {
    let mut bundle = Bundle::busybox("exec-userns");
    with_user_namespace(&mut bundle);
    let mut process = bundle.exec_process("id -u; id -g; cat /proc/self/uid_map");
    process["user"] = json!({"uid": 1000, "gid": 1000});
    let output = run_with_execs(&mut bundle, "exec-userns", &[process], &[]).success(1);
    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(&lines[..2], ["1000", "1000"]);
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        USER_NAMESPACE_UID_MAP
    );
}

// ---- bad input: a clear error, and nothing left behind ----

/// Mount points of this namespace (what a leaked mount would change).
fn mount_table() -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .map(|line| {
            line.split_whitespace()
                .nth(4)
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// Processes whose command line mentions `marker`.
fn processes_mentioning(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.parse::<u32>().is_err() || name == std::process::id().to_string() {
            continue;
        }
        if let Ok(cmdline) = fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(marker) {
                found.push(format!("{name}: {cmdline}"));
            }
        }
    }
    found
}

/// The container's cgroup directories that still exist, in every cgroup
/// mount of this host.
fn leftover_cgroups(id: &str) -> Vec<PathBuf> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|line| {
            let (head, tail) = line.split_once(" - ")?;
            let fstype = tail.split_whitespace().next()?;
            (fstype == "cgroup" || fstype == "cgroup2")
                .then(|| PathBuf::from(head.split_whitespace().nth(4).unwrap()))
        })
        .map(|mount_point| mount_point.join("husk").join(id))
        .filter(|path| path.exists())
        .collect()
}

/// Runs a bundle that must fail: checks the exit code, that stderr is one
/// line holding `expected`, and that nothing was left behind.
fn assert_refused(bundle: Bundle, name: &str, expected: &str, code: i32) {
    bundle.write();
    let id = unique_id(name);
    let mounts_before = mount_table();
    let run = run_engine(&bundle, &id, &[]);
    assert_eq!(run.code, Some(code), "stderr:\n{}", run.stderr);
    assert!(
        run.stderr.contains(expected),
        "expected {expected:?} in stderr:\n{}",
        run.stderr
    );
    assert_eq!(
        run.stderr.lines().count(),
        1,
        "one line of error:\n{}",
        run.stderr
    );
    assert!(run.stdout.is_empty(), "stdout:\n{}", run.stdout);
    assert_eq!(mount_table(), mounts_before, "mounts changed on the host");
    let marker = bundle.dir.to_string_lossy().into_owned();
    assert_eq!(
        processes_mentioning(&marker),
        Vec::<String>::new(),
        "leftover processes"
    );
    assert_eq!(
        leftover_cgroups(&id),
        Vec::<PathBuf>::new(),
        "leftover cgroups"
    );
    assert!(
        !Path::new("/run/husk-engine").join(&id).exists(),
        "leftover state directory"
    );
}

#[test]
fn missing_root_is_named() {
    let mut bundle = Bundle::busybox("bad-root");
    bundle.set("/root/path", json!("no-such-rootfs"));
    assert_refused(bundle, "bad-root", "config.json: root.path: ", 1);
}

#[test]
fn unknown_namespace_type_is_named() {
    let mut bundle = Bundle::busybox("bad-ns");
    bundle.set("/linux/namespaces/2/type", json!("foo"));
    assert_refused(
        bundle,
        "bad-ns",
        "config.json: linux.namespaces[2].type: unknown namespace type \"foo\"",
        1,
    );
}

#[test]
fn absent_user_name_is_named() {
    let mut bundle = Bundle::busybox("bad-user");
    bundle.set("/process/user/username", json!("ghost"));
    assert_refused(
        bundle,
        "bad-user",
        "process.user.username: \"ghost\": no such user in the container's /etc/passwd",
        1,
    );
}

#[test]
fn seccomp_notify_is_refused() {
    let mut bundle = Bundle::busybox("bad-seccomp");
    bundle.set(
        "/linux/seccomp",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
        }),
    );
    assert_refused(bundle, "bad-seccomp", "linux.seccomp.syscalls[0].action", 1);
}

#[test]
fn missing_program_exits_127() {
    let mut bundle = Bundle::busybox("bad-program");
    bundle.set("/process/args", json!(["no-such-program", "--flag"]));
    assert_refused(
        bundle,
        "bad-program",
        "exec: \"no-such-program\": executable file not found in $PATH",
        127,
    );
}

#[test]
fn non_executable_program_exits_126() {
    let mut bundle = Bundle::busybox("bad-exec");
    bundle.set("/process/args", json!(["/etc/not-a-program"]));
    assert_refused(
        bundle,
        "bad-exec",
        "exec: \"/etc/not-a-program\": permission denied",
        126,
    );
}

#[test]
fn a_mount_that_fails_is_named_and_undone() {
    let mut bundle = Bundle::busybox("bad-mount");
    bundle.set(
        "/mounts/7",
        json!({"destination": "/data", "type": "bind", "source": "/no/such/source", "options": ["rbind"]}),
    );
    assert_refused(
        bundle,
        "bad-mount",
        "mounts[7]: bind source /no/such/source: No such file or directory",
        1,
    );
}

#[test]
fn a_failing_create_runtime_hook_stops_the_create() {
    let mut bundle = Bundle::busybox("bad-hook");
    bundle.set(
        "/hooks",
        json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "echo no network for you >&2; exit 3"]}]}),
    );
    assert_refused(bundle, "bad-hook", "hooks.createRuntime", 1);
}
