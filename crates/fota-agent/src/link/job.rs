//! The long request in progress: an erase, a checksum, a stream or an image check, run a
//! bounded step at a time.

use crate::agent::{ChecksumOp, EraseOp};
use crate::stream::StreamJob;

use super::cache::Key;

/// The long request in progress.
#[derive(Debug, Clone)]
pub(super) struct Job {
    pub(super) id: u16,
    pub(super) work: Work,
    /// Its key in the cache of replies.
    pub(super) key: Key,
}

impl Job {
    /// No request (all zeros).
    pub(super) const IDLE: Job = Job {
        id: 0,
        work: Work::Erase(EraseOp::EMPTY),
        key: Key::NONE,
    };
}

#[derive(Debug, Clone)]
pub(super) enum Work {
    Erase(EraseOp),
    Checksum(ChecksumOp),
    Stream(StreamJob),
    /// `Attempt`, `AttemptDowngrade` or `SetRecord` while the images are verified.
    #[cfg(feature = "images")]
    Check(crate::images::CheckOp),
}
