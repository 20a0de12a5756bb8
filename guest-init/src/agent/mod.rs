//! Agent mode (`husk.agent` on the kernel command line): husk-init serves
//! the host's control connection and runs one container.
//!
//! A linear checklist: leave the initramfs for a tmpfs root, mount cgroup2,
//! block SIGCHLD for the reaper, connect to the host, listen for stdio
//! streams, say Ready; then answer requests until the host says Shutdown
//! or goes away. Each request is handled in the order it came; a Wait is
//! answered when its process ends (after the Exited event for it).

mod container;
mod control;
mod process_table;
mod reaper;
mod root;
mod streams;
mod terminal;

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::Duration;

use husk_init::engine::sys::ExitStatus as ChildEnd;
use husk_protocol::ports::CONTROL_PORT;
use husk_protocol::{
    Event, ExitStatus, GuestError, GuestMessage, GuestTimings, HostMessage, ProcessRef, Request,
    RequestId, Response, PROTOCOL_VERSION,
};

use self::container::Sandbox;
use self::control::Control;
use self::streams::Streams;
use crate::sys;

/// What the agent loop reacts to.
pub enum Input {
    Request(HostMessage),
    /// The host closed the control connection (with the decoding error
    /// that made us close it, if any).
    ControlClosed(Option<String>),
    ChildEnded(i32, ChildEnd),
}

/// How the agent ended: the exit status the VM should end with.
pub struct Outcome {
    pub status: u8,
}

/// Runs agent mode; returns when the VM should end. `init_started` is the
/// guest's uptime when husk-init began.
pub fn serve(init_started: Duration) -> Outcome {
    let timings = GuestTimings {
        init_start_us: init_started.as_micros() as u64,
        init_ready_us: uptime_us(),
        container_created_us: None,
        process_exec_us: None,
    };
    match setup() {
        Ok((control, inputs, streams)) => serve_requests(control, inputs, streams, timings),
        Err(error) => {
            eprintln!("husk-init: agent setup failed: {error}");
            Outcome { status: 1 }
        }
    }
}

fn setup() -> Result<(Control, Receiver<Input>, Arc<Streams>), String> {
    root::leave_initramfs().map_err(|e| chain(&e))?;
    root::mount_cgroup2().map_err(|e| chain(&e))?;
    // Before any thread starts, so that every thread inherits it.
    husk_init::engine::sys::block_signals(&[libc::SIGCHLD])
        .map_err(|e| format!("block SIGCHLD: {e}"))?;
    let (sender, inputs) = mpsc::channel();
    reaper::start(sender.clone()).map_err(|e| format!("start the reaper: {e}"))?;
    let streams = Arc::new(Streams::default());
    streams
        .listen()
        .map_err(|e| format!("listen for stdio streams: {e}"))?;
    let connection = sys::vsock_connect(libc::VMADDR_CID_HOST, CONTROL_PORT)
        .map_err(|e| format!("connect to the host's control port {CONTROL_PORT}: {e}"))?;
    let control =
        Control::start(connection, sender).map_err(|e| format!("start the control reader: {e}"))?;
    control.send(&GuestMessage::Event(Event::Ready {
        protocol_version: PROTOCOL_VERSION,
        uptime_us: uptime_us(),
    }));
    Ok((control, inputs, streams))
}

fn uptime_us() -> u64 {
    sys::boot_time()
        .map(|uptime| uptime.as_micros() as u64)
        .unwrap_or_default()
}

/// An error and its sources, one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

fn serve_requests(
    control: Control,
    inputs: Receiver<Input>,
    streams: Arc<Streams>,
    timings: GuestTimings,
) -> Outcome {
    let mut agent = Agent {
        control,
        streams,
        timings,
        sandbox: None,
        statuses: HashMap::new(),
        waits: Vec::new(),
    };
    while let Ok(input) = inputs.recv() {
        match input {
            Input::Request(message) => {
                let shutdown = matches!(message.request, Request::Shutdown);
                agent.handle(message);
                if shutdown {
                    break;
                }
            }
            Input::ChildEnded(pid, end) => agent.child_ended(pid, end),
            Input::ControlClosed(reason) => {
                if let Some(reason) = reason {
                    eprintln!("husk-init: closed the control connection: {reason}");
                }
                break;
            }
        }
    }
    agent.shut_down()
}

