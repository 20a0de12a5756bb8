//! Loading a bundle: config.json read, parsed and checked the way runc
//! checks it (libcontainer/configs/validate), before anything is created.
//! Every error names the file and the JSON field, for example
//! `/b/config.json: linux.namespaces[2].type: unknown namespace type "foo"`.

use std::collections::HashMap;
use std::fs;
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{Capability, LinuxNamespaceType, Mount, Process, Spec};
use serde_json::Value;

use crate::engine::rootfs::options;

/// A bundle whose config.json parsed and passed validation.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The bundle directory, absolute.
    pub path: PathBuf,
    /// `<bundle>/config.json`.
    pub config_path: PathBuf,
    /// `root.path` resolved against the bundle directory, absolute.
    pub rootfs: PathBuf,
    pub spec: Spec,
}

impl Bundle {
    /// The container's process (validation made sure there is one).
    pub fn process(&self) -> &Process {
        self.spec
            .process()
            .as_ref()
            .expect("load_bundle checked that process is present")
    }

    /// `linux.namespaces`, empty when absent.
    pub fn namespaces(&self) -> &[oci_spec::runtime::LinuxNamespace] {
        self.spec
            .linux()
            .as_ref()
            .and_then(|linux| linux.namespaces().as_deref())
            .unwrap_or_default()
    }

    /// Whether `kind` is listed in `linux.namespaces` (created or joined).
    pub fn has_namespace(&self, kind: LinuxNamespaceType) -> bool {
        self.namespaces()
            .iter()
            .any(|namespace| namespace.typ() == kind)
    }

