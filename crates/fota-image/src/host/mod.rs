//! The host side (feature `std`): reading firmware files into slots, keys, packing,
//! signing, inspecting, and errors with help texts.

mod elf;
mod error;
mod firmware;
mod hex;
mod input;
mod keys;
mod layout;
mod pack;
mod sniff;
pub mod uf2;

pub use error::{Error, image_help};
pub use firmware::{Arch, Firmware, Format, Segment};
pub use input::{ReadOptions, detect, read_firmware};
pub use keys::{PublicKey, SigningKey};
pub use layout::{Layout, MAX_SPAN, Placed, parse_size, parse_slot_name, place, place_or_describe};
pub use pack::{
    Inspection, PackOptions, SignatureReport, TrailerReport, hex, human_size, inspect,
    inspect_placed, name_field, pack, sign,
};
