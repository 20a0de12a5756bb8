//! The command line: runc's global flags and verbs with runc's flag names and
//! defaults (runc 1.1, `runc --help`, `runc <verb> --help`), so that
//! podman/conmon, containerd's runc shim and dockerd can call husk as they
//! call runc (CLIENTS.md). Only argument structs and value parsers live here;
//! what each verb does is in `commands/`.
//!
//! As with runc, a verb's options may come before or after the container ID
//! (`husk create ID --bundle B`), except for `exec` and `ps`, where
//! everything after the ID (and after the command's first word, for exec)
//! belongs to the command run in the container.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::backend::BackendKind;
use crate::logging::LogFormat;
use crate::signal::Signal;

pub const DEFAULT_ROOT: &str = "/run/husk";

const ABOUT: &str = "Open Container Initiative runtime that runs each container in its own \
KVM virtual machine";

const LONG_ABOUT: &str = "\
husk is an OCI runtime: it runs containers from OCI bundles (a directory with
config.json and a root filesystem) and takes the same commands and flags as
runc. Each container runs in its own KVM virtual machine (backend \"vm\"), or
directly on this host with namespaces and cgroups (backend \"container\").

To start a new container from the bundle in the current directory:

    husk run [ -b bundle ] <container-id>";

const AFTER_LONG_HELP: &str = "\
BACKEND SELECTION:
  create and run pick the backend of a new container, first match wins:
    1. --backend vm|container
    2. the annotation \"run.husk.backend\": \"vm\"|\"container\" in config.json
    3. \"backend\" in the configuration file /etc/husk/config.json, or the file
       named by the environment variable HUSK_CONFIG, e.g.
           {\"backend\": \"container\"}
       (the file is optional; its other keys, \"kernel\", \"initramfs\" and
       \"vmm\", name what the vm backend boots)
    4. vm
  Every other command uses the backend the container was created with.";

/// husk's whole command line.
#[derive(Debug, Parser)]
#[command(
    name = "husk",
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_long_help = AFTER_LONG_HELP,
    disable_version_flag = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOptions,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The flags before the verb (runc's global flags).
#[derive(Debug, Clone, Args)]
pub struct GlobalOptions {
    /// Root directory for storage of container state (this should be located in tmpfs)
    #[arg(long, value_name = "DIR", default_value = DEFAULT_ROOT)]
    pub root: PathBuf,
    /// Set the log file path where internal debug information is written
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Set the format used by logs
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    /// Enable debug output for logging
    #[arg(long)]
    pub debug: bool,
    /// Use systemd to manage cgroups (not supported: husk manages cgroups
    /// through cgroupfs)
    #[arg(long)]
    pub systemd_cgroup: bool,
    /// Backend for new containers [default: see BACKEND SELECTION]
    #[arg(long, value_enum, value_name = "BACKEND")]
    pub backend: Option<BackendKind>,
    /// runc's --rootless (ignore cgroup permission errors); accepted for
    /// compatibility
    #[arg(long, value_name = "true|false|auto", hide = true,
          value_parser = ["true", "false", "auto"])]
    pub rootless: Option<String>,
    /// runc's --criu (checkpoint/restore helper); accepted for compatibility
    #[arg(long, value_name = "PATH", hide = true)]
    pub criu: Option<PathBuf>,
    /// Print the version
    #[arg(short = 'v', long = "version")]
    pub version: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a container
    Create(CreateArgs),
    /// Delete any resources held by the container, often used with detached containers
    Delete(DeleteArgs),
    /// Display container events such as resource usage statistics
    Events(EventsArgs),
    /// Execute a new process inside the container
    Exec(ExecArgs),
    /// Show the enabled features (JSON, runtime-spec features.md)
    Features(FeaturesArgs),
    /// Send the specified signal (default: SIGTERM) to the container's init process
    Kill(KillArgs),
    /// List containers started by husk with the given root
    List(ListArgs),
    /// Suspend all processes inside the container
    Pause(PauseArgs),
    /// Display the processes running inside a container
    Ps(PsArgs),
    /// Resume all processes that have been previously paused
    Resume(ResumeArgs),
    /// Create and run a container
    Run(RunArgs),
    /// Create a new specification file (config.json)
    Spec(SpecArgs),
    /// Execute the user defined process in a created container
    Start(StartArgs),
    /// Output the state of a container
    State(StateArgs),
    /// Update container resource constraints
    Update(UpdateArgs),
}

#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    /// Path to the root of the bundle directory
    #[arg(short, long, value_name = "DIR", default_value = ".")]
    pub bundle: PathBuf,
    /// Path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Specify the file to write the process id to
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Do not use pivot root to jail process inside rootfs
    #[arg(long)]
    pub no_pivot: bool,
    /// Do not create a new session keyring for the container
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass N additional file descriptors to the container (stdio + N in total)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Your name for the new container, unique on this host
    pub container_id: String,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Path to the root of the bundle directory
    #[arg(short, long, value_name = "DIR", default_value = ".")]
    pub bundle: PathBuf,
    /// Path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Detach from the container's process
    #[arg(short, long)]
    pub detach: bool,
    /// Specify the file to write the process id to
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Do not make husk a subreaper for the container's orphans
    #[arg(long)]
    pub no_subreaper: bool,
    /// Do not use pivot root to jail process inside rootfs
    #[arg(long)]
    pub no_pivot: bool,
    /// Do not create a new session keyring for the container
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass N additional file descriptors to the container (stdio + N in total)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Do not delete the container after it exits
    #[arg(long)]
    pub keep: bool,
    /// Your name for the new container, unique on this host
    pub container_id: String,
}

/// One container ID and nothing else (start, state, pause, resume).
#[derive(Debug, Clone, Args)]
pub struct ContainerIdArg {
    /// The container's ID
    pub container_id: String,
}

pub type StartArgs = ContainerIdArg;
pub type StateArgs = ContainerIdArg;
pub type PauseArgs = ContainerIdArg;
pub type ResumeArgs = ContainerIdArg;

#[derive(Debug, Clone, Args)]
pub struct KillArgs {
    /// Send the signal to all processes inside the container
    #[arg(short, long)]
    pub all: bool,
    /// The container's ID
    pub container_id: String,
    /// Signal number or name, with or without SIG (15, SIGTERM, TERM)
    #[arg(default_value = "SIGTERM", value_parser = parse_signal)]
    pub signal: Signal,
}

#[derive(Debug, Clone, Args)]
pub struct DeleteArgs {
    /// Forcibly delete the container if it is still running (uses SIGKILL); succeed when it does not exist
    #[arg(short, long)]
    pub force: bool,
    /// The container's ID
    pub container_id: String,
}

#[derive(Debug, Clone, Args)]
pub struct ExecArgs {
    /// Path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Current working directory in the container
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// Set an environment variable (repeatable)
    #[arg(short, long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// User to run as: UID[:GID]
    #[arg(short, long, value_name = "UID[:GID]", value_parser = parse_user)]
    pub user: Option<UserSpec>,
    /// Additional group ID (repeatable)
    #[arg(short = 'g', long = "additional-gids", value_name = "GID")]
    pub additional_gids: Vec<u32>,
    /// Path to the process.json describing the process; replaces the command and the flags that shape it
    #[arg(short, long, value_name = "FILE")]
    pub process: Option<PathBuf>,
    /// Detach from the process: return once it runs
    #[arg(short, long)]
    pub detach: bool,
    /// Specify the file to write the process id to
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Set the SELinux label for the process
    #[arg(long, value_name = "LABEL")]
    pub process_label: Option<String>,
    /// Set the AppArmor profile for the process
    #[arg(long, value_name = "PROFILE")]
    pub apparmor: Option<String>,
    /// Set no_new_privs for the process
    #[arg(long)]
    pub no_new_privs: bool,
    /// Add a capability to every capability set of the process (repeatable)
    #[arg(short, long = "cap", value_name = "CAP")]
    pub cap: Vec<String>,
    /// Pass N additional file descriptors to the process (stdio + N in total)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Exec in a paused container too (the process starts frozen)
    #[arg(long)]
    pub ignore_paused: bool,
    /// runc's hidden --no-subreaper; accepted for compatibility
    #[arg(long, hide = true)]
    pub no_subreaper: bool,
    /// The container's ID
    pub container_id: String,
    /// The command and its arguments (unless --process is given)
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<String>,
}

/// `--user UID[:GID]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserSpec {
    pub uid: u32,
    pub gid: Option<u32>,
}

/// `--format` of ps and list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct PsArgs {
    /// Output format
    #[arg(short, long, value_enum, default_value = "table")]
    pub format: OutputFormat,
    /// The container's ID
    pub container_id: String,
    /// Options for ps(1) in table format (default: -ef)
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "PS_OPTIONS"
    )]
    pub ps_options: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Output format
    #[arg(short, long, value_enum, default_value = "table")]
    pub format: OutputFormat,
    /// Display only container IDs
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Args)]
pub struct SpecArgs {
    /// Path to the root of the bundle directory (default: the current directory)
    #[arg(short, long, value_name = "DIR")]
    pub bundle: Option<PathBuf>,
    /// Generate a configuration for a rootless container
    #[arg(long)]
    pub rootless: bool,
}

