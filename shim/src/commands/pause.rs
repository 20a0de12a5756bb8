//! `husk pause ID`: freeze every process of a running container.

use anyhow::bail;

use super::Context;
use crate::cli::PauseArgs;
use crate::state::{LockMode, Status};

pub fn run(context: &Context, args: &PauseArgs) -> anyhow::Result<u8> {
    let mut container = context.open(&args.container_id, LockMode::Exclusive)?;
    let id = container.id().to_string();
    context.refuse_systemd_cgroup()?;
    match container.status()? {
        Status::Running => {}
        Status::Paused => bail!("cannot pause container {id:?}: it is already paused"),
        other => bail!("cannot pause container {id:?}: container not running ({other})"),
    }
    container.change_status("pause", Status::Paused, |backend, record| {
        backend.pause(record)
    })?;
    Ok(0)
}
