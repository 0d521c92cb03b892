//! The agent's MD5 (a compact loop of its own) equals the md-5 crate's, which the host
//! uses, at every length around the 64-byte block and its padding boundary.

mod common;

use common::*;
use fota_protocol::SlotKind;
use md5::{Digest, Md5};

#[test]
fn the_agents_md5_is_md5() {
    let config = bc_only();
    let (mut agent, _) = boot(blank(), &config);
    let addr = slot_addr(&config, SlotKind::Bytecode, 1);
    let data = image(3, SLOT as usize);
    for (i, block) in data.chunks(1024).enumerate() {
        agent
            .write_slot(addr + (i * 1024) as u32, block)
            .expect("write");
    }
    let mut lengths: Vec<usize> = (1..200).collect();
    lengths.extend([1023, 1024, 4095, 4096, 4097, 8191, SLOT as usize]);
    for n in lengths {
        let got = agent
            .checksum_slot(addr, n as u32, &mut |_, _| {})
            .expect("checksum");
        let want: [u8; 16] = Md5::digest(&data[..n]).into();
        assert_eq!(got, want, "{n} bytes");
    }
}
