//! The host side of a process's stdio when husk itself relays it: an exec'd
//! process in a VM (its streams come straight from the guest through the
//! vsock socket), and the container's terminal for `husk run` in the
//! foreground (the pty master husk-vmm or the container engine hands over).
//!
//! Also what the relaying process does meanwhile: it forwards the signals
//! it gets to the process in the guest, and terminal size changes.
//!
//! Signals are taken with sigtimedwait(2), so they must be blocked in every
//! thread: [`block_forwarded_signals`] comes before any thread starts.

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use husk_init::engine::sys;

/// The signals a relaying husk passes on to the process it stands for, as
/// runc's signal forwarding does (SIGCHLD, SIGURG and the job control
/// stops are its own business). SIGWINCH means a terminal's size changed.
pub const FORWARDED_SIGNALS: &[i32] = &[
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGTERM,
    libc::SIGWINCH,
];

/// How long output may keep coming after the process ended (a background
/// child can hold the stream open forever).
pub const OUTPUT_GRACE: Duration = Duration::from_secs(2);

/// How often the supervising loop looks at its condition.
const POLL: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("block the signals husk forwards")]
    BlockSignals(#[source] io::Error),
    #[error("duplicate husk's own {what}")]
    OwnStdio {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("duplicate the {what} stream")]
    Duplicate {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("open a pseudo-terminal for the exec process")]
    OpenPty(#[source] io::Error),
    #[error("open the pseudo-terminal {}", path.display())]
    OpenSlave {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("send the pseudo-terminal to the console socket {}", path.display())]
    ConsoleSocket {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Blocks [`FORWARDED_SIGNALS`] in the calling thread and so in every
/// thread it starts afterwards.
pub fn block_forwarded_signals() -> Result<(), RelayError> {
    sys::block_signals(FORWARDED_SIGNALS).map_err(RelayError::BlockSignals)
}

/// Runs until `finished` gives a result, handing each forwarded signal that
/// arrives meanwhile to `on_signal`.
pub fn supervise<T>(mut finished: impl FnMut() -> Option<T>, mut on_signal: impl FnMut(i32)) -> T {
    loop {
        if let Some(result) = finished() {
            return result;
        }
        if let Ok(Some(signal)) = sys::wait_for_signal(FORWARDED_SIGNALS, POLL) {
            on_signal(signal);
        }
    }
}

/// A terminal's size, rows and columns.
pub type WindowSize = (u16, u16);

/// A terminal on the host side, as stty(1) reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostTerminal {
    /// husk's own stdin.
    OwnStdin,
    /// A pty slave husk opened.
    Device(PathBuf),
}

impl HostTerminal {
    fn stty(&self) -> Command {
        let mut command = Command::new("stty");
        match self {
            HostTerminal::OwnStdin => {
                command.stdin(Stdio::inherit());
            }
            HostTerminal::Device(path) => {
                command.arg("-F").arg(path).stdin(Stdio::null());
            }
        }
        command.stderr(Stdio::null());
        command
    }

    /// The current size (`stty size`), if it is a terminal that has one.
    pub fn size(&self) -> Option<WindowSize> {
        let output = self.stty().arg("size").output().ok()?;
        if !output.status.success() {
            return None;
        }
        parse_size(&String::from_utf8_lossy(&output.stdout))
    }

    /// Puts it in raw mode without echo, so that bytes pass unchanged (the
    /// guest's pty does the line discipline); returns the settings to
    /// restore (`stty -g`), or None when it is not a terminal.
    pub fn make_raw(&self) -> Option<String> {
        let saved = self.stty().arg("-g").output().ok()?;
        if !saved.status.success() {
            return None;
        }
        let status = self.stty().args(["raw", "-echo"]).status().ok()?;
        status
            .success()
            .then(|| String::from_utf8_lossy(&saved.stdout).trim().to_string())
    }

    /// Puts back what [`HostTerminal::make_raw`] saved.
    pub fn restore(&self, saved: &str) {
        let _ = self.stty().arg(saved).status();
    }
}

/// `stty size` prints "ROWS COLUMNS".
pub fn parse_size(text: &str) -> Option<WindowSize> {
    let mut numbers = text.split_whitespace().map(str::parse::<u16>);
    match (numbers.next(), numbers.next(), numbers.next()) {
        (Some(Ok(rows)), Some(Ok(columns)), None) if rows > 0 && columns > 0 => {
            Some((rows, columns))
        }
        _ => None,
    }
}

/// Where a process's stdio goes on the host.
pub enum HostStdio {
    /// Its three pipe streams, relayed to husk's own fds 0, 1 and 2.
    Pipes {
        stdin: UnixStream,
        stdout: UnixStream,
        stderr: UnixStream,
    },
    /// Its Terminal stream, relayed to husk's own stdin and stdout, which is
    /// put in raw mode meanwhile.
    OwnTerminal { terminal: UnixStream },
    /// The master of the container's pty (husk-vmm made it), relayed to
    /// husk's own stdin and stdout as [`HostStdio::OwnTerminal`].
    OwnPty { master: File },
    /// Its Terminal stream relayed to a host pty, whose master went to a
    /// console socket.
    Pty {
        terminal: UnixStream,
        slave: File,
        slave_path: PathBuf,
    },
}

/// The guest's side of relayed input: told when the input has ended.
trait InputEnd: Write + Send + 'static {
    fn end_input(&mut self) {}
}

impl InputEnd for UnixStream {
    /// A half-close: the vsock stream carries it to the guest, where the
    /// process reads end of file (a full close would reset the stream).
    fn end_input(&mut self) {
        let _ = self.shutdown(Shutdown::Write);
    }
}

impl InputEnd for File {}

/// Relaying threads at work.
pub struct Relay {
    /// One receiver per output direction, told when it reached end of file.
    outputs: Vec<Receiver<()>>,
    terminal: Option<HostTerminal>,
    restore: Option<String>,
    /// The streams input goes to, held open until the relay ends: closing
    /// the last descriptor of one would reset it under unread output.
    _inputs: Vec<UnixStream>,
}

impl Relay {
    /// Starts relaying.
    pub fn start(stdio: HostStdio) -> Result<Relay, RelayError> {
        match stdio {
            HostStdio::Pipes {
                stdin,
                stdout,
                stderr,
            } => {
                let own_stdin = own("stdin", io::stdin().as_fd())?;
                let own_stdout = own("stdout", io::stdout().as_fd())?;
                let own_stderr = own("stderr", io::stderr().as_fd())?;
                let held = clone_stream("stdin", &stdin)?;
                input(own_stdin, stdin);
                Ok(Relay {
                    outputs: vec![output(stdout, own_stdout), output(stderr, own_stderr)],
                    terminal: None,
                    restore: None,
                    _inputs: vec![held],
                })
            }
            HostStdio::OwnTerminal { terminal } => {
                let reader = clone_stream("terminal", &terminal)?;
                let held = clone_stream("terminal", &terminal)?;
                let mut relay = Self::own_terminal(reader, terminal)?;
                relay._inputs.push(held);
                Ok(relay)
            }
            HostStdio::OwnPty { master } => {
                let reader = duplicate("pseudo-terminal", &master)?;
                Self::own_terminal(reader, master)
            }
            HostStdio::Pty {
                terminal,
                slave,
                slave_path,
            } => {
                let host = HostTerminal::Device(slave_path);
                // Nobody restores a pty that dies with this relay.
                let _ = host.make_raw();
                let slave_reader = duplicate("pseudo-terminal", &slave)?;
                let terminal_reader = clone_stream("terminal", &terminal)?;
                let held = clone_stream("terminal", &terminal)?;
                input(slave_reader, terminal);
                Ok(Relay {
                    outputs: vec![output(terminal_reader, slave)],
                    terminal: Some(host),
                    restore: None,
                    _inputs: vec![held],
                })
            }
        }
    }

    /// `from_guest` to husk's stdout, husk's stdin to `to_guest`, husk's
    /// terminal (if stdin is one) in raw mode meanwhile.
    fn own_terminal(
        from_guest: impl Read + Send + 'static,
        to_guest: impl InputEnd,
    ) -> Result<Relay, RelayError> {
        let own_stdin = own("stdin", io::stdin().as_fd())?;
        let own_stdout = own("stdout", io::stdout().as_fd())?;
        let host = HostTerminal::OwnStdin;
        let restore = if io::stdin().is_terminal() {
            host.make_raw()
        } else {
            None
        };
        input(own_stdin, to_guest);
        Ok(Relay {
            outputs: vec![output(from_guest, own_stdout)],
            terminal: Some(host),
            restore,
            _inputs: Vec::new(),
        })
    }

    /// The host terminal whose size the process should follow, if any.
    pub fn terminal(&self) -> Option<&HostTerminal> {
        self.terminal.as_ref()
    }

    /// Waits up to `grace` for the output to end, and puts husk's own
    /// terminal back as it was.
    pub fn finish(self, grace: Duration) {
        let deadline = Instant::now() + grace;
        for output in &self.outputs {
            let left = deadline.saturating_duration_since(Instant::now());
            let _ = output.recv_timeout(left);
        }
        if let (Some(terminal), Some(saved)) = (&self.terminal, &self.restore) {
            terminal.restore(saved);
        }
    }
}

fn own(what: &'static str, fd: std::os::fd::BorrowedFd<'_>) -> Result<File, RelayError> {
    fd.try_clone_to_owned()
        .map(File::from)
        .map_err(|source| RelayError::OwnStdio { what, source })
}

fn clone_stream(what: &'static str, stream: &UnixStream) -> Result<UnixStream, RelayError> {
    stream
        .try_clone()
        .map_err(|source| RelayError::Duplicate { what, source })
}

fn duplicate<T: AsFd>(what: &'static str, stream: &T) -> Result<File, RelayError> {
    stream
        .as_fd()
        .try_clone_to_owned()
        .map(File::from)
        .map_err(|source| RelayError::Duplicate { what, source })
}

/// Copies `from` into `to` until either ends, then tells `to` that input
/// has ended. Nobody waits for it: input may never end.
fn input(from: impl Read + Send + 'static, mut to: impl InputEnd) {
    thread::spawn(move || {
        copy(from, &mut to);
        to.end_input();
    });
}

/// Copies `from` into `to` until end of file; the receiver hears when.
fn output(from: impl Read + Send + 'static, to: impl Write + Send + 'static) -> Receiver<()> {
    let (done, receiver) = mpsc::channel();
    thread::spawn(move || {
        let mut to = to;
        copy(from, &mut to);
        let _ = done.send(());
    });
    receiver
}

fn copy(mut from: impl Read, to: &mut impl Write) {
    let mut buffer = [0u8; 16 * 1024];
    loop {
        let count = match from.read(&mut buffer) {
            Ok(0) => return,
            Ok(count) => count,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            // A pty whose other side closed reads EIO: its end of file.
            Err(_) => return,
        };
        if to
            .write_all(&buffer[..count])
            .and_then(|()| to.flush())
            .is_err()
        {
            return;
        }
    }
}

/// A new host pty for an exec process with a terminal: its master goes to
/// the caller's console socket (SCM_RIGHTS, as runc's --console-socket),
/// its slave stays here to be relayed.
pub fn pty_for_console_socket(console_socket: &Path) -> Result<(File, PathBuf), RelayError> {
    let (master, slave_path) = sys::open_pty().map_err(RelayError::OpenPty)?;
    let slave: OwnedFd =
        sys::open(&slave_path, libc::O_RDWR | libc::O_NOCTTY).map_err(|source| {
            RelayError::OpenSlave {
                path: slave_path.clone(),
                source,
            }
        })?;
    let socket_error = |source| RelayError::ConsoleSocket {
        path: console_socket.to_path_buf(),
        source,
    };
    let socket = UnixStream::connect(console_socket).map_err(socket_error)?;
    sys::send_fd(
        socket.as_fd(),
        slave_path.as_os_str().as_encoded_bytes(),
        master.as_fd(),
    )
    .map_err(socket_error)?;
    Ok((File::from(slave), slave_path))
}

/// The container's terminal relayed to husk's own, for `run` in the
/// foreground with a terminal and no --console-socket: husk holds the pty
/// master, as runc run does.
pub struct ConsoleRelay {
    relay: Relay,
    /// The pty master, whose size follows husk's terminal.
    master: File,
}

impl ConsoleRelay {
    /// Starts relaying `master` to husk's stdin and stdout, and gives the
    /// container's terminal the size of husk's.
    pub fn start(master: OwnedFd) -> Result<ConsoleRelay, RelayError> {
        let master = File::from(master);
        let size_target = duplicate("pseudo-terminal", &master)?;
        let relay = Relay::start(HostStdio::OwnPty { master })?;
        let console = ConsoleRelay {
            relay,
            master: size_target,
        };
        console.follow_size();
        Ok(console)
    }

    /// Gives the container's terminal the size of husk's (on SIGWINCH).
    pub fn follow_size(&self) {
        if let Some((rows, columns)) = self.relay.terminal().and_then(HostTerminal::size) {
            let _ = sys::set_window_size(self.master.as_fd(), rows, columns);
        }
    }

    /// Waits up to `grace` for the output to end and puts husk's terminal
    /// back as it was.
    pub fn finish(self, grace: Duration) {
        self.relay.finish(grace);
    }
}

/// Makes `terminal` the controlling terminal of a new session of this
/// process (which must not lead a process group: a forked child), so that
/// size changes the caller makes on the master arrive here as SIGWINCH
/// (tty_ioctl(4), TIOCSWINSZ).
pub fn take_as_controlling_terminal(terminal: &File) -> io::Result<()> {
    sys::setsid()?;
    sys::set_controlling_terminal(terminal.as_fd())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stty_sizes_are_parsed() {
        assert_eq!(parse_size("24 80\n"), Some((24, 80)));
        assert_eq!(parse_size("50 132"), Some((50, 132)));
        assert_eq!(parse_size("0 0\n"), None);
        assert_eq!(parse_size("24\n"), None);
        assert_eq!(
            parse_size("stty: 'standard input': Inappropriate ioctl"),
            None
        );
    }

    #[test]
    fn a_pty_goes_to_the_console_socket_and_its_slave_follows_the_master() {
        let directory = tempfile::tempdir().unwrap();
        let socket_path = directory.path().join("console.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket_path).unwrap();
        let (slave, slave_path) = pty_for_console_socket(&socket_path).unwrap();
        let (connection, _) = listener.accept().unwrap();
        let (payload, master) = sys::receive_fd(connection.as_fd()).unwrap();
        assert_eq!(payload, slave_path.as_os_str().as_encoded_bytes());

        // The size the caller sets on the master is what stty reads from
        // the slave, and what the guest is told.
        sys::set_window_size(master.as_fd(), 33, 101).unwrap();
        let terminal = HostTerminal::Device(slave_path.clone());
        assert_eq!(terminal.size(), Some((33, 101)));

        // Raw mode: what the guest sends reaches the master unchanged
        // (no "\n" to "\r\n" translation).
        assert!(terminal.make_raw().is_some());
        let mut slave_writer = slave.try_clone().unwrap();
        slave_writer.write_all(b"line\n").unwrap();
        let mut master = File::from(master);
        let mut received = [0u8; 16];
        let count = master.read(&mut received).unwrap();
        assert_eq!(&received[..count], b"line\n");
    }

    #[test]
    fn relayed_output_ends_when_the_stream_does() {
        let (guest_end, host_end) = UnixStream::pair().unwrap();
        let (sink_reader, sink_writer) = UnixStream::pair().unwrap();
        let done = output(host_end, sink_writer);
        let mut guest = guest_end;
        guest.write_all(b"hello\n").unwrap();
        drop(guest);
        done.recv_timeout(Duration::from_secs(5))
            .expect("the relay saw end of file");
        let mut text = String::new();
        let mut reader = sink_reader;
        reader.read_to_string(&mut text).unwrap();
        assert_eq!(text, "hello\n");
    }

    #[test]
    fn the_end_of_input_reaches_the_guest_while_its_stream_stays_open() {
        let (guest_end, host_end) = UnixStream::pair().unwrap();
        let held = host_end.try_clone().unwrap();
        input(&b"typed\n"[..], host_end);
        let mut text = String::new();
        let mut guest = guest_end;
        guest.read_to_string(&mut text).unwrap();
        assert_eq!(text, "typed\n");
        // Half-closed: the guest can still answer on it.
        guest.write_all(b"still here").unwrap();
        let mut reply = [0u8; 10];
        let mut held = held;
        held.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"still here");
    }
}
