//! Golden frames, the same bytes as in docs/PROTOCOL.md, checked in both directions:
//! encoding a message gives exactly these bytes, and reading these bytes gives back
//! exactly the message. (The bytes were computed apart from this crate, with Python's
//! `zlib.crc32` and a COBS encoder written from the page.)

use fota_protocol::{
    AcceptOutcome, DecodeError, ErrorCode, Event, FrameReader, Record, RecordState, Reply, Request,
    SlotCheck, SlotKind, encode_reply, encode_request,
};

mod support;
use support::sample_info;

fn read_one(bytes: &[u8]) -> (u16, u8, Vec<u8>) {
    let mut reader = FrameReader::<256>::new();
    let (used, event) = reader.feed(bytes);
    // The leading zero is skipped, the frame ends at the trailing zero: all consumed.
    assert_eq!(used, bytes.len());
    match event {
        Some(Event::Frame(f)) => (f.id, f.op, f.body.to_vec()),
        other => panic!("expected a frame, got {other:?}"),
    }
}

fn request_golden() -> Vec<(u16, Request<'static>, &'static [u8])> {
    vec![
        (
            1,
            Request::Hello { version: 2 },
            &[
                0x00, 0x02, 0x01, 0x03, 0x01, 0x02, 0x05, 0x18, 0xD6, 0xB6, 0xC8, 0x00,
            ],
        ),
        (
            2,
            Request::GetRecord,
            &[0x00, 0x02, 0x02, 0x06, 0x02, 0x50, 0x6C, 0xCB, 0x12, 0x00],
        ),
        (
            3,
            Request::EraseSlot {
                addr: 0x0001_0000,
                size: 0x8000,
            },
            &[
                0x00, 0x02, 0x03, 0x02, 0x06, 0x01, 0x02, 0x01, 0x01, 0x02, 0x80, 0x01, 0x05, 0x42,
                0x66, 0x16, 0xAB, 0x00,
            ],
        ),
        (
            4,
            Request::WriteSlot {
                addr: 0x0001_0000,
                data: &[0xDE, 0xAD, 0x00, 0xEF],
            },
            &[
                0x00, 0x02, 0x04, 0x02, 0x07, 0x01, 0x02, 0x01, 0x03, 0xDE, 0xAD, 0x06, 0xEF, 0x72,
                0x83, 0xFD, 0x53, 0x00,
            ],
        ),
        (
            5,
            Request::Attempt {
                bc_slot: 1,
                vm_slot: 0,
                check: None,
            },
            &[
                0x00, 0x02, 0x05, 0x03, 0x0B, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x05, 0xED,
                0x83, 0x2F, 0x54, 0x00,
            ],
        ),
        (
            16,
            Request::SetBaud { baud: 921_600 },
            &[
                0x00, 0x02, 0x10, 0x02, 0x0C, 0x03, 0x10, 0x0E, 0x05, 0x4F, 0x20, 0xE7, 0xBD, 0x00,
            ],
        ),
        (
            17,
            Request::Goodbye,
            &[0x00, 0x02, 0x11, 0x06, 0x0D, 0xE8, 0x6C, 0x14, 0x9C, 0x00],
        ),
        (
            20,
            // A delta (lc 0, lp 1, pb 1) of 0x3000 bytes against 0x2800 bytes of the slot
            // at 0x8000, into the slot at 0x10000.
            Request::StreamBegin {
                addr: 0x0001_0000,
                base: 0x8000,
                header: &[
                    0x46, 0x5A, 0x01, 0x01, 0x36, 0x01, 0x00, 0x00, 0x00, 0x30, 0x00, 0x00, 0x00,
                    0x28, 0x00, 0x00, 0x78, 0x56, 0x34, 0x12,
                ],
            },
            &[
                0x00, 0x02, 0x14, 0x02, 0x0E, 0x01, 0x02, 0x01, 0x01, 0x02, 0x80, 0x01, 0x07, 0x46,
                0x5A, 0x01, 0x01, 0x36, 0x01, 0x01, 0x01, 0x02, 0x30, 0x01, 0x01, 0x02, 0x28, 0x01,
                0x09, 0x78, 0x56, 0x34, 0x12, 0xD9, 0x1C, 0xCF, 0xD4, 0x00,
            ],
        ),
        (
            21,
            Request::StreamData {
                offset: 0x400,
                data: &[0x01, 0x00, 0x40, 0x00, 0x00],
            },
            &[
                0x00, 0x02, 0x15, 0x02, 0x0F, 0x02, 0x04, 0x01, 0x02, 0x01, 0x02, 0x40, 0x01, 0x05,
                0x84, 0xAD, 0xD5, 0xD7, 0x00,
            ],
        ),
        (
            22,
            Request::StreamData {
                offset: 0x405,
                data: &[],
            },
            &[
                0x00, 0x02, 0x16, 0x04, 0x0F, 0x05, 0x04, 0x01, 0x05, 0xB5, 0xB9, 0xE5, 0x2B, 0x00,
            ],
        ),
        (
            24,
            // Protocol 3: the attempt checks the MD5 of bytecode slot 1's first 0x3000
            // bytes (here the empty string's MD5, as in the Checksum frame below).
            Request::Attempt {
                bc_slot: 1,
                vm_slot: 0,
                check: Some(SlotCheck {
                    kind: SlotKind::Bytecode,
                    len: 0x3000,
                    md5: [
                        0xD4, 0x1D, 0x8C, 0xD9, 0x8F, 0x00, 0xB2, 0x04, 0xE9, 0x80, 0x09, 0x98,
                        0xEC, 0xF8, 0x42, 0x7E,
                    ],
                }),
            },
            &[
                0x00, 0x02, 0x18, 0x03, 0x0B, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x02, 0x01,
                0x02, 0x30, 0x01, 0x06, 0xD4, 0x1D, 0x8C, 0xD9, 0x8F, 0x0F, 0xB2, 0x04, 0xE9, 0x80,
                0x09, 0x98, 0xEC, 0xF8, 0x42, 0x7E, 0xD4, 0x7F, 0x41, 0x68, 0x00,
            ],
        ),
        (
            1,
            Request::Hello { version: 3 },
            &[
                0x00, 0x02, 0x01, 0x03, 0x01, 0x03, 0x05, 0x59, 0xE7, 0xAD, 0xD1, 0x00,
            ],
        ),
    ]
}

