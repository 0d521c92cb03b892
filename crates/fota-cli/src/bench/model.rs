//! The benchmark's data: a setting of the matrix, what each transfer measured and the
//! limits it is compared with, and the sizes the report is given in. Plain data, shared
//! by the runs (`mod.rs`, `lrzsz.rs`) and the report (`table.rs`).

use std::time::Duration;

use fota_sim::device::SECTOR;
use fota_sim::flash::FlashTiming;

pub(super) const KIB: usize = 1024;
pub(super) const MIB: usize = 1024 * 1024;
/// RAM the agent's link may take on a small MCU.
pub(super) const RAM_BUDGET: usize = 8 * 1024;
/// The rate every agent answers at after reset.
pub(super) const CONNECT_BAUD: u32 = 115_200;

/// One setting of the matrix.
#[derive(Debug, Clone, Copy)]
pub(super) struct Setting {
    pub(super) baud: u32,
    pub(super) latency_ms: u64,
    pub(super) image_len: usize,
}

impl Setting {
    pub(super) fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms)
    }
    pub(super) fn bytes_per_second(&self) -> f64 {
        f64::from(self.baud) / 10.0
    }
    pub(super) fn negotiated(&self) -> bool {
        self.baud != CONNECT_BAUD
    }
}

/// Our update over the model.
#[derive(Debug, Clone)]
pub(super) struct Ours {
    pub(super) stream: Duration,
    pub(super) efficiency: f64,
    pub(super) update: Duration,
    /// The same update with resume off.
    pub(super) no_resume: Duration,
    pub(super) negotiate: Duration,
    pub(super) compare: Duration,
    pub(super) erase: Duration,
    pub(super) checksum: Duration,
    pub(super) sent_bytes: u64,
    pub(super) overruns: u64,
    pub(super) resent: u64,
    pub(super) bad_frames: u64,
}

/// The limits of one setting, in seconds, and their parts.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limit {
    /// The fastest erase of every sector the image touches: whole 64 and 32 KiB blocks
    /// where aligned (the W25Q128JV's block erases), sectors for the rest.
    pub(super) erase: f64,
    /// Erase of one sector, the part's smallest and quickest erase: the first write
    /// waits for it.
    pub(super) first_erase: f64,
    /// The image's bytes at baud / 10 bytes a second.
    pub(super) link: f64,
    /// Page programs of the image.
    pub(super) program: f64,
    /// The device reading the image for its MD5.
    pub(super) read: f64,
    /// The device's CPU computing that MD5 (a Cortex-M4's time per byte,
    /// [`fota_sim::device::CORTEX_M4_MD5_NS_PER_BYTE`]; the simulated device charges the
    /// same).
    pub(super) md5: f64,
    /// Two one-way latencies.
    pub(super) round_trip: f64,
    /// The device's image check before `attempt`: none for a raw image, as here (the
    /// device's MD5 of the slot just before met no trailer's magic as it hashed, so no
    /// trailer can be there: docs/PROTOCOL.md 5.8); a packed image is read to its
    /// trailer. Kept as a term, 0 here.
    pub(super) check: f64,
}

impl Limit {
    pub(super) fn of(s: &Setting, timing: &FlashTiming) -> Limit {
        let len = s.image_len;
        let sector_erase = timing.sector_erase_ns as f64 / 1e9;
        // The slots start on 64 KiB boundaries; the image at the start of one.
        let (erase_ns, _, _) = timing.erase_plan_ns(SECTOR, 0, len, timing.block_erases);
        Limit {
            erase: erase_ns as f64 / 1e9,
            first_erase: sector_erase,
            link: len as f64 / s.bytes_per_second(),
            program: timing.program_ns(0, len) as f64 / 1e9,
            read: timing.read_ns(len) as f64 / 1e9,
            md5: (len as u64 * fota_sim::device::CORTEX_M4_MD5_NS_PER_BYTE) as f64 / 1e9,
            round_trip: 2.0 * s.latency().as_secs_f64(),
            check: 0.0,
        }
    }
    /// Erasing overlapped with streaming: the link and the flash work at once, and only
    /// the first sector's erase, the final read and MD5, the image check and one round
    /// trip add to the slower.
    pub(super) fn true_limit(&self) -> f64 {
        self.link.max(self.erase + self.program)
            + self.first_erase
            + self.read
            + self.md5
            + self.check
            + self.round_trip
    }
    /// Erase the slot, then stream.
    pub(super) fn erase_then_stream(&self) -> f64 {
        self.erase
            + self.link.max(self.program)
            + self.read
            + self.md5
            + self.check
            + self.round_trip
    }
}

pub(super) struct Row {
    pub(super) setting: Setting,
    pub(super) ours: Result<Ours, String>,
    pub(super) limit: Limit,
    pub(super) zmodem: Option<Peer>,
    pub(super) ymodem: Option<Peer>,
}

/// One lrzsz transfer over the model.
#[derive(Debug, Clone)]
pub(super) struct Peer {
    pub ok: bool,
    pub seconds: f64,
    pub efficiency: f64,
    pub detail: String,
}
