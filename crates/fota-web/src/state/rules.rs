//! What the device's rules say of the chosen images, as far as the page can tell before
//! the update asks the agent: the slot each goes to, why it is refused, and fota-host's
//! vetting (signatures, raw images, minimum version), kept while what it depends on stays.

use fota_host::protocol::{SlotDesc, SlotKind};
use fota_host::{HostError, Image, Problem, SlotChoice, Vetted};

use super::format::kind_name;
use super::image::ImageFile;
use super::{AppState, Vetting, problem_of};

impl AppState {
    /// What asking the device "do you run these already?" is about: each chosen image's
    /// kind, length and MD5. An answer counts only while it still describes the images.
    pub fn installed_query(&self) -> Vec<(SlotKind, u32, [u8; 16])> {
        [SlotKind::Bytecode, SlotKind::Vm]
            .into_iter()
            .filter_map(|k| {
                let i = self.image(k)?;
                Some((k, u32::try_from(i.data.len()).ok()?, i.md5))
            })
            .collect()
    }

    /// The slot an image of `kind` will go to, as far as the page can tell before the
    /// agent is asked: the host's rule ([`fota_host::target_slot`]): the chosen slot if it
    /// may take an image, or the one the agent will offer.
    pub fn target(&self, kind: SlotKind) -> Option<SlotDesc> {
        let info = self.info()?;
        let record = self.record?;
        fota_host::target_slot(info, &record, kind, self.choice(kind)).ok()
    }

    /// Why `image` cannot go to the device as `kind`, if it cannot: the host's rules
    /// ([`fota_host::check_image`]). With no free slot (a trial runs, or a configuration
    /// waits for a restart: the page says what to do), or no record yet, only what the
    /// layout refuses whatever the record says.
    pub fn refusal(&self, kind: SlotKind, image: &ImageFile) -> Option<Problem> {
        if image.data.is_empty() {
            return Some(problem_of(&HostError::EmptyImage(image.name.clone())));
        }
        let info = self.info()?;
        let (name, len) = (&image.name, image.data.len());
        let checked = match self.record {
            Some(record) => {
                fota_host::check_image(info, &record, kind, self.choice(kind), name, len).map(drop)
            }
            None => Err(HostError::NoFreeSlot),
        };
        let checked = match checked {
            Err(HostError::NoFreeSlot) => fota_host::check_for_layout(info, kind, name, len),
            other => other,
        };
        checked.err().map(|e| problem_of(&e))
    }

    /// Whether the images chosen can be flashed now.
    pub fn ready_to_flash(&self) -> bool {
        self.images_ready(false)
    }

    /// Ready but for a downgrade the user has yet to confirm (in the slot step).
    pub fn ready_but_for_downgrade(&self) -> bool {
        self.images_ready(true)
    }

    fn images_ready(&self, downgrade_pending: bool) -> bool {
        let ready = |kind: SlotKind, image: &ImageFile| {
            self.refusal(kind, image).is_none()
                && (self.blocker(kind).is_none()
                    || (downgrade_pending && self.downgrade_ask(kind).is_some()))
        };
        let Some(bc) = &self.bytecode else {
            return false;
        };
        self.connection().is_some()
            && ready(SlotKind::Bytecode, bc)
            && self.vm.as_ref().is_none_or(|vm| ready(SlotKind::Vm, vm))
    }

    /// fota-host's check of the chosen image of `kind` against the device's rules
    /// (signatures, raw images, minimum version; [`fota_host::vet`]), once the slot it goes
    /// to is known.
    pub fn vetting(&self, kind: SlotKind) -> Option<&Result<Vetted, HostError>> {
        self.vetted[vet_index(kind)].as_ref().map(|v| &v.result)
    }

    /// Why the chosen image of `kind` cannot be written now, beyond its size: the slot
    /// its addresses choose is protected, or the device's rules refuse it (a downgrade
    /// waiting for the user's confirmation among them).
    pub fn blocker(&self, kind: SlotKind) -> Option<Problem> {
        let image = self.image(kind)?;
        if let (Some(info), Some(record), SlotChoice::Index(i)) =
            (self.info(), self.record, self.choice(kind))
            && let Some(role) = fota_host::slot_role(info, &record, kind, i)
        {
            let help = if image.placed.is_some() {
                format!(
                    "Its addresses choose this slot. Update the {} into the other slot first,                      so that this one is free; or build the firmware for another slot.",
                    kind_name(kind).to_ascii_lowercase()
                )
            } else {
                "Choose another slot, or the automatic choice.".to_string()
            };
            return Some(Problem {
                message: format!(
                    "{} goes to {} slot {i}, which cannot take it: {}.",
                    image.name,
                    kind_name(kind),
                    role.describe(kind)
                ),
                help,
            });
        }
        match self.vetting(kind)? {
            Ok(_) => None,
            Err(e) => Some(e.into()),
        }
    }

    /// A downgrade the device allows, waiting for the user's confirmation: the image's
    /// version and the device's minimum.
    pub fn downgrade_ask(&self, kind: SlotKind) -> Option<(String, String)> {
        match self.vetting(kind)? {
            Err(HostError::Downgrade {
                image,
                minimum,
                allowed: true,
                ..
            }) => Some((image.clone(), minimum.clone())),
            _ => None,
        }
    }

    /// A downgrade the user confirmed: the image's version and the device's minimum.
    pub fn downgrade_confirmed(&self, kind: SlotKind) -> Option<(String, String)> {
        match self.vetting(kind)? {
            Ok(Vetted {
                downgrade: Some((v, min)),
            }) => Some((v.to_string(), min.to_string())),
            _ => None,
        }
    }

    /// Check the chosen images against the device's rules again where what the check
    /// depends on changed (the image, its slot, the rules, the confirmation).
    pub(crate) fn revet(&mut self) {
        for kind in [SlotKind::Bytecode, SlotKind::Vm] {
            let i = vet_index(kind);
            let asked = self
                .image(kind)
                .filter(|img| !img.data.is_empty())
                .zip(self.target(kind))
                .map(|(img, slot)| (img, slot, self.info().and_then(|i| i.images.clone())));
            let Some((img, slot, rules)) = asked else {
                self.vetted[i] = None;
                continue;
            };
            let same = self.vetted[i].as_ref().is_some_and(|v| {
                v.name == img.name
                    && v.md5 == img.md5
                    && v.slot == slot
                    && v.rules == rules
                    && v.allow_downgrade == self.allow_downgrade
            });
            if same {
                continue;
            }
            // The image's bytes are shared, not copied.
            let result = Image::new(img.name.clone(), img.data.clone()).and_then(|image| {
                fota_host::vet(&image, &slot, rules.as_ref(), self.allow_downgrade)
            });
            self.vetted[i] = Some(Vetting {
                name: img.name.clone(),
                md5: img.md5,
                slot,
                rules,
                allow_downgrade: self.allow_downgrade,
                result,
            });
        }
    }
}

fn vet_index(kind: SlotKind) -> usize {
    match kind {
        SlotKind::Bytecode => 0,
        SlotKind::Vm => 1,
    }
}
