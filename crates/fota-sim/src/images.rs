//! Sample firmware images for the simulated device.
//!
//! The simulated firmware decides from the image it booted whether it is healthy (it
//! calls `accept`), faulty (it hangs before it does, so the watchdog restarts it and the
//! boot falls back to the last working configuration) or healthy but never accepting (it
//! runs on, so it stays on trial until the next restart, which brings back the last
//! working one). That decision is written in a small header at the start of every sample
//! image:
//!
//! | offset | size | field                                                          |
//! |-------:|-----:|----------------------------------------------------------------|
//! |      0 |    9 | magic `b"ZFOTA-SIM"`                                           |
//! |      9 |    1 | header format version, `1`                                     |
//! |     10 |    1 | kind: `0` VM, `1` bytecode (the protocol's [`SlotKind`] codes) |
//! |     11 |    1 | health: `b'H'` healthy, `b'F'` faulty, `b'U'` healthy but never accepts (unconfirmed); anything else is invalid |
//! |     12 |   16 | version, UTF-8, NUL-padded                                     |
//! |     28 |   32 | name, UTF-8, NUL-padded                                        |
//! |     60 |    4 | payload length, u32 little-endian                              |
//! |     64 |   16 | MD5 of the payload                                             |
//! |     80 |    … | payload                                                        |
//!
//! The health byte uses two letters rather than a flag bit so that a single damaged bit
//! cannot turn a faulty image into a healthy one. The payload is pseudo-random, seeded
//! from the name and version, so the same sample is byte-identical on every machine
//! without shipping files. Bytes after the payload are ignored: a slot holds an image
//! followed by whatever was there (usually erased `0xFF`).
//!
//! An image whose header or payload does not check out (garbage, erased flash, a torn or
//! half-written update) is [`ImageHealth::NotAnImage`], which the simulated firmware
//! treats like a faulty one.
//!
//! A bytecode program (`fota_bytecode`, `docs/BYTECODE.md`), which the QEMU firmware
//! really runs, is an image too: the simulated firmware runs it dry, and it is healthy
//! when it calls `accept` within [`PROGRAM_ACCEPT_LIMIT_MS`].

use md5::{Digest, Md5};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

pub use fota_protocol::SlotKind;

/// The first bytes of every sample image.
pub const MAGIC: &[u8; 9] = b"ZFOTA-SIM";
/// The header format described in the module docs.
pub const HEADER_VERSION: u8 = 1;
/// Header bytes before the payload.
pub const HEADER_LEN: usize = 80;
/// Longest version string, in bytes.
pub const MAX_VERSION: usize = 16;
/// Longest name, in bytes.
pub const MAX_NAME: usize = 32;

const HEALTHY: u8 = b'H';
const FAULTY: u8 = b'F';
// Two bits or more from either other letter, as they are from each other.
const NEVER_ACCEPTS: u8 = b'U';

const OFF_HEADER_VERSION: usize = 9;
const OFF_KIND: usize = 10;
const OFF_HEALTH: usize = 11;
const OFF_VERSION: usize = 12;
const OFF_NAME: usize = OFF_VERSION + MAX_VERSION;
const OFF_LEN: usize = OFF_NAME + MAX_NAME;
const OFF_MD5: usize = OFF_LEN + 4;

/// What the simulated firmware makes of the image it booted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageHealth {
    /// A valid image that calls `accept` once it runs.
    Healthy,
    /// A valid image that hangs before it calls `accept`: the watchdog resets it.
    Faulty,
    /// A valid image that runs well but never calls `accept`: nothing resets it (a
    /// watchdog resets only a firmware that hangs), so it stays on trial until the next
    /// restart brings back the last working one.
    NeverAccepts,
    /// Not a valid image (garbage, erased, damaged): behaves as faulty.
    NotAnImage,
}

impl ImageHealth {
    /// Whether firmware booted from this image calls `accept`.
    pub fn accepts(self) -> bool {
        self == ImageHealth::Healthy
    }
}

/// A program that has not accepted after this long (virtual time) counts as faulty.
pub const PROGRAM_ACCEPT_LIMIT_MS: u32 = 60_000;

