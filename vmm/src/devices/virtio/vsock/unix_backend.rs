//! The host side of the device: the Unix socket host programs connect to,
//! their `CONNECT <port>\n` handshake, and connecting guest streams to the
//! host listeners at `<socket path>_<port>`.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use super::device::VsockError;
use crate::os;

/// The handshake line, `\n` included, is at most this long.
pub const MAX_HANDSHAKE_LINE: usize = 64;
/// Host programs midway through their handshake, at most; one more pushes
/// out the oldest, so idle clients can't lock others out.
pub const MAX_HANDSHAKES: usize = 64;

/// How far a host program's handshake got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeProgress {
    /// No full line yet.
    Pending,
    /// `CONNECT <port>\n`: connect it to that guest port.
    Connect(u32),
    /// End of file, an error, or a line that is not a CONNECT.
    Failed,
}

/// A host program that connected and has not finished its line.
pub struct Handshake {
    pub stream: UnixStream,
    line: Vec<u8>,
    /// Order of arrival, to find the oldest.
    arrival: u64,
}

impl Handshake {
    /// Reads what has arrived of the line, a byte at a time so that data
    /// sent right after it stays in the socket for the guest.
    pub fn read_line(&mut self) -> HandshakeProgress {
        loop {
            let mut byte = [0u8; 1];
            match self.stream.read(&mut byte) {
                Ok(0) => return HandshakeProgress::Failed,
                Ok(_) => {
                    self.line.push(byte[0]);
                    if byte[0] == b'\n' {
                        return parse_connect_line(&self.line)
                            .map_or(HandshakeProgress::Failed, HandshakeProgress::Connect);
                    }
                    if self.line.len() >= MAX_HANDSHAKE_LINE {
                        return HandshakeProgress::Failed;
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    return HandshakeProgress::Pending
                }
                Err(_) => return HandshakeProgress::Failed,
            }
        }
    }
}

/// `CONNECT <port>\n` with a decimal port; u32::MAX (VMADDR_PORT_ANY) is
/// no port to connect to.
pub fn parse_connect_line(line: &[u8]) -> Option<u32> {
    let digits = line.strip_prefix(b"CONNECT ")?.strip_suffix(b"\n")?;
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let port: u32 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    (port != u32::MAX).then_some(port)
}

/// The listening socket and the host programs in their handshake.
pub struct UnixBackend {
    path: PathBuf,
    pub listener: UnixListener,
    /// Whether the event loop watches the listener; it stops while accept
    /// fails for want of file descriptors, which would otherwise spin.
    pub listener_watched: bool,
    handshakes: HashMap<RawFd, Handshake>,
    arrivals: u64,
}

impl UnixBackend {
    /// Listens at `path`, replacing a socket left there by an earlier run.
    /// Anything other than a socket at `path` is left alone.
    pub fn bind(path: &Path) -> Result<UnixBackend, VsockError> {
        match fs::symlink_metadata(path) {
            Ok(metadata) if metadata.file_type().is_socket() => {
                fs::remove_file(path).map_err(|source| VsockError::RemoveStale {
                    path: path.to_owned(),
                    source,
                })?
            }
            Ok(_) => {
                return Err(VsockError::NotASocket {
                    path: path.to_owned(),
                })
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(VsockError::Inspect {
                    path: path.to_owned(),
                    source,
                })
            }
        }
        let listener = UnixListener::bind(path).map_err(|source| VsockError::Bind {
            path: path.to_owned(),
            source,
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| VsockError::NonBlocking {
                path: path.to_owned(),
                source,
            })?;
        Ok(UnixBackend {
            path: path.to_owned(),
            listener,
            listener_watched: false,
            handshakes: HashMap::new(),
            arrivals: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Starts the handshake of a newly accepted program; returns the oldest
    /// one if that makes too many.
    pub fn start_handshake(&mut self, stream: UnixStream) -> Option<Handshake> {
        let evicted = if self.handshakes.len() >= MAX_HANDSHAKES {
            let oldest = self
                .handshakes
                .iter()
                .min_by_key(|(_, handshake)| handshake.arrival)
                .map(|(&fd, _)| fd);
            oldest.and_then(|fd| self.handshakes.remove(&fd))
        } else {
            None
        };
        self.arrivals += 1;
        self.handshakes.insert(
            stream.as_raw_fd(),
            Handshake {
                stream,
                line: Vec::with_capacity(MAX_HANDSHAKE_LINE),
                arrival: self.arrivals,
            },
        );
        evicted
    }

    /// Reads from the handshake on `fd`, if there is one; a finished one
    /// (either way) is handed back with its outcome.
    pub fn advance_handshake(
        &mut self,
        fd: RawFd,
    ) -> Option<(HandshakeProgress, Option<Handshake>)> {
        let progress = self.handshakes.get_mut(&fd)?.read_line();
        let finished = match progress {
            HandshakeProgress::Pending => None,
            _ => self.handshakes.remove(&fd),
        };
        Some((progress, finished))
    }

    #[cfg(test)]
    pub fn handshake_count(&self) -> usize {
        self.handshakes.len()
    }
}

impl Drop for UnixBackend {
    fn drop(&mut self) {
        // The socket is ours; leave no stale file behind.
        let _ = fs::remove_file(&self.path);
    }
}

/// The host listener for guest connections to `port`.
pub fn port_path(host_socket: &Path, port: u32) -> PathBuf {
    let mut path = OsString::from(host_socket.as_os_str());
    path.push(format!("_{port}"));
    PathBuf::from(path)
}

/// Connects a guest stream to the host listener for `port`. The connect
/// doesn't block: a listener with a full backlog refuses (EAGAIN) rather
/// than stall the event loop, and the guest gets an RST.
pub fn connect_to_port(host_socket: &Path, port: u32) -> io::Result<UnixStream> {
    os::connect_unix_nonblocking(&port_path(host_socket, port))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use vmm_sys_util::tempdir::TempDir;

    use super::*;

    #[test]
    fn connect_lines_parse_strictly() {
        assert_eq!(parse_connect_line(b"CONNECT 52\n"), Some(52));
        assert_eq!(parse_connect_line(b"CONNECT 0\n"), Some(0));
        assert_eq!(
            parse_connect_line(b"CONNECT 4294967294\n"),
            Some(u32::MAX - 1)
        );
        for bad in [
            &b"CONNECT 4294967295\n"[..],
            b"CONNECT 4294967296\n",
            b"CONNECT 52",
            b"CONNECT \n",
            b"CONNECT -1\n",
            b"CONNECT +1\n",
            b"CONNECT 5 2\n",
            b"connect 52\n",
            b"CONNECT 52\r\n",
            b"CONNECT 00000000052\n",
            b"LISTEN 52\n",
        ] {
            assert_eq!(parse_connect_line(bad), None, "{bad:?}");
        }
    }

    fn handshake() -> (Handshake, UnixStream) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let handshake = Handshake {
            stream: ours,
            line: Vec::new(),
            arrival: 0,
        };
        (handshake, theirs)
    }

    #[test]
    fn the_handshake_reads_no_further_than_its_line() {
        let (mut handshake, mut client) = handshake();
        client.write_all(b"CONN").unwrap();
        assert_eq!(handshake.read_line(), HandshakeProgress::Pending);
        client.write_all(b"ECT 1234\nearly data").unwrap();
        assert_eq!(handshake.read_line(), HandshakeProgress::Connect(1234));
        let mut rest = [0u8; 10];
        handshake.stream.read_exact(&mut rest).unwrap();
        assert_eq!(&rest, b"early data");
    }

    #[test]
    fn overlong_or_unterminated_handshakes_fail() {
        let (mut handshake, mut client) = handshake();
        client.write_all(&[b'x'; MAX_HANDSHAKE_LINE]).unwrap();
        assert_eq!(handshake.read_line(), HandshakeProgress::Failed);

        let (mut handshake, mut client) = self::handshake();
        client.write_all(b"CONNECT 1").unwrap();
        drop(client);
        assert_eq!(handshake.read_line(), HandshakeProgress::Failed);
    }

    #[test]
    fn bind_replaces_a_stale_socket_but_nothing_else() {
        let dir = TempDir::new_with_prefix("/tmp/husk-vsock").unwrap();
        let path = dir.as_path().join("v.sock");
        drop(UnixBackend::bind(&path).unwrap());
        assert!(!path.exists(), "removed when dropped");

        // A socket left behind by a process that died.
        let stale = UnixListener::bind(&path).unwrap();
        std::mem::forget(stale);
        let backend = UnixBackend::bind(&path).unwrap();
        assert!(UnixStream::connect(&path).is_ok());
        drop(backend);

        fs::write(&path, b"precious").unwrap();
        let error = UnixBackend::bind(&path).err().unwrap();
        assert!(matches!(error, VsockError::NotASocket { .. }));
        assert!(error.to_string().contains("v.sock"), "{error}");
        assert_eq!(fs::read(&path).unwrap(), b"precious");

        let missing = dir.as_path().join("no/such/dir/v.sock");
        let error = UnixBackend::bind(&missing).err().unwrap();
        assert!(error.to_string().contains("no/such/dir"), "{error}");
    }

    #[test]
    fn the_oldest_handshake_makes_room() {
        let dir = TempDir::new_with_prefix("/tmp/husk-vsock").unwrap();
        let mut backend = UnixBackend::bind(&dir.as_path().join("v.sock")).unwrap();
        let mut clients = Vec::new();
        let mut first = None;
        for index in 0..MAX_HANDSHAKES {
            let (ours, theirs) = UnixStream::pair().unwrap();
            if index == 0 {
                first = Some(ours.as_raw_fd());
            }
            assert!(backend.start_handshake(ours).is_none());
            clients.push(theirs);
        }
        let (ours, _theirs) = UnixStream::pair().unwrap();
        let evicted = backend.start_handshake(ours).unwrap();
        assert_eq!(Some(evicted.stream.as_raw_fd()), first);
        assert_eq!(backend.handshake_count(), MAX_HANDSHAKES);
    }

    #[test]
    fn connecting_to_a_missing_or_full_listener_fails_at_once() {
        let dir = TempDir::new_with_prefix("/tmp/husk-vsock").unwrap();
        let base = dir.as_path().join("v.sock");
        assert_eq!(port_path(&base, 52), dir.as_path().join("v.sock_52"));
        assert!(connect_to_port(&base, 52).is_err());

        let listener = UnixListener::bind(port_path(&base, 52)).unwrap();
        let stream = connect_to_port(&base, 52).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        drop(accepted);
        drop(stream);

        // Never accepted: the backlog fills and connects are refused
        // instead of blocking.
        let mut held = Vec::new();
        let refused = (0..10_000).find_map(|_| match connect_to_port(&base, 52) {
            Ok(stream) => {
                held.push(stream);
                None
            }
            Err(error) => Some(error),
        });
        assert!(refused.is_some(), "the backlog is bounded");

        let long = dir.as_path().join("x".repeat(200));
        assert_eq!(
            connect_to_port(&long, 1).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }
}
