//! The application: the bytecode program in the bytecode slot the boot decision chose,
//! run a few instructions at a time between the link's requests.

use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
use fota_agent::{Agent, Boot};
use fota_bytecode::{Check, Fault, Host, Machine, Source, State};
use fota_protocol::{Layout as _, SlotKind};

use crate::board::{Board, ResetCause};
use crate::text::Line;

/// Instructions per main-loop pass: enough to print and decide, short enough that the
/// link is served every few microseconds of program time.
const BUDGET: u32 = 32;

/// Read `out.len()` bytes at flash offset `off`, whatever `READ_SIZE` is (up to 64).
pub(crate) fn read_any<F: ReadNorFlash>(flash: &mut F, off: u32, out: &mut [u8]) -> bool {
    let unit = F::READ_SIZE;
    if unit <= 1 || ((off as usize).is_multiple_of(unit) && out.len().is_multiple_of(unit)) {
        return flash.read(off, out).is_ok();
    }
    let mut window = [0u8; 64];
    let Some(window) = window.get_mut(..unit) else {
        return false;
    };
    for (i, b) in out.iter_mut().enumerate() {
        let at = off as usize + i;
        let start = at - at % unit;
        if flash.read(start as u32, window).is_err() {
            return false;
        }
        *b = window[at - start];
    }
    true
}

/// A bytecode slot read through the flash.
struct Slot<'a, F> {
    flash: &'a mut F,
    off: u32,
}

impl<F: ReadNorFlash> Source for Slot<'_, F> {
    fn read(&mut self, offset: u32, buf: &mut [u8]) -> bool {
        match self.off.checked_add(offset) {
            Some(at) => read_any(self.flash, at, buf),
            None => false,
        }
    }
}

/// What the program is doing, for the main loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppState {
    /// It runs (or sleeps until its next step).
    Running,
    /// It stopped (ended, failed outside a trial, or never started); the device keeps
    /// serving updates.
    Stopped,
}

/// The program and where it lives.
pub struct App {
    machine: Option<Machine>,
    off: u32,
    size: u32,
    boot: Boot,
}

impl App {
    /// Check the program in the bytecode slot `boot` names and get it ready, or say why
    /// it cannot run. `run` false: safe mode, the program is not started. (Not inlined:
    /// its log lines stay out of the main loop's frame.)
    #[inline(never)]
    pub fn start<B: Board, F: NorFlash>(
        board: &mut B,
        agent: &mut Agent<F>,
        boot: Boot,
        run: bool,
    ) -> App {
        let config = agent.config();
        let off = boot.bc_addr.wrapping_sub(config.flash_base);
        let size = config
            .slot(SlotKind::Bytecode, u32::from(boot.bc_slot))
            .map_or(0, |s| s.size);
        let mut app = App {
            machine: None,
            off,
            size,
            boot,
        };
        if !run {
            return app;
        }
        let mut src = Slot {
            flash: agent.flash_mut(),
            off,
        };
        let mut text = Line::new();
        let line = text.s("app: bytecode slot ").u(u32::from(boot.bc_slot));
        match fota_bytecode::check(&mut src, size) {
            Ok(header) => {
                line.s(": ")
                    .s(header.name())
                    .s(" ")
                    .s(header.version())
                    .s(if boot.trial { " (on trial)" } else { "" })
                    .send(board);
                app.machine = Some(Machine::new(header));
            }
            Err(e) => {
                let line = line.s(": no program to run: ");
                match e {
                    fota_bytecode::ImageError::NotAProgram => line.s("no program"),
                    fota_bytecode::ImageError::Damaged => line.s("damaged (CRC)"),
                    fota_bytecode::ImageError::TooLong(_) => line.s("longer than the slot"),
                    _ => line.s("unreadable or unknown format"),
                }
                .send(board);
                if boot.trial {
                    // A trial that cannot run cannot accept: give it up now rather than
                    // wait for a restart.
                    Line::new()
                        .s("app: giving the trial up: restarting into the last working firmware")
                        .send(board);
                    board.flush();
                    board.reset(ResetCause::Restart);
                }
            }
        }
        app
    }

