//! The state store: one directory per container under `--root`
//! (`<root>/<id>/`), holding `state.json` and the `lock` file.
//!
//! `state.json` is the runtime-spec state (runtime.md "State": ociVersion,
//! id, status, pid, bundle, annotations) plus husk's own record under the
//! `husk` key: the backend, when the container was created, the start time
//! of its pid, what the backend made for it, and the startup timings.
//!
//! Concurrency: every call on a container takes flock(2) on `<id>/lock`,
//! exclusive for calls that change the container, shared for reads, so two
//! calls on one ID run one after the other. The directory is created with
//! mkdir(2), which fails when it exists: that is how two `create`s of one ID
//! are told apart. A writer replaces `state.json` with rename(2), so a
//! reader never sees half a file.
//!
//! The status is never trusted from the file alone: each read checks that
//! the recorded pid still runs and is still the same process (its start
//! time, /proc/<pid>/stat field 22, proc(5)); a dead or reused pid means
//! `stopped`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use husk_init::engine;
use serde::{Deserialize, Serialize};

use crate::backend::BackendKind;

pub const STATE_FILE: &str = "state.json";
pub const LOCK_FILE: &str = "lock";

/// The longest ID: one path component (NAME_MAX).
const MAX_ID_LENGTH: usize = 255;

/// A container ID as runc accepts it: letters, digits, `_`, `+`, `-` and
/// `.`, not `.` or `..` (runc libcontainer validateID), so that it is always
/// one plain path component under the root.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerId(String);

impl ContainerId {
    pub fn parse(id: &str) -> Result<ContainerId, StateError> {
        let invalid = |reason: &'static str| StateError::InvalidId {
            id: id.to_string(),
            reason,
        };
        if id.is_empty() {
            return Err(invalid("it is empty"));
        }
        if id.len() > MAX_ID_LENGTH {
            return Err(invalid("it is longer than 255 characters"));
        }
        if id == "." || id == ".." {
            return Err(invalid("\".\" and \"..\" are not names"));
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.');
        if !id.chars().all(allowed) {
            return Err(invalid(
                "use only letters, digits, '_', '+', '-' and '.' in container IDs",
            ));
        }
        Ok(ContainerId(id.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// The container statuses of runtime.md "State".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// What a backend made for a container and must find again later.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendPaths {
    /// The root filesystem image the VM boots from (VM backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs_image: Option<PathBuf>,
    /// Unix sockets by role ("control", "vsock", ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sockets: BTreeMap<String, PathBuf>,
    /// The container's cgroup, as a path under the cgroup mount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<PathBuf>,
    /// Anything else a backend needs to remember, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
}

/// husk's own part of `state.json` (the `husk` key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HuskRecord {
    pub backend: BackendKind,
    /// When `create` made the container, RFC 3339.
    pub created: String,
    /// `root.path` resolved against the bundle.
    pub rootfs: PathBuf,
    /// The pid's start time in clock ticks after boot (/proc/<pid>/stat
    /// field 22), to tell the container's process from a later one that
    /// got the same pid. None when it could not be read at create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_start_time: Option<u64>,
    #[serde(default)]
    pub paths: BackendPaths,
    /// Startup phases: name → microseconds after the husk command that
    /// created the container started.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub timings_micros: BTreeMap<String, u64>,
}

/// The contents of `<root>/<id>/state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRecord {
    /// The bundle's `ociVersion`.
    pub oci_version: String,
    pub id: String,
    /// The status last recorded by a husk command; see
    /// [`ContainerRecord::observed_status`] for the real one.
    pub status: Status,
    /// The container's process as the host sees it (for the VM backend, the
    /// VMM process); 0 when there is none.
    #[serde(default)]
    pub pid: i32,
    /// The bundle directory, absolute.
    pub bundle: PathBuf,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
    pub husk: HuskRecord,
    /// `<root>/<id>`, set when the record is loaded; not stored.
    #[serde(skip)]
    pub state_dir: PathBuf,
}

impl ContainerRecord {
    /// Whether the recorded process still runs: it exists, is not a zombie,
    /// and started when the recorded one did.
    pub fn process_is_alive(&self) -> bool {
        if self.pid <= 0 {
            return false;
        }
        match read_process_stat(self.pid) {
            Some(stat) if !stat.is_zombie() => self
                .husk
                .pid_start_time
                .is_none_or(|recorded| recorded == stat.start_time),
            _ => false,
        }
    }

