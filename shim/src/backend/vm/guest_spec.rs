//! The bundle's config.json as the guest gets it: what lives on the host
//! is taken out and handled here, the rest travels unchanged.
//!
//! - **Bind mounts** (`type` "bind", or a `bind`/`rbind` option; runtime-spec
//!   config.md "Mounts"), by what their source is on the host:
//!   - a regular file (podman's /etc/hosts, /etc/resolv.conf, /etc/hostname,
//!     /run/.containerenv, secrets): its contents travel with the create
//!     request as a [`FileMount`]; the mount stays in the spec, so its
//!     place and options still apply. The file is copied at create: later
//!     changes on the host do not reach the container.
//!   - a directory: there is no shared filesystem yet, so it becomes a
//!     [`HostDirectory`], which `create` copies into a read-only disk of
//!     the VM (see the `directories` module); the mount stays in the spec,
//!     as for a file. At most [`MAX_DIRECTORIES`] of them.
//!   - a device node that every guest has (/dev/null, /dev/zero, ...):
//!     kept, the guest binds its own.
//!   - any other device, a socket or a FIFO: dropped with a warning.
//!
//!   Other mounts (proc, tmpfs, devpts, ...) are made by the guest.
//! - **Hooks** whose path is on the host (prestart, createRuntime, poststart,
//!   poststop; config.md "POSIX-platform Hooks") are taken out and run on
//!   the host by the CLI; createContainer and startContainer run in the
//!   container's namespaces, so they stay and run in the guest.
//! - **Namespaces given by path** name the host's namespaces, which a guest
//!   cannot join. A network namespace becomes a new one (the guest has
//!   loopback only) with a warning; any other is refused, naming the field.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::{fmt, fs, io};

use husk_init::engine::Bundle;
use husk_protocol::FileMount;
use oci_spec::runtime::{Hooks, LinuxNamespaceType, Mount, Spec};

use super::directories::MAX_DIRECTORIES;
use super::host_hooks::HostHooks;

/// The most bytes of bind-mounted files one container may get: they travel
/// base64-encoded inside one frame of at most
/// `husk_protocol::MAX_FRAME_BYTES` (8 MiB), next to the spec.
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// Device nodes every guest has at the same path and with the same
/// meaning, so a bind of one needs nothing from the host.
const GUEST_DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
];

#[derive(Debug, thiserror::Error)]
pub enum GuestSpecError {
    #[error(
        "{}: mounts[{index}] (destination {destination}): the source {} does not exist on this host",
        config.display(),
        source_path.display()
    )]
    MissingSource {
        config: PathBuf,
        index: usize,
        destination: String,
        source_path: PathBuf,
    },
    #[error(
        "{}: mounts[{index}] (destination {destination}): read the source {}",
        config.display(),
        source_path.display()
    )]
    ReadSource {
        config: PathBuf,
        index: usize,
        destination: String,
        source_path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{}: bind-mounted files add up to {total} bytes (mounts[{index}], destination \
         {destination}, passes the limit); the vm backend copies such files into the VM and \
         takes at most {MAX_FILE_BYTES} bytes of them",
        config.display()
    )]
    FilesTooLarge {
        config: PathBuf,
        index: usize,
        destination: String,
        total: u64,
    },
    #[error(
        "{}: mounts[{index}] (destination {destination}): more than {MAX_DIRECTORIES} \
         bind-mounted host directories; the vm backend gives each a disk of the VM and takes at \
         most {MAX_DIRECTORIES} (bind fewer, or a common parent, or use the container backend)",
        config.display()
    )]
    TooManyDirectories {
        config: PathBuf,
        index: usize,
        destination: String,
    },
    #[error(
        "{}: linux.namespaces[{index}]: the {kind} namespace {} is the host's; a container in a \
         VM cannot join it (leave out \"path\" for a new one)",
        config.display(),
        path.display()
    )]
    HostNamespace {
        config: PathBuf,
        index: usize,
        kind: String,
        path: PathBuf,
    },
}

/// Why a mount does not reach the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    Device,
    Socket,
    Fifo,
}

