//! The window counted in bytes (`Info` tag 8, docs/PROTOCOL.md 6.2): a host that reads
//! it keeps more requests in flight than `max_in_flight` (short ones count by their
//! bytes) and, the oldest request in flight aside (the one the agent handles, out of its
//! queue), never more bytes than announced; the device's queue holds exactly that behind
//! the request it handles, and takes the next frame out when it replies; a device that
//! does not announce it still gets at most `max_in_flight` requests; a device that
//! announces too small a window is refused; and a sender that ignores the window loses
//! time, never data.

use std::collections::VecDeque;
use std::time::Duration;

use fota_host::sim::{SimTransport, Virtual};
use fota_host::update::Plan;
use fota_host::{Device, HostError, LinkError, NullObserver, Transport, update};
use fota_protocol::{
    Event, FrameReader, NO_ID, Op, Reply, Request, SlotKind, encode_request, frame_len,
};
use fota_sim::device::{DeviceConfig, LayoutKind, SimDevice};
use futures::executor::block_on;

mod support;

/// What a transport saw go out and come back: the most requests unanswered at once, and
/// the most bytes of them the window counts (all but the oldest's).
#[derive(Debug, Default)]
struct Peak {
    requests: usize,
    bytes: usize,
    sent: usize,
}

/// A transport that decodes the frames both ways and counts the host's requests in
/// flight: sent, and no final answer (a reply or an error under their id, or under a
/// later request's id: the agent answers in order) received yet, in the order sent.
struct Counting {
    inner: SimTransport<Virtual>,
    out: FrameReader<8192>,
    back: FrameReader<8192>,
    in_flight: VecDeque<(u16, usize)>,
    peak: Peak,
}

/// The bytes the window counts (docs/PROTOCOL.md 6.2): every request in flight but the
/// oldest, each frame whole.
fn counted(in_flight: &VecDeque<(u16, usize)>) -> usize {
    in_flight.iter().skip(1).map(|&(_, len)| len).sum()
}

impl Counting {
    fn new(device: SimDevice) -> Self {
        Counting {
            inner: SimTransport::new(device, Virtual),
            out: FrameReader::new(),
            back: FrameReader::new(),
            in_flight: VecDeque::new(),
            peak: Peak::default(),
        }
    }
}

impl Transport for Counting {
    async fn send(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        let mut rest = bytes;
        while !rest.is_empty() {
            let (used, event) = self.out.feed(rest);
            if let Some(Event::Frame(f)) = event {
                let len = frame_len(f.body.len() + fota_protocol::FRAME_OVERHEAD);
                self.in_flight.push_back((f.id, len));
                self.peak.sent += 1;
                // Checked as each frame goes out, whole: the host sends its requests one
                // by one.
                self.peak.requests = self.peak.requests.max(self.in_flight.len());
                self.peak.bytes = self.peak.bytes.max(counted(&self.in_flight));
            }
            rest = &rest[used..];
        }
        self.inner.send(bytes).await
    }

