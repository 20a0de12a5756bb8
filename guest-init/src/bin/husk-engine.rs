//! husk-engine: runs one bundle with the container engine directly on this
//! machine, like `runc run` — for tests and debugging until the husk CLI
//! drives the engine.
//!
//! It creates the container, runs the hooks, starts it, waits for its init
//! (as a child subreaper, so the init is reaped here even when a pid
//! namespace made it a grandchild), runs the poststop hooks, removes the
//! cgroup and exits with the container's status: its exit code, or 128 + N
//! when signal N killed it. A failure prints one line on stderr and exits
//! 127 or 126 where runc's callers would (program not found, not
//! executable), 1 otherwise.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use husk_init::engine::container::{self, EXEC_FIFO};
use husk_init::engine::hooks::{self, HookStage};
use husk_init::engine::syscall::LinuxSyscall;
use husk_init::engine::{error_chain, load_bundle, sys, CreateOptions, EngineError, Stdio};
use oci_spec::runtime::{ContainerState, Hook};

const USAGE: &str = "\
usage: husk-engine run --bundle DIR [--id ID] [--state-dir DIR] [--console-socket PATH]

Runs the OCI bundle in DIR as a container on this machine (as root) and
exits with the container process's status.
  --id ID               container id (default: husk-<pid of husk-engine>)
  --state-dir DIR       where the exec fifo goes (default: /run/husk-engine/ID,
                        removed afterwards)
  --console-socket PATH Unix socket that receives the pty master when
                        process.terminal is true";

struct Arguments {
    bundle: PathBuf,
    id: String,
    state_dir: Option<PathBuf>,
    console_socket: Option<PathBuf>,
}

fn parse_arguments() -> anyhow::Result<Arguments> {
    let mut arguments = std::env::args().skip(1);
    match arguments.next().as_deref() {
        Some("run") => {}
        Some("--help") | Some("-h") => {
            println!("{USAGE}");
            std::process::exit(0);
        }
        Some(other) => bail!("unknown command {other:?}"),
        None => bail!("no command given"),
    }
    let mut bundle = None;
    let mut id = None;
    let mut state_dir = None;
    let mut console_socket = None;
    while let Some(flag) = arguments.next() {
        let mut value = || {
            arguments
                .next()
                .with_context(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--bundle" | "-b" => bundle = Some(PathBuf::from(value()?)),
            "--id" => id = Some(value()?),
            "--state-dir" => state_dir = Some(PathBuf::from(value()?)),
            "--console-socket" => console_socket = Some(PathBuf::from(value()?)),
            other => bail!("unknown option {other:?}"),
        }
    }
    Ok(Arguments {
        bundle: bundle.context("--bundle is required")?,
        id: id.unwrap_or_else(|| format!("husk-{}", std::process::id())),
        state_dir,
        console_socket,
    })
}

/// How the run ended: the container's status, or an error with the exit
/// code to report it with.
enum Failure {
    Engine(EngineError),
    Other(anyhow::Error),
}

impl From<EngineError> for Failure {
    fn from(error: EngineError) -> Self {
        Failure::Engine(error)
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Failure::Other(error)
    }
}

fn main() -> ExitCode {
    let arguments = match parse_arguments() {
        Ok(arguments) => arguments,
        Err(error) => {
            eprintln!("husk-engine: {error}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&arguments) {
        Ok(status) => ExitCode::from(status.clamp(0, 255) as u8),
        Err(Failure::Engine(error)) => {
            eprintln!("husk-engine: {}", error_chain(&error));
            ExitCode::from(error.exit_code() as u8)
        }
        Err(Failure::Other(error)) => {
            eprintln!("husk-engine: {error:#}");
            ExitCode::from(1)
        }
    }
}

/// Removes the default state directory when the run ends.
struct StateDir {
    path: PathBuf,
    remove: bool,
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.path.join(EXEC_FIFO));
        if self.remove {
            let _ = std::fs::remove_dir(&self.path);
        }
    }
}

fn run(arguments: &Arguments) -> Result<i32, Failure> {
    sys::set_child_subreaper().context("become a child subreaper")?;
    let bundle = load_bundle(&arguments.bundle).map_err(anyhow::Error::from)?;
    let state_dir = match &arguments.state_dir {
        Some(path) => StateDir {
            path: path.clone(),
            remove: false,
        },
        None => StateDir {
            path: Path::new("/run/husk-engine").join(&arguments.id),
            remove: true,
        },
    };
    std::fs::create_dir_all(&state_dir.path)
        .with_context(|| format!("create the state directory {}", state_dir.path.display()))?;
    let console_socket = arguments
        .console_socket
        .as_ref()
        .map(|path| {
            UnixStream::connect(path)
                .map(OwnedFd::from)
                .with_context(|| format!("connect to the console socket {}", path.display()))
        })
        .transpose()?;

    let container = husk_init::engine::create(&CreateOptions {
        id: &arguments.id,
        bundle: &bundle,
        state_dir: &state_dir.path,
        console_socket,
        stdio: Stdio::Inherit,
        syscall: &LinuxSyscall,
    })?;
    for warning in container.cgroup.warnings() {
        // Settings this host's cgroups cannot carry out; the container runs.
        eprintln!("husk-engine: warning: {warning}");
    }
    container::prepare_to_wait().context("block the signals to forward")?;
    let hooks = bundle.spec.hooks().clone().unwrap_or_default();
    let run_hooks = |list: &Option<Vec<Hook>>, stage, name, status| -> anyhow::Result<()> {
        let Some(list) = list.as_deref().filter(|list| !list.is_empty()) else {
            return Ok(());
        };
        let state = container.state(status);
        std::env::set_current_dir(&bundle.path).ok();
        hooks::run_hooks(list, stage, &state)
            .map_err(|error| anyhow::anyhow!("hooks.{name}: {}", error_chain(&error)))
    };

    let started = container.start().map_err(Failure::from).and_then(|()| {
        run_hooks(
            hooks.poststart(),
            HookStage::Poststart,
            "poststart",
            ContainerState::Running,
        )
        .map_err(Failure::from)
    });
    if let Err(failure) = started {
        // runc: a failed poststart hook stops the container.
        let _ = container.kill(libc::SIGKILL, true);
        let _ = container::wait_for_exit(container.pid);
        let _ = container.destroy();
        return Err(failure);
    }
    let status = container::wait_for_exit(container.pid).context("wait for the container init")?;
    let stopped_state_hooks = run_hooks(
        hooks.poststop(),
        HookStage::Poststop,
        "poststop",
        ContainerState::Stopped,
    );
    container.destroy()?;
    if let Err(error) = stopped_state_hooks {
        // runtime.md: a poststop hook's failure is logged, the delete goes on.
        eprintln!("husk-engine: warning: {error:#}");
    }
    Ok(status.code())
}
