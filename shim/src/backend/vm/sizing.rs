//! How big a container's VM is, and how long it may take to boot.
//!
//! - Memory: the container's memory limit (`linux.resources.memory.limit`)
//!   plus [`MEMORY_OVERHEAD_MIB`] for the guest kernel, husk-init and page
//!   cache, rounded up to a MiB, at least [`MIN_MEMORY_MIB`]; without a
//!   limit [`DEFAULT_MEMORY_MIB`]. Never more than the host has: guest
//!   memory is only reserved, but a guest bigger than the host is useless.
//!   The limit itself still applies to the container's cgroup inside the
//!   guest, so the container sees the limit it asked for.
//! - vCPUs: the CPU quota rounded up to whole CPUs
//!   (`ceil(cpu.quota / cpu.period)`, the period defaulting to 100 ms as in
//!   the kernel's CFS bandwidth control), between 1 and the host's CPUs;
//!   without a quota [`DEFAULT_VCPUS`].
//! - The annotations `run.husk.vm.memory-mib` and `run.husk.vm.vcpus`
//!   override both (the memory still no more than the host has);
//!   `run.husk.vm.boot-timeout` (seconds, or with an `s` or `ms` suffix)
//!   bounds how long `create` waits for the guest.
//!
//! A bad annotation is an error naming config.json, the key and the value
//! (cut short when it is long: annotations are the caller's free text).

use std::collections::HashMap;
use std::num::{IntErrorKind, ParseIntError};
use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::LinuxResources;

pub const MEMORY_ANNOTATION: &str = "run.husk.vm.memory-mib";
pub const VCPUS_ANNOTATION: &str = "run.husk.vm.vcpus";
pub const BOOT_TIMEOUT_ANNOTATION: &str = "run.husk.vm.boot-timeout";

/// Guest memory on top of the container's limit.
pub const MEMORY_OVERHEAD_MIB: u64 = 64;
/// The smallest guest sized from a limit.
pub const MIN_MEMORY_MIB: u64 = 128;
/// The guest of a container without a memory limit.
pub const DEFAULT_MEMORY_MIB: u64 = 256;
pub const DEFAULT_VCPUS: u32 = 1;
/// What `create` waits for the guest to be ready when no annotation says.
pub const DEFAULT_BOOT_TIMEOUT: Duration = Duration::from_secs(60);

/// How much of an annotation's value an error quotes.
const QUOTED_VALUE_CHARS: usize = 64;

/// The kernel's default CFS period (`cpu.cfs_period_us`, 100 ms).
const DEFAULT_CPU_PERIOD_MICROS: u64 = 100_000;
const MIB: u64 = 1 << 20;

/// The VM's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestSize {
    pub memory_mib: u64,
    pub vcpus: u32,
}

/// What the host offers, which bounds the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostCapacity {
    pub cpus: u32,
    pub memory_mib: u64,
}

impl HostCapacity {
    /// This host: its usable CPUs and its MemTotal (proc(5),
    /// /proc/meminfo). What cannot be read does not bound anything.
    pub fn of_this_host() -> HostCapacity {
        let cpus = std::thread::available_parallelism()
            .map(|count| count.get() as u32)
            .unwrap_or(u32::MAX);
        let memory_mib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|line| line.strip_prefix("MemTotal:"))
                    .and_then(|rest| {
                        rest.trim()
                            .trim_end_matches("kB")
                            .trim()
                            .parse::<u64>()
                            .ok()
                    })
            })
            .map_or(u64::MAX, |kib| kib.div_ceil(1024));
        HostCapacity { cpus, memory_mib }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SizingError {
    #[error(
        "{}: annotations.\"{key}\": {value:?} {reason}",
        config.display()
    )]
    InvalidAnnotation {
        config: PathBuf,
        key: &'static str,
        value: String,
        reason: String,
    },
}

/// The guest's memory and vCPUs for a container with `resources` and
/// `annotations` (see the module documentation).
pub fn guest_size(
    resources: Option<&LinuxResources>,
    annotations: Option<&HashMap<String, String>>,
    host: HostCapacity,
    config: &Path,
) -> Result<GuestSize, SizingError> {
    let annotation = |key: &'static str| annotations.and_then(|map| map.get(key));
    let memory_mib = match annotation(MEMORY_ANNOTATION) {
        Some(value) => {
            let memory_mib = parse_annotation(
                config,
                MEMORY_ANNOTATION,
                value,
                husk_vmm::config::MIN_MEMORY_MIB,
                husk_vmm::config::MAX_MEMORY_MIB,
            )?;
            if memory_mib > host.memory_mib {
                return Err(invalid_annotation(
                    config,
                    MEMORY_ANNOTATION,
                    value,
                    format!(
                        "is more than this host's memory ({} MiB); give at most that",
                        host.memory_mib
                    ),
                ));
            }
            memory_mib
        }
        None => memory_from_limit(resources).min(host.memory_mib.max(MIN_MEMORY_MIB)),
    };
    let vcpus = match annotation(VCPUS_ANNOTATION) {
        Some(value) => parse_annotation(
            config,
            VCPUS_ANNOTATION,
            value,
            1,
            u64::from(husk_vmm::arch::x86_64::mptable::MAX_SUPPORTED_CPUS),
        )? as u32,
        None => vcpus_from_quota(resources).min(host.cpus.max(1)),
    };
    Ok(GuestSize { memory_mib, vcpus })
}

