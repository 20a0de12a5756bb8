//! Intel MultiProcessor Specification 1.4 tables: how a guest without ACPI
//! learns about its vCPUs, the I/O APIC and the ISA interrupt wiring.
//!
//! Linux (`CONFIG_X86_MPPARSE`, `arch/x86/kernel/mpparse.c`) looks for the MP
//! floating pointer structure on 16-byte boundaries in the first KiB of
//! memory, the last KiB of conventional memory (0x9fc00) and the BIOS area
//! at 0xf0000, then follows it to the configuration table. Both structures
//! are assembled here in host memory, checksummed, and copied into the guest
//! in one write: the floating pointer first, the configuration table right
//! behind it.
//!
//! The guest must not treat the table's memory as free RAM; Linux reserves
//! what it finds, but the e820 map should also leave it out.

use std::mem::size_of;

use vm_memory::{Address, ByteValued, Bytes, GuestAddress, GuestMemory, GuestMemoryError};

use super::layout::{APIC_ADDR, EBDA_START, IOAPIC_ADDR};

/// Where the floating pointer goes by default: the last KiB of conventional
/// memory, one of the ranges Linux scans.
pub const MPTABLE_START: u64 = EBDA_START;

/// The legacy video window; a table must stay out of it, and the table at
/// [`MPTABLE_START`] must end where it begins.
const VIDEO_WINDOW_START: u64 = 0xa0000;
const VIDEO_WINDOW_END: u64 = 0xc0000;

/// Linux scans for the floating pointer in 16-byte steps (MP spec §4.1).
const FLOATING_POINTER_ALIGNMENT: u64 = 16;

/// MP spec version 1.4.
const SPEC_REVISION: u8 = 4;
const OEM_ID: [u8; 8] = *b"HUSK    ";
const PRODUCT_ID: [u8; 12] = *b"MICROVM     ";

const LOCAL_APIC_ADDRESS: u32 = APIC_ADDR;
/// An integrated local APIC, as KVM emulates.
const LOCAL_APIC_VERSION: u8 = 0x14;
const IO_APIC_ADDRESS: u32 = IOAPIC_ADDR;
/// The 82093AA version KVM's I/O APIC reports.
const IO_APIC_VERSION: u8 = 0x11;
/// KVM's I/O APIC has 24 input pins; ISA IRQ n is wired to pin n.
const IO_APIC_PINS: u8 = 24;
/// Destination "all local APICs" for local interrupt entries.
const ALL_LOCAL_APICS: u8 = 0xff;
const ISA_BUS_ID: u8 = 0;
/// Bus type strings are six bytes, padded with spaces (MP spec table 4-8).
const ISA_BUS_TYPE: [u8; 6] = *b"ISA   ";

/// Family 6, model 0xf, stepping 1 in the MP spec's signature layout
/// (stepping in bits 0-3, model in 4-7, family in 8-11). Linux reads the
/// real values from CPUID; this only has to be plausible.
const CPU_SIGNATURE: u32 = (6 << 8) | (0xf << 4) | 1;
/// CPUID.1:EDX bits for an on-chip FPU (0) and local APIC (9).
const CPU_FEATURE_FLAGS: u32 = (1 << 0) | (1 << 9);

// Entry type codes (MP spec table 4-3). Entries must appear in this order.
const ENTRY_PROCESSOR: u8 = 0;
const ENTRY_BUS: u8 = 1;
const ENTRY_IO_APIC: u8 = 2;
const ENTRY_IO_INTERRUPT: u8 = 3;
const ENTRY_LOCAL_INTERRUPT: u8 = 4;

const CPU_ENABLED: u8 = 0x01;
const CPU_BOOTSTRAP_PROCESSOR: u8 = 0x02;
const IO_APIC_ENABLED: u8 = 0x01;

// Interrupt types (MP spec table 4-11).
const INTERRUPT_TYPE_VECTORED: u8 = 0;
const INTERRUPT_TYPE_NMI: u8 = 1;
const INTERRUPT_TYPE_EXTINT: u8 = 3;
/// Polarity and trigger mode both "conform to the bus": edge-triggered and
/// active high for ISA.
const INTERRUPT_FLAGS_CONFORMING: u16 = 0;

