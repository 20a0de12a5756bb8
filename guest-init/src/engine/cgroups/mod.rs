//! A container's control groups: find the host's cgroup layout, create the
//! container's cgroup, apply `linux.resources`, move processes in, freeze,
//! signal, report usage and remove it again — the cgroupfs way runc does it
//! (runtime-spec config-linux.md "Control groups").
//!
//! Layouts ([`Hierarchy`]):
//! - **unified** (cgroup v2): one `cgroup2` mount, normally `/sys/fs/cgroup`.
//!   This is the guest's layout (our kernel has no v1 controllers).
//! - **legacy** (cgroup v1, including the "hybrid" layout): one `cgroup` mount
//!   per controller group (`/sys/fs/cgroup/memory`, `.../cpu,cpuacct`, named
//!   hierarchies such as `name=systemd`), found in /proc/self/mountinfo, plus
//!   optionally a controller-less `cgroup2` mount (`/sys/fs/cgroup/unified`).
//!   The container gets a directory in every one of them, as with runc, and
//!   resources are written through the v1 controllers only.
//!
//! Where the container's cgroup goes (`linux.cgroupsPath`):
//! - absent or empty: `/husk/<container id>`;
//! - absolute: relative to the root of every hierarchy, as runc's cgroupfs
//!   driver does;
//! - relative: also relative to the root of every hierarchy. runc puts a
//!   relative path under the cgroup of the runc process itself; husk does not,
//!   because the CLI process that later runs `kill`, `pause` or `delete` may sit
//!   in a different cgroup than the one that ran `create`, and all of them must
//!   find the same directory. Inside the guest both readings agree (husk-init
//!   lives in the root cgroup).
//! - a `..` component is an error naming `linux.cgroupsPath`, and so is a path
//!   that names the root itself.
//!
//! What is not enforced, and said so rather than pretended:
//! - `linux.resources.devices` on cgroup v2: the kernel enforces device rules
//!   on v2 only through an eBPF program attached to the cgroup
//!   (Documentation/admin-guide/cgroup-v2.rst, "Device controller"); husk does
//!   not load one. The rules are reported back as
//!   [`CgroupWarning::DeviceRulesNotEnforced`] instead of failing the container.
//!   On v1 they are written to `devices.deny`/`devices.allow`.
//! - settings a cgroup version has no file for (v1-only knobs on v2 and the
//!   reverse, deprecated kernel memory limits) come back as
//!   [`CgroupWarning::SettingIgnored`].
//!
//! A value the kernel rejects is an error naming the file and the value.

mod v1;
mod v2;

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};
use std::{fmt, thread};

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

/// Where cgroup hierarchies are mounted by convention; a `cgroup2` mount here
/// means the unified layout.
pub const CGROUP_MOUNT_ROOT: &str = "/sys/fs/cgroup";

/// The parent of every container cgroup whose bundle gives no
/// `linux.cgroupsPath`.
pub const DEFAULT_PARENT: &str = "husk";

/// How long [`Cgroup::destroy`] keeps retrying a directory the kernel still
/// reports busy (its processes are exiting).
const DESTROY_RETRY: Duration = Duration::from_secs(3);

/// How long [`Cgroup::freeze`] waits for every task to stop.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(10);

/// The v1 controllers husk knows by name. A v1 mount's super options list its
/// controllers among mount flags; this tells them apart
/// (Documentation/admin-guide/cgroup-v1/cgroups.rst).
const V1_CONTROLLERS: &[&str] = &[
    "blkio",
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "freezer",
    "hugetlb",
    "memory",
    "misc",
    "net_cls",
    "net_prio",
    "perf_event",
    "pids",
    "rdma",
];

