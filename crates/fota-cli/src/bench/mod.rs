//! `fota bench`: how close an update comes to the physical limit of the link and the
//! flash, measured against real serial file-transfer peers (lrzsz's ZMODEM and
//! YMODEM-1k) over the same modelled link in the same run.
//!
//! Our side runs the real host code (`fota_host::update`) against the simulated device
//! (`fota_sim::device::SimDevice`: the agent behind a bounded UART receive buffer, a
//! W25Q128JV flash) in virtual time. lrzsz runs as two real processes (`sz` and `rz`)
//! connected through the same modelled link by the time-warp relay in [`crate::relay`].
//!
//! What is counted, per row:
//!
//! * **stream**: the host's streaming phase (`Report::stream_time`): from the first
//!   `write_slot` request sent to the answer to the last one.
//! * **link efficiency**: image bytes / (stream × baud / 10).
//! * **update**: from the first request to the answer that confirms the attempt: (baud
//!   switch on negotiated rows: `SetBaud` and a hello at the new rate), hello, record,
//!   `find_bytecode_slot`, erase, stream, the device's MD5 of the slot, `attempt`, and
//!   the record read after it. Not counted: the restart and the wait for the new
//!   firmware to confirm itself.
//! * **physical limit**: erase (sectors × sector erase time) + max(link time, page
//!   programs) + checksum (the device reading the image in one command per the flash
//!   timing, plus one round trip of two latencies).
//! * **ZMODEM / YMODEM-1k**: the virtual time of `sz` sending the image to `rz` over the
//!   modelled link, from start to the last byte (a file transfer only: no flash).

use std::time::Duration;

use fota_host::protocol::SlotKind;
use fota_host::sim::{SimTransport, Virtual};
use fota_host::update::Plan;
use fota_host::{Device, Image, NullObserver};
use fota_sim::device::{DeviceConfig, LayoutKind, SECTOR, SimDevice};
use fota_sim::flash::FlashTiming;
use serde_json::{Value, json};

use crate::relay;

mod lrzsz;
mod table;

use lrzsz::{Peer, Proto, run_peer};
use table::{evaluate, label, markdown, meaning, row_json, size_label};

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;
/// RAM the agent's link may take on a small MCU.
const RAM_BUDGET: usize = 8 * 1024;
/// The rate every agent answers at after reset.
const CONNECT_BAUD: u32 = 115_200;

/// Options of `fota bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// 256 KiB images only (default: 256 KiB and 1 MiB).
    #[arg(long)]
    pub quick: bool,
    /// Do not run lrzsz (sz/rz) for comparison.
    #[arg(long)]
    pub no_lrzsz: bool,
    /// Requests the simulated agent takes in flight (its receive buffer holds this many
    /// frames); default: the device's default.
    #[arg(long)]
    pub window: Option<u8>,
    /// Real-time quiet period (ms) after which the lrzsz relay counts both programs idle.
    #[arg(long, default_value_t = 2.0)]
    pub quiet_ms: f64,
}

/// One setting of the matrix.
#[derive(Debug, Clone, Copy)]
struct Setting {
    baud: u32,
    latency_ms: u64,
    image_len: usize,
}

impl Setting {
    fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms)
    }
    fn bytes_per_second(&self) -> f64 {
        f64::from(self.baud) / 10.0
    }
    fn negotiated(&self) -> bool {
        self.baud != CONNECT_BAUD
    }
}

/// Our update over the model.
#[derive(Debug, Clone)]
struct Ours {
    stream: Duration,
    efficiency: f64,
    update: Duration,
    negotiate: Duration,
    erase: Duration,
    checksum: Duration,
    sent_bytes: u64,
    overruns: u64,
    resent: u64,
    bad_frames: u64,
}

/// The physical limit of one setting.
#[derive(Debug, Clone, Copy)]
struct Limit {
    erase: f64,
    link: f64,
    program: f64,
    checksum: f64,
}

impl Limit {
    fn of(s: &Setting, timing: &FlashTiming) -> Limit {
        let len = s.image_len;
        let sectors = len.div_ceil(SECTOR as usize) as f64;
        let round_trip = 2.0 * s.latency().as_secs_f64();
        Limit {
            erase: sectors * timing.sector_erase_ns as f64 / 1e9,
            link: len as f64 / s.bytes_per_second(),
            program: timing.program_ns(0, len) as f64 / 1e9,
            checksum: timing.read_ns(len) as f64 / 1e9 + round_trip,
        }
    }
    fn total(&self) -> f64 {
        self.erase + self.link.max(self.program) + self.checksum
    }
}

