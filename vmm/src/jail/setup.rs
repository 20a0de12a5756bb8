//! The jail's steps inside its namespaces, in order: the new root, then
//! the process's limits and privileges. Run by the forked child, still
//! root with every capability, before it starts any thread.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

use super::plan::{inside, Access, BindKind, JailPlan, DEV_NULL, DEV_PTMX, DEV_PTS};
use super::sys::{JailSyscalls, Resource};
use super::{JailConfig, JailError};

/// The namespaces the jailed process gets besides its pid namespace, which
/// is made before the fork (unshare(2): CLONE_NEWPID applies to children).
pub const NAMESPACES: libc::c_int =
    libc::CLONE_NEWNS | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS | libc::CLONE_NEWNET;

/// The jail's hostname, in its own UTS namespace.
pub const HOSTNAME: &str = "husk";

/// The tmpfs that becomes the root: mount points, a few device nodes and
/// directories, nothing else. Root-owned and not world-writable (tmpfs(5)
/// defaults to 1777), and small.
const ROOT_TMPFS_OPTIONS: &str = "mode=0755,size=1m,nr_inodes=4096";

/// What was learnt about the host before the fork, for the steps here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// The device numbers of the host's KVM device.
    pub kvm_device: libc::dev_t,
    /// The device numbers of the host's /dev/null.
    pub null_device: libc::dev_t,
    /// Bind sources that are device nodes (block-device disks): their
    /// mounts must allow devices.
    pub device_sources: HashSet<PathBuf>,
}

/// Everything between the fork and running the VM.
pub fn confine(
    sys: &impl JailSyscalls,
    config: &JailConfig,
    plan: &JailPlan,
    facts: &HostFacts,
) -> Result<(), JailError> {
    sys.unshare(NAMESPACES).map_err(JailError::Unshare)?;
    sys.make_mounts_private()
        .map_err(JailError::MakeMountsPrivate)?;
    build_root(sys, config, plan, facts)?;
    enter_root(sys, &config.root)?;
    sys.set_hostname(HOSTNAME).map_err(JailError::Hostname)?;
    set_limits(sys, config)?;
    drop_privileges(sys, config)
}

/// Mounts a tmpfs on the jail directory and fills it: the bind mounts,
/// the device nodes, devpts for a terminal.
fn build_root(
    sys: &impl JailSyscalls,
    config: &JailConfig,
    plan: &JailPlan,
    facts: &HostFacts,
) -> Result<(), JailError> {
    let root = &config.root;
    sys.mount_tmpfs(root, libc::MS_NOSUID, ROOT_TMPFS_OPTIONS)
        .map_err(|source| JailError::MountRoot {
            path: root.clone(),
            source,
        })?;
    for bind in &plan.binds {
        let target = inside(root, &bind.path);
        let prepare = |source| JailError::MountPoint {
            path: bind.path.clone(),
            source,
        };
        make_parents(sys, root, &bind.path).map_err(prepare)?;
        // A file inside a directory bound before is there already: it is
        // its own source.
        let made = match bind.kind {
            BindKind::Directory => sys.create_dir(&target, 0o755),
            BindKind::File => sys.create_empty_file(&target),
        };
        already_there_is_fine(made).map_err(prepare)?;
        sys.bind(&bind.path, &target)
            .map_err(|source| JailError::Bind {
                what: bind.what,
                path: bind.path.clone(),
                source,
            })?;
        // A bind mount takes its flags from the mount it was made from;
        // set them: never set-user-ID or executable, devices only for a
        // disk that is one, read-only where husk-vmm only reads.
        let mut flags = libc::MS_NOSUID | libc::MS_NOEXEC;
        if !facts.device_sources.contains(&bind.path) {
            flags |= libc::MS_NODEV;
        }
        if bind.access == Access::ReadOnly {
            flags |= libc::MS_RDONLY;
        }
        sys.remount(&target, flags)
            .map_err(|source| JailError::Remount {
                what: bind.what,
                path: bind.path.clone(),
                source,
            })?;
    }

    let device = |path: &Path, mode, number, owner: Option<(u32, u32)>| {
        let node_error = |source| JailError::DeviceNode {
            path: path.to_owned(),
            source,
        };
        make_parents(sys, root, path).map_err(node_error)?;
        let target = inside(root, path);
        sys.make_char_device(&target, mode, number)
            .map_err(node_error)?;
        if let Some((uid, gid)) = owner {
            sys.set_owner(&target, uid, gid).map_err(node_error)?;
        }
        Ok::<(), JailError>(())
    };
    device(Path::new(DEV_NULL), 0o666, facts.null_device, None)?;
    // Made rather than bound, and given to the jail's user: the host's
    // node may be root's alone (or a group's), and KVM's ioctls need no
    // capability once the device is open (Documentation/virt/kvm/api.rst).
    device(
        &plan.kvm,
        0o600,
        facts.kvm_device,
        config.user.map(|user| (user.uid, user.gid)),
    )?;

    if plan.terminal {
        let pts = Path::new(DEV_PTS);
        let devpts_error = |source| JailError::Devpts {
            path: pts.to_owned(),
            source,
        };
        make_parents(sys, root, pts).map_err(devpts_error)?;
        already_there_is_fine(sys.create_dir(&inside(root, pts), 0o755)).map_err(devpts_error)?;
        sys.mount_devpts(&inside(root, pts)).map_err(devpts_error)?;
        sys.symlink(Path::new("pts/ptmx"), &inside(root, Path::new(DEV_PTMX)))
            .map_err(devpts_error)?;
    }
    Ok(())
}

