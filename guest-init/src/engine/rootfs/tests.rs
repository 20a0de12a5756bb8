//! The root filesystem setup, recorded: exactly which mounts, nodes and links
//! a config produces, in order.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::*;
use crate::engine::rootfs::cgroup::Hierarchy;
use crate::engine::syscall::{Call, RecordingSyscall};
use crate::engine::test_bundle::{TestBundle, TestDir};

fn mount(
    source: Option<&str>,
    target: impl Into<PathBuf>,
    fstype: Option<&str>,
    flags: u64,
    data: Option<&str>,
) -> Call {
    Call::Mount {
        source: source.map(PathBuf::from),
        target: target.into(),
        fstype: fstype.map(str::to_owned),
        flags,
        data: data.map(str::to_owned),
    }
}

fn plan<'a>(test: &'a TestBundle, cgroup: &'a CgroupMountSource) -> RootfsPlan<'a> {
    RootfsPlan {
        bundle: &test.bundle,
        cgroup,
        in_user_namespace: false,
        own_network_namespace: true,
    }
}

fn legacy_cgroups() -> CgroupMountSource {
    CgroupMountSource::Legacy {
        hierarchies: vec![
            Hierarchy {
                name: "cpu,cpuacct".into(),
                container_dir: "/sys/fs/cgroup/cpu,cpuacct/husk/c1".into(),
            },
            Hierarchy {
                name: "memory".into(),
                container_dir: "/sys/fs/cgroup/memory/husk/c1".into(),
            },
        ],
    }
}

/// The recorded calls without the /dev/core link, which exists only where
/// the host kernel has /proc/kcore.
fn calls_without_core(syscall: &RecordingSyscall) -> Vec<Call> {
    syscall
        .calls()
        .into_iter()
        .filter(|call| !matches!(call, Call::Symlink { link, .. } if link.ends_with("dev/core")))
        .collect()
}

const NOSUID: u64 = libc::MS_NOSUID;
const NODEV: u64 = libc::MS_NODEV;
const NOEXEC: u64 = libc::MS_NOEXEC;

#[test]
fn runc_default_spec_mounts_in_order() {
    let test = TestBundle::new("rootfs-default", |_| {});
    let root = test.rootfs();
    let cgroups = legacy_cgroups();
    let syscall = RecordingSyscall::new();
    let prepared = prepare(&syscall, &plan(&test, &cgroups)).unwrap();

    let cgroup_flags = NOSUID | NOEXEC | NODEV | libc::MS_RELATIME | libc::MS_RDONLY;
    let device = |name: &str, major: u32, minor: u32| {
        [
            Call::Mknod {
                path: root.join("dev").join(name),
                mode: libc::S_IFCHR | 0o666,
                device: libc::makedev(major, minor),
            },
            Call::Chown {
                path: root.join("dev").join(name),
                uid: 0,
                gid: 0,
            },
        ]
    };
    let mut expected = vec![
        mount(None, "/", None, libc::MS_SLAVE | libc::MS_REC, None),
        mount(
            Some(root.to_str().unwrap()),
            &root,
            Some("bind"),
            libc::MS_BIND | libc::MS_REC,
            None,
        ),
        mount(Some("proc"), root.join("proc"), Some("proc"), 0, None),
        mount(
            Some("tmpfs"),
            root.join("dev"),
            Some("tmpfs"),
            NOSUID | libc::MS_STRICTATIME,
            Some("mode=755,size=65536k"),
        ),
        mount(
            Some("devpts"),
            root.join("dev/pts"),
            Some("devpts"),
            NOSUID | NOEXEC,
            Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
        ),
        mount(
            Some("shm"),
            root.join("dev/shm"),
            Some("tmpfs"),
            NOSUID | NOEXEC | NODEV,
            Some("mode=1777,size=65536k"),
        ),
        mount(
            Some("mqueue"),
            root.join("dev/mqueue"),
            Some("mqueue"),
            NOSUID | NOEXEC | NODEV,
            None,
        ),
        mount(
            Some("sysfs"),
            root.join("sys"),
            Some("sysfs"),
            NOSUID | NOEXEC | NODEV | libc::MS_RDONLY,
            None,
        ),
        // cgroup v1: a tmpfs, a read-only bind per hierarchy, links for the
        // merged one, and the tmpfs made read-only.
        mount(
            Some("tmpfs"),
            root.join("sys/fs/cgroup"),
            Some("tmpfs"),
            NOEXEC | NOSUID | NODEV,
            Some("mode=755"),
        ),
        mount(
            Some("/sys/fs/cgroup/cpu,cpuacct/husk/c1"),
            root.join("sys/fs/cgroup/cpu,cpuacct"),
            Some("bind"),
            cgroup_flags | libc::MS_REC | libc::MS_BIND,
            None,
        ),
        mount(
            None,
            root.join("sys/fs/cgroup/cpu,cpuacct"),
            None,
            cgroup_flags | libc::MS_REC | libc::MS_BIND | libc::MS_REMOUNT,
            None,
        ),
        mount(
            Some("/sys/fs/cgroup/memory/husk/c1"),
            root.join("sys/fs/cgroup/memory"),
            Some("bind"),
            cgroup_flags | libc::MS_REC | libc::MS_BIND,
            None,
        ),
        mount(
            None,
            root.join("sys/fs/cgroup/memory"),
            None,
            cgroup_flags | libc::MS_REC | libc::MS_BIND | libc::MS_REMOUNT,
            None,
        ),
        Call::Symlink {
            target: "cpu,cpuacct".into(),
            link: root.join("sys/fs/cgroup/cpu"),
        },
        Call::Symlink {
            target: "cpu,cpuacct".into(),
            link: root.join("sys/fs/cgroup/cpuacct"),
        },
        mount(
            None,
            root.join("sys/fs/cgroup"),
            None,
            NOEXEC | NOSUID | NODEV | libc::MS_RDONLY | libc::MS_BIND | libc::MS_REMOUNT,
            None,
        ),
        Call::Umask(0),
    ];
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        expected.extend(device(name, major, minor));
    }
    expected.push(Call::Umask(0o022));
    expected.push(Call::Symlink {
        target: "pts/ptmx".into(),
        link: root.join("dev/ptmx"),
    });
    for (target, link) in [
        ("/proc/self/fd", "dev/fd"),
        ("/proc/self/fd/0", "dev/stdin"),
        ("/proc/self/fd/1", "dev/stdout"),
        ("/proc/self/fd/2", "dev/stderr"),
    ] {
        expected.push(Call::Symlink {
            target: target.into(),
            link: root.join(link),
        });
    }
    assert_eq!(calls_without_core(&syscall), expected);
    assert!(prepared.dev_set_up);
    assert!(
        prepared.readonly_later.is_empty(),
        "no read-only tmpfs in the default spec"
    );
    // Mount points were made in the rootfs.
    for directory in ["proc", "dev", "sys/fs/cgroup/memory"] {
        assert!(root.join(directory).is_dir(), "{directory}");
    }
}

