//! A 16550A UART at COM1 (I/O port 0x3f8, IRQ 4): the guest's console.
//!
//! Register layout, reset values and interrupt priorities follow the
//! National Semiconductor PC16550D datasheet. Transmission is synchronous: a
//! byte written to THR goes straight to the output, so the transmitter is
//! always empty and the guest never waits on it. Bytes for the guest come
//! from the host through [`Serial::enqueue_input`].
//!
//! Linux's 8250 driver probes the port before using it (`autoconfig()` in
//! `drivers/tty/serial/8250/8250_port.c`): IER must keep exactly its low four
//! bits, loopback must map MCR outputs onto MSR inputs, and IIR must report
//! 0xc0 in its top bits once the FIFOs are enabled. Passing those checks makes
//! the driver treat the port as a 16550A.

use std::collections::VecDeque;
use std::io::{self, Write};

use crate::devices::InterruptLine;

/// First I/O port of COM1.
pub const SERIAL_PORT_BASE: u16 = 0x3f8;
/// Number of consecutive I/O ports the UART decodes.
pub const SERIAL_PORT_LEN: u16 = 8;
/// ISA interrupt line of COM1.
pub const SERIAL_IRQ: u32 = 4;

/// Bytes of host input the UART holds before [`Serial::enqueue_input`]
/// refuses more. Deeper than a real 16550A's 16-byte FIFO; the guest drains
/// it by reading RBR while LSR reports data ready, so the depth is invisible
/// to the driver.
pub const INPUT_FIFO_CAPACITY: usize = 64;

// Register offsets from the base port (PC16550D table II).
/// RBR on read, THR on write; DLL while LCR.DLAB is set.
const DATA: u8 = 0;
/// IER; DLM while LCR.DLAB is set.
const INTERRUPT_ENABLE: u8 = 1;
/// IIR on read, FCR on write.
const INTERRUPT_ID: u8 = 2;
const LINE_CONTROL: u8 = 3;
const MODEM_CONTROL: u8 = 4;
const LINE_STATUS: u8 = 5;
const MODEM_STATUS: u8 = 6;
const SCRATCH: u8 = 7;

const IER_RECEIVED_DATA: u8 = 0x01;
const IER_THR_EMPTY: u8 = 0x02;
/// A 16550A has four interrupt enables; bits 4-7 read back as zero, which
/// the Linux probe checks.
const IER_WRITABLE: u8 = 0x0f;

const IIR_NO_INTERRUPT: u8 = 0x01;
const IIR_THR_EMPTY: u8 = 0x02;
const IIR_RECEIVED_DATA: u8 = 0x04;
/// Both bits set identify a 16550A with working FIFOs.
const IIR_FIFOS_ENABLED: u8 = 0xc0;

const FCR_FIFO_ENABLE: u8 = 0x01;
const FCR_CLEAR_RECEIVE_FIFO: u8 = 0x02;

const LCR_DIVISOR_LATCH_ACCESS: u8 = 0x80;

const MCR_DTR: u8 = 0x01;
const MCR_RTS: u8 = 0x02;
const MCR_OUT1: u8 = 0x04;
const MCR_OUT2: u8 = 0x08;
const MCR_LOOPBACK: u8 = 0x10;
/// Bits 5-7 of MCR are always zero on a 16550A.
const MCR_WRITABLE: u8 = 0x1f;

const LSR_DATA_READY: u8 = 0x01;
const LSR_THR_EMPTY: u8 = 0x20;
const LSR_TRANSMITTER_EMPTY: u8 = 0x40;

const MSR_CTS: u8 = 0x10;
const MSR_DSR: u8 = 0x20;
const MSR_RING_INDICATOR: u8 = 0x40;
const MSR_DCD: u8 = 0x80;

/// 9600 baud from the PC's 1.8432 MHz clock, the rate PC firmware leaves
/// programmed; the guest driver reprograms it and the value has no effect.
const DEFAULT_DIVISOR: u16 = 12;

