//! The cgroup code against this machine's real cgroupfs (v1 hybrid here, v2
//! on a unified host). Needs root.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command};

use husk_init::engine::cgroups::{Cgroup, CgroupDir, CgroupVersion, Hierarchy};
use oci_spec::runtime::{LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder};

fn require_root() {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test creates cgroups and must run as root (euid is {euid})"
    );
}

fn spawn_sleeper() -> Child {
    Command::new("sleep")
        .arg("300")
        .spawn()
        .expect("spawn `sleep 300` (coreutils)")
}

fn read_trimmed(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
        .trim()
        .to_string()
}

/// The container's directory holding a controller's files.
fn dir_with(cgroup: &Cgroup, controller: &str) -> CgroupDir {
    cgroup
        .paths()
        .iter()
        .find(|dir| match cgroup.hierarchy().version() {
            CgroupVersion::V2 => true,
            CgroupVersion::V1 => dir.mount.controllers.iter().any(|c| c == controller),
        })
        .unwrap_or_else(|| {
            panic!(
                "no {controller} hierarchy on this host: {:?}",
                cgroup.paths()
            )
        })
        .clone()
}

fn assert_removed_everywhere(hierarchy: &Hierarchy, top: &str) {
    for mount in hierarchy.mounts() {
        let path = mount.mount_point.join(top);
        assert!(!path.exists(), "{} was left behind", path.display());
    }
}

#[test]
fn limits_processes_kill_and_destroy_on_this_host() {
    require_root();
    let top = format!("husk-itest-{}", std::process::id());
    let cgroups_path = format!("/{top}/limits");
    let resources = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(64 * 1024 * 1024_i64)
                .build()
                .unwrap(),
        )
        .pids(LinuxPidsBuilder::default().limit(32_i64).build().unwrap())
        .build()
        .unwrap();
    let cgroup = Cgroup::create(Some(&cgroups_path), "limits", Some(&resources)).unwrap();
    let hierarchy = cgroup.hierarchy().clone();

    let (memory_file, expected_memory) = match hierarchy.version() {
        CgroupVersion::V1 => ("memory.limit_in_bytes", "67108864"),
        CgroupVersion::V2 => ("memory.max", "67108864"),
    };
    let memory_dir = dir_with(&cgroup, "memory");
    assert_eq!(
        read_trimmed(&memory_dir.path.join(memory_file)),
        expected_memory
    );
    let pids_dir = dir_with(&cgroup, "pids");
    assert_eq!(read_trimmed(&pids_dir.path.join("pids.max")), "32");

    let mut child = spawn_sleeper();
    let pid = i32::try_from(child.id()).unwrap();
    cgroup.add_process(pid).unwrap();
    assert_eq!(cgroup.processes().unwrap(), vec![pid]);
    let membership = read_trimmed(Path::new(&format!("/proc/{pid}/cgroup")));
    assert!(
        membership.contains(&format!("/{top}/limits")),
        "the child is not in the container's cgroup: {membership}"
    );

    let stats = cgroup.stats().unwrap();
    let pids = stats.pids.expect("pids statistics");
    assert_eq!((pids.current, pids.limit), (1, Some(32)));
    let memory = stats.memory.expect("memory statistics");
    assert_eq!(memory.limit_bytes, Some(64 * 1024 * 1024));

    cgroup.freeze().unwrap();
    cgroup.thaw().unwrap();

    cgroup.kill_all(libc::SIGKILL).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");

    cgroup.destroy().unwrap();
    assert_removed_everywhere(&hierarchy, &top);
}

/// The v2 paths (cgroup.kill, cgroup.freeze, cgroup.events) against a real
/// cgroup2 mount: the whole hierarchy on a unified host, the controller-less
/// hybrid mount on a v1 host.
#[test]
fn cgroup2_kill_freeze_and_destroy_on_this_host() {
    require_root();
    let detected = Hierarchy::detect().unwrap();
    let unified_mount = detected
        .mounts()
        .iter()
        .find(|mount| mount.version == CgroupVersion::V2)
        .expect(
            "this host has no cgroup2 mount (expected /sys/fs/cgroup or /sys/fs/cgroup/unified)",
        )
        .mount_point
        .clone();
    let hierarchy = Hierarchy::unified(&unified_mount);
    let top = format!("husk-itest2-{}", std::process::id());
    let cgroup =
        Cgroup::create_in(hierarchy.clone(), Some(&format!("/{top}/v2")), "v2", None).unwrap();
    let dir = cgroup.paths()[0].path.clone();

    let mut children = [spawn_sleeper(), spawn_sleeper()];
    let mut pids: Vec<i32> = children
        .iter()
        .map(|child| i32::try_from(child.id()).unwrap())
        .collect();
    pids.sort_unstable();
    for pid in &pids {
        cgroup.add_process(*pid).unwrap();
    }
    assert_eq!(cgroup.processes().unwrap(), pids);

    cgroup.freeze().unwrap();
    assert!(
        read_trimmed(&dir.join("cgroup.events")).contains("frozen 1"),
        "cgroup.events does not report frozen"
    );
    cgroup.thaw().unwrap();
    assert!(read_trimmed(&dir.join("cgroup.events")).contains("frozen 0"));

    cgroup.kill_all(libc::SIGKILL).unwrap();
    for child in &mut children {
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
    }
    cgroup.destroy().unwrap();
    assert_removed_everywhere(&hierarchy, &top);
}
