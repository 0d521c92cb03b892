//! `fota attempt`: make a configuration the one tried at the next restart.

use std::path::PathBuf;

use clap::Args;
use fota_host::protocol::SlotKind;

use super::record::print_record;
use super::{Global, Session, read_image};
use fota_host::{HostError, Problem};

#[derive(Args)]
pub struct AttemptArgs {
    #[arg(long)]
    bc: u32,
    /// VM slot (default: the current one).
    #[arg(long)]
    vm: Option<u32>,
    /// The bytecode image the slot must hold.
    #[arg(long)]
    image: Option<PathBuf>,
    /// The VM image the VM slot must hold.
    #[arg(long)]
    vm_image: Option<PathBuf>,
    /// Attempt without comparing the slots with images.
    #[arg(long)]
    force: bool,
}

pub async fn run(
    session: &mut Session,
    args: &AttemptArgs,
    global: &Global,
) -> Result<(), Problem> {
    let AttemptArgs {
        bc,
        vm,
        image,
        vm_image,
        force,
    } = args;
    let dev = &mut session.dev;
    let info = &session.info;
    let record = dev.get_record().await?;
    let vm = vm.unwrap_or(record.vm_current);
    if image.is_none() && !force {
        return Err(Problem::new(
            "attempt needs the image the slot should hold",
            "Give --image FILE (and --vm-image FILE for a new VM) so the device's MD5 \
             of the slot is compared first, or --force to attempt unchecked.",
        ));
    }
    for (kind, index, path) in [
        (SlotKind::Bytecode, *bc, image),
        (SlotKind::Vm, vm, vm_image),
    ] {
        let Some(path) = path else { continue };
        let img = read_image(path)?;
        // The host's rules: a slot of this layout that holds the image (the device's
        // MD5 against the image's, as an update checks before attempt).
        let slot = fota_host::slot_of(info, kind, index)
            .map_err(|e| Problem::new(e.to_string(), "`fota info` lists the slots."))?;
        match fota_host::verify_slot(dev, &slot, &img, &mut |_, _, _, _| {}).await {
            Ok(()) => {}
            Err(HostError::ChecksumMismatch { .. } | HostError::ImageTooLarge { .. }) => {
                return Err(Problem::new(
                    format!(
                        "{kind:?} slot {index} does not hold {}: nothing was attempted",
                        img.name
                    ),
                    "Flash the image (fota flash), which checks and attempts it.",
                ));
            }
            Err(e) => return Err(e.into()),
        }
    }
    dev.attempt(*bc, vm).await?;
    print_record(&dev.get_record().await?, global.json);
    Ok(())
}
