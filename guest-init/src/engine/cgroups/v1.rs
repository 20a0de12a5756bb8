//! cgroup v1: one directory per controller hierarchy
//! (Documentation/admin-guide/cgroup-v1/). The file each `linux.resources`
//! field goes to follows runc's fs driver.

use std::path::Path;

use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxDeviceType, LinuxMemory, LinuxResources,
};

use super::{
    flat_keyed, read_optional, read_u64, wait_until, write_file, CgroupDir, CgroupError,
    CgroupStats, CgroupVersion, CgroupWarning, CpuStats, IoStats, MemoryStats, PidsStats,
    FREEZE_TIMEOUT,
};

/// What v1 memory files read when there is no limit: PAGE_COUNTER_MAX pages
/// (LONG_MAX rounded down to a page), 9223372036854771712 with 4 KiB pages.
const UNLIMITED_THRESHOLD: u64 = 0x7FFF_FFFF_FFFF_F000;

/// USER_HZ, the unit of cpuacct.stat; fixed at 100 on x86 whatever the
/// kernel's HZ (include/asm-generic/param.h).
const MICROSECONDS_PER_USER_TICK: u64 = 1_000_000 / 100;

/// The container's directory per v1 controller.
pub(super) struct ControllerDirs<'a> {
    dirs: &'a [CgroupDir],
}

impl<'a> ControllerDirs<'a> {
    pub(super) fn new(dirs: &'a [CgroupDir]) -> Self {
        ControllerDirs { dirs }
    }

    pub(super) fn get(&self, controller: &str) -> Option<&'a Path> {
        self.dirs
            .iter()
            .find(|dir| {
                dir.mount.version == CgroupVersion::V1
                    && dir.mount.controllers.iter().any(|c| c == controller)
            })
            .map(|dir| dir.path.as_path())
    }

    /// The controller's directory, or an error naming the setting that needs
    /// it (runc refuses a limit it cannot set, too).
    fn require(
        &self,
        controller: &'static str,
        field: &'static str,
    ) -> Result<&'a Path, CgroupError> {
        self.get(controller)
            .ok_or_else(|| CgroupError::ControllerUnavailable {
                field,
                controller,
                path: self
                    .dirs
                    .first()
                    .map(|dir| dir.path.clone())
                    .unwrap_or_default(),
            })
    }
}

/// Writes `resources` to the v1 controllers.
pub(super) fn apply(
    dirs: &ControllerDirs<'_>,
    resources: &LinuxResources,
) -> Result<Vec<CgroupWarning>, CgroupError> {
    let mut warnings = Vec::new();
    if resources
        .unified()
        .as_ref()
        .is_some_and(|unified| !unified.is_empty())
    {
        return Err(CgroupError::InvalidResource {
            field: "linux.resources.unified".to_string(),
            reason: "needs cgroup v2, but this host's cgroup controllers are v1".to_string(),
        });
    }
    if let Some(memory) = resources.memory() {
        apply_memory(dirs, memory, &mut warnings)?;
    }
    if let Some(cpu) = resources.cpu() {
        apply_cpu(dirs, cpu)?;
    }
    if let Some(pids) = resources.pids() {
        let dir = dirs.require("pids", "linux.resources.pids")?;
        write_file(dir, "pids.max", &super::v2::pids_max_value(pids.limit()))?;
    }
    if let Some(block_io) = resources.block_io() {
        apply_block_io(dirs, block_io, &mut warnings)?;
    }
    if let Some(limits) = resources
        .hugepage_limits()
        .as_ref()
        .filter(|l| !l.is_empty())
    {
        let dir = dirs.require("hugetlb", "linux.resources.hugepageLimits")?;
        for (index, limit) in limits.iter().enumerate() {
            let size = super::v2::checked_page_size(limit.page_size(), index)?;
            write_file(
                dir,
                &format!("hugetlb.{size}.limit_in_bytes"),
                &limit.limit().to_string(),
            )?;
        }
    }
    if let Some(network) = resources.network() {
        if let Some(class_id) = network.class_id() {
            let dir = dirs.require("net_cls", "linux.resources.network.classID")?;
            write_file(dir, "net_cls.classid", &class_id.to_string())?;
        }
        for priority in network.priorities().iter().flatten() {
            let dir = dirs.require("net_prio", "linux.resources.network.priorities")?;
            write_file(
                dir,
                "net_prio.ifpriomap",
                &format!("{} {}", priority.name(), priority.priority()),
            )?;
        }
    }
    if let Some(rdma) = resources.rdma().as_ref().filter(|r| !r.is_empty()) {
        let dir = dirs.require("rdma", "linux.resources.rdma")?;
        for (device, limit) in rdma {
            write_file(dir, "rdma.max", &super::v2::rdma_max_value(device, limit))?;
        }
    }
    if let Some(rules) = resources.devices() {
        apply_devices(dirs, rules)?;
    }
    Ok(warnings)
}

