//! The pieces of the page. Each takes plain data and callbacks; none touches the state.

pub mod connect;
pub mod device;
pub mod flow;
pub mod images;
pub mod log;
pub mod progress;
pub mod stepper;

use yew::prelude::*;

use crate::state::Problem;

#[derive(Properties, PartialEq)]
pub struct ProblemProps {
    pub problem: Problem,
    #[prop_or_default]
    pub title: Option<AttrValue>,
}

/// An error: what happened and, as prominently, what to do.
#[function_component(ProblemBox)]
pub fn problem_box(props: &ProblemProps) -> Html {
    html! {
        <div class="problem" role="alert">
            <p class="problem-title">
                <span class="icon" aria-hidden="true">{"!"}</span>
                { props.title.clone().unwrap_or_else(|| AttrValue::from("Something went wrong")) }
            </p>
            <p class="problem-message">{ &props.problem.message }</p>
            <p class="problem-help"><strong>{"What to do: "}</strong>{ &props.problem.help }</p>
        </div>
    }
}