    /// Run the program a little. Returns how long it can wait (ms) before it needs the
    /// CPU again, `None` once it stopped. A program that fails on trial restarts the
    /// device (the boot then reverts); one that hangs hangs the device. (Not inlined: see
    /// [`App::start`].)
    #[inline(never)]
    pub fn poll<B: Board, F: NorFlash>(
        &mut self,
        board: &mut B,
        agent: &mut Agent<F>,
    ) -> Option<u32> {
        let machine = self.machine.as_mut()?;
        let mut host = AppHost {
            board,
            agent,
            off: self.off,
            size: self.size,
            boot: self.boot,
            crc: machine.header().crc,
        };
        let state = machine.step(&mut host, BUDGET);
        let board = host.board;
        match state {
            State::Running => Some(0),
            State::Sleeping(_) => {
                let now = board.now_ms();
                machine.idle_for(now)
            }
            State::Ended => {
                Line::new().s("app: program ended").send(board);
                self.machine = None;
                None
            }
            State::Hung => {
                Line::new()
                    .s("app: hung (the watchdog will reset the device)")
                    .send(board);
                board.flush();
                board.hang()
            }
            State::Failed(fault) => {
                describe(Line::new().s("app: failed: "), fault).send(board);
                self.machine = None;
                if self.boot.trial {
                    Line::new()
                        .s("app: giving the trial up: restarting into the last working firmware")
                        .send(board);
                    board.flush();
                    board.reset(ResetCause::Restart);
                }
                Line::new()
                    .s("app: stopped; the device keeps serving updates")
                    .send(board);
                None
            }
        }
    }

    /// Whether the program is running.
    pub fn state(&self) -> AppState {
        if self.machine.is_some() {
            AppState::Running
        } else {
            AppState::Stopped
        }
    }
}

fn describe(line: &mut Line, fault: Fault) -> &mut Line {
    match fault {
        Fault::Code(c) => line.s("fail ").u(u32::from(c)),
        Fault::Check(c) => line.s("check ").s(c.name()).s(" did not pass"),
        Fault::Accept => line.s("accept could not be recorded"),
        Fault::Decode(at, _) => line.s("not an instruction at ").u(at),
        Fault::OutOfCode(at) => line.s("outside the code at ").u(at),
        Fault::Read(at) => line.s("code unreadable at ").u(at),
    }
}

/// The device as the program sees it.
struct AppHost<'a, B, F> {
    board: &'a mut B,
    agent: &'a mut Agent<F>,
    off: u32,
    size: u32,
    boot: Boot,
    crc: u32,
}

impl<B: Board, F: NorFlash> Host for AppHost<'_, B, F> {
    fn fetch(&mut self, offset: u32, buf: &mut [u8]) -> bool {
        match self.off.checked_add(offset) {
            Some(at) => read_any(self.agent.flash_mut(), at, buf),
            None => false,
        }
    }

    fn now_ms(&mut self) -> u32 {
        self.board.now_ms()
    }

    fn print(&mut self, parts: &[&[u8]]) {
        let mut line = Line::new();
        line.s("app: ");
        for p in parts {
            line.bytes(p);
        }
        line.send(self.board);
    }

    fn accept(&mut self) -> bool {
        let ok = self.agent.accept().is_ok();
        let mut text = Line::new();
        let line = text.s("app: accept()");
        if ok {
            line.s(if self.boot.trial {
                ": the new firmware is confirmed"
            } else {
                ": already the last working firmware"
            })
        } else {
            line.s(": could not be recorded")
        }
        .send(self.board);
        ok
    }

    fn check(&mut self, what: Check, arg: u32) -> bool {
        match what {
            Check::Clock => true,
            Check::Ram => ram_test(arg),
            Check::Image => {
                let mut src = Slot {
                    flash: self.agent.flash_mut(),
                    off: self.off,
                };
                fota_bytecode::check(&mut src, self.size).is_ok_and(|h| h.crc == self.crc)
            }
            Check::Record => {
                let e = self.agent.record_entry();
                e.bc_current == self.boot.bc_slot && e.vm_current == self.boot.vm_slot
            }
        }
    }
}

/// Walking patterns over a stack buffer, `bytes` in all (at most 64 KiB).
fn ram_test(bytes: u32) -> bool {
    let mut buf = [0u32; 64];
    let rounds = bytes.min(64 * 1024).div_ceil(256);
    for round in 0..rounds {
        for pattern in [0x5555_5555u32, 0xAAAA_AAAA, round.wrapping_mul(0x0101_0101)] {
            for (i, w) in buf.iter_mut().enumerate() {
                *w = core::hint::black_box(pattern ^ i as u32);
            }
            for (i, w) in buf.iter().enumerate() {
                if core::hint::black_box(*w) != pattern ^ i as u32 {
                    return false;
                }
            }
        }
    }
    true
}