/// Reads of registers the UART does not decode float high, as on ISA.
const UNDECODED_READ: u8 = 0xff;

/// Errors from driving the UART.
#[derive(Debug, thiserror::Error)]
pub enum SerialError {
    #[error("write guest console output")]
    WriteOutput {
        #[source]
        source: io::Error,
    },
    #[error("flush guest console output")]
    FlushOutput {
        #[source]
        source: io::Error,
    },
    #[error("raise the serial port interrupt")]
    TriggerInterrupt {
        #[source]
        source: io::Error,
    },
    #[error(
        "serial input FIFO has room for {available} bytes but {requested} were offered; \
         retry once the guest has read some"
    )]
    InputFull { requested: usize, available: usize },
}

/// The interrupt sources this UART can raise, highest priority first.
///
/// Line status (errors, break) and modem status (line changes) sources
/// never fire: there is no physical line to fail or change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InterruptSource {
    ReceivedData,
    TransmitterHoldingEmpty,
}

impl InterruptSource {
    fn identification(self) -> u8 {
        match self {
            InterruptSource::ReceivedData => IIR_RECEIVED_DATA,
            InterruptSource::TransmitterHoldingEmpty => IIR_THR_EMPTY,
        }
    }
}

/// A 16550A UART whose transmitter writes to a host stream.
pub struct Serial {
    interrupt_enable: u8,
    line_control: u8,
    modem_control: u8,
    scratch: u8,
    divisor: u16,
    fifos_enabled: bool,
    /// The THR-empty interrupt latch: set when THR empties or the guest
    /// enables the interrupt, cleared by reading IIR while it is the reported
    /// source or by writing THR.
    thr_empty_pending: bool,
    /// Level of the UART's interrupt output as of the last register access.
    /// An irqfd delivers edges, so the line is pulsed only when this rises.
    interrupt_asserted: bool,
    input: VecDeque<u8>,
    interrupt: Box<dyn InterruptLine>,
    output: Option<Box<dyn Write + Send>>,
}

impl Serial {
    /// Creates a UART in its reset state. Guest output goes to `output`, or
    /// is discarded when it is `None`.
    pub fn new(interrupt: Box<dyn InterruptLine>, output: Option<Box<dyn Write + Send>>) -> Self {
        Serial {
            interrupt_enable: 0,
            line_control: 0,
            modem_control: 0,
            scratch: 0,
            divisor: DEFAULT_DIVISOR,
            fifos_enabled: false,
            thr_empty_pending: false,
            interrupt_asserted: false,
            input: VecDeque::with_capacity(INPUT_FIFO_CAPACITY),
            interrupt,
            output,
        }
    }

    /// Handles a guest read of the port at `offset` from [`SERIAL_PORT_BASE`].
    pub fn read(&mut self, offset: u8) -> u8 {
        let value = match offset {
            DATA if self.divisor_latch_access() => self.divisor.to_le_bytes()[0],
            DATA => self.input.pop_front().unwrap_or(0),
            INTERRUPT_ENABLE if self.divisor_latch_access() => self.divisor.to_le_bytes()[1],
            INTERRUPT_ENABLE => self.interrupt_enable,
            INTERRUPT_ID => self.read_interrupt_identification(),
            LINE_CONTROL => self.line_control,
            MODEM_CONTROL => self.modem_control,
            LINE_STATUS => self.line_status(),
            MODEM_STATUS => self.modem_status(),
            SCRATCH => self.scratch,
            _ => UNDECODED_READ,
        };
        // Reads only ever clear interrupt sources (RBR drains the FIFO, IIR
        // acknowledges THR empty), so the output can fall but never rise.
        self.interrupt_asserted = self.pending_interrupt().is_some();
        value
    }

