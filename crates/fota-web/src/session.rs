//! The connection task: one `spawn_local` future owns the [`Device`] for as long as the
//! page is connected, takes [`Command`]s from the page, reads the record every
//! ~1.5 s while idle, and reports everything back through the reducer.

use core::time::Duration;

use fota_host::protocol::{DEFAULT_BAUD, SlotKind};
use fota_host::{Device, HostError, Observer, Plan, Progress, Step, Transport};
use futures::channel::{mpsc, oneshot};
use yew::UseReducerDispatcher;

use crate::state::{
    Action, AppState, At, Connection, LogKind, NEGOTIATE, Settings, Stopped, TransportKind,
    problem_of,
};
use crate::transport::serial::SerialLink;
use crate::transport::sim::SimLink;
use crate::transport::ws::WsLink;
use crate::transport::{Link, now_ms};

/// Sends actions to the page's reducer, each with the time it happened.
#[derive(Clone, PartialEq)]
pub struct Dispatch(UseReducerDispatcher<AppState>);

impl Dispatch {
    pub fn new(inner: UseReducerDispatcher<AppState>) -> Dispatch {
        Dispatch(inner)
    }

    pub fn dispatch(&self, action: Action) {
        self.0.dispatch(At(now_ms() as u64, action));
    }
}

/// How often the record is read while nothing else happens.
const REFRESH: Duration = Duration::from_millis(1500);
/// Idle slices between looks at the command queue.
const IDLE_SLICE: Duration = Duration::from_millis(100);

/// What the page asks of the connection.
pub enum Command {
    /// Read the record now.
    Refresh,
    /// Run an update.
    Update(Box<Plan>, fota_host::CancelToken),
    /// `accept()`: make the configuration on trial the last working one.
    Accept,
    /// `restart()`, then wait for the device.
    Restart,
    /// Whether the running slots hold these images (kind, length, MD5).
    CheckInstalled(Vec<(SlotKind, u32, [u8; 16])>),
    /// Close the link.
    Disconnect,
}

/// Reports fota-host's steps, progress and log lines as actions.
struct UiObserver {
    dispatch: Dispatch,
    last_progress: f64,
}

impl Observer for UiObserver {
    fn step(&mut self, step: Step, detail: &str) {
        self.dispatch
            .dispatch(Action::Step(step, detail.to_string()));
    }

    fn progress(&mut self, p: &Progress) {
        // Enough to look smooth, not so often that drawing slows the transfer.
        let now = now_ms();
        if now - self.last_progress >= 80.0 || p.done >= p.total || p.done == 0 {
            self.last_progress = now;
            self.dispatch.dispatch(Action::Progress(*p));
        }
    }

    fn verified(&mut self, _image: &str, _md5: &[u8; 16]) {
        self.dispatch.dispatch(Action::Verified);
    }

    fn resumed(&mut self, _image: &str, kept: u64, total: u64) {
        self.dispatch.dispatch(Action::Resumed(kept, total));
    }

    fn record(&mut self, record: &fota_host::protocol::Record) {
        // The record panel and the flash map follow attempt, restart, trial, accept and
        // revert as the update reads the record.
        self.dispatch.dispatch(Action::Record(*record));
    }

    fn info(&mut self, info: &fota_host::protocol::Info) {
        // After the restart: the device's trial deadline and its own clock (tag 9).
        self.dispatch
            .dispatch(Action::InfoRead(Box::new(info.clone())));
    }

    fn device_log(&mut self, line: &str) {
        self.dispatch
            .dispatch(Action::Log(LogKind::Device, line.to_string()));
    }

    fn event(&mut self, line: &str) {
        self.dispatch
            .dispatch(Action::Log(LogKind::Event, line.to_string()));
    }
}