fn memory_from_limit(resources: Option<&LinuxResources>) -> u64 {
    let limit = resources
        .and_then(|resources| resources.memory().as_ref())
        .and_then(|memory| memory.limit())
        // -1 (and 0 from some callers) means no limit.
        .filter(|limit| *limit > 0);
    match limit {
        Some(limit) => (limit as u64)
            .div_ceil(MIB)
            .saturating_add(MEMORY_OVERHEAD_MIB)
            .max(MIN_MEMORY_MIB),
        None => DEFAULT_MEMORY_MIB,
    }
}

fn vcpus_from_quota(resources: Option<&LinuxResources>) -> u32 {
    let Some(cpu) = resources.and_then(|resources| resources.cpu().as_ref()) else {
        return DEFAULT_VCPUS;
    };
    let Some(quota) = cpu.quota().filter(|quota| *quota > 0) else {
        return DEFAULT_VCPUS;
    };
    let period = cpu
        .period()
        .filter(|period| *period > 0)
        .unwrap_or(DEFAULT_CPU_PERIOD_MICROS);
    u32::try_from((quota as u64).div_ceil(period))
        .unwrap_or(u32::MAX)
        .max(1)
}

/// The error for annotation `key` of `config` holding `value`.
fn invalid_annotation(
    config: &Path,
    key: &'static str,
    value: &str,
    reason: String,
) -> SizingError {
    let mut quoted: String = value.chars().take(QUOTED_VALUE_CHARS).collect();
    if quoted.len() < value.len() {
        quoted.push_str("...");
    }
    SizingError::InvalidAnnotation {
        config: config.to_path_buf(),
        key,
        value: quoted,
        reason,
    }
}

fn parse_annotation(
    config: &Path,
    key: &'static str,
    value: &str,
    min: u64,
    max: u64,
) -> Result<u64, SizingError> {
    let invalid = |reason: String| invalid_annotation(config, key, value, reason);
    let out_of_range = || invalid(format!("is out of range; give one from {min} to {max}"));
    let number: u64 = value.trim().parse().map_err(|error: ParseIntError| {
        match error.kind() {
            // Digits, just too many of them for a u64.
            IntErrorKind::PosOverflow => out_of_range(),
            _ => invalid(format!(
                "is not a whole number; give one from {min} to {max}"
            )),
        }
    })?;
    if !(min..=max).contains(&number) {
        return Err(out_of_range());
    }
    Ok(number)
}

