//! What an image is and whether the device takes it, before anything is written: the
//! trailer's facts, the device's rules (fota-host's `vet`), a downgrade the user must
//! confirm or that the device refuses, "already installed", and a delta from the firmware
//! the device runs now.

use fota_image::host::{PackOptions, SigningKey, pack};
use fota_image::{ANY_SLOT, Kind, Version};

use super::*;

/// `blink` v2 (the simulator's healthy program) packed as `version`, signed by `key`.
fn packed(version: (u16, u16, u32), key: Option<&SigningKey>) -> ImageFile {
    let (a, b, c) = version;
    let opts = PackOptions {
        kind: Kind::Bytecode,
        slot_addr: ANY_SLOT,
        version: Version::new(a, b, c),
        name: "blink".into(),
    };
    let keys: Vec<&SigningKey> = key.into_iter().collect();
    let bytes = pack("blink.img", &fota_sim::images::blink_v2(), &opts, &keys).expect("packs");
    ImageFile::raw(format!("blink-{a}.{b}.{c}.img"), bytes)
}

fn key() -> SigningKey {
    SigningKey::from_seed([7; 32]).expect("a key")
}

impl Bench {
    /// Run the update the page would start now: the plan the state makes.
    fn start(&mut self) -> Result<Box<Report>, Stopped> {
        let plan = self.state.plan(20_000).expect("a plan");
        self.apply(Action::UpdateStarted);
        assert!(self.state.running(), "started");
        self.dev.set_cancel(CancelToken::new());
        let result = block_on(fota_host::update(&mut self.dev, &plan));
        self.drain();
        let result = result.map(Box::new).map_err(|e| Stopped::from(&e));
        self.apply(Action::UpdateDone(result.clone()));
        // As the connection task does after an update: Info again (new minimums).
        let info = block_on(self.dev.hello()).expect("hello");
        self.apply(Action::InfoRead(Box::new(info)));
        result
    }

    /// Choose `image` for the bytecode and go to the slot step.
    fn choose(&mut self, image: ImageFile) {
        self.apply(Action::Goto(Stage::Image));
        self.apply(Action::ImageLoaded(SlotKind::Bytecode, image));
        self.apply(Action::Goto(Stage::Slot));
    }

    /// Ask the device whether it runs the chosen images, as the connection task does.
    fn ask_installed(&mut self) {
        assert!(self.state.installed_check_due(), "the check is due");
        self.apply(Action::InstalledAsked);
        let images = self.state.installed_query();
        let (same, record) =
            block_on(crate::installed::running_slots_hold(&mut self.dev, &images)).expect("md5");
        self.drain();
        self.apply(Action::Record(record));
        self.apply(Action::Installed {
            asked: images,
            same,
        });
    }
}

#[test]
fn a_signed_image_shows_its_name_version_kind_and_key_and_a_raw_one_is_unsigned() {
    let key = key();
    let signed = packed((1, 2, 3), Some(&key));
    assert!(signed.facts.packed);
    assert_eq!(signed.facts.version, Some(Version::new(1, 2, 3)));
    assert_eq!(signed.facts.kind, Some(SlotKind::Bytecode));
    assert_eq!(signed.facts.name.as_deref(), Some("blink"));
    assert_eq!(signed.signature(), format!("signed by key {}", key.id()));
    let summary = signed.facts.summary();
    assert!(summary.contains("\"blink\""), "{summary}");
    assert!(summary.contains("version 1.2.3"), "{summary}");
    assert!(summary.contains("bytecode image"), "{summary}");
    assert!(
        summary.contains(&format!("signed by {}", key.id())),
        "{summary}"
    );

    let unsigned = packed((1, 2, 3), None);
    assert_eq!(unsigned.signature(), "unsigned");
    let raw = sample(true);
    assert!(!raw.facts.packed);
    assert_eq!(raw.signature(), "unsigned");
    assert!(raw.facts.summary().starts_with("raw image"));

    // Loaded on a device, the log says what it is before anything is written.
    let mut b = Bench::new(LayoutKind::BytecodeOnly);
    b.choose(signed);
    assert!(b.state.ready_to_flash());
    assert!(matches!(b.state.vetting(SlotKind::Bytecode), Some(Ok(_))));
    assert!(
        b.state
            .log
            .iter()
            .any(|l| l.text.contains(&format!("signed by {}", key.id()))),
        "the log names the key"
    );
}

