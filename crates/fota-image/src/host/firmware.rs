//! A firmware file as read: its format, its data by address, what the readers found; and
//! the helpers every reader uses to build one. Plain data, shared by the readers (ELF,
//! HEX, UF2), the format detection, placement and packing.

use std::fmt;

/// The format of a firmware file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Bytes with no address: a raw binary (`objcopy -O binary`), or a packed image.
    Raw,
    /// Intel HEX records.
    IntelHex,
    /// An ELF executable (loadable segments at their physical addresses).
    Elf,
    /// USB Flashing Format blocks.
    Uf2,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Raw => "raw binary",
            Format::IntelHex => "Intel HEX",
            Format::Elf => "ELF",
            Format::Uf2 => "UF2",
        })
    }
}

/// Bytes to be written from an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// First address.
    pub addr: u32,
    /// The bytes.
    pub data: Vec<u8>,
}

impl Segment {
    /// One past the last address.
    pub fn end(&self) -> u64 {
        u64::from(self.addr) + self.data.len() as u64
    }
}

/// The processor an ELF must be built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Arch {
    /// 32-bit ARM (every Cortex-M).
    #[default]
    Arm,
    /// 32-bit RISC-V.
    RiscV32,
    /// Xtensa (ESP32, ESP32-S2/S3).
    Xtensa,
    /// Any: no check.
    Any,
}

impl Arch {
    /// A name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Arm => "32-bit ARM (Cortex-M)",
            Arch::RiscV32 => "32-bit RISC-V",
            Arch::Xtensa => "Xtensa",
            Arch::Any => "any processor",
        }
    }
}

/// A firmware file, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firmware {
    /// The file's name, for messages.
    pub name: String,
    /// What it was.
    pub format: Format,
    /// For a raw file one segment at address 0 (it has no address); else the data by
    /// address, sorted, not overlapping, adjacent pieces merged.
    pub segments: Vec<Segment>,
    /// The entry point the file names, if any.
    pub entry: Option<u32>,
    /// Facts about the file worth showing (`UF2 family 0x... (RP2040)`, `ELF for ARM`).
    pub notes: Vec<String>,
    /// Things that look wrong but do not stop it (a file that looks like a picture...).
    pub warnings: Vec<String>,
}

impl Firmware {
    /// Whether the data has addresses (everything but a raw file).
    pub fn has_addresses(&self) -> bool {
        self.format != Format::Raw
    }

    /// Bytes of data (not counting gaps).
    pub fn data_len(&self) -> u64 {
        self.segments.iter().map(|s| s.data.len() as u64).sum()
    }

    /// Lowest address and one past the highest, if there is any data.
    pub fn span(&self) -> Option<(u32, u64)> {
        let lo = self.segments.first()?.addr;
        let hi = self.segments.iter().map(Segment::end).max()?;
        Some((lo, hi))
    }
}

/// Merges sorted, non-overlapping pieces that touch into segments.
pub(crate) fn merge(mut pieces: Vec<Segment>) -> Vec<Segment> {
    pieces.sort_by_key(|s| s.addr);
    let mut out: Vec<Segment> = Vec::with_capacity(pieces.len());
    for p in pieces {
        match out.last_mut() {
            Some(last) if last.end() == u64::from(p.addr) => last.data.extend_from_slice(&p.data),
            _ => out.push(p),
        }
    }
    out
}

/// The first pair of pieces (with their labels) that write the same address.
pub(crate) fn first_overlap<L: Clone>(pieces: &mut [(u32, u64, L)]) -> Option<(u32, L, L)> {
    pieces.sort_by_key(|p| p.0);
    let mut reach: Option<(u64, &L)> = None;
    for (start, end, label) in pieces.iter() {
        if let Some((r, rl)) = reach
            && u64::from(*start) < r
        {
            return Some((*start, rl.clone(), label.clone()));
        }
        if reach.is_none_or(|(r, _)| *end > r) {
            reach = Some((*end, label));
        }
    }
    None
}
