//! Choosing the images: a drop zone and a file picker per kind, and the built-in samples.

use fota_host::protocol::{SlotDesc, SlotKind};
use web_sys::{DragEvent, File, HtmlInputElement};
use yew::prelude::*;

use crate::state::{ImageFile, hex, kind_name, size};

/// The simulator's sample images, so a visitor can try both outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sample {
    /// "blink" v2: accepts itself once it runs.
    Healthy,
    /// "blink" v3-broken: hangs before it accepts, so the watchdog resets it and the
    /// device reverts.
    Faulty,
    /// "blink" v4-no-accept: runs well but never accepts, so it stays on trial until the
    /// next restart.
    NeverAccepts,
    /// "zvm" 2.0, a VM for the VM + bytecode layout.
    Vm,
}

impl Sample {
    pub fn kind(self) -> SlotKind {
        if self == Sample::Vm {
            SlotKind::Vm
        } else {
            SlotKind::Bytecode
        }
    }

    pub fn image(self) -> ImageFile {
        use fota_sim::images;
        let (name, data) = match self {
            Sample::Healthy => ("blink-v2.bin", images::blink_v2()),
            Sample::Faulty => ("blink-v3-broken.bin", images::blink_v3_broken()),
            Sample::NeverAccepts => ("blink-v4-no-accept.bin", images::blink_v4_never_accepts()),
            Sample::Vm => ("zvm-2.0.bin", images::vm_v2()),
        };
        ImageFile::raw(name.into(), data)
    }
}

#[derive(Properties, PartialEq)]
pub struct ImageCardProps {
    pub kind: SlotKind,
    pub image: Option<ImageFile>,
    pub target: Option<SlotDesc>,
    /// Why the loaded image cannot go (too large for the device connected since).
    pub refusal: Option<String>,
    pub on_file: Callback<(Option<SlotKind>, File)>,
    pub on_sample: Callback<Sample>,
    pub on_clear: Callback<SlotKind>,
    /// A downgrade the device allows once the user confirms it.
    #[prop_or_default]
    pub downgrade: Option<String>,
    /// The firmware the device runs now, if the user gave it (for a delta).
    #[prop_or_default]
    pub previous: Option<ImageFile>,
    /// The device decodes deltas: the card offers the previous-firmware input.
    #[prop_or_default]
    pub delta: bool,
    #[prop_or_default]
    pub on_previous: Callback<(SlotKind, File)>,
    #[prop_or_default]
    pub on_clear_previous: Callback<SlotKind>,
}

fn files(e: &DragEvent) -> Vec<File> {
    let Some(list) = e.data_transfer().and_then(|d| d.files()) else {
        return vec![];
    };
    (0..list.length()).filter_map(|i| list.get(i)).collect()
}

