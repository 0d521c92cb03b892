//! Compressed and delta updates: what the host picks and how it streams it.
//!
//! An agent that lists codecs in `Info` (tag 5) decodes a compressed stream
//! (docs/CODECS.md) into the slot as it arrives, its dictionary being the flash: the
//! bytes already written and, for a delta, an image the device already holds. The host
//! compresses by default; given images the device may hold ([`crate::Plan::bases`]) it
//! first asks the device's MD5 of its slots to find one of them, and sends a delta from
//! it, or a full compressed stream when none is there. By default (`Codec::Auto`) the
//! stream is then weighed against the raw image by a model of the link and the flash
//! ([`Pace`]): where the flash, not the line, sets the pace, the raw image is faster and
//! goes instead. Resume is kept: only the blocks
//! that cover sectors the slot does not already hold are sent. What was picked is said
//! in one sentence ([`Choice::sentence`]) through the observer, as the Stream step's
//! detail and as an event line.

use core::fmt;
use core::str::FromStr;

pub use fota_codec::stream::{Stream, StreamError};
use fota_protocol::{Info, NO_BASE, Record, SlotDesc, SlotKind, codec};

use crate::encoder::encode;
pub use crate::encoder::{EncodeFuture, Encoder};
use crate::{Device, HostError, Image, Step, Transport};

mod pace;
mod requests;
mod send;
pub use pace::{DEFAULT_PROGRAM_NS_PER_BYTE, Pace, Work};
use pace::{Verdict, judge};

/// How to send an image: chosen by the user (`--codec`), `Auto` by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Codec {
    /// The fastest the device can take, by a model of the link and the flash
    /// ([`Pace`]): a delta from an image it holds, else the image compressed, unless
    /// the raw image is modelled faster (the flash, not the line, sets the pace); the
    /// raw image for an agent without codecs.
    #[default]
    Auto,
    /// The raw image, as `WriteSlot`s.
    None,
    /// The image compressed (LZMA with the flash as dictionary).
    Lzma,
    /// A delta from an image the device holds; a compressed image when it holds none.
    Delta,
}

impl FromStr for Codec {
    type Err = String;
    fn from_str(s: &str) -> Result<Codec, String> {
        match s {
            "auto" => Ok(Codec::Auto),
            "none" | "raw" => Ok(Codec::None),
            "lzma" => Ok(Codec::Lzma),
            "delta" => Ok(Codec::Delta),
            other => Err(format!(
                "unknown codec {other:?}: use auto, none, lzma or delta"
            )),
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Codec::Auto => "auto",
            Codec::None => "none",
            Codec::Lzma => "lzma",
            Codec::Delta => "delta",
        })
    }
}

/// The method picked for one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// Raw `WriteSlot`s; the reason in words.
    Raw(String),
    /// A compressed stream.
    Compressed,
    /// A delta from the image in `slot`, described in words ("the running firmware").
    Delta {
        /// Where the base is.
        slot: SlotDesc,
        /// It in words.
        from: String,
        /// Its length.
        base_len: u32,
    },
}

impl Method {
    /// The stream's name in the model's sentence ("compressed", "the delta").
    fn stream_word(&self) -> &'static str {
        match self {
            Method::Delta { .. } => "the delta",
            _ => "compressed",
        }
    }
}

/// What the host picked for one image: the method, the bytes it sends, the sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The method.
    pub method: Method,
    /// Bytes that go on the wire as image data (the stream, or the raw bytes).
    pub sent: u64,
    /// Image bytes.
    pub image: u64,
    /// Image bytes already on the device (resume), not sent again.
    pub kept: u64,
    /// Why, when the model chose (`--codec auto`): the modelled times, e.g. "about
    /// 13.1 s against 21.5 s raw at 115200 baud"; empty otherwise.
    pub why: String,
}

impl Choice {
    /// The raw image of `image` bytes, `kept` of them already in the slot, sent for `why`.
    fn raw(why: String, image: u64, kept: u64) -> Self {
        Choice {
            method: Method::Raw(why),
            sent: image - kept,
            image,
            kept,
            why: String::new(),
        }
    }

