//! The root component: it owns the state (a reducer) and the effects, draws the
//! components with plain data, and hands what they ask for to the effects.

use fota_host::protocol::SlotKind;
use web_sys::DragEvent;
use yew::prelude::*;

use crate::components::Intent;
use crate::components::device::DevicePanel;
use crate::components::flow::Flow;
use crate::components::log::LogPanel;
use crate::components::stepper::Stepper;
use crate::effects::{self, Effects};
use crate::handoff;
use crate::session::Dispatch;
use crate::state::{Action, AppState, Conn, Stage, TransportKind};
use crate::transport::serial::web_serial;
use crate::transport::{now_ms, sim};

#[function_component(App)]
pub fn app() -> Html {
    let state = use_reducer(|| {
        let serial = web_serial().is_some();
        // The form as the user left it on the first screen (Web Serial picked there in a
        // browser without it shows what to do instead), else as the last visit left it.
        let settings = handoff::settings().unwrap_or_else(|| {
            let mut saved = effects::load_settings();
            if saved.transport == TransportKind::Serial && !serial {
                saved.transport = TransportKind::Sim;
            }
            saved
        });
        AppState::new(settings, serial)
    });
    let fx = {
        let dispatcher = state.dispatcher();
        use_memo((), move |_| Effects::new(Dispatch::new(dispatcher)))
    };
    {
        let fx = fx.clone();
        let state = state.clone();
        use_effect_with((), move |_| {
            // Drawn: the first screen goes (the focus moves to the same control here),
            // and a Connect clicked there is carried out now, with the port the user
            // picked there for Web Serial. Before any paint: no visual jump.
            let handed = handoff::hand_over();
            if let Some(p) = web_sys::window().and_then(|w| w.performance()) {
                let _ = p.mark("fota-app");
            }
            if let Some(root) = gloo::utils::document().document_element() {
                let _ = root.set_attribute("data-app", "1");
            }
            // The form as it is now (the user may have changed it while the app drew).
            let mut now = (*state).clone();
            if let Some(settings) = handed.settings
                && settings != now.settings
            {
                now.settings = settings.clone();
                fx.handle(&now, Intent::Do(Action::Settings(settings)));
            }
            if handed.connect {
                if let Some(port) = handed.port {
                    crate::transport::serial::hand_over_port(port);
                }
                fx.handle(&now, Intent::Connect);
            }
        });
    }
    use_effect_with(state.settings.clone(), effects::save_settings);
    // `?manifest=URL`: the firmware a site offers.
    {
        let fx = fx.clone();
        use_effect_with((), move |_| {
            if let Some(url) = effects::manifest_param() {
                fx.load_manifest(url);
            }
        });
    }
    // Its images for the connected device's layout, fetched and checked once per layout.
    {
        let fx = fx.clone();
        let st = state.clone();
        let key = (
            state.manifest().is_some(),
            state.manifest_layout(),
            state.manifest_for,
        );
        use_effect_with(key, move |_| fx.fetch_manifest_images(&st));
    }
    // Images loaded (a manifest's or the user's) and nothing to decide in the record: does
    // the device run them already?
    {
        let fx = fx.clone();
        let st = state.clone();
        use_effect_with(state.installed_check_due(), move |ready| {
            if *ready {
                fx.check_installed(&st);
            }
        });
    }
    // Leaving the page during an update: the browser asks first.
    use_effect_with(state.running(), |running| {
        let guard = running.then(effects::guard_unload);
        move || drop(guard)
    });
    // Keyboard focus follows the step: after Connect, each Continue and the end of an
    // update it goes to the new step's first control instead of the page's body.
    {
        // Not on every step of a run: the user may be on its Cancel button.
        let key = (
            (!state.running()).then_some(state.stage),
            state.finish.is_some(),
            matches!(state.conn, Conn::Open(_)),
            // The record step's Continue is enabled once the record is read.
            state.record.is_some(),
        );
        let first = use_mut_ref(|| true);
        use_effect_with(key, move |_| {
            if !std::mem::replace(&mut *first.borrow_mut(), false) {
                effects::focus_step();
            }
        });
    }

    // While a configuration runs on trial, the record panel's clock moves: five times a
    // second, as a device's deadline (1.5 s in the simulator) counts down in tenths.
    let redraw = use_force_update();
    {
        use_effect_with(state.trial_since_ms.is_some(), move |on_trial| {
            let interval = on_trial
                .then(|| gloo::timers::callback::Interval::new(200, move || redraw.force_update()));
            move || drop(interval)
        });
    }

    let on = {
        let state = state.clone();
        let fx = fx.clone();
        Callback::from(move |intent: Intent| fx.handle(&state, intent))
    };
    let dispatch = {
        let on = on.clone();
        move |a: Action| on.emit(Intent::Do(a))
    };
    let on_drag_over = {
        let dragging = state.dragging;
        let dispatch = dispatch.clone();
        Callback::from(move |e: DragEvent| {
            e.prevent_default();
            if let Some(dt) = e.data_transfer() {
                dt.set_drop_effect("copy");
            }
            if !dragging {
                dispatch(Action::Dragging(true));
            }
        })
    };
    let on_drag_leave = {
        let dispatch = dispatch.clone();
        Callback::from(move |e: DragEvent| {
            // Only when the pointer leaves the window, not when it crosses a child.
            if e.related_target().is_none() {
                dispatch(Action::Dragging(false));
            }
        })
    };
    let on_drop = {
        let on = on.clone();
        Callback::from(move |e: DragEvent| {
            let taken = e.default_prevented(); // an image card took the file
            e.prevent_default();
            on.emit(Intent::Do(Action::Dragging(false)));
            if taken {
                return;
            }
            let Some(list) = e.data_transfer().and_then(|d| d.files()) else {
                return;
            };
            for i in 0..list.length() {
                if let Some(f) = list.get(i) {
                    on.emit(Intent::File(None, f));
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
    let choosing = state.stage >= Stage::Image && state.stage <= Stage::Slot;
    let (writing, targets) = match (busy, choosing) {
        (true, _) => (chosen, vec![]),
        (false, true) => (vec![], chosen),
        (false, false) => (vec![], vec![]),
    };
    let ask = |i: fn() -> Intent| on.reform(move |_: ()| i());
    let disconnect = on.reform(|_: MouseEvent| Intent::Disconnect);
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
                <Stepper marks={state.marks()} />
                <div class="columns">
                    <section class="card flow" id="flow" aria-live="off">
                        <Flow state={(*state).clone()} on={on.clone()}
                              sim_parked={sim::has_parked(state.settings.layout)}
                              now_ms={now_ms() as u64} />
                    </section>
                    <aside class="side">
                        <DevicePanel
                            info={conn.map(|c| c.info.clone())}
                            link={conn.map(|c| AttrValue::from(c.link.clone()))}
                            baud={conn.and_then(|c| c.baud)}
                            record={state.record}
                            stale={state.record_stale}
                            {writing} {targets} {busy}
                            trial={state.trial(now_ms() as u64)}
                            on_refresh={ask(|| Intent::Refresh)}
                            on_accept={ask(|| Intent::Accept)}
                            on_restart={ask(|| Intent::Restart)} />
                    </aside>
                </div>
                <LogPanel log={state.log.clone()} on_clear={on.reform(|_| Intent::Do(Action::ClearLog))} />
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
