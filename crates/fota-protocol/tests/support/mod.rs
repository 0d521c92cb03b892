//! What the protocol's tests share: the `Info` of the golden frames (docs/PROTOCOL.md
//! section 10), which the other tests change a field of rather than write out again.

use fota_protocol::{Info, SlotDesc, SlotKind};

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
