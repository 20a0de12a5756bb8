//! The guest signal ports (see `husk_protocol::guest_signal`): husk-init
//! marks boot phases and hands back its exit status with single-byte port
//! writes.

use std::sync::Arc;

use husk_protocol::guest_signal::{BootPhase, BOOT_MARKER_PORT, EXIT_STATUS_PORT, PORT_BASE};

use crate::devices::bus::{BusAction, BusDevice};
use crate::timing::{Phase, Timeline};

pub struct GuestSignal {
    timeline: Arc<Timeline>,
}

impl GuestSignal {
    pub fn new(timeline: Arc<Timeline>) -> Self {
        Self { timeline }
    }
}

const MARKER_OFFSET: u64 = (BOOT_MARKER_PORT - PORT_BASE) as u64;
const EXIT_OFFSET: u64 = (EXIT_STATUS_PORT - PORT_BASE) as u64;

impl BusDevice for GuestSignal {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> BusAction {
        // Only single-byte writes mean anything; anything else is ignored.
        let [value] = data else {
            return BusAction::None;
        };
        match offset {
            MARKER_OFFSET => {
                match BootPhase::from_code(*value) {
                    Some(BootPhase::InitStarted) => self.timeline.record(Phase::InitStarted),
                    Some(BootPhase::InitReady) => self.timeline.record(Phase::InitReady),
                    None => {}
                }
                BusAction::None
            }
            EXIT_OFFSET => BusAction::Exit(*value),
            _ => BusAction::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn marker_writes_record_phases_and_exit_writes_end_the_vm() {
        let timeline = Arc::new(Timeline::new(Instant::now()));
        let mut device = GuestSignal::new(timeline.clone());
        assert_eq!(
            device.write(MARKER_OFFSET, &[BootPhase::InitStarted as u8]),
            BusAction::None
        );
        assert!(timeline.get(Phase::InitStarted).is_some());
        assert!(timeline.get(Phase::InitReady).is_none());
        assert_eq!(device.write(MARKER_OFFSET, &[2]), BusAction::None);
        assert!(timeline.get(Phase::InitReady).is_some());
        // Unknown codes and wide writes are ignored.
        assert_eq!(device.write(MARKER_OFFSET, &[99]), BusAction::None);
        assert_eq!(device.write(EXIT_OFFSET, &[1, 2]), BusAction::None);
        assert_eq!(device.write(EXIT_OFFSET, &[42]), BusAction::Exit(42));
    }
}
