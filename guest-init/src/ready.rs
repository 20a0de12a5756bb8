//! The ready line: what the guest saw at boot, printed once on the console.
//! Tests compare `cpus` and `mem_total_kib` with what the VMM gave the guest;
//! benchmarks read `uptime_ms`.

use std::num::ParseIntError;
use std::time::Duration;
use std::{fmt, fs, io};

use husk_protocol::READY_LINE_PREFIX;

use crate::sys;

const ONLINE_CPUS: &str = "/sys/devices/system/cpu/online";
const MEMINFO: &str = "/proc/meminfo";
const UPTIME: &str = "/proc/uptime";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyReport {
    /// Time since the kernel's clock started.
    pub uptime: Duration,
    /// Number of CPUs online.
    pub cpus: usize,
    /// `MemTotal` of /proc/meminfo: the guest's RAM less what the kernel
    /// reserved for itself, in KiB.
    pub mem_total_kib: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadyReportError {
    #[error("read {path}")]
    Read {
        path: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("parse {path}")]
    Parse {
        path: &'static str,
        #[source]
        source: ParseError,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("{0:?} is not a CPU list such as `0-3,5`")]
    CpuList(String),
    #[error("no `MemTotal: <n> kB` line")]
    NoMemTotal,
    #[error("{0:?} is not an uptime in seconds")]
    Uptime(String),
}

impl ReadyReport {
    /// Reads the numbers from /proc and /sys, which must be mounted.
    pub fn gather() -> Result<Self, ReadyReportError> {
        Ok(Self {
            uptime: uptime()?,
            cpus: parsed(ONLINE_CPUS, count_cpu_list)?,
            mem_total_kib: parsed(MEMINFO, parse_mem_total_kib)?,
        })
    }
}

/// `husk-init ready uptime_ms=<n> cpus=<n> mem_total_kib=<n>`
impl fmt::Display for ReadyReport {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{READY_LINE_PREFIX} uptime_ms={} cpus={} mem_total_kib={}",
            self.uptime.as_millis(),
            self.cpus,
            self.mem_total_kib
        )
    }
}

/// CLOCK_BOOTTIME for its resolution; /proc/uptime if that fails.
fn uptime() -> Result<Duration, ReadyReportError> {
    match sys::boot_time() {
        Ok(uptime) => Ok(uptime),
        Err(_) => parsed(UPTIME, parse_uptime),
    }
}

fn parsed<T>(
    path: &'static str,
    parse: impl FnOnce(&str) -> Result<T, ParseError>,
) -> Result<T, ReadyReportError> {
    let text =
        fs::read_to_string(path).map_err(|source| ReadyReportError::Read { path, source })?;
    parse(&text).map_err(|source| ReadyReportError::Parse { path, source })
}

/// Counts the CPUs in a kernel CPU list such as `0-3,5\n`
/// (Documentation/admin-guide/cputopology.rst).
fn count_cpu_list(text: &str) -> Result<usize, ParseError> {
    let invalid = || ParseError::CpuList(text.to_owned());
    let number = |text: &str| text.parse::<usize>().map_err(|_: ParseIntError| invalid());
    let text = text.trim();
    if text.is_empty() {
        return Ok(0);
    }
    text.split(',').try_fold(0, |count, range| {
        let (first, last) = match range.split_once('-') {
            Some((first, last)) => (number(first)?, number(last)?),
            None => (number(range)?, number(range)?),
        };
        if last < first {
            return Err(invalid());
        }
        Ok(count + (last - first + 1))
    })
}

/// Finds `MemTotal:   1014564 kB` in /proc/meminfo; the kernel's `kB` is KiB.
fn parse_mem_total_kib(meminfo: &str) -> Result<u64, ParseError> {
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|number| number.trim().parse().ok())
        .ok_or(ParseError::NoMemTotal)
}

/// Reads the first field of /proc/uptime, seconds with two decimals.
fn parse_uptime(text: &str) -> Result<Duration, ParseError> {
    let invalid = || ParseError::Uptime(text.to_owned());
    let seconds = text.split_whitespace().next().ok_or_else(invalid)?;
    let (whole, fraction) = seconds.split_once('.').unwrap_or((seconds, ""));
    let whole: u64 = whole.parse().map_err(|_| invalid())?;
    if fraction.len() > 9 || !fraction.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(invalid());
    }
    // "5" is 500 ms: pad the fraction to nanoseconds.
    let nanos = format!("{fraction:0<9}").parse().map_err(|_| invalid())?;
    Ok(Duration::new(whole, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_cpu_lists() {
        let cases = [
            ("0\n", 1),
            ("0-3\n", 4),
            ("0-3,5", 5),
            ("0,2,4-7\n", 6),
            ("1-1", 1),
            ("0-127\n", 128),
            ("\n", 0),
        ];
        for (text, expected) in cases {
            assert_eq!(count_cpu_list(text), Ok(expected), "{text:?}");
        }
    }

    #[test]
    fn rejects_malformed_cpu_lists() {
        for text in ["3-1", "0-", "-3", "a", "0,,1", "0-3,", "0 1"] {
            assert_eq!(
                count_cpu_list(text),
                Err(ParseError::CpuList(text.to_owned())),
                "{text:?}"
            );
        }
    }

    #[test]
    fn finds_mem_total() {
        let meminfo = "MemTotal:         1014564 kB\n\
                       MemFree:           982380 kB\n\
                       MemAvailable:      951224 kB\n";
        assert_eq!(parse_mem_total_kib(meminfo), Ok(1_014_564));
        let later = "MemFree: 1 kB\nMemTotal: 2048 kB\n";
        assert_eq!(parse_mem_total_kib(later), Ok(2048));
    }

    #[test]
    fn rejects_meminfo_without_mem_total() {
        for meminfo in [
            "",
            "MemFree: 1 kB\n",
            "MemTotal: lots kB\n",
            "MemTotal: 12\n",
        ] {
            assert_eq!(parse_mem_total_kib(meminfo), Err(ParseError::NoMemTotal));
        }
    }

    #[test]
    fn parses_uptime() {
        assert_eq!(parse_uptime("0.05 0.01\n"), Ok(Duration::from_millis(50)));
        assert_eq!(
            parse_uptime("12.5 3.00\n"),
            Ok(Duration::from_millis(12_500))
        );
        assert_eq!(parse_uptime("7"), Ok(Duration::from_secs(7)));
        for text in ["", "x.10", "1.-5", "1.2.3"] {
            assert!(parse_uptime(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn formats_the_ready_line() {
        let report = ReadyReport {
            uptime: Duration::from_micros(123_456),
            cpus: 2,
            mem_total_kib: 1_014_564,
        };
        assert_eq!(
            report.to_string(),
            "husk-init ready uptime_ms=123 cpus=2 mem_total_kib=1014564"
        );
    }

    #[test]
    fn host_values_are_readable() {
        let report = ReadyReport::gather().expect("the host has /proc and /sys");
        assert!(report.cpus >= 1);
        assert!(report.mem_total_kib > 0);
        assert!(report.uptime > Duration::ZERO);
    }
}
