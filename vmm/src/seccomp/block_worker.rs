//! virtio-blk I/O workers: they carry out one request at a time between
//! the disk and guest memory and signal the event loop.

use super::common::every_thread;
use super::policy::Allowed;

pub fn policy() -> Vec<Allowed> {
    let mut policy = every_thread();
    policy.extend([
        // Reads and writes go straight between the disk and the request's
        // guest buffers, at the request's offset (transfer_file_guest).
        Allowed::any(libc::SYS_preadv),
        Allowed::any(libc::SYS_pwritev),
        // A flush request (File::sync_data).
        Allowed::any(libc::SYS_fdatasync),
        // The completion eventfd is written with `write` (every_thread);
        // waiting for the next job is a futex wait (every_thread).
    ]);
    policy
}
