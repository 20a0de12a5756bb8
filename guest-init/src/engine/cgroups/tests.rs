//! Tests against directories laid out like cgroupfs. Unlike cgroupfs, a
//! plain directory gets no control files on mkdir, so each test creates the
//! files the kernel would have; a file holds the last value written to it.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxDeviceType,
    LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder,
    LinuxThrottleDeviceBuilder,
};

use super::*;
use crate::engine::test_bundle::TestDir;

/// Creates `dir` with each (file, content).
fn populate(dir: &Path, files: &[(&str, &str)]) {
    fs::create_dir_all(dir).unwrap();
    for (file, content) in files {
        fs::write(dir.join(file), content).unwrap();
    }
}

fn read(path: impl AsRef<Path>) -> String {
    fs::read_to_string(path.as_ref())
        .unwrap_or_else(|error| panic!("read {}: {error}", path.as_ref().display()))
}

const V2_CONTROLLERS: &str = "cpuset cpu io memory hugetlb pids rdma misc";

/// Control files of a v2 cgroup with every controller enabled.
const V2_LEAF_FILES: &[(&str, &str)] = &[
    ("cgroup.controllers", V2_CONTROLLERS),
    ("cgroup.subtree_control", ""),
    ("cgroup.procs", ""),
    ("cgroup.freeze", "0"),
    ("cgroup.events", "populated 0\nfrozen 0\n"),
    ("memory.max", "max"),
    ("memory.low", "0"),
    ("memory.swap.max", "max"),
    ("cpu.weight", "100"),
    ("cpu.max", "max 100000"),
    ("cpuset.cpus", ""),
    ("cpuset.mems", ""),
    ("pids.max", "max"),
    ("io.weight", "default 100"),
    ("io.max", ""),
    ("memory.high", "max"),
];

/// A v2 hierarchy at `root` with the parents `a`, `a/b` and the leaf
/// `a/b/c` already present, as after mkdir on cgroupfs.
fn v2_layout(root: &Path) -> Hierarchy {
    populate(
        root,
        &[
            ("cgroup.controllers", V2_CONTROLLERS),
            ("cgroup.subtree_control", ""),
        ],
    );
    for parent in ["a", "a/b"] {
        populate(
            &root.join(parent),
            &[
                ("cgroup.controllers", V2_CONTROLLERS),
                ("cgroup.subtree_control", ""),
            ],
        );
    }
    populate(&root.join("a/b/c"), V2_LEAF_FILES);
    Hierarchy::unified(root)
}

fn memory_limit(bytes: i64) -> LinuxResources {
    LinuxResourcesBuilder::default()
        .memory(LinuxMemoryBuilder::default().limit(bytes).build().unwrap())
        .build()
        .unwrap()
}

fn pids_limit(limit: i64) -> LinuxResources {
    LinuxResourcesBuilder::default()
        .pids(LinuxPidsBuilder::default().limit(limit).build().unwrap())
        .build()
        .unwrap()
}

/// `linux.resources.unified` with one key.
fn unified(key: &str, value: &str) -> LinuxResources {
    LinuxResourcesBuilder::default()
        .unified(HashMap::from([(key.to_string(), value.to_string())]))
        .build()
        .unwrap()
}

fn full_resources() -> LinuxResources {
    LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(100 * 1024 * 1024_i64)
                .swap(300 * 1024 * 1024_i64)
                .reservation(50 * 1024 * 1024_i64)
                .build()
                .unwrap(),
        )
        .cpu(
            LinuxCpuBuilder::default()
                .shares(1024_u64)
                .quota(50_000_i64)
                .period(100_000_u64)
                .cpus("0-1")
                .mems("0")
                .build()
                .unwrap(),
        )
        .pids(LinuxPidsBuilder::default().limit(64_i64).build().unwrap())
        .block_io(
            LinuxBlockIoBuilder::default()
                .weight(500_u16)
                .build()
                .unwrap(),
        )
        .devices(vec![
            LinuxDeviceCgroupBuilder::default()
                .allow(false)
                .access("rwm")
                .build()
                .unwrap(),
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(LinuxDeviceType::C)
                .major(1_i64)
                .minor(3_i64)
                .access("rwm")
                .build()
                .unwrap(),
        ])
        .build()
        .unwrap()
}

