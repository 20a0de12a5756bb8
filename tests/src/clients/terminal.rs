//! A client run on a terminal of its own, driven like a person at a
//! keyboard: `podman run -it`, `docker run -it` and `ctr run -t` want a
//! terminal on their side (docker refuses `-it` without one; ctr takes
//! its console from its stdio), put it in raw mode and relay it to the
//! container's pty.
//!
//! The test opens a pseudoterminal pair (pty(7)), starts the client in a
//! new session with the slave as its controlling terminal and as its
//! stdin, stdout and stderr, and talks to it through the master: [`send`]
//! types, [`expect`] waits for text to show. A reader thread copies
//! everything the master yields into a transcript, so that nothing the
//! client writes can block it while the test waits.
//!
//! [`send`]: Terminal::send
//! [`expect`]: Terminal::expect

use std::ffi::CStr;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::ClientRun;
use crate::wait_with_deadline;

/// The size the terminal reports (TIOCGWINSZ): a classic 80x24.
const ROWS: u16 = 24;
const COLUMNS: u16 = 80;

/// How long [`Terminal::finish`] waits, after the client exited, for the
/// last bytes it wrote to come through the master.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A client running on a pseudoterminal of the test's.
pub struct Terminal {
    child: Child,
    command_line: String,
    /// The master side, for typing.
    master: File,
    /// Everything the client wrote to its terminal so far.
    transcript: Arc<Mutex<Vec<u8>>>,
    reader: Option<JoinHandle<()>>,
    /// How much of the transcript earlier [`Terminal::expect`] calls
    /// matched: each looks only at what came after.
    matched: usize,
    timeout: Duration,
    logs: Vec<(String, std::path::PathBuf)>,
}

