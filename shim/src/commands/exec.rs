//! `husk exec [options] ID COMMAND...` or `husk exec --process FILE ID`:
//! run another process in a running container (runc's exec).
//!
//! With --detach, husk returns as soon as the process runs and its pid is in
//! the pid file; conmon and containerd's shim then reap that pid and take
//! its exit status (CLIENTS.md). Without, husk waits and exits with the
//! process's status.

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use anyhow::{bail, Context as _};
use husk_init::engine::spec::parse_config;
use oci_spec::runtime::{Capability, LinuxCapabilities, Process};

use super::{absolute, write_pid_file, Context};
use crate::backend::ExecContext;
use crate::cli::ExecArgs;
use crate::state::{LockMode, Status};

pub fn run(context: &Context, args: &ExecArgs) -> anyhow::Result<u8> {
    let container = context.open(&args.container_id, LockMode::Shared)?;
    let id = container.id().to_string();
    match container.status()? {
        Status::Stopped => bail!("cannot exec in container {id:?}: it has stopped"),
        Status::Paused if !args.ignore_paused => bail!(
            "cannot exec in container {id:?}: it is paused (resume it, or use --ignore-paused)"
        ),
        _ => {}
    }
    context.refuse_systemd_cgroup()?;
    let process = match &args.process {
        Some(path) => process_from_file(path)?,
        None => process_from_flags(args, &container.record.bundle)?,
    };
    let console_socket = args.console_socket.as_deref().map(absolute).transpose()?;
    let pid_file = args.pid_file.as_deref().map(absolute).transpose()?;
    let backend = container.backend.as_ref();
    let pid = backend
        .exec(&ExecContext {
            container: &container.record,
            process: &process,
            detach: args.detach,
            console_socket: console_socket.as_deref(),
            pid_file: pid_file.as_deref(),
            preserve_fds: args.preserve_fds,
            cli_started: context.started,
        })
        .with_context(|| format!("exec in container {id:?}"))?;
    if let Some(path) = &pid_file {
        write_pid_file(path, pid)?;
    }
    if args.detach {
        return Ok(0);
    }
    // Other calls on the container (kill, state, a second exec) must not
    // wait for this process to end.
    drop(container.lock);
    let status = backend
        .wait_exec(&container.record, pid)
        .with_context(|| format!("wait for process {pid} in container {id:?}"))?;
    Ok(status)
}

/// `--process FILE`: a runtime-spec `process` object.
fn process_from_file(path: &Path) -> anyhow::Result<Process> {
    let text =
        fs::read(path).with_context(|| format!("read the process file {}", path.display()))?;
    let process: Process = serde_json::from_slice(&text)
        .with_context(|| format!("{}: not a valid runtime-spec process", path.display()))?;
    check_process(&process, &path.display().to_string())?;
    Ok(process)
}

/// runc's rule: the bundle's process, with the command and the flags
/// applied over it.
fn process_from_flags(args: &ExecArgs, bundle: &Path) -> anyhow::Result<Process> {
    if args.command.is_empty() {
        bail!("give the command to run after the container ID, or a process file with --process");
    }
    let config_path = bundle.join("config.json");
    let text = fs::read_to_string(&config_path).with_context(|| {
        format!(
            "read the container's config {} to build the process (or give --process FILE)",
            config_path.display()
        )
    })?;
    let spec = parse_config(&config_path, &text)?;
    let mut process = spec.process().clone().unwrap_or_default();
    apply_flags(&mut process, args)?;
    check_process(&process, "the exec flags")?;
    Ok(process)
}

/// Applies exec's flags to `process`, as runc's getProcess does.
fn apply_flags(process: &mut Process, args: &ExecArgs) -> anyhow::Result<()> {
    process.set_args(Some(args.command.clone()));
    if let Some(cwd) = &args.cwd {
        process.set_cwd(cwd.clone());
    }
    if let Some(profile) = &args.apparmor {
        process.set_apparmor_profile(Some(profile.clone()));
    }
    if let Some(label) = &args.process_label {
        process.set_selinux_label(Some(label.clone()));
    }
    if !args.cap.is_empty() {
        let mut added = HashSet::new();
        for name in &args.cap {
            let capability: Capability =
                serde_json::from_value(serde_json::json!(name)).map_err(|_| {
                    anyhow::anyhow!("--cap {name:?}: not a capability name (such as CAP_NET_ADMIN)")
                })?;
            added.insert(capability);
        }
        let mut capabilities = process.capabilities().clone().unwrap_or_default();
        add_to_every_set(&mut capabilities, &added);
        process.set_capabilities(Some(capabilities));
    }
    let mut env = process.env().clone().unwrap_or_default();
    env.extend(args.env.iter().cloned());
    process.set_env(Some(env));
    // A process the flags describe has a terminal only with --tty.
    process.set_terminal(Some(args.tty));
    if args.no_new_privs {
        process.set_no_new_privileges(Some(true));
    }
    if let Some(user) = args.user {
        process.user_mut().set_uid(user.uid);
        if let Some(gid) = user.gid {
            process.user_mut().set_gid(gid);
        }
    }
    if !args.additional_gids.is_empty() {
        let mut gids = process.user().additional_gids().clone().unwrap_or_default();
        gids.extend(&args.additional_gids);
        process.user_mut().set_additional_gids(Some(gids));
    }
    Ok(())
}

