//! The pipelined ends of an update: the opening (`Hello` with the record and a free slot
//! behind it) and the end (protocol 3: the `Attempt` carrying the image's MD5 and a
//! `GetRecord` right behind the slot's `ChecksumSlot`). An agent of version 2 refuses
//! the host's `Hello` and is greeted again in its version, the answers behind the refused
//! one never taken for the new ones; answers lost in either pipeline are asked again;
//! a delta's base is hashed behind the `Hello`; and no update ever attempts a slot that
//! does not hold its image.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use fota_host::protocol::{
    ErrorCode, Event, FrameReader, Op, PROTOCOL_VERSION, RecordState, Reply, Request, encode_reply,
};
use fota_host::sim::{SimTransport, Virtual};
use fota_host::update::{Outcome, Plan};
use fota_host::{Device, Image, LinkError, NullObserver, Transport, update};
use fota_sim::device::{DeviceConfig, LayoutKind, SimDevice};
use fota_sim::images;
use futures::executor::block_on;

mod support;

/// What the meddler saw and did.
#[derive(Default)]
struct Seen {
    /// Every request the host sent, in order.
    requests: Vec<(u16, String)>,
    /// The `Attempt`s, whether each carried a check.
    attempts: Vec<bool>,
    /// Replies dropped.
    dropped: Vec<String>,
}

impl Seen {
    /// The requests sent whose name starts with `name`, in order.
    fn named(&self, name: &str) -> Vec<&String> {
        self.requests
            .iter()
            .filter(|(_, r)| r.starts_with(name))
            .map(|(_, r)| r)
            .collect()
    }
}

/// The host end of a simulated device, with a man in the middle: as an agent of
/// protocol 2 it refuses a `Hello` of version 3 (and any request of version 3) the way
/// such an agent does; it drops the first reply to each op listed in `drop` (the reply
/// is lost on the line).
struct Meddler {
    inner: SimTransport<Virtual>,
    version_2: bool,
    /// Replies to lose: the first reply to `op` after letting `n` pass.
    drop: Vec<(Op, usize)>,
    out: Box<FrameReader<4096>>,
    back: Box<FrameReader<4096>>,
    /// The ops of the requests in flight by id, to know what a reply answers.
    ops: Vec<(u16, Op)>,
    /// Replies the meddler makes itself (the refusals of the version-2 agent).
    made: Vec<u8>,
    /// Bytes received, not yet handed on.
    pending: Vec<u8>,
    /// The bytes of a frame not received whole yet.
    partial: Vec<u8>,
    seen: Rc<RefCell<Seen>>,
}

impl Meddler {
    fn new(sim: SimDevice, version_2: bool, drop: &[(Op, usize)]) -> (Meddler, Rc<RefCell<Seen>>) {
        let seen = Rc::new(RefCell::new(Seen::default()));
        let m = Meddler {
            inner: SimTransport::new(sim, Virtual),
            version_2,
            drop: drop.to_vec(),
            out: Box::new(FrameReader::new()),
            back: Box::new(FrameReader::new()),
            ops: Vec::new(),
            made: Vec::new(),
            pending: Vec::new(),
            partial: Vec::new(),
            seen: seen.clone(),
        };
        (m, seen)
    }
}

/// Queue a refusal of request `id` in `made`.
fn refuse(made: &mut Vec<u8>, id: u16, code: ErrorCode, detail: u32) {
    let mut buf = [0u8; 64];
    let n = encode_reply(id, &Reply::Error { code, detail }, &mut buf).expect("small");
    made.extend_from_slice(&buf[..n]);
}

