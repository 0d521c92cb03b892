//! `fota bench`: how close an update comes to the physical limit of the link and the
//! flash, measured against real serial file-transfer peers (lrzsz's ZMODEM and
//! YMODEM-1k) over the same modelled link in the same run.
//!
//! Our side runs the real host code (`fota_host::update`) against the simulated device
//! (`fota_sim::device::SimDevice`: the agent behind a bounded UART receive buffer, a
//! W25Q128JV flash) in virtual time. lrzsz runs as two real processes (`sz` and `rz`)
//! connected through the same modelled link by the time-warp relay in [`crate::relay`].
//!
//! The device is the one a user updates: its free bytecode slot holds an older image of
//! the same size, so every sector has to be erased and written.
//!
//! What is counted, per row (every time is whole: from the first byte a program sends):
//!
//! * **fota update**: what `fota flash` does (resume on: the slot's sectors are compared
//!   first), from the first request to the answer that confirms the attempt: (baud
//!   switch on negotiated rows: `SetBaud` and a hello at the new rate), hello, record,
//!   `find_bytecode_slot`, the sector comparison, erase, stream, the device's MD5 of the
//!   slot, and `attempt` (its record follows from the one read first: protocol 3).
//!   Not counted: the restart and the
//!   wait for the new firmware to confirm itself.
//! * **resume off**: the same update without the sector comparison (`--no-resume`).
//! * **true limit**: what no design can beat on this link and flash: max(link time of
//!   the image, erase + page programs of its sectors) + the first sector's erase +
//!   the device's read of the image and its MD5 (the time a Cortex-M4 takes,
//!   `fota_sim::device::CORTEX_M4_MD5_NS_PER_BYTE`, which the simulated device charges
//!   too) + one round trip (two latencies). The image has no trailer: the device's
//!   check of it before `attempt` needs no read of its own (its MD5 met no trailer's
//!   magic as it hashed: docs/PROTOCOL.md 5.8).
//! * **erase-then-stream limit**: the limit of a design that erases the whole slot
//!   before streaming: erase + max(link, page programs) + read + check + one round trip.
//! * **ZMODEM / YMODEM-1k**: the virtual time of `sz` sending the image to `rz` over the
//!   modelled link, from the start of both programs to the last byte (handshakes
//!   included; a file transfer only, no flash).
//! * **efficiencies**: image bytes / (time × baud / 10), for the whole update and for
//!   the lrzsz transfers, and for our streaming phase alone (`Report::stream_time`: from
//!   the first `write_slot` request sent to the answer to the last one).

use std::path::PathBuf;
use std::time::Duration;

use fota_host::protocol::SlotKind;
use fota_host::sim::{SimTransport, Virtual};
use fota_host::update::Plan;
use fota_host::{Device, Image, NullObserver};
use fota_sim::device::{DeviceConfig, LayoutKind, SimDevice};
use serde_json::{Value, json};

use crate::relay;

mod lrzsz;
mod model;
mod table;

use lrzsz::{Proto, run_peer};
use model::{CONNECT_BAUD, KIB, Limit, MIB, Ours, RAM_BUDGET, Row, Setting};
use table::{evaluate, label, markdown, meaning, row_json, size_label};

