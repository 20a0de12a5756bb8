//! Reading memory use from /proc (proc(5)): a process's RSS and PSS
//! (`smaps_rollup`), the part of it that is the guest's RAM (`smaps`), and
//! the host's MemTotal and MemAvailable (`meminfo`).
//!
//! husk-vmm maps guest RAM as one anonymous private mapping of the guest's
//! size, then maps the initramfs file copy-on-write over part of it, so in
//! `smaps` the guest's RAM is a run of adjacent private writable mappings,
//! anonymous ones and the initramfs, adding up to exactly the guest size.
//! What of it is resident is what the guest touched (pages it never
//! touched are never allocated).

use std::path::PathBuf;
use std::{fmt, fs, io};

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: no Rss and Pss lines", path.display())]
    NoRollup { path: PathBuf },
    #[error(
        "{}: no run of adjacent private writable mappings of exactly {guest_kib} KiB, \
         the guest's RAM (has husk-vmm's memory layout changed?)",
        path.display()
    )]
    NoGuestMemory { path: PathBuf, guest_kib: u64 },
    #[error("/proc/meminfo has no {key} line")]
    NoMeminfo { key: &'static str },
}

/// Resident (RSS) and proportional (PSS: shared pages divided among their
/// users) memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryUse {
    pub rss_kib: u64,
    pub pss_kib: u64,
}

impl fmt::Display for MemoryUse {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "RSS {} KiB, PSS {} KiB",
            self.rss_kib, self.pss_kib
        )
    }
}

/// The `NAME: N kB` value of a line.
fn kib_of(line: &str, name: &str) -> Option<u64> {
    let rest = line.strip_prefix(name)?.strip_prefix(':')?;
    rest.split_whitespace().next()?.parse().ok()
}

/// RSS and PSS out of `/proc/PID/smaps_rollup`.
pub fn parse_rollup(text: &str) -> Option<MemoryUse> {
    let rss_kib = text.lines().find_map(|line| kib_of(line, "Rss"))?;
    let pss_kib = text.lines().find_map(|line| kib_of(line, "Pss"))?;
    Some(MemoryUse { rss_kib, pss_kib })
}

/// One mapping of `/proc/PID/smaps`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mapping {
    start: u64,
    end: u64,
    private_writable: bool,
    /// The file, or a [name] such as [heap]; None when anonymous.
    name: Option<String>,
    usage: MemoryUse,
}

impl Mapping {
    fn size_kib(&self) -> u64 {
        (self.end - self.start) / 1024
    }

    fn anonymous(&self) -> bool {
        self.name.is_none()
    }

    /// Anonymous, or a file: what guest RAM is made of. A [name] (heap,
    /// stack, vdso) is not.
    fn may_be_guest_ram(&self) -> bool {
        self.private_writable && !self.name.as_deref().is_some_and(|n| n.starts_with('['))
    }
}

/// A mapping's header line: `start-end perms offset dev inode [name]`.
fn parse_header(line: &str) -> Option<Mapping> {
    let mut fields = line.splitn(6, ' ');
    let (start, end) = fields.next()?.split_once('-')?;
    let start = u64::from_str_radix(start, 16).ok()?;
    let end = u64::from_str_radix(end, 16).ok()?;
    let perms = fields.next()?;
    let (_offset, _device, _inode) = (fields.next()?, fields.next()?, fields.next()?);
    let name = fields.next().map(str::trim).filter(|name| !name.is_empty());
    Some(Mapping {
        start,
        end,
        private_writable: perms.len() == 4 && perms.starts_with("rw") && perms.ends_with('p'),
        name: name.map(str::to_string),
        usage: MemoryUse::default(),
    })
}

fn parse_smaps(text: &str) -> Vec<Mapping> {
    let mut mappings: Vec<Mapping> = Vec::new();
    for line in text.lines() {
        if let Some(mapping) = parse_header(line) {
            mappings.push(mapping);
        } else if let Some(last) = mappings.last_mut() {
            if let Some(kib) = kib_of(line, "Rss") {
                last.usage.rss_kib = kib;
            } else if let Some(kib) = kib_of(line, "Pss") {
                last.usage.pss_kib = kib;
            }
        }
    }
    mappings
}

/// The resident part of the guest's RAM in `smaps`: the first run of
/// adjacent mappings that may be guest RAM, holding an anonymous one, whose
/// sizes add up to exactly `guest_kib`.
pub fn guest_memory(smaps: &str, guest_kib: u64) -> Option<MemoryUse> {
    let mappings = parse_smaps(smaps);
    for first in 0..mappings.len() {
        let mut size = 0;
        let mut usage = MemoryUse::default();
        let mut has_anonymous = false;
        for (index, mapping) in mappings.iter().enumerate().skip(first) {
            let adjacent = index == first || mappings[index - 1].end == mapping.start;
            if !adjacent || !mapping.may_be_guest_ram() || size >= guest_kib {
                break;
            }
            size += mapping.size_kib();
            usage.rss_kib += mapping.usage.rss_kib;
            usage.pss_kib += mapping.usage.pss_kib;
            has_anonymous |= mapping.anonymous();
            if size == guest_kib && has_anonymous {
                return Some(usage);
            }
        }
    }
    None
}

/// A `/proc/meminfo` value in KiB.
pub fn meminfo_kib(text: &str, key: &'static str) -> Option<u64> {
    text.lines().find_map(|line| kib_of(line, key))
}

fn read(path: PathBuf) -> Result<(String, PathBuf), MemoryError> {
    match fs::read_to_string(&path) {
        Ok(text) => Ok((text, path)),
        Err(source) => Err(MemoryError::Read { path, source }),
    }
}

