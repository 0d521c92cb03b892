//! A new firmware that runs well but never calls `accept()`: `fota flash` waits for the
//! device's own deadline plus its margin (saying so), then reports the truth: it runs on
//! trial, unconfirmed, and the next restart brings back the previous one (exit code 4).

mod support;

use serde_json::Value;
use support::{Sim, fota_on, text};

fn json_lines(o: &std::process::Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn a_firmware_that_never_accepts_is_reported_on_trial_with_exit_code_4() {
    let dir = tempfile::tempdir().expect("tmp");
    let image = dir.path().join("never-accepts.bin");
    std::fs::write(&image, fota_sim::images::blink_v4_never_accepts()).expect("write");
    let sim = Sim::start(&["--pty"]);
    let port = sim.port();
    let o = fota_on(dir.path(), port, &["flash", image.to_str().expect("path")]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(4), "{out}");
    // The wait is the device's (1.5 s from its start, 1 s of margin), and it says so.
    assert!(
        out.contains("Waiting up to ") && out.contains("left by the device's clock"),
        "{out}"
    );
    assert!(
        out.contains("plus 1.0 s for the restart and the link"),
        "{out}"
    );
    assert!(
        out.contains("running on trial and has not confirmed itself")
            && out.contains("brings back the previous firmware (bytecode slot 0 with VM slot 0)"),
        "{out}"
    );
    assert!(
        out.contains("error: the new firmware runs on trial and has not confirmed itself")
            && out.contains("fota restart")
            && out.contains("fota accept"),
        "{out}"
    );

    // Still on trial, past its deadline: `fota info` says so by the device's clock.
    let o = fota_on(dir.path(), port, &["info"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("past its deadline and not confirmed"),
        "{}",
        text(&o)
    );
    let o = fota_on(dir.path(), port, &["--json", "info"]);
    let info = json_lines(&o)
        .into_iter()
        .find(|v| v["event"] == "result")
        .expect("info line");
    assert_eq!(info["trial_left_ms"], 0, "{info}");

    // The next restart brings back the previous firmware.
    let o = fota_on(dir.path(), port, &["--json", "restart"]);
    let rec = json_lines(&o)
        .into_iter()
        .find(|v| v["event"] == "record")
        .expect("record line");
    assert_eq!(rec["state"], "Confirmed", "{rec}");
    assert_eq!(rec["running"]["bytecode"], 0, "{rec}");
    let o = fota_on(dir.path(), port, &["--json", "info"]);
    let info = json_lines(&o)
        .into_iter()
        .find(|v| v["event"] == "result")
        .expect("info line");
    assert_eq!(
        info["trial_left_ms"],
        Value::Null,
        "nothing on trial: {info}"
    );
}
