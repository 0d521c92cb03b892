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

use std::path::{Path, PathBuf};
use std::time::Duration;

use fota_host::protocol::SlotKind;
use fota_host::sim::{SimTransport, Virtual};
use fota_host::update::Plan;
use fota_host::{Device, Image, NullObserver};
use fota_sim::device::{DeviceConfig, LayoutKind, SECTOR, SimDevice};
use fota_sim::flash::FlashTiming;
use serde_json::{Value, json};

use crate::relay;

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
    /// Measure the update of this firmware instead (.bin or Intel HEX): raw, compressed
    /// and, with --from, delta, against esptool's method (see crate::bench_image).
    #[arg(long, value_name = "FILE")]
    pub image: Option<PathBuf>,
    /// With --image: the firmware the device runs before the update (the delta's base).
    #[arg(long, value_name = "OLD_FILE", requires = "image")]
    pub from: Option<PathBuf>,
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

/// One lrzsz transfer over the model.
#[derive(Debug, Clone)]
struct Peer {
    ok: bool,
    seconds: f64,
    efficiency: f64,
    detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Zmodem,
    Ymodem1k,
}

impl Proto {
    fn name(self) -> &'static str {
        match self {
            Proto::Zmodem => "ZMODEM",
            Proto::Ymodem1k => "YMODEM-1k",
        }
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
    // The streaming of the image itself (random bytes do not compress anyway).
    plan.codec = fota_host::Codec::None;
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

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> std::io::Result<Scratch> {
        static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("fota-bench-{}-{tag}-{n}", std::process::id()));
        std::fs::create_dir_all(dir.join("send"))?;
        std::fs::create_dir_all(dir.join("recv"))?;
        Ok(Scratch(dir))
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run_peer(proto: Proto, s: &Setting, image: &[u8], quiet: Duration) -> Peer {
    let failed = |detail: String| Peer {
        ok: false,
        seconds: 0.0,
        efficiency: 0.0,
        detail,
    };
    let scratch = match Scratch::new(proto.name()) {
        Ok(d) => d,
        Err(e) => return failed(format!("no scratch directory: {e}")),
    };
    let name = "image.bin";
    if let Err(e) = std::fs::write(scratch.path().join("send").join(name), image) {
        return failed(format!("cannot write the image: {e}"));
    }
    let (sz_args, rz_args): (Vec<&str>, Vec<&str>) = match proto {
        Proto::Zmodem => (vec!["-q", name], vec!["-q", "-y"]),
        Proto::Ymodem1k => (
            vec!["-q", "--ymodem", "-k", name],
            vec!["-q", "-y", "--ymodem"],
        ),
    };
    let peers = [
        relay::Peer {
            program: "sz".into(),
            args: sz_args.into_iter().map(String::from).collect(),
            cwd: scratch.path().join("send"),
        },
        relay::Peer {
            program: "rz".into(),
            args: rz_args.into_iter().map(String::from).collect(),
            cwd: scratch.path().join("recv"),
        },
    ];
    let opts = relay::RelayOptions {
        baud: s.baud,
        latency: s.latency(),
        quiet,
        startup: Duration::from_millis(100),
        timeout: Duration::from_secs(60 + 60 * (s.image_len / MIB) as u64),
    };
    let run = match relay::run(&peers, opts) {
        Ok(r) => r,
        Err(e) => return failed(e),
    };
    let received = std::fs::read(scratch.path().join("recv").join(name));
    let same = received.as_deref().is_ok_and(|r| r == image);
    let seconds = run.virtual_time.as_secs_f64();
    let mut problems = Vec::new();
    if run.timed_out {
        problems.push(format!(
            "gave up after {:.0} s of real time",
            run.real_time.as_secs_f64()
        ));
    }
    if !run.both_succeeded() {
        let err = run.stderr.iter().map(|e| e.trim()).collect::<Vec<_>>();
        problems.push(format!(
            "sz {:?}, rz {:?}: {}",
            run.status[0].and_then(|s| s.code()),
            run.status[1].and_then(|s| s.code()),
            err.join(" | ")
        ));
    }
    if !same {
        problems.push(match received {
            Ok(r) => format!(
                "the received file differs from the image ({} of {} bytes)",
                r.len(),
                image.len()
            ),
            Err(e) => format!("no file received: {e}"),
        });
    }
    let ok = problems.is_empty() && seconds > 0.0;
    Peer {
        ok,
        seconds,
        efficiency: if ok {
            s.image_len as f64 / (seconds * s.bytes_per_second())
        } else {
            0.0
        },
        detail: if ok {
            format!(
                "{} bytes sent, {} back; {:.1} s of real time",
                run.bytes[0],
                run.bytes[1],
                run.real_time.as_secs_f64()
            )
        } else {
            problems.join("; ")
        },
    }
}

/// Run the benchmark and print it.
pub async fn run(args: &BenchArgs, json: bool) -> Result<(), String> {
    if let Some(image) = &args.image {
        return crate::bench_image::run(image, args.from.as_deref(), json).await;
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
    // An agent built without the stream decoder (what this table measures).
    let state = std::mem::size_of::<fota_agent::AgentLink<NoFlash>>()
        - std::mem::size_of::<fota_agent::StreamState>();
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

fn size_label(len: usize) -> String {
    if len >= MIB && len.is_multiple_of(MIB) {
        format!("{} MiB", len / MIB)
    } else {
        format!("{} KiB", len / KIB)
    }
}

fn label(s: &Setting) -> String {
    format!(
        "{} baud, {} ms, {}",
        s.baud,
        s.latency_ms,
        size_label(s.image_len)
    )
}

fn peer_json(p: &Option<Peer>) -> Value {
    match p {
        None => Value::Null,
        Some(p) => json!({
            "ok": p.ok,
            "seconds": p.seconds,
            "efficiency": p.efficiency,
            "detail": p.detail,
        }),
    }
}

fn row_json(row: &Row) -> Value {
    let s = &row.setting;
    let ours = match &row.ours {
        Ok(o) => json!({
            "ok": true,
            "stream_s": o.stream.as_secs_f64(),
            "efficiency": o.efficiency,
            "update_s": o.update.as_secs_f64(),
            "negotiate_s": o.negotiate.as_secs_f64(),
            "erase_s": o.erase.as_secs_f64(),
            "checksum_s": o.checksum.as_secs_f64(),
            "sent_bytes": o.sent_bytes,
            "overruns": o.overruns,
            "resent": o.resent,
            "bad_frames": o.bad_frames,
            "update_over_limit": o.update.as_secs_f64() / row.limit.total(),
        }),
        Err(e) => json!({"ok": false, "error": e}),
    };
    json!({
        "baud": s.baud,
        "connect_baud": CONNECT_BAUD,
        "negotiated": s.negotiated(),
        "latency_ms": s.latency_ms,
        "image_bytes": s.image_len,
        "ours": ours,
        "limit": {
            "erase_s": row.limit.erase,
            "link_s": row.limit.link,
            "program_s": row.limit.program,
            "checksum_s": row.limit.checksum,
            "total_s": row.limit.total(),
        },
        "zmodem": peer_json(&row.zmodem),
        "ymodem_1k": peer_json(&row.ymodem),
    })
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn peer_cells(p: &Option<Peer>, missing: &str) -> (String, String) {
    match p {
        None => (missing.to_string(), missing.to_string()),
        Some(p) if !p.ok => ("failed".into(), "failed".into()),
        Some(p) => (format!("{:.2} s", p.seconds), pct(p.efficiency)),
    }
}

fn markdown(rows: &[Row], lrzsz_missing: Option<&String>) -> String {
    let missing = if lrzsz_missing.is_some() { "n/a" } else { "" };
    let mut out = String::new();
    out.push_str(
        "| Link (baud) | Latency | Image | fota stream | fota efficiency | ZMODEM | ZMODEM eff. | \
         YMODEM-1k | YMODEM-1k eff. | fota update | Physical limit | Update / limit |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for row in rows {
        let s = &row.setting;
        let link = if s.negotiated() {
            format!("{} (from {CONNECT_BAUD})", s.baud)
        } else {
            s.baud.to_string()
        };
        let (z_s, z_e) = peer_cells(&row.zmodem, missing);
        let (y_s, y_e) = peer_cells(&row.ymodem, missing);
        let (stream, eff, update, ratio) = match &row.ours {
            Ok(o) => (
                format!("{:.2} s", o.stream.as_secs_f64()),
                pct(o.efficiency),
                format!("{:.2} s", o.update.as_secs_f64()),
                format!("{:.3}", o.update.as_secs_f64() / row.limit.total()),
            ),
            Err(_) => (
                "failed".into(),
                "failed".into(),
                "failed".into(),
                "-".into(),
            ),
        };
        out.push_str(&format!(
            "| {link} | {} ms | {} | {stream} | {eff} | {z_s} | {z_e} | {y_s} | {y_e} | {update} | {:.2} s | {ratio} |\n",
            s.latency_ms,
            size_label(s.image_len),
            row.limit.total(),
        ));
    }
    if let Some(why) = lrzsz_missing {
        out.push_str(&format!("\nZMODEM and YMODEM-1k columns: {why}.\n"));
    }
    out
}

fn range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

fn meaning(rows: &[Row], ram: usize, window: usize, lrzsz_missing: Option<&String>) -> String {
    let ours = rows.iter().filter_map(|r| r.ours.as_ref().ok());
    let eff = range(ours.clone().map(|o| o.efficiency)).unwrap_or((0.0, 0.0));
    let ratio = range(rows.iter().filter_map(|r| {
        r.ours
            .as_ref()
            .ok()
            .map(|o| o.update.as_secs_f64() / r.limit.total())
    }))
    .unwrap_or((0.0, 0.0));
    let peers = |pick: fn(&Row) -> &Option<Peer>| {
        range(
            rows.iter()
                .filter_map(|r| pick(r).as_ref().filter(|p| p.ok).map(|p| p.efficiency)),
        )
    };
    let z = peers(|r| &r.zmodem);
    let y = peers(|r| &r.ymodem);
    let peers_text = match (lrzsz_missing, z, y) {
        (Some(why), _, _) => format!(" (ZMODEM and YMODEM-1k were not measured: {why})"),
        (None, Some(z), Some(y)) => format!(
            ", while Debian's lrzsz, run over the same modelled link in the same run, reaches \
             {}-{} with ZMODEM and {}-{} with YMODEM-1k, whose stop-and-wait blocks collapse \
             as latency grows (their times include their few handshake round trips; ours is \
             the streaming phase, and every other request is in the update time)",
            pct(z.0),
            pct(z.1),
            pct(y.0),
            pct(y.1)
        ),
        _ => " (the lrzsz runs failed: see below)".to_string(),
    };
    format!(
        "Over a modelled UART (8N1, full duplex, one-way latency of a USB-serial adapter of 1 \
         or 16 ms), `fota` streams the image at {}-{} of the line rate (baud / 10 bytes a \
         second){peers_text}. The best published serial FOTA figure is about 44% (SMP at \
         921600 baud). The whole update, from the first request to the confirmed attempt \
         (erase, stream, the device's MD5 of the slot, attempt), takes {:.2}-{:.2} times its \
         physical limit: erase time + the slower of the link and the page programs + the \
         device's read of the image and one round trip. The agent keeps {window} requests in \
         flight, and its receive buffer and link state fit in {ram} bytes of RAM.",
        pct(eff.0),
        pct(eff.1),
        ratio.0,
        ratio.1,
    )
}

/// (target, met, detail) for each of the product's targets.
fn evaluate(rows: &[Row], ram: usize, quick: bool, lrzsz: bool) -> Vec<(String, bool, String)> {
    let mut out = Vec::new();
    let failed: Vec<String> = rows
        .iter()
        .filter(|r| r.ours.is_err())
        .map(|r| label(&r.setting))
        .collect();

    // 1. Link efficiency.
    let mut worst: Option<(f64, String)> = None;
    let mut below_zmodem = Vec::new();
    for r in rows {
        if let Ok(o) = &r.ours {
            if worst.as_ref().is_none_or(|w| o.efficiency < w.0) {
                worst = Some((o.efficiency, label(&r.setting)));
            }
            if let Some(z) = r.zmodem.as_ref().filter(|z| z.ok)
                && o.efficiency < z.efficiency
            {
                below_zmodem.push(format!(
                    "{} ({} < ZMODEM {})",
                    label(&r.setting),
                    pct(o.efficiency),
                    pct(z.efficiency)
                ));
            }
        }
    }
    let low: Vec<String> = rows
        .iter()
        .filter_map(|r| {
            r.ours
                .as_ref()
                .ok()
                .filter(|o| o.efficiency < 0.97)
                .map(|o| format!("{} {}", label(&r.setting), pct(o.efficiency)))
        })
        .collect();
    let met = failed.is_empty() && low.is_empty() && below_zmodem.is_empty();
    let mut detail = match &worst {
        Some((e, at)) => format!("lowest {} at {at}", pct(*e)),
        None => "no run".into(),
    };
    if !low.is_empty() {
        detail.push_str(&format!("; below 97%: {}", low.join(", ")));
    }
    if !below_zmodem.is_empty() {
        detail.push_str(&format!("; below ZMODEM: {}", below_zmodem.join(", ")));
    } else if lrzsz {
        detail.push_str("; never below ZMODEM");
        let failed_peers = rows
            .iter()
            .filter(|r| r.zmodem.as_ref().is_some_and(|z| !z.ok))
            .count();
        if failed_peers > 0 {
            detail.push_str(&format!(" ({failed_peers} ZMODEM runs failed)"));
        }
    } else {
        detail.push_str("; ZMODEM not measured");
    }
    out.push((
        "link efficiency >= 97% at every setting and never below ZMODEM".into(),
        met,
        detail,
    ));

    // 2. Whole update against the physical limit.
    let ratios: Vec<(f64, String)> = rows
        .iter()
        .filter_map(|r| {
            r.ours
                .as_ref()
                .ok()
                .map(|o| (o.update.as_secs_f64() / r.limit.total(), label(&r.setting)))
        })
        .collect();
    let worst = ratios
        .iter()
        .cloned()
        .fold(None::<(f64, String)>, |acc, x| match acc {
            Some(a) if a.0 >= x.0 => Some(a),
            _ => Some(x),
        });
    out.push((
        "whole update <= 1.10 x physical limit".into(),
        failed.is_empty() && ratios.iter().all(|r| r.0 <= 1.10),
        match worst {
            Some((r, at)) => format!("highest {r:.3} at {at}"),
            None => "no run".into(),
        },
    ));

    // 3. RAM.
    out.push((
        "agent receive buffer + state fit in 8 KiB".into(),
        ram <= RAM_BUDGET,
        format!("{ram} B"),
    ));

    // 4. Negotiated vs fixed 115200.
    let size = if quick { 256 * KIB } else { MIB };
    let mut pairs = Vec::new();
    let mut all = true;
    for latency_ms in [1, 16] {
        let find = |baud: u32| {
            rows.iter().find(|r| {
                r.setting.baud == baud
                    && r.setting.latency_ms == latency_ms
                    && r.setting.image_len == size
            })
        };
        match (
            find(921_600).and_then(|r| r.ours.as_ref().ok()),
            find(115_200).and_then(|r| r.ours.as_ref().ok()),
        ) {
            (Some(fast), Some(slow)) => {
                let r = fast.update.as_secs_f64() / slow.update.as_secs_f64();
                all &= r < 0.25;
                pairs.push(format!(
                    "{latency_ms} ms: {:.2} s / {:.2} s = {r:.3}",
                    fast.update.as_secs_f64(),
                    slow.update.as_secs_f64()
                ));
            }
            _ => {
                all = false;
                pairs.push(format!("{latency_ms} ms: missing run"));
            }
        }
    }
    out.push((
        format!(
            "{} update negotiated to 921600 < 1/4 of the time at 115200{}",
            size_label(size),
            if quick { " (--quick: 256 KiB)" } else { "" }
        ),
        all,
        pairs.join("; "),
    ));
    out
}
