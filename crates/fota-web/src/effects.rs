//! Everything the page does beyond changing its state: connecting, reading files,
//! starting and cancelling an update, talking to the connection task, saving the
//! settings, the simulated device's buttons. The root component owns one [`Effects`];
//! the components only emit [`Intent`]s, which come here, and everything comes back to
//! the state as actions.

use std::cell::RefCell;
use std::rc::Rc;

use fota_host::protocol::SlotKind;
use fota_host::{CancelToken, Image, Plan};
use futures::channel::{mpsc, oneshot};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::spawn_local;
use web_sys::File;

use crate::components::Intent;
use crate::session::{self, Command, Dispatch};
use crate::state::{Action, AppState, Conn, ImageFile, LogKind, Problem, Settings, ws_address};
use crate::transport::sim;

/// The page's effects. Cloning shares the connection and the cancel token.
#[derive(Clone)]
pub struct Effects {
    dispatch: Dispatch,
    /// The connection task's command queue, while one runs.
    commands: Rc<RefCell<Option<mpsc::UnboundedSender<Command>>>>,
    /// The running update's cancel token.
    cancel: Rc<RefCell<CancelToken>>,
    /// Stops a connection while it opens.
    abort: Rc<RefCell<Option<oneshot::Sender<()>>>>,
}

impl PartialEq for Effects {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.commands, &other.commands)
    }
}

impl Effects {
    pub fn new(dispatch: Dispatch) -> Effects {
        Effects {
            dispatch,
            commands: Rc::default(),
            cancel: Rc::default(),
            abort: Rc::default(),
        }
    }

    /// Carry out what the user asked, given the state in force.
    pub fn handle(&self, state: &AppState, intent: Intent) {
        match intent {
            Intent::Do(action) => self.dispatch.dispatch(action),
            Intent::Connect => self.connect(state),
            Intent::CancelConnect => {
                if let Some(abort) = self.abort.borrow_mut().take() {
                    let _ = abort.send(());
                }
            }
            Intent::Disconnect => self.send(Command::Disconnect),
            Intent::Refresh => self.send(Command::Refresh),
            Intent::Accept => self.send(Command::Accept),
            Intent::Restart => self.send(Command::Restart),
            Intent::File(kind, file) => self.load_file(kind, file),
            Intent::Start => self.start_update(state),
            Intent::Cancel => self.cancel_update(state),
            Intent::FactoryReset => {
                sim::factory_reset();
                self.dispatch.dispatch(Action::Log(
                    LogKind::App,
                    "simulated device reset to its factory firmware".into(),
                ));
            }
            Intent::Unplug => sim::unplug(),
        }
    }

    /// Connect with the settings in force (the bridge address completed with `ws://`).
    fn connect(&self, state: &AppState) {
        if matches!(state.conn, Conn::Opening | Conn::Open(_)) {
            return;
        }
        let mut settings = state.settings.clone();
        let url = ws_address(&settings.ws_url);
        if url != settings.ws_url {
            settings.ws_url = url;
            self.dispatch.dispatch(Action::Settings(settings.clone()));
        }
        let (tx, rx) = mpsc::unbounded();
        // A previous connection task sees its queue closed and ends.
        self.commands.replace(Some(tx));
        let (abort, aborted) = oneshot::channel();
        self.abort.replace(Some(abort));
        spawn_local(session::connect(
            settings,
            self.dispatch.clone(),
            rx,
            aborted,
        ));
    }

    /// Ask the connection task to do something.
    fn send(&self, command: Command) {
        if let Some(tx) = self.commands.borrow().as_ref() {
            let _ = tx.unbounded_send(command);
        }
    }

    /// Read a file the user picked or dropped. `kind` is the zone it went to; a file
    /// dropped elsewhere goes where its header says (a sample VM image) or to the bytecode.
    pub fn load_file(&self, kind: Option<SlotKind>, file: File) {
        let dispatch = self.dispatch.clone();
        spawn_local(async move {
            let name = file.name();
            let blob = gloo::file::Blob::from(file);
            match gloo::file::futures::read_as_bytes(&blob).await {
                Ok(bytes) => match ImageFile::read(name, bytes) {
                    Ok(image) => {
                        let kind = kind
                            .or_else(|| image.header.as_ref().map(|h| h.kind))
                            .unwrap_or(SlotKind::Bytecode);
                        dispatch.dispatch(Action::ImageLoaded(kind, image));
                    }
                    Err(p) => dispatch.dispatch(Action::ImageRefused(p)),
                },
                Err(e) => dispatch.dispatch(Action::ImageRefused(Problem {
                    message: format!("{name} could not be read: {e}."),
                    help: "Choose the file again; if it is on a network drive or in a sync \
                           folder, copy it to this computer first."
                        .into(),
                })),
            }
        });
    }

