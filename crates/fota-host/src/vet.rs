//! What an image file is, and whether the device will take it, checked before anything
//! is written. Pure functions over the file's bytes and the device's `Info`: the CLI and
//! the web app call the same ones.
//!
//! - [`prepare`]: read a firmware file in any format (raw `.bin`, Intel HEX, ELF, UF2;
//!   `fota_image::host`) into the bytes of a slot of the device's layout, with what the
//!   file is ([`ImageFacts`]) and warnings.
//! - [`vet`]: refuse what the device would refuse (its rules, `Info` tag 6: signatures,
//!   raw images, minimum version), with a message that says what to do; say when it is a
//!   downgrade that needs the user's confirmation.

use fota_image::host::{Layout, ReadOptions, place, read_firmware};
use fota_image::{ImageError, KeyId, Slot, Version, find_image};
use fota_protocol::{ErrorCode, ImageRules, Info, SlotDesc, SlotKind, unpack_version};

use crate::{HostError, Image};

/// What an image file holds, as shown before flashing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFacts {
    /// A FOTA image (firmware and trailer), or raw firmware.
    pub packed: bool,
    /// The kind the trailer names.
    pub kind: Option<SlotKind>,
    /// The version the trailer names.
    pub version: Option<Version>,
    /// The name the trailer names (may be empty).
    pub name: Option<String>,
    /// The slot address it is linked for (`None`: any slot of its kind, or raw).
    pub linked_for: Option<u32>,
    /// The ids of the keys that signed it.
    pub signed_by: Vec<KeyId>,
    /// Why the trailer is not valid, if it is not (a damaged or cut-off image).
    pub problem: Option<ImageError>,
}

impl ImageFacts {
    /// The facts of an image's bytes (from the slot's first byte).
    pub fn of(bytes: &[u8]) -> ImageFacts {
        let mut facts = ImageFacts {
            packed: false,
            kind: None,
            version: None,
            name: None,
            linked_for: None,
            signed_by: Vec::new(),
            problem: None,
        };
        match find_image(bytes) {
            Ok(img) => {
                let h = img.trailer.header;
                facts.packed = true;
                facts.kind = Some(h.kind.into());
                facts.version = Some(h.version);
                facts.name = h.name().map(str::to_owned);
                facts.linked_for = (h.slot_addr != fota_image::ANY_SLOT).then_some(h.slot_addr);
                facts.signed_by = img.trailer.signatures().map(|s| s.key_id).collect();
                if !img.hash_matches() {
                    facts.problem = Some(ImageError::BadHash);
                }
            }
            Err(ImageError::NoTrailer) => {}
            Err(e) => {
                facts.packed = true;
                facts.problem = Some(e);
            }
        }
        facts
    }

    /// One line: `version 1.2.3, signed by 3097e2dee2cb4a34` or `raw image (no trailer:
    /// no version, unsigned)`.
    pub fn summary(&self) -> String {
        if !self.packed {
            return "raw image (no FOTA trailer: no version, unsigned)".into();
        }
        if let Some(p) = self.problem {
            return format!("damaged FOTA image: {p}");
        }
        let mut parts = Vec::new();
        if let Some(name) = self.name.as_deref().filter(|n| !n.is_empty()) {
            parts.push(format!("\"{name}\""));
        }
        if let Some(v) = self.version {
            parts.push(format!("version {v}"));
        }
        if let Some(k) = self.kind {
            parts.push(format!("{} image", kind_word(k)));
        }
        match self.linked_for {
            Some(a) => parts.push(format!("linked for the slot at {a:#x}")),
            None => parts.push("for any slot of its kind".into()),
        }
        if self.signed_by.is_empty() {
            parts.push("unsigned".into());
        } else {
            let ids: Vec<String> = self.signed_by.iter().map(|k| k.to_string()).collect();
            parts.push(format!("signed by {}", ids.join(", ")));
        }
        parts.join(", ")
    }
}

/// A file read for a device: the image to flash, the slot its addresses select (if any),
/// what it is, and warnings to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The bytes from the slot's first byte.
    pub image: Image,
    /// The slot an addressed file (HEX, ELF, UF2) is linked for; `None` for a raw file.
    pub slot: Option<SlotDesc>,
    /// The file's format (raw binary, Intel HEX, ELF, UF2).
    pub format: fota_image::host::Format,
    /// What the image in it is.
    pub facts: ImageFacts,
    /// The format and other facts (`Intel HEX`, `UF2 family ...`).
    pub notes: Vec<String>,
    /// Things that look wrong but do not stop it (a picture, a text file...).
    pub warnings: Vec<String>,
}