fn reply_golden() -> Vec<(u16, Reply, &'static [u8])> {
    vec![
        (
            2,
            // The record of the section 9 session after the restart: bytecode slot 1 on
            // trial, VM 0 and bytecode 1 running.
            Reply::Record(Record {
                state: RecordState::Trial,
                running_vm: 0,
                running_bc: 1,
                ..Record::from_array([1, 0, 0, 0, 1, 0, 0x10000, 0, 1024])
            }),
            &[
                0x00, 0x02, 0x02, 0x03, 0x82, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
                0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x02, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
                0x01, 0x01, 0x02, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x02, 0x04, 0x01, 0x02, 0x54,
                0x01, 0x01, 0x01, 0x02, 0x01, 0x01, 0x01, 0x05, 0x7D, 0x74, 0xC4, 0xA4, 0x00,
            ],
        ),
        (
            6,
            // MD5 of the empty string.
            Reply::Checksum([
                0xd4, 0x1d, 0x8c, 0xd9, 0x8f, 0x00, 0xb2, 0x04, 0xe9, 0x80, 0x09, 0x98, 0xec, 0xf8,
                0x42, 0x7e,
            ]),
            &[
                0x00, 0x02, 0x06, 0x07, 0x88, 0xD4, 0x1D, 0x8C, 0xD9, 0x8F, 0x0F, 0xB2, 0x04, 0xE9,
                0x80, 0x09, 0x98, 0xEC, 0xF8, 0x42, 0x7E, 0x73, 0x1A, 0x82, 0x21, 0x00,
            ],
        ),
        (
            7,
            Reply::Error {
                code: ErrorCode::SlotInUse,
                detail: 0x8000,
            },
            &[
                0x00, 0x02, 0x07, 0x03, 0xFF, 0x03, 0x02, 0x80, 0x01, 0x05, 0xEC, 0x1C, 0xB6, 0x2D,
                0x00,
            ],
        ),
        (
            3,
            Reply::Progress {
                done: 4096,
                total: 32768,
            },
            &[
                0x00, 0x02, 0x03, 0x02, 0xFE, 0x02, 0x10, 0x01, 0x01, 0x02, 0x80, 0x01, 0x05, 0xAB,
                0x48, 0xBA, 0x2A, 0x00,
            ],
        ),
        (
            1,
            Reply::Info(sample_info()),
            &[
                0x00, 0x02, 0x01, 0x03, 0x81, 0x02, 0x01, 0x02, 0x01, 0x02, 0x01, 0x02, 0x10, 0x01,
                0x02, 0x04, 0x01, 0x03, 0x04, 0x04, 0x03, 0x10, 0x0E, 0x01, 0x03, 0x80, 0x01, 0x01,
                0x02, 0x20, 0x01, 0x02, 0x03, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x02, 0x80, 0x01,
                0x02, 0x01, 0x01, 0x02, 0x80, 0x01, 0x01, 0x02, 0x80, 0x01, 0x03, 0x01, 0x01, 0x01,
                0x02, 0x01, 0x01, 0x02, 0x80, 0x01, 0x08, 0x03, 0x73, 0x69, 0x6D, 0x02, 0x04, 0x2D,
                0x01, 0x01, 0x03, 0x03, 0x10, 0x03, 0xC2, 0x01, 0x01, 0x03, 0x84, 0x03, 0x01, 0x03,
                0x08, 0x07, 0x01, 0x03, 0x10, 0x0E, 0x05, 0xDA, 0x90, 0xC7, 0x8C, 0x00,
            ],
        ),
        (
            12,
            Reply::Accepted(AcceptOutcome::Accepted),
            &[
                0x00, 0x02, 0x0C, 0x02, 0x8A, 0x05, 0x65, 0x10, 0xFE, 0xAA, 0x00,
            ],
        ),
        (
            12,
            Reply::Accepted(AcceptOutcome::NotRestarted),
            &[
                0x00, 0x02, 0x0C, 0x07, 0x8A, 0x02, 0x49, 0x71, 0xF0, 0x44, 0x00,
            ],
        ),
        (
            16,
            Reply::BaudSet(921_600),
            &[
                0x00, 0x02, 0x10, 0x02, 0x8C, 0x03, 0x10, 0x0E, 0x05, 0xDD, 0x90, 0x01, 0x0C, 0x00,
            ],
        ),
        (
            7,
            Reply::Error {
                code: ErrorCode::BootStage,
                detail: 0,
            },
            &[
                0x00, 0x02, 0x07, 0x03, 0xFF, 0x12, 0x01, 0x01, 0x01, 0x05, 0x5E, 0xB9, 0x03, 0x91,
                0x00,
            ],
        ),
        (
            17,
            Reply::Goodbye(115_200),
            &[
                0x00, 0x02, 0x11, 0x02, 0x8D, 0x03, 0xC2, 0x01, 0x05, 0x48, 0x4F, 0x83, 0x9E, 0x00,
            ],
        ),
        (
            20,
            Reply::StreamBegun { image_len: 0x3000 },
            &[
                0x00, 0x02, 0x14, 0x02, 0x8E, 0x02, 0x30, 0x01, 0x05, 0xC0, 0x8C, 0x40, 0x24, 0x00,
            ],
        ),
        (
            21,
            Reply::Streamed {
                received: 0x405,
                written: 0x1000,
            },
            &[
                0x00, 0x02, 0x15, 0x04, 0x8F, 0x05, 0x04, 0x01, 0x01, 0x02, 0x10, 0x01, 0x05, 0xFC,
                0x9F, 0x43, 0xAD, 0x00,
            ],
        ),
        (
            23,
            Reply::Error {
                code: ErrorCode::StreamGap,
                detail: 0x400,
            },
            &[
                0x00, 0x02, 0x17, 0x03, 0xFF, 0x16, 0x02, 0x04, 0x01, 0x05, 0x69, 0x86, 0x31, 0x1F,
                0x00,
            ],
        ),
        (
            24,
            Reply::Error {
                code: ErrorCode::ChecksumMismatch,
                detail: 1,
            },
            &[
                0x00, 0x02, 0x18, 0x04, 0xFF, 0x1C, 0x01, 0x01, 0x01, 0x05, 0xDD, 0x43, 0x14, 0x33,
                0x00,
            ],
        ),
    ]
}

