//! The kernel's pseudo filesystems that everything else in the guest needs.

use std::{fs, io};

use crate::sys;

/// One filesystem that only the kernel backs (no device to mount from).
struct PseudoFilesystem {
    target: &'static str,
    fstype: &'static str,
    flags: libc::c_ulong,
    data: Option<&'static str>,
}

/// /proc first: the rest of init reads /proc/cmdline and /proc/meminfo.
/// /dev is devtmpfs because the guest kernel has no modules and no udev: the
/// kernel itself creates a node for every device it finds.
const PSEUDO_FILESYSTEMS: [PseudoFilesystem; 3] = [
    PseudoFilesystem {
        target: "/proc",
        fstype: "proc",
        flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        data: None,
    },
    PseudoFilesystem {
        target: "/sys",
        fstype: "sysfs",
        flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        data: None,
    },
    PseudoFilesystem {
        target: "/dev",
        fstype: "devtmpfs",
        flags: libc::MS_NOSUID,
        data: Some("mode=0755"),
    },
];

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("create mount point {target}")]
    CreateMountPoint {
        target: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("mount {fstype} on {target}")]
    Mount {
        fstype: &'static str,
        target: &'static str,
        #[source]
        source: io::Error,
    },
}

/// Mounts /proc, /sys and /dev, creating the mount points if the initramfs
/// lacks them. One already mounted (EBUSY) counts as done.
pub fn mount_pseudo_filesystems() -> Result<(), MountError> {
    for filesystem in &PSEUDO_FILESYSTEMS {
        fs::create_dir_all(filesystem.target).map_err(|source| MountError::CreateMountPoint {
            target: filesystem.target,
            source,
        })?;
        match sys::mount(
            filesystem.fstype,
            filesystem.target,
            filesystem.fstype,
            filesystem.flags,
            filesystem.data,
        ) {
            Err(error) if error.raw_os_error() != Some(libc::EBUSY) => {
                return Err(MountError::Mount {
                    fstype: filesystem.fstype,
                    target: filesystem.target,
                    source: error,
                });
            }
            _ => {}
        }
    }
    Ok(())
}
