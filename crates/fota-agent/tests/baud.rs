//! The baud rate as the agent runs it: a switch that is not confirmed falls back, an
//! idle link goes back to the base rate, `Goodbye` goes back at once; and only rates
//! the UART can make are offered.

mod common;

use common::*;
use fota_agent::{
    AgentLink, BAUD_CONFIRM_MS, BAUD_IDLE_MS, BAUD_RATES, ConfigError, LinkAction, UartClock,
};
use fota_protocol::{
    ErrorCode, Event, FrameReader, MAX_PAYLOAD, PROTOCOL_VERSION, Reply, Request, encode_request,
    frame_len,
};

type Link = AgentLink<Flash>;

fn link() -> Link {
    AgentLink::boot(blank(), bc_only()).unwrap().0
}

fn send(l: &mut Link, id: u16, r: &Request<'_>) -> (Reply, Option<LinkAction>) {
    let mut buf = vec![0u8; frame_len(MAX_PAYLOAD)];
    let n = encode_request(id, r, &mut buf).unwrap();
    let mut sent = Vec::new();
    let got = l.receive(&buf[..n], &mut |f| sent.extend_from_slice(f));
    let mut reader = FrameReader::<512>::new();
    let (_, ev) = reader.feed(&sent);
    let Some(Event::Frame(f)) = ev else {
        panic!("no reply")
    };
    (f.reply().unwrap(), got.action)
}

#[test]
fn a_switch_confirmed_by_a_request_stays() {
    let mut l = link();
    assert_eq!(l.baud(), 115_200);
    let (reply, action) = send(&mut l, 1, &Request::SetBaud { baud: 921_600 });
    assert_eq!(reply, Reply::BaudSet(921_600));
    assert_eq!(action, Some(LinkAction::SetBaud(921_600)));
    assert_eq!(l.tick(5000), None);
    send(&mut l, 2, &Request::GetRecord);
    assert_eq!(l.tick(5000 + BAUD_CONFIRM_MS + 10), None, "confirmed");
    assert_eq!(l.baud(), 921_600);
}

#[test]
fn a_switch_nobody_confirms_falls_back_after_a_second() {
    let mut l = link();
    send(&mut l, 1, &Request::SetBaud { baud: 460_800 });
    // The clock may wrap: deadlines are taken modulo 2^32.
    let t0 = u32::MAX - 300;
    assert_eq!(l.tick(t0), None);
    assert_eq!(l.tick(t0.wrapping_add(BAUD_CONFIRM_MS - 1)), None);
    assert_eq!(
        l.tick(t0.wrapping_add(BAUD_CONFIRM_MS)),
        Some(LinkAction::SetBaud(115_200))
    );
    assert_eq!(l.baud(), 115_200);
    assert_eq!(
        l.tick(t0.wrapping_add(60_000)),
        None,
        "at the base rate: nothing"
    );
}

#[test]
fn an_idle_link_goes_back_to_the_base_rate() {
    let mut l = link();
    send(&mut l, 1, &Request::SetBaud { baud: 921_600 });
    l.tick(0);
    send(&mut l, 2, &Request::GetRecord);
    l.tick(100);
    // Requests keep it awake...
    for t in (1..5).map(|k| k * (BAUD_IDLE_MS - 100)) {
        send(&mut l, 3, &Request::GetRecord);
        assert_eq!(l.tick(t), None, "at {t} ms");
    }
    let last = 4 * (BAUD_IDLE_MS - 100);
    // ...silence does not.
    assert_eq!(l.tick(last + BAUD_IDLE_MS - 1), None);
    assert_eq!(
        l.tick(last + BAUD_IDLE_MS),
        Some(LinkAction::SetBaud(115_200))
    );
}

#[test]
fn a_long_request_in_progress_is_not_idleness() {
    let config = bc_only();
    let mut l = AgentLink::boot(blank(), config.clone()).unwrap().0;
    send(&mut l, 1, &Request::SetBaud { baud: 921_600 });
    l.tick(0);
    send(&mut l, 2, &Request::GetRecord);
    let addr = slot_addr(&config, fota_protocol::SlotKind::Bytecode, 1);
    let mut buf = vec![0u8; 64];
    let n = encode_request(3, &Request::EraseSlot { addr, size: SLOT }, &mut buf).unwrap();
    l.step(&buf[..n], &mut |_| {});
    assert!(l.is_busy());
    assert_eq!(l.tick(2 * BAUD_IDLE_MS), None, "busy: awake");
}

