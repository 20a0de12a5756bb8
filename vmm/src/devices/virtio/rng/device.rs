//! The entropy device and its queue processing.

use std::sync::Arc;

use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

use crate::devices::virtio::{
    ActivateError, Activation, InterruptReason, VirtioDevice, VirtioInterrupt, TYPE_RNG,
    VIRTIO_F_VERSION_1,
};
use crate::os;

const QUEUE_SIZE: u16 = 256;
/// The most one request is filled with; the driver asks again for more. It
/// bounds the work (and the getrandom calls) one guest notification causes.
pub const MAX_REQUEST_BYTES: u32 = 64 * 1024;

/// Where the device is in its life (CONVENTIONS: explicit state).
pub(super) enum State {
    Inactive,
    Activated(Active),
}

pub(super) struct Active {
    pub(super) mem: GuestMemoryMmap,
    pub(super) queue: Queue,
    pub(super) interrupt: Arc<dyn VirtioInterrupt>,
}

pub struct Rng {
    pub(super) state: State,
    /// Signalled (by KVM) when the driver notifies the request queue.
    pub(super) queue_event: EventFd,
}

impl Rng {
    /// `queue_event` is the request queue's notifier (a copy of the one the
    /// transport registers with KVM).
    pub fn new(queue_event: EventFd) -> Self {
        Self {
            state: State::Inactive,
            queue_event,
        }
    }
}

/// Fills every available request with random bytes; returns whether the
/// driver must be interrupted. Malformed chains (no writable buffer, or
/// buffers outside guest memory) are completed with what was written so far,
/// possibly nothing. `fill` returns false if it could not produce entropy.
pub fn process_queue(
    queue: &mut Queue,
    mem: &GuestMemoryMmap,
    fill: &mut dyn FnMut(&mut [u8]) -> bool,
) -> bool {
    let mut used_any = false;
    let mut buffer = Vec::new();
    while let Some(chain) = queue.pop_descriptor_chain(mem) {
        let head = chain.head_index();
        let mut written: u32 = 0;
        for descriptor in chain {
            if !descriptor.is_write_only() || written >= MAX_REQUEST_BYTES {
                continue;
            }
            let len = descriptor.len().min(MAX_REQUEST_BYTES - written);
            buffer.resize(len as usize, 0);
            if !fill(&mut buffer) || mem.write_slice(&buffer, descriptor.addr()).is_err() {
                break;
            }
            written += len;
        }
        // add_used fails for a head index beyond the queue size, which a
        // hostile driver can put in the available ring: that request is
        // dropped, and doesn't count as something to interrupt for.
        used_any |= queue.add_used(mem, head, written).is_ok();
    }
    used_any && queue.needs_notification(mem).unwrap_or(true)
}

impl Rng {
    /// Runs the queue and interrupts the driver when it should look.
    pub(super) fn process(&mut self) {
        if let State::Activated(active) = &mut self.state {
            if process_queue(&mut active.queue, &active.mem, &mut os::fill_from_getrandom) {
                let _ = active.interrupt.trigger(InterruptReason::Queue);
            }
        }
    }
}

impl VirtioDevice for Rng {
    fn device_type(&self) -> u32 {
        TYPE_RNG
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }

    fn device_features(&self) -> u64 {
        VIRTIO_F_VERSION_1
    }

    fn read_config(&self, _offset: u64, data: &mut [u8]) {
        // virtio-rng has no configuration space.
        data.fill(0);
    }

    fn activate(&mut self, activation: Activation) -> Result<(), ActivateError> {
        let got = activation.queues.len();
        let Some(queue) = activation.queues.into_iter().next() else {
            return Err(ActivateError::QueueCount { expected: 1, got });
        };
        self.state = State::Activated(Active {
            mem: activation.mem,
            queue,
            interrupt: activation.interrupt,
        });
        Ok(())
    }

    fn reset(&mut self) -> bool {
        self.state = State::Inactive;
        true
    }
}