    /// `mounts`, empty when absent.
    pub fn mounts(&self) -> &[Mount] {
        self.spec.mounts().as_deref().unwrap_or_default()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("read the bundle's config file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not valid JSON", path.display())]
    Syntax {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: {field}: {problem}", path.display())]
    Invalid {
        path: PathBuf,
        field: String,
        problem: String,
    },
}

impl SpecError {
    /// The JSON field the error is about, if it is about one.
    pub fn field(&self) -> Option<&str> {
        match self {
            SpecError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// Collects problems for one config file; the first one found is reported.
struct Checker<'a> {
    path: &'a Path,
}

impl Checker<'_> {
    fn invalid(&self, field: impl Into<String>, problem: impl Into<String>) -> SpecError {
        SpecError::Invalid {
            path: self.path.to_path_buf(),
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// Reads `<bundle_dir>/config.json`, resolves `root.path` against the bundle
/// and validates what a create needs.
pub fn load_bundle(bundle_dir: &Path) -> Result<Bundle, SpecError> {
    let bundle_dir = std::path::absolute(bundle_dir).map_err(|source| SpecError::Read {
        path: bundle_dir.join("config.json"),
        source,
    })?;
    let config_path = bundle_dir.join("config.json");
    let text = fs::read_to_string(&config_path).map_err(|source| SpecError::Read {
        path: config_path.clone(),
        source,
    })?;
    let spec = parse_config(&config_path, &text)?;
    let checker = Checker { path: &config_path };
    let rootfs = resolve_rootfs(&checker, &bundle_dir, &spec)?;
    validate(&checker, &spec)?;
    Ok(Bundle {
        path: bundle_dir,
        config_path,
        rootfs,
        spec,
    })
}

/// Parses config.json text. Fields whose serde error would be cryptic are
/// checked first on the raw JSON; the rest report serde's message with the
/// path of the field.
pub fn parse_config(config_path: &Path, text: &str) -> Result<Spec, SpecError> {
    let checker = Checker { path: config_path };
    let value: Value = serde_json::from_str(text).map_err(|source| SpecError::Syntax {
        path: config_path.to_path_buf(),
        source,
    })?;
    check_raw(&checker, &value)?;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let field = error.path().to_string();
        checker.invalid(field, error.into_inner().to_string())
    })
}

fn check_raw(checker: &Checker, value: &Value) -> Result<(), SpecError> {
    if !value.is_object() {
        return Err(checker.invalid(".", "the top level must be a JSON object"));
    }
    if let Some(version) = value.get("ociVersion") {
        let version = version.as_str().unwrap_or_default();
        if !version.starts_with("1.") {
            return Err(checker.invalid(
                "ociVersion",
                format!("{version:?} is not a 1.x version of the runtime spec, which is what husk implements"),
            ));
        }
    }
    match value.pointer("/root/path") {
        Some(Value::String(path)) if !path.is_empty() => {}
        _ => return Err(checker.invalid("root", "missing, a Linux container needs root.path")),
    }
    if let Some(Value::Array(namespaces)) = value.pointer("/linux/namespaces") {
        for (index, namespace) in namespaces.iter().enumerate() {
            let field = format!("linux.namespaces[{index}].type");
            let Some(kind) = namespace.get("type") else {
                return Err(checker.invalid(field, "missing"));
            };
            let known = kind.as_str().is_some_and(|kind| {
                matches!(
                    kind,
                    "pid" | "network" | "mount" | "ipc" | "uts" | "user" | "cgroup" | "time"
                )
            });
            if !known {
                return Err(checker.invalid(
                    field,
                    format!(
                        "unknown namespace type {kind}; known: pid, network, mount, ipc, uts, user, cgroup, time"
                    ),
                ));
            }
        }
    }
    if let Some(Value::Object(sets)) = value.pointer("/process/capabilities") {
        for (set, names) in sets {
            let Value::Array(names) = names else { continue };
            for (index, name) in names.iter().enumerate() {
                if serde_json::from_value::<Capability>(name.clone()).is_err() {
                    return Err(checker.invalid(
                        format!("process.capabilities.{set}[{index}]"),
                        format!("unknown capability {name}"),
                    ));
                }
            }
        }
    }
    Ok(())
}

fn resolve_rootfs(checker: &Checker, bundle_dir: &Path, spec: &Spec) -> Result<PathBuf, SpecError> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| checker.invalid("root", "missing, a Linux container needs root.path"))?;
    let rootfs = bundle_dir.join(root.path());
    match fs::metadata(&rootfs) {
        Ok(metadata) if metadata.is_dir() => {}
        Ok(_) => {
            return Err(checker.invalid(
                "root.path",
                format!("{} is not a directory", rootfs.display()),
            ))
        }
        Err(error) => {
            return Err(checker.invalid(
                "root.path",
                format!(
                    "{}: {}",
                    rootfs.display(),
                    crate::engine::syscall::describe(&error)
                ),
            ))
        }
    }
    fs::canonicalize(&rootfs).map_err(|error| {
        checker.invalid(
            "root.path",
            format!(
                "resolve {}: {}",
                rootfs.display(),
                crate::engine::syscall::describe(&error)
            ),
        )
    })
}

fn validate(checker: &Checker, spec: &Spec) -> Result<(), SpecError> {
    validate_process(checker, spec)?;
    let namespaces = validate_namespaces(checker, spec)?;
    validate_id_mappings(checker, spec, &namespaces)?;
    validate_uts(checker, spec, &namespaces)?;
    validate_sysctls(checker, spec, &namespaces)?;
    validate_mounts(checker, spec)?;
    validate_linux_paths(checker, spec)?;
    validate_unsupported(checker, spec)
}

fn validate_process(checker: &Checker, spec: &Spec) -> Result<(), SpecError> {
    let process = spec.process().as_ref().ok_or_else(|| {
        checker.invalid(
            "process",
            "missing, create needs the process to run in the container",
        )
    })?;
    match process.args() {
        Some(args) if !args.is_empty() => {}
        _ => {
            return Err(checker.invalid(
                "process.args",
                "empty, it needs at least the program to run",
            ))
        }
    }
    if !process.cwd().is_absolute() {
        return Err(checker.invalid(
            "process.cwd",
            format!("{:?} is not an absolute path", process.cwd()),
        ));
    }
    if let Some(env) = process.env() {
        for (index, variable) in env.iter().enumerate() {
            if !variable.contains('=') {
                return Err(checker.invalid(
                    format!("process.env[{index}]"),
                    format!("{variable:?} is not of the form NAME=VALUE"),
                ));
            }
        }
    }
    if let Some(profile) = process
        .apparmor_profile()
        .as_deref()
        .filter(|profile| !profile.is_empty())
    {
        let enabled = fs::read_to_string("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|text| text.trim() == "Y");
        if !enabled {
            return Err(checker.invalid(
                "process.apparmorProfile",
                format!("{profile:?} is set, but AppArmor is not enabled on this host; remove it"),
            ));
        }
    }
    let rlimits = process.rlimits().as_deref().unwrap_or_default();
    for (index, rlimit) in rlimits.iter().enumerate() {
        if let Some(first) = rlimits[..index]
            .iter()
            .position(|earlier| earlier.typ() == rlimit.typ())
        {
            return Err(checker.invalid(
                format!("process.rlimits[{index}].type"),
                format!(
                    "{} is set twice (also at process.rlimits[{first}])",
                    rlimit.typ()
                ),
            ));
        }
        if rlimit.soft() > rlimit.hard() {
            return Err(checker.invalid(
                format!("process.rlimits[{index}]"),
                format!(
                    "soft limit {} is above the hard limit {}",
                    rlimit.soft(),
                    rlimit.hard()
                ),
            ));
        }
    }
    Ok(())
}

/// Namespace types listed in config.json, with whether each has a path.
struct ListedNamespaces {
    listed: HashMap<LinuxNamespaceType, Option<PathBuf>>,
}

impl ListedNamespaces {
    fn contains(&self, kind: LinuxNamespaceType) -> bool {
        self.listed.contains_key(&kind)
    }

    fn creates(&self, kind: LinuxNamespaceType) -> bool {
        matches!(self.listed.get(&kind), Some(None))
    }
}

fn validate_namespaces(checker: &Checker, spec: &Spec) -> Result<ListedNamespaces, SpecError> {
    let namespaces = spec
        .linux()
        .as_ref()
        .and_then(|linux| linux.namespaces().as_deref())
        .unwrap_or_default();
    let mut listed = HashMap::new();
    let mut first_index = HashMap::new();
    for (index, namespace) in namespaces.iter().enumerate() {
        let kind = namespace.typ();
        if let Some(first) = first_index.insert(kind, index) {
            return Err(checker.invalid(
                format!("linux.namespaces[{index}].type"),
                format!(
                    "{:?} is listed twice (also at linux.namespaces[{first}])",
                    namespace_name(kind)
                ),
            ));
        }
        if let Some(path) = namespace.path() {
            if !path.is_absolute() {
                return Err(checker.invalid(
                    format!("linux.namespaces[{index}].path"),
                    format!("{} is not an absolute path", path.display()),
                ));
            }
        }
        listed.insert(kind, namespace.path().clone());
        let kernel_file = format!("/proc/self/ns/{}", proc_ns_name(kind));
        if !Path::new(&kernel_file).exists() {
            return Err(checker.invalid(
                format!("linux.namespaces[{index}].type"),
                format!(
                    "the kernel has no {:?} namespaces ({kernel_file} is missing)",
                    namespace_name(kind)
                ),
            ));
        }
    }
    if !listed.contains_key(&LinuxNamespaceType::Mount) {
        return Err(checker.invalid(
            "linux.namespaces",
            "no \"mount\" namespace: husk builds the root filesystem in a mount namespace of the container's own and never in the host's",
        ));
    }
    Ok(ListedNamespaces { listed })
}

/// The name config.json uses for a namespace type.
pub fn namespace_name(kind: LinuxNamespaceType) -> &'static str {
    match kind {
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Time => "time",
    }
}

/// The name of the namespace's file under /proc/<pid>/ns.
pub fn proc_ns_name(kind: LinuxNamespaceType) -> &'static str {
    match kind {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Network => "net",
        other => namespace_name(other),
    }
}

