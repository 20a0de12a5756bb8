//! The startup section: how long each runtime takes to run a short-lived
//! container, two ways — create → start → the process ends → delete (as
//! conmon and containerd's shim drive a runtime), and `run` in the
//! foreground — for a busybox `true` and an `echo hi` whose output is read
//! and checked; and, as the VMM reference, husk-vmm and QEMU microvm
//! booting the same kernel and initramfs to husk-init's ready line.
//!
//! The commands are interleaved, forwards on even runs and backwards on
//! odd ones (A B C … C B A …), so that drifting load hits all alike.
//!
//! The create → … → delete time leaves out the `husk state` call that
//! reads husk's phases between create and start: the container waits for
//! `start` meanwhile, and nothing else runs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use husk_benches::guest_boot::{
    boot_to_ready, husk_vmm_command, qemu_microvm_command, BootSample, GuestMachine,
};
use husk_benches::plot;

use super::bundle::Bundle;
use super::command::{self, CommandError};
use super::report::{self, markdown_table, median, number, ratio, Spread};
use super::runtime::{Lifecycle, Runtime, RuntimeError, Runtimes};
use super::sys;

#[derive(Debug, thiserror::Error)]
pub enum LatencyError {
    #[error("{name} · {workload} · {measure}, run {run}")]
    Runtime {
        name: &'static str,
        workload: &'static str,
        measure: &'static str,
        run: usize,
        #[source]
        source: Box<RuntimeError>,
    },
    #[error("boot the guest to husk-init with {vmm}, run {run}: {message}")]
    Boot {
        vmm: &'static str,
        run: usize,
        message: String,
    },
    #[error("stopped")]
    Interrupted(#[source] CommandError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Workload {
    True,
    EchoHi,
}

impl Workload {
    pub const ALL: [Workload; 2] = [Workload::True, Workload::EchoHi];

    pub fn name(self) -> &'static str {
        match self {
            Workload::True => "true",
            Workload::EchoHi => "echo hi",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Workload::True => "true",
            Workload::EchoHi => "echo",
        }
    }

    pub fn args(self) -> &'static [&'static str] {
        match self {
            Workload::True => &["true"],
            Workload::EchoHi => &["echo", "hi"],
        }
    }

    /// What the container must print.
    pub fn expected_output(self) -> Option<&'static str> {
        match self {
            Workload::True => None,
            Workload::EchoHi => Some("hi\n"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Measure {
    Lifecycle,
    Run,
}

impl Measure {
    pub const ALL: [Measure; 2] = [Measure::Lifecycle, Measure::Run];

    pub fn name(self) -> &'static str {
        match self {
            Measure::Lifecycle => "create → start → exit → delete",
            Measure::Run => "run",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Measure::Lifecycle => "lifecycle",
            Measure::Run => "run",
        }
    }
}

/// The two VMMs of the boot reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Vmm {
    HuskVmm,
    QemuMicrovm,
}

impl Vmm {
    pub fn name(self) -> &'static str {
        match self {
            Vmm::HuskVmm => "husk-vmm",
            Vmm::QemuMicrovm => "qemu -M microvm",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Vmm::HuskVmm => "husk-vmm",
            Vmm::QemuMicrovm => "qemu-microvm",
        }
    }
}

/// One thing timed in each run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subject {
    Container(Runtime, Workload, Measure),
    Boot(Vmm),
}

/// What the boot reference boots, and with what.
pub struct BootReference<'a> {
    pub vmm: &'a Path,
    pub qemu: &'a Path,
    pub machine: GuestMachine<'a>,
}

/// Every sample of the section.
#[derive(Debug, Default)]
pub struct StartupResults {
    /// Milliseconds per (runtime, workload, measure), in run order.
    pub times: BTreeMap<(Runtime, Workload, Measure), Vec<f64>>,
    /// The `true` workload's create → … → delete of each runtime, with
    /// husk's phases.
    pub lifecycles: BTreeMap<Runtime, Vec<Lifecycle>>,
    pub boots: BTreeMap<Vmm, Vec<BootSample>>,
}

