//! The parts of the web app that its first screen does not need, in a WebAssembly module
//! of their own that the page fetches only when they are used (web/boot.js,
//! `fotaExtras`):
//!
//! - [`SimDevice`], the in-page simulated device (fota-sim's flash, agent and boot
//!   decision behind fota-host's paced transport), loaded when the user picks it;
//! - [`compress`] and [`delta`], the LZMA encoder of compressed and delta streams, run in
//!   a Web Worker (web/encoder.js) when an update sends to a device that decodes them, so
//!   that encoding a large image never freezes the page.
//!
//! The API is bytes in, bytes out, and every call returns at once: the page does the
//! waiting (its transport polls [`SimDevice::recv`] on its own timers).

use core::pin::pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use std::cell::RefCell;
use std::future::Future;

use fota_codec::encode::{self, DEFAULT_OPTIONS};
use fota_host::sim::{Pacer, SimTransport};
use fota_host::{LinkError, Transport};
use fota_sim::device::{DeviceConfig, LayoutKind};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

/// The page's clock (`performance.now()`), in this module as in the page: both read the
/// same clock, so the device keeps time with the page that drives it.
#[derive(Debug, Clone, Copy, Default)]
struct PageClock;

fn now_ms() -> f64 {
    let performance = js_sys::Reflect::get(&js_sys::global(), &"performance".into()).ok();
    performance
        .and_then(|p| {
            let now = js_sys::Reflect::get(&p, &"now".into()).ok()?;
            let now: &js_sys::Function = now.dyn_ref()?;
            now.call0(&p).ok()?.as_f64()
        })
        .unwrap_or(0.0)
}

impl Pacer for PageClock {
    fn wall(&self) -> Duration {
        Duration::from_secs_f64(now_ms().max(0.0) / 1000.0)
    }

    // Never reached: every receive here has a zero timeout (the page waits instead).
    async fn sleep(&self, _d: Duration) {}
}

/// The device's configuration from the page's key: one of the seed's layouts (`vm`,
/// `bytecode`), or `microbit`, the VM + bytecode layout with 256 KiB VM slots, large
/// enough for a runtime like the BBC micro:bit's MicroPython (a 238 KiB VM linked at 0).
fn config(key: &str) -> DeviceConfig {
    if key == "microbit" {
        let mut config = DeviceConfig::new(LayoutKind::VmAndBytecode);
        config.vm_slot_size = 256 * 1024;
        return config;
    }
    DeviceConfig::new(LayoutKind::from_key(key).unwrap_or(LayoutKind::BytecodeOnly))
}

thread_local! {
    /// The device between connections: like a board left on the desk, it keeps its
    /// flash when the page disconnects, so an interrupted update can resume.
    static PARKED: RefCell<Option<(String, SimTransport<PageClock>)>> = const { RefCell::new(None) };
}

/// Runs a call of the paced transport with a zero timeout, which never waits, to its
/// end; were it to wait, the page sees the link fail rather than a hang.
fn now<T>(f: impl Future<Output = Result<T, LinkError>>) -> Result<T, LinkError> {
    match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => Err(LinkError::Io(
            "the simulated device's call would wait".into(),
        )),
    }
}

fn js_err(e: LinkError) -> JsError {
    JsError::new(&match e {
        LinkError::Disconnected(m) => format!("disconnected: {m}"),
        LinkError::Io(m) => m,
    })
}

/// The in-page simulated device, as the page's transport sees it.
#[wasm_bindgen]
pub struct SimDevice {
    layout: String,
    link: Option<SimTransport<PageClock>>,
}

#[wasm_bindgen]
impl SimDevice {
    /// The device with `layout` (`vm`, `bytecode` or `microbit`): the one used last if it has that
    /// layout, else a factory-fresh one.
    #[wasm_bindgen(constructor)]
    pub fn new(layout_key: &str) -> SimDevice {
        let parked = PARKED.with(|p| p.borrow_mut().take());
        let mut link = match parked {
            Some((l, link)) if l == layout_key => link,
            _ => SimTransport::new(
                fota_sim::device::SimDevice::new(config(layout_key)),
                PageClock,
            ),
        };
        let _ = now(link.reconnect());
        SimDevice {
            layout: layout_key.to_string(),
            link: Some(link),
        }
    }

