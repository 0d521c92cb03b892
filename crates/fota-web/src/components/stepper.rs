//! The guided update's stages in a row: done, current, to come, or where the last update
//! was cancelled or failed. On a phone the row shows the dots and the current stage's name
//! only, so it always fits and always shows where the user is.

use yew::prelude::*;

use crate::state::{Mark, Stage};

#[derive(Properties, PartialEq)]
pub struct StepperProps {
    /// How each of [`Stage::ALL`] is shown ([`crate::state::AppState::marks`]).
    pub marks: [Mark; 8],
}

#[function_component(Stepper)]
pub fn stepper(props: &StepperProps) -> Html {
    let current = props
        .marks
        .iter()
        .position(|m| *m == Mark::Current)
        .or_else(|| props.marks.iter().rposition(|m| *m == Mark::Done))
        .unwrap_or(0);
    html! {
        <nav class="stepper" aria-label="Update steps">
            <p class="step-now" aria-hidden="true">{ format!("Step {} of {}: {}", current + 1, Stage::ALL.len(), Stage::ALL[current].label()) }</p>
            <ol>
            { for Stage::ALL.iter().zip(props.marks).enumerate().map(|(i, (&stage, mark))| {
                let (class, state) = match mark {
                    Mark::Done => ("done", "done"),
                    Mark::Current => ("current", "current step"),
                    Mark::Todo => ("todo", "to come"),
                    Mark::Failed => ("failed", "stopped here"),
                    Mark::Cancelled => ("cancelled", "cancelled here"),
                };
                html! {
                    <li class={classes!("step", class)}
                        aria-current={(mark == Mark::Current).then_some("step")}
                        data-stage={stage.label()} data-mark={class}>
                        <span class="step-dot" aria-hidden="true">
                            { match mark {
                                Mark::Done => "✓".to_string(),
                                Mark::Failed => "!".to_string(),
                                Mark::Cancelled => "■".to_string(),
                                _ => (i + 1).to_string(),
                            } }
                        </span>
                        <span class="step-label">{ stage.label() }</span>
                        <span class="sr-only">{ format!(" ({state})") }</span>
                    </li>
                }
            }) }
            </ol>
        </nav>
    }
}