#[test]
fn a_downgrade_waits_for_the_users_confirmation_where_the_device_allows_it() {
    let key = key();
    let mut b = Bench::new(LayoutKind::BytecodeOnly);
    b.choose(packed((2, 0, 0), Some(&key)));
    let report = b.start().expect("v2 installed");
    assert_eq!(report.outcome, Outcome::Accepted);
    let rules = b
        .state
        .info()
        .and_then(|i| i.images.clone())
        .expect("rules");
    assert_ne!(rules.bc_minimum, 0, "accepting v2 raised the minimum");

    // Version 1: older than the minimum. Nothing can start until the user confirms.
    b.choose(packed((1, 0, 0), Some(&key)));
    assert_eq!(
        b.state.downgrade_ask(SlotKind::Bytecode),
        Some(("1.0.0".into(), "2.0.0".into()))
    );
    assert!(!b.state.ready_to_flash());
    assert!(
        b.state.ready_but_for_downgrade(),
        "the image step goes on to the confirmation"
    );
    let p = b.state.blocker(SlotKind::Bytecode).expect("blocked");
    assert!(p.message.contains("downgrade"), "{p:?}");
    assert!(!b.state.plan(1).expect("plan").allow_downgrade);
    b.apply(Action::UpdateStarted);
    assert!(!b.state.running(), "not started without the confirmation");

    b.apply(Action::AllowDowngrade(true));
    assert_eq!(b.state.downgrade_ask(SlotKind::Bytecode), None);
    assert_eq!(
        b.state.downgrade_confirmed(SlotKind::Bytecode),
        Some(("1.0.0".into(), "2.0.0".into()))
    );
    assert!(b.state.ready_to_flash());
    assert!(b.state.plan(1).expect("plan").allow_downgrade);
    let report = b.start().expect("downgraded");
    assert_eq!(report.outcome, Outcome::Accepted);

    // The confirmation was for those images: new ones ask again.
    b.choose(packed((0, 9, 0), None));
    assert!(!b.state.allow_downgrade);
    assert!(b.state.downgrade_ask(SlotKind::Bytecode).is_some());
}

#[test]
fn a_downgrade_is_refused_with_the_reason_where_the_device_never_allows_one() {
    let mut config = DeviceConfig::new(LayoutKind::BytecodeOnly);
    config.images.allow_downgrade = false;
    let mut b = Bench::with(config);
    b.choose(packed((2, 0, 0), None));
    assert_eq!(b.start().expect("v2").outcome, Outcome::Accepted);
    b.choose(packed((1, 0, 0), None));
    assert_eq!(
        b.state.downgrade_ask(SlotKind::Bytecode),
        None,
        "nothing to confirm"
    );
    let p = b.state.blocker(SlotKind::Bytecode).expect("refused");
    assert!(
        p.message.contains("downgrade from version 2.0.0 to 1.0.0"),
        "{p:?}"
    );
    assert!(p.help.contains("never takes an older version"), "{p:?}");
    assert!(!b.state.ready_but_for_downgrade());
    b.apply(Action::AllowDowngrade(true));
    assert!(
        !b.state.ready_to_flash(),
        "a confirmation does not override the device"
    );
}

