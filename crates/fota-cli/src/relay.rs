//! Run two external programs against each other over a modelled serial link, in
//! virtual time.
//!
//! Each program talks on its stdin/stdout pipes (as `sz` and `rz` do). What one writes
//! goes through a modelled [`Line`] (baud rate with 8N1 framing, one-way latency) to the
//! other's stdin, and back through a second `Line`: a full-duplex serial link.
//!
//! The programs run in real time, the link in virtual time. The relay is a time warp:
//!
//! * bytes a program writes are stamped with the current virtual time and queued on the
//!   line, which gives each byte its arrival time (back to back at `baud / 10` bytes a
//!   second, plus the latency);
//! * while either program is active (it wrote something, or the relay is still writing
//!   to it, within the last *quiet* period of real time) virtual time stands still: a
//!   program's own work costs no virtual time, as if its computer were infinitely fast;
//! * when both have been quiet for the quiet period, virtual time jumps to the end of the
//!   next chunk on its way (the next write of a program, as read from its pipe), and
//!   every byte that has arrived by then is handed to its receiver.
//!
//! The transfer's virtual duration, from the start to the arrival of the last byte, is
//! the measurement: it is what the same exchange takes on the modelled link with
//! infinitely fast peers, so only the protocol and the link count.
//!
//! A program that is slow to answer in real time (a loaded machine) while the other one
//! is streaming gets its answer stamped a little late, which can only make it look
//! slower; a stop-and-wait protocol is not affected, since nothing else moves while it
//! waits.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use fota_sim::line::Line;

/// One of the two programs.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The program (looked up on `PATH`).
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its working directory.
    pub cwd: PathBuf,
}

/// The modelled link and the relay's timing.
#[derive(Debug, Clone, Copy)]
pub struct RelayOptions {
    /// Baud rate of both directions (8N1: `baud / 10` bytes a second).
    pub baud: u32,
    /// One-way latency of both directions.
    pub latency: Duration,
    /// Real time without any activity after which both programs count as idle.
    pub quiet: Duration,
    /// Real time given to both programs to start before virtual time may move.
    pub startup: Duration,
    /// Real time after which the run is abandoned (both programs are killed).
    pub timeout: Duration,
}

/// What a relayed run did.
#[derive(Debug, Clone)]
pub struct RelayRun {
    /// Virtual time from the start to the arrival of the last byte.
    pub virtual_time: Duration,
    /// Real time the run took.
    pub real_time: Duration,
    /// Bytes carried from the first program to the second, and back.
    pub bytes: [u64; 2],
    /// Exit status of each program (`None`: it had to be killed).
    pub status: [Option<ExitStatus>; 2],
    /// What each program wrote on stderr.
    pub stderr: [String; 2],
    /// Whether the relay gave up at [`RelayOptions::timeout`].
    pub timed_out: bool,
}

impl RelayRun {
    /// Whether both programs exited successfully.
    pub fn both_succeeded(&self) -> bool {
        self.status.iter().all(|s| s.is_some_and(|s| s.success()))
    }
}

enum Event {
    /// A program wrote these bytes.
    Output(usize, Vec<u8>),
    /// A program closed its stdout.
    Eof(usize),
    /// The relay finished handing bytes to a program's stdin.
    Written(usize),
}

/// Whether `program` is an executable on `PATH`.
pub fn on_path(program: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| {
        let candidate = dir.join(program);
        std::fs::metadata(&candidate).is_ok_and(|m| m.is_file() && executable(&m))
    })
}

#[cfg(unix)]
fn executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn executable(_meta: &std::fs::Metadata) -> bool {
    true
}

