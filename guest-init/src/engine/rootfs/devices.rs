//! Device nodes and the /dev links a container gets (config-linux.md
//! "Default Devices" and "Devices"), created like runc's createDevices,
//! setupPtmx and setupDevSymlinks.

use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use super::secure_join::secure_join;
use super::RootfsError;
use crate::engine::syscall::Syscall;

/// A device node to create in the container's /dev.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceNode {
    /// Path inside the container, e.g. /dev/null.
    pub path: PathBuf,
    /// S_IFCHR, S_IFBLK or S_IFIFO.
    pub file_type: u32,
    pub major: u64,
    pub minor: u64,
    /// Permission bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The devices every container has (config-linux.md "Default Devices"):
/// character devices, mode 0666, owned by root.
fn default_devices() -> Vec<DeviceNode> {
    [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
    .into_iter()
    .map(|(path, major, minor)| DeviceNode {
        path: path.into(),
        file_type: libc::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

/// `linux.devices` followed by the default devices the config does not
/// list itself.
pub fn devices_for(configured: &[LinuxDevice]) -> Vec<DeviceNode> {
    let mut nodes: Vec<DeviceNode> = configured
        .iter()
        .map(|device| DeviceNode {
            path: device.path().clone(),
            file_type: match device.typ() {
                LinuxDeviceType::B => libc::S_IFBLK,
                LinuxDeviceType::P => libc::S_IFIFO,
                // "c" and "u" (unbuffered) are both character devices;
                // "a" only means something in cgroup device rules.
                _ => libc::S_IFCHR,
            },
            major: device.major() as u64,
            minor: device.minor() as u64,
            // runc: file_mode minus any file type bits, 0666 by default.
            mode: device
                .file_mode()
                .map_or(0o666, |mode| mode & !libc::S_IFMT),
            uid: device.uid().unwrap_or(0),
            gid: device.gid().unwrap_or(0),
        })
        .collect();
    for default in default_devices() {
        if !nodes.iter().any(|node| node.path == default.path) {
            nodes.push(default);
        }
    }
    nodes
}

/// Creates each node under `rootfs`. With `bind` (a user namespace, where
/// mknod(2) is never allowed) or when mknod fails with EPERM, the host's
/// node at the same path is bind-mounted onto an empty file instead.
pub fn create_devices(
    syscall: &dyn Syscall,
    rootfs: &Path,
    nodes: &[DeviceNode],
    bind: bool,
) -> Result<(), RootfsError> {
    // The modes in config.json are exact; the umask must not trim them.
    let old_umask = syscall.umask(0);
    let result = nodes
        .iter()
        .try_for_each(|node| create_device(syscall, rootfs, node, bind));
    syscall.umask(old_umask);
    result
}

fn create_device(
    syscall: &dyn Syscall,
    rootfs: &Path,
    node: &DeviceNode,
    bind: bool,
) -> Result<(), RootfsError> {
    let failed = |source| RootfsError::Device {
        path: node.path.clone(),
        source,
    };
    let destination = secure_join(rootfs, &node.path).map_err(failed)?;
    if let Some(parent) = destination.parent() {
        fs::create_dir_all(parent).map_err(failed)?;
    }
    if bind {
        return bind_device(syscall, node, &destination);
    }
    let device = libc::makedev(node.major as u32, node.minor as u32);
    match syscall.mknod(&destination, node.file_type | node.mode, device) {
        Ok(()) => syscall
            .chown(&destination, node.uid, node.gid)
            .map_err(failed),
        Err(error) if error.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        Err(error) if error.raw_os_error() == Some(libc::EPERM) => {
            bind_device(syscall, node, &destination)
        }
        Err(error) => Err(failed(error)),
    }
}

fn bind_device(
    syscall: &dyn Syscall,
    node: &DeviceNode,
    destination: &Path,
) -> Result<(), RootfsError> {
    let failed = |source| RootfsError::Device {
        path: node.path.clone(),
        source,
    };
    if !destination.exists() {
        fs::File::create(destination).map_err(failed)?;
    }
    syscall
        .mount(
            Some(&node.path),
            destination,
            Some("bind"),
            libc::MS_BIND,
            None,
        )
        .map_err(failed)
}

/// /dev/ptmx as a link to the devpts instance's ptmx, so that every pty
/// the container opens comes from its own devpts (devpts.rst: "newinstance").
pub fn link_ptmx(syscall: &dyn Syscall, rootfs: &Path) -> Result<(), RootfsError> {
    let ptmx = rootfs.join("dev/ptmx");
    let failed = |source| RootfsError::Symlink {
        link: "/dev/ptmx".into(),
        source,
    };
    match fs::remove_file(&ptmx) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(failed(error)),
    }
    syscall
        .symlink(Path::new("pts/ptmx"), &ptmx)
        .map_err(failed)
}

/// /dev/fd, /dev/stdin, /dev/stdout, /dev/stderr (and /dev/core where the
/// kernel has /proc/kcore), as runc makes them.
pub fn link_standard_streams(syscall: &dyn Syscall, rootfs: &Path) -> Result<(), RootfsError> {
    let mut links = vec![
        ("/proc/self/fd", "dev/fd"),
        ("/proc/self/fd/0", "dev/stdin"),
        ("/proc/self/fd/1", "dev/stdout"),
        ("/proc/self/fd/2", "dev/stderr"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "dev/core"));
    }
    for (target, link) in links {
        match syscall.symlink(Path::new(target), &rootfs.join(link)) {
            Ok(()) => {}
            Err(error) if error.raw_os_error() == Some(libc::EEXIST) => {}
            Err(source) => {
                return Err(RootfsError::Symlink {
                    link: Path::new("/").join(link),
                    source,
                })
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use oci_spec::runtime::LinuxDeviceBuilder;

    use super::*;

    #[test]
    fn configured_devices_come_first_and_replace_defaults() {
        let configured = vec![
            LinuxDeviceBuilder::default()
                .path("/dev/fuse")
                .typ(LinuxDeviceType::C)
                .major(10)
                .minor(229)
                .file_mode(0o20600u32)
                .build()
                .unwrap(),
            LinuxDeviceBuilder::default()
                .path("/dev/null")
                .typ(LinuxDeviceType::C)
                .major(1)
                .minor(3)
                .file_mode(0o600u32)
                .uid(1000u32)
                .build()
                .unwrap(),
        ];
        let nodes = devices_for(&configured);
        let paths: Vec<_> = nodes
            .iter()
            .map(|node| node.path.to_str().unwrap())
            .collect();
        assert_eq!(
            paths,
            [
                "/dev/fuse",
                "/dev/null",
                "/dev/zero",
                "/dev/full",
                "/dev/random",
                "/dev/urandom",
                "/dev/tty"
            ]
        );
        assert_eq!(
            nodes[0].mode, 0o600,
            "the file type bits are not part of the mode"
        );
        assert_eq!((nodes[1].mode, nodes[1].uid), (0o600, 1000));
    }
}
