//! create, start and kill: the runtime's side of runc's process model
//! (runtime.md "Lifecycle", runc libcontainer/process_linux.go).
//!
//! `create` forks a setup child that enters the namespaces; the container
//! init (that child, or its own child where a pid namespace needs a fresh
//! process) builds the container and blocks opening `<state>/exec.fifo` for
//! writing. Meanwhile the parent puts the child in the cgroup, writes the
//! user namespace's id maps and runs the prestart and createRuntime hooks
//! when asked. `create` returns once the init reports it is ready; `start`
//! opens the fifo for reading, which lets the init exec the process.

use std::fs;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::{
    ContainerState, Hook, LinuxDeviceCgroup, LinuxDeviceType, LinuxNamespaceType, LinuxResources,
    State,
};

use crate::engine::cgroups::{self, Cgroup, CgroupError, CgroupVersion};
use crate::engine::hooks::{self, HookError, HookStage};
use crate::engine::init::{self, InitContext};
use crate::engine::namespaces::{self, NamespaceError, NamespacePlan};
use crate::engine::rootfs::cgroup::{CgroupMountSource, Hierarchy};
use crate::engine::rootfs::RootfsPlan;
use crate::engine::seccomp::{CompiledSeccomp, SeccompError};
use crate::engine::spec::Bundle;
use crate::engine::sync::{self, ChildMessage, InitFailure, ParentMessage};
use crate::engine::sys;
use crate::engine::syscall::Syscall;

/// The exec fifo's name in the state directory (runc's execFifoFilename).
pub const EXEC_FIFO: &str = "exec.fifo";

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("container id {id:?}: {problem}")]
    InvalidId { id: String, problem: &'static str },
    #[error("{}: process.terminal: {problem}", config.display())]
    Terminal {
        config: PathBuf,
        problem: &'static str,
    },
    #[error("state directory {}", path.display())]
    StateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("create the exec fifo {}", path.display())]
    CreateFifo {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The seccomp module's errors name the field themselves.
    #[error("{}", config.display())]
    Seccomp {
        config: PathBuf,
        #[source]
        source: SeccompError,
    },
    #[error("create the cgroup of container {id:?} (linux.cgroupsPath, linux.resources)")]
    CreateCgroup {
        id: String,
        #[source]
        source: CgroupError,
    },
    #[error("put the container's setup process {pid} in its cgroup")]
    JoinCgroup {
        pid: i32,
        #[source]
        source: CgroupError,
    },
    #[error("fork the container's setup process")]
    Fork {
        #[source]
        source: io::Error,
    },
    #[error("talk to the container's setup process")]
    Sync {
        #[source]
        source: io::Error,
    },
    #[error("user namespace of container {id:?}")]
    IdMaps {
        id: String,
        #[source]
        source: NamespaceError,
    },
    #[error("hooks.{stage}")]
    Hooks {
        stage: &'static str,
        /// Boxed: hook errors carry the hook's output and are large.
        #[source]
        source: Box<HookError>,
    },
    /// The container's setup failed; `message` is the child's whole chain,
    /// `step` its first link (what was being done).
    #[error("{message}")]
    Init {
        step: String,
        message: String,
        exit_code: i32,
    },
    #[error("the container's setup process ended ({status}) without saying why")]
    InitVanished { status: String },
    #[error("start container: open {}", path.display())]
    OpenFifo {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("start container: the container init {pid} is not waiting to start (it exited, or was started already)")]
    NotWaiting { pid: i32 },
    #[error("send signal {signal} to {target}")]
    Kill {
        signal: i32,
        target: String,
        #[source]
        source: io::Error,
    },
    #[error("remove the cgroup of container {id:?}")]
    DestroyCgroup {
        id: String,
        #[source]
        source: CgroupError,
    },
    #[error("exec in container {id:?}: process.{field}: {problem}")]
    ExecProcess {
        id: String,
        field: &'static str,
        problem: &'static str,
    },
    #[error("exec in container {id:?}: its init process {pid} is not running")]
    ExecNotRunning { id: String, pid: i32 },
    #[error("exec in container {id:?}")]
    ExecNamespaces {
        id: String,
        #[source]
        source: NamespaceError,
    },
}

