//! No input makes the protocol panic, and every message survives a round trip.

use fota_protocol::{
    AcceptOutcome, ErrorCode, Event, FrameReader, Info, MAX_BAUD_RATES, MAX_SECTOR_RUNS, MAX_SLOTS,
    Record, RecordState, RecordUpdate, Reply, Request, SectorRun, SlotDesc, SlotKind, encode_reply,
    encode_request, frame_len,
};
use proptest::prelude::*;

fn any_request(data: &'static [u8]) -> impl Strategy<Value = Request<'static>> {
    prop_oneof![
        any::<u16>().prop_map(|version| Request::Hello { version }),
        Just(Request::GetRecord),
        any::<[u32; 4]>().prop_map(|a| Request::SetRecord(RecordUpdate {
            vm_current: a[0],
            vm_last: a[1],
            bc_current: a[2],
            bc_last: a[3],
        })),
        Just(Request::FindBytecodeSlot),
        Just(Request::FindVmSlot),
        any::<(u32, u32)>().prop_map(|(addr, size)| Request::EraseSlot { addr, size }),
        (any::<u32>(), 0..=data.len()).prop_map(move |(addr, n)| Request::WriteSlot {
            addr,
            data: &data[..n]
        }),
        any::<(u32, u32)>().prop_map(|(addr, size)| Request::ChecksumSlot { addr, size }),
        Just(Request::Restart),
        Just(Request::Accept),
        any::<(u32, u32)>().prop_map(|(bc_slot, vm_slot)| Request::Attempt {
            bc_slot,
            vm_slot,
            check: None
        }),
        any::<u32>().prop_map(|baud| Request::SetBaud { baud }),
        Just(Request::Goodbye),
        (any::<(u32, u32)>(), 0..=20usize).prop_map(move |((addr, base), n)| {
            Request::StreamBegin {
                addr,
                base,
                header: &data[..n],
            }
        }),
        (any::<u32>(), 0..=data.len()).prop_map(move |(offset, n)| Request::StreamData {
            offset,
            data: &data[..n]
        }),
    ]
    // Parsed only by an agent with the decoder (the `codec` feature).
    .prop_filter("a stream request needs the codec feature", |r| {
        cfg!(feature = "codec")
            || !matches!(r, Request::StreamBegin { .. } | Request::StreamData { .. })
    })
}

fn any_reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        (any::<[u32; 9]>(), 0..3usize, any::<(u32, u32)>()).prop_map(|(a, s, (vm, bc))| {
            Reply::Record(Record {
                state: [
                    RecordState::Confirmed,
                    RecordState::Pending,
                    RecordState::Trial,
                ][s],
                running_vm: vm,
                running_bc: bc,
                ..Record::from_array(a)
            })
        }),
        any_info().prop_map(Reply::Info),
        Just(Reply::RecordSet),
        any::<u32>().prop_map(Reply::BytecodeSlot),
        any::<u32>().prop_map(Reply::VmSlot),
        any::<(u32, u32)>().prop_map(|(addr, size)| Reply::Erased { addr, size }),
        any::<(u32, u32)>().prop_map(|(addr, len)| Reply::Written { addr, len }),
        any::<[u8; 16]>().prop_map(Reply::Checksum),
        Just(Reply::Restarting),
        (0..4u8).prop_map(|o| Reply::Accepted(AcceptOutcome::from_u8(o).expect("0..4"))),
        Just(Reply::Attempted),
        any::<u32>().prop_map(Reply::BaudSet),
        any::<u32>().prop_map(Reply::Goodbye),
        any::<(u32, u32)>().prop_map(|(done, total)| Reply::Progress { done, total }),
        any::<u32>().prop_map(|image_len| Reply::StreamBegun { image_len }),
        any::<(u32, u32)>().prop_map(|(received, written)| Reply::Streamed { received, written }),
        (0..ErrorCode::ALL.len(), any::<u32>()).prop_map(|(i, detail)| Reply::Error {
            code: ErrorCode::ALL[i],
            detail
        }),
    ]
}

