//! Random inputs: no panic, and a refusal never changes flash or record. A random walk of
//! record operations and restarts against a small reference model.

mod common;

use common::*;
use fota_agent::{AgentLink, MAX_WRITE, RecordState};
use fota_protocol::{ErrorCode, MAX_PAYLOAD, RecordUpdate, Request, encode_request, frame_len};

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Addresses and sizes that hit the edges: slot starts and ends, record, extremes.
    fn value(&mut self, config: &fota_agent::AgentConfig) -> u32 {
        let mut edges = vec![
            0,
            1,
            4,
            SECTOR,
            SLOT,
            u32::MAX,
            u32::MAX - 3,
            config.record_addr,
        ];
        for s in &config.slots {
            edges.extend([s.addr, s.addr + s.size, s.addr + s.size - 4, s.size]);
        }
        let base = edges[self.below(edges.len() as u64) as usize];
        match self.below(4) {
            0 => base,
            1 => base.wrapping_add(self.below(9) as u32 * 4),
            2 => base.wrapping_sub(self.below(9) as u32 * 4),
            _ => self.next() as u32,
        }
    }
}

#[test]
fn random_requests_never_panic_and_refusals_change_nothing() {
    for (name, config) in layouts() {
        let (mut a, _) = boot(blank(), &config);
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let data = image(1, MAX_WRITE + 8);
        for i in 0..4000 {
            let before = a.flash().data.clone();
            let record = a.get_record();
            let v1 = rng.value(&config);
            let v2 = rng.value(&config);
            let result = match rng.below(8) {
                0 => a.erase_slot(v1, v2 % (3 * SECTOR), &mut noop).map(|_| ()),
                1 | 2 => {
                    let len = rng.below(data.len() as u64 + 1) as usize;
                    a.write_slot(v1, &data[..len])
                }
                3 => a.checksum_slot(v1, v2 % (2 * SLOT), &mut noop).map(|_| ()),
                4 => a.attempt(v1 % 3, v2 % 3),
                5 => a.set_record(RecordUpdate {
                    vm_current: v1 % 3,
                    vm_last: v2 % 3,
                    bc_current: (v1 >> 8) % 3,
                    bc_last: (v2 >> 8) % 3,
                }),
                6 => a.accept().map(|_| ()),
                _ => a.find_bytecode_slot().map(|_| ()),
            };
            if let Err(e) = result {
                assert_ne!(e.code, ErrorCode::FlashFailure, "{name} #{i}");
                assert!(a.flash().data == before, "{name} #{i}: {e:?} changed flash");
                assert_eq!(a.get_record(), record, "{name} #{i}");
            }
            if rng.below(50) == 0 {
                a = restart(a, &config).0;
            }
        }
    }
}

#[test]
fn random_bytes_and_frames_into_the_link_never_panic() {
    let config = vm_and_bc();
    let (mut link, _) = AgentLink::boot(blank(), config.clone()).unwrap();
    let mut rng = Rng(42);
    let mut buf = vec![0u8; frame_len(MAX_PAYLOAD)];
    let mut sent = 0usize;
    for _ in 0..3000 {
        let mut bytes = Vec::new();
        match rng.below(3) {
            0 => bytes.extend((0..rng.below(64)).map(|_| rng.next() as u8)),
            1 => {
                // A well-framed request with random fields.
                let (a, b) = (rng.value(&config), rng.value(&config));
                let data = image(rng.next() as u8, rng.below(40) as usize * 4);
                let r = match rng.below(6) {
                    0 => Request::EraseSlot {
                        addr: a,
                        size: b % (2 * SECTOR),
                    },
                    1 => Request::WriteSlot {
                        addr: a,
                        data: &data,
                    },
                    2 => Request::ChecksumSlot {
                        addr: a,
                        size: b % SLOT,
                    },
                    3 => Request::Attempt {
                        bc_slot: a % 3,
                        vm_slot: b % 3,
                        check: None,
                    },
                    4 => Request::SetBaud { baud: b },
                    _ => Request::Hello {
                        version: (a % 3) as u16,
                    },
                };
                let n = encode_request(rng.next() as u16, &r, &mut buf).unwrap();
                bytes.extend_from_slice(&buf[..n]);
            }
            _ => {
                // A request with one byte damaged.
                let n = encode_request(7, &Request::GetRecord, &mut buf).unwrap();
                bytes.extend_from_slice(&buf[..n]);
                let k = rng.below(n as u64) as usize;
                bytes[k] ^= 1 << rng.below(8);
            }
        }
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let r = link.receive(rest, &mut |f| sent += f.len());
            rest = &rest[r.consumed..];
        }
    }
    assert!(sent > 0);
    assert!(link.stats().requests > 500);
}

/// The reference model of the record and the boot decision.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Model {
    cur: (u32, u32),
    last: (u32, u32),
    state: RecordState,
    running: (u32, u32),
}

impl Model {
    fn set(&mut self, cur: (u32, u32), last: (u32, u32)) {
        // The same slots again change nothing: a trial stays a trial.
        if (cur, last) == (self.cur, self.last) {
            return;
        }
        self.cur = cur;
        self.last = last;
        self.state = if cur != last {
            RecordState::Pending
        } else {
            RecordState::Confirmed
        };
    }
    fn restart(&mut self) {
        match self.state {
            RecordState::Confirmed => {}
            RecordState::Pending => self.state = RecordState::Trial,
            RecordState::Trial => self.set(self.last, self.last),
        }
        self.running = self.cur;
    }
}

#[test]
fn random_walk_matches_the_reference_model() {
    type Small = RamFlash<8, 1024>;
    let config = common::unchecked(fota_agent::AgentConfig::vm_and_bytecode(
        BASE, 2048, 2048, 1024,
    ));
    let (mut a, _) = boot(Small::new(CAPACITY), &config);
    let mut m = Model {
        cur: (0, 0),
        last: (0, 0),
        state: RecordState::Confirmed,
        running: (0, 0),
    };
    let mut rng = Rng(7);
    for step in 0..3000 {
        let (x, y) = (rng.below(2) as u32, rng.below(2) as u32);
        match rng.below(5) {
            0 | 1 => {
                a.attempt(y, x).unwrap();
                m.set((x, y), m.last);
            }
            2 => {
                a.accept().unwrap();
                if m.state == RecordState::Trial && m.running == m.cur {
                    m.set(m.cur, m.cur);
                }
            }
            3 => {
                let (p, q) = (rng.below(2) as u32, rng.below(2) as u32);
                a.set_record(RecordUpdate {
                    vm_current: x,
                    vm_last: p,
                    bc_current: y,
                    bc_last: q,
                })
                .unwrap();
                m.set((x, y), (p, q));
            }
            _ => {
                let (b, boot) = restart(a, &config);
                a = b;
                m.restart();
                assert_eq!(
                    (u32::from(boot.vm_slot), u32::from(boot.bc_slot)),
                    m.running,
                    "#{step}"
                );
            }
        }
        let r = a.get_record().unwrap();
        assert_eq!(
            ((r.vm_current, r.bc_current), (r.vm_last, r.bc_last)),
            (m.cur, m.last),
            "#{step}"
        );
        assert_eq!(a.record_state(), m.state, "#{step}");
        assert_eq!(r.state, m.state, "#{step}: the Record reply's state");
        assert_eq!(r.vm_index, m.running.0, "#{step}");
        assert_eq!((r.running_vm, r.running_bc), m.running, "#{step}");
    }
}