#[test]
fn an_image_the_device_runs_is_already_installed_unless_written_again() {
    let mut b = Bench::new(LayoutKind::BytecodeOnly);
    // The factory firmware is not this one.
    b.choose(sample(true));
    b.ask_installed();
    assert_eq!(b.state.installed, Some(Installed::Different));
    assert_eq!(b.state.stage, Stage::Slot, "a file's check moves no step");
    assert!(b.state.plan(1).expect("plan").check_installed);
    assert_eq!(b.start().expect("update").outcome, Outcome::Accepted);

    // The same file, still chosen: the device runs it now.
    b.apply(Action::Goto(Stage::Image));
    b.ask_installed();
    assert_eq!(b.state.installed, Some(Installed::Same));
    b.choose(sample(true));
    b.ask_installed();
    assert_eq!(b.state.installed, Some(Installed::Same));
    assert!(
        b.state
            .announce
            .contains("blink-v2.bin is already installed")
    );
    assert!(!b.state.installed_check_due(), "asked once");
    // Started anyway, fota-host's own check stops it before anything is written.
    let e = b.start().expect_err("already installed");
    assert!(e.problem.message.contains("already"), "{e:?}");

    // "Install again anyway": written again.
    b.choose(sample(true));
    b.ask_installed();
    b.apply(Action::Reinstall);
    assert!(b.state.reinstall);
    assert_eq!(b.state.installed, None);
    assert!(!b.state.installed_check_due(), "not asked again");
    assert!(!b.state.plan(1).expect("plan").check_installed);
    assert_eq!(b.start().expect("written again").outcome, Outcome::Accepted);

    // Another image: asked again.
    b.choose(sample(false));
    assert!(!b.state.reinstall);
    assert!(b.state.installed_check_due());
}

#[test]
fn an_answer_about_images_since_replaced_is_not_taken_for_the_new_ones() {
    let mut b = Bench::new(LayoutKind::BytecodeOnly);
    b.choose(sample(true));
    assert_eq!(b.start().expect("update").outcome, Outcome::Accepted);
    // The page asks about the running image, then the user picks another before the
    // answer comes ("Update again", then a different file).
    b.apply(Action::Goto(Stage::Image));
    b.apply(Action::InstalledAsked);
    let asked = b.state.installed_query();
    b.choose(sample(false));
    b.apply(Action::InstalledAsked);
    assert_eq!(b.state.installed, Some(Installed::Asking));
    b.apply(Action::Installed { asked, same: true });
    assert_eq!(
        b.state.installed,
        Some(Installed::Asking),
        "the old image's answer is dropped"
    );
    // The answer about the new image counts.
    let asked = b.state.installed_query();
    b.apply(Action::Installed { asked, same: false });
    assert_eq!(b.state.installed, Some(Installed::Different));
}

#[test]
fn the_firmware_on_the_device_now_makes_the_update_a_delta() {
    // Two releases that differ in their trailer only: 1.0.0 runs, 1.0.1 is new.
    let old = packed((1, 0, 0), None);
    let new = packed((1, 0, 1), None);
    let mut b = Bench::new(LayoutKind::BytecodeOnly);
    b.choose(old.clone());
    assert_eq!(b.start().expect("1.0.0").outcome, Outcome::Accepted);

    // Without the previous firmware: the whole image, compressed at best.
    let mut full = Bench::new(LayoutKind::BytecodeOnly);
    full.choose(old.clone());
    full.start().expect("1.0.0");
    full.choose(new.clone());
    let whole = full.start().expect("1.0.1 whole");

    b.choose(new.clone());
    b.apply(Action::PreviousLoaded(SlotKind::Bytecode, old.clone()));
    assert_eq!(b.state.previous(SlotKind::Bytecode), Some(&old));
    let plan = b.state.plan(1).expect("plan");
    assert_eq!(plan.bases.len(), 1);
    assert_eq!(plan.bases[0].data(), old.data.as_slice());
    let delta = b.start().expect("1.0.1 as a delta");
    assert_eq!(delta.outcome, Outcome::Accepted);
    assert!(
        b.state.log.iter().any(|l| l.text.contains("delta from")),
        "the log says what was picked"
    );
    assert!(
        delta.sent_bytes * 4 < whole.sent_bytes,
        "delta {} bytes, whole {} bytes",
        delta.sent_bytes,
        whole.sent_bytes
    );

    b.apply(Action::ClearPrevious(SlotKind::Bytecode));
    assert!(b.state.plan(1).expect("plan").bases.is_empty());
}
