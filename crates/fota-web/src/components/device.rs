//! The device as it is now: the FOTA record's nine fields, decoded, and the flash layout
//! drawn to scale.

use fota_host::protocol::Layout as _;
use fota_host::protocol::{Info, Record, RecordState, SlotDesc, SlotKind};
use yew::prelude::*;

use super::StyledDiv;
use super::progress::duration;
use crate::state::{TrialClock, size};

#[derive(Properties, PartialEq)]
pub struct DeviceProps {
    pub info: Option<Info>,
    pub link: Option<AttrValue>,
    pub baud: Option<u32>,
    pub record: Option<Record>,
    pub stale: bool,
    /// Slots the update writes (drawn as "being written" while it runs).
    pub writing: Vec<SlotDesc>,
    /// Slots the chosen images will go to.
    pub targets: Vec<SlotDesc>,
    pub busy: bool,
    /// The configuration on trial: for how long, and how long the update waits for it.
    #[prop_or_default]
    pub trial: Option<TrialClock>,
    pub on_refresh: Callback<()>,
    pub on_accept: Callback<()>,
    pub on_restart: Callback<()>,
}

fn slot_name(s: &SlotDesc) -> String {
    match s.kind {
        SlotKind::Vm => format!("VM {}", s.index),
        SlotKind::Bytecode => format!("Bytecode {}", s.index),
    }
}

fn addr(a: u32) -> String {
    format!("0x{a:08X}")
}

#[function_component(DevicePanel)]
pub fn device_panel(props: &DeviceProps) -> Html {
    let Some(info) = &props.info else {
        return html! {
            <section class="card device" aria-labelledby="device-title">
                <div class="card-head"><h2 id="device-title">{"Device"}</h2></div>
                <p class="muted">{"Not connected. Once connected, the FOTA record and the flash layout appear here and stay up to date."}</p>
            </section>
        };
    };
    let v = info.agent_version;
    let on_refresh = props.on_refresh.reform(|_: MouseEvent| ());
    let on_accept = props.on_accept.reform(|_: MouseEvent| ());
    let on_restart = props.on_restart.reform(|_: MouseEvent| ());
    html! {
        <section class="card device" aria-labelledby="device-title">
            <div class="card-head">
                <h2 id="device-title">{"Device"}</h2>
                if props.stale { <span class="badge warn">{"not answering"}</span> }
                <div class="spacer"></div>
                <button type="button" class="btn small ghost" onclick={on_refresh} disabled={props.busy}
                        title="Read the record again">{"Refresh"}</button>
            </div>
            <dl class="facts">
                <div><dt>{"Agent"}</dt><dd>{ format!("{} v{}.{}.{}", info.name, v[0], v[1], v[2]) }</dd></div>
                <div><dt>{"Link"}</dt><dd>{ props.link.clone().unwrap_or_default() }
                    { props.baud.map(|b| format!(", {b} baud")).unwrap_or_default() }</dd></div>
                <div><dt>{"Flash"}</dt><dd>{ format!("{} sectors, writes of up to {} in {} at once",
                    size(u64::from(info.sector_size)), size(u64::from(info.max_write)), info.max_in_flight) }</dd></div>
                if let Some(erase) = erase_times(info) {
                    <div><dt>{"Erase"}</dt><dd>{ erase }</dd></div>
                }
                if let Some(ms) = info.confirm_ms {
                    <div><dt>{"Trial"}</dt><dd>{ format!("new firmware must confirm within {}", crate::state::seconds(u64::from(ms))) }</dd></div>
                }
                if let Some(vm) = info.boot_stage {
                    <div><dt>{"Boot stage"}</dt><dd>{ format!("VM slot {vm}: the part always starts it; it is never erased or written") }</dd></div>
                }
                if !info.fota_supported {
                    <div><dt>{"FOTA"}</dt><dd class="bad">{"not supported by this firmware"}</dd></div>
                }
            </dl>
            <FlashMap info={info.clone()} record={props.record} writing={props.writing.clone()} targets={props.targets.clone()} />
            { match props.record {
                Some(r) => html! {
                    <>
                    <TrialBanner record={r} busy={props.busy} stale={props.stale} trial={props.trial} {on_accept} {on_restart} />
                    <RecordFacts record={r} />
                    <RecordTable record={r} info={info.clone()} />
                    </>
                },
                None => html! { <p class="muted">{"Reading the record…"}</p> },
            } }
        </section>
    }
}

#[derive(Properties, PartialEq)]
struct TrialProps {
    record: Record,
    busy: bool,
    /// The device does not answer now: nothing is said of what it runs.
    stale: bool,
    trial: Option<TrialClock>,
    on_accept: Callback<MouseEvent>,
    on_restart: Callback<MouseEvent>,
}

