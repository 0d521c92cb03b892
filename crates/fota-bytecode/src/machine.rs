//! The interpreter: runs a checked program a bounded number of instructions at a time,
//! so the firmware's main loop can serve the update link in between.

use crate::image::{HEADER_LEN, Header};
use crate::insn::{Check, DecodeError, Insn, MAX_INSN, decode};

/// What the program asks of the device.
pub trait Host {
    /// Fill `buf` from byte `offset` of the program image (header included); false if
    /// it cannot be read.
    fn fetch(&mut self, offset: u32, buf: &mut [u8]) -> bool;
    /// Milliseconds since some fixed instant (wraps).
    fn now_ms(&mut self) -> u32;
    /// Print one line: the parts, then a line end.
    fn print(&mut self, parts: &[&[u8]]);
    /// `accept()`: confirm the running configuration; false if it could not be recorded.
    fn accept(&mut self) -> bool;
    /// Run a check; false fails the program.
    fn check(&mut self, what: Check, arg: u32) -> bool;
}

/// Why a program failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `fail CODE`.
    Code(u8),
    /// A `check` did not pass.
    Check(Check),
    /// `accept` could not be recorded.
    Accept,
    /// Bytes at this code offset are not an instruction.
    Decode(u32, DecodeError),
    /// A jump, or the end of an instruction, outside the code. Field: the offset.
    OutOfCode(u32),
    /// The code could not be read at this offset (flash error).
    Read(u32),
}

impl core::fmt::Display for Fault {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Fault::Code(c) => write!(f, "fail {c}"),
            Fault::Check(c) => write!(f, "check {} did not pass", c.name()),
            Fault::Accept => write!(f, "accept could not be recorded"),
            Fault::Decode(at, e) => write!(f, "at {at}: {e}"),
            Fault::OutOfCode(at) => write!(f, "offset {at} is outside the code"),
            Fault::Read(at) => write!(f, "the code cannot be read at {at}"),
        }
    }
}

/// Where the program stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// It has instructions to run now.
    Running,
    /// It sleeps until this `now_ms` value.
    Sleeping(u32),
    /// It ran `end` (or off the end of its code).
    Ended,
    /// It failed.
    Failed(Fault),
    /// It ran `hang`: the device must stop responding (the watchdog resets it).
    Hung,
}

/// A running program.
#[derive(Debug, Clone)]
pub struct Machine {
    header: Header,
    pc: u32,
    counter: u32,
    ticks: u32,
    started: Option<u32>,
    state: State,
}

impl Machine {
    /// A machine at the start of the program `header` describes (see [`crate::check`]).
    pub fn new(header: Header) -> Machine {
        Machine {
            header,
            pc: 0,
            counter: 0,
            ticks: 0,
            started: None,
            state: State::Running,
        }
    }

    /// The program's header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Where the program stands.
    pub fn state(&self) -> State {
        self.state
    }

    /// The code offset of the next instruction.
    pub fn pc(&self) -> u32 {
        self.pc
    }

    /// Milliseconds the program's state stays as it is if nothing happens (0: it runs
    /// now; `None`: it never runs again). The firmware may sleep that long.
    pub fn idle_for(&self, now: u32) -> Option<u32> {
        match self.state {
            State::Running => Some(0),
            State::Sleeping(until) => Some(until.wrapping_sub(now).min(i32::MAX as u32)),
            _ => None,
        }
    }

    /// Run at most `budget` instructions, stopping early when the program sleeps, ends,
    /// fails or hangs.
    pub fn step<H: Host + ?Sized>(&mut self, host: &mut H, budget: u32) -> State {
        let now = host.now_ms();
        let started = *self.started.get_or_insert(now);
        if let State::Sleeping(until) = self.state {
            if (now.wrapping_sub(until) as i32) < 0 {
                return self.state;
            }
            self.state = State::Running;
        }
        let mut buf = [0u8; MAX_INSN];
        for _ in 0..budget {
            if self.state != State::Running {
                break;
            }
            self.state = self.one(host, &mut buf, started);
        }
        self.state
    }

    fn one<H: Host + ?Sized>(
        &mut self,
        host: &mut H,
        buf: &mut [u8; MAX_INSN],
        started: u32,
    ) -> State {
        let pc = self.pc;
        let len = self.header.code_len;
        if pc >= len {
            return State::Ended;
        }
        let n = (len - pc).min(MAX_INSN as u32) as usize;
        let bytes = &mut buf[..n];
        if !host.fetch(HEADER_LEN as u32 + pc, bytes) {
            return State::Failed(Fault::Read(pc));
        }
        let (insn, size) = match decode(bytes) {
            Ok(x) => x,
            Err(e) => return State::Failed(Fault::Decode(pc, e)),
        };
        let next = pc + size as u32;
        self.pc = next;
        match insn {
            Insn::Print(text) => host.print(&[text]),
            Insn::Tick => {
                self.ticks = self.ticks.wrapping_add(1);
                let mut num = [0u8; 10];
                let header = &self.header;
                host.print(&[
                    header.name().as_bytes(),
                    b" ",
                    header.version().as_bytes(),
                    b": tick ",
                    decimal(self.ticks, &mut num),
                ]);
            }
            Insn::Sleep(ms) => return State::Sleeping(host.now_ms().wrapping_add(ms)),
            Insn::Check(Check::Clock, _) => {
                if host.now_ms() == started || !host.check(Check::Clock, 0) {
                    return State::Failed(Fault::Check(Check::Clock));
                }
            }
            Insn::Check(what, arg) => {
                if !host.check(what, arg) {
                    return State::Failed(Fault::Check(what));
                }
            }
            Insn::Accept => {
                if !host.accept() {
                    return State::Failed(Fault::Accept);
                }
            }
            Insn::Fail(code) => return State::Failed(Fault::Code(code)),
            Insn::Hang => return State::Hung,
            Insn::Jump(target) => return self.jump(target),
            Insn::Count(n) => self.counter = n,
            Insn::Loop(target) => {
                self.counter = self.counter.saturating_sub(1);
                if self.counter != 0 {
                    return self.jump(target);
                }
            }
            Insn::End => return State::Ended,
            Insn::Data(skip) => match next.checked_add(skip) {
                Some(end) if end <= len => self.pc = end,
                _ => return State::Failed(Fault::OutOfCode(next)),
            },
        }
        if self.pc > len {
            return State::Failed(Fault::OutOfCode(self.pc));
        }
        State::Running
    }

    fn jump(&mut self, target: u32) -> State {
        if target >= self.header.code_len {
            return State::Failed(Fault::OutOfCode(target));
        }
        self.pc = target;
        State::Running
    }
}

/// `v` in decimal, in `buf`.
fn decimal(mut v: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 || i == 0 {
            break;
        }
    }
    &buf[i..]
}
