//! `fota qemu`: the real firmware (`crates/fota-firmware`) on an emulated Cortex-M4,
//! QEMU's mps2-an386. Builds or finds the firmware, prepares the flash file (QEMU's
//! file-backed main RAM, so killing QEMU is a power cut), starts QEMU and prints the
//! serial port, like `fota sim`.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::firmware_build;

/// What `fota qemu` was asked for.
pub struct QemuOptions {
    /// The VM + bytecode layout instead of bytecode only.
    pub vm_layout: bool,
    /// Keep the flash in this file (created with the factory images if missing).
    pub state: Option<PathBuf>,
    /// Serve on a WebSocket at this loopback address (through `fota bridge`).
    pub ws: Option<String>,
    /// Who the WebSocket accepts (origins, token).
    pub access: crate::ws_access::AccessArgs,
    /// Use these firmware ELF files instead of building them.
    pub firmware: Option<PathBuf>,
    /// Where UART1 (the firmware's debug console) goes.
    pub debug_log: Option<PathBuf>,
    /// Print JSON lines.
    pub json: bool,
    /// Milliseconds each sector erase takes (0: as fast as RAM), to model slow flash.
    pub erase_ms: u32,
}

/// An error for the user, with what to do.
pub struct QemuError {
    pub message: String,
    pub help: String,
}

fn err(message: impl Into<String>, help: impl Into<String>) -> QemuError {
    QemuError {
        message: message.into(),
        help: help.into(),
    }
}

/// QEMU's main RAM on this machine: exactly 16 MiB, the file's size.
const RAM_SIZE: usize = 16 * 1024 * 1024;
/// The flash the firmware manages: the first MiB of that RAM (0x2100_0000).
const FLASH_SIZE: usize = 1024 * 1024;
/// Where the factory VM goes (VM slot 0) and the factory program (bytecode slot 0).
const VM0_OFFSET: usize = 0;
const BC0_OFFSET: usize = 128 * 1024;
/// A tag past the flash saying which layout the file was made for.
const TAG_OFFSET: usize = 0xF0_0000;
/// Options the firmware reads at start (the board's `OPTIONS`): a magic word, then the
/// sector erase time in milliseconds.
const OPTIONS_OFFSET: usize = TAG_OFFSET + 0x100;
const OPTIONS_MAGIC: u32 = 0x4F50_5453;
const FLASH_BASE: u64 = 0x2100_0000;

/// The firmware's binaries, by role.
pub struct Firmware {
    dir: PathBuf,
}

