//! The bad-input catalogue (`docs/BAD_INPUTS.md`): each test feeds one bad input and
//! asserts both what the user gets (the error, its message and help, or the device's
//! `ErrorCode`) and that flash and record are as they were, but for what the request was
//! allowed to touch.

/// The catalogue check, shared with fota-image's bad_files.rs.
#[path = "../../fota-image/tests/support/catalogue.rs"]
mod catalogue;

use fota_host::protocol::Layout as _;
use std::time::Duration;

use fota_host::protocol::{
    ErrorCode, Event, FrameReader, Op, Record, RecordUpdate, Reply, Request, SlotKind,
    encode_request, frame_len,
};
use fota_host::sim::{SimTransport, Virtual};
use fota_host::update::{Outcome, Plan, SlotChoice};
use fota_host::{Device, HostError, Image, LinkError, NullObserver, Transport, update};
use fota_sim::device::{DeviceConfig, DeviceFlash, LayoutKind, SimDevice};
use fota_sim::flash::FlashTiming;
use fota_sim::images;
use futures::executor::block_on;

mod support;

/// The agent's longest request payload (`fota_agent::RX_PAYLOAD`): 1 024 data bytes of a
/// write, its address, and the id, op and CRC.
const RX_PAYLOAD: u32 = 1035;

fn config(layout: LayoutKind) -> DeviceConfig {
    support::small_config(layout)
}

/// A device with small slots: VM "zvm" 1.0 and bytecode "blink" 1 in slot 0, a stale
/// image over the first 6 KiB of bytecode slot 1 (so an update must erase), booted.
fn sim(cfg: DeviceConfig) -> SimDevice {
    let stale = images::sample_image(SlotKind::Bytecode, "blink", "0", true, 6000);
    let flash = support::instant_flash(&cfg, &[(SlotKind::Bytecode, 1, &stale)]);
    SimDevice::from_flash(cfg, flash)
}

use support::{BC_SLOT, Host, VM_SLOT};

fn host() -> Host {
    host_for(config(LayoutKind::BytecodeOnly))
}

fn host_for(cfg: DeviceConfig) -> Host {
    support::host(sim(cfg))
}

fn new_image() -> Image {
    let bytes = images::sample_image(SlotKind::Bytecode, "blink", "2", true, 6000);
    Image::new("blink-2.bin", bytes).expect("not empty")
}

/// Another image than [`new_image`] (a second update, not a resend of the first).
fn other_image() -> Image {
    let bytes = images::sample_image(SlotKind::Bytecode, "blink", "3", true, 5000);
    Image::new("blink-3.bin", bytes).expect("not empty")
}

/// Flash bytes and the record, to compare before and after.
#[derive(Debug, Clone, PartialEq)]
struct State {
    flash: Vec<u8>,
    record: Option<Record>,
}

fn state<T: Transport>(dev: &mut Device<T>, sim: impl Fn(&mut T) -> &SimDevice) -> State {
    let s = sim(dev.link());
    State {
        flash: s.flash_bytes().to_vec(),
        record: s.record(),
    }
}

fn snap(dev: &mut Host) -> State {
    state(dev, |l| l.device())
}

fn addr(dev: &mut Host, kind: SlotKind, index: u32) -> u32 {
    dev.link()
        .device()
        .agent_config()
        .slot(kind, index)
        .expect("slot")
        .addr
}

/// Asserts the two states are equal outside `allowed` (flash offsets) and the record
/// is the same.
fn assert_same_outside(before: &State, after: &State, allowed: core::ops::Range<usize>) {
    assert_eq!(before.record, after.record, "the record changed");
    for (i, (a, b)) in before.flash.iter().zip(&after.flash).enumerate() {
        assert!(a == b || allowed.contains(&i), "flash changed at {i:#x}");
    }
}

/// The user-facing text of an error: message and help, both non-empty.
fn texts(e: &HostError) -> (String, String) {
    let (msg, help) = (e.to_string(), e.help());
    assert!(!msg.is_empty() && !help.is_empty(), "{e:?}");
    println!("{e:?}\n  message: {msg}\n  help: {help}");
    (msg, help)
}

/// Asserts a refusal with `code` for `op`, and returns it.
fn refused(result: Result<impl std::fmt::Debug, HostError>, op: Op, code: ErrorCode) -> u32 {
    match result {
        Err(HostError::Refused {
            op: o,
            code: c,
            detail,
        }) if o == op && c == code => {
            let e = HostError::Refused { op, code, detail };
            let (msg, _) = texts(&e);
            assert!(msg.contains(code.message()), "{msg}");
            detail
        }
        other => panic!("expected {op:?} refused with {code:?}, got {other:?}"),
    }
}

/// Sends raw bytes and collects the reply frames the device sends within `wait`.
fn raw(dev: &mut Host, bytes: &[u8], wait: Duration) -> Vec<(u16, Reply)> {
    let link = dev.link();
    block_on(link.send(bytes)).expect("send");
    let mut reader = FrameReader::<8192>::new();
    let mut replies = Vec::new();
    let until = link.now() + wait;
    let mut buf = [0u8; 4096];
    while link.now() < until {
        let n = block_on(link.recv(&mut buf, Duration::from_millis(50))).expect("recv");
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let (used, ev) = reader.feed(rest);
            rest = &rest[used..];
            if let Some(Event::Frame(f)) = ev {
                replies.push((f.id, f.reply().expect("a reply")));
            }
        }
    }
    replies
}

fn frame(id: u16, req: &Request<'_>) -> Vec<u8> {
    let mut out = vec![0u8; frame_len(4096)];
    let n = encode_request(id, req, &mut out).expect("fits");
    out.truncate(n);
    out
}

/// A frame with any op and body and a correct CRC (COBS by hand).
fn raw_frame(id: u16, op: u8, body: &[u8]) -> Vec<u8> {
    static CRC: crc_free::Crc = crc_free::Crc;
    let mut payload = id.to_le_bytes().to_vec();
    payload.push(op);
    payload.extend_from_slice(body);
    let crc = CRC.checksum(&payload);
    payload.extend_from_slice(&crc.to_le_bytes());
    let mut out = vec![0u8];
    out.extend(cobs_encode(&payload));
    out.push(0);
    out
}

/// CRC-32/ISO-HDLC by hand (`crc` is not a dependency of this crate's tests).
mod crc_free {
    pub struct Crc;
    impl Crc {
        pub fn checksum(&self, bytes: &[u8]) -> u32 {
            let mut crc = 0xFFFF_FFFFu32;
            for &b in bytes {
                crc ^= u32::from(b);
                for _ in 0..8 {
                    crc = if crc & 1 != 0 {
                        (crc >> 1) ^ 0xEDB8_8320
                    } else {
                        crc >> 1
                    };
                }
            }
            !crc
        }
    }
}

