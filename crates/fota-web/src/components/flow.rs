//! The main card: what the user does at each stage of the guided update.

use fota_host::protocol::Layout as _;
use fota_host::protocol::{RecordState, SlotKind};
use fota_host::{Outcome, SlotChoice, SlotRole, Step};
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use super::connect::ConnectPanel;
use super::images::ImageCard;
use super::progress::{ProgressView, duration};
use super::{Intent, ProblemBox, images::Sample};
use crate::state::{
    Action, AppState, Conn, Finish, Installed, ManifestState, Stage, hex, kind_name, resumed_text,
    size,
};

#[derive(Properties, PartialEq)]
pub struct FlowProps {
    pub state: AppState,
    pub on: Callback<Intent>,
    /// The simulated device with the chosen layout kept its flash from a past connection.
    pub sim_parked: bool,
    /// The page's clock when drawn (ms), for the time elapsed.
    pub now_ms: u64,
}

#[function_component(Flow)]
pub fn flow(props: &FlowProps) -> Html {
    if props.state.running() {
        return running(props);
    }
    match props.state.stage {
        Stage::Connect => connect(props),
        Stage::Record => record(props),
        Stage::Image => images(props),
        Stage::Slot | Stage::Transfer | Stage::Checksum | Stage::Attempt => slot(props),
        Stage::Outcome => outcome(props),
    }
}

fn goto(props: &FlowProps, stage: Stage) -> Callback<MouseEvent> {
    act(props, Action::Goto(stage))
}

/// A button's click that dispatches `action`.
fn act(props: &FlowProps, action: Action) -> Callback<MouseEvent> {
    props.on.reform(move |_| Intent::Do(action.clone()))
}

/// A button's click that asks for `intent`.
fn ask(props: &FlowProps, intent: fn() -> Intent) -> Callback<MouseEvent> {
    props.on.reform(move |_| intent())
}

/// The firmware a manifest (`?manifest=`) offers, and how its images fared.
fn offer(props: &FlowProps) -> Html {
    let state = &props.state;
    let Some(m) = &state.manifest else {
        return html! {};
    };
    let again = html! {
        <div class="actions">
            <button type="button" class="btn" onclick={ask(props, || Intent::FetchAgain)}>{"Fetch again"}</button>
        </div>
    };
    let body = match m {
        ManifestState::Loading(url) => html! {
            <p class="muted">{ format!("Loading the firmware manifest {url}…") }</p>
        },
        ManifestState::Failed(p) => html! {
            <>
            <ProblemBox problem={p.clone()} title="The firmware manifest cannot be used" />
            { again.clone() }
            </>
        },
        ManifestState::Loaded(m) => {
            let layout = state.manifest_layout();
            let mine = layout.map(|l| m.for_layout(l)).unwrap_or_default();
            let loaded = !mine.is_empty()
                && mine.iter().all(|e| {
                    state
                        .image(e.kind)
                        .is_some_and(|i| i.manifest_sha256 == Some(e.sha256))
                });
            let status = match (&state.manifest_problem, layout, loaded) {
                (Some(p), _, _) => html! {
                    <>
                    <ProblemBox problem={p.clone()} title="The firmware from the manifest was refused" />
                    { again.clone() }
                    </>
                },
                (None, None, _) => html! {
                    <p class="muted small">{ format!("Images for the {} layout{}: the one for the device is fetched and checked once it is connected.",
                        m.layouts().join(" and "), if m.layouts().len() == 1 { "" } else { "s" }) }</p>
                },
                (None, Some(_), true) => html! {
                    <p class="status good" data-testid="manifest-checked">{"Fetched and checked: the size and SHA-256 of each image match the manifest."}</p>
                },
                (None, Some(l), false) => html! {
                    <p class="muted small">{ format!("Fetching the {} layout's images and checking them against the manifest…", l.key()) }</p>
                },
            };
            html! {
                <>
                <p><strong data-testid="manifest-name">{ format!("{} {}", m.name, m.version) }</strong>
                   <span class="muted small">{ format!(" from {}", m.url) }</span></p>
                if let Some(d) = &m.description { <p class="muted small">{ d }</p> }
                <ul class="offer-list">
                    { for m.images.iter().filter(|e| layout.is_none_or(|l| l == e.layout)).map(|e| html! {
                        <li>{ format!("{} image for the {} layout: {}, {}", kind_name(e.kind), e.layout.key(), e.file_name(), size(e.size)) }
                            <code class="md5" title="SHA-256 given by the manifest">{ format!(" SHA-256 {}", hex(&e.sha256)) }</code></li>
                    }) }
                </ul>
                { status }
                </>
            }
        }
    };
    html! {
        <div class="offer" data-testid="manifest">
            <h3>{"Firmware offered"}</h3>
            { body }
        </div>
    }
}

