//! What the jail must hold, worked out from husk-vmm's arguments alone: no
//! file is looked at here, so every rule can be tested without root.
//!
//! Each path husk-vmm was given reappears inside the jail at the same
//! absolute path, bind-mounted from the host:
//!
//! | Argument | In the jail | Access |
//! |---|---|---|
//! | `--kernel`, `--initrd` | the file | read-only |
//! | `--disk PATH,ro` | the file (or block device) | read-only |
//! | `--disk PATH` | the file (or block device) | read-write |
//! | `--serial FILE`, `--log FILE` | the file, made first if missing | read-write |
//! | `--vsock PATH` | PATH's directory: husk-vmm binds PATH and `PATH_<port>` there, host programs bind `PATH_<port>` | read-write |
//! | `--agent-socket PATH` | PATH's directory: husk-vmm binds `PATH.new` and renames it | read-write |
//! | `--console-socket PATH` | the socket: husk-vmm connects to it | read-write |
//! | `--kvm PATH` | a new device node with the host node's numbers | owned by the jail user |
//!
//! A file inside a directory that is already bound read-write needs no
//! mount of its own, unless it must be read-only there.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use super::JailError;
use crate::config::{SerialSink, VmConfig};
use crate::sandbox::{ContainerStdio, SandboxConfig};

/// The null device every husk-vmm needs (sandbox mode points stdin at it).
pub const DEV_NULL: &str = "/dev/null";
/// Where a terminal's devpts instance goes, and the ptmx link to it
/// (devpts(5): posix_openpt opens /dev/ptmx).
pub const DEV_PTS: &str = "/dev/pts";
pub const DEV_PTMX: &str = "/dev/ptmx";

/// Whether husk-vmm may write through a bind mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    ReadOnly,
    ReadWrite,
}

/// A bind mount's source and target are both files or both directories
/// (mount(2), EINVAL otherwise): what the jail makes as the mount point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum BindKind {
    /// Directories first: files inside them are mounted on top.
    Directory,
    File,
}

/// One host path bound into the jail at the same path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    /// What it is, for messages: "kernel", "disk", "vsock socket directory".
    pub what: &'static str,
    pub path: PathBuf,
    pub kind: BindKind,
    pub access: Access,
    /// A file husk-vmm creates if it is missing (`--serial`, `--log`): it
    /// must exist to be bound, so the jail creates it first.
    pub create: bool,
}

/// The jail's contents: the bind mounts in mounting order, the device
/// nodes it makes, and whether a terminal (devpts) is needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JailPlan {
    pub binds: Vec<BindMount>,
    /// The KVM device, made at the path husk-vmm opens.
    pub kvm: PathBuf,
    /// Sandbox mode with `--container-stdio terminal`: husk-vmm opens a
    /// pty, so the jail gets a devpts instance of its own.
    pub terminal: bool,
}

