//! The golden transcripts of docs/transcripts/: a whole update on each layout, frame by
//! frame, as a third-party client can replay them against `fota sim`.
//!
//! - `the_transcripts_are_what_the_device_answers`: runs the documented session against
//!   a simulated device (the agent behind the modelled UART, as `fota sim` serves it)
//!   and compares every byte with the file. `FOTA_BLESS=1` writes the files instead.
//! - `a_client_replaying_the_transcripts_gets_every_reply`: reads the files as a
//!   client written from docs/PROTOCOL.md would (send each `>` frame, read frames until
//!   as many as the `<` lines that follow, skip log text) and replays them against a
//!   fresh simulated device and against a bare `AgentLink` on a flash of the same content.
//! - `the_example_session_of_the_protocol_page_is_in_the_transcript`: every `wire` line of
//!   docs/PROTOCOL.md section 9 is a frame of the bytecode-only transcript.

use std::fmt::Write as _;
use std::path::PathBuf;

use fota_agent::AgentLink;
use fota_protocol::Layout as _;
use fota_protocol::{
    Event, FrameReader, PROTOCOL_VERSION, Reply, Request, SlotKind, encode_request, frame_len,
};
use fota_sim::device::{DeviceConfig, DeviceFlash, LayoutKind, SimDevice};
use fota_sim::images;

/// The images the transcripts write: healthy sample images whose lengths are not a
/// multiple of the write unit (the last block is sent as it is, not padded).
fn new_bytecode() -> Vec<u8> {
    images::sample_image(SlotKind::Bytecode, "blink", "2", true, 4501)
}

fn new_vm() -> Vec<u8> {
    images::sample_image(SlotKind::Vm, "zvm", "2.0", true, 1201)
}

fn layout_name(layout: LayoutKind) -> &'static str {
    match layout {
        LayoutKind::BytecodeOnly => "bytecode-only",
        LayoutKind::VmAndBytecode => "vm-and-bytecode",
    }
}

fn path(layout: LayoutKind) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/transcripts")
        .join(format!("{}.txt", layout_name(layout)))
}

/// The device of the transcripts: `fota sim --layout bytecode|vm` (its agent, layout and
/// factory flash), whose firmware does not accept by itself (the host sends `Accept`).
fn device_config(layout: LayoutKind) -> DeviceConfig {
    let mut cfg = DeviceConfig::new(layout);
    cfg.accept_after_ns = 3_600_000_000_000;
    cfg
}

/// One step of a session.
enum Line {
    Comment(String),
    Host(Vec<u8>),
    Agent(Vec<u8>),
    Reset,
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let _ = write!(s, "{b:02X}");
    }
    s
}

fn unhex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|h| u8::from_str_radix(h, 16).expect("hex byte"))
        .collect()
}

/// A request or reply in a line (a write's data as its length).
fn describe_request(r: &Request<'_>) -> String {
    match r {
        Request::WriteSlot { addr, data } => {
            format!("WriteSlot {{ addr: {addr:#x}, {} bytes }}", data.len())
        }
        Request::EraseSlot { addr, size } => {
            format!("EraseSlot {{ addr: {addr:#x}, size: {size:#x} }}")
        }
        Request::ChecksumSlot { addr, size } => {
            format!("ChecksumSlot {{ addr: {addr:#x}, size: {size} }}")
        }
        other => format!("{other:?}"),
    }
}

