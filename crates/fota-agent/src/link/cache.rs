//! The cache of recent replies, so that a resent request is answered without running it
//! again.

use fota_protocol::Op;

use super::REPLY_CACHE;
use super::reply::Answer;
use crate::agent::Changes;

/// The cache key of a request: its operation, body length and body CRC. Only requests
/// worth answering again without running them have one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Key {
    pub(super) op: u8,
    pub(super) len: u16,
    pub(super) crc: u32,
}

impl Key {
    pub(super) fn of(op: u8, body: &[u8]) -> Key {
        let cached = matches!(
            Op::from_request(op),
            Some(
                Op::EraseSlot
                    | Op::WriteSlot
                    | Op::ChecksumSlot
                    | Op::SetRecord
                    | Op::Attempt
                    | Op::AttemptDowngrade
                    | Op::Accept
            )
        );
        if !cached {
            return Key::NONE;
        }
        Key {
            op,
            // The link refuses bodies longer than RX_PAYLOAD: fits a u16.
            len: u16::try_from(body.len()).unwrap_or(u16::MAX),
            crc: fota_protocol::crc32(body),
        }
    }

    /// Not cached (op 0 is no request).
    pub(super) const NONE: Key = Key {
        op: 0,
        len: 0,
        crc: 0,
    };
}

/// The replies of the last [`REPLY_CACHE`] requests that have a [`Key`], with what the
/// flash had seen when each was done.
#[derive(Debug, Clone, Copy)]
pub(super) struct ReplyCache {
    /// An entry whose key is `Key::NONE` is empty (so that a new cache is all zeros).
    pub(super) entries: [(Key, Changes, Answer); REPLY_CACHE],
    pub(super) next: usize,
}

impl ReplyCache {
    pub(super) const EMPTY: ReplyCache = ReplyCache {
        entries: [(
            Key::NONE,
            Changes::NONE,
            Answer::Erased { addr: 0, size: 0 },
        ); REPLY_CACHE],
        next: 0,
    };

    /// The reply to `key`, if it was done and nothing it depends on changed since: for a
    /// write, nothing erased (other writes do not undo it); for the rest, no change at
    /// all (a checksum or an erase is stale after any write, a record reply after any
    /// record change).
    pub(super) fn find(&self, key: Key, now: Changes) -> Option<Answer> {
        if key == Key::NONE {
            return None;
        }
        self.entries.iter().find_map(|&(k, then, answer)| {
            let fresh = match answer {
                Answer::Written { .. } => then.erased == now.erased,
                _ => then == now,
            };
            (k == key && fresh).then_some(answer)
        })
    }

    pub(super) fn keep(&mut self, key: Key, answer: Answer, now: Changes) {
        if key == Key::NONE {
            return;
        }
        // Only requests with a key get here, and their successes are small answers.
        if let Some(slot) = self.entries.get_mut(self.next % REPLY_CACHE) {
            *slot = (key, now, answer);
        }
        self.next = (self.next + 1) % REPLY_CACHE;
    }
}
