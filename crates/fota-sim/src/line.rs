//! A serial line in simulated time: UART framing, adapter latency, receive FIFO overruns
//! and seeded byte faults.
//!
//! A [`Line`] is one direction of a UART: bytes go out one after another at `baud / 10`
//! bytes a second (8N1: start bit, 8 data bits, stop bit) and each arrives a fixed latency
//! after its stop bit (USB-serial adapters add 1-16 ms). Full duplex is two lines, for
//! instance a [`DuplexLine`]. Nothing here reads a clock: every call takes the simulated
//! time `now_ns`, so it runs the same in `cargo test` and in a browser.
//!
//! An [`RxFifo`] is the receiver's hardware buffer: a byte that arrives while it is full
//! is lost and counted, as on a real UART, which is what happens to a device that does
//! not drain it fast enough.
//!
//! [`Faults`] corrupt, drop or duplicate bytes as they are sent, from a seed, so a failing
//! link test can be replayed exactly.

use std::collections::VecDeque;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

/// Bits on the wire per byte with 8N1 framing.
pub const BITS_PER_BYTE: u64 = 10;

const NS_PER_S: u128 = 1_000_000_000;

/// Byte faults a [`Line`] injects as bytes are sent. Rates are per million bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// Seed of the fault generator: the same seed and traffic give the same faults.
    pub seed: u64,
    /// Bytes that arrive with some bits flipped (noise on the wire).
    pub corrupt_per_million: u32,
    /// Bytes that take their time on the wire but never arrive (a framing error the
    /// receiver discards).
    pub drop_per_million: u32,
    /// Bytes that arrive twice (a glitch read as a second byte); the copy takes another
    /// byte time.
    pub duplicate_per_million: u32,
}

impl Faults {
    /// A clean line.
    pub const NONE: Faults = Faults {
        seed: 0,
        corrupt_per_million: 0,
        drop_per_million: 0,
        duplicate_per_million: 0,
    };

    /// Whether any fault can happen.
    pub fn is_none(&self) -> bool {
        self.corrupt_per_million == 0
            && self.drop_per_million == 0
            && self.duplicate_per_million == 0
    }
}

/// How many faults a [`Line`] has injected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Bytes delivered with flipped bits.
    pub corrupted: u64,
    /// Bytes never delivered.
    pub dropped: u64,
    /// Bytes delivered twice.
    pub duplicated: u64,
}

/// One direction of a UART line.
#[derive(Debug, Clone)]
pub struct Line {
    baud: u32,
    latency_ns: u64,
    /// Start of the current run of back-to-back bytes at the current baud; timing is
    /// computed from it so rounding never accumulates (11,520 bytes at 115200 baud take
    /// exactly 1 s, not 11,520 rounded byte times).
    burst_start_ns: u64,
    burst_bits: u64,
    /// Bytes on their way, in arrival order, with their arrival time.
    in_flight: VecDeque<(u64, u8)>,
    last_arrival_ns: u64,
    faults: Faults,
    rng: ChaCha8Rng,
    counts: FaultCounts,
    bytes_sent: u64,
}

impl Line {
    /// An idle, clean line. A baud of 0 is taken as 1 (a line cannot stop time).
    pub fn new(baud: u32, latency_ns: u64) -> Line {
        Line {
            baud: baud.max(1),
            latency_ns,
            burst_start_ns: 0,
            burst_bits: 0,
            in_flight: VecDeque::new(),
            last_arrival_ns: 0,
            faults: Faults::NONE,
            rng: ChaCha8Rng::seed_from_u64(0),
            counts: FaultCounts::default(),
            bytes_sent: 0,
        }
    }

    /// Adds fault injection (builder style).
    pub fn with_faults(mut self, faults: Faults) -> Line {
        self.set_faults(faults);
        self
    }

    /// Replaces the fault model and restarts its generator from `faults.seed`; the counts
    /// are kept.
    pub fn set_faults(&mut self, faults: Faults) {
        self.faults = faults;
        self.rng = ChaCha8Rng::seed_from_u64(faults.seed);
    }