fn describe_reply(r: &Reply) -> String {
    match r {
        Reply::Info(i) => format!(
            "Info {{ protocol {}, agent {:?} {:?}, sector {}, write unit {}, max_write {}, in flight {}, \
             {} slots, record {:#x}+{:#x}, boot stage {:?}, sector erase {:?} ms, baud rates {:?}, \
             confirm within {:?} ms, block erases {:?}{} }}",
            i.protocol_version,
            i.name.as_str(),
            i.agent_version,
            i.sector_size,
            i.write_granularity,
            i.max_write,
            i.max_in_flight,
            i.slots.len(),
            i.record_addr,
            i.record_size,
            i.boot_stage,
            i.sector_erase_ms,
            i.baud_rates.as_slice(),
            i.confirm_ms,
            i.block_erases
                .iter()
                .map(|b| format!("{} KiB in {} ms", b.size / 1024, b.ms))
                .collect::<Vec<_>>(),
            i.trial_left_ms
                .map(|l| format!(", on trial with {l} ms left"))
                .unwrap_or_default()
        ),
        Reply::Record(r) => format!(
            "Record {{ fota {:?}, state {:?}, running VM {} bytecode {} }}",
            r.to_array(),
            r.state,
            r.running_vm,
            r.running_bc
        ),
        Reply::BytecodeSlot(a) => format!("BytecodeSlot({a:#x})"),
        Reply::VmSlot(a) => format!("VmSlot({a:#x})"),
        Reply::Erased { addr, size } => format!("Erased {{ addr: {addr:#x}, size: {size:#x} }}"),
        Reply::Written { addr, len } => format!("Written {{ addr: {addr:#x}, len: {len} }}"),
        Reply::Checksum(md5) => format!("Checksum({})", hex(md5).replace(' ', "")),
        other => format!("{other:?}"),
    }
}

/// Frames in `bytes` (log text skipped), each as its wire bytes (delimiters included).
fn frames(reader: &mut FrameReader<4096>, bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (used, ev) = reader.feed(rest);
        if let Some(Event::Frame(f)) = ev {
            out.push(reencode(f.id, f.op, f.body));
        }
        rest = &rest[used..];
    }
    out
}

/// A frame's wire bytes from its fields (the canonical encoding every sender produces).
fn reencode(id: u16, op: u8, body: &[u8]) -> Vec<u8> {
    let mut payload = id.to_le_bytes().to_vec();
    payload.push(op);
    payload.extend_from_slice(body);
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(&payload);
    payload.extend_from_slice(&crc.to_le_bytes());
    let mut out = vec![0u8; frame_len(payload.len())];
    out[0] = 0;
    let n = cobs::encode(&payload, &mut out[1..]);
    out[n + 1] = 0;
    out.truncate(n + 2);
    out
}

/// The host end of a simulated device's serial line, as a client uses it.
struct Client {
    sim: SimDevice,
    reader: FrameReader<4096>,
}

impl Client {
    fn new(cfg: DeviceConfig) -> Client {
        Client {
            sim: SimDevice::new(cfg),
            reader: FrameReader::new(),
        }
    }

    /// Send `frame`, then read until `expect` frames arrived (or 10 s pass).
    fn exchange(&mut self, frame: &[u8], expect: usize) -> Vec<Vec<u8>> {
        self.sim.host_send(frame);
        let deadline = self.sim.now() + 10_000_000_000;
        let mut got = Vec::new();
        while got.len() < expect && self.sim.now() < deadline {
            self.sim.run_until(deadline, true);
            let bytes = self.sim.host_take();
            got.extend(frames(&mut self.reader, &bytes));
        }
        // Nothing more may come for this request.
        let quiet = self.sim.now() + 50_000_000;
        self.sim.run_until(quiet, false);
        let late = self.sim.host_take();
        got.extend(frames(&mut self.reader, &late));
        got
    }

    /// Wait for the device to come back after a reset (its boot log is text).
    fn wait_reset(&mut self) {
        let until = self.sim.now() + self.sim.config().boot_ns + 100_000_000;
        self.sim.run_until(until, false);
        let _ = frames(&mut self.reader, &self.sim.host_take());
        assert!(self.sim.is_running(), "the device is back");
        self.reader.reset();
    }
}

