//! Intel HEX files, the form firmware often comes in, read into a flat image.

use ihex::Record;

/// Why a HEX file could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HexError {
    /// A line that is not a valid record (1-based line number and the reason).
    Record {
        /// Line number, from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// No data record falls inside the requested address range.
    NoData,
}

impl std::fmt::Display for HexError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HexError::Record { line, reason } => write!(f, "Intel HEX line {line}: {reason}"),
            HexError::NoData => f.write_str("the Intel HEX file holds no data in that range"),
        }
    }
}

impl std::error::Error for HexError {}

/// Every data byte of a HEX file, as runs of consecutive addresses in address order
/// (a later record wins where two overlap). Blank lines are skipped.
pub fn regions(text: &str) -> Result<Vec<(u32, Vec<u8>)>, HexError> {
    let mut bytes = std::collections::BTreeMap::<u32, u8>::new();
    let mut upper = 0u32;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let record = Record::from_record_string(line).map_err(|e| HexError::Record {
            line: i + 1,
            reason: e.to_string(),
        })?;
        match record {
            Record::Data { offset, value } => {
                let addr = upper.wrapping_add(u32::from(offset));
                for (k, b) in value.into_iter().enumerate() {
                    bytes.insert(addr.wrapping_add(k as u32), b);
                }
            }
            Record::ExtendedLinearAddress(hi) => upper = u32::from(hi) << 16,
            Record::ExtendedSegmentAddress(seg) => upper = u32::from(seg) << 4,
            Record::EndOfFile => break,
            Record::StartSegmentAddress { .. } | Record::StartLinearAddress(_) => {}
        }
    }
    let mut runs: Vec<(u32, Vec<u8>)> = Vec::new();
    for (addr, b) in bytes {
        match runs.last_mut() {
            Some((start, run)) if u64::from(*start) + run.len() as u64 == u64::from(addr) => {
                run.push(b)
            }
            _ => runs.push((addr, vec![b])),
        }
    }
    Ok(runs)
}

/// The bytes a HEX file places in `[start, end)`, from `start` to its last byte there;
/// gaps read as erased flash (0xFF). Records elsewhere (a chip's configuration words, for
/// example) are left out.
pub fn to_image(text: &str, start: u32, end: u32) -> Result<Vec<u8>, HexError> {
    let mut image: Vec<u8> = Vec::new();
    for (addr, run) in regions(text)? {
        for (k, b) in run.into_iter().enumerate() {
            let a = u64::from(addr) + k as u64;
            if a >= u64::from(start) && a < u64::from(end) {
                let at = (a - u64::from(start)) as usize;
                if image.len() <= at {
                    image.resize(at + 1, 0xFF);
                }
                image[at] = b;
            }
        }
    }
    if image.is_empty() {
        return Err(HexError::NoData);
    }
    Ok(image)
}

/// The main flash image of a HEX file: from its lowest address, every run that follows
/// with gaps of at most `max_gap` bytes (so a chip's configuration words far above the
/// program are left out).
pub fn main_image(text: &str, max_gap: u32) -> Result<(u32, Vec<u8>), HexError> {
    let runs = regions(text)?;
    let start = runs.first().ok_or(HexError::NoData)?.0;
    let mut end = u64::from(start);
    for (addr, run) in &runs {
        if u64::from(*addr) > end + u64::from(max_gap) {
            break;
        }
        end = u64::from(*addr) + run.len() as u64;
    }
    let end = u32::try_from(end).unwrap_or(u32::MAX);
    Ok((start, to_image(text, start, end)?))
}
