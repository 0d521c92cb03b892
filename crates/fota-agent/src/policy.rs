//! What a device requires of the images it runs: part of its configuration.

use fota_image::TrustedKey;
use fota_protocol::{ImageRules, MAX_KEYS};

use crate::record::LogEntry;

/// What a device requires of the images it runs. Part of [`AgentConfig`](crate::AgentConfig)
/// ([`AgentConfig::images`](crate::AgentConfig::images)); `Info` reports it (tag 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImagePolicy {
    /// Check images at all. False: nothing is checked, as in an agent built without the
    /// `images` feature ([`ImagePolicy::NONE`]).
    pub check: bool,
    /// The keys whose signatures count (at most [`MAX_KEYS`] are listed in `Info`).
    pub trusted: &'static [TrustedKey],
    /// Refuse images that no trusted key signed (raw images included).
    pub require_signatures: bool,
    /// Take raw images (no trailer, so no hash and no version). A raw image that was
    /// only partly written cannot be told from a shorter one: devices that must never
    /// run one set this to false and take packed images only.
    pub allow_raw: bool,
    /// Let the host attempt an older image with `AttemptDowngrade` (the user confirmed
    /// it). Accepting it lowers the minimum version to the image's.
    pub allow_downgrade: bool,
}

impl ImagePolicy {
    /// The default: packed images have their hash (and any trusted signature)
    /// checked, raw images are taken, downgrades are allowed when asked for.
    pub const OPEN: ImagePolicy = ImagePolicy {
        check: true,
        trusted: &[],
        require_signatures: false,
        allow_raw: true,
        allow_downgrade: true,
    };

    /// No checks: any slot content may be made current (the seed's behaviour; for a
    /// platform whose boot stage checks images itself, or tests of the record alone).
    pub const NONE: ImagePolicy = ImagePolicy {
        check: false,
        trusted: &[],
        require_signatures: false,
        allow_raw: true,
        allow_downgrade: true,
    };

    /// Only images signed by one of `trusted`; no raw images, no downgrades.
    pub const fn signed(trusted: &'static [TrustedKey]) -> ImagePolicy {
        ImagePolicy {
            check: true,
            trusted,
            require_signatures: true,
            allow_raw: false,
            allow_downgrade: false,
        }
    }

    /// The rules as `Info` reports them, with the record's minimums.
    pub fn rules(&self, entry: &LogEntry) -> ImageRules {
        let mut keys = heapless::Vec::new();
        for k in self.trusted.iter().take(MAX_KEYS) {
            let _ = keys.push(k.id.0);
        }
        ImageRules {
            require_signatures: self.require_signatures,
            allow_raw: self.allow_raw && !self.require_signatures,
            allow_downgrade: self.allow_downgrade,
            vm_minimum: entry.vm_minimum,
            bc_minimum: entry.bc_minimum,
            keys,
        }
    }
}
