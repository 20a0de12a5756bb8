//! Turns `linux.seccomp` into a classic BPF program and installs it
//! (runtime-spec config-linux.md "Seccomp"; seccomp(2)).
//!
//! # Semantics
//!
//! The profile is read the way runc reads it with libseccomp:
//! - `syscalls` entries are tried in profile order and the first one that
//!   matches decides; a system call no entry matches gets `defaultAction`.
//! - An entry's `args` are ANDed, unless an argument index appears more than
//!   once: then each condition becomes a rule of its own and they are ORed
//!   (runc's long-standing rule, which Docker's profile relies on).
//! - Arguments are compared as 64-bit unsigned values. `SCMP_CMP_MASKED_EQ`
//!   means `(arg & value) == valueTwo`; when `valueTwo` has bits outside the
//!   mask the condition can never hold and the rule never matches, as in
//!   libseccomp.
//! - `errnoRet` and `defaultErrnoRet` default to EPERM; `SCMP_ACT_TRACE`
//!   passes `errnoRet` (default EPERM) to the tracer, as runc does.
//! - `SCMP_ACT_KILL` is `SCMP_ACT_KILL_THREAD`.
//!
//! Refused with an error naming the field, never silently weakened:
//! `SCMP_ACT_NOTIFY` (husk runs no seccomp agent),
//! `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV` (meaningful only with a notify
//! listener), an argument index above 5, an `errnoRet` above 65535 (the
//! return value has 16 bits), and an `architectures` list without
//! `SCMP_ARCH_X86_64`. Names x86_64 does not have are skipped, which is safe
//! only because the `syscalls` module lists every x86_64 system call.
//!
//! # Architectures
//!
//! The filter is for x86_64 only. Its first instructions kill the process
//! (SECCOMP_RET_KILL_PROCESS) when a system call arrives through the i386
//! entry (`int 0x80`, AUDIT_ARCH_I386) or carries the x32 bit
//! (__X32_SYSCALL_BIT): `SCMP_ARCH_X86` and `SCMP_ARCH_X32` in a profile are
//! accepted, but 32-bit code in the container cannot make system calls.
//!
//! # Program layout
//!
//! seccompiler's `SeccompFilter` has one action for every matching rule and
//! one for the rest, so the profile is split into segments of equal action,
//! each compiled by seccompiler and chained:
//!
//! ```text
//! arch check; x32 check            (kill on mismatch)
//! segment 1: rules with action A1  (match: RET A1; no match: jump to segment 2)
//! segment 2: rules with action A2  ...
//! RET defaultAction
//! ```
//!
//! Each segment is compiled with a placeholder "mismatch" action; every
//! `RET placeholder` is then replaced by a `JA` (32-bit offset) to the end of
//! the segment. A replaced instruction keeps its length, so seccompiler's
//! own jumps stay valid. A rule joins the earliest segment of its action that
//! comes after every segment of another action holding the same system call;
//! rules of different system calls never interact, so the first-match order
//! of the profile is kept while the segments stay few. Segments of the
//! default action that nothing follows are dropped: falling through gives the
//! same result.

mod syscalls;

use std::collections::BTreeMap;
use std::io;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator,
};
use seccompiler::{
    sock_filter, BackendError, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp,
    SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};

pub use self::syscalls::syscall_number;

/// The kernel's limit on a classic BPF program (BPF_MAXINSNS,
/// include/uapi/linux/bpf_common.h).
pub const BPF_MAXINSNS: usize = 4096;

/// AUDIT_ARCH_X86_64 (include/uapi/linux/audit.h): EM_X86_64 | 64BIT | LE.
const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;

/// __X32_SYSCALL_BIT (arch/x86/include/uapi/asm/unistd.h).
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Offsets into struct seccomp_data (include/uapi/linux/seccomp.h).
const SECCOMP_DATA_NR_OFFSET: u32 = 0;
const SECCOMP_DATA_ARCH_OFFSET: u32 = 4;

