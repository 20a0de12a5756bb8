//! The CLI's end of the guest agent: a connection to husk-vmm's agent
//! socket (`--agent-socket`), which husk-vmm creates once the guest said
//! Ready and which carries husk_protocol frames. Each connection numbers its
//! own requests; husk-vmm forwards them to the guest and sends each reply
//! back on the connection it came from, and copies every guest event to
//! every connection (protocol/src/messages.rs, "Connections").

use std::io::{self, ErrorKind, Read};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use husk_protocol::{
    read_frame, write_frame, CodecError, GuestError, GuestMessage, HostMessage, Request, RequestId,
    Response,
};

/// How long a request other than Wait may take to be answered. Generous:
/// the guest handles requests one after the other, and an exec waits up to
/// 30 s for its stdio streams before it answers.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a command that finds no agent socket keeps trying (the socket
/// appears only once the guest is ready).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the guest may take to accept one of an exec's stdio streams.
/// Its kernel answers the vsock handshake itself, agent or not, and at once
/// when healthy; generous for an emulated guest. Past it the guest is stuck
/// or hostile, and exec fails instead of hanging.
pub const STREAM_OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the CLI waits on the guest, step by step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentTimeouts {
    /// For the answer to a request other than Wait.
    pub request: Duration,
    /// For the guest to accept a stdio stream.
    pub stream_open: Duration,
}

impl Default for AgentTimeouts {
    fn default() -> Self {
        AgentTimeouts {
            request: REQUEST_TIMEOUT,
            stream_open: STREAM_OPEN_TIMEOUT,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("connect to the VM's agent socket {}", path.display())]
    Connect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "the guest was not ready within {:.1} s (husk-vmm never opened its agent socket {}){detail}",
        waited.as_secs_f64(),
        path.display()
    )]
    NotReady {
        path: PathBuf,
        waited: Duration,
        detail: String,
    },
    #[error("{0}")]
    VmEnded(String),
    #[error("set a timeout on the agent connection")]
    SetTimeout(#[source] io::Error),
    #[error("send {request} to the guest")]
    Send {
        request: &'static str,
        #[source]
        source: CodecError,
    },
    #[error("read the guest's answer to {request}")]
    Receive {
        request: &'static str,
        #[source]
        source: CodecError,
    },
    #[error("the VM went away before it answered {request} (the container has stopped)")]
    Closed { request: &'static str },
    #[error("the guest did not answer {request} within {:.1} s", timeout.as_secs_f64())]
    TimedOut {
        request: &'static str,
        timeout: Duration,
    },
    #[error("{request}")]
    Refused {
        request: &'static str,
        #[source]
        source: GuestError,
    },
    #[error("the guest answered {request} with {response}, which makes no sense for it")]
    Unexpected {
        request: &'static str,
        response: String,
    },
}

impl AgentError {
    /// The exit status runc would report for this failure: the guest's
    /// 127 (program not found) or 126 (not executable), else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            AgentError::Refused { source, .. } => match source.exit_code {
                Some(code @ (126 | 127)) => code as u8,
                _ => 1,
            },
            _ => 1,
        }
    }

    /// Whether the VM is gone (or going) rather than the request failing.
    pub fn vm_is_gone(&self) -> bool {
        match self {
            AgentError::Closed { .. } | AgentError::VmEnded(_) => true,
            AgentError::Connect { source, .. } => matches!(
                source.kind(),
                ErrorKind::NotFound | ErrorKind::ConnectionRefused
            ),
            _ => false,
        }
    }
}

/// The name of a request, for messages.
pub fn request_name(request: &Request) -> &'static str {
    match request {
        Request::CreateContainer(_) => "CreateContainer",
        Request::Start => "Start",
        Request::Signal { .. } => "Signal",
        Request::Exec(_) => "Exec",
        Request::ResizeTerminal { .. } => "ResizeTerminal",
        Request::Wait { .. } => "Wait",
        Request::CloseStdin { .. } => "CloseStdin",
        Request::Stats => "Stats",
        Request::ListProcesses => "ListProcesses",
        Request::ProcessTable => "ProcessTable",
        Request::Pause => "Pause",
        Request::Resume => "Resume",
        Request::UpdateResources(_) => "UpdateResources",
        Request::Timings => "Timings",
        Request::Shutdown => "Shutdown",
    }
}

