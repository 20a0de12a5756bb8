//! The density section: how many idle sandboxes a host holds and how fast
//! they come up together. For N stepping up, N `create`s of a `sleep 3600`
//! container are started at once, then N `start`s; recorded are the time
//! until all were created and until all were started, and the memory per
//! sandbox two ways: the sum of the sandbox processes' PSS / N (husk-vmm
//! for the VM backend, the container process for the container backend)
//! and the drop of the host's MemAvailable / N (which also counts the
//! kernel's side: page tables, KVM, cgroups, the rootfs images in the
//! state directory); and for the VM backend husk-vmm's own part, the PSS
//! less the guest RAM each guest touched, / N: what one more sandbox costs
//! beyond its guest, with husk-vmm's code pages shared by all of them as in
//! production. Then all are killed and deleted before the next step.
//!
//! The steps stop at the first failure, at `--density-max`, before a step
//! whose predicted memory would push the host's memory in use (MemTotal −
//! MemAvailable) over the cap, or after a step that took longer than
//! [`SLOW_STEP`] to create (the next, twice as large, would take too long).

use std::fmt::Write as _;
use std::process::Child;
use std::thread;
use std::time::{Duration, Instant};

use husk_benches::plot;

use super::bundle::Bundle;
use super::command::{self, CommandError};
use super::memory::{self, MemoryError};
use super::report::{markdown_table, number};
use super::runtime::{Created, PendingCreate, Runtime, RuntimeError, Runtimes, COMMAND_TIMEOUT};
use super::sys;

/// The VM backend's guest size here.
pub const GUEST_MEMORY_MIB: u64 = 64;
/// What `create` may take under the load of a whole step (the VM
/// backend's boot timeout annotation of the density bundle, in seconds).
pub const BOOT_TIMEOUT_SECONDS: u64 = 300;
/// After a step this slow to create, the next is not tried.
pub const SLOW_STEP: Duration = Duration::from_secs(150);
/// How long started sandboxes settle before their memory is read.
const SETTLE: Duration = Duration::from_secs(2);
/// How long killed sandboxes may take to go.
const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum DensityError {
    #[error("{backend}, {count} sandboxes")]
    Step {
        backend: &'static str,
        count: usize,
        #[source]
        source: Box<StepError>,
    },
    #[error("{backend}: read the host's memory")]
    HostMemory {
        backend: &'static str,
        #[source]
        source: MemoryError,
    },
    #[error("stopped")]
    Interrupted(#[source] CommandError),
}

/// What failed in a step.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("read the memory of sandbox {id} (pid {pid})")]
    SandboxMemory {
        id: String,
        pid: i32,
        #[source]
        source: MemoryError,
    },
    #[error("read the host's memory")]
    HostMemory(#[source] MemoryError),
}

/// One step's measurements.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub count: usize,
    pub created: Duration,
    pub started: Duration,
    pub pss_per_sandbox_mib: f64,
    /// VM backend: husk-vmm's PSS less the guest RAM the guest touched, per
    /// sandbox: what one more sandbox costs beyond its guest, with the
    /// binary's pages shared among all of them as they are in production.
    pub vmm_overhead_per_sandbox_mib: Option<f64>,
    pub available_drop_per_sandbox_mib: f64,
}

/// Why the steps ended.
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    /// Every step up to --density-max ran.
    AllSteps,
    /// The next step would likely pass the memory cap.
    MemoryCap { next: usize, predicted_mib: f64 },
    /// The last step was too slow to go on.
    Slow { next: usize },
    /// A step failed: the first failure, with what failed.
    Failed { count: usize, message: String },
}

/// One backend's steps and why they ended.
#[derive(Debug, Clone)]
pub struct DensityResult {
    pub backend: Runtime,
    pub steps: Vec<Step>,
    pub end: End,
}

