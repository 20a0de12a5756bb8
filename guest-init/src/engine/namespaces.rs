//! Which namespaces a container gets and in what order they are entered
//! (config-linux.md "Namespaces").
//!
//! The order, as runc's nsexec does it:
//! 1. Namespaces with a `path` are opened first, then joined with setns(2)
//!    in the order user, ipc, uts, net, pid, mnt, cgroup, time: the user
//!    namespace first so that its capabilities govern the other joins, the
//!    mount namespace late because joining it changes what the paths mean.
//! 2. A new user namespace is unshared alone, before anything else is
//!    created, so that every later namespace is owned by it; the parent then
//!    writes the id maps (user_namespaces(7): only a process outside the
//!    namespace with CAP_SETUID/CAP_SETGID in the parent namespace may map
//!    arbitrary ids), and the child becomes root in it.
//! 3. The other new namespaces (mount, uts, ipc, net, pid, time) are
//!    unshared together. A new or joined pid or time namespace applies only
//!    to children (pid_namespaces(7), time_namespaces(7)), so the container
//!    init is then forked afresh and becomes PID 1.
//! 4. The cgroup namespace is unshared last, by the init, after the parent
//!    put it in the container's cgroup, so that the cgroup becomes the root
//!    of what the container sees (cgroup_namespaces(7)).
//!
//! A process exec'd into a running container joins every namespace the
//! container lists through its init's /proc/<pid>/ns files, in the same
//! join order (see [`container_namespaces`]).

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType};

use crate::engine::process::user;
use crate::engine::spec::{namespace_name, proc_ns_name, Bundle};
use crate::engine::syscall::{describe, NamespaceFile, Syscall};

/// runc's join order (libcontainer/configs/namespaces_linux.go,
/// NamespaceTypes: "Keep user NS always first, don't move it").
const JOIN_ORDER: [LinuxNamespaceType; 8] = [
    LinuxNamespaceType::User,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Mount,
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::Time,
];

/// The CLONE_NEW* flag of a namespace type (clone(2)).
pub fn clone_flag(kind: LinuxNamespaceType) -> i32 {
    match kind {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => libc::CLONE_NEWTIME,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("open the {kind} namespace {} (linux.namespaces)", path.display())]
    Open {
        kind: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("join the {kind} namespace {} (setns)", path.display())]
    Join {
        kind: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("create the {what} namespace (unshare)")]
    Unshare {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("become root in the container's user namespace ({call})")]
    BecomeRoot {
        call: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("write {} for linux.{field}: {reason}", path.display())]
    WriteIdMap {
        path: PathBuf,
        field: &'static str,
        reason: String,
    },
}

/// The namespace work a container needs, taken from `linux.namespaces`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespacePlan {
    /// Namespaces to join, already in join order.
    pub to_join: Vec<(LinuxNamespaceType, PathBuf)>,
    /// A new user namespace is created.
    pub new_user: bool,
    /// CLONE_NEW* flags of the new namespaces created together (all but
    /// user and cgroup).
    pub unshare_flags: i32,
    /// A new cgroup namespace is created by the init.
    pub new_cgroup: bool,
    /// The init must be a fresh child of the process that entered the
    /// namespaces (pid or time namespace created or joined).
    pub init_needs_fork: bool,
}

impl NamespacePlan {
    pub fn from_bundle(bundle: &Bundle) -> Self {
        let mut to_join = Vec::new();
        let mut new_user = false;
        let mut unshare_flags = 0;
        let mut new_cgroup = false;
        let mut init_needs_fork = false;
        for kind in JOIN_ORDER {
            let Some(namespace) = bundle.namespaces().iter().find(|ns| ns.typ() == kind) else {
                continue;
            };
            if matches!(kind, LinuxNamespaceType::Pid | LinuxNamespaceType::Time) {
                init_needs_fork = true;
            }
            match namespace.path() {
                Some(path) => to_join.push((kind, path.clone())),
                None => match kind {
                    LinuxNamespaceType::User => new_user = true,
                    LinuxNamespaceType::Cgroup => new_cgroup = true,
                    other => unshare_flags |= clone_flag(other),
                },
            }
        }
        Self {
            to_join,
            new_user,
            unshare_flags,
            new_cgroup,
            init_needs_fork,
        }
    }

    /// Opens every namespace to join, before any is joined.
    pub fn open_joined(&self) -> Result<Vec<NamespaceFile>, NamespaceError> {
        open(&self.to_join)
    }
}

/// Opens namespace files, every one before any is joined.
pub fn open(
    namespaces: &[(LinuxNamespaceType, PathBuf)],
) -> Result<Vec<NamespaceFile>, NamespaceError> {
    namespaces
        .iter()
        .map(|(kind, path)| {
            let file = File::open(path).map_err(|source| NamespaceError::Open {
                kind: namespace_name(*kind),
                path: path.clone(),
                source,
            })?;
            Ok(NamespaceFile {
                kind: *kind,
                path: path.clone(),
                file,
            })
        })
        .collect()
}

