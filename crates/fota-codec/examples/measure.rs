//! Measures the candidate codecs on real firmware, and esptool's method on the same image.
//!
//! ```sh
//! cargo run -p fota-codec --example measure --release                 # built-in cases
//! cargo run -p fota-codec --example measure --release -- NEW.hex [--from OLD.hex]
//! ```
//!
//! Files ending in `.hex` are read as Intel HEX (the main flash image), others as raw
//! binary. The built-in cases need the files testdata/fetch.sh fetches.
//!
//! What each column is:
//! - **sent**: bytes the codec's stream takes for the whole image, headers and block
//!   framing included (not the link's own framing, which the link efficiency covers);
//! - **ratio**: sent / image bytes;
//! - **x line rate**: image bytes delivered per line byte-time when the stream goes at the
//!   link efficiency `fota bench` measured for uncompressed streaming (97.2 %, its worst
//!   setting): 0.972 / ratio. esptool's method: its published wire efficiency (98 % of the
//!   line rate at 115200 baud, 74 % at 921600; esptool issues 255 and 256) / zlib level 9
//!   ratio of the same image;
//! - **decoder RAM**: what the device must hold to decode (window or model + state);
//! - **host decode**: the decoder's speed on this machine (MB/s of image), for comparing
//!   candidates with one another, not a device figure.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::time::Instant;

use fota_codec::encode::{self, Options};
use fota_codec::format::Props;

/// The link efficiency `fota bench` measured for uncompressed streaming, worst setting.
const LINK_EFFICIENCY: f64 = 0.972;
/// esptool's published wire efficiencies (issues 255 and 256).
const ESPTOOL_115200: f64 = 0.98;
const ESPTOOL_921600: f64 = 0.74;

struct Row {
    name: String,
    sent: usize,
    ram: String,
    decode_mbs: Option<f64>,
    note: &'static str,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        builtin();
        return;
    }
    let mut new = None;
    let mut old = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--from" => old = it.next().map(|p| load(p)),
            "-h" | "--help" => {
                println!("usage: measure [FILE [--from OLD_FILE]]");
                return;
            }
            p => new = Some(load(p)),
        }
    }
    let Some(new) = new else {
        eprintln!("error: no image given (usage: measure FILE [--from OLD_FILE])");
        std::process::exit(2);
    };
    full(&args[0], &new);
    if let Some(old) = old {
        delta("the given pair", &old, &new);
    }
}

fn load(path: &str) -> Vec<u8> {
    let result = if path.ends_with(".hex") || path.ends_with(".ihex") {
        std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| {
                fota_codec::hex::main_image(&t, 64 * 1024)
                    .map(|(_, image)| image)
                    .map_err(|e| e.to_string())
            })
    } else {
        std::fs::read(path).map_err(|e| e.to_string())
    };
    match result {
        Ok(image) if !image.is_empty() => image,
        Ok(_) => {
            eprintln!("error: {path} is empty");
            std::process::exit(1)
        }
        Err(e) => {
            eprintln!("error: cannot read {path}: {e}");
            std::process::exit(1)
        }
    }
}

fn builtin() {
    match common::debian_micropython() {
        Some(image) => full("MicroPython 1.0.1 for the micro:bit (Debian)", &image),
        None => eprintln!("(full-image case skipped)"),
    }
    let pairs = [
        (
            "1.2.3",
            "1.2.4",
            "MicroPython 1.0.0 -> 1.0.1 (uflash 1.2.3 -> 1.2.4)",
        ),
        (
            "1.2.2",
            "1.2.3",
            "MicroPython 1.0.0-rc.3 -> 1.0.0 (uflash 1.2.2 -> 1.2.3)",
        ),
    ];
    for (a, b, name) in pairs {
        if let (Some(old), Some(new)) = (common::uflash_runtime(a), common::uflash_runtime(b)) {
            delta(name, &old, &new);
        }
    }
    if let Some((old, new)) = common::one_function_change() {
        delta(
            "one-function change of a small Cortex-M4 program (size/, the fota decoder)",
            &old,
            &new,
        );
    }
}

