//! Loading a bundle: config.json read, parsed and checked the way runc
//! checks it (libcontainer/configs/validate), before anything is created.
//! Every error names the file and the JSON field, for example
//! `/b/config.json: linux.namespaces[2].type: unknown namespace type "foo"`.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{Capability, LinuxNamespaceType, Mount, Process, Spec};
use serde_json::Value;

use crate::engine::cgroups::{self, CgroupError};
use crate::engine::hooks::{self, HookError};
use crate::engine::rootfs::options;
use crate::engine::syscall::describe;

/// The largest config.json husk reads. Real ones are tens of KiB; the
/// biggest a container could use is bounded by execve(2), which takes at
/// most [`MAX_EXEC_BYTES`] of arguments and environment. The bound keeps a
/// huge file from being read into memory whole.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// The longest single argument or environment string execve(2) takes,
/// its terminating NUL included: MAX_ARG_STRLEN, 32 pages
/// (include/uapi/linux/binfmts.h).
pub const MAX_EXEC_STRING_BYTES: usize = 32 * 4096;

/// The most that the arguments and environment of execve(2) may take,
/// strings and pointers together: a quarter of RLIMIT_STACK, but never more
/// than 3/4 of the kernel's 8 MiB _STK_LIM, whatever the limit
/// (fs/exec.c, bprm_stack_limits). Beyond this the exec fails with E2BIG on
/// every host.
pub const MAX_EXEC_BYTES: usize = 6 << 20;

/// How deep serde_json lets JSON nest before it stops (its recursion
/// limit); no field of config.json nests more than a few levels.
const MAX_JSON_DEPTH: usize = 128;

/// /proc/<pid>/oom_score_adj takes -1000 to 1000 (proc(5)).
const OOM_SCORE_ADJ_RANGE: std::ops::RangeInclusive<i32> = -1000..=1000;