/// Classic BPF opcodes (include/uapi/linux/bpf_common.h): class | size |
/// mode or operation | source, where BPF_LD, BPF_W, BPF_JA and BPF_K are 0.
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JA: u16 = 0x05;
const BPF_JMP_JEQ_K: u16 = 0x05 | 0x10;
const BPF_JMP_JGE_K: u16 = 0x05 | 0x30;
const BPF_RET_K: u16 = 0x06;

/// Errors of the seccomp module.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("{field}: {reason} is not supported by husk")]
    Unsupported { field: String, reason: String },
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("compile the seccomp rules of {what}")]
    Compile {
        what: String,
        #[source]
        source: BackendError,
    },
    #[error(
        "linux.seccomp: the filter needs {length} BPF instructions, more than the kernel's \
         limit of {BPF_MAXINSNS}; shorten the profile or merge rules with equal actions"
    )]
    TooLarge { length: usize },
    #[error("seccompiler produced code of an unexpected shape ({0}); the filter was not built")]
    UnexpectedCode(&'static str),
    #[error("cannot install an empty seccomp filter")]
    EmptyProgram,
    #[error(
        "install the seccomp filter (the caller needs no_new_privs, or CAP_SYS_ADMIN when \
         process.noNewPrivileges is false)"
    )]
    Install {
        #[source]
        source: io::Error,
    },
    #[error(
        "install the seccomp filter on every thread: thread {thread} could not be synchronised"
    )]
    ThreadSync { thread: i64 },
}

/// Compiles a profile into one BPF program for x86_64 (see the module
/// documentation for the exact semantics).
pub fn compile(seccomp: &LinuxSeccomp) -> Result<BpfProgram, SeccompError> {
    check_architectures(seccomp)?;
    filter_flags(seccomp)?;
    let default_action = action(
        seccomp.default_action(),
        seccomp.default_errno_ret(),
        "linux.seccomp.defaultAction",
        "linux.seccomp.defaultErrnoRet",
    )?;
    let segments = segments(seccomp, &default_action)?;

    let mut program = prologue();
    for segment in segments {
        program.extend(segment.compile()?);
    }
    program.push(statement(BPF_RET_K, u32::from(default_action)));
    if program.len() > BPF_MAXINSNS {
        return Err(SeccompError::TooLarge {
            length: program.len(),
        });
    }
    Ok(program)
}

/// The seccomp(2) flags `linux.seccomp.flags` asks for, for
/// [`install_with_flags`].
pub fn filter_flags(seccomp: &LinuxSeccomp) -> Result<u32, SeccompError> {
    let mut flags = 0;
    for flag in seccomp.flags().iter().flatten() {
        flags |= match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                return Err(SeccompError::Unsupported {
                    field: "linux.seccomp.flags".to_string(),
                    reason: "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (it needs a notify listener)"
                        .to_string(),
                })
            }
        };
    }
    // The flag constants are small bit values (include/uapi/linux/seccomp.h).
    Ok(flags as u32)
}

/// A container's `linux.seccomp`, compiled before anything is created, so
/// that a profile husk cannot express fails cleanly; create and exec
/// install it in the container's processes.
#[derive(Debug, Clone)]
pub struct CompiledSeccomp {
    pub program: BpfProgram,
    /// seccomp(2) flags from `linux.seccomp.flags`.
    pub flags: u32,
}

impl CompiledSeccomp {
    pub fn from_profile(profile: &LinuxSeccomp) -> Result<CompiledSeccomp, SeccompError> {
        Ok(CompiledSeccomp {
            program: compile(profile)?,
            flags: filter_flags(profile)?,
        })
    }
}

/// Installs `program` on the calling thread. Unlike
/// `seccompiler::apply_filter`, this does not set no_new_privs: whether the
/// container gets it is `process.noNewPrivileges`' decision. Without it the
/// kernel requires CAP_SYS_ADMIN, so a caller honouring
/// `noNewPrivileges: false` installs the filter before dropping capabilities
/// (runc's order).
pub fn install(program: &BpfProgram) -> Result<(), SeccompError> {
    install_with_flags(program, 0)
}