fn apply_memory(
    dirs: &ControllerDirs<'_>,
    memory: &LinuxMemory,
    warnings: &mut Vec<CgroupWarning>,
) -> Result<(), CgroupError> {
    // runc treats 0 as "not set" for these three.
    let limit = memory.limit().filter(|value| *value != 0);
    let reservation = memory.reservation().filter(|value| *value != 0);
    let mut swap = memory.swap().filter(|value| *value != 0);
    #[allow(deprecated)]
    let kernel = memory.kernel();
    if kernel.is_some() {
        warnings.push(CgroupWarning::SettingIgnored {
            field: "linux.resources.memory.kernel",
            reason: "kernel memory limits are deprecated (Linux 5.4) and not applied",
        });
    }
    if memory.use_hierarchy() == Some(false) {
        warnings.push(CgroupWarning::SettingIgnored {
            field: "linux.resources.memory.useHierarchy",
            reason: "current kernels always account memory hierarchically",
        });
    }
    let wanted = limit.is_some()
        || reservation.is_some()
        || swap.is_some()
        || memory.swappiness().is_some()
        || memory.disable_oom_killer() == Some(true)
        || memory.kernel_tcp().is_some();
    if !wanted {
        return Ok(());
    }
    let dir = dirs.require("memory", "linux.resources.memory")?;
    for (field, value) in [
        ("linux.resources.memory.limit", limit),
        ("linux.resources.memory.swap", swap),
        ("linux.resources.memory.reservation", reservation),
    ] {
        super::v2::check_memory_value(field, value)?;
    }
    if memory.check_before_update() == Some(true) {
        if let (Some(new_limit), Some(usage)) = (
            limit.filter(|value| *value > 0),
            read_u64(&dir.join("memory.usage_in_bytes"))?,
        ) {
            super::v2::check_usage_fits(usage, new_limit)?;
        }
    }
    // Unlimited memory with no swap setting means unlimited swap too, or the
    // old memory+swap limit would still cap the container (runc does this).
    if limit == Some(-1) && swap.is_none() {
        swap = Some(-1);
    }
    // The kernel keeps memory.limit <= memsw.limit at every step, so a
    // growing pair is written swap first and a shrinking one memory first.
    let swap_first = match (limit, swap) {
        (Some(_), Some(swap)) => {
            let current = read_u64(&dir.join("memory.limit_in_bytes"))?;
            swap == -1 || current.is_none_or(|current| i128::from(current) < i128::from(swap))
        }
        _ => false,
    };
    if swap_first {
        write_swap(dir, swap, warnings)?;
    }
    if let Some(limit) = limit {
        write_file(dir, "memory.limit_in_bytes", &limit.to_string())?;
    }
    if !swap_first {
        write_swap(dir, swap, warnings)?;
    }
    if let Some(reservation) = reservation {
        write_file(dir, "memory.soft_limit_in_bytes", &reservation.to_string())?;
    }
    if let Some(swappiness) = memory.swappiness() {
        if swappiness > 100 {
            return Err(CgroupError::InvalidResource {
                field: "linux.resources.memory.swappiness".to_string(),
                reason: format!("{swappiness} is out of range; give 0 to 100"),
            });
        }
        write_file(dir, "memory.swappiness", &swappiness.to_string())?;
    }
    if memory.disable_oom_killer() == Some(true) {
        write_file(dir, "memory.oom_control", "1")?;
    }
    if let Some(kernel_tcp) = memory.kernel_tcp() {
        write_file(
            dir,
            "memory.kmem.tcp.limit_in_bytes",
            &kernel_tcp.to_string(),
        )?;
    }
    Ok(())
}

