//! The boot stage and the checks every stage shares: the agent's boot decision read
//! only ([`Agent::plan`]), and a VM slot's vector table.
//!
//! Who decides what, after any reset:
//!
//! 1. The boot stage (at the chip's boot address, never updated) plans the decision
//!    (reads the record, writes nothing) and starts the **last working VM** (the one a Confirmed record names; during an
//!    attempt, the previous VM). If its vector table is not valid it tries the VM the
//!    decision chose, then every other VM slot; with none valid it stops and says so:
//!    never a reset loop.
//! 2. That VM plans the decision again. If the decision starts another VM (the trial
//!    of a new VM), it behaves as a bootloader: it checks the new VM's vector table and
//!    passes control to it; if the table is not valid it takes the decision for real,
//!    which records the trial, and at once again, which reverts it, and runs itself.
//! 3. The VM the decision names takes it for real (`Agent::boot`: Pending becomes Trial,
//!    an unaccepted Trial is reverted) and runs the bytecode.
//!
//! Only the VM that runs writes the record, so a decision is taken once per reset.

use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
use fota_agent::{Agent, AgentConfig, BootPlan};
use fota_protocol::{Layout as _, MAX_SLOTS, SlotKind};

use crate::board::{Board, ResetCause};
use crate::text::Line;

/// The decision the agent would take now ([`Agent::plan`]): what it runs, and the record
/// entry in force after it; `None` if the agent cannot start (a configuration that does
/// not fit the flash, or an unreadable record area). Reads only.
pub fn plan<F: NorFlash>(flash: &mut F, config: &AgentConfig) -> Option<BootPlan> {
    Agent::plan(flash, config).ok()
}

/// Why a VM slot cannot be started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadVm {
    /// The layout has no VM slot with this index.
    NoSlot,
    /// Its first eight bytes could not be read.
    Unreadable,
    /// The initial stack pointer is not an aligned address in RAM (erased: 0xffffffff).
    Stack(u32),
    /// The reset vector is not a Thumb address inside the slot: no VM, or one linked
    /// for another slot.
    Reset(u32),
}

impl BadVm {
    fn describe(self, line: &mut Line) -> &mut Line {
        match self {
            BadVm::NoSlot => line.s("no such slot"),
            BadVm::Unreadable => line.s("cannot be read"),
            BadVm::Stack(sp) => line.s("no VM (initial stack pointer ").hex(sp).s(")"),
            BadVm::Reset(pc) => line
                .s("no VM linked for this slot (reset vector ")
                .hex(pc)
                .s(")"),
        }
    }
}

/// The address of VM slot `index` if its vector table can be started: an initial stack
/// pointer that is 8-byte aligned inside `ram` (inclusive), and a Thumb reset vector
/// inside the slot, past the first two words.
pub fn check_vm<F: ReadNorFlash>(
    flash: &mut F,
    config: &AgentConfig,
    index: u8,
    ram: (u32, u32),
) -> Result<u32, BadVm> {
    let slot = config
        .slot(SlotKind::Vm, u32::from(index))
        .ok_or(BadVm::NoSlot)?;
    let mut words = [0u8; 8];
    crate::app::read_any(flash, slot.addr.wrapping_sub(config.flash_base), &mut words)
        .then_some(())
        .ok_or(BadVm::Unreadable)?;
    let sp = u32::from_le_bytes([words[0], words[1], words[2], words[3]]);
    let pc = u32::from_le_bytes([words[4], words[5], words[6], words[7]]);
    if sp % 8 != 0 || sp < ram.0 || sp > ram.1 {
        return Err(BadVm::Stack(sp));
    }
    let code = u64::from(pc & !1);
    let end = u64::from(slot.addr) + u64::from(slot.size);
    if pc & 1 == 0 || code < u64::from(slot.addr) + 8 || code >= end {
        return Err(BadVm::Reset(pc));
    }
    Ok(slot.addr)
}

/// Print why VM slot `index` was passed over.
pub(crate) fn report_bad<B: Board + ?Sized>(board: &mut B, who: &str, index: u8, why: BadVm) {
    why.describe(
        Line::new()
            .s(who)
            .s(": VM slot ")
            .u(u32::from(index))
            .s(": "),
    )
    .send(board);
}

/// The boot stage: plan the decision, start the last working VM (or the first VM that can be
/// started). Never returns; with no VM to start it waits, saying so once.
pub fn boot_stage<B: Board>(board: &mut B, config: &AgentConfig) -> ! {
    let cause = ResetCause::from_word(board.retained().cause);
    Line::new().s("boot: reset by ").s(cause.name()).send(board);
    let Some(mut flash) = board.take_flash() else {
        Line::new().s("boot: no flash").send(board);
        wait_forever(board);
    };
    let decided = plan(&mut flash, config);
    // Candidates in order: last working, the decision's, then every VM slot by index.
    let mut order = [u8::MAX; MAX_SLOTS + 2];
    let mut n = 0;
    let mut push = |i: u8| {
        if !order[..n].contains(&i)
            && let Some(x) = order.get_mut(n)
        {
            *x = i;
            n += 1;
        }
    };
    match decided {
        Some(p) => {
            push(p.record.vm_last);
            push(p.boot.vm_slot);
        }
        None => Line::new()
            .s("boot: the record cannot be read; trying every VM slot")
            .send(board),
    }
    for i in 0..config.count(SlotKind::Vm) {
        push(u8::try_from(i).unwrap_or(u8::MAX));
    }
    let ram = board.ram();
    for &index in &order[..n] {
        match check_vm(&mut flash, config, index, ram) {
            Ok(addr) => {
                Line::new()
                    .s("boot: starting VM slot ")
                    .u(u32::from(index))
                    .s(" at ")
                    .hex(addr)
                    .send(board);
                board.flush();
                board.start_vm(addr);
            }
            Err(why) => report_bad(board, "boot", index, why),
        }
    }
    Line::new()
        .s("boot: no VM slot holds a VM that can start; load one and reset")
        .send(board);
    wait_forever(board)
}

fn wait_forever<B: Board + ?Sized>(board: &mut B) -> ! {
    loop {
        board.idle(1000);
    }
}
