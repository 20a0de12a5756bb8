//! An exec'd process's host side: its stdio streams, opened straight to
//! the guest through the vsock socket, and the host process that relays
//! them, forwards signals and terminal sizes, and exits with the process's
//! status. With --detach that process is a forked child, whose pid goes to
//! the caller (conmon, containerd's shim), which reaps it as it would reap
//! the process runc exec'd (DESIGN.md "Life of a container").

use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;
use std::{io, thread};

use husk_init::engine::sys;
use husk_protocol::{ProcessRef, Request, StdioSetup, StreamKind};

use super::agent::AgentClient;
use super::layout::VmFiles;
use super::{forward_signal, send_on, wait_in_guest, VmError};
use crate::backend::relay::{self, HostStdio, Relay, OUTPUT_GRACE};
use crate::state::ContainerRecord;

/// A name for an exec process, unique for the life of the VM: random
/// (getrandom through /dev/urandom), else the time and our pid.
pub fn new_exec_id() -> String {
    let mut bytes = [0u8; 8];
    let random = File::open("/dev/urandom")
        .and_then(|mut file| io::Read::read_exact(&mut file, &mut bytes))
        .is_ok();
    if !random {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        bytes = (nanos ^ (u64::from(std::process::id()) << 32)).to_be_bytes();
    }
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("exec-{hex}")
}

/// Opens an exec process's stdio streams to the guest, which takes them
/// while it handles Exec (so they are open before the request goes out),
/// and sets up their host side: husk's own stdio, or for a terminal with a
/// console socket a new host pty whose master goes there. A guest that does
/// not accept a stream within `stream_timeout` fails the exec.
pub fn open_exec_stdio(
    vsock_socket: &Path,
    process: &ProcessRef,
    terminal: bool,
    console_socket: Option<&Path>,
    stream_timeout: Duration,
) -> Result<(HostStdio, StdioSetup), VmError> {
    let open = |kind| {
        husk_vmm::guest_agent::open_stream_within(vsock_socket, process, kind, Some(stream_timeout))
            .map_err(|source| VmError::OpenStream { kind, source })
    };
    if !terminal {
        let stdio = HostStdio::Pipes {
            stdin: open(StreamKind::Stdin)?,
            stdout: open(StreamKind::Stdout)?,
            stderr: open(StreamKind::Stderr)?,
        };
        let setup = StdioSetup::Pipes {
            stdin: true,
            stdout: true,
            stderr: true,
        };
        return Ok((stdio, setup));
    }
    let stream = open(StreamKind::Terminal)?;
    let stdio = match console_socket {
        Some(console_socket) => {
            let (slave, slave_path) =
                relay::pty_for_console_socket(console_socket).map_err(VmError::Relay)?;
            HostStdio::Pty {
                terminal: stream,
                slave,
                slave_path,
            }
        }
        None => HostStdio::OwnTerminal { terminal: stream },
    };
    Ok((stdio, StdioSetup::Terminal))
}

/// An exec process running in the guest and the host side of its stdio.
pub struct ExecRun {
    pub container: ContainerRecord,
    pub process: ProcessRef,
    pub stdio: HostStdio,
}

impl ExecRun {
    /// Relays the process's stdio, forwards signals and terminal size
    /// changes, and returns its exit status once it ended.
    pub fn run(self) -> Result<u8, VmError> {
        let ExecRun {
            container,
            process,
            stdio,
        } = self;
        let relay = Relay::start(stdio).map_err(VmError::Relay)?;
        let agent_socket = VmFiles::of(&container).agent_socket;
        let (sender, receiver) = mpsc::channel();
        {
            let process = process.clone();
            thread::spawn(move || {
                let _ = sender.send(wait_in_guest(&agent_socket, process));
            });
        }
        let mut control = None;
        let resize = |control: &mut Option<AgentClient>| {
            if let Some((rows, cols)) = relay.terminal().and_then(|terminal| terminal.size()) {
                send_on(
                    &container,
                    control,
                    Request::ResizeTerminal {
                        process: process.clone(),
                        rows,
                        cols,
                    },
                );
            }
        };
        resize(&mut control);
        let status = relay::supervise(
            || receiver.try_recv().ok(),
            |signal| {
                if signal == libc::SIGWINCH {
                    resize(&mut control);
                } else {
                    forward_signal(&container, &process, signal, &mut control);
                }
            },
        );
        relay.finish(OUTPUT_GRACE);
        // 255: husk could not learn the status (runc's code for its own
        // failures in exec).
        Ok(status.unwrap_or(u8::MAX))
    }

    /// The body of the forked relay process: never returns. Its only
    /// descriptors are its stdio and the process's streams (whatever else
    /// husk had open, the container's state lock among it, is not the
    /// relay's to keep for as long as the process runs); it logs nothing,
    /// its stderr being the process's.
    pub fn run_detached(self) -> ! {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if relay::block_forwarded_signals().is_err() {
                return u8::MAX;
            }
            let keep = self.descriptors();
            close_descriptors_except(&keep);
            if let HostStdio::Pty { slave, .. } = &self.stdio {
                let _ = relay::take_as_controlling_terminal(slave);
            }
            self.run().unwrap_or(u8::MAX)
        }))
        .unwrap_or(u8::MAX);
        sys::exit_now(i32::from(code))
    }

    fn descriptors(&self) -> Vec<i32> {
        let mut fds = vec![0, 1, 2];
        match &self.stdio {
            HostStdio::Pipes {
                stdin,
                stdout,
                stderr,
            } => fds.extend([stdin.as_raw_fd(), stdout.as_raw_fd(), stderr.as_raw_fd()]),
            HostStdio::OwnTerminal { terminal } => fds.push(terminal.as_raw_fd()),
            HostStdio::OwnPty { master } => fds.push(master.as_raw_fd()),
            HostStdio::Pty {
                terminal, slave, ..
            } => fds.extend([terminal.as_raw_fd(), slave.as_raw_fd()]),
        }
        fds
    }
}

/// Closes every descriptor of this (forked) process but `keep`. Only for
/// a child that ends with exit_now: the values that owned the others in the
/// parent are never used or dropped here.
fn close_descriptors_except(keep: &[i32]) {
    let Ok(entries) = fs::read_dir("/proc/self/fd") else {
        return;
    };
    let open: Vec<i32> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in open {
        if !keep.contains(&fd) {
            // The directory's own descriptor is among them, already closed.
            let _ = sys::close_inherited(fd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_ids_differ() {
        let first = new_exec_id();
        let second = new_exec_id();
        assert!(
            first.starts_with("exec-") && first.len() == 5 + 16,
            "{first}"
        );
        assert_ne!(first, second);
    }
}