/// The agent's RAM on a Cortex-M4 (thumbv7em), from the QEMU board's `agent-size` build
/// (release, opt-level "s", LTO): its `.bss` (the UART receive ring of the window, the
/// link state, the board's counters) and the agent itself, kept in `main`'s frame.
/// `crates/fota-cli/tests/code_size.rs` reads both from the ELF and fails when they
/// differ from these. (`size_of` here would measure this 64-bit build machine instead.)
const THUMBV7EM_BSS: usize = 7176;
/// See [`THUMBV7EM_BSS`].
const THUMBV7EM_AGENT: usize = 680;
/// Options of `fota bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// 256 KiB images only (default: 256 KiB and 1 MiB).
    #[arg(long)]
    pub quick: bool,
    /// Do not run lrzsz (sz/rz) for comparison.
    #[arg(long)]
    pub no_lrzsz: bool,
    /// Full request frames the simulated agent's receive queue holds (it announces that
    /// many requests, and the queue's bytes, Info tag 8); default: the device's default.
    #[arg(long)]
    pub window: Option<u8>,
    /// The simulated agent does not announce its receive queue in bytes (no Info tag 8):
    /// the host keeps to `max_in_flight` requests, as with an older agent.
    #[arg(long)]
    pub no_byte_window: bool,
    /// Real-time quiet period (ms) after which the lrzsz relay counts both programs idle.
    #[arg(long, default_value_t = 2.0)]
    pub quiet_ms: f64,
    /// Print only the Markdown table (the one the README publishes).
    #[arg(long)]
    pub markdown: bool,
    /// Measure the update of this firmware instead (.bin or Intel HEX): raw, compressed
    /// and, with --from, delta, against esptool's method (see crate::bench_image).
    #[arg(long, value_name = "FILE")]
    pub image: Option<PathBuf>,
    /// With --image: the firmware the device runs before the update (the delta's base).
    #[arg(long, value_name = "OLD_FILE", requires = "image")]
    pub from: Option<PathBuf>,
    /// Measure the delta between two builds of the QEMU firmware that differ in one
    /// function (built here; see crate::bench_image), like --image with --from.
    #[arg(long, conflicts_with = "image")]
    pub one_function: bool,
    /// With --image or --one-function: print, on standard error, each delta update's
    /// requests, replies and flash work in the link's time (every update without --from).
    #[arg(long)]
    pub breakdown: bool,
}

/// The simulated agent's receive queue, as the options set it.
#[derive(Debug, Clone, Copy)]
struct Queue {
    /// Full frames it holds (`--window`); `None`: the device's default.
    frames: Option<u8>,
    /// Whether it announces its bytes (Info tag 8).
    bytes: bool,
}

impl Queue {
    fn of(args: &BenchArgs) -> Queue {
        Queue {
            frames: args.window,
            bytes: !args.no_byte_window,
        }
    }
}

fn image_of(len: usize) -> Vec<u8> {
    let payload = len - fota_sim::images::HEADER_LEN;
    fota_sim::images::sample_image(SlotKind::Bytecode, "bench", "2.0", true, payload)
}

fn device_config(s: &Setting, window: Queue) -> DeviceConfig {
    let mut cfg = DeviceConfig::new(LayoutKind::BytecodeOnly);
    cfg.bc_slot_size = (MIB + 64 * KIB) as u32;
    cfg.baud = CONNECT_BAUD;
    cfg.max_baud = 921_600;
    cfg.latency_ns = s.latency_ms * 1_000_000;
    if let Some(w) = window.frames {
        cfg.max_in_flight = w.max(1);
    }
    cfg.announce_rx_window = window.bytes;
    cfg
}

/// The device a user updates: the factory images in VM slot 0 and bytecode slot 0, and
/// an older image of `len` bytes in bytecode slot 1, the slot the update goes to.
fn bench_device(s: &Setting, window: Queue) -> Result<SimDevice, String> {
    let cfg = device_config(s, window);
    let payload = s.image_len - fota_sim::images::HEADER_LEN;
    let vm = fota_sim::images::sample_image(SlotKind::Vm, "zvm", "1.0", true, 16 * KIB);
    let current = fota_sim::images::blink_v1();
    let older = fota_sim::images::sample_image(SlotKind::Bytecode, "bench", "1.0", true, payload);
    let bytes = cfg.flash_with(&[
        (SlotKind::Vm, 0, &vm),
        (SlotKind::Bytecode, 0, &current),
        (SlotKind::Bytecode, 1, &older),
    ]);
    SimDevice::from_image(cfg, bytes).map_err(|e| format!("the simulated flash: {e:?}"))
}

