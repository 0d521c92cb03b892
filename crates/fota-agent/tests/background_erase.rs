//! Erases in the background (a flash driver with erase suspend, `BackgroundErase`): an
//! `EraseSlot` is scheduled and answered at once; a write into a range still erasing
//! waits for it, a write elsewhere suspends the erase and programs at once; a checksum
//! waits for every erase; an erase that fails is the answer to the next request that
//! needs it; `Info` says so (tag 11). Nothing is ever programmed into a unit whose erase
//! has not completed.

use embedded_storage::nor_flash::{NorFlash as _, ReadNorFlash as _};
use fota_agent::{Agent, AgentConfig, AgentLink};
use fota_protocol::{ErrorCode, Event, FrameReader, Reply, Request, encode_request, frame_len};
use fota_sim::device::{DeviceConfig, LayoutKind};
use fota_sim::flash::SimFlash;
use md5::Digest as _;

const MS: u64 = 1_000_000;

fn config() -> AgentConfig {
    let mut config = DeviceConfig::new(LayoutKind::BytecodeOnly).agent_config();
    // Erases are under test here, not slot contents.
    config.images = fota_agent::ImagePolicy::NONE;
    config
}

/// An agent on a W25Q128JV model whose driver erases in the background (`on`).
fn agent(on: bool) -> Agent<SimFlash> {
    let flash = SimFlash::new(DeviceConfig::new(LayoutKind::BytecodeOnly).flash_size());
    let (mut agent, _) = Agent::boot(flash, config()).expect("boot");
    if on {
        agent.enable_background_erase();
    }
    agent.flash_mut().take_busy_ns();
    agent
}

/// The free bytecode slot (64 KiB-aligned on the simulated layout).
fn slot(agent: &Agent<SimFlash>) -> u32 {
    let addr = agent.find_bytecode_slot().expect("a free slot");
    assert_eq!(addr % (64 * 1024), 0);
    addr
}

/// Fill `addr..addr + len` with data, as an old image there would be.
fn dirty(agent: &mut Agent<SimFlash>, addr: u32, len: usize) {
    let off = addr - agent.config().flash_base;
    agent
        .flash_mut()
        .write(off, &vec![0x5A; len])
        .expect("old data");
    agent.flash_mut().take_busy_ns();
}

#[test]
fn info_says_erases_run_in_the_background() {
    assert!(agent(true).info().background_erase);
    assert!(!agent(false).info().background_erase);
}

#[test]
fn an_erase_is_scheduled_at_once_and_a_write_into_it_waits_for_it() {
    let mut a = agent(true);
    let s = slot(&a);
    dirty(&mut a, s, 64 * 1024);
    assert_eq!(a.schedule_erase(s, 64 * 1024), Ok((s, 64 * 1024)));
    // Answered before the flash did any of it: the 64 KiB block runs on its own.
    assert_eq!(a.flash_mut().take_busy_ns(), 0);
    assert!(a.erases_pending());
    let (from, to, left, suspended) = a.flash().background_erase().expect("an erase runs");
    assert_eq!((to - from, left, suspended), (64 * 1024, 150 * MS, false));
    // A block in that range waits for the whole block erase, then goes.
    a.write_slot(s, &[1; 1024])
        .expect("written after the erase");
    assert!(a.flash_mut().take_busy_ns() >= 150 * MS);
    assert!(!a.erases_pending());
    let off = (s - a.config().flash_base) as usize;
    assert_eq!(&a.flash().as_bytes()[off..off + 1024], &[1; 1024][..]);
    assert!(
        a.flash().as_bytes()[off + 1024..off + 64 * 1024]
            .iter()
            .all(|&b| b == 0xFF)
    );
}

#[test]
fn a_write_elsewhere_suspends_the_erase_and_programs_at_once() {
    let mut a = agent(true);
    let s = slot(&a);
    dirty(&mut a, s, 128 * 1024);
    a.schedule_erase(s, 64 * 1024).expect("first block");
    a.write_slot(s, &[1; 1024])
        .expect("waits for the first block");
    // The next block, scheduled back to back, starts at once.
    a.schedule_erase(s + 64 * 1024, 64 * 1024)
        .expect("second block");
    let (from, ..) = a.flash().background_erase().expect("the second block runs");
    assert_eq!(from, s + 64 * 1024 - a.config().flash_base);
    a.flash_mut().take_busy_ns();
    let suspends = a.flash().suspends();
    // A block in the first (erased) block: suspend, program, read back, resume.
    a.write_slot(s + 1024, &[2; 1024]).expect("written at once");
    let busy = a.flash_mut().take_busy_ns();
    assert_eq!(a.flash().suspends(), suspends + 1);
    assert!(busy < 10 * MS, "{busy} ns: it did not wait for the erase");
    let (_, _, left, suspended) = a.flash().background_erase().expect("still erasing");
    assert!(!suspended, "resumed");
    assert!(left > 140 * MS);
    assert!(a.erases_pending());
}

#[test]
fn a_checksum_waits_for_every_erase() {
    let mut a = agent(true);
    let s = slot(&a);
    dirty(&mut a, s, 8192);
    a.schedule_erase(s, 8192).expect("two sectors");
    let md5 = a.checksum_slot(s, 8192, &mut |_, _| {}).expect("checksum");
    assert!(!a.erases_pending());
    assert_eq!(md5, <[u8; 16]>::from(md5::Md5::digest([0xFF; 8192])));
    assert!(a.flash_mut().take_busy_ns() >= 90 * MS);
}

