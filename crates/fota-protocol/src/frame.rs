//! Framing: `0x00 COBS(id:u16 | op:u8 | body | crc32:u32) 0x00`.
//!
//! The leading zero ends whatever came before (log text the firmware printed, or line
//! noise), so a frame always starts clean; the trailing zero ends the frame. Empty
//! chunks between two zeros are ignored.

use crate::FRAME_OVERHEAD;
use crate::message::{DecodeError, Reply, Request};
use crate::wire::Sink;

/// CRC-32/ISO-HDLC (the zlib / Ethernet CRC): poly 0x04C11DB7 reflected, init and final
/// XOR 0xFFFFFFFF. `CRC("123456789") == 0xCBF43926`.
/// One table for the whole image: the agent's record log uses it too ([`crc32`]).
static CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// CRC-32/ISO-HDLC of `bytes`: the frames' CRC, shared so that a firmware holds one table
/// (the agent's record entries use the same CRC).
pub fn crc32(bytes: &[u8]) -> u32 {
    CRC32.checksum(bytes)
}

/// The largest number of bytes a frame with a `payload_len`-byte payload (id, op, body
/// and CRC) takes on the wire, both zero delimiters included.
pub const fn frame_len(payload_len: usize) -> usize {
    payload_len + payload_len / 254 + 1 + 2
}

/// A decoded frame whose CRC matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The request id; a reply carries the id of its request.
    pub id: u16,
    /// The operation code.
    pub op: u8,
    /// The body, without CRC.
    pub body: &'a [u8],
}

impl<'a> Frame<'a> {
    /// The frame as a request.
    pub fn request(&self) -> Result<Request<'a>, DecodeError> {
        Request::parse(self.op, self.body)
    }

    /// The frame as a reply.
    pub fn reply(&self) -> Result<Reply, DecodeError> {
        Reply::parse(self.op, self.body)
    }
}

/// Why a chunk of bytes between two zeros was not a frame (nor text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FrameError {
    /// More bytes than the reader's buffer before a zero: dropped.
    TooLong,
    /// Not valid COBS.
    Cobs,
    /// Fewer bytes than an id, an op and a CRC.
    TooShort,
    /// The CRC did not match: damaged on the link.
    Crc,
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            FrameError::TooLong => "a frame longer than the receive buffer was dropped",
            FrameError::Cobs => "a frame is not valid COBS",
            FrameError::TooShort => "a frame is shorter than an id, an op code and a CRC",
            FrameError::Crc => "a frame's CRC does not match: damaged on the link",
        })
    }
}

impl core::error::Error for FrameError {}

/// What [`FrameReader::feed`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// A frame whose CRC matched.
    Frame(Frame<'a>),
    /// Printable text between frames (the firmware's log output).
    Text(&'a [u8]),
    /// A damaged chunk; it was dropped.
    Error(FrameError),
}

/// Whether `bytes` look like log text rather than a damaged frame: printable ASCII,
/// tab, CR, LF, ESC (terminal colours) and UTF-8 bytes.
pub fn is_text(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|&b| matches!(b, b'\t' | b'\n' | b'\r' | 0x1B | 0x20..=0x7E | 0x80..=0xFF))
}

/// Splits a byte stream into frames and text. `N` is the longest encoded frame it takes.
#[derive(Debug, Clone)]
pub struct FrameReader<const N: usize> {
    buf: [u8; N],
    len: usize,
    discarding: bool,
}

impl<const N: usize> Default for FrameReader<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> FrameReader<N> {
    /// An empty reader.
    pub const fn new() -> Self {
        FrameReader {
            buf: [0; N],
            len: 0,
            discarding: false,
        }
    }

    /// Forget any partial chunk (after a reconnect, say).
    pub fn reset(&mut self) {
        self.len = 0;
        self.discarding = false;
    }

    /// Bytes held of a chunk not yet ended by a zero.
    pub fn pending(&self) -> usize {
        self.len
    }

    /// Hand over the partial chunk as text if it is text, for a host that has seen the
    /// line go quiet (firmware log lines need not be followed by a zero).
    pub fn flush_text(&mut self) -> Option<&[u8]> {
        let held = self.buf.get(..self.len)?;
        if self.len == 0 || !is_text(held) {
            return None;
        }
        self.len = 0;
        Some(held)
    }

    /// The body of the frame the last [`FrameReader::feed`] returned, `len` bytes long:
    /// it stays in the buffer until `feed` is called again (an agent works through a long
    /// request's body in steps without a copy of it).
    pub fn last_body(&self, len: usize) -> Option<&[u8]> {
        self.buf.get(3..3usize.checked_add(len)?)
    }

