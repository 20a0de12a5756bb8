//! Signals as `husk kill` takes them: a number (podman and containerd send
//! `15`, `9`), or a name with or without the `SIG` prefix in any case
//! (`SIGKILL`, `KILL`, `kill`), as runc's parseSignal accepts them. Real-time
//! signals may also be named `RTMIN+n` / `RTMAX-n` (signal(7)).

use std::fmt;
use std::str::FromStr;

/// The lowest real-time signal a program may use: glibc keeps 32 and 33
/// for itself (signal(7), "Real-time signals").
const SIGRTMIN: i32 = 34;
/// The highest signal number on Linux (_NSIG - 1).
const SIGRTMAX: i32 = 64;

/// The standard signals of Linux on x86_64 (signal(7)), with the aliases
/// the kernel headers define.
const NAMED_SIGNALS: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGIOT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("POLL", libc::SIGPOLL),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// A signal number that kill(2) accepts: 0 (only checks that the target
/// exists) to 64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal(i32);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignalError {
    #[error(
        "unknown signal {0:?}: give a number from 0 to 64 or a name such as SIGTERM, TERM or KILL"
    )]
    Unknown(String),
}

impl Signal {
    pub const TERM: Signal = Signal(libc::SIGTERM);
    pub const KILL: Signal = Signal(libc::SIGKILL);

    /// The signal numbered `number`, if kill(2) knows it.
    pub fn from_number(number: i32) -> Option<Signal> {
        (0..=SIGRTMAX).contains(&number).then_some(Signal(number))
    }

    pub fn number(self) -> i32 {
        self.0
    }

    /// The signal's name with the `SIG` prefix (`SIGKILL`, `SIGRTMIN+3`), or
    /// the number for 0, 32 and 33, which have none.
    pub fn name(self) -> String {
        if let Some((name, _)) = NAMED_SIGNALS.iter().find(|(_, number)| *number == self.0) {
            return format!("SIG{name}");
        }
        match self.0 {
            SIGRTMIN => "SIGRTMIN".to_string(),
            SIGRTMAX => "SIGRTMAX".to_string(),
            number if number > SIGRTMIN && number < SIGRTMAX => {
                format!("SIGRTMIN+{}", number - SIGRTMIN)
            }
            number => number.to_string(),
        }
    }
}

impl FromStr for Signal {
    type Err = SignalError;

    fn from_str(text: &str) -> Result<Signal, SignalError> {
        let unknown = || SignalError::Unknown(text.to_string());
        if let Ok(number) = text.parse::<i32>() {
            return Signal::from_number(number).ok_or_else(unknown);
        }
        let upper = text.to_ascii_uppercase();
        let name = upper.strip_prefix("SIG").unwrap_or(&upper);
        if let Some(&(_, number)) = NAMED_SIGNALS.iter().find(|(known, _)| *known == name) {
            return Ok(Signal(number));
        }
        let real_time = match name {
            "RTMIN" => Some(SIGRTMIN),
            "RTMAX" => Some(SIGRTMAX),
            _ => {
                if let Some(offset) = name.strip_prefix("RTMIN+") {
                    offset.parse::<i32>().ok().map(|offset| SIGRTMIN + offset)
                } else if let Some(offset) = name.strip_prefix("RTMAX-") {
                    offset.parse::<i32>().ok().map(|offset| SIGRTMAX - offset)
                } else {
                    None
                }
            }
        };
        real_time
            .filter(|number| (SIGRTMIN..=SIGRTMAX).contains(number))
            .map(Signal)
            .ok_or_else(unknown)
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<i32, SignalError> {
        text.parse::<Signal>().map(Signal::number)
    }

    #[test]
    fn numbers_as_podman_and_containerd_send_them() {
        assert_eq!(parse("15"), Ok(15));
        assert_eq!(parse("9"), Ok(9));
        assert_eq!(parse("0"), Ok(0));
        assert_eq!(parse("64"), Ok(64));
    }

    #[test]
    fn names_with_or_without_prefix_in_any_case() {
        for text in ["SIGKILL", "KILL", "kill", "SigKill", "sigkill"] {
            assert_eq!(parse(text), Ok(libc::SIGKILL), "{text}");
        }
        assert_eq!(parse("TERM"), Ok(libc::SIGTERM));
        assert_eq!(parse("SIGHUP"), Ok(libc::SIGHUP));
        assert_eq!(parse("WINCH"), Ok(libc::SIGWINCH));
        assert_eq!(parse("SIGCLD"), Ok(libc::SIGCHLD));
    }

    #[test]
    fn real_time_signals() {
        assert_eq!(parse("SIGRTMIN"), Ok(34));
        assert_eq!(parse("RTMIN+3"), Ok(37));
        assert_eq!(parse("SIGRTMAX-1"), Ok(63));
        assert_eq!(parse("RTMAX"), Ok(64));
        assert!(parse("RTMIN+31").is_err());
        assert!(parse("RTMAX-31").is_err());
    }

    #[test]
    fn unknown_signals_are_refused_with_the_input_named() {
        for text in ["65", "-1", "SIGFOO", "", "SIG", "RTMIN+x"] {
            let error = parse(text).unwrap_err();
            assert!(error.to_string().contains(&format!("{text:?}")), "{error}");
        }
    }

    #[test]
    fn names_round_trip() {
        for number in 1..=64 {
            let signal = Signal::from_number(number).unwrap();
            if number == 32 || number == 33 {
                assert_eq!(signal.name(), number.to_string());
                continue;
            }
            assert_eq!(parse(&signal.name()), Ok(number), "{}", signal.name());
        }
        assert_eq!(Signal::KILL.to_string(), "SIGKILL");
        assert_eq!(Signal::from_number(37).unwrap().to_string(), "SIGRTMIN+3");
    }
}
