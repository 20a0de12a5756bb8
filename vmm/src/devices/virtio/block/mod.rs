//! virtio-blk (virtio 1.2 §5.2): a disk backed by a host file or block
//! device, with one request queue. Requests are read (IN), write (OUT),
//! flush and GET_ID; every chain is validated before any I/O, and I/O goes
//! straight between the file and guest memory.

mod device;
mod event_handler;
mod request;
mod workers;

pub use device::{
    process_queue, Block, BlockError, Disk, QUEUE_SIZE, SEG_MAX, VIRTIO_BLK_F_BLK_SIZE,
    VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO, VIRTIO_BLK_F_SEG_MAX,
};
pub use request::SECTOR_SIZE;
