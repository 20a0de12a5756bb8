//! The host end of husk-init's agent protocol (husk_protocol): the guest
//! connects out to host port CONTROL_PORT, which the vsock device routes to
//! the Unix socket `<vsock path>_<port>`; stdio streams go the other way,
//! to the guest's STDIO_PORT through the vsock socket's CONNECT handshake.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use husk_protocol::ports::{CONTROL_PORT, STDIO_PORT};
use husk_protocol::{
    read_frame, write_frame, CodecError, Event, GuestMessage, HostMessage, ProcessRef, Request,
    RequestId, Response, StreamHello, StreamKind, PROTOCOL_VERSION,
};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("listen for the guest agent on {}", path.display())]
    Listen {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the guest agent was not ready within {} s", timeout.as_secs())]
    ConnectTimeout { timeout: Duration },
    #[error("accept the guest agent's connection")]
    Accept(#[source] io::Error),
    #[error("talk to the guest agent")]
    Codec(#[from] CodecError),
    #[error("the guest agent closed the control connection")]
    Closed,
    #[error("the guest agent speaks protocol version {guest}, this host {PROTOCOL_VERSION}")]
    Version { guest: u32 },
    #[error("the guest agent's first message was not Ready: {0:?}")]
    NotReady(Box<GuestMessage>),
    #[error("open the {kind:?} stream of {process} through {}", path.display())]
    OpenStream {
        process: ProcessRef,
        kind: StreamKind,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the vsock device refused the stream to guest port {port}: {answer:?}")]
    StreamRefused { port: u32, answer: String },
}

/// Where the guest agent's control connection arrives for a VM whose vsock
/// device is at `vsock_path`.
pub fn control_socket_path(vsock_path: &Path) -> PathBuf {
    let mut path = vsock_path.as_os_str().to_owned();
    path.push(format!("_{CONTROL_PORT}"));
    PathBuf::from(path)
}

/// Listens for the guest agent; do this before the VM boots.
pub fn listen(vsock_path: &Path) -> Result<UnixListener, AgentError> {
    let path = control_socket_path(vsock_path);
    UnixListener::bind(&path).map_err(|source| AgentError::Listen { path, source })
}

/// A connected guest agent.
pub struct GuestAgent {
    connection: UnixStream,
    next_id: RequestId,
    /// Events that arrived while waiting for a reply.
    events: VecDeque<Event>,
    /// The guest's uptime when it connected.
    pub guest_uptime: Duration,
}

impl GuestAgent {
    /// Waits up to `timeout` for the guest to connect and say Ready.
    pub fn accept(listener: &UnixListener, timeout: Duration) -> Result<GuestAgent, AgentError> {
        listener.set_nonblocking(true).map_err(AgentError::Accept)?;
        let deadline = Instant::now() + timeout;
        let connection = loop {
            match listener.accept() {
                Ok((connection, _)) => break connection,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err(AgentError::ConnectTimeout { timeout });
                    }
                    thread::sleep(Duration::from_millis(2));
                }
                Err(error) => return Err(AgentError::Accept(error)),
            }
        };
        connection
            .set_nonblocking(false)
            .map_err(AgentError::Accept)?;
        let mut agent = GuestAgent {
            connection,
            next_id: 1,
            events: VecDeque::new(),
            guest_uptime: Duration::ZERO,
        };
        match agent.receive()? {
            GuestMessage::Event(Event::Ready {
                protocol_version,
                uptime_us,
            }) => {
                if protocol_version != PROTOCOL_VERSION {
                    return Err(AgentError::Version {
                        guest: protocol_version,
                    });
                }
                agent.guest_uptime = Duration::from_micros(uptime_us);
                Ok(agent)
            }
            other => Err(AgentError::NotReady(Box::new(other))),
        }
    }

    /// Connects to husk-vmm's agent socket (sandbox mode), waiting up to
    /// `timeout` for it to appear: it does once the guest is ready.
    pub fn connect_sandbox(socket: &Path, timeout: Duration) -> Result<GuestAgent, AgentError> {
        let deadline = Instant::now() + timeout;
        let connection = loop {
            match UnixStream::connect(socket) {
                Ok(connection) => break connection,
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                    ) =>
                {
                    if Instant::now() >= deadline {
                        return Err(AgentError::ConnectTimeout { timeout });
                    }
                    thread::sleep(Duration::from_millis(2));
                }
                Err(error) => return Err(AgentError::Accept(error)),
            }
        };
        Ok(GuestAgent {
            connection,
            next_id: 1,
            events: VecDeque::new(),
            guest_uptime: Duration::ZERO,
        })
    }

    fn receive(&mut self) -> Result<GuestMessage, AgentError> {
        read_frame(&mut self.connection)?.ok_or(AgentError::Closed)
    }

    /// Sends `request` and waits for its reply; events that come first are
    /// kept for [`GuestAgent::next_event`].
    pub fn request(&mut self, request: Request) -> Result<Response, AgentError> {
        let id = self.next_id;
        self.next_id += 1;
        write_frame(&mut self.connection, &HostMessage { id, request })?;
        loop {
            match self.receive()? {
                GuestMessage::Reply {
                    id: reply_id,
                    response,
                } if reply_id == id => return Ok(response),
                // A reply to an earlier request nobody waits for any more.
                GuestMessage::Reply { .. } => {}
                GuestMessage::Event(event) => self.events.push_back(event),
            }
        }
    }

    /// The next event, waiting for one if none is kept.
    pub fn next_event(&mut self) -> Result<Event, AgentError> {
        if let Some(event) = self.events.pop_front() {
            return Ok(event);
        }
        loop {
            match self.receive()? {
                GuestMessage::Event(event) => return Ok(event),
                GuestMessage::Reply { .. } => {}
            }
        }
    }
}

/// Opens stdio stream `kind` of `process` to the guest: the vsock
/// socket's `CONNECT` handshake to STDIO_PORT, then the StreamHello frame.
/// After that the stream carries the process's bytes.
pub fn open_stream(
    vsock_path: &Path,
    process: &ProcessRef,
    kind: StreamKind,
) -> Result<UnixStream, AgentError> {
    let failed = |source| AgentError::OpenStream {
        process: process.clone(),
        kind,
        path: vsock_path.to_owned(),
        source,
    };
    let mut stream = UnixStream::connect(vsock_path).map_err(failed)?;
    stream
        .write_all(format!("CONNECT {STDIO_PORT}\n").as_bytes())
        .map_err(failed)?;
    // The answer is one line; read it byte by byte so that nothing after
    // it is taken from the stream.
    let mut answer = Vec::new();
    let mut reader = BufReader::with_capacity(1, &stream);
    reader.read_until(b'\n', &mut answer).map_err(failed)?;
    let answer = String::from_utf8_lossy(&answer).trim_end().to_string();
    if !answer.starts_with("OK ") {
        return Err(AgentError::StreamRefused {
            port: STDIO_PORT,
            answer,
        });
    }
    write_frame(
        &mut stream,
        &StreamHello {
            process: process.clone(),
            stream: kind,
        },
    )?;
    Ok(stream)
}