/// [`install`] with seccomp(2) flags (from [`filter_flags`]).
pub fn install_with_flags(program: &BpfProgram, flags: u32) -> Result<(), SeccompError> {
    if program.is_empty() {
        return Err(SeccompError::EmptyProgram);
    }
    let length = u16::try_from(program.len()).map_err(|_| SeccompError::TooLarge {
        length: program.len(),
    })?;
    // seccompiler's sock_filter is declared #[repr(C)] with the kernel's
    // fields; equal sizes guard the pointer cast below.
    const _: () =
        assert!(std::mem::size_of::<sock_filter>() == std::mem::size_of::<libc::sock_filter>());
    let fprog = libc::sock_fprog {
        len: length,
        filter: program.as_ptr().cast::<libc::sock_filter>().cast_mut(),
    };
    // SAFETY: `fprog` points at `program`, which is alive for the whole call
    // and has `length` instructions of the kernel's sock_filter layout; the
    // kernel only copies them (copy_from_user) and never writes through it.
    let result = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::c_ulong::from(flags),
            &fprog as *const libc::sock_fprog,
        )
    };
    match result {
        0 => Ok(()),
        // With TSYNC, a positive result is the thread that could not be
        // synchronised (seccomp(2)).
        thread if thread > 0 => Err(SeccompError::ThreadSync { thread }),
        _ => Err(SeccompError::Install {
            source: io::Error::last_os_error(),
        }),
    }
}

fn check_architectures(seccomp: &LinuxSeccomp) -> Result<(), SeccompError> {
    let Some(architectures) = seccomp.architectures().as_ref().filter(|a| !a.is_empty()) else {
        return Ok(());
    };
    if architectures
        .iter()
        .any(|arch| matches!(arch, Arch::ScmpArchX86_64 | Arch::ScmpArchNative))
    {
        Ok(())
    } else {
        Err(SeccompError::Invalid {
            field: "linux.seccomp.architectures".to_string(),
            reason: format!(
                "{architectures:?} lacks SCMP_ARCH_X86_64, the only architecture husk runs; \
                 add it"
            ),
        })
    }
}

/// The seccompiler action for a profile action.
fn action(
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    action_field: &str,
    errno_field: &str,
) -> Result<SeccompAction, SeccompError> {
    let return_value = || -> Result<u32, SeccompError> {
        let value = errno_ret.unwrap_or(libc::EPERM as u32);
        if value > 0xFFFF {
            return Err(SeccompError::Invalid {
                field: errno_field.to_string(),
                reason: format!("{value} does not fit the 16-bit seccomp return value"),
            });
        }
        Ok(value)
    };
    Ok(match action {
        LinuxSeccompAction::ScmpActAllow => SeccompAction::Allow,
        LinuxSeccompAction::ScmpActErrno => SeccompAction::Errno(return_value()?),
        LinuxSeccompAction::ScmpActTrace => SeccompAction::Trace(return_value()?),
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            SeccompAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => SeccompAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => SeccompAction::Trap,
        LinuxSeccompAction::ScmpActLog => SeccompAction::Log,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(SeccompError::Unsupported {
                field: action_field.to_string(),
                reason: "SCMP_ACT_NOTIFY".to_string(),
            })
        }
    })
}

/// What matches one system call within a segment: every call (`None`), or
/// any of the rules.
type Match = Option<Vec<SeccompRule>>;

/// Rules sharing one action, compiled together.
struct Segment {
    action: SeccompAction,
    rules: BTreeMap<i64, Match>,
}

/// Splits the profile's entries into segments, keeping first-match order.
fn segments(
    seccomp: &LinuxSeccomp,
    default_action: &SeccompAction,
) -> Result<Vec<Segment>, SeccompError> {
    let mut segments: Vec<Segment> = Vec::new();
    for (index, entry) in seccomp.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{index}]");
        let entry_action = action(
            entry.action(),
            entry.errno_ret(),
            &format!("{field}.action"),
            &format!("{field}.errnoRet"),
        )?;
        if entry.names().is_empty() {
            return Err(SeccompError::Invalid {
                field: format!("{field}.names"),
                reason: "is empty; name at least one system call".to_string(),
            });
        }
        let Some(matcher) = entry_match(entry.args().as_deref().unwrap_or_default(), &field)?
        else {
            // Can never match: nothing to add.
            continue;
        };
        for name in entry.names() {
            // Unknown on x86_64 (another architecture's name): skipped, see
            // the syscalls module.
            let Some(number) = syscall_number(name) else {
                continue;
            };
            place(&mut segments, number, &entry_action, matcher.clone());
        }
    }
    drop_default_tail(&mut segments, default_action);
    Ok(segments)
}

