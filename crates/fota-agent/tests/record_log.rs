//! The record log: wraps around its sectors, survives torn entries and half-done erases,
//! and is always rebuilt from flash alone.

mod common;

use common::*;
use fota_agent::record::{ENTRY_LEN, LogEntry, MAGIC, RecordState};
use fota_agent::{Agent, AgentConfig};
use fota_protocol::ErrorCode;

/// Small sectors so that the log wraps often: 1 KiB, 4-byte writes (20-byte entries, 51
/// per sector).
type Small = RamFlash<4, 1024>;

fn small_config() -> AgentConfig {
    unchecked(AgentConfig::vm_and_bytecode(BASE, 4 * 1024, 4 * 1024, 1024))
}

fn expected_record<F: embedded_storage::nor_flash::NorFlash>(a: &Agent<F>) -> [u32; 4] {
    let r = a.get_record().unwrap();
    [r.vm_current, r.vm_last, r.bc_current, r.bc_last]
}

/// Make `n` record updates, checking after each that a fresh boot from a copy of the
/// flash reads exactly what the agent holds.
fn churn<F>(mut a: Agent<F>, config: &AgentConfig, n: u32) -> Agent<F>
where
    F: embedded_storage::nor_flash::NorFlash + Clone + core::fmt::Debug,
{
    for i in 0..n {
        let (bc, vm) = match i % 4 {
            0 => (1, 0),
            1 => (0, 1),
            2 => (1, 1),
            _ => (0, 0),
        };
        a.attempt(bc, vm).unwrap();
        let want = expected_record(&a);
        let state = a.record_state();
        // Pending boots into Trial: compare before the decision, through a clone.
        let (b, _) = boot(a.flash().clone(), config);
        let r = b.get_record().unwrap();
        match state {
            RecordState::Pending => assert_eq!(
                [r.vm_current, r.vm_last, r.bc_current, r.bc_last],
                want,
                "update {i}"
            ),
            _ => assert_eq!(expected_record(&b), want, "update {i}"),
        }
        assert_eq!(
            b.record_entry().seq,
            a.record_entry().seq + u32::from(state == RecordState::Pending)
        );
    }
    a
}

#[test]
fn the_log_wraps_around_both_sectors_many_times() {
    let config = small_config();
    let (a, _) = boot(Small::new(CAPACITY), &config);
    let a = churn(a, &config, 600);
    // 600 updates of 51 per sector: about 12 sector erases, all in the record area.
    let erases = a.flash().erases;
    assert!((10..=13).contains(&erases), "{erases} erases");
    assert_eq!(a.record_entry().seq, 601);
}

#[test]
fn the_log_wraps_with_wide_write_units() {
    // 16-byte writes: entries take 32 bytes, 32 per 1 KiB sector.
    type Wide = RamFlash<16, 1024>;
    let config = small_config();
    let (a, _) = boot(Wide::new(CAPACITY), &config);
    let a = churn(a, &config, 300);
    assert!(a.flash().erases >= 9);
    // Every entry starts on a 32-byte boundary.
    let rec = config.record_addr;
    for slot in 0..64u32 {
        let bytes = a.flash().at(rec + slot * 32, ENTRY_LEN);
        if let Some(e) = LogEntry::decode(bytes) {
            assert!(e.seq > 0);
        }
        // The padding of a slot is never programmed.
        assert!(
            a.flash()
                .at(rec + slot * 32 + 20, 12)
                .iter()
                .all(|&b| b == 0xFF)
        );
    }
}

#[test]
fn the_log_uses_every_sector_of_a_larger_record_area() {
    let mut config = small_config();
    config.record_size = 4 * 1024;
    let (a, _) = boot(Small::new(CAPACITY), &config);
    let a = churn(a, &config, 250);
    // All four sectors hold entries.
    for s in 0..4 {
        let at = config.record_addr + s * 1024;
        assert!(
            LogEntry::decode(a.flash().at(at, ENTRY_LEN)).is_some(),
            "sector {s}"
        );
    }
}