    /// Start the update of the chosen images with the chosen options.
    fn start_update(&self, state: &AppState) {
        if !state.ready_to_flash() || state.running() {
            return;
        }
        let Some(bc) = &state.bytecode else { return };
        let image = |f: &ImageFile| Image::new(f.name.clone(), f.data.as_ref().clone());
        let bytecode = match image(bc) {
            Ok(i) => i,
            Err(e) => return self.dispatch.dispatch(Action::ImageRefused((&e).into())),
        };
        let mut plan = Plan::new(bytecode);
        plan.vm = match state.vm.as_ref().map(image).transpose() {
            Ok(vm) => vm,
            Err(e) => return self.dispatch.dispatch(Action::ImageRefused((&e).into())),
        };
        plan.bytecode_slot = state.bc_slot;
        plan.vm_slot = state.vm_slot;
        plan.restart = state.restart;
        plan.resume = state.resume;
        // Faulty firmware is restarted by its watchdog after a few seconds; give the
        // revert time to show.
        plan.wait_accept = core::time::Duration::from_secs(20);
        let cancel = CancelToken::new();
        self.cancel.replace(cancel.clone());
        self.dispatch.dispatch(Action::UpdateStarted);
        self.send(Command::Update(Box::new(plan), cancel));
    }

    fn cancel_update(&self, state: &AppState) {
        if state.running() {
            self.cancel.borrow().cancel();
            self.dispatch.dispatch(Action::Cancelling);
        }
    }
}

const SETTINGS_KEY: &str = "fota-web.settings";

fn storage() -> Option<web_sys::Storage> {
    web_sys::window().and_then(|w| w.local_storage().ok().flatten())
}

/// The settings saved by the last visit; defaults for anything missing or unreadable.
pub fn load_settings() -> Settings {
    storage()
        .and_then(|st| st.get_item(SETTINGS_KEY).ok().flatten())
        .and_then(|text| js_sys::JSON::parse(&text).ok())
        .and_then(|value| serde_wasm_bindgen::from_value(value).ok())
        .unwrap_or_default()
}

pub fn save_settings(s: &Settings) {
    let Some(text) = serde_wasm_bindgen::to_value(s)
        .ok()
        .and_then(|value| js_sys::JSON::stringify(&value).ok())
        .and_then(|text| text.as_string())
    else {
        return;
    };
    if let Some(st) = storage() {
        let _ = st.set_item(SETTINGS_KEY, &text);
    }
}

/// While it lives, leaving or reloading the page asks the user first (an update runs).
pub fn guard_unload() -> gloo::events::EventListener {
    gloo::events::EventListener::new(&gloo::utils::window(), "beforeunload", |e| {
        e.prevent_default();
        if let Some(e) = e.dyn_ref::<web_sys::BeforeUnloadEvent>() {
            // Older browsers ask only when this is set.
            e.set_return_value("An update is running: leaving stops it.");
        }
    })
}

/// Put the keyboard focus on the current step's first control (or its heading marked
/// `data-focus`), unless the user is busy
/// elsewhere (the log, the record panel): only when the focus fell to the page's body
/// (its button went away) or is inside the step card already.
pub fn focus_step() {
    let doc = gloo::utils::document();
    let Some(flow) = doc.get_element_by_id("flow") else {
        return;
    };
    let lost = doc
        .active_element()
        .is_none_or(|a| a == gloo::utils::body().into() || flow.contains(Some(&a)));
    if !lost {
        return;
    }
    // A heading marked for it (a running update, whose buttons must not take a stray
    // Enter), else the first control.
    const FIRST: &str = "input:not([disabled]):not([tabindex='-1']), select:not([disabled]), \
                         button:not([disabled]), a[href]";
    let target = flow
        .query_selector("[data-focus]")
        .ok()
        .flatten()
        .or_else(|| flow.query_selector(FIRST).ok().flatten());
    if let Some(el) = target
        && let Some(el) = el.dyn_ref::<web_sys::HtmlElement>()
    {
        let _ = el.focus();
    }
}
