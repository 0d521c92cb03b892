//! Real firmware for the tests and the measuring tool (testdata/README.md says where each
//! file comes from; testdata/fetch.sh fetches them, and .ci/tools.sh runs it).
#![allow(dead_code)]

use std::path::PathBuf;

/// micro:bit flash: everything below 256 KiB (the HEX files also hold UICR words).
pub const MICROBIT_FLASH: u32 = 0x4_0000;

/// Debian's firmware-microbit-micropython (MicroPython 1.0.1 for the BBC micro:bit).
pub const DEBIAN_HEX: &str = "/usr/share/firmware-microbit-micropython/firmware.hex";

pub fn testdata_dir() -> PathBuf {
    match std::env::var_os("FOTA_TESTDATA") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/testdata"),
    }
}

/// A firmware the caller needs. Missing: `None` with a message on a developer's machine,
/// a failure in CI (where `.ci/tools.sh` must have fetched it).
fn need<T>(what: &str, found: Option<T>) -> Option<T> {
    if found.is_none() {
        let msg =
            format!("{what}: not found; run crates/fota-codec/testdata/fetch.sh (or .ci/tools.sh)");
        if std::env::var_os("CI").is_some() {
            panic!("{msg}");
        }
        eprintln!("SKIPPED: {msg}");
    }
    found
}

/// MicroPython 1.0.1 for the BBC micro:bit, as Debian builds it (238 KiB).
pub fn debian_micropython() -> Option<Vec<u8>> {
    let image = std::fs::read_to_string(DEBIAN_HEX).ok().map(|text| {
        fota_codec::hex::to_image(&text, 0, MICROBIT_FLASH).expect("Debian's HEX file reads")
    });
    need("Debian's firmware-microbit-micropython", image)
}

/// The MicroPython runtime that uflash `version` embeds (1.2.2: MicroPython 1.0.0-rc.3,
/// 1.2.3: 1.0.0, 1.2.4: 1.0.1).
pub fn uflash_runtime(version: &str) -> Option<Vec<u8>> {
    let path = testdata_dir().join(format!("uflash-{version}.py"));
    let image = std::fs::read_to_string(&path).ok().map(|src| {
        let start = src
            .find("_RUNTIME = \"\"\"")
            .expect("uflash.py has _RUNTIME")
            + 14;
        let len = src[start..].find("\"\"\"").expect("_RUNTIME ends");
        fota_codec::hex::to_image(&src[start..start + len], 0, MICROBIT_FLASH)
            .expect("uflash's runtime HEX reads")
    });
    need(&format!("uflash {version}'s runtime"), image)
}

/// The "one-function change" pair: two builds of `size/` (a minimal Cortex-M4 firmware
/// holding the fota decoder) that differ in one function, as flash images (the loadable
/// sections in address order, packed as a linker script for flash would place them).
pub fn one_function_change() -> Option<(Vec<u8>, Vec<u8>)> {
    let load = |v: &str| {
        let bytes = std::fs::read(testdata_dir().join(format!("onefn-{v}.elf"))).ok()?;
        Some(elf_image(&bytes))
    };
    let pair = load("a").zip(load("b"));
    need(
        "the one-function-change builds",
        pair.as_ref().map(|p| p.0.clone()),
    )?;
    pair
}

fn elf_image(elf: &[u8]) -> Vec<u8> {
    use object::{Object, ObjectSection, SectionKind};
    let file = object::File::parse(elf).expect("an ELF file");
    let mut sections: Vec<_> = file
        .sections()
        .filter(|s| {
            matches!(
                s.kind(),
                SectionKind::Text
                    | SectionKind::Data
                    | SectionKind::ReadOnlyData
                    | SectionKind::ReadOnlyString
            )
        })
        .collect();
    sections.sort_by_key(|s| s.address());
    sections
        .iter()
        .flat_map(|s| s.data().expect("section data").to_vec())
        .collect()
}