/// The device runs the chosen firmware already: said above the step's buttons.
fn installed(props: &FlowProps) -> Html {
    let state = &props.state;
    let name = state.installed_name();
    let reinstall = act(props, Action::Reinstall);
    match state.installed {
        Some(Installed::Same) => html! {
            <div class="status good" data-testid="installed-same">
                <p><strong>{ format!("{name} is already installed.") }</strong>{" The device's running slots hold the same images (the device's MD5 of them matches): there is nothing to update."}</p>
                <div class="actions">
                    <button type="button" class="btn" onclick={reinstall}>{"Install again anyway"}</button>
                </div>
            </div>
        },
        _ => html! {},
    }
}

/// While the device is asked whether it runs the chosen firmware already: a line BELOW
/// the step's buttons. The answer usually comes within tens of milliseconds; above them,
/// the line would move the buttons down and back up under a pointer about to click.
fn checking(props: &FlowProps) -> Html {
    let state = &props.state;
    if state.installed != Some(Installed::Asking) {
        return html! {};
    }
    let name = state.installed_name();
    html! {
        <p class="muted small" data-testid="installed-asking">{ format!("Checking whether the device runs {name} already (its MD5 of the running slots)…") }</p>
    }
}

/// Images older than the device's minimum version: a confirmation where the device allows
/// downgrades (fota-host's check says which), what was confirmed once it is.
fn downgrades(props: &FlowProps, kinds: &[SlotKind]) -> Html {
    let state = &props.state;
    let on_confirm = props.on.reform(|e: Event| {
        Intent::Do(Action::AllowDowngrade(
            e.target_unchecked_into::<HtmlInputElement>().checked(),
        ))
    });
    let asks: Vec<(SlotKind, String, String)> = kinds
        .iter()
        .filter_map(|&k| {
            state
                .downgrade_ask(k)
                .or_else(|| state.downgrade_confirmed(k))
                .map(|(v, min)| (k, v, min))
        })
        .collect();
    if asks.is_empty() {
        return html! {};
    }
    html! {
        <div class="status warn" data-testid="downgrade">
            { for asks.iter().map(|(k, v, min)| html! {
                <p><strong>{ format!("Downgrade: the {} image is version {v}, older than the {min} this device runs at least.", kind_name(*k).to_ascii_lowercase()) }</strong>
                   {" The device allows it only when you confirm it; the older version then becomes its minimum once it confirms itself."}</p>
            }) }
            <label class="check"><input type="checkbox" data-testid="allow-downgrade" checked={state.allow_downgrade} onchange={on_confirm} />
                {"Install the older version (confirm the downgrade)"}</label>
        </div>
    }
}

fn connect(props: &FlowProps) -> Html {
    let state = &props.state;
    let on_change = props.on.reform(|s| Intent::Do(Action::Settings(s)));
    let on_connect = props.on.reform(|_| Intent::Connect);
    let on_cancel = props.on.reform(|_| Intent::CancelConnect);
    let on_factory_reset = props.on.reform(|_| Intent::FactoryReset);
    let sim_parked = props.sim_parked;
    html! {
        <>
        if let Some(p) = &state.problem {
            <ProblemBox problem={p.clone()} title={state.problem_title} />
        }
        { offer(props) }
        <ConnectPanel settings={state.settings.clone()} web_serial={state.web_serial}
            opening={matches!(state.conn, Conn::Opening)} {on_change} {on_connect} {on_cancel} {sim_parked} {on_factory_reset} />
        </>
    }
}

