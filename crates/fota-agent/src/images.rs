//! Image checks before a slot becomes current (cargo feature `images`).
//!
//! `attempt`, `set_record` and the boot decision verify the image of every slot they
//! would make current (or last working) that the record does not already name: the
//! trailer's SHA-256, the signatures by trusted keys, the slot and kind it is linked
//! for, and the minimum version kept in the record (docs/IMAGE.md). A raw image (no
//! trailer) is taken where the device's [`ImagePolicy`] allows raw images and its first
//! bytes are not erased. Where raw images are taken, `attempt` and `set_record` read a
//! slot whose first bytes the last `checksum_slot` hashed, nothing changed since, only
//! that far (the host's check of what it wrote), and not at all where that
//! `checksum_slot` met no trailer's magic as it hashed the range (nothing in it can be a
//! trailer: the image is raw); the boot decision reads the whole slot.
//! The work is split in bounded units ([`Agent::check_unit`]):
//! at most [`CHECK_STEPS`] reads of [`CHECK_BUFFER`] bytes, or one Ed25519 verification.

use embedded_storage::nor_flash::NorFlash;
use fota_image::{ImageError, Policy, Slot, SlotReader, Step, Verifier, VerifyError, Version};
use fota_protocol::{
    ErrorCode, ImageRules, Layout as _, Op, RecordUpdate, SlotDesc, SlotKind, pack_version,
    unpack_version,
};

use crate::agent::{Agent, Refusal, RequestResult, Unit};
use crate::config::AgentConfig;
use crate::flash;
use crate::record::LogEntry;

/// Bytes read per verifier step.
pub const CHECK_BUFFER: usize = 256;

/// Verifier steps in one unit of [`Agent::check_unit`]: 16 x 256 bytes = 4 KiB read and
/// hashed (about as long as a unit of `checksum_slot`).
pub const CHECK_STEPS: u32 = 16;

/// Leading bytes of a raw image that must not all be erased (a VM's stack pointer and
/// reset vector, and more): an erased slot is never made current.
const RAW_HEAD: usize = 16;

/// A request that makes slots current, while their images are checked: built by
/// [`Agent::begin_attempt`] or [`Agent::begin_set_record`], advanced by
/// [`Agent::check_unit`]; the record is written after the last slot verified.
#[derive(Debug, Clone)]
pub struct CheckOp {
    /// The record entry to write.
    entry: LogEntry,
    /// Slots still to check: bit `i` for `config.slots[i]`.
    todo: u8,
    /// The slot being checked (index into `config.slots`), if started.
    current: Option<u8>,
    verifier: Verifier,
    downgrade: bool,
    /// The sizes of the slots verified so far.
    base: u32,
    /// Bytes of the slot in progress read so far.
    in_slot: u32,
    /// A slot read only up to the image the host has just verified (index into
    /// `config.slots`, bytes), or `u8::MAX` (see [`Agent::check_op`]).
    short: (u8, u32),
    total: u32,
    /// The request it answers (`Attempt`, `AttemptDowngrade` or `SetRecord`).
    op: Op,
}

impl CheckOp {
    /// Bytes read so far (a slot whose trailer was found counts whole).
    pub fn done(&self) -> u32 {
        self.base.saturating_add(self.in_slot).min(self.total)
    }

    /// The sizes of the slots to check.
    pub fn total(&self) -> u32 {
        self.total
    }

    /// The request it answers.
    pub fn op(&self) -> Op {
        self.op
    }
}

/// One slot read through the flash driver.
struct FlashSlot<'a, F> {
    flash: &'a mut F,
    /// Flash offset of the slot's first byte.
    base: u32,
}

impl<F: NorFlash> SlotReader for FlashSlot<'_, F> {
    /// The flash offset that could not be read.
    type Error = u32;

    fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), u32> {
        flash::read(self.flash, self.base.saturating_add(offset), buf)
    }
}

fn unpack(v: u32) -> Version {
    let (major, minor, patch) = unpack_version(v);
    Version::new(major, minor, patch)
}