/// memory.memsw.limit_in_bytes holds memory+swap, exactly what the spec's
/// `swap` means. Kernels without swap accounting have no such file; the
/// container then cannot be given swap at all, which is reported.
fn write_swap(
    dir: &Path,
    swap: Option<i64>,
    warnings: &mut Vec<CgroupWarning>,
) -> Result<(), CgroupError> {
    let Some(swap) = swap else {
        return Ok(());
    };
    if !dir.join("memory.memsw.limit_in_bytes").exists() {
        warnings.push(CgroupWarning::SettingIgnored {
            field: "linux.resources.memory.swap",
            reason: "the kernel does not account swap (no memory.memsw.limit_in_bytes)",
        });
        return Ok(());
    }
    write_file(dir, "memory.memsw.limit_in_bytes", &swap.to_string())
}

fn apply_cpu(dirs: &ControllerDirs<'_>, cpu: &LinuxCpu) -> Result<(), CgroupError> {
    let shares = cpu.shares().filter(|value| *value != 0);
    let period = cpu.period().filter(|value| *value != 0);
    let quota = cpu.quota().filter(|value| *value != 0);
    let realtime_period = cpu.realtime_period().filter(|value| *value != 0);
    let realtime_runtime = cpu.realtime_runtime().filter(|value| *value != 0);
    let wanted = shares.is_some()
        || period.is_some()
        || quota.is_some()
        || realtime_period.is_some()
        || realtime_runtime.is_some()
        || cpu.burst().is_some()
        || cpu.idle().is_some();
    if wanted {
        let dir = dirs.require("cpu", "linux.resources.cpu")?;
        // Realtime budget first, as runc does: a cgroup must hold
        // rt_runtime before its tasks may use realtime scheduling.
        if let Some(realtime_period) = realtime_period {
            write_file(dir, "cpu.rt_period_us", &realtime_period.to_string())?;
        }
        if let Some(realtime_runtime) = realtime_runtime {
            write_file(dir, "cpu.rt_runtime_us", &realtime_runtime.to_string())?;
        }
        if let Some(shares) = shares {
            write_file(dir, "cpu.shares", &shares.to_string())?;
        }
        if let Some(period) = period {
            write_file(dir, "cpu.cfs_period_us", &period.to_string())?;
        }
        if let Some(quota) = quota {
            write_file(dir, "cpu.cfs_quota_us", &quota.to_string())?;
        }
        if let Some(burst) = cpu.burst() {
            write_file(dir, "cpu.cfs_burst_us", &burst.to_string())?;
        }
        if let Some(idle) = cpu.idle() {
            write_file(dir, "cpu.idle", &idle.to_string())?;
        }
    }
    let cpus = cpu.cpus().as_deref().filter(|value| !value.is_empty());
    let mems = cpu.mems().as_deref().filter(|value| !value.is_empty());
    if cpus.is_some() || mems.is_some() {
        let dir = dirs.require("cpuset", "linux.resources.cpu.cpus/mems")?;
        if let Some(cpus) = cpus {
            write_file(dir, "cpuset.cpus", cpus)?;
        }
        if let Some(mems) = mems {
            write_file(dir, "cpuset.mems", mems)?;
        }
    }
    Ok(())
}

