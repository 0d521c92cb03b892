//! Protocol 3's `Attempt` check over the link: the record is written only when the
//! `ChecksumSlot` just before hashed exactly the range the check names and found its MD5;
//! a wrong MD5, or none at all, leaves the record as it was. And the `Hello` versions the
//! agent answers, and the `ChecksumSlot` of the running slot a host asks behind `Hello`.

mod common;

use common::*;
use fota_agent::AgentLink;
use fota_protocol::{
    ErrorCode, Event, FrameReader, MAX_PAYLOAD, OLDEST_VERSION, PROTOCOL_VERSION, Record,
    RecordState, Reply, Request, SlotCheck, SlotKind, encode_request, frame_len,
};
use md5::{Digest, Md5};

type Link = AgentLink<Flash>;

fn req(id: u16, r: &Request<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; frame_len(MAX_PAYLOAD)];
    let n = encode_request(id, r, &mut buf).expect("encodes");
    buf.truncate(n);
    buf
}

/// Feed `bytes` (any number of requests); the final replies, progress dropped.
fn exchange(link: &mut Link, bytes: &[u8]) -> Vec<(u16, Reply)> {
    let mut sent = Vec::new();
    link.receive(bytes, &mut |f| sent.extend_from_slice(f));
    let mut reader = FrameReader::<512>::new();
    let mut out = Vec::new();
    let mut rest = &sent[..];
    while !rest.is_empty() {
        let (n, ev) = reader.feed(rest);
        if let Some(Event::Frame(f)) = ev {
            let reply = f.reply().expect("a reply");
            if !matches!(reply, Reply::Progress { .. }) {
                out.push((f.id, reply));
            }
        }
        rest = &rest[n..];
    }
    out
}

fn call(link: &mut Link, id: u16, r: &Request<'_>) -> Reply {
    let replies = exchange(link, &req(id, r));
    assert_eq!(replies.len(), 1, "{replies:?}");
    replies[0].1.clone()
}

fn record(link: &mut Link) -> Record {
    match call(link, 900, &Request::GetRecord) {
        Reply::Record(r) => r,
        other => panic!("{other:?}"),
    }
}

fn attempt(check: SlotCheck) -> Request<'static> {
    Request::Attempt {
        bc_slot: 1,
        vm_slot: 0,
        check: Some(check),
    }
}

fn mismatch(detail: u32) -> Reply {
    Reply::Error {
        code: ErrorCode::ChecksumMismatch,
        detail,
    }
}

/// A link whose bytecode slot 1 holds `img` (erased, written), nothing attempted.
fn written(config: &fota_agent::AgentConfig, img: &[u8]) -> (Link, u32) {
    let mut l = AgentLink::boot(blank(), config.clone()).expect("boot").0;
    let addr = slot_addr(config, SlotKind::Bytecode, 1);
    assert_eq!(
        call(&mut l, 1, &Request::EraseSlot { addr, size: SLOT }),
        Reply::Erased { addr, size: SLOT }
    );
    for (i, block) in img.chunks(1024).enumerate() {
        let at = addr + (i * 1024) as u32;
        let r = call(
            &mut l,
            2 + i as u16,
            &Request::WriteSlot {
                addr: at,
                data: block,
            },
        );
        assert!(matches!(r, Reply::Written { .. }), "{r:?}");
    }
    (l, addr)
}

#[test]
fn hello_of_version_2_and_3_is_answered_others_are_not() {
    let mut l = AgentLink::boot(blank(), bc_only()).expect("boot").0;
    for version in OLDEST_VERSION..=PROTOCOL_VERSION {
        match call(&mut l, 1, &Request::Hello { version }) {
            Reply::Info(i) => assert_eq!(i.protocol_version, PROTOCOL_VERSION),
            other => panic!("version {version}: {other:?}"),
        }
    }
    for version in [0, 1, PROTOCOL_VERSION + 1, u16::MAX] {
        assert_eq!(
            call(&mut l, 2, &Request::Hello { version }),
            Reply::Error {
                code: ErrorCode::VersionMismatch,
                detail: u32::from(PROTOCOL_VERSION)
            },
            "version {version}"
        );
    }
}

#[test]
fn an_attempt_whose_md5_is_right_switches_after_the_checksum() {
    for (name, config) in layouts() {
        let img = image(7, 2 * 1024 + 300);
        let md5: [u8; 16] = Md5::digest(&img).into();
        let check = SlotCheck {
            kind: SlotKind::Bytecode,
            len: img.len() as u32,
            md5,
        };
        let (mut l, addr) = written(&config, &img);
        // The checksum and the attempt in one go, as the host pipelines them.
        let mut both = req(
            20,
            &Request::ChecksumSlot {
                addr,
                size: img.len() as u32,
            },
        );
        both.extend(req(21, &attempt(check)));
        assert_eq!(
            exchange(&mut l, &both),
            [(20, Reply::Checksum(md5)), (21, Reply::Attempted)],
            "{name}"
        );
        let r = record(&mut l);
        assert_eq!((r.bc_current, r.state), (1, RecordState::Pending), "{name}");
        // A copy sent again (its answer lost) is answered from the cache.
        assert_eq!(call(&mut l, 22, &attempt(check)), Reply::Attempted);
    }
}