#[test]
fn requests_encode_to_golden_bytes() {
    for (id, req, golden) in request_golden() {
        let mut out = [0u8; 64];
        let n = encode_request(id, &req, &mut out).expect("fits");
        assert_eq!(&out[..n], golden, "encoding {req:?}");
    }
}

#[test]
fn golden_bytes_decode_to_requests() {
    for (id, req, golden) in request_golden() {
        let (got_id, op, body) = read_one(golden);
        assert_eq!(got_id, id);
        let parsed = Request::parse(op, &body);
        // Only an agent built with `codec` takes the stream requests; without it they are
        // unknown ops (the agent answers `UnknownCommand`).
        let streamed = matches!(
            req,
            Request::StreamBegin { .. } | Request::StreamData { .. }
        );
        if streamed && !cfg!(feature = "codec") {
            assert_eq!(parsed, Err(DecodeError::UnknownOp(op)), "{req:?}");
        } else {
            assert_eq!(parsed.expect("valid body"), req);
        }
    }
}

#[test]
fn replies_encode_to_golden_bytes() {
    for (id, reply, golden) in reply_golden() {
        let mut out = [0u8; 128];
        let n = encode_reply(id, &reply, &mut out).expect("fits");
        assert_eq!(&out[..n], golden, "encoding {reply:?}");
    }
}

