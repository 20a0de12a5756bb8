//! The overhead section: what an idle VM sandbox costs the host. A VM-
//! backend container running `sleep 3600` in a 128 MiB guest is created and
//! started; once idle, husk-vmm's RSS and PSS (`smaps_rollup`) and the
//! resident part of its guest RAM (what the guest touched) are read; the
//! VMM's overhead is the rest. A few samples, medians.

use std::thread;
use std::time::Duration;

use husk_benches::guest_boot::BootSample;

use super::bundle::Bundle;
use super::command::{self, CommandError};
use super::latency::Vmm;
use super::memory::{self, MemoryError, MemoryUse};
use super::report::{markdown_table, median};
use super::runtime::{Runtime, RuntimeError, Runtimes};

/// The guest size measured.
pub const GUEST_MEMORY_MIB: u64 = 128;
/// How long a started sandbox is left to settle before it is measured.
const SETTLE: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum OverheadError {
    #[error("sample {sample}: run the idle sandbox {id}")]
    Sandbox {
        sample: usize,
        id: String,
        #[source]
        source: Box<RuntimeError>,
    },
    #[error("sample {sample}: measure husk-vmm (pid {pid}) of {id}")]
    Memory {
        sample: usize,
        id: String,
        pid: i32,
        #[source]
        source: MemoryError,
    },
    #[error("stopped")]
    Interrupted(#[source] CommandError),
}

/// One idle sandbox's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverheadSample {
    pub process: MemoryUse,
    pub guest: MemoryUse,
}

impl OverheadSample {
    pub fn vmm_overhead(&self) -> MemoryUse {
        MemoryUse {
            rss_kib: self.process.rss_kib.saturating_sub(self.guest.rss_kib),
            pss_kib: self.process.pss_kib.saturating_sub(self.guest.pss_kib),
        }
    }
}

pub fn measure(
    runtimes: &Runtimes,
    bundle: &Bundle,
    samples: usize,
    id_prefix: &str,
) -> Result<Vec<OverheadSample>, OverheadError> {
    let mut results = Vec::new();
    for sample in 0..samples {
        command::check_interrupt().map_err(OverheadError::Interrupted)?;
        let id = format!("{id_prefix}-overhead-{sample}");
        let sandbox_error = |source| OverheadError::Sandbox {
            sample,
            id: id.clone(),
            source: Box::new(source),
        };
        let (created, _) = runtimes
            .create(Runtime::HuskVm, bundle, &id, false)
            .map_err(sandbox_error)?;
        runtimes.start(&created).map_err(sandbox_error)?;
        thread::sleep(SETTLE);
        let memory_error = |source| OverheadError::Memory {
            sample,
            id: id.clone(),
            pid: created.pid,
            source,
        };
        let (process, vm_pid) = memory::sandbox_memory(created.pid).map_err(memory_error)?;
        let guest =
            memory::guest_memory_of(vm_pid, GUEST_MEMORY_MIB * 1024).map_err(memory_error)?;
        runtimes
            .remove(Runtime::HuskVm, &id, Some(created.pid))
            .map_err(sandbox_error)?;
        eprintln!(
            "overhead: sample {}/{samples}: husk-vmm {process}, guest {guest}",
            sample + 1
        );
        results.push(OverheadSample { process, guest });
    }
    Ok(results)
}

/// The table: husk-vmm's memory (medians), and for reference both VMMs'
/// overhead at the ready line of a bare boot (the startup section's boot
/// reference, RSS only: that is what husk-vmm reports of itself).
pub fn table(
    samples: &[OverheadSample],
    boots: Option<&std::collections::BTreeMap<Vmm, Vec<BootSample>>>,
) -> String {
    let mib = |kib: f64| format!("{:.1}", kib / 1024.0);
    let column = |pick: &dyn Fn(&OverheadSample) -> u64| {
        median(&samples.iter().map(|s| pick(s) as f64).collect::<Vec<_>>())
    };
    let mut rows = vec![
        vec![
            "husk-vmm, whole process".to_string(),
            mib(column(&|s| s.process.rss_kib)),
            mib(column(&|s| s.process.pss_kib)),
        ],
        vec![
            "guest RAM the guest touched".to_string(),
            mib(column(&|s| s.guest.rss_kib)),
            mib(column(&|s| s.guest.pss_kib)),
        ],
        vec![
            "VMM overhead (whole − guest)".to_string(),
            mib(column(&|s| s.vmm_overhead().rss_kib)),
            mib(column(&|s| s.vmm_overhead().pss_kib)),
        ],
    ];
    for (vmm, boot_samples) in boots.into_iter().flatten() {
        let overhead: Vec<f64> = boot_samples
            .iter()
            .map(|s| s.rss_kib.saturating_sub(s.guest_kib) as f64)
            .collect();
        rows.push(vec![
            format!("{} overhead at the ready line, bare boot", vmm.name()),
            mib(median(&overhead)),
            "-".to_string(),
        ]);
    }
    markdown_table(&["(MiB, median)", "RSS", "PSS"], 1, &rows)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn overhead_is_the_process_less_the_guest() {
        let sample = |rss, pss| OverheadSample {
            process: MemoryUse {
                rss_kib: rss,
                pss_kib: pss,
            },
            guest: MemoryUse {
                rss_kib: 10240,
                pss_kib: 8192,
            },
        };
        let samples = [
            sample(20480, 16384),
            sample(30720, 18432),
            sample(25600, 17408),
        ];
        assert_eq!(
            samples[0].vmm_overhead(),
            MemoryUse {
                rss_kib: 10240,
                pss_kib: 8192
            }
        );
        let boots = BTreeMap::from([(
            Vmm::QemuMicrovm,
            vec![BootSample {
                rss_kib: 40960,
                guest_kib: 20480,
                ..BootSample::default()
            }],
        )]);
        let table = table(&samples, Some(&boots));
        assert!(table.contains("| husk-vmm, whole process "), "{table}");
        assert!(table.contains("| 25.0 | 17.0 |"), "{table}");
        assert!(table.contains("| 15.0 |  9.0 |"), "{table}");
        assert!(
            table.contains("qemu -M microvm overhead at the ready line, bare boot | 20.0 |"),
            "{table}"
        );
    }
}
