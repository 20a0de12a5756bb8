//! The wire encoding of the control connection and of [`StreamHello`]: a
//! frame is a 4-byte big-endian length followed by that many bytes of JSON.
//!
//! JSON keeps the frames readable in a capture and needs nothing beyond
//! serde; the length prefix lets a reader know where a message ends without
//! parsing it, and lets it refuse an oversized one before reading it.
//!
//! Everything read here comes from the other side of the VM boundary, so
//! decoding must never panic and never allocate more than
//! [`MAX_FRAME_BYTES`] for a frame, whatever the length prefix claims.
//! serde_json's nesting limit (128 levels) keeps hostile JSON from
//! exhausting the stack.
//!
//! [`StreamHello`]: crate::messages::StreamHello

use std::io::{self, Read, Write};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Bytes of the length prefix in front of every frame.
pub const LENGTH_PREFIX_BYTES: usize = 4;

/// The largest frame body (the JSON after the length prefix) either side
/// sends or accepts. The largest messages are `CreateContainer`s: a
/// config.json with a full seccomp profile is about 100 KiB, and the files
/// delivered by content ([`FileMount`]) are small (hosts, resolv.conf).
/// 8 MiB leaves room for far larger specs while bounding what a broken or
/// hostile peer can make the other side buffer.
///
/// [`FileMount`]: crate::messages::FileMount
pub const MAX_FRAME_BYTES: usize = 8 << 20;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// A length prefix, or a message being encoded, is over the limit.
    #[error("frame of {size} bytes is over the limit of {limit} bytes")]
    Oversized { size: usize, limit: usize },
    #[error("stream ended {received} bytes into a frame's 4-byte length prefix")]
    TruncatedLength { received: usize },
    #[error("stream ended {received} bytes into a frame body of {expected} bytes")]
    TruncatedBody { received: usize, expected: usize },
    #[error("decode the JSON of a frame")]
    InvalidJson {
        #[source]
        source: serde_json::Error,
    },
    #[error("encode a message as JSON")]
    Encode {
        #[source]
        source: serde_json::Error,
    },
    #[error("read a frame")]
    Read {
        #[source]
        source: io::Error,
    },
    #[error("write a frame")]
    Write {
        #[source]
        source: io::Error,
    },
}

fn check_body_length(body_len: usize) -> Result<(), CodecError> {
    if body_len > MAX_FRAME_BYTES {
        return Err(CodecError::Oversized {
            size: body_len,
            limit: MAX_FRAME_BYTES,
        });
    }
    Ok(())
}

fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, CodecError> {
    serde_json::from_slice(body).map_err(|source| CodecError::InvalidJson { source })
}

/// `message` as one frame: length prefix and JSON.
pub fn encode_frame<T: Serialize>(message: &T) -> Result<Vec<u8>, CodecError> {
    let mut frame = vec![0; LENGTH_PREFIX_BYTES];
    serde_json::to_writer(&mut frame, message).map_err(|source| CodecError::Encode { source })?;
    let body_len = frame.len() - LENGTH_PREFIX_BYTES;
    check_body_length(body_len)?;
    // MAX_FRAME_BYTES is far below u32::MAX, so the length fits.
    frame[..LENGTH_PREFIX_BYTES].copy_from_slice(&(body_len as u32).to_be_bytes());
    Ok(frame)
}

/// Writes `message` as one frame and flushes `writer`. A message over the
/// limit is refused before anything is written.
pub fn write_frame<W: Write, T: Serialize>(mut writer: W, message: &T) -> Result<(), CodecError> {
    let frame = encode_frame(message)?;
    writer
        .write_all(&frame)
        .and_then(|()| writer.flush())
        .map_err(|source| CodecError::Write { source })
}

