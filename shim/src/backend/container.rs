//! The `container` backend: guest-init's container engine run directly on
//! this host, as runc runs containers (namespaces, cgroups v1 or v2 through
//! cgroupfs, capabilities, seccomp).
//!
//! The process model is runc's (runtime.md "Lifecycle"): `create` leaves
//! the container init blocked on the exec fifo in the state directory and
//! exits; the init then belongs to the caller, which reaps it as a child
//! subreaper (conmon, containerd's shim) and takes its exit status as the
//! container's. `start` opens the fifo. Only where husk itself waits —
//! `run` and `exec` without --detach — does it become a subreaper, so that
//! the init (or the exec'd process), which a pid namespace makes a
//! grandchild, is reparented to husk rather than to the caller.
//!
//! Between calls the backend keeps two things: the cgroup's path (in the
//! state's `paths.cgroup`) and the configuration as it was at create
//! ([`saved_config`]), which `exec`, `start` and `delete` read even after
//! the bundle has gone.

mod saved_config;
mod stats;

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use std::{io, thread};

use husk_init::engine::cgroups::{Cgroup, CgroupError};
use husk_init::engine::container::{
    kill_all, prepare_to_wait, wait_for_exit, wait_for_first, wait_for_first_handling, EXEC_FIFO,
};
use husk_init::engine::hooks::HookStage;
use husk_init::engine::syscall::LinuxSyscall;
use husk_init::engine::{self, sys, CreateOptions, EngineError, ExecOptions, Stdio};
use oci_spec::runtime::{ContainerState, LinuxResources};

use self::saved_config::SavedConfigError;
use self::stats::StatsError;
use super::relay::{ConsoleRelay, RelayError, OUTPUT_GRACE};
use super::{
    hooks, Backend, BackendError, BackendKind, CreateContext, CreatedContainer, ExecContext, Stats,
};
use crate::logging;
use crate::signal::Signal;
use crate::state::{BackendPaths, ContainerRecord, Status};

/// How long `delete` waits for the container init to die after SIGKILL.
/// A killed process is gone within milliseconds unless it is stuck in the
/// kernel (uninterruptible sleep), which no signal ends.
const INIT_EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// How often `delete` looks whether the init has gone.
const INIT_EXIT_POLL: Duration = Duration::from_millis(5);

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("{flag}: {reason}")]
    Unsupported { flag: String, reason: &'static str },
    #[error("connect to the console socket {} (--console-socket)", path.display())]
    ConsoleSocket {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "become a child subreaper (prctl PR_SET_CHILD_SUBREAPER) to wait for the container's \
         process"
    )]
    Subreaper {
        #[source]
        source: io::Error,
    },
    #[error("make a socket pair to receive the container's terminal")]
    ConsolePair {
        #[source]
        source: io::Error,
    },
    #[error("receive the container's terminal from the container engine")]
    ReceiveConsole {
        #[source]
        source: io::Error,
    },
    #[error("relay the container's terminal")]
    Relay(#[source] RelayError),
    #[error("block the signals husk forwards to the container's process")]
    BlockSignals {
        #[source]
        source: io::Error,
    },
    /// The engine's errors name the step and the field themselves.
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    SavedConfig(#[from] SavedConfigError),
    #[error("find the container's cgroup {}", path.display())]
    FindCgroup {
        path: PathBuf,
        #[source]
        source: CgroupError,
    },
    #[error(
        "the container's cgroup {} no longer exists; delete the container with husk delete \
         --force",
        path.display()
    )]
    CgroupGone { path: PathBuf },
    #[error("freeze the container's processes (cgroup freezer)")]
    Freeze {
        #[source]
        source: CgroupError,
    },
    #[error("thaw the container's processes (cgroup freezer)")]
    Thaw {
        #[source]
        source: CgroupError,
    },
    #[error("list the processes in the container's cgroup")]
    ListProcesses {
        #[source]
        source: CgroupError,
    },
    #[error("apply the new limits to the container's cgroup")]
    ApplyResources {
        #[source]
        source: CgroupError,
    },
    #[error("remove the container's cgroup")]
    RemoveCgroup {
        #[source]
        source: CgroupError,
    },
    #[error(transparent)]
    Stats(#[from] StatsError),
    #[error("wait for process {pid}")]
    Wait {
        pid: i32,
        #[source]
        source: io::Error,
    },
    #[error(
        "the container init {pid} still runs {waited:?} after SIGKILL; the init of a pid \
         namespace ends only after every other process in it has been reaped by its parent \
         (are exec'd processes waited for?); try husk delete --force again later"
    )]
    InitStillRunning { pid: i32, waited: Duration },
}

