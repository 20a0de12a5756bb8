//! PID 1 collects every child that ends, its own or orphaned ones, and
//! reports them to the agent loop.
//!
//! SIGCHLD is blocked in every thread and waited for here. Code that waits
//! for a child of its own (the engine waiting for an intermediate process,
//! hooks) holds [`REAP_LOCK`] meanwhile, so this thread can't take that
//! child's status first.

use std::sync::mpsc::Sender;
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use husk_init::engine::sys;

use super::Input;

pub static REAP_LOCK: Mutex<()> = Mutex::new(());

/// Starts the reaper thread. SIGCHLD must already be blocked.
pub fn start(inputs: Sender<Input>) -> std::io::Result<()> {
    thread::Builder::new()
        .name("reaper".into())
        .spawn(move || loop {
            // The timeout bounds the delay for a SIGCHLD merged into one
            // that was already taken.
            let _ = sys::wait_for_signal(&[libc::SIGCHLD], Duration::from_secs(1));
            let Ok(_guard) = REAP_LOCK.lock() else {
                return;
            };
            while let Ok(Some((pid, end))) = sys::wait(-1, true) {
                if inputs.send(Input::ChildEnded(pid, end)).is_err() {
                    return;
                }
            }
        })?;
    Ok(())
}