/// Reads one frame from a blocking reader. Ok(None) when the stream ends
/// cleanly between frames; a stream that ends inside a frame is an error.
/// (A non-blocking reader would lose a partial frame on `WouldBlock`; event
/// loops use [`FrameDecoder`].)
pub fn read_frame<R: Read, T: DeserializeOwned>(mut reader: R) -> Result<Option<T>, CodecError> {
    let mut prefix = [0; LENGTH_PREFIX_BYTES];
    let mut received = 0;
    while received < LENGTH_PREFIX_BYTES {
        match reader.read(&mut prefix[received..]) {
            Ok(0) => break,
            Ok(count) => received += count,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(CodecError::Read { source }),
        }
    }
    match received {
        0 => return Ok(None),
        LENGTH_PREFIX_BYTES => {}
        _ => return Err(CodecError::TruncatedLength { received }),
    }
    let body_len = u32::from_be_bytes(prefix) as usize;
    check_body_length(body_len)?;
    // Grows with what actually arrives rather than with what the prefix
    // claims, so a peer that lies about the length costs nothing up front.
    let mut body = Vec::new();
    reader
        .take(body_len as u64)
        .read_to_end(&mut body)
        .map_err(|source| CodecError::Read { source })?;
    if body.len() < body_len {
        return Err(CodecError::TruncatedBody {
            received: body.len(),
            expected: body_len,
        });
    }
    decode_body(&body).map(Some)
}

