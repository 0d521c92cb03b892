//! What the first screen does not need lives in a second WebAssembly module,
//! crates/fota-web-extras, that the page fetches only when it is used: the in-page
//! simulated device (when the user picks it) and the LZMA encoder (when an update sends
//! to a device that decodes compressed streams; it runs in a Web Worker, so a large
//! image never freezes the page). web/boot.js loads it (`fotaExtras`: the module's
//! hashed names are on its script tag); these are its bindings.

use fota_host::codec::{Encoder, Stream};
use js_sys::{Promise, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen]
extern "C" {
    /// Resolves to a new [`SimHandle`] once the module is loaded.
    #[wasm_bindgen(js_namespace = fotaExtras, js_name = sim, catch)]
    fn sim_js(layout: &str) -> Result<Promise, JsValue>;
    /// Whether the loaded module has a device with `layout` parked (false when the
    /// module is not loaded: there is no device yet).
    #[wasm_bindgen(js_namespace = fotaExtras, js_name = hasParked, catch)]
    fn has_parked_js(layout: &str) -> Result<bool, JsValue>;
    #[wasm_bindgen(js_namespace = fotaExtras, js_name = factoryReset, catch)]
    fn factory_reset_js() -> Result<(), JsValue>;
    /// Resolves to the stream's bytes, made in the encoder's worker.
    #[wasm_bindgen(js_namespace = fotaExtras, js_name = encode, catch)]
    fn encode_js(base: Option<Uint8Array>, image: Uint8Array) -> Result<Promise, JsValue>;

    /// fota-web-extras' `SimDevice`: every call returns at once.
    pub type SimHandle;
    #[wasm_bindgen(method, catch)]
    pub fn send(this: &SimHandle, bytes: &[u8]) -> Result<(), JsValue>;
    #[wasm_bindgen(method, catch)]
    pub fn recv(this: &SimHandle, max: usize) -> Result<Vec<u8>, JsValue>;
    #[wasm_bindgen(method)]
    pub fn next_event_ms(this: &SimHandle) -> f64;
    #[wasm_bindgen(method)]
    pub fn now_ms(this: &SimHandle) -> f64;
    #[wasm_bindgen(method, catch)]
    pub fn set_baud(this: &SimHandle, baud: u32) -> Result<(), JsValue>;
    #[wasm_bindgen(method)]
    pub fn baud(this: &SimHandle) -> Option<u32>;
    #[wasm_bindgen(method)]
    pub fn unplug(this: &SimHandle);
    #[wasm_bindgen(method, catch)]
    pub fn reconnect(this: &SimHandle) -> Result<(), JsValue>;
    #[wasm_bindgen(method)]
    pub fn park(this: &SimHandle);
    #[wasm_bindgen(method)]
    pub fn free(this: &SimHandle);
}

/// A JS error's message.
pub fn message(e: &JsValue) -> String {
    crate::transport::js_error(e).1
}

/// The simulated device with `layout` (`vm` or `bytecode`), the module loaded first if it
/// is not yet.
pub async fn sim(layout: &str) -> Result<SimHandle, String> {
    let promise = sim_js(layout).map_err(|e| message(&e))?;
    let handle = JsFuture::from(promise).await.map_err(|e| message(&e))?;
    Ok(handle.unchecked_into())
}

/// Whether a simulated device with `layout` is parked.
pub fn has_parked(layout: &str) -> bool {
    has_parked_js(layout).unwrap_or(false)
}

/// Forget the parked simulated device.
pub fn factory_reset() {
    let _ = factory_reset_js();
}

/// The encoder fota-host's update uses in the page: the module's, in a worker.
pub fn encoder() -> Encoder {
    Encoder::new(|base, image| Box::pin(encode(base, image)))
}

async fn encode(base: Option<Vec<u8>>, image: Vec<u8>) -> Result<Stream, String> {
    let base = base.map(|b| Uint8Array::from(&b[..]));
    let promise = encode_js(base, Uint8Array::from(&image[..])).map_err(|e| message(&e))?;
    let out = JsFuture::from(promise).await.map_err(|e| message(&e))?;
    let bytes = Uint8Array::new(&out).to_vec();
    Stream::from_bytes(&bytes).map_err(|e| e.to_string())
}
