//! A dry run on the host: what a program does on a device whose checks all pass, on a
//! virtual clock. The simulator and the tools use it to say whether a program accepts.

use crate::image::{self, ImageError};
use crate::insn::Check;
use crate::machine::{Fault, Host, Machine, State};

/// What a program does when it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It calls `accept` this many (virtual) milliseconds after it starts.
    Accepts {
        /// When.
        after_ms: u32,
    },
    /// It hangs before accepting: the watchdog resets the device.
    Hangs,
    /// It fails before accepting.
    Fails(Fault),
    /// It ends before accepting.
    Ends,
    /// It runs for `limit_ms` without accepting.
    Runs,
    /// It is not a program.
    Invalid(ImageError),
}

impl Verdict {
    /// Whether the program confirms itself.
    pub fn accepts(&self) -> bool {
        matches!(self, Verdict::Accepts { .. })
    }
}

struct Virtual<'a> {
    image: &'a [u8],
    now: u32,
    accepted: bool,
}

impl Host for Virtual<'_> {
    fn fetch(&mut self, offset: u32, buf: &mut [u8]) -> bool {
        crate::Source::read(&mut self.image, offset, buf)
    }
    fn now_ms(&mut self) -> u32 {
        self.now
    }
    fn print(&mut self, _: &[&[u8]]) {}
    fn accept(&mut self) -> bool {
        self.accepted = true;
        true
    }
    fn check(&mut self, _: Check, _: u32) -> bool {
        true
    }
}

/// Run `image` for up to `limit_ms` of virtual time (the clock advances 1 ms every 1000
/// instructions, and jumps over sleeps).
pub fn dry_run(image: &[u8], limit_ms: u32) -> Verdict {
    let mut src = image;
    let header = match image::check(&mut src, u32::try_from(image.len()).unwrap_or(u32::MAX)) {
        Ok(h) => h,
        Err(e) => return Verdict::Invalid(e),
    };
    let mut m = Machine::new(header);
    // Starts at 1 so that `check clock` after a sleep sees time pass.
    let mut host = Virtual {
        image,
        now: 1,
        accepted: false,
    };
    while host.now < limit_ms {
        let state = m.step(&mut host, 1000);
        if host.accepted {
            return Verdict::Accepts {
                after_ms: host.now - 1,
            };
        }
        match state {
            State::Running => host.now += 1,
            State::Sleeping(until) => host.now = until.max(host.now + 1),
            State::Ended => return Verdict::Ends,
            State::Failed(f) => return Verdict::Fails(f),
            State::Hung => return Verdict::Hangs,
        }
    }
    Verdict::Runs
}
