//! Firmware manifests: parsing, the checks of each image against the manifest before
//! anything is loaded, and the actions.

use super::*;
use sha2::Digest;

fn sha(b: &[u8]) -> String {
    hex(&sha2::Sha256::digest(b))
}

fn doc(json: &str) -> ManifestDoc {
    serde_json::from_str(json).expect("manifest JSON")
}

fn manifest_for(images: &[(&str, &str, &str, &[u8])]) -> Manifest {
    let list: Vec<String> = images
        .iter()
        .map(|(layout, kind, url, bytes)| {
            format!(
                r#"{{"layout":"{layout}","kind":"{kind}","url":"{url}","size":{},"sha256":"{}"}}"#,
                bytes.len(),
                sha(bytes)
            )
        })
        .collect();
    let json = format!(
        r#"{{"format":1,"name":"Blink","version":"2.0.0","images":[{}]}}"#,
        list.join(",")
    );
    Manifest::check("http://127.0.0.1:8080/example/manifest.json", doc(&json)).expect("valid")
}

/// The example that ships under web/example: valid, and its files are what it says.
#[test]
fn the_example_manifest_describes_its_files() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/example");
    let text =
        std::fs::read_to_string(dir.join("manifest.json")).expect("web/example/manifest.json");
    let m = Manifest::check("http://127.0.0.1:8080/example/manifest.json", doc(&text))
        .expect("the example manifest is valid");
    assert_eq!(m.layouts(), ["bytecode", "vm"]);
    for e in &m.images {
        let bytes = std::fs::read(dir.join(&e.url)).expect("an example image");
        check_image(&m, e, &bytes).expect("the example image matches its manifest");
    }
    // The in-page simulated device's own samples: it shows them as "confirms itself".
    let bc = std::fs::read(dir.join("blink-v2.bin")).expect("blink-v2.bin");
    assert_eq!(bc, fota_sim::images::blink_v2());
    let vm = std::fs::read(dir.join("zvm-2.0.bin")).expect("zvm-2.0.bin");
    assert_eq!(vm, fota_sim::images::vm_v2());
}

