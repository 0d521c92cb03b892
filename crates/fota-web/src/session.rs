//! The connection task: one `spawn_local` future owns the [`Device`] for as long as the
//! page is connected, takes [`Command`]s from the page, reads the record every
//! ~1.5 s while idle, and reports everything back through the reducer.

use core::time::Duration;
use std::rc::Rc;

use fota_host::protocol::DEFAULT_BAUD;
use fota_host::{Device, HostError, Observer, Plan, Progress, Step, Transport};
use futures::channel::mpsc;
use yew::UseReducerDispatcher;

use crate::state::{Action, AppState, Connection, LogKind, NEGOTIATE, Problem, Settings, TransportKind};
use crate::transport::serial::SerialLink;
use crate::transport::sim::SimLink;
use crate::transport::ws::WsLink;
use crate::transport::{Link, now_ms};

type Dispatch = UseReducerDispatcher<AppState>;

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
    /// Close the link.
    Disconnect,
}

/// The page's handle on the connection task. Compares by identity.
#[derive(Clone)]
pub struct Session(Rc<mpsc::UnboundedSender<Command>>);

impl PartialEq for Session {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

impl Session {
    pub fn send(&self, command: Command) {
        let _ = self.0.unbounded_send(command);
    }
}

/// Reports fota-host's steps, progress and log lines as actions.
struct UiObserver {
    dispatch: Dispatch,
    last_progress: f64,
}

impl Observer for UiObserver {
    fn step(&mut self, step: Step, detail: &str) {
        self.dispatch.dispatch(Action::Step(step, detail.to_string()));
    }

    fn progress(&mut self, p: &Progress) {
        // Enough to look smooth, not so often that drawing slows the transfer.
        let now = now_ms();
        if now - self.last_progress >= 80.0 || p.done >= p.total || p.done == 0 {
            self.last_progress = now;
            self.dispatch.dispatch(Action::Progress(*p));
        }
    }

    fn device_log(&mut self, line: &str) {
        self.dispatch.dispatch(Action::Log(LogKind::Device, line.to_string()));
    }

