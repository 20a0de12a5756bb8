//! The starter config.json `husk spec` writes: runc's example spec
//! (libcontainer/specconv Example and ToRootless), field for field and in
//! the same order, with husk's hostname.

use serde::Serialize;

use crate::OCI_VERSION;

/// What `husk spec` varies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateOptions {
    /// Add a cgroup namespace (runc does when the container's cgroup
    /// hierarchy is v2 only).
    pub cgroup_namespace: bool,
    /// `--rootless`: the effective uid and gid to map to root in a new user
    /// namespace.
    pub rootless: Option<(u32, u32)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpecTemplate {
    pub oci_version: &'static str,
    pub process: ProcessTemplate,
    pub root: RootTemplate,
    pub hostname: &'static str,
    pub mounts: Vec<MountTemplate>,
    pub linux: LinuxTemplate,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessTemplate {
    pub terminal: bool,
    pub user: UserTemplate,
    pub args: Vec<&'static str>,
    pub env: Vec<&'static str>,
    pub cwd: &'static str,
    pub capabilities: CapabilitiesTemplate,
    pub rlimits: Vec<RlimitTemplate>,
    pub no_new_privileges: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserTemplate {
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CapabilitiesTemplate {
    pub bounding: Vec<&'static str>,
    pub effective: Vec<&'static str>,
    pub permitted: Vec<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RlimitTemplate {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub hard: u64,
    pub soft: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RootTemplate {
    pub path: &'static str,
    pub readonly: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MountTemplate {
    pub destination: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub source: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LinuxTemplate {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub uid_mappings: Vec<IdMappingTemplate>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gid_mappings: Vec<IdMappingTemplate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourcesTemplate>,
    pub namespaces: Vec<NamespaceTemplate>,
    pub masked_paths: Vec<&'static str>,
    pub readonly_paths: Vec<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdMappingTemplate {
    #[serde(rename = "containerID")]
    pub container_id: u32,
    #[serde(rename = "hostID")]
    pub host_id: u32,
    pub size: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourcesTemplate {
    pub devices: Vec<DeviceRuleTemplate>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceRuleTemplate {
    pub allow: bool,
    pub access: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamespaceTemplate {
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// The capabilities runc's example gives: the Docker defaults' smallest
/// useful subset.
const DEFAULT_CAPABILITIES: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

fn mount(
    destination: &'static str,
    kind: &'static str,
    source: &'static str,
    options: &[&'static str],
) -> MountTemplate {
    MountTemplate {
        destination,
        kind,
        source,
        options: options.to_vec(),
    }
}

/// runc's example spec, adjusted by `options`.
pub fn default_spec(options: TemplateOptions) -> SpecTemplate {
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &[]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        ),
    ];
    let mut namespaces: Vec<&'static str> = vec!["pid", "network", "ipc", "uts", "mount"];
    if options.cgroup_namespace {
        namespaces.push("cgroup");
    }
    let mut linux = LinuxTemplate {
        uid_mappings: Vec::new(),
        gid_mappings: Vec::new(),
        resources: Some(ResourcesTemplate {
            devices: vec![DeviceRuleTemplate {
                allow: false,
                access: "rwm",
            }],
        }),
        namespaces: Vec::new(),
        masked_paths: vec![
            "/proc/acpi",
            "/proc/asound",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/sys/firmware",
            "/proc/scsi",
            "/sys/devices/virtual/tpm",
        ],
        readonly_paths: vec![
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
            "/proc/sys",
            "/proc/sysrq-trigger",
        ],
    };

    if let Some((uid, gid)) = options.rootless {
        // An unprivileged user may not create a network namespace with
        // interfaces it can configure, nor mount sysfs, nor own cgroups:
        // runc's ToRootless drops the network namespace, adds a user
        // namespace mapping the user to root, bind-mounts the host's /sys,
        // removes uid=/gid= mount options (ids that are not mapped) and
        // the cgroup device rules.
        namespaces.retain(|kind| *kind != "network");
        namespaces.push("user");
        linux.uid_mappings = vec![IdMappingTemplate {
            container_id: 0,
            host_id: uid,
            size: 1,
        }];
        linux.gid_mappings = vec![IdMappingTemplate {
            container_id: 0,
            host_id: gid,
            size: 1,
        }];
        linux.resources = None;
        for mount in &mut mounts {
            if mount.destination == "/sys" {
                *mount = self::mount(
                    "/sys",
                    "none",
                    "/sys",
                    &["rbind", "nosuid", "noexec", "nodev", "ro"],
                );
            }
            mount
                .options
                .retain(|option| !option.starts_with("uid=") && !option.starts_with("gid="));
        }
    }
    linux.namespaces = namespaces
        .into_iter()
        .map(|kind| NamespaceTemplate { kind })
        .collect();

    SpecTemplate {
        oci_version: OCI_VERSION,
        process: ProcessTemplate {
            terminal: true,
            user: UserTemplate { uid: 0, gid: 0 },
            args: vec!["sh"],
            env: vec![
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm",
            ],
            cwd: "/",
            capabilities: CapabilitiesTemplate {
                bounding: DEFAULT_CAPABILITIES.to_vec(),
                effective: DEFAULT_CAPABILITIES.to_vec(),
                permitted: DEFAULT_CAPABILITIES.to_vec(),
            },
            rlimits: vec![RlimitTemplate {
                kind: "RLIMIT_NOFILE",
                hard: 1024,
                soft: 1024,
            }],
            no_new_privileges: true,
        },
        root: RootTemplate {
            path: "rootfs",
            readonly: true,
        },
        hostname: "husk",
        mounts,
        linux,
    }
}

/// The spec as runc writes it: JSON indented with tabs.
pub fn to_json(spec: &SpecTemplate) -> Vec<u8> {
    let mut json = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut serializer = serde_json::Serializer::with_formatter(&mut json, formatter);
    spec.serialize(&mut serializer)
        .expect("the template holds only strings, numbers and booleans");
    json
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use husk_init::engine::spec::parse_config;
    use oci_spec::runtime::{Capability, LinuxNamespaceType};

    use super::*;

    fn parsed(options: TemplateOptions) -> oci_spec::runtime::Spec {
        let json = String::from_utf8(to_json(&default_spec(options))).unwrap();
        parse_config(Path::new("/b/config.json"), &json)
            .unwrap_or_else(|error| panic!("{error}\n{json}"))
    }

    fn namespace_types(spec: &oci_spec::runtime::Spec) -> Vec<LinuxNamespaceType> {
        spec.linux()
            .as_ref()
            .unwrap()
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .map(|namespace| namespace.typ())
            .collect()
    }

    #[test]
    fn the_default_spec_is_runc_s_with_husk_as_hostname() {
        let spec = parsed(TemplateOptions {
            cgroup_namespace: false,
            rootless: None,
        });
        assert_eq!(spec.version(), OCI_VERSION);
        assert_eq!(spec.hostname().as_deref(), Some("husk"));
        let process = spec.process().as_ref().unwrap();
        assert_eq!(process.args().as_ref().unwrap(), &["sh"]);
        assert_eq!(process.terminal(), Some(true));
        assert_eq!(process.no_new_privileges(), Some(true));
        let bounding = process
            .capabilities()
            .as_ref()
            .unwrap()
            .bounding()
            .clone()
            .unwrap();
        assert_eq!(bounding.len(), 3);
        assert!(bounding.contains(&Capability::NetBindService));
        let rlimits = process.rlimits().as_ref().unwrap();
        assert_eq!((rlimits[0].hard(), rlimits[0].soft()), (1024, 1024));
        let destinations: Vec<_> = spec
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .map(|mount| mount.destination().display().to_string())
            .collect();
        assert_eq!(
            destinations,
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/shm",
                "/dev/mqueue",
                "/sys",
                "/sys/fs/cgroup"
            ]
        );
        assert_eq!(
            namespace_types(&spec),
            [
                LinuxNamespaceType::Pid,
                LinuxNamespaceType::Network,
                LinuxNamespaceType::Ipc,
                LinuxNamespaceType::Uts,
                LinuxNamespaceType::Mount
            ]
        );
        let linux = spec.linux().as_ref().unwrap();
        assert!(linux
            .masked_paths()
            .as_ref()
            .unwrap()
            .contains(&"/proc/kcore".to_string()));
        assert!(linux
            .readonly_paths()
            .as_ref()
            .unwrap()
            .contains(&"/proc/sys".to_string()));
    }

    #[test]
    fn the_cgroup_namespace_is_added_on_request() {
        let spec = parsed(TemplateOptions {
            cgroup_namespace: true,
            rootless: None,
        });
        assert_eq!(
            namespace_types(&spec).last(),
            Some(&LinuxNamespaceType::Cgroup)
        );
    }

    #[test]
    fn rootless_maps_the_user_and_drops_what_it_cannot_have() {
        let spec = parsed(TemplateOptions {
            cgroup_namespace: false,
            rootless: Some((1000, 1001)),
        });
        let types = namespace_types(&spec);
        assert!(types.contains(&LinuxNamespaceType::User));
        assert!(!types.contains(&LinuxNamespaceType::Network));
        let linux = spec.linux().as_ref().unwrap();
        let uid_map = &linux.uid_mappings().as_ref().unwrap()[0];
        assert_eq!(
            (uid_map.container_id(), uid_map.host_id(), uid_map.size()),
            (0, 1000, 1)
        );
        let gid_map = &linux.gid_mappings().as_ref().unwrap()[0];
        assert_eq!(gid_map.host_id(), 1001);
        assert!(linux.resources().is_none());
        let mounts = spec.mounts().as_ref().unwrap();
        let sys = mounts
            .iter()
            .find(|mount| mount.destination() == Path::new("/sys"))
            .unwrap();
        assert_eq!(sys.typ().as_deref(), Some("none"));
        assert!(sys
            .options()
            .as_ref()
            .unwrap()
            .contains(&"rbind".to_string()));
        let devpts = mounts
            .iter()
            .find(|mount| mount.destination() == Path::new("/dev/pts"))
            .unwrap();
        assert!(!devpts
            .options()
            .as_ref()
            .unwrap()
            .iter()
            .any(|option| option.starts_with("gid=")));
    }

    #[test]
    fn written_with_tabs_in_runc_s_field_order() {
        let json = String::from_utf8(to_json(&default_spec(TemplateOptions {
            cgroup_namespace: false,
            rootless: None,
        })))
        .unwrap();
        assert!(json.starts_with("{\n\t\"ociVersion\": "), "{json}");
        let position = |key: &str| json.find(&format!("\"{key}\"")).unwrap();
        assert!(position("ociVersion") < position("process"));
        assert!(position("process") < position("root"));
        assert!(position("root") < position("hostname"));
        assert!(position("hostname") < position("mounts"));
        assert!(position("mounts") < position("linux"));
    }
}
