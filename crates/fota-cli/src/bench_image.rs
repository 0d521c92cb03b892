//! `fota bench --image FILE [--from OLD_FILE]`: the update of a real firmware image over
//! the modelled link, sent raw, compressed and (with `--from`) as a delta, against
//! esptool's method on the same image.
//!
//! Each row is a whole `fota_host::update` against the simulated device (W25Q128JV
//! timing, a bounded UART receive buffer, the agent with its stream decoder) in virtual
//! time, at 115200 baud and at 921600 (negotiated from 115200), with 1 and 16 ms of
//! one-way latency. With `--from`, the device runs OLD_FILE from bytecode slot 0 before
//! every row, and the host is given OLD_FILE as a possible base.
//!
//! What is counted:
//!
//! * **sent**: the bytes of image data the host sent: the raw image, or the stream
//!   (header and blocks).
//! * **stream**: the host's Stream step (`Report::stream_time`): for a stream, from the
//!   delta's base check (the device's MD5 of its slot) and `StreamBegin` to the reply to
//!   its end; for the raw image, from the first `WriteSlot` to the last reply. Both erase
//!   each sector just ahead of the data, so the erases of all but the first sector run
//!   inside it: where erasing is slower than the line, the flash sets its pace.
//! * **flash idle**: how long the flash waited, in the same virtual time, between the end
//!   of the first sector's erase (for a delta, of the first step of the base's check)
//!   and the image's last program: the gaps between the agent's flash steps, its CPU
//!   time per frame included (`fota_sim::device::flash_idle`). esptool's method on this
//!   model gives the flash none.
//! * **x line rate**: image bytes / (stream x baud / 10): how many times faster than
//!   the line's raw byte rate the image arrives.
//! * **whole update**: hello to the answer to `attempt` (`Report::total_time`): the
//!   erases included.
//! * **x raw**: the raw whole update's time at the same setting / this row's.
//! * **device bound** (delta rows): [`device_bound`], the device's own work that no
//!   protocol avoids (erase, programs, the MD5s of base and result, a round trip), and
//!   the raw whole update's time / it: the most a delta can gain on this device.
//! * **auto**: the default (`--codec auto`), measured like the others; the row names
//!   what it picked (`auto: raw`), so the table shows whether the model chose the
//!   faster.
//! * **esptool's method, published**: the image deflated at zlib level 9 (as esptool
//!   compresses), sent at esptool's published wire efficiency: 98 % of the line rate at
//!   115200 baud and 74 % at 921600 (esptool issues 255 and 256). The wire alone: no
//!   latency, no flash.
//! * **esptool's method on this model**: the same zlib level 9 bytes at the same
//!   published efficiency, plus a round trip (two latencies) per 16 KiB block (esptool
//!   sends a block and waits for its answer), against the same flash's work for the
//!   image (the W25Q128JV's erases as esptool's flasher stub makes them, a 64 KiB block
//!   erase where a whole aligned block is to be erased and sectors for the rest, all but
//!   the first, which precedes the stream as ours does; and its page programs), the
//!   flash overlapping the wire (esptool's stub erases ahead and answers a block before
//!   writing it): the longer of the two. This is the column to compare ours with.

use std::path::Path;
use std::time::Duration;

use std::sync::{Arc, Mutex};

use fota_host::codec::Codec;
use fota_host::protocol::SlotKind;
use fota_host::sim::{SimTransport, Virtual};
use fota_host::update::Plan;
use fota_host::{Device, Image, Observer};
use fota_sim::device::{DeviceConfig, LayoutKind, SECTOR, SimDevice};
use fota_sim::flash::FlashTiming;
use serde_json::{Value, json};

mod breakdown;
use breakdown::{Traced, print_breakdown};

const CONNECT_BAUD: u32 = 115_200;
/// The block esptool's flasher stub erases in one command where aligned (the SPI
/// flash's 64 KiB block erase, 0xD8), sectors for the rest.
const ESPTOOL_ERASE_BLOCK: u32 = 64 * 1024;
/// esptool's published wire efficiency (bytes on the wire / line rate) by baud rate.
pub const ESPTOOL_EFFICIENCY: [(u32, f64); 2] = [(115_200, 0.98), (921_600, 0.74)];

/// esptool's block of compressed data: it sends one and waits for the answer.
pub const ESPTOOL_BLOCK: usize = 16 * 1024;

