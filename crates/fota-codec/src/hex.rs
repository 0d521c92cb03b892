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

/// The bytes a HEX file places in `[start, end)`, from `start` to its last byte there;
/// gaps read as erased flash (0xFF). Records elsewhere (a chip's configuration words, for
/// example) are left out. Blank lines are skipped.
pub fn to_image(text: &str, start: u32, end: u32) -> Result<Vec<u8>, HexError> {
    let mut image: Vec<u8> = Vec::new();
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
                let addr = u64::from(upper) + u64::from(offset);
                for (k, b) in value.into_iter().enumerate() {
                    let a = addr + k as u64;
                    if a >= u64::from(start) && a < u64::from(end) {
                        let at = (a - u64::from(start)) as usize;
                        if image.len() <= at {
                            image.resize(at + 1, 0xFF);
                        }
                        image[at] = b;
                    }
                }
            }
            Record::ExtendedLinearAddress(hi) => upper = u32::from(hi) << 16,
            Record::ExtendedSegmentAddress(seg) => upper = u32::from(seg) << 4,
            Record::EndOfFile => break,
            Record::StartSegmentAddress { .. } | Record::StartLinearAddress(_) => {}
        }
    }
    if image.is_empty() {
        return Err(HexError::NoData);
    }
    Ok(image)
}
