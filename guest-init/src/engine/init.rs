//! The child side of create: the processes that enter the namespaces, build
//! the root filesystem and become the container's process.
//!
//! The forked child first runs [`run_setup_child`] (namespaces, runc's
//! nsexec "stage 1"); the container init — the same process, or a fresh
//! child of it where a pid or time namespace requires one — runs
//! [`set_up_container`] (runc's standard_init_linux.go) and then blocks on
//! the exec fifo until `start`. The order of the steps is runc's, and each
//! step says why it is where it is. A process exec'd into a running
//! container (`engine::exec`) shares the first steps of the child, the
//! console and the exec here, and `process::finalize`.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{ContainerState, Hook, Process, State};

use crate::engine::hooks::{self, HookError, HookStage};
use crate::engine::namespaces::{self, NamespaceError, NamespacePlan};
use crate::engine::process::exec::{self, ExecError};
use crate::engine::process::{self, PreparedProcess, ProcessError};
use crate::engine::rootfs::{self, RootfsError, RootfsPlan};
use crate::engine::seccomp::CompiledSeccomp;
use crate::engine::spec::Bundle;
use crate::engine::sync::{ChildMessage, InitFailure, ParentMessage, SyncSocket};
use crate::engine::syscall::{NamespaceFile, Syscall};
use crate::engine::{error_chain, sys};

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error("hooks.{stage}")]
    Hooks {
        stage: &'static str,
        /// Boxed: hook errors carry the hook's output and are large.
        #[source]
        source: Box<HookError>,
    },
    #[error("talk to the runtime")]
    Sync {
        #[source]
        source: std::io::Error,
    },
    #[error("the runtime sent {got}, expected {expected}")]
    Protocol { got: String, expected: &'static str },
    #[error("process.terminal: {step}")]
    Console {
        step: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("give the process its stdin, stdout and stderr")]
    Stdio {
        #[source]
        source: std::io::Error,
    },
    #[error("wait for start on the exec fifo")]
    ExecFifo {
        #[source]
        source: std::io::Error,
    },
    #[error("exec {}", path.display())]
    Execve {
        path: PathBuf,
        #[source]
        source: std::io::Error,
        exit_code: i32,
    },
    #[error("fork the container's process inside its pid namespace")]
    Fork {
        #[source]
        source: std::io::Error,
    },
}

impl InitError {
    /// The exit status runc's callers would give this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            InitError::Exec(error) => error.exit_code(),
            InitError::Execve { exit_code, .. } => *exit_code,
            _ => 1,
        }
    }

    pub(crate) fn failure(&self) -> InitFailure {
        InitFailure {
            step: self.to_string(),
            message: error_chain(self),
            exit_code: self.exit_code(),
        }
    }
}

/// What the children inherit from the parent, prepared before the fork.
pub struct InitContext<'a> {
    pub bundle: &'a Bundle,
    pub namespaces: &'a NamespacePlan,
    pub rootfs: RootfsPlan<'a>,
    pub seccomp: Option<&'a CompiledSeccomp>,
    /// O_PATH descriptor of the exec fifo, reopened for writing later.
    pub exec_fifo: BorrowedFd<'a>,
    /// Connected console socket, when `process.terminal`.
    pub console_socket: Option<BorrowedFd<'a>>,
    /// Descriptors for stdin, stdout and stderr (None: keep the inherited
    /// ones; a None entry: /dev/null).
    pub stdio: Option<[Option<BorrowedFd<'a>>; 3]>,
    pub syscall: &'a dyn Syscall,
}

/// The points where the setup waits on the outside world; the recording
/// tests replace them.
pub trait Interactions {
    /// Mounts and devices are done: the parent runs the prestart and
    /// createRuntime hooks, then the createContainer hooks run here, in the
    /// container's mount namespace before the pivot (runtime-spec
    /// config.md "createContainer Hooks").
    fn mounts_ready(&mut self) -> Result<(), InitError>;

    /// `process.terminal`: a pty from the container's devpts becomes
    /// stdio and the controlling terminal; its master goes to the console
    /// socket.
    fn set_up_console(&mut self) -> Result<(), InitError>;
}

