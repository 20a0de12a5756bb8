//! The files a container's VM has on the host, and where they go.
//!
//! Everything lives in the container's state directory `<root>/<id>/`:
//!
//! ```text
//! rootfs.ext4     the root filesystem image (/dev/vda in the guest)
//! directory-N.ext4  the read-only copy of the N-th bind-mounted host
//!                 directory, from 0 (/dev/vdb, /dev/vdc, ... in the guest)
//! hooks.json      the hooks the CLI runs on the host (poststart, poststop)
//! vmm.log         husk-vmm's own messages (its stdio is the container's)
//! console.log     the guest's serial console
//! sockets/        the sockets, in a directory of their own:
//!   vsock.sock      the vsock device's host end (stdio streams go through it)
//!   vsock.sock_1024 where the guest's control connection arrives (husk-vmm)
//!   agent.sock      husk-vmm's agent socket, there once the guest is ready
//!   console.sock    receives the container's pty (`run` with a terminal and
//!                   no --console-socket)
//! jail/           the empty directory husk-vmm's jail (`--jail`) mounts its
//!                 root on, in husk-vmm's own mount namespace
//! ```
//!
//! husk-vmm's jail holds the socket directory writable, so it holds nothing
//! else: not the state, and not hooks.json, which husk runs on the host.
//! A Unix socket's path must fit in `sun_path` (108 bytes with its NUL,
//! unix(7)); with a long `--root` or a long ID (containerd's IDs are 64
//! characters) the sockets go to a directory under [`SHORT_SOCKET_ROOT`]
//! instead. Every path is recorded in the container's state, so later
//! commands find them wherever they are.

use std::collections::hash_map::DefaultHasher;
use std::fs::{self, DirBuilder};
use std::hash::{Hash, Hasher};
use std::io::{self, ErrorKind};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use husk_protocol::ports::CONTROL_PORT;

use super::directories::MAX_DIRECTORIES;
use crate::state::{BackendPaths, ContainerRecord};

/// Where sockets go when the state directory's path is too long for them.
pub const SHORT_SOCKET_ROOT: &str = "/run/husk-vm";

/// The longest path bind(2) and connect(2) take: sun_path less its NUL.
const MAX_SOCKET_PATH: usize = 107;

const IMAGE: &str = "rootfs.ext4";
const HOOKS: &str = "hooks.json";
const VMM_LOG: &str = "vmm.log";
const CONSOLE_LOG: &str = "console.log";
const VSOCK_SOCKET: &str = "vsock.sock";
const AGENT_SOCKET: &str = "agent.sock";
const CONSOLE_SOCKET: &str = "console.sock";
const SOCKET_DIR: &str = "sockets";
const JAIL_DIR: &str = "jail";

/// Keys in [`BackendPaths`].
const SOCKET_AGENT: &str = "agent";
const SOCKET_VSOCK: &str = "vsock";
const SOCKET_CONSOLE: &str = "console";
const EXTRA_SOCKET_DIR: &str = "socketDir";
const EXTRA_VMM_LOG: &str = "vmmLog";
const EXTRA_CONSOLE_LOG: &str = "consoleLog";
const EXTRA_HOOKS: &str = "hooks";

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("create the socket directory {}", path.display())]
    SocketDirectory {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("create husk-vmm's jail directory {}", path.display())]
    JailDirectory {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Every host file of one container's VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmFiles {
    pub state_dir: PathBuf,
    pub image: PathBuf,
    pub hooks: PathBuf,
    pub vmm_log: PathBuf,
    pub console_log: PathBuf,
    pub vsock_socket: PathBuf,
    pub agent_socket: PathBuf,
    pub console_socket: PathBuf,
    /// A directory made for the sockets only, removed with them.
    pub socket_dir: Option<PathBuf>,
    /// The empty directory husk-vmm's jail mounts its root on.
    pub jail_dir: PathBuf,
}

impl VmFiles {
    /// The layout for a new container in `state_dir`, making a short
    /// socket directory under `short_root` if the state directory's path
    /// is too long.
    pub fn create(state_dir: &Path, short_root: &Path) -> Result<VmFiles, LayoutError> {
        let longest_socket = format!("{SOCKET_DIR}/{VSOCK_SOCKET}_{CONTROL_PORT}");
        let fits = state_dir.as_os_str().len() + 1 + longest_socket.len() <= MAX_SOCKET_PATH;
        let sockets = if fits {
            let path = state_dir.join(SOCKET_DIR);
            DirBuilder::new()
                .mode(0o700)
                .create(&path)
                .map_err(|source| LayoutError::SocketDirectory {
                    path: path.clone(),
                    source,
                })?;
            path
        } else {
            make_socket_dir(state_dir, short_root)?
        };
        let jail_dir = state_dir.join(JAIL_DIR);
        let socket_dir = Some(sockets.clone());
        Ok(VmFiles {
            state_dir: state_dir.to_path_buf(),
            image: state_dir.join(IMAGE),
            hooks: state_dir.join(HOOKS),
            vmm_log: state_dir.join(VMM_LOG),
            console_log: state_dir.join(CONSOLE_LOG),
            vsock_socket: sockets.join(VSOCK_SOCKET),
            agent_socket: sockets.join(AGENT_SOCKET),
            console_socket: sockets.join(CONSOLE_SOCKET),
            socket_dir,
            jail_dir,
        })
    }

