//! `fota sim`: a simulated device served in real time on a pseudo-terminal and/or a
//! loopback WebSocket, its flash optionally kept in a file so that killing the process
//! is a real power cut.

use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use fota_sim::device::{DeviceConfig, FlashKind, LayoutKind, SECTOR, SimDevice};
use futures_util::{SinkExt, StreamExt};
use serialport::SerialPort;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::ws_access::Access;

pub struct SimOptions {
    pub layout: LayoutKind,
    pub flash: FlashKind,
    pub pty: bool,
    pub ws: Option<String>,
    pub state: Option<PathBuf>,
    pub baud: u32,
    pub latency: Duration,
    pub unsupported: bool,
    /// What the simulated device requires of images.
    pub images: fota_agent::ImagePolicy,
    pub fast: bool,
    pub accept_after: Duration,
    /// Who may open the WebSocket.
    pub access: crate::ws_access::AccessArgs,
}

/// The flash file: written sector by sector as sectors change.
struct StateFile {
    file: std::fs::File,
    shadow: Vec<u8>,
}

impl StateFile {
    fn open(path: &PathBuf, cfg: &DeviceConfig) -> Result<(StateFile, SimDevice), String> {
        let existing = std::fs::read(path).ok().filter(|b| !b.is_empty());
        let dev = match existing {
            Some(bytes) => SimDevice::from_image(cfg.clone(), bytes).map_err(|e| {
                format!(
                    "{}: not a flash image for this layout ({e}); delete it to start fresh",
                    path.display()
                )
            })?,
            None => SimDevice::new(cfg.clone()),
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let shadow = dev.flash_bytes().to_vec();
        file.write_all_at(&shadow, 0)
            .and_then(|()| file.sync_data())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok((StateFile { file, shadow }, dev))
    }

    /// Write the sectors that changed since the last call.
    fn sync(&mut self, flash: &[u8]) -> Result<(), String> {
        let sector = SECTOR as usize;
        let mut changed = false;
        for (i, (now, was)) in flash
            .chunks(sector)
            .zip(self.shadow.chunks_mut(sector))
            .enumerate()
        {
            if now != was {
                self.file
                    .write_all_at(now, (i * sector) as u64)
                    .map_err(|e| format!("saving the flash: {e}"))?;
                was.copy_from_slice(now);
                changed = true;
            }
        }
        if changed {
            self.file
                .sync_data()
                .map_err(|e| format!("saving the flash: {e}"))?;
        }
        Ok(())
    }
}

/// The image policy of `fota sim`'s flags: the open default, or signatures required by
/// the public keys in `keys` (files or hex), packed images only, no downgrades, no checks.
pub fn image_policy(
    keys: &[String],
    packed_only: bool,
    no_downgrade: bool,
    no_checks: bool,
) -> Result<fota_agent::ImagePolicy, String> {
    use fota_agent::ImagePolicy;
    if no_checks {
        return Ok(ImagePolicy::NONE);
    }
    let mut policy = ImagePolicy::OPEN;
    if !keys.is_empty() {
        let mut trusted = Vec::new();
        for k in keys {
            let key = fota_image::host::PublicKey::read(k).map_err(|e| e.to_string())?;
            trusted.push(key.trusted());
        }
        // The simulator runs for the life of the process: its keys too.
        policy = ImagePolicy::signed(Box::leak(trusted.into_boxed_slice()));
        policy.allow_downgrade = true;
    }
    if packed_only {
        policy.allow_raw = false;
    }
    if no_downgrade {
        policy.allow_downgrade = false;
    }
    Ok(policy)
}

pub async fn run(opts: SimOptions) -> Result<(), String> {
    if !opts.pty && opts.ws.is_none() {
        return Err("say where to serve the device: --pty and/or --ws 127.0.0.1:PORT".into());
    }
    // Flags checked before anything is served.
    let access = Access::new(&opts.access)?;
    let mut cfg = DeviceConfig::new(opts.layout).with_flash(opts.flash);
    cfg.baud = opts.baud;
    cfg.latency_ns = u64::try_from(opts.latency.as_nanos()).unwrap_or(u64::MAX);
    cfg.fota_supported = !opts.unsupported;
    cfg.images = opts.images;
    cfg.accept_after_ns = u64::try_from(opts.accept_after.as_nanos()).unwrap_or(u64::MAX);
    let (mut state, mut dev) = match &opts.state {
        Some(path) => {
            let (s, d) = StateFile::open(path, &cfg)?;
            (Some(s), d)
        }
        None => (None, SimDevice::new(cfg.clone())),
    };
    dev.set_garble_mismatch(false);
    let (in_tx, mut in_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let mut outputs: Vec<mpsc::UnboundedSender<Vec<u8>>> = Vec::new();

    if opts.pty {
        let (mut master, slave) = serialport::TTYPort::pair()
            .map_err(|e| format!("cannot make a pseudo-terminal: {e}"))?;
        master
            .set_timeout(Duration::from_millis(50))
            .map_err(|e| format!("pty: {e}"))?;
        let name = slave.name().unwrap_or_default();
        println!("pty: {name}");
        // Closed at once: clients open the terminal by name (the port is locked while
        // one has it), and the reader waits while nobody has it open.
        drop(slave);
        let mut reader = master.try_clone_native().map_err(|e| format!("pty: {e}"))?;
        let mut writer = master;
        let tx = in_tx.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match reader.read(&mut buf) {
                    Ok(n) if n > 0 => {
                        if tx.send(buf[..n].to_vec()).is_err() {
                            return;
                        }
                    }
                    Ok(_) => std::thread::sleep(Duration::from_millis(5)),
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    // EIO while no client has the terminal open: wait for one.
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
        outputs.push(out_tx);
        std::thread::spawn(move || {
            while let Some(bytes) = out_rx.blocking_recv() {
                // With no client reading, the terminal's buffer fills and the write times
                // out: the bytes are lost, as on a UART nobody listens to.
                let _ = writer.write_all(&bytes);
            }
        });
    }
    if let Some(addr) = &opts.ws {
        let addr = crate::bridge::loopback_addr(addr)?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        // Programs connect with this URL (the token in it); browsers need no token.
        println!("ws: {}", access.url(addr));
        println!("{}", access.describe());
        if let Some(warning) = access.warning() {
            eprintln!("{warning}");
        }
        let (out_tx, out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
        outputs.push(out_tx);
        tokio::spawn(serve_ws(listener, access.clone(), in_tx.clone(), out_rx));
    }
    println!(
        "simulated device ready: {} layout, {} baud, {:.1} ms latency{}",
        match opts.layout {
            LayoutKind::BytecodeOnly => "bytecode-only",
            LayoutKind::VmAndBytecode => "VM + bytecode",
        },
        opts.baud,
        opts.latency.as_secs_f64() * 1000.0,
        opts.state
            .as_ref()
            .map(|p| format!(", flash in {}", p.display()))
            .unwrap_or_default()
    );
    let _ = std::io::stdout().flush();

    let mut saved_generation = (dev.flash().bytes_programmed(), dev.flash().total_erases());
    let speed: u64 = if opts.fast { 20 } else { 1 };
    let start = Instant::now();
    let base = dev.now();
    let wall = |start: &Instant| {
        base + u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX) * speed
    };
    loop {
        let now = wall(&start);
        dev.run_until(now, false);
        while let Ok(bytes) = in_rx.try_recv() {
            dev.host_send(&bytes);
        }
        // A pseudo-terminal or a WebSocket has no baud rate: the host end follows the
        // agent's switches (and its return to the base rate after a reset).
        if dev.host_baud() != dev.device_baud() {
            dev.set_host_baud(dev.device_baud());
        }
        let out = dev.host_take();
        if !out.is_empty() {
            for o in &outputs {
                let _ = o.send(out.clone());
            }
        }
        // Compare and save only after the flash changed (a program or an erase).
        let generation = (dev.flash().bytes_programmed(), dev.flash().total_erases());
        if let Some(state) = &mut state
            && generation != saved_generation
        {
            state.sync(dev.flash_bytes())?;
            saved_generation = generation;
        }
        let next = dev.next_event().unwrap_or(now + 5_000_000);
        let wait = (next.saturating_sub(now) / speed).clamp(100_000, 5_000_000);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_nanos(wait)) => {}
            bytes = in_rx.recv() => {
                if let Some(bytes) = bytes {
                    dev.run_until(wall(&start), false);
                    dev.host_send(&bytes);
                }
            }
        }
    }
}

async fn serve_ws(
    listener: TcpListener,
    access: Access,
    to_device: mpsc::UnboundedSender<Vec<u8>>,
    mut from_device: mpsc::UnboundedReceiver<Vec<u8>>,
) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let Some(ws) = access.accept(stream, peer).await else {
            continue;
        };
        let (mut sink, mut source) = ws.split();
        // Output from before this client connected is stale.
        while from_device.try_recv().is_ok() {}
        loop {
            tokio::select! {
                msg = source.next() => match msg {
                    Some(Ok(Message::Binary(b))) => {
                        let _ = to_device.send(b.to_vec());
                    }
                    Some(Ok(Message::Text(t))) => {
                        let _ = to_device.send(t.as_bytes().to_vec());
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break,
                },
                bytes = from_device.recv() => {
                    let Some(bytes) = bytes else { return };
                    if sink.send(Message::Binary(bytes.into())).await.is_err() {
                        break;
                    }
                }
            }
        }
    }
}
