//! UF2 (USB Flashing Format): 512-byte blocks, each with its target address.
//!
//! Written by hand: the format is one fixed 32-byte block header, and the crates that
//! read it either panic on malformed input (an address that goes backwards), pad gaps
//! with zeros instead of erased bytes, ignore the end magic and overlaps
//! (`uf2-decode`), or are unmaintained single releases (`uf2_block`).

use std::collections::BTreeMap;

use super::Error;
use super::firmware::{Firmware, Format, Segment, first_overlap, merge};

/// The first magic of every block ("UF2\n").
pub const MAGIC_START0: u32 = 0x0A32_4655;
/// The second magic.
pub const MAGIC_START1: u32 = 0x9E5D_5157;
/// The last word of every block.
pub const MAGIC_END: u32 = 0x0AB1_6F30;
/// Bytes of a block.
pub const BLOCK: usize = 512;
/// Most data bytes in one block.
pub const MAX_DATA: usize = 476;
/// Flag: the block is not for the main flash (skipped).
pub const FLAG_NOT_MAIN_FLASH: u32 = 0x0000_0001;
/// Flag: the file is a container of files, not flash contents.
pub const FLAG_FILE_CONTAINER: u32 = 0x0000_1000;
/// Flag: word 7 is a family id.
pub const FLAG_FAMILY_ID: u32 = 0x0000_2000;

/// Some family ids of the UF2 specification's list, for messages.
pub const FAMILIES: &[(u32, &str)] = &[
    (0x5ee2_1072, "STM32F1"),
    (0x57755a57, "STM32F4"),
    (0x53b8_0f00, "STM32F7"),
    (0x00ff_6919, "STM32L4"),
    (0x68ed_2b88, "SAMD21"),
    (0x5511_4460, "SAMD51"),
    (0x1b57_745f, "nRF52"),
    (0xada5_2840, "nRF52840"),
    (0xe48b_ff56, "RP2040"),
    (0xbfdd_4eee, "ESP32-S2"),
];

/// `0xe48bff56 (RP2040)`.
pub fn family_name(id: u32) -> String {
    match FAMILIES.iter().find(|(f, _)| *f == id) {
        Some((_, n)) => format!("{id:#010x} ({n})"),
        None => format!("{id:#010x}"),
    }
}

/// A family id given by the user: a number (hex with 0x) or a name from [`FAMILIES`].
pub fn parse_family(s: &str) -> Option<u32> {
    if let Some((id, _)) = FAMILIES.iter().find(|(_, n)| n.eq_ignore_ascii_case(s)) {
        return Some(*id);
    }
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

fn word(block: &[u8], i: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&block[i * 4..i * 4 + 4]);
    u32::from_le_bytes(w)
}

/// Whether the bytes start with a UF2 block.
pub(crate) fn is_uf2(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && word(bytes, 0) == MAGIC_START0 && word(bytes, 1) == MAGIC_START1
}

struct Block<'a> {
    index: usize,
    addr: u32,
    data: &'a [u8],
    family: Option<u32>,
    number: u32,
    total: u32,
}

