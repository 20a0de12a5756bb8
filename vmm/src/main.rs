//! `husk-vmm`: boot a kernel in a KVM microVM and exit with the status the
//! guest hands back.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use husk_vmm::builder::build_vmm;
use husk_vmm::config::{
    DiskConfig, SerialSink, VmConfig, VsockConfig, DEFAULT_CMDLINE, DEFAULT_KVM_PATH,
    DEFAULT_MEMORY_MIB, DEFAULT_VCPUS, MIN_MEMORY_MIB,
};
use husk_vmm::devices::virtio::vsock::DEFAULT_GUEST_CID;
use husk_vmm::jail::{self, Entered, JailConfig, JailUser, DEFAULT_FD_LIMIT, MIN_FD_LIMIT};
use husk_vmm::sandbox::{self, ContainerStdio, SandboxConfig};
use husk_vmm::seccomp::SeccompMode;
use husk_vmm::signals::SignalFd;
use husk_vmm::timing::Timeline;
use husk_vmm::vmm::VmOutcome;

/// husk-vmm itself failed: bad arguments, a bad kernel, KVM errors.
const EXIT_VMM_ERROR: u8 = 125;
/// The guest crashed: kernel panic, triple fault, or a reset without an exit
/// status.
const EXIT_GUEST_CRASHED: u8 = 250;