/// The minimum version in force for `kind`: none where a downgrade was asked for and
/// is allowed.
fn minimum(config: &AgentConfig, entry: &LogEntry, kind: SlotKind, downgrade: bool) -> u32 {
    if downgrade && config.images.allow_downgrade {
        return 0;
    }
    match kind {
        SlotKind::Vm => entry.vm_minimum,
        SlotKind::Bytecode => entry.bc_minimum,
    }
}

/// What a finished verification means for the slot at `addr`: the image's packed
/// version (`None` for a raw image), or the refusal.
fn outcome<F: NorFlash>(
    flash: &mut F,
    config: &AgentConfig,
    slot: &SlotDesc,
    min: u32,
    result: Result<fota_image::Verified, VerifyError<u32>>,
) -> RequestResult<Option<u32>> {
    let refuse = |code| Refusal::new(code, slot.addr);
    let policy = &config.images;
    match result {
        Ok(v) => Ok(Some(pack_version(
            v.header.version.major,
            v.header.version.minor,
            v.header.version.patch,
        ))),
        // A word that cannot be read (ECC flash: a power cut tore it, in an erase after the
        // image's end, say) ends what can be read of the slot: no trailer before it, so the
        // image is taken as raw where raw images are (a raw image's bytes after its end do
        // not matter), and refused where they are not.
        Err(VerifyError::Read(_) | VerifyError::Image(ImageError::NoTrailer)) => {
            if policy.require_signatures {
                return Err(refuse(ErrorCode::Unsigned));
            }
            if !policy.allow_raw {
                return Err(refuse(ErrorCode::BadImage));
            }
            // A raw image has no version: where a minimum is in force it cannot prove
            // it is not older.
            if min != 0 {
                return Err(refuse(ErrorCode::Downgrade));
            }
            let mut head = [0u8; RAW_HEAD];
            let off = slot.addr.wrapping_sub(config.flash_base);
            flash::read(flash, off, &mut head).map_err(|o| {
                Refusal::new(ErrorCode::FlashFailure, config.flash_base.wrapping_add(o))
            })?;
            if flash::is_erased(&head) {
                return Err(refuse(ErrorCode::BadImage));
            }
            Ok(None)
        }
        Err(VerifyError::Image(e)) => Err(refuse(match e {
            ImageError::Unsigned => ErrorCode::Unsigned,
            ImageError::UnknownKey(_) => ErrorCode::UnknownKey,
            ImageError::BadSignature(_) => ErrorCode::BadSignature,
            ImageError::Downgrade { .. } => ErrorCode::Downgrade,
            _ => ErrorCode::BadImage,
        })),
        // The buffer is CHECK_BUFFER bytes and each verifier is used once.
        Err(VerifyError::BufferTooSmall | VerifyError::Finished) => {
            Err(refuse(ErrorCode::BadImage))
        }
    }
}

/// Up to [`CHECK_STEPS`] verifier steps on `slot`; `Ok(None)` while more are needed,
/// else the finished verification's outcome. `read` gets the bytes read so far.
#[allow(clippy::too_many_arguments)]
fn verify_steps<F: NorFlash>(
    flash: &mut F,
    config: &AgentConfig,
    slot: &SlotDesc,
    verifier: &mut Verifier,
    min: u32,
    read: &mut u32,
) -> Option<RequestResult<Option<u32>>> {
    let policy = Policy {
        trusted: config.images.trusted,
        require_signature: config.images.require_signatures,
        minimum_version: unpack(min),
    };
    let mut reader = FlashSlot {
        flash: &mut *flash,
        base: slot.addr.wrapping_sub(config.flash_base),
    };
    let mut buf = [0u8; CHECK_BUFFER];
    for _ in 0..CHECK_STEPS {
        let before = *read;
        match verifier.step(&mut reader, &mut buf, &policy) {
            Ok(Step::Pending(n)) => {
                *read = n.min(slot.size);
                // A trailer or signature step (it reads no buffer): one per unit.
                if n < before.saturating_add(CHECK_BUFFER as u32 / 2) {
                    return None;
                }
            }
            Ok(Step::Done(v)) => return Some(outcome(flash, config, slot, min, Ok(v))),
            Err(e) => return Some(outcome(flash, config, slot, min, Err(e))),
        }
    }
    None
}

