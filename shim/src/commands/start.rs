//! `husk start ID` (runtime.md "start"): let a created container run its
//! process.

use anyhow::{bail, Context as _};

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
    container
        .backend
        .start(&container.record)
        .with_context(|| format!("start container {id:?}"))?;
    container.record.status = Status::Running;
    container.lock.save(&container.record)?;
    Ok(0)
}
