//! `fota image`: make, sign, inspect and check firmware images from the files builds
//! produce (raw binaries, Intel HEX, ELF, UF2). No device is needed.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use fota_host::protocol::SlotKind;
use fota_image::host::{
    self, Arch, Firmware, Layout, PackOptions, Placed, PublicKey, ReadOptions, SigningKey,
    human_size,
};
use fota_image::{ANY_SLOT, Kind, Policy, Slot, TrustedKey, Version};
use serde_json::json;

use crate::render::json_line;
use fota_host::Problem;

#[derive(Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum KindArg {
    /// A VM: native code that starts with its vector table.
    Vm,
    /// Bytecode run by a VM.
    Bytecode,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ArchArg {
    /// 32-bit ARM (Cortex-M).
    Arm,
    /// 32-bit RISC-V.
    Riscv32,
    /// Xtensa (ESP32).
    Xtensa,
    /// Do not check.
    Any,
}

/// How to read the input file and where it goes.
#[derive(Args)]
struct InputArgs {
    /// The device's slots: `bytecode` or `vm` (the layouts of `fota sim`), or a list
    /// like vm0@0x0:64K,bc0@0x10000:256K. A HEX, ELF or UF2 file selects the slot its
    /// addresses are in.
    #[arg(long)]
    layout: Option<String>,
    /// The processor ELF files must be built for.
    #[arg(long, value_enum, default_value = "arm")]
    arch: ArchArg,
    /// The UF2 family id of the device (a number, or RP2040, STM32F4, nRF52840...).
    #[arg(long)]
    uf2_family: Option<String>,
    /// Leave out data outside every slot (configuration registers, option bytes)
    /// instead of refusing the file.
    #[arg(long)]
    drop_outside: bool,
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Write a new Ed25519 signing key (PKCS#8 PEM, mode 0600) and its public key.
    Keygen {
        /// The private key file to create (the public key goes to FILE.pub.pem).
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Pack firmware into an image: the firmware as linked, then a trailer with its
    /// kind, slot, version, name, SHA-256 and signatures.
    Pack {
        /// The firmware: .bin, .hex, .elf or .uf2.
        file: PathBuf,
        /// The image to write.
        #[arg(long, short)]
        out: PathBuf,
        /// Firmware version, MAJOR.MINOR.PATCH (the anti-rollback counter).
        #[arg(long)]
        version: String,
        /// Name shown before flashing (at most 32 bytes; default: the file's stem).
        #[arg(long)]
        name: Option<String>,
        /// VM or bytecode (default: the slot's kind; a raw file without a slot: bytecode).
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
        /// The slot it is for: vm0, bc1... (in --layout), or `any` for
        /// position-independent firmware that runs from any slot of its kind.
        #[arg(long)]
        slot: Option<String>,
        /// The slot address it is linked for, when no layout is given.
        #[arg(long)]
        slot_addr: Option<String>,
        /// Sign with this private key (repeat for several signers).
        #[arg(long)]
        key: Vec<PathBuf>,
        #[command(flatten)]
        input: InputArgs,
    },
    /// Add a signature to a packed image.
    Sign {
        /// The packed image.
        image: PathBuf,
        /// The private key.
        #[arg(long)]
        key: PathBuf,
        /// Write here instead of replacing the image.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Show what a file holds: format, addresses, slot, and the image trailer.
    Inspect {
        /// Any firmware file or image.
        file: PathBuf,
        /// Public keys to check signatures with (PEM files, or 64 hex digits).
        #[arg(long)]
        key: Vec<String>,
        #[command(flatten)]
        input: InputArgs,
    },
    /// Check an image as a device would: hash, slot, signatures, minimum version.
    Verify {
        /// The packed image (any format).
        file: PathBuf,
        /// The slot to check it for (vm0, bc1... in --layout; default: the slot its
        /// addresses select, or the one its trailer names).
        #[arg(long)]
        slot: Option<String>,
        /// Trusted public keys (PEM files, or 64 hex digits).
        #[arg(long)]
        key: Vec<String>,
        /// Refuse an image that no trusted key signed.
        #[arg(long)]
        require_signature: bool,
        /// Refuse an image older than this version.
        #[arg(long)]
        min_version: Option<String>,
        #[command(flatten)]
        input: InputArgs,
    },
}

/// The layouts of `fota sim`, or a list.
fn parse_layout(spec: &str) -> Result<Layout, Problem> {
    let sim = |kind| {
        let cfg = fota_sim::device::DeviceConfig::new(kind).agent_config();
        Layout::new(
            cfg.slots
                .iter()
                .map(|s| Slot {
                    kind: match s.kind {
                        SlotKind::Vm => Kind::Vm,
                        SlotKind::Bytecode => Kind::Bytecode,
                    },
                    index: s.index,
                    addr: s.addr,
                    size: s.size,
                })
                .collect(),
        )
    };
    match fota_protocol::LayoutKind::from_key(spec) {
        Some(kind) => Ok(sim(kind)),
        None => Ok(Layout::parse(spec)?),
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, Problem> {
    std::fs::read(path).map_err(|e| {
        Problem::new(
            format!("cannot read {}: {e}", path.display()),
            "Check the path of the file.",
        )
    })
}

/// Writes `bytes` to `path` through a temporary file, so a failure leaves the old file.
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Problem> {
    let tmp = path.with_extension("tmp-fota");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Problem::new(
                format!("cannot write {}: {e}", path.display()),
                "Check the path and that the folder is writable.",
            )
        })
}

fn name_of(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into(),
    )
}

/// The file read and placed, with its layout.
struct Input {
    fw: Firmware,
    placed: Placed,
    layout: Option<Layout>,
}

fn read_firmware(path: &Path, args: &InputArgs) -> Result<(Firmware, Option<Layout>), Problem> {
    let bytes = read_file(path)?;
    let layout = args.layout.as_deref().map(parse_layout).transpose()?;
    let opts = ReadOptions {
        arch: match args.arch {
            ArchArg::Arm => Arch::Arm,
            ArchArg::Riscv32 => Arch::RiscV32,
            ArchArg::Xtensa => Arch::Xtensa,
            ArchArg::Any => Arch::Any,
        },
        uf2_family: match &args.uf2_family {
            Some(s) => Some(host::uf2::parse_family(s).ok_or_else(|| {
                Problem::new(
                    format!("--uf2-family {s}: not a family id"),
                    "Give a number (0x57755a57) or a name (RP2040, STM32F4, nRF52840, SAMD51...).",
                )
            })?),
            None => None,
        },
    };
    Ok((host::read_firmware(&name_of(path), &bytes, &opts)?, layout))
}

fn read_input(path: &Path, args: &InputArgs, slot: Option<&str>) -> Result<Input, Problem> {
    let (fw, layout) = read_firmware(path, args)?;
    let want = match (slot, &layout) {
        (None | Some("any"), _) => None,
        (Some(name), Some(l)) => Some(l.find(name).ok_or_else(|| {
            Problem::new(
                format!("--slot {name}: the layout has no such slot"),
                format!("The layout's slots: {l}"),
            )
        })?),
        (Some(name), None) => {
            return Err(Problem::new(
                format!("--slot {name} needs --layout"),
                "Give the device's layout with --layout (bytecode, vm, or a list).",
            ));
        }
    };
    let placed = host::place(&fw, layout.as_ref(), want, args.drop_outside)?;
    Ok(Input { fw, placed, layout })
}

fn warn_all(input: &Input, json: bool) {
    for w in input.fw.warnings.iter().chain(&input.placed.warnings) {
        if json {
            json_line(json!({"event": "warning", "message": w}));
        } else {
            eprintln!("warning: {w}");
        }
    }
}

fn parse_addr(s: &str) -> Result<u32, Problem> {
    host::parse_size(s)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| {
            Problem::new(
                format!("--slot-addr {s}: not a 32-bit address"),
                "Give it like 0x10000.",
            )
        })
}

fn parse_version(flag: &str, s: &str) -> Result<Version, Problem> {
    s.parse::<Version>()
        .map_err(|e| Problem::new(format!("--{flag} {s}: {e}"), "Give it like 1.4.0."))
}

fn read_public_keys(args: &[String]) -> Result<Vec<PublicKey>, Problem> {
    args.iter()
        .map(|a| PublicKey::read(a).map_err(Problem::from))
        .collect()
}

pub fn run(args: &ImageArgs, json: bool) -> Result<(), Problem> {
    match &args.command {
        ImageCommand::Keygen { out } => keygen(out, json),
        ImageCommand::Pack {
            file,
            out,
            version,
            name,
            kind,
            slot,
            slot_addr,
            key,
            input,
        } => {
            let version = parse_version("version", version)?;
            let keys = key
                .iter()
                .map(|k| SigningKey::read(k).map_err(Problem::from))
                .collect::<Result<Vec<_>, _>>()?;
            let inp = read_input(file, input, slot.as_deref())?;
            warn_all(&inp, json);
            let kind = match (kind, inp.placed.slot) {
                (Some(KindArg::Vm), _) => Kind::Vm,
                (Some(KindArg::Bytecode), _) => Kind::Bytecode,
                (None, Some(s)) => s.kind,
                (None, None) if inp.fw.has_addresses() => Kind::Vm,
                (None, None) => Kind::Bytecode,
            };
            if let Some(s) = inp.placed.slot.filter(|s| s.kind != kind) {
                return Err(Problem::new(
                    format!("--kind {kind} does not match {s}"),
                    "Leave --kind out: the slot gives the kind.",
                ));
            }
            let slot_addr = match (slot_addr, slot.as_deref(), inp.placed.slot) {
                (Some(a), _, _) => parse_addr(a)?,
                (None, Some("any"), _) => ANY_SLOT,
                (None, _, Some(s)) => s.addr,
                (None, _, None) if inp.fw.has_addresses() => inp.placed.base,
                (None, _, None) => ANY_SLOT,
            };
            if kind == Kind::Vm && slot_addr == ANY_SLOT && !json {
                eprintln!(
                    "warning: a VM packed for any slot must be position-independent code; \
                     give --slot or --layout if it is linked for one slot"
                );
            }
            let name = name.clone().unwrap_or_else(|| {
                let stem = file
                    .file_stem()
                    .map_or(String::new(), |s| s.to_string_lossy().into_owned());
                // The longest prefix that fits the field on a character boundary.
                let mut end = stem.len().min(fota_image::NAME_LEN);
                while !stem.is_char_boundary(end) {
                    end -= 1;
                }
                stem[..end].to_string()
            });
            let opts = PackOptions {
                kind,
                slot_addr,
                version,
                name,
            };
            let key_refs: Vec<&SigningKey> = keys.iter().collect();
            let image = host::pack(&inp.fw.name, &inp.placed.bytes, &opts, &key_refs)?;
            if let Some(s) = inp.placed.slot
                && image.len() as u64 > u64::from(s.size)
            {
                return Err(host::Error::TooLarge {
                    name: inp.fw.name.clone(),
                    size: image.len() as u64,
                    slot: s.to_string(),
                    slot_size: s.size,
                }
                .into());
            }
            if same_file(file, out) {
                return Err(Problem::new(
                    "the output would replace the firmware file",
                    "Give another --out.",
                ));
            }
            write_file(out, &image)?;
            let target = match inp.placed.slot {
                Some(s) => s.to_string(),
                None if slot_addr == ANY_SLOT => format!("any {kind} slot"),
                None => format!("the slot at {slot_addr:#010x}"),
            };
            if json {
                json_line(json!({
                    "event": "result", "out": out.display().to_string(), "kind": kind.name(),
                    "slot_addr": slot_addr, "version": version.to_string(), "name": opts.name,
                    "payload_bytes": inp.placed.bytes.len(), "image_bytes": image.len(),
                    "signed_by": keys.iter().map(|k| k.id().to_string()).collect::<Vec<_>>(),
                }));
            } else {
                let signed = if keys.is_empty() {
                    "unsigned".to_string()
                } else {
                    let ids: Vec<String> = keys.iter().map(|k| k.id().to_string()).collect();
                    format!("signed by key {}", ids.join(", "))
                };
                println!(
                    "{}: {kind} image \"{}\" {version} for {target}, {} of firmware + {} bytes of trailer, {signed}",
                    out.display(),
                    opts.name,
                    human_size(inp.placed.bytes.len() as u64),
                    image.len() - inp.placed.bytes.len(),
                );
            }
            Ok(())
        }
        ImageCommand::Sign { image, key, out } => {
            let key = SigningKey::read(key)?;
            let bytes = read_file(image)?;
            let (signed, added) = host::sign(&name_of(image), &bytes, &key)?;
            let target = out.as_ref().unwrap_or(image);
            if added || out.is_some() {
                write_file(target, &signed)?;
            }
            if json {
                json_line(
                    json!({"event": "result", "out": target.display().to_string(),
                    "key_id": key.id().to_string(), "added": added}),
                );
            } else if added {
                println!("{}: signed by key {}", target.display(), key.id());
            } else {
                println!(
                    "{}: already signed by key {}; nothing changed",
                    target.display(),
                    key.id()
                );
            }
            Ok(())
        }
        ImageCommand::Inspect { file, key, input } => {
            let keys = read_public_keys(key)?;
            let (fw, layout) = read_firmware(file, input)?;
            // Inspect describes any file: a placement problem is shown, not an error.
            let (placed, problem) =
                host::place_or_describe(&fw, layout.as_ref(), input.drop_outside);
            let report = host::inspect_placed(&fw, &placed, problem.as_ref(), &keys);
            if json {
                json_line(inspection_json(&report));
            } else {
                for line in report.lines() {
                    println!("{line}");
                }
            }
            Ok(())
        }
        ImageCommand::Verify {
            file,
            slot,
            key,
            require_signature,
            min_version,
            input,
        } => {
            let keys = read_public_keys(key)?;
            if *require_signature && keys.is_empty() {
                return Err(Problem::new(
                    "--require-signature needs the trusted keys",
                    "Give the public keys the device trusts with --key.",
                ));
            }
            let minimum = match min_version {
                Some(v) => parse_version("min-version", v)?,
                None => Version::default(),
            };
            let inp = read_input(file, input, slot.as_deref())?;
            warn_all(&inp, json);
            let name = inp.fw.name.clone();
            let image_error = |error| {
                Problem::from(host::Error::Image {
                    name: name.clone(),
                    error,
                })
            };
            // The slot to check against: the one asked for or selected; else the one the
            // trailer names (for a raw file: where its bytes would be).
            let slot = match inp.placed.slot {
                Some(s) => s,
                None => {
                    let img = fota_image::find_image(&inp.placed.bytes).map_err(image_error)?;
                    let h = img.trailer.header;
                    let in_layout = inp.layout.as_ref().and_then(|l| {
                        l.slots.iter().copied().find(|s| {
                            s.kind == h.kind && (h.slot_addr == ANY_SLOT || s.addr == h.slot_addr)
                        })
                    });
                    in_layout.unwrap_or(Slot {
                        kind: h.kind,
                        index: 0,
                        addr: if h.slot_addr == ANY_SLOT {
                            inp.placed.base
                        } else {
                            h.slot_addr
                        },
                        size: u32::try_from(inp.placed.bytes.len()).unwrap_or(u32::MAX),
                    })
                }
            };
            let trusted: Vec<TrustedKey> = keys.iter().map(PublicKey::trusted).collect();
            let policy = Policy {
                trusted: &trusted,
                require_signature: *require_signature,
                minimum_version: minimum,
            };
            let verified =
                fota_image::verify_bytes(&inp.placed.bytes, slot, &policy).map_err(image_error)?;
            let h = verified.header;
            let signed = match verified.signed_by {
                Some(id) => format!("signed by trusted key {id}"),
                None if verified.signatures > 0 => format!(
                    "{} signature(s), none by a key given with --key",
                    verified.signatures
                ),
                None => "unsigned".into(),
            };
            let in_layout = inp.layout.as_ref().is_some_and(|l| l.slots.contains(&slot));
            let place = if in_layout {
                slot.to_string()
            } else {
                format!("the slot at {:#010x}", slot.addr)
            };
            if json {
                json_line(json!({
                    "event": "result", "verified": true, "name": h.name().unwrap_or(""),
                    "version": h.version.to_string(), "kind": h.kind.name(),
                    "slot_addr": slot.addr, "image_bytes": verified.image_len,
                    "signed_by": verified.signed_by.map(|k| k.to_string()),
                    "sha256": host::hex(&h.sha256),
                }));
            } else {
                println!(
                    "verified: {} \"{}\" {} for {place}, {signed}",
                    h.kind,
                    h.name().unwrap_or("?"),
                    h.version
                );
            }
            Ok(())
        }
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

fn keygen(out: &Path, json: bool) -> Result<(), Problem> {
    let key = SigningKey::generate()?;
    let public_path = {
        let mut p = out.as_os_str().to_owned();
        p.push(".pub.pem");
        PathBuf::from(p)
    };
    key.write_new(out)?;
    if let Err(e) = key.public().write_new(&public_path) {
        // Keep the pair together: no private key without its public file.
        let _ = std::fs::remove_file(out);
        return Err(e.into());
    }
    if json {
        json_line(
            json!({"event": "result", "private": out.display().to_string(),
            "public": public_path.display().to_string(), "key_id": key.id().to_string(),
            "public_hex": key.public().to_hex()}),
        );
    } else {
        println!("private key  {} (keep it secret; mode 0600)", out.display());
        println!("public key   {}", public_path.display());
        println!("key id       {}", key.id());
        println!("public hex   {}", key.public().to_hex());
    }
    Ok(())
}

fn inspection_json(r: &host::Inspection) -> serde_json::Value {
    let trailer = match &r.trailer {
        Ok(t) => json!({
            "name": t.header.name(), "version": t.header.version.to_string(),
            "kind": t.header.kind.name(),
            "slot_addr": (t.header.slot_addr != ANY_SLOT).then_some(t.header.slot_addr),
            "payload_bytes": t.header.payload_len, "trailer_bytes": t.trailer_len,
            "sha256": host::hex(&t.header.sha256), "hash_ok": t.hash_ok,
            "signatures": t.signatures.iter().map(|s| json!({
                "key_id": s.key_id.to_string(), "valid": s.valid,
            })).collect::<Vec<_>>(),
        }),
        Err(e) => json!({"error": e.to_string()}),
    };
    json!({
        "event": "result", "file": r.name, "format": r.format.to_string(),
        "notes": r.notes,
        "ranges": r.ranges.iter().map(|(a, n)| json!({"addr": a, "bytes": n})).collect::<Vec<_>>(),
        "entry": r.entry,
        "slot": r.slot.map(|s| json!({"kind": s.kind.name(), "index": s.index, "addr": s.addr, "size": s.size})),
        "slot_bytes": r.slot_bytes,
        "image": trailer,
        "warnings": r.warnings,
    })
}