impl ContainerError {
    /// runc's exit statuses: 127 or 126 where the container's program was
    /// not found or could not be executed, 1 otherwise.
    fn exit_code(&self) -> u8 {
        match self {
            ContainerError::Engine(error) => u8::try_from(error.exit_code()).unwrap_or(1),
            _ => 1,
        }
    }
}

impl From<ContainerError> for BackendError {
    fn from(error: ContainerError) -> BackendError {
        // `what` repeats the error's own message; printing the chain shows
        // it once (error_chain skips a cause its message already ends with).
        BackendError::Failed {
            what: error.to_string(),
            exit_code: error.exit_code(),
            source: Box::new(error),
        }
    }
}

#[derive(Debug, Default)]
pub struct ContainerBackend {
    /// The pty master of a container `run` in the foreground with a
    /// terminal and no --console-socket: husk holds it and relays it to its
    /// own stdio while it waits, as runc run does.
    own_console: Mutex<Option<OwnedFd>>,
}

impl ContainerBackend {
    pub fn new() -> ContainerBackend {
        ContainerBackend::default()
    }
}

impl Backend for ContainerBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Container
    }

    fn create(&self, context: &CreateContext<'_>) -> Result<CreatedContainer, BackendError> {
        let (created, own_console) = create(context)?;
        *self.own_console.lock().unwrap_or_else(|e| e.into_inner()) = own_console;
        Ok(created)
    }

    fn start(&self, container: &ContainerRecord) -> Result<(), BackendError> {
        engine::start(&container.state_dir, container.pid).map_err(ContainerError::from)?;
        // runtime.md "Lifecycle" step 9: poststart hooks run once the
        // process has started; their failures are warnings.
        match saved_config::load(container) {
            Ok(bundle) => hooks::run_stage_with_warnings(
                &bundle,
                HookStage::Poststart,
                &hooks::hook_state(container, ContainerState::Running, Some(container.pid)),
            ),
            Err(error) => logging::warning(format!(
                "container {}: poststart hooks not run: {}",
                container.id,
                engine::error_chain(&error)
            )),
        }
        Ok(())
    }

    fn kill(
        &self,
        container: &ContainerRecord,
        signal: Signal,
        all: bool,
    ) -> Result<(), BackendError> {
        if all {
            let cgroup = require_cgroup(container)?;
            kill_all(&cgroup, signal.number()).map_err(ContainerError::from)?;
        } else {
            engine::kill(container.pid, signal.number()).map_err(ContainerError::from)?;
            if signal == Signal::KILL {
                // A frozen task gets nothing until it thaws (cgroup v1
                // freezer-subsystem.rst); runc thaws a paused container
                // after SIGKILL for the same reason, so that podman's stop
                // of a paused container ends it.
                if let Some(cgroup) = load_cgroup(container)? {
                    if stats::is_frozen(&cgroup).map_err(ContainerError::from)? {
                        cgroup
                            .thaw()
                            .map_err(|source| ContainerError::Thaw { source })?;
                    }
                }
            }
        }
        Ok(())
    }

    fn delete(&self, container: &ContainerRecord, force: bool) -> Result<(), BackendError> {
        Ok(delete(container, force)?)
    }

    fn wait(&self, container: &ContainerRecord) -> Result<u8, BackendError> {
        // Normally done at create already (see `create`); blocking twice is
        // harmless.
        prepare_to_wait().map_err(|source| ContainerError::BlockSignals { source })?;
        let own_console = self
            .own_console
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let pid = container.pid;
        let waited = match own_console {
            None => wait_for_exit(pid),
            Some(master) => {
                let console = ConsoleRelay::start(master).map_err(ContainerError::Relay)?;
                // The pty tells the container's foreground process group
                // about a new size itself (tty_ioctl(4), TIOCSWINSZ).
                let waited = wait_for_first_handling(&[pid], |signal| match signal {
                    libc::SIGWINCH => console.follow_size(),
                    _ => {
                        let _ = sys::kill(pid, signal);
                    }
                });
                console.finish(OUTPUT_GRACE);
                waited.map(|(_, status)| status)
            }
        };
        let status = waited.map_err(|source| ContainerError::Wait { pid, source })?;
        Ok(exit_status_byte(status.code()))
    }

    fn exec(&self, context: &ExecContext<'_>) -> Result<i32, BackendError> {
        Ok(exec(context)?)
    }

    fn wait_exec(&self, _container: &ContainerRecord, pid: i32) -> Result<u8, BackendError> {
        prepare_to_wait().map_err(|source| ContainerError::BlockSignals { source })?;
        let (_, status) =
            wait_for_first(&[pid], pid).map_err(|source| ContainerError::Wait { pid, source })?;
        Ok(exit_status_byte(status.code()))
    }

    fn processes(&self, container: &ContainerRecord) -> Result<Vec<i32>, BackendError> {
        // A container whose cgroup is gone has no processes left to show.
        let Some(cgroup) = load_cgroup(container)? else {
            return Ok(Vec::new());
        };
        Ok(cgroup
            .processes()
            .map_err(|source| ContainerError::ListProcesses { source })?)
    }

    fn pause(&self, container: &ContainerRecord) -> Result<(), BackendError> {
        let cgroup = require_cgroup(container)?;
        Ok(cgroup
            .freeze()
            .map_err(|source| ContainerError::Freeze { source })?)
    }

    fn resume(&self, container: &ContainerRecord) -> Result<(), BackendError> {
        let cgroup = require_cgroup(container)?;
        Ok(cgroup
            .thaw()
            .map_err(|source| ContainerError::Thaw { source })?)
    }

    fn update(
        &self,
        container: &ContainerRecord,
        resources: &LinuxResources,
    ) -> Result<(), BackendError> {
        let cgroup = require_cgroup(container)?;
        let warnings = cgroup
            .apply(resources)
            .map_err(|source| ContainerError::ApplyResources { source })?;
        for warning in warnings {
            logging::warning(format!("container {}: {warning}", container.id));
        }
        Ok(())
    }

    fn stats(&self, container: &ContainerRecord) -> Result<Stats, BackendError> {
        let cgroup = require_cgroup(container)?;
        Ok(stats::collect(&cgroup).map_err(ContainerError::from)?)
    }

    fn reconcile_status(
        &self,
        container: &ContainerRecord,
        recorded: Status,
    ) -> Result<Status, BackendError> {
        let Some(cgroup) = load_cgroup(container)? else {
            return Ok(recorded);
        };
        let frozen = stats::is_frozen(&cgroup).map_err(ContainerError::from)?;
        Ok(status_with_freezer(recorded, frozen))
    }

    fn feature_annotations(&self) -> Vec<(String, String)> {
        vec![
            (
                "run.husk.container.isolation".to_string(),
                "namespaces, cgroups, capabilities and seccomp on the host kernel, as runc"
                    .to_string(),
            ),
            (
                "run.husk.container.cgroup".to_string(),
                "the host's hierarchy: v1, hybrid or v2, through cgroupfs (no systemd driver)"
                    .to_string(),
            ),
        ]
    }
}