/// Run the documented session against a simulated device; returns its lines.
fn record_session(layout: LayoutKind) -> Vec<Line> {
    let cfg = device_config(layout);
    let agent = cfg.agent_config();
    let mut client = Client::new(cfg.clone());
    let mut lines = Vec::new();
    let mut id = 0u16;
    let mut buf = vec![0u8; frame_len(fota_protocol::MAX_PAYLOAD)];
    let mut send = |client: &mut Client, lines: &mut Vec<Line>, req: Request<'_>| -> Vec<Reply> {
        id += 1;
        let n = encode_request(id, &req, &mut buf).expect("fits");
        lines.push(Line::Comment(format!(
            "id {id}: {}",
            describe_request(&req)
        )));
        lines.push(Line::Host(buf[..n].to_vec()));
        // Progress frames come before the final reply: read until the final one.
        let mut replies = Vec::new();
        let mut sent = false;
        loop {
            let got = if sent {
                client.exchange(&[], 1)
            } else {
                sent = true;
                client.exchange(&buf[..n], 1)
            };
            assert!(!got.is_empty(), "no answer to {}", describe_request(&req));
            let mut done = false;
            for f in got {
                let mut r = FrameReader::<4096>::new();
                let Some(Event::Frame(frame)) = r.feed(&f).1 else {
                    panic!("not a frame")
                };
                let reply = frame.reply().expect("a reply");
                assert_eq!(frame.id, id);
                lines.push(Line::Comment(format!(
                    "id {id}: {}",
                    describe_reply(&reply)
                )));
                lines.push(Line::Agent(f.clone()));
                done |= !matches!(reply, Reply::Progress { .. });
                replies.push(reply);
            }
            if done {
                return replies;
            }
        }
    };
    let slot = |kind, index| agent.slot(kind, index).expect("slot").addr;
    let two_vms = layout == LayoutKind::VmAndBytecode;

    lines.push(Line::Comment("1. Record check".into()));
    send(
        &mut client,
        &mut lines,
        Request::Hello {
            version: PROTOCOL_VERSION,
        },
    );
    send(&mut client, &mut lines, Request::GetRecord);
    lines.push(Line::Comment("2. Slot choice".into()));
    send(&mut client, &mut lines, Request::FindBytecodeSlot);
    let mut jobs = vec![(slot(SlotKind::Bytecode, 1), new_bytecode())];
    if two_vms {
        send(&mut client, &mut lines, Request::FindVmSlot);
        jobs.push((slot(SlotKind::Vm, 1), new_vm()));
    }
    for (addr, image) in &jobs {
        lines.push(Line::Comment(format!(
            "3. Erase the slot at {addr:#x} for {} bytes",
            image.len()
        )));
        send(
            &mut client,
            &mut lines,
            Request::EraseSlot {
                addr: *addr,
                size: image.len() as u32,
            },
        );
        lines.push(Line::Comment(
            "4. Write the image in blocks of max_write bytes; the last one as it is (any length)"
                .into(),
        ));
        for (i, block) in image.chunks(1024).enumerate() {
            send(
                &mut client,
                &mut lines,
                Request::WriteSlot {
                    addr: addr + (i * 1024) as u32,
                    data: block,
                },
            );
        }
        lines.push(Line::Comment(format!(
            "5. The device's MD5 of the slot must be the image's: {}",
            hex(&fota_host_md5(image)).replace(' ', "")
        )));
        send(
            &mut client,
            &mut lines,
            Request::ChecksumSlot {
                addr: *addr,
                size: image.len() as u32,
            },
        );
    }
    lines.push(Line::Comment("6. Attempt, then Restart (sent once)".into()));
    send(
        &mut client,
        &mut lines,
        Request::Attempt {
            bc_slot: 1,
            vm_slot: u32::from(two_vms),
            check: None,
        },
    );
    send(&mut client, &mut lines, Request::GetRecord);
    send(&mut client, &mut lines, Request::Restart);
    lines.push(Line::Comment(
        "The device resets: wait for it (it prints its boot log as text), then Hello again".into(),
    ));
    lines.push(Line::Reset);
    client.wait_reset();
    lines.push(Line::Comment(
        "7. Outcome: the new configuration runs on trial".into(),
    ));
    send(
        &mut client,
        &mut lines,
        Request::Hello {
            version: PROTOCOL_VERSION,
        },
    );
    send(&mut client, &mut lines, Request::GetRecord);
    lines.push(Line::Comment(
        "The new firmware confirms itself (here the host sends Accept for it)".into(),
    ));
    send(&mut client, &mut lines, Request::Accept);
    send(&mut client, &mut lines, Request::GetRecord);
    lines.push(Line::Comment(
        "Refusals from the same device afterwards: the new bytecode runs, so its slot is in \
         use; and a Hello of another protocol version"
            .into(),
    ));
    send(
        &mut client,
        &mut lines,
        Request::EraseSlot {
            addr: slot(SlotKind::Bytecode, 1),
            size: 0x1000,
        },
    );
    send(&mut client, &mut lines, Request::Hello { version: 1 });
    lines
}