    /// The status as far as the process tells it: `stopped` once the
    /// process is gone, the recorded status while it runs. (Whether a live
    /// container is paused is the backend's to say, through its cgroup
    /// freezer.)
    pub fn observed_status(&self) -> Status {
        if self.status == Status::Stopped || !self.process_is_alive() {
            Status::Stopped
        } else {
            self.status
        }
    }
}

/// The parts of /proc/<pid>/stat husk reads (proc(5)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessStat {
    /// Field 3: R, S, D, Z, T, ...
    pub state: char,
    /// Field 22: start time in clock ticks after boot.
    pub start_time: u64,
}

impl ProcessStat {
    /// A zombie (Z) or dead (X) process has exited; only its parent's wait
    /// is missing.
    pub fn is_zombie(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parses the text of /proc/<pid>/stat. The command name (field 2) is in
/// parentheses and may itself hold spaces and parentheses, so the fields are
/// counted from the last ')'.
pub fn parse_process_stat(text: &str) -> Option<ProcessStat> {
    let after_name = &text[text.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // Field 3 is the first after the name; field 22 is 19 further.
    let state = fields.next()?.chars().next()?;
    let start_time = fields.nth(18)?.parse().ok()?;
    Some(ProcessStat { state, start_time })
}

/// /proc/<pid>/stat of a live (or zombie) process; None when there is none.
pub fn read_process_stat(pid: i32) -> Option<ProcessStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_process_stat(&text)
}

/// Errors of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("invalid container ID {id:?}: {reason}")]
    InvalidId { id: String, reason: &'static str },
    #[error(
        "container {id:?} does not exist in {}; check the ID (husk list shows them) and --root",
        root.display()
    )]
    NotFound { id: String, root: PathBuf },
    #[error(
        "container ID {id:?} already exists in {}; delete it first (husk delete {id}) or choose another ID",
        root.display()
    )]
    AlreadyExists { id: String, root: PathBuf },
    #[error("create the state directory {}", path.display())]
    CreateDirectory {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("lock {}", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("read the container state {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: not a valid husk container state; delete the container with husk delete --force", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("write the container state {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("remove the state directory {}", path.display())]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("list the state directory {}", path.display())]
    List {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// How a call holds a container's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Reads: `state`, `list`, `ps`, `events`, `kill`, `exec`.
    Shared,
    /// Changes: `create`, `start`, `delete`, `pause`, `resume`, `update`.
    Exclusive,
}

/// The containers under one `--root`.
#[derive(Debug, Clone)]
pub struct StateStore {
    root: PathBuf,
}

impl StateStore {
    /// The store at `root`, made absolute against the current directory.
    pub fn new(root: &Path) -> StateStore {
        StateStore {
            root: std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf()),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn container_dir(&self, id: &ContainerId) -> PathBuf {
        self.root.join(id.as_str())
    }

    /// Makes `<root>/<id>` (and the root, mode 0700, if needed) and returns
    /// it locked exclusively. Fails with [`StateError::AlreadyExists`] when
    /// the directory exists.
    pub fn create(&self, id: &ContainerId) -> Result<ContainerLock, StateError> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .map_err(|source| StateError::CreateDirectory {
                path: self.root.clone(),
                source,
            })?;
        let dir = self.container_dir(id);
        // runc makes the container directory 0711 so that a process in the
        // container running as another user can still reach the exec fifo.
        match DirBuilder::new().mode(0o711).create(&dir) {
            Ok(()) => {}
            Err(error) if error.kind() == ErrorKind::AlreadyExists => {
                return Err(StateError::AlreadyExists {
                    id: id.to_string(),
                    root: self.root.clone(),
                })
            }
            Err(source) => return Err(StateError::CreateDirectory { path: dir, source }),
        }
        let lock_path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|source| StateError::Lock {
                path: lock_path.clone(),
                source,
            })?;
        // Another call can only have opened this lock since the mkdir; it
        // then finds no state.json, and a `delete` removes the directory
        // as a leftover. Whoever comes second must notice.
        file.lock().map_err(|source| StateError::Lock {
            path: lock_path.clone(),
            source,
        })?;
        let lock_error = |source| StateError::Lock {
            path: lock_path.clone(),
            source,
        };
        if !is_current(&file, &lock_path).map_err(lock_error)? {
            return Err(lock_error(io::Error::other(
                "a concurrent husk delete removed the new container directory; retry the create",
            )));
        }
        Ok(ContainerLock::holding(
            id,
            dir,
            &self.root,
            file,
            LockMode::Exclusive,
        ))
    }

    /// Locks an existing container. Blocks while another call holds a
    /// conflicting lock. Fails with [`StateError::NotFound`] when there is
    /// no such container, including when it was deleted while this call
    /// waited.
    pub fn open(&self, id: &ContainerId, mode: LockMode) -> Result<ContainerLock, StateError> {
        let dir = self.container_dir(id);
        let lock_path = dir.join(LOCK_FILE);
        let not_found = || StateError::NotFound {
            id: id.to_string(),
            root: self.root.clone(),
        };
        loop {
            let file = match OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&lock_path)
            {
                Ok(file) => file,
                Err(error) if error.kind() == ErrorKind::NotFound => return Err(not_found()),
                Err(source) => {
                    return Err(StateError::Lock {
                        path: lock_path,
                        source,
                    })
                }
            };
            let locked = match mode {
                LockMode::Shared => file.lock_shared(),
                LockMode::Exclusive => file.lock(),
            };
            locked.map_err(|source| StateError::Lock {
                path: lock_path.clone(),
                source,
            })?;
            // A delete may have removed the directory while this call
            // waited, and a create may have made a new one with a new lock
            // file: the lock only counts if it is on the file now there.
            match is_current(&file, &lock_path) {
                Ok(true) => {
                    return Ok(ContainerLock::holding(id, dir, &self.root, file, mode));
                }
                Ok(false) if lock_path.exists() => continue,
                Ok(false) => return Err(not_found()),
                Err(source) => {
                    return Err(StateError::Lock {
                        path: lock_path,
                        source,
                    })
                }
            }
        }
    }

    /// The IDs of the directories under the root, sorted; none when the
    /// root does not exist yet.
    pub fn ids(&self) -> Result<Vec<ContainerId>, StateError> {
        let entries = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(error) if error.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(StateError::List {
                    path: self.root.clone(),
                    source,
                })
            }
        };
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| StateError::List {
                path: self.root.clone(),
                source,
            })?;
            let is_dir = entry.file_type().is_ok_and(|kind| kind.is_dir());
            let name = entry.file_name();
            if let (true, Some(name)) = (is_dir, name.to_str()) {
                if let Ok(id) = ContainerId::parse(name) {
                    ids.push(id);
                }
            }
        }
        ids.sort();
        Ok(ids)
    }
}

