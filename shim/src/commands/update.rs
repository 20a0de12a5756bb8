//! `husk update [--resources FILE|-] [--memory ...] ID`: change a running
//! container's resource limits. dockerd sends the whole runtime-spec
//! `linux.resources` object on stdin (`--resources -`, CLIENTS.md).

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context as _};
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};

use super::Context;
use crate::cli::UpdateArgs;
use crate::state::{LockMode, Status};

pub fn run(context: &Context, args: &UpdateArgs) -> anyhow::Result<u8> {
    let container = context.open(&args.container_id, LockMode::Exclusive)?;
    let id = container.id().to_string();
    context.refuse_systemd_cgroup()?;
    if args.l3_cache_schema.is_some() || args.mem_bw_schema.is_some() {
        bail!("husk does not support Intel RDT; drop --l3-cache-schema and --mem-bw-schema");
    }
    if container.status()? == Status::Stopped {
        bail!("cannot update container {id:?}: container not running");
    }
    let resources = match &args.resources {
        Some(path) => read_resources(path)?,
        None => resources_from_flags(args)?,
    };
    container
        .backend
        .update(&container.record, &resources)
        .with_context(|| format!("update the resources of container {id:?}"))?;
    Ok(0)
}

/// `--resources FILE` or `-` (stdin): a runtime-spec `linux.resources`
/// object.
fn read_resources(path: &Path) -> anyhow::Result<LinuxResources> {
    let (name, text) = if path == Path::new("-") {
        let mut text = Vec::new();
        std::io::stdin()
            .read_to_end(&mut text)
            .context("read the resources from stdin (--resources -)")?;
        ("the resources on stdin".to_string(), text)
    } else {
        let text = std::fs::read(path)
            .with_context(|| format!("read the resources file {}", path.display()))?;
        (path.display().to_string(), text)
    };
    serde_json::from_slice(&text)
        .with_context(|| format!("{name}: not a valid runtime-spec linux.resources object"))
}

/// The resources the individual flags set; everything else stays as it is.
fn resources_from_flags(args: &UpdateArgs) -> anyhow::Result<LinuxResources> {
    let mut resources = LinuxResources::default();

    let mut memory = LinuxMemory::default();
    memory
        .set_limit(args.memory)
        .set_reservation(args.memory_reservation)
        .set_swap(args.memory_swap);
    #[allow(deprecated)]
    memory
        .set_kernel(args.kernel_memory)
        .set_kernel_tcp(args.kernel_memory_tcp);
    if memory != LinuxMemory::default() {
        resources.set_memory(Some(memory));
    }

    let mut cpu = LinuxCpu::default();
    cpu.set_shares(args.cpu_shares)
        .set_quota(args.cpu_quota)
        .set_period(args.cpu_period)
        .set_realtime_runtime(args.cpu_rt_runtime)
        .set_realtime_period(args.cpu_rt_period)
        .set_cpus(args.cpuset_cpus.clone())
        .set_mems(args.cpuset_mems.clone());
    if cpu != LinuxCpu::default() {
        resources.set_cpu(Some(cpu));
    }

    if let Some(limit) = args.pids_limit {
        let mut pids = LinuxPids::default();
        pids.set_limit(limit);
        resources.set_pids(Some(pids));
    }
    if let Some(weight) = args.blkio_weight {
        if !(10..=1000).contains(&weight) {
            bail!("--blkio-weight {weight}: give a weight from 10 to 1000");
        }
        let mut block_io = LinuxBlockIo::default();
        block_io.set_weight(Some(weight));
        resources.set_block_io(Some(block_io));
    }

    if resources == LinuxResources::default() {
        bail!(
            "nothing to update: give --resources FILE or a limit such as --memory or --pids-limit"
        );
    }
    Ok(resources)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn update_args(line: &str) -> UpdateArgs {
        let words = ["husk", "update"]
            .into_iter()
            .chain(line.split_whitespace());
        match Cli::try_parse_from(words).unwrap().command {
            Some(Command::Update(args)) => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_the_given_limits_are_set() {
        let resources = resources_from_flags(&update_args(
            "--memory 1g --cpu-quota 50000 --pids-limit 64 c1",
        ))
        .unwrap();
        let memory = resources.memory().as_ref().unwrap();
        assert_eq!(memory.limit(), Some(1 << 30));
        assert_eq!(memory.swap(), None);
        let cpu = resources.cpu().as_ref().unwrap();
        assert_eq!(cpu.quota(), Some(50_000));
        assert_eq!(cpu.period(), None);
        assert_eq!(resources.pids().as_ref().unwrap().limit(), 64);
        assert!(resources.block_io().is_none());
    }

    #[test]
    fn no_limits_at_all_is_an_error() {
        let error = resources_from_flags(&update_args("c1")).unwrap_err();
        assert!(error.to_string().contains("nothing to update"));
        assert!(resources_from_flags(&update_args("--blkio-weight 5 c1")).is_err());
    }

    #[test]
    fn docker_s_resources_json() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("resources.json");
        std::fs::write(
            &path,
            r#"{"memory": {"limit": 268435456, "swap": 536870912},
                "cpu": {"shares": 512, "quota": 0, "period": 0, "cpus": "", "mems": ""},
                "blockIO": {"weight": 0}, "pids": {"limit": 0}}"#,
        )
        .unwrap();
        let resources = read_resources(&path).unwrap();
        assert_eq!(
            resources.memory().as_ref().unwrap().limit(),
            Some(268_435_456)
        );
        assert_eq!(resources.cpu().as_ref().unwrap().shares(), Some(512));
        std::fs::write(&path, r#"{"memory": {"limit": "lots"}}"#).unwrap();
        let error = format!("{:#}", read_resources(&path).unwrap_err());
        assert!(
            error.contains("resources.json: not a valid runtime-spec"),
            "{error}"
        );
    }
}
