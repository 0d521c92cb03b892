//! The browser firmware update tool: a Yew app that updates a device running the FOTA
//! agent over Web Serial, a WebSocket bridge, or a simulated device in the page.
//!
//! * [`state`]: everything the page shows, changed only through actions;
//! * [`components`]: the view pieces;
//! * [`transport`]: the byte links (Web Serial, WebSocket, in-page simulator);
//! * [`session`]: the task that owns the connection and runs fota-host's update;
//! * [`app`]: the root component wiring them together.

mod app;
mod components;
mod session;
mod state;
mod transport;

fn main() {
    yew::Renderer::<app::App>::new().render();
}
