//! The virtio-mmio transport, version 2 (virtio 1.2 §4.2): the register
//! window a driver uses to discover a device, negotiate features, set up its
//! queues and start it. Runs on vCPU threads; everything the guest writes
//! here is checked before it reaches a device.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

use super::{Activation, MmioInterrupt, VirtioDevice, VirtioInterrupt, VIRTIO_F_VERSION_1};
use crate::devices::bus::{BusAction, BusDevice};

/// Size of one device's register window.
pub const MMIO_WINDOW_SIZE: u64 = 0x1000;

const MAGIC_VALUE: u32 = 0x7472_6976; // "virt"
const VERSION: u32 = 2;
const VENDOR_ID: u32 = 0x4b53_5548; // "HUSK"

// Register offsets (§4.2.2).
const REG_MAGIC: u64 = 0x000;
const REG_VERSION: u64 = 0x004;
const REG_DEVICE_ID: u64 = 0x008;
const REG_VENDOR_ID: u64 = 0x00c;
const REG_DEVICE_FEATURES: u64 = 0x010;
const REG_DEVICE_FEATURES_SEL: u64 = 0x014;
const REG_DRIVER_FEATURES: u64 = 0x020;
const REG_DRIVER_FEATURES_SEL: u64 = 0x024;
const REG_QUEUE_SEL: u64 = 0x030;
const REG_QUEUE_NUM_MAX: u64 = 0x034;
const REG_QUEUE_NUM: u64 = 0x038;
const REG_QUEUE_READY: u64 = 0x044;
const REG_QUEUE_NOTIFY: u64 = 0x050;
const REG_INTERRUPT_STATUS: u64 = 0x060;
const REG_INTERRUPT_ACK: u64 = 0x064;
const REG_STATUS: u64 = 0x070;
const REG_QUEUE_DESC_LOW: u64 = 0x080;
const REG_QUEUE_DESC_HIGH: u64 = 0x084;
const REG_QUEUE_DRIVER_LOW: u64 = 0x090;
const REG_QUEUE_DRIVER_HIGH: u64 = 0x094;
const REG_QUEUE_DEVICE_LOW: u64 = 0x0a0;
const REG_QUEUE_DEVICE_HIGH: u64 = 0x0a4;
const REG_SHM_SEL: u64 = 0x0ac;
const REG_SHM_LEN_LOW: u64 = 0x0b0;
const REG_SHM_BASE_HIGH: u64 = 0x0bc;
const REG_CONFIG_GENERATION: u64 = 0x0fc;
const CONFIG_SPACE: u64 = 0x100;

/// Offset of the QueueNotify register, where KVM ioeventfds are placed.
pub const QUEUE_NOTIFY_OFFSET: u64 = REG_QUEUE_NOTIFY;

// Device status bits (§2.1).
pub const STATUS_ACKNOWLEDGE: u32 = 1;
pub const STATUS_DRIVER: u32 = 2;
pub const STATUS_DRIVER_OK: u32 = 4;
pub const STATUS_FEATURES_OK: u32 = 8;
pub const STATUS_DEVICE_NEEDS_RESET: u32 = 64;
pub const STATUS_FAILED: u32 = 128;

/// One virtio device behind its register window.
pub struct MmioTransport {
    device: Arc<Mutex<dyn VirtioDevice>>,
    mem: GuestMemoryMmap,
    queues: Vec<Queue>,
    notifiers: Vec<EventFd>,
    interrupt: Arc<MmioInterrupt>,
    interrupt_status: Arc<AtomicU32>,
    status: u32,
    device_features_select: u32,
    driver_features_select: u32,
    acked_features: u64,
    queue_select: u32,
    activated: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum MmioError {
    #[error("create a queue of size {size}")]
    Queue {
        size: u16,
        #[source]
        source: virtio_queue::Error,
    },
}

impl MmioTransport {
    /// `notifiers` holds one eventfd per queue (the caller registers them as
    /// KVM ioeventfds on QueueNotify and gives the device copies), `irqfd`
    /// the device's interrupt line.
    pub fn new(
        device: Arc<Mutex<dyn VirtioDevice>>,
        mem: GuestMemoryMmap,
        notifiers: Vec<EventFd>,
        irqfd: EventFd,
    ) -> Result<Self, MmioError> {
        let max_sizes = lock(&device).queue_max_sizes().to_vec();
        let queues = max_sizes
            .iter()
            .map(|&size| Queue::new(size).map_err(|source| MmioError::Queue { size, source }))
            .collect::<Result<Vec<_>, _>>()?;
        let interrupt_status = Arc::new(AtomicU32::new(0));
        Ok(Self {
            device,
            mem,
            queues,
            notifiers,
            interrupt: Arc::new(MmioInterrupt::new(interrupt_status.clone(), irqfd)),
            interrupt_status,
            status: 0,
            device_features_select: 0,
            driver_features_select: 0,
            acked_features: 0,
            queue_select: 0,
            activated: false,
        })
    }