#[test]
fn bind_mounts_follow_symlinks_inside_the_root_only() {
    let host_dir = TestDir::new("bind-src");
    let source = host_dir.path().to_str().unwrap().to_owned();
    let test = TestBundle::new("rootfs-bind", |config| {
        config["mounts"] = json!([
            {"destination": "/data", "type": "bind", "source": source, "options": ["rbind", "ro", "nosuid", "rprivate"]},
        ]);
    });
    let root = test.rootfs();
    // The image links /data to somewhere "outside": it must land in the root.
    std::fs::create_dir_all(root.join("srv")).unwrap();
    std::os::unix::fs::symlink("/../../../srv", root.join("data")).unwrap();
    let cgroups = CgroupMountSource::None;
    let syscall = RecordingSyscall::new();
    prepare(&syscall, &plan(&test, &cgroups)).unwrap();

    let flags = libc::MS_BIND | libc::MS_REC | libc::MS_RDONLY | NOSUID;
    let calls = syscall.calls();
    assert_eq!(
        &calls[2..5],
        &[
            mount(Some(&source), root.join("srv"), Some("bind"), flags, None),
            mount(
                None,
                root.join("srv"),
                None,
                libc::MS_PRIVATE | libc::MS_REC,
                None
            ),
            mount(None, root.join("srv"), None, flags | libc::MS_REMOUNT, None),
        ]
    );
}

#[test]
fn a_file_bind_source_gets_a_file_mount_point() {
    let host_dir = TestDir::new("bind-file");
    let host_file = host_dir.join("hostname");
    std::fs::write(&host_file, "x").unwrap();
    let source = host_file.to_str().unwrap().to_owned();
    let test = TestBundle::new("rootfs-bind-file", |config| {
        config["mounts"] = json!([{"destination": "/etc/hostname", "type": "bind", "source": source, "options": ["bind"]}]);
    });
    let cgroups = CgroupMountSource::None;
    prepare(&RecordingSyscall::new(), &plan(&test, &cgroups)).unwrap();
    assert!(test.rootfs().join("etc/hostname").is_file());
}

