//! The container's root filesystem, built inside its new mount namespace
//! the way runc builds it (libcontainer/rootfs_linux.go):
//!
//! 1. `/` gets the rootfs propagation (rslave by default, so nothing the
//!    container mounts reaches the host while host mounts still arrive), and
//!    the rootfs is bind-mounted onto itself so that it is a mount point
//!    pivot_root(2) accepts.
//! 2. `mounts` in order, each destination resolved inside the rootfs
//!    without following symlinks out of it; tmpfs and /dev are mounted
//!    writable and made read-only at the end, after the device nodes.
//! 3. /dev: the device nodes, /dev/ptmx, the /proc/self/fd links.
//! 4. pivot_root into the rootfs, the old root detached.
//! 5. After the process-level steps: read-only remounts, `root.readonly`,
//!    `readonlyPaths`, `maskedPaths`.

pub mod cgroup;
mod devices;
pub mod options;
pub mod secure_join;

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::Mount;

use self::cgroup::CgroupMountSource;
use self::options::MountOptions;
use self::secure_join::secure_join;
use crate::engine::spec::{clean_absolute, Bundle};
use crate::engine::syscall::Syscall;

/// Flags runc gives the mounts it adds itself (cgroup v1 tmpfs).
const DEFAULT_MOUNT_FLAGS: u64 = libc::MS_NOEXEC | libc::MS_NOSUID | libc::MS_NODEV;

/// Flags a remount may not drop inside a user namespace (mount(2) EPERM:
/// "locked" flags), taken from the mounted filesystem when a remount fails.
const LOCKED_FLAGS: u64 = libc::MS_RDONLY
    | libc::MS_NOSUID
    | libc::MS_NODEV
    | libc::MS_NOEXEC
    | libc::MS_NOATIME
    | libc::MS_NODIRATIME
    | libc::MS_RELATIME;