/// MP floating pointer structure (MP spec §4.1, figure 4-2).
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default)]
struct FloatingPointer {
    signature: [u8; 4],
    config_table_address: u32,
    /// Length of this structure in 16-byte paragraphs: always 1.
    length: u8,
    spec_revision: u8,
    checksum: u8,
    /// Feature byte 1 is zero when a configuration table is present; byte 2
    /// bit 7 clear selects virtual wire mode rather than an IMCR.
    features: [u8; 5],
}

/// MP configuration table header (MP spec §4.2, figure 4-3).
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default)]
struct ConfigTableHeader {
    signature: [u8; 4],
    base_table_length: u16,
    spec_revision: u8,
    checksum: u8,
    oem_id: [u8; 8],
    product_id: [u8; 12],
    oem_table_address: u32,
    oem_table_size: u16,
    entry_count: u16,
    local_apic_address: u32,
    extended_table_length: u16,
    extended_table_checksum: u8,
    reserved: u8,
}

/// Processor entry (MP spec §4.3.1, figure 4-5).
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default)]
struct ProcessorEntry {
    entry_type: u8,
    local_apic_id: u8,
    local_apic_version: u8,
    cpu_flags: u8,
    cpu_signature: u32,
    feature_flags: u32,
    reserved: [u8; 8],
}

/// Bus entry (MP spec §4.3.2, figure 4-6).
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default)]
struct BusEntry {
    entry_type: u8,
    bus_id: u8,
    bus_type: [u8; 6],
}

/// I/O APIC entry (MP spec §4.3.3, figure 4-7).
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default)]
struct IoApicEntry {
    entry_type: u8,
    io_apic_id: u8,
    io_apic_version: u8,
    flags: u8,
    address: u32,
}

/// I/O interrupt assignment entry (MP spec §4.3.4, figure 4-8).
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default)]
struct IoInterruptEntry {
    entry_type: u8,
    interrupt_type: u8,
    flags: u16,
    source_bus_id: u8,
    source_bus_irq: u8,
    destination_io_apic_id: u8,
    destination_io_apic_pin: u8,
}

/// Local interrupt assignment entry (MP spec §4.3.5, figure 4-9).
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default)]
struct LocalInterruptEntry {
    entry_type: u8,
    interrupt_type: u8,
    flags: u16,
    source_bus_id: u8,
    source_bus_irq: u8,
    destination_local_apic_id: u8,
    destination_local_apic_lint: u8,
}

// SAFETY: packed, so there is no padding, and made only of integers and byte
// arrays, for which every bit pattern is a valid value.
unsafe impl ByteValued for FloatingPointer {}
// SAFETY: packed, so there is no padding, and made only of integers and byte
// arrays, for which every bit pattern is a valid value.
unsafe impl ByteValued for ConfigTableHeader {}
// SAFETY: packed, so there is no padding, and made only of integers and byte
// arrays, for which every bit pattern is a valid value.
unsafe impl ByteValued for ProcessorEntry {}
// SAFETY: packed, so there is no padding, and made only of integers and byte
// arrays, for which every bit pattern is a valid value.
unsafe impl ByteValued for BusEntry {}
// SAFETY: packed, so there is no padding, and made only of integers and byte
// arrays, for which every bit pattern is a valid value.
unsafe impl ByteValued for IoApicEntry {}
// SAFETY: packed, so there is no padding, and made only of integers and byte
// arrays, for which every bit pattern is a valid value.
unsafe impl ByteValued for IoInterruptEntry {}
// SAFETY: packed, so there is no padding, and made only of integers and byte
// arrays, for which every bit pattern is a valid value.
unsafe impl ByteValued for LocalInterruptEntry {}

// The sizes the MP spec gives for each structure.
const _: () = assert!(size_of::<FloatingPointer>() == 16);
const _: () = assert!(size_of::<ConfigTableHeader>() == 44);
const _: () = assert!(size_of::<ProcessorEntry>() == 20);
const _: () = assert!(size_of::<BusEntry>() == 8);
const _: () = assert!(size_of::<IoApicEntry>() == 8);
const _: () = assert!(size_of::<IoInterruptEntry>() == 8);
const _: () = assert!(size_of::<LocalInterruptEntry>() == 8);

/// Bytes of the table that do not depend on the number of vCPUs.
const FIXED_SIZE: usize = size_of::<FloatingPointer>()
    + size_of::<ConfigTableHeader>()
    + size_of::<BusEntry>()
    + size_of::<IoApicEntry>()
    + IO_APIC_PINS as usize * size_of::<IoInterruptEntry>()
    + 2 * size_of::<LocalInterruptEntry>();