/// Creates the container; for `run` in the foreground with a terminal and
/// no --console-socket, also returns the pty master husk then relays.
fn create(
    context: &CreateContext<'_>,
) -> Result<(CreatedContainer, Option<OwnedFd>), ContainerError> {
    refuse_unsupported(context.no_pivot, context.preserve_fds)?;
    // --no-new-keyring needs nothing: the engine never creates a session
    // keyring, so the container always keeps the caller's, which is what
    // the flag asks for.
    if !context.detach {
        // `run` in the foreground waits for the init itself: as a
        // subreaper, the init a pid namespace makes a grandchild comes to
        // husk when the setup process in between exits.
        sys::set_child_subreaper().map_err(|source| ContainerError::Subreaper { source })?;
    }
    saved_config::save(context.bundle, context.state_dir)?;
    let terminal = context
        .bundle
        .spec
        .process()
        .as_ref()
        .and_then(|process| process.terminal())
        .unwrap_or(false);
    // runc run holds the terminal itself when nobody else takes it; husk
    // receives the master on the other end of a socket pair the engine
    // uses as its console socket.
    let mut own_console_end = None;
    let console_socket = match context.console_socket {
        Some(path) => Some(connect_console_socket(path)?),
        None if terminal && !context.detach => {
            let (ours, engines) =
                UnixStream::pair().map_err(|source| ContainerError::ConsolePair { source })?;
            own_console_end = Some(ours);
            Some(OwnedFd::from(engines))
        }
        None => None,
    };

    let engine_started = context.micros_since_cli_start();
    let container = engine::create(&CreateOptions {
        id: context.id.as_str(),
        bundle: context.bundle,
        state_dir: context.state_dir,
        console_socket,
        // The caller's descriptors 0, 1 and 2 become the container's, as
        // under runc: conmon and containerd's shim hand over their pipes
        // (or /dev/null) that way.
        stdio: Stdio::Inherit,
        syscall: &LinuxSyscall,
    })?;
    let create_returned = context.micros_since_cli_start();
    let own_console = match own_console_end {
        Some(socket) => {
            let received = sys::receive_fd(socket.as_fd())
                .map(|(_, master)| master)
                .map_err(|source| ContainerError::ReceiveConsole { source });
            match received {
                Ok(master) => Some(master),
                Err(error) => {
                    // Nothing of the container may outlive the failed
                    // create: its processes, then its cgroup. husk is a
                    // subreaper here (`run` in the foreground), so the init
                    // is its to reap.
                    let _ = container.cgroup.kill_all(libc::SIGKILL);
                    let _ = engine::kill(container.pid, libc::SIGKILL);
                    let _ = sys::wait(container.pid, false);
                    let _ = container.cgroup.destroy();
                    return Err(error);
                }
            }
        }
        None => None,
    };
    for warning in container.cgroup.warnings() {
        // Settings this host's cgroups cannot carry out; the container runs.
        logging::warning(format!("container {}: {warning}", context.id));
    }
    if !context.detach {
        // Blocked from here on, a SIGINT or SIGTERM for `husk run` waits
        // for `wait` to forward it instead of ending husk, and SIGCHLD
        // for sigtimedwait(2). The engine's children reset their mask.
        prepare_to_wait().map_err(|source| ContainerError::BlockSignals { source })?;
    }
    let created = CreatedContainer {
        pid: container.pid,
        paths: BackendPaths {
            cgroup: Some(Path::new("/").join(container.cgroup.relative_path())),
            ..BackendPaths::default()
        },
        timings_micros: [
            ("engine_create_started".to_string(), engine_started),
            ("create_returned".to_string(), create_returned),
        ]
        .into(),
    };
    Ok((created, own_console))
}

