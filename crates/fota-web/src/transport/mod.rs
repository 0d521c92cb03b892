//! The byte links the browser can reach a device through, behind fota-host's
//! [`Transport`]: Web Serial, a WebSocket bridge, and a simulated device in the page.

mod inbox;
pub mod serial;
pub mod sim;
pub mod ws;

use core::time::Duration;

use fota_host::{LinkError, Transport};

pub use inbox::Inbox;

/// Milliseconds since the page loaded (`performance.now()`): the clock every link uses.
pub fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or(0.0, |p| p.now())
}

/// [`now_ms`] as a [`Duration`].
pub fn wall() -> Duration {
    Duration::from_secs_f64(now_ms().max(0.0) / 1000.0)
}

/// Wait `d` on the browser's event loop.
pub async fn sleep(d: Duration) {
    gloo::timers::future::sleep(d).await;
}

/// A connected link of any kind. fota-host's `Transport` uses `async fn`, so it cannot be
/// a trait object: an enum dispatches instead.
pub enum Link {
    /// The simulated device running in this page.
    Sim(Box<sim::SimLink>),
    /// A serial port through Web Serial.
    Serial(serial::SerialLink),
    /// A WebSocket to `fota bridge --ws` or `fota sim --ws`.
    Ws(ws::WsLink),
}

impl Link {
    /// What the link is, for the status line.
    pub fn label(&self) -> String {
        match self {
            Link::Sim(l) => l.label(),
            Link::Serial(l) => l.label(),
            Link::Ws(l) => l.label(),
        }
    }

    /// Let go of the port or socket (locks released first).
    pub async fn close(&mut self) {
        match self {
            Link::Sim(_) => {}
            Link::Serial(l) => l.close().await,
            Link::Ws(l) => l.close(),
        }
    }
}

impl Transport for Link {
    async fn send(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        match self {
            Link::Sim(l) => l.send(bytes).await,
            Link::Serial(l) => l.send(bytes).await,
            Link::Ws(l) => l.send(bytes).await,
        }
    }

    async fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, LinkError> {
        match self {
            Link::Sim(l) => l.recv(buf, timeout).await,
            Link::Serial(l) => l.recv(buf, timeout).await,
            Link::Ws(l) => l.recv(buf, timeout).await,
        }
    }

    fn now(&self) -> Duration {
        match self {
            Link::Sim(l) => l.now(),
            Link::Serial(_) | Link::Ws(_) => wall(),
        }
    }

    async fn sleep(&mut self, d: Duration) {
        sleep(d).await;
    }

    async fn set_baud(&mut self, baud: u32) -> Result<(), LinkError> {
        match self {
            Link::Sim(l) => l.set_baud(baud).await,
            Link::Serial(l) => l.set_baud(baud).await,
            Link::Ws(l) => l.set_baud(baud).await,
        }
    }

    fn baud(&self) -> Option<u32> {
        match self {
            Link::Sim(l) => l.baud(),
            Link::Serial(l) => l.baud(),
            Link::Ws(l) => l.baud(),
        }
    }

    async fn reconnect(&mut self) -> Result<(), LinkError> {
        match self {
            Link::Sim(l) => l.reconnect().await,
            Link::Serial(l) => l.reconnect().await,
            Link::Ws(l) => l.reconnect().await,
        }
    }
}

/// The `name` of a DOMException (or any error object), and its message.
pub fn js_error(e: &wasm_bindgen::JsValue) -> (String, String) {
    let get = |k: &str| {
        js_sys::Reflect::get(e, &k.into())
            .ok()
            .and_then(|v| v.as_string())
            .unwrap_or_default()
    };
    let name = get("name");
    let mut message = get("message");
    if message.is_empty() {
        message = e.as_string().unwrap_or_else(|| format!("{e:?}"));
    }
    (name, message)
}