struct Row {
    setting: Setting,
    ours: Result<Ours, String>,
    limit: Limit,
    zmodem: Option<Peer>,
    ymodem: Option<Peer>,
}

/// A flash driver of no size, to measure the agent's own state.
struct NoFlash;

fn image_of(len: usize) -> Vec<u8> {
    let payload = len - fota_sim::images::HEADER_LEN;
    fota_sim::images::sample_image(SlotKind::Bytecode, "bench", "2.0", true, payload)
}

fn device_config(s: &Setting, window: Option<u8>) -> DeviceConfig {
    let mut cfg = DeviceConfig::new(LayoutKind::BytecodeOnly);
    cfg.bc_slot_size = (MIB + 64 * KIB) as u32;
    cfg.baud = CONNECT_BAUD;
    cfg.max_baud = 921_600;
    cfg.latency_ns = s.latency_ms * 1_000_000;
    if let Some(w) = window {
        cfg.max_in_flight = w.max(1);
    }
    cfg
}

async fn run_ours(s: &Setting, image: &[u8], window: Option<u8>) -> Result<Ours, String> {
    let device = SimDevice::new(device_config(s, window));
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
    plan.resume = false;
    plan.restart = false;
    let report = fota_host::update(&mut dev, &plan)
        .await
        .map_err(|e| format!("update: {e}"))?;
    let stream = report.stream_time;
    let efficiency = s.image_len as f64 / (stream.as_secs_f64() * s.bytes_per_second());
    let stats = dev.stats();
    Ok(Ours {
        stream,
        efficiency,
        update: negotiate + report.total_time,
        negotiate,
        erase: report.erase_time,
        checksum: report.checksum_time,
        sent_bytes: report.sent_bytes,
        overruns: dev.link().device().overruns(),
        resent: stats.resent,
        bad_frames: stats.bad_frames,
    })
}

/// Run the benchmark and print it.
pub async fn run(args: &BenchArgs, json: bool) -> Result<(), String> {
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
    let timing = device_config(&settings[0], args.window).timing;
    let quiet = crate::secs("quiet-ms", args.quiet_ms.clamp(0.2, 100.0) / 1000.0)?;

    let mut rows = Vec::new();
    for s in &settings {
        let image = image_of(s.image_len);
        let ours = run_ours(s, &image, args.window).await;
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

    let cfg = device_config(&settings[0], args.window);
    let window = usize::from(cfg.max_in_flight);
    let rx_buffer = window * fota_agent::RX_FRAME;
    let state = std::mem::size_of::<fota_agent::AgentLink<NoFlash>>();
    let ram = rx_buffer + state;

    let targets = evaluate(&rows, ram, args.quick, lrzsz.is_ok());
    let table = markdown(&rows, lrzsz.as_ref().err());
    let meaning = meaning(&rows, ram, window, lrzsz.as_ref().err());

    if json {
        let rows_json: Vec<Value> = rows.iter().map(row_json).collect();
        let doc = json!({
            "event": "bench",
            "counted": {
                "stream": "first write_slot request to the answer to the last one",
                "efficiency": "image bytes / (stream seconds x baud / 10)",
                "update": "first request to the answer to the record read after attempt: \
                           baud switch (negotiated rows), hello, record, find slot, erase, \
                           stream, checksum, attempt, record; restart and outcome wait excluded",
                "limit": "erase (sectors x sector erase) + max(link, page programs) + \
                          device read of the image + one round trip",
                "lrzsz": "virtual time from start to the last byte, sz to rz over the same \
                          modelled link (no flash)",
            },
            "lrzsz": match &lrzsz { Ok(()) => "measured".to_string(), Err(e) => e.clone() },
            "rows": rows_json,
            "ram": {
                "max_in_flight": window,
                "rx_frame": fota_agent::RX_FRAME,
                "rx_buffer": rx_buffer,
                "agent_link_state": state,
                "total": ram,
                "budget": RAM_BUDGET,
                "host_arch": std::env::consts::ARCH,
            },
            "targets": targets.iter().map(|t| json!({"target": t.0, "met": t.1, "detail": t.2})).collect::<Vec<_>>(),
            "table_markdown": table,
            "meaning": meaning,
        });
        println!("{doc}");
    } else {
        println!("{table}");
        println!(
            "Agent RAM: receive buffer {window} x {} B = {rx_buffer} B, AgentLink state {state} B \
             (on this {} host; zero-sized flash driver): {ram} B of the {RAM_BUDGET} B budget.",
            fota_agent::RX_FRAME,
            std::env::consts::ARCH
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