/// Whether `file` (a lock just taken) is still the file at `path`, rather
/// than one a delete unlinked meanwhile.
fn is_current(file: &File, path: &Path) -> io::Result<bool> {
    let held = file.metadata()?;
    match fs::metadata(path) {
        Ok(current) => Ok(current.dev() == held.dev() && current.ino() == held.ino()),
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error),
    }
}

/// A container directory with its lock held; the lock goes when this is
/// dropped.
#[derive(Debug)]
pub struct ContainerLock {
    id: ContainerId,
    dir: PathBuf,
    root: PathBuf,
    _file: File,
    mode: LockMode,
}

impl ContainerLock {
    pub fn id(&self) -> &ContainerId {
        &self.id
    }

    /// `<root>/<id>`, where backends keep the container's runtime files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn mode(&self) -> LockMode {
        self.mode
    }

    pub fn state_path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// Reads `state.json`. A directory without one (a create that failed
    /// halfway, or one still running) is [`StateError::NotFound`], as runc
    /// treats it.
    pub fn load(&self) -> Result<ContainerRecord, StateError> {
        let path = self.state_path();
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == ErrorKind::NotFound => {
                return Err(StateError::NotFound {
                    id: self.id.to_string(),
                    root: self.root.clone(),
                })
            }
            Err(source) => return Err(StateError::Read { path, source }),
        };
        let mut record: ContainerRecord =
            serde_json::from_slice(&text).map_err(|source| StateError::Parse {
                path: path.clone(),
                source,
            })?;
        record.state_dir = self.dir.clone();
        Ok(record)
    }

    /// Replaces `state.json` with `record` (write a temporary file, then
    /// rename(2) over the old one). Needs the exclusive lock.
    pub fn save(&self, record: &ContainerRecord) -> Result<(), StateError> {
        debug_assert_eq!(
            self.mode,
            LockMode::Exclusive,
            "save needs the exclusive lock"
        );
        let path = self.state_path();
        let temporary = self.dir.join(format!(".{STATE_FILE}.tmp"));
        let write_error = |source| StateError::Write {
            path: path.clone(),
            source,
        };
        let json = serde_json::to_vec(record).map_err(|source| write_error(source.into()))?;
        let mut file = File::create(&temporary).map_err(write_error)?;
        file.write_all(&json).map_err(write_error)?;
        file.sync_all().map_err(write_error)?;
        fs::rename(&temporary, &path).map_err(write_error)
    }

    /// Removes the container's directory, lock file included; calls waiting
    /// for the lock then find the container gone.
    pub fn remove(self) -> Result<(), StateError> {
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StateError::Remove {
                path: self.dir.clone(),
                source,
            }),
        }
    }
}