/// Errors of the cgroups module.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "no cgroup hierarchy is mounted (no cgroup2 or cgroup v1 controller mount in \
         /proc/self/mountinfo); mount cgroup2 on {CGROUP_MOUNT_ROOT} first"
    )]
    NoHierarchy,
    #[error("linux.cgroupsPath {path:?} {reason}")]
    InvalidCgroupsPath { path: String, reason: &'static str },
    #[error("container id {id:?} cannot name a cgroup: {reason}")]
    InvalidContainerId { id: String, reason: &'static str },
    #[error("create cgroup directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("write {value:?} to {path}")]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },
    #[error("{field}: {reason}")]
    InvalidResource { field: String, reason: String },
    #[error(
        "{field}: the {controller} cgroup controller is not available for {path} \
         (not mounted, or not enabled in the parent's cgroup.subtree_control)"
    )]
    ControllerUnavailable {
        field: &'static str,
        controller: &'static str,
        path: PathBuf,
    },
    #[error("cgroup {path} does not exist; was the container created?")]
    NotFound { path: PathBuf },
    #[error("remove cgroup directory {path}")]
    RemoveDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cgroup {path} still holds processes {pids:?} after {waited:?}; kill them first")]
    StillPopulated {
        path: PathBuf,
        pids: Vec<i32>,
        waited: Duration,
    },
    #[error("cgroup {path} did not freeze within {waited:?}; its tasks were thawed again")]
    FreezeTimeout { path: PathBuf, waited: Duration },
    #[error("send signal {signal} to process {pid} of cgroup {path}")]
    Signal {
        signal: i32,
        pid: i32,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("parse {path}: unexpected content {content:?}")]
    Parse { path: PathBuf, content: String },
}

/// Something asked for in `linux.resources` that this host's cgroups do not
/// carry out; the container still runs. The caller logs these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupWarning {
    /// Device rules on cgroup v2 need an eBPF program, which husk does not
    /// load: the container's device access is not restricted by its cgroup.
    DeviceRulesNotEnforced { rules: usize },
    /// A setting this cgroup version (or kernel) has no file for.
    SettingIgnored {
        field: &'static str,
        reason: &'static str,
    },
    /// A controller could not be enabled for the container's cgroup; its
    /// settings and statistics are unavailable.
    ControllerNotEnabled {
        controller: String,
        subtree_control: PathBuf,
        error: String,
    },
}

impl fmt::Display for CgroupWarning {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CgroupWarning::DeviceRulesNotEnforced { rules } => write!(
                formatter,
                "linux.resources.devices: {rules} device rule(s) not enforced: cgroup v2 device \
                 control needs an eBPF program, which husk does not load"
            ),
            CgroupWarning::SettingIgnored { field, reason } => {
                write!(formatter, "{field} ignored: {reason}")
            }
            CgroupWarning::ControllerNotEnabled {
                controller,
                subtree_control,
                error,
            } => write!(
                formatter,
                "could not enable the {controller} controller in {}: {error}",
                subtree_control.display()
            ),
        }
    }
}

/// Which cgroup interface a mount (or the whole host) uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    V1,
    V2,
}

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HierarchyMount {
    /// Where the hierarchy is mounted, e.g. `/sys/fs/cgroup/memory`.
    pub mount_point: PathBuf,
    pub version: CgroupVersion,
    /// The v1 controllers bound to this mount (`cpu`, `cpuacct`; or a named
    /// hierarchy such as `name=systemd`). Empty for cgroup2, whose controllers
    /// are listed in its `cgroup.controllers` file instead.
    pub controllers: Vec<String>,
}

/// The host's cgroup layout: which hierarchies exist and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    mounts: Vec<HierarchyMount>,
}