fn record(props: &FlowProps) -> Html {
    let state = &props.state;
    let Some(c) = state.connection() else {
        return connect(props);
    };
    let info = &c.info;
    let record = state.record;
    let resume = ask(props, || Intent::Start);
    let can_resume = matches!(
        state.finish,
        Some(Finish::Failed { .. } | Finish::Cancelled { .. })
    ) && state.ready_to_flash();
    let verdict = match record {
        None => html! { <p class="muted">{"Reading the FOTA record…"}</p> },
        Some(r) if r.valid == 0 => html! {
            <p class="status bad" data-testid="record-invalid">{ format!("{} {}",
                fota_host::HostError::InvalidRecord, fota_host::HostError::InvalidRecord.help()) }</p>
        },
        Some(r) if r.state == RecordState::Pending => html! {
            <p class="status warn" data-testid="record-pending">{ format!("An attempt of bytecode slot {} with VM slot {} is pending: it has never run and is tried at the next restart. Flashing another image replaces it; flashing the same image finishes that update.", r.bc_current, r.vm_current) }</p>
        },
        Some(r) if r.state == RecordState::Trial => html! {
            <p class="status warn" data-testid="record-trial">{ format!("A new configuration runs on trial (bytecode slot {}, VM slot {}) and is never overwritten. Accept it or restart the device to go back (buttons beside), then update; the same image only waits for its outcome.", r.bc_current, r.vm_current) }</p>
        },
        Some(r) if !r.runs_current() => html! {
            <p class="status warn" data-testid="record-not-running">{ format!("The record names bytecode slot {} with VM slot {}, which starts at the next restart; bytecode slot {} with VM slot {} runs now. Restart the device before updating.", r.bc_current, r.vm_current, r.running_bc, r.running_vm) }</p>
        },
        Some(r) => html! {
            <p class="status good" data-testid="record-ok">{ format!("The record is valid and the running configuration is confirmed: bytecode slot {} with VM slot {}. The device is ready for an update.", r.bc_current, r.vm_current) }</p>
        },
    };
    html! {
        <>
        <h2>{"Record check"}</h2>
        if !info.fota_supported {
            <ProblemBox problem={crate::state::problem_of(&fota_host::HostError::Unsupported)} title="This device cannot be updated" />
        }
        <p>{ format!("Connected to {} over {}. Its flash has {} bytecode slot{} and {} VM slot{}.",
            info.name, c.link,
            info.count(SlotKind::Bytecode), if info.count(SlotKind::Bytecode) == 1 { "" } else { "s" },
            info.count(SlotKind::Vm), if info.count(SlotKind::Vm) == 1 { "" } else { "s" }) }</p>
        { verdict }
        { offer(props) }
        { installed(props) }
        if can_resume {
            <div class="notice">
                <p>{"The last update stopped before it finished. Flashing the same image again sends only what is not on the device yet."}</p>
                <button type="button" class="btn primary" onclick={resume}>{"Resume the update"}</button>
            </div>
        }
        <div class="actions">
            <div class="spacer"></div>
            <button type="button" class="btn primary" onclick={goto(props, Stage::Image)}
                    disabled={record.is_none_or(|r| r.valid == 0) || !info.fota_supported}>{"Continue: choose the image"}</button>
        </div>
        { checking(props) }
        </>
    }
}