impl Firmware {
    fn elf(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The boot stage ELF for a layout (QEMU loads it at the boot address).
    pub fn boot(&self, vm_layout: bool) -> PathBuf {
        self.elf(if vm_layout {
            "boot-vm"
        } else {
            "boot-bytecode"
        })
    }

    /// The VM for VM slot 0 of a layout.
    fn vm0(&self, vm_layout: bool) -> PathBuf {
        self.elf(if vm_layout {
            "vm-vm-slot0"
        } else {
            "vm-bytecode-slot0"
        })
    }
}

/// Where the firmware's sources are, when this binary was built from a checkout.
/// Build the firmware (cargo does nothing when it is up to date) or take the given
/// directory of ELF files.
pub fn firmware(given: Option<&Path>, quiet: bool) -> Result<Firmware, QemuError> {
    if let Some(dir) = given {
        let fw = Firmware {
            dir: dir.to_path_buf(),
        };
        if !fw.boot(false).is_file() {
            return Err(err(
                format!(
                    "{}: no firmware there (boot-bytecode is missing)",
                    dir.display()
                ),
                "Give the directory cargo built the firmware into \
                 (crates/fota-firmware/boards/target/thumbv7em-none-eabihf/release).",
            ));
        }
        return Ok(fw);
    }
    if !firmware_build::boards_dir().join("Cargo.toml").is_file() {
        return Err(err(
            "the firmware sources are not where this fota was built from",
            "Give the built firmware with --firmware DIR.",
        ));
    }
    if !quiet {
        eprintln!("building the firmware (the first build takes about a minute)");
    }
    let dir = firmware_build::build(&[], "target").map_err(|e| match e {
        firmware_build::BuildError::Cargo(e) => {
            err(format!("cannot run cargo: {e}"), "Install Rust (rustup).")
        }
        firmware_build::BuildError::Failed => err(
            "building the firmware failed (see above)",
            "Install the target with `rustup target add thumbv7em-none-eabihf`, or give \
             a built firmware with --firmware DIR.",
        ),
    })?;
    Ok(Firmware { dir })
}

/// The bytes a flash image holds for an ELF linked into the flash: its loadable
/// segments by load address, gaps erased (0xFF). Also returns the load address.
pub fn flash_image(elf: &Path) -> Result<(u64, Vec<u8>), QemuError> {
    use object::read::elf::{ElfFile32, ProgramHeader as _};
    let bytes = std::fs::read(elf).map_err(|e| {
        err(
            format!("cannot read {}: {e}", elf.display()),
            "Build the firmware again.",
        )
    })?;
    let file = ElfFile32::<object::Endianness>::parse(&*bytes)
        .map_err(|e| err(format!("{}: not an ELF file ({e})", elf.display()), ""))?;
    let endian = file.endian();
    let mut parts = Vec::new();
    for ph in file.elf_program_headers() {
        if ph.p_type(endian) != object::elf::PT_LOAD || ph.p_filesz(endian) == 0 {
            continue;
        }
        let data = ph
            .data(endian, &*bytes)
            .map_err(|_| err(format!("{}: a segment cannot be read", elf.display()), ""))?;
        let addr = u64::from(ph.p_paddr(endian));
        // Only what is stored in the flash (not RAM-only segments).
        if addr >= FLASH_BASE && addr < FLASH_BASE + FLASH_SIZE as u64 {
            parts.push((addr, data.to_vec()));
        }
    }
    let start = parts.iter().map(|(a, _)| *a).min().ok_or_else(|| {
        err(
            format!("{}: nothing in it is linked into the flash", elf.display()),
            "",
        )
    })?;
    let end = parts
        .iter()
        .map(|(a, d)| a + d.len() as u64)
        .max()
        .unwrap_or(start);
    let mut image = vec![0xFF; (end - start) as usize];
    for (addr, data) in parts {
        let at = (addr - start) as usize;
        image[at..at + data.len()].copy_from_slice(&data);
    }
    Ok((start, image))
}

/// A VM image for `fota flash --vm`.
struct VmImage {
    /// The VM slot it is linked for.
    slot: u32,
    path: PathBuf,
    /// A VM that crashes at start (to see a faulty VM reverted).
    faulty: bool,
}

/// Write the VM images a user flashes (`fota flash --vm`) next to the ELF files.
fn vm_images(fw: &Firmware, vm_layout: bool) -> Result<Vec<VmImage>, QemuError> {
    let names: &[(u32, &str, bool)] = if vm_layout {
        &[
            (0, "vm-vm-slot0", false),
            (1, "vm-vm-slot1", false),
            (1, "vm-vm-slot1-crash", true),
        ]
    } else {
        &[(0, "vm-bytecode-slot0", false)]
    };
    let mut out = Vec::new();
    for &(slot, name, faulty) in names {
        let (_, image) = flash_image(&fw.elf(name))?;
        let path = fw.dir.join(format!("{name}.bin"));
        std::fs::write(&path, image)
            .map_err(|e| err(format!("cannot write {}: {e}", path.display()), ""))?;
        out.push(VmImage { slot, path, faulty });
    }
    Ok(out)
}

fn layout_tag(vm_layout: bool) -> &'static [u8] {
    if vm_layout {
        b"fota qemu flash: layout vm\0"
    } else {
        b"fota qemu flash: layout bytecode\0"
    }
}

