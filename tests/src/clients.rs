//! Real callers of an OCI runtime — podman with conmon, containerd's runc
//! v2 shim driven by `ctr`, and dockerd on a containerd of its own —
//! pointed at husk with either of its backends ([`Backend`]), called
//! exactly as they call runc (CLIENTS.md records how that is). What they
//! do with it is in [`scenarios`], the same for both backends.
//!
//! Each client gets a scratch directory that holds everything it keeps:
//! image storage, daemon roots, sockets, logs and husk's state root. The
//! few things the clients put elsewhere no matter what they are told
//! (containerd's shim sockets under /run/containerd, podman's blob-info
//! cache under /var/lib/containers, the cgroup parents `/docker`,
//! `/libpod_parent`, `/<namespace>`) are removed at the end when the test
//! created them. Cleanup runs on drop, so a failing test leaves nothing
//! behind either: the client removes its containers, the daemons stop,
//! leftover processes started from the scratch directory are killed and
//! its mounts undone.
//!
//! The image is made locally ([`image`]); what lies outside the scratch
//! directory is tracked in [`host`]; `-it` sessions go through a terminal
//! the test drives ([`terminal`]).
//!
//! Needs root and the Debian packages podman, containerd and docker.io
//! (`scripts/install-host-deps` installs them); the `vm` backend also
//! needs a KVM that boots guests and the guest kernel, initramfs and
//! husk-vmm ([`crate::Artifacts`]).

use std::cell::Cell;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub mod host;
pub mod image;
pub mod scenarios;
pub mod terminal;

pub use self::host::{cgroup_dirs_of, HostFootprint};
pub use self::image::{build_image_archive, IMAGE_HOSTNAME, IMAGE_REFERENCE};
use self::terminal::Terminal;
use crate::husk_cli::{husk_binary, read_text};
use crate::{path_str, wait_with_deadline, Artifacts};

/// How long a stopping daemon gets after SIGTERM before SIGKILL.
const DAEMON_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// How much of each log a failure message quotes.
const LOG_TAIL_LINES: usize = 40;

/// The husk backend a client's containers run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// husk's container engine on this host, as runc does it.
    Container,
    /// Each container in its own microVM. Needs a KVM that boots guests:
    /// on a host without one, inside the nested test host, where
    /// everything runs 10-30 times slower (TESTHOST.md).
    Vm,
}

impl Backend {
    /// The name `--backend` takes.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Container => "container",
            Backend::Vm => "vm",
        }
    }

    /// husk's configuration file for the clients' husk
    /// (`shim/src/config.rs`): the backend, and for `vm` the guest kernel,
    /// initramfs and husk-vmm, so that the clients' husk boots the ones
    /// under test (HUSK_KERNEL, HUSK_INITRAMFS, HUSK_VMM) whatever
    /// environment the client gives it.
    fn husk_config(self) -> Value {
        match self {
            Backend::Container => json!({"backend": "container"}),
            Backend::Vm => {
                let artifacts = Artifacts::get();
                json!({
                    "backend": "vm",
                    "kernel": path_str(&artifacts.vmlinux),
                    "initramfs": path_str(&artifacts.initramfs),
                    "vmm": path_str(&artifacts.vmm),
                })
            }
        }
    }

    /// How long one client command may take; one that hangs fails its
    /// test. A `vm` command may boot a VM in the emulated test host.
    pub fn client_timeout(self) -> Duration {
        match self {
            Backend::Container => Duration::from_secs(120),
            Backend::Vm => Duration::from_secs(240),
        }
    }

    /// How long a daemon may take to answer on its socket: the `vm`
    /// tests start theirs inside the emulated test host.
    pub fn daemon_start_timeout(self) -> Duration {
        match self {
            Backend::Container => Duration::from_secs(60),
            Backend::Vm => Duration::from_secs(240),
        }
    }

    /// How long to watch a paused container to tell that its output
    /// stopped, and how long to let output already in flight (written just
    /// before the freeze, still in a relay) arrive first.
    pub fn pause_watch(self) -> (Duration, Duration) {
        match self {
            Backend::Container => (Duration::from_secs(2), Duration::from_secs(1)),
            Backend::Vm => (Duration::from_secs(4), Duration::from_secs(3)),
        }
    }
}

