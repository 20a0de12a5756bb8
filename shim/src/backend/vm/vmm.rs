//! husk-vmm, the process whose life is the container's: how it is started
//! in sandbox mode, watched and stopped.
//!
//! husk-vmm runs in a session of its own (setsid(2)), so that a terminal's
//! job control signals reach it only through husk, and in the container's
//! host cgroup from its first instruction, so that the VM's memory is
//! charged to the container. Its stdin, stdout and stderr are the
//! container's (the caller's fds, which it relays to the guest); its own
//! messages go to `--log`.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use husk_init::engine::cgroups::Cgroup;
use husk_init::engine::sys::{self, ExitStatus, Fork};

use super::artifacts::Artifacts;
use super::jail_user::JailUser;
use super::layout::VmFiles;
use super::sizing::GuestSize;

/// husk-vmm's status when it failed itself (vmm/src/main.rs).
pub const EXIT_VMM_FAILED: i32 = 125;
/// husk-vmm's status when the guest crashed (vmm/src/main.rs).
pub const EXIT_GUEST_CRASHED: i32 = 250;

/// How many lines of a log an error quotes.
const TAIL_LINES: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum VmmError {
    #[error("fork to start husk-vmm")]
    Fork(#[source] io::Error),
}

/// How the container's stdio reaches the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerStdio {
    /// husk-vmm relays its own fds 0, 1 and 2.
    Pipes,
    /// husk-vmm makes a pty and sends its master to this socket.
    Terminal { console_socket: PathBuf },
}

/// husk-vmm's command line in sandbox mode. The rootfs image is the first
/// disk (/dev/vda); `directory_images` follow it read-only, in order
/// (/dev/vdb, ...), as the `directories` module tells the guest. With
/// `jail`, husk-vmm confines itself in [`VmFiles::jail_dir`] (its own
/// namespaces, a root holding only these files, no capabilities) before it
/// builds the VM, as the user given there (`None`: uid 0).
pub fn command(
    artifacts: &Artifacts,
    files: &VmFiles,
    directory_images: &[PathBuf],
    size: GuestSize,
    stdio: &ContainerStdio,
    jail: Option<Option<JailUser>>,
) -> Command {
    let mut command = Command::new(&artifacts.vmm);
    command
        .arg("--kernel")
        .arg(&artifacts.kernel)
        .arg("--initrd")
        .arg(&artifacts.initramfs)
        .arg("--disk")
        .arg(&files.image);
    for image in directory_images {
        // `--disk PATH,ro`: husk-vmm splits at the last comma, so a comma
        // in the path itself is still read as part of it.
        let mut disk = image.as_os_str().to_owned();
        disk.push(",ro");
        command.arg("--disk").arg(disk);
    }
    command
        .arg("--vsock")
        .arg(&files.vsock_socket)
        .arg("--rng")
        .arg("--memory-mib")
        .arg(size.memory_mib.to_string())
        .arg("--vcpus")
        .arg(size.vcpus.to_string())
        .arg("--serial")
        .arg(&files.console_log)
        .arg("--cmdline")
        .arg(format!(
            "{} {}",
            husk_vmm::config::DEFAULT_CMDLINE,
            husk_protocol::cmdline::AGENT
        ))
        .arg("--agent-socket")
        .arg(&files.agent_socket)
        .arg("--log")
        .arg(&files.vmm_log);
    if let Some(user) = jail {
        command.arg("--jail").arg(&files.jail_dir);
        if let Some(user) = user {
            command
                .arg("--jail-uid")
                .arg(user.uid.to_string())
                .arg("--jail-gid")
                .arg(user.gid.to_string());
        }
    }
    match stdio {
        ContainerStdio::Pipes => {
            command.args(["--container-stdio", "pipes"]);
        }
        ContainerStdio::Terminal { console_socket } => {
            command
                .args(["--container-stdio", "terminal", "--console-socket"])
                .arg(console_socket);
            // The container's stdio is the pty; husk-vmm must not hold the
            // caller's.
            command
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
        }
    }
    command
}

