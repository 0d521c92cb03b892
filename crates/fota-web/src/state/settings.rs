//! The connection form: how the page reaches the device (kept in local storage).

use crate::transport::sim::SimLayout;

/// The baud rates a serial port can be opened at; the agent answers at 115200 after a
/// reset and faster rates are negotiated from there.
pub const BAUD_RATES: [u32; 6] = [9600, 57600, 115_200, 230_400, 460_800, 921_600];
/// Rates tried by baud negotiation, fastest first.
pub use fota_protocol::NEGOTIATE_BAUDS as NEGOTIATE;

/// How the page reaches the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TransportKind {
    /// The simulated device inside the page.
    #[serde(rename = "sim")]
    Sim,
    /// A serial port through Web Serial.
    #[serde(rename = "serial")]
    Serial,
    /// A WebSocket to `fota bridge --ws` or `fota sim --ws`.
    #[serde(rename = "ws")]
    WebSocket,
}

impl TransportKind {
    pub fn key(self) -> &'static str {
        match self {
            TransportKind::Sim => "sim",
            TransportKind::Serial => "serial",
            TransportKind::WebSocket => "ws",
        }
    }

    pub fn from_key(key: &str) -> Option<TransportKind> {
        match key {
            "sim" => Some(TransportKind::Sim),
            "serial" => Some(TransportKind::Serial),
            "ws" => Some(TransportKind::WebSocket),
            _ => None,
        }
    }
}

/// The connection form (kept in local storage).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Settings {
    pub transport: TransportKind,
    pub layout: SimLayout,
    pub baud: u32,
    pub negotiate: bool,
    pub ws_url: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            transport: TransportKind::Sim,
            layout: SimLayout::BytecodeOnly,
            baud: 115_200,
            negotiate: true,
            ws_url: "ws://127.0.0.1:9000".into(),
        }
    }
}

/// A bridge address as typed (`127.0.0.1:9000`, `localhost:9000/?token=…`) made into a
/// WebSocket URL: `ws://` is added when no scheme is given, `http(s)://` becomes
/// `ws(s)://`.
pub fn ws_address(typed: &str) -> String {
    let t = typed.trim();
    let lower = t.to_ascii_lowercase();
    if lower.starts_with("ws://") || lower.starts_with("wss://") {
        t.to_string()
    } else if let Some(rest) = lower.strip_prefix("http://").map(|_| &t[7..]) {
        format!("ws://{rest}")
    } else if let Some(rest) = lower.strip_prefix("https://").map(|_| &t[8..]) {
        format!("wss://{rest}")
    } else if t.is_empty() {
        String::new()
    } else {
        format!("ws://{t}")
    }
}
