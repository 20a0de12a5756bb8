//! x86_64 boot: memory layout, kernel loading, boot information, vCPU state.

pub mod boot;
pub mod cpuid;
pub mod gdt;
pub mod interrupts;
pub mod layout;
pub mod memory_map;
pub mod mptable;
pub mod msr;
pub mod regs;