/// What an entry's `args` match, or None when they can never match.
fn entry_match(args: &[LinuxSeccompArg], field: &str) -> Result<Option<Match>, SeccompError> {
    if args.is_empty() {
        return Ok(Some(None));
    }
    let mut conditions = Vec::with_capacity(args.len());
    let mut uses_per_index = [0usize; 6];
    for (arg_index, arg) in args.iter().enumerate() {
        let field = format!("{field}.args[{arg_index}]");
        let condition = condition(arg, &field)?;
        uses_per_index[arg.index()] += 1;
        conditions.push(condition);
    }
    let rule = |conditions: Vec<SeccompCondition>| {
        SeccompRule::new(conditions).map_err(|source| SeccompError::Compile {
            what: field.to_string(),
            source,
        })
    };
    if uses_per_index.iter().any(|uses| *uses > 1) {
        // An index used twice: each condition is its own rule, ORed (runc).
        let rules = conditions
            .into_iter()
            .flatten()
            .map(|condition| rule(vec![condition]))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok((!rules.is_empty()).then_some(Some(rules)));
    }
    // ANDed: one condition that can never hold makes the rule never match.
    match conditions.into_iter().collect::<Option<Vec<_>>>() {
        Some(conditions) => Ok(Some(Some(vec![rule(conditions)?]))),
        None => Ok(None),
    }
}

/// One argument condition; None when it can never hold.
fn condition(arg: &LinuxSeccompArg, field: &str) -> Result<Option<SeccompCondition>, SeccompError> {
    let index = u8::try_from(arg.index())
        .ok()
        .filter(|index| *index <= 5)
        .ok_or_else(|| SeccompError::Invalid {
            field: format!("{field}.index"),
            reason: format!(
                "{} is not a system call argument (they are numbered 0 to 5)",
                arg.index()
            ),
        })?;
    let (operator, value) = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => (SeccompCmpOp::Ne, arg.value()),
        LinuxSeccompOperator::ScmpCmpLt => (SeccompCmpOp::Lt, arg.value()),
        LinuxSeccompOperator::ScmpCmpLe => (SeccompCmpOp::Le, arg.value()),
        LinuxSeccompOperator::ScmpCmpEq => (SeccompCmpOp::Eq, arg.value()),
        LinuxSeccompOperator::ScmpCmpGe => (SeccompCmpOp::Ge, arg.value()),
        LinuxSeccompOperator::ScmpCmpGt => (SeccompCmpOp::Gt, arg.value()),
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            let mask = arg.value();
            let expected = arg.value_two().unwrap_or(0);
            // seccompiler masks the expected value; libseccomp does not, so
            // such a condition never holds there. Keep libseccomp's meaning.
            if expected & !mask != 0 {
                return Ok(None);
            }
            (SeccompCmpOp::MaskedEq(mask), expected)
        }
    };
    SeccompCondition::new(index, SeccompCmpArgLen::Qword, operator, value)
        .map(Some)
        .map_err(|source| SeccompError::Compile {
            what: field.to_string(),
            source,
        })
}