/// Files under /proc that may be mount destinations: the ones lxcfs
/// emulates (runc's checkProcMount list).
const PROC_MOUNT_ALLOWED: &[&str] = &[
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
];

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("set the propagation of / (linux.rootfsPropagation)")]
    RootPropagation {
        #[source]
        source: io::Error,
    },
    #[error("bind the rootfs {} onto itself", rootfs.display())]
    BindRootfs {
        rootfs: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{field}: mount {source_name:?} on {}", destination.display())]
    Mount {
        field: String,
        source_name: String,
        destination: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{field}: prepare the mount point {}", destination.display())]
    MountPoint {
        field: String,
        destination: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{field}: bind source {}", path.display())]
    BindSource {
        field: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{field}: {} {problem}", destination.display())]
    Refused {
        field: String,
        destination: PathBuf,
        problem: &'static str,
    },
    #[error("create the device {}", path.display())]
    Device {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("create the link {}", link.display())]
    Symlink {
        link: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("pivot_root into {}", rootfs.display())]
    PivotRoot {
        rootfs: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("point stdio at the container's /dev/null")]
    ReopenDevNull {
        #[source]
        source: io::Error,
    },
    #[error("make {} read-only", path.display())]
    Readonly {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("linux.readonlyPaths: make {} read-only", path.display())]
    ReadonlyPath {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("linux.maskedPaths: mask {}", path.display())]
    MaskedPath {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("root.readonly: remount / read-only")]
    ReadonlyRoot {
        #[source]
        source: io::Error,
    },
}

/// What the root filesystem setup needs besides the bundle.
#[derive(Debug, Clone, Copy)]
pub struct RootfsPlan<'a> {
    pub bundle: &'a Bundle,
    /// What `"type": "cgroup"` mounts show.
    pub cgroup: &'a CgroupMountSource,
    /// Inside a user namespace mknod(2) is refused: device nodes are bound
    /// from the host instead.
    pub in_user_namespace: bool,
    /// Whether the container has a network namespace of its own; without one
    /// sysfs may not be mounted in a user namespace, and /sys is bound.
    pub own_network_namespace: bool,
}

/// What [`prepare`] leaves for the steps after the pivot.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PreparedRootfs {
    /// Container paths mounted writable for now, with their final flags.
    pub readonly_later: Vec<(PathBuf, u64)>,
    /// /dev was built here (not bound from the host).
    pub dev_set_up: bool,
}

/// Steps 1 to 3 of the module docs, in the new mount namespace, before the
/// createContainer hooks and the pivot.
pub fn prepare(syscall: &dyn Syscall, plan: &RootfsPlan) -> Result<PreparedRootfs, RootfsError> {
    let rootfs = &plan.bundle.rootfs;
    prepare_root(syscall, plan)?;
    let mut prepared = PreparedRootfs {
        dev_set_up: needs_dev_setup(plan.bundle.mounts()),
        ..PreparedRootfs::default()
    };
    for (index, mount) in plan.bundle.mounts().iter().enumerate() {
        mount_entry(syscall, plan, index, mount, &mut prepared)?;
    }
    if prepared.dev_set_up {
        let linux = plan.bundle.spec.linux().as_ref();
        let configured = linux
            .and_then(|linux| linux.devices().as_deref())
            .unwrap_or_default();
        let nodes = devices::devices_for(configured);
        devices::create_devices(syscall, rootfs, &nodes, plan.in_user_namespace)?;
        devices::link_ptmx(syscall, rootfs)?;
        devices::link_standard_streams(syscall, rootfs)?;
    }
    Ok(prepared)
}

/// /dev is built by the engine unless config.json binds it from somewhere.
fn needs_dev_setup(mounts: &[Mount]) -> bool {
    !mounts.iter().any(|mount| {
        let is_bind = mount.typ().as_deref() == Some("bind")
            || options::parse(mount.options().as_deref().unwrap_or_default())
                .is_ok_and(|options| options.is_bind());
        is_bind && clean_absolute(mount.destination()).as_deref() == Some(Path::new("/dev"))
    })
}

fn prepare_root(syscall: &dyn Syscall, plan: &RootfsPlan) -> Result<(), RootfsError> {
    let rootfs = &plan.bundle.rootfs;
    let propagation = plan
        .bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|linux| linux.rootfs_propagation().as_deref())
        .and_then(options::parse_propagation)
        .unwrap_or(libc::MS_SLAVE | libc::MS_REC);
    syscall
        .mount(None, Path::new("/"), None, propagation, None)
        .map_err(|source| RootfsError::RootPropagation { source })?;
    if propagation & libc::MS_SHARED != 0 {
        // pivot_root(2) fails (EINVAL) when the new root's parent mount is
        // shared; runc makes that parent private (rootfsParentMountPrivate).
        make_parent_mount_private(syscall, rootfs)?;
    }
    syscall
        .mount(
            Some(rootfs),
            rootfs,
            Some("bind"),
            libc::MS_BIND | libc::MS_REC,
            None,
        )
        .map_err(|source| RootfsError::BindRootfs {
            rootfs: rootfs.clone(),
            source,
        })
}

fn make_parent_mount_private(syscall: &dyn Syscall, rootfs: &Path) -> Result<(), RootfsError> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|source| RootfsError::RootPropagation { source })?;
    let parent = rootfs.parent().unwrap_or(Path::new("/"));
    let holder = mountinfo
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let mount_point = PathBuf::from(fields.nth(4)?);
            let shared = line.split(" - ").next().is_some_and(|head| {
                head.split_whitespace()
                    .skip(6)
                    .any(|field| field.starts_with("shared:"))
            });
            parent
                .starts_with(&mount_point)
                .then_some((mount_point, shared))
        })
        .max_by_key(|(mount_point, _)| mount_point.as_os_str().len());
    if let Some((mount_point, true)) = holder {
        syscall
            .mount(None, &mount_point, None, libc::MS_PRIVATE, None)
            .map_err(|source| RootfsError::RootPropagation { source })?;
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MountKind<'a> {
    Bind,
    Proc,
    Sysfs,
    Tmpfs,
    Cgroup,
    /// mqueue, devpts and anything else mounted as it is.
    Other(&'a str),
}

/// One entry of `mounts`, with everything needed to report it.
struct Entry<'a> {
    field: String,
    destination: PathBuf,
    /// The destination resolved inside the rootfs.
    target: PathBuf,
    source: Option<PathBuf>,
    fstype: &'a str,
    options: MountOptions,
}