fn validate_id_mappings(
    checker: &Checker,
    spec: &Spec,
    namespaces: &ListedNamespaces,
) -> Result<(), SpecError> {
    let linux = spec.linux().as_ref();
    let uid_mappings = linux
        .and_then(|linux| linux.uid_mappings().as_deref())
        .unwrap_or_default();
    let gid_mappings = linux
        .and_then(|linux| linux.gid_mappings().as_deref())
        .unwrap_or_default();
    if !namespaces.contains(LinuxNamespaceType::User) {
        if !uid_mappings.is_empty() || !gid_mappings.is_empty() {
            let field = if uid_mappings.is_empty() {
                "linux.gidMappings"
            } else {
                "linux.uidMappings"
            };
            return Err(checker.invalid(
                field,
                "given, but linux.namespaces has no \"user\" namespace to map the ids in",
            ));
        }
        return Ok(());
    }
    if namespaces.creates(LinuxNamespaceType::User) {
        if uid_mappings.is_empty() {
            return Err(checker.invalid(
                "linux.uidMappings",
                "missing, a new user namespace needs its uid mappings",
            ));
        }
        if gid_mappings.is_empty() {
            return Err(checker.invalid(
                "linux.gidMappings",
                "missing, a new user namespace needs its gid mappings",
            ));
        }
        for (field, mappings) in [
            ("linux.uidMappings", uid_mappings),
            ("linux.gidMappings", gid_mappings),
        ] {
            for (index, mapping) in mappings.iter().enumerate() {
                if mapping.size() == 0 {
                    return Err(checker.invalid(format!("{field}[{index}].size"), "must not be 0"));
                }
            }
        }
    }
    Ok(())
}

