//! virtio-blk's request parsing and I/O against a guest that controls every
//! byte of its rings, descriptors and buffers (virtio 1.2 §5.2.6). Input
//! format: see common.rs. The disk is a 64 KiB file in the temp dir.
//!
//! Besides "no panic, no hang": the disk file never changes size, and the
//! device never interrupts without completing a request.

#![no_main]

#[path = "common.rs"]
mod common;

use std::path::PathBuf;
use std::sync::OnceLock;

use husk_vmm::devices::virtio::block::{process_queue, Disk};
use libfuzzer_sys::fuzz_target;

const DISK_SIZE: u64 = 64 * 1024;

fn disk_path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("husk-fuzz-blk-{}.img", std::process::id()));
        std::fs::write(&path, vec![0xa5u8; DISK_SIZE as usize]).expect("create the fuzz disk");
        path
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((mem, mut queue, start_index)) = common::guest_queue(data) else {
        return;
    };
    // The first input byte past the header picks read-only or not.
    let read_only = data.get(4).is_some_and(|b| b & 1 == 1);
    let disk = Disk::open(disk_path(), read_only).expect("open the fuzz disk");
    let notify = process_queue(&mut queue, &mem, &disk);
    assert!(
        common::completed(&queue, start_index) > 0 || !notify,
        "an interrupt without a used buffer"
    );
    let size = std::fs::metadata(disk_path()).expect("the fuzz disk").len();
    assert_eq!(size, DISK_SIZE, "the disk never grows or shrinks");
});