fn add_to_every_set(capabilities: &mut LinuxCapabilities, added: &HashSet<Capability>) {
    let extend = |set: &Option<HashSet<Capability>>| {
        let mut set = set.clone().unwrap_or_default();
        set.extend(added.iter().copied());
        Some(set)
    };
    let bounding = extend(capabilities.bounding());
    let effective = extend(capabilities.effective());
    let inheritable = extend(capabilities.inheritable());
    let permitted = extend(capabilities.permitted());
    let ambient = extend(capabilities.ambient());
    capabilities
        .set_bounding(bounding)
        .set_effective(effective)
        .set_inheritable(inheritable)
        .set_permitted(permitted)
        .set_ambient(ambient);
}

/// What runc's ValidateProcessSpec checks (config.md "Process": args is
/// required, cwd must be absolute).
fn check_process(process: &Process, source: &str) -> anyhow::Result<()> {
    if process.args().as_ref().is_none_or(|args| args.is_empty()) {
        bail!("{source}: args: the process needs a command (args must not be empty)");
    }
    if !process.cwd().is_absolute() {
        bail!(
            "{source}: cwd: {:?} is not an absolute path",
            process.cwd().display().to_string()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn exec_args(line: &str) -> ExecArgs {
        let words = ["husk", "exec"].into_iter().chain(line.split_whitespace());
        match Cli::try_parse_from(words).unwrap().command {
            Some(Command::Exec(args)) => args,
            other => panic!("{other:?}"),
        }
    }

    fn bundle_process() -> Process {
        serde_json::from_value(serde_json::json!({
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/bin"],
            "cwd": "/",
            "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"]},
        }))
        .unwrap()
    }

    #[test]
    fn flags_change_the_bundle_s_process_as_runc_does() {
        let mut process = bundle_process();
        let args = exec_args(
            "-e A=1 --cwd /tmp -u 1000:100 -g 7 --cap CAP_NET_ADMIN --no-new-privs c1 ls -l",
        );
        apply_flags(&mut process, &args).unwrap();
        assert_eq!(process.args().as_ref().unwrap(), &["ls", "-l"]);
        assert_eq!(process.env().as_ref().unwrap(), &["PATH=/bin", "A=1"]);
        assert_eq!(process.cwd(), Path::new("/tmp"));
        assert_eq!((process.user().uid(), process.user().gid()), (1000, 100));
        assert_eq!(process.user().additional_gids().as_ref().unwrap(), &[7]);
        // The bundle's process had a terminal; an exec gets one only with -t.
        assert_eq!(process.terminal(), Some(false));
        assert_eq!(process.no_new_privileges(), Some(true));
        let capabilities = process.capabilities().as_ref().unwrap();
        for set in [
            capabilities.bounding(),
            capabilities.effective(),
            capabilities.inheritable(),
            capabilities.permitted(),
            capabilities.ambient(),
        ] {
            assert!(set.as_ref().unwrap().contains(&Capability::NetAdmin));
        }
        assert!(capabilities
            .bounding()
            .as_ref()
            .unwrap()
            .contains(&Capability::Kill));
    }

    #[test]
    fn unknown_capabilities_are_named() {
        let mut process = bundle_process();
        let error = apply_flags(&mut process, &exec_args("--cap CAP_FLY c1 sh")).unwrap_err();
        assert!(error.to_string().contains("\"CAP_FLY\""), "{error}");
    }

    #[test]
    fn a_process_file_needs_args_and_an_absolute_cwd() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("process.json");
        fs::write(
            &path,
            r#"{"user": {"uid": 0, "gid": 0}, "args": ["top"], "cwd": "/"}"#,
        )
        .unwrap();
        assert_eq!(
            process_from_file(&path).unwrap().args().as_ref().unwrap(),
            &["top"]
        );
        fs::write(
            &path,
            r#"{"user": {"uid": 0, "gid": 0}, "args": [], "cwd": "/"}"#,
        )
        .unwrap();
        assert!(process_from_file(&path)
            .unwrap_err()
            .to_string()
            .contains("args"));
        fs::write(
            &path,
            r#"{"user": {"uid": 0, "gid": 0}, "args": ["x"], "cwd": "tmp"}"#,
        )
        .unwrap();
        assert!(process_from_file(&path)
            .unwrap_err()
            .to_string()
            .contains("cwd"));
        fs::write(&path, "{").unwrap();
        let error = format!("{:#}", process_from_file(&path).unwrap_err());
        assert!(
            error.contains("process.json: not a valid runtime-spec process"),
            "{error}"
        );
    }

    #[test]
    fn without_a_command_or_process_file_exec_says_what_to_give() {
        let error = process_from_flags(&exec_args("c1"), Path::new("/nonexistent")).unwrap_err();
        assert!(error.to_string().contains("--process"), "{error}");
    }
}
