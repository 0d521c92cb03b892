//! Taking a chosen file into the state: placed in the slot its addresses select on the
//! connected device's layout, checked against the device's rules, logged, kept.

use fota_host::protocol::SlotKind;
use fota_host::{Problem, SlotChoice};
use fota_image::host::{Layout, place};

use super::format::{hex, kind_name, size};
use super::image::{ImageFile, image_problem};
use super::{AppState, LogKind};

impl AppState {
    /// An image with addresses placed in the slot they select on the connected device's
    /// layout (its kind is that slot's); anything else as it is.
    pub fn place(
        &self,
        kind: SlotKind,
        image: ImageFile,
    ) -> Result<(SlotKind, ImageFile), Problem> {
        let (Some(fw), Some(info)) = (image.firmware.clone(), self.info()) else {
            return Ok((kind, image));
        };
        let to_image = |k: SlotKind| match k {
            SlotKind::Vm => fota_image::Kind::Vm,
            SlotKind::Bytecode => fota_image::Kind::Bytecode,
        };
        let layout = Layout::new(
            info.slots
                .iter()
                .map(|s| fota_image::Slot {
                    kind: to_image(s.kind),
                    index: s.index,
                    addr: s.addr,
                    size: s.size,
                })
                .collect(),
        );
        // Data outside every slot (a micro:bit HEX's UICR configuration words) is left
        // out with a warning, shown before anything is written.
        let placed = place(&fw, Some(&layout), None, true).map_err(|e| image_problem(&e))?;
        let slot = placed.slot.and_then(|p| {
            info.slots
                .iter()
                .find(|s| to_image(s.kind) == p.kind && s.index == p.index)
                .copied()
        });
        let Some(slot) = slot else {
            return Ok((kind, image));
        };
        let mut out = ImageFile::raw(image.name.clone(), placed.bytes);
        out.format = image.format;
        out.firmware = Some(fw);
        out.placed = Some(slot);
        out.notes = image.notes;
        out.warnings = image.warnings;
        out.warnings.extend(placed.warnings);
        Ok((slot.kind, out))
    }

    /// Take a loaded image: placed, checked, kept (or refused with a problem).
    pub(super) fn take_image(&mut self, now_ms: u64, kind: SlotKind, image: ImageFile) -> bool {
        let placed =
            self.place(kind, image)
                .and_then(|(kind, image)| match self.refusal(kind, &image) {
                    Some(p) => Err(p),
                    None => Ok((kind, image)),
                });
        let (kind, image) = match placed {
            Ok(v) => v,
            Err(p) => {
                self.log(now_ms, LogKind::Error, format!("{} {}", p.message, p.help));
                self.announce = p.message.clone();
                self.image_problem = Some(p);
                return false;
            }
        };
        self.log(
            now_ms,
            LogKind::App,
            format!(
                "{} image {} ({}): {}, MD5 {}; {}",
                kind_name(kind),
                image.name,
                image.describe(),
                size(image.data.len() as u64),
                hex(&image.md5),
                image.facts.summary()
            ),
        );
        for w in &image.warnings {
            self.log(now_ms, LogKind::Event, format!("{}: {w}", image.name));
        }
        self.announce = format!("{} image {} loaded.", kind_name(kind), image.name);
        self.image_problem = None;
        // A file with addresses chooses its slot; the next file without goes back to the
        // automatic choice.
        let was_placed = self.image(kind).is_some_and(|i| i.placed.is_some());
        let choice = match image.placed {
            Some(slot) => Some(SlotChoice::Index(u32::from(slot.index))),
            None if was_placed => Some(SlotChoice::Auto),
            None => None,
        };
        if let Some(choice) = choice {
            match kind {
                SlotKind::Bytecode => self.bc_slot = choice,
                SlotKind::Vm => self.vm_slot = choice,
            }
        }
        match kind {
            SlotKind::Bytecode => self.bytecode = Some(image),
            SlotKind::Vm => self.vm = Some(image),
        }
        self.images_changed();
        true
    }

    /// New images: whether they run already is asked again, a downgrade confirmed again.
    pub(super) fn images_changed(&mut self) {
        self.installed = None;
        self.allow_downgrade = false;
        self.reinstall = false;
    }
}
