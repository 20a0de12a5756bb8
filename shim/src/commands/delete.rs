//! `husk delete [--force] ID` (runtime.md "delete"): release everything a
//! container holds and forget it.
//!
//! As runc: a stopped container is deleted; a created one is killed first;
//! a running or paused one only with --force. `--force` on an ID that does
//! not exist succeeds, because containerd deletes twice and may do so after
//! the bundle is gone (CLIENTS.md).

use anyhow::{bail, Context as _};

use super::Context;
use crate::cli::DeleteArgs;
use crate::logging;
use crate::state::{ContainerId, LockMode, StateError, Status};

pub fn run(context: &Context, args: &DeleteArgs) -> anyhow::Result<u8> {
    let id = ContainerId::parse(&args.container_id)?;
    let lock = match context.store.open(&id, LockMode::Exclusive) {
        Ok(lock) => lock,
        Err(StateError::NotFound { .. }) if args.force => return Ok(0),
        Err(error) => return Err(error.into()),
    };
    // A directory without a readable state is what a create that failed
    // halfway leaves (its create held the lock until it gave up).
    let record = match lock.load() {
        Ok(record) => record,
        Err(error @ StateError::NotFound { .. }) => {
            lock.remove()?;
            return if args.force { Ok(0) } else { Err(error.into()) };
        }
        Err(error) if args.force => {
            logging::warning(format!(
                "container {id}: removing an unreadable state: {}",
                husk_init::engine::error_chain(&error)
            ));
            lock.remove()?;
            return Ok(0);
        }
        Err(error) => return Err(error.into()),
    };
    let container = super::OpenContainer {
        backend: crate::backend::backend_for(record.husk.backend),
        lock,
        record,
    };
    let status = container.status()?;
    let kill_first = match status {
        Status::Stopped => false,
        Status::Created | Status::Creating => true,
        Status::Running | Status::Paused if args.force => true,
        Status::Running | Status::Paused => bail!(
            "cannot delete container {:?} that is not stopped: {status}; stop it first \
             (husk kill {id} KILL) or use husk delete --force",
            id.as_str()
        ),
    };
    if kill_first {
        context.refuse_systemd_cgroup()?;
    }
    container
        .backend
        .delete(&container.record, kill_first)
        .with_context(|| format!("delete container {:?}", id.as_str()))?;
    container.lock.remove()?;
    Ok(0)
}