    async fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, LinkError> {
        let n = self.inner.recv(buf, timeout).await?;
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let (used, event) = self.back.feed(rest);
            if let Some(Event::Frame(f)) = event
                && f.op != Op::Progress.reply()
                && f.id != NO_ID
                && let Some(pos) = self.in_flight.iter().position(|&(id, _)| id == f.id)
            {
                // This one and every one sent before it are done (or lost).
                self.in_flight.drain(..=pos);
            }
            rest = &rest[used..];
        }
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

fn config(tag_8: bool) -> DeviceConfig {
    let mut cfg = DeviceConfig::new(LayoutKind::BytecodeOnly);
    cfg.latency_ns = 16_000_000;
    cfg.announce_rx_window = tag_8;
    // The long request the queue fills behind: an erase by sectors (1.44 s for 128 KiB;
    // by blocks it would end before the line brings a window at 115200 baud).
    cfg.use_block_erases = false;
    // ...that the agent waits for (an erase in the background would not hold it up).
    cfg.erase_suspend = false;
    cfg
}

/// A whole update of a 96 KiB program at 921600 baud (negotiated), 16 ms each way.
fn update_with(cfg: DeviceConfig) -> (Result<fota_host::update::Report, HostError>, Peak, u64) {
    let mut dev = Device::new(Counting::new(SimDevice::new(cfg)), Box::new(NullObserver));
    let mut plan = Plan::new(support::program("p.bin", "2", 96 * 1024));
    plan.restart = false;
    let result = block_on(async {
        dev.hello().await?;
        dev.negotiate_baud(&[921_600]).await?;
        update(&mut dev, &plan).await
    });
    let overruns = dev.link().inner.device().overruns();
    let peak = std::mem::take(&mut dev.link().peak);
    (result, peak, overruns)
}

#[test]
fn with_tag_8_the_host_keeps_more_requests_in_flight_within_the_announced_bytes() {
    within_the_window(config(true));
    // A queue one byte short of five blocks and an erase: a host that counted one byte
    // more than the rule lets in would send a run of them, and fail here.
    let mut cfg = config(true);
    cfg.rx_queue_bytes = Some(5 * fota_agent::RX_FRAME + 18 - 1);
    within_the_window(cfg);
}

fn within_the_window(cfg: DeviceConfig) {
    let window = cfg.rx_window();
    assert!(
        window < 6 * fota_agent::RX_FRAME,
        "no room for a sixth block"
    );
    let (result, peak, overruns) = update_with(cfg);
    let report = result.expect("the update with tag 8");
    assert!(report.sent_bytes > 0, "{report:?}");
    assert!(
        peak.requests > 5,
        "only {} requests in flight with a window of {window} bytes",
        peak.requests
    );
    assert!(
        peak.bytes <= window,
        "{} bytes in flight behind the oldest, {window} announced",
        peak.bytes
    );
    // The window is used to its last bytes behind the request being handled: more than
    // a host that also counted that one would send.
    assert!(
        peak.bytes > window - fota_agent::RX_FRAME,
        "only {} bytes counted at most",
        peak.bytes
    );
    assert_eq!(overruns, 0, "the device lost bytes");
}

#[test]
fn the_count_leaves_out_the_oldest_request_by_its_own_bytes_only() {
    let q = |lens: &[usize]| -> VecDeque<(u16, usize)> {
        lens.iter()
            .enumerate()
            .map(|(i, &l)| (i as u16, l))
            .collect()
    };
    // An erase being handled and the blocks behind it: the blocks count whole.
    assert_eq!(counted(&q(&[18, 1042, 1042, 1042, 1042, 1042, 144])), 5354);
    assert_eq!(counted(&q(&[18, 1042, 1042, 1042, 1042, 1042, 145])), 5355);
    assert_eq!(counted(&q(&[1042])), 0);
    assert_eq!(counted(&q(&[])), 0);
}

#[test]
fn without_tag_8_the_host_keeps_to_max_in_flight_and_the_update_works() {
    let (result, peak, overruns) = update_with(config(false));
    let report = result.expect("the update without tag 8");
    assert!(report.sent_bytes > 0, "{report:?}");
    assert!(peak.sent > 100, "{} requests sent", peak.sent);
    assert_eq!(peak.requests, 5, "max_in_flight is 5: {peak:?}");
    assert_eq!(overruns, 0, "the device lost bytes");
}

#[test]
fn a_window_smaller_than_the_largest_request_is_refused() {
    // The simulated device's own Info, with tag 8 set to `bytes`.
    let info_with = |bytes: u32| {
        let mut dev = support::host(SimDevice::new(config(true)));
        let mut info = block_on(dev.hello()).expect("hello");
        info.rx_window = Some(bytes);
        support::info_only(info)
    };
    // One full WriteSlot frame is the least a queue must hold: 1 042 bytes.
    let mut fits = info_with(fota_agent::RX_FRAME as u32);
    let info = block_on(fits.hello()).expect("a window of one frame is fine");
    assert_eq!(info.rx_window, Some(fota_agent::RX_FRAME as u32));
    let mut short = info_with(fota_agent::RX_FRAME as u32 - 1);
    let err = block_on(short.hello()).expect_err("too small a window");
    assert!(
        matches!(&err, HostError::Protocol(m) if m.contains("receive window")),
        "the error names the field: {err}"
    );
}

/// A sender that ignores the window: while the agent erases 32 sectors (1.4 s), it sends
/// three times the announced bytes of writes. The device drops what does not fit, its
/// agent answers what arrives damaged (`BadFrame`, id 0xFFFF) or not at all, nothing is
/// programmed from a damaged frame, and it answers the next request as before.
#[test]
fn more_bytes_than_announced_are_dropped_without_harm() {
    let cfg = config(true);
    let window = cfg.rx_window();
    let mut sim = SimDevice::new(cfg);
    let slot = *sim
        .agent_config()
        .slots
        .iter()
        .find(|s| s.kind == SlotKind::Bytecode && s.index == 1)
        .expect("bytecode slot 1");
    let mut wire = Vec::new();
    let mut frame = [0u8; 2048];
    let mut push = |id: u16, req: &Request<'_>, wire: &mut Vec<u8>| {
        let n = encode_request(id, req, &mut frame).expect("fits");
        wire.extend_from_slice(&frame[..n]);
    };
    push(
        1,
        &Request::EraseSlot {
            addr: slot.addr,
            size: 128 * 1024,
        },
        &mut wire,
    );
    let data = [0x5Au8; 1024];
    let blocks = 3 * window / fota_agent::RX_FRAME;
    for k in 0..blocks {
        // Blocks within the first two of the sectors erased.
        let addr = slot.addr + (k as u32 % 8) * 1024;
        push(
            2 + k as u16,
            &Request::WriteSlot { addr, data: &data },
            &mut wire,
        );
    }
    assert!(wire.len() > 3 * window - fota_agent::RX_FRAME);
    sim.host_send(&wire);
    let until = sim.now() + 6_000_000_000;
    sim.run_until(until, false);
    assert!(
        sim.overruns() > 0,
        "the flood must overflow the device's queue"
    );
    let answered = answers(&sim.host_take());
    assert!(
        matches!(answered.first(), Some((1, Reply::Erased { .. }))),
        "the erase is answered first: {answered:?}"
    );
    assert!(
        answered.len() < blocks + 1,
        "some requests were lost: {} answers for {} requests",
        answered.len(),
        blocks + 1
    );
    // Whatever was programmed is a block's data at a block's place, within the sector
    // erased; the rest of the slot holds what it held.
    let flash = sim.flash_bytes();
    let sector = &flash[slot.addr as usize..slot.addr as usize + 8192];
    for block in sector.chunks(1024) {
        assert!(
            block.iter().all(|&b| b == 0x5A) || block.iter().all(|&b| b == 0xFF),
            "a block is whole or untouched"
        );
    }
    // The device still answers.
    let mut hello = Vec::new();
    push(
        0x100,
        &Request::Hello {
            version: fota_protocol::PROTOCOL_VERSION,
        },
        &mut hello,
    );
    sim.host_send(&hello);
    let until = sim.now() + 200_000_000;
    sim.run_until(until, false);
    let back = sim.host_take();
    let mut reader = FrameReader::<8192>::new();
    let mut rest = &back[..];
    let mut info = None;
    while !rest.is_empty() {
        let (used, event) = reader.feed(rest);
        if let Some(Event::Frame(f)) = event
            && f.id == 0x100
        {
            info = Some(Reply::parse(f.op, f.body).expect("Info"));
        }
        rest = &rest[used..];
    }
    assert!(matches!(info, Some(Reply::Info(_))), "{info:?}");
}

