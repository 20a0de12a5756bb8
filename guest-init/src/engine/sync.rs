//! The conversation between the runtime (the parent) and the processes that
//! set the container up, over one SOCK_SEQPACKET socket pair: each message
//! is one JSON datagram. runc has the same conversation over its init pipe
//! (procHooks, procReady, procError).
//!
//! ```text
//! parent                         setup child / container init
//!   Proceed (in the cgroup now) →
//!                               ← IdMapsPlease (user namespace made)
//!   IdMapsWritten               →
//!                               ← InitPid (the init's pid on the host)
//!                               ← RunCreateHooks (mounts done, before pivot)
//!   HooksDone (state for hooks) →
//!                               ← Ready (blocked on the exec fifo next)
//!                  or, any time ← Failed
//! ```
//!
//! exec (runc exec) has a shorter one; its end of file after `InitPid` is
//! the success: the socket is close-on-exec, so the execve closed it.
//!
//! ```text
//! parent                         setup child / exec'd process
//!   Proceed (in the cgroup now) →
//!                               ← InitPid (the process's pid on the host)
//!                               ← end of file (exec'd), or Failed
//! ```

use std::io;
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::sync::Mutex;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::engine::{sys, EngineError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChildMessage {
    IdMapsPlease,
    InitPid(i32),
    RunCreateHooks,
    Ready,
    Failed(InitFailure),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParentMessage {
    Proceed,
    IdMapsWritten,
    /// The container state (JSON) the createContainer and startContainer
    /// hooks get on stdin.
    HooksDone {
        state: String,
    },
}

/// Why the setup failed, as the child saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitFailure {
    /// What was being done (the outermost error alone).
    pub step: String,
    /// The whole chain of causes, "step: cause: cause".
    pub message: String,
    /// The exit status runc's callers would give this failure (127 for a
    /// program not found, 126 for one that cannot run, 1 otherwise).
    pub exit_code: i32,
}

/// One end of the socket pair.
#[derive(Debug)]
pub struct SyncSocket {
    socket: OwnedFd,
}

/// Large enough for any message: the biggest is the state JSON, whose
/// annotations are the only unbounded part.
const MAX_MESSAGE: usize = 1 << 20;

impl SyncSocket {
    /// A connected pair (both close-on-exec): one for the parent, one for
    /// the children.
    pub fn pair() -> io::Result<(SyncSocket, SyncSocket)> {
        let (parent, child) = sys::seqpacket_pair()?;
        Ok((SyncSocket { socket: parent }, SyncSocket { socket: child }))
    }

    pub fn send<T: Serialize>(&self, message: &T) -> io::Result<()> {
        let bytes = serde_json::to_vec(message).map_err(io::Error::other)?;
        sys::send(self.socket.as_fd(), &bytes)
    }

    /// The next message; None when every peer has closed its end.
    pub fn receive<T: DeserializeOwned>(&self) -> io::Result<Option<T>> {
        let mut buffer = vec![0u8; MAX_MESSAGE];
        let length = sys::receive(self.socket.as_fd(), &mut buffer)?;
        if length == 0 {
            return Ok(None);
        }
        serde_json::from_slice(&buffer[..length])
            .map(Some)
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))
    }
}

/// Each side of [`fork_with_socket`].
pub enum Forked {
    /// In the child: its end of the pair.
    Child(SyncSocket),
    /// In the parent: its end and the child's pid.
    Parent { socket: SyncSocket, child: i32 },
}

/// Held from the socket pair's creation until the parent has closed the
/// child's end, so that no other engine fork in this process (another
/// thread's create or exec) inherits that end: a copy kept by a
/// long-lived process, such as a created container's init waiting for
/// `start`, would keep the parent from ever reading end of file.
/// It also guards the descriptors the children must not keep (see
/// [`close_in_forked_children`]), read in the child under the same lock.
static FORK_LOCK: Mutex<Vec<RawFd>> = Mutex::new(Vec::new());

/// Has every process [`fork_with_socket`] forks close `fd` first thing,
/// until [`keep_in_forked_children`]: for a caller's flock(2) lock, which
/// belongs to the open file description and so stays held while any
/// forked copy is open. A created container's init waits for `start` for
/// as long as the container exists; if the caller then died without
/// unlocking (SIGKILL), the container would stay locked.
pub fn close_in_forked_children(fd: RawFd) {
    let mut fds = FORK_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    fds.push(fd);
}

/// Undoes [`close_in_forked_children`] (before `fd` is closed, so that a
/// reused number is not closed in later children).
pub fn keep_in_forked_children(fd: RawFd) {
    let mut fds = FORK_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    fds.retain(|&listed| listed != fd);
}

/// A socket pair and a fork: the child keeps one end, the parent the
/// other. The same caveats as [`sys::fork`] apply.
pub fn fork_with_socket() -> Result<Forked, EngineError> {
    let guard = FORK_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let (parent, child) = SyncSocket::pair().map_err(|source| EngineError::Sync { source })?;
    let forked = match sys::fork().map_err(|source| EngineError::Fork { source })? {
        sys::Fork::Child => {
            drop(parent);
            for &fd in guard.iter() {
                // Its owner lives on in the parent only: this child
                // execs or exits without returning to it.
                let _ = sys::close_inherited(fd);
            }
            Forked::Child(child)
        }
        sys::Fork::Parent { child: pid } => {
            drop(child);
            Forked::Parent {
                socket: parent,
                child: pid,
            }
        }
    };
    // In the child this releases its own copy of the lock.
    drop(guard);
    Ok(forked)
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;

    #[test]
    fn messages_cross_the_pair_and_eof_is_none() {
        let (parent, child) = SyncSocket::pair().unwrap();
        child.send(&ChildMessage::InitPid(42)).unwrap();
        child
            .send(&ChildMessage::Failed(InitFailure {
                step: "exec: \"foo\": executable file not found in $PATH".into(),
                message: "exec: \"foo\": executable file not found in $PATH".into(),
                exit_code: 127,
            }))
            .unwrap();
        assert_eq!(
            parent.receive::<ChildMessage>().unwrap(),
            Some(ChildMessage::InitPid(42))
        );
        assert!(matches!(
            parent.receive::<ChildMessage>().unwrap(),
            Some(ChildMessage::Failed(InitFailure { exit_code: 127, .. }))
        ));
        drop(child);
        assert_eq!(parent.receive::<ChildMessage>().unwrap(), None);
    }

    #[test]
    fn forked_children_close_the_registered_descriptors_only() {
        let registered = std::fs::File::open("/dev/null").unwrap();
        let kept = std::fs::File::open("/dev/null").unwrap();
        close_in_forked_children(registered.as_raw_fd());
        let forked = fork_with_socket();
        keep_in_forked_children(registered.as_raw_fd());
        match forked.unwrap() {
            Forked::Child(socket) => {
                // /proc/self/fd lists the open descriptors (proc(5)).
                let open =
                    |fd: RawFd| std::path::Path::new(&format!("/proc/self/fd/{fd}")).exists();
                let report = ChildMessage::InitPid(
                    i32::from(open(registered.as_raw_fd())) * 10
                        + i32::from(open(kept.as_raw_fd())),
                );
                let _ = socket.send(&report);
                sys::exit_now(0);
            }
            Forked::Parent { socket, child } => {
                let report = socket.receive::<ChildMessage>().unwrap();
                let _ = sys::wait(child, false);
                assert_eq!(
                    report,
                    Some(ChildMessage::InitPid(1)),
                    "the child's registered (tens) and other (ones) descriptor: 1 = open"
                );
            }
        }
    }
}
