//! The jailer (DESIGN.md "Security layers", layer 2): with `--jail DIR`,
//! husk-vmm shuts itself in before it builds the VM, so that a guest that
//! took over husk-vmm finds an empty world with no privilege in it.
//!
//! # Design: the same paths, bind-mounted
//!
//! Inside the jail every path husk-vmm was given resolves to the same file
//! as outside, so nothing after the jail changes: the kernel, initrd and
//! disks are bind-mounted at their own absolute paths (read-only unless a
//! writable disk), so are `--serial` and `--log` files, and the directories
//! of the sockets husk-vmm creates or that are created beside them later
//! (`--vsock` and its `<path>_<port>` peers, `--agent-socket`), which are
//! writable; `--console-socket` is bound as the one socket. /dev/null and
//! the KVM device are made fresh (mknod), the latter owned by the jail's
//! user, so the host's node needs no change of owner. `plan` computes all
//! of it from the arguments alone.
//!
//! # The steps
//!
//! 1. Before the fork, still in the host's namespaces: check that DIR is
//!    an empty directory, work out the plan, create missing `--serial` and
//!    `--log` files (owned by the jail's user), and look up the device
//!    numbers and the sources.
//! 2. `unshare(CLONE_NEWPID)` and fork: a new pid namespace only takes
//!    children (pid_namespaces(7)). The parent stays outside, in every
//!    namespace of the host, as a [`Waiter`]: its pid is the one the caller
//!    knows, so it passes SIGTERM and SIGINT on and ends as the child
//!    ended. The child, pid 1 of the new namespace, gets SIGKILL when the
//!    parent dies (PR_SET_PDEATHSIG), so SIGKILL of the outer pid still
//!    ends the VM.
//! 3. The child ([`setup`]): new mount, IPC, UTS and network namespaces;
//!    every mount private; a tmpfs on DIR holding the bind mounts and
//!    devices; pivot_root into it and detach the host's root; the tmpfs
//!    read-only; hostname `husk`; rlimits; no_new_privs; the jail's
//!    group and user; no capability in any set.
//!
//! The seccomp filters come later, each thread installing its own (see
//! the seccomp module): the jail needs nothing they forbid.
//!
//! # Being pid 1
//!
//! The kernel delivers no signal to a namespace's init for which it has
//! no handler, except SIGKILL and SIGSTOP from an ancestor namespace
//! (pid_namespaces(7)). husk-vmm keeps SIGTERM and SIGINT blocked and
//! reads them from a signalfd, and a blocked signal is never discarded
//! (kernel/signal.c, `sig_ignored`), so the waiter's forwarded signals
//! arrive. Signals that would end an unjailed husk-vmm by their default
//! action (SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2) end the jailed one with
//! SIGKILL, and the waiter by the signal itself.
//!
//! # What the caller provides
//!
//! With `--jail-uid`/`--jail-gid` that user must be able to read the kernel,
//! initrd and read-only disks, read and write the writable disks, create
//! files in the socket directories, and write existing `--serial` and
//! `--log` files (the jail creates missing ones for it). Nothing else: the
//! KVM device is the jail's own, and the console socket is connected
//! before the jail (main.rs), as the caller's user.
//!
//! # Not in the jail
//!
//! /proc: `--timings` prints no memory report under `--jail`.

pub mod plan;
pub mod setup;
pub mod sys;

use std::fs::{self, OpenOptions};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub use self::plan::{Access, BindKind, BindMount, JailPlan};
use self::setup::HostFacts;
use self::sys::{ChildEnd, Fork, JailSyscalls, LinuxSyscalls};
use crate::config::VmConfig;
use crate::sandbox::SandboxConfig;

/// `--jail-fd-limit` when not given.
pub const DEFAULT_FD_LIMIT: u64 = 256;
/// Fewer open files than this and husk-vmm fails in ways that are hard to
/// read (its devices' eventfds, the sandbox's sockets).
pub const MIN_FD_LIMIT: u64 = 64;