/// Replies decoded from what reached the host: (id, reply), Progress left out.
fn answers(bytes: &[u8]) -> Vec<(u16, Reply)> {
    let mut reader = FrameReader::<8192>::new();
    let mut rest = bytes;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (used, event) = reader.feed(rest);
        if let Some(Event::Frame(f)) = event {
            let reply = Reply::parse(f.op, f.body).expect("a well-formed reply");
            if !matches!(reply, Reply::Progress { .. }) {
                out.push((f.id, reply));
            }
        }
        rest = &rest[used..];
    }
    out
}

/// A `WriteSlot` frame of `data` at `addr` as it goes on the wire.
fn write_frame(id: u16, addr: u32, data: &[u8]) -> Vec<u8> {
    let mut frame = [0u8; 2048];
    let n = encode_request(id, &Request::WriteSlot { addr, data }, &mut frame).expect("fits");
    frame[..n].to_vec()
}

/// An `EraseSlot` of 32 sectors (1.4 s: the agent is busy with it while the blocks
/// behind it arrive), then `WriteSlot` frames of `behind` bytes on the wire in all, no
/// latency: returns the device, the erase's first address and the ids of the writes.
fn erase_then_fill(behind: usize) -> (SimDevice, u32, u16) {
    let mut cfg = config(true);
    cfg.latency_ns = 0;
    let mut sim = SimDevice::new(cfg);
    let slot = *sim
        .agent_config()
        .slots
        .iter()
        .find(|s| s.kind == SlotKind::Bytecode && s.index == 1)
        .expect("bytecode slot 1");
    let mut wire = [0u8; 64];
    let n = encode_request(
        1,
        &Request::EraseSlot {
            addr: slot.addr,
            size: 128 * 1024,
        },
        &mut wire,
    )
    .expect("fits");
    sim.host_send(&wire[..n]);
    let data = [0x5Au8; 1024];
    let mut left = behind;
    let mut id = 2u16;
    while left > 0 {
        // Whole blocks, then one short write whose frame takes exactly what is left.
        let full = write_frame(id, slot.addr + 1024 * u32::from(id - 2), &data);
        let frame = if full.len() <= left {
            full
        } else {
            (1..1024)
                .map(|len| write_frame(id, slot.addr + 1024 * u32::from(id - 2), &data[..len]))
                .find(|f| f.len() == left)
                .expect("a write of that many bytes on the wire")
        };
        left -= frame.len();
        sim.host_send(&frame);
        id += 1;
    }
    (sim, slot.addr, id)
}

