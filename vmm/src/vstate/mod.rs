//! The KVM layer: every KVM ioctl husk-vmm makes, and nearly all its
//! `unsafe`, lives here.

pub mod kvm;
pub mod memory;
pub mod vcpu;
pub mod vm;
