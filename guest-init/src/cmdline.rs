//! The kernel command line keys husk-init obeys (see `husk_protocol::cmdline`).

use husk_protocol::cmdline::{AGENT, EXIT, SELFTEST};

/// How husk-init ends once it has reported ready (`husk.exit=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitAction {
    /// End the VM with this exit status.
    Status(u8),
    /// Return from PID 1, so the kernel panics ("Attempted to kill init").
    Panic,
    /// Keep the guest running until the VMM is stopped from outside.
    Hold,
}

impl ExitAction {
    /// What init does when the command line says nothing.
    pub const DEFAULT: Self = Self::Status(0);
    /// What init does when it cannot go on, or `husk.exit=` is invalid.
    pub const FAILURE: Self = Self::Status(1);

    /// Reads `husk.exit=` from the text of /proc/cmdline. Like the kernel,
    /// the last occurrence wins.
    pub fn from_cmdline(cmdline: &str) -> Result<Self, InvalidExitAction> {
        match parameters(cmdline)
            .filter_map(|(key, value)| (key == EXIT).then_some(value))
            .last()
        {
            None => Ok(Self::DEFAULT),
            Some(value) => Self::parse(value),
        }
    }

    fn parse(value: Option<&str>) -> Result<Self, InvalidExitAction> {
        match value {
            Some("panic") => Ok(Self::Panic),
            Some("hold") => Ok(Self::Hold),
            Some(text) => text
                .parse::<u8>()
                .map(Self::Status)
                .map_err(|_| InvalidExitAction(text.to_owned())),
            None => Err(InvalidExitAction(String::new())),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{EXIT}={0:?} is not valid: expected a number 0..=255, `panic` or `hold`")]
pub struct InvalidExitAction(String);

/// Whether `husk.agent` is on the command line (with any value but 0).
pub fn agent_mode(cmdline: &str) -> bool {
    parameters(cmdline)
        .filter(|(key, _)| *key == AGENT)
        .last()
        .is_some_and(|(_, value)| value != Some("0"))
}

/// The selftests `husk.selftest=a,b` asks for, in order (last occurrence
/// wins, as for every key).
pub fn selftests(cmdline: &str) -> Vec<String> {
    parameters(cmdline)
        .filter_map(|(key, value)| (key == SELFTEST).then_some(value))
        .last()
        .flatten()
        .map(|list| {
            list.split(',')
                .filter(|name| !name.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Splits a command line into `key[=value]` parameters the way the kernel
/// does (lib/cmdline.c `next_arg`): whitespace separates them, and double
/// quotes keep whitespace inside one and are dropped.
fn parameters(cmdline: &str) -> impl Iterator<Item = (&str, Option<&str>)> {
    let mut rest = cmdline.trim_start();
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut in_quotes = false;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                if c == '"' {
                    in_quotes = !in_quotes;
                }
                c.is_whitespace() && !in_quotes
            })
            .map_or(rest.len(), |(index, _)| index);
        let parameter = &rest[..end];
        rest = rest[end..].trim_start();
        Some(match parameter.split_once('=') {
            Some((key, value)) => (key.trim_matches('"'), Some(value.trim_matches('"'))),
            None => (parameter.trim_matches('"'), None),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_mode_is_named_on_the_command_line() {
        assert!(agent_mode("console=ttyS0 husk.agent"));
        assert!(agent_mode("husk.agent=1"));
        assert!(!agent_mode("husk.agent=1 husk.agent=0"));
        assert!(!agent_mode("husk.agents husk.exit=0"));
    }

    #[test]
    fn selftests_are_listed_in_order() {
        assert_eq!(
            selftests("console=ttyS0 husk.selftest=hwrng,blk"),
            ["hwrng", "blk"]
        );
        assert_eq!(selftests("husk.selftest=a husk.selftest=b"), ["b"]);
        assert!(selftests("husk.exit=0").is_empty());
        assert!(selftests("husk.selftest").is_empty());
    }

    #[test]
    fn defaults_to_status_zero() {
        let action = ExitAction::from_cmdline("console=ttyS0 reboot=k panic=-1\n");
        assert_eq!(action, Ok(ExitAction::Status(0)));
        assert_eq!(ExitAction::from_cmdline(""), Ok(ExitAction::Status(0)));
    }

    #[test]
    fn reads_numbers_panic_and_hold() {
        let cases = [
            ("console=ttyS0 husk.exit=0\n", ExitAction::Status(0)),
            ("husk.exit=42 quiet", ExitAction::Status(42)),
            ("husk.exit=255", ExitAction::Status(255)),
            ("quiet husk.exit=panic", ExitAction::Panic),
            ("husk.exit=hold console=ttyS0", ExitAction::Hold),
        ];
        for (cmdline, expected) in cases {
            assert_eq!(ExitAction::from_cmdline(cmdline), Ok(expected), "{cmdline}");
        }
    }

    #[test]
    fn last_occurrence_wins() {
        let action = ExitAction::from_cmdline("husk.exit=3 husk.exit=hold husk.exit=7");
        assert_eq!(action, Ok(ExitAction::Status(7)));
    }

    #[test]
    fn rejects_invalid_values_naming_them() {
        for value in ["256", "-1", "abc", "", "1.5", "HOLD"] {
            let cmdline = format!("console=ttyS0 husk.exit={value} quiet");
            let error = ExitAction::from_cmdline(&cmdline).unwrap_err();
            assert_eq!(error, InvalidExitAction(value.to_owned()));
            assert!(error
                .to_string()
                .contains(&format!("husk.exit=\"{value}\"")));
        }
        assert!(ExitAction::from_cmdline("husk.exit").is_err());
    }

    #[test]
    fn ignores_similar_keys_and_quoted_text() {
        let cmdline = r#"xhusk.exit=1 husk.exitcode=2 note="say husk.exit=3 twice" husk.exit="4""#;
        assert_eq!(ExitAction::from_cmdline(cmdline), Ok(ExitAction::Status(4)));
    }

    #[test]
    fn splits_like_the_kernel() {
        let split: Vec<_> = parameters("  a=1\tb  \"c=d e\" f=\"g h\"\n").collect();
        assert_eq!(
            split,
            [
                ("a", Some("1")),
                ("b", None),
                ("c", Some("d e")),
                ("f", Some("g h")),
            ]
        );
    }
}