/// Fails the test unless the program a Debian package installs is there.
pub fn require_program(path: &str, package: &str) -> PathBuf {
    let program = PathBuf::from(path);
    assert!(
        program.is_file(),
        "{path} is missing: install Debian's {package} (scripts/install-host-deps does)"
    );
    program
}

/// The last lines of a log file, for failure messages.
fn tail(path: &Path) -> String {
    let text = read_text(path);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

// ---- the husk runtime the clients call ----

/// A script that runs husk with one backend, and records each call's
/// arguments and exit status: clients take a runtime as one path and add
/// their own arguments. Its calls log shows how a client drove husk when
/// a test fails.
pub struct HuskWrapper {
    pub path: PathBuf,
    pub calls_log: PathBuf,
}

impl HuskWrapper {
    /// Writes the wrapper and its husk configuration file into
    /// `directory`; `global_args` go before the client's arguments (e.g.
    /// `--root` for podman, which passes none).
    pub fn write(directory: &Path, backend: Backend, global_args: &[&str]) -> HuskWrapper {
        let husk = husk_binary();
        let config = directory.join("husk-config.json");
        // The configuration file is named explicitly so that
        // /etc/husk/config.json on this machine changes nothing here.
        fs::write(&config, backend.husk_config().to_string())
            .expect("write husk's configuration file");
        let calls_log = directory.join("husk-calls.log");
        let path = directory.join("husk");
        let quote = |text: &str| {
            assert!(!text.contains('\''), "{text:?} cannot be single-quoted");
            format!("'{text}'")
        };
        let extra: Vec<String> = global_args.iter().map(|arg| quote(arg)).collect();
        // Each call is logged when it starts and again, with husk's exit
        // status, when it ends; husk's stdio is the client's.
        let script = format!(
            "#!/bin/sh\n\
             # husk with the {backend} backend, as the OCI runtime of a client under test.\n\
             printf '%s\\n' \"$*\" >> {log}\n\
             HUSK_CONFIG={config} {husk} --backend {backend} {extra} \"$@\"\n\
             status=$?\n\
             printf 'exit %s: %s\\n' \"$status\" \"$*\" >> {log}\n\
             exit \"$status\"\n",
            backend = backend.name(),
            log = quote(path_str(&calls_log)),
            config = quote(path_str(&config)),
            husk = quote(path_str(&husk)),
            extra = extra.join(" "),
        );
        fs::write(&path, script).expect("write the husk wrapper script");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
            .expect("make the husk wrapper executable");
        HuskWrapper { path, calls_log }
    }

    /// Every call so far: a line with the client's arguments when it
    /// started, and `exit STATUS: ARGUMENTS` when it ended.
    pub fn calls(&self) -> String {
        read_text(&self.calls_log)
    }
}

/// Fails the test when a husk state root still holds a container: every
/// container the client removed must have been deleted (`state.json`
/// sits in `<root>/<id>/`, possibly under a namespace directory).
pub fn assert_no_husk_state(root: &Path) {
    fn containers_in(directory: &Path, depth: u32, found: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(directory) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.join("state.json").exists() {
                found.push(path);
            } else if depth > 0 && path.is_dir() {
                containers_in(&path, depth - 1, found);
            }
        }
    }
    let mut found = Vec::new();
    containers_in(root, 2, &mut found);
    assert!(
        found.is_empty(),
        "husk still keeps state for removed containers: {found:?}"
    );
}

// ---- commands and daemons ----

