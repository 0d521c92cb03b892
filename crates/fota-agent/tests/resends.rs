//! A resent request (its reply was late or lost) is answered with the same reply and never
//! run twice, while nothing changed since; after a change it runs again.

mod common;

use common::*;
use fota_agent::{AgentLink, Handled};
use fota_protocol::{
    AcceptOutcome, Event, FrameReader, MAX_PAYLOAD, PROTOCOL_VERSION, Reply, Request, SlotKind,
    encode_request, frame_len,
};

type Link = AgentLink<Flash>;

fn req(id: u16, r: &Request<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; frame_len(MAX_PAYLOAD)];
    let n = encode_request(id, r, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

fn replies(link: &mut Link, bytes: &[u8]) -> Vec<(u16, Reply)> {
    let mut sent = Vec::new();
    link.receive(bytes, &mut |f| sent.extend_from_slice(f));
    let mut reader = FrameReader::<512>::new();
    let mut out = Vec::new();
    let mut rest = &sent[..];
    while !rest.is_empty() {
        let (n, ev) = reader.feed(rest);
        if let Some(Event::Frame(f)) = ev {
            out.push((f.id, f.reply().expect("a reply")));
        }
        rest = &rest[n..];
    }
    out
}

fn last(link: &mut Link, id: u16, r: &Request<'_>) -> Reply {
    let got = replies(link, &req(id, r));
    got.last().expect("a reply").1.clone()
}

/// An erase sent three times while the first copy runs (the copies wait in the receive
/// queue): three answers, each sector erased once.
#[test]
fn an_erase_resent_while_it_runs_erases_once() {
    let config = bc_only();
    let mut l = AgentLink::boot(blank(), config.clone()).unwrap().0;
    let addr = slot_addr(&config, SlotKind::Bytecode, 1);
    let erase = Request::EraseSlot {
        addr,
        size: 3 * SECTOR,
    };
    let before = l.agent().flash().erases;
    let mut queue = req(10, &erase);
    let mut sent = Vec::new();
    // The first copy starts; the resends arrive while it runs.
    let step = l.step(&queue, &mut |f| sent.extend_from_slice(f));
    assert_eq!(step.handled, Handled::Started { id: 10, op: 6 });
    queue.drain(..step.consumed);
    queue.extend(req(11, &erase));
    queue.extend(req(12, &erase));
    let mut rest = &queue[..];
    let mut answered = Vec::new();
    for _ in 0..100 {
        let step = l.step(rest, &mut |f| sent.extend_from_slice(f));
        rest = &rest[step.consumed..];
        if let Handled::Request { id, refused, .. } = step.handled {
            assert_eq!(refused, None);
            answered.push(id);
        }
        if rest.is_empty() && !l.is_busy() {
            break;
        }
    }
    assert_eq!(answered, [10, 11, 12]);
    assert_eq!(
        l.agent().flash().erases - before,
        3,
        "three sectors, once each"
    );
    assert_eq!(l.stats().repeats, 2);
}

/// The reply to accept() was lost and the host sends it again: it still hears
/// `Accepted` (a run again would say `AlreadyConfirmed`, and the host would think the
/// trial had been accepted by someone else).
#[test]
fn a_resent_accept_is_answered_accepted() {
    let config = bc_only();
    let (mut agent, _) = boot(blank(), &config);
    agent.attempt(1, 0).unwrap();
    let (agent, boot) = restart(agent, &config);
    assert!(boot.trial);
    let mut l = AgentLink::new(agent);
    let first = last(&mut l, 20, &Request::Accept);
    assert_eq!(first, Reply::Accepted(AcceptOutcome::Accepted));
    let again = last(&mut l, 21, &Request::Accept);
    assert_eq!(again, Reply::Accepted(AcceptOutcome::Accepted));
    // A new session forgets: now it is the honest answer.
    last(
        &mut l,
        22,
        &Request::Hello {
            version: PROTOCOL_VERSION,
        },
    );
    let fresh = last(&mut l, 23, &Request::Accept);
    assert_eq!(fresh, Reply::Accepted(AcceptOutcome::AlreadyConfirmed));
}

/// A checksum repeated after a write is computed again (the flash changed); one repeated
/// with nothing between is answered from the cache.
#[test]
fn a_change_between_two_copies_runs_the_second() {
    let config = bc_only();
    let mut l = AgentLink::boot(blank(), config.clone()).unwrap().0;
    let addr = slot_addr(&config, SlotKind::Bytecode, 1);
    let sum = Request::ChecksumSlot { addr, size: 16 };
    let blank_md5 = last(&mut l, 1, &sum);
    assert_eq!(last(&mut l, 2, &sum), blank_md5);
    assert_eq!(l.stats().repeats, 1);
    let data = image(7, 16);
    assert!(matches!(
        last(&mut l, 3, &Request::WriteSlot { addr, data: &data }),
        Reply::Written { .. }
    ));
    let written = last(&mut l, 4, &sum);
    assert_ne!(written, blank_md5, "a stale checksum from the cache");
    assert_eq!(l.stats().repeats, 1);
    // The firmware's own change (through agent_mut) is seen too.
    let other = slot_addr(&config, SlotKind::Bytecode, 1) + SECTOR;
    last(
        &mut l,
        5,
        &Request::ChecksumSlot {
            addr: other,
            size: 4,
        },
    );
    l.agent_mut()
        .write_slot(other, &[1, 2, 3, 4])
        .expect("local write");
    let after = last(
        &mut l,
        6,
        &Request::ChecksumSlot {
            addr: other,
            size: 4,
        },
    );
    assert_eq!(l.stats().repeats, 1, "{after:?} came from the cache");
}

/// A refusal is never kept: the same request runs again (a flash failure may pass).
#[test]
fn refusals_are_not_kept() {
    let config = bc_only();
    let mut l = AgentLink::boot(blank(), config.clone()).unwrap().0;
    let current = slot_addr(&config, SlotKind::Bytecode, 0);
    let erase = Request::EraseSlot {
        addr: current,
        size: SECTOR,
    };
    assert!(matches!(last(&mut l, 1, &erase), Reply::Error { .. }));
    assert!(matches!(last(&mut l, 2, &erase), Reply::Error { .. }));
    assert_eq!(l.stats().repeats, 0);
    assert_eq!(l.stats().refused, 2);
}