impl ContainerLock {
    /// Wraps a lock just taken on `file`. The processes the engine forks
    /// close their copy of it at once (see
    /// `husk_init::engine::close_in_forked_children`): a created
    /// container's init, waiting for `start`, would otherwise keep the
    /// container locked if this process died without unlocking.
    fn holding(
        id: &ContainerId,
        dir: PathBuf,
        root: &Path,
        file: File,
        mode: LockMode,
    ) -> ContainerLock {
        engine::close_in_forked_children(file.as_raw_fd());
        ContainerLock {
            id: id.clone(),
            dir,
            root: root.to_path_buf(),
            _file: file,
            mode,
        }
    }
}

impl Drop for ContainerLock {
    /// Unlocks explicitly rather than by closing: a flock(2) lock belongs
    /// to the open file description, which processes forked meanwhile share
    /// (the container backend's init, blocked on the exec fifo until
    /// `start`, holds a copy until it execs), and it goes only when the
    /// last copy is closed or any copy unlocks.
    fn drop(&mut self) {
        let _ = self._file.unlock();
        engine::keep_in_forked_children(self._file.as_raw_fd());
    }
}

#[cfg(test)]
mod tests {
    use std::process::{Child, Command};
    use std::sync::{Arc, Barrier};
    use std::thread;
    use std::time::{Duration, Instant};

    use super::*;

    fn id(text: &str) -> ContainerId {
        ContainerId::parse(text).unwrap()
    }

    fn record(id: &str, pid: i32, start_time: Option<u64>) -> ContainerRecord {
        ContainerRecord {
            oci_version: "1.3.0".to_string(),
            id: id.to_string(),
            status: Status::Running,
            pid,
            bundle: PathBuf::from("/bundles/b1"),
            annotations: HashMap::from([("org.example/a".to_string(), "1".to_string())]),
            husk: HuskRecord {
                backend: BackendKind::Vm,
                created: "2024-05-01T12:00:00.000000000Z".to_string(),
                rootfs: PathBuf::from("/bundles/b1/rootfs"),
                pid_start_time: start_time,
                paths: BackendPaths {
                    rootfs_image: Some(PathBuf::from("/run/husk/c1/rootfs.ext4")),
                    sockets: BTreeMap::from([(
                        "control".to_string(),
                        PathBuf::from("/run/husk/c1/control.sock"),
                    )]),
                    cgroup: Some(PathBuf::from("/husk/c1")),
                    extra: BTreeMap::new(),
                },
                timings_micros: BTreeMap::from([
                    ("vmm_started".to_string(), 1200),
                    ("kernel_entry".to_string(), 9000),
                ]),
            },
            state_dir: PathBuf::new(),
        }
    }

    fn own_start_time() -> u64 {
        read_process_stat(std::process::id() as i32)
            .unwrap()
            .start_time
    }

    /// A child that exits by itself once dropped: kill and reap it.
    struct Sleeper(Child);

    impl Sleeper {
        fn spawn() -> Sleeper {
            Sleeper(
                Command::new("sleep")
                    .arg("60")
                    .spawn()
                    .expect("run sleep(1)"),
            )
        }
        fn pid(&self) -> i32 {
            self.0.id() as i32
        }
    }

    impl Drop for Sleeper {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn ids_like_runc() {
        for good in ["c1", "a.b_c-d+e", "UPPER", "x", "..."] {
            assert!(ContainerId::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a b",
            "a,b",
            "ü",
            "a:b",
            &"x".repeat(256),
        ] {
            let error = ContainerId::parse(bad).unwrap_err();
            assert!(
                error
                    .to_string()
                    .starts_with(&format!("invalid container ID {bad:?}")),
                "{error}"
            );
        }
    }

    #[test]
    fn proc_stat_fields_are_counted_from_the_last_parenthesis() {
        let text = "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 120 0 0 0 1 2 0 0 20 0 1 0 \
                    987654 1000 100 18446744073709551615";
        assert_eq!(
            parse_process_stat(text),
            Some(ProcessStat {
                state: 'S',
                start_time: 987_654
            })
        );
        assert_eq!(parse_process_stat("12 (x) Z 1 2"), None);
        assert_eq!(parse_process_stat("garbage"), None);
    }