#[test]
fn a_range_that_does_not_follow_waits_for_the_schedule_first() {
    let mut a = agent(true);
    let s = slot(&a);
    a.schedule_erase(s, 4096).expect("a sector");
    // Not where the schedule ends: the first erase is done before this one starts.
    a.schedule_erase(s + 64 * 1024, 4096)
        .expect("another sector");
    assert!(a.flash_mut().take_busy_ns() >= 45 * MS);
    let (from, ..) = a.flash().background_erase().expect("the second runs");
    assert_eq!(from, s + 64 * 1024 - a.config().flash_base);
}

#[test]
fn an_erase_that_fails_is_reported_on_the_next_request_that_needs_it() {
    let mut a = agent(true);
    let s = slot(&a);
    dirty(&mut a, s, 8192);
    let off = s - a.config().flash_base;
    a.flash_mut().wear_out(off + 4096, 4096);
    a.schedule_erase(s, 4096).expect("the first sector is fine");
    // Scheduled and answered: the part refuses it only when the agent starts it.
    assert_eq!(a.schedule_erase(s + 4096, 4096), Ok((s + 4096, 4096)));
    // A write into the first sector is fine; one into the second hears of the failure
    // once, then meets the bytes the failed erase left (never programmed over).
    a.write_slot(s, &[1; 1024])
        .expect("the first sector was erased");
    assert_eq!(
        a.write_slot(s + 4096, &[2; 1024]),
        Err(fota_agent::Refusal {
            code: ErrorCode::FlashFailure,
            detail: s + 4096
        })
    );
    assert_eq!(
        a.write_slot(s + 4096, &[2; 1024]).map_err(|r| r.code),
        Err(ErrorCode::NotErased)
    );
    assert!(!a.erases_pending());
    // Erased again (the region wears no more): written.
    let mut b = agent(true);
    dirty(&mut b, s, 8192);
    b.flash_mut().wear_out(off + 4096, 4096);
    b.schedule_erase(s, 8192).expect("scheduled");
    // A checksum waits for every erase: it is the request that hears of the failure.
    assert_eq!(
        b.checksum_slot(s, 8192, &mut |_, _| {})
            .map_err(|r| (r.code, r.detail)),
        Err((ErrorCode::FlashFailure, s + 4096))
    );
    assert!(b.checksum_slot(s, 8192, &mut |_, _| {}).is_ok());
}

#[test]
fn without_the_capability_an_erase_is_done_when_answered() {
    let mut a = agent(false);
    let s = slot(&a);
    dirty(&mut a, s, 4096);
    a.schedule_erase(s, 4096).expect("erased");
    assert_eq!(a.flash_mut().take_busy_ns(), 45 * MS);
    assert!(a.flash().background_erase().is_none());
    assert!(!a.erases_pending());
}

// ---- over the link -------------------------------------------------------------------

fn req(id: u16, r: &Request<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; frame_len(1100)];
    let n = encode_request(id, r, &mut buf).expect("encodes");
    buf.truncate(n);
    buf
}

fn replies(bytes: &[u8]) -> Vec<(u16, Reply)> {
    let mut reader = FrameReader::<512>::new();
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (n, ev) = reader.feed(rest);
        if let Some(Event::Frame(f)) = ev {
            out.push((f.id, f.reply().expect("a reply")));
        }
        rest = &rest[n..];
    }
    out
}

#[test]
fn over_the_link_an_erase_is_answered_at_once_and_its_failure_on_the_next_request() {
    let mut a = agent(true);
    let s = slot(&a);
    let off = s - a.config().flash_base;
    dirty(&mut a, s, 8192);
    a.flash_mut().wear_out(off + 4096, 4096);
    let mut link = AgentLink::new(a);
    let mut sent = Vec::new();
    let mut bytes = req(1, &Request::Hello { version: 2 });
    bytes.extend(req(
        2,
        &Request::EraseSlot {
            addr: s,
            size: 8192,
        },
    ));
    // The first step answers the erase: no unit's time in it.
    link.receive(&bytes, &mut |f| sent.extend_from_slice(f));
    let got = replies(&sent);
    assert!(matches!(&got[0], (1, Reply::Info(i)) if i.background_erase));
    assert_eq!(
        got[1],
        (
            2,
            Reply::Erased {
                addr: s,
                size: 8192
            }
        )
    );
    assert!(link.agent().flash().background_erase().is_some());
    assert!(link.erases_pending());
    // A checksum of the slot waits for the erases, and is the request that hears of
    // the sector that failed.
    sent.clear();
    let check = req(
        3,
        &Request::ChecksumSlot {
            addr: s,
            size: 8192,
        },
    );
    link.receive(&check, &mut |f| sent.extend_from_slice(f));
    assert_eq!(
        replies(&sent),
        vec![(
            3,
            Reply::Error {
                code: ErrorCode::FlashFailure,
                detail: s + 4096
            }
        )]
    );
    // The sector that failed still holds the old bytes: nothing was written over them.
    let mut buf = [0u8; 4];
    link.agent_mut()
        .flash_mut()
        .read(off + 4096, &mut buf)
        .expect("read");
    assert_eq!(buf, [0x5A; 4]);
}
