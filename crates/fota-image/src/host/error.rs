use crate::{ImageError, Slot};

/// Lists slots for a message: `VM slot 1 (0x00050000..0x00060000), bytecode slot 0 (...)`.
pub(crate) fn slot_list(slots: &[Slot]) -> String {
    if slots.is_empty() {
        return "none".into();
    }
    slots
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a firmware file could not be read, placed, packed, signed or verified. Every
/// variant has a [`Error::help`] that says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    #[error("cannot {action} {path}: {why}")]
    Io {
        /// `read`, `write`, `create`.
        action: &'static str,
        /// The file.
        path: String,
        /// What the system said.
        why: String,
    },
    /// The file is empty.
    #[error("{0} is empty")]
    Empty(String),
    /// A line of an Intel HEX file is not a valid record.
    #[error("{name}, line {line}: not a valid Intel HEX record: {why}")]
    HexRecord {
        /// The file.
        name: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// A record's checksum is wrong: the file is damaged.
    #[error(
        "{name}, line {line}: Intel HEX checksum is {found:02X}, the record's bytes give {computed:02X}"
    )]
    HexChecksum {
        /// The file.
        name: String,
        /// 1-based line number.
        line: usize,
        /// The checksum in the file.
        found: u8,
        /// The checksum the record's bytes give.
        computed: u8,
    },
    /// Two records (HEX), segments (ELF) or blocks (UF2) write the same address.
    #[error("{name}: {first} and {second} both write address {addr:#010x}")]
    Overlap {
        /// The file.
        name: String,
        /// The first address written twice.
        addr: u32,
        /// Where the first write is (`line 12`, `segment 1`, `block 3`).
        first: String,
        /// Where the second one is.
        second: String,
    },
    /// The file does not end as its format requires, or has structure errors.
    #[error("{name}: {why}")]
    Malformed {
        /// The file.
        name: String,
        /// What is wrong.
        why: String,
        /// The format (`Intel HEX`, `ELF`, `UF2`).
        format: &'static str,
    },
    /// An ELF built for another processor.
    #[error("{name} is an ELF for {found}, not for {expected}")]
    ElfArchitecture {
        /// The file.
        name: String,
        /// Its architecture.
        found: String,
        /// The device's.
        expected: String,
    },
    /// An ELF with nothing to load (an object file, a library).
    #[error("{name} has no loadable segments: {why}")]
    ElfNothingToLoad {
        /// The file.
        name: String,
        /// What kind of ELF it is.
        why: String,
    },
    /// A UF2 for another family of chips.
    #[error("{name} is a UF2 for family {found}, not {expected}")]
    Uf2Family {
        /// The file.
        name: String,
        /// Its families.
        found: String,
        /// The one asked for.
        expected: String,
    },
    /// A UF2 with blocks for several families, and none was chosen.
    #[error("{name} holds firmware for several chip families: {found}")]
    Uf2Families {
        /// The file.
        name: String,
        /// The families.
        found: String,
    },
    /// The data spans more address space than any firmware could.
    #[error(
        "{name} spans {span} bytes of address space ({lo:#010x}..{hi:#010x}): more than any slot"
    )]
    TooSparse {
        /// The file.
        name: String,
        /// Lowest address.
        lo: u32,
        /// One past the highest.
        hi: u64,
        /// Bytes.
        span: u64,
    },
    /// Some data lies outside every slot of the layout.
    #[error(
        "{name} {what} {lo:#010x}..{hi:#010x}, outside every slot of the layout; slots the firmware would fit: {fits}"
    )]
    OutsideSlots {
        /// The file.
        name: String,
        /// `is linked for` (all of it is outside) or `has data at` (some of it is).
        what: &'static str,
        /// First address outside the slots.
        lo: u32,
        /// One past the end of that data.
        hi: u64,
        /// Slots large enough for the whole file.
        fits: String,
    },
    /// The data falls into more than one slot.
    #[error("{name} writes into several slots: {slots}")]
    SpansSlots {
        /// The file.
        name: String,
        /// The slots it touches.
        slots: String,
    },
    /// The file is linked for one slot, and another was asked for.
    #[error("{name} is linked for {linked}, not for {asked}; slots it would fit: {fits}")]
    WrongSlot {
        /// The file.
        name: String,
        /// The slot its addresses are in.
        linked: String,
        /// The slot asked for.
        asked: String,
        /// Slots large enough for it.
        fits: String,
    },
    /// The image does not fit the slot.
    #[error("{name} needs {size} bytes, more than the {slot_size} bytes of {slot}")]
    TooLarge {
        /// The file.
        name: String,
        /// Bytes it needs (from the slot's start, with the trailer).
        size: u64,
        /// The slot.
        slot: String,
        /// Its size.
        slot_size: u32,
    },
    /// A check of the image trailer failed.
    #[error("{name}: {error}")]
    Image {
        /// The file.
        name: String,
        /// What failed.
        error: ImageError,
    },
    /// The file already is a packed image.
    #[error("{0} is already a packed image (it has a trailer)")]
    AlreadyPacked(String),
    /// The firmware holds bytes that a device would take for the start of the trailer.
    #[error(
        "{name} holds bytes at offset {offset} that read as the start of an image trailer: a device would stop there"
    )]
    TrailerLookalike {
        /// The file.
        name: String,
        /// Where, from the payload's first byte.
        offset: usize,
    },
    /// A key file that cannot be used.
    #[error("key {path}: {why}")]
    Key {
        /// The file (or the text given).
        path: String,
        /// What is wrong.
        why: String,
    },
    /// A key file that exists already.
    #[error("{0} exists already: keygen never overwrites a key")]
    KeyExists(String),
    /// A bad option value (version, name, layout, slot...).
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// What the user should do about it.
    pub fn help(&self) -> String {
        match self {
            Error::Io { .. } => "Check the path and its permissions.".into(),
            Error::Empty(_) => "Choose the built firmware file, not an empty file.".into(),
            Error::HexRecord { .. } | Error::HexChecksum { .. } => {
                "The HEX file is damaged (cut off, edited, or changed in transfer): build it or \
                 download it again."
                    .into()
            }
            Error::Overlap { .. } => "The file writes the same flash twice, so what would end \
                 up there is ambiguous. Fix the linker script or the tool that merged the file."
                .into(),
            Error::Malformed { format, .. } => {
                format!(
                    "The {format} file is damaged or incomplete: build it or download it again."
                )
            }
            Error::ElfArchitecture { .. } => "Build for the device's target (for a Cortex-M4F: \
                 thumbv7em-none-eabihf), or give --arch if the device has another processor."
                .into(),
            Error::ElfNothingToLoad { .. } => "Give the linked firmware ELF (the output of the \
                 final link, with program headers), not an object file or a library."
                .into(),
            Error::Uf2Family { .. } => "This UF2 is for another chip. Download the UF2 for this \
                 device, or give --uf2-family if the family id is right after all."
                .into(),
            Error::Uf2Families { .. } => {
                "Choose the family of this device with --uf2-family.".into()
            }
            Error::TooSparse { .. } => "Check the linker script: firmware for one slot is \
                 one contiguous region. If the file also carries data for other memories \
                 (option bytes, EEPROM, external flash), remove it or give --drop-outside."
                .into(),
            Error::OutsideSlots { .. } => "Link the firmware for a slot of this layout (its \
                 FLASH origin in the linker script), or check that the layout is the device's. \
                 If the file also carries data that FOTA never writes (configuration registers, \
                 option bytes), --drop-outside leaves it out."
                .into(),
            Error::SpansSlots { .. } => "Firmware goes into one slot: link it for one slot, \
                 and check the layout is the device's."
                .into(),
            Error::WrongSlot { .. } => "Build the firmware linked for the slot that is free \
                 (its FLASH origin), or leave the slot choice to the tool."
                .into(),
            Error::TooLarge { .. } => "Build a smaller image, or use a layout with larger \
                 slots."
                .into(),
            Error::Image { error, .. } => image_help(error).into(),
            Error::AlreadyPacked(_) => "Sign it with `fota image sign`, or pack the original \
                 firmware file."
                .into(),
            Error::TrailerLookalike { .. } => "The firmware carries a FOTA image (or a \
                 damaged one) inside it as data, which a device would take for this image's \
                 trailer. Keep that image in a slot or file of its own."
                .into(),
            Error::Key { .. } => "Give the private key `fota image keygen` wrote (PKCS#8 PEM, \
                 as `openssl genpkey -algorithm ed25519` writes too), or for checks a public key \
                 (PEM or 64 hex digits)."
                .into(),
            Error::KeyExists(_) => "Choose another file name, or delete the old key if it is \
                 surely not needed any more (images signed with it then cannot be re-signed)."
                .into(),
            Error::Usage(_) => "See `fota image --help`.".into(),
        }
    }
}