/// A mount or namespace left out of the guest's spec, for the warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dropped {
    Mount {
        index: usize,
        source: PathBuf,
        destination: String,
        reason: DropReason,
    },
    NetworkNamespace {
        index: usize,
        path: PathBuf,
    },
}

impl fmt::Display for Dropped {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dropped::Mount {
                index,
                source,
                destination,
                reason,
            } => {
                let what = match reason {
                    DropReason::Device => "is a host device the VM does not have",
                    DropReason::Socket => "is a host socket, which cannot reach the VM",
                    DropReason::Fifo => "is a host FIFO, which cannot reach the VM",
                };
                write!(
                    formatter,
                    "mounts[{index}]: bind mount of {} on {destination} left out: the source {what}",
                    source.display()
                )
            }
            Dropped::NetworkNamespace { index, path } => write!(
                formatter,
                "linux.namespaces[{index}]: the network namespace {} is the host's; the \
                 container gets a new one in the VM, with loopback only",
                path.display()
            ),
        }
    }
}

/// A bind mount whose source is a host directory, which reaches the guest
/// as a read-only copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDirectory {
    /// Its place in config.json's `mounts`.
    pub index: usize,
    pub destination: String,
    /// The directory on the host (a relative source made absolute against
    /// the bundle).
    pub source: PathBuf,
}

/// What `create` sends to the guest and keeps for the host.
#[derive(Debug, Clone)]
pub struct GuestSpec {
    pub spec: Spec,
    pub files: Vec<FileMount>,
    /// In the order of their mounts.
    pub directories: Vec<HostDirectory>,
    pub dropped: Vec<Dropped>,
    pub host_hooks: HostHooks,
}

/// Splits the bundle's spec into the guest's part and the host's.
pub fn prepare(bundle: &Bundle) -> Result<GuestSpec, GuestSpecError> {
    let mut spec = bundle.spec.clone();
    let mut files = Vec::new();
    let mut directories = Vec::new();
    let mut dropped = Vec::new();
    let mut file_bytes = 0u64;
    let mut kept_mounts = Vec::new();
    for (index, mount) in spec
        .mounts()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        match plan_mount(&mount, &bundle.path, &bundle.config_path, index)? {
            MountPlan::Keep => kept_mounts.push(mount),
            MountPlan::SharedMemory => kept_mounts.push(shared_memory_tmpfs()),
            MountPlan::Deliver { source_path } => {
                let destination = mount.destination().to_string_lossy().into_owned();
                let read_error = |source| GuestSpecError::ReadSource {
                    config: bundle.config_path.clone(),
                    index,
                    destination: destination.clone(),
                    source_path: source_path.clone(),
                    source,
                };
                let metadata = fs::metadata(&source_path).map_err(read_error)?;
                file_bytes += metadata.len();
                if file_bytes > MAX_FILE_BYTES {
                    return Err(GuestSpecError::FilesTooLarge {
                        config: bundle.config_path.clone(),
                        index,
                        destination,
                        total: file_bytes,
                    });
                }
                let contents = fs::read(&source_path).map_err(read_error)?;
                files.push(FileMount {
                    destination,
                    contents,
                    mode: metadata.permissions().mode() & 0o7777,
                });
                kept_mounts.push(mount);
            }
            MountPlan::Copy { source_path } => {
                let destination = mount.destination().to_string_lossy().into_owned();
                if directories.len() == MAX_DIRECTORIES {
                    return Err(GuestSpecError::TooManyDirectories {
                        config: bundle.config_path.clone(),
                        index,
                        destination,
                    });
                }
                directories.push(HostDirectory {
                    index,
                    destination,
                    source: source_path,
                });
                kept_mounts.push(mount);
            }
            MountPlan::Drop {
                source_path,
                reason,
            } => dropped.push(Dropped::Mount {
                index,
                source: source_path,
                destination: mount.destination().to_string_lossy().into_owned(),
                reason,
            }),
        }
    }
    if spec.mounts().is_some() {
        spec.set_mounts(Some(kept_mounts));
    }
    dropped.extend(replace_host_namespaces(&mut spec, &bundle.config_path)?);
    let host_hooks = take_host_hooks(&mut spec);
    Ok(GuestSpec {
        spec,
        files,
        directories,
        dropped,
        host_hooks,
    })
}

