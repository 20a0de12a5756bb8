//! The system calls the jail makes. The steps inside the new namespaces go
//! through [`JailSyscalls`], so that their order can be checked against a
//! recording implementation; the process-level calls around them (fork,
//! wait, signals) are plain functions. Every `unsafe` of the jail is here.

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::ptr;

use vmm_sys_util::signal::create_sigset;

/// The resource limits the jail sets (getrlimit(2)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// RLIMIT_NOFILE
    OpenFiles,
    /// RLIMIT_CORE
    CoreFileSize,
    /// RLIMIT_FSIZE
    FileSize,
}

impl Resource {
    pub fn name(self) -> &'static str {
        match self {
            Resource::OpenFiles => "RLIMIT_NOFILE",
            Resource::CoreFileSize => "RLIMIT_CORE",
            Resource::FileSize => "RLIMIT_FSIZE",
        }
    }

    fn raw(self) -> libc::__rlimit_resource_t {
        match self {
            Resource::OpenFiles => libc::RLIMIT_NOFILE,
            Resource::CoreFileSize => libc::RLIMIT_CORE,
            Resource::FileSize => libc::RLIMIT_FSIZE,
        }
    }
}

/// What the jail does to itself between fork and running the VM.
pub trait JailSyscalls {
    /// unshare(2) with `flags` (CLONE_NEW*).
    fn unshare(&self, flags: libc::c_int) -> io::Result<()>;
    /// Marks every mount private, recursively, so that nothing mounted from
    /// now on reaches the host's namespace (mount_namespaces(7)).
    fn make_mounts_private(&self) -> io::Result<()>;
    fn mount_tmpfs(&self, target: &Path, flags: libc::c_ulong, options: &str) -> io::Result<()>;
    /// mkdir(2) with exactly `mode`.
    fn create_dir(&self, path: &Path, mode: u32) -> io::Result<()>;
    /// An empty file, to mount a file on (fails if it exists).
    fn create_empty_file(&self, path: &Path) -> io::Result<()>;
    /// A bind mount of `source` on `target`, without the mounts beneath it.
    fn bind(&self, source: &Path, target: &Path) -> io::Result<()>;
    /// Sets a mount's per-mount flags (MS_REMOUNT | MS_BIND): exactly
    /// `flags` of MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC.
    fn remount(&self, target: &Path, flags: libc::c_ulong) -> io::Result<()>;
    /// mknod(2) of a character device with exactly `mode`.
    fn make_char_device(&self, path: &Path, mode: u32, device: libc::dev_t) -> io::Result<()>;
    fn set_owner(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()>;
    /// A devpts instance of the jail's own (devpts(5)), any user may open
    /// its ptmx.
    fn mount_devpts(&self, target: &Path) -> io::Result<()>;
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()>;
    /// Makes `new_root` the root and the working directory, the old root
    /// stacked on it (pivot_root(2): `pivot_root(".", ".")`).
    fn pivot_root(&self, new_root: &Path) -> io::Result<()>;
    /// Detaches the old root stacked by [`JailSyscalls::pivot_root`] and
    /// moves to the new root.
    fn detach_old_root(&self) -> io::Result<()>;
    fn set_hostname(&self, name: &str) -> io::Result<()>;
    /// setrlimit(2); `None` is RLIM_INFINITY.
    fn set_rlimit(&self, resource: Resource, limit: Option<u64>) -> io::Result<()>;
    fn set_no_new_privs(&self) -> io::Result<()>;
    /// setgroups(2) with an empty list.
    fn clear_supplementary_groups(&self) -> io::Result<()>;
    /// setresgid(2) with all three.
    fn set_gid(&self, gid: u32) -> io::Result<()>;
    /// setresuid(2) with all three.
    fn set_uid(&self, uid: u32) -> io::Result<()>;
    /// PR_CAPBSET_DROP of every capability the kernel knows.
    fn drop_bounding_set(&self) -> io::Result<()>;
    /// PR_CAP_AMBIENT_CLEAR_ALL.
    fn clear_ambient_capabilities(&self) -> io::Result<()>;
    /// capset(2) with empty effective, permitted and inheritable sets.
    fn clear_capabilities(&self) -> io::Result<()>;
    /// PR_SET_PDEATHSIG.
    fn set_parent_death_signal(&self, signal: libc::c_int) -> io::Result<()>;
}

/// The real system calls.
pub struct LinuxSyscalls;

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} contains a NUL byte", path.display()),
        )
    })
}

