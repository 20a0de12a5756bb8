//! The features document `husk features` prints (runtime-spec features.md,
//! features-linux.md): what husk recognises in config.json. Each list is
//! what guest-init's engine, which applies the bundle in both backends,
//! accepts; the tests below hold the lists to the engine.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::backend::{backend_for, BackendKind};
use crate::{OCI_VERSION, OCI_VERSION_MIN};

/// Hook names (config.md "POSIX-platform Hooks"); the engine's
/// `hooks::HookStage` runs each of them.
const HOOKS: &[&str] = &[
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// Mount options the engine turns into mount(2) flags or propagation
/// changes (`rootfs::options`). It refuses the recursive `r*` attributes,
/// `idmap` and `tmpcopyup`, so they are not listed.
const MOUNT_OPTIONS: &[&str] = &[
    "acl",
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "iversion",
    "lazytime",
    "loud",
    "mand",
    "noacl",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "private",
    "rbind",
    "relatime",
    "remount",
    "ro",
    "rprivate",
    "rshared",
    "rslave",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "sync",
    "unbindable",
];

/// Every namespace type the engine creates or joins (`namespaces`).
const NAMESPACES: &[&str] = &[
    "cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts",
];

/// The capabilities of Linux 6.12 (capabilities(7)), in number order.
const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Seccomp actions `engine::seccomp::compile` turns into filter returns.
/// SCMP_ACT_NOTIFY is refused (husk runs no seccomp agent).
const SECCOMP_ACTIONS: &[&str] = &[
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_LOG",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_TRAP",
];

const SECCOMP_OPERATORS: &[&str] = &[
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_LE",
    "SCMP_CMP_LT",
    "SCMP_CMP_MASKED_EQ",
    "SCMP_CMP_NE",
];

/// The filter is built for x86_64; profiles may also list the x86 and x32
/// ABIs, whose system calls the filter then kills.
const SECCOMP_ARCHITECTURES: &[&str] = &["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32"];

/// `linux.seccomp.flags` values husk knows, and those it applies
/// (SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs a notify listener).
const SECCOMP_KNOWN_FLAGS: &[&str] = &[
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
];
const SECCOMP_SUPPORTED_FLAGS: &[&str] = &[
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_LOG",
];

/// The features document (features.md).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Features {
    pub oci_version_min: &'static str,
    pub oci_version_max: &'static str,
    pub hooks: &'static [&'static str],
    pub mount_options: &'static [&'static str],
    pub linux: LinuxFeatures,
    pub annotations: BTreeMap<String, String>,
}

/// features-linux.md.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LinuxFeatures {
    pub namespaces: &'static [&'static str],
    pub capabilities: &'static [&'static str],
    pub cgroup: CgroupFeatures,
    pub seccomp: SeccompFeatures,
    pub apparmor: Enabled,
    pub selinux: Enabled,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CgroupFeatures {
    pub v1: bool,
    pub v2: bool,
    pub systemd: bool,
    pub systemd_user: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeccompFeatures {
    pub enabled: bool,
    pub actions: &'static [&'static str],
    pub operators: &'static [&'static str],
    pub archs: &'static [&'static str],
    pub known_flags: &'static [&'static str],
    pub supported_flags: &'static [&'static str],
}

#[derive(Debug, Clone, Serialize)]
pub struct Enabled {
    pub enabled: bool,
}

