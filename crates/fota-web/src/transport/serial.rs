//! A serial port through the Web Serial API.
//!
//! A read loop moves everything the port delivers into an [`Inbox`]; writes go through
//! one writer. Objects from `navigator.serial` are cast with `unchecked_into`, never
//! checked with `instanceof`, so a test can put a spec-shaped fake in its place.

use core::time::Duration;
use std::cell::RefCell;
use std::rc::Rc;

use fota_host::LinkError;
use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::spawn_local;
use web_sys::{
    ReadableStreamDefaultReader, Serial, SerialOptions, SerialPort, WritableStreamDefaultWriter,
};

use super::{Inbox, js_error, sleep};
use fota_host::Problem;

/// Receive buffer asked of the browser: far above Web Serial's 255-byte default, which
/// overflows at high baud rates while the page is busy.
const BUFFER_SIZE: u32 = 64 * 1024;

/// `navigator.serial`, if this browser has Web Serial (Chrome, Edge, Opera on desktop).
pub fn web_serial() -> Option<Serial> {
    let nav = web_sys::window()?.navigator();
    let serial = Reflect::get(&nav, &"serial".into()).ok()?;
    if serial.is_undefined() || serial.is_null() {
        None
    } else {
        Some(serial.unchecked_into())
    }
}

thread_local! {
    /// The browser chooser's answer from the page's first screen (web/boot.js), which
    /// opened it in the user's click before this app was ready: taken by the next
    /// [`SerialLink::request`] instead of opening the chooser again.
    static CHOSEN: RefCell<Option<js_sys::Promise>> = const { RefCell::new(None) };
}

/// A port already chosen (the `requestPort()` promise): the next connect uses it.
pub fn hand_over_port(chosen: js_sys::Promise) {
    CHOSEN.with(|c| c.replace(Some(chosen)));
}

/// An open serial port.
pub struct SerialLink {
    port: SerialPort,
    baud: u32,
    inbox: Inbox,
    writer: Option<WritableStreamDefaultWriter>,
    reader: Rc<RefCell<Option<ReadableStreamDefaultReader>>>,
    usb_ids: (Option<u16>, Option<u16>),
}

impl SerialLink {
    /// Ask the user for a port (the browser's chooser, or the answer it gave the first
    /// screen: [`hand_over_port`]) and open it at `baud`.
    pub async fn request(baud: u32) -> Result<SerialLink, Problem> {
        let serial = web_serial().ok_or_else(|| {
            Problem::new(
                "This browser has no Web Serial.",
                "Use Chrome, Edge or Opera on a desktop computer, or the WebSocket bridge \
                 (fota bridge --ws 127.0.0.1:9000 --port /dev/ttyUSB0), or the simulated device.",
            )
        })?;
        let chosen = CHOSEN.with(|c| c.borrow_mut().take());
        let asked = chosen.unwrap_or_else(|| JsValue::from(serial.request_port()).unchecked_into());
        let port = match wasm_bindgen_futures::JsFuture::from(asked).await {
            Ok(port) => port.unchecked_into::<SerialPort>(),
            Err(e) => {
                let (name, message) = js_error(&e);
                return Err(match name.as_str() {
                    "NotFoundError" | "AbortError" => Problem::new(
                        "No port was chosen.",
                        "Click Connect again and pick your device in the browser's list. If \
                         it is not listed: check the USB cable (some carry power only), \
                         install the USB-serial driver (CP210x, CH340, FTDI) on Windows, and \
                         on Linux add yourself to the dialout group.",
                    ),
                    "SecurityError" => Problem::new(
                        format!("The browser does not allow serial ports here: {message}"),
                        "Open the tool over https or from 127.0.0.1, not inside a frame that \
                         forbids serial access.",
                    ),
                    _ => Problem::new(
                        format!("The port chooser failed: {message}"),
                        "Reload the page and try again.",
                    ),
                });
            }
        };
        Self::open(port, baud).await
    }