/// Runs the section: `runs` rounds over every runtime, workload and
/// measure, and the boot reference when given.
pub fn measure(
    runtimes: &Runtimes,
    compared: &[Runtime],
    bundles: &BTreeMap<Workload, Bundle>,
    boot: Option<&BootReference<'_>>,
    runs: usize,
    id_prefix: &str,
) -> Result<StartupResults, LatencyError> {
    let mut subjects = Vec::new();
    for &runtime in compared {
        for workload in Workload::ALL {
            for measure in Measure::ALL {
                subjects.push(Subject::Container(runtime, workload, measure));
            }
        }
    }
    if boot.is_some() {
        subjects.extend([Subject::Boot(Vmm::HuskVmm), Subject::Boot(Vmm::QemuMicrovm)]);
    }
    let mut results = StartupResults::default();
    for run in 0..runs {
        let order: Vec<Subject> = if run % 2 == 0 {
            subjects.clone()
        } else {
            subjects.iter().rev().copied().collect()
        };
        for subject in order {
            command::check_interrupt().map_err(LatencyError::Interrupted)?;
            match subject {
                Subject::Container(runtime, workload, measure) => {
                    let id = format!(
                        "{id_prefix}-{}-{}-{}-{run}",
                        runtime.key(),
                        workload.key(),
                        measure.key()
                    );
                    let bundle = &bundles[&workload];
                    let error = |source| LatencyError::Runtime {
                        name: runtime.name(),
                        workload: workload.name(),
                        measure: measure.name(),
                        run,
                        source: Box::new(source),
                    };
                    let millis = match measure {
                        Measure::Lifecycle => {
                            let lifecycle = runtimes
                                .lifecycle(runtime, bundle, &id, workload.expected_output())
                                .map_err(error)?;
                            let total = report::millis(lifecycle.total());
                            if workload == Workload::True {
                                results
                                    .lifecycles
                                    .entry(runtime)
                                    .or_default()
                                    .push(lifecycle);
                            }
                            total
                        }
                        Measure::Run => report::millis(
                            runtimes
                                .run(runtime, bundle, &id, workload.expected_output())
                                .map_err(error)?,
                        ),
                    };
                    results
                        .times
                        .entry((runtime, workload, measure))
                        .or_default()
                        .push(millis);
                }
                Subject::Boot(vmm) => {
                    let boot = boot.expect("boot subjects come with a boot reference");
                    let guest_kib = boot.machine.memory_mib * 1024;
                    let sample = match vmm {
                        Vmm::HuskVmm => boot_to_ready(
                            husk_vmm_command(boot.vmm, &boot.machine, "stdout", "hold"),
                            guest_kib,
                            libc::SIGTERM,
                        ),
                        Vmm::QemuMicrovm => boot_to_ready(
                            qemu_microvm_command(boot.qemu, &boot.machine),
                            guest_kib,
                            libc::SIGKILL,
                        ),
                    }
                    .map_err(|message| LatencyError::Boot {
                        vmm: vmm.name(),
                        run,
                        message,
                    })?;
                    results.boots.entry(vmm).or_default().push(sample);
                }
            }
        }
        // Between rounds nothing we wait for by pid is left, so whatever
        // else ended and was reparented to us can go.
        if runtimes.live_pids().is_empty() {
            sys::reap_ended_children();
        }
        eprintln!("startup: run {}/{runs} done", run + 1);
    }
    Ok(results)
}

impl StartupResults {
    fn boot_times(&self, vmm: Vmm) -> Vec<f64> {
        self.boots
            .get(&vmm)
            .map(|samples| samples.iter().map(|sample| sample.ready_ms).collect())
            .unwrap_or_default()
    }

    /// The section's table: per workload and measure, each runtime's
    /// median, p10 and p90, and its median against crun's and against
    /// QEMU microvm's boot to init; then the boot reference.
    pub fn table(&self, compared: &[Runtime]) -> String {
        let qemu = median(&self.boot_times(Vmm::QemuMicrovm));
        let mut rows = Vec::new();
        for workload in Workload::ALL {
            for measure in Measure::ALL {
                let crun = self
                    .times
                    .get(&(Runtime::Crun, workload, measure))
                    .map_or(f64::NAN, |times| median(times));
                for &runtime in compared {
                    let Some(times) = self.times.get(&(runtime, workload, measure)) else {
                        continue;
                    };
                    let spread = Spread::of(times).expect("every measured subject has samples");
                    rows.push(vec![
                        runtime.name().to_string(),
                        workload.name().to_string(),
                        measure.name().to_string(),
                        number(spread.median),
                        number(spread.p10),
                        number(spread.p90),
                        ratio(spread.median, crun),
                        ratio(spread.median, qemu),
                    ]);
                }
            }
        }
        for vmm in [Vmm::HuskVmm, Vmm::QemuMicrovm] {
            if let Some(spread) = Spread::of(&self.boot_times(vmm)) {
                rows.push(vec![
                    vmm.name().to_string(),
                    "guest kernel + initramfs".to_string(),
                    "boot to husk-init ready".to_string(),
                    number(spread.median),
                    number(spread.p10),
                    number(spread.p90),
                    "-".to_string(),
                    ratio(spread.median, qemu),
                ]);
            }
        }
        markdown_table(
            &[
                "runtime",
                "workload",
                "measure",
                "median ms",
                "p10 ms",
                "p90 ms",
                "× crun",
                "× QEMU boot",
            ],
            3,
            &rows,
        )
    }

