//! The few operating system calls husk-vmm's devices need that std does not
//! offer, kept here so the devices themselves hold no `unsafe`.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::{io, mem};

/// getrandom(2) into `buffer`, retrying on interruption; the kernel's pool
/// is initialized long before a VMM runs, so it does not block. Returns
/// false on any other failure: the request then gets fewer bytes, never
/// predictable ones.
pub fn fill_from_getrandom(buffer: &mut [u8]) -> bool {
    let mut filled = 0;
    while filled < buffer.len() {
        let rest = &mut buffer[filled..];
        // SAFETY: `rest` is a valid, writable buffer of `rest.len()` bytes.
        let ret = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if ret > 0 {
            filled += ret as usize;
        } else if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return false;
        }
    }
    true
}

/// connect(2) on a non-blocking Unix stream socket, which std does not
/// offer. For AF_UNIX it completes or fails at once: it never returns
/// EINPROGRESS.
pub fn connect_unix_nonblocking(path: &Path) -> io::Result<UnixStream> {
    let mut address = libc::sockaddr_un {
        sun_family: libc::AF_UNIX as libc::sa_family_t,
        sun_path: [0; 108],
    };
    let bytes = path.as_os_str().as_bytes();
    // One byte stays for the terminating NUL.
    if bytes.len() >= address.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket path too long or not a C string",
        ));
    }
    for (slot, &byte) in address.sun_path.iter_mut().zip(bytes) {
        *slot = byte as libc::c_char;
    }
    let length = mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;

    // SAFETY: socket(2) takes no pointers; the result is checked below.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and nothing else owns it.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: `address` is a valid sockaddr_un that outlives the call, and
    // `length` covers its family and the NUL-terminated path within it.
    let result = unsafe {
        libc::connect(
            socket.as_raw_fd(),
            (&address as *const libc::sockaddr_un).cast::<libc::sockaddr>(),
            length as libc::socklen_t,
        )
    };
    if result < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(UnixStream::from(socket))
}

/// A new pseudo-terminal: its master and its slave, both close-on-exec,
/// the slave in raw mode (the guest's own pty does the line discipline; this
/// one only carries bytes and the window size).
pub fn open_pty() -> io::Result<(OwnedFd, OwnedFd)> {
    // SAFETY: posix_openpt takes no pointers; the result is checked.
    let master = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    if master < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `master` was just returned by posix_openpt and nothing else
    // owns it.
    let master = unsafe { OwnedFd::from_raw_fd(master) };
    // SAFETY: grantpt takes the descriptor only.
    if unsafe { libc::grantpt(master.as_raw_fd()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: unlockpt takes the descriptor only.
    if unsafe { libc::unlockpt(master.as_raw_fd()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: `name` is writable for its whole length, which is passed.
    let ret = unsafe { libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()) };
    if ret != 0 {
        return Err(io::Error::from_raw_os_error(ret));
    }
    // SAFETY: ptsname_r NUL-terminated `name` on success; open reads it.
    let slave = unsafe {
        libc::open(
            name.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if slave < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `slave` was just returned by open and nothing else owns it.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    make_raw(&slave)?;
    Ok((master, slave))
}

/// cfmakeraw(3) on a terminal.
fn make_raw(terminal: &impl AsRawFd) -> io::Result<()> {
    // SAFETY: termios is plain data; tcgetattr fills it below.
    let mut attributes: libc::termios = unsafe { mem::zeroed() };
    // SAFETY: `attributes` is a valid, writable termios.
    if unsafe { libc::tcgetattr(terminal.as_raw_fd(), &mut attributes) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above; cfmakeraw only edits the struct.
    unsafe { libc::cfmakeraw(&mut attributes) };
    // SAFETY: `attributes` is a valid termios that outlives the call.
    if unsafe { libc::tcsetattr(terminal.as_raw_fd(), libc::TCSANOW, &attributes) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A terminal's window size as (rows, columns).
pub fn window_size(terminal: &impl AsRawFd) -> io::Result<(u16, u16)> {
    // SAFETY: winsize is plain data; TIOCGWINSZ fills it.
    let mut size: libc::winsize = unsafe { mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize, which outlives the call.
    if unsafe { libc::ioctl(terminal.as_raw_fd(), libc::TIOCGWINSZ, &mut size) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((size.ws_row, size.ws_col))
}

/// Sends `fd` over a connected Unix socket with SCM_RIGHTS, one byte of
/// payload beside it (what runc's --console-socket protocol carries).
pub fn send_fd(socket: &impl AsRawFd, fd: &impl AsRawFd) -> io::Result<()> {
    let payload = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: payload.as_ptr() as *mut libc::c_void,
        iov_len: payload.len(),
    };
    // Room for one control message holding one descriptor, aligned as a
    // cmsghdr must be.
    let mut control = [0u64; 8];
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(mem::size_of::<libc::c_int>() as u32) } as usize;
    assert!(space <= mem::size_of_val(&control));
    // SAFETY: msghdr is plain data; every field used is set below.
    let mut message: libc::msghdr = unsafe { mem::zeroed() };
    message.msg_iov = &mut iov;
    message.msg_iovlen = 1;
    message.msg_control = control.as_mut_ptr().cast();
    message.msg_controllen = space;
    // SAFETY: the control buffer holds `space` bytes, enough for the one
    // header CMSG_FIRSTHDR returns and its descriptor.
    unsafe {
        let header = libc::CMSG_FIRSTHDR(&message);
        (*header).cmsg_level = libc::SOL_SOCKET;
        (*header).cmsg_type = libc::SCM_RIGHTS;
        (*header).cmsg_len = libc::CMSG_LEN(mem::size_of::<libc::c_int>() as u32) as usize;
        std::ptr::write_unaligned(
            libc::CMSG_DATA(header).cast::<libc::c_int>(),
            fd.as_raw_fd(),
        );
    }
    // SAFETY: `message` points at `iov`, `payload` and `control`, all alive
    // for the call; the kernel only reads them.
    if unsafe { libc::sendmsg(socket.as_raw_fd(), &message, libc::MSG_NOSIGNAL) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes `target` (0, 1 or 2) refer to what `fd` refers to.
pub fn redirect(fd: &impl AsRawFd, target: RawFd) -> io::Result<()> {
    // SAFETY: dup2 takes descriptors only; `fd` is open, and replacing
    // `target` is what the caller asks for.
    if unsafe { libc::dup2(fd.as_raw_fd(), target) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