/// Verify the image in `slot` to the end (the boot decision, and the blocking seed
/// functions): its packed version, `None` for a raw image, or the refusal. `hook` runs
/// after every unit (a watchdog kick).
pub(crate) fn check_slot<F: NorFlash>(
    flash: &mut F,
    config: &AgentConfig,
    slot: &SlotDesc,
    min: u32,
    hook: Option<fn()>,
) -> RequestResult<Option<u32>> {
    let mut verifier = Verifier::new(Slot::from(slot));
    let mut read = 0;
    loop {
        let r = verify_steps(flash, config, slot, &mut verifier, min, &mut read);
        if let Some(h) = hook {
            h();
        }
        if let Some(result) = r {
            return result;
        }
    }
}

/// The boot decision's check of a pending configuration: every slot of `e` current but
/// not last working must verify. Returns the packed versions found (0 for a raw image
/// or a slot not checked), or `None` when one does not verify: the boot then goes back
/// to the last working configuration.
pub(crate) fn check_pending<F: NorFlash>(
    flash: &mut F,
    config: &AgentConfig,
    e: &LogEntry,
    hook: Option<fn()>,
) -> Option<[u32; 2]> {
    let mut versions = [0u32; 2];
    if !config.images.check {
        return Some(versions);
    }
    let pairs = [
        (SlotKind::Vm, e.vm_current, e.vm_last),
        (SlotKind::Bytecode, e.bc_current, e.bc_last),
    ];
    for (i, (kind, current, last)) in pairs.into_iter().enumerate() {
        if current == last {
            continue;
        }
        let slot = *config.slot(kind, u32::from(current))?;
        // The attempt checked the minimum (or a confirmed downgrade skipped it); the boot
        // checks it again only where downgrades are never allowed.
        let min = minimum(config, e, kind, true);
        let v = check_slot(flash, config, &slot, min, hook).ok()?;
        if let Some(slot_v) = versions.get_mut(i) {
            *slot_v = v.unwrap_or(0);
        }
    }
    Some(versions)
}

impl<F: NorFlash> Agent<F> {
    /// Check an `attempt(bc_slot, vm_slot)` and start it: the images of the slots it
    /// makes current are verified by [`Agent::check_unit`], then the record is
    /// written. `downgrade`: the host asked to allow an older image
    /// (`AttemptDowngrade`); refused with `Downgrade` unless the policy allows it.
    pub fn begin_attempt(
        &mut self,
        bc_slot: u32,
        vm_slot: u32,
        downgrade: bool,
    ) -> RequestResult<CheckOp> {
        let entry = self.attempt_entry(bc_slot, vm_slot)?;
        let op = if downgrade {
            Op::AttemptDowngrade
        } else {
            Op::Attempt
        };
        Ok(self.check_op(entry, downgrade, op))
    }

    /// Check a `set_record(u)` and start it, like [`Agent::begin_attempt`]: every slot it
    /// names that the record does not already name must verify.
    pub fn begin_set_record(&mut self, u: RecordUpdate) -> RequestResult<CheckOp> {
        let entry = self.set_record_entry(u)?;
        Ok(self.check_op(entry, false, Op::SetRecord))
    }