#[test]
fn golden_bytes_decode_to_replies() {
    for (id, reply, golden) in reply_golden() {
        let (got_id, op, body) = read_one(golden);
        assert_eq!(got_id, id);
        assert_eq!(Reply::parse(op, &body).expect("valid body"), reply);
    }
}

#[test]
fn crc_is_the_zlib_crc32() {
    // The Hello frame's payload is 01 00 01 02 00; zlib.crc32 of it is 0xC8B6D618, sent
    // little-endian as 18 D6 B6 C8 (the four bytes before the final zero).
    let golden = request_golden()[0].2;
    assert_eq!(
        &golden[golden.len() - 5..golden.len() - 1],
        &[0x18, 0xD6, 0xB6, 0xC8]
    );
}

/// Extension fields a reader does not know are skipped; a known one of the wrong length,
/// or one that runs past the body, makes the body malformed.
#[test]
fn info_extensions_unknown_tags_are_skipped() {
    let mut out = [0u8; 256];
    let n = encode_reply(1, &Reply::Info(sample_info()), &mut out).expect("fits");
    let (_, op, body) = read_one(&out[..n]);
    // A later protocol's field (tag 0x40, 3 bytes) between two known ones, and one at the end.
    let fixed = body.len() - (6 + 18);
    let mut longer = body[..fixed].to_vec();
    longer.extend_from_slice(&body[fixed..fixed + 6]);
    longer.extend_from_slice(&[0x40, 3, 1, 2, 3]);
    longer.extend_from_slice(&body[fixed + 6..]);
    longer.extend_from_slice(&[0xEE, 0]);
    assert_eq!(
        Reply::parse(op, &longer).expect("unknown tags skipped"),
        Reply::Info(sample_info())
    );
    // Without extensions: none of the optional fields.
    let Reply::Info(bare) = Reply::parse(op, &body[..fixed]).expect("fixed part alone") else {
        panic!("not an Info");
    };
    assert_eq!((bare.boot_stage, bare.sector_erase_ms), (None, None));
    assert!(bare.baud_rates.is_empty());
    // The boot stage is tag 1, one byte.
    let mut staged = body.clone();
    staged.extend_from_slice(&[1, 1, 0]);
    let Reply::Info(i) = Reply::parse(op, &staged).expect("boot stage") else {
        panic!("not an Info");
    };
    assert_eq!(i.boot_stage, Some(0));
    // Sector runs are tag 4, 12 bytes a run: STM32F4's 16, 64 and 128 KiB sectors.
    let mut mixed = body.clone();
    mixed.extend_from_slice(&[4, 36]);
    for (addr, size, count) in [
        (0u32, 0x4000u32, 4u32),
        (0x1_0000, 0x1_0000, 1),
        (0x2_0000, 0x2_0000, 7),
    ] {
        for v in [addr, size, count] {
            mixed.extend_from_slice(&v.to_le_bytes());
        }
    }
    let Reply::Info(i) = Reply::parse(op, &mixed).expect("sector runs") else {
        panic!("not an Info");
    };
    assert_eq!(i.sectors.len(), 3);
    assert_eq!(i.sector_at(0x2_4000), (0x2_0000, 0x2_0000));
    assert_eq!(i.sector_at(0x1_2345), (0x1_0000, 0x1_0000));
    assert_eq!(i.sector_at(0x7FFF), (0x4000, 0x4000));
    // Past the runs, the fixed field's sector size.
    assert_eq!(i.sector_at(0x10_1234), (0x10_1000, 4096));
    assert_eq!(i.largest_sector(), 0x2_0000);
    // Codecs are tag 5, 5 bytes each: id and the RAM of its decoder.
    let mut coded = body.clone();
    coded.extend_from_slice(&[5, 10, 1, 0xDC, 0x16, 0, 0, 2, 0xDC, 0x16, 0, 0]);
    let Reply::Info(i) = Reply::parse(op, &coded).expect("codecs") else {
        panic!("not an Info");
    };
    assert_eq!(
        i.codecs.as_slice(),
        [
            fota_protocol::CodecDesc { id: 1, ram: 5852 },
            fota_protocol::CodecDesc { id: 2, ram: 5852 }
        ]
    );
    assert!(i.supports(fota_protocol::codec::LZMA_DELTA));
    assert!(
        !bare.supports(fota_protocol::codec::LZMA),
        "no tag 5: uncompressed only"
    );
    // The trial deadline is tag 7, a u32: 1.5 s is DC 05 00 00; it is encoded last.
    let mut deadline = sample_info();
    deadline.confirm_ms = Some(1500);
    let n = encode_reply(1, &Reply::Info(deadline.clone()), &mut out).expect("fits");
    let (_, _, with_deadline) = read_one(&out[..n]);
    assert_eq!(with_deadline[..body.len()], body[..]);
    assert_eq!(with_deadline[body.len()..], [7, 4, 0xDC, 0x05, 0, 0]);
    assert_eq!(
        Reply::parse(op, &with_deadline).expect("trial deadline"),
        Reply::Info(deadline)
    );
    assert_eq!(bare.confirm_ms, None, "no tag 7: not declared");
    let mut short = body.clone();
    short.extend_from_slice(&[7, 2, 0xDC, 0x05]);
    assert!(Reply::parse(op, &short).is_err(), "a deadline is 4 bytes");
    // The time left on trial is tag 9, a u32 after tag 7: 826 ms is 3A 03 00 00.
    let mut on_trial = sample_info();
    on_trial.confirm_ms = Some(1500);
    on_trial.trial_left_ms = Some(826);
    let n = encode_reply(1, &Reply::Info(on_trial.clone()), &mut out).expect("fits");
    let (_, _, with_left) = read_one(&out[..n]);
    assert_eq!(with_left[..body.len()], body[..]);
    assert_eq!(
        with_left[body.len()..],
        [7, 4, 0xDC, 0x05, 0, 0, 9, 4, 0x3A, 0x03, 0, 0]
    );
    assert_eq!(
        Reply::parse(op, &with_left).expect("time left on trial"),
        Reply::Info(on_trial)
    );
    assert_eq!(bare.trial_left_ms, None, "no tag 9: nothing on trial");
    // Its deadline passed and it still runs: 0.
    let mut passed = body.clone();
    passed.extend_from_slice(&[9, 4, 0, 0, 0, 0]);
    let Reply::Info(i) = Reply::parse(op, &passed).expect("deadline passed") else {
        panic!("not an Info");
    };
    assert_eq!(i.trial_left_ms, Some(0));
    let mut short = body.clone();
    short.extend_from_slice(&[9, 3, 0x3A, 0x03, 0]);
    assert!(Reply::parse(op, &short).is_err(), "a time left is 4 bytes");
    let mut odd = body.clone();
    odd.extend_from_slice(&[4, 8, 0, 0, 0, 0, 0, 0x40, 0, 0]);
    assert!(Reply::parse(op, &odd).is_err(), "a run is 12 bytes");
    // Wrong length of a known field, and a field cut short: malformed.
    let mut wrong = body[..fixed].to_vec();
    wrong.extend_from_slice(&[2, 2, 45, 0]);
    assert!(Reply::parse(op, &wrong).is_err());
    let mut cut = body[..fixed].to_vec();
    cut.extend_from_slice(&[0x40, 9, 1]);
    assert!(Reply::parse(op, &cut).is_err());
}

