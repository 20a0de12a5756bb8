//! The boot GDT and the segment registers derived from it.
//!
//! A descriptor's layout is in the Intel SDM vol. 3, §3.4.5 "Segment
//! Descriptors". KVM takes the segment registers already "loaded"
//! (`kvm_segment`), so the GDT in guest memory only has to agree with them
//! for the moment the kernel reloads its own.

use kvm_bindings::kvm_segment;

/// Descriptor flags (type, S, DPL, P in the low byte; AVL, L, D/B, G in the
/// high nibble), in the 16-bit form `flags << 8 | type` used below.
/// 64-bit code: present, ring 0, execute/read, accessed, L=1, G=1.
pub const CODE64_FLAGS: u16 = 0xa09b;
/// 32-bit code: present, ring 0, execute/read, accessed, D=1, G=1.
pub const CODE32_FLAGS: u16 = 0xc09b;
/// Data: present, ring 0, read/write, accessed, B=1, G=1.
pub const DATA_FLAGS: u16 = 0xc093;
/// 64-bit / 32-bit busy TSS: present, type 0xb.
pub const TSS64_FLAGS: u16 = 0x808b;
pub const TSS32_FLAGS: u16 = 0x008b;

/// GDT slots; selectors are `index * 8`.
pub const CODE_INDEX: u16 = 1;
pub const DATA_INDEX: u16 = 2;
pub const TSS_INDEX: u16 = 3;

/// Encodes one 8-byte segment descriptor.
pub fn descriptor(flags: u16, base: u32, limit: u32) -> u64 {
    let base = u64::from(base);
    let limit = u64::from(limit);
    let flags = u64::from(flags);
    ((base & 0xff00_0000) << (56 - 24))
        | ((flags & 0xf0ff) << 40)
        | ((limit & 0x000f_0000) << (48 - 16))
        | ((base & 0x00ff_ffff) << 16)
        | (limit & 0x0000_ffff)
}

fn base(entry: u64) -> u64 {
    (((entry >> 56) & 0xff) << 24) | ((entry >> 16) & 0x00ff_ffff)
}

/// The limit in bytes, scaled by the granularity bit.
fn limit(entry: u64) -> u32 {
    let raw = (((entry >> 48) & 0x0f) << 16) | (entry & 0xffff);
    let granular = (entry >> 55) & 1 == 1;
    if granular {
        ((raw << 12) | 0xfff) as u32
    } else {
        raw as u32
    }
}

/// The register state a `mov` of `index * 8` into a segment register would
/// load from `entry`.
pub fn segment_from_descriptor(entry: u64, index: u16) -> kvm_segment {
    kvm_segment {
        base: base(entry),
        limit: limit(entry),
        selector: index * 8,
        type_: ((entry >> 40) & 0xf) as u8,
        present: ((entry >> 47) & 1) as u8,
        dpl: ((entry >> 45) & 0x3) as u8,
        db: ((entry >> 54) & 1) as u8,
        s: ((entry >> 44) & 1) as u8,
        l: ((entry >> 53) & 1) as u8,
        g: ((entry >> 55) & 1) as u8,
        avl: ((entry >> 52) & 1) as u8,
        unusable: u8::from((entry >> 47) & 1 == 0),
        padding: 0,
    }
}

/// A boot GDT: null, code, data, TSS, for either a 64-bit or a 32-bit entry.
pub fn boot_gdt(long_mode: bool) -> [u64; 4] {
    if long_mode {
        [
            0,
            descriptor(CODE64_FLAGS, 0, 0xfffff),
            descriptor(DATA_FLAGS, 0, 0xfffff),
            descriptor(TSS64_FLAGS, 0, 0xfffff),
        ]
    } else {
        [
            0,
            descriptor(CODE32_FLAGS, 0, 0xfffff),
            descriptor(DATA_FLAGS, 0, 0xfffff),
            descriptor(TSS32_FLAGS, 0, 0x67),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_round_trips_base_limit_and_flags() {
        let entry = descriptor(0xc09b, 0x1234_5678, 0xabcde);
        let seg = segment_from_descriptor(entry, 1);
        assert_eq!(seg.base, 0x1234_5678);
        // Granular: 0xabcde pages of 4 KiB.
        assert_eq!(seg.limit, 0xabcd_efff);
        assert_eq!(seg.selector, 8);
        assert_eq!(seg.type_, 0xb);
        assert_eq!(
            (seg.present, seg.dpl, seg.s, seg.db, seg.l, seg.g),
            (1, 0, 1, 1, 0, 1)
        );
        assert_eq!(seg.unusable, 0);
    }

    #[test]
    fn long_mode_code_segment_has_l_set_and_db_clear() {
        let gdt = boot_gdt(true);
        let code = segment_from_descriptor(gdt[CODE_INDEX as usize], CODE_INDEX);
        assert_eq!((code.l, code.db, code.g), (1, 0, 1));
        assert_eq!(code.limit, 0xffff_ffff);
        let data = segment_from_descriptor(gdt[DATA_INDEX as usize], DATA_INDEX);
        assert_eq!(
            (data.type_, data.s, data.db, data.selector),
            (3, 1, 1, 0x10)
        );
        let tss = segment_from_descriptor(gdt[TSS_INDEX as usize], TSS_INDEX);
        assert_eq!((tss.type_, tss.s, tss.selector), (0xb, 0, 0x18));
    }

    #[test]
    fn protected_mode_gdt_is_flat_32_bit() {
        let gdt = boot_gdt(false);
        assert_eq!(gdt[0], 0);
        let code = segment_from_descriptor(gdt[1], 1);
        assert_eq!(
            (code.l, code.db, code.base, code.limit),
            (0, 1, 0, 0xffff_ffff)
        );
        let tss = segment_from_descriptor(gdt[3], 3);
        assert_eq!((tss.limit, tss.g), (0x67, 0));
    }

    #[test]
    fn null_descriptor_is_unusable() {
        assert_eq!(segment_from_descriptor(0, 0).unusable, 1);
    }
}