#[function_component(TrialBanner)]
fn trial_banner(props: &TrialProps) -> Html {
    let r = props.record;
    if r.valid == 0 {
        return html! { <p class="status bad" data-testid="record-status">{"The record is not valid (fota[0] = 0): the device could not store it in flash, so it cannot be updated. Restart it; if that does not help, its record area needs service."}</p> };
    }
    let class = if r.state == RecordState::Confirmed && r.runs_current() {
        "good"
    } else {
        "warn"
    };
    html! {
        <div class={classes!("status", class)} data-testid="record-status" data-state={state_name(r.state)}>
            { match r.state {
                RecordState::Trial => {
                    // Past its deadline and still answering: a firmware that runs on
                    // without accept() is not reverted by anything but the next restart.
                    let overdue = props.trial.is_some_and(|t| t.overdue())
                        && !props.stale
                        && r.runs_current();
                    html! {
                    <>
                    if let Some(t) = props.trial {
                        <p class="trial-clock" data-testid="trial-badge" data-overdue={overdue.to_string()}>
                            <span class="badge warn">{ if overdue { "on trial, not confirmed" } else { "on trial" } }</span>
                            { format!(" for {}", duration(t.elapsed_ms as f64 / 1000.0)) }
                            { t.deadline() }
                        </p>
                    }
                    if overdue {
                        <p data-testid="trial-overdue"><strong>{"Running on trial, not confirmed: "}</strong>{ format!(
                            "bytecode slot {} with VM slot {} still runs and has not called accept(). Its watchdog resets only a firmware that hangs, so nothing reverts it now: the next restart, whatever causes it, brings back bytecode slot {} with VM slot {}. Restart now to go back to it, or wait: it may still confirm itself (or accept it here if you know it works).",
                            r.bc_current, r.vm_current, r.bc_last, r.vm_last) }</p>
                    } else {
                        <p><strong>{"On trial: "}</strong>{ format!(
                            "bytecode slot {} with VM slot {} runs but has not confirmed itself. A restart brings back bytecode slot {} with VM slot {}.",
                            r.bc_current, r.vm_current, r.bc_last, r.vm_last) }</p>
                    }
                    <div class="actions">
                        <button type="button" class="btn small" onclick={props.on_restart.clone()} disabled={props.busy}
                            data-testid="trial-restart">{ if overdue { format!("Restart now (brings back bytecode slot {})", r.bc_last) } else { "Restart (reverts)".to_string() } }</button>
                        <button type="button" class="btn small" onclick={props.on_accept.clone()} disabled={props.busy || !r.runs_current()}>{"Accept it (accept())"}</button>
                    </div>
                    </>
                    }
                },
                RecordState::Pending => html! {
                    <>
                    <p><strong>{"Pending: "}</strong>{ format!(
                        "bytecode slot {} with VM slot {} is tried at the next restart (it has never run). Without accept() after that restart, the device comes back to bytecode slot {} with VM slot {}.",
                        r.bc_current, r.vm_current, r.bc_last, r.vm_last) }</p>
                    <div class="actions">
                        <button type="button" class="btn small" onclick={props.on_restart.clone()} disabled={props.busy}>{"Restart (tries it)"}</button>
                    </div>
                    </>
                },
                RecordState::Confirmed => html! {
                    <>
                    <p><strong>{"Working configuration: "}</strong>{ format!(
                        "bytecode slot {} with VM slot {}, confirmed.", r.bc_current, r.vm_current) }</p>
                    <div class="actions">
                        <button type="button" class="btn small ghost" onclick={props.on_restart.clone()} disabled={props.busy}>{"Restart device"}</button>
                    </div>
                    </>
                },
            } }
        </div>
    }
}

fn state_name(state: RecordState) -> &'static str {
    match state {
        RecordState::Confirmed => "confirmed",
        RecordState::Pending => "pending",
        RecordState::Trial => "trial",
    }
}

#[derive(Properties, PartialEq)]
struct StateProps {
    record: Record,
}

/// What protocol 2 adds to the seed's nine fields: the record's state and the slots that
/// run now.
#[function_component(RecordFacts)]
fn record_state(props: &StateProps) -> Html {
    let r = props.record;
    let state = match r.state {
        RecordState::Confirmed => "Confirmed: current is the last working configuration",
        RecordState::Pending => "Pending: current is tried at the next restart",
        RecordState::Trial => "Trial: current runs, not accepted yet",
    };
    html! {
        <dl class="facts record-state" data-testid="record-state">
            <div><dt>{"State"}</dt><dd data-state={state_name(r.state)}>{ state }</dd></div>
            <div><dt>{"Running now"}</dt><dd data-testid="record-running">{ format!("VM slot {}, bytecode slot {}{}",
                r.running_vm, r.running_bc,
                if r.runs_current() { "" } else { " (the record's current configuration starts at the next restart)" }) }</dd></div>
        </dl>
    }
}

