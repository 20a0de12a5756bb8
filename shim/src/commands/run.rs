//! `husk run [--bundle DIR] [--detach] ID`: create and start a container;
//! without --detach wait for it, delete it (unless --keep) and exit with
//! its status, as runc run does.

use anyhow::Context as _;

use super::create::{create_container, CreatedState, NewContainer};
use super::Context;
use crate::cli::RunArgs;
use crate::logging;
use crate::state::{LockMode, StateError, Status};

pub fn run(context: &Context, args: &RunArgs) -> anyhow::Result<u8> {
    let CreatedState {
        lock,
        mut record,
        backend,
    } = create_container(
        context,
        &NewContainer {
            id: &args.container_id,
            bundle: &args.bundle,
            console_socket: args.console_socket.as_deref(),
            pid_file: args.pid_file.as_deref(),
            no_pivot: args.no_pivot,
            no_new_keyring: args.no_new_keyring,
            preserve_fds: args.preserve_fds,
            detach: args.detach,
        },
    )?;
    let id = lock.id().clone();
    if let Err(error) = backend.start(&record) {
        // A container run could not start is of no use to anyone.
        if let Err(cleanup) = backend.delete(&record, true) {
            logging::warning(format!(
                "container {id}: delete after the failed start: {}",
                husk_init::engine::error_chain(&cleanup)
            ));
        }
        let _ = lock.remove();
        return Err(error).with_context(|| format!("start container {:?}", id.as_str()));
    }
    record.status = Status::Running;
    lock.save(&record)?;
    if args.detach {
        return Ok(0);
    }

    // Let kill, state and ps reach the container while run waits for it.
    drop(lock);
    let status = backend
        .wait(&record)
        .with_context(|| format!("wait for container {:?}", id.as_str()))?;
    if !args.keep {
        match context.store.open(&id, LockMode::Exclusive) {
            Ok(lock) => {
                backend
                    .delete(&record, true)
                    .with_context(|| format!("delete container {:?}", id.as_str()))?;
                lock.remove()?;
            }
            // Someone deleted it meanwhile.
            Err(StateError::NotFound { .. }) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(status)
}
