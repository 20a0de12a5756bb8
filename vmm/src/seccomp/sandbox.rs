//! Sandbox mode's threads (sandbox.rs): the agent proxy and the threads it
//! starts, which hold the guest agent's control connection and serve the
//! CLI's clients, and the stdio relays between the caller's descriptors and
//! the guest's streams.

use super::common::{every_thread, socket_writes, thread_spawning, unix_sockets};
use super::policy::{arg32, Allowed};

/// The agent proxy, its client threads, the window size follower, the
/// shutdown timer; and beneath each relay's own policy.
pub fn control_policy() -> Vec<Allowed> {
    let mut policy = every_thread();
    // One thread per client and per stream, started as they come.
    policy.extend(thread_spawning());
    // The relays begin under this filter and keep it beneath their own.
    policy.extend(relay_policy());
    let pty_flags = (libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) as u64;
    policy.extend([
        // The guest agent's control connection and the CLI's clients
        // arrive on listening sockets; each is read by one thread and
        // written by others through a duplicate (try_clone). Frames go
        // through std's socket reads and writes (in relay_policy).
        Allowed::any(libc::SYS_accept4),
        Allowed::when(
            libc::SYS_fcntl,
            [arg32(1).equals(libc::F_DUPFD_CLOEXEC as u64)],
        ),
        // The agent socket is bound under a temporary name, then renamed
        // into place; a stale temporary is removed first.
        unix_sockets(),
        Allowed::any(libc::SYS_bind),
        Allowed::any(libc::SYS_listen),
        Allowed::any(libc::SYS_rename),
        Allowed::any(libc::SYS_renameat),
        Allowed::any(libc::SYS_renameat2),
        Allowed::any(libc::SYS_unlink),
        Allowed::any(libc::SYS_unlinkat),
        // The container's streams: a connection to the vsock socket with
        // its CONNECT handshake (guest_agent::open_stream); the console
        // socket of --container-stdio terminal.
        Allowed::any(libc::SYS_connect),
        // A terminal: the pty pair (posix_openpt opens /dev/ptmx, then
        // /dev/pts/N is opened), both exactly as os::open_pty asks.
        Allowed::when(libc::SYS_openat, [arg32(2).equals(pty_flags)]),
        // grantpt and ptsname_r ask for the pty number (TIOCGPTN),
        // unlockpt unlocks the slave (TIOCSPTLCK), raw mode is
        // tcgetattr/tcsetattr (TCGETS/TCSETS), and the window size is
        // followed with TIOCGWINSZ.
        Allowed::ioctls(&[
            libc::TIOCGPTN,
            libc::TIOCSPTLCK,
            libc::TCGETS,
            libc::TCSETS,
            libc::TIOCGWINSZ,
        ]),
        // The pty master goes to the console socket with SCM_RIGHTS.
        Allowed::any(libc::SYS_sendmsg),
        // The window size is looked at every so often; the shutdown waits
        // a bounded time for the output to drain.
        Allowed::any(libc::SYS_clock_nanosleep),
        Allowed::any(libc::SYS_nanosleep),
    ]);
    policy
}

/// A relay thread copying one stream: the caller's stdin (or the
/// terminal) into the guest, or a guest stream out to the caller's stdout,
/// stderr or terminal.
pub fn relay_policy() -> Vec<Allowed> {
    let mut policy = every_thread();
    policy.extend([
        // Into the guest, io::copy first looks at what the source is
        // (statx, or fstat where statx is refused) and moves the bytes in
        // the kernel where it can: splice from a pipe, sendfile from a
        // regular file or block device, copy_file_range between regular
        // files; otherwise it reads and writes.
        Allowed::any(libc::SYS_statx),
        Allowed::any(libc::SYS_fstat),
        Allowed::any(libc::SYS_newfstatat),
        Allowed::any(libc::SYS_splice),
        Allowed::any(libc::SYS_sendfile),
        Allowed::any(libc::SYS_copy_file_range),
        Allowed::any(libc::SYS_read),
        Allowed::any(libc::SYS_writev),
        // Into the guest, std writes a socket with sendto. Out of the
        // guest, it reads one with recvfrom; the bytes go out with write
        // (every_thread).
        socket_writes(),
        Allowed::any(libc::SYS_recvfrom),
        // At the end of the caller's input the guest stream is half-closed
        // so the process reads end of file.
        Allowed::when(libc::SYS_shutdown, [arg32(1).equals(libc::SHUT_WR as u64)]),
    ]);
    policy
}
