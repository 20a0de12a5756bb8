//! The container process's own settings (config.md "process", and the
//! hostname, domainname and sysctl fields): everything applied to the init
//! after its root filesystem is ready and before it execs.

pub mod capabilities;
pub mod exec;
pub mod user;

use std::io;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{PosixRlimit, PosixRlimitType, Process};

use crate::engine::seccomp::CompiledSeccomp;
use crate::engine::syscall::Syscall;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("{step}")]
    Capabilities {
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("process.user.username: {name:?}: {why}")]
    UnknownUser { name: String, why: &'static str },
    #[error("process.user: read {path}: {reason}")]
    UserDatabase { path: &'static str, reason: String },
    #[error("process.user: {call}({id})")]
    SetUser {
        call: &'static str,
        id: String,
        #[source]
        source: io::Error,
    },
    #[error("process.user: give stdio to the container user")]
    Stdio {
        #[source]
        source: io::Error,
    },
    #[error("process.cwd: create {}", path.display())]
    CreateCwd {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("process.cwd: chdir to {}", path.display())]
    Chdir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("process.rlimits[{index}]: setrlimit {name} soft {soft} hard {hard}")]
    Rlimit {
        index: usize,
        name: String,
        soft: u64,
        hard: u64,
        #[source]
        source: io::Error,
    },
    #[error("process.noNewPrivileges: prctl(PR_SET_NO_NEW_PRIVS)")]
    NoNewPrivileges {
        #[source]
        source: io::Error,
    },
    #[error("process.oomScoreAdj: write {value} to /proc/self/oom_score_adj")]
    OomScoreAdj {
        value: i32,
        #[source]
        source: io::Error,
    },
    #[error("hostname: sethostname({name:?})")]
    Hostname {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("domainname: setdomainname({name:?})")]
    Domainname {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("linux.sysctl.{name}: write {}", path.display())]
    Sysctl {
        name: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("linux.seccomp: install the filter")]
    Seccomp {
        #[source]
        source: io::Error,
    },
    #[error("process.apparmorProfile: set {profile:?} for the exec")]
    Apparmor {
        profile: String,
        #[source]
        source: io::Error,
    },
}