    /// The fault model.
    pub fn faults(&self) -> Faults {
        self.faults
    }

    /// Faults injected so far.
    pub fn fault_counts(&self) -> FaultCounts {
        self.counts
    }

    /// The baud rate.
    pub fn baud(&self) -> u32 {
        self.baud
    }

    /// The one-way latency added after each byte's stop bit.
    pub fn latency_ns(&self) -> u64 {
        self.latency_ns
    }

    /// Changes the latency for bytes sent from now on (bytes never overtake each other).
    pub fn set_latency_ns(&mut self, latency_ns: u64) {
        self.latency_ns = latency_ns;
    }

    /// Changes the baud rate for bytes sent after this call; bytes already queued keep
    /// their timing. A baud of 0 is taken as 1.
    pub fn set_baud(&mut self, baud: u32) {
        // Start a new burst where the queued bytes end, so they keep the old rate.
        self.burst_start_ns = self.idle_at();
        self.burst_bits = 0;
        self.baud = baud.max(1);
    }

    /// One byte's time on the wire, rounded to the nanosecond (for display; [`send`]
    /// times runs of bytes exactly).
    ///
    /// [`send`]: Line::send
    pub fn byte_time_ns(&self) -> u64 {
        Self::wire_ns(BITS_PER_BYTE, self.baud)
    }

    /// Payload bytes per second this line can carry at best.
    pub fn bytes_per_second(&self) -> u64 {
        u64::from(self.baud) / BITS_PER_BYTE
    }

    fn wire_ns(bits: u64, baud: u32) -> u64 {
        let ns = (u128::from(bits) * NS_PER_S).div_ceil(u128::from(baud));
        u64::try_from(ns).unwrap_or(u64::MAX)
    }

    /// When the transmitter has sent everything queued (the stop bit of the last byte).
    pub fn idle_at(&self) -> u64 {
        self.burst_start_ns
            .saturating_add(Self::wire_ns(self.burst_bits, self.baud))
    }

    /// Queues `bytes` at `now_ns`: each byte starts when the line is free (or now) and
    /// arrives one byte time plus the latency later. Returns when the transmitter will
    /// be idle again, which is when a sender's TX buffer has drained.
    pub fn send(&mut self, now_ns: u64, bytes: &[u8]) -> u64 {
        for &byte in bytes {
            self.bytes_sent += 1;
            let (copies, value) = self.apply_faults(byte);
            if copies == 0 {
                // A dropped byte still occupies the wire.
                self.transmit(now_ns);
            }
            for _ in 0..copies {
                let arrival = self.transmit(now_ns);
                self.in_flight.push_back((arrival, value));
            }
        }
        self.idle_at()
    }

    /// Puts one byte on the wire; returns its arrival time.
    fn transmit(&mut self, now_ns: u64) -> u64 {
        if now_ns >= self.idle_at() {
            // The line went idle: a new burst starts now.
            self.burst_start_ns = now_ns;
            self.burst_bits = 0;
        }
        self.burst_bits += BITS_PER_BYTE;
        let arrival = self.idle_at().saturating_add(self.latency_ns);
        // A shorter latency set later must not let a byte overtake an earlier one.
        let arrival = arrival.max(self.last_arrival_ns);
        self.last_arrival_ns = arrival;
        arrival
    }

    /// Decides the fate of one byte: how many copies arrive, and with what value.
    fn apply_faults(&mut self, byte: u8) -> (usize, u8) {
        if self.faults.is_none() {
            return (1, byte);
        }
        if self.chance(self.faults.drop_per_million) {
            self.counts.dropped += 1;
            return (0, byte);
        }
        let mut value = byte;
        if self.chance(self.faults.corrupt_per_million) {
            // A non-zero mask, so a corrupted byte always differs.
            let mask = (self.rng.next_u32() % 255) as u8 + 1;
            value ^= mask;
            self.counts.corrupted += 1;
        }
        if self.chance(self.faults.duplicate_per_million) {
            self.counts.duplicated += 1;
            return (2, value);
        }
        (1, value)
    }

