//! The virtio-mmio register window (virtio 1.2 §4.2) of an rng device, driven
//! by a guest that may access any register in any order and width.
//!
//! Input: a sequence of operations, each starting with an opcode byte.
//!
//! | opcode bits | operation, followed by                                  |
//! |-------------|---------------------------------------------------------|
//! | bit 3 set   | guest memory write: address u32 LE (modulo the memory  |
//! |             | size), length u8, then that many bytes                  |
//! | bit 2 set   | bus write: offset u16 LE (modulo 0x200), then the value |
//! |             | (`width` bytes LE)                                      |
//! | neither     | bus read: offset u16 LE (modulo 0x200)                  |
//!
//! Bits 0-1 give the access width: 1, 2, 4 or 8 bytes. A truncated last
//! operation is dropped.
//!
//! When the driver notifies the queue (the transport signals the queue's
//! eventfd when KVM did not catch the write), and once more at the end, the
//! rng's queue is processed the way its event handler does, with a fixed
//! byte instead of getrandom so runs are reproducible.
//!
//! Besides "no panic, no hang", the target checks what the transport
//! promises a device: it is only started after FEATURES_OK with
//! VIRTIO_F_VERSION_1 and with ready queues that fit in guest memory, and a
//! reset stops it.

#![no_main]

use std::sync::{Arc, Mutex};

use husk_vmm::devices::bus::BusDevice;
use husk_vmm::devices::virtio::mmio::{MmioTransport, STATUS_DRIVER_OK, STATUS_FEATURES_OK};
use husk_vmm::devices::virtio::rng::device::process_queue;
use husk_vmm::devices::virtio::rng::Rng;
use husk_vmm::devices::virtio::{
    ActivateError, Activation, InterruptReason, VirtioDevice, VirtioInterrupt, TYPE_RNG,
    VIRTIO_F_VERSION_1,
};
use libfuzzer_sys::fuzz_target;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

const MEMORY_SIZE: usize = 0x10_0000;
/// The registers (0x000-0x0ff) and the start of the configuration space.
const WINDOW: u16 = 0x200;
const OP_MEMORY: u8 = 1 << 3;
const OP_WRITE: u8 = 1 << 2;
const ENTROPY_BYTE: u8 = 0x5a;

fuzz_target!(|data: &[u8]| {
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEMORY_SIZE)])
        .expect("an anonymous mapping of 1 MiB");
    let notifier = EventFd::new(libc::EFD_NONBLOCK).expect("an eventfd");
    let irqfd = EventFd::new(libc::EFD_NONBLOCK).expect("an eventfd");
    let device = Arc::new(Mutex::new(RecordingRng {
        rng: Rng::new(notifier.try_clone().expect("a copy of the eventfd")),
        started: None,
    }));
    let mut transport = MmioTransport::new(
        device.clone(),
        mem.clone(),
        vec![notifier.try_clone().expect("a copy of the eventfd")],
        irqfd,
    )
    .expect("the rng's queue size is valid");

    let mut input = Input(data);
    while let Some(operation) = input.operation() {
        match operation {
            Operation::Read { offset, width } => {
                let mut value = [0u8; 8];
                transport.read(offset, &mut value[..width]);
                check_identity(offset, &value[..width]);
            }
            Operation::Write { offset, value } => {
                transport.write(offset, value);
            }
            Operation::GuestMemory { address, bytes } => {
                mem.write_slice(bytes, address)
                    .expect("clipped to guest memory");
            }
        }
        check_started_device(&transport, &device, &mem);
        if notifier.read().is_ok() {
            process(&device);
        }
    }
    process(&device);
});

/// One thing the guest does.
enum Operation<'a> {
    /// A vCPU reads `width` bytes of the register window.
    Read { offset: u64, width: usize },
    /// A vCPU writes `value` (1, 2, 4 or 8 bytes) to the register window.
    Write { offset: u64, value: &'a [u8] },
    /// The driver fills in its rings and buffers.
    GuestMemory {
        address: GuestAddress,
        bytes: &'a [u8],
    },
}

/// The rng as the transport sees it, keeping a copy of its queue from
/// activation so the target can run it: the real event handler fills from
/// getrandom, which would make runs irreproducible.
struct RecordingRng {
    rng: Rng,
    started: Option<Started>,
}