/// The RLIMIT_* number of a resource (getrlimit(2)).
pub fn rlimit_resource(kind: PosixRlimitType) -> u32 {
    match kind {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

/// Applies `process.rlimits` in order. A hard limit above the current one
/// needs CAP_SYS_RESOURCE in the initial user namespace; the error names the
/// entry so the caller can lower it.
pub fn apply_rlimits(syscall: &dyn Syscall, rlimits: &[PosixRlimit]) -> Result<(), ProcessError> {
    for (index, rlimit) in rlimits.iter().enumerate() {
        syscall
            .setrlimit(rlimit_resource(rlimit.typ()), rlimit.soft(), rlimit.hard())
            .map_err(|source| ProcessError::Rlimit {
                index,
                name: rlimit.typ().to_string(),
                soft: rlimit.soft(),
                hard: rlimit.hard(),
                source,
            })?;
    }
    Ok(())
}

/// Writes `process.oomScoreAdj`. Lowering it needs CAP_SYS_RESOURCE, so it
/// is written before any user namespace is entered (runc writes it from
/// nsexec's first stage for the same reason).
pub fn apply_oom_score_adj(syscall: &dyn Syscall, value: i32) -> Result<(), ProcessError> {
    syscall
        .write_file(
            Path::new("/proc/self/oom_score_adj"),
            value.to_string().as_bytes(),
        )
        .map_err(|source| ProcessError::OomScoreAdj { value, source })
}

/// Sets `hostname` and `domainname` in the container's UTS namespace.
pub fn apply_uts(
    syscall: &dyn Syscall,
    hostname: Option<&str>,
    domainname: Option<&str>,
) -> Result<(), ProcessError> {
    if let Some(name) = hostname.filter(|name| !name.is_empty()) {
        syscall
            .sethostname(name)
            .map_err(|source| ProcessError::Hostname {
                name: name.to_owned(),
                source,
            })?;
    }
    if let Some(name) = domainname.filter(|name| !name.is_empty()) {
        syscall
            .setdomainname(name)
            .map_err(|source| ProcessError::Domainname {
                name: name.to_owned(),
                source,
            })?;
    }
    Ok(())
}

/// Writes each `linux.sysctl` entry under /proc/sys (in the container's
/// procfs, so it lands in the container's namespaces; load_bundle refused
/// the ones that are not namespaced). Sorted by name, so the order is the
/// same on every run.
pub fn apply_sysctls<'a>(
    syscall: &dyn Syscall,
    sysctls: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Result<(), ProcessError> {
    let mut sysctls: Vec<_> = sysctls.into_iter().collect();
    sysctls.sort();
    for (name, value) in sysctls {
        // sysctl(8): "kernel.msgmax" is /proc/sys/kernel/msgmax; names may
        // also use "/" already.
        let path = Path::new("/proc/sys").join(name.replace('.', "/"));
        syscall
            .write_file(&path, value.as_bytes())
            .map_err(|source| ProcessError::Sysctl {
                name: name.clone(),
                path,
                source,
            })?;
    }
    Ok(())
}

/// Asks AppArmor to confine the process with `process.apparmorProfile`
/// from its exec on (the "exec" attribute of /proc/self/attr, as runc's
/// apparmor package). Nothing to do when the profile is unset or empty.
pub fn apply_apparmor_profile(
    syscall: &dyn Syscall,
    process: &Process,
) -> Result<(), ProcessError> {
    let Some(profile) = process
        .apparmor_profile()
        .as_deref()
        .filter(|profile| !profile.is_empty())
    else {
        return Ok(());
    };
    let request = format!("exec {profile}");
    let modern = Path::new("/proc/self/attr/apparmor/exec");
    let result = match syscall.write_file(modern, request.as_bytes()) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            syscall.write_file(Path::new("/proc/self/attr/exec"), request.as_bytes())
        }
        other => other,
    };
    result.map_err(|source| ProcessError::Apparmor {
        profile: profile.to_owned(),
        source,
    })
}

/// The process to exec: its arguments, its environment (with HOME) and the
/// working directory it is already in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedProcess {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: PathBuf,
}

/// The last steps before the exec, the same for a container's init
/// (create) and for a process exec'd into it: runc's no_new_privs, rlimits
/// and privileged seccomp (standard_init_linux.go, setns_init_linux.go),
/// then its finalizeNamespace: the bounding set while still root, the
/// permitted set kept across the uid change, the user, the working
/// directory, the final capability sets.
///
/// `rlimits` are the limits still to set here (exec sets them before it
/// enters the user namespace). With `process.noNewPrivileges` the seccomp
/// filter is left for the caller to install right before execve.
pub fn finalize(
    syscall: &dyn Syscall,
    process: &Process,
    rlimits: &[PosixRlimit],
    seccomp: Option<&CompiledSeccomp>,
) -> Result<PreparedProcess, ProcessError> {
    // The user database is read now, before seccomp and before the process
    // loses the right to read it.
    let user = user::resolve(syscall, process.user())?;
    let no_new_privileges = process.no_new_privileges() == Some(true);
    if no_new_privileges {
        syscall
            .set_no_new_privileges()
            .map_err(|source| ProcessError::NoNewPrivileges { source })?;
    }
    apply_rlimits(syscall, rlimits)?;
    if let Some(seccomp) = seccomp.filter(|_| !no_new_privileges) {
        // Without no_new_privs, installing a filter needs CAP_SYS_ADMIN:
        // it goes on before the capabilities are dropped (runc).
        syscall
            .install_seccomp(&seccomp.program, seccomp.flags)
            .map_err(|source| ProcessError::Seccomp { source })?;
    }

    let cwd = process.cwd().clone();
    let capability_plan = capabilities::CapabilityPlan::from_spec(process.capabilities().as_ref());
    capabilities::drop_bounding(syscall, &capability_plan)?;
    let keep_capabilities = |keep| {
        syscall
            .set_keep_capabilities(keep)
            .map_err(|source| ProcessError::Capabilities {
                step: "prctl(PR_SET_KEEPCAPS)",
                source,
            })
    };
    keep_capabilities(true)?;
    syscall
        .give_stdio_to(user.uid)
        .map_err(|source| ProcessError::Stdio { source })?;
    // chdir before the user change when it can (the runtime's root may
    // reach a directory the user cannot); if permission is what fails, try
    // again as the user.
    let chdir_later = match syscall.chdir(&cwd) {
        Ok(()) => false,
        Err(error) if matches!(error.raw_os_error(), Some(libc::EACCES | libc::EPERM)) => true,
        Err(source) => return Err(ProcessError::Chdir { path: cwd, source }),
    };
    user::switch_to(syscall, &user)?;
    if chdir_later {
        syscall.chdir(&cwd).map_err(|source| ProcessError::Chdir {
            path: cwd.clone(),
            source,
        })?;
    }
    keep_capabilities(false)?;
    capabilities::apply(syscall, &capability_plan)?;

    Ok(PreparedProcess {
        args: process.args().clone().unwrap_or_default(),
        env: environment(process.env().as_deref().unwrap_or_default(), &user.home),
        cwd,
    })
}

