//! exec: another process in a running container, as `runc exec` starts one
//! (runc libcontainer/setns_init_linux.go, and nsexec's path for a process
//! that joins existing namespaces).
//!
//! The parent checks the request, compiles the container's seccomp profile
//! and opens the init's namespace files (/proc/<init>/ns/*) before anything
//! runs, then forks a setup child, puts it in the container's cgroup and
//! lets it go on. The child makes itself non-dumpable, sets the process's
//! oomScoreAdj and rlimits while it still has the runtime's privileges, and
//! joins the namespaces in runc's order: user first, mount late, cgroup
//! after the cgroup join, so that the container's cgroup is the root it
//! sees. A pid or time namespace applies only to children, so it then forks
//! once more. The process that is now wholly in the container takes a
//! session, its pty, AppArmor profile, umask, no_new_privs, seccomp,
//! capabilities and user the way the container's init did, and execs.
//!
//! `exec` returns once the process has exec'd (the close-on-exec sync
//! socket reaches end of file) or failed (it says why on the socket and is
//! gone). The exec'd process is not the caller's child when a pid namespace
//! made the setup child fork it: the caller reaps it as a child subreaper
//! (prctl(PR_SET_CHILD_SUBREAPER)), or as PID 1 in the guest, the same
//! arrangement as for the container init.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use oci_spec::runtime::{LinuxNamespaceType, Process};

use crate::engine::cgroups::Cgroup;
use crate::engine::container::{
    check_console_socket, compile_seccomp, join_cgroup, EngineError, SetupProcesses, Stdio,
};
use crate::engine::init::{self, ConsoleDevice, InitError};
use crate::engine::process::{self, PreparedProcess};
use crate::engine::seccomp::CompiledSeccomp;
use crate::engine::spec::Bundle;
use crate::engine::sync::{self, ChildMessage, ParentMessage, SyncSocket};
use crate::engine::syscall::{NamespaceFile, Syscall};
use crate::engine::{namespaces, sys};

/// What [`exec`] needs.
pub struct ExecOptions<'a> {
    pub container_id: &'a str,
    /// The running container init's pid (host view): its /proc/<pid>/ns/*
    /// are joined.
    pub init_pid: i32,
    /// The container's bundle: which namespaces it has, and its
    /// `linux.seccomp`, which runc applies to exec'd processes too.
    pub bundle: &'a Bundle,
    /// The container's cgroup, joined by the new process (None when the
    /// caller cannot load it: the process then stays in the caller's).
    pub cgroup: Option<&'a Cgroup>,
    /// The process to run (runc exec --process process.json, or one built
    /// from runc exec's arguments): its own user, capabilities, env, cwd,
    /// rlimits, noNewPrivileges and apparmorProfile apply.
    pub process: &'a Process,
    /// A connected Unix socket that receives the pty master when
    /// `process.terminal` is true (runc exec --console-socket).
    pub console_socket: Option<OwnedFd>,
    pub stdio: Stdio,
    pub syscall: &'a dyn Syscall,
}

/// Runs `options.process` in the running container and returns its pid as
/// the host sees it, once it has exec'd. A failure before the exec comes
/// back as [`EngineError::Init`] naming the step (127 and 126 from
/// [`EngineError::exit_code`] for a program not found or not executable),
/// with no process left behind.
///
/// The caller reaps the process (see the module documentation). It may have
/// threads, with the caveats of `create`: fork copies only the calling
/// thread, so no other thread may hold a lock the child needs.
pub fn exec(options: &ExecOptions) -> Result<i32, EngineError> {
    let id = options.container_id;
    let process = options.process;
    let invalid = |field, problem| EngineError::ExecProcess {
        id: id.to_owned(),
        field,
        problem,
    };
    if process.args().as_ref().is_none_or(|args| args.is_empty()) {
        return Err(invalid("args", "empty: name the program to run"));
    }
    if !process.cwd().is_absolute() {
        return Err(invalid("cwd", "not an absolute path"));
    }
    check_console_socket(
        process.terminal() == Some(true),
        options.console_socket.is_some(),
    )
    .map_err(|problem| invalid("terminal", problem))?;
    if !sys::is_alive(options.init_pid) {
        return Err(EngineError::ExecNotRunning {
            id: id.to_owned(),
            pid: options.init_pid,
        });
    }

    let seccomp = compile_seccomp(options.bundle)?;
    let namespace_error = |source| EngineError::ExecNamespaces {
        id: id.to_owned(),
        source,
    };
    let mut joined = namespaces::open(&namespaces::container_namespaces(
        options.bundle,
        options.init_pid,
    ))
    .map_err(namespace_error)?;
    joined.retain(|namespace| !namespaces::is_current(namespace));
    let context = ExecContext {
        process,
        namespaces: &joined,
        seccomp: seccomp.as_ref(),
        console_socket: options.console_socket.as_ref().map(|socket| socket.as_fd()),
        stdio: options.stdio.borrowed(),
        syscall: options.syscall,
    };

    let (socket, setup_pid) = match sync::fork_with_socket()? {
        sync::Forked::Child(socket) => run_setup_child(&context, socket),
        sync::Forked::Parent { socket, child } => (socket, child),
    };
    drop(joined);
    let mut started = SetupProcesses::default();
    started.push(setup_pid);
    if let Some(cgroup) = options.cgroup {
        join_cgroup(cgroup, setup_pid)?;
    }
    let sync_error = |source| EngineError::Sync { source };
    socket.send(&ParentMessage::Proceed).map_err(sync_error)?;

    let mut exec_pid = None;
    loop {
        match socket.receive::<ChildMessage>().map_err(sync_error)? {
            Some(ChildMessage::InitPid(pid)) => {
                exec_pid = Some(pid);
                started.handed_over(setup_pid, pid);
            }
            // The failed process exits; `started` reaps it.
            Some(ChildMessage::Failed(failure)) => return Err(failure.into()),
            Some(other) => {
                return Err(sync_error(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the exec'd process's setup sent {other:?}"),
                )))
            }
            // Every copy of the child's end is closed: by the execve (the
            // socket is close-on-exec) or by the processes' exit.
            None => break,
        }
    }
    match exec_pid {
        Some(pid) => {
            started.release();
            Ok(pid)
        }
        None => Err(started.vanished(setup_pid)),
    }
}