/// The steps: `first`, doubling, and `max` last (5, 10, 20, 40, 80, 100).
pub fn steps(first: usize, max: usize) -> Vec<usize> {
    let mut steps = Vec::new();
    let mut count = first.max(1);
    while count < max {
        steps.push(count);
        count *= 2;
    }
    if max > 0 {
        steps.push(max);
    }
    steps
}

/// The most host memory one idle sandbox can take, in MiB: for the VM
/// backend its guest's RAM, with room for husk-vmm, the kernel's side and
/// the rootfs image; a container's busybox `sleep` far less.
fn most_per_sandbox_mib(backend: Runtime) -> f64 {
    match backend {
        Runtime::HuskVm => GUEST_MEMORY_MIB as f64 + 32.0,
        _ => 16.0,
    }
}

/// What the next step should expect a sandbox to take: the larger of the
/// two measures of the last step, but no more than a sandbox can take (a
/// larger drop of MemAvailable was other processes on the host) and no
/// less than its PSS.
pub fn per_sandbox_estimate(step: &Step, most_mib: f64) -> f64 {
    step.pss_per_sandbox_mib
        .max(step.available_drop_per_sandbox_mib)
        .min(most_mib)
        .max(step.pss_per_sandbox_mib)
}

/// Whether a step of `next` sandboxes fits under the cap: the memory in
/// use now plus `next` sandboxes of `per_sandbox_mib` each, with a quarter
/// more for error. Returns the predicted use when it does not fit.
pub fn over_cap(in_use_mib: f64, per_sandbox_mib: f64, next: usize, cap_mib: f64) -> Option<f64> {
    let predicted = in_use_mib + next as f64 * per_sandbox_mib * 1.25;
    (predicted > cap_mib).then_some(predicted)
}

pub fn measure(
    runtimes: &Runtimes,
    backend: Runtime,
    bundle: &Bundle,
    counts: &[usize],
    memory_cap_mib: u64,
    id_prefix: &str,
) -> Result<DensityResult, DensityError> {
    let host_error = |source| DensityError::HostMemory {
        backend: backend.name(),
        source,
    };
    let most_per_sandbox_mib = most_per_sandbox_mib(backend);
    // Before anything ran, the most a sandbox can take.
    let mut per_sandbox_mib = most_per_sandbox_mib;
    let mut steps: Vec<Step> = Vec::new();
    for (index, &count) in counts.iter().enumerate() {
        command::check_interrupt().map_err(DensityError::Interrupted)?;
        if let Some(last) = steps.last() {
            if last.created > SLOW_STEP {
                return Ok(DensityResult {
                    backend,
                    steps,
                    end: End::Slow { next: count },
                });
            }
        }
        let (total_kib, available_kib) = memory::host_memory().map_err(host_error)?;
        let in_use_mib = (total_kib - available_kib) as f64 / 1024.0;
        if let Some(predicted_mib) =
            over_cap(in_use_mib, per_sandbox_mib, count, memory_cap_mib as f64)
        {
            return Ok(DensityResult {
                backend,
                steps,
                end: End::MemoryCap {
                    next: count,
                    predicted_mib,
                },
            });
        }
        match step(runtimes, backend, bundle, count, id_prefix) {
            Ok(step) => {
                eprintln!(
                    "density: {} × {count}: all created in {:.1} s, started in {:.1} s, \
                     {:.1} MiB PSS and {:.1} MiB MemAvailable per sandbox",
                    backend.name(),
                    step.created.as_secs_f64(),
                    step.started.as_secs_f64(),
                    step.pss_per_sandbox_mib,
                    step.available_drop_per_sandbox_mib
                );
                per_sandbox_mib = per_sandbox_estimate(&step, most_per_sandbox_mib);
                steps.push(step);
            }
            // The first step must work; a later failure is where the
            // host's limit is, and ends the steps.
            Err(error) if index > 0 && !sys::interrupted() => {
                let message = command::error_chain(&error);
                eprintln!("density: {} × {count} failed: {message}", backend.name());
                return Ok(DensityResult {
                    backend,
                    steps,
                    end: End::Failed { count, message },
                });
            }
            Err(source) => {
                return Err(DensityError::Step {
                    backend: backend.name(),
                    count,
                    source: Box::new(source),
                })
            }
        }
    }
    Ok(DensityResult {
        backend,
        steps,
        end: End::AllSteps,
    })
}