pub(crate) fn read(name: &str, bytes: &[u8], expected: Option<u32>) -> Result<Firmware, Error> {
    let malformed = |why: String| Error::Malformed {
        name: name.into(),
        why,
        format: "UF2",
    };
    if !bytes.len().is_multiple_of(BLOCK) {
        return Err(malformed(format!(
            "{} bytes is not a whole number of 512-byte blocks: the file is cut off",
            bytes.len()
        )));
    }
    let mut blocks = Vec::new();
    for (index, b) in bytes.chunks_exact(BLOCK).enumerate() {
        if word(b, 0) != MAGIC_START0 || word(b, 1) != MAGIC_START1 || word(b, 127) != MAGIC_END {
            return Err(malformed(format!(
                "block {index} is damaged (its magic numbers are wrong)"
            )));
        }
        let flags = word(b, 2);
        if flags & FLAG_FILE_CONTAINER != 0 {
            return Err(malformed(
                "it is a UF2 file container (files for a drive), not flash contents".into(),
            ));
        }
        if flags & FLAG_NOT_MAIN_FLASH != 0 {
            continue;
        }
        let size = word(b, 4) as usize;
        if size > MAX_DATA {
            return Err(malformed(format!(
                "block {index} claims {size} data bytes, more than the 476 a block holds"
            )));
        }
        blocks.push(Block {
            index,
            addr: word(b, 3),
            data: &b[32..32 + size],
            family: (flags & FLAG_FAMILY_ID != 0).then(|| word(b, 7)),
            number: word(b, 5),
            total: word(b, 6),
        });
    }
    let families: BTreeMap<u32, usize> =
        blocks
            .iter()
            .filter_map(|b| b.family)
            .fold(BTreeMap::new(), |mut m, f| {
                *m.entry(f).or_default() += 1;
                m
            });
    let list = || {
        families
            .keys()
            .map(|f| family_name(*f))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let chosen = match expected {
        Some(f) if !families.is_empty() && !families.contains_key(&f) => {
            return Err(Error::Uf2Family {
                name: name.into(),
                found: list(),
                expected: family_name(f),
            });
        }
        Some(f) => Some(f),
        None if families.len() > 1 => {
            return Err(Error::Uf2Families {
                name: name.into(),
                found: list(),
            });
        }
        None => families.keys().next().copied(),
    };
    blocks.retain(|b| b.family.is_none() || b.family == chosen);
    // Every block of the image must be there, once: a cut-off download loses the last.
    let total = blocks.first().map_or(0, |b| b.total);
    if let Some(b) = blocks.iter().find(|b| b.total != total) {
        return Err(malformed(format!(
            "block {} says the image has {} blocks, block {} says {total}",
            b.index, b.total, blocks[0].index
        )));
    }
    if blocks.len() < total as usize {
        return Err(malformed(format!(
            "{} of its {total} blocks are there: the file is incomplete",
            blocks.len()
        )));
    }
    let mut seen = vec![false; total as usize];
    for b in &blocks {
        let n = b.number as usize;
        if n >= seen.len() || seen[n] {
            return Err(malformed(format!(
                "block {} is number {} of {total}: out of range or repeated",
                b.index, b.number
            )));
        }
        seen[n] = true;
    }
    let mut spans = Vec::new();
    let mut pieces = Vec::new();
    for b in &blocks {
        let end = u64::from(b.addr) + b.data.len() as u64;
        if end > 1 << 32 {
            return Err(malformed(format!(
                "block {} runs past the end of the 32-bit address space",
                b.index
            )));
        }
        if b.data.is_empty() {
            continue;
        }
        spans.push((b.addr, end, b.index));
        pieces.push(Segment {
            addr: b.addr,
            data: b.data.to_vec(),
        });
    }
    if pieces.is_empty() {
        return Err(malformed("no block holds data for the main flash".into()));
    }
    if let Some((addr, a, b)) = first_overlap(&mut spans) {
        let (a, b) = (a.min(b), a.max(b));
        return Err(Error::Overlap {
            name: name.into(),
            addr,
            first: format!("block {a}"),
            second: format!("block {b}"),
        });
    }
    let mut notes = vec![format!("{} blocks", blocks.len())];
    if let Some(f) = chosen {
        notes.push(format!("family {}", family_name(f)));
    }
    Ok(Firmware {
        name: name.into(),
        format: Format::Uf2,
        segments: merge(pieces),
        entry: None,
        notes,
        warnings: vec![],
    })
}

/// Writes `segments` as UF2 blocks of 256 data bytes (the usual size), with `family`
/// if given: for converting firmware to hand to a UF2 bootloader, and for tests.
pub fn write(segments: &[Segment], family: Option<u32>) -> Vec<u8> {
    let chunks: Vec<(u32, &[u8])> = segments
        .iter()
        .flat_map(|s| {
            s.data
                .chunks(256)
                .enumerate()
                .map(move |(i, c)| (s.addr + (i * 256) as u32, c))
        })
        .collect();
    let total = chunks.len() as u32;
    let mut out = Vec::with_capacity(chunks.len() * BLOCK);
    for (n, (addr, data)) in chunks.into_iter().enumerate() {
        let mut b = [0u8; BLOCK];
        let words = [
            MAGIC_START0,
            MAGIC_START1,
            if family.is_some() { FLAG_FAMILY_ID } else { 0 },
            addr,
            data.len() as u32,
            n as u32,
            total,
            family.unwrap_or(0),
        ];
        for (i, w) in words.iter().enumerate() {
            b[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
        }
        b[32..32 + data.len()].copy_from_slice(data);
        b[508..].copy_from_slice(&MAGIC_END.to_le_bytes());
        out.extend_from_slice(&b);
    }
    out
}