    /// Makes the empty directory husk-vmm's jail mounts its root on.
    pub fn create_jail_dir(&self) -> Result<(), LayoutError> {
        DirBuilder::new()
            .mode(0o700)
            .create(&self.jail_dir)
            .map_err(|source| LayoutError::JailDirectory {
                path: self.jail_dir.clone(),
                source,
            })
    }

    /// The image of the `number`-th bind-mounted host directory (from 0).
    /// Always in the state directory, so a record needs not name it.
    pub fn directory_image(&self, number: usize) -> PathBuf {
        self.state_dir.join(format!("directory-{number}.ext4"))
    }

    /// Where the guest's control connection arrives (husk-vmm listens).
    pub fn control_socket(&self) -> PathBuf {
        husk_vmm::guest_agent::control_socket_path(&self.vsock_socket)
    }

    /// The layout a container's record names; paths it does not name are
    /// where [`VmFiles::create`] puts them in the state directory.
    pub fn of(record: &ContainerRecord) -> VmFiles {
        let paths = &record.husk.paths;
        let state_dir = &record.state_dir;
        let extra = |key: &str, default: &str| {
            paths
                .extra
                .get(key)
                .map_or_else(|| state_dir.join(default), PathBuf::from)
        };
        let socket = |key: &str, default: &str| {
            paths
                .sockets
                .get(key)
                .cloned()
                .unwrap_or_else(|| state_dir.join(default))
        };
        VmFiles {
            state_dir: state_dir.clone(),
            image: paths
                .rootfs_image
                .clone()
                .unwrap_or_else(|| state_dir.join(IMAGE)),
            hooks: extra(EXTRA_HOOKS, HOOKS),
            vmm_log: extra(EXTRA_VMM_LOG, VMM_LOG),
            console_log: extra(EXTRA_CONSOLE_LOG, CONSOLE_LOG),
            vsock_socket: socket(SOCKET_VSOCK, VSOCK_SOCKET),
            agent_socket: socket(SOCKET_AGENT, AGENT_SOCKET),
            console_socket: socket(SOCKET_CONSOLE, CONSOLE_SOCKET),
            socket_dir: paths.extra.get(EXTRA_SOCKET_DIR).map(PathBuf::from),
            jail_dir: state_dir.join(JAIL_DIR),
        }
    }

    /// The paths for the container's record; `cgroup` is the host cgroup
    /// husk-vmm runs in, relative to the hierarchy roots.
    pub fn record(&self, cgroup: Option<PathBuf>) -> BackendPaths {
        let mut paths = BackendPaths {
            rootfs_image: Some(self.image.clone()),
            cgroup,
            ..BackendPaths::default()
        };
        paths
            .sockets
            .insert(SOCKET_AGENT.to_string(), self.agent_socket.clone());
        paths
            .sockets
            .insert(SOCKET_VSOCK.to_string(), self.vsock_socket.clone());
        paths
            .sockets
            .insert(SOCKET_CONSOLE.to_string(), self.console_socket.clone());
        for (key, path) in [
            (EXTRA_HOOKS, &self.hooks),
            (EXTRA_VMM_LOG, &self.vmm_log),
            (EXTRA_CONSOLE_LOG, &self.console_log),
        ] {
            paths
                .extra
                .insert(key.to_string(), path.to_string_lossy().into_owned());
        }
        if let Some(socket_dir) = &self.socket_dir {
            paths.extra.insert(
                EXTRA_SOCKET_DIR.to_string(),
                socket_dir.to_string_lossy().into_owned(),
            );
        }
        paths
    }

    /// Removes every file of the VM (the state directory itself is the
    /// CLI's). Returns what could not be removed; files already gone are
    /// fine.
    pub fn remove_all(&self) -> Vec<(PathBuf, io::Error)> {
        let mut failures = Vec::new();
        let control = self.control_socket();
        let directory_images = (0..MAX_DIRECTORIES).map(|number| self.directory_image(number));
        for path in [
            &self.image,
            &self.hooks,
            &self.vmm_log,
            &self.console_log,
            &self.vsock_socket,
            &control,
            &self.agent_socket,
            &self.console_socket,
        ]
        .into_iter()
        .cloned()
        .chain(directory_images)
        {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(error) if error.kind() == ErrorKind::NotFound => {}
                Err(error) => failures.push((path, error)),
            }
        }
        for directory in self.socket_dir.iter().chain([&self.jail_dir]) {
            match fs::remove_dir(directory) {
                Ok(()) => {}
                Err(error) if error.kind() == ErrorKind::NotFound => {}
                Err(error) => failures.push((directory.clone(), error)),
            }
        }
        failures
    }
}