/// The namespaces of a running container, in join order: each type the
/// container lists, at `/proc/<init_pid>/ns/<name>`, which is the init's
/// namespace whether it created it or joined it by path. What a process
/// exec'd into the container joins (runc exec takes the same paths from the
/// init's state).
pub fn container_namespaces(bundle: &Bundle, init_pid: i32) -> Vec<(LinuxNamespaceType, PathBuf)> {
    JOIN_ORDER
        .into_iter()
        .filter(|kind| bundle.has_namespace(*kind))
        .map(|kind| {
            let path = format!("/proc/{init_pid}/ns/{}", proc_ns_name(kind));
            (kind, PathBuf::from(path))
        })
        .collect()
}

/// Whether the calling thread is already in this namespace (a container
/// that joined, say, the host's network namespace by path). Joining it
/// again would be useless, and for a user namespace an error (setns(2),
/// EINVAL).
pub fn is_current(namespace: &NamespaceFile) -> bool {
    let own = Path::new("/proc/thread-self/ns").join(proc_ns_name(namespace.kind));
    match (namespace.file.metadata(), std::fs::metadata(own)) {
        (Ok(target), Ok(own)) => target.dev() == own.dev() && target.ino() == own.ino(),
        _ => false,
    }
}

/// Joins the opened namespaces in order.
pub fn join(syscall: &dyn Syscall, namespaces: &[NamespaceFile]) -> Result<(), NamespaceError> {
    for namespace in namespaces {
        syscall
            .setns(namespace)
            .map_err(|source| NamespaceError::Join {
                kind: namespace_name(namespace.kind),
                path: namespace.path.clone(),
                source,
            })?;
    }
    Ok(())
}

/// Creates the new user namespace (step 2 above, before the maps).
pub fn unshare_user(syscall: &dyn Syscall) -> Result<(), NamespaceError> {
    syscall
        .unshare(libc::CLONE_NEWUSER)
        .map_err(|source| NamespaceError::Unshare {
            what: "user".into(),
            source,
        })
}

/// After the parent wrote the id maps (or after joining the container's
/// user namespace): root in it, with no supplementary groups (runc nsexec,
/// stage 1 and 2), leaving the groups alone where setgroups(2) is denied.
pub fn become_root_in_user_namespace(syscall: &dyn Syscall) -> Result<(), NamespaceError> {
    let become_root = |call: &'static str, result: std::io::Result<()>| {
        result.map_err(|source| NamespaceError::BecomeRoot { call, source })
    };
    become_root("setresgid", syscall.setresgid(0))?;
    if !user::setgroups_denied(syscall) {
        become_root("setgroups", syscall.setgroups(&[]))?;
    }
    become_root("setresuid", syscall.setresuid(0))
}

/// Creates the new namespaces other than user and cgroup, in one call.
pub fn unshare_others(syscall: &dyn Syscall, plan: &NamespacePlan) -> Result<(), NamespaceError> {
    if plan.unshare_flags == 0 {
        return Ok(());
    }
    syscall
        .unshare(plan.unshare_flags)
        .map_err(|source| NamespaceError::Unshare {
            what: describe_flags(plan.unshare_flags),
            source,
        })
}

/// Creates the cgroup namespace (step 4 above).
pub fn unshare_cgroup(syscall: &dyn Syscall) -> Result<(), NamespaceError> {
    syscall
        .unshare(libc::CLONE_NEWCGROUP)
        .map_err(|source| NamespaceError::Unshare {
            what: "cgroup".into(),
            source,
        })
}