impl EngineError {
    /// The exit status a runtime CLI should end with for this error: 127 or
    /// 126 where the process could not be found or executed (what podman
    /// and docker derive from runc's messages), 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            EngineError::Init { exit_code, .. } => *exit_code,
            _ => 1,
        }
    }

    /// What was being done, without the causes: for a failed setup the
    /// container init's step ("mounts[0]: mount \"proc\" on /proc"),
    /// otherwise this error's own message.
    pub fn step(&self) -> String {
        match self {
            EngineError::Init { step, .. } => step.clone(),
            other => other.to_string(),
        }
    }
}

/// Where the container process's (or an exec'd process's) stdin, stdout
/// and stderr come from when `process.terminal` is false (with a terminal,
/// the pty replaces them).
#[derive(Debug, Default)]
pub enum Stdio {
    /// The creator's own descriptors 0, 1 and 2, as under runc.
    #[default]
    Inherit,
    /// These descriptors become 0, 1 and 2; a missing one is /dev/null.
    /// The caller keeps its own copies: drop them after `create`, or a
    /// reader of a pipe given here never sees its end.
    Fds {
        stdin: Option<OwnedFd>,
        stdout: Option<OwnedFd>,
        stderr: Option<OwnedFd>,
    },
}

impl Stdio {
    /// What the forked child installs: None keeps the inherited
    /// descriptors.
    pub(crate) fn borrowed(&self) -> Option<[Option<BorrowedFd<'_>>; 3]> {
        match self {
            Stdio::Inherit => None,
            Stdio::Fds {
                stdin,
                stdout,
                stderr,
            } => Some([stdin, stdout, stderr].map(|fd| fd.as_ref().map(|fd| fd.as_fd()))),
        }
    }
}

/// Checks that a console socket is given exactly when `process.terminal`
/// asks for a pty; the problem otherwise, for the caller's error.
pub(crate) fn check_console_socket(
    terminal: bool,
    has_console_socket: bool,
) -> Result<(), &'static str> {
    match (terminal, has_console_socket) {
        (true, false) => Err("true, but no console socket was given to receive the pty (--console-socket)"),
        (false, true) => Err("false, so a console socket has nothing to receive; set it to true or drop --console-socket"),
        _ => Ok(()),
    }
}

/// Compiles the container's `linux.seccomp`, if any.
pub(crate) fn compile_seccomp(bundle: &Bundle) -> Result<Option<CompiledSeccomp>, EngineError> {
    bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|linux| linux.seccomp().as_ref())
        .map(CompiledSeccomp::from_profile)
        .transpose()
        .map_err(|source| EngineError::Seccomp {
            config: bundle.config_path.clone(),
            source,
        })
}

/// Puts a setup process (the container's, or an exec's) in the container's
/// cgroup before it goes on, so that everything it forks is counted there.
pub(crate) fn join_cgroup(cgroup: &Cgroup, pid: i32) -> Result<(), EngineError> {
    cgroup
        .add_process(pid)
        .map_err(|source| EngineError::JoinCgroup { pid, source })
}

/// What [`create`] needs.
pub struct CreateOptions<'a> {
    pub id: &'a str,
    pub bundle: &'a Bundle,
    /// An existing directory for this container's runtime files; the exec
    /// fifo goes there.
    pub state_dir: &'a Path,
    /// A connected Unix socket that receives the pty master when
    /// `process.terminal` is true (runc's --console-socket).
    pub console_socket: Option<OwnedFd>,
    pub stdio: Stdio,
    pub syscall: &'a dyn Syscall,
}