/// Create the flash file with the factory images, or check an existing one.
pub fn prepare_flash(path: &Path, fw: &Firmware, vm_layout: bool) -> Result<bool, QemuError> {
    let tag = layout_tag(vm_layout);
    if let Ok(meta) = std::fs::metadata(path) {
        let wrong = || {
            err(
                format!("{} is not a flash file for this layout", path.display()),
                "Use the --layout it was made with, or delete it to start from the \
                 factory images.",
            )
        };
        if meta.len() != RAM_SIZE as u64 {
            return Err(wrong());
        }
        let bytes = std::fs::read(path)
            .map_err(|e| err(format!("cannot read {}: {e}", path.display()), ""))?;
        if !bytes[TAG_OFFSET..].starts_with(tag) {
            return Err(wrong());
        }
        return Ok(false);
    }
    let mut ram = vec![0u8; RAM_SIZE];
    ram[..FLASH_SIZE].fill(0xFF);
    let (addr, vm) = flash_image(&fw.vm0(vm_layout))?;
    if addr != FLASH_BASE + VM0_OFFSET as u64 || vm.len() > BC0_OFFSET {
        return Err(err(
            "the VM for slot 0 is not linked for slot 0",
            "Rebuild it.",
        ));
    }
    ram[VM0_OFFSET..VM0_OFFSET + vm.len()].copy_from_slice(&vm);
    let program = fota_bytecode::assemble(fota_bytecode::samples::BLINK_V1)
        .map_err(|e| err(format!("factory program: {e}"), ""))?;
    ram[BC0_OFFSET..BC0_OFFSET + program.len()].copy_from_slice(&program);
    ram[TAG_OFFSET..TAG_OFFSET + tag.len()].copy_from_slice(tag);
    std::fs::write(path, &ram).map_err(|e| {
        err(
            format!("cannot write {}: {e}", path.display()),
            "Check the path.",
        )
    })?;
    Ok(true)
}

/// Write the options the firmware reads at start into the flash file (past the flash).
fn set_options(path: &Path, erase_ms: u32) -> Result<(), QemuError> {
    use std::os::unix::fs::FileExt;
    let mut words = [0u8; 8];
    words[..4].copy_from_slice(&OPTIONS_MAGIC.to_le_bytes());
    words[4..].copy_from_slice(&erase_ms.to_le_bytes());
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.write_all_at(&words, OPTIONS_OFFSET as u64))
        .map_err(|e| err(format!("cannot write {}: {e}", path.display()), ""))
}

/// A QEMU child that is killed when this process dies, however it dies.
struct Qemu {
    child: Child,
}