/// The device's slots as a layout for the file readers.
pub fn layout_of(info: &Info) -> Layout {
    Layout::new(info.slots.iter().map(Slot::from).collect())
}

/// Read the firmware file `name` (its `bytes`, any supported format) for a slot of `kind`
/// on the device `info` describes. An addressed file must fall inside one slot of that
/// kind; a raw file keeps the automatic slot choice.
pub fn prepare(
    name: &str,
    bytes: &[u8],
    info: &Info,
    kind: SlotKind,
) -> Result<Prepared, HostError> {
    let file_error = |e: fota_image::host::Error| HostError::ImageFile {
        message: e.to_string(),
        help: e.help(),
    };
    let fw = read_firmware(name, bytes, &ReadOptions::default()).map_err(file_error)?;
    let layout = layout_of(info);
    let placed = place(&fw, Some(&layout), None, false).map_err(file_error)?;
    let slot = placed.slot.map(|s| SlotDesc {
        kind: s.kind.into(),
        index: s.index,
        addr: s.addr,
        size: s.size,
    });
    if let Some(s) = slot
        && s.kind != kind
    {
        return Err(HostError::ImageFile {
            message: format!(
                "{name} is linked for {} slot {} at {:#x}, not a {} slot",
                kind_word(s.kind),
                s.index,
                s.addr,
                kind_word(kind)
            ),
            help: format!(
                "Give it as the {} image{}.",
                kind_word(s.kind),
                if s.kind == SlotKind::Vm {
                    " (--vm)"
                } else {
                    ""
                }
            ),
        });
    }
    let mut warnings = fw.warnings.clone();
    warnings.extend(placed.warnings.iter().cloned());
    let facts = ImageFacts::of(&placed.bytes);
    let image = Image::new(name, placed.bytes)?;
    Ok(Prepared {
        image,
        slot,
        format: fw.format,
        facts,
        notes: fw.notes,
        warnings,
    })
}

/// What [`vet`] found acceptable, to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vetted {
    /// The image is older than the device's minimum and the user allowed the downgrade:
    /// `(image version, minimum)`. Flash with `AttemptDowngrade`.
    pub downgrade: Option<(Version, Version)>,
}

/// Whether the device described by `rules` (its `Info` tag 6; `None`: a device that
/// checks nothing) will take `image` in `slot`, checked as the device checks it (the
/// signatures themselves only by key id: the host does not know the device's keys).
/// `allow_downgrade`: the user confirmed a downgrade.
pub fn vet(
    image: &Image,
    slot: &SlotDesc,
    rules: Option<&ImageRules>,
    allow_downgrade: bool,
) -> Result<Vetted, HostError> {
    let name = &image.name;
    let refuse = |code: ErrorCode, why: String| HostError::ImageRefused {
        name: name.clone(),
        code,
        why,
    };
    let facts = ImageFacts::of(image.data());
    let mut vetted = Vetted { downgrade: None };
    if facts.packed {
        // Damage, kind and slot: refused by any device that checks images, and never
        // worth flashing anyway.
        if let Some(p) = facts.problem {
            return Err(refuse(ErrorCode::BadImage, p.to_string()));
        }
        if facts.kind != Some(slot.kind) {
            return Err(refuse(
                ErrorCode::BadImage,
                format!(
                    "it is a {} image, not a {} one",
                    facts.kind.map_or("?", kind_word),
                    kind_word(slot.kind)
                ),
            ));
        }
        if let Some(a) = facts.linked_for
            && a != slot.addr
        {
            return Err(refuse(
                ErrorCode::BadImage,
                format!(
                    "it is linked for the slot at {a:#x}, and would go to {} slot {} at {:#x}",
                    kind_word(slot.kind),
                    slot.index,
                    slot.addr
                ),
            ));
        }
    }
    let Some(rules) = rules else {
        return Ok(vetted);
    };
    if !facts.packed {
        if rules.require_signatures {
            return Err(refuse(
                ErrorCode::Unsigned,
                "it is a raw image and the device runs only signed images".into(),
            ));
        }
        if !rules.allow_raw {
            return Err(refuse(
                ErrorCode::BadImage,
                "it is a raw image and the device takes only packed images".into(),
            ));
        }
    }
    if rules.require_signatures {
        if facts.signed_by.is_empty() {
            return Err(refuse(
                ErrorCode::Unsigned,
                "it is not signed and the device runs only signed images".into(),
            ));
        }
        if !facts.signed_by.iter().any(|k| rules.keys.contains(&k.0)) {
            let ids: Vec<String> = facts.signed_by.iter().map(|k| k.to_string()).collect();
            return Err(refuse(
                ErrorCode::UnknownKey,
                format!(
                    "it is signed by {}, a key the device does not trust (it trusts {})",
                    ids.join(", "),
                    key_list(&rules.keys)
                ),
            ));
        }
    }
    let minimum = match slot.kind {
        SlotKind::Vm => rules.vm_minimum,
        SlotKind::Bytecode => rules.bc_minimum,
    };
    if minimum != 0 {
        let (a, b, c) = unpack_version(minimum);
        let min = Version::new(a, b, c);
        let older = match facts.version {
            Some(v) => v < min,
            None => true, // a raw image has no version
        };
        if older {
            let shown = facts
                .version
                .map_or_else(|| "a raw image (no version)".into(), |v| v.to_string());
            if !rules.allow_downgrade || !allow_downgrade {
                return Err(HostError::Downgrade {
                    name: name.clone(),
                    image: shown,
                    minimum: min.to_string(),
                    allowed: rules.allow_downgrade,
                });
            }
            vetted.downgrade = Some((facts.version.unwrap_or(Version::new(0, 0, 0)), min));
        }
    }
    Ok(vetted)
}