    /// Open `port` at `baud` and start reading.
    pub async fn open(port: SerialPort, baud: u32) -> Result<SerialLink, Problem> {
        let info = port.get_info();
        let usb_ids = (info.get_usb_vendor_id(), info.get_usb_product_id());
        let mut link = SerialLink {
            port,
            baud,
            inbox: Inbox::new(),
            writer: None,
            reader: Rc::new(RefCell::new(None)),
            usb_ids,
        };
        link.start(baud).await.map_err(|e| {
            let (name, message) = js_error(&e);
            match name.as_str() {
                "InvalidStateError" => Problem::new(
                    "The port is already open in this page.",
                    "Disconnect first, or reload the page.",
                ),
                _ => Problem::new(
                    format!("The port could not be opened: it is busy ({message})."),
                    "Another program or browser tab has it open: close serial monitors \
                     (Arduino IDE, screen, minicom, PuTTY), other tabs of this tool, and the \
                     fota CLI, then connect again. On Linux, check you may use the port \
                     (the dialout group).",
                ),
            }
        })?;
        Ok(link)
    }

    /// What the port is, for the status line.
    pub fn label(&self) -> String {
        match self.usb_ids {
            (Some(v), Some(p)) => format!("serial port (USB {v:04x}:{p:04x})"),
            _ => "serial port".into(),
        }
    }

    /// Open the port and start the read loop and the writer.
    async fn start(&mut self, baud: u32) -> Result<(), JsValue> {
        let options = SerialOptions::new(baud);
        options.set_buffer_size(BUFFER_SIZE);
        self.port.open(&options).await?;
        self.baud = baud;
        self.inbox = Inbox::new();
        let writable = self.port.writable();
        self.writer = Some(writable.get_writer()?);
        spawn_local(read_loop(
            self.port.clone(),
            self.inbox.clone(),
            self.reader.clone(),
        ));
        Ok(())
    }

    /// Stop reading and writing and close the port: the reader is cancelled and both
    /// locks released first, since `close()` fails while a stream is locked.
    pub async fn close(&mut self) {
        let reader = self.reader.borrow_mut().take();
        if let Some(reader) = reader {
            let _ = reader.cancel().await;
            reader.release_lock();
        }
        if let Some(writer) = self.writer.take() {
            writer.release_lock();
        }
        let _ = self.port.close().await;
    }

    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        if let Some(why) = self.inbox.closed_reason() {
            return Err(why);
        }
        let writer = self
            .writer
            .as_ref()
            .ok_or_else(|| LinkError::Disconnected("the port is closed".into()))?;
        let chunk = Uint8Array::from(bytes);
        writer
            .write_with_chunk(&chunk)
            .await
            .map(|_| ())
            .map_err(|e| link_error(&e))
    }

    pub async fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, LinkError> {
        self.inbox.recv(buf, timeout).await
    }

    /// Web Serial cannot change the rate of an open port: close it and open it again.
    ///
    /// A port that went away keeps the new rate for [`reconnect`](Self::reconnect): a
    /// device that re-enumerates when it resets kills its port right after its answer to
    /// Restart, just when fota-host switches back to the base rate, and the port found
    /// again with `getPorts()` must be opened at that rate.
    pub async fn set_baud(&mut self, baud: u32) -> Result<(), LinkError> {
        let gone = self.inbox.is_closed();
        self.close().await;
        match self.start(baud).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let why = link_error(&e);
                if gone || js_error(&e).0 == "NetworkError" {
                    self.baud = baud;
                    self.inbox.close(why);
                    Ok(())
                } else {
                    Err(why)
                }
            }
        }
    }

    pub fn baud(&self) -> Option<u32> {
        Some(self.baud)
    }

    /// After the device restarted: nothing to do if the port survived it (a USB-serial
    /// adapter); if it went away (native USB re-enumerates), find the same port among
    /// the ones this page may use and open it again.
    pub async fn reconnect(&mut self) -> Result<(), LinkError> {
        if !self.inbox.is_closed() {
            return Ok(());
        }
        self.close().await;
        let result = self.reopen().await;
        if result.is_err() {
            // fota-host retries at once: pace the retries here.
            sleep(Duration::from_millis(250)).await;
        }
        result
    }

    async fn reopen(&mut self) -> Result<(), LinkError> {
        let serial = web_serial().ok_or_else(|| LinkError::Disconnected("no Web Serial".into()))?;
        let ports = serial.get_ports().await.map_err(|e| link_error(&e))?;
        let ports: js_sys::Array = JsValue::from(ports).unchecked_into();
        let mut candidates: Vec<SerialPort> = Vec::new();
        for p in ports.iter() {
            if js_sys::Object::is(&p, &self.port) {
                candidates.insert(0, p.unchecked_into());
                continue;
            }
            let port: SerialPort = p.unchecked_into();
            let info = port.get_info();
            if (info.get_usb_vendor_id(), info.get_usb_product_id()) == self.usb_ids
                && self.usb_ids.0.is_some()
            {
                candidates.push(port);
            }
        }
        for port in candidates {
            let old = core::mem::replace(&mut self.port, port);
            match self.start(self.baud).await {
                Ok(()) => return Ok(()),
                Err(_) => self.port = old,
            }
        }
        Err(LinkError::Disconnected(
            "the port has not come back yet".into(),
        ))
    }
}