/// The header of a valid image, as [`parse_image`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// Header bytes before the payload ([`HEADER_LEN`], or a program's 64).
    pub header_len: usize,
    /// VM or bytecode.
    pub kind: SlotKind,
    /// Whether the firmware runs without hanging (it passes its self-test).
    pub healthy: bool,
    /// Whether it calls `accept` once it runs (a healthy image may not).
    pub accepts: bool,
    /// Version string, e.g. `"2"` or `"3-broken"`.
    pub version: String,
    /// Firmware name, e.g. `"blink"`.
    pub name: String,
    /// Payload bytes after the header.
    pub payload_len: u32,
    /// MD5 of the payload.
    pub md5: [u8; 16],
}

impl ImageInfo {
    /// Header plus payload: the bytes an update must write.
    pub fn total_len(&self) -> usize {
        self.header_len + self.payload_len as usize
    }

    /// [`ImageHealth::Healthy`], [`ImageHealth::NeverAccepts`] or [`ImageHealth::Faulty`].
    pub fn health(&self) -> ImageHealth {
        match (self.healthy, self.accepts) {
            (true, true) => ImageHealth::Healthy,
            (true, false) => ImageHealth::NeverAccepts,
            (false, _) => ImageHealth::Faulty,
        }
    }
}

/// Builds an image: header, then `size` bytes of payload seeded from `name` and `version`.
///
/// `name` and `version` longer than [`MAX_NAME`] / [`MAX_VERSION`] bytes are cut at a
/// character boundary to fit.
///
/// # Panics
/// If `size` does not fit in the header's 32-bit length (4 GiB).
pub fn sample_image(
    kind: SlotKind,
    name: &str,
    version: &str,
    healthy: bool,
    size: usize,
) -> Vec<u8> {
    build(
        kind,
        name,
        version,
        if healthy { HEALTHY } else { FAULTY },
        size,
    )
}

/// Builds an image like [`sample_image`] whose firmware runs well but never calls
/// `accept` ([`ImageHealth::NeverAccepts`]).
pub fn never_accepting_image(kind: SlotKind, name: &str, version: &str, size: usize) -> Vec<u8> {
    build(kind, name, version, NEVER_ACCEPTS, size)
}

fn build(kind: SlotKind, name: &str, version: &str, health: u8, size: usize) -> Vec<u8> {
    let name = truncate(name, MAX_NAME);
    let version = truncate(version, MAX_VERSION);
    let len = u32::try_from(size).expect("sample payload larger than 4 GiB");

    let mut payload = vec![0u8; size];
    ChaCha8Rng::seed_from_u64(payload_seed(name, version)).fill_bytes(&mut payload);
    let md5: [u8; 16] = Md5::digest(&payload).into();

    let mut image = Vec::with_capacity(HEADER_LEN + size);
    image.extend_from_slice(MAGIC);
    image.push(HEADER_VERSION);
    image.push(kind as u8);
    image.push(health);
    push_padded(&mut image, version.as_bytes(), MAX_VERSION);
    push_padded(&mut image, name.as_bytes(), MAX_NAME);
    image.extend_from_slice(&len.to_le_bytes());
    image.extend_from_slice(&md5);
    debug_assert_eq!(image.len(), HEADER_LEN);
    image.extend_from_slice(&payload);
    image
}