/// Refuses what runc offers and the engine cannot do, before anything
/// exists.
fn refuse_unsupported(no_pivot: bool, preserve_fds: u32) -> Result<(), ContainerError> {
    if no_pivot {
        return Err(ContainerError::Unsupported {
            flag: "--no-pivot".to_string(),
            reason: "the container backend always enters the root filesystem with \
                     pivot_root(2) and has no MS_MOVE + chroot fallback; drop the flag",
        });
    }
    refuse_preserved_fds(preserve_fds)
}

fn refuse_preserved_fds(preserve_fds: u32) -> Result<(), ContainerError> {
    if preserve_fds > 0 {
        return Err(ContainerError::Unsupported {
            flag: format!("--preserve-fds {preserve_fds}"),
            reason: "the container backend passes only stdin, stdout and stderr to the \
                     container (it closes every other descriptor before exec); drop the flag",
        });
    }
    Ok(())
}

fn connect_console_socket(path: &Path) -> Result<OwnedFd, ContainerError> {
    UnixStream::connect(path)
        .map(OwnedFd::from)
        .map_err(|source| ContainerError::ConsoleSocket {
            path: path.to_path_buf(),
            source,
        })
}

/// runtime.md "delete": whatever still runs is killed (the CLI passes
/// `force` for created containers and for --force), the init is waited
/// for, poststop hooks run (failures are warnings), the cgroup and the
/// exec fifo go. Works without the bundle.
fn delete(container: &ContainerRecord, force: bool) -> Result<(), ContainerError> {
    let cgroup = load_cgroup(container)?;
    if force && container.process_is_alive() {
        let _ = engine::kill(container.pid, libc::SIGKILL);
    }
    if let Some(cgroup) = &cgroup {
        // Also after the init has exited: without a pid namespace its
        // children outlive it, and runc kills them at delete too. Killing
        // thaws a paused container so that the signals are delivered.
        if let Err(error) = kill_all(cgroup, libc::SIGKILL) {
            logging::warning(format!(
                "container {}: {}",
                container.id,
                engine::error_chain(&error)
            ));
        }
        let _ = cgroup.thaw();
    }
    wait_until_gone(container)?;

    match saved_config::load(container) {
        Ok(bundle) => hooks::run_stage_with_warnings(
            &bundle,
            HookStage::Poststop,
            &hooks::hook_state(container, ContainerState::Stopped, None),
        ),
        Err(error) => logging::warning(format!(
            "container {}: poststop hooks not run: {}",
            container.id,
            engine::error_chain(&error)
        )),
    }

    if let Some(cgroup) = cgroup {
        cgroup
            .destroy()
            .map_err(|source| ContainerError::RemoveCgroup { source })?;
    }
    let _ = std::fs::remove_file(container.state_dir.join(EXEC_FIFO));
    Ok(())
}

