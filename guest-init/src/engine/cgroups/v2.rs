//! cgroup v2: one directory, controllers enabled from the root down
//! (Documentation/admin-guide/cgroup-v2.rst). v1-style values from the spec
//! are converted the way runc converts them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path};

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxRdma, LinuxResources};

use super::{
    flat_keyed, parse_device_number, read_limit, read_optional, read_u64, wait_until, write_file,
    CgroupError, CgroupStats, CgroupWarning, CpuStats, IoStats, MemoryStats, PidsStats,
    FREEZE_TIMEOUT,
};

/// Enables, in the root and in every parent of the container's cgroup, each
/// controller the parent has, so the leaf gets them all (a controller reaches
/// a child only through its parent's cgroup.subtree_control). Like runc, a
/// controller that cannot be enabled is reported, not fatal; a setting that
/// needs it fails later with an error naming the setting.
pub(super) fn enable_controllers(
    root: &Path,
    relative: &Path,
) -> Result<Vec<CgroupWarning>, CgroupError> {
    let mut warnings = Vec::new();
    let mut dir = root.to_path_buf();
    let parents: Vec<Component<'_>> = relative.components().collect();
    let parents = &parents[..parents.len().saturating_sub(1)];
    for next in std::iter::once(None).chain(parents.iter().map(Some)) {
        if let Some(component) = next {
            dir.push(component);
        }
        let available = read_words(&dir.join("cgroup.controllers"))?;
        let enabled = read_words(&dir.join("cgroup.subtree_control"))?;
        let missing: Vec<&String> = available.difference(&enabled).collect();
        if missing.is_empty() {
            continue;
        }
        let all: Vec<String> = missing.iter().map(|name| format!("+{name}")).collect();
        if write_file(&dir, "cgroup.subtree_control", &all.join(" ")).is_ok() {
            continue;
        }
        // One at a time, to enable every controller that can be.
        for name in missing {
            if let Err(error) = write_file(&dir, "cgroup.subtree_control", &format!("+{name}")) {
                warnings.push(CgroupWarning::ControllerNotEnabled {
                    controller: name.clone(),
                    subtree_control: dir.join("cgroup.subtree_control"),
                    error: std::error::Error::source(&error)
                        .map_or_else(|| error.to_string(), |source| source.to_string()),
                });
            }
        }
    }
    Ok(warnings)
}

/// The whitespace-separated names in a file (cgroup.controllers,
/// cgroup.subtree_control); a leading '+' is ignored. Empty when absent.
fn read_words(path: &Path) -> Result<BTreeSet<String>, CgroupError> {
    Ok(read_optional(path)?
        .unwrap_or_default()
        .split_whitespace()
        .map(|word| word.trim_start_matches('+').to_string())
        .collect())
}

/// Writes `resources` into the container's v2 directory.
pub(super) fn apply(
    dir: &Path,
    resources: &LinuxResources,
) -> Result<Vec<CgroupWarning>, CgroupError> {
    let mut warnings = Vec::new();
    let available = read_words(&dir.join("cgroup.controllers"))?;
    let require = |controller: &'static str, field: &'static str| {
        if available.contains(controller) {
            Ok(())
        } else {
            Err(CgroupError::ControllerUnavailable {
                field,
                controller,
                path: dir.to_path_buf(),
            })
        }
    };
    if let Some(memory) = resources.memory() {
        apply_memory(dir, memory, &require, &mut warnings)?;
    }
    if let Some(cpu) = resources.cpu() {
        apply_cpu(dir, cpu, &require)?;
    }
    if let Some(pids) = resources.pids() {
        require("pids", "linux.resources.pids")?;
        write_file(dir, "pids.max", &pids_max_value(pids.limit()))?;
    }
    if let Some(block_io) = resources.block_io() {
        apply_io(dir, block_io, &require, &mut warnings)?;
    }
    if let Some(limits) = resources
        .hugepage_limits()
        .as_ref()
        .filter(|l| !l.is_empty())
    {
        require("hugetlb", "linux.resources.hugepageLimits")?;
        for (index, limit) in limits.iter().enumerate() {
            let size = checked_page_size(limit.page_size(), index)?;
            let value = limit.limit().to_string();
            // The spec prefers reservation limits where the kernel has them
            // (hugetlb.<size>.rsvd.max, Linux 5.7).
            let reservation_file = format!("hugetlb.{size}.rsvd.max");
            if dir.join(&reservation_file).exists() {
                write_file(dir, &reservation_file, &value)?;
            }
            write_file(dir, &format!("hugetlb.{size}.max"), &value)?;
        }
    }
    if let Some(rdma) = resources.rdma().as_ref().filter(|r| !r.is_empty()) {
        require("rdma", "linux.resources.rdma")?;
        for (device, limit) in rdma {
            write_file(dir, "rdma.max", &rdma_max_value(device, limit))?;
        }
    }
    if resources.network().is_some() {
        warnings.push(CgroupWarning::SettingIgnored {
            field: "linux.resources.network",
            reason: "cgroup v2 has no net_cls or net_prio controller",
        });
    }
    if let Some(rules) = resources.devices().as_ref().filter(|r| !r.is_empty()) {
        warnings.push(CgroupWarning::DeviceRulesNotEnforced { rules: rules.len() });
    }
    // Last, so these override the fields above, as in runc.
    if let Some(unified) = resources.unified() {
        let sorted: BTreeMap<&String, &String> = unified.iter().collect();
        for (key, value) in sorted {
            let field = format!("linux.resources.unified[{key:?}]");
            if key.is_empty() || key.contains('/') || key.contains("..") {
                return Err(CgroupError::InvalidResource {
                    field,
                    reason: "a key must be a file name in the container's cgroup, without '/' \
                             or '..'"
                        .to_string(),
                });
            }
            if !dir.join(key).exists() {
                return Err(CgroupError::InvalidResource {
                    field,
                    reason: format!(
                        "{} has no such file (unknown key, or its controller is not enabled)",
                        dir.display()
                    ),
                });
            }
            write_file(dir, key, value)?;
        }
    }
    Ok(warnings)
}