/// Reads and checks an image at the start of `bytes` (which may run on past it, as a
/// whole slot does). `None` if anything is wrong: magic, header fields, a truncated or
/// damaged payload.
pub fn parse_image(bytes: &[u8]) -> Option<ImageInfo> {
    if bytes.starts_with(&fota_bytecode::image::MAGIC) {
        return parse_program(bytes);
    }
    let header = bytes.get(..HEADER_LEN)?;
    if &header[..MAGIC.len()] != MAGIC || header[OFF_HEADER_VERSION] != HEADER_VERSION {
        return None;
    }
    let kind = match header[OFF_KIND] {
        0 => SlotKind::Vm,
        1 => SlotKind::Bytecode,
        _ => return None,
    };
    let (healthy, accepts) = match header[OFF_HEALTH] {
        HEALTHY => (true, true),
        FAULTY => (false, false),
        NEVER_ACCEPTS => (true, false),
        _ => return None,
    };
    let version = padded_str(&header[OFF_VERSION..OFF_NAME])?;
    let name = padded_str(&header[OFF_NAME..OFF_LEN])?;
    let payload_len = u32::from_le_bytes(header[OFF_LEN..OFF_MD5].try_into().ok()?);
    let md5: [u8; 16] = header[OFF_MD5..HEADER_LEN].try_into().ok()?;

    let end = HEADER_LEN.checked_add(usize::try_from(payload_len).ok()?)?;
    let payload = bytes.get(HEADER_LEN..end)?;
    if <[u8; 16]>::from(Md5::digest(payload)) != md5 {
        return None;
    }
    Some(ImageInfo {
        header_len: HEADER_LEN,
        kind,
        healthy,
        accepts,
        version,
        name,
        payload_len,
        md5,
    })
}

/// A bytecode program: checked, then run dry to see whether it accepts.
fn parse_program(bytes: &[u8]) -> Option<ImageInfo> {
    let mut src = bytes;
    let max = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    let header = fota_bytecode::check(&mut src, max).ok()?;
    let len = usize::try_from(header.image_len()).ok()?;
    let image = bytes.get(..len)?;
    let code = image.get(fota_bytecode::image::HEADER_LEN..)?;
    let accepts = fota_bytecode::dry_run(image, PROGRAM_ACCEPT_LIMIT_MS).accepts();
    Some(ImageInfo {
        header_len: fota_bytecode::image::HEADER_LEN,
        kind: SlotKind::Bytecode,
        healthy: accepts,
        accepts,
        version: header.version().to_owned(),
        name: header.name().to_owned(),
        payload_len: header.code_len,
        md5: Md5::digest(code).into(),
    })
}

/// What firmware booted from `bytes` does.
pub fn image_health(bytes: &[u8]) -> ImageHealth {
    parse_image(bytes).map_or(ImageHealth::NotAnImage, |info| info.health())
}

/// Payload size of the canned bytecode samples.
pub const BLINK_SIZE: usize = 32 * 1024;
/// Payload size of the canned VM sample.
pub const VM_SIZE: usize = 48 * 1024;

/// Healthy bytecode "blink" v1: what a factory-fresh simulated device runs.
pub fn blink_v1() -> Vec<u8> {
    sample_image(SlotKind::Bytecode, "blink", "1", true, 24 * 1024)
}

/// Healthy bytecode "blink" v2: an update that works and accepts itself.
pub fn blink_v2() -> Vec<u8> {
    sample_image(SlotKind::Bytecode, "blink", "2", true, BLINK_SIZE)
}

/// Faulty bytecode "blink" v3-broken: it boots but never accepts, so the device reverts.
pub fn blink_v3_broken() -> Vec<u8> {
    sample_image(SlotKind::Bytecode, "blink", "3-broken", false, BLINK_SIZE)
}

/// Bytecode "blink" v4-no-accept: it runs well but never calls `accept`, so it stays on
/// trial (nothing resets it) until the next restart brings back the last working one.
pub fn blink_v4_never_accepts() -> Vec<u8> {
    never_accepting_image(SlotKind::Bytecode, "blink", "4-no-accept", BLINK_SIZE)
}

/// Healthy VM image "zvm" 2.0, for the VM+bytecode layout.
pub fn vm_v2() -> Vec<u8> {
    sample_image(SlotKind::Vm, "zvm", "2.0", true, VM_SIZE)
}