struct Started {
    mem: GuestMemoryMmap,
    queue: Queue,
    interrupt: Arc<dyn VirtioInterrupt>,
    acked_features: u64,
}

impl VirtioDevice for RecordingRng {
    fn device_type(&self) -> u32 {
        self.rng.device_type()
    }

    fn queue_max_sizes(&self) -> &[u16] {
        self.rng.queue_max_sizes()
    }

    fn device_features(&self) -> u64 {
        self.rng.device_features()
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        self.rng.read_config(offset, data)
    }

    fn write_config(&mut self, offset: u64, data: &[u8]) {
        self.rng.write_config(offset, data)
    }

    fn activate(&mut self, activation: Activation) -> Result<(), ActivateError> {
        let started = activation.queues.first().map(|queue| Started {
            mem: activation.mem.clone(),
            queue: Queue::try_from(queue.state()).expect("a copy of a valid queue"),
            interrupt: activation.interrupt.clone(),
            acked_features: activation.acked_features,
        });
        self.rng.activate(activation)?;
        self.started = started;
        Ok(())
    }

    fn reset(&mut self) -> bool {
        self.started = None;
        self.rng.reset()
    }
}

/// What the rng's event handler does on a queue notification.
fn process(device: &Mutex<RecordingRng>) {
    let mut device = device.lock().expect("no panic while locked");
    if let Some(started) = &mut device.started {
        let notify = process_queue(&mut started.queue, &started.mem, &mut |buffer| {
            buffer.fill(ENTROPY_BYTE);
            true
        });
        if notify {
            let _ = started.interrupt.trigger(InterruptReason::Queue);
        }
    }
}

/// The identification registers read the same at any time (§4.2.2).
fn check_identity(offset: u64, value: &[u8]) {
    let Ok(value) = <[u8; 4]>::try_from(value).map(u32::from_le_bytes) else {
        return;
    };
    let expected = match offset {
        0x000 => 0x7472_6976, // "virt"
        0x004 => 2,
        0x008 => TYPE_RNG,
        _ => return,
    };
    assert_eq!(value, expected, "identification register {offset:#x}");
}

/// A started device was started by the rules of §3.1.1, and a reset (status
/// 0) stops it.
fn check_started_device(
    transport: &MmioTransport,
    device: &Mutex<RecordingRng>,
    mem: &GuestMemoryMmap,
) {
    let device = device.lock().expect("no panic while locked");
    let status = transport.status();
    let Some(started) = &device.started else {
        return;
    };
    assert_ne!(status, 0, "a reset device is still running");
    assert_eq!(
        status & (STATUS_FEATURES_OK | STATUS_DRIVER_OK),
        STATUS_FEATURES_OK | STATUS_DRIVER_OK,
        "started with status {status:#x}"
    );
    assert_ne!(started.acked_features & VIRTIO_F_VERSION_1, 0);
    assert_eq!(
        started.acked_features & !device.rng.device_features(),
        0,
        "features the device did not offer were acked"
    );
    assert!(started.queue.ready() && started.queue.is_valid(mem));
}

/// The unread rest of the fuzz input.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    /// The next operation; None at the end, including a truncated one.
    fn operation(&mut self) -> Option<Operation<'a>> {
        let opcode = self.byte()?;
        let width = 1usize << (opcode & 3);
        if opcode & OP_MEMORY != 0 {
            let address = u32::from_le_bytes(self.bytes()?) as usize % MEMORY_SIZE;
            let len = usize::from(self.byte()?);
            let bytes = self.slice(len)?;
            return Some(Operation::GuestMemory {
                address: GuestAddress(address as u64),
                bytes: &bytes[..len.min(MEMORY_SIZE - address)],
            });
        }
        let offset = u64::from(u16::from_le_bytes(self.bytes()?) % WINDOW);
        Some(if opcode & OP_WRITE != 0 {
            Operation::Write {
                offset,
                value: self.slice(width)?,
            }
        } else {
            Operation::Read { offset, width }
        })
    }

    fn slice(&mut self, len: usize) -> Option<&'a [u8]> {
        if self.0.len() < len {
            return None;
        }
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        Some(head)
    }

    fn bytes<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.slice(N)
            .map(|bytes| bytes.try_into().expect("N bytes"))
    }

    fn byte(&mut self) -> Option<u8> {
        self.bytes::<1>().map(|[byte]| byte)
    }
}
