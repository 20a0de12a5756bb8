//! What the host side (husk-vmm, the husk CLI) and the guest side (husk-init)
//! agree on: constants, the control messages ([`messages`]) and their wire
//! encoding ([`codec`]). No sockets here; the codec reads and writes any
//! `Read`/`Write` it is given.

mod base64;
pub mod codec;
pub mod messages;

pub use codec::{encode_frame, read_frame, write_frame, CodecError, FrameDecoder, MAX_FRAME_BYTES};
pub use messages::*;

/// The virtio-vsock ports of the control and stdio connections (see
/// [`messages`] for what travels on each).
pub mod ports {
    /// Host port husk-init connects to once booted, for the control
    /// connection. Both ports sit just above the range a guest kernel
    /// reserves for binds with CAP_NET_BIND_SERVICE (`LAST_RESERVED_PORT`,
    /// 1023, in net/vmw_vsock/af_vsock.c).
    pub const CONTROL_PORT: u32 = 1024;
    /// Guest port husk-init listens on; the host opens one connection per
    /// stdio stream, each starting with a `StreamHello` frame.
    pub const STDIO_PORT: u32 = 1025;
}

/// The guest's side channel to husk-vmm: two x86 I/O ports that husk-init
/// writes single bytes to (after `ioperm`). Neither port exists on a PC, so
/// another VMM (QEMU) simply ignores the writes.
pub mod guest_signal {
    /// Writing a [`BootPhase`] code here records the moment that phase was
    /// reached; husk-vmm timestamps the write on its monotonic clock.
    pub const BOOT_MARKER_PORT: u16 = 0x510;
    /// Writing a byte here ends the VM at once; husk-vmm exits with that byte
    /// as its exit status.
    pub const EXIT_STATUS_PORT: u16 = 0x511;
    /// First port of the range and its length, for `ioperm`.
    pub const PORT_BASE: u16 = BOOT_MARKER_PORT;
    pub const PORT_COUNT: u16 = 2;

    /// Codes written to [`BOOT_MARKER_PORT`].
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    #[repr(u8)]
    pub enum BootPhase {
        /// husk-init runs as PID 1 (first instruction of its `main`).
        InitStarted = 1,
        /// husk-init finished mounting /proc, /sys and /dev and is ready.
        InitReady = 2,
    }

    impl BootPhase {
        pub fn from_code(code: u8) -> Option<Self> {
            match code {
                1 => Some(Self::InitStarted),
                2 => Some(Self::InitReady),
                _ => None,
            }
        }
    }
}

/// Keys husk-init reads from the kernel command line (`/proc/cmdline`).
pub mod cmdline {
    /// `husk.exit=N` (0..=255): the status husk-init hands back when it ends
    /// the VM. `husk.exit=panic` makes init return, so the kernel panics
    /// ("Attempted to kill init"); `husk.exit=hold` keeps the guest running
    /// until the VMM is stopped from outside. Default: 0.
    pub const EXIT: &str = "husk.exit";
    /// `husk.selftest=NAME[,NAME...]`: checks husk-init runs after its ready
    /// line, for the VM end-to-end tests; each prints one line starting with
    /// [`super::SELFTEST_LINE_PREFIX`]. Names: `hwrng` (reads the virtio-rng
    /// device), `blk`, `blk-ro`, `blk-bench`, `vsock-echo`, `vsock-client`, `vsock-clients`,
    /// and the hostile guests `vsock-flood` and `vsock-no-ack` (see
    /// [`super::selftest`]).
    pub const SELFTEST: &str = "husk.selftest";
    /// `husk.agent`: husk-init serves the host's control connection (see
    /// [`super::messages`]) and runs the container it is sent; `husk.exit`
    /// and `husk.selftest` are then ignored, and the VM ends with the
    /// container process's exit status once the host says Shutdown.
    pub const AGENT: &str = "husk.agent";
}

/// What the guest-side selftests and the host-side tests agree on.
pub mod selftest {
    /// `blk`: /dev/vda (ext4) is mounted here; the guest reads
    /// [`BLK_READ_FILE`] and writes [`BLK_WRITE_FILE`] with
    /// [`BLK_WRITTEN_TEXT`].
    pub const BLK_MOUNT: &str = "/mnt/vda";
    pub const BLK_READ_FILE: &str = "from-host.txt";
    pub const BLK_WRITE_FILE: &str = "from-guest.txt";
    pub const BLK_WRITTEN_TEXT: &str = "written inside the guest\n";
    /// `vsock-echo`: the guest echoes every stream on this port.
    pub const VSOCK_ECHO_PORT: u32 = 5000;
    /// `vsock-client`: the guest connects to this host port, sends
    /// [`VSOCK_CLIENT_BYTES`] of [`super::pattern_byte`] and expects them back.
    pub const VSOCK_HOST_PORT: u32 = 6000;
    pub const VSOCK_CLIENT_BYTES: u64 = 1 << 20;
    /// `vsock-clients`: the guest opens this many streams to
    /// [`VSOCK_HOST_PORT`] at once, sends [`VSOCK_STREAM_BYTES`] on each
    /// (stream `i` starts at pattern offset `i`) and expects them back.
    pub const VSOCK_CLIENT_STREAMS: u64 = 64;
    pub const VSOCK_STREAM_BYTES: u64 = 64 << 10;
    /// `vsock-flood`: the guest opens [`VSOCK_FLOOD_STREAMS`] streams to
    /// this host port and writes to each as fast as it can until the host
    /// closes it; the host reads nothing.
    pub const VSOCK_FLOOD_PORT: u32 = 6001;
    pub const VSOCK_FLOOD_STREAMS: u32 = 8;
    /// `vsock-no-ack`: the guest accepts every stream on this port and never
    /// reads from it.
    pub const VSOCK_NO_ACK_PORT: u32 = 5001;
}

/// A reproducible, non-repeating-looking byte stream for transfer checks:
/// byte `i` of the pattern.
pub fn pattern_byte(i: u64) -> u8 {
    let mixed = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i >> 7);
    (mixed >> 56) as u8
}

/// Selftest result lines: `husk-init selftest NAME ok` or
/// `husk-init selftest NAME failed: REASON`.
pub const SELFTEST_LINE_PREFIX: &str = "husk-init selftest";

/// The line husk-init prints on the console once it is ready; tests and
/// benchmarks look for it. The rest of the line is `key=value` pairs.
pub const READY_LINE_PREFIX: &str = "husk-init ready";
