//! One virtio-blk request (virtio 1.2 §5.2.6) as read from a descriptor
//! chain, checked in full before the device touches the disk or guest
//! memory: the driver is not trusted.
//!
//! The expected layout is the one Linux, firmware and the BSDs use: one
//! device-readable descriptor holding the 16-byte header, the data
//! descriptors, then a device-writable descriptor whose first byte receives
//! the status. A header merged with data, or a status merged with data, is
//! refused rather than guessed at.

use virtio_queue::desc::split::Descriptor;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

use super::device::SEG_MAX;

/// The unit of `sector` and of the capacity, whatever the block size.
pub const SECTOR_SIZE: u64 = 512;
/// `struct virtio_blk_outhdr`: type (le32), reserved (le32), sector (le64).
pub const HEADER_SIZE: u32 = 16;
/// GET_ID answers with up to 20 bytes, NUL-padded, unterminated when full.
pub const ID_BYTES: usize = 20;

// Request types (§5.2.6).
pub const VIRTIO_BLK_T_IN: u32 = 0;
pub const VIRTIO_BLK_T_OUT: u32 = 1;
pub const VIRTIO_BLK_T_FLUSH: u32 = 4;
pub const VIRTIO_BLK_T_GET_ID: u32 = 8;

// Status values (§5.2.6).
pub const VIRTIO_BLK_S_OK: u8 = 0;
pub const VIRTIO_BLK_S_IOERR: u8 = 1;
pub const VIRTIO_BLK_S_UNSUPP: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestType {
    /// Read sectors into the (device-writable) data buffers.
    In,
    /// Write the (device-readable) data buffers to sectors.
    Out,
    /// Make completed writes durable.
    Flush,
    /// Fill the (device-writable) data buffers with the device ID.
    GetId,
    /// Anything else, answered VIRTIO_BLK_S_UNSUPP.
    Unsupported(u32),
}

impl From<u32> for RequestType {
    fn from(value: u32) -> Self {
        match value {
            VIRTIO_BLK_T_IN => RequestType::In,
            VIRTIO_BLK_T_OUT => RequestType::Out,
            VIRTIO_BLK_T_FLUSH => RequestType::Flush,
            VIRTIO_BLK_T_GET_ID => RequestType::GetId,
            other => RequestType::Unsupported(other),
        }
    }
}

/// A request that passed validation.
#[derive(Debug)]
pub struct Request<'a> {
    pub request_type: RequestType,
    /// The first sector, for In and Out.
    pub sector: u64,
    /// The data buffers in chain order: inside guest memory, in the
    /// direction the type needs, at most `SEG_MAX` of them. Empty for Flush
    /// and Unsupported.
    pub data: &'a [Descriptor],
    /// The sum of the data buffers' lengths; for In and Out a whole number
    /// of sectors that ends within the disk.
    pub data_len: u64,
    /// Where the status byte goes.
    pub status: GuestAddress,
}

/// Why a chain is not a valid request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the last descriptor is not a device-writable status byte in guest memory")]
    NoStatus,
    #[error("the first descriptor is not a device-readable 16-byte header in guest memory")]
    BadHeader,
    #[error("more than {SEG_MAX} data descriptors")]
    TooManySegments,
    #[error("a data descriptor has the wrong direction for the request type")]
    WrongDirection,
    #[error("a data descriptor lies outside guest memory")]
    OutsideMemory,
    #[error("{bytes} data bytes are not a whole number of sectors")]
    PartialSector { bytes: u64 },
    #[error("{bytes} bytes at sector {sector} reach past the end of the disk")]
    PastEnd { sector: u64, bytes: u64 },
    #[error("a flush carries data")]
    FlushWithData,
}

/// A refused chain, and where its status byte is, if it has a usable one:
/// the device reports VIRTIO_BLK_S_IOERR there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed {
    pub status: Option<GuestAddress>,
    pub error: RequestError,
}