    fn link(&mut self) -> Result<&mut SimTransport<PageClock>, JsError> {
        self.link
            .as_mut()
            .ok_or_else(|| JsError::new("disconnected: the simulated device is put away"))
    }

    /// Bytes from the page to the device.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), JsError> {
        let link = self.link()?;
        now(link.send(bytes)).map_err(js_err)
    }

    /// Up to `max` bytes the device has sent by now (none: an empty array).
    pub fn recv(&mut self, max: usize) -> Result<Vec<u8>, JsError> {
        let link = self.link()?;
        let mut buf = vec![0u8; max.max(1)];
        let n = now(link.recv(&mut buf, Duration::ZERO)).map_err(js_err)?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Milliseconds until the device's next event (a byte on the line, an erase done), for
    /// the page's wait between two [`SimDevice::recv`]s; infinite when nothing is due.
    pub fn next_event_ms(&self) -> f64 {
        let Some(link) = self.link.as_ref() else {
            return f64::INFINITY;
        };
        let dev = link.device();
        dev.next_event()
            .map_or(f64::INFINITY, |t| t.saturating_sub(dev.now()) as f64 / 1e6)
    }

    /// The device's simulated time, in milliseconds.
    pub fn now_ms(&self) -> f64 {
        self.link
            .as_ref()
            .map_or_else(now_ms, |l| l.now().as_secs_f64() * 1000.0)
    }

    /// The host's end of the line switches to `baud`.
    pub fn set_baud(&mut self, baud: u32) -> Result<(), JsError> {
        let link = self.link()?;
        now(link.set_baud(baud)).map_err(js_err)
    }

    /// The host's end of the line's rate.
    pub fn baud(&self) -> Option<u32> {
        self.link.as_ref().and_then(|l| l.baud())
    }

    /// Pull the cable: every call fails until [`SimDevice::reconnect`].
    pub fn unplug(&mut self) {
        if let Some(l) = self.link.as_mut() {
            l.disconnect();
        }
    }

    /// Plug the cable back in.
    pub fn reconnect(&mut self) -> Result<(), JsError> {
        let link = self.link()?;
        now(link.reconnect()).map_err(js_err)
    }

    /// The page lets go of the device: it stays on the desk, flash and all, for the next
    /// connection.
    pub fn park(&mut self) {
        if let Some(link) = self.link.take() {
            PARKED.with(|p| *p.borrow_mut() = Some((self.layout.clone(), link)));
        }
    }
}

/// Whether a device with `layout` is parked (it keeps what was flashed to it).
#[wasm_bindgen]
pub fn has_parked(layout_key: &str) -> bool {
    PARKED.with(|p| p.borrow().as_ref().is_some_and(|(l, _)| l == layout_key))
}

/// Forget the parked device: the next connection gets a factory-fresh one.
#[wasm_bindgen]
pub fn factory_reset() {
    PARKED.with(|p| p.borrow_mut().take());
}

/// The whole image compressed (docs/CODECS.md): the stream's bytes.
#[wasm_bindgen]
pub fn compress(image: &[u8]) -> Result<Vec<u8>, JsError> {
    encode::compress(image, &DEFAULT_OPTIONS)
        .map(|s| s.to_bytes())
        .map_err(|e| JsError::new(&e.to_string()))
}

/// A delta from `base` (an image the device holds) to `image`: the stream's bytes.
#[wasm_bindgen]
pub fn delta(base: &[u8], image: &[u8]) -> Result<Vec<u8>, JsError> {
    encode::delta(base, image, &DEFAULT_OPTIONS)
        .map(|s| s.to_bytes())
        .map_err(|e| JsError::new(&e.to_string()))
}