fn any_info() -> impl Strategy<Value = Info> {
    (
        any::<(u16, [u8; 3], bool, u32, u16, u16, u8, u32, u32, u32)>(),
        proptest::collection::vec(
            (any::<bool>(), any::<u8>(), any::<(u32, u32)>()),
            0..=MAX_SLOTS,
        ),
        "[a-z0-9-]{0,32}",
        proptest::option::of(any::<u8>()),
        proptest::option::of(any::<u32>()),
        proptest::collection::vec(any::<u32>(), 0..=MAX_BAUD_RATES),
        proptest::collection::vec(any::<(u32, u32, u32)>(), 0..=MAX_SECTOR_RUNS),
        proptest::collection::vec(any::<(u8, u32)>(), 0..=fota_protocol::MAX_CODECS),
        proptest::option::of((
            any::<(bool, bool, bool, u32, u32)>(),
            proptest::collection::vec(any::<[u8; 8]>(), 0..=fota_protocol::MAX_KEYS),
        )),
        proptest::option::of((any::<u32>(), proptest::option::of(any::<u32>()))),
        (
            proptest::option::of(any::<u32>()),
            proptest::collection::vec(any::<(u32, u32)>(), 0..=fota_protocol::MAX_BLOCK_ERASES),
        ),
    )
        .prop_map(
            |(
                f,
                slots,
                name,
                boot_stage,
                erase,
                bauds,
                runs,
                codecs,
                images,
                trial,
                (rx_window, blocks),
            )| {
                Info {
                    background_erase: false,
                    block_erases: blocks
                        .into_iter()
                        .map(|(size, ms)| fota_protocol::BlockErase { size, ms })
                        .collect(),
                    confirm_ms: trial.map(|t| t.0),
                    trial_left_ms: trial.and_then(|t| t.1),
                    rx_window,
                    // Encoded by an agent with image checks only (the `images` feature).
                    images: images
                        .filter(|_| cfg!(feature = "images"))
                        .map(|(g, keys)| fota_protocol::ImageRules {
                            require_signatures: g.0,
                            allow_raw: g.1,
                            allow_downgrade: g.2,
                            vm_minimum: g.3,
                            bc_minimum: g.4,
                            keys: keys.into_iter().collect(),
                        }),
                    protocol_version: f.0,
                    agent_version: f.1,
                    fota_supported: f.2,
                    sector_size: f.3,
                    write_granularity: f.4,
                    max_write: f.5,
                    max_in_flight: f.6,
                    max_baud: f.7,
                    record_addr: f.8,
                    record_size: f.9,
                    name: heapless::String::try_from(name.as_str()).expect("32 bytes at most"),
                    slots: slots
                        .into_iter()
                        .map(|(vm, index, (addr, size))| SlotDesc {
                            kind: if vm { SlotKind::Vm } else { SlotKind::Bytecode },
                            index,
                            addr,
                            size,
                        })
                        .collect(),
                    boot_stage,
                    sector_erase_ms: erase,
                    baud_rates: bauds.into_iter().collect(),
                    sectors: runs
                        .into_iter()
                        .map(|(addr, size, count)| SectorRun { addr, size, count })
                        .collect(),
                    // Encoded by an agent with the decoder only (the `codec` feature).
                    codecs: codecs
                        .into_iter()
                        .filter(|_| cfg!(feature = "codec"))
                        .map(|(id, ram)| fota_protocol::CodecDesc { id, ram })
                        .collect(),
                }
            },
        )
}

static DATA: [u8; 1024] = {
    let mut d = [0u8; 1024];
    let mut i = 0;
    while i < 1024 {
        d[i] = (i * 7 % 5) as u8;
        i += 1;
    }
    d
};