/// One connection to the agent socket. Events (which husk-vmm copies to
/// every connection) are passed over: the CLI learns how processes end
/// from Wait and from husk-vmm's exit.
pub struct AgentClient {
    stream: UnixStream,
    next_id: RequestId,
}

impl AgentClient {
    /// Connects to a VM that is up, trying for `patience` while the socket
    /// is not there yet (a VM that is still booting).
    pub fn connect(path: &Path, patience: Duration) -> Result<AgentClient, AgentError> {
        Self::connect_when_ready(path, Instant::now() + patience, || Ok(())).map_err(|error| {
            match error {
                AgentError::NotReady { path, .. } => AgentError::Connect {
                    path,
                    source: io::Error::from(ErrorKind::NotFound),
                },
                other => other,
            }
        })
    }

    /// Connects once husk-vmm has created the socket, retrying every few
    /// milliseconds until `deadline`. `still_booting` is asked between
    /// tries and ends the wait with its error (husk-vmm exited).
    pub fn connect_when_ready(
        path: &Path,
        deadline: Instant,
        mut still_booting: impl FnMut() -> Result<(), AgentError>,
    ) -> Result<AgentClient, AgentError> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            match UnixStream::connect(path) {
                Ok(stream) => return Ok(AgentClient { stream, next_id: 1 }),
                Err(error)
                    if matches!(
                        error.kind(),
                        ErrorKind::NotFound | ErrorKind::ConnectionRefused
                    ) => {}
                Err(source) => {
                    return Err(AgentError::Connect {
                        path: path.to_path_buf(),
                        source,
                    })
                }
            }
            still_booting()?;
            let now = Instant::now();
            if now >= deadline {
                return Err(AgentError::NotReady {
                    path: path.to_path_buf(),
                    waited: now - started,
                    detail: String::new(),
                });
            }
            thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(10));
        }
    }

    /// Sends `request` and returns the guest's answer, passing over the
    /// events that arrive first. `timeout` bounds the whole exchange, the
    /// send and the wait for the answer, however the guest trickles bytes
    /// or events meanwhile (None: wait as long as it takes, for Wait). An
    /// Error answer is returned as [`AgentError::Refused`].
    pub fn request(
        &mut self,
        request: Request,
        timeout: Option<Duration>,
    ) -> Result<Response, AgentError> {
        let name = request_name(&request);
        let id = self.next_id;
        self.next_id += 1;
        let deadline = timeout.map(|timeout| Instant::now() + timeout);
        let timed_out = || AgentError::TimedOut {
            request: name,
            timeout: timeout.unwrap_or_default(),
        };
        // A VM that reads nothing must not hold the send for ever either.
        self.stream
            .set_write_timeout(timeout)
            .map_err(AgentError::SetTimeout)?;
        self.stream
            .set_read_timeout(timeout)
            .map_err(AgentError::SetTimeout)?;
        write_frame(&mut self.stream, &HostMessage { id, request }).map_err(
            |source| match &source {
                CodecError::Write { source: io } if is_disconnect(io) => {
                    AgentError::Closed { request: name }
                }
                CodecError::Write { source: io } if is_timeout(io) => timed_out(),
                _ => AgentError::Send {
                    request: name,
                    source,
                },
            },
        )?;
        let mut reader = DeadlineReader {
            stream: &self.stream,
            deadline,
        };
        loop {
            let message = match read_frame::<_, GuestMessage>(&mut reader) {
                Ok(Some(message)) => message,
                Ok(None) => return Err(AgentError::Closed { request: name }),
                Err(CodecError::Read { source }) if is_timeout(&source) => return Err(timed_out()),
                Err(CodecError::Read { source }) if is_disconnect(&source) => {
                    return Err(AgentError::Closed { request: name })
                }
                Err(source) => {
                    return Err(AgentError::Receive {
                        request: name,
                        source,
                    })
                }
            };
            match message {
                GuestMessage::Reply {
                    id: reply_id,
                    response,
                } if reply_id == id => {
                    return match response {
                        Response::Error(source) => Err(AgentError::Refused {
                            request: name,
                            source,
                        }),
                        response => Ok(response),
                    }
                }
                // An answer to an earlier request that timed out, or an
                // event.
                GuestMessage::Reply { .. } | GuestMessage::Event(_) => {}
            }
        }
    }

    /// A request whose success is [`Response::Ok`] (or another answer
    /// `accept` takes).
    pub fn expect(
        &mut self,
        request: Request,
        timeout: Option<Duration>,
        accept: impl Fn(&Response) -> bool,
    ) -> Result<Response, AgentError> {
        let name = request_name(&request);
        let response = self.request(request, timeout)?;
        if accept(&response) {
            Ok(response)
        } else {
            Err(AgentError::Unexpected {
                request: name,
                response: format!("{response:?}"),
            })
        }
    }
}