fn fota_host_md5(bytes: &[u8]) -> [u8; 16] {
    use md5::{Digest, Md5};
    Md5::digest(bytes).into()
}

fn render(layout: LayoutKind, lines: &[Line]) -> String {
    let cfg = device_config(layout);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# FOTA protocol {PROTOCOL_VERSION}: a whole update on the {} layout, frame by frame.",
        layout_name(layout)
    );
    s.push_str(
        "# Written by crates/fota-sim/tests/transcripts.rs (FOTA_BLESS=1), which checks it on\n\
         # every test run. Format: docs/PROTOCOL.md, section 11.\n\
         #\n\
         # Device: `fota sim --layout ",
    );
    s.push_str(match layout {
        LayoutKind::BytecodeOnly => "bytecode",
        LayoutKind::VmAndBytecode => "vm",
    });
    s.push_str(
        " --accept-after-ms 3600000` (factory-fresh, its firmware does\n\
         # not accept by itself). Layout:\n",
    );
    let agent = cfg.agent_config();
    let mut slots: Vec<_> = agent.slots.iter().collect();
    slots.sort_by_key(|s| s.addr);
    for sl in slots {
        let _ = writeln!(
            s,
            "#   {:?} slot {} at {:#08x}, {:#x} bytes",
            sl.kind, sl.index, sl.addr, sl.size
        );
    }
    let _ = writeln!(
        s,
        "#   record area at {:#08x}, {:#x} bytes",
        agent.record_addr, agent.record_size
    );
    s.push_str(
        "#\n\
         # \"> \" a frame the host sends, \"< \" a frame the agent sends (wire bytes, both\n\
         # delimiters included), \"= reset\" the device resets, \"# \" a comment. Text the\n\
         # firmware prints between frames is not shown: skip it.\n\n",
    );
    for line in lines {
        match line {
            Line::Comment(c) => {
                let _ = writeln!(s, "# {c}");
            }
            Line::Host(b) => {
                let _ = writeln!(s, "> {}", hex(b));
            }
            Line::Agent(b) => {
                let _ = writeln!(s, "< {}", hex(b));
            }
            Line::Reset => s.push_str("= reset\n"),
        }
    }
    s
}

fn parse(text: &str) -> Vec<Line> {
    text.lines()
        .filter_map(|l| {
            if let Some(h) = l.strip_prefix("> ") {
                Some(Line::Host(unhex(h)))
            } else if let Some(h) = l.strip_prefix("< ") {
                Some(Line::Agent(unhex(h)))
            } else if l == "= reset" {
                Some(Line::Reset)
            } else {
                None
            }
        })
        .collect()
}

const LAYOUTS: [LayoutKind; 2] = [LayoutKind::BytecodeOnly, LayoutKind::VmAndBytecode];

