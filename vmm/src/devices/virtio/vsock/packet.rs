//! The vsock packet header (virtio 1.2 §5.10.6) and the checks every packet
//! from the guest passes before the device acts on it.

use std::io::{self, Read, Write};

use virtio_queue::{DescriptorChain, Writer};
use vm_memory::GuestMemoryMmap;

use super::connection::ConnectionKey;

/// The well-known CID of the host (§5.10.4).
pub const HOST_CID: u64 = 2;
/// Size of `struct virtio_vsock_hdr` (§5.10.6).
pub const HEADER_SIZE: usize = 44;
/// The largest payload the device takes from, or gives to, the guest in one
/// packet. Linux never sends more than 64 KiB; anything larger is refused
/// before a byte of it is copied.
pub const MAX_PAYLOAD: u32 = 64 * 1024;
/// `VIRTIO_VSOCK_TYPE_STREAM`, the only socket type the device offers.
pub const TYPE_STREAM: u16 = 1;
/// SHUTDOWN flags (§5.10.6.5): the sender will receive / send no more.
pub const SHUTDOWN_RCV: u32 = 1;
pub const SHUTDOWN_SEND: u32 = 2;

/// Packet operations (§5.10.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Op {
    Request = 1,
    Response = 2,
    Rst = 3,
    Shutdown = 4,
    Rw = 5,
    CreditUpdate = 6,
    CreditRequest = 7,
}

impl Op {
    pub fn from_raw(raw: u16) -> Option<Op> {
        Some(match raw {
            1 => Op::Request,
            2 => Op::Response,
            3 => Op::Rst,
            4 => Op::Shutdown,
            5 => Op::Rw,
            6 => Op::CreditUpdate,
            7 => Op::CreditRequest,
            _ => return None,
        })
    }
}

/// `struct virtio_vsock_hdr`, every field little-endian on the wire.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Header {
    pub src_cid: u64,
    pub dst_cid: u64,
    pub src_port: u32,
    pub dst_port: u32,
    pub len: u32,
    pub socket_type: u16,
    pub op: u16,
    pub flags: u32,
    pub buf_alloc: u32,
    pub fwd_cnt: u32,
}

impl Header {
    /// A packet from the host to the guest on the stream `key`; the caller
    /// fills in the length, flags and credit.
    pub fn to_guest(guest_cid: u64, key: ConnectionKey, op: Op) -> Header {
        Header {
            src_cid: HOST_CID,
            dst_cid: guest_cid,
            src_port: key.local_port,
            dst_port: key.peer_port,
            socket_type: TYPE_STREAM,
            op: op as u16,
            ..Header::default()
        }
    }

    /// The stream a packet from the guest belongs to, seen from the host.
    pub fn key_from_guest(&self) -> ConnectionKey {
        ConnectionKey {
            local_port: self.dst_port,
            peer_port: self.src_port,
        }
    }

    pub fn decode(bytes: &[u8; HEADER_SIZE]) -> Header {
        Header {
            src_cid: u64::from_le_bytes(field(bytes, 0)),
            dst_cid: u64::from_le_bytes(field(bytes, 8)),
            src_port: u32::from_le_bytes(field(bytes, 16)),
            dst_port: u32::from_le_bytes(field(bytes, 20)),
            len: u32::from_le_bytes(field(bytes, 24)),
            socket_type: u16::from_le_bytes(field(bytes, 28)),
            op: u16::from_le_bytes(field(bytes, 30)),
            flags: u32::from_le_bytes(field(bytes, 32)),
            buf_alloc: u32::from_le_bytes(field(bytes, 36)),
            fwd_cnt: u32::from_le_bytes(field(bytes, 40)),
        }
    }

    pub fn encode(&self) -> [u8; HEADER_SIZE] {
        let mut bytes = [0u8; HEADER_SIZE];
        bytes[0..8].copy_from_slice(&self.src_cid.to_le_bytes());
        bytes[8..16].copy_from_slice(&self.dst_cid.to_le_bytes());
        bytes[16..20].copy_from_slice(&self.src_port.to_le_bytes());
        bytes[20..24].copy_from_slice(&self.dst_port.to_le_bytes());
        bytes[24..28].copy_from_slice(&self.len.to_le_bytes());
        bytes[28..30].copy_from_slice(&self.socket_type.to_le_bytes());
        bytes[30..32].copy_from_slice(&self.op.to_le_bytes());
        bytes[32..36].copy_from_slice(&self.flags.to_le_bytes());
        bytes[36..40].copy_from_slice(&self.buf_alloc.to_le_bytes());
        bytes[40..44].copy_from_slice(&self.fwd_cnt.to_le_bytes());
        bytes
    }
}