/// Entry point of the forked child. Never returns: it exits or execs.
pub fn run_setup_child(context: &InitContext, socket: SyncSocket) -> ! {
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            match enter_namespaces(context, &socket) {
                Ok(true) => run_init(context, socket),
                Ok(false) => sys::exit_now(0),
                Err(error) => {
                    let _ = socket.send(&ChildMessage::Failed(error.failure()));
                    sys::exit_now(1)
                }
            }
        }));
    // A panic in the child must not unwind into the caller's frames, which
    // belong to the parent.
    drop(outcome);
    sys::exit_now(1)
}

/// Stage one. Returns whether this process is the container init (false:
/// it forked the init and is done).
fn enter_namespaces(context: &InitContext, socket: &SyncSocket) -> Result<bool, InitError> {
    start_child(socket, context.stdio)?;
    let joined = context.namespaces.open_joined()?;
    let request_id_maps = || {
        socket
            .send(&ChildMessage::IdMapsPlease)
            .map_err(|source| InitError::Sync { source })?;
        expect(socket, "IdMapsWritten", |message| {
            matches!(message, ParentMessage::IdMapsWritten)
        })
        .map(drop)
    };
    enter(
        context.syscall,
        context.namespaces,
        &joined,
        context.bundle.process().oom_score_adj(),
        request_id_maps,
    )?;
    drop(joined);
    fork_if_needed(socket, context.namespaces.init_needs_fork)
}

/// The first steps of a forked setup child, create's or exec's: default
/// signal handling, the requested stdio, death with the runtime, and the
/// parent's go-ahead (it has put this process in the container's cgroup).
pub(crate) fn start_child(
    socket: &SyncSocket,
    stdio: Option<[Option<BorrowedFd>; 3]>,
) -> Result<(), InitError> {
    let sync_error = |source| InitError::Sync { source };
    sys::reset_signals().map_err(sync_error)?;
    if let Some(stdio) = stdio {
        sys::install_stdio(stdio).map_err(|source| InitError::Stdio { source })?;
    }
    // If the runtime dies during the setup, the half-made process goes too.
    sys::set_parent_death_signal(libc::SIGKILL).map_err(sync_error)?;
    expect(socket, "Proceed", |message| {
        matches!(message, ParentMessage::Proceed)
    })
    .map(drop)
}

/// Once the namespaces are entered: tells the parent which process will
/// exec, this one or, when `needs_fork` (a pid or time namespace applies
/// only to children, pid_namespaces(7), time_namespaces(7)), a fresh
/// child. Returns whether this process is the one (false: it forked it and
/// is done).
pub(crate) fn fork_if_needed(socket: &SyncSocket, needs_fork: bool) -> Result<bool, InitError> {
    let sync_error = |source| InitError::Sync { source };
    if !needs_fork {
        socket
            .send(&ChildMessage::InitPid(sys::own_pid()))
            .map_err(sync_error)?;
        return Ok(true);
    }
    // The init and this process share the socket to the runtime, which
    // needs the init's pid before anything the init sends (its hooks
    // state names the pid, and Ready ends the runtime's wait). A gate
    // keeps the init waiting until the pid has been sent: this process
    // closes its end once it has (or once it has failed to).
    let (gate_open, gate_wait) = sys::seqpacket_pair().map_err(sync_error)?;
    match sys::fork().map_err(|source| InitError::Fork { source })? {
        // fork(2) clears the parent death signal in the child: it does not
        // die when this short-lived process exits.
        sys::Fork::Child => {
            drop(gate_open);
            // End of file is the signal; an error means the same.
            let _ = sys::receive(gate_wait.as_fd(), &mut [0u8; 1]);
            Ok(true)
        }
        sys::Fork::Parent { child } => {
            drop(gate_wait);
            // fork returned the pid in this process's pid namespace, which
            // is the runtime's: unshare and setns leave the caller's own pid
            // namespace alone.
            let sent = socket.send(&ChildMessage::InitPid(child));
            drop(gate_open);
            sent.map_err(sync_error)?;
            Ok(false)
        }
    }
}

