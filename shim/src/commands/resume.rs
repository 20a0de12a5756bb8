//! `husk resume ID`: thaw a container `husk pause` froze.

use anyhow::bail;

use super::Context;
use crate::cli::ResumeArgs;
use crate::state::{LockMode, Status};

pub fn run(context: &Context, args: &ResumeArgs) -> anyhow::Result<u8> {
    let mut container = context.open(&args.container_id, LockMode::Exclusive)?;
    let id = container.id().to_string();
    context.refuse_systemd_cgroup()?;
    let status = container.status()?;
    if status != Status::Paused {
        bail!("cannot resume container {id:?}: container not paused ({status})");
    }
    container.change_status("resume", Status::Running, |backend, record| {
        backend.resume(record)
    })?;
    Ok(0)
}
