//! Driving the built `husk` binary the way runc's callers drive runc: one
//! process per verb, a state root of the test's own, stdout and stderr in
//! files (the container inherits them, as it inherits conmon's pipes), and
//! the test process as a child subreaper, as conmon and containerd's shim
//! are, so that it can reap the container init and see its exit status.
//!
//! Needs root and a built husk (`cargo build -p husk-shim`, or
//! `HUSK_BIN=/path/to/husk`).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use std::{fs, thread};

use serde_json::Value;

use crate::{wait_with_deadline, Scratch};

/// Each husk call gets this long; one that hangs fails its test.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a test waits for something a container does on its own.
pub const CONTAINER_TIMEOUT: Duration = Duration::from_secs(20);

/// The husk binary: `$HUSK_BIN`, else `target/debug/husk`.
pub fn husk_binary() -> PathBuf {
    husk_binary_of("debug")
}

/// The husk-vmm the VM backend's tests boot with: `$HUSK_VMM`, else the
/// one next to [`husk_binary`].
pub fn vmm_binary() -> PathBuf {
    let vmm = std::env::var_os("HUSK_VMM")
        .map(PathBuf::from)
        .unwrap_or_else(|| husk_binary().with_file_name("husk-vmm"));
    assert!(
        vmm.is_file(),
        "{} does not exist: run `cargo build --release -p husk-vmm` (or set HUSK_VMM)",
        vmm.display()
    );
    vmm
}

/// `$HUSK_BIN`, else the husk of the build `profile` (debug, release).
fn husk_binary_of(profile: &str) -> PathBuf {
    let binary = std::env::var_os("HUSK_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .unwrap()
                .join("target")
                .join(profile)
                .join("husk")
        });
    let flag = if profile == "release" {
        " --release"
    } else {
        ""
    };
    assert!(
        binary.is_file(),
        "{} does not exist: run `cargo build{flag} -p husk-shim` first (or set HUSK_BIN)",
        binary.display()
    );
    binary
}

/// Fails the test unless it runs as root.
pub fn require_root(why: &str) {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "{why}: run these tests as root");
}

/// Makes this test process a child subreaper (prctl(2)
/// PR_SET_CHILD_SUBREAPER): a container init whose husk has exited comes
/// to it, as it comes to conmon.
pub fn become_subreaper() {
    // SAFETY: integer arguments only.
    let result = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) };
    assert_eq!(
        result,
        0,
        "prctl(PR_SET_CHILD_SUBREAPER): {}",
        std::io::Error::last_os_error()
    );
}

/// What one husk call did.
#[derive(Debug)]
pub struct HuskRun {
    /// None when it was killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The file husk's stdout went to; a container the call created
    /// inherited it and writes there later.
    pub stdout_path: PathBuf,
}

impl HuskRun {
    /// Its stdout; fails the test unless it exited 0.
    pub fn success(&self) -> &str {
        self.expect_code(0);
        &self.stdout
    }

    /// Its stderr (warnings); fails the test unless it exited 0.
    pub fn success_with_stderr(&self) -> &str {
        self.expect_code(0)
    }

    /// Fails the test unless it exited with `code`; returns its stderr.
    pub fn expect_code(&self, code: i32) -> &str {
        assert_eq!(
            self.code,
            Some(code),
            "husk exited {:?}, not {code}\nstdout:\n{}\nstderr:\n{}",
            self.code,
            self.stdout,
            self.stderr
        );
        &self.stderr
    }
}

/// What one husk call did, and the most memory it held.
#[derive(Debug)]
pub struct MeasuredRun {
    /// `code` is None when it was killed by a signal or past its timeout.
    pub run: HuskRun,
    /// Peak resident set size in KiB, as wait4(2) reports it (getrusage(2)
    /// `ru_maxrss`): husk's own, or that of a child husk waited for
    /// (mkfs.ext4, a hook), whichever is larger.
    pub peak_rss_kib: u64,
    /// The signal that killed it (a crash: husk's release build aborts on
    /// a panic), if one did.
    pub signal: Option<i32>,
    /// It ran past its [`Husk`]'s call timeout and was killed.
    pub timed_out: bool,
}