/// Starts `command` in a new session, inside `cgroup`, and returns its pid.
/// It is this process's child. A failure after the fork (joining the
/// cgroup, the exec itself) is written to `log` and ends the child with
/// status 125, which the caller sees when it waits for the guest.
///
/// std's Command cannot call setsid(2) on stable Rust, hence the fork. Only
/// the forking thread exists in the child, which takes no lock another
/// thread may hold besides the allocator's (glibc's malloc stays usable
/// across fork(2)): it makes system calls, writes small files and execs.
pub fn spawn(mut command: Command, cgroup: Option<&Cgroup>, log: &Path) -> Result<i32, VmmError> {
    match sys::fork().map_err(VmmError::Fork)? {
        Fork::Parent { child } => Ok(child),
        Fork::Child => {
            let failure = prepare_child(cgroup).err().unwrap_or_else(|| {
                let program = command.get_program().to_owned();
                let error = command.exec();
                format!("exec {program:?}: {error}")
            });
            if let Ok(mut file) = OpenOptions::new().create(true).append(true).open(log) {
                let _ = writeln!(file, "husk: start husk-vmm: {failure}");
            }
            sys::exit_now(EXIT_VMM_FAILED)
        }
    }
}

fn prepare_child(cgroup: Option<&Cgroup>) -> Result<(), String> {
    sys::setsid().map_err(|error| format!("setsid: {error}"))?;
    if let Some(cgroup) = cgroup {
        cgroup
            .add_process(sys::own_pid())
            .map_err(|error| husk_init::engine::error_chain(&error))?;
    }
    // Descriptors husk's caller left open without close-on-exec are not
    // the VM's business.
    sys::close_on_exec_from(3).map_err(|error| format!("close inherited descriptors: {error}"))
}

/// How husk-vmm ended, as the container's exit status: its exit code, or
/// 128+N when signal N killed husk-vmm itself.
pub fn exit_code(status: ExitStatus) -> u8 {
    status.code().clamp(0, 255) as u8
}

/// What waitpid(2) says about a pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaped {
    /// Our child, and it ended (now reaped).
    Ended(ExitStatus),
    /// Our child, still running.
    Running,
    /// Not a child of this process (ECHILD): someone else reaps it.
    NotOurs,
}

/// Reaps `pid` if it is this process's child and has ended.
pub fn try_reap(pid: i32) -> Reaped {
    match sys::wait(pid, true) {
        Ok(Some((_, status))) => Reaped::Ended(status),
        Ok(None) => Reaped::Running,
        Err(_) => Reaped::NotOurs,
    }
}