    /// Handles a guest write of `value` to the port at `offset` from
    /// [`SERIAL_PORT_BASE`]. The register state is updated even when writing
    /// the output or raising the interrupt fails; the error is returned for
    /// the caller to report.
    pub fn write(&mut self, offset: u8, value: u8) -> Result<(), SerialError> {
        match offset {
            DATA if self.divisor_latch_access() => {
                let [_, high] = self.divisor.to_le_bytes();
                self.divisor = u16::from_le_bytes([value, high]);
            }
            DATA => return self.transmit(value),
            INTERRUPT_ENABLE if self.divisor_latch_access() => {
                let [low, _] = self.divisor.to_le_bytes();
                self.divisor = u16::from_le_bytes([low, value]);
            }
            INTERRUPT_ENABLE => return self.write_interrupt_enable(value),
            INTERRUPT_ID => self.write_fifo_control(value),
            LINE_CONTROL => self.line_control = value,
            MODEM_CONTROL => self.modem_control = value & MCR_WRITABLE,
            SCRATCH => self.scratch = value,
            // LSR and MSR are read-only; writes to them change nothing.
            _ => {}
        }
        self.update_interrupt()
    }

    /// Queues bytes for the guest to read from RBR and raises the
    /// received-data interrupt if the guest enabled it. Refuses the whole
    /// slice when it does not fit; see [`Serial::input_capacity`].
    pub fn enqueue_input(&mut self, bytes: &[u8]) -> Result<(), SerialError> {
        let available = self.input_capacity();
        if bytes.len() > available {
            return Err(SerialError::InputFull {
                requested: bytes.len(),
                available,
            });
        }
        self.input.extend(bytes);
        self.update_interrupt()
    }

    /// How many more bytes [`Serial::enqueue_input`] accepts now.
    pub fn input_capacity(&self) -> usize {
        INPUT_FIFO_CAPACITY - self.input.len()
    }

    fn divisor_latch_access(&self) -> bool {
        self.line_control & LCR_DIVISOR_LATCH_ACCESS != 0
    }

    fn loopback(&self) -> bool {
        self.modem_control & MCR_LOOPBACK != 0
    }

    fn transmit(&mut self, byte: u8) -> Result<(), SerialError> {
        // Writing THR acknowledges a pending THR-empty interrupt, so the
        // output drops unless received data is also pending.
        self.thr_empty_pending = false;
        self.interrupt_asserted = self.pending_interrupt().is_some();

        let transmitted = if self.loopback() {
            // In loopback the transmitter feeds the receiver and nothing
            // leaves the UART. A byte that finds the FIFO full is lost, as an
            // overrun would lose it.
            if self.input.len() < INPUT_FIFO_CAPACITY {
                self.input.push_back(byte);
            }
            Ok(())
        } else {
            self.write_output(byte)
        };

        // The byte left THR at once, so THR is empty again: a 16550 raises
        // THR empty as the byte moves on to the shift register.
        self.thr_empty_pending = true;
        let interrupt = self.update_interrupt();
        transmitted.and(interrupt)
    }

    fn write_output(&mut self, byte: u8) -> Result<(), SerialError> {
        let Some(output) = self.output.as_mut() else {
            return Ok(());
        };
        output
            .write_all(&[byte])
            .map_err(|source| SerialError::WriteOutput { source })?;
        if byte == b'\n' {
            self.flush_output()?;
        }
        Ok(())
    }

    fn flush_output(&mut self) -> Result<(), SerialError> {
        match self.output.as_mut() {
            Some(output) => output
                .flush()
                .map_err(|source| SerialError::FlushOutput { source }),
            None => Ok(()),
        }
    }

