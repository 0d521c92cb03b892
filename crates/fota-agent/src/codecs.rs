//! The codecs this build of the agent decodes.

use fota_protocol::{CodecDesc, MAX_CODECS};

/// The codecs this build of the agent decodes, for `Info` tag 5.
pub(crate) fn codecs() -> heapless::Vec<CodecDesc, MAX_CODECS> {
    #[allow(unused_mut)]
    let mut list = heapless::Vec::new();
    #[cfg(feature = "codec")]
    for id in [fota_protocol::codec::LZMA, fota_protocol::codec::LZMA_DELTA] {
        let ram = fota_codec::DECODER_RAM as u32;
        let _ = list.push(CodecDesc { id, ram });
    }
    list
}