/// The most vCPUs whose table fits between [`MPTABLE_START`] and the video
/// window at 0xa0000.
pub const MAX_SUPPORTED_CPUS: u8 = {
    let room = (VIDEO_WINDOW_START - MPTABLE_START) as usize - FIXED_SIZE;
    let cpus = room / size_of::<ProcessorEntry>();
    // APIC IDs are eight bits, 0xff is the broadcast ID, and the I/O APIC
    // takes the ID after the last vCPU.
    assert!(cpus < ALL_LOCAL_APICS as usize);
    cpus as u8
};

/// Errors from writing the MP table.
#[derive(Debug, thiserror::Error)]
pub enum MptableError {
    #[error("an MP table needs at least one vCPU")]
    NoCpus,
    #[error(
        "{requested} vCPUs do not fit in the MP table; at most {MAX_SUPPORTED_CPUS} are supported"
    )]
    TooManyCpus { requested: u8 },
    #[error(
        "MP table start {start:#x} is not on a 16-byte boundary, where the guest looks for it"
    )]
    MisalignedStart { start: u64 },
    #[error("MP table at {start:#x}..{end:#x} overlaps the video window at 0xa0000..0xc0000")]
    OverlapsVideoWindow { start: u64, end: u64 },
    #[error("MP table at {start:#x}..{end:#x} does not lie below 4 GiB")]
    Above4Gib { start: u64, end: u64 },
    #[error("write the MP table to guest memory at {start:#x}")]
    WriteTable {
        start: u64,
        #[source]
        source: GuestMemoryError,
    },
}

/// Writes an MP floating pointer structure at `table_start` and, right
/// behind it, a configuration table describing `num_cpus` vCPUs with local
/// APIC IDs 0 to `num_cpus - 1` (vCPU 0 the bootstrap processor), an I/O APIC
/// with ID `num_cpus` at 0xfec00000, and ISA IRQs 0-23 wired to its pins 0-23.
pub fn setup_mptable<M: GuestMemory>(
    mem: &M,
    table_start: GuestAddress,
    num_cpus: u8,
) -> Result<(), MptableError> {
    if num_cpus == 0 {
        return Err(MptableError::NoCpus);
    }
    if num_cpus > MAX_SUPPORTED_CPUS {
        return Err(MptableError::TooManyCpus {
            requested: num_cpus,
        });
    }

    let start = table_start.raw_value();
    if start % FLOATING_POINTER_ALIGNMENT != 0 {
        return Err(MptableError::MisalignedStart { start });
    }
    let end = start.saturating_add(table_size(num_cpus) as u64);
    if start < VIDEO_WINDOW_END && end > VIDEO_WINDOW_START {
        return Err(MptableError::OverlapsVideoWindow { start, end });
    }
    // Every address in the structures is 32 bits wide.
    if end > 1 << 32 {
        return Err(MptableError::Above4Gib { start, end });
    }

    let config_table_address = start + size_of::<FloatingPointer>() as u64;
    let floating_pointer =
        floating_pointer(u32::try_from(config_table_address).expect("checked to lie below 4 GiB"));
    let mut table = floating_pointer.as_slice().to_vec();
    table.extend_from_slice(&config_table(num_cpus));
    debug_assert_eq!(table.len(), table_size(num_cpus));

    mem.write_slice(&table, table_start)
        .map_err(|source| MptableError::WriteTable { start, source })
}

/// Bytes the floating pointer and configuration table take for `num_cpus`.
fn table_size(num_cpus: u8) -> usize {
    FIXED_SIZE + usize::from(num_cpus) * size_of::<ProcessorEntry>()
}

fn floating_pointer(config_table_address: u32) -> FloatingPointer {
    let mut floating_pointer = FloatingPointer {
        signature: *b"_MP_",
        config_table_address,
        length: 1,
        spec_revision: SPEC_REVISION,
        ..Default::default()
    };
    floating_pointer.checksum = checksum(floating_pointer.as_slice());
    floating_pointer
}