fn images(props: &FlowProps) -> Html {
    let state = &props.state;
    let on_file = props.on.reform(|(kind, file)| Intent::File(kind, file));
    let on_sample = props
        .on
        .reform(|s: Sample| Intent::Do(Action::ImageLoaded(s.kind(), s.image())));
    let on_clear = props.on.reform(|k| Intent::Do(Action::ClearImage(k)));
    let on_previous = props.on.reform(|(kind, file)| Intent::Previous(kind, file));
    let on_clear_previous = props.on.reform(|k| Intent::Do(Action::ClearPrevious(k)));
    let card = |kind: SlotKind| {
        let image = state.image(kind).cloned();
        let refusal = image
            .as_ref()
            .and_then(|i| state.refusal(kind, i))
            .or_else(|| {
                state
                    .blocker(kind)
                    .filter(|_| state.downgrade_ask(kind).is_none())
            })
            .map(|p| format!("{} {}", p.message, p.help));
        let delta = state
            .info()
            .is_some_and(|i| i.supports(fota_host::protocol::codec::LZMA_DELTA));
        html! {
            <ImageCard {kind} {image} target={state.target(kind)} {refusal}
                on_file={on_file.clone()} on_sample={on_sample.clone()} on_clear={on_clear.clone()}
                previous={state.previous(kind).cloned()} {delta}
                downgrade={state.downgrade_ask(kind).map(|(v, min)| format!("Version {v} is older than the {min} this device runs at least: a downgrade, which the device allows once you confirm it in the next step."))}
                on_previous={on_previous.clone()} on_clear_previous={on_clear_previous.clone()} />
        }
    };
    html! {
        <>
        <h2>{"Choose the image"}</h2>
        <p class="muted">{"Drop a file anywhere on the page, choose one, or load a built-in sample."}</p>
        if let Some(p) = &state.image_problem {
            <ProblemBox problem={p.clone()} title="This image cannot be used" />
        }
        { offer(props) }
        <div class="image-cards">
            { card(SlotKind::Bytecode) }
            if state.takes_vm() { { card(SlotKind::Vm) } }
        </div>
        if !state.takes_vm() && state.connection().is_some() {
            <p class="muted small">{"This device's layout has one VM slot: only the bytecode can be updated."}</p>
        }
        { installed(props) }
        <div class="actions">
            <button type="button" class="btn ghost" onclick={goto(props, Stage::Record)}>{"Back"}</button>
            <div class="spacer"></div>
            <button type="button" class="btn primary" onclick={goto(props, Stage::Slot)}
                    disabled={!state.ready_but_for_downgrade()}>{"Continue: check the slot"}</button>
        </div>
        { checking(props) }
        </>
    }
}

