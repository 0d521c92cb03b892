//! A WebSocket to `fota bridge --ws` (a serial port on another computer, or a browser
//! without Web Serial) or `fota sim --ws` (a simulated device): raw bytes as binary
//! messages, both ways.

use core::time::Duration;
use std::cell::RefCell;
use std::rc::Rc;

use fota_host::LinkError;
use futures::channel::oneshot;
use js_sys::{ArrayBuffer, Uint8Array};
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{BinaryType, CloseEvent, Event, MessageEvent, WebSocket};

use super::{Inbox, sleep};
use fota_host::Problem;

/// The web app's own origins as `.ci/serve` serves it: `fota bridge` and `fota sim`
/// accept these without `--allow-origin`.
const DEFAULT_ORIGINS: [&str; 2] = ["http://127.0.0.1:8080", "http://localhost:8080"];

/// `url` with the value of its `token=` hidden (the host's rule, with the page's ellipsis).
pub fn redact_token(url: &str) -> String {
    fota_host::text::redact_token(url, "…")
}

/// How long a bridge may take to take the socket. `fota bridge` and `fota sim` serve one
/// client at a time and accept the next one only when the first lets go, so a socket
/// still opening after this long means the device is in use.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// Sending pauses while the browser holds more than this many unsent bytes.
const HIGH_WATER: u32 = 256 * 1024;

struct Handlers {
    _message: Closure<dyn FnMut(MessageEvent)>,
    _close: Closure<dyn FnMut(CloseEvent)>,
    _open: Closure<dyn FnMut(Event)>,
    _error: Closure<dyn FnMut(Event)>,
}

/// An open WebSocket to a device.
pub struct WsLink {
    url: String,
    /// The agent's line rate, as far as we know: the bridge (and `fota sim`) follow the
    /// agent's baud switches by themselves, so negotiation works through a WebSocket too.
    baud: u32,
    ws: WebSocket,
    inbox: Inbox,
    _handlers: Handlers,
}

impl WsLink {
    /// Connect to `url` (ws:// or wss://), as `fota bridge` or `fota sim` printed it (its
    /// `?token=...` is not needed from an allowed page, and does no harm). Gives up after
    /// [`OPEN_TIMEOUT`] (the device is in use), or when `abort` completes (the user
    /// cancelled: `None`, not an error); the socket is closed then, so it does not take the
    /// device later.
    pub async fn connect(
        url: &str,
        abort: impl core::future::Future<Output = ()>,
    ) -> Result<Option<WsLink>, Problem> {
        use futures::future::{Either, select};
        let url = url.trim();
        let give_up = select(Box::pin(sleep(OPEN_TIMEOUT)), Box::pin(abort));
        match select(Box::pin(Self::connect_now(url)), give_up).await {
            Either::Left((opened, _)) => opened.map(Some),
            Either::Right((Either::Right(_), _)) => Ok(None),
            Either::Right((Either::Left(_), _)) => Err(Problem::new(
                format!(
                    "The bridge at {} did not take the connection within {} s: the device is \
                     in use by another page or program.",
                    redact_token(url),
                    OPEN_TIMEOUT.as_secs()
                ),
                "The bridge serves one client at a time. Disconnect the other tab or close \
                 the other program that uses this device, then connect again. If nothing else \
                 uses it, the bridge's terminal shows what it is doing.",
            )),
        }
    }

    async fn connect_now(url: &str) -> Result<WsLink, Problem> {
        let url = url.trim();
        if !(url.starts_with("ws://") || url.starts_with("wss://")) {
            return Err(Problem::new(
                format!("\"{}\" is not a WebSocket address.", redact_token(url)),
                "Write it as ws://HOST:PORT, for example ws://127.0.0.1:9000 for \
                 `fota bridge --ws 127.0.0.1:9000 --port /dev/ttyUSB0`.",
            ));
        }
        Self::open(url).await.map_err(|why| {
            // The browser does not say whether nothing listens or the bridge refused this
            // page (HTTP 403): the help covers both, naming this page's origin.
            let origin = web_sys::window()
                .and_then(|w| w.location().origin().ok())
                .unwrap_or_default();
            let (message, allow) = if DEFAULT_ORIGINS.contains(&origin.as_str()) {
                (
                    format!(
                        "No WebSocket bridge answered at {} ({why}).",
                        redact_token(url)
                    ),
                    String::new(),
                )
            } else {
                (
                    format!(
                        "No WebSocket bridge answered at {}, or it refused this page's origin \
                         {origin} ({why}).",
                        redact_token(url)
                    ),
                    format!(
                        " If the bridge runs, its terminal says whether it refused this page; \
                         then start it with --allow-origin {origin}."
                    ),
                )
            };
            Problem::new(
                message,
                format!(
                    "Start the bridge on the computer the device is plugged into: \
                     `fota bridge --ws 127.0.0.1:9000 --port /dev/ttyUSB0` (or `fota sim --ws \
                     127.0.0.1:9000` for a simulated device), then connect again. A page served \
                     over https can only reach wss:// addresses or this computer.{allow}"
                ),
            )
        })
    }