/// Splits a byte stream that arrives in pieces of any size into frames, for
/// non-blocking event loops: [`push`](Self::push) what was read, then call
/// [`next_frame`](Self::next_frame) until it returns Ok(None).
///
/// Drained that way, the decoder holds at most one partial frame (bounded by
/// [`MAX_FRAME_BYTES`]) plus the last push. After an [`CodecError::Oversized`]
/// frame the stream cannot be resynchronised: the decoder drops its buffer
/// and everything pushed later, and returns that error again. After
/// [`CodecError::InvalidJson`] the framing is intact and the next frame
/// decodes normally.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buffer: Vec<u8>,
    /// Bytes at the front of `buffer` that belong to frames already returned.
    consumed: usize,
    /// The body length of an oversized frame, once one was seen.
    oversized: Option<usize>,
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.oversized.is_some() {
            return;
        }
        if self.consumed > 0 {
            self.buffer.drain(..self.consumed);
            self.consumed = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete frame, decoded; Ok(None) until all its bytes have
    /// been pushed. An oversized length prefix is refused as soon as its 4
    /// bytes are in, without waiting for the body.
    pub fn next_frame<T: DeserializeOwned>(&mut self) -> Result<Option<T>, CodecError> {
        if let Some(size) = self.oversized {
            return Err(CodecError::Oversized {
                size,
                limit: MAX_FRAME_BYTES,
            });
        }
        let pending = &self.buffer[self.consumed..];
        let Some((prefix, rest)) = pending.split_first_chunk::<LENGTH_PREFIX_BYTES>() else {
            return Ok(None);
        };
        let body_len = u32::from_be_bytes(*prefix) as usize;
        if let Err(error) = check_body_length(body_len) {
            self.oversized = Some(body_len);
            self.buffer = Vec::new();
            self.consumed = 0;
            return Err(error);
        }
        let Some(body) = rest.get(..body_len) else {
            return Ok(None);
        };
        let decoded = decode_body(body);
        self.consumed += LENGTH_PREFIX_BYTES + body_len;
        decoded.map(Some)
    }

    /// Bytes pushed but not yet returned as frames.
    pub fn buffered_bytes(&self) -> usize {
        self.buffer.len() - self.consumed
    }

    /// Call when the stream has ended: Ok if it ended between frames, the
    /// same errors as [`read_frame`] if it ended inside one. Frames still
    /// buffered count as "inside"; drain them with `next_frame` first.
    pub fn finish(&self) -> Result<(), CodecError> {
        if let Some(size) = self.oversized {
            return Err(CodecError::Oversized {
                size,
                limit: MAX_FRAME_BYTES,
            });
        }
        let pending = &self.buffer[self.consumed..];
        match pending.split_first_chunk::<LENGTH_PREFIX_BYTES>() {
            None if pending.is_empty() => Ok(()),
            None => Err(CodecError::TruncatedLength {
                received: pending.len(),
            }),
            Some((prefix, rest)) => Err(CodecError::TruncatedBody {
                received: rest.len(),
                expected: u32::from_be_bytes(*prefix) as usize,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;
    use std::io::Cursor;

    use super::*;
    use crate::messages::tests::{every_guest_message, every_host_message};
    use crate::messages::{
        FileMount, GuestMessage, HostMessage, ProcessRef, StreamHello, StreamKind,
    };

    /// The system allocator, remembering per thread the largest single
    /// allocation asked of it, so a test can check what decoding allocated.
    struct LargestAllocation;

    thread_local! {
        static LARGEST_ALLOCATION: Cell<usize> = const { Cell::new(0) };
    }

    fn note_allocation(size: usize) {
        // try_with: the slot may already be gone while a thread exits.
        let _ = LARGEST_ALLOCATION.try_with(|largest| largest.set(largest.get().max(size)));
    }

    // SAFETY: every method hands the request to `System` unchanged, so this
    // allocator upholds GlobalAlloc's contract exactly as `System` does; the
    // bookkeeping only touches a thread-local Cell, which never allocates.
    unsafe impl GlobalAlloc for LargestAllocation {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            note_allocation(layout.size());
            // SAFETY: the caller's guarantees for `layout` pass through.
            unsafe { System.alloc(layout) }
        }

        unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
            // SAFETY: `pointer` came from `System` with this `layout`.
            unsafe { System.dealloc(pointer, layout) }
        }

        unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            note_allocation(new_size);
            // SAFETY: `pointer` came from `System` with this `layout`; the
            // caller's guarantees for `new_size` pass through.
            unsafe { System.realloc(pointer, layout, new_size) }
        }
    }

    #[global_allocator]
    static ALLOCATOR: LargestAllocation = LargestAllocation;

    /// The largest single allocation `work` made on this thread.
    fn largest_allocation_during<R>(work: impl FnOnce() -> R) -> (R, usize) {
        LARGEST_ALLOCATION.with(|largest| largest.set(0));
        let result = work();
        (result, LARGEST_ALLOCATION.with(Cell::get))
    }

    /// A frame with `body` as its JSON, however wrong.
    fn raw_frame(body: &[u8]) -> Vec<u8> {
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(body);
        frame
    }

    fn every_frame_concatenated() -> Vec<u8> {
        let mut stream = Vec::new();
        for message in every_host_message() {
            write_frame(&mut stream, &message).unwrap();
        }
        for message in every_guest_message() {
            write_frame(&mut stream, &message).unwrap();
        }
        stream
    }

    /// Decodes what `decoder` holds of `every_frame_concatenated`: the first
    /// `host_count` frames as host messages, the rest as guest messages.
    fn drain(
        decoder: &mut FrameDecoder,
        host_count: usize,
        hosts: &mut Vec<HostMessage>,
        guests: &mut Vec<GuestMessage>,
    ) {
        loop {
            let decoded = if hosts.len() < host_count {
                decoder
                    .next_frame()
                    .unwrap()
                    .map(|message| hosts.push(message))
            } else {
                decoder
                    .next_frame()
                    .unwrap()
                    .map(|message| guests.push(message))
            };
            if decoded.is_none() {
                return;
            }
        }
    }

    #[test]
    fn a_frame_is_a_big_endian_length_then_json() {
        let hello = StreamHello {
            process: ProcessRef::Exec("e1".to_string()),
            stream: StreamKind::Stdout,
        };
        let json = br#"{"process":{"exec":"e1"},"stream":"stdout"}"#;
        let frame = encode_frame(&hello).unwrap();
        assert_eq!(frame[..4], (json.len() as u32).to_be_bytes());
        assert_eq!(&frame[4..], json);
    }

    #[test]
    fn every_message_round_trips_through_a_stream() {
        let mut reader = Cursor::new(every_frame_concatenated());
        for expected in every_host_message() {
            let message: HostMessage = read_frame(&mut reader).unwrap().expect("a frame");
            assert_eq!(message, expected);
        }
        for expected in every_guest_message() {
            let message: GuestMessage = read_frame(&mut reader).unwrap().expect("a frame");
            assert_eq!(message, expected);
        }
        assert!(read_frame::<_, GuestMessage>(&mut reader)
            .unwrap()
            .is_none());
    }

    #[test]
    fn every_message_round_trips_through_the_decoder_split_at_every_byte() {
        let (host_messages, guest_messages) = (every_host_message(), every_guest_message());
        let stream = every_frame_concatenated();
        for split in 0..=stream.len() {
            let mut decoder = FrameDecoder::new();
            let (mut hosts, mut guests) = (Vec::new(), Vec::new());
            decoder.push(&stream[..split]);
            drain(&mut decoder, host_messages.len(), &mut hosts, &mut guests);
            decoder.push(&stream[split..]);
            drain(&mut decoder, host_messages.len(), &mut hosts, &mut guests);
            assert_eq!(hosts, host_messages, "split at byte {split}");
            assert_eq!(guests, guest_messages, "split at byte {split}");
            decoder.finish().unwrap();
        }
    }

    #[test]
    fn the_decoder_takes_one_byte_at_a_time_and_keeps_only_the_partial_frame() {
        let (host_messages, guest_messages) = (every_host_message(), every_guest_message());
        let largest_frame = host_messages
            .iter()
            .map(|message| encode_frame(message).unwrap().len())
            .chain(
                guest_messages
                    .iter()
                    .map(|message| encode_frame(message).unwrap().len()),
            )
            .max()
            .unwrap();
        let stream = every_frame_concatenated();
        let mut decoder = FrameDecoder::new();
        let (mut hosts, mut guests) = (Vec::new(), Vec::new());
        for byte in &stream {
            decoder.push(std::slice::from_ref(byte));
            drain(&mut decoder, host_messages.len(), &mut hosts, &mut guests);
            assert!(decoder.buffered_bytes() < largest_frame);
        }
        assert_eq!(hosts, host_messages);
        assert_eq!(guests, guest_messages);
        assert_eq!(decoder.buffered_bytes(), 0);
    }

    #[test]
    fn a_clean_end_between_frames_is_not_an_error() {
        let mut empty = Cursor::new(Vec::new());
        assert!(read_frame::<_, HostMessage>(&mut empty).unwrap().is_none());
        FrameDecoder::new().finish().unwrap();
    }

    #[test]
    fn an_end_inside_the_length_prefix_is_truncation() {
        let frame = encode_frame(&every_guest_message()[0]).unwrap();
        let error = read_frame::<_, GuestMessage>(&frame[..3]).unwrap_err();
        assert!(
            matches!(error, CodecError::TruncatedLength { received: 3 }),
            "{error:?}"
        );

        let mut decoder = FrameDecoder::new();
        decoder.push(&frame[..2]);
        assert!(decoder.next_frame::<GuestMessage>().unwrap().is_none());
        let error = decoder.finish().unwrap_err();
        assert!(
            matches!(error, CodecError::TruncatedLength { received: 2 }),
            "{error:?}"
        );
    }

    #[test]
    fn an_end_inside_the_body_is_truncation() {
        let frame = encode_frame(&every_guest_message()[0]).unwrap();
        let body_len = frame.len() - 4;
        let cut = &frame[..frame.len() - 1];
        let error = read_frame::<_, GuestMessage>(cut).unwrap_err();
        assert!(
            matches!(error, CodecError::TruncatedBody { received, expected }
                if received == body_len - 1 && expected == body_len),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            format!(
                "stream ended {} bytes into a frame body of {body_len} bytes",
                body_len - 1
            )
        );

        let mut decoder = FrameDecoder::new();
        decoder.push(cut);
        assert!(decoder.next_frame::<GuestMessage>().unwrap().is_none());
        let error = decoder.finish().unwrap_err();
        assert!(
            matches!(error, CodecError::TruncatedBody { received, expected }
                if received == body_len - 1 && expected == body_len),
            "{error:?}"
        );
    }

    #[test]
    fn a_complete_frame_still_buffered_is_not_a_clean_end() {
        let mut decoder = FrameDecoder::new();
        decoder.push(&encode_frame(&every_guest_message()[0]).unwrap());
        assert!(decoder.finish().is_err());
        decoder
            .next_frame::<GuestMessage>()
            .unwrap()
            .expect("a frame");
        decoder.finish().unwrap();
    }

    #[test]
    fn garbage_json_is_an_error_and_the_next_frame_still_decodes() {
        let good = encode_frame(&every_guest_message()[0]).unwrap();
        for garbage in [
            &b""[..],
            b"{",
            b"\xff\xfe",
            b"null",
            br#"{"reply":{"id":-1,"response":"ok"}}"#,
            br#"{"reply":{"id":1,"response":"ok"}} trailing"#,
            br#"{"event":{"exploded":{}}}"#,
            br#"{"event":{"exited":{"process":"init","status":{"code":1.5}}}}"#,
        ] {
            let mut stream = raw_frame(garbage);
            stream.extend_from_slice(&good);

            let mut reader = Cursor::new(&stream);
            let error = read_frame::<_, GuestMessage>(&mut reader).unwrap_err();
            assert!(
                matches!(error, CodecError::InvalidJson { .. }),
                "{garbage:?}: {error:?}"
            );
            assert!(read_frame::<_, GuestMessage>(&mut reader)
                .unwrap()
                .is_some());

            let mut decoder = FrameDecoder::new();
            decoder.push(&stream);
            let error = decoder.next_frame::<GuestMessage>().unwrap_err();
            assert!(
                matches!(error, CodecError::InvalidJson { .. }),
                "{garbage:?}: {error:?}"
            );
            assert_eq!(
                decoder.next_frame::<GuestMessage>().unwrap(),
                Some(every_guest_message()[0].clone())
            );
        }
    }

    #[test]
    fn hostile_nesting_is_refused_without_exhausting_the_stack() {
        let body = "[".repeat(100_000);
        let error =
            read_frame::<_, GuestMessage>(raw_frame(body.as_bytes()).as_slice()).unwrap_err();
        assert!(matches!(error, CodecError::InvalidJson { .. }), "{error:?}");
    }

    /// A reader that hands out `data` and then fails the test if it is read
    /// again: the decoder had no business wanting more.
    struct ThenNothing<'a> {
        data: &'a [u8],
    }

    impl Read for ThenNothing<'_> {
        fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
            assert!(
                !self.data.is_empty(),
                "read past an oversized length prefix"
            );
            let count = buffer.len().min(self.data.len());
            buffer[..count].copy_from_slice(&self.data[..count]);
            self.data = &self.data[count..];
            Ok(count)
        }
    }

    #[test]
    fn an_oversized_prefix_is_refused_before_reading_or_allocating_the_body() {
        for claimed in [MAX_FRAME_BYTES as u32 + 1, u32::MAX] {
            let prefix = claimed.to_be_bytes();
            let (result, largest) = largest_allocation_during(|| {
                read_frame::<_, HostMessage>(ThenNothing { data: &prefix })
            });
            let error = result.unwrap_err();
            assert!(
                matches!(error, CodecError::Oversized { size, limit }
                    if size == claimed as usize && limit == MAX_FRAME_BYTES),
                "{error:?}"
            );
            assert!(
                largest < 4096,
                "allocated {largest} bytes for a refused frame"
            );
        }
        let error = read_frame::<_, HostMessage>(&u32::MAX.to_be_bytes()[..]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "frame of 4294967295 bytes is over the limit of 8388608 bytes"
        );
    }

    #[test]
    fn a_lying_length_within_the_limit_costs_only_what_arrives() {
        let mut stream = (MAX_FRAME_BYTES as u32).to_be_bytes().to_vec();
        stream.extend_from_slice(b"{}");
        let (result, largest) =
            largest_allocation_during(|| read_frame::<_, HostMessage>(stream.as_slice()));
        let error = result.unwrap_err();
        assert!(
            matches!(
                error,
                CodecError::TruncatedBody {
                    received: 2,
                    expected: MAX_FRAME_BYTES
                }
            ),
            "{error:?}"
        );
        assert!(
            largest < 64 * 1024,
            "allocated {largest} bytes for 2 bytes of body"
        );
    }

    #[test]
    fn the_decoder_refuses_an_oversized_prefix_at_once_and_stays_refused() {
        let mut decoder = FrameDecoder::new();
        decoder.push(&(MAX_FRAME_BYTES as u32 + 1).to_be_bytes());
        let error = decoder.next_frame::<HostMessage>().unwrap_err();
        assert!(matches!(error, CodecError::Oversized { .. }), "{error:?}");
        decoder.push(&[b' '; 4096]);
        assert_eq!(
            decoder.buffered_bytes(),
            0,
            "kept bytes of a stream it cannot resync"
        );
        assert!(matches!(
            decoder.next_frame::<HostMessage>(),
            Err(CodecError::Oversized { .. })
        ));
        assert!(matches!(
            decoder.finish(),
            Err(CodecError::Oversized { .. })
        ));
    }

    #[test]
    fn the_limit_itself_is_allowed() {
        let mut decoder = FrameDecoder::new();
        decoder.push(&(MAX_FRAME_BYTES as u32).to_be_bytes());
        assert!(decoder.next_frame::<HostMessage>().unwrap().is_none());
    }

    #[test]
    fn an_oversized_message_is_refused_before_anything_is_written() {
        // 7 MiB of file contents is over 9 MiB of base64.
        let file = FileMount {
            destination: "/big".to_string(),
            contents: vec![0; 7 << 20],
            mode: 0o644,
        };
        let mut written = Vec::new();
        let error = write_frame(&mut written, &file).unwrap_err();
        assert!(
            matches!(error, CodecError::Oversized { size, limit: MAX_FRAME_BYTES } if size > MAX_FRAME_BYTES),
            "{error:?}"
        );
        assert!(written.is_empty());
    }

    /// Reads one byte at a time, failing every other call with EINTR.
    struct InterruptedReader<'a> {
        data: &'a [u8],
        interrupt_next: bool,
    }

    impl Read for InterruptedReader<'_> {
        fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
            self.interrupt_next = !self.interrupt_next;
            if !self.interrupt_next {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let Some((&first, rest)) = self.data.split_first() else {
                return Ok(0);
            };
            buffer[0] = first;
            self.data = rest;
            Ok(1)
        }
    }

    #[test]
    fn short_and_interrupted_reads_are_retried() {
        let stream = every_frame_concatenated();
        let mut reader = InterruptedReader {
            data: &stream,
            interrupt_next: false,
        };
        for expected in every_host_message() {
            assert_eq!(
                read_frame::<_, HostMessage>(&mut reader).unwrap(),
                Some(expected)
            );
        }
    }

    #[test]
    fn a_failing_reader_is_a_read_error() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::ErrorKind::ConnectionReset.into())
            }
        }
        let error = read_frame::<_, HostMessage>(Broken).unwrap_err();
        assert!(
            matches!(&error, CodecError::Read { source } if source.kind() == io::ErrorKind::ConnectionReset),
            "{error:?}"
        );
    }
}
