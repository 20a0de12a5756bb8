//! The container engine inside a VM: the checks of tests/src/checks.rs run
//! as containers in husk guests, driven through husk-init's agent the way
//! the husk CLI drives it. Needs a KVM that boots guests (tests/run-all runs
//! this inside the test host), root, busybox-static and e2fsprogs.

use husk_protocol::{ExecRequest, ExitStatus, ProcessRef, Request, Response};
use husk_tests::bundle::Bundle;
use husk_tests::checks::Check;
use husk_tests::require_bootable_kvm;
use husk_tests::vm::{run_bundle, stdio_for, GuestSandbox, VmContainerRun};
use oci_spec::runtime::Process;
use serde_json::json;

fn run(bundle: &Bundle, name: &str) -> VmContainerRun {
    require_bootable_kvm();
    run_bundle(bundle, &format!("{name}-{}", std::process::id()))
}

/// Runs a check in a VM. A create the guest refused counts as the
/// process's failure: its exit code and message, as husk would report them.
fn check(check: &Check) {
    let bundle = check.bundle();
    let run = run(&bundle, check.name);
    let mut stderr = run.stderr.clone();
    if let Err(error) = &run.outcome {
        stderr.push_str(&error.to_string());
    }
    check.verify(run.code(), &run.stdout, &stderr);
    if run.outcome.is_ok() {
        assert_eq!(
            run.vmm_code,
            run.code(),
            "husk-vmm exits with the container's status"
        );
    }
}

husk_tests::engine_check_tests! {
    run with check;
    // Refused creates: on the host, tests/engine_host.rs checks these with
    // what they leave behind as well.
    missing_program_exits_127 => MISSING_PROGRAM,
    non_executable_program_exits_126 => NOT_EXECUTABLE,
    absent_user_name_is_named => ABSENT_USER_NAME,
    seccomp_notify_is_refused => SECCOMP_NOTIFY_REFUSED,
}

#[test]
fn terminal_output_arrives_through_the_terminal_stream() {
    let mut bundle = Bundle::busybox("vm-terminal");
    bundle
        .set("/process/terminal", json!(true))
        .shell("tty; echo on-the-pty");
    let run = run(&bundle, "vm-terminal");
    let output = run.success().replace('\r', "");
    assert_eq!(output, "/dev/pts/0\non-the-pty\n");
}

/// An exec'd process runs inside the container the VM holds: its pid
/// namespace, hostname and root; it gets its own stdio and exit status,
/// while the container's process keeps running until it is killed.
#[test]
fn exec_runs_inside_the_running_container() {
    require_bootable_kvm();
    let mut bundle = Bundle::busybox("vm-exec");
    bundle.set("/hostname", json!("vmbox")).shell("sleep 600");
    let id = format!("vm-exec-{}", std::process::id());
    let mut sandbox = GuestSandbox::boot(&bundle, &id);
    let stdio = stdio_for(&bundle);
    let (_init_out, _init_err) = sandbox.open_output(&ProcessRef::Init, &stdio);
    assert!(matches!(
        sandbox.create(&bundle, &id, stdio),
        Response::Created { .. }
    ));
    assert_eq!(sandbox.request(Request::Start), Response::Started);

    let exec = ProcessRef::Exec("e1".into());
    let (stdout, stderr) = sandbox.open_output(&exec, &stdio);
    let process: Process = serde_json::from_value(json!({
        "args": ["sh", "-c", "hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; ls /bin/busybox; exit 7"],
        "cwd": "/",
        "env": ["PATH=/bin"],
        "user": {"uid": 0, "gid": 0}
    }))
    .unwrap();
    let reply = sandbox.request(Request::Exec(Box::new(ExecRequest {
        exec_id: "e1".into(),
        process,
        stdio,
    })));
    assert!(
        matches!(reply, Response::ExecStarted { .. }),
        "Exec answered {reply:?}"
    );
    assert_eq!(sandbox.wait(exec), ExitStatus::Code(7));
    assert_eq!(
        stdout.join().unwrap(),
        "vmbox\nsleep 600 \n/bin/busybox\n",
        "stderr: {}",
        stderr.join().unwrap()
    );

    // The container's process was untouched by the exec; now end it.
    let kill = Request::Signal {
        process: ProcessRef::Init,
        signal: libc::SIGKILL,
        all: false,
    };
    assert_eq!(sandbox.request(kill), Response::Ok);
    assert_eq!(
        sandbox.wait(ProcessRef::Init),
        ExitStatus::Signal(libc::SIGKILL)
    );
    assert_eq!(sandbox.shut_down(), Some(128 + libc::SIGKILL));
}