#[test]
fn default_path_is_husk_slash_id() {
    assert_eq!(
        container_cgroup_path(None, "web").unwrap(),
        PathBuf::from("husk/web")
    );
    assert_eq!(
        container_cgroup_path(Some(""), "web").unwrap(),
        PathBuf::from("husk/web")
    );
}

#[test]
fn absolute_and_relative_paths_are_both_below_the_hierarchy_root() {
    assert_eq!(
        container_cgroup_path(Some("/kubepods/pod1/ctr"), "x").unwrap(),
        PathBuf::from("kubepods/pod1/ctr")
    );
    assert_eq!(
        container_cgroup_path(Some("machine/ctr"), "x").unwrap(),
        PathBuf::from("machine/ctr")
    );
    assert_eq!(
        container_cgroup_path(Some("/a//./b/"), "x").unwrap(),
        PathBuf::from("a/b")
    );
}

#[test]
fn dot_dot_in_cgroups_path_is_rejected_naming_the_field() {
    for path in ["/a/../../etc", "../x", "a/.."] {
        let error = container_cgroup_path(Some(path), "x").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("linux.cgroupsPath"), "{message}");
        assert!(message.contains(".."), "{message}");
    }
}

#[test]
fn the_root_cgroup_itself_is_rejected() {
    let error = container_cgroup_path(Some("/"), "x").unwrap_err();
    assert!(error.to_string().contains("root cgroup"), "{error}");
}

#[test]
fn a_container_id_that_would_leave_the_parent_is_rejected() {
    for id in ["", "..", "a/b"] {
        assert!(matches!(
            container_cgroup_path(None, id),
            Err(CgroupError::InvalidContainerId { .. })
        ));
    }
}

/// This machine's mountinfo: v1 controllers plus a controller-less cgroup2.
const HYBRID_MOUNTINFO: &str = "\
22 1 259:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 35 0:32 / /mnt/memory\\040again rw,relatime - cgroup cgroup rw,memory
";

#[test]
fn hybrid_mountinfo_gives_a_legacy_layout_with_its_unified_mount() {
    let hierarchy = Hierarchy::from_mountinfo(HYBRID_MOUNTINFO).unwrap();
    assert_eq!(hierarchy.version(), CgroupVersion::V1);
    let summary: Vec<(String, CgroupVersion, Vec<String>)> = hierarchy
        .mounts()
        .iter()
        .map(|mount| {
            (
                mount.mount_point.display().to_string(),
                mount.version,
                mount.controllers.clone(),
            )
        })
        .collect();
    let strings = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        summary,
        vec![
            (
                "/sys/fs/cgroup/cpu,cpuacct".to_string(),
                CgroupVersion::V1,
                strings(&["cpu", "cpuacct"])
            ),
            (
                "/sys/fs/cgroup/cpuset".to_string(),
                CgroupVersion::V1,
                strings(&["cpuset"])
            ),
            (
                "/sys/fs/cgroup/memory".to_string(),
                CgroupVersion::V1,
                strings(&["memory"])
            ),
            (
                "/sys/fs/cgroup/pids".to_string(),
                CgroupVersion::V1,
                strings(&["pids"])
            ),
            (
                "/sys/fs/cgroup/systemd".to_string(),
                CgroupVersion::V1,
                strings(&["name=systemd"])
            ),
            (
                "/sys/fs/cgroup/unified".to_string(),
                CgroupVersion::V2,
                vec![]
            ),
        ]
    );
}

#[test]
fn unified_mountinfo_gives_a_v2_layout_even_with_a_named_v1_hierarchy() {
    let mountinfo = "\
25 1 0:22 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
60 25 0:50 / /run/systemd-v1 rw - cgroup cgroup rw,name=systemd
";
    let hierarchy = Hierarchy::from_mountinfo(mountinfo).unwrap();
    assert_eq!(hierarchy, Hierarchy::unified("/sys/fs/cgroup"));
    assert_eq!(hierarchy.version(), CgroupVersion::V2);
}

#[test]
fn escaped_mount_points_are_decoded() {
    let mountinfo = "30 1 0:22 / /mnt/my\\040cgroups rw - cgroup2 cgroup2 rw\n";
    let hierarchy = Hierarchy::from_mountinfo(mountinfo).unwrap();
    assert_eq!(
        hierarchy.mounts()[0].mount_point,
        Path::new("/mnt/my cgroups")
    );
}

