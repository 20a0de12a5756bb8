//! husk-vmm: a KVM virtual machine monitor that boots husk's guest kernel.
