//! The hand-off from the first screen. The page opens on a light copy of the connect
//! step (static HTML in index.html, run by web/boot.js) that is usable long before this
//! app's WebAssembly has arrived; when the app mounts, it takes over from that screen
//! through `fotaFirst` (web/boot.js) without losing anything the user did there:
//!
//! * the connection form as the user left it ([`settings`]);
//! * a Connect clicked before the app was ready ([`hand_over`]): the app carries it
//!   out, with the port the user already picked in the browser's chooser for Web Serial
//!   (the chooser needs the click itself, so the first screen opened it);
//! * the firmware manifest (`?manifest=`) the first screen fetched to show what it
//!   offers ([`manifest`]): the app reads the same response instead of fetching it
//!   again, and draws it at once when its bytes are there already.
//!
//! Each call answers `None` when there is no first screen (the page was built without
//! it, or it handed over already).

use js_sys::{Promise, Reflect};
use wasm_bindgen::prelude::*;

use crate::state::Settings;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = fotaFirst, js_name = settings, catch)]
    fn settings_js() -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_namespace = fotaFirst, js_name = handOver, catch)]
    fn hand_over_js() -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_namespace = fotaFirst, js_name = manifestFetch, catch)]
    fn manifest_fetch_js(url: &str) -> Result<JsValue, JsValue>;
}

/// The connection form as the first screen has it (kept in local storage too, but
/// storage may be unavailable).
pub fn settings() -> Option<Settings> {
    let value = settings_js().ok()?;
    if value.is_undefined() || value.is_null() {
        return None;
    }
    serde_wasm_bindgen::from_value(value).ok()
}

/// The id of the element the app is drawn in (hidden until [`hand_over`]).
pub const ROOT: &str = "app-root";

/// What the user asked of the first screen before the app was ready.
#[derive(Default)]
pub struct Handed {
    /// The connection form as the user left it, if it changed since [`settings`].
    pub settings: Option<Settings>,
    /// Connect was clicked (with the settings of [`settings`]).
    pub connect: bool,
    /// For Web Serial: the browser chooser's answer (resolves to the port, or rejects as
    /// `navigator.serial.requestPort()` does when the user dismisses the chooser).
    pub port: Option<Promise>,
}

/// Take over from the first screen: it is removed, the keyboard focus moves to the same
/// control in the app, and what the user asked there comes back.
pub fn hand_over() -> Handed {
    let value = hand_over_js().unwrap_or(JsValue::UNDEFINED);
    // Shown now (the first screen did it already, unless there was none).
    if let Some(root) = gloo::utils::document().get_element_by_id(ROOT) {
        let _ = root.remove_attribute("hidden");
    }
    if !value.is_object() {
        return Handed::default();
    }
    let get = |k: &str| Reflect::get(&value, &k.into()).unwrap_or(JsValue::UNDEFINED);
    let port = get("port");
    Handed {
        settings: serde_wasm_bindgen::from_value(get("settings")).ok(),
        connect: get("connect").as_bool().unwrap_or(false),
        port: port.dyn_into::<Promise>().ok(),
    }
}

/// The first screen's download of a manifest.
pub enum HandedManifest {
    /// Its bytes, read already (an HTTP success).
    Bytes(Vec<u8>),
    /// The fetch still under way, or answered with an error status: a `Promise` of the
    /// `Response`, read as the app reads its own.
    Response(Promise),
}

/// The first screen's download of the manifest at `url`, handed over once.
pub fn manifest(url: &str) -> Option<HandedManifest> {
    let value = manifest_fetch_js(url).ok()?;
    if let Some(bytes) = value.dyn_ref::<js_sys::Uint8Array>() {
        return Some(HandedManifest::Bytes(bytes.to_vec()));
    }
    value
        .dyn_into::<Promise>()
        .ok()
        .map(HandedManifest::Response)
}