/// One step: N sandboxes up at once, measured, and all removed again
/// (also when the step fails).
fn step(
    runtimes: &Runtimes,
    backend: Runtime,
    bundle: &Bundle,
    count: usize,
    id_prefix: &str,
) -> Result<Step, StepError> {
    let ids: Vec<String> = (0..count)
        .map(|index| format!("{id_prefix}-density-{}-{count}-{index}", backend.key()))
        .collect();
    let mut created: Vec<Created> = Vec::new();
    let result = run_step(runtimes, backend, bundle, &ids, &mut created);
    let removed = remove_all(runtimes, backend, &ids, &created);
    let step = result?;
    removed?;
    Ok(step)
}

fn run_step(
    runtimes: &Runtimes,
    backend: Runtime,
    bundle: &Bundle,
    ids: &[String],
    created: &mut Vec<Created>,
) -> Result<Step, StepError> {
    let (_, available_before_kib) = memory::host_memory().map_err(StepError::HostMemory)?;
    // Every command that was spawned is waited for, also after a failure,
    // so that nothing is still creating while the step is cleaned up.
    let began = Instant::now();
    let mut first_error: Option<StepError> = None;
    let mut pending: Vec<PendingCreate> = Vec::new();
    for id in ids {
        match runtimes.spawn_create(backend, bundle, id, false) {
            Ok(create) => pending.push(create),
            Err(error) => {
                first_error = Some(error.into());
                break;
            }
        }
    }
    for create in &mut pending {
        match create.finish(runtimes) {
            Ok((container, _)) => created.push(container),
            Err(error) => {
                first_error.get_or_insert(error.into());
            }
        }
    }
    if let Some(error) = first_error {
        return Err(error);
    }
    let all_created = began.elapsed();

    let began = Instant::now();
    let mut starts = Vec::new();
    for container in created.iter() {
        let mut start = runtimes.command(backend, &["start", container.id.as_str()]);
        start
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let description = command::describe(&start);
        match command::spawn(&mut start) {
            Ok(child) => starts.push((description, child)),
            Err(error) => {
                first_error = Some(error.into());
                break;
            }
        }
    }
    for (description, mut child) in starts {
        if let Err(error) = wait_for_success(&mut child, &description) {
            first_error.get_or_insert(error.into());
        }
    }
    if let Some(error) = first_error {
        return Err(error);
    }
    let all_started = began.elapsed();

    thread::sleep(SETTLE);
    let mut pss_kib = 0;
    let mut guest_pss_kib = 0;
    for container in created.iter() {
        let memory_error = |source| StepError::SandboxMemory {
            id: container.id.clone(),
            pid: container.pid,
            source,
        };
        let (usage, vm_pid) = memory::sandbox_memory(container.pid).map_err(memory_error)?;
        pss_kib += usage.pss_kib;
        if backend == Runtime::HuskVm {
            let guest =
                memory::guest_memory_of(vm_pid, GUEST_MEMORY_MIB * 1024).map_err(memory_error)?;
            guest_pss_kib += guest.pss_kib;
        }
    }
    let (_, available_after_kib) = memory::host_memory().map_err(StepError::HostMemory)?;
    let count = ids.len() as f64;
    Ok(Step {
        count: ids.len(),
        created: all_created,
        started: all_started,
        pss_per_sandbox_mib: pss_kib as f64 / 1024.0 / count,
        vmm_overhead_per_sandbox_mib: (backend == Runtime::HuskVm)
            .then(|| pss_kib.saturating_sub(guest_pss_kib) as f64 / 1024.0 / count),
        // Signed: other processes on the host move MemAvailable too, and a
        // negative drop shows that noise instead of hiding it as zero.
        available_drop_per_sandbox_mib: (available_before_kib as f64 - available_after_kib as f64)
            / 1024.0
            / count,
    })
}

