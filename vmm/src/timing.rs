//! Boot phase timestamps on the monotonic clock, recorded from any thread.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The phases husk-vmm records, in boot order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// /dev/kvm opened, VM created, guest memory mapped and the kernel,
    /// initrd and boot information in place.
    KvmReady,
    /// The boot vCPU entered KVM_RUN for the first time.
    FirstKvmRun,
    /// husk-init's first write to the boot marker port.
    InitStarted,
    /// husk-init mounted its filesystems and printed its ready line.
    InitReady,
    /// The VM ended.
    Exit,
}

impl Phase {
    pub const ALL: [Phase; 5] = [
        Phase::KvmReady,
        Phase::FirstKvmRun,
        Phase::InitStarted,
        Phase::InitReady,
        Phase::Exit,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Phase::KvmReady => "kvm_ready",
            Phase::FirstKvmRun => "first_kvm_run",
            Phase::InitStarted => "init_started",
            Phase::InitReady => "init_ready",
            Phase::Exit => "exit",
        }
    }
}

/// When each phase was first reached, relative to the process start.
pub struct Timeline {
    origin: Instant,
    /// Nanoseconds since `origin` plus one; zero means "not reached".
    stamps: [AtomicU64; Phase::ALL.len()],
}

impl Timeline {
    /// `origin` should be taken as early in `main` as possible.
    pub fn new(origin: Instant) -> Self {
        Self {
            origin,
            stamps: Default::default(),
        }
    }

    /// Records `phase` now, unless it was already recorded.
    pub fn record(&self, phase: Phase) {
        let nanos = self
            .origin
            .elapsed()
            .as_nanos()
            .min(u128::from(u64::MAX - 1)) as u64
            + 1;
        let _ = self.stamps[phase as usize].compare_exchange(
            0,
            nanos,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    pub fn get(&self, phase: Phase) -> Option<Duration> {
        match self.stamps[phase as usize].load(Ordering::Acquire) {
            0 => None,
            nanos => Some(Duration::from_nanos(nanos - 1)),
        }
    }

    /// One line, `husk-vmm: timing phase=ms ...`, with the phases that were
    /// reached, in milliseconds since the process started.
    pub fn summary(&self) -> String {
        let mut line = String::from("husk-vmm: timing");
        for phase in Phase::ALL {
            if let Some(at) = self.get(phase) {
                let _ = write!(line, " {}={:.3}ms", phase.name(), at.as_secs_f64() * 1000.0);
            }
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_recorded_once_and_reported_in_order() {
        let timeline = Timeline::new(Instant::now());
        assert_eq!(timeline.get(Phase::KvmReady), None);
        timeline.record(Phase::InitStarted);
        let first = timeline.get(Phase::InitStarted).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        timeline.record(Phase::InitStarted);
        assert_eq!(timeline.get(Phase::InitStarted), Some(first));
        timeline.record(Phase::KvmReady);
        let summary = timeline.summary();
        assert!(
            summary.starts_with("husk-vmm: timing kvm_ready="),
            "{summary}"
        );
        assert!(summary.contains(" init_started="), "{summary}");
        assert!(!summary.contains("exit="), "{summary}");
        assert!(summary.find("kvm_ready").unwrap() < summary.find("init_started").unwrap());
    }
}