/// Signals the waiter passes on: the jailed husk-vmm handles them by
/// tearing the VM down.
const FORWARDED_SIGNALS: [libc::c_int; 2] = [libc::SIGTERM, libc::SIGINT];
/// Signals whose default action ends an unjailed husk-vmm. The jailed one,
/// pid 1 of its namespace, would not get them (pid_namespaces(7)); the
/// waiter ends it with SIGKILL and dies of the signal itself.
const FATAL_SIGNALS: [libc::c_int; 4] = [libc::SIGHUP, libc::SIGQUIT, libc::SIGUSR1, libc::SIGUSR2];
/// Every signal the waiter waits for.
const WAITER_SIGNALS: [libc::c_int; 7] = [
    libc::SIGCHLD,
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// The user and group the jailed husk-vmm runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JailUser {
    pub uid: u32,
    pub gid: u32,
}

/// `--jail DIR`, `--jail-uid`/`--jail-gid`, `--jail-fd-limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JailConfig {
    /// An existing, empty directory: the jail's root.
    pub root: PathBuf,
    /// Who to run as; None keeps the user (root, without capabilities).
    pub user: Option<JailUser>,
    /// RLIMIT_NOFILE.
    pub fd_limit: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum JailError {
    #[error("the jail directory {} does not exist; --jail needs an existing empty directory", path.display())]
    RootMissing { path: PathBuf },
    #[error("look at the jail directory {}", path.display())]
    RootUnusable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the jail directory {} is not a directory", path.display())]
    RootNotDirectory { path: PathBuf },
    #[error("the jail directory {} is not empty; give --jail an empty directory", path.display())]
    RootNotEmpty { path: PathBuf },
    #[error("--jail needs absolute paths: the {what} {} is relative", path.display())]
    RelativePath { what: &'static str, path: PathBuf },
    #[error("--jail needs paths without `..`: the {what} {}", path.display())]
    DotDotPath { what: &'static str, path: PathBuf },
    #[error(
        "the {what} {} is directly in /: the jail would have to hold the host's whole root; \
         put it in a directory of its own", path.display()
    )]
    SocketInRootDirectory { what: &'static str, path: PathBuf },
    #[error("the {what} {} is inside the jail directory {}, which the jail hides; keep them apart", path.display(), root.display())]
    OverlapsJail {
        what: &'static str,
        path: PathBuf,
        root: PathBuf,
    },
    #[error("the {what} {} is where the jail makes its own {}", path.display(), device.display())]
    ClashesWithJailDevice {
        what: &'static str,
        path: PathBuf,
        device: PathBuf,
    },
    #[error("{} is both the {file} (a file) and the {directory}", path.display())]
    FileAndDirectory {
        file: &'static str,
        directory: &'static str,
        path: PathBuf,
    },
    #[error("find the {what} {} to bind into the jail", path.display())]
    Source {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the {what} {} must be {expected} to be bound into the jail", path.display())]
    SourceKind {
        what: &'static str,
        path: PathBuf,
        expected: &'static str,
    },
    #[error("look at the KVM device {}", path.display())]
    KvmDevice {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the KVM device {} is not a character device", path.display())]
    KvmNotADevice { path: PathBuf },
    #[error("look at the host's /dev/null")]
    NullDevice(#[source] io::Error),
    #[error("create the {what} {} for the jail", path.display())]
    CreateFile {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("give the {what} {} to the jail's user", path.display())]
    OwnFile {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("create the pipe that tells the jailed process its parent is alive")]
    Pipe(#[source] io::Error),
    #[error("block the signals the jail's waiter handles")]
    BlockSignals(#[source] io::Error),
    #[error("create the jail's pid namespace")]
    UnsharePid(#[source] io::Error),
    #[error("fork the jailed process")]
    Fork(#[source] io::Error),
    #[error("create the jail's mount, IPC, UTS and network namespaces")]
    Unshare(#[source] io::Error),
    #[error("make the jail's mounts private")]
    MakeMountsPrivate(#[source] io::Error),
    #[error("mount the jail's tmpfs on {}", path.display())]
    MountRoot {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("make the mount point for {} in the jail", path.display())]
    MountPoint {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("bind the {what} {} into the jail", path.display())]
    Bind {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("set the mount flags of the {what} {} in the jail", path.display())]
    Remount {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("make the device node {} in the jail", path.display())]
    DeviceNode {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("mount a devpts instance on {} in the jail", path.display())]
    Devpts {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("pivot into the jail directory {}", path.display())]
    PivotRoot {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("detach the host's root from the jail")]
    DetachOldRoot(#[source] io::Error),
    #[error("make the jail's root read-only")]
    SealRoot(#[source] io::Error),
    #[error("set the jail's hostname")]
    Hostname(#[source] io::Error),
    #[error("set the jail's {resource}")]
    Rlimit {
        resource: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("set no_new_privs in the jail")]
    NoNewPrivs(#[source] io::Error),
    #[error("drop the supplementary groups in the jail")]
    Groups(#[source] io::Error),
    #[error("switch to the jail's gid {gid}")]
    Gid {
        gid: u32,
        #[source]
        source: io::Error,
    },
    #[error("switch to the jail's uid {uid}")]
    Uid {
        uid: u32,
        #[source]
        source: io::Error,
    },
    #[error("{step} of the jailed process's capabilities")]
    Capabilities {
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("ask for SIGKILL when the jail's waiter dies")]
    ParentDeathSignal(#[source] io::Error),
    #[error("the jail's waiter (the husk-vmm pid the caller knows) ended during the jail's setup")]
    ParentGone,
    #[error("wait for the jailed husk-vmm (pid {pid} outside its namespace)")]
    Wait {
        pid: libc::pid_t,
        #[source]
        source: io::Error,
    },
    #[error("pass signal {signal} on to the jailed husk-vmm (pid {pid} outside its namespace)")]
    Forward {
        signal: libc::c_int,
        pid: libc::pid_t,
        #[source]
        source: io::Error,
    },
}

/// Which side of the fork [`enter`] returned on.
pub enum Entered {
    /// This process is the jailed one: build and run the VM.
    Jailed,
    /// This process stayed outside: wait for the jailed one.
    Outside(Waiter),
}

/// Shuts husk-vmm in as `config` says, for a VM configured as `vm` (with
/// sandbox mode `sandbox` and messages to `log`). Call it before any
/// thread starts: it forks, and only the calling thread goes on in the
/// child. Returns in both processes; an error in the child is an error of
/// the jailed husk-vmm, and the waiter ends with its status.
pub fn enter(
    config: &JailConfig,
    vm: &VmConfig,
    sandbox: Option<&SandboxConfig>,
    log: Option<&Path>,
) -> Result<Entered, JailError> {
    let config = JailConfig {
        root: check_root(&config.root)?,
        ..config.clone()
    };
    let plan = JailPlan::new(&config.root, vm, sandbox, log)?;
    create_missing_files(&plan, config.user)?;
    let facts = inspect_host(&plan)?;

    let (parent_life, parent_life_writer) = sys::parent_life_pipe().map_err(JailError::Pipe)?;
    // Blocked before the fork: a SIGCHLD that came before the waiter waits
    // would be discarded (its default action is to ignore it).
    let saved_mask = sys::block_signals(&WAITER_SIGNALS).map_err(JailError::BlockSignals)?;
    LinuxSyscalls
        .unshare(libc::CLONE_NEWPID)
        .map_err(JailError::UnsharePid)?;
    match sys::fork().map_err(JailError::Fork)? {
        Fork::Parent { child } => Ok(Entered::Outside(Waiter {
            child,
            _alive: parent_life_writer,
        })),
        Fork::Child => {
            LinuxSyscalls
                .set_parent_death_signal(libc::SIGKILL)
                .map_err(JailError::ParentDeathSignal)?;
            drop(parent_life_writer);
            sys::restore_signal_mask(&saved_mask).map_err(JailError::BlockSignals)?;
            setup::confine(&LinuxSyscalls, &config, &plan, &facts)?;
            // The parent may have died before the death signal was (last)
            // set: then nobody would ever send it.
            if !sys::writer_alive(&parent_life).map_err(JailError::ParentDeathSignal)? {
                return Err(JailError::ParentGone);
            }
            Ok(Entered::Jailed)
        }
    }
}

/// The jail directory, resolved: it must exist, be a directory, and be
/// empty (the tmpfs mounted on it hides whatever is there, and a
/// non-empty one is likely the wrong directory).
fn check_root(root: &Path) -> Result<PathBuf, JailError> {
    let unusable = |source: io::Error| match source.kind() {
        io::ErrorKind::NotFound => JailError::RootMissing {
            path: root.to_owned(),
        },
        _ => JailError::RootUnusable {
            path: root.to_owned(),
            source,
        },
    };
    let resolved = fs::canonicalize(root).map_err(unusable)?;
    if !fs::metadata(&resolved).map_err(unusable)?.is_dir() {
        return Err(JailError::RootNotDirectory {
            path: root.to_owned(),
        });
    }
    if fs::read_dir(&resolved).map_err(unusable)?.next().is_some() {
        return Err(JailError::RootNotEmpty {
            path: root.to_owned(),
        });
    }
    Ok(resolved)
}

/// Creates the `--serial` and `--log` files that do not exist yet, as
/// husk-vmm itself would have (mode 0666 less the umask), owned by the
/// jail's user: a bind mount needs its source.
fn create_missing_files(plan: &JailPlan, user: Option<JailUser>) -> Result<(), JailError> {
    for bind in plan.binds.iter().filter(|bind| bind.create) {
        let created = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o666)
            .open(&bind.path);
        match created {
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(source) => {
                return Err(JailError::CreateFile {
                    what: bind.what,
                    path: bind.path.clone(),
                    source,
                })
            }
        }
        if let Some(user) = user {
            std::os::unix::fs::chown(&bind.path, Some(user.uid), Some(user.gid)).map_err(
                |source| JailError::OwnFile {
                    what: bind.what,
                    path: bind.path.clone(),
                    source,
                },
            )?;
        }
    }
    Ok(())
}

/// The device numbers to make nodes with, and which sources are devices;
/// every source must exist and be of the kind its mount point will be.
fn inspect_host(plan: &JailPlan) -> Result<HostFacts, JailError> {
    let kvm = fs::metadata(&plan.kvm).map_err(|source| JailError::KvmDevice {
        path: plan.kvm.clone(),
        source,
    })?;
    if !kvm.file_type().is_char_device() {
        return Err(JailError::KvmNotADevice {
            path: plan.kvm.clone(),
        });
    }
    let null = fs::metadata(plan::DEV_NULL).map_err(JailError::NullDevice)?;
    let mut facts = HostFacts {
        kvm_device: kvm.rdev(),
        null_device: null.rdev(),
        ..HostFacts::default()
    };
    for bind in &plan.binds {
        let metadata = fs::metadata(&bind.path).map_err(|source| JailError::Source {
            what: bind.what,
            path: bind.path.clone(),
            source,
        })?;
        let file_type = metadata.file_type();
        match (bind.kind, file_type.is_dir()) {
            (BindKind::Directory, false) => {
                return Err(JailError::SourceKind {
                    what: bind.what,
                    path: bind.path.clone(),
                    expected: "a directory",
                })
            }
            (BindKind::File, true) => {
                return Err(JailError::SourceKind {
                    what: bind.what,
                    path: bind.path.clone(),
                    expected: "a file, not a directory,",
                })
            }
            _ => {}
        }
        if file_type.is_block_device() || file_type.is_char_device() {
            facts.device_sources.insert(bind.path.clone());
        }
    }
    Ok(facts)
}

/// The process outside the jail: it holds the pid the caller knows.
pub struct Waiter {
    child: libc::pid_t,
    /// Open for as long as this process lives: the jailed process reads
    /// end of file on the other end once it is gone.
    _alive: OwnedFd,
}

/// How the waiter ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// With this exit status, the jailed husk-vmm's.
    Exit(u8),
    /// By this signal: the one that killed the jailed husk-vmm, or one
    /// that would have ended an unjailed husk-vmm.
    Signal(libc::c_int),
}

impl Waiter {
    /// The jailed process's pid, in the waiter's namespace.
    pub fn child(&self) -> libc::pid_t {
        self.child
    }

    /// Passes signals on until the jailed husk-vmm has ended; returns how
    /// the waiter should end.
    pub fn wait(self) -> Result<Ending, JailError> {
        let waited = |source| JailError::Wait {
            pid: self.child,
            source,
        };
        loop {
            match sys::wait_child(self.child, false).map_err(waited)? {
                Some(ChildEnd::Exited(status)) => return Ok(Ending::Exit(status as u8)),
                Some(ChildEnd::Killed(signal)) => return Ok(Ending::Signal(signal)),
                None => {}
            }
            let signal = sys::wait_for_signal(&WAITER_SIGNALS).map_err(waited)?;
            if FORWARDED_SIGNALS.contains(&signal) {
                // A child that has ended is a zombie until reaped, and
                // kill(2) on a zombie succeeds: the pid cannot be reused.
                sys::send_signal(self.child, signal).map_err(|source| JailError::Forward {
                    signal,
                    pid: self.child,
                    source,
                })?;
            } else if FATAL_SIGNALS.contains(&signal) {
                let _ = sys::send_signal(self.child, libc::SIGKILL);
                sys::wait_child(self.child, true).map_err(waited)?;
                return Ok(Ending::Signal(signal));
            }
            // SIGCHLD: reaped at the top of the loop.
        }
    }
}

impl Ending {
    /// Ends this process as the jailed one ended: by the same signal (no
    /// core dump), or with the exit code returned here. A signal that
    /// cannot end a process comes back as 128+N.
    pub fn finish(self) -> ExitCode {
        match self {
            Ending::Exit(status) => ExitCode::from(status),
            Ending::Signal(signal) => {
                sys::die_of(signal);
                ExitCode::from(128u8.saturating_add(signal as u8))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use vmm_sys_util::tempdir::TempDir;

    use super::*;

    #[test]
    fn the_jail_directory_must_exist_be_a_directory_and_be_empty() {
        let scratch = TempDir::new_with_prefix("/tmp/husk-jail-unit").unwrap();
        let empty = scratch.as_path().join("empty");
        fs::create_dir(&empty).unwrap();
        assert_eq!(
            check_root(&empty).unwrap(),
            fs::canonicalize(&empty).unwrap()
        );

        let missing = scratch.as_path().join("missing");
        let error = check_root(&missing).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "the jail directory {} does not exist; --jail needs an existing empty directory",
                missing.display()
            )
        );

        let file = scratch.as_path().join("file");
        fs::write(&file, "").unwrap();
        assert!(matches!(
            check_root(&file),
            Err(JailError::RootNotDirectory { .. })
        ));

        fs::write(empty.join("leftover"), "").unwrap();
        let error = check_root(&empty).unwrap_err();
        assert!(error.to_string().contains("is not empty"), "{error}");
    }

    #[test]
    fn files_husk_vmm_would_create_are_made_for_the_jail_user() {
        let scratch = TempDir::new_with_prefix("/tmp/husk-jail-unit").unwrap();
        let console = scratch.as_path().join("console.log");
        let log = scratch.as_path().join("vmm.log");
        fs::write(&log, "earlier run\n").unwrap();
        let mut vm = VmConfig::new("/k".into());
        vm.serial = crate::config::SerialSink::File(console.clone());
        let plan = JailPlan::new(Path::new("/nonexistent-jail"), &vm, None, Some(&log)).unwrap();
        let user = JailUser {
            uid: 65534,
            gid: 65533,
        };
        create_missing_files(&plan, Some(user)).unwrap();
        let made = fs::metadata(&console).unwrap();
        assert_eq!((made.uid(), made.gid(), made.len()), (65534, 65533, 0));
        // An existing file is left as it is, contents and owner.
        let kept = fs::metadata(&log).unwrap();
        assert_eq!(kept.uid(), 0);
        assert_eq!(fs::read_to_string(&log).unwrap(), "earlier run\n");
    }

    #[test]
    fn sources_must_exist_and_be_of_the_right_kind() {
        let scratch = TempDir::new_with_prefix("/tmp/husk-jail-unit").unwrap();
        let mut vm = VmConfig::new(scratch.as_path().to_owned());
        let plan = JailPlan::new(Path::new("/nonexistent-jail"), &vm, None, None).unwrap();
        let error = inspect_host(&plan).unwrap_err();
        assert!(
            matches!(error, JailError::SourceKind { what: "kernel", .. }),
            "{error}"
        );

        vm.kernel = scratch.as_path().join("vmlinux");
        let plan = JailPlan::new(Path::new("/nonexistent-jail"), &vm, None, None).unwrap();
        let error = inspect_host(&plan).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "find the kernel {} to bind into the jail",
                vm.kernel.display()
            )
        );

        fs::write(&vm.kernel, "").unwrap();
        vm.kvm_path = vm.kernel.clone();
        vm.kernel = "/proc/self/exe".into();
        let plan = JailPlan::new(Path::new("/nonexistent-jail"), &vm, None, None).unwrap();
        assert!(matches!(
            inspect_host(&plan),
            Err(JailError::KvmNotADevice { .. })
        ));
    }
}
