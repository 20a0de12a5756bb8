//! SIGTERM and SIGINT arrive on a signalfd that the event loop watches, so
//! they are handled like any other event and never interrupt a vCPU thread.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use vmm_sys_util::signal::create_sigset;

pub struct SignalFd {
    fd: OwnedFd,
}

impl SignalFd {
    /// Blocks `signals` for the calling thread (and so for every thread it
    /// spawns afterwards) and opens a signalfd that reads them.
    pub fn new(signals: &[libc::c_int]) -> io::Result<Self> {
        let set = create_sigset(signals).map_err(|e| io::Error::from_raw_os_error(e.errno()))?;
        // SAFETY: `set` is a valid, initialized sigset; passing a null old
        // set is allowed.
        let ret = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if ret != 0 {
            return Err(io::Error::from_raw_os_error(ret));
        }
        // SAFETY: -1 asks for a new fd; `set` is valid for the call.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by signalfd and is owned by no one
        // else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { fd })
    }

    /// The next pending signal, if any.
    pub fn read(&self) -> io::Result<Option<libc::c_int>> {
        let mut info = std::mem::MaybeUninit::<libc::signalfd_siginfo>::uninit();
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: the buffer is exactly one `signalfd_siginfo`, which is what
        // a signalfd read fills.
        let ret = unsafe { libc::read(self.fd.as_raw_fd(), info.as_mut_ptr().cast(), size) };
        if ret < 0 {
            let error = io::Error::last_os_error();
            return match error.kind() {
                io::ErrorKind::WouldBlock => Ok(None),
                _ => Err(error),
            };
        }
        if ret as usize != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "short read from signalfd",
            ));
        }
        // SAFETY: the kernel filled the whole structure (checked above).
        let info = unsafe { info.assume_init() };
        Ok(Some(info.ssi_signo as libc::c_int))
    }
}

impl AsRawFd for SignalFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
