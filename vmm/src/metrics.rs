//! The VMM's own memory footprint: resident memory minus the guest RAM pages
//! the guest has touched (read from /proc/self/smaps).

use std::fs;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryUsage {
    /// Resident set of the whole process.
    pub rss_kib: u64,
    /// Of which: guest RAM pages the guest touched.
    pub guest_kib: u64,
}

impl MemoryUsage {
    /// What running the VMM costs beyond the guest's own memory.
    pub fn overhead_kib(&self) -> u64 {
        self.rss_kib.saturating_sub(self.guest_kib)
    }

    pub fn summary(&self) -> String {
        format!(
            "husk-vmm: memory rss_kib={} guest_kib={} overhead_kib={}",
            self.rss_kib,
            self.guest_kib,
            self.overhead_kib()
        )
    }
}

/// Sums the `Rss:` lines of `smaps`, split by whether the mapping starts at
/// one of `guest_ranges` (host address ranges of guest RAM).
pub fn parse_smaps(smaps: &str, guest_ranges: &[(u64, u64)]) -> MemoryUsage {
    let mut usage = MemoryUsage {
        rss_kib: 0,
        guest_kib: 0,
    };
    let mut in_guest = false;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        if let Some((start, end)) = first.split_once('-') {
            if let (Ok(start), Ok(end)) =
                (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16))
            {
                in_guest = guest_ranges.iter().any(|&(s, e)| start >= s && end <= e);
                continue;
            }
        }
        if first == "Rss:" {
            let kib: u64 = fields.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            usage.rss_kib += kib;
            if in_guest {
                usage.guest_kib += kib;
            }
        }
    }
    usage
}

pub fn memory_usage(guest_ranges: &[(u64, u64)]) -> Option<MemoryUsage> {
    let smaps = fs::read_to_string("/proc/self/smaps").ok()?;
    Some(parse_smaps(&smaps, guest_ranges))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0c0000000-55d0c0100000 r-xp 00000000 fd:01 123 /usr/bin/husk-vmm
Size:               1024 kB
Rss:                 800 kB
Pss:                 800 kB
7f0000000000-7f0008000000 rw-p 00000000 00:00 0
Size:             131072 kB
Rss:               20480 kB
7fff00000000-7fff00021000 rw-p 00000000 00:00 0 [stack]
Rss:                  12 kB
";

    #[test]
    fn guest_pages_are_told_apart_from_the_vmm() {
        let usage = parse_smaps(SMAPS, &[(0x7f00_0000_0000, 0x7f00_0800_0000)]);
        assert_eq!(
            usage,
            MemoryUsage {
                rss_kib: 21292,
                guest_kib: 20480
            }
        );
        assert_eq!(usage.overhead_kib(), 812);
        assert!(usage.summary().ends_with("overhead_kib=812"));
    }

    #[test]
    fn no_guest_ranges_means_everything_is_overhead() {
        let usage = parse_smaps(SMAPS, &[]);
        assert_eq!(usage.guest_kib, 0);
        assert_eq!(usage.overhead_kib(), 21292);
    }
}