fn apply_memory(
    dir: &Path,
    memory: &LinuxMemory,
    require: &dyn Fn(&'static str, &'static str) -> Result<(), CgroupError>,
    warnings: &mut Vec<CgroupWarning>,
) -> Result<(), CgroupError> {
    let limit = memory.limit().filter(|value| *value != 0);
    let reservation = memory.reservation().filter(|value| *value != 0);
    let swap = memory.swap().filter(|value| *value != 0);
    #[allow(deprecated)]
    let ignored = [
        (
            memory.kernel().is_some(),
            "linux.resources.memory.kernel",
            "kernel memory limits are deprecated (Linux 5.4) and not applied",
        ),
        (
            memory.kernel_tcp().is_some(),
            "linux.resources.memory.kernelTCP",
            "cgroup v2 counts TCP buffers in memory.max and has no separate limit",
        ),
        (
            memory.swappiness().is_some(),
            "linux.resources.memory.swappiness",
            "cgroup v2 has no per-cgroup swappiness",
        ),
        (
            memory.disable_oom_killer() == Some(true),
            "linux.resources.memory.disableOOMKiller",
            "cgroup v2 cannot disable the OOM killer for a cgroup",
        ),
        (
            memory.use_hierarchy() == Some(false),
            "linux.resources.memory.useHierarchy",
            "cgroup v2 always accounts memory hierarchically",
        ),
    ];
    for (set, field, reason) in ignored {
        if set {
            warnings.push(CgroupWarning::SettingIgnored { field, reason });
        }
    }
    if limit.is_none() && reservation.is_none() && swap.is_none() {
        return Ok(());
    }
    require("memory", "linux.resources.memory")?;
    for (field, value) in [
        ("linux.resources.memory.limit", limit),
        ("linux.resources.memory.swap", swap),
        ("linux.resources.memory.reservation", reservation),
    ] {
        check_memory_value(field, value)?;
    }
    if memory.check_before_update() == Some(true) {
        if let (Some(new_limit), Some(usage)) = (
            limit.filter(|value| *value > 0),
            read_u64(&dir.join("memory.current"))?,
        ) {
            check_usage_fits(usage, new_limit)?;
        }
    }
    if let Some(swap_max) = swap_max_value(limit, swap)? {
        if dir.join("memory.swap.max").exists() {
            write_file(dir, "memory.swap.max", &swap_max)?;
        } else {
            warnings.push(CgroupWarning::SettingIgnored {
                field: "linux.resources.memory.swap",
                reason: "the kernel does not account swap (no memory.swap.max)",
            });
        }
    }
    if let Some(limit) = limit {
        write_file(dir, "memory.max", &max_or_number(limit))?;
    }
    if let Some(reservation) = reservation {
        write_file(dir, "memory.low", &max_or_number(reservation))?;
    }
    Ok(())
}