/// Waits until the container init has exited (a zombie counts: its reaper
/// is the caller, not husk).
fn wait_until_gone(container: &ContainerRecord) -> Result<(), ContainerError> {
    let started = Instant::now();
    while container.process_is_alive() {
        if started.elapsed() > INIT_EXIT_TIMEOUT {
            return Err(ContainerError::InitStillRunning {
                pid: container.pid,
                waited: INIT_EXIT_TIMEOUT,
            });
        }
        thread::sleep(INIT_EXIT_POLL);
    }
    Ok(())
}

fn exec(context: &ExecContext<'_>) -> Result<i32, ContainerError> {
    refuse_preserved_fds(context.preserve_fds)?;
    let container = context.container;
    if !context.detach {
        // As for `run`: the exec'd process, a grandchild when the
        // container has a pid namespace, must come to husk to be waited
        // for.
        sys::set_child_subreaper().map_err(|source| ContainerError::Subreaper { source })?;
    }
    let bundle = saved_config::load(container)?;
    let cgroup = require_cgroup(container)?;
    if stats::is_frozen(&cgroup)? {
        // The new process's setup joins the cgroup before it execs, and
        // would freeze halfway with husk waiting for it.
        return Err(ContainerError::Unsupported {
            flag: "--ignore-paused".to_string(),
            reason: "the container backend cannot start a process in a frozen container; \
                     resume it first (husk resume)",
        });
    }
    let console_socket = context
        .console_socket
        .map(connect_console_socket)
        .transpose()?;
    let pid = engine::exec(&ExecOptions {
        container_id: &container.id,
        init_pid: container.pid,
        bundle: &bundle,
        cgroup: Some(&cgroup),
        process: context.process,
        console_socket,
        stdio: Stdio::Inherit,
        syscall: &LinuxSyscall,
    })?;
    if !context.detach {
        prepare_to_wait().map_err(|source| ContainerError::BlockSignals { source })?;
    }
    Ok(pid)
}

/// The container's cgroup, None when the state records none (a container
/// of an older husk) or it no longer exists.
fn load_cgroup(container: &ContainerRecord) -> Result<Option<Cgroup>, ContainerError> {
    let Some(path) = &container.husk.paths.cgroup else {
        return Ok(None);
    };
    // The recorded path is absolute, which the engine resolves against
    // every hierarchy's root, as it resolved the config's cgroupsPath.
    match Cgroup::load(Some(&path.to_string_lossy()), &container.id) {
        Ok(cgroup) => Ok(Some(cgroup)),
        Err(CgroupError::NotFound { .. }) => Ok(None),
        Err(source) => Err(ContainerError::FindCgroup {
            path: path.clone(),
            source,
        }),
    }
}

/// The container's cgroup, for the verbs that cannot do without one.
fn require_cgroup(container: &ContainerRecord) -> Result<Cgroup, ContainerError> {
    load_cgroup(container)?.ok_or_else(|| ContainerError::CgroupGone {
        path: container
            .husk
            .paths
            .cgroup
            .clone()
            .unwrap_or_else(|| PathBuf::from("(none recorded)")),
    })
}

/// A live container's status given its freezer: frozen is paused whatever
/// husk recorded (runc reads it the same way), and a container recorded
/// paused that is thawed (by `kill --all`, or by hand) runs again.
fn status_with_freezer(recorded: Status, frozen: bool) -> Status {
    match (recorded, frozen) {
        (Status::Running | Status::Paused, true) => Status::Paused,
        (Status::Paused, false) => Status::Running,
        (other, _) => other,
    }
}

