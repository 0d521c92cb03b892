//! Compressed and delta streams through the link (`StreamBegin`, `StreamData`): the slot
//! holds the image, each step does a bounded amount of flash work, and bad streams are
//! refused without a write outside the slot.
#![cfg(feature = "codec")]

mod common;

use common::*;
use fota_agent::{AgentLink, Handled, MAX_WRITE, STREAM_STEP};
use fota_codec::encode::{self, DEFAULT_OPTIONS};
use fota_protocol::{
    ErrorCode, Event, FrameReader, MAX_PAYLOAD, NO_BASE, Reply, Request, SlotKind, codec,
    encode_request, frame_len,
};

type Link = AgentLink<Flash>;

fn req(id: u16, r: &Request<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; frame_len(MAX_PAYLOAD)];
    let n = encode_request(id, r, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// Feed one request step by step; return its final reply, the steps it took and the most
/// bytes of flash one step changed.
fn call(l: &mut Link, id: u16, r: &Request<'_>) -> (Reply, usize, usize) {
    let bytes = req(id, r);
    let mut sent = Vec::new();
    let mut rest = &bytes[..];
    let (mut steps, mut worst) = (0, 0);
    loop {
        let before = l.agent().flash().data.clone();
        let step = l.step(rest, &mut |f| sent.extend_from_slice(f));
        let changed = before
            .iter()
            .zip(&l.agent().flash().data)
            .filter(|(a, b)| a != b)
            .count();
        worst = worst.max(changed);
        steps += 1;
        rest = &rest[step.consumed..];
        if matches!(step.handled, Handled::Request { .. }) {
            break;
        }
        assert!(
            !(rest.is_empty() && step.handled == Handled::Nothing),
            "no reply: {:?}",
            step.handled
        );
        assert!(steps < 100_000, "no end");
    }
    let mut reader = FrameReader::<512>::new();
    let mut replies = Vec::new();
    let mut s = &sent[..];
    while !s.is_empty() {
        let (n, ev) = reader.feed(s);
        if let Some(Event::Frame(f)) = ev {
            replies.push((f.id, f.reply().unwrap()));
        }
        s = &s[n..];
    }
    let (rid, reply) = replies.pop().expect("a reply");
    assert_eq!(rid, id);
    (reply, steps, worst)
}

/// Sends a whole stream (header, data in `MAX_WRITE` frames, end); returns the final
/// reply and the most flash bytes one step changed.
fn send_stream(l: &mut Link, target: u32, base: u32, stream: &[u8]) -> (Reply, usize) {
    let (header, body) = stream.split_at(20);
    let (r, _, mut worst) = call(
        l,
        1,
        &Request::StreamBegin {
            addr: target,
            base,
            header,
        },
    );
    if !matches!(r, Reply::StreamBegun { .. }) {
        return (r, worst);
    }
    let mut offset = 0;
    for (i, chunk) in body.chunks(MAX_WRITE).enumerate() {
        let (r, _, w) = call(
            l,
            2 + i as u16,
            &Request::StreamData {
                offset,
                data: chunk,
            },
        );
        worst = worst.max(w);
        offset += chunk.len() as u32;
        match r {
            Reply::Streamed { received, .. } => assert_eq!(received, offset),
            other => return (other, worst),
        }
    }
    let (r, _, _) = call(l, 999, &Request::StreamData { offset, data: &[] });
    (r, worst)
}

/// A firmware-like image: repeated structure with variation, so that it compresses.
fn firmware(seed: u8, len: usize) -> Vec<u8> {
    let words = [
        "mov r0, r1",
        "bl report",
        "ldr r3, [pc]",
        "push {r4, lr}",
        "bx lr",
    ];
    let mut out = Vec::new();
    let mut i = 0usize;
    while out.len() < len {
        out.extend_from_slice(words[(i * 7 + seed as usize) % words.len()].as_bytes());
        out.extend_from_slice(&(i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[..(i % 3)]);
        i += 1;
    }
    out.truncate(len);
    out
}

fn link() -> (Link, u32, u32) {
    let config = bc_only();
    let bc0 = slot_addr(&config, SlotKind::Bytecode, 0);
    let bc1 = slot_addr(&config, SlotKind::Bytecode, 1);
    (AgentLink::boot(blank(), config).unwrap().0, bc0, bc1)
}

#[test]
fn info_lists_both_codecs_with_their_ram() {
    let (mut l, _, _) = link();
    let (r, _, _) = call(&mut l, 1, &Request::Hello { version: 2 });
    let Reply::Info(info) = r else {
        panic!("{r:?}")
    };
    assert!(info.supports(codec::LZMA) && info.supports(codec::LZMA_DELTA));
    assert!(
        info.codecs
            .iter()
            .all(|c| c.ram == fota_codec::DECODER_RAM as u32)
    );
}

#[test]
fn a_compressed_stream_writes_the_image_in_bounded_steps() {
    let (mut l, _, bc1) = link();
    // Not a multiple of the write unit (4): the last unit is programmed at the end.
    let image = firmware(1, 12_001);
    let stream = encode::compress(&image, &DEFAULT_OPTIONS)
        .unwrap()
        .to_bytes();
    assert!(stream.len() < image.len() / 2, "{} bytes", stream.len());
    let (r, worst) = send_stream(&mut l, bc1, NO_BASE, &stream);
    assert_eq!(
        r,
        Reply::Streamed {
            received: stream.len() as u32 - 20,
            written: image.len() as u32
        }
    );
    assert_eq!(l.agent().flash().at(bc1, image.len()), &image[..]);
    // The rest of the slot is untouched.
    assert!(
        l.agent()
            .flash()
            .at(bc1 + 12_004, (SLOT - 12_004) as usize)
            .iter()
            .all(|&b| b == 0xFF)
    );
    let bound = (STREAM_STEP + 273 + 256 + 4) as usize;
    assert!(worst <= bound, "a step changed {worst} bytes of flash");
}

#[test]
fn a_delta_reads_its_base_from_the_running_slot() {
    let (mut l, bc0, bc1) = link();
    let old = firmware(2, 12_000);
    let mut new = old.clone();
    new[5000..5010].copy_from_slice(b"changed!!!");
    new.extend_from_slice(b"a new tail");
    l.agent_mut().flash_mut().poke(bc0, &old);
    let stream = encode::delta(&old, &new, &DEFAULT_OPTIONS)
        .unwrap()
        .to_bytes();
    assert!(stream.len() < 200, "{} bytes", stream.len());
    let (r, _) = send_stream(&mut l, bc1, bc0, &stream);
    assert!(matches!(r, Reply::Streamed { .. }), "{r:?}");
    assert_eq!(l.agent().flash().at(bc1, new.len()), &new[..]);
    // The base is read, never written.
    assert_eq!(l.agent().flash().at(bc0, old.len()), &old[..]);
}

#[test]
fn a_delta_for_another_base_is_refused_before_any_write() {
    let (mut l, bc0, bc1) = link();
    let old = firmware(3, 8_000);
    let mut other = old.clone();
    other[100] ^= 1;
    l.agent_mut().flash_mut().poke(bc0, &other);
    let stream = encode::delta(&old, &firmware(4, 8_000), &DEFAULT_OPTIONS)
        .unwrap()
        .to_bytes();
    let before = l.agent().flash().data.clone();
    let (r, _) = send_stream(&mut l, bc1, bc0, &stream);
    let found = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(&other);
    assert_eq!(
        r,
        Reply::Error {
            code: ErrorCode::BaseMismatch,
            detail: found
        }
    );
    assert_eq!(l.agent().flash().data, before);
    // Data without a stream: a gap, nothing written.
    let (r, _, _) = call(
        &mut l,
        5,
        &Request::StreamData {
            offset: 0,
            data: &[1, 2, 3],
        },
    );
    assert_eq!(
        r,
        Reply::Error {
            code: ErrorCode::StreamGap,
            detail: u32::MAX
        }
    );
}

#[test]
fn a_stream_larger_than_the_slot_is_refused() {
    let (mut l, _, bc1) = link();
    let image = firmware(5, SLOT as usize + 1);
    let stream = encode::compress(&image, &DEFAULT_OPTIONS)
        .unwrap()
        .to_bytes();
    let before = l.agent().flash().data.clone();
    let (r, _) = send_stream(&mut l, bc1, NO_BASE, &stream);
    assert_eq!(
        r,
        Reply::Error {
            code: ErrorCode::BadLength,
            detail: SLOT + 1
        }
    );
    assert_eq!(l.agent().flash().data, before);
}

#[test]
fn a_corrupt_stream_is_refused_and_writes_only_inside_the_slot() {
    let image = firmware(6, 12_000);
    let stream = encode::compress(&image, &DEFAULT_OPTIONS)
        .unwrap()
        .to_bytes();
    for at in [20, 21, 30, 40, 100, 400, stream.len() - 1] {
        let (mut l, _, bc1) = link();
        let mut bad = stream.clone();
        bad[at] ^= 0x5A;
        let before = l.agent().flash().data.clone();
        let (r, _) = send_stream(&mut l, bc1, NO_BASE, &bad);
        let after = &l.agent().flash().data;
        let off = (bc1 - BASE) as usize;
        let outside = before[..off] != after[..off]
            || before[off + SLOT as usize..] != after[off + SLOT as usize..];
        assert!(!outside, "byte {at}: written outside the slot");
        match r {
            Reply::Error {
                code: ErrorCode::StreamCorrupt,
                ..
            } => {}
            // A flipped literal can still decode: then the MD5 gate catches it.
            Reply::Streamed { .. } => {
                assert_ne!(
                    l.agent().flash().at(bc1, image.len()),
                    &image[..],
                    "byte {at}"
                )
            }
            other => panic!("byte {at}: {other:?}"),
        }
    }
    // A stream that stops inside a block.
    let (mut l, _, bc1) = link();
    let cut = &stream[..stream.len() - 10];
    let (r, _) = send_stream(&mut l, bc1, NO_BASE, cut);
    assert!(
        matches!(
            r,
            Reply::Error {
                code: ErrorCode::StreamCorrupt,
                ..
            }
        ),
        "{r:?}"
    );
}

#[test]
fn resent_and_out_of_order_data() {
    let (mut l, _, bc1) = link();
    let image = firmware(7, 15_000);
    let stream = encode::compress(&image, &DEFAULT_OPTIONS)
        .unwrap()
        .to_bytes();
    let (header, body) = stream.split_at(20);
    let (r, _, _) = call(
        &mut l,
        1,
        &Request::StreamBegin {
            addr: bc1,
            base: NO_BASE,
            header,
        },
    );
    assert!(matches!(r, Reply::StreamBegun { image_len: 15_000 }));
    let (a, b) = (&body[..300], &body[300..1300]);
    // The second frame first: a gap, nothing taken.
    let (r, _, _) = call(
        &mut l,
        2,
        &Request::StreamData {
            offset: 300,
            data: b,
        },
    );
    assert_eq!(
        r,
        Reply::Error {
            code: ErrorCode::StreamGap,
            detail: 0
        }
    );
    let (r, _, _) = call(&mut l, 3, &Request::StreamData { offset: 0, data: a });
    assert!(matches!(r, Reply::Streamed { received: 300, .. }), "{r:?}");
    // The first again (a lost reply): answered, nothing done twice.
    let (r, _, _) = call(&mut l, 4, &Request::StreamData { offset: 0, data: a });
    assert!(matches!(r, Reply::Streamed { received: 300, .. }), "{r:?}");
    // A frame that overlaps what was taken: only its new bytes count.
    let (r, _, _) = call(
        &mut l,
        5,
        &Request::StreamData {
            offset: 200,
            data: &body[200..1200],
        },
    );
    assert!(matches!(r, Reply::Streamed { received: 1200, .. }), "{r:?}");
    let mut offset = 1200;
    for (i, chunk) in body[1200..].chunks(MAX_WRITE).enumerate() {
        let (r, _, _) = call(
            &mut l,
            10 + i as u16,
            &Request::StreamData {
                offset,
                data: chunk,
            },
        );
        assert!(matches!(r, Reply::Streamed { .. }), "{r:?}");
        offset += chunk.len() as u32;
    }
    let (r, _, _) = call(
        &mut l,
        6,
        &Request::StreamData {
            offset: body.len() as u32,
            data: &[],
        },
    );
    assert!(
        matches!(
            r,
            Reply::Streamed {
                written: 15_000,
                ..
            }
        ),
        "{r:?}"
    );
    assert_eq!(l.agent().flash().at(bc1, image.len()), &image[..]);
}

#[test]
fn a_stream_into_a_slot_in_use_is_refused() {
    let (mut l, bc0, _) = link();
    let stream = encode::compress(&firmware(8, 1000), &DEFAULT_OPTIONS)
        .unwrap()
        .to_bytes();
    let (r, _, _) = call(
        &mut l,
        1,
        &Request::StreamBegin {
            addr: bc0,
            base: NO_BASE,
            header: &stream[..20],
        },
    );
    assert_eq!(
        r,
        Reply::Error {
            code: ErrorCode::SlotInUse,
            detail: bc0
        }
    );
}

#[test]
fn ram_of_the_link_with_the_decoder() {
    let state = std::mem::size_of::<fota_agent::LinkState>();
    let stream = std::mem::size_of::<fota_agent::StreamState>();
    println!(
        "LinkState {state} bytes with the decoder ({stream} bytes of it; DECODER_RAM {})",
        fota_codec::DECODER_RAM
    );
    assert!((fota_codec::DECODER_RAM..=fota_codec::DECODER_RAM + 32).contains(&stream));
}

/// A host sends a stream's frames right behind the erases of their sectors without
/// waiting for the answers; where an erase was lost, the decoder meets the slot's old
/// bytes. The agent refuses them (`NotErased`) before programming any, the stream is over
/// (the next frame finds none), and once the slot is erased the stream begun again
/// writes the image.
#[test]
fn a_stream_over_bytes_not_erased_is_refused_and_begins_again() {
    let (mut l, _, bc1) = link();
    let older = firmware(7, 12_000);
    l.agent_mut().flash_mut().poke(bc1, &older);
    let image = firmware(1, 12_000);
    let stream = encode::compress(&image, &DEFAULT_OPTIONS)
        .unwrap()
        .to_bytes();
    let (r, _) = send_stream(&mut l, bc1, NO_BASE, &stream);
    assert!(
        matches!(
            r,
            Reply::Error {
                code: ErrorCode::NotErased,
                ..
            }
        ),
        "{r:?}"
    );
    // Nothing programmed over the old bytes: each byte is still the older image's (a
    // unit programmed over it would hold neither image's byte).
    let slot = l.agent().flash().at(bc1, older.len()).to_vec();
    assert_eq!(slot, older);
    // The stream is over.
    let (r, _, _) = call(
        &mut l,
        500,
        &Request::StreamData {
            offset: 0,
            data: &stream[20..40],
        },
    );
    assert_eq!(
        r,
        Reply::Error {
            code: ErrorCode::StreamGap,
            detail: u32::MAX
        }
    );
    // Erased, then begun again: the image.
    let (r, _, _) = call(
        &mut l,
        501,
        &Request::EraseSlot {
            addr: bc1,
            size: 16 * 1024,
        },
    );
    assert!(matches!(r, Reply::Erased { .. }), "{r:?}");
    let (r, _) = send_stream(&mut l, bc1, NO_BASE, &stream);
    assert!(matches!(r, Reply::Streamed { .. }), "{r:?}");
    assert_eq!(l.agent().flash().at(bc1, image.len()), &image[..]);
}

/// The steps `StreamBegin` of `stream` (a delta from the base at `bc0`) takes, and its
/// answer.
fn begin_steps(l: &mut Link, bc1: u32, bc0: u32, stream: &[u8]) -> (Reply, usize) {
    let (r, steps, _) = call(
        l,
        50,
        &Request::StreamBegin {
            addr: bc1,
            base: bc0,
            header: &stream[..20],
        },
    );
    (r, steps)
}

/// A delta's base the device has just hashed as its running slot (the host's check of
/// it, asked behind `Hello`), nothing changed since: `StreamBegin` takes the base's
/// CRC-32 kept from that checksum instead of reading the base again, and refuses a base
/// whose CRC is another just as it would after reading it. A checksum asked by the
/// slot's address, or anything erased since, leaves the base to be read.
#[test]
fn a_delta_whose_base_was_just_hashed_does_not_read_it_again() {
    let old = firmware(5, 12_000);
    let mut new = old.clone();
    new[300..306].copy_from_slice(b"edited");
    let stream = encode::delta(&old, &new, &DEFAULT_OPTIONS)
        .unwrap()
        .to_bytes();
    let running = |l: &mut Link, len: usize| {
        let r = call(
            l,
            40,
            &Request::ChecksumSlot {
                addr: fota_protocol::RUNNING_BYTECODE,
                size: len as u32,
            },
        );
        assert!(matches!(r.0, Reply::Checksum(_)), "{:?}", r.0);
    };
    // Read: no checksum before it.
    let (mut l, bc0, bc1) = link();
    l.agent_mut().flash_mut().poke(bc0, &old);
    let (r, read) = begin_steps(&mut l, bc1, bc0, &stream);
    assert!(matches!(r, Reply::StreamBegun { .. }), "{r:?}");
    assert!(read > 1, "{read} steps");
    // Kept: the running slot's checksum of exactly the base.
    let (mut l, bc0, bc1) = link();
    l.agent_mut().flash_mut().poke(bc0, &old);
    running(&mut l, old.len());
    let (r, kept) = begin_steps(&mut l, bc1, bc0, &stream);
    assert!(matches!(r, Reply::StreamBegun { .. }), "{r:?}");
    assert!(kept < read, "{kept} steps, {read} reading the base");
    // And the stream goes on from there to the image.
    let mut offset = 0;
    for chunk in stream[20..].chunks(MAX_WRITE) {
        let (r, _, _) = call(
            &mut l,
            60,
            &Request::StreamData {
                offset,
                data: chunk,
            },
        );
        assert!(matches!(r, Reply::Streamed { .. }), "{r:?}");
        offset += chunk.len() as u32;
    }
    let (r, _, _) = call(&mut l, 61, &Request::StreamData { offset, data: &[] });
    assert!(matches!(r, Reply::Streamed { .. }), "{r:?}");
    assert_eq!(l.agent().flash().at(bc1, new.len()), &new[..]);
    // Another base in the slot: refused at once, with the CRC it has.
    let (mut l, bc0, bc1) = link();
    let mut other = old.clone();
    other[7] ^= 0x10;
    l.agent_mut().flash_mut().poke(bc0, &other);
    running(&mut l, old.len());
    let before = l.agent().flash().data.clone();
    let (r, steps) = begin_steps(&mut l, bc1, bc0, &stream);
    let found = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(&other);
    assert_eq!(
        r,
        Reply::Error {
            code: ErrorCode::BaseMismatch,
            detail: found
        }
    );
    assert!(steps < read);
    assert_eq!(l.agent().flash().data, before);
    // The slot's own address, another length, or an erase since: read again.
    let (mut l, bc0, bc1) = link();
    l.agent_mut().flash_mut().poke(bc0, &old);
    let r = call(
        &mut l,
        40,
        &Request::ChecksumSlot {
            addr: bc0,
            size: old.len() as u32,
        },
    );
    assert!(matches!(r.0, Reply::Checksum(_)));
    assert_eq!(begin_steps(&mut l, bc1, bc0, &stream).1, read);
    let (mut l, bc0, bc1) = link();
    l.agent_mut().flash_mut().poke(bc0, &old);
    running(&mut l, old.len() - 1);
    assert_eq!(begin_steps(&mut l, bc1, bc0, &stream).1, read);
    let (mut l, bc0, bc1) = link();
    l.agent_mut().flash_mut().poke(bc0, &old);
    running(&mut l, old.len());
    let r = call(
        &mut l,
        41,
        &Request::EraseSlot {
            addr: bc1,
            size: 4096,
        },
    );
    assert!(matches!(r.0, Reply::Erased { .. }), "{:?}", r.0);
    assert_eq!(begin_steps(&mut l, bc1, bc0, &stream).1, read);
}
