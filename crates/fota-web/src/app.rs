//! The root component, and the few things the page does that are more than an action:
//! connecting, reading files, starting an update.

use fota_host::protocol::SlotKind;
use fota_host::{Image, Plan};
use wasm_bindgen_futures::spawn_local;
use web_sys::{DragEvent, File};
use yew::prelude::*;

use crate::components::device::DevicePanel;
use crate::components::flow::Flow;
use crate::components::images::Sample;
use crate::components::log::LogPanel;
use crate::components::stepper::Stepper;
use crate::session::{self, Command};
use crate::state::{
    Action, AppState, Cancel, Conn, Finish, ImageFile, Problem, Settings, TransportKind,
};
use crate::transport::serial::web_serial;

pub type Handle = UseReducerHandle<AppState>;

/// Connect with the settings in force.
pub fn connect(state: &Handle) {
    if matches!(state.conn, Conn::Opening | Conn::Open(_)) {
        return;
    }
    spawn_local(session::connect(state.settings.clone(), state.dispatcher()));
}

/// Ask the connection task to do something.
pub fn send(state: &Handle, command: Command) {
    if let Some(c) = state.connection() {
        c.session.send(command);
    }
}

/// Read a file the user picked or dropped. `kind` is the zone it went to; a file dropped
/// elsewhere goes where its header says (a sample VM image) or to the bytecode.
pub fn load_file(dispatch: UseReducerDispatcher<AppState>, kind: Option<SlotKind>, file: File) {
    spawn_local(async move {
        let name = file.name();
        let blob = gloo::file::Blob::from(file);
        match gloo::file::futures::read_as_bytes(&blob).await {
            Ok(bytes) => {
                let image = ImageFile::new(name, bytes);
                let kind = kind
                    .or_else(|| image.header.as_ref().map(|h| h.kind))
                    .unwrap_or(SlotKind::Bytecode);
                dispatch.dispatch(Action::ImageLoaded(kind, image));
            }
            Err(e) => dispatch.dispatch(Action::ImageRefused(Problem {
                message: format!("{name} could not be read: {e}."),
                help: "Choose the file again; if it is on a network drive or in a sync folder, \
                       copy it to this computer first."
                    .into(),
            })),
        }
    });
}

pub fn load_sample(dispatch: &UseReducerDispatcher<AppState>, sample: Sample) {
    dispatch.dispatch(Action::ImageLoaded(sample.kind(), sample.image()));
}

/// Start the update of the chosen images with the chosen options.
pub fn start_update(state: &Handle) {
    if !state.ready_to_flash() || state.running() {
        return;
    }
    let Some(bc) = &state.bytecode else { return };
    let image = |f: &ImageFile| Image::new(f.name.clone(), f.data.as_ref().clone());
    let bytecode = match image(bc) {
        Ok(i) => i,
        Err(e) => return state.dispatch(Action::ImageRefused((&e).into())),
    };
    let mut plan = Plan::new(bytecode);
    plan.vm = match state.vm.as_ref().map(image).transpose() {
        Ok(vm) => vm,
        Err(e) => return state.dispatch(Action::ImageRefused((&e).into())),
    };
    plan.bytecode_slot = state.bc_slot;
    plan.vm_slot = state.vm_slot;
    plan.restart = state.restart;
    plan.resume = state.resume;
    // Faulty firmware is restarted by its watchdog after a few seconds; give the revert
    // time to show.
    plan.wait_accept = core::time::Duration::from_secs(20);
    let cancel = Cancel::default();
    state.dispatch(Action::UpdateStarted(cancel.clone()));
    send(state, Command::Update(Box::new(plan), cancel.token()));
}

pub fn cancel_update(state: &Handle) {
    state.dispatch(Action::Cancelling);
}

const SETTINGS_KEY: &str = "fota-web.settings";

fn storage() -> Option<web_sys::Storage> {
    web_sys::window().and_then(|w| w.local_storage().ok().flatten())
}

/// The settings saved by the last visit; defaults for anything missing or unreadable.
fn load_settings() -> Settings {
    storage()
        .and_then(|st| st.get_item(SETTINGS_KEY).ok().flatten())
        .and_then(|text| js_sys::JSON::parse(&text).ok())
        .and_then(|value| serde_wasm_bindgen::from_value(value).ok())
        .unwrap_or_default()
}

fn save_settings(s: &Settings) {
    let Some(text) = serde_wasm_bindgen::to_value(s)
        .ok()
        .and_then(|value| js_sys::JSON::stringify(&value).ok())
        .and_then(|text| text.as_string())
    else {
        return;
    };
    if let Some(st) = storage() {
        let _ = st.set_item(SETTINGS_KEY, &text);
    }
}

