//! The raw image's erase plan (see the parent module): the transfer modelled request by
//! request, the blocks and the erases' places that make it shortest.

use core::time::Duration;

use fota_protocol::Info;

use super::{DEFAULT_PROGRAM_NS_PER_BYTE, candidates_of, overlaps};

/// The link of a raw transfer, as [`raw_plan`] models it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RawLink {
    /// The line's baud rate (8N1).
    pub(crate) baud: u32,
    /// A request's round trip, as the host measured it.
    pub(crate) round_trip: Duration,
}

/// The flash and the agent's queue, as [`raw_plan`] models them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawFlash {
    /// Bytes of an erase sector.
    pub(crate) sector_size: u32,
    /// One sector's erase.
    pub(crate) sector_erase: Duration,
    /// The block erases: bytes and time of each.
    pub(crate) blocks: Vec<(u32, Duration)>,
    /// The bytes of requests the host keeps in flight (`Info` tag 8, else
    /// `max_in_flight` full frames).
    pub(crate) window: u32,
    /// Programming time per byte, in nanoseconds.
    pub(crate) program_ns_per_byte: u64,
}

impl RawFlash {
    /// The flash as `info` declares it; `None` without a sector erase time (tag 2).
    pub(crate) fn of(info: &Info) -> Option<RawFlash> {
        let frame = u32::from(info.max_write).saturating_add(FRAME_EXTRA as u32);
        Some(RawFlash {
            sector_size: info.sector_size,
            sector_erase: Duration::from_millis(u64::from(info.sector_erase_ms?)),
            blocks: (info.block_erases.iter())
                .map(|b| (b.size, Duration::from_millis(u64::from(b.ms))))
                .collect(),
            window: info
                .rx_window
                .unwrap_or_else(|| u32::from(info.max_in_flight).saturating_mul(frame)),
            program_ns_per_byte: DEFAULT_PROGRAM_NS_PER_BYTE,
        })
    }
}

/// The erases of a raw transfer (crate::erase_ahead): the units, and where each goes
/// among the writes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawPlan {
    /// For each sector, one past the last sector of the erase unit that starts there
    /// (`s + 1`: the sector alone).
    pub(crate) spans: Vec<usize>,
    /// For each sector that starts a unit, the index of the write its erase is sent
    /// just before (the number of writes: after the last one).
    pub(crate) lead: Vec<usize>,
    /// The modelled time of the transfer, from its first request to the last answer.
    pub(crate) time: Duration,
}

/// Where the erases go among the writes, in the model of [`raw_plan`].
#[derive(Debug, Clone, Copy, PartialEq)]
enum Placement {
    /// Each unit's erase just before the writes of the sector ahead of it (the erase of
    /// sector k + 1 while sector k streams).
    Ahead,
    /// As early as the agent's backlog allows: the next erase goes as soon as the work
    /// already queued ahead of it plus the erase itself stays within this many ns of the
    /// line (it then hides under the queue), and in any case before its own writes.
    Backlog(f64),
}

/// The agent and the line of a raw transfer, request by request: the host sends in
/// order as its window allows (docs/PROTOCOL.md 6.2: the bytes in flight, the oldest
/// left out), the line carries each frame at its rate, the agent handles each in turn
/// (an erase or a write's programs) and answers it a latency later. Written here: it
/// models this protocol's own flow control, which no queueing crate knows.
#[derive(Debug, Clone)]
struct Sim {
    byte_ns: f64,
    latency_ns: f64,
    window: f64,
    /// When the host's line is free for the next frame.
    tx_free: f64,
    /// When the agent is done with everything sent so far.
    agent: f64,
    /// Requests in flight: (answer's arrival, bytes).
    flight: std::collections::VecDeque<(f64, f64)>,
    /// Their bytes.
    used: f64,
}

impl Sim {
    fn new(byte_ns: f64, latency_ns: f64, window: f64) -> Sim {
        Sim {
            byte_ns,
            latency_ns,
            window,
            tx_free: 0.0,
            agent: 0.0,
            flight: std::collections::VecDeque::new(),
            used: 0.0,
        }
    }

    /// How far the agent is behind a frame sent now (ns; zero when it waits for it).
    fn backlog(&self) -> f64 {
        (self.agent - self.tx_free - self.latency_ns).max(0.0)
    }