/// A system call's `-1 and errno` as an io::Result.
fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// mount(2) with a source, a target, a type and data, any of which may be
/// absent.
fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let source = source.map(c_path).transpose()?;
    let target = c_path(target)?;
    let fstype = fstype.map(CString::new).transpose()?;
    let data = data.map(CString::new).transpose()?;
    let pointer = |value: &Option<CString>| value.as_ref().map_or(ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is either null (which mount(2) accepts for the
    // source, type and data) or a NUL-terminated string that outlives the
    // call; the kernel only reads them.
    check(unsafe {
        libc::mount(
            pointer(&source),
            target.as_ptr(),
            pointer(&fstype),
            flags,
            pointer(&data).cast(),
        )
    })
}

fn prctl(option: libc::c_int, arg2: libc::c_ulong, arg3: libc::c_ulong) -> io::Result<()> {
    // SAFETY: the options used here take integers only, no pointers.
    check(unsafe { libc::prctl(option, arg2, arg3, 0 as libc::c_ulong, 0 as libc::c_ulong) })
}

impl JailSyscalls for LinuxSyscalls {
    fn unshare(&self, flags: libc::c_int) -> io::Result<()> {
        // SAFETY: unshare(2) takes flags only.
        check(unsafe { libc::unshare(flags) })
    }

    fn make_mounts_private(&self) -> io::Result<()> {
        mount(
            None,
            Path::new("/"),
            None,
            libc::MS_REC | libc::MS_PRIVATE,
            None,
        )
    }

    fn mount_tmpfs(&self, target: &Path, flags: libc::c_ulong, options: &str) -> io::Result<()> {
        mount(
            Some(Path::new("tmpfs")),
            target,
            Some("tmpfs"),
            flags,
            Some(options),
        )
    }

    fn create_dir(&self, path: &Path, mode: u32) -> io::Result<()> {
        fs::DirBuilder::new().mode(mode).create(path)?;
        // mkdir(2) applies the umask.
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
    }

    fn create_empty_file(&self, path: &Path) -> io::Result<()> {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map(drop)
    }

    fn bind(&self, source: &Path, target: &Path) -> io::Result<()> {
        mount(Some(source), target, None, libc::MS_BIND, None)
    }

    fn remount(&self, target: &Path, flags: libc::c_ulong) -> io::Result<()> {
        mount(
            None,
            target,
            None,
            libc::MS_REMOUNT | libc::MS_BIND | flags,
            None,
        )
    }

    fn make_char_device(&self, path: &Path, mode: u32, device: libc::dev_t) -> io::Result<()> {
        let c_path = c_path(path)?;
        // SAFETY: `c_path` is NUL-terminated and outlives the call.
        check(unsafe { libc::mknod(c_path.as_ptr(), libc::S_IFCHR | mode, device) })?;
        // mknod(2) applies the umask.
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
    }

    fn set_owner(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()> {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
    }

    fn mount_devpts(&self, target: &Path) -> io::Result<()> {
        mount(
            Some(Path::new("devpts")),
            target,
            Some("devpts"),
            libc::MS_NOSUID | libc::MS_NOEXEC,
            Some("newinstance,ptmxmode=0666,mode=0620"),
        )
    }

    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        std::os::unix::fs::symlink(target, link)
    }

    fn pivot_root(&self, new_root: &Path) -> io::Result<()> {
        std::env::set_current_dir(new_root)?;
        let here = c_path(Path::new("."))?;
        // SAFETY: both arguments are the same NUL-terminated string, which
        // outlives the call.
        let ret = unsafe { libc::syscall(libc::SYS_pivot_root, here.as_ptr(), here.as_ptr()) };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn detach_old_root(&self) -> io::Result<()> {
        let here = c_path(Path::new("."))?;
        // SAFETY: `here` is NUL-terminated and outlives the call.
        check(unsafe { libc::umount2(here.as_ptr(), libc::MNT_DETACH) })?;
        std::env::set_current_dir("/")
    }

    fn set_hostname(&self, name: &str) -> io::Result<()> {
        // SAFETY: the pointer and length describe `name`'s bytes, which
        // outlive the call; sethostname(2) needs no NUL.
        check(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) })
    }

    fn set_rlimit(&self, resource: Resource, limit: Option<u64>) -> io::Result<()> {
        let value = limit.unwrap_or(libc::RLIM_INFINITY);
        let limit = libc::rlimit {
            rlim_cur: value,
            rlim_max: value,
        };
        // SAFETY: `limit` is a valid rlimit that outlives the call.
        check(unsafe { libc::setrlimit(resource.raw(), &limit) })
    }

    fn set_no_new_privs(&self) -> io::Result<()> {
        prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0)
    }

    fn clear_supplementary_groups(&self) -> io::Result<()> {
        // SAFETY: a count of 0 with a null list is what setgroups(2) takes
        // for "no supplementary groups".
        check(unsafe { libc::setgroups(0, ptr::null()) })
    }

    fn set_gid(&self, gid: u32) -> io::Result<()> {
        // SAFETY: setresgid takes integers only.
        check(unsafe { libc::setresgid(gid, gid, gid) })
    }

    fn set_uid(&self, uid: u32) -> io::Result<()> {
        // SAFETY: setresuid takes integers only.
        check(unsafe { libc::setresuid(uid, uid, uid) })
    }

    fn drop_bounding_set(&self) -> io::Result<()> {
        // capabilities(7): the kernel answers EINVAL for the first number
        // past the last capability it knows (/proc/sys/kernel/cap_last_cap,
        // which the jail cannot read once /proc is gone).
        for capability in 0..64 {
            match prctl(libc::PR_CAPBSET_DROP, capability, 0) {
                Ok(()) => {}
                Err(error) if error.raw_os_error() == Some(libc::EINVAL) && capability > 0 => {
                    return Ok(())
                }
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    fn clear_ambient_capabilities(&self) -> io::Result<()> {
        prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
        )
    }

    fn clear_capabilities(&self) -> io::Result<()> {
        // linux/capability.h: version 3 takes two data structures (64
        // capabilities); pid 0 is the calling thread.
        #[repr(C)]
        struct Header {
            version: u32,
            pid: libc::c_int,
        }
        #[repr(C)]
        #[derive(Clone, Copy)]
        struct Data {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
        let header = Header {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        let empty = [Data {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        }; 2];
        // SAFETY: `header` and `empty` are laid out as the kernel's
        // __user_cap_header_struct and two __user_cap_data_struct, and
        // outlive the call; capset(2) only reads them.
        let ret = unsafe { libc::syscall(libc::SYS_capset, &header, empty.as_ptr()) };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn set_parent_death_signal(&self, signal: libc::c_int) -> io::Result<()> {
        prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0)
    }
}

/// Where fork(2) left the caller.
pub enum Fork {
    Parent { child: libc::pid_t },
    Child,
}

/// fork(2). Only the calling thread goes on in the child: call it while
/// the process has no other thread.
pub fn fork() -> io::Result<Fork> {
    // SAFETY: fork takes no arguments. The child runs on with a copy of
    // this single-threaded process, so no lock can be held by a thread
    // that no longer exists.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Fork::Child),
        child => Ok(Fork::Parent { child }),
    }
}

/// A pipe whose write end the parent keeps for as long as it lives: its
/// read end, non-blocking, says whether the parent is still there.
pub fn parent_life_pipe() -> io::Result<(File, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) })?;
    // SAFETY: pipe2 just returned these descriptors, owned by no one else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((File::from(read), write))
}