/// A husk call still running (`husk run` in the foreground).
pub struct RunningHusk {
    pub child: Child,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
    /// How long [`RunningHusk::finish`] waits.
    timeout: Duration,
}

impl RunningHusk {
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pids fit an i32")
    }

    /// Waits for husk to exit (within its [`Husk`]'s call timeout).
    pub fn finish(mut self) -> HuskRun {
        let status = wait_with_deadline(&mut self.child, self.timeout);
        let run = HuskRun {
            code: status.and_then(|status| status.code()),
            stdout: read_text(&self.stdout_path),
            stderr: read_text(&self.stderr_path),
            stdout_path: self.stdout_path,
        };
        assert!(
            status.is_some(),
            "husk ran past {:?} and was killed; stderr:\n{}",
            self.timeout,
            run.stderr
        );
        run
    }

    /// Waits for husk to exit (within its [`Husk`]'s call timeout) and
    /// takes its peak memory use from wait4(2); a call past the timeout is
    /// killed and marked, not failed, so that the caller can say which
    /// call of which cycle it was.
    pub fn finish_measured(mut self) -> MeasuredRun {
        let waited = wait_with_usage(&mut self.child, self.timeout);
        let peak_rss_kib = waited
            .as_ref()
            .map_or(0, |(_, usage)| u64::try_from(usage.ru_maxrss).unwrap_or(0));
        MeasuredRun {
            run: HuskRun {
                code: waited.as_ref().and_then(|(status, _)| status.code()),
                stdout: read_text(&self.stdout_path),
                stderr: read_text(&self.stderr_path),
                stdout_path: self.stdout_path,
            },
            peak_rss_kib,
            signal: waited.as_ref().and_then(|(status, _)| status.signal()),
            timed_out: waited.is_none(),
        }
    }
}