#[test]
fn the_transcripts_are_what_the_device_answers() {
    for layout in LAYOUTS {
        let text = render(layout, &record_session(layout));
        let file = path(layout);
        if std::env::var_os("FOTA_BLESS").is_some_and(|v| v != "0") {
            std::fs::create_dir_all(file.parent().expect("dir")).expect("mkdir");
            std::fs::write(&file, &text).expect("write");
            continue;
        }
        let on_disk = std::fs::read_to_string(&file).unwrap_or_else(|e| {
            panic!("{}: {e}; run with FOTA_BLESS=1 to write it", file.display())
        });
        if on_disk != text {
            let first = on_disk
                .lines()
                .zip(text.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            panic!(
                "{} differs from what the device answers (line {}); run with FOTA_BLESS=1 \
                 if the change is intended and update docs/PROTOCOL.md with it",
                file.display(),
                first + 1
            );
        }
    }
}

/// Sends a frame and returns the frames that come back (at least that many).
type Exchange<'a> = dyn FnMut(&[u8], usize) -> Vec<Vec<u8>> + 'a;

/// Replay as a client: each `>` frame, then exactly the `<` frames that follow.
fn replay(lines: &[Line], exchange: &mut Exchange<'_>, reset: &mut dyn FnMut()) -> usize {
    let mut i = 0;
    let mut frames_checked = 0;
    while i < lines.len() {
        match &lines[i] {
            Line::Host(frame) => {
                let mut want = Vec::new();
                let mut j = i + 1;
                while let Some(Line::Agent(b)) = lines.get(j) {
                    want.push(b.clone());
                    j += 1;
                }
                let got = exchange(frame, want.len());
                assert_eq!(
                    got.iter().map(|f| hex(f)).collect::<Vec<_>>(),
                    want.iter().map(|f| hex(f)).collect::<Vec<_>>(),
                    "after the frame of line {i}"
                );
                frames_checked += 1 + want.len();
                i = j;
            }
            Line::Reset => {
                reset();
                i += 1;
            }
            Line::Agent(_) => panic!("an agent frame without a request before it"),
            Line::Comment(_) => i += 1,
        }
    }
    frames_checked
}

/// The time left on trial that the transcript's Info after the reset gives, in ms.
fn left_on_trial(text: &str) -> u32 {
    let at = text.find(", on trial with ").expect("an Info on trial") + ", on trial with ".len();
    text[at..]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a number of ms")
}

#[test]
fn a_client_replaying_the_transcripts_gets_every_reply() {
    for layout in LAYOUTS {
        let text = std::fs::read_to_string(path(layout)).expect("transcript");
        let lines = parse(&text);
        assert!(lines.len() > 20, "{} lines", lines.len());

        // Against the simulated device, through its serial line.
        let client = std::cell::RefCell::new(Client::new(device_config(layout)));
        let n = replay(
            &lines,
            &mut |f, k| client.borrow_mut().exchange(f, k),
            &mut || client.borrow_mut().wait_reset(),
        );

        // Against the agent alone, on a flash of the same factory content.
        let cfg = device_config(layout);
        let factory = SimDevice::new(cfg.clone()).flash_bytes().to_vec();
        let flash = DeviceFlash::from_image(factory).expect("flash");
        // Its flash driver erases in the background, as the device's does (Info tag 11).
        let boot = |flash: DeviceFlash| {
            let (mut agent, boot) =
                fota_agent::Agent::boot(flash, cfg.agent_config()).expect("boot");
            agent.enable_background_erase();
            (AgentLink::new(agent), boot)
        };
        let link = std::cell::RefCell::new(Some(boot(flash).0));
        let m = replay(
            &lines,
            &mut |f, _| {
                let mut out = Vec::new();
                let mut guard = link.borrow_mut();
                let l = guard.as_mut().expect("booted");
                // After `Restarting` the device resets at the next `= reset`.
                let _ = l.receive(f, &mut |b| out.extend_from_slice(b));
                frames(&mut FrameReader::new(), &out)
            },
            &mut || {
                let l = link.borrow_mut().take().expect("booted");
                let (mut again, boot) = boot(l.into_flash());
                assert!(boot.trial);
                // The device's clock when it answered the Hello after the reset, from the
                // time left on trial its Info gave (tag 9).
                again
                    .agent_mut()
                    .set_uptime_ms(cfg.agent_config().confirm_ms - left_on_trial(&text));
                *link.borrow_mut() = Some(again);
            },
        );
        assert_eq!(n, m);
        println!("{}: {n} frames replayed", layout_name(layout));
    }
}

#[test]
fn the_example_session_of_the_protocol_page_is_in_the_transcript() {
    let doc = include_str!("../../../docs/PROTOCOL.md");
    let section = doc
        .split("\n## 9. ")
        .nth(1)
        .and_then(|s| s.split("\n## 10. ").next())
        .expect("section 9");
    let transcript = std::fs::read_to_string(path(LayoutKind::BytecodeOnly)).expect("file");
    let mut checked = 0;
    for wire in section.lines().filter_map(|l| l.strip_prefix("wire     ")) {
        assert!(
            transcript.contains(wire),
            "PROTOCOL.md section 9 shows a frame the transcript does not have: {wire}"
        );
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} frames in section 9");
}