/// Adds a system call's match to the earliest segment of its action that
/// still comes after every segment of another action naming the same call.
fn place(segments: &mut Vec<Segment>, number: i64, action: &SeccompAction, matcher: Match) {
    let after = segments
        .iter()
        .rposition(|segment| segment.action != *action && segment.rules.contains_key(&number))
        .map_or(0, |conflict| conflict + 1);
    let target = match segments[after..]
        .iter()
        .position(|segment| segment.action == *action)
    {
        Some(offset) => after + offset,
        None => {
            segments.push(Segment {
                action: action.clone(),
                rules: BTreeMap::new(),
            });
            segments.len() - 1
        }
    };
    let rules = &mut segments[target].rules;
    match (rules.get_mut(&number), matcher) {
        (None, matcher) => {
            rules.insert(number, matcher);
        }
        // Already matched unconditionally.
        (Some(None), _) => {}
        (Some(existing @ Some(_)), None) => *existing = None,
        (Some(Some(existing)), Some(more)) => existing.extend(more),
    }
}

/// Removes default-action matches that no later segment could override:
/// reaching the end gives the default action anyway.
fn drop_default_tail(segments: &mut Vec<Segment>, default_action: &SeccompAction) {
    for index in (0..segments.len()).rev() {
        if segments[index].action != *default_action {
            continue;
        }
        let (before, later) = segments.split_at_mut(index + 1);
        before[index].rules.retain(|number, _| {
            later
                .iter()
                .any(|segment| segment.rules.contains_key(number))
        });
    }
    segments.retain(|segment| !segment.rules.is_empty());
}

impl Segment {
    /// This segment's code: seccompiler's program for it without its arch
    /// check, with every "no match" return turned into a jump past the end.
    fn compile(self) -> Result<Vec<sock_filter>, SeccompError> {
        let placeholder = if self.action == SeccompAction::Allow {
            SeccompAction::KillProcess
        } else {
            SeccompAction::Allow
        };
        let placeholder_value = u32::from(placeholder.clone());
        let match_value = u32::from(self.action.clone());
        let action_name = format!("{:?}", self.action);
        let rules = self
            .rules
            .into_iter()
            .map(|(number, matcher)| (number, matcher.unwrap_or_default()))
            .collect();
        let filter = SeccompFilter::new(rules, placeholder, self.action, TargetArch::x86_64)
            .and_then(BpfProgram::try_from)
            .map_err(|source| match source {
                BackendError::FilterTooLarge(length) => SeccompError::TooLarge { length },
                source => SeccompError::Compile {
                    what: format!("the segment with action {action_name}"),
                    source,
                },
            })?;
        let expected_arch_check = [
            statement(BPF_LD_W_ABS, SECCOMP_DATA_ARCH_OFFSET),
            jump(BPF_JMP_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
            statement(BPF_RET_K, libc::SECCOMP_RET_KILL_PROCESS),
        ];
        let mut code = filter
            .strip_prefix(&expected_arch_check[..])
            .ok_or(SeccompError::UnexpectedCode("no architecture check first"))?
            .to_vec();
        let end = code.len();
        for (index, instruction) in code.iter_mut().enumerate() {
            if instruction.code != BPF_RET_K {
                continue;
            }
            if instruction.k == placeholder_value {
                // Jump to the instruction after this segment.
                *instruction = statement(BPF_JMP_JA, (end - index - 1) as u32);
            } else if instruction.k != match_value {
                return Err(SeccompError::UnexpectedCode("a return of a third action"));
            }
        }
        Ok(code)
    }
}

/// Checks the architecture and refuses the x32 ABI before any rule runs.
fn prologue() -> Vec<sock_filter> {
    vec![
        statement(BPF_LD_W_ABS, SECCOMP_DATA_ARCH_OFFSET),
        jump(BPF_JMP_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        statement(BPF_RET_K, libc::SECCOMP_RET_KILL_PROCESS),
        statement(BPF_LD_W_ABS, SECCOMP_DATA_NR_OFFSET),
        // x32 system calls share AUDIT_ARCH_X86_64 and set bit 30 of the
        // number; -1 (all bits) is left to the rules, as a "no system call"
        // a tracer may set.
        jump(BPF_JMP_JGE_K, X32_SYSCALL_BIT, 0, 2),
        jump(BPF_JMP_JEQ_K, u32::MAX, 1, 0),
        statement(BPF_RET_K, libc::SECCOMP_RET_KILL_PROCESS),
    ]
}

fn statement(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

#[cfg(test)]
mod tests;
