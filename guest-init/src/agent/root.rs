//! The guest's own root before any container exists: a tmpfs in place of
//! the initramfs, and cgroup2.

use std::{fs, io};

use crate::sys;

/// Where the tmpfs root is built before it moves over /.
const NEW_ROOT: &str = "/husk-root";
/// Directories the guest's root needs; /proc, /sys and /dev are moved in.
const DIRECTORIES: [&str; 6] = ["/proc", "/sys", "/dev", "/run", "/tmp", "/mnt"];
const MOVED_MOUNTS: [&str; 3] = ["/proc", "/sys", "/dev"];

#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("{step}")]
    Step {
        step: String,
        #[source]
        source: io::Error,
    },
}

fn step<T>(result: io::Result<T>, step: impl Into<String>) -> Result<T, RootError> {
    result.map_err(|source| RootError::Step {
        step: step.into(),
        source,
    })
}

/// Moves the guest onto a tmpfs root. pivot_root(2) refuses to move away
/// from the initramfs (the rootfs mount has no parent, EINVAL), and every
/// container's setup pivots; with a tmpfs mounted over / and chrooted
/// into, the current root is an ordinary mount and pivoting works. Nothing
/// is copied: husk-init keeps running from its mapping.
pub fn leave_initramfs() -> Result<(), RootError> {
    step(fs::create_dir_all(NEW_ROOT), format!("create {NEW_ROOT}"))?;
    step(
        sys::mount(
            "tmpfs",
            NEW_ROOT,
            "tmpfs",
            libc::MS_NOSUID,
            Some("mode=0755"),
        ),
        format!("mount tmpfs on {NEW_ROOT}"),
    )?;
    for directory in DIRECTORIES {
        let path = format!("{NEW_ROOT}{directory}");
        step(fs::create_dir_all(&path), format!("create {path}"))?;
    }
    for mount in MOVED_MOUNTS {
        let target = format!("{NEW_ROOT}{mount}");
        step(
            sys::mount(mount, &target, "", libc::MS_MOVE, None),
            format!("move {mount} to {target}"),
        )?;
    }
    step(
        std::env::set_current_dir(NEW_ROOT),
        format!("enter {NEW_ROOT}"),
    )?;
    step(
        sys::mount(".", "/", "", libc::MS_MOVE, None),
        format!("move {NEW_ROOT} over /"),
    )?;
    step(std::os::unix::fs::chroot("."), "chroot into the new root")?;
    step(std::env::set_current_dir("/"), "enter the new root")?;
    Ok(())
}

/// The cgroup2 hierarchy containers' cgroups are made in, with every
/// controller the kernel has handed down to child groups.
pub fn mount_cgroup2() -> Result<(), RootError> {
    const CGROUP_ROOT: &str = "/sys/fs/cgroup";
    step(
        sys::mount(
            "cgroup2",
            CGROUP_ROOT,
            "cgroup2",
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            Some("nsdelegate"),
        ),
        format!("mount cgroup2 on {CGROUP_ROOT}"),
    )?;
    let controllers = step(
        fs::read_to_string(format!("{CGROUP_ROOT}/cgroup.controllers")),
        "read the root cgroup's controllers",
    )?;
    let enable: Vec<String> = controllers
        .split_whitespace()
        .map(|controller| format!("+{controller}"))
        .collect();
    if !enable.is_empty() {
        step(
            fs::write(
                format!("{CGROUP_ROOT}/cgroup.subtree_control"),
                enable.join(" "),
            ),
            "enable the cgroup controllers for child groups",
        )?;
    }
    Ok(())
}
