//! `husk spec [--bundle DIR] [--rootless]`: write a starter config.json, as
//! runc spec does (see `spec_template`).

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

use super::Context;
use crate::backend::BackendKind;
use crate::cli::SpecArgs;
use crate::config;
use crate::spec_template::{default_spec, to_json, TemplateOptions};

/// Present only when the host's /sys/fs/cgroup is a cgroup2 mount (the
/// unified hierarchy).
const CGROUP2_CONTROLLERS: &str = "/sys/fs/cgroup/cgroup.controllers";

pub fn run(context: &Context, args: &SpecArgs) -> anyhow::Result<u8> {
    let bundle = match &args.bundle {
        Some(bundle) => bundle.clone(),
        None => PathBuf::from("."),
    };
    let rootless = if args.rootless {
        Some(effective_ids()?)
    } else {
        None
    };
    let template = default_spec(TemplateOptions {
        cgroup_namespace: cgroup_is_v2_only(context)?,
        rootless,
    });
    let path = bundle.join("config.json");
    let mut file = match OpenOptions::new().write(true).create_new(true).open(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == ErrorKind::AlreadyExists => {
            bail!("File {} exists. Remove it first", path.display())
        }
        Err(error) => {
            return Err(error).with_context(|| format!("create {}", path.display()));
        }
    };
    file.write_all(&to_json(&template))
        .with_context(|| format!("write {}", path.display()))?;
    Ok(0)
}

/// Whether the container will see a cgroup v2-only hierarchy, where runc
/// adds a cgroup namespace: always inside the VM; on the host only when it
/// is unified. The backend is the one a `create` without annotation would
/// pick.
fn cgroup_is_v2_only(context: &Context) -> anyhow::Result<bool> {
    let backend = match context.global.backend {
        Some(kind) => kind,
        None => config::load()?.0.backend.unwrap_or(BackendKind::Vm),
    };
    Ok(match backend {
        BackendKind::Vm => true,
        BackendKind::Container => Path::new(CGROUP2_CONTROLLERS).exists(),
    })
}

/// The effective uid and gid of this process (proc(5), /proc/self/status:
/// "Uid:" and "Gid:" list real, effective, saved and filesystem ids).
fn effective_ids() -> anyhow::Result<(u32, u32)> {
    let status = std::fs::read_to_string("/proc/self/status")
        .context("read /proc/self/status for the user to map (--rootless)")?;
    let effective = |key: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|ids| ids.split_whitespace().nth(1))
            .and_then(|id| id.parse::<u32>().ok())
            .with_context(|| format!("/proc/self/status has no {key} line"))
    };
    Ok((effective("Uid:")?, effective("Gid:")?))
}
