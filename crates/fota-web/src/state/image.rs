//! Firmware files as the user chose them: read with fota-image's readers (the CLI's), and
//! placed in the slot their addresses select on the connected device's layout.

use std::rc::Rc;
use std::sync::Arc;

use fota_host::protocol::SlotDesc;
use fota_host::{ImageFacts, Problem};
use fota_image::host::{Firmware, Format, ReadOptions, read_firmware};
use fota_sim::images::ImageInfo;
use md5::Digest;

use super::format::{kind_name, size};

/// A firmware image chosen by the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFile {
    pub name: String,
    /// The bytes that go to the slot (for a file with addresses, from the slot's start,
    /// gaps filled with 0xFF), shared with the update's [`fota_host::Image`] (no copy).
    pub data: Arc<Vec<u8>>,
    pub md5: [u8; 16],
    /// The sample header, for the simulator's images.
    pub header: Option<ImageInfo>,
    /// What the file was (raw binary, Intel HEX, ELF, UF2).
    pub format: Format,
    /// A file with addresses (HEX, ELF, UF2), as read: placed in the slot its addresses
    /// select once the device's layout is known.
    pub firmware: Option<Rc<Firmware>>,
    /// The slot its addresses selected.
    pub placed: Option<SlotDesc>,
    /// Facts worth showing (`UF2 family ...`, `ELF for ARM`).
    pub notes: Vec<String>,
    /// What looks wrong but does not stop it ("this looks like a picture, not
    /// firmware"), shown before anything is written.
    pub warnings: Vec<String>,
    /// The SHA-256 a firmware manifest gave for it, which it matched.
    pub manifest_sha256: Option<[u8; 32]>,
    /// What its image trailer says (name, version, kind, slot, signatures), or that it
    /// is raw: fota-host's reading, the CLI's.
    pub facts: ImageFacts,
}

impl ImageFile {
    /// Read a file as a build produced it (raw, Intel HEX, ELF or UF2, recognised from
    /// its content): the same readers as the `fota` CLI's.
    pub fn read(name: String, bytes: Vec<u8>) -> Result<ImageFile, Problem> {
        if bytes.is_empty() {
            // Refused when loaded, with the same words as every empty image.
            return Ok(ImageFile::raw(name, bytes));
        }
        let fw =
            read_firmware(&name, &bytes, &ReadOptions::default()).map_err(|e| image_problem(&e))?;
        if fw.has_addresses() {
            // Until it is placed: the data from its lowest address.
            let (placed, _) = fota_image::host::place_or_describe(&fw, None, false);
            let mut image = ImageFile::raw(name, placed.bytes);
            image.format = fw.format;
            image.notes = fw.notes.clone();
            image.warnings = fw.warnings.clone();
            image.firmware = Some(Rc::new(fw));
            Ok(image)
        } else {
            let mut image = ImageFile::raw(name, bytes);
            image.warnings = fw.warnings;
            image.notes = fw.notes;
            Ok(image)
        }
    }

    /// Bytes with no address (the samples, a raw binary).
    pub fn raw(name: String, data: Vec<u8>) -> ImageFile {
        let md5: [u8; 16] = md5::Md5::digest(&data).into();
        let header = fota_sim::images::parse_image(&data);
        let facts = ImageFacts::of(&data);
        ImageFile {
            name,
            data: Arc::new(data),
            md5,
            header,
            format: Format::Raw,
            firmware: None,
            placed: None,
            notes: Vec::new(),
            warnings: Vec::new(),
            manifest_sha256: None,
            facts,
        }
    }

    /// "signed by key 3097e2dee2cb4a34" (each key) or "unsigned".
    pub fn signature(&self) -> String {
        if self.facts.signed_by.is_empty() {
            return "unsigned".into();
        }
        let ids: Vec<String> = self.facts.signed_by.iter().map(|k| k.to_string()).collect();
        format!(
            "signed by key{} {}",
            if ids.len() == 1 { "" } else { "s" },
            ids.join(", ")
        )
    }

    /// The file's format and where its addresses put it, for the image card.
    pub fn describe(&self) -> String {
        match (&self.firmware, self.placed) {
            (None, _) => self.format.to_string(),
            (Some(fw), Some(slot)) => format!(
                "{}, {} at 0x{:08X}: {} slot {}",
                self.format,
                size(fw.data_len()),
                fw.span().map_or(0, |(lo, _)| lo),
                kind_name(slot.kind),
                slot.index
            ),
            (Some(fw), None) => format!(
                "{}, {} at 0x{:08X}: its slot is chosen by its addresses once connected",
                self.format,
                size(fw.data_len()),
                fw.span().map_or(0, |(lo, _)| lo),
            ),
        }
    }
}

/// A reader's or placement's error, with its help. Not capitalised: these start with
/// the file's name.
pub(super) fn image_problem(e: &fota_image::host::Error) -> Problem {
    let mut message = e.to_string();
    if !message.ends_with('.') {
        message.push('.');
    }
    Problem {
        message,
        help: e.help(),
    }
}