    /// One sentence for the user, e.g. "sending 12 KiB for 238 KiB: delta from the
    /// running firmware".
    pub fn sentence(&self) -> String {
        let how = match &self.method {
            Method::Raw(why) => format!("uncompressed ({why})"),
            Method::Compressed => "compressed".to_string(),
            Method::Delta { from, .. } => format!("delta from {from}"),
        };
        let how = match (&self.method, self.why.is_empty()) {
            (Method::Raw(_), _) | (_, true) => how,
            (_, false) => format!("{how} ({})", self.why),
        };
        let kept = if self.kept > 0 {
            format!(", {} KiB already on the device", kib(self.kept))
        } else {
            String::new()
        };
        format!(
            "sending {} KiB for {} KiB: {how}{kept}",
            kib(self.sent),
            kib(self.image)
        )
    }
}

fn kib(bytes: u64) -> u64 {
    bytes.div_ceil(1024)
}

/// The stream picked, or why the image goes raw.
pub(crate) enum Picked {
    Raw(String),
    Stream {
        stream: Stream,
        method: Method,
        /// A delta's base whose MD5 the device has not given yet: the MD5 it must have.
        unchecked: Option<[u8; 16]>,
    },
}

/// How [`pick`] looks for a delta's base: `skip` candidates (slot and base image, the
/// running slot first) already found absent; `speculate`: take the first one without
/// waiting for the device's MD5 of it, which then goes ahead of the stream in the same
/// pipeline ([`send::send_stream`]): a round trip saved, the check the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BaseSearch {
    pub(crate) skip: usize,
    pub(crate) speculate: bool,
}

/// Pick how `image` goes to `slot`: asks the device's MD5 of candidate base slots for a
/// delta (the running one first, from `record`), encodes (with `encoder`, else the
/// built-in one). An encoder that fails (one loaded from the network while offline)
/// leaves the image raw, the reason said.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn pick<T: Transport>(
    dev: &mut Device<T>,
    info: &Info,
    record: &Record,
    slot: &SlotDesc,
    image: &Image,
    choice: Codec,
    bases: &[Image],
    encoder: Option<&Encoder>,
    search: BaseSearch,
) -> Result<Picked, HostError> {
    if choice == Codec::None {
        return Ok(Picked::Raw("--codec none".into()));
    }
    if !info.supports(codec::LZMA) {
        return Ok(Picked::Raw("the device's agent has no decoder".into()));
    }
    let failed = |e: String| Picked::Raw(format!("the encoder failed: {e}"));
    if choice != Codec::Lzma && info.supports(codec::LZMA_DELTA) && !bases.is_empty() {
        if let Some((base, base_slot, from, unchecked)) =
            find_base(dev, info, record, slot, image, bases, search).await?
        {
            let stream = match encode(encoder, Some(base.data()), image.data()).await {
                Ok(s) => s,
                Err(e) => return Ok(failed(e)),
            };
            let method = Method::Delta {
                slot: base_slot,
                from,
                base_len: base.len() as u32,
            };
            return Ok(Picked::Stream {
                stream,
                method,
                unchecked: unchecked.then(|| base.md5()),
            });
        }
        if choice == Codec::Delta {
            dev.observer().event(
                "none of the base images is on the device (checked by its MD5): sending the \
                 whole image compressed",
            );
        }
    }
    let stream = match encode(encoder, None, image.data()).await {
        Ok(s) => s,
        Err(e) => return Ok(failed(e)),
    };
    if stream.len() >= image.len() && choice == Codec::Auto {
        return Ok(Picked::Raw("it does not compress".into()));
    }
    Ok(Picked::Stream {
        stream,
        method: Method::Compressed,
        unchecked: None,
    })
}

