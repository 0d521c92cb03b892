//! `fota`: update a device's firmware over a serial port or a WebSocket, serve a
//! simulated device, or bridge a serial port to a browser.

mod baud_memo;
mod bench;
mod bench_image;
mod bridge;
mod image_cmd;
mod link;
mod qemu;
mod relay;
mod render;
mod serve;
mod sim_server;
mod ws_access;

use fota_host::protocol::Layout as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use fota_host::protocol::{AcceptOutcome, Info, Record, RecordState, SlotKind};
use fota_host::update::{Outcome, Plan, SlotChoice};
use fota_host::{CancelToken, Device, HostError, Image};
use serde_json::json;

use render::{Printer, Style, human_bytes, json_line};

#[derive(Parser)]
#[command(
    name = "fota",
    version,
    about = "Firmware over the air: update a device's firmware safely over a serial port or a WebSocket"
)]
struct Cli {
    /// The device: a serial port (/dev/ttyUSB0, COM3) or a WebSocket URL (ws://127.0.0.1:9000).
    #[arg(long, short, global = true, env = "FOTA_PORT")]
    port: Option<String>,
    /// Baud rate to connect at (the agent starts at 115200); with `sim`, the rate the
    /// simulated agent starts at.
    #[arg(long, global = true, default_value_t = 115_200)]
    baud: u32,
    /// Stay at the connect baud rate instead of switching to the fastest both sides support.
    #[arg(long, global = true)]
    no_negotiate: bool,
    /// Print JSON lines (one per event, and a result line) for scripts.
    #[arg(long, global = true)]
    json: bool,
    /// Show link events (retries, baud changes).
    #[arg(long, short, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LayoutArg {
    /// VM | bytecode 0 | bytecode 1 | record
    Bytecode,
    /// VM 0 | bytecode 0 | VM 1 | bytecode 1 | record
    Vm,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FlashArg {
    /// A W25Q128JV SPI NOR flash: 4 KiB sectors, 45 ms to erase one.
    W25q128jv,
    /// An STM32F4's internal flash: 16, 64 and 128 KiB sectors, up to 2 s to erase one.
    Stm32f4,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum SampleArg {
    /// A bytecode program that tests itself and confirms itself (accept).
    Healthy,
    /// A bytecode program that hangs before it confirms itself: the watchdog resets the
    /// device and it reverts.
    Faulty,
    /// A bytecode program whose self-test fails: it gives its trial up and the device
    /// reverts.
    Failing,
    /// A VM image (for the VM + bytecode layout).
    Vm,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a simulated device on a pseudo-terminal and/or a WebSocket.
    Sim {
        #[arg(long, value_enum, default_value = "bytecode")]
        layout: LayoutArg,
        /// The flash part: its sector sizes and erase times.
        #[arg(long, value_enum, default_value = "w25q128jv")]
        flash: FlashArg,
        /// Serve on a pseudo-terminal and print its path.
        #[arg(long)]
        pty: bool,
        /// Serve on a WebSocket at this loopback address (127.0.0.1:9000). Programs connect
        /// with the printed URL (it carries this run's token); web pages only from the
        /// allowed origins.
        #[arg(long)]
        ws: Option<String>,
        #[command(flatten)]
        access: ws_access::AccessArgs,
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
    },
    /// Show the agent and the flash layout.
    Info,
    /// Show the FOTA record.
    Record {
        /// Keep watching and print every change (across restarts).
        #[arg(long)]
        watch: bool,
        /// Stop watching after this many seconds.
        #[arg(long)]
        timeout: Option<f64>,
    },
    /// Update the firmware: erase, stream, checksum, attempt, restart, outcome.
    /// Images may be raw .bin, Intel HEX, ELF or UF2, packed (`fota image pack`) or not;
    /// what each is, and whether the device takes it, is shown before anything is written.
    Flash {
        /// The new bytecode image.
        image: PathBuf,
        /// A new VM image too (layouts with two VM slots).
        #[arg(long)]
        vm: Option<PathBuf>,
        /// Install an image older than the device's minimum version (a downgrade), where
        /// the device allows it.
        #[arg(long)]
        allow_downgrade: bool,
        /// Write the image even if the device already runs it.
        #[arg(long)]
        reinstall: bool,
        /// Bytecode slot index (default: the agent's choice).
        #[arg(long)]
        slot: Option<u32>,
        /// VM slot index (default: the agent's choice).
        #[arg(long)]
        vm_slot: Option<u32>,
        /// Attempt but do not restart: the new firmware runs from the next restart.
        #[arg(long)]
        no_restart: bool,
        /// Send every sector even if the slot already holds part of the image.
        #[arg(long)]
        no_resume: bool,
        /// Seconds to wait for the new firmware to confirm itself.
        #[arg(long, default_value_t = 15.0)]
        wait: f64,
        /// How to send the image: auto (the smallest the device takes: a delta from an
        /// image it holds, else compressed, else raw), none (raw), lzma (compressed), or
        /// delta (from a --from image the device holds, else compressed). Devices whose
        /// agent has no decoder always get the raw image.
        #[arg(long, default_value = "auto", value_parser = clap::value_parser!(fota_host::Codec))]
        codec: fota_host::Codec,
        /// An image the device may hold (the firmware it runs, an earlier release): the
        /// update is sent as a delta from it when the device's MD5 of one of its slots
        /// matches it. May be given several times.
        #[arg(long = "from", value_name = "OLD_IMAGE")]
        from: Vec<PathBuf>,
    },
    /// Print the device's MD5 of a slot (and compare it with an image).
    Checksum {
        /// Bytecode slot index (default: the current one).
        #[arg(long)]
        slot: Option<u32>,
        /// A VM slot instead of a bytecode slot.
        #[arg(long)]
        vm: bool,
        /// Compare with this image (hashes the image's length of the slot).
        #[arg(long)]
        image: Option<PathBuf>,
        /// Bytes to hash (default: the image's size, else the whole slot).
        #[arg(long)]
        size: Option<u32>,
    },
    /// Make (bytecode slot, VM slot) the configuration tried at the next restart.
    /// The device's MD5 of each slot is compared with the image first (`--image`,
    /// `--vm-image`); `--force` attempts unchecked.
    Attempt {
        #[arg(long)]
        bc: u32,
        /// VM slot (default: the current one).
        #[arg(long)]
        vm: Option<u32>,
        /// The bytecode image the slot must hold.
        #[arg(long)]
        image: Option<PathBuf>,
        /// The VM image the VM slot must hold.
        #[arg(long)]
        vm_image: Option<PathBuf>,
        /// Attempt without comparing the slots with images.
        #[arg(long)]
        force: bool,
    },
    /// Make the running configuration the last working one.
    Accept,
    /// Restart the device.
    Restart,
    /// Expose the serial port to a browser on a loopback WebSocket.
    /// Programs connect with the printed URL (it carries this run's token); web pages only
    /// from the allowed origins.
    Bridge {
        /// Address to listen on, e.g. 127.0.0.1:9000.
        #[arg(long)]
        ws: String,
        #[command(flatten)]
        access: ws_access::AccessArgs,
    },
    /// Serve the web app (a `trunk build` directory) with its Content-Security-Policy.
    Serve {
        /// The built web app.
        #[arg(default_value = "dist")]
        dir: PathBuf,
        /// Address to listen on (port 0: any free port, printed).
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: std::net::SocketAddr,
        /// Also let the page connect here (a WebSocket bridge on another computer, a
        /// firmware manifest's origin): a connect-src source like wss://bridge.example:9000.
        /// Repeatable.
        #[arg(long, value_name = "SOURCE")]
        connect_src: Vec<String>,
    },
    /// Run the real firmware on an emulated Cortex-M4 (QEMU mps2-an386) and print its
    /// serial port.
    Qemu {
        #[arg(long, value_enum, default_value = "bytecode")]
        layout: LayoutArg,
        /// Keep the flash in this file (QEMU's file-backed RAM): killing QEMU is a power
        /// cut, and the next start boots from what the file holds.
        #[arg(long)]
        state: Option<PathBuf>,
        /// Serve on a pseudo-terminal and print its path (the default).
        #[arg(long)]
        pty: bool,
        /// Serve on a WebSocket at this loopback address too (as `fota bridge` does, with
        /// its origin check and token).
        #[arg(long)]
        ws: Option<String>,
        #[command(flatten)]
        access: ws_access::AccessArgs,
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
    },
    /// Measure updates against the physical limit and lrzsz over a modelled serial link.
    Bench(bench::BenchArgs),
    /// Make, sign, inspect and check firmware images (no device needed).
    Image(image_cmd::ImageArgs),
    /// Write a sample image to try the tool with `fota sim`.
    Sample {
        #[arg(value_enum)]
        which: SampleArg,
        /// Where to write it.
        #[arg(long, short)]
        out: PathBuf,
        /// For `healthy`: make the program this many bytes (it carries data), to
        /// measure updates of a given size.
        #[arg(long)]
        size: Option<usize>,
    },
}

/// An error for the user: what happened and what to do.
struct Failure {
    message: String,
    help: String,
    code: u8,
}

impl From<HostError> for Failure {
    fn from(e: HostError) -> Self {
        Failure {
            message: e.to_string(),
            help: e.help(),
            code: 1,
        }
    }
}

impl From<link::OpenError> for Failure {
    fn from(e: link::OpenError) -> Self {
        Failure {
            message: e.message,
            help: e.help,
            code: 1,
        }
    }
}

/// A number of seconds typed by the user as a `Duration`; a negative, infinite or
/// not-a-number value is an error, not a crash.
pub(crate) fn secs(flag: &str, seconds: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("--{flag}: {seconds} is not a usable number of seconds"))
}

fn failure(message: impl Into<String>, help: impl Into<String>) -> Failure {
    Failure {
        message: message.into(),
        help: help.into(),
        code: 1,
    }
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
    let json = cli.json;
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if json {
                json_line(json!({"event": "error", "message": f.message, "help": f.help}));
            }
            eprintln!("error: {}", f.message);
            if !f.help.is_empty() {
                eprintln!("  help: {}", f.help);
            }
            ExitCode::from(f.code)
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let style = Style::pick(cli.json);
    match &cli.command {
        Command::Sim {
            layout,
            flash,
            pty,
            ws,
            state,
            latency_ms,
            unsupported,
            fast,
            accept_after_ms,
            access,
            require_signatures,
            packed_only,
            no_downgrade,
            no_image_checks,
        } => {
            let images = sim_server::image_policy(
                require_signatures,
                *packed_only,
                *no_downgrade,
                *no_image_checks,
            )
            .map_err(|e| failure(e, "Give public key files written by fota image keygen."))?;
            let opts = sim_server::SimOptions {
                layout: match layout {
                    LayoutArg::Bytecode => fota_sim::device::LayoutKind::BytecodeOnly,
                    LayoutArg::Vm => fota_sim::device::LayoutKind::VmAndBytecode,
                },
                flash: match flash {
                    FlashArg::W25q128jv => fota_sim::device::FlashKind::W25q128jv,
                    FlashArg::Stm32f4 => fota_sim::device::FlashKind::Stm32f4,
                },
                pty: *pty,
                ws: ws.clone(),
                state: state.clone(),
                // `--baud`: the rate the simulated agent starts at.
                baud: cli.baud,
                latency: secs("latency-ms", latency_ms / 1000.0)
                    .map_err(|e| failure(e, "Give the latency in milliseconds, like 1 or 16."))?,
                unsupported: *unsupported,
                images,
                fast: *fast,
                accept_after: Duration::from_millis(*accept_after_ms),
                access: access.clone(),
            };
            return sim_server::run(opts).await.map_err(|e| failure(e, ""));
        }
        Command::Serve {
            dir,
            addr,
            connect_src,
        } => {
            let opts = serve::ServeOptions {
                dir: dir.clone(),
                addr: *addr,
                connect_src: connect_src.clone(),
            };
            return serve::run(opts).await.map_err(|e| failure(e, ""));
        }
        Command::Bench(args) => {
            return bench::run(args, cli.json).await.map_err(|e| failure(e, ""));
        }
        Command::Qemu {
            layout,
            state,
            pty: _,
            ws,
            access,
            firmware,
            debug_log,
            erase_ms,
        } => {
            let opts = qemu::QemuOptions {
                erase_ms: *erase_ms,
                vm_layout: matches!(layout, LayoutArg::Vm),
                state: state.clone(),
                ws: ws.clone(),
                access: access.clone(),
                firmware: firmware.clone(),
                debug_log: debug_log.clone(),
                json: cli.json,
            };
            return qemu::run(opts)
                .await
                .map_err(|e| failure(e.message, e.help));
        }
        Command::Image(args) => return image_cmd::run(args, cli.json),
        Command::Sample { which, out, size } => {
            let program =
                |src: &str| fota_bytecode::assemble(src).map_err(|e| failure(e.to_string(), ""));
            let bytes = match (which, size) {
                (SampleArg::Healthy, Some(n)) if *n >= 128 => {
                    program(&fota_bytecode::samples::healthy_of_size("2", *n))?
                }
                (_, Some(_)) => {
                    return Err(failure(
                        "--size works for `healthy` only, from 128 bytes",
                        "Write `fota sample healthy --size 65536 -o big.bin`.",
                    ));
                }
                (SampleArg::Healthy, None) => program(fota_bytecode::samples::BLINK_V2)?,
                (SampleArg::Faulty, None) => program(fota_bytecode::samples::BLINK_V3_BROKEN)?,
                (SampleArg::Failing, None) => program(fota_bytecode::samples::BLINK_V4_FAILING)?,
                (SampleArg::Vm, None) => fota_sim::images::vm_v2(),
            };
            std::fs::write(out, &bytes).map_err(|e| {
                failure(
                    format!("cannot write {}: {e}", out.display()),
                    "Check the path.",
                )
            })?;
            eprintln!("wrote {} ({} bytes)", out.display(), bytes.len());
            return Ok(());
        }
        _ => {}
    }
    let Some(port) = cli.port.clone() else {
        return Err(failure(
            "no device given",
            "Name the device with --port (a serial port like /dev/ttyUSB0, or ws://HOST:PORT); \
             try `fota sim --pty` for a simulated one.",
        ));
    };
    if let Command::Bridge { ws, access } = &cli.command {
        return bridge::run(&port, cli.baud, ws, access)
            .await
            .map_err(Failure::from);
    }
    let link = link::open(&port, cli.baud).await?;
    let mut dev = Device::new(link, Box::new(Printer::new(style, cli.verbose)));
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
    let result = session(&cli, &mut dev, &info, &port, &memo).await;
    // The agent goes back to its base rate at once, ready for the next command.
    let _ = dev.goodbye().await;
    result
}

/// The rates `fota` raises the link to, fastest first.
const NEGOTIATE: [u32; 3] = [921_600, 460_800, 230_400];

/// What a command does once the device answered.
async fn session(
    cli: &Cli,
    dev: &mut Device<link::Link>,
    info: &Info,
    port: &str,
    memo: &baud_memo::Memo,
) -> Result<(), Failure> {
    let info = info.clone();
    let dev = &mut *dev;
    if !info.fota_supported {
        return Err(HostError::Unsupported.into());
    }
    match &cli.command {
        Command::Info => print_info(&info, cli.json),
        Command::Record { watch, timeout } => {
            let record = dev.get_record().await?;
            print_record(&record, cli.json);
            if *watch {
                watch_record(dev, record, *timeout, cli.json).await?;
            }
        }
        Command::Flash {
            image,
            vm,
            allow_downgrade,
            reinstall,
            slot,
            vm_slot,
            no_restart,
            no_resume,
            wait,
            codec,
            from,
        } => {
            let (bytecode, bc_linked) =
                read_firmware_for(image, &info, SlotKind::Bytecode, cli.json)?;
            let vm = vm
                .as_ref()
                .map(|p| read_firmware_for(p, &info, SlotKind::Vm, cli.json))
                .transpose()?;
            let mut plan = Plan::new(bytecode);
            let vm_linked = vm.as_ref().and_then(|v| v.1);
            plan.vm = vm.map(|v| v.0);
            plan.bytecode_slot = linked_choice(*slot, bc_linked)?;
            plan.vm_slot = linked_choice(*vm_slot, vm_linked)?;
            plan.allow_downgrade = *allow_downgrade;
            plan.check_installed = !*reinstall;
            plan.restart = !no_restart;
            plan.resume = !no_resume;
            plan.codec = *codec;
            plan.bases = from
                .iter()
                .map(|p| read_image(p))
                .collect::<Result<_, _>>()?;
            plan.wait_accept = secs("wait", *wait)
                .map_err(|e| failure(e, "Give the wait in seconds, like 15."))?;
            if !cli.no_negotiate {
                let rate = dev.negotiate_baud(&NEGOTIATE).await?;
                if rate != cli.baud {
                    memo.set(port, rate);
                }
            }
            let report = fota_host::update(dev, &plan).await?;
            let secs = report.stream_time.as_secs_f64();
            let rate = if secs > 0.0 {
                report.sent_bytes as f64 / secs
            } else {
                0.0
            };
            if cli.json {
                json_line(json!({
                    "event": "result",
                    "outcome": format!("{:?}", report.outcome),
                    "record": report.record.to_array(),
                    "sent_bytes": report.sent_bytes,
                    "skipped_bytes": report.skipped_bytes,
                    "stream_seconds": secs,
                    "erased_sectors": report.erased_sectors,
                    "device_erase_seconds": report.device_erase_time.as_secs_f64(),
                    "erase_wait_seconds": report.erase_time.as_secs_f64(),
                    "total_seconds": report.total_time.as_secs_f64(),
                }));
            } else {
                eprintln!(
                    "sent {} in {:.2} s ({}/s), {} already on the device; {}; total {:.2} s",
                    human_bytes(report.sent_bytes as f64),
                    secs,
                    human_bytes(rate),
                    human_bytes(report.skipped_bytes as f64),
                    report.describe_erases(),
                    report.total_time.as_secs_f64()
                );
                println!("{}", report.outcome.describe());
            }
            if report.outcome == Outcome::Reverted {
                return Err(Failure {
                    message: "the new firmware did not confirm itself: the device reverted".into(),
                    help: "The previous firmware runs. Check the new firmware calls accept() \
                           after its self-test."
                        .into(),
                    code: 3,
                });
            }
        }
        Command::Checksum {
            slot,
            vm,
            image,
            size,
        } => {
            let record = dev.get_record().await?;
            let kind = if *vm {
                SlotKind::Vm
            } else {
                SlotKind::Bytecode
            };
            let index = slot.unwrap_or(if *vm {
                record.vm_current
            } else {
                record.bc_current
            });
            let Some(desc) = info.slot(kind, index).copied() else {
                return Err(failure(
                    format!("no {kind:?} slot {index} in this layout"),
                    "`fota info` lists the slots.",
                ));
            };
            let image = image.as_ref().map(|p| read_image(p)).transpose()?;
            let size = match (size, &image) {
                (Some(s), _) => *s,
                (None, Some(img)) => img.len() as u32,
                (None, None) => desc.size,
            };
            let md5 = dev
                .checksum_slot(desc.addr, size, &mut |_, _, _, _| {})
                .await?;
            let hex: String = md5.iter().map(|b| format!("{b:02x}")).collect();
            let matches = image.as_ref().map(|img| img.md5() == md5);
            if cli.json {
                json_line(
                    json!({"event": "result", "addr": desc.addr, "size": size, "md5": hex, "matches": matches}),
                );
            } else {
                println!(
                    "{hex}  {kind:?} slot {index} @ {:#x}, {size} bytes",
                    desc.addr
                );
            }
            if matches == Some(false) {
                return Err(failure(
                    "the slot does not hold this image",
                    "Flash the image (fota flash), which sends only what differs.",
                ));
            }
        }
        Command::Attempt {
            bc,
            vm,
            image,
            vm_image,
            force,
        } => {
            let record = dev.get_record().await?;
            let vm = vm.unwrap_or(record.vm_current);
            if image.is_none() && !force {
                return Err(failure(
                    "attempt needs the image the slot should hold",
                    "Give --image FILE (and --vm-image FILE for a new VM) so the device's MD5 \
                     of the slot is compared first, or --force to attempt unchecked.",
                ));
            }
            for (kind, index, path) in [
                (SlotKind::Bytecode, *bc, image),
                (SlotKind::Vm, vm, vm_image),
            ] {
                let Some(path) = path else { continue };
                let img = read_image(path)?;
                let Some(slot) = info.slot(kind, index).copied() else {
                    return Err(failure(
                        format!("no {kind:?} slot {index} in this layout"),
                        "`fota info` lists the slots.",
                    ));
                };
                let len = u32::try_from(img.len()).unwrap_or(u32::MAX).min(slot.size);
                let md5 = dev
                    .checksum_slot(slot.addr, len, &mut |_, _, _, _| {})
                    .await?;
                if img.len() > slot.size as usize || md5 != img.md5() {
                    return Err(failure(
                        format!(
                            "{kind:?} slot {index} does not hold {}: nothing was attempted",
                            img.name
                        ),
                        "Flash the image (fota flash), which checks and attempts it.",
                    ));
                }
            }
            dev.attempt(*bc, vm).await?;
            print_record(&dev.get_record().await?, cli.json);
        }
        Command::Accept => {
            let outcome = dev.accept().await?;
            if cli.json {
                json_line(json!({
                    "event": "accept",
                    "outcome": format!("{outcome:?}"),
                    "accepted": outcome == AcceptOutcome::Accepted,
                    "detail": outcome.describe(),
                }));
            } else {
                println!("accept(): {}", outcome.describe());
            }
            print_record(&dev.get_record().await?, cli.json);
        }
        Command::Restart => {
            dev.restart().await?;
            dev.wait_for_device().await?;
            print_record(&dev.get_record().await?, cli.json);
        }
        Command::Sim { .. }
        | Command::Qemu { .. }
        | Command::Sample { .. }
        | Command::Bridge { .. }
        | Command::Serve { .. }
        | Command::Bench(_)
        | Command::Image(_) => {}
    }
    Ok(())
}

/// Read a firmware file of any format for a slot of `kind` of the device, and say what
/// it is (and any warning) before anything is written. Returns the image and the slot
/// index an addressed file is linked for.
fn read_firmware_for(
    path: &std::path::Path,
    info: &Info,
    kind: SlotKind,
    json: bool,
) -> Result<(Image, Option<u32>), Failure> {
    let bytes = std::fs::read(path).map_err(|e| {
        failure(
            format!("cannot read {}: {e}", path.display()),
            "Check the path of the image file.",
        )
    })?;
    let name = path.display().to_string();
    let p = fota_host::prepare(&name, &bytes, info, kind)?;
    if json {
        json_line(json!({
            "event": "image", "name": name, "format": p.format.to_string(),
            "summary": p.facts.summary(),
            "packed": p.facts.packed,
            "version": p.facts.version.map(|v| v.to_string()),
            "signed_by": p.facts.signed_by.iter().map(|k| k.to_string()).collect::<Vec<_>>(),
            "slot": p.slot.map(|s| s.index), "notes": p.notes, "warnings": p.warnings,
        }));
    } else {
        eprintln!("{name}: {}, {}", p.format, p.facts.summary());
        for n in &p.notes {
            eprintln!("  {n}");
        }
        for w in &p.warnings {
            eprintln!("  warning: {w}");
        }
    }
    Ok((p.image, p.slot.map(|s| u32::from(s.index))))
}

/// The slot choice: the one asked for, which must be the one an addressed file is linked
/// for, else that one, else automatic.
fn linked_choice(asked: Option<u32>, linked: Option<u32>) -> Result<SlotChoice, Failure> {
    match (asked, linked) {
        (Some(a), Some(l)) if a != l => Err(failure(
            format!("the file is linked for slot {l}, not slot {a}"),
            "Leave out the slot (the file's addresses choose it), or build the firmware for \
             the slot you want.",
        )),
        (Some(a), _) | (None, Some(a)) => Ok(SlotChoice::Index(a)),
        (None, None) => Ok(SlotChoice::Auto),
    }
}

fn read_image(path: &std::path::Path) -> Result<Image, Failure> {
    let bytes = std::fs::read(path).map_err(|e| {
        failure(
            format!("cannot read {}: {e}", path.display()),
            "Check the path of the image file.",
        )
    })?;
    Ok(Image::new(path.display().to_string(), bytes)?)
}

fn print_info(info: &Info, json: bool) {
    if json {
        let slots: Vec<_> = info
            .slots
            .iter()
            .map(|s| json!({"kind": format!("{:?}", s.kind), "index": s.index, "addr": s.addr, "size": s.size}))
            .collect();
        json_line(json!({
            "event": "result", "name": info.name.as_str(), "version": info.agent_version,
            "protocol": info.protocol_version, "fota": info.fota_supported,
            "sector_size": info.sector_size, "write_granularity": info.write_granularity,
            "max_write": info.max_write, "max_in_flight": info.max_in_flight,
            "max_baud": info.max_baud, "record_addr": info.record_addr,
            "record_size": info.record_size, "slots": slots,
            "boot_stage": info.boot_stage, "sector_erase_ms": info.sector_erase_ms,
            "baud_rates": info.baud_rates.as_slice(),
            "codecs": info.codecs.iter().map(|c| json!({"id": c.id, "ram": c.ram})).collect::<Vec<_>>(),
            "sectors": info.sectors.iter().map(|r| json!({"addr": r.addr, "size": r.size, "count": r.count})).collect::<Vec<_>>(),
        }));
        return;
    }
    let v = info.agent_version;
    println!(
        "agent        {} {}.{}.{} (protocol {})",
        info.name, v[0], v[1], v[2], info.protocol_version
    );
    println!(
        "flash        sector {} B, write unit {} B",
        info.sector_size, info.write_granularity
    );
    for r in &info.sectors {
        println!(
            "sectors      {} x {} from {:#010x}",
            r.count,
            human_bytes(f64::from(r.size)),
            r.addr
        );
    }
    if let Some(ms) = info.sector_erase_ms {
        println!("erase        a sector in {ms} ms at worst");
    }
    println!(
        "images       {}",
        fota_host::describe_rules(info.images.as_ref())
    );
    println!(
        "link         {} B per write, {} in flight, up to {} baud",
        info.max_write, info.max_in_flight, info.max_baud
    );
    if !info.baud_rates.is_empty() {
        let rates: Vec<String> = info.baud_rates.iter().map(u32::to_string).collect();
        println!("baud rates   {}", rates.join(", "));
    }
    for s in &info.slots {
        let kind = match s.kind {
            SlotKind::Vm => "VM",
            SlotKind::Bytecode => "bytecode",
        };
        let boot_stage = if s.kind == SlotKind::Vm && info.boot_stage == Some(s.index) {
            "  boot stage (never erased or written)"
        } else {
            ""
        };
        println!(
            "slot         {kind:<8} {}  {:#010x}  {}{boot_stage}",
            s.index,
            s.addr,
            human_bytes(f64::from(s.size))
        );
    }
    println!(
        "record       {:#010x}  {}",
        info.record_addr,
        human_bytes(f64::from(info.record_size))
    );
}

const FIELDS: [&str; 9] = [
    "valid",
    "FOTA VM index",
    "current VM slot",
    "last working VM slot",
    "current bytecode slot",
    "last working bytecode slot",
    "bytecode address",
    "VM address",
    "chunk",
];

fn state_name(state: RecordState) -> &'static str {
    match state {
        RecordState::Confirmed => "Confirmed",
        RecordState::Pending => "Pending",
        RecordState::Trial => "Trial",
    }
}

