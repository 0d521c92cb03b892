//! A delta update's requests, as the device receives them: no round trip that an answer
//! already given or a request sent ahead makes needless.

use core::time::Duration;
use std::sync::{Arc, Mutex};

use fota_host::codec::Codec;
use fota_host::sim::{SimTransport, Virtual};
use fota_host::update::{Outcome, Plan};
use fota_host::{Device, LinkError, Transport, update};
use fota_protocol::{Event, FrameReader, Op, Request};
use fota_sim::device::{DeviceConfig, LayoutKind, SimDevice};
use futures::executor::block_on;

mod support;

/// What crossed the line: a request sent (`true`) or an answer received, with its op and,
/// for `StreamData`, whether it carried data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    sent: bool,
    op: u8,
    empty_data: bool,
    checksum_addr: Option<u32>,
}

/// The simulated link, recording every frame in order.
struct Tap {
    inner: SimTransport<Virtual>,
    seen: Arc<Mutex<Vec<Seen>>>,
    out: FrameReader<4096>,
    back: FrameReader<4096>,
}

impl Tap {
    fn record(seen: &Mutex<Vec<Seen>>, reader: &mut FrameReader<4096>, bytes: &[u8], sent: bool) {
        let mut data = bytes;
        while !data.is_empty() {
            let (n, event) = reader.feed(data);
            if let Some(Event::Frame(f)) = event {
                let s = if sent {
                    f.request().ok().map(|r| Seen {
                        sent,
                        op: r.op() as u8,
                        empty_data: matches!(r, Request::StreamData { data, .. } if data.is_empty()),
                        checksum_addr: match r {
                            Request::ChecksumSlot { addr, .. } => Some(addr),
                            _ => None,
                        },
                    })
                } else {
                    f.reply().ok().map(|r| Seen {
                        sent,
                        op: r.op() & 0x7F,
                        empty_data: false,
                        checksum_addr: None,
                    })
                };
                seen.lock().expect("log").extend(s);
            }
            data = &data[n..];
        }
    }
}

impl Transport for Tap {
    async fn send(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        Tap::record(&self.seen, &mut self.out, bytes, true);
        self.inner.send(bytes).await
    }
    async fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, LinkError> {
        let n = self.inner.recv(buf, timeout).await?;
        Tap::record(&self.seen, &mut self.back, &buf[..n], false);
        Ok(n)
    }
    fn now(&self) -> Duration {
        self.inner.now()
    }
    async fn sleep(&mut self, d: Duration) {
        self.inner.sleep(d).await
    }
    async fn set_baud(&mut self, baud: u32) -> Result<(), LinkError> {
        self.inner.set_baud(baud).await
    }
    fn baud(&self) -> Option<u32> {
        self.inner.baud()
    }
}

#[test]
fn a_delta_reads_the_record_once_and_ends_its_stream_without_waiting() {
    let mut dev = support::host_with(
        SimDevice::new(DeviceConfig::new(LayoutKind::BytecodeOnly)),
        Box::new(fota_host::NullObserver),
    );
    let v2 = support::program("big-2.bin", "2", 60_000);
    block_on(update(&mut dev, &Plan::new(v2.clone()))).expect("first update");
    let sim = dev.into_link().into_device();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let tap = Tap {
        inner: SimTransport::new(sim, Virtual),
        seen: seen.clone(),
        out: FrameReader::new(),
        back: FrameReader::new(),
    };
    let mut dev = Device::new(tap, Box::new(fota_host::NullObserver));
    let mut plan = Plan::new(support::program("big-3.bin", "3", 60_000));
    plan.bases = vec![v2];
    plan.codec = Codec::Delta;
    plan.restart = false;
    let report = block_on(update(&mut dev, &plan)).expect("delta update");
    assert_eq!(report.outcome, Outcome::Attempted);
    assert!(
        report.sent_bytes < 2000,
        "{} bytes: no delta",
        report.sent_bytes
    );
    let target = report.targets[0].slot.addr;
    let seen = seen.lock().expect("log").clone();
    let sent = |op: Op| seen.iter().filter(|s| s.sent && s.op == op as u8).count();
    // The record at the start (behind Hello) only: the base's slot is found from it
    // (what runs does not change before the restart), and the checked attempt's record
    // follows from it.
    assert_eq!(sent(Op::GetRecord), 1, "{seen:?}");
    assert_eq!(
        report.record.bc_current,
        u32::from(report.targets[0].slot.index),
        "the attempted slot is current"
    );
    // The stream's end and the target's MD5 go out before the last frame is answered.
    let end = seen
        .iter()
        .position(|s| s.sent && s.empty_data)
        .expect("the stream's end");
    let md5 = seen
        .iter()
        .rposition(|s| s.sent && s.checksum_addr == Some(target))
        .expect("the target's MD5");
    let last_data = seen
        .iter()
        .rposition(|s| s.sent && s.op == Op::StreamData as u8 && !s.empty_data)
        .expect("a frame");
    let answers_after = |at: usize| {
        seen[last_data..at]
            .iter()
            .filter(|s| !s.sent && s.op == Op::StreamData as u8)
            .count()
    };
    assert!(end < md5, "{seen:?}");
    assert_eq!(answers_after(md5), 0, "{seen:?}");
    // Nothing asked twice: the stream's end once, the target's MD5 once after it.
    assert_eq!(seen.iter().filter(|s| s.sent && s.empty_data).count(), 1);
    let md5_after = seen[end..]
        .iter()
        .filter(|s| s.sent && s.op == Op::ChecksumSlot as u8)
        .count();
    assert_eq!(md5_after, 1, "{seen:?}");
    // The base's MD5 (of the running slot, protocol 3) goes behind the `Hello`, before
    // any answer: the device hashes it while the opening's answers cross the line, and
    // `StreamBegin`, the erases and the frames then go out in one pipeline without a
    // check of their own.
    let slot = report.targets[0].slot;
    let in_target = |a: u32| (slot.addr..slot.addr + slot.size).contains(&a);
    let base_md5 = seen
        .iter()
        .position(|s| s.sent && s.checksum_addr.is_some_and(|a| !in_target(a)))
        .expect("the base's MD5");
    assert_eq!(
        seen[base_md5].checksum_addr,
        Some(fota_host::protocol::RUNNING_BYTECODE),
        "{seen:?}"
    );
    assert!(seen[..base_md5].iter().all(|s| s.sent), "{seen:?}");
    let begin = seen
        .iter()
        .position(|s| s.sent && s.op == Op::StreamBegin as u8)
        .expect("StreamBegin");
    let frames_before_answers = seen[begin..]
        .iter()
        .take_while(|s| s.sent)
        .filter(|s| s.op == Op::EraseSlot as u8 || s.op == Op::StreamData as u8)
        .count();
    assert!(frames_before_answers >= 2, "{seen:?}");
    // The base asked for once.
    let checks = seen
        .iter()
        .filter(|s| s.sent && s.checksum_addr.is_some_and(|a| !in_target(a)))
        .count();
    assert_eq!(checks, 1, "{seen:?}");
}
