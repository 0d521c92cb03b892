//! The real firmware built with the agent's decoder (the QEMU board's `codec` feature) on
//! an emulated Cortex-M4: `Info` lists the codecs, and `fota flash --from` sends a delta
//! from the running program that the device decodes into the slot, its MD5 checked
//! before attempt.
//!
//! Needs `qemu-system-arm` and the thumbv7em target, as `tests/qemu.rs`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

mod support;

const FOTA: &str = env!("CARGO_BIN_EXE_fota");

/// Build the QEMU board with the decoder, in its own target directory.
fn build() -> PathBuf {
    support::firmware(&["codec"], "target-codec")
}

struct Qemu(Child, String);

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn fota(dir: &Path, port: &str, args: &[&str]) -> Output {
    Command::new(FOTA)
        .env("FOTA_STATE_DIR", dir)
        .args(["--port", port])
        .args(args)
        .output()
        .expect("run fota")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn a_delta_decoded_by_the_real_firmware() {
    let firmware = build();
    let dir = tempfile::tempdir().expect("tmp");
    let mut child = Command::new(FOTA)
        .args(["--json", "qemu", "--state"])
        .arg(dir.path().join("flash.bin"))
        .arg("--firmware")
        .arg(&firmware)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start fota qemu");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let line = lines.next().expect("a line").expect("read");
    let v: Value = serde_json::from_str(&line).expect("JSON");
    std::thread::spawn(move || lines.for_each(drop));
    let qemu = Qemu(child, v["pty"].as_str().expect("pty").to_string());

    let o = fota(dir.path(), &qemu.1, &["--json", "info"]);
    assert!(o.status.success(), "{}", text(&o));
    let info = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["event"] == "result")
        .expect("info");
    let codecs = info["codecs"].as_array().expect("codecs").clone();
    assert_eq!(codecs.len(), 2, "{info}");
    assert!(codecs.iter().all(|c| c["ram"] == 5852), "{info}");

    let a = dir.path().join("a.bin");
    let o = Command::new(FOTA)
        .args(["sample", "healthy", "--size", "30000", "-o"])
        .arg(&a)
        .output()
        .expect("fota sample");
    assert!(o.status.success(), "{}", text(&o));
    let a = a.to_str().expect("path");
    let o = fota(dir.path(), &qemu.1, &["flash", a]);
    assert!(o.status.success(), "{}", text(&o));
    let mut next = std::fs::read(a).expect("read");
    next.extend_from_slice(b"the next release");
    let b = dir.path().join("b.bin");
    std::fs::write(&b, &next).expect("write");
    let o = fota(
        dir.path(),
        &qemu.1,
        &[
            "flash",
            b.to_str().expect("path"),
            "--from",
            a,
            "--no-restart",
        ],
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("KiB for 30 KiB: delta from the running firmware"),
        "{out}"
    );
    assert!(
        out.contains("matches"),
        "the device's MD5 of the slot: {out}"
    );
}
