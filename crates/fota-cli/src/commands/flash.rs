//! `fota flash`: update the firmware, from the image files to the new firmware's outcome.

use std::path::PathBuf;

use clap::Args;
use fota_host::Image;
use fota_host::protocol::{Info, SlotKind};
use fota_host::update::{Outcome, Plan, SlotChoice};
use serde_json::json;

use super::{Global, NEGOTIATE, Session, read_image, secs};
use crate::render::{human_bytes, json_line};
use fota_host::Problem;

#[derive(Args)]
pub struct FlashArgs {
    /// The new bytecode image.
    image: PathBuf,
    /// A new VM image too (layouts with two VM slots).
    #[arg(long)]
    vm: Option<PathBuf>,
    /// Install an image older than the device's minimum version (a downgrade), where
    /// the device allows it.
    #[arg(long)]
    allow_downgrade: bool,
    /// Write the image even if the device already runs it.
    #[arg(long)]
    reinstall: bool,
    /// Bytecode slot index (default: the agent's choice).
    #[arg(long)]
    slot: Option<u32>,
    /// VM slot index (default: the agent's choice).
    #[arg(long)]
    vm_slot: Option<u32>,
    /// Attempt but do not restart: the new firmware runs from the next restart.
    #[arg(long)]
    no_restart: bool,
    /// Send every sector even if the slot already holds part of the image.
    #[arg(long)]
    no_resume: bool,
    /// Seconds to wait for the new firmware to confirm itself, for a firmware known to
    /// take longer. Without it: the device's own deadline (`fota info`'s "must confirm
    /// within", counted by its clock) plus 1 s, or 15 s where it declares none.
    #[arg(long)]
    wait: Option<f64>,
    /// How to send the image: auto (the fastest by a model of the link and the flash: a
    /// delta from an image the device holds, else compressed, unless raw is faster
    /// where the flash sets the pace; it says which and why), none (raw), lzma
    /// (compressed), or
    /// delta (from a --from image the device holds, else compressed). Devices whose
    /// agent has no decoder always get the raw image.
    #[arg(long, default_value = "auto", value_parser = clap::value_parser!(fota_host::Codec))]
    codec: fota_host::Codec,
    /// An image the device may hold (the firmware it runs, an earlier release): the
    /// update is sent as a delta from it when the device's MD5 of one of its slots
    /// matches it. May be given several times.
    #[arg(long = "from", value_name = "OLD_IMAGE")]
    from: Vec<PathBuf>,
}

pub async fn run(session: &mut Session, args: &FlashArgs, global: &Global) -> Result<(), Problem> {
    let FlashArgs {
        image,
        vm,
        allow_downgrade,
        reinstall,
        slot,
        vm_slot,
        no_restart,
        no_resume,
        wait,
        codec,
        from,
    } = args;
    let dev = &mut session.dev;
    let info = &session.info;
    let port = session.port.as_str();
    let memo = &session.memo;
    let (bytecode, bc_linked) = read_firmware_for(image, info, SlotKind::Bytecode, global.json)?;
    let vm = vm
        .as_ref()
        .map(|p| read_firmware_for(p, info, SlotKind::Vm, global.json))
        .transpose()?;
    let mut plan = Plan::new(bytecode);
    let vm_linked = vm.as_ref().and_then(|v| v.1);
    plan.vm = vm.map(|v| v.0);
    plan.bytecode_slot = linked_choice(*slot, bc_linked)?;
    plan.vm_slot = linked_choice(*vm_slot, vm_linked)?;
    plan.allow_downgrade = *allow_downgrade;
    plan.check_installed = !*reinstall;
    plan.restart = !no_restart;
    plan.resume = !no_resume;
    plan.codec = *codec;
    plan.bases = from
        .iter()
        .map(|p| read_image(p))
        .collect::<Result<_, _>>()?;
    plan.wait_accept = secs("wait", wait.unwrap_or(DEFAULT_WAIT_S))
        .map_err(|e| Problem::new(e, "Give the wait in seconds, like 15."))?;
    plan.wait_accept_always = wait.is_some();
    if !global.no_negotiate {
        let rate = dev.negotiate_baud(&NEGOTIATE).await?;
        if rate != global.baud {
            memo.set(port, rate);
        }
    }
    let report = fota_host::update(dev, &plan).await?;
    let secs = report.stream_time.as_secs_f64();
    let rate = if secs > 0.0 {
        report.sent_bytes as f64 / secs
    } else {
        0.0
    };
    if global.json {
        json_line(json!({
            "event": "result",
            "outcome": format!("{:?}", report.outcome),
            "record": report.record.to_array(),
            "sent_bytes": report.sent_bytes,
            "skipped_bytes": report.skipped_bytes,
            "stream_seconds": secs,
            "erased_sectors": report.erased_sectors,
            "device_erase_seconds": report.device_erase_time.as_secs_f64(),
            "erase_wait_seconds": report.erase_time.as_secs_f64(),
            "total_seconds": report.total_time.as_secs_f64(),
        }));
    } else {
        eprintln!(
            "sent {} in {:.2} s ({}/s), {} already on the device; {}; total {:.2} s",
            human_bytes(report.sent_bytes as f64),
            secs,
            human_bytes(rate),
            human_bytes(report.skipped_bytes as f64),
            report.describe_erases(),
            report.total_time.as_secs_f64()
        );
        println!("{}", report.outcome.describe_with(&report.record));
    }
    match report.outcome {
        Outcome::Reverted => Err(reverted()),
        Outcome::OnTrial => Err(on_trial(&report.record)),
        _ => Ok(()),
    }
}

