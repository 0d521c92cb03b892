use fota_protocol::{ErrorCode, Op};

/// A failure of the byte link itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The device went away (unplugged, reset, the WebSocket closed).
    #[error("the connection to the device was lost: {0}")]
    Disconnected(String),
    /// Anything else the port reported.
    #[error("the port failed: {0}")]
    Io(String),
}

/// Why an update (or a single command) stopped. Every variant has a [`HostError::help`]
/// that says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// The link failed.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// Nothing that looks like an agent answered.
    #[error("no answer from the device")]
    NoAnswer,
    /// The device refused a request; nothing was changed on it.
    #[error("the device refused {op}: {code} (detail {detail:#x})")]
    Refused {
        /// The request.
        op: Op,
        /// Why.
        code: ErrorCode,
        /// Where (see [`ErrorCode`]).
        detail: u32,
    },
    /// The device answered something that does not fit the request.
    #[error("unexpected answer from the device: {0}")]
    Protocol(String),
    /// The firmware on the device has no FOTA support.
    #[error("the firmware on this device has no FOTA support")]
    Unsupported,
    /// The agent speaks another protocol version.
    #[error("the device speaks protocol version {device}, this tool version {host}")]
    VersionMismatch {
        /// The agent's version.
        device: u16,
        /// Ours.
        host: u16,
    },
    /// The record on the device is not valid (fota\[0\] = 0): the device could not read
    /// it from flash or write it there, so it cannot record an update safely.
    #[error(
        "the FOTA record on the device is not valid: the device could not store it in flash, \
         so it cannot record an update safely; nothing was changed"
    )]
    InvalidRecord,
    /// A new configuration runs on trial and the image is not that configuration's: a
    /// trial is never overwritten.
    #[error(
        "a new configuration runs on trial (bytecode slot {bc_slot}, VM slot {vm_slot}) and \
         has not confirmed itself yet; it is not overwritten"
    )]
    TrialRunning {
        /// Its bytecode slot.
        bc_slot: u32,
        /// Its VM slot.
        vm_slot: u32,
    },
    /// The image file is empty.
    #[error("the image {0} is empty")]
    EmptyImage(String),
    /// The image does not fit the slot.
    #[error("the image {name} is {size} bytes, larger than the {slot_size}-byte slot")]
    ImageTooLarge {
        /// The image's name.
        name: String,
        /// Its size.
        size: usize,
        /// The slot's size.
        slot_size: u32,
    },
    /// The slot asked for is not one the image may go to.
    #[error("slot {index} cannot take this image: {why}")]
    BadSlot {
        /// The slot index asked for.
        index: u32,
        /// Why not.
        why: String,
    },
    /// No slot of the kind is free: each holds the current, the last working or the
    /// running firmware, or is the boot stage.
    #[error(
        "no slot is free for the new firmware: each one holds the current, the last working \
         or the running firmware (or is the boot stage)"
    )]
    NoFreeSlot,
    /// The device's MD5 of the written slot is not the image's.
    #[error("the checksum of the written slot does not match the image")]
    ChecksumMismatch {
        /// MD5 of the image.
        expected: [u8; 16],
        /// MD5 the device computed.
        device: [u8; 16],
    },
    /// The user cancelled.
    #[error("cancelled")]
    Cancelled,
    /// The firmware file cannot be read or placed in the device's layout (a HEX with a
    /// bad checksum, an ELF for another processor, a file linked for no slot...).
    #[error("{message}")]
    ImageFile {
        /// What is wrong, naming the file.
        message: String,
        /// What to do.
        help: String,
    },
    /// The device would refuse the image (checked before anything is written, as the
    /// device checks it: `Info` tag 6).
    #[error("{name} cannot go to this device: {why}")]
    ImageRefused {
        /// The image.
        name: String,
        /// The error code the device would answer.
        code: ErrorCode,
        /// Why.
        why: String,
    },
    /// The image is older than the device's minimum version: a downgrade, which needs the
    /// user's confirmation on a device that allows it.
    #[error("{name} is a downgrade from version {minimum} to {image}")]
    Downgrade {
        /// The image.
        name: String,
        /// Its version.
        image: String,
        /// The oldest version the device accepts.
        minimum: String,
        /// Whether the device allows downgrades at all.
        allowed: bool,
    },
    /// The device already runs this image (the running slot holds the same bytes).
    #[error(
        "{name} is already installed: {kind} slot {index}, which runs now, holds the same bytes"
    )]
    AlreadyInstalled {
        /// The image.
        name: String,
        /// `VM` or `bytecode`.
        kind: String,
        /// The running slot.
        index: u32,
    },
}