/// Makes `<short_root>/<16 hex digits>`, named after the state directory
/// (and the time, should that name be taken), mode 0700.
fn make_socket_dir(state_dir: &Path, short_root: &Path) -> Result<PathBuf, LayoutError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(short_root)
        .map_err(|source| LayoutError::SocketDirectory {
            path: short_root.to_path_buf(),
            source,
        })?;
    let mut attempt = 0u64;
    loop {
        let mut hasher = DefaultHasher::new();
        state_dir.hash(&mut hasher);
        if attempt > 0 {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .hash(&mut hasher);
            attempt.hash(&mut hasher);
        }
        let path = short_root.join(format!("{:016x}", hasher.finish()));
        match DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => return Ok(path),
            Err(error) if error.kind() == ErrorKind::AlreadyExists && attempt < 16 => {
                attempt += 1;
            }
            Err(source) => return Err(LayoutError::SocketDirectory { path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::*;
    use crate::backend::BackendKind;
    use crate::state::{HuskRecord, Status};

    fn record_with(paths: BackendPaths, state_dir: &Path) -> ContainerRecord {
        ContainerRecord {
            oci_version: "1.2.0".to_string(),
            id: "c1".to_string(),
            status: Status::Created,
            pid: 1,
            bundle: PathBuf::from("/b"),
            annotations: HashMap::new(),
            husk: HuskRecord {
                backend: BackendKind::Vm,
                created: String::new(),
                rootfs: PathBuf::from("/b/rootfs"),
                pid_start_time: None,
                paths,
                timings_micros: BTreeMap::new(),
            },
            state_dir: state_dir.to_path_buf(),
        }
    }

    #[test]
    fn short_state_directories_hold_everything_with_the_sockets_apart() {
        let state = tempfile::tempdir().unwrap();
        let dir = state.path();
        let files = VmFiles::create(dir, Path::new("/nonexistent")).unwrap();
        assert_eq!(files.image, dir.join("rootfs.ext4"));
        assert_eq!(files.agent_socket, dir.join("sockets/agent.sock"));
        assert_eq!(files.control_socket(), dir.join("sockets/vsock.sock_1024"));
        assert_eq!(files.socket_dir, Some(dir.join("sockets")));
        assert!(dir.join("sockets").is_dir());
        assert_eq!(files.jail_dir, dir.join("jail"));
        assert!(
            !files.jail_dir.exists(),
            "made only when husk-vmm is jailed"
        );
    }

    #[test]
    fn long_state_directories_put_the_sockets_elsewhere_and_the_record_finds_them() {
        let short_root = tempfile::tempdir().unwrap();
        // containerd: /run/containerd/runc/<namespace>/<64 hex digits>.
        let state_dir = PathBuf::from(format!("/run/containerd/runc/k8s.io/{}", "a".repeat(64)));
        let files = VmFiles::create(&state_dir, short_root.path()).unwrap();
        let socket_dir = files.socket_dir.clone().expect("a socket directory");
        assert!(socket_dir.starts_with(short_root.path()));
        assert!(socket_dir.is_dir());
        for socket in [
            &files.agent_socket,
            &files.vsock_socket,
            &files.control_socket(),
            &files.console_socket,
        ] {
            assert!(socket.starts_with(&socket_dir), "{}", socket.display());
            assert!(
                socket.as_os_str().len() <= MAX_SOCKET_PATH,
                "{}",
                socket.display()
            );
        }
        assert!(files.image.starts_with(&state_dir));

        // A second container of the same state path gets its own.
        let again = VmFiles::create(&state_dir, short_root.path()).unwrap();
        assert_ne!(again.socket_dir, files.socket_dir);

        let record = record_with(files.record(Some(PathBuf::from("husk/c1"))), &state_dir);
        assert_eq!(VmFiles::of(&record), files);
        assert_eq!(record.husk.paths.cgroup, Some(PathBuf::from("husk/c1")));
    }

    #[test]
    fn removal_takes_every_file_and_tolerates_missing_ones() {
        let state = tempfile::tempdir().unwrap();
        let short_root = tempfile::tempdir().unwrap();
        let files = VmFiles::create(state.path(), short_root.path()).unwrap();
        fs::write(&files.image, "image").unwrap();
        fs::write(files.directory_image(0), "copy").unwrap();
        fs::write(files.directory_image(MAX_DIRECTORIES - 1), "copy").unwrap();
        fs::write(&files.vmm_log, "log").unwrap();
        fs::write(files.control_socket(), "").unwrap();
        files.create_jail_dir().unwrap();
        assert!(files.remove_all().is_empty());
        assert!(!files.image.exists());
        assert!(!files.vmm_log.exists());
        assert!(!files.control_socket().exists());
        // Nothing of ours is left in the state directory.
        assert_eq!(fs::read_dir(state.path()).unwrap().count(), 0);
        // A record that names nothing still finds the files by their names.
        let record = record_with(BackendPaths::default(), state.path());
        assert_eq!(VmFiles::of(&record).image, state.path().join(IMAGE));
    }
}
