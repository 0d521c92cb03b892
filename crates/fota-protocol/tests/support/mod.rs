//! What the protocol's tests share: the `Info` of the golden frames (docs/PROTOCOL.md
//! section 10), which the other tests change a field of rather than write out again.

use fota_protocol::{Event, FrameReader, Info, Op, Reply, SlotDesc, SlotKind, encode_reply};

/// The golden `Info` (docs/PROTOCOL.md section 10, frame 11): three 32 KiB slots, name
/// `sim`, and two extensions: sector erase 45 ms (tag 2), baud rates 115200 to 921600
/// (tag 3).
pub fn sample_info() -> Info {
    let mut slots = heapless::Vec::new();
    for (kind, index, addr) in [
        (SlotKind::Vm, 0, 0),
        (SlotKind::Bytecode, 0, 0x8000),
        (SlotKind::Bytecode, 1, 0x10000),
    ] {
        slots
            .push(SlotDesc {
                kind,
                index,
                addr,
                size: 0x8000,
            })
            .expect("three slots fit");
    }
    Info {
        background_erase: false,
        protocol_version: 2,
        agent_version: [0, 1, 0],
        name: heapless::String::try_from("sim").expect("short name"),
        fota_supported: true,
        sector_size: 4096,
        write_granularity: 4,
        max_write: 1024,
        max_in_flight: 4,
        max_baud: 921_600,
        record_addr: 0x18000,
        record_size: 0x2000,
        slots,
        boot_stage: None,
        sector_erase_ms: Some(45),
        baud_rates: heapless::Vec::from_slice(&[115_200, 230_400, 460_800, 921_600])
            .expect("four rates fit"),
        sectors: heapless::Vec::new(),
        codecs: heapless::Vec::new(),
        images: None,
        confirm_ms: None,
        rx_window: None,
        trial_left_ms: None,
        block_erases: heapless::Vec::new(),
    }
}

/// The body of `info` as the agent sends it, read back from its frame.
#[allow(dead_code)] // not every test file reads Info bodies
pub fn body_of(info: Info) -> Vec<u8> {
    let mut out = [0u8; 512];
    let n = encode_reply(1, &Reply::Info(info), &mut out).expect("fits");
    let mut reader = FrameReader::<512>::new();
    let mut rest = &out[..n];
    loop {
        let (used, event) = reader.feed(rest);
        match event {
            Some(Event::Frame(f)) => {
                assert_eq!(f.op, Op::Hello.reply());
                return f.body.to_vec();
            }
            None => {}
            Some(other) => panic!("not a frame: {other:?}"),
        }
        rest = &rest[used..];
        assert!(!rest.is_empty(), "the frame ends");
    }
}

/// An `Info` body parsed as the host parses `Hello`'s answer.
#[allow(dead_code)]
pub fn parse(body: &[u8]) -> Result<Info, fota_protocol::DecodeError> {
    match Reply::parse(Op::Hello.reply(), body)? {
        Reply::Info(i) => Ok(i),
        other => panic!("not an Info: {other:?}"),
    }
}
