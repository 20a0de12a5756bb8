//! Safe wrappers for the few system calls std does not offer. All of
//! husk-init's `unsafe` lives here and in `guest_signal`.

use std::ffi::CString;
use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// mount(2) with a filesystem type, no source device and optional data.
pub fn mount(
    source: &str,
    target: &str,
    fstype: &str,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let source = c_string(source)?;
    let target = c_string(target)?;
    let fstype = c_string(fstype)?;
    let data = data.map(c_string).transpose()?;
    let data_ptr = data.as_ref().map_or(std::ptr::null(), |data| data.as_ptr());
    // SAFETY: every pointer is a NUL-terminated string that outlives the call
    // (or null for data, which mount(2) accepts); the kernel only reads them.
    let result = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            data_ptr.cast(),
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Flushes every filesystem's dirty data to its device.
pub fn sync() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() }
}

/// Restarts the machine at once (the guest kernel's `reboot=k` resets it
/// through the keyboard controller, which ends the VM). Returns only on
/// failure, with the reason.
pub fn reboot() -> io::Error {
    // SAFETY: reboot(2) reads no memory of ours; RB_AUTOBOOT needs no argument.
    unsafe { libc::reboot(libc::RB_AUTOBOOT) };
    io::Error::last_os_error()
}

/// Time since the kernel's clock started, suspend included. The same clock as
/// /proc/uptime, read with nanosecond rather than 10 ms resolution.
pub fn boot_time() -> io::Result<Duration> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec that outlives the call.
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut now) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let seconds = u64::try_from(now.tv_sec).unwrap_or_default();
    let nanos = u32::try_from(now.tv_nsec).unwrap_or_default();
    Ok(Duration::new(seconds, nanos))
}

/// Waits until everything written to the terminal `fd` has left the
/// hardware (a serial line sends slowly, and the VM may end right after).
/// Does nothing when `fd` is not a terminal.
pub fn drain_terminal(fd: &impl AsRawFd) {
    // SAFETY: tcdrain(3) only waits on the descriptor; an invalid or
    // non-terminal one makes it fail with EBADF or ENOTTY, which we ignore.
    unsafe { libc::tcdrain(fd.as_raw_fd()) };
}

fn c_string(text: &str) -> io::Result<CString> {
    CString::new(text).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// umount(2).
pub fn unmount(target: &str) -> io::Result<()> {
    let target = c_string(target)?;
    // SAFETY: `target` is a NUL-terminated string that outlives the call.
    if unsafe { libc::umount2(target.as_ptr(), 0) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn vsock_address(cid: u32, port: u32) -> libc::sockaddr_vm {
    // SAFETY: sockaddr_vm is plain data; all zeros is a valid value.
    let mut address: libc::sockaddr_vm = unsafe { std::mem::zeroed() };
    address.svm_family = libc::AF_VSOCK as libc::sa_family_t;
    address.svm_cid = cid;
    address.svm_port = port;
    address
}

fn vsock_socket() -> io::Result<std::os::fd::OwnedFd> {
    // SAFETY: plain socket(2); the returned fd is checked before use.
    let fd = unsafe { libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    Ok(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// A vsock stream connected to `cid:port`, as a File for reading and
/// writing.
pub fn vsock_connect(cid: u32, port: u32) -> io::Result<std::fs::File> {
    let socket = vsock_socket()?;
    let address = vsock_address(cid, port);
    // SAFETY: `address` is a valid sockaddr_vm of the size passed.
    let ret = unsafe {
        libc::connect(
            socket.as_raw_fd(),
            (&address as *const libc::sockaddr_vm).cast(),
            std::mem::size_of::<libc::sockaddr_vm>() as libc::socklen_t,
        )
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(std::fs::File::from(socket))
}

/// A vsock stream socket listening on `port` for any CID.
pub fn vsock_listen(port: u32) -> io::Result<std::os::fd::OwnedFd> {
    let socket = vsock_socket()?;
    let address = vsock_address(libc::VMADDR_CID_ANY, port);
    // SAFETY: `address` is a valid sockaddr_vm of the size passed.
    let ret = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            (&address as *const libc::sockaddr_vm).cast(),
            std::mem::size_of::<libc::sockaddr_vm>() as libc::socklen_t,
        )
    };
    // SAFETY: listen(2) on a socket we own.
    if ret != 0 || unsafe { libc::listen(socket.as_raw_fd(), 128) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(socket)
}

/// The next connection on a listening socket.
pub fn accept(listener: &impl AsRawFd) -> io::Result<std::fs::File> {
    // SAFETY: accept4(2) without an address buffer; the fd is checked.
    let fd = unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    Ok(std::fs::File::from(unsafe {
        <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd)
    }))
}

/// Shuts down the sending side of a socket: the peer reads end-of-file.
pub fn shutdown_write(socket: &impl AsRawFd) -> io::Result<()> {
    // SAFETY: shutdown(2) on a descriptor the caller owns.
    if unsafe { libc::shutdown(socket.as_raw_fd(), libc::SHUT_WR) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets a receive timeout on a socket, so a peer that stops talking can't
/// block its reader for ever.
pub fn set_receive_timeout(socket: &impl AsRawFd, timeout: Option<Duration>) -> io::Result<()> {
    let timeout = timeout.unwrap_or_default();
    let value = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: libc::suseconds_t::from(timeout.subsec_micros() as i32),
    };
    // SAFETY: SO_RCVTIMEO reads one timeval of the size passed.
    let ret = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&value as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