fn slot(props: &FlowProps) -> Html {
    let state = &props.state;
    let Some(info) = state.info() else {
        return connect(props);
    };
    let record = state.record.unwrap_or_default();
    let start = ask(props, || Intent::Start);
    // Images the device runs already are written again only when asked.
    let startable = state.ready_to_flash() && state.installed != Some(Installed::Same);
    let from_manifest = state.manifest_images_loaded();
    let check = |action: fn(bool) -> Action| {
        props.on.reform(move |e: Event| {
            Intent::Do(action(
                e.target_unchecked_into::<HtmlInputElement>().checked(),
            ))
        })
    };
    let kinds: Vec<SlotKind> = [SlotKind::Bytecode, SlotKind::Vm]
        .into_iter()
        .filter(|k| state.image(*k).is_some())
        .collect();
    let rows = kinds.iter().map(|&kind| {
        let img = state.image(kind).cloned().unwrap_or_else(|| Sample::Healthy.image());
        let target = state.target(kind);
        let choice = if kind == SlotKind::Vm { state.vm_slot } else { state.bc_slot };
        let on_choice = props.on.reform(move |e: Event| {
            let v = e.target_unchecked_into::<HtmlSelectElement>().value();
            let c = v.parse().map(SlotChoice::Index).unwrap_or(SlotChoice::Auto);
            Intent::Do(Action::SlotChoice(kind, c))
        });
        let select_id = format!("slot-{}", kind_name(kind).to_ascii_lowercase());
        let refusal = state.refusal(kind, &img).or_else(|| state.blocker(kind));
        let waits = state.downgrade_ask(kind).is_some();
        html! {
            <tr>
                <th scope="row">{ kind_name(kind) }
                    <span class="plan-file">{ format!("{}, {}", img.name, size(img.data.len() as u64)) }</span>
                    <span class="plan-file muted small" data-testid={format!("plan-facts-{}", kind_name(kind).to_ascii_lowercase())}>{ img.facts.summary() }</span>
                    <code class="md5 plan-md5" title="MD5 of the image">{ hex(&img.md5) }</code></th>
                <td>
                    <label class="sr-only" for={select_id.clone()}>{ format!("{} slot", kind_name(kind)) }</label>
                    <select id={select_id} onchange={on_choice} disabled={img.placed.is_some()}>
                        <option value="auto" selected={choice == SlotChoice::Auto}>{"Automatic (the free slot)"}</option>
                        { for info.slots.iter().filter(|s| s.kind == kind).map(|s| {
                            let i = u32::from(s.index);
                            let why = match fota_host::slot_role(info, &record, kind, i) {
                                Some(SlotRole::BootStage) => " (boot stage: never written)",
                                Some(SlotRole::Current) => " (current: protected)",
                                Some(SlotRole::LastWorking) => " (last working: protected)",
                                Some(SlotRole::Running) => " (running: protected)",
                                None => "",
                            };
                            html! { <option value={i.to_string()} disabled={!why.is_empty()} selected={choice == SlotChoice::Index(i)}>{ format!("Slot {i}{why}") }</option> }
                        }) }
                    </select>
                    { target.map(|t| html!{ <div class="muted small">{ format!("slot {} at 0x{:08X}, {}", t.index, t.addr, size(u64::from(t.size))) }</div> }).unwrap_or_default() }
                    if img.placed.is_some() {
                        <div class="muted small">{ format!("{} is linked for this slot: its addresses choose it.", img.name) }</div>
                    }
                </td>
                <td>{ match refusal {
                    None => html!{ <span class="badge good">{"fits"}</span> },
                    Some(_) if waits => html!{ <span class="badge warn">{"downgrade: confirm below"}</span> },
                    Some(p) => html!{ <span class="badge bad" title={p.help}>{ p.message }</span> },
                } }</td>
            </tr>
        }
    });
    html! {
        <>
        <h2>{"Check the slot"}</h2>
        if let (Some(m), true) = (state.manifest(), from_manifest) {
            <p class="status good" data-testid="manifest-ready">{ format!("{} {}: the record check passed and each image matches its manifest (size and SHA-256). Start the update when ready.", m.name, m.version) }</p>
        }
        <p>{"The new firmware goes to a free slot; the running and the last working firmware are never touched, so the device always has something to fall back to."}</p>
        <table class="plan">
            <thead><tr><th scope="col">{"Image"}</th><th scope="col">{"Slot"}</th><th scope="col">{"Fits?"}</th></tr></thead>
            <tbody>{ for rows }</tbody>
        </table>
        <p class="muted small" data-testid="device-rules"><strong>{"This device takes: "}</strong>{ fota_host::describe_rules(info.images.as_ref()) }{"."}</p>
        { for kinds.iter().filter(|&&k| state.downgrade_ask(k).is_none()).filter_map(|&k| state.blocker(k)).map(|p| html! {
            <ProblemBox problem={p} title="The device would refuse this image" />
        }) }
        { downgrades(props, &kinds) }
        { installed(props) }
        <fieldset class="options">
            <legend>{"Options"}</legend>
            <label class="check"><input type="checkbox" checked={state.resume} onchange={check(Action::SetResume)} />
                {"Resume: compare the slot with the image first and send only the sectors that differ"}</label>
            <label class="check"><input type="checkbox" checked={state.restart} onchange={check(Action::SetRestart)} />
                {"Restart into the new firmware when it is written and verified"}</label>
        </fieldset>
        <p class="muted small">{"The device's MD5 of the written slot must match the image before the new firmware is attempted. If the new firmware does not confirm itself after the restart, the device goes back to the one running now."}</p>
        <div class="actions">
            <button type="button" class="btn ghost" onclick={goto(props, Stage::Image)}>{"Back"}</button>
            <div class="spacer"></div>
            if from_manifest {
                // The one decision left: the keyboard focus goes here.
                <button type="button" class="btn primary" onclick={start} disabled={!startable} data-focus="">{"Start the update"}</button>
            } else {
                <button type="button" class="btn primary" onclick={start} disabled={!startable}>{"Start the update"}</button>
            }
        </div>
        { checking(props) }
        </>
    }
}