    #[test]
    fn state_round_trips_and_keeps_the_oci_fields_at_the_top() {
        let store_dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(store_dir.path());
        let lock = store.create(&id("c1")).unwrap();
        let saved = record("c1", 4242, Some(77));
        lock.save(&saved).unwrap();
        let loaded = lock.load().unwrap();
        assert_eq!(loaded.state_dir, store_dir.path().join("c1"));
        assert_eq!(
            ContainerRecord {
                state_dir: PathBuf::new(),
                ..loaded
            },
            saved
        );

        let json: serde_json::Value =
            serde_json::from_slice(&fs::read(store_dir.path().join("c1/state.json")).unwrap())
                .unwrap();
        assert_eq!(json["ociVersion"], "1.3.0");
        assert_eq!(json["id"], "c1");
        assert_eq!(json["status"], "running");
        assert_eq!(json["pid"], 4242);
        assert_eq!(json["bundle"], "/bundles/b1");
        assert_eq!(json["annotations"]["org.example/a"], "1");
        assert_eq!(json["husk"]["backend"], "vm");
        assert_eq!(json["husk"]["pidStartTime"], 77);
        assert_eq!(
            json["husk"]["paths"]["sockets"]["control"],
            "/run/husk/c1/control.sock"
        );
        assert_eq!(json["husk"]["timingsMicros"]["kernel_entry"], 9000);
        assert!(json.get("stateDir").is_none());
    }

    #[test]
    fn a_second_create_of_one_id_fails_naming_it() {
        let store_dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(store_dir.path());
        let _first = store.create(&id("c1")).unwrap();
        let error = store.create(&id("c1")).unwrap_err();
        assert!(matches!(error, StateError::AlreadyExists { .. }));
        assert!(
            error
                .to_string()
                .contains("container ID \"c1\" already exists"),
            "{error}"
        );
    }

    #[test]
    fn unknown_and_half_created_containers_are_not_found() {
        let store_dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(store_dir.path());
        let error = store.open(&id("nope"), LockMode::Shared).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("container \"nope\" does not exist"),
            "{error}"
        );
        // A directory whose create never wrote state.json.
        drop(store.create(&id("half")).unwrap());
        let lock = store.open(&id("half"), LockMode::Shared).unwrap();
        assert!(matches!(lock.load(), Err(StateError::NotFound { .. })));
    }

    #[test]
    fn ids_lists_container_directories_only() {
        let store_dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(&store_dir.path().join("not-yet"));
        assert!(store.ids().unwrap().is_empty());
        let store = StateStore::new(store_dir.path());
        store.create(&id("b")).unwrap();
        store.create(&id("a")).unwrap();
        fs::write(store_dir.path().join("stray-file"), "").unwrap();
        assert_eq!(store.ids().unwrap(), [id("a"), id("b")]);
    }

    #[test]
    fn a_live_process_keeps_the_recorded_status() {
        let sleeper = Sleeper::spawn();
        let start_time = read_process_stat(sleeper.pid()).unwrap().start_time;
        let mut container = record("c1", sleeper.pid(), Some(start_time));
        assert_eq!(container.observed_status(), Status::Running);
        container.status = Status::Created;
        assert_eq!(container.observed_status(), Status::Created);
    }

    #[test]
    fn a_dead_pid_means_stopped() {
        let mut sleeper = Sleeper::spawn();
        let pid = sleeper.pid();
        let start_time = read_process_stat(pid).unwrap().start_time;
        let container = record("c1", pid, Some(start_time));
        sleeper.0.kill().unwrap();
        // Killed but not yet reaped: a zombie has exited too.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !read_process_stat(pid).unwrap().is_zombie() {
            assert!(Instant::now() < deadline, "sleep did not die");
            thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(container.observed_status(), Status::Stopped);
        sleeper.0.wait().unwrap();
        assert_eq!(container.observed_status(), Status::Stopped);
    }

    #[test]
    fn a_reused_pid_with_another_start_time_means_stopped() {
        // This test process stands for a later process that got the pid.
        let pid = std::process::id() as i32;
        let reused = record("c1", pid, Some(own_start_time() + 1));
        assert_eq!(reused.observed_status(), Status::Stopped);
        let same = record("c1", pid, Some(own_start_time()));
        assert_eq!(same.observed_status(), Status::Running);
    }