/// The configuration table header followed by its entries, in the order the
/// MP spec requires.
fn config_table(num_cpus: u8) -> Vec<u8> {
    let mut entries = EntryList::default();

    for cpu in 0..num_cpus {
        let bootstrap = if cpu == 0 { CPU_BOOTSTRAP_PROCESSOR } else { 0 };
        entries.push(ProcessorEntry {
            entry_type: ENTRY_PROCESSOR,
            local_apic_id: cpu,
            local_apic_version: LOCAL_APIC_VERSION,
            cpu_flags: CPU_ENABLED | bootstrap,
            cpu_signature: CPU_SIGNATURE,
            feature_flags: CPU_FEATURE_FLAGS,
            ..Default::default()
        });
    }

    entries.push(BusEntry {
        entry_type: ENTRY_BUS,
        bus_id: ISA_BUS_ID,
        bus_type: ISA_BUS_TYPE,
    });

    let io_apic_id = num_cpus;
    entries.push(IoApicEntry {
        entry_type: ENTRY_IO_APIC,
        io_apic_id,
        io_apic_version: IO_APIC_VERSION,
        flags: IO_APIC_ENABLED,
        address: IO_APIC_ADDRESS,
    });

    for irq in 0..IO_APIC_PINS {
        entries.push(IoInterruptEntry {
            entry_type: ENTRY_IO_INTERRUPT,
            interrupt_type: INTERRUPT_TYPE_VECTORED,
            flags: INTERRUPT_FLAGS_CONFORMING,
            source_bus_id: ISA_BUS_ID,
            source_bus_irq: irq,
            destination_io_apic_id: io_apic_id,
            destination_io_apic_pin: irq,
        });
    }

    // Virtual wire mode: the 8259 PIC reaches the CPUs through LINT0, and
    // LINT1 carries NMIs.
    for (interrupt_type, lint) in [(INTERRUPT_TYPE_EXTINT, 0), (INTERRUPT_TYPE_NMI, 1)] {
        entries.push(LocalInterruptEntry {
            entry_type: ENTRY_LOCAL_INTERRUPT,
            interrupt_type,
            flags: INTERRUPT_FLAGS_CONFORMING,
            source_bus_id: ISA_BUS_ID,
            source_bus_irq: 0,
            destination_local_apic_id: ALL_LOCAL_APICS,
            destination_local_apic_lint: lint,
        });
    }

    let length = size_of::<ConfigTableHeader>() + entries.bytes.len();
    let mut header = ConfigTableHeader {
        signature: *b"PCMP",
        base_table_length: u16::try_from(length).expect("bounded by MAX_SUPPORTED_CPUS"),
        spec_revision: SPEC_REVISION,
        oem_id: OEM_ID,
        product_id: PRODUCT_ID,
        entry_count: entries.count,
        local_apic_address: LOCAL_APIC_ADDRESS,
        ..Default::default()
    };
    let mut table = header.as_slice().to_vec();
    table.extend_from_slice(&entries.bytes);
    header.checksum = checksum(&table);
    table[..size_of::<ConfigTableHeader>()].copy_from_slice(header.as_slice());
    table
}

/// Configuration table entries laid out back to back.
#[derive(Default)]
struct EntryList {
    bytes: Vec<u8>,
    count: u16,
}

impl EntryList {
    fn push<T: ByteValued>(&mut self, entry: T) {
        self.bytes.extend_from_slice(entry.as_slice());
        self.count += 1;
    }
}

/// The byte that makes `bytes` plus itself sum to zero modulo 256.
fn checksum(bytes: &[u8]) -> u8 {
    let sum = bytes.iter().fold(0u8, |sum, &byte| sum.wrapping_add(byte));
    0u8.wrapping_sub(sum)
}

#[cfg(test)]
mod tests {
    use vm_memory::GuestMemoryMmap;

    use super::*;

