//! Local APIC setup: LINT0 delivers the legacy PIC's interrupts (ExtINT) and
//! LINT1 NMIs, as on a PC where the BIOS wires them that way (Intel SDM
//! vol. 3, §11.5.1 "Local Vector Table").

use kvm_bindings::kvm_lapic_state;

const APIC_LVT_LINT0: usize = 0x350;
const APIC_LVT_LINT1: usize = 0x360;
const APIC_MODE_NMI: u32 = 0x4;
const APIC_MODE_EXTINT: u32 = 0x7;

fn read_register(lapic: &kvm_lapic_state, offset: usize) -> u32 {
    let bytes: [u8; 4] = std::array::from_fn(|i| lapic.regs[offset + i] as u8);
    u32::from_le_bytes(bytes)
}

fn write_register(lapic: &mut kvm_lapic_state, offset: usize, value: u32) {
    for (i, byte) in value.to_le_bytes().into_iter().enumerate() {
        lapic.regs[offset + i] = byte as _;
    }
}

/// Sets the delivery mode (bits 10:8) of an LVT entry, keeping the rest.
fn with_delivery_mode(entry: u32, mode: u32) -> u32 {
    (entry & !0x700) | (mode << 8)
}

pub fn set_lint_delivery_modes(lapic: &mut kvm_lapic_state) {
    let lint0 = read_register(lapic, APIC_LVT_LINT0);
    write_register(
        lapic,
        APIC_LVT_LINT0,
        with_delivery_mode(lint0, APIC_MODE_EXTINT),
    );
    let lint1 = read_register(lapic, APIC_LVT_LINT1);
    write_register(
        lapic,
        APIC_LVT_LINT1,
        with_delivery_mode(lint1, APIC_MODE_NMI),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lint_entries_get_extint_and_nmi_and_keep_other_bits() {
        let mut lapic = kvm_lapic_state::default();
        // Masked, with vector bits set.
        write_register(&mut lapic, APIC_LVT_LINT0, 0x0001_0000 | 0x7ff);
        set_lint_delivery_modes(&mut lapic);
        assert_eq!(read_register(&lapic, APIC_LVT_LINT0), 0x0001_07ff);
        assert_eq!(read_register(&lapic, APIC_LVT_LINT1), 0x400);
        assert_eq!(lapic.regs[APIC_LVT_LINT1 + 1] as u8, 0x4);
    }
}
