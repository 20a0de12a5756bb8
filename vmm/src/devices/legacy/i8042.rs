//! The sliver of the i8042 PS/2 controller a Linux guest needs to reboot.
//!
//! With `reboot=k`, and as the fallback when ACPI is absent, Linux's
//! `native_machine_emergency_restart()` waits for the controller's input
//! buffer to drain (`kb_wait()` polls bit 1 of the status port) and then
//! writes command 0xfe to port 0x64, which pulses the CPU reset line. No
//! keyboard or mouse sits behind the controller: the status port always
//! reports empty buffers and the data port always reads zero.

/// First I/O port the controller decodes: the data port.
pub const I8042_PORT_BASE: u16 = 0x60;
/// Length of the port range from [`I8042_PORT_BASE`] through the command
/// port. Offsets 1 to 3 (0x61-0x63) belong to other devices; port 0x61 is
/// system control port B, which KVM's in-kernel PIT handles.
pub const I8042_PORT_LEN: u16 = 5;
/// Offset of the data port (0x60) from [`I8042_PORT_BASE`].
pub const I8042_DATA_PORT_OFFSET: u8 = 0;
/// Offset of the status (read) and command (write) port (0x64) from
/// [`I8042_PORT_BASE`].
pub const I8042_COMMAND_PORT_OFFSET: u8 = 4;

/// Controller command that pulses the output line wired to CPU reset.
const COMMAND_PULSE_RESET: u8 = 0xfe;

/// Status with both buffers empty and nothing to report.
const STATUS_IDLE: u8 = 0;

/// Reads of ports in the range that are not the controller's float high, as
/// on ISA.
const UNDECODED_READ: u8 = 0xff;

/// What the VMM must do after a guest write to the controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum I8042Action {
    /// Nothing beyond the write itself.
    None,
    /// The guest pulsed the reset line: it wants the machine restarted,
    /// which for a container's microVM means shutting it down.
    ResetRequested,
}

/// An i8042 controller with no devices attached.
#[derive(Debug, Default)]
pub struct I8042;

impl I8042 {
    pub fn new() -> Self {
        I8042
    }

    /// Handles a guest read of the port at `port_offset` from
    /// [`I8042_PORT_BASE`].
    pub fn read(&mut self, port_offset: u8) -> u8 {
        match port_offset {
            // Output buffer empty, input buffer empty: `kb_wait()` returns
            // at once.
            I8042_COMMAND_PORT_OFFSET => STATUS_IDLE,
            // No keyboard, so no scan codes or command replies.
            I8042_DATA_PORT_OFFSET => 0,
            _ => UNDECODED_READ,
        }
    }

    /// Handles a guest write of `value` to the port at `port_offset` from
    /// [`I8042_PORT_BASE`].
    pub fn write(&mut self, port_offset: u8, value: u8) -> I8042Action {
        match (port_offset, value) {
            (I8042_COMMAND_PORT_OFFSET, COMMAND_PULSE_RESET) => I8042Action::ResetRequested,
            // Other commands and all data bytes are accepted and ignored.
            _ => I8042Action::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_0x60_and_0x64() {
        assert_eq!(I8042_PORT_BASE + u16::from(I8042_DATA_PORT_OFFSET), 0x60);
        assert_eq!(I8042_PORT_BASE + u16::from(I8042_COMMAND_PORT_OFFSET), 0x64);
        assert!(u16::from(I8042_COMMAND_PORT_OFFSET) < I8042_PORT_LEN);
    }

    #[test]
    fn status_reports_input_buffer_empty() {
        let mut controller = I8042::new();
        // Linux's kb_wait() spins while bit 1 (input buffer full) is set.
        assert_eq!(controller.read(I8042_COMMAND_PORT_OFFSET) & 0x02, 0);
        assert_eq!(controller.read(I8042_COMMAND_PORT_OFFSET), 0);
        assert_eq!(controller.read(I8042_DATA_PORT_OFFSET), 0);
    }

    #[test]
    fn pulse_reset_command_requests_reset() {
        let mut controller = I8042::new();
        assert_eq!(
            controller.write(I8042_COMMAND_PORT_OFFSET, 0xfe),
            I8042Action::ResetRequested
        );
    }

    #[test]
    fn other_writes_request_nothing() {
        let mut controller = I8042::new();
        // 0xfe on the data port is a keyboard byte, not a controller command.
        assert_eq!(
            controller.write(I8042_DATA_PORT_OFFSET, 0xfe),
            I8042Action::None
        );
        for command in [0x20, 0x60, 0xaa, 0xad, 0xd1, 0xff] {
            assert_eq!(
                controller.write(I8042_COMMAND_PORT_OFFSET, command),
                I8042Action::None,
                "command {command:#04x}"
            );
        }
        assert_eq!(controller.write(1, 0xfe), I8042Action::None);
    }

    #[test]
    fn ports_between_data_and_command_are_not_decoded() {
        let mut controller = I8042::new();
        for offset in 1..=3 {
            assert_eq!(controller.read(offset), UNDECODED_READ);
        }
    }
}
