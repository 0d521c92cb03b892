//! Intel HEX (I8HEX, I16HEX, I32HEX), record by record with the `ihex` crate, so every
//! error names its line.

use ihex::{ReaderError, Record};

use super::Error;
use super::firmware::{Firmware, Format, Segment, first_overlap, merge};

/// Whether the bytes look like Intel HEX: text whose first line starts a record (even
/// a damaged one, so that its error is reported rather than the file taken as raw).
pub(crate) fn looks_like_hex(bytes: &[u8]) -> bool {
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let head = &text[..text.len().min(4096)];
    let ascii = head
        .iter()
        .all(|&b| matches!(b, b'\t' | b'\n' | b'\r' | 0x20..=0x7E));
    let first = text
        .split(|&b| b == b'\n')
        .map(|l| l.trim_ascii())
        .find(|l| !l.is_empty());
    ascii && first.is_some_and(|line| line.first() == Some(&b':'))
}

pub(crate) fn read(name: &str, bytes: &[u8]) -> Result<Firmware, Error> {
    let malformed = |why: String| Error::Malformed {
        name: name.into(),
        why,
        format: "Intel HEX",
    };
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut pieces: Vec<(u32, Vec<u8>, usize)> = Vec::new();
    // Bits 16-31 of the address (I32HEX) or the segment base (I16HEX).
    let mut linear: u32 = 0;
    let mut segment: Option<u32> = None;
    let mut entry = None;
    let mut end_line = None;
    for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
        let line_no = i + 1;
        let line = raw.trim_ascii();
        if line.is_empty() {
            continue;
        }
        if let Some(at) = end_line {
            return Err(malformed(format!(
                "line {line_no}: data after the end-of-file record of line {at}"
            )));
        }
        let Ok(line) = std::str::from_utf8(line) else {
            return Err(record_error(name, line_no, "it is not text".into()));
        };
        let record = Record::from_record_string(line).map_err(|e| match e {
            ReaderError::ChecksumMismatch(computed, found) => Error::HexChecksum {
                name: name.into(),
                line: line_no,
                found,
                computed,
            },
            other => record_error(name, line_no, other.to_string()),
        })?;
        match record {
            Record::Data { offset, value } => {
                if value.is_empty() {
                    continue;
                }
                match segment {
                    Some(base) => {
                        // I16HEX: the offset wraps within the 64 KiB segment.
                        let first = (0x1_0000 - usize::from(offset)).min(value.len());
                        pieces.push((base + u32::from(offset), value[..first].to_vec(), line_no));
                        if first < value.len() {
                            pieces.push((base, value[first..].to_vec(), line_no));
                        }
                    }
                    None => {
                        let addr = linear | u32::from(offset);
                        if u64::from(addr) + value.len() as u64 > 1 << 32 {
                            return Err(malformed(format!(
                                "line {line_no}: the record runs past the end of the 32-bit address space"
                            )));
                        }
                        pieces.push((addr, value, line_no));
                    }
                }
            }
            Record::EndOfFile => end_line = Some(line_no),
            Record::ExtendedSegmentAddress(s) => {
                segment = Some(u32::from(s) << 4);
            }
            Record::ExtendedLinearAddress(hi) => {
                segment = None;
                linear = u32::from(hi) << 16;
            }
            Record::StartSegmentAddress { cs, ip } => {
                entry = Some((u32::from(cs) << 4) + u32::from(ip));
            }
            Record::StartLinearAddress(a) => entry = Some(a),
        }
    }
    if end_line.is_none() {
        return Err(malformed(
            "the file ends without its end-of-file record (:00000001FF): it is cut off".into(),
        ));
    }
    if pieces.is_empty() {
        return Err(malformed("the file has no data records".into()));
    }
    let mut spans: Vec<(u32, u64, usize)> = pieces
        .iter()
        .map(|(a, d, l)| (*a, u64::from(*a) + d.len() as u64, *l))
        .collect();
    if let Some((addr, first, second)) = first_overlap(&mut spans) {
        let (first, second) = (first.min(second), first.max(second));
        return Err(Error::Overlap {
            name: name.into(),
            addr,
            first: format!("the record of line {first}"),
            second: format!("the record of line {second}"),
        });
    }
    let records = pieces.len();
    let segments = merge(
        pieces
            .into_iter()
            .map(|(addr, data, _)| Segment { addr, data })
            .collect(),
    );
    Ok(Firmware {
        name: name.into(),
        format: Format::IntelHex,
        segments,
        entry,
        notes: vec![format!("{records} data records")],
        warnings: vec![],
    })
}

fn record_error(name: &str, line: usize, why: String) -> Error {
    Error::HexRecord {
        name: name.into(),
        line,
        why,
    }
}
