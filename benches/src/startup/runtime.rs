//! The runtimes compared — husk's two backends, runc and crun — driven
//! through their runc-compatible command lines the way conmon drives them
//! (CLIENTS.md): `create --bundle B --pid-file P ID`, `start ID`, then wait
//! for the container process, `delete ID`; or `run --bundle B ID`.
//!
//! Each runtime keeps its state under its own `--root` in the scratch
//! directory. Every container is on a list from before its `create` until
//! its `delete`; whatever is still listed when the set is dropped (an
//! error, an interrupt) is removed with `delete --force`, and every
//! container process still running is killed.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::bundle::Bundle;
use super::command::{self, CommandError, ErrorLog, PendingOutput};
use super::sys::{self, Exit, ProcessWatch};

/// How long one runtime command may take (a VM-backend `create` waits up
/// to its boot timeout, 60 s by default, for the guest).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a container that was started may take to end by itself.
const EXIT_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Runtime {
    HuskContainer,
    HuskVm,
    Runc,
    Crun,
}

impl Runtime {
    /// How tables and plots name it.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::HuskContainer => "husk container",
            Runtime::HuskVm => "husk vm",
            Runtime::Runc => "runc",
            Runtime::Crun => "crun",
        }
    }

    /// How file names, container IDs and the CSV name it.
    pub fn key(self) -> &'static str {
        match self {
            Runtime::HuskContainer => "husk-container",
            Runtime::HuskVm => "husk-vm",
            Runtime::Runc => "runc",
            Runtime::Crun => "crun",
        }
    }

    pub fn is_husk(self) -> bool {
        matches!(self, Runtime::HuskContainer | Runtime::HuskVm)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The command's whole message is in the text (no source), so that
    /// the hint comes last.
    #[error("{}", with_hint(error))]
    Command { error: CommandError },
    #[error("make {}", path.display())]
    Directory {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("read the pid file {} that `{command}` wrote", path.display())]
    PidFile {
        command: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("watch the process {pid} of container {id}")]
    Watch {
        id: String,
        pid: i32,
        #[source]
        source: io::Error,
    },
    #[error("container {id} (pid {pid}) did not end within {EXIT_TIMEOUT:?} after `start`")]
    NoExit { id: String, pid: i32 },
    #[error(
        "container {id} ended with {exit}, expected exit status 0{}",
        command::quoted("its stderr", stderr)
    )]
    ContainerFailed {
        id: String,
        exit: Exit,
        stderr: String,
    },
    #[error(
        "container {id} printed {actual:?}, expected {expected:?}{}",
        command::quoted("its stderr", stderr)
    )]
    WrongOutput {
        id: String,
        actual: String,
        expected: String,
        stderr: String,
    },
    #[error("`{command}` printed no JSON state with husk.timingsMicros: {output}")]
    State { command: String, output: String },
}

impl From<CommandError> for RuntimeError {
    fn from(source: CommandError) -> Self {
        RuntimeError::Command { error: source }
    }
}

/// The command's own message, and what to do where the cause is known.
fn with_hint(error: &CommandError) -> String {
    let mut message = command::error_chain(error);
    if message.contains("hybrid mode not supported") {
        message.push_str(
            "\n  crun 1.8.1 refuses a cgroup v1 \"hybrid\" host while the cgroup2 mount at \
             /sys/fs/cgroup/unified holds a controller (on Debian 12 without systemd: \
             hugetlb; see /sys/fs/cgroup/unified/cgroup.controllers). Until the next boot, \
             this moves hugetlb to a v1 hierarchy (CLIENTS.md): mkdir -p /sys/fs/cgroup/hugetlb \
             && mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb. Or run the benchmark \
             where every runtime sees cgroup v1 only: unshare -m sh -c 'umount \
             /sys/fs/cgroup/unified && exec husk-bench-startup ...'. Or run scripts/bench \
             without --skip-vm on a host whose KVM cannot boot a guest: it runs everything \
             inside the test host, where cgroups are v2 only.",
        );
    }
    message
}

/// Where the programs are.
#[derive(Debug, Clone)]
pub struct Programs {
    pub husk: PathBuf,
    pub runc: PathBuf,
    pub crun: PathBuf,
}

