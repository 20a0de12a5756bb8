//! The guest-controlled queue shared by the queue targets: a 4-byte header
//! then the image of guest memory from address 0 (see rng_queue.rs for the
//! layout: available ring at 0x0010, descriptor table at 0x0400, used ring
//! at 0x1400, 64 KiB in all).

use virtio_queue::{Queue, QueueState, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

pub const MEMORY_SIZE: usize = 0x1_0000;
const AVAIL_RING: u64 = 0x0010;
const DESC_TABLE: u64 = 0x0400;
const USED_RING: u64 = 0x1400;
const HEADER_LEN: usize = 4;

/// Guest memory filled from the input and a ready queue over it, plus the
/// index the rings start at; None for inputs shorter than the header.
pub fn guest_queue(data: &[u8]) -> Option<(GuestMemoryMmap, Queue, u16)> {
    let (header, image) = data.split_first_chunk::<HEADER_LEN>()?;
    let start_index = u16::from_le_bytes([header[2], header[3]]);
    let mem =
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEMORY_SIZE)]).expect("64 KiB of memory");
    mem.write_slice(&image[..image.len().min(MEMORY_SIZE)], GuestAddress(0))
        .expect("the image fits");
    let queue = Queue::try_from(QueueState {
        max_size: 256,
        next_avail: start_index,
        next_used: start_index,
        event_idx_enabled: header[1] & 1 != 0,
        size: 1u16 << (header[0] % 9),
        ready: true,
        desc_table: DESC_TABLE,
        avail_ring: AVAIL_RING,
        used_ring: USED_RING,
    })
    .expect("a power-of-two size and aligned rings");
    assert!(queue.is_valid(&mem), "the fixed layout fits in memory");
    Some((mem, queue, start_index))
}

/// Requests the device completed since `start_index`.
pub fn completed(queue: &Queue, start_index: u16) -> u16 {
    queue.next_used().wrapping_sub(start_index)
}
