//! The system calls the engine makes while it sets a container up, behind one
//! trait: [`LinuxSyscall`] makes them, [`RecordingSyscall`] writes each down
//! (and can be told to fail one) so that tests can assert on the exact
//! sequence without root.
//!
//! Every method returns `io::Result`: the callers add what they were doing
//! (which mount, which field of config.json) in their own error types.
//! Paths after `pivot_root` are inside the container; the file helpers at the
//! end exist so that the steps after the pivot go through this trait too.

mod linux;
mod recording;

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

pub use linux::LinuxSyscall;
use oci_spec::runtime::LinuxNamespaceType;
pub use recording::{Call, RecordingSyscall};
use seccompiler::BpfProgram;

/// An opened namespace file (`linux.namespaces[].path`) to join with setns(2).
/// Opened before any of them is joined: joining the mount namespace first
/// could make the later paths unreachable (runc's nsexec does the same).
#[derive(Debug)]
pub struct NamespaceFile {
    pub kind: LinuxNamespaceType,
    pub path: PathBuf,
    pub file: File,
}

/// The three capability sets capset(2) takes, as bit masks (bit N is the
/// capability numbered N in linux/capability.h).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapabilitySets {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
}

pub trait Syscall {
    /// mount(2). `source` and `fstype` may be absent (remounts, propagation).
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: u64,
        data: Option<&str>,
    ) -> io::Result<()>;

    /// umount2(2).
    fn umount2(&self, target: &Path, flags: i32) -> io::Result<()>;

    /// Makes `new_root` the root of the mount namespace and detaches the old
    /// root, without needing a directory to put the old root in: runc's
    /// pivot_root(".", ".") followed by an MNT_DETACH unmount of ".".
    fn pivot_root(&self, new_root: &Path) -> io::Result<()>;

    /// chroot(2) into `path` (used only without a mount namespace of our own).
    fn chroot(&self, path: &Path) -> io::Result<()>;

    /// chdir(2).
    fn chdir(&self, path: &Path) -> io::Result<()>;

    /// setns(2) into an already opened namespace file.
    fn setns(&self, namespace: &NamespaceFile) -> io::Result<()>;

    /// unshare(2) with CLONE_NEW* flags.
    fn unshare(&self, flags: i32) -> io::Result<()>;

    /// sethostname(2).
    fn sethostname(&self, name: &str) -> io::Result<()>;

    /// setdomainname(2).
    fn setdomainname(&self, name: &str) -> io::Result<()>;

    /// mknod(2); `mode` holds the file type bits and the permissions.
    fn mknod(&self, path: &Path, mode: u32, device: u64) -> io::Result<()>;

    /// chown(2) (follows symlinks, as runc's os.Chown).
    fn chown(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()>;

    /// symlink(2): creates `link` pointing at `target`.
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()>;

    /// The highest capability number the running kernel knows
    /// (/proc/sys/kernel/cap_last_cap).
    fn last_capability(&self) -> io::Result<u32>;

    /// prctl(PR_CAPBSET_DROP): removes one capability from the bounding set.
    fn drop_bounding_capability(&self, capability: u32) -> io::Result<()>;

    /// capset(2) on the calling thread.
    fn capset(&self, sets: CapabilitySets) -> io::Result<()>;

    /// prctl(PR_CAP_AMBIENT_CLEAR_ALL).
    fn clear_ambient_capabilities(&self) -> io::Result<()>;

    /// prctl(PR_CAP_AMBIENT_RAISE) for one capability.
    fn raise_ambient_capability(&self, capability: u32) -> io::Result<()>;

    /// prctl(PR_SET_KEEPCAPS).
    fn set_keep_capabilities(&self, keep: bool) -> io::Result<()>;

    /// prctl(PR_SET_NO_NEW_PRIVS, 1).
    fn set_no_new_privileges(&self) -> io::Result<()>;

    /// setgroups(2).
    fn setgroups(&self, groups: &[u32]) -> io::Result<()>;

    /// setresgid(2) with the same id for real, effective and saved.
    fn setresgid(&self, gid: u32) -> io::Result<()>;

    /// setresuid(2) with the same id for real, effective and saved.
    fn setresuid(&self, uid: u32) -> io::Result<()>;

    /// setrlimit(2); `resource` is an RLIMIT_* number.
    fn setrlimit(&self, resource: u32, soft: u64, hard: u64) -> io::Result<()>;

    /// umask(2); returns the previous mask.
    fn umask(&self, mask: u32) -> u32;

    /// The MS_* flags of the mount holding `path` (statfs(2)'s f_flag), to
    /// keep the flags a remount may not drop (nosuid, nodev, noexec, ro).
    fn mount_flags(&self, path: &Path) -> io::Result<u64>;

    /// Installs a compiled seccomp filter on the calling thread, with
    /// seccomp(2) filter flags. It does not set no_new_privs itself.
    fn install_seccomp(&self, program: &BpfProgram, flags: u32) -> io::Result<()>;

    /// Points stdin, stdout and stderr that refer to the host's /dev/null at
    /// the container's /dev/null instead (runc's reOpenDevNull).
    fn reopen_dev_null(&self) -> io::Result<()>;

    /// Gives stdin, stdout and stderr to `uid` (keeping their group) unless
    /// they are /dev/null or owned by `uid` already, so that a non-root
    /// process can use its terminal (runc's fixStdioPermissions). Failures
    /// that only mean "not ours to change" are ignored.
    fn give_stdio_to(&self, uid: u32) -> io::Result<()>;

    /// Writes a whole file that exists already: /proc/sys entries,
    /// /proc/self/oom_score_adj.
    fn write_file(&self, path: &Path, contents: &[u8]) -> io::Result<()>;

    /// Reads a whole file (the container's /etc/passwd and /etc/group).
    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>>;

    /// Creates a directory and its missing parents.
    fn create_dir_all(&self, path: &Path, mode: u32) -> io::Result<()>;
}

/// Text of an errno without std's " (os error N)" suffix, the way runc and
/// the C library print it: "Operation not permitted".
pub fn describe(error: &io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(end) => text[..end].to_owned(),
        None => text,
    }
}