proptest! {
    #[test]
    fn every_request_round_trips(id: u16, req in any_request(&DATA)) {
        let mut out = vec![0u8; frame_len(1024 + 16)];
        let n = encode_request(id, &req, &mut out).expect("fits");
        prop_assert!(n <= out.len());
        let mut reader = FrameReader::<2048>::new();
        let (used, ev) = reader.feed(&out[..n]);
        prop_assert_eq!(used, n);
        match ev {
            Some(Event::Frame(f)) => {
                prop_assert_eq!(f.id, id);
                prop_assert_eq!(f.request().expect("parses"), req);
            }
            other => prop_assert!(false, "not a frame: {:?}", other),
        }
    }

    #[test]
    fn every_reply_round_trips(id: u16, reply in any_reply()) {
        // The largest Info (8 slots, a 32-byte name, every extension: codecs and image
        // rules too) included.
        let mut out = [0u8; 512];
        let n = encode_reply(id, &reply, &mut out).expect("fits");
        let mut reader = FrameReader::<512>::new();
        match reader.feed(&out[..n]).1 {
            Some(Event::Frame(f)) => {
                prop_assert_eq!(f.id, id);
                prop_assert_eq!(f.reply().expect("parses"), reply);
            }
            other => prop_assert!(false, "not a frame: {:?}", other),
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut reader = FrameReader::<128>::new();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let (used, ev) = reader.feed(rest);
            if let Some(Event::Frame(f)) = ev {
                let _ = f.request();
                let _ = f.reply();
            }
            prop_assert!(used <= rest.len());
            rest = &rest[used..];
        }
        let _ = reader.flush_text();
    }

    #[test]
    fn arbitrary_bodies_never_panic(op: u8, body in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Request::parse(op, &body);
        let _ = Reply::parse(op, &body);
    }

    #[test]
    fn a_too_small_buffer_is_refused_not_overrun(len in 0usize..40) {
        let mut out = vec![0u8; len];
        let r = encode_request(1, &Request::EraseSlot { addr: 1, size: 2 }, &mut out);
        // The frame is 18 bytes: anything shorter must be refused.
        prop_assert_eq!(r.is_some(), len >= 18);
    }
}

#[test]
fn frame_len_bounds_the_worst_case() {
    // All-nonzero data is the COBS worst case (one extra byte per 254).
    let data = [0xAAu8; 1024];
    let mut out = vec![0u8; frame_len(1024 + 4 + 7)];
    let n = encode_request(
        0xFFFF,
        &Request::WriteSlot {
            addr: 0x0101_0101,
            data: &data,
        },
        &mut out,
    );
    assert!(n.is_some());
}

#[test]
fn truncated_and_overlong_bodies_are_refused() {
    assert!(Request::parse(0x06, &[1, 2, 3, 4, 5, 6, 7]).is_err());
    assert!(Request::parse(0x06, &[0; 9]).is_err());
    assert!(Request::parse(0x02, &[0]).is_err());
    assert!(Request::parse(0x7F, &[]).is_err());
    assert!(
        Reply::parse(0xFF, &[200, 0, 0, 0, 0]).is_err(),
        "unknown error code"
    );
}

proptest! {
    /// Whatever the runs (even ones a reader would refuse), the sector look-up never
    /// panics, and for valid runs the sector it names holds the address.
    #[test]
    fn sector_at_holds_the_address(
        runs in proptest::collection::vec(any::<(u32, u32, u32)>(), 0..=MAX_SECTOR_RUNS),
        sector in any::<u32>(),
        addr: u32,
    ) {
        let runs: Vec<SectorRun> = runs
            .into_iter()
            .map(|(addr, size, count)| SectorRun { addr, size, count })
            .collect();
        let (start, size) = fota_protocol::sector_at(&runs, sector, addr);
        if fota_protocol::sector_runs_valid(&runs, sector) {
            prop_assert!(size > 0);
            prop_assert!(start <= addr);
            prop_assert!(u64::from(addr) < u64::from(start) + u64::from(size));
        }
    }
}

/// `AttemptDowngrade` (0x10) is answered with Attempt's reply code: 0x90 is no reply,
/// and every reply that parses encodes back to its own code.
#[test]
fn the_downgrade_attempt_has_no_reply_code_of_its_own() {
    assert_eq!(
        Reply::parse(0x90, &[]),
        Err(fota_protocol::DecodeError::UnknownOp(0x90))
    );
    assert_eq!(Reply::parse(0x8B, &[]), Ok(Reply::Attempted));
    assert_eq!(Reply::Attempted.op(), 0x8B);
    assert_eq!(fota_protocol::Op::AttemptDowngrade.reply(), 0x8B);
}