fn validate_uts(
    checker: &Checker,
    spec: &Spec,
    namespaces: &ListedNamespaces,
) -> Result<(), SpecError> {
    let has_uts = namespaces.contains(LinuxNamespaceType::Uts);
    for (field, value) in [
        ("hostname", spec.hostname()),
        ("domainname", spec.domainname()),
    ] {
        if value.as_deref().is_some_and(|value| !value.is_empty()) && !has_uts {
            return Err(checker.invalid(
                field,
                "set, but linux.namespaces has no \"uts\" namespace: it would change the host's",
            ));
        }
    }
    Ok(())
}

/// runc's list of sysctls that belong to the IPC namespace
/// (libcontainer/configs/validate, sysctl).
const IPC_SYSCTLS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

fn validate_sysctls(
    checker: &Checker,
    spec: &Spec,
    namespaces: &ListedNamespaces,
) -> Result<(), SpecError> {
    let Some(sysctls) = spec
        .linux()
        .as_ref()
        .and_then(|linux| linux.sysctl().as_ref())
    else {
        return Ok(());
    };
    let mut names: Vec<&String> = sysctls.keys().collect();
    names.sort();
    for name in names {
        let field = format!("linux.sysctl.{name}");
        let key = name.replace('/', ".");
        if key.is_empty() || key.split('.').any(|part| part.is_empty() || part == "..") {
            return Err(checker.invalid(field, "not a sysctl name"));
        }
        let problem = if IPC_SYSCTLS.contains(&key.as_str()) || key.starts_with("fs.mqueue.") {
            (!namespaces.contains(LinuxNamespaceType::Ipc))
                .then_some("belongs to the IPC namespace, and linux.namespaces has no \"ipc\" one: it would change the host's")
        } else if key.starts_with("net.") {
            (!namespaces.contains(LinuxNamespaceType::Network))
                .then_some("belongs to the network namespace, and linux.namespaces has no \"network\" one: it would change the host's")
        } else if key == "kernel.domainname" && namespaces.contains(LinuxNamespaceType::Uts) {
            None
        } else if key == "kernel.hostname" && namespaces.contains(LinuxNamespaceType::Uts) {
            Some("conflicts with the \"hostname\" field; set that instead")
        } else {
            Some("is not in a separate kernel namespace: setting it would change the host")
        };
        if let Some(problem) = problem {
            return Err(checker.invalid(field, problem));
        }
    }
    Ok(())
}

/// Cleans an absolute path lexically; None when ".." would climb above "/".
pub fn clean_absolute(path: &Path) -> Option<PathBuf> {
    let mut cleaned = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                if !cleaned.pop() {
                    return None;
                }
            }
            Component::Normal(part) => cleaned.push(part),
            Component::Prefix(_) => return None,
        }
    }
    Some(cleaned)
}