fn running(props: &FlowProps) -> Html {
    let state = &props.state;
    let Some(run) = &state.run else {
        return html! {};
    };
    let cancel = ask(props, || Intent::Cancel);
    let cancellable = run.step < Step::Restart && !run.cancelling;
    let sim = state
        .connection()
        .is_some_and(|c| c.kind == crate::state::TransportKind::Sim);
    let unplug = ask(props, || Intent::Unplug);
    let elapsed = props.now_ms.saturating_sub(run.started_ms);
    let md5s: Vec<String> = [SlotKind::Bytecode, SlotKind::Vm]
        .into_iter()
        .filter_map(|k| {
            state
                .image(k)
                .map(|i| format!("{}: {}", kind_name(k), hex(&i.md5)))
        })
        .collect();
    html! {
        <div class="running" data-testid="running">
            <h2 tabindex="-1" data-focus="">{ run.step.label() }</h2>
            <p class="detail" data-testid="step-detail">{ &run.detail }</p>
            if matches!(run.step, Step::Erase | Step::Stream | Step::Checksum | Step::RecordCheck | Step::SlotChoice) {
                <ProgressView progress={run.progress} />
            }
            if let Some((kept, total)) = run.resumed {
                <p class="status good" data-testid="resumed" data-bytes={kept.to_string()}
                   title={format!("{kept} of {total} bytes")}>{ format!("Resuming: {}.", resumed_text(kept, total)) }</p>
            }
            <div class={classes!("verify", run.verified.then_some("ok"))} data-testid="verify">
                if run.verified {
                    <p><span aria-hidden="true">{"✓ "}</span><strong>{"MD5 on the device matches the image"}</strong></p>
                } else {
                    <p><strong>{"Verification: "}</strong>{"the device's MD5 of the slot must match before the new firmware is attempted."}</p>
                }
                <ul class="md5-list">{ for md5s.iter().map(|m| html!{ <li><code class="md5">{ m }</code></li> }) }</ul>
            </div>
            if run.step >= Step::Restart {
                <p class="muted">{"The device restarts into the new firmware; waiting for it to come back and confirm itself."}</p>
            }
            <div class="actions">
                <span class="muted small">{ format!("{} elapsed", duration(elapsed as f64 / 1000.0)) }</span>
                <div class="spacer"></div>
                if sim && run.step <= Step::Checksum {
                    <button type="button" class="btn ghost" onclick={unplug}
                        title="Interrupt the transfer as if the USB cable were pulled, to see the next update resume">{"Pull the simulated cable"}</button>
                }
                <button type="button" class="btn danger" onclick={cancel} disabled={!cancellable}>
                    { if run.cancelling { "Cancelling…" } else { "Cancel" } }
                </button>
            </div>
        </div>
    }
}