/// Seed of a payload: stable across platforms and crate versions, unlike `Hash`.
fn payload_seed(name: &str, version: &str) -> u64 {
    let mut h = Md5::new();
    h.update(name.as_bytes());
    h.update([0u8]); // keeps ("ab", "c") and ("a", "bc") apart
    h.update(version.as_bytes());
    let d: [u8; 16] = h.finalize().into();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    u64::from_le_bytes(first)
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn push_padded(out: &mut Vec<u8>, s: &[u8], width: usize) {
    out.extend_from_slice(s);
    out.resize(out.len() + (width - s.len()), 0);
}

/// A NUL-padded UTF-8 field: text, then only NULs (so junk after the text is rejected).
fn padded_str(field: &[u8]) -> Option<String> {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    if field[end..].iter().any(|&b| b != 0) {
        return None;
    }
    std::str::from_utf8(&field[..end]).ok().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let img = sample_image(SlotKind::Vm, "zvm", "2.0", true, 1000);
        assert_eq!(img.len(), HEADER_LEN + 1000);
        assert_eq!(&img[..9], b"ZFOTA-SIM");
        let info = parse_image(&img).unwrap();
        assert_eq!(info.kind, SlotKind::Vm);
        assert!(info.healthy);
        assert_eq!(info.version, "2.0");
        assert_eq!(info.name, "zvm");
        assert_eq!(info.payload_len, 1000);
        assert_eq!(info.total_len(), img.len());
        let md5: [u8; 16] = Md5::digest(&img[HEADER_LEN..]).into();
        assert_eq!(info.md5, md5);
    }

    #[test]
    fn canned_samples() {
        for (img, name, version, kind, health) in [
            (
                blink_v1(),
                "blink",
                "1",
                SlotKind::Bytecode,
                ImageHealth::Healthy,
            ),
            (
                blink_v2(),
                "blink",
                "2",
                SlotKind::Bytecode,
                ImageHealth::Healthy,
            ),
            (
                blink_v3_broken(),
                "blink",
                "3-broken",
                SlotKind::Bytecode,
                ImageHealth::Faulty,
            ),
            (vm_v2(), "zvm", "2.0", SlotKind::Vm, ImageHealth::Healthy),
        ] {
            let info = parse_image(&img).unwrap();
            assert_eq!((info.name.as_str(), info.version.as_str()), (name, version));
            assert_eq!(info.kind, kind);
            assert_eq!(image_health(&img), health);
            assert!((24 * 1024..=48 * 1024 + HEADER_LEN).contains(&img.len()));
        }
        assert!(image_health(&blink_v2()).accepts());
        assert!(!image_health(&blink_v3_broken()).accepts());
    }

    #[test]
    fn deterministic_and_seeded_by_name_and_version() {
        assert_eq!(blink_v2(), blink_v2());
        let a = sample_image(SlotKind::Bytecode, "blink", "2", true, 256);
        let b = sample_image(SlotKind::Bytecode, "blink", "4", true, 256);
        let c = sample_image(SlotKind::Bytecode, "blinky", "2", true, 256);
        assert_ne!(a[HEADER_LEN..], b[HEADER_LEN..]);
        assert_ne!(a[HEADER_LEN..], c[HEADER_LEN..]);
        // A larger sample starts with the same payload bytes (one stream per seed).
        let big = sample_image(SlotKind::Bytecode, "blink", "2", true, 512);
        assert_eq!(a[HEADER_LEN..], big[HEADER_LEN..HEADER_LEN + 256]);
    }

    #[test]
    fn trailing_bytes_are_ignored() {
        let mut slot = blink_v2();
        slot.resize(64 * 1024, 0xFF);
        assert_eq!(image_health(&slot), ImageHealth::Healthy);
    }

    #[test]
    fn damaged_payload_is_not_an_image() {
        let mut img = blink_v2();
        let last = img.len() - 1;
        img[last] ^= 0x01;
        assert_eq!(image_health(&img), ImageHealth::NotAnImage);
        let mut img = blink_v2();
        img[HEADER_LEN] &= 0x0F; // a torn program
        assert_eq!(image_health(&img), ImageHealth::NotAnImage);
    }

    #[test]
    fn truncated_image_is_not_an_image() {
        let img = blink_v2();
        assert_eq!(image_health(&img[..img.len() - 1]), ImageHealth::NotAnImage);
        assert_eq!(
            image_health(&img[..HEADER_LEN - 1]),
            ImageHealth::NotAnImage
        );
        assert_eq!(image_health(&[]), ImageHealth::NotAnImage);
        // Half written, the rest still erased.
        let mut slot = vec![0xFF; img.len()];
        slot[..img.len() / 2].copy_from_slice(&img[..img.len() / 2]);
        assert_eq!(image_health(&slot), ImageHealth::NotAnImage);
    }

    #[test]
    fn garbage_and_erased_flash_are_not_images() {
        assert_eq!(image_health(&[0xFF; 4096]), ImageHealth::NotAnImage);
        assert_eq!(image_health(&[0x00; 4096]), ImageHealth::NotAnImage);
        let mut noise = vec![0u8; 4096];
        ChaCha8Rng::seed_from_u64(1).fill_bytes(&mut noise);
        assert_eq!(image_health(&noise), ImageHealth::NotAnImage);
    }

    #[test]
    fn a_never_accepting_image_is_healthy_but_does_not_accept() {
        let info = parse_image(&blink_v4_never_accepts()).expect("valid");
        assert!(info.healthy && !info.accepts);
        assert_eq!(info.health(), ImageHealth::NeverAccepts);
        assert!(!ImageHealth::NeverAccepts.accepts());
        assert_eq!(info.version, "4-no-accept");
        let healthy = parse_image(&blink_v2()).expect("valid");
        assert_eq!(healthy.health(), ImageHealth::Healthy);
        assert_eq!(image_health(&blink_v3_broken()), ImageHealth::Faulty);
    }

    #[test]
    fn damaged_header_fields_are_rejected() {
        let img = blink_v3_broken();
        for (offset, value) in [
            (0, b'X'),                   // magic
            (OFF_HEADER_VERSION, 2),     // unknown header format
            (OFF_KIND, 7),               // unknown kind
            (OFF_HEALTH, HEALTHY ^ 1),   // one bit off a health letter
            (OFF_HEALTH, FAULTY | 0x0E), // a flipped health byte is neither letter
            (OFF_VERSION + 15, b'x'),    // junk after the version text
            (OFF_NAME, 0xC3),            // invalid UTF-8
            (OFF_LEN, 0xFF),             // wrong length: payload too short or MD5 off
            (OFF_MD5, 0),                // wrong digest
        ] {
            let mut bad = img.clone();
            bad[offset] = value;
            assert_eq!(
                image_health(&bad),
                ImageHealth::NotAnImage,
                "offset {offset}"
            );
        }
    }

    #[test]
    fn single_bit_flips_never_make_a_faulty_image_healthy() {
        let img = blink_v3_broken();
        for bit in 0..8 {
            let mut bad = img.clone();
            bad[OFF_HEALTH] ^= 1 << bit;
            assert_ne!(image_health(&bad), ImageHealth::Healthy);
        }
    }

    #[test]
    fn long_name_and_version_are_cut_to_fit() {
        let name = "é".repeat(20); // 40 bytes
        let img = sample_image(SlotKind::Bytecode, &name, "1.2.3-beta.4+build.5", true, 16);
        let info = parse_image(&img).unwrap();
        assert_eq!(info.name, "é".repeat(16));
        assert_eq!(info.version, "1.2.3-beta.4+bui");
    }

    #[test]
    fn bytecode_programs_are_images_that_run_dry() {
        use fota_bytecode::{assemble, samples};
        let healthy = assemble(samples::BLINK_V2).unwrap();
        let info = parse_image(&healthy).unwrap();
        assert_eq!((info.name.as_str(), info.version.as_str()), ("blink", "2"));
        assert_eq!(info.total_len(), healthy.len());
        assert_eq!(image_health(&healthy), ImageHealth::Healthy);
        let mut slot = healthy.clone();
        slot.resize(64 * 1024, 0xFF);
        assert_eq!(image_health(&slot), ImageHealth::Healthy);
        for src in [samples::BLINK_V3_BROKEN, samples::BLINK_V4_FAILING] {
            assert_eq!(image_health(&assemble(src).unwrap()), ImageHealth::Faulty);
        }
        let mut torn = healthy.clone();
        torn[healthy.len() / 2] ^= 4;
        assert_eq!(image_health(&torn), ImageHealth::NotAnImage);
    }

    #[test]
    fn empty_payload_is_valid() {
        let img = sample_image(SlotKind::Bytecode, "", "", false, 0);
        assert_eq!(img.len(), HEADER_LEN);
        assert_eq!(image_health(&img), ImageHealth::Faulty);
    }
}
