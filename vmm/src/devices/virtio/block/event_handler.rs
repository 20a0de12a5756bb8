//! The block device on the event loop: its queue notifier and its workers'
//! completion notifier.

use std::os::fd::AsRawFd;

use event_manager::{EventOps, Events, MutEventSubscriber};
use vmm_sys_util::epoll::EventSet;

use super::device::Block;

impl MutEventSubscriber for Block {
    fn process(&mut self, events: Events, _ops: &mut EventOps) {
        if events.fd() == self.queue_event.as_raw_fd() {
            // Drain the notification first: requests queued after this
            // point signal it again.
            let _ = self.queue_event.read();
            self.process();
        } else if events.fd() == self.workers.finished_event.as_raw_fd() {
            self.process_finished();
        }
    }

    fn init(&mut self, ops: &mut EventOps) {
        // Registration only fails on a broken epoll fd, which the event loop
        // reports itself.
        let _ = ops.add(Events::new(&self.queue_event, EventSet::IN));
        let _ = ops.add(Events::new(&*self.workers.finished_event, EventSet::IN));
    }
}
