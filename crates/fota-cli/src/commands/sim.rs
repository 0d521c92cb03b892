//! `fota sim`: serve a simulated device on a pseudo-terminal and/or a WebSocket.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::{Global, LayoutArg, secs};
use crate::{sim_server, ws_access};
use fota_host::Problem;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FlashArg {
    /// A W25Q128JV SPI NOR flash: 4 KiB sectors, 45 ms to erase one.
    W25q128jv,
    /// An STM32F4's internal flash: 16, 64 and 128 KiB sectors, up to 2 s to erase one.
    Stm32f4,
}

/// Where `fota sim` and `fota qemu` serve their device: a pseudo-terminal and/or a
/// WebSocket with `fota bridge`'s access rules.
#[derive(Args)]
pub struct ServeArgs {
    /// Serve on a pseudo-terminal and print its path (`fota qemu` always does).
    #[arg(long)]
    pub pty: bool,
    /// Serve on a WebSocket at this loopback address (127.0.0.1:9000), as `fota bridge`
    /// does: programs connect with the printed URL (it carries this run's token); web
    /// pages only from the allowed origins.
    #[arg(long)]
    pub ws: Option<String>,
    #[command(flatten)]
    pub access: ws_access::AccessArgs,
}

#[derive(Args)]
pub struct SimArgs {
    #[arg(long, value_enum, default_value = "bytecode")]
    layout: LayoutArg,
    /// The flash part: its sector sizes and erase times.
    #[arg(long, value_enum, default_value = "w25q128jv")]
    flash: FlashArg,
    #[command(flatten)]
    serve: ServeArgs,
    /// Keep the flash in this file: a killed simulator comes back as it was.
    #[arg(long)]
    state: Option<PathBuf>,
    /// One-way latency of the modelled line, in milliseconds.
    #[arg(long, default_value_t = 1.0)]
    latency_ms: f64,
    /// Model a firmware without FOTA support.
    #[arg(long)]
    unsupported: bool,
    /// Run the simulation 20 times faster than real time.
    #[arg(long)]
    fast: bool,
    /// Milliseconds a healthy new firmware takes to pass its self-test and accept.
    #[arg(long, default_value_t = 300)]
    accept_after_ms: u64,
    /// Model a device that runs only images signed by one of these public keys
    /// (PEM files or 64 hex digits, as `fota image keygen` writes them; repeat for
    /// several): unsigned, raw and wrongly signed images are refused.
    #[arg(long = "require-signatures", value_name = "PUBLIC_KEY")]
    require_signatures: Vec<String>,
    /// Model a device that takes packed images only (no raw ones).
    #[arg(long)]
    packed_only: bool,
    /// Model a device that never takes an older version (no downgrade, even confirmed).
    #[arg(long)]
    no_downgrade: bool,
    /// Model an agent without image checks (any slot content can be made current).
    #[arg(long)]
    no_image_checks: bool,
    /// Model a flash driver that waits for each erase (no erase suspend: `Info` tag 11
    /// absent), as most boards' drivers do.
    #[arg(long)]
    no_erase_suspend: bool,
}

pub async fn run(args: &SimArgs, global: &Global) -> Result<(), Problem> {
    let SimArgs {
        layout,
        flash,
        serve: ServeArgs { pty, ws, access },
        state,
        latency_ms,
        unsupported,
        fast,
        accept_after_ms,
        require_signatures,
        packed_only,
        no_downgrade,
        no_image_checks,
        no_erase_suspend,
    } = args;
    let images = sim_server::image_policy(
        require_signatures,
        *packed_only,
        *no_downgrade,
        *no_image_checks,
    )
    .map_err(|e| Problem::new(e, "Give public key files written by fota image keygen."))?;
    let opts = sim_server::SimOptions {
        layout: (*layout).into(),
        flash: match flash {
            FlashArg::W25q128jv => fota_sim::device::FlashKind::W25q128jv,
            FlashArg::Stm32f4 => fota_sim::device::FlashKind::Stm32f4,
        },
        pty: *pty,
        ws: ws.clone(),
        state: state.clone(),
        // `--baud`: the rate the simulated agent starts at.
        baud: global.baud,
        latency: secs("latency-ms", latency_ms / 1000.0)
            .map_err(|e| Problem::new(e, "Give the latency in milliseconds, like 1 or 16."))?,
        unsupported: *unsupported,
        images,
        fast: *fast,
        accept_after: Duration::from_millis(*accept_after_ms),
        access: access.clone(),
        erase_suspend: !*no_erase_suspend,
    };
    sim_server::run(opts).await.map_err(|e| Problem::new(e, ""))
}
