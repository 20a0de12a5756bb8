//! Stdio streams from the host: the host connects to the guest's
//! STDIO_PORT once per stream and names it with a StreamHello frame; the
//! stream then waits here until the process it belongs to is started.

use std::collections::HashMap;
use std::fs::File;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use husk_protocol::ports::STDIO_PORT;
use husk_protocol::{read_frame, ProcessRef, StreamHello, StreamKind};

use crate::sys;

/// How long a connected stream may take to name itself.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a process's setup waits for a stream the host said it would
/// open.
pub const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Default)]
pub struct Streams {
    waiting: Mutex<HashMap<(ProcessRef, StreamKind), File>>,
    arrived: Condvar,
}

impl Streams {
    /// Listens on STDIO_PORT; each connection names itself on a thread of
    /// its own, so a silent one holds up no other.
    pub fn listen(self: &Arc<Self>) -> std::io::Result<()> {
        let listener = sys::vsock_listen(STDIO_PORT)?;
        let streams = Arc::clone(self);
        thread::Builder::new()
            .name("stdio-listener".into())
            .spawn(move || {
                while let Ok(connection) = sys::accept(&listener) {
                    let streams = Arc::clone(&streams);
                    let _ = thread::Builder::new()
                        .name("stdio-hello".into())
                        .spawn(move || streams.receive_hello(connection));
                }
            })?;
        Ok(())
    }

    fn receive_hello(&self, mut connection: File) {
        if sys::set_receive_timeout(&connection, Some(HELLO_TIMEOUT)).is_err() {
            return;
        }
        let hello = match read_frame::<_, StreamHello>(&mut connection) {
            Ok(Some(hello)) => hello,
            Ok(None) => return,
            Err(error) => {
                eprintln!("husk-init: a stdio stream did not name itself: {error}");
                return;
            }
        };
        if sys::set_receive_timeout(&connection, None).is_err() {
            return;
        }
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.insert((hello.process, hello.stream), connection);
            self.arrived.notify_all();
        }
    }

    /// The stream `kind` of `process`, once the host has opened it.
    pub fn take(&self, process: &ProcessRef, kind: StreamKind) -> Result<File, String> {
        let deadline = Instant::now() + ARRIVAL_TIMEOUT;
        let key = (process.clone(), kind);
        let mut waiting = self
            .waiting
            .lock()
            .map_err(|_| "the stream table is poisoned".to_string())?;
        loop {
            if let Some(stream) = waiting.remove(&key) {
                return Ok(stream);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(format!(
                    "the host did not open the {kind:?} stream of {process} within {} s",
                    ARRIVAL_TIMEOUT.as_secs()
                ));
            }
            waiting = self
                .arrived
                .wait_timeout(waiting, deadline - now)
                .map_err(|_| "the stream table is poisoned".to_string())?
                .0;
        }
    }

    /// Drops streams the host opened for a process that never started.
    pub fn forget(&self, process: &ProcessRef) {
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.retain(|(owner, _), _| owner != process);
        }
    }
}
