//! The agent's code size, part by part, from the firmware built for QEMU's Cortex-M4
//! (release: opt-level "s", LTO, one codegen unit). `agent-size` is the agent alone
//! (boot decision, link, flash driver, UART; no VM role, no bytecode interpreter).
//!
//! Each byte of `.text` is given to the crate whose source its line-table row names, so
//! code inlined into another function still counts for the crate it came from; `.rodata`
//! goes by symbol (the CRC table, say). The budget is in docs/PORTING.md ("Code size");
//! the test prints the table and fails above it.
//!
//! `FOTA_SIZE_ELF=path` measures another ELF instead (printed only).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use object::{Object, ObjectSection, ObjectSymbol};

mod support;

/// Build the QEMU board's binaries (cargo does nothing when they are up to date).
fn build() -> PathBuf {
    support::firmware(&[], "target")
}

/// Which part a source file (and line) belongs to.
fn part(path: &str, line: u64) -> &'static str {
    let has = |s: &str| path.contains(s);
    if has("fota-codec/") || has("fota-agent/src/stream.rs") {
        "codec"
    } else if has("fota-agent/") {
        "agent"
    } else if has("fota-protocol/") {
        "protocol"
    } else if has("/md-5-") || has("/digest-") || has("/block-buffer-") {
        "MD5"
    } else if has("/cobs-") {
        "COBS"
    } else if has("/crc-") {
        "CRC"
    } else if has("/heapless-") {
        "heapless"
    } else if has("boards/mps2-an386/src/board/flash.rs") && line > 0 {
        // Rows without a source line (line 0) count for the board, as they did when the
        // board was one file and the flash driver a range of its lines.
        "flash driver"
    } else if has("boards/mps2-an386/src/board/") {
        "board: UART, clock, watchdog"
    } else if has("mps2-an386/src/bin/") || has("fota-firmware/src/link.rs") {
        "main-loop glue"
    } else if has("fota-firmware/") || has("fota-bytecode/") {
        "VM and bytecode"
    } else if has("/cortex-m") {
        "cortex-m runtime"
    } else if has("compiler_builtins") || has("compiler-builtins") {
        "compiler builtins"
    } else {
        CORE
    }
}

/// core's code, where no other part inlined it (a function of its own).
const CORE: &str = "core";

/// The parts of a crate named by a mangled symbol (legacy mangling: `_ZN` + segments).
fn symbol_part(name: &str) -> &'static str {
    let first = name
        .strip_prefix("_ZN")
        .and_then(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let n: usize = digits.parse().ok()?;
            rest.get(digits.len()..digits.len() + n)
        })
        .unwrap_or(name);
    let first = first.trim_start_matches("_$LT$");
    let krate = first.split("..").next().unwrap_or(first);
    match krate {
        // The CRC table is a static of the protocol crate.
        "fota_protocol" if name.contains("CRC32") => "CRC",
        "fota_codec" => "codec",
        "fota_agent" => "agent",
        "fota_protocol" => "protocol",
        "md5" | "digest" | "block_buffer" => "MD5",
        "cobs" => "COBS",
        "crc" | "crc_catalog" => "CRC",
        "heapless" => "heapless",
        "fota_firmware" | "fota_bytecode" => "VM and bytecode",
        "cortex_m_rt" | "cortex_m" => "cortex-m runtime",
        "__INTERRUPTS" | "__RESET_VECTOR" | "__EXCEPTIONS" => "cortex-m runtime",
        k if k.starts_with("agent_size") || k.starts_with("vm_") => "board: UART, clock, watchdog",
        _ => "constants (unattributed)",
    }
}