/// RSS and PSS of process `pid`.
pub fn process_memory(pid: i32) -> Result<MemoryUse, MemoryError> {
    let (text, path) = read(PathBuf::from(format!("/proc/{pid}/smaps_rollup")))?;
    parse_rollup(&text).ok_or(MemoryError::NoRollup { path })
}

/// The memory of the husk-vmm the CLI recorded as `pid` and, when it
/// jailed itself (`--jail`: `pid` then only waits outside, and its one
/// child runs the VM), of that child too; with the pid that holds the
/// guest's RAM.
pub fn sandbox_memory(pid: i32) -> Result<(MemoryUse, i32), MemoryError> {
    let outer = process_memory(pid)?;
    let children =
        fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    match children
        .split_whitespace()
        .next()
        .and_then(|child| child.parse::<i32>().ok())
    {
        Some(child) => {
            let inner = process_memory(child)?;
            let both = MemoryUse {
                rss_kib: outer.rss_kib + inner.rss_kib,
                pss_kib: outer.pss_kib + inner.pss_kib,
            };
            Ok((both, child))
        }
        None => Ok((outer, pid)),
    }
}

/// The resident part of husk-vmm `pid`'s guest RAM of `guest_kib`.
pub fn guest_memory_of(pid: i32, guest_kib: u64) -> Result<MemoryUse, MemoryError> {
    let (text, path) = read(PathBuf::from(format!("/proc/{pid}/smaps")))?;
    guest_memory(&text, guest_kib).ok_or(MemoryError::NoGuestMemory { path, guest_kib })
}

/// The host's (MemTotal, MemAvailable) in KiB.
pub fn host_memory() -> Result<(u64, u64), MemoryError> {
    let (text, _) = read(PathBuf::from("/proc/meminfo"))?;
    let value = |key| meminfo_kib(&text, key).ok_or(MemoryError::NoMeminfo { key });
    Ok((value("MemTotal")?, value("MemAvailable")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// husk-vmm with a 128 MiB guest, as /proc/PID/smaps shows it: an
    /// anonymous mapping right below the guest's (2 MiB, so a search that
    /// merged neighbours would go wrong), the guest's RAM in two pieces
    /// (anonymous, then the initramfs mapped over its top), and more.
    const SMAPS: &str = "\
5603789f0000-560378bd3000 r-xp 000c2000 fe:00 5317187                    /work/main/target/release/husk-vmm
Size:               1932 kB
Rss:                 972 kB
Pss:                 500 kB
7fe8e31ff000-7fe8e33ff000 rw-p 00000000 00:00 0 
Size:               2048 kB
Rss:                   8 kB
Pss:                   8 kB
7fe8e3400000-7fe8e3600000 rw-p 00000000 00:00 0 
Size:               2048 kB
Rss:                   8 kB
Pss:                   8 kB
7fe8e3600000-7fe8eb0ff000 rw-p 00000000 00:00 0 
Size:             125948 kB
Rss:                8812 kB
Pss:                8812 kB
7fe8eb0ff000-7fe8eb600000 rw-p 00000000 fe:00 5312881                    /work/main/target/husk initramfs.cpio
Size:               5124 kB
Rss:                4000 kB
Pss:                1000 kB
7fe8eb600000-7fe8eb800000 rw-p 00000000 00:00 0 
Size:               2048 kB
Rss:                 100 kB
Pss:                 100 kB
7ffd1b2e0000-7ffd1b301000 rw-p 00000000 00:00 0                          [stack]
Size:                132 kB
Rss:                  16 kB
Pss:                  16 kB
";

    #[test]
    fn the_guest_ram_is_the_run_of_mappings_of_exactly_its_size() {
        assert_eq!(
            guest_memory(SMAPS, 128 * 1024),
            Some(MemoryUse {
                rss_kib: 8812 + 4000,
                pss_kib: 8812 + 1000
            })
        );
        // No run adds up to 64 MiB.
        assert_eq!(guest_memory(SMAPS, 64 * 1024), None);
        // A lone 2 MiB anonymous mapping is found as a 2 MiB guest.
        assert_eq!(
            guest_memory(SMAPS, 2048).map(|usage| usage.rss_kib),
            Some(8)
        );
    }

    #[test]
    fn file_names_with_spaces_and_special_names_are_read() {
        let mappings = parse_smaps(SMAPS);
        assert_eq!(mappings.len(), 7);
        assert_eq!(
            mappings[4].name.as_deref(),
            Some("/work/main/target/husk initramfs.cpio")
        );
        assert!(mappings[3].anonymous() && mappings[3].may_be_guest_ram());
        assert!(!mappings[0].may_be_guest_ram(), "r-xp is code");
        assert!(!mappings[6].may_be_guest_ram(), "[stack]");
        assert_eq!(mappings[4].size_kib(), 5124);
    }

    #[test]
    fn rollup_and_meminfo_values() {
        let rollup = "55d0c0000000-7fff00021000 ---p 00000000 00:00 0 [rollup]\n\
                      Rss:               21304 kB\n\
                      Pss:               19876 kB\n\
                      Pss_Anon:          18000 kB\n";
        assert_eq!(
            parse_rollup(rollup),
            Some(MemoryUse {
                rss_kib: 21304,
                pss_kib: 19876
            })
        );
        assert_eq!(parse_rollup("Rss: 1 kB\n"), None);
        let meminfo = "MemTotal:       24683520 kB\nMemFree:        21587968 kB\n\
                       MemAvailable:   23503872 kB\n";
        assert_eq!(meminfo_kib(meminfo, "MemAvailable"), Some(23503872));
        assert_eq!(meminfo_kib(meminfo, "MemTotal"), Some(24683520));
        assert_eq!(meminfo_kib(meminfo, "SwapTotal"), None);
    }
}
