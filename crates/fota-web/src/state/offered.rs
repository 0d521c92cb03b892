//! What the loaded firmware manifest offers the connected device: the layout it names,
//! whether its images are loaded, and what cannot fit before anything is fetched.

use fota_host::Problem;

use super::format::{kind_name, size};
use fota_host::protocol::LayoutKind;

use super::manifest::{Entry, Manifest, ManifestState};
use super::{AppState, Stage};

impl AppState {
    /// The connected device's layout, as a manifest names it.
    pub fn manifest_layout(&self) -> Option<LayoutKind> {
        self.info()?;
        Some(if self.takes_vm() {
            LayoutKind::VmAndBytecode
        } else {
            LayoutKind::BytecodeOnly
        })
    }

    /// Every image the manifest offers for the connected device's layout is loaded,
    /// checked against it.
    pub fn manifest_images_loaded(&self) -> bool {
        let (Some(m), Some(layout)) = (self.manifest(), self.manifest_layout()) else {
            return false;
        };
        let mine = m.for_layout(layout);
        !mine.is_empty()
            && mine.iter().all(|e| {
                self.image(e.kind)
                    .is_some_and(|i| i.manifest_sha256 == Some(e.sha256))
            })
    }

    /// A manifest's images are loaded and the record leaves nothing to decide (valid,
    /// confirmed, the current configuration runs): the record check may go on by itself,
    /// once the device said whether it runs these images already.
    pub fn manifest_ready(&self) -> bool {
        self.stage == Stage::Record
            && !self.running()
            && self.finish.is_none()
            && self.installed.is_none()
            && self.info().is_some_and(|i| i.fota_supported)
            && self.record.is_some_and(|r| {
                r.valid != 0
                    && r.state == fota_host::protocol::RecordState::Confirmed
                    && r.runs_current()
            })
            && self.manifest_images_loaded()
            && self.ready_to_flash()
    }

    /// Why `entry` cannot go to the connected device, known before it is fetched: larger
    /// than every slot of its kind (a manifest for another product, or a wrong size).
    pub fn manifest_misfit(&self, entry: &Entry) -> Option<Problem> {
        let info = self.info()?;
        let largest = info
            .slots
            .iter()
            .filter(|s| s.kind == entry.kind)
            .map(|s| u64::from(s.size))
            .max()?;
        (entry.size > largest).then(|| Problem {
            message: format!(
                "The manifest's {} image {} is {}, larger than this device's {} slots ({}): not fetched.",
                kind_name(entry.kind).to_ascii_lowercase(),
                entry.file_name(),
                size(entry.size),
                kind_name(entry.kind).to_ascii_lowercase(),
                size(largest)
            ),
            help: "This firmware is not for this device, or its manifest is wrong: check with \
                   the site that offers it. Nothing was written to the device."
                .into(),
        })
    }

    /// The manifest, when loaded.
    pub fn manifest(&self) -> Option<&Manifest> {
        match &self.manifest {
            Some(ManifestState::Loaded(m)) => Some(m),
            _ => None,
        }
    }
}
