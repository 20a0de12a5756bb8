//! husk-vmm confines its own threads with seccomp (DESIGN.md "Security
//! layers", layer 2): each kind of thread gets a policy that allows the
//! system calls it makes and nothing else, with the arguments checked where
//! a call could do harm (ioctl request numbers, socket families, no
//! executable memory, clone only for threads, opens only as the thread
//! needs them). Any other call kills the whole process
//! (SECCOMP_RET_KILL_PROCESS), so a thread a guest has compromised cannot
//! carry on. `--seccomp log` lets such calls through and logs them
//! (SECCOMP_RET_LOG: the kernel log or audit, `audit: type=1326 ...
//! syscall=N`), `--seccomp off` installs nothing; both are for debugging.
//!
//! # The threads and their policies
//!
//! | Thread | Started by | Confined by |
//! |---|---|---|
//! | main, once the VM is built: the event loop | — | [`ThreadKind::EventLoop`] |
//! | `vcpuN` | main, before it confines itself | [`ThreadKind::Vcpu`] |
//! | `husk-blk-ioN` (virtio-blk workers) | the event loop, as requests come | EventLoop, inherited, and [`ThreadKind::BlockWorker`] |
//! | `agent-proxy` (sandbox mode) | main, before the VM is built | [`ThreadKind::SandboxControl`] |
//! | `agent-clients`, `agent-client`, `output-done`, `window-size`, `shutdown` | agent-proxy | SandboxControl, inherited |
//! | `stdin`, `stdout`, `stderr`, `terminal-in`, `terminal-out` relays | agent-proxy | SandboxControl, inherited, and [`ThreadKind::StdioRelay`] |
//! | the builder's two helpers (memory registration, irqchip) | main, while building | none: they end before the guest runs |
//!
//! # The order of installation
//!
//! A filter belongs to the thread that installed it and is copied into
//! every thread that thread creates afterwards; filters stack, and a system
//! call must pass all of a thread's filters (seccomp(2), "Filters are
//! inherited by children"). Hence:
//!
//! - A thread that must not carry another's policy is created before that
//!   one confines itself: the vCPU threads and the sandbox proxy exist
//!   before the main thread installs the event loop's policy
//!   (`Vmm::run`, `sandbox::start`).
//! - Each of those installs its own policy first thing, before it touches
//!   anything the guest controls. A vCPU thread then waits until the event
//!   loop has confined itself too before its first KVM_RUN, so the guest
//!   never runs beside an unconfined main thread.
//! - A thread started by a confined thread begins under its parent's
//!   filter and can only narrow it. So the parent's policy allows what the
//!   child does before it narrows (glibc's and std's thread start: robust
//!   list, rseq, its name, its alternate signal stack), the narrowing
//!   itself (prctl PR_SET_NO_NEW_PRIVS, seccomp SECCOMP_SET_MODE_FILTER),
//!   and everything the child does afterwards: the event loop's policy
//!   holds the block workers' I/O (it does the same I/O itself) and the
//!   sandbox control policy the relays' calls. The child narrows with the
//!   mode its parent was confined with ([`current_thread_mode`]).
//! - clone3 keeps its flags in memory, which a filter cannot read, so a
//!   thread that may start threads could also fork; the child would carry
//!   the same filter, which allows no execve.
//!
//! # When installing fails
//!
//! A thread whose own policy cannot be installed, and that inherited none,
//! does not run: a vCPU or the event loop ends the VM before it starts
//! (`RuntimeError`), the sandbox proxy fails `sandbox::start`. A thread
//! that narrows an inherited policy and fails says so on stderr and runs
//! on under the inherited one, which still confines it.
//!
//! # Debugging a kill
//!
//! The process dies of SIGSYS and the kernel logs the call (`audit:
//! type=1326 ... sig=31 ... syscall=N`). Run with `--seccomp log` to see
//! every call a policy misses in one run, and add each one to the policy
//! of the thread kind that makes it, saying who needs it. A panic under a
//! filter prints its message, but RUST_BACKTRACE's symbolization opens
//! files no policy allows: use `--seccomp log` for backtraces.

mod block_worker;
mod common;
mod event_loop;
mod policy;
mod sandbox;
mod vcpu;

#[cfg(test)]
mod tests;

use std::cell::Cell;
use std::{fmt, io};

use seccompiler::{BackendError, BpfProgram, SeccompAction, SeccompFilter, TargetArch};

use self::policy::Allowed;

/// What a system call outside a thread's policy does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SeccompMode {
    /// Kill the process (SECCOMP_RET_KILL_PROCESS).
    #[default]
    Kill,
    /// Let it through and log it (SECCOMP_RET_LOG), for debugging a policy.
    Log,
    /// Install no filter at all, for debugging.
    Off,
}

impl SeccompMode {
    /// `kill`, `log` or `off`, the value of `--seccomp`.
    pub fn parse(value: &str) -> Result<Self, String> {
        match value {
            "kill" => Ok(SeccompMode::Kill),
            "log" => Ok(SeccompMode::Log),
            "off" => Ok(SeccompMode::Off),
            other => Err(format!("--seccomp {other:?}: expected kill, log or off")),
        }
    }