impl Hierarchy {
    /// Finds the layout of the calling process's mount namespace from
    /// /proc/self/mountinfo (the filesystem type of each mount tells cgroup2
    /// from v1, as statfs's CGROUP2_SUPER_MAGIC would).
    pub fn detect() -> Result<Hierarchy, CgroupError> {
        let path = Path::new("/proc/self/mountinfo");
        let mountinfo = fs::read_to_string(path).map_err(|source| CgroupError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Hierarchy::from_mountinfo(&mountinfo)
    }

    /// The layout described by a mountinfo text (proc(5)). v1 controller
    /// mounts make a legacy layout (with any cgroup2 mount as its hybrid
    /// part); otherwise a cgroup2 mount, preferably at /sys/fs/cgroup, makes a
    /// unified one. The first mount of a hierarchy wins.
    pub fn from_mountinfo(mountinfo: &str) -> Result<Hierarchy, CgroupError> {
        let mut v1_mounts: Vec<HierarchyMount> = Vec::new();
        let mut v2_mount_points: Vec<PathBuf> = Vec::new();
        for line in mountinfo.lines() {
            let Some((mount_point, fstype, super_options)) = parse_mountinfo_line(line) else {
                continue;
            };
            match fstype {
                "cgroup2" => v2_mount_points.push(mount_point),
                "cgroup" => {
                    let controllers: Vec<String> = super_options
                        .split(',')
                        .filter(|option| {
                            V1_CONTROLLERS.contains(option) || option.starts_with("name=")
                        })
                        .map(str::to_string)
                        .collect();
                    let already_mounted = v1_mounts.iter().any(|mount| {
                        mount
                            .controllers
                            .iter()
                            .any(|controller| controllers.contains(controller))
                    });
                    if !controllers.is_empty() && !already_mounted {
                        v1_mounts.push(HierarchyMount {
                            mount_point,
                            version: CgroupVersion::V1,
                            controllers,
                        });
                    }
                }
                _ => {}
            }
        }
        let has_v1_controller = v1_mounts.iter().any(|mount| {
            mount
                .controllers
                .iter()
                .any(|controller| !controller.starts_with("name="))
        });
        if has_v1_controller {
            return Ok(Hierarchy::legacy(
                v1_mounts
                    .into_iter()
                    .map(|mount| (mount.mount_point, mount.controllers)),
                v2_mount_points.into_iter().next(),
            ));
        }
        let standard_root = Path::new(CGROUP_MOUNT_ROOT);
        let unified_root = v2_mount_points
            .iter()
            .find(|mount_point| mount_point.as_path() == standard_root)
            .or(v2_mount_points.first())
            .ok_or(CgroupError::NoHierarchy)?;
        Ok(Hierarchy::unified(unified_root))
    }

    /// A unified (cgroup v2) layout mounted at `root`.
    pub fn unified(root: impl Into<PathBuf>) -> Hierarchy {
        Hierarchy {
            mounts: vec![HierarchyMount {
                mount_point: root.into(),
                version: CgroupVersion::V2,
                controllers: Vec::new(),
            }],
        }
    }

    /// A legacy (cgroup v1) layout: each mount point with the controllers
    /// bound to it, plus the controller-less cgroup2 mount of a hybrid layout.
    pub fn legacy(
        v1_mounts: impl IntoIterator<Item = (PathBuf, Vec<String>)>,
        hybrid_unified: Option<PathBuf>,
    ) -> Hierarchy {
        let mut mounts: Vec<HierarchyMount> = v1_mounts
            .into_iter()
            .map(|(mount_point, controllers)| HierarchyMount {
                mount_point,
                version: CgroupVersion::V1,
                controllers,
            })
            .collect();
        if let Some(mount_point) = hybrid_unified {
            mounts.push(HierarchyMount {
                mount_point,
                version: CgroupVersion::V2,
                controllers: Vec::new(),
            });
        }
        Hierarchy { mounts }
    }

    /// The interface resources are applied through: v2 only when there are no
    /// v1 controllers at all.
    pub fn version(&self) -> CgroupVersion {
        if self
            .mounts
            .iter()
            .any(|mount| mount.version == CgroupVersion::V1)
        {
            CgroupVersion::V1
        } else {
            CgroupVersion::V2
        }
    }

    pub fn mounts(&self) -> &[HierarchyMount] {
        &self.mounts
    }
}

/// Splits one mountinfo line into (mount point, filesystem type, super
/// options). The fields before the " - " separator vary in number.
fn parse_mountinfo_line(line: &str) -> Option<(PathBuf, &str, &str)> {
    let (before, after) = line.split_once(" - ")?;
    let mount_point = before.split(' ').nth(4)?;
    let mut after = after.split(' ');
    let fstype = after.next()?;
    let _source = after.next()?;
    let super_options = after.next().unwrap_or("");
    Some((
        PathBuf::from(unescape_mountinfo(mount_point)),
        fstype,
        super_options,
    ))
}

/// Undoes mountinfo's octal escapes (`\040` for a space, proc(5)).
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut unescaped = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let octal = bytes.get(index + 1..index + 4);
        match octal {
            Some(digits)
                if bytes[index] == b'\\' && digits.iter().all(|d| (b'0'..=b'7').contains(d)) =>
            {
                let value = digits
                    .iter()
                    .fold(0u32, |value, digit| value * 8 + u32::from(digit - b'0'));
                unescaped.push(value as u8);
                index += 4;
            }
            _ => {
                unescaped.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&unescaped).into_owned()
}

/// The device rules runc puts after a bundle's own `linux.resources.devices`
/// (libcontainer/specconv AllowedDevices): mknod of any device, and read,
/// write and mknod of /dev/null, random, full, tty, zero, urandom, the pty
/// slaves (136:*) and /dev/ptmx. The engine appends these, plus an allow
/// rule per `linux.devices` entry, before calling [`Cgroup::create`].
pub fn default_device_rules() -> Vec<LinuxDeviceCgroup> {
    let rule = |kind, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut rule = LinuxDeviceCgroup::default();
        rule.set_allow(true);
        rule.set_typ(Some(kind));
        rule.set_major(major);
        rule.set_minor(minor);
        rule.set_access(Some(access.to_string()));
        rule
    };
    vec![
        rule(LinuxDeviceType::C, None, None, "m"),
        rule(LinuxDeviceType::B, None, None, "m"),
        rule(LinuxDeviceType::C, Some(1), Some(3), "rwm"),
        rule(LinuxDeviceType::C, Some(1), Some(8), "rwm"),
        rule(LinuxDeviceType::C, Some(1), Some(7), "rwm"),
        rule(LinuxDeviceType::C, Some(5), Some(0), "rwm"),
        rule(LinuxDeviceType::C, Some(1), Some(5), "rwm"),
        rule(LinuxDeviceType::C, Some(1), Some(9), "rwm"),
        rule(LinuxDeviceType::C, Some(136), None, "rwm"),
        rule(LinuxDeviceType::C, Some(5), Some(2), "rwm"),
    ]
}

