//! `husk start ID` (runtime.md "start"): let a created container run its
//! process.

use anyhow::bail;

use super::Context;
use crate::cli::StartArgs;
use crate::state::{LockMode, Status};

pub fn run(context: &Context, args: &StartArgs) -> anyhow::Result<u8> {
    let mut container = context.open(&args.container_id, LockMode::Exclusive)?;
    let id = container.id().to_string();
    match container.status()? {
        Status::Created => {}
        Status::Stopped => bail!(
            "cannot start container {id:?}: it has stopped; delete it (husk delete {id}) and \
             create it again"
        ),
        Status::Running => bail!("cannot start container {id:?}: it is already running"),
        Status::Paused => bail!("cannot start container {id:?}: it is paused; resume it instead"),
        Status::Creating => bail!("cannot start container {id:?}: it is still being created"),
    }
    container.change_status("start", Status::Running, |backend, record| {
        backend.start(record)
    })?;
    Ok(0)
}
