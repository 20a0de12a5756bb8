//! Sandbox mode (`--agent-socket`): husk-vmm runs one container's VM for
//! the husk CLI. It holds the guest agent's control connection for the
//! container's whole life, serves the CLI's requests on a Unix socket,
//! relays the container process's stdio between its own inherited
//! descriptors (the caller's) and the guest, and asks the guest to shut
//! down once the container's process has ended and its output is out —
//! so husk-vmm exits with the container's status, and its pid can stand
//! for the container's (runc's process model).
//!
//! The agent socket speaks the husk_protocol frames: a client sends
//! `HostMessage`s with its own ids and gets `GuestMessage::Reply`s with
//! those ids back; every guest event goes to every client. The socket
//! appears only once the guest agent said Ready.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use husk_protocol::{
    read_frame, write_frame, Event, GuestMessage, HostMessage, ProcessRef, Request, RequestId,
    Response, StreamKind, PROTOCOL_VERSION,
};

use crate::guest_agent::{self, control_socket_path};
use crate::os;
use crate::seccomp::{self, SeccompError, SeccompMode, ThreadKind};

/// How long the container's output may take to drain after its process
/// ended, before the VM is shut down anyway.
const OUTPUT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a terminal's window size is looked at.
const WINDOW_SIZE_POLL: Duration = Duration::from_millis(200);
/// Requests husk-vmm makes itself carry ids from here up; clients' ids are
/// mapped below it.
const OWN_REQUEST_IDS: RequestId = 1 << 62;

/// How the container process's stdio reaches the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerStdio {
    /// husk-vmm's own descriptors 0, 1 and 2.
    Pipes,
    /// A pty whose master goes to this socket (runc's --console-socket).
    Terminal { console_socket: PathBuf },
}

#[derive(Debug, Clone)]
pub struct SandboxConfig {
    pub agent_socket: PathBuf,
    pub stdio: ContainerStdio,
    /// The seccomp mode of the proxy and the threads it starts.
    pub seccomp: SeccompMode,
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("sandbox mode needs --vsock")]
    NoVsock,
    #[error("take the container's stdio")]
    Stdio(#[source] io::Error),
    #[error("open the log {}", path.display())]
    Log {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("listen for the guest agent")]
    Agent(#[from] guest_agent::AgentError),
    #[error("start the agent proxy")]
    Thread(#[source] io::Error),
    #[error("confine the agent proxy")]
    Seccomp(#[source] SeccompError),
    #[error("connect to the console socket {} (--console-socket)", path.display())]
    ConsoleSocket {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("--container-stdio terminal without a connection to the console socket")]
    NoConsoleConnection,
}

/// Connects to the console socket of a terminal sandbox. Called before the
/// jail: the socket is the caller's (runc's --console-socket), which a
/// jailed husk-vmm running as another user may not be allowed to open,
/// and whose directory the jail does not hold. The caller accepts one
/// connection and waits on it for the pty master, as it does with runc.
pub fn connect_console(config: &SandboxConfig) -> Result<Option<UnixStream>, SandboxError> {
    match &config.stdio {
        ContainerStdio::Pipes => Ok(None),
        ContainerStdio::Terminal { console_socket } => UnixStream::connect(console_socket)
            .map(Some)
            .map_err(|source| SandboxError::ConsoleSocket {
                path: console_socket.clone(),
                source,
            }),
    }
}

/// The sockets sandbox mode made, removed when husk-vmm ends.
pub struct Sandbox {
    files: Vec<PathBuf>,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for file in &self.files {
            let _ = fs::remove_file(file);
        }
    }
}

/// The descriptors the container's stdio travels through.
struct CallerStdio {
    stdin: File,
    stdout: File,
    stderr: File,
}

/// Takes the caller's stdio for the container and points husk-vmm's own
/// 0, 1 and 2 at /dev/null and `log` (/dev/null without one); listens for
/// the guest agent; and starts the proxy thread, which confines itself
/// with seccomp before it returns. Call before the VM boots, and before the
/// main thread confines itself (the seccomp module tells why).
pub fn start(
    config: &SandboxConfig,
    console: Option<UnixStream>,
    vsock_path: Option<&Path>,
    log: Option<&Path>,
) -> Result<Sandbox, SandboxError> {
    if matches!(config.stdio, ContainerStdio::Terminal { .. }) && console.is_none() {
        return Err(SandboxError::NoConsoleConnection);
    }
    let vsock_path = vsock_path.ok_or(SandboxError::NoVsock)?.to_owned();
    let caller = take_caller_stdio(log)?;
    let listener = guest_agent::listen(&vsock_path)?;
    let sandbox = Sandbox {
        files: vec![
            control_socket_path(&vsock_path),
            config.agent_socket.clone(),
        ],
    };
    let config = config.clone();
    let (confined_tx, confined_rx) = mpsc::sync_channel(1);
    thread::Builder::new()
        .name("agent-proxy".into())
        .spawn(move || {
            let confined =
                seccomp::confine_current_thread(ThreadKind::SandboxControl, config.seccomp);
            let may_serve = confined.is_ok();
            let _ = confined_tx.send(confined);
            if !may_serve {
                return;
            }
            if let Err(error) = serve(&config, &vsock_path, listener, caller, console) {
                eprintln!("husk-vmm: sandbox: {error}");
            }
        })
        .map_err(SandboxError::Thread)?;
    match confined_rx.recv() {
        Ok(Ok(())) => Ok(sandbox),
        Ok(Err(error)) => Err(SandboxError::Seccomp(error)),
        Err(_) => Err(SandboxError::Thread(io::Error::other(
            "the agent proxy ended before it started",
        ))),
    }
}

/// Sends husk-vmm's own messages (stdout and stderr) to `log`, appended.
pub fn log_to(log: &Path) -> Result<(), SandboxError> {
    let messages = open_log(log)?;
    os::redirect(&messages, 1).map_err(SandboxError::Stdio)?;
    os::redirect(&messages, 2).map_err(SandboxError::Stdio)
}

fn open_log(path: &Path) -> Result<File, SandboxError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| SandboxError::Log {
            path: path.to_owned(),
            source,
        })
}

