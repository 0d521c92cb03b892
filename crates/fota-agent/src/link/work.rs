//! Long requests, one unit at a time: erase, checksum, image checks and streams.

use embedded_storage::nor_flash::NorFlash;
use fota_protocol::{ErrorCode, Op};

use super::Handled;
use super::dispatch::{Handling, refuse};
use super::job::{Job, Work};
use super::reply::{Answer, Out};
use crate::agent::{Agent, CHECKSUM_PROGRESS_STEP, Refusal, Unit};
use crate::stream::{StreamJob, StreamOutcome};

/// One unit of the long request `job`: progress where the protocol says so, the final
/// reply after the last unit (also returned when it is a success, for the cache).
#[inline(never)]
pub(super) fn work_unit<F: NorFlash>(
    agent: &mut Agent<F>,
    out: &mut Out<'_>,
    job: &mut Job,
) -> (Handled, Option<Answer>) {
    let (op, result) = match &mut job.work {
        Work::Erase(e) => {
            let r = agent.erase_unit(e).map(|u| match u {
                // After each sector but the last.
                Unit::More { done, total } => Err((done, total, true)),
                Unit::Done((addr, size)) => Ok(Answer::Erased { addr, size }),
            });
            (Op::EraseSlot, r)
        }
        Work::Checksum(c) => {
            let before = c.done();
            let r = agent.checksum_unit(c).map(|u| match u {
                // Each time `done` crosses a multiple of CHECKSUM_PROGRESS_STEP.
                Unit::More { done, total } => Err((
                    done,
                    total,
                    before / CHECKSUM_PROGRESS_STEP != done / CHECKSUM_PROGRESS_STEP,
                )),
                Unit::Done(md5) => Ok(Answer::Checksum(md5)),
            });
            (Op::ChecksumSlot, r)
        }
        // Run by `stream_unit` (it needs the stream state); never here.
        Work::Stream(_) => (Op::StreamData, Err(refuse(ErrorCode::StreamGap, u32::MAX))),
        #[cfg(feature = "images")]
        Work::Check(c) => {
            let before = c.done();
            let r = agent.check_unit(c).map(|u| match u {
                Unit::More { done, total } => Err((
                    done,
                    total,
                    before / CHECKSUM_PROGRESS_STEP != done / CHECKSUM_PROGRESS_STEP,
                )),
                Unit::Done(()) => Ok(match c.op() {
                    Op::SetRecord => Answer::RecordSet,
                    _ => Answer::Attempted,
                }),
            });
            (c.op(), r)
        }
    };
    match result {
        Ok(Err((done, total, report))) => {
            if report {
                out.send(agent, job.id, Answer::Progress { done, total });
            }
            let handled = Handled::Working {
                id: job.id,
                done,
                total,
            };
            (handled, None)
        }
        Ok(Ok(answer)) => {
            out.send(agent, job.id, answer);
            let handled = Handled::Request {
                id: job.id,
                op: op as u8,
                refused: None,
            };
            (handled, Some(answer))
        }
        Err(refusal) => {
            let handled = Handled::Request {
                id: job.id,
                op: op as u8,
                refused: out.finish(agent, job.id, Err(refusal)),
            };
            (handled, None)
        }
    }
}

/// A stream request's first answer, as the link handles it.
pub(super) fn stream_handling(r: Result<(StreamOutcome, Option<StreamJob>), Refusal>) -> Handling {
    match r {
        Ok((_, Some(job))) => Handling::Long(Work::Stream(job)),
        Ok((outcome, None)) => Handling::Now(Ok(stream_answer(outcome)), None),
        Err(refusal) => Handling::Now(Err(refusal), None),
    }
}

pub(super) fn stream_answer(outcome: StreamOutcome) -> Answer {
    match outcome {
        StreamOutcome::Begun { image_len } => Answer::StreamBegun { image_len },
        StreamOutcome::Streamed { received, written } => Answer::Streamed { received, written },
        // Not an answer: callers only pass finished outcomes.
        StreamOutcome::More => Answer::Error(refuse(ErrorCode::StreamGap, u32::MAX)),
    }
}

/// One step of a stream request: no reply until its last step.
pub(super) fn stream_unit<F: NorFlash>(
    agent: &mut Agent<F>,
    out: &mut Out<'_>,
    id: u16,
    r: Result<StreamOutcome, Refusal>,
) -> (Handled, Option<Answer>) {
    let op = |o: Op| o as u8;
    match r {
        Ok(StreamOutcome::More) => (
            Handled::Working {
                id,
                done: 0,
                total: 0,
            },
            None,
        ),
        Ok(outcome) => {
            let answer = stream_answer(outcome);
            let code = match outcome {
                StreamOutcome::Begun { .. } => op(Op::StreamBegin),
                _ => op(Op::StreamData),
            };
            out.send(agent, id, answer);
            let handled = Handled::Request {
                id,
                op: code,
                refused: None,
            };
            (handled, None)
        }
        Err(refusal) => {
            let handled = Handled::Request {
                id,
                op: op(Op::StreamData),
                refused: out.finish(agent, id, Err(refusal)),
            };
            (handled, None)
        }
    }
}
