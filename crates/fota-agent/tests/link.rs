//! The link end to end: request frames in (whole, split at every byte, pipelined), reply
//! frames out, decoded with the protocol crate's own reader.

mod common;

use common::*;
use fota_agent::{
    AgentLink, Handled, LinkAction, MAX_WRITE, NO_ID, RX_FRAME, RX_PAYLOAD, TX_FRAME,
};
use fota_protocol::{
    ErrorCode, Event, FrameReader, Info, MAX_NAME, MAX_PAYLOAD, MAX_SLOTS, PROTOCOL_VERSION, Reply,
    Request, SlotDesc, SlotKind, encode_reply, encode_request, frame_len,
};
use md5::{Digest, Md5};

type Link = AgentLink<Flash>;

fn link(config: &fota_agent::AgentConfig) -> Link {
    AgentLink::boot(blank(), config.clone()).unwrap().0
}

fn req(id: u16, r: &Request<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; frame_len(MAX_PAYLOAD)];
    let n = encode_request(id, r, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// A frame with any op and body (for requests `encode_request` cannot make).
fn raw_frame(id: u16, op: u8, body: &[u8]) -> Vec<u8> {
    raw_frame_crc_xor(id, op, body, 0)
}

/// Same, with the CRC XORed with `xor` (non-zero: damaged on the link).
fn raw_frame_crc_xor(id: u16, op: u8, body: &[u8], xor: u32) -> Vec<u8> {
    let mut payload = id.to_le_bytes().to_vec();
    payload.push(op);
    payload.extend_from_slice(body);
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(&payload) ^ xor;
    payload.extend_from_slice(&crc.to_le_bytes());
    let mut out = vec![0u8; cobs::max_encoding_length(payload.len()) + 2];
    let n = cobs::encode_including_sentinels(&payload, &mut out);
    out.truncate(n);
    out
}

/// Decode everything the agent sent.
fn decode(bytes: &[u8]) -> Vec<(u16, Reply)> {
    let mut reader = FrameReader::<512>::new();
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (n, ev) = reader.feed(rest);
        match ev {
            Some(Event::Frame(f)) => out.push((f.id, f.reply().expect("a reply"))),
            Some(other) => panic!("agent sent {other:?}"),
            None => {}
        }
        rest = &rest[n..];
    }
    out
}

/// Feed `bytes`, return the replies and the action.
fn exchange(link: &mut Link, bytes: &[u8]) -> (Vec<(u16, Reply)>, Option<LinkAction>) {
    let mut sent = Vec::new();
    let r = link.receive(bytes, &mut |f| sent.extend_from_slice(f));
    (decode(&sent), r.action)
}

/// One request, one final reply (progress frames dropped).
fn call(link: &mut Link, id: u16, r: &Request<'_>) -> Reply {
    let (replies, _) = exchange(link, &req(id, r));
    let last = replies.last().expect("a reply").clone();
    assert!(replies.iter().all(|(i, _)| *i == id), "ids: {replies:?}");
    last.1
}

fn error(code: ErrorCode, detail: u32) -> Reply {
    Reply::Error { code, detail }
}

