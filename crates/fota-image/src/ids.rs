//! The values a trailer names (the kind of a slot, a firmware version, a key id) and the
//! hex form of bytes: plain data, used by the format, the verifier and their errors.

use core::fmt;

use sha2::{Digest, Sha256};

/// What a slot holds, with the codes of the protocol's slot kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// A virtual machine: native code that starts with its vector table.
    Vm = 0,
    /// Bytecode run by a VM.
    Bytecode = 1,
}

impl Kind {
    /// The kind of a code, if it is one.
    pub const fn from_u8(code: u8) -> Option<Kind> {
        match code {
            0 => Some(Kind::Vm),
            1 => Some(Kind::Bytecode),
            _ => None,
        }
    }

    /// A lower-case name for messages: `VM` or `bytecode`.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::Vm => "VM",
            Kind::Bytecode => "bytecode",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A firmware version. Versions compare as (major, minor, patch): the anti-rollback
/// counter is this whole triple.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Version {
    /// Incompatible changes.
    pub major: u16,
    /// Compatible additions.
    pub minor: u16,
    /// Fixes (or a build number).
    pub patch: u32,
}

impl Version {
    /// `major.minor.patch`.
    pub const fn new(major: u16, minor: u16, patch: u32) -> Version {
        Version {
            major,
            minor,
            patch,
        }
    }

    /// The version as one number that orders like the version (for a counter kept in
    /// a record): `major << 48 | minor << 32 | patch`.
    pub const fn as_u64(self) -> u64 {
        ((self.major as u64) << 48) | ((self.minor as u64) << 32) | self.patch as u64
    }

    /// The version [`Version::as_u64`] made.
    pub const fn from_u64(v: u64) -> Version {
        Version {
            major: (v >> 48) as u16,
            minor: (v >> 32) as u16,
            patch: v as u32,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Why a version string does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadVersion;

impl fmt::Display for BadVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a version is MAJOR.MINOR.PATCH (like 1.4.0; MAJOR and MINOR up to 65535)")
    }
}

impl core::error::Error for BadVersion {}

impl core::str::FromStr for Version {
    type Err = BadVersion;

    /// `1`, `1.2` or `1.2.3`, with an optional leading `v`.
    fn from_str(s: &str) -> Result<Version, BadVersion> {
        let s = s.strip_prefix('v').unwrap_or(s);
        let mut parts = s.split('.');
        let mut next = || {
            parts
                .next()
                .map(|p| p.parse::<u32>().map_err(|_| BadVersion))
        };
        let major = next().ok_or(BadVersion)??;
        let minor = next().transpose()?.unwrap_or(0);
        let patch = next().transpose()?.unwrap_or(0);
        if parts.next().is_some() {
            return Err(BadVersion);
        }
        Ok(Version {
            major: u16::try_from(major).map_err(|_| BadVersion)?,
            minor: u16::try_from(minor).map_err(|_| BadVersion)?,
            patch,
        })
    }
}

/// Names a public key: the first 8 bytes of the SHA-256 of its 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 8]);

impl KeyId {
    /// The id of an Ed25519 public key.
    pub fn of(public: &[u8; 32]) -> KeyId {
        let digest = Sha256::digest(public);
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        KeyId(id)
    }
}

impl fmt::Display for KeyId {
    /// 16 lower-case hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Hex(&self.0).fmt(f)
    }
}

/// Bytes shown as lower-case hex digits (`{}` of it), without an allocator: key ids,
/// digests. The one hex formatter of the project; [`crate::host::hex`] makes a `String`
/// of it. (Two digits a byte: not worth a dependency.)
#[derive(Debug, Clone, Copy)]
pub struct Hex<'a>(pub &'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}
