//! A Plan's own encoder (the web app's runs in a separately loaded module, in a worker)
//! makes the streams in place of the built-in one: what it returns is what goes to the
//! device, a delta included; and an encoder that fails leaves the image raw, saying why,
//! and the update still completes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use fota_codec::encode::{DEFAULT_OPTIONS, compress, delta};
use fota_host::codec::{Codec, Encoder, Stream};
use fota_host::update::{Outcome, Plan};
use fota_host::{Image, update};
use fota_sim::device::{DeviceConfig, LayoutKind, SimDevice};
use futures::executor::block_on;

mod support;

use support::{Lines, firmware};

fn program(version: &str) -> Image {
    support::program(format!("v{version}.bin"), version, 60_000)
}

/// An encoder that goes through the stream's bytes (as the web app's does) and counts
/// its calls: (compressed, delta).
fn through_bytes(calls: Arc<(AtomicUsize, AtomicUsize)>) -> Encoder {
    Encoder::new(move |base, image| {
        let calls = calls.clone();
        Box::pin(async move {
            let stream = match base {
                Some(base) => {
                    calls.1.fetch_add(1, Ordering::SeqCst);
                    delta(&base, &image, &DEFAULT_OPTIONS)
                }
                None => {
                    calls.0.fetch_add(1, Ordering::SeqCst);
                    compress(&image, &DEFAULT_OPTIONS)
                }
            }
            .map_err(|e| e.to_string())?;
            Stream::from_bytes(&stream.to_bytes()).map_err(|e| e.to_string())
        })
    })
}

#[test]
fn the_plans_encoder_makes_the_compressed_and_the_delta_stream() {
    let events = Lines::default();
    let sim = SimDevice::new(DeviceConfig::new(LayoutKind::BytecodeOnly));
    let mut dev = support::host_with(sim, Box::new(events.clone()));
    let calls = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));

    // Code-like bytes that compress; sent compressed (the flash does not set the pace
    // here), the MD5 check and attempt passed on what the plan's encoder made.
    let app = firmware(100_000);
    let mut plan = Plan::new(app.clone());
    plan.codec = Codec::Lzma;
    plan.restart = false;
    plan.encoder = Some(through_bytes(calls.clone()));
    let report = block_on(update(&mut dev, &plan)).expect("update");
    assert_eq!(report.outcome, Outcome::Attempted);
    assert_eq!(
        calls.0.load(Ordering::SeqCst),
        1,
        "the whole image compressed once"
    );
    assert!(
        report.sent_bytes * 3 < app.len() as u64,
        "{} sent",
        report.sent_bytes
    );

    // A program the device runs, then a delta from it.
    let v2 = program("2");
    let mut plan = Plan::new(v2.clone());
    plan.encoder = Some(through_bytes(calls.clone()));
    let report = block_on(update(&mut dev, &plan)).expect("update");
    assert_eq!(report.outcome, Outcome::Accepted);
    assert_eq!(calls.0.load(Ordering::SeqCst), 2);

    let mut plan = Plan::new(program("3"));
    plan.bases = vec![v2];
    plan.encoder = Some(through_bytes(calls.clone()));
    let report = block_on(update(&mut dev, &plan)).expect("delta update");
    assert_eq!(report.outcome, Outcome::Accepted);
    assert_eq!(
        calls.1.load(Ordering::SeqCst),
        1,
        "the delta made by the plan's encoder"
    );
    assert!(report.sent_bytes < 2000, "{} sent", report.sent_bytes);
}

#[test]
fn an_encoder_that_fails_leaves_the_image_raw_and_says_why() {
    let events = Lines::default();
    let sim = SimDevice::new(DeviceConfig::new(LayoutKind::BytecodeOnly));
    let mut dev = support::host_with(sim, Box::new(events.clone()));
    let image = program("2");
    let mut plan = Plan::new(image.clone());
    plan.encoder = Some(Encoder::new(|_, _| {
        Box::pin(async { Err("its module could not be loaded".to_string()) })
    }));
    let report = block_on(update(&mut dev, &plan)).expect("update");
    assert_eq!(report.outcome, Outcome::Accepted);
    assert!(report.sent_bytes >= image.len() as u64);
    let said = events.events();
    assert!(
        said.iter().any(
            |l| l.contains("uncompressed (the encoder failed: its module could not be loaded)")
        ),
        "{said:?}"
    );
}