    fn check_op(&self, entry: LogEntry, downgrade: bool, op: Op) -> CheckOp {
        let config = self.config();
        let named = self.record_entry();
        let boot = self.booted();
        let mut todo = 0u8;
        let mut total = 0u32;
        let mut short = (u8::MAX, 0);
        if config.images.check && !entry.same_slots(&named) {
            for (i, s) in config.slots.iter().enumerate() {
                let (new, old) = match s.kind {
                    SlotKind::Vm => (
                        [entry.vm_current, entry.vm_last],
                        [named.vm_current, named.vm_last, boot.vm_slot],
                    ),
                    SlotKind::Bytecode => (
                        [entry.bc_current, entry.bc_last],
                        [named.bc_current, named.bc_last, boot.bc_slot],
                    ),
                };
                if new.contains(&s.index) && !old.contains(&s.index) {
                    todo |= 1 << i;
                    // Where a raw image is taken, one the host has just verified (its
                    // MD5 of the slot's first bytes, the check before every attempt)
                    // is read only that far: an image it sent with a trailer has the
                    // trailer inside, one without ends there, and the bytes after a
                    // raw image are not part of it. Anything else: the whole slot.
                    let policy = &config.images;
                    let raw_taken = policy.allow_raw
                        && !policy.require_signatures
                        && minimum(config, &entry, s.kind, downgrade) == 0;
                    let size = match self.checked_len(s) {
                        Some(n) if raw_taken => {
                            short = (i as u8, n);
                            n
                        }
                        _ => s.size,
                    };
                    total = total.saturating_add(size);
                }
            }
        }
        CheckOp {
            entry,
            todo,
            current: None,
            verifier: Verifier::new(Slot::from(&SlotDesc {
                kind: SlotKind::Vm,
                index: 0,
                addr: 0,
                size: 0,
            })),
            downgrade,
            base: 0,
            in_slot: 0,
            short,
            total,
            op,
        }
    }

    /// One bounded unit of `op`: up to [`CHECK_STEPS`] x [`CHECK_BUFFER`] bytes of a slot
    /// read and hashed, or one signature verified; after the last slot verified, the
    /// record entry is written. A slot that does not verify ends it with the refusal
    /// (nothing written).
    pub fn check_unit(&mut self, op: &mut CheckOp) -> RequestResult<Unit<()>> {
        let next = match op.current {
            Some(i) => Some(i),
            None => (0..8u8).find(|i| op.todo & (1 << i) != 0),
        };
        // A slot read only as far as the last `checksum_slot` hashed, nothing changed
        // since, that range holding no trailer's magic (seen as it was hashed): the
        // verifier would read it all and find no trailer, so it is not read again.
        let known_raw = op.current.is_none()
            && next.is_some_and(|i| {
                op.short.0 == i
                    && (self.config().slots.get(usize::from(i))).and_then(|s| self.checked_raw(s))
                        == Some(op.short.1)
            });
        let (config, flash, hook) = self.check_parts()?;
        let Some(i) = next else {
            // Every slot verified (or none to check): write the record.
            self.update_entry(op.entry)?;
            return Ok(Unit::Done(()));
        };
        let mut slot = *config
            .slots
            .get(usize::from(i))
            .ok_or(Refusal::new(ErrorCode::BadSlotIndex, u32::from(i)))?;
        if op.short.0 == i {
            slot.size = op.short.1;
        }
        if op.current.is_none() {
            op.current = Some(i);
            op.in_slot = 0;
            op.verifier = Verifier::new(Slot::from(&slot));
        }
        let min = minimum(config, &op.entry, slot.kind, op.downgrade);
        let r = if known_raw {
            let none = Err(VerifyError::Image(ImageError::NoTrailer));
            Some(outcome(flash, config, &slot, min, none))
        } else {
            verify_steps(flash, config, &slot, &mut op.verifier, min, &mut op.in_slot)
        };
        if let Some(h) = hook {
            h();
        }
        match r {
            None => {}
            Some(Err(refusal)) => return Err(refusal),
            Some(Ok(_version)) => {
                op.todo &= !(1 << i);
                op.current = None;
                op.in_slot = 0;
                op.base = op.base.saturating_add(slot.size);
            }
        }
        Ok(Unit::More {
            done: op.done(),
            total: op.total,
        })
    }

    /// The `Info` field for the images this device takes.
    pub fn image_rules(&self) -> Option<ImageRules> {
        let policy = &self.config().images;
        policy.check.then(|| policy.rules(&self.record_entry()))
    }
}
