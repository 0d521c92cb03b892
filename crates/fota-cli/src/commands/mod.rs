//! One module per `fota` command: its arguments and what it does. The commands that
//! talk to a device get a [`Session`]: the device connected, its `Info` read.

pub mod accept;
pub mod attempt;
pub mod bridge;
pub mod checksum;
pub mod flash;
pub mod image;
pub mod info;
pub mod qemu;
pub mod record;
pub mod restart;
pub mod sample;
pub mod serve;
pub mod sim;

use std::time::Duration;

use clap::{Args, ValueEnum};
use fota_host::protocol::Info;
use fota_host::{CancelToken, Device, HostError, Image, Problem};

use crate::baud_memo;
use crate::connection;
use crate::render::{Printer, Style};

/// The options every command takes.
#[derive(Args)]
pub struct Global {
    /// The device: a serial port (/dev/ttyUSB0, COM3) or a WebSocket URL (ws://127.0.0.1:9000).
    #[arg(long, short, global = true, env = "FOTA_PORT")]
    pub port: Option<String>,
    /// Baud rate to connect at (the agent starts at 115200); with `sim`, the rate the
    /// simulated agent starts at.
    #[arg(long, global = true, default_value_t = 115_200)]
    pub baud: u32,
    /// Stay at the connect baud rate instead of switching to the fastest both sides support.
    #[arg(long, global = true)]
    pub no_negotiate: bool,
    /// Print JSON lines (one per event, and a result line) for scripts.
    #[arg(long, global = true)]
    pub json: bool,
    /// Show link events (retries, baud changes).
    #[arg(long, short, global = true)]
    pub verbose: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LayoutArg {
    /// VM | bytecode 0 | bytecode 1 | record
    Bytecode,
    /// VM 0 | bytecode 0 | VM 1 | bytecode 1 | record
    Vm,
}

/// clap's names for the protocol's layouts (`bytecode`, `vm`: [`LayoutKind::key`]).
///
/// [`LayoutKind::key`]: fota_protocol::LayoutKind::key
impl From<LayoutArg> for fota_protocol::LayoutKind {
    fn from(l: LayoutArg) -> Self {
        match l {
            LayoutArg::Bytecode => fota_protocol::LayoutKind::BytecodeOnly,
            LayoutArg::Vm => fota_protocol::LayoutKind::VmAndBytecode,
        }
    }
}

/// A number of seconds typed by the user as a `Duration`; a negative, infinite or
/// not-a-number value is an error, not a crash.
pub fn secs(flag: &str, seconds: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("--{flag}: {seconds} is not a usable number of seconds"))
}

pub fn read_image(path: &std::path::Path) -> Result<Image, Problem> {
    let bytes = std::fs::read(path).map_err(|e| {
        Problem::new(
            format!("cannot read {}: {e}", path.display()),
            "Check the path of the image file.",
        )
    })?;
    Ok(Image::new(path.display().to_string(), bytes)?)
}

/// The device named with `--port`.
pub fn port(global: &Global) -> Result<String, Problem> {
    let Some(port) = global.port.clone() else {
        return Err(Problem::new(
            "no device given",
            "Name the device with --port (a serial port like /dev/ttyUSB0, or ws://HOST:PORT); \
             try `fota sim --pty` for a simulated one.",
        ));
    };
    Ok(port)
}

/// A device connected: what the commands that talk to one work with.
pub struct Session {
    pub dev: Device<connection::Connection>,
    pub info: Info,
    pub port: String,
    pub memo: baud_memo::Memo,
}

impl Session {
    /// Open the port, connect (at the rate the last command negotiated on it too) and read
    /// the device's `Info`; Ctrl-C cancels at the next safe point.
    pub async fn open(global: &Global) -> Result<Session, Problem> {
        let port = port(global)?;
        let style = Style::pick(global.json);
        let link = connection::open(&port, global.baud).await?;
        let mut dev = Device::new(link, Box::new(Printer::new(style, global.verbose)));
        let cancel = CancelToken::new();
        dev.set_cancel(cancel.clone());
        {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    eprintln!("\ncancelling at the next safe point (Ctrl-C again to quit now)");
                    cancel.cancel();
                    if tokio::signal::ctrl_c().await.is_ok() {
                        std::process::exit(130);
                    }
                }
            });
        }
        // A device an earlier session left at a negotiated rate (killed, or its cable
        // pulled before it said goodbye) answers there until its idle time runs out.
        let memo = baud_memo::Memo::open();
        let others = [memo.get(&port).unwrap_or(NEGOTIATE[0])];
        let info = dev.connect(&others).await?;
        Ok(Session {
            dev,
            info,
            port,
            memo,
        })
    }

    /// A device without FOTA support can take no command.
    pub fn supported(&self) -> Result<(), Problem> {
        if !self.info.fota_supported {
            return Err(HostError::Unsupported.into());
        }
        Ok(())
    }

    /// The agent goes back to its base rate at once, ready for the next command.
    pub async fn close(mut self) {
        let _ = self.dev.goodbye().await;
    }
}

/// The rates `fota` raises the link to, fastest first.
pub use fota_protocol::NEGOTIATE_BAUDS as NEGOTIATE;
