//! The host↔guest frame codec (husk-protocol `codec`): what husk-vmm reads
//! from the guest's control connection, and what husk-init reads from the
//! host, decoded both ways the code offers.
//!
//! Input: one header byte, then the byte stream.
//!
//! | header bits | meaning                                                   |
//! |-------------|-----------------------------------------------------------|
//! | 0-1         | the stream's message type: 0 `GuestMessage`, 1            |
//! |             | `HostMessage`, 2 `StreamHello`, 3 `GuestMessage` again     |
//! | 2-7         | the stream arrives in pieces of (value + 1) bytes         |
//!
//! The stream is a sequence of frames (4-byte big-endian length, then JSON),
//! so seeds are easy to write by hand (see seeds/protocol_codec/).
//!
//! Besides "no panic, no hang, no huge allocation":
//! - `read_frame` on a blocking reader and `FrameDecoder` fed in pieces see
//!   the same frames, the same errors and the same end of stream;
//! - every message that decodes re-encodes within the frame limit and
//!   decodes back to an equal value.

#![no_main]

use husk_protocol::codec::{
    encode_frame, read_frame, CodecError, FrameDecoder, LENGTH_PREFIX_BYTES, MAX_FRAME_BYTES,
};
use husk_protocol::messages::{GuestMessage, HostMessage, StreamHello};
use libfuzzer_sys::fuzz_target;

/// What a decoding error says about the stream, without the serde or I/O
/// source (which does not compare).
#[derive(Debug, PartialEq)]
enum Failure {
    Oversized { size: usize },
    TruncatedLength { received: usize },
    TruncatedBody { received: usize, expected: usize },
    InvalidJson,
}

impl Failure {
    fn of(error: &CodecError) -> Self {
        match error {
            CodecError::Oversized { size, limit } => {
                assert_eq!(*limit, MAX_FRAME_BYTES);
                assert!(*size > MAX_FRAME_BYTES, "refused a frame of {size} bytes");
                Self::Oversized { size: *size }
            }
            CodecError::TruncatedLength { received } => {
                assert!((1..LENGTH_PREFIX_BYTES).contains(received));
                Self::TruncatedLength {
                    received: *received,
                }
            }
            CodecError::TruncatedBody { received, expected } => {
                assert!(received < expected);
                Self::TruncatedBody {
                    received: *received,
                    expected: *expected,
                }
            }
            CodecError::InvalidJson { .. } => Self::InvalidJson,
            other => panic!("decoding an in-memory stream failed with {other:?}"),
        }
    }
}

/// One step of decoding a stream.
#[derive(Debug, PartialEq)]
enum Outcome<T> {
    Frame(T),
    Failed(Failure),
    /// The stream ended between frames.
    End,
}

/// Generates, for one message type, a function that decodes `stream` both
/// ways and checks the two agree and every message survives a re-encoding.
/// (A macro rather than a generic function: the serde bounds would need
/// serde as a dependency of this crate just to be named.)
macro_rules! stream_check {
    ($check:ident, $message:ty) => {
        fn $check(stream: &[u8], piece_len: usize) {
            let mut from_reader: Vec<Outcome<$message>> = Vec::new();
            let mut reader = stream;
            loop {
                match read_frame::<_, $message>(&mut reader) {
                    Ok(Some(message)) => from_reader.push(Outcome::Frame(message)),
                    Ok(None) => {
                        from_reader.push(Outcome::End);
                        break;
                    }
                    Err(error) => {
                        let failure = Failure::of(&error);
                        // Only a frame that parsed badly leaves the stream
                        // aligned on the next frame.
                        let go_on = failure == Failure::InvalidJson;
                        from_reader.push(Outcome::Failed(failure));
                        if !go_on {
                            break;
                        }
                    }
                }
            }

            let mut from_decoder: Vec<Outcome<$message>> = Vec::new();
            let mut decoder = FrameDecoder::new();
            'stream: for piece in stream.chunks(piece_len) {
                decoder.push(piece);
                loop {
                    match decoder.next_frame::<$message>() {
                        Ok(Some(message)) => from_decoder.push(Outcome::Frame(message)),
                        Ok(None) => break,
                        Err(error) => {
                            let failure = Failure::of(&error);
                            let oversized = matches!(failure, Failure::Oversized { .. });
                            from_decoder.push(Outcome::Failed(failure));
                            if oversized {
                                break 'stream;
                            }
                        }
                    }
                }
                // Drained, it holds less than one frame.
                assert!(decoder.buffered_bytes() < LENGTH_PREFIX_BYTES + MAX_FRAME_BYTES);
            }
            if !matches!(
                from_decoder.last(),
                Some(Outcome::Failed(Failure::Oversized { .. }))
            ) {
                from_decoder.push(match decoder.finish() {
                    Ok(()) => Outcome::End,
                    Err(error) => Outcome::Failed(Failure::of(&error)),
                });
            }

            assert_eq!(
                from_reader, from_decoder,
                "read_frame and FrameDecoder disagree"
            );

            for outcome in &from_reader {
                let Outcome::Frame(message) = outcome else {
                    continue;
                };
                // Fuzz inputs are kilobytes, so even a re-encoding that
                // spells out fields the input left out fits in a frame.
                let frame = encode_frame(message).expect("a decoded message re-encodes");
                let again = read_frame::<_, $message>(frame.as_slice())
                    .expect("a re-encoded message decodes")
                    .expect("a re-encoded message is a whole frame");
                assert_eq!(&again, message, "changed by a re-encoding");
            }
        }
    };
}

stream_check!(check_guest_stream, GuestMessage);
stream_check!(check_host_stream, HostMessage);
stream_check!(check_stream_hellos, StreamHello);

fuzz_target!(|data: &[u8]| {
    let Some((&header, stream)) = data.split_first() else {
        return;
    };
    let piece_len = usize::from(header >> 2) + 1;
    match header & 0b11 {
        1 => check_host_stream(stream, piece_len),
        2 => check_stream_hellos(stream, piece_len),
        _ => check_guest_stream(stream, piece_len),
    }
});