/// Makes the jail the root, lets go of the host's, and makes the jail's
/// own tmpfs read-only (the mounts in it keep their own flags).
fn enter_root(sys: &impl JailSyscalls, root: &Path) -> Result<(), JailError> {
    sys.pivot_root(root)
        .map_err(|source| JailError::PivotRoot {
            path: root.to_owned(),
            source,
        })?;
    sys.detach_old_root().map_err(JailError::DetachOldRoot)?;
    sys.remount(
        Path::new("/"),
        libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NOEXEC,
    )
    .map_err(JailError::SealRoot)
}

/// Resource limits: a bound on open files; no core dumps (a core would
/// hold guest memory); no bound on file size, since disk images are
/// written. RLIMIT_NPROC is left alone: it counts every thread of every
/// process of the user, and several VMs may share one.
fn set_limits(sys: &impl JailSyscalls, config: &JailConfig) -> Result<(), JailError> {
    for (resource, limit) in [
        (Resource::OpenFiles, Some(config.fd_limit)),
        (Resource::CoreFileSize, Some(0)),
        (Resource::FileSize, None),
    ] {
        sys.set_rlimit(resource, limit)
            .map_err(|source| JailError::Rlimit {
                resource: resource.name(),
                source,
            })?;
    }
    Ok(())
}

/// no_new_privs, the jail's user and group, and no capability in any set.
/// The order matters: the bounding set needs CAP_SETPCAP and the ids
/// CAP_SETUID/CAP_SETGID, which go with the switch to another user
/// (capabilities(7), "Effect of user ID changes on capabilities"); that
/// switch also clears the parent-death signal (prctl(2),
/// PR_SET_PDEATHSIG), so it is set again last.
fn drop_privileges(sys: &impl JailSyscalls, config: &JailConfig) -> Result<(), JailError> {
    sys.set_no_new_privs().map_err(JailError::NoNewPrivs)?;
    if let Some(user) = config.user {
        sys.clear_supplementary_groups()
            .map_err(JailError::Groups)?;
        sys.set_gid(user.gid).map_err(|source| JailError::Gid {
            gid: user.gid,
            source,
        })?;
    }
    let capabilities = |step| move |source| JailError::Capabilities { step, source };
    sys.drop_bounding_set()
        .map_err(capabilities("empty the bounding set"))?;
    sys.clear_ambient_capabilities()
        .map_err(capabilities("clear the ambient set"))?;
    if let Some(user) = config.user {
        sys.set_uid(user.uid).map_err(|source| JailError::Uid {
            uid: user.uid,
            source,
        })?;
    }
    sys.clear_capabilities().map_err(capabilities(
        "clear the effective, permitted and inheritable sets",
    ))?;
    sys.set_parent_death_signal(libc::SIGKILL)
        .map_err(JailError::ParentDeathSignal)
}