/// A client program with the arguments and environment every call of it
/// takes, how long a call may take, and the logs to quote when a call
/// fails.
pub struct Client {
    program: PathBuf,
    base_args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    timeout: Duration,
    output_dir: PathBuf,
    calls: Cell<u32>,
    logs: Vec<(String, PathBuf)>,
}

/// What one client command did.
#[derive(Debug)]
pub struct ClientRun {
    pub command_line: String,
    /// None when it was killed by a signal or ran past its timeout.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    logs: Vec<(String, PathBuf)>,
}

impl ClientRun {
    /// The command, its output and the logs, for a failure message.
    pub fn report(&self) -> String {
        let mut report = format!(
            "`{}` exited {:?}\nstdout:\n{}\nstderr:\n{}",
            self.command_line, self.code, self.stdout, self.stderr
        );
        for (name, path) in &self.logs {
            report.push_str(&format!(
                "\n--- {name} ({}), last lines:\n{}",
                path.display(),
                tail(path)
            ));
        }
        report
    }

    /// Fails the test unless the command exited with `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &ClientRun {
        assert_eq!(self.code, Some(code), "{}", self.report());
        self
    }

    /// Its stdout; fails the test unless it exited 0.
    #[track_caller]
    pub fn success(&self) -> &str {
        self.expect_code(0);
        &self.stdout
    }
}

impl Client {
    /// A client whose calls each get `timeout`.
    pub fn new(program: PathBuf, output_dir: &Path, timeout: Duration) -> Client {
        let output_dir = output_dir.join(format!(
            "{}-calls",
            program.file_name().unwrap().to_string_lossy()
        ));
        fs::create_dir_all(&output_dir).expect("create the client's output directory");
        Client {
            program,
            base_args: Vec::new(),
            env: Vec::new(),
            timeout,
            output_dir,
            calls: Cell::new(0),
            logs: Vec::new(),
        }
    }

    /// Arguments every call starts with (global flags).
    pub fn base_args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, args: I) -> Self {
        self.base_args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, name: &str, value: impl Into<OsString>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// A log quoted when a call fails.
    pub fn log(mut self, name: &str, path: &Path) -> Self {
        self.logs.push((name.to_string(), path.to_path_buf()));
        self
    }

    /// How long each call may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The program with the base arguments, `args` and the environment,
    /// and its command line for messages.
    fn command(&self, args: &[&str]) -> (Command, String) {
        let mut command = Command::new(&self.program);
        command
            .args(&self.base_args)
            .args(args)
            .envs(self.env.iter().map(|(name, value)| (name, value)));
        let command_line = format!(
            "{} {}",
            self.program.display(),
            self.base_args
                .iter()
                .map(|arg| arg.to_string_lossy().into_owned())
                .chain(args.iter().map(|arg| arg.to_string()))
                .collect::<Vec<_>>()
                .join(" ")
        );
        (command, command_line)
    }

    /// Runs the program with `args` to the end (within its timeout),
    /// stdin from /dev/null. Output goes to files, not pipes: a client
    /// that leaves a daemon behind (conmon, a shim) would keep a pipe open
    /// and a reader waiting for its end.
    pub fn run(&self, args: &[&str]) -> ClientRun {
        self.run_with_stdin(args, Stdio::null(), "")
    }

    /// Runs the program with `args` to the end, `input` on its stdin (from
    /// a file: it ends there, as a pipe from `printf` would).
    pub fn run_with_input(&self, args: &[&str], input: &str) -> ClientRun {
        let input_path = self
            .output_dir
            .join(format!("{}.stdin", self.calls.get() + 1));
        fs::write(&input_path, input).expect("write the client's input");
        let stdin = fs::File::open(&input_path).expect("open the client's input");
        self.run_with_stdin(args, stdin.into(), &format!(" < {}", input_path.display()))
    }

    fn run_with_stdin(&self, args: &[&str], stdin: Stdio, redirection: &str) -> ClientRun {
        let call = self.calls.get() + 1;
        self.calls.set(call);
        let stdout_path = self.output_dir.join(format!("{call}.stdout"));
        let stderr_path = self.output_dir.join(format!("{call}.stderr"));
        let (mut command, command_line) = self.command(args);
        command
            .stdin(stdin)
            .stdout(fs::File::create(&stdout_path).expect("create a stdout file"))
            .stderr(fs::File::create(&stderr_path).expect("create a stderr file"));
        let command_line = command_line + redirection;
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("start `{command_line}`: {error}"));
        let status = wait_with_deadline(&mut child, self.timeout);
        let mut stderr = read_text(&stderr_path);
        if status.is_none() {
            stderr.push_str(&format!("\n(killed: it ran past {:?})", self.timeout));
        }
        ClientRun {
            command_line,
            code: status.and_then(|status| status.code()),
            stdout: read_text(&stdout_path),
            stderr,
            logs: self.logs.clone(),
        }
    }

    /// Starts the program with `args` on a terminal of its own, for the
    /// test to type into and read from (`-it`).
    pub fn run_in_terminal(&self, args: &[&str]) -> Terminal {
        let (command, command_line) = self.command(args);
        Terminal::start(command, command_line, self.timeout, self.logs.clone())
    }

    /// Runs and ignores the outcome: for cleanup, where a failure must not
    /// hide the test's own.
    pub fn run_quietly(&self, args: &[&str]) {
        let _ = self.run(args);
    }
}