#[test]
fn no_cgroup_mount_is_an_error() {
    let mountinfo = "22 1 259:1 / / rw - ext4 /dev/vda rw\n";
    assert!(matches!(
        Hierarchy::from_mountinfo(mountinfo),
        Err(CgroupError::NoHierarchy)
    ));
}

#[test]
fn v2_create_enables_controllers_in_every_parent_and_writes_resources() {
    let temp = TestDir::new("cgroup");
    let root = temp.join("cgroup");
    let cgroup = Cgroup::create_in(
        v2_layout(&root),
        Some("/a/b/c"),
        "id",
        Some(&full_resources()),
    )
    .unwrap();
    let wanted = "+cpu +cpuset +hugetlb +io +memory +misc +pids +rdma";
    for parent in ["", "a", "a/b"] {
        assert_eq!(
            read(root.join(parent).join("cgroup.subtree_control")),
            wanted
        );
    }
    // The leaf's own subtree_control is left alone: it holds processes.
    assert_eq!(read(root.join("a/b/c/cgroup.subtree_control")), "");
    let leaf = root.join("a/b/c");
    let expected = [
        ("memory.max", "104857600"),
        // memory+swap 300 MiB, memory 100 MiB: 200 MiB of swap.
        ("memory.swap.max", "209715200"),
        ("memory.low", "52428800"),
        ("cpu.weight", "39"),
        ("cpu.max", "50000 100000"),
        ("cpuset.cpus", "0-1"),
        ("cpuset.mems", "0"),
        ("pids.max", "64"),
        ("io.weight", "4950"),
    ];
    for (file, value) in expected {
        assert_eq!(read(leaf.join(file)), value, "{file}");
    }
    assert_eq!(
        cgroup.warnings(),
        &[CgroupWarning::DeviceRulesNotEnforced { rules: 2 }]
    );
    assert_eq!(cgroup.paths()[0].path, leaf);
}

#[test]
fn v2_update_with_a_setting_whose_controller_is_missing_names_the_field() {
    let temp = TestDir::new("cgroup");
    let root = temp.join("cgroup");
    let hierarchy = v2_layout(&root);
    fs::write(root.join("a/b/c/cgroup.controllers"), "cpu pids").unwrap();
    let cgroup = Cgroup::load_in(hierarchy, Some("/a/b/c"), "id").unwrap();
    let error = cgroup.apply(&memory_limit(1 << 20)).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("linux.resources.memory"), "{message}");
    assert!(message.contains("memory cgroup controller"), "{message}");
}

#[test]
fn v2_unified_keys_are_written_as_given_and_unsafe_keys_are_refused() {
    let temp = TestDir::new("cgroup");
    let root = temp.join("cgroup");
    let cgroup = Cgroup::create_in(v2_layout(&root), Some("/a/b/c"), "id", None).unwrap();
    cgroup.apply(&unified("memory.high", "90000000")).unwrap();
    assert_eq!(read(root.join("a/b/c/memory.high")), "90000000");

    for key in ["../../cgroup.procs", "a/memory.max", ".."] {
        let error = cgroup.apply(&unified(key, "1")).unwrap_err();
        assert!(
            error.to_string().contains("linux.resources.unified"),
            "{error}"
        );
    }
    let error = cgroup
        .apply(&unified("memory.nonexistent", "1"))
        .unwrap_err();
    assert!(error.to_string().contains("no such file"), "{error}");
}

#[test]
fn a_rejected_value_names_the_file_and_the_value() {
    let temp = TestDir::new("cgroup");
    let root = temp.join("cgroup");
    let cgroup = Cgroup::create_in(v2_layout(&root), Some("/a/b/c"), "id", None).unwrap();
    // A directory where a control file should be makes the write fail, as
    // the kernel's EINVAL would.
    fs::remove_file(root.join("a/b/c/pids.max")).unwrap();
    fs::create_dir(root.join("a/b/c/pids.max")).unwrap();
    let message = cgroup.apply(&pids_limit(5)).unwrap_err().to_string();
    assert!(message.contains("pids.max"), "{message}");
    assert!(message.contains("\"5\""), "{message}");
}

