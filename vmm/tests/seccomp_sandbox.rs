//! Sandbox mode under its seccomp policies: a child process runs
//! `sandbox::start` (whose threads confine themselves in kill mode) and
//! plays the guest: the agent's control connection, and the vsock device
//! that answers the proxy's stream connections. A system call the policies
//! miss kills the child with SIGSYS.

mod support;

use std::fs::File;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use husk_protocol::{
    read_frame, write_frame, Event, ExitStatus, GuestMessage, HostMessage, ProcessRef, Request,
    Response, StreamHello, StreamKind, PROTOCOL_VERSION,
};
use husk_vmm::guest_agent::control_socket_path;
use husk_vmm::sandbox::{self, ContainerStdio, SandboxConfig};
use husk_vmm::seccomp::SeccompMode;
use support::{assert_succeeded, child_scratch, describe, run_in_child};
use vmm_sys_util::tempdir::TempDir;

/// What the container's init reads and writes in these tests.
const INPUT: &[u8] = b"the caller's input\n";
const ERROR_OUTPUT: &[u8] = b"from the container's stderr\n";

/// The guest side of one stdio stream the proxy opened: the vsock
/// device's `CONNECT` handshake, then the stream's hello.
fn accept_stream(device: &UnixListener) -> (StreamKind, UnixStream) {
    let (mut stream, _) = device.accept().unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while byte[0] != b'\n' {
        stream.read_exact(&mut byte).unwrap();
        line.push(byte[0]);
    }
    assert!(line.starts_with(b"CONNECT "), "{line:?}");
    stream.write_all(b"OK 1025\n").unwrap();
    let hello: StreamHello = read_frame(&mut stream).unwrap().unwrap();
    assert_eq!(hello.process, ProcessRef::Init);
    (hello.stream, stream)
}

