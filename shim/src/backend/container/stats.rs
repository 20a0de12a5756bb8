//! What the container's cgroup says about it: resource usage in the shape
//! `husk events` prints (runc's `types.Stats`), and whether the freezer
//! holds it (`paused`).
//!
//! The engine's [`Cgroup::stats`] gives the figures both cgroup versions
//! share; the rest runc reports comes from the controller files directly:
//! memory.stat (v1 and v2, cgroup-v1/memory.rst and cgroup-v2.rst), the
//! CFS throttling counters in cpu.stat, and the memory limit hit count
//! (v1 memory.failcnt, v2 the `max` entry of memory.events).

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};

use husk_init::engine::cgroups::{Cgroup, CgroupError, CgroupStats, CgroupVersion};

use crate::backend::{
    CpuStats, CpuThrottling, CpuUsage, MemoryEntry, MemoryStats, PidsStats, Stats,
};

const NANOSECONDS_PER_MICROSECOND: u64 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("read the container's cgroup statistics")]
    Cgroup {
        #[source]
        source: CgroupError,
    },
    #[error("read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The container's resource usage.
pub fn collect(cgroup: &Cgroup) -> Result<Stats, StatsError> {
    let figures = cgroup
        .stats()
        .map_err(|source| StatsError::Cgroup { source })?;
    let version = cgroup.hierarchy().version();
    let memory_stat = match controller_dir(cgroup, "memory") {
        Some(dir) => read_optional(&dir.join("memory.stat"))?.unwrap_or_default(),
        None => String::new(),
    };
    let cpu_stat = match controller_dir(cgroup, "cpu") {
        Some(dir) => read_optional(&dir.join("cpu.stat"))?.unwrap_or_default(),
        None => String::new(),
    };
    let memory_failures = match (version, controller_dir(cgroup, "memory")) {
        (CgroupVersion::V1, Some(dir)) => read_optional(&dir.join("memory.failcnt"))?
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(0),
        (CgroupVersion::V2, Some(dir)) => read_optional(&dir.join("memory.events"))?
            .and_then(|text| flat_keyed(&text).get("max").copied())
            .unwrap_or(0),
        (_, None) => 0,
    };
    Ok(to_stats(
        &figures,
        version,
        &flat_keyed(&memory_stat),
        &flat_keyed(&cpu_stat),
        memory_failures,
    ))
}

/// runc's figures from the cgroup's. Unlimited memory shows as u64::MAX and
/// an unlimited pids count as 0, as runc shows them.
fn to_stats(
    figures: &CgroupStats,
    version: CgroupVersion,
    memory_stat: &BTreeMap<String, u64>,
    cpu_stat: &BTreeMap<String, u64>,
    memory_failures: u64,
) -> Stats {
    let cpu = figures.cpu.clone().unwrap_or_default();
    let throttled_time = match version {
        CgroupVersion::V1 => cpu_stat.get("throttled_time").copied().unwrap_or(0),
        CgroupVersion::V2 => {
            cpu_stat.get("throttled_usec").copied().unwrap_or(0) * NANOSECONDS_PER_MICROSECOND
        }
    };
    let memory = figures.memory.clone().unwrap_or_default();
    // The page cache: "cache" on v1, "file" on v2.
    let cache_key = match version {
        CgroupVersion::V1 => "cache",
        CgroupVersion::V2 => "file",
    };
    let pids = figures.pids.clone().unwrap_or_default();
    Stats {
        cpu: CpuStats {
            usage: CpuUsage {
                total: cpu.usage_usec * NANOSECONDS_PER_MICROSECOND,
                kernel: cpu.system_usec * NANOSECONDS_PER_MICROSECOND,
                user: cpu.user_usec * NANOSECONDS_PER_MICROSECOND,
            },
            throttling: CpuThrottling {
                periods: cpu_stat.get("nr_periods").copied().unwrap_or(0),
                throttled_periods: cpu_stat.get("nr_throttled").copied().unwrap_or(0),
                throttled_time,
            },
        },
        memory: MemoryStats {
            cache: memory_stat.get(cache_key).copied().unwrap_or(0),
            usage: MemoryEntry {
                limit: memory.limit_bytes.unwrap_or(u64::MAX),
                usage: memory.usage_bytes,
                max: memory.peak_bytes.unwrap_or(0),
                failcnt: memory_failures,
            },
            swap: MemoryEntry {
                limit: memory.swap_limit_bytes.unwrap_or(u64::MAX),
                usage: memory.swap_usage_bytes.unwrap_or(0),
                max: 0,
                failcnt: 0,
            },
            raw: memory_stat.clone(),
        },
        pids: PidsStats {
            current: pids.current,
            limit: pids.limit.unwrap_or(0),
        },
    }
}

/// Whether the cgroup freezer holds the container: v1 `freezer.state` is
/// FROZEN, v2 `cgroup.freeze` is 1 (cgroup-v1/freezer-subsystem.rst,
/// cgroup-v2.rst "Core Interface Files"). Without a freezer nothing is
/// frozen.
pub fn is_frozen(cgroup: &Cgroup) -> Result<bool, StatsError> {
    let (file, frozen) = match cgroup.hierarchy().version() {
        CgroupVersion::V1 => ("freezer.state", "FROZEN"),
        CgroupVersion::V2 => ("cgroup.freeze", "1"),
    };
    let Some(dir) = controller_dir(cgroup, "freezer") else {
        return Ok(false);
    };
    Ok(read_optional(&dir.join(file))?.is_some_and(|text| text.trim() == frozen))
}

