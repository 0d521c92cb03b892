//! `fota image keygen | pack | sign | inspect | verify`, run as a user would.

use std::path::Path;
use std::process::{Command, Output};

use fota_image::host::{Segment, uf2};

mod support;
use support::{FOTA, text};

const MICROBIT_HEX: &str = "/usr/share/firmware-microbit-micropython/firmware.hex";
const LAYOUT: &str = "vm0@0x0:64K,bc0@0x10000:256K,vm1@0x50000:64K,bc1@0x60000:256K";

fn fota(dir: &Path, args: &[&str]) -> Output {
    Command::new(FOTA)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("fota runs")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = fota(dir, args);
    assert!(o.status.success(), "fota {args:?} failed:\n{}", text(&o));
    text(&o)
}

fn fails(dir: &Path, args: &[&str]) -> String {
    let o = fota(dir, args);
    assert_eq!(
        o.status.code(),
        Some(1),
        "fota {args:?} should fail:\n{}",
        text(&o)
    );
    text(&o)
}

/// A VM firmware for VM slot 1 as Intel HEX: vector table, then code-like bytes.
fn vm1_hex() -> String {
    let mut data: Vec<u8> = (0..6000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    data[..4].copy_from_slice(&0x2000_8000u32.to_le_bytes());
    data[4..8].copy_from_slice(&0x0005_0101u32.to_le_bytes());
    let mut out = String::from(":020000040005F5\n");
    for (i, chunk) in data.chunks(16).enumerate() {
        let off = (i * 16) as u16;
        let mut rec = vec![chunk.len() as u8, (off >> 8) as u8, off as u8, 0];
        rec.extend_from_slice(chunk);
        let sum = rec.iter().fold(0u8, |a, b| a.wrapping_add(*b));
        rec.push(sum.wrapping_neg());
        out.push(':');
        out.extend(rec.iter().map(|b| format!("{b:02X}")));
        out.push('\n');
    }
    out.push_str(":00000001FF\n");
    out
}

#[test]
fn keygen_pack_sign_inspect_verify() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("app.hex"), vm1_hex()).unwrap();

    let out = ok(d, &["image", "keygen", "-o", "release.pem"]);
    assert!(out.contains("key id"), "{out}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join("release.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "the private key is readable by its owner only"
        );
    }
    // Never overwrites a key.
    let err = fails(d, &["image", "keygen", "-o", "release.pem"]);
    assert!(err.contains("exists already"), "{err}");
    ok(d, &["image", "keygen", "-o", "other.pem"]);
    // The key files are OpenSSL's: its public key of our private key is our public file.
    match Command::new("openssl")
        .args(["pkey", "-in", "release.pem", "-pubout"])
        .current_dir(d)
        .output()
    {
        Ok(o) if o.status.success() => assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            std::fs::read_to_string(d.join("release.pem.pub.pem")).unwrap()
        ),
        _ => eprintln!("openssl is not installed: the key format check against it is skipped"),
    }

    // Pack: the HEX selects VM slot 1 of the layout.
    let out = ok(
        d,
        &[
            "image",
            "pack",
            "app.hex",
            "--layout",
            LAYOUT,
            "--version",
            "1.4.0",
            "--key",
            "release.pem",
            "-o",
            "app.img",
        ],
    );
    assert!(
        out.contains("VM image \"app\" 1.4.0 for VM slot 1 (0x00050000..0x00060000)"),
        "{out}"
    );
    assert!(out.contains("signed by key"), "{out}");

    let out = ok(
        d,
        &[
            "image",
            "inspect",
            "app.img",
            "--key",
            "release.pem.pub.pem",
        ],
    );
    assert!(out.contains("version     1.4.0"), "{out}");
    assert!(out.contains("(matches)"), "{out}");
    assert!(out.contains(": verified"), "{out}");

    let trusted = ["--key", "release.pem.pub.pem"];
    let out = ok(
        d,
        &[
            &[
                "image",
                "verify",
                "app.img",
                "--layout",
                LAYOUT,
                "--require-signature",
            ][..],
            &trusted,
        ]
        .concat(),
    );
    assert!(
        out.contains("verified: VM \"app\" 1.4.0 for VM slot 1"),
        "{out}"
    );

    // Only the other key is trusted: refused, with what to do.
    let err = fails(
        d,
        &[
            "image",
            "verify",
            "app.img",
            "--layout",
            LAYOUT,
            "--require-signature",
            "--key",
            "other.pem.pub.pem",
        ],
    );
    assert!(err.contains("which this device does not trust"), "{err}");
    assert!(
        err.contains("help: Sign the image with a key the device trusts"),
        "{err}"
    );
    // Signed by the other key too: then it verifies with either.
    let out = ok(d, &["image", "sign", "app.img", "--key", "other.pem"]);
    assert!(out.contains("signed by key"), "{out}");
    let out = ok(d, &["image", "sign", "app.img", "--key", "other.pem"]);
    assert!(out.contains("nothing changed"), "{out}");
    ok(
        d,
        &[
            "image",
            "verify",
            "app.img",
            "--layout",
            LAYOUT,
            "--require-signature",
            "--key",
            "other.pem.pub.pem",
        ],
    );
    // A downgrade, another slot.
    let err = fails(
        d,
        &[
            &["image", "verify", "app.img", "--min-version", "2.0"][..],
            &trusted,
        ]
        .concat(),
    );
    assert!(err.contains("version 1.4.0 is older than 2.0.0"), "{err}");
    let err = fails(
        d,
        &[
            "image", "verify", "app.img", "--layout", LAYOUT, "--slot", "vm0",
        ],
    );
    assert!(
        err.contains("linked for the slot at 0x00050000, not the one at 0x00000000"),
        "{err}"
    );

    // A damaged copy.
    let mut bytes = std::fs::read(d.join("app.img")).unwrap();
    bytes[3000] ^= 0x40;
    std::fs::write(d.join("damaged.img"), &bytes).unwrap();
    let err = fails(d, &["image", "verify", "damaged.img"]);
    assert!(err.contains("SHA-256 does not match"), "{err}");

    // JSON for scripts.
    let out = ok(d, &["--json", "image", "inspect", "app.img"]);
    let v: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(v["image"]["version"], "1.4.0");
    assert_eq!(v["image"]["signatures"].as_array().unwrap().len(), 2);
}

