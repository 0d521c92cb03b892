//! A progress bar with bytes, speed and time left, readable by screen readers.

use fota_host::{Phase, Progress};
use yew::prelude::*;

use super::StyledDiv;
use crate::state::size;

#[derive(Properties, PartialEq)]
pub struct ProgressProps {
    pub progress: Option<Progress>,
}

pub fn phase_label(phase: Phase) -> &'static str {
    match phase {
        Phase::Compare => "Comparing the slot with the image",
        Phase::Erase => "Erasing",
        Phase::Stream => "Sending",
        Phase::Checksum => "The device computes the MD5",
    }
}

/// `1 min 05 s`, `12 s`.
pub fn duration(secs: f64) -> String {
    let s = secs.round() as u64;
    if s >= 60 {
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        format!("{s} s")
    }
}

#[function_component(ProgressView)]
pub fn progress_view(props: &ProgressProps) -> Html {
    let Some(p) = props.progress else {
        return html! {
            <div class="progress idle">
                <div class="bar indeterminate" role="progressbar" aria-label="Working"
                     aria-valuetext="Working"><div class="fill"></div></div>
            </div>
        };
    };
    let pct = (p.fraction() * 100.0).clamp(0.0, 100.0);
    let bytes = matches!(p.phase, Phase::Stream | Phase::Erase);
    let amount = if bytes {
        format!("{} of {}", size(p.done), size(p.total))
    } else {
        format!("{} of {}", p.done, p.total)
    };
    let speed = if bytes && p.per_second > 0.0 {
        format!("{}/s", size(p.per_second as u64))
    } else {
        String::new()
    };
    let eta = match p.eta {
        Some(d) if p.done < p.total && d.as_secs_f64() < 1.0 => "less than a second left".into(),
        Some(d) if p.done < p.total => format!("{} left", duration(d.as_secs_f64())),
        _ if p.done >= p.total => "done".into(),
        _ => String::new(),
    };
    let text = [
        phase_label(p.phase).to_string(),
        amount.clone(),
        speed.clone(),
        eta.clone(),
    ]
    .into_iter()
    .filter(|s| !s.is_empty())
    .collect::<Vec<_>>()
    .join(", ");
    html! {
        <div class="progress">
            <div class="progress-head">
                <span class="phase">{ phase_label(p.phase) }</span>
                <span class="pct">{ format!("{pct:.0}%") }</span>
            </div>
            <div class="bar" role="progressbar" aria-label={phase_label(p.phase)}
                 aria-valuemin="0" aria-valuemax="100"
                 aria-valuenow={format!("{pct:.0}")} aria-valuetext={text}>
                <StyledDiv class="fill" property="width" value={format!("{pct:.1}%")} />
            </div>
            <div class="progress-stats" data-testid="progress-stats">
                <span class="amount">{ amount }</span>
                if !speed.is_empty() { <span class="speed">{ speed }</span> }
                if !eta.is_empty() { <span class="eta">{ eta }</span> }
            </div>
        </div>
    }
}
