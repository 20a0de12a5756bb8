//! What a VM is made of, as the user asked for it, and its validation.

use std::fs::File;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use crate::arch::x86_64::boot::{validate_cmdline, BootError};
use crate::arch::x86_64::layout::{FIRST_VIRTIO_IRQ, LAST_VIRTIO_IRQ};
use crate::arch::x86_64::mptable::MAX_SUPPORTED_CPUS;
use crate::seccomp::SeccompMode;

/// The kernel command line when none is given: console on the first serial
/// port, reboot through the keyboard controller (which ends the VM), and
/// reboot at once on panic so a crashed guest doesn't linger.
pub const DEFAULT_CMDLINE: &str = "console=ttyS0 reboot=k panic=-1";
/// Below this the kernel (loaded at 16 MiB) has no room to boot.
pub const MIN_MEMORY_MIB: u64 = 32;
/// A sanity bound, far above what a microVM needs: 1 TiB.
pub const MAX_MEMORY_MIB: u64 = 1 << 20;
pub const DEFAULT_MEMORY_MIB: u64 = 128;
pub const DEFAULT_VCPUS: u8 = 1;
pub const DEFAULT_KVM_PATH: &str = "/dev/kvm";

/// A virtio-blk disk: a host file (or block device), optionally read-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskConfig {
    pub path: PathBuf,
    pub read_only: bool,
}

impl DiskConfig {
    /// `PATH` or `PATH,ro`.
    pub fn parse(value: &str) -> Result<Self, String> {
        match value.rsplit_once(',') {
            Some((path, "ro")) if !path.is_empty() => Ok(Self {
                path: path.into(),
                read_only: true,
            }),
            Some((_, option)) => Err(format!(
                "--disk {value:?}: unknown option {option:?} (only `ro`)"
            )),
            None if !value.is_empty() => Ok(Self {
                path: value.into(),
                read_only: false,
            }),
            None => Err("--disk needs a path".into()),
        }
    }
}

/// Where the guest's serial console goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SerialSink {
    Stdout,
    File(PathBuf),
    None,
}

