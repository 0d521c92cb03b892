//! The guided update's stages in a row: done, current, to come, or where it failed.

use yew::prelude::*;

use crate::state::Stage;

#[derive(Properties, PartialEq)]
pub struct StepperProps {
    pub stage: Stage,
    /// The current stage is where the last update stopped with an error.
    pub failed: bool,
    /// The last update finished (everything done).
    pub finished: bool,
}

#[function_component(Stepper)]
pub fn stepper(props: &StepperProps) -> Html {
    html! {
        <nav class="stepper" aria-label="Update steps">
            <ol>
            { for Stage::ALL.iter().enumerate().map(|(i, &stage)| {
                let current = stage == props.stage;
                let (class, state) = if current && props.failed {
                    ("failed", "stopped here")
                } else if current && props.finished {
                    ("done", "done")
                } else if current {
                    ("current", "current step")
                } else if stage < props.stage {
                    ("done", "done")
                } else {
                    ("todo", "to come")
                };
                html! {
                    <li class={classes!("step", class)}
                        aria-current={current.then_some("step")}
                        data-stage={stage.label()}>
                        <span class="step-dot" aria-hidden="true">
                            { if class == "done" { "✓".to_string() } else if class == "failed" { "!".to_string() } else { (i + 1).to_string() } }
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