#[derive(Debug, Clone, Args)]
pub struct FeaturesArgs {}

#[derive(Debug, Clone, Args)]
pub struct UpdateArgs {
    /// Path to a JSON file with the resources to update (runtime-spec linux.resources), or - for stdin; all other options are then ignored
    #[arg(short, long, value_name = "FILE|-")]
    pub resources: Option<PathBuf>,
    /// Block IO weight, 10 to 1000
    #[arg(long, value_name = "WEIGHT")]
    pub blkio_weight: Option<u16>,
    /// CPU CFS period in microseconds (0: the system default)
    #[arg(long, value_name = "MICROSECONDS")]
    pub cpu_period: Option<u64>,
    /// CPU CFS quota in microseconds per period (-1: unlimited)
    #[arg(long, value_name = "MICROSECONDS", allow_negative_numbers = true)]
    pub cpu_quota: Option<i64>,
    /// CPU shares (relative weight against other containers)
    #[arg(
        long = "cpu-share",
        visible_alias = "cpu-shares",
        value_name = "SHARES"
    )]
    pub cpu_shares: Option<u64>,
    /// CPU realtime period in microseconds
    #[arg(long, value_name = "MICROSECONDS")]
    pub cpu_rt_period: Option<u64>,
    /// CPU realtime runtime in microseconds per period
    #[arg(long, value_name = "MICROSECONDS", allow_negative_numbers = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// CPUs to use (0-3, 0,1)
    #[arg(long, value_name = "CPUS")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes to use (0-3, 0,1)
    #[arg(long, value_name = "NODES")]
    pub cpuset_mems: Option<String>,
    /// Kernel memory limit (bytes, or with a unit: 512k, 64m, 1g)
    #[arg(long, value_name = "BYTES", value_parser = parse_memory_bytes, allow_negative_numbers = true)]
    pub kernel_memory: Option<i64>,
    /// Kernel memory limit for TCP buffers
    #[arg(long, value_name = "BYTES", value_parser = parse_memory_bytes, allow_negative_numbers = true)]
    pub kernel_memory_tcp: Option<i64>,
    /// Memory limit (bytes, or with a unit: 512k, 64m, 1g; -1: unlimited)
    #[arg(long, value_name = "BYTES", value_parser = parse_memory_bytes, allow_negative_numbers = true)]
    pub memory: Option<i64>,
    /// Memory reservation or soft limit
    #[arg(long, value_name = "BYTES", value_parser = parse_memory_bytes, allow_negative_numbers = true)]
    pub memory_reservation: Option<i64>,
    /// Total memory usage (memory + swap); -1 for unlimited swap
    #[arg(long, value_name = "BYTES", value_parser = parse_memory_bytes, allow_negative_numbers = true)]
    pub memory_swap: Option<i64>,
    /// Maximum number of pids in the container (-1 or 0: unlimited)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    /// Intel RDT L3 cache schema (not supported)
    #[arg(long, value_name = "SCHEMA")]
    pub l3_cache_schema: Option<String>,
    /// Intel RDT memory bandwidth schema (not supported)
    #[arg(long, value_name = "SCHEMA")]
    pub mem_bw_schema: Option<String>,
    /// The container's ID
    pub container_id: String,
}

