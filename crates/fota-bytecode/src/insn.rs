//! Instructions: one opcode byte, then little-endian operands.

/// The longest instruction: `print` with 255 bytes of text.
pub const MAX_INSN: usize = 2 + 255;

/// Opcodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Opcode {
    /// `print "text"`: `len:u8`, `len` bytes of printable ASCII.
    Print = 0x01,
    /// `tick`: print `<name> <version>: tick <n>`, n counting from 1.
    Tick = 0x02,
    /// `sleep MS`: `ms:u32`.
    Sleep = 0x03,
    /// `check WHAT [ARG]`: `what:u8`, `arg:u32`.
    Check = 0x04,
    /// `accept`: confirm the running configuration.
    Accept = 0x05,
    /// `fail CODE`: `code:u8`.
    Fail = 0x06,
    /// `hang`: stop responding (the watchdog resets the device).
    Hang = 0x07,
    /// `jump LABEL`: `target:u32`, a code offset.
    Jump = 0x08,
    /// `count N`: `n:u32`, sets the loop counter.
    Count = 0x09,
    /// `loop LABEL`: `target:u32`; decrements the counter, jumps while it is not zero.
    Loop = 0x0A,
    /// `end`: the program stops (the device keeps serving updates).
    End = 0x0B,
    /// `data N`: `len:u32`, then `len` bytes the program carries and skips.
    Data = 0x0C,
}

/// What `check` checks on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Check {
    /// The millisecond clock has advanced since the program started.
    Clock = 1,
    /// A RAM test over `arg` bytes (patterns written and read back).
    Ram = 2,
    /// The program image's CRC, read again from the slot.
    Image = 3,
    /// The record names the running configuration as current.
    Record = 4,
}

impl Check {
    /// All checks, for parsers and tests.
    pub const ALL: [Check; 4] = [Check::Clock, Check::Ram, Check::Image, Check::Record];

    /// Its name in the assembly language.
    pub const fn name(self) -> &'static str {
        match self {
            Check::Clock => "clock",
            Check::Ram => "ram",
            Check::Image => "image",
            Check::Record => "record",
        }
    }

    fn from_u8(v: u8) -> Option<Check> {
        Check::ALL.into_iter().find(|c| *c as u8 == v)
    }
}

/// A decoded instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insn<'a> {
    /// Print a line.
    Print(&'a [u8]),
    /// Print the tick line.
    Tick,
    /// Sleep this many milliseconds.
    Sleep(u32),
    /// Check something; a failed check fails the program.
    Check(Check, u32),
    /// Confirm the running configuration.
    Accept,
    /// Fail with a code.
    Fail(u8),
    /// Hang.
    Hang,
    /// Jump to a code offset.
    Jump(u32),
    /// Set the loop counter.
    Count(u32),
    /// Decrement the counter; jump to the offset while it is not zero.
    Loop(u32),
    /// Stop.
    End,
    /// Skip this many bytes of data.
    Data(u32),
}

/// Why bytes are not an instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Unknown opcode. Field: the byte.
    UnknownOpcode(u8),
    /// Unknown `check`. Field: the byte.
    UnknownCheck(u8),
    /// The code ends inside the instruction.
    Truncated,
    /// `print` text with a byte that is not printable ASCII. Field: the byte.
    BadText(u8),
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DecodeError::UnknownOpcode(b) => write!(f, "unknown opcode {b:#04x}"),
            DecodeError::UnknownCheck(b) => write!(f, "unknown check {b}"),
            DecodeError::Truncated => write!(f, "the code ends inside an instruction"),
            DecodeError::BadText(b) => write!(f, "text byte {b:#04x} is not printable"),
        }
    }
}

/// Whether `b` may appear in `print` text: printable ASCII and space. Never 0x00, which
/// delimits the wire protocol's frames on the same UART.
pub const fn printable(b: u8) -> bool {
    matches!(b, 0x20..=0x7E)
}

/// Decode the instruction at the start of `code`; returns it and its length.
pub fn decode(code: &[u8]) -> Result<(Insn<'_>, usize), DecodeError> {
    let (&op, rest) = code.split_first().ok_or(DecodeError::Truncated)?;
    let u32_at = |at: usize| -> Result<u32, DecodeError> {
        rest.get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
            .ok_or(DecodeError::Truncated)
    };
    let insn = match op {
        x if x == Opcode::Print as u8 => {
            let n = usize::from(*rest.first().ok_or(DecodeError::Truncated)?);
            let text = rest.get(1..1 + n).ok_or(DecodeError::Truncated)?;
            if let Some(&b) = text.iter().find(|&&b| !printable(b)) {
                return Err(DecodeError::BadText(b));
            }
            return Ok((Insn::Print(text), 2 + n));
        }
        x if x == Opcode::Tick as u8 => (Insn::Tick, 1),
        x if x == Opcode::Sleep as u8 => (Insn::Sleep(u32_at(0)?), 5),
        x if x == Opcode::Check as u8 => {
            let what = *rest.first().ok_or(DecodeError::Truncated)?;
            let check = Check::from_u8(what).ok_or(DecodeError::UnknownCheck(what))?;
            (Insn::Check(check, u32_at(1)?), 6)
        }
        x if x == Opcode::Accept as u8 => (Insn::Accept, 1),
        x if x == Opcode::Fail as u8 => {
            (Insn::Fail(*rest.first().ok_or(DecodeError::Truncated)?), 2)
        }
        x if x == Opcode::Hang as u8 => (Insn::Hang, 1),
        x if x == Opcode::Jump as u8 => (Insn::Jump(u32_at(0)?), 5),
        x if x == Opcode::Count as u8 => (Insn::Count(u32_at(0)?), 5),
        x if x == Opcode::Loop as u8 => (Insn::Loop(u32_at(0)?), 5),
        x if x == Opcode::End as u8 => (Insn::End, 1),
        x if x == Opcode::Data as u8 => (Insn::Data(u32_at(0)?), 5),
        other => return Err(DecodeError::UnknownOpcode(other)),
    };
    Ok(insn)
}

/// Encode an instruction (host side). `Print` text must be at most 255 printable bytes
/// (the assembler checks); `Data` encodes its header only, the bytes follow.
#[cfg(feature = "std")]
pub fn encode(insn: &Insn<'_>, out: &mut Vec<u8>) {
    match *insn {
        Insn::Print(text) => {
            out.push(Opcode::Print as u8);
            out.push(text.len().min(255) as u8);
            out.extend_from_slice(&text[..text.len().min(255)]);
        }
        Insn::Tick => out.push(Opcode::Tick as u8),
        Insn::Sleep(ms) => op32(out, Opcode::Sleep, ms),
        Insn::Check(c, arg) => {
            out.push(Opcode::Check as u8);
            out.push(c as u8);
            out.extend_from_slice(&arg.to_le_bytes());
        }
        Insn::Accept => out.push(Opcode::Accept as u8),
        Insn::Fail(code) => out.extend_from_slice(&[Opcode::Fail as u8, code]),
        Insn::Hang => out.push(Opcode::Hang as u8),
        Insn::Jump(t) => op32(out, Opcode::Jump, t),
        Insn::Count(n) => op32(out, Opcode::Count, n),
        Insn::Loop(t) => op32(out, Opcode::Loop, t),
        Insn::End => out.push(Opcode::End as u8),
        Insn::Data(n) => op32(out, Opcode::Data, n),
    }
}

#[cfg(feature = "std")]
fn op32(out: &mut Vec<u8>, op: Opcode, v: u32) {
    out.push(op as u8);
    out.extend_from_slice(&v.to_le_bytes());
}