fn validate_mounts(checker: &Checker, spec: &Spec) -> Result<(), SpecError> {
    for (index, mount) in spec
        .mounts()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let destination = mount.destination();
        if !destination.is_absolute() {
            return Err(checker.invalid(
                format!("mounts[{index}].destination"),
                format!("{:?} is not an absolute path", destination),
            ));
        }
        if clean_absolute(destination).is_none() {
            return Err(checker.invalid(
                format!("mounts[{index}].destination"),
                format!(
                    "{:?} climbs out of the container's root with \"..\"",
                    destination
                ),
            ));
        }
        let parsed =
            options::parse(mount.options().as_deref().unwrap_or_default()).map_err(|error| {
                checker.invalid(format!("mounts[{index}].options"), error.to_string())
            })?;
        let is_bind = parsed.is_bind() || mount.typ().as_deref() == Some("bind");
        if is_bind && mount.source().is_none() {
            return Err(checker.invalid(
                format!("mounts[{index}].source"),
                "missing, a bind mount needs the host path to bind",
            ));
        }
        if mount.uid_mappings().is_some() || mount.gid_mappings().is_some() {
            return Err(checker.invalid(
                format!("mounts[{index}].uidMappings"),
                "id-mapped mounts are not implemented; chown the source instead",
            ));
        }
        if mount.typ().is_none() && !is_bind {
            return Err(checker.invalid(
                format!("mounts[{index}].type"),
                "missing, and the options do not say \"bind\" or \"rbind\"",
            ));
        }
    }
    Ok(())
}