/// Open the link `settings` describe, say hello, and serve the page's `commands` until
/// disconnected.
pub async fn connect(
    settings: Settings,
    dispatch: Dispatch,
    commands: mpsc::UnboundedReceiver<Command>,
    abort: oneshot::Receiver<()>,
) {
    // Only a real cancel aborts; a sender dropped without a word does not.
    let abort = async move {
        if abort.await.is_err() {
            futures::future::pending::<()>().await;
        }
    };
    dispatch.dispatch(Action::Connecting);
    let opened = match settings.transport {
        TransportKind::Sim => SimLink::open(settings.layout)
            .await
            .map(|l| Some(Link::Sim(Box::new(l)))),
        TransportKind::Serial => SerialLink::request(settings.baud)
            .await
            .map(|l| Some(Link::Serial(l))),
        TransportKind::WebSocket => WsLink::connect(&settings.ws_url, abort)
            .await
            .map(|l| l.map(Link::Ws)),
    };
    let link = match opened {
        Ok(Some(link)) => link,
        Ok(None) => {
            dispatch.dispatch(Action::ConnectCancelled);
            return;
        }
        Err(e) => {
            dispatch.dispatch(Action::ConnectFailed(e));
            return;
        }
    };
    let label = link.label();
    let negotiate = settings.negotiate;
    dispatch.dispatch(Action::Log(
        LogKind::App,
        format!("opened {label}, saying hello"),
    ));
    let observer = UiObserver {
        dispatch: dispatch.clone(),
        last_progress: 0.0,
    };
    let mut dev = Device::new(link, Box::new(observer));
    // A device a host left at the fast rate without saying goodbye answers there for a
    // while: try it too when the base rate gets no answer (serial links only).
    let info = match dev.connect(&NEGOTIATE[..1]).await {
        Ok(info) => info,
        Err(e) => {
            dispatch.dispatch(Action::ConnectFailed(problem_of(&e)));
            dev.link().close().await;
            return;
        }
    };
    let baud = dev.link().baud();
    dispatch.dispatch(Action::Connected(Box::new(Connection {
        kind: settings.transport,
        info,
        link: label,
        baud,
    })));
    let mut session = Serving {
        dev,
        dispatch,
        negotiate,
    };
    session.raise_baud().await;
    session.serve(commands).await;
}

/// Why the serving loop stopped.
enum Stop {
    /// The page disconnected.
    Asked,
    /// The link went away.
    Lost(HostError),
    /// The link went away and the page was told already.
    Reported,
}

/// What the session does after a command.
enum Next {
    Serve,
    Disconnect,
    /// The link went away during an update, which reported it.
    Gone,
}

/// The connection task's state.
struct Serving {
    dev: Device<Link>,
    dispatch: Dispatch,
    /// Raise the baud rate after connecting and after every restart (the agent starts
    /// again at its base rate).
    negotiate: bool,
}

impl Serving {
    async fn raise_baud(&mut self) {
        if self.negotiate {
            let before = self.dev.link().baud().unwrap_or(DEFAULT_BAUD);
            if let Err(e) = self.dev.negotiate_baud(&NEGOTIATE).await {
                self.log(
                    LogKind::Event,
                    format!("baud negotiation failed ({e}); staying at {before}"),
                );
            }
        }
        if let Some(b) = self.dev.link().baud() {
            self.dispatch.dispatch(Action::BaudChanged(b));
        }
    }

    fn log(&self, kind: LogKind, text: String) {
        self.dispatch.dispatch(Action::Log(kind, text));
    }

