use super::*;

/// The W25Q128JV as the simulated device declares it, 1 KiB frames, at `baud` with a
/// round trip of `rtt_ms`.
fn pace(baud: u32, rtt_ms: u64) -> Pace {
    Pace {
        baud: Some(baud),
        round_trip: Duration::from_millis(rtt_ms),
        sector_erase: Duration::from_millis(45),
        program_ns_per_byte: DEFAULT_PROGRAM_NS_PER_BYTE,
        max_write: 1024,
        rx_window: Some(5354),
        block_erases: [None; 2],
        background_erase: false,
    }
}

/// MicroPython for the micro:bit: 243,852 bytes, 60 sectors of 4 KiB, compressed to
/// 145,315 bytes in 15 blocks (docs/CODECS.md).
const MICROBIT: Work = Work {
    image: 243_852,
    sectors: 60,
    sector_size: 4096,
};

fn picks_raw(p: &Pace, sent: u64) -> Option<String> {
    match p.verdict(&MICROBIT, sent, 15, "compressed") {
        Verdict::Raw(why) => Some(why),
        Verdict::Stream(_) => None,
    }
}

/// Each case (baud, round trip in ms, raw and compressed stream times measured by
/// `fota bench --image`, the README's Stream column) against the model `pace` of
/// the device: the raw image within `raw_within`, the stream within `stream_within`.
fn matches(
    pace: fn(u32, u64) -> Pace,
    cases: &[(u32, u64, f64, f64)],
    raw_within: f64,
    stream_within: f64,
) {
    for &(baud, rtt, raw, stream) in cases {
        let p = pace(baud, rtt);
        let r = p.raw(&MICROBIT).expect("a baud").as_secs_f64();
        let s = p
            .stream(&MICROBIT, 145_315, 15)
            .expect("a baud")
            .as_secs_f64();
        assert!(
            (r / raw - 1.0).abs() < raw_within,
            "raw at {baud}/{rtt}: {r} vs {raw}"
        );
        assert!(
            (s / stream - 1.0).abs() < stream_within,
            "compressed at {baud}/{rtt}: {s} vs {stream}"
        );
    }
}

#[test]
fn the_model_matches_the_measured_updates() {
    // Raw 21.51 / 21.51 / 3.37 / 3.49 s, compressed 13.05 / 13.14 / 3.48 / 3.59 s at
    // 115200 with 1 and 16 ms one way, then 921600 with 1 and 16 ms, measured on a
    // device that declared no block erases. The model is within 4 % of each (the raw
    // image at 921600 with 16 ms, whose flash idles a little behind every other
    // erase, 3.5 % under), the stream within 2 %.
    let cases = [
        (115_200, 2, 21.51, 13.05),
        (115_200, 32, 21.51, 13.14),
        (921_600, 2, 3.37, 3.48),
        (921_600, 32, 3.49, 3.59),
    ];
    matches(pace, &cases, 0.04, 0.02);
}

/// The same device with its block erases declared (Info tag 10): the host erases
/// whole 64 KiB blocks where they pay.
fn blocks(baud: u32, rtt_ms: u64) -> Pace {
    Pace {
        block_erases: [
            Some((32 * 1024, Duration::from_millis(120))),
            Some((64 * 1024, Duration::from_millis(150))),
        ],
        ..pace(baud, rtt_ms)
    }
}

#[test]
fn the_model_matches_the_measured_updates_with_block_erases() {
    // With the W25Q128JV's block erases, in the same order as above: raw 21.32 /
    // 21.32 / 2.70 / 3.07 s (the host's raw plan: at 921600 baud and 1 ms one block and
    // sectors erased early), compressed 12.84 / 12.90 / 1.83 / 2.14 s. The raw image
    // within 4 %, the stream within 3 % (2.20 s modelled at 921600 and 16 ms).
    let cases = [
        (115_200, 2, 21.32, 12.84),
        (115_200, 32, 21.32, 12.90),
        (921_600, 2, 2.70, 1.83),
        (921_600, 32, 3.07, 2.14),
    ];
    matches(blocks, &cases, 0.04, 0.03);
    // So the default sends it compressed at every setting, as measured fastest.
    for (baud, rtt) in [(115_200, 2), (115_200, 32), (921_600, 2), (921_600, 32)] {
        assert!(
            picks_raw(&blocks(baud, rtt), 145_315).is_none(),
            "{baud}/{rtt}"
        );
    }
}

#[test]
fn raw_where_the_flash_sets_the_pace_and_a_short_round_trip() {
    let why = picks_raw(&pace(921_600, 2), 145_315).expect("raw at 921600, 1 ms");
    assert_eq!(
        why,
        "the flash, not the link, sets the pace at 921600 baud: about 3.4 s raw, 3.4 s \
         compressed, by the model"
    );
    // The same flash with 16 ms each way: the model charges the stream three round
    // trips at its start; the raw image keeps an erase and five blocks queued at the
    // agent (Info tag 8), more work than a round trip, and the flash never waits.
    assert!(picks_raw(&pace(921_600, 32), 145_315).is_some());
    // Without tag 8 (a window of requests) the raw image idles after each erase for
    // the round trip less a sector's programming, and the stream is faster.
    let requests = Pace {
        rx_window: None,
        ..pace(921_600, 32)
    };
    assert_eq!(picks_raw(&requests, 145_315), None);
    // The line sets the pace: fewer bytes win.
    assert_eq!(picks_raw(&pace(115_200, 2), 145_315), None);
    // A stream no smaller than the image goes raw even where the line is slow.
    assert!(picks_raw(&pace(115_200, 2), 243_900).is_some());
}

#[test]
fn a_stream_says_its_modelled_time() {
    let v = pace(115_200, 2).verdict(&MICROBIT, 145_315, 15, "compressed");
    let Verdict::Stream(why) = v else {
        panic!("compressed at 115200")
    };
    assert_eq!(why, "about 13.0 s against 21.5 s raw at 115200 baud");
}

#[test]
fn a_delta_against_raw() {
    // MicroPython 1.0.0 -> 1.0.1: 231,608 bytes, a delta of 12,330 in 15 blocks.
    // Measured: raw 3.20 s, delta 3.30 s at 921600/1 ms; 3.31 against 3.36 at 16 ms
    // (the delta's with its base check, which the model leaves out: the host asks
    // for it before choosing).
    let work = Work {
        image: 231_608,
        sectors: 57,
        sector_size: 4096,
    };
    let delta = "the delta";
    assert!(matches!(
        pace(921_600, 2).verdict(&work, 12_330, 15, delta),
        Verdict::Raw(why) if why.ends_with("3.2 s raw, 3.2 s the delta, by the model")
    ));
    // With 16 ms each way as well (measured: raw 3.31 s, the delta 3.36 s); with a
    // window of requests (no tag 8) the raw image waits after its erases and the
    // delta wins.
    assert!(matches!(
        pace(921_600, 32).verdict(&work, 12_330, 15, delta),
        Verdict::Raw(_)
    ));
    let requests = Pace {
        rx_window: None,
        ..pace(921_600, 32)
    };
    assert!(matches!(
        requests.verdict(&work, 12_330, 15, delta),
        Verdict::Stream(_)
    ));
    assert!(matches!(
        pace(115_200, 2).verdict(&work, 12_330, 15, delta),
        Verdict::Stream(_)
    ));
}

#[test]
fn no_baud_no_model() {
    let mut p = pace(921_600, 2);
    p.baud = None;
    assert!(matches!(
        p.verdict(&MICROBIT, 145_315, 15, "compressed"),
        Verdict::Stream(why) if why.contains("unknown")
    ));
}