/// One update over the model: (report, time of the baud switch, device overruns, stats).
async fn one_update(
    s: &Setting,
    image: &[u8],
    window: Queue,
    resume: bool,
) -> Result<(fota_host::update::Report, Duration, u64, fota_host::Stats), String> {
    let device = bench_device(s, window)?;
    let mut dev = Device::new(SimTransport::new(device, Virtual), Box::new(NullObserver));
    let t0 = dev.now();
    if s.negotiated() {
        let got = dev
            .negotiate_baud(&[s.baud])
            .await
            .map_err(|e| format!("baud switch: {e}"))?;
        if got != s.baud {
            return Err(format!("the link stayed at {got} baud"));
        }
    }
    let negotiate = dev.now() - t0;
    let image = Image::new("bench.bin", image.to_vec()).map_err(|e| e.to_string())?;
    let mut plan = Plan::new(image);
    plan.resume = resume;
    plan.restart = false;
    // The streaming of the image itself (random bytes do not compress anyway).
    plan.codec = fota_host::Codec::None;
    let report = fota_host::update(&mut dev, &plan)
        .await
        .map_err(|e| format!("update: {e}"))?;
    let overruns = dev.link().device().overruns();
    Ok((report, negotiate, overruns, dev.stats()))
}

async fn run_ours(s: &Setting, image: &[u8], window: Queue) -> Result<Ours, String> {
    let (report, negotiate, overruns, stats) = one_update(s, image, window, true).await?;
    let (off, off_negotiate, _, _) = one_update(s, image, window, false)
        .await
        .map_err(|e| format!("resume off: {e}"))?;
    if report.skipped_bytes != 0 {
        return Err(format!(
            "the slot held {} bytes of the image already: nothing to measure",
            report.skipped_bytes
        ));
    }
    let stream = report.stream_time;
    let efficiency = s.image_len as f64 / (stream.as_secs_f64() * s.bytes_per_second());
    Ok(Ours {
        stream,
        efficiency,
        update: negotiate + report.total_time,
        no_resume: off_negotiate + off.total_time,
        negotiate,
        compare: report.compare_time,
        erase: report.erase_time,
        checksum: report.checksum_time,
        sent_bytes: report.sent_bytes,
        overruns,
        resent: stats.resent,
        bad_frames: stats.bad_frames,
    })
}

/// What each figure counts, for the JSON document.
fn counted() -> Value {
    json!({
        "update": "fota flash as a user runs it (resume on: sectors compared first), first \
                   request to the answer to attempt: baud switch \
                   (negotiated rows), hello, record, find slot, sector comparison, erase, \
                   stream, checksum, attempt; restart and outcome wait excluded",
        "no_resume": "the same update with resume off (no sector comparison)",
        "stream": "first write_slot request to the answer to the last one",
        "efficiency": "image bytes / (seconds x baud / 10); update_efficiency uses the \
                       whole update, efficiency the streaming phase",
        "true_limit": "max(link time of the image, erase + page programs) + first sector's \
                       erase + device read of the image and its MD5 (a Cortex-M4's time a \
                       byte) + the device's image check (a raw image: a read of its slot to \
                       the end) + one round trip",
        "erase_then_stream_limit": "erase (sectors x sector erase) + max(link, page \
                                    programs) + device read and MD5 of the image + image \
                                    check + one round trip",
        "lrzsz": "virtual time from the start of sz and rz to the last byte, handshakes \
                  included, over the same modelled link (no flash)",
    })
}