/// Waits for `child` with wait4(2), which hands back its resource use with
/// its status (std's Child keeps only the status); past `timeout`, kills it
/// and returns None.
fn wait_with_usage(child: &mut Child, timeout: Duration) -> Option<(ExitStatus, libc::rusage)> {
    let pid = i32::try_from(child.id()).expect("pids fit an i32");
    let deadline = Instant::now() + timeout;
    // Most husk calls take milliseconds: poll often at first.
    let mut pause = Duration::from_millis(1);
    loop {
        let mut status = 0;
        // SAFETY: rusage is plain integers and timevals; all-zero is valid.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `status` and `usage` are valid and writable for the call;
        // `pid` is this process's child, which std has not waited for.
        let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if reaped == pid {
            return Some((ExitStatus::from_raw(status), usage));
        }
        if reaped < 0 {
            let error = std::io::Error::last_os_error();
            assert_eq!(
                error.kind(),
                ErrorKind::Interrupted,
                "wait4({pid}) for husk: {error}"
            );
            continue;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// A state root of the test's own, and the husk calls on it. It may be
/// shared between threads, as one `--root` is shared by every shim of a
/// containerd.
pub struct Husk {
    scratch: Scratch,
    binary: PathBuf,
    /// The `--backend` every call passes, if any.
    backend: Option<String>,
    /// Variables set for every call besides HUSK_CONFIG.
    environment: Vec<(String, OsString)>,
    calls: AtomicU32,
    /// Each call gets this long.
    timeout: Duration,
}

impl Husk {
    /// A fresh root for the test `name`, every call with `--backend
    /// container` (see [`Husk::with_backend`]). Makes the test process a
    /// subreaper.
    pub fn new(name: &str) -> Husk {
        require_root("the container backend creates namespaces, mounts and cgroups");
        become_subreaper();
        let scratch = Scratch::new(&format!("cli-{name}"));
        // An empty configuration file, so /etc/husk/config.json on this
        // machine cannot change what the tests see.
        fs::write(scratch.file("husk-config.json"), "{}").expect("write the husk configuration");
        Husk {
            scratch,
            binary: husk_binary(),
            backend: Some("container".to_string()),
            environment: Vec::new(),
            calls: AtomicU32::new(0),
            timeout: CALL_TIMEOUT,
        }
    }

    /// A fresh root for the VM test `name`: a configuration naming the
    /// guest kernel, initramfs and husk-vmm, no `--backend` flag (the
    /// default backend is `vm`), husk from `$HUSK_BIN` or the release
    /// build, and each call given the guest's boot time and a minute more.
    /// Needs root and a KVM that boots guests.
    pub fn vm(name: &str) -> Husk {
        require_root("the vm backend creates images, cgroups and VMs");
        crate::require_bootable_kvm();
        let artifacts = crate::Artifacts::get();
        become_subreaper();
        let husk = Husk {
            scratch: Scratch::new(&format!("cli-vm-{name}")),
            binary: husk_binary_of("release"),
            backend: None,
            environment: Vec::new(),
            calls: AtomicU32::new(0),
            timeout: Duration::from_secs(crate::BOOT_TIMEOUT.as_secs() + 60),
        };
        husk.configure(&serde_json::json!({
            "kernel": artifacts.vmlinux,
            "initramfs": artifacts.initramfs,
            "vmm": artifacts.vmm,
        }));
        husk
    }

    /// Replaces the husk configuration file.
    pub fn configure(&self, config: &Value) {
        fs::write(self.file("husk-config.json"), config.to_string())
            .expect("write the husk configuration");
    }

    /// How long each call gets.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Calls without `--backend`: the bundle's annotation decides.
    pub fn without_backend_flag(mut self) -> Husk {
        self.backend = None;
        self
    }

    /// Every call with `--backend backend` ("vm" or "container").
    pub fn with_backend(mut self, backend: &str) -> Husk {
        self.backend = Some(backend.to_string());
        self
    }

    /// Every call with the environment variable `name` set to `value`.
    pub fn with_env(mut self, name: &str, value: impl Into<OsString>) -> Husk {
        self.environment.push((name.to_string(), value.into()));
        self
    }

    /// `--root`.
    pub fn root(&self) -> PathBuf {
        self.scratch.file("root")
    }

    /// A path in the test's scratch directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.scratch.file(name)
    }

    /// `husk --root ROOT [--backend BACKEND] ARGS...`, stdin from
    /// /dev/null.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command.arg("--root").arg(self.root());
        if let Some(backend) = &self.backend {
            command.args(["--backend", backend]);
        }
        command
            .args(args)
            .env("HUSK_CONFIG", self.file("husk-config.json"))
            .envs(self.environment.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null());
        command
    }

    /// Runs husk to the end.
    pub fn run(&self, args: &[&str]) -> HuskRun {
        self.spawn(args, Stdio::null()).finish()
    }

    /// Runs husk to the end with `input` on its stdin.
    pub fn run_with_stdin(&self, args: &[&str], input: &str) -> HuskRun {
        let input_path = self.next_file("stdin");
        fs::write(&input_path, input).expect("write husk's stdin");
        let stdin = fs::File::open(&input_path).expect("open husk's stdin");
        self.spawn(args, Stdio::from(stdin)).finish()
    }

    /// Runs husk to the end and takes its peak memory use; a call past the
    /// timeout is killed and marked, not failed.
    pub fn run_measured(&self, args: &[&str]) -> MeasuredRun {
        self.spawn(args, Stdio::null()).finish_measured()
    }

    /// Starts husk and returns without waiting.
    pub fn start(&self, args: &[&str]) -> RunningHusk {
        self.spawn(args, Stdio::null())
    }

    fn spawn(&self, args: &[&str], stdin: Stdio) -> RunningHusk {
        let stdout_path = self.next_file("stdout");
        let stderr_path = self.next_file("stderr");
        let stdout = fs::File::create(&stdout_path).expect("create husk's stdout file");
        let stderr = fs::File::create(&stderr_path).expect("create husk's stderr file");
        let child = self
            .command(args)
            .stdin(stdin)
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|error| panic!("start {}: {error}", self.binary.display()));
        RunningHusk {
            child,
            stdout_path,
            stderr_path,
            timeout: self.timeout,
        }
    }

    fn next_file(&self, kind: &str) -> PathBuf {
        let call = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        self.file(&format!("call-{call}.{kind}"))
    }

    /// `husk state ID`, parsed; fails the test when the call fails.
    pub fn state(&self, id: &str) -> Value {
        let run = self.run(&["state", id]);
        serde_json::from_str(run.success())
            .unwrap_or_else(|error| panic!("husk state printed no JSON ({error}):\n{}", run.stdout))
    }

    /// Container `id`'s record as husk wrote it (`<root>/<id>/state.json`).
    pub fn record(&self, id: &str) -> Result<Value, String> {
        let path = self.root().join(id).join("state.json");
        let text = fs::read_to_string(&path)
            .map_err(|error| format!("read {}: {error}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|error| format!("{} is not JSON: {error}", path.display()))
    }

    /// The host files VM container `id`'s record names, the image first,
    /// then the sockets, hooks.json, the logs and the socket directory.
    pub fn recorded_files(&self, id: &str) -> Vec<PathBuf> {
        self.record(id)
            .and_then(|record| vm_files_of_record(&record))
            .unwrap_or_else(|error| panic!("container {id}: {error}"))
    }

    /// The status `husk state` reports.
    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"]
            .as_str()
            .expect("state has a status")
            .to_string()
    }
}

impl Drop for Husk {
    /// A test that failed halfway leaves containers running: delete
    /// whatever is still in its root, so that no process or cgroup outlives
    /// the test.
    fn drop(&mut self) {
        // The root holds a directory per container (what `husk list`
        // prints), read here rather than through `husk list`, which waits
        // for every container's lock: a husk that died mid-call may leave
        // one held, and the cleanup must not hang the test.
        let Ok(entries) = fs::read_dir(self.root()) else {
            return;
        };
        let ids: Vec<String> = entries
            .flatten()
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        for id in &ids {
            if let Ok(mut child) = self
                .command(&["delete", "--force", id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
            {
                wait_with_deadline(&mut child, self.timeout);
            }
        }
    }
}

/// A file's text, empty when it does not exist.
pub fn read_text(path: &Path) -> String {
    match fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(error) if error.kind() == ErrorKind::NotFound => String::new(),
        Err(error) => panic!("read {}: {error}", path.display()),
    }
}

/// The children of `pid`, from every one of its threads (proc(5),
/// /proc/PID/task/TID/children).
pub fn children_of(pid: i32) -> Vec<i32> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .flat_map(|task| {
            read_text(&task.path().join("children"))
                .split_whitespace()
                .filter_map(|child| child.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

/// Polls `condition` until it holds; fails the test naming `what` after
/// `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {timeout:?}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until the file holds `text` (a container's output).
pub fn wait_for_output(path: &Path, text: &str) -> String {
    let mut seen = String::new();
    wait_until(
        &format!("{text:?} in {}", path.display()),
        CONTAINER_TIMEOUT,
        || {
            seen = read_text(path);
            seen.contains(text)
        },
    );
    seen
}

/// The pid in a pid file.
pub fn read_pid_file(path: &Path) -> i32 {
    let text = read_text(path);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{} holds {text:?}, not a pid", path.display()))
}

/// State and parent of a process (proc(5), /proc/<pid>/stat fields 3 and
/// 4), None when there is no such process.
pub fn process_state(pid: i32) -> Option<(char, i32)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    let parent = fields.next()?.parse().ok()?;
    Some((state, parent))
}

/// Whether `pid` runs (exists and is not a zombie).
pub fn is_running(pid: i32) -> bool {
    process_state(pid).is_some_and(|(state, _)| !matches!(state, 'Z' | 'X'))
}

/// Reaps `pid`, a child of this subreaper, within [`CONTAINER_TIMEOUT`]
/// and returns its status as a shell shows it: the exit code, or 128 + N
/// for signal N.
pub fn reap(pid: i32) -> i32 {
    let deadline = Instant::now() + CONTAINER_TIMEOUT;
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid, writable int for the call.
        let result = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        assert!(
            result >= 0,
            "waitpid({pid}): {} (is the test process its subreaper?)",
            std::io::Error::last_os_error()
        );
        if result == pid {
            if libc::WIFEXITED(status) {
                return libc::WEXITSTATUS(status);
            }
            if libc::WIFSIGNALED(status) {
                return 128 + libc::WTERMSIG(status);
            }
        }
        assert!(
            Instant::now() < deadline,
            "process {pid} did not exit within {CONTAINER_TIMEOUT:?}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `signal` to `pid`.
pub fn send_signal(pid: i32, signal: i32) {
    // SAFETY: kill(2) takes two integers.
    let result = unsafe { libc::kill(pid, signal) };
    assert_eq!(
        result,
        0,
        "kill({pid}, {signal}): {}",
        std::io::Error::last_os_error()
    );
}

/// The parent of the containers' default cgroups: the engine's default
/// cgroupsPath is `/husk/<id>`.
const CGROUP_PARENT: &str = "husk";

/// The cgroup mounts of this host: (mount point, filesystem type, super
/// options), from /proc/self/mountinfo (proc(5)).
fn cgroup_mounts() -> Vec<(PathBuf, String, String)> {
    fs::read_to_string("/proc/self/mountinfo")
        .expect("read /proc/self/mountinfo")
        .lines()
        .filter_map(|line| {
            let (head, tail) = line.split_once(" - ")?;
            let mut tail = tail.split_whitespace();
            let fstype = tail.next()?;
            let _source = tail.next()?;
            let options = tail.next().unwrap_or_default();
            let mount_point = head.split_whitespace().nth(4)?;
            (fstype == "cgroup" || fstype == "cgroup2").then(|| {
                (
                    PathBuf::from(mount_point),
                    fstype.to_string(),
                    options.to_string(),
                )
            })
        })
        .collect()
}

/// The container's cgroup directories (default cgroupsPath, `/husk/<id>`)
/// that exist, in every cgroup mount.
pub fn container_cgroup_dirs(id: &str) -> Vec<PathBuf> {
    cgroup_mounts()
        .into_iter()
        .map(|(mount_point, _, _)| mount_point.join(CGROUP_PARENT).join(id))
        .filter(|path| path.exists())
        .collect()
}

/// A file of the container's cgroup: in the v1 hierarchy of
/// `v1_controller` where there is one, else in the unified (v2) one.
pub fn container_cgroup_file(
    id: &str,
    v1_controller: &str,
    v1_file: &str,
    v2_file: &str,
) -> PathBuf {
    let mounts = cgroup_mounts();
    if let Some((mount_point, _, _)) = mounts.iter().find(|(_, fstype, options)| {
        fstype == "cgroup" && options.split(',').any(|option| option == v1_controller)
    }) {
        return mount_point.join(CGROUP_PARENT).join(id).join(v1_file);
    }
    let (mount_point, _, _) = mounts
        .iter()
        .find(|(_, fstype, _)| fstype == "cgroup2")
        .expect("a cgroup2 mount when the controller has no v1 hierarchy");
    mount_point.join(CGROUP_PARENT).join(id).join(v2_file)
}

/// Accepts one connection on a console socket and returns the descriptor
/// sent over it (runc's --console-socket protocol: one SCM_RIGHTS message,
/// unix(7)), giving up when `husk` exits first or the time runs out.
pub fn receive_console(listener: &UnixListener, husk: &mut RunningHusk) -> OwnedFd {
    listener
        .set_nonblocking(true)
        .expect("make the console socket non-blocking");
    let deadline = Instant::now() + CALL_TIMEOUT;
    let connection = loop {
        match listener.accept() {
            Ok((connection, _)) => break connection,
            Err(error) if error.kind() == ErrorKind::WouldBlock => {
                if let Some(status) = husk.child.try_wait().expect("poll husk") {
                    panic!(
                        "husk exited ({status}) without connecting to the console socket; \
                         stderr:\n{}",
                        read_text(&husk.stderr_path)
                    );
                }
                assert!(
                    Instant::now() < deadline,
                    "husk never connected to the console socket"
                );
                thread::sleep(Duration::from_millis(10));
            }
            Err(error) => panic!("accept on the console socket: {error}"),
        }
    };
    connection
        .set_nonblocking(false)
        .expect("make the console connection blocking");
    receive_descriptor(connection.as_raw_fd())
}

/// recvmsg(2) of one message carrying one descriptor.
fn receive_descriptor(socket: i32) -> OwnedFd {
    let mut data = [0u8; 64];
    let mut buffer = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let descriptor_size = std::mem::size_of::<libc::c_int>() as libc::c_uint;
    // SAFETY: CMSG_SPACE only computes a size.
    let control_size = unsafe { libc::CMSG_SPACE(descriptor_size) } as usize;
    let mut control = vec![0u8; control_size];
    // SAFETY: an all-zero msghdr is valid (no name, no buffers); the
    // buffers are set below.
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_iov = &mut buffer;
    header.msg_iovlen = 1;
    header.msg_control = control.as_mut_ptr().cast();
    header.msg_controllen = control_size;
    // SAFETY: `header` points at `buffer`/`data` and `control`, which are
    // writable and outlive the call.
    let received = unsafe { libc::recvmsg(socket, &mut header, libc::MSG_CMSG_CLOEXEC) };
    assert!(
        received >= 0,
        "recvmsg on the console socket: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `header` was filled by the kernel; CMSG_FIRSTHDR returns null
    // when no control message came.
    let message = unsafe { libc::CMSG_FIRSTHDR(&header) };
    assert!(
        !message.is_null(),
        "the console message carried no descriptor"
    );
    // SAFETY: `message` is a control message header inside `control`.
    let (level, kind) = unsafe { ((*message).cmsg_level, (*message).cmsg_type) };
    assert_eq!((level, kind), (libc::SOL_SOCKET, libc::SCM_RIGHTS));
    // SAFETY: an SCM_RIGHTS message holds at least one descriptor at
    // CMSG_DATA, possibly unaligned.
    let fd = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(message).cast::<libc::c_int>()) };
    // SAFETY: the kernel just installed `fd` in this process; nothing else
    // owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Everything a pty master yields until its last slave descriptor closes
/// (the read then fails with EIO, pty(7)).
pub fn read_terminal(master: OwnedFd) -> String {
    let mut output = Vec::new();
    let _ = fs::File::from(master).read_to_end(&mut output);
    String::from_utf8_lossy(&output).into_owned()
}

/// The host's mount table (/proc/self/mountinfo, proc(5)), one line per
/// mount, to compare before and after a test.
pub fn mount_table() -> BTreeSet<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .expect("read /proc/self/mountinfo")
        .lines()
        .map(str::to_string)
        .collect()
}

/// The live processes that belong to container `id` under the state root
/// `root`, as "pid: cmdline": those with an argument that is the ID or a
/// path under the root (husk itself, the container init before it execs,
/// husk-vmm, an exec relay), and those in a cgroup of the container
/// (`.../husk/<id>`, whatever they run). Zombies are left out: they have
/// ended, and reaping them is the caller's job, as conmon's.
pub fn processes_of(root: &Path, id: &str) -> Vec<String> {
    let own_pid = std::process::id();
    let cgroup_suffix = format!("/{CGROUP_PARENT}/{id}");
    let entries = fs::read_dir("/proc").expect("list /proc");
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
        else {
            continue;
        };
        if pid as u32 == own_pid || !is_running(pid) {
            continue;
        }
        // A process may end while it is looked at: what cannot be read
        // any more does not count.
        let arguments: Vec<String> = fs::read(entry.path().join("cmdline"))
            .map(|bytes| {
                bytes
                    .split(|byte| *byte == 0)
                    .filter(|argument| !argument.is_empty())
                    .map(|argument| String::from_utf8_lossy(argument).into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let names_it = arguments
            .iter()
            .any(|argument| argument == id || Path::new(argument).starts_with(root));
        let in_its_cgroup = fs::read_to_string(entry.path().join("cgroup"))
            .unwrap_or_default()
            .lines()
            .any(|line| {
                line.rsplit(':').next().is_some_and(|path| {
                    path.ends_with(&cgroup_suffix) || path.contains(&format!("{cgroup_suffix}/"))
                })
            });
        // Looked at again: one that ended meanwhile is no leftover.
        if (names_it || in_its_cgroup) && is_running(pid) {
            found.push(format!("{pid}: {}", arguments.join(" ")));
        }
    }
    found
}

/// The host as it was before a test made (or failed to make) a container,
/// to find what the container left behind afterwards.
pub struct HostBaseline {
    mounts: BTreeSet<String>,
}

impl HostBaseline {
    pub fn take() -> HostBaseline {
        HostBaseline {
            mounts: mount_table(),
        }
    }

    /// Fails the test naming whatever of container `id`, made under the
    /// state root `root`, is still on this host: its state directory (and
    /// with it the VM's image, logs and sockets), a process (see
    /// [`processes_of`]), a mount that was not there before and names the
    /// root or the ID, a cgroup directory.
    pub fn assert_nothing_left(&self, root: &Path, id: &str) {
        let state_dir = root.join(id);
        assert!(
            !state_dir.exists(),
            "the state directory {} is still there, holding {:?}",
            state_dir.display(),
            fs::read_dir(&state_dir)
                .map(|entries| entries
                    .flatten()
                    .map(|entry| entry.file_name())
                    .collect::<Vec<_>>())
                .unwrap_or_default()
        );
        assert_eq!(
            processes_of(root, id),
            Vec::<String>::new(),
            "processes of container {id} still run"
        );
        let root_text = root.to_string_lossy();
        // Other tests on this host may mount what they like; only a mount
        // that names this container's root or ID is its leftover.
        let mounts_now = mount_table();
        let new_mounts: Vec<&String> = mounts_now
            .difference(&self.mounts)
            .filter(|line| line.contains(root_text.as_ref()) || line.contains(id))
            .collect();
        assert!(
            new_mounts.is_empty(),
            "mounts of container {id} are still there:\n{new_mounts:#?}"
        );
        assert_eq!(
            container_cgroup_dirs(id),
            Vec::<PathBuf>::new(),
            "cgroup directories of container {id} are still there"
        );
    }
}

/// `husk spec` in a directory holding only a busybox rootfs, then `husk
/// run` on that bundle unchanged — `process.terminal` true and `sh` as the
/// process, so husk holds the terminal and relays it, as runc run does —
/// driven through husk's stdin; meanwhile `husk exec` enters the same
/// container: it sees the file the shell wrote (on the container's
/// /dev/shm: the root is read-only) and the shell as pid 1 of
/// its pid namespace; `husk ps` lists the shell. The shell's `exit 3` ends
/// `husk run` with 3.
///
/// `husk` builds a husk command (root, backend and configuration set) for
/// the arguments; `timeout` bounds each step.
pub fn check_run_of_a_spec_bundle(
    husk: &dyn Fn(&[&str]) -> Command,
    name: &str,
    id: &str,
    timeout: Duration,
) {
    let bundle = crate::bundle::Bundle::busybox(name);
    let config_path = bundle.dir.join("config.json");
    fs::remove_file(&config_path).expect("remove the test's own config.json");
    let dir = bundle.dir.to_str().expect("the bundle path is UTF-8");
    let spec = husk(&["spec", "--bundle", dir])
        .output()
        .expect("run husk spec");
    assert!(
        spec.status.success(),
        "husk spec failed: {}",
        String::from_utf8_lossy(&spec.stderr)
    );
    let config: Value = serde_json::from_str(&read_text(&config_path)).expect("config.json");
    assert_eq!(config["process"]["terminal"], true, "husk spec's default");
    assert_eq!(config["process"]["args"], serde_json::json!(["sh"]));

    let output_path = bundle.dir.join("run.output");
    let errors_path = bundle.dir.join("run.errors");
    let mut run = husk(&["run", "--bundle", dir, id])
        .stdin(Stdio::piped())
        .stdout(fs::File::create(&output_path).expect("create run's output file"))
        .stderr(fs::File::create(&errors_path).expect("create run's error file"))
        .spawn()
        .expect("start husk run");
    let mut terminal = run.stdin.take().expect("husk run's stdin");
    // The terminal echoes what is typed: the shell's arithmetic makes the
    // marker appear only when the shell has run the line.
    terminal
        .write_all(b"echo made-by-run > /dev/shm/mark; echo run-$((40+2))-ready\n")
        .expect("type into husk run");
    let deadline = Instant::now() + timeout;
    while !read_text(&output_path).contains("run-42-ready") {
        if let Ok(Some(status)) = run.try_wait() {
            panic!(
                "husk run ended ({status}) before the shell answered\noutput:\n{}\nerrors:\n{}",
                read_text(&output_path),
                read_text(&errors_path)
            );
        }
        assert!(
            Instant::now() < deadline,
            "the shell of husk run did not answer within {timeout:?}\noutput:\n{}\nerrors:\n{}",
            read_text(&output_path),
            read_text(&errors_path)
        );
        thread::sleep(Duration::from_millis(20));
    }

    let exec = husk(&[
        "exec",
        id,
        "sh",
        "-c",
        "cat /dev/shm/mark; tr '\\0' ' ' < /proc/1/cmdline; echo; echo exec-pid=$$",
    ])
    .output()
    .expect("run husk exec");
    let exec_output = String::from_utf8_lossy(&exec.stdout);
    assert!(
        exec.status.success(),
        "husk exec failed ({}): {}",
        exec.status,
        String::from_utf8_lossy(&exec.stderr)
    );
    let lines: Vec<&str> = exec_output.lines().collect();
    assert_eq!(
        lines.first(),
        Some(&"made-by-run"),
        "exec output:\n{exec_output}"
    );
    assert_eq!(
        lines.get(1).map(|line| line.trim_end()),
        Some("sh"),
        "pid 1 of the exec'd process's pid namespace is the container's shell:\n{exec_output}"
    );
    let exec_pid: u32 = lines
        .get(2)
        .and_then(|line| line.strip_prefix("exec-pid="))
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no exec-pid line:\n{exec_output}"));
    assert!(
        (2..100).contains(&exec_pid),
        "the exec'd shell is pid {exec_pid}: not in the container's pid namespace"
    );

    // `husk ps`'s table shows the shell (for a VM, as the guest sees it).
    let ps = husk(&["ps", id]).output().expect("run husk ps");
    let table = String::from_utf8_lossy(&ps.stdout);
    assert!(
        ps.status.success(),
        "husk ps failed: {}",
        String::from_utf8_lossy(&ps.stderr)
    );
    let mut rows = table.lines();
    assert!(
        rows.next().is_some_and(|header| header.contains("PID")),
        "{table}"
    );
    assert!(
        rows.any(|row| row.split_whitespace().last() == Some("sh")),
        "no row for the shell:\n{table}"
    );

    terminal.write_all(b"exit 3\n").expect("type exit");
    drop(terminal);
    let status = wait_with_deadline(&mut run, timeout);
    assert_eq!(
        status.and_then(|status| status.code()),
        Some(3),
        "husk run did not end with the shell's status 3\noutput:\n{}\nerrors:\n{}",
        read_text(&output_path),
        read_text(&errors_path)
    );
    let state = husk(&["state", id]).output().expect("run husk state");
    assert!(
        !state.status.success(),
        "husk run left the container behind: {}",
        String::from_utf8_lossy(&state.stdout)
    );
}

/// The host files a VM container's record names (`husk.paths`): the
/// rootfs image first, then the sockets, and from `extra` (which holds
/// other things too, such as the VM's memory size) hooks.json, the logs and
/// the socket directory.
pub fn vm_files_of_record(record: &Value) -> Result<Vec<PathBuf>, String> {
    let paths = &record["husk"]["paths"];
    let image = paths["rootfsImage"]
        .as_str()
        .ok_or_else(|| format!("the record names no image:\n{record}"))?;
    let mut files = vec![PathBuf::from(image)];
    if let Some(sockets) = paths["sockets"].as_object() {
        files.extend(
            sockets
                .values()
                .filter_map(Value::as_str)
                .map(PathBuf::from),
        );
    }
    for key in ["hooks", "vmmLog", "consoleLog", "socketDir"] {
        files.extend(paths["extra"][key].as_str().map(PathBuf::from));
    }
    Ok(files)
}