/// `process.env` plus HOME when it does not set one (runc adds it from the
/// user's passwd entry).
pub fn environment(env: &[String], home: &str) -> Vec<String> {
    let mut env = env.to_vec();
    if exec::env_value(&env, "HOME").is_none() {
        env.push(format!("HOME={home}"));
    }
    env
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use oci_spec::runtime::PosixRlimitBuilder;

    use super::*;
    use crate::engine::syscall::{Call, RecordingSyscall};

    #[test]
    fn rlimits_are_set_in_order_and_failures_name_the_entry() {
        let rlimits = vec![
            PosixRlimitBuilder::default()
                .typ(PosixRlimitType::RlimitNofile)
                .soft(1000u64)
                .hard(1000u64)
                .build()
                .unwrap(),
            PosixRlimitBuilder::default()
                .typ(PosixRlimitType::RlimitNproc)
                .soft(50u64)
                .hard(60u64)
                .build()
                .unwrap(),
        ];
        let syscall = RecordingSyscall::new();
        apply_rlimits(&syscall, &rlimits).unwrap();
        assert_eq!(
            syscall.calls(),
            vec![
                Call::Setrlimit {
                    resource: libc::RLIMIT_NOFILE,
                    soft: 1000,
                    hard: 1000
                },
                Call::Setrlimit {
                    resource: libc::RLIMIT_NPROC,
                    soft: 50,
                    hard: 60
                },
            ]
        );
        let failing = RecordingSyscall::new()
            .failing(|call| matches!(call, Call::Setrlimit { .. }), libc::EPERM);
        let error = apply_rlimits(&failing, &rlimits).unwrap_err();
        assert_eq!(
            error.to_string(),
            "process.rlimits[0]: setrlimit RLIMIT_NOFILE soft 1000 hard 1000"
        );
    }

    #[test]
    fn sysctls_become_proc_sys_paths() {
        let sysctls = HashMap::from([
            ("kernel.shmmax".to_string(), "65536".to_string()),
            ("fs.mqueue.msg_max".to_string(), "20".to_string()),
        ]);
        let syscall = RecordingSyscall::new();
        apply_sysctls(&syscall, &sysctls).unwrap();
        assert_eq!(
            syscall.calls(),
            vec![
                Call::WriteFile {
                    path: "/proc/sys/fs/mqueue/msg_max".into(),
                    contents: "20".into()
                },
                Call::WriteFile {
                    path: "/proc/sys/kernel/shmmax".into(),
                    contents: "65536".into()
                },
            ]
        );
    }

    #[test]
    fn home_is_added_only_when_missing() {
        let env = vec!["PATH=/bin".to_string()];
        assert_eq!(environment(&env, "/root"), vec!["PATH=/bin", "HOME=/root"]);
        let env = vec!["HOME=/data".to_string()];
        assert_eq!(environment(&env, "/root"), vec!["HOME=/data"]);
    }
}
