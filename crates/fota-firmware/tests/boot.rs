//! The boot stage's pieces on the host: the planned decision changes nothing on flash
//! and says what the real one does; the vector-table check.

use fota_agent::{Agent, AgentConfig};
use fota_firmware::boot::{BadVm, check_vm, plan};
use fota_protocol::RecordUpdate;
use fota_sim::flash::SimFlash;

const BASE: u32 = 0x2100_0000;
const RAM: (u32, u32) = (0x2000_0000, 0x2001_0000);

fn config() -> AgentConfig {
    let mut c = AgentConfig::vm_and_bytecode(BASE, 64 * 1024, 64 * 1024, 4096);
    // The slots here hold only vector tables, no image: the record's decisions are what
    // is tested (the dev-dependency on fota-sim builds the agent with image checks).
    c.images = fota_agent::ImagePolicy::NONE;
    c
}

/// A flash with a VM-looking vector table in VM slot 0 and one in VM slot 1.
fn flash() -> SimFlash {
    let mut bytes = vec![0xFF; 512 * 1024];
    for (slot, addr) in [(0usize, BASE), (128 * 1024, BASE + 128 * 1024)] {
        bytes[slot..slot + 4].copy_from_slice(&0x2000_F000u32.to_le_bytes());
        bytes[slot + 4..slot + 8].copy_from_slice(&(addr + 0x401).to_le_bytes());
    }
    SimFlash::from_image(bytes).unwrap()
}

/// Attempt VM slot 1 / bytecode slot 1 with the real agent; returns the flash.
fn attempted(flash: SimFlash) -> SimFlash {
    let (mut agent, _) = Agent::boot(flash, config()).unwrap();
    agent
        .set_record(RecordUpdate {
            vm_current: 1,
            vm_last: 0,
            bc_current: 1,
            bc_last: 0,
        })
        .unwrap();
    agent.into_flash()
}

#[test]
fn the_planned_decision_writes_nothing_and_predicts_the_real_one() {
    for mut flash in [flash(), attempted(flash())] {
        let before = flash.snapshot();
        let planned = plan(&mut flash, &config()).expect("a decision");
        assert_eq!(before, flash.snapshot(), "the plan changed the flash");
        let (_, real) = Agent::boot(flash, config()).unwrap();
        assert_eq!(planned.boot, real);
    }
}

#[test]
fn the_planned_decision_of_a_trial_names_the_old_vm_as_last_working() {
    let mut flash = attempted(flash());
    let p = plan(&mut flash, &config()).unwrap();
    assert!(p.boot.trial);
    assert_eq!((p.boot.vm_slot, p.record.vm_last), (1, 0));
}

#[test]
fn vector_tables_are_checked() {
    let mut f = flash();
    assert_eq!(check_vm(&mut f, &config(), 0, RAM), Ok(BASE));
    assert_eq!(check_vm(&mut f, &config(), 1, RAM), Ok(BASE + 128 * 1024));
    assert_eq!(check_vm(&mut f, &config(), 2, RAM), Err(BadVm::NoSlot));
    // Erased slot.
    let mut erased: SimFlash = SimFlash::from_image(vec![0xFF; 512 * 1024]).unwrap();
    assert_eq!(
        check_vm(&mut erased, &config(), 0, RAM),
        Err(BadVm::Stack(0xFFFF_FFFF))
    );
    // A VM linked for slot 0 placed in slot 1: its reset vector points into slot 0.
    let mut bytes = f.snapshot();
    let (s0, s1) = (0usize, 128 * 1024);
    let copy: Vec<u8> = bytes[s0..s0 + 8].to_vec();
    bytes[s1..s1 + 8].copy_from_slice(&copy);
    let mut moved: SimFlash = SimFlash::from_image(bytes).unwrap();
    assert_eq!(
        check_vm(&mut moved, &config(), 1, RAM),
        Err(BadVm::Reset(BASE + 0x401))
    );
}
