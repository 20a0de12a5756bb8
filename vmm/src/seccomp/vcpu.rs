//! vCPU threads: KVM_RUN and the device emulation its exits lead to
//! (port I/O and MMIO on the buses: the serial console, the guest signal
//! ports, the virtio-mmio registers).

use kvm_bindings::{kvm_regs, kvm_sregs, KVMIO};
use vmm_sys_util::{ioctl_io_nr, ioctl_ior_nr};

use super::common::every_thread;
use super::policy::Allowed;

// The requests behind the kvm-ioctls calls a vCPU thread makes, defined as
// kvm-ioctls defines them (src/kvm_ioctls.rs).
// VcpuFd::run.
ioctl_io_nr!(KVM_RUN, KVMIO, 0x80);
// VcpuFd::get_regs.
ioctl_ior_nr!(KVM_GET_REGS, KVMIO, 0x81, kvm_regs);
// VcpuFd::get_sregs.
ioctl_ior_nr!(KVM_GET_SREGS, KVMIO, 0x83, kvm_sregs);

pub fn policy() -> Vec<Allowed> {
    let mut policy = every_thread();
    policy.extend([
        // KVM_RUN enters the guest; the registers describe a triple fault
        // in the crash report (Vcpu::register_summary).
        Allowed::ioctls(&[KVM_RUN(), KVM_GET_REGS(), KVM_GET_SREGS()]),
        // The serial console's output goes through std's buffered writers
        // (write is in every_thread), which may hand a line over in one
        // vectored write.
        Allowed::any(libc::SYS_writev),
        // A virtio-blk reset waits until the device's workers have
        // finished what they hold (Workers::drain): a short-lived epoll on
        // their completion eventfd, whose count it then reads.
        Allowed::any(libc::SYS_epoll_create1),
        Allowed::any(libc::SYS_epoll_ctl),
        Allowed::any(libc::SYS_epoll_wait),
        Allowed::any(libc::SYS_epoll_pwait),
        Allowed::any(libc::SYS_read),
    ]);
    policy
}