impl JailPlan {
    /// The plan for a VM configured as `vm`, with sandbox mode `sandbox`
    /// and husk-vmm's messages going to `log`, jailed in `root` (already
    /// resolved: no symbolic links).
    pub fn new(
        root: &Path,
        vm: &VmConfig,
        sandbox: Option<&SandboxConfig>,
        log: Option<&Path>,
    ) -> Result<JailPlan, JailError> {
        let mut wanted = Vec::new();
        let mut file = |what, path: &Path, access, create| {
            wanted.push(BindMount {
                what,
                path: path.to_owned(),
                kind: BindKind::File,
                access,
                create,
            })
        };
        file("kernel", &vm.kernel, Access::ReadOnly, false);
        if let Some(initrd) = &vm.initrd {
            file("initrd", initrd, Access::ReadOnly, false);
        }
        for disk in &vm.disks {
            let access = if disk.read_only {
                Access::ReadOnly
            } else {
                Access::ReadWrite
            };
            file("disk", &disk.path, access, false);
        }
        if let SerialSink::File(path) = &vm.serial {
            file("serial output file", path, Access::ReadWrite, true);
        }
        if let Some(log) = log {
            file("log", log, Access::ReadWrite, true);
        }
        let mut terminal = false;
        if let Some(sandbox) = sandbox {
            // The console socket is connected before the jail (main.rs):
            // the jail needs only devpts for the pty.
            terminal = matches!(sandbox.stdio, ContainerStdio::Terminal { .. });
        }
        let mut socket_directory = |what, socket: &Path| -> Result<(), JailError> {
            let socket = normalized(what, socket)?;
            let directory = socket.parent().unwrap_or(Path::new("/"));
            if directory == Path::new("/") {
                return Err(JailError::SocketInRootDirectory {
                    what,
                    path: socket.clone(),
                });
            }
            wanted.push(BindMount {
                what,
                path: directory.to_owned(),
                kind: BindKind::Directory,
                access: Access::ReadWrite,
                create: false,
            });
            Ok(())
        };
        if let Some(vsock) = &vm.vsock {
            socket_directory("vsock socket directory", &vsock.uds_path)?;
        }
        if let Some(sandbox) = sandbox {
            socket_directory("agent socket directory", &sandbox.agent_socket)?;
        }

        let root = normalized("jail directory", root)?;
        let kvm = normalized("KVM device", &vm.kvm_path)?;
        let mut made_by_jail = vec![kvm.clone(), PathBuf::from(DEV_NULL)];
        if terminal {
            made_by_jail.extend([PathBuf::from(DEV_PTS), PathBuf::from(DEV_PTMX)]);
        }

        let mut by_path: BTreeMap<PathBuf, BindMount> = BTreeMap::new();
        for mut bind in wanted {
            bind.path = normalized(bind.what, &bind.path)?;
            // A path inside the jail directory would be hidden by the
            // tmpfs. The jail directory inside a bound one is fine: bind
            // mounts here do not take the mounts beneath them along, so
            // the jail sees the empty directory the host has there.
            if bind.path.starts_with(&root) {
                return Err(JailError::OverlapsJail {
                    what: bind.what,
                    path: bind.path,
                    root,
                });
            }
            if let Some(own) = made_by_jail
                .iter()
                .find(|own| own.starts_with(&bind.path) || bind.path.starts_with(own))
            {
                return Err(JailError::ClashesWithJailDevice {
                    what: bind.what,
                    path: bind.path,
                    device: own.clone(),
                });
            }
            match by_path.get_mut(&bind.path) {
                None => {
                    by_path.insert(bind.path.clone(), bind);
                }
                Some(earlier) if earlier.kind != bind.kind => {
                    let (file, directory) = if bind.kind == BindKind::File {
                        (bind.what, earlier.what)
                    } else {
                        (earlier.what, bind.what)
                    };
                    return Err(JailError::FileAndDirectory {
                        file,
                        directory,
                        path: bind.path,
                    });
                }
                Some(earlier) => {
                    // Several uses of one file: it is writable if any of
                    // them writes, and made if any of them makes it.
                    earlier.access = earlier.access.max(bind.access);
                    earlier.create |= bind.create;
                }
            }
        }

        let writable_directories: Vec<PathBuf> = by_path
            .values()
            .filter(|bind| bind.kind == BindKind::Directory && bind.access == Access::ReadWrite)
            .map(|bind| bind.path.clone())
            .collect();
        let inside_writable_directory = |path: &Path| {
            writable_directories
                .iter()
                .any(|directory| path != directory && path.starts_with(directory))
        };
        let mut binds: Vec<BindMount> = by_path
            .into_values()
            .filter(|bind| {
                // Seen through the directory already, as it is: only a
                // read-only view needs a mount on top.
                !(inside_writable_directory(&bind.path)
                    && (bind.kind == BindKind::Directory || bind.access == Access::ReadWrite))
            })
            .collect();
        binds.sort_by(|a, b| (a.kind, &a.path).cmp(&(b.kind, &b.path)));
        Ok(JailPlan {
            binds,
            kvm,
            terminal,
        })
    }
}

/// `path` as a plain absolute path: no `.`, no doubled `/`. A relative
/// path or one with `..` is refused, since it would resolve differently
/// once the jail is the root.
pub fn normalized(what: &'static str, path: &Path) -> Result<PathBuf, JailError> {
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::RootDir => clean.push("/"),
            Component::Normal(part) if clean.has_root() => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(JailError::DotDotPath {
                    what,
                    path: path.to_owned(),
                })
            }
            Component::Normal(_) | Component::Prefix(_) => {
                return Err(JailError::RelativePath {
                    what,
                    path: path.to_owned(),
                })
            }
        }
    }
    if !clean.has_root() {
        return Err(JailError::RelativePath {
            what,
            path: path.to_owned(),
        });
    }
    Ok(clean)
}