    /// startup.csv: every sample, one per line; the create → … → delete
    /// samples also split into their steps, and husk's phases (ms after
    /// the husk command started).
    pub fn csv(&self) -> String {
        let mut csv = String::from("runtime,workload,measure,run,milliseconds\n");
        for ((runtime, workload, measure), times) in &self.times {
            for (run, millis) in times.iter().enumerate() {
                let _ = writeln!(
                    csv,
                    "{},{},{},{run},{millis:.3}",
                    runtime.key(),
                    workload.key(),
                    measure.key()
                );
            }
        }
        for (runtime, lifecycles) in &self.lifecycles {
            for (run, lifecycle) in lifecycles.iter().enumerate() {
                let steps = [
                    ("create", lifecycle.create),
                    ("start", lifecycle.start),
                    ("exit", lifecycle.exit),
                    ("delete", lifecycle.delete),
                ];
                for (step, duration) in steps {
                    let _ = writeln!(
                        csv,
                        "{},true,lifecycle:{step},{run},{:.3}",
                        runtime.key(),
                        report::millis(duration)
                    );
                }
                for (phase, micros) in &lifecycle.phases {
                    let _ = writeln!(
                        csv,
                        "{},true,phase:{phase},{run},{:.3}",
                        runtime.key(),
                        *micros as f64 / 1000.0
                    );
                }
            }
        }
        for (vmm, samples) in &self.boots {
            for (run, sample) in samples.iter().enumerate() {
                let _ = writeln!(
                    csv,
                    "{},kernel+initramfs,boot-to-init,{run},{:.3}",
                    vmm.key(),
                    sample.ready_ms
                );
            }
        }
        csv
    }

    /// startup.svg: a strip chart per measure and workload with a row
    /// per runtime, and one of the boot reference.
    pub fn svg(&self, compared: &[Runtime]) -> String {
        let mut charts = Vec::new();
        for measure in Measure::ALL {
            for workload in Workload::ALL {
                let rows: Vec<(&str, &[f64])> = compared
                    .iter()
                    .filter_map(|runtime| {
                        let times = self.times.get(&(*runtime, workload, measure))?;
                        Some((runtime.name(), times.as_slice()))
                    })
                    .collect();
                charts.push(plot::strip_chart(
                    &format!("busybox {}: {} (ms)", workload.name(), measure.name()),
                    &rows,
                ));
            }
        }
        let husk = self.boot_times(Vmm::HuskVmm);
        let qemu = self.boot_times(Vmm::QemuMicrovm);
        if !husk.is_empty() {
            charts.push(plot::strip_chart(
                "VMM reference: boot to husk-init ready line (ms), same kernel and initramfs",
                &[
                    (Vmm::HuskVmm.name(), &husk),
                    (Vmm::QemuMicrovm.name(), &qemu),
                ],
            ));
        }
        plot::stack_vertically(&charts)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn results() -> StartupResults {
        let mut results = StartupResults::default();
        for (runtime, times) in [
            (Runtime::Crun, vec![20.0, 18.0, 22.0]),
            (Runtime::HuskVm, vec![200.0, 180.0, 220.0]),
        ] {
            results
                .times
                .insert((runtime, Workload::True, Measure::Run), times);
        }
        results.boots.insert(
            Vmm::QemuMicrovm,
            vec![BootSample {
                ready_ms: 100.0,
                ..BootSample::default()
            }],
        );
        results.lifecycles.insert(
            Runtime::HuskVm,
            vec![Lifecycle {
                create: Duration::from_millis(150),
                phases: BTreeMap::from([("guest_ready".to_string(), 120_000)]),
                ..Lifecycle::default()
            }],
        );
        results
    }

    #[test]
    fn the_table_gives_ratios_against_crun_and_qemu() {
        let table = results().table(&[Runtime::HuskVm, Runtime::Crun]);
        let row = table
            .lines()
            .find(|line| line.starts_with("| husk vm"))
            .unwrap();
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(
            cells[1..9],
            ["husk vm", "true", "run", "200", "184", "216", "10.00×", "2.00×"]
        );
        assert!(table.contains("| qemu -M microvm "), "{table}");
    }

    #[test]
    fn the_csv_has_every_sample_step_and_phase() {
        let csv = results().csv();
        assert!(csv.starts_with("runtime,workload,measure,run,milliseconds\n"));
        assert!(csv.contains("crun,true,run,1,18.000\n"));
        assert!(csv.contains("husk-vm,true,lifecycle:create,0,150.000\n"));
        assert!(csv.contains("husk-vm,true,phase:guest_ready,0,120.000\n"));
        assert!(csv.contains("qemu-microvm,kernel+initramfs,boot-to-init,0,100.000\n"));
    }
}