/// The namespace steps of stage one, in order (see `namespaces`):
/// oom_score_adj while still in the initial user namespace, the joins, a
/// new user namespace with its maps, root in it, the other new namespaces.
fn enter(
    syscall: &dyn Syscall,
    plan: &NamespacePlan,
    joined: &[NamespaceFile],
    oom_score_adj: Option<i32>,
    request_id_maps: impl FnOnce() -> Result<(), InitError>,
) -> Result<(), InitError> {
    if let Some(value) = oom_score_adj {
        process::apply_oom_score_adj(syscall, value)?;
    }
    namespaces::join(syscall, joined)?;
    if plan.new_user {
        namespaces::unshare_user(syscall)?;
        request_id_maps()?;
        namespaces::become_root_in_user_namespace(syscall)?;
    }
    namespaces::unshare_others(syscall, plan)?;
    Ok(())
}

fn expect(
    socket: &SyncSocket,
    expected: &'static str,
    matches: impl Fn(&ParentMessage) -> bool,
) -> Result<ParentMessage, InitError> {
    match socket.receive::<ParentMessage>() {
        Ok(Some(message)) if matches(&message) => Ok(message),
        Ok(Some(message)) => Err(InitError::Protocol {
            got: format!("{message:?}"),
            expected,
        }),
        Ok(None) => Err(InitError::Protocol {
            got: "end of file (the runtime went away)".into(),
            expected,
        }),
        Err(source) => Err(InitError::Sync { source }),
    }
}

/// The container init: setup, the fifo, the exec. Never returns.
fn run_init(context: &InitContext, socket: SyncSocket) -> ! {
    let mut interactions = LiveInteractions {
        context,
        socket: &socket,
        state: None,
    };
    let prepared = (|| {
        if context.namespaces.new_cgroup {
            namespaces::unshare_cgroup(context.syscall)?;
        }
        sys::setsid().map_err(|source| InitError::Console {
            step: "setsid",
            source,
        })?;
        let prepared = set_up_container(context, &mut interactions)?;
        let program = exec::find_program(&prepared)?;
        Ok::<_, InitError>((prepared, program))
    })();
    let state = interactions.state.take();
    let (prepared, program) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => {
            let _ = socket.send(&ChildMessage::Failed(error.failure()));
            sys::exit_now(1)
        }
    };
    // The setup is done: from now on the init outlives the runtime that
    // created it (`husk create` returns, and without a pid namespace this
    // process is the setup child whose parent is that runtime).
    if sys::set_parent_death_signal(0).is_err() || socket.send(&ChildMessage::Ready).is_err() {
        // The runtime is gone; nobody will ever start this container.
        sys::exit_now(1)
    }
    drop(socket);

    // From here on the runtime has returned from create: failures can only
    // be told on the container's stderr, and the exit status carries them.
    let error = wait_and_exec(context, &prepared, &program, state.as_deref());
    let _ = writeln!(std::io::stderr(), "husk: {}", error_chain(&error));
    sys::exit_now(error.exit_code())
}

/// Blocks on the exec fifo until `start`, runs the startContainer hooks,
/// installs a no_new_privs seccomp filter and execs. Returns only on error.
fn wait_and_exec(
    context: &InitContext,
    prepared: &PreparedProcess,
    program: &Path,
    state: Option<&str>,
) -> InitError {
    let fifo_error = |source| InitError::ExecFifo { source };
    // The fifo's path is outside the new root; its O_PATH descriptor
    // reopens it through /proc (as runc does). Opening for writing blocks
    // until `start` opens it for reading.
    let fifo_path = PathBuf::from(format!("/proc/self/fd/{}", context.exec_fifo.as_raw_fd()));
    let fifo = match sys::open(&fifo_path, libc::O_WRONLY) {
        Ok(fifo) => fifo,
        Err(source) => return fifo_error(source),
    };
    if let Err(source) = std::fs::File::from(fifo).write_all(b"0") {
        return fifo_error(source);
    }
    // Closed before the exec rather than at it: runc does so since
    // CVE-2016-9962, where a container process could reach the runtime's
    // descriptors before the exec made it non-dumpable.
    if let Err(source) = sys::close_inherited(context.exec_fifo.as_raw_fd()) {
        return fifo_error(source);
    }

    let process = context.bundle.process();
    if let (Some(state), Some(hooks)) = (state, context.bundle.spec.hooks().as_ref()) {
        if let Some(start_hooks) = hooks.start_container() {
            if let Err(error) = run_stage(
                start_hooks,
                HookStage::StartContainer,
                "startContainer",
                state,
                // runc: the container is "created" until its process runs.
                ContainerState::Created,
            ) {
                return error;
            }
        }
    }
    exec_prepared(context.syscall, process, context.seccomp, program, prepared)
}