/// How long `create` waits for the guest to boot and answer.
pub fn boot_timeout(
    annotations: Option<&HashMap<String, String>>,
    config: &Path,
) -> Result<Duration, SizingError> {
    let Some(value) = annotations.and_then(|map| map.get(BOOT_TIMEOUT_ANNOTATION)) else {
        return Ok(DEFAULT_BOOT_TIMEOUT);
    };
    let invalid = || {
        invalid_annotation(
            config,
            BOOT_TIMEOUT_ANNOTATION,
            value,
            "is not a duration; give seconds (\"90\", \"90s\") or milliseconds (\"500ms\"), \
             more than zero"
                .to_string(),
        )
    };
    let text = value.trim();
    let duration = if let Some(millis) = text.strip_suffix("ms") {
        millis.trim().parse::<u64>().map(Duration::from_millis)
    } else {
        text.strip_suffix('s')
            .unwrap_or(text)
            .trim()
            .parse::<u64>()
            .map(Duration::from_secs)
    }
    .map_err(|_| invalid())?;
    if duration.is_zero() {
        return Err(invalid());
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use oci_spec::runtime::{LinuxCpuBuilder, LinuxMemoryBuilder, LinuxResourcesBuilder};

    use super::*;

    const HOST: HostCapacity = HostCapacity {
        cpus: 8,
        memory_mib: 16 * 1024,
    };

    fn config() -> &'static Path {
        Path::new("/b/config.json")
    }

    fn memory_limit(bytes: i64) -> LinuxResources {
        LinuxResourcesBuilder::default()
            .memory(LinuxMemoryBuilder::default().limit(bytes).build().unwrap())
            .build()
            .unwrap()
    }

    fn cpu(quota: i64, period: Option<u64>) -> LinuxResources {
        let mut builder = LinuxCpuBuilder::default().quota(quota);
        if let Some(period) = period {
            builder = builder.period(period);
        }
        LinuxResourcesBuilder::default()
            .cpu(builder.build().unwrap())
            .build()
            .unwrap()
    }

    fn size(resources: Option<&LinuxResources>) -> GuestSize {
        guest_size(resources, None, HOST, config()).unwrap()
    }

    fn annotated(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn no_limits_give_the_default_guest() {
        assert_eq!(
            size(None),
            GuestSize {
                memory_mib: DEFAULT_MEMORY_MIB,
                vcpus: DEFAULT_VCPUS
            }
        );
        // -1 is "unlimited" in runtime-spec resources.
        assert_eq!(size(Some(&memory_limit(-1))).memory_mib, DEFAULT_MEMORY_MIB);
    }

    #[test]
    fn memory_is_the_limit_plus_the_overhead_rounded_up_to_a_mib() {
        assert_eq!(size(Some(&memory_limit(512 << 20))).memory_mib, 512 + 64);
        assert_eq!(
            size(Some(&memory_limit((512 << 20) + 1))).memory_mib,
            513 + 64
        );
        // Small limits still get a guest that boots comfortably.
        assert_eq!(
            size(Some(&memory_limit(6 << 20))).memory_mib,
            MIN_MEMORY_MIB
        );
        // Never more than the host has.
        assert_eq!(
            size(Some(&memory_limit(1 << 40))).memory_mib,
            HOST.memory_mib
        );
    }

    #[test]
    fn vcpus_are_the_quota_rounded_up_and_bounded_by_the_host() {
        assert_eq!(size(Some(&cpu(50_000, Some(100_000)))).vcpus, 1);
        assert_eq!(size(Some(&cpu(150_000, Some(100_000)))).vcpus, 2);
        assert_eq!(size(Some(&cpu(200_000, None))).vcpus, 2);
        assert_eq!(size(Some(&cpu(2_000_000, Some(100_000)))).vcpus, HOST.cpus);
        // -1: no quota.
        assert_eq!(size(Some(&cpu(-1, Some(100_000)))).vcpus, DEFAULT_VCPUS);
    }

    #[test]
    fn annotations_override_the_resources() {
        let annotations = annotated(&[(MEMORY_ANNOTATION, "1024"), (VCPUS_ANNOTATION, "3")]);
        let size = guest_size(
            Some(&memory_limit(64 << 20)),
            Some(&annotations),
            HOST,
            config(),
        )
        .unwrap();
        assert_eq!(
            size,
            GuestSize {
                memory_mib: 1024,
                vcpus: 3
            }
        );
    }

    #[test]
    fn bad_annotations_name_the_key_and_the_range() {
        for (key, value) in [
            (MEMORY_ANNOTATION, "lots"),
            (MEMORY_ANNOTATION, "1"),
            (VCPUS_ANNOTATION, "0"),
            (VCPUS_ANNOTATION, "-2"),
        ] {
            let annotations = annotated(&[(key, value)]);
            let error = guest_size(None, Some(&annotations), HOST, config())
                .unwrap_err()
                .to_string();
            assert!(
                error.starts_with(&format!(
                    "/b/config.json: annotations.\"{key}\": \"{value}\""
                )),
                "{error}"
            );
            assert!(error.contains("give one from"), "{error}");
        }
    }

    #[test]
    fn a_memory_annotation_beyond_the_host_or_a_u64_is_out_of_range() {
        let annotations = annotated(&[(MEMORY_ANNOTATION, "32768")]);
        let error = guest_size(None, Some(&annotations), HOST, config())
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "/b/config.json: annotations.\"run.husk.vm.memory-mib\": \"32768\" is more than this \
             host's memory (16384 MiB); give at most that"
        );
        // The host's own size is fine.
        let annotations = annotated(&[(MEMORY_ANNOTATION, "16384")]);
        assert_eq!(
            guest_size(None, Some(&annotations), HOST, config())
                .unwrap()
                .memory_mib,
            16384
        );
        let annotations = annotated(&[(VCPUS_ANNOTATION, "99999999999999999999999")]);
        let error = guest_size(None, Some(&annotations), HOST, config())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("is out of range; give one from 1 to 37"),
            "{error}"
        );
    }

    #[test]
    fn a_long_annotation_value_is_quoted_cut_short() {
        let long = "x".repeat(100_000);
        let annotations = annotated(&[(VCPUS_ANNOTATION, &long)]);
        let error = guest_size(None, Some(&annotations), HOST, config())
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(&format!(
                "/b/config.json: annotations.\"{VCPUS_ANNOTATION}\": \"{}...\" is not a whole number",
                "x".repeat(QUOTED_VALUE_CHARS)
            )),
            "{error}"
        );
        assert!(error.len() < 300, "{error}");
    }

    #[test]
    fn the_boot_timeout_annotation() {
        assert_eq!(boot_timeout(None, config()).unwrap(), DEFAULT_BOOT_TIMEOUT);
        for (value, expected) in [
            ("240", Duration::from_secs(240)),
            ("90s", Duration::from_secs(90)),
            ("1500ms", Duration::from_millis(1500)),
        ] {
            let annotations = annotated(&[(BOOT_TIMEOUT_ANNOTATION, value)]);
            assert_eq!(
                boot_timeout(Some(&annotations), config()).unwrap(),
                expected,
                "{value}"
            );
        }
        for value in ["0", "soon", "5m"] {
            let annotations = annotated(&[(BOOT_TIMEOUT_ANNOTATION, value)]);
            let error = boot_timeout(Some(&annotations), config())
                .unwrap_err()
                .to_string();
            assert!(error.contains(BOOT_TIMEOUT_ANNOTATION), "{error}");
        }
    }
}
