//! Choosing how to reach the device, and connecting.

use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use crate::state::{BAUD_RATES, Settings, TransportKind};
use crate::transport::sim::SimLayout;

#[derive(Properties, PartialEq)]
pub struct ConnectProps {
    pub settings: Settings,
    /// The browser has `navigator.serial`.
    pub web_serial: bool,
    pub opening: bool,
    pub on_change: Callback<Settings>,
    pub on_connect: Callback<()>,
    /// Stop connecting.
    pub on_cancel: Callback<()>,
    /// A simulated device with the chosen layout kept its flash from a past connection.
    pub sim_parked: bool,
    pub on_factory_reset: Callback<()>,
}

/// What to do in a browser without Web Serial.
#[function_component(NoWebSerial)]
pub fn no_web_serial() -> Html {
    html! {
        <div class="notice" role="note" data-testid="no-web-serial">
            <p><strong>{"This browser cannot open serial ports."}</strong>
               {" Web Serial is available in Chrome, Edge and Opera on desktop computers, and in Firefox from version 151; Safari and phone browsers do not have it."}</p>
            <p>{"Other ways to update your device from here:"}</p>
            <ul>
                <li>{"Run the bridge on the computer the device is plugged into, then choose "}<em>{"WebSocket bridge"}</em>{":"}
                    <pre><code>{"fota bridge --ws 127.0.0.1:9000 --port /dev/ttyUSB0"}</code></pre>
                    {"(on Windows the port is COM3 or similar; on macOS /dev/cu.usbserial-…)."}</li>
                <li>{"Or try the whole update on the "}<em>{"simulated device"}</em>{" that runs in this page."}</li>
            </ul>
        </div>
    }
}