/// Run `peers[0]` and `peers[1]` connected through the modelled link until both exit
/// (or the timeout passes).
pub fn run(peers: &[Peer; 2], opts: RelayOptions) -> Result<RelayRun, String> {
    let started = Instant::now();
    let mut children: Vec<Child> = Vec::with_capacity(2);
    for peer in peers {
        let child = Command::new(&peer.program)
            .args(&peer.args)
            .current_dir(&peer.cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        match child {
            Ok(c) => children.push(c),
            Err(e) => {
                for mut c in children {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                return Err(format!("cannot start {}: {e}", peer.program));
            }
        }
    }

    let (events, inbox) = mpsc::channel::<Event>();
    let mut feeds: Vec<Option<mpsc::Sender<Vec<u8>>>> = Vec::with_capacity(2);
    let mut threads = Vec::new();
    let mut stderr_threads = Vec::new();
    for (side, child) in children.iter_mut().enumerate() {
        let (Some(mut stdout), Some(mut stdin), Some(mut stderr)) =
            (child.stdout.take(), child.stdin.take(), child.stderr.take())
        else {
            return Err("a program's pipes could not be opened".into());
        };
        let tx = events.clone();
        threads.push(thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match stdout.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(Event::Eof(side));
                        return;
                    }
                    Ok(n) => {
                        if tx.send(Event::Output(side, buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                }
            }
        }));
        let (feed, chunks) = mpsc::channel::<Vec<u8>>();
        feeds.push(Some(feed));
        let tx = events.clone();
        threads.push(thread::spawn(move || {
            let mut open = true;
            for chunk in chunks {
                if open {
                    open = stdin.write_all(&chunk).and_then(|()| stdin.flush()).is_ok();
                }
                let _ = tx.send(Event::Written(side));
            }
            // Dropping stdin closes the pipe.
        }));
        stderr_threads.push(thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        }));
    }
    drop(events);

    let latency_ns = u64::try_from(opts.latency.as_nanos()).unwrap_or(u64::MAX);
    // lines[i] carries what program i writes to the other one.
    let mut lines = [
        Line::new(opts.baud, latency_ns),
        Line::new(opts.baud, latency_ns),
    ];
    // Arrival time of the last byte of each chunk still on its way, per line.
    let mut chunk_ends: [VecDeque<u64>; 2] = [VecDeque::new(), VecDeque::new()];
    let mut now_ns = 0u64;
    let mut last_arrival_ns = 0u64;
    let mut pending = [0usize; 2];
    let mut eof = [false; 2];
    let mut bytes = [0u64; 2];
    let mut last_activity = Instant::now();
    let mut timed_out = false;

    loop {
        if started.elapsed() > opts.timeout {
            timed_out = true;
            break;
        }
        let mut handle = |ev: Event| match ev {
            Event::Output(side, data) => {
                bytes[side] += data.len() as u64;
                let line = &mut lines[side];
                line.send(now_ns, &data);
                chunk_ends[side].push_back(line.idle_at().saturating_add(line.latency_ns()));
                last_activity = Instant::now();
            }
            Event::Eof(side) => eof[side] = true,
            Event::Written(side) => {
                pending[side] = pending[side].saturating_sub(1);
                last_activity = Instant::now();
            }
        };
        match inbox.recv_timeout(opts.quiet) {
            Ok(ev) => {
                handle(ev);
                while let Ok(ev) = inbox.try_recv() {
                    handle(ev);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        let idle = pending == [0, 0]
            && last_activity.elapsed() >= opts.quiet
            && started.elapsed() >= opts.startup;
        if !idle {
            continue;
        }
        let next = chunk_ends.iter().filter_map(|q| q.front().copied()).min();
        match next {
            Some(t) => {
                now_ns = now_ns.max(t);
                for side in 0..2 {
                    let arrived = lines[side].deliver(now_ns);
                    while chunk_ends[side].front().is_some_and(|&end| end <= now_ns) {
                        chunk_ends[side].pop_front();
                    }
                    if arrived.is_empty() {
                        continue;
                    }
                    last_arrival_ns = now_ns;
                    let to = 1 - side;
                    if let Some(feed) = &feeds[to] {
                        if feed.send(arrived).is_ok() {
                            pending[to] += 1;
                        } else {
                            feeds[to] = None;
                        }
                    }
                }
                last_activity = Instant::now();
            }
            None => {
                // Nothing on its way and both idle: done when both have closed stdout
                // (exited); otherwise a program is waiting on one of its own timers.
                if eof == [true, true] {
                    break;
                }
                let exited = children
                    .iter_mut()
                    .all(|c| matches!(c.try_wait(), Ok(Some(_))));
                if exited {
                    break;
                }
            }
        }
    }

    // Close both stdins, then collect the programs.
    feeds.clear();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut status: [Option<ExitStatus>; 2] = [None, None];
    for (side, child) in children.iter_mut().enumerate() {
        if timed_out {
            let _ = child.kill();
        }
        loop {
            match child.try_wait() {
                Ok(Some(s)) => {
                    status[side] = Some(s);
                    break;
                }
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
            }
        }
    }
    for t in threads {
        let _ = t.join();
    }
    let mut stderr = [String::new(), String::new()];
    for (side, t) in stderr_threads.into_iter().enumerate() {
        stderr[side] = t.join().unwrap_or_default();
    }
    Ok(RelayRun {
        virtual_time: Duration::from_nanos(last_arrival_ns),
        real_time: started.elapsed(),
        bytes,
        status,
        stderr,
        timed_out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relays_both_ways_in_virtual_time() {
        // A sends "hello" and waits for 5 bytes; B echoes 5 bytes back.
        let dir = std::env::temp_dir();
        let peers = [
            Peer {
                program: "sh".into(),
                args: vec!["-c".into(), "printf hello; head -c 5 >/dev/null".into()],
                cwd: dir.clone(),
            },
            Peer {
                program: "head".into(),
                args: vec!["-c".into(), "5".into()],
                cwd: dir,
            },
        ];
        let opts = RelayOptions {
            baud: 9_600,
            latency: Duration::from_millis(10),
            quiet: Duration::from_millis(2),
            startup: Duration::from_millis(20),
            timeout: Duration::from_secs(30),
        };
        let run = run(&peers, opts).expect("relay");
        assert!(!run.timed_out);
        assert!(run.both_succeeded(), "{:?}", run.stderr);
        assert_eq!(run.bytes, [5, 5]);
        // The model's arithmetic, not a speed: 5 bytes at 960 B/s plus 10 ms, twice.
        let one_way = Line::new(9_600, 0).byte_time_ns() as f64 * 5.0 + 10e6;
        let got = run.virtual_time.as_nanos() as f64;
        assert!((got - 2.0 * one_way).abs() < 10.0, "{got} ns");
    }
}