fn outcome(props: &FlowProps) -> Html {
    let state = &props.state;
    let again = goto(props, Stage::Image);
    match &state.finish {
        Some(Finish::Done { report, why }) => {
            let (class, title, icon) = match report.outcome {
                Outcome::Accepted => ("good", "Accepted", "✓"),
                Outcome::Reverted => ("warn", "Reverted", "↺"),
                Outcome::OnTrial => ("warn", "Running on trial, not confirmed", "…"),
                Outcome::Attempted => ("info", "Written and verified", "✓"),
            };
            let total: u64 = report.targets.iter().map(|t| u64::from(t.len)).sum();
            let speed = if report.stream_time.as_secs_f64() > 0.0 {
                format!(
                    "{}/s",
                    size((report.sent_bytes as f64 / report.stream_time.as_secs_f64()) as u64)
                )
            } else {
                "—".into()
            };
            let reverted = report.outcome == Outcome::Reverted;
            html! {
                <div class={classes!("outcome", class)} data-testid="outcome" data-outcome={format!("{:?}", report.outcome).to_ascii_lowercase()}>
                    <div class="outcome-head">
                        <span class="outcome-icon" aria-hidden="true">{ icon }</span>
                        <h2 tabindex="-1" data-focus="">{ title }</h2>
                    </div>
                    <p class="describe">{ report.outcome.describe_with(&report.record) }</p>
                    if reverted {
                        <div class="why" data-testid="revert-why">
                            <p><strong>{"Why: "}</strong>{ match why {
                                Some(_) => "the new firmware did not confirm itself. Its last words before the device went back:",
                                None => "the new firmware did not confirm itself before its deadline, and printed nothing that says why.",
                            } }</p>
                            if let Some(line) = why { <pre><code>{ line }</code></pre> }
                            <p class="muted small">{"Flashing the same image again would end the same way: fix the firmware so that it calls accept() once it works, or choose another image. The whole device log is below."}</p>
                        </div>
                    }
                    <p>{ format!("The device now runs bytecode slot {} with VM slot {}{}.",
                        report.record.running_bc, report.record.running_vm,
                        match report.record.state {
                            RecordState::Trial => " (on trial)",
                            RecordState::Pending => " (the new firmware is tried at the next restart)",
                            RecordState::Confirmed => "",
                        }) }</p>
                    <dl class="facts">
                        { for report.targets.iter().map(|t| html!{
                            <div><dt>{ format!("{} slot {}", kind_name(t.slot.kind), t.slot.index) }</dt>
                                 <dd>{ format!("{} written at 0x{:08X}", size(u64::from(t.len)), t.slot.addr) }</dd></div>
                        }) }
                        <div><dt>{"Sent"}</dt><dd>{ format!("{} of {} at {}", size(report.sent_bytes), size(total), speed) }</dd></div>
                        if report.skipped_bytes > 0 {
                            <div><dt>{"Resumed"}</dt><dd data-testid="skipped" data-bytes={report.skipped_bytes.to_string()} title={format!("{} bytes", report.skipped_bytes)}>{ format!("{} were already on the device and were not sent again", size(report.skipped_bytes)) }</dd></div>
                        }
                        <div><dt>{"Verified"}</dt><dd>{"MD5 on the device matched the image"}</dd></div>
                        <div><dt>{"Time"}</dt><dd data-testid="times" title={report.describe_erases()}>{ format!("{} (first erase {}, stream with the other erases {}, checksum {})",
                            duration(report.total_time.as_secs_f64()), duration(report.erase_time.as_secs_f64()),
                            duration(report.stream_time.as_secs_f64()), duration(report.checksum_time.as_secs_f64())) }</dd></div>
                    </dl>
                    <div class="actions">
                        <div class="spacer"></div>
                        if reverted {
                            <button type="button" class="btn primary" onclick={act(props, Action::ChooseOther)}>{"Choose another image"}</button>
                        } else {
                            <button type="button" class="btn primary" onclick={again}>{"Update again"}</button>
                        }
                    </div>
                </div>
            }
        }
        Some(Finish::Cancelled { at, help }) => html! {
            <div class="outcome info" data-testid="outcome" data-outcome="cancelled">
                <div class="outcome-head">
                    <span class="outcome-icon" aria-hidden="true">{"■"}</span>
                    <h2 tabindex="-1" data-focus="">{"Update cancelled"}</h2>
                </div>
                <p class="describe" data-testid="cancelled">{ format!("You cancelled the update during “{}”. {help}", at.label()) }</p>
                <p class="muted">{"The record beside shows what the device runs now. Trying again sends only what is not on the device yet."}</p>
                <div class="actions">
                    <button type="button" class="btn ghost" onclick={again}>{"Back to the images"}</button>
                    <div class="spacer"></div>
                    <button type="button" class="btn primary" onclick={ask(props, || Intent::Start)} disabled={!state.ready_to_flash()}>{"Try again (resumes)"}</button>
                </div>
            </div>
        },
        Some(Finish::Failed { problem, .. }) => html! {
            <div class="outcome bad" data-testid="outcome" data-outcome="failed">
                <ProblemBox problem={problem.clone()} title="The update stopped" />
                <p class="muted">{"The record beside shows what the device runs now."}</p>
                <div class="actions">
                    <button type="button" class="btn ghost" onclick={again}>{"Back to the images"}</button>
                    <div class="spacer"></div>
                    <button type="button" class="btn primary" onclick={ask(props, || Intent::Start)} disabled={!state.ready_to_flash()}>{"Try again (resumes)"}</button>
                </div>
            </div>
        },
        None => images(props),
    }
}
