//! `husk create [--bundle DIR] [--pid-file FILE] [--console-socket PATH] ID`
//! (runtime.md "create"): make the container and return once its process
//! exists, waiting for `start`, with its pid in the pid file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context as _;
use husk_init::engine::load_bundle;

use super::{absolute, write_pid_file, Context};
use crate::backend::{backend_for, micros_since, select_backend, Backend, CreateContext};
use crate::cli::CreateArgs;
use crate::state::{
    read_process_stat, ContainerId, ContainerLock, ContainerRecord, HuskRecord, Status,
};
use crate::timestamp::rfc3339;
use crate::{config, logging};

pub fn run(context: &Context, args: &CreateArgs) -> anyhow::Result<u8> {
    create_container(
        context,
        &NewContainer {
            id: &args.container_id,
            bundle: &args.bundle,
            console_socket: args.console_socket.as_deref(),
            pid_file: args.pid_file.as_deref(),
            no_pivot: args.no_pivot,
            no_new_keyring: args.no_new_keyring,
            preserve_fds: args.preserve_fds,
            detach: true,
        },
    )?;
    Ok(0)
}

/// What `create` and `run` ask for.
pub struct NewContainer<'a> {
    pub id: &'a str,
    pub bundle: &'a Path,
    pub console_socket: Option<&'a Path>,
    pub pid_file: Option<&'a Path>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    pub detach: bool,
}

/// A container `create_container` made, still locked exclusively.
pub struct CreatedState {
    pub lock: ContainerLock,
    pub record: ContainerRecord,
    pub backend: Box<dyn Backend>,
}

/// Creates the container: checks the ID and the bundle, picks the backend,
/// makes the state directory, has the backend create it, records the state
/// and writes the pid file. On failure nothing is left behind.
pub fn create_container(context: &Context, new: &NewContainer<'_>) -> anyhow::Result<CreatedState> {
    let id = ContainerId::parse(new.id)?;
    context.refuse_systemd_cgroup()?;
    let bundle = load_bundle(new.bundle)?;
    let bundle_loaded = micros_since(context.started);
    let (configuration, configuration_path) = config::load()?;
    let (kind, source) = select_backend(
        context.global.backend,
        &bundle.config_path,
        bundle.spec.annotations().as_ref(),
        &configuration_path,
        configuration.backend,
    )?;
    logging::debug(format!(
        "container {id}: the {kind} backend (from {source})"
    ));
    let console_socket = new.console_socket.map(absolute).transpose()?;
    let pid_file = new.pid_file.map(absolute).transpose()?;

    let lock = context.store.create(&id)?;
    let backend = backend_for(kind);
    let created = backend.create(&CreateContext {
        id: &id,
        bundle: &bundle,
        state_dir: lock.dir(),
        console_socket: console_socket.as_deref(),
        pid_file: pid_file.as_deref(),
        no_pivot: new.no_pivot,
        no_new_keyring: new.no_new_keyring,
        preserve_fds: new.preserve_fds,
        detach: new.detach,
        cli_started: context.started,
    });
    let created = match created {
        Ok(created) => created,
        Err(error) => {
            remove_state(lock);
            return Err(error).with_context(|| format!("create container {:?}", id.as_str()));
        }
    };

    let mut timings_micros = BTreeMap::from([("cli_bundle_loaded".to_string(), bundle_loaded)]);
    timings_micros.extend(created.timings_micros);
    timings_micros.insert("cli_created".to_string(), micros_since(context.started));
    let record = ContainerRecord {
        oci_version: bundle.spec.version().clone(),
        id: id.to_string(),
        status: Status::Created,
        pid: created.pid,
        bundle: bundle.path.clone(),
        annotations: bundle.spec.annotations().clone().unwrap_or_default(),
        husk: HuskRecord {
            backend: kind,
            created: rfc3339(SystemTime::now()),
            rootfs: bundle.rootfs.clone(),
            pid_start_time: read_process_stat(created.pid).map(|stat| stat.start_time),
            paths: created.paths,
            timings_micros,
        },
        state_dir: lock.dir().to_path_buf(),
    };

    let recorded = lock
        .save(&record)
        .map_err(anyhow::Error::from)
        .and_then(|()| {
            pid_file
                .as_deref()
                .map_or(Ok(()), |path| write_pid_file(path, record.pid))
        });
    if let Err(error) = recorded {
        if let Err(cleanup) = backend.delete(&record, true) {
            logging::warning(format!(
                "container {id}: undo the create: {}",
                husk_init::engine::error_chain(&cleanup)
            ));
        }
        remove_state(lock);
        return Err(error.context(format!("create container {:?}", id.as_str())));
    }
    Ok(CreatedState {
        lock,
        record,
        backend,
    })
}

fn remove_state(lock: ContainerLock) {
    let dir: PathBuf = lock.dir().to_path_buf();
    if let Err(error) = lock.remove() {
        logging::warning(format!(
            "remove {} after a failed create: {}",
            dir.display(),
            husk_init::engine::error_chain(&error)
        ));
    }
}