/// A daemon started by the test (containerd, dockerd), its output in a
/// log file; stopped on drop.
pub struct Daemon {
    name: String,
    child: Option<Child>,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts `command` with its stdout and stderr in `log`, then waits
    /// until `ready` holds; fails the test, quoting the log, when the
    /// daemon exits first or `timeout` passes.
    pub fn start(
        name: &str,
        mut command: Command,
        log: PathBuf,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Daemon {
        let output = fs::File::create(&log).expect("create the daemon's log");
        let child = command
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("duplicate the log descriptor"))
            .stderr(output)
            .spawn()
            .unwrap_or_else(|error| panic!("start {name}: {error}"));
        let mut daemon = Daemon {
            name: name.to_string(),
            child: Some(child),
            log,
        };
        let deadline = Instant::now() + timeout;
        while !ready() {
            let child = daemon.child.as_mut().unwrap();
            if let Some(status) = child.try_wait().expect("poll the daemon") {
                panic!(
                    "{name} exited ({status}) before it was ready; its log ({}):\n{}",
                    daemon.log.display(),
                    tail(&daemon.log)
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "{name} was not ready within {timeout:?}; its log ({}):\n{}",
                    daemon.log.display(),
                    tail(&daemon.log)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        daemon
    }

    /// SIGTERM, then SIGKILL if it has not exited within
    /// [`DAEMON_STOP_TIMEOUT`]. Returns false when it had to be killed.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let pid = i32::try_from(child.id()).expect("pids fit an i32");
        // SAFETY: kill(2) takes two integers; `pid` is our unreaped child,
        // so the id cannot have been reused.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let stopped = wait_with_deadline(&mut child, DAEMON_STOP_TIMEOUT).is_some();
        if !stopped {
            eprintln!(
                "{} did not stop within {DAEMON_STOP_TIMEOUT:?} of SIGTERM and was killed",
                self.name
            );
        }
        stopped
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---- containerd ----

/// A private containerd: its own root, state, sockets and log in
/// `directory`, the CRI plugin off (no kubelet here).
pub struct Containerd {
    pub socket: PathBuf,
    pub daemon: Daemon,
}

impl Containerd {
    /// Starts it and waits (up to `timeout`) until it answers.
    pub fn start(directory: &Path, timeout: Duration) -> Containerd {
        let containerd = require_program("/usr/bin/containerd", "containerd");
        require_program("/usr/bin/containerd-shim-runc-v2", "containerd");
        let ctr = require_program("/usr/bin/ctr", "containerd");
        fs::create_dir_all(directory).expect("create containerd's directory");
        let socket = directory.join("containerd.sock");
        let config = directory.join("config.toml");
        let text = format!(
            "version = 2\n\
             root = \"{root}\"\n\
             state = \"{state}\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{socket}\"\n\
             [ttrpc]\n  address = \"{socket}.ttrpc\"\n\
             [debug]\n  address = \"\"\n\
             [metrics]\n  address = \"\"\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{opt}\"\n",
            root = path_str(&directory.join("root")),
            state = path_str(&directory.join("state")),
            socket = path_str(&socket),
            opt = path_str(&directory.join("opt")),
        );
        fs::write(&config, text).expect("write containerd's configuration");
        let mut command = Command::new(containerd);
        command.arg("--config").arg(&config);
        let daemon = Daemon::start(
            "containerd",
            command,
            directory.join("containerd.log"),
            timeout,
            || {
                socket.exists()
                    && Command::new(&ctr)
                        .arg("--address")
                        .arg(&socket)
                        .arg("version")
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .is_ok_and(|status| status.success())
            },
        );
        Containerd { socket, daemon }
    }
}

// ---- the three clients ----

/// podman (with conmon) on storage of its own, husk as its runtime.
pub struct Podman {
    pub podman: Client,
    pub wrapper: HuskWrapper,
    pub husk_root: PathBuf,
    pub footprint: HostFootprint,
}

impl Podman {
    /// Writes podman's configuration and the husk wrapper for `backend`;
    /// fails the test when podman or conmon is missing.
    pub fn set_up(backend: Backend) -> Podman {
        let podman = require_program("/usr/bin/podman", "podman");
        require_program("/usr/bin/conmon", "conmon");
        // Podman's blob-info cache sits in /var/lib/containers/cache for
        // root whatever --root says; conmon's cgroup and the containers'
        // go under /libpod_parent with the cgroupfs manager.
        let footprint = HostFootprint::new(
            "podman",
            &["/var/lib/containers", "/run/containers", "/run/libpod"],
            &["libpod_parent"],
        );
        let husk_root = footprint.file("husk-root");
        let wrapper =
            HuskWrapper::write(&footprint.dir, backend, &["--root", path_str(&husk_root)]);
        // The hard RLIMIT_NOFILE here is 20000 and root lacks
        // CAP_SYS_RESOURCE: podman's default of 1048576 cannot be applied
        // by any runtime (CLIENTS.md). The log driver is named so that
        // podman's choice (journald where systemd runs) cannot change what
        // `podman logs` reads: conmon's k8s-file log.
        let containers_conf = footprint.file("containers.conf");
        fs::write(
            &containers_conf,
            "[containers]\n\
             default_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n\
             log_driver = \"k8s-file\"\n",
        )
        .expect("write containers.conf");
        // Named so that /etc/containers/storage.conf cannot change the
        // driver or its options; the flags below give the paths.
        let storage_conf = footprint.file("storage.conf");
        fs::write(
            &storage_conf,
            format!(
                "[storage]\ndriver = \"overlay\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
                path_str(&footprint.file("storage")),
                path_str(&footprint.file("run")),
            ),
        )
        .expect("write storage.conf");
        let podman = Client::new(podman, &footprint.dir, backend.client_timeout())
            .base_args(["--root", path_str(&footprint.file("storage"))])
            .base_args(["--runroot", path_str(&footprint.file("run"))])
            .base_args(["--tmpdir", path_str(&footprint.file("tmp"))])
            .base_args(["--storage-driver", "overlay"])
            .base_args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"])
            .base_args(["--runtime", path_str(&wrapper.path)])
            .env("CONTAINERS_CONF", &containers_conf)
            .env("CONTAINERS_STORAGE_CONF", &storage_conf)
            .log("husk calls", &wrapper.calls_log);
        Podman {
            podman,
            wrapper,
            husk_root,
            footprint,
        }
    }

    pub fn run(&self, args: &[&str]) -> ClientRun {
        self.podman.run(args)
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        self.podman
            .run_quietly(&["rm", "--all", "--force", "--time", "0"]);
        self.podman.run_quietly(&["rmi", "--all", "--force"]);
        // Unmounts the storage and removes what it holds.
        self.podman.run_quietly(&["system", "reset", "--force"]);
    }
}

/// A private containerd driven by ctr, with husk as the runc binary of the
/// runc v2 shim, in a namespace of the test's own.
pub struct Ctr {
    pub ctr: Client,
    pub wrapper: HuskWrapper,
    pub husk_root: PathBuf,
    pub namespace: String,
    pub containerd: Containerd,
    pub footprint: HostFootprint,
}

impl Ctr {
    /// Starts the private containerd, with husk on `backend` as the runc
    /// binary; fails the test, quoting its log, when it does not come up.
    pub fn start(backend: Backend) -> Ctr {
        let ctr = require_program("/usr/bin/ctr", "containerd");
        let namespace = format!("husk-clients-{}", std::process::id());
        // The shim's sockets live in /run/containerd/s and ctr's stdio
        // fifos in /run/containerd/fifo whatever the configuration says;
        // ctr's default cgroup is /<namespace>/<id>.
        let footprint = HostFootprint::new("ctr", &["/run/containerd"], &[&namespace]);
        let husk_root = footprint.file("husk-root");
        let wrapper = HuskWrapper::write(&footprint.dir, backend, &[]);
        let containerd = Containerd::start(
            &footprint.file("containerd"),
            backend.daemon_start_timeout(),
        );
        let ctr = Client::new(ctr, &footprint.dir, backend.client_timeout())
            .base_args(["--address", path_str(&containerd.socket)])
            .base_args(["--namespace", &namespace])
            .log("husk calls", &wrapper.calls_log)
            .log("containerd", &containerd.daemon.log);
        Ctr {
            ctr,
            wrapper,
            husk_root,
            namespace,
            containerd,
            footprint,
        }
    }

    pub fn run(&self, args: &[&str]) -> ClientRun {
        self.ctr.run(args)
    }

    /// `ctr run` with husk as the shim's runtime: `--runc-binary`, and
    /// `--runc-root` for husk's state root, then `args`.
    pub fn run_container(&self, args: &[&str]) -> ClientRun {
        self.ctr.run(&self.run_container_args(args))
    }

    /// The arguments of [`Ctr::run_container`], for a run on a terminal.
    pub fn run_container_args<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut full = vec![
            "run",
            "--runc-binary",
            path_str(&self.wrapper.path),
            "--runc-root",
            path_str(&self.husk_root),
        ];
        full.extend_from_slice(args);
        full
    }

    /// The tasks `ctr task ls` lists: (ID, PID, STATUS).
    pub fn tasks(&self) -> Vec<(String, String, String)> {
        self.run(&["task", "ls"])
            .success()
            .lines()
            .skip(1)
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                Some((
                    fields.next()?.to_string(),
                    fields.next()?.to_string(),
                    fields.next()?.to_string(),
                ))
            })
            .collect()
    }
}

impl Drop for Ctr {
    fn drop(&mut self) {
        for id in self.ctr.run(&["task", "ls", "--quiet"]).stdout.lines() {
            self.ctr.run_quietly(&["task", "delete", "--force", id]);
        }
        for id in self.ctr.run(&["container", "ls", "--quiet"]).stdout.lines() {
            self.ctr.run_quietly(&["container", "rm", id]);
        }
        self.ctr.run_quietly(&["image", "rm", IMAGE_REFERENCE]);
        self.containerd.daemon.stop();
    }
}

/// dockerd on a private containerd, with husk added as the runtime
/// `husk`, no bridge and no iptables (CLIENTS.md).
pub struct Docker {
    pub docker: Client,
    pub wrapper: HuskWrapper,
    /// Where dockerd tells the shim to keep the runtime's state
    /// (`<exec-root>/runtime-runc/<namespace>`, passed as `--root`).
    pub husk_root: PathBuf,
    pub dockerd: Daemon,
    pub containerd: Containerd,
    pub footprint: HostFootprint,
}

impl Docker {
    /// Starts the private containerd and dockerd, with husk on `backend`
    /// as the runtime `husk`; fails the test, quoting their logs, when
    /// either does not come up.
    pub fn start(backend: Backend) -> Docker {
        let dockerd = require_program("/usr/sbin/dockerd", "docker.io");
        // The package's client, matching the daemon's API version (a
        // newer docker CLI may sit earlier on PATH).
        let docker = require_program("/usr/bin/docker", "docker.io");
        // dockerd makes /run/docker (plugin sockets) whatever exec-root
        // says; the shim's sockets go to /run/containerd/s; containers'
        // cgroups go under /docker.
        let footprint = HostFootprint::new(
            "docker",
            &["/run/docker", "/run/containerd", "/var/lib/docker"],
            &["docker"],
        );
        let wrapper = HuskWrapper::write(&footprint.dir, backend, &[]);
        let containerd = Containerd::start(
            &footprint.file("containerd"),
            backend.daemon_start_timeout(),
        );
        let exec_root = footprint.file("exec");
        let socket = footprint.file("docker.sock");
        let daemon_json = footprint.file("daemon.json");
        fs::write(
            &daemon_json,
            json!({
                "bridge": "none",
                "iptables": false,
                "ip6tables": false,
                "ip-masq": false,
                "userland-proxy": false,
                "storage-driver": "overlay2",
                // Else dockerd writes its identity key to /etc/docker.
                "deprecated-key-path": path_str(&footprint.file("key.json")),
            })
            .to_string(),
        )
        .expect("write daemon.json");
        let cli_config = footprint.file("docker-cli");
        fs::create_dir_all(&cli_config).expect("create the docker CLI's configuration directory");
        let host = format!("unix://{}", path_str(&socket));
        let mut command = Command::new(dockerd);
        command
            .arg("--config-file")
            .arg(&daemon_json)
            .arg("--data-root")
            .arg(footprint.file("data"))
            .arg("--exec-root")
            .arg(&exec_root)
            .arg("--pidfile")
            .arg(footprint.file("dockerd.pid"))
            .args(["--host", &host])
            .arg("--containerd")
            .arg(&containerd.socket)
            .arg("--add-runtime")
            .arg(format!("husk={}", path_str(&wrapper.path)));
        let daemon = Daemon::start(
            "dockerd",
            command,
            footprint.file("dockerd.log"),
            backend.daemon_start_timeout(),
            || {
                socket.exists()
                    && Command::new(&docker)
                        .args(["--host", &host, "version"])
                        .env("DOCKER_CONFIG", &cli_config)
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .is_ok_and(|status| status.success())
            },
        );
        let docker = Client::new(docker, &footprint.dir, backend.client_timeout())
            .base_args(["--host", &host])
            .env("DOCKER_CONFIG", &cli_config)
            .log("husk calls", &wrapper.calls_log)
            .log("dockerd", &daemon.log)
            .log("containerd", &containerd.daemon.log);
        Docker {
            docker,
            wrapper,
            husk_root: exec_root.join("runtime-runc"),
            dockerd: daemon,
            containerd,
            footprint,
        }
    }

    pub fn run(&self, args: &[&str]) -> ClientRun {
        self.docker.run(args)
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        let listed = self.docker.run(&["ps", "--all", "--quiet"]);
        for id in listed.stdout.lines() {
            self.docker.run_quietly(&["rm", "--force", id]);
        }
        self.docker
            .run_quietly(&["rmi", "--force", IMAGE_REFERENCE]);
        self.dockerd.stop();
        self.containerd.daemon.stop();
    }
}

/// Waits until `condition` holds, asking every 100 ms (a client's view of
/// a container changes asynchronously); fails naming `what` after
/// `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
