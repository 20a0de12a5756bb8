//! The block device: its backing file, its queue processing and what it
//! tells the driver (features and configuration space, §5.2.3-§5.2.4).

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use virtio_queue::desc::split::Descriptor;
use virtio_queue::{DescriptorChain, Queue, QueueOwnedT, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

use super::request::{
    self, Malformed, Request, RequestType, ID_BYTES, SECTOR_SIZE, VIRTIO_BLK_S_IOERR,
    VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP,
};
use super::workers::Workers;
use crate::devices::virtio::{
    read_config_bytes, ActivateError, Activation, InterruptReason, VirtioDevice, VirtioInterrupt,
    TYPE_BLOCK, VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX,
};
use crate::vstate::memory::{transfer_file_guest, Transfer};

pub const QUEUE_SIZE: u16 = 256;
/// Data descriptors per request, advertised as seg_max: with the header and
/// the status a request still fits the ring without indirect descriptors.
pub const SEG_MAX: u32 = QUEUE_SIZE as u32 - 2;

// Feature bits (§5.2.3).
pub const VIRTIO_BLK_F_SEG_MAX: u64 = 1 << 2;
pub const VIRTIO_BLK_F_RO: u64 = 1 << 5;
pub const VIRTIO_BLK_F_BLK_SIZE: u64 = 1 << 6;
pub const VIRTIO_BLK_F_FLUSH: u64 = 1 << 9;

// `struct virtio_blk_config` (§5.2.4), little-endian; only the fields up to
// blk_size are held, the rest read as zero.
const CONFIG_CAPACITY: usize = 0;
const CONFIG_SEG_MAX: usize = 12;
const CONFIG_BLK_SIZE: usize = 20;
const CONFIG_SIZE: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("inspect disk image {}", path.display())]
    Inspect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "disk image {} is neither a regular file nor a block device",
        path.display()
    )]
    NotADisk { path: PathBuf },
    #[error("open disk image {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("create the I/O completion notifier")]
    Workers(#[source] io::Error),
    #[error("find the size of disk image {}", path.display())]
    Size {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The host file (or block device) behind the device.
pub struct Disk {
    file: File,
    /// Whole 512-byte sectors: a trailing partial sector is not exposed.
    capacity_sectors: u64,
    read_only: bool,
    /// The GET_ID answer.
    id: [u8; ID_BYTES],
}

impl Disk {
    /// Opens `path` for reading, and for writing unless `read_only`.
    pub fn open(path: &Path, read_only: bool) -> Result<Self, BlockError> {
        // Looked at before opening: opening a FIFO would block.
        let metadata = std::fs::metadata(path).map_err(|source| BlockError::Inspect {
            path: path.to_owned(),
            source,
        })?;
        let file_type = metadata.file_type();
        if !file_type.is_file() && !file_type.is_block_device() {
            return Err(BlockError::NotADisk {
                path: path.to_owned(),
            });
        }
        let file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(path)
            .map_err(|source| BlockError::Open {
                path: path.to_owned(),
                source,
            })?;
        // Seeking to the end measures block devices too, whose metadata
        // length is zero.
        let size = (&file)
            .seek(SeekFrom::End(0))
            .map_err(|source| BlockError::Size {
                path: path.to_owned(),
                source,
            })?;
        Ok(Self {
            file,
            capacity_sectors: size / SECTOR_SIZE,
            read_only,
            id: device_id(&metadata),
        })
    }

    /// Carries out a validated request.
    fn execute(&self, request: &Request, mem: &GuestMemoryMmap) -> Completion {
        let outcome = match request.request_type {
            RequestType::In => self
                .read(request.sector, request.data, mem)
                .map(|()| request.data_len),
            // §5.2.6.2: writes to a read-only device fail with IOERR.
            RequestType::Out if self.read_only => return Completion::failed(),
            RequestType::Out => self.write(request.sector, request.data, mem).map(|()| 0),
            // Nothing was written through a read-only file.
            RequestType::Flush if self.read_only => Ok(0),
            // The file never grows, so its data is all fdatasync must
            // make durable.
            RequestType::Flush => self.file.sync_data().map(|()| 0),
            RequestType::GetId => self.write_id(request.data, mem),
            RequestType::Unsupported(_) => {
                return Completion {
                    status: VIRTIO_BLK_S_UNSUPP,
                    data_written: 0,
                }
            }
        };
        match outcome {
            Ok(written) => Completion {
                status: VIRTIO_BLK_S_OK,
                // Data never reaches 2^32 bytes (§2.7.5.2).
                data_written: u32::try_from(written).unwrap_or(u32::MAX),
            },
            Err(_) => Completion::failed(),
        }
    }

    /// Reads the sectors from `sector` on into the buffers, in order,
    /// straight into guest memory, in one vectored read. A short read (the
    /// file shrank under us) is an error, not stale guest memory passed off
    /// as data.
    fn read(&self, sector: u64, data: &[Descriptor], mem: &GuestMemoryMmap) -> io::Result<()> {
        transfer_file_guest(
            &self.file,
            sector * SECTOR_SIZE,
            mem,
            &ranges(data),
            Transfer::FileToGuest,
        )
    }

    /// Writes the buffers, in order, to the sectors from `sector` on,
    /// straight from guest memory, in one vectored write.
    fn write(&self, sector: u64, data: &[Descriptor], mem: &GuestMemoryMmap) -> io::Result<()> {
        transfer_file_guest(
            &self.file,
            sector * SECTOR_SIZE,
            mem,
            &ranges(data),
            Transfer::GuestToFile,
        )
    }

    /// Fills the buffers with the ID, truncated to what they hold; returns
    /// the bytes written.
    fn write_id(&self, data: &[Descriptor], mem: &GuestMemoryMmap) -> io::Result<u64> {
        let mut rest = &self.id[..];
        for descriptor in data {
            if rest.is_empty() {
                break;
            }
            let (now, later) = rest.split_at(rest.len().min(descriptor.len() as usize));
            mem.write_slice(now, descriptor.addr())
                .map_err(io::Error::other)?;
            rest = later;
        }
        Ok((ID_BYTES - rest.len()) as u64)
    }
}

/// The guest ranges a request's data descriptors cover, in order.
fn ranges(data: &[Descriptor]) -> Vec<(GuestAddress, usize)> {
    data.iter().map(|d| (d.addr(), d.len() as usize)).collect()
}

/// A serial that stays the same across boots and differs between images:
/// the host device and inode in hex, NUL-padded; when longer than the 20
/// bytes GET_ID allows, its last 20 characters (the inode's low digits
/// vary most).
fn device_id(metadata: &Metadata) -> [u8; ID_BYTES] {
    let text = format!("{:x}-{:x}", metadata.dev(), metadata.ino());
    let tail = &text.as_bytes()[text.len().saturating_sub(ID_BYTES)..];
    let mut id = [0u8; ID_BYTES];
    id[..tail.len()].copy_from_slice(tail);
    id
}

/// How a request ended.
struct Completion {
    status: u8,
    /// Bytes the device wrote into the data buffers.
    data_written: u32,
}

impl Completion {
    fn failed() -> Self {
        Self {
            status: VIRTIO_BLK_S_IOERR,
            data_written: 0,
        }
    }
}

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

pub struct Block {
    pub(super) state: State,
    /// Signalled (by KVM) when the driver notifies the request queue.
    pub(super) queue_event: EventFd,
    disk: Arc<Disk>,
    pub(super) workers: Workers,
    config: [u8; CONFIG_SIZE],
}

impl Block {
    /// A disk backed by the file or block device at `path`, writable unless
    /// `read_only`. `queue_event` is the request queue's notifier (a copy
    /// of the one the transport registers with KVM).
    pub fn new(path: &Path, read_only: bool, queue_event: EventFd) -> Result<Self, BlockError> {
        let disk = Arc::new(Disk::open(path, read_only)?);
        let config = config_space(disk.capacity_sectors);
        let workers = Workers::new(Arc::clone(&disk)).map_err(BlockError::Workers)?;
        Ok(Self {
            state: State::Inactive,
            queue_event,
            disk,
            workers,
            config,
        })
    }

    /// The size the guest sees, in 512-byte sectors.
    pub fn capacity_sectors(&self) -> u64 {
        self.disk.capacity_sectors
    }

    /// Runs the queue and interrupts the driver when it should look. All
    /// but the last new request go to the workers, the last is carried out
    /// here meanwhile: a lone request pays no thread hand-off, and requests
    /// that arrive together overlap.
    pub(super) fn process(&mut self) {
        let State::Activated(active) = &mut self.state else {
            return;
        };
        let mut chains = take_available(&mut active.queue, &active.mem);
        let last = chains.pop();
        let mut used_any = false;
        for (head, chain) in chains {
            if let Err(chain) = self.workers.submit(head, chain, &active.mem) {
                let used_len = complete(&chain, &active.mem, &self.disk);
                used_any |= publish(&mut active.queue, &active.mem, head, used_len);
            }
        }
        if let Some((head, chain)) = last {
            let used_len = complete(&chain, &active.mem, &self.disk);
            used_any |= publish(&mut active.queue, &active.mem, head, used_len);
        }
        self.interrupt_if_needed(used_any);
    }

    /// Publishes what the workers finished.
    pub(super) fn process_finished(&mut self) {
        let finished = self.workers.take_finished();
        let State::Activated(active) = &mut self.state else {
            return;
        };
        let mut used_any = false;
        for done in finished {
            used_any |= publish(&mut active.queue, &active.mem, done.head, done.used_len);
        }
        self.interrupt_if_needed(used_any);
    }

    fn interrupt_if_needed(&mut self, used_any: bool) {
        if let State::Activated(active) = &mut self.state {
            if used_any && active.queue.needs_notification(&active.mem).unwrap_or(true) {
                let _ = active.interrupt.trigger(InterruptReason::Queue);
            }
        }
    }
}

fn config_space(capacity_sectors: u64) -> [u8; CONFIG_SIZE] {
    let mut config = [0u8; CONFIG_SIZE];
    config[CONFIG_CAPACITY..CONFIG_CAPACITY + 8].copy_from_slice(&capacity_sectors.to_le_bytes());
    config[CONFIG_SEG_MAX..CONFIG_SEG_MAX + 4].copy_from_slice(&SEG_MAX.to_le_bytes());
    config[CONFIG_BLK_SIZE..CONFIG_BLK_SIZE + 4]
        .copy_from_slice(&(SECTOR_SIZE as u32).to_le_bytes());
    config
}

/// Completes every available request, one after the other, on the
/// caller's thread; returns whether the driver must be interrupted.
pub fn process_queue(queue: &mut Queue, mem: &GuestMemoryMmap, disk: &Disk) -> bool {
    let mut used_any = false;
    for (head, chain) in take_available(queue, mem) {
        used_any |= publish(queue, mem, head, complete(&chain, mem, disk));
    }
    used_any && queue.needs_notification(mem).unwrap_or(true)
}

/// Takes every available chain off the ring, each as its head index and
/// descriptors.
fn take_available(queue: &mut Queue, mem: &GuestMemoryMmap) -> Vec<(u16, Vec<Descriptor>)> {
    let mut chains = Vec::new();
    let mut idle_passes = 0;
    loop {
        // No notifications while draining; re-enabling then looking again
        // catches requests added in between (§2.7.10 with EVENT_IDX, the
        // used ring flags without).
        let _ = queue.disable_notification(mem);
        let mut taken = 0;
        loop {
            let chain = match next_chain(queue, mem) {
                Ok(Some(chain)) => chain,
                Ok(None) => break,
                // The driver moved the available index more than a ring
                // ahead: nothing can be trusted until it resets the device.
                Err(_) => return chains,
            };
            chains.push((chain.head_index(), chain.collect()));
            taken += 1;
        }
        idle_passes = if taken == 0 { idle_passes + 1 } else { 0 };
        // Twice in a row with nothing taken although the index says there
        // is: an entry that can't be read. Stop instead of spinning.
        if !queue.enable_notification(mem).unwrap_or(false) || idle_passes == 2 {
            return chains;
        }
    }
}

fn next_chain<'m>(
    queue: &mut Queue,
    mem: &'m GuestMemoryMmap,
) -> Result<Option<DescriptorChain<&'m GuestMemoryMmap>>, virtio_queue::Error> {
    queue.iter(mem).map(|mut available| available.next())
}