/// Waits until `alive` says the process is gone, at most `timeout`;
/// reaps it when it is our child. Returns whether it went.
pub fn wait_until_gone(pid: i32, timeout: Duration, alive: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let _ = try_reap(pid);
        if !alive() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// The last lines of a log file, indented, for an error message; empty
/// when there is nothing.
pub fn tail(path: &Path, what: &str) -> String {
    let Ok(text) = fs::read_to_string(path) else {
        return String::new();
    };
    let lines: Vec<&str> = text
        .lines()
        .map(|line| line.trim_end_matches('\r'))
        .filter(|line| !line.trim().is_empty())
        .collect();
    if lines.is_empty() {
        return String::new();
    }
    let start = lines.len().saturating_sub(TAIL_LINES);
    let mut quoted = format!("\n  last lines of {what} {}:", path.display());
    for line in &lines[start..] {
        quoted.push_str("\n    ");
        quoted.push_str(line);
    }
    quoted
}

/// What husk-vmm's exit status says, for messages.
pub fn describe_exit(status: ExitStatus) -> String {
    match status {
        ExitStatus::Exited(EXIT_VMM_FAILED) => {
            "husk-vmm failed (status 125; its log says why)".to_string()
        }
        ExitStatus::Exited(EXIT_GUEST_CRASHED) => {
            "the guest crashed (husk-vmm status 250; see the console)".to_string()
        }
        other => format!("husk-vmm ended: {other}"),
    }
}

/// The guest kernel's panic message on the console, if it panicked: the
/// line panic() prints first (kernel/panic.c, "Kernel panic - not syncing:
/// ..."), which the stack dump after it pushes out of a [`tail`].
pub fn guest_panic(console_log: &Path) -> Option<String> {
    let text = fs::read(console_log).ok()?;
    String::from_utf8_lossy(&text)
        .lines()
        .filter_map(|line| {
            let start = line.find("Kernel panic - not syncing")?;
            Some(line[start..].trim_end().to_string())
        })
        .next_back()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::vm::layout::VmFiles;

    fn artifacts() -> Artifacts {
        Artifacts {
            kernel: PathBuf::from("/k/vmlinux"),
            initramfs: PathBuf::from("/k/initramfs.cpio"),
            vmm: PathBuf::from("/usr/bin/husk-vmm"),
        }
    }

    /// The layout of a container in /run/husk/c1 with its sockets apart.
    fn files() -> VmFiles {
        let dir = Path::new("/run/husk/c1");
        let sockets = dir.join("sockets");
        VmFiles {
            state_dir: dir.to_path_buf(),
            image: dir.join("rootfs.ext4"),
            hooks: dir.join("hooks.json"),
            vmm_log: dir.join("vmm.log"),
            console_log: dir.join("console.log"),
            vsock_socket: sockets.join("vsock.sock"),
            agent_socket: sockets.join("agent.sock"),
            console_socket: sockets.join("console.sock"),
            socket_dir: Some(sockets),
            jail_dir: dir.join("jail"),
        }
    }

    fn arguments(command: &Command) -> Vec<String> {
        command
            .get_args()
            .map(|argument| argument.to_string_lossy().into_owned())
            .collect()
    }

    fn value_of(arguments: &[String], flag: &str) -> Option<String> {
        let position = arguments.iter().position(|argument| argument == flag)?;
        arguments.get(position + 1).cloned()
    }

    #[test]
    fn sandbox_mode_command_line() {
        let files = files();
        let size = GuestSize {
            memory_mib: 320,
            vcpus: 2,
        };
        let command = command(
            &artifacts(),
            &files,
            &[],
            size,
            &ContainerStdio::Pipes,
            Some(Some(JailUser {
                uid: 2_100_000_007,
                gid: 2_100_000_007,
            })),
        );
        assert_eq!(command.get_program(), "/usr/bin/husk-vmm");
        let arguments = arguments(&command);
        for (flag, value) in [
            ("--kernel", "/k/vmlinux"),
            ("--initrd", "/k/initramfs.cpio"),
            ("--disk", "/run/husk/c1/rootfs.ext4"),
            ("--vsock", "/run/husk/c1/sockets/vsock.sock"),
            ("--memory-mib", "320"),
            ("--vcpus", "2"),
            ("--serial", "/run/husk/c1/console.log"),
            ("--agent-socket", "/run/husk/c1/sockets/agent.sock"),
            ("--jail", "/run/husk/c1/jail"),
            ("--jail-uid", "2100000007"),
            ("--jail-gid", "2100000007"),
            ("--container-stdio", "pipes"),
            ("--log", "/run/husk/c1/vmm.log"),
        ] {
            assert_eq!(value_of(&arguments, flag).as_deref(), Some(value), "{flag}");
        }
        assert!(arguments.contains(&"--rng".to_string()));
        let cmdline = value_of(&arguments, "--cmdline").unwrap();
        assert!(cmdline.starts_with(husk_vmm::config::DEFAULT_CMDLINE));
        assert!(cmdline.ends_with(" husk.agent"), "{cmdline}");
        assert!(!arguments.contains(&"--console-socket".to_string()));
        assert_eq!(
            arguments
                .iter()
                .filter(|argument| *argument == "--disk")
                .count(),
            1,
            "only the rootfs disk: {arguments:?}"
        );
    }

    #[test]
    fn directory_copies_follow_the_rootfs_disk_read_only_in_order() {
        let files = files();
        let images = [files.directory_image(0), files.directory_image(1)];
        let command = command(
            &artifacts(),
            &files,
            &images,
            GuestSize {
                memory_mib: 256,
                vcpus: 1,
            },
            &ContainerStdio::Pipes,
            None,
        );
        let arguments = arguments(&command);
        let disks: Vec<&str> = arguments
            .iter()
            .zip(arguments.iter().skip(1))
            .filter(|(flag, _)| *flag == "--disk")
            .map(|(_, value)| value.as_str())
            .collect();
        assert_eq!(
            disks,
            [
                "/run/husk/c1/rootfs.ext4",
                "/run/husk/c1/directory-0.ext4,ro",
                "/run/husk/c1/directory-1.ext4,ro",
            ]
        );
        for disk in &disks {
            husk_vmm::config::DiskConfig::parse(disk).expect("husk-vmm takes the --disk value");
        }
        assert!(
            husk_vmm::config::DiskConfig::parse(disks[1])
                .unwrap()
                .read_only
        );
    }

    #[test]
    fn a_terminal_goes_to_the_console_socket() {
        let files = files();
        let command = command(
            &artifacts(),
            &files,
            &[],
            GuestSize {
                memory_mib: 256,
                vcpus: 1,
            },
            &ContainerStdio::Terminal {
                console_socket: PathBuf::from("/tmp/conmon-term.1"),
            },
            Some(None),
        );
        let arguments = arguments(&command);
        assert_eq!(
            value_of(&arguments, "--container-stdio").as_deref(),
            Some("terminal")
        );
        assert_eq!(
            value_of(&arguments, "--console-socket").as_deref(),
            Some("/tmp/conmon-term.1")
        );
        assert_eq!(
            value_of(&arguments, "--jail").as_deref(),
            Some("/run/husk/c1/jail")
        );
        assert!(
            !arguments.contains(&"--jail-uid".to_string()),
            "jailed as uid 0"
        );
    }

    #[test]
    fn a_spawned_program_runs_in_its_own_session_and_its_status_is_reaped() {
        let directory = tempfile::tempdir().unwrap();
        let log = directory.path().join("vmm.log");
        let mut command = Command::new("/bin/sh");
        command.args(["-c", "cut -d' ' -f6 /proc/self/stat; exit 7"]);
        let output = directory.path().join("out");
        command.stdout(fs::File::create(&output).unwrap());
        let pid = spawn(command, None, &log).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            match try_reap(pid) {
                Reaped::Ended(status) => break status,
                Reaped::Running => thread::sleep(Duration::from_millis(5)),
                Reaped::NotOurs => panic!("the spawned program is not our child"),
            }
            assert!(Instant::now() < deadline, "the child never ended");
        };
        assert_eq!(exit_code(status), 7);
        // Its session is its own pid: it was the session leader.
        let session = fs::read_to_string(&output).unwrap();
        assert_eq!(session.trim(), pid.to_string());
    }

    #[test]
    fn an_exec_failure_is_logged_and_ends_with_125() {
        let directory = tempfile::tempdir().unwrap();
        let log = directory.path().join("vmm.log");
        let pid = spawn(Command::new("/nonexistent/husk-vmm"), None, &log).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Reaped::Ended(status) = try_reap(pid) {
                break status;
            }
            assert!(Instant::now() < deadline, "the child never ended");
            thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(status, ExitStatus::Exited(EXIT_VMM_FAILED));
        let text = fs::read_to_string(&log).unwrap();
        assert!(
            text.contains("start husk-vmm: exec \"/nonexistent/husk-vmm\""),
            "{text}"
        );
        assert!(tail(&log, "husk-vmm's log").contains("/nonexistent/husk-vmm"));
    }

    #[test]
    fn a_guest_panic_is_found_on_the_console_behind_its_stack_dump() {
        let directory = tempfile::tempdir().unwrap();
        let console = directory.path().join("console.log");
        assert_eq!(guest_panic(&console), None, "no console at all");
        fs::write(
            &console,
            "[    0.41] Run /init as init process\r\n\
             [    3.02] Kernel panic - not syncing: Out of memory: compulsory panic_on_oom is \
             enabled\r\n\
             [    3.02] CPU: 0 UID: 0 PID: 93 Comm: tail Not tainted 6.12.57 #1\r\n\
             [    3.02] Call Trace:\r\n",
        )
        .unwrap();
        assert_eq!(
            guest_panic(&console).as_deref(),
            Some("Kernel panic - not syncing: Out of memory: compulsory panic_on_oom is enabled")
        );
        fs::write(&console, "[    0.41] Run /init as init process\n").unwrap();
        assert_eq!(guest_panic(&console), None);
    }
}
