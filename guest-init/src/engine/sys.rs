//! Process primitives the engine needs and std does not offer: fork, exec,
//! wait, signals, socket pairs with descriptor passing, FIFOs, ptys. The
//! container setup system calls themselves are in `syscall::linux`.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

fn check(result: libc::c_int) -> io::Result<libc::c_int> {
    if result == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

pub enum Fork {
    Parent { child: i32 },
    Child,
}

/// fork(2). The child must finish with [`exit_now`] (or exec): it shares
/// the parent's stack frames and buffered output, which must not run twice.
/// Only the calling thread exists in the child, so the caller should be
/// single-threaded, or at least hold no locks the child needs.
pub fn fork() -> io::Result<Fork> {
    // SAFETY: fork has no memory-safety preconditions of its own; the
    // documented restrictions on what the child does are the caller's.
    let pid = check(unsafe { libc::fork() })?;
    Ok(if pid == 0 {
        Fork::Child
    } else {
        Fork::Parent { child: pid }
    })
}

/// Ends the process at once with `code`: no atexit handlers, no stdio
/// flushing, no destructors (_exit(2)), as a forked child must.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no memory of ours.
    unsafe { libc::_exit(code) }
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Exited(i32),
    Signaled(i32),
}

impl ExitStatus {
    /// The shell convention: the exit code, or 128 + the signal number.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(code) => code,
            ExitStatus::Signaled(signal) => 128 + signal,
        }
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Exited(code) => write!(formatter, "exit status {code}"),
            ExitStatus::Signaled(signal) => write!(formatter, "killed by signal {signal}"),
        }
    }
}

/// waitpid(2). `pid` -1 waits for any child. With `no_hang`, Ok(None) means
/// no child has changed state yet. Stopped children are not reported.
pub fn wait(pid: i32, no_hang: bool) -> io::Result<Option<(i32, ExitStatus)>> {
    let flags = if no_hang { libc::WNOHANG } else { 0 };
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid, writable int for the call.
        let result = unsafe { libc::waitpid(pid, &mut status, flags) };
        if result == -1 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        if result == 0 {
            return Ok(None);
        }
        let exit = if libc::WIFEXITED(status) {
            ExitStatus::Exited(libc::WEXITSTATUS(status))
        } else if libc::WIFSIGNALED(status) {
            ExitStatus::Signaled(libc::WTERMSIG(status))
        } else {
            continue;
        };
        return Ok(Some((result, exit)));
    }
}

/// kill(2).
pub fn kill(pid: i32, signal: i32) -> io::Result<()> {
    // SAFETY: kill takes two integers.
    check(unsafe { libc::kill(pid, signal) }).map(drop)
}

/// Whether `pid` exists and has not exited (a zombie counts as exited).
pub fn is_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // proc_pid_stat(5): the state follows the ")" closing the name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// prctl(PR_SET_CHILD_SUBREAPER): orphaned descendants are reparented to
/// this process instead of the system's init, so it can reap them.
pub fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: integer arguments only.
    check(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) })
        .map(drop)
}

/// prctl(PR_SET_PDEATHSIG): `signal` arrives when the parent exits.
pub fn set_parent_death_signal(signal: i32) -> io::Result<()> {
    // SAFETY: integer arguments only.
    check(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0, 0, 0) })
        .map(drop)
}

/// prctl(PR_SET_DUMPABLE). A process that is not dumpable cannot be
/// ptraced, and its /proc files belong to root, by anyone without
/// CAP_SYS_PTRACE in the user namespace it started in; execve makes an
/// ordinary program dumpable again.
pub fn set_dumpable(dumpable: bool) -> io::Result<()> {
    // SAFETY: integer arguments only.
    check(unsafe {
        libc::prctl(
            libc::PR_SET_DUMPABLE,
            libc::c_ulong::from(dumpable),
            0,
            0,
            0,
        )
    })
    .map(drop)
}

/// getppid(2).
pub fn parent_pid() -> i32 {
    // SAFETY: getppid cannot fail.
    unsafe { libc::getppid() }
}

/// setsid(2): a new session, so the container init can take a controlling
/// terminal and is the session leader, as under runc.
pub fn setsid() -> io::Result<()> {
    // SAFETY: no arguments.
    check(unsafe { libc::setsid() }).map(drop)
}