/// Validates the descriptors of one chain against guest memory and a disk
/// of `capacity_sectors`.
pub fn parse<'a>(
    chain: &'a [Descriptor],
    mem: &GuestMemoryMmap,
    capacity_sectors: u64,
) -> Result<Request<'a>, Malformed> {
    let no_status = Malformed {
        status: None,
        error: RequestError::NoStatus,
    };
    let (last, rest) = chain.split_last().ok_or(no_status)?;
    let status = status_byte(last, mem).ok_or(no_status)?;
    let refuse = |error| Malformed {
        status: Some(status),
        error,
    };

    let (header, data) = rest
        .split_first()
        .ok_or_else(|| refuse(RequestError::BadHeader))?;
    let (request_type, sector) =
        read_header(header, mem).ok_or_else(|| refuse(RequestError::BadHeader))?;
    let data_len = check_data(request_type, data, mem).map_err(refuse)?;
    if let RequestType::In | RequestType::Out = request_type {
        check_sectors(sector, data_len, capacity_sectors).map_err(refuse)?;
    }
    let data = match request_type {
        RequestType::In | RequestType::Out | RequestType::GetId => data,
        // The data of a type the device doesn't know is never touched.
        RequestType::Flush | RequestType::Unsupported(_) => &[],
    };
    Ok(Request {
        request_type,
        sector,
        data,
        data_len,
        status,
    })
}

fn status_byte(descriptor: &Descriptor, mem: &GuestMemoryMmap) -> Option<GuestAddress> {
    let usable = descriptor.is_write_only()
        && descriptor.len() >= 1
        && mem.check_range(descriptor.addr(), 1);
    usable.then(|| descriptor.addr())
}

fn read_header(descriptor: &Descriptor, mem: &GuestMemoryMmap) -> Option<(RequestType, u64)> {
    if descriptor.is_write_only() || descriptor.len() != HEADER_SIZE {
        return None;
    }
    let header: [u8; HEADER_SIZE as usize] = mem.read_obj(descriptor.addr()).ok()?;
    let (request_type, rest) = header.split_at(4);
    let request_type = u32::from_le_bytes(request_type.try_into().ok()?);
    // Bytes 4..8 are reserved (formerly the I/O priority) and ignored.
    let sector = u64::from_le_bytes(rest[4..].try_into().ok()?);
    Some((request_type.into(), sector))
}

/// Checks the data descriptors' count, direction and placement; returns
/// their total length.
fn check_data(
    request_type: RequestType,
    data: &[Descriptor],
    mem: &GuestMemoryMmap,
) -> Result<u64, RequestError> {
    let device_writes = match request_type {
        RequestType::In | RequestType::GetId => true,
        RequestType::Out => false,
        RequestType::Flush if data.is_empty() => return Ok(0),
        RequestType::Flush => return Err(RequestError::FlushWithData),
        RequestType::Unsupported(_) => return Ok(0),
    };
    if data.len() > SEG_MAX as usize {
        return Err(RequestError::TooManySegments);
    }
    let mut total: u64 = 0;
    for descriptor in data {
        if descriptor.is_write_only() != device_writes {
            return Err(RequestError::WrongDirection);
        }
        if !mem.check_range(descriptor.addr(), descriptor.len() as usize) {
            return Err(RequestError::OutsideMemory);
        }
        // At most SEG_MAX lengths below 2^32 each: no overflow.
        total += u64::from(descriptor.len());
    }
    Ok(total)
}

