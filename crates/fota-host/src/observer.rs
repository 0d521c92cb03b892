use core::time::Duration;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The steps of the seed's update process, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    /// Read the agent's info and the record; refuse an invalid record.
    RecordCheck,
    /// Choose the slot(s) for the new image(s).
    SlotChoice,
    /// Erase what must be erased.
    Erase,
    /// Stream the image(s) into the slot(s).
    Stream,
    /// Compare the device's MD5 with the image's.
    Checksum,
    /// Make the new configuration the one to try.
    Attempt,
    /// Restart the device into it.
    Restart,
    /// See what the device runs now.
    Outcome,
}

impl Step {
    /// Every step, in order.
    pub const ALL: [Step; 8] = [
        Step::RecordCheck,
        Step::SlotChoice,
        Step::Erase,
        Step::Stream,
        Step::Checksum,
        Step::Attempt,
        Step::Restart,
        Step::Outcome,
    ];

    /// A short name for a user.
    pub const fn label(self) -> &'static str {
        match self {
            Step::RecordCheck => "Record check",
            Step::SlotChoice => "Slot choice",
            Step::Erase => "Erase",
            Step::Stream => "Stream",
            Step::Checksum => "Checksum",
            Step::Attempt => "Attempt",
            Step::Restart => "Restart",
            Step::Outcome => "Outcome",
        }
    }
}

/// What a [`Progress`] measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Checking which sectors already hold the image (resume).
    Compare,
    /// Erasing sectors (units: bytes of flash).
    Erase,
    /// Sending the image (units: image bytes acknowledged by the device).
    Stream,
    /// The device hashing the slot.
    Checksum,
}

/// Progress of a long phase.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// What is being measured.
    pub phase: Phase,
    /// Units done.
    pub done: u64,
    /// Units in all.
    pub total: u64,
    /// Speed over the phase so far, units per second.
    pub per_second: f64,
    /// Time left at that speed.
    pub eta: Option<Duration>,
}

impl Progress {
    /// Done as a fraction from 0 to 1.
    pub fn fraction(&self) -> f64 {
        if self.total == 0 {
            1.0
        } else {
            self.done as f64 / self.total as f64
        }
    }
}

/// Receives what happens during an update. The CLI draws progress bars, the web app
/// updates its state; every method has an empty default.
pub trait Observer {
    /// A step starts; `detail` says what it does in plain words.
    fn step(&mut self, step: Step, detail: &str) {
        let _ = (step, detail);
    }
    /// A long phase advanced.
    fn progress(&mut self, progress: &Progress) {
        let _ = progress;
    }
    /// The device's MD5 of the written slot matched the image's (`md5`): only now may
    /// the new configuration be attempted.
    fn verified(&mut self, image: &str, md5: &[u8; 16]) {
        let _ = (image, md5);
    }
    /// `kept` of the image's `total` bytes were already on the device (an interrupted
    /// transfer of the same image): they are not sent again.
    fn resumed(&mut self, image: &str, kept: u64, total: u64) {
        let _ = (image, kept, total);
    }
    /// The device's FOTA record as just read (record check, after attempt, while
    /// waiting for the outcome), so that a view of it follows the update live.
    fn record(&mut self, record: &fota_protocol::Record) {
        let _ = record;
    }
    /// The device's `Info` as read again after its restart (or on a trial found
    /// running): its trial deadline and the time it has left by its own clock (tags 7
    /// and 9), for a countdown.
    fn info(&mut self, info: &fota_protocol::Info) {
        let _ = info;
    }
    /// A line of text the firmware printed.
    fn device_log(&mut self, line: &str) {
        let _ = line;
    }
    /// A protocol event worth a line in the log (retries, baud changes, ...).
    fn event(&mut self, line: &str) {
        let _ = line;
    }
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullObserver;
impl Observer for NullObserver {}

/// Asks a running update to stop at the next safe point.
#[derive(Debug, Default, Clone)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token not yet cancelled.
    pub fn new() -> Self {
        Self::default()
    }
    /// Ask to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Whether stopping was asked.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    /// Clear a cancel, to reuse the token.
    pub fn reset(&self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// Progress of `phase`: `done` of `total` after `elapsed`, with the rate and the time
/// left at that rate.
pub(crate) fn progress(phase: Phase, done: u32, total: u32, elapsed: Duration) -> Progress {
    progress64(phase, u64::from(done), u64::from(total), elapsed)
}

pub(crate) fn progress64(phase: Phase, done: u64, total: u64, elapsed: Duration) -> Progress {
    let secs = elapsed.as_secs_f64();
    let per_second = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    let eta = (per_second > 0.0)
        .then(|| Duration::from_secs_f64(total.saturating_sub(done) as f64 / per_second));
    Progress {
        phase,
        done,
        total,
        per_second,
        eta,
    }
}