    fn chance(&mut self, per_million: u32) -> bool {
        // Always draw, so one rate does not shift the sequence seen by the others.
        let draw = self.rng.next_u32() % 1_000_000;
        draw < per_million
    }

    /// Removes and returns the bytes that have arrived by `now_ns`.
    pub fn deliver(&mut self, now_ns: u64) -> Vec<u8> {
        let ready = self
            .in_flight
            .iter()
            .take_while(|&&(at, _)| at <= now_ns)
            .count();
        self.in_flight.drain(..ready).map(|(_, b)| b).collect()
    }

    /// Arrival time of the next byte still on its way.
    pub fn next_arrival(&self) -> Option<u64> {
        self.in_flight.front().map(|&(at, _)| at)
    }

    /// Bytes sent and not yet delivered.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Bytes given to [`send`](Line::send) so far (before faults).
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent
    }

    /// Loses every byte on its way (a cable pulled, an adapter reset). Timing is kept.
    pub fn clear(&mut self) {
        self.in_flight.clear();
    }
}

/// A full-duplex serial link: two [`Line`]s of the same baud and latency.
#[derive(Debug, Clone)]
pub struct DuplexLine {
    /// Bytes from the host (browser or CLI) to the device.
    pub to_device: Line,
    /// Bytes from the device to the host.
    pub to_host: Line,
}

impl DuplexLine {
    /// A clean link.
    pub fn new(baud: u32, latency_ns: u64) -> DuplexLine {
        DuplexLine {
            to_device: Line::new(baud, latency_ns),
            to_host: Line::new(baud, latency_ns),
        }
    }

    /// Changes the baud rate of both directions (as both ends reprogram their UARTs).
    pub fn set_baud(&mut self, baud: u32) {
        self.to_device.set_baud(baud);
        self.to_host.set_baud(baud);
    }