/// Bytes of `.text` by part (line tables) and of `.rodata` by part (symbols).
fn measure(elf: &Path) -> BTreeMap<&'static str, u64> {
    let bytes = std::fs::read(elf).expect("read the ELF");
    let file = object::File::parse(&*bytes).expect("an ELF");
    let text = file.section_by_name(".text").expect(".text");
    let (text_start, text_end) = (text.address(), text.address() + text.size());
    let load = |id: gimli::SectionId| -> Result<gimli::EndianSlice<'_, gimli::LittleEndian>, gimli::Error> {
        let data = file
            .section_by_name(id.name())
            .and_then(|s| s.data().ok())
            .unwrap_or(&[]);
        Ok(gimli::EndianSlice::new(data, gimli::LittleEndian))
    };
    let dwarf = gimli::Dwarf::load(load).expect("DWARF");
    // (start, end, part) for every row of every line program.
    let mut ranges: Vec<(u64, u64, &'static str)> = Vec::new();
    let mut units = dwarf.units();
    while let Ok(Some(header)) = units.next() {
        let Ok(unit) = dwarf.unit(header) else {
            continue;
        };
        let Some(program) = unit.line_program.clone() else {
            continue;
        };
        let mut rows = program.rows();
        let mut prev: Option<(u64, &'static str)> = None;
        let mut carry: Option<&'static str> = None;
        while let Ok(Some((header, row))) = rows.next_row() {
            let addr = row.address();
            if let Some((start, p)) = prev.take()
                && addr > start
            {
                ranges.push((start, addr, p));
            }
            if row.end_sequence() {
                carry = None;
                continue;
            }
            let path = row
                .file(header)
                .map(|f| {
                    let mut p = String::new();
                    if let Some(dir) = f.directory(header)
                        && let Ok(d) = dwarf.attr_string(&unit, dir)
                    {
                        let d = d.to_string_lossy();
                        // A relative directory is relative to the unit's crate.
                        if !d.starts_with('/')
                            && let Some(comp) = unit.comp_dir
                        {
                            p.push_str(&comp.to_string_lossy());
                            p.push('/');
                        }
                        p.push_str(&d);
                        p.push('/');
                    }
                    if let Ok(n) = dwarf.attr_string(&unit, f.path_name()) {
                        p.push_str(&n.to_string_lossy());
                    }
                    // Each binary includes the board as `#[path = "../board/mod.rs"]`.
                    p.replace("/bin/../", "/")
                })
                .unwrap_or_default();
            let line = row.line().map_or(0, |l| l.get());
            if std::env::var_os("FOTA_SIZE_PATHS").is_some() {
                eprintln!("{addr:#x} {path}:{line}");
            }
            // core's generic code (iterators, integer and slice methods) inlined into a
            // function is that function's code: it goes to the part before it.
            let mut p = part(&path, line);
            if p == CORE {
                p = carry.unwrap_or(CORE);
            } else {
                carry = Some(p);
            }
            prev = Some((addr, p));
        }
    }
    ranges.sort_by_key(|r| r.0);
    let mut parts: BTreeMap<&'static str, u64> = BTreeMap::new();
    // Walk .text once: covered bytes by their rows, the rest unattributed.
    let mut at = text_start;
    for (start, end, p) in ranges {
        let (start, end) = (start.max(at), end.min(text_end));
        if start >= end {
            continue;
        }
        if start > at {
            *parts.entry("no line info (builtins, padding)").or_default() += start - at;
        }
        *parts.entry(p).or_default() += end - start;
        at = end;
    }
    if at < text_end {
        *parts.entry("no line info (builtins, padding)").or_default() += text_end - at;
    }
    // Read-only data and the vector table, by symbol.
    for sym in file.symbols() {
        let Some(index) = sym.section_index() else {
            continue;
        };
        let Ok(section) = file.section_by_index(index) else {
            continue;
        };
        let name = section.name().unwrap_or("");
        // Initialised data is in flash too (its first value).
        if matches!(name, ".rodata" | ".vector_table" | ".data") && sym.size() > 0 {
            *parts
                .entry(symbol_part(sym.name().unwrap_or("")))
                .or_default() += sym.size();
        }
    }
    parts
}

/// The agent's own parts: what the 16 KB target counts.
const AGENT_PARTS: [&str; 7] = [
    "agent",
    "protocol",
    "MD5",
    "COBS",
    "CRC",
    "heapless",
    "flash driver",
];

fn print(parts: &BTreeMap<&'static str, u64>) -> u64 {
    let total: u64 = parts.values().sum();
    let mut rows: Vec<_> = parts.iter().collect();
    rows.sort_by_key(|(_, v)| std::cmp::Reverse(**v));
    for (k, v) in rows {
        println!("| {k} | {v} |");
    }
    let agent: u64 = AGENT_PARTS.iter().filter_map(|p| parts.get(p)).sum();
    println!("| agent with protocol, MD5, COBS, CRC and flash driver | {agent} |");
    println!("| everything in flash (.text, .rodata, vectors, .data) | {total} |");
    agent
}

/// The budget line of docs/PORTING.md: "| budget | N |" in the code-size section.
fn budget() -> u64 {
    let doc = include_str!("../../../docs/PORTING.md");
    let section = doc
        .split("\n## Code size")
        .nth(1)
        .expect("docs/PORTING.md has a Code size section");
    section
        .lines()
        .find_map(|l| {
            let l = l.strip_prefix(
                "| budget: agent with protocol, MD5, COBS, CRC and flash driver | ",
            )?;
            l.trim_end_matches(" |").replace(',', "").parse().ok()
        })
        .expect("a budget row")
}

#[test]
fn the_agent_fits_its_code_budget() {
    if let Some(elf) = std::env::var_os("FOTA_SIZE_ELF") {
        print(&measure(Path::new(&elf)));
        return;
    }
    let dir = build();
    let parts = measure(&dir.join("agent-size"));
    println!("agent-size (the agent alone), bytes:");
    let agent = print(&parts);
    let limit = budget();
    assert!(
        agent <= limit,
        "the agent's code grew to {agent} bytes, over the {limit}-byte budget"
    );
    // Nothing the agent keeps starts non-zero: its link state is .bss, not a copy in
    // flash (a state that is not all zeros when new would cost 1.7 KB of flash here).
    let bytes = std::fs::read(dir.join("agent-size")).expect("ELF");
    let elf = object::File::parse(&*bytes).expect("ELF");
    let data = elf.section_by_name(".data").map_or(0, |s| s.size());
    assert_eq!(data, 0, "initialised data in the agent's image");
    // Each part is there: a misattribution would make the budget meaningless.
    for p in AGENT_PARTS {
        assert!(parts.get(p).is_some_and(|&v| v > 0), "no bytes for {p}");
    }
    println!("vm-bytecode-slot0 (the whole VM), bytes:");
    print(&measure(&dir.join("vm-bytecode-slot0")));
}

/// The decoder's code (`fota-codec` and the agent's `stream.rs`) in the agent-size image
/// built with the `codec` feature, and what the feature adds to the whole image: within
/// the budget row "| budget: decoder (codec feature) | N |" of docs/PORTING.md.
#[test]
fn the_decoder_fits_its_code_budget() {
    let plain = measure(&build().join("agent-size"));
    let codec = measure(&support::firmware(&["codec"], "target-codec").join("agent-size"));
    println!("agent-size with the codec feature, bytes:");
    print(&codec);
    let decoder = codec.get("codec").copied().unwrap_or(0);
    let growth = codec.values().sum::<u64>() as i64 - plain.values().sum::<u64>() as i64;
    println!("| decoder (fota-codec and stream.rs) | {decoder} |");
    println!("| whole image growth with the codec feature | {growth} |");
    assert_eq!(
        plain.get("codec"),
        None,
        "decoder code in the build without it"
    );
    // A misattribution would make the budget meaningless: the decoder is most of it.
    assert!(
        decoder > 0 && decoder as i64 * 2 > growth,
        "decoder {decoder} B of a {growth} B growth"
    );
    let doc = include_str!("../../../docs/PORTING.md");
    let limit: i64 = doc
        .lines()
        .find_map(|l| {
            let l = l.strip_prefix("| budget: decoder (codec feature) | ")?;
            l.trim_end_matches(" |").replace(',', "").parse().ok()
        })
        .expect("docs/PORTING.md has a decoder budget row");
    assert!(
        growth <= limit,
        "the codec feature adds {growth} bytes, over the {limit}-byte budget"
    );
}

/// A `usize` constant `const NAME: usize = N;` in `fota bench`'s source.
fn bench_constant(name: &str) -> u64 {
    let src = include_str!("../src/bench/mod.rs");
    src.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("const {name}: usize = ")))
        .and_then(|r| r.trim_end_matches(';').replace('_', "").parse().ok())
        .unwrap_or_else(|| panic!("fota bench lacks `const {name}: usize`"))
}

