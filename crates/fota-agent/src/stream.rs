//! Compressed and delta streams decoded into a slot as they arrive (`StreamBegin`,
//! `StreamData`: docs/PROTOCOL.md 5.7, the format in docs/CODECS.md).
//!
//! With the `codec` feature the agent keeps one [`fota_codec::Decoder`] in the link's
//! state (its RAM is [`fota_codec::DECODER_RAM`]); its dictionary is the flash: the bytes
//! of the target slot already written and, for a delta, a base slot the device holds.
//! Without the feature the state is empty, `Info` lists no codec and both requests are
//! refused as unknown, so an agent that has no room for the decoder keeps working
//! uncompressed.
//!
//! Work is done in steps of at most [`STREAM_STEP`] bytes of flash (plus one LZMA symbol
//! and one write chunk), like a sector of an erase: the link runs a `StreamData` frame as
//! a long request, one step per call, and the firmware's main loop and its watchdog run
//! between steps.

use fota_protocol::ErrorCode;

use crate::agent::{Agent, Refusal};

/// Bytes of flash a stream step writes (or reads, for a delta's base check) at most,
/// beyond one LZMA symbol (273 bytes) and one write chunk (256 bytes).
pub const STREAM_STEP: u32 = 4096;

/// The long stream request in progress.
#[cfg_attr(not(feature = "codec"), allow(dead_code))]
#[derive(Debug, Clone, Copy)]
pub(crate) enum StreamJob {
    /// A delta's base being checked; then `StreamBegun`.
    Begin {
        /// The header's image length.
        image_len: u32,
    },
    /// The body of a `StreamData` frame (in the frame reader's buffer) being decoded:
    /// `pos` is the next body byte to feed, `len` the body's length.
    Data {
        /// Next body byte.
        pos: u16,
        /// Body length.
        len: u16,
    },
}

/// What a stream request or step leads to.
#[cfg_attr(not(feature = "codec"), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamOutcome {
    /// More steps follow.
    More,
    /// The header is taken (and a delta's base checked).
    Begun {
        /// The image's length.
        image_len: u32,
    },
    /// A frame is done: where the stream stands.
    Streamed {
        /// Stream bytes taken so far.
        received: u32,
        /// Image bytes written so far.
        written: u32,
    },
}

const fn refuse(code: ErrorCode, detail: u32) -> Refusal {
    Refusal { code, detail }
}

/// No stream in progress: the detail of `StreamGap`.
const NO_STREAM: u32 = 0xFFFF_FFFF;

#[cfg(not(feature = "codec"))]
mod imp {
    use super::*;

    /// The stream state: empty, this build decodes no stream.
    #[derive(Debug, Default)]
    pub struct StreamState;

    impl StreamState {
        /// No stream.
        pub const fn new() -> StreamState {
            StreamState
        }

        pub(crate) fn end(&mut self) {}

        pub(crate) fn writes_next(&self) -> Option<(u32, u32)> {
            None
        }

        pub(crate) fn begin<F>(
            &mut self,
            _agent: &mut Agent<F>,
            _addr: u32,
            _base: u32,
            _header: &[u8],
        ) -> Result<(StreamOutcome, Option<StreamJob>), Refusal> {
            Err(refuse(ErrorCode::UnknownCommand, 0x0E))
        }

        pub(crate) fn data<F>(
            &mut self,
            _agent: &mut Agent<F>,
            _offset: u32,
            _body_len: usize,
            _data: &[u8],
        ) -> Result<(StreamOutcome, Option<StreamJob>), Refusal> {
            Err(refuse(ErrorCode::UnknownCommand, 0x0F))
        }

        pub(crate) fn step<F>(
            &mut self,
            _agent: &mut Agent<F>,
            _job: &mut StreamJob,
            _body: &[u8],
        ) -> Result<StreamOutcome, Refusal> {
            Err(refuse(ErrorCode::StreamGap, NO_STREAM))
        }
    }
}

#[cfg(feature = "codec")]
mod imp {
    use super::*;
    use embedded_storage::nor_flash::NorFlash;
    use fota_codec::{Decoder, Error, Flash, Header, HeaderError};
    use fota_protocol::NO_BASE;

    /// The stream in progress: the decoder (its probability model and write chunk) and
    /// where it writes and reads. All zeros when new, so that a `static` of the link's
    /// state stays in `.bss`.
    pub struct StreamState {
        decoder: Decoder,
        active: bool,
        target: u32,
        base: u32,
        received: u32,
    }