/// The longest host or domain name the kernel takes (__NEW_UTS_LEN,
/// sethostname(2), setdomainname(2)).
const MAX_UTS_NAME_BYTES: usize = 64;

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
    #[error(
        "{}: not a regular file but {kind}; the bundle's config.json must be a file",
        path.display()
    )]
    NotAFile { path: PathBuf, kind: &'static str },
    #[error(
        "{}: larger than {MAX_CONFIG_BYTES} bytes, which no container can use (execve(2) \
         takes at most {MAX_EXEC_BYTES} bytes of arguments and environment); is this the \
         right file?",
        path.display()
    )]
    TooLarge { path: PathBuf },
    #[error(
        "{}: line {line} column {column}: not UTF-8 text; JSON is UTF-8 (RFC 8259), save the \
         file as UTF-8",
        path.display()
    )]
    NotUtf8 {
        path: PathBuf,
        line: usize,
        column: usize,
    },
    #[error("{}: not valid JSON", path.display())]
    Syntax {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "{}: line {line} column {column}: nested more than {MAX_JSON_DEPTH} levels deep; no \
         field of config.json nests that deep (runtime-spec config.md)",
        path.display()
    )]
    TooDeep {
        path: PathBuf,
        line: usize,
        column: usize,
    },
    #[error(
        "{}: the top level is {found}, not a JSON object; config.json holds one object with \
         ociVersion, root, process, ... (runtime-spec config.md)",
        path.display()
    )]
    NotAnObject { path: PathBuf, found: &'static str },
    #[error("{}: {field}: {problem}", path.display())]
    Invalid {
        path: PathBuf,
        field: String,
        problem: String,
    },
    /// The hooks module's errors name the field themselves.
    #[error("{}", path.display())]
    Hooks {
        path: PathBuf,
        /// Boxed: hook errors carry a hook's output and are large.
        #[source]
        source: Box<HookError>,
    },
    /// So do the cgroups module's.
    #[error("{}", path.display())]
    Resources {
        path: PathBuf,
        #[source]
        source: CgroupError,
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
    let text = read_config(&config_path)?;
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

/// Reads config.json: a regular file (a FIFO or a device could block or
/// never end) of at most [`MAX_CONFIG_BYTES`], in UTF-8.
fn read_config(config_path: &Path) -> Result<String, SpecError> {
    let read_error = |source| SpecError::Read {
        path: config_path.to_path_buf(),
        source,
    };
    // O_NONBLOCK: opening a FIFO must not wait for a writer; a regular
    // file ignores the flag (open(2)).
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(config_path)
        .map_err(read_error)?;
    let file_type = file.metadata().map_err(read_error)?.file_type();
    if !file_type.is_file() {
        return Err(SpecError::NotAFile {
            path: config_path.to_path_buf(),
            kind: file_kind(file_type),
        });
    }
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(SpecError::TooLarge {
            path: config_path.to_path_buf(),
        });
    }
    String::from_utf8(bytes).map_err(|error| {
        let valid = &error.as_bytes()[..error.utf8_error().valid_up_to()];
        let line_start = valid
            .iter()
            .rposition(|byte| *byte == b'\n')
            .map_or(0, |newline| newline + 1);
        SpecError::NotUtf8 {
            path: config_path.to_path_buf(),
            line: valid.iter().filter(|byte| **byte == b'\n').count() + 1,
            column: valid.len() - line_start + 1,
        }
    })
}

/// What a file that is not a regular file is, for the error.
fn file_kind(file_type: fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

/// Parses config.json text. Fields whose serde error would be cryptic are
/// checked first on the raw JSON; the rest report serde's message with the
/// path of the field.
pub fn parse_config(config_path: &Path, text: &str) -> Result<Spec, SpecError> {
    let checker = Checker { path: config_path };
    // serde_json stops at MAX_JSON_DEPTH levels, so hostile nesting ends
    // in an error here rather than in a stack overflow.
    let value: Value = serde_json::from_str(text).map_err(|source| {
        if source.to_string().starts_with("recursion limit exceeded") {
            SpecError::TooDeep {
                path: config_path.to_path_buf(),
                line: source.line(),
                column: source.column(),
            }
        } else {
            SpecError::Syntax {
                path: config_path.to_path_buf(),
                source,
            }
        }
    })?;
    check_raw(&checker, &value)?;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let error = error.into_inner();
        let message = error.to_string();
        // A key given twice fails at the object holding it; name the key.
        if let Some(key) = message
            .strip_prefix("duplicate field `")
            .and_then(|rest| rest.split_once('`'))
            .map(|(key, _)| key)
        {
            let field = if path == "." {
                key.to_owned()
            } else {
                format!("{path}.{key}")
            };
            return checker.invalid(
                field,
                format!(
                    "given twice (the second time at line {} column {}); give it once",
                    error.line(),
                    error.column()
                ),
            );
        }
        checker.invalid(path, message)
    })
}

/// The name JSON gives the type of a value, for errors.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn check_raw(checker: &Checker, value: &Value) -> Result<(), SpecError> {
    if !value.is_object() {
        return Err(SpecError::NotAnObject {
            path: checker.path.to_path_buf(),
            found: json_type(value),
        });
    }
    // runtime-spec config.md: ociVersion is REQUIRED (oci-spec would fill
    // in a default and hide that it is missing). A value that is not a
    // string is left to serde's type error.
    match value.get("ociVersion") {
        None => {
            return Err(checker.invalid(
                "ociVersion",
                "missing; the runtime-spec requires it: add the version the config follows, \
                 such as \"1.0.2\"",
            ))
        }
        Some(Value::String(version)) if !version.starts_with("1.") => {
            return Err(checker.invalid(
                "ociVersion",
                format!("{version:?} is not a 1.x version of the runtime spec, which is what husk implements"),
            ));
        }
        Some(_) => {}
    }
    match value.get("root") {
        None | Some(Value::Null) => {
            return Err(checker.invalid("root", "missing, a Linux container needs root.path"))
        }
        Some(root) if root.is_object() => match root.get("path") {
            None | Some(Value::Null) => {
                return Err(checker.invalid(
                    "root.path",
                    "missing, a Linux container needs the path of its root filesystem",
                ))
            }
            Some(Value::String(path)) if path.is_empty() => {
                return Err(checker.invalid(
                    "root.path",
                    "empty, a Linux container needs the path of its root filesystem",
                ))
            }
            Some(_) => {}
        },
        Some(_) => {}
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
    if root.path().is_relative() && climbs_out(root.path()) {
        return Err(checker.invalid(
            "root.path",
            format!(
                "{:?} climbs out of the bundle directory with \"..\"; a relative root.path is \
                 inside the bundle (runtime-spec config.md \"Root\"): give a path inside it, or \
                 an absolute path",
                root.path()
            ),
        ));
    }
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
                format!("{}: {}", rootfs.display(), describe(&error)),
            ))
        }
    }
    fs::canonicalize(&rootfs).map_err(|error| {
        checker.invalid(
            "root.path",
            format!("resolve {}: {}", rootfs.display(), describe(&error)),
        )
    })
}