#[test]
fn the_other_input_formats_and_a_wrong_slot() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A bytecode for bytecode slot 0, as UF2 with an RP2040 family id.
    let code: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
    let file = uf2::write(
        &[Segment {
            addr: 0x10000,
            data: code,
        }],
        Some(0xe48bff56),
    );
    std::fs::write(d.join("app.uf2"), &file).unwrap();
    let out = ok(
        d,
        &[
            "image",
            "pack",
            "app.uf2",
            "--layout",
            LAYOUT,
            "--version",
            "2",
            "-o",
            "bc.img",
        ],
    );
    assert!(
        out.contains("bytecode image \"app\" 2.0.0 for bytecode slot 0"),
        "{out}"
    );
    let err = fails(
        d,
        &[
            "image",
            "pack",
            "app.uf2",
            "--layout",
            LAYOUT,
            "--version",
            "2",
            "--uf2-family",
            "STM32F4",
            "-o",
            "x.img",
        ],
    );
    assert!(
        err.contains("is a UF2 for family 0xe48bff56 (RP2040), not 0x57755a57 (STM32F4)"),
        "{err}"
    );
    // Asked for bytecode slot 1: it is linked for slot 0.
    let err = fails(
        d,
        &[
            "image",
            "pack",
            "app.uf2",
            "--layout",
            LAYOUT,
            "--slot",
            "bc1",
            "--version",
            "2",
            "-o",
            "x.img",
        ],
    );
    assert!(err.contains("is linked for bytecode slot 0"), "{err}");
    assert!(err.contains("help:"), "{err}");
    // A raw binary keeps the automatic choice: packed for any bytecode slot.
    std::fs::write(d.join("app.bin"), vec![0x5Au8; 5000]).unwrap();
    let out = ok(
        d,
        &[
            "image",
            "pack",
            "app.bin",
            "--version",
            "1",
            "-o",
            "raw.img",
        ],
    );
    assert!(out.contains("for any bytecode slot"), "{out}");
    ok(d, &["image", "verify", "raw.img", "--layout", "bytecode"]);
    // A text file gets a warning that says why.
    std::fs::write(d.join("notes.bin"), "Changes in 2.0:\n- faster blink\n").unwrap();
    let out = ok(d, &["image", "inspect", "notes.bin"]);
    assert!(
        out.contains("warning: this looks like a text file"),
        "{out}"
    );
}

#[test]
fn the_microbit_micropython_hex_as_a_user_sees_it() {
    if !Path::new(MICROBIT_HEX).exists() {
        eprintln!(
            "SKIPPED: {MICROBIT_HEX} is missing; install Debian's firmware-microbit-micropython (.ci/tools.sh does)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = ok(d, &["image", "inspect", MICROBIT_HEX]);
    assert!(out.contains("Intel HEX, 15243 data records"), "{out}");
    assert!(
        out.contains("0x00000000..0x0003b88c  243852 bytes (238.1 KiB)"),
        "{out}"
    );
    assert!(out.contains("raw firmware, not packed"), "{out}");
    let err = fails(
        d,
        &[
            "image",
            "pack",
            MICROBIT_HEX,
            "--layout",
            "vm0@0x0:256K",
            "--version",
            "1.0",
            "-o",
            "mp.img",
        ],
    );
    assert!(
        err.contains("has data at 0x100010c0..0x100010dc, outside every slot"),
        "{err}"
    );
    assert!(err.contains("--drop-outside"), "{err}");
    let out = ok(
        d,
        &[
            "image",
            "pack",
            MICROBIT_HEX,
            "--layout",
            "vm0@0x0:256K",
            "--drop-outside",
            "--version",
            "1.0",
            "--name",
            "micropython",
            "-o",
            "mp.img",
        ],
    );
    assert!(out.contains("left out 28 bytes"), "{out}");
    assert!(
        out.contains("VM image \"micropython\" 1.0.0 for VM slot 0"),
        "{out}"
    );
    ok(
        d,
        &["image", "verify", "mp.img", "--layout", "vm0@0x0:256K"],
    );
}