/// Run the benchmark and print it.
pub async fn run(args: &BenchArgs, json: bool) -> Result<(), String> {
    if args.one_function {
        return crate::bench_image::run_one_function(json, args.breakdown).await;
    }
    if let Some(image) = &args.image {
        return crate::bench_image::run(image, args.from.as_deref(), json, args.breakdown).await;
    }
    let sizes: &[usize] = if args.quick {
        &[256 * KIB]
    } else {
        &[256 * KIB, MIB]
    };
    let mut settings = Vec::new();
    for &image_len in sizes {
        for latency_ms in [1, 16] {
            for baud in [115_200, 921_600] {
                settings.push(Setting {
                    baud,
                    latency_ms,
                    image_len,
                });
            }
        }
    }
    let lrzsz = if args.no_lrzsz {
        Err("skipped (--no-lrzsz)".to_string())
    } else if relay::on_path("sz") && relay::on_path("rz") {
        Ok(())
    } else {
        Err("lrzsz not installed".to_string())
    };
    let timing = device_config(&settings[0], Queue::of(args)).timing;
    let quiet = crate::secs("quiet-ms", args.quiet_ms.clamp(0.2, 100.0) / 1000.0)?;

    let mut rows = Vec::new();
    for s in &settings {
        let image = image_of(s.image_len);
        let ours = run_ours(s, &image, Queue::of(args)).await;
        rows.push(Row {
            setting: *s,
            ours,
            limit: Limit::of(s, &timing),
            zmodem: None,
            ymodem: None,
        });
    }
    if lrzsz.is_ok() {
        for row in &mut rows {
            let s = row.setting;
            let image = image_of(s.image_len);
            for proto in [Proto::Zmodem, Proto::Ymodem1k] {
                if !json {
                    eprintln!(
                        "lrzsz: {} of {} at {} baud, {} ms ...",
                        proto.name(),
                        size_label(s.image_len),
                        s.baud,
                        s.latency_ms
                    );
                }
                let peer = run_peer(proto, &s, &image, quiet);
                match proto {
                    Proto::Zmodem => row.zmodem = Some(peer),
                    Proto::Ymodem1k => row.ymodem = Some(peer),
                }
            }
        }
    }

    let cfg = device_config(&settings[0], Queue::of(args));
    let window = usize::from(cfg.max_in_flight);
    let rx_buffer = cfg.rx_window();
    let ram = THUMBV7EM_BSS + THUMBV7EM_AGENT;

    let targets = evaluate(&rows, ram, args.quick);
    let table = markdown(&rows, lrzsz.as_ref().err());
    let meaning = meaning(&rows, ram, rx_buffer, lrzsz.as_ref().err());

    if args.markdown {
        print!("{table}");
        return Ok(());
    }
    if json {
        let rows_json: Vec<Value> = rows.iter().map(row_json).collect();
        let doc = json!({
            "event": "bench",
            "counted": counted(),
            "lrzsz": match &lrzsz { Ok(()) => "measured".to_string(), Err(e) => e.clone() },
            "rows": rows_json,
            "ram": {
                "max_in_flight": window,
                "rx_frame": fota_agent::RX_FRAME,
                "rx_buffer": rx_buffer,
                "rx_window_announced": cfg.announce_rx_window,
                "thumbv7em_bss": THUMBV7EM_BSS,
                "thumbv7em_agent": THUMBV7EM_AGENT,
                "total": ram,
                "budget": RAM_BUDGET,
                "measured": "agent-size ELF for thumbv7em-none-eabihf (release): .bss + \
                             size_of Agent computed for that target",
            },
            "targets": targets.iter().map(|t| json!({"target": t.0, "met": t.1, "detail": t.2})).collect::<Vec<_>>(),
            "table_markdown": table,
            "meaning": meaning,
        });
        println!("{doc}");
    } else {
        println!("{table}");
        println!(
            "Agent RAM on a Cortex-M4 (thumbv7em, release build of the QEMU board's agent): \
             .bss {THUMBV7EM_BSS} B (of which the receive ring, {window} x {} B and {} B for \
             the erases between them = {rx_buffer} B, announced by Info tag 8) \
             + the agent {THUMBV7EM_AGENT} B = {ram} B of the {RAM_BUDGET} B budget, stack \
             aside (docs/PORTING.md).",
            fota_agent::RX_FRAME,
            fota_agent::RX_SHORT_ROOM,
        );
        println!();
        println!("{meaning}");
        println!();
        println!("Targets:");
        for (name, met, detail) in &targets {
            println!("- [{}] {name}: {detail}", if *met { "x" } else { " " });
        }
        for row in &rows {
            if let Err(e) = &row.ours {
                println!("fota failed at {}: {e}", label(&row.setting));
            }
            for peer in [&row.zmodem, &row.ymodem].into_iter().flatten() {
                if !peer.ok {
                    println!("lrzsz failed at {}: {}", label(&row.setting), peer.detail);
                }
            }
        }
    }
    Ok(())
}