enum MountPlan {
    Keep,
    /// The container's /dev/shm bound from a host directory (docker and
    /// containerd's CRI do this, one directory per container): shared
    /// memory is per container anyway, so the guest gets a tmpfs there,
    /// writable as the container expects, rather than a read-only copy.
    SharedMemory,
    Deliver {
        source_path: PathBuf,
    },
    Copy {
        source_path: PathBuf,
    },
    Drop {
        source_path: PathBuf,
        reason: DropReason,
    },
}

/// A tmpfs for /dev/shm with docker's defaults (64 MiB).
fn shared_memory_tmpfs() -> Mount {
    let mut mount = Mount::default();
    mount.set_destination(PathBuf::from("/dev/shm"));
    mount.set_typ(Some("tmpfs".to_string()));
    mount.set_source(Some(PathBuf::from("shm")));
    mount.set_options(Some(
        ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]
            .map(String::from)
            .to_vec(),
    ));
    mount
}

/// Whether a mount is a bind mount: config.md says a bind or rbind option
/// makes one; the older convention is type "bind".
fn is_bind(mount: &Mount) -> bool {
    mount.typ().as_deref() == Some("bind")
        || mount
            .options()
            .iter()
            .flatten()
            .any(|option| option == "bind" || option == "rbind")
}

fn plan_mount(
    mount: &Mount,
    bundle_dir: &Path,
    config: &Path,
    index: usize,
) -> Result<MountPlan, GuestSpecError> {
    if !is_bind(mount) {
        return Ok(MountPlan::Keep);
    }
    let Some(source) = mount.source() else {
        return Ok(MountPlan::Keep);
    };
    // config.md: a bind mount's source is absolute or relative to the
    // bundle.
    let source_path = bundle_dir.join(source);
    let metadata = match fs::metadata(&source_path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Err(GuestSpecError::MissingSource {
                config: config.to_path_buf(),
                index,
                destination: mount.destination().to_string_lossy().into_owned(),
                source_path,
            })
        }
        Err(source) => {
            return Err(GuestSpecError::ReadSource {
                config: config.to_path_buf(),
                index,
                destination: mount.destination().to_string_lossy().into_owned(),
                source_path,
                source,
            })
        }
    };
    let file_type = metadata.file_type();
    let drop = |reason| {
        Ok(MountPlan::Drop {
            source_path: source_path.clone(),
            reason,
        })
    };
    if file_type.is_file() {
        Ok(MountPlan::Deliver {
            source_path: source_path.clone(),
        })
    } else if file_type.is_dir() && mount.destination() == Path::new("/dev/shm") {
        Ok(MountPlan::SharedMemory)
    } else if file_type.is_dir() {
        Ok(MountPlan::Copy {
            source_path: source_path.clone(),
        })
    } else if file_type.is_char_device() || file_type.is_block_device() {
        if GUEST_DEVICES
            .iter()
            .any(|device| source_path == Path::new(device))
        {
            Ok(MountPlan::Keep)
        } else {
            drop(DropReason::Device)
        }
    } else if file_type.is_socket() {
        drop(DropReason::Socket)
    } else {
        drop(DropReason::Fifo)
    }
}

/// Namespaces given by path are the host's: a network namespace becomes a
/// new one, any other is refused.
fn replace_host_namespaces(spec: &mut Spec, config: &Path) -> Result<Vec<Dropped>, GuestSpecError> {
    let Some(linux) = spec.linux_mut().as_mut() else {
        return Ok(Vec::new());
    };
    let Some(namespaces) = linux.namespaces_mut().as_mut() else {
        return Ok(Vec::new());
    };
    let mut dropped = Vec::new();
    for (index, namespace) in namespaces.iter_mut().enumerate() {
        let Some(path) = namespace.path().clone() else {
            continue;
        };
        if namespace.typ() == LinuxNamespaceType::Network {
            namespace.set_path(None);
            dropped.push(Dropped::NetworkNamespace { index, path });
        } else {
            return Err(GuestSpecError::HostNamespace {
                config: config.to_path_buf(),
                index,
                kind: namespace.typ().to_string(),
                path,
            });
        }
    }
    Ok(dropped)
}

