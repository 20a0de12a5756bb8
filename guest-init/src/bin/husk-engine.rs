//! husk-engine: runs one bundle with the container engine directly on this
//! machine, like `runc run` — for tests and debugging until the husk CLI
//! drives the engine.
//!
//! It creates the container, runs the hooks, starts it, runs each `--exec`
//! process in it one after the other (like `runc exec`), waits for its init
//! (as a child subreaper, so the init and exec'd processes are reaped here
//! even when a pid namespace made them grandchildren), runs the poststop
//! hooks, removes the cgroup and exits with the container's status: its
//! exit code, or 128 + N when signal N killed it. A failure prints one line
//! on stderr and exits 127 or 126 where runc's callers would (program not
//! found, not executable), 1 otherwise.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use husk_init::engine::container::{self, Container, EXEC_FIFO};
use husk_init::engine::hooks::{self, HookStage};
use husk_init::engine::syscall::LinuxSyscall;
use husk_init::engine::{
    error_chain, load_bundle, sys, Bundle, CreateOptions, EngineError, ExecOptions, Stdio,
};
use oci_spec::runtime::{ContainerState, Hook, Process};

const USAGE: &str = "\
usage: husk-engine run --bundle DIR [--id ID] [--state-dir DIR] [--console-socket PATH]
                       [--exec FILE]... [--exec-console-socket PATH]

Runs the OCI bundle in DIR as a container on this machine (as root) and
exits with the container process's status.
  --id ID               container id (default: husk-<pid of husk-engine>)
  --state-dir DIR       where the exec fifo goes (default: /run/husk-engine/ID,
                        removed afterwards)
  --console-socket PATH Unix socket that receives the pty master when
                        process.terminal is true
  --exec FILE           once the container is started, run the process that
                        FILE describes (a config.json \"process\" object, as
                        for runc exec --process) in it, wait for it (the
                        signals husk-engine gets meanwhile go to it), and
                        print `exec exited N` on stderr, N being its status
                        (or, after a line saying why, the exit code of a
                        failed exec: 127 not found, 126 not executable, 1);
                        may be repeated: the processes run one at a time, in
                        order, and the container's init keeps running
  --exec-console-socket PATH
                        Unix socket that receives the pty master of each
                        --exec process whose terminal is true (one
                        connection for each)";

struct Arguments {
    bundle: PathBuf,
    id: String,
    state_dir: Option<PathBuf>,
    console_socket: Option<PathBuf>,
    exec: Vec<PathBuf>,
    exec_console_socket: Option<PathBuf>,
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
    let mut exec = Vec::new();
    let mut exec_console_socket = None;
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
            "--exec" => exec.push(PathBuf::from(value()?)),
            "--exec-console-socket" => exec_console_socket = Some(PathBuf::from(value()?)),
            other => bail!("unknown option {other:?}"),
        }
    }
    Ok(Arguments {
        bundle: bundle.context("--bundle is required")?,
        id: id.unwrap_or_else(|| format!("husk-{}", std::process::id())),
        state_dir,
        console_socket,
        exec,
        exec_console_socket,
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
        .as_deref()
        .map(connect_console_socket)
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
    let mut init_status = None;
    for file in &arguments.exec {
        let code = match exec_and_wait(arguments, &bundle, &container, file, &mut init_status) {
            Ok(code) => code,
            Err(failure) => {
                let (message, code) = match failure {
                    Failure::Engine(error) => (error_chain(&error), error.exit_code()),
                    Failure::Other(error) => (format!("{error:#}"), 1),
                };
                eprintln!("husk-engine: exec {}: {message}", file.display());
                code
            }
        };
        eprintln!("exec exited {code}");
    }
    let status = match init_status {
        Some(status) => status,
        None => container::wait_for_exit(container.pid).context("wait for the container init")?,
    };
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

fn connect_console_socket(path: &Path) -> anyhow::Result<OwnedFd> {
    UnixStream::connect(path)
        .map(OwnedFd::from)
        .with_context(|| format!("connect to the console socket {}", path.display()))
}

/// Runs the process `file` describes in the container and waits for it,
/// forwarding signals to it. Returns its status as an exit code. When the
/// init ends first, its status goes to `init_status`.
fn exec_and_wait(
    arguments: &Arguments,
    bundle: &Bundle,
    container: &Container,
    file: &Path,
    init_status: &mut Option<sys::ExitStatus>,
) -> Result<i32, Failure> {
    let text = std::fs::read_to_string(file).context("read the file")?;
    let process: Process =
        serde_json::from_str(&text).context("not a valid config.json \"process\" object")?;
    let console_socket = match (process.terminal(), &arguments.exec_console_socket) {
        (Some(true), Some(path)) => Some(connect_console_socket(path)?),
        _ => None,
    };
    let pid = husk_init::engine::exec(&ExecOptions {
        container_id: &arguments.id,
        init_pid: container.pid,
        bundle,
        cgroup: Some(&container.cgroup),
        process: &process,
        console_socket,
        stdio: Stdio::Inherit,
        syscall: &LinuxSyscall,
    })?;
    loop {
        let waited_for: &[i32] = match init_status {
            Some(_) => &[pid],
            None => &[pid, container.pid],
        };
        let (ended, status) =
            container::wait_for_first(waited_for, pid).context("wait for the exec'd process")?;
        if ended == pid {
            return Ok(status.code());
        }
        *init_status = Some(status);
    }
}