/// Checks the values of `linux.resources` that no host accepts (a memory
/// value below -1, a CPU quota below -1, a device rule the devices cgroup
/// cannot express, a hugepage size that is no size), so that a bundle can
/// be refused before anything is made. What depends on the host (a
/// controller that is not there) is found when the cgroup is created.
pub fn check_resources(resources: &LinuxResources) -> Result<(), CgroupError> {
    if let Some(memory) = resources.memory() {
        for (field, value) in [
            ("linux.resources.memory.limit", memory.limit()),
            ("linux.resources.memory.swap", memory.swap()),
            ("linux.resources.memory.reservation", memory.reservation()),
        ] {
            v2::check_memory_value(field, value)?;
        }
    }
    if let Some(cpu) = resources.cpu() {
        v2::cpu_max_value(cpu.quota(), cpu.period())?;
    }
    for (index, rule) in resources.devices().iter().flatten().enumerate() {
        v1::device_rule(rule, index)?;
    }
    for (index, limit) in resources.hugepage_limits().iter().flatten().enumerate() {
        v2::checked_page_size(limit.page_size(), index)?;
    }
    Ok(())
}

/// The container's cgroup, relative to every hierarchy's root (no leading
/// slash), following the rules in the module documentation.
pub fn container_cgroup_path(
    cgroups_path: Option<&str>,
    container_id: &str,
) -> Result<PathBuf, CgroupError> {
    match cgroups_path.filter(|path| !path.is_empty()) {
        Some(path) => {
            let invalid = |reason| CgroupError::InvalidCgroupsPath {
                path: path.to_string(),
                reason,
            };
            if path.contains('\0') {
                return Err(invalid("contains a NUL byte"));
            }
            let mut relative = PathBuf::new();
            for component in Path::new(path).components() {
                match component {
                    Component::Normal(name) => relative.push(name),
                    Component::ParentDir => {
                        return Err(invalid(
                            "contains a \"..\" component; give a path inside the cgroup hierarchy",
                        ))
                    }
                    Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
                }
            }
            if relative.as_os_str().is_empty() {
                return Err(invalid(
                    "names the root cgroup; give the container a cgroup of its own",
                ));
            }
            Ok(relative)
        }
        None => {
            let invalid = |reason| CgroupError::InvalidContainerId {
                id: container_id.to_string(),
                reason,
            };
            if container_id.is_empty() {
                return Err(invalid("it is empty"));
            }
            if container_id == "." || container_id == ".." {
                return Err(invalid("it is a relative directory name"));
            }
            if container_id.contains('/') || container_id.contains('\0') {
                return Err(invalid("it contains '/' or a NUL byte"));
            }
            Ok(Path::new(DEFAULT_PARENT).join(container_id))
        }
    }
}

/// The container's directory in one hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupDir {
    /// The hierarchy this directory belongs to.
    pub mount: HierarchyMount,
    /// The container's cgroup directory, e.g. `/sys/fs/cgroup/memory/husk/ID`.
    pub path: PathBuf,
    /// The topmost directory this handle created (the leaf or one of its
    /// parents); `destroy` removes up to it. None when the leaf existed before
    /// or the handle came from `load`.
    created_top: Option<PathBuf>,
}