/// What the children inherit from the parent, prepared before the fork.
struct ExecContext<'a> {
    process: &'a Process,
    /// The container's namespaces, opened, in join order, less those the
    /// runtime is in already.
    namespaces: &'a [NamespaceFile],
    seccomp: Option<&'a CompiledSeccomp>,
    console_socket: Option<BorrowedFd<'a>>,
    stdio: Option<[Option<BorrowedFd<'a>>; 3]>,
    syscall: &'a dyn Syscall,
}

/// Entry point of the forked child. Never returns: it execs or exits.
fn run_setup_child(context: &ExecContext, socket: SyncSocket) -> ! {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let error = match enter_container(context, &socket) {
            Ok(true) => become_process(context),
            Ok(false) => sys::exit_now(0),
            Err(error) => error,
        };
        let _ = socket.send(&ChildMessage::Failed(error.failure()));
        sys::exit_now(1)
    }));
    // A panic in the child must not unwind into the caller's frames, which
    // belong to the parent.
    drop(outcome);
    sys::exit_now(1)
}

/// The setup child's part: the parent's go-ahead, the namespaces, the fork
/// a pid namespace needs. Returns whether this process goes on to exec
/// (false: it forked the one that does and is done).
fn enter_container(context: &ExecContext, socket: &SyncSocket) -> Result<bool, InitError> {
    init::start_child(socket, context.stdio)?;
    // Processes already in the container could otherwise ptrace this one,
    // or open its /proc files, while it still holds the runtime's
    // descriptors; execve makes it dumpable again (runc's nsexec does the
    // same before it joins namespaces).
    sys::set_dumpable(false).map_err(|source| InitError::Sync { source })?;
    join_container(context.syscall, context.process, context.namespaces)?;
    let needs_fork = context.namespaces.iter().any(|namespace| {
        matches!(
            namespace.kind,
            LinuxNamespaceType::Pid | LinuxNamespaceType::Time
        )
    });
    init::fork_if_needed(socket, needs_fork)
}

/// oomScoreAdj and rlimits, then the joins, in order (see `namespaces`),
/// then root in the container's user namespace when there is one.
fn join_container(
    syscall: &dyn Syscall,
    process: &Process,
    namespaces: &[NamespaceFile],
) -> Result<(), InitError> {
    // Both before the user namespace: lowering oom_score_adj and raising a
    // hard rlimit need CAP_SYS_RESOURCE in the initial user namespace
    // (runc's parent sets an exec'd process's rlimits with prlimit(2) for
    // the same reason).
    if let Some(value) = process.oom_score_adj() {
        process::apply_oom_score_adj(syscall, value)?;
    }
    process::apply_rlimits(syscall, process.rlimits().as_deref().unwrap_or_default())?;
    namespaces::join(syscall, namespaces)?;
    if namespaces
        .iter()
        .any(|namespace| namespace.kind == LinuxNamespaceType::User)
    {
        // As nsexec's last stage: ids the runtime had are unmapped in the
        // container, and what the setup creates (the pty) belongs to the
        // container's root instead.
        namespaces::become_root_in_user_namespace(syscall)?;
    }
    Ok(())
}

/// In the container: everything up to the exec. Returns only on error.
fn become_process(context: &ExecContext) -> InitError {
    let prepared = (|| {
        // A session of its own, as nsexec gives every process it starts:
        // the pty can become its controlling terminal, and the caller's
        // terminal signals stay away.
        sys::setsid().map_err(|source| InitError::Console {
            step: "setsid",
            source,
        })?;
        if context.process.terminal() == Some(true) {
            init::set_up_console(
                context.syscall,
                context.console_socket,
                context.process,
                ConsoleDevice::LeaveDevConsole,
            )?;
        }
        let prepared = set_up_process(context.syscall, context.process, context.seccomp)?;
        let program = process::exec::find_program(&prepared)?;
        // The parent death signal survives execve, and it follows the
        // thread that forked: a caller with threads may end that thread
        // long before this process ends.
        sys::set_parent_death_signal(0).map_err(|source| InitError::Sync { source })?;
        Ok::<_, InitError>((prepared, program))
    })();
    match prepared {
        Ok((prepared, program)) => init::exec_prepared(
            context.syscall,
            context.process,
            context.seccomp,
            &program,
            &prepared,
        ),
        Err(error) => error,
    }
}

/// AppArmor, umask, then what the container's init does last too (see
/// `process::finalize`); the rlimits were set before the user namespace.
fn set_up_process(
    syscall: &dyn Syscall,
    process: &Process,
    seccomp: Option<&CompiledSeccomp>,
) -> Result<PreparedProcess, InitError> {
    process::apply_apparmor_profile(syscall, process)?;
    syscall.umask(process.user().umask().unwrap_or(0o022));
    Ok(process::finalize(syscall, process, &[], seccomp)?)
}

#[cfg(test)]
mod tests;