/// The device's physical bound for a delta of `image_len` bytes from a base of
/// `base_len` bytes into a free slot of `slot` bytes (the image at its start, on a 64 KiB
/// boundary), at `latency_ms` each way, in seconds: the fastest erase of the written
/// range that stays in the slot (the W25Q128JV's blocks and sectors, past the image's
/// end where that is faster), the page programs of the image, the device's MD5 of the
/// base (the check before the delta) and of the result (the check before `attempt`),
/// each a read of the flash and a Cortex-M4's hashing, and one round trip. The line is
/// left out (a delta's bytes cross it while the flash erases), and so is the agent's own
/// work besides (its check of the base in `StreamBegin`, decoding, the image check of
/// `attempt`) and the exchanges before the first flash work (`Hello`).
pub fn device_bound(image_len: usize, base_len: usize, slot: u32, latency_ms: u64) -> f64 {
    let t = FlashTiming::W25Q128JV;
    let sectors = image_len.next_multiple_of(SECTOR as usize);
    let erase_ns = std::iter::once(sectors)
        .chain(
            t.block_erases
                .iter()
                .map(|&(size, _)| image_len.next_multiple_of(size as usize))
                .filter(|&l| l <= slot as usize),
        )
        .map(|l| t.erase_plan_ns(SECTOR, 0, l, t.block_erases).0)
        .min()
        .unwrap_or(0);
    let md5 =
        |len: usize| t.read_ns(len) + len as u64 * fota_sim::device::CORTEX_M4_MD5_NS_PER_BYTE;
    let ns = erase_ns + t.program_ns(0, image_len) + md5(base_len) + md5(image_len);
    ns as f64 / 1e9 + 2.0 * latency_ms as f64 / 1e3
}

/// One measured update.
struct Row {
    baud: u32,
    latency_ms: u64,
    method: String,
    sent: u64,
    stream: Duration,
    update: Duration,
    flash_idle: Duration,
    /// A delta's [`device_bound`], seconds.
    bound: Option<f64>,
}

/// Reads a firmware file: Intel HEX (its main flash image) or raw bytes.
pub fn read_firmware(path: &Path) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let is_hex = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("hex"));
    if !is_hex {
        return Ok(bytes);
    }
    let text = String::from_utf8(bytes).map_err(|_| format!("{} is not text", path.display()))?;
    fota_codec::hex::main_image(&text, 64 * 1024)
        .map(|(_, image)| image)
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn device(old: Option<&[u8]>, slot: u32, latency_ms: u64) -> Result<SimDevice, String> {
    let mut cfg = DeviceConfig::new(LayoutKind::BytecodeOnly);
    cfg.bc_slot_size = slot;
    cfg.baud = CONNECT_BAUD;
    cfg.latency_ns = latency_ms * 1_000_000;
    // Real firmware is no program the simulated firmware runs: it would count as hung;
    // its watchdog must not reset the device in the middle of the measurement.
    cfg.watchdog_ns = 24 * 3600 * 1_000_000_000;
    match old {
        None => Ok(SimDevice::new(cfg)),
        Some(old) => {
            let flash = cfg.flash_with(&[(SlotKind::Bytecode, 0, old)]);
            SimDevice::from_image(cfg, flash).map_err(|e| format!("{e:?}"))
        }
    }
}

/// Keeps the sentence that says what was sent ("sending 142 KiB for 239 KiB: ...").
#[derive(Clone, Default)]
struct Said(Arc<Mutex<Option<String>>>);

impl Observer for Said {
    fn event(&mut self, line: &str) {
        if line.starts_with("sending ")
            && let Ok(mut said) = self.0.lock()
        {
            *said = Some(line.to_string());
        }
    }
}

impl Said {
    /// What the sentence says was sent: raw, compressed or delta.
    fn method(&self) -> &'static str {
        let said = self
            .0
            .lock()
            .ok()
            .and_then(|s| s.clone())
            .unwrap_or_default();
        let how = said.split_once(": ").map_or("", |(_, how)| how);
        if how.starts_with("delta") {
            "delta"
        } else if how.starts_with("compressed") {
            "compressed"
        } else {
            "raw"
        }
    }
}

struct Measured {
    sent: u64,
    stream: Duration,
    update: Duration,
    method: &'static str,
    /// How long the flash waited while it wrote the image ([`fota_sim::device::flash_idle`]).
    flash_idle: Duration,
}