/// The container's directory holding `controller`'s files: on v2 the one
/// unified directory, on v1 the directory in the hierarchy the controller
/// is mounted with.
fn controller_dir<'a>(cgroup: &'a Cgroup, controller: &str) -> Option<&'a Path> {
    let mut dirs = cgroup.paths().iter();
    let dir = match cgroup.hierarchy().version() {
        CgroupVersion::V2 => dirs.next(),
        CgroupVersion::V1 => dirs.find(|dir| {
            dir.mount.version == CgroupVersion::V1
                && dir.mount.controllers.iter().any(|name| name == controller)
        }),
    };
    dir.map(|dir| dir.path.as_path())
}

/// A file's text, None when it does not exist (the controller is not
/// enabled, or the kernel lacks the file).
fn read_optional(path: &Path) -> Result<Option<String>, StatsError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StatsError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// A "flat keyed" cgroup file (`key value` per line); lines that are not
/// a name and an unsigned number are skipped.
fn flat_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let key = words.next()?;
            let value = words.next()?.parse().ok()?;
            words.next().is_none().then(|| (key.to_string(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use husk_init::engine::cgroups::{
        CpuStats as CgroupCpu, Hierarchy, MemoryStats as CgroupMemory, PidsStats as CgroupPids,
    };

    use super::*;

    fn figures(limit: Option<u64>) -> CgroupStats {
        CgroupStats {
            cpu: Some(CgroupCpu {
                usage_usec: 1500,
                user_usec: 1000,
                system_usec: 500,
            }),
            memory: Some(CgroupMemory {
                usage_bytes: 4096,
                peak_bytes: Some(8192),
                limit_bytes: limit,
                swap_usage_bytes: None,
                swap_limit_bytes: None,
            }),
            pids: Some(CgroupPids {
                current: 3,
                limit: None,
            }),
            io: None,
        }
    }

    #[test]
    fn flat_keyed_files() {
        let parsed = flat_keyed("cache 4096\nrss 123\nhierarchical_memory_limit 9\nbad\nx y\n");
        assert_eq!(parsed.get("cache"), Some(&4096));
        assert_eq!(parsed.get("rss"), Some(&123));
        assert_eq!(parsed.len(), 3);
    }

    #[test]
    fn v1_figures_as_runc_reports_them() {
        let memory_stat = flat_keyed("cache 12288\nrss 4096\n");
        let cpu_stat = flat_keyed("nr_periods 10\nnr_throttled 2\nthrottled_time 5000\n");
        let stats = to_stats(
            &figures(Some(1 << 26)),
            CgroupVersion::V1,
            &memory_stat,
            &cpu_stat,
            7,
        );
        assert_eq!(stats.cpu.usage.total, 1_500_000);
        assert_eq!(stats.cpu.usage.user, 1_000_000);
        assert_eq!(stats.cpu.usage.kernel, 500_000);
        assert_eq!(stats.cpu.throttling.periods, 10);
        assert_eq!(stats.cpu.throttling.throttled_periods, 2);
        assert_eq!(stats.cpu.throttling.throttled_time, 5000);
        assert_eq!(stats.memory.cache, 12288);
        assert_eq!(stats.memory.usage.usage, 4096);
        assert_eq!(stats.memory.usage.max, 8192);
        assert_eq!(stats.memory.usage.limit, 1 << 26);
        assert_eq!(stats.memory.usage.failcnt, 7);
        assert_eq!(stats.memory.raw.get("rss"), Some(&4096));
        assert_eq!(stats.pids.current, 3);
        assert_eq!(stats.pids.limit, 0);
    }

    #[test]
    fn v2_names_and_units() {
        let memory_stat = flat_keyed("anon 4096\nfile 8192\n");
        let cpu_stat = flat_keyed("usage_usec 1500\nnr_periods 4\nthrottled_usec 3\n");
        let stats = to_stats(
            &figures(None),
            CgroupVersion::V2,
            &memory_stat,
            &cpu_stat,
            0,
        );
        assert_eq!(stats.memory.cache, 8192);
        assert_eq!(stats.memory.usage.limit, u64::MAX);
        assert_eq!(stats.cpu.throttling.throttled_time, 3000);
        assert_eq!(stats.cpu.throttling.periods, 4);
    }

    #[test]
    fn the_freezer_state_is_read_from_the_container_s_directory() {
        let directory = tempfile::tempdir().unwrap();
        let freezer = directory.path().join("freezer");
        let memory = directory.path().join("memory");
        for mount in [&freezer, &memory] {
            fs::create_dir_all(mount.join("husk/c1")).unwrap();
        }
        let hierarchy = Hierarchy::legacy(
            [
                (freezer.clone(), vec!["freezer".to_string()]),
                (memory.clone(), vec!["memory".to_string()]),
            ],
            None,
        );
        let cgroup = Cgroup::load_in(hierarchy, None, "c1").unwrap();
        assert!(!is_frozen(&cgroup).unwrap());
        fs::write(freezer.join("husk/c1/freezer.state"), "FROZEN\n").unwrap();
        assert!(is_frozen(&cgroup).unwrap());
        fs::write(freezer.join("husk/c1/freezer.state"), "THAWED\n").unwrap();
        assert!(!is_frozen(&cgroup).unwrap());

        let unified = directory.path().join("unified");
        fs::create_dir_all(unified.join("husk/c1")).unwrap();
        let cgroup = Cgroup::load_in(Hierarchy::unified(&unified), None, "c1").unwrap();
        fs::write(unified.join("husk/c1/cgroup.freeze"), "1\n").unwrap();
        assert!(is_frozen(&cgroup).unwrap());
    }
}