impl HostError {
    /// What the user should do about it.
    pub fn help(&self) -> String {
        match self {
            HostError::Link(LinkError::Disconnected(_)) => {
                "Check the cable and that the device is powered, then connect again. \
                 Flashing the same image again resumes where it stopped."
                    .into()
            }
            HostError::Link(LinkError::Io(_)) => {
                "Close other programs that use the port (serial monitors, other browser \
                 tabs) and try again."
                    .into()
            }
            HostError::NoAnswer => "Check the baud rate (the agent starts at 115200) and that \
                 the firmware on the device runs the FOTA agent. Resetting the device can help."
                .into(),
            HostError::Refused { code, .. } => match code {
                ErrorCode::SlotInUse => {
                    "Choose another slot: the current and last working slots are protected.".into()
                }
                ErrorCode::NoFreeSlot => HostError::NoFreeSlot.help(),
                ErrorCode::NotErased => "Erase the slot first (flashing does this).".into(),
                ErrorCode::FlashFailure => "The device's flash failed to erase or program \
                     there (the detail is the address), and trying again did not help: the \
                     region may be worn or write-protected. Flash again; if it fails at the \
                     same address, that part of the flash is damaged."
                    .into(),
                ErrorCode::BadFrame => {
                    "The link damaged data; a lower baud rate or a better cable helps.".into()
                }
                ErrorCode::Unsupported => "Flash a firmware built with FOTA support.".into(),
                ErrorCode::BootStage => "The boot stage is never erased or written: leave \
                     the slot to the tool (automatic), or name another slot."
                    .into(),
                ErrorCode::StreamFormat => "Send the image uncompressed (--codec none), or \
                     update the agent."
                    .into(),
                ErrorCode::BaseMismatch => "The device does not hold the base this delta was \
                     made from: send the whole image (--codec lzma)."
                    .into(),
                ErrorCode::StreamCorrupt | ErrorCode::StreamGap => "Nothing was switched: the \
                     device still runs its current firmware. Flash again: the transfer resumes."
                    .into(),
                ErrorCode::ChecksumMismatch => "Nothing was switched: the device still runs \
                     its current firmware, and the slot does not hold the image (by its MD5). \
                     Flash again: the transfer resumes and the slot is checked again."
                    .into(),
                code @ (ErrorCode::BadImage
                | ErrorCode::Unsigned
                | ErrorCode::UnknownKey
                | ErrorCode::BadSignature
                | ErrorCode::Downgrade) => image_help(*code),
                _ => {
                    "This is a bug in the tool or the agent; please report it with the log.".into()
                }
            },
            HostError::Protocol(_) => {
                "Update the tool and the agent to matching versions; save the log and report it."
                    .into()
            }
            HostError::Unsupported => "Flash a firmware built with FOTA support (over the \
                 vendor's wired tool) before updating over the air."
                .into(),
            HostError::VersionMismatch { .. } => {
                "Use the tool version that matches the agent on the device.".into()
            }
            HostError::InvalidRecord => "Restart the device: the agent reads the record \
                 again at boot and writes it if it can. If fota[0] stays 0 (fota record), the \
                 record area of the flash is worn or protected: the device keeps running its \
                 current firmware, but it must be serviced with the vendor's wired tool (erase \
                 the record area) before it can be updated over the air."
                .into(),
            HostError::TrialRunning { .. } => "Let the new firmware confirm itself, or accept \
                 it (fota accept, or Accept in the web app) if it works; or restart the device \
                 to go back to the previous firmware. Then flash again. Flashing the same image \
                 as the one on trial waits for its outcome instead."
                .into(),
            HostError::EmptyImage(_) => {
                "Choose the built image file (.bin), not an empty file.".into()
            }
            HostError::ImageTooLarge { .. } => "Build a smaller image, or link it for a layout \
                 with larger slots."
                .into(),
            HostError::BadSlot { .. } => {
                "Leave the slot to the tool (automatic), or name a free slot.".into()
            }
            HostError::NoFreeSlot => "fota record shows which slots are in use. If the \
                 device runs a configuration the record no longer names (a trial cancelled \
                 while it ran), restart it first; if a new configuration is on trial, accept it \
                 (fota accept) or restart to go back, then flash again. Where VM slot 0 is the \
                 boot stage and the other VM slot runs, attempt VM 0 again before updating the VM."
                .into(),
            HostError::ChecksumMismatch { .. } => "Nothing was switched: the device still runs \
                 its current firmware. Flash again; if it repeats, lower the baud rate."
                .into(),
            HostError::Cancelled => "Nothing was switched: the device still runs its current \
                 firmware. Flashing the same image again resumes the transfer."
                .into(),
            HostError::ImageFile { help, .. } => help.clone(),
            HostError::ImageRefused { code, .. } => image_help(*code),
            HostError::Downgrade {
                minimum, allowed, ..
            } => {
                if *allowed {
                    format!(
                        "Nothing was written. To install the older version anyway, confirm the \
                         downgrade (fota flash --allow-downgrade; the web app asks); the device \
                         then accepts versions from the downgraded one on. Otherwise flash \
                         version {minimum} or newer."
                    )
                } else {
                    format!(
                        "Nothing was written. This device never takes an older version: flash \
                         version {minimum} or newer."
                    )
                }
            }
            HostError::AlreadyInstalled { .. } => "Nothing to do, nothing was written. To \
                 write it into the other slot anyway, flash with --reinstall."
                .into(),
        }
    }
}

/// What to do about an image the device refuses (or would refuse).
fn image_help(code: ErrorCode) -> String {
    match code {
        ErrorCode::Unsigned => "Nothing was switched. Sign the image with a key the device \
             trusts (fota image sign --key KEY IMAGE; fota info lists the device's key ids), \
             then flash the signed file."
            .into(),
        ErrorCode::UnknownKey => "Nothing was switched. Sign the image with one of the keys \
             the device trusts (fota info lists their ids): fota image sign --key KEY IMAGE."
            .into(),
        ErrorCode::BadSignature => "Nothing was switched. The image was changed after it was \
             signed: flash the file as released, or sign it again."
            .into(),
        ErrorCode::Downgrade => "Nothing was switched. Flash a newer version, or confirm a \
             downgrade where the device allows it (fota flash --allow-downgrade)."
            .into(),
        _ => "Nothing was switched. Pack the firmware for this device (fota image pack, which \
             checks the slot it is linked for), or take the file as released: it may be \
             damaged or cut off."
            .into(),
    }
}
