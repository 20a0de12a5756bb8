//! PC devices that Linux expects at fixed I/O ports: the 16550A UART for the
//! console and the i8042 controller for rebooting.

pub mod guest_signal;
pub mod i8042;
pub mod serial;

pub use i8042::{I8042Action, I8042};
pub use serial::{Serial, SerialError};

use crate::devices::bus::{BusAction, BusDevice};

/// Port devices take one byte at a time; wider accesses to them read the
/// first register and ignore the rest, as an 8-bit ISA device would.
impl BusDevice for Serial {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0xff);
        if let (Some(first), Ok(offset)) = (data.first_mut(), u8::try_from(offset)) {
            *first = Serial::read(self, offset);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> BusAction {
        if let (Some(&value), Ok(offset)) = (data.first(), u8::try_from(offset)) {
            // A console sink that fails (a closed pipe, a full disk) loses
            // output but must not stop the guest.
            let _ = Serial::write(self, offset, value);
        }
        BusAction::None
    }
}

impl BusDevice for I8042 {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0xff);
        if let (Some(first), Ok(offset)) = (data.first_mut(), u8::try_from(offset)) {
            *first = I8042::read(self, offset);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> BusAction {
        match (data.first(), u8::try_from(offset)) {
            (Some(&value), Ok(offset)) => match I8042::write(self, offset, value) {
                I8042Action::ResetRequested => BusAction::Reset,
                I8042Action::None => BusAction::None,
            },
            _ => BusAction::None,
        }
    }
}