#[test]
fn a_missing_bind_source_is_named() {
    let test = TestBundle::new("rootfs-bind-missing", |config| {
        config["mounts"] = json!([{"destination": "/data", "type": "bind", "source": "/no/such/dir", "options": ["rbind"]}]);
    });
    let cgroups = CgroupMountSource::None;
    let error = prepare(&RecordingSyscall::new(), &plan(&test, &cgroups)).unwrap_err();
    assert_eq!(
        crate::engine::error_chain(&error),
        "mounts[0]: bind source /no/such/dir: No such file or directory"
    );
}

#[test]
fn a_failed_mount_names_the_entry_source_and_destination() {
    let test = TestBundle::new("rootfs-proc-eperm", |_| {});
    let cgroups = CgroupMountSource::None;
    let syscall = RecordingSyscall::new().failing(
        |call| matches!(call, Call::Mount { fstype: Some(fstype), .. } if fstype == "proc"),
        libc::EPERM,
    );
    let error = prepare(&syscall, &plan(&test, &cgroups)).unwrap_err();
    assert_eq!(
        crate::engine::error_chain(&error),
        "mounts[0]: mount \"proc\" on /proc: Operation not permitted"
    );
}

#[test]
fn mounts_into_proc_are_refused() {
    let test = TestBundle::new("rootfs-proc-cover", |config| {
        config["mounts"] = json!([
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/proc/sys", "type": "tmpfs", "source": "tmpfs"},
        ]);
    });
    let cgroups = CgroupMountSource::None;
    let error = prepare(&RecordingSyscall::new(), &plan(&test, &cgroups)).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("mounts[1]: /proc/sys is inside /proc"),
        "{error}"
    );
}

