//! Where the guest console goes, and the last lines of it kept for error
//! messages.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

/// How many console lines an error message can quote.
pub const TAIL_LINES: usize = 12;
/// Longest line kept; a guest printing without newlines can't grow the tail.
const MAX_LINE: usize = 512;

/// The last console lines, shared with whoever reports how the VM ended.
#[derive(Clone, Default)]
pub struct ConsoleTail {
    inner: Arc<Mutex<TailState>>,
}

#[derive(Default)]
struct TailState {
    lines: VecDeque<String>,
    partial: Vec<u8>,
}

impl ConsoleTail {
    fn push(&self, bytes: &[u8]) {
        let mut state = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for &byte in bytes {
            match byte {
                b'\n' => {
                    let line = String::from_utf8_lossy(&state.partial)
                        .trim_end_matches('\r')
                        .to_owned();
                    state.partial.clear();
                    if state.lines.len() == TAIL_LINES {
                        state.lines.pop_front();
                    }
                    state.lines.push_back(line);
                }
                _ if state.partial.len() < MAX_LINE => state.partial.push(byte),
                _ => {}
            }
        }
    }

    /// The kept lines, oldest first, with an unfinished last line if any.
    pub fn lines(&self) -> Vec<String> {
        let state = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut lines: Vec<String> = state.lines.iter().cloned().collect();
        if !state.partial.is_empty() {
            lines.push(String::from_utf8_lossy(&state.partial).into_owned());
        }
        lines
    }
}

/// The serial port's output: the chosen sink (if any), plus the tail.
pub struct ConsoleWriter {
    sink: Option<Box<dyn Write + Send>>,
    tail: ConsoleTail,
}

impl ConsoleWriter {
    pub fn new(sink: Option<Box<dyn Write + Send>>, tail: ConsoleTail) -> Self {
        Self { sink, tail }
    }
}

impl Write for ConsoleWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tail.push(buf);
        if let Some(sink) = self.sink.as_mut() {
            sink.write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.sink.as_mut() {
            Some(sink) => sink.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_lines_and_the_unfinished_one() {
        let tail = ConsoleTail::default();
        let mut writer = ConsoleWriter::new(None, tail.clone());
        for i in 0..20 {
            write!(writer, "line {i}\r\n").unwrap();
        }
        writer.write_all(b"partial").unwrap();
        let lines = tail.lines();
        assert_eq!(lines.len(), TAIL_LINES + 1);
        assert_eq!(lines[0], "line 8");
        assert_eq!(lines[TAIL_LINES - 1], "line 19");
        assert_eq!(lines[TAIL_LINES], "partial");
    }

    #[test]
    fn a_line_without_newline_is_bounded() {
        let tail = ConsoleTail::default();
        let mut writer = ConsoleWriter::new(None, tail.clone());
        writer.write_all(&[b'x'; 10_000]).unwrap();
        assert_eq!(tail.lines()[0].len(), MAX_LINE);
    }
}
