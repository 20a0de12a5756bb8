//! Builds a VM from a [`VmConfig`], step by step: memory → kernel and initrd
//! → boot information → devices → vCPUs.

use std::fs::File;
use std::io::{LineWriter, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread;

use husk_protocol::guest_signal::{PORT_BASE, PORT_COUNT};
use vm_memory::{GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

use crate::arch::x86_64::boot::{self, BootError};
use crate::arch::x86_64::mptable::{self, MptableError, MPTABLE_START};
use crate::arch::x86_64::regs::{self, BootProtocol, EntryPoint, RegsError};
use crate::config::{ConfigError, SerialSink, VmConfig};
use crate::console::{ConsoleTail, ConsoleWriter};
use crate::devices::bus::{Bus, BusError};
use crate::devices::legacy::guest_signal::GuestSignal;
use crate::devices::legacy::i8042::{I8042, I8042_PORT_BASE, I8042_PORT_LEN};
use crate::devices::legacy::serial::{Serial, SERIAL_IRQ, SERIAL_PORT_BASE, SERIAL_PORT_LEN};
use crate::timing::{Phase, Timeline};
use crate::vmm::Vmm;
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
    let (io_bus, console_tail, vcpus) = thread::scope(|scope| -> Result<_, BuildError> {
        let registration = scope.spawn(|| vm.register_memory(&guest_memory));
        let controllers = scope.spawn(|| vm.create_interrupt_controllers());
        let entry = load_guest(config, &guest_memory);
        join(controllers)?;
        let entry = entry?;

        // Devices, once the irqchip can take their irqfds.
        let console_tail = ConsoleTail::default();
        let io_bus = legacy_devices(&vm, config, &timeline, console_tail.clone())?;

        // vCPUs, once the irqchip can give them LAPICs.
        let mut vcpus = Vec::with_capacity(config.vcpus.into());
        for index in 0..config.vcpus {
            let vcpu = Vcpu::new(&vm, index)?;
            vcpu.configure(&kvm, config.vcpus, entry)?;
            vcpus.push(vcpu);
        }
        join(registration)?;
        Ok((io_bus, console_tail, vcpus))
    })?;
    timeline.record(Phase::KvmReady);
    Ok(Vmm::new(
        kvm,
        vm,
        guest_memory,
        vcpus,
        io_bus,
        timeline,
        console_tail,
    ))
}

/// A build step's result from its thread (a panic there goes on here).
fn join<T>(handle: thread::ScopedJoinHandle<'_, Result<T, VmError>>) -> Result<T, VmError> {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Kernel, initrd, command line, the boot information for the kernel's
/// entry protocol, and the MP table; returns where the boot vCPU starts.
fn load_guest(config: &VmConfig, guest_memory: &GuestMemoryMmap) -> Result<EntryPoint, BuildError> {
    let memory_size = config.memory_bytes();
    let kernel = boot::load_kernel(guest_memory, &config.kernel, memory_size)?;
    let initrd = match &config.initrd {
        Some(path) => Some(boot::load_initrd(guest_memory, path, &kernel, memory_size)?),
        None => None,
    };
    boot::write_cmdline(guest_memory, &config.cmdline)?;
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