/// Unblocks every signal and sets every handler back to the default,
/// SIGPIPE included (Rust's runtime ignores it, and an ignored signal stays
/// ignored across execve(2)).
pub fn reset_signals() -> io::Result<()> {
    for signal in 1..libc::SIGRTMAX() {
        if signal == libc::SIGKILL || signal == libc::SIGSTOP {
            continue;
        }
        // SAFETY: SIG_DFL is always a valid disposition; signals the C
        // library reserves for itself make this fail with EINVAL, ignored.
        unsafe { libc::signal(signal, libc::SIG_DFL) };
    }
    let empty = signal_set(&[])?;
    // SAFETY: `empty` is an initialized sigset_t; the old set is not asked for.
    let result = unsafe { libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) };
    check(result).map(drop)
}

fn signal_set(signals: &[i32]) -> io::Result<libc::sigset_t> {
    // SAFETY: sigset_t is plain data; sigemptyset initializes it below.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is valid and writable.
    check(unsafe { libc::sigemptyset(&mut set) })?;
    for &signal in signals {
        // SAFETY: as above; an invalid signal number fails with EINVAL.
        check(unsafe { libc::sigaddset(&mut set, signal) })?;
    }
    Ok(set)
}

/// Blocks `signals` in this thread, so that [`wait_for_signal`] receives
/// them instead of their default actions.
pub fn block_signals(signals: &[i32]) -> io::Result<()> {
    let set = signal_set(signals)?;
    // SAFETY: `set` is initialized; the old mask is not asked for.
    check(unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) }).map(drop)
}

/// Waits for one of `signals` (blocked beforehand), at most `timeout`.
/// Ok(None) on timeout.
pub fn wait_for_signal(signals: &[i32], timeout: std::time::Duration) -> io::Result<Option<i32>> {
    let set = signal_set(signals)?;
    let timeout = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `set` and `timeout` are initialized and outlive the call; the
    // siginfo is not asked for.
    let signal = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &timeout) };
    if signal == -1 {
        let error = io::Error::last_os_error();
        return match error.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(None),
            _ => Err(error),
        };
    }
    Ok(Some(signal))
}