    pub fn status(&self) -> u32 {
        self.status
    }

    fn selected_queue(&mut self) -> Option<&mut Queue> {
        self.queues.get_mut(self.queue_select as usize)
    }

    fn device_features(&self) -> u64 {
        lock(&self.device).device_features()
    }

    fn read_register(&mut self, offset: u64) -> u32 {
        match offset {
            REG_MAGIC => MAGIC_VALUE,
            REG_VERSION => VERSION,
            REG_DEVICE_ID => lock(&self.device).device_type(),
            REG_VENDOR_ID => VENDOR_ID,
            REG_DEVICE_FEATURES => match self.device_features_select {
                0 => self.device_features() as u32,
                1 => (self.device_features() >> 32) as u32,
                _ => 0,
            },
            REG_QUEUE_NUM_MAX => self.selected_queue().map_or(0, |q| u32::from(q.max_size())),
            REG_QUEUE_READY => self.selected_queue().map_or(0, |q| u32::from(q.ready())),
            REG_INTERRUPT_STATUS => self.interrupt_status.load(Ordering::Acquire),
            REG_STATUS => self.status,
            // No shared memory regions: length and base read as all ones.
            REG_SHM_LEN_LOW..=REG_SHM_BASE_HIGH => u32::MAX,
            // The configuration space never changes under the driver.
            REG_CONFIG_GENERATION => 0,
            _ => 0,
        }
    }

    fn write_register(&mut self, offset: u64, value: u32) {
        match offset {
            REG_DEVICE_FEATURES_SEL => self.device_features_select = value,
            REG_DRIVER_FEATURES_SEL => self.driver_features_select = value,
            REG_DRIVER_FEATURES => self.write_driver_features(value),
            REG_QUEUE_SEL => self.queue_select = value,
            REG_QUEUE_NUM | REG_QUEUE_READY | REG_QUEUE_DESC_LOW..=REG_QUEUE_DEVICE_HIGH => {
                self.write_queue_register(offset, value)
            }
            REG_QUEUE_NOTIFY => {
                // KVM normally turns these writes into ioeventfd signals
                // before they exit; this is the path when it did not.
                if let Some(notifier) = self.notifiers.get(value as usize) {
                    let _ = notifier.write(1);
                }
            }
            REG_INTERRUPT_ACK => {
                self.interrupt_status.fetch_and(!value, Ordering::AcqRel);
            }
            REG_STATUS => self.write_status(value),
            REG_SHM_SEL => {}
            _ => {}
        }
    }

    /// Features may only be written between DRIVER and FEATURES_OK (§3.1.1);
    /// bits the device did not offer are dropped.
    fn write_driver_features(&mut self, value: u32) {
        if self.status & STATUS_DRIVER == 0 || self.status & STATUS_FEATURES_OK != 0 {
            return;
        }
        let shift = match self.driver_features_select {
            0 => 0,
            1 => 32,
            _ => return,
        };
        let mask = 0xffff_ffffu64 << shift;
        let offered = self.device_features();
        self.acked_features =
            (self.acked_features & !mask) | ((u64::from(value) << shift) & offered);
    }

