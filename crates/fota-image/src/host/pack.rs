//! Packing firmware into an image, signing it, and describing any file.

use super::Error;
use super::firmware::{Firmware, Format};
use super::keys::{PublicKey, SigningKey};
use super::layout::Placed;
use crate::{
    ANY_SLOT, Header, ImageError, ImageRef, KeyId, Kind, MAX_SIGNATURES, NAME_LEN,
    SIGNATURE_ENTRY_LEN, SignatureEntry, Slot, Version, encode_fixed, find_image, signature_valid,
};

/// What goes into a trailer besides the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackOptions {
    /// VM or bytecode.
    pub kind: Kind,
    /// The slot address the payload is linked for, or [`ANY_SLOT`].
    pub slot_addr: u32,
    /// Firmware version.
    pub version: Version,
    /// Name, at most 32 bytes of UTF-8.
    pub name: String,
}

/// The name field for `name`, or why it cannot be one.
pub fn name_field(name: &str) -> Result<[u8; NAME_LEN], Error> {
    if name.len() > NAME_LEN || name.contains('\0') {
        return Err(Error::Usage(format!(
            "the image name \"{name}\" is longer than {NAME_LEN} bytes or contains a NUL"
        )));
    }
    let mut field = [0u8; NAME_LEN];
    field[..name.len()].copy_from_slice(name.as_bytes());
    Ok(field)
}

/// The image of `payload`: the payload, then its trailer signed by `keys`. `name` names
/// the file in errors.
pub fn pack(
    name: &str,
    payload: &[u8],
    opts: &PackOptions,
    keys: &[&SigningKey],
) -> Result<Vec<u8>, Error> {
    if payload.is_empty() {
        return Err(Error::Empty(name.into()));
    }
    // The device takes the first trailer it finds: a payload must not hold one, valid
    // or not.
    match find_image(payload) {
        Ok(_) => return Err(Error::AlreadyPacked(name.into())),
        // A magic in the last bytes: whether it reads as a trailer once the real one
        // follows is checked on the packed image below.
        Err(ImageError::NoTrailer | ImageError::Truncated) => {}
        Err(_) => {
            return Err(Error::TrailerLookalike {
                name: name.into(),
                offset: crate::locate_trailer(payload).unwrap_or(0),
            });
        }
    }
    if keys.len() > MAX_SIGNATURES {
        return Err(Error::Usage(format!(
            "{} keys: an image carries at most {MAX_SIGNATURES} signatures",
            keys.len()
        )));
    }
    let payload_len = u32::try_from(payload.len())
        .ok()
        .filter(|&n| n != ANY_SLOT)
        .ok_or_else(|| Error::Usage(format!("{name} is larger than 4 GiB")))?;
    let mut header = Header {
        kind: opts.kind,
        payload_len,
        slot_addr: opts.slot_addr,
        version: opts.version,
        name: name_field(&opts.name)?,
        sha256: [0; 32],
    };
    header.sha256 = header.hash_of(payload);
    let mut out = Vec::with_capacity(payload.len() + 96 + keys.len() * SIGNATURE_ENTRY_LEN);
    out.extend_from_slice(payload);
    out.extend_from_slice(&encode_fixed(&header, 0));
    match crate::locate_trailer(&out) {
        Ok(at) if at == payload.len() => {}
        Ok(at) => {
            return Err(Error::TrailerLookalike {
                name: name.into(),
                offset: at,
            });
        }
        Err(_) => {
            return Err(Error::TrailerLookalike {
                name: name.into(),
                offset: payload.len(),
            });
        }
    }
    for key in keys {
        out = sign(name, &out, key)?.0;
    }
    Ok(out)
}