/// Every `Wire` cell of docs/PROTOCOL.md section 10 is one of the golden frames above, so
/// the page and the code cannot drift apart.
#[test]
fn the_protocol_page_shows_these_frames() {
    let doc = include_str!("../../../docs/PROTOCOL.md");
    let table = doc
        .split("\n## 10. Golden frames")
        .nth(1)
        .and_then(|s| s.split("\n## 11.").next())
        .expect("section 10");
    let hex = |b: &[u8]| {
        b.iter()
            .map(|x| format!("{x:02X}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut golden: Vec<String> = request_golden().iter().map(|g| hex(g.2)).collect();
    golden.extend(reply_golden().iter().map(|g| hex(g.2)));
    let mut rows = 0;
    for line in table
        .lines()
        .filter(|l| l.starts_with("| ") && l.contains("`00 "))
    {
        let wire = line
            .trim_end_matches(" |")
            .rsplit("| `")
            .next()
            .expect("a wire cell")
            .trim_end_matches('`');
        assert!(
            golden.contains(&wire.to_string()),
            "not a golden frame: {wire}"
        );
        rows += 1;
    }
    assert_eq!(rows, golden.len(), "one row per golden frame");
}

/// An `Attempt` body is 8 bytes (version 2) or 29 (version 3, with its check): any other
/// length, or a check naming no slot kind, is malformed.
#[test]
fn an_attempt_body_is_8_or_29_bytes() {
    let op = fota_protocol::Op::Attempt as u8;
    let mut body = vec![1, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        Request::parse(op, &body),
        Ok(Request::Attempt {
            bc_slot: 1,
            vm_slot: 0,
            check: None
        })
    );
    body.extend_from_slice(&[1, 0, 0x30, 0, 0]);
    body.extend_from_slice(&[0xAB; 16]);
    assert_eq!(body.len(), fota_protocol::ATTEMPT_CHECKED_LEN);
    let Ok(Request::Attempt {
        check: Some(check), ..
    }) = Request::parse(op, &body)
    else {
        panic!("a checked attempt");
    };
    assert_eq!(
        check,
        SlotCheck {
            kind: SlotKind::Bytecode,
            len: 0x3000,
            md5: [0xAB; 16]
        }
    );
    for cut in [9, 12, 28, 30] {
        let mut b = body.clone();
        b.resize(cut, 0);
        assert!(Request::parse(op, &b).is_err(), "{cut} bytes");
    }
    body[8] = 2;
    assert_eq!(Request::parse(op, &body), Err(DecodeError::BadValue));
}
