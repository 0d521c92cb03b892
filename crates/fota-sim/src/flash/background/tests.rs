use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};

use super::*;
use crate::flash::FlashTiming;

type Flash = SimFlash<4, 4096>;

const MS: u64 = 1_000_000;

/// A W25Q128JV of 32 sectors (two 64 KiB blocks).
fn flash() -> Flash {
    Flash::new(32 * 4096).with_timing(FlashTiming::W25Q128JV)
}

#[test]
fn an_erase_runs_only_while_time_passes_and_not_while_suspended() {
    let mut f = flash();
    f.write(0, &[1, 2, 3, 4]).unwrap();
    f.take_busy_ns();
    f.start_erase(0, 4096).unwrap();
    // Started, nothing charged: the part erases on its own.
    assert_eq!(f.take_busy_ns(), 0);
    assert_eq!(f.background_erase(), Some((0, 4096, 45 * MS, false)));
    assert!(f.poll_erase().unwrap());
    f.advance(10 * MS);
    assert_eq!(f.background_erase().unwrap().2, 35 * MS);
    f.suspend_erase().unwrap();
    // tSUS, and no progress while suspended.
    assert_eq!(f.take_busy_ns(), 20_000);
    f.advance(100 * MS);
    assert_eq!(f.background_erase(), Some((0, 4096, 35 * MS, true)));
    assert!(f.poll_erase().unwrap(), "a suspended erase is not done");
    f.resume_erase().unwrap();
    // A resume costs the erase 20 µs.
    assert_eq!(f.background_erase().unwrap().2, 35 * MS + 20_000);
    f.advance(35 * MS + 20_000);
    assert!(!f.poll_erase().unwrap());
    assert_eq!(f.background_erase(), None);
    assert!(f.as_bytes()[..4096].iter().all(|&b| b == 0xFF));
}

#[test]
fn a_suspend_too_soon_after_a_resume_waits_with_the_erase_running() {
    let mut f = flash();
    f.start_erase(0, 4096).unwrap();
    // At once: the erase first runs its 1 ms.
    f.suspend_erase().unwrap();
    assert_eq!(f.take_busy_ns(), 1_000_000 + 20_000);
    f.resume_erase().unwrap();
    f.advance(200_000);
    f.suspend_erase().unwrap();
    // 0.8 ms more of the 1 ms from the resume, then tSUS.
    assert_eq!(f.take_busy_ns(), 800_000 + 20_000);
    let left = 45 * MS - 1_000_000 + 20_000 - 200_000 - 800_000;
    assert_eq!(f.background_erase(), Some((0, 4096, left, true)));
    // An erase that ends within that wait needs no suspend.
    let mut g = flash();
    g.start_erase(0, 4096).unwrap();
    g.advance(45 * MS - 500_000);
    g.suspend_erase().unwrap();
    g.resume_erase().unwrap();
    g.take_busy_ns();
    g.suspend_erase().unwrap();
    assert_eq!(g.take_busy_ns(), 520_000);
    assert!(!g.poll_erase().unwrap());
}

#[test]
fn waiting_charges_what_is_left_and_a_block_takes_the_block_time() {
    let mut f = flash();
    f.start_erase(0, 64 * 1024).unwrap();
    assert_eq!(f.block_erases_done(), 1);
    f.advance(50 * MS);
    f.wait_erase().unwrap();
    assert_eq!(f.take_busy_ns(), 100 * MS);
    assert!(!f.poll_erase().unwrap());
    // A blocking erase keeps its old timing.
    f.erase(64 * 1024, 128 * 1024).unwrap();
    assert_eq!(f.take_busy_ns(), 150 * MS);
}

#[test]
fn the_part_refuses_what_it_refuses_during_an_erase() {
    let mut f = flash();
    f.write(8192, &[7; 8]).unwrap();
    f.start_erase(0, 4096).unwrap();
    let before = f.snapshot();
    // Running, not suspended: nothing else.
    assert_eq!(f.write(8192 + 8, &[1; 4]), Err(FlashError::Busy));
    assert_eq!(f.read(8192, &mut [0; 4]), Err(FlashError::Busy));
    assert_eq!(f.erase(4096, 8192), Err(FlashError::Busy));
    assert_eq!(f.start_erase(4096, 8192), Err(FlashError::Busy));
    f.suspend_erase().unwrap();
    // Suspended: not the range being erased, and no other erase.
    assert_eq!(
        f.write(4092, &[1; 8]),
        Err(FlashError::Erasing { offset: 4092 })
    );
    assert_eq!(
        f.read(100, &mut [0; 4]),
        Err(FlashError::Erasing { offset: 100 })
    );
    assert_eq!(f.erase(4096, 8192), Err(FlashError::Busy));
    assert_eq!(f.snapshot(), before);
    // Elsewhere: programs and reads go.
    f.write(4096, &[1, 2, 3, 4]).unwrap();
    let mut buf = [0; 4];
    f.read(8192, &mut buf).unwrap();
    assert_eq!(buf, [7; 4]);
    f.resume_erase().unwrap();
    f.wait_erase().unwrap();
    // Done: everything goes again.
    f.write(0, &[5; 4]).unwrap();
    f.erase(4096, 8192).unwrap();
    assert_eq!(f.suspends(), 1);
}

#[test]
fn a_cut_while_starting_tears_the_erase_and_a_cut_later_forgets_it() {
    // The erase's bytes are its steps, counted when it starts.
    let mut probe = flash();
    probe.write(0, &[0; 4096]).unwrap();
    probe.reset_steps();
    probe.start_erase(0, 4096).unwrap();
    assert_eq!(probe.step_count(), 4096);
    let mut f = flash();
    f.write(0, &[0; 4096]).unwrap();
    f.reset_steps();
    f.arm_power_cut(100);
    assert_eq!(f.start_erase(0, 4096), Err(FlashError::PowerLoss));
    assert!(f.as_bytes()[..100].iter().all(|&b| b == 0xFF));
    assert!(f.as_bytes()[101..4096].iter().all(|&b| b == 0));
    assert_eq!(f.background_erase(), None);
    f.power_on();
    // A cut during a program while the erase is suspended: power on forgets it.
    let mut g = flash();
    g.start_erase(0, 4096).unwrap();
    g.suspend_erase().unwrap();
    g.arm_power_cut(2);
    assert_eq!(g.write(8192, &[1; 8]), Err(FlashError::PowerLoss));
    assert_eq!(g.poll_erase(), Err(FlashError::PowerLoss));
    g.power_on();
    assert_eq!(g.background_erase(), None);
    g.write(8192 + 8, &[1; 4]).unwrap();
}

#[test]
fn errors_say_what_happened() {
    assert_eq!(
        FlashError::Erasing { offset: 0x1000 }.to_string(),
        "flash range at 0x1000 is being erased (suspended)"
    );
    assert!(FlashError::Busy.to_string().contains("not suspended"));
}