    impl core::fmt::Debug for StreamState {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.debug_struct("StreamState")
                .field("active", &self.active)
                .field("target", &self.target)
                .field("base", &self.base)
                .field("received", &self.received)
                .field("written", &self.decoder.written())
                .finish()
        }
    }

    impl Default for StreamState {
        fn default() -> Self {
            StreamState::new()
        }
    }

    /// The decoder's view of the agent's flash: the target slot through `write_slot`
    /// (its checks and idempotent units), the base slot read-only.
    struct SlotFlash<'a, F> {
        agent: &'a mut Agent<F>,
        target: u32,
        base: u32,
    }

    fn at(start: u32, offset: u32) -> Result<u32, Refusal> {
        start
            .checked_add(offset)
            .ok_or(refuse(ErrorCode::OutOfSlot, start))
    }

    impl<F: NorFlash> Flash for SlotFlash<'_, F> {
        type Error = Refusal;

        fn read_base(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), Refusal> {
            let addr = at(self.base, offset)?;
            self.agent.read_written(addr, buf)
        }

        fn read_target(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), Refusal> {
            let addr = at(self.target, offset)?;
            self.agent.read_written(addr, buf)
        }

        fn write_target(&mut self, offset: u32, data: &[u8]) -> Result<(), Refusal> {
            let addr = at(self.target, offset)?;
            self.agent.write_slot(addr, data)
        }

        /// A base the device has just hashed as its running slot (the host's check of
        /// it, asked behind its `Hello`), nothing changed since: its CRC was kept.
        fn known_base_crc(&mut self, len: u32) -> Option<u32> {
            self.agent.checked_base_crc(self.base, len)
        }
    }

    /// The refusal a decoding error is answered with.
    fn refusal(e: Error<Refusal>, written: u32) -> Refusal {
        match e {
            Error::Flash(r) => r,
            Error::Header(h) => header_refusal(h),
            Error::ImageTooLarge { image_len, .. } => refuse(ErrorCode::BadLength, image_len),
            Error::BaseTooLarge { .. } => refuse(ErrorCode::BaseMismatch, 0),
            Error::BaseMismatch { found, .. } => refuse(ErrorCode::BaseMismatch, found),
            Error::BlockOutOfRange { offset, .. }
            | Error::BlockOrder { offset, .. }
            | Error::StoredLength { offset }
            | Error::Corrupt { offset }
            | Error::DistanceTooFar { offset }
            | Error::Expands { offset } => refuse(ErrorCode::StreamCorrupt, offset),
            Error::Failed => refuse(ErrorCode::StreamGap, NO_STREAM),
            _ => refuse(ErrorCode::StreamCorrupt, written),
        }
    }

    fn header_refusal(h: HeaderError) -> Refusal {
        let at = match h {
            HeaderError::BadMagic => 0,
            HeaderError::Version(_) => 2,
            HeaderError::Codec(_) => 3,
            HeaderError::Props(_) => 4,
            _ => 5,
        };
        refuse(ErrorCode::StreamFormat, at)
    }

    impl StreamState {
        /// No stream.
        pub const fn new() -> StreamState {
            StreamState {
                decoder: Decoder::new(0, 0),
                active: false,
                target: 0,
                base: 0,
                received: 0,
            }
        }

        /// Forget the stream in progress.
        pub(crate) fn end(&mut self) {
            self.active = false;
        }

        /// The addresses the next step may write (from the decoder's position: one step
        /// of [`STREAM_STEP`] bytes, an LZMA match and a write chunk past it, rounded
        /// up), if a stream is in progress: what background erases must have done first.
        pub(crate) fn writes_next(&self) -> Option<(u32, u32)> {
            let from = self.target.checked_add(self.decoder.written())?;
            self.active
                .then(|| (from, from.saturating_add(STREAM_STEP + 1024)))
        }

        /// `StreamBegin`: check the target and the header, start the decoder; a delta's
        /// base check follows in steps.
        pub(crate) fn begin<F: NorFlash>(
            &mut self,
            agent: &mut Agent<F>,
            addr: u32,
            base: u32,
            header: &[u8],
        ) -> Result<(StreamOutcome, Option<StreamJob>), Refusal> {
            self.active = false;
            let raw: &[u8; fota_codec::format::HEADER_LEN] = header
                .try_into()
                .map_err(|_| refuse(ErrorCode::StreamFormat, header.len() as u32))?;
            let h = Header::parse(raw).map_err(header_refusal)?;
            let slot = agent.stream_target(addr, h.image_len)?;
            let base_max = if h.delta {
                if base == NO_BASE {
                    return Err(refuse(ErrorCode::StreamFormat, 5));
                }
                match agent.slot_starting_at(base) {
                    Some(b) if b.addr != slot.addr => b.size,
                    _ => return Err(refuse(ErrorCode::BaseMismatch, 0)),
                }
            } else {
                0
            };
            self.decoder.reset(slot.size, base_max);
            self.target = slot.addr;
            self.base = base;
            self.received = 0;
            let mut flash = SlotFlash {
                agent,
                target: self.target,
                base: self.base,
            };
            // The header alone writes nothing; a delta's base is then read in steps.
            self.decoder
                .feed_bounded(&mut flash, header, 0)
                .map_err(|e| refusal(e, 0))?;
            self.active = true;
            let image_len = h.image_len;
            if self.decoder.has_work() {
                Ok((StreamOutcome::More, Some(StreamJob::Begin { image_len })))
            } else {
                Ok((StreamOutcome::Begun { image_len }, None))
            }
        }

        /// `StreamData`: a frame at `offset` whose body is `body_len` bytes, `data` the
        /// stream bytes in it. Answered at once (a resend, the end of the stream) or run
        /// as a long request.
        pub(crate) fn data<F: NorFlash>(
            &mut self,
            agent: &mut Agent<F>,
            offset: u32,
            body_len: usize,
            data: &[u8],
        ) -> Result<(StreamOutcome, Option<StreamJob>), Refusal> {
            if !self.active {
                return Err(refuse(ErrorCode::StreamGap, NO_STREAM));
            }
            if offset > self.received {
                return Err(refuse(ErrorCode::StreamGap, self.received));
            }
            let end = u64::from(offset) + data.len() as u64;
            if data.is_empty() && offset == self.received {
                // The end of the stream.
                self.active = false;
                let written = self.decoder.written();
                self.decoder
                    .finish()
                    .map_err(|_| refuse(ErrorCode::StreamCorrupt, written))?;
                // A partial write unit at the image's end is programmed now.
                agent.flush_write()?;
                return Ok((self.streamed(), None));
            }
            if end <= u64::from(self.received) {
                // A resend of bytes already taken.
                return Ok((self.streamed(), None));
            }
            let skip = (self.received - offset) as usize;
            let start = body_len - data.len() + skip;
            let job = StreamJob::Data {
                pos: start as u16,
                len: body_len as u16,
            };
            Ok((StreamOutcome::More, Some(job)))
        }

        fn streamed(&self) -> StreamOutcome {
            StreamOutcome::Streamed {
                received: self.received,
                written: self.decoder.written(),
            }
        }

        /// One step of `job`: at most [`STREAM_STEP`] bytes of flash. `body` is the
        /// frame's body (for `Data`).
        pub(crate) fn step<F: NorFlash>(
            &mut self,
            agent: &mut Agent<F>,
            job: &mut StreamJob,
            body: &[u8],
        ) -> Result<StreamOutcome, Refusal> {
            if !self.active {
                return Err(refuse(ErrorCode::StreamGap, NO_STREAM));
            }
            let mut flash = SlotFlash {
                agent,
                target: self.target,
                base: self.base,
            };
            let written = self.decoder.written();
            let r = match job {
                StreamJob::Begin { image_len } => self
                    .decoder
                    .feed_bounded(&mut flash, &[], STREAM_STEP)
                    .map(|_| {
                        if self.decoder.has_work() {
                            StreamOutcome::More
                        } else {
                            StreamOutcome::Begun {
                                image_len: *image_len,
                            }
                        }
                    }),
                StreamJob::Data { pos, len } => {
                    let input = body
                        .get(usize::from(*pos)..usize::from(*len))
                        .unwrap_or(&[]);
                    match self.decoder.feed_bounded(&mut flash, input, STREAM_STEP) {
                        Ok(used) => {
                            // At most a frame's body: fits the u16 and the u32.
                            *pos += used as u16;
                            self.received += used as u32;
                            if *pos >= *len && !self.decoder.has_work() {
                                Ok(self.streamed())
                            } else {
                                Ok(StreamOutcome::More)
                            }
                        }
                        Err(e) => Err(e),
                    }
                }
            };
            agent.unit_done();
            r.map_err(|e| {
                self.active = false;
                refusal(e, written)
            })
        }
    }
}

pub use imp::StreamState;
