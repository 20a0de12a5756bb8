//! The vCPU state at the kernel's first instruction, per entry protocol:
//!
//! - PVH (xen/include/public/arch-x86/hvm/start_info.h, "PVH boot"): 32-bit
//!   protected mode, paging off, flat segments, `ebx` = `hvm_start_info`.
//! - Linux 64-bit boot protocol (Documentation/arch/x86/boot.rst, "64-bit
//!   BOOT PROTOCOL"): long mode with an identity mapping that covers the
//!   kernel, the zero page and the command line, `rsi` = zero page.

use kvm_bindings::{kvm_fpu, kvm_regs, kvm_sregs};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::gdt::{self, CODE_INDEX, DATA_INDEX, TSS_INDEX};
use super::layout::{
    BOOT_GDT_START, BOOT_IDT_START, BOOT_STACK_POINTER, PDE_START, PDPTE_START, PML4_START,
    PVH_INFO_START, ZERO_PAGE_START,
};

/// How the kernel is entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootProtocol {
    /// The ELF note XEN_ELFNOTE_PHYS32_ENTRY of an uncompressed vmlinux.
    Pvh,
    /// The 64-bit entry of a bzImage (or of an ELF vmlinux without a PVH
    /// note), with a zero page.
    Linux64,
}

/// Where and how the boot vCPU starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryPoint {
    pub addr: GuestAddress,
    pub protocol: BootProtocol,
}

