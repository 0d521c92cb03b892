//! What the hostile-device properties (`tests/hostile_device.rs`, the `host_device` fuzz
//! target) found, one test each, against a device made of a few lines: it answers the
//! host's requests as each test says, in virtual time, and may send frames of its own at
//! a steady pace.
//!
//! - progress without end held a request, and a pipeline, open for ever;
//! - frames that answer nothing in flight restarted a pipeline's timeout for ever;
//! - a device that says hello but never gives its record kept the outcome check looping;
//! - a device that answers "damaged frame" to everything was sent requests as fast as
//!   the line goes while the host waited for it to come back;
//! - a device that reset while the host waited between two reads of the record ended
//!   the update with "connection lost" instead of being waited for;
//! - progress past its total reached the screen;
//! - device text reached the terminal with its escape sequences, unbounded.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use fota_host::protocol::{
    ErrorCode, Event, FrameReader, Info, Record, Reply, Request, SlotKind, encode_reply,
};
use fota_host::sim::{SimTransport, Virtual};
use fota_host::{Device, HostError, LinkError, NullObserver, Observer, Progress, Transport};
use fota_sim::device::{DeviceConfig, LayoutKind, SimDevice};
use futures::executor::block_on;

type Answer = Box<dyn FnMut(u16, &Request<'_>) -> Vec<u8>>;
type Beat = Box<dyn FnMut(u16) -> Vec<u8>>;

/// A device that answers with `answer` and, every `every`, sends what `beat` makes (given
/// the newest request's id).
struct Scripted {
    now: Duration,
    reader: Box<FrameReader<8192>>,
    queue: VecDeque<u8>,
    answer: Answer,
    beat: Option<(Duration, Duration, Beat)>,
    last_id: u16,
    /// Requests received.
    asked: u32,
    /// The link fails once when the clock passes this.
    fail_at: Option<Duration>,
}

impl Scripted {
    fn new(answer: Answer) -> Scripted {
        Scripted {
            now: Duration::ZERO,
            reader: Box::new(FrameReader::new()),
            queue: VecDeque::new(),
            answer,
            beat: None,
            last_id: 0,
            asked: 0,
            fail_at: None,
        }
    }

    fn every(mut self, every: Duration, beat: Beat) -> Scripted {
        self.beat = Some((every, every, beat));
        self
    }
}

impl Transport for Scripted {
    async fn send(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        let mut rest = bytes;
        while !rest.is_empty() {
            let (used, event) = self.reader.feed(rest);
            rest = &rest[used..];
            if let Some(Event::Frame(f)) = event
                && let Ok(req) = f.request()
            {
                self.last_id = f.id;
                self.asked += 1;
                let out = (self.answer)(f.id, &req);
                self.queue.extend(out);
            }
        }
        Ok(())
    }

    async fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, LinkError> {
        // A failure, not a hang, if the host never gives up.
        assert!(
            self.now < Duration::from_secs(3600),
            "the host still waits after an hour of device time"
        );
        if self.fail_at.is_some_and(|t| self.now >= t) {
            self.fail_at = None;
            self.queue.clear();
            return Err(LinkError::Disconnected("the device reset".into()));
        }
        if self.queue.is_empty() {
            let until = self.now + timeout;
            match &mut self.beat {
                Some((every, next, beat)) if *next <= until => {
                    self.now = self.now.max(*next);
                    *next += *every;
                    let out = beat(self.last_id);
                    self.queue.extend(out);
                }
                _ => {
                    self.now = until;
                    return Ok(0);
                }
            }
        }
        let n = self.queue.len().min(buf.len());
        for (slot, b) in buf.iter_mut().zip(self.queue.drain(..n)) {
            *slot = b;
        }
        // The bytes' time on a 115200-baud line.
        self.now += Duration::from_micros(n as u64 * 87);
        Ok(n)
    }

    fn now(&self) -> Duration {
        self.now
    }

    async fn sleep(&mut self, d: Duration) {
        self.now += d;
    }

    fn baud(&self) -> Option<u32> {
        Some(115_200)
    }
}

fn reply(id: u16, r: &Reply) -> Vec<u8> {
    let mut buf = [0u8; 512];
    let n = encode_reply(id, r, &mut buf).expect("a reply fits");
    buf[..n].to_vec()
}

/// What a real (simulated) agent says to hello, and its record.
fn real_agent() -> (Info, Record) {
    let sim = SimDevice::new(DeviceConfig::new(LayoutKind::BytecodeOnly));
    let mut dev = Device::new(SimTransport::new(sim, Virtual), Box::new(NullObserver));
    let info = block_on(dev.hello()).expect("hello");
    let record = block_on(dev.get_record()).expect("record");
    (info, record)
}

/// Answers hello and (if `record`) the record like the real agent; `other` for the rest.
fn agent(record: bool, mut other: impl FnMut(u16, &Request<'_>) -> Vec<u8> + 'static) -> Answer {
    let (info, rec) = real_agent();
    Box::new(move |id, req| match req {
        Request::Hello { .. } => reply(id, &Reply::Info(info.clone())),
        Request::GetRecord if record => reply(id, &Reply::Record(rec)),
        Request::GetRecord => Vec::new(),
        other_req => other(id, other_req),
    })
}

#[derive(Default)]
struct Seen {
    progress: Vec<(u64, u64)>,
    lines: Vec<String>,
}

struct Watch(Rc<RefCell<Seen>>);

impl Observer for Watch {
    fn progress(&mut self, p: &Progress) {
        self.0.borrow_mut().progress.push((p.done, p.total));
    }
    fn device_log(&mut self, line: &str) {
        self.0.borrow_mut().lines.push(line.to_string());
    }
}

#[test]
fn progress_without_end_does_not_hold_a_request() {
    // Every erase is answered by progress every half second, growing, never by Erased.
    let link = Scripted::new(agent(true, |_, _| Vec::new())).every(
        Duration::from_millis(500),
        Box::new({
            let mut done = 0u32;
            move |id| {
                done = done.saturating_add(4096);
                reply(
                    id,
                    &Reply::Progress {
                        done,
                        total: u32::MAX,
                    },
                )
            }
        }),
    );
    let mut dev = Device::new(link, Box::new(NullObserver));
    block_on(dev.hello()).expect("hello");
    let start = dev.now();
    let got = block_on(dev.erase_slot(0x4_0000, 8192, &mut |_, _, _, _| {}));
    let took = dev.now() - start;
    assert_eq!(got, Err(HostError::NoAnswer));
    // 4 sends, each at most its timeout (1.5 s and a frame) plus 2 s per 4 KiB.
    assert!(took < Duration::from_secs(30), "{took:?}");
}

#[test]
fn frames_for_no_request_do_not_hold_a_pipeline() {
    // The slot comparison's checksums are never answered; meanwhile the device sends a
    // valid frame under an id nobody used, ten times a second.
    let (info, _) = real_agent();
    let free = info
        .slots
        .iter()
        .find(|s| s.kind == SlotKind::Bytecode && s.index == 1)
        .expect("bytecode slot 1")
        .addr;
    let link = Scripted::new(agent(true, move |id, req| match req {
        Request::FindBytecodeSlot => reply(id, &Reply::BytecodeSlot(free)),
        _ => Vec::new(),
    }))
    .every(
        Duration::from_millis(100),
        Box::new(|id| {
            reply(
                id.wrapping_add(1000),
                &Reply::Accepted(fota_host::protocol::AcceptOutcome::Accepted),
            )
        }),
    );
    let mut dev = Device::new(link, Box::new(NullObserver));
    let image = fota_host::Image::new("app.bin", vec![7; 10_000]).expect("image");
    let plan = fota_host::Plan::new(image);
    let start = dev.now();
    let got = block_on(fota_host::update(&mut dev, &plan));
    let took = dev.now() - start;
    assert_eq!(got.map(|r| r.outcome), Err(HostError::NoAnswer));
    assert!(took < Duration::from_secs(120), "{took:?}");
}

#[test]
fn a_device_that_never_gives_its_record_does_not_hold_the_outcome_check() {
    let link = Scripted::new(agent(false, |_, _| Vec::new()));
    let mut dev = Device::new(link, Box::new(NullObserver));
    let before = real_agent().1;
    let start = dev.now();
    let got = block_on(fota_host::update::watch_outcome(
        &mut dev,
        &before,
        1,
        0,
        Duration::from_secs(10),
    ));
    let took = dev.now() - start;
    assert_eq!(got, Err(HostError::NoAnswer));
    // The wait, a reboot's time (15 s), and the last round of tries.
    assert!(took < Duration::from_secs(40), "{took:?}");
}

#[test]
fn progress_past_its_total_is_not_shown() {
    let link = Scripted::new(agent(true, |id, req| match req {
        Request::EraseSlot { addr, size } => [
            reply(
                id,
                &Reply::Progress {
                    done: 9000,
                    total: 4096,
                },
            ),
            reply(
                id,
                &Reply::Progress {
                    done: 100,
                    total: 4096,
                },
            ),
            // Not forward: ignored.
            reply(
                id,
                &Reply::Progress {
                    done: 50,
                    total: 4096,
                },
            ),
            reply(
                id,
                &Reply::Erased {
                    addr: *addr,
                    size: *size,
                },
            ),
        ]
        .concat(),
        _ => Vec::new(),
    }));
    let seen = Rc::new(RefCell::new(Seen::default()));
    let mut dev = Device::new(link, Box::new(Watch(seen.clone())));
    block_on(dev.hello()).expect("hello");
    let mut got = Vec::new();
    block_on(dev.erase_slot(0x4_0000, 4096, &mut |_, _, done, total| {
        got.push((done, total))
    }))
    .expect("erased");
    assert_eq!(got, vec![(100, 4096)]);
}

#[test]
fn device_text_is_shown_escaped_and_bounded() {
    let (mut info, _) = real_agent();
    info.name = heapless::String::try_from("agent\u{1b}[2J\u{202e}").expect("fits");
    let name = info.clone();
    let answer: Answer = Box::new(move |id, req| match req {
        Request::Hello { .. } => {
            let mut out = b"\x1b[2K\r[host] verified, accepted\r\n".to_vec();
            out.extend(std::iter::repeat_n(b'A', 6000));
            out.extend(b"\n");
            out.extend(reply(id, &Reply::Info(name.clone())));
            out
        }
        _ => reply(
            id,
            &Reply::Error {
                code: ErrorCode::Unsupported,
                detail: 0,
            },
        ),
    });
    let seen = Rc::new(RefCell::new(Seen::default()));
    let mut dev = Device::new(Scripted::new(answer), Box::new(Watch(seen.clone())));
    let got = block_on(dev.hello()).expect("hello");
    assert_eq!(got.name.as_str(), "agent?[2J?");
    let seen = seen.borrow();
    assert_eq!(
        seen.lines[0], "\\u{1b}[2K\\u{d}[host] verified, accepted",
        "{:?}",
        seen.lines
    );
    let long = &seen.lines[1];
    assert!(long.starts_with(&"A".repeat(512)), "{long}");
    assert!(long.ends_with("… (5488 more characters)"), "{long}");
    assert!(seen.lines.iter().all(|l| !l.contains('\u{1b}')));
}

#[test]
fn a_device_that_calls_every_request_damaged_is_not_flooded_with_requests() {
    let link = Scripted::new(Box::new(|_, _| {
        reply(
            0xFFFF,
            &Reply::Error {
                code: ErrorCode::BadFrame,
                detail: 3,
            },
        )
    }));
    let mut dev = Device::new(link, Box::new(NullObserver));
    let start = dev.now();
    let got = block_on(dev.wait_for_device());
    let took = dev.now() - start;
    assert_eq!(got, Err(HostError::NoAnswer));
    assert!(took < Duration::from_secs(20), "{took:?}");
    // 15 s of waiting, a hello every 400 ms at most.
    let asked = dev.link().asked;
    assert!(asked <= 40, "{asked} requests in {took:?}");
}

#[test]
fn a_device_that_resets_between_two_record_reads_is_waited_for() {
    // On trial at first; the firmware hangs, the watchdog resets the device while the
    // host waits between two reads, and it comes back reverted.
    let (info, before) = real_agent();
    let mut trial = before;
    trial.bc_current = 1;
    let mut reverted = before;
    reverted.bc_current = 0;
    let reads = Rc::new(RefCell::new(0u32));
    let answer: Answer = {
        let reads = reads.clone();
        Box::new(move |id, req| match req {
            Request::Hello { .. } => reply(id, &Reply::Info(info.clone())),
            Request::GetRecord => {
                *reads.borrow_mut() += 1;
                let r = if *reads.borrow() == 1 {
                    trial
                } else {
                    reverted
                };
                reply(id, &Reply::Record(r))
            }
            _ => Vec::new(),
        })
    };
    let mut link = Scripted::new(answer);
    link.fail_at = Some(Duration::from_millis(100));
    let mut dev = Device::new(link, Box::new(NullObserver));
    let got = block_on(fota_host::update::watch_outcome(
        &mut dev,
        &before,
        1,
        0,
        Duration::from_secs(10),
    ));
    assert_eq!(got.map(|(o, _)| o), Ok(fota_host::Outcome::Reverted));
}