impl Entry<'_> {
    fn mount_error(
        &self,
        source_name: impl Into<String>,
    ) -> impl FnOnce(io::Error) -> RootfsError + '_ {
        let source_name = source_name.into();
        move |source| RootfsError::Mount {
            field: self.field.clone(),
            source_name,
            destination: self.destination.clone(),
            source,
        }
    }

    fn mount_point_error(&self) -> impl FnOnce(io::Error) -> RootfsError + '_ {
        move |source| RootfsError::MountPoint {
            field: self.field.clone(),
            destination: self.destination.clone(),
            source,
        }
    }

    fn source_name(&self) -> String {
        self.source.as_ref().map_or_else(
            || self.fstype.to_owned(),
            |source| source.display().to_string(),
        )
    }
}

fn mount_entry(
    syscall: &dyn Syscall,
    plan: &RootfsPlan,
    index: usize,
    mount: &Mount,
    prepared: &mut PreparedRootfs,
) -> Result<(), RootfsError> {
    let field = format!("mounts[{index}]");
    let rootfs = &plan.bundle.rootfs;
    // load_bundle validated both of these.
    let options = options::parse(mount.options().as_deref().unwrap_or_default())
        .expect("mount options were validated by load_bundle");
    let destination = clean_absolute(mount.destination())
        .expect("mount destinations were validated by load_bundle");
    let fstype = mount.typ().as_deref().unwrap_or("");
    let kind = if options.is_bind() || fstype == "bind" {
        MountKind::Bind
    } else {
        match fstype {
            "proc" => MountKind::Proc,
            "sysfs" => MountKind::Sysfs,
            "tmpfs" => MountKind::Tmpfs,
            "cgroup" | "cgroup2" => MountKind::Cgroup,
            other => MountKind::Other(other),
        }
    };
    let target = secure_join(rootfs, &destination).map_err(|source| RootfsError::MountPoint {
        field: field.clone(),
        destination: destination.clone(),
        source,
    })?;
    let entry = Entry {
        field,
        destination,
        target,
        source: mount.source().clone(),
        fstype,
        options,
    };
    check_proc_destination(rootfs, &entry, kind)?;

    match kind {
        MountKind::Proc | MountKind::Sysfs => {
            if entry.target.exists() && !entry.target.is_dir() {
                return Err(RootfsError::Refused {
                    field: entry.field,
                    destination: entry.destination,
                    problem: "exists in the rootfs and is not a directory",
                });
            }
            fs::create_dir_all(&entry.target).map_err(entry.mount_point_error())?;
            let result = mount_with_propagation(syscall, &entry, entry.options.flags);
            match result {
                Err(RootfsError::Mount { source, .. })
                    if kind == MountKind::Sysfs
                        && source.raw_os_error() == Some(libc::EPERM)
                        && !plan.own_network_namespace =>
                {
                    // A user namespace may not mount sysfs without owning a
                    // network namespace; bind the runtime's /sys instead.
                    bind_with_options(syscall, &entry, Path::new("/sys"), libc::MS_REC)
                }
                other => other,
            }?;
        }
        MountKind::Tmpfs => {
            let existing_mode = fs::metadata(&entry.target)
                .ok()
                .map(|metadata| metadata.permissions().mode());
            fs::create_dir_all(&entry.target).map_err(entry.mount_point_error())?;
            // Writable for now: files may be made in it (/dev) or its root
            // chmod-ed; made read-only after the pivot.
            mount_with_propagation(syscall, &entry, entry.options.flags & !libc::MS_RDONLY)?;
            if let Some(mode) = existing_mode {
                // runc gives the tmpfs root the mode of the directory it
                // covers.
                let _ = fs::set_permissions(&entry.target, fs::Permissions::from_mode(mode));
            }
            if entry.options.flags & libc::MS_RDONLY != 0 {
                prepared
                    .readonly_later
                    .push((entry.destination.clone(), entry.options.flags));
            }
        }
        MountKind::Bind => {
            let source = bind_source(plan.bundle, &entry)?;
            let metadata = fs::metadata(&source).map_err(|error| RootfsError::BindSource {
                field: entry.field.clone(),
                path: source.clone(),
                source: error,
            })?;
            create_mount_point(&entry.target, metadata.is_dir())
                .map_err(entry.mount_point_error())?;
            bind_with_options(syscall, &entry, &source, 0)?;
        }
        MountKind::Cgroup => mount_cgroup(syscall, plan, &entry)?,
        MountKind::Other(_) => {
            fs::create_dir_all(&entry.target).map_err(entry.mount_point_error())?;
            let mut flags = entry.options.flags;
            if entry.destination == Path::new("/dev") {
                flags &= !libc::MS_RDONLY;
            }
            mount_with_propagation(syscall, &entry, flags)?;
        }
    }
    if kind != MountKind::Tmpfs
        && entry.destination == Path::new("/dev")
        && entry.options.flags & libc::MS_RDONLY != 0
    {
        prepared
            .readonly_later
            .push((entry.destination.clone(), entry.options.flags));
    }
    Ok(())
}