/// A created container: its init is blocked on the exec fifo.
#[derive(Debug)]
pub struct Container {
    pub id: String,
    /// The container init's pid as the host sees it.
    pub pid: i32,
    pub bundle: PathBuf,
    pub state_dir: PathBuf,
    pub cgroup: Cgroup,
    oci_version: String,
    annotations: Option<std::collections::HashMap<String, String>>,
}

impl Container {
    /// The runtime-spec state of this container (runtime.md "State"), as
    /// hooks get it on stdin.
    pub fn state(&self, status: ContainerState) -> State {
        hooks::container_state(
            &self.oci_version,
            &self.id,
            status,
            Some(self.pid),
            &self.bundle,
            self.annotations.clone(),
        )
    }

    /// Lets the init exec the container's process.
    pub fn start(&self) -> Result<(), EngineError> {
        start(&self.state_dir, self.pid)
    }

    /// Sends `signal` to the init, or with `all` to every process in the
    /// container's cgroup.
    pub fn kill(&self, signal: i32, all: bool) -> Result<(), EngineError> {
        if all {
            kill_all(&self.cgroup, signal)
        } else {
            kill(self.pid, signal)
        }
    }

    /// Kills whatever still runs in the container, removes its cgroup and
    /// its exec fifo.
    pub fn destroy(self) -> Result<(), EngineError> {
        let _ = self.cgroup.kill_all(libc::SIGKILL);
        let _ = fs::remove_file(self.state_dir.join(EXEC_FIFO));
        self.cgroup
            .destroy()
            .map_err(|source| EngineError::DestroyCgroup {
                id: self.id.clone(),
                source,
            })
    }
}

