//! `fota sim`: a simulated device served in real time on a pseudo-terminal and/or a
//! loopback WebSocket, its flash optionally kept in a file so that killing the process
//! is a real power cut.

use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use fota_sim::device::{DeviceConfig, FlashKind, LayoutKind, SimDevice};
use fota_sim::flash::WriteThrough;
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
    /// Whether the flash driver erases in the background (the part permitting: not on
    /// the STM32F4's internal flash).
    pub erase_suspend: bool,
}

/// The flash file, written through: every word the flash programs and every piece of an
/// erase goes to the file as the flash makes it (`SimFlash::set_write_through`), so that
/// killing the process in the middle of an operation leaves it part done in the file, as
/// a power cut leaves it on a real part.
struct StateFile {
    /// The first error writing the file, reported by the main loop.
    failed: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl StateFile {
    fn open(path: &PathBuf, cfg: &DeviceConfig) -> Result<(StateFile, SimDevice), String> {
        let existing = std::fs::read(path).ok().filter(|b| !b.is_empty());
        let mut dev = match existing {
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
        file.write_all_at(dev.flash_bytes(), 0)
            .and_then(|()| file.sync_data())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let failed = std::sync::Arc::new(std::sync::Mutex::new(None));
        let report = failed.clone();
        let sink: WriteThrough =
            std::sync::Arc::new(std::sync::Mutex::new(move |at: u32, bytes: &[u8]| {
                // One write a call: the file changes in the pieces the flash does. (No
                // fsync: the process dying is the cut modelled, not the machine.)
                if let Err(e) = file.write_all_at(bytes, u64::from(at)) {
                    let mut slot = report.lock().unwrap_or_else(|p| p.into_inner());
                    slot.get_or_insert(format!("saving the flash: {e}"));
                }
            }));
        dev.flash_mut().set_write_through(Some(sink));
        Ok((StateFile { failed }, dev))
    }

    /// The first error writing the file, if any.
    fn check(&self) -> Result<(), String> {
        match self.failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
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
    cfg.erase_suspend &= opts.erase_suspend;
    cfg.baud = opts.baud;
    cfg.latency_ns = u64::try_from(opts.latency.as_nanos()).unwrap_or(u64::MAX);
    cfg.fota_supported = !opts.unsupported;
    cfg.images = opts.images;
    cfg.accept_after_ns = u64::try_from(opts.accept_after.as_nanos()).unwrap_or(u64::MAX);
    let (state, mut dev) = match &opts.state {
        Some(path) => {
            let (s, d) = StateFile::open(path, &cfg)?;
            (Some(s), d)
        }
        None => (None, SimDevice::new(cfg.clone())),
    };
    let (in_tx, mut in_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let mut outputs: Vec<mpsc::UnboundedSender<Vec<u8>>> = Vec::new();
    // The pseudo-terminal whose rate the host end takes (see `sync_host_baud`); bytes
    // cross a WebSocket whatever the rates.
    let mut pty_fd = None;
    dev.set_garble_mismatch(false);

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
        if opts.ws.is_none() {
            pty_fd = Some(std::os::fd::AsRawFd::as_raw_fd(&master));
        }
        dev.set_garble_mismatch(pty_fd.is_some());
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

    let speed: u64 = if opts.fast { 20 } else { 1 };
    let start = Instant::now();
    let base = dev.now();
    let wall = |start: &Instant| {
        base + u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX) * speed
    };
    loop {
        let now = wall(&start);
        dev.run_until(now, false);
        sync_host_baud(&mut dev, pty_fd);
        while let Ok(bytes) = in_rx.try_recv() {
            sync_host_baud(&mut dev, pty_fd);
            dev.host_send(&bytes);
        }
        let out = dev.host_take();
        if !out.is_empty() {
            for o in &outputs {
                let _ = o.send(out.clone());
            }
        }
        if let Some(state) = &state {
            state.check()?;
        }
        let next = dev.next_event().unwrap_or(now + 5_000_000);
        let wait = (next.saturating_sub(now) / speed).clamp(100_000, 5_000_000);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_nanos(wait)) => {}
            bytes = in_rx.recv() => {
                if let Some(bytes) = bytes {
                    dev.run_until(wall(&start), false);
                    sync_host_baud(&mut dev, pty_fd);
                    dev.host_send(&bytes);
                }
            }
        }
    }
}

/// Set the host end's rate before bytes cross. A WebSocket has no baud rate: the host end
/// follows the agent's switches (and its return to the base rate). A pseudo-terminal has
/// the rate its client set: a client at another rate than the agent's gets garbage, as
/// on a real UART (a host that forgot the agent's rate is caught here, not only on
/// hardware).
fn sync_host_baud(dev: &mut SimDevice, pty_fd: Option<std::os::fd::RawFd>) {
    let host_baud = pty_fd
        .and_then(pty_baud)
        .unwrap_or_else(|| dev.device_baud());
    if dev.host_baud() != host_baud {
        dev.set_host_baud(host_baud);
    }
}

/// The output rate of the pseudo-terminal `fd` as its client set it: on Linux the master
/// reads the terminal's settings, and `TCGETS2` gives any rate, standard or not. `None`
/// elsewhere (the host end then follows the agent).
#[cfg(target_os = "linux")]
fn pty_baud(fd: std::os::fd::RawFd) -> Option<u32> {
    // SAFETY: `termios2` is plain data, and TCGETS2 fills it from an open terminal.
    let mut t: libc::termios2 = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::ioctl(fd, libc::TCGETS2, &mut t) };
    (r == 0 && t.c_ospeed > 0).then_some(t.c_ospeed)
}

#[cfg(not(target_os = "linux"))]
fn pty_baud(_fd: std::os::fd::RawFd) -> Option<u32> {
    None
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

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_storage::nor_flash::NorFlash;

    /// The file changes as the flash does, word by word, with no step of the device in
    /// between: a kill in the middle of a program or an erase leaves it part done there.
    #[test]
    fn the_state_file_is_written_through_as_the_flash_changes() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("flash.state");
        let cfg = DeviceConfig::new(LayoutKind::BytecodeOnly);
        let (state, mut dev) = StateFile::open(&path, &cfg).expect("open");
        let file = || std::fs::read(&path).expect("read the state file");
        assert_eq!(file(), dev.flash_bytes(), "the file starts as the flash");
        // Bytecode slot 1 of this layout starts past VM 0 and bytecode 0.
        let at = (cfg.vm_slot_size + cfg.bc_slot_size) as usize;
        let flash = dev.flash_mut();
        flash.erase(at as u32, at as u32 + 4096).expect("erase");
        assert!(file()[at..at + 4096].iter().all(|&b| b == 0xFF));
        flash.write(at as u32, &[1, 2, 3, 4]).expect("program");
        assert_eq!(file()[at..at + 4], [1, 2, 3, 4], "a word, at once");
        // A cut 10 bytes into a 16-byte program: the file holds what the flash holds,
        // the torn byte included.
        flash.arm_power_cut(10);
        assert!(flash.write(at as u32 + 4, &[0; 16]).is_err());
        assert_eq!(file(), dev.flash_bytes());
        let f = file();
        assert_eq!(f[at + 4..at + 14], [0; 10]);
        assert!(f[at + 15..at + 20].iter().all(|&b| b == 0xFF));
        state.check().expect("no write failed");
    }
}