fn apply_block_io(
    dirs: &ControllerDirs<'_>,
    block_io: &LinuxBlockIo,
    warnings: &mut Vec<CgroupWarning>,
) -> Result<(), CgroupError> {
    let weight = block_io.weight().filter(|value| *value != 0);
    let weight_devices = block_io.weight_device().as_deref().unwrap_or_default();
    let throttles = [
        (
            "blkio.throttle.read_bps_device",
            block_io.throttle_read_bps_device(),
        ),
        (
            "blkio.throttle.write_bps_device",
            block_io.throttle_write_bps_device(),
        ),
        (
            "blkio.throttle.read_iops_device",
            block_io.throttle_read_iops_device(),
        ),
        (
            "blkio.throttle.write_iops_device",
            block_io.throttle_write_iops_device(),
        ),
    ];
    let wanted = weight.is_some()
        || block_io.leaf_weight().is_some()
        || !weight_devices.is_empty()
        || throttles
            .iter()
            .any(|(_, devices)| devices.as_ref().is_some_and(|d| !d.is_empty()));
    if !wanted {
        return Ok(());
    }
    let dir = dirs.require("blkio", "linux.resources.blockIO")?;
    // CFQ's blkio.weight is gone since Linux 5.0; BFQ offers blkio.bfq.weight.
    let (weight_file, weight_device_file) = if dir.join("blkio.bfq.weight").exists() {
        ("blkio.bfq.weight", "blkio.bfq.weight_device")
    } else {
        ("blkio.weight", "blkio.weight_device")
    };
    if let Some(weight) = weight {
        if !dir.join(weight_file).exists() {
            return Err(CgroupError::InvalidResource {
                field: "linux.resources.blockIO.weight".to_string(),
                reason: format!(
                    "{} has neither blkio.weight nor blkio.bfq.weight; the host's I/O scheduler \
                     has no weights (select BFQ)",
                    dir.display()
                ),
            });
        }
        write_file(dir, weight_file, &weight.to_string())?;
    }
    if let Some(leaf_weight) = block_io.leaf_weight() {
        write_cfq_only(dir, "blkio.leaf_weight", &leaf_weight.to_string(), warnings)?;
    }
    for device in weight_devices {
        let number = format!("{}:{}", device.major(), device.minor());
        if let Some(weight) = device.weight() {
            write_file(dir, weight_device_file, &format!("{number} {weight}"))?;
        }
        if let Some(leaf_weight) = device.leaf_weight() {
            write_cfq_only(
                dir,
                "blkio.leaf_weight_device",
                &format!("{number} {leaf_weight}"),
                warnings,
            )?;
        }
    }
    for (file, devices) in throttles {
        for device in devices.iter().flatten() {
            let rule = format!("{}:{} {}", device.major(), device.minor(), device.rate());
            write_file(dir, file, &rule)?;
        }
    }
    Ok(())
}

/// Leaf weights belonged to the CFQ scheduler, removed in Linux 5.0.
fn write_cfq_only(
    dir: &Path,
    file: &str,
    value: &str,
    warnings: &mut Vec<CgroupWarning>,
) -> Result<(), CgroupError> {
    if dir.join(file).exists() {
        write_file(dir, file, value)
    } else {
        warnings.push(CgroupWarning::SettingIgnored {
            field: "linux.resources.blockIO.leafWeight",
            reason: "leaf weights need the CFQ I/O scheduler, which this kernel lacks",
        });
        Ok(())
    }
}

/// Denies every device, then writes the rules in order, so the result is
/// exactly the allow list given (runc does the same; the engine adds its
/// default devices and `linux.devices` to the list).
fn apply_devices(
    dirs: &ControllerDirs<'_>,
    rules: &[LinuxDeviceCgroup],
) -> Result<(), CgroupError> {
    let dir = dirs.require("devices", "linux.resources.devices")?;
    let lines = rules
        .iter()
        .enumerate()
        .map(|(index, rule)| Ok((rule.allow(), device_rule(rule, index)?)))
        .collect::<Result<Vec<_>, CgroupError>>()?;
    write_file(dir, "devices.deny", "a")?;
    for (allow, line) in lines {
        let Some(line) = line else { continue };
        let file = if allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        write_file(dir, file, &line)?;
    }
    Ok(())
}