/// Waits for a runtime command to end and checks its status, quoting its
/// stderr (piped) on failure.
fn wait_for_success(child: &mut Child, description: &str) -> Result<(), CommandError> {
    let stderr = child.stderr.take().map(command::PendingOutput::of);
    let status = command::wait_child(child, description, COMMAND_TIMEOUT)?;
    if status.success() {
        return Ok(());
    }
    Err(CommandError::Failed {
        command: description.to_string(),
        status,
        stderr: stderr
            .map(|output| output.collect(description).unwrap_or_default())
            .unwrap_or_default(),
    })
}

/// Kills every sandbox of the step and deletes them all (each set of
/// commands at once), then reaps the processes.
fn remove_all(
    runtimes: &Runtimes,
    backend: Runtime,
    ids: &[String],
    created: &[Created],
) -> Result<(), StepError> {
    let run_all = |args_for: fn(&str) -> Vec<&str>| -> Vec<Result<(), CommandError>> {
        let children: Vec<_> = ids
            .iter()
            .map(|id| {
                let mut command = runtimes.command(backend, &args_for(id));
                command
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped());
                let description = command::describe(&command);
                (description, command::spawn(&mut command))
            })
            .collect();
        children
            .into_iter()
            .map(|(description, child)| wait_for_success(&mut child?, &description))
            .collect()
    };
    // A kill may fail for a container that was never created; delete
    // --force is what must work.
    let _ = run_all(|id| vec!["kill", id, "KILL"]);
    let deadline = Instant::now() + EXIT_TIMEOUT;
    for container in created {
        let _ = runtimes.wait_until(container.pid, deadline);
    }
    let deleted = run_all(|id| vec!["delete", "--force", id]);
    for container in created {
        runtimes.stop_process(container.pid);
    }
    for id in ids {
        runtimes.forget(backend, id);
    }
    deleted.into_iter().collect::<Result<Vec<()>, _>>()?;
    Ok(())
}

/// The table: per backend and step, the times and the memory per sandbox,
/// then why the steps ended.
pub fn table(results: &[DensityResult]) -> String {
    let mut rows = Vec::new();
    for result in results {
        for step in &result.steps {
            rows.push(vec![
                result.backend.name().to_string(),
                step.count.to_string(),
                number(step.created.as_secs_f64()),
                number(step.started.as_secs_f64()),
                number(step.pss_per_sandbox_mib),
                step.vmm_overhead_per_sandbox_mib
                    .map_or_else(|| "-".to_string(), number),
                number(step.available_drop_per_sandbox_mib),
            ]);
        }
    }
    let mut table = markdown_table(
        &[
            "backend",
            "N",
            "all created s",
            "all started s",
            "PSS / N MiB",
            "VMM overhead PSS / N MiB",
            "MemAvailable drop / N MiB",
        ],
        1,
        &rows,
    );
    table.push('\n');
    for result in results {
        let _ = writeln!(
            table,
            "- {}: {}",
            result.backend.name(),
            describe_end(&result.end)
        );
    }
    table
}

fn describe_end(end: &End) -> String {
    match end {
        End::AllSteps => "every step ran (up to --density-max)".to_string(),
        End::MemoryCap {
            next,
            predicted_mib,
        } => format!(
            "stopped before {next}: the host's memory in use would reach about {predicted_mib:.0} \
             MiB, over --memory-cap-mib"
        ),
        End::Slow { next } => format!(
            "stopped before {next}: the last step took over {} s to create",
            SLOW_STEP.as_secs()
        ),
        End::Failed { count, message } => {
            let first_line = message.lines().next().unwrap_or_default();
            format!("{count} failed (the first failure ends the steps): {first_line}")
        }
    }
}

