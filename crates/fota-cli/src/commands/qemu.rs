//! `fota qemu`: the real firmware on an emulated Cortex-M4.

use std::path::PathBuf;

use clap::Args;

use super::sim::ServeArgs;
use super::{Global, LayoutArg};
use crate::qemu;
use fota_host::Problem;

#[derive(Args)]
pub struct QemuArgs {
    #[arg(long, value_enum, default_value = "bytecode")]
    layout: LayoutArg,
    /// Keep the flash in this file (QEMU's file-backed RAM): killing QEMU is a power
    /// cut, and the next start boots from what the file holds.
    #[arg(long)]
    state: Option<PathBuf>,
    #[command(flatten)]
    serve: ServeArgs,
    /// A directory with the built firmware, instead of building it.
    #[arg(long)]
    firmware: Option<PathBuf>,
    /// Where the firmware's debug console (UART1) goes.
    #[arg(long)]
    debug_log: Option<PathBuf>,
    /// Make each sector erase take this many milliseconds (slow flash, like an
    /// STM32F4's 128 KiB sectors at 1,000 to 2,000); the watchdog's period grows to
    /// stay longer than one erase.
    #[arg(long, default_value_t = 0)]
    erase_ms: u32,
}

pub async fn run(args: &QemuArgs, global: &Global) -> Result<(), Problem> {
    let QemuArgs {
        layout,
        state,
        serve: ServeArgs { pty: _, ws, access },
        firmware,
        debug_log,
        erase_ms,
    } = args;
    let opts = qemu::QemuOptions {
        erase_ms: *erase_ms,
        vm_layout: matches!(layout, LayoutArg::Vm),
        state: state.clone(),
        ws: ws.clone(),
        access: access.clone(),
        firmware: firmware.clone(),
        debug_log: debug_log.clone(),
        json: global.json,
    };
    qemu::run(opts)
        .await
        .map_err(|e| Problem::new(e.message, e.help))
}