    /// Queue configuration is only taken while the device is not running and
    /// the queue is not ready (§4.2.3.2).
    fn write_queue_register(&mut self, offset: u64, value: u32) {
        if self.status & STATUS_FEATURES_OK == 0 || self.status & STATUS_DRIVER_OK != 0 {
            return;
        }
        let Some(queue) = self.selected_queue() else {
            return;
        };
        if queue.ready() && offset != REG_QUEUE_READY {
            return;
        }
        match offset {
            REG_QUEUE_NUM => queue.set_size(value as u16),
            REG_QUEUE_READY => queue.set_ready(value == 1),
            REG_QUEUE_DESC_LOW => queue.set_desc_table_address(Some(value), None),
            REG_QUEUE_DESC_HIGH => queue.set_desc_table_address(None, Some(value)),
            REG_QUEUE_DRIVER_LOW => queue.set_avail_ring_address(Some(value), None),
            REG_QUEUE_DRIVER_HIGH => queue.set_avail_ring_address(None, Some(value)),
            REG_QUEUE_DEVICE_LOW => queue.set_used_ring_address(Some(value), None),
            REG_QUEUE_DEVICE_HIGH => queue.set_used_ring_address(None, Some(value)),
            _ => {}
        }
    }

    /// The status state machine (§2.1, §3.1.1): zero resets; otherwise bits
    /// are only ever added, FEATURES_OK only sticks when the accepted
    /// features are acceptable, and DRIVER_OK starts the device.
    fn write_status(&mut self, value: u32) {
        if value == 0 {
            self.reset();
            return;
        }
        if value & self.status != self.status {
            // Clearing bits other than by a reset is not allowed; ignore.
            return;
        }
        let added = value & !self.status;
        let mut status = value;
        if added & STATUS_FEATURES_OK != 0 && !self.features_acceptable() {
            status &= !STATUS_FEATURES_OK;
        }
        self.status = status;
        if added & STATUS_DRIVER_OK != 0 && status & STATUS_FEATURES_OK != 0 && !self.activated {
            self.activate();
        }
    }

    fn features_acceptable(&self) -> bool {
        self.status & STATUS_DRIVER != 0
            && self.acked_features & VIRTIO_F_VERSION_1 != 0
            && self.acked_features & !self.device_features() == 0
    }

    fn activate(&mut self) {
        let queues_valid = self
            .queues
            .iter()
            .all(|q| q.ready() && q.is_valid(&self.mem));
        let result = queues_valid
            && lock(&self.device)
                .activate(Activation {
                    mem: self.mem.clone(),
                    queues: self.queues.iter().map(copy_queue).collect(),
                    interrupt: self.interrupt.clone() as Arc<dyn VirtioInterrupt>,
                    acked_features: self.acked_features,
                })
                .is_ok();
        if result {
            self.activated = true;
        } else {
            // The driver sees DEVICE_NEEDS_RESET and a config interrupt
            // (§2.1.2); the device stays inactive.
            self.status |= STATUS_DEVICE_NEEDS_RESET;
            let _ = self.interrupt.trigger(super::InterruptReason::Config);
        }
    }