/// Where `path` (absolute) lies under the jail's root directory `root`,
/// seen from outside the jail.
pub fn inside(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DiskConfig, VsockConfig};
    use crate::seccomp::SeccompMode;

    const ROOT: &str = "/srv/jail/c1";

    fn vm() -> VmConfig {
        let mut vm = VmConfig::new("/cache/kernel/vmlinux".into());
        vm.initrd = Some("/cache/initramfs.cpio".into());
        vm
    }

    fn sandbox(state: &str, stdio: ContainerStdio) -> SandboxConfig {
        SandboxConfig {
            agent_socket: format!("{state}/agent.sock").into(),
            stdio,
            seccomp: SeccompMode::Kill,
        }
    }

    fn plan(
        vm: &VmConfig,
        sandbox: Option<&SandboxConfig>,
        log: Option<&str>,
    ) -> Result<JailPlan, JailError> {
        JailPlan::new(Path::new(ROOT), vm, sandbox, log.map(Path::new))
    }

    /// (path, kind, access, create) of each bind, in mounting order.
    fn binds(plan: &JailPlan) -> Vec<(&str, BindKind, Access, bool)> {
        plan.binds
            .iter()
            .map(|bind| {
                (
                    bind.path.to_str().unwrap(),
                    bind.kind,
                    bind.access,
                    bind.create,
                )
            })
            .collect()
    }

    use Access::{ReadOnly, ReadWrite};
    use BindKind::{Directory, File};

    #[test]
    fn a_plain_vm_gets_its_files_read_only_and_its_disks_as_asked() {
        let mut vm = vm();
        vm.disks = vec![
            DiskConfig {
                path: "/images/root.ext4".into(),
                read_only: false,
            },
            DiskConfig {
                path: "/images/data.ext4".into(),
                read_only: true,
            },
        ];
        vm.serial = SerialSink::File("/logs/console.log".into());
        let plan = plan(&vm, None, None).unwrap();
        assert_eq!(
            binds(&plan),
            [
                ("/cache/initramfs.cpio", File, ReadOnly, false),
                ("/cache/kernel/vmlinux", File, ReadOnly, false),
                ("/images/data.ext4", File, ReadOnly, false),
                ("/images/root.ext4", File, ReadWrite, false),
                ("/logs/console.log", File, ReadWrite, true),
            ]
        );
        assert_eq!(plan.kvm, Path::new("/dev/kvm"));
        assert!(!plan.terminal);
    }

    #[test]
    fn the_husk_cli_layout_binds_the_state_directory_once() {
        // What the husk CLI passes (shim/src/backend/vm/vmm.rs): everything
        // of the container in its state directory, the kernel elsewhere.
        let state = "/run/husk/c1";
        let mut vm = vm();
        vm.disks = vec![
            DiskConfig {
                path: format!("{state}/rootfs.ext4").into(),
                read_only: false,
            },
            DiskConfig {
                path: format!("{state}/directory-0.ext4").into(),
                read_only: true,
            },
        ];
        vm.serial = SerialSink::File(format!("{state}/console.log").into());
        vm.vsock = Some(VsockConfig {
            uds_path: format!("{state}/vsock.sock").into(),
            guest_cid: 3,
        });
        let sandbox = sandbox(state, ContainerStdio::Pipes);
        let log = format!("{state}/vmm.log");
        let plan = plan(&vm, Some(&sandbox), Some(&log)).unwrap();
        assert_eq!(
            binds(&plan),
            [
                // The sockets' directory: the writable disk, the console
                // and the log are seen through it...
                ("/run/husk/c1", Directory, ReadWrite, false),
                ("/cache/initramfs.cpio", File, ReadOnly, false),
                ("/cache/kernel/vmlinux", File, ReadOnly, false),
                // ...and the read-only disk is made read-only on top.
                ("/run/husk/c1/directory-0.ext4", File, ReadOnly, false),
            ]
        );
    }

    #[test]
    fn sockets_in_other_directories_bring_those_directories() {
        let mut vm = vm();
        vm.vsock = Some(VsockConfig {
            uds_path: "/run/husk-vm/0123/vsock.sock".into(),
            guest_cid: 3,
        });
        let sandbox = sandbox(
            "/run/husk-vm/0123",
            ContainerStdio::Terminal {
                console_socket: "/tmp/conmon-term.1".into(),
            },
        );
        let plan = plan(&vm, Some(&sandbox), Some("/run/husk/c1/vmm.log")).unwrap();
        assert_eq!(
            binds(&plan),
            [
                ("/run/husk-vm/0123", Directory, ReadWrite, false),
                ("/cache/initramfs.cpio", File, ReadOnly, false),
                ("/cache/kernel/vmlinux", File, ReadOnly, false),
                ("/run/husk/c1/vmm.log", File, ReadWrite, true),
            ]
        );
        assert!(plan.terminal, "a terminal needs devpts in the jail");
    }

    #[test]
    fn one_file_used_twice_is_bound_once_with_the_wider_access() {
        let mut vm = vm();
        vm.disks = vec![
            DiskConfig {
                path: "/images/a.ext4".into(),
                read_only: true,
            },
            DiskConfig {
                path: "/images//./a.ext4".into(),
                read_only: false,
            },
        ];
        vm.serial = SerialSink::File("/logs/out".into());
        let plan = plan(&vm, None, Some("/logs/out")).unwrap();
        let images: Vec<_> = binds(&plan)
            .into_iter()
            .filter(|(path, ..)| !path.starts_with("/cache"))
            .collect();
        assert_eq!(
            images,
            [
                ("/images/a.ext4", File, ReadWrite, false),
                ("/logs/out", File, ReadWrite, true),
            ]
        );
    }

    #[test]
    fn paths_that_would_resolve_differently_in_the_jail_are_refused() {
        let mut relative = vm();
        relative.kernel = "vmlinux".into();
        let error = plan(&relative, None, None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "--jail needs absolute paths: the kernel vmlinux is relative"
        );
        let mut dotdot = vm();
        dotdot.initrd = Some("/cache/../etc/shadow".into());
        let error = plan(&dotdot, None, None).unwrap_err();
        assert!(matches!(
            error,
            JailError::DotDotPath { what: "initrd", .. }
        ));
        assert!(
            error.to_string().contains("/cache/../etc/shadow"),
            "{error}"
        );
    }

    #[test]
    fn nothing_may_overlap_the_jail_directory_or_its_devices() {
        let mut vm = vm();
        vm.serial = SerialSink::File(format!("{ROOT}/console.log").into());
        assert!(matches!(
            plan(&vm, None, None),
            Err(JailError::OverlapsJail {
                what: "serial output file",
                ..
            })
        ));

        // The jail directory may be inside a bound one (the CLI's state
        // directory holding `jail/` beside the sockets).
        let mut vm = self::vm();
        vm.vsock = Some(VsockConfig {
            uds_path: "/srv/jail/vsock.sock".into(),
            guest_cid: 3,
        });
        let nested = plan(&vm, None, None).unwrap();
        assert_eq!(nested.binds[0].path, Path::new("/srv/jail"));

        let mut vm = self::vm();
        vm.vsock = Some(VsockConfig {
            uds_path: "/vsock.sock".into(),
            guest_cid: 3,
        });
        let error = plan(&vm, None, None).unwrap_err();
        assert!(
            error.to_string().contains("/vsock.sock"),
            "the whole host root would be in the jail: {error}"
        );

        let mut vm = self::vm();
        vm.vsock = Some(VsockConfig {
            uds_path: "/dev/vsock.sock".into(),
            guest_cid: 3,
        });
        assert!(matches!(
            plan(&vm, None, None),
            Err(JailError::ClashesWithJailDevice { .. })
        ));

        let mut vm = self::vm();
        vm.disks = vec![DiskConfig {
            path: "/dev/null".into(),
            read_only: true,
        }];
        assert!(matches!(
            plan(&vm, None, None),
            Err(JailError::ClashesWithJailDevice { .. })
        ));

        // A block device elsewhere in /dev is fine.
        let mut vm = self::vm();
        vm.disks = vec![DiskConfig {
            path: "/dev/vdb".into(),
            read_only: false,
        }];
        let plan = plan(&vm, None, None).unwrap();
        assert!(plan
            .binds
            .iter()
            .any(|bind| bind.path == Path::new("/dev/vdb")));
    }

    #[test]
    fn a_file_where_a_directory_is_needed_is_refused() {
        let mut vm = vm();
        vm.disks = vec![DiskConfig {
            path: "/run/s".into(),
            read_only: true,
        }];
        vm.vsock = Some(VsockConfig {
            uds_path: "/run/s/vsock.sock".into(),
            guest_cid: 3,
        });
        assert!(matches!(
            plan(&vm, None, None),
            Err(JailError::FileAndDirectory { .. })
        ));
    }

    #[test]
    fn jail_paths_are_under_the_root() {
        assert_eq!(
            inside(Path::new(ROOT), Path::new("/dev/kvm")),
            Path::new("/srv/jail/c1/dev/kvm")
        );
        assert_eq!(
            normalized("x", Path::new("/a/./b//c/")).unwrap(),
            Path::new("/a/b/c")
        );
    }
}