/// The first of `bases` that a slot of the target's kind holds (other than the target),
/// the running slot first (`record`: the update read it at its start; what runs does
/// not change before the restart), checked by the device's MD5; after the first
/// `search.skip` candidates. With `search.speculate`, where one base image fits the
/// running slot, that one unchecked (the last field `true`): its MD5 is asked for ahead
/// of the stream.
async fn find_base<'b, T: Transport>(
    dev: &mut Device<T>,
    info: &Info,
    record: &Record,
    target: &SlotDesc,
    image: &Image,
    bases: &'b [Image],
    search: BaseSearch,
) -> Result<Option<(&'b Image, SlotDesc, String, bool)>, HostError> {
    let running = match target.kind {
        SlotKind::Vm => record.running_vm,
        SlotKind::Bytecode => record.running_bc,
    };
    let mut slots: Vec<SlotDesc> = info
        .slots
        .iter()
        .filter(|s| s.kind == target.kind && s.addr != target.addr)
        .copied()
        .collect();
    slots.sort_by_key(|s| (u32::from(s.index) != running, s.index));
    // A base equal to the image is no delta at all, and a base larger than its slot
    // cannot be there.
    let candidates: Vec<(SlotDesc, &Image)> = slots
        .iter()
        .flat_map(|s| {
            bases
                .iter()
                .filter(|b| b.len() <= s.size as usize && b.data() != image.data())
                .map(move |b| (*s, b))
        })
        .collect();
    // A guess worth making: one base image for the running slot (the firmware the user
    // says the device runs). With several, the first may well be another release.
    let in_running = candidates
        .iter()
        .filter(|(s, _)| u32::from(s.index) == running)
        .count();
    let speculate = search.speculate && in_running == 1;
    for (k, &(s, base)) in candidates.iter().enumerate().skip(search.skip) {
        let kind = s.kind.label();
        let from = if u32::from(s.index) == running {
            format!("the running firmware ({})", base.name)
        } else {
            format!("{} in {kind} slot {}", base.name, s.index)
        };
        if speculate && k == search.skip && u32::from(s.index) == running {
            // Asked behind the opening's `Hello` (protocol 3: `RUNNING_BYTECODE`, the
            // slot `running` names), nothing sent since: its answer settles it.
            let size = u32::try_from(base.len()).unwrap_or(u32::MAX);
            // Its answer still on its way: the stream's pipeline takes it as its base
            // check (crate::codec::send), its requests not waiting for it.
            if s.kind == SlotKind::Bytecode && dev.adopt_running_check(s.addr, size) {
                return Ok(Some((base, s, from, true)));
            }
            if s.kind == SlotKind::Bytecode
                && let Some(md5) = dev.running_md5(size).await?
            {
                if md5 == base.md5() {
                    return Ok(Some((base, s, from, false)));
                }
                continue; // not on the device: the others, each checked
            }
            return Ok(Some((base, s, from, true)));
        }
        let md5 = dev
            .checksum_slot(s.addr, base.len() as u32, &mut |_, _, _, _| {})
            .await?;
        if md5 == base.md5() {
            return Ok(Some((base, s, from, false)));
        }
    }
    Ok(None)
}

/// A compressed or delta stream picked for one image, said, ready to send.
pub(crate) struct Prepared {
    stream: Stream,
    method: Method,
    image_len: u64,
    kept: u64,
    /// A delta's base not checked yet: the MD5 the device must give of it.
    unchecked: Option<[u8; 16]>,
}

/// Whether the block at `offset` of `len` image bytes is needed: unless every sector it
/// touches already holds the image (`done[i]` for sector `i`, `sectors[i]` its image
/// offsets).
fn needed(sectors: &[(usize, usize)], done: &[bool], offset: u32, len: u32) -> bool {
    let (a, b) = (offset as usize, offset as usize + len as usize);
    sectors
        .iter()
        .zip(done)
        .any(|(&(s, e), d)| !d && s < b && a < e)
}

/// The Stream step of one image, when the device takes a compressed stream: picks the
/// method and says it. `done[i]` says whether sector `i` (`sectors[i]`: image offsets)
/// already holds the image. `None` when the image goes raw (the caller streams it, the
/// sentence already said) or the slot already holds all of it.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn prepare_stream<T: Transport>(
    dev: &mut Device<T>,
    info: &Info,
    record: &Record,
    slot: &SlotDesc,
    image: &Image,
    choice: Codec,
    bases: &[Image],
    encoder: Option<&Encoder>,
    sectors: &[(usize, usize)],
    done: &[bool],
    search: BaseSearch,
) -> Result<Option<Prepared>, HostError> {
    let kept: u64 = sectors
        .iter()
        .zip(done)
        .filter(|(_, d)| **d)
        .map(|(&(a, b), _)| (b - a) as u64)
        .sum();
    let image_len = image.len() as u64;
    if kept == image_len {
        return Ok(None); // resumed: the slot holds it all, nothing to send
    }
    let picked = pick(
        dev, info, record, slot, image, choice, bases, encoder, search,
    )
    .await?;
    let (stream, method, unchecked) = match picked {
        Picked::Raw(why) => {
            say(dev, &Choice::raw(why, image_len, kept));
            return Ok(None);
        }
        Picked::Stream {
            stream,
            method,
            unchecked,
        } => (stream, method, unchecked),
    };
    let to_send = stream
        .select(|offset, len| needed(sectors, done, offset, len))
        .len() as u64;
    let mut why = String::new();
    if choice == Codec::Auto {
        let blocks = stream
            .blocks()
            .iter()
            .filter(|b| needed(sectors, done, b.offset, b.len))
            .count() as u64;
        let work = Work {
            image: image_len - kept,
            sectors: done.iter().filter(|d| !**d).count() as u64,
            sector_size: info.sector_size,
        };
        match judge(dev, info, &work, to_send, blocks, method.stream_word()).await? {
            Verdict::Raw(reason) => {
                say(dev, &Choice::raw(reason, image_len, kept));
                return Ok(None);
            }
            Verdict::Stream(reason) => why = reason,
        }
    }
    let choice = Choice {
        method: method.clone(),
        sent: to_send,
        image: image_len,
        kept,
        why,
    };
    say(dev, &choice);
    Ok(Some(Prepared {
        stream,
        method,
        image_len,
        kept,
        unchecked,
    }))
}