/// A connected SOCK_SEQPACKET pair, close-on-exec.
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors socketpair writes.
    check(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // SAFETY: socketpair succeeded, so both descriptors are open and ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sends one datagram.
pub fn send(socket: BorrowedFd, bytes: &[u8]) -> io::Result<()> {
    loop {
        // SAFETY: the pointer and length describe `bytes`; MSG_NOSIGNAL turns
        // a closed peer into EPIPE instead of SIGPIPE.
        let sent = unsafe {
            libc::send(
                socket.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if sent >= 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Receives one datagram into `buffer`; 0 means end of file.
pub fn receive(socket: BorrowedFd, buffer: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: the pointer and length describe `buffer`, writable.
        let received = unsafe {
            libc::recv(
                socket.as_raw_fd(),
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                0,
            )
        };
        if received >= 0 {
            return Ok(received as usize);
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Sends `payload` with one descriptor attached (SCM_RIGHTS, unix(7)):
/// how a pty master goes to the --console-socket, as runc's utils.SendFd.
pub fn send_fd(socket: BorrowedFd, payload: &[u8], fd: BorrowedFd) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    // SAFETY: CMSG_SPACE computes a size from a constant.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    let mut control = vec![0u8; space];
    let mut iov = libc::iovec {
        iov_base: payload.as_ptr() as *mut libc::c_void,
        iov_len: payload.len(),
    };
    // SAFETY: msghdr is plain data; the fields that matter are set below.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = &mut iov;
    message.msg_iovlen = 1;
    message.msg_control = control.as_mut_ptr().cast();
    message.msg_controllen = space;
    // SAFETY: msg_control points at `space` bytes, enough for one header
    // with one descriptor, so CMSG_FIRSTHDR is non-null and CMSG_DATA has
    // room for the descriptor; iov points at `payload`, only read.
    unsafe {
        let header = libc::CMSG_FIRSTHDR(&message);
        (*header).cmsg_level = libc::SOL_SOCKET;
        (*header).cmsg_type = libc::SCM_RIGHTS;
        (*header).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(header).cast::<RawFd>(), raw);
    }
    // SAFETY: `message` and everything it points to live until the call
    // returns.
    let sent = unsafe { libc::sendmsg(socket.as_raw_fd(), &message, libc::MSG_NOSIGNAL) };
    if sent == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Receives what [`send_fd`] sent: the payload and the descriptor. How the
/// receiver of a console socket gets the pty master (callers that create
/// a container in-process can pass one end of a socket pair as the console
/// socket and read the master from the other end).
pub fn receive_fd(socket: BorrowedFd) -> io::Result<(Vec<u8>, OwnedFd)> {
    let mut payload = vec![0u8; 4096];
    let mut iov = libc::iovec {
        iov_base: payload.as_mut_ptr().cast(),
        iov_len: payload.len(),
    };
    // SAFETY: CMSG_SPACE computes a size from a constant.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    let mut control = vec![0u8; space];
    // SAFETY: msghdr is plain data; the fields that matter are set below.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = &mut iov;
    message.msg_iovlen = 1;
    message.msg_control = control.as_mut_ptr().cast();
    message.msg_controllen = space;
    // SAFETY: `message` points at `payload` and `control`, writable and alive
    // for the call; MSG_CMSG_CLOEXEC makes the received descriptor CLOEXEC.
    let received =
        unsafe { libc::recvmsg(socket.as_raw_fd(), &mut message, libc::MSG_CMSG_CLOEXEC) };
    if received < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel filled `message`; CMSG_FIRSTHDR reads only its
    // control fields and returns null when there is no header.
    let header = unsafe { libc::CMSG_FIRSTHDR(&message) };
    // SAFETY: a non-null header lies inside `control`.
    if header.is_null() || unsafe { (*header).cmsg_type } != libc::SCM_RIGHTS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the message carried no descriptor",
        ));
    }
    // SAFETY: an SCM_RIGHTS header from the kernel holds at least one
    // descriptor after CMSG_DATA; the descriptor is new and ours.
    let fd = unsafe {
        let raw = std::ptr::read_unaligned(libc::CMSG_DATA(header).cast::<RawFd>());
        OwnedFd::from_raw_fd(raw)
    };
    payload.truncate(received as usize);
    Ok((payload, fd))
}

/// mkfifo(3).
pub fn mkfifo(path: &Path, mode: u32) -> io::Result<()> {
    let path = c_path(path)?;
    // SAFETY: path is NUL-terminated and outlives the call.
    check(unsafe { libc::mkfifo(path.as_ptr(), mode) }).map(drop)
}

/// open(2) with raw flags (O_CLOEXEC added).
pub fn open(path: &Path, flags: i32) -> io::Result<OwnedFd> {
    let path = c_path(path)?;
    loop {
        // SAFETY: path is NUL-terminated and outlives the call; no mode is
        // needed because O_CREAT is never passed.
        let fd = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) };
        if fd >= 0 {
            // SAFETY: open succeeded; the descriptor is ours.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// poll(2) for readability of one descriptor, at most `timeout_ms`.
/// Returns the revents bits (0 on timeout).
pub fn poll_readable(fd: BorrowedFd, timeout_ms: i32) -> io::Result<i16> {
    let mut poll = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, writable, for the duration of the call.
    match unsafe { libc::poll(&mut poll, 1, timeout_ms) } {
        -1 => {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                Ok(0)
            } else {
                Err(error)
            }
        }
        _ => Ok(poll.revents),
    }
}

/// A new pty from /dev/ptmx, unlocked: the master and the slave's path
/// (pts(4)).
pub fn open_pty() -> io::Result<(OwnedFd, PathBuf)> {
    let master = open(Path::new("/dev/ptmx"), libc::O_RDWR | libc::O_NOCTTY)?;
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads an int from the pointer, which is valid.
    check(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) })?;
    let mut number: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes an unsigned int to the pointer, which is valid.
    check(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut number) })?;
    Ok((master, PathBuf::from(format!("/dev/pts/{number}"))))
}

/// TIOCSWINSZ: the terminal's size.
pub fn set_window_size(terminal: BorrowedFd, rows: u16, columns: u16) -> io::Result<()> {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: columns,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize from the pointer, which is valid.
    check(unsafe { libc::ioctl(terminal.as_raw_fd(), libc::TIOCSWINSZ, &size) }).map(drop)
}

/// TIOCSCTTY: makes `terminal` the controlling terminal of this session.
pub fn set_controlling_terminal(terminal: BorrowedFd) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal).
    check(unsafe { libc::ioctl(terminal.as_raw_fd(), libc::TIOCSCTTY, 0) }).map(drop)
}

