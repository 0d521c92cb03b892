//! Firmware manifests (docs/MANIFEST.md): a site offers its firmware by a JSON file that
//! names each image for each layout and kind, with its size and SHA-256. Everything here
//! is pure (parsing and checks); fetching is in the effects.

use fota_host::Problem;
use fota_host::protocol::{LayoutKind, SlotKind};
use serde::Deserialize;
use sha2::Digest;

use super::format::{hex, kind_name, size};
use super::image::ImageFile;

/// The manifest format this app reads.
pub const FORMAT: u32 = 1;

/// The JSON document as written (docs/MANIFEST.md), before its checks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestDoc {
    pub format: u32,
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub description: Option<String>,
    pub images: Vec<EntryDoc>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryDoc {
    pub layout: String,
    pub kind: String,
    pub url: String,
    pub size: u64,
    pub sha256: String,
    #[serde(default)]
    pub signatures: Vec<SignatureDoc>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureDoc {
    pub key_id: String,
    pub signature: String,
}

/// One image a manifest offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub layout: LayoutKind,
    pub kind: SlotKind,
    /// As written: relative to the manifest's URL.
    pub url: String,
    pub size: u64,
    pub sha256: [u8; 32],
    /// Signatures the image's trailer must carry (docs/IMAGE.md).
    pub signatures: Vec<([u8; 8], [u8; 64])>,
}

impl Entry {
    /// The file name shown for the image: the last part of its URL.
    pub fn file_name(&self) -> String {
        let path = self.url.split(['?', '#']).next().unwrap_or_default();
        match path.rsplit('/').next() {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => self.url.clone(),
        }
    }
}

/// A manifest that passed its checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Where it was loaded from (absolute).
    pub url: String,
    pub name: String,
    pub version: String,
    pub description: Option<String>,
    pub images: Vec<Entry>,
}

/// The manifest named by `?manifest=`, as far as it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestState {
    Loading(String),
    Loaded(Box<Manifest>),
    Failed(Problem),
}

fn bad(url: &str, what: String) -> Problem {
    Problem {
        message: format!("The firmware manifest {url} is not valid: {what}."),
        help: "Tell the site that offers this firmware; its manifest must follow the format \
               in docs/MANIFEST.md. Meanwhile, choose an image file yourself."
            .into(),
    }
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Most images a manifest may list (two kinds on two layouts, and room to spare).
const MAX_IMAGES: usize = 16;

impl Manifest {
    /// The manifest `doc`, loaded from `url`, checked.
    pub fn check(url: &str, doc: ManifestDoc) -> Result<Manifest, Problem> {
        if doc.format != FORMAT {
            return Err(bad(
                url,
                format!(
                    "its format is {}, and this app reads format {FORMAT}",
                    doc.format
                ),
            ));
        }
        if doc.name.trim().is_empty() || doc.version.trim().is_empty() {
            return Err(bad(url, "its name and version must not be empty".into()));
        }
        if doc.images.is_empty() || doc.images.len() > MAX_IMAGES {
            return Err(bad(
                url,
                format!("it lists {} images (1 to {MAX_IMAGES})", doc.images.len()),
            ));
        }
        let mut images: Vec<Entry> = Vec::new();
        for (i, e) in doc.images.into_iter().enumerate() {
            let at = format!("image {} ({})", i + 1, e.url);
            let layout = match LayoutKind::from_key(&e.layout) {
                Some(layout) => layout,
                None => {
                    let other = &e.layout;
                    return Err(bad(
                        url,
                        format!("{at} has layout \"{other}\" (\"bytecode\" or \"vm\")"),
                    ));
                }
            };
            let kind = match e.kind.as_str() {
                "bytecode" => SlotKind::Bytecode,
                "vm" => SlotKind::Vm,
                other => {
                    return Err(bad(
                        url,
                        format!("{at} has kind \"{other}\" (\"bytecode\" or \"vm\")"),
                    ));
                }
            };
            if kind == SlotKind::Vm && layout == LayoutKind::BytecodeOnly {
                return Err(bad(
                    url,
                    format!(
                        "{at} is a VM image for the bytecode layout, whose VM is never written"
                    ),
                ));
            }
            if e.url.is_empty() {
                return Err(bad(url, format!("image {} has no url", i + 1)));
            }
            if e.size == 0 {
                return Err(bad(url, format!("{at} has size 0")));
            }
            let sha256 = unhex::<32>(&e.sha256.to_ascii_lowercase())
                .ok_or_else(|| bad(url, format!("{at}: sha256 must be 64 hex digits")))?;
            let mut signatures = Vec::new();
            for s in &e.signatures {
                let key = unhex::<8>(&s.key_id.to_ascii_lowercase());
                let sig = unhex::<64>(&s.signature.to_ascii_lowercase());
                match (key, sig) {
                    (Some(k), Some(s)) => signatures.push((k, s)),
                    _ => {
                        return Err(bad(
                            url,
                            format!(
                                "{at}: a signature needs a key_id of 16 hex digits and a signature of 128"
                            ),
                        ));
                    }
                }
            }
            if images.iter().any(|o| o.layout == layout && o.kind == kind) {
                return Err(bad(
                    url,
                    format!(
                        "{at} is the second {} image for the {} layout",
                        kind_name(kind).to_ascii_lowercase(),
                        layout.key()
                    ),
                ));
            }
            images.push(Entry {
                layout,
                kind,
                url: e.url,
                size: e.size,
                sha256,
                signatures,
            });
        }
        Ok(Manifest {
            url: url.to_string(),
            name: doc.name,
            version: doc.version,
            description: doc.description,
            images,
        })
    }

    /// The images for a device of `layout`, bytecode first.
    pub fn for_layout(&self, layout: LayoutKind) -> Vec<&Entry> {
        let mut v: Vec<&Entry> = self.images.iter().filter(|e| e.layout == layout).collect();
        v.sort_by_key(|e| e.kind != SlotKind::Bytecode);
        v
    }

    /// The layouts it has images for, as words.
    pub fn layouts(&self) -> Vec<&'static str> {
        let mut v: Vec<&'static str> = Vec::new();
        for e in &self.images {
            if !v.contains(&e.layout.key()) {
                v.push(e.layout.key());
            }
        }
        v
    }
}