fn validate_linux_paths(checker: &Checker, spec: &Spec) -> Result<(), SpecError> {
    let Some(linux) = spec.linux().as_ref() else {
        return Ok(());
    };
    if let Some(cgroups_path) = linux.cgroups_path() {
        if cgroups_path
            .components()
            .any(|component| component == Component::ParentDir)
        {
            return Err(checker.invalid(
                "linux.cgroupsPath",
                format!("{} must not contain \"..\"", cgroups_path.display()),
            ));
        }
    }
    if let Some(propagation) = linux.rootfs_propagation() {
        if !propagation.is_empty() && options::parse_propagation(propagation).is_none() {
            return Err(checker.invalid(
                "linux.rootfsPropagation",
                format!("{propagation:?} is not one of private, rprivate, slave, rslave, shared, rshared, unbindable, runbindable"),
            ));
        }
    }
    for (field, paths) in [
        ("linux.maskedPaths", linux.masked_paths()),
        ("linux.readonlyPaths", linux.readonly_paths()),
    ] {
        for (index, path) in paths.as_deref().unwrap_or_default().iter().enumerate() {
            if !Path::new(path).is_absolute() || clean_absolute(Path::new(path)).is_none() {
                return Err(checker.invalid(
                    format!("{field}[{index}]"),
                    format!("{path:?} is not an absolute path inside the container"),
                ));
            }
        }
    }
    for (index, device) in linux
        .devices()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let path = device.path();
        if !path.is_absolute() || clean_absolute(path).is_none() {
            return Err(checker.invalid(
                format!("linux.devices[{index}].path"),
                format!(
                    "{} is not an absolute path inside the container",
                    path.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Settings husk cannot honour yet; refusing is better than ignoring them
/// (runtime-spec config.md: a runtime that cannot apply a setting errors).
fn validate_unsupported(checker: &Checker, spec: &Spec) -> Result<(), SpecError> {
    if let Some(linux) = spec.linux().as_ref() {
        let unsupported = [
            ("linux.intelRdt", linux.intel_rdt().is_some()),
            ("linux.netDevices", linux.net_devices().is_some()),
            ("linux.memoryPolicy", linux.memory_policy().is_some()),
            ("linux.personality", linux.personality().is_some()),
            (
                "linux.timeOffsets",
                linux
                    .time_offsets()
                    .as_ref()
                    .is_some_and(|offsets| !offsets.is_empty()),
            ),
        ];
        if let Some((field, _)) = unsupported.iter().find(|(_, present)| *present) {
            return Err(checker.invalid(*field, "not supported by husk; remove it"));
        }
    }
    if let Some(process) = spec.process().as_ref() {
        let unsupported = [
            ("process.ioPriority", process.io_priority().is_some()),
            ("process.scheduler", process.scheduler().is_some()),
            (
                "process.execCPUAffinity",
                process.exec_cpu_affinity().is_some(),
            ),
        ];
        if let Some((field, _)) = unsupported.iter().find(|(_, present)| *present) {
            return Err(checker.invalid(*field, "not supported by husk; remove it"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::engine::test_bundle::TestDir;

    /// A bundle directory with a rootfs and the given config.json, removed
    /// on drop. Unlike the engine's shared `TestBundle`, not loaded: the
    /// tests here check what loading it says.
    fn bundle_dir(name: &str, config: &Value) -> TestDir {
        let dir = TestDir::new(&format!("spec-{name}"));
        fs::create_dir_all(dir.join("rootfs")).unwrap();
        fs::write(dir.join("config.json"), serde_json::to_vec(config).unwrap()).unwrap();
        dir
    }

    fn base_config() -> Value {
        json!({
            "ociVersion": "1.3.0",
            "root": {"path": "rootfs"},
            "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}]}
        })
    }

    fn load_error(name: &str, config: Value) -> String {
        let bundle = bundle_dir(name, &config);
        let error = load_bundle(bundle.path()).expect_err("config should be refused");
        error.to_string()
    }

    fn with(mut config: Value, pointer: &str, value: Value) -> Value {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let parent = if parent.is_empty() {
            &mut config
        } else {
            config.pointer_mut(parent).unwrap()
        };
        parent[key] = value;
        config
    }

    #[test]
    fn a_valid_bundle_loads_with_its_rootfs_resolved() {
        let bundle = bundle_dir("valid", &base_config());
        let loaded = load_bundle(bundle.path()).unwrap();
        assert_eq!(
            loaded.rootfs,
            fs::canonicalize(bundle.join("rootfs")).unwrap()
        );
        assert_eq!(loaded.process().args().as_ref().unwrap(), &["sh"]);
        assert!(loaded.has_namespace(LinuxNamespaceType::Pid));
        assert!(!loaded.has_namespace(LinuxNamespaceType::Network));
    }

    #[test]
    fn unknown_namespace_type_names_the_field() {
        let config = with(
            base_config(),
            "/linux/namespaces",
            json!([{"type": "pid"}, {"type": "mount"}, {"type": "foo"}]),
        );
        let message = load_error("ns-type", config);
        assert!(message.ends_with(
            "config.json: linux.namespaces[2].type: unknown namespace type \"foo\"; known: pid, network, mount, ipc, uts, user, cgroup, time"
        ), "{message}");
    }

    #[test]
    fn missing_root_is_named() {
        let mut config = base_config();
        config.as_object_mut().unwrap().remove("root");
        let message = load_error("no-root", config);
        assert!(
            message.ends_with("config.json: root: missing, a Linux container needs root.path"),
            "{message}"
        );
    }

    #[test]
    fn root_path_that_does_not_exist_is_named() {
        let config = with(base_config(), "/root", json!({"path": "nowhere"}));
        let message = load_error("root-missing", config);
        assert!(message.contains("config.json: root.path: "), "{message}");
        assert!(
            message.contains("nowhere: No such file or directory"),
            "{message}"
        );
    }

    #[test]
    fn duplicate_namespaces_are_refused() {
        let config = with(
            base_config(),
            "/linux/namespaces",
            json!([{"type": "mount"}, {"type": "pid"}, {"type": "pid"}]),
        );
        let message = load_error("ns-dup", config);
        assert!(
            message.contains(
                "linux.namespaces[2].type: \"pid\" is listed twice (also at linux.namespaces[1])"
            ),
            "{message}"
        );
    }

    #[test]
    fn user_namespace_needs_mappings_and_mappings_need_it() {
        let config = with(
            base_config(),
            "/linux/namespaces",
            json!([{"type": "mount"}, {"type": "user"}]),
        );
        let message = load_error("userns-nomap", config);
        assert!(message.contains("linux.uidMappings: missing"), "{message}");

        let config = with(
            base_config(),
            "/linux/uidMappings",
            json!([{"containerID": 0, "hostID": 1000, "size": 1}]),
        );
        let message = load_error("map-nouserns", config);
        assert!(
            message.contains("linux.uidMappings: given, but linux.namespaces has no \"user\""),
            "{message}"
        );
    }

    #[test]
    fn wrong_types_report_the_field_path() {
        let config = with(
            base_config(),
            "/process/user",
            json!({"uid": "root", "gid": 0}),
        );
        let message = load_error("wrong-type", config);
        assert!(
            message.contains("config.json: process.user.uid: invalid type: string \"root\""),
            "{message}"
        );
    }

    #[test]
    fn unknown_capability_names_the_set_and_index() {
        let config = with(
            base_config(),
            "/process/capabilities",
            json!({"bounding": ["CAP_CHOWN", "CAP_FLY"]}),
        );
        let message = load_error("cap", config);
        assert!(
            message.ends_with("process.capabilities.bounding[1]: unknown capability \"CAP_FLY\""),
            "{message}"
        );
    }

    #[test]
    fn process_needs_args_and_absolute_cwd() {
        let config = with(base_config(), "/process/args", json!([]));
        assert!(load_error("noargs", config).contains("process.args: empty"));
        let config = with(base_config(), "/process/cwd", json!("work"));
        assert!(
            load_error("relcwd", config).contains("process.cwd: \"work\" is not an absolute path")
        );
        let mut config = base_config();
        config.as_object_mut().unwrap().remove("process");
        assert!(load_error("noproc", config).contains("process: missing"));
    }

    #[test]
    fn mount_destinations_must_stay_inside_the_root() {
        let config = with(
            base_config(),
            "/mounts",
            json!([{"destination": "/../../etc", "type": "tmpfs", "source": "tmpfs"}]),
        );
        let message = load_error("mount-escape", config);
        assert!(
            message.contains("mounts[0].destination: \"/../../etc\" climbs out"),
            "{message}"
        );
        let config = with(
            base_config(),
            "/mounts",
            json!([{"destination": "data", "type": "tmpfs", "source": "tmpfs"}]),
        );
        assert!(load_error("mount-relative", config)
            .contains("mounts[0].destination: \"data\" is not an absolute path"));
    }

    #[test]
    fn tmpcopyup_is_refused_at_load() {
        let config = with(
            base_config(),
            "/mounts",
            json!([{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup"]}]),
        );
        let message = load_error("tmpcopyup", config);
        assert!(
            message.contains("mounts[0].options: \"tmpcopyup\" is not supported"),
            "{message}"
        );
    }

    #[test]
    fn sysctls_outside_the_container_namespaces_are_refused() {
        let config = with(
            base_config(),
            "/linux/sysctl",
            json!({"net.ipv4.ip_forward": "1"}),
        );
        let message = load_error("sysctl-net", config);
        assert!(
            message.contains("linux.sysctl.net.ipv4.ip_forward: belongs to the network namespace"),
            "{message}"
        );
        let config = with(
            base_config(),
            "/linux/sysctl",
            json!({"vm.swappiness": "1"}),
        );
        assert!(load_error("sysctl-vm", config).contains("is not in a separate kernel namespace"));
        let config = with(
            base_config(),
            "/linux/sysctl",
            json!({"kernel.hostname": "x"}),
        );
        assert!(
            load_error("sysctl-hostname", config).contains("conflicts with the \"hostname\" field")
        );
    }

    #[test]
    fn hostname_needs_a_uts_namespace() {
        let config = with(
            base_config(),
            "/linux/namespaces",
            json!([{"type": "mount"}]),
        );
        let config = with(config, "/hostname", json!("box"));
        assert!(load_error("hostname", config)
            .contains("hostname: set, but linux.namespaces has no \"uts\""));
    }

    #[test]
    fn a_mount_namespace_is_required() {
        let config = with(base_config(), "/linux/namespaces", json!([{"type": "pid"}]));
        assert!(load_error("no-mntns", config).contains("linux.namespaces: no \"mount\" namespace"));
    }

    #[test]
    fn other_major_versions_are_refused_and_1x_accepted() {
        let config = with(base_config(), "/ociVersion", json!("2.0.0"));
        assert!(
            load_error("version", config).contains("ociVersion: \"2.0.0\" is not a 1.x version")
        );
        let bundle = bundle_dir(
            "version-ok",
            &with(base_config(), "/ociVersion", json!("1.0.2-dev")),
        );
        load_bundle(bundle.path()).unwrap();
    }

    #[test]
    fn syntax_errors_say_where() {
        let bundle = bundle_dir("syntax", &base_config());
        fs::write(bundle.join("config.json"), "{\"root\": ").unwrap();
        let error = load_bundle(bundle.path()).unwrap_err();
        assert!(matches!(error, SpecError::Syntax { .. }));
        assert!(error.to_string().ends_with("config.json: not valid JSON"));
    }
}