/// A bind source: absolute, or relative to the bundle directory (runc
/// resolves it against the bundle, its working directory).
fn bind_source(bundle: &Bundle, entry: &Entry) -> Result<PathBuf, RootfsError> {
    let source = entry.source.as_ref().ok_or_else(|| RootfsError::Refused {
        field: entry.field.clone(),
        destination: entry.destination.clone(),
        problem: "is a bind mount without a source",
    })?;
    Ok(if source.is_absolute() {
        source.clone()
    } else {
        bundle.path.join(source)
    })
}

/// Mounts `entry` with `flags`, then applies each propagation option.
fn mount_with_propagation(
    syscall: &dyn Syscall,
    entry: &Entry,
    flags: u64,
) -> Result<(), RootfsError> {
    let source = entry
        .source
        .clone()
        .unwrap_or_else(|| PathBuf::from(entry.fstype));
    let fstype = (!entry.fstype.is_empty()).then_some(entry.fstype);
    syscall
        .mount(
            Some(&source),
            &entry.target,
            fstype,
            flags,
            entry.options.data(),
        )
        .map_err(entry.mount_error(entry.source_name()))?;
    apply_propagation(syscall, entry)
}

fn apply_propagation(syscall: &dyn Syscall, entry: &Entry) -> Result<(), RootfsError> {
    for &propagation in &entry.options.propagation {
        syscall
            .mount(None, &entry.target, None, propagation, None)
            .map_err(entry.mount_error(entry.source_name()))?;
    }
    Ok(())
}

/// A bind mount of `source` onto the entry's target with the entry's flags
/// (plus `extra_flags`). Binding ignores every flag but MS_REC, so flags
/// like ro or nosuid take a second, remounting call (mount(2), "Creating a
/// bind mount").
fn bind_with_options(
    syscall: &dyn Syscall,
    entry: &Entry,
    source: &Path,
    extra_flags: u64,
) -> Result<(), RootfsError> {
    let flags = entry.options.flags | libc::MS_BIND | extra_flags;
    let source_name = source.display().to_string();
    syscall
        .mount(Some(source), &entry.target, Some("bind"), flags, None)
        .map_err(entry.mount_error(source_name.clone()))?;
    apply_propagation(syscall, entry)?;
    if flags & !(libc::MS_REC | libc::MS_REMOUNT | libc::MS_BIND) != 0 {
        remount(syscall, source, &entry.target, flags).map_err(entry.mount_error(source_name))?;
    }
    Ok(())
}

/// Remounts a bind mount with new flags. Inside a user namespace the kernel
/// refuses to drop flags the source mount has locked; retry keeping them.
fn remount(syscall: &dyn Syscall, source: &Path, target: &Path, flags: u64) -> io::Result<()> {
    let flags = flags | libc::MS_REMOUNT;
    match syscall.mount(None, target, None, flags, None) {
        Ok(()) => Ok(()),
        Err(error) => {
            let locked = syscall.mount_flags(source).unwrap_or(0) & LOCKED_FLAGS;
            if locked & !flags == 0 {
                return Err(error);
            }
            syscall.mount(None, target, None, flags | locked, None)
        }
    }
}

fn create_mount_point(target: &Path, directory: bool) -> io::Result<()> {
    if target.exists() {
        return Ok(());
    }
    if directory {
        return fs::create_dir_all(target);
    }
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent)?;
    }
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o755)
        .open(target)
        .map(drop)
}