fn cobs_encode(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8];
    let mut code_at = 0;
    let mut code = 1u8;
    for &b in data {
        if b == 0 {
            out[code_at] = code;
            code_at = out.len();
            out.push(0);
            code = 1;
        } else {
            out.push(b);
            code += 1;
            if code == 0xFF {
                out[code_at] = code;
                code_at = out.len();
                out.push(0);
                code = 1;
            }
        }
    }
    out[code_at] = code;
    out
}

// ---- the catalogue -------------------------------------------------------------------------

#[test]
fn empty_image() {
    let mut dev = host();
    let before = snap(&mut dev);
    let err = Image::new("empty.bin", Vec::new()).expect_err("an empty image is refused");
    assert_eq!(err, HostError::EmptyImage("empty.bin".into()));
    let (msg, help) = texts(&err);
    assert_eq!(msg, "the image empty.bin is empty");
    assert!(help.contains("not an empty file"), "{help}");
    // Refused before the device is contacted.
    assert_eq!(dev.stats().frames_sent, 0);
    assert_eq!(snap(&mut dev), before);
}

#[test]
fn image_larger_than_the_slot() {
    let mut dev = host();
    let before = snap(&mut dev);
    let big = Image::new("big.bin", vec![0x42; BC_SLOT as usize + 1]).expect("image");
    let err = block_on(update(&mut dev, &Plan::new(big))).expect_err("too large");
    assert_eq!(
        err,
        HostError::ImageTooLarge {
            name: "big.bin".into(),
            size: BC_SLOT as usize + 1,
            slot_size: BC_SLOT,
        }
    );
    let (msg, help) = texts(&err);
    assert!(
        msg.contains("12289 bytes, larger than the 12288-byte slot"),
        "{msg}"
    );
    assert!(help.contains("smaller image"), "{help}");
    assert_eq!(snap(&mut dev), before);
    // The device refuses the same on its own: an erase past the slot end. Bytecode slot
    // 1 is the last slot, so past its end is the record area.
    let bc1 = addr(&mut dev, SlotKind::Bytecode, 1);
    let record = dev.link().device().agent_config().record_addr;
    let detail = refused(
        block_on(dev.erase_slot(bc1, BC_SLOT + 1, &mut |_, _, _, _| {})),
        Op::EraseSlot,
        ErrorCode::RecordArea,
    );
    assert_eq!(detail, record);
    assert_eq!(snap(&mut dev), before);
    // On the VM+bytecode layout, VM slot 1 is followed by bytecode slot 1: BadLength.
    let mut dev = host_for(config(LayoutKind::VmAndBytecode));
    let before = snap(&mut dev);
    let vm1 = addr(&mut dev, SlotKind::Vm, 1);
    let detail = refused(
        block_on(dev.erase_slot(vm1, VM_SLOT + 1, &mut |_, _, _, _| {})),
        Op::EraseSlot,
        ErrorCode::BadLength,
    );
    assert_eq!(detail, VM_SLOT + 1);
    assert_eq!(snap(&mut dev), before);
}

#[test]
fn current_or_last_working_slot() {
    let mut dev = host();
    let before = snap(&mut dev);
    // The current slot, chosen by the user.
    let mut plan = Plan::new(new_image());
    plan.bytecode_slot = SlotChoice::Index(0);
    let err = block_on(update(&mut dev, &plan)).expect_err("slot 0 is current");
    assert!(
        matches!(err, HostError::BadSlot { index: 0, .. }),
        "{err:?}"
    );
    let (msg, help) = texts(&err);
    assert!(msg.contains("it holds the current bytecode"), "{msg}");
    assert!(help.contains("name a free slot"), "{help}");
    assert_eq!(snap(&mut dev), before);
    // The device refuses to erase or write it, whatever the host says.
    let bc0 = addr(&mut dev, SlotKind::Bytecode, 0);
    let detail = refused(
        block_on(dev.erase_slot(bc0, 4096, &mut |_, _, _, _| {})),
        Op::EraseSlot,
        ErrorCode::SlotInUse,
    );
    assert_eq!(detail, bc0);
    refused(
        block_on(dev.write_slot(bc0 + 8192, &[0; 16])),
        Op::WriteSlot,
        ErrorCode::SlotInUse,
    );
    let e = HostError::Refused {
        op: Op::EraseSlot,
        code: ErrorCode::SlotInUse,
        detail,
    };
    assert!(
        e.help()
            .contains("current and last working slots are protected")
    );
    assert_eq!(snap(&mut dev), before);

    // The last working slot: after an attempt of slot 1 (not restarted), slot 0 is the
    // last working one.
    let mut plan = Plan::new(new_image());
    plan.restart = false;
    let report = block_on(update(&mut dev, &plan)).expect("attempt");
    assert_eq!(report.outcome, Outcome::Attempted);
    let before = snap(&mut dev);
    let mut plan = Plan::new(other_image());
    plan.bytecode_slot = SlotChoice::Index(0);
    let err = block_on(update(&mut dev, &plan)).expect_err("slot 0 is last working");
    let (msg, _) = texts(&err);
    assert!(msg.contains("it holds the last working bytecode"), "{msg}");
    refused(
        block_on(dev.erase_slot(bc0, 4096, &mut |_, _, _, _| {})),
        Op::EraseSlot,
        ErrorCode::SlotInUse,
    );
    assert_eq!(snap(&mut dev), before);
}

#[test]
fn write_into_the_record_area_or_across_a_slot_end() {
    let mut dev = host();
    let before = snap(&mut dev);
    let record = dev.link().device().agent_config().record_addr;
    let detail = refused(
        block_on(dev.write_slot(record, &[0; 4])),
        Op::WriteSlot,
        ErrorCode::RecordArea,
    );
    assert_eq!(detail, record);
    refused(
        block_on(dev.erase_slot(record, 4096, &mut |_, _, _, _| {})),
        Op::EraseSlot,
        ErrorCode::RecordArea,
    );
    // The last bytecode slot ends where the record area starts: a write across its end
    // touches the record area.
    refused(
        block_on(dev.write_slot(record - 4, &[0; 8])),
        Op::WriteSlot,
        ErrorCode::RecordArea,
    );
    // Across the end of a slot into the next slot.
    let bc1 = addr(&mut dev, SlotKind::Bytecode, 1);
    let detail = refused(
        block_on(dev.write_slot(bc1 - 4, &[0; 8])),
        Op::WriteSlot,
        ErrorCode::BadLength,
    );
    assert_eq!(detail, 8);
    let e = HostError::Refused {
        op: Op::WriteSlot,
        code: ErrorCode::BadLength,
        detail,
    };
    assert!(e.help().contains("bug in the tool"), "{}", e.help());
    // Outside every slot: past the end of the layout.
    let end = record + dev.link().device().agent_config().record_size;
    refused(
        block_on(dev.write_slot(end, &[0; 4])),
        Op::WriteSlot,
        ErrorCode::OutOfSlot,
    );
    assert_eq!(snap(&mut dev), before);
}