    fn write_interrupt_enable(&mut self, value: u8) -> Result<(), SerialError> {
        let was_enabled = self.interrupt_enable & IER_THR_EMPTY != 0;
        self.interrupt_enable = value & IER_WRITABLE;
        let enabled = self.interrupt_enable & IER_THR_EMPTY != 0;

        // THR is always empty, so enabling its interrupt raises it at once.
        // Linux relies on this: the 8250 driver starts transmitting by
        // setting IER.ETBEI and waiting for the interrupt.
        if enabled && !was_enabled {
            self.thr_empty_pending = true;
        }
        let interrupt = self.update_interrupt();

        // Linux clears IER.ETBEI when its transmit buffer runs dry, which is
        // the end of a burst such as a shell prompt without a newline: push
        // it out to whoever is watching.
        let flushed = if was_enabled && !enabled {
            self.flush_output()
        } else {
            Ok(())
        };
        interrupt.and(flushed)
    }

    fn write_fifo_control(&mut self, value: u8) {
        self.fifos_enabled = value & FCR_FIFO_ENABLE != 0;
        // The FIFO reset bits only take effect together with FIFO enable.
        if value & (FCR_FIFO_ENABLE | FCR_CLEAR_RECEIVE_FIFO)
            == FCR_FIFO_ENABLE | FCR_CLEAR_RECEIVE_FIFO
        {
            self.input.clear();
        }
        // Clearing the transmit FIFO has nothing to do: it is always empty.
    }

    fn pending_interrupt(&self) -> Option<InterruptSource> {
        if self.interrupt_enable & IER_RECEIVED_DATA != 0 && !self.input.is_empty() {
            Some(InterruptSource::ReceivedData)
        } else if self.interrupt_enable & IER_THR_EMPTY != 0 && self.thr_empty_pending {
            Some(InterruptSource::TransmitterHoldingEmpty)
        } else {
            None
        }
    }

    fn read_interrupt_identification(&mut self) -> u8 {
        let fifo_bits = if self.fifos_enabled {
            IIR_FIFOS_ENABLED
        } else {
            0
        };
        match self.pending_interrupt() {
            Some(source) => {
                // Reporting THR empty in IIR acknowledges it; received data
                // stays pending until the guest drains RBR.
                if source == InterruptSource::TransmitterHoldingEmpty {
                    self.thr_empty_pending = false;
                }
                fifo_bits | source.identification()
            }
            None => fifo_bits | IIR_NO_INTERRUPT,
        }
    }

    fn line_status(&self) -> u8 {
        let mut status = LSR_THR_EMPTY | LSR_TRANSMITTER_EMPTY;
        if !self.input.is_empty() {
            status |= LSR_DATA_READY;
        }
        status
    }

    fn modem_status(&self) -> u8 {
        if !self.loopback() {
            // No modem sits behind the port: report a peer that is present
            // and ready, so hardware flow control never holds the guest back.
            return MSR_DCD | MSR_DSR | MSR_CTS;
        }
        // In loopback the modem control outputs drive the modem status
        // inputs (PC16550D, MCR bit 4). The delta bits stay clear; Linux's
        // probe masks them off.
        [
            (MCR_DTR, MSR_DSR),
            (MCR_RTS, MSR_CTS),
            (MCR_OUT1, MSR_RING_INDICATOR),
            (MCR_OUT2, MSR_DCD),
        ]
        .iter()
        .filter(|(control, _)| self.modem_control & control != 0)
        .fold(0, |status, (_, line)| status | line)
    }

