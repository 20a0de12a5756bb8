use super::policy::not_covered;
use super::*;

/// The kernel's limit on a classic BPF program (BPF_MAXINSNS,
/// include/uapi/linux/bpf_common.h).
const BPF_MAXINSNS: usize = 4096;

#[test]
fn every_policy_compiles_to_bpf_for_x86_64() {
    for kind in ThreadKind::ALL {
        for mode in [SeccompMode::Kill, SeccompMode::Log] {
            let program = compile(kind, mode)
                .unwrap_or_else(|error| panic!("{kind} in {mode:?}: {error}"))
                .unwrap_or_else(|| panic!("{kind} in {mode:?} compiled to nothing"));
            assert!(
                (1..=BPF_MAXINSNS).contains(&program.len()),
                "{kind}: {} instructions",
                program.len()
            );
        }
        assert!(compile(kind, SeccompMode::Off).unwrap().is_none());
    }
}

#[test]
fn the_mode_decides_what_a_violation_does() {
    /// seccomp(2): SECCOMP_RET_KILL_PROCESS and SECCOMP_RET_LOG.
    const RET_KILL_PROCESS: u32 = 0x8000_0000;
    const RET_LOG: u32 = 0x7ffc_0000;
    /// BPF_RET | BPF_K.
    const RETURN_CONSTANT: u16 = 0x06;
    let returns = |mode| -> Vec<u32> {
        compile(ThreadKind::Vcpu, mode)
            .unwrap()
            .unwrap()
            .iter()
            .filter(|instruction| instruction.code == RETURN_CONSTANT)
            .map(|instruction| instruction.k)
            .collect()
    };
    let count = |returns: &[u32], value| returns.iter().filter(|&&k| k == value).count();
    let kill = returns(SeccompMode::Kill);
    // The architecture check, and every call outside the policy.
    assert!(count(&kill, RET_KILL_PROCESS) > 1);
    assert_eq!(count(&kill, RET_LOG), 0);
    // Only the architecture check kills in log mode: the filter is for
    // x86_64 system calls alone.
    let log = returns(SeccompMode::Log);
    assert_eq!(count(&log, RET_KILL_PROCESS), 1);
    assert!(count(&log, RET_LOG) > 0);
}

#[test]
fn modes_parse_from_the_command_line() {
    assert_eq!(SeccompMode::parse("kill"), Ok(SeccompMode::Kill));
    assert_eq!(SeccompMode::parse("log"), Ok(SeccompMode::Log));
    assert_eq!(SeccompMode::parse("off"), Ok(SeccompMode::Off));
    assert_eq!(SeccompMode::default(), SeccompMode::Kill);
    let error = SeccompMode::parse("Kill").unwrap_err();
    assert_eq!(error, "--seccomp \"Kill\": expected kill, log or off");
}

/// A thread started by a confined thread keeps its parent's filter under
/// its own: everything its own policy allows must pass the parent's too,
/// or the thread dies doing what its policy says it may.
#[test]
fn threads_that_narrow_an_inherited_filter_stay_within_it() {
    let pairs = [
        (ThreadKind::EventLoop, ThreadKind::BlockWorker),
        (ThreadKind::SandboxControl, ThreadKind::StdioRelay),
    ];
    for (parent, child) in pairs {
        let missing = not_covered(&parent.policy(), &child.policy());
        assert!(
            missing.is_empty(),
            "{child} needs system calls {missing:?} that its parent's {parent} policy refuses"
        );
    }
}

/// Threads that start others must let them get going and narrow the
/// filter they inherit.
#[test]
fn spawning_threads_allow_thread_start_and_narrowing() {
    for kind in [ThreadKind::EventLoop, ThreadKind::SandboxControl] {
        let missing = not_covered(&kind.policy(), &common::thread_spawning());
        assert!(missing.is_empty(), "{kind} lacks {missing:?}");
    }
    for kind in [
        ThreadKind::Vcpu,
        ThreadKind::BlockWorker,
        ThreadKind::StdioRelay,
    ] {
        let policy = kind.policy();
        for forbidden in [libc::SYS_clone3, libc::SYS_clone, libc::SYS_seccomp] {
            assert!(
                policy.iter().all(|allowed| allowed.syscall != forbidden),
                "{kind} starts no thread but allows system call {forbidden}"
            );
        }
    }
}

#[test]
fn no_policy_allows_starting_a_program_or_a_network_socket() {
    for kind in ThreadKind::ALL {
        for allowed in kind.policy() {
            assert!(
                ![
                    libc::SYS_execve,
                    libc::SYS_execveat,
                    libc::SYS_ptrace,
                    libc::SYS_fork,
                    libc::SYS_vfork
                ]
                .contains(&allowed.syscall),
                "{kind} allows system call {}",
                allowed.syscall
            );
            if allowed.syscall == libc::SYS_socket {
                assert!(!allowed.is_unconditional(), "{kind}: socket of any family");
            }
            if [
                libc::SYS_ioctl,
                libc::SYS_mmap,
                libc::SYS_mprotect,
                libc::SYS_openat,
            ]
            .contains(&allowed.syscall)
            {
                assert!(
                    !allowed.is_unconditional(),
                    "{kind}: system call {} with any arguments",
                    allowed.syscall
                );
            }
        }
    }
}

/// The vCPU's ioctl numbers are the ones kvm-ioctls sends
/// (include/uapi/linux/kvm.h: _IO(KVMIO, 0x80), _IOR(KVMIO, 0x81, struct
/// kvm_regs), _IOR(KVMIO, 0x83, struct kvm_sregs)).
#[test]
fn vcpu_ioctl_numbers_match_the_kernel_headers() {
    assert_eq!(vcpu::KVM_RUN(), 0xae80);
    assert_eq!(vcpu::KVM_GET_REGS(), 0x8090_ae81);
    assert_eq!(vcpu::KVM_GET_SREGS(), 0x8138_ae83);
}