    /// The earliest arrival in either direction.
    pub fn next_arrival(&self) -> Option<u64> {
        match (self.to_device.next_arrival(), self.to_host.next_arrival()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// A UART receive FIFO of fixed capacity. Bytes that arrive while it is full are lost
/// and counted as overruns; the bytes already in it are kept.
#[derive(Debug, Clone)]
pub struct RxFifo {
    capacity: usize,
    buf: VecDeque<u8>,
    overruns: u64,
    received: u64,
}

impl RxFifo {
    /// An empty FIFO holding up to `capacity` bytes.
    pub fn new(capacity: usize) -> RxFifo {
        RxFifo {
            capacity,
            buf: VecDeque::with_capacity(capacity),
            overruns: 0,
            received: 0,
        }
    }

    /// One byte arrives; returns false (and counts an overrun) if it was lost.
    pub fn push(&mut self, byte: u8) -> bool {
        if self.buf.len() >= self.capacity {
            self.overruns += 1;
            return false;
        }
        self.buf.push_back(byte);
        self.received += 1;
        true
    }

    /// Bytes arrive in order; returns how many were kept.
    pub fn push_all(&mut self, bytes: &[u8]) -> usize {
        bytes.iter().filter(|&&b| self.push(b)).count()
    }

    /// Takes the oldest byte.
    pub fn pop(&mut self) -> Option<u8> {
        self.buf.pop_front()
    }

    /// Takes up to `out.len()` bytes into `out`; returns how many.
    pub fn read(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.buf.len());
        for (slot, byte) in out.iter_mut().zip(self.buf.drain(..n)) {
            *slot = byte;
        }
        n
    }

    /// Takes every byte held.
    pub fn drain_all(&mut self) -> Vec<u8> {
        self.buf.drain(..).collect()
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether no byte is held.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Room left before bytes are lost.
    pub fn free(&self) -> usize {
        self.capacity - self.buf.len()
    }

    /// The capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes lost because the FIFO was full.
    pub fn overruns(&self) -> u64 {
        self.overruns
    }

    /// Bytes kept since creation.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Empties the FIFO (a UART reset); the counters are kept.
    pub fn clear(&mut self) {
        self.buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const S: u64 = 1_000_000_000;

    #[test]
    fn one_second_of_bytes_at_115200() {
        let mut line = Line::new(115_200, MS);
        let data = vec![0x55; 11_520];
        let idle = line.send(0, &data);
        assert_eq!(idle, S);
        assert_eq!(line.in_flight(), 11_520);
        assert!(line.deliver(S + MS - 1).len() < 11_520);
        // Nothing lost, nothing early: the last byte lands at exactly 1 s + latency.
        let mut line = Line::new(115_200, MS);
        line.send(0, &data);
        let all: Vec<u8> = line.deliver(S + MS);
        assert_eq!(all.len(), 11_520);
        assert_eq!(line.next_arrival(), None);
    }

    #[test]
    fn first_byte_arrives_after_one_byte_time_plus_latency() {
        let mut line = Line::new(115_200, 16 * MS);
        line.send(5 * MS, &[1, 2]);
        let byte_ns = (10 * S).div_ceil(115_200);
        assert_eq!(line.next_arrival(), Some(5 * MS + byte_ns + 16 * MS));
        assert_eq!(line.deliver(5 * MS + byte_ns + 16 * MS), vec![1]);
        assert_eq!(line.deliver(u64::MAX), vec![2]);
    }

    #[test]
    fn sends_while_busy_queue_behind() {
        let mut line = Line::new(9_600, 0);
        // 960 bytes a second: 96 bytes take 100 ms.
        assert_eq!(line.send(0, &[0; 96]), 100 * MS);
        // Sent at 50 ms while the line is still busy: starts at 100 ms.
        assert_eq!(line.send(50 * MS, &[0; 96]), 200 * MS);
        // Sent after an idle gap: starts when sent.
        assert_eq!(line.send(300 * MS, &[0; 96]), 400 * MS);
    }

    #[test]
    fn set_baud_applies_to_later_bytes() {
        let mut line = Line::new(9_600, 0);
        line.send(0, &[0; 96]); // 100 ms at 9600
        line.set_baud(96_000);
        assert_eq!(line.send(0, &[0; 96]), 110 * MS); // 10 ms at 96000 after the queue
        assert_eq!(line.baud(), 96_000);
        assert_eq!(line.bytes_per_second(), 9_600);
    }

    #[test]
    fn latency_change_never_reorders() {
        let mut line = Line::new(1_000_000, 16 * MS);
        line.send(0, &[1]);
        line.set_latency_ns(MS);
        line.send(0, &[2]);
        assert_eq!(line.deliver(u64::MAX), vec![1, 2]);
    }

    #[test]
    fn deliver_returns_only_arrived_bytes() {
        let mut line = Line::new(1_000_000, 0); // 10 us a byte
        line.send(0, &[1, 2, 3]);
        assert_eq!(line.deliver(9_999), Vec::<u8>::new());
        assert_eq!(line.deliver(20_000), vec![1, 2]);
        assert_eq!(line.next_arrival(), Some(30_000));
        line.clear();
        assert_eq!(line.next_arrival(), None);
    }

    #[test]
    fn serial_link_is_two_independent_lines() {
        let mut link = DuplexLine::new(115_200, MS);
        link.to_device.send(0, b"req");
        link.to_host.send(0, b"reply!");
        assert_eq!(link.next_arrival(), link.to_device.next_arrival());
        link.set_baud(921_600);
        assert_eq!(link.to_device.baud(), 921_600);
        assert_eq!(link.to_host.baud(), 921_600);
        assert_eq!(link.to_device.deliver(S), b"req");
        assert_eq!(link.to_host.deliver(S), b"reply!");
    }

    #[test]
    fn fifo_overrun_loses_new_bytes_and_counts() {
        let mut fifo = RxFifo::new(4);
        assert_eq!(fifo.push_all(&[1, 2, 3, 4, 5, 6]), 4);
        assert_eq!(fifo.overruns(), 2);
        assert_eq!(fifo.free(), 0);
        assert_eq!(fifo.pop(), Some(1));
        assert!(fifo.push(7));
        let mut out = [0u8; 8];
        assert_eq!(fifo.read(&mut out), 4);
        assert_eq!(&out[..4], &[2, 3, 4, 7]);
        assert!(fifo.is_empty());
        assert_eq!(fifo.received(), 5);
    }

    #[test]
    fn slow_reader_overruns_a_fast_line() {
        // A 16-byte FIFO drained 8 bytes every ms on a 921600 baud line (92 bytes a ms).
        let mut line = Line::new(921_600, 0);
        let mut fifo = RxFifo::new(16);
        line.send(0, &[0xAA; 1000]);
        let mut got = 0;
        let mut now = 0;
        while line.next_arrival().is_some() {
            now += MS;
            fifo.push_all(&line.deliver(now));
            let mut buf = [0u8; 8];
            got += fifo.read(&mut buf);
        }
        got += fifo.drain_all().len();
        assert_eq!(got as u64 + fifo.overruns(), 1000);
        assert!(fifo.overruns() > 800);
    }

    fn faulty(seed: u64) -> Line {
        Line::new(115_200, 0).with_faults(Faults {
            seed,
            corrupt_per_million: 20_000,
            drop_per_million: 10_000,
            duplicate_per_million: 5_000,
        })
    }

    #[test]
    fn faults_are_reproducible_by_seed() {
        let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let run = |seed| {
            let mut line = faulty(seed);
            line.send(0, &data);
            (line.deliver(u64::MAX), line.fault_counts())
        };
        let (a, ca) = run(1);
        let (b, cb) = run(1);
        assert_eq!(a, b);
        assert_eq!(ca, cb);
        let (c, _) = run(2);
        assert_ne!(a, c);
    }

    #[test]
    fn fault_rates_are_roughly_as_configured() {
        let data = vec![0u8; 100_000];
        let mut line = faulty(42);
        line.send(0, &data);
        let out = line.deliver(u64::MAX);
        let counts = line.fault_counts();
        assert!((1_500..2_500).contains(&counts.corrupted), "{counts:?}");
        assert!((700..1_300).contains(&counts.dropped), "{counts:?}");
        assert!((300..700).contains(&counts.duplicated), "{counts:?}");
        assert_eq!(
            out.len() as u64,
            100_000 - counts.dropped + counts.duplicated
        );
        // Corrupted bytes always differ from what was sent (all zeros here).
        let nonzero = out.iter().filter(|&&b| b != 0).count() as u64;
        assert!(
            nonzero >= counts.corrupted,
            "duplicates can copy a corruption"
        );
        assert_eq!(line.bytes_sent(), 100_000);
    }

    #[test]
    fn dropped_and_duplicated_bytes_take_wire_time() {
        let mut line = Line::new(9_600, 0).with_faults(Faults {
            seed: 3,
            drop_per_million: 1_000_000,
            ..Faults::NONE
        });
        assert_eq!(line.send(0, &[0; 96]), 100 * MS);
        assert_eq!(line.in_flight(), 0);

        let mut line = Line::new(9_600, 0).with_faults(Faults {
            seed: 3,
            duplicate_per_million: 1_000_000,
            ..Faults::NONE
        });
        assert_eq!(line.send(0, &[0; 48]), 100 * MS);
        assert_eq!(line.in_flight(), 96);
    }

    #[test]
    fn clean_line_delivers_exactly() {
        let data: Vec<u8> = (0..5_000u32).map(|i| (i * 31) as u8).collect();
        let mut line = Line::new(921_600, MS).with_faults(Faults {
            seed: 9,
            ..Faults::NONE
        });
        line.send(0, &data);
        assert_eq!(line.deliver(u64::MAX), data);
        assert_eq!(line.fault_counts(), FaultCounts::default());
    }
}
