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