/// Memory values are bytes, or -1 for unlimited.
pub(super) fn check_memory_value(field: &str, value: Option<i64>) -> Result<(), CgroupError> {
    match value {
        Some(value) if value < -1 => Err(CgroupError::InvalidResource {
            field: field.to_string(),
            reason: format!("{value} is not a byte count; use -1 for no limit"),
        }),
        _ => Ok(()),
    }
}

/// `checkBeforeUpdate`: refuse a limit below what the container already uses
/// rather than let the kernel reclaim or OOM-kill to meet it.
pub(super) fn check_usage_fits(usage: u64, new_limit: i64) -> Result<(), CgroupError> {
    if u64::try_from(new_limit).is_ok_and(|limit| usage > limit) {
        return Err(CgroupError::InvalidResource {
            field: "linux.resources.memory.limit".to_string(),
            reason: format!(
                "{new_limit} is below the container's current usage of {usage} bytes \
                 (checkBeforeUpdate is set)"
            ),
        });
    }
    Ok(())
}

/// The spec's `swap` is memory+swap (the v1 meaning); v2's memory.swap.max is
/// swap alone, so it gets swap − limit. Conversion as runc's
/// ConvertMemorySwapToCgroupV2Value: unlimited memory without a swap setting
/// means unlimited swap; -1 is "max"; equal values mean no swap.
pub(super) fn swap_max_value(
    limit: Option<i64>,
    swap: Option<i64>,
) -> Result<Option<String>, CgroupError> {
    let invalid = |reason: &str| CgroupError::InvalidResource {
        field: "linux.resources.memory.swap".to_string(),
        reason: reason.to_string(),
    };
    match (limit, swap) {
        (Some(-1), None) | (_, Some(-1)) => Ok(Some("max".to_string())),
        (_, None) => Ok(None),
        (None | Some(-1), Some(_)) => Err(invalid(
            "a swap limit needs a memory limit (linux.resources.memory.limit)",
        )),
        (Some(limit), Some(swap)) if swap < limit => Err(invalid(
            "memory+swap must be at least linux.resources.memory.limit",
        )),
        (Some(limit), Some(swap)) => Ok(Some((swap - limit).to_string())),
    }
}

fn max_or_number(value: i64) -> String {
    if value == -1 {
        "max".to_string()
    } else {
        value.to_string()
    }
}

/// pids.max: a positive limit, or "max" for 0 and negative values (the
/// spec's and Docker's "no limit").
pub(super) fn pids_max_value(limit: i64) -> String {
    if limit > 0 {
        limit.to_string()
    } else {
        "max".to_string()
    }
}

fn apply_cpu(
    dir: &Path,
    cpu: &LinuxCpu,
    require: &dyn Fn(&'static str, &'static str) -> Result<(), CgroupError>,
) -> Result<(), CgroupError> {
    let shares = cpu.shares().filter(|value| *value != 0);
    let quota = cpu.quota().filter(|value| *value != 0);
    let period = cpu.period().filter(|value| *value != 0);
    for (field, value) in [
        (
            "linux.resources.cpu.realtimeRuntime",
            cpu.realtime_runtime().unwrap_or(0) != 0,
        ),
        (
            "linux.resources.cpu.realtimePeriod",
            cpu.realtime_period().unwrap_or(0) != 0,
        ),
    ] {
        if value {
            return Err(CgroupError::InvalidResource {
                field: field.to_string(),
                reason: "cgroup v2 has no realtime CPU budget; remove the setting".to_string(),
            });
        }
    }
    if shares.is_some()
        || quota.is_some()
        || period.is_some()
        || cpu.burst().is_some()
        || cpu.idle().is_some()
    {
        require("cpu", "linux.resources.cpu")?;
        if let Some(shares) = shares {
            write_file(
                dir,
                "cpu.weight",
                &cpu_weight_from_shares(shares).to_string(),
            )?;
        }
        if let Some(value) = cpu_max_value(quota, period)? {
            write_file(dir, "cpu.max", &value)?;
        }
        if let Some(burst) = cpu.burst() {
            write_file(dir, "cpu.max.burst", &burst.to_string())?;
        }
        if let Some(idle) = cpu.idle() {
            write_file(dir, "cpu.idle", &idle.to_string())?;
        }
    }
    let cpus = cpu.cpus().as_deref().filter(|value| !value.is_empty());
    let mems = cpu.mems().as_deref().filter(|value| !value.is_empty());
    if cpus.is_some() || mems.is_some() {
        require("cpuset", "linux.resources.cpu.cpus/mems")?;
        if let Some(cpus) = cpus {
            write_file(dir, "cpuset.cpus", cpus)?;
        }
        if let Some(mems) = mems {
            write_file(dir, "cpuset.mems", mems)?;
        }
    }
    Ok(())
}

