//! husk-vmm: a KVM virtual machine monitor that boots husk's guest kernel.
//!
//! Layout: `vstate/` holds every KVM ioctl; `arch/x86_64/` the boot details
//! (memory layout, kernel loading, boot information, vCPU state);
//! `devices/` what the guest talks to; `builder` assembles a VM top-down from
//! a [`config::VmConfig`] and `vmm` runs it; `seccomp` confines each of
//! husk-vmm's threads to the system calls it makes; `jail` shuts the whole
//! process into an empty root with no privileges before the VM is built.

pub mod arch;
pub mod builder;
pub mod config;
pub mod console;
pub mod devices;
pub mod guest_agent;
pub mod jail;
pub mod metrics;
pub mod os;
pub mod sandbox;
pub mod seccomp;
pub mod signals;
pub mod timing;
pub mod vmm;
pub mod vstate;
