//! The log: what the firmware printed and what the protocol did, downloadable as text.

use std::rc::Rc;

use wasm_bindgen::JsCast;
use web_sys::{Blob, BlobPropertyBag, HtmlAnchorElement, HtmlElement, Url};
use yew::prelude::*;

use crate::state::LogLine;

/// Lines drawn; the download has them all.
const SHOWN: usize = 400;

#[derive(Properties, PartialEq)]
pub struct LogProps {
    pub log: Rc<Vec<LogLine>>,
    pub on_clear: Callback<()>,
}

fn stamp(ms: u64) -> String {
    format!("{:>5}.{:03}", ms / 1000, ms % 1000)
}

/// The whole log as text.
pub fn as_text(log: &[LogLine]) -> String {
    let mut out = String::from("FOTA web updater log\n");
    for l in log {
        out.push_str(&format!(
            "[{}] {:<6} {}\n",
            stamp(l.at_ms),
            l.kind.tag(),
            l.text
        ));
    }
    out
}

fn download(name: &str, text: &str) {
    let parts = js_sys::Array::of1(&text.into());
    let opts = BlobPropertyBag::new();
    opts.set_type("text/plain;charset=utf-8");
    let Ok(blob) = Blob::new_with_str_sequence_and_options(&parts, &opts) else {
        return;
    };
    let Ok(url) = Url::create_object_url_with_blob(&blob) else {
        return;
    };
    let doc = gloo::utils::document();
    if let Ok(a) = doc.create_element("a") {
        let a: HtmlAnchorElement = a.unchecked_into();
        a.set_href(&url);
        a.set_download(name);
        a.click();
    }
    // The download starts after this returns: free the blob a little later.
    gloo::timers::callback::Timeout::new(30_000, move || {
        let _ = Url::revoke_object_url(&url);
    })
    .forget();
}

#[function_component(LogPanel)]
pub fn log_panel(props: &LogProps) -> Html {
    let list = use_node_ref();
    {
        let list = list.clone();
        use_effect_with(props.log.len(), move |_| {
            if let Some(el) = list.cast::<HtmlElement>() {
                el.set_scroll_top(f64::from(el.scroll_height()));
            }
        });
    }
    let on_download = {
        let log = props.log.clone();
        Callback::from(move |_: MouseEvent| download("fota-log.txt", &as_text(&log)))
    };
    let on_clear = props.on_clear.reform(|_: MouseEvent| ());
    let hidden = props.log.len().saturating_sub(SHOWN);
    html! {
        <section class="card log" aria-labelledby="log-title">
            <div class="card-head">
                <h2 id="log-title">{"Log"}</h2>
                <span class="muted">{ format!("{} lines", props.log.len()) }</span>
                <div class="spacer"></div>
                <button type="button" class="btn small" onclick={on_download}
                        disabled={props.log.is_empty()}>{"Download .txt"}</button>
                <button type="button" class="btn small ghost" onclick={on_clear}
                        disabled={props.log.is_empty()}>{"Clear"}</button>
            </div>
            <div class="log-lines" ref={list} role="log" aria-live="off" aria-label="Device output and protocol events" tabindex="0">
                if props.log.is_empty() {
                    <p class="muted empty">{"The firmware's output and the protocol's events appear here."}</p>
                }
                if hidden > 0 {
                    <p class="muted">{ format!("… {hidden} earlier lines (in the download)") }</p>
                }
                { for props.log.iter().skip(hidden).map(|l| html! {
                    <div class={classes!("line", format!("log-{}", l.kind.tag()))}>
                        <span class="t">{ stamp(l.at_ms) }</span>
                        <span class="k">{ l.kind.tag() }</span>
                        <span class="x">{ &l.text }</span>
                    </div>
                }) }
            </div>
        </section>
    }
}
