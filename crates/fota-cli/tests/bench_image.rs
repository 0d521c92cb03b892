//! `fota bench --image` on real firmware: runs the README's two benchmarks (the micro:bit
//! MicroPython runtime compressed; a delta between two MicroPython releases) and checks
//! that every row the README shows is what this run measured. The figures are read from
//! the benchmark, not asserted against targets here.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const DEBIAN_HEX: &str = "/usr/share/firmware-microbit-micropython/firmware.hex";

/// The uflash runtime HEX (`crates/fota-codec/testdata/README.md`), written to `dir`.
fn uflash_hex(version: &str, dir: &Path) -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/testdata");
    let dir_in = std::env::var_os("FOTA_TESTDATA").map_or(root, PathBuf::from);
    let src = std::fs::read_to_string(dir_in.join(format!("uflash-{version}.py"))).ok()?;
    let start = src.find("_RUNTIME = \"\"\"")? + 14;
    let len = src[start..].find("\"\"\"")?;
    let out = dir.join(format!("micropython-{version}.hex"));
    std::fs::write(&out, &src[start..start + len]).ok()?;
    Some(out)
}

fn missing(what: &str) {
    let msg = format!("{what}: not found; run crates/fota-codec/testdata/fetch.sh");
    if std::env::var_os("CI").is_some() {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
}

fn bench(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_fota"))
        .arg("bench")
        .args(args)
        .arg("--json")
        .output()
        .expect("run fota bench");
    assert!(
        out.status.success(),
        "fota bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}

fn readme_has(doc: &Value) {
    let readme = include_str!("../../../README.md");
    let table = doc["table_markdown"].as_str().expect("table");
    for row in table.lines() {
        assert!(readme.contains(row), "README.md lacks the row: {row}");
    }
}

fn row<'a>(doc: &'a Value, baud: u64, latency: u64, method: &str) -> &'a Value {
    doc["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["baud"] == baud && r["latency_ms"] == latency && r["method"] == method)
        .unwrap_or_else(|| panic!("no row {baud} {latency} {method}"))
}

#[test]
fn the_readme_figures_of_a_compressed_update_of_micropython() {
    if !Path::new(DEBIAN_HEX).exists() {
        return missing("Debian's firmware-microbit-micropython");
    }
    let doc = bench(&["--image", DEBIAN_HEX]);
    assert_eq!(doc["image_bytes"], 243_852);
    assert_eq!(doc["rows"].as_array().map(Vec::len), Some(8));
    for baud in [115_200, 921_600] {
        for latency in [1, 16] {
            let raw = row(&doc, baud, latency, "raw");
            let lzma = row(&doc, baud, latency, "compressed");
            assert_eq!(raw["sent_bytes"], 243_852);
            assert!(lzma["sent_bytes"].as_u64() < raw["sent_bytes"].as_u64());
        }
    }
    readme_has(&doc);
}

#[test]
fn the_readme_figures_of_a_delta_between_two_releases() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (Some(old), Some(new)) = (
        uflash_hex("1.2.3", dir.path()),
        uflash_hex("1.2.4", dir.path()),
    ) else {
        return missing("uflash 1.2.3 and 1.2.4");
    };
    let doc = bench(&[
        "--image",
        new.to_str().expect("utf-8 path"),
        "--from",
        old.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(doc["rows"].as_array().map(Vec::len), Some(12));
    let delta = row(&doc, 115_200, 1, "delta");
    assert!(delta["sent_bytes"].as_u64() < Some(20_000), "{delta}");
    // The README names the files by their release, not by this run's temporary paths.
    readme_has(&doc);
}
