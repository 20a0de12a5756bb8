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
    #[error(
        "the guest did not take the {kind:?} stream of {process} within {:.1} s (through {})",
        timeout.as_secs_f64(),
        path.display()
    )]
    StreamTimedOut {
        process: ProcessRef,
        kind: StreamKind,
        path: PathBuf,
        timeout: Duration,
    },
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
    open_stream_within(vsock_path, process, kind, None)
}

/// [`open_stream`] with the handshake bounded by `timeout` (None: no
/// bound). The device answers `OK` only once the guest accepted the
/// stream, so a guest that never answers (stuck, or hostile) would
/// otherwise hold the caller for ever. The stream has no timeout once open.
/// Bounding takes socket timeouts (setsockopt), which husk-vmm's own
/// confined threads may not set; they pass None.
pub fn open_stream_within(
    vsock_path: &Path,
    process: &ProcessRef,
    kind: StreamKind,
    timeout: Option<Duration>,
) -> Result<UnixStream, AgentError> {
    let failed = |source: io::Error| match timeout {
        Some(timeout)
            if matches!(
                source.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            AgentError::StreamTimedOut {
                process: process.clone(),
                kind,
                path: vsock_path.to_owned(),
                timeout,
            }
        }
        _ => AgentError::OpenStream {
            process: process.clone(),
            kind,
            path: vsock_path.to_owned(),
            source,
        },
    };
    let mut stream = UnixStream::connect(vsock_path).map_err(failed)?;
    if timeout.is_some() {
        stream.set_read_timeout(timeout).map_err(failed)?;
        stream.set_write_timeout(timeout).map_err(failed)?;
    }
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
    if timeout.is_some() {
        stream.set_read_timeout(None).map_err(failed)?;
        stream.set_write_timeout(None).map_err(failed)?;
    }
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::sync::mpsc;

    use husk_protocol::read_frame;
    use vmm_sys_util::tempdir::TempDir;

    use super::*;

    /// A vsock socket whose host side answers each CONNECT with `answer`
    /// (nothing at all when None) and keeps the streams until the test
    /// ends; hands each stream's StreamHello back.
    fn fake_vsock(path: &Path, answer: Option<&'static str>) -> mpsc::Receiver<StreamHello> {
        let listener = UnixListener::bind(path).unwrap();
        let (hellos, received) = mpsc::channel();
        thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let expected = format!("CONNECT {STDIO_PORT}\n");
                let mut line = vec![0u8; expected.len()];
                stream.read_exact(&mut line).unwrap();
                assert_eq!(line, expected.as_bytes());
                if let Some(answer) = answer {
                    stream.write_all(answer.as_bytes()).unwrap();
                    if let Ok(Some(hello)) = read_frame(&mut stream) {
                        let _ = hellos.send(hello);
                    }
                }
                held.push(stream);
            }
        });
        received
    }

    #[test]
    fn a_stream_the_guest_never_takes_times_out_with_its_name() {
        let dir = TempDir::new_with_prefix("/tmp/husk-agent").unwrap();
        let path = dir.as_path().join("vsock");
        let _hellos = fake_vsock(&path, None);
        let started = Instant::now();
        let process = ProcessRef::Exec("exec-1".into());
        let error = open_stream_within(
            &path,
            &process,
            StreamKind::Stdin,
            Some(Duration::from_millis(200)),
        )
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            matches!(error, AgentError::StreamTimedOut { .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(
            message.starts_with(
                "the guest did not take the Stdin stream of exec process \"exec-1\" within 0.2 s"
            ),
            "{message}"
        );
    }

    #[test]
    fn a_stream_the_guest_takes_is_opened_without_a_timeout_left_on_it() {
        let dir = TempDir::new_with_prefix("/tmp/husk-agent").unwrap();
        let path = dir.as_path().join("vsock");
        let hellos = fake_vsock(&path, Some("OK 1073741824\n"));
        let stream = open_stream_within(
            &path,
            &ProcessRef::Init,
            StreamKind::Stdout,
            Some(Duration::from_secs(5)),
        )
        .unwrap();
        assert_eq!(stream.read_timeout().unwrap(), None);
        assert_eq!(stream.write_timeout().unwrap(), None);
        let hello = hellos.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(
            (hello.process, hello.stream),
            (ProcessRef::Init, StreamKind::Stdout)
        );
    }
}
