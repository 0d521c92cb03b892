//! Helpers shared by the tests: a layout, keys, firmware payloads, and ELF and HEX
//! files built here.
#![allow(dead_code)]

use fota_image::host::{Layout, SigningKey};
use fota_image::{Kind, Slot};
use object::elf;
use object::write::elf::{FileHeader, ProgramHeader, Writer};

/// The simulator's VM + bytecode layout: VM slots of 64 KiB, bytecode slots of 256 KiB.
pub fn layout() -> Layout {
    Layout::parse("vm0@0x0:64K,bc0@0x10000:256K,vm1@0x50000:64K,bc1@0x60000:256K")
        .expect("the test layout parses")
}

pub fn slot(name: &str) -> Slot {
    layout().find(name).expect("the slot exists")
}

/// A deterministic key.
pub fn key(n: u8) -> SigningKey {
    SigningKey::from_seed([n; 32]).expect("a non-zero seed is a key")
}

/// Pseudo-random bytes (xorshift), the same on every machine.
pub fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// A VM payload linked at `addr`: a vector table (initial SP, reset vector in the
/// image) followed by code-like bytes.
pub fn vm_payload(addr: u32, len: usize) -> Vec<u8> {
    let mut p = noise(len.max(8), addr ^ len as u32);
    p[..4].copy_from_slice(&0x2000_8000u32.to_le_bytes());
    p[4..8].copy_from_slice(&(addr + 0x101).to_le_bytes());
    p.truncate(len);
    p
}

/// An ELF executable with `segments` loaded at (vaddr, paddr, bytes).
pub fn make_elf(machine: u16, is_64: bool, entry: u64, segments: &[(u64, u64, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = Writer::new(object::Endianness::Little, is_64, &mut out);
    w.reserve_file_header();
    w.reserve_program_headers(segments.len() as u32);
    let offsets: Vec<u64> = segments
        .iter()
        .map(|(_, _, data)| w.reserve(data.len() as u64, 4))
        .collect();
    w.write_file_header(&FileHeader {
        os_abi: elf::ELFOSABI_NONE,
        abi_version: 0,
        e_type: elf::ET_EXEC,
        e_machine: elf::Machine(machine),
        e_entry: entry,
        e_flags: elf::FileFlags(0),
    })
    .expect("the ELF header writes");
    w.write_align_program_headers();
    for ((vaddr, paddr, data), off) in segments.iter().zip(&offsets) {
        w.write_program_header(&ProgramHeader {
            p_type: elf::PT_LOAD,
            p_flags: elf::PF_R | elf::PF_X,
            p_offset: *off,
            p_vaddr: *vaddr,
            p_paddr: *paddr,
            p_filesz: data.len() as u64,
            p_memsz: data.len() as u64,
            p_align: 4,
        });
    }
    for (_, _, data) in segments {
        w.write_align(4);
        w.write(data);
    }
    out
}

/// Intel HEX of `segments` (ihex's writer), 16 bytes a record.
pub fn make_hex(segments: &[(u32, &[u8])]) -> String {
    let mut records = Vec::new();
    for (addr, data) in segments {
        let mut upper = None;
        for (i, chunk) in data.chunks(16).enumerate() {
            let a = addr + (i * 16) as u32;
            if upper != Some(a >> 16) {
                upper = Some(a >> 16);
                records.push(ihex::Record::ExtendedLinearAddress((a >> 16) as u16));
            }
            records.push(ihex::Record::Data {
                offset: a as u16,
                value: chunk.to_vec(),
            });
        }
    }
    records.push(ihex::Record::EndOfFile);
    ihex::create_object_file_representation(&records).expect("ihex writes")
}

pub fn kind_of(name: &str) -> Kind {
    slot(name).kind
}
