//! Flash layouts and where a firmware file goes in one.

use std::fmt;

use super::Error;
use super::error::slot_list;
use super::firmware::Firmware;
use crate::{Kind, Slot};

/// The most address space a file placed without a layout may span (64 MiB).
pub const MAX_SPAN: u64 = 64 << 20;

/// The slots of a device's flash.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Layout {
    /// The slots, in address order.
    pub slots: Vec<Slot>,
}

/// `vm0`, `bc1`, `bytecode1`, `vm-1`: a slot's kind and index.
pub fn parse_slot_name(s: &str) -> Option<(Kind, u8)> {
    let s = s.trim().to_ascii_lowercase();
    let (kind, rest) = if let Some(r) = s.strip_prefix("bytecode") {
        (Kind::Bytecode, r)
    } else if let Some(r) = s.strip_prefix("bc") {
        (Kind::Bytecode, r)
    } else if let Some(r) = s.strip_prefix("vm") {
        (Kind::Vm, r)
    } else {
        return None;
    };
    let rest = rest.trim_start_matches(['-', '_', ' ']);
    Some((kind, rest.parse().ok()?))
}

/// `0x10000`, `65536`, `64K`, `1M`.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mul) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1024),
        b'm' | b'M' => (&s[..s.len() - 1], 1024 * 1024),
        _ => (s, 1),
    };
    let v = match num.strip_prefix("0x").or_else(|| num.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok()?,
        None => num.parse().ok()?,
    };
    v.checked_mul(mul)
}

impl Layout {
    /// A layout of these slots.
    pub fn new(mut slots: Vec<Slot>) -> Layout {
        slots.sort_by_key(|s| s.addr);
        Layout { slots }
    }

    /// Parses `vm0@0x0:64K,bc0@0x10000:256K,...` (kind and index, `@` address, `:` size).
    pub fn parse(spec: &str) -> Result<Layout, Error> {
        let bad = |item: &str, why: &str| {
            Error::Usage(format!(
                "layout item \"{item}\": {why}; a layout is like vm0@0x0:64K,bc0@0x10000:256K"
            ))
        };
        let mut slots = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, rest) = item
                .split_once('@')
                .ok_or_else(|| bad(item, "no @address"))?;
            let (addr, size) = rest.split_once(':').ok_or_else(|| bad(item, "no :size"))?;
            let (kind, index) =
                parse_slot_name(name).ok_or_else(|| bad(item, "the slot is vm<N> or bc<N>"))?;
            let addr = parse_size(addr)
                .and_then(|a| u32::try_from(a).ok())
                .ok_or_else(|| bad(item, "the address is not a 32-bit number"))?;
            let size = parse_size(size)
                .and_then(|a| u32::try_from(a).ok())
                .filter(|&s| s > 0 && u64::from(addr) + u64::from(s) <= 1 << 32)
                .ok_or_else(|| bad(item, "the size is not a number that fits after the address"))?;
            slots.push(Slot {
                kind,
                index,
                addr,
                size,
            });
        }
        if slots.is_empty() {
            return Err(bad(spec, "no slots"));
        }
        let layout = Layout::new(slots);
        for w in layout.slots.windows(2) {
            if w[0].end() > u64::from(w[1].addr) {
                return Err(Error::Usage(format!(
                    "layout: {} and {} overlap",
                    w[0], w[1]
                )));
            }
        }
        for (i, a) in layout.slots.iter().enumerate() {
            if layout.slots[..i]
                .iter()
                .any(|b| b.kind == a.kind && b.index == a.index)
            {
                return Err(Error::Usage(format!(
                    "layout: two {} slots numbered {}",
                    a.kind, a.index
                )));
            }
        }
        Ok(layout)
    }

    /// The slot named `vm0`, `bc1`...
    pub fn find(&self, name: &str) -> Option<Slot> {
        let (kind, index) = parse_slot_name(name)?;
        self.get(kind, index)
    }

    /// The slot of `kind` with `index`.
    pub fn get(&self, kind: Kind, index: u8) -> Option<Slot> {
        self.slots
            .iter()
            .find(|s| s.kind == kind && s.index == index)
            .copied()
    }

    /// The slot holding `addr`.
    pub fn slot_at(&self, addr: u32) -> Option<Slot> {
        self.slots.iter().find(|s| s.contains(addr)).copied()
    }

    /// Slots of at least `size` bytes.
    pub fn fitting(&self, size: u64) -> Vec<Slot> {
        self.slots
            .iter()
            .filter(|s| u64::from(s.size) >= size)
            .copied()
            .collect()
    }
}