#[function_component(App)]
pub fn app() -> Html {
    let state = use_reducer(|| {
        let mut settings = load_settings();
        let serial = web_serial().is_some();
        if settings.transport == TransportKind::Serial && !serial {
            settings.transport = TransportKind::Sim;
        }
        AppState::new(settings, serial)
    });
    use_effect_with((), |_| {
        // Marks the first usable screen (the tests measure it).
        if let Some(p) = web_sys::window().and_then(|w| w.performance()) {
            let _ = p.mark("fota-ready");
        }
        let doc = gloo::utils::document();
        if let Some(boot) = doc.get_element_by_id("boot") {
            boot.remove();
        }
        if let Some(root) = doc.document_element() {
            let _ = root.set_attribute("data-ready", "1");
        }
    });
    use_effect_with(state.settings.clone(), save_settings);

    let dispatch = state.dispatcher();
    let on_drag_over = {
        let state = state.clone();
        Callback::from(move |e: DragEvent| {
            e.prevent_default();
            if let Some(dt) = e.data_transfer() {
                dt.set_drop_effect("copy");
            }
            if !state.dragging {
                state.dispatch(Action::Dragging(true));
            }
        })
    };
    let on_drag_leave = {
        let dispatch = dispatch.clone();
        Callback::from(move |e: DragEvent| {
            // Only when the pointer leaves the window, not when it crosses a child.
            if e.related_target().is_none() {
                dispatch.dispatch(Action::Dragging(false));
            }
        })
    };
    let on_drop = {
        let dispatch = dispatch.clone();
        Callback::from(move |e: DragEvent| {
            let taken = e.default_prevented(); // an image card took the file
            e.prevent_default();
            dispatch.dispatch(Action::Dragging(false));
            if taken {
                return;
            }
            let Some(list) = e.data_transfer().and_then(|d| d.files()) else {
                return;
            };
            for i in 0..list.length() {
                if let Some(f) = list.get(i) {
                    load_file(dispatch.clone(), None, f);
                }
            }
        })
    };

    let conn = state.connection();
    let busy = state.running();
    // The slots the chosen images go to: drawn as "being written" while an update runs,
    // as "new image" while the user picks images and slots.
    let chosen: Vec<_> = [SlotKind::Bytecode, SlotKind::Vm]
        .into_iter()
        .filter(|k| state.image(*k).is_some())
        .filter_map(|k| state.target(k))
        .collect();
    let choosing =
        state.stage >= crate::state::Stage::Image && state.stage <= crate::state::Stage::Slot;
    let (writing, targets) = match (busy, choosing) {
        (true, _) => (chosen, vec![]),
        (false, true) => (vec![], chosen),
        (false, false) => (vec![], vec![]),
    };
    let cmd = |c: fn() -> Command| {
        let state = state.clone();
        Callback::from(move |_| send(&state, c()))
    };
    let failed = matches!(state.finish, Some(Finish::Failed(_))) && !busy;
    let finished = matches!(state.finish, Some(Finish::Done(_))) && !busy;
    let disconnect = {
        let state = state.clone();
        Callback::from(move |_: MouseEvent| send(&state, Command::Disconnect))
    };
    let status = match &state.conn {
        Conn::Open(c) => html! {
            <div class="conn">
                <span class="pill good" data-testid="conn-status">
                    <span class="dot" aria-hidden="true"></span>
                    { format!("Connected: {}{}", c.link, c.baud.map(|b| format!(" · {b} baud")).unwrap_or_default()) }
                </span>
                <button type="button" class="btn small ghost" onclick={disconnect} disabled={busy}
                        aria-label="Disconnect from the device">{"Disconnect"}</button>
            </div>
        },
        Conn::Opening => {
            html! { <span class="pill" data-testid="conn-status">{"Connecting…"}</span> }
        }
        Conn::Closed => {
            html! { <span class="pill off" data-testid="conn-status">{"Not connected"}</span> }
        }
    };

    html! {
        <div class={classes!("app", state.dragging.then_some("dragging"))}
             ondragover={on_drag_over} ondragleave={on_drag_leave} ondrop={on_drop}>
            <a class="skip" href="#flow">{"Skip to the update"}</a>
            <header class="top">
                <div class="brand">
                    <span class="logo" aria-hidden="true">{"⟳"}</span>
                    <div>
                        <h1>{"FOTA web updater"}</h1>
                        <p class="tagline">{"Update a device's firmware from the browser: verified before it switches, reverted if the new firmware does not confirm itself."}</p>
                    </div>
                </div>
                { status }
            </header>
            <main>
                <Stepper stage={state.stage} {failed} {finished} />
                <div class="columns">
                    <section class="card flow" id="flow" aria-live="off">
                        <Flow state={state.clone()} />
                    </section>
                    <aside class="side">
                        <DevicePanel
                            info={conn.map(|c| c.info.clone())}
                            link={conn.map(|c| AttrValue::from(c.link.clone()))}
                            baud={conn.and_then(|c| c.baud)}
                            record={state.record}
                            stale={state.record_stale}
                            {writing} {targets} {busy}
                            on_refresh={cmd(|| Command::Refresh)}
                            on_accept={cmd(|| Command::Accept)}
                            on_restart={cmd(|| Command::Restart)} />
                    </aside>
                </div>
                <LogPanel log={state.log.clone()} on_clear={{ let d = dispatch.clone(); Callback::from(move |_| d.dispatch(Action::ClearLog)) }} />
            </main>
            <footer>
                <p>{"Runs entirely in this page: images never leave your computer. Every control works from the keyboard."}</p>
            </footer>
            <div class="sr-only" aria-live="polite" aria-atomic="true" data-testid="announce">{ state.announce.clone() }</div>
            if state.dragging {
                <div class="drop-overlay" aria-hidden="true"><p>{"Drop the image to load it"}</p></div>
            }
        </div>
    }
}
