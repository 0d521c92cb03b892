//! The lrzsz peers (`sz` to `rz`) over the modelled link, through the time-warp relay.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::model::{MIB, Peer, Setting};
use crate::relay;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Proto {
    Zmodem,
    Ymodem1k,
}

impl Proto {
    pub(super) fn name(self) -> &'static str {
        match self {
            Proto::Zmodem => "ZMODEM",
            Proto::Ymodem1k => "YMODEM-1k",
        }
    }
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> std::io::Result<Scratch> {
        static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("fota-bench-{}-{tag}-{n}", std::process::id()));
        std::fs::create_dir_all(dir.join("send"))?;
        std::fs::create_dir_all(dir.join("recv"))?;
        Ok(Scratch(dir))
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(super) fn run_peer(proto: Proto, s: &Setting, image: &[u8], quiet: Duration) -> Peer {
    let failed = |detail: String| Peer {
        ok: false,
        seconds: 0.0,
        efficiency: 0.0,
        detail,
    };
    let scratch = match Scratch::new(proto.name()) {
        Ok(d) => d,
        Err(e) => return failed(format!("no scratch directory: {e}")),
    };
    let name = "image.bin";
    if let Err(e) = std::fs::write(scratch.path().join("send").join(name), image) {
        return failed(format!("cannot write the image: {e}"));
    }
    let (sz_args, rz_args): (Vec<&str>, Vec<&str>) = match proto {
        Proto::Zmodem => (vec!["-q", name], vec!["-q", "-y"]),
        Proto::Ymodem1k => (
            vec!["-q", "--ymodem", "-k", name],
            vec!["-q", "-y", "--ymodem"],
        ),
    };
    let peers = [
        relay::Peer {
            program: "sz".into(),
            args: sz_args.into_iter().map(String::from).collect(),
            cwd: scratch.path().join("send"),
        },
        relay::Peer {
            program: "rz".into(),
            args: rz_args.into_iter().map(String::from).collect(),
            cwd: scratch.path().join("recv"),
        },
    ];
    let opts = relay::RelayOptions {
        baud: s.baud,
        latency: s.latency(),
        quiet,
        startup: Duration::from_millis(100),
        timeout: Duration::from_secs(60 + 60 * (s.image_len / MIB) as u64),
    };
    let run = match relay::run(&peers, opts) {
        Ok(r) => r,
        Err(e) => return failed(e),
    };
    let received = std::fs::read(scratch.path().join("recv").join(name));
    let same = received.as_deref().is_ok_and(|r| r == image);
    let seconds = run.virtual_time.as_secs_f64();
    let mut problems = Vec::new();
    if run.timed_out {
        problems.push(format!(
            "gave up after {:.0} s of real time",
            run.real_time.as_secs_f64()
        ));
    }
    if !run.both_succeeded() {
        let err = run.stderr.iter().map(|e| e.trim()).collect::<Vec<_>>();
        problems.push(format!(
            "sz {:?}, rz {:?}: {}",
            run.status[0].and_then(|s| s.code()),
            run.status[1].and_then(|s| s.code()),
            err.join(" | ")
        ));
    }
    if !same {
        problems.push(match received {
            Ok(r) => format!(
                "the received file differs from the image ({} of {} bytes)",
                r.len(),
                image.len()
            ),
            Err(e) => format!("no file received: {e}"),
        });
    }
    let ok = problems.is_empty() && seconds > 0.0;
    Peer {
        ok,
        seconds,
        efficiency: if ok {
            s.image_len as f64 / (seconds * s.bytes_per_second())
        } else {
            0.0
        },
        detail: if ok {
            format!(
                "{} bytes sent, {} back; {:.1} s of real time",
                run.bytes[0],
                run.bytes[1],
                run.real_time.as_secs_f64()
            )
        } else {
            problems.join("; ")
        },
    }
}