#[derive(Debug, thiserror::Error)]
pub enum RegsError {
    #[error("write the boot GDT to guest memory")]
    WriteGdt(#[source] vm_memory::GuestMemoryError),
    #[error("write the boot IDT to guest memory")]
    WriteIdt(#[source] vm_memory::GuestMemoryError),
    #[error("write the boot page tables to guest memory")]
    WritePageTables(#[source] vm_memory::GuestMemoryError),
}

// Control register and EFER bits (Intel SDM vol. 3, §2.5 and §2.2.1).
const X86_CR0_PE: u64 = 1 << 0;
const X86_CR0_ET: u64 = 1 << 4;
const X86_CR0_PG: u64 = 1 << 31;
const X86_CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;

/// RFLAGS bit 1 is reserved and always reads as one.
const RFLAGS_RESERVED: u64 = 1 << 1;

/// Page-table entry bits: present, writable, and (in a PD) 2 MiB page.
const PTE_PRESENT_WRITABLE: u64 = 0x3;
const PDE_HUGE_PAGE: u64 = 0x80;

/// Writes the GDT and an empty IDT the boot vCPU's segment state refers to.
pub fn write_descriptor_tables(
    mem: &GuestMemoryMmap,
    protocol: BootProtocol,
) -> Result<(), RegsError> {
    let gdt = gdt::boot_gdt(protocol == BootProtocol::Linux64);
    for (index, entry) in gdt.iter().enumerate() {
        mem.write_obj(*entry, GuestAddress(BOOT_GDT_START + 8 * index as u64))
            .map_err(RegsError::WriteGdt)?;
    }
    mem.write_obj(0u64, GuestAddress(BOOT_IDT_START))
        .map_err(RegsError::WriteIdt)
}

/// Identity-maps the first GiB with 2 MiB pages: PML4[0] → PDPT[0] → 512 PDEs.
/// That covers the kernel image, the zero page and the command line; the
/// kernel builds its own tables right after entry.
pub fn write_identity_page_tables(mem: &GuestMemoryMmap) -> Result<(), RegsError> {
    mem.write_obj(PDPTE_START | PTE_PRESENT_WRITABLE, GuestAddress(PML4_START))
        .map_err(RegsError::WritePageTables)?;
    mem.write_obj(PDE_START | PTE_PRESENT_WRITABLE, GuestAddress(PDPTE_START))
        .map_err(RegsError::WritePageTables)?;
    for index in 0..512u64 {
        let entry = (index << 21) | PDE_HUGE_PAGE | PTE_PRESENT_WRITABLE;
        mem.write_obj(entry, GuestAddress(PDE_START + index * 8))
            .map_err(RegsError::WritePageTables)?;
    }
    Ok(())
}

/// Segment, descriptor-table and control registers for the entry, on top of
/// the vCPU's reset state `sregs`.
pub fn boot_sregs(mut sregs: kvm_sregs, protocol: BootProtocol) -> kvm_sregs {
    let gdt = gdt::boot_gdt(protocol == BootProtocol::Linux64);
    let code = gdt::segment_from_descriptor(gdt[CODE_INDEX as usize], CODE_INDEX);
    let data = gdt::segment_from_descriptor(gdt[DATA_INDEX as usize], DATA_INDEX);
    let tss = gdt::segment_from_descriptor(gdt[TSS_INDEX as usize], TSS_INDEX);

    sregs.gdt.base = BOOT_GDT_START;
    sregs.gdt.limit = (std::mem::size_of_val(&gdt) - 1) as u16;
    sregs.idt.base = BOOT_IDT_START;
    sregs.idt.limit = (std::mem::size_of::<u64>() - 1) as u16;
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = tss;

    match protocol {
        BootProtocol::Pvh => {
            sregs.cr0 = X86_CR0_PE | X86_CR0_ET;
            sregs.cr3 = 0;
            sregs.cr4 = 0;
            sregs.efer = 0;
        }
        BootProtocol::Linux64 => {
            sregs.cr0 = X86_CR0_PE | X86_CR0_ET | X86_CR0_PG;
            sregs.cr3 = PML4_START;
            sregs.cr4 = X86_CR4_PAE;
            sregs.efer = EFER_LME | EFER_LMA;
        }
    }
    sregs
}

/// General-purpose registers for the boot vCPU.
pub fn boot_regs(entry: EntryPoint) -> kvm_regs {
    let mut regs = kvm_regs {
        rflags: RFLAGS_RESERVED,
        rip: entry.addr.0,
        ..Default::default()
    };
    match entry.protocol {
        BootProtocol::Pvh => regs.rbx = PVH_INFO_START,
        BootProtocol::Linux64 => {
            regs.rsp = BOOT_STACK_POINTER;
            regs.rbp = BOOT_STACK_POINTER;
            regs.rsi = ZERO_PAGE_START;
        }
    }
    regs
}

/// x87 and SSE control words as after FNINIT / power-on (SDM vol. 1, §8.1.5
/// and §10.2.3): all exceptions masked.
pub fn boot_fpu() -> kvm_fpu {
    kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap()
    }

    #[test]
    fn page_tables_identity_map_the_first_gib() {
        let mem = memory();
        write_identity_page_tables(&mem).unwrap();
        let pml4: u64 = mem.read_obj(GuestAddress(PML4_START)).unwrap();
        assert_eq!(pml4, PDPTE_START | 0x3);
        let pdpte: u64 = mem.read_obj(GuestAddress(PDPTE_START)).unwrap();
        assert_eq!(pdpte, PDE_START | 0x3);
        for index in [0u64, 1, 8, 511] {
            let pde: u64 = mem.read_obj(GuestAddress(PDE_START + index * 8)).unwrap();
            assert_eq!(pde, (index << 21) | 0x83, "PDE {index}");
        }
    }

    #[test]
    fn gdt_in_memory_matches_the_loaded_segments() {
        let mem = memory();
        for protocol in [BootProtocol::Pvh, BootProtocol::Linux64] {
            write_descriptor_tables(&mem, protocol).unwrap();
            let sregs = boot_sregs(kvm_sregs::default(), protocol);
            let code: u64 = mem
                .read_obj(GuestAddress(BOOT_GDT_START + u64::from(sregs.cs.selector)))
                .unwrap();
            assert_eq!(gdt::segment_from_descriptor(code, CODE_INDEX), sregs.cs);
            assert_eq!(sregs.gdt.limit, 31);
            let idt: u64 = mem.read_obj(GuestAddress(BOOT_IDT_START)).unwrap();
            assert_eq!(idt, 0);
        }
    }

    #[test]
    fn pvh_entry_is_32_bit_protected_mode_without_paging() {
        let sregs = boot_sregs(kvm_sregs::default(), BootProtocol::Pvh);
        assert_eq!(sregs.cr0 & X86_CR0_PE, X86_CR0_PE);
        assert_eq!(sregs.cr0 & X86_CR0_PG, 0);
        assert_eq!((sregs.cr4, sregs.efer), (0, 0));
        assert_eq!((sregs.cs.l, sregs.cs.db), (0, 1));
        let regs = boot_regs(EntryPoint {
            addr: GuestAddress(0x100_0000),
            protocol: BootProtocol::Pvh,
        });
        assert_eq!(
            (regs.rip, regs.rbx, regs.rflags),
            (0x100_0000, PVH_INFO_START, 2)
        );
    }

    #[test]
    fn linux64_entry_is_long_mode_with_paging() {
        let sregs = boot_sregs(kvm_sregs::default(), BootProtocol::Linux64);
        assert_eq!(
            sregs.cr0 & (X86_CR0_PE | X86_CR0_PG),
            X86_CR0_PE | X86_CR0_PG
        );
        assert_eq!(sregs.cr3, PML4_START);
        assert_eq!(sregs.cr4 & X86_CR4_PAE, X86_CR4_PAE);
        assert_eq!(sregs.efer, EFER_LME | EFER_LMA);
        assert_eq!(sregs.cs.l, 1);
        let regs = boot_regs(EntryPoint {
            addr: GuestAddress(0x100_200),
            protocol: BootProtocol::Linux64,
        });
        assert_eq!((regs.rsi, regs.rsp), (ZERO_PAGE_START, BOOT_STACK_POINTER));
    }

    #[test]
    fn fpu_masks_all_exceptions() {
        let fpu = boot_fpu();
        assert_eq!((fpu.fcw, fpu.mxcsr), (0x37f, 0x1f80));
    }
}
