//! The frame reader on a byte stream: frames split anywhere, text between frames,
//! damaged frames, overlong chunks.

use fota_protocol::{Event, FrameError, FrameReader, Reply, Request, encode_reply, encode_request};

#[derive(Debug, PartialEq)]
enum Seen {
    Frame(u16, u8, Vec<u8>),
    Text(Vec<u8>),
    Error(FrameError),
}

/// Feed `chunks` one after another and collect every event.
fn run<const N: usize>(reader: &mut FrameReader<N>, chunks: &[&[u8]]) -> Vec<Seen> {
    let mut seen = Vec::new();
    for chunk in chunks {
        let mut rest = *chunk;
        while !rest.is_empty() {
            let (used, event) = reader.feed(rest);
            match event {
                Some(Event::Frame(f)) => seen.push(Seen::Frame(f.id, f.op, f.body.to_vec())),
                Some(Event::Text(t)) => seen.push(Seen::Text(t.to_vec())),
                Some(Event::Error(e)) => seen.push(Seen::Error(e)),
                None => {}
            }
            rest = &rest[used..];
        }
    }
    seen
}

fn stream() -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 2048];
    let data: Vec<u8> = (0..600u32).map(|i| (i % 7) as u8).collect(); // many zeros
    let n = encode_request(
        9,
        &Request::WriteSlot {
            addr: 0x8000,
            data: &data,
        },
        &mut buf,
    )
    .expect("fits");
    bytes.extend_from_slice(&buf[..n]);
    bytes.extend_from_slice(b"boot: running bytecode slot 1\r\n");
    let n = encode_reply(
        10,
        &Reply::Accepted(fota_protocol::AcceptOutcome::Accepted),
        &mut buf,
    )
    .expect("fits");
    bytes.extend_from_slice(&buf[..n]);
    let n = encode_request(11, &Request::GetRecord, &mut buf).expect("fits");
    bytes.extend_from_slice(&buf[..n]);
    bytes
}

#[test]
fn a_stream_splits_into_frames_and_text() {
    let seen = run(&mut FrameReader::<2048>::new(), &[&stream()]);
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert!(matches!(&seen[0], Seen::Frame(9, 0x07, body) if body.len() == 604));
    assert_eq!(
        seen[1],
        Seen::Text(b"boot: running bytecode slot 1\r\n".to_vec())
    );
    assert_eq!(seen[2], Seen::Frame(10, 0x8A, vec![0]));
    assert_eq!(seen[3], Seen::Frame(11, 0x02, vec![]));
}

#[test]
fn splitting_at_every_byte_boundary_gives_the_same_events() {
    let bytes = stream();
    let whole = run(&mut FrameReader::<2048>::new(), &[&bytes]);
    for cut in 0..=bytes.len() {
        let (a, b) = bytes.split_at(cut);
        let split = run(&mut FrameReader::<2048>::new(), &[a, b]);
        assert_eq!(split, whole, "split at byte {cut}");
    }
    // And one byte at a time.
    let singles: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(run(&mut FrameReader::<2048>::new(), &singles), whole);
}

#[test]
fn joining_frames_back_to_back_gives_each_frame() {
    let mut buf = [0u8; 64];
    let mut bytes = Vec::new();
    for id in 0..50u16 {
        let n = encode_request(id, &Request::Accept, &mut buf).expect("fits");
        bytes.extend_from_slice(&buf[..n]);
    }
    let seen = run(&mut FrameReader::<64>::new(), &[&bytes]);
    let ids: Vec<u16> = seen
        .iter()
        .map(|s| match s {
            Seen::Frame(id, 0x0A, _) => *id,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(ids, (0..50).collect::<Vec<_>>());
}

#[test]
fn a_damaged_byte_is_never_a_frame() {
    let mut buf = [0u8; 64];
    let n = encode_request(
        7,
        &Request::EraseSlot {
            addr: 0x8000,
            size: 4096,
        },
        &mut buf,
    )
    .expect("fits");
    let good = buf[..n].to_vec();
    for i in 1..n - 1 {
        for flip in [0x01u8, 0x80, 0xFF] {
            let mut bad = good.clone();
            bad[i] ^= flip;
            let seen = run(&mut FrameReader::<64>::new(), &[&bad]);
            assert!(
                !seen.iter().any(|s| matches!(s, Seen::Frame(..))),
                "byte {i} ^ {flip:#x} still decoded: {seen:?}"
            );
        }
    }
}

#[test]
fn a_crc_error_is_reported_and_the_next_frame_still_decodes() {
    let mut buf = [0u8; 64];
    let n = encode_request(1, &Request::GetRecord, &mut buf).expect("fits");
    let mut bytes = buf[..n].to_vec();
    bytes[n - 2] ^= 0x01; // a CRC byte
    bytes.extend_from_slice(&buf[..n]);
    let seen = run(&mut FrameReader::<64>::new(), &[&bytes]);
    assert_eq!(
        seen,
        vec![Seen::Error(FrameError::Crc), Seen::Frame(1, 0x02, vec![])]
    );
}

#[test]
fn an_overlong_binary_chunk_is_dropped_up_to_the_next_zero() {
    let mut bytes = vec![0x00];
    bytes.extend(std::iter::repeat_n(0x01u8, 100));
    bytes.push(0x00);
    let mut buf = [0u8; 32];
    let n = encode_request(3, &Request::Restart, &mut buf).expect("fits");
    bytes.extend_from_slice(&buf[..n]);
    let seen = run(&mut FrameReader::<32>::new(), &[&bytes]);
    assert_eq!(
        seen,
        vec![
            Seen::Error(FrameError::TooLong),
            Seen::Frame(3, 0x09, vec![])
        ]
    );
}

#[test]
fn a_long_log_line_is_handed_over_in_pieces() {
    let line = "x".repeat(100) + "\n";
    let seen = run(&mut FrameReader::<32>::new(), &[line.as_bytes(), &[0]]);
    let text: Vec<u8> = seen
        .iter()
        .flat_map(|s| match s {
            Seen::Text(t) => t.clone(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(text, line.as_bytes());
}

#[test]
fn flush_text_hands_over_a_quiet_line_but_not_a_partial_frame() {
    let mut reader = FrameReader::<64>::new();
    assert_eq!(reader.feed(b"hello\n"), (6, None));
    assert_eq!(reader.flush_text(), Some(&b"hello\n"[..]));
    assert_eq!(reader.pending(), 0);
    let mut buf = [0u8; 64];
    let n = encode_request(0x0102, &Request::GetRecord, &mut buf).expect("fits");
    // Everything but the final zero: the id bytes 0x02/0x01 are not text.
    let (used, ev) = reader.feed(&buf[..n - 1]);
    assert_eq!((used, ev.is_none()), (n - 1, true));
    assert_eq!(reader.flush_text(), None);
}