fn take_caller_stdio(log: Option<&Path>) -> Result<CallerStdio, SandboxError> {
    let duplicate = |fd: std::os::fd::BorrowedFd| -> Result<File, SandboxError> {
        fd.try_clone_to_owned()
            .map(File::from)
            .map_err(SandboxError::Stdio)
    };
    let caller = CallerStdio {
        stdin: duplicate(io::stdin().as_fd())?,
        stdout: duplicate(io::stdout().as_fd())?,
        stderr: duplicate(io::stderr().as_fd())?,
    };
    let null = File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(SandboxError::Stdio)?;
    let messages = match log {
        Some(path) => open_log(path)?,
        None => null.try_clone().map_err(SandboxError::Stdio)?,
    };
    os::redirect(&null, 0).map_err(SandboxError::Stdio)?;
    os::redirect(&messages, 1).map_err(SandboxError::Stdio)?;
    os::redirect(&messages, 2).map_err(SandboxError::Stdio)?;
    Ok(caller)
}

/// Requests in flight, and where their replies go.
struct Routes {
    guest: UnixStream,
    next_id: RequestId,
    pending: HashMap<RequestId, (RequestId, Arc<Mutex<UnixStream>>)>,
    clients: Vec<Arc<Mutex<UnixStream>>>,
    next_own_id: RequestId,
    /// The container now exists: a terminal's size must be sent again,
    /// since one sent before was refused.
    resend_window_size: bool,
}

impl Routes {
    fn forward(&mut self, message: HostMessage, client: &Arc<Mutex<UnixStream>>) -> io::Result<()> {
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(id, (message.id, Arc::clone(client)));
        send(
            &mut self.guest,
            &HostMessage {
                id,
                request: message.request,
            },
        )
    }

    /// A request of husk-vmm's own; its reply is dropped.
    fn request(&mut self, request: Request) -> io::Result<()> {
        let id = self.next_own_id;
        self.next_own_id += 1;
        send(&mut self.guest, &HostMessage { id, request })
    }
}

fn send<T: serde::Serialize>(stream: &mut UnixStream, message: &T) -> io::Result<()> {
    write_frame(stream, message).map_err(io::Error::other)
}