impl Transport for Meddler {
    async fn send(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        let mut rest = bytes;
        let mut forward = true;
        while !rest.is_empty() {
            let (used, event) = self.out.feed(rest);
            rest = &rest[used..];
            let Some(Event::Frame(f)) = event else {
                continue;
            };
            let Ok(req) = f.request() else {
                continue;
            };
            let mut seen = self.seen.borrow_mut();
            seen.requests.push((f.id, format!("{req:?}")));
            if let Request::Attempt { check, .. } = req {
                seen.attempts.push(check.is_some());
            }
            drop(seen);
            self.ops.push((f.id, req.op()));
            if self.version_2 {
                match req {
                    Request::Hello { version } if version != 2 => {
                        forward = false;
                        refuse(&mut self.made, f.id, ErrorCode::VersionMismatch, 2);
                    }
                    // Nor does it know the running slot's address (`OutOfSlot`).
                    Request::ChecksumSlot { addr, .. } if addr >= 0xFFFF_FFF0 => {
                        forward = false;
                        refuse(&mut self.made, f.id, ErrorCode::OutOfSlot, addr);
                    }
                    // A version-2 agent takes no 29-byte attempt body.
                    Request::Attempt { check: Some(_), .. } => {
                        forward = false;
                        refuse(
                            &mut self.made,
                            f.id,
                            ErrorCode::BadRequest,
                            Op::Attempt as u8 as u32,
                        );
                    }
                    _ => {}
                }
            }
        }
        if forward {
            self.inner.send(bytes).await?;
        }
        Ok(())
    }

