//! A simulated device running inside the page, so anyone can try the whole update with
//! no hardware. It is fota-sim's device (flash, agent, boot decision, serial line at a
//! modelled baud rate) paced in real time by the browser's clock and timers.

use core::time::Duration;
use std::cell::{Cell, RefCell};

use fota_host::sim::{Pacer, SimTransport};
use fota_host::{LinkError, Transport};
use fota_protocol::LayoutKind;
use fota_sim::device::{DeviceConfig, SimDevice};

/// Real-time pacing: `performance.now()` and `setTimeout`.
#[derive(Debug, Clone, Copy, Default)]
pub struct BrowserPacer;

impl Pacer for BrowserPacer {
    fn wall(&self) -> Duration {
        super::wall()
    }

    async fn sleep(&self, d: Duration) {
        super::sleep(d).await;
    }
}

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

thread_local! {
    /// The device between connections: like a board left on the desk, it keeps its
    /// flash when the page disconnects, so an interrupted update can resume.
    static PARKED: RefCell<Option<(SimLayout, SimDevice)>> = const { RefCell::new(None) };
    /// Set by the page's "pull the cable" button; the link fails at its next use.
    static UNPLUG: Cell<bool> = const { Cell::new(false) };
}

/// Pull the simulated cable: the running transfer fails as with a real unplug.
pub fn unplug() {
    UNPLUG.with(|u| u.set(true));
}

/// Forget the parked device: the next connection gets a factory-fresh one.
pub fn factory_reset() {
    PARKED.with(|p| p.borrow_mut().take());
}

/// Whether a device with `layout` is parked (it keeps what was flashed to it).
pub fn has_parked(layout: SimLayout) -> bool {
    PARKED.with(|p| p.borrow().as_ref().is_some_and(|(l, _)| *l == layout))
}

/// The link to the in-page device.
pub struct SimLink {
    inner: Option<SimTransport<BrowserPacer>>,
    layout: SimLayout,
}

impl SimLink {
    /// The simulated device with `layout`: the one used last if it has that layout, else
    /// a factory-fresh one.
    pub fn new(layout: SimLayout) -> SimLink {
        UNPLUG.with(|u| u.set(false));
        let parked = PARKED.with(|p| p.borrow_mut().take());
        let device = match parked {
            Some((l, device)) if l == layout => device,
            _ => {
                let kind = match layout {
                    SimLayout::BytecodeOnly => LayoutKind::BytecodeOnly,
                    SimLayout::VmAndBytecode | SimLayout::MicrobitLike => LayoutKind::VmAndBytecode,
                };
                let mut config = DeviceConfig::new(kind);
                if layout == SimLayout::MicrobitLike {
                    config.vm_slot_size = 256 * 1024;
                }
                SimDevice::new(config)
            }
        };
        SimLink {
            inner: Some(SimTransport::new(device, BrowserPacer)),
            layout,
        }
    }

    fn link(&mut self) -> Result<&mut SimTransport<BrowserPacer>, LinkError> {
        let link = self
            .inner
            .as_mut()
            .ok_or_else(|| LinkError::Disconnected("the simulated device is gone".into()))?;
        if UNPLUG.with(|u| u.replace(false)) {
            link.disconnect();
        }
        Ok(link)
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
        self.link()?.send(bytes).await
    }

    pub async fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, LinkError> {
        self.link()?.recv(buf, timeout).await
    }

    pub fn now(&self) -> Duration {
        self.inner.as_ref().map_or_else(super::wall, |l| l.now())
    }

    pub async fn set_baud(&mut self, baud: u32) -> Result<(), LinkError> {
        self.link()?.set_baud(baud).await
    }

    pub fn baud(&self) -> Option<u32> {
        self.inner.as_ref().and_then(|l| l.baud())
    }

    pub async fn reconnect(&mut self) -> Result<(), LinkError> {
        self.link()?.reconnect().await
    }
}

impl Drop for SimLink {
    fn drop(&mut self) {
        if let Some(link) = self.inner.take() {
            let device = link.into_device();
            PARKED.with(|p| *p.borrow_mut() = Some((self.layout, device)));
        }
    }
}