/// `bytes` at `sector` must be whole sectors that end within the disk.
fn check_sectors(sector: u64, bytes: u64, capacity_sectors: u64) -> Result<(), RequestError> {
    if bytes % SECTOR_SIZE != 0 {
        return Err(RequestError::PartialSector { bytes });
    }
    let end = sector
        .checked_mul(SECTOR_SIZE)
        .and_then(|start| start.checked_add(bytes));
    match end {
        Some(end) if end <= capacity_sectors.saturating_mul(SECTOR_SIZE) => Ok(()),
        _ => Err(RequestError::PastEnd { sector, bytes }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEXT: u16 = 1; // VRING_DESC_F_NEXT
    const WRITE: u16 = 2; // VRING_DESC_F_WRITE
    const HEADER: u64 = 0x1000;
    const STATUS: u64 = 0x2000;
    const DATA: u64 = 0x10_0000;
    const MEMORY_SIZE: u64 = 0x100_0000;
    const CAPACITY: u64 = 64;

    fn memory() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEMORY_SIZE as usize)]).unwrap()
    }

    fn desc(addr: u64, len: u32, flags: u16) -> Descriptor {
        // Chain order comes from the slice here; `next` is not followed.
        Descriptor::new(addr, len, flags, 0)
    }

    fn header(mem: &GuestMemoryMmap, request_type: u32, sector: u64) -> Descriptor {
        let mut bytes = [0u8; 16];
        bytes[..4].copy_from_slice(&request_type.to_le_bytes());
        bytes[4..8].copy_from_slice(&0xdead_beefu32.to_le_bytes());
        bytes[8..].copy_from_slice(&sector.to_le_bytes());
        mem.write_slice(&bytes, GuestAddress(HEADER)).unwrap();
        desc(HEADER, HEADER_SIZE, NEXT)
    }

    fn status() -> Descriptor {
        desc(STATUS, 1, WRITE)
    }

    fn refused(chain: &[Descriptor], mem: &GuestMemoryMmap) -> RequestError {
        let malformed = parse(chain, mem, CAPACITY).unwrap_err();
        assert_eq!(malformed.status, Some(GuestAddress(STATUS)));
        malformed.error
    }

    #[test]
    fn a_read_parses_with_its_buffers() {
        let mem = memory();
        let chain = [
            header(&mem, VIRTIO_BLK_T_IN, 3),
            desc(DATA, 512, WRITE | NEXT),
            desc(DATA + 0x1000, 1024, WRITE | NEXT),
            status(),
        ];
        let request = parse(&chain, &mem, CAPACITY).unwrap();
        assert_eq!(request.request_type, RequestType::In);
        assert_eq!(request.sector, 3);
        let buffers: Vec<_> = request.data.iter().map(|d| (d.addr(), d.len())).collect();
        assert_eq!(
            buffers,
            [
                (GuestAddress(DATA), 512),
                (GuestAddress(DATA + 0x1000), 1024)
            ]
        );
        assert_eq!(request.data_len, 1536);
        assert_eq!(request.status, GuestAddress(STATUS));
    }

    #[test]
    fn request_types_decode() {
        assert_eq!(RequestType::from(0), RequestType::In);
        assert_eq!(RequestType::from(1), RequestType::Out);
        assert_eq!(RequestType::from(4), RequestType::Flush);
        assert_eq!(RequestType::from(8), RequestType::GetId);
        assert_eq!(RequestType::from(11), RequestType::Unsupported(11));
    }

    #[test]
    fn no_usable_status_byte_means_no_status() {
        let mem = memory();
        let head = header(&mem, VIRTIO_BLK_T_FLUSH, 0);
        for last in [
            desc(STATUS, 1, 0),
            desc(STATUS, 0, WRITE),
            desc(MEMORY_SIZE, 1, WRITE),
        ] {
            let malformed = parse(&[head, last], &mem, CAPACITY).unwrap_err();
            assert_eq!(malformed.status, None);
            assert_eq!(malformed.error, RequestError::NoStatus);
        }
        assert_eq!(parse(&[], &mem, CAPACITY).unwrap_err().status, None);
    }

    #[test]
    fn the_header_must_be_one_readable_sixteen_byte_descriptor() {
        let mem = memory();
        header(&mem, VIRTIO_BLK_T_FLUSH, 0);
        for head in [
            desc(HEADER, 8, NEXT),
            desc(HEADER, 17, NEXT),
            desc(HEADER, HEADER_SIZE, WRITE | NEXT),
            desc(MEMORY_SIZE - 8, HEADER_SIZE, NEXT),
        ] {
            assert_eq!(refused(&[head, status()], &mem), RequestError::BadHeader);
        }
        // A lone writable descriptor is a status byte without a header.
        assert_eq!(refused(&[status()], &mem), RequestError::BadHeader);
    }

    #[test]
    fn data_must_flow_the_right_way() {
        let mem = memory();
        let read_into_readable = [
            header(&mem, VIRTIO_BLK_T_IN, 0),
            desc(DATA, 512, NEXT),
            status(),
        ];
        assert_eq!(
            refused(&read_into_readable, &mem),
            RequestError::WrongDirection
        );
        let write_from_writable = [
            header(&mem, VIRTIO_BLK_T_OUT, 0),
            desc(DATA, 512, WRITE | NEXT),
            status(),
        ];
        assert_eq!(
            refused(&write_from_writable, &mem),
            RequestError::WrongDirection
        );
        let id_into_readable = [
            header(&mem, VIRTIO_BLK_T_GET_ID, 0),
            desc(DATA, 20, NEXT),
            status(),
        ];
        assert_eq!(
            refused(&id_into_readable, &mem),
            RequestError::WrongDirection
        );
    }

    #[test]
    fn data_must_lie_in_guest_memory() {
        let mem = memory();
        for (addr, len) in [
            (MEMORY_SIZE, 512),
            (MEMORY_SIZE - 511, 512),
            (u64::MAX - 100, 512),
        ] {
            let chain = [
                header(&mem, VIRTIO_BLK_T_IN, 0),
                desc(addr, len, WRITE | NEXT),
                status(),
            ];
            assert_eq!(refused(&chain, &mem), RequestError::OutsideMemory);
        }
    }

    #[test]
    fn reads_and_writes_are_whole_sectors_within_the_disk() {
        let mem = memory();
        let with = |request_type, sector, len| {
            let flags = if request_type == VIRTIO_BLK_T_IN {
                WRITE | NEXT
            } else {
                NEXT
            };
            [
                header(&mem, request_type, sector),
                desc(DATA, len, flags),
                status(),
            ]
        };
        assert_eq!(
            refused(&with(VIRTIO_BLK_T_IN, 0, 500), &mem),
            RequestError::PartialSector { bytes: 500 }
        );
        assert_eq!(
            refused(&with(VIRTIO_BLK_T_OUT, 0, 513), &mem),
            RequestError::PartialSector { bytes: 513 }
        );
        assert_eq!(
            refused(&with(VIRTIO_BLK_T_IN, CAPACITY, 512), &mem),
            RequestError::PastEnd {
                sector: CAPACITY,
                bytes: 512
            }
        );
        assert_eq!(
            refused(&with(VIRTIO_BLK_T_OUT, CAPACITY - 1, 1024), &mem),
            RequestError::PastEnd {
                sector: CAPACITY - 1,
                bytes: 1024
            }
        );
        // sector * 512 overflows u64; so does start + length.
        for sector in [u64::MAX / 256, u64::MAX / 512] {
            assert!(matches!(
                refused(&with(VIRTIO_BLK_T_IN, sector, 512), &mem),
                RequestError::PastEnd { .. }
            ));
        }
        assert!(parse(&with(VIRTIO_BLK_T_IN, CAPACITY - 1, 512), &mem, CAPACITY).is_ok());
    }

    #[test]
    fn seg_max_bounds_the_data_descriptors() {
        let mem = memory();
        let mut chain = vec![header(&mem, VIRTIO_BLK_T_IN, 0)];
        chain.extend((0..=SEG_MAX).map(|_| desc(DATA, 0, WRITE | NEXT)));
        chain.push(status());
        assert_eq!(refused(&chain, &mem), RequestError::TooManySegments);
        chain.remove(1);
        assert!(parse(&chain, &mem, CAPACITY).is_ok());
    }

    #[test]
    fn flush_carries_no_data_and_unknown_types_keep_none() {
        let mem = memory();
        let flush = [
            header(&mem, VIRTIO_BLK_T_FLUSH, 0),
            desc(DATA, 512, NEXT),
            status(),
        ];
        assert_eq!(refused(&flush, &mem), RequestError::FlushWithData);

        // Whatever buffers an unknown type brings are left alone.
        let discard = [header(&mem, 11, 0), desc(MEMORY_SIZE, 16, NEXT), status()];
        let request = parse(&discard, &mem, CAPACITY).unwrap();
        assert_eq!(request.request_type, RequestType::Unsupported(11));
        assert!(request.data.is_empty());
    }
}