/// Takes the host-side hooks out of `spec`.
fn take_host_hooks(spec: &mut Spec) -> HostHooks {
    let Some(hooks) = spec.hooks().clone() else {
        return HostHooks::default();
    };
    #[allow(deprecated)]
    let host = HostHooks {
        prestart: hooks.prestart().clone().unwrap_or_default(),
        create_runtime: hooks.create_runtime().clone().unwrap_or_default(),
        poststart: hooks.poststart().clone().unwrap_or_default(),
        poststop: hooks.poststop().clone().unwrap_or_default(),
    };
    let mut guest = Hooks::default();
    guest
        .set_create_container(hooks.create_container().clone())
        .set_start_container(hooks.start_container().clone());
    let guest_has_hooks = guest.create_container().is_some() || guest.start_container().is_some();
    spec.set_hooks(guest_has_hooks.then_some(guest));
    host
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;

    use husk_init::engine::load_bundle;
    use oci_spec::runtime::Hook;
    use serde_json::{json, Value};

    use super::*;

    struct TestBundle {
        directory: tempfile::TempDir,
    }

    impl TestBundle {
        fn new() -> TestBundle {
            let directory = tempfile::tempdir().unwrap();
            fs::create_dir_all(directory.path().join("bundle/rootfs")).unwrap();
            TestBundle { directory }
        }

        fn path(&self, name: &str) -> PathBuf {
            self.directory.path().join(name)
        }

        /// A bundle with these mounts, hooks and namespaces besides the
        /// mount namespace every bundle needs.
        fn load(&self, mounts: Value, hooks: Value, namespaces: Value) -> Bundle {
            let mut namespaces = namespaces.as_array().cloned().unwrap_or_default();
            namespaces.insert(0, json!({"type": "mount"}));
            let config = json!({
                "ociVersion": "1.2.0",
                "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
                "root": {"path": "rootfs"},
                "mounts": mounts,
                "hooks": hooks,
                "linux": {"namespaces": namespaces},
            });
            let bundle = self.path("bundle");
            fs::write(bundle.join("config.json"), config.to_string()).unwrap();
            load_bundle(&bundle).unwrap()
        }
    }

    fn destinations(spec: &Spec) -> Vec<String> {
        spec.mounts()
            .iter()
            .flatten()
            .map(|mount| mount.destination().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn bind_mounted_files_travel_directories_are_copied_and_sockets_are_dropped() {
        let test = TestBundle::new();
        fs::write(test.path("hosts"), "127.0.0.1 localhost\n10.0.0.7 db\n").unwrap();
        fs::set_permissions(test.path("hosts"), fs::Permissions::from_mode(0o640)).unwrap();
        fs::create_dir(test.path("data")).unwrap();
        let _listener = UnixListener::bind(test.path("api.sock")).unwrap();
        // A relative source is relative to the bundle.
        fs::write(test.path("bundle/resolv.conf"), "nameserver 10.0.0.1\n").unwrap();
        let bundle = test.load(
            json!([
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/etc/hosts", "type": "bind", "source": test.path("hosts"),
                 "options": ["rbind", "ro"]},
                {"destination": "/data", "source": test.path("data"), "options": ["bind"]},
                {"destination": "/run/api.sock", "type": "bind", "source": test.path("api.sock"),
                 "options": ["bind"]},
                {"destination": "/etc/resolv.conf", "type": "bind", "source": "resolv.conf",
                 "options": ["bind"]},
                {"destination": "/dev/kmsg-like", "type": "bind", "source": "/dev/null",
                 "options": ["bind"]},
                {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}
            ]),
            json!({}),
            json!([]),
        );
        let guest = prepare(&bundle).unwrap();
        // The directory's mount stays in place, like the files'.
        assert_eq!(
            destinations(&guest.spec),
            [
                "/proc",
                "/etc/hosts",
                "/data",
                "/etc/resolv.conf",
                "/dev/kmsg-like",
                "/tmp"
            ]
        );
        assert_eq!(
            guest.directories,
            [HostDirectory {
                index: 2,
                destination: "/data".to_string(),
                source: test.path("data"),
            }]
        );
        assert_eq!(
            guest.files,
            [
                FileMount {
                    destination: "/etc/hosts".to_string(),
                    contents: b"127.0.0.1 localhost\n10.0.0.7 db\n".to_vec(),
                    mode: 0o640,
                },
                FileMount {
                    destination: "/etc/resolv.conf".to_string(),
                    contents: b"nameserver 10.0.0.1\n".to_vec(),
                    mode: 0o644,
                }
            ]
        );
        // The delivered file's mount keeps its options.
        let hosts = guest.spec.mounts().as_ref().unwrap()[1].clone();
        assert_eq!(
            hosts.options().clone().unwrap(),
            ["rbind".to_string(), "ro".to_string()]
        );
        let warnings: Vec<String> = guest.dropped.iter().map(ToString::to_string).collect();
        assert_eq!(
            warnings,
            [format!(
                "mounts[3]: bind mount of {} on /run/api.sock left out: the source is a host \
                 socket, which cannot reach the VM",
                test.path("api.sock").display()
            )]
        );
    }

    #[test]
    fn a_host_directory_bound_on_dev_shm_becomes_a_tmpfs_in_the_guest() {
        let test = TestBundle::new();
        fs::create_dir(test.path("shm")).unwrap();
        let bundle = test.load(
            json!([{"destination": "/dev/shm", "type": "bind", "source": test.path("shm"),
                    "options": ["rbind", "rw"]}]),
            json!({}),
            json!([]),
        );
        let guest = prepare(&bundle).unwrap();
        assert!(guest.directories.is_empty(), "no read-only copy of it");
        let shm = guest.spec.mounts().as_ref().unwrap()[0].clone();
        assert_eq!(shm.destination(), Path::new("/dev/shm"));
        assert_eq!(shm.typ().as_deref(), Some("tmpfs"));
        assert!(shm
            .options()
            .as_ref()
            .unwrap()
            .contains(&"mode=1777".to_string()));
    }

    #[test]
    fn a_relative_directory_source_is_the_bundle_s() {
        let test = TestBundle::new();
        fs::create_dir(test.path("bundle/shared")).unwrap();
        let bundle = test.load(
            json!([{"destination": "/shared", "source": "shared", "options": ["rbind", "ro"]}]),
            json!({}),
            json!([]),
        );
        let guest = prepare(&bundle).unwrap();
        assert_eq!(guest.directories.len(), 1);
        assert_eq!(guest.directories[0].source, test.path("bundle/shared"));
        assert_eq!(destinations(&guest.spec), ["/shared"]);
    }

    #[test]
    fn more_directories_than_the_vm_has_disks_for_are_refused_naming_the_first_too_many() {
        let test = TestBundle::new();
        fs::create_dir(test.path("shared")).unwrap();
        let mount = |number: usize| {
            json!({"destination": format!("/d{number}"), "type": "bind",
                   "source": test.path("shared"), "options": ["rbind"]})
        };
        // A tmpfs first: the error names the place in config.json.
        let mut mounts = vec![json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"})];
        mounts.extend((0..MAX_DIRECTORIES).map(mount));
        let bundle = test.load(Value::Array(mounts.clone()), json!({}), json!([]));
        assert_eq!(
            prepare(&bundle).unwrap().directories.len(),
            MAX_DIRECTORIES,
            "{MAX_DIRECTORIES} directories are allowed"
        );
        mounts.push(mount(MAX_DIRECTORIES));
        let bundle = test.load(Value::Array(mounts), json!({}), json!([]));
        let error = prepare(&bundle).unwrap_err().to_string();
        assert!(
            error.ends_with(
                "config.json: mounts[13] (destination /d12): more than 12 bind-mounted host \
                 directories; the vm backend gives each a disk of the VM and takes at most 12 \
                 (bind fewer, or a common parent, or use the container backend)"
            ),
            "{error}"
        );
    }

    #[test]
    fn a_missing_bind_source_names_the_mount() {
        let test = TestBundle::new();
        let bundle = test.load(
            json!([{"destination": "/etc/hosts", "type": "bind", "source": "/nowhere/hosts",
                    "options": ["rbind"]}]),
            json!({}),
            json!([]),
        );
        let error = prepare(&bundle).unwrap_err().to_string();
        assert!(
            error.ends_with(
                "config.json: mounts[0] (destination /etc/hosts): the source /nowhere/hosts \
                 does not exist on this host"
            ),
            "{error}"
        );
    }

    #[test]
    fn too_many_file_bytes_are_refused_before_anything_is_sent() {
        let test = TestBundle::new();
        fs::write(test.path("big"), vec![b'x'; MAX_FILE_BYTES as usize + 1]).unwrap();
        let bundle = test.load(
            json!([{"destination": "/big", "type": "bind", "source": test.path("big"),
                    "options": ["bind"]}]),
            json!({}),
            json!([]),
        );
        let error = prepare(&bundle).unwrap_err().to_string();
        assert!(error.contains("mounts[0], destination /big"), "{error}");
        assert!(
            error.contains(&format!("at most {MAX_FILE_BYTES} bytes")),
            "{error}"
        );
    }

    #[test]
    fn host_hooks_stay_on_the_host_and_container_hooks_go_to_the_guest() {
        let test = TestBundle::new();
        let hook = |path: &str| json!([{"path": path}]);
        let bundle = test.load(
            json!([]),
            json!({
                "prestart": hook("/usr/bin/prestart"),
                "createRuntime": hook("/usr/bin/create-runtime"),
                "createContainer": hook("/bin/in-container-create"),
                "startContainer": hook("/bin/in-container-start"),
                "poststart": hook("/usr/bin/poststart"),
                "poststop": hook("/usr/bin/poststop"),
            }),
            json!([]),
        );
        let guest = prepare(&bundle).unwrap();
        let path_of = |hooks: &[Hook]| -> Vec<PathBuf> {
            hooks.iter().map(|hook| hook.path().clone()).collect()
        };
        assert_eq!(
            path_of(&guest.host_hooks.prestart),
            [PathBuf::from("/usr/bin/prestart")]
        );
        assert_eq!(
            path_of(&guest.host_hooks.create_runtime),
            [PathBuf::from("/usr/bin/create-runtime")]
        );
        assert_eq!(
            path_of(&guest.host_hooks.poststart),
            [PathBuf::from("/usr/bin/poststart")]
        );
        assert_eq!(
            path_of(&guest.host_hooks.poststop),
            [PathBuf::from("/usr/bin/poststop")]
        );
        let sent = serde_json::to_value(guest.spec.hooks()).unwrap();
        assert_eq!(
            sent,
            json!({
                "createContainer": [{"path": "/bin/in-container-create"}],
                "startContainer": [{"path": "/bin/in-container-start"}],
            })
        );

        // Only host hooks: the guest gets none at all.
        let bundle = test.load(json!([]), json!({"poststop": hook("/x")}), json!([]));
        let guest = prepare(&bundle).unwrap();
        assert!(guest.spec.hooks().is_none());
        assert_eq!(guest.host_hooks.poststop.len(), 1);
    }

    #[test]
    fn a_host_network_namespace_becomes_a_new_one_and_others_are_refused() {
        let test = TestBundle::new();
        let bundle = test.load(
            json!([]),
            json!({}),
            json!([{"type": "pid"}, {"type": "network", "path": "/proc/self/ns/net"}]),
        );
        let guest = prepare(&bundle).unwrap();
        let namespaces = guest
            .spec
            .linux()
            .as_ref()
            .unwrap()
            .namespaces()
            .clone()
            .unwrap();
        assert_eq!(namespaces[2].typ(), LinuxNamespaceType::Network);
        assert_eq!(namespaces[2].path(), &None);
        assert_eq!(guest.dropped.len(), 1);
        assert!(guest.dropped[0]
            .to_string()
            .contains("/proc/self/ns/net is the host's"));

        let bundle = test.load(
            json!([]),
            json!({}),
            json!([{"type": "ipc", "path": "/proc/1/ns/ipc"}]),
        );
        let error = prepare(&bundle).unwrap_err().to_string();
        assert!(
            error.contains("linux.namespaces[1]: the ipc namespace /proc/1/ns/ipc is the host's"),
            "{error}"
        );
    }
}
