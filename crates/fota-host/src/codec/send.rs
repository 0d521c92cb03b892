//! Sending a compressed or delta stream: `StreamBegin`, then its frames in a window with
//! the erases they need interleaved, then its end.

use fota_codec::stream::Stream;
use fota_protocol::{ErrorCode, Info, Op, Reply, Request, SlotDesc};

use crate::device::refused;
use crate::{Device, HostError, Phase, Progress, Transport};

/// One request of a stream's pipeline before its erases and frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lead {
    /// The device's MD5 of a delta's base not checked yet.
    Check,
    /// `StreamBegin`.
    Begin,
}

/// Send `stream` into `slot`, only the blocks for which `needed(offset, len)` holds
/// (resume), through `StreamBegin` and a window of `StreamData` frames, with the
/// `EraseSlot`s of `erases` interleaved ahead of their blocks
/// ([`crate::stream_erases::StreamErases`]), the base in the slot at `base` (`NO_BASE`:
/// none). `check`: a delta's base not checked yet, `(its length, the MD5 it must have)`:
/// its `ChecksumSlot` goes first in the same pipeline, `StreamBegin` right behind it and
/// the erases and frames behind that, none waiting for an answer (the agent runs them in
/// order; a base that is not the one the delta was made from is refused by `StreamBegin`
/// itself, and the device's MD5 says so first). Returns the stream bytes sent, or `None`
/// when the device's MD5 of the base is not `check`'s (or `StreamBegin` finds another
/// base): the stream is not in the slot.
#[allow(clippy::too_many_arguments)]
pub(super) async fn send_stream<T: Transport>(
    dev: &mut Device<T>,
    info: &Info,
    slot: &SlotDesc,
    stream: &Stream,
    base: u32,
    check: Option<(u32, [u8; 16])>,
    needed: &dyn Fn(u32, u32) -> bool,
    total_image: u64,
    erases: &mut crate::stream_erases::StreamErases,
) -> Result<Option<u64>, HostError> {
    let bytes = stream.select(needed);
    let (header, body) = bytes.split_at(fota_codec::format::HEADER_LEN.min(bytes.len()));
    // Where each block sent starts in the body, with its image offset and length.
    let mut at = 0usize;
    let mut selected: Vec<(u32, u32, usize)> = Vec::new();
    for b in stream.blocks() {
        if needed(b.offset, b.len) {
            selected.push((b.offset, b.len, at));
            at += b.bytes.len();
        }
    }
    erases.assign(&selected);
    let begin = Request::StreamBegin {
        addr: slot.addr,
        base,
        header,
    };
    let chunk = usize::from(info.max_write).max(1);
    let t = dev.now();
    let mut sent = 0u64;
    // The image bytes the agent says it wrote, for progress.
    let mut written = 0u64;
    let mut rounds = 0u32;
    let mut restarts = 0u32;
    // How long the first erase answered held the agent: from the answer before it (or
    // the window's start) to its own, the flash erasing alone (what the report counts
    // as erase time, as for the raw image; the base's check before it is the stream's).
    let mut first_erase: Option<core::time::Duration> = None;
    let end = Request::StreamData {
        offset: body.len() as u32,
        data: &[],
    };
    // The base's MD5 is asked for once: its answer settles it.
    let mut check = check;
    'stream: loop {
        let mut from = 0usize;
        // Whether the agent answered the end.
        let mut ended = false;
        // Each round begins the stream, ahead of its erases and frames.
        let mut lead: Vec<Lead> = Vec::new();
        if check.is_some() {
            lead.push(Lead::Check);
        }
        lead.push(Lead::Begin);
        sent += header.len() as u64;
        loop {
            let items = erases.schedule(from, body.len(), chunk);
            let erases_ref = &*erases;
            let p = lead.len();
            // The last frame sent of this window (its index in `items`): an erase before
            // it is never sent again (crate::stream_erases::StreamErases::take_passed).
            let last_frame: core::cell::Cell<Option<usize>> = core::cell::Cell::new(None);
            let begun = core::cell::Cell::new(false);
            // Set when the base is not the delta's: nothing more is sent (resent either),
            // and the answers to what was are awaited, so that the agent's queue is empty
            // before the host goes on without this stream.
            let abandon = core::cell::Cell::new(false);
            // Behind the last frame, the stream's end (request `p + items.len()`): sent
            // at once, not a round trip after the last frame's answer; the agent runs it
            // after that frame, and answers it with a gap if a frame before it was lost.
            // Frames do not wait for the erases ahead of them (the agent runs them in
            // order), and an erase goes again only while no frame went behind it.
            // `StreamBegin` is never sent again within a window: sent again behind frames
            // it would begin the stream anew under them; lost, the frames behind it
            // meet no stream (`StreamGap` 0xFFFFFFFF) and the stream begins again.
            let make = |i: usize| {
                if abandon.get() {
                    return None;
                }
                if let Some(l) = lead.get(i) {
                    return match l {
                        Lead::Check => check.map(|(len, _)| Request::ChecksumSlot {
                            addr: base,
                            size: len,
                        }),
                        Lead::Begin => (!begun.replace(true)).then_some(begin),
                    };
                }
                let i = i - p;
                match items.get(i) {
                    Some(crate::stream_erases::StreamItem::Erase(e)) => {
                        if last_frame.get().is_some_and(|f| f > i) {
                            None
                        } else {
                            Some(erases_ref.request(*e))
                        }
                    }
                    Some(crate::stream_erases::StreamItem::Frame { a, b, .. }) => {
                        last_frame.set(Some(last_frame.get().map_or(i, |f| f.max(i))));
                        Some(Request::StreamData {
                            offset: *a as u32,
                            data: &body[*a..*b],
                        })
                    }
                    None => Some(end),
                }
            };
            let answered = core::cell::RefCell::new(erases.answered().to_vec());
            let mut gap: Option<u32> = None;
            // The agent ended the stream (an erase it lost: a frame met bytes not erased).
            let mut gone = false;
            // The base is not the one the delta was made from.
            let mut other_base = false;
            let mut checked = false;
            let mut taken = from as u32;
            let mut last_answer = dev.now();
            let r = dev
                .pipeline_some(
                    p + items.len() + 1,
                    &make,
                    &|_| true,
                    &mut |obs, now, i, reply| {
                        let since = now - core::mem::replace(&mut last_answer, now);
                        if abandon.get() {
                            return Ok(());
                        }
                        if let Some(l) = lead.get(i) {
                            return match (l, reply) {
                                (Lead::Check, Reply::Checksum(md5)) => {
                                    checked = true;
                                    if check.is_none_or(|(_, want)| want != md5) {
                                        other_base = true;
                                        abandon.set(true);
                                    }
                                    Ok(())
                                }
                                (Lead::Check, other) => Err(refused(Op::ChecksumSlot, &other)),
                                (Lead::Begin, Reply::StreamBegun { .. }) => Ok(()),
                                (
                                    Lead::Begin,
                                    Reply::Error {
                                        code: ErrorCode::BaseMismatch,
                                        ..
                                    },
                                ) if check.is_some() => {
                                    other_base = true;
                                    abandon.set(true);
                                    Ok(())
                                }
                                (Lead::Begin, other) => Err(refused(Op::StreamBegin, &other)),
                            };
                        }
                        let Some(&item) = items.get(i - p) else {
                            // The end's answer.
                            return match reply {
                                Reply::Streamed { .. } => {
                                    ended = true;
                                    Ok(())
                                }
                                Reply::Error {
                                    code: ErrorCode::StreamGap,
                                    detail,
                                } => {
                                    if detail == u32::MAX {
                                        gone = true;
                                    } else {
                                        gap = gap.or(Some(detail));
                                    }
                                    Err(HostError::Cancelled)
                                }
                                other => Err(refused(Op::StreamData, &other)),
                            };
                        };
                        match (item, reply) {
                            (crate::stream_erases::StreamItem::Erase(e), Reply::Erased { .. }) => {
                                answered.borrow_mut()[e] = true;
                                first_erase.get_or_insert(since);
                                Ok(())
                            }
                            (crate::stream_erases::StreamItem::Erase(_), other) => {
                                Err(refused(Op::EraseSlot, &other))
                            }
                            (
                                crate::stream_erases::StreamItem::Frame { .. },
                                Reply::Streamed {
                                    received,
                                    written: w,
                                },
                            ) => {
                                taken = taken.max(received);
                                written = u64::from(w);
                                obs.progress(&progress(written, total_image, now - t));
                                Ok(())
                            }
                            (
                                crate::stream_erases::StreamItem::Frame { .. },
                                Reply::Error {
                                    code: ErrorCode::StreamGap,
                                    detail,
                                },
                            ) => {
                                // A frame before this one was lost: stop, go on from where
                                // the agent stands; or the agent ended the stream.
                                if detail == u32::MAX {
                                    gone = true;
                                } else {
                                    gap = gap.or(Some(detail));
                                }
                                Err(HostError::Cancelled)
                            }
                            (
                                crate::stream_erases::StreamItem::Frame { .. },
                                Reply::Error {
                                    code: ErrorCode::NotErased,
                                    ..
                                },
                            ) => {
                                // An erase ahead of it was lost: the decoder met bytes not
                                // erased and the agent programmed none of them.
                                gone = true;
                                Err(HostError::Cancelled)
                            }
                            (_, other) => Err(refused(Op::StreamData, &other)),
                        }
                    },
                )
                .await;
            if checked {
                check = None;
            }
            lead.clear();
            erases.take_answers(&answered.into_inner());
            if let Some(f) = last_frame.get() {
                let passed: Vec<bool> = (0..erases.answered().len())
                    .map(|e| items[..f].contains(&crate::stream_erases::StreamItem::Erase(e)))
                    .collect();
                erases.take_passed(&passed);
            }
            sent += body.len().saturating_sub(from) as u64;
            if other_base {
                return Ok(None);
            }
            match (r, gap) {
                (Ok(()), _) => break,
                (Err(_), _) if gone && restarts < MAX_RESTARTS => {
                    restarts += 1;
                    erases.restart();
                    dev.observer().event(
                        "the device ended the stream (an erase was lost): erasing and \
                         sending it again from its start",
                    );
                    continue 'stream;
                }
                (Err(_), Some(at)) if (at as usize) <= body.len() && rounds < 1000 => {
                    rounds += 1;
                    from = at as usize;
                    dev.observer()
                        .event(&format!("stream frame lost: sending again from byte {at}"));
                }
                (Err(e), _) => return Err(e),
            }
        }
        if let Some((len, want)) = check {
            // The base's MD5 went unanswered in the window: ask for it now; the stream
            // is used only if it is the base the delta was made from.
            let md5 = dev.checksum_slot(base, len, &mut |_, _, _, _| {}).await?;
            if md5 != want {
                return Ok(None);
            }
            check = None;
        }
        if !ended {
            match dev.call(&end).await {
                Ok(Reply::Streamed { .. }) => {}
                Ok(Reply::Error {
                    code: ErrorCode::StreamGap,
                    detail: u32::MAX,
                }) if restarts < MAX_RESTARTS => {
                    restarts += 1;
                    erases.restart();
                    continue 'stream;
                }
                Ok(other) => return Err(refused(Op::StreamData, &other)),
                Err(e) => return Err(e),
            }
        }
        break;
    }
    let p = progress(total_image, total_image, dev.now() - t);
    dev.observer().progress(&p);
    erases.first_wait = first_erase.unwrap_or_default();
    Ok(Some(sent))
}

/// How many times a stream begins again after the agent ended it (an erase lost each
/// time) before the update gives up.
const MAX_RESTARTS: u32 = 3;

fn progress(done: u64, total: u64, elapsed: core::time::Duration) -> Progress {
    let secs = elapsed.as_secs_f64();
    let per_second = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    let eta = (per_second > 0.0).then(|| {
        core::time::Duration::from_secs_f64(total.saturating_sub(done) as f64 / per_second)
    });
    Progress {
        phase: Phase::Stream,
        done: done.min(total),
        total,
        per_second,
        eta,
    }
}
