//! A process's terminal: the pty master the engine handed over, relayed to
//! and from the host's Terminal stream, and resized on request.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::thread;

use husk_init::engine::sys;

pub struct TerminalRelay {
    master: File,
}

impl TerminalRelay {
    /// Starts copying in both directions on threads of their own. When the
    /// process side closes (every holder of the pty's slave is gone: EIO),
    /// the host stream gets end of file.
    pub fn start(master: OwnedFd, stream: File) -> io::Result<TerminalRelay> {
        let master = File::from(master);
        let (mut from_host, mut to_host) = (stream.try_clone()?, stream);
        let (mut to_process, mut from_process) = (master.try_clone()?, master.try_clone()?);
        thread::Builder::new()
            .name("terminal-in".into())
            .spawn(move || {
                let _ = io::copy(&mut from_host, &mut to_process);
            })?;
        thread::Builder::new()
            .name("terminal-out".into())
            .spawn(move || {
                let mut buffer = [0u8; 16 * 1024];
                loop {
                    match from_process.read(&mut buffer) {
                        Ok(0) | Err(_) => break,
                        Ok(count) => {
                            if to_host.write_all(&buffer[..count]).is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = crate::sys::shutdown_write(&to_host);
            })?;
        Ok(TerminalRelay { master })
    }

    pub fn resize(&self, rows: u16, cols: u16) -> io::Result<()> {
        sys::set_window_size(self.master.as_fd(), rows, cols)
    }
}