#[test]
fn swap_conversion_follows_runc() {
    assert_eq!(
        v2::swap_max_value(Some(100), Some(300)).unwrap().as_deref(),
        Some("200")
    );
    // Equal values: no swap at all.
    assert_eq!(
        v2::swap_max_value(Some(100), Some(100)).unwrap().as_deref(),
        Some("0")
    );
    assert_eq!(
        v2::swap_max_value(Some(-1), None).unwrap().as_deref(),
        Some("max")
    );
    assert_eq!(
        v2::swap_max_value(Some(100), Some(-1)).unwrap().as_deref(),
        Some("max")
    );
    assert_eq!(v2::swap_max_value(Some(100), None).unwrap(), None);
    assert!(v2::swap_max_value(None, Some(200)).is_err());
    assert!(v2::swap_max_value(Some(300), Some(100)).is_err());
}

#[test]
fn shares_to_weight_conversion_follows_runc() {
    assert_eq!(v2::cpu_weight_from_shares(2), 1);
    assert_eq!(v2::cpu_weight_from_shares(1024), 39);
    assert_eq!(v2::cpu_weight_from_shares(262_144), 10_000);
    // Out of the kernel's v1 range: clamped like the kernel clamps shares.
    assert_eq!(v2::cpu_weight_from_shares(1), 1);
    assert_eq!(v2::cpu_weight_from_shares(1 << 40), 10_000);
}

#[test]
fn cpu_max_is_quota_and_period_or_max() {
    assert_eq!(
        v2::cpu_max_value(Some(50_000), Some(100_000))
            .unwrap()
            .as_deref(),
        Some("50000 100000")
    );
    assert_eq!(
        v2::cpu_max_value(None, Some(100_000)).unwrap().as_deref(),
        Some("max 100000")
    );
    assert_eq!(
        v2::cpu_max_value(Some(-1), None).unwrap().as_deref(),
        Some("max")
    );
    assert_eq!(v2::cpu_max_value(None, None).unwrap(), None);
    assert!(v2::cpu_max_value(Some(-7), None).is_err());
}

#[test]
fn blkio_weight_to_io_weight_conversion_follows_runc() {
    assert_eq!(v2::io_weight_from_blkio_weight(10), 1);
    assert_eq!(v2::io_weight_from_blkio_weight(500), 4950);
    assert_eq!(v2::io_weight_from_blkio_weight(1000), 10_000);
}

