//! What the clients leave on the host outside the directories they are
//! told to use, and how a test takes it away again: the scratch directory
//! with its mounts and processes, host paths the clients create anyway,
//! cgroup parents, and the check that a removed container left no cgroup.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::husk_cli::require_root;
use crate::path_str;

/// The mount points of the cgroup hierarchies (v1 controllers and the
/// unified one), from /proc/self/mountinfo (proc(5)).
fn cgroup_mount_points() -> Vec<PathBuf> {
    mount_points()
        .into_iter()
        .filter(|(_, fstype)| fstype == "cgroup" || fstype == "cgroup2")
        .map(|(mount_point, _)| mount_point)
        .collect()
}

/// Every mount point with its filesystem type, from /proc/self/mountinfo.
fn mount_points() -> Vec<(PathBuf, String)> {
    fs::read_to_string("/proc/self/mountinfo")
        .expect("read /proc/self/mountinfo")
        .lines()
        .filter_map(|line| {
            let (head, tail) = line.split_once(" - ")?;
            let mount_point = head.split_whitespace().nth(4)?;
            let fstype = tail.split_whitespace().next()?;
            Some((PathBuf::from(mount_point), fstype.to_string()))
        })
        .collect()
}

/// The cgroup directories, in any hierarchy and up to three levels deep,
/// whose name holds `container_id`: what a container that is gone must
/// not leave behind (clients name the leaf after the ID: `/docker/ID`,
/// `/libpod_parent/libpod-ID`, `/<namespace>/ID`).
pub fn cgroup_dirs_of(container_id: &str) -> Vec<PathBuf> {
    fn search(directory: &Path, container_id: &str, depth: u32, found: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(directory) else {
            return;
        };
        for entry in entries.flatten() {
            if !entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                continue;
            }
            let path = entry.path();
            if entry.file_name().to_string_lossy().contains(container_id) {
                found.push(path);
            } else if depth > 0 {
                search(&path, container_id, depth - 1, found);
            }
        }
    }
    let mut found = Vec::new();
    for mount_point in cgroup_mount_points() {
        search(&mount_point, container_id, 2, &mut found);
    }
    found
}

/// The scratch directory of one client test, and what the client may
/// leave outside it. The directory is a tmpfs of its own: the clients'
/// storage drivers stack overlayfs on it, and overlayfs takes tmpfs as
/// an upper layer where it may refuse what /tmp is on (the nested test
/// host shares the host's / over 9p, TESTHOST.md); unix sockets bind
/// there too. On drop, in this order: processes started from the scratch
/// directory (a shim or conmon a failed test left) are killed, mounts
/// under it (and the tmpfs) undone, host paths and cgroup parents that
/// did not exist before removed, and the directory itself removed.
pub struct HostFootprint {
    pub dir: PathBuf,
    absent_paths: Vec<PathBuf>,
    absent_cgroups: Vec<PathBuf>,
}

impl HostFootprint {
    /// A fresh scratch directory `/tmp/husk-<name>-<pid>` (short: docker
    /// and containerd put unix sockets under it, and sun_path holds 108
    /// bytes, unix(7)); `host_paths` and the cgroup parents named in
    /// `cgroup_parents` are watched.
    pub fn new(name: &str, host_paths: &[&str], cgroup_parents: &[&str]) -> HostFootprint {
        require_root("the clients run containers with namespaces, mounts and cgroups");
        let dir = std::env::temp_dir().join(format!("husk-{name}-{}", std::process::id()));
        if dir.exists() {
            unmount_all_under(&dir);
            let _ = fs::remove_dir_all(&dir);
        }
        fs::create_dir_all(&dir).expect("create the scratch directory");
        mount_tmpfs(&dir);
        let absent_paths = host_paths
            .iter()
            .map(PathBuf::from)
            .filter(|path| !path.exists())
            .collect();
        let absent_cgroups = cgroup_mount_points()
            .into_iter()
            .flat_map(|mount_point| {
                cgroup_parents
                    .iter()
                    .map(move |parent| mount_point.join(parent))
            })
            .filter(|path| !path.exists())
            .collect();
        HostFootprint {
            dir,
            absent_paths,
            absent_cgroups,
        }
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for HostFootprint {
    fn drop(&mut self) {
        kill_processes_mentioning(&self.dir);
        unmount_all_under(&self.dir);
        for path in &self.absent_paths {
            if path.exists() {
                let _ = fs::remove_dir_all(path);
            }
        }
        for cgroup in &self.absent_cgroups {
            remove_empty_cgroups(cgroup);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Mounts a fresh tmpfs on `directory` (mount(8)).
fn mount_tmpfs(directory: &Path) {
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "mode=0755", "husk-clients"])
        .arg(directory)
        .status()
        .expect("run mount (util-linux)");
    assert!(
        status.success(),
        "mount a tmpfs on {} ({status})",
        directory.display()
    );
}

/// SIGKILLs every process (other than this one) whose command line names
/// a path under `directory`: the daemons and shims a test started there.
fn kill_processes_mentioning(directory: &Path) {
    // With the separator, /tmp/husk-x-12 does not match /tmp/husk-x-123.
    let needle = format!("{}/", path_str(directory));
    let own_pid = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == own_pid {
            continue;
        }
        let Ok(command_line) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&command_line).contains(&needle) {
            eprintln!(
                "killing leftover process {pid}: {}",
                String::from_utf8_lossy(&command_line).replace('\0', " ")
            );
            // SAFETY: kill(2) takes two integers; the process was started
            // by this test from its own scratch directory.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

/// Detaches every mount at or under `directory`, deepest first
/// (umount2(2) MNT_DETACH), so that removing the directory cannot reach
/// into what a client mounted there (overlay layers, storage binds).
fn unmount_all_under(directory: &Path) {
    let mut mounts: Vec<PathBuf> = mount_points()
        .into_iter()
        .map(|(mount_point, _)| mount_point)
        .filter(|mount_point| mount_point.starts_with(directory))
        .collect();
    mounts.sort_by_key(|mount_point| std::cmp::Reverse(mount_point.as_os_str().len()));
    for mount_point in mounts {
        let Ok(path) = std::ffi::CString::new(path_str(&mount_point)) else {
            continue;
        };
        // SAFETY: `path` is a NUL-terminated string that outlives the call.
        unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Removes a cgroup directory and the cgroups below it, deepest first;
/// rmdir(2) removes only cgroups without processes or children, so one
/// still in use stays.
fn remove_empty_cgroups(cgroup: &Path) {
    if let Ok(entries) = fs::read_dir(cgroup) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                remove_empty_cgroups(&entry.path());
            }
        }
    }
    let _ = fs::remove_dir(cgroup);
}