fn field<const N: usize>(bytes: &[u8; HEADER_SIZE], offset: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[offset..offset + N]);
    out
}

/// Why a packet from the guest was refused.
#[derive(Debug, thiserror::Error)]
pub enum PacketError {
    #[error("map the packet's buffers")]
    Memory(#[source] virtio_queue::Error),
    #[error("read the packet from its buffers")]
    Read(#[source] io::Error),
    #[error("the buffers hold {0} readable bytes, less than a header")]
    ShortHeader(usize),
    #[error("source CID {0} is not the guest's")]
    SourceCid(u64),
    #[error("destination CID {0} is not the host's")]
    DestinationCid(u64),
    #[error("socket type {0} is not a stream")]
    SocketType(u16),
    #[error("unknown operation {op}")]
    UnknownOp { op: u16, key: ConnectionKey },
    #[error("payload of {len} bytes is larger than {MAX_PAYLOAD}")]
    Oversized { len: u32, key: ConnectionKey },
    #[error("the header announces {declared} payload bytes, the buffers hold {provided}")]
    LengthMismatch {
        declared: u32,
        provided: usize,
        key: ConnectionKey,
    },
}

impl PacketError {
    /// The stream a refused packet was addressed to, when the header is
    /// trustworthy enough to say: that stream is reset rather than left
    /// with a hole in its data.
    pub fn connection(&self) -> Option<ConnectionKey> {
        match self {
            PacketError::UnknownOp { key, .. }
            | PacketError::Oversized { key, .. }
            | PacketError::LengthMismatch { key, .. } => Some(*key),
            _ => None,
        }
    }
}

/// Checks a header from the guest against what the device accepts;
/// `provided` is how many payload bytes follow it in the buffers. Only RW
/// carries a payload.
pub fn check_guest_header(
    header: &Header,
    provided: usize,
    guest_cid: u64,
) -> Result<Op, PacketError> {
    if header.src_cid != guest_cid {
        return Err(PacketError::SourceCid(header.src_cid));
    }
    if header.dst_cid != HOST_CID {
        return Err(PacketError::DestinationCid(header.dst_cid));
    }
    if header.socket_type != TYPE_STREAM {
        return Err(PacketError::SocketType(header.socket_type));
    }
    let key = header.key_from_guest();
    let op = Op::from_raw(header.op).ok_or(PacketError::UnknownOp { op: header.op, key })?;
    if header.len > MAX_PAYLOAD {
        return Err(PacketError::Oversized {
            len: header.len,
            key,
        });
    }
    let expected = if op == Op::Rw { header.len as usize } else { 0 };
    if provided != expected || header.len as usize != expected {
        return Err(PacketError::LengthMismatch {
            declared: header.len,
            provided,
            key,
        });
    }
    Ok(op)
}

/// Reads one packet from a transmit chain: the header and payload from its
/// device-readable buffers (device-writable ones are ignored), checked with
/// [`check_guest_header`]. The payload lands in `payload`.
pub fn read_guest_packet(
    chain: DescriptorChain<&GuestMemoryMmap>,
    mem: &GuestMemoryMmap,
    guest_cid: u64,
    payload: &mut Vec<u8>,
) -> Result<(Header, Op), PacketError> {
    payload.clear();
    let mut reader = chain.reader(mem).map_err(PacketError::Memory)?;
    let available = reader.available_bytes();
    if available < HEADER_SIZE {
        return Err(PacketError::ShortHeader(available));
    }
    let mut bytes = [0u8; HEADER_SIZE];
    reader.read_exact(&mut bytes).map_err(PacketError::Read)?;
    let header = Header::decode(&bytes);
    let op = check_guest_header(&header, available - HEADER_SIZE, guest_cid)?;
    payload.resize(header.len as usize, 0);
    reader.read_exact(payload).map_err(PacketError::Read)?;
    Ok((header, op))
}

/// Writes a packet into a receive chain; returns the bytes written, for the
/// used ring. The caller made sure the chain has room.
pub fn write_host_packet(writer: &mut Writer, header: &Header, payload: &[u8]) -> io::Result<u32> {
    writer.write_all(&header.encode())?;
    writer.write_all(payload)?;
    // HEADER_SIZE + MAX_PAYLOAD fits in u32.
    Ok((HEADER_SIZE + payload.len()) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUEST_CID: u64 = 3;

    fn from_guest(op: Op, len: u32) -> Header {
        Header {
            src_cid: GUEST_CID,
            dst_cid: HOST_CID,
            src_port: 1000,
            dst_port: 52,
            len,
            socket_type: TYPE_STREAM,
            op: op as u16,
            ..Header::default()
        }
    }

    #[test]
    fn the_header_encodes_little_endian_at_the_spec_offsets() {
        let header = Header {
            src_cid: 0x0102_0304_0506_0708,
            dst_cid: 2,
            src_port: 0x1122_3344,
            dst_port: 5,
            len: 6,
            socket_type: 1,
            op: 5,
            flags: 3,
            buf_alloc: 0xaabb_ccdd,
            fwd_cnt: 9,
        };
        let bytes = header.encode();
        assert_eq!(bytes[0..8], [8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(bytes[16..20], [0x44, 0x33, 0x22, 0x11]);
        assert_eq!(bytes[28..32], [1, 0, 5, 0]);
        assert_eq!(bytes[36..40], [0xdd, 0xcc, 0xbb, 0xaa]);
        assert_eq!(Header::decode(&bytes), header);
    }

    #[test]
    fn a_well_formed_packet_passes() {
        assert_eq!(
            check_guest_header(&from_guest(Op::Rw, 10), 10, GUEST_CID).unwrap(),
            Op::Rw
        );
        assert_eq!(
            check_guest_header(&from_guest(Op::Request, 0), 0, GUEST_CID).unwrap(),
            Op::Request
        );
    }

    #[test]
    fn addressing_errors_are_dropped_without_a_stream() {
        let mut header = from_guest(Op::Rw, 0);
        header.src_cid = 4;
        let error = check_guest_header(&header, 0, GUEST_CID).unwrap_err();
        assert!(matches!(error, PacketError::SourceCid(4)));
        assert_eq!(error.connection(), None);

        let mut header = from_guest(Op::Rw, 0);
        header.dst_cid = 3;
        assert!(matches!(
            check_guest_header(&header, 0, GUEST_CID),
            Err(PacketError::DestinationCid(3))
        ));

        let mut header = from_guest(Op::Rw, 0);
        header.socket_type = 2; // SEQPACKET, not offered
        assert!(matches!(
            check_guest_header(&header, 0, GUEST_CID),
            Err(PacketError::SocketType(2))
        ));
    }

    #[test]
    fn bad_lengths_and_ops_name_the_stream_to_reset() {
        let key = ConnectionKey {
            local_port: 52,
            peer_port: 1000,
        };
        let error =
            check_guest_header(&from_guest(Op::Rw, MAX_PAYLOAD + 1), 0, GUEST_CID).unwrap_err();
        assert!(matches!(error, PacketError::Oversized { .. }));
        assert_eq!(error.connection(), Some(key));

        // Fewer bytes than announced, more bytes than announced.
        for provided in [9, 11] {
            let error =
                check_guest_header(&from_guest(Op::Rw, 10), provided, GUEST_CID).unwrap_err();
            assert!(matches!(error, PacketError::LengthMismatch { .. }));
        }
        // Only RW has a payload.
        assert!(check_guest_header(&from_guest(Op::Shutdown, 4), 4, GUEST_CID).is_err());

        let mut header = from_guest(Op::Rw, 0);
        header.op = 99;
        let error = check_guest_header(&header, 0, GUEST_CID).unwrap_err();
        assert!(matches!(error, PacketError::UnknownOp { op: 99, .. }));
        assert_eq!(error.connection(), Some(key));
    }
}