/// The agent's RAM on the Cortex-M4, read from the agent-size ELF (thumbv7em, release):
/// its `.bss` (the UART receive ring, the link state, the board's counters; nothing in
/// `.data`) and the agent itself, kept in `main`'s frame, whose size the build computes
/// for this target (`AGENT_BYTES`). `fota bench` publishes these two figures; they must
/// be what the build gives.
#[test]
fn the_agent_ram_on_thumbv7em_is_what_the_benchmark_publishes() {
    let dir = build();
    let bytes = std::fs::read(dir.join("agent-size")).expect("ELF");
    let elf = object::File::parse(&*bytes).expect("ELF");
    let size = |name: &str| elf.section_by_name(name).map_or(0, |s| s.size());
    let bss = size(".bss") + size(".uninit") + size(".data");
    let sym = |part: &str| {
        elf.symbols()
            .find(|s| s.name().is_ok_and(|n| n.contains(part)))
            .unwrap_or_else(|| panic!("no symbol {part} in agent-size"))
    };
    let ring = sym("5board4uart2RX17h").size();
    let link_state = sym("5board10LINK_STATE").size();
    let agent_sym = sym("AGENT_BYTES");
    let agent = elf
        .sections()
        .find_map(|s| {
            let (start, len) = (s.address(), s.size());
            let at = agent_sym.address();
            (at >= start && at + 4 <= start + len)
                .then(|| s.data().ok())
                .flatten()
                .and_then(|d| d.get((at - start) as usize..(at - start) as usize + 4))
                .map(|b| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
        })
        .expect("AGENT_BYTES's value");
    println!(
        "agent RAM on thumbv7em: .bss {bss} B (receive ring {ring} B, link state {link_state} B, \
         board {} B) + the agent in main's frame {agent} B = {} B",
        bss - ring - link_state,
        bss + agent
    );
    assert_eq!(
        ring,
        fota_agent::rx_queue_bytes(5) as u64,
        "the ring holds the window (Info tag 8)"
    );
    assert!(link_state > 0 && agent > 0);
    assert_eq!(
        (bss, agent),
        (
            bench_constant("THUMBV7EM_BSS"),
            bench_constant("THUMBV7EM_AGENT")
        ),
        "fota bench publishes other figures: put these in crates/fota-cli/src/bench/mod.rs \
         and the README"
    );
}