/// Read a firmware file of any format for a slot of `kind` of the device, and say what
/// it is (and any warning) before anything is written. Returns the image and the slot
/// index an addressed file is linked for.
fn read_firmware_for(
    path: &std::path::Path,
    info: &Info,
    kind: SlotKind,
    json: bool,
) -> Result<(Image, Option<u32>), Problem> {
    let bytes = std::fs::read(path).map_err(|e| {
        Problem::new(
            format!("cannot read {}: {e}", path.display()),
            "Check the path of the image file.",
        )
    })?;
    let name = path.display().to_string();
    let p = fota_host::prepare(&name, &bytes, info, kind)?;
    if json {
        json_line(json!({
            "event": "image", "name": name, "format": p.format.to_string(),
            "summary": p.facts.summary(),
            "packed": p.facts.packed,
            "version": p.facts.version.map(|v| v.to_string()),
            "signed_by": p.facts.signed_by.iter().map(|k| k.to_string()).collect::<Vec<_>>(),
            "slot": p.slot.map(|s| s.index), "notes": p.notes, "warnings": p.warnings,
        }));
    } else {
        eprintln!("{name}: {}, {}", p.format, p.facts.summary());
        for n in &p.notes {
            eprintln!("  {n}");
        }
        for w in &p.warnings {
            eprintln!("  warning: {w}");
        }
    }
    Ok((p.image, p.slot.map(|s| u32::from(s.index))))
}

/// The slot choice: the one asked for, which must be the one an addressed file is linked
/// for, else that one, else automatic.
fn linked_choice(asked: Option<u32>, linked: Option<u32>) -> Result<SlotChoice, Problem> {
    match (asked, linked) {
        (Some(a), Some(l)) if a != l => Err(Problem::new(
            format!("the file is linked for slot {l}, not slot {a}"),
            "Leave out the slot (the file's addresses choose it), or build the firmware for \
             the slot you want.",
        )),
        (Some(a), _) | (None, Some(a)) => Ok(SlotChoice::Index(a)),
        (None, None) => Ok(SlotChoice::Auto),
    }
}

/// The update ran but the new firmware did not confirm itself: `fota flash` exits with
/// [`REVERTED_EXIT`] for it, so scripts tell it from a failed update.
pub fn reverted() -> Problem {
    Problem::new(
        "the new firmware did not confirm itself: the device reverted",
        "The previous firmware runs. Check the new firmware calls accept() after its \
         self-test.",
    )
}

/// Seconds `fota flash` waits for the confirmation where the device declares no deadline.
const DEFAULT_WAIT_S: f64 = 15.0;

/// The exit code of an update the device reverted.
pub const REVERTED_EXIT: u8 = 3;

/// The message of [`on_trial`], by which `main` gives it [`ON_TRIAL_EXIT`].
pub const ON_TRIAL: &str = "the new firmware runs on trial and has not confirmed itself";

/// The new firmware runs but never called accept() while the update waited: not an
/// error, not done either. It has its own exit code, [`ON_TRIAL_EXIT`].
pub fn on_trial(record: &fota_host::protocol::Record) -> Problem {
    Problem::new(
        ON_TRIAL,
        format!(
            "It keeps running; the next restart brings back bytecode slot {} with VM slot {}. \
             Run fota restart to go back to it now, fota accept to keep the new one if you \
             know it works, or wait for it to call accept() itself.",
            record.bc_last, record.vm_last
        ),
    )
}

/// The exit code of an update whose new firmware runs on trial, unconfirmed.
pub const ON_TRIAL_EXIT: u8 = 4;
