//! The browser firmware update tool: a Yew app that updates a device running the FOTA
//! agent over Web Serial, a WebSocket bridge, or a simulated device in the page.
//!
//! Data flows one way: the components draw the [`state`] and emit intents; the root
//! ([`app`]) hands them to the [`effects`], which change the state only through actions
//! and a pure reducer.
//!
//! * [`state`]: everything the page shows, its actions and the reducer (no clock, no
//!   browser: tested natively);
//! * [`components`]: the view pieces (props in, intents out);
//! * [`effects`]: connecting, files, update, cancel, settings storage;
//! * [`installed`]: whether a device runs given images already (its MD5 of the slots);
//! * [`session`]: the task that owns the connection and runs fota-host's update;
//! * [`transport`]: the byte links (Web Serial, WebSocket, in-page simulator);
//! * [`extras`]: the module loaded when needed (the simulated device, the encoder);
//! * [`handoff`]: taking over from the page's light first screen (web/boot.js);
//! * [`app`]: the root component wiring them together.

mod app;
mod components;
mod effects;
mod extras;
mod handoff;
mod installed;
mod session;
mod state;
mod transport;

fn main() {
    // A root of its own, after the page's first screen: Yew empties the element it mounts
    // in, and the first screen stays until the app has drawn and taken over from it
    // (handoff.rs), with the keyboard focus where the user left it. Hidden until then, so
    // that the page never shows (nor offers to a click) both at once.
    let doc = gloo::utils::document();
    match (doc.create_element("div"), doc.body()) {
        (Ok(root), Some(body)) if body.append_child(&root).is_ok() => {
            root.set_id(handoff::ROOT);
            let _ = root.set_attribute("hidden", "");
            yew::Renderer::<app::App>::with_root(root).render();
        }
        _ => {
            yew::Renderer::<app::App>::new().render();
        }
    }
}