/// Whether a relative path, read lexically, climbs above the directory it
/// is relative to ("../x", "a/../../x").
fn climbs_out(relative: &Path) -> bool {
    let mut depth = 0usize;
    for component in relative.components() {
        match component {
            Component::ParentDir => match depth.checked_sub(1) {
                Some(up) => depth = up,
                None => return true,
            },
            Component::Normal(_) => depth += 1,
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    false
}

fn validate(checker: &Checker, spec: &Spec) -> Result<(), SpecError> {
    validate_process(checker, spec)?;
    let namespaces = validate_namespaces(checker, spec)?;
    validate_id_mappings(checker, spec, &namespaces)?;
    validate_uts(checker, spec, &namespaces)?;
    validate_sysctls(checker, spec, &namespaces)?;
    validate_mounts(checker, spec)?;
    validate_linux_paths(checker, spec)?;
    validate_resources(checker, spec)?;
    validate_hooks(checker, spec)?;
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
    if process.cwd().as_os_str().as_encoded_bytes().contains(&0) {
        return Err(checker.invalid("process.cwd", "contains a NUL byte, which no path can hold"));
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
    validate_exec_strings(checker, process)?;
    if let Some(adjustment) = process
        .oom_score_adj()
        .filter(|adjustment| !OOM_SCORE_ADJ_RANGE.contains(adjustment))
    {
        return Err(checker.invalid(
            "process.oomScoreAdj",
            format!(
                "{adjustment} is out of range; /proc/PID/oom_score_adj takes {} to {} (proc(5))",
                OOM_SCORE_ADJ_RANGE.start(),
                OOM_SCORE_ADJ_RANGE.end()
            ),
        ));
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

/// Checks process.args and process.env against what execve(2) takes: no
/// NUL inside a string (it would end the string), each string within
/// [`MAX_EXEC_STRING_BYTES`], all of them within [`MAX_EXEC_BYTES`].
/// Otherwise the exec fails with E2BIG on every host, at `start`, long
/// after `create` said yes.
fn validate_exec_strings(checker: &Checker, process: &Process) -> Result<(), SpecError> {
    let args = process.args().as_deref().unwrap_or_default();
    let env = process.env().as_deref().unwrap_or_default();
    let mut totals = [0usize; 2];
    for ((field, strings), total) in [("process.args", args), ("process.env", env)]
        .into_iter()
        .zip(&mut totals)
    {
        for (index, string) in strings.iter().enumerate() {
            if string.contains('\0') {
                return Err(checker.invalid(
                    format!("{field}[{index}]"),
                    "contains a NUL byte, which would cut the string short at exec; remove it",
                ));
            }
            // The string, its NUL and its pointer in argv or envp.
            let bytes = string.len() + 1;
            if bytes > MAX_EXEC_STRING_BYTES {
                return Err(checker.invalid(
                    format!("{field}[{index}]"),
                    format!(
                        "{} bytes long; execve(2) takes strings of at most {} bytes \
                         (MAX_ARG_STRLEN); pass large data in a file instead",
                        string.len(),
                        MAX_EXEC_STRING_BYTES - 1
                    ),
                ));
            }
            *total += bytes + std::mem::size_of::<usize>();
        }
    }
    let [args_bytes, env_bytes] = totals;
    if args_bytes + env_bytes > MAX_EXEC_BYTES {
        let field = if env_bytes >= args_bytes {
            "process.env"
        } else {
            "process.args"
        };
        return Err(checker.invalid(
            field,
            format!(
                "the arguments ({args_bytes} bytes) and the environment ({env_bytes} bytes) \
                 together are more than the {MAX_EXEC_BYTES} bytes execve(2) takes on any host \
                 (fs/exec.c); pass large data in a file instead"
            ),
        ));
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
            // runtime-spec config-linux.md: a path that is not a namespace
            // of that type is an error. Whether it is one shows at setns(2);
            // one that does not exist at all is refused here, before
            // anything is made. (One this process may not look at is left
            // to setns, or to the vm backend, which never joins it.)
            let missing = match fs::metadata(path) {
                Err(error)
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                    ) =>
                {
                    Some(error)
                }
                _ => None,
            };
            if let Some(error) = missing {
                return Err(checker.invalid(
                    format!("linux.namespaces[{index}].path"),
                    format!(
                        "{}: {}; give the namespace of a running process \
                         (/proc/PID/ns/{}) or a bind mount of one, or leave out \"path\" for a \
                         new namespace",
                        path.display(),
                        describe(&error),
                        proc_ns_name(kind)
                    ),
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
        let Some(value) = value.as_deref().filter(|value| !value.is_empty()) else {
            continue;
        };
        if !has_uts {
            return Err(checker.invalid(
                field,
                "set, but linux.namespaces has no \"uts\" namespace: it would change the host's",
            ));
        }
        if value.len() > MAX_UTS_NAME_BYTES || value.contains('\0') {
            return Err(checker.invalid(
                field,
                format!(
                    "{} bytes{}; the kernel takes names of at most {MAX_UTS_NAME_BYTES} bytes \
                     without NUL (sethostname(2), setdomainname(2))",
                    value.len(),
                    if value.contains('\0') {
                        " with a NUL byte"
                    } else {
                        ""
                    }
                ),
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
        if is_bind {
            let Some(source) = mount.source() else {
                return Err(checker.invalid(
                    format!("mounts[{index}].source"),
                    "missing, a bind mount needs the host path to bind",
                ));
            };
            // A relative source is relative to the bundle (runc resolves it
            // there); one that climbs out names some host path by accident
            // or on purpose. An absolute path says which host path it means.
            if source.is_relative() && climbs_out(source) {
                return Err(checker.invalid(
                    format!("mounts[{index}].source"),
                    format!(
                        "{source:?} climbs out of the bundle directory with \"..\"; give the host \
                         path to bind as an absolute path"
                    ),
                ));
            }
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
        // The cgroups module's own rules, checked before anything is made;
        // the id does not matter for a path that is given.
        let cgroups_path = cgroups_path.to_string_lossy();
        if let Err(CgroupError::InvalidCgroupsPath { path, reason }) =
            cgroups::container_cgroup_path(Some(&cgroups_path), "-")
        {
            return Err(checker.invalid("linux.cgroupsPath", format!("{path:?} {reason}")));
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
        let Some(cleaned) = clean_absolute(path).filter(|_| path.is_absolute()) else {
            return Err(checker.invalid(
                format!("linux.devices[{index}].path"),
                format!(
                    "{} is not an absolute path inside the container",
                    path.display()
                ),
            ));
        };
        // husk makes device nodes under /dev only: one anywhere else would
        // stand in for a file of the image (an /etc/passwd that is a disk).
        if cleaned == Path::new("/dev") || !cleaned.starts_with("/dev") {
            return Err(checker.invalid(
                format!("linux.devices[{index}].path"),
                format!(
                    "{} is outside /dev; device nodes go under /dev",
                    path.display()
                ),
            ));
        }
    }
    Ok(())
}

/// `linux.resources` values that no host takes, by the cgroups module's
/// rules; refused here rather than when the cgroup is created (which, for
/// a VM, happens inside the guest).
fn validate_resources(checker: &Checker, spec: &Spec) -> Result<(), SpecError> {
    let Some(resources) = spec
        .linux()
        .as_ref()
        .and_then(|linux| linux.resources().as_ref())
    else {
        return Ok(());
    };
    cgroups::check_resources(resources).map_err(|source| SpecError::Resources {
        path: checker.path.to_path_buf(),
        source,
    })
}

/// Every stage's hooks, checked now rather than when their stage comes:
/// a poststart hook with a relative path would otherwise pass `create`.
fn validate_hooks(checker: &Checker, spec: &Spec) -> Result<(), SpecError> {
    let Some(spec_hooks) = spec.hooks().as_ref() else {
        return Ok(());
    };
    hooks::check_hooks(spec_hooks).map_err(|source| SpecError::Hooks {
        path: checker.path.to_path_buf(),
        source: Box::new(source),
    })
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

    /// The whole error chain of loading `config`, as husk prints it.
    fn load_chain(name: &str, config: Value) -> String {
        let bundle = bundle_dir(name, &config);
        let error = load_bundle(bundle.path()).expect_err("config should be refused");
        crate::engine::error_chain(&error)
    }

    /// The error of loading a bundle whose config.json holds `text`.
    fn load_text_error(name: &str, text: impl AsRef<[u8]>) -> SpecError {
        let bundle = bundle_dir(name, &base_config());
        fs::write(bundle.join("config.json"), text).unwrap();
        load_bundle(bundle.path()).expect_err("config should be refused")
    }

    #[test]
    fn a_relative_root_path_stays_inside_the_bundle() {
        let config = with(base_config(), "/root/path", json!("../../../../etc"));
        let message = load_error("root-escape", config);
        assert!(
            message.contains("root.path: \"../../../../etc\" climbs out of the bundle directory"),
            "{message}"
        );
        let config = with(base_config(), "/root/path", json!("rootfs/../rootfs/."));
        let bundle = bundle_dir("root-dots", &config);
        load_bundle(bundle.path()).unwrap();
    }

    #[test]
    fn root_and_oci_version_must_be_there_and_of_their_type() {
        let mut config = base_config();
        config.as_object_mut().unwrap().remove("ociVersion");
        assert!(load_error("no-version", config).ends_with(
            "config.json: ociVersion: missing; the runtime-spec requires it: add the version \
             the config follows, such as \"1.0.2\""
        ));
        let config = with(base_config(), "/root", json!({"readonly": true}));
        assert!(load_error("no-root-path", config).contains("root.path: missing"));
        let config = with(base_config(), "/root/path", json!(7));
        assert!(
            load_error("root-path-number", config).contains("root.path: invalid type: integer `7`")
        );
        let config = with(base_config(), "/root", json!("rootfs"));
        assert!(load_error("root-string", config).contains("root: invalid type: string"));
    }

    #[test]
    fn a_key_given_twice_is_named_with_its_path() {
        let error = load_text_error(
            "duplicate",
            r#"{"ociVersion": "1.0.2", "root": {"path": "rootfs"},
                "process": {"args": ["sh"], "args": ["ls"], "cwd": "/"}}"#,
        );
        let message = error.to_string();
        assert!(
            message.ends_with(
                "config.json: process.args: given twice (the second time at line 2 column 50); \
                 give it once"
            ),
            "{message}"
        );
    }

    #[test]
    fn the_top_level_must_be_an_object() {
        for (text, found) in [("null", "null"), ("[1]", "an array"), ("\"x\"", "a string")] {
            let message = load_text_error("top-level", text).to_string();
            assert!(
                message.contains(&format!(
                    "config.json: the top level is {found}, not a JSON object"
                )),
                "{message}"
            );
        }
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        let depth = 100_000;
        let text = format!(
            "{{\"ociVersion\": \"1.0.2\", \"annotations\": {}{}}}",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let error = load_text_error("deep", text);
        assert!(
            matches!(error, SpecError::TooDeep { line: 1, .. }),
            "{error:?}"
        );
        assert!(error
            .to_string()
            .contains("nested more than 128 levels deep"));
    }

    #[test]
    fn bytes_that_are_not_utf8_are_located() {
        let error = load_text_error("utf8", b"{\n  \"hostname\": \"r\xffnc\"\n}".as_slice());
        assert_eq!(
            error.to_string().rsplit_once("config.json: ").unwrap().1,
            "line 2 column 17: not UTF-8 text; JSON is UTF-8 (RFC 8259), save the file as UTF-8"
        );
    }

    #[test]
    fn config_json_must_be_a_regular_file_of_bounded_size() {
        let bundle = bundle_dir("not-a-file", &base_config());
        let config = bundle.join("config.json");
        fs::remove_file(&config).unwrap();
        fs::create_dir(&config).unwrap();
        let message = load_bundle(bundle.path()).unwrap_err().to_string();
        assert!(
            message.ends_with("config.json: not a regular file but a directory; the bundle's config.json must be a file"),
            "{message}"
        );
        fs::remove_dir(&config).unwrap();
        // A device that never ends is not read at all.
        std::os::unix::fs::symlink("/dev/zero", &config).unwrap();
        let message = load_bundle(bundle.path()).unwrap_err().to_string();
        assert!(
            message.contains("not a regular file but a character device"),
            "{message}"
        );
        fs::remove_file(&config).unwrap();
        let file = fs::File::create(&config).unwrap();
        file.set_len(MAX_CONFIG_BYTES + 1).unwrap();
        let error = load_bundle(bundle.path()).unwrap_err();
        assert!(matches!(error, SpecError::TooLarge { .. }), "{error:?}");
    }

    #[test]
    fn arguments_and_environment_must_fit_execve() {
        let config = with(base_config(), "/process/args", json!(["sh", "-c\u{0}x"]));
        assert!(load_error("nul", config).contains("process.args[1]: contains a NUL byte"));

        let long = format!("BIG={}", "x".repeat(MAX_EXEC_STRING_BYTES));
        let config = with(base_config(), "/process/env", json!(["A=1", long]));
        let message = load_error("long-string", config);
        assert!(
            message.contains(&format!(
                "process.env[1]: {} bytes long; execve(2) takes strings of at most 131071 bytes",
                MAX_EXEC_STRING_BYTES + 4
            )),
            "{message}"
        );
        // The longest string execve takes is fine.
        let longest = format!("BIG={}", "x".repeat(MAX_EXEC_STRING_BYTES - 5));
        let bundle = bundle_dir(
            "longest",
            &with(base_config(), "/process/env", json!([longest])),
        );
        load_bundle(bundle.path()).unwrap();

        let chunk = "y".repeat(100_000);
        let env: Vec<String> = (0..64).map(|index| format!("V{index}={chunk}")).collect();
        let message = load_error("total", with(base_config(), "/process/env", json!(env)));
        assert!(
            message.contains("process.env: the arguments (")
                && message.contains("more than the 6291456 bytes execve(2) takes on any host"),
            "{message}"
        );
    }

    #[test]
    fn process_and_uts_values_the_kernel_refuses() {
        let config = with(base_config(), "/process/oomScoreAdj", json!(-1001));
        assert!(load_error("oom", config)
            .contains("process.oomScoreAdj: -1001 is out of range; /proc/PID/oom_score_adj takes -1000 to 1000"));
        let config = with(base_config(), "/process/oomScoreAdj", json!(1000));
        load_bundle(bundle_dir("oom-max", &config).path()).unwrap();

        let config = with(base_config(), "/hostname", json!("h".repeat(65)));
        assert!(load_error("hostname", config)
            .contains("hostname: 65 bytes; the kernel takes names of at most 64 bytes"));
        let config = with(base_config(), "/domainname", json!("d\u{0}"));
        assert!(load_error("domainname", config).contains("domainname: 2 bytes with a NUL byte"));
        let config = with(base_config(), "/hostname", json!("h".repeat(64)));
        load_bundle(bundle_dir("hostname-max", &config).path()).unwrap();
    }

    #[test]
    fn a_namespace_path_must_exist() {
        let config = with(
            base_config(),
            "/linux/namespaces",
            json!([{"type": "pid"}, {"type": "mount"}, {"type": "network", "path": "/proc/self/ns/nope"}]),
        );
        let message = load_error("ns-path", config);
        assert!(
            message.contains(
                "linux.namespaces[2].path: /proc/self/ns/nope: No such file or directory; give \
                 the namespace of a running process (/proc/PID/ns/net)"
            ),
            "{message}"
        );
        let config = with(
            base_config(),
            "/linux/namespaces",
            json!([{"type": "mount"}, {"type": "network", "path": "/proc/self/ns/net"}]),
        );
        load_bundle(bundle_dir("ns-path-ok", &config).path()).unwrap();
    }

    #[test]
    fn a_relative_bind_source_stays_inside_the_bundle() {
        let bind = |source: &str| {
            with(
                base_config(),
                "/mounts",
                json!([{"destination": "/data", "type": "bind", "source": source, "options": ["rbind"]}]),
            )
        };
        let message = load_error("bind-escape", bind("data/../../../etc"));
        assert!(
            message.contains(
                "mounts[0].source: \"data/../../../etc\" climbs out of the bundle directory"
            ),
            "{message}"
        );
        load_bundle(bundle_dir("bind-inside", &bind("rootfs/../rootfs")).path()).unwrap();
        load_bundle(bundle_dir("bind-absolute", &bind("/etc")).path()).unwrap();
    }

    #[test]
    fn cgroups_paths_and_device_paths_are_checked_before_anything_is_made() {
        let config = with(base_config(), "/linux/cgroupsPath", json!("/"));
        assert!(load_error("cgroup-root", config)
            .contains("linux.cgroupsPath: \"/\" names the root cgroup"));
        let config = with(base_config(), "/linux/cgroupsPath", json!("/a/../../b"));
        assert!(load_error("cgroup-escape", config)
            .contains("linux.cgroupsPath: \"/a/../../b\" contains a \"..\" component"));

        let device = |path: &str| {
            with(
                base_config(),
                "/linux/devices",
                json!([{"path": path, "type": "c", "major": 1, "minor": 3}]),
            )
        };
        assert!(load_error("device-etc", device("/etc/shadow"))
            .contains("linux.devices[0].path: /etc/shadow is outside /dev"));
        assert!(load_error("device-dev", device("/dev"))
            .contains("linux.devices[0].path: /dev is outside /dev"));
        assert!(load_error("device-climb", device("/dev/../etc/x"))
            .contains("linux.devices[0].path: /dev/../etc/x is outside /dev"));
        load_bundle(bundle_dir("device-ok", &device("/dev/null2")).path()).unwrap();
    }

    #[test]
    fn resources_no_host_takes_are_refused_naming_the_field() {
        let config = with(
            base_config(),
            "/linux/resources",
            json!({"memory": {"limit": -2}}),
        );
        assert!(load_chain("memory", config).ends_with(
            "config.json: linux.resources.memory.limit: -2 is not a byte count; use -1 for no limit"
        ));
        let config = with(
            base_config(),
            "/linux/resources",
            json!({"cpu": {"quota": -7}}),
        );
        assert!(load_chain("quota", config).contains("linux.resources.cpu.quota: -7"));
        let config = with(
            base_config(),
            "/linux/resources",
            json!({"devices": [{"allow": true, "type": "c", "access": "rwx"}]}),
        );
        assert!(load_chain("device-rule", config)
            .contains("linux.resources.devices[0].access: \"rwx\" is not a combination"));
        let config = with(
            base_config(),
            "/linux/resources",
            json!({"memory": {"limit": -1, "swap": -1}, "cpu": {"quota": -1}}),
        );
        load_bundle(bundle_dir("unlimited", &config).path()).unwrap();
    }

    #[test]
    fn every_stage_s_hooks_are_checked_at_load() {
        let config = with(
            base_config(),
            "/hooks",
            json!({"poststop": [{"path": "/bin/true"}, {"path": "bin/cleanup"}]}),
        );
        assert!(load_chain("hook-path", config).ends_with(
            "config.json: hooks.poststop[1].path: \"bin/cleanup\" is not absolute; give the full path"
        ));
        let config = with(
            base_config(),
            "/hooks",
            json!({"startContainer": [{"path": "/bin/true", "timeout": -3}]}),
        );
        assert!(load_chain("hook-timeout", config)
            .contains("hooks.startContainer[0].timeout: -3; it must be greater than zero"));
    }
}
