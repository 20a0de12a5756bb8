//! Threads that carry out block requests beside the event loop, so that
//! requests the driver has in flight together reach the disk together: a
//! 1 MiB write that the guest splits in two, or several readers' requests.
//! The event loop keeps the queue; workers touch only the disk and the
//! guest buffers of the request they were given, and hand back the used
//! length for the event loop to publish (virtio 1.2 §2.7.14: requests may
//! complete in any order).

use std::io;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use virtio_queue::desc::split::Descriptor;
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::device::{complete, Disk};
use crate::seccomp::{self, ThreadKind};

/// Worker threads per disk, at most; more rarely helps a single file, and
/// each costs a stack.
pub const MAX_WORKERS: usize = 4;

/// A request handed to a worker.
struct Job {
    head: u16,
    chain: Vec<Descriptor>,
    mem: GuestMemoryMmap,
}

/// A request a worker carried out: the chain's head and its used length.
pub struct Done {
    pub head: u16,
    pub used_len: u32,
}

pub struct Workers {
    disk: Arc<Disk>,
    /// Closed on drop, which ends the workers.
    jobs: Option<Sender<Job>>,
    queued_jobs: Arc<Mutex<Receiver<Job>>>,
    finished: Arc<Mutex<Vec<Done>>>,
    /// Signalled after each finished request; the event loop watches it.
    pub finished_event: Arc<EventFd>,
    threads: Vec<JoinHandle<()>>,
    in_flight: usize,
}

impl Workers {
    pub fn new(disk: Arc<Disk>) -> io::Result<Self> {
        let (jobs, queued_jobs) = mpsc::channel();
        Ok(Self {
            disk,
            jobs: Some(jobs),
            queued_jobs: Arc::new(Mutex::new(queued_jobs)),
            finished: Arc::new(Mutex::new(Vec::new())),
            finished_event: Arc::new(EventFd::new(EFD_NONBLOCK)?),
            threads: Vec::new(),
            in_flight: 0,
        })
    }

    /// Requests with the workers that the event loop has not collected.
    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Hands the request to a worker, starting one if all are busy and
    /// there is room for another. Gives the request back if no worker can
    /// take it (none could be started): the caller carries it out itself.
    pub fn submit(
        &mut self,
        head: u16,
        chain: Vec<Descriptor>,
        mem: &GuestMemoryMmap,
    ) -> Result<(), Vec<Descriptor>> {
        if self.in_flight >= self.threads.len() && self.threads.len() < MAX_WORKERS {
            // Failing to start one more is fine while others run.
            if self.spawn().is_err() && self.threads.is_empty() {
                return Err(chain);
            }
        }
        let Some(jobs) = &self.jobs else {
            return Err(chain);
        };
        let job = Job {
            head,
            chain,
            mem: mem.clone(),
        };
        match jobs.send(job) {
            Ok(()) => {
                self.in_flight += 1;
                Ok(())
            }
            Err(mpsc::SendError(job)) => Err(job.chain),
        }
    }

    fn spawn(&mut self) -> io::Result<()> {
        let disk = Arc::clone(&self.disk);
        let queued_jobs = Arc::clone(&self.queued_jobs);
        let finished = Arc::clone(&self.finished);
        let finished_event = Arc::clone(&self.finished_event);
        // The worker starts under the event loop's seccomp filter and
        // narrows it to its own before it takes a job.
        let seccomp_mode = seccomp::current_thread_mode();
        let thread = thread::Builder::new()
            .name(format!("husk-blk-io{}", self.threads.len()))
            .spawn(move || {
                seccomp::narrow_current_thread(ThreadKind::BlockWorker, seccomp_mode);
                loop {
                    // The lock is held only while waiting for the next job.
                    let next = match queued_jobs.lock() {
                        Ok(receiver) => receiver.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = next else {
                        // The device is gone.
                        return;
                    };
                    let used_len = complete(&job.chain, &job.mem, &disk);
                    if let Ok(mut finished) = finished.lock() {
                        finished.push(Done {
                            head: job.head,
                            used_len,
                        });
                    }
                    // Can only fail if the counter would overflow, which the
                    // event loop prevents by reading it.
                    let _ = finished_event.write(1);
                }
            })?;
        self.threads.push(thread);
        Ok(())
    }

    /// The requests finished since the last call.
    pub fn take_finished(&mut self) -> Vec<Done> {
        let _ = self.finished_event.read();
        let done = self
            .finished
            .lock()
            .map(|mut finished| std::mem::take(&mut *finished))
            .unwrap_or_default();
        self.in_flight -= done.len().min(self.in_flight);
        done
    }

    /// Waits until no request is in flight and returns those that finished:
    /// a reset must not let a worker write into memory the driver already
    /// took back.
    pub fn drain(&mut self) -> Vec<Done> {
        let mut done = Vec::new();
        while self.in_flight > 0 {
            let batch = self.take_finished();
            if batch.is_empty() {
                // The workers are busy on the disk; wait for the next one.
                let _ = wait_readable(&self.finished_event);
            }
            done.extend(batch);
        }
        done
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        // Closing the channel ends each worker after its current request.
        self.jobs = None;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Blocks until the non-blocking eventfd has a count to read.
pub(super) fn wait_readable(event: &EventFd) -> io::Result<()> {
    use std::os::fd::AsRawFd;

    use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};

    let epoll = Epoll::new()?;
    epoll.ctl(
        ControlOperation::Add,
        event.as_raw_fd(),
        EpollEvent::new(EventSet::IN, 0),
    )?;
    let mut events = [EpollEvent::default()];
    epoll.wait(-1, &mut events)?;
    Ok(())
}