    /// The filter's action for a call outside the policy; None when no
    /// filter is installed.
    fn violation_action(self) -> Option<SeccompAction> {
        match self {
            SeccompMode::Kill => Some(SeccompAction::KillProcess),
            SeccompMode::Log => Some(SeccompAction::Log),
            SeccompMode::Off => None,
        }
    }
}

/// The kinds of thread husk-vmm runs, one policy each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadKind {
    /// The main thread once the VM runs: the event loop, the devices on it,
    /// the teardown.
    EventLoop,
    /// A vCPU thread: KVM_RUN and the device emulation its exits lead to.
    Vcpu,
    /// A virtio-blk I/O worker.
    BlockWorker,
    /// Sandbox mode's agent proxy and the threads it starts.
    SandboxControl,
    /// A sandbox stdio relay.
    StdioRelay,
}

impl ThreadKind {
    pub const ALL: [ThreadKind; 5] = [
        ThreadKind::EventLoop,
        ThreadKind::Vcpu,
        ThreadKind::BlockWorker,
        ThreadKind::SandboxControl,
        ThreadKind::StdioRelay,
    ];

    fn policy(self) -> Vec<Allowed> {
        match self {
            ThreadKind::EventLoop => event_loop::policy(),
            ThreadKind::Vcpu => vcpu::policy(),
            ThreadKind::BlockWorker => block_worker::policy(),
            ThreadKind::SandboxControl => sandbox::control_policy(),
            ThreadKind::StdioRelay => sandbox::relay_policy(),
        }
    }
}

impl fmt::Display for ThreadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ThreadKind::EventLoop => "event loop",
            ThreadKind::Vcpu => "vCPU",
            ThreadKind::BlockWorker => "block worker",
            ThreadKind::SandboxControl => "sandbox control",
            ThreadKind::StdioRelay => "stdio relay",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("compile the {kind} seccomp policy")]
    Compile {
        kind: ThreadKind,
        #[source]
        source: BackendError,
    },
    #[error("set no_new_privs before installing the {kind} seccomp policy")]
    NoNewPrivs {
        kind: ThreadKind,
        #[source]
        source: io::Error,
    },
    #[error("install the {kind} seccomp policy")]
    Install {
        kind: ThreadKind,
        #[source]
        source: io::Error,
    },
}

thread_local! {
    /// The mode the current thread was confined with; threads it starts
    /// narrow its filter in the same mode.
    static CONFINED_WITH: Cell<SeccompMode> = const { Cell::new(SeccompMode::Off) };
}

/// The BPF program for `kind` in `mode`, for x86_64; None for
/// [`SeccompMode::Off`].
pub fn compile(kind: ThreadKind, mode: SeccompMode) -> Result<Option<BpfProgram>, SeccompError> {
    let Some(violation) = mode.violation_action() else {
        return Ok(None);
    };
    let compile_error = |source| SeccompError::Compile { kind, source };
    let rules = policy::merge(&kind.policy()).map_err(compile_error)?;
    let filter = SeccompFilter::new(rules, violation, SeccompAction::Allow, TargetArch::x86_64)
        .map_err(compile_error)?;
    BpfProgram::try_from(filter)
        .map(Some)
        .map_err(compile_error)
}

/// Installs `kind`'s policy on the calling thread (and so on every thread
/// it starts afterwards). Nothing for [`SeccompMode::Off`].
pub fn confine_current_thread(kind: ThreadKind, mode: SeccompMode) -> Result<(), SeccompError> {
    let Some(program) = compile(kind, mode)? else {
        return Ok(());
    };
    seccompiler::apply_filter(&program).map_err(|error| match error {
        seccompiler::Error::Prctl(source) => SeccompError::NoNewPrivs { kind, source },
        seccompiler::Error::Seccomp(source) => SeccompError::Install { kind, source },
        other => SeccompError::Install {
            kind,
            source: io::Error::other(other.to_string()),
        },
    })?;
    CONFINED_WITH.with(|confined| confined.set(mode));
    Ok(())
}

/// The mode the calling thread was confined with ([`SeccompMode::Off`] if
/// it never was). Read it before starting a thread and pass it to
/// [`narrow_current_thread`] in the new thread.
pub fn current_thread_mode() -> SeccompMode {
    CONFINED_WITH.with(Cell::get)
}

/// For a thread started by a confined thread: adds `kind`'s policy to the
/// one inherited from the parent, which was confined with `mode`. A
/// failure is reported on stderr; the thread then runs on under the
/// inherited filter, which still confines it.
pub fn narrow_current_thread(kind: ThreadKind, mode: SeccompMode) {
    if let Err(error) = confine_current_thread(kind, mode) {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("unnamed");
        let mut message = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        eprintln!("husk-vmm: thread {name}: {message}; it stays under its parent's policy");
    }
}