    fn reset(&mut self) {
        if self.activated && !lock(&self.device).reset() {
            self.status |= STATUS_DEVICE_NEEDS_RESET;
            return;
        }
        self.activated = false;
        self.status = 0;
        self.device_features_select = 0;
        self.driver_features_select = 0;
        self.acked_features = 0;
        self.queue_select = 0;
        self.interrupt_status.store(0, Ordering::Release);
        for queue in &mut self.queues {
            queue.reset();
        }
    }
}

/// The device gets its own copy of each queue's configuration; the
/// transport keeps its copy to answer register reads.
fn copy_queue(queue: &Queue) -> Queue {
    let split = |address: u64| (Some(address as u32), Some((address >> 32) as u32));
    // `max_size` came from an accepted Queue, so this can't fail.
    let mut copy = Queue::new(queue.max_size()).expect("a queue size that was valid before");
    copy.set_size(queue.size());
    let (low, high) = split(queue.desc_table());
    copy.set_desc_table_address(low, high);
    let (low, high) = split(queue.avail_ring());
    copy.set_avail_ring_address(low, high);
    let (low, high) = split(queue.used_ring());
    copy.set_used_ring_address(low, high);
    copy.set_event_idx(queue.event_idx_enabled());
    copy.set_ready(queue.ready());
    copy
}

fn lock(device: &Mutex<dyn VirtioDevice>) -> std::sync::MutexGuard<'_, dyn VirtioDevice + 'static> {
    device
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl BusDevice for MmioTransport {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        if offset >= CONFIG_SPACE {
            lock(&self.device).read_config(offset - CONFIG_SPACE, data);
            return;
        }
        // Registers are 32 bits wide and must be accessed as such (§4.2.2);
        // anything else reads as zero.
        match <&mut [u8; 4]>::try_from(&mut *data) {
            Ok(bytes) if offset % 4 == 0 => *bytes = self.read_register(offset).to_le_bytes(),
            _ => data.fill(0),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> BusAction {
        if offset >= CONFIG_SPACE {
            lock(&self.device).write_config(offset - CONFIG_SPACE, data);
        } else if let (Ok(bytes), 0) = (<[u8; 4]>::try_from(data), offset % 4) {
            self.write_register(offset, u32::from_le_bytes(bytes));
        }
        BusAction::None
    }
}

#[cfg(test)]
mod tests {
    use vm_memory::GuestAddress;

    use super::*;
    use crate::devices::virtio::{ActivateError, TYPE_RNG};

    /// A device with two queues that records what the transport did to it.
    #[derive(Default)]
    struct Probe {
        activations: usize,
        resets: usize,
        acked_features: u64,
        refuse_activation: bool,
        config: [u8; 8],
    }

    impl VirtioDevice for Probe {
        fn device_type(&self) -> u32 {
            super::super::TYPE_RNG
        }
        fn queue_max_sizes(&self) -> &[u16] {
            &[16, 8]
        }
        fn device_features(&self) -> u64 {
            VIRTIO_F_VERSION_1 | 1 << 3
        }
        fn read_config(&self, offset: u64, data: &mut [u8]) {
            super::super::read_config_bytes(&self.config, offset, data);
        }
        fn activate(&mut self, activation: Activation) -> Result<(), ActivateError> {
            assert_eq!(activation.queues.len(), 2);
            if self.refuse_activation {
                return Err(ActivateError::Device("refused".into()));
            }
            self.activations += 1;
            self.acked_features = activation.acked_features;
            Ok(())
        }
        fn reset(&mut self) -> bool {
            self.resets += 1;
            true
        }
    }

    fn transport(probe: Probe) -> (MmioTransport, Arc<Mutex<Probe>>) {
        let probe = Arc::new(Mutex::new(probe));
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        let notifiers = (0..2)
            .map(|_| EventFd::new(libc::EFD_NONBLOCK).unwrap())
            .collect();
        let irqfd = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let transport = MmioTransport::new(probe.clone(), mem, notifiers, irqfd).unwrap();
        (transport, probe)
    }

    fn read(t: &mut MmioTransport, offset: u64) -> u32 {
        let mut data = [0u8; 4];
        t.read(offset, &mut data);
        u32::from_le_bytes(data)
    }

    fn write(t: &mut MmioTransport, offset: u64, value: u32) {
        t.write(offset, &value.to_le_bytes());
    }

    /// Walks the driver side of §3.1.1 up to FEATURES_OK.
    fn negotiate(t: &mut MmioTransport, features_high: u32) {
        write(t, REG_STATUS, STATUS_ACKNOWLEDGE);
        write(t, REG_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
        write(t, REG_DRIVER_FEATURES_SEL, 1);
        write(t, REG_DRIVER_FEATURES, features_high);
        write(t, REG_DRIVER_FEATURES_SEL, 0);
        write(t, REG_DRIVER_FEATURES, 1 << 3);
        write(
            t,
            REG_STATUS,
            STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK,
        );
    }

    fn set_up_queues(t: &mut MmioTransport) {
        for (index, base) in [(0u32, 0x1000u32), (1, 0x4000)] {
            write(t, REG_QUEUE_SEL, index);
            write(t, REG_QUEUE_NUM, 8);
            write(t, REG_QUEUE_DESC_LOW, base);
            write(t, REG_QUEUE_DRIVER_LOW, base + 0x800);
            write(t, REG_QUEUE_DEVICE_LOW, base + 0x1000);
            write(t, REG_QUEUE_READY, 1);
        }
    }

    const ALL_OK: u32 = STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK;

    #[test]
    fn identifies_as_a_version_2_device() {
        let (mut t, _) = transport(Probe::default());
        assert_eq!(read(&mut t, REG_MAGIC), 0x7472_6976);
        assert_eq!(read(&mut t, REG_VERSION), 2);
        assert_eq!(read(&mut t, REG_DEVICE_ID), 4);
        write(&mut t, REG_DEVICE_FEATURES_SEL, 1);
        assert_eq!(read(&mut t, REG_DEVICE_FEATURES), 1, "VERSION_1 is bit 32");
        write(&mut t, REG_DEVICE_FEATURES_SEL, 0);
        assert_eq!(read(&mut t, REG_DEVICE_FEATURES), 1 << 3);
        write(&mut t, REG_QUEUE_SEL, 1);
        assert_eq!(read(&mut t, REG_QUEUE_NUM_MAX), 8);
        write(&mut t, REG_QUEUE_SEL, 7);
        assert_eq!(read(&mut t, REG_QUEUE_NUM_MAX), 0, "no such queue");
    }

    #[test]
    fn full_negotiation_activates_the_device_with_the_acked_features() {
        let (mut t, probe) = transport(Probe::default());
        negotiate(&mut t, 1);
        assert_eq!(
            read(&mut t, REG_STATUS) & STATUS_FEATURES_OK,
            STATUS_FEATURES_OK
        );
        set_up_queues(&mut t);
        write(&mut t, REG_STATUS, ALL_OK);
        assert_eq!(read(&mut t, REG_STATUS), ALL_OK);
        let probe = probe.lock().unwrap();
        assert_eq!(probe.activations, 1);
        assert_eq!(probe.acked_features, VIRTIO_F_VERSION_1 | 1 << 3);
    }

    #[test]
    fn legacy_drivers_without_version_1_are_refused() {
        let (mut t, _) = transport(Probe::default());
        negotiate(&mut t, 0);
        assert_eq!(read(&mut t, REG_STATUS) & STATUS_FEATURES_OK, 0);
    }

    #[test]
    fn features_the_device_did_not_offer_are_dropped() {
        let (mut t, probe) = transport(Probe::default());
        write(&mut t, REG_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
        write(&mut t, REG_DRIVER_FEATURES_SEL, 1);
        write(&mut t, REG_DRIVER_FEATURES, 0xffff_ffff);
        write(&mut t, REG_DRIVER_FEATURES_SEL, 0);
        write(&mut t, REG_DRIVER_FEATURES, 0xffff_ffff);
        write(
            &mut t,
            REG_STATUS,
            STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK,
        );
        set_up_queues(&mut t);
        write(&mut t, REG_STATUS, ALL_OK);
        assert_eq!(
            probe.lock().unwrap().acked_features,
            VIRTIO_F_VERSION_1 | 1 << 3
        );
    }

    #[test]
    fn driver_ok_with_a_queue_outside_memory_needs_reset() {
        let (mut t, probe) = transport(Probe::default());
        negotiate(&mut t, 1);
        set_up_queues(&mut t);
        write(&mut t, REG_QUEUE_SEL, 0);
        // Too late: the queue is ready, so its address can't change now...
        write(&mut t, REG_QUEUE_DESC_HIGH, 1);
        // ...but one never made ready keeps the device from starting.
        let (mut t2, probe2) = transport(Probe::default());
        negotiate(&mut t2, 1);
        write(&mut t2, REG_QUEUE_SEL, 0);
        write(&mut t2, REG_QUEUE_DESC_HIGH, 0x10);
        write(&mut t2, REG_QUEUE_READY, 1);
        write(&mut t2, REG_STATUS, ALL_OK);
        assert_ne!(read(&mut t2, REG_STATUS) & STATUS_DEVICE_NEEDS_RESET, 0);
        assert_eq!(probe2.lock().unwrap().activations, 0);
        assert_eq!(
            read(&mut t2, REG_INTERRUPT_STATUS),
            2,
            "config change interrupt"
        );

        write(&mut t, REG_STATUS, ALL_OK);
        assert_eq!(probe.lock().unwrap().activations, 1);
    }

    #[test]
    fn a_refusing_device_is_reported_not_started() {
        let (mut t, _) = transport(Probe {
            refuse_activation: true,
            ..Probe::default()
        });
        negotiate(&mut t, 1);
        set_up_queues(&mut t);
        write(&mut t, REG_STATUS, ALL_OK);
        assert_ne!(read(&mut t, REG_STATUS) & STATUS_DEVICE_NEEDS_RESET, 0);
    }

    #[test]
    fn status_bits_only_grow_and_zero_resets_everything() {
        let (mut t, probe) = transport(Probe::default());
        negotiate(&mut t, 1);
        set_up_queues(&mut t);
        write(&mut t, REG_STATUS, ALL_OK);
        write(&mut t, REG_STATUS, STATUS_ACKNOWLEDGE);
        assert_eq!(
            read(&mut t, REG_STATUS),
            ALL_OK,
            "bits can't be cleared one by one"
        );
        write(&mut t, REG_INTERRUPT_ACK, 0);
        write(&mut t, REG_STATUS, 0);
        assert_eq!(read(&mut t, REG_STATUS), 0);
        assert_eq!(probe.lock().unwrap().resets, 1);
        write(&mut t, REG_QUEUE_SEL, 0);
        assert_eq!(read(&mut t, REG_QUEUE_READY), 0, "queues are reset too");
        // And it can be started again.
        negotiate(&mut t, 1);
        set_up_queues(&mut t);
        write(&mut t, REG_STATUS, ALL_OK);
        assert_eq!(probe.lock().unwrap().activations, 2);
    }

    #[test]
    fn queue_setup_before_features_ok_or_after_driver_ok_is_ignored() {
        let (mut t, _) = transport(Probe::default());
        write(&mut t, REG_QUEUE_SEL, 0);
        write(&mut t, REG_QUEUE_READY, 1);
        assert_eq!(read(&mut t, REG_QUEUE_READY), 0);
    }

    #[test]
    fn odd_sized_and_unaligned_register_accesses_do_nothing() {
        let (mut t, _) = transport(Probe::default());
        t.write(REG_STATUS, &[1]);
        t.write(REG_STATUS + 1, &1u32.to_le_bytes());
        assert_eq!(read(&mut t, REG_STATUS), 0);
        let mut byte = [0xffu8; 1];
        t.read(REG_MAGIC, &mut byte);
        assert_eq!(byte, [0]);
        let mut wide = [0xffu8; 8];
        t.read(REG_MAGIC, &mut wide);
        assert_eq!(wide, [0; 8]);
    }

    #[test]
    fn config_space_reads_go_to_the_device() {
        let (mut t, _) = transport(Probe {
            config: [1, 2, 3, 4, 5, 6, 7, 8],
            ..Probe::default()
        });
        let mut data = [0u8; 2];
        t.read(CONFIG_SPACE + 6, &mut data);
        assert_eq!(data, [7, 8]);
        t.read(CONFIG_SPACE + 7, &mut data);
        assert_eq!(data, [8, 0]);
    }

    #[test]
    fn interrupt_ack_clears_only_the_acknowledged_bits() {
        let (mut t, _) = transport(Probe::default());
        t.interrupt_status.store(3, Ordering::Release);
        write(&mut t, REG_INTERRUPT_ACK, 1);
        assert_eq!(read(&mut t, REG_INTERRUPT_STATUS), 2);
    }

    /// Sets up `count` queues of 8 entries, each in its own 64 KiB of the
    /// 1 MiB guest memory.
    fn set_up_every_queue(t: &mut MmioTransport, count: u32) {
        for index in 0..count {
            let base = 0x1_0000 * (index + 1);
            write(t, REG_QUEUE_SEL, index);
            write(t, REG_QUEUE_NUM, 8);
            write(t, REG_QUEUE_DESC_LOW, base);
            write(t, REG_QUEUE_DRIVER_LOW, base + 0x800);
            write(t, REG_QUEUE_DEVICE_LOW, base + 0x1000);
            write(t, REG_QUEUE_READY, 1);
        }
    }

    /// A transport for any device, with one notifier per queue.
    fn transport_for(device: Arc<Mutex<dyn VirtioDevice>>) -> MmioTransport {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        let queues = lock(&device).queue_max_sizes().len();
        let notifiers = (0..queues)
            .map(|_| EventFd::new(libc::EFD_NONBLOCK).unwrap())
            .collect();
        let irqfd = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        MmioTransport::new(device, mem, notifiers, irqfd).unwrap()
    }

    /// Writes garbage of every access width (1, 2, 4 and 8 bytes) at every
    /// offset of the register window, a little past it and at offsets far
    /// outside it, reading back after each write. xorshift64: the same
    /// garbage on every run.
    fn scribble(t: &mut MmioTransport, seed: u64) {
        let mut state = seed;
        let far = [
            MMIO_WINDOW_SIZE * 2,
            1 << 32,
            1 << 63,
            u64::MAX - 8,
            u64::MAX - 1,
            u64::MAX,
        ];
        for offset in (0..MMIO_WINDOW_SIZE + 0x10).chain(far) {
            for width in [1usize, 2, 4, 8] {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                t.write(offset, &state.to_le_bytes()[..width]);
                let mut back = [0u8; 8];
                t.read(offset, &mut back[..width]);
            }
        }
    }

    /// Puts a fresh transport in one of the states a driver leaves it in:
    /// untouched, features negotiated, or running.
    fn bring_to(t: &mut MmioTransport, stage: usize, queues: u32) {
        if stage >= 1 {
            negotiate(t, 1);
        }
        if stage >= 2 {
            set_up_every_queue(t, queues);
            write(t, REG_STATUS, ALL_OK);
            assert_eq!(read(t, REG_STATUS), ALL_OK);
        }
    }

    /// After any amount of garbage, the identification still reads right,
    /// and a reset (status 0) followed by the driver's usual sequence starts
    /// the device cleanly.
    fn assert_reset_recovers(t: &mut MmioTransport, device_id: u32, queues: u32) {
        assert_eq!(read(t, REG_MAGIC), MAGIC_VALUE);
        assert_eq!(read(t, REG_VERSION), VERSION);
        assert_eq!(read(t, REG_DEVICE_ID), device_id);
        write(t, REG_STATUS, 0);
        assert_eq!(read(t, REG_STATUS), 0);
        assert_eq!(read(t, REG_INTERRUPT_STATUS), 0);
        negotiate(t, 1);
        set_up_every_queue(t, queues);
        write(t, REG_STATUS, ALL_OK);
        assert_eq!(read(t, REG_STATUS), ALL_OK, "device {device_id} restarts");
    }

    #[test]
    fn garbage_in_every_register_never_panics_and_a_reset_recovers() {
        for stage in 0..3 {
            for seed in [0x9e37_79b9_7f4a_7c15u64, 0xdead_beef, 1] {
                let (mut t, probe) = transport(Probe::default());
                bring_to(&mut t, stage, 2);
                scribble(&mut t, seed);
                let before = probe.lock().unwrap().activations;
                assert_reset_recovers(&mut t, super::super::TYPE_RNG, 2);
                assert_eq!(
                    probe.lock().unwrap().activations,
                    before + 1,
                    "stage {stage}, seed {seed:#x}"
                );
            }
        }
    }

    #[test]
    fn garbage_in_the_registers_of_the_real_devices_is_survived() {
        use super::super::block::Block;
        use super::super::rng::Rng;
        use super::super::vsock::Vsock;
        use super::super::{TYPE_BLOCK, TYPE_VSOCK};

        type SharedDevice = Arc<Mutex<dyn VirtioDevice>>;
        let eventfd = || EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let dir = vmm_sys_util::tempdir::TempDir::new_with_prefix("/tmp/husk-mmio").unwrap();
        let image = dir.as_path().join("disk.img");
        std::fs::write(&image, vec![0u8; 8 * 512]).unwrap();
        for stage in 0..3 {
            let socket = dir.as_path().join(format!("vsock-{stage}"));
            // Each device with its ID and queue count.
            let devices: [(SharedDevice, u32, u32); 3] = [
                (Arc::new(Mutex::new(Rng::new(eventfd()))), TYPE_RNG, 1),
                (
                    Arc::new(Mutex::new(Block::new(&image, false, eventfd()).unwrap())),
                    TYPE_BLOCK,
                    1,
                ),
                (
                    Arc::new(Mutex::new(
                        Vsock::new(3, &socket, [eventfd(), eventfd(), eventfd()]).unwrap(),
                    )),
                    TYPE_VSOCK,
                    3,
                ),
            ];
            for (device, device_id, queues) in devices {
                let mut t = transport_for(device);
                bring_to(&mut t, stage, queues);
                scribble(&mut t, 0x2545_f491_4f6c_dd1d ^ u64::from(device_id));
                assert_reset_recovers(&mut t, device_id, queues);
            }
        }
        assert_eq!(std::fs::read(&image).unwrap(), vec![0u8; 8 * 512]);
    }

    #[test]
    fn notify_without_ioeventfd_signals_the_queue() {
        let (mut t, _) = transport(Probe::default());
        write(&mut t, REG_QUEUE_NOTIFY, 1);
        write(&mut t, REG_QUEUE_NOTIFY, 9);
        assert_eq!(t.notifiers[1].read().unwrap(), 1);
        assert!(t.notifiers[0].read().is_err(), "nothing for queue 0");
    }
}