    /// The first MiB of guest memory, where every MP table placement lies.
    fn guest_memory() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap()
    }

    fn byte_sum(mem: &GuestMemoryMmap, start: u64, len: usize) -> u8 {
        let mut bytes = vec![0; len];
        mem.read_slice(&mut bytes, GuestAddress(start)).unwrap();
        bytes.iter().fold(0u8, |sum, &byte| sum.wrapping_add(byte))
    }

    fn read_floating_pointer(mem: &GuestMemoryMmap, start: u64) -> FloatingPointer {
        mem.read_obj(GuestAddress(start)).unwrap()
    }

    fn read_header(mem: &GuestMemoryMmap, floating_pointer: &FloatingPointer) -> ConfigTableHeader {
        let address = floating_pointer.config_table_address;
        mem.read_obj(GuestAddress(u64::from(address))).unwrap()
    }

    #[test]
    fn floating_pointer_is_valid_and_points_at_the_table() {
        let mem = guest_memory();
        setup_mptable(&mem, GuestAddress(MPTABLE_START), 4).unwrap();

        let floating_pointer = read_floating_pointer(&mem, MPTABLE_START);
        let FloatingPointer {
            signature,
            config_table_address,
            length,
            spec_revision,
            features,
            ..
        } = floating_pointer;
        assert_eq!(&signature, b"_MP_");
        assert_eq!(length, 1);
        assert_eq!(spec_revision, 4);
        assert_eq!(features, [0; 5]);
        assert_eq!(u64::from(config_table_address), MPTABLE_START + 16);
        assert_eq!(byte_sum(&mem, MPTABLE_START, 16), 0);
    }

    #[test]
    fn config_table_header_is_valid() {
        let mem = guest_memory();
        let num_cpus = 4;
        setup_mptable(&mem, GuestAddress(MPTABLE_START), num_cpus).unwrap();

        let floating_pointer = read_floating_pointer(&mem, MPTABLE_START);
        let header = read_header(&mem, &floating_pointer);
        let ConfigTableHeader {
            signature,
            base_table_length,
            spec_revision,
            oem_id,
            product_id,
            entry_count,
            local_apic_address,
            extended_table_length,
            ..
        } = header;
        assert_eq!(&signature, b"PCMP");
        assert_eq!(spec_revision, 4);
        assert_eq!(oem_id, OEM_ID);
        assert_eq!(product_id, PRODUCT_ID);
        assert_eq!(local_apic_address, 0xfee0_0000);
        assert_eq!(extended_table_length, 0);
        assert_eq!(
            usize::from(entry_count),
            usize::from(num_cpus) + 1 + 1 + 24 + 2
        );
        assert_eq!(
            usize::from(base_table_length),
            table_size(num_cpus) - size_of::<FloatingPointer>()
        );
        let address = floating_pointer.config_table_address;
        assert_eq!(
            byte_sum(&mem, u64::from(address), usize::from(base_table_length)),
            0
        );
    }

    /// Walks the entries as Linux's `smp_read_mpc()` does and checks each.
    #[test]
    fn entries_describe_cpus_io_apic_and_isa_interrupts() {
        let mem = guest_memory();
        let num_cpus = 3;
        setup_mptable(&mem, GuestAddress(MPTABLE_START), num_cpus).unwrap();
        let floating_pointer = read_floating_pointer(&mem, MPTABLE_START);
        let header = read_header(&mem, &floating_pointer);

        let table_start = u64::from(floating_pointer.config_table_address);
        let table_end = table_start + u64::from(header.base_table_length);
        let mut address = table_start + size_of::<ConfigTableHeader>() as u64;
        let mut types = Vec::new();
        let mut apic_ids = Vec::new();
        let mut irq_pins = Vec::new();
        let mut lints = Vec::new();
        while address < table_end {
            let entry_type: u8 = mem.read_obj(GuestAddress(address)).unwrap();
            types.push(entry_type);
            address += match entry_type {
                ENTRY_PROCESSOR => {
                    let entry: ProcessorEntry = mem.read_obj(GuestAddress(address)).unwrap();
                    let bootstrap = entry.local_apic_id == 0;
                    let expected_flags = CPU_ENABLED
                        | if bootstrap {
                            CPU_BOOTSTRAP_PROCESSOR
                        } else {
                            0
                        };
                    assert_eq!(entry.cpu_flags, expected_flags);
                    assert_eq!(entry.local_apic_version, 0x14);
                    apic_ids.push(entry.local_apic_id);
                    size_of::<ProcessorEntry>()
                }
                ENTRY_BUS => {
                    let entry: BusEntry = mem.read_obj(GuestAddress(address)).unwrap();
                    assert_eq!(entry.bus_id, ISA_BUS_ID);
                    assert_eq!(&entry.bus_type, b"ISA   ");
                    size_of::<BusEntry>()
                }
                ENTRY_IO_APIC => {
                    let entry: IoApicEntry = mem.read_obj(GuestAddress(address)).unwrap();
                    assert_eq!(entry.io_apic_id, num_cpus);
                    assert_eq!(entry.io_apic_version, 0x11);
                    assert_eq!(entry.flags, IO_APIC_ENABLED);
                    assert_eq!({ entry.address }, 0xfec0_0000);
                    size_of::<IoApicEntry>()
                }
                ENTRY_IO_INTERRUPT => {
                    let entry: IoInterruptEntry = mem.read_obj(GuestAddress(address)).unwrap();
                    assert_eq!(entry.interrupt_type, INTERRUPT_TYPE_VECTORED);
                    assert_eq!(entry.source_bus_id, ISA_BUS_ID);
                    assert_eq!(entry.destination_io_apic_id, num_cpus);
                    assert_eq!(entry.source_bus_irq, entry.destination_io_apic_pin);
                    irq_pins.push(entry.destination_io_apic_pin);
                    size_of::<IoInterruptEntry>()
                }
                ENTRY_LOCAL_INTERRUPT => {
                    let entry: LocalInterruptEntry = mem.read_obj(GuestAddress(address)).unwrap();
                    assert_eq!(entry.destination_local_apic_id, 0xff);
                    lints.push((entry.interrupt_type, entry.destination_local_apic_lint));
                    size_of::<LocalInterruptEntry>()
                }
                other => panic!("unknown MP table entry type {other}"),
            } as u64;
        }

        assert_eq!(address, table_end, "entries fill the table exactly");
        assert!(types.is_sorted(), "entries are grouped by type: {types:?}");
        assert_eq!(types.len(), usize::from(header.entry_count));
        assert_eq!(apic_ids, [0, 1, 2]);
        assert_eq!(irq_pins, (0..24).collect::<Vec<u8>>());
        assert_eq!(lints, [(INTERRUPT_TYPE_EXTINT, 0), (INTERRUPT_TYPE_NMI, 1)]);
        assert_eq!(types.iter().filter(|&&t| t == ENTRY_BUS).count(), 1);
        assert_eq!(types.iter().filter(|&&t| t == ENTRY_IO_APIC).count(), 1);
    }

    #[test]
    fn every_supported_cpu_count_stays_below_the_video_window() {
        assert_eq!(MAX_SUPPORTED_CPUS, 37);
        for num_cpus in 1..=MAX_SUPPORTED_CPUS {
            let mem = guest_memory();
            setup_mptable(&mem, GuestAddress(MPTABLE_START), num_cpus).unwrap();
            assert!(MPTABLE_START + table_size(num_cpus) as u64 <= 0xa0000);

            let floating_pointer = read_floating_pointer(&mem, MPTABLE_START);
            let header = read_header(&mem, &floating_pointer);
            let end = u64::from(floating_pointer.config_table_address)
                + u64::from(header.base_table_length);
            assert!(end <= 0xa0000, "{num_cpus} vCPUs: table ends at {end:#x}");
        }
    }

    #[test]
    fn zero_cpus_is_an_error() {
        let mem = guest_memory();
        let error = setup_mptable(&mem, GuestAddress(MPTABLE_START), 0).unwrap_err();
        assert!(matches!(error, MptableError::NoCpus));
    }

    #[test]
    fn too_many_cpus_is_an_error() {
        let mem = guest_memory();
        let error =
            setup_mptable(&mem, GuestAddress(MPTABLE_START), MAX_SUPPORTED_CPUS + 1).unwrap_err();
        assert!(
            matches!(error, MptableError::TooManyCpus { requested } if requested == MAX_SUPPORTED_CPUS + 1)
        );
        assert!(setup_mptable(&mem, GuestAddress(MPTABLE_START), u8::MAX).is_err());
    }

    #[test]
    fn placement_is_checked() {
        let mem = guest_memory();
        assert!(matches!(
            setup_mptable(&mem, GuestAddress(MPTABLE_START + 8), 1),
            Err(MptableError::MisalignedStart { .. })
        ));
        assert!(matches!(
            setup_mptable(&mem, GuestAddress(0x9ff00), 1),
            Err(MptableError::OverlapsVideoWindow { .. })
        ));
        assert!(matches!(
            setup_mptable(&mem, GuestAddress(0xffff_fff0), 1),
            Err(MptableError::Above4Gib { .. })
        ));
        assert!(matches!(
            setup_mptable(&mem, GuestAddress(0x20_0000), 1),
            Err(MptableError::WriteTable { .. })
        ));
    }

    #[test]
    fn table_can_live_in_the_bios_area() {
        let mem = guest_memory();
        setup_mptable(&mem, GuestAddress(0xf0000), 2).unwrap();
        let floating_pointer = read_floating_pointer(&mem, 0xf0000);
        assert_eq!(u64::from(floating_pointer.config_table_address), 0xf0010);
        assert_eq!(byte_sum(&mem, 0xf0000, 16), 0);
    }
}