/// Adds `key`'s signature to the image in `image`. Returns the new image and whether a
/// signature was added (false: the key had signed it already, nothing changed). Bytes
/// after the trailer are left out.
pub fn sign(name: &str, image: &[u8], key: &SigningKey) -> Result<(Vec<u8>, bool), Error> {
    let img = find_image(image).map_err(|error| Error::Image {
        name: name.into(),
        error,
    })?;
    let header = img.trailer.header;
    if !img.hash_matches() {
        return Err(Error::Image {
            name: name.into(),
            error: ImageError::BadHash,
        });
    }
    let mut entries: Vec<SignatureEntry> = img.trailer.signatures().collect();
    let id = key.id();
    if let Some(old) = entries.iter().find(|e| e.key_id == id) {
        if signature_valid(&key.public().0, &header, &old.signature) {
            return Ok((image[..img.len()].to_vec(), false));
        }
        return Err(Error::Image {
            name: name.into(),
            error: ImageError::BadSignature(id),
        });
    }
    if entries.len() >= MAX_SIGNATURES {
        return Err(Error::Image {
            name: name.into(),
            error: ImageError::TooManySignatures(entries.len() as u32 + 1),
        });
    }
    entries.push(SignatureEntry {
        key_id: id,
        signature: key.sign(&header),
    });
    let mut out = Vec::with_capacity(img.len() + SIGNATURE_ENTRY_LEN);
    out.extend_from_slice(img.payload);
    out.extend_from_slice(&encode_fixed(&header, entries.len() as u32));
    for e in &entries {
        out.extend_from_slice(&e.encode());
    }
    Ok((out, true))
}

/// A signature as `inspect` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureReport {
    /// The key that made it.
    pub key_id: KeyId,
    /// `Some(true)` verified, `Some(false)` does not verify, `None` not checked (the key
    /// was not given).
    pub valid: Option<bool>,
}

/// The trailer of a packed image, as `inspect` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailerReport {
    /// Its header.
    pub header: Header,
    /// Whether the hash matches the payload.
    pub hash_ok: bool,
    /// Bytes of the trailer.
    pub trailer_len: usize,
    /// Bytes after the trailer (ignored by a device).
    pub rest_len: usize,
    /// The signatures.
    pub signatures: Vec<SignatureReport>,
}

/// Everything `fota image inspect` shows about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// The file as read.
    pub format: Format,
    /// Its name.
    pub name: String,
    /// Facts from the reader.
    pub notes: Vec<String>,
    /// Data ranges: (first address, bytes). A raw file: one range at 0.
    pub ranges: Vec<(u32, u64)>,
    /// The entry point the file names.
    pub entry: Option<u32>,
    /// The slot it goes to, if known.
    pub slot: Option<Slot>,
    /// Bytes a slot would hold (payload and trailer).
    pub slot_bytes: usize,
    /// The trailer, if the file is a packed image; else why not.
    pub trailer: Result<TrailerReport, ImageError>,
    /// Warnings from reading and placing.
    pub warnings: Vec<String>,
    /// Why the file cannot go into the layout, if it cannot (with its help text).
    pub placement: Option<(String, String)>,
}

/// Describes a file read and placed, checking signatures against `keys`.
pub fn inspect(fw: &Firmware, placed: &Placed, keys: &[PublicKey]) -> Inspection {
    inspect_placed(fw, placed, None, keys)
}

/// [`inspect`] with the error [`super::place_or_describe`] gave, if any.
pub fn inspect_placed(
    fw: &Firmware,
    placed: &Placed,
    placement: Option<&Error>,
    keys: &[PublicKey],
) -> Inspection {
    let trailer = find_image(&placed.bytes).map(|img: ImageRef<'_>| {
        let header = img.trailer.header;
        TrailerReport {
            header,
            hash_ok: img.hash_matches(),
            trailer_len: img.trailer.len(),
            rest_len: img.rest.len(),
            signatures: img
                .trailer
                .signatures()
                .map(|e| SignatureReport {
                    key_id: e.key_id,
                    valid: keys
                        .iter()
                        .find(|k| k.id() == e.key_id)
                        .map(|k| signature_valid(&k.0, &header, &e.signature)),
                })
                .collect(),
        }
    });
    let mut warnings = fw.warnings.clone();
    warnings.extend(placed.warnings.iter().cloned());
    Inspection {
        format: fw.format,
        name: fw.name.clone(),
        notes: fw.notes.clone(),
        ranges: fw
            .segments
            .iter()
            .map(|s| (s.addr, s.data.len() as u64))
            .collect(),
        entry: fw.entry,
        slot: placed.slot,
        slot_bytes: placed.bytes.len(),
        trailer,
        warnings,
        placement: placement.map(|e| (e.to_string(), e.help())),
    }
}