#[test]
fn a_manifest_with_bad_fields_is_refused_saying_which() {
    let good_sha = "00".repeat(32);
    let cases = [
        (r#""format":2"#.to_string(), "format is 2"),
        (r#""format":1,"x":1"#.to_string(), "NOTJSON"),
    ];
    // Unknown fields are refused by the parser itself.
    assert!(
        serde_json::from_str::<ManifestDoc>(&format!(
            r#"{{{},"name":"a","version":"1","images":[]}}"#,
            cases[1].0
        ))
        .is_err()
    );
    let bad = |image: String| {
        let json = format!(
            r#"{{{},"name":"a","version":"1","images":[{image}]}}"#,
            r#""format":1"#
        );
        Manifest::check("m.json", doc(&json))
            .expect_err("refused")
            .message
    };
    let img = |layout: &str, kind: &str, size: u64, sha: &str| {
        format!(
            r#"{{"layout":"{layout}","kind":"{kind}","url":"a.bin","size":{size},"sha256":"{sha}"}}"#
        )
    };
    assert!(bad(img("vm3", "bytecode", 1, &good_sha)).contains("layout \"vm3\""));
    assert!(bad(img("vm", "app", 1, &good_sha)).contains("kind \"app\""));
    assert!(bad(img("bytecode", "vm", 1, &good_sha)).contains("VM image for the bytecode layout"));
    assert!(bad(img("vm", "vm", 0, &good_sha)).contains("size 0"));
    assert!(bad(img("vm", "vm", 1, "abc")).contains("64 hex digits"));
    assert!(bad(img("vm", "vm", 1, &"zz".repeat(32))).contains("64 hex digits"));
    let two = format!(
        "{},{}",
        img("vm", "vm", 1, &good_sha),
        img("vm", "vm", 2, &good_sha)
    );
    assert!(bad(two).contains("second vm image for the vm layout"));
    let json = format!(r#"{{{},"name":"a","version":"1","images":[]}}"#, cases[0].0);
    let p = Manifest::check("m.json", doc(&json)).expect_err("format 2");
    assert!(p.message.contains(cases[0].1), "{}", p.message);
    assert!(p.help.contains("docs/MANIFEST.md"));
    let sig = r#"{"layout":"vm","kind":"vm","url":"a.bin","size":1,"sha256":"SHA","signatures":[{"key_id":"00","signature":"00"}]}"#
        .replace("SHA", &good_sha);
    assert!(bad(sig).contains("key_id of 16 hex digits"));
}

#[test]
fn an_image_is_checked_for_size_then_sha256_before_it_is_loaded() {
    let bytes = fota_sim::images::blink_v2();
    let m = manifest_for(&[("bytecode", "bytecode", "fw/blink-v2.bin", &bytes)]);
    let e = &m.images[0];
    assert_eq!(e.file_name(), "blink-v2.bin");
    check_image(&m, e, &bytes).expect("the right bytes pass");

    // Cut short: refused for its size.
    let p = check_image(&m, e, &bytes[..bytes.len() - 1]).expect_err("short");
    assert!(p.message.contains("but the manifest says"), "{}", p.message);
    assert!(p.help.contains("Nothing was written"));
    // Same size, one byte changed: refused for its hash, both hashes shown.
    let mut changed = bytes.clone();
    changed[100] ^= 1;
    let p = check_image(&m, e, &changed).expect_err("changed");
    assert!(
        p.message.contains(&sha(&changed)) && p.message.contains(&sha(&bytes)),
        "{}",
        p.message
    );
    assert!(p.message.contains("refused"));
}

#[test]
fn signatures_named_by_the_manifest_must_be_in_the_images_trailer() {
    // The golden image of docs/IMAGE.md, signed by key 3097e2dee2cb4a34.
    use fota_image::host::{PackOptions, SigningKey, pack};
    let signer = SigningKey::from_seed([0x42; 32]).expect("key");
    let opts = PackOptions {
        kind: fota_image::Kind::Vm,
        slot_addr: 0x0001_0000,
        version: fota_image::Version {
            major: 1,
            minor: 2,
            patch: 3,
        },
        name: "golden".into(),
    };
    let payload: Vec<u8> = (0u8..16).collect();
    let golden = pack("golden", &payload, &opts, &[&signer]).expect("packed");
    let key = "3097e2dee2cb4a34";
    assert_eq!(hex(&signer.id().0), key);
    let img = fota_image::find_image(&golden).expect("golden image");
    let sig = img.trailer.signatures().next().expect("a signature");
    let json = |key: &str, signature: String| {
        format!(
            r#"{{"format":1,"name":"g","version":"1.2.3","images":[{{"layout":"vm","kind":"vm","url":"g.img","size":{},"sha256":"{}","signatures":[{{"key_id":"{key}","signature":"{signature}"}}]}}]}}"#,
            golden.len(),
            sha(&golden)
        )
    };
    let m = Manifest::check("m.json", doc(&json(key, hex(&sig.signature)))).expect("valid");
    check_image(&m, &m.images[0], &golden).expect("the trailer carries it");
    let image = image_from(&m, &m.images[0], golden.clone());
    assert!(image.notes.iter().any(|n| n.contains(key)));

    let m = Manifest::check(
        "m.json",
        doc(&json("0011223344556677", hex(&sig.signature))),
    )
    .expect("valid");
    let p = check_image(&m, &m.images[0], &golden).expect_err("another key");
    assert!(p.message.contains("0011223344556677"), "{}", p.message);

    // A raw image (no trailer) cannot carry the signatures a manifest names.
    let raw = fota_sim::images::vm_v2();
    let j = json(key, hex(&sig.signature))
        .replace(&golden.len().to_string(), &raw.len().to_string())
        .replace(&sha(&golden), &sha(&raw));
    let m = Manifest::check("m.json", doc(&j)).expect("valid");
    let p = check_image(&m, &m.images[0], &raw).expect_err("no trailer");
    assert!(p.message.contains("no valid FOTA trailer"), "{}", p.message);
}

#[test]
fn the_manifest_actions_load_the_images_for_the_devices_layout() {
    let bc = fota_sim::images::blink_v2();
    let vm = fota_sim::images::vm_v2();
    let m = manifest_for(&[
        ("bytecode", "bytecode", "blink-v2.bin", &bc),
        ("vm", "bytecode", "blink-v2.bin", &bc),
        ("vm", "vm", "zvm-2.0.bin", &vm),
    ]);
    let mut b = Bench::new(LayoutKind::VmAndBytecode);
    b.apply(Action::ManifestLoading(m.url.clone()));
    assert!(matches!(b.state.manifest, Some(ManifestState::Loading(_))));
    assert!(b.state.manifest().is_none());
    b.apply(Action::ManifestLoaded(Box::new(m.clone())));
    assert_eq!(b.state.manifest(), Some(&m));
    assert_eq!(b.state.manifest_layout(), Some(LayoutKind::VmAndBytecode));
    b.apply(Action::ManifestFetching(LayoutKind::VmAndBytecode));
    assert_eq!(b.state.manifest_for, Some(LayoutKind::VmAndBytecode));
    assert!(b.state.manifest_problem.is_none());
    let images: Vec<_> = m
        .for_layout(LayoutKind::VmAndBytecode)
        .into_iter()
        .map(|e| {
            let bytes = if e.kind == SlotKind::Vm {
                vm.clone()
            } else {
                bc.clone()
            };
            check_image(&m, e, &bytes).expect("matches");
            (e.kind, image_from(&m, e, bytes))
        })
        .collect();
    assert_eq!(images[0].0, SlotKind::Bytecode, "bytecode first");
    b.apply(Action::ManifestImages(images));
    assert_eq!(
        b.state.bytecode.as_ref().map(|i| i.data.len()),
        Some(bc.len())
    );
    assert_eq!(b.state.vm.as_ref().map(|i| i.data.len()), Some(vm.len()));
    assert!(
        b.state
            .bytecode
            .as_ref()
            .is_some_and(|i| i.manifest_sha256.is_some())
    );
    assert!(b.state.ready_to_flash());
}

#[test]
fn a_refused_manifest_image_loads_nothing() {
    let bc = fota_sim::images::blink_v2();
    let m = manifest_for(&[("bytecode", "bytecode", "blink-v2.bin", &bc)]);
    let mut b = Bench::new(LayoutKind::BytecodeOnly);
    b.apply(Action::ManifestLoaded(Box::new(m.clone())));
    b.apply(Action::ManifestFetching(LayoutKind::BytecodeOnly));
    let mut wrong = bc.clone();
    wrong[0] ^= 0xFF;
    let p = check_image(&m, &m.images[0], &wrong).expect_err("wrong");
    b.apply(Action::ManifestRefused(p.clone()));
    assert_eq!(b.state.manifest_problem, Some(p));
    assert!(b.state.bytecode.is_none());
    assert!(!b.state.ready_to_flash());
    assert!(
        b.state
            .log
            .iter()
            .any(|l| l.kind == LogKind::Error && l.text.contains("refused"))
    );
    // "Fetch again": the last try is forgotten, so the page fetches them once more, and
    // the right bytes load.
    assert_eq!(b.state.manifest_for, Some(LayoutKind::BytecodeOnly));
    b.apply(Action::ManifestRetry);
    assert_eq!(b.state.manifest_problem, None);
    assert_eq!(b.state.manifest_for, None, "fetched again");
    b.apply(Action::ManifestFetching(LayoutKind::BytecodeOnly));
    check_image(&m, &m.images[0], &bc).expect("right");
    b.apply(Action::ManifestImages(vec![(
        SlotKind::Bytecode,
        image_from(&m, &m.images[0], bc.clone()),
    )]));
    assert!(b.state.manifest_images_loaded());
    // Nothing to fetch again once they loaded.
    b.apply(Action::ManifestRetry);
    assert_eq!(b.state.manifest_for, Some(LayoutKind::BytecodeOnly));
}

#[test]
fn a_manifest_without_the_devices_layout_says_so() {
    let bc = fota_sim::images::blink_v2();
    let m = manifest_for(&[("bytecode", "bytecode", "blink-v2.bin", &bc)]);
    let mut b = Bench::new(LayoutKind::VmAndBytecode);
    b.apply(Action::ManifestLoaded(Box::new(m)));
    b.apply(Action::ManifestFetching(LayoutKind::VmAndBytecode));
    let p = b.state.manifest_problem.clone().expect("a problem");
    assert!(
        p.message.contains("no image for this device's layout (vm)"),
        "{}",
        p.message
    );
    assert!(p.message.contains("offers the bytecode layout"));
}

#[test]
fn a_manifest_that_cannot_be_loaded_is_shown_failed() {
    let mut b = Bench::new(LayoutKind::BytecodeOnly);
    b.apply(Action::ManifestLoading("http://x/m.json".into()));
    let p = Problem {
        message: "The firmware manifest http://x/m.json could not be fetched: HTTP 404.".into(),
        help: "Check the address.".into(),
    };
    b.apply(Action::ManifestFailed(p.clone()));
    assert_eq!(b.state.manifest, Some(ManifestState::Failed(p)));
    assert!(b.state.manifest().is_none());
}

/// Connected to a simulated device of `layout`, the example-like manifest loaded and its
/// images taken, as the effects do.
fn with_manifest(layout: LayoutKind) -> (Bench, Manifest) {
    let bc = fota_sim::images::blink_v2();
    let vm = fota_sim::images::vm_v2();
    let m = manifest_for(&[
        ("bytecode", "bytecode", "blink-v2.bin", &bc),
        ("vm", "bytecode", "blink-v2.bin", &bc),
        ("vm", "vm", "zvm-2.0.bin", &vm),
    ]);
    let mut b = Bench::new(layout);
    b.apply(Action::ManifestLoaded(Box::new(m.clone())));
    let l = b.state.manifest_layout().expect("connected");
    b.apply(Action::ManifestFetching(l));
    let images = m
        .for_layout(l)
        .into_iter()
        .map(|e| {
            let bytes = if e.kind == SlotKind::Vm {
                vm.clone()
            } else {
                bc.clone()
            };
            (e.kind, image_from(&m, e, bytes))
        })
        .collect();
    b.apply(Action::ManifestImages(images));
    (b, m)
}

#[test]
fn with_a_manifest_and_nothing_to_decide_the_record_check_goes_on_to_the_start() {
    for layout in [LayoutKind::BytecodeOnly, LayoutKind::VmAndBytecode] {
        let (mut b, _) = with_manifest(layout);
        assert_eq!(b.state.stage, Stage::Record);
        assert!(b.state.manifest_images_loaded());
        assert!(
            b.state.manifest_ready(),
            "a valid, confirmed record: nothing to decide"
        );
        b.apply(Action::InstalledAsked);
        assert_eq!(b.state.installed, Some(Installed::Asking));
        assert!(!b.state.manifest_ready(), "asked once");
        // The device's factory firmware is another program.
        let (same, _) = block_on(crate::installed::running_slots_hold(
            &mut b.dev,
            &b.state.installed_query(),
        ))
        .expect("asked");
        assert!(!same);
        b.apply(Action::Installed {
            asked: b.state.installed_query(),
            same,
        });
        assert_eq!(b.state.installed, Some(Installed::Different));
        assert_eq!(
            b.state.stage,
            Stage::Slot,
            "on to the one decision left: the start"
        );
        assert!(b.state.announce.contains("start the update when ready"));
        // Back to the record: it does not move on by itself again.
        b.apply(Action::Goto(Stage::Record));
        assert!(!b.state.manifest_ready());
        b.apply(Action::Installed {
            asked: b.state.installed_query(),
            same: false,
        });
        assert_eq!(b.state.stage, Stage::Record);
    }
}

#[test]
fn already_installed_when_the_running_slots_hold_the_manifests_images() {
    let (mut b, _) = with_manifest(LayoutKind::BytecodeOnly);
    // Installed through the usual update, then connected again.
    let report = b
        .update(b.state.bytecode.clone().expect("the manifest's image"))
        .expect("update");
    assert_eq!(report.outcome, Outcome::Accepted);
    let record = block_on(b.dev.get_record()).expect("record");
    let info = b.state.info().cloned().expect("info");
    b.apply(Action::Disconnected);
    b.apply(Action::Connected(Box::new(connection(info))));
    b.apply(Action::Record(record));
    assert!(
        b.state.manifest_ready(),
        "the images are kept across connections"
    );
    b.apply(Action::InstalledAsked);
    let (same, _) = block_on(crate::installed::running_slots_hold(
        &mut b.dev,
        &b.state.installed_query(),
    ))
    .expect("asked");
    assert!(same, "the running slot holds the image just installed");
    b.apply(Action::Installed {
        asked: b.state.installed_query(),
        same: true,
    });
    assert_eq!(b.state.installed, Some(Installed::Same));
    assert_eq!(b.state.stage, Stage::Record, "nothing to update: it stays");
    assert!(b.state.announce.contains("already installed"));
    // The user may install it again anyway.
    b.apply(Action::Goto(Stage::Slot));
    assert_eq!(b.state.stage, Stage::Slot);
}

#[test]
fn a_record_with_something_to_decide_waits_for_the_user() {
    let (mut b, _) = with_manifest(LayoutKind::BytecodeOnly);
    let mut r = b.state.record.expect("record");
    r.state = RecordState::Trial;
    b.apply(Action::Record(r));
    assert!(!b.state.manifest_ready(), "a trial: the user decides");
    b.apply(Action::InstalledAsked);
    assert_eq!(b.state.installed, None, "not asked");
    b.apply(Action::Installed {
        asked: b.state.installed_query(),
        same: false,
    });
    assert_eq!(
        b.state.stage,
        Stage::Record,
        "an answer never asked for moves nothing"
    );
    let mut r = b.state.record.expect("record");
    r.state = RecordState::Confirmed;
    r.valid = 0;
    b.apply(Action::Record(r));
    assert!(!b.state.manifest_ready(), "an invalid record");
    // Without a manifest, the record check never moves on by itself.
    let mut plain = Bench::new(LayoutKind::BytecodeOnly);
    plain.apply(Action::ImageLoaded(SlotKind::Bytecode, sample(true)));
    assert!(!plain.state.manifest_ready());
}

#[test]
fn an_image_larger_than_every_slot_of_its_kind_is_not_even_fetched() {
    let bc = fota_sim::images::blink_v2();
    let mut m = manifest_for(&[("bytecode", "bytecode", "blink-v2.bin", &bc)]);
    let b = Bench::new(LayoutKind::BytecodeOnly);
    assert_eq!(b.state.manifest_misfit(&m.images[0]), None);
    let largest = b
        .state
        .info()
        .expect("connected")
        .slots
        .iter()
        .filter(|s| s.kind == SlotKind::Bytecode)
        .map(|s| u64::from(s.size))
        .max()
        .expect("bytecode slots");
    m.images[0].size = largest;
    assert_eq!(
        b.state.manifest_misfit(&m.images[0]),
        None,
        "exactly a slot fits"
    );
    m.images[0].size = largest + 1;
    let p = b.state.manifest_misfit(&m.images[0]).expect("too large");
    assert!(
        p.message
            .contains("larger than this device's bytecode slots"),
        "{}",
        p.message
    );
    assert!(p.help.contains("Nothing was written"));
}
