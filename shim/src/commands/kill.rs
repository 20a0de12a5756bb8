//! `husk kill [--all] ID [SIGNAL]` (runtime.md "kill"): signal the
//! container's process, or with --all every process in it.

use anyhow::{bail, Context as _};

use super::Context;
use crate::cli::KillArgs;
use crate::state::{LockMode, Status};

pub fn run(context: &Context, args: &KillArgs) -> anyhow::Result<u8> {
    let container = context.open(&args.container_id, LockMode::Shared)?;
    let id = container.id().to_string();
    // containerd and podman read "container not running" as "already gone".
    if !args.all && container.status()? == Status::Stopped {
        bail!("cannot kill container {id:?}: container not running");
    }
    if args.all {
        context.refuse_systemd_cgroup()?;
    }
    container
        .backend
        .kill(&container.record, args.signal, args.all)
        .with_context(|| format!("send {} to container {id:?}", args.signal))?;
    Ok(0)
}
