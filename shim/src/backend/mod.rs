//! What runs a container: the [`Backend`] trait, one method per thing the
//! verbs ask of a container, and its two implementations: `vm` (each
//! container in its own KVM virtual machine, the default) and `container`
//! (guest-init's container engine directly on this host, like runc).
//!
//! The CLI does everything around the backend that runc's callers rely on
//! and that does not depend on how the container runs: argument parsing,
//! the state store and its locks, status checks before each verb (so a
//! backend is never asked to start a stopped container), pid files, logging
//! and exit statuses. A backend gets the loaded bundle or the stored
//! [`ContainerRecord`] and does the work.

pub mod container;
pub mod hooks;
pub mod relay;
pub mod vm;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use husk_init::engine::Bundle;
use husk_protocol::GuestProcess;
use oci_spec::runtime::{LinuxResources, Process};
use serde::{Deserialize, Serialize};

pub use self::container::ContainerBackend;
pub use self::vm::VmBackend;
use crate::signal::Signal;
use crate::state::{BackendPaths, ContainerId, ContainerRecord, Status};

/// The annotation in config.json that picks a container's backend.
pub const BACKEND_ANNOTATION: &str = "run.husk.backend";

/// Which backend runs a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Each container in its own KVM virtual machine.
    Vm,
    /// Directly on this host, with namespaces and cgroups, like runc.
    Container,
}

impl BackendKind {
    pub const ALL: [BackendKind; 2] = [BackendKind::Vm, BackendKind::Container];

    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Vm => "vm",
            BackendKind::Container => "container",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for BackendKind {
    type Err = ();

    fn from_str(text: &str) -> Result<BackendKind, ()> {
        BackendKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or(())
    }
}

/// Where a new container's backend choice came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendSource {
    Flag,
    Annotation,
    ConfigFile(PathBuf),
    Default,
}

impl fmt::Display for BackendSource {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendSource::Flag => formatter.write_str("--backend"),
            BackendSource::Annotation => write!(formatter, "annotation {BACKEND_ANNOTATION}"),
            BackendSource::ConfigFile(path) => write!(formatter, "{}", path.display()),
            BackendSource::Default => formatter.write_str("default"),
        }
    }
}

/// The backend for a new container: `--backend`, else the bundle's
/// `run.husk.backend` annotation, else the configuration file's `backend`,
/// else `vm`.
pub fn select_backend(
    flag: Option<BackendKind>,
    bundle_config: &Path,
    annotations: Option<&HashMap<String, String>>,
    config_path: &Path,
    configured: Option<BackendKind>,
) -> Result<(BackendKind, BackendSource), BackendError> {
    if let Some(kind) = flag {
        return Ok((kind, BackendSource::Flag));
    }
    if let Some(value) = annotations.and_then(|map| map.get(BACKEND_ANNOTATION)) {
        let kind = value
            .parse()
            .map_err(|()| BackendError::UnknownBackendAnnotation {
                config: bundle_config.to_path_buf(),
                value: value.clone(),
            })?;
        return Ok((kind, BackendSource::Annotation));
    }
    if let Some(kind) = configured {
        return Ok((kind, BackendSource::ConfigFile(config_path.to_path_buf())));
    }
    Ok((BackendKind::Vm, BackendSource::Default))
}

/// The implementation of `kind`.
pub fn backend_for(kind: BackendKind) -> Box<dyn Backend> {
    match kind {
        BackendKind::Vm => Box::new(VmBackend::new()),
        BackendKind::Container => Box::new(ContainerBackend::new()),
    }
}

/// Errors a backend reports. [`BackendError::exit_code`] is the status
/// husk exits with.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{operation} is not implemented yet in the {backend} backend")]
    NotImplemented {
        backend: BackendKind,
        operation: &'static str,
    },
    #[error(
        "{}: annotations.\"{BACKEND_ANNOTATION}\": {value:?} is not a backend; \
         use \"vm\" or \"container\"",
        config.display()
    )]
    UnknownBackendAnnotation { config: PathBuf, value: String },
    /// Anything else a backend fails at. `what` says what was attempted and
    /// names the container; `exit_code` is 127 or 126 where the container's
    /// program could not be found or executed (podman and docker read these
    /// as runc's), 1 otherwise.
    #[error("{what}")]
    Failed {
        what: String,
        exit_code: u8,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl BackendError {
    /// Wraps a backend's own error.
    pub fn failed(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> BackendError {
        BackendError::Failed {
            what: what.into(),
            exit_code: 1,
            source: source.into(),
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            BackendError::Failed { exit_code, .. } => *exit_code,
            _ => 1,
        }
    }
}

/// Everything `create` (and `run`) hands a backend.
#[derive(Debug)]
pub struct CreateContext<'a> {
    pub id: &'a ContainerId,
    /// config.json, parsed and validated, with `root.path` resolved.
    pub bundle: &'a Bundle,
    /// `<root>/<id>`: exists, is empty but for the lock, and is the place
    /// for the container's runtime files (sockets, fifo, images).
    pub state_dir: &'a Path,
    /// Receives the pty master when `process.terminal` is true (runc's
    /// --console-socket), absolute.
    pub console_socket: Option<&'a Path>,
    /// Where the CLI writes the container's pid once `create` returned;
    /// backends need not write it.
    pub pid_file: Option<&'a Path>,
    /// runc's --no-pivot: use MS_MOVE + chroot instead of pivot_root(2).
    pub no_pivot: bool,
    /// runc's --no-new-keyring: keep the caller's session keyring.
    pub no_new_keyring: bool,
    /// Pass fds 3 .. 3+N-1 on to the container process (runc's
    /// --preserve-fds).
    pub preserve_fds: u32,
    /// False only for `run` without --detach: the caller's stdio is the
    /// container's and `run` then waits for it ([`Backend::wait`]).
    pub detach: bool,
    /// When the husk command started; startup timings count from here.
    pub cli_started: Instant,
}

impl CreateContext<'_> {
    /// Microseconds since the husk command started, for
    /// [`CreatedContainer::timings_micros`].
    pub fn micros_since_cli_start(&self) -> u64 {
        micros_since(self.cli_started)
    }
}

