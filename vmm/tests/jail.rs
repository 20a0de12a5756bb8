//! husk-vmm under `--jail`, seen from outside: the jailed process's
//! credentials, capabilities, namespaces, root and limits while it runs,
//! how it ends, and what stays the same without the jail.
//!
//! These tests need root (the jail mounts and switches users), /dev/kvm,
//! the guest kernel (`kernel-config/build`) and the initramfs
//! (`guest-init/build`). The guest need not boot: husk-vmm builds the VM
//! and starts its vCPUs before anything about the guest matters, and a KVM
//! that cannot run the guest only ends the VM (status 125) seconds later.

mod support;

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use std::{panic, thread};

use husk_vmm::config::VmConfig;
use husk_vmm::jail::{self, Ending, Entered, JailConfig, JailUser};
use husk_vmm::os;
use husk_vmm::sandbox::{self, ContainerStdio, SandboxConfig};
use husk_vmm::seccomp::SeccompMode;
use support::{child_scratch, describe, run_in_child};
use vmm_sys_util::tempdir::TempDir;

const HUSK_VMM: &str = env!("CARGO_BIN_EXE_husk-vmm");
/// The user the tests jail husk-vmm as (nobody on Debian).
const NOBODY: u32 = 65534;
/// How long a check may wait for the jailed process to get somewhere.
const DEADLINE: Duration = Duration::from_secs(20);

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("vmm/ is in the workspace")
        .to_owned()
}

fn require_root() {
    let status = fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    assert_eq!(
        field(&status, "Uid").split_whitespace().nth(1),
        Some("0"),
        "the jail tests need root: the jail mounts, makes device nodes and switches users"
    );
    assert!(
        Path::new("/dev/kvm").exists(),
        "the jail tests need /dev/kvm"
    );
}

/// The guest kernel: $HUSK_KERNEL, or what `kernel-config/build` prints
/// last (it finds a cached kernel at once).
fn kernel() -> PathBuf {
    if let Some(kernel) = std::env::var_os("HUSK_KERNEL") {
        let kernel = PathBuf::from(kernel);
        assert!(
            kernel.is_file(),
            "HUSK_KERNEL={} does not exist: build the kernel with kernel-config/build",
            kernel.display()
        );
        return kernel;
    }
    let script = workspace_root().join("kernel-config/build");
    let output = Command::new(&script)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("run {}: {error}", script.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let kernel = stdout.lines().last().map(PathBuf::from);
    match kernel {
        Some(kernel) if output.status.success() && kernel.is_file() => kernel,
        _ => panic!(
            "no guest kernel: `kernel-config/build` failed ({}); build it with kernel-config/build \
             or set HUSK_KERNEL\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

/// The guest initramfs: $HUSK_INITRAMFS, or where `guest-init/build`
/// writes it.
fn initramfs() -> PathBuf {
    let initramfs = std::env::var_os("HUSK_INITRAMFS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/husk-initramfs.cpio"));
    assert!(
        initramfs.is_file(),
        "no initramfs at {}: build it with guest-init/build (or set HUSK_INITRAMFS)",
        initramfs.display()
    );
    initramfs
}

fn field<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {name} in\n{status}"))
        .trim()
}

/// A test's directories: the jail (empty), a socket directory the jail's
/// user may write, and room for files.
struct Scratch {
    dir: TempDir,
    jail: PathBuf,
    sockets: PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = TempDir::new_with_prefix("/tmp/husk-jail-test").expect("a scratch directory");
        // TempDir makes it 0700; the jail's user reaches its files through
        // their own bind mounts, never through it.
        let jail = dir.as_path().join("jail");
        fs::create_dir(&jail).unwrap();
        let sockets = dir.as_path().join("sockets");
        fs::create_dir(&sockets).unwrap();
        std::os::unix::fs::chown(&sockets, Some(NOBODY), Some(NOBODY)).unwrap();
        Scratch { dir, jail, sockets }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.as_path().join(name)
    }

    /// A sparse disk image the jail's user may write.
    fn disk(&self, name: &str) -> PathBuf {
        let path = self.path(name);
        File::create(&path).unwrap().set_len(16 << 20).unwrap();
        std::os::unix::fs::chown(&path, Some(NOBODY), Some(NOBODY)).unwrap();
        path
    }
}

/// husk-vmm, running, with its output going to files in the scratch
/// directory.
struct Vmm {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Vmm {
    fn start(scratch: &Scratch, args: &[&str]) -> Vmm {
        let stdout = scratch.path("stdout");
        let stderr = scratch.path("stderr");
        let child = Command::new(HUSK_VMM)
            .args(args)
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).unwrap())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .expect("start husk-vmm");
        Vmm {
            child,
            stdout,
            stderr,
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn output(&self) -> String {
        format!(
            "--- husk-vmm's stdout\n{}\n--- husk-vmm's stderr\n{}",
            fs::read_to_string(&self.stdout).unwrap_or_default(),
            fs::read_to_string(&self.stderr).unwrap_or_default()
        )
    }

    /// Fails, with husk-vmm's output, if it has already ended.
    fn assert_running(&mut self, doing: &str) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "husk-vmm ended ({status}) before the test could {doing}\n{}",
                self.output()
            );
        }
    }

    /// The jailed process: the outer husk-vmm's one child.
    fn inner_pid(&mut self) -> i32 {
        let deadline = Instant::now() + DEADLINE;
        loop {
            self.assert_running("find the jailed process");
            if let Some(child) = children_of(self.pid()).first() {
                return *child;
            }
            assert!(Instant::now() < deadline, "husk-vmm never forked");
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn signal(&self, signal: libc::c_int) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {}", self.pid());
    }

    fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("husk-vmm did not end\n{}", self.output());
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Vmm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The pids whose parent is `parent`.
fn children_of(parent: i32) -> Vec<i32> {
    let mut children = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(status) = fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        if field(&status, "PPid") == parent.to_string() {
            children.push(pid);
        }
    }
    children
}