#[cfg(test)]
mod tests {
    use virtio_queue::desc::split::Descriptor as SplitDescriptor;
    use virtio_queue::desc::RawDescriptor;
    use virtio_queue::mock::MockSplitQueue;
    use vm_memory::{GuestAddress, GuestMemoryMmap};

    use super::*;

    const WRITE: u16 = 2; // VRING_DESC_F_WRITE
    const NEXT: u16 = 1; // VRING_DESC_F_NEXT

    fn memory() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x100_0000)]).unwrap()
    }

    fn desc(addr: u64, len: u32, flags: u16, next: u16) -> RawDescriptor {
        RawDescriptor::from(SplitDescriptor::new(addr, len, flags, next))
    }

    fn used_len(mock: &MockSplitQueue<GuestMemoryMmap>, mem: &GuestMemoryMmap, index: u64) -> u32 {
        // Used ring: flags u16, idx u16, then {id u32, len u32} entries.
        mem.read_obj(mock.used_addr().unchecked_add(4 + index * 8 + 4))
            .unwrap()
    }

    fn fill_with(byte: u8) -> impl FnMut(&mut [u8]) -> bool {
        move |buffer: &mut [u8]| {
            buffer.fill(byte);
            true
        }
    }

    use vm_memory::Address;

    #[test]
    fn fills_every_writable_buffer_and_reports_the_length() {
        let mem = memory();
        let mock = MockSplitQueue::new(&mem, 16);
        mock.add_desc_chains(
            &[
                desc(0x10_0000, 100, WRITE | NEXT, 1),
                desc(0x20_0000, 50, WRITE, 0),
            ],
            0,
        )
        .unwrap();
        let mut queue: Queue = mock.create_queue().unwrap();
        assert!(process_queue(&mut queue, &mem, &mut fill_with(0xab)));
        assert_eq!(used_len(&mock, &mem, 0), 150);
        let mut got = [0u8; 100];
        mem.read_slice(&mut got, GuestAddress(0x10_0000)).unwrap();
        assert_eq!(got, [0xab; 100]);
        assert_eq!(
            mem.read_obj::<u8>(GuestAddress(0x20_0000 + 49)).unwrap(),
            0xab
        );
        assert_eq!(
            mem.read_obj::<u8>(GuestAddress(0x20_0000 + 50)).unwrap(),
            0,
            "not past the buffer"
        );
    }

    #[test]
    fn read_only_buffers_are_skipped_and_requests_are_bounded() {
        let mem = memory();
        let mock = MockSplitQueue::new(&mem, 16);
        mock.add_desc_chains(
            &[
                desc(0x10_0000, 4096, NEXT, 1),
                desc(0x20_0000, 10 * MAX_REQUEST_BYTES, WRITE, 0),
            ],
            0,
        )
        .unwrap();
        let mut queue: Queue = mock.create_queue().unwrap();
        process_queue(&mut queue, &mem, &mut fill_with(1));
        assert_eq!(used_len(&mock, &mem, 0), MAX_REQUEST_BYTES);
        assert_eq!(
            mem.read_obj::<u8>(GuestAddress(0x10_0000)).unwrap(),
            0,
            "read-only untouched"
        );
    }

    #[test]
    fn buffers_outside_guest_memory_complete_empty_without_harm() {
        let mem = memory();
        let mock = MockSplitQueue::new(&mem, 16);
        mock.add_desc_chains(&[desc(0xffff_0000, 4096, WRITE, 0)], 0)
            .unwrap();
        let mut queue: Queue = mock.create_queue().unwrap();
        assert!(process_queue(&mut queue, &mem, &mut fill_with(1)));
        assert_eq!(used_len(&mock, &mem, 0), 0);
    }

    #[test]
    fn a_head_index_beyond_the_queue_is_dropped_without_an_interrupt() {
        let mem = memory();
        let mock = MockSplitQueue::new(&mem, 16);
        mock.avail().ring().ref_at(0).unwrap().store(u16::to_le(16));
        mock.avail().idx().store(u16::to_le(1));
        let mut queue: Queue = mock.create_queue().unwrap();
        assert!(!process_queue(&mut queue, &mem, &mut fill_with(1)));
        assert_eq!(
            mem.read_obj::<u16>(mock.used_addr().unchecked_add(2))
                .unwrap(),
            0,
            "nothing used"
        );
    }

    fn used_count(mock: &MockSplitQueue<GuestMemoryMmap>, mem: &GuestMemoryMmap) -> u16 {
        mem.read_obj(mock.used_addr().unchecked_add(2)).unwrap()
    }

    #[test]
    fn a_looping_chain_is_cut_short_and_still_bounded() {
        const INDIRECT: u16 = 4; // VRING_DESC_F_INDIRECT
        let mem = memory();
        let mock = MockSplitQueue::new(&mem, 16);
        // Two buffers naming each other as next: the queue library stops
        // after as many descriptors as the queue has, and the request stays
        // within MAX_REQUEST_BYTES however many that is.
        mock.add_desc_chains(
            &[
                desc(0x10_0000, MAX_REQUEST_BYTES / 4, WRITE | NEXT, 1),
                desc(0x20_0000, MAX_REQUEST_BYTES / 4, WRITE | NEXT, 0),
            ],
            0,
        )
        .unwrap();
        let mut queue: Queue = mock.create_queue().unwrap();
        let mut fills = 0;
        let mut fill = |buffer: &mut [u8]| {
            fills += 1;
            buffer.fill(3);
            true
        };
        assert!(process_queue(&mut queue, &mem, &mut fill));
        assert_eq!(used_count(&mock, &mem), 1);
        assert_eq!(used_len(&mock, &mem, 0), MAX_REQUEST_BYTES);
        assert_eq!(fills, 4, "no buffer is filled past the request's bound");

        // A loop inside an indirect table: cut at the table's length.
        let table = 0x30_0000u64;
        for index in 0..4u16 {
            let entry = desc(0x40_0000, 16, WRITE | NEXT, (index + 1) % 4);
            mem.write_obj(entry, GuestAddress(table + u64::from(index) * 16))
                .unwrap();
        }
        mock.add_desc_chains(&[desc(table, 4 * 16, INDIRECT, 0)], 2)
            .unwrap();
        assert!(process_queue(&mut queue, &mem, &mut fill_with(5)));
        assert_eq!(used_count(&mock, &mem), 2);
        assert_eq!(used_len(&mock, &mem, 1), 4 * 16);
    }

    #[test]
    fn an_available_index_beyond_the_ring_takes_nothing() {
        let mem = memory();
        let mock = MockSplitQueue::new(&mem, 16);
        mock.add_desc_chains(&[desc(0x10_0000, 64, WRITE, 0)], 0)
            .unwrap();
        // The driver claims 17 chains in a ring of 16.
        mock.avail().idx().store(u16::to_le(17));
        let mut queue: Queue = mock.create_queue().unwrap();
        for _ in 0..3 {
            assert!(!process_queue(&mut queue, &mem, &mut fill_with(1)));
        }
        assert_eq!(used_count(&mock, &mem), 0);
        assert_eq!(
            mem.read_obj::<u8>(GuestAddress(0x10_0000)).unwrap(),
            0,
            "no buffer filled"
        );
    }

    #[test]
    fn an_empty_queue_needs_no_interrupt() {
        let mem = memory();
        let mock = MockSplitQueue::new(&mem, 16);
        let mut queue: Queue = mock.create_queue().unwrap();
        assert!(!process_queue(&mut queue, &mem, &mut fill_with(1)));
    }

    #[test]
    fn getrandom_fills_buffers() {
        let mut a = [0u8; 64];
        let mut b = [0u8; 64];
        assert!(os::fill_from_getrandom(&mut a));
        assert!(os::fill_from_getrandom(&mut b));
        assert_ne!(a, b);
    }
}
