//! The system calls the benchmark makes itself, and all of its `unsafe`:
//! becoming the subreaper of the containers it starts, waiting for a
//! process to end through a pidfd with a time limit, signals, and noticing
//! Ctrl-C so that everything it started is cleaned up.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Set by SIGINT, SIGTERM or SIGHUP; the benchmark stops at the next
/// wait and cleans up.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Makes this process the reaper of its orphaned descendants
/// (prctl(2) PR_SET_CHILD_SUBREAPER): a container whose runtime exits after
/// `create` (runc, crun, husk, and husk-vmm for the VM backend) becomes our
/// child, so we see its exit exactly and get its status, as conmon does.
pub fn become_subreaper() -> io::Result<()> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer flag and touches no
    // memory of ours.
    let result = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

extern "C" fn note_interrupt(_signal: libc::c_int) {
    // An atomic store is async-signal-safe.
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Turns SIGINT, SIGTERM and SIGHUP into a flag the waits below check,
/// instead of ending the benchmark with its containers still running. A
/// handler (not a blocked mask) so that the programs we start, which
/// inherit the mask across exec but not the handler, behave as usual.
pub fn stop_on_interrupt() -> io::Result<()> {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask"
        // value, filled in below.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = note_interrupt as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // No SA_RESTART: a wait in poll(2) returns EINTR and sees the flag.
        action.sa_flags = 0;
        // SAFETY: `action` is initialised and the handler only stores to an
        // atomic; the old action is not asked for.
        let result = unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) };
        if result != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether the user asked the benchmark to stop.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Forgets an interrupt, so that cleaning up can wait for the commands it
/// runs; another Ctrl-C interrupts the cleanup too.
pub fn clear_interrupt() {
    INTERRUPTED.store(false, Ordering::SeqCst);
}

/// The error a wait returns when the benchmark was interrupted.
pub fn interrupted_error() -> io::Error {
    io::Error::new(io::ErrorKind::Interrupted, "interrupted by a signal")
}

/// Reaps every child that has ended: orphans of the runtimes' helper
/// processes reparented to us as the subreaper. Only call it while no
/// child we wait for by pid exists, or that wait loses the status.
pub fn reap_ended_children() {
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status into our local integer.
        let reaped = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if reaped <= 0 {
            return;
        }
    }
}

/// Whether `path` is on a tmpfs (statfs(2) f_type TMPFS_MAGIC), as a
/// runtime's state directory under /run normally is.
pub fn is_tmpfs(path: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a zeroed statfs is a valid buffer for the kernel to fill.
    let mut buffer: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string and `buffer` a statfs
    // that both outlive the call.
    let result = unsafe { libc::statfs(path.as_ptr(), &mut buffer) };
    result == 0 && buffer.f_type == libc::TMPFS_MAGIC
}

/// How a process ended, as wait(2) tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl std::fmt::Display for Exit {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(code) => write!(formatter, "exit status {code}"),
            Exit::Signal(signal) => write!(formatter, "killed by signal {signal}"),
        }
    }
}

/// A process watched through its pidfd (pidfd_open(2), Linux 5.3): poll(2)
/// says when it has ended, whether or not it is our child, and a pid that
/// has ended cannot be reused while we hold the fd of an unreaped child.
#[derive(Debug)]
pub struct ProcessWatch {
    pid: i32,
    pidfd: OwnedFd,
}

impl ProcessWatch {
    pub fn open(pid: i32) -> io::Result<Self> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or
        // -1; no memory is passed.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this descriptor to us; nothing
        // else owns it.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        Ok(Self { pid, pidfd })
    }

    /// Waits until the process has ended, at most `timeout`; true when it
    /// has. An interrupt ends the wait with an `Interrupted` error.
    pub fn wait(&self, timeout: Duration) -> io::Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            if interrupted() {
                return Err(interrupted_error());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let mut poll_fd = libc::pollfd {
                fd: self.pidfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let millis = left.as_millis().min(i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd that lives across the call.
            let ready = unsafe { libc::poll(&mut poll_fd, 1, millis) };
            match ready {
                1.. => return Ok(true),
                0 => return Ok(false),
                _ => {
                    let error = io::Error::last_os_error();
                    if error.kind() != io::ErrorKind::Interrupted {
                        return Err(error);
                    }
                }
            }
        }
    }

    /// Reaps the process if it is our child and has ended; None when it is
    /// still running or not our child (then its parent reaps it).
    pub fn reap(&self) -> Option<Exit> {
        let mut status = 0;
        // SAFETY: waitpid writes the status into our local integer.
        let reaped = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
        if reaped != self.pid {
            return None;
        }
        if libc::WIFEXITED(status) {
            Some(Exit::Code(libc::WEXITSTATUS(status)))
        } else {
            Some(Exit::Signal(libc::WTERMSIG(status)))
        }
    }

    /// Sends `signal` to the process; a process that has ended already is
    /// not an error (pidfd_send_signal(2) addresses exactly this process,
    /// never a reused pid).
    pub fn signal(&self, signal: libc::c_int) -> io::Result<()> {
        // SAFETY: pidfd_send_signal with a null siginfo and no flags; the
        // fd is ours and open.
        let result = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if result != 0 {
            let error = io::Error::last_os_error();
            if error.raw_os_error() != Some(libc::ESRCH) {
                return Err(error);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    #[test]
    fn tmpfs_is_told_apart() {
        assert!(!is_tmpfs(std::path::Path::new("/proc")));
        assert!(!is_tmpfs(std::path::Path::new("/no/such/path")));
    }

    // The children are reaped through the watch, which clippy cannot see.
    #[allow(clippy::zombie_processes)]
    #[test]
    fn a_watched_child_is_seen_ending_and_reaped_with_its_status() {
        let child = Command::new("sh").args(["-c", "exit 7"]).spawn().unwrap();
        let watch = ProcessWatch::open(child.id() as i32).unwrap();
        assert!(watch.wait(Duration::from_secs(10)).unwrap());
        assert_eq!(watch.reap(), Some(Exit::Code(7)));
    }

    #[allow(clippy::zombie_processes)]
    #[test]
    fn a_wait_ends_at_its_time_limit_and_a_signal_ends_the_process() {
        let child = Command::new("sleep").arg("30").spawn().unwrap();
        let watch = ProcessWatch::open(child.id() as i32).unwrap();
        assert!(!watch.wait(Duration::from_millis(50)).unwrap());
        assert_eq!(watch.reap(), None);
        watch.signal(libc::SIGKILL).unwrap();
        assert!(watch.wait(Duration::from_secs(10)).unwrap());
        assert_eq!(watch.reap(), Some(Exit::Signal(libc::SIGKILL)));
        // Signalling it again, once gone, is fine.
        watch.signal(libc::SIGKILL).unwrap();
    }
}
