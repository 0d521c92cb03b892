//! The fuzz targets' properties (`fuzz/`, cargo-fuzz) as proptest tests, so that a plain
//! `cargo test` checks them too. The checks themselves are in `fuzz/src/harness.rs`,
//! included here unchanged:
//!
//! - the frame decoder classifies every chunk of arbitrary bytes as a reference COBS +
//!   CRC-32 decoder does, never stalls, and every frame it decodes round-trips through the
//!   request and reply encoders;
//! - arbitrary request frames (noise, damaged and oversized frames, power cuts, restarts
//!   included) into an `AgentLink` over a `SimFlash` never panic, never change a byte
//!   outside the free slot the request named (the record area only through set_record,
//!   attempt, accept and boot), a refusal changes nothing, the record in RAM is the one on
//!   flash, and the record is never lost.
//!
//! `PROPTEST_CASES=n` runs more cases.

#[path = "../../../fuzz/src/harness.rs"]
mod harness;

use proptest::prelude::*;

fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Bytes that look like the wire: frames of every request, noise, text, zeros.
fn wire() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        3 => (any::<u16>(), any::<u8>(), proptest::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(id, op, body)| harness::raw_frame(id, op, &body)),
        1 => proptest::collection::vec(any::<u8>(), 0..80),
        1 => "[ -~\r\n]{0,60}".prop_map(String::into_bytes),
        1 => Just(vec![0u8]),
    ];
    proptest::collection::vec(piece, 0..12).prop_map(|pieces| {
        let mut out = vec![any_size_flag()];
        for p in pieces {
            out.extend(p);
        }
        out
    })
}

/// The first byte picks the reader size; let proptest vary it through the data instead.
fn any_size_flag() -> u8 {
    0
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn frame_decoder_agrees_with_a_reference(data in proptest::collection::vec(any::<u8>(), 0..3000)) {
        harness::frame_decoder(&data);
    }

    #[test]
    fn frame_decoder_on_wire_like_bytes(data in wire(), small in any::<bool>()) {
        let mut data = data;
        data[0] = u8::from(small);
        harness::frame_decoder(&data);
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn agent_requests_keep_every_invariant(data in proptest::collection::vec(any::<u8>(), 0..4000)) {
        harness::agent_requests(&data);
    }
}

/// Fixed scripts that reach the deep states (record ring wrap, trials, power cuts) every
/// run, whatever proptest draws.
#[test]
fn agent_requests_seeded_scripts() {
    let mut totals = harness::Run::default();
    for seed in 0..48u64 {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let data: Vec<u8> = (0..6000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        let run = harness::agent_requests(&data);
        totals.requests += run.requests;
        totals.boots += run.boots;
        totals.cuts += run.cuts;
    }
    println!("seeded scripts: {totals:?}");
    assert!(totals.requests > 2_000 && totals.cuts > 20, "{totals:?}");
}
