//! The pieces of the page. Each takes plain data and callbacks; none touches the state
//! or does anything itself: what the user asks comes out as an [`Intent`], which the root
//! hands to [`crate::effects::Effects`].

pub mod connect;
pub mod device;
pub mod flow;
pub mod images;
pub mod log;
pub mod progress;
pub mod stepper;

use fota_host::protocol::SlotKind;
use web_sys::File;
use yew::prelude::*;

use crate::state::{Action, Problem};

/// What the user asked for.
// One per user action, handed on at once and never stored: its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Intent {
    /// A change of the state only.
    Do(Action),
    Connect,
    /// Stop connecting (a bridge that does not answer).
    CancelConnect,
    Disconnect,
    /// Read the record now.
    Refresh,
    /// Accept the configuration on trial.
    Accept,
    /// Restart the device.
    Restart,
    /// A file picked or dropped, for a kind of image or wherever its header says.
    File(Option<SlotKind>, File),
    /// Load the firmware manifest again, or its images (after a refusal or a failure).
    FetchAgain,
    /// The firmware the device runs now, for a delta.
    Previous(SlotKind, File),
    /// Start the update.
    Start,
    /// Cancel the update at its next safe point.
    Cancel,
    /// Give the simulated device its factory flash back.
    FactoryReset,
    /// Pull the simulated device's cable.
    Unplug,
}

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

#[derive(Properties, PartialEq)]
pub struct StyledDivProps {
    #[prop_or_default]
    pub class: Classes,
    /// The CSS property set (`width`, `flex-grow`).
    pub property: &'static str,
    /// Its value.
    pub value: AttrValue,
    #[prop_or_default]
    pub title: Option<AttrValue>,
    #[prop_or_default]
    pub children: Html,
}

/// A `<div>` with one computed CSS property, set through the CSSOM (`element.style`)
/// rather than a `style` attribute: the page's Content-Security-Policy refuses inline
/// style attributes, and allows the CSSOM.
#[function_component(StyledDiv)]
pub fn styled_div(props: &StyledDivProps) -> Html {
    let node = use_node_ref();
    {
        let node = node.clone();
        let property = props.property;
        use_effect_with(props.value.clone(), move |value| {
            if let Some(el) = node.cast::<web_sys::HtmlElement>() {
                let _ = el.style().set_property(property, value);
            }
        });
    }
    html! {
        <div ref={node} class={props.class.clone()} title={props.title.clone()}>
            { props.children.clone() }
        </div>
    }
}
