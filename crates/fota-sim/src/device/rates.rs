//! What a UART line delivers when its two ends may run at different rates: the bytes
//! that arrived by now, noise where they were sent at a rate other than the receiver's.

use std::collections::VecDeque;

use crate::line::Line;

/// Bytes that reached the far end of `line` by `now`, garbled where they were sent at a
/// rate other than the receiver's.
pub(super) fn take_line(
    line: &mut Line,
    epochs: &mut VecDeque<(u64, u32)>,
    send_baud: u32,
    recv_baud: u32,
    now: u64,
    garble_mismatch: bool,
) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(&(end, baud)) = epochs.front() {
        let mut seg = line.deliver(now.min(end));
        if garble_mismatch && baud != recv_baud {
            garble(&mut seg);
        }
        out.extend(seg);
        if end > now {
            return out;
        }
        epochs.pop_front();
    }
    let mut seg = line.deliver(now);
    if garble_mismatch && send_baud != recv_baud {
        garble(&mut seg);
    }
    out.extend(seg);
    out
}

/// What a byte sent at one baud rate looks like when read at another: noise.
fn garble(bytes: &mut [u8]) {
    for b in bytes {
        *b = b.rotate_left(3) ^ 0x5A;
    }
}