/// Puts a finished request in the used ring; returns whether it is there.
fn publish(queue: &mut Queue, mem: &GuestMemoryMmap, head: u16, used_len: u32) -> bool {
    // add_used only fails for a head index beyond the queue, which the
    // driver placed there itself: that chain is dropped and doesn't count
    // as something to interrupt for.
    queue.add_used(mem, head, used_len).is_ok()
}

/// Validates and carries out one request, writes its status byte; returns
/// the used length: the bytes written into the chain's device-writable
/// buffers, zero when it has no usable status byte.
pub(super) fn complete(chain: &[Descriptor], mem: &GuestMemoryMmap, disk: &Disk) -> u32 {
    let (status_addr, completion) = match request::parse(chain, mem, disk.capacity_sectors) {
        Ok(request) => (request.status, disk.execute(&request, mem)),
        Err(Malformed {
            status: Some(status),
            ..
        }) => (status, Completion::failed()),
        Err(Malformed { status: None, .. }) => return 0,
    };
    match mem.write_obj(completion.status, status_addr) {
        Ok(()) => completion.data_written.saturating_add(1),
        Err(_) => 0,
    }
}

impl VirtioDevice for Block {
    fn device_type(&self) -> u32 {
        TYPE_BLOCK
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }

    fn device_features(&self) -> u64 {
        let features = VIRTIO_F_VERSION_1
            | VIRTIO_RING_F_EVENT_IDX
            | VIRTIO_BLK_F_SEG_MAX
            | VIRTIO_BLK_F_BLK_SIZE
            | VIRTIO_BLK_F_FLUSH;
        if self.disk.read_only {
            features | VIRTIO_BLK_F_RO
        } else {
            features
        }
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.config, offset, data);
    }

    fn activate(&mut self, activation: Activation) -> Result<(), ActivateError> {
        let got = activation.queues.len();
        let Some(mut queue) = activation.queues.into_iter().next() else {
            return Err(ActivateError::QueueCount { expected: 1, got });
        };
        queue.set_event_idx(activation.acked_features & VIRTIO_RING_F_EVENT_IDX != 0);
        self.state = State::Activated(Active {
            mem: activation.mem,
            queue,
            interrupt: activation.interrupt,
        });
        Ok(())
    }

    fn reset(&mut self) -> bool {
        // Requests still with the workers finish first; their results are
        // dropped with the queue (§2.4: the driver discards them).
        self.workers.drain();
        self.state = State::Inactive;
        true
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use virtio_queue::desc::RawDescriptor;
    use virtio_queue::mock::MockSplitQueue;
    use vm_memory::{Address, GuestAddress};

    use super::*;
    use crate::devices::virtio::block::request::{
        VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
    };
    use crate::devices::virtio::block::workers::wait_readable;

    const NEXT: u16 = 1; // VRING_DESC_F_NEXT
    const WRITE: u16 = 2; // VRING_DESC_F_WRITE
    const MOCK_QUEUE_SIZE: u16 = 16;
    /// Per-chain header and status slots, indexed by the chain's first
    /// descriptor; the mock rings sit below 0x1000.
    const HEADERS: u64 = 0x4000;
    const STATUSES: u64 = 0x5000;
    const DATA: u64 = 0x10_0000;
    const MEMORY_SIZE: u64 = 0x100_0000;
    const UNTOUCHED: u8 = 0xee;

    /// A disk image in the temporary directory, removed on drop.
    struct Image {
        path: PathBuf,
    }

    impl Image {
        fn new(contents: &[u8]) -> Self {
            static NEXT_ID: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "husk-block-test-{}-{}",
                std::process::id(),
                NEXT_ID.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::write(&path, contents).unwrap();
            Self { path }
        }

        fn contents(&self) -> Vec<u8> {
            std::fs::read(&self.path).unwrap()
        }

        fn disk(&self, read_only: bool) -> Disk {
            Disk::open(&self.path, read_only).unwrap()
        }
    }

    impl Drop for Image {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    /// Bytes that differ from sector to sector.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    fn memory() -> GuestMemoryMmap {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEMORY_SIZE as usize)]).unwrap();
        let untouched = vec![UNTOUCHED; 0x10_0000];
        mem.write_slice(&untouched, GuestAddress(DATA)).unwrap();
        mem
    }

    /// Places a chain of `(addr, len, flags)` at descriptor `first`,
    /// linking each descriptor to the next, and makes it available.
    fn add_chain(mock: &MockSplitQueue<GuestMemoryMmap>, first: u16, parts: &[(u64, u32, u16)]) {
        let descriptors: Vec<RawDescriptor> = parts
            .iter()
            .enumerate()
            .map(|(i, &(addr, len, flags))| {
                let last = i + 1 == parts.len();
                let flags = if last { flags } else { flags | NEXT };
                let next = if last { 0 } else { first + i as u16 + 1 };
                RawDescriptor::from(Descriptor::new(addr, len, flags, next))
            })
            .collect();
        mock.add_desc_chains(&descriptors, first).unwrap();
    }

    fn header_addr(first: u16) -> u64 {
        HEADERS + u64::from(first) * 16
    }

    fn status_addr(first: u16) -> u64 {
        STATUSES + u64::from(first)
    }

    fn write_header(mem: &GuestMemoryMmap, first: u16, request_type: u32, sector: u64) {
        let mut bytes = [0u8; 16];
        bytes[..4].copy_from_slice(&request_type.to_le_bytes());
        bytes[8..].copy_from_slice(&sector.to_le_bytes());
        mem.write_slice(&bytes, GuestAddress(header_addr(first)))
            .unwrap();
        mem.write_obj(UNTOUCHED, GuestAddress(status_addr(first)))
            .unwrap();
    }

    /// Adds a well-formed request at descriptor `first`: header, `data`
    /// buffers in the direction its type needs, one status byte.
    fn add_request(
        mock: &MockSplitQueue<GuestMemoryMmap>,
        mem: &GuestMemoryMmap,
        first: u16,
        request_type: u32,
        sector: u64,
        data: &[(u64, u32)],
    ) {
        write_header(mem, first, request_type, sector);
        let data_flags = match request_type {
            VIRTIO_BLK_T_IN | VIRTIO_BLK_T_GET_ID => WRITE,
            _ => 0,
        };
        let mut parts = vec![(header_addr(first), 16, 0)];
        parts.extend(data.iter().map(|&(addr, len)| (addr, len, data_flags)));
        parts.push((status_addr(first), 1, WRITE));
        add_chain(mock, first, &parts);
    }

    fn status(mem: &GuestMemoryMmap, first: u16) -> u8 {
        mem.read_obj(GuestAddress(status_addr(first))).unwrap()
    }

    fn used_count(mock: &MockSplitQueue<GuestMemoryMmap>, mem: &GuestMemoryMmap) -> u16 {
        mem.read_obj(mock.used_addr().unchecked_add(2)).unwrap()
    }

    /// The used ring's entry `index`: (head, length).
    fn used(
        mock: &MockSplitQueue<GuestMemoryMmap>,
        mem: &GuestMemoryMmap,
        index: u64,
    ) -> (u32, u32) {
        let entry = mock.used_addr().unchecked_add(4 + index * 8);
        (
            mem.read_obj(entry).unwrap(),
            mem.read_obj(entry.unchecked_add(4)).unwrap(),
        )
    }

    fn guest_bytes(mem: &GuestMemoryMmap, addr: u64, len: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; len];
        mem.read_slice(&mut bytes, GuestAddress(addr)).unwrap();
        bytes
    }

    fn run(mock: &MockSplitQueue<GuestMemoryMmap>, mem: &GuestMemoryMmap, disk: &Disk) -> bool {
        let mut queue: Queue = mock.create_queue().unwrap();
        process_queue(&mut queue, mem, disk)
    }

    #[test]
    fn reads_land_in_guest_memory() {
        let contents = pattern(8 * 512);
        let image = Image::new(&contents);
        let mem = memory();
        let mock = MockSplitQueue::new(&mem, MOCK_QUEUE_SIZE);
        add_request(
            &mock,
            &mem,
            0,
            VIRTIO_BLK_T_IN,
            2,
            &[(DATA, 512), (DATA + 0x2000, 1024)],
        );
        assert!(run(&mock, &mem, &image.disk(false)));
        assert_eq!(status(&mem, 0), VIRTIO_BLK_S_OK);
        assert_eq!(used(&mock, &mem, 0), (0, 1536 + 1));
        assert_eq!(guest_bytes(&mem, DATA, 512), contents[1024..1536]);
        assert_eq!(guest_bytes(&mem, DATA + 0x2000, 1024), contents[1536..2560]);
        assert_eq!(
            guest_bytes(&mem, DATA + 512, 1),
            [UNTOUCHED],
            "not past the buffer"
        );
    }

    #[test]
    fn writes_reach_the_file_and_read_back() {
        let contents = pattern(8 * 512);
        let image = Image::new(&contents);
        let disk = image.disk(false);
        let mem = memory();
        let mock = MockSplitQueue::new(&mem, MOCK_QUEUE_SIZE);
        mem.write_slice(&[0xaa; 512], GuestAddress(DATA)).unwrap();
        mem.write_slice(&[0xbb; 1024], GuestAddress(DATA + 0x2000))
            .unwrap();
        add_request(
            &mock,
            &mem,
            0,
            VIRTIO_BLK_T_OUT,
            5,
            &[(DATA, 512), (DATA + 0x2000, 1024)],
        );
        let mut queue: Queue = mock.create_queue().unwrap();
        process_queue(&mut queue, &mem, &disk);
        assert_eq!(status(&mem, 0), VIRTIO_BLK_S_OK);
        assert_eq!(used(&mock, &mem, 0), (0, 1), "only the status was written");
        let mut expected = contents.clone();
        expected[5 * 512..6 * 512].fill(0xaa);
        expected[6 * 512..8 * 512].fill(0xbb);
        assert_eq!(image.contents(), expected);

        add_request(&mock, &mem, 4, VIRTIO_BLK_T_IN, 4, &[(DATA + 0x4000, 2048)]);
        process_queue(&mut queue, &mem, &disk);
        assert_eq!(status(&mem, 4), VIRTIO_BLK_S_OK);
        assert_eq!(guest_bytes(&mem, DATA + 0x4000, 2048), expected[4 * 512..]);
    }

    #[test]
    fn flush_succeeds_on_writable_and_read_only_disks() {
        let image = Image::new(&pattern(512));
        for read_only in [false, true] {
            let mem = memory();
            let mock = MockSplitQueue::new(&mem, MOCK_QUEUE_SIZE);
            add_request(&mock, &mem, 0, VIRTIO_BLK_T_FLUSH, 0, &[]);
            run(&mock, &mem, &image.disk(read_only));
            assert_eq!(status(&mem, 0), VIRTIO_BLK_S_OK);
            assert_eq!(used(&mock, &mem, 0), (0, 1));
        }
    }

    #[test]
    fn get_id_answers_a_stable_serial_truncated_to_the_buffer() {
        let image = Image::new(&pattern(512));
        let disk = image.disk(false);
        let mem = memory();
        let mock = MockSplitQueue::new(&mem, MOCK_QUEUE_SIZE);
        add_request(&mock, &mem, 0, VIRTIO_BLK_T_GET_ID, 0, &[(DATA, 20)]);
        add_request(&mock, &mem, 3, VIRTIO_BLK_T_GET_ID, 0, &[(DATA + 0x100, 8)]);
        run(&mock, &mem, &disk);

        assert_eq!(status(&mem, 0), VIRTIO_BLK_S_OK);
        assert_eq!(used(&mock, &mem, 0), (0, 21));
        let id = guest_bytes(&mem, DATA, 20);
        assert_eq!(id, disk.id);
        let text: Vec<u8> = id.iter().copied().take_while(|&b| b != 0).collect();
        assert!(!text.is_empty());
        assert!(text.iter().all(|b| b.is_ascii_hexdigit() || *b == b'-'));
        assert!(id[text.len()..].iter().all(|&b| b == 0), "NUL-padded");

        assert_eq!(status(&mem, 3), VIRTIO_BLK_S_OK);
        assert_eq!(used(&mock, &mem, 1), (3, 9));
        assert_eq!(guest_bytes(&mem, DATA + 0x100, 8), id[..8]);
        assert_eq!(guest_bytes(&mem, DATA + 0x108, 1), [UNTOUCHED]);

        assert_eq!(Disk::open(&image.path, true).unwrap().id, disk.id, "stable");
        let other = Image::new(&pattern(512));
        assert_ne!(other.disk(false).id, disk.id, "per image");
    }

    #[test]
    fn a_read_only_disk_refuses_writes() {
        let contents = pattern(4 * 512);
        let image = Image::new(&contents);
        let mem = memory();
        let mock = MockSplitQueue::new(&mem, MOCK_QUEUE_SIZE);
        mem.write_slice(&[0xaa; 512], GuestAddress(DATA)).unwrap();
        add_request(&mock, &mem, 0, VIRTIO_BLK_T_OUT, 1, &[(DATA, 512)]);
        add_request(&mock, &mem, 3, VIRTIO_BLK_T_IN, 1, &[(DATA + 0x1000, 512)]);
        run(&mock, &mem, &image.disk(true));
        assert_eq!(status(&mem, 0), VIRTIO_BLK_S_IOERR);
        assert_eq!(used(&mock, &mem, 0), (0, 1));
        assert_eq!(image.contents(), contents);
        assert_eq!(status(&mem, 3), VIRTIO_BLK_S_OK, "reads still work");
    }

    #[test]
    fn malformed_requests_fail_without_touching_disk_or_memory() {
        let contents = pattern(8 * 512);
        let image = Image::new(&contents);
        let mem = memory();
        let mock = MockSplitQueue::new(&mem, MOCK_QUEUE_SIZE);
        // Out of range, sector * 512 overflowing, a partial sector.
        add_request(&mock, &mem, 0, VIRTIO_BLK_T_IN, 8, &[(DATA, 512)]);
        add_request(
            &mock,
            &mem,
            3,
            VIRTIO_BLK_T_OUT,
            u64::MAX / 256,
            &[(DATA, 512)],
        );
        add_request(&mock, &mem, 6, VIRTIO_BLK_T_OUT, 0, &[(DATA, 500)]);
        // A header too short, data flowing the wrong way.
        write_header(&mem, 9, VIRTIO_BLK_T_IN, 0);
        add_chain(
            &mock,
            9,
            &[
                (header_addr(9), 8, 0),
                (DATA, 512, WRITE),
                (status_addr(9), 1, WRITE),
            ],
        );
        write_header(&mem, 12, VIRTIO_BLK_T_IN, 0);
        add_chain(
            &mock,
            12,
            &[
                (header_addr(12), 16, 0),
                (DATA, 512, 0),
                (status_addr(12), 1, WRITE),
            ],
        );
        assert!(run(&mock, &mem, &image.disk(false)));
        for (index, first) in [0u16, 3, 6, 9, 12].into_iter().enumerate() {
            assert_eq!(status(&mem, first), VIRTIO_BLK_S_IOERR, "chain at {first}");
            assert_eq!(used(&mock, &mem, index as u64), (u32::from(first), 1));
        }
        assert_eq!(image.contents(), contents);
        assert_eq!(guest_bytes(&mem, DATA, 512), [UNTOUCHED; 512]);
    }

    #[test]
    fn wrong_direction_writes_and_buffers_outside_memory_fail() {
        let contents = pattern(4 * 512);
        let image = Image::new(&contents);
        let mem = memory();
        let mock = MockSplitQueue::new(&mem, MOCK_QUEUE_SIZE);
        write_header(&mem, 0, VIRTIO_BLK_T_OUT, 0);
        add_chain(
            &mock,
            0,
            &[
                (header_addr(0), 16, 0),
                (DATA, 512, WRITE),
                (status_addr(0), 1, WRITE),
            ],
        );
        // The second buffer runs past the end of guest memory: nothing of
        // the first is read either.
        add_request(
            &mock,
            &mem,
            3,
            VIRTIO_BLK_T_IN,
            0,
            &[(DATA, 512), (MEMORY_SIZE - 256, 512)],
        );
        run(&mock, &mem, &image.disk(false));
        assert_eq!(status(&mem, 0), VIRTIO_BLK_S_IOERR);
        assert_eq!(status(&mem, 3), VIRTIO_BLK_S_IOERR);
        assert_eq!(image.contents(), contents);
        assert_eq!(guest_bytes(&mem, DATA, 512), [UNTOUCHED; 512]);
    }

    #[test]
    fn chains_without_a_status_byte_complete_empty() {
        let image = Image::new(&pattern(4 * 512));
        let mem = memory();
        let mock = MockSplitQueue::new(&mem, MOCK_QUEUE_SIZE);
        let cases: [(u64, u32, u16); 3] = [
            (status_addr(0), 1, 0),     // read-only
            (status_addr(3), 0, WRITE), // empty
            (MEMORY_SIZE, 1, WRITE),    // outside guest memory
        ];
        for (case, &last) in cases.iter().enumerate() {
            let first = case as u16 * 3;
            write_header(&mem, first, VIRTIO_BLK_T_IN, 0);
            add_chain(
                &mock,
                first,
                &[(header_addr(first), 16, 0), (DATA, 512, WRITE), last],
            );
        }
        run(&mock, &mem, &image.disk(false));
        assert_eq!(used_count(&mock, &mem), 3);
        for case in 0..3 {
            assert_eq!(used(&mock, &mem, case), (case as u32 * 3, 0));
        }
        assert_eq!(status(&mem, 0), UNTOUCHED);
        assert_eq!(status(&mem, 3), UNTOUCHED);
        assert_eq!(guest_bytes(&mem, DATA, 512), [UNTOUCHED; 512]);
    }

    #[test]
    fn unknown_request_types_are_unsupported() {
        let image = Image::new(&pattern(512));
        let mem = memory();
        let mock = MockSplitQueue::new(&mem, MOCK_QUEUE_SIZE);
        // VIRTIO_BLK_T_DISCARD, not offered.
        add_request(&mock, &mem, 0, 11, 0, &[(DATA, 16)]);
        run(&mock, &mem, &image.disk(false));
        assert_eq!(status(&mem, 0), VIRTIO_BLK_S_UNSUPP);
        assert_eq!(used(&mock, &mem, 0), (0, 1));
        assert_eq!(guest_bytes(&mem, DATA, 16), [UNTOUCHED; 16]);
    }

    #[test]
    fn one_notification_completes_every_request() {
        let contents = pattern(8 * 512);
        let image = Image::new(&contents);
        let mem = memory();
        let mock = MockSplitQueue::new(&mem, MOCK_QUEUE_SIZE);
        for (i, first) in [0u16, 3, 6].into_iter().enumerate() {
            let buffer = DATA + i as u64 * 0x1000;
            add_request(
                &mock,
                &mem,
                first,
                VIRTIO_BLK_T_IN,
                i as u64,
                &[(buffer, 512)],
            );
        }
        assert!(run(&mock, &mem, &image.disk(false)));
        assert_eq!(used_count(&mock, &mem), 3);
        for (i, first) in [0u16, 3, 6].into_iter().enumerate() {
            assert_eq!(used(&mock, &mem, i as u64), (u32::from(first), 513));
            let buffer = DATA + i as u64 * 0x1000;
            assert_eq!(
                guest_bytes(&mem, buffer, 512),
                contents[i * 512..(i + 1) * 512]
            );
        }
    }

    #[test]
    fn a_file_shrunk_under_the_device_fails_the_read() {
        let image = Image::new(&pattern(4 * 512));
        let disk = image.disk(false);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&image.path)
            .unwrap()
            .set_len(2 * 512)
            .unwrap();
        let mem = memory();
        let mock = MockSplitQueue::new(&mem, MOCK_QUEUE_SIZE);
        add_request(&mock, &mem, 0, VIRTIO_BLK_T_IN, 1, &[(DATA, 2048)]);
        run(&mock, &mem, &disk);
        assert_eq!(status(&mem, 0), VIRTIO_BLK_S_IOERR);
        assert_eq!(used(&mock, &mem, 0), (0, 1));
    }

    #[test]
    fn an_empty_queue_needs_no_interrupt() {
        let image = Image::new(&pattern(512));
        let mem = memory();
        let mock = MockSplitQueue::new(&mem, MOCK_QUEUE_SIZE);
        assert!(!run(&mock, &mem, &image.disk(false)));
    }

    #[test]
    fn an_available_index_beyond_the_ring_stops_processing() {
        let image = Image::new(&pattern(512));
        let mem = memory();
        let mock = MockSplitQueue::new(&mem, MOCK_QUEUE_SIZE);
        mem.write_obj(MOCK_QUEUE_SIZE + 1, mock.avail_addr().unchecked_add(2))
            .unwrap();
        assert!(!run(&mock, &mem, &image.disk(false)));
        assert_eq!(used_count(&mock, &mem), 0);
    }

    #[test]
    fn a_looping_chain_is_cut_at_the_queue_size_and_refused() {
        let contents = pattern(8 * 512);
        let image = Image::new(&contents);
        let mem = memory();
        let mock = MockSplitQueue::new(&mem, MOCK_QUEUE_SIZE);
        write_header(&mem, 0, VIRTIO_BLK_T_IN, 0);
        // The header and a data buffer naming each other as next: the queue
        // library hands over MOCK_QUEUE_SIZE descriptors, alternating, and
        // the request they make is refused before any I/O.
        let descriptors = [
            RawDescriptor::from(Descriptor::new(header_addr(0), 16, NEXT, 1)),
            RawDescriptor::from(Descriptor::new(DATA, 512, WRITE | NEXT, 0)),
        ];
        mock.add_desc_chains(&descriptors, 0).unwrap();
        assert!(run(&mock, &mem, &image.disk(false)));
        assert_eq!(used_count(&mock, &mem), 1);
        // The last descriptor handed over, the data buffer, took the status.
        assert_eq!(used(&mock, &mem, 0), (0, 1));
        assert_eq!(guest_bytes(&mem, DATA, 1), [VIRTIO_BLK_S_IOERR]);
        assert_eq!(guest_bytes(&mem, DATA + 1, 511), [UNTOUCHED; 511]);
        assert_eq!(image.contents(), contents);
    }

    #[test]
    fn an_unreadable_ring_entry_does_not_hang_the_device() {
        let image = Image::new(&pattern(512));
        let mem = memory();
        let mock = MockSplitQueue::new(&mem, MOCK_QUEUE_SIZE);
        // The available ring's index is the last word of guest memory, its
        // entries lie beyond it; the index claims one request.
        let avail = MEMORY_SIZE - 4;
        mem.write_obj(1u16, GuestAddress(avail + 2)).unwrap();
        let mut queue: Queue = mock.create_queue().unwrap();
        queue.set_avail_ring_address(Some(avail as u32), Some((avail >> 32) as u32));
        assert!(!process_queue(&mut queue, &mem, &image.disk(false)));
        assert_eq!(used_count(&mock, &mem), 0);
    }

    /// Counts interrupts.
    #[derive(Default)]
    struct CountingInterrupt(AtomicUsize);

    impl VirtioInterrupt for CountingInterrupt {
        fn trigger(&self, reason: InterruptReason) -> io::Result<()> {
            assert_eq!(reason, InterruptReason::Queue);
            self.0.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    }

    fn eventfd() -> EventFd {
        EventFd::new(libc::EFD_NONBLOCK).unwrap()
    }

    fn activate(
        block: &mut Block,
        mock: &MockSplitQueue<GuestMemoryMmap>,
        mem: &GuestMemoryMmap,
        acked_features: u64,
    ) -> Arc<CountingInterrupt> {
        let interrupt = Arc::new(CountingInterrupt::default());
        block
            .activate(Activation {
                mem: mem.clone(),
                queues: vec![mock.create_queue().unwrap()],
                interrupt: interrupt.clone(),
                acked_features,
            })
            .unwrap();
        interrupt
    }

    #[test]
    fn interrupts_follow_the_drivers_used_event() {
        let image = Image::new(&pattern(4 * 512));
        // avail ring: flags, idx, ring[size], used_event; used ring: flags,
        // idx, ring[size] of 8 bytes, avail_event.
        let used_event_offset = 4 + 2 * u64::from(MOCK_QUEUE_SIZE);
        let avail_event_offset = 4 + 8 * u64::from(MOCK_QUEUE_SIZE);
        for (acked, used_event, interrupts) in [
            (VIRTIO_F_VERSION_1, 5u16, 1),
            (VIRTIO_F_VERSION_1 | VIRTIO_RING_F_EVENT_IDX, 0, 1),
            (VIRTIO_F_VERSION_1 | VIRTIO_RING_F_EVENT_IDX, 5, 0),
        ] {
            let mem = memory();
            let mock = MockSplitQueue::new(&mem, MOCK_QUEUE_SIZE);
            let mut block = Block::new(&image.path, false, eventfd()).unwrap();
            let interrupt = activate(&mut block, &mock, &mem, acked);
            mem.write_obj(
                used_event,
                mock.avail_addr().unchecked_add(used_event_offset),
            )
            .unwrap();
            add_request(&mock, &mem, 0, VIRTIO_BLK_T_IN, 0, &[(DATA, 512)]);
            block.process();
            assert_eq!(status(&mem, 0), VIRTIO_BLK_S_OK);
            assert_eq!(
                interrupt.0.load(Ordering::Relaxed),
                interrupts,
                "acked {acked:#x}, used_event {used_event}"
            );
            if acked & VIRTIO_RING_F_EVENT_IDX != 0 {
                // The driver is asked to notify for the next request.
                let avail_event: u16 = mem
                    .read_obj(mock.used_addr().unchecked_add(avail_event_offset))
                    .unwrap();
                assert_eq!(avail_event, 1);
            }
        }
    }

    #[test]
    fn the_configuration_space_shows_whole_sectors() {
        // Three sectors and a partial one, which the guest doesn't see.
        let image = Image::new(&pattern(3 * 512 + 100));
        let block = Block::new(&image.path, false, eventfd()).unwrap();
        assert_eq!(block.capacity_sectors(), 3);
        let read = |offset, len| {
            let mut data = vec![0xffu8; len];
            block.read_config(offset, &mut data);
            data
        };
        assert_eq!(read(0, 8), 3u64.to_le_bytes());
        assert_eq!(read(0, 4), 3u32.to_le_bytes());
        assert_eq!(read(12, 4), SEG_MAX.to_le_bytes());
        assert_eq!(read(20, 4), 512u32.to_le_bytes());
        assert_eq!(read(8, 4), [0; 4], "no size_max");
        assert_eq!(read(34, 2), [0; 2], "past the held fields");

        let mem = memory();
        let mock = MockSplitQueue::new(&mem, MOCK_QUEUE_SIZE);
        add_request(&mock, &mem, 0, VIRTIO_BLK_T_IN, 3, &[(DATA, 512)]);
        run(&mock, &mem, &image.disk(false));
        assert_eq!(
            status(&mem, 0),
            VIRTIO_BLK_S_IOERR,
            "the tail is not a sector"
        );
    }

    #[test]
    fn features_and_identity() {
        let image = Image::new(&pattern(512));
        let writable = Block::new(&image.path, false, eventfd()).unwrap();
        let read_only = Block::new(&image.path, true, eventfd()).unwrap();
        let common = VIRTIO_F_VERSION_1
            | VIRTIO_RING_F_EVENT_IDX
            | VIRTIO_BLK_F_SEG_MAX
            | VIRTIO_BLK_F_BLK_SIZE
            | VIRTIO_BLK_F_FLUSH;
        assert_eq!(writable.device_features(), common);
        assert_eq!(read_only.device_features(), common | VIRTIO_BLK_F_RO);
        assert_eq!(writable.device_type(), TYPE_BLOCK);
        assert_eq!(writable.queue_max_sizes(), [QUEUE_SIZE]);

        // The transport and the event loop hold it behind a Mutex, across
        // threads.
        fn send<T: Send>(_: &T) {}
        send(&writable);
    }

    #[test]
    fn opening_errors_name_the_image() {
        let missing = std::env::temp_dir().join("husk-block-test-does-not-exist");
        let error = Block::new(&missing, false, eventfd()).err().unwrap();
        assert!(matches!(error, BlockError::Inspect { .. }));
        assert!(error.to_string().contains("husk-block-test-does-not-exist"));

        let directory = std::env::temp_dir();
        let error = Block::new(&directory, true, eventfd()).err().unwrap();
        assert!(matches!(error, BlockError::NotADisk { .. }));
        assert!(error.to_string().contains(&*directory.to_string_lossy()));
    }

    #[test]
    fn activation_needs_the_queue_and_reset_deactivates() {
        let image = Image::new(&pattern(512));
        let mut block = Block::new(&image.path, false, eventfd()).unwrap();
        let error = block
            .activate(Activation {
                mem: memory(),
                queues: Vec::new(),
                interrupt: Arc::new(CountingInterrupt::default()),
                acked_features: VIRTIO_F_VERSION_1,
            })
            .unwrap_err();
        assert!(matches!(
            error,
            ActivateError::QueueCount {
                expected: 1,
                got: 0
            }
        ));

        let mem = memory();
        let mock = MockSplitQueue::new(&mem, MOCK_QUEUE_SIZE);
        let interrupt = activate(&mut block, &mock, &mem, VIRTIO_F_VERSION_1);
        assert!(block.reset());
        assert!(matches!(block.state, State::Inactive));
        add_request(&mock, &mem, 0, VIRTIO_BLK_T_IN, 0, &[(DATA, 512)]);
        block.process();
        assert_eq!(interrupt.0.load(Ordering::Relaxed), 0);
        assert_eq!(
            status(&mem, 0),
            UNTOUCHED,
            "an inactive device does nothing"
        );
    }

    #[test]
    fn requests_submitted_together_all_complete_through_the_workers() {
        let contents = pattern(16 * 512);
        let image = Image::new(&contents);
        let mut block = Block::new(&image.path, false, eventfd()).unwrap();
        let mem = memory();
        let mock = MockSplitQueue::new(&mem, MOCK_QUEUE_SIZE);
        let interrupt = activate(&mut block, &mock, &mem, VIRTIO_F_VERSION_1);
        // Four reads of one sector each, three descriptors per chain.
        for request in 0..4u16 {
            let buffer = DATA + u64::from(request) * 0x1000;
            add_request(
                &mock,
                &mem,
                request * 3,
                VIRTIO_BLK_T_IN,
                u64::from(request),
                &[(buffer, 512)],
            );
        }
        block.process();
        // The last ran on this thread; the others finish on the workers.
        while block.workers.in_flight() > 0 {
            let _ = wait_readable(&block.workers.finished_event);
            block.process_finished();
        }
        assert_eq!(used_count(&mock, &mem), 4);
        for request in 0..4u16 {
            assert_eq!(status(&mem, request * 3), VIRTIO_BLK_S_OK);
            let start = usize::from(request) * 512;
            assert_eq!(
                guest_bytes(&mem, DATA + u64::from(request) * 0x1000, 512),
                contents[start..start + 512]
            );
        }
        assert!(interrupt.0.load(Ordering::Relaxed) >= 1);
    }

    #[test]
    fn reset_waits_for_requests_the_workers_hold() {
        let image = Image::new(&pattern(16 * 512));
        let mut block = Block::new(&image.path, false, eventfd()).unwrap();
        let mem = memory();
        let mock = MockSplitQueue::new(&mem, MOCK_QUEUE_SIZE);
        activate(&mut block, &mock, &mem, VIRTIO_F_VERSION_1);
        for request in 0..4u16 {
            add_request(
                &mock,
                &mem,
                request * 3,
                VIRTIO_BLK_T_IN,
                0,
                &[(DATA + u64::from(request) * 0x1000, 512)],
            );
        }
        block.process();
        assert!(block.reset());
        assert_eq!(block.workers.in_flight(), 0);
        for request in 0..4u16 {
            assert_eq!(
                status(&mem, request * 3),
                VIRTIO_BLK_S_OK,
                "every request finished before the reset returned"
            );
        }
    }

    #[test]
    fn disks_are_independent() {
        let first = Image::new(&pattern(2 * 512));
        let second = Image::new(&[7u8; 4 * 512]);
        let a = Block::new(&first.path, false, eventfd()).unwrap();
        let b = Block::new(&second.path, true, eventfd()).unwrap();
        assert_eq!((a.capacity_sectors(), b.capacity_sectors()), (2, 4));
        assert_ne!(a.device_features(), b.device_features());
    }
}