/// husk-vmm in sandbox mode, as the husk CLI runs it: the container's stdio
/// is husk-vmm's own, requests go through its agent socket, and husk-vmm
/// exits with the container's status once the process has ended.
#[test]
fn sandbox_mode_relays_stdio_and_exits_with_the_containers_status() {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};

    use husk_protocol::{CreateContainerRequest, RootfsSource, StdioSetup};
    use husk_tests::vm::make_ext4_image;
    use husk_tests::{cmdline, path_str, wait_with_deadline, Artifacts, Scratch, BOOT_TIMEOUT};
    use husk_vmm::guest_agent::GuestAgent;

    require_bootable_kvm();
    let artifacts = Artifacts::get();
    let mut bundle = Bundle::busybox("vm-sandbox");
    bundle.shell("read line; echo got:$line; echo to-stderr >&2; exit 5");
    let scratch = Scratch::new("vm-sandbox");
    let image = scratch.file("rootfs.ext4");
    make_ext4_image(&bundle.rootfs(), &image);
    let agent_socket = scratch.file("agent.sock");
    let log = scratch.file("vmm.log");
    let mut vmm = Command::new(&artifacts.vmm)
        .args(["--kernel", path_str(&artifacts.vmlinux)])
        .args(["--initrd", path_str(&artifacts.initramfs)])
        .args(["--disk", path_str(&image)])
        .args(["--vsock", path_str(&scratch.file("vsock"))])
        .args(["--serial", path_str(&scratch.file("console.log"))])
        .args(["--memory-mib", "256", "--rng"])
        .args(["--cmdline", &cmdline("husk.agent")])
        .args(["--agent-socket", path_str(&agent_socket)])
        .args(["--log", path_str(&log)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start husk-vmm");
    vmm.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let mut stdout = vmm.stdout.take().unwrap();
    let mut stderr = vmm.stderr.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });

    let mut agent = GuestAgent::connect_sandbox(&agent_socket, BOOT_TIMEOUT).unwrap_or_else(|e| {
        let _ = vmm.kill();
        panic!(
            "{e}; husk-vmm's log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    let create = Request::CreateContainer(Box::new(CreateContainerRequest {
        id: "sandbox".into(),
        spec: serde_json::from_value(bundle.config.clone()).unwrap(),
        bundle: path_str(&bundle.dir).into(),
        rootfs: RootfsSource::Block {
            device: "/dev/vda".into(),
            fs_type: "ext4".into(),
            read_only: false,
        },
        stdio: StdioSetup::Pipes {
            stdin: true,
            stdout: true,
            stderr: true,
        },
        files: Vec::new(),
        directories: Vec::new(),
    }));
    let created = agent.request(create).unwrap();
    assert!(matches!(created, Response::Created { .. }), "{created:?}");
    assert_eq!(agent.request(Request::Start).unwrap(), Response::Started);
    let status =
        wait_with_deadline(&mut vmm, BOOT_TIMEOUT).expect("husk-vmm ends with the container");
    assert_eq!(stdout.join().unwrap(), "got:hello\n");
    assert_eq!(stderr.join().unwrap(), "to-stderr\n");
    assert_eq!(
        status.code(),
        Some(5),
        "husk-vmm exits with the container's status"
    );
    assert!(
        !agent_socket.exists(),
        "the agent socket goes with husk-vmm"
    );
}