#[test]
fn v2_io_prefers_bfq_weights_and_merges_throttles_per_device() {
    let temp = TestDir::new("cgroup");
    let root = temp.join("cgroup");
    let hierarchy = v2_layout(&root);
    fs::write(root.join("a/b/c/io.bfq.weight"), "default 100").unwrap();
    let cgroup = Cgroup::load_in(hierarchy, Some("/a/b/c"), "id").unwrap();
    let throttle = |rate: u64| {
        vec![LinuxThrottleDeviceBuilder::default()
            .major(8_i64)
            .minor(0_i64)
            .rate(rate)
            .build()
            .unwrap()]
    };
    let resources = LinuxResourcesBuilder::default()
        .block_io(
            LinuxBlockIoBuilder::default()
                .weight(500_u16)
                .throttle_read_bps_device(throttle(1_048_576))
                .throttle_write_iops_device(throttle(0))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    cgroup.apply(&resources).unwrap();
    assert_eq!(read(root.join("a/b/c/io.bfq.weight")), "500");
    assert_eq!(
        read(root.join("a/b/c/io.max")),
        "8:0 rbps=1048576 wiops=max"
    );
}

#[test]
fn v2_settings_without_a_v2_file_are_reported() {
    let temp = TestDir::new("cgroup");
    let root = temp.join("cgroup");
    let cgroup = Cgroup::create_in(v2_layout(&root), Some("/a/b/c"), "id", None).unwrap();
    let resources = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .swappiness(10_u64)
                .disable_oom_killer(true)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let fields: Vec<String> = cgroup
        .apply(&resources)
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(fields.len(), 2, "{fields:?}");
    assert!(fields[0].starts_with("linux.resources.memory.swappiness"));
    assert!(fields[1].starts_with("linux.resources.memory.disableOOMKiller"));
}

#[test]
fn v2_realtime_cpu_settings_are_refused() {
    let temp = TestDir::new("cgroup");
    let root = temp.join("cgroup");
    let cgroup = Cgroup::create_in(v2_layout(&root), Some("/a/b/c"), "id", None).unwrap();
    let resources = LinuxResourcesBuilder::default()
        .cpu(
            LinuxCpuBuilder::default()
                .realtime_runtime(950_000_i64)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let error = cgroup.apply(&resources).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("linux.resources.cpu.realtimeRuntime"),
        "{error}"
    );
}

/// A v1 layout under `root`: memory, cpu+cpuacct co-mounted, cpuset, pids,
/// blkio, devices, freezer, and a controller-less unified mount.
fn v1_layout(root: &Path) -> Hierarchy {
    let mounts = [
        ("memory", vec!["memory"]),
        ("cpu,cpuacct", vec!["cpu", "cpuacct"]),
        ("cpuset", vec!["cpuset"]),
        ("pids", vec!["pids"]),
        ("blkio", vec!["blkio"]),
        ("devices", vec!["devices"]),
        ("freezer", vec!["freezer"]),
    ];
    populate(
        &root.join("cpuset"),
        &[("cpuset.cpus", "0-3"), ("cpuset.mems", "0")],
    );
    for (name, _) in &mounts {
        fs::create_dir_all(root.join(name)).unwrap();
    }
    fs::create_dir_all(root.join("unified")).unwrap();
    Hierarchy::legacy(
        mounts.iter().map(|(name, controllers)| {
            (
                root.join(name),
                controllers.iter().map(|c| c.to_string()).collect(),
            )
        }),
        Some(root.join("unified")),
    )
}

/// A v1 layout with one hierarchy per controller, each mounted at
/// `root/<controller>`, and no unified mount.
fn v1_hierarchies(root: &Path, controllers: &[&str]) -> Hierarchy {
    Hierarchy::legacy(
        controllers
            .iter()
            .map(|controller| (root.join(controller), vec![controller.to_string()])),
        None,
    )
}

/// The control files of the container's directory in each v1 hierarchy.
fn populate_v1_leaf(root: &Path, relative: &str) {
    let files: &[(&str, &[(&str, &str)])] = &[
        (
            "memory",
            &[
                ("memory.limit_in_bytes", "9223372036854771712"),
                ("memory.memsw.limit_in_bytes", "9223372036854771712"),
                ("memory.soft_limit_in_bytes", "9223372036854771712"),
                ("memory.swappiness", "60"),
            ],
        ),
        (
            "cpu,cpuacct",
            &[
                ("cpu.shares", "1024"),
                ("cpu.cfs_period_us", "100000"),
                ("cpu.cfs_quota_us", "-1"),
            ],
        ),
        ("cpuset", &[("cpuset.cpus", ""), ("cpuset.mems", "")]),
        ("pids", &[("pids.max", "max")]),
        ("blkio", &[("blkio.weight", "500")]),
        ("devices", &[("devices.allow", ""), ("devices.deny", "")]),
        ("freezer", &[("freezer.state", "THAWED")]),
    ];
    for (hierarchy, files) in files {
        let mut with_procs = files.to_vec();
        with_procs.push(("cgroup.procs", ""));
        populate(&root.join(hierarchy).join(relative), &with_procs);
    }
    populate(
        &root.join("unified").join(relative),
        &[("cgroup.procs", "")],
    );
}

#[test]
fn v1_create_writes_each_resource_to_its_controller() {
    let temp = TestDir::new("cgroup");
    let root = temp.path().to_path_buf();
    let hierarchy = v1_layout(&root);
    populate_v1_leaf(&root, "husk/ctr");
    let cgroup = Cgroup::create_in(hierarchy, None, "ctr", Some(&full_resources())).unwrap();
    let expected = [
        ("memory/husk/ctr/memory.limit_in_bytes", "104857600"),
        ("memory/husk/ctr/memory.memsw.limit_in_bytes", "314572800"),
        ("memory/husk/ctr/memory.soft_limit_in_bytes", "52428800"),
        ("cpu,cpuacct/husk/ctr/cpu.shares", "1024"),
        ("cpu,cpuacct/husk/ctr/cpu.cfs_period_us", "100000"),
        ("cpu,cpuacct/husk/ctr/cpu.cfs_quota_us", "50000"),
        ("cpuset/husk/ctr/cpuset.cpus", "0-1"),
        ("cpuset/husk/ctr/cpuset.mems", "0"),
        ("pids/husk/ctr/pids.max", "64"),
        ("blkio/husk/ctr/blkio.weight", "500"),
        // Deny-all first, then the rules in order: the last allow wins here.
        ("devices/husk/ctr/devices.deny", "a *:* rwm"),
        ("devices/husk/ctr/devices.allow", "c 1:3 rwm"),
    ];
    for (file, value) in expected {
        assert_eq!(read(root.join(file)), value, "{file}");
    }
    assert!(cgroup.warnings().is_empty(), "{:?}", cgroup.warnings());
    // One directory per hierarchy, the unified one included.
    assert_eq!(cgroup.paths().len(), 8);

    cgroup.add_process(4242).unwrap();
    for hierarchy in ["memory", "cpu,cpuacct", "pids", "freezer", "unified"] {
        assert_eq!(
            read(root.join(hierarchy).join("husk/ctr/cgroup.procs")),
            "4242"
        );
    }
}

#[test]
fn v1_device_rules_are_formatted_for_the_devices_cgroup() {
    let rule = |typ: LinuxDeviceType, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut builder = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(typ)
            .access(access);
        if let Some(major) = major {
            builder = builder.major(major);
        }
        if let Some(minor) = minor {
            builder = builder.minor(minor);
        }
        v1::device_rule(&builder.build().unwrap(), 0)
    };
    assert_eq!(
        rule(LinuxDeviceType::C, Some(136), None, "rwm")
            .unwrap()
            .as_deref(),
        Some("c 136:* rwm")
    );
    assert_eq!(
        rule(LinuxDeviceType::B, Some(-1), Some(-1), "")
            .unwrap()
            .as_deref(),
        Some("b *:* rwm")
    );
    assert_eq!(
        rule(LinuxDeviceType::U, Some(5), Some(0), "rw")
            .unwrap()
            .as_deref(),
        Some("c 5:0 rw")
    );
    assert_eq!(rule(LinuxDeviceType::P, None, None, "rwm").unwrap(), None);
    let error = rule(LinuxDeviceType::C, Some(1), Some(3), "rwx").unwrap_err();
    assert!(
        error
            .to_string()
            .contains("linux.resources.devices[0].access"),
        "{error}"
    );
}