    fn event(&mut self, line: &str) {
        self.dispatch.dispatch(Action::Log(LogKind::Event, line.to_string()));
    }
}

/// Open the link `settings` describe, say hello, and serve the page until disconnected.
pub async fn connect(settings: Settings, dispatch: Dispatch) {
    dispatch.dispatch(Action::Connecting);
    let opened = match settings.transport {
        TransportKind::Sim => Ok(Link::Sim(SimLink::new(settings.layout))),
        TransportKind::Serial => SerialLink::request(settings.baud).await.map(Link::Serial),
        TransportKind::WebSocket => WsLink::connect(&settings.ws_url).await.map(Link::Ws),
    };
    let link = match opened {
        Ok(link) => link,
        Err(e) => {
            dispatch.dispatch(Action::ConnectFailed(e.into()));
            return;
        }
    };
    let label = link.label();
    let negotiate = settings.negotiate && link.has_baud();
    dispatch.dispatch(Action::Log(LogKind::App, format!("opened {label}, saying hello")));
    let observer = UiObserver { dispatch: dispatch.clone(), last_progress: 0.0 };
    let mut dev = Device::new(link, Box::new(observer));
    let info = match dev.hello().await {
        Ok(info) => info,
        Err(e) => {
            dispatch.dispatch(Action::ConnectFailed((&e).into()));
            dev.link().close().await;
            return;
        }
    };
    let (tx, rx) = mpsc::unbounded();
    let baud = dev.link().baud();
    dispatch.dispatch(Action::Connected(Box::new(Connection {
        kind: settings.transport,
        info,
        link: label,
        baud,
        session: Session(Rc::new(tx)),
    })));
    if negotiate {
        match dev.negotiate_baud(&NEGOTIATE).await {
            Ok(b) => dispatch.dispatch(Action::BaudChanged(b)),
            Err(e) => dispatch.dispatch(Action::Log(
                LogKind::Event,
                format!("baud negotiation failed ({e}); staying at {}", baud.unwrap_or(DEFAULT_BAUD)),
            )),
        }
    }
    serve(dev, rx, dispatch).await;
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

async fn serve(mut dev: Device<Link>, mut rx: mpsc::UnboundedReceiver<Command>, dispatch: Dispatch) {
    let mut last_refresh: Option<Duration> = None;
    let stop = 'serve: loop {
        loop {
            let command = match rx.try_recv() {
                Ok(c) => c,
                Err(mpsc::TryRecvError::Closed) => break 'serve Stop::Asked, // the page let go
                Err(mpsc::TryRecvError::Empty) => break,
            };
            match run(&mut dev, command, &dispatch).await {
                Ok(Next::Serve) => {}
                Ok(Next::Disconnect) => break 'serve Stop::Asked,
                Ok(Next::Gone) => break 'serve Stop::Reported,
                Err(e) => break 'serve Stop::Lost(e),
            }
            last_refresh = Some(dev.now());
        }
        let due = last_refresh.is_none_or(|t| dev.now().saturating_sub(t) >= REFRESH);
        if due {
            last_refresh = Some(dev.now());
            if let Err(e) = refresh(&mut dev, &dispatch).await {
                break Stop::Lost(e);
            }
        }
        if let Err(e) = dev.idle(IDLE_SLICE).await {
            break Stop::Lost(e);
        }
    };
    dev.link().close().await;
    match stop {
        Stop::Asked => dispatch.dispatch(Action::Disconnected),
        Stop::Lost(e) => dispatch.dispatch(Action::Lost((&e).into())),
        Stop::Reported => {}
    }
}

/// Read the record. A device that does not answer (rebooting) only marks the record
/// stale; a lost link ends the session.
async fn refresh(dev: &mut Device<Link>, dispatch: &Dispatch) -> Result<(), HostError> {
    match dev.get_record().await {
        Ok(r) => {
            dispatch.dispatch(Action::Record(r));
            Ok(())
        }
        Err(e @ HostError::Link(_)) => Err(e),
        Err(e) => {
            dispatch.dispatch(Action::RecordStale);
            dispatch.dispatch(Action::Log(LogKind::Event, format!("record not read: {e}")));
            Ok(())
        }
    }
}

/// Run one command; `Err` means the link is gone.
async fn run(dev: &mut Device<Link>, command: Command, dispatch: &Dispatch) -> Result<Next, HostError> {
    match command {
        Command::Refresh => refresh(dev, dispatch).await?,
        Command::Disconnect => return Ok(Next::Disconnect),
        Command::Update(plan, cancel) => {
            cancel.reset();
            dev.set_cancel(cancel);
            let result = fota_host::update(dev, &plan).await;
            let lost = matches!(result, Err(HostError::Link(_)));
            dispatch.dispatch(Action::UpdateDone(
                result.map(Box::new).map_err(|e| (Problem::from(&e), lost)),
            ));
            if lost {
                return Ok(Next::Gone);
            }
            dev.set_cancel(fota_host::CancelToken::new());
            refresh(dev, dispatch).await?;
        }
        Command::Accept => {
            match dev.accept().await {
                Ok(()) => dispatch.dispatch(Action::Log(LogKind::App, "accepted the running configuration".into())),
                Err(e @ HostError::Link(_)) => return Err(e),
                Err(e) => dispatch.dispatch(Action::Log(LogKind::Error, format!("accept failed: {e}. {}", e.help()))),
            }
            refresh(dev, dispatch).await?;
        }
        Command::Restart => {
            dispatch.dispatch(Action::Log(LogKind::App, "restarting the device".into()));
            match dev.restart().await {
                Ok(()) => {}
                Err(e @ HostError::Link(_)) => return Err(e),
                Err(e) => dispatch.dispatch(Action::Log(LogKind::Error, format!("restart failed: {e}"))),
            }
            match dev.wait_for_device().await {
                Ok(_) => dispatch.dispatch(Action::Log(LogKind::App, "the device is back".into())),
                Err(e) => return Err(e),
            }
            refresh(dev, dispatch).await?;
        }
    }
    Ok(Next::Serve)
}