/// dup2(2): `fd` becomes also `target`.
pub fn dup_onto(fd: BorrowedFd, target: RawFd) -> io::Result<()> {
    // SAFETY: dup2 only manipulates the descriptor table; `fd` is open.
    check(unsafe { libc::dup2(fd.as_raw_fd(), target) }).map(drop)
}

/// Makes `fds` the process's stdin, stdout and stderr (a None entry:
/// /dev/null). Each is first copied above 2, so a source that is itself 0, 1
/// or 2 is not overwritten before it is used.
pub fn install_stdio(fds: [Option<BorrowedFd>; 3]) -> io::Result<()> {
    let dev_null = open(Path::new("/dev/null"), libc::O_RDWR)?;
    let mut copies = Vec::with_capacity(3);
    for fd in fds {
        let source = fd.unwrap_or(dev_null.as_fd());
        // SAFETY: F_DUPFD_CLOEXEC only duplicates an open descriptor.
        let copy = check(unsafe { libc::fcntl(source.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) })?;
        // SAFETY: fcntl just returned this new descriptor; it is ours.
        copies.push(unsafe { OwnedFd::from_raw_fd(copy) });
    }
    for (target, copy) in copies.iter().enumerate() {
        dup_onto(copy.as_fd(), target as RawFd)?;
    }
    Ok(())
}

/// Marks every descriptor from `first` up close-on-exec, so that nothing
/// the runtime had open leaks into the container (runc's CloseExecFrom).
pub fn close_on_exec_from(first: u32) -> io::Result<()> {
    // SAFETY: close_range only changes descriptor flags.
    check(unsafe { libc::close_range(first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as libc::c_int) })
        .map(drop)
}

/// execve(2). Returns only on failure.
pub fn execve(path: &Path, args: &[String], env: &[String]) -> io::Error {
    let to_c = |text: &str| {
        CString::new(text).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "NUL byte in an argument or variable",
            )
        })
    };
    let path = match c_path(path) {
        Ok(path) => path,
        Err(error) => return error,
    };
    let args: Result<Vec<CString>, _> = args.iter().map(|arg| to_c(arg)).collect();
    let env: Result<Vec<CString>, _> = env.iter().map(|var| to_c(var)).collect();
    let (args, env) = match (args, env) {
        (Ok(args), Ok(env)) => (args, env),
        (Err(error), _) | (_, Err(error)) => return error,
    };
    let mut arg_pointers: Vec<*const libc::c_char> = args.iter().map(|arg| arg.as_ptr()).collect();
    arg_pointers.push(std::ptr::null());
    let mut env_pointers: Vec<*const libc::c_char> = env.iter().map(|var| var.as_ptr()).collect();
    env_pointers.push(std::ptr::null());
    // SAFETY: every pointer is a NUL-terminated string kept alive by
    // `args`/`env`, and both arrays end with a null pointer.
    unsafe { libc::execve(path.as_ptr(), arg_pointers.as_ptr(), env_pointers.as_ptr()) };
    io::Error::last_os_error()
}

/// close(2) on a descriptor number inherited across fork, which nothing in
/// this process owns as a Rust value (the exec fifo's O_PATH descriptor in
/// the container init).
pub fn close_inherited(fd: RawFd) -> io::Result<()> {
    // SAFETY: closing a descriptor touches no memory; no owner in this
    // process will use or close the number again.
    check(unsafe { libc::close(fd) }).map(drop)
}

/// getpid(2).
pub fn own_pid() -> i32 {
    // SAFETY: getpid cannot fail.
    unsafe { libc::getpid() }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::net::UnixStream;

    use super::*;

    #[test]
    fn a_descriptor_crosses_a_socket_with_its_payload() {
        let (sender, receiver) = UnixStream::pair().unwrap();
        let file = std::fs::File::open("/dev/null").unwrap();
        send_fd(sender.as_fd(), b"/dev/pts/3", file.as_fd()).unwrap();
        let (payload, received) = receive_fd(receiver.as_fd()).unwrap();
        assert_eq!(payload, b"/dev/pts/3");
        let received = std::fs::File::from(received);
        assert_eq!(
            received.metadata().unwrap().rdev(),
            file.metadata().unwrap().rdev()
        );
    }

    #[test]
    fn exit_status_codes_follow_the_shell() {
        assert_eq!(ExitStatus::Exited(3).code(), 3);
        assert_eq!(ExitStatus::Signaled(libc::SIGKILL).code(), 137);
    }
}
