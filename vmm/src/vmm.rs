//! A built VM in motion: vCPU threads, the event loop that waits for the VM
//! to end (or for SIGTERM/SIGINT), and the teardown.

use std::os::fd::AsRawFd;
use std::os::unix::thread::JoinHandleExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use event_manager::{EventManager, EventOps, Events, MutEventSubscriber, SubscriberOps};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::eventfd::EventFd;

use crate::console::ConsoleTail;
use crate::devices::bus::Bus;
use crate::metrics::{self, MemoryUsage};
use crate::seccomp::{self, SeccompError, SeccompMode, ThreadKind};
use crate::signals::SignalFd;
use crate::timing::{Phase, Timeline};
use crate::vstate::kvm::KvmContext;
use crate::vstate::memory::host_ranges;
use crate::vstate::vcpu::{self, Vcpu, VcpuError, VcpuStop};
use crate::vstate::vm::Vm;

/// How long teardown waits for a vCPU thread to leave KVM_RUN before giving
/// up on joining it (the process is about to exit anyway).
const VCPU_STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// How the VM ended.
#[derive(Debug)]
pub enum VmOutcome {
    /// The guest handed back an exit status.
    GuestExit(u8),
    /// The guest reset (keyboard controller) or triple-faulted without
    /// handing back a status: a kernel panic with `panic=-1`, a crash, or a
    /// reboot nobody asked for. A triple fault carries the faulting vCPU's
    /// registers.
    GuestCrashed { triple_fault: Option<String> },
    /// The VMM was asked to stop with this signal.
    Signal(libc::c_int),
    /// A vCPU could not go on.
    VcpuFailed(VcpuError),
}