fn proc_status(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|error| panic!("read /proc/{pid}/status: {error}"))
}

/// Whether `pid` has ended: gone, or a zombie nobody reaped yet.
fn ended(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(status) => field(&status, "State").starts_with('Z'),
        Err(_) => true,
    }
}

fn namespace(pid: &str, kind: &str) -> PathBuf {
    fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap_or_else(|error| panic!("read /proc/{pid}/ns/{kind}: {error}"))
}

const NAMESPACES: [&str; 5] = ["mnt", "pid", "net", "ipc", "uts"];

/// Waits until the process's main thread runs under a seccomp filter:
/// then the VM is built and running.
fn wait_for_seccomp(vmm: &mut Vmm, pid: i32) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        vmm.assert_running("see the VM running");
        if field(&proc_status(pid), "Seccomp") == "2" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the VM never ran\n{}",
            vmm.output()
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// The first component of each path, as the jail's root lists them.
fn top_level_names(paths: &[&Path]) -> BTreeSet<String> {
    paths
        .iter()
        .filter_map(|path| path.components().nth(1))
        .map(|component| component.as_os_str().to_string_lossy().into_owned())
        .collect()
}

/// The mount options (the per-mount ones) of the mount at `target` in
/// `pid`'s mount namespace.
fn mount_options(pid: i32, target: &Path) -> String {
    let mountinfo = fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    mountinfo
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            (Path::new(fields[4]) == target).then(|| fields[5].to_owned())
        })
        .unwrap_or_else(|| panic!("no mount at {} in\n{mountinfo}", target.display()))
}