/// `bytes`, fetched for `entry` of the manifest `manifest`, checked against what the
/// manifest says: length, then SHA-256, then the signatures it names. Nothing reaches the
/// device unless this passes.
pub fn check_image(manifest: &Manifest, entry: &Entry, bytes: &[u8]) -> Result<(), Problem> {
    let name = entry.file_name();
    let refetch = format!(
        "Nothing was written to the device. Fetch it again (the button below); if this \
         persists, the file on the server is not the one the manifest describes (a partial \
         upload, a proxy or cache that changed it, or a manifest not updated with a new build): \
         tell the site that offers {} {}.",
        manifest.name, manifest.version
    );
    if bytes.len() as u64 != entry.size {
        return Err(Problem {
            message: format!(
                "{name} is {} ({} bytes), but the manifest says {} ({} bytes): refused.",
                size(bytes.len() as u64),
                bytes.len(),
                size(entry.size),
                entry.size
            ),
            help: refetch,
        });
    }
    let got: [u8; 32] = sha2::Sha256::digest(bytes).into();
    if got != entry.sha256 {
        return Err(Problem {
            message: format!(
                "{name} does not match the manifest: its SHA-256 is {}, the manifest says {}: refused.",
                hex(&got),
                hex(&entry.sha256)
            ),
            help: refetch,
        });
    }
    if !entry.signatures.is_empty() {
        let carried: Vec<_> = match fota_image::find_image(bytes) {
            Ok(img) => img
                .trailer
                .signatures()
                .map(|s| (s.key_id.0, s.signature))
                .collect(),
            Err(e) => {
                return Err(Problem {
                    message: format!(
                        "{name}: the manifest names signatures, but the image has no valid FOTA trailer ({e}): refused."
                    ),
                    help: refetch,
                });
            }
        };
        if let Some((k, _)) = entry.signatures.iter().find(|s| !carried.contains(s)) {
            return Err(Problem {
                message: format!(
                    "{name}: the manifest names a signature by key {} that the image's trailer does not carry: refused.",
                    hex(k)
                ),
                help: refetch,
            });
        }
    }
    Ok(())
}

/// An image fetched for `entry` and checked, as the image cards show it.
pub fn image_from(manifest: &Manifest, entry: &Entry, bytes: Vec<u8>) -> ImageFile {
    let mut image = ImageFile::raw(entry.file_name(), bytes);
    image.manifest_sha256 = Some(entry.sha256);
    image.notes.push(format!(
        "from {} {} (manifest): size and SHA-256 {} match",
        manifest.name,
        manifest.version,
        hex(&entry.sha256)
    ));
    if !entry.signatures.is_empty() {
        image.notes.push(format!(
            "carries the signatures the manifest names (keys {})",
            entry
                .signatures
                .iter()
                .map(|(k, _)| hex(k))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    image
}