#[test]
fn misaligned_write() {
    let mut dev = host();
    let before = snap(&mut dev);
    let bc1 = addr(&mut dev, SlotKind::Bytecode, 1);
    let detail = refused(
        block_on(dev.write_slot(bc1 + 2, &[0; 4])),
        Op::WriteSlot,
        ErrorCode::Misaligned,
    );
    assert_eq!(detail, bc1 + 2);
    // Any length is a valid write (the agent holds a partial unit until the next write);
    // a start inside a unit that no earlier write left partly written is not.
    refused(
        block_on(dev.write_slot(bc1 + 6, &[0; 3])),
        Op::WriteSlot,
        ErrorCode::Misaligned,
    );
    refused(
        block_on(dev.erase_slot(bc1 + 4, 4096, &mut |_, _, _, _| {})),
        Op::EraseSlot,
        ErrorCode::Misaligned,
    );
    // A write longer than the agent's block (max_write) but within the frame limit is
    // not possible: 1024 bytes of data is the most a frame carries. An empty one:
    refused(
        block_on(dev.write_slot(bc1, &[])),
        Op::WriteSlot,
        ErrorCode::BadLength,
    );
    assert_eq!(snap(&mut dev), before);
}

#[test]
fn unknown_command() {
    let mut dev = host();
    let before = snap(&mut dev);
    let replies = raw(
        &mut dev,
        &raw_frame(0x7001, 0x42, &[1, 2, 3]),
        Duration::from_millis(300),
    );
    assert_eq!(
        replies,
        [(
            0x7001,
            Reply::Error {
                code: ErrorCode::UnknownCommand,
                detail: 0x42
            }
        )]
    );
    assert_eq!(
        ErrorCode::UnknownCommand.message(),
        "the agent does not know this command"
    );
    // A known command with a body that does not parse: BadRequest.
    let replies = raw(
        &mut dev,
        &raw_frame(0x7002, Op::EraseSlot as u8, &[1, 2, 3]),
        Duration::from_millis(300),
    );
    assert_eq!(
        replies,
        [(
            0x7002,
            Reply::Error {
                code: ErrorCode::BadRequest,
                detail: Op::EraseSlot as u32
            }
        )]
    );
    assert_eq!(snap(&mut dev), before);
    // The link still works.
    block_on(dev.get_record()).expect("record");
}

/// A request longer than the agent takes: the agent drops it and answers `FrameTooLong`
/// (detail: its limit) under id 0xFFFF, whatever the bytes (a frame longer than its
/// receive buffer gives it no id to answer under).
#[test]
fn oversize_frame() {
    let mut dev = host();
    let before = snap(&mut dev);
    let bc1 = addr(&mut dev, SlotKind::Bytecode, 1);
    let data = vec![0x11; 2048];
    let bytes = frame(
        0x7003,
        &Request::WriteSlot {
            addr: bc1,
            data: &data,
        },
    );
    let replies = raw(&mut dev, &bytes, Duration::from_millis(500));
    assert_eq!(
        replies,
        [(
            0xFFFF,
            Reply::Error {
                code: ErrorCode::FrameTooLong,
                detail: RX_PAYLOAD
            }
        )]
    );
    assert_eq!(snap(&mut dev), before);
    block_on(dev.get_record()).expect("the link still works");
}

/// The same through the host API: a block larger than the agent takes must end in a
/// clear refusal (`FrameTooLong`, whose detail says the limit), not in a retry loop that
/// ends `NoAnswer` ("check the baud rate").
#[test]
fn oversize_frame_through_the_host_api_is_refused_clearly() {
    let mut dev = host();
    let before = snap(&mut dev);
    let bc1 = addr(&mut dev, SlotKind::Bytecode, 1);
    let result = block_on(dev.write_slot(bc1, &[0x11; 2048]));
    assert_eq!(snap(&mut dev), before);
    let detail = refused(result, Op::WriteSlot, ErrorCode::FrameTooLong);
    assert_eq!(detail, RX_PAYLOAD);
}

#[test]
fn bad_crc() {
    let mut dev = host();
    let before = snap(&mut dev);
    let bc1 = addr(&mut dev, SlotKind::Bytecode, 1);
    // An erase of a free slot, with its CRC damaged: it must not run.
    let mut bytes = frame(
        0x7004,
        &Request::EraseSlot {
            addr: bc1,
            size: 4096,
        },
    );
    let n = bytes.len();
    bytes[n - 2] ^= 0x01; // inside the CRC, before the closing zero
    let replies = raw(&mut dev, &bytes, Duration::from_millis(300));
    assert_eq!(
        replies,
        [(
            0xFFFF,
            Reply::Error {
                code: ErrorCode::BadFrame,
                detail: 3
            }
        )]
    );
    assert_eq!(snap(&mut dev), before);
    let e = HostError::Refused {
        op: Op::EraseSlot,
        code: ErrorCode::BadFrame,
        detail: 3,
    };
    assert!(e.help().contains("lower baud rate or a better cable"));

    // The host sends a request the link damaged again by itself: the erase it sends
    // arrives with a bad CRC once, and still completes, counted as resent.
    let mut dev = Device::new(
        DamageOnce {
            inner: SimTransport::new(sim(config(LayoutKind::BytecodeOnly)), Virtual),
            armed: false,
            damaged: 0,
        },
        Box::new(NullObserver),
    );
    block_on(dev.hello()).expect("hello");
    let bc1 = {
        let info = dev.info().expect("info").clone();
        info.slot(SlotKind::Bytecode, 1).expect("slot 1").addr
    };
    dev.link().armed = true;
    let erased = block_on(dev.erase_slot(bc1, 4096, &mut |_, _, _, _| {}));
    assert_eq!(erased.expect("erase after a resend"), (bc1, 4096));
    assert_eq!(dev.link().damaged, 1, "one frame was damaged");
    assert_eq!(dev.stats().resent, 1, "{:?}", dev.stats());
    assert_eq!(dev.stats().bad_frames, 1, "{:?}", dev.stats());
}