/// What to do about a failed image check.
pub fn image_help(e: &ImageError) -> &'static str {
    match e {
        ImageError::NoTrailer => {
            "Pack the firmware first (`fota image pack`): a raw image \
             carries no version, slot or signature."
        }
        ImageError::Truncated | ImageError::BadMagic | ImageError::BadHash => {
            "The image is \
             damaged or was cut off: pack it again from the build output, or download it again."
        }
        ImageError::UnsupportedFormat(_)
        | ImageError::UnknownKind(_)
        | ImageError::UnsupportedFlags(_) => {
            "The image was packed by a newer tool or is \
             damaged: update this tool, or pack it again."
        }
        ImageError::TooManySignatures(_) => "The image is damaged: pack and sign it again.",
        ImageError::WrongKind { .. } => {
            "Give a VM image for a VM slot and a bytecode image for \
             a bytecode slot."
        }
        ImageError::WrongSlot { .. } => {
            "Use the build linked for the free slot, or leave the \
             slot choice to the tool."
        }
        ImageError::BadSignature(_) => {
            "The image was changed after it was signed, or the \
             signature is damaged: sign the original image again."
        }
        ImageError::UnknownKey(_) => {
            "Sign the image with a key the device trusts (`fota \
             image sign --key`), or give that key's public half to the check (--key)."
        }
        ImageError::Unsigned => "Sign the image (`fota image sign --key KEY`).",
        ImageError::Downgrade { .. } => {
            "Install a version at least as new as the minimum, \
             or allow the downgrade explicitly where the device permits it."
        }
    }
}
