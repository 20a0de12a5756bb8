//! The real system calls. All of the engine's setup `unsafe` is here (the
//! process primitives — fork, exec, sockets, pty — are in `engine::sys`).

use std::ffi::CString;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;

use seccompiler::BpfProgram;

use super::{CapabilitySets, NamespaceFile, Syscall};
use crate::engine::seccomp;

/// Makes the calls for real, on the calling thread.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxSyscall;

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} contains a NUL byte", path.display()),
        )
    })
}

fn c_text(text: &str) -> io::Result<CString> {
    CString::new(text).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{text:?} contains a NUL byte"),
        )
    })
}

/// Turns a C-style return value into a Result, reading errno on -1.
fn check(result: libc::c_int) -> io::Result<()> {
    if result == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn prctl(option: libc::c_int, arg2: libc::c_ulong, arg3: libc::c_ulong) -> io::Result<()> {
    // SAFETY: every prctl option used here takes plain integer arguments and
    // reads or writes no memory of ours.
    check(unsafe { libc::prctl(option, arg2, arg3, 0 as libc::c_ulong, 0 as libc::c_ulong) })
}

// capset(2)'s argument layout, linux/capability.h, version 3 (64-bit sets
// split in two 32-bit halves).
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapUserHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapUserData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

impl Syscall for LinuxSyscall {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: u64,
        data: Option<&str>,
    ) -> io::Result<()> {
        let source = source.map(c_path).transpose()?;
        let target = c_path(target)?;
        let fstype = fstype.map(c_text).transpose()?;
        let data = data.map(c_text).transpose()?;
        let pointer =
            |text: &Option<CString>| text.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
        // SAFETY: each pointer is null or a NUL-terminated string that lives
        // until the call returns; mount(2) accepts null source, type and data.
        check(unsafe {
            libc::mount(
                pointer(&source),
                target.as_ptr(),
                pointer(&fstype),
                flags as libc::c_ulong,
                pointer(&data).cast(),
            )
        })
    }

    fn umount2(&self, target: &Path, flags: i32) -> io::Result<()> {
        let target = c_path(target)?;
        // SAFETY: target is a NUL-terminated string that outlives the call.
        check(unsafe { libc::umount2(target.as_ptr(), flags) })
    }

    fn pivot_root(&self, new_root: &Path) -> io::Result<()> {
        // pivot_root(".", ".") stacks the old root on top of the new one at
        // "/"; after fchdir to the old root, unmounting "." with MNT_DETACH
        // drops it (pivot_root(2), "pivot_root(".", ".")" in NOTES). The
        // rslave remount first keeps that unmount from reaching the host
        // (runc libcontainer/rootfs_linux.go, pivotRoot).
        let old_root = fs::File::open("/")?;
        let new_root_dir = fs::File::open(new_root)?;
        // SAFETY: fchdir reads only the descriptor, which is open.
        check(unsafe { libc::fchdir(new_root_dir.as_raw_fd()) })?;
        let dot = c".";
        // SAFETY: both arguments are the static string "."; the raw syscall
        // is used because glibc has no pivot_root wrapper.
        let result = unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) };
        if result == -1 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: as above, an open descriptor.
        check(unsafe { libc::fchdir(old_root.as_raw_fd()) })?;
        self.mount(
            None,
            Path::new("."),
            None,
            libc::MS_SLAVE | libc::MS_REC,
            None,
        )?;
        self.umount2(Path::new("."), libc::MNT_DETACH)?;
        self.chdir(Path::new("/"))
    }

    fn chroot(&self, path: &Path) -> io::Result<()> {
        let path = c_path(path)?;
        // SAFETY: path is a NUL-terminated string that outlives the call.
        check(unsafe { libc::chroot(path.as_ptr()) })
    }

    fn chdir(&self, path: &Path) -> io::Result<()> {
        std::env::set_current_dir(path)
    }

    fn setns(&self, namespace: &NamespaceFile) -> io::Result<()> {
        let flag = super::super::namespaces::clone_flag(namespace.kind);
        // SAFETY: setns only reads the descriptor, which `namespace.file`
        // keeps open for the duration of the call.
        check(unsafe { libc::setns(namespace.file.as_raw_fd(), flag) })
    }

    fn unshare(&self, flags: i32) -> io::Result<()> {
        // SAFETY: unshare takes only flags.
        check(unsafe { libc::unshare(flags) })
    }

    fn sethostname(&self, name: &str) -> io::Result<()> {
        // SAFETY: the pointer and length describe `name`'s bytes, which live
        // until the call returns; the kernel only reads them.
        check(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) })
    }

    fn setdomainname(&self, name: &str) -> io::Result<()> {
        // SAFETY: as for sethostname.
        check(unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) })
    }

    fn mknod(&self, path: &Path, mode: u32, device: u64) -> io::Result<()> {
        let path = c_path(path)?;
        // SAFETY: path is a NUL-terminated string that outlives the call.
        check(unsafe { libc::mknod(path.as_ptr(), mode, device) })
    }

    fn chown(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()> {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
    }

    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        std::os::unix::fs::symlink(target, link)
    }

    fn last_capability(&self) -> io::Result<u32> {
        let text = fs::read_to_string("/proc/sys/kernel/cap_last_cap")?;
        text.trim()
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "cap_last_cap is not a number"))
    }

    fn drop_bounding_capability(&self, capability: u32) -> io::Result<()> {
        prctl(libc::PR_CAPBSET_DROP, capability.into(), 0)
    }

    fn capset(&self, sets: CapabilitySets) -> io::Result<()> {
        let mut header = CapUserHeader {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        let halves = |mask: u64| [mask as u32, (mask >> 32) as u32];
        let (effective, permitted, inheritable) = (
            halves(sets.effective),
            halves(sets.permitted),
            halves(sets.inheritable),
        );
        let data: [CapUserData; 2] = std::array::from_fn(|half| CapUserData {
            effective: effective[half],
            permitted: permitted[half],
            inheritable: inheritable[half],
        });
        // SAFETY: the header and the two data structs match the kernel's
        // version-3 layout and live until the call returns; capset only
        // reads the data (and may write the header's version on mismatch).
        let result = unsafe {
            libc::syscall(
                libc::SYS_capset,
                &mut header as *mut CapUserHeader,
                data.as_ptr(),
            )
        };
        if result == -1 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    fn clear_ambient_capabilities(&self) -> io::Result<()> {
        prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
        )
    }

    fn raise_ambient_capability(&self, capability: u32) -> io::Result<()> {
        prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
            capability.into(),
        )
    }

    fn set_keep_capabilities(&self, keep: bool) -> io::Result<()> {
        prctl(libc::PR_SET_KEEPCAPS, keep.into(), 0)
    }

    fn set_no_new_privileges(&self) -> io::Result<()> {
        prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0)
    }

    fn setgroups(&self, groups: &[u32]) -> io::Result<()> {
        // SAFETY: the pointer and count describe `groups`, which lives until
        // the call returns; the kernel only reads it. A null pointer with a
        // zero count (empty slice) is accepted.
        check(unsafe { libc::setgroups(groups.len(), groups.as_ptr()) })
    }

    fn setresgid(&self, gid: u32) -> io::Result<()> {
        // The raw syscall changes only this thread's credentials; glibc's
        // wrapper would signal every thread of the process to do the same,
        // which is not safe to rely on in a freshly forked child.
        // SAFETY: setresgid takes three integers.
        let result = unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) };
        if result == -1 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    fn setresuid(&self, uid: u32) -> io::Result<()> {
        // SAFETY: setresuid takes three integers (raw syscall, see setresgid).
        let result = unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) };
        if result == -1 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    fn setrlimit(&self, resource: u32, soft: u64, hard: u64) -> io::Result<()> {
        let limit = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        // SAFETY: `limit` is a valid rlimit that outlives the call; the
        // kernel only reads it.
        check(unsafe { libc::setrlimit(resource as libc::__rlimit_resource_t, &limit) })
    }

    fn umask(&self, mask: u32) -> u32 {
        // SAFETY: umask takes a mode and cannot fail.
        unsafe { libc::umask(mask) }
    }

    fn mount_flags(&self, path: &Path) -> io::Result<u64> {
        let c_path = c_path(path)?;
        // SAFETY: statvfs is plain old data; all-zero is a valid value.
        let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: the path is NUL-terminated and `stat` is writable; both
        // outlive the call.
        check(unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) })?;
        // statvfs's ST_* bits for these flags equal the MS_* bits
        // (statvfs(3); both come from the kernel's MNT_* per-mount flags).
        let known = libc::ST_RDONLY
            | libc::ST_NOSUID
            | libc::ST_NODEV
            | libc::ST_NOEXEC
            | libc::ST_SYNCHRONOUS
            | libc::ST_MANDLOCK
            | libc::ST_NOATIME
            | libc::ST_NODIRATIME
            | libc::ST_RELATIME;
        Ok(stat.f_flag & known)
    }

    fn install_seccomp(&self, program: &BpfProgram, flags: u32) -> io::Result<()> {
        match seccomp::install_with_flags(program, flags) {
            Ok(()) => Ok(()),
            Err(seccomp::SeccompError::Install { source }) => Err(source),
            Err(other) => Err(io::Error::other(other)),
        }
    }

    fn reopen_dev_null(&self) -> io::Result<()> {
        let dev_null = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")?;
        let null_device = dev_null.metadata()?.rdev();
        for fd in 0..3 {
            // SAFETY: fstat writes into `stat`, valid and writable; an fd
            // that is not open only makes it fail with EBADF.
            let mut stat: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: see above.
            if unsafe { libc::fstat(fd, &mut stat) } != 0 {
                continue;
            }
            if stat.st_mode & libc::S_IFMT == libc::S_IFCHR && stat.st_rdev == null_device {
                // SAFETY: both descriptors are open; dup2 replaces `fd`
                // atomically with the container's /dev/null.
                check(unsafe { libc::dup2(dev_null.as_raw_fd(), fd) })?;
            }
        }
        Ok(())
    }

    fn give_stdio_to(&self, uid: u32) -> io::Result<()> {
        let null_device = fs::metadata("/dev/null")?.rdev();
        for fd in 0..3 {
            // SAFETY: fstat writes into `stat`, valid and writable; a closed
            // fd only makes it fail with EBADF.
            let mut stat: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: see above.
            if unsafe { libc::fstat(fd, &mut stat) } != 0 {
                continue;
            }
            if stat.st_uid == uid || stat.st_rdev == null_device {
                continue;
            }
            // SAFETY: fchown only changes the inode behind an open fd.
            if unsafe { libc::fchown(fd, uid, stat.st_gid) } != 0 {
                let error = io::Error::last_os_error();
                // EINVAL: the group is unmapped in our user namespace;
                // EPERM: the owner is; EROFS: a read-only /dev. runc leaves
                // stdio alone in all three cases.
                match error.raw_os_error() {
                    Some(libc::EINVAL | libc::EPERM | libc::EROFS) => continue,
                    _ => return Err(error),
                }
            }
        }
        Ok(())
    }

    fn write_file(&self, path: &Path, contents: &[u8]) -> io::Result<()> {
        // No truncate and no create: /proc and /sys files exist and take
        // one write.
        let mut file = OpenOptions::new().write(true).open(path)?;
        file.write_all(contents)
    }

    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn create_dir_all(&self, path: &Path, mode: u32) -> io::Result<()> {
        DirBuilder::new().recursive(true).mode(mode).create(path)
    }
}