impl fmt::Display for Layout {
    /// The form [`Layout::parse`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.slots.iter().enumerate() {
            let kind = match s.kind {
                Kind::Vm => "vm",
                Kind::Bytecode => "bc",
            };
            let sep = if i == 0 { "" } else { "," };
            write!(f, "{sep}{kind}{}@{:#x}:{:#x}", s.index, s.addr, s.size)?;
        }
        Ok(())
    }
}

/// A firmware file's bytes as a slot holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// The slot its addresses select (or that was asked for). `None`: a raw file with no
    /// slot asked for (the tool chooses one when flashing), or an addressed file read
    /// without a layout.
    pub slot: Option<Slot>,
    /// The address of `bytes[0]`: the slot's start, or the file's lowest address.
    pub base: u32,
    /// The bytes from `base`, gaps filled with erased bytes (0xFF).
    pub bytes: Vec<u8>,
    /// Things worth a warning (data dropped, a VM that does not start its slot).
    pub warnings: Vec<String>,
}

/// Where `fw` goes: the slot of `layout` its addresses fall in (refusing a file linked
/// for another slot than `want`, or for addresses outside every slot), or `want` for a
/// raw file. With `drop_outside`, data outside every slot is left out with a warning
/// instead of refused.
pub fn place(
    fw: &Firmware,
    layout: Option<&Layout>,
    want: Option<Slot>,
    drop_outside: bool,
) -> Result<Placed, Error> {
    let name = fw.name.as_str();
    if !fw.has_addresses() {
        let bytes = fw
            .segments
            .iter()
            .flat_map(|s| s.data.clone())
            .collect::<Vec<u8>>();
        if let Some(slot) = want {
            check_fits(name, bytes.len() as u64, &slot)?;
        }
        return Ok(Placed {
            slot: want,
            base: want.map_or(0, |s| s.addr),
            bytes,
            warnings: vec![],
        });
    }
    let Some((lo, hi)) = fw.span() else {
        return Err(Error::Empty(name.into()));
    };
    let mut warnings = Vec::new();
    let Some(layout) = layout else {
        let base = match want {
            Some(slot) if !(slot.contains(lo) && hi <= slot.end()) => {
                return Err(Error::WrongSlot {
                    name: name.into(),
                    linked: format!("{lo:#010x}..{hi:#010x}"),
                    asked: slot.to_string(),
                    fits: "see the layout".into(),
                });
            }
            Some(slot) => slot.addr,
            None => lo,
        };
        if hi - u64::from(base) > MAX_SPAN {
            return Err(Error::TooSparse {
                name: name.into(),
                lo,
                hi,
                span: hi - u64::from(lo),
            });
        }
        return Ok(Placed {
            slot: want,
            base,
            bytes: fill(fw, base, hi, |_| true),
            warnings,
        });
    };
    // Which slot each segment is in; what lies outside every slot.
    let mut inside: Vec<Slot> = Vec::new();
    let mut outside: Vec<(u32, u64)> = Vec::new();
    for seg in &fw.segments {
        match layout.slot_at(seg.addr) {
            Some(slot) if seg.end() <= slot.end() => {
                if !inside.contains(&slot) {
                    inside.push(slot);
                }
            }
            Some(slot) => {
                // Runs past the slot's end: into the next slot, or past every slot.
                let beyond = layout.slot_at(slot.end().min(u64::from(u32::MAX)) as u32);
                if let Some(next) = beyond.filter(|n| u64::from(n.addr) < seg.end()) {
                    return Err(Error::SpansSlots {
                        name: name.into(),
                        slots: slot_list(&[slot, next]),
                    });
                }
                return Err(Error::TooLarge {
                    name: name.into(),
                    size: seg.end() - u64::from(slot.addr),
                    slot: slot.to_string(),
                    slot_size: slot.size,
                });
            }
            None => outside.push((seg.addr, seg.end())),
        }
    }
    let in_span = |slots: &[Slot]| -> u64 {
        let parts = fw
            .segments
            .iter()
            .filter(|s| slots.iter().any(|x| x.contains(s.addr)));
        let lo = parts.clone().map(|s| s.addr).min().unwrap_or(0);
        parts.map(|s| s.end()).max().unwrap_or(0) - u64::from(lo)
    };
    if !outside.is_empty() && (!drop_outside || inside.is_empty()) {
        let (olo, ohi) = outside[0];
        let (what, needed) = if inside.is_empty() {
            ("is linked for", hi - u64::from(lo))
        } else {
            ("has data at", in_span(&inside))
        };
        let (show_lo, show_hi) = if inside.is_empty() {
            (lo, hi)
        } else {
            (olo, ohi)
        };
        return Err(Error::OutsideSlots {
            name: name.into(),
            what,
            lo: show_lo,
            hi: show_hi,
            fits: fits_text(layout, needed),
        });
    }
    for (a, b) in &outside {
        warnings.push(format!(
            "left out {} bytes at {a:#010x}..{b:#010x}: outside every slot",
            b - u64::from(*a)
        ));
    }
    if inside.len() > 1 {
        return Err(Error::SpansSlots {
            name: name.into(),
            slots: slot_list(&inside),
        });
    }
    let slot = inside[0];
    if let Some(w) = want.filter(|w| *w != slot) {
        return Err(Error::WrongSlot {
            name: name.into(),
            linked: slot.to_string(),
            asked: w.to_string(),
            fits: fits_text(layout, in_span(&inside)),
        });
    }
    let first = fw
        .segments
        .iter()
        .filter(|s| slot.contains(s.addr))
        .map(|s| s.addr)
        .min()
        .unwrap_or(slot.addr);
    let end = fw
        .segments
        .iter()
        .filter(|s| slot.contains(s.addr))
        .map(|s| s.end())
        .max()
        .unwrap_or(u64::from(slot.addr));
    if slot.kind == Kind::Vm && first != slot.addr {
        warnings.push(format!(
            "the data starts at {first:#010x}, {} bytes into {slot}: a VM must start its \
             slot with its vector table",
            first - slot.addr
        ));
    }
    Ok(Placed {
        slot: Some(slot),
        base: slot.addr,
        bytes: fill(fw, slot.addr, end, |s| slot.contains(s)),
        warnings,
    })
}