#[derive(Debug, Clone, Args)]
pub struct EventsArgs {
    /// Interval between statistics (Go duration: 5s, 500ms, 1m30s)
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Display the container's stats once, then exit
    #[arg(long)]
    pub stats: bool,
    /// The container's ID
    pub container_id: String,
}

fn parse_signal(text: &str) -> Result<Signal, String> {
    text.parse()
        .map_err(|error: crate::signal::SignalError| error.to_string())
}

/// `UID[:GID]`, numbers only, as runc's exec --user.
pub fn parse_user(text: &str) -> Result<UserSpec, String> {
    let number = |part: &str, what: &str| {
        part.parse::<u32>()
            .map_err(|_| format!("{part:?} is not a numeric {what}; use UID[:GID] with numbers"))
    };
    let (uid, gid) = match text.split_once(':') {
        Some((uid, gid)) => (number(uid, "uid")?, Some(number(gid, "gid")?)),
        None => (number(text, "uid")?, None),
    };
    Ok(UserSpec { uid, gid })
}

/// A byte count as docker's units.RAMInBytes reads it (runc's update): a
/// number, optionally with a unit b, k, m, g, t or p (1024-based; a trailing
/// "b" or "ib" allowed, any case), or -1 for unlimited.
pub fn parse_memory_bytes(text: &str) -> Result<i64, String> {
    let invalid =
        || format!("{text:?} is not a size; give bytes, or a number with k, m, g, t or p");
    if text == "-1" {
        return Ok(-1);
    }
    let lower = text.trim().to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(digits_end);
    let number: f64 = number.parse().map_err(|_| invalid())?;
    let shift = match unit.trim() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        "p" | "pb" | "pib" => 50,
        _ => return Err(invalid()),
    };
    let bytes = number * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes >= i64::MAX as f64 {
        return Err(invalid());
    }
    Ok(bytes as i64)
}