#[test]
fn v1_create_makes_every_directory_and_destroy_removes_only_what_it_made() {
    let temp = TestDir::new("cgroup");
    let root = temp.path().to_path_buf();
    let hierarchy = v1_hierarchies(&root, &["memory", "pids"]);
    fs::create_dir_all(root.join("memory/existing")).unwrap();
    fs::create_dir_all(root.join("pids")).unwrap();
    let cgroup = Cgroup::create_in(hierarchy, Some("/existing/new/leaf"), "id", None).unwrap();
    for hierarchy in ["memory", "pids"] {
        assert!(root.join(hierarchy).join("existing/new/leaf").is_dir());
    }
    cgroup.destroy().unwrap();
    // Made by the cgroup: gone. There before: still there.
    assert!(!root.join("memory/existing/new").exists());
    assert!(root.join("memory/existing").is_dir());
    assert!(!root.join("pids/existing").exists());
}

#[test]
fn a_failed_create_leaves_nothing_behind() {
    let temp = TestDir::new("cgroup");
    let root = temp.path().to_path_buf();
    let hierarchy = v1_hierarchies(&root, &["memory", "pids"]);
    fs::create_dir_all(root.join("memory")).unwrap();
    fs::create_dir_all(root.join("pids")).unwrap();
    // The new directories have no memory.limit_in_bytes: the write fails.
    let error = Cgroup::create_in(
        hierarchy,
        Some("/x/y"),
        "id",
        Some(&memory_limit(1_048_576)),
    )
    .unwrap_err();
    let message = error.to_string();
    assert!(message.contains("memory.limit_in_bytes"), "{message}");
    assert!(message.contains("1048576"), "{message}");
    assert!(!root.join("memory/x").exists());
    assert!(!root.join("pids/x").exists());
}