/// v1 cpu.shares (2..262144, default 1024) to v2 cpu.weight (1..10000,
/// default 100), the linear map runc uses: 1 + ((shares - 2) * 9999) / 262142.
pub(super) fn cpu_weight_from_shares(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// cpu.max is "QUOTA PERIOD" with "max" for no quota; the period may be
/// left out to keep the current one (runc writes it the same way).
pub(super) fn cpu_max_value(
    quota: Option<i64>,
    period: Option<u64>,
) -> Result<Option<String>, CgroupError> {
    if quota.is_none() && period.is_none() {
        return Ok(None);
    }
    let quota = match quota {
        Some(quota) if quota > 0 => quota.to_string(),
        None | Some(-1) => "max".to_string(),
        Some(quota) => {
            return Err(CgroupError::InvalidResource {
                field: "linux.resources.cpu.quota".to_string(),
                reason: format!("{quota} is not a quota in microseconds; use -1 for none"),
            })
        }
    };
    Ok(Some(match period {
        Some(period) => format!("{quota} {period}"),
        None => quota,
    }))
}

fn apply_io(
    dir: &Path,
    block_io: &LinuxBlockIo,
    require: &dyn Fn(&'static str, &'static str) -> Result<(), CgroupError>,
    warnings: &mut Vec<CgroupWarning>,
) -> Result<(), CgroupError> {
    let weight = block_io.weight().filter(|value| *value != 0);
    let weight_devices = block_io.weight_device().as_deref().unwrap_or_default();
    let throttles = [
        ("rbps", block_io.throttle_read_bps_device()),
        ("wbps", block_io.throttle_write_bps_device()),
        ("riops", block_io.throttle_read_iops_device()),
        ("wiops", block_io.throttle_write_iops_device()),
    ];
    let has_throttles = throttles
        .iter()
        .any(|(_, devices)| devices.as_ref().is_some_and(|d| !d.is_empty()));
    let has_leaf_weight = block_io.leaf_weight().is_some()
        || weight_devices
            .iter()
            .any(|device| device.leaf_weight().is_some());
    if has_leaf_weight {
        warnings.push(CgroupWarning::SettingIgnored {
            field: "linux.resources.blockIO.leafWeight",
            reason: "cgroup v2 has no leaf weights",
        });
    }
    if weight.is_none() && weight_devices.is_empty() && !has_throttles {
        return Ok(());
    }
    require("io", "linux.resources.blockIO")?;
    // BFQ takes the v1 weight range (1..1000) as is; io.weight
    // (1..10000) needs runc's conversion.
    let bfq = dir.join("io.bfq.weight").exists();
    let (weight_file, convert): (&str, fn(u16) -> u64) = if bfq {
        ("io.bfq.weight", u64::from)
    } else {
        ("io.weight", io_weight_from_blkio_weight)
    };
    if let Some(weight) = weight {
        write_file(dir, weight_file, &convert(weight).to_string())?;
    }
    for device in weight_devices {
        if let Some(weight) = device.weight() {
            let line = format!("{}:{} {}", device.major(), device.minor(), convert(weight));
            write_file(dir, weight_file, &line)?;
        }
    }
    // io.max takes "MAJ:MIN key=value..." per device; one line per device.
    let mut limits: BTreeMap<(i64, i64), Vec<String>> = BTreeMap::new();
    for (key, devices) in throttles {
        for device in devices.iter().flatten() {
            // A rate of 0 removes a v1 throttle; v2 spells that "max" and
            // rejects 0.
            let rate = match device.rate() {
                0 => "max".to_string(),
                rate => rate.to_string(),
            };
            limits
                .entry((device.major(), device.minor()))
                .or_default()
                .push(format!("{key}={rate}"));
        }
    }
    for ((major, minor), settings) in limits {
        write_file(
            dir,
            "io.max",
            &format!("{major}:{minor} {}", settings.join(" ")),
        )?;
    }
    Ok(())
}

/// v1 blkio.weight (10..1000) to v2 io.weight (1..10000), runc's linear map:
/// 1 + (weight - 10) * 9999 / 990.
pub(super) fn io_weight_from_blkio_weight(weight: u16) -> u64 {
    let weight = u64::from(weight.clamp(10, 1000));
    1 + (weight - 10) * 9999 / 990
}

/// A hugepage size as the file names spell it ("2MB", "1GB"); anything that
/// could leave the directory is refused.
pub(super) fn checked_page_size(size: &str, index: usize) -> Result<&str, CgroupError> {
    let well_formed = size
        .strip_suffix('B')
        .and_then(|number| number.strip_suffix(['K', 'M', 'G']))
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()));
    if well_formed {
        Ok(size)
    } else {
        Err(CgroupError::InvalidResource {
            field: format!("linux.resources.hugepageLimits[{index}].pageSize"),
            reason: format!("{size:?} is not a page size such as \"2MB\" or \"1GB\""),
        })
    }
}