/// Microseconds since `start`, as the startup timings record them.
pub fn micros_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// What a successful `create` leaves behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreatedContainer {
    /// The process whose life is the container's: its exit is the
    /// container's exit (the VMM for `vm`, the container init for
    /// `container`). It must outlive `husk create` and be waitable by the
    /// caller, which reaps it as a subreaper (conmon, containerd's shim).
    pub pid: i32,
    pub paths: BackendPaths,
    /// Startup phases the backend measured: name → microseconds since the
    /// CLI started ([`CreateContext::micros_since_cli_start`]).
    pub timings_micros: BTreeMap<String, u64>,
}

/// Everything `exec` hands a backend.
#[derive(Debug)]
pub struct ExecContext<'a> {
    pub container: &'a ContainerRecord,
    /// The process to run: `--process FILE`, or the bundle's process changed
    /// by exec's flags as runc does.
    pub process: &'a Process,
    /// Return as soon as the process runs (the pid file is written by the
    /// CLI); otherwise the CLI calls [`Backend::wait_exec`].
    pub detach: bool,
    pub console_socket: Option<&'a Path>,
    pub pid_file: Option<&'a Path>,
    pub preserve_fds: u32,
    pub cli_started: Instant,
}

/// A record as `create` writes it, for the backends' tests: container "c1"
/// of the `container` backend, created, pid 1, no annotations, its rootfs
/// at `bundle`/rootfs.
#[cfg(test)]
pub(crate) fn test_record(bundle: &Path, state_dir: &Path) -> ContainerRecord {
    ContainerRecord {
        oci_version: "1.3.0".to_string(),
        id: "c1".to_string(),
        status: Status::Created,
        pid: 1,
        bundle: bundle.to_path_buf(),
        annotations: HashMap::new(),
        husk: crate::state::HuskRecord {
            backend: BackendKind::Container,
            created: String::new(),
            rootfs: bundle.join("rootfs"),
            pid_start_time: None,
            paths: BackendPaths::default(),
            timings_micros: BTreeMap::new(),
        },
        state_dir: state_dir.to_path_buf(),
    }
}

/// Resource usage, as `husk events` prints it (runc's `types.Stats`
/// names, the subset both backends can measure).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub cpu: CpuStats,
    pub memory: MemoryStats,
    pub pids: PidsStats,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CpuStats {
    pub usage: CpuUsage,
    pub throttling: CpuThrottling,
}