#[derive(Properties, PartialEq)]
struct RecordProps {
    record: Record,
    info: Info,
}

#[function_component(RecordTable)]
fn record_table(props: &RecordProps) -> Html {
    let r = props.record;
    let info = &props.info;
    let slot_at = |a: u32| {
        info.slot_at(a)
            .map(slot_name)
            .unwrap_or_else(|| "outside every slot".into())
    };
    let rows: [(&str, String, String); 9] = [
        (
            "valid",
            r.valid.to_string(),
            if r.valid == 0 {
                "the record is not valid".into()
            } else {
                "the record is valid".into()
            },
        ),
        (
            "FOTA VM index",
            r.vm_index.to_string(),
            format!("the VM running now is in VM slot {}", r.vm_index),
        ),
        (
            "current VM slot",
            r.vm_current.to_string(),
            "the VM started at the next restart".into(),
        ),
        (
            "last working VM slot",
            r.vm_last.to_string(),
            "the VM to fall back to".into(),
        ),
        (
            "current bytecode slot",
            r.bc_current.to_string(),
            "the bytecode started at the next restart".into(),
        ),
        (
            "last working bytecode slot",
            r.bc_last.to_string(),
            "the bytecode to fall back to".into(),
        ),
        (
            "bytecode address",
            addr(r.bc_addr),
            format!(
                "flash address of the current bytecode ({})",
                slot_at(r.bc_addr)
            ),
        ),
        (
            "VM address",
            addr(r.vm_addr),
            format!("flash address of the current VM ({})", slot_at(r.vm_addr)),
        ),
        (
            "chunk",
            r.chunk.to_string(),
            format!(
                "the OTA chunk: preferred write block ({})",
                size(u64::from(r.chunk))
            ),
        ),
    ];
    html! {
        <table class="record" data-testid="record">
            <caption>{"FOTA record (get_record())"}</caption>
            <thead><tr><th scope="col">{"#"}</th><th scope="col">{"Field and meaning"}</th><th scope="col" class="val">{"Value"}</th></tr></thead>
            <tbody>
            { for rows.iter().enumerate().map(|(i, (name, value, meaning))| {
                let changed = match i { 3 => r.vm_last != r.vm_current, 5 => r.bc_last != r.bc_current, _ => false };
                html! {
                    <tr class={classes!(changed.then_some("differs"))} data-field={*name}>
                        <td class="idx">{ format!("fota[{i}]") }</td>
                        <th scope="row"><span class="rec-field">{ *name }</span><span class="rec-meaning">{ meaning }</span></th>
                        <td class="val">{ value }</td>
                    </tr>
                }
            }) }
            </tbody>
        </table>
    }
}

#[derive(Properties, PartialEq)]
pub struct MapProps {
    pub info: Info,
    pub record: Option<Record>,
    pub writing: Vec<SlotDesc>,
    pub targets: Vec<SlotDesc>,
}

/// One piece of the map: a slot, the record area, or space the layout does not use.
enum Piece {
    Slot(SlotDesc),
    Record(u32, u32),
    Other(u32, u32),
}