    /// Send a request of `bytes` on the line that costs the agent `work` ns.
    fn push(&mut self, bytes: f64, work: f64) {
        let mut t = self.tx_free;
        while let Some(&(answer, b)) = self.flight.front() {
            let full = self.used - b + bytes > self.window;
            if answer <= t || full {
                t = t.max(answer);
                self.used -= b;
                self.flight.pop_front();
            } else {
                break;
            }
        }
        self.tx_free = t + bytes * self.byte_ns;
        self.agent = self.agent.max(self.tx_free + self.latency_ns) + work;
        self.flight.push_back((self.agent + self.latency_ns, bytes));
        self.used += bytes;
    }
}

/// Request bytes besides a write's data (header, offset, CRC, COBS), and an erase's.
const FRAME_EXTRA: f64 = 18.0;

/// The erases of a raw transfer whose sectors are `sectors` (`(flash address, bytes)`,
/// in order), those marked in `erase` to be erased, written by `writes` (`(sector,
/// bytes)`, in order): which runs of dirty sectors go as one block erase, and before
/// which write each erase is sent. `None` where the model lacks a figure (no declared
/// sector erase time): crate::erase_ahead then keeps its fixed order.
///
/// The plan is the one the model finds fastest (it runs the transfer request by
/// request, [`Sim`]). A block erase does a block's sectors' work in a fraction of their
/// time, but the agent takes nothing off the line while it runs: beyond the queue, the
/// line stalls. A sector erase hides under the queue, but erasing sector by sector can
/// leave the flash slower than the line. Sector erases sent well ahead of their writes
/// use the time the flash has to spare where the line sets the pace (behind a block,
/// whose programs leave the agent mostly idle), so the mix of a few blocks and sectors
/// erased early wins where each extreme loses. Every placement (each erase one sector
/// ahead, or as early as the agent's backlog allows within several bounds) is tried
/// with evenly spread choices of the largest blocks, then (within a budget of the
/// model's steps) with blocks taken one at a time, the one that shortens the transfer
/// most first.
pub(crate) fn raw_plan(
    flash: &RawFlash,
    sectors: &[(u32, u32)],
    erase: &[bool],
    writes: &[(usize, u32)],
    link: RawLink,
) -> Option<RawPlan> {
    let sector_ns = flash.sector_erase.as_nanos() as f64;
    if link.baud == 0 || sector_ns == 0.0 {
        return None;
    }
    let index: Vec<usize> = (0..sectors.len()).filter(|&s| erase[s]).collect();
    let dirty: Vec<(u32, u32)> = index.iter().map(|&s| sectors[s]).collect();
    let blocks: Vec<(u32, u64)> = (flash.blocks.iter())
        .map(|&(size, t)| (size, u64::try_from(t.as_nanos()).unwrap_or(u64::MAX)))
        .collect();
    let candidates = candidates_of(flash.sector_size, &blocks, &dirty);
    let byte_ns = 10e9 / f64::from(link.baud);
    let latency_ns = link.round_trip.as_nanos() as f64 / 2.0;
    let window = f64::from(flash.window);
    let program = flash.program_ns_per_byte as f64;
    // The units of a choice of blocks (indexes into candidates): (first sector, end,
    // erase time in ns).
    let layout = |chosen: &[usize]| {
        let mut out: Vec<(usize, usize, f64)> = Vec::with_capacity(index.len());
        let mut i = 0;
        while i < index.len() {
            match chosen.iter().map(|&c| candidates[c]).find(|c| c.0 == i) {
                Some((a, b, ns)) => {
                    out.push((index[a], index[b - 1] + 1, ns as f64));
                    i = b;
                }
                None => {
                    out.push((index[i], index[i] + 1, sector_ns));
                    i += 1;
                }
            }
        }
        out
    };
    // The transfer with these units placed so: its time, and each unit's lead.
    let run = |units: &[(usize, usize, f64)], place: Placement| {
        let mut sim = Sim::new(byte_ns, latency_ns, window);
        let mut lead = vec![writes.len(); units.len()];
        let mut u = 0;
        let mut last = None;
        for (k, &(s, bytes)) in writes.iter().enumerate() {
            // The sector whose erase must be sent now.
            let due = match place {
                Placement::Ahead if last != Some(s) => writes[k..]
                    .iter()
                    .map(|w| w.0)
                    .find(|&x| x > s)
                    .unwrap_or(s),
                _ => s,
            };
            last = Some(s);
            while let Some(&(first, _, ns)) = units.get(u) {
                let early = match place {
                    Placement::Ahead => false,
                    Placement::Backlog(room) => sim.backlog() + ns <= room,
                };
                if first > due && !early {
                    break;
                }
                sim.push(FRAME_EXTRA, ns);
                lead[u] = k;
                u += 1;
            }
            sim.push(f64::from(bytes) + FRAME_EXTRA, f64::from(bytes) * program);
        }
        for &(_, _, ns) in &units[u.min(units.len())..] {
            sim.push(FRAME_EXTRA, ns);
        }
        (sim.agent + sim.latency_ns, lead)
    };
    // What hides under the queue is about its worth of the line (less what the round
    // trip keeps in flight): the bounds tried go around it, and the model picks. (At
    // 921600 baud and 1 ms the best bound is 0.95-1.0 of the queue; with 16 ms the round
    // trip leaves no room for a sector erase and every bound loses to `Ahead`.)
    let queue = window * byte_ns;
    let mut places = vec![Placement::Ahead];
    for f in [0.5, 0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15, 1.25] {
        places.push(Placement::Backlog(f * queue));
    }
    // The flash time a choice saves against sectors alone.
    let saving = |chosen: &[usize]| -> f64 {
        (chosen.iter().map(|&c| candidates[c]))
            .map(|(a, b, ns)| (b - a) as f64 * sector_ns - ns as f64)
            .sum()
    };
    // Times within 0.1 ms are equal (sums in another order): then the choice that saves
    // the flash most (the same time, less flash work), then the first.
    const TIE: f64 = 1e5;
    let mut best: Option<(f64, Vec<usize>, Placement, f64)> = None;
    let mut consider = |time: f64, chosen: Vec<usize>, place: Placement| {
        let saves = saving(&chosen);
        let better = best
            .as_ref()
            .is_none_or(|b| time < b.0 - TIE || (time <= b.0 + TIE && saves > b.3 + 1.0));
        if better {
            best = Some((time, chosen, place, saves));
        }
    };
    // Evenly spread choices of the largest blocks, the first one always among them (0,
    // 1, ... all of them; with all, every smaller block that fits besides): one model
    // run each.
    let largest = candidates.iter().map(|c| c.1 - c.0).max().unwrap_or(0);
    let big: Vec<usize> = (0..candidates.len())
        .filter(|&c| candidates[c].1 - candidates[c].0 == largest)
        .collect();
    let mut spreads: Vec<Vec<usize>> = (0..=big.len())
        .map(|k| (0..k).map(|i| big[i * big.len() / k]).collect())
        .collect();
    let mut all = big.clone();
    for c in 0..candidates.len() {
        if !all.iter().any(|&k| overlaps(candidates[k], candidates[c])) {
            all.push(c);
        }
    }
    spreads.push(all);
    for &place in &places {
        for chosen in &spreads {
            consider(run(&layout(chosen), place).0, chosen.clone(), place);
        }
    }
    // Then blocks taken one at a time, the one that shortens the transfer most first:
    // a model run per candidate per block taken, so only within a budget of the model's
    // steps (about a 1.5 MiB slot of 4 KiB sectors and 64 KiB blocks; a 16 MiB one would
    // take minutes).
    const BUDGET: usize = 20_000_000;
    let cost = (places.len() * big.len())
        .saturating_mul(candidates.len())
        .saturating_mul(writes.len());
    for &place in places.iter().filter(|_| cost <= BUDGET) {
        let (chosen, time) = super::take_blocks(&candidates, sector_ns, |chosen| {
            run(&layout(chosen), place).0
        });
        consider(time, chosen, place);
    }
    let (time, chosen, place, _) = best?;
    let units = layout(&chosen);
    let (_, unit_lead) = run(&units, place);
    let mut spans: Vec<usize> = (1..=sectors.len()).collect();
    let mut lead = vec![writes.len(); sectors.len()];
    for (&(first, end, _), &k) in units.iter().zip(unit_lead.iter()) {
        spans[first] = end;
        lead[first] = k;
    }
    Some(RawPlan {
        spans,
        lead,
        time: Duration::from_nanos(time as u64),
    })
}