/// The document, with each backend's annotations.
pub fn features() -> Features {
    let mut annotations = BTreeMap::from([
        (
            "run.husk.version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
        (
            "run.husk.backends".to_string(),
            BackendKind::ALL.map(BackendKind::as_str).join(","),
        ),
        (
            "run.husk.backend.default".to_string(),
            BackendKind::Vm.to_string(),
        ),
    ]);
    for kind in BackendKind::ALL {
        annotations.extend(backend_for(kind).feature_annotations());
    }
    Features {
        oci_version_min: OCI_VERSION_MIN,
        oci_version_max: OCI_VERSION,
        hooks: HOOKS,
        mount_options: MOUNT_OPTIONS,
        linux: LinuxFeatures {
            namespaces: NAMESPACES,
            capabilities: CAPABILITIES,
            // v1 and hybrid hosts through the container backend; v2 on v2
            // hosts and always inside the VM.
            cgroup: CgroupFeatures {
                v1: true,
                v2: true,
                systemd: false,
                systemd_user: false,
            },
            seccomp: SeccompFeatures {
                enabled: true,
                actions: SECCOMP_ACTIONS,
                operators: SECCOMP_OPERATORS,
                archs: SECCOMP_ARCHITECTURES,
                known_flags: SECCOMP_KNOWN_FLAGS,
                supported_flags: SECCOMP_SUPPORTED_FLAGS,
            },
            apparmor: Enabled { enabled: false },
            selinux: Enabled { enabled: false },
        },
        annotations,
    }
}

#[cfg(test)]
mod tests {
    use husk_init::engine::rootfs::options;
    use husk_init::engine::seccomp;
    use oci_spec::runtime::{Capability, LinuxNamespaceType, LinuxSeccomp};
    use serde_json::json;

    use super::*;

    fn profile(value: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn every_listed_seccomp_action_compiles_and_notify_does_not() {
        let with_action = |action: &str| {
            profile(json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["getpid"], "action": action}],
            }))
        };
        for action in SECCOMP_ACTIONS {
            seccomp::compile(&with_action(action))
                .unwrap_or_else(|error| panic!("{action}: {error}"));
        }
        assert!(seccomp::compile(&with_action("SCMP_ACT_NOTIFY")).is_err());
    }

    #[test]
    fn every_listed_seccomp_operator_compiles() {
        for operator in SECCOMP_OPERATORS {
            let rule = profile(json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{
                    "names": ["personality"],
                    "action": "SCMP_ACT_ERRNO",
                    "args": [{"index": 0, "value": 8, "valueTwo": 8, "op": operator}],
                }],
            }));
            seccomp::compile(&rule).unwrap_or_else(|error| panic!("{operator}: {error}"));
        }
    }

    #[test]
    fn every_listed_architecture_is_accepted_next_to_x86_64() {
        for architecture in SECCOMP_ARCHITECTURES {
            let listed = profile(json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64", architecture],
            }));
            seccomp::compile(&listed).unwrap_or_else(|error| panic!("{architecture}: {error}"));
        }
    }

    #[test]
    fn seccomp_flags_match_what_the_engine_applies() {
        for flag in SECCOMP_KNOWN_FLAGS {
            let flagged = profile(json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": [flag]}));
            let applied = seccomp::filter_flags(&flagged).is_ok();
            assert_eq!(applied, SECCOMP_SUPPORTED_FLAGS.contains(flag), "{flag}");
        }
    }

    #[test]
    fn every_listed_mount_option_is_a_flag_or_propagation_the_engine_knows() {
        for option in MOUNT_OPTIONS {
            let parsed = options::parse(&[option.to_string()])
                .unwrap_or_else(|error| panic!("{option}: {error}"));
            // An option the engine does not know goes to the filesystem as
            // mount data; a recognised one never does.
            assert_eq!(parsed.data, "", "{option}");
        }
        for refused in ["tmpcopyup", "idmap", "rro"] {
            assert!(options::parse(&[refused.to_string()]).is_err(), "{refused}");
            assert!(!MOUNT_OPTIONS.contains(&refused));
        }
    }

    #[test]
    fn namespaces_and_capabilities_are_the_spec_s_names() {
        for namespace in NAMESPACES {
            let _: LinuxNamespaceType = serde_json::from_value(json!(namespace))
                .unwrap_or_else(|error| panic!("{namespace}: {error}"));
        }
        assert_eq!(NAMESPACES.len(), 8);
        for capability in CAPABILITIES {
            let _: Capability = serde_json::from_value(json!(capability))
                .unwrap_or_else(|error| panic!("{capability}: {error}"));
        }
        let numbers: Vec<u32> = CAPABILITIES
            .iter()
            .map(|name| {
                husk_init::engine::process::capabilities::number(
                    serde_json::from_value(json!(name)).unwrap(),
                )
            })
            .collect();
        assert_eq!(numbers, (0..=40).collect::<Vec<u32>>());
    }

    #[test]
    fn the_document_has_the_required_fields_and_backend_notes() {
        let document = serde_json::to_value(features()).unwrap();
        assert_eq!(document["ociVersionMin"], "1.0.0");
        assert_eq!(document["ociVersionMax"], OCI_VERSION);
        assert_eq!(document["linux"]["cgroup"]["systemd"], false);
        assert_eq!(document["linux"]["seccomp"]["enabled"], true);
        assert_eq!(document["linux"]["apparmor"]["enabled"], false);
        assert_eq!(document["annotations"]["run.husk.backends"], "vm,container");
        let shared_directories = document["annotations"]["run.husk.vm.shared-directories"]
            .as_str()
            .unwrap();
        assert!(
            shared_directories.contains("arrives as a read-only copy taken at create"),
            "{shared_directories}"
        );
        assert!(
            shared_directories.contains("at most 12 directories holding 1024 MiB"),
            "{shared_directories}"
        );
    }
}
