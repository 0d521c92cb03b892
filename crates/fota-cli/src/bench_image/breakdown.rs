//! `fota bench --breakdown`: a transport that notes each request and reply in the link's
//! time, and the timeline it prints with the flash's busy spans.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fota_host::codec::Codec;

/// A transport that notes, in the link's time, each request the host sends and each
/// reply it receives: the timeline `--breakdown` prints.
pub(super) struct Traced<T> {
    pub(super) inner: T,
    pub(super) out: fota_protocol::FrameReader<2048>,
    pub(super) back: fota_protocol::FrameReader<2048>,
    pub(super) log: Arc<Mutex<Vec<(Duration, String)>>>,
}

fn short(what: String) -> String {
    let mut s: String = what.chars().take(70).collect();
    if s.len() < what.len() {
        s.push_str("...");
    }
    s
}

/// The frames `bytes` completes in `reader`, one line each: `arrow`, the frame's id and
/// `describe`'s words for it, shortened.
fn frames(
    reader: &mut fota_protocol::FrameReader<2048>,
    bytes: &[u8],
    arrow: &str,
    describe: impl Fn(&fota_protocol::Frame<'_>) -> String,
) -> Vec<String> {
    let mut rest = bytes;
    let mut lines = Vec::new();
    while !rest.is_empty() {
        let (used, ev) = reader.feed(rest);
        if let Some(fota_protocol::Event::Frame(f)) = ev {
            lines.push(format!("{arrow} #{} {}", f.id, short(describe(&f))));
        }
        rest = &rest[used..];
    }
    lines
}

impl<T: fota_host::Transport> Traced<T> {
    fn note(&self, line: String) {
        if let Ok(mut log) = self.log.lock() {
            log.push((self.inner.now(), line));
        }
    }
}

impl<T: fota_host::Transport> fota_host::Transport for Traced<T> {
    async fn send(&mut self, bytes: &[u8]) -> Result<(), fota_host::LinkError> {
        for l in frames(&mut self.out, bytes, "->", |f| match f.request() {
            Ok(fota_protocol::Request::StreamData { offset, data }) => {
                format!("StreamData {{ offset: {offset}, {} bytes }}", data.len())
            }
            Ok(r) => format!("{r:?}"),
            Err(_) => format!("op {:#x}", f.op),
        }) {
            self.note(l);
        }
        self.inner.send(bytes).await
    }

    async fn recv(
        &mut self,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<usize, fota_host::LinkError> {
        let n = self.inner.recv(buf, timeout).await?;
        for l in frames(&mut self.back, &buf[..n], "<-", |f| match f.reply() {
            Ok(r) => format!("{r:?}"),
            Err(_) => format!("op {:#x}", f.op),
        }) {
            self.note(l);
        }
        Ok(n)
    }

    fn now(&self) -> Duration {
        self.inner.now()
    }

    async fn sleep(&mut self, d: Duration) {
        self.inner.sleep(d).await;
    }

    async fn set_baud(&mut self, baud: u32) -> Result<(), fota_host::LinkError> {
        self.inner.set_baud(baud).await
    }

    fn baud(&self) -> Option<u32> {
        self.inner.baud()
    }

    async fn reconnect(&mut self) -> Result<(), fota_host::LinkError> {
        self.inner.reconnect().await
    }
}

/// `--breakdown`: the requests and replies of one update with the flash's busy spans
/// (runs of agent steps less than 1 ms apart), in ms from the update's start, on
/// standard error.
pub(super) fn print_breakdown(
    t0: Duration,
    log: &Mutex<Vec<(Duration, String)>>,
    spans: &[fota_sim::device::FlashSpan],
    baud: u32,
    latency_ms: u64,
    codec: Codec,
) {
    let origin = t0.as_nanos() as u64;
    let ms = |ns: u64| ns.saturating_sub(origin) as f64 / 1e6;
    let mut lines: Vec<(u64, String)> = log
        .lock()
        .map(|l| {
            l.iter()
                .map(|(t, s)| (t.as_nanos() as u64, s.clone()))
                .collect()
        })
        .unwrap_or_default();
    let mut run: Option<(u64, u64, bool)> = None;
    let flush = |r: (u64, u64, bool), lines: &mut Vec<(u64, String)>| {
        if r.1 > origin {
            lines.push((
                r.0,
                format!(
                    "   flash {} until {:.1} ms ({:.1} ms)",
                    if r.2 {
                        "hashing"
                    } else {
                        "erasing/programming"
                    },
                    ms(r.1),
                    (r.1 - r.0) as f64 / 1e6
                ),
            ));
        }
    };
    for s in spans {
        run = match run {
            Some(r) if r.2 == s.hashing && s.start < r.1 + 1_000_000 => Some((r.0, s.end, r.2)),
            Some(r) => {
                flush(r, &mut lines);
                Some((s.start, s.end, s.hashing))
            }
            None => Some((s.start, s.end, s.hashing)),
        };
    }
    if let Some(r) = run {
        flush(r, &mut lines);
    }
    lines.sort_by_key(|l| l.0);
    eprintln!("--- {baud} baud, {latency_ms} ms, {codec}:");
    for (t, l) in lines {
        eprintln!("{:9.1} {l}", ms(t));
    }
}