    async fn open(url: &str) -> Result<WsLink, String> {
        let ws = WebSocket::new(url).map_err(|e| super::js_error(&e).1)?;
        ws.set_binary_type(BinaryType::Arraybuffer);
        let inbox = Inbox::new();
        let (tx, rx) = oneshot::channel::<Result<(), String>>();
        let tx = Rc::new(RefCell::new(Some(tx)));

        let on_message = {
            let inbox = inbox.clone();
            Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
                let data = ev.data();
                if data.is_instance_of::<ArrayBuffer>() {
                    inbox.push(&Uint8Array::new(&data).to_vec());
                } else if let Some(text) = data.as_string() {
                    // A bridge may send its own notices as text.
                    inbox.push(text.as_bytes());
                }
            })
        };
        let on_close = {
            let inbox = inbox.clone();
            let tx = tx.clone();
            Closure::<dyn FnMut(CloseEvent)>::new(move |ev: CloseEvent| {
                let why = if ev.reason().is_empty() {
                    format!("the WebSocket closed (code {})", ev.code())
                } else {
                    format!("the WebSocket closed: {}", ev.reason())
                };
                if let Some(tx) = tx.borrow_mut().take() {
                    let _ = tx.send(Err(why.clone()));
                }
                inbox.close(LinkError::Disconnected(why));
            })
        };
        let on_open = {
            let tx = tx.clone();
            Closure::<dyn FnMut(Event)>::new(move |_| {
                if let Some(tx) = tx.borrow_mut().take() {
                    let _ = tx.send(Ok(()));
                }
            })
        };
        let on_error = {
            let tx = tx.clone();
            Closure::<dyn FnMut(Event)>::new(move |_| {
                if let Some(tx) = tx.borrow_mut().take() {
                    let _ = tx.send(Err("connection refused or failed".into()));
                }
            })
        };
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        let link = WsLink {
            url: url.to_string(),
            baud: fota_host::protocol::DEFAULT_BAUD,
            ws,
            inbox,
            _handlers: Handlers {
                _message: on_message,
                _close: on_close,
                _open: on_open,
                _error: on_error,
            },
        };
        match rx.await {
            Ok(Ok(())) => Ok(link),
            Ok(Err(why)) => {
                link.close();
                Err(why)
            }
            Err(_) => Err("the WebSocket went away".into()),
        }
    }

    /// What the link is, for the status line (without the token: it shows on screen and
    /// in screenshots).
    pub fn label(&self) -> String {
        format!("WebSocket {}", redact_token(&self.url))
    }

    /// Close the socket.
    pub fn close(&self) {
        self.ws.set_onclose(None);
        self.ws.set_onmessage(None);
        let _ = self.ws.close();
    }

    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        if let Some(why) = self.inbox.closed_reason() {
            return Err(why);
        }
        if self.ws.ready_state() != WebSocket::OPEN {
            return Err(LinkError::Disconnected("the WebSocket is not open".into()));
        }
        while self.ws.buffered_amount() > HIGH_WATER {
            sleep(Duration::from_millis(5)).await;
        }
        self.ws
            .send_with_u8_array(bytes)
            .map_err(|e| LinkError::Io(super::js_error(&e).1))
    }

    pub async fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, LinkError> {
        self.inbox.recv(buf, timeout).await
    }

    /// The far end follows the agent's switch by itself: only remember the rate (it
    /// sizes fota-host's timeouts).
    pub async fn set_baud(&mut self, baud: u32) -> Result<(), LinkError> {
        self.baud = baud;
        Ok(())
    }

    pub fn baud(&self) -> Option<u32> {
        Some(self.baud)
    }

    /// Open the socket again if it closed (the bridge restarted, the device reset).
    pub async fn reconnect(&mut self) -> Result<(), LinkError> {
        if !self.inbox.is_closed() {
            return Ok(());
        }
        match Self::open(&self.url).await {
            Ok(mut fresh) => {
                self.close();
                fresh.baud = self.baud;
                *self = fresh;
                Ok(())
            }
            Err(why) => {
                sleep(Duration::from_millis(250)).await;
                Err(LinkError::Disconnected(why))
            }
        }
    }
}

impl Drop for WsLink {
    fn drop(&mut self) {
        // Handlers die with the link: make sure the socket no longer calls them.
        self.ws.set_onopen(None);
        self.ws.set_onerror(None);
        self.close();
    }
}
