//! The VM: built and linked once for each VM slot. It passes control on when the boot
//! decision starts another VM (the seed: "the previous VM will start and behave as a
//! bootloader passing control to the new VM"), otherwise it takes the decision for real,
//! serves updates and runs the bytecode, both from one main loop.

use fota_agent::{Agent, AgentConfig, Boot};
use fota_protocol::{Layout as _, SlotKind};

use crate::app::App;
use crate::board::{Board, HANDOFF, ResetCause, Retained};
use crate::boot::{check_vm, plan, report_bad};
use crate::link::Link;
use crate::text::Line;

/// Watchdog resets in a row, in a configuration the boot decision kept, after which the
/// program is not started (safe mode): the device still serves updates, so a program
/// that hangs at once cannot take the device out of reach. A restart requested by the
/// host (every update ends with one) or a power cycle leaves safe mode.
pub const SAFE_MODE_AFTER: u32 = 3;

/// The flash type the agent runs on.
pub type Flash<B> = <B as Board>::Flash;

/// Run the VM that sits in the VM slot starting at `own_addr`. Never returns.
pub fn run<B: Board>(board: &mut B, config: AgentConfig, own_addr: u32) -> ! {
    let started = start(board, &config, own_addr);
    serve(board, started)
}

/// Everything before the main loop: the bootloader role, the decision, the reset
/// bookkeeping. Returns the agent, what this boot runs, and whether the program starts.
/// Not inlined: its log lines and each decision's agent live in this frame only until
/// the main loop starts, not under it for as long as the device runs.
#[inline(never)]
fn start<B: Board>(
    board: &mut B,
    config: &AgentConfig,
    own_addr: u32,
) -> (Agent<Flash<B>>, Boot, bool) {
    let me = config
        .slot_at(own_addr)
        .filter(|s| s.kind == SlotKind::Vm && s.addr == own_addr)
        .map(|s| s.index);
    let Some(me) = me else {
        Line::new()
            .s("vm: linked for ")
            .hex(own_addr)
            .s(", which starts no VM slot of this layout")
            .send(board);
        halt(board);
    };
    let Some(mut flash) = board.take_flash() else {
        Line::new().s("vm: no flash").send(board);
        halt(board);
    };
    let who = "vm";
    let decided = plan(&mut flash, config).map(|p| p.boot);

    // Bootloader role: the decision starts another VM.
    let retained = board.retained();
    if let Some(dry) = decided
        && dry.vm_slot != me
    {
        let handoff = HANDOFF | u32::from(dry.vm_slot);
        match check_vm(&mut flash, config, dry.vm_slot, board.ram()) {
            // Passed to it before, and it reset before recording its trial: it cannot
            // start, so do not pass again (that would loop).
            Ok(_) if retained.handoff == handoff => {
                Line::new()
                    .s("vm: VM slot ")
                    .u(u32::from(dry.vm_slot))
                    .s(" reset before it took the boot decision")
                    .send(board);
            }
            Ok(addr) => {
                board.set_retained(Retained {
                    handoff,
                    ..retained
                });
                Line::new()
                    .s("vm: VM slot ")
                    .u(u32::from(me))
                    .s(" passes control to VM slot ")
                    .u(u32::from(dry.vm_slot))
                    .s(" at ")
                    .hex(addr)
                    .send(board);
                board.flush();
                board.start_vm(addr);
            }
            Err(why) => report_bad(board, who, dry.vm_slot, why),
        }
    }

    // The decision, for real: it runs this VM, or one that cannot start (then the trial
    // is over at once: deciding again reverts it).
    let (mut agent, mut boot) = decide(board, flash, config);
    if boot.vm_slot != me && boot.trial {
        Line::new()
            .s("vm: the trial cannot start: back to the last working configuration")
            .send(board);
        let flash = agent.into_flash();
        (agent, boot) = decide(board, flash, config);
    }
    if boot.vm_slot != me {
        let mut flash = agent.into_flash();
        // Not after a failed record write: that VM would decide the same and come back.
        if !boot.record_write_failed
            && let Ok(addr) = check_vm(&mut flash, config, boot.vm_slot, board.ram())
        {
            board.flush();
            board.start_vm(addr);
        }
        Line::new()
            .s("vm: the record names VM slot ")
            .u(u32::from(boot.vm_slot))
            .s(", which cannot start; serving updates only")
            .send(board);
        (agent, boot) = decide(board, flash, config);
        return (agent, boot, false);
    }

    // Reset bookkeeping: a hang that the decision did not revert counts toward safe mode.
    let r = board.retained();
    let cause = ResetCause::from_word(r.cause);
    let streak = if cause == ResetCause::Watchdog && !boot.reverted {
        r.watchdog_streak.saturating_add(1)
    } else {
        0
    };
    board.set_retained(Retained {
        cause: ResetCause::PowerOn as u32,
        watchdog_streak: streak,
        handoff: 0,
    });
    let mut line = Line::new();
    line.s("vm: VM slot ")
        .u(u32::from(me))
        .s(", bytecode slot ")
        .u(u32::from(boot.bc_slot));
    if boot.trial {
        line.s(", trial: the new firmware must accept");
    }
    if boot.reverted {
        line.s(", reverted: the last trial was not accepted");
    }
    if boot.factory {
        line.s(", factory record written");
    }
    if boot.record_write_failed {
        line.s(", the record could not be written");
    }
    line.send(board);
    let run_app = streak < SAFE_MODE_AFTER;
    if !run_app {
        Line::new()
            .s("vm: safe mode: the program was reset by the watchdog ")
            .u(streak)
            .s(" times in a row; it does not start until an update or a power cycle")
            .send(board);
    }
    (agent, boot, run_app)
}

/// Take the boot decision for real; on an agent that cannot start, say why and wait for
/// the watchdog (a read error of the record may pass; a configuration error will not).
fn decide<B: Board>(
    board: &mut B,
    flash: Flash<B>,
    config: &AgentConfig,
) -> (Agent<Flash<B>>, Boot) {
    match Agent::boot(flash, config.clone()) {
        Ok(x) => x,
        Err(e) => {
            let mut line = Line::new();
            line.s("vm: the agent cannot start: ");
            match e {
                fota_agent::AgentError::Flash(addr) => {
                    line.s("record unreadable at ").hex(addr).send(board);
                    board.flush();
                    board.reset(ResetCause::Restart);
                }
                _ => line.s("the layout does not fit the flash").send(board),
            }
            halt(board);
        }
    }
}

/// The main loop: serve the link, run the program, sleep when neither has work. Not
/// inlined, and neither is the program's part: each keeps its own frame small.
#[inline(never)]
fn serve<B: Board>(board: &mut B, started: (Agent<Flash<B>>, Boot, bool)) -> ! {
    let (agent, boot, run_app) = started;
    let Some(state) = board.link_state() else {
        Line::new().s("vm: no link state").send(board);
        halt(board);
    };
    let hook = board.unit_hook();
    let mut link = Link::new(agent, state, hook);
    let mut app = App::start(board, link.agent_mut(), boot, run_app);
    loop {
        board.kick_watchdog();
        let busy = link.poll(board);
        let wait = app.poll(board, link.agent_mut());
        if !busy && wait != Some(0) {
            board.idle(wait.unwrap_or(u32::MAX).min(10));
        }
    }
}

fn halt<B: Board + ?Sized>(board: &mut B) -> ! {
    board.flush();
    loop {
        board.kick_watchdog();
        board.idle(1000);
    }
}