    async fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, LinkError> {
        if self.pending.is_empty() && self.made.is_empty() {
            let mut raw = vec![0u8; buf.len()];
            let n = self.inner.recv(&mut raw, timeout).await?;
            // Whole frames only (a frame cut between two reads waits in `partial`),
            // dropping those asked to be lost.
            let mut rest = &raw[..n];
            while !rest.is_empty() {
                let (used, event) = self.back.feed(rest);
                self.partial.extend_from_slice(&rest[..used]);
                rest = &rest[used..];
                match event {
                    Some(Event::Frame(f)) => {
                        let op = self.ops.iter().find(|o| o.0 == f.id).map(|o| o.1);
                        let final_reply = !matches!(f.reply(), Ok(Reply::Progress { .. }));
                        let k = op.and_then(|op| self.drop.iter().position(|d| d.0 == op));
                        let lose = match k {
                            Some(k) if final_reply && f.op != 0xFF => {
                                let pass = self.drop[k].1 > 0;
                                if pass {
                                    self.drop[k].1 -= 1;
                                } else {
                                    self.drop.remove(k);
                                }
                                !pass
                            }
                            _ => false,
                        };
                        if let (true, Some(op)) = (lose, op) {
                            self.seen
                                .borrow_mut()
                                .dropped
                                .push(format!("{op:?} #{}", f.id));
                            self.partial.clear();
                        } else {
                            self.pending.append(&mut self.partial);
                        }
                    }
                    Some(_) => self.pending.append(&mut self.partial),
                    None => {}
                }
            }
        }
        if !self.made.is_empty() {
            let n = self.made.len().min(buf.len());
            buf[..n].copy_from_slice(&self.made[..n]);
            self.made.drain(..n);
            return Ok(n);
        }
        let n = self.pending.len().min(buf.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Ok(n)
    }

    pass_through_to_inner!();
}

/// An update of a new bytecode image (raw) on a fresh bytecode-only device through a
/// meddler; its report and the device's flash check afterwards.
fn run(
    version_2: bool,
    drop: &[(Op, usize)],
) -> (Result<Outcome, String>, Rc<RefCell<Seen>>, bool) {
    run_with(version_2, drop, false)
}

/// [`run`], as a delta from the image the device runs where `delta`.
fn run_with(
    version_2: bool,
    drop: &[(Op, usize)],
    delta: bool,
) -> (Result<Outcome, String>, Rc<RefCell<Seen>>, bool) {
    run_base(version_2, drop, delta.then(images::blink_v1))
}

/// [`run_with`], a delta from `base` where one is given (the device runs blink v1).
fn run_base(
    version_2: bool,
    drop: &[(Op, usize)],
    base: Option<Vec<u8>>,
) -> (Result<Outcome, String>, Rc<RefCell<Seen>>, bool) {
    let sim = SimDevice::new(DeviceConfig::new(LayoutKind::BytecodeOnly));
    let (m, seen) = Meddler::new(sim, version_2, drop);
    let mut dev = Device::new(m, Box::new(NullObserver));
    let image = images::blink_v2();
    let mut plan = Plan::new(Image::new("blink-v2.bin", image.clone()).expect("image"));
    plan.restart = false;
    if let Some(base) = base {
        plan.codec = fota_host::Codec::Delta;
        plan.bases = vec![Image::new("blink-v1.bin", base).expect("image")];
    }
    // Nothing to compare: the slot's MD5 is the update's only checksum.
    plan.resume = false;
    let report = block_on(update(&mut dev, &plan));
    let link = dev.into_link();
    let device = link.inner.device();
    // The record the report gives is the device's, whether read or worked out from the
    // attempt (protocol 3).
    if let Ok(r) = &report {
        assert_eq!(Some(r.record), device.record(), "the report's record");
    }
    let holds = device.record().is_some_and(|r| {
        let slot = device
            .agent_config()
            .slots
            .iter()
            .find(|s| {
                s.kind == fota_host::protocol::SlotKind::Bytecode
                    && u32::from(s.index) == r.bc_current
            })
            .copied();
        r.state == RecordState::Pending
            && slot.is_some_and(|s| {
                let at = s.addr as usize;
                device.flash_bytes()[at..at + image.len()] == image[..]
            })
    });
    (
        report.map(|r| r.outcome).map_err(|e| format!("{e:?}")),
        seen,
        holds,
    )
}

#[test]
fn an_agent_of_version_3_gets_the_attempt_behind_the_checksum() {
    let (outcome, seen, holds) = run(false, &[]);
    assert_eq!(outcome, Ok(Outcome::Attempted));
    assert!(holds, "the attempted slot holds the image");
    let seen = seen.borrow();
    assert_eq!(seen.attempts, [true], "one attempt, carrying the MD5");
    // The attempt went right behind the slot's checksum, nothing behind it (the record
    // it wrote follows from the one read at the start).
    let names: Vec<&str> = seen
        .requests
        .iter()
        .map(|(_, r)| r.split([' ', '{']).next().unwrap_or(""))
        .collect();
    let at = names
        .iter()
        .position(|n| *n == "Attempt")
        .expect("an attempt");
    assert_eq!(&names[at - 1..=at], ["ChecksumSlot", "Attempt"]);
    assert_eq!(at + 1, names.len(), "nothing after: {names:?}");
    assert_eq!(names.iter().filter(|n| **n == "GetRecord").count(), 1);
    assert!(
        seen.requests[0]
            .1
            .contains(&format!("version: {PROTOCOL_VERSION}"))
    );
}

#[test]
fn an_agent_of_version_2_is_greeted_again_and_attempted_in_the_old_order() {
    let (outcome, seen, holds) = run(true, &[]);
    assert_eq!(outcome, Ok(Outcome::Attempted));
    assert!(holds);
    let seen = seen.borrow();
    // Hello 3 refused (the record and the slot behind it answered by the agent), Hello 2
    // answered with them behind it again: each answer matched to its own request.
    let hellos = seen.named("Hello");
    assert_eq!(hellos.len(), 2, "{hellos:?}");
    assert!(hellos[0].contains("version: 3") && hellos[1].contains("version: 2"));
    assert_eq!(seen.attempts, [false], "no request of version 3: {seen:?}");
    let asked = |name: &str| seen.requests.iter().filter(|r| r.1 == name).count();
    assert_eq!(
        asked("GetRecord"),
        3,
        "behind each hello, behind the attempt"
    );
    assert_eq!(asked("FindBytecodeSlot"), 2, "behind each hello");
}

impl std::fmt::Debug for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} dropped {:?}", self.requests, self.dropped)
    }
}

#[test]
fn a_lost_answer_in_the_pipelined_opening_is_asked_again() {
    for lost in [Op::Hello, Op::GetRecord, Op::FindBytecodeSlot] {
        let (outcome, seen, holds) = run(false, &[(lost, 0)]);
        assert_eq!(outcome, Ok(Outcome::Attempted), "{lost:?} lost");
        assert!(holds, "{lost:?} lost");
        let seen = seen.borrow();
        assert_eq!(seen.dropped.len(), 1, "{seen:?}");
        let asked = |op: &str| seen.requests.iter().filter(|r| r.1.starts_with(op)).count();
        let name = format!("{lost:?}");
        assert!(asked(&name) >= 2, "{lost:?} asked again: {seen:?}");
    }
}