#[test]
fn in_a_user_namespace_devices_are_bound_from_the_host() {
    let test = TestBundle::new("rootfs-userns-dev", |config| {
        config["mounts"] =
            json!([{"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["ro"]}]);
    });
    let root = test.rootfs();
    let cgroups = CgroupMountSource::None;
    let syscall = RecordingSyscall::new();
    let prepared = prepare(
        &syscall,
        &RootfsPlan {
            in_user_namespace: true,
            ..plan(&test, &cgroups)
        },
    )
    .unwrap();
    let calls = syscall.calls();
    assert_eq!(
        calls[2],
        mount(Some("tmpfs"), root.join("dev"), Some("tmpfs"), 0, None),
        "ro is delayed"
    );
    assert_eq!(
        calls[4],
        mount(
            Some("/dev/null"),
            root.join("dev/null"),
            Some("bind"),
            libc::MS_BIND,
            None
        )
    );
    assert!(!calls.iter().any(|call| matches!(call, Call::Mknod { .. })));
    assert!(
        root.join("dev/null").is_file(),
        "an empty file to bind onto"
    );
    assert_eq!(
        prepared.readonly_later,
        vec![(PathBuf::from("/dev"), libc::MS_RDONLY)]
    );
}

#[test]
fn a_bound_dev_is_left_alone() {
    let test = TestBundle::new("rootfs-bind-dev", |config| {
        config["mounts"] = json!([{"destination": "/dev", "type": "bind", "source": "/dev", "options": ["rbind"]}]);
    });
    let cgroups = CgroupMountSource::None;
    let syscall = RecordingSyscall::new();
    let prepared = prepare(&syscall, &plan(&test, &cgroups)).unwrap();
    assert!(!prepared.dev_set_up);
    assert!(!syscall
        .calls()
        .iter()
        .any(|call| matches!(call, Call::Mknod { .. } | Call::Symlink { .. })));
}

#[test]
fn sysfs_falls_back_to_binding_without_a_network_namespace() {
    let test = TestBundle::new("rootfs-sysfs", |config| {
        config["mounts"] = json!([{"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["ro", "nosuid"]}]);
    });
    let root = test.rootfs();
    let cgroups = CgroupMountSource::None;
    let syscall = RecordingSyscall::new().failing(
        |call| matches!(call, Call::Mount { fstype: Some(fstype), .. } if fstype == "sysfs"),
        libc::EPERM,
    );
    prepare(
        &syscall,
        &RootfsPlan {
            own_network_namespace: false,
            ..plan(&test, &cgroups)
        },
    )
    .unwrap();
    let flags = libc::MS_RDONLY | NOSUID | libc::MS_BIND | libc::MS_REC;
    assert_eq!(
        &syscall.calls()[3..5],
        &[
            mount(Some("/sys"), root.join("sys"), Some("bind"), flags, None),
            mount(None, root.join("sys"), None, flags | libc::MS_REMOUNT, None),
        ]
    );
}

#[test]
fn cgroup2_is_mounted_or_bound_when_refused() {
    let test = TestBundle::new("rootfs-cgroup2", |config| {
        config["mounts"] = json!([{"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "ro"]}]);
    });
    let root = test.rootfs();
    let cgroups = CgroupMountSource::Unified {
        container_dir: "/sys/fs/cgroup/husk/c1".into(),
    };
    let syscall = RecordingSyscall::new();
    prepare(&syscall, &plan(&test, &cgroups)).unwrap();
    assert_eq!(
        syscall.calls()[2],
        mount(
            Some("cgroup"),
            root.join("sys/fs/cgroup"),
            Some("cgroup2"),
            NOSUID | libc::MS_RDONLY,
            None
        )
    );

    let refused = RecordingSyscall::new().failing(
        |call| matches!(call, Call::Mount { fstype: Some(fstype), .. } if fstype == "cgroup2"),
        libc::EPERM,
    );
    prepare(&refused, &plan(&test, &cgroups)).unwrap();
    let flags = NOSUID | libc::MS_RDONLY | libc::MS_BIND | libc::MS_REC;
    assert_eq!(
        &refused.calls()[3..5],
        &[
            mount(
                Some("/sys/fs/cgroup/husk/c1"),
                root.join("sys/fs/cgroup"),
                Some("bind"),
                flags,
                None
            ),
            mount(
                None,
                root.join("sys/fs/cgroup"),
                None,
                flags | libc::MS_REMOUNT,
                None
            ),
        ]
    );
}

#[test]
fn rootfs_propagation_is_applied_to_slash() {
    let test = TestBundle::new("rootfs-propagation", |config| {
        config["linux"]["rootfsPropagation"] = json!("rprivate");
        config["mounts"] = json!([]);
    });
    let cgroups = CgroupMountSource::None;
    let syscall = RecordingSyscall::new();
    prepare(&syscall, &plan(&test, &cgroups)).unwrap();
    assert_eq!(
        syscall.calls()[0],
        mount(None, "/", None, libc::MS_PRIVATE | libc::MS_REC, None)
    );
}

#[test]
fn after_the_pivot_readonly_and_masked_paths_and_readonly_root() {
    let test = TestBundle::new("rootfs-finalize", |_| {});
    let cgroups = CgroupMountSource::None;
    let prepared = PreparedRootfs {
        readonly_later: vec![("/dev".into(), NOSUID | libc::MS_RDONLY)],
        dev_set_up: true,
    };
    let syscall = RecordingSyscall::new()
        .with_mount_flags("/proc/sys", NOSUID | NODEV | NOEXEC | libc::MS_RELATIME)
        .failing(|call| matches!(call, Call::Mount { target, source: Some(source), .. } if target == Path::new("/sys/firmware") && source == Path::new("/dev/null")), libc::ENOTDIR)
        .failing(|call| matches!(call, Call::Mount { target, .. } if target == Path::new("/proc/asound")), libc::ENOENT);
    pivot(&syscall, &plan(&test, &cgroups), &prepared).unwrap();
    finalize(&syscall, &plan(&test, &cgroups), &prepared).unwrap();
    apply_readonly_paths(&syscall, &["/proc/sys".to_string()]).unwrap();
    apply_masked_paths(
        &syscall,
        &[
            "/proc/kcore".to_string(),
            "/sys/firmware".to_string(),
            "/proc/asound".to_string(),
        ],
    )
    .unwrap();
    let remount_ro = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY;
    assert_eq!(
        syscall.calls(),
        vec![
            Call::PivotRoot(test.rootfs()),
            Call::ReopenDevNull,
            mount(None, "/dev", None, NOSUID | remount_ro, None),
            mount(None, "/", None, remount_ro, None),
            mount(
                Some("/proc/sys"),
                "/proc/sys",
                None,
                libc::MS_BIND | libc::MS_REC,
                None
            ),
            mount(
                Some("/proc/sys"),
                "/proc/sys",
                None,
                NOSUID | NODEV | NOEXEC | remount_ro,
                None
            ),
            mount(Some("/dev/null"), "/proc/kcore", None, libc::MS_BIND, None),
            mount(
                Some("/dev/null"),
                "/sys/firmware",
                None,
                libc::MS_BIND,
                None
            ),
            mount(
                Some("tmpfs"),
                "/sys/firmware",
                Some("tmpfs"),
                libc::MS_RDONLY,
                None
            ),
            mount(Some("/dev/null"), "/proc/asound", None, libc::MS_BIND, None),
        ]
    );
}