    /// Recomputes the interrupt output and pulses the line on a rising edge.
    /// A source that stays asserted is not signalled again until the output
    /// has dropped, as with the 16550's level output wired to an edge input.
    fn update_interrupt(&mut self) -> Result<(), SerialError> {
        let asserted = self.pending_interrupt().is_some();
        let rising = asserted && !self.interrupt_asserted;
        self.interrupt_asserted = asserted;
        if rising {
            self.interrupt
                .trigger()
                .map_err(|source| SerialError::TriggerInterrupt { source })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct CountingInterrupt {
        triggers: Arc<AtomicUsize>,
    }

    impl CountingInterrupt {
        fn count(&self) -> usize {
            self.triggers.load(Ordering::SeqCst)
        }
    }

    impl InterruptLine for CountingInterrupt {
        fn trigger(&self) -> io::Result<()> {
            self.triggers.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    #[derive(Clone, Default)]
    struct SharedOutput {
        bytes: Arc<Mutex<Vec<u8>>>,
        flushes: Arc<AtomicUsize>,
    }

    impl SharedOutput {
        fn contents(&self) -> Vec<u8> {
            self.bytes.lock().unwrap().clone()
        }

        fn flushes(&self) -> usize {
            self.flushes.load(Ordering::SeqCst)
        }
    }

    impl Write for SharedOutput {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.bytes.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            self.flushes.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    struct BrokenOutput;

    impl Write for BrokenOutput {
        fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn serial() -> (Serial, CountingInterrupt, SharedOutput) {
        let interrupt = CountingInterrupt::default();
        let output = SharedOutput::default();
        let serial = Serial::new(Box::new(interrupt.clone()), Some(Box::new(output.clone())));
        (serial, interrupt, output)
    }

    fn transmit_all(serial: &mut Serial, bytes: &[u8]) {
        for &byte in bytes {
            serial.write(DATA, byte).unwrap();
        }
    }

    #[test]
    fn transmitted_bytes_reach_the_output() {
        let (mut serial, _, output) = serial();
        transmit_all(&mut serial, b"hello\n");
        assert_eq!(output.contents(), b"hello\n");
    }

    #[test]
    fn output_is_flushed_at_newline_and_when_transmission_stops() {
        let (mut serial, _, output) = serial();
        transmit_all(&mut serial, b"line\n");
        assert_eq!(output.flushes(), 1);

        // A prompt without a newline: the driver enables the THR-empty
        // interrupt, sends the bytes, then disables it.
        serial.write(INTERRUPT_ENABLE, IER_THR_EMPTY).unwrap();
        transmit_all(&mut serial, b"# ");
        assert_eq!(output.flushes(), 1);
        serial.write(INTERRUPT_ENABLE, 0).unwrap();
        assert_eq!(output.flushes(), 2);
        assert_eq!(output.contents(), b"line\n# ");
    }

    #[test]
    fn missing_output_discards_bytes() {
        let interrupt = CountingInterrupt::default();
        let mut serial = Serial::new(Box::new(interrupt), None);
        transmit_all(&mut serial, b"dropped\n");
        assert_eq!(serial.read(LINE_STATUS) & LSR_THR_EMPTY, LSR_THR_EMPTY);
    }

    #[test]
    fn output_errors_surface_and_transmitter_keeps_going() {
        let interrupt = CountingInterrupt::default();
        let mut serial = Serial::new(Box::new(interrupt.clone()), Some(Box::new(BrokenOutput)));
        serial.write(INTERRUPT_ENABLE, IER_THR_EMPTY).unwrap();
        assert_eq!(serial.read(INTERRUPT_ID), IIR_THR_EMPTY);

        let error = serial.write(DATA, b'x').unwrap_err();
        assert!(matches!(error, SerialError::WriteOutput { .. }));
        // The guest still sees THR empty, so its driver does not stall.
        assert_eq!(interrupt.count(), 2);
        assert_eq!(serial.read(INTERRUPT_ID), IIR_THR_EMPTY);
    }

    #[test]
    fn divisor_latch_writes_do_not_produce_output() {
        let (mut serial, _, output) = serial();
        serial
            .write(LINE_CONTROL, LCR_DIVISOR_LATCH_ACCESS | 0x03)
            .unwrap();
        serial.write(DATA, 0x01).unwrap();
        serial.write(INTERRUPT_ENABLE, 0x02).unwrap();
        assert_eq!(serial.read(DATA), 0x01);
        assert_eq!(serial.read(INTERRUPT_ENABLE), 0x02);

        serial.write(LINE_CONTROL, 0x03).unwrap();
        assert_eq!(serial.read(LINE_CONTROL), 0x03);
        // The divisor bytes went neither to the output nor into IER.
        assert_eq!(serial.read(INTERRUPT_ENABLE), 0);
        assert!(output.contents().is_empty());
        assert_eq!(serial.divisor, 0x0201);
    }

    #[test]
    fn scratch_register_keeps_its_value() {
        let (mut serial, _, _) = serial();
        for value in [0x00, 0x55, 0xaa, 0xff] {
            serial.write(SCRATCH, value).unwrap();
            assert_eq!(serial.read(SCRATCH), value);
        }
    }

    #[test]
    fn loopback_maps_modem_control_onto_modem_status() {
        let (mut serial, _, _) = serial();
        assert_eq!(serial.read(MODEM_STATUS), MSR_DCD | MSR_DSR | MSR_CTS);

        let cases = [
            (MCR_RTS | MCR_OUT2, MSR_CTS | MSR_DCD),
            (MCR_DTR | MCR_OUT1, MSR_DSR | MSR_RING_INDICATOR),
            (0, 0),
            (
                MCR_DTR | MCR_RTS | MCR_OUT1 | MCR_OUT2,
                MSR_CTS | MSR_DSR | MSR_RING_INDICATOR | MSR_DCD,
            ),
        ];
        for (control, status) in cases {
            serial.write(MODEM_CONTROL, MCR_LOOPBACK | control).unwrap();
            assert_eq!(serial.read(MODEM_STATUS), status, "MCR {control:#04x}");
        }
    }

    #[test]
    fn loopback_sends_transmitted_bytes_to_the_receiver() {
        let (mut serial, _, output) = serial();
        serial.write(MODEM_CONTROL, MCR_LOOPBACK).unwrap();
        serial.write(DATA, b'z').unwrap();
        assert!(output.contents().is_empty());
        assert_eq!(serial.read(LINE_STATUS) & LSR_DATA_READY, LSR_DATA_READY);
        assert_eq!(serial.read(DATA), b'z');
    }

    #[test]
    fn thr_empty_interrupt_fires_only_when_enabled() {
        let (mut serial, interrupt, _) = serial();
        serial.write(DATA, b'a').unwrap();
        assert_eq!(interrupt.count(), 0);
        assert_eq!(serial.read(INTERRUPT_ID), IIR_NO_INTERRUPT);

        // Enabling it raises it at once: THR is empty.
        serial.write(INTERRUPT_ENABLE, IER_THR_EMPTY).unwrap();
        assert_eq!(interrupt.count(), 1);
        assert_eq!(serial.read(INTERRUPT_ID), IIR_THR_EMPTY);
        // Reading IIR acknowledged it.
        assert_eq!(serial.read(INTERRUPT_ID), IIR_NO_INTERRUPT);

        // Each transmitted byte empties THR again.
        serial.write(DATA, b'b').unwrap();
        serial.write(DATA, b'c').unwrap();
        assert_eq!(interrupt.count(), 3);
        assert_eq!(serial.read(INTERRUPT_ID), IIR_THR_EMPTY);

        serial.write(INTERRUPT_ENABLE, 0).unwrap();
        serial.write(DATA, b'd').unwrap();
        assert_eq!(interrupt.count(), 3);
        assert_eq!(serial.read(INTERRUPT_ID), IIR_NO_INTERRUPT);
    }

    #[test]
    fn received_data_sets_data_ready_and_raises_its_interrupt() {
        let (mut serial, interrupt, _) = serial();
        serial.enqueue_input(b"x").unwrap();
        assert_eq!(interrupt.count(), 0, "interrupt not enabled yet");
        assert_eq!(serial.read(LINE_STATUS) & LSR_DATA_READY, LSR_DATA_READY);
        assert_eq!(serial.read(DATA), b'x');
        assert_eq!(serial.read(LINE_STATUS) & LSR_DATA_READY, 0);

        serial.write(INTERRUPT_ENABLE, IER_RECEIVED_DATA).unwrap();
        serial.enqueue_input(b"hi").unwrap();
        assert_eq!(interrupt.count(), 1);
        // Received data stays pending across IIR reads until RBR is drained.
        assert_eq!(serial.read(INTERRUPT_ID), IIR_RECEIVED_DATA);
        assert_eq!(serial.read(INTERRUPT_ID), IIR_RECEIVED_DATA);
        assert_eq!(serial.read(DATA), b'h');
        assert_eq!(serial.read(DATA), b'i');
        assert_eq!(serial.read(LINE_STATUS) & LSR_DATA_READY, 0);
        assert_eq!(serial.read(INTERRUPT_ID), IIR_NO_INTERRUPT);

        // Once the guest has seen the output drop, new input raises a new edge.
        serial.enqueue_input(b"!").unwrap();
        assert_eq!(interrupt.count(), 2);
    }

    #[test]
    fn received_data_outranks_thr_empty() {
        let (mut serial, interrupt, _) = serial();
        serial
            .write(INTERRUPT_ENABLE, IER_RECEIVED_DATA | IER_THR_EMPTY)
            .unwrap();
        serial.enqueue_input(b"k").unwrap();
        // One edge: THR empty already held the output high.
        assert_eq!(interrupt.count(), 1);
        assert_eq!(serial.read(INTERRUPT_ID), IIR_RECEIVED_DATA);
        assert_eq!(serial.read(DATA), b'k');
        // THR empty was not acknowledged while hidden behind received data.
        assert_eq!(serial.read(INTERRUPT_ID), IIR_THR_EMPTY);
        assert_eq!(serial.read(INTERRUPT_ID), IIR_NO_INTERRUPT);
    }

    #[test]
    fn input_fifo_is_bounded() {
        let (mut serial, _, _) = serial();
        assert_eq!(serial.input_capacity(), INPUT_FIFO_CAPACITY);
        serial.enqueue_input(&[b'a'; INPUT_FIFO_CAPACITY]).unwrap();
        assert_eq!(serial.input_capacity(), 0);

        let error = serial.enqueue_input(b"b").unwrap_err();
        assert!(matches!(
            error,
            SerialError::InputFull {
                requested: 1,
                available: 0
            }
        ));

        serial.read(DATA);
        assert_eq!(serial.input_capacity(), 1);
        // A slice that does not fit is refused whole.
        assert!(serial.enqueue_input(b"bc").is_err());
        assert_eq!(serial.input_capacity(), 1);
        serial.enqueue_input(b"b").unwrap();
    }

    #[test]
    fn fifo_control_clears_received_data() {
        let (mut serial, _, _) = serial();
        serial.enqueue_input(b"stale").unwrap();
        // Without FIFO enable the reset bit is ignored.
        serial.write(INTERRUPT_ID, FCR_CLEAR_RECEIVE_FIFO).unwrap();
        assert_eq!(serial.input_capacity(), INPUT_FIFO_CAPACITY - 5);
        serial
            .write(INTERRUPT_ID, FCR_FIFO_ENABLE | FCR_CLEAR_RECEIVE_FIFO)
            .unwrap();
        assert_eq!(serial.input_capacity(), INPUT_FIFO_CAPACITY);
        assert_eq!(serial.read(LINE_STATUS) & LSR_DATA_READY, 0);
    }

    /// Replays the register accesses of Linux's 8250 `autoconfig()` and
    /// `autoconfig_16550a()` and checks each outcome that decides the type.
    #[test]
    fn linux_probe_identifies_a_16550a() {
        let (mut serial, _, output) = serial();

        // Existence test: IER holds exactly its low four bits.
        serial.write(INTERRUPT_ENABLE, 0).unwrap();
        assert_eq!(serial.read(INTERRUPT_ENABLE) & 0x0f, 0);
        serial.write(INTERRUPT_ENABLE, 0x0f).unwrap();
        assert_eq!(serial.read(INTERRUPT_ENABLE) & 0x0f, 0x0f);
        serial.write(INTERRUPT_ENABLE, 0).unwrap();

        // Loopback test: MCR = LOOP | OUT2 | RTS reads back DCD | CTS.
        serial.write(MODEM_CONTROL, MCR_LOOPBACK | 0x0a).unwrap();
        assert_eq!(serial.read(MODEM_STATUS) & 0xf0, MSR_DCD | MSR_CTS);
        serial.write(MODEM_CONTROL, 0).unwrap();

        // FIFO test: IIR's top bits tell 8250/16450, 16550 and 16550A apart.
        serial.write(LINE_CONTROL, 0xbf).unwrap();
        serial.write(INTERRUPT_ID, 0).unwrap();
        serial.write(LINE_CONTROL, 0).unwrap();
        serial.write(INTERRUPT_ID, FCR_FIFO_ENABLE).unwrap();
        assert_eq!(serial.read(INTERRUPT_ID) & 0xc0, 0xc0);

        // No EFR behind IIR with either configuration LCR value; a zero read
        // would mark the port as a 16650 or a 16C752.
        for lcr in [0x80, 0xbf] {
            serial.write(LINE_CONTROL, lcr).unwrap();
            assert_ne!(serial.read(INTERRUPT_ID), 0);
        }

        // Not a National Semiconductor SuperIO: IIR bit 4 does not follow
        // MCR's loopback bit when LCR is 0xe0.
        serial.write(LINE_CONTROL, 0).unwrap();
        let control = serial.read(MODEM_CONTROL);
        serial.write(LINE_CONTROL, 0xe0).unwrap();
        let before = serial.read(INTERRUPT_ID);
        serial.write(LINE_CONTROL, 0).unwrap();
        serial.write(MODEM_CONTROL, control ^ MCR_LOOPBACK).unwrap();
        serial.write(LINE_CONTROL, 0xe0).unwrap();
        let after = serial.read(INTERRUPT_ID);
        serial.write(LINE_CONTROL, 0).unwrap();
        serial.write(MODEM_CONTROL, control).unwrap();
        assert_eq!((before ^ control) & MCR_LOOPBACK, 0);
        assert_eq!((after ^ control) & MCR_LOOPBACK, 0);

        // Not a TI16750: no 64-byte FIFO bit in IIR, with or without DLAB.
        for lcr in [0x00, 0x80] {
            serial.write(LINE_CONTROL, lcr).unwrap();
            serial.write(INTERRUPT_ID, FCR_FIFO_ENABLE | 0x20).unwrap();
            assert_eq!(serial.read(INTERRUPT_ID) & 0xe0, 0xc0);
            serial.write(INTERRUPT_ID, FCR_FIFO_ENABLE).unwrap();
        }
        serial.write(LINE_CONTROL, 0).unwrap();

        // Not an XScale: IER bit 6 does not stick.
        serial.write(INTERRUPT_ENABLE, 0x40).unwrap();
        assert_eq!(serial.read(INTERRUPT_ENABLE) & 0x40, 0);

        // The probe wrote nothing to THR.
        assert!(output.contents().is_empty());
    }

    #[test]
    fn undecoded_offsets_float_high_and_ignore_writes() {
        let (mut serial, interrupt, output) = serial();
        assert_eq!(serial.read(8), UNDECODED_READ);
        serial.write(8, b'x').unwrap();
        serial.write(LINE_STATUS, 0).unwrap();
        assert!(output.contents().is_empty());
        assert_eq!(interrupt.count(), 0);
        assert_eq!(
            serial.read(LINE_STATUS),
            LSR_THR_EMPTY | LSR_TRANSMITTER_EMPTY
        );
    }
}