#[test]
fn a_lost_answer_at_the_pipelined_end_is_asked_again() {
    // The MD5's answer, the attempt's: each lost once. The copy of the attempt the agent
    // ran is answered from its cache.
    for (lost, pass) in [(Op::ChecksumSlot, 0), (Op::Attempt, 0)] {
        let (outcome, seen, holds) = run(false, &[(lost, pass)]);
        assert_eq!(seen.borrow().dropped.len(), 1, "{:?}", seen.borrow());
        assert_eq!(outcome, Ok(Outcome::Attempted), "{lost:?} lost: {:?}", seen);
        assert!(holds, "{lost:?} lost");
        assert!(
            seen.borrow().attempts.iter().all(|c| *c),
            "every attempt carries the MD5"
        );
    }
}

/// For a delta from the running image, the device's MD5 of the slot it runs rides behind
/// the `Hello` (protocol 3) and settles the base: no other checksum of the base. An agent
/// of version 2 refuses it and the base is checked in the stream's pipeline, as before.
#[test]
fn a_deltas_base_is_hashed_behind_the_hello() {
    let (outcome, seen, holds) = run_with(false, &[], true);
    assert_eq!(outcome, Ok(Outcome::Attempted));
    assert!(holds);
    let seen = seen.borrow();
    let sums = seen.named("ChecksumSlot");
    assert_eq!(
        sums.len(),
        2,
        "the base behind the hello, the result: {sums:?}"
    );
    assert!(sums[0].contains(&format!("addr: {}", fota_host::protocol::RUNNING_BYTECODE)));
    assert!(seen.requests[3].1.starts_with("ChecksumSlot"), "{seen:?}");
    assert!(seen.requests.iter().any(|r| r.1.starts_with("StreamBegin")));

    let (outcome, seen, holds) = run_with(true, &[], true);
    assert_eq!(outcome, Ok(Outcome::Attempted));
    assert!(holds);
    let seen = seen.borrow();
    let sums = seen.named("ChecksumSlot");
    // Refused behind the hello of version 3; the base's own, the result's.
    assert_eq!(sums.len(), 3, "{sums:?}");
    assert!(seen.requests.iter().any(|r| r.1.starts_with("StreamBegin")));
}

/// The base's MD5 asked behind the `Hello` is not waited for: the stream's first requests
/// go before its answer, which the stream's pipeline takes as its base check. A base
/// that is not on the device (its MD5 another) is found so, late: the stream is
/// abandoned (the agent refuses its `StreamBegin` too) and the image goes compressed,
/// whole, into the same slot, attempted as ever.
#[test]
fn a_wrong_base_found_after_the_stream_began_falls_back() {
    let mut wrong = images::blink_v1();
    wrong[100] ^= 0x55;
    let (outcome, seen, holds) = run_base(false, &[], Some(wrong));
    assert_eq!(outcome, Ok(Outcome::Attempted));
    assert!(holds, "the attempted slot holds the image");
    let seen = seen.borrow();
    let names: Vec<&str> = seen
        .requests
        .iter()
        .map(|(_, r)| r.split([' ', '{']).next().unwrap_or(""))
        .collect();
    // The base's MD5 once (behind the hello, not asked again in the stream), two
    // streams begun: the delta's, abandoned, and the compressed image's. The delta's
    // frames all went before the base's answer came, the slot's MD5 and the checked
    // `Attempt` behind them: the agent refused that attempt (the slot's MD5 another),
    // and the slot's MD5 is asked again behind the second stream, the attempt after it.
    let sums = names.iter().filter(|n| **n == "ChecksumSlot").count();
    assert_eq!(sums, 3, "the base's and the result's twice: {names:?}");
    assert_eq!(names.iter().filter(|n| **n == "Attempt").count(), 2);
    let begun = names.iter().filter(|n| **n == "StreamBegin").count();
    assert_eq!(begun, 2, "{names:?}");
    // The delta's stream went before the base's MD5 was back: its first request right
    // behind the opening's four.
    assert_eq!(names[4], "StreamBegin", "{names:?}");
    assert!(seen.attempts.iter().all(|c| *c));
}