/// Connects to the agent socket, which appears once the guest is ready.
fn connect_client(path: &Path) -> UnixStream {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match UnixStream::connect(path) {
            Ok(client) => return client,
            Err(error) if Instant::now() > deadline => panic!("agent socket: {error}"),
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// The rest of the container's life once its streams are open: a client's
/// request goes through the proxy and back, the init exits, and the proxy
/// asks the guest to shut down once the output is out.
fn serve_one_request_then_exit(control: &mut UnixStream, agent_socket: &Path) {
    let mut client = connect_client(agent_socket);
    write_frame(
        &mut client,
        &HostMessage {
            id: 7,
            request: Request::Stats,
        },
    )
    .unwrap();
    let forwarded: HostMessage = read_frame(&mut *control).unwrap().unwrap();
    assert_eq!(forwarded.request, Request::Stats);
    write_frame(
        &mut *control,
        &GuestMessage::Reply {
            id: forwarded.id,
            response: Response::Ok,
        },
    )
    .unwrap();
    let reply: GuestMessage = read_frame(&mut client).unwrap().unwrap();
    assert_eq!(
        reply,
        GuestMessage::Reply {
            id: 7,
            response: Response::Ok
        }
    );

    let exited = Event::Exited {
        process: ProcessRef::Init,
        status: ExitStatus::Code(0),
    };
    write_frame(&mut *control, &GuestMessage::Event(exited.clone())).unwrap();
    let event: GuestMessage = read_frame(&mut client).unwrap().unwrap();
    assert_eq!(event, GuestMessage::Event(exited));
    loop {
        let message: HostMessage = read_frame(&mut *control).unwrap().unwrap();
        if message.request == Request::Shutdown {
            break;
        }
    }
}

/// In the child: runs the sandbox with the caller's stdio (this process's
/// 0, 1 and 2, which the parent set up) or with a terminal, and plays the
/// guest through to the shutdown request.
fn play_guest(scratch: &Path, terminal: bool) {
    let vsock = scratch.join("vsock");
    let agent_socket = scratch.join("agent");
    let console_socket = scratch.join("console");
    let device = UnixListener::bind(&vsock).unwrap();
    let console = UnixListener::bind(&console_socket).unwrap();
    let config = SandboxConfig {
        agent_socket: agent_socket.clone(),
        stdio: if terminal {
            ContainerStdio::Terminal { console_socket }
        } else {
            ContainerStdio::Pipes
        },
        seccomp: SeccompMode::Kill,
    };
    // husk-vmm's main connects to the console socket before the jail.
    let connection = sandbox::connect_console(&config).unwrap();
    let sandbox = sandbox::start(
        &config,
        connection,
        Some(&vsock),
        Some(&scratch.join("log")),
    )
    .unwrap();

    let mut control = UnixStream::connect(control_socket_path(&vsock)).unwrap();
    let ready = Event::Ready {
        protocol_version: PROTOCOL_VERSION,
        uptime_us: 1,
    };
    write_frame(&mut control, &GuestMessage::Event(ready)).unwrap();

    if terminal {
        let (kind, mut stream) = accept_stream(&device);
        assert_eq!(kind, StreamKind::Terminal);
        // The pty master arrives here; holding the connection keeps it
        // open while the relays run.
        let (_master_carrier, _) = console.accept().unwrap();
        stream.write_all(b"on the terminal\r\n").unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        serve_one_request_then_exit(&mut control, &agent_socket);
    } else {
        let mut streams: Vec<(StreamKind, UnixStream)> =
            (0..3).map(|_| accept_stream(&device)).collect();
        streams.sort_by_key(|(kind, _)| format!("{kind:?}"));
        let [(StreamKind::Stderr, mut stderr), (StreamKind::Stdin, mut stdin), (StreamKind::Stdout, mut stdout)] =
            <[(StreamKind, UnixStream); 3]>::try_from(streams).unwrap()
        else {
            panic!("the init's streams are stdin, stdout and stderr");
        };
        // The relay half-closes the stream at the end of the caller's
        // input; the init echoes it.
        let mut input = Vec::new();
        stdin.read_to_end(&mut input).unwrap();
        stdout.write_all(b"echo: ").unwrap();
        stdout.write_all(&input).unwrap();
        drop(stdout);
        stderr.write_all(ERROR_OUTPUT).unwrap();
        drop(stderr);
        serve_one_request_then_exit(&mut control, &agent_socket);
    }
    drop(sandbox);
}

fn scratch_dir() -> TempDir {
    TempDir::new_with_prefix("/tmp/husk-sandbox-seccomp").expect("a scratch directory")
}

fn log_of(scratch: &TempDir) -> String {
    std::fs::read_to_string(scratch.as_path().join("log")).unwrap_or_default()
}

/// Runs the calling test again in a child with `stdin` as its standard
/// input; returns the child's output and its husk-vmm log.
fn run_sandbox_child(test: &str, stdin: Stdio) -> (std::process::Output, String) {
    let scratch = scratch_dir();
    let output = run_in_child(test, scratch.as_path().to_str().unwrap(), |command| {
        command.stdin(stdin);
    });
    (output, log_of(&scratch))
}

#[test]
fn pipes_relay_the_caller_stdio_from_a_pipe() {
    if let Some(scratch) = child_scratch() {
        play_guest(Path::new(&scratch), false);
        return;
    }
    // A pipe as stdin: io::copy splices it into the guest stream.
    let (reader, mut writer) = std::io::pipe().unwrap();
    writer.write_all(INPUT).unwrap();
    drop(writer);
    let (output, log) = run_sandbox_child(
        "pipes_relay_the_caller_stdio_from_a_pipe",
        Stdio::from(reader),
    );
    assert_succeeded_with_log(&output, &log);
    // The test harness's own header comes before the sandbox takes stdout.
    assert!(
        output.stdout.ends_with(&[b"echo: ", INPUT].concat()),
        "{}",
        describe(&output)
    );
    assert_eq!(output.stderr, ERROR_OUTPUT, "{}", describe(&output));
}

#[test]
fn pipes_relay_the_caller_stdio_from_a_file() {
    if let Some(scratch) = child_scratch() {
        play_guest(Path::new(&scratch), false);
        return;
    }
    // A regular file as stdin: io::copy reads it and sends.
    let input_dir = scratch_dir();
    let input: PathBuf = input_dir.as_path().join("input");
    std::fs::write(&input, INPUT).unwrap();
    let (output, log) = run_sandbox_child(
        "pipes_relay_the_caller_stdio_from_a_file",
        Stdio::from(File::open(&input).unwrap()),
    );
    assert_succeeded_with_log(&output, &log);
    // The test harness's own header comes before the sandbox takes stdout.
    assert!(
        output.stdout.ends_with(&[b"echo: ", INPUT].concat()),
        "{}",
        describe(&output)
    );
    assert_eq!(output.stderr, ERROR_OUTPUT, "{}", describe(&output));
}

#[test]
fn a_terminal_is_relayed_and_followed() {
    if let Some(scratch) = child_scratch() {
        play_guest(Path::new(&scratch), true);
        return;
    }
    let (output, log) = run_sandbox_child("a_terminal_is_relayed_and_followed", Stdio::null());
    assert_succeeded_with_log(&output, &log);
}

fn assert_succeeded_with_log(output: &std::process::Output, log: &str) {
    if !output.status.success() {
        eprintln!("--- the child's husk-vmm log\n{log}");
    }
    assert_succeeded(output);
}
