//! The baud rate comes back: after a negotiated session the agent returns to its base
//! rate when the host says goodbye, or after its idle time when the host went away
//! without a word; a host that starts while the agent is still at the negotiated rate
//! finds it there. The simulated line garbles bytes sent at a rate the other end is not
//! at, as a UART does.

use std::time::Duration;

use fota_host::sim::{SimTransport, Virtual};
use fota_host::{Device, HostError, NullObserver, Transport};
use fota_sim::device::{DeviceConfig, LayoutKind, SimDevice};
use futures::executor::block_on;

type Dev = Device<SimTransport<Virtual>>;

const BASE: u32 = 115_200;
const FAST: u32 = 921_600;

fn device() -> Dev {
    let sim = SimDevice::new(DeviceConfig::new(LayoutKind::BytecodeOnly));
    Device::new(SimTransport::new(sim, Virtual), Box::new(NullObserver))
}

/// A session that negotiated the fast rate, then a new host on the same line opening the
/// port at the base rate, as the next `fota` command does. The first one said no goodbye
/// (killed, or its cable pulled).
fn negotiated_then_abandoned() -> Dev {
    let mut dev = device();
    block_on(dev.hello()).expect("hello");
    assert_eq!(
        block_on(dev.negotiate_baud(&[FAST])).expect("negotiate"),
        FAST
    );
    assert_eq!(dev.link().device().device_baud(), FAST);
    let mut link = dev.into_link();
    block_on(link.set_baud(BASE)).expect("the new host's port");
    Device::new(link, Box::new(NullObserver))
}

#[test]
fn a_new_host_at_the_base_rate_gets_no_answer_from_an_abandoned_fast_agent() {
    // What a host that knows no better sees: the agent is still at 921600.
    let mut dev = negotiated_then_abandoned();
    assert_eq!(block_on(dev.hello()), Err(HostError::NoAnswer));
}

#[test]
fn the_host_also_tries_the_last_negotiated_rate() {
    let mut dev = negotiated_then_abandoned();
    let t0 = dev.now();
    let info = block_on(dev.connect(&[FAST])).expect("found at the fast rate");
    assert!(info.fota_supported);
    assert_eq!(dev.link().baud(), Some(FAST));
    assert_eq!(
        dev.base_baud(),
        Some(BASE),
        "a reset brings the agent back to this"
    );
    println!(
        "found at {FAST} after {:.1} s",
        (dev.now() - t0).as_secs_f64()
    );
    // And it works there.
    block_on(dev.get_record()).expect("record");
}

#[test]
fn the_agent_goes_back_to_its_base_rate_after_its_idle_time() {
    let mut dev = negotiated_then_abandoned();
    // The last request reached the agent just before; wait and watch its rate.
    let t0 = dev.now();
    let mut back = None;
    while dev.now() - t0 < Duration::from_secs(20) {
        block_on(dev.link().sleep(Duration::from_millis(10)));
        if dev.link().device().device_baud() == BASE {
            back = Some(dev.now() - t0);
            break;
        }
    }
    let back = back.expect("the agent stayed at the fast rate");
    let idle = Duration::from_millis(u64::from(fota_agent::BAUD_IDLE_MS));
    assert!(
        back >= idle && back <= idle + Duration::from_millis(50),
        "back after {back:?}"
    );
    println!(
        "idle at {FAST} baud: back at {BASE} after {:.2} s",
        back.as_secs_f64()
    );
    // A plain hello at the base rate works now.
    block_on(dev.hello()).expect("hello at the base rate");
}

#[test]
fn goodbye_puts_the_agent_back_at_once() {
    let mut dev = device();
    block_on(dev.hello()).expect("hello");
    block_on(dev.negotiate_baud(&[FAST])).expect("negotiate");
    block_on(dev.goodbye()).expect("goodbye");
    // The reply left at the fast rate; then both ends switched.
    assert_eq!(dev.link().baud(), Some(BASE));
    block_on(dev.link().sleep(Duration::from_millis(5)));
    assert_eq!(dev.link().device().device_baud(), BASE);
    let mut link = dev.into_link();
    block_on(link.set_baud(BASE)).expect("port");
    let mut next = Device::new(link, Box::new(NullObserver));
    let t0 = next.now();
    block_on(next.hello()).expect("the next host is answered at once");
    assert!(next.now() - t0 < Duration::from_millis(100));
}

#[test]
fn a_host_that_paused_finds_the_agent_back_at_its_base_rate_and_negotiates_again() {
    let mut dev = device();
    block_on(dev.hello()).expect("hello");
    block_on(dev.negotiate_baud(&[FAST])).expect("negotiate");
    // The host stays silent past the agent's idle time (a page left open, say).
    block_on(dev.link().sleep(Duration::from_millis(
        u64::from(fota_agent::BAUD_IDLE_MS) + 500,
    )));
    assert_eq!(dev.link().device().device_baud(), BASE);
    let record = block_on(dev.get_record()).expect("found again");
    assert_eq!(record.valid, 1);
    assert_eq!(dev.link().baud(), Some(FAST), "negotiated again");
    assert_eq!(dev.link().device().device_baud(), FAST);
}

#[test]
fn a_switch_the_host_never_confirms_falls_back_after_a_second() {
    let mut dev = device();
    block_on(dev.hello()).expect("hello");
    // The host asks for the switch, then stays at the old rate and says nothing.
    let mut link = dev.into_link();
    let frame = {
        let mut out = [0u8; 64];
        let n = fota_host::protocol::encode_request(
            7,
            &fota_host::protocol::Request::SetBaud { baud: FAST },
            &mut out,
        )
        .expect("fits");
        out[..n].to_vec()
    };
    block_on(link.send(&frame)).expect("send");
    block_on(link.sleep(Duration::from_millis(50)));
    assert_eq!(link.device().device_baud(), FAST);
    block_on(link.sleep(Duration::from_millis(1100)));
    assert_eq!(link.device().device_baud(), BASE, "back after the second");
}
