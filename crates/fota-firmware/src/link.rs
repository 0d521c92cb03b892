//! The one place where the main loop meets the agent: bytes from the board's serial line
//! into `AgentLink`, replies out, and the actions (restart, baud switch) carried out.
//! Each `poll` handles at most one request, or one unit of a long one (a sector erased,
//! 4 KiB hashed), so the program runs between them.

use embedded_storage::nor_flash::NorFlash;
use fota_agent::{Agent, AgentLink, Handled, LinkAction, LinkState};

use crate::board::{Board, ResetCause};

/// Bytes taken from the board per read: the agent copies them into its frame buffer.
const CHUNK: usize = 128;

/// The agent behind the board's serial line. Its state (frame buffers, the long request
/// in progress, the cache of replies) lives in the board's `static`
/// ([`Board::link_state`]), so only the agent sits in the main loop's frame.
pub struct Link<F> {
    link: AgentLink<F, &'static mut LinkState>,
    buf: [u8; CHUNK],
    start: usize,
    end: usize,
}

impl<F: NorFlash> Link<F> {
    /// A link around a booted agent, its state in `state`. `unit_hook` runs after every
    /// sector erased, block hashed and record entry written: the board's watchdog kick.
    pub fn new(agent: Agent<F>, state: &'static mut LinkState, unit_hook: Option<fn()>) -> Self {
        let mut link = AgentLink::with_state(agent, state);
        if let Some(hook) = unit_hook {
            link.set_unit_hook(hook);
        }
        Link {
            link,
            buf: [0; CHUNK],
            start: 0,
            end: 0,
        }
    }

    /// The agent (for the program's `accept` and its checks).
    pub fn agent_mut(&mut self) -> &mut Agent<F> {
        self.link.agent_mut()
    }

    /// Serve what has arrived: at most one request, or one unit of the long request in
    /// progress. Returns whether anything was done (a long request in progress always
    /// has work: call again soon). A `restart` resets the device from here.
    ///
    /// While a long request runs no byte is read from the board: the next requests wait
    /// in its receive ring, which holds the window `Info` announces, and the ring's
    /// backpressure (or its size) keeps them.
    pub fn poll<B: Board>(&mut self, board: &mut B) -> bool {
        let mut did = false;
        // The agent's clock: `Info` reports the time left on trial from it (tag 9).
        let now = board.now_ms();
        self.link.agent_mut().set_uptime_ms(now);
        loop {
            let busy = self.link.is_busy();
            if self.start == self.end && !busy {
                self.start = 0;
                self.end = board.read(&mut self.buf);
            }
            let input = self.buf.get(self.start..self.end).unwrap_or(&[]);
            if input.is_empty() && !busy {
                break;
            }
            did = true;
            let step = self
                .link
                .step(input, &mut |frame: &[u8]| board.write(frame));
            self.start = (self.start + step.consumed).min(self.end);
            if let Some(action) = step.action {
                self.act(board, action);
            }
            match step.handled {
                // One request, or one unit of a long one, per pass.
                Handled::Request { .. }
                | Handled::Started { .. }
                | Handled::Working { .. }
                | Handled::BadFrame(_) => break,
                Handled::Text | Handled::Nothing => {}
            }
        }
        if let Some(action) = self.link.tick(board.now_ms()) {
            self.act(board, action);
        }
        did || self.link.is_busy()
    }

    fn act<B: Board>(&mut self, board: &mut B, action: LinkAction) {
        match action {
            LinkAction::Restart => {
                board.flush();
                board.reset(ResetCause::Restart);
            }
            LinkAction::SetBaud(b) => {
                // The reply went out at the old rate: let it leave first.
                board.flush();
                board.set_baud(b);
                self.link.reset_reader();
            }
        }
    }
}