/// Refuses mounts into /proc (they could cover the files masking and
/// read-only paths protect), as runc's checkProcMount does.
fn check_proc_destination(
    rootfs: &Path,
    entry: &Entry,
    kind: MountKind,
) -> Result<(), RootfsError> {
    let Ok(inside_proc) = entry.target.strip_prefix(rootfs.join("proc")) else {
        return Ok(());
    };
    if inside_proc.as_os_str().is_empty() {
        if kind == MountKind::Proc {
            return Ok(());
        }
        return Err(RootfsError::Refused {
            field: entry.field.clone(),
            destination: entry.destination.clone(),
            problem: "may only be a \"proc\" mount",
        });
    }
    let container_path = Path::new("/proc").join(inside_proc);
    if PROC_MOUNT_ALLOWED
        .iter()
        .any(|allowed| Path::new(allowed) == container_path)
    {
        return Ok(());
    }
    Err(RootfsError::Refused {
        field: entry.field.clone(),
        destination: entry.destination.clone(),
        problem: "is inside /proc, where only the files lxcfs emulates may be mount destinations",
    })
}

fn mount_cgroup(
    syscall: &dyn Syscall,
    plan: &RootfsPlan,
    entry: &Entry,
) -> Result<(), RootfsError> {
    fs::create_dir_all(&entry.target).map_err(entry.mount_point_error())?;
    let readonly = entry.options.flags & libc::MS_RDONLY != 0;
    match plan.cgroup {
        CgroupMountSource::Unified { container_dir } => {
            let result = syscall.mount(
                Some(Path::new("cgroup")),
                &entry.target,
                Some("cgroup2"),
                entry.options.flags,
                entry.options.data(),
            );
            match result {
                Ok(()) => apply_propagation(syscall, entry),
                // Without a cgroup namespace of its own a user namespace may
                // not mount cgroup2: show the container's cgroup by binding
                // it (runc's mountCgroupV2 fallback).
                Err(error) if matches!(error.raw_os_error(), Some(libc::EPERM | libc::EBUSY)) => {
                    bind_with_options(syscall, entry, container_dir, libc::MS_REC)
                }
                Err(error) => Err(entry.mount_error("cgroup2")(error)),
            }
        }
        CgroupMountSource::Legacy { hierarchies } => {
            mount_cgroup_tmpfs(syscall, entry)?;
            for hierarchy in hierarchies {
                let target = entry.target.join(&hierarchy.name);
                let sub_entry = Entry {
                    field: entry.field.clone(),
                    destination: entry.destination.join(&hierarchy.name),
                    target,
                    source: Some(hierarchy.container_dir.clone()),
                    fstype: "bind",
                    options: MountOptions {
                        flags: entry.options.flags | libc::MS_REC,
                        propagation: entry.options.propagation.clone(),
                        data: String::new(),
                    },
                };
                fs::create_dir_all(&sub_entry.target).map_err(sub_entry.mount_point_error())?;
                bind_with_options(syscall, &sub_entry, &hierarchy.container_dir, 0)?;
            }
            for hierarchy in hierarchies
                .iter()
                .filter(|hierarchy| hierarchy.name.contains(','))
            {
                // "cpu,cpuacct" is reachable as "cpu" and "cpuacct" too.
                for controller in hierarchy.name.split(',') {
                    match syscall
                        .symlink(Path::new(&hierarchy.name), &entry.target.join(controller))
                    {
                        Ok(()) => {}
                        Err(error) if error.raw_os_error() == Some(libc::EEXIST) => {}
                        Err(source) => {
                            return Err(RootfsError::Symlink {
                                link: entry.destination.join(controller),
                                source,
                            })
                        }
                    }
                }
            }
            if readonly {
                remount_cgroup_tmpfs_readonly(syscall, entry)?;
            }
            Ok(())
        }
        CgroupMountSource::None => {
            mount_cgroup_tmpfs(syscall, entry)?;
            if readonly {
                remount_cgroup_tmpfs_readonly(syscall, entry)?;
            }
            Ok(())
        }
    }
}

fn mount_cgroup_tmpfs(syscall: &dyn Syscall, entry: &Entry) -> Result<(), RootfsError> {
    syscall
        .mount(
            Some(Path::new("tmpfs")),
            &entry.target,
            Some("tmpfs"),
            DEFAULT_MOUNT_FLAGS,
            Some("mode=755"),
        )
        .map_err(entry.mount_error("tmpfs"))?;
    apply_propagation(syscall, entry)
}

