//! virtio-vsock's parsing of guest transmit packets (virtio 1.2 §5.10.6):
//! every chain of a guest-controlled transmit queue goes through
//! `read_guest_packet`. Input format: see common.rs.
//!
//! Besides "no panic, no hang": an accepted packet's payload is exactly the
//! length its header declares, and never more than MAX_PAYLOAD.

#![no_main]

#[path = "common.rs"]
mod common;

use husk_vmm::devices::virtio::vsock::packet::{read_guest_packet, MAX_PAYLOAD};
use libfuzzer_sys::fuzz_target;
use virtio_queue::QueueOwnedT;

const GUEST_CID: u64 = 3;

fuzz_target!(|data: &[u8]| {
    let Some((mem, mut queue, _)) = common::guest_queue(data) else {
        return;
    };
    let mut payload = Vec::new();
    let Ok(chains) = queue.iter(&mem) else {
        return;
    };
    for chain in chains {
        if let Ok((header, _op)) = read_guest_packet(chain, &mem, GUEST_CID, &mut payload) {
            assert_eq!(payload.len(), header.len as usize);
            assert!(header.len <= MAX_PAYLOAD);
        }
    }
});
