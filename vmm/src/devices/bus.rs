//! Dispatch of guest port I/O (and later MMIO) exits to the device that owns
//! the address.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// What a guest write asks of the VMM beyond the device itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusAction {
    None,
    /// The guest reset the machine (keyboard controller reset line): the VM
    /// ends.
    Reset,
    /// The guest handed back its exit status: the VM ends with it.
    Exit(u8),
}

/// A device on the bus; `offset` is relative to the base it was inserted at.
pub trait BusDevice: Send {
    fn read(&mut self, offset: u64, data: &mut [u8]);
    fn write(&mut self, offset: u64, data: &[u8]) -> BusAction;
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BusError {
    #[error("device range {base:#x}+{len:#x} is empty or wraps around")]
    InvalidRange { base: u64, len: u64 },
    #[error("device range {base:#x}+{len:#x} overlaps the one at {other:#x}")]
    Overlap { base: u64, len: u64, other: u64 },
}

struct BusRange {
    len: u64,
    device: Arc<Mutex<dyn BusDevice>>,
}

/// Non-overlapping address ranges, each owned by one device.
#[derive(Default)]
pub struct Bus {
    ranges: BTreeMap<u64, BusRange>,
}

impl Bus {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(
        &mut self,
        base: u64,
        len: u64,
        device: Arc<Mutex<dyn BusDevice>>,
    ) -> Result<(), BusError> {
        let end = base
            .checked_add(len)
            .filter(|_| len > 0)
            .ok_or(BusError::InvalidRange { base, len })?;
        // The only candidates for overlap: the last range starting before
        // `end`.
        if let Some((&other, range)) = self.ranges.range(..end).next_back() {
            if other + range.len > base {
                return Err(BusError::Overlap { base, len, other });
            }
        }
        self.ranges.insert(base, BusRange { len, device });
        Ok(())
    }

    fn find(&self, addr: u64, size: usize) -> Option<(u64, &Arc<Mutex<dyn BusDevice>>)> {
        let (&base, range) = self.ranges.range(..=addr).next_back()?;
        let offset = addr - base;
        // The whole access must fall inside the device's range.
        (offset.checked_add(size as u64)? <= range.len).then_some((offset, &range.device))
    }

    /// Fills `data` from the device at `addr`; returns false when no device
    /// owns the address (the caller decides what the guest reads then).
    pub fn read(&self, addr: u64, data: &mut [u8]) -> bool {
        match self.find(addr, data.len()) {
            Some((offset, device)) => {
                lock(device).read(offset, data);
                true
            }
            None => false,
        }
    }

    /// Hands `data` to the device at `addr`; `None` when no device owns it.
    pub fn write(&self, addr: u64, data: &[u8]) -> Option<BusAction> {
        let (offset, device) = self.find(addr, data.len())?;
        let action = lock(device).write(offset, data);
        Some(action)
    }
}

/// A device's lock is only poisoned if a vCPU thread panicked inside it, and
/// the release profile aborts on panic; recover the state rather than
/// cascading.
fn lock<'a>(
    device: &'a Mutex<dyn BusDevice + 'static>,
) -> std::sync::MutexGuard<'a, dyn BusDevice + 'static> {
    device
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Recorder {
        writes: Vec<(u64, Vec<u8>)>,
    }

    impl BusDevice for Recorder {
        fn read(&mut self, offset: u64, data: &mut [u8]) {
            data.fill(offset as u8);
        }
        fn write(&mut self, offset: u64, data: &[u8]) -> BusAction {
            self.writes.push((offset, data.to_vec()));
            BusAction::Exit(data[0])
        }
    }

    #[test]
    fn accesses_reach_the_owning_device_with_its_offset() {
        let device = Arc::new(Mutex::new(Recorder::default()));
        let mut bus = Bus::new();
        bus.insert(0x3f8, 8, device.clone()).unwrap();
        let mut data = [0u8; 1];
        assert!(bus.read(0x3fd, &mut data));
        assert_eq!(data, [5]);
        assert_eq!(bus.write(0x3f8, &[7]), Some(BusAction::Exit(7)));
        assert_eq!(device.lock().unwrap().writes, vec![(0, vec![7])]);
    }

    #[test]
    fn addresses_outside_every_range_are_unclaimed() {
        let mut bus = Bus::new();
        bus.insert(0x60, 5, Arc::new(Mutex::new(Recorder::default())))
            .unwrap();
        let mut data = [0u8; 1];
        assert!(!bus.read(0x5f, &mut data));
        assert!(!bus.read(0x65, &mut data));
        assert_eq!(bus.write(0x80, &[1]), None);
        // An access that starts inside but runs past the end is refused.
        assert!(!bus.read(0x63, &mut [0u8; 4]));
        assert!(bus.read(0x61, &mut [0u8; 4]));
    }

    #[test]
    fn overlapping_and_empty_ranges_are_rejected() {
        let mut bus = Bus::new();
        let device = || Arc::new(Mutex::new(Recorder::default()));
        bus.insert(0x100, 0x10, device()).unwrap();
        assert_eq!(
            bus.insert(0x10f, 1, device()),
            Err(BusError::Overlap {
                base: 0x10f,
                len: 1,
                other: 0x100
            })
        );
        assert!(bus.insert(0xf8, 0x9, device()).is_err());
        assert!(bus.insert(0xf8, 0x8, device()).is_ok());
        assert!(bus.insert(0x110, 0x10, device()).is_ok());
        assert_eq!(
            bus.insert(0x200, 0, device()),
            Err(BusError::InvalidRange {
                base: 0x200,
                len: 0
            })
        );
        assert!(bus.insert(u64::MAX, 2, device()).is_err());
    }
}