#[test]
fn a_torn_entry_is_skipped_and_never_programmed_over() {
    let config = small_config();
    let (mut a, _) = boot(Small::new(CAPACITY), &config); // factory at slot 0
    a.attempt(1, 0).unwrap(); // slot 1
    let rec = config.record_addr;
    // A power cut programmed only the first 8 bytes of the entry at slot 2.
    let torn = LogEntry {
        seq: 3,
        ..LogEntry::with_slots(0, 0, 0, 0)
    }
    .encode();
    a.flash_mut().poke(rec + 40, &torn[..8]);
    let (mut a, boot1) = restart(a, &config);
    assert!(
        boot1.trial,
        "the torn entry did not count: the attempt is still pending"
    );
    assert_eq!(a.flash().at(rec + 40, 8), &torn[..8], "torn slot untouched");
    // The Trial entry went to slot 3.
    let e = LogEntry::decode(a.flash().at(rec + 60, ENTRY_LEN)).expect("entry at slot 3");
    assert_eq!(e.state, RecordState::Trial);
    a.accept().unwrap();
    let (_, b) = restart(a, &config);
    assert_eq!(b.bc_slot, 1);
}

#[test]
fn the_scan_does_not_stop_at_a_bad_slot() {
    let config = small_config();
    let (mut a, _) = boot(Small::new(CAPACITY), &config);
    a.attempt(1, 1).unwrap(); // slot 1
    let rec = config.record_addr;
    // Damage slot 0 (the factory entry): the newer entry behind it still counts.
    a.flash_mut().poke(rec + 4, &[0x00]);
    let (b, boot) = boot(a.flash().clone(), &config);
    assert!(boot.trial);
    assert_eq!(b.get_record().unwrap().bc_current, 1);
}

#[test]
fn a_sector_full_of_torn_slots_moves_the_log_on() {
    let config = small_config();
    let (mut a, _) = boot(Small::new(CAPACITY), &config);
    let rec = config.record_addr;
    // Every slot after the factory entry in sector 0 is garbage.
    a.flash_mut().poke(rec + 20, &[0x12; 1004]);
    a.attempt(1, 0).unwrap();
    let e = LogEntry::decode(a.flash().at(rec + 1024, ENTRY_LEN)).expect("entry in sector 1");
    assert_eq!(e.seq, 2);
    let (_, b) = restart(a, &config);
    assert!(b.trial);
}

#[test]
fn a_failed_erase_of_the_next_sector_keeps_the_record() {
    let config = small_config();
    let (mut a, _) = boot(Small::new(CAPACITY), &config);
    // Fill sector 0: factory + 50 updates.
    for i in 0..50 {
        a.attempt(i % 2, 0).unwrap();
    }
    let before = a.get_record();
    let snapshot = a.flash().clone();
    a.flash_mut().fail_after = Some(0); // the erase of sector 1 fails
    let e = a.attempt(1, 1).unwrap_err();
    assert_eq!(e.code, ErrorCode::FlashFailure);
    assert_eq!(a.get_record(), before);
    // Half an erase: sector 1 partly 0xFF, partly old bytes.
    let mut half = snapshot.clone();
    half.poke(config.record_addr + 1024, &[0xA5; 512]);
    for flash in [snapshot, half] {
        let (mut b, _) = boot(flash, &config);
        assert_eq!(
            b.get_record().unwrap().to_array()[2..6],
            before.unwrap().to_array()[2..6]
        );
        b.attempt(1, 1).unwrap();
        let (c, boot) = restart(b, &config);
        assert!(boot.trial);
        assert_eq!(c.record_entry().seq, 53);
    }
}

#[test]
fn garbage_everywhere_gives_the_factory_record() {
    let config = small_config();
    let mut flash = Small::new(CAPACITY);
    flash.poke(config.record_addr, &[0x3C; 2048]);
    let (mut a, boot) = boot(flash, &config);
    assert!(boot.factory && !boot.record_write_failed);
    assert_eq!(a.get_record().unwrap().to_array()[..6], [1, 0, 0, 0, 0, 0]);
    a.attempt(1, 1).unwrap();
    let (_, b) = restart(a, &config);
    assert!(b.trial);
}