#[function_component(ImageCard)]
pub fn image_card(props: &ImageCardProps) -> Html {
    let input = use_node_ref();
    let over = use_state(|| false);
    let kind = props.kind;
    let id = if kind == SlotKind::Vm {
        "vm"
    } else {
        "bytecode"
    };

    let on_pick = {
        let input = input.clone();
        Callback::from(move |_: MouseEvent| {
            if let Some(el) = input.cast::<HtmlInputElement>() {
                el.click();
            }
        })
    };
    let on_change = {
        let on_file = props.on_file.clone();
        Callback::from(move |e: Event| {
            let el: HtmlInputElement = e.target_unchecked_into();
            if let Some(f) = el.files().and_then(|l| l.get(0)) {
                on_file.emit((Some(kind), f));
            }
            el.set_value("");
        })
    };
    let on_drag_over = {
        let over = over.clone();
        Callback::from(move |e: DragEvent| {
            e.prevent_default();
            if !*over {
                over.set(true);
            }
        })
    };
    let on_drag_leave = {
        let over = over.clone();
        Callback::from(move |_: DragEvent| over.set(false))
    };
    let on_drop = {
        let over = over.clone();
        let on_file = props.on_file.clone();
        Callback::from(move |e: DragEvent| {
            // The page's handler sees the default prevented and only ends the drag.
            e.prevent_default();
            over.set(false);
            if let Some(f) = files(&e).into_iter().next() {
                on_file.emit((Some(kind), f));
            }
        })
    };
    let on_clear = props.on_clear.reform(move |_: MouseEvent| kind);
    let prev_input = use_node_ref();
    let on_pick_previous = {
        let input = prev_input.clone();
        Callback::from(move |_: MouseEvent| {
            if let Some(el) = input.cast::<HtmlInputElement>() {
                el.click();
            }
        })
    };
    let on_previous = {
        let on_previous = props.on_previous.clone();
        Callback::from(move |e: Event| {
            let el: HtmlInputElement = e.target_unchecked_into();
            if let Some(f) = el.files().and_then(|l| l.get(0)) {
                on_previous.emit((kind, f));
            }
            el.set_value("");
        })
    };
    let on_clear_previous = props.on_clear_previous.reform(move |_: MouseEvent| kind);
    let sample = |s: Sample, label: &'static str, hint: &'static str| {
        let cb = props.on_sample.reform(move |_: MouseEvent| s);
        html! { <button type="button" class="btn small" onclick={cb} title={hint}>{ label }</button> }
    };

    html! {
        <div class={classes!("image-card", (*over).then_some("over"))} data-testid={format!("image-{id}")}
             ondragover={on_drag_over} ondragleave={on_drag_leave} ondrop={on_drop}>
            <h3>{ format!("{} image", kind_name(kind)) }</h3>
            if let Some(img) = &props.image {
                <dl class="image-facts">
                    <div><dt>{"File"}</dt><dd class="name">{ &img.name }</dd></div>
                    <div><dt>{"Size"}</dt><dd>{ format!("{} ({} bytes)", size(img.data.len() as u64), img.data.len()) }</dd></div>
                    <div><dt>{"Format"}</dt><dd data-testid="image-format">{ img.describe() }</dd></div>
                    <div><dt>{"MD5"}</dt><dd><code class="md5">{ hex(&img.md5) }</code></dd></div>
                    <div><dt>{"Image"}</dt><dd data-testid="image-summary">{ img.facts.summary() }</dd></div>
                    <div><dt>{"Signature"}</dt><dd data-testid="image-signature">
                        if img.facts.signed_by.is_empty() {
                            <span class="badge">{"unsigned"}</span>
                        } else {
                            <span class="badge good">{ img.signature() }</span>
                        }
                    </dd></div>
                    { for img.notes.iter().map(|n| html! { <div><dt>{"Note"}</dt><dd>{ n }</dd></div> }) }
                    if let Some(h) = &img.header {
                        <div><dt>{"Firmware"}</dt><dd>{ format!("{} {} ", h.name, h.version) }
                            if h.accepts { <span class="badge good">{"confirms itself"}</span> }
                            else if h.healthy { <span class="badge warn">{"never confirms: stays on trial until the next restart"}</span> }
                            else { <span class="badge warn">{"hangs: will be reverted"}</span> }
                        </dd></div>
                    }
                    <div><dt>{"Goes to"}</dt><dd>{ match &props.target {
                        Some(s) => format!("{} slot {} at 0x{:08X} ({}, {:.0}% used)", kind_name(kind), s.index, s.addr,
                            size(u64::from(s.size)), img.data.len() as f64 / f64::from(s.size.max(1)) * 100.0),
                        None => "the free slot (known once connected)".into(),
                    } }</dd></div>
                </dl>
                if !img.warnings.is_empty() {
                    <div class="status warn" role="status" data-testid="image-warnings">
                        <p><strong>{"Check before writing: "}</strong>{"this file does not look quite right."}</p>
                        <ul>{ for img.warnings.iter().map(|w| html! { <li>{ w }</li> }) }</ul>
                    </div>
                }
                if let Some(note) = &props.downgrade {
                    <p class="status warn" data-testid="image-downgrade">{ note }</p>
                }
                if let Some(why) = &props.refusal {
                    <p class="status bad" role="alert">{ why }</p>
                }
            } else {
                <div class="drop-hint">
                    <span class="drop-icon" aria-hidden="true">{"⇩"}</span>
                    <p>{ format!("Drop the {} image (.bin, .hex, .elf or .uf2) here or anywhere on the page", kind_name(kind).to_ascii_lowercase()) }</p>
                </div>
            }
            <div class="actions wrap">
                <input type="file" ref={input} class="file-input" id={format!("file-{id}")}
                       accept=".bin,.hex,.ihex,.ihx,.elf,.axf,.uf2,.img,.vbo,application/octet-stream" onchange={on_change} tabindex="-1" aria-hidden="true" />
                <button type="button" class="btn" onclick={on_pick}>
                    { if props.image.is_some() { "Choose another file…" } else { "Choose file…" } }
                </button>
                if props.image.is_some() {
                    <button type="button" class="btn ghost" onclick={on_clear}>{"Remove"}</button>
                }
            </div>
            <div class="samples">
                <span class="muted">{"Or a built-in sample: "}</span>
                if kind == SlotKind::Bytecode {
                    { sample(Sample::Healthy, "Healthy blink v2", "Accepts itself after the restart: the update ends accepted") }
                    { sample(Sample::Faulty, "Faulty blink v3", "Hangs before it accepts itself: its watchdog resets it and the device reverts to the previous firmware") }
                    { sample(Sample::NeverAccepts, "Unconfirmed blink v4", "Runs but never calls accept(): it stays on trial until the next restart brings back the previous firmware") }
                } else {
                    { sample(Sample::Vm, "VM zvm 2.0", "A healthy VM image") }
                }
            </div>
            if props.delta {
                <div class="previous" data-testid={format!("previous-{id}")}>
                    <input type="file" ref={prev_input} class="file-input" id={format!("previous-file-{id}")}
                           accept=".bin,.hex,.ihex,.ihx,.elf,.axf,.uf2,.img,.vbo,application/octet-stream" onchange={on_previous} tabindex="-1" aria-hidden="true" />
                    if let Some(p) = &props.previous {
                        <p class="small"><strong>{"Firmware on the device now: "}</strong><span class="name">{ &p.name }</span>
                            { format!(" ({}, MD5 {}): the update sends only a delta from it if the device holds it.", size(p.data.len() as u64), hex(&p.md5)) }</p>
                        <div class="actions wrap">
                            <button type="button" class="btn small" onclick={on_pick_previous}>{"Choose another…"}</button>
                            <button type="button" class="btn small ghost" onclick={on_clear_previous}>{"Leave out"}</button>
                        </div>
                    } else {
                        <p class="muted small">{"Optional: the firmware on the device now (the file it was flashed with). The update then sends only what changed (a delta), checked first by the device's MD5."}</p>
                        <button type="button" class="btn small" onclick={on_pick_previous}>{"Firmware on the device now…"}</button>
                    }
                </div>
            }
        </div>
    }
}
