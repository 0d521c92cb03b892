//! The fixed numbers of the image trailer (docs/IMAGE.md) and of its verifier, apart from
//! the code that uses them so that the errors can name them too.

/// The first bytes of a trailer.
pub const MAGIC: [u8; 8] = *b"FOTA-IMG";
/// The trailer format this crate reads and writes.
pub const FORMAT_VERSION: u8 = 1;
/// Bytes of the trailer the signatures cover (magic to hash).
pub const SIGNED_LEN: usize = 92;
/// Bytes of the trailer the hash covers, after the payload (magic to name).
pub const HASHED_HEADER_LEN: usize = 60;
/// Bytes of the trailer before the signatures.
pub const FIXED_LEN: usize = 96;
/// Bytes of one signature entry (key id and signature).
pub const SIGNATURE_ENTRY_LEN: usize = 72;
/// Most signatures one trailer may carry.
pub const MAX_SIGNATURES: usize = 8;
/// The longest trailer.
pub const MAX_TRAILER_LEN: usize = FIXED_LEN + MAX_SIGNATURES * SIGNATURE_ENTRY_LEN;
/// Bytes of the name field.
pub const NAME_LEN: usize = 32;
/// The slot address of a payload that runs from any slot of its kind (position
/// independent, such as bytecode).
pub const ANY_SLOT: u32 = 0xFFFF_FFFF;

/// The smallest read buffer [`crate::Verifier::step`] works with.
pub const MIN_BUFFER: usize = 64;
