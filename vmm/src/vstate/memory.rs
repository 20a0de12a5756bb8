//! Guest RAM: anonymous private host mappings, one per region of the
//! architecture's layout, handed to KVM as memory slots.

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use vm_memory::{
    GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion, MemoryRegionAddress,
};

use crate::arch::x86_64::memory_map::ram_regions;

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
    GuestMemoryMmap::from_ranges(&ranges).map_err(|source| MemoryError::Map { size_mib: size >> 20, source })
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