/// Checks an id the way runc does: letters, digits, '_', '+', '-', '.'.
fn validate_id(id: &str) -> Result<(), EngineError> {
    let invalid = |problem| EngineError::InvalidId {
        id: id.to_owned(),
        problem,
    };
    if id.is_empty() {
        return Err(invalid("empty"));
    }
    if id == "." || id == ".." {
        return Err(invalid("not a usable name"));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'))
    {
        return Err(invalid(
            "only letters, digits, '_', '+', '-' and '.' are allowed",
        ));
    }
    Ok(())
}

/// What the cgroup mount in the container shows: on cgroup v2 the
/// container's directory; on v1 its directory in each v1 hierarchy, named
/// after the hierarchy's mount point (a hybrid host's controller-less
/// cgroup2 mount is left out, as runc leaves it out).
fn cgroup_mount_source(cgroup: &Cgroup) -> CgroupMountSource {
    if cgroup.hierarchy().version() == CgroupVersion::V2 {
        return match cgroup.paths().first() {
            Some(dir) => CgroupMountSource::Unified {
                container_dir: dir.path.clone(),
            },
            None => CgroupMountSource::None,
        };
    }
    let hierarchies = cgroup
        .paths()
        .iter()
        .filter(|dir| dir.mount.version == CgroupVersion::V1)
        .filter_map(|dir| {
            Some(Hierarchy {
                name: dir
                    .mount
                    .mount_point
                    .file_name()?
                    .to_string_lossy()
                    .into_owned(),
                container_dir: dir.path.clone(),
            })
        })
        .collect();
    CgroupMountSource::Legacy { hierarchies }
}

fn allow_device(kind: LinuxDeviceType, major: i64, minor: i64) -> LinuxDeviceCgroup {
    let mut rule = LinuxDeviceCgroup::default();
    rule.set_allow(true);
    rule.set_typ(Some(kind));
    rule.set_major(Some(major));
    rule.set_minor(Some(minor));
    rule.set_access(Some("rwm".to_owned()));
    rule
}

/// `linux.resources` as the cgroup gets it: the config's device rules, then
/// runc's default allow list, then an allow rule for each `linux.devices`
/// node, so that the nodes the engine creates can be opened (runc's
/// specconv does the same).
fn cgroup_resources(bundle: &Bundle) -> LinuxResources {
    let linux = bundle.spec.linux().as_ref();
    let mut resources = linux
        .and_then(|linux| linux.resources().clone())
        .unwrap_or_default();
    let mut rules = resources.devices().clone().unwrap_or_default();
    rules.extend(cgroups::default_device_rules());
    for device in linux
        .and_then(|linux| linux.devices().as_deref())
        .unwrap_or_default()
    {
        rules.push(allow_device(device.typ(), device.major(), device.minor()));
    }
    resources.set_devices(Some(rules));
    resources
}

/// The processes a create or an exec has forked: killed and reaped when
/// it fails (dropped before [`SetupProcesses::release`]).
#[derive(Debug, Default)]
pub(crate) struct SetupProcesses {
    pids: Vec<i32>,
}

impl SetupProcesses {
    pub(crate) fn push(&mut self, pid: i32) {
        self.pids.push(pid);
    }

    /// The setup child reported the pid of the process that goes on. When
    /// that is a fresh child of its own (a pid namespace), the setup child
    /// exits right after the fork: it is reaped, its pid no longer ours to
    /// signal, and the new one is watched instead.
    pub(crate) fn handed_over(&mut self, setup_pid: i32, pid: i32) {
        if pid == setup_pid {
            return;
        }
        self.pids.push(pid);
        let _ = sys::wait(setup_pid, false);
        self.pids.retain(|&child| child != setup_pid);
    }

    /// The setup's processes closed the sync socket without a word: the
    /// error, with how `pid` ended if it has.
    pub(crate) fn vanished(&mut self, pid: i32) -> EngineError {
        let status = match sys::wait(pid, true) {
            Ok(Some((_, status))) => {
                self.pids.retain(|&child| child != pid);
                status.to_string()
            }
            _ => "status unknown".to_owned(),
        };
        EngineError::InitVanished { status }
    }

    /// Success: the processes are the caller's now.
    pub(crate) fn release(&mut self) {
        self.pids.clear();
    }

    fn kill(&self) {
        for &pid in &self.pids {
            let _ = sys::kill(pid, libc::SIGKILL);
        }
    }

    /// Reaps our children, and their children too where this process is a
    /// subreaper; ECHILD otherwise, which is fine.
    fn reap(&mut self) {
        for pid in self.pids.drain(..) {
            let _ = sys::wait(pid, false);
        }
    }
}

impl Drop for SetupProcesses {
    fn drop(&mut self) {
        self.kill();
        self.reap();
    }
}

impl From<InitFailure> for EngineError {
    fn from(failure: InitFailure) -> Self {
        EngineError::Init {
            step: failure.step,
            message: failure.message,
            exit_code: failure.exit_code,
        }
    }
}

/// Cleans up after a failed create: no process, no cgroup, no fifo. The
/// children's mounts lived in their own mount namespace and went with them.
struct CreateGuard {
    cgroup: Option<Cgroup>,
    fifo: Option<PathBuf>,
    children: SetupProcesses,
}

impl CreateGuard {
    /// The create succeeded: keep everything, hand the cgroup over.
    fn disarm(mut self) -> Cgroup {
        self.children.release();
        self.fifo = None;
        self.cgroup
            .take()
            .expect("the cgroup is set until disarmed")
    }
}

impl Drop for CreateGuard {
    fn drop(&mut self) {
        self.children.kill();
        if let Some(cgroup) = self.cgroup.take() {
            let _ = cgroup.kill_all(libc::SIGKILL);
            self.children.reap();
            let _ = cgroup.destroy();
        }
        if let Some(fifo) = &self.fifo {
            let _ = fs::remove_file(fifo);
        }
    }
}

/// Creates the container: everything but the exec of its process.
///
/// The caller must be single-threaded (or at least not hold locks the
/// child would need: fork copies only the calling thread). To reap the init
/// afterwards the caller should be a child subreaper
/// (prctl(PR_SET_CHILD_SUBREAPER)); otherwise the init is reparented to the
/// system's init when a pid namespace made the setup child fork it.
pub fn create(options: &CreateOptions) -> Result<Container, EngineError> {
    let bundle = options.bundle;
    validate_id(options.id)?;
    let terminal = bundle.process().terminal() == Some(true);
    check_console_socket(terminal, options.console_socket.is_some()).map_err(|problem| {
        EngineError::Terminal {
            config: bundle.config_path.clone(),
            problem,
        }
    })?;
    let state_dir = options.state_dir;
    if !state_dir.is_dir() {
        return Err(EngineError::StateDir {
            path: state_dir.to_path_buf(),
            source: io::Error::from_raw_os_error(libc::ENOTDIR),
        });
    }
    let linux = bundle.spec.linux().as_ref();

    // Seccomp compiles before anything exists, so a profile husk cannot
    // express fails the create cleanly.
    let seccomp = compile_seccomp(bundle)?;

    let namespace_plan = NamespacePlan::from_bundle(bundle);
    let uid_mappings = linux
        .and_then(|linux| linux.uid_mappings().clone())
        .unwrap_or_default();
    let gid_mappings = linux
        .and_then(|linux| linux.gid_mappings().clone())
        .unwrap_or_default();

    let fifo_path = state_dir.join(EXEC_FIFO);
    let fifo_error = |source| EngineError::CreateFifo {
        path: fifo_path.clone(),
        source,
    };
    // 0622: only the runtime reads it; the init, maybe a mapped root,
    // writes it (runc chowns it to that root for the same reason).
    sys::mkfifo(&fifo_path, 0o622).map_err(fifo_error)?;
    let mut guard = CreateGuard {
        cgroup: None,
        fifo: Some(fifo_path.clone()),
        children: SetupProcesses::default(),
    };
    // mkfifo applied the umask; the init may run as any user.
    fs::set_permissions(&fifo_path, fs::Permissions::from_mode(0o622)).map_err(fifo_error)?;
    if namespace_plan.new_user {
        let root_uid = namespaces::host_id(&uid_mappings, 0);
        let root_gid = namespaces::host_id(&gid_mappings, 0);
        std::os::unix::fs::chown(&fifo_path, root_uid, root_gid).map_err(fifo_error)?;
    }
    let exec_fifo = sys::open(&fifo_path, libc::O_PATH).map_err(fifo_error)?;

    let cgroups_path = linux
        .and_then(|linux| linux.cgroups_path().as_ref())
        .map(|path| path.to_string_lossy().into_owned());
    let cgroup = Cgroup::create(
        cgroups_path.as_deref(),
        options.id,
        Some(&cgroup_resources(bundle)),
    )
    .map_err(|source| EngineError::CreateCgroup {
        id: options.id.to_owned(),
        source,
    })?;
    let cgroup_source = cgroup_mount_source(&cgroup);
    guard.cgroup = Some(cgroup);

    let context = InitContext {
        bundle,
        namespaces: &namespace_plan,
        rootfs: RootfsPlan {
            bundle,
            cgroup: &cgroup_source,
            in_user_namespace: bundle.has_namespace(LinuxNamespaceType::User),
            own_network_namespace: bundle.has_namespace(LinuxNamespaceType::Network),
        },
        seccomp: seccomp.as_ref(),
        exec_fifo: exec_fifo.as_fd(),
        console_socket: options.console_socket.as_ref().map(|socket| socket.as_fd()),
        stdio: options.stdio.borrowed(),
        syscall: options.syscall,
    };

    let (parent_socket, setup_pid) = match sync::fork_with_socket()? {
        sync::Forked::Child(socket) => init::run_setup_child(&context, socket),
        sync::Forked::Parent { socket, child } => (socket, child),
    };
    drop(exec_fifo);
    guard.children.push(setup_pid);

    join_cgroup(guard.cgroup.as_ref().expect("set above"), setup_pid)?;
    let send = |message: &ParentMessage| {
        parent_socket
            .send(message)
            .map_err(|source| EngineError::Sync { source })
    };
    send(&ParentMessage::Proceed)?;

    let oci_version = bundle.spec.version().clone();
    let annotations = bundle.spec.annotations().clone();
    let hooks = bundle.spec.hooks().as_ref();
    let mut init_pid = None;
    loop {
        let message = parent_socket
            .receive::<ChildMessage>()
            .map_err(|source| EngineError::Sync { source })?;
        match message {
            Some(ChildMessage::IdMapsPlease) => {
                namespaces::write_id_maps(setup_pid, &uid_mappings, &gid_mappings).map_err(
                    |source| EngineError::IdMaps {
                        id: options.id.to_owned(),
                        source,
                    },
                )?;
                send(&ParentMessage::IdMapsWritten)?;
            }
            Some(ChildMessage::InitPid(pid)) => {
                init_pid = Some(pid);
                guard.children.handed_over(setup_pid, pid);
            }
            Some(ChildMessage::RunCreateHooks) => {
                let state = hooks::container_state(
                    &oci_version,
                    options.id,
                    ContainerState::Creating,
                    init_pid,
                    &bundle.path,
                    annotations.clone(),
                );
                if let Some(hooks) = hooks {
                    // runc runs prestart (deprecated) right before
                    // createRuntime, both in the runtime's namespaces.
                    run_parent_hooks(
                        hooks.prestart(),
                        HookStage::Prestart,
                        "prestart",
                        &state,
                        &bundle.path,
                    )?;
                    run_parent_hooks(
                        hooks.create_runtime(),
                        HookStage::CreateRuntime,
                        "createRuntime",
                        &state,
                        &bundle.path,
                    )?;
                }
                let state = serde_json::to_string(&state).map_err(|error| EngineError::Sync {
                    source: io::Error::other(error),
                })?;
                send(&ParentMessage::HooksDone { state })?;
            }
            Some(ChildMessage::Ready) => break,
            Some(ChildMessage::Failed(failure)) => return Err(failure.into()),
            None => return Err(guard.children.vanished(init_pid.unwrap_or(setup_pid))),
        }
    }
    // The setup process sends the pid before the init may go on (init.rs,
    // fork_if_needed); without it, the setup process died first.
    let pid = init_pid.ok_or_else(|| guard.children.vanished(setup_pid))?;
    let cgroup = guard.disarm();
    Ok(Container {
        id: options.id.to_owned(),
        pid,
        bundle: bundle.path.clone(),
        state_dir: state_dir.to_path_buf(),
        cgroup,
        oci_version,
        annotations,
    })
}

fn run_parent_hooks(
    hooks: &Option<Vec<Hook>>,
    stage: HookStage,
    name: &'static str,
    state: &State,
    bundle: &Path,
) -> Result<(), EngineError> {
    let hooks = hooks.as_deref().unwrap_or_default();
    hooks::run_hooks_in(bundle, hooks, stage, state).map_err(|source| EngineError::Hooks {
        stage: name,
        source: Box::new(source),
    })
}

/// Lets a created container's init exec its process: opens the exec fifo
/// for reading and takes the byte the init writes, then removes the fifo.
/// Fails if the init is gone instead of waiting forever.
pub fn start(state_dir: &Path, init_pid: i32) -> Result<(), EngineError> {
    let path = state_dir.join(EXEC_FIFO);
    let open_error = |source| EngineError::OpenFifo {
        path: path.clone(),
        source,
    };
    // Non-blocking, so that a dead init cannot hang us; the init's blocking
    // open for writing returns as soon as this open exists (fifo(7)).
    let fifo = sys::open(&path, libc::O_RDONLY | libc::O_NONBLOCK).map_err(open_error)?;
    loop {
        let events = sys::poll_readable(fifo.as_fd(), 100).map_err(open_error)?;
        if events & libc::POLLIN != 0 {
            let mut byte = [0u8; 1];
            let mut file = fs::File::from(fifo);
            match file.read(&mut byte) {
                Ok(1) => break,
                _ => return Err(EngineError::NotWaiting { pid: init_pid }),
            }
        }
        if events & libc::POLLHUP != 0 || !sys::is_alive(init_pid) {
            return Err(EngineError::NotWaiting { pid: init_pid });
        }
    }
    let _ = fs::remove_file(&path);
    Ok(())
}

/// kill(2) for a container's init.
pub fn kill(pid: i32, signal: i32) -> Result<(), EngineError> {
    sys::kill(pid, signal).map_err(|source| EngineError::Kill {
        signal,
        target: format!("the container init {pid}"),
        source,
    })
}

/// `signal` to every process of the container's cgroup.
pub fn kill_all(cgroup: &Cgroup, signal: i32) -> Result<(), EngineError> {
    cgroup.kill_all(signal).map_err(|source| EngineError::Kill {
        signal,
        target: "every process of the container".to_owned(),
        source: io::Error::other(source),
    })
}

/// How long [`wait_for_exit`] sleeps between checks when no SIGCHLD comes.
const WAIT_TICK: Duration = Duration::from_millis(200);

/// Signals a waiting runtime passes on to the container init, as `runc run`
/// does.
pub const FORWARDED_SIGNALS: &[i32] = &[
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

/// Blocks SIGCHLD and the forwarded signals, so that [`wait_for_exit`]
/// receives them. Call it after `create` (the children must not inherit a
/// blocked mask — they reset it anyway) and before `start`.
pub fn prepare_to_wait() -> io::Result<()> {
    let mut signals = FORWARDED_SIGNALS.to_vec();
    signals.push(libc::SIGCHLD);
    sys::block_signals(&signals)
}

/// Waits until the container init exits, reaping every other child that
/// ends meanwhile (a subreaper inherits the container's orphans), and
/// forwarding [`FORWARDED_SIGNALS`] to the init. Returns its exit status.
pub fn wait_for_exit(init_pid: i32) -> io::Result<sys::ExitStatus> {
    wait_for_first(&[init_pid], init_pid).map(|(_, status)| status)
}

/// Waits until one of `pids` exits (the init, or a process exec'd into the
/// container) and returns which and how, reaping every other child that
/// ends meanwhile and forwarding [`FORWARDED_SIGNALS`] to `signal_target`,
/// as `runc run` and `runc exec` forward them to their process.
pub fn wait_for_first(pids: &[i32], signal_target: i32) -> io::Result<(i32, sys::ExitStatus)> {
    wait_for_first_handling(pids, |signal| {
        let _ = sys::kill(signal_target, signal);
    })
}

/// [`wait_for_first`], with each of [`FORWARDED_SIGNALS`] that arrives
/// handed to `on_signal` instead of forwarded.
pub fn wait_for_first_handling(
    pids: &[i32],
    mut on_signal: impl FnMut(i32),
) -> io::Result<(i32, sys::ExitStatus)> {
    let mut signals = FORWARDED_SIGNALS.to_vec();
    signals.push(libc::SIGCHLD);
    loop {
        while let Some((pid, status)) = sys::wait(-1, true)? {
            if pids.contains(&pid) {
                return Ok((pid, status));
            }
        }
        match sys::wait_for_signal(&signals, WAIT_TICK)? {
            Some(libc::SIGCHLD) | None => {}
            Some(signal) => on_signal(signal),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_runcs_rules() {
        validate_id("web-1.test_a+b").unwrap();
        assert!(validate_id("").is_err());
        assert!(validate_id("a/b")
            .unwrap_err()
            .to_string()
            .contains("only letters"));
        assert!(validate_id("..").is_err());
    }

    #[test]
    fn init_failures_carry_their_exit_code() {
        let error = EngineError::Init {
            step: "exec: \"foo\": executable file not found in $PATH".into(),
            message: "exec: \"foo\": executable file not found in $PATH".into(),
            exit_code: 127,
        };
        assert_eq!(error.exit_code(), 127);
        assert_eq!(
            error.to_string(),
            "exec: \"foo\": executable file not found in $PATH"
        );
        assert_eq!(EngineError::NotWaiting { pid: 1 }.exit_code(), 1);
    }
}
