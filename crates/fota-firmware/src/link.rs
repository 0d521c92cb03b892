//! The one place where the main loop meets the agent: bytes from the board's serial line
//! into `AgentLink`, replies out, and the actions (restart, baud switch) carried out.
//! Each `poll` handles at most one request, so the program runs between requests.

use embedded_storage::nor_flash::NorFlash;
use fota_agent::{Action, Agent, AgentLink, Handled};

use crate::board::{Board, ResetCause};

/// Bytes taken from the board per read: the agent copies them into its frame buffer.
const CHUNK: usize = 128;

/// How long a new baud rate has to prove itself with a valid frame.
const BAUD_TRIAL_MS: u32 = 1000;

/// A baud switch waiting for its first valid frame.
#[derive(Debug, Clone, Copy)]
struct BaudTrial {
    deadline: u32,
    requests: u32,
    old: u32,
}

/// The agent behind the board's serial line.
pub struct Link<F> {
    link: AgentLink<F>,
    buf: [u8; CHUNK],
    start: usize,
    end: usize,
    baud: u32,
    trial: Option<BaudTrial>,
}

impl<F: NorFlash> Link<F> {
    /// A link around a booted agent; the line runs at `baud`.
    pub fn new(agent: Agent<F>, baud: u32) -> Self {
        Link {
            link: AgentLink::new(agent),
            buf: [0; CHUNK],
            start: 0,
            end: 0,
            baud,
            trial: None,
        }
    }

    /// The agent (for the program's `accept` and its checks).
    pub fn agent_mut(&mut self) -> &mut Agent<F> {
        self.link.agent_mut()
    }

    /// Serve what has arrived: at most one request. Returns whether anything was done.
    /// A `restart` resets the device from here.
    pub fn poll<B: Board>(&mut self, board: &mut B) -> bool {
        let mut busy = false;
        loop {
            if self.start == self.end {
                self.start = 0;
                self.end = board.read(&mut self.buf);
                if self.end == 0 {
                    break;
                }
            }
            busy = true;
            let Some(input) = self.buf.get(self.start..self.end) else {
                self.start = self.end;
                continue;
            };
            let step = self.link.step(input, &mut |frame: &[u8]| {
                board.write(frame);
                // Between sectors of a long erase and blocks of a checksum, progress
                // frames come out: proof the agent is not stuck.
                board.kick_watchdog();
            });
            self.start = (self.start + step.consumed).min(self.end);
            match step.action {
                Some(Action::Restart) => {
                    board.flush();
                    board.reset(ResetCause::Restart);
                }
                Some(Action::SetBaud(b)) => {
                    board.flush();
                    board.set_baud(b);
                    self.trial = Some(BaudTrial {
                        deadline: board.now_ms().wrapping_add(BAUD_TRIAL_MS),
                        requests: self.link.stats().requests,
                        old: self.baud,
                    });
                    self.baud = b;
                    self.link.reset_reader();
                    // Bytes after the switch were sent at the new rate: keep them.
                }
                None => {}
            }
            if matches!(step.handled, Handled::Request { .. } | Handled::BadFrame(_))
                || step.consumed == 0
            {
                break;
            }
        }
        self.watch_baud(board);
        busy
    }

    /// Go back to the old rate unless a valid frame came at the new one in time.
    fn watch_baud<B: Board>(&mut self, board: &mut B) {
        let Some(t) = self.trial else { return };
        if self.link.stats().requests != t.requests {
            self.trial = None;
        } else if (board.now_ms().wrapping_sub(t.deadline) as i32) >= 0 {
            board.set_baud(t.old);
            self.baud = t.old;
            self.link.reset_reader();
            self.trial = None;
        }
    }
}
