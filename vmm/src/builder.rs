//! Builds a VM from a [`VmConfig`], step by step: memory → kernel and initrd
//! → boot information → devices → vCPUs.

use std::fs::File;
use std::io::{LineWriter, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread;

use event_manager::MutEventSubscriber;
use husk_protocol::guest_signal::{PORT_BASE, PORT_COUNT};
use vm_memory::{GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

use crate::arch::x86_64::boot::{self, BootError};
use crate::arch::x86_64::layout::{FIRST_VIRTIO_IRQ, VIRTIO_MMIO_START};
use crate::arch::x86_64::mptable::{self, MptableError, MPTABLE_START};
use crate::arch::x86_64::regs::{self, BootProtocol, EntryPoint, RegsError};
use crate::config::{ConfigError, SerialSink, VmConfig};
use crate::console::{ConsoleTail, ConsoleWriter};
use crate::devices::bus::{Bus, BusError};
use crate::devices::legacy::guest_signal::GuestSignal;
use crate::devices::legacy::i8042::{I8042, I8042_PORT_BASE, I8042_PORT_LEN};
use crate::devices::legacy::serial::{Serial, SERIAL_IRQ, SERIAL_PORT_BASE, SERIAL_PORT_LEN};
use crate::devices::virtio::block::{Block, BlockError};
use crate::devices::virtio::mmio::{
    MmioError, MmioTransport, MMIO_WINDOW_SIZE, QUEUE_NOTIFY_OFFSET,
};
use crate::devices::virtio::rng::Rng;
use crate::devices::virtio::vsock::{Vsock, VsockError};
use crate::devices::virtio::VirtioDevice;
use crate::timing::{Phase, Timeline};
use crate::vmm::{Vmm, VmmParts};
use crate::vstate::kvm::{KvmContext, KvmError};
use crate::vstate::memory::{create_guest_memory, MemoryError};
use crate::vstate::vcpu::{Vcpu, VcpuError};
use crate::vstate::vm::{Vm, VmError};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Kvm(#[from] KvmError),
    #[error(transparent)]
    Vm(#[from] VmError),
    #[error(transparent)]
    Memory(#[from] MemoryError),
    #[error(transparent)]
    Boot(#[from] BootError),
    #[error("set up the boot vCPU's tables")]
    Regs(#[from] RegsError),
    #[error("write the MP table")]
    Mptable(#[from] MptableError),
    #[error("open the serial output file {}", path.display())]
    SerialFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("create the {device} interrupt eventfd")]
    InterruptEventFd {
        device: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("place {device} on the I/O bus")]
    Bus {
        device: &'static str,
        #[source]
        source: BusError,
    },
    #[error(transparent)]
    Block(#[from] BlockError),
    #[error(transparent)]
    Vsock(#[from] VsockError),
    #[error("set up the {device} transport")]
    Transport {
        device: &'static str,
        #[source]
        source: MmioError,
    },
    #[error(transparent)]
    Vcpu(#[from] VcpuError),
}

/// Builds the VM `config` describes, ready to run. Every phase before the
/// first KVM_RUN happens here; `timeline` gets `KvmReady` at the end.
pub fn build_vmm(config: &VmConfig, timeline: Arc<Timeline>) -> Result<Vmm, BuildError> {
    config.validate()?;
    let kvm = KvmContext::open(&config.kvm_path)?;
    let vm = Vm::new(&kvm)?;
    let memory_size = config.memory_bytes();
    let guest_memory = create_guest_memory(memory_size)?;

    // Registering memory and creating the in-kernel irqchip each wait for
    // an SRCU grace period (milliseconds on some hosts), and loading the
    // guest needs neither: run the three side by side.
    let virtio_slots = plan_virtio_devices(config);
    let cmdline = cmdline_with_devices(&config.cmdline, &virtio_slots);
    let (io_bus, mmio_bus, subscribers, console_tail, vcpus) =
        thread::scope(|scope| -> Result<_, BuildError> {
            let registration = scope.spawn(|| vm.register_memory(&guest_memory));
            let controllers = scope.spawn(|| vm.create_interrupt_controllers());
            let entry = load_guest(config, &cmdline, &guest_memory);
            join(controllers)?;
            let entry = entry?;

            // Devices, once the irqchip can take their irqfds.
            let console_tail = ConsoleTail::default();
            let io_bus = legacy_devices(&vm, config, &timeline, console_tail.clone())?;
            let (mmio_bus, subscribers) =
                virtio_devices(config, &vm, &guest_memory, &virtio_slots)?;

            // vCPUs, once the irqchip can give them LAPICs and guest memory
            // is in place.
            join(registration)?;
            let mut vcpus = Vec::with_capacity(config.vcpus.into());
            for index in 0..config.vcpus {
                let vcpu = Vcpu::new(&vm, index)?;
                vcpu.configure(&kvm, config.vcpus, entry)?;
                vcpus.push(vcpu);
            }
            Ok((io_bus, mmio_bus, subscribers, console_tail, vcpus))
        })?;
    timeline.record(Phase::KvmReady);
    Ok(Vmm::new(VmmParts {
        kvm,
        vm,
        guest_memory,
        vcpus,
        io_bus,
        mmio_bus,
        subscribers,
        timeline,
        console_tail,
        seccomp: config.seccomp,
    }))
}

/// A build step's result from its thread (a panic there goes on here).
fn join<T>(handle: thread::ScopedJoinHandle<'_, Result<T, VmError>>) -> Result<T, VmError> {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Kernel, initrd, command line, the boot information for the kernel's
/// entry protocol, and the MP table; returns where the boot vCPU starts.
fn load_guest(
    config: &VmConfig,
    cmdline: &str,
    guest_memory: &GuestMemoryMmap,
) -> Result<EntryPoint, BuildError> {
    let memory_size = config.memory_bytes();
    let kernel = boot::load_kernel(guest_memory, &config.kernel, memory_size)?;
    let initrd = match &config.initrd {
        Some(path) => Some(boot::load_initrd(guest_memory, path, &kernel, memory_size)?),
        None => None,
    };
    boot::write_cmdline(guest_memory, cmdline)?;
    match kernel.entry.protocol {
        BootProtocol::Pvh => boot::write_pvh_start_info(guest_memory, memory_size, initrd)?,
        BootProtocol::Linux64 => {
            boot::write_zero_page(
                guest_memory,
                memory_size,
                &kernel,
                config.cmdline.len(),
                initrd,
            )?;
            regs::write_identity_page_tables(guest_memory)?;
        }
    }
    regs::write_descriptor_tables(guest_memory, kernel.entry.protocol)?;
    mptable::setup_mptable(guest_memory, GuestAddress(MPTABLE_START), config.vcpus)?;
    Ok(kernel.entry)
}

/// The kinds of virtio device husk-vmm can attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VirtioKind {
    /// The disk at this index of `VmConfig::disks`.
    Block(usize),
    Rng,
    Vsock,
}

impl VirtioKind {
    fn name(self) -> &'static str {
        match self {
            VirtioKind::Block(_) => "virtio-blk",
            VirtioKind::Rng => "virtio-rng",
            VirtioKind::Vsock => "virtio-vsock",
        }
    }

    fn queue_count(self) -> usize {
        match self {
            VirtioKind::Block(_) | VirtioKind::Rng => 1,
            // rx, tx, event
            VirtioKind::Vsock => 3,
        }
    }
}

/// Where one virtio-mmio device lives: its register window and its IRQ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct VirtioSlot {
    kind: VirtioKind,
    base: u64,
    irq: u32,
}

/// Gives each requested device the next register window in the MMIO gap
/// and the next free I/O APIC pin. Disks come first, so the first disk is
/// virtio-mmio.0 and /dev/vda.
fn plan_virtio_devices(config: &VmConfig) -> Vec<VirtioSlot> {
    let disks = (0..config.disks.len()).map(VirtioKind::Block);
    let kinds = disks
        .chain(config.rng.then_some(VirtioKind::Rng))
        .chain(config.vsock.as_ref().map(|_| VirtioKind::Vsock));
    kinds
        .enumerate()
        .map(|(index, kind)| VirtioSlot {
            kind,
            base: VIRTIO_MMIO_START + index as u64 * MMIO_WINDOW_SIZE,
            irq: FIRST_VIRTIO_IRQ + index as u32,
        })
        .collect()
}

/// The user's command line plus a `virtio_mmio.device=` entry per device
/// (CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES: `<size>@<base>:<irq>`).
fn cmdline_with_devices(cmdline: &str, slots: &[VirtioSlot]) -> String {
    let mut full = cmdline.to_owned();
    for slot in slots {
        full.push_str(&format!(
            " virtio_mmio.device={}K@{:#x}:{}",
            MMIO_WINDOW_SIZE / 1024,
            slot.base,
            slot.irq
        ));
    }
    full
}

/// Creates the planned virtio devices, each behind its mmio transport on
/// the MMIO bus, with its queue notifiers as KVM ioeventfds and its
/// interrupt as an irqfd. Returns the bus and the devices' event handlers.
#[allow(clippy::type_complexity)]
fn virtio_devices(
    config: &VmConfig,
    vm: &Vm,
    guest_memory: &GuestMemoryMmap,
    slots: &[VirtioSlot],
) -> Result<(Arc<Bus>, Vec<Arc<Mutex<dyn MutEventSubscriber + Send>>>), BuildError> {
    let mut bus = Bus::new();
    let mut subscribers: Vec<Arc<Mutex<dyn MutEventSubscriber + Send>>> = Vec::new();
    for slot in slots {
        let device_name = slot.kind.name();
        let eventfd = || {
            EventFd::new(libc::EFD_NONBLOCK).map_err(|source| BuildError::InterruptEventFd {
                device: device_name,
                source,
            })
        };
        let mut notifiers = Vec::with_capacity(slot.kind.queue_count());
        for queue in 0..slot.kind.queue_count() {
            let notifier = eventfd()?;
            vm.register_ioevent(
                device_name,
                &notifier,
                slot.base + QUEUE_NOTIFY_OFFSET,
                queue as u32,
            )?;
            notifiers.push(notifier);
        }
        let device_notifiers = notifiers
            .iter()
            .map(EventFd::try_clone)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| BuildError::InterruptEventFd {
                device: device_name,
                source,
            })?;
        let irqfd = eventfd()?;
        vm.register_irqfd(device_name, &irqfd, slot.irq)?;

        let (device, subscriber): (
            Arc<Mutex<dyn VirtioDevice>>,
            Arc<Mutex<dyn MutEventSubscriber + Send>>,
        ) = match slot.kind {
            VirtioKind::Block(index) => {
                let disk = &config.disks[index];
                let queue_event = device_notifiers.into_iter().next().expect("one queue");
                let block = Arc::new(Mutex::new(Block::new(
                    &disk.path,
                    disk.read_only,
                    queue_event,
                )?));
                (block.clone(), block)
            }
            VirtioKind::Vsock => {
                let vsock_config = config
                    .vsock
                    .as_ref()
                    .expect("planned only with a vsock config");
                let queue_events: [EventFd; 3] = device_notifiers.try_into().expect("three queues");
                let vsock =
                    Vsock::new(vsock_config.guest_cid, &vsock_config.uds_path, queue_events)?;
                let vsock = Arc::new(Mutex::new(vsock));
                (vsock.clone(), vsock)
            }
            VirtioKind::Rng => {
                let queue_event = device_notifiers.into_iter().next().expect("one queue");
                let rng = Arc::new(Mutex::new(Rng::new(queue_event)));
                (rng.clone(), rng)
            }
        };
        let transport = MmioTransport::new(device, guest_memory.clone(), notifiers, irqfd)
            .map_err(|source| BuildError::Transport {
                device: device_name,
                source,
            })?;
        bus.insert(slot.base, MMIO_WINDOW_SIZE, Arc::new(Mutex::new(transport)))
            .map_err(|source| BuildError::Bus {
                device: device_name,
                source,
            })?;
        subscribers.push(subscriber);
    }
    Ok((Arc::new(bus), subscribers))
}

/// The serial console, the keyboard controller (for reset) and the guest
/// signal ports, on the port I/O bus.
fn legacy_devices(
    vm: &Vm,
    config: &VmConfig,
    timeline: &Arc<Timeline>,
    console_tail: ConsoleTail,
) -> Result<Arc<Bus>, BuildError> {
    let sink: Option<Box<dyn Write + Send>> = match &config.serial {
        SerialSink::Stdout => Some(Box::new(std::io::stdout())),
        SerialSink::File(path) => {
            let file = File::create(path).map_err(|source| BuildError::SerialFile {
                path: path.clone(),
                source,
            })?;
            Some(Box::new(LineWriter::new(file)))
        }
        SerialSink::None => None,
    };
    let serial_interrupt =
        EventFd::new(libc::EFD_NONBLOCK).map_err(|source| BuildError::InterruptEventFd {
            device: "serial",
            source,
        })?;
    vm.register_irqfd("serial", &serial_interrupt, SERIAL_IRQ)?;
    let output: Box<dyn Write + Send> = Box::new(ConsoleWriter::new(sink, console_tail));
    let serial = Serial::new(Box::new(serial_interrupt), Some(output));

    let mut bus = Bus::new();
    let place = |device| move |source| BuildError::Bus { device, source };
    bus.insert(
        SERIAL_PORT_BASE.into(),
        SERIAL_PORT_LEN.into(),
        Arc::new(Mutex::new(serial)),
    )
    .map_err(place("serial"))?;
    bus.insert(
        I8042_PORT_BASE.into(),
        I8042_PORT_LEN.into(),
        Arc::new(Mutex::new(I8042::new())),
    )
    .map_err(place("i8042"))?;
    bus.insert(
        PORT_BASE.into(),
        PORT_COUNT.into(),
        Arc::new(Mutex::new(GuestSignal::new(timeline.clone()))),
    )
    .map_err(place("guest signal"))?;
    Ok(Arc::new(bus))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DiskConfig;

    #[test]
    fn devices_get_consecutive_windows_and_irqs_on_the_command_line() {
        let mut config = VmConfig::new("/k".into());
        assert!(plan_virtio_devices(&config).is_empty());
        assert_eq!(cmdline_with_devices("console=ttyS0", &[]), "console=ttyS0");
        config.rng = true;
        config.disks = vec![
            DiskConfig {
                path: "/a".into(),
                read_only: false,
            },
            DiskConfig {
                path: "/b".into(),
                read_only: true,
            },
        ];
        let slots = plan_virtio_devices(&config);
        let planned: Vec<_> = slots.iter().map(|s| (s.kind, s.base, s.irq)).collect();
        assert_eq!(
            planned,
            [
                (VirtioKind::Block(0), 0xd000_0000, 5),
                (VirtioKind::Block(1), 0xd000_1000, 6),
                (VirtioKind::Rng, 0xd000_2000, 7),
            ]
        );
        assert_eq!(
            cmdline_with_devices("console=ttyS0", &slots[2..]),
            "console=ttyS0 virtio_mmio.device=4K@0xd0002000:7"
        );
    }
}