    #[test]
    fn no_pid_or_a_recorded_stop_means_stopped() {
        assert_eq!(record("c1", 0, None).observed_status(), Status::Stopped);
        let mut stopped = record("c1", std::process::id() as i32, Some(own_start_time()));
        stopped.status = Status::Stopped;
        assert_eq!(stopped.observed_status(), Status::Stopped);
    }

    #[test]
    fn exclusive_locks_serialize_calls_on_one_id() {
        let store_dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(store_dir.path());
        let first = store.create(&id("c1")).unwrap();
        first.save(&record("c1", 0, None)).unwrap();

        let (sender, receiver) = std::sync::mpsc::channel();
        let waiter = {
            let store = store.clone();
            thread::spawn(move || {
                let lock = store.open(&id("c1"), LockMode::Shared).unwrap();
                sender.send(Instant::now()).unwrap();
                lock.load().unwrap().status
            })
        };
        // The reader must still be waiting while the writer holds the lock.
        thread::sleep(Duration::from_millis(200));
        assert!(
            receiver.try_recv().is_err(),
            "a reader got past an exclusive lock"
        );
        let mut changed = first.load().unwrap();
        changed.status = Status::Paused;
        first.save(&changed).unwrap();
        let released = Instant::now();
        drop(first);
        let acquired = receiver.recv().unwrap();
        assert!(acquired >= released);
        // And it reads what the writer wrote, not what was there before.
        assert_eq!(waiter.join().unwrap(), Status::Paused);
    }

    #[test]
    fn shared_locks_do_not_wait_for_each_other() {
        let store_dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(store_dir.path());
        store
            .create(&id("c1"))
            .unwrap()
            .save(&record("c1", 0, None))
            .unwrap();
        let readers = 4;
        let barrier = Arc::new(Barrier::new(readers));
        let handles: Vec<_> = (0..readers)
            .map(|_| {
                let store = store.clone();
                let barrier = barrier.clone();
                thread::spawn(move || {
                    let _lock = store.open(&id("c1"), LockMode::Shared).unwrap();
                    // Every reader holds its lock here at the same time; with
                    // exclusive locks this barrier would never open.
                    barrier.wait();
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
    }

    #[test]
    fn a_waiter_finds_the_container_gone_after_a_delete() {
        let store_dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(store_dir.path());
        let deleter = store.create(&id("c1")).unwrap();
        deleter.save(&record("c1", 0, None)).unwrap();
        let waiter = {
            let store = store.clone();
            thread::spawn(move || store.open(&id("c1"), LockMode::Exclusive).map(|_| ()))
        };
        thread::sleep(Duration::from_millis(100));
        deleter.remove().unwrap();
        let error = waiter.join().unwrap().unwrap_err();
        assert!(matches!(error, StateError::NotFound { .. }), "{error}");
    }

    #[test]
    fn a_forked_copy_of_the_lock_does_not_keep_the_container_locked() {
        let store_dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(store_dir.path());
        let lock = store.create(&id("c1")).unwrap();
        // What a process forked while the lock is held keeps: a descriptor
        // of the same open file description.
        let inherited = lock._file.try_clone().unwrap();
        drop(lock);
        let status = Command::new("flock")
            .args(["--nonblock", "--exclusive"])
            .arg(store_dir.path().join("c1").join(LOCK_FILE))
            .arg("true")
            .status()
            .expect("run flock(1) from util-linux");
        assert!(
            status.success(),
            "the container stayed locked while a copy of the descriptor was open"
        );
        drop(inherited);
    }

    #[test]
    fn locks_serialize_separate_processes() {
        // flock(2) locks belong to open file descriptions, so a second
        // process blocks exactly like a second thread; flock(1) stands in
        // for a concurrent husk.
        let store_dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(store_dir.path());
        let lock = store.create(&id("c1")).unwrap();
        let lock_path = store_dir.path().join("c1").join(LOCK_FILE);
        let status = Command::new("flock")
            .args(["--nonblock", "--shared"])
            .arg(&lock_path)
            .arg("true")
            .status()
            .expect("run flock(1) from util-linux");
        assert!(
            !status.success(),
            "another process got a lock held exclusively"
        );
        drop(lock);
        let status = Command::new("flock")
            .args(["--nonblock", "--shared"])
            .arg(&lock_path)
            .arg("true")
            .status()
            .unwrap();
        assert!(status.success(), "the lock was not released");
    }
}