/// A container's cgroup across every mounted hierarchy.
#[derive(Debug)]
pub struct Cgroup {
    hierarchy: Hierarchy,
    relative_path: PathBuf,
    dirs: Vec<CgroupDir>,
    warnings: Vec<CgroupWarning>,
}

impl Cgroup {
    /// Creates the container's cgroup in the host's hierarchy and applies
    /// `resources`. On failure nothing it created is left behind.
    pub fn create(
        cgroups_path: Option<&str>,
        container_id: &str,
        resources: Option<&LinuxResources>,
    ) -> Result<Cgroup, CgroupError> {
        Cgroup::create_in(Hierarchy::detect()?, cgroups_path, container_id, resources)
    }

    /// [`Cgroup::create`] in a given hierarchy.
    pub fn create_in(
        hierarchy: Hierarchy,
        cgroups_path: Option<&str>,
        container_id: &str,
        resources: Option<&LinuxResources>,
    ) -> Result<Cgroup, CgroupError> {
        let relative_path = container_cgroup_path(cgroups_path, container_id)?;
        let mut cgroup = Cgroup {
            dirs: Vec::with_capacity(hierarchy.mounts.len()),
            hierarchy,
            relative_path,
            warnings: Vec::new(),
        };
        let made = cgroup.make_directories();
        match made.and_then(|()| cgroup.prepare_and_apply(resources)) {
            Ok(warnings) => {
                cgroup.warnings = warnings;
                Ok(cgroup)
            }
            Err(error) => {
                cgroup.remove_created();
                Err(error)
            }
        }
    }

    /// Re-opens the cgroup of an existing container (for `kill`, `pause`,
    /// `update`, `delete`). Its parents are not removed by `destroy`; the
    /// default parent `/husk` is shared by every container anyway.
    pub fn load(cgroups_path: Option<&str>, container_id: &str) -> Result<Cgroup, CgroupError> {
        Cgroup::load_in(Hierarchy::detect()?, cgroups_path, container_id)
    }

    /// [`Cgroup::load`] in a given hierarchy.
    pub fn load_in(
        hierarchy: Hierarchy,
        cgroups_path: Option<&str>,
        container_id: &str,
    ) -> Result<Cgroup, CgroupError> {
        let relative_path = container_cgroup_path(cgroups_path, container_id)?;
        let dirs: Vec<CgroupDir> = hierarchy
            .mounts
            .iter()
            .map(|mount| CgroupDir {
                path: mount.mount_point.join(&relative_path),
                mount: mount.clone(),
                created_top: None,
            })
            .collect();
        // A directory already gone from one hierarchy (removed by hand, or by
        // an interrupted delete) must not keep `delete` from removing the
        // rest; only a cgroup that exists nowhere is "not found".
        if !dirs.iter().any(|dir| dir.path.is_dir()) {
            return Err(CgroupError::NotFound {
                path: dirs.first().map(|dir| dir.path.clone()).unwrap_or_default(),
            });
        }
        Ok(Cgroup {
            hierarchy,
            relative_path,
            dirs,
            warnings: Vec::new(),
        })
    }

    /// Creates the container's directory (and missing parents) in every
    /// hierarchy, remembering what it created for cleanup.
    fn make_directories(&mut self) -> Result<(), CgroupError> {
        for mount in &self.hierarchy.mounts {
            let path = mount.mount_point.join(&self.relative_path);
            let created = make_directory_chain(&mount.mount_point, &self.relative_path)?;
            self.dirs.push(CgroupDir {
                path,
                mount: mount.clone(),
                created_top: created.first().cloned(),
            });
        }
        Ok(())
    }

    /// What a new cgroup needs before it can hold processes: v1 cpuset
    /// directories start with no CPUs and memory nodes, v2 parents must pass
    /// controllers down.
    fn prepare_directories(&self) -> Result<Vec<CgroupWarning>, CgroupError> {
        let mut warnings = Vec::new();
        for dir in &self.dirs {
            match dir.mount.version {
                CgroupVersion::V1 if dir.mount.controllers.iter().any(|c| c == "cpuset") => {
                    v1::inherit_cpuset(&dir.mount.mount_point, &self.relative_path)?;
                }
                CgroupVersion::V2 if self.hierarchy.version() == CgroupVersion::V2 => {
                    warnings.extend(v2::enable_controllers(
                        &dir.mount.mount_point,
                        &self.relative_path,
                    )?);
                }
                _ => {}
            }
        }
        Ok(warnings)
    }

