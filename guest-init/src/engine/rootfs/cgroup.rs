//! What a `cgroup` mount in config.json shows inside the container: the
//! container's own cgroup, found by the parent before the fork.

use std::path::PathBuf;

/// The source of a `"type": "cgroup"` mount.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CgroupMountSource {
    /// Nothing known (no cgroup manager): an empty tmpfs.
    #[default]
    None,
    /// cgroup v2: a cgroup2 mount, which a cgroup namespace roots at the
    /// container's cgroup; `container_dir` is bound instead where cgroup2
    /// cannot be mounted (no cgroup namespace inside a user namespace).
    Unified { container_dir: PathBuf },
    /// cgroup v1: a tmpfs holding one directory per hierarchy, named like
    /// the host's mount point ("cpu,cpuacct"), each a bind of the
    /// container's directory in that hierarchy (runc's mountCgroupV1).
    Legacy { hierarchies: Vec<Hierarchy> },
}

/// One v1 hierarchy as the container sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// The base name of the host mount point, e.g. "memory" or "cpu,cpuacct".
    pub name: String,
    /// The container's cgroup directory in it, on the host.
    pub container_dir: PathBuf,
}
