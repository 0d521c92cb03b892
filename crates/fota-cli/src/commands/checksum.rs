//! `fota checksum`: the device's MD5 of a slot, compared with an image.

use std::path::PathBuf;

use clap::Args;
use fota_host::protocol::Layout as _;
use fota_host::protocol::SlotKind;
use serde_json::json;

use super::{Global, Session, read_image};
use crate::render::json_line;
use fota_host::Problem;

#[derive(Args)]
pub struct ChecksumArgs {
    /// Bytecode slot index (default: the current one).
    #[arg(long)]
    slot: Option<u32>,
    /// A VM slot instead of a bytecode slot.
    #[arg(long)]
    vm: bool,
    /// Compare with this image (hashes the image's length of the slot).
    #[arg(long)]
    image: Option<PathBuf>,
    /// Bytes to hash (default: the image's size, else the whole slot).
    #[arg(long)]
    size: Option<u32>,
}

pub async fn run(
    session: &mut Session,
    args: &ChecksumArgs,
    global: &Global,
) -> Result<(), Problem> {
    let ChecksumArgs {
        slot,
        vm,
        image,
        size,
    } = args;
    let dev = &mut session.dev;
    let info = &session.info;
    let record = dev.get_record().await?;
    let kind = if *vm {
        SlotKind::Vm
    } else {
        SlotKind::Bytecode
    };
    let index = slot.unwrap_or(if *vm {
        record.vm_current
    } else {
        record.bc_current
    });
    let Some(desc) = info.slot(kind, index).copied() else {
        return Err(Problem::new(
            format!("no {kind:?} slot {index} in this layout"),
            "`fota info` lists the slots.",
        ));
    };
    let image = image.as_ref().map(|p| read_image(p)).transpose()?;
    let size = match (size, &image) {
        (Some(s), _) => *s,
        (None, Some(img)) => img.len() as u32,
        (None, None) => desc.size,
    };
    let md5 = dev
        .checksum_slot(desc.addr, size, &mut |_, _, _, _| {})
        .await?;
    let hex = fota_host::hex(&md5);
    let matches = image.as_ref().map(|img| img.md5() == md5);
    if global.json {
        json_line(
            json!({"event": "result", "addr": desc.addr, "size": size, "md5": hex, "matches": matches}),
        );
    } else {
        println!(
            "{hex}  {kind:?} slot {index} @ {:#x}, {size} bytes",
            desc.addr
        );
    }
    if matches == Some(false) {
        return Err(Problem::new(
            "the slot does not hold this image",
            "Flash the image (fota flash), which sends only what differs.",
        ));
    }
    Ok(())
}