fn ours(o: &Options) -> String {
    format!(
        "fota LZMA lc{} lp{} pb{}, {} KiB blocks",
        o.props.lc,
        o.props.lp,
        o.props.pb,
        o.block_size / 1024
    )
}

fn ram_ours() -> String {
    format!("{} B", fota_codec::DECODER_RAM)
}

/// Decodes a stream of ours several times; MB/s of image.
fn speed_ours(stream: &[u8], base: &[u8], image_len: usize) -> f64 {
    let slot = image_len as u32;
    let t = Instant::now();
    let mut n = 0;
    while n < 3 || t.elapsed().as_secs_f64() < 0.3 {
        let back = encode::decode(stream, base, slot).expect("own stream decodes");
        assert_eq!(back.len(), image_len);
        n += 1;
    }
    image_len as f64 * n as f64 / t.elapsed().as_secs_f64() / 1e6
}

fn timed<T>(mut f: impl FnMut() -> T, bytes: usize) -> f64 {
    let t = Instant::now();
    let mut n = 0;
    while n < 3 || t.elapsed().as_secs_f64() < 0.3 {
        std::hint::black_box(f());
        n += 1;
    }
    bytes as f64 * n as f64 / t.elapsed().as_secs_f64() / 1e6
}

fn full(name: &str, image: &[u8]) {
    println!("\n### Full image: {name}, {} bytes\n", image.len());
    let zlib = miniz_oxide::deflate::compress_to_vec_zlib(image, 9);
    let mut rows = vec![Row {
        name: "zlib level 9 (esptool's method), 32 KiB window".into(),
        sent: zlib.len(),
        ram: format!(
            "{} B (32 KiB window + {} B state)",
            32 * 1024 + std::mem::size_of::<miniz_oxide::inflate::core::DecompressorOxide>(),
            std::mem::size_of::<miniz_oxide::inflate::core::DecompressorOxide>()
        ),
        decode_mbs: Some(timed(
            || miniz_oxide::inflate::decompress_to_vec_zlib(&zlib).unwrap(),
            image.len(),
        )),
        note: "window too large for 16 KiB",
    }];
    for (w, l) in [(8u8, 4u8), (10, 4), (12, 5)] {
        let cfg = heatshrink::Config::new(w, l).unwrap();
        let mut out = vec![0u8; image.len() * 2 + 64];
        let Ok(coded) = heatshrink::encode(image, &mut out, &cfg) else {
            continue;
        };
        let coded = coded.to_vec();
        let mut back = vec![0u8; image.len()];
        let speed = timed(
            || {
                heatshrink::decode(&coded, &mut back, &cfg)
                    .map(|b| b.len())
                    .unwrap_or(0)
            },
            image.len(),
        );
        rows.push(Row {
            name: format!("heatshrink window 2^{w}, lookahead 2^{l}"),
            sent: coded.len(),
            ram: format!("{} B (window + lookahead)", (1usize << w) + (1 << l)),
            decode_mbs: Some(speed),
            note: "",
        });
    }
    let lz4 = lz4_flex::block::compress(image);
    rows.push(Row {
        name: "LZ4 block, whole image (64 KiB window)".into(),
        sent: lz4.len(),
        ram: "64 KiB window, or the flash".into(),
        decode_mbs: Some(timed(
            || lz4_flex::block::decompress(&lz4, image.len()).unwrap(),
            image.len(),
        )),
        note: "",
    });
    let lz4_blocks: usize = image
        .chunks(16 * 1024)
        .enumerate()
        .map(|(i, c)| {
            let dict = &image[(i * 16 * 1024).saturating_sub(65535)..i * 16 * 1024];
            lz4_flex::block::compress_with_dict(c, dict).len() + 13
        })
        .sum();
    rows.push(Row {
        name: "LZ4, 16 KiB blocks, window in flash".into(),
        sent: lz4_blocks + 20,
        ram: "a few hundred B".into(),
        decode_mbs: None,
        note: "",
    });
    let mut chosen = 0;
    for props in [
        Props {
            lc: 0,
            lp: 0,
            pb: 0,
        },
        Props {
            lc: 1,
            lp: 0,
            pb: 0,
        },
        Props {
            lc: 0,
            lp: 1,
            pb: 1,
        },
        Props {
            lc: 0,
            lp: 0,
            pb: 2,
        },
    ] {
        for block_size in [4096, 16 * 1024, 64 * 1024] {
            let o = Options {
                block_size,
                props,
                ..Options::default()
            };
            let t = Instant::now();
            let s = encode::compress(image, &o).expect("encodes");
            let enc_s = t.elapsed().as_secs_f64();
            let bytes = s.to_bytes();
            let is_default = o == Options::default();
            if is_default {
                chosen = rows.len();
            }
            rows.push(Row {
                name: format!("{}{}", ours(&o), if is_default { " (default)" } else { "" }),
                sent: bytes.len(),
                ram: ram_ours(),
                decode_mbs: is_default.then(|| speed_ours(&bytes, &[], image.len())),
                note: if is_default { "chosen" } else { "" },
            });
            if is_default {
                eprintln!("(encoding took {enc_s:.2} s on this machine)");
            }
        }
    }
    // The same codec with one block (no resume granularity): what blocks cost.
    let one = Options {
        block_size: 64 * 1024,
        ..Options::default()
    };
    let whole = lzma_whole(image, one.props);
    rows.push(Row {
        name: "LZMA lc0 lp1 pb1, one stream, dictionary = whole image".into(),
        sent: whole,
        ram: "image-sized dictionary in RAM, or ours".into(),
        decode_mbs: None,
        note: "no resume",
    });
    print_rows(image.len(), &rows, Some(zlib.len()));
    let r = rows[chosen].sent as f64 / image.len() as f64;
    let rz = zlib.len() as f64 / image.len() as f64;
    println!(
        "\nChosen codec: {:.3} of the image, {:.2}x the line rate at either speed; esptool's method: \
         {:.2}x at 115200, {:.2}x at 921600 (zlib 9 ratio {:.3}).",
        r,
        LINK_EFFICIENCY / r,
        ESPTOOL_115200 / rz,
        ESPTOOL_921600 / rz,
        rz
    );
}

