//! `fota bench`: its rows in JSON, with bounds that physics sets (no speed threshold:
//! the figures are read from the benchmark's output), and the README's published table,
//! which must be what the benchmark computes now.

use std::process::Command;

use serde_json::Value;

fn fota_bench(args: &[&str]) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_fota"))
        .arg("bench")
        .args(args)
        .output()
        .expect("run fota bench");
    assert!(
        out.status.success(),
        "fota bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn lrzsz_installed() -> bool {
    ["sz", "rz"].iter().all(|p| {
        Command::new(p)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

#[test]
fn quick_bench_reports_every_row_as_json_within_physical_bounds() {
    assert!(
        lrzsz_installed(),
        "the benchmark compares with lrzsz: install it (apt-get install lrzsz)"
    );
    let doc: Value = serde_json::from_slice(&fota_bench(&["--quick", "--json"]))
        .expect("one JSON document on stdout");
    assert_eq!(doc["event"], "bench");
    assert_eq!(doc["lrzsz"], "measured");

    let rows = doc["rows"].as_array().expect("rows");
    // --quick: 256 KiB at 115200 and 921600 baud, 1 and 16 ms.
    assert_eq!(rows.len(), 4);
    let mut settings: Vec<(u64, u64)> = Vec::new();
    for row in rows {
        assert_eq!(row["image_bytes"], 256 * 1024);
        let baud = row["baud"].as_u64().expect("baud");
        settings.push((baud, row["latency_ms"].as_u64().expect("latency")));
        let line_rate = baud as f64 / 10.0;
        let ours = &row["ours"];
        assert_eq!(ours["ok"], true, "{row}");
        // No transfer beats the line: every efficiency is at most 1.
        for eff in ["efficiency", "update_efficiency"] {
            let e = ours[eff].as_f64().expect("efficiency is a number");
            assert!(e > 0.0 && e <= 1.0, "{eff} {e} at {row}");
        }
        assert_eq!(ours["sent_bytes"], 256 * 1024, "everything is sent");
        // The true limit is a lower bound: no update goes below it, and the link alone
        // takes the image's bytes at the line rate.
        let limit = &row["limit"];
        let true_s = limit["true_s"].as_f64().expect("true limit");
        let link_s = limit["link_s"].as_f64().expect("link time");
        assert!((link_s - 256.0 * 1024.0 / line_rate).abs() < 1e-9);
        assert!(true_s > link_s, "{row}");
        assert!(
            limit["erase_then_stream_s"].as_f64().expect("old limit") > true_s,
            "erasing first cannot be faster than overlapping: {row}"
        );
        let update = ours["update_s"].as_f64().expect("update time");
        assert!(update >= true_s, "an update below the true limit: {row}");
        assert!(
            (ours["update_over_true_limit"].as_f64().expect("ratio") - update / true_s).abs()
                < 1e-9
        );
        // What a user runs compares the slot first: never less time than without.
        assert!(ours["compare_s"].as_f64().expect("compare") > 0.0, "{row}");
        // Both lrzsz programs really ran and delivered the image, timed whole.
        for peer in ["zmodem", "ymodem_1k"] {
            let p = &row[peer];
            assert_eq!(p["ok"], true, "{peer}: {p}");
            let seconds = p["seconds"].as_f64().expect("seconds");
            assert!(seconds >= link_s, "{peer} faster than the line: {p}");
            let e = p["efficiency"].as_f64().expect("efficiency");
            assert!(e > 0.0 && e <= 1.0, "{peer} efficiency {e}");
        }
    }
    settings.sort_unstable();
    assert_eq!(
        settings,
        vec![(115_200, 1), (115_200, 16), (921_600, 1), (921_600, 16)]
    );

    let ram = &doc["ram"];
    // The thumbv7em figures (checked against the ELF by tests/code_size.rs) hold the
    // receive ring the window needs.
    let bss = ram["thumbv7em_bss"].as_u64().expect("bss");
    assert!(bss > ram["rx_buffer"].as_u64().expect("rx buffer"));
    assert_eq!(
        ram["total"].as_u64(),
        Some(bss + ram["thumbv7em_agent"].as_u64().expect("agent"))
    );
    let table = doc["table_markdown"].as_str().expect("table");
    assert_eq!(table.lines().filter(|l| l.starts_with("| ")).count(), 1 + 4);
    assert_eq!(doc["targets"].as_array().map(Vec::len), Some(4));
}

/// The table's rows: cells of every line that starts with "| ", the header included.
fn table_rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .skip_while(|l| !l.starts_with("| Link (baud)"))
        .take_while(|l| l.starts_with('|'))
        .filter(|l| !l.starts_with("|---"))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

/// A cell's number ("26.25 s", "98.4%", "1.149").
fn number(cell: &str) -> Option<f64> {
    cell.trim_end_matches(" s")
        .trim_end_matches('%')
        .parse()
        .ok()
}

#[test]
fn readme_table_is_what_the_benchmark_computes() {
    assert!(
        lrzsz_installed(),
        "the README's table compares with lrzsz: install it (apt-get install lrzsz)"
    );
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("read README.md");
    let published = table_rows(&readme);
    let computed = table_rows(&String::from_utf8_lossy(&fota_bench(&["--markdown"])));
    assert_eq!(computed.len(), 1 + 8, "8 settings: {computed:?}");
    assert_eq!(
        published.len(),
        computed.len(),
        "the README's table has other rows: regenerate it with `fota bench --markdown`"
    );
    let header = &computed[0];
    assert_eq!(
        &published[0], header,
        "the README's table has other columns"
    );
    for (p, c) in published.iter().zip(&computed).skip(1) {
        for ((name, pc), cc) in header.iter().zip(p).zip(c) {
            if name.starts_with("ZMODEM") || name.starts_with("YMODEM") {
                // sz and rz run as real processes: the relay stamps an answer late when
                // the machine is busy, so their times move by a little from run to run.
                let (pv, cv) = (number(pc), number(cc));
                let (Some(pv), Some(cv)) = (pv, cv) else {
                    panic!("{name}: published {pc:?}, computed {cc:?}");
                };
                assert!(
                    (pv - cv).abs() <= 0.03 * cv.max(pv),
                    "{name} of {:?}: published {pc}, computed {cc}: regenerate the README's \
                     table with `fota bench --markdown`",
                    &c[..3]
                );
            } else {
                // Our figures are virtual time of a deterministic model: to the digit.
                assert_eq!(
                    pc,
                    cc,
                    "{name} of {:?}: regenerate the README's table with `fota bench --markdown`",
                    &c[..3]
                );
            }
        }
    }
}
