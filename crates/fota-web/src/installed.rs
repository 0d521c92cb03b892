//! Whether a device runs given images already: the device's MD5 of each running slot
//! over the image's length, as fota-host's resume asks it. fota-host has no public call
//! for this comparison; it is a few of its calls.

use fota_host::protocol::Layout as _;
use fota_host::protocol::{Record, SlotKind};
use fota_host::{Device, HostError, Transport};

/// `(kind, length, MD5)` of each image; `Ok((true, record))` when every running slot of
/// those kinds holds its image. The record read on the way comes back too.
pub async fn running_slots_hold<T: Transport>(
    dev: &mut Device<T>,
    images: &[(SlotKind, u32, [u8; 16])],
) -> Result<(bool, Record), HostError> {
    let info = dev.ensure_info().await?;
    let record = dev.get_record().await?;
    for &(kind, len, md5) in images {
        let running = match kind {
            SlotKind::Bytecode => record.running_bc,
            SlotKind::Vm => record.running_vm,
        };
        let Some(slot) = info.slot(kind, running).copied() else {
            return Ok((false, record));
        };
        if len == 0 || len > slot.size {
            return Ok((false, record));
        }
        let got = dev
            .checksum_slot(slot.addr, len, &mut |_, _, _, _| {})
            .await?;
        if got != md5 {
            return Ok((false, record));
        }
    }
    Ok((!images.is_empty(), record))
}
