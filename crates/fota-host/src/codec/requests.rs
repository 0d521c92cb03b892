//! The two requests of a compressed or delta stream, as `Device` calls.

use fota_protocol::{Op, Reply, Request};

use crate::device::refused;
use crate::{Device, HostError, Transport};

impl<T: Transport> Device<T> {
    /// `StreamBegin`: start a compressed or delta stream (its 20-byte `header`) into the
    /// slot at `addr`, with the base in the slot at `base` ([`NO_BASE`]: none). Returns
    /// the image length the agent accepted. (`update()` does this by itself; this is for
    /// tools and tests that drive the protocol.)
    pub async fn stream_begin(
        &mut self,
        addr: u32,
        base: u32,
        header: &[u8],
    ) -> Result<u32, HostError> {
        match self
            .call(&Request::StreamBegin { addr, base, header })
            .await?
        {
            Reply::StreamBegun { image_len } => Ok(image_len),
            other => Err(refused(Op::StreamBegin, &other)),
        }
    }

    /// `StreamData`: stream bytes at `offset` (after the header); empty `data` ends the
    /// stream. Returns (stream bytes taken, image bytes written).
    pub async fn stream_data(&mut self, offset: u32, data: &[u8]) -> Result<(u32, u32), HostError> {
        match self.call(&Request::StreamData { offset, data }).await? {
            Reply::Streamed { received, written } => Ok((received, written)),
            other => Err(refused(Op::StreamData, &other)),
        }
    }
}
