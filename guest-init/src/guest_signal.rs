//! The side channel to husk-vmm: single-byte writes to two x86 I/O ports
//! (see `husk_protocol::guest_signal`). husk-vmm timestamps boot markers and
//! ends the VM on an exit-status write; another VMM ignores both ports.

use std::arch::asm;
use std::io;

use husk_protocol::guest_signal::{
    BootPhase, BOOT_MARKER_PORT, EXIT_STATUS_PORT, PORT_BASE, PORT_COUNT,
};

/// Proof that this process may write to the husk ports: only built after
/// `ioperm` granted them, so the port writes below cannot fault.
pub struct GuestSignal {
    _ports_granted: (),
}

impl GuestSignal {
    /// Asks the kernel for access to the husk ports. Fails without
    /// CAP_SYS_RAWIO or on a kernel built without CONFIG_X86_IOPL_IOPERM.
    pub fn open() -> io::Result<Self> {
        // SAFETY: ioperm only changes this thread's I/O permission bitmap; it
        // touches no memory of ours. Threads created later inherit the bitmap.
        let result = unsafe {
            libc::ioperm(
                libc::c_ulong::from(PORT_BASE),
                libc::c_ulong::from(PORT_COUNT),
                1,
            )
        };
        if result != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { _ports_granted: () })
    }

    /// Tells husk-vmm that the guest reached `phase`.
    pub fn mark(&self, phase: BootPhase) {
        self.write_port(BOOT_MARKER_PORT, phase as u8);
    }

    /// Asks husk-vmm to end the VM with `status` as its exit status. Under
    /// husk-vmm this does not return; elsewhere it is a no-op.
    pub fn exit_with_status(&self, status: u8) {
        self.write_port(EXIT_STATUS_PORT, status);
    }

    fn write_port(&self, port: u16, value: u8) {
        // SAFETY: `self` exists only after ioperm granted PORT_BASE..+PORT_COUNT,
        // and callers pass one of those ports, so `out` does not fault. The
        // instruction reads only the two registers named here, writes no
        // memory or stack, and leaves the flags alone.
        unsafe {
            asm!(
                "out dx, al",
                in("dx") port,
                in("al") value,
                options(nomem, nostack, preserves_flags),
            );
        }
    }
}