/// Whether the other end of a [`parent_life_pipe`] is still open: end of
/// file means every writer is gone.
pub fn writer_alive(mut read_end: &File) -> io::Result<bool> {
    let mut byte = [0u8; 1];
    match read_end.read(&mut byte) {
        Ok(0) => Ok(false),
        Ok(_) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => Ok(true),
        Err(error) => Err(error),
    }
}

/// A signal mask to restore later.
pub struct SavedMask(libc::sigset_t);

/// Blocks `signals` for the calling thread; returns the mask before.
pub fn block_signals(signals: &[libc::c_int]) -> io::Result<SavedMask> {
    let set = create_sigset(signals).map_err(|e| io::Error::from_raw_os_error(e.errno()))?;
    // SAFETY: sigset_t is plain data, which pthread_sigmask fills.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is initialized and `old` writable; both outlive the call.
    let ret = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) };
    if ret != 0 {
        return Err(io::Error::from_raw_os_error(ret));
    }
    Ok(SavedMask(old))
}

/// Puts back a mask saved by [`block_signals`].
pub fn restore_signal_mask(saved: &SavedMask) -> io::Result<()> {
    // SAFETY: `saved.0` was filled by pthread_sigmask; a null old set is
    // allowed.
    let ret = unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &saved.0, ptr::null_mut()) };
    if ret != 0 {
        return Err(io::Error::from_raw_os_error(ret));
    }
    Ok(())
}

