//! `process.capabilities` (config.md "Linux process"), applied in runc's
//! order: the bounding set is trimmed while the process is still root, the
//! other sets are set with capset(2) after the uid change (which the
//! caller brackets with PR_SET_KEEPCAPS so the permitted set survives it),
//! and the ambient set last, since raising an ambient capability needs it
//! permitted and inheritable already (capabilities(7)).

use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};

use super::ProcessError;
use crate::engine::syscall::{CapabilitySets, Syscall};

/// The capability number linux/capability.h gives each name.
pub fn number(capability: Capability) -> u32 {
    match capability {
        Capability::Chown => 0,
        Capability::DacOverride => 1,
        Capability::DacReadSearch => 2,
        Capability::Fowner => 3,
        Capability::Fsetid => 4,
        Capability::Kill => 5,
        Capability::Setgid => 6,
        Capability::Setuid => 7,
        Capability::Setpcap => 8,
        Capability::LinuxImmutable => 9,
        Capability::NetBindService => 10,
        Capability::NetBroadcast => 11,
        Capability::NetAdmin => 12,
        Capability::NetRaw => 13,
        Capability::IpcLock => 14,
        Capability::IpcOwner => 15,
        Capability::SysModule => 16,
        Capability::SysRawio => 17,
        Capability::SysChroot => 18,
        Capability::SysPtrace => 19,
        Capability::SysPacct => 20,
        Capability::SysAdmin => 21,
        Capability::SysBoot => 22,
        Capability::SysNice => 23,
        Capability::SysResource => 24,
        Capability::SysTime => 25,
        Capability::SysTtyConfig => 26,
        Capability::Mknod => 27,
        Capability::Lease => 28,
        Capability::AuditWrite => 29,
        Capability::AuditControl => 30,
        Capability::Setfcap => 31,
        Capability::MacOverride => 32,
        Capability::MacAdmin => 33,
        Capability::Syslog => 34,
        Capability::WakeAlarm => 35,
        Capability::BlockSuspend => 36,
        Capability::AuditRead => 37,
        Capability::Perfmon => 38,
        Capability::Bpf => 39,
        Capability::CheckpointRestore => 40,
    }
}

/// The five sets as bit masks. A set config.json leaves out is empty, as in
/// runc: a container gets only the capabilities it lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapabilityPlan {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

fn mask(set: &Option<Capabilities>) -> u64 {
    set.iter()
        .flatten()
        .fold(0, |mask, capability| mask | 1 << number(*capability))
}

impl CapabilityPlan {
    pub fn from_spec(capabilities: Option<&LinuxCapabilities>) -> Self {
        let Some(capabilities) = capabilities else {
            return Self::default();
        };
        Self {
            bounding: mask(capabilities.bounding()),
            effective: mask(capabilities.effective()),
            permitted: mask(capabilities.permitted()),
            inheritable: mask(capabilities.inheritable()),
            ambient: mask(capabilities.ambient()),
        }
    }
}

/// Drops every capability the kernel knows that is not in the bounding set
/// (prctl(PR_CAPBSET_DROP) needs CAP_SETPCAP, so this runs while root).
pub fn drop_bounding(syscall: &dyn Syscall, plan: &CapabilityPlan) -> Result<(), ProcessError> {
    let last = syscall
        .last_capability()
        .map_err(|source| ProcessError::Capabilities {
            step: "read /proc/sys/kernel/cap_last_cap",
            source,
        })?;
    for capability in 0..=last.min(63) {
        if plan.bounding & (1 << capability) == 0 {
            syscall
                .drop_bounding_capability(capability)
                .map_err(|source| ProcessError::Capabilities {
                    step: "process.capabilities.bounding: drop from the bounding set",
                    source,
                })?;
        }
    }
    Ok(())
}

/// Sets effective, permitted and inheritable, then the ambient set.
pub fn apply(syscall: &dyn Syscall, plan: &CapabilityPlan) -> Result<(), ProcessError> {
    let known = syscall
        .last_capability()
        .map(|last| {
            if last >= 63 {
                u64::MAX
            } else {
                (1u64 << (last + 1)) - 1
            }
        })
        .map_err(|source| ProcessError::Capabilities {
            step: "read /proc/sys/kernel/cap_last_cap",
            source,
        })?;
    syscall
        .capset(CapabilitySets {
            effective: plan.effective & known,
            permitted: plan.permitted & known,
            inheritable: plan.inheritable & known,
        })
        .map_err(|source| ProcessError::Capabilities {
            step: "process.capabilities: set effective, permitted and inheritable (capset)",
            source,
        })?;
    syscall
        .clear_ambient_capabilities()
        .map_err(|source| ProcessError::Capabilities {
            step: "process.capabilities.ambient: clear",
            source,
        })?;
    // Raising an ambient capability that is not both permitted and
    // inheritable fails with EPERM. runc only warns then (its example spec
    // lists ambient capabilities but no inheritable ones since 1.1.2), so
    // such a capability is skipped here too.
    for capability in (0..64).filter(|capability| plan.ambient & known & (1 << capability) != 0) {
        match syscall.raise_ambient_capability(capability) {
            Ok(()) => {}
            Err(error) if error.raw_os_error() == Some(libc::EPERM) => {}
            Err(source) => {
                return Err(ProcessError::Capabilities {
                    step: "process.capabilities.ambient: raise",
                    source,
                })
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::syscall::{Call, RecordingSyscall};

    #[test]
    fn missing_sets_are_empty() {
        let capabilities: LinuxCapabilities =
            serde_json::from_str(r#"{"bounding": ["CAP_CHOWN", "CAP_KILL"]}"#).unwrap();
        let plan = CapabilityPlan::from_spec(Some(&capabilities));
        assert_eq!(plan.bounding, 1 << 0 | 1 << 5);
        assert_eq!((plan.effective, plan.permitted, plan.ambient), (0, 0, 0));
        assert_eq!(CapabilityPlan::from_spec(None), CapabilityPlan::default());
    }

    #[test]
    fn bounding_drops_every_other_known_capability() {
        let plan = CapabilityPlan {
            bounding: (1 << 0) | (1 << 40),
            ..CapabilityPlan::default()
        };
        let syscall = RecordingSyscall::new();
        drop_bounding(&syscall, &plan).unwrap();
        let dropped: Vec<u32> = syscall
            .calls()
            .into_iter()
            .map(|call| match call {
                Call::DropBoundingCapability(capability) => capability,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(dropped, (1..40).collect::<Vec<_>>());
    }

    #[test]
    fn ambient_capabilities_that_cannot_be_raised_are_skipped_like_runc() {
        let plan = CapabilityPlan {
            effective: 1 << 10,
            permitted: 1 << 10,
            ambient: (1 << 10) | (1 << 5),
            ..CapabilityPlan::default()
        };
        let syscall = RecordingSyscall::new()
            .failing(|call| *call == Call::RaiseAmbientCapability(5), libc::EPERM);
        apply(&syscall, &plan).unwrap();
        assert_eq!(
            syscall.calls(),
            vec![
                Call::Capset(CapabilitySets {
                    effective: 1 << 10,
                    permitted: 1 << 10,
                    inheritable: 0
                }),
                Call::ClearAmbientCapabilities,
                Call::RaiseAmbientCapability(5),
                Call::RaiseAmbientCapability(10),
            ]
        );
        let broken = RecordingSyscall::new().failing(
            |call| matches!(call, Call::RaiseAmbientCapability(_)),
            libc::EINVAL,
        );
        assert!(apply(&broken, &plan).is_err());
    }
}