/// Opens a pseudoterminal pair: the master (close-on-exec) and the path of
/// its slave (pts(4): posix_openpt, grantpt, unlockpt, ptsname).
fn open_pseudoterminal() -> (File, String) {
    // SAFETY: posix_openpt(3) takes flags only and returns a new
    // descriptor or -1.
    let master = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    assert!(
        master >= 0,
        "open a pseudoterminal (posix_openpt): {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `master` is a descriptor that was just opened and nothing
    // else owns.
    let master = File::from(unsafe { OwnedFd::from_raw_fd(master) });
    let descriptor = master.as_raw_fd();
    // SAFETY: grantpt(3) and unlockpt(3) take the open master descriptor.
    let unlocked = unsafe { libc::grantpt(descriptor) == 0 && libc::unlockpt(descriptor) == 0 };
    assert!(
        unlocked,
        "unlock the pseudoterminal: {}",
        std::io::Error::last_os_error()
    );
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: `name` is writable for the length passed; ptsname_r(3)
    // NUL-terminates what it writes there.
    let result = unsafe { libc::ptsname_r(descriptor, name.as_mut_ptr(), name.len()) };
    assert_eq!(result, 0, "name the pseudoterminal's slave (ptsname_r)");
    // SAFETY: ptsname_r succeeded, so `name` holds a NUL-terminated string.
    let slave = unsafe { CStr::from_ptr(name.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    let size = libc::winsize {
        ws_row: ROWS,
        ws_col: COLUMNS,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize, which `size` is, from the
    // pointer (tty_ioctl(4)).
    let result = unsafe { libc::ioctl(descriptor, libc::TIOCSWINSZ, &size) };
    assert_eq!(
        result,
        0,
        "set the terminal size: {}",
        std::io::Error::last_os_error()
    );
    (master, slave)
}

/// Copies what the master yields into `transcript` until every slave
/// descriptor is closed: then the read fails with EIO (pty(7)).
fn copy_into(mut master: File, transcript: Arc<Mutex<Vec<u8>>>) {
    let mut buffer = [0u8; 4096];
    loop {
        match master.read(&mut buffer) {
            Ok(0) => return,
            Ok(count) => transcript
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(&buffer[..count]),
            Err(error) if error.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
    }
}

impl Terminal {
    /// Starts `command` with a new pseudoterminal as its controlling
    /// terminal and stdio. `timeout` bounds each [`Terminal::expect`] and
    /// the wait in [`Terminal::finish`]; `logs` are quoted on failure.
    pub(super) fn start(
        mut command: Command,
        command_line: String,
        timeout: Duration,
        logs: Vec<(String, std::path::PathBuf)>,
    ) -> Terminal {
        let (master, slave_path) = open_pseudoterminal();
        let slave = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(&slave_path)
            .unwrap_or_else(|error| panic!("open the terminal {slave_path}: {error}"));
        let duplicate = |file: &File| {
            Stdio::from(
                file.try_clone()
                    .expect("duplicate the terminal's descriptor"),
            )
        };
        command
            .stdin(duplicate(&slave))
            .stdout(duplicate(&slave))
            .stderr(Stdio::from(slave));
        // SAFETY: the closure runs in the child between fork and exec and
        // calls only setsid(2) and ioctl(2), both async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                // A session of its own, with the slave (now stdin) as its
                // controlling terminal, as a login shell has
                // (credentials(7), tty_ioctl(4) TIOCSCTTY).
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("start `{command_line}`: {error}"));
        // `command` holds this process's copies of the slave: closing them
        // leaves the child's as the only ones, so that the master sees EIO
        // once the client and everything it started let go of the
        // terminal.
        drop(command);
        let transcript = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let master = master
                .try_clone()
                .expect("duplicate the pseudoterminal master");
            let transcript = Arc::clone(&transcript);
            thread::spawn(move || copy_into(master, transcript))
        };
        Terminal {
            child,
            command_line,
            master,
            transcript,
            reader: Some(reader),
            matched: 0,
            timeout,
            logs,
        }
    }

    /// What the client wrote to its terminal so far, as text.
    pub fn transcript(&self) -> String {
        String::from_utf8_lossy(
            &self
                .transcript
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
        .into_owned()
    }

    /// The client's terminal so far and the logs, for a failure message.
    fn report(&self) -> String {
        self.finished_run(None).report()
    }

    fn finished_run(&self, code: Option<i32>) -> ClientRun {
        ClientRun {
            command_line: self.command_line.clone(),
            code,
            stdout: self.transcript(),
            stderr: "(on the terminal, above)".to_string(),
            logs: self.logs.clone(),
        }
    }

    /// Types `text`. A `\n` ends a line: the client passes it on raw, and
    /// the shell behind the container's pty reads it as Enter.
    #[track_caller]
    pub fn send(&mut self, text: &str) {
        if let Err(error) = self.master.write_all(text.as_bytes()) {
            panic!("type {text:?} into `{}`: {error}", self.command_line);
        }
    }

    /// The transcript after what earlier matches took, through the first
    /// `needle` there, as text; marks it taken. None when `needle` has not
    /// shown yet. (Bytes, not text: a stray invalid byte on the terminal
    /// cannot shift the offsets.)
    fn take_through(&mut self, needle: &[u8]) -> Option<String> {
        let transcript = self
            .transcript
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let rest = transcript.get(self.matched..)?;
        if needle.is_empty() {
            return Some(String::new());
        }
        let position = rest
            .windows(needle.len())
            .position(|window| window == needle)?;
        let seen = String::from_utf8_lossy(&rest[..position + needle.len()]).into_owned();
        self.matched += position + needle.len();
        Some(seen)
    }

    /// Waits until `text` shows on the terminal after what earlier calls
    /// matched, and returns everything up to and including it. Fails the
    /// test, quoting the terminal, when the client exits first or the
    /// timeout passes.
    #[track_caller]
    pub fn expect(&mut self, text: &str) -> String {
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(seen) = self.take_through(text.as_bytes()) {
                return seen;
            }
            let exited = self.child.try_wait().expect("poll the client").is_some();
            let reader_done = self
                .reader
                .as_ref()
                .is_none_or(|reader| reader.is_finished());
            if exited && reader_done {
                panic!(
                    "{text:?} never showed: the client exited first\n{}",
                    self.report()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "{text:?} did not show within {:?}\n{}",
                    self.timeout,
                    self.report()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the client to exit (killing it past the timeout) and
    /// returns what it did: its exit code, and its terminal as stdout.
    pub fn finish(mut self) -> ClientRun {
        let status = wait_with_deadline(&mut self.child, self.timeout);
        // A daemon the client started may still hold the slave, so the
        // reader may never see EIO: give it a moment for the last bytes.
        let drained = Instant::now() + DRAIN_TIMEOUT;
        while self
            .reader
            .as_ref()
            .is_some_and(|reader| !reader.is_finished())
            && Instant::now() < drained
        {
            thread::sleep(Duration::from_millis(20));
        }
        if let Some(reader) = self.reader.take() {
            if reader.is_finished() {
                let _ = reader.join();
            }
        }
        let mut run = self.finished_run(status.and_then(|status| status.code()));
        if status.is_none() {
            run.stderr = format!("(killed: it ran past {:?})", self.timeout);
        }
        run
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        // A test that failed halfway leaves no client running.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