fn usage() -> String {
    format!(
        "\
Usage: husk-vmm --kernel PATH [OPTIONS]

Boots a Linux kernel in a KVM microVM: an uncompressed ELF vmlinux through
its PVH entry point, or a bzImage through the Linux 64-bit boot protocol.

Options:
  --kernel PATH        kernel image (ELF vmlinux or bzImage)
  --initrd PATH        initramfs (cpio, uncompressed or as the kernel accepts)
  --cmdline STR        kernel command line [default: \"{DEFAULT_CMDLINE}\"]
  --memory-mib N       guest memory in MiB, at least {MIN_MEMORY_MIB} [default: {DEFAULT_MEMORY_MIB}]
  --vcpus N            number of vCPUs [default: {DEFAULT_VCPUS}]
  --serial SINK        where the serial console goes: stdout, none, or a file
                       path (created or truncated) [default: stdout]
  --disk PATH[,ro]     attach a virtio-blk disk backed by PATH (a file or block
                       device); `ro` makes it read-only. Repeatable: the first
                       is /dev/vda in the guest, the next /dev/vdb, ...
  --vsock PATH          attach virtio-vsock with its host end on Unix sockets: a
                       host program connects to PATH and sends `CONNECT <port>\n`
                       to reach guest port <port> (answer: `OK <host port>\n`);
                       a guest connection to host port P goes to PATH_P
  --vsock-cid N        the guest's vsock context ID [default: 3]
  --rng                attach a virtio-rng device fed from the host's getrandom
  --timings            print boot phase timings and memory use on stderr at exit
  --agent-socket PATH  sandbox mode, for the husk CLI (needs --vsock and a guest
                       running husk-init with husk.agent): hold the guest
                       agent's control connection, serve its protocol on the
                       Unix socket PATH (created once the guest is ready),
                       relay the container process's stdio, and shut the VM
                       down when that process has ended, exiting with its
                       status
  --container-stdio pipes|terminal
                       sandbox mode: the container's stdio is husk-vmm's own
                       0, 1 and 2 (pipes), or a pty whose master goes to
                       --console-socket (terminal) [default: pipes]
  --console-socket PATH
                       sandbox mode: where the terminal's pty master is sent
                       (SCM_RIGHTS, as runc does)
  --log PATH           husk-vmm's own messages go to PATH (appended) instead
                       of stderr; in sandbox mode stderr is the container's
  --kvm PATH           KVM device [default: {DEFAULT_KVM_PATH}]
  --seccomp kill|log|off
                       each husk-vmm thread runs under a seccomp filter that
                       allows only the system calls its kind of thread makes;
                       any other call kills the process (kill). For debugging:
                       log lets such calls through and logs them in the kernel
                       log (audit type=1326), off installs no filter
                       [default: kill]
  --jail DIR           confine husk-vmm before it builds the VM: new mount,
                       pid, network, IPC and UTS namespaces; a tmpfs on DIR
                       (an existing, empty directory) becomes its root and
                       holds only what it was given, bind-mounted at the
                       same paths (kernel, initrd and `ro` disks read-only;
                       the directories of --vsock and --agent-socket
                       writable; --serial and --log files, made if missing),
                       its own /dev/kvm and /dev/null; no capabilities,
                       no_new_privs. Paths must be absolute. husk-vmm forks:
                       this pid stays outside, passes SIGTERM and SIGINT on
                       and exits as the jailed process does. --timings has
                       no memory report under --jail
  --jail-uid N, --jail-gid N
                       with --jail, run as this user and group (give both).
                       They must be able to read the kernel, initrd and
                       disks, write the writable disks, existing --serial
                       and --log files and the --console-socket, and create
                       files in the socket directories; /dev/kvm is made
                       for them
  --jail-fd-limit N    with --jail, at most N open files, from {MIN_FD_LIMIT}
                       [default: {DEFAULT_FD_LIMIT}]
  -h, --help           print this help
  -V, --version        print the version

Exit status:
  0-255  the status the guest handed back (husk-init writes it to I/O port
         0x511; the guest's own statuses can take any value, including the
         ones below)
  125    husk-vmm failed (bad arguments, unusable kernel or initrd, KVM error)
  {EXIT_GUEST_CRASHED}    the guest crashed: kernel panic, triple fault, or reset
         without an exit status; the last console lines are printed
  128+N  stopped by signal N (SIGTERM: 143, SIGINT: 130); the VM is torn down
"
    )
}

struct Args {
    config: VmConfig,
    timings: bool,
    sandbox: Option<SandboxConfig>,
    log: Option<PathBuf>,
    jail: Option<JailConfig>,
}

enum Parsed {
    Run(Box<Args>),
    Help,
    Version,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Parsed, String> {
    let mut kernel = None;
    let mut initrd = None;
    let mut cmdline = None;
    let mut memory_mib = DEFAULT_MEMORY_MIB;
    let mut vcpus = DEFAULT_VCPUS;
    let mut serial = SerialSink::Stdout;
    let mut kvm_path = PathBuf::from(DEFAULT_KVM_PATH);
    let mut timings = false;
    let mut rng = false;
    let mut disks = Vec::new();
    let mut vsock_path = None;
    let mut agent_socket = None;
    let mut container_stdio = None;
    let mut console_socket = None;
    let mut log = None;
    let mut vsock_cid = DEFAULT_GUEST_CID;
    let mut seccomp = SeccompMode::Kill;
    let mut jail_root = None;
    let mut jail_uid = None;
    let mut jail_gid = None;
    let mut jail_fd_limit = None;

    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        let mut value = || -> Result<String, String> {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "-V" | "--version" => return Ok(Parsed::Version),
            "--kernel" => kernel = Some(PathBuf::from(value()?)),
            "--initrd" => initrd = Some(PathBuf::from(value()?)),
            "--cmdline" => cmdline = Some(value()?),
            "--memory-mib" => {
                let v = value()?;
                memory_mib = v
                    .parse()
                    .map_err(|_| format!("--memory-mib {v:?}: expected a number of MiB"))?;
            }
            "--vcpus" => {
                let v = value()?;
                vcpus = v
                    .parse()
                    .map_err(|_| format!("--vcpus {v:?}: expected a number from 1 to 255"))?;
            }
            "--serial" => serial = SerialSink::parse(&value()?),
            "--kvm" => kvm_path = PathBuf::from(value()?),
            "--timings" => timings = true,
            "--rng" => rng = true,
            "--disk" => disks.push(DiskConfig::parse(&value()?)?),
            "--vsock" => vsock_path = Some(PathBuf::from(value()?)),
            "--agent-socket" => agent_socket = Some(PathBuf::from(value()?)),
            "--container-stdio" => {
                container_stdio = match value()?.as_str() {
                    "pipes" => Some(false),
                    "terminal" => Some(true),
                    other => {
                        return Err(format!(
                            "--container-stdio {other:?}: expected pipes or terminal"
                        ))
                    }
                }
            }
            "--console-socket" => console_socket = Some(PathBuf::from(value()?)),
            "--log" => log = Some(PathBuf::from(value()?)),
            "--seccomp" => seccomp = SeccompMode::parse(&value()?)?,
            "--jail" => jail_root = Some(PathBuf::from(value()?)),
            "--jail-uid" => {
                let v = value()?;
                jail_uid = Some(
                    v.parse::<u32>()
                        .map_err(|_| format!("--jail-uid {v:?}: expected a numeric user ID"))?,
                );
            }
            "--jail-gid" => {
                let v = value()?;
                jail_gid = Some(
                    v.parse::<u32>()
                        .map_err(|_| format!("--jail-gid {v:?}: expected a numeric group ID"))?,
                );
            }
            "--jail-fd-limit" => {
                let v = value()?;
                jail_fd_limit = Some(
                    v.parse::<u64>()
                        .ok()
                        .filter(|limit| *limit >= MIN_FD_LIMIT)
                        .ok_or_else(|| {
                            format!("--jail-fd-limit {v:?}: expected a number from {MIN_FD_LIMIT}")
                        })?,
                );
            }
            "--vsock-cid" => {
                let v = value()?;
                vsock_cid = v
                    .parse()
                    .map_err(|_| format!("--vsock-cid {v:?}: expected a number from 3"))?;
            }
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    let kernel = kernel.ok_or("--kernel PATH is required (see --help)")?;
    let mut config = VmConfig::new(kernel);
    config.initrd = initrd;
    if let Some(cmdline) = cmdline {
        config.cmdline = cmdline;
    }
    config.memory_mib = memory_mib;
    config.vcpus = vcpus;
    config.serial = serial;
    config.kvm_path = kvm_path;
    config.rng = rng;
    config.disks = disks;
    config.vsock = vsock_path.map(|uds_path| VsockConfig {
        uds_path,
        guest_cid: vsock_cid,
    });
    config.seccomp = seccomp;
    let sandbox = match (
        agent_socket,
        container_stdio.unwrap_or(false),
        console_socket,
    ) {
        (None, _, _) if container_stdio.is_some() => {
            return Err("--container-stdio needs --agent-socket".into())
        }
        (None, _, Some(_)) => return Err("--console-socket needs --agent-socket".into()),
        (None, _, None) => None,
        (Some(_), true, None) => {
            return Err("--container-stdio terminal needs --console-socket PATH".into())
        }
        (Some(_), false, Some(_)) => {
            return Err("--console-socket goes with --container-stdio terminal".into())
        }
        (Some(agent_socket), terminal, console_socket) => {
            if config.vsock.is_none() {
                return Err("--agent-socket needs --vsock PATH".into());
            }
            Some(SandboxConfig {
                agent_socket,
                stdio: match (terminal, console_socket) {
                    (true, Some(console_socket)) => ContainerStdio::Terminal { console_socket },
                    _ => ContainerStdio::Pipes,
                },
                seccomp,
            })
        }
    };
    let jail = match (jail_root, jail_uid, jail_gid) {
        (None, None, None) if jail_fd_limit.is_none() => None,
        (None, ..) => {
            return Err("--jail-uid, --jail-gid and --jail-fd-limit need --jail DIR".into())
        }
        (Some(_), Some(_), None) | (Some(_), None, Some(_)) => {
            return Err("--jail-uid and --jail-gid go together".into())
        }
        (Some(root), uid, gid) => Some(JailConfig {
            root,
            user: uid.zip(gid).map(|(uid, gid)| JailUser { uid, gid }),
            fd_limit: jail_fd_limit.unwrap_or(DEFAULT_FD_LIMIT),
        }),
    };
    Ok(Parsed::Run(Box::new(Args {
        config,
        timings,
        sandbox,
        log,
        jail,
    })))
}

/// Reports a failure to set up the jail on stderr and, in case stderr is
/// the container's (sandbox mode), in the log the caller reads.
fn report_jail_failure(error: &jail::JailError, log: Option<&Path>) {
    let message = format!("husk-vmm: {}", error_chain(error));
    eprintln!("{message}");
    if let Some(log) = log {
        if let Ok(mut file) = OpenOptions::new().create(true).append(true).open(log) {
            let _ = writeln!(file, "{message}");
        }
    }
}

/// The error and its causes on one line, as `a: b: c`.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

fn main() -> ExitCode {
    let timeline = Arc::new(Timeline::new(Instant::now()));
    // Stop signals are blocked from the start and read from a signalfd by
    // the event loop: one that arrives during setup ends the VM cleanly as
    // soon as it runs, and no thread is ever interrupted by one.
    let signals = match SignalFd::new(&[libc::SIGTERM, libc::SIGINT]) {
        Ok(signals) => signals,
        Err(error) => {
            eprintln!("husk-vmm: set up SIGTERM/SIGINT handling: {error}");
            return ExitCode::from(EXIT_VMM_ERROR);
        }
    };
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Parsed::Run(args)) => args,
        Ok(Parsed::Help) => {
            print!("{}", usage());
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Version) => {
            println!("husk-vmm {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("husk-vmm: {message}");
            return ExitCode::from(EXIT_VMM_ERROR);
        }
    };

    // The console socket is the caller's: connect while husk-vmm still
    // runs as the caller's user and sees the caller's files.
    let console = match args.sandbox.as_ref().map(sandbox::connect_console) {
        Some(Ok(console)) => console,
        None => None,
        Some(Err(error)) => {
            eprintln!("husk-vmm: {}", error_chain(&error));
            return ExitCode::from(EXIT_VMM_ERROR);
        }
    };

    // The jail comes first: it forks, so no thread may exist yet; the rest
    // runs in the jailed child, and this pid waits for it outside.
    if let Some(jail) = &args.jail {
        // The same messages as without the jail for a missing kernel or a
        // bad flag, rather than a failed bind mount.
        if let Err(error) = args.config.validate() {
            eprintln!("husk-vmm: {}", error_chain(&error));
            return ExitCode::from(EXIT_VMM_ERROR);
        }
        match jail::enter(
            jail,
            &args.config,
            args.sandbox.as_ref(),
            args.log.as_deref(),
        ) {
            Ok(Entered::Jailed) => {}
            Ok(Entered::Outside(waiter)) => {
                return match waiter.wait() {
                    Ok(ending) => ending.finish(),
                    Err(error) => {
                        report_jail_failure(&error, args.log.as_deref());
                        ExitCode::from(EXIT_VMM_ERROR)
                    }
                }
            }
            Err(error) => {
                report_jail_failure(&error, args.log.as_deref());
                return ExitCode::from(EXIT_VMM_ERROR);
            }
        }
    }

    // In sandbox mode the stdio is the container's: take it before anything
    // is printed, and before the guest can connect.
    let vsock_path = args
        .config
        .vsock
        .as_ref()
        .map(|vsock| vsock.uds_path.as_path());
    let _sandbox = match &args.sandbox {
        Some(sandbox) => match sandbox::start(sandbox, console, vsock_path, args.log.as_deref()) {
            Ok(sandbox) => Some(sandbox),
            Err(error) => {
                eprintln!("husk-vmm: {}", error_chain(&error));
                return ExitCode::from(EXIT_VMM_ERROR);
            }
        },
        None => {
            if let Some(log) = &args.log {
                if let Err(error) = sandbox::log_to(log) {
                    eprintln!("husk-vmm: {}", error_chain(&error));
                    return ExitCode::from(EXIT_VMM_ERROR);
                }
            }
            None
        }
    };
    let mut vmm = match build_vmm(&args.config, timeline.clone()) {
        Ok(vmm) => vmm,
        Err(error) => {
            eprintln!("husk-vmm: {}", error_chain(&error));
            return ExitCode::from(EXIT_VMM_ERROR);
        }
    };
    let report = match vmm.run(signals) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("husk-vmm: {}", error_chain(&error));
            return ExitCode::from(EXIT_VMM_ERROR);
        }
    };
    if args.timings {
        eprintln!("{}", timeline.summary());
        if let Some(memory) = report.memory {
            eprintln!("{}", memory.summary());
        }
    }
    match report.outcome {
        VmOutcome::GuestExit(status) => ExitCode::from(status),
        VmOutcome::GuestCrashed { triple_fault } => {
            match triple_fault {
                Some(registers) => eprintln!("husk-vmm: the guest triple-faulted ({registers})"),
                None => eprintln!(
                    "husk-vmm: the guest reset without handing back an exit status (kernel panic, or a reboot)"
                ),
            }
            eprintln!("husk-vmm: last console lines:");
            for line in vmm.console_tail().lines() {
                eprintln!("  | {line}");
            }
            ExitCode::from(EXIT_GUEST_CRASHED)
        }
        VmOutcome::Signal(signal) => {
            eprintln!("husk-vmm: stopped the VM on signal {signal}");
            ExitCode::from(128u8.saturating_add(signal as u8))
        }
        VmOutcome::VcpuFailed(error) => {
            eprintln!("husk-vmm: {}", error_chain(&error));
            ExitCode::from(EXIT_VMM_ERROR)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Parsed, String> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn flags_in_both_spellings() {
        let Ok(Parsed::Run(args)) = parse(&[
            "--kernel",
            "/k",
            "--initrd=/i",
            "--memory-mib",
            "256",
            "--vcpus=2",
            "--serial",
            "none",
            "--cmdline",
            "console=ttyS0 quiet",
            "--timings",
        ]) else {
            panic!("should parse");
        };
        assert_eq!(args.config.kernel, PathBuf::from("/k"));
        assert_eq!(args.config.initrd, Some(PathBuf::from("/i")));
        assert_eq!((args.config.memory_mib, args.config.vcpus), (256, 2));
        assert_eq!(args.config.serial, SerialSink::None);
        assert_eq!(args.config.cmdline, "console=ttyS0 quiet");
        assert!(args.timings);
    }

    #[test]
    fn bad_arguments_say_what_is_wrong() {
        let err = |args: &[&str]| parse(args).err().unwrap();
        assert!(err(&[]).contains("--kernel PATH is required"));
        assert!(err(&["--kernel"]).contains("--kernel needs a value"));
        assert!(err(&["--kernel", "/k", "--vcpus", "two"]).contains("--vcpus \"two\""));
        assert!(err(&["--kernel", "/k", "--vcpus", "300"]).contains("--vcpus \"300\""));
        assert!(err(&["--kernel", "/k", "--memory-mib", "-1"]).contains("--memory-mib"));
        assert!(
            err(&["--kernel", "/k", "--frobnicate"]).contains("unknown argument \"--frobnicate\"")
        );
    }

    #[test]
    fn sandbox_flags_go_together() {
        let run = |args: &[&str]| match parse(args) {
            Ok(Parsed::Run(args)) => args,
            other => panic!("{args:?} did not parse to a run: {}", other.is_ok()),
        };
        let base = [
            "--kernel",
            "/k",
            "--vsock",
            "/s/vsock",
            "--agent-socket",
            "/s/agent",
        ];
        let args = run(&base);
        assert_eq!(
            args.sandbox.unwrap().stdio,
            ContainerStdio::Pipes,
            "pipes by default"
        );
        let mut terminal = base.to_vec();
        terminal.extend(["--container-stdio", "terminal", "--console-socket", "/c"]);
        assert_eq!(
            run(&terminal).sandbox.unwrap().stdio,
            ContainerStdio::Terminal {
                console_socket: PathBuf::from("/c")
            }
        );
        let err = |args: &[&str]| match parse(args) {
            Err(message) => message,
            Ok(_) => panic!("{args:?} parsed"),
        };
        assert!(err(&["--kernel", "/k", "--agent-socket", "/a"]).contains("needs --vsock"));
        assert!(err(&["--kernel", "/k", "--console-socket", "/c"]).contains("--agent-socket"));
        let mut no_socket = base.to_vec();
        no_socket.extend(["--container-stdio", "terminal"]);
        assert!(err(&no_socket).contains("--console-socket PATH"));
        let mut bad = base.to_vec();
        bad.extend(["--container-stdio", "tty"]);
        assert!(err(&bad).contains("expected pipes or terminal"));
        assert!(run(&["--kernel", "/k", "--log", "/l"]).log.is_some());
    }

    #[test]
    fn seccomp_mode_reaches_the_vm_and_the_sandbox() {
        let run = |args: &[&str]| match parse(args) {
            Ok(Parsed::Run(args)) => args,
            other => panic!("{args:?} did not parse to a run: {}", other.is_ok()),
        };
        assert_eq!(run(&["--kernel", "/k"]).config.seccomp, SeccompMode::Kill);
        assert_eq!(
            run(&["--kernel", "/k", "--seccomp", "log"]).config.seccomp,
            SeccompMode::Log
        );
        let sandboxed = run(&[
            "--kernel",
            "/k",
            "--vsock",
            "/s/vsock",
            "--agent-socket",
            "/s/agent",
            "--seccomp=off",
        ]);
        assert_eq!(sandboxed.config.seccomp, SeccompMode::Off);
        assert_eq!(sandboxed.sandbox.unwrap().seccomp, SeccompMode::Off);
        let error = parse(&["--kernel", "/k", "--seccomp", "strict"])
            .err()
            .unwrap();
        assert!(
            error.contains("--seccomp \"strict\": expected kill, log or off"),
            "{error}"
        );
    }

    #[test]
    fn jail_flags() {
        let run = |args: &[&str]| match parse(args) {
            Ok(Parsed::Run(args)) => args,
            other => panic!("{args:?} did not parse to a run: {}", other.is_ok()),
        };
        assert_eq!(run(&["--kernel", "/k"]).jail, None, "no jail unless asked");
        assert_eq!(
            run(&["--kernel", "/k", "--jail", "/j"]).jail,
            Some(JailConfig {
                root: "/j".into(),
                user: None,
                fd_limit: DEFAULT_FD_LIMIT,
            })
        );
        assert_eq!(
            run(&[
                "--kernel",
                "/k",
                "--jail=/j",
                "--jail-uid",
                "65534",
                "--jail-gid=100",
                "--jail-fd-limit",
                "300",
            ])
            .jail,
            Some(JailConfig {
                root: "/j".into(),
                user: Some(JailUser {
                    uid: 65534,
                    gid: 100
                }),
                fd_limit: 300,
            })
        );
        let err = |args: &[&str]| match parse(args) {
            Err(message) => message,
            Ok(_) => panic!("{args:?} parsed"),
        };
        assert!(err(&["--kernel", "/k", "--jail-uid", "1"]).contains("need --jail DIR"));
        assert!(err(&["--kernel", "/k", "--jail-fd-limit", "100"]).contains("need --jail DIR"));
        assert!(err(&["--kernel", "/k", "--jail", "/j", "--jail-uid", "1"]).contains("go together"));
        assert!(err(&["--kernel", "/k", "--jail", "/j", "--jail-gid", "1"]).contains("go together"));
        assert!(
            err(&["--kernel", "/k", "--jail", "/j", "--jail-uid", "nobody"])
                .contains("--jail-uid \"nobody\": expected a numeric user ID")
        );
        assert!(
            err(&["--kernel", "/k", "--jail", "/j", "--jail-fd-limit", "10"])
                .contains("expected a number from 64")
        );
    }

    #[test]
    fn help_and_version() {
        assert!(matches!(parse(&["--help"]), Ok(Parsed::Help)));
        assert!(matches!(parse(&["-V"]), Ok(Parsed::Version)));
        assert!(usage().contains("--memory-mib"));
        assert!(usage().contains("--jail-fd-limit N"));
    }
}