impl SerialSink {
    pub fn parse(value: &str) -> Self {
        match value {
            "stdout" => SerialSink::Stdout,
            "none" => SerialSink::None,
            path => SerialSink::File(PathBuf::from(path)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmConfig {
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub cmdline: String,
    pub memory_mib: u64,
    pub vcpus: u8,
    pub serial: SerialSink,
    pub kvm_path: PathBuf,
    /// Attach a virtio-rng device fed from the host's getrandom.
    pub rng: bool,
    /// virtio-blk disks, in order: the first is /dev/vda in the guest.
    pub disks: Vec<DiskConfig>,
    /// virtio-vsock with its host end on Unix sockets at this path.
    pub vsock: Option<VsockConfig>,
    /// What a thread's system call outside its seccomp policy does.
    pub seccomp: SeccompMode,
}

/// virtio-vsock: the guest's context ID, and the Unix socket path of the host
/// end (host programs connect to it; guest connections to host port P go to
/// `<path>_P`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VsockConfig {
    pub uds_path: PathBuf,
    pub guest_cid: u64,
}

impl VmConfig {
    pub fn new(kernel: PathBuf) -> Self {
        Self {
            kernel,
            initrd: None,
            cmdline: DEFAULT_CMDLINE.to_owned(),
            memory_mib: DEFAULT_MEMORY_MIB,
            vcpus: DEFAULT_VCPUS,
            serial: SerialSink::Stdout,
            kvm_path: PathBuf::from(DEFAULT_KVM_PATH),
            rng: false,
            disks: Vec::new(),
            vsock: None,
            seccomp: SeccompMode::Kill,
        }
    }

    /// How many virtio-mmio devices the VM gets.
    pub fn virtio_device_count(&self) -> usize {
        usize::from(self.rng) + self.disks.len() + usize::from(self.vsock.is_some())
    }

    pub fn memory_bytes(&self) -> u64 {
        self.memory_mib << 20
    }

    /// Checks everything that can be checked before touching KVM, so a bad
    /// flag is reported even on a host without it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.vcpus == 0 || self.vcpus > MAX_SUPPORTED_CPUS {
            return Err(ConfigError::Vcpus(self.vcpus.into()));
        }
        if !(MIN_MEMORY_MIB..=MAX_MEMORY_MIB).contains(&self.memory_mib) {
            return Err(ConfigError::Memory(self.memory_mib));
        }
        validate_cmdline(&self.cmdline).map_err(ConfigError::Cmdline)?;
        check_readable("kernel", &self.kernel, false)?;
        if let Some(initrd) = &self.initrd {
            check_readable("initrd", initrd, false)?;
        }
        for disk in &self.disks {
            check_readable("disk", &disk.path, true)?;
        }
        if self.virtio_device_count() > MAX_VIRTIO_DEVICES {
            return Err(ConfigError::TooManyDevices(self.virtio_device_count()));
        }
        Ok(())
    }
}

/// The file must exist, be of an accepted type and be readable. The type is
/// checked before opening: opening a FIFO would block.
fn check_readable(
    what: &'static str,
    path: &Path,
    block_device_ok: bool,
) -> Result<(), ConfigError> {
    let unreadable = |source| ConfigError::Unreadable {
        what,
        path: path.to_owned(),
        source,
    };
    let file_type = std::fs::metadata(path).map_err(unreadable)?.file_type();
    if block_device_ok && !(file_type.is_file() || file_type.is_block_device()) {
        return Err(ConfigError::NotADisk {
            path: path.to_owned(),
        });
    }
    if !block_device_ok && !file_type.is_file() {
        return Err(ConfigError::NotAFile {
            what,
            path: path.to_owned(),
        });
    }
    File::open(path).map_err(unreadable)?;
    Ok(())
}

/// Each virtio-mmio device needs its own I/O APIC pin: 5 to 23.
pub const MAX_VIRTIO_DEVICES: usize = (LAST_VIRTIO_IRQ - FIRST_VIRTIO_IRQ + 1) as usize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} virtio devices asked for; a VM takes at most {MAX_VIRTIO_DEVICES}")]
    TooManyDevices(usize),
    #[error("--vcpus {0}: a VM needs between 1 and {MAX_SUPPORTED_CPUS} vCPUs")]
    Vcpus(u64),
    #[error(
        "--memory-mib {0}: guest memory must be between {MIN_MEMORY_MIB} and {MAX_MEMORY_MIB} MiB"
    )]
    Memory(u64),
    #[error("--cmdline")]
    Cmdline(#[source] BootError),
    #[error("cannot read {what} {}", path.display())]
    Unreadable {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("disk {} is neither a regular file nor a block device", path.display())]
    NotADisk { path: PathBuf },
    #[error("{what} {} is not a regular file", path.display())]
    NotAFile { what: &'static str, path: PathBuf },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> VmConfig {
        // Any readable regular file passes validation; the format is checked
        // when the kernel is loaded.
        VmConfig::new(PathBuf::from("/proc/self/exe").canonicalize().unwrap())
    }

    #[test]
    fn defaults_are_valid() {
        let config = config();
        config.validate().unwrap();
        assert_eq!(config.memory_bytes(), 128 << 20);
        assert_eq!(config.cmdline, DEFAULT_CMDLINE);
    }

    #[test]
    fn vcpu_count_is_bounded() {
        let mut config = config();
        config.vcpus = 0;
        assert!(matches!(config.validate(), Err(ConfigError::Vcpus(0))));
        config.vcpus = MAX_SUPPORTED_CPUS;
        config.validate().unwrap();
        if let Some(too_many) = MAX_SUPPORTED_CPUS.checked_add(1) {
            config.vcpus = too_many;
            assert!(config.validate().is_err());
        }
    }

    #[test]
    fn memory_is_bounded_and_the_error_names_the_flag() {
        let mut config = config();
        config.memory_mib = MIN_MEMORY_MIB - 1;
        let err = config.validate().unwrap_err();
        assert!(err.to_string().starts_with("--memory-mib 31"), "{err}");
        config.memory_mib = MAX_MEMORY_MIB + 1;
        assert!(config.validate().is_err());
        config.memory_mib = MIN_MEMORY_MIB;
        config.validate().unwrap();
    }

    #[test]
    fn missing_kernel_and_initrd_are_named() {
        let mut config = config();
        config.kernel = PathBuf::from("/nonexistent/vmlinux");
        let err = config.validate().unwrap_err();
        assert_eq!(err.to_string(), "cannot read kernel /nonexistent/vmlinux");
        let mut config = self::config();
        config.initrd = Some(PathBuf::from("/"));
        let err = config.validate().unwrap_err();
        assert!(
            matches!(err, ConfigError::NotAFile { what: "initrd", .. }),
            "{err}"
        );
    }

    #[test]
    fn overlong_command_line_is_rejected() {
        let mut config = config();
        config.cmdline = "x".repeat(4096);
        assert!(matches!(config.validate(), Err(ConfigError::Cmdline(_))));
    }

    #[test]
    fn disk_flags() {
        assert_eq!(
            DiskConfig::parse("/a.img"),
            Ok(DiskConfig {
                path: "/a.img".into(),
                read_only: false
            })
        );
        assert_eq!(
            DiskConfig::parse("/a.img,ro"),
            Ok(DiskConfig {
                path: "/a.img".into(),
                read_only: true
            })
        );
        assert!(DiskConfig::parse("/a.img,rw")
            .unwrap_err()
            .contains("unknown option \"rw\""));
        assert!(DiskConfig::parse("").is_err());
        assert!(DiskConfig::parse(",ro").is_err());
    }

    #[test]
    fn device_count_is_bounded_by_the_interrupt_pins() {
        let mut config = config();
        config.disks = vec![
            DiskConfig {
                path: "/proc/self/exe".into(),
                read_only: true
            };
            MAX_VIRTIO_DEVICES
        ];
        config.validate().unwrap();
        config.rng = true;
        assert!(matches!(
            config.validate(),
            Err(ConfigError::TooManyDevices(20))
        ));
    }

    #[test]
    fn serial_sink_parsing() {
        assert_eq!(SerialSink::parse("stdout"), SerialSink::Stdout);
        assert_eq!(SerialSink::parse("none"), SerialSink::None);
        assert_eq!(
            SerialSink::parse("/tmp/console.log"),
            SerialSink::File("/tmp/console.log".into())
        );
    }
}
