//! Guest RAM: anonymous private host mappings, one per region of the
//! architecture's layout, handed to KVM as memory slots.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use vm_memory::{
    GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion, MemoryRegionAddress,
};

use crate::arch::x86_64::memory_map::ram_regions;

const PAGE_SIZE: u64 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("map {size_mib} MiB of guest memory")]
    Map {
        size_mib: u64,
        #[source]
        source: vm_memory::mmap::FromRangesError,
    },
    #[error("find the host address of guest memory slot {slot}")]
    HostAddress {
        slot: u32,
        #[source]
        source: vm_memory::GuestMemoryError,
    },
    #[error("map {len} bytes of a file over guest memory at {addr:#x}")]
    MapFile {
        addr: u64,
        len: u64,
        #[source]
        source: io::Error,
    },
    #[error("register guest memory slot {slot} with KVM")]
    SetUserMemoryRegion {
        slot: u32,
        #[source]
        source: kvm_ioctls::Error,
    },
}

/// Maps `size` bytes of guest RAM (not yet touched: the host commits pages as
/// the guest first writes them).
pub fn create_guest_memory(size: u64) -> Result<GuestMemoryMmap, MemoryError> {
    let ranges: Vec<(GuestAddress, usize)> = ram_regions(size)
        .into_iter()
        .map(|(start, len)| (GuestAddress(start), len as usize))
        .collect();
    GuestMemoryMmap::from_ranges(&ranges).map_err(|source| MemoryError::Map {
        size_mib: size >> 20,
        source,
    })
}

/// Makes every region of `mem` a KVM memory slot.
pub fn register_guest_memory(vm: &VmFd, mem: &GuestMemoryMmap) -> Result<(), MemoryError> {
    for (slot, region) in mem.iter().enumerate() {
        let slot = slot as u32;
        let host_address = region
            .get_host_address(MemoryRegionAddress(0))
            .map_err(|source| MemoryError::HostAddress { slot, source })?;
        let memory_region = kvm_userspace_memory_region {
            slot,
            guest_phys_addr: region.start_addr().0,
            memory_size: region.len(),
            userspace_addr: host_address as u64,
            flags: 0,
        };
        // SAFETY: the host range [userspace_addr, +memory_size) is a live
        // mapping owned by `mem`, which the caller keeps alive for as long
        // as the VM (the `Vmm` holds both and drops the VM's vCPUs first);
        // slots don't overlap because the layout's regions don't.
        unsafe { vm.set_user_memory_region(memory_region) }
            .map_err(|source| MemoryError::SetUserMemoryRegion { slot, source })?;
    }
    Ok(())
}

/// Maps `len` bytes of `file` (from its start) over guest RAM at the
/// page-aligned `addr`, copy-on-write: nothing is copied or zeroed up front,
/// the guest faults pages in from the host page cache as it reads them, and
/// every VM booting the same file shares those pages until it writes. Bytes
/// past the end of the file in the last page read as zero (mmap(2)).
pub fn map_file_into_guest(
    mem: &GuestMemoryMmap,
    addr: GuestAddress,
    file: &File,
    len: u64,
) -> Result<(), MemoryError> {
    let map_error = |source| MemoryError::MapFile {
        addr: addr.0,
        len,
        source,
    };
    if addr.0 % PAGE_SIZE != 0 || len == 0 {
        return Err(map_error(io::Error::from(io::ErrorKind::InvalidInput)));
    }
    let mapped_len = len.div_ceil(PAGE_SIZE) * PAGE_SIZE;
    // The whole range must lie inside one region, so the host range is one
    // contiguous piece of our own mapping.
    let region = mem
        .find_region(addr)
        .filter(|region| addr.0 + mapped_len <= region.start_addr().0 + region.len())
        .ok_or_else(|| map_error(io::Error::from(io::ErrorKind::InvalidInput)))?;
    let host = region
        .get_host_address(MemoryRegionAddress(addr.0 - region.start_addr().0))
        .map_err(|_| map_error(io::Error::from(io::ErrorKind::InvalidInput)))?;
    // SAFETY: [host, host + mapped_len) lies inside a guest RAM mapping that
    // `mem` owns (checked above), so MAP_FIXED replaces only our own pages,
    // and the replacement keeps the range mapped read-write at the same
    // address, which is all `mem` and KVM rely on. No vCPU runs yet, so no
    // one is accessing those pages while they are swapped.
    let mapped = unsafe {
        libc::mmap(
            host.cast(),
            mapped_len as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_FIXED,
            file.as_raw_fd(),
            0,
        )
    };
    if mapped == libc::MAP_FAILED {
        return Err(map_error(io::Error::last_os_error()));
    }
    Ok(())
}

/// Which way a vectored transfer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    /// File → guest memory (preadv).
    FileToGuest,
    /// Guest memory → file (pwritev).
    GuestToFile,
}

/// Most iovecs one preadv/pwritev takes (Linux's UIO_MAXIOV).
const MAX_IOVECS: usize = 1024;