#[test]
fn an_attempt_whose_md5_is_wrong_writes_nothing() {
    for (name, config) in layouts() {
        let img = image(9, 3 * 1024);
        let md5: [u8; 16] = Md5::digest(&img).into();
        // The slot holds the image but for one byte: the stream lost a frame, say.
        let mut torn = img.clone();
        torn[1500] ^= 0x40;
        let (mut l, addr) = written(&config, &torn);
        let before = record(&mut l);
        let size = img.len() as u32;
        let right = SlotCheck {
            kind: SlotKind::Bytecode,
            len: size,
            md5,
        };
        let mut both = req(20, &Request::ChecksumSlot { addr, size });
        both.extend(req(21, &attempt(right)));
        let replies = exchange(&mut l, &both);
        assert_ne!(replies[0].1, Reply::Checksum(md5), "{name}");
        assert_eq!(replies[1], (21, mismatch(1)), "{name}: another MD5");
        assert_eq!(record(&mut l), before, "{name}: nothing written");
    }
}

#[test]
fn an_attempt_without_a_fresh_checksum_of_that_range_writes_nothing() {
    let config = bc_only();
    let img = image(3, 2 * 1024);
    let md5: [u8; 16] = Md5::digest(&img).into();
    let size = img.len() as u32;
    let (mut l, addr) = written(&config, &img);
    let before = record(&mut l);
    let right = SlotCheck {
        kind: SlotKind::Bytecode,
        len: size,
        md5,
    };
    // No checksum at all.
    assert_eq!(call(&mut l, 30, &attempt(right)), mismatch(0));
    // A checksum of another length, or not from the slot's first byte.
    call(&mut l, 31, &Request::ChecksumSlot { addr, size: 1024 });
    assert_eq!(call(&mut l, 32, &attempt(right)), mismatch(0));
    call(
        &mut l,
        33,
        &Request::ChecksumSlot {
            addr: addr + 1024,
            size: 1024,
        },
    );
    assert_eq!(call(&mut l, 34, &attempt(right)), mismatch(0));
    // The right checksum, then the slot programmed after it: stale.
    assert_eq!(
        call(&mut l, 35, &Request::ChecksumSlot { addr, size }),
        Reply::Checksum(md5)
    );
    let r = call(
        &mut l,
        36,
        &Request::WriteSlot {
            addr: addr + 3 * 1024,
            data: &[1, 2, 3, 4],
        },
    );
    assert!(matches!(r, Reply::Written { .. }), "{r:?}");
    assert_eq!(call(&mut l, 37, &attempt(right)), mismatch(0));
    // A check of the VM slot the attempt names (VM 0, running): its own range.
    let vm = SlotCheck {
        kind: SlotKind::Vm,
        ..right
    };
    assert_eq!(call(&mut l, 38, &Request::ChecksumSlot { addr, size }), {
        Reply::Checksum(md5)
    });
    assert_eq!(call(&mut l, 39, &attempt(vm)), mismatch(0));
    // A slot index that does not exist: the same refusal as without a check.
    assert_eq!(
        call(
            &mut l,
            40,
            &Request::Attempt {
                bc_slot: 7,
                vm_slot: 0,
                check: Some(right)
            }
        ),
        Reply::Error {
            code: ErrorCode::BadSlotIndex,
            detail: 7
        }
    );
    assert_eq!(record(&mut l), before, "nothing written");
    // Checked again now: the attempt goes through.
    assert_eq!(
        call(&mut l, 41, &Request::ChecksumSlot { addr, size }),
        Reply::Checksum(md5)
    );
    assert_eq!(call(&mut l, 42, &attempt(right)), Reply::Attempted);
    assert_eq!(record(&mut l).bc_current, 1);
}

/// Protocol 3: `ChecksumSlot` of `RUNNING_BYTECODE` (or `RUNNING_VM`) hashes the slot of
/// that kind this boot runs, as its own address does.
#[test]
fn a_checksum_of_the_running_slot() {
    for (name, config) in layouts() {
        let mut l = AgentLink::boot(blank(), config.clone()).expect("boot").0;
        let r = record(&mut l);
        for (kind, running, sentinel) in [
            (
                SlotKind::Bytecode,
                r.running_bc,
                fota_protocol::RUNNING_BYTECODE,
            ),
            (SlotKind::Vm, r.running_vm, fota_protocol::RUNNING_VM),
        ] {
            let addr = slot_addr(&config, kind, running);
            let by_addr = call(&mut l, 1, &Request::ChecksumSlot { addr, size: 3000 });
            assert!(matches!(by_addr, Reply::Checksum(_)), "{name}: {by_addr:?}");
            let by_running = call(
                &mut l,
                2,
                &Request::ChecksumSlot {
                    addr: sentinel,
                    size: 3000,
                },
            );
            assert_eq!(by_running, by_addr, "{name} {kind:?}");
            // Past the slot's end: refused as for its address.
            assert_eq!(
                call(
                    &mut l,
                    3,
                    &Request::ChecksumSlot {
                        addr: sentinel,
                        size: SLOT + 1
                    }
                ),
                Reply::Error {
                    code: ErrorCode::BadLength,
                    detail: SLOT + 1
                },
                "{name} {kind:?}"
            );
        }
    }
}
