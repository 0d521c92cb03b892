//! A simulated device running inside the page, so anyone can try the whole update with
//! no hardware: fota-sim's device (flash, agent, boot decision, serial line at a modelled
//! baud rate), which lives in the separately loaded module (crate::extras) and is paced
//! in real time by the page's clock and timers: it runs up to "now" at each call, and
//! the page waits between two looks for its bytes.

use core::time::Duration;
use std::cell::Cell;

use fota_host::LinkError;
use fota_protocol::LayoutKind;

use crate::extras::{self, SimHandle};
use fota_host::Problem;

/// Which board the in-page simulated device is: one of the seed's two layouts
/// ([`LayoutKind`]), or the VM + bytecode layout with VM slots a real runtime fits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SimLayout {
    /// VM | bytecode 0 | bytecode 1 | record.
    #[serde(rename = "bytecode")]
    BytecodeOnly,
    /// VM 0 | bytecode 0 | VM 1 | bytecode 1 | record.
    #[serde(rename = "vm")]
    VmAndBytecode,
    /// The VM + bytecode layout with 256 KiB VM slots, large enough for a runtime like
    /// the BBC micro:bit's MicroPython (a 238 KiB VM linked at address 0).
    #[serde(rename = "microbit")]
    MicrobitLike,
}

impl SimLayout {
    /// From the layout selector's value (`bytecode`, `vm` or `microbit`), if it is one.
    pub fn from_key(key: &str) -> Option<SimLayout> {
        match key {
            "microbit" => Some(SimLayout::MicrobitLike),
            _ => match LayoutKind::from_key(key)? {
                LayoutKind::BytecodeOnly => Some(SimLayout::BytecodeOnly),
                LayoutKind::VmAndBytecode => Some(SimLayout::VmAndBytecode),
            },
        }
    }
}

impl SimLayout {
    /// The layout selector's value (`bytecode`, `vm` or `microbit`), as the module names
    /// it too.
    pub fn key(self) -> &'static str {
        match self {
            SimLayout::BytecodeOnly => LayoutKind::BytecodeOnly.key(),
            SimLayout::VmAndBytecode => LayoutKind::VmAndBytecode.key(),
            SimLayout::MicrobitLike => "microbit",
        }
    }
}

thread_local! {
    /// Set by the page's "pull the cable" button; the link fails at its next use.
    static UNPLUG: Cell<bool> = const { Cell::new(false) };
}

/// Pull the simulated cable: the running transfer fails as with a real unplug.
pub fn unplug() {
    UNPLUG.with(|u| u.set(true));
}

/// Forget the parked device: the next connection gets a factory-fresh one.
pub fn factory_reset() {
    extras::factory_reset();
}

/// Whether a device with `layout` is parked (it keeps what was flashed to it).
pub fn has_parked(layout: SimLayout) -> bool {
    extras::has_parked(layout.key())
}

/// A failed call of the device, as the link's error.
fn link_error(e: &wasm_bindgen::JsValue) -> LinkError {
    let m = extras::message(e);
    match m.strip_prefix("disconnected: ") {
        Some(why) => LinkError::Disconnected(why.to_string()),
        None => LinkError::Io(m),
    }
}

/// The link to the in-page device.
pub struct SimLink {
    device: Option<SimHandle>,
    layout: SimLayout,
}

impl SimLink {
    /// The simulated device with `layout`: the one used last if it has that layout, else
    /// a factory-fresh one. The first time, its module is fetched (or taken from the
    /// offline copy).
    pub async fn open(layout: SimLayout) -> Result<SimLink, Problem> {
        UNPLUG.with(|u| u.set(false));
        let device = extras::sim(layout.key()).await.map_err(|e| {
            Problem::new(
                format!("The simulated device could not be loaded: {e}."),
                "Check the network connection and connect again; after one visit with the \
                 network, the page keeps it for offline use.",
            )
        })?;
        Ok(SimLink {
            device: Some(device),
            layout,
        })
    }

    fn link(&mut self) -> Result<&SimHandle, LinkError> {
        let device = self
            .device
            .as_ref()
            .ok_or_else(|| LinkError::Disconnected("the simulated device is gone".into()))?;
        if UNPLUG.with(|u| u.replace(false)) {
            device.unplug();
        }
        Ok(device)
    }

    /// What the link is, for the status line.
    pub fn label(&self) -> String {
        match self.layout {
            SimLayout::BytecodeOnly => "simulated device (bytecode-only layout)".into(),
            SimLayout::VmAndBytecode => "simulated device (VM + bytecode layout)".into(),
            SimLayout::MicrobitLike => "simulated device (micro:bit-like layout)".into(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        self.link()?.send(bytes).map_err(|e| link_error(&e))
    }

    /// What the device sends within `timeout`: looks at the line, then waits until the
    /// device's next event (1 to 8 ms), as fota-host's paced transport does.
    pub async fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, LinkError> {
        let until = super::wall() + timeout;
        loop {
            let device = self.link()?;
            let got = device.recv(buf.len()).map_err(|e| link_error(&e))?;
            if !got.is_empty() {
                let n = got.len().min(buf.len());
                buf[..n].copy_from_slice(&got[..n]);
                return Ok(n);
            }
            let now = super::wall();
            if now >= until {
                return Ok(0);
            }
            let next = device.next_event_ms().clamp(1.0, 8.0);
            let wait = Duration::from_secs_f64(next / 1000.0).min(until - now);
            super::sleep(wait).await;
        }
    }

    pub fn now(&self) -> Duration {
        self.device.as_ref().map_or_else(super::wall, |d| {
            Duration::from_secs_f64(d.now_ms().max(0.0) / 1000.0)
        })
    }

    pub async fn set_baud(&mut self, baud: u32) -> Result<(), LinkError> {
        self.link()?.set_baud(baud).map_err(|e| link_error(&e))
    }

    pub fn baud(&self) -> Option<u32> {
        self.device.as_ref().and_then(|d| d.baud())
    }

    pub async fn reconnect(&mut self) -> Result<(), LinkError> {
        self.link()?.reconnect().map_err(|e| link_error(&e))
    }
}

impl Drop for SimLink {
    fn drop(&mut self) {
        // The device stays on the desk, flash and all, for the next connection.
        if let Some(device) = self.device.take() {
            device.park();
            device.free();
        }
    }
}
