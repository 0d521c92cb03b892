//! What the integration tests build the same way: the simulated device with small slots
//! and its factory images, the host over it, firmware-like images, and an observer that
//! keeps what the host said. Each test file includes it (`mod support;`) and uses a part
//! of it.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fota_host::protocol::{Event, FrameReader, Info, Op, Reply, SlotKind};
use fota_host::sim::{SimTransport, Virtual};
use fota_host::{Device, Image, LinkError, NullObserver, Observer, Step, Transport};
use fota_sim::device::{DeviceConfig, DeviceFlash, LayoutKind, SimDevice};
use fota_sim::flash::FlashTiming;
use fota_sim::images;

/// The host over a simulated device.
pub type Host = Device<SimTransport<Virtual>>;

/// Small slots: a whole update moves a few sectors.
pub const VM_SLOT: u32 = 8 * 1024;
/// See [`VM_SLOT`].
pub const BC_SLOT: u32 = 12 * 1024;

/// A device of `layout` with [`VM_SLOT`] and [`BC_SLOT`] slots.
pub fn small_config(layout: LayoutKind) -> DeviceConfig {
    let mut cfg = DeviceConfig::new(layout);
    cfg.vm_slot_size = VM_SLOT;
    cfg.bc_slot_size = BC_SLOT;
    cfg
}

/// The factory images that fit small slots: VM "zvm" 1.0 (3000 bytes) and bytecode
/// "blink" 1 (2500 bytes), for slot 0 of each kind.
pub fn factory_images() -> (Vec<u8>, Vec<u8>) {
    (
        images::sample_image(SlotKind::Vm, "zvm", "1.0", true, 3000),
        images::sample_image(SlotKind::Bytecode, "blink", "1", true, 2500),
    )
}

/// `cfg`'s flash bytes with the factory images in slot 0 of each kind and `others`
/// (kind, slot, image) besides.
pub fn factory_bytes(cfg: &DeviceConfig, others: &[(SlotKind, u32, &[u8])]) -> Vec<u8> {
    let (vm, bc) = factory_images();
    let mut all: Vec<(SlotKind, u32, &[u8])> =
        vec![(SlotKind::Vm, 0, &vm[..]), (SlotKind::Bytecode, 0, &bc[..])];
    all.extend_from_slice(others);
    cfg.flash_with(&all)
}

/// [`factory_bytes`] on a flash that takes no time.
pub fn instant_flash(cfg: &DeviceConfig, others: &[(SlotKind, u32, &[u8])]) -> DeviceFlash {
    DeviceFlash::from_image(factory_bytes(cfg, others))
        .expect("whole sectors")
        .with_timing(FlashTiming::INSTANT)
}

/// The host over `sim`, saying nothing.
pub fn host(sim: SimDevice) -> Host {
    host_with(sim, Box::new(NullObserver))
}

/// The host over `sim`, telling `observer`.
pub fn host_with(sim: SimDevice, observer: Box<dyn Observer>) -> Host {
    Device::new(SimTransport::new(sim, Virtual), observer)
}

/// A device that answers every `Hello` with `info` and nothing else: a device that
/// describes itself as the test says, in virtual time.
pub struct InfoOnly {
    info: Info,
    reader: FrameReader<2048>,
    pending: Vec<u8>,
    now: Duration,
}

/// The host over an [`InfoOnly`] device, saying nothing.
pub fn info_only(info: Info) -> Device<InfoOnly> {
    let device = InfoOnly {
        info,
        reader: FrameReader::new(),
        pending: Vec::new(),
        now: Duration::ZERO,
    };
    Device::new(device, Box::new(NullObserver))
}

impl Transport for InfoOnly {
    async fn send(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        let mut rest = bytes;
        while !rest.is_empty() {
            let (used, event) = self.reader.feed(rest);
            if let Some(Event::Frame(f)) = event
                && f.op == Op::Hello as u8
            {
                let mut out = [0u8; 1024];
                let reply = Reply::Info(self.info.clone());
                let n = fota_host::protocol::encode_reply(f.id, &reply, &mut out).expect("fits");
                self.pending.extend_from_slice(&out[..n]);
            }
            rest = &rest[used..];
        }
        Ok(())
    }

    async fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, LinkError> {
        if self.pending.is_empty() {
            self.now += timeout;
            return Ok(0);
        }
        let n = self.pending.len().min(buf.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Ok(n)
    }

    fn now(&self) -> Duration {
        self.now
    }

    async fn sleep(&mut self, d: Duration) {
        self.now += d;
    }
}

/// Firmware-like bytes (they compress as code does, not to nothing).
pub fn firmware_bytes(len: usize) -> Vec<u8> {
    let words = [
        &b"ldr r0, [r1]; "[..],
        b"bl memcpy; ",
        b"push {r4-r7, lr}; ",
        b"bx lr; ",
    ];
    let mut bytes = Vec::new();
    let mut i = 0usize;
    while bytes.len() < len {
        bytes.extend_from_slice(words[(i * 7 + i / 13) % words.len()]);
        bytes.extend_from_slice(&(i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[..i % 3]);
        i += 1;
    }
    bytes.truncate(len);
    bytes
}

/// [`firmware_bytes`] as the image "app.bin".
pub fn firmware(len: usize) -> Image {
    Image::new("app.bin", firmware_bytes(len)).expect("not empty")
}

/// A healthy program of `size` bytes (it checks its own image and accepts itself),
/// named `name`.
pub fn program(name: impl Into<String>, version: &str, size: usize) -> Image {
    let src = fota_bytecode::samples::healthy_of_size(version, size);
    let bytes = fota_bytecode::assemble(&src).expect("the sample assembles");
    Image::new(name, bytes).expect("not empty")
}

/// Keeps the Stream step's details (`step: ...`) and the event lines (`event: ...`).
#[derive(Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<String>>>);

impl Observer for Lines {
    fn step(&mut self, step: Step, detail: &str) {
        if step == Step::Stream {
            self.0.lock().unwrap().push(format!("step: {detail}"));
        }
    }
    fn event(&mut self, line: &str) {
        self.0.lock().unwrap().push(format!("event: {line}"));
    }
}

impl Lines {
    /// What was said since the last call.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    /// The event lines said so far (without their `event: ` prefix).
    pub fn events(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| l.strip_prefix("event: ").map(str::to_string))
            .collect()
    }
}

/// The `Transport` methods a wrapper around the simulated link (its field `inner`) passes
/// through unchanged: its clock, sleep, baud rate and reconnect. Used inside the wrapper's
/// `impl Transport`, beside its own `send` and `recv`.
#[macro_export]
macro_rules! pass_through_to_inner {
    () => {
        fn now(&self) -> std::time::Duration {
            self.inner.now()
        }

        async fn sleep(&mut self, d: std::time::Duration) {
            self.inner.sleep(d).await;
        }

        async fn set_baud(&mut self, baud: u32) -> Result<(), fota_host::LinkError> {
            self.inner.set_baud(baud).await
        }

        fn baud(&self) -> Option<u32> {
            self.inner.baud()
        }

        async fn reconnect(&mut self) -> Result<(), fota_host::LinkError> {
            self.inner.reconnect().await
        }
    };
}