#[test]
fn the_highest_valid_sequence_wins() {
    let config = small_config();
    let rec = config.record_addr;
    let mut flash = Small::new(CAPACITY);
    let old = LogEntry {
        seq: 7,
        ..LogEntry::with_slots(1, 1, 1, 1)
    };
    let new = LogEntry {
        seq: 9,
        ..LogEntry::with_slots(0, 0, 1, 1)
    };
    let mut bad = LogEntry {
        seq: 10,
        ..LogEntry::with_slots(1, 1, 0, 0)
    }
    .encode();
    bad[16] ^= 0xFF; // CRC broken
    flash.poke(rec + 1024, &new.encode()); // newer one in the second sector
    flash.poke(rec, &old.encode());
    flash.poke(rec + 20, &bad);
    let (mut a, boot) = boot(flash, &config);
    assert_eq!((boot.vm_slot, boot.bc_slot), (0, 1));
    a.attempt(0, 1).unwrap();
    assert_eq!(
        a.record_entry().seq,
        10,
        "next seq after the newest good entry"
    );
    assert!(
        LogEntry::decode(a.flash().at(rec + 1024 + 20, ENTRY_LEN)).is_some(),
        "appended after the newest entry"
    );
}

#[test]
fn entries_naming_slots_the_layout_lacks_are_ignored() {
    // A record from a firmware with a different layout.
    let config = small_config();
    let rec = config.record_addr;
    let mut flash = Small::new(CAPACITY);
    flash.poke(
        rec,
        &LogEntry {
            seq: 4,
            ..LogEntry::with_slots(1, 1, 1, 1)
        }
        .encode(),
    );
    flash.poke(
        rec + 20,
        &LogEntry {
            seq: 5,
            ..LogEntry::with_slots(3, 3, 0, 0)
        }
        .encode(),
    );
    let (mut a, boot) = boot(flash, &config);
    assert_eq!((boot.vm_slot, boot.bc_slot), (1, 1));
    a.attempt(0, 1).unwrap();
    // seq continues above every good entry, so the foreign one can never win again.
    assert_eq!(a.record_entry().seq, 6);
}

#[test]
fn entry_encoding_is_as_documented() {
    let e = LogEntry {
        seq: 0x0102_0304,
        state: RecordState::Trial,
        vm_current: 1,
        vm_last: 0,
        bc_current: 1,
        bc_last: 0,
        vm_minimum: 0,
        bc_minimum: 0,
    };
    let b = e.encode();
    assert_eq!(b[0..4], MAGIC.to_le_bytes());
    assert_eq!(&b[0..4], b"FOTA");
    assert_eq!(b[4..8], [4, 3, 2, 1]);
    assert_eq!(b[8..13], [b'T', 1, 0, 1, 0]);
    assert_eq!(b[13..16], [0xFF; 3]);
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(&b[..16]);
    assert_eq!(b[16..20], crc.to_le_bytes());
    assert_eq!(LogEntry::decode(&b), Some(e));
    assert_eq!(LogEntry::decode(&b[..19]), None);
}

/// Once a minimum version is set the entry takes format 2 (docs/PROTOCOL.md), whose
/// bytes are these; format 1 stays readable (above).
#[test]
fn entry_with_minimum_versions_encodes_as_documented() {
    let e = LogEntry {
        seq: 0x0102_0304,
        state: RecordState::Trial,
        vm_current: 1,
        vm_last: 0,
        bc_current: 3,
        bc_last: 2,
        vm_minimum: fota_protocol::pack_version(1, 2, 3),
        bc_minimum: fota_protocol::pack_version(0, 9, 70_000),
    };
    let b = e.encode();
    assert_eq!(b[0], b'V');
    assert_eq!(b[1], b'T');
    assert_eq!(b[2..6], [4, 3, 2, 1]);
    assert_eq!(b[6..8], [0x01, 0x23]);
    assert_eq!(b[8..12], [3, 0, 2, 1]);
    // A patch above 16 bits is stored as 65535: never above the real version.
    assert_eq!(b[12..16], [0xFF, 0xFF, 9, 0]);
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(&b[..16]);
    assert_eq!(b[16..20], crc.to_le_bytes());
    assert_eq!(LogEntry::decode(&b), Some(e));
    for bit in 0..ENTRY_LEN * 8 {
        let mut x = b;
        x[bit / 8] ^= 1 << (bit % 8);
        assert_eq!(LogEntry::decode(&x), None, "bit {bit}");
    }
}

