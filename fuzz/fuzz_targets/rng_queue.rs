//! virtio-rng's queue processing against a guest that controls every byte of
//! its rings and descriptors (virtio 1.2 §2.7).
//!
//! Input: a 4-byte header, then the image of guest memory from address 0.
//!
//! | byte | meaning                                                     |
//! |------|-------------------------------------------------------------|
//! | 0    | queue size: `1 << (byte % 9)`, so 1 to 256                  |
//! | 1    | bit 0: VIRTIO_RING_F_EVENT_IDX negotiated                   |
//! | 2..4 | next_avail and next_used (u16 LE): where the rings wrap     |
//!
//! Guest memory is 64 KiB with the rings at fixed addresses, the available
//! ring first so that short inputs reach it: available ring at 0x0010 (not
//! 0: virtio-queue treats an available ring at 0 as unset), descriptor table
//! at 0x0400, used ring at 0x1400, buffers anywhere.
//!
//! Besides "no panic, no hang", the target checks what the device may do to
//! guest memory: write the bytes its entropy source produced and its used
//! ring, nothing else, and never fill more than MAX_REQUEST_BYTES per
//! request.

#![no_main]

use husk_vmm::devices::virtio::rng::device::{process_queue, MAX_REQUEST_BYTES};
use libfuzzer_sys::fuzz_target;
use virtio_queue::{Queue, QueueState, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const MEMORY_SIZE: usize = 0x1_0000;
const AVAIL_RING: u64 = 0x0010;
const DESC_TABLE: u64 = 0x0400;
const USED_RING: u64 = 0x1400;
const HEADER_LEN: usize = 4;
const MAX_QUEUE_SIZE: u16 = 256;
/// What the stand-in entropy source writes. The memory check accepts this
/// byte anywhere (buffers may be anywhere), any other change only in the
/// used ring.
const ENTROPY_BYTE: u8 = 0x5a;

fuzz_target!(|data: &[u8]| {
    let Some((header, image)) = data.split_first_chunk::<HEADER_LEN>() else {
        return;
    };
    let size = 1u16 << (header[0] % 9);
    let event_idx = header[1] & 1 != 0;
    let start_index = u16::from_le_bytes([header[2], header[3]]);

    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEMORY_SIZE)])
        .expect("an anonymous mapping of 64 KiB");
    let image = &image[..image.len().min(MEMORY_SIZE)];
    mem.write_slice(image, GuestAddress(0))
        .expect("the image fits in guest memory");

    let mut queue = Queue::try_from(QueueState {
        max_size: MAX_QUEUE_SIZE,
        next_avail: start_index,
        next_used: start_index,
        event_idx_enabled: event_idx,
        size,
        ready: true,
        desc_table: DESC_TABLE,
        avail_ring: AVAIL_RING,
        used_ring: USED_RING,
    })
    .expect("a power-of-two size and aligned rings");
    // The transport only hands a device queues that pass this check.
    assert!(queue.is_valid(&mem), "the fixed layout fits in memory");

    let before = snapshot(&mem);
    let mut filled: u64 = 0;
    let notify = process_queue(&mut queue, &mem, &mut |buffer| {
        filled += buffer.len() as u64;
        buffer.fill(ENTROPY_BYTE);
        true
    });
    let after = snapshot(&mem);

    // Each completed request is one used ring entry; the work behind them is
    // bounded per request.
    let completed = u64::from(queue.next_used().wrapping_sub(start_index));
    assert!(
        filled <= completed * u64::from(MAX_REQUEST_BYTES),
        "{filled} bytes filled for {completed} requests"
    );
    assert!(
        completed > 0 || !notify,
        "an interrupt without a used buffer"
    );

    // Used ring: flags, idx, `size` elements of 8 bytes, avail_event (§2.7.8).
    let used_ring = USED_RING as usize..USED_RING as usize + 6 + 8 * usize::from(size);
    // Compared a chunk at a time with memcmp: a per-byte loop over all of
    // memory would dominate the run time under the fuzzer's instrumentation.
    let entropy_chunk = [ENTROPY_BYTE; CHUNK];
    for (index, (old, new)) in before.chunks(CHUNK).zip(after.chunks(CHUNK)).enumerate() {
        if old == new || new == &entropy_chunk[..new.len()] {
            continue;
        }
        for (offset, (old, new)) in old.iter().zip(new).enumerate() {
            let address = index * CHUNK + offset;
            assert!(
                old == new || *new == ENTROPY_BYTE || used_ring.contains(&address),
                "the device wrote {new:#04x} over {old:#04x} at {address:#x}, \
                 outside any buffer and the used ring"
            );
        }
    }
});

const CHUNK: usize = 256;

fn snapshot(mem: &GuestMemoryMmap) -> Vec<u8> {
    let mut bytes = vec![0u8; MEMORY_SIZE];
    mem.read_slice(&mut bytes, GuestAddress(0))
        .expect("guest memory is one region of MEMORY_SIZE");
    bytes
}