    fn prepare_and_apply(
        &self,
        resources: Option<&LinuxResources>,
    ) -> Result<Vec<CgroupWarning>, CgroupError> {
        let mut warnings = self.prepare_directories()?;
        if let Some(resources) = resources {
            warnings.extend(self.apply(resources)?);
        }
        Ok(warnings)
    }

    /// Moves a process, with all its threads (cgroup.procs), into the
    /// container's cgroup in every hierarchy.
    pub fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        for dir in &self.dirs {
            write_file(&dir.path, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    /// Applies `linux.resources` (also what `husk update` calls). Returns the
    /// settings that were not carried out.
    pub fn apply(&self, resources: &LinuxResources) -> Result<Vec<CgroupWarning>, CgroupError> {
        match self.hierarchy.version() {
            CgroupVersion::V2 => v2::apply(self.unified_dir_path(), resources),
            CgroupVersion::V1 => v1::apply(&v1::ControllerDirs::new(&self.dirs), resources),
        }
    }

    /// Stops every task in the cgroup (runtime `pause`).
    pub fn freeze(&self) -> Result<(), CgroupError> {
        match self.hierarchy.version() {
            CgroupVersion::V2 => v2::freeze(self.unified_dir_path()),
            CgroupVersion::V1 => v1::freeze(self.v1_freezer_dir()?),
        }
    }

    /// Lets the tasks of a frozen cgroup run again (runtime `resume`).
    pub fn thaw(&self) -> Result<(), CgroupError> {
        match self.hierarchy.version() {
            CgroupVersion::V2 => v2::thaw(self.unified_dir_path()),
            CgroupVersion::V1 => v1::thaw(self.v1_freezer_dir()?),
        }
    }

    /// Every process in the cgroup and its descendants, sorted. On v1 the
    /// union over all hierarchies, so a process that left one of them is
    /// still seen.
    pub fn processes(&self) -> Result<Vec<i32>, CgroupError> {
        let mut pids = BTreeSet::new();
        for dir in &self.dirs {
            collect_processes(&dir.path, &mut pids)?;
        }
        Ok(pids.into_iter().collect())
    }

    /// Sends `signal` to every process in the cgroup. SIGKILL on v2 goes
    /// through `cgroup.kill` (Linux 5.14), which cannot miss a process forked
    /// meanwhile; otherwise the cgroup is frozen while the processes are
    /// signalled (when a freezer is available), as runc does, so none can fork
    /// a new one in between.
    pub fn kill_all(&self, signal: i32) -> Result<(), CgroupError> {
        if self.hierarchy.version() == CgroupVersion::V2
            && signal == libc::SIGKILL
            && self.unified_dir_path().join("cgroup.kill").exists()
        {
            return write_file(self.unified_dir_path(), "cgroup.kill", "1");
        }
        let frozen = self.can_freeze() && self.freeze().is_ok();
        let result = self.signal_each(signal);
        if frozen {
            self.thaw()?;
        }
        result
    }

    fn signal_each(&self, signal: i32) -> Result<(), CgroupError> {
        for pid in self.processes()? {
            match send_signal(pid, signal) {
                Ok(()) => {}
                // Exited since the list was read.
                Err(error) if error.raw_os_error() == Some(libc::ESRCH) => {}
                Err(source) => {
                    return Err(CgroupError::Signal {
                        signal,
                        pid,
                        path: self.dirs[0].path.clone(),
                        source,
                    })
                }
            }
        }
        Ok(())
    }

    fn can_freeze(&self) -> bool {
        match self.hierarchy.version() {
            CgroupVersion::V2 => self.unified_dir_path().join("cgroup.freeze").exists(),
            CgroupVersion::V1 => self.v1_freezer_dir().is_ok(),
        }
    }

    /// Resource usage and limits, for `husk events --stats` and `ps`.
    pub fn stats(&self) -> Result<CgroupStats, CgroupError> {
        match self.hierarchy.version() {
            CgroupVersion::V2 => v2::stats(self.unified_dir_path()),
            CgroupVersion::V1 => v1::stats(&v1::ControllerDirs::new(&self.dirs)),
        }
    }

    /// Removes the container's cgroup: every descendant directory, the leaf,
    /// then the parents this handle created, in every hierarchy. Retries for
    /// a few seconds while exiting processes drain; an error names the
    /// directory that stayed.
    pub fn destroy(self) -> Result<(), CgroupError> {
        let mut first_error = None;
        for dir in &self.dirs {
            if let Err(error) = remove_cgroup_dir(dir) {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Best-effort cleanup after a failed `create`.
    fn remove_created(&self) {
        for dir in &self.dirs {
            if dir.created_top.is_some() {
                let _ = remove_cgroup_dir(dir);
            }
        }
    }

    /// The container's directory in every hierarchy, for the mount code (a
    /// `cgroup` mount in the container binds these) and for diagnostics.
    pub fn paths(&self) -> &[CgroupDir] {
        &self.dirs
    }

    pub fn hierarchy(&self) -> &Hierarchy {
        &self.hierarchy
    }

    /// The container's cgroup relative to each hierarchy root.
    pub fn relative_path(&self) -> &Path {
        &self.relative_path
    }

    /// What `create` could not carry out.
    pub fn warnings(&self) -> &[CgroupWarning] {
        &self.warnings
    }

    /// The directory in the unified hierarchy (only called in v2 layouts,
    /// whose single mount is v2).
    fn unified_dir_path(&self) -> &Path {
        &self.dirs[0].path
    }

    fn v1_freezer_dir(&self) -> Result<&Path, CgroupError> {
        v1::ControllerDirs::new(&self.dirs)
            .get("freezer")
            .ok_or_else(|| CgroupError::ControllerUnavailable {
                field: "pause/resume",
                controller: "freezer",
                path: self.dirs[0].path.clone(),
            })
    }
}

/// Creates `root/relative` and any missing parent below `root`; returns the
/// directories it created, top first.
fn make_directory_chain(root: &Path, relative: &Path) -> Result<Vec<PathBuf>, CgroupError> {
    let mut created = Vec::new();
    let mut current = root.to_path_buf();
    for component in relative.components() {
        current.push(component);
        match fs::create_dir(&current) {
            Ok(()) => created.push(current.clone()),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                // Leave nothing half-made behind.
                for dir in created.iter().rev() {
                    let _ = fs::remove_dir(dir);
                }
                return Err(CgroupError::CreateDir {
                    path: current,
                    source,
                });
            }
        }
    }
    Ok(created)
}

/// Removes one hierarchy's directory for the container: descendants first,
/// then the leaf (retrying while busy), then the parents this handle created
/// while they are empty.
fn remove_cgroup_dir(dir: &CgroupDir) -> Result<(), CgroupError> {
    remove_tree(&dir.path)?;
    if let Some(top) = &dir.created_top {
        let mut parent = dir.path.parent();
        while let Some(current) = parent {
            if !current.starts_with(top) {
                break;
            }
            // Another container may have been created under the same parent
            // meanwhile; a parent that is not empty stays.
            if fs::remove_dir(current).is_err() {
                break;
            }
            parent = current.parent();
        }
    }
    Ok(())
}

fn remove_tree(path: &Path) -> Result<(), CgroupError> {
    let entries = match fs::read_dir(path) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(CgroupError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    for entry in entries {
        let entry = entry.map_err(|source| CgroupError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            remove_tree(&entry.path())?;
        }
    }
    let started = Instant::now();
    loop {
        match fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            // EBUSY: tasks are still leaving (the kernel refuses rmdir of a
            // populated cgroup, cgroups(7)).
            Err(error) if error.raw_os_error() == Some(libc::EBUSY) => {
                if started.elapsed() >= DESTROY_RETRY {
                    let mut pids = BTreeSet::new();
                    let _ = collect_processes(path, &mut pids);
                    return Err(CgroupError::StillPopulated {
                        path: path.to_path_buf(),
                        pids: pids.into_iter().collect(),
                        waited: started.elapsed(),
                    });
                }
                thread::sleep(Duration::from_millis(10));
            }
            Err(source) => {
                return Err(CgroupError::RemoveDir {
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
    }
}

/// Adds the pids in `dir/cgroup.procs` and in every descendant's.
fn collect_processes(dir: &Path, pids: &mut BTreeSet<i32>) -> Result<(), CgroupError> {
    let Some(procs) = read_optional(&dir.join("cgroup.procs"))? else {
        return Ok(());
    };
    for line in procs.lines().filter(|line| !line.trim().is_empty()) {
        let pid = line.trim().parse().map_err(|_| CgroupError::Parse {
            path: dir.join("cgroup.procs"),
            content: line.to_string(),
        })?;
        pids.insert(pid);
    }
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(CgroupError::Read {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            collect_processes(&entry.path(), pids)?;
        }
    }
    Ok(())
}

/// Writes one value to a cgroup control file, without creating it (a missing
/// control file means the controller is absent, never a file to make).
fn write_file(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    let path = dir.join(file);
    let result = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        // One write(2) per value: each write is one request to the kernel.
        .and_then(|mut control| control.write_all(value.as_bytes()));
    result.map_err(|source| CgroupError::Write {
        path,
        value: value.to_string(),
        source,
    })
}

/// Reads a control file; None when it does not exist.
fn read_optional(path: &Path) -> Result<Option<String>, CgroupError> {
    match fs::read_to_string(path) {
        Ok(content) => Ok(Some(content)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CgroupError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Reads a control file holding one unsigned number; None when absent.
fn read_u64(path: &Path) -> Result<Option<u64>, CgroupError> {
    let Some(content) = read_optional(path)? else {
        return Ok(None);
    };
    content
        .trim()
        .parse()
        .map(Some)
        .map_err(|_| CgroupError::Parse {
            path: path.to_path_buf(),
            content,
        })
}

/// Reads a limit file that holds a number or "max"; Ok(None) when absent,
/// Ok(Some(None)) when unlimited.
fn read_limit(path: &Path) -> Result<Option<Option<u64>>, CgroupError> {
    let Some(content) = read_optional(path)? else {
        return Ok(None);
    };
    let value = content.trim();
    if value == "max" {
        return Ok(Some(None));
    }
    value
        .parse()
        .map(|limit| Some(Some(limit)))
        .map_err(|_| CgroupError::Parse {
            path: path.to_path_buf(),
            content,
        })
}

/// Parses "key value" lines (cpu.stat, memory.stat, cpuacct.stat).
fn flat_keyed(content: &str) -> impl Iterator<Item = (&str, u64)> {
    content.lines().filter_map(|line| {
        let (key, value) = line.split_once(' ')?;
        Some((key, value.trim().parse().ok()?))
    })
}

/// Polls `done` until it returns true or `timeout` passes.
fn wait_until(
    timeout: Duration,
    mut done: impl FnMut() -> Result<bool, CgroupError>,
) -> Result<bool, CgroupError> {
    let started = Instant::now();
    let mut pause = Duration::from_micros(200);
    loop {
        if done()? {
            return Ok(true);
        }
        if started.elapsed() >= timeout {
            return Ok(false);
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

fn send_signal(pid: i32, signal: i32) -> io::Result<()> {
    // SAFETY: kill(2) takes two integers and touches no memory of ours.
    let result = unsafe { libc::kill(pid, signal) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Usage and limits of a container's cgroup. A section is None when its
/// controller is absent; a limit is None when unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupStats {
    pub cpu: Option<CpuStats>,
    pub memory: Option<MemoryStats>,
    pub pids: Option<PidsStats>,
    pub io: Option<IoStats>,
}

/// CPU time used by the cgroup's tasks, in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuStats {
    pub usage_usec: u64,
    pub user_usec: u64,
    pub system_usec: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryStats {
    pub usage_bytes: u64,
    /// Highest usage seen (v1 `max_usage_in_bytes`, v2 `memory.peak` since
    /// Linux 5.19), when the kernel reports it.
    pub peak_bytes: Option<u64>,
    pub limit_bytes: Option<u64>,
    /// Swap in use, when swap is accounted.
    pub swap_usage_bytes: Option<u64>,
    /// Swap allowed beyond memory (v1: memory+swap limit minus memory limit).
    pub swap_limit_bytes: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PidsStats {
    pub current: u64,
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IoStats {
    pub devices: Vec<IoDeviceStats>,
}

/// Bytes and operations per block device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IoDeviceStats {
    pub major: u64,
    pub minor: u64,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub read_ios: u64,
    pub write_ios: u64,
}

impl IoStats {
    /// The entry for a device, added if new.
    fn device(&mut self, major: u64, minor: u64) -> &mut IoDeviceStats {
        let index = match self
            .devices
            .iter()
            .position(|device| device.major == major && device.minor == minor)
        {
            Some(index) => index,
            None => {
                self.devices.push(IoDeviceStats {
                    major,
                    minor,
                    ..IoDeviceStats::default()
                });
                self.devices.len() - 1
            }
        };
        &mut self.devices[index]
    }
}

/// Parses "major:minor".
fn parse_device_number(text: &str) -> Option<(u64, u64)> {
    let (major, minor) = text.split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

#[cfg(test)]
mod tests;
