//! The main thread once the VM runs: the event loop and the devices on it
//! (virtio queue handlers, the vsock host side), the block workers it
//! starts, and the teardown.

use super::block_worker;
use super::common::{every_thread, read_only_open, socket_writes, thread_spawning, unix_sockets};
use super::policy::{arg32, Allowed};
use crate::vstate::vcpu::kick_signal;

pub fn policy() -> Vec<Allowed> {
    let mut policy = every_thread();
    // virtio-blk starts its I/O workers from here, as requests arrive.
    policy.extend(thread_spawning());
    // The workers begin under this filter and keep it beneath their own,
    // and the event loop does the same I/O itself (the last request of a
    // batch, or all of them when no worker can start).
    policy.extend(block_worker::policy());
    policy.extend([
        // The event manager: its epoll is created once the thread is
        // confined; vsock streams are added, changed and removed as they
        // come and go.
        Allowed::any(libc::SYS_epoll_create1),
        Allowed::any(libc::SYS_epoll_ctl),
        Allowed::any(libc::SYS_epoll_wait),
        Allowed::any(libc::SYS_epoll_pwait),
        // Queue notifiers, the vCPU stop eventfd and the signalfd.
        Allowed::any(libc::SYS_read),
        // vsock, host side: host programs connect to the device's socket
        // (accept4), which std makes non-blocking with FIONBIO; their
        // handshake and stream data (std reads a socket with recvfrom,
        // writes with sendto or writev), and half-closes.
        Allowed::any(libc::SYS_accept4),
        Allowed::ioctls(&[libc::FIONBIO]),
        Allowed::any(libc::SYS_recvfrom),
        socket_writes(),
        Allowed::any(libc::SYS_writev),
        Allowed::any(libc::SYS_shutdown),
        // vsock, guest to host: a guest stream is connected to the
        // listener at `<socket>_<port>` (os::connect_unix_nonblocking).
        unix_sockets(),
        Allowed::any(libc::SYS_connect),
        // Teardown: each vCPU thread is kicked out of KVM_RUN with the kick
        // signal (pthread_kill: getpid, tgkill) between short sleeps.
        Allowed::when(libc::SYS_tgkill, [arg32(2).equals(kick_signal() as u64)]),
        Allowed::any(libc::SYS_clock_nanosleep),
        Allowed::any(libc::SYS_nanosleep),
        // The memory report reads /proc/self/smaps: opened read-only, and
        // std's read_to_string sizes its buffer (statx, or fstat where
        // statx is refused; lseek for the position). seccomp cannot look
        // at paths: until the jailer step (DESIGN.md) gives husk-vmm an
        // empty root, this opens any file for reading.
        read_only_open(),
        Allowed::any(libc::SYS_statx),
        Allowed::any(libc::SYS_fstat),
        Allowed::any(libc::SYS_newfstatat),
        Allowed::any(libc::SYS_lseek),
        // On exit the vsock device and the sandbox remove the sockets they
        // created (any path, as above, until the jailer step).
        Allowed::any(libc::SYS_unlink),
        Allowed::any(libc::SYS_unlinkat),
    ]);
    policy
}
