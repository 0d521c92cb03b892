//! Why a request or the agent's start was refused: [`Refusal`], [`AgentError`].

use fota_protocol::{ErrorCode, Reply};

use crate::config::ConfigError;

/// A refused or failed request: what the wire protocol sends as `Reply::Error`.
///
/// A refusal (every code but [`ErrorCode::FlashFailure`]) leaves flash and record exactly
/// as they were. A flash failure may leave the range it names partly done; the record
/// stays valid either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Refusal {
    /// What went wrong.
    pub code: ErrorCode,
    /// Where: an address, a length, a slot index (see each [`ErrorCode`]).
    pub detail: u32,
}

impl Refusal {
    pub(crate) const fn new(code: ErrorCode, detail: u32) -> Refusal {
        Refusal { code, detail }
    }

    /// The reply that carries this refusal.
    pub const fn reply(&self) -> Reply {
        Reply::Error {
            code: self.code,
            detail: self.detail,
        }
    }
}

impl core::fmt::Display for Refusal {
    /// The code's message and the detail, in hex (an address, a length or an index: see
    /// each [`ErrorCode`]).
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} (detail {:#x})", self.code, self.detail)
    }
}

impl core::error::Error for Refusal {}

/// Why [`Agent::boot`] could not start the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum AgentError {
    /// The configuration does not fit the flash: a firmware build mistake.
    Config(ConfigError),
    /// The record area could not be read. Field: the address. The platform should not
    /// guess a configuration: reset and try again.
    Flash(u32),
}

impl From<ConfigError> for AgentError {
    fn from(e: ConfigError) -> Self {
        AgentError::Config(e)
    }
}

impl core::fmt::Display for AgentError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AgentError::Config(e) => write!(f, "the agent's configuration does not fit: {e}"),
            AgentError::Flash(addr) => write!(f, "the record area cannot be read at {addr:#010x}"),
        }
    }
}

impl core::error::Error for AgentError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            AgentError::Config(e) => Some(e),
            AgentError::Flash(_) => None,
        }
    }
}
