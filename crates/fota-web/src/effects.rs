//! Everything the page does beyond changing its state: connecting, reading files,
//! starting and cancelling an update, talking to the connection task, saving the
//! settings, the simulated device's buttons. The root component owns one [`Effects`];
//! the components only emit [`Intent`]s, which come here, and everything comes back to
//! the state as actions.

use std::cell::RefCell;
use std::rc::Rc;

use fota_host::CancelToken;
use fota_host::protocol::SlotKind;
use futures::channel::{mpsc, oneshot};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::spawn_local;
use web_sys::File;

use crate::components::Intent;
use crate::handoff::HandedManifest;
use crate::session::{self, Command, Dispatch};
use crate::state::{
    Action, AppState, Conn, ImageFile, LogKind, Manifest, ManifestDoc, ManifestState, Problem,
    Settings, check_image, image_from, ws_address,
};
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
            Intent::Previous(kind, file) => self.load_previous(kind, file),
            Intent::FetchAgain => match &state.manifest {
                Some(ManifestState::Failed(_)) => {
                    if let Some(url) = manifest_param() {
                        self.load_manifest(url);
                    }
                }
                // The images: fetched again once the reducer forgets the last try.
                Some(ManifestState::Loaded(_)) => self.dispatch.dispatch(Action::ManifestRetry),
                _ => {}
            },
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

    /// Read the firmware the device runs now (for a delta), as any image file.
    fn load_previous(&self, kind: SlotKind, file: File) {
        let dispatch = self.dispatch.clone();
        spawn_local(async move {
            let name = file.name();
            let blob = gloo::file::Blob::from(file);
            let read = gloo::file::futures::read_as_bytes(&blob)
                .await
                .map_err(|e| Problem {
                    message: format!("{name} could not be read: {e}."),
                    help: "Choose the file again, or leave the firmware on the device out: the \
                           update then sends the whole image."
                        .into(),
                })
                .and_then(|bytes| ImageFile::read(name, bytes));
            match read {
                Ok(image) => dispatch.dispatch(Action::PreviousLoaded(kind, image)),
                Err(p) => dispatch.dispatch(Action::ImageRefused(p)),
            }
        });
    }

    /// Start the update of the chosen images with the chosen options.
    fn start_update(&self, state: &AppState) {
        if !state.ready_to_flash() || state.running() {
            return;
        }
        let mut plan = match state.plan(crate::state::WAIT_ACCEPT_MS) {
            Ok(plan) => plan,
            Err(p) => return self.dispatch.dispatch(Action::ImageRefused(p)),
        };
        // Compressed and delta streams are made in the separately loaded module's worker.
        plan.encoder = Some(crate::extras::encoder());
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

/// The manifest named by the page's `?manifest=` parameter, as an absolute URL.
pub fn manifest_param() -> Option<String> {
    let href = gloo::utils::window().location().href().ok()?;
    let page = web_sys::Url::new(&href).ok()?;
    let named = page.search_params().get("manifest")?;
    let url = web_sys::Url::new_with_base(&named, &href).ok()?;
    Some(url.href())
}

/// Why a fetch of `url` failed, and what to do.
fn fetch_problem(what: &str, url: &str, why: String) -> Problem {
    let same = gloo::utils::window()
        .location()
        .origin()
        .ok()
        .zip(web_sys::Url::new(url).ok().map(|u| u.origin()))
        .is_some_and(|(a, b)| a == b);
    let help = if same {
        "Check the address and that the server is up, then fetch again.".to_string()
    } else {
        "It is on another site: the page's Content-Security-Policy must allow that origin \
         in connect-src (fota serve --connect-src ORIGIN) and the site must allow this one \
         (Access-Control-Allow-Origin). Or copy the manifest and its images next to the app."
            .to_string()
    };
    Problem {
        message: format!("The {what} {url} could not be fetched: {why}."),
        help,
    }
}

/// GET `url`: its bytes, or why not.
async fn fetch_bytes(what: &str, url: &str) -> Result<Vec<u8>, Problem> {
    fetch_bytes_from(what, url, None).await
}

/// The bytes of `url` from `started` (a fetch under way, from the first screen) or a new
/// GET, or why not.
async fn fetch_bytes_from(
    what: &str,
    url: &str,
    started: Option<js_sys::Promise>,
) -> Result<Vec<u8>, Problem> {
    use wasm_bindgen_futures::JsFuture;
    let fail = |why: String| fetch_problem(what, url, why);
    let js_text = |e: wasm_bindgen::JsValue| {
        e.dyn_ref::<js_sys::Error>()
            .map(|e| String::from(e.message()))
            .or_else(|| e.as_string())
            .unwrap_or_else(|| "refused by the browser".into())
    };
    // Never from a cache (the browser's or the service worker's): a manifest may change
    // with each release, and the images are checked against it.
    let init = web_sys::RequestInit::new();
    init.set_cache(web_sys::RequestCache::NoStore);
    let request =
        started.unwrap_or_else(|| gloo::utils::window().fetch_with_str_and_init(url, &init));
    let response = JsFuture::from(request)
        .await
        .map_err(|e| fail(js_text(e)))?;
    let response: web_sys::Response = response
        .dyn_into()
        .map_err(|_| fail("not an HTTP response".into()))?;
    if !response.ok() {
        return Err(fail(format!(
            "HTTP {} {}",
            response.status(),
            response.status_text()
        )));
    }
    let buffer = response.array_buffer().map_err(|e| fail(js_text(e)))?;
    let buffer = JsFuture::from(buffer).await.map_err(|e| fail(js_text(e)))?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}

/// The manifest fetched from `url`, read and checked.
fn manifest_from(url: &str, bytes: Vec<u8>) -> Result<Manifest, Problem> {
    let invalid = |why: String| Problem {
        message: format!("The firmware manifest {url} is not valid: {why}."),
        help: "Tell the site that offers this firmware; its manifest must follow the format in \
               docs/MANIFEST.md. Meanwhile, choose an image file yourself."
            .into(),
    };
    let text = String::from_utf8(bytes).map_err(|_| invalid("not UTF-8 text".into()))?;
    let value = js_sys::JSON::parse(&text).map_err(|_| invalid("not JSON".into()))?;
    let doc: ManifestDoc =
        serde_wasm_bindgen::from_value(value).map_err(|e| invalid(e.to_string()))?;
    Manifest::check(url, doc)
}

impl Effects {
    /// Load the firmware manifest at `url` (`?manifest=`).
    pub fn load_manifest(&self, url: String) {
        let dispatch = self.dispatch.clone();
        let started = match crate::handoff::manifest(&url) {
            // The first screen read it already: checked and drawn at once, as it was there.
            Some(HandedManifest::Bytes(bytes)) => {
                dispatch.dispatch(match manifest_from(&url, bytes) {
                    Ok(m) => Action::ManifestLoaded(Box::new(m)),
                    Err(p) => Action::ManifestFailed(p),
                });
                return;
            }
            Some(HandedManifest::Response(p)) => Some(p),
            None => None,
        };
        dispatch.dispatch(Action::ManifestLoading(url.clone()));
        spawn_local(async move {
            let loaded = async {
                let bytes = fetch_bytes_from("firmware manifest", &url, started).await?;
                manifest_from(&url, bytes)
            };
            match loaded.await {
                Ok(m) => dispatch.dispatch(Action::ManifestLoaded(Box::new(m))),
                Err(p) => dispatch.dispatch(Action::ManifestFailed(p)),
            }
        });
    }

    /// Fetch the manifest's images for the connected device's layout, check each against
    /// the manifest's size and SHA-256, and load them only if all pass.
    pub fn fetch_manifest_images(&self, state: &AppState) {
        let (Some(m), Some(layout)) = (state.manifest(), state.manifest_layout()) else {
            return;
        };
        if state.manifest_for == Some(layout) || state.running() {
            return;
        }
        let manifest = m.clone();
        let dispatch = self.dispatch.clone();
        dispatch.dispatch(Action::ManifestFetching(layout));
        // Not even fetched when it cannot fit (a large download for nothing).
        if let Some(p) = m
            .for_layout(layout)
            .into_iter()
            .find_map(|e| state.manifest_misfit(e))
        {
            return dispatch.dispatch(Action::ManifestRefused(p));
        }
        spawn_local(async move {
            let mut images = Vec::new();
            for entry in manifest.for_layout(layout) {
                let url = match web_sys::Url::new_with_base(&entry.url, &manifest.url) {
                    Ok(u) => u.href(),
                    Err(_) => {
                        return dispatch.dispatch(Action::ManifestRefused(Problem {
                            message: format!(
                                "The manifest's image URL {} is not valid.",
                                entry.url
                            ),
                            help: "Tell the site that offers this firmware.".into(),
                        }));
                    }
                };
                let checked = async {
                    let bytes = fetch_bytes("firmware image", &url).await?;
                    check_image(&manifest, entry, &bytes)?;
                    Ok::<_, Problem>(image_from(&manifest, entry, bytes))
                };
                match checked.await {
                    Ok(image) => images.push((entry.kind, image)),
                    Err(p) => return dispatch.dispatch(Action::ManifestRefused(p)),
                }
            }
            if !images.is_empty() {
                dispatch.dispatch(Action::ManifestImages(images));
            }
        });
    }
}

impl Effects {
    /// With images loaded and nothing to decide in the record: ask the device whether it
    /// runs them already (for a manifest's, the reducer then goes on to the slot by
    /// itself).
    pub fn check_installed(&self, state: &AppState) {
        if !state.installed_check_due() {
            return;
        }
        self.dispatch.dispatch(Action::InstalledAsked);
        self.send(Command::CheckInstalled(state.installed_query()));
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