fn serve(
    config: &SandboxConfig,
    vsock_path: &Path,
    listener: UnixListener,
    caller: CallerStdio,
    console: Option<UnixStream>,
) -> io::Result<()> {
    let (mut guest, _) = listener.accept()?;
    drop(listener);
    match read_frame::<_, GuestMessage>(&mut guest).map_err(io::Error::other)? {
        Some(GuestMessage::Event(Event::Ready {
            protocol_version, ..
        })) if protocol_version == PROTOCOL_VERSION => {}
        other => {
            return Err(io::Error::other(format!(
                "the guest agent's first message was not Ready for protocol {PROTOCOL_VERSION}: {other:?}"
            )))
        }
    }
    let routes = Arc::new(Mutex::new(Routes {
        guest: guest.try_clone()?,
        next_id: 1,
        pending: HashMap::new(),
        clients: Vec::new(),
        next_own_id: OWN_REQUEST_IDS,
        resend_window_size: false,
    }));
    let output_done = relay_init_stdio(console, vsock_path, caller, &routes)?;
    accept_clients(&config.agent_socket, Arc::clone(&routes))?;

    let mut output_done = Some(output_done);
    while let Some(message) = read_frame::<_, GuestMessage>(&mut guest).map_err(io::Error::other)? {
        let mut routes_now = routes.lock().map_err(|_| io::Error::other("poisoned"))?;
        match message {
            GuestMessage::Reply { id, response } => {
                if matches!(response, Response::Created { .. }) {
                    routes_now.resend_window_size = true;
                }
                if let Some((client_id, client)) = routes_now.pending.remove(&id) {
                    if let Ok(mut client) = client.lock() {
                        let _ = send(
                            &mut client,
                            &GuestMessage::Reply {
                                id: client_id,
                                response,
                            },
                        );
                    }
                }
            }
            GuestMessage::Event(event) => {
                let init_ended = matches!(
                    &event,
                    Event::Exited {
                        process: ProcessRef::Init,
                        ..
                    }
                );
                let message = GuestMessage::Event(event);
                routes_now.clients.retain(|client| {
                    client
                        .lock()
                        .map(|mut client| send(&mut client, &message).is_ok())
                        .unwrap_or(false)
                });
                if init_ended {
                    if let Some(output_done) = output_done.take() {
                        shut_down_after_output(output_done, Arc::clone(&routes));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Listens on the agent socket: created under a temporary name and renamed,
/// so that it appears whole, and only now that the guest is ready.
fn accept_clients(path: &Path, routes: Arc<Mutex<Routes>>) -> io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".new");
    let _ = fs::remove_file(&temporary);
    let listener = UnixListener::bind(&temporary)?;
    fs::rename(&temporary, path)?;
    thread::Builder::new()
        .name("agent-clients".into())
        .spawn(move || {
            for client in listener.incoming().flatten() {
                let routes = Arc::clone(&routes);
                let _ = thread::Builder::new()
                    .name("agent-client".into())
                    .spawn(move || serve_client(client, routes));
            }
        })?;
    Ok(())
}

fn serve_client(mut client: UnixStream, routes: Arc<Mutex<Routes>>) {
    let Ok(writer) = client.try_clone() else {
        return;
    };
    let writer = Arc::new(Mutex::new(writer));
    if let Ok(mut routes) = routes.lock() {
        routes.clients.push(Arc::clone(&writer));
    }
    while let Ok(Some(message)) = read_frame::<_, HostMessage>(&mut client) {
        let Ok(mut routes) = routes.lock() else {
            return;
        };
        if routes.forward(message, &writer).is_err() {
            // The guest is gone; the VM is ending.
            return;
        }
    }
    if let Ok(mut routes) = routes.lock() {
        routes.clients.retain(|other| !Arc::ptr_eq(other, &writer));
    }
}

/// Waits (bounded) for the container's output to be out, then asks the
/// guest to shut down; the VM ends with the container's status.
fn shut_down_after_output(output_done: Receiver<()>, routes: Arc<Mutex<Routes>>) {
    let _ = thread::Builder::new()
        .name("shutdown".into())
        .spawn(move || {
            let _ = output_done.recv_timeout(OUTPUT_DRAIN_TIMEOUT);
            if let Ok(mut routes) = routes.lock() {
                let _ = routes.request(Request::Shutdown);
            }
        });
}

/// Opens the init's streams and relays them; the receiver hears once every
/// output stream has reached its end.
/// With `console` (a connection to the console socket) the init has a
/// terminal, whose pty master goes there; without, its stdio is pipes.
fn relay_init_stdio(
    console: Option<UnixStream>,
    vsock_path: &Path,
    caller: CallerStdio,
    routes: &Arc<Mutex<Routes>>,
) -> io::Result<Receiver<()>> {
    let open = |kind| {
        guest_agent::open_stream(vsock_path, &ProcessRef::Init, kind).map_err(io::Error::other)
    };
    let (done, output_done) = mpsc::channel();
    match console {
        None => {
            let stdin = open(StreamKind::Stdin)?;
            let stdout = open(StreamKind::Stdout)?;
            let stderr = open(StreamKind::Stderr)?;
            copy_then_close(caller.stdin, stdin, "stdin")?;
            let stdout_done = copy_output(stdout, caller.stdout, "stdout")?;
            let stderr_done = copy_output(stderr, caller.stderr, "stderr")?;
            thread::Builder::new()
                .name("output-done".into())
                .spawn(move || {
                    let _ = stdout_done.join();
                    let _ = stderr_done.join();
                    let _ = done.send(());
                })?;
        }
        Some(socket) => {
            let terminal = open(StreamKind::Terminal)?;
            let (master, slave) = os::open_pty()?;
            os::send_fd(&socket, &master)?;
            drop(master);
            let slave = File::from(slave);
            copy_then_close(slave.try_clone()?, terminal.try_clone()?, "terminal-in")?;
            let output = copy_output(terminal, slave.try_clone()?, "terminal-out")?;
            follow_window_size(slave, Arc::clone(routes))?;
            thread::Builder::new()
                .name("output-done".into())
                .spawn(move || {
                    let _ = output.join();
                    let _ = done.send(());
                })?;
        }
    }
    Ok(output_done)
}

/// Copies `from` into the guest stream until end of file, then half-closes
/// the stream so the process reads end of file too.
fn copy_then_close(mut from: File, mut to: UnixStream, name: &str) -> io::Result<()> {
    let seccomp_mode = seccomp::current_thread_mode();
    thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            seccomp::narrow_current_thread(ThreadKind::StdioRelay, seccomp_mode);
            let _ = io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Write);
        })?;
    Ok(())
}

/// Copies a guest stream out until it ends.
fn copy_output(
    mut from: UnixStream,
    mut to: File,
    name: &str,
) -> io::Result<thread::JoinHandle<()>> {
    let seccomp_mode = seccomp::current_thread_mode();
    thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            seccomp::narrow_current_thread(ThreadKind::StdioRelay, seccomp_mode);
            let mut buffer = [0u8; 16 * 1024];
            loop {
                match from.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(count) => {
                        if to.write_all(&buffer[..count]).is_err() {
                            break;
                        }
                    }
                }
            }
        })
}

/// Passes the caller's window size changes (made on the pty master) on to
/// the container's terminal.
fn follow_window_size(slave: File, routes: Arc<Mutex<Routes>>) -> io::Result<()> {
    thread::Builder::new()
        .name("window-size".into())
        .spawn(move || {
            let mut last = None;
            while let Ok((rows, cols)) = os::window_size(&slave) {
                let Ok(mut routes) = routes.lock() else {
                    return;
                };
                if std::mem::take(&mut routes.resend_window_size) {
                    last = None;
                }
                if rows > 0 && cols > 0 && last != Some((rows, cols)) {
                    last = Some((rows, cols));
                    let resize = Request::ResizeTerminal {
                        process: ProcessRef::Init,
                        rows,
                        cols,
                    };
                    if routes.request(resize).is_err() {
                        return;
                    }
                }
                drop(routes);
                thread::sleep(WINDOW_SIZE_POLL);
            }
        })?;
    Ok(())
}