#[test]
fn goodbye_goes_back_at_once_and_says_where() {
    let mut l = link();
    send(&mut l, 1, &Request::SetBaud { baud: 921_600 });
    send(&mut l, 2, &Request::GetRecord);
    let (reply, action) = send(&mut l, 3, &Request::Goodbye);
    assert_eq!(reply, Reply::Goodbye(115_200));
    assert_eq!(action, Some(LinkAction::SetBaud(115_200)));
    assert_eq!(l.baud(), 115_200);
    // At the base rate already: a reply, no switch.
    let (reply, action) = send(&mut l, 4, &Request::Goodbye);
    assert_eq!((reply, action), (Reply::Goodbye(115_200), None));
    // Answered without FOTA support too (no rate was ever switched there).
    let mut u = AgentLink::boot(blank(), bc_only().unsupported()).unwrap().0;
    assert_eq!(
        send(&mut u, 1, &Request::Goodbye),
        (Reply::Goodbye(115_200), None)
    );
    assert!(matches!(
        send(&mut u, 2, &Request::SetBaud { baud: 921_600 }).0,
        Reply::Error {
            code: ErrorCode::Unsupported,
            ..
        }
    ));
}

#[test]
fn goodbye_programs_a_held_write_unit() {
    let config = bc_only();
    let mut l = AgentLink::boot(blank(), config.clone()).unwrap().0;
    let addr = slot_addr(&config, fota_protocol::SlotKind::Bytecode, 1);
    send(
        &mut l,
        1,
        &Request::WriteSlot {
            addr,
            data: &[1, 2, 3, 4, 5],
        },
    );
    assert!(l.agent().held_write().is_some());
    send(&mut l, 2, &Request::Goodbye);
    assert!(l.agent().held_write().is_none());
    assert_eq!(
        l.agent().flash().at(addr, 8),
        &[1, 2, 3, 4, 5, 0xFF, 0xFF, 0xFF]
    );
}

/// QEMU's CMSDK UART at 25 MHz divides by a whole number, at least 16: 1.5 and 2 Mbaud
/// are out of reach (25e6 / 16 = 1.5625 M is the fastest; 1.5 M is 4 % off the nearest),
/// the usual rates up to 1 M are within 0.5 %.
#[test]
fn only_rates_the_uart_makes_are_offered() {
    let cmsdk = UartClock {
        clock_hz: 25_000_000,
        oversampling: 1,
        fraction_bits: 0,
        min_divisor: 16,
    };
    assert_eq!(cmsdk.actual(921_600), Some(925_925));
    assert_eq!(cmsdk.actual(2_000_000), None);
    let rates = cmsdk.rates(&BAUD_RATES);
    assert_eq!(
        rates.as_slice(),
        &[115_200, 230_400, 460_800, 921_600, 1_000_000]
    );
    // RP2040's PL011 at 125 MHz: a 6-bit fraction makes them all.
    let pl011 = UartClock {
        clock_hz: 125_000_000,
        oversampling: 16,
        fraction_bits: 6,
        min_divisor: 64,
    };
    assert_eq!(pl011.rates(&BAUD_RATES).as_slice(), &BAUD_RATES);
    // The agent offers only those, and refuses the others.
    let mut config = bc_only();
    config.max_baud = 2_000_000;
    config.baud_rates = rates;
    let mut l = AgentLink::boot(blank(), config.clone()).unwrap().0;
    let (Reply::Info(info), _) = send(
        &mut l,
        1,
        &Request::Hello {
            version: PROTOCOL_VERSION,
        },
    ) else {
        panic!("no info")
    };
    assert_eq!(info.baud_rates.last(), Some(&1_000_000));
    assert_eq!(info.max_baud, 1_000_000);
    assert_eq!(
        send(&mut l, 2, &Request::SetBaud { baud: 1_500_000 }).0,
        Reply::Error {
            code: ErrorCode::BadBaud,
            detail: 1_000_000
        }
    );
    // A base rate of zero is no rate.
    config.base_baud = 0;
    assert_eq!(config.validate(&blank()), Err(ConfigError::BadBaudRates));
}