/// CPU time in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CpuUsage {
    pub total: u64,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuThrottling {
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_time: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MemoryStats {
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    /// The cgroup's memory.stat, by key.
    pub raw: BTreeMap<String, u64>,
}

/// Bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MemoryEntry {
    pub limit: u64,
    pub usage: u64,
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PidsStats {
    pub current: u64,
    pub limit: u64,
}

/// One way of running containers. Each method is one verb's work on one
/// container; the CLI has already locked the container, checked its status
/// and will record the outcome.
pub trait Backend {
    fn kind(&self) -> BackendKind;

    /// Makes the container and leaves its process waiting for `start`
    /// (runtime.md "create"). Returns as soon as that process exists.
    fn create(&self, context: &CreateContext<'_>) -> Result<CreatedContainer, BackendError>;

    /// Lets a created container run its process (runtime.md "start").
    fn start(&self, container: &ContainerRecord) -> Result<(), BackendError>;

    /// Sends `signal` to the container's process, or with `all` to every
    /// process in the container.
    fn kill(
        &self,
        container: &ContainerRecord,
        signal: Signal,
        all: bool,
    ) -> Result<(), BackendError>;

    /// Releases everything the container holds (its processes, with `force`
    /// killed first; cgroup, VM, images, sockets) and runs the poststop
    /// hooks. The CLI removes the state directory afterwards. Must work when
    /// the bundle is gone (containerd deletes after removing it).
    fn delete(&self, container: &ContainerRecord, force: bool) -> Result<(), BackendError>;

    /// Waits for the container's process to exit (`run` without --detach)
    /// and returns the exit status to end with: the exit code, or 128 + N
    /// when signal N killed it.
    fn wait(&self, container: &ContainerRecord) -> Result<u8, BackendError>;

    /// Starts another process in the running container (runtime.md leaves
    /// exec to runtimes; runc's exec) and returns its pid, the one the pid
    /// file gets: a process the caller can wait for.
    fn exec(&self, context: &ExecContext<'_>) -> Result<i32, BackendError>;

    /// Waits for a process [`Backend::exec`] started without --detach and
    /// returns its exit status as [`Backend::wait`] does.
    fn wait_exec(&self, container: &ContainerRecord, pid: i32) -> Result<u8, BackendError>;

    /// The pids of the container's processes, as `ps` filters the host's
    /// process table by them.
    fn processes(&self, container: &ContainerRecord) -> Result<Vec<i32>, BackendError>;

    /// The container's processes with their details, where the host's
    /// ps(1) cannot show them (they run in a VM); None where it can.
    fn process_table(
        &self,
        _container: &ContainerRecord,
    ) -> Result<Option<Vec<GuestProcess>>, BackendError> {
        Ok(None)
    }

    /// Freezes every process of the container (cgroup freezer).
    fn pause(&self, container: &ContainerRecord) -> Result<(), BackendError>;

    /// Thaws what [`Backend::pause`] froze.
    fn resume(&self, container: &ContainerRecord) -> Result<(), BackendError>;

    /// Applies new resource limits. Only the fields that are set change.
    fn update(
        &self,
        container: &ContainerRecord,
        resources: &LinuxResources,
    ) -> Result<(), BackendError>;

    /// Current resource usage.
    fn stats(&self, container: &ContainerRecord) -> Result<Stats, BackendError>;

    /// The status of a container whose process is alive, given the status
    /// husk recorded last. A backend that can see its cgroup freezer
    /// reports `paused` from it; by default the recorded status stands.
    fn reconcile_status(
        &self,
        container: &ContainerRecord,
        recorded: Status,
    ) -> Result<Status, BackendError> {
        let _ = container;
        Ok(recorded)
    }

    /// `husk features` annotations describing this backend: key → value,
    /// keys under `run.husk.<backend>.`.
    fn feature_annotations(&self) -> Vec<(String, String)>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotated(value: &str) -> HashMap<String, String> {
        HashMap::from([(BACKEND_ANNOTATION.to_string(), value.to_string())])
    }

    #[test]
    fn flag_then_annotation_then_config_file_then_vm() {
        let config = Path::new("/etc/husk/config.json");
        let bundle = Path::new("/b/config.json");
        let annotations = annotated("container");
        assert_eq!(
            select_backend(
                Some(BackendKind::Vm),
                bundle,
                Some(&annotations),
                config,
                Some(BackendKind::Container)
            )
            .unwrap(),
            (BackendKind::Vm, BackendSource::Flag)
        );
        assert_eq!(
            select_backend(
                None,
                bundle,
                Some(&annotations),
                config,
                Some(BackendKind::Vm)
            )
            .unwrap(),
            (BackendKind::Container, BackendSource::Annotation)
        );
        assert_eq!(
            select_backend(None, bundle, None, config, Some(BackendKind::Container)).unwrap(),
            (
                BackendKind::Container,
                BackendSource::ConfigFile(config.to_path_buf())
            )
        );
        assert_eq!(
            select_backend(None, bundle, Some(&HashMap::new()), config, None).unwrap(),
            (BackendKind::Vm, BackendSource::Default)
        );
    }

    #[test]
    fn an_unknown_annotation_value_names_the_field() {
        let error = select_backend(
            None,
            Path::new("/b/config.json"),
            Some(&annotated("jail")),
            Path::new("/x"),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.starts_with("/b/config.json: annotations.\"run.husk.backend\""),
            "{error}"
        );
        assert!(error.contains("\"jail\""), "{error}");
    }

    #[test]
    fn each_kind_gets_its_own_backend() {
        for kind in BackendKind::ALL {
            assert_eq!(backend_for(kind).kind(), kind);
            assert_eq!(kind.as_str().parse::<BackendKind>(), Ok(kind));
        }
    }

    #[test]
    fn backend_errors_keep_their_exit_code() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory");
        let error = BackendError::Failed {
            what: "exec the container process \"/bin/nope\"".to_string(),
            exit_code: 127,
            source: Box::new(io),
        };
        assert_eq!(error.exit_code(), 127);
        assert_eq!(
            BackendError::failed("start container \"c1\"", "boom").exit_code(),
            1
        );
    }
}