struct Agent {
    control: Control,
    streams: Arc<Streams>,
    sandbox: Option<Sandbox>,
    /// Boot phases, until the sandbox takes them over.
    timings: GuestTimings,
    /// Every process's end, kept until shutdown (a Wait may come late).
    statuses: HashMap<ProcessRef, ExitStatus>,
    /// Waits to answer when their process ends.
    waits: Vec<(RequestId, ProcessRef)>,
}

impl Agent {
    fn reply(&self, id: RequestId, response: Response) {
        self.control.send(&GuestMessage::Reply { id, response });
    }

    fn handle(&mut self, message: HostMessage) {
        let HostMessage { id, request } = message;
        let response = match request {
            Request::CreateContainer(create) => {
                if self.sandbox.is_some() {
                    Err(refuse("create", "this VM already holds a container"))
                } else {
                    Sandbox::create(*create, &self.streams, self.timings.clone()).map(
                        |(sandbox, pid)| {
                            self.sandbox = Some(sandbox);
                            Response::Created { pid }
                        },
                    )
                }
            }
            Request::Wait { process } => match self.statuses.get(&process) {
                Some(&status) => Ok(Response::Exited { process, status }),
                None if self.knows(&process) => {
                    self.waits.push((id, process));
                    return;
                }
                None => Err(refuse("wait", format!("there is no {process}"))),
            },
            Request::Shutdown => Ok(Response::Ok),
            Request::Timings if self.sandbox.is_none() => {
                Ok(Response::Timings(self.timings.clone()))
            }
            other => match self.sandbox.as_mut() {
                Some(sandbox) => sandbox.handle(other, &self.streams),
                None => Err(refuse("request", "no container has been created yet")),
            },
        };
        self.reply(id, response.unwrap_or_else(Response::Error));
    }

    /// Whether `process` exists or existed.
    fn knows(&self, process: &ProcessRef) -> bool {
        self.sandbox
            .as_ref()
            .is_some_and(|sandbox| sandbox.pid_of(process).is_some())
    }

    fn child_ended(&mut self, pid: i32, end: ChildEnd) {
        let Some(process) = self.sandbox.as_mut().and_then(|s| s.process_ended(pid)) else {
            // An orphan that ended: reaped, nothing to report.
            return;
        };
        let status = match end {
            ChildEnd::Exited(code) => ExitStatus::Code(code),
            ChildEnd::Signaled(signal) => ExitStatus::Signal(signal),
        };
        self.statuses.insert(process.clone(), status);
        self.control.send(&GuestMessage::Event(Event::Exited {
            process: process.clone(),
            status,
        }));
        let (answered, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waits)
            .into_iter()
            .partition(|(_, waited)| *waited == process);
        self.waits = waiting;
        for (id, process) in answered {
            self.reply(id, Response::Exited { process, status });
        }
    }

    /// Ends every process left, unmounts the container's disk so its data
    /// is on the device, and gives the VM's exit status: the container
    /// process's exit code, or 0 if it never ran.
    fn shut_down(mut self) -> Outcome {
        if let Some(sandbox) = self.sandbox.take() {
            sandbox.destroy();
        }
        sys::sync();
        let status = self
            .statuses
            .get(&ProcessRef::Init)
            .map_or(0, |status| status.exit_code().clamp(0, 255) as u8);
        Outcome { status }
    }
}

/// A refusal that names what was asked.
fn refuse(step: &str, message: impl Into<String>) -> GuestError {
    GuestError {
        step: step.to_string(),
        message: message.into(),
        exit_code: None,
    }
}