/// The bound is exact: behind the request the agent handles, its queue holds the bytes
/// `Info` announces, and loses what comes beyond them.
#[test]
fn the_queue_holds_the_announced_bytes_behind_the_request_being_handled() {
    let window = config(true).rx_window();
    let (mut sim, _, next) = erase_then_fill(window);
    let until = sim.now() + 3_000_000_000;
    sim.run_until(until, false);
    assert_eq!(sim.overruns(), 0, "the window's bytes fit");
    let got = answers(&sim.host_take());
    assert_eq!(got.len(), usize::from(next - 1), "{got:?}");
    assert!(
        got.iter().all(|(_, r)| !matches!(r, Reply::Error { .. })),
        "{got:?}"
    );

    let (mut sim, _, _) = erase_then_fill(window + 1);
    let until = sim.now() + 3_000_000_000;
    sim.run_until(until, false);
    assert_eq!(sim.overruns(), 1, "one byte more than announced is lost");
}

/// The agent's side of the rule: once it has sent a reply, the next request is out of its
/// queue before the host can have seen that reply. With the queue full behind an erase
/// and no latency, the host sends a full block the moment the erase's answer has arrived
/// (the oldest request in flight is then the first block, which it no longer counts):
/// nothing is lost, and every request is answered.
#[test]
fn the_agent_takes_the_next_frame_out_of_its_queue_when_it_replies() {
    let window = config(true).rx_window();
    let (mut sim, addr, next) = erase_then_fill(window);
    let mut back = Vec::new();
    let end = sim.now() + 3_000_000_000;
    let erased = loop {
        let now = sim.run_until(end, true);
        back.extend(sim.host_take());
        if let Some((id, reply)) = answers(&back).first() {
            break (*id, reply.clone());
        }
        assert!(now < end, "no answer to the erase");
    };
    assert!(matches!(erased, (1, Reply::Erased { .. })), "{erased:?}");
    // Behind the first block: four blocks and the short write, 1 042 bytes below the window.
    let block = write_frame(next, addr + 1024 * 6, &[0x5A; 1024]);
    assert_eq!(block.len(), fota_agent::RX_FRAME);
    sim.host_send(&block);
    let until = sim.now() + 1_000_000_000;
    sim.run_until(until, false);
    back.extend(sim.host_take());
    assert_eq!(sim.overruns(), 0, "the device lost bytes");
    let got = answers(&back);
    assert_eq!(got.len(), usize::from(next), "{got:?}");
}