/// The agent connection, each read bounded by what is left until
/// `deadline`: a timeout per read alone would let a guest that sends a byte
/// (or an event) now and then hold a request open for ever.
struct DeadlineReader<'a> {
    stream: &'a UnixStream,
    deadline: Option<Instant>,
}

impl Read for DeadlineReader<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        if let Some(deadline) = self.deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::from(ErrorKind::TimedOut));
            }
            self.stream.set_read_timeout(Some(left))?;
        }
        let mut stream = self.stream;
        stream.read(buffer)
    }
}

/// A socket timeout (SO_RCVTIMEO, SO_SNDTIMEO) ran out, or the deadline
/// did: socket(7) reports EAGAIN.
fn is_timeout(error: &io::Error) -> bool {
    matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

fn is_disconnect(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted
    )
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::net::UnixListener;

    use husk_protocol::{Event, ExitStatus, ProcessRef};

    use super::*;

    /// A stand-in for husk-vmm's agent socket: answers each request with
    /// what `answer` says, after the events it lists.
    fn fake_agent(
        path: &Path,
        answer: impl Fn(&HostMessage) -> (Vec<GuestMessage>, Option<Response>) + Send + 'static,
    ) -> thread::JoinHandle<()> {
        let listener = UnixListener::bind(path).unwrap();
        thread::spawn(move || {
            let (mut connection, _) = listener.accept().unwrap();
            while let Ok(Some(message)) = read_frame::<_, HostMessage>(&mut connection) {
                let (before, response) = answer(&message);
                for frame in before {
                    write_frame(&mut connection, &frame).unwrap();
                }
                if let Some(response) = response {
                    write_frame(
                        &mut connection,
                        &GuestMessage::Reply {
                            id: message.id,
                            response,
                        },
                    )
                    .unwrap();
                }
            }
        })
    }

    #[test]
    fn a_socket_that_appears_late_is_waited_for() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("agent.sock");
        let server = {
            let path = path.clone();
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(150));
                fake_agent(&path, |_| (Vec::new(), Some(Response::Started)))
            })
        };
        let started = Instant::now();
        let mut tries = 0;
        let mut agent = AgentClient::connect_when_ready(
            &path,
            Instant::now() + Duration::from_secs(10),
            || {
                tries += 1;
                Ok(())
            },
        )
        .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(150));
        assert!(tries > 1);
        assert_eq!(
            agent
                .request(Request::Start, Some(Duration::from_secs(5)))
                .unwrap(),
            Response::Started
        );
        drop(agent);
        server.join().unwrap().join().unwrap();
    }

    #[test]
    fn waiting_ends_at_the_deadline_or_when_the_vmm_is_gone() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("agent.sock");
        let error = AgentClient::connect_when_ready(
            &path,
            Instant::now() + Duration::from_millis(50),
            || Ok(()),
        )
        .err()
        .unwrap();
        assert!(matches!(error, AgentError::NotReady { .. }), "{error:?}");
        assert!(
            error.to_string().contains("was not ready within"),
            "{error}"
        );

        let error = AgentClient::connect_when_ready(
            &path,
            Instant::now() + Duration::from_secs(10),
            || {
                Err(AgentError::VmEnded(
                    "husk-vmm exited with status 125".into(),
                ))
            },
        )
        .err()
        .unwrap();
        assert_eq!(error.to_string(), "husk-vmm exited with status 125");
        assert!(error.vm_is_gone());
    }

    #[test]
    fn events_and_other_ids_before_the_answer_are_passed_over() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("agent.sock");
        let server = fake_agent(&path, |message| {
            let exited = GuestMessage::Event(Event::Exited {
                process: ProcessRef::Init,
                status: ExitStatus::Code(3),
            });
            let stale = GuestMessage::Reply {
                id: message.id + 100,
                response: Response::Ok,
            };
            (
                vec![exited, stale],
                Some(Response::Exited {
                    process: ProcessRef::Init,
                    status: ExitStatus::Code(3),
                }),
            )
        });
        let mut agent = AgentClient::connect(&path, Duration::from_secs(5)).unwrap();
        let response = agent
            .request(
                Request::Wait {
                    process: ProcessRef::Init,
                },
                None,
            )
            .unwrap();
        assert_eq!(
            response,
            Response::Exited {
                process: ProcessRef::Init,
                status: ExitStatus::Code(3)
            }
        );
        drop(agent);
        server.join().unwrap();
    }

    #[test]
    fn guest_errors_keep_their_exit_code() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("agent.sock");
        let server = fake_agent(&path, |_| {
            (
                Vec::new(),
                Some(Response::Error(GuestError {
                    step: "exec process.args[0] \"/bin/nope\"".into(),
                    message: "no such file or directory".into(),
                    exit_code: Some(127),
                })),
            )
        });
        let mut agent = AgentClient::connect(&path, Duration::from_secs(5)).unwrap();
        let error = agent
            .request(Request::Start, Some(Duration::from_secs(5)))
            .unwrap_err();
        assert_eq!(error.exit_code(), 127);
        let message = husk_init::engine::error_chain(&error);
        assert_eq!(
            message,
            "Start: in the guest, exec process.args[0] \"/bin/nope\": no such file or directory"
        );
        drop(agent);
        server.join().unwrap();
    }

    #[test]
    fn a_silent_guest_times_out_and_a_vanished_one_is_reported_as_gone() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("agent.sock");
        // Never answers.
        let server = fake_agent(&path, |_| (Vec::new(), None));
        let mut agent = AgentClient::connect(&path, Duration::from_secs(5)).unwrap();
        let error = agent
            .request(Request::Stats, Some(Duration::from_millis(100)))
            .unwrap_err();
        assert!(matches!(error, AgentError::TimedOut { .. }), "{error:?}");
        drop(agent);
        server.join().unwrap();

        let path = directory.path().join("closing.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let closer = thread::spawn(move || {
            let (mut connection, _) = listener.accept().unwrap();
            let _ = read_frame::<_, HostMessage>(&mut connection);
        });
        let mut agent = AgentClient::connect(&path, Duration::from_secs(5)).unwrap();
        let error = agent
            .request(Request::ListProcesses, Some(Duration::from_secs(5)))
            .unwrap_err();
        closer.join().unwrap();
        assert!(error.vm_is_gone(), "{error:?}");
        assert!(error.to_string().contains("ListProcesses"), "{error}");
    }

    /// Runs `call` on a thread of its own; fails the test if it has not
    /// returned within `limit` (a request that never times out would
    /// otherwise hang the test).
    fn within<T: Send + 'static>(limit: Duration, call: impl FnOnce() -> T + Send + 'static) -> T {
        let (sender, receiver) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let _ = sender.send(call());
        });
        receiver
            .recv_timeout(limit)
            .unwrap_or_else(|_| panic!("still waiting after {limit:?}"))
    }

    /// A stand-in agent that reads the first request and then does
    /// `misbehave` with the connection instead of answering.
    fn misbehaving_agent(
        path: &Path,
        misbehave: impl FnOnce(&mut UnixStream) + Send + 'static,
    ) -> thread::JoinHandle<()> {
        let listener = UnixListener::bind(path).unwrap();
        thread::spawn(move || {
            let (mut connection, _) = listener.accept().unwrap();
            let _ = read_frame::<_, HostMessage>(&mut connection);
            misbehave(&mut connection);
        })
    }

    const SHORT: Duration = Duration::from_millis(300);

    /// Sends Stats with the SHORT timeout; returns the error and how long
    /// it took to come.
    fn stats_from(path: &Path) -> (AgentError, Duration) {
        let path = path.to_owned();
        within(Duration::from_secs(20), move || {
            let mut agent = AgentClient::connect(&path, Duration::from_secs(5)).unwrap();
            let started = Instant::now();
            let error = agent.request(Request::Stats, Some(SHORT)).unwrap_err();
            (error, started.elapsed())
        })
    }

    #[test]
    fn events_without_an_answer_do_not_keep_a_request_waiting() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("agent.sock");
        // A guest that chatters on but never replies.
        let server = misbehaving_agent(&path, |connection| {
            let event = GuestMessage::Event(Event::Exited {
                process: ProcessRef::Init,
                status: ExitStatus::Code(0),
            });
            while write_frame(&mut *connection, &event).is_ok() {
                thread::sleep(Duration::from_millis(20));
            }
        });
        let (error, took) = stats_from(&path);
        assert!(matches!(error, AgentError::TimedOut { .. }), "{error:?}");
        assert!(took < SHORT + Duration::from_secs(2), "{took:?}");
        assert_eq!(
            error.to_string(),
            "the guest did not answer Stats within 0.3 s"
        );
        assert!(!error.vm_is_gone());
        server.join().unwrap();
    }

    #[test]
    fn half_a_frame_or_a_trickle_times_out() {
        let directory = tempfile::tempdir().unwrap();
        // The length of a 100-byte frame and 10 bytes of it, then silence.
        let path = directory.path().join("half.sock");
        let (release, released) = std::sync::mpsc::channel::<()>();
        let server = misbehaving_agent(&path, move |connection| {
            connection.write_all(&100u32.to_be_bytes()).unwrap();
            connection.write_all(&[b'{'; 10]).unwrap();
            let _ = released.recv();
        });
        let (error, took) = stats_from(&path);
        assert!(matches!(error, AgentError::TimedOut { .. }), "{error:?}");
        assert!(took < SHORT + Duration::from_secs(2), "{took:?}");
        drop(release);
        server.join().unwrap();

        // A frame sent a byte at a time, each well within the timeout: the
        // whole answer is still bounded by it.
        let path = directory.path().join("trickle.sock");
        let server = misbehaving_agent(&path, |connection| {
            let _ = connection.write_all(&1000u32.to_be_bytes());
            while connection.write_all(b" ").is_ok() {
                thread::sleep(Duration::from_millis(20));
            }
        });
        let (error, took) = stats_from(&path);
        assert!(matches!(error, AgentError::TimedOut { .. }), "{error:?}");
        assert!(took < SHORT + Duration::from_secs(2), "{took:?}");
        server.join().unwrap();
    }

    #[test]
    fn a_guest_that_reads_nothing_times_out_the_send() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("agent.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let (release, released) = std::sync::mpsc::channel::<()>();
        // Accepts, and never reads a byte.
        let server = thread::spawn(move || {
            let (_connection, _) = listener.accept().unwrap();
            let _ = released.recv();
        });
        // A request far larger than the socket's buffers.
        let process = oci_spec::runtime::ProcessBuilder::default()
            .args(vec!["x".repeat(4 << 20)])
            .cwd("/")
            .build()
            .unwrap();
        let exec = Request::Exec(Box::new(husk_protocol::ExecRequest {
            exec_id: "exec-1".to_string(),
            process,
            stdio: husk_protocol::StdioSetup::Terminal,
        }));
        let error = within(Duration::from_secs(20), move || {
            let mut agent = AgentClient::connect(&path, Duration::from_secs(5)).unwrap();
            agent.request(exec, Some(SHORT)).unwrap_err()
        });
        assert!(matches!(error, AgentError::TimedOut { .. }), "{error:?}");
        assert!(error.to_string().contains("Exec"), "{error}");
        drop(release);
        server.join().unwrap();
    }
}