/// Moves the bytes of the guest ranges `ranges`, in order, from or to `file`
/// at `offset`, with as few preadv/pwritev calls as the kernel allows: one,
/// normally, however many ranges there are. Every range must lie in guest
/// memory (checked); running out of file before the end is an error.
pub fn transfer_file_guest(
    file: &File,
    offset: u64,
    mem: &GuestMemoryMmap,
    ranges: &[(GuestAddress, usize)],
    direction: Transfer,
) -> io::Result<()> {
    let mut iovecs: Vec<libc::iovec> = Vec::with_capacity(ranges.len());
    for &(addr, len) in ranges {
        for slice in mem.get_slices(addr, len) {
            let slice = slice.map_err(io::Error::other)?;
            iovecs.push(libc::iovec {
                iov_base: slice.ptr_guard_mut().as_ptr().cast(),
                iov_len: slice.len(),
            });
        }
    }
    let mut offset = offset;
    let mut pending = &mut iovecs[..];
    while !pending.is_empty() {
        let count = pending.len().min(MAX_IOVECS);
        let file_offset = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: every iovec points into a guest RAM mapping that `mem`
        // keeps alive for the whole call, with the length get_slices
        // checked; the kernel reads or writes only those bytes. The guest
        // may touch the same memory meanwhile, as it may during any DMA.
        let done = unsafe {
            match direction {
                Transfer::FileToGuest => libc::preadv(
                    file.as_raw_fd(),
                    pending.as_ptr(),
                    count as i32,
                    file_offset,
                ),
                Transfer::GuestToFile => libc::pwritev(
                    file.as_raw_fd(),
                    pending.as_ptr(),
                    count as i32,
                    file_offset,
                ),
            }
        };
        if done < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        if done == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        offset += done as u64;
        // Drop what was transferred: whole iovecs, then part of the next.
        let mut left = done as usize;
        while let Some(first) = pending.first_mut() {
            if left < first.iov_len {
                // SAFETY: advancing within the same iovec's buffer.
                first.iov_base = unsafe { first.iov_base.cast::<u8>().add(left) }.cast();
                first.iov_len -= left;
                break;
            }
            left -= first.iov_len;
            pending = &mut pending[1..];
        }
    }
    Ok(())
}

/// Host address ranges backing guest RAM, for telling guest pages apart from
/// the VMM's own in memory accounting.
pub fn host_ranges(mem: &GuestMemoryMmap) -> Vec<(u64, u64)> {
    mem.iter()
        .filter_map(|region| {
            let start = region.get_host_address(MemoryRegionAddress(0)).ok()? as u64;
            Some((start, start + region.len()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use vm_memory::Bytes;

    use super::*;

    fn temp_file(bytes: &[u8]) -> File {
        let path = std::env::temp_dir().join(format!("husk-vmm-map-test-{}", std::process::id()));
        File::create(&path).unwrap().write_all(bytes).unwrap();
        let file = File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        file
    }

    #[test]
    fn mapped_file_reads_back_with_a_zero_tail_and_neighbours_untouched() {
        let mem = create_guest_memory(1 << 20).unwrap();
        mem.write_obj(0xaau8, GuestAddress(0x1fff)).unwrap();
        mem.write_obj(0xbbu8, GuestAddress(0x4000)).unwrap();
        let contents: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        map_file_into_guest(
            &mem,
            GuestAddress(0x2000),
            &temp_file(&contents),
            contents.len() as u64,
        )
        .unwrap();

        let mut back = vec![0u8; contents.len()];
        mem.read_slice(&mut back, GuestAddress(0x2000)).unwrap();
        assert_eq!(back, contents);
        let tail: u8 = mem
            .read_obj(GuestAddress(0x2000 + contents.len() as u64))
            .unwrap();
        assert_eq!(tail, 0, "past the end of the file reads as zero");
        assert_eq!(mem.read_obj::<u8>(GuestAddress(0x1fff)).unwrap(), 0xaa);
        assert_eq!(mem.read_obj::<u8>(GuestAddress(0x4000)).unwrap(), 0xbb);

        // Copy-on-write: the guest may write over it.
        mem.write_obj(0x55u8, GuestAddress(0x2000)).unwrap();
        assert_eq!(mem.read_obj::<u8>(GuestAddress(0x2000)).unwrap(), 0x55);
    }

    #[test]
    fn vectored_transfers_move_every_range_in_order_and_stop_at_end_of_file() {
        let mem = create_guest_memory(1 << 20).unwrap();
        let path = std::env::temp_dir().join(format!("husk-vmm-vectored-{}", std::process::id()));
        let contents: Vec<u8> = (0..12288u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(&path, &contents).unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let ranges = [
            (GuestAddress(0x1000), 100),
            (GuestAddress(0x8000), 4000),
            (GuestAddress(0x3000), 96),
        ];
        transfer_file_guest(&file, 512, &mem, &ranges, Transfer::FileToGuest).unwrap();
        let mut got = Vec::new();
        for (addr, len) in ranges {
            let mut part = vec![0u8; len];
            mem.read_slice(&mut part, addr).unwrap();
            got.extend(part);
        }
        assert_eq!(got, contents[512..512 + 4196]);

        mem.write_slice(&[7u8; 100], GuestAddress(0x1000)).unwrap();
        transfer_file_guest(&file, 0, &mem, &ranges[..1], Transfer::GuestToFile).unwrap();
        assert_eq!(std::fs::read(&path).unwrap()[..100], [7u8; 100]);

        let past_end = [(GuestAddress(0x1000), 8192)];
        let err =
            transfer_file_guest(&file, 8192, &mem, &past_end, Transfer::FileToGuest).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let outside = [(GuestAddress((1 << 20) - 10), 100)];
        assert!(transfer_file_guest(&file, 0, &mem, &outside, Transfer::FileToGuest).is_err());
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn mapping_must_be_page_aligned_and_inside_guest_memory() {
        let mem = create_guest_memory(1 << 20).unwrap();
        let file = temp_file(b"data");
        assert!(map_file_into_guest(&mem, GuestAddress(0x2001), &file, 4).is_err());
        assert!(
            map_file_into_guest(&mem, GuestAddress((1 << 20) - 0x1000), &file, 0x2000).is_err()
        );
        assert!(map_file_into_guest(&mem, GuestAddress(0x2000), &file, 0).is_err());
    }
}