    async fn serve(mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
        let mut last_refresh: Option<Duration> = None;
        let mut silent = 0u32;
        let stop = 'serve: loop {
            loop {
                let command = match rx.try_recv() {
                    Ok(c) => c,
                    Err(mpsc::TryRecvError::Closed) => break 'serve Stop::Asked, // the page let go
                    Err(mpsc::TryRecvError::Empty) => break,
                };
                match self.run(command).await {
                    Ok(Next::Serve) => {}
                    Ok(Next::Disconnect) => break 'serve Stop::Asked,
                    Ok(Next::Gone) => break 'serve Stop::Reported,
                    Err(e) => break 'serve Stop::Lost(e),
                }
                last_refresh = Some(self.dev.now());
            }
            let now = self.dev.now();
            if last_refresh.is_none_or(|t| now.saturating_sub(t) >= REFRESH) {
                last_refresh = Some(now);
                match self.refresh().await {
                    Ok(true) => silent = 0,
                    Ok(false) => silent += 1,
                    Err(e) => break Stop::Lost(e),
                }
                if silent >= 2 {
                    // It restarted by itself (a watchdog): wait for it, at its base rate.
                    silent = 0;
                    self.log(
                        LogKind::Event,
                        "the device does not answer; waiting for it".into(),
                    );
                    match self.dev.wait_for_device().await {
                        Ok(_) => {
                            self.raise_baud().await;
                            if let Err(e) = self.refresh().await {
                                break Stop::Lost(e);
                            }
                        }
                        Err(e @ HostError::Link(_)) => break Stop::Lost(e),
                        Err(_) => {}
                    }
                }
            }
            if let Err(e) = self.dev.idle(IDLE_SLICE).await {
                break Stop::Lost(e);
            }
        };
        if matches!(stop, Stop::Asked) {
            // The agent goes back to its base rate at once, for the next connection.
            let _ = self.dev.goodbye().await;
        }
        self.dev.link().close().await;
        match stop {
            Stop::Asked => self.dispatch.dispatch(Action::Disconnected),
            Stop::Lost(e) => self.dispatch.dispatch(Action::Lost(problem_of(&e))),
            Stop::Reported => {}
        }
    }

    /// Read the record: `Ok(false)` if the device does not answer (rebooting), which
    /// only marks the record stale; `Err` when the link is gone.
    async fn refresh(&mut self) -> Result<bool, HostError> {
        match self.dev.get_record().await {
            Ok(r) => {
                self.dispatch.dispatch(Action::Record(r));
                Ok(true)
            }
            Err(e @ HostError::Link(_)) => Err(e),
            Err(e) => {
                self.dispatch.dispatch(Action::RecordStale);
                self.log(LogKind::Event, format!("record not read: {e}"));
                Ok(false)
            }
        }
    }

    /// Read `Info` again: an accepted update raises the device's minimum versions, which
    /// the page checks the next images against. `Err` only when the link is gone.
    async fn reread_info(&mut self) -> Result<(), HostError> {
        match self.dev.hello().await {
            Ok(info) => self.dispatch.dispatch(Action::InfoRead(Box::new(info))),
            Err(e @ HostError::Link(_)) => return Err(e),
            Err(e) => self.log(LogKind::Event, format!("device facts not read again: {e}")),
        }
        Ok(())
    }

    /// Whether the device's running slots hold `images` (kind, length, MD5).
    async fn runs(&mut self, images: &[(SlotKind, u32, [u8; 16])]) -> Result<bool, HostError> {
        let (same, record) = crate::installed::running_slots_hold(&mut self.dev, images).await?;
        self.dispatch.dispatch(Action::Record(record));
        Ok(same)
    }

    /// Run one command; `Err` means the link is gone.
    async fn run(&mut self, command: Command) -> Result<Next, HostError> {
        match command {
            Command::Refresh => {
                self.refresh().await?;
            }
            Command::Disconnect => return Ok(Next::Disconnect),
            Command::CheckInstalled(images) => {
                let same = match self.runs(&images).await {
                    Ok(same) => same,
                    Err(e @ HostError::Link(_)) => return Err(e),
                    Err(e) => {
                        self.log(
                            LogKind::Event,
                            format!("could not tell whether it is installed already: {e}"),
                        );
                        false
                    }
                };
                self.dispatch.dispatch(Action::Installed {
                    asked: images,
                    same,
                });
            }
            Command::Update(plan, cancel) => {
                cancel.reset();
                self.dev.set_cancel(cancel);
                let result = fota_host::update(&mut self.dev, &plan).await;
                let lost = matches!(result, Err(HostError::Link(_)));
                let restarted = result
                    .as_ref()
                    .is_ok_and(|r| r.outcome != fota_host::Outcome::Attempted);
                self.dispatch.dispatch(Action::UpdateDone(
                    result.map(Box::new).map_err(|e| Stopped::from(&e)),
                ));
                if lost {
                    return Ok(Next::Gone);
                }
                self.dev.set_cancel(fota_host::CancelToken::new());
                if restarted {
                    self.raise_baud().await;
                }
                self.reread_info().await?;
                self.refresh().await?;
            }
            Command::Accept => {
                match self.dev.accept().await {
                    Ok(outcome) => {
                        self.log(LogKind::App, format!("accept(): {}", outcome.describe()))
                    }
                    Err(e @ HostError::Link(_)) => return Err(e),
                    Err(e) => self.log(LogKind::Error, format!("accept failed: {e}. {}", e.help())),
                }
                self.reread_info().await?;
                self.refresh().await?;
            }
            Command::Restart => {
                self.log(LogKind::App, "restarting the device".into());
                match self.dev.restart().await {
                    Ok(()) => {}
                    Err(e @ HostError::Link(_)) => return Err(e),
                    Err(e) => self.log(LogKind::Error, format!("restart failed: {e}")),
                }
                self.dev.wait_for_device().await?;
                self.log(LogKind::App, "the device is back".into());
                self.raise_baud().await;
                self.refresh().await?;
            }
        }
        Ok(Next::Serve)
    }
}