fn remount_cgroup_tmpfs_readonly(syscall: &dyn Syscall, entry: &Entry) -> Result<(), RootfsError> {
    remount(
        syscall,
        &entry.target,
        &entry.target,
        DEFAULT_MOUNT_FLAGS | libc::MS_RDONLY | libc::MS_BIND,
    )
    .map_err(entry.mount_error("tmpfs"))
}

/// Step 4: pivot_root into the rootfs. Afterwards every path is a
/// container path.
pub fn pivot(
    syscall: &dyn Syscall,
    plan: &RootfsPlan,
    prepared: &PreparedRootfs,
) -> Result<(), RootfsError> {
    let rootfs = &plan.bundle.rootfs;
    syscall
        .pivot_root(rootfs)
        .map_err(|source| RootfsError::PivotRoot {
            rootfs: rootfs.clone(),
            source,
        })?;
    if prepared.dev_set_up {
        syscall
            .reopen_dev_null()
            .map_err(|source| RootfsError::ReopenDevNull { source })?;
    }
    Ok(())
}

/// Step 5a (runc's finalizeRootfs): the mounts kept writable for setup
/// become read-only, then `/` when `root.readonly`.
pub fn finalize(
    syscall: &dyn Syscall,
    plan: &RootfsPlan,
    prepared: &PreparedRootfs,
) -> Result<(), RootfsError> {
    for (path, flags) in &prepared.readonly_later {
        // MS_REMOUNT|MS_BIND changes only the per-mount flags, which is
        // allowed in a user namespace too (mount(2)).
        let flags = flags | libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY;
        syscall
            .mount(None, path, None, flags, None)
            .map_err(|source| RootfsError::Readonly {
                path: path.clone(),
                source,
            })?;
    }
    let readonly_root = plan
        .bundle
        .spec
        .root()
        .as_ref()
        .and_then(|root| root.readonly())
        .unwrap_or(false);
    if readonly_root {
        let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY;
        let root = Path::new("/");
        if let Err(first) = syscall.mount(None, root, None, flags, None) {
            let locked = syscall.mount_flags(root).unwrap_or(0) & LOCKED_FLAGS;
            if locked & !flags == 0 {
                return Err(RootfsError::ReadonlyRoot { source: first });
            }
            syscall
                .mount(None, root, None, flags | locked, None)
                .map_err(|source| RootfsError::ReadonlyRoot { source })?;
        }
    }
    Ok(())
}

/// `linux.readonlyPaths`: each bound onto itself and remounted read-only,
/// keeping nosuid/nodev/noexec; missing paths are skipped (runc).
pub fn apply_readonly_paths(syscall: &dyn Syscall, paths: &[String]) -> Result<(), RootfsError> {
    for path in paths {
        let path = Path::new(path);
        let failed = |source| RootfsError::ReadonlyPath {
            path: path.to_path_buf(),
            source,
        };
        match syscall.mount(Some(path), path, None, libc::MS_BIND | libc::MS_REC, None) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(failed(error)),
        }
        let kept = syscall.mount_flags(path).map_err(failed)?
            & (libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC);
        syscall
            .mount(
                Some(path),
                path,
                None,
                kept | libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
                None,
            )
            .map_err(failed)?;
    }
    Ok(())
}

/// `linux.maskedPaths`: /dev/null over files, an empty read-only tmpfs over
/// directories (binding a file onto a directory fails with ENOTDIR);
/// missing paths are skipped (runc's maskPath).
pub fn apply_masked_paths(syscall: &dyn Syscall, paths: &[String]) -> Result<(), RootfsError> {
    for path in paths {
        let path = Path::new(path);
        let failed = |source| RootfsError::MaskedPath {
            path: path.to_path_buf(),
            source,
        };
        match syscall.mount(
            Some(Path::new("/dev/null")),
            path,
            None,
            libc::MS_BIND,
            None,
        ) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) if error.raw_os_error() == Some(libc::ENOTDIR) => syscall
                .mount(
                    Some(Path::new("tmpfs")),
                    path,
                    Some("tmpfs"),
                    libc::MS_RDONLY,
                    None,
                )
                .map_err(failed)?,
            Err(error) => return Err(failed(error)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