fn lzma_whole(image: &[u8], p: Props) -> usize {
    let mut o = lzma_rust2::LzmaOptions::with_preset(9);
    o.lc = p.lc.into();
    o.lp = p.lp.into();
    o.pb = p.pb.into();
    o.nice_len = 273;
    o.dict_size = (image.len() as u32).max(4096);
    let mut w = lzma_rust2::LzmaWriter::new(Vec::new(), &o, false, false, Some(image.len() as u64))
        .unwrap();
    w.write_all(image).unwrap();
    w.finish().unwrap().len() + 20 + 13
}

fn delta(name: &str, old: &[u8], new: &[u8]) {
    println!(
        "\n### Delta: {name}, {} -> {} bytes\n",
        old.len(),
        new.len()
    );
    let zlib = miniz_oxide::deflate::compress_to_vec_zlib(new, 9);
    let mut rows = Vec::new();
    let mut patch = Vec::new();
    qbsdiff::Bsdiff::new(old, new)
        .compare(&mut patch)
        .expect("bsdiff");
    rows.push(Row {
        name: "bsdiff 4 (qbsdiff, bzip2)".into(),
        sent: patch.len(),
        ram: "bzip2: 100s of KiB".into(),
        decode_mbs: None,
        note: "does not fit",
    });
    if let Some(sections) = bsdiff_sections(&patch) {
        let lz: usize = sections
            .iter()
            .map(|s| {
                lzma_whole(
                    s,
                    Props {
                        lc: 0,
                        lp: 0,
                        pb: 0,
                    },
                )
            })
            .sum();
        rows.push(Row {
            name: "bsdiff 4 sections, each LZMA-compressed".into(),
            sent: lz,
            ram: "3 LZMA models + 3 windows in RAM".into(),
            decode_mbs: None,
            note: "",
        });
    }
    rows.push(Row {
        name: "zlib level 9 of the new image (no delta)".into(),
        sent: zlib.len(),
        ram: "32 KiB window + state".into(),
        decode_mbs: None,
        note: "reference",
    });
    let full = encode::compress(new, &Options::default())
        .expect("encodes")
        .len();
    rows.push(Row {
        name: format!("{}, full image (no delta)", ours(&Options::default())),
        sent: full,
        ram: ram_ours(),
        decode_mbs: None,
        note: "reference",
    });
    for block_size in [4096, 16 * 1024, 64 * 1024] {
        for props in [
            Props {
                lc: 0,
                lp: 1,
                pb: 1,
            },
            Props {
                lc: 0,
                lp: 0,
                pb: 0,
            },
        ] {
            let o = Options {
                block_size,
                props,
                ..Options::default()
            };
            let t = Instant::now();
            let s = encode::delta(old, new, &o).expect("encodes");
            let enc_s = t.elapsed().as_secs_f64();
            let bytes = s.to_bytes();
            let is_default = o == Options::default();
            rows.push(Row {
                name: format!(
                    "{} delta{}",
                    ours(&o),
                    if is_default { " (default)" } else { "" }
                ),
                sent: bytes.len(),
                ram: ram_ours(),
                decode_mbs: is_default.then(|| speed_ours(&bytes, old, new.len())),
                note: if is_default { "chosen" } else { "" },
            });
            if is_default {
                eprintln!("(delta encoding took {enc_s:.2} s on this machine)");
            }
        }
    }
    print_rows(new.len(), &rows, None);
}

