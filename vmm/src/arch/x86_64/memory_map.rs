//! Guest RAM regions and the e820 map that describes them to the kernel.

use super::layout::{EBDA_START, HIMEM_START, MMIO_GAP_END, MMIO_GAP_START};

/// e820 range types (ACPI spec, "Address Range Types").
pub const E820_RAM: u32 = 1;

/// One range of the e820 memory map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct E820Entry {
    pub addr: u64,
    pub size: u64,
    pub kind: u32,
}

/// The host mappings that back guest RAM of `size` bytes: one region below
/// the MMIO gap, and the rest (if any) above 4 GiB.
pub fn ram_regions(size: u64) -> Vec<(u64, u64)> {
    if size <= MMIO_GAP_START {
        vec![(0, size)]
    } else {
        vec![(0, MMIO_GAP_START), (MMIO_GAP_END, size - MMIO_GAP_START)]
    }
}

/// The highest address + 1 of RAM below the MMIO gap.
pub fn low_ram_end(size: u64) -> u64 {
    size.min(MMIO_GAP_START)
}

/// The e820 map the guest sees. Conventional memory ends at the EBDA (which
/// holds the MP table), the legacy ISA hole [0xa0000, 1 MiB) is not RAM, and
/// neither is the MMIO gap below 4 GiB.
pub fn e820_map(size: u64) -> Vec<E820Entry> {
    let mut map = vec![E820Entry {
        addr: 0,
        size: EBDA_START,
        kind: E820_RAM,
    }];
    let low_end = low_ram_end(size);
    if low_end > HIMEM_START {
        map.push(E820Entry {
            addr: HIMEM_START,
            size: low_end - HIMEM_START,
            kind: E820_RAM,
        });
    }
    if size > MMIO_GAP_START {
        map.push(E820Entry {
            addr: MMIO_GAP_END,
            size: size - MMIO_GAP_START,
            kind: E820_RAM,
        });
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    #[test]
    fn small_guest_is_one_region_below_the_gap() {
        assert_eq!(ram_regions(128 * MIB), vec![(0, 128 * MIB)]);
        assert_eq!(
            e820_map(128 * MIB),
            vec![
                E820Entry {
                    addr: 0,
                    size: 0x9fc00,
                    kind: E820_RAM
                },
                E820Entry {
                    addr: MIB,
                    size: 127 * MIB,
                    kind: E820_RAM
                },
            ]
        );
    }

    #[test]
    fn large_guest_skips_the_mmio_gap() {
        let size = 6 * GIB;
        let regions = ram_regions(size);
        assert_eq!(
            regions,
            vec![(0, MMIO_GAP_START), (4 * GIB, size - MMIO_GAP_START)]
        );
        // All RAM is accounted for, and none of it lands in the gap.
        assert_eq!(regions.iter().map(|r| r.1).sum::<u64>(), size);
        let map = e820_map(size);
        assert_eq!(map.len(), 3);
        for entry in &map {
            let end = entry.addr + entry.size;
            assert!(
                end <= MMIO_GAP_START || entry.addr >= MMIO_GAP_END,
                "{entry:?}"
            );
            assert!(end <= EBDA_START || entry.addr >= HIMEM_START, "{entry:?}");
        }
        assert_eq!(
            map[2],
            E820Entry {
                addr: 4 * GIB,
                size: size - MMIO_GAP_START,
                kind: E820_RAM
            }
        );
    }

    #[test]
    fn guest_exactly_at_the_gap_has_no_high_region() {
        assert_eq!(ram_regions(MMIO_GAP_START).len(), 1);
        assert_eq!(e820_map(MMIO_GAP_START).len(), 2);
    }
}