/// What `run` reports: the outcome and what the VM cost.
pub struct VmReport {
    pub outcome: VmOutcome,
    pub memory: Option<MemoryUsage>,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("create the vCPU exit eventfd")]
    ExitEventFd(#[source] std::io::Error),
    #[error(transparent)]
    KickHandler(VcpuError),
    #[error("start the thread for vCPU {index}")]
    SpawnVcpu {
        index: u8,
        #[source]
        source: std::io::Error,
    },
    #[error("create the event loop")]
    EventManager(#[source] event_manager::Error),
    #[error("run the event loop")]
    EventLoop(#[source] event_manager::Error),
    #[error("confine the thread of vCPU {index}")]
    ConfineVcpu {
        index: u8,
        #[source]
        source: SeccompError,
    },
    #[error("confine the event loop")]
    ConfineEventLoop(#[source] SeccompError),
}

/// What the builder hands over.
pub struct VmmParts {
    pub kvm: KvmContext,
    pub vm: Vm,
    pub guest_memory: GuestMemoryMmap,
    pub vcpus: Vec<Vcpu>,
    pub io_bus: Arc<Bus>,
    pub mmio_bus: Arc<Bus>,
    pub subscribers: Vec<Arc<Mutex<dyn MutEventSubscriber + Send>>>,
    pub timeline: Arc<Timeline>,
    pub console_tail: ConsoleTail,
    pub seccomp: SeccompMode,
}

pub struct Vmm {
    // Field order is drop order: vCPUs go before the VM, and guest memory
    // (which KVM maps) outlives both.
    vcpus: Vec<Vcpu>,
    io_bus: Arc<Bus>,
    mmio_bus: Arc<Bus>,
    /// Devices that run on the event loop (virtio queue handlers).
    subscribers: Vec<Arc<Mutex<dyn MutEventSubscriber + Send>>>,
    timeline: Arc<Timeline>,
    console_tail: ConsoleTail,
    seccomp: SeccompMode,
    vm: Vm,
    _kvm: KvmContext,
    guest_memory: GuestMemoryMmap,
}

impl Vmm {
    pub fn new(parts: VmmParts) -> Self {
        let VmmParts {
            kvm,
            vm,
            guest_memory,
            vcpus,
            io_bus,
            mmio_bus,
            subscribers,
            timeline,
            console_tail,
            seccomp,
        } = parts;
        Self {
            vcpus,
            io_bus,
            mmio_bus,
            subscribers,
            timeline,
            console_tail,
            seccomp,
            vm,
            _kvm: kvm,
            guest_memory,
        }
    }

    /// The last console lines, for explaining a crash.
    pub fn console_tail(&self) -> ConsoleTail {
        self.console_tail.clone()
    }

    pub fn vm(&self) -> &Vm {
        &self.vm
    }

    /// Runs the VM until it ends or a signal arrives on `signals`, then
    /// stops every vCPU thread. `signals` must have been created before any
    /// thread, so that every thread inherits the blocked mask.
    ///
    /// The vCPU threads and then this thread confine themselves with
    /// seccomp before the guest runs (the seccomp module tells the order).
    pub fn run(&mut self, signals: SignalFd) -> Result<VmReport, RuntimeError> {
        vcpu::install_kick_handler().map_err(RuntimeError::KickHandler)?;
        let exit_event = EventFd::new(libc::EFD_NONBLOCK).map_err(RuntimeError::ExitEventFd)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (stops_tx, stops_rx) = mpsc::channel();
        // Each vCPU thread reports whether it confined itself, then waits
        // for its `go`; dropping the sender instead ends it unstarted.
        let (confined_tx, confined_rx) = mpsc::channel();
        let mut go = Vec::with_capacity(self.vcpus.len());

        let mut threads = Vec::with_capacity(self.vcpus.len());
        for mut vcpu in self.vcpus.drain(..) {
            let index = vcpu.index();
            let io_bus = self.io_bus.clone();
            let mmio_bus = self.mmio_bus.clone();
            let timeline = self.timeline.clone();
            let stop = stop.clone();
            let stops_tx = stops_tx.clone();
            let exit_event = exit_event.try_clone().map_err(RuntimeError::ExitEventFd)?;
            let confined_tx = confined_tx.clone();
            let (go_tx, go_rx) = mpsc::channel::<()>();
            go.push(go_tx);
            let seccomp_mode = self.seccomp;
            let handle = thread::Builder::new()
                .name(format!("vcpu{index}"))
                .spawn(move || {
                    let confined = seccomp::confine_current_thread(ThreadKind::Vcpu, seccomp_mode);
                    let may_run = confined.is_ok();
                    let _ = confined_tx.send((index, confined));
                    drop(confined_tx);
                    if may_run && go_rx.recv().is_ok() {
                        let result = vcpu.run(&io_bus, &mmio_bus, &timeline, &stop);
                        // The receiver only goes away once the VM is over.
                        let _ = stops_tx.send(result);
                        let _ = exit_event.write(1);
                    }
                    vcpu
                })
                .map_err(|source| RuntimeError::SpawnVcpu { index, source })?;
            threads.push(handle);
        }
        drop(confined_tx);

        // Only now, with the vCPU threads started (they must not inherit
        // this policy) and before any of them enters the guest.
        let confined = seccomp::confine_current_thread(ThreadKind::EventLoop, self.seccomp)
            .map_err(RuntimeError::ConfineEventLoop)
            .and_then(|()| wait_for_confined_vcpus(&confined_rx, threads.len()));
        if let Err(error) = confined {
            drop(go);
            for handle in threads {
                if let Ok(vcpu) = handle.join() {
                    self.vcpus.push(vcpu);
                }
            }
            return Err(error);
        }
        for go in go {
            let _ = go.send(());
        }

        let outcome = wait_for_end(exit_event, signals, stops_rx, &self.subscribers);
        stop.store(true, Ordering::Release);
        for handle in threads {
            if let Some(vcpu) = stop_vcpu_thread(handle) {
                self.vcpus.push(vcpu);
            }
        }
        self.timeline.record(Phase::Exit);
        let memory = metrics::memory_usage(&host_ranges(&self.guest_memory));
        Ok(VmReport {
            outcome: outcome?,
            memory,
        })
    }
}

/// Waits until each of `count` vCPU threads has reported whether it
/// confined itself; the first failure is the error.
fn wait_for_confined_vcpus(
    confined: &Receiver<(u8, Result<(), SeccompError>)>,
    count: usize,
) -> Result<(), RuntimeError> {
    for _ in 0..count {
        match confined.recv() {
            Ok((index, Err(source))) => return Err(RuntimeError::ConfineVcpu { index, source }),
            Ok((_, Ok(()))) => {}
            // Every thread has reported or is gone.
            Err(_) => break,
        }
    }
    Ok(())
}

/// Runs the event loop until a vCPU reports the end of the VM or a stop
/// signal arrives.
fn wait_for_end(
    exit_event: EventFd,
    signals: SignalFd,
    stops: Receiver<VcpuStop>,
    subscribers: &[Arc<Mutex<dyn MutEventSubscriber + Send>>],
) -> Result<VmOutcome, RuntimeError> {
    let controller = Arc::new(Mutex::new(Controller {
        exit_event,
        signals,
        stops,
        outcome: None,
    }));
    let mut event_manager = EventManager::<Arc<Mutex<dyn MutEventSubscriber + Send>>>::new()
        .map_err(RuntimeError::EventManager)?;
    event_manager.add_subscriber(controller.clone());
    for subscriber in subscribers {
        event_manager.add_subscriber(subscriber.clone());
    }
    loop {
        event_manager.run().map_err(RuntimeError::EventLoop)?;
        if let Some(outcome) = controller
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .outcome
            .take()
        {
            return Ok(outcome);
        }
    }
}

/// Kicks a vCPU thread out of KVM_RUN until it notices `stop`, and joins it.
/// A signal can land just before the thread enters KVM_RUN, so kick again
/// until it is out, within a bound.
fn stop_vcpu_thread(handle: JoinHandle<Vcpu>) -> Option<Vcpu> {
    let deadline = Instant::now() + VCPU_STOP_TIMEOUT;
    while !handle.is_finished() && Instant::now() < deadline {
        // SAFETY: the thread has not been joined, so its pthread_t is valid;
        // the kick signal has a handler installed (an ignored signal would
        // not interrupt KVM_RUN, a default one would kill the process).
        unsafe { libc::pthread_kill(handle.as_pthread_t(), vcpu::kick_signal()) };
        thread::sleep(Duration::from_millis(1));
    }
    if handle.is_finished() {
        handle.join().ok()
    } else {
        None
    }
}

/// The event loop's one subscriber: vCPU exits and stop signals.
struct Controller {
    exit_event: EventFd,
    signals: SignalFd,
    stops: Receiver<VcpuStop>,
    outcome: Option<VmOutcome>,
}

impl Controller {
    fn on_vcpu_stop(&mut self) {
        let _ = self.exit_event.read();
        while let Ok(stop) = self.stops.try_recv() {
            let outcome = match stop {
                VcpuStop::GuestExit(status) => VmOutcome::GuestExit(status),
                VcpuStop::GuestReset => VmOutcome::GuestCrashed { triple_fault: None },
                VcpuStop::TripleFault(registers) => VmOutcome::GuestCrashed {
                    triple_fault: Some(registers),
                },
                VcpuStop::Failed(error) => VmOutcome::VcpuFailed(error),
                VcpuStop::Stopped => continue,
            };
            self.outcome.get_or_insert(outcome);
        }
    }

    fn on_signal(&mut self) {
        while let Ok(Some(signal)) = self.signals.read() {
            self.outcome.get_or_insert(VmOutcome::Signal(signal));
        }
    }
}

impl MutEventSubscriber for Controller {
    fn process(&mut self, events: Events, _ops: &mut EventOps) {
        if events.fd() == self.exit_event.as_raw_fd() {
            self.on_vcpu_stop();
        } else if events.fd() == self.signals.as_raw_fd() {
            self.on_signal();
        }
    }

    fn init(&mut self, ops: &mut EventOps) {
        // Registration only fails on a broken epoll fd; then the loop can't
        // work at all and `run` reports that.
        let _ = ops.add(Events::new(&self.exit_event, EventSet::IN));
        let _ = ops.add(Events::new(&self.signals, EventSet::IN));
    }
}
