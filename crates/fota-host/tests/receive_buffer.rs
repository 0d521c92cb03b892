//! What the device's receive buffer must hold: the simulated device's UART buffer is
//! shrunk until bytes are lost, at each baud rate, and the window the host needs to keep
//! the line busy is measured. docs/PORTING.md's table is these figures; this test
//! regenerates them and fails if the page says otherwise.

use std::time::Duration;

use fota_host::sim::{SimTransport, Virtual};
use fota_host::update::Plan;
use fota_host::{Device, Image, NullObserver, update};
use fota_sim::device::{DeviceConfig, LayoutKind, SimDevice};
use futures::executor::block_on;

const FRAME: usize = fota_agent::RX_FRAME;
const RATES: [u32; 5] = [115_200, 230_400, 460_800, 921_600, 2_000_000];
const IMAGE: usize = 64 * 1024;

struct Run {
    overruns: u64,
    stream: Duration,
    ok: bool,
}

/// One whole update of a 64 KiB program at `baud` (negotiated from 115200), with the
/// agent announcing `window` requests in flight and a UART buffer of `buffer` bytes, on
/// a W25Q128JV or an STM32F4's flash.
fn run(baud: u32, latency_ms: u64, window: u8, buffer: usize, stm32: bool) -> Run {
    let mut cfg = if stm32 {
        DeviceConfig::stm32f4(LayoutKind::BytecodeOnly)
    } else {
        DeviceConfig::new(LayoutKind::BytecodeOnly)
    };
    cfg.max_baud = 2_000_000;
    cfg.latency_ns = latency_ms * 1_000_000;
    cfg.max_in_flight = window;
    cfg.rx_buffer_bytes = Some(buffer);
    // The window in requests, as this table has always counted it (Info tag 8 would let
    // the host count the bytes of the announced queue instead).
    cfg.announce_rx_window = false;
    let sim = SimDevice::new(cfg);
    let mut dev = Device::new(SimTransport::new(sim, Virtual), Box::new(NullObserver));
    dev.timeouts.attempts = 3;
    let src = fota_bytecode::samples::healthy_of_size("2", IMAGE);
    let image = Image::new("p.bin", fota_bytecode::assemble(&src).expect("sample")).expect("image");
    let mut plan = Plan::new(image);
    plan.restart = false;
    let ok = block_on(async {
        dev.hello().await?;
        if baud != 115_200 {
            dev.negotiate_baud(&[baud]).await?;
        }
        update(&mut dev, &plan).await
    });
    Run {
        overruns: dev.link().device().overruns(),
        stream: ok.as_ref().map_or(Duration::ZERO, |r| r.stream_time),
        ok: ok.is_ok(),
    }
}

/// The line time of the image's write frames alone: the physical limit of the stream.
fn line_time(baud: u32) -> f64 {
    let frames = IMAGE.div_ceil(1024);
    let bytes = frames * fota_protocol::frame_len(1024 + 11);
    bytes as f64 * 10.0 / f64::from(baud)
}

/// The smallest buffer (in 16-byte steps) with which a whole update loses no byte,
/// the agent announcing five requests in flight; 16 bytes less lose bytes.
fn smallest_buffer(baud: u32, stm32: bool) -> usize {
    let (mut lo, mut hi) = (16usize, 5 * FRAME);
    let full = run(baud, 1, 5, hi, stm32);
    assert!(full.ok && full.overruns == 0, "the full window loses bytes");
    assert!(
        run(baud, 1, 5, lo, stm32).overruns > 0,
        "16 bytes lose nothing?"
    );
    while hi - lo > 16 {
        let mid = (lo + hi) / 2 / 16 * 16;
        if run(baud, 1, 5, mid, stm32).overruns == 0 {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

/// The fewest requests in flight that keep the stream within 5 % of the line's limit
/// (buffer: that many frames), or 5 if none does.
fn window_for_line_rate(baud: u32, latency_ms: u64) -> (u8, f64) {
    let limit = line_time(baud);
    let mut last = (5, 0.0);
    for w in 1..=5u8 {
        let r = run(baud, latency_ms, w, usize::from(w) * FRAME, false);
        assert!(r.ok && r.overruns == 0, "window {w} at {baud}");
        let eff = limit / r.stream.as_secs_f64();
        last = (w, eff);
        if eff >= 0.95 {
            return last;
        }
    }
    last
}

#[test]
fn the_receive_buffer_figures_of_the_porting_guide() {
    let mut rows = Vec::new();
    for &baud in &RATES {
        let mut row = format!("| {baud} |");
        for latency in [1u64, 16] {
            let (w, eff) = window_for_line_rate(baud, latency);
            row.push_str(&format!(
                " {w} x {FRAME} = {} B ({:.0} %) |",
                usize::from(w) * FRAME,
                eff * 100.0
            ));
        }
        for stm32 in [false, true] {
            row.push_str(&format!(" {} B |", smallest_buffer(baud, stm32)));
        }
        println!("{row}");
        rows.push(row);
    }
    let doc = include_str!("../../../docs/PORTING.md");
    for row in &rows {
        assert!(
            doc.contains(row.as_str()),
            "docs/PORTING.md lacks the row:\n{row}"
        );
    }
}