/// Makes the directories above `path` in the jail that are not there.
fn make_parents(sys: &impl JailSyscalls, root: &Path, path: &Path) -> io::Result<()> {
    let mut ancestors: Vec<&Path> = path
        .ancestors()
        .skip(1)
        .filter(|ancestor| *ancestor != Path::new("/"))
        .collect();
    ancestors.reverse();
    for ancestor in ancestors {
        already_there_is_fine(sys.create_dir(&inside(root, ancestor), 0o755))?;
    }
    Ok(())
}

fn already_there_is_fine(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::HashSet;

    use super::*;
    use crate::config::{DiskConfig, VmConfig, VsockConfig};
    use crate::jail::JailUser;
    use crate::sandbox::{ContainerStdio, SandboxConfig};
    use crate::seccomp::SeccompMode;

    /// One recorded system call, paths as strings for short assertions.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Call {
        Unshare(libc::c_int),
        MakeMountsPrivate,
        MountTmpfs(String, libc::c_ulong),
        CreateDir(String, u32),
        CreateEmptyFile(String),
        Bind(String, String),
        Remount(String, libc::c_ulong),
        CharDevice(String, u32, libc::dev_t),
        Owner(String, u32, u32),
        Devpts(String),
        Symlink(String, String),
        PivotRoot(String),
        DetachOldRoot,
        Hostname(String),
        Rlimit(Resource, Option<u64>),
        NoNewPrivs,
        ClearGroups,
        Gid(u32),
        Uid(u32),
        DropBoundingSet,
        ClearAmbient,
        ClearCapabilities,
        ParentDeathSignal(libc::c_int),
    }

    /// Records the calls. Paths it created before answer AlreadyExists, as
    /// the real ones would, and so do paths inside a bound directory: the
    /// plan only puts files there that exist on the host.
    #[derive(Default)]
    struct Recorder {
        calls: RefCell<Vec<Call>>,
        existing: RefCell<HashSet<PathBuf>>,
        bound_directories: RefCell<Vec<PathBuf>>,
        fail_on: Option<Call>,
    }

    impl Recorder {
        fn record(&self, call: Call) -> io::Result<()> {
            let fails = self.fail_on.as_ref() == Some(&call);
            self.calls.borrow_mut().push(call);
            if fails {
                Err(io::Error::from_raw_os_error(libc::EPERM))
            } else {
                Ok(())
            }
        }

        fn create(&self, path: &Path, call: Call) -> io::Result<()> {
            let in_bound_directory = self
                .bound_directories
                .borrow()
                .iter()
                .any(|directory| path.starts_with(directory));
            if in_bound_directory || !self.existing.borrow_mut().insert(path.to_owned()) {
                return Err(io::ErrorKind::AlreadyExists.into());
            }
            self.record(call)
        }

        fn calls(&self) -> Vec<Call> {
            self.calls.borrow().clone()
        }
    }

    fn text(path: &Path) -> String {
        path.to_str().unwrap().to_owned()
    }

    impl JailSyscalls for Recorder {
        fn unshare(&self, flags: libc::c_int) -> io::Result<()> {
            self.record(Call::Unshare(flags))
        }
        fn make_mounts_private(&self) -> io::Result<()> {
            self.record(Call::MakeMountsPrivate)
        }
        fn mount_tmpfs(&self, target: &Path, flags: libc::c_ulong, _: &str) -> io::Result<()> {
            self.record(Call::MountTmpfs(text(target), flags))
        }
        fn create_dir(&self, path: &Path, mode: u32) -> io::Result<()> {
            self.create(path, Call::CreateDir(text(path), mode))
        }
        fn create_empty_file(&self, path: &Path) -> io::Result<()> {
            self.create(path, Call::CreateEmptyFile(text(path)))
        }
        fn bind(&self, source: &Path, target: &Path) -> io::Result<()> {
            if self.existing.borrow().contains(target) {
                self.bound_directories.borrow_mut().push(target.to_owned());
            }
            self.record(Call::Bind(text(source), text(target)))
        }
        fn remount(&self, target: &Path, flags: libc::c_ulong) -> io::Result<()> {
            self.record(Call::Remount(text(target), flags))
        }
        fn make_char_device(&self, path: &Path, mode: u32, device: libc::dev_t) -> io::Result<()> {
            self.create(path, Call::CharDevice(text(path), mode, device))
        }
        fn set_owner(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()> {
            self.record(Call::Owner(text(path), uid, gid))
        }
        fn mount_devpts(&self, target: &Path) -> io::Result<()> {
            self.record(Call::Devpts(text(target)))
        }
        fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
            self.record(Call::Symlink(text(target), text(link)))
        }
        fn pivot_root(&self, new_root: &Path) -> io::Result<()> {
            self.record(Call::PivotRoot(text(new_root)))
        }
        fn detach_old_root(&self) -> io::Result<()> {
            self.record(Call::DetachOldRoot)
        }
        fn set_hostname(&self, name: &str) -> io::Result<()> {
            self.record(Call::Hostname(name.to_owned()))
        }
        fn set_rlimit(&self, resource: Resource, limit: Option<u64>) -> io::Result<()> {
            self.record(Call::Rlimit(resource, limit))
        }
        fn set_no_new_privs(&self) -> io::Result<()> {
            self.record(Call::NoNewPrivs)
        }
        fn clear_supplementary_groups(&self) -> io::Result<()> {
            self.record(Call::ClearGroups)
        }
        fn set_gid(&self, gid: u32) -> io::Result<()> {
            self.record(Call::Gid(gid))
        }
        fn set_uid(&self, uid: u32) -> io::Result<()> {
            self.record(Call::Uid(uid))
        }
        fn drop_bounding_set(&self) -> io::Result<()> {
            self.record(Call::DropBoundingSet)
        }
        fn clear_ambient_capabilities(&self) -> io::Result<()> {
            self.record(Call::ClearAmbient)
        }
        fn clear_capabilities(&self) -> io::Result<()> {
            self.record(Call::ClearCapabilities)
        }
        fn set_parent_death_signal(&self, signal: libc::c_int) -> io::Result<()> {
            self.record(Call::ParentDeathSignal(signal))
        }
    }

    const ROOT: &str = "/jail";

    fn config(user: Option<JailUser>) -> JailConfig {
        JailConfig {
            root: ROOT.into(),
            user,
            fd_limit: 100,
        }
    }

    fn sandbox_vm() -> (VmConfig, SandboxConfig) {
        let mut vm = VmConfig::new("/k/vmlinux".into());
        vm.disks = vec![
            DiskConfig {
                path: "/s/rootfs.ext4".into(),
                read_only: false,
            },
            DiskConfig {
                path: "/s/copy.ext4".into(),
                read_only: true,
            },
        ];
        vm.vsock = Some(VsockConfig {
            uds_path: "/s/vsock.sock".into(),
            guest_cid: 3,
        });
        let sandbox = SandboxConfig {
            agent_socket: "/s/agent.sock".into(),
            stdio: ContainerStdio::Terminal {
                console_socket: "/t/console.sock".into(),
            },
            seccomp: SeccompMode::Kill,
        };
        (vm, sandbox)
    }

    fn facts() -> HostFacts {
        HostFacts {
            kvm_device: libc::makedev(10, 232),
            null_device: libc::makedev(1, 3),
            device_sources: HashSet::new(),
        }
    }

    fn run(user: Option<JailUser>, fail_on: Option<Call>) -> (Vec<Call>, Result<(), JailError>) {
        let (vm, sandbox) = sandbox_vm();
        let plan = JailPlan::new(Path::new(ROOT), &vm, Some(&sandbox), None).unwrap();
        let recorder = Recorder {
            fail_on,
            ..Recorder::default()
        };
        let result = confine(&recorder, &config(user), &plan, &facts());
        (recorder.calls(), result)
    }

    fn position(calls: &[Call], call: &Call) -> usize {
        calls
            .iter()
            .position(|made| made == call)
            .unwrap_or_else(|| panic!("{call:?} was not made: {calls:#?}"))
    }

    const NOBODY: JailUser = JailUser {
        uid: 65534,
        gid: 65534,
    };

    #[test]
    fn the_root_is_built_from_the_plan_then_entered() {
        let (calls, result) = run(Some(NOBODY), None);
        result.unwrap();
        let rw = libc::MS_NOSUID | libc::MS_NOEXEC | libc::MS_NODEV;
        let expected_start = [
            Call::Unshare(NAMESPACES),
            Call::MakeMountsPrivate,
            Call::MountTmpfs("/jail".into(), libc::MS_NOSUID),
            // The sockets' directory, writable.
            Call::CreateDir("/jail/s".into(), 0o755),
            Call::Bind("/s".into(), "/jail/s".into()),
            Call::Remount("/jail/s".into(), rw),
            // The kernel, read-only.
            Call::CreateDir("/jail/k".into(), 0o755),
            Call::CreateEmptyFile("/jail/k/vmlinux".into()),
            Call::Bind("/k/vmlinux".into(), "/jail/k/vmlinux".into()),
            Call::Remount("/jail/k/vmlinux".into(), rw | libc::MS_RDONLY),
            // The read-only disk in the sockets' directory: it is there
            // already, and made read-only on top; the writable one needs
            // nothing of its own.
            Call::Bind("/s/copy.ext4".into(), "/jail/s/copy.ext4".into()),
            Call::Remount("/jail/s/copy.ext4".into(), rw | libc::MS_RDONLY),
            // No console socket: husk-vmm connected to it before the jail.
            // Devices: /dev/null for anyone, KVM for the jail's user.
            Call::CreateDir("/jail/dev".into(), 0o755),
            Call::CharDevice("/jail/dev/null".into(), 0o666, libc::makedev(1, 3)),
            Call::CharDevice("/jail/dev/kvm".into(), 0o600, libc::makedev(10, 232)),
            Call::Owner("/jail/dev/kvm".into(), 65534, 65534),
            // A terminal: devpts of its own.
            Call::CreateDir("/jail/dev/pts".into(), 0o755),
            Call::Devpts("/jail/dev/pts".into()),
            Call::Symlink("pts/ptmx".into(), "/jail/dev/ptmx".into()),
            Call::PivotRoot("/jail".into()),
            Call::DetachOldRoot,
            Call::Remount(
                "/".into(),
                libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NOEXEC,
            ),
            Call::Hostname("husk".into()),
        ];
        assert_eq!(calls[..expected_start.len()], expected_start);
        assert!(
            !calls
                .iter()
                .any(|call| matches!(call, Call::Bind(source, _) if source == "/s/rootfs.ext4")),
            "the writable disk is seen through its directory"
        );
    }

    #[test]
    fn limits_are_set_while_still_privileged() {
        let (calls, result) = run(Some(NOBODY), None);
        result.unwrap();
        let open_files = position(&calls, &Call::Rlimit(Resource::OpenFiles, Some(100)));
        position(&calls, &Call::Rlimit(Resource::CoreFileSize, Some(0)));
        position(&calls, &Call::Rlimit(Resource::FileSize, None));
        assert!(open_files > position(&calls, &Call::DetachOldRoot));
        assert!(open_files < position(&calls, &Call::Uid(65534)));
    }

    #[test]
    fn privileges_go_in_an_order_that_can_succeed() {
        let (calls, result) = run(Some(NOBODY), None);
        result.unwrap();
        let at = |call| position(&calls, &call);
        // Groups and gid need CAP_SETGID, the bounding set CAP_SETPCAP:
        // both before the uid switch takes the capabilities away.
        assert!(at(Call::ClearGroups) < at(Call::Gid(65534)));
        assert!(at(Call::Gid(65534)) < at(Call::Uid(65534)));
        assert!(at(Call::DropBoundingSet) < at(Call::Uid(65534)));
        assert!(at(Call::ClearAmbient) < at(Call::Uid(65534)));
        assert!(at(Call::Uid(65534)) < at(Call::ClearCapabilities));
        // The uid switch cleared the parent-death signal: it comes last.
        assert_eq!(
            calls.last(),
            Some(&Call::ParentDeathSignal(libc::SIGKILL)),
            "{calls:#?}"
        );
        assert!(at(Call::NoNewPrivs) < at(Call::Uid(65534)));
    }

    #[test]
    fn without_a_user_the_ids_stay_and_the_capabilities_still_go() {
        let (calls, result) = run(None, None);
        result.unwrap();
        for call in &calls {
            assert!(
                !matches!(
                    call,
                    Call::Uid(_) | Call::Gid(_) | Call::ClearGroups | Call::Owner(..)
                ),
                "{call:?} without --jail-uid"
            );
        }
        for call in [
            Call::NoNewPrivs,
            Call::DropBoundingSet,
            Call::ClearAmbient,
            Call::ClearCapabilities,
        ] {
            position(&calls, &call);
        }
    }

    #[test]
    fn a_failed_step_stops_the_jail_and_names_the_path() {
        let failing = Call::Bind("/k/vmlinux".into(), "/jail/k/vmlinux".into());
        let (calls, result) = run(Some(NOBODY), Some(failing.clone()));
        let error = result.unwrap_err();
        assert_eq!(calls.last(), Some(&failing), "nothing after the failure");
        assert_eq!(
            error.to_string(),
            "bind the kernel /k/vmlinux into the jail"
        );

        let (calls, result) = run(Some(NOBODY), Some(Call::Uid(65534)));
        let error = result.unwrap_err();
        assert_eq!(error.to_string(), "switch to the jail's uid 65534");
        assert!(!calls.contains(&Call::ClearCapabilities));
    }

    #[test]
    fn block_device_disks_keep_their_devices() {
        let mut vm = VmConfig::new("/k/vmlinux".into());
        vm.disks = vec![DiskConfig {
            path: "/dev/vdb".into(),
            read_only: false,
        }];
        let plan = JailPlan::new(Path::new(ROOT), &vm, None, None).unwrap();
        let mut facts = facts();
        facts.device_sources.insert("/dev/vdb".into());
        let recorder = Recorder::default();
        confine(&recorder, &config(None), &plan, &facts).unwrap();
        let calls = recorder.calls();
        position(
            &calls,
            &Call::Remount("/jail/dev/vdb".into(), libc::MS_NOSUID | libc::MS_NOEXEC),
        );
        // /dev was made for the disk already; the device nodes go beside it.
        assert_eq!(
            calls
                .iter()
                .filter(|call| **call == Call::CreateDir("/jail/dev".into(), 0o755))
                .count(),
            1
        );
        assert!(!calls.iter().any(|call| matches!(call, Call::Devpts(_))));
    }
}