/// The end of both create and exec: the no_new_privs seccomp filter, the
/// runtime's descriptors made close-on-exec, execve. Returns only on error.
pub(crate) fn exec_prepared(
    syscall: &dyn Syscall,
    process: &Process,
    seccomp: Option<&CompiledSeccomp>,
    program: &Path,
    prepared: &PreparedProcess,
) -> InitError {
    if let Some(seccomp) = seccomp.filter(|_| process.no_new_privileges() == Some(true)) {
        // With no_new_privs the filter goes on as late as possible, so
        // that as few of the runtime's own syscalls as possible run
        // under it (runc standard_init_linux.go, setns_init_linux.go).
        if let Err(source) = syscall.install_seccomp(&seccomp.program, seccomp.flags) {
            return ProcessError::Seccomp { source }.into();
        }
    }
    if let Err(source) = sys::close_on_exec_from(3) {
        return InitError::Execve {
            path: program.to_path_buf(),
            source,
            exit_code: 1,
        };
    }
    let source = sys::execve(program, &prepared.args, &prepared.env);
    let exit_code = match source.raw_os_error() {
        Some(libc::ENOENT) => exec::EXIT_NOT_FOUND,
        _ => exec::EXIT_CANNOT_EXECUTE,
    };
    InitError::Execve {
        path: program.to_path_buf(),
        source,
        exit_code,
    }
}

/// Runs one stage of hooks with the parent's state, its status set to
/// `status`.
fn run_stage(
    hooks: &[Hook],
    stage: HookStage,
    name: &'static str,
    state: &str,
    status: ContainerState,
) -> Result<(), InitError> {
    let mut state: State = serde_json::from_str(state).map_err(|error| InitError::Protocol {
        got: format!("a state the hooks cannot use ({error})"),
        expected: "the container state",
    })?;
    state.set_status(status);
    hooks::run_hooks(hooks, stage, &state).map_err(|source| InitError::Hooks {
        stage: name,
        source: Box::new(source),
    })
}

/// Everything between the namespaces and the exec, in runc's order
/// (standard_init_linux.go, Init). Recorded end to end by the tests.
pub fn set_up_container(
    context: &InitContext,
    interactions: &mut dyn Interactions,
) -> Result<PreparedProcess, InitError> {
    let syscall = context.syscall;
    let spec = &context.bundle.spec;
    let process = context.bundle.process();
    let linux = spec.linux().as_ref();

    // The root filesystem: mounts and /dev, the hooks that may still see the
    // host (createContainer), then the pivot. The cwd is created inside the
    // new root right away, while it is still writable.
    let prepared_rootfs = rootfs::prepare(syscall, &context.rootfs)?;
    interactions.mounts_ready()?;
    rootfs::pivot(syscall, &context.rootfs, &prepared_rootfs)?;
    let cwd = process.cwd();
    syscall
        .create_dir_all(cwd, 0o755)
        .map_err(|source| ProcessError::CreateCwd {
            path: cwd.to_path_buf(),
            source,
        })?;

    // The console needs the container's /dev/pts, and /dev still writable.
    if process.terminal() == Some(true) {
        interactions.set_up_console()?;
    }
    rootfs::finalize(syscall, &context.rootfs, &prepared_rootfs)?;
    syscall.umask(process.user().umask().unwrap_or(0o022));

    process::apply_uts(
        syscall,
        spec.hostname().as_deref(),
        spec.domainname().as_deref(),
    )?;
    process::apply_apparmor_profile(syscall, process)?;
    if let Some(sysctls) = linux.and_then(|linux| linux.sysctl().as_ref()) {
        process::apply_sysctls(syscall, sysctls)?;
    }
    // Read-only and masked paths last among the mounts: they protect what
    // the earlier steps (sysctls) still had to write.
    let empty = Vec::new();
    rootfs::apply_readonly_paths(
        syscall,
        linux
            .and_then(|linux| linux.readonly_paths().as_ref())
            .unwrap_or(&empty),
    )?;
    rootfs::apply_masked_paths(
        syscall,
        linux
            .and_then(|linux| linux.masked_paths().as_ref())
            .unwrap_or(&empty),
    )?;

    // no_new_privs, rlimits, seccomp, capabilities, user, cwd.
    Ok(process::finalize(
        syscall,
        process,
        process.rlimits().as_deref().unwrap_or_default(),
        context.seccomp,
    )?)
}