/// One rule in the devices cgroup's "type major:minor access" form; None for
/// FIFO rules, which the devices cgroup has no notion of (it controls device
/// nodes only).
pub(super) fn device_rule(
    rule: &LinuxDeviceCgroup,
    index: usize,
) -> Result<Option<String>, CgroupError> {
    let kind = match rule.typ().unwrap_or_default() {
        LinuxDeviceType::A => 'a',
        LinuxDeviceType::B => 'b',
        // 'u' is an unbuffered character device: a character device.
        LinuxDeviceType::C | LinuxDeviceType::U => 'c',
        LinuxDeviceType::P => return Ok(None),
    };
    let number = |value: Option<i64>, name: &str| -> Result<String, CgroupError> {
        match value {
            // -1 is runc's wildcard.
            None | Some(-1) => Ok("*".to_string()),
            Some(value) if value >= 0 => Ok(value.to_string()),
            Some(value) => Err(CgroupError::InvalidResource {
                field: format!("linux.resources.devices[{index}].{name}"),
                reason: format!("{value} is not a device number"),
            }),
        }
    };
    let major = number(rule.major(), "major")?;
    let minor = number(rule.minor(), "minor")?;
    let access = rule
        .access()
        .as_deref()
        .filter(|access| !access.is_empty())
        .unwrap_or("rwm");
    if !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return Err(CgroupError::InvalidResource {
            field: format!("linux.resources.devices[{index}].access"),
            reason: format!("{access:?} is not a combination of r, w and m"),
        });
    }
    Ok(Some(format!("{kind} {major}:{minor} {access}")))
}

/// A new cpuset cgroup starts with empty `cpuset.cpus` and `cpuset.mems`, and
/// the kernel refuses tasks until both are set (cgroup-v1/cpusets.rst); copy
/// them from the parent down the path, as runc does.
pub(super) fn inherit_cpuset(mount_point: &Path, relative: &Path) -> Result<(), CgroupError> {
    let mut parent = mount_point.to_path_buf();
    for component in relative.components() {
        let dir = parent.join(component);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let Some(current) = read_optional(&dir.join(file))? else {
                continue;
            };
            if current.trim().is_empty() {
                let inherited = read_optional(&parent.join(file))?.unwrap_or_default();
                write_file(&dir, file, inherited.trim())?;
            }
        }
        parent = dir;
    }
    Ok(())
}

pub(super) fn freeze(dir: &Path) -> Result<(), CgroupError> {
    write_file(dir, "freezer.state", "FROZEN")?;
    let state_file = dir.join("freezer.state");
    let mut attempts = 0u32;
    let frozen = wait_until(FREEZE_TIMEOUT, || {
        let state = read_optional(&state_file)?.unwrap_or_default();
        if state.trim() == "FROZEN" {
            return Ok(true);
        }
        // A task that was forking can leave the cgroup in FREEZING; asking
        // again lets the freezer catch it (runc retries the same way).
        attempts += 1;
        if attempts % 10 == 0 {
            write_file(dir, "freezer.state", "FROZEN")?;
        }
        Ok(false)
    })?;
    if frozen {
        return Ok(());
    }
    write_file(dir, "freezer.state", "THAWED")?;
    Err(CgroupError::FreezeTimeout {
        path: dir.to_path_buf(),
        waited: FREEZE_TIMEOUT,
    })
}

pub(super) fn thaw(dir: &Path) -> Result<(), CgroupError> {
    write_file(dir, "freezer.state", "THAWED")
}