/// rdma.max's "DEVICE hca_handle=N hca_object=N", "max" for what is unset.
pub(super) fn rdma_max_value(device: &str, limit: &LinuxRdma) -> String {
    let value = |limit: Option<u32>| limit.map_or_else(|| "max".to_string(), |n| n.to_string());
    format!(
        "{device} hca_handle={} hca_object={}",
        value(limit.hca_handles()),
        value(limit.hca_objects())
    )
}

/// Freezes through cgroup.freeze (Linux 5.2) and waits for cgroup.events to
/// report "frozen 1", which the kernel sets once every task has stopped.
pub(super) fn freeze(dir: &Path) -> Result<(), CgroupError> {
    write_file(dir, "cgroup.freeze", "1")?;
    if wait_for_frozen(dir, true)? {
        return Ok(());
    }
    write_file(dir, "cgroup.freeze", "0")?;
    Err(CgroupError::FreezeTimeout {
        path: dir.to_path_buf(),
        waited: FREEZE_TIMEOUT,
    })
}

pub(super) fn thaw(dir: &Path) -> Result<(), CgroupError> {
    write_file(dir, "cgroup.freeze", "0")?;
    // Thawing takes effect at once; waiting only lets a caller that reads
    // cgroup.events next see "frozen 0". Tasks the kernel is slow to wake
    // still run, so a slow report is no error.
    wait_for_frozen(dir, false)?;
    Ok(())
}

fn wait_for_frozen(dir: &Path, frozen: bool) -> Result<bool, CgroupError> {
    let events = dir.join("cgroup.events");
    let wanted = if frozen { "1" } else { "0" };
    wait_until(FREEZE_TIMEOUT, || {
        let content = read_optional(&events)?.unwrap_or_default();
        Ok(content.lines().any(|line| {
            line.split_once(' ')
                .is_some_and(|(key, value)| key == "frozen" && value.trim() == wanted)
        }))
    })
}

pub(super) fn stats(dir: &Path) -> Result<CgroupStats, CgroupError> {
    let mut stats = CgroupStats::default();
    // cpu.stat's usage lines exist even without the cpu controller.
    if let Some(content) = read_optional(&dir.join("cpu.stat"))? {
        let mut cpu = CpuStats::default();
        for (key, value) in flat_keyed(&content) {
            match key {
                "usage_usec" => cpu.usage_usec = value,
                "user_usec" => cpu.user_usec = value,
                "system_usec" => cpu.system_usec = value,
                _ => {}
            }
        }
        stats.cpu = Some(cpu);
    }
    if let Some(usage_bytes) = read_u64(&dir.join("memory.current"))? {
        stats.memory = Some(MemoryStats {
            usage_bytes,
            peak_bytes: read_u64(&dir.join("memory.peak"))?,
            limit_bytes: read_limit(&dir.join("memory.max"))?.flatten(),
            swap_usage_bytes: read_u64(&dir.join("memory.swap.current"))?,
            swap_limit_bytes: read_limit(&dir.join("memory.swap.max"))?.flatten(),
        });
    }
    if let Some(current) = read_u64(&dir.join("pids.current"))? {
        stats.pids = Some(PidsStats {
            current,
            limit: read_limit(&dir.join("pids.max"))?.flatten(),
        });
    }
    if let Some(content) = read_optional(&dir.join("io.stat"))? {
        let mut io = IoStats::default();
        // "MAJ:MIN rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N"
        for line in content.lines() {
            let mut fields = line.split_whitespace();
            let Some((major, minor)) = fields.next().and_then(parse_device_number) else {
                continue;
            };
            let entry = io.device(major, minor);
            for field in fields {
                let Some((key, value)) = field.split_once('=') else {
                    continue;
                };
                let Ok(value) = value.parse() else { continue };
                match key {
                    "rbytes" => entry.read_bytes = value,
                    "wbytes" => entry.write_bytes = value,
                    "rios" => entry.read_ios = value,
                    "wios" => entry.write_ios = value,
                    _ => {}
                }
            }
        }
        stats.io = Some(io);
    }
    Ok(stats)
}
