use std::sync::Arc;

use crate::HostError;
use md5::{Digest, Md5};

/// A firmware image to flash: its name (for messages), its bytes and their MD5.
///
/// The bytes are shared, not copied: cloning an image (into a [`crate::Plan`], from the
/// web app's state) counts a reference. Their MD5 is computed once, when the image is
/// made, and every check of an update compares with that one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// File name or label.
    pub name: String,
    /// The bytes (reference-counted: `Arc` works on wasm32 and across the CLI's threads).
    data: Arc<Vec<u8>>,
    /// MD5 of `data`, as the device's checksum_slot computes it.
    md5: [u8; 16],
}

impl Image {
    /// An image; an empty one is refused. `data` is taken as it is (a `Vec<u8>` is moved,
    /// an `Arc<Vec<u8>>` shared), never copied.
    pub fn new(name: impl Into<String>, data: impl Into<Arc<Vec<u8>>>) -> Result<Image, HostError> {
        let name = name.into();
        let data = data.into();
        if data.is_empty() {
            return Err(HostError::EmptyImage(name));
        }
        let md5 = md5_of(&data);
        Ok(Image { name, data, md5 })
    }

    /// The bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The bytes, shared (a reference more, no copy).
    pub fn shared(&self) -> Arc<Vec<u8>> {
        Arc::clone(&self.data)
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Never true: an empty image cannot be made.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// MD5 of the whole image, as the device's checksum_slot computes it (computed once,
    /// when the image was made).
    pub fn md5(&self) -> [u8; 16] {
        self.md5
    }
}

#[cfg(test)]
thread_local! {
    /// MD5s computed on this thread (an update computes none of an image).
    pub(crate) static MD5_RUNS: core::cell::Cell<usize> = const { core::cell::Cell::new(0) };
}

/// MD5 of some bytes.
pub fn md5_of(bytes: &[u8]) -> [u8; 16] {
    #[cfg(test)]
    MD5_RUNS.with(|n| n.set(n.get() + 1));
    Md5::digest(bytes).into()
}

/// Lower-case hex of a digest.
pub use fota_image::host::hex;