pub(super) fn stats(dirs: &ControllerDirs<'_>) -> Result<CgroupStats, CgroupError> {
    let mut stats = CgroupStats::default();
    if let Some(dir) = dirs.get("cpuacct") {
        if let Some(usage_nsec) = read_u64(&dir.join("cpuacct.usage"))? {
            let mut cpu = CpuStats {
                usage_usec: usage_nsec / 1000,
                ..CpuStats::default()
            };
            match (
                read_u64(&dir.join("cpuacct.usage_user"))?,
                read_u64(&dir.join("cpuacct.usage_sys"))?,
            ) {
                (Some(user_nsec), Some(system_nsec)) => {
                    cpu.user_usec = user_nsec / 1000;
                    cpu.system_usec = system_nsec / 1000;
                }
                _ => {
                    let ticks = read_optional(&dir.join("cpuacct.stat"))?.unwrap_or_default();
                    for (key, value) in flat_keyed(&ticks) {
                        match key {
                            "user" => cpu.user_usec = value * MICROSECONDS_PER_USER_TICK,
                            "system" => cpu.system_usec = value * MICROSECONDS_PER_USER_TICK,
                            _ => {}
                        }
                    }
                }
            }
            stats.cpu = Some(cpu);
        }
    }
    if let Some(dir) = dirs.get("memory") {
        if let Some(usage_bytes) = read_u64(&dir.join("memory.usage_in_bytes"))? {
            let limited = |value: Option<u64>| value.filter(|value| *value < UNLIMITED_THRESHOLD);
            let limit_bytes = limited(read_u64(&dir.join("memory.limit_in_bytes"))?);
            let total_usage = read_u64(&dir.join("memory.memsw.usage_in_bytes"))?;
            let total_limit = limited(read_u64(&dir.join("memory.memsw.limit_in_bytes"))?);
            stats.memory = Some(MemoryStats {
                usage_bytes,
                peak_bytes: read_u64(&dir.join("memory.max_usage_in_bytes"))?,
                limit_bytes,
                swap_usage_bytes: total_usage.map(|total| total.saturating_sub(usage_bytes)),
                swap_limit_bytes: total_limit
                    .zip(limit_bytes)
                    .map(|(total, memory)| total.saturating_sub(memory)),
            });
        }
    }
    if let Some(dir) = dirs.get("pids") {
        if let Some(current) = read_u64(&dir.join("pids.current"))? {
            stats.pids = Some(PidsStats {
                current,
                limit: super::read_limit(&dir.join("pids.max"))?.flatten(),
            });
        }
    }
    if let Some(dir) = dirs.get("blkio") {
        stats.io = blkio_stats(dir)?;
    }
    Ok(stats)
}

/// blkio.throttle.io_service{d,_bytes}_recursive: "MAJ:MIN Read N" lines.
fn blkio_stats(dir: &Path) -> Result<Option<IoStats>, CgroupError> {
    let bytes = read_optional(&dir.join("blkio.throttle.io_service_bytes_recursive"))?;
    let operations = read_optional(&dir.join("blkio.throttle.io_serviced_recursive"))?;
    if bytes.is_none() && operations.is_none() {
        return Ok(None);
    }
    let mut io = IoStats::default();
    for (content, counts_bytes) in [(bytes, true), (operations, false)] {
        for line in content.unwrap_or_default().lines() {
            let mut fields = line.split_whitespace();
            let (Some(device), Some(operation), Some(value)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let (Some((major, minor)), Ok(value)) =
                (super::parse_device_number(device), value.parse::<u64>())
            else {
                continue;
            };
            let entry = io.device(major, minor);
            match (operation, counts_bytes) {
                ("Read", true) => entry.read_bytes = value,
                ("Write", true) => entry.write_bytes = value,
                ("Read", false) => entry.read_ios = value,
                ("Write", false) => entry.write_ios = value,
                _ => {}
            }
        }
    }
    Ok(Some(io))
}