#[test]
fn v1_refuses_unified_resources_and_limits_without_a_controller() {
    let temp = TestDir::new("cgroup");
    let root = temp.path().to_path_buf();
    let hierarchy = v1_hierarchies(&root, &["memory"]);
    fs::create_dir_all(root.join("memory/c")).unwrap();
    let cgroup = Cgroup::load_in(hierarchy, Some("/c"), "id").unwrap();

    let error = cgroup.apply(&unified("memory.high", "1")).unwrap_err();
    assert!(
        error.to_string().contains("linux.resources.unified"),
        "{error}"
    );

    let error = cgroup.apply(&pids_limit(10)).unwrap_err();
    assert!(
        matches!(
            error,
            CgroupError::ControllerUnavailable {
                controller: "pids",
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn v1_cpuset_directories_inherit_cpus_and_mems_from_their_parent() {
    let temp = TestDir::new("cgroup");
    let root = temp.path().to_path_buf();
    populate(
        &root.join("cpuset"),
        &[("cpuset.cpus", "0-3"), ("cpuset.mems", "0")],
    );
    populate(
        &root.join("cpuset/pod"),
        &[("cpuset.cpus", "\n"), ("cpuset.mems", "\n")],
    );
    populate(
        &root.join("cpuset/pod/ctr"),
        &[("cpuset.cpus", ""), ("cpuset.mems", "")],
    );
    let hierarchy = v1_hierarchies(&root, &["cpuset"]);
    Cgroup::create_in(hierarchy, Some("/pod/ctr"), "id", None).unwrap();
    assert_eq!(read(root.join("cpuset/pod/cpuset.cpus")), "0-3");
    assert_eq!(read(root.join("cpuset/pod/ctr/cpuset.cpus")), "0-3");
    assert_eq!(read(root.join("cpuset/pod/ctr/cpuset.mems")), "0");
}

#[test]
fn default_device_rules_are_runcs_allow_list() {
    let lines: Vec<String> = default_device_rules()
        .iter()
        .map(|rule| {
            assert!(rule.allow());
            v1::device_rule(rule, 0).unwrap().unwrap()
        })
        .collect();
    assert_eq!(
        lines,
        [
            "c *:* m",
            "b *:* m",
            "c 1:3 rwm",
            "c 1:8 rwm",
            "c 1:7 rwm",
            "c 5:0 rwm",
            "c 1:5 rwm",
            "c 1:9 rwm",
            "c 136:* rwm",
            "c 5:2 rwm"
        ]
    );
}

#[test]
fn load_tolerates_a_hierarchy_whose_directory_is_gone() {
    let temp = TestDir::new("cgroup");
    fs::create_dir_all(temp.join("memory/husk/c")).unwrap();
    fs::create_dir_all(temp.join("pids")).unwrap();
    let hierarchy = v1_hierarchies(temp.path(), &["memory", "pids"]);
    let cgroup = Cgroup::load_in(hierarchy, None, "c").unwrap();
    cgroup.destroy().unwrap();
    assert!(!temp.join("memory/husk/c").exists());
    // The shared parent stays.
    assert!(temp.join("memory/husk").is_dir());
}

#[test]
fn load_of_a_missing_cgroup_says_so() {
    let temp = TestDir::new("cgroup");
    let error = Cgroup::load_in(Hierarchy::unified(temp.path()), None, "gone").unwrap_err();
    assert!(matches!(error, CgroupError::NotFound { .. }), "{error}");
    assert!(error.to_string().contains("husk/gone"), "{error}");
}

#[test]
fn processes_include_descendant_cgroups() {
    let temp = TestDir::new("cgroup");
    populate(&temp.join("husk/c"), &[("cgroup.procs", "30\n10\n")]);
    populate(&temp.join("husk/c/inner"), &[("cgroup.procs", "20\n10\n")]);
    let cgroup = Cgroup::load_in(Hierarchy::unified(temp.path()), None, "c").unwrap();
    assert_eq!(cgroup.processes().unwrap(), vec![10, 20, 30]);
}

#[test]
fn v2_stats_come_from_the_controller_files() {
    let temp = TestDir::new("cgroup");
    populate(
        &temp.join("husk/c"),
        &[
            (
                "cpu.stat",
                "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 0\n",
            ),
            ("memory.current", "4096\n"),
            ("memory.peak", "8192\n"),
            ("memory.max", "max\n"),
            ("memory.swap.current", "0\n"),
            ("memory.swap.max", "1048576\n"),
            ("pids.current", "3\n"),
            ("pids.max", "64\n"),
            (
                "io.stat",
                "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n",
            ),
        ],
    );
    let cgroup = Cgroup::load_in(Hierarchy::unified(temp.path()), None, "c").unwrap();
    let stats = cgroup.stats().unwrap();
    assert_eq!(
        stats,
        CgroupStats {
            cpu: Some(CpuStats {
                usage_usec: 1500,
                user_usec: 1000,
                system_usec: 500
            }),
            memory: Some(MemoryStats {
                usage_bytes: 4096,
                peak_bytes: Some(8192),
                limit_bytes: None,
                swap_usage_bytes: Some(0),
                swap_limit_bytes: Some(1_048_576),
            }),
            pids: Some(PidsStats {
                current: 3,
                limit: Some(64)
            }),
            io: Some(IoStats {
                devices: vec![IoDeviceStats {
                    major: 8,
                    minor: 0,
                    read_bytes: 10,
                    write_bytes: 20,
                    read_ios: 1,
                    write_ios: 2
                }]
            }),
        }
    );
}

#[test]
fn v1_stats_convert_units_and_unlimited_values() {
    let temp = TestDir::new("cgroup");
    let root = temp.path().to_path_buf();
    let hierarchy = v1_hierarchies(&root, &["cpuacct", "memory", "pids"]);
    populate(
        &root.join("cpuacct/husk/c"),
        &[
            ("cpuacct.usage", "3000000\n"),
            // No usage_user/usage_sys: ticks of 10 ms from cpuacct.stat.
            ("cpuacct.stat", "user 2\nsystem 1\n"),
        ],
    );
    populate(
        &root.join("memory/husk/c"),
        &[
            ("memory.usage_in_bytes", "1000\n"),
            ("memory.max_usage_in_bytes", "2000\n"),
            ("memory.limit_in_bytes", "9223372036854771712\n"),
            ("memory.memsw.usage_in_bytes", "1500\n"),
            ("memory.memsw.limit_in_bytes", "9223372036854771712\n"),
        ],
    );
    populate(
        &root.join("pids/husk/c"),
        &[("pids.current", "2\n"), ("pids.max", "max\n")],
    );
    let cgroup = Cgroup::load_in(hierarchy, None, "c").unwrap();
    let stats = cgroup.stats().unwrap();
    assert_eq!(
        stats.cpu,
        Some(CpuStats {
            usage_usec: 3000,
            user_usec: 20_000,
            system_usec: 10_000
        })
    );
    assert_eq!(
        stats.memory,
        Some(MemoryStats {
            usage_bytes: 1000,
            peak_bytes: Some(2000),
            limit_bytes: None,
            swap_usage_bytes: Some(500),
            swap_limit_bytes: None,
        })
    );
    assert_eq!(
        stats.pids,
        Some(PidsStats {
            current: 2,
            limit: None
        })
    );
    assert_eq!(stats.io, None);
}

#[test]
fn freeze_and_thaw_write_the_freezer_files() {
    let temp = TestDir::new("cgroup");
    populate(
        &temp.join("husk/c"),
        &[
            ("cgroup.freeze", "0"),
            // What the kernel reports once every task has stopped.
            ("cgroup.events", "populated 1\nfrozen 1\n"),
        ],
    );
    let cgroup = Cgroup::load_in(Hierarchy::unified(temp.path()), None, "c").unwrap();
    cgroup.freeze().unwrap();
    assert_eq!(read(temp.join("husk/c/cgroup.freeze")), "1");

    let v1_root = temp.join("v1");
    populate(
        &v1_root.join("freezer/husk/c"),
        &[("freezer.state", "THAWED")],
    );
    let hierarchy = v1_hierarchies(&v1_root, &["freezer"]);
    let cgroup = Cgroup::load_in(hierarchy, None, "c").unwrap();
    cgroup.freeze().unwrap();
    assert_eq!(read(v1_root.join("freezer/husk/c/freezer.state")), "FROZEN");
    cgroup.thaw().unwrap();
    assert_eq!(read(v1_root.join("freezer/husk/c/freezer.state")), "THAWED");
}

#[test]
fn pause_without_a_freezer_names_the_missing_controller() {
    let temp = TestDir::new("cgroup");
    fs::create_dir_all(temp.join("memory/husk/c")).unwrap();
    let hierarchy = v1_hierarchies(temp.path(), &["memory"]);
    let cgroup = Cgroup::load_in(hierarchy, None, "c").unwrap();
    let error = cgroup.freeze().unwrap_err();
    assert!(error.to_string().contains("freezer"), "{error}");
}
