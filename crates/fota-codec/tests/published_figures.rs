//! The figures docs/CODECS.md publishes for the chosen codec are what the code produces
//! now: change the encoder or its defaults, and this fails until the document follows
//! (`cargo run -p fota-codec --example measure --release` prints every table).

mod common;

use fota_codec::encode::{self, DEFAULT_OPTIONS};

fn doc() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/CODECS.md"))
        .expect("docs/CODECS.md")
}

/// 145315 -> "145,315".
fn grouped(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn assert_published(what: &str, n: usize) {
    let text = grouped(n);
    assert!(
        doc().contains(&format!("**{text}")),
        "docs/CODECS.md should give {what} as **{text}**"
    );
}

#[test]
fn decoder_ram() {
    assert!(doc().contains(&format!("**{} B**", grouped(fota_codec::DECODER_RAM))));
}

#[test]
fn full_image() {
    let Some(image) = common::debian_micropython() else {
        return;
    };
    assert_published(
        "the full micro:bit image",
        encode::compress(&image, &DEFAULT_OPTIONS).unwrap().len(),
    );
}

#[test]
fn consecutive_releases() {
    for (a, b) in [("1.2.3", "1.2.4"), ("1.2.2", "1.2.3")] {
        let (Some(old), Some(new)) = (common::uflash_runtime(a), common::uflash_runtime(b)) else {
            return;
        };
        let n = encode::delta(&old, &new, &DEFAULT_OPTIONS).unwrap().len();
        assert_published(&format!("the delta uflash {a} -> {b}"), n);
    }
}

#[test]
fn one_function_change() {
    let Some((old, new)) = common::one_function_change() else {
        return;
    };
    let n = encode::delta(&old, &new, &DEFAULT_OPTIONS).unwrap().len();
    assert_published("the one-function change", n);
}