/// A duration as Go's time.ParseDuration reads it (runc's events
/// --interval): one or more decimal numbers each with a unit ns, us, µs,
/// ms, s, m or h, such as "5s", "1.5s" or "1m30s".
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("{text:?} is not a duration; write it like 5s, 500ms or 1m30s");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text;
    let mut total = 0f64;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let number: f64 = rest[..number_end].parse().map_err(|_| invalid())?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        total += number * seconds_per_unit;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Cli {
        let words = std::iter::once("husk").chain(line.split_whitespace());
        Cli::try_parse_from(words).unwrap_or_else(|error| panic!("{line}: {error}"))
    }

    fn parse_error(line: &str) -> String {
        let words = std::iter::once("husk").chain(line.split_whitespace());
        Cli::try_parse_from(words).unwrap_err().to_string()
    }

    fn command(line: &str) -> Command {
        parse(line).command.expect("a verb")
    }

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_are_runc_s() {
        let cli = parse("state c1");
        assert_eq!(cli.global.root, PathBuf::from("/run/husk"));
        assert_eq!(cli.global.log, None);
        assert_eq!(cli.global.log_format, LogFormat::Text);
        assert!(!cli.global.debug && !cli.global.systemd_cgroup && !cli.global.version);
        assert_eq!(cli.global.backend, None);
        let Command::Create(create) = command("create c1") else {
            panic!()
        };
        assert_eq!(create.bundle, PathBuf::from("."));
        assert_eq!(create.preserve_fds, 0);
        let Command::Kill(kill) = command("kill c1") else {
            panic!()
        };
        assert_eq!(kill.signal, Signal::TERM);
        let Command::Events(events) = command("events c1") else {
            panic!()
        };
        assert_eq!(events.interval, Duration::from_secs(5));
    }

    #[test]
    fn podman_and_conmon_calls() {
        assert!(parse("--version").global.version);

        let Command::Create(create) = command("create --bundle /ud --pid-file /rud/pidfile c1")
        else {
            panic!()
        };
        assert_eq!(create.bundle, PathBuf::from("/ud"));
        assert_eq!(create.pid_file, Some(PathBuf::from("/rud/pidfile")));
        assert_eq!(create.container_id, "c1");
        assert_eq!(create.console_socket, None);

        let Command::Create(create) = command(
            "create --bundle /ud --pid-file /rud/pidfile --console-socket /tmp/conmon-term.X c1",
        ) else {
            panic!()
        };
        assert_eq!(
            create.console_socket,
            Some(PathBuf::from("/tmp/conmon-term.X"))
        );

        let Command::Start(start) = command("start c1") else {
            panic!()
        };
        assert_eq!(start.container_id, "c1");

        let Command::Exec(exec) = command(
            "exec --pid-file /ud/exec/exec_pid --process /ud/exec/exec-process-1 --detach c1",
        ) else {
            panic!()
        };
        assert_eq!(exec.pid_file, Some(PathBuf::from("/ud/exec/exec_pid")));
        assert_eq!(exec.process, Some(PathBuf::from("/ud/exec/exec-process-1")));
        assert!(exec.detach && !exec.tty);
        assert_eq!(exec.container_id, "c1");
        assert!(exec.command.is_empty());

        let Command::Exec(exec) = command(
            "exec --pid-file /p --process /f --detach --tty --console-socket /tmp/conmon-term.X c1",
        ) else {
            panic!()
        };
        assert!(exec.detach && exec.tty);
        assert_eq!(
            exec.console_socket,
            Some(PathBuf::from("/tmp/conmon-term.X"))
        );

        for (line, number) in [("kill c1 15", 15), ("kill c1 9", 9)] {
            let Command::Kill(kill) = command(line) else {
                panic!()
            };
            assert_eq!(
                (kill.container_id.as_str(), kill.signal.number(), kill.all),
                ("c1", number, false)
            );
        }
        assert!(matches!(command("pause c1"), Command::Pause(args) if args.container_id == "c1"));
        assert!(matches!(command("resume c1"), Command::Resume(args) if args.container_id == "c1"));
        let Command::Delete(delete) = command("delete --force c1") else {
            panic!()
        };
        assert!(delete.force);
        assert_eq!(delete.container_id, "c1");
    }

    #[test]
    fn containerd_shim_calls() {
        let prefix = "--root /run/containerd/runc/default --log /b/log.json --log-format json";
        let cli = parse(&format!(
            "{prefix} create --bundle /b --pid-file /b/init.pid --console-socket /tmp/pty1/pty.sock c1"
        ));
        assert_eq!(
            cli.global.root,
            PathBuf::from("/run/containerd/runc/default")
        );
        assert_eq!(cli.global.log, Some(PathBuf::from("/b/log.json")));
        assert_eq!(cli.global.log_format, LogFormat::Json);
        let Some(Command::Create(create)) = cli.command else {
            panic!()
        };
        assert_eq!(create.bundle, PathBuf::from("/b"));
        assert_eq!(create.pid_file, Some(PathBuf::from("/b/init.pid")));
        assert_eq!(
            create.console_socket,
            Some(PathBuf::from("/tmp/pty1/pty.sock"))
        );

        assert!(matches!(
            parse(&format!("{prefix} start c1")).command,
            Some(Command::Start(_))
        ));

        let Some(Command::Exec(exec)) = parse(&format!(
            "{prefix} exec --process /tmp/runc-process1 --detach --pid-file /b/e1.pid c1"
        ))
        .command
        else {
            panic!()
        };
        assert_eq!(exec.process, Some(PathBuf::from("/tmp/runc-process1")));
        assert!(exec.detach);
        assert_eq!(exec.pid_file, Some(PathBuf::from("/b/e1.pid")));

        let Some(Command::Exec(exec)) = parse(&format!(
            "{prefix} exec --process /tmp/p --console-socket /tmp/pty2/pty.sock --detach --pid-file /b/e.pid c1"
        ))
        .command
        else {
            panic!()
        };
        assert_eq!(
            exec.console_socket,
            Some(PathBuf::from("/tmp/pty2/pty.sock"))
        );
        assert!(!exec.tty);

        let Some(Command::Ps(ps)) = parse(&format!("{prefix} ps --format json c1")).command else {
            panic!()
        };
        assert_eq!(ps.format, OutputFormat::Json);
        assert_eq!(ps.container_id, "c1");

        let Some(Command::Kill(kill)) = parse(&format!("{prefix} kill c1 15")).command else {
            panic!()
        };
        assert_eq!(kill.signal.number(), 15);
        let Some(Command::Kill(kill)) = parse(&format!("{prefix} kill --all c1 9")).command else {
            panic!()
        };
        assert!(kill.all);
        assert_eq!(kill.signal, Signal::KILL);

        let Some(Command::Delete(delete)) = parse(&format!("{prefix} delete c1")).command else {
            panic!()
        };
        assert!(!delete.force);
        let Some(Command::Delete(delete)) = parse(&format!("{prefix} delete --force c1")).command
        else {
            panic!()
        };
        assert!(delete.force);
    }

    #[test]
    fn dockerd_update_from_stdin() {
        let Command::Update(update) = command("update --resources - c1") else {
            panic!()
        };
        assert_eq!(update.resources, Some(PathBuf::from("-")));
        assert_eq!(update.container_id, "c1");
    }

    #[test]
    fn options_after_the_container_id() {
        let Command::Create(create) = command("create c1 --bundle /b --pid-file /p") else {
            panic!()
        };
        assert_eq!(
            (create.container_id.as_str(), create.bundle, create.pid_file),
            ("c1", PathBuf::from("/b"), Some(PathBuf::from("/p")))
        );
        let Command::Run(run) = command("run c1 -b /b -d") else {
            panic!()
        };
        assert!(run.detach);
        assert_eq!(run.bundle, PathBuf::from("/b"));
        let Command::Delete(delete) = command("delete c1 -f") else {
            panic!()
        };
        assert!(delete.force);
        let Command::Kill(kill) = command("kill c1 KILL --all") else {
            panic!()
        };
        assert!(kill.all);
        assert_eq!(kill.signal, Signal::KILL);
    }

    #[test]
    fn kill_signals_by_number_and_name() {
        for (line, all, number) in [
            ("kill c1 9", false, 9),
            ("kill --all c1 9", true, 9),
            ("kill -a c1 9", true, 9),
            ("kill c1 SIGKILL", false, 9),
            ("kill c1 KILL", false, 9),
            ("kill c1 term", false, 15),
            ("kill c1 SIGUSR1", false, libc::SIGUSR1),
        ] {
            let Command::Kill(kill) = command(line) else {
                panic!()
            };
            assert_eq!((kill.all, kill.signal.number()), (all, number), "{line}");
        }
        let error = parse_error("kill c1 SIGNOPE");
        assert!(error.contains("unknown signal \"SIGNOPE\""), "{error}");
        assert!(parse_error("kill c1 9 extra").contains("extra"));
    }

    #[test]
    fn exec_arguments_after_the_id_belong_to_the_command() {
        let Command::Exec(exec) =
            command("exec -t -e A=1 --env B=2 -u 1000:100 -g 5 -g 6 c1 ls -la --color /")
        else {
            panic!()
        };
        assert!(exec.tty);
        assert_eq!(exec.env, ["A=1", "B=2"]);
        assert_eq!(
            exec.user,
            Some(UserSpec {
                uid: 1000,
                gid: Some(100)
            })
        );
        assert_eq!(exec.additional_gids, [5, 6]);
        assert_eq!(exec.container_id, "c1");
        assert_eq!(exec.command, ["ls", "-la", "--color", "/"]);

        let Command::Exec(exec) = command("exec --cwd /tmp --cap CAP_NET_ADMIN -c CAP_SYS_TIME --no-new-privs --process-label l --apparmor p c1 sh") else {
            panic!()
        };
        assert_eq!(exec.cwd, Some(PathBuf::from("/tmp")));
        assert_eq!(exec.cap, ["CAP_NET_ADMIN", "CAP_SYS_TIME"]);
        assert!(exec.no_new_privs);
        assert_eq!(exec.process_label.as_deref(), Some("l"));
        assert_eq!(exec.apparmor.as_deref(), Some("p"));
        assert_eq!(exec.command, ["sh"]);
    }

    #[test]
    fn ps_options_after_the_id_go_to_ps() {
        let Command::Ps(ps) = command("ps c1 -ef") else {
            panic!()
        };
        assert_eq!(ps.format, OutputFormat::Table);
        assert_eq!(ps.ps_options, ["-ef"]);
        let Command::Ps(ps) = command("ps -f json c1") else {
            panic!()
        };
        assert_eq!(ps.format, OutputFormat::Json);
        assert!(ps.ps_options.is_empty());
        let Command::Ps(ps) = command("ps c1 -o pid,comm") else {
            panic!()
        };
        assert_eq!(ps.ps_options, ["-o", "pid,comm"]);
    }

    #[test]
    fn list_spec_features_events_update() {
        let Command::List(list) = command("list -q") else {
            panic!()
        };
        assert!(list.quiet);
        assert_eq!(list.format, OutputFormat::Table);
        let Command::List(list) = command("list --format json") else {
            panic!()
        };
        assert_eq!(list.format, OutputFormat::Json);
        let Command::Spec(spec) = command("spec -b /b --rootless") else {
            panic!()
        };
        assert_eq!(spec.bundle, Some(PathBuf::from("/b")));
        assert!(spec.rootless);
        assert!(matches!(command("features"), Command::Features(_)));
        let Command::Events(events) = command("events --stats --interval 250ms c1") else {
            panic!()
        };
        assert!(events.stats);
        assert_eq!(events.interval, Duration::from_millis(250));

        let Command::Update(update) = command(
            "update --memory 512m --memory-swap -1 --cpu-period 100000 --cpu-quota 50000 \
             --cpu-shares 512 --cpuset-cpus 0-1 --cpuset-mems 0 --pids-limit 100 c1",
        ) else {
            panic!()
        };
        assert_eq!(update.memory, Some(512 << 20));
        assert_eq!(update.memory_swap, Some(-1));
        assert_eq!(update.cpu_period, Some(100_000));
        assert_eq!(update.cpu_quota, Some(50_000));
        assert_eq!(update.cpu_shares, Some(512));
        assert_eq!(update.cpuset_cpus.as_deref(), Some("0-1"));
        assert_eq!(update.cpuset_mems.as_deref(), Some("0"));
        assert_eq!(update.pids_limit, Some(100));
        let Command::Update(update) = command("update --cpu-share 100 c1") else {
            panic!()
        };
        assert_eq!(update.cpu_shares, Some(100));
    }

    #[test]
    fn global_flags() {
        let cli = parse("--debug --systemd-cgroup --backend container --rootless auto list");
        assert!(cli.global.debug && cli.global.systemd_cgroup);
        assert_eq!(cli.global.backend, Some(BackendKind::Container));
        assert!(parse("-v").global.version);
        assert!(parse_error("--backend jail list").contains("jail"));
        assert!(parse_error("--log-format xml list").contains("xml"));
    }

    #[test]
    fn unknown_flags_and_verbs_are_errors() {
        let error = parse_error("create --bundel /b c1");
        assert!(error.contains("--bundel"), "{error}");
        assert!(parse_error("--frobnicate list").contains("--frobnicate"));
        assert!(parse_error("checkpoint c1").contains("checkpoint"));
        assert!(parse_error("create").contains("<CONTAINER_ID>"));
    }

    #[test]
    fn users() {
        assert_eq!(parse_user("0"), Ok(UserSpec { uid: 0, gid: None }));
        assert_eq!(
            parse_user("1000:100"),
            Ok(UserSpec {
                uid: 1000,
                gid: Some(100)
            })
        );
        assert!(parse_user("root").unwrap_err().contains("\"root\""));
        assert!(parse_user("1:x").unwrap_err().contains("gid"));
    }

    #[test]
    fn memory_sizes_like_docker() {
        assert_eq!(parse_memory_bytes("1024"), Ok(1024));
        assert_eq!(parse_memory_bytes("512k"), Ok(512 << 10));
        assert_eq!(parse_memory_bytes("64M"), Ok(64 << 20));
        assert_eq!(parse_memory_bytes("1gb"), Ok(1 << 30));
        assert_eq!(parse_memory_bytes("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_memory_bytes("-1"), Ok(-1));
        assert!(parse_memory_bytes("lots").is_err());
        assert!(parse_memory_bytes("12q").is_err());
        assert!(parse_memory_bytes("-2").is_err());
    }

    #[test]
    fn durations_like_go() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "5", "s", "5x", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