#[test]
fn inconsistent_entries_do_not_decode() {
    // Confirmed with current != last, and Pending with current == last.
    let confirmed_trial = LogEntry {
        seq: 1,
        state: RecordState::Confirmed,
        vm_current: 1,
        vm_last: 0,
        bc_current: 0,
        bc_last: 0,
        vm_minimum: 0,
        bc_minimum: 0,
    };
    assert_eq!(LogEntry::decode(&confirmed_trial.encode()), None);
    let pending_same = LogEntry {
        state: RecordState::Pending,
        vm_current: 0,
        ..confirmed_trial
    };
    assert_eq!(LogEntry::decode(&pending_same.encode()), None);
    let mut unknown_state = LogEntry::factory().encode();
    unknown_state[8] = b'X';
    assert_eq!(LogEntry::decode(&unknown_state), None);
}

#[test]
fn every_single_bit_flip_of_an_entry_is_caught() {
    let e = LogEntry {
        seq: 77,
        ..LogEntry::with_slots(1, 0, 1, 0)
    }
    .encode();
    for bit in 0..ENTRY_LEN * 8 {
        let mut b = e;
        b[bit / 8] ^= 1 << (bit % 8);
        assert_eq!(LogEntry::decode(&b), None, "bit {bit}");
    }
}

/// Two valid entries with the same sequence number (an append that failed and was
/// retried in the next position): the later position in the ring wins, in the same
/// sector and across sectors.
#[test]
fn equal_sequence_numbers_the_later_position_wins() {
    let config = small_config();
    let rec = config.record_addr;
    let first = LogEntry {
        seq: 5,
        ..LogEntry::with_slots(0, 0, 0, 0)
    };
    let retried = LogEntry {
        seq: 5,
        ..LogEntry::with_slots(0, 0, 1, 1)
    };
    // Same sector: slot 3 after slot 2.
    let mut flash = Small::new(CAPACITY);
    flash.poke(rec + 2 * 20, &first.encode());
    flash.poke(rec + 3 * 20, &retried.encode());
    let (a, b) = boot(flash, &config);
    assert_eq!(b.bc_slot, 1, "same sector: the later slot wins");
    assert_eq!(a.record_entry(), retried);

    // Across sectors: the first copy filled the last slot of sector 1, the retry went to
    // slot 0 of sector 0 (the ring wrapped), after older entries in sector 1.
    let mut flash = Small::new(CAPACITY);
    let per_sector = 1024 / 20;
    flash.poke(
        rec + 1024,
        &LogEntry {
            seq: 4,
            ..LogEntry::with_slots(1, 1, 0, 0)
        }
        .encode(),
    );
    flash.poke(rec + 1024 + (per_sector - 1) * 20, &first.encode());
    flash.poke(rec, &retried.encode());
    let (mut a, b) = boot(flash, &config);
    assert_eq!(b.bc_slot, 1, "across the wrap: the retry in sector 0 wins");
    // The next entry goes after the winner.
    a.attempt(0, 1).unwrap();
    assert_eq!(a.record_entry().seq, 6);
    assert!(LogEntry::decode(a.flash().at(rec + 20, ENTRY_LEN)).is_some());

    // And the other way round: the retry in sector 1 after the first copy filled sector 0.
    let mut flash = Small::new(CAPACITY);
    flash.poke(
        rec,
        &LogEntry {
            seq: 4,
            ..LogEntry::with_slots(1, 1, 0, 0)
        }
        .encode(),
    );
    flash.poke(rec + (per_sector - 1) * 20, &first.encode());
    flash.poke(rec + 1024, &retried.encode());
    let (a, b) = boot(flash, &config);
    assert_eq!(b.bc_slot, 1, "the retry in sector 1 wins");
    assert_eq!(a.record_entry(), retried);
}