/// An exit status as husk's own: the code, or 128 + N for signal N
/// ([`sys::ExitStatus::code`]), which always fits a byte.
fn exit_status_byte(code: i32) -> u8 {
    u8::try_from(code).unwrap_or(u8::MAX)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::time::Instant;

    use husk_init::engine::load_bundle;

    use super::*;
    use crate::backend::test_record;
    use crate::state::ContainerId;

    #[test]
    fn unsupported_flags_are_refused_before_anything_exists() {
        let directory = tempfile::tempdir().unwrap();
        let bundle_dir = directory.path().join("bundle");
        fs::create_dir_all(bundle_dir.join("rootfs")).unwrap();
        fs::write(
            bundle_dir.join("config.json"),
            r#"{"ociVersion": "1.3.0", "root": {"path": "rootfs"},
                "process": {"user": {"uid": 0, "gid": 0}, "args": ["sh"], "cwd": "/"},
                "linux": {"namespaces": [{"type": "mount"}]}}"#,
        )
        .unwrap();
        let bundle = load_bundle(&bundle_dir).unwrap();
        let state_dir = directory.path().join("state");
        fs::create_dir(&state_dir).unwrap();
        let id = ContainerId::parse("c1").unwrap();
        let context = |no_pivot, preserve_fds| CreateContext {
            id: &id,
            bundle: &bundle,
            state_dir: &state_dir,
            console_socket: None,
            pid_file: None,
            no_pivot,
            no_new_keyring: false,
            preserve_fds,
            detach: true,
            cli_started: Instant::now(),
        };

        let error = ContainerBackend::new()
            .create(&context(true, 0))
            .unwrap_err();
        assert!(error.to_string().starts_with("--no-pivot: "), "{error}");
        assert!(error.to_string().contains("drop the flag"), "{error}");
        assert_eq!(error.exit_code(), 1);

        let error = ContainerBackend::new()
            .create(&context(false, 2))
            .unwrap_err();
        assert!(
            error.to_string().starts_with("--preserve-fds 2: "),
            "{error}"
        );
        // Nothing was written for the container.
        assert_eq!(fs::read_dir(&state_dir).unwrap().count(), 0);
    }

    #[test]
    fn the_engine_s_exit_codes_reach_the_cli() {
        let not_found = ContainerError::Engine(EngineError::Init {
            step: "exec: \"nope\": executable file not found in $PATH".to_string(),
            message: "exec: \"nope\": executable file not found in $PATH".to_string(),
            exit_code: 127,
        });
        let error = BackendError::from(not_found);
        assert_eq!(error.exit_code(), 127);
        assert_eq!(
            engine::error_chain(&error),
            "exec: \"nope\": executable file not found in $PATH"
        );
        let error = BackendError::from(ContainerError::InitStillRunning {
            pid: 7,
            waited: INIT_EXIT_TIMEOUT,
        });
        assert_eq!(error.exit_code(), 1);
    }

    #[test]
    fn the_freezer_decides_between_running_and_paused() {
        assert_eq!(status_with_freezer(Status::Running, true), Status::Paused);
        assert_eq!(status_with_freezer(Status::Paused, true), Status::Paused);
        assert_eq!(status_with_freezer(Status::Paused, false), Status::Running);
        assert_eq!(status_with_freezer(Status::Running, false), Status::Running);
        assert_eq!(status_with_freezer(Status::Created, false), Status::Created);
    }

    #[test]
    fn a_container_without_a_recorded_cgroup_keeps_its_recorded_status() {
        let record = ContainerRecord {
            status: Status::Running,
            pid: std::process::id() as i32,
            ..test_record(Path::new("/bundles/b1"), Path::new(""))
        };
        let backend = ContainerBackend::new();
        assert_eq!(
            backend.reconcile_status(&record, Status::Paused).unwrap(),
            Status::Paused
        );
        assert_eq!(backend.processes(&record).unwrap(), Vec::<i32>::new());
        let error = backend.pause(&record).unwrap_err().to_string();
        assert!(error.contains("husk delete --force"), "{error}");
    }

    #[test]
    fn exit_statuses_fit_a_byte() {
        assert_eq!(exit_status_byte(0), 0);
        assert_eq!(exit_status_byte(137), 137);
        assert_eq!(exit_status_byte(128 + 64), 192);
        assert_eq!(exit_status_byte(-1), 255);
    }
}
