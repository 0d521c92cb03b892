//! What an update did: how it ended, where the images went, and its timings.

use core::time::Duration;

use fota_protocol::{Info, Record, SlotDesc};

/// How an update ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Written, verified and attempted, not restarted: it runs from the next restart.
    Attempted,
    /// The new configuration runs, on trial: not accepted (yet).
    OnTrial,
    /// The new firmware accepted itself: it is now the last working configuration.
    Accepted,
    /// The new firmware did not accept and the device went back to the previous one.
    Reverted,
}

impl Outcome {
    /// What the device runs now, in plain words.
    pub fn describe(self) -> &'static str {
        match self {
            Outcome::Attempted => {
                "The new firmware is written and verified; it will be tried at the next restart."
            }
            Outcome::OnTrial => {
                "The new firmware is running on trial and has not confirmed itself: it never \
                 called accept() while the update waited. It keeps running; the next restart, \
                 whatever causes it, brings back the previous firmware. Restart the device now \
                 to go back to it, or wait for it to confirm itself (or confirm it from here \
                 if you know it works)."
            }
            Outcome::Accepted => {
                "The new firmware is running and has confirmed itself: the update is complete."
            }
            Outcome::Reverted => {
                "The new firmware did not confirm itself, so the device went back to the \
                 previous firmware, which is running now."
            }
        }
    }
}

impl Outcome {
    /// [`Outcome::describe`], naming the firmware the next restart brings back from the
    /// record at the end (`record`) where the new one is still on trial.
    pub fn describe_with(self, record: &Record) -> String {
        if self != Outcome::OnTrial {
            return self.describe().to_string();
        }
        format!(
            "The new firmware is running on trial and has not confirmed itself: it never \
             called accept() while the update waited. It keeps running; the next restart, \
             whatever causes it, brings back the previous firmware (bytecode slot {} with VM \
             slot {}). Restart the device now to go back to it, or wait for it to confirm \
             itself (or confirm it from here if you know it works).",
            record.bc_last, record.vm_last
        )
    }
}

/// Where an image went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// The slot.
    pub slot: SlotDesc,
    /// Image size.
    pub len: u32,
}

/// What an update did, with timings for the benchmark.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// How it ended.
    pub outcome: Outcome,
    /// The record at the end.
    pub record: Record,
    /// Where the images went.
    pub targets: Vec<Target>,
    /// Image bytes that were already on the device and were not sent again.
    pub skipped_bytes: u64,
    /// Image bytes sent (resends included).
    pub sent_bytes: u64,
    /// Time spent comparing sectors (resume).
    pub compare_time: Duration,
    /// Time the update waited for erases alone: the first sector's, before the stream
    /// could start (the others run while the stream goes on, and count in
    /// `stream_time`).
    pub erase_time: Duration,
    /// Sectors the device erased (an erase sent again after a lost frame counts again).
    pub erased_sectors: u32,
    /// What those erases took the device by its own figure (`Info` tag 2, its slowest
    /// sector's erase time, times `erased_sectors`): flash time, most of it hidden behind
    /// the stream. Zero when the device declares no erase time.
    pub device_erase_time: Duration,
    /// Time spent streaming, the erases that overlap it included.
    pub stream_time: Duration,
    /// Time spent on the final checksum.
    pub checksum_time: Duration,
    /// Time from the first request to the outcome.
    pub total_time: Duration,
}

impl Report {
    /// The report of an update that has done nothing yet.
    pub(crate) fn start() -> Report {
        Report {
            outcome: Outcome::Attempted,
            record: Record::default(),
            targets: Vec::new(),
            skipped_bytes: 0,
            sent_bytes: 0,
            compare_time: Duration::ZERO,
            erase_time: Duration::ZERO,
            erased_sectors: 0,
            device_erase_time: Duration::ZERO,
            stream_time: Duration::ZERO,
            checksum_time: Duration::ZERO,
            total_time: Duration::ZERO,
        }
    }

    /// The erases in words, for a result line: how many sectors, what they took the
    /// device by its own figure, and how much of it the update waited for alone (the
    /// rest ran while the image streamed). E.g. "erased 64 sectors (2.88 s of flash time
    /// by the device's figure; 0.05 s before the stream could start, the rest while it
    /// ran)".
    pub fn describe_erases(&self) -> String {
        if self.erased_sectors == 0 {
            return "nothing erased".into();
        }
        let each = if self.device_erase_time.is_zero() {
            String::new()
        } else {
            format!(
                "{:.2} s of flash time by the device's figure; ",
                self.device_erase_time.as_secs_f64()
            )
        };
        format!(
            "erased {} sector{} ({each}{:.2} s before the stream could start, the rest \
             while it ran)",
            self.erased_sectors,
            if self.erased_sectors == 1 { "" } else { "s" },
            self.erase_time.as_secs_f64()
        )
    }
}

/// What the erases of `sectors` sectors take the device by its own figure (`Info` tag
/// 2, its slowest sector's), added to the report.
pub(crate) fn count_erases(report: &mut Report, info: &Info, sectors: u32) {
    report.erased_sectors += sectors;
    let each = Duration::from_millis(u64::from(info.sector_erase_ms.unwrap_or(0)));
    report.device_erase_time += each * sectors;
}