async fn measure(
    image: &Image,
    old: Option<&Image>,
    slot: u32,
    baud: u32,
    latency_ms: u64,
    codec: Codec,
    breakdown: bool,
) -> Result<Measured, String> {
    let mut sim = device(old.map(|o| o.data()), slot, latency_ms)?;
    sim.record_flash_busy();
    let said = Said::default();
    let log = Arc::new(Mutex::new(Vec::new()));
    let traced = Traced {
        inner: SimTransport::new(sim, Virtual),
        out: fota_protocol::FrameReader::new(),
        back: fota_protocol::FrameReader::new(),
        log: log.clone(),
    };
    let mut dev = Device::new(traced, Box::new(said.clone()));
    if baud != CONNECT_BAUD {
        let got = dev
            .negotiate_baud(&[baud])
            .await
            .map_err(|e| format!("baud switch: {e}"))?;
        if got != baud {
            return Err(format!("the link stayed at {got} baud"));
        }
    }
    let mut plan = Plan::new(image.clone());
    plan.resume = false;
    plan.restart = false;
    plan.codec = codec;
    plan.bases = old.into_iter().cloned().collect();
    let t0 = dev.now();
    if let Ok(mut log) = log.lock() {
        log.clear();
    }
    let report = fota_host::update(&mut dev, &plan)
        .await
        .map_err(|e| format!("update ({codec}): {e}"))?;
    let spans = dev.link().inner.device().flash_spans();
    let (idle_ns, _) =
        fota_sim::device::flash_idle(spans).ok_or("the flash did no work before the checksum")?;
    if breakdown {
        print_breakdown(t0, &log, spans, baud, latency_ms, codec);
    }
    Ok(Measured {
        sent: report.sent_bytes,
        stream: report.stream_time,
        update: report.total_time,
        method: said.method(),
        flash_idle: Duration::from_nanos(idle_ns),
    })
}

/// esptool's method on this model (see the module's description): seconds.
pub fn esptool_modelled(
    image_len: usize,
    zlib: usize,
    baud: u32,
    eff: f64,
    latency_ms: u64,
) -> f64 {
    let t = FlashTiming::W25Q128JV;
    let blocks = zlib.div_ceil(ESPTOOL_BLOCK) as f64;
    let wire =
        zlib as f64 / (f64::from(baud) / 10.0 * eff) + blocks * 2.0 * latency_ms as f64 / 1e3;
    // Its stub erases 64 KiB blocks where aligned and sectors for the rest; the slot
    // starts on a 64 KiB boundary. The first erase precedes the stream, as ours does.
    let blocks: Vec<(u32, u64)> = (t.block_erases.iter().copied())
        .filter(|b| b.0 == ESPTOOL_ERASE_BLOCK)
        .collect();
    let (erase_ns, _, first_ns) = t.erase_plan_ns(SECTOR, 0, image_len, &blocks);
    let flash_ns = erase_ns - first_ns + t.program_ns(0, image_len);
    wire.max(flash_ns as f64 / 1e9)
}

/// Bytes of the image deflated at zlib level 9 (esptool's compression).
pub fn zlib9_len(image: &[u8]) -> usize {
    miniz_oxide::deflate::compress_to_vec_zlib(image, 9).len()
}

fn x_line_rate(image_len: usize, secs: f64, baud: u32) -> f64 {
    image_len as f64 / (secs * f64::from(baud) / 10.0)
}

