//! One short adapter per verb, from the parsed arguments to the state store
//! and the container's [`Backend`]. What they share is here: the context of
//! one invocation, opening a container with its backend, the status checks
//! and pid files.

pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod features;
pub mod kill;
pub mod list;
pub mod pause;
pub mod ps;
pub mod resume;
pub mod run;
pub mod spec;
pub mod start;
pub mod state;
pub mod update;

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _};
use husk_init::engine::process::user::parse_passwd;
use serde::Serialize;

use crate::backend::{backend_for, Backend, BackendError};
use crate::cli::{Cli, Command, GlobalOptions};
use crate::logging;
use crate::state::{ContainerId, ContainerLock, ContainerRecord, LockMode, StateStore, Status};

/// Where systemd keeps its runtime state; it exists only while systemd is
/// PID 1 (sd_booted(3)).
const SYSTEMD_RUNTIME_DIR: &str = "/run/systemd/system";

/// What every verb gets: the global options, the state store at `--root`
/// and when husk started (startup timings count from there).
pub struct Context {
    pub global: GlobalOptions,
    pub store: StateStore,
    pub started: Instant,
}

impl Context {
    pub fn new(global: GlobalOptions, started: Instant) -> Context {
        let store = StateStore::new(&global.root);
        Context {
            global,
            store,
            started,
        }
    }

    /// Locks and loads an existing container and picks the backend it was
    /// created with.
    pub fn open(&self, id: &str, mode: LockMode) -> anyhow::Result<OpenContainer> {
        let id = ContainerId::parse(id)?;
        let lock = self.store.open(&id, mode)?;
        let record = lock.load()?;
        let kind = record.husk.backend;
        if let Some(flag) = self.global.backend.filter(|flag| *flag != kind) {
            logging::warning(format!(
                "--backend {flag} ignored: container {id} was created with the {kind} backend"
            ));
        }
        Ok(OpenContainer {
            lock,
            record,
            backend: backend_for(kind),
        })
    }

    /// Refuses `--systemd-cgroup` for verbs that manage cgroups: husk has
    /// only the cgroupfs manager.
    pub fn refuse_systemd_cgroup(&self) -> anyhow::Result<()> {
        if !self.global.systemd_cgroup {
            return Ok(());
        }
        if Path::new(SYSTEMD_RUNTIME_DIR).exists() {
            bail!(
                "--systemd-cgroup: husk manages cgroups through cgroupfs only, not through \
                 systemd; drop the flag"
            );
        }
        bail!(
            "--systemd-cgroup: systemd is not running on this host (there is no \
             {SYSTEMD_RUNTIME_DIR}); drop the flag and husk manages cgroups through cgroupfs"
        )
    }
}

/// A locked container, its record and its backend.
pub struct OpenContainer {
    pub lock: ContainerLock,
    pub record: ContainerRecord,
    pub backend: Box<dyn Backend>,
}

impl OpenContainer {
    pub fn id(&self) -> &ContainerId {
        self.lock.id()
    }

    /// The container's status now (see [`current_status`]).
    pub fn status(&self) -> anyhow::Result<Status> {
        current_status(self.backend.as_ref(), &self.record)
    }

    /// Has the backend carry out `verb` on the container (`operation`),
    /// then records the status that leaves it in. The caller has checked
    /// that the verb applies to the container's status.
    pub fn change_status(
        &mut self,
        verb: &str,
        new_status: Status,
        operation: impl FnOnce(&dyn Backend, &ContainerRecord) -> Result<(), BackendError>,
    ) -> anyhow::Result<()> {
        operation(self.backend.as_ref(), &self.record)
            .with_context(|| format!("{verb} container {:?}", self.id().as_str()))?;
        self.record.status = new_status;
        self.lock.save(&self.record)?;
        Ok(())
    }
}

/// The status from reality: `stopped` once the process is gone or its pid
/// reused; otherwise the recorded status as the backend sees it (paused
/// or not).
pub fn current_status(backend: &dyn Backend, record: &ContainerRecord) -> anyhow::Result<Status> {
    match record.observed_status() {
        Status::Stopped => Ok(Status::Stopped),
        recorded => backend
            .reconcile_status(record, recorded)
            .with_context(|| format!("read the status of container {:?}", record.id)),
    }
}