/// A link that damages the CRC of the next frame the host sends once armed.
struct DamageOnce {
    inner: SimTransport<Virtual>,
    armed: bool,
    damaged: u32,
}

impl Transport for DamageOnce {
    async fn send(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        if std::mem::take(&mut self.armed) && bytes.len() > 2 {
            let mut bad = bytes.to_vec();
            let n = bad.len();
            bad[n - 2] ^= 0x01; // inside the CRC, before the closing zero
            self.damaged += 1;
            return self.inner.send(&bad).await;
        }
        self.inner.send(bytes).await
    }
    async fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, LinkError> {
        self.inner.recv(buf, timeout).await
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
fn garbage_and_text_between_frames() {
    let mut dev = host();
    let before = snap(&mut dev);
    // Log text, noise with and without zeros, a lone delimiter, a half frame.
    let bc1 = addr(&mut dev, SlotKind::Bytecode, 1);
    let half = frame(
        0x7005,
        &Request::EraseSlot {
            addr: bc1,
            size: 4096,
        },
    );
    let mut junk = b"boot: hello from the firmware\r\n".to_vec();
    junk.extend([0x00, 0x13, 0x37, 0xFF, 0x00, 0x00, 0x02, 0x01]);
    junk.extend_from_slice(&half[..half.len() / 2]);
    junk.extend((0..300u32).map(|i| (i * 7 + 3) as u8));
    let replies = raw(&mut dev, &junk, Duration::from_millis(500));
    // Damaged chunks are answered as such; nothing else happens.
    assert!(
        replies.iter().all(|(id, r)| *id == 0xFFFF
            && matches!(
                r,
                Reply::Error {
                    code: ErrorCode::BadFrame | ErrorCode::FrameTooLong,
                    ..
                }
            )),
        "{replies:?}"
    );
    assert_eq!(snap(&mut dev), before);
    // Then a whole update goes through.
    let report = block_on(update(&mut dev, &Plan::new(new_image()))).expect("update");
    assert_eq!(report.outcome, Outcome::Accepted);
}

/// A transport that unplugs the cable right after sending a request of one kind, or
/// resets the device after the n-th request of one kind.
struct Trip {
    inner: SimTransport<Virtual>,
    op: u8,
    nth: u32,
    seen: u32,
    reset_instead: bool,
}

fn op_of(bytes: &[u8]) -> Option<u8> {
    let mut reader = FrameReader::<4096>::new();
    let (_, ev) = reader.feed(bytes);
    match ev {
        Some(Event::Frame(f)) => Some(f.op),
        _ => None,
    }
}

impl Transport for Trip {
    async fn send(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        self.inner.send(bytes).await?;
        if op_of(bytes) == Some(self.op) {
            self.seen += 1;
            if self.seen == self.nth {
                if self.reset_instead {
                    self.inner.device_mut().reset();
                } else {
                    self.inner.disconnect();
                }
            }
        }
        Ok(())
    }
    async fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, LinkError> {
        self.inner.recv(buf, timeout).await
    }
    fn now(&self) -> Duration {
        self.inner.now()
    }
    async fn sleep(&mut self, d: Duration) {
        self.inner.sleep(d).await;
    }
    async fn reconnect(&mut self) -> Result<(), LinkError> {
        self.inner.reconnect().await
    }
}

fn trip_host(op: Op, nth: u32, reset_instead: bool) -> Device<Trip> {
    let link = Trip {
        inner: SimTransport::new(sim(config(LayoutKind::BytecodeOnly)), Virtual),
        op: op as u8,
        nth,
        seen: 0,
        reset_instead,
    };
    Device::new(link, Box::new(NullObserver))
}

fn trip_state(dev: &mut Device<Trip>) -> State {
    state(dev, |l| l.inner.device())
}

#[test]
fn disconnect_during_erase() {
    let mut dev = trip_host(Op::EraseSlot, 1, false);
    let before = trip_state(&mut dev);
    let plan = Plan::new(new_image());
    let err = block_on(update(&mut dev, &plan)).expect_err("the cable is pulled");
    assert!(
        matches!(err, HostError::Link(LinkError::Disconnected(_))),
        "{err:?}"
    );
    let (msg, help) = texts(&err);
    assert!(msg.contains("connection to the device was lost"), "{msg}");
    assert!(help.contains("resumes where it stopped"), "{help}");
    // Only the target slot may have been erased; the record is untouched.
    let slot = *dev
        .link()
        .inner
        .device()
        .agent_config()
        .slot(SlotKind::Bytecode, 1)
        .expect("slot 1");
    let after = trip_state(&mut dev);
    let range = slot.addr as usize..(slot.addr + slot.size) as usize;
    assert_same_outside(&before, &after, range);
    // Reconnect and flash again: it finishes.
    block_on(dev.link().reconnect()).expect("reconnect");
    let report = block_on(update(&mut dev, &plan)).expect("update again");
    assert_eq!(report.outcome, Outcome::Accepted);
}

#[test]
fn device_restarting_during_the_stream() {
    // The device resets right after the third block arrives (a watchdog, a brown-out):
    // the blocks in flight are lost, the device boots the same configuration again, and
    // the host's resends find the slot as they left it (writes are idempotent).
    let mut dev = trip_host(Op::WriteSlot, 3, true);
    let before = trip_state(&mut dev);
    let plan = Plan::new(new_image());
    let report = block_on(update(&mut dev, &plan)).expect("the update goes through");
    assert_eq!(report.outcome, Outcome::Accepted);
    assert!(dev.stats().resent > 0, "{:?}", dev.stats());
    let sim = dev.link().inner.device();
    // Boots: factory, the reset during the stream, the trial.
    assert!(sim.boots().len() >= 3, "{:?}", sim.boots());
    let bc1 = sim
        .agent_config()
        .slot(SlotKind::Bytecode, 1)
        .expect("slot")
        .addr as usize;
    assert_eq!(
        &sim.flash_bytes()[bc1..bc1 + plan.bytecode.len()],
        plan.bytecode.data()
    );
    // Everything but slot 1 and the record is as it was.
    let after = trip_state(&mut dev);
    let record = {
        let c = dev.link().inner.device().agent_config();
        (c.record_addr as usize)..(c.record_addr + c.record_size) as usize
    };
    for (i, (a, b)) in before.flash.iter().zip(&after.flash).enumerate() {
        assert!(
            a == b || (bc1..bc1 + BC_SLOT as usize).contains(&i) || record.contains(&i),
            "changed at {i:#x}"
        );
    }
}

#[test]
fn device_without_fota_support() {
    let mut cfg = config(LayoutKind::BytecodeOnly);
    cfg.fota_supported = false;
    let mut dev = host_for(cfg);
    let before = snap(&mut dev);
    let err = block_on(update(&mut dev, &Plan::new(new_image()))).expect_err("no FOTA");
    assert_eq!(err, HostError::Unsupported);
    let (msg, help) = texts(&err);
    assert_eq!(msg, "the firmware on this device has no FOTA support");
    assert!(help.contains("built with FOTA support"), "{help}");
    // Requests sent anyway are refused with Unsupported, and change nothing.
    let bc1 = addr(&mut dev, SlotKind::Bytecode, 1);
    let r = block_on(dev.erase_slot(bc1, 4096, &mut |_, _, _, _| {}));
    assert_eq!(r, Err(HostError::Unsupported));
    let r = block_on(dev.write_slot(bc1, &[0; 4]));
    assert_eq!(r, Err(HostError::Unsupported));
    let r = block_on(dev.set_record(RecordUpdate {
        vm_current: 0,
        vm_last: 0,
        bc_current: 1,
        bc_last: 1,
    }));
    assert_eq!(r, Err(HostError::Unsupported));
    assert_eq!(snap(&mut dev), before);
}

// ---- more rows: refusals a host can meet --------------------------------------------------

#[test]
fn slot_index_that_does_not_exist() {
    let mut dev = host();
    let before = snap(&mut dev);
    let detail = refused(
        block_on(dev.attempt(5, 0)),
        Op::Attempt,
        ErrorCode::BadSlotIndex,
    );
    assert_eq!(detail, 5);
    // On the bytecode-only layout there is one VM slot: VM index 1 does not exist.
    refused(
        block_on(dev.attempt(1, 1)),
        Op::Attempt,
        ErrorCode::BadSlotIndex,
    );
    let mut plan = Plan::new(new_image());
    plan.bytecode_slot = SlotChoice::Index(7);
    let err = block_on(update(&mut dev, &plan)).expect_err("no slot 7");
    let (msg, _) = texts(&err);
    assert!(msg.contains("slot 7 cannot take this image"), "{msg}");
    assert_eq!(snap(&mut dev), before);
}

#[test]
fn write_over_bytes_that_are_not_erased() {
    let mut dev = host();
    // The third sector of slot 1 is erased.
    let bc1 = addr(&mut dev, SlotKind::Bytecode, 1) + 8192;
    block_on(dev.write_slot(bc1, &[1, 2, 3, 4, 5, 6, 7, 8])).expect("write");
    let before = snap(&mut dev);
    // The same bytes again: idempotent, accepted, nothing changes.
    block_on(dev.write_slot(bc1, &[1, 2, 3, 4, 5, 6, 7, 8])).expect("resend");
    // Other bytes: refused before a single byte is programmed.
    let detail = refused(
        block_on(dev.write_slot(bc1, &[1, 2, 3, 4, 9, 9, 9, 9, 9, 9, 9, 9])),
        Op::WriteSlot,
        ErrorCode::NotErased,
    );
    assert_eq!(detail, bc1 + 4);
    let e = HostError::Refused {
        op: Op::WriteSlot,
        code: ErrorCode::NotErased,
        detail,
    };
    assert!(e.help().contains("Erase the slot first"));
    assert_eq!(snap(&mut dev), before);
}

/// An attempt that is pending and has never run is replaced by another image: the host
/// says so first, and only the target slot and the record change.
#[test]
fn update_while_an_attempt_is_pending() {
    #[derive(Default, Clone)]
    struct Steps(std::rc::Rc<std::cell::RefCell<Vec<String>>>);
    impl fota_host::Observer for Steps {
        fn step(&mut self, _: fota_host::Step, detail: &str) {
            self.0.borrow_mut().push(detail.to_string());
        }
    }
    let steps = Steps::default();
    let mut dev: Host = Device::new(
        SimTransport::new(sim(config(LayoutKind::BytecodeOnly)), Virtual),
        Box::new(steps.clone()),
    );
    let mut plan = Plan::new(new_image());
    plan.restart = false;
    block_on(update(&mut dev, &plan)).expect("attempt");
    let pending = block_on(dev.get_record()).expect("record");
    assert_eq!(pending.state, fota_host::protocol::RecordState::Pending);
    steps.0.borrow_mut().clear();
    let report = block_on(update(&mut dev, &Plan::new(other_image()))).expect("replaced");
    assert_eq!(report.outcome, Outcome::Accepted);
    let said = steps.0.borrow().clone();
    let replaced = said
        .iter()
        .position(|s| s.contains("is pending and has never run; blink-3.bin replaces it"))
        .unwrap_or_else(|| panic!("not said: {said:?}"));
    let erase = said
        .iter()
        .position(|s| s.starts_with("Erasing"))
        .expect("erase");
    assert!(
        replaced < erase,
        "said before anything was erased: {said:?}"
    );
    let bc1 = addr(&mut dev, SlotKind::Bytecode, 1);
    let len = other_image().len() as u32;
    let md5 = block_on(dev.checksum_slot(bc1, len, &mut |_, _, _, _| {})).expect("md5");
    assert_eq!(md5, other_image().md5());
}

/// A new configuration on trial is never overwritten: another image is refused, saying
/// what to do, and nothing changes.
#[test]
fn update_while_a_trial_runs() {
    let mut dev = host_for(DeviceConfig {
        // Long enough that the trial is still running when the second update comes.
        accept_after_ns: 60_000_000_000,
        ..config(LayoutKind::BytecodeOnly)
    });
    let mut plan = Plan::new(new_image());
    plan.wait_accept = Duration::from_secs(1);
    let first = block_on(update(&mut dev, &plan)).expect("first");
    assert_eq!(first.outcome, Outcome::OnTrial);
    let before = snap(&mut dev);
    let err = block_on(update(&mut dev, &Plan::new(other_image()))).expect_err("on trial");
    assert_eq!(
        err,
        HostError::TrialRunning {
            bc_slot: 1,
            vm_slot: 0
        }
    );
    let (msg, help) = texts(&err);
    assert!(msg.contains("runs on trial"), "{msg}");
    assert!(
        help.contains("fota accept") && help.contains("restart the device"),
        "{help}"
    );
    assert_eq!(snap(&mut dev), before);
    // The same image as the one on trial waits for its outcome, and never restarts it.
    let boots = dev.link().device().boots().len();
    let again = block_on(update(&mut dev, &plan)).expect("same image");
    assert_eq!(again.outcome, Outcome::OnTrial);
    assert_eq!(
        dev.link().device().boots().len(),
        boots,
        "a restart would revert it"
    );
}

/// A record area the flash cannot write (worn out or write-protected): the factory
/// record stays in RAM, fota[0] is 0, and the host refuses to update, saying why.
#[test]
fn a_device_whose_record_is_not_valid() {
    let cfg = config(LayoutKind::BytecodeOnly);
    let agent = cfg.agent_config();
    let vm = images::sample_image(SlotKind::Vm, "zvm", "1.0", true, 3000);
    let bc = images::sample_image(SlotKind::Bytecode, "blink", "1", true, 2500);
    let mut flash = DeviceFlash::from_image(
        cfg.flash_with(&[(SlotKind::Vm, 0, &vm), (SlotKind::Bytecode, 0, &bc)]),
    )
    .expect("whole sectors")
    .with_timing(FlashTiming::INSTANT);
    flash.wear_out(agent.record_addr, agent.record_size as usize);
    let mut dev: Host = Device::new(
        SimTransport::new(SimDevice::from_flash(cfg, flash), Virtual),
        Box::new(NullObserver),
    );
    let record = block_on(dev.get_record()).expect("record");
    assert_eq!(record.valid, 0, "{record:?}");
    let before = snap(&mut dev);
    let err = block_on(update(&mut dev, &Plan::new(new_image()))).expect_err("invalid");
    assert_eq!(err, HostError::InvalidRecord);
    let (msg, help) = texts(&err);
    assert!(msg.contains("could not store it in flash"), "{msg}");
    assert!(
        help.contains("Restart the device") && help.contains("record area"),
        "{help}"
    );
    assert_eq!(snap(&mut dev), before);
}

/// The boot stage (a part that always starts VM slot 0): the tool never offers it and
/// the agent refuses to erase or write it.
#[test]
fn the_boot_stage() {
    let mut cfg = config(LayoutKind::VmAndBytecode);
    cfg.boot_stage = Some(0);
    let mut dev = host_for(cfg);
    let info = block_on(dev.hello()).expect("hello");
    assert_eq!(info.boot_stage, Some(0));
    let before = snap(&mut dev);
    let vm0 = addr(&mut dev, SlotKind::Vm, 0);
    let detail = refused(
        block_on(dev.erase_slot(vm0, 4096, &mut |_, _, _, _| {})),
        Op::EraseSlot,
        ErrorCode::BootStage,
    );
    assert_eq!(detail, vm0);
    refused(
        block_on(dev.write_slot(vm0 + 4096, &[1, 2, 3, 4])),
        Op::WriteSlot,
        ErrorCode::BootStage,
    );
    let e = HostError::Refused {
        op: Op::EraseSlot,
        code: ErrorCode::BootStage,
        detail,
    };
    let (msg, help) = texts(&e);
    assert!(
        msg.contains("boot stage") && help.contains("boot stage"),
        "{msg} {help}"
    );
    let mut plan = Plan::new(new_image());
    let vm = images::sample_image(SlotKind::Vm, "zvm", "2.0", true, 3000);
    plan.vm = Some(Image::new("zvm-2.bin", vm).expect("vm"));
    plan.vm_slot = SlotChoice::Index(0);
    let err = block_on(update(&mut dev, &plan)).expect_err("boot stage");
    let (msg, _) = texts(&err);
    assert!(msg.contains("it is the boot stage"), "{msg}");
    assert_eq!(snap(&mut dev), before);
    // Left to the tool, the VM goes to VM slot 1.
    plan.vm_slot = SlotChoice::Auto;
    let report = block_on(update(&mut dev, &plan)).expect("update");
    assert_eq!(report.outcome, Outcome::Accepted);
    assert_eq!((report.record.vm_current, report.record.running_vm), (1, 1));
}

/// ECC flash: a word of the target slot that a power cut tore cannot be read. The
/// device's checksum of it is a `FlashFailure`; the update's comparison takes that
/// sector as one to erase, and the update goes through.
#[test]
fn a_slot_sector_the_flash_cannot_read() {
    let mut cfg = config(LayoutKind::BytecodeOnly);
    cfg.ecc = true;
    let mut dev = host_for(cfg);
    let bc1 = addr(&mut dev, SlotKind::Bytecode, 1);
    dev.link().device_mut().flash_mut().tear_word(bc1 + 4100);
    let detail = refused(
        block_on(dev.checksum_slot(bc1, 8192, &mut |_, _, _, _| {})),
        Op::ChecksumSlot,
        ErrorCode::FlashFailure,
    );
    assert_eq!(detail, bc1 + 4096, "the block that could not be read");
    let report = block_on(update(&mut dev, &Plan::new(new_image()))).expect("update");
    assert_eq!(report.outcome, Outcome::Accepted);
    assert!(dev.link().device().flash().torn_words().is_empty());
}

#[test]
fn an_attempt_whose_md5_is_not_the_slots() {
    let mut dev = host();
    let bc1 = addr(&mut dev, SlotKind::Bytecode, 1);
    let image = new_image();
    // The slot holds the image but for its last bytes (a stream cut short, say).
    let mut short = image.data().to_vec();
    short.truncate(image.len() - 100);
    block_on(dev.erase_slot(bc1, BC_SLOT, &mut |_, _, _, _| {})).expect("erase");
    for (i, block) in short.chunks(1024).enumerate() {
        block_on(dev.write_slot(bc1 + (i * 1024) as u32, block)).expect("write");
    }
    let before = snap(&mut dev);
    let size = image.len() as u32;
    let check = fota_host::protocol::SlotCheck {
        kind: SlotKind::Bytecode,
        len: size,
        md5: image.md5(),
    };
    let attempt = Request::Attempt {
        bc_slot: 1,
        vm_slot: 0,
        check: Some(check),
    };
    let mismatch = |detail| Reply::Error {
        code: ErrorCode::ChecksumMismatch,
        detail,
    };
    // Without a checksum of that range since the slot was written: detail 0.
    let replies = raw(
        &mut dev,
        &frame(0x7101, &attempt),
        Duration::from_millis(300),
    );
    assert_eq!(replies, [(0x7101, mismatch(0))]);
    // Right behind the slot's checksum, as the host sends it: another MD5, detail 1.
    let mut both = frame(0x7102, &Request::ChecksumSlot { addr: bc1, size });
    both.extend(frame(0x7103, &attempt));
    let replies = raw(&mut dev, &both, Duration::from_millis(500));
    assert!(matches!(replies[0], (0x7102, Reply::Checksum(md5)) if md5 != image.md5()));
    assert_eq!(replies[1], (0x7103, mismatch(1)));
    assert_eq!(snap(&mut dev), before, "nothing written");
    // What the host says if it meets one.
    let e = block_on(dev.attempt_checked(1, 0, false, Some(check))).expect_err("refused");
    let (msg, help) = texts(&e);
    assert!(msg.contains("not the one the attempt carries"), "{msg}");
    assert!(help.contains("Nothing was switched"), "{help}");
    assert_eq!(snap(&mut dev), before, "nothing written");
}

#[test]
fn protocol_version_mismatch() {
    let mut dev = host();
    let before = snap(&mut dev);
    let replies = raw(
        &mut dev,
        &frame(0x7006, &Request::Hello { version: 99 }),
        Duration::from_millis(300),
    );
    assert_eq!(
        replies,
        [(
            0x7006,
            Reply::Error {
                code: ErrorCode::VersionMismatch,
                detail: u32::from(fota_host::protocol::PROTOCOL_VERSION)
            }
        )]
    );
    assert_eq!(snap(&mut dev), before);

    // The host's own mapping: a device of protocol version 1 answers the host's hello
    // with VersionMismatch (detail 1), and `Device::hello` reports that version.
    let mut old = Device::new(OldAgent::default(), Box::new(NullObserver));
    let e = block_on(old.hello()).expect_err("an agent of another version");
    assert!(
        matches!(
            e,
            HostError::VersionMismatch {
                device: 1,
                host: fota_host::protocol::PROTOCOL_VERSION
            }
        ),
        "{e:?}"
    );
    let (msg, help) = texts(&e);
    assert!(msg.contains("protocol version 1"), "{msg}");
    assert!(help.contains("tool version that matches"), "{help}");
    assert_eq!(old.link().hellos, 1, "asked once: a resend cannot help");
}

/// An agent of protocol version 1: every request gets `Error{VersionMismatch, 1}` under
/// its id, in virtual time.
#[derive(Default)]
struct OldAgent {
    out: Vec<u8>,
    now: Duration,
    hellos: u32,
}

impl Transport for OldAgent {
    async fn send(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        let mut reader = FrameReader::<2048>::new();
        let mut at = 0;
        while at < bytes.len() {
            let (used, event) = reader.feed(&bytes[at..]);
            at += used;
            if let Some(Event::Frame(frame)) = event {
                if matches!(frame.request(), Ok(Request::Hello { .. })) {
                    self.hellos += 1;
                }
                let reply = Reply::Error {
                    code: ErrorCode::VersionMismatch,
                    detail: 1,
                };
                let mut buf = [0u8; 64];
                let n = fota_host::protocol::encode_reply(frame.id, &reply, &mut buf)
                    .expect("a small reply");
                self.out.extend_from_slice(&buf[..n]);
            }
        }
        Ok(())
    }
    async fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, LinkError> {
        let n = self.out.len().min(buf.len());
        if n == 0 {
            self.now += timeout;
            return Ok(0);
        }
        buf[..n].copy_from_slice(&self.out[..n]);
        self.out.drain(..n);
        Ok(n)
    }
    fn now(&self) -> Duration {
        self.now
    }
    async fn sleep(&mut self, d: Duration) {
        self.now += d;
    }
}

#[test]
fn unsupported_baud_rate() {
    let mut dev = host();
    let before = snap(&mut dev);
    let replies = raw(
        &mut dev,
        &frame(0x7007, &Request::SetBaud { baud: 12_345 }),
        Duration::from_millis(300),
    );
    assert_eq!(
        replies,
        [(
            0x7007,
            Reply::Error {
                code: ErrorCode::BadBaud,
                detail: 921_600
            }
        )]
    );
    assert_eq!(snap(&mut dev), before);
    // The host's negotiation skips what the device cannot do and stays where it is.
    let baud = block_on(dev.negotiate_baud(&[2_000_000])).expect("negotiate");
    assert_eq!(baud, 115_200);
}

#[test]
fn an_erase_inside_a_larger_sector() {
    // An STM32F4: bytecode slots in 128 KiB sectors.
    let sim = SimDevice::new(DeviceConfig::stm32f4(LayoutKind::BytecodeOnly));
    let mut dev = Device::new(SimTransport::new(sim, Virtual), Box::new(NullObserver));
    let before = snap(&mut dev);
    let bc1 = addr(&mut dev, SlotKind::Bytecode, 1);
    // A multiple of the 4 KiB erase unit, but inside the first 128 KiB sector.
    let detail = refused(
        block_on(dev.erase_slot(bc1 + 0x4000, 0x4000, &mut |_, _, _, _| {})),
        Op::EraseSlot,
        ErrorCode::Misaligned,
    );
    assert_eq!(detail, bc1 + 0x4000);
    assert_eq!(snap(&mut dev), before);
    // From the sector's start: the whole sector, whatever the size asked.
    let erased = block_on(dev.erase_slot(bc1, 1, &mut |_, _, _, _| {})).expect("erase");
    assert_eq!(erased, (bc1, 128 * 1024));
}

/// Every test above is a row of `docs/BAD_INPUTS.md`, and every row names a test here.
#[test]
fn the_catalogue_names_these_tests() {
    let tests = catalogue::catalogue_names_tests(
        "bad_inputs.rs",
        include_str!("bad_inputs.rs"),
        include_str!("../../../docs/BAD_INPUTS.md"),
        &[
            "the_catalogue_names_these_tests",
            "every_row_of_the_catalogue_names_tests_that_exist",
        ],
    );
    assert!(tests.len() >= 12, "{tests:?}");
}

/// Every row of every table of `docs/BAD_INPUTS.md` names at least one test, and every
/// test named on any line (all of them, not the first one only) is a `#[test]` of the
/// file it names.
#[test]
fn every_row_of_the_catalogue_names_tests_that_exist() {
    let doc = include_str!("../../../docs/BAD_INPUTS.md");
    let sources = [
        ("bad_inputs.rs", include_str!("bad_inputs.rs")),
        ("bad_images.rs", include_str!("bad_images.rs")),
        ("rx_window.rs", include_str!("rx_window.rs")),
        ("hostile_device.rs", include_str!("hostile_device.rs")),
        ("confirm_wait.rs", include_str!("confirm_wait.rs")),
        ("erase_faults.rs", include_str!("erase_faults.rs")),
        ("background_erase.rs", include_str!("background_erase.rs")),
        ("opening.rs", include_str!("opening.rs")),
        (
            "attempt_check.rs",
            include_str!("../../fota-agent/tests/attempt_check.rs"),
        ),
        ("cli.rs", include_str!("../../fota-cli/tests/cli.rs")),
        ("qemu.rs", include_str!("../../fota-cli/tests/qemu.rs")),
        (
            "bad_files.rs",
            include_str!("../../fota-image/tests/bad_files.rs"),
        ),
        (
            "programs.rs",
            include_str!("../../fota-bytecode/tests/programs.rs"),
        ),
    ];
    let mut rows = 0;
    let mut references = 0;
    for line in doc.lines() {
        // Every `file.rs::name` on the line.
        let named: Vec<(&str, &str)> = line
            .split('`')
            .filter_map(|cell| cell.split_once(".rs::"))
            .collect();
        for &(file, name) in &named {
            let file = format!("{file}.rs");
            let Some((_, source)) = sources.iter().find(|(f, _)| *f == file) else {
                panic!("docs/BAD_INPUTS.md names {file}::{name}, a file this check does not know");
            };
            // A `#[test]` line, then the function (a proptest's takes arguments).
            let lines: Vec<&str> = source.lines().map(str::trim).collect();
            let is_test = lines
                .windows(2)
                .any(|w| w[0] == "#[test]" && w[1].starts_with(&format!("fn {name}(")));
            assert!(
                is_test,
                "docs/BAD_INPUTS.md names {file}::{name}, which is no test there"
            );
            references += 1;
        }
        let is_row = line.starts_with("| ")
            && !line.starts_with("| Bad input |")
            && !line.starts_with("|---");
        if is_row {
            rows += 1;
            let last = line.trim_end().trim_end_matches('|').rsplit('|').next();
            assert!(
                last.is_some_and(|cell| cell.contains(".rs::")),
                "a row of docs/BAD_INPUTS.md names no test in its last cell: {line}"
            );
        }
    }
    // The tables hold over fifty rows; the check must have seen them.
    assert!(rows >= 50, "only {rows} rows");
    assert!(
        references >= rows,
        "{references} references for {rows} rows"
    );
}

/// Sends a whole stream with the host API: begin, data in `max_write` frames, end.
fn send_stream(dev: &mut Host, addr: u32, base: u32, stream: &[u8]) -> Result<(), HostError> {
    block_on(dev.stream_begin(addr, base, &stream[..20]))?;
    let body = &stream[20..];
    let mut offset = 0u32;
    for chunk in body.chunks(1024) {
        block_on(dev.stream_data(offset, chunk))?;
        offset += chunk.len() as u32;
    }
    block_on(dev.stream_data(offset, &[])).map(|_| ())
}

/// Firmware-like bytes that compress.
fn compressible(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| b"ldr r0, [r1]; bl memcpy; bx lr; "[(i * 7 / 5) % 32] ^ ((i / 700) as u8 & 3))
        .collect()
}

#[test]
fn corrupt_compressed_stream() {
    let mut dev = host();
    block_on(dev.hello()).expect("hello");
    let bc1 = addr(&mut dev, SlotKind::Bytecode, 1);
    let image = compressible(10_000);
    let mut stream = fota_codec::encode::compress(&image, &fota_codec::encode::DEFAULT_OPTIONS)
        .expect("encode")
        .to_bytes();
    assert!(stream.len() < 4000);
    let last = stream.len() - 1;
    stream[last] ^= 0xFF; // the range coder does not end where it must
    block_on(dev.erase_slot(bc1, BC_SLOT, &mut |_, _, _, _| {})).expect("erase");
    let before = snap(&mut dev);
    let e = send_stream(&mut dev, bc1, fota_host::protocol::NO_BASE, &stream).unwrap_err();
    let detail = refused(
        Err::<(), _>(e.clone()),
        Op::StreamData,
        ErrorCode::StreamCorrupt,
    );
    assert!(detail <= 10_000, "the image offset: {detail}");
    let (msg, help) = texts(&e);
    assert!(msg.contains("the compressed stream is damaged"), "{msg}");
    assert!(help.contains("Flash again"), "{help}");
    // Only the target slot may have changed; the record did not.
    let off = bc1 as usize;
    let after = snap(&mut dev);
    assert_same_outside(&before, &after, off..off + BC_SLOT as usize);
    // The next update goes through.
    let report = block_on(update(&mut dev, &Plan::new(new_image()))).expect("update");
    assert_eq!(report.outcome, Outcome::Accepted);
}

#[test]
fn delta_for_a_base_the_device_does_not_hold() {
    let mut dev = host();
    block_on(dev.hello()).expect("hello");
    let (bc0, bc1) = (
        addr(&mut dev, SlotKind::Bytecode, 0),
        addr(&mut dev, SlotKind::Bytecode, 1),
    );
    // A delta from an image bytecode slot 0 does not hold, sent straight to the agent.
    let not_there = compressible(2500);
    let stream = fota_codec::encode::delta(
        &not_there,
        &compressible(6000),
        &fota_codec::encode::DEFAULT_OPTIONS,
    )
    .expect("encode")
    .to_bytes();
    let before = snap(&mut dev);
    let e = send_stream(&mut dev, bc1, bc0, &stream).unwrap_err();
    refused(
        Err::<(), _>(e.clone()),
        Op::StreamBegin,
        ErrorCode::BaseMismatch,
    );
    let (msg, help) = texts(&e);
    assert!(msg.contains("made for another base"), "{msg}");
    assert!(help.contains("--codec lzma"), "{help}");
    assert_eq!(snap(&mut dev), before, "nothing written");
    // update() checks the base by the device's MD5 first, and sends the whole image.
    let mut plan = Plan::new(new_image());
    plan.codec = fota_host::Codec::Delta;
    plan.bases = vec![Image::new("old.bin", not_there).expect("not empty")];
    let report = block_on(update(&mut dev, &plan)).expect("update");
    assert_eq!(report.outcome, Outcome::Accepted);
}

#[test]
fn stream_that_would_write_past_the_slot() {
    let mut dev = host();
    block_on(dev.hello()).expect("hello");
    let bc1 = addr(&mut dev, SlotKind::Bytecode, 1);
    // A stream whose image is one byte longer than the slot.
    let image = compressible(BC_SLOT as usize + 1);
    let stream = fota_codec::encode::compress(&image, &fota_codec::encode::DEFAULT_OPTIONS)
        .expect("encode")
        .to_bytes();
    let before = snap(&mut dev);
    let e = send_stream(&mut dev, bc1, fota_host::protocol::NO_BASE, &stream).unwrap_err();
    let detail = refused(
        Err::<(), _>(e.clone()),
        Op::StreamBegin,
        ErrorCode::BadLength,
    );
    assert_eq!(detail, BC_SLOT + 1);
    texts(&e);
    assert_eq!(snap(&mut dev), before, "nothing written");
}