    /// Take bytes from `data` until an event; returns how many were consumed and the
    /// event, if any. Call again with the rest of `data`.
    pub fn feed(&mut self, data: &[u8]) -> (usize, Option<Event<'_>>) {
        for (i, &b) in data.iter().enumerate() {
            if b == 0 {
                if self.discarding {
                    self.reset();
                    return (i + 1, Some(Event::Error(FrameError::TooLong)));
                }
                if self.len == 0 {
                    continue;
                }
                let len = core::mem::replace(&mut self.len, 0);
                return (i + 1, Some(self.finish(len)));
            }
            if self.discarding {
                continue;
            }
            match self.buf.get_mut(self.len) {
                Some(slot) => {
                    *slot = b;
                    self.len += 1;
                }
                None => {
                    // Full without a zero: a long log line is handed over in pieces,
                    // anything else is dropped up to the next zero.
                    if is_text(&self.buf) {
                        self.len = 0;
                        return (i, Some(Event::Text(&self.buf)));
                    }
                    self.discarding = true;
                }
            }
        }
        (data.len(), None)
    }

    fn finish(&mut self, len: usize) -> Event<'_> {
        let Some(raw) = self.buf.get_mut(..len) else {
            return Event::Error(FrameError::TooLong);
        };
        match check(raw) {
            Ok(()) => {}
            Err(_) if is_text(raw) => return Event::Text(raw),
            Err(e) => return Event::Error(e),
        }
        // `check` proved the COBS valid, so this cannot fail; stay defensive anyway.
        let Ok(n) = cobs::decode_in_place(raw) else {
            return Event::Error(FrameError::Cobs);
        };
        match raw.get(..n.saturating_sub(4)) {
            Some([lo, hi, op, body @ ..]) => Event::Frame(Frame {
                id: u16::from_le_bytes([*lo, *hi]),
                op: *op,
                body,
            }),
            _ => Event::Error(FrameError::TooShort),
        }
    }
}

/// Validate a COBS chunk and its CRC without changing it (so that a chunk that is not a
/// frame can still be handed over as text).
fn check(raw: &[u8]) -> Result<(), FrameError> {
    let mut state = cobs::DecoderState::Idle;
    let mut digest = CRC32.digest();
    // The last four decoded bytes are the CRC: hash each byte once four more follow it.
    let mut tail = [0u8; 4];
    let mut n = 0usize;
    for &b in raw.iter().chain(core::iter::once(&0u8)) {
        match state.feed(b) {
            Ok(cobs::DecodeResult::DataContinue(d)) => {
                if n >= 4 {
                    digest.update(&[tail[n % 4]]);
                }
                tail[n % 4] = d;
                n += 1;
            }
            Ok(cobs::DecodeResult::DataComplete) => {
                if n < FRAME_OVERHEAD {
                    return Err(FrameError::TooShort);
                }
                let got = u32::from_le_bytes([
                    tail[n % 4],
                    tail[(n + 1) % 4],
                    tail[(n + 2) % 4],
                    tail[(n + 3) % 4],
                ]);
                return if got == digest.finalize() {
                    Ok(())
                } else {
                    Err(FrameError::Crc)
                };
            }
            Ok(_) => {}
            Err(_) => return Err(FrameError::Cobs),
        }
    }
    Err(FrameError::Cobs)
}

/// Writes the payload through COBS into the output while computing the CRC.
struct FrameSink<'a> {
    enc: cobs::CobsEncoder<'a>,
    digest: crc::Digest<'static, u32>,
    ok: bool,
}

impl Sink for FrameSink<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.digest.update(bytes);
        if self.enc.push(bytes).is_err() {
            self.ok = false;
        }
    }
}

fn encode(id: u16, op: u8, body: impl FnOnce(&mut FrameSink<'_>), out: &mut [u8]) -> Option<usize> {
    let (first, rest) = out.split_first_mut()?;
    *first = 0;
    let rest_len = rest.len();
    let mut sink = FrameSink {
        enc: cobs::CobsEncoder::new(rest),
        digest: CRC32.digest(),
        ok: true,
    };
    sink.u16(id);
    sink.u8(op);
    body(&mut sink);
    let FrameSink {
        mut enc,
        digest,
        mut ok,
    } = sink;
    ok &= enc.push(&digest.finalize().to_le_bytes()).is_ok();
    let n = enc.finalize();
    if !ok || n >= rest_len {
        return None;
    }
    *out.get_mut(n + 1)? = 0;
    Some(n + 2)
}

/// Encode a request frame into `out`; returns its length, or `None` if `out` is too
/// small (see [`frame_len`]).
pub fn encode_request(id: u16, request: &Request<'_>, out: &mut [u8]) -> Option<usize> {
    encode(id, request.op() as u8, |s| request.write_body(s), out)
}

/// Encode a reply frame into `out`; returns its length, or `None` if `out` is too small.
pub fn encode_reply(id: u16, reply: &Reply, out: &mut [u8]) -> Option<usize> {
    encode(id, reply.op(), |s| reply.write_body(s), out)
}
