//! A policy as plain data: the system calls a thread kind may make, each
//! either with any arguments or only with arguments that match one of a
//! few patterns. `compile` in the parent module turns it into seccompiler's
//! filter.

use std::collections::BTreeMap;

use seccompiler::{BackendError, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule};

/// One check on one system call argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgCheck {
    /// 0 to 5, as in `seccomp_data.args`.
    index: u8,
    /// Whether only the low 32 bits take part: right for arguments the
    /// kernel reads as `int` or `unsigned int` (file descriptors, flags,
    /// ioctl requests), whose upper bits the kernel ignores.
    low_32_bits: bool,
    /// `(argument & mask) == value`; a mask of all ones is plain equality.
    mask: u64,
    value: u64,
}

impl ArgCheck {
    fn condition(self) -> Result<SeccompCondition, BackendError> {
        let width = if self.low_32_bits {
            SeccompCmpArgLen::Dword
        } else {
            SeccompCmpArgLen::Qword
        };
        let operator = if self.mask == u64::MAX {
            SeccompCmpOp::Eq
        } else {
            SeccompCmpOp::MaskedEq(self.mask)
        };
        SeccompCondition::new(self.index, width, operator, self.value)
    }
}

/// Argument `index`, read as the kernel reads an `int`-sized argument.
pub fn arg32(index: u8) -> ArgBuilder {
    ArgBuilder {
        index,
        low_32_bits: true,
    }
}