/// The runtimes with their state directories, and the containers that
/// exist right now.
pub struct Runtimes {
    programs: Programs,
    /// husk's configuration file (`HUSK_CONFIG`): the VM backend's kernel,
    /// initramfs and husk-vmm, so nothing installed is used.
    husk_config: PathBuf,
    state: PathBuf,
    logs: PathBuf,
    live: RefCell<BTreeSet<(Runtime, String)>>,
    processes: RefCell<BTreeMap<i32, ProcessWatch>>,
}

/// A container's stdout, read while it runs.
pub struct ContainerOutput(PendingOutput);

/// A container after `create`: its pid, the pidfd watching it, what it
/// prints, and where its stderr goes.
pub struct Created {
    pub id: String,
    pub runtime: Runtime,
    pub pid: i32,
    pub output: Option<ContainerOutput>,
    pub log: ErrorLog,
}

/// The times of one create → start → exit → delete.
#[derive(Debug, Clone, Default)]
pub struct Lifecycle {
    pub create: Duration,
    pub start: Duration,
    /// From `start` returning until the container process has ended.
    pub exit: Duration,
    pub delete: Duration,
    /// husk's phases (`husk state`: husk.timingsMicros), read between
    /// create and start (not timed).
    pub phases: BTreeMap<String, u64>,
}

impl Lifecycle {
    pub fn total(&self) -> Duration {
        self.create + self.start + self.exit + self.delete
    }
}

impl Runtimes {
    pub fn new(
        programs: Programs,
        husk_config: PathBuf,
        scratch: &Path,
    ) -> Result<Self, RuntimeError> {
        let state = scratch.join("state");
        let logs = scratch.join("logs");
        for path in [&state, &logs] {
            fs::create_dir_all(path).map_err(|source| RuntimeError::Directory {
                path: path.clone(),
                source,
            })?;
        }
        Ok(Self {
            programs,
            husk_config,
            state,
            logs,
            live: RefCell::default(),
            processes: RefCell::default(),
        })
    }

    /// `PROGRAM [global options] ARGS...` for `runtime`.
    pub fn command<S: AsRef<OsStr>>(&self, runtime: Runtime, args: &[S]) -> Command {
        let program = match runtime {
            Runtime::HuskContainer | Runtime::HuskVm => &self.programs.husk,
            Runtime::Runc => &self.programs.runc,
            Runtime::Crun => &self.programs.crun,
        };
        let mut command = Command::new(program);
        command.arg("--root").arg(self.state.join(runtime.key()));
        match runtime {
            Runtime::HuskContainer => {
                command.args(["--backend", "container"]);
            }
            Runtime::HuskVm => {
                command.args(["--backend", "vm"]);
            }
            Runtime::Runc | Runtime::Crun => {}
        }
        if runtime.is_husk() {
            command.env("HUSK_CONFIG", &self.husk_config);
        }
        command.args(args);
        command.stdin(Stdio::null());
        command
    }

    fn pid_file(&self, id: &str) -> PathBuf {
        self.logs.join(format!("{id}.pid"))
    }

    /// `create --bundle B --pid-file P ID`, timed. The container's stdout
    /// goes to a pipe read in the background when `capture` is set (to
    /// /dev/null otherwise), its stderr (and the runtime's) to a log file.
    pub fn create(
        &self,
        runtime: Runtime,
        bundle: &Bundle,
        id: &str,
        capture: bool,
    ) -> Result<(Created, Duration), RuntimeError> {
        let mut pending = self.spawn_create(runtime, bundle, id, capture)?;
        let created = pending.finish(self)?;
        Ok(created)
    }