fn describe_flags(flags: i32) -> String {
    JOIN_ORDER
        .iter()
        .filter(|kind| flags & clone_flag(**kind) != 0)
        .map(|kind| namespace_name(*kind))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes `/proc/<pid>/uid_map` and `gid_map` for a child that has just
/// created its user namespace. Runs in the parent, which is outside it.
pub fn write_id_maps(
    pid: i32,
    uid_mappings: &[LinuxIdMapping],
    gid_mappings: &[LinuxIdMapping],
) -> Result<(), NamespaceError> {
    for (file, field, mappings) in [
        ("uid_map", "uidMappings", uid_mappings),
        ("gid_map", "gidMappings", gid_mappings),
    ] {
        let path = Path::new("/proc").join(pid.to_string()).join(file);
        // user_namespaces(7): the whole map in a single write.
        let text: String = mappings
            .iter()
            .map(|mapping| {
                format!(
                    "{} {} {}\n",
                    mapping.container_id(),
                    mapping.host_id(),
                    mapping.size()
                )
            })
            .collect();
        std::fs::write(&path, text).map_err(|error| NamespaceError::WriteIdMap {
            path,
            field,
            reason: describe(&error),
        })?;
    }
    Ok(())
}

/// The host id that `container_id` maps to, or None if it is unmapped.
pub fn host_id(mappings: &[LinuxIdMapping], container_id: u32) -> Option<u32> {
    mappings.iter().find_map(|mapping| {
        let offset = container_id.checked_sub(mapping.container_id())?;
        (offset < mapping.size()).then(|| mapping.host_id() + offset)
    })
}

#[cfg(test)]
mod tests {
    use oci_spec::runtime::{LinuxIdMappingBuilder, LinuxNamespaceBuilder};

    use super::*;
    use crate::engine::syscall::{Call, RecordingSyscall};

    fn plan_for(namespaces: &[(LinuxNamespaceType, Option<&str>)]) -> NamespacePlan {
        let namespaces = namespaces
            .iter()
            .map(|(kind, path)| {
                let builder = LinuxNamespaceBuilder::default().typ(*kind);
                match path {
                    Some(path) => builder.path(PathBuf::from(path)).build().unwrap(),
                    None => builder.build().unwrap(),
                }
            })
            .collect::<Vec<_>>();
        let mut spec = oci_spec::runtime::Spec::default();
        spec.linux_mut()
            .as_mut()
            .unwrap()
            .set_namespaces(Some(namespaces));
        let bundle = Bundle {
            path: "/b".into(),
            config_path: "/b/config.json".into(),
            rootfs: "/b/rootfs".into(),
            spec,
        };
        NamespacePlan::from_bundle(&bundle)
    }

    #[test]
    fn new_namespaces_are_split_into_user_others_and_cgroup() {
        let plan = plan_for(&[
            (LinuxNamespaceType::Cgroup, None),
            (LinuxNamespaceType::Pid, None),
            (LinuxNamespaceType::Mount, None),
            (LinuxNamespaceType::User, None),
            (LinuxNamespaceType::Network, None),
        ]);
        assert!(plan.new_user);
        assert!(plan.new_cgroup);
        assert!(plan.init_needs_fork);
        assert_eq!(
            plan.unshare_flags,
            libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_NEWNET
        );
        assert!(plan.to_join.is_empty());
    }

    #[test]
    fn joined_namespaces_follow_runc_order_whatever_the_config_order() {
        let plan = plan_for(&[
            (LinuxNamespaceType::Mount, Some("/proc/7/ns/mnt")),
            (LinuxNamespaceType::Network, Some("/proc/7/ns/net")),
            (LinuxNamespaceType::User, Some("/proc/7/ns/user")),
            (LinuxNamespaceType::Ipc, None),
        ]);
        let order: Vec<_> = plan.to_join.iter().map(|(kind, _)| *kind).collect();
        assert_eq!(
            order,
            vec![
                LinuxNamespaceType::User,
                LinuxNamespaceType::Network,
                LinuxNamespaceType::Mount
            ]
        );
        assert!(!plan.new_user);
        assert!(!plan.init_needs_fork, "no pid namespace: no second fork");
        assert_eq!(plan.unshare_flags, libc::CLONE_NEWIPC);
    }

    #[test]
    fn joining_records_setns_in_order() {
        // Real files stand in for namespace files: setns is only recorded.
        let namespaces = vec![
            NamespaceFile {
                kind: LinuxNamespaceType::User,
                path: "/proc/7/ns/user".into(),
                file: File::open("/dev/null").unwrap(),
            },
            NamespaceFile {
                kind: LinuxNamespaceType::Network,
                path: "/proc/7/ns/net".into(),
                file: File::open("/dev/null").unwrap(),
            },
        ];
        let syscall = RecordingSyscall::new();
        join(&syscall, &namespaces).unwrap();
        assert_eq!(
            syscall.calls(),
            vec![
                Call::Setns {
                    kind: LinuxNamespaceType::User,
                    path: "/proc/7/ns/user".into()
                },
                Call::Setns {
                    kind: LinuxNamespaceType::Network,
                    path: "/proc/7/ns/net".into()
                },
            ]
        );
    }

    #[test]
    fn a_failed_unshare_names_the_namespaces() {
        let plan = plan_for(&[
            (LinuxNamespaceType::Mount, None),
            (LinuxNamespaceType::Network, None),
        ]);
        let syscall =
            RecordingSyscall::new().failing(|call| matches!(call, Call::Unshare(_)), libc::EPERM);
        let error = unshare_others(&syscall, &plan).unwrap_err();
        assert_eq!(
            error.to_string(),
            "create the network, mount namespace (unshare)"
        );
    }

    #[test]
    fn opening_a_missing_namespace_path_names_it() {
        let plan = plan_for(&[(
            LinuxNamespaceType::Network,
            Some("/proc/no-such-pid/ns/net"),
        )]);
        let error = plan.open_joined().unwrap_err();
        assert_eq!(
            error.to_string(),
            "open the network namespace /proc/no-such-pid/ns/net (linux.namespaces)"
        );
    }

    #[test]
    fn host_ids_are_found_in_ranges() {
        let mappings = vec![LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id(100_000u32)
            .size(1000u32)
            .build()
            .unwrap()];
        assert_eq!(host_id(&mappings, 0), Some(100_000));
        assert_eq!(host_id(&mappings, 999), Some(100_999));
        assert_eq!(host_id(&mappings, 1000), None);
    }
}