/// Argument `index`, all 64 bits.
pub fn arg64(index: u8) -> ArgBuilder {
    ArgBuilder {
        index,
        low_32_bits: false,
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ArgBuilder {
    index: u8,
    low_32_bits: bool,
}

impl ArgBuilder {
    pub fn equals(self, value: u64) -> ArgCheck {
        self.masked(u64::MAX, value)
    }

    /// The bits of `mask` are those of `value`; other bits are free.
    pub fn masked(self, mask: u64, value: u64) -> ArgCheck {
        ArgCheck {
            index: self.index,
            low_32_bits: self.low_32_bits,
            mask,
            value,
        }
    }

    /// None of the bits of `bits` is set.
    pub fn without(self, bits: u64) -> ArgCheck {
        self.masked(bits, 0)
    }
}

/// One allowed system call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    pub syscall: i64,
    /// Empty: any arguments. Otherwise the call is allowed when every check
    /// of at least one of these patterns holds.
    patterns: Vec<Vec<ArgCheck>>,
}

impl Allowed {
    /// `syscall` with any arguments.
    pub fn any(syscall: libc::c_long) -> Self {
        Self {
            syscall,
            patterns: Vec::new(),
        }
    }

    /// `syscall` when all of `checks` hold.
    pub fn when(syscall: libc::c_long, checks: impl Into<Vec<ArgCheck>>) -> Self {
        Self {
            syscall,
            patterns: vec![checks.into()],
        }
    }

    /// `syscall` when argument `index` (an `int`-sized one) is one of
    /// `values`.
    pub fn when_one_of(syscall: libc::c_long, index: u8, values: &[u64]) -> Self {
        Self {
            syscall,
            patterns: values
                .iter()
                .map(|&value| vec![arg32(index).equals(value)])
                .collect(),
        }
    }

    /// ioctl(2) with one of `requests` (`unsigned long` on x86_64; the
    /// kernel reads the low 32 bits).
    pub fn ioctls(requests: &[u64]) -> Self {
        Self::when_one_of(libc::SYS_ioctl, 1, requests)
    }

    /// Whether the call is allowed whatever its arguments.
    pub fn is_unconditional(&self) -> bool {
        self.patterns.is_empty()
    }
}

/// The system calls `narrower` allows (with some arguments) that `wider`
/// does not allow with the same arguments: what a thread under `wider`
/// would be killed for if it did all that `narrower` allows.
#[cfg(test)]
pub fn not_covered(wider: &[Allowed], narrower: &[Allowed]) -> Vec<i64> {
    let allows = |entry: &Allowed, pattern: Option<&Vec<ArgCheck>>| {
        wider.iter().any(|candidate| {
            candidate.syscall == entry.syscall
                && (candidate.is_unconditional()
                    || pattern.is_some_and(|pattern| candidate.patterns.contains(pattern)))
        })
    };
    let mut missing: Vec<i64> = narrower
        .iter()
        .filter(|entry| {
            if entry.is_unconditional() {
                !allows(entry, None)
            } else {
                entry
                    .patterns
                    .iter()
                    .any(|pattern| !allows(entry, Some(pattern)))
            }
        })
        .map(|entry| entry.syscall)
        .collect();
    missing.dedup();
    missing
}

/// Merges the entries of a policy by system call: an unconditional entry
/// wins over patterns, patterns of several entries add up. Returns the
/// rules in seccompiler's form (an empty list meaning "any arguments").
pub fn merge(policy: &[Allowed]) -> Result<BTreeMap<i64, Vec<SeccompRule>>, BackendError> {
    let mut by_syscall: BTreeMap<i64, Option<Vec<Vec<ArgCheck>>>> = BTreeMap::new();
    for allowed in policy {
        let entry = by_syscall
            .entry(allowed.syscall)
            .or_insert_with(|| Some(Vec::new()));
        match entry {
            // Already allowed with any arguments.
            None => {}
            Some(_) if allowed.is_unconditional() => *entry = None,
            Some(patterns) => {
                for pattern in &allowed.patterns {
                    if !patterns.contains(pattern) {
                        patterns.push(pattern.clone());
                    }
                }
            }
        }
    }
    by_syscall
        .into_iter()
        .map(|(syscall, patterns)| {
            let rules = patterns
                .unwrap_or_default()
                .into_iter()
                .map(|pattern| {
                    let conditions = pattern
                        .into_iter()
                        .map(ArgCheck::condition)
                        .collect::<Result<Vec<_>, _>>()?;
                    SeccompRule::new(conditions)
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((syscall, rules))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_keeps_the_widest_permission() {
        let policy = [
            Allowed::when(libc::SYS_tgkill, [arg32(2).equals(6)]),
            Allowed::when(libc::SYS_tgkill, [arg32(2).equals(34)]),
            Allowed::when(libc::SYS_tgkill, [arg32(2).equals(6)]),
            Allowed::ioctls(&[1]),
            Allowed::any(libc::SYS_ioctl),
            Allowed::ioctls(&[2]),
            Allowed::any(libc::SYS_read),
        ];
        let rules = merge(&policy).unwrap();
        assert_eq!(rules.len(), 3);
        assert_eq!(rules[&libc::SYS_tgkill].len(), 2, "two distinct signals");
        assert!(rules[&libc::SYS_ioctl].is_empty(), "any request wins");
        assert!(rules[&libc::SYS_read].is_empty());
    }

    #[test]
    fn coverage_compares_arguments_too() {
        let wider = [Allowed::any(libc::SYS_read), Allowed::ioctls(&[1, 2])];
        assert!(not_covered(&wider, &[Allowed::ioctls(&[2])]).is_empty());
        assert_eq!(
            not_covered(&wider, &[Allowed::ioctls(&[2, 3])]),
            [libc::SYS_ioctl]
        );
        assert_eq!(
            not_covered(&wider, &[Allowed::any(libc::SYS_ioctl)]),
            [libc::SYS_ioctl]
        );
        assert_eq!(
            not_covered(&wider, &[Allowed::any(libc::SYS_write)]),
            [libc::SYS_write]
        );
        assert!(not_covered(
            &wider,
            &[Allowed::when(libc::SYS_read, [arg32(0).equals(3)])]
        )
        .is_empty());
    }

    #[test]
    fn an_argument_index_past_five_is_refused() {
        let policy = [Allowed::when(libc::SYS_read, [arg64(6).equals(0)])];
        assert!(merge(&policy).is_err());
    }
}