/// Waits for one of `signals`, which must be blocked, and returns it.
pub fn wait_for_signal(signals: &[libc::c_int]) -> io::Result<libc::c_int> {
    let set = create_sigset(signals).map_err(|e| io::Error::from_raw_os_error(e.errno()))?;
    loop {
        // SAFETY: `set` is initialized; a null info pointer is allowed.
        let signal = unsafe { libc::sigwaitinfo(&set, ptr::null_mut()) };
        if signal >= 0 {
            return Ok(signal);
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// How a child process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildEnd {
    Exited(i32),
    Killed(libc::c_int),
}

/// waitpid(2) for `child`: None while it runs (with `block` false).
pub fn wait_child(child: libc::pid_t, block: bool) -> io::Result<Option<ChildEnd>> {
    let flags = if block { 0 } else { libc::WNOHANG };
    loop {
        let mut status = 0;
        // SAFETY: `status` is writable and outlives the call.
        let ret = unsafe { libc::waitpid(child, &mut status, flags) };
        if ret < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        if ret == 0 {
            return Ok(None);
        }
        if libc::WIFEXITED(status) {
            return Ok(Some(ChildEnd::Exited(libc::WEXITSTATUS(status))));
        }
        if libc::WIFSIGNALED(status) {
            return Ok(Some(ChildEnd::Killed(libc::WTERMSIG(status))));
        }
        // Stopped or continued: only reported with WUNTRACED/WCONTINUED,
        // which are not asked for.
    }
}

/// kill(2).
pub fn send_signal(pid: libc::pid_t, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: kill takes integers only.
    check(unsafe { libc::kill(pid, signal) })
}

/// Ends the calling process by `signal`, as if it had been sent to it with
/// its default action, without a core dump. Returns only for a signal
/// whose default action does not end a process.
pub fn die_of(signal: libc::c_int) {
    // A core of this process tells nothing about the one that died.
    let _ = prctl(libc::PR_SET_DUMPABLE, 0, 0);
    // SAFETY: SIG_DFL is a valid disposition for any signal that can be
    // caught; for others signal(2) fails, which is harmless here.
    unsafe { libc::signal(signal, libc::SIG_DFL) };
    if let Ok(set) = create_sigset(&[signal]) {
        // SAFETY: `set` is initialized; a null old set is allowed.
        unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, ptr::null_mut()) };
    }
    // SAFETY: raise takes an integer only; with the signal unblocked and
    // its default action in place, it is delivered before raise returns.
    unsafe { libc::raise(signal) };
}