#[test]
fn a_jailed_husk_vmm_runs_confined_and_ends_on_sigterm() {
    require_root();
    let (kernel, initramfs) = (kernel(), initramfs());
    let scratch = Scratch::new();
    let root_disk = scratch.disk("rootfs.ext4");
    let data_disk = scratch.path("data.ext4");
    File::create(&data_disk).unwrap().set_len(1 << 20).unwrap();
    let console = scratch.path("console.log");
    let vsock = scratch.sockets.join("vsock.sock");
    let mut vmm = Vmm::start(
        &scratch,
        &[
            "--kernel",
            kernel.to_str().unwrap(),
            "--initrd",
            initramfs.to_str().unwrap(),
            "--disk",
            root_disk.to_str().unwrap(),
            "--disk",
            &format!("{},ro", data_disk.display()),
            "--serial",
            console.to_str().unwrap(),
            "--vsock",
            vsock.to_str().unwrap(),
            "--jail",
            scratch.jail.to_str().unwrap(),
            "--jail-uid",
            "65534",
            "--jail-gid",
            "65534",
            "--jail-fd-limit",
            "300",
        ],
    );
    let inner = vmm.inner_pid();
    wait_for_seccomp(&mut vmm, inner);

    // Credentials, capabilities, no_new_privs, seccomp.
    let status = proc_status(inner);
    assert_eq!(field(&status, "Uid"), "65534\t65534\t65534\t65534");
    assert_eq!(field(&status, "Gid"), "65534\t65534\t65534\t65534");
    assert_eq!(field(&status, "Groups"), "");
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(field(&status, set), "0000000000000000", "{set}");
    }
    assert_eq!(field(&status, "NoNewPrivs"), "1");
    assert_eq!(field(&status, "Seccomp"), "2");
    // pid 1 of its own pid namespace.
    assert_eq!(
        field(&status, "NSpid")
            .split_whitespace()
            .collect::<Vec<_>>(),
        [inner.to_string().as_str(), "1"]
    );

    // Its own namespaces; the waiter stays in the host's.
    for kind in NAMESPACES {
        assert_ne!(
            namespace(&inner.to_string(), kind),
            namespace("self", kind),
            "{kind} namespace of the jailed process"
        );
        if kind != "pid" {
            assert_eq!(
                namespace(&vmm.pid().to_string(), kind),
                namespace("self", kind),
                "{kind} namespace of the waiter"
            );
        }
    }

    // Its root holds /dev and the paths it was given, nothing else.
    let root = PathBuf::from(format!("/proc/{inner}/root"));
    let listed: BTreeSet<String> = fs::read_dir(&root)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut expected = top_level_names(&[&kernel, &initramfs, scratch.dir.as_path()]);
    expected.insert("dev".to_owned());
    assert_eq!(listed, expected);
    for absent in ["etc", "home", "usr", "proc", "sys"] {
        assert!(!root.join(absent).exists(), "/{absent} in the jail");
    }
    let devices: BTreeSet<String> = fs::read_dir(root.join("dev"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(devices, BTreeSet::from(["kvm".into(), "null".into()]));
    let kvm = fs::metadata(root.join("dev/kvm")).unwrap();
    assert_eq!((kvm.uid(), kvm.mode() & 0o777), (NOBODY, 0o600));
    // Of the scratch directory, only what husk-vmm was given.
    let given: BTreeSet<String> =
        fs::read_dir(root.join(scratch.dir.as_path().strip_prefix("/").unwrap()))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
    assert_eq!(
        given,
        BTreeSet::from([
            "rootfs.ext4".into(),
            "data.ext4".into(),
            "console.log".into(),
            "sockets".into()
        ])
    );

    // Read-only where husk-vmm only reads.
    let options = |path: &Path| mount_options(inner, path);
    assert!(options(&kernel).starts_with("ro,"), "{}", options(&kernel));
    assert!(options(&initramfs).starts_with("ro,"));
    assert!(options(&data_disk).starts_with("ro,"));
    assert!(options(&root_disk).starts_with("rw,"));
    assert!(options(Path::new("/")).starts_with("ro,"));

    // Limits.
    let limits = fs::read_to_string(format!("/proc/{inner}/limits")).unwrap();
    let open_files: Vec<&str> = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(open_files[3..5], ["300", "300"], "{limits}");
    let core: Vec<&str> = limits
        .lines()
        .find(|line| line.starts_with("Max core file size"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(core[4..6], ["0", "0"], "{limits}");

    // What it made on the host belongs to the jail's user.
    let socket = fs::metadata(&vsock).unwrap();
    assert_eq!(socket.uid(), NOBODY, "the vsock socket");
    assert_eq!(fs::metadata(&console).unwrap().uid(), NOBODY);

    vmm.assert_running("stop it");
    vmm.signal(libc::SIGTERM);
    let status = vmm.wait();
    assert_eq!(status.code(), Some(143), "{}", vmm.output());
    assert!(ended(inner), "the jailed process outlived the waiter");
    assert!(
        vmm.output().contains("stopped the VM on signal 15"),
        "{}",
        vmm.output()
    );
    assert!(
        !vsock.exists(),
        "the vsock device removes its socket on exit"
    );
}

/// A jailed VM with no files but the kernel, started and running.
fn start_minimal_jailed(scratch: &Scratch) -> (Vmm, i32) {
    let kernel = kernel();
    let mut vmm = Vmm::start(
        scratch,
        &[
            "--kernel",
            kernel.to_str().unwrap(),
            "--serial",
            "none",
            "--jail",
            scratch.jail.to_str().unwrap(),
            "--jail-uid",
            "65534",
            "--jail-gid",
            "65534",
        ],
    );
    let inner = vmm.inner_pid();
    wait_for_seccomp(&mut vmm, inner);
    (vmm, inner)
}

/// Waits, briefly, for the jailed process to end: it is killed at once,
/// and on a host whose KVM cannot run the guest it would end by itself
/// some seconds later, which must not pass for being killed.
fn wait_until_ended(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !ended(pid) {
        assert!(
            Instant::now() < deadline,
            "the jailed process {pid} is still running"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sigkill_of_the_outer_pid_ends_the_jailed_process() {
    require_root();
    let scratch = Scratch::new();
    let (mut vmm, inner) = start_minimal_jailed(&scratch);
    vmm.signal(libc::SIGKILL);
    assert_eq!(vmm.wait().signal(), Some(libc::SIGKILL));
    wait_until_ended(inner);
}

#[test]
fn sighup_ends_both_as_it_ends_an_unjailed_husk_vmm() {
    require_root();
    let scratch = Scratch::new();
    let (mut vmm, inner) = start_minimal_jailed(&scratch);
    vmm.signal(libc::SIGHUP);
    let status = vmm.wait();
    assert_eq!(status.signal(), Some(libc::SIGHUP), "{}", vmm.output());
    assert!(!status.core_dumped());
    wait_until_ended(inner);
}

#[test]
fn sigint_is_passed_on() {
    require_root();
    let scratch = Scratch::new();
    let (mut vmm, inner) = start_minimal_jailed(&scratch);
    vmm.signal(libc::SIGINT);
    assert_eq!(vmm.wait().code(), Some(130), "{}", vmm.output());
    assert!(ended(inner));
}

#[test]
fn a_jail_directory_must_exist_and_be_empty() {
    require_root();
    let kernel = kernel();
    let scratch = Scratch::new();
    let run = |jail: &Path| {
        let output = Command::new(HUSK_VMM)
            .args(["--kernel", kernel.to_str().unwrap(), "--serial", "none"])
            .arg("--jail")
            .arg(jail)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(125));
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let missing = scratch.path("missing");
    assert_eq!(
        run(&missing),
        format!(
            "husk-vmm: the jail directory {} does not exist; --jail needs an existing empty directory\n",
            missing.display()
        )
    );
    fs::write(scratch.jail.join("leftover"), "").unwrap();
    assert_eq!(
        run(&scratch.jail),
        format!(
            "husk-vmm: the jail directory {} is not empty; give --jail an empty directory\n",
            scratch.jail.display()
        )
    );
    let relative = Command::new(HUSK_VMM)
        .current_dir(kernel.parent().unwrap())
        .args(["--kernel", "vmlinux", "--jail"])
        .arg(scratch.path("sockets"))
        .output()
        .unwrap();
    assert_eq!(relative.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&relative.stderr)
            .contains("--jail needs absolute paths: the kernel vmlinux is relative"),
        "{}",
        describe(&relative)
    );
}

#[test]
fn sandbox_mode_runs_jailed() {
    require_root();
    let (kernel, initramfs) = (kernel(), initramfs());
    let scratch = Scratch::new();
    let vsock = scratch.sockets.join("vsock.sock");
    let control = husk_vmm::guest_agent::control_socket_path(&vsock);
    let log = scratch.path("vmm.log");
    let mut vmm = Vmm::start(
        &scratch,
        &[
            "--kernel",
            kernel.to_str().unwrap(),
            "--initrd",
            initramfs.to_str().unwrap(),
            "--serial",
            "none",
            "--vsock",
            vsock.to_str().unwrap(),
            "--agent-socket",
            scratch.sockets.join("agent.sock").to_str().unwrap(),
            "--log",
            log.to_str().unwrap(),
            "--jail",
            scratch.jail.to_str().unwrap(),
            "--jail-uid",
            "65534",
            "--jail-gid",
            "65534",
        ],
    );
    let inner = vmm.inner_pid();
    wait_for_seccomp(&mut vmm, inner);
    // The proxy listens for the guest agent where the guest connects.
    let listening = fs::metadata(&control).unwrap();
    assert_eq!(listening.uid(), NOBODY);
    assert_eq!(fs::metadata(&log).unwrap().uid(), NOBODY);
    // The host reaches the vsock device through the jail's bind mount.
    UnixStream::connect(&vsock).expect("connect to the jailed vsock device");

    vmm.signal(libc::SIGTERM);
    assert_eq!(vmm.wait().code(), Some(143), "{}", vmm.output());
    assert!(
        fs::read_to_string(&log)
            .unwrap()
            .contains("stopped the VM on signal 15"),
        "the log is written from inside the jail"
    );
    assert!(!control.exists(), "the sandbox removes its sockets on exit");
}

#[test]
fn without_jail_husk_vmm_runs_as_it_did() {
    require_root();
    let kernel = kernel();
    let scratch = Scratch::new();
    let mut vmm = Vmm::start(
        &scratch,
        &["--kernel", kernel.to_str().unwrap(), "--serial", "none"],
    );
    let pid = vmm.pid();
    wait_for_seccomp(&mut vmm, pid);
    assert!(children_of(pid).is_empty(), "no fork without --jail");
    let status = proc_status(pid);
    assert_eq!(field(&status, "Uid"), "0\t0\t0\t0");
    assert_ne!(field(&status, "CapEff"), "0000000000000000");
    for kind in NAMESPACES {
        assert_eq!(namespace(&pid.to_string(), kind), namespace("self", kind));
    }
    vmm.signal(libc::SIGTERM);
    assert_eq!(vmm.wait().code(), Some(143), "{}", vmm.output());
}

/// The jail with a terminal, driven through the library in a child
/// process: the console socket is connected before the jail, so it may be
/// one the jail's user could not open (root's, in a directory only root
/// enters, as a caller's is); the jailed process opens a pty (devpts of
/// its own), sends its master over that connection, and finds no host
/// file besides, not even the console socket.
#[test]
fn a_jailed_terminal_gets_a_pty_and_the_console_socket() {
    const TEST: &str = "a_jailed_terminal_gets_a_pty_and_the_console_socket";
    if let Some(scratch) = child_scratch() {
        return jailed_terminal_child(Path::new(&scratch));
    }
    require_root();
    let scratch = Scratch::new();
    let kernel = scratch.path("vmlinux");
    fs::write(&kernel, "not booted").unwrap();
    // The caller's console socket stays root's, out of NOBODY's reach.
    let console_dir = scratch.path("console");
    fs::create_dir(&console_dir).unwrap();
    let console = UnixListener::bind(console_dir.join("console.sock")).unwrap();
    fs::set_permissions(&console_dir, fs::Permissions::from_mode(0o700)).unwrap();
    let accepted = thread::spawn(move || {
        let (mut connection, _) = console.accept().unwrap();
        let mut byte = [0u8; 1];
        connection.read_exact(&mut byte).unwrap();
        byte[0]
    });
    let output = run_in_child(TEST, scratch.dir.as_path().to_str().unwrap(), |_| {});
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(accepted.join().unwrap(), 0, "the pty master's message");
}

fn jailed_terminal_child(scratch: &Path) {
    let mut vm = VmConfig::new(scratch.join("vmlinux"));
    vm.vsock = Some(husk_vmm::config::VsockConfig {
        uds_path: scratch.join("sockets/vsock.sock"),
        guest_cid: 3,
    });
    let console_socket = scratch.join("console/console.sock");
    let sandbox = SandboxConfig {
        agent_socket: scratch.join("sockets/agent.sock"),
        stdio: ContainerStdio::Terminal {
            console_socket: console_socket.clone(),
        },
        seccomp: SeccompMode::Kill,
    };
    let config = JailConfig {
        root: scratch.join("jail"),
        user: Some(JailUser {
            uid: NOBODY,
            gid: NOBODY,
        }),
        fd_limit: 64,
    };
    let connection = sandbox::connect_console(&sandbox)
        .expect("connect to the console socket")
        .expect("a terminal sandbox has a console connection");
    match jail::enter(&config, &vm, Some(&sandbox), None).expect("enter the jail") {
        Entered::Outside(waiter) => {
            let ending = waiter.wait().expect("wait for the jailed process");
            assert_eq!(ending, Ending::Exit(0), "the jailed checks failed");
        }
        Entered::Jailed => {
            // Only this thread came through the fork: end the process
            // here, with a status the waiter reports.
            let checks = panic::catch_unwind(|| {
                let (master, _slave) = os::open_pty().expect("open a pty in the jail");
                os::send_fd(&connection, &master).expect("send the pty master");
                assert!(
                    !console_socket.exists(),
                    "the console socket is not in the jail"
                );
                assert!(!Path::new("/etc").exists());
                assert!(!Path::new("/proc").exists());
                assert!(Path::new("/dev/ptmx").exists());
                let error = fs::write("/anything", "").unwrap_err();
                assert_eq!(error.raw_os_error(), Some(libc::EROFS), "{error}");
                let error = fs::write(scratch.join("vmlinux"), "").unwrap_err();
                assert_eq!(error.raw_os_error(), Some(libc::EROFS), "{error}");
                fs::write(scratch.join("sockets/written-in-jail"), "")
                    .expect("write the socket directory");
            });
            std::process::exit(if checks.is_ok() { 0 } else { 1 });
        }
    }
    assert!(
        scratch.join("sockets/written-in-jail").exists(),
        "the socket directory is the host's"
    );
}