/// Like [`place`] for describing a file: never fails. When the file cannot be placed,
/// the bytes are those of its lowest segment (where an image and its trailer are) and
/// the error comes along to be shown.
pub fn place_or_describe(
    fw: &Firmware,
    layout: Option<&Layout>,
    drop_outside: bool,
) -> (Placed, Option<Error>) {
    match place(fw, layout, None, drop_outside) {
        Ok(p) => (p, None),
        Err(e) => {
            let first = fw.segments.first();
            let placed = Placed {
                slot: None,
                base: first.map_or(0, |s| s.addr),
                bytes: first.map_or_else(Vec::new, |s| s.data.clone()),
                warnings: vec![],
            };
            (placed, Some(e))
        }
    }
}

fn fits_text(layout: &Layout, needed: u64) -> String {
    let fits = layout.fitting(needed);
    if fits.is_empty() {
        format!("none of the layout's slots holds {needed} bytes")
    } else {
        slot_list(&fits)
    }
}

fn check_fits(name: &str, size: u64, slot: &Slot) -> Result<(), Error> {
    if size > u64::from(slot.size) {
        return Err(Error::TooLarge {
            name: name.into(),
            size,
            slot: slot.to_string(),
            slot_size: slot.size,
        });
    }
    Ok(())
}

/// The bytes from `base` to `end`: the segments `keep` selects by address, 0xFF between.
fn fill(fw: &Firmware, base: u32, end: u64, keep: impl Fn(u32) -> bool) -> Vec<u8> {
    let mut out = vec![0xFF; (end - u64::from(base)) as usize];
    for s in fw
        .segments
        .iter()
        .filter(|s| keep(s.addr) && s.addr >= base)
    {
        let at = (s.addr - base) as usize;
        let n = s.data.len().min(out.len().saturating_sub(at));
        out[at..at + n].copy_from_slice(&s.data[..n]);
    }
    out
}