#[function_component(ConnectPanel)]
pub fn connect_panel(props: &ConnectProps) -> Html {
    let s = &props.settings;
    let set = |f: fn(&mut Settings, String)| {
        let settings = s.clone();
        let on_change = props.on_change.clone();
        move |value: String| {
            let mut next = settings.clone();
            f(&mut next, value);
            on_change.emit(next);
        }
    };
    let radio = |kind: TransportKind, title: &str, text: Html| {
        let pick = set(|s, v| s.transport = TransportKind::from_key(&v).unwrap_or(s.transport));
        let key = kind.key();
        let onchange = Callback::from(move |_: Event| pick(key.to_string()));
        let id = format!("transport-{key}");
        let unavailable = kind == TransportKind::Serial && !props.web_serial;
        html! {
            <label class={classes!("choice", (s.transport == kind).then_some("selected"), unavailable.then_some("unavailable"))} for={id.clone()}>
                <input type="radio" name="transport" id={id} value={key}
                       checked={s.transport == kind} {onchange} />
                <span class="choice-title">{ title }
                    if unavailable { <span class="badge warn">{"not in this browser"}</span> }
                </span>
                <span class="choice-text">{ text }</span>
            </label>
        }
    };
    let on_layout = {
        let f = set(|s, v| s.layout = SimLayout::from_key(&v).unwrap_or(SimLayout::BytecodeOnly));
        Callback::from(move |e: Event| f(e.target_unchecked_into::<HtmlInputElement>().value()))
    };
    let on_baud = {
        let f = set(|s, v| s.baud = v.parse().unwrap_or(s.baud));
        Callback::from(move |e: Event| f(e.target_unchecked_into::<HtmlSelectElement>().value()))
    };
    let on_negotiate = {
        let f = set(|s, v| s.negotiate = v == "on");
        Callback::from(move |e: Event| {
            let on = e.target_unchecked_into::<HtmlInputElement>().checked();
            f(if on { "on".into() } else { "off".into() })
        })
    };
    let on_url = {
        let f = set(|s, v| s.ws_url = v);
        Callback::from(move |e: InputEvent| {
            f(e.target_unchecked_into::<HtmlInputElement>().value())
        })
    };
    let on_submit = {
        let cb = props.on_connect.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            cb.emit(());
        })
    };
    let blocked = s.transport == TransportKind::Serial && !props.web_serial;
    let negotiate = html! {
        <label class="check">
            <input type="checkbox" checked={s.negotiate} onchange={on_negotiate} />
            {"Raise the baud rate after connecting (921600, 460800 or 230400, whatever the device and the cable manage)"}
        </label>
    };
    html! {
        <form class="connect" onsubmit={on_submit} aria-labelledby="connect-title">
            <h2 id="connect-title">{"Connect to the device"}</h2>
            <fieldset class="choices">
                <legend>{"How is the device reached?"}</legend>
                { radio(TransportKind::Sim, "Simulated device", html!{
                    {"A device simulated in this page, with a serial line at a real baud rate: try the whole update with no hardware."}
                }) }
                { radio(TransportKind::Serial, "USB serial (Web Serial)", html!{
                    {"A device plugged into this computer: the browser asks which port."}
                }) }
                { radio(TransportKind::WebSocket, "WebSocket bridge", html!{
                    <>{"A device on another computer, or for browsers without Web Serial: "}<code>{"fota bridge --ws"}</code></>
                }) }
            </fieldset>

            <div class="options">
            { match s.transport {
                TransportKind::Sim => html! {
                    <>
                    <fieldset class="inline">
                        <legend>{"Flash layout"}</legend>
                        <label class="check"><input type="radio" name="layout" value="bytecode"
                            checked={s.layout == SimLayout::BytecodeOnly} onchange={on_layout.clone()} />
                            {"Bytecode only (VM | bytecode 0 | bytecode 1 | record)"}</label>
                        <label class="check"><input type="radio" name="layout" value="vm"
                            checked={s.layout == SimLayout::VmAndBytecode} onchange={on_layout.clone()} />
                            {"VM + bytecode (VM 0 | bytecode 0 | VM 1 | bytecode 1 | record)"}</label>
                        <label class="check"><input type="radio" name="layout" value="microbit"
                            checked={s.layout == SimLayout::MicrobitLike} onchange={on_layout} />
                            {"micro:bit-like (VM + bytecode, 256 KiB VM slots: takes a MicroPython runtime)"}</label>
                    </fieldset>
                    { negotiate }
                    if props.sim_parked {
                        <p class="hint">{"The simulated device keeps what was flashed to it between connections, like a board on your desk. "}
                            <button type="button" class="btn small ghost" onclick={props.on_factory_reset.reform(|_: MouseEvent| ())}>
                                {"Reset it to factory firmware"}</button></p>
                    }
                    </>
                },
                TransportKind::Serial => html! {
                    <>
                    if !props.web_serial { <NoWebSerial /> }
                    <div class="field">
                        <label for="baud">{"Baud rate to open the port at"}</label>
                        <select id="baud" onchange={on_baud} disabled={!props.web_serial}>
                            { for BAUD_RATES.iter().map(|&b| html! {
                                <option value={b.to_string()} selected={b == s.baud}>
                                    { if b == 115_200 { format!("{b} (the agent's rate after reset)") } else { b.to_string() } }
                                </option>
                            }) }
                        </select>
                    </div>
                    { negotiate }
                    </>
                },
                TransportKind::WebSocket => html! {
                    <>
                    <div class="field">
                        <label for="ws-url">{"Bridge address"}</label>
                        <input id="ws-url" type="text" inputmode="url" value={s.ws_url.clone()} oninput={on_url}
                               spellcheck="false" autocomplete="off" placeholder="ws://127.0.0.1:9000" />
                    </div>
                    <p class="hint">{"Start it with "}<code>{"fota bridge --ws 127.0.0.1:9000 --port /dev/ttyUSB0"}</code>
                        {" (or "}<code>{"fota sim --ws 127.0.0.1:9000"}</code>{" for a simulated device), and paste the address it prints; its "}
                        <code>{"?token=…"}</code>{" may stay. The bridge accepts this page only from its own origins ("}
                        <code>{"http://127.0.0.1:8080"}</code>{", "}<code>{"http://localhost:8080"}</code>
                        {") or one given with "}<code>{"--allow-origin"}</code>{"."}</p>
                    </>
                },
            } }
            </div>

            <div class="actions">
                <button type="submit" class="btn primary" disabled={props.opening || blocked}>
                    { if props.opening { "Connecting…" } else { "Connect" } }
                </button>
                if props.opening && s.transport == TransportKind::WebSocket {
                    <button type="button" class="btn ghost" onclick={props.on_cancel.reform(|_: MouseEvent| ())}>{"Cancel"}</button>
                }
            </div>
        </form>
    }
}