/// `1.5 KiB`, `238.1 KiB`.
pub fn human_size(n: u64) -> String {
    if n < 1024 {
        format!("{n} B")
    } else if n < 1024 * 1024 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{:.2} MiB", n as f64 / (1024.0 * 1024.0))
    }
}

/// Lower-case hex ([`crate::Hex`]) as a `String`: digests and key ids in reports, JSON
/// and the web page. It lives here, where an allocator exists, and every host-side crate
/// (fota-host, the CLI, the web app) reaches it.
pub fn hex(bytes: &[u8]) -> String {
    crate::Hex(bytes).to_string()
}

impl Inspection {
    /// The report as lines of text.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut line = |k: &str, v: String| out.push(format!("{k:<12}{v}"));
        let notes = if self.notes.is_empty() {
            String::new()
        } else {
            format!(", {}", self.notes.join(", "))
        };
        line("file", format!("{}: {}{notes}", self.name, self.format));
        for (i, (addr, len)) in self.ranges.iter().enumerate() {
            let k = if i == 0 { "data" } else { "" };
            if self.format == Format::Raw {
                line(k, format!("{len} bytes ({}), no address", human_size(*len)));
            } else {
                line(
                    k,
                    format!(
                        "{addr:#010x}..{:#010x}  {len} bytes ({})",
                        u64::from(*addr) + len,
                        human_size(*len)
                    ),
                );
            }
        }
        if let Some(e) = self.entry {
            line("entry", format!("{e:#010x}"));
        }
        let linked = self
            .trailer
            .as_ref()
            .ok()
            .map(|t| (t.header.kind, t.header.slot_addr));
        line(
            "slot",
            match (self.slot, &self.placement, linked) {
                (Some(s), _, _) => s.to_string(),
                (None, Some((e, _)), _) => format!("none: {e}"),
                (None, None, Some((kind, ANY_SLOT))) => {
                    format!("any {kind} slot (from the trailer)")
                }
                (None, None, Some((kind, addr))) => {
                    format!("the {kind} slot at {addr:#010x} (from the trailer)")
                }
                (None, None, None) if self.format == Format::Raw => {
                    "any free one (a raw file has no address)".into()
                }
                (None, None, None) => "unknown (give --layout to check the addresses)".into(),
            },
        );
        if let Some((_, help)) = &self.placement {
            line("", format!("help: {help}"));
        }
        match &self.trailer {
            Err(ImageError::NoTrailer) => line(
                "image",
                "raw firmware, not packed (no version, no signature): `fota image pack` makes an image"
                    .into(),
            ),
            Err(e) => line("image", format!("damaged trailer: {e}")),
            Ok(t) => {
                let h = &t.header;
                line(
                    "image",
                    format!(
                        "FOTA image, format 1: {} bytes of payload, {} bytes of trailer",
                        h.payload_len, t.trailer_len
                    ),
                );
                line(
                    "name",
                    h.name().map_or("(not UTF-8)".into(), |n| {
                        if n.is_empty() { "(none)".into() } else { n.into() }
                    }),
                );
                line("version", h.version.to_string());
                line("kind", h.kind.to_string());
                line(
                    "linked for",
                    if h.slot_addr == ANY_SLOT {
                        format!("any {} slot", h.kind)
                    } else {
                        format!("the slot at {:#010x}", h.slot_addr)
                    },
                );
                line(
                    "sha256",
                    format!(
                        "{} ({})",
                        hex(&h.sha256),
                        if t.hash_ok { "matches" } else { "DOES NOT MATCH: damaged" }
                    ),
                );
                if t.signatures.is_empty() {
                    line("signed", "no (unsigned)".into());
                }
                for (i, s) in t.signatures.iter().enumerate() {
                    let state = match s.valid {
                        Some(true) => "verified",
                        Some(false) => "DOES NOT VERIFY",
                        None => "not checked (give its public key with --key)",
                    };
                    line(
                        if i == 0 { "signed by" } else { "" },
                        format!("key {}: {state}", s.key_id),
                    );
                }
                if t.rest_len > 0 {
                    line("after", format!("{} bytes after the trailer (ignored)", t.rest_len));
                }
            }
        }
        for w in &self.warnings {
            out.push(format!("warning: {w}"));
        }
        out
    }
}