impl Prepared {
    /// Erase the dirty sectors (`erases`) and send the blocks over the sectors not done,
    /// each sector erased ahead of the frames that write it; the times, bytes
    /// and erases go to `report`. `false`: a delta's base, asked for ahead of the stream
    /// ([`BaseSearch::speculate`]), is not on the device (by its MD5): nothing was
    /// written that counts, pick again past it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn send<T: Transport>(
        &self,
        dev: &mut Device<T>,
        info: &Info,
        slot: &SlotDesc,
        sectors: &[(usize, usize)],
        done: &[bool],
        mut erases: crate::stream_erases::StreamErases,
        report: &mut crate::report::Report,
    ) -> Result<bool, HostError> {
        let kind = match slot.kind {
            SlotKind::Vm => "VM",
            SlotKind::Bytecode => "bytecode",
        };
        let what = if erases.bytes() == 0 {
            format!(
                "Nothing to erase in {kind} slot {}: it is ready",
                slot.index
            )
        } else {
            format!(
                "Erasing {} KiB of {kind} slot {}, each sector ahead of the stream",
                erases.bytes() / 1024,
                slot.index
            )
        };
        dev.observer().step(Step::Erase, &what);
        let needed = |offset: u32, len: u32| needed(sectors, done, offset, len);
        // Block erases where they pay for this stream's bytes (crate::erase_plan).
        let sent = self.stream.select(needed).len() as u64;
        let max_write = u64::from(info.max_write.max(1));
        let load = crate::erase_plan::Load {
            // An agent that erases in the background (Info tag 11) never stalls the line
            // for an erase: every block that fits is taken, as on a link without a rate.
            baud: dev.link().baud().filter(|_| !info.background_erase),
            round_trip: dev.latency().unwrap_or_default(),
            line_bytes: sent + sent.div_ceil(max_write) * 18,
            program_bytes: self.image_len - self.kept,
            spread: true,
        };
        erases.use_blocks(info, &load);
        erases.cover_past_end(info, slot.size, &load);
        let t = dev.now();
        let (base, check) = match &self.method {
            Method::Delta {
                slot: b, base_len, ..
            } => (b.addr, self.unchecked.map(|md5| (*base_len, md5))),
            _ => (NO_BASE, None),
        };
        let sent = send::send_stream(
            dev,
            info,
            slot,
            &self.stream,
            base,
            check,
            &needed,
            self.image_len - self.kept,
            &mut erases,
        )
        .await?;
        erases.count(report, info);
        report.erase_time += erases.first_wait;
        report.stream_time += (dev.now() - t).saturating_sub(erases.first_wait);
        report.sent_bytes += sent.unwrap_or(0);
        Ok(sent.is_some())
    }
}

fn say<T: Transport>(dev: &mut Device<T>, choice: &Choice) {
    let s = choice.sentence();
    // The step's detail is what the CLI prints and the web app's stepper shows; the
    // event line is the log both keep.
    let mut line = s.clone();
    if let Some(first) = line.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    dev.observer().step(Step::Stream, &line);
    dev.observer().event(&s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_says_its_modelled_time() {
        let choice = Choice {
            method: Method::Compressed,
            sent: 145_315,
            image: 243_852,
            kept: 0,
            why: "about 12.8 s against 21.5 s raw at 115200 baud".into(),
        };
        assert_eq!(
            choice.sentence(),
            "sending 142 KiB for 239 KiB: compressed (about 12.8 s against 21.5 s raw at \
             115200 baud)"
        );
        assert_eq!(Method::Compressed.stream_word(), "compressed");
    }
}