    /// Starts a `create` and returns without waiting for it: density
    /// starts many at once.
    pub fn spawn_create(
        &self,
        runtime: Runtime,
        bundle: &Bundle,
        id: &str,
        capture: bool,
    ) -> Result<PendingCreate, RuntimeError> {
        let pid_file = self.pid_file(id);
        let _ = fs::remove_file(&pid_file);
        let mut command = self.command(
            runtime,
            &[
                "create".as_ref(),
                "--bundle".as_ref(),
                bundle.dir.as_os_str(),
            ],
        );
        command.arg("--pid-file").arg(&pid_file).arg(id);
        let (log, stderr) = ErrorLog::create(&self.logs.join(format!("{id}.stderr")))?;
        command.stderr(stderr);
        command.stdout(if capture {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        self.live.borrow_mut().insert((runtime, id.to_string()));
        let description = command::describe(&command);
        let started = Instant::now();
        let mut child = command::spawn(&mut command)?;
        // Our copy of the write end is gone with `command`; the container
        // and its runtime hold the others.
        drop(command);
        let output = child
            .stdout
            .take()
            .map(|pipe| ContainerOutput(PendingOutput::of(pipe)));
        Ok(PendingCreate {
            runtime,
            id: id.to_string(),
            description,
            started,
            child,
            output,
            log: Some(log),
            pid_file,
        })
    }

    /// `state ID`: husk's startup phases.
    pub fn phases(
        &self,
        runtime: Runtime,
        id: &str,
    ) -> Result<BTreeMap<String, u64>, RuntimeError> {
        let command = self.command(runtime, &["state", id]);
        let description = command::describe(&command);
        let captured = command::run(command, COMMAND_TIMEOUT)?;
        let state: serde_json::Value =
            serde_json::from_str(&captured.stdout).map_err(|_| RuntimeError::State {
                command: description.clone(),
                output: captured.stdout.clone(),
            })?;
        let timings = state
            .pointer("/husk/timingsMicros")
            .and_then(|timings| timings.as_object())
            .ok_or_else(|| RuntimeError::State {
                command: description.clone(),
                output: captured.stdout.clone(),
            })?;
        Ok(timings
            .iter()
            .filter_map(|(name, micros)| Some((name.clone(), micros.as_u64()?)))
            .collect())
    }

    /// `start ID`, timed.
    pub fn start(&self, created: &Created) -> Result<Duration, RuntimeError> {
        let captured = command::run(
            self.command(created.runtime, &["start", &created.id]),
            COMMAND_TIMEOUT,
        )?;
        Ok(captured.elapsed)
    }

    /// Waits for the container process to end and checks it ended well;
    /// returns when it ended.
    pub fn wait_for_exit(&self, created: &Created) -> Result<Instant, RuntimeError> {
        let processes = self.processes.borrow();
        let watch = processes
            .get(&created.pid)
            .expect("a created container is watched");
        let ended = watch
            .wait(EXIT_TIMEOUT)
            .map_err(|source| RuntimeError::Watch {
                id: created.id.clone(),
                pid: created.pid,
                source,
            })?;
        let at = Instant::now();
        if !ended {
            return Err(RuntimeError::NoExit {
                id: created.id.clone(),
                pid: created.pid,
            });
        }
        // As the subreaper we get the status; should someone else be its
        // parent (a runtime that keeps a process around), the exit is all
        // we learn.
        match watch.reap() {
            Some(Exit::Code(0)) | None => Ok(at),
            Some(exit) => Err(RuntimeError::ContainerFailed {
                id: created.id.clone(),
                exit,
                stderr: created.log.text(),
            }),
        }
    }

    /// `delete ID` of a container that has ended, timed.
    pub fn delete(&self, runtime: Runtime, id: &str) -> Result<Duration, RuntimeError> {
        let captured = command::run(self.command(runtime, &["delete", id]), COMMAND_TIMEOUT)?;
        self.forget(runtime, id);
        Ok(captured.elapsed)
    }

    /// `kill ID KILL` and `delete --force ID` for a container that may
    /// still run, then reaps its process.
    pub fn remove(&self, runtime: Runtime, id: &str, pid: Option<i32>) -> Result<(), RuntimeError> {
        let _ = command::run(
            self.command(runtime, &["kill", id, "KILL"]),
            COMMAND_TIMEOUT,
        );
        command::run(
            self.command(runtime, &["delete", "--force", id]),
            COMMAND_TIMEOUT,
        )?;
        self.forget(runtime, id);
        if let Some(pid) = pid {
            self.stop_process(pid);
        }
        Ok(())
    }

    /// Takes a container off the list once it is deleted.
    pub fn forget(&self, runtime: Runtime, id: &str) {
        self.live.borrow_mut().remove(&(runtime, id.to_string()));
    }

    /// Kills and reaps a container process we watch (our child as the
    /// subreaper); it is gone from the watch list afterwards.
    pub fn stop_process(&self, pid: i32) {
        if let Some(watch) = self.processes.borrow_mut().remove(&pid) {
            let _ = watch.signal(libc::SIGKILL);
            let _ = watch.wait(Duration::from_secs(10));
            let _ = watch.reap();
        }
    }

    /// Reaps a container process that has ended; it is gone from the
    /// watch list afterwards.
    pub fn release_process(&self, pid: i32) {
        if let Some(watch) = self.processes.borrow_mut().remove(&pid) {
            let _ = watch.reap();
        }
    }

    fn watch(&self, id: &str, pid: i32) -> Result<(), RuntimeError> {
        let watch = ProcessWatch::open(pid).map_err(|source| RuntimeError::Watch {
            id: id.to_string(),
            pid,
            source,
        })?;
        self.processes.borrow_mut().insert(pid, watch);
        Ok(())
    }

    /// Waits until a watched process has ended, at most until `deadline`;
    /// true when it has.
    pub fn wait_until(&self, pid: i32, deadline: Instant) -> bool {
        let processes = self.processes.borrow();
        processes.get(&pid).is_some_and(|watch| {
            watch
                .wait(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or(false)
        })
    }

    /// The container processes being watched.
    pub fn live_pids(&self) -> Vec<i32> {
        self.processes.borrow().keys().copied().collect()
    }

    /// One whole create → start → wait for the exit → delete, checking
    /// the exit status and, when `expected_output` is given, what the
    /// container printed. husk's phases are read between create and start.
    pub fn lifecycle(
        &self,
        runtime: Runtime,
        bundle: &Bundle,
        id: &str,
        expected_output: Option<&str>,
    ) -> Result<Lifecycle, RuntimeError> {
        let (created, create) = self.create(runtime, bundle, id, true)?;
        let phases = if runtime.is_husk() {
            self.phases(runtime, id)?
        } else {
            BTreeMap::new()
        };
        let start = self.start(&created)?;
        let start_returned = Instant::now();
        let ended = self.wait_for_exit(&created)?;
        self.release_process(created.pid);
        let delete = self.delete(runtime, id)?;
        let output = match created.output {
            Some(ContainerOutput(pending)) => pending.collect(&format!("container {id}"))?,
            None => String::new(),
        };
        let expected = expected_output.unwrap_or_default();
        if output != expected {
            return Err(RuntimeError::WrongOutput {
                id: id.to_string(),
                actual: output,
                expected: expected.to_string(),
                stderr: created.log.text(),
            });
        }
        Ok(Lifecycle {
            create,
            start,
            exit: ended.saturating_duration_since(start_returned),
            delete,
            phases,
        })
    }

    /// `run --bundle B ID` in the foreground, timed end to end, checking
    /// what the container printed.
    pub fn run(
        &self,
        runtime: Runtime,
        bundle: &Bundle,
        id: &str,
        expected_output: Option<&str>,
    ) -> Result<Duration, RuntimeError> {
        let mut command = self.command(
            runtime,
            &["run".as_ref(), "--bundle".as_ref(), bundle.dir.as_os_str()],
        );
        command.arg(id);
        self.live.borrow_mut().insert((runtime, id.to_string()));
        let captured = command::run(command, COMMAND_TIMEOUT)?;
        // run deletes the container after it ends.
        self.forget(runtime, id);
        let expected = expected_output.unwrap_or_default();
        if captured.stdout != expected {
            return Err(RuntimeError::WrongOutput {
                id: id.to_string(),
                actual: captured.stdout,
                expected: expected.to_string(),
                stderr: captured.stderr,
            });
        }
        Ok(captured.elapsed)
    }

    /// Removes every container still listed and kills every process still
    /// watched: what an error or an interrupt left behind.
    pub fn clean_up(&self) {
        let live: Vec<(Runtime, String)> = self.live.borrow().iter().cloned().collect();
        if !live.is_empty() {
            eprintln!(
                "husk-bench-startup: removing {} container(s) left behind",
                live.len()
            );
        }
        sys::clear_interrupt();
        for (runtime, id) in live {
            if let Err(error) = command::run(
                self.command(runtime, &["delete", "--force", id.as_str()]),
                COMMAND_TIMEOUT,
            ) {
                eprintln!("husk-bench-startup: clean up container {id}: {error}");
            }
            self.forget(runtime, &id);
        }
        for pid in self.live_pids() {
            self.stop_process(pid);
        }
    }
}

impl Drop for Runtimes {
    fn drop(&mut self) {
        self.clean_up();
    }
}

/// A `create` that is running.
pub struct PendingCreate {
    runtime: Runtime,
    id: String,
    description: String,
    started: Instant,
    child: std::process::Child,
    output: Option<ContainerOutput>,
    log: Option<ErrorLog>,
    pid_file: PathBuf,
}

impl PendingCreate {
    /// Waits for the `create` to end; on success reads the pid file and
    /// starts watching the container process. Returns how long it took.
    pub fn finish(&mut self, runtimes: &Runtimes) -> Result<(Created, Duration), RuntimeError> {
        let status = command::wait_child(&mut self.child, &self.description, COMMAND_TIMEOUT);
        let took = self.started.elapsed();
        let log = self.log.take().expect("a create finishes once");
        let status = status.map_err(|error| match error {
            CommandError::TimedOut {
                command, timeout, ..
            } => CommandError::TimedOut {
                command,
                timeout,
                stderr: log.text(),
            },
            other => other,
        })?;
        command::check_status(status, &self.description, &log)?;
        let pid = read_pid_file(&self.pid_file).map_err(|source| RuntimeError::PidFile {
            command: self.description.clone(),
            path: self.pid_file.clone(),
            source,
        })?;
        runtimes.watch(&self.id, pid)?;
        Ok((
            Created {
                id: self.id.clone(),
                runtime: self.runtime,
                pid,
                output: self.output.take(),
                log,
            },
            took,
        ))
    }
}

fn read_pid_file(path: &Path) -> io::Result<i32> {
    let text = fs::read_to_string(path)?;
    text.trim()
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("not a pid: {text:?}")))
}

/// Writes husk's configuration file naming what the VM backend boots.
pub fn write_husk_config(
    path: &Path,
    kernel: Option<&Path>,
    initramfs: Option<&Path>,
    vmm: Option<&Path>,
) -> Result<(), RuntimeError> {
    let mut config = serde_json::Map::new();
    for (key, value) in [("kernel", kernel), ("initramfs", initramfs), ("vmm", vmm)] {
        if let Some(value) = value {
            config.insert(key.to_string(), value.to_string_lossy().into_owned().into());
        }
    }
    let text = serde_json::Value::Object(config).to_string();
    let mut file = File::create(path).map_err(|source| RuntimeError::Directory {
        path: path.to_path_buf(),
        source,
    })?;
    io::Write::write_all(&mut file, text.as_bytes()).map_err(|source| RuntimeError::Directory {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_runtime_gets_its_own_root_and_husk_its_backend_and_config() {
        let runtimes = Runtimes {
            programs: Programs {
                husk: "/bin/husk".into(),
                runc: "/usr/sbin/runc".into(),
                crun: "/usr/bin/crun".into(),
            },
            husk_config: "/s/husk.json".into(),
            state: "/s/state".into(),
            logs: "/s/logs".into(),
            live: RefCell::default(),
            processes: RefCell::default(),
        };
        let line = |runtime| command::describe(&runtimes.command(runtime, &["start", "x"]));
        assert_eq!(
            line(Runtime::HuskVm),
            "HUSK_CONFIG=/s/husk.json /bin/husk --root /s/state/husk-vm --backend vm start x"
        );
        assert_eq!(
            line(Runtime::HuskContainer),
            "HUSK_CONFIG=/s/husk.json /bin/husk --root /s/state/husk-container --backend container start x"
        );
        assert_eq!(
            line(Runtime::Crun),
            "/usr/bin/crun --root /s/state/crun start x"
        );
        assert_eq!(
            line(Runtime::Runc),
            "/usr/sbin/runc --root /s/state/runc start x"
        );
        // Nothing is listed, so dropping cleans nothing up.
    }

    #[test]
    fn a_crun_refusing_the_hybrid_layout_gets_the_fix() {
        let error = CommandError::TimedOut {
            command: "crun create".to_string(),
            timeout: Duration::from_secs(1),
            stderr: "cgroups in hybrid mode not supported, drop all controllers from cgroupv2"
                .to_string(),
        };
        let message = RuntimeError::from(error).to_string();
        assert!(message.contains("mount -t cgroup -o hugetlb"), "{message}");
    }

    #[test]
    fn husk_config_names_only_what_is_given() {
        let dir = std::env::temp_dir().join(format!("husk-bench-config-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("husk.json");
        write_husk_config(&path, Some(Path::new("/k")), None, Some(Path::new("/v"))).unwrap();
        let config: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(config, serde_json::json!({"kernel": "/k", "vmm": "/v"}));
        fs::remove_dir_all(dir).unwrap();
    }
}