fn print_record(record: &Record, json: bool) {
    if json {
        json_line(json!({
            "event": "record",
            "record": record.to_array(),
            "valid": record.valid != 0,
            "state": state_name(record.state),
            "on_trial": record.on_trial(),
            "running": {"vm": record.running_vm, "bytecode": record.running_bc},
            "describe": fota_host::update::describe(record),
        }));
        return;
    }
    for (i, (name, v)) in FIELDS.iter().zip(record.to_array()).enumerate() {
        if (6..=7).contains(&i) {
            println!("fota[{i}] {name:<27} {v:#x}");
        } else {
            println!("fota[{i}] {name:<27} {v}");
        }
    }
    let state = match record.state {
        RecordState::Confirmed => "Confirmed: the current configuration is the last working one",
        RecordState::Pending => {
            "Pending: the current configuration is tried at the next restart (it has never run)"
        }
        RecordState::Trial => {
            "Trial: the current configuration runs on trial; a restart without accept() goes \
             back to the last working one"
        }
    };
    println!("state    {state}");
    println!(
        "running  VM slot {}, bytecode slot {}{}",
        record.running_vm,
        record.running_bc,
        if record.runs_current() {
            " (the current configuration)"
        } else {
            " (not the current configuration: it changes at the next restart)"
        }
    );
    if record.valid == 0 {
        println!(
            "warning  fota[0] is 0: the record is not valid (the device could not store it in \
             flash); no update is possible until it is"
        );
    }
}

async fn watch_record(
    dev: &mut Device<link::Link>,
    mut last: Record,
    timeout: Option<f64>,
    json: bool,
) -> Result<(), Failure> {
    let deadline = match timeout {
        Some(t) => Some(
            dev.now()
                + secs("timeout", t).map_err(|e| failure(e, "Give the timeout in seconds."))?,
        ),
        None => None,
    };
    loop {
        if deadline.is_some_and(|d| dev.now() >= d) {
            return Ok(());
        }
        dev.idle(Duration::from_millis(300)).await?;
        let record = match dev.get_record().await {
            Ok(r) => r,
            Err(HostError::NoAnswer | HostError::Link(_)) => {
                // Restarting: wait for it to come back.
                dev.wait_for_device().await?;
                continue;
            }
            Err(HostError::Cancelled) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if record != last {
            if !json {
                println!("--");
            }
            print_record(&record, json);
            last = record;
        }
    }
}