/// The flash from the first slot to the end of the record area, slots drawn to scale.
#[function_component(FlashMap)]
pub fn flash_map(props: &MapProps) -> Html {
    let info = &props.info;
    let mut slots: Vec<SlotDesc> = info.slots.iter().copied().collect();
    slots.sort_by_key(|s| s.addr);
    let mut pieces = Vec::new();
    let start = slots
        .first()
        .map_or(info.record_addr, |s| s.addr)
        .min(info.record_addr);
    let mut at = start;
    let push_gap = |pieces: &mut Vec<Piece>, at: u32, to: u32| {
        if to > at {
            pieces.push(Piece::Other(at, to - at));
        }
    };
    for s in &slots {
        push_gap(&mut pieces, at, s.addr);
        pieces.push(Piece::Slot(*s));
        at = at.max(s.addr + s.size);
    }
    push_gap(&mut pieces, at, info.record_addr);
    pieces.push(Piece::Record(info.record_addr, info.record_size));
    let end = at.max(info.record_addr + info.record_size);
    let total = f64::from((end - start).max(1));

    let record = props.record;
    let marks = |s: &SlotDesc| -> Vec<(&'static str, &'static str)> {
        let mut m = Vec::new();
        if props.writing.iter().any(|w| w.addr == s.addr) {
            m.push(("writing", "writing"));
        } else if props.targets.iter().any(|w| w.addr == s.addr) {
            m.push(("target", "new image"));
        }
        if s.kind == SlotKind::Vm && info.boot_stage == Some(s.index) {
            m.push(("boot", "boot stage"));
        }
        if let Some(r) = record {
            let i = u32::from(s.index);
            let (cur, last, run) = match s.kind {
                SlotKind::Vm => (r.vm_current, r.vm_last, r.running_vm),
                SlotKind::Bytecode => (r.bc_current, r.bc_last, r.running_bc),
            };
            let differs = cur != last;
            if i == run {
                m.push(if r.state == RecordState::Trial && i == cur && differs {
                    ("trial", "running, on trial")
                } else {
                    ("running", "running")
                });
            }
            if i == cur && i != run {
                m.push(if r.state == RecordState::Pending {
                    ("next", "pending: tried at the next restart")
                } else {
                    ("next", "starts at the next restart")
                });
            }
            if i == last {
                m.push(("last", "last working"));
            }
            // Free: what may take a new image (the host's rule), with nothing else to say.
            if fota_host::slot_role(info, &r, s.kind, i).is_none() && m.is_empty() {
                m.push(("free", "free"));
            }
        }
        m
    };
    let described: Vec<_> = pieces
        .iter()
        .map(|p| {
            let (class, name, a, len, marks) = match p {
                Piece::Slot(s) => (
                    if s.kind == SlotKind::Vm { "vm" } else { "bc" },
                    slot_name(s),
                    s.addr,
                    s.size,
                    marks(s),
                ),
                Piece::Record(a, l) => ("rec", "Record".to_string(), *a, *l, vec![]),
                Piece::Other(a, l) => ("other", "Other".to_string(), *a, *l, vec![]),
            };
            let label = format!(
                "{name}: {} at {}{}",
                size(u64::from(len)),
                addr(a),
                if marks.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", {}",
                        marks.iter().map(|m| m.1).collect::<Vec<_>>().join(", ")
                    )
                }
            );
            (class, name, a, len, marks, label)
        })
        .collect();
    html! {
        <figure class="flash-map" data-testid="flash-map">
            <figcaption>{ format!("Flash layout to scale: {} from {} to {}", size(u64::from(end - start)), addr(start), addr(end)) }</figcaption>
            // The strip is exactly to scale; the cards below carry the words.
            <div class="strip" aria-hidden="true">
            { for described.iter().map(|(class, name, _, len, marks, label)| html! {
                <StyledDiv class={classes!("seg", *class, marks.iter().map(|m| m.0).collect::<Vec<_>>())}
                     property="flex-grow" value={format!("{:.4}", f64::from(*len) / total)} title={label.clone()}>
                    <span class="seg-name">{ name }</span>
                </StyledDiv>
            }) }
            </div>
            <div class="axis" aria-hidden="true"><span>{ addr(start) }</span><span>{ addr(end) }</span></div>
            <ul class="segments" aria-label="Flash layout">
            { for described.iter().map(|(class, name, a, len, marks, label)| html! {
                <li class={classes!("seg-card", *class, marks.iter().map(|m| m.0).collect::<Vec<_>>())} aria-label={label.clone()}>
                    <span class="seg-name">{ name }</span>
                    <span class="seg-size">{ format!("{} at {}", size(u64::from(*len)), addr(*a)) }</span>
                    <span class="seg-marks">
                        { for marks.iter().map(|m| html!{ <span class={classes!("mark", m.0)}>{ m.1 }</span> }) }
                    </span>
                </li>
            }) }
            </ul>
        </figure>
    }
}

/// The erase times the device declares (`Info` tags 2 and 10): "a sector in 45 ms at
/// worst; a 32 KiB block in 120 ms, a 64 KiB block in 150 ms".
fn erase_times(info: &Info) -> Option<String> {
    let sector = info
        .sector_erase_ms
        .map(|ms| format!("a sector in {ms} ms at worst"));
    let blocks = info
        .block_erases
        .iter()
        .map(|b| format!("a {} block in {} ms", size(u64::from(b.size)), b.ms))
        .collect::<Vec<_>>()
        .join(", ");
    match (sector, blocks.is_empty()) {
        (Some(s), true) => Some(s),
        (Some(s), false) => Some(format!("{s}; {blocks}")),
        (None, false) => Some(blocks),
        (None, true) => None,
    }
}