/// The device's rules in plain words, for `fota info` and the web app.
pub fn describe_rules(rules: Option<&ImageRules>) -> String {
    let Some(r) = rules else {
        return "no image checks (any slot content can be made current)".into();
    };
    let mut parts = Vec::new();
    if r.require_signatures {
        parts.push(format!("signed images only (keys {})", key_list(&r.keys)));
    } else if r.allow_raw {
        parts.push("packed images verified, raw images taken".into());
    } else {
        parts.push("packed images only".into());
    }
    for (kind, m) in [("VM", r.vm_minimum), ("bytecode", r.bc_minimum)] {
        if m != 0 {
            let (a, b, c) = unpack_version(m);
            parts.push(format!("{kind} version {} or newer", Version::new(a, b, c)));
        }
    }
    parts.push(if r.allow_downgrade {
        "downgrades allowed when confirmed".into()
    } else {
        "no downgrades".into()
    });
    parts.join(", ")
}

fn key_list(keys: &[[u8; 8]]) -> String {
    if keys.is_empty() {
        return "no key".into();
    }
    keys.iter()
        .map(|k| KeyId(*k).to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn kind_word(k: SlotKind) -> &'static str {
    k.label()
}

/// The update's check of its images before anything is written ([`crate::update`]):
/// each image is described to the observer, refused as the device would refuse it, and
/// refused when the device already runs every one (with `plan.check_installed`; one that
/// runs among new ones is only mentioned). Returns whether a
/// confirmed downgrade needs `AttemptDowngrade`.
pub(crate) async fn vet_jobs<T: crate::Transport>(
    dev: &mut crate::Device<T>,
    info: &Info,
    record: &fota_protocol::Record,
    jobs: &[(SlotDesc, &Image)],
    plan: &crate::Plan,
) -> Result<bool, HostError> {
    let mut downgrade = false;
    let mut installed = Vec::new();
    for (slot, image) in jobs {
        let facts = ImageFacts::of(image.data());
        let vetted = vet(image, slot, info.images.as_ref(), plan.allow_downgrade)?;
        dev.observer().step(
            crate::Step::SlotChoice,
            &format!("{}: {}", image.name, facts.summary()),
        );
        if let Some((v, min)) = vetted.downgrade {
            downgrade = true;
            dev.observer().step(
                crate::Step::SlotChoice,
                &format!("{}: downgrade from {min} to {v}, as confirmed", image.name),
            );
        }
        if plan.check_installed {
            let running = match slot.kind {
                SlotKind::Vm => record.running_vm,
                SlotKind::Bytecode => record.running_bc,
            };
            if let Some(r) = fota_protocol::Layout::slot(info, slot.kind, running)
                && image.len() <= r.size as usize
            {
                let md5 = dev
                    .checksum_slot(r.addr, image.len() as u32, &mut |_, _, _, _| {})
                    .await?;
                if md5 == image.md5() {
                    installed.push(HostError::AlreadyInstalled {
                        name: image.name.clone(),
                        kind: kind_word(slot.kind).into(),
                        index: running,
                    });
                }
            }
        }
    }
    // Nothing new to do only when every image already runs; otherwise say which do.
    if plan.check_installed && installed.len() == jobs.len() {
        if let Some(e) = installed.into_iter().next() {
            return Err(e);
        }
    } else {
        for e in &installed {
            dev.observer().step(crate::Step::SlotChoice, &e.to_string());
        }
    }
    Ok(downgrade)
}