/// Move bytes from the port into `inbox` until the port closes or fails.
async fn read_loop(
    port: SerialPort,
    inbox: Inbox,
    slot: Rc<RefCell<Option<ReadableStreamDefaultReader>>>,
) {
    loop {
        let readable = port.readable();
        if JsValue::from(&readable).is_null() || JsValue::from(&readable).is_undefined() {
            inbox.close(LinkError::Disconnected("the port closed".into()));
            return;
        }
        let reader = match ReadableStreamDefaultReader::new(&readable) {
            Ok(r) => r,
            Err(e) => {
                inbox.close(link_error(&e));
                return;
            }
        };
        *slot.borrow_mut() = Some(reader.clone());
        let fatal = loop {
            match reader.read().await {
                Ok(result) => {
                    let done = Reflect::get(&result, &"done".into())
                        .map(|d| d.is_truthy())
                        .unwrap_or(true);
                    if done {
                        // Cancelled by close(): the link is being shut down.
                        break Some(LinkError::Disconnected("the port was closed".into()));
                    }
                    if let Ok(value) = Reflect::get(&result, &"value".into()) {
                        let bytes: Uint8Array = value.unchecked_into();
                        inbox.push(&bytes.to_vec());
                    }
                }
                Err(e) => {
                    let (name, _) = js_error(&e);
                    match name.as_str() {
                        // Line errors: the stream is replaced by a fresh one; keep reading.
                        "BreakError" | "FramingError" | "ParityError" | "BufferOverrunError" => {
                            break None;
                        }
                        _ => break Some(link_error(&e)),
                    }
                }
            }
        };
        reader.release_lock();
        let mine = slot
            .borrow()
            .as_ref()
            .is_some_and(|r| js_sys::Object::is(r, &reader));
        if mine {
            *slot.borrow_mut() = None;
        }
        if let Some(why) = fatal {
            inbox.close(why);
            return;
        }
    }
}

/// A failed read or write as a link error: NetworkError means the device went away.
fn link_error(e: &JsValue) -> LinkError {
    let (name, message) = js_error(e);
    match name.as_str() {
        "NetworkError" | "InvalidStateError" | "NotFoundError" => LinkError::Disconnected(
            "the device was unplugged, reset or powered off".to_string()
                + if message.is_empty() { "" } else { " (" }
                + &message
                + if message.is_empty() { "" } else { ")" },
        ),
        _ => LinkError::Io(if message.is_empty() { name } else { message }),
    }
}