/// The real interactions: the sync socket, hooks, the pty.
struct LiveInteractions<'a> {
    context: &'a InitContext<'a>,
    socket: &'a SyncSocket,
    /// The state JSON the parent sent for the hooks run here.
    state: Option<String>,
}

impl Interactions for LiveInteractions<'_> {
    fn mounts_ready(&mut self) -> Result<(), InitError> {
        self.socket
            .send(&ChildMessage::RunCreateHooks)
            .map_err(|source| InitError::Sync { source })?;
        let ParentMessage::HooksDone { state } = expect(self.socket, "HooksDone", |message| {
            matches!(message, ParentMessage::HooksDone { .. })
        })?
        else {
            unreachable!("expect() checked the message");
        };
        if let Some(hooks) = self
            .context
            .bundle
            .spec
            .hooks()
            .as_ref()
            .and_then(|hooks| hooks.create_container().as_ref())
        {
            // The runtime's working directory is the bundle for hooks
            // (runtime.md "Lifecycle"); here it is the old root's view.
            let _ = std::env::set_current_dir(&self.context.bundle.path);
            run_stage(
                hooks,
                HookStage::CreateContainer,
                "createContainer",
                &state,
                ContainerState::Creating,
            )?;
        }
        self.state = Some(state);
        Ok(())
    }

    fn set_up_console(&mut self) -> Result<(), InitError> {
        // /dev/console is the container init's pty too, as under runc.
        set_up_console(
            self.context.syscall,
            self.context.console_socket,
            self.context.bundle.process(),
            ConsoleDevice::BindOntoDevConsole,
        )
    }
}

/// Whether the pty also becomes the container's /dev/console: for the
/// container init, not for an exec'd process (runc's setupConsole, `mount`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConsoleDevice {
    BindOntoDevConsole,
    LeaveDevConsole,
}

/// `process.terminal`: opens a pty from the container's /dev/ptmx, sends
/// the master over the console socket (SCM_RIGHTS, the payload being the
/// slave's path, as runc's utils.SendFd), makes the slave stdin, stdout
/// and stderr and the controlling terminal. The caller must be a session
/// leader without a terminal (setsid).
pub(crate) fn set_up_console(
    syscall: &dyn Syscall,
    console_socket: Option<BorrowedFd>,
    process: &Process,
    device: ConsoleDevice,
) -> Result<(), InitError> {
    let console_error = |step| move |source| InitError::Console { step, source };
    let socket = console_socket.ok_or_else(|| InitError::Console {
        step: "no console socket was passed",
        source: std::io::Error::from_raw_os_error(libc::EBADF),
    })?;
    let (master, slave_path) = sys::open_pty().map_err(console_error("open /dev/ptmx"))?;
    if let Some(size) = process.console_size() {
        if size.width() > 0 && size.height() > 0 {
            sys::set_window_size(master.as_fd(), size.height() as u16, size.width() as u16)
                .map_err(console_error("set the console size"))?;
        }
    }
    if device == ConsoleDevice::BindOntoDevConsole {
        let console = Path::new("/dev/console");
        if !console.exists() {
            std::fs::File::create(console).map_err(console_error("create /dev/console"))?;
        }
        syscall
            .mount(
                Some(&slave_path),
                console,
                Some("bind"),
                libc::MS_BIND,
                None,
            )
            .map_err(console_error("bind the pty onto /dev/console"))?;
    }
    sys::send_fd(
        socket,
        slave_path.as_os_str().as_encoded_bytes(),
        master.as_fd(),
    )
    .map_err(console_error("send the pty master to the console socket"))?;
    drop(master);
    let slave = sys::open(&slave_path, libc::O_RDWR).map_err(console_error("open the pty"))?;
    for target in 0..3 {
        sys::dup_onto(slave.as_fd(), target).map_err(console_error("make the pty stdio"))?;
    }
    sys::set_controlling_terminal(slave.as_fd())
        .map_err(console_error("make the pty the controlling terminal"))?;
    Ok(())
}

#[cfg(test)]
mod tests;
