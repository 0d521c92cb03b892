//! Firmware files as builds produce them: raw binaries, Intel HEX, ELF and UF2, read
//! into address-tagged segments. The format is recognised from the content, never from
//! the file name (a name that disagrees gets a warning).

use super::Error;
use super::firmware::{Arch, Firmware, Format, Segment};
use super::{elf, hex, sniff, uf2};

/// How to read a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadOptions {
    /// The processor ELF files must be built for.
    pub arch: Arch,
    /// The UF2 family id of the device, if known: blocks of other families are refused.
    pub uf2_family: Option<u32>,
}

/// Reads a firmware file of any supported format. `name` is used in messages and for a
/// warning when its extension disagrees with the content.
pub fn read_firmware(name: &str, bytes: &[u8], opts: &ReadOptions) -> Result<Firmware, Error> {
    if bytes.is_empty() {
        return Err(Error::Empty(name.into()));
    }
    let format = detect(bytes);
    let mut fw = match format {
        Format::Elf => elf::read(name, bytes, opts.arch)?,
        Format::Uf2 => uf2::read(name, bytes, opts.uf2_family)?,
        Format::IntelHex => hex::read(name, bytes)?,
        Format::Raw => Firmware {
            name: name.into(),
            format: Format::Raw,
            segments: vec![Segment {
                addr: 0,
                data: bytes.to_vec(),
            }],
            entry: None,
            notes: vec![],
            // A packed image is firmware whatever its payload looks like (bytecode may
            // well be text).
            warnings: match crate::find_image(bytes) {
                Ok(_) => vec![],
                Err(_) => sniff::not_firmware(bytes).into_iter().collect(),
            },
        },
    };
    if let Some(w) = extension_mismatch(name, format) {
        fw.warnings.push(w);
    }
    Ok(fw)
}

/// Recognises the format from the first bytes.
pub fn detect(bytes: &[u8]) -> Format {
    if bytes.starts_with(b"\x7fELF") {
        Format::Elf
    } else if uf2::is_uf2(bytes) {
        Format::Uf2
    } else if hex::looks_like_hex(bytes) {
        Format::IntelHex
    } else {
        Format::Raw
    }
}

fn extension_mismatch(name: &str, format: Format) -> Option<String> {
    let ext = std::path::Path::new(name)
        .extension()?
        .to_str()?
        .to_ascii_lowercase();
    let named = match ext.as_str() {
        "hex" | "ihex" | "ihx" => Format::IntelHex,
        "elf" | "axf" | "out" => Format::Elf,
        "uf2" => Format::Uf2,
        "bin" | "img" => Format::Raw,
        _ => return None,
    };
    (named != format).then(|| {
        format!("{name} is named like a {named} file, but its content is {format}; it is read as {format}")
    })
}
