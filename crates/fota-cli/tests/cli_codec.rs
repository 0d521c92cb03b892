//! `fota flash` picks how to send and says it in one line: a delta from the firmware the
//! device runs when given it (`--from`), and `--codec` to choose.

use std::process::{Command, Output};

mod support;
use support::{FOTA, Sim, text};

fn sim() -> Sim {
    Sim::start(&["--pty", "--fast"])
}

fn fota(dir: &std::path::Path, port: &str, args: &[&str]) -> Output {
    support::fota_on(dir, port, args)
}

#[test]
fn flash_says_what_it_sends_and_takes_a_delta_from_the_running_firmware() {
    let dir = tempfile::tempdir().expect("tmp");
    let sim = sim();
    let a = dir.path().join("a.bin");
    let o = Command::new(FOTA)
        .args(["sample", "healthy", "--size", "40000", "-o"])
        .arg(&a)
        .output()
        .expect("fota sample");
    assert!(o.status.success(), "{}", text(&o));
    let a_s = a.to_str().expect("path");
    // At 115200 baud (no negotiation), where the line sets the pace and fewer bytes
    // win: at 921600 the flash does, and the default sends this small image raw.
    let o = fota(
        dir.path(),
        sim.port(),
        &["--no-negotiate", "flash", a_s, "--codec", "none"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("Sending 40 KiB for 40 KiB: uncompressed (--codec none)"),
        "{}",
        text(&o)
    );
    // One line says what is sent, raw or not (no second "Sending ... of a.bin").
    let sending = text(&o).lines().filter(|l| l.contains("Sending ")).count();
    assert_eq!(sending, 1, "{}", text(&o));
    // The next release: a few bytes more. The device runs a.bin now.
    let mut next = std::fs::read(&a).expect("read");
    next.extend_from_slice(b"the next release");
    let b = dir.path().join("b.bin");
    std::fs::write(&b, &next).expect("write");
    let o = fota(
        dir.path(),
        sim.port(),
        &[
            "--no-negotiate",
            "flash",
            b.to_str().expect("path"),
            "--from",
            a_s,
            "--no-restart",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    let line = out
        .lines()
        .find(|l| l.contains("KiB for 40 KiB"))
        .unwrap_or_else(|| panic!("no sentence: {out}"));
    assert!(line.contains(": delta from the running firmware"), "{line}");
    assert!(line.contains("Sending 1 KiB"), "{line}");
}

#[test]
fn flash_help_documents_the_codec_choice() {
    let o = Command::new(FOTA)
        .args(["flash", "--help"])
        .output()
        .expect("fota flash --help");
    let help = text(&o);
    for word in ["--codec", "auto", "none", "lzma", "delta", "--from"] {
        assert!(help.contains(word), "{word}: {help}");
    }
}
