//! Opening /dev/kvm and checking it can run husk's VMs.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use kvm_bindings::{CpuId, KVM_API_VERSION, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::{Cap, Kvm};

/// Capabilities husk-vmm relies on, each with what it is for.
const REQUIRED_CAPS: [(Cap, &str); 7] = [
    (Cap::Irqchip, "in-kernel interrupt controllers"),
    (Cap::Pit2, "in-kernel timer"),
    (Cap::Irqfd, "device interrupts through eventfds"),
    (Cap::Ioeventfd, "device notifications through eventfds"),
    (Cap::UserMemory, "guest memory from the VMM's address space"),
    (Cap::SetTssAddr, "the real-mode TSS"),
    (Cap::ExtCpuid, "CPUID configuration"),
];

#[derive(Debug, thiserror::Error)]
pub enum KvmError {
    #[error("{} does not exist: this host offers no KVM (load the kvm_intel or kvm_amd module, or enable virtualization in the firmware)", path.display())]
    Missing { path: PathBuf },
    #[error("no permission to open {}: run as root or join the group that owns it (usually `kvm`)", path.display())]
    PermissionDenied { path: PathBuf },
    #[error("open {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: kvm_ioctls::Error,
    },
    #[error("KVM API version is {0}, husk-vmm needs {KVM_API_VERSION}")]
    ApiVersion(i32),
    #[error("KVM lacks the capability {cap:?} ({purpose})")]
    MissingCapability { cap: Cap, purpose: &'static str },
    #[error("read the CPUID KVM supports")]
    SupportedCpuid(#[source] kvm_ioctls::Error),
}

/// An open /dev/kvm that passed husk-vmm's checks.
pub struct KvmContext {
    kvm: Kvm,
    supported_cpuid: CpuId,
}

impl KvmContext {
    pub fn open(path: &Path) -> Result<Self, KvmError> {
        let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| KvmError::Missing {
            path: path.to_owned(),
        })?;
        let kvm = Kvm::new_with_path(c_path).map_err(|source| match source.errno() {
            libc::ENOENT | libc::ENODEV | libc::ENXIO => KvmError::Missing {
                path: path.to_owned(),
            },
            libc::EACCES | libc::EPERM => KvmError::PermissionDenied {
                path: path.to_owned(),
            },
            _ => KvmError::Open {
                path: path.to_owned(),
                source,
            },
        })?;
        let version = kvm.get_api_version();
        if version != KVM_API_VERSION as i32 {
            return Err(KvmError::ApiVersion(version));
        }
        for (cap, purpose) in REQUIRED_CAPS {
            if !kvm.check_extension(cap) {
                return Err(KvmError::MissingCapability { cap, purpose });
            }
        }
        let supported_cpuid = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(KvmError::SupportedCpuid)?;
        Ok(Self {
            kvm,
            supported_cpuid,
        })
    }

    pub fn kvm(&self) -> &Kvm {
        &self.kvm
    }

    /// What KVM can virtualize; each vCPU adjusts its own copy.
    pub fn supported_cpuid(&self) -> &CpuId {
        &self.supported_cpuid
    }
}