/// density.svg: time until all were created, and memory per sandbox,
/// against N.
pub fn svg(results: &[DensityResult]) -> String {
    type Series = (String, Vec<(f64, f64)>);
    let series = |result: &DensityResult, what: &str, value: fn(&Step) -> f64| -> Series {
        let points = result
            .steps
            .iter()
            .map(|step| (step.count as f64, value(step)))
            .collect();
        (format!("{} {what}", result.backend.name()), points)
    };
    let mut time: Vec<Series> = Vec::new();
    let mut memory: Vec<Series> = Vec::new();
    for result in results {
        time.push(series(result, "all created", |s| s.created.as_secs_f64()));
        time.push(series(result, "all started", |s| s.started.as_secs_f64()));
        memory.push(series(result, "PSS / N", |s| s.pss_per_sandbox_mib));
        memory.push(series(result, "MemAvailable drop / N", |s| {
            s.available_drop_per_sandbox_mib
        }));
    }
    fn rows(series: &[(String, Vec<(f64, f64)>)]) -> Vec<(&str, &[(f64, f64)])> {
        series
            .iter()
            .map(|(name, points)| (name.as_str(), points.as_slice()))
            .collect()
    }
    plot::stack_vertically(&[
        plot::line_chart(
            "Idle sandboxes started at once: time until all are up",
            "sandboxes (N)",
            "seconds",
            &rows(&time),
        ),
        plot::line_chart(
            &format!("Host memory per idle sandbox (VM: {GUEST_MEMORY_MIB} MiB guest)"),
            "sandboxes (N)",
            "MiB per sandbox",
            &rows(&memory),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_double_up_to_the_maximum() {
        assert_eq!(steps(5, 100), [5, 10, 20, 40, 80, 100]);
        assert_eq!(steps(5, 40), [5, 10, 20, 40]);
        assert_eq!(steps(2, 4), [2, 4]);
        assert_eq!(steps(5, 3), [3]);
        assert_eq!(steps(5, 0), Vec::<usize>::new());
    }

    #[test]
    fn noise_in_mem_available_does_not_inflate_the_estimate() {
        let step = |pss, drop| Step {
            count: 5,
            created: Duration::ZERO,
            started: Duration::ZERO,
            pss_per_sandbox_mib: pss,
            vmm_overhead_per_sandbox_mib: None,
            available_drop_per_sandbox_mib: drop,
        };
        assert_eq!(per_sandbox_estimate(&step(30.0, 41.0), 96.0), 41.0);
        assert_eq!(per_sandbox_estimate(&step(30.0, 321.0), 96.0), 96.0);
        assert_eq!(per_sandbox_estimate(&step(30.0, -5.0), 96.0), 30.0);
        assert_eq!(per_sandbox_estimate(&step(120.0, 0.0), 96.0), 120.0);
    }

    #[test]
    fn a_step_over_the_memory_cap_is_not_tried() {
        // 1000 MiB in use, 80 MiB each with a quarter more: 10 fit in 2000.
        assert_eq!(over_cap(1000.0, 80.0, 10, 2000.0), None);
        assert_eq!(over_cap(1000.0, 80.0, 11, 2000.0), Some(2100.0));
    }

    #[test]
    fn the_table_lists_steps_and_why_they_ended() {
        let results = [DensityResult {
            backend: Runtime::HuskVm,
            steps: vec![Step {
                count: 5,
                created: Duration::from_millis(2500),
                started: Duration::from_millis(300),
                pss_per_sandbox_mib: 30.4,
                vmm_overhead_per_sandbox_mib: Some(1.25),
                available_drop_per_sandbox_mib: 41.0,
            }],
            end: End::Failed {
                count: 10,
                message: "create x: out of memory\nmore".to_string(),
            },
        }];
        let table = table(&results);
        assert!(
            table.contains(
                "| husk vm |   5 |          2.50 |          0.30 |        30.4 |                     1.25 |"
            ),
            "{table}"
        );
        assert!(table.contains("- husk vm: 10 failed (the first failure ends the steps): create x: out of memory\n"), "{table}");
        let svg = svg(&results);
        assert_eq!(svg.matches("<polyline").count(), 4);
    }
}
