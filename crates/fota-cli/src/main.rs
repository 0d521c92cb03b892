//! `fota`: update a device's firmware over a serial port or a WebSocket, serve a
//! simulated device, or bridge a serial port to a browser.

mod baud_memo;
mod bench;
mod bench_image;
mod bridge;
mod commands;
mod connection;
mod firmware_build;
mod qemu;
mod relay;
mod render;
mod serve;
mod sim_server;
mod ws_access;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::json;

use commands::{Global, Session};
use fota_host::Problem;
use render::json_line;

// `bench` reads its durations with the same check as every command.
use commands::secs;

#[derive(Parser)]
#[command(
    name = "fota",
    version,
    about = "Firmware over the air: update a device's firmware safely over a serial port or a WebSocket"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a simulated device on a pseudo-terminal and/or a WebSocket.
    Sim(commands::sim::SimArgs),
    /// Show the agent and the flash layout.
    Info,
    /// Show the FOTA record.
    Record(commands::record::RecordArgs),
    /// Update the firmware: erase, stream, checksum, attempt, restart, outcome.
    /// Images may be raw .bin, Intel HEX, ELF or UF2, packed (`fota image pack`) or not;
    /// what each is, and whether the device takes it, is shown before anything is written.
    Flash(commands::flash::FlashArgs),
    /// Print the device's MD5 of a slot (and compare it with an image).
    Checksum(commands::checksum::ChecksumArgs),
    /// Make (bytecode slot, VM slot) the configuration tried at the next restart.
    /// The device's MD5 of each slot is compared with the image first (`--image`,
    /// `--vm-image`); `--force` attempts unchecked.
    Attempt(commands::attempt::AttemptArgs),
    /// Make the running configuration the last working one.
    Accept,
    /// Restart the device.
    Restart,
    /// Expose the serial port to a browser on a loopback WebSocket.
    /// Programs connect with the printed URL (it carries this run's token); web pages only
    /// from the allowed origins.
    Bridge(commands::bridge::BridgeArgs),
    /// Serve the web app (a `trunk build` directory) with its Content-Security-Policy.
    Serve(commands::serve::ServeArgs),
    /// Run the real firmware on an emulated Cortex-M4 (QEMU mps2-an386) and print its
    /// serial port.
    Qemu(commands::qemu::QemuArgs),
    /// Measure updates against the physical limit and lrzsz over a modelled serial link.
    Bench(bench::BenchArgs),
    /// Make, sign, inspect and check firmware images (no device needed).
    Image(commands::image::ImageArgs),
    /// Write a sample image to try the tool with `fota sim`.
    Sample(commands::sample::SampleArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let json = cli.global.json;
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(p) => {
            if json {
                json_line(json!({"event": "error", "message": p.message, "help": p.help}));
            }
            eprintln!("error: {}", p.message);
            if !p.help.is_empty() {
                eprintln!("  help: {}", p.help);
            }
            if p == commands::flash::reverted() {
                ExitCode::from(commands::flash::REVERTED_EXIT)
            } else if p.message == commands::flash::ON_TRIAL {
                ExitCode::from(commands::flash::ON_TRIAL_EXIT)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

async fn run(cli: Cli) -> Result<(), Problem> {
    let global = &cli.global;
    let mut session = match &cli.command {
        Command::Sim(args) => return commands::sim::run(args, global).await,
        Command::Serve(args) => return commands::serve::run(args).await,
        Command::Bench(args) => {
            return bench::run(args, global.json)
                .await
                .map_err(|e| Problem::new(e, ""));
        }
        Command::Qemu(args) => return commands::qemu::run(args, global).await,
        Command::Image(args) => return commands::image::run(args, global.json),
        Command::Sample(args) => return commands::sample::run(args),
        Command::Bridge(args) => return commands::bridge::run(args, global).await,
        _ => Session::open(global).await?,
    };
    let result = match session.supported() {
        Err(e) => Err(e),
        Ok(()) => match &cli.command {
            Command::Info => {
                commands::info::run(&session, global);
                Ok(())
            }
            Command::Record(args) => commands::record::run(&mut session, args, global).await,
            Command::Flash(args) => commands::flash::run(&mut session, args, global).await,
            Command::Checksum(args) => commands::checksum::run(&mut session, args, global).await,
            Command::Attempt(args) => commands::attempt::run(&mut session, args, global).await,
            Command::Accept => commands::accept::run(&mut session, global).await,
            Command::Restart => commands::restart::run(&mut session, global).await,
            Command::Sim(_)
            | Command::Serve(_)
            | Command::Bench(_)
            | Command::Qemu(_)
            | Command::Image(_)
            | Command::Sample(_)
            | Command::Bridge(_) => Ok(()),
        },
    };
    session.close().await;
    result
}
