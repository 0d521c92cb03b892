use crate::HostError;
use md5::{Digest, Md5};

/// A firmware image to flash: its name (for messages) and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// File name or label.
    pub name: String,
    /// The bytes.
    pub data: Vec<u8>,
}

impl Image {
    /// An image; an empty one is refused.
    pub fn new(name: impl Into<String>, data: Vec<u8>) -> Result<Image, HostError> {
        let name = name.into();
        if data.is_empty() {
            return Err(HostError::EmptyImage(name));
        }
        Ok(Image { name, data })
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Never true: an empty image cannot be made.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// MD5 of the whole image, as the device's checksum_slot computes it.
    pub fn md5(&self) -> [u8; 16] {
        md5_of(&self.data)
    }
}

/// MD5 of some bytes.
pub fn md5_of(bytes: &[u8]) -> [u8; 16] {
    Md5::digest(bytes).into()
}

/// Lower-case hex of a digest.
pub use fota_image::host::hex;