#[test]
fn hello_answers_info() {
    let mut l = link(&vm_and_bc());
    match call(
        &mut l,
        1,
        &Request::Hello {
            version: PROTOCOL_VERSION,
        },
    ) {
        Reply::Info(i) => {
            assert_eq!(i, l.agent().info());
            assert_eq!(i.sector_size, SECTOR);
            assert_eq!(i.write_granularity, 4);
            assert_eq!(i.max_write as usize, MAX_WRITE);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn hello_with_another_version_is_a_mismatch() {
    let mut l = link(&vm_and_bc());
    assert_eq!(
        call(
            &mut l,
            1,
            &Request::Hello {
                version: PROTOCOL_VERSION + 1
            }
        ),
        error(ErrorCode::VersionMismatch, u32::from(PROTOCOL_VERSION))
    );
}

#[test]
fn the_whole_update_over_the_link() {
    for (name, config) in layouts() {
        let mut l = link(&config);
        let Reply::Record(rec) = call(&mut l, 1, &Request::GetRecord) else {
            panic!()
        };
        assert_eq!(rec.valid, 1);
        let Reply::BytecodeSlot(addr) = call(&mut l, 2, &Request::FindBytecodeSlot) else {
            panic!("{name}")
        };
        let img = image(11, 3 * MAX_WRITE + 100);
        let mut padded = img.clone();
        padded.resize(img.len().next_multiple_of(4), 0xFF);

        // Erase: 4 sectors, progress between them, all under the request's id.
        let (replies, _) = exchange(&mut l, &req(3, &Request::EraseSlot { addr, size: SLOT }));
        let progress: Vec<_> = replies
            .iter()
            .filter(|(_, r)| matches!(r, Reply::Progress { .. }))
            .collect();
        assert_eq!(progress.len(), 3, "{name}: {replies:?}");
        assert!(replies.iter().all(|(id, _)| *id == 3));
        assert_eq!(
            replies.last().unwrap().1,
            Reply::Erased { addr, size: SLOT }
        );

        // All writes pipelined in one go.
        let mut stream = Vec::new();
        for (i, block) in padded.chunks(MAX_WRITE).enumerate() {
            let at = addr + (i * MAX_WRITE) as u32;
            stream.extend(req(
                10 + i as u16,
                &Request::WriteSlot {
                    addr: at,
                    data: block,
                },
            ));
        }
        let (replies, _) = exchange(&mut l, &stream);
        assert_eq!(replies.len(), 4, "{name}");
        for (i, (id, r)) in replies.iter().enumerate() {
            assert_eq!(*id, 10 + i as u16);
            let len = padded.chunks(MAX_WRITE).nth(i).unwrap().len() as u32;
            assert_eq!(
                *r,
                Reply::Written {
                    addr: addr + (i * MAX_WRITE) as u32,
                    len
                }
            );
        }
        let want: [u8; 16] = Md5::digest(&img).into();
        assert_eq!(
            call(
                &mut l,
                20,
                &Request::ChecksumSlot {
                    addr,
                    size: img.len() as u32
                }
            ),
            Reply::Checksum(want),
            "{name}"
        );
        assert_eq!(
            call(
                &mut l,
                21,
                &Request::Attempt {
                    bc_slot: 1,
                    vm_slot: 0,
                    check: None,
                }
            ),
            Reply::Attempted
        );
        let (replies, action) = exchange(&mut l, &req(22, &Request::Restart));
        assert_eq!(replies, [(22, Reply::Restarting)]);
        assert_eq!(action, Some(LinkAction::Restart));

        // The platform resets: boot again on the same flash.
        let (mut l, boot) = AgentLink::boot(l.into_flash(), config.clone()).unwrap();
        assert!(boot.trial);
        assert_eq!(boot.bc_addr, addr);
        assert_eq!(
            call(&mut l, 1, &Request::Accept),
            Reply::Accepted(fota_protocol::AcceptOutcome::Accepted)
        );
        let Reply::Record(rec) = call(&mut l, 2, &Request::GetRecord) else {
            panic!()
        };
        assert_eq!(
            (rec.bc_current, rec.bc_last, rec.bc_addr),
            (1, 1, addr),
            "{name}"
        );
    }
}

/// A mixed stream: frames of every size, text, a damaged frame.
fn mixed_stream(config: &fota_agent::AgentConfig) -> Vec<u8> {
    let bc1 = slot_addr(config, SlotKind::Bytecode, 1);
    let block = image(3, MAX_WRITE);
    let mut s = Vec::new();
    s.extend(req(
        1,
        &Request::Hello {
            version: PROTOCOL_VERSION,
        },
    ));
    s.extend_from_slice(b"log line from the host side\r\n");
    s.extend(req(
        2,
        &Request::EraseSlot {
            addr: bc1,
            size: 2 * SECTOR,
        },
    ));
    s.extend(req(
        3,
        &Request::WriteSlot {
            addr: bc1,
            data: &block,
        },
    ));
    let mut bad = req(4, &Request::GetRecord);
    let k = bad.len() / 2;
    bad[k] ^= 0x40;
    s.extend(bad);
    s.extend(req(
        5,
        &Request::ChecksumSlot {
            addr: bc1,
            size: MAX_WRITE as u32,
        },
    ));
    s.extend(req(6, &Request::GetRecord));
    s
}

#[test]
fn splitting_the_input_at_every_byte_gives_the_same_replies() {
    let config = bc_only();
    let stream = mixed_stream(&config);
    let mut whole = link(&config);
    let (want, _) = exchange(&mut whole, &stream);
    let ids: Vec<u16> = want.iter().map(|(i, _)| *i).collect();
    assert_eq!(ids, [1, 2, 2, 3, NO_ID, 5, 6], "{want:?}");
    assert_eq!(want[4].1, error(ErrorCode::BadFrame, 3));
    for k in 0..=stream.len() {
        let mut l = link(&config);
        let mut sent = Vec::new();
        let a = l.receive(&stream[..k], &mut |f| sent.extend_from_slice(f));
        let b = l.receive(&stream[k..], &mut |f| sent.extend_from_slice(f));
        assert_eq!(a.consumed + b.consumed, stream.len());
        assert_eq!(decode(&sent), want, "split at {k}");
        assert!(
            l.into_flash() == whole.agent().flash().clone(),
            "split at {k}"
        );
    }
}

#[test]
fn byte_by_byte_steps_report_what_they_consumed() {
    let config = bc_only();
    let stream = mixed_stream(&config);
    let mut l = link(&config);
    let mut sent = Vec::new();
    let mut requests = 0;
    for (i, b) in stream.iter().enumerate() {
        let mut step = l.step(std::slice::from_ref(b), &mut |f| sent.extend_from_slice(f));
        // A long request runs one unit per step, taking no input meanwhile.
        let mut units = 0;
        while step.consumed == 0 {
            assert!(
                matches!(
                    step.handled,
                    Handled::Working { .. } | Handled::Request { .. }
                ),
                "byte {i}: nothing consumed and nothing done"
            );
            if let Handled::Request { .. } = step.handled {
                requests += 1;
            }
            step = l.step(std::slice::from_ref(b), &mut |f| sent.extend_from_slice(f));
            units += 1;
            assert!(units < 100, "byte {i}");
        }
        assert_eq!(step.consumed, 1, "byte {i}");
        if let Handled::Request { .. } = step.handled {
            requests += 1;
        }
    }
    while l.is_busy() {
        if let Handled::Request { .. } = l.step(&[], &mut |f| sent.extend_from_slice(f)).handled {
            requests += 1;
        }
    }
    assert_eq!(requests, 5);
    let stats = l.stats();
    assert_eq!(
        (stats.requests, stats.bad_frames, stats.text_chunks),
        (5, 1, 1)
    );
    assert_eq!(decode(&sent).len(), 7);
    assert_eq!(stats.frames_sent, 7);
    assert_eq!(stats.progress_sent, 1);
}

#[test]
fn step_stops_after_each_frame() {
    let config = bc_only();
    let a = req(1, &Request::GetRecord);
    let b = req(2, &Request::FindBytecodeSlot);
    let stream = [a.clone(), b.clone()].concat();
    let mut l = link(&config);
    let mut sent = Vec::new();
    let s1 = l.step(&stream, &mut |f| sent.extend_from_slice(f));
    assert_eq!(s1.consumed, a.len());
    assert!(matches!(
        s1.handled,
        Handled::Request {
            id: 1,
            op: 0x02,
            refused: None
        }
    ));
    assert_eq!(decode(&sent).len(), 1, "one reply after one frame");
    let s2 = l.step(&stream[s1.consumed..], &mut |f| sent.extend_from_slice(f));
    assert_eq!(s1.consumed + s2.consumed, stream.len());
    assert!(matches!(s2.handled, Handled::Request { id: 2, .. }));
    // Half a frame: nothing yet, everything consumed, held in the reader.
    let s3 = l.step(&a[..5], &mut |_| panic!("no reply yet"));
    assert_eq!((s3.consumed, s3.handled), (5, Handled::Nothing));
    assert_eq!(l.pending(), 4);
}

#[test]
fn damaged_frames_get_bad_frame_under_no_id() {
    let mut l = link(&bc_only());
    let f = raw_frame_crc_xor(9, 0x02, &[], 0x0100);
    assert_eq!(
        exchange(&mut l, &f).0,
        [(NO_ID, error(ErrorCode::BadFrame, 3))]
    );
    // Too short for id + op + CRC.
    let short = raw_frame(1, 2, &[]);
    let cut = [&short[..short.len() - 3], &[0u8][..]].concat();
    let (replies, _) = exchange(&mut l, &cut);
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].0, NO_ID);
    assert!(matches!(
        replies[0].1,
        Reply::Error {
            code: ErrorCode::BadFrame,
            ..
        }
    ));
    // Bad COBS: a code byte pointing past the end.
    let (replies, _) = exchange(&mut l, &[0, 0x05, 0x01, 0x02, 0]);
    assert_eq!(replies, [(NO_ID, error(ErrorCode::BadFrame, 1))]);
}

#[test]
fn oversized_frames_are_refused() {
    let config = vm_and_bc();
    let mut l = link(&config);
    let vm1 = slot_addr(&config, SlotKind::Vm, 1);
    let huge = image(1, MAX_WRITE + 2000);
    let (replies, _) = exchange(
        &mut l,
        &req(
            5,
            &Request::WriteSlot {
                addr: vm1,
                data: &huge[..2000],
            },
        ),
    );
    assert_eq!(
        replies,
        [(NO_ID, error(ErrorCode::FrameTooLong, RX_PAYLOAD as u32))]
    );
    // Just over MAX_WRITE: the same answer whatever the bytes, though zeros make a frame
    // that fits the buffer (COBS) and 0x55s one that does not.
    for n in MAX_WRITE + 1..=MAX_WRITE + 8 {
        for fill in [0x00u8, 0x55] {
            let data = vec![fill; n];
            let f = req(
                6,
                &Request::WriteSlot {
                    addr: vm1,
                    data: &data,
                },
            );
            assert_eq!(
                exchange(&mut l, &f).0,
                [(NO_ID, error(ErrorCode::FrameTooLong, RX_PAYLOAD as u32))],
                "{n} bytes of {fill:#04x} ({} on the wire)",
                f.len()
            );
        }
    }
    // The largest write the agent takes fits whatever its bytes.
    for (k, fill) in [0x00u8, 0x55].into_iter().enumerate() {
        let f = req(
            7,
            &Request::WriteSlot {
                addr: vm1 + 4096 * k as u32,
                data: &[fill; MAX_WRITE],
            },
        );
        assert!(f.len() <= RX_FRAME);
        assert!(matches!(
            exchange(&mut l, &f).0[..],
            [(7, Reply::Written { .. })]
        ));
    }
    // The reader recovered: the next frame works.
    assert!(matches!(
        call(&mut l, 7, &Request::GetRecord),
        Reply::Record(_)
    ));
}

#[test]
fn text_from_the_host_is_ignored() {
    let mut l = link(&bc_only());
    let (replies, _) = exchange(&mut l, b"\x00hello agent\r\n\x00");
    assert!(replies.is_empty());
    assert_eq!(l.stats().text_chunks, 1);
}

#[test]
fn unknown_ops_and_malformed_bodies() {
    let mut l = link(&bc_only());
    let f = raw_frame(3, 0x42, &[]);
    assert_eq!(
        exchange(&mut l, &f).0,
        [(3, error(ErrorCode::UnknownCommand, 0x42))]
    );
    // A reply code sent as a request.
    let f = raw_frame(4, 0x82, &[]);
    assert_eq!(
        exchange(&mut l, &f).0,
        [(4, error(ErrorCode::UnknownCommand, 0x82))]
    );
    // GetRecord with a trailing byte; EraseSlot with half its body.
    let f = raw_frame(5, 0x02, &[1]);
    assert_eq!(
        exchange(&mut l, &f).0,
        [(5, error(ErrorCode::BadRequest, 0x02))]
    );
    let f = raw_frame(6, 0x06, &[0, 0, 0]);
    assert_eq!(
        exchange(&mut l, &f).0,
        [(6, error(ErrorCode::BadRequest, 0x06))]
    );
    assert_eq!(l.stats().refused, 4);
}

#[test]
fn refusals_travel_as_error_replies() {
    let config = bc_only();
    let mut l = link(&config);
    let bc0 = slot_addr(&config, SlotKind::Bytecode, 0);
    let before = l.agent().flash().clone();
    assert_eq!(
        call(
            &mut l,
            8,
            &Request::EraseSlot {
                addr: bc0,
                size: SECTOR
            }
        ),
        error(ErrorCode::SlotInUse, bc0)
    );
    assert_eq!(
        call(
            &mut l,
            9,
            &Request::Attempt {
                bc_slot: 4,
                vm_slot: 0,
                check: None,
            }
        ),
        error(ErrorCode::BadSlotIndex, 4)
    );
    assert!(*l.agent().flash() == before);
}

#[test]
fn set_baud() {
    let mut config = bc_only();
    config.max_baud = 921_600;
    let mut l = link(&config);
    let (replies, action) = exchange(&mut l, &req(1, &Request::SetBaud { baud: 460_800 }));
    assert_eq!(replies, [(1, Reply::BaudSet(460_800))]);
    assert_eq!(action, Some(LinkAction::SetBaud(460_800)));
    for baud in [1_000_000, 2_000_000, 9600, 0, 115_201] {
        let (replies, action) = exchange(&mut l, &req(2, &Request::SetBaud { baud }));
        assert_eq!(replies, [(2, error(ErrorCode::BadBaud, 921_600))], "{baud}");
        assert_eq!(action, None);
    }
}

#[test]
fn an_action_stops_receive_and_leaves_the_rest() {
    let mut l = link(&bc_only());
    let a = req(1, &Request::Restart);
    let stream = [a.clone(), req(2, &Request::GetRecord)].concat();
    let mut sent = Vec::new();
    let r = l.receive(&stream, &mut |f| sent.extend_from_slice(f));
    assert_eq!(r.action, Some(LinkAction::Restart));
    assert_eq!(r.consumed, a.len());
    assert_eq!(decode(&sent), [(1, Reply::Restarting)]);
}

#[test]
fn unsupported_firmware_answers_hello_only() {
    let config = bc_only().unsupported();
    let mut l = link(&config);
    let Reply::Info(info) = call(
        &mut l,
        1,
        &Request::Hello {
            version: PROTOCOL_VERSION,
        },
    ) else {
        panic!()
    };
    assert!(!info.fota_supported);
    for r in [
        Request::GetRecord,
        Request::FindBytecodeSlot,
        Request::FindVmSlot,
        Request::Restart,
        Request::Accept,
        Request::SetBaud { baud: 115_200 },
        Request::Attempt {
            bc_slot: 0,
            vm_slot: 0,
            check: None,
        },
    ] {
        let (replies, action) = exchange(&mut l, &req(2, &r));
        assert_eq!(replies, [(2, error(ErrorCode::Unsupported, 0))], "{r:?}");
        assert_eq!(action, None);
    }
    assert!(*l.agent().flash() == blank());
}

#[test]
fn the_largest_reply_fits_the_tx_buffer() {
    let slot = SlotDesc {
        kind: SlotKind::Bytecode,
        index: 255,
        addr: u32::MAX,
        size: u32::MAX,
    };
    let info = Info {
        background_erase: false,
        protocol_version: u16::MAX,
        agent_version: [255; 3],
        name: heapless::String::try_from("x".repeat(MAX_NAME).as_str()).unwrap(),
        fota_supported: true,
        sector_size: u32::MAX,
        write_granularity: u16::MAX,
        max_write: u16::MAX,
        max_in_flight: 255,
        max_baud: u32::MAX,
        record_addr: u32::MAX,
        record_size: u32::MAX,
        slots: std::iter::repeat_n(slot, MAX_SLOTS).collect(),
        boot_stage: Some(255),
        sector_erase_ms: Some(u32::MAX),
        baud_rates: std::iter::repeat_n(u32::MAX, fota_protocol::MAX_BAUD_RATES).collect(),
        sectors: std::iter::repeat_n(
            fota_protocol::SectorRun {
                addr: u32::MAX,
                size: u32::MAX,
                count: u32::MAX,
            },
            fota_protocol::MAX_SECTOR_RUNS,
        )
        .collect(),
        // Only an agent with the decoder lists codecs.
        codecs: std::iter::repeat_n(
            fota_protocol::CodecDesc {
                id: u8::MAX,
                ram: u32::MAX,
            },
            if cfg!(feature = "codec") {
                fota_protocol::MAX_CODECS
            } else {
                0
            },
        )
        .collect(),
        images: Some(fota_protocol::ImageRules {
            require_signatures: true,
            allow_raw: true,
            allow_downgrade: true,
            vm_minimum: u32::MAX,
            bc_minimum: u32::MAX,
            keys: std::iter::repeat_n([0xFF; 8], fota_protocol::MAX_KEYS).collect(),
        }),
        confirm_ms: Some(u32::MAX),
        rx_window: Some(u32::MAX),
        trial_left_ms: Some(u32::MAX),
        block_erases: std::iter::repeat_n(
            fota_protocol::BlockErase {
                size: u32::MAX,
                ms: u32::MAX,
            },
            fota_protocol::MAX_BLOCK_ERASES,
        )
        .collect(),
    };
    let mut buf = [0u8; TX_FRAME];
    assert!(encode_reply(u16::MAX, &Reply::Info(info), &mut buf).is_some());
}

#[test]
fn the_link_fits_the_ram_budget() {
    // The flash driver here is a reference: what remains is the link's own state.
    let size = std::mem::size_of::<AgentLink<&mut Flash>>();
    let state = std::mem::size_of::<fota_agent::LinkState>();
    let borrowed = std::mem::size_of::<AgentLink<&mut Flash, &mut fota_agent::LinkState>>();
    println!(
        "AgentLink {size} bytes: LinkState {state} (RX_FRAME {RX_FRAME}, TX_FRAME {TX_FRAME}), \
         the rest {borrowed} with the state borrowed"
    );
    // The decoder of compressed streams, when the `codec` feature builds it in; with the
    // `images` feature the long request may be an image check (a SHA-256 state and the
    // verifier's place: 216 bytes more), and the agent keeps the range of the last
    // checksum from a slot's first byte (how far `attempt` reads a raw image: 20 more),
    // and its MD5 (what an `Attempt`'s check compares, protocol 3: 16 more), whether
    // that range holds a trailer's magic (`attempt` then reads none of a raw image) and,
    // for a checksum of the running slot with the `codec` feature, its CRC-32 (a delta's
    // base check at `StreamBegin`): 8 more.
    // The schedule of background erases and its driver: 40 more here (32 on thumbv7em).
    let codec = std::mem::size_of::<fota_agent::StreamState>();
    assert!(
        size <= 2796 + codec,
        "{size} bytes, {} without the decoder",
        size - codec
    );
    // With its state in a static, the link itself is the agent and a pointer (the
    // `Attempt` check's MD5 and range, and the background erases' schedule, included;
    // the checked range's magic flag and base CRC-32: 8 more).
    assert!(borrowed <= 816, "{borrowed} bytes");
    // The numbers the crate documentation gives.
    let tx = if cfg!(feature = "codec") { 346 } else { 324 };
    assert_eq!((RX_FRAME, TX_FRAME), (1042, tx));
    assert!(
        size - codec + 3 * RX_FRAME <= 8 * 1024,
        "with a 3-frame receive queue"
    );
}

/// A long request runs in bounded steps: one sector erased, or CHECKSUM_UNIT bytes hashed,
/// per step; progress frames between, the final reply after the last unit; the next
/// request waits.
#[test]
fn long_requests_run_one_bounded_unit_per_step() {
    static UNITS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let config = bc_only();
    let mut l = link(&config);
    l.set_unit_hook(|| {
        UNITS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    });
    let bc1 = slot_addr(&config, SlotKind::Bytecode, 1);
    let stream = [
        req(
            1,
            &Request::EraseSlot {
                addr: bc1,
                size: 3 * SECTOR,
            },
        ),
        req(2, &Request::GetRecord),
    ]
    .concat();
    let mut sent = Vec::new();
    let first = l.step(&stream, &mut |f| sent.extend_from_slice(f));
    assert_eq!(first.handled, Handled::Started { id: 1, op: 0x06 });
    assert!(l.is_busy() && sent.is_empty());
    assert_eq!(l.agent().flash().erases, 0, "nothing erased when it starts");
    let rest = &stream[first.consumed..];
    for k in 1..=3u32 {
        let step = l.step(rest, &mut |f| sent.extend_from_slice(f));
        assert_eq!(step.consumed, 0, "the next request waits");
        assert_eq!(l.agent().flash().erases, k as usize, "one sector a step");
        if k < 3 {
            assert_eq!(
                step.handled,
                Handled::Working {
                    id: 1,
                    done: k * SECTOR,
                    total: 3 * SECTOR
                }
            );
        } else {
            assert_eq!(
                step.handled,
                Handled::Request {
                    id: 1,
                    op: 0x06,
                    refused: None
                }
            );
        }
    }
    assert!(!l.is_busy());
    assert_eq!(UNITS.load(std::sync::atomic::Ordering::Relaxed), 3);
    let step = l.step(rest, &mut |f| sent.extend_from_slice(f));
    assert!(matches!(step.handled, Handled::Request { id: 2, .. }));
    let replies = decode(&sent);
    assert_eq!(
        replies[..3],
        [
            (
                1,
                Reply::Progress {
                    done: SECTOR,
                    total: 3 * SECTOR
                }
            ),
            (
                1,
                Reply::Progress {
                    done: 2 * SECTOR,
                    total: 3 * SECTOR
                }
            ),
            (
                1,
                Reply::Erased {
                    addr: bc1,
                    size: 3 * SECTOR
                }
            ),
        ]
    );
    assert!(matches!(replies[3], (2, Reply::Record(_))));

    // A checksum of a whole slot: one step per CHECKSUM_UNIT bytes.
    let mut sent = Vec::new();
    let bytes = req(
        3,
        &Request::ChecksumSlot {
            addr: bc1,
            size: SLOT,
        },
    );
    let s = l.step(&bytes, &mut |f| sent.extend_from_slice(f));
    assert!(matches!(s.handled, Handled::Started { id: 3, .. }));
    let mut steps = 0;
    while l.is_busy() {
        l.step(&[], &mut |f| sent.extend_from_slice(f));
        steps += 1;
    }
    assert_eq!(steps, SLOT / fota_agent::CHECKSUM_UNIT);
    let want: [u8; 16] = Md5::digest(vec![0xFFu8; SLOT as usize]).into();
    assert_eq!(decode(&sent).last(), Some(&(3, Reply::Checksum(want))));
}
