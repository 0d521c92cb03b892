//! `fota bench` produces its rows in JSON. No speed threshold here: the figures are read
//! from the benchmark's output, not asserted by tests.

use std::process::Command;

use serde_json::Value;

#[test]
fn quick_bench_reports_every_row_as_json() {
    let out = Command::new(env!("CARGO_BIN_EXE_fota"))
        .args(["bench", "--quick", "--json", "--no-lrzsz"])
        .output()
        .expect("run fota bench");
    assert!(
        out.status.success(),
        "fota bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("one JSON document on stdout");
    assert_eq!(doc["event"], "bench");
    assert_eq!(doc["lrzsz"], "skipped (--no-lrzsz)");

    let rows = doc["rows"].as_array().expect("rows");
    // --quick: 256 KiB at 115200 and 921600 baud, 1 and 16 ms.
    assert_eq!(rows.len(), 4);
    let mut settings: Vec<(u64, u64)> = Vec::new();
    for row in rows {
        assert_eq!(row["image_bytes"], 256 * 1024);
        settings.push((
            row["baud"].as_u64().expect("baud"),
            row["latency_ms"].as_u64().expect("latency"),
        ));
        let ours = &row["ours"];
        assert_eq!(ours["ok"], true, "{row}");
        let eff = ours["efficiency"].as_f64().expect("efficiency is a number");
        assert!(eff > 0.0 && eff <= 1.2, "efficiency {eff}");
        assert_eq!(ours["sent_bytes"], 256 * 1024, "everything is sent");
        assert!(ours["update_over_limit"].as_f64().expect("ratio") > 0.0);
        assert!(row["limit"]["total_s"].as_f64().expect("limit") > 0.0);
        assert!(row["zmodem"].is_null() && row["ymodem_1k"].is_null());
    }
    settings.sort_unstable();
    assert_eq!(
        settings,
        vec![(115_200, 1), (115_200, 16), (921_600, 1), (921_600, 16)]
    );

    let ram = &doc["ram"];
    assert_eq!(
        ram["total"].as_u64(),
        Some(ram["rx_buffer"].as_u64().unwrap() + ram["agent_link_state"].as_u64().unwrap())
    );
    let table = doc["table_markdown"].as_str().expect("table");
    assert_eq!(table.lines().filter(|l| l.starts_with("| ")).count(), 1 + 4);
    assert_eq!(doc["targets"].as_array().map(Vec::len), Some(4));
}