/// Runs the verb on the command line; returns the exit status.
pub fn dispatch(cli: Cli, started: Instant) -> anyhow::Result<u8> {
    if cli.global.version {
        print_version();
        return Ok(0);
    }
    let Some(command) = cli.command else {
        use clap::CommandFactory;
        Cli::command().print_long_help()?;
        return Ok(0);
    };
    let context = Context::new(cli.global, started);
    match &command {
        Command::Create(args) => create::run(&context, args),
        Command::Delete(args) => delete::run(&context, args),
        Command::Events(args) => events::run(&context, args),
        Command::Exec(args) => exec::run(&context, args),
        Command::Features(args) => features::run(&context, args),
        Command::Kill(args) => kill::run(&context, args),
        Command::List(args) => list::run(&context, args),
        Command::Pause(args) => pause::run(&context, args),
        Command::Ps(args) => ps::run(&context, args),
        Command::Resume(args) => resume::run(&context, args),
        Command::Run(args) => run::run(&context, args),
        Command::Spec(args) => spec::run(&context, args),
        Command::Start(args) => start::run(&context, args),
        Command::State(args) => state::run(&context, args),
        Command::Update(args) => update::run(&context, args),
    }
}

/// `husk --version`: docker parses the line with "version" in it and podman
/// shows all of them.
fn print_version() {
    println!("husk version {}", env!("CARGO_PKG_VERSION"));
    println!("spec: {}", crate::OCI_VERSION);
    println!("backends: vm (default), container");
}

/// `path` made absolute against the current directory, as runc does with
/// --pid-file and --console-socket before it changes directory.
pub fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("make {} absolute", path.display()))
}

/// Writes `pid` (decimal, no newline, as runc) to `path` through a
/// temporary file renamed over it, so a reader never sees it half written.
pub fn write_pid_file(path: &Path, pid: i32) -> anyhow::Result<()> {
    let context = || format!("write the pid file {}", path.display());
    let name = path
        .file_name()
        .with_context(|| format!("--pid-file {}: not a file name", path.display()))?;
    let mut temporary_name = std::ffi::OsString::from(".");
    temporary_name.push(name);
    let temporary = path.with_file_name(temporary_name);
    let mut file = fs::File::create(&temporary).with_context(context)?;
    write!(file, "{pid}").with_context(context)?;
    drop(file);
    fs::rename(&temporary, path).with_context(context)
}

/// A container as `state` and `list` show it: runc's fields (the
/// runtime-spec state plus rootfs, created and owner).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerSummary {
    pub oci_version: String,
    pub id: String,
    /// 0 once the container has stopped, as runc shows it.
    pub pid: i32,
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "std::collections::HashMap::is_empty")]
    pub annotations: std::collections::HashMap<String, String>,
}

impl ContainerSummary {
    pub fn new(record: &ContainerRecord, status: Status) -> ContainerSummary {
        ContainerSummary {
            oci_version: record.oci_version.clone(),
            id: record.id.clone(),
            pid: if status == Status::Stopped {
                0
            } else {
                record.pid
            },
            status,
            bundle: record.bundle.clone(),
            rootfs: record.husk.rootfs.clone(),
            created: record.husk.created.clone(),
            owner: owner_of(&record.state_dir),
            annotations: record.annotations.clone(),
        }
    }
}

/// The name of the user owning `path` (from /etc/passwd), or `#<uid>` as
/// runc shows an unknown owner.
fn owner_of(path: &Path) -> String {
    let Ok(metadata) = fs::metadata(path) else {
        return String::new();
    };
    let uid = metadata.uid();
    fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| user_name(&passwd, uid))
        .unwrap_or_else(|| format!("#{uid}"))
}

/// The name of `uid` in passwd(5) text.
fn user_name(passwd: &str, uid: u32) -> Option<String> {
    parse_passwd(passwd)
        .into_iter()
        .find(|entry| entry.uid == uid)
        .map(|entry| entry.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_files_hold_just_the_number() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("init.pid");
        write_pid_file(&path, 4242).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "4242");
        write_pid_file(&path, 7).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "7");
        let names: Vec<_> = fs::read_dir(directory.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["init.pid"]);
    }

    #[test]
    fn user_names_from_passwd() {
        let passwd =
            "root:x:0:0:root:/root:/bin/bash\nbad line\nalice:x:1000:1000::/home/a:/bin/sh\n";
        assert_eq!(user_name(passwd, 0).as_deref(), Some("root"));
        assert_eq!(user_name(passwd, 1000).as_deref(), Some("alice"));
        assert_eq!(user_name(passwd, 5), None);
    }
}