/// The three uncompressed sections of a BSDIFF40 patch: control, diff, extra.
fn bsdiff_sections(patch: &[u8]) -> Option<[Vec<u8>; 3]> {
    if patch.get(..8)? != b"BSDIFF40" {
        return None;
    }
    let num = |i: usize| -> Option<usize> {
        let b: [u8; 8] = patch.get(8 + 8 * i..16 + 8 * i)?.try_into().ok()?;
        usize::try_from(i64::from_le_bytes(b)).ok()
    };
    let (ctrl, diff) = (num(0)?, num(1)?);
    let parts = [
        patch.get(32..32 + ctrl)?,
        patch.get(32 + ctrl..32 + ctrl + diff)?,
        patch.get(32 + ctrl + diff..)?,
    ];
    let mut out: [Vec<u8>; 3] = Default::default();
    for (o, p) in out.iter_mut().zip(parts) {
        bzip2::read::BzDecoder::new(p).read_to_end(o).ok()?;
    }
    Some(out)
}

fn print_rows(image_len: usize, rows: &[Row], zlib: Option<usize>) {
    if let Some(z) = zlib {
        let rz = z as f64 / image_len as f64;
        println!(
            "esptool's method on this image: zlib 9 ratio {rz:.3}; {:.2}x the line rate at 115200 \
             (98 % wire efficiency), {:.2}x at 921600 (74 %).\n",
            ESPTOOL_115200 / rz,
            ESPTOOL_921600 / rz
        );
    }
    println!(
        "| codec | sent (B) | ratio | x line rate | x faster than uncompressed | decoder RAM | host decode | note |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in rows {
        let ratio = r.sent as f64 / image_len as f64;
        println!(
            "| {} | {} | {:.3} | {:.2} | {:.1} | {} | {} | {} |",
            r.name,
            r.sent,
            ratio,
            LINK_EFFICIENCY / ratio,
            1.0 / ratio,
            r.ram,
            r.decode_mbs.map_or("".into(), |m| format!("{m:.0} MB/s")),
            r.note
        );
    }
}
