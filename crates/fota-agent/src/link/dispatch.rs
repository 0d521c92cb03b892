//! Request dispatch: one request frame checked, run or started.

use embedded_storage::nor_flash::NorFlash;
use fota_protocol::{DecodeError, ErrorCode, OLDEST_VERSION, PROTOCOL_VERSION, Request};

use super::LinkAction;
use super::baud::BaudState;
use super::job::Work;
use super::reply::Answer;
use crate::agent::{Agent, Refusal};

/// How a request is handled. (Not boxed: no allocator; it lives only while a request is
/// handled, and the work goes straight into the link's state.)
#[allow(clippy::large_enum_variant)]
pub(super) enum Handling {
    /// Answered now: the reply (or refusal) and the action for the platform.
    Now(Result<Answer, Refusal>, Option<LinkAction>),
    /// A long request, checked and started.
    Long(Work),
}

/// Run one short request, or check and start a long one. `requests`: the request
/// counter after this one (a `SetBaud` waits for it to move). Not inlined: its frame
/// (a write's buffers) is gone before the reply is encoded, so the two never add up.
#[inline(never)]
pub(super) fn handle<F: NorFlash>(
    agent: &mut Agent<F>,
    baud: &mut BaudState,
    requests: u32,
    op: u8,
    body: &[u8],
) -> Handling {
    let request = match Request::parse(op, body) {
        Ok(r) => r,
        Err(DecodeError::UnknownOp(op)) => {
            return Handling::Now(Err(refuse(ErrorCode::UnknownCommand, u32::from(op))), None);
        }
        Err(_) => {
            return Handling::Now(Err(refuse(ErrorCode::BadRequest, u32::from(op))), None);
        }
    };
    let supported = agent.config().fota_supported;
    // With background erases, a request that reads or changes flash otherwise than a
    // write (which waits for its own range) waits for every scheduled erase; a failed
    // one is its answer (crate::background).
    let settles = !matches!(
        request,
        Request::Hello { .. }
            | Request::GetRecord
            | Request::FindBytecodeSlot
            | Request::FindVmSlot
            | Request::EraseSlot { .. }
            | Request::WriteSlot { .. }
            | Request::SetBaud { .. }
            // Streams wait for the range each step writes (the link's guard).
            | Request::StreamBegin { .. }
            | Request::StreamData { .. }
    );
    if settles && let Err(refusal) = agent.settle_erases() {
        return Handling::Now(Err(refusal), None);
    }
    let result = match request {
        // Version 3 only adds a request form (`Attempt`'s check): a host of version 2,
        // which never sends it, is answered too.
        Request::Hello { version } if (OLDEST_VERSION..=PROTOCOL_VERSION).contains(&version) => {
            Ok(Answer::Info)
        }
        Request::Hello { .. } => Err(refuse(
            ErrorCode::VersionMismatch,
            u32::from(PROTOCOL_VERSION),
        )),
        Request::GetRecord => agent.get_record().map(|_| Answer::Record),
        #[cfg(feature = "images")]
        Request::SetRecord(u) => match agent.begin_set_record(u) {
            Ok(c) => return Handling::Long(Work::Check(c)),
            Err(r) => Err(r),
        },
        #[cfg(not(feature = "images"))]
        Request::SetRecord(u) => agent.set_record(u).map(|()| Answer::RecordSet),
        Request::FindBytecodeSlot => agent.find_bytecode_slot().map(Answer::BytecodeSlot),
        Request::FindVmSlot => agent.find_vm_slot().map(Answer::VmSlot),
        Request::EraseSlot { addr, size } if agent.background_erase() => agent
            .schedule_erase(addr, size)
            .map(|(addr, size)| Answer::Erased { addr, size }),
        Request::EraseSlot { addr, size } => match agent.begin_erase(addr, size) {
            Ok(e) => return Handling::Long(Work::Erase(e)),
            Err(r) => Err(r),
        },
        Request::WriteSlot { addr, data } => {
            agent.write_slot(addr, data).map(|()| Answer::Written {
                addr,
                // write_slot refuses anything longer than MAX_WRITE.
                len: data.len() as u32,
            })
        }
        Request::ChecksumSlot { addr, size } => match agent.begin_checksum(addr, size) {
            Ok(c) => return Handling::Long(Work::Checksum(c)),
            Err(r) => Err(r),
        },
        Request::Accept => agent.accept().map(Answer::Accepted),
        Request::Attempt {
            bc_slot,
            vm_slot,
            check,
        }
        | Request::AttemptDowngrade {
            bc_slot,
            vm_slot,
            check,
        } => {
            // The check comes first: a slot whose MD5 differs is never attempted.
            let checked = match check {
                Some(c) => agent.check_attempted(bc_slot, vm_slot, &c),
                None => Ok(()),
            };
            #[cfg(feature = "images")]
            {
                let downgrade = matches!(request, Request::AttemptDowngrade { .. });
                match checked.and_then(|()| agent.begin_attempt(bc_slot, vm_slot, downgrade)) {
                    Ok(c) => return Handling::Long(Work::Check(c)),
                    Err(r) => Err(r),
                }
            }
            // Without image checks there is no minimum version: a downgrade is an attempt.
            #[cfg(not(feature = "images"))]
            checked
                .and_then(|()| agent.attempt(bc_slot, vm_slot))
                .map(|()| Answer::Attempted)
        }
        Request::Restart if supported => {
            // A partial write unit held in RAM would be lost in the reset: program it
            // (a failure here loses it, as a power cut would; the reset goes ahead).
            let _ = agent.flush_write();
            return Handling::Now(Ok(Answer::Restarting), Some(LinkAction::Restart));
        }
        Request::SetBaud { baud: rate } if supported => {
            let offered = agent.config().offered_baud_rates().any(|b| b == rate);
            return if offered {
                let old = if baud.current == 0 {
                    agent.config().base_baud
                } else {
                    baud.current
                };
                baud.trial_old = old;
                baud.trial_requests = requests;
                baud.trial_deadline = None;
                baud.current = rate;
                Handling::Now(Ok(Answer::BaudSet(rate)), Some(LinkAction::SetBaud(rate)))
            } else {
                let max = agent
                    .config()
                    .offered_baud_rates()
                    .last()
                    .unwrap_or(fota_protocol::DEFAULT_BAUD);
                Handling::Now(Err(refuse(ErrorCode::BadBaud, max)), None)
            };
        }
        Request::Restart | Request::SetBaud { .. } => Err(refuse(ErrorCode::Unsupported, 0)),
        // Handled by the link before this (they need the stream state).
        Request::StreamBegin { .. } | Request::StreamData { .. } => {
            Err(refuse(ErrorCode::UnknownCommand, u32::from(op)))
        }
        Request::Goodbye => {
            // Nothing is left half done for the next host: a held unit is programmed.
            let _ = agent.flush_write();
            let base = agent.config().base_baud;
            let switch = baud.current != base && baud.current != 0;
            baud.current = base;
            baud.trial_old = 0;
            return Handling::Now(
                Ok(Answer::Goodbye(base)),
                switch.then_some(LinkAction::SetBaud(base)),
            );
        }
    };
    Handling::Now(result, None)
}

pub(super) const fn refuse(code: ErrorCode, detail: u32) -> Refusal {
    Refusal { code, detail }
}