impl Qemu {
    fn start(
        fw: &Firmware,
        vm_layout: bool,
        flash: &Path,
        debug_log: &Path,
    ) -> Result<(Qemu, String), QemuError> {
        let mut cmd = Command::new("qemu-system-arm");
        cmd.args(["-M", "mps2-an386", "-display", "none", "-monitor", "none"])
            .args(["-serial", "pty", "-serial"])
            .arg(format!("file:{}", debug_log.display()))
            .arg("-kernel")
            .arg(fw.boot(vm_layout))
            .arg("-object")
            .arg(format!(
                "memory-backend-file,id=flash,size=16M,mem-path={},share=on",
                flash.display()
            ))
            .args(["-machine", "memory-backend=flash"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to kill QEMU when
        // this process ends, so no QEMU is left behind.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| {
            err(
                format!("cannot start qemu-system-arm: {e}"),
                "Install QEMU: `apt-get install qemu-system-arm` (Debian, Ubuntu).",
            )
        })?;
        let stderr = child.stderr.take();
        let stdout = child.stdout.take();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        for pipe in [
            stdout.map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            stderr.map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        // Nobody listens any more: show what QEMU says.
                        continue;
                    }
                }
            });
        }
        let mut qemu = Qemu { child };
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut said = Vec::new();
        while Instant::now() < deadline {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    if let Some(rest) = line.split("redirected to ").nth(1)
                        && let Some(pty) = rest.split_whitespace().next()
                    {
                        // QEMU's later messages go to our stderr.
                        std::thread::spawn(move || {
                            for line in rx {
                                eprintln!("qemu: {line}");
                            }
                        });
                        return Ok((qemu, pty.to_string()));
                    }
                    said.push(line);
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = qemu.child.try_wait() {
                        return Err(err(
                            format!("QEMU stopped at once ({status}): {}", said.join(" / ")),
                            "Check that qemu-system-arm supports the mps2-an386 machine \
                             (QEMU 7 or newer).",
                        ));
                    }
                }
                Err(_) => break,
            }
        }
        qemu.kill();
        Err(err(
            format!("QEMU did not open its serial port: {}", said.join(" / ")),
            "",
        ))
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Run `fota qemu` until QEMU exits or Ctrl-C.
pub async fn run(opts: QemuOptions) -> Result<(), QemuError> {
    let fw = firmware(opts.firmware.as_deref(), opts.json)?;
    let vm_images = vm_images(&fw, opts.vm_layout)?;
    let temp = opts.state.is_none();
    let flash = opts.state.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("fota-qemu-{}.flash", std::process::id()))
    });
    if temp {
        let _ = std::fs::remove_file(&flash);
    }
    let fresh = prepare_flash(&flash, &fw, opts.vm_layout)?;
    set_options(&flash, opts.erase_ms)?;
    let debug_log = opts
        .debug_log
        .clone()
        .unwrap_or_else(|| flash.with_extension("debug.log"));
    let (mut qemu, pty) = Qemu::start(&fw, opts.vm_layout, &flash, &debug_log)?;
    let layout = if opts.vm_layout { "vm" } else { "bytecode" };
    if opts.json {
        crate::render::json_line(serde_json::json!({
            "event": "qemu", "pty": pty, "pid": qemu.pid(), "layout": layout,
            "flash": flash, "fresh": fresh, "debug_log": debug_log,
            "vm_images": vm_images
                .iter()
                .map(|v| serde_json::json!({"slot": v.slot, "path": v.path, "faulty": v.faulty}))
                .collect::<Vec<_>>(),
        }));
    } else {
        println!("pty: {pty}");
        println!("qemu: pid {}, mps2-an386, {layout} layout", qemu.pid());
        if opts.erase_ms > 0 {
            println!("flash: {} ms a sector erase", opts.erase_ms);
        }
        println!(
            "flash: {}{}",
            flash.display(),
            if fresh {
                " (new: factory VM and program blink 1)"
            } else {
                ""
            }
        );
        println!("debug console: {}", debug_log.display());
        for v in &vm_images {
            println!(
                "{} linked for VM slot {}: {}",
                if v.faulty {
                    "faulty VM (crashes at start)"
                } else {
                    "VM image"
                },
                v.slot,
                v.path.display()
            );
        }
    }
    let outcome = serve(&mut qemu, &pty, opts.ws.as_deref(), &opts.access).await;
    qemu.kill();
    if temp {
        let _ = std::fs::remove_file(&flash);
        let _ = std::fs::remove_file(&debug_log);
    }
    outcome
}

async fn serve(
    qemu: &mut Qemu,
    pty: &str,
    ws: Option<&str>,
    access: &crate::ws_access::AccessArgs,
) -> Result<(), QemuError> {
    let pid = qemu.pid();
    let exited = async {
        loop {
            match qemu.child.try_wait() {
                Ok(Some(status)) => return status,
                Ok(None) => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(_) => return std::process::ExitStatus::default(),
            }
        }
    };
    let bridge = async {
        match ws {
            Some(addr) => crate::bridge::run(pty, fota_protocol::DEFAULT_BAUD, addr, access).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        status = exited => Err(err(format!("QEMU (pid {pid}) ended: {status}"), "")),
        result = bridge => result.map_err(|e| err(e.message, e.help)),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}