/// The table the README shows, from the JSON document.
pub fn markdown(doc: &Value) -> String {
    let mut out = String::from(
        "| Link (baud) | Latency | Method | Sent | Stream | Flash idle | x line rate | Whole update | x raw | Device bound (x raw) |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    let rows = doc["rows"].as_array().cloned().unwrap_or_default();
    for r in &rows {
        let x_raw = match r["x_raw"].as_f64() {
            Some(x) if r["method"] != "raw" => format!("{x:.1}"),
            _ => String::new(),
        };
        let bound = match (r["device_bound_s"].as_f64(), r["bound_x_raw"].as_f64()) {
            (Some(b), Some(x)) => format!("{b:.2} s ({x:.1})"),
            _ => String::new(),
        };
        out.push_str(&format!(
            "| {} | {} ms | {} | {} B | {:.2} s | {:.3} s | {:.2} | {:.2} s | {x_raw} | {bound} |\n",
            r["baud"],
            r["latency_ms"],
            r["method"].as_str().unwrap_or("?"),
            r["sent_bytes"],
            r["stream_s"].as_f64().unwrap_or(0.0),
            r["flash_idle_s"].as_f64().unwrap_or(0.0),
            r["x_line_rate"].as_f64().unwrap_or(0.0),
            r["update_s"].as_f64().unwrap_or(0.0)
        ));
    }
    for e in doc["esptool_modelled"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        out.push_str(&format!(
            "| {} | {} ms | esptool's method on this model: zlib 9 at {:.0} %, a round trip a 16 KiB block, the same flash, its stub's 64 KiB block erases | {} B | {:.2} s | 0 s | {:.2} | | | |\n",
            e["baud"],
            e["latency_ms"],
            e["wire_efficiency"].as_f64().unwrap_or(0.0) * 100.0,
            e["sent_bytes"],
            e["stream_s"].as_f64().unwrap_or(0.0),
            e["x_line_rate"].as_f64().unwrap_or(0.0)
        ));
    }
    for e in doc["esptool"].as_array().cloned().unwrap_or_default() {
        out.push_str(&format!(
            "| {} | (published) | esptool's method, published: zlib 9 at {:.0} % of the line, the wire only | {} B | {:.2} s | | {:.2} | | | |\n",
            e["baud"],
            e["wire_efficiency"].as_f64().unwrap_or(0.0) * 100.0,
            e["sent_bytes"],
            e["stream_s"].as_f64().unwrap_or(0.0),
            e["x_line_rate"].as_f64().unwrap_or(0.0)
        ));
    }
    out
}

/// Runs the matrix and prints it (a table, or one JSON document).
pub async fn run(
    image_path: &Path,
    from: Option<&Path>,
    json_out: bool,
    breakdown: bool,
) -> Result<(), String> {
    let image = Image::new(image_path.display().to_string(), read_firmware(image_path)?)
        .map_err(|e| e.to_string())?;
    let old = match from {
        Some(p) => Some(
            Image::new(p.display().to_string(), read_firmware(p)?).map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    run_images(image, old, json_out, breakdown).await
}

/// The QEMU board's VM (`vm-vm-slot1`, the firmware a user updates in VM slot 1, with the
/// agent's decoder) built twice, with and without the `one-function-change` feature
/// (one function of its flash driver changed): (old, new).
pub fn one_function_builds(quiet: bool) -> Result<(Image, Image), String> {
    if !crate::firmware_build::boards_dir()
        .join("Cargo.toml")
        .is_file()
    {
        return Err(
            "the firmware sources are not where this fota was built from: \
                    run it from the project's checkout"
                .into(),
        );
    }
    let mut out = Vec::new();
    for (features, dir, name) in [
        (&["codec"][..], "target-codec", "vm-vm-slot1"),
        (
            &["codec", "one-function-change"][..],
            "target-onefn",
            "vm-vm-slot1 (one function changed)",
        ),
    ] {
        if !quiet {
            eprintln!(
                "building the QEMU firmware with {features:?} (about a minute the first time)"
            );
        }
        let built = crate::firmware_build::build(features, dir).map_err(|e| {
            format!(
                "building the QEMU firmware failed ({e:?}): install the target with \
                 `rustup target add thumbv7em-none-eabihf`"
            )
        })?;
        let (_, bytes) = crate::qemu::flash_image(&built.join("vm-vm-slot1"))
            .map_err(|e| format!("{}: {}", e.message, e.help))?;
        out.push(Image::new(name, bytes).map_err(|e| e.to_string())?);
    }
    let new = out.pop().ok_or("no build")?;
    let old = out.pop().ok_or("no build")?;
    Ok((old, new))
}

/// `fota bench --one-function`: the delta between the two builds of
/// [`one_function_builds`], the device running the first.
pub async fn run_one_function(json_out: bool, breakdown: bool) -> Result<(), String> {
    let (old, new) = one_function_builds(json_out)?;
    run_images(new, Some(old), json_out, breakdown).await
}

async fn run_images(
    image: Image,
    old: Option<Image>,
    json_out: bool,
    breakdown: bool,
) -> Result<(), String> {
    let biggest = image.len().max(old.as_ref().map_or(0, Image::len));
    let slot = (biggest as u32).next_multiple_of(64 * 1024).max(256 * 1024);
    let mut methods = vec![("raw", Codec::None), ("compressed", Codec::Lzma)];
    if old.is_some() {
        methods.push(("delta", Codec::Delta));
    }
    methods.push(("auto", Codec::Auto));
    let mut rows = Vec::new();
    for baud in [115_200, 921_600] {
        for latency_ms in [1, 16] {
            for &(method, codec) in &methods {
                // The timeline of the delta rows (all rows without a base).
                let traced = breakdown && (codec == Codec::Delta || old.is_none());
                let m =
                    measure(&image, old.as_ref(), slot, baud, latency_ms, codec, traced).await?;
                let method = if codec == Codec::Auto {
                    format!("auto: {}", m.method)
                } else {
                    method.to_string()
                };
                let bound = match &old {
                    Some(o) if m.method == "delta" => {
                        Some(device_bound(image.len(), o.len(), slot, latency_ms))
                    }
                    _ => None,
                };
                rows.push(Row {
                    baud,
                    latency_ms,
                    method,
                    sent: m.sent,
                    stream: m.stream,
                    update: m.update,
                    flash_idle: m.flash_idle,
                    bound,
                });
            }
        }
    }
    let zlib = zlib9_len(image.data());
    let mut modelled = Vec::new();
    for &(baud, eff) in &ESPTOOL_EFFICIENCY {
        for latency_ms in [1, 16] {
            let secs = esptool_modelled(image.len(), zlib, baud, eff, latency_ms);
            modelled.push(json!({
                "baud": baud, "latency_ms": latency_ms, "wire_efficiency": eff,
                "sent_bytes": zlib, "stream_s": secs,
                "x_line_rate": x_line_rate(image.len(), secs, baud),
            }));
        }
    }
    let esptool: Vec<Value> = ESPTOOL_EFFICIENCY
        .iter()
        .map(|&(baud, eff)| {
            let secs = zlib as f64 / (f64::from(baud) / 10.0 * eff);
            json!({
                "baud": baud, "wire_efficiency": eff, "sent_bytes": zlib,
                "stream_s": secs, "x_line_rate": x_line_rate(image.len(), secs, baud),
            })
        })
        .collect();
    // The raw whole update at each setting: what the others are faster than.
    let raw_update = |baud: u32, latency_ms: u64| {
        rows.iter()
            .find(|r| r.baud == baud && r.latency_ms == latency_ms && r.method == "raw")
            .map(|r| r.update.as_secs_f64())
    };
    let rows_json: Vec<Value> = rows
        .iter()
        .map(|r| {
            let secs = r.stream.as_secs_f64();
            let raw = raw_update(r.baud, r.latency_ms);
            json!({
                "baud": r.baud, "latency_ms": r.latency_ms, "method": r.method,
                "sent_bytes": r.sent, "stream_s": secs,
                "x_line_rate": x_line_rate(image.len(), secs, r.baud),
                "update_s": r.update.as_secs_f64(),
                "flash_idle_s": r.flash_idle.as_secs_f64(),
                "x_raw": raw.map(|raw| raw / r.update.as_secs_f64()),
                "device_bound_s": r.bound,
                "bound_x_raw": r.bound.and_then(|b| raw.map(|raw| raw / b)),
            })
        })
        .collect();
    let mut doc = json!({
        "event": "bench_image",
        "image": image.name, "image_bytes": image.len(),
        "from": old.as_ref().map(|o| o.name.clone()),
        "from_bytes": old.as_ref().map(Image::len),
        "zlib9_bytes": zlib,
        "rows": rows_json,
        "esptool": esptool,
        "esptool_modelled": modelled,
    });
    let table = markdown(&doc);
    doc["table_markdown"] = Value::String(table.clone());
    if json_out {
        println!("{doc}");
    } else {
        println!(
            "{} ({} bytes){}; zlib level 9: {zlib} bytes\n",
            image.name,
            image.len(),
            old.as_ref()
                .map(|o| format!(", delta from {} ({} bytes)", o.name, o.len()))
                .unwrap_or_default()
        );
        print!("{table}");
        println!(
            "\nsent: image data on the wire (raw image, or stream); stream: the Stream step in \
             the modelled link's time, the erases that run during it included; x line rate: \
             image bytes / (stream x baud/10); flash idle: how long the flash waited \
             between the first sector's erase (for a delta, the base's check) and the \
             image's last program, in the same virtual time; auto: the default, named by what it picked; \
             x raw: the raw whole update's time / this one's; device bound (delta rows): the \
             fastest erase of the written range in the free slot + the image's page programs \
             + the device's MD5 of the base and of the result + one round trip, and the raw \
             whole update's time / it (the most a delta could gain on this device). \
             esptool's method on this model: zlib level 9 at its published wire efficiency \
             (esptool issues 255 and 256), a round trip per 16 KiB block, against the same \
             flash erase and program work as our Stream column; published: the wire only."
        );
    }
    Ok(())
}
