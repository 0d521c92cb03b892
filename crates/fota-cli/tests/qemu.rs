//! The real firmware on an emulated Cortex-M4 (QEMU mps2-an386), updated through the real
//! `fota` binary over a pseudo-terminal: the seed's whole process in both layouts, faulty
//! programs and VMs reverted, QEMU killed (a power cut) mid-stream, after attempt and
//! during the trial, and the program's ticks while an update streams.
//!
//! Needs `qemu-system-arm` and the thumbv7em target (`.ci/tools.sh` installs both); the
//! firmware is built by `fota qemu` on first use.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const FOTA: &str = env!("CARGO_BIN_EXE_fota");

/// `fota qemu` running in the background; QEMU dies with it.
struct Device {
    child: Child,
    pty: String,
    qemu_pid: u32,
    vm_images: Vec<Value>,
    debug_log: PathBuf,
}

impl Device {
    fn start(layout: &str, state: &Path) -> Device {
        Device::start_with(layout, state, &[])
    }

    fn start_with(layout: &str, state: &Path, extra: &[&str]) -> Device {
        let mut child = Command::new(FOTA)
            .args(["--json", "qemu", "--layout", layout, "--state"])
            .arg(state)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start fota qemu");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = lines
            .next()
            .expect("fota qemu printed nothing")
            .expect("read fota qemu");
        let v: Value = serde_json::from_str(&line).expect("a JSON line from fota qemu");
        assert_eq!(v["event"], "qemu", "{line}");
        // Keep reading so fota qemu never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Device {
            child,
            pty: v["pty"].as_str().expect("pty").to_string(),
            qemu_pid: v["pid"].as_u64().expect("pid") as u32,
            vm_images: v["vm_images"].as_array().cloned().unwrap_or_default(),
            debug_log: PathBuf::from(v["debug_log"].as_str().expect("debug_log")),
        }
    }

    fn vm_image(&self, slot: u64, faulty: bool) -> PathBuf {
        let v = self
            .vm_images
            .iter()
            .find(|v| v["slot"] == slot && v["faulty"] == faulty)
            .expect("that VM image");
        PathBuf::from(v["path"].as_str().expect("path"))
    }

    /// SIGKILL QEMU itself: a power cut. `fota qemu` then ends too.
    fn power_cut(mut self) {
        // SAFETY: kill(2) on the QEMU this test started.
        let r = unsafe { libc::kill(self.qemu_pid as i32, libc::SIGKILL) };
        assert_eq!(r, 0, "kill QEMU");
        let _ = self.child.wait();
    }

    fn fota(&self, args: &[&str]) -> Output {
        Command::new(FOTA)
            .env(
                "FOTA_STATE_DIR",
                Path::new(env!("CARGO_TARGET_TMPDIR")).join("fota-state"),
            )
            .args(["--port", &self.pty])
            .args(args)
            .output()
            .expect("run fota")
    }

    /// The record as JSON (`fota --json record`).
    fn record(&self) -> Value {
        let out = self.fota(&["--json", "--no-negotiate", "record"]);
        assert!(out.status.success(), "{}", text(&out));
        let line = String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.contains("\"record\""))
            .expect("a record line")
            .to_string();
        serde_json::from_str::<Value>(&line).expect("JSON")
    }

    /// (current VM, last VM, current bytecode, last bytecode, on trial)
    fn slots(&self) -> (u64, u64, u64, u64, bool) {
        let r = self.record();
        let a = r["record"].as_array().expect("record array");
        let n = |i: usize| a[i].as_u64().expect("number");
        (n(2), n(3), n(4), n(5), r["on_trial"] == true)
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn program(dir: &Path, name: &str, source: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, fota_bytecode::assemble(source).expect("assemble")).expect("write");
    path
}

fn sample(dir: &Path, which: &str) -> PathBuf {
    let path = dir.join(format!("{which}.bin"));
    let out = Command::new(FOTA)
        .args(["sample", which, "-o"])
        .arg(&path)
        .output()
        .expect("fota sample");
    assert!(out.status.success(), "{}", text(&out));
    path
}

fn flash(dev: &Device, args: &[&str]) -> Output {
    let mut all = vec!["flash"];
    all.extend_from_slice(args);
    dev.fota(&all)
}

#[test]
fn bytecode_layout_accepts_a_healthy_program_and_reverts_faulty_ones() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start("bytecode", &dir.path().join("flash"));
    assert_eq!(dev.slots(), (0, 0, 0, 0, false), "factory record");

    let healthy = sample(dir.path(), "healthy");
    let out = flash(&dev, &[healthy.to_str().unwrap()]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(log.contains("blink 2: self-test passed"), "{log}");
    assert!(
        log.contains("accept(): the new firmware is confirmed"),
        "{log}"
    );
    assert_eq!(dev.slots(), (0, 0, 1, 1, false));

    // Hangs before accepting: the watchdog resets, the boot reverts.
    let faulty = sample(dir.path(), "faulty");
    let out = flash(&dev, &[faulty.to_str().unwrap()]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(3), "{log}");
    assert!(log.contains("boot: reset by watchdog"), "{log}");
    assert!(
        log.contains("reverted: the last trial was not accepted"),
        "{log}"
    );
    assert_eq!(dev.slots(), (0, 0, 1, 1, false));

    // Its self-test fails: it gives the trial up at once.
    let failing = sample(dir.path(), "failing");
    let out = flash(&dev, &[failing.to_str().unwrap()]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(3), "{log}");
    assert!(log.contains("app: failed: fail 7"), "{log}");
    assert!(log.contains("boot: reset by restart"), "{log}");
    assert_eq!(dev.slots(), (0, 0, 1, 1, false));

    // The same healthy one again is already installed (it runs from slot 1): refused
    // before anything is written...
    let out = flash(&dev, &[healthy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("already installed"), "{}", text(&out));
    // ...unless asked for: then into the slot the faulty ones used.
    let out = flash(&dev, &["--reinstall", healthy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(dev.slots(), (0, 0, 0, 0, false));
}

#[test]
fn vm_layout_new_vm_is_started_by_the_old_one_and_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start("vm", &dir.path().join("flash"));
    let healthy = sample(dir.path(), "healthy");
    let vm1 = dev.vm_image(1, false);
    let out = flash(
        &dev,
        &["--vm", vm1.to_str().unwrap(), healthy.to_str().unwrap()],
    );
    let log = text(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(log.contains("boot: starting VM slot 0"), "{log}");
    assert!(
        log.contains("VM slot 0 passes control to VM slot 1"),
        "{log}"
    );
    assert!(
        log.contains("vm: VM slot 1, bytecode slot 1, trial"),
        "{log}"
    );
    assert_eq!(dev.slots(), (1, 1, 1, 1, false));

    // The new VM now runs from VM slot 1 at every boot, and updates a program alone.
    let out = dev.fota(&["--no-negotiate", "restart"]);
    assert!(out.status.success(), "{}", text(&out));
    let failing = sample(dir.path(), "failing");
    let out = flash(&dev, &[failing.to_str().unwrap()]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(3), "{log}");
    assert!(
        log.contains("vm: VM slot 1, bytecode slot 0, trial"),
        "{log}"
    );
    assert_eq!(dev.slots(), (1, 1, 1, 1, false));
}

#[test]
fn vm_layout_faulty_vms_are_reverted() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start("vm", &dir.path().join("flash"));
    let healthy = sample(dir.path(), "healthy");

    // A VM that crashes before it can take the boot decision.
    let crash = dev.vm_image(1, true);
    let out = flash(
        &dev,
        &["--vm", crash.to_str().unwrap(), healthy.to_str().unwrap()],
    );
    let log = text(&out);
    assert_eq!(out.status.code(), Some(3), "{log}");
    assert!(log.contains("faulty build: stuck at start"), "{log}");
    assert!(log.contains("boot: reset by watchdog"), "{log}");
    assert!(
        log.contains("VM slot 1 reset before it took the boot decision"),
        "{log}"
    );
    assert_eq!(dev.slots(), (0, 0, 0, 0, false));

    // Bytes that are no VM at all: the old VM does not even pass control.
    let garbage = dir.path().join("garbage.bin");
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&garbage, noise).unwrap();
    let out = flash(
        &dev,
        &["--vm", garbage.to_str().unwrap(), healthy.to_str().unwrap()],
    );
    let log = text(&out);
    assert_eq!(out.status.code(), Some(3), "{log}");
    assert!(log.contains("vm: VM slot 1: no VM"), "{log}");
    assert_eq!(dev.slots(), (0, 0, 0, 0, false));

    // A real VM linked for slot 0, sent to slot 1: refused by its vector table.
    let wrong = dev.vm_image(0, false);
    let out = flash(
        &dev,
        &["--vm", wrong.to_str().unwrap(), healthy.to_str().unwrap()],
    );
    let log = text(&out);
    assert_eq!(out.status.code(), Some(3), "{log}");
    assert!(log.contains("no VM linked for this slot"), "{log}");
    assert_eq!(dev.slots(), (0, 0, 0, 0, false));
}

/// Run `fota --json flash` and call `at` with each JSON line as it comes, with the time
/// since the start; `at` returning true stops reading (the flash goes on or dies).
fn flash_watching(
    dev: &Device,
    args: &[&str],
    mut at: impl FnMut(&Value, Duration) -> bool,
) -> Child {
    let mut child = Command::new(FOTA)
        .args(["--port", &dev.pty, "--json", "flash"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run fota flash");
    let stdout = child.stdout.take().expect("stdout");
    let t0 = Instant::now();
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let Ok(line) = line else { break };
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if at(&v, t0.elapsed()) {
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    child
}

fn streamed_fraction(v: &Value) -> Option<f64> {
    if v["event"] != "progress" || v["phase"] != "stream" {
        return None;
    }
    let done = v["done"].as_f64()?;
    let total = v["total"].as_f64()?;
    Some(done / total)
}

#[test]
fn power_cut_mid_stream_boots_the_old_program_and_the_next_flash_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("flash");
    let big = program(
        dir.path(),
        "big.bin",
        &fota_bytecode::samples::healthy_of_size("5", 64 * 1024),
    );
    let dev = Device::start("bytecode", &state);
    let mut cut = false;
    let mut child = flash_watching(&dev, &[big.to_str().unwrap()], |v, _| {
        cut = streamed_fraction(v).is_some_and(|f| f >= 0.4);
        cut
    });
    assert!(cut, "the stream never reached 40 %");
    dev.power_cut();
    assert!(!child.wait().unwrap().success(), "the flash cannot succeed");

    let dev = Device::start("bytecode", &state);
    assert_eq!(dev.slots(), (0, 0, 0, 0, false), "the factory program runs");
    let out = dev.fota(&["--json", "flash", big.to_str().unwrap()]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    let result: Value = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .find(|v: &Value| v["event"] == "result")
        .expect("a result line");
    let skipped = result["skipped_bytes"].as_u64().unwrap();
    assert!(skipped >= 16 * 1024, "resumed: {skipped} bytes kept\n{log}");
    assert_eq!(dev.slots(), (0, 0, 1, 1, false));
}

#[test]
fn power_cut_after_attempt_and_during_the_trial() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("flash");
    // Accepts only after 3 s: time to cut the power during its trial.
    let slow = program(
        dir.path(),
        "slow.bin",
        "name \"slow\"\nversion \"1\"\n print \"slow: self-test\"\n sleep 3000\n check clock\n accept\nagain: tick\n sleep 500\n jump again\n",
    );
    let dev = Device::start("bytecode", &state);
    let out = flash(&dev, &["--no-restart", slow.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(dev.slots(), (0, 0, 1, 0, true), "attempted: pending");
    dev.power_cut();

    // Power back: the attempt is still there, the trial runs and accepts.
    let dev = Device::start("bytecode", &state);
    let deadline = Instant::now() + Duration::from_secs(20);
    while dev.slots() != (0, 0, 1, 1, false) {
        assert!(Instant::now() < deadline, "the trial never accepted");
        std::thread::sleep(Duration::from_millis(300));
    }

    // Now cut during a trial: flash the factory-like program into slot 0 and cut
    // before its 3 s self-test ends.
    let slow2 = program(
        dir.path(),
        "slow2.bin",
        "name \"slow\"\nversion \"2\"\n sleep 3000\n check clock\n accept\nagain: tick\n sleep 500\n jump again\n",
    );
    let mut cut = false;
    let mut child = flash_watching(&dev, &[slow2.to_str().unwrap()], |v, _| {
        cut = v["event"] == "device"
            && v["line"]
                .as_str()
                .is_some_and(|l| l.contains("bytecode slot 0: slow 2 (on trial)"));
        cut
    });
    assert!(cut, "the trial never started");
    dev.power_cut();
    let _ = child.wait();

    // The trial boot ended without accept: reverted to slow 1.
    let dev = Device::start("bytecode", &state);
    assert_eq!(dev.slots(), (0, 0, 1, 1, false), "reverted");
    // The next flash finds the image on the device and only attempts it again. It
    // confirms itself after 3 s, past the board's 2 s deadline (it keeps the watchdog
    // fed): waited for with a wait of its own.
    let out = dev.fota(&["--json", "flash", "--wait", "20", slow2.to_str().unwrap()]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(
        log.contains("\"sent_bytes\":0"),
        "nothing sent again:\n{log}"
    );
    assert_eq!(dev.slots(), (0, 0, 0, 0, false));
}

/// Not a timing assertion: the figures are printed; the test checks that ticks come
/// while the image streams.
#[test]
fn the_program_keeps_ticking_while_an_update_streams() {
    let dir = tempfile::tempdir().unwrap();
    let big = program(
        dir.path(),
        "big.bin",
        &fota_bytecode::samples::healthy_of_size("6", 64 * 1024),
    );
    let dev = Device::start("bytecode", &dir.path().join("flash"));
    // Let the factory program start ticking.
    std::thread::sleep(Duration::from_millis(800));
    let mut ticks = Vec::new();
    let mut streaming: Option<(Duration, Duration)> = None;
    let mut result = None;
    let t0 = Instant::now();
    let mut child = flash_watching(&dev, &[big.to_str().unwrap()], |v, t| {
        if v["event"] == "device" && v["line"].as_str().is_some_and(|l| l.contains(": tick ")) {
            ticks.push(t);
        }
        if streamed_fraction(v).is_some() {
            let s = streaming.get_or_insert((t, t));
            s.1 = t;
        }
        if v["event"] == "result" {
            result = Some(v.clone());
        }
        false
    });
    assert!(child.wait().unwrap().success());
    let total = t0.elapsed();
    let (s0, s1) = streaming.expect("progress while streaming");
    let during: Vec<Duration> = ticks
        .iter()
        .copied()
        .filter(|t| *t >= s0 && *t <= s1)
        .collect();
    let longest = ticks
        .windows(2)
        .filter(|w| w[1] >= s0 && w[0] <= s1)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    let result = result.expect("a result line");
    let rel: Vec<i64> = ticks
        .iter()
        .map(|t| t.as_millis() as i64 - s0.as_millis() as i64)
        .collect();
    println!(
        "ticks at (ms from the stream's first progress): {rel:?}; stream ends at {} ms",
        (s1 - s0).as_millis()
    );
    let stream_s = result["stream_seconds"].as_f64().unwrap();
    let sent = result["sent_bytes"].as_f64().unwrap();
    println!(
        "64 KiB program over QEMU's UART: stream {stream_s:.2} s ({:.1} KiB/s), whole update {:.2} s (fota flash, restart and accept included: {:.2} s); \
         {} ticks while streaming (every 500 ms), longest gap between ticks around the stream {} ms",
        sent / 1024.0 / stream_s,
        result["total_seconds"].as_f64().unwrap(),
        total.as_secs_f64(),
        during.len(),
        longest.as_millis()
    );
    assert!(
        during.len() >= 2,
        "the program stopped ticking during the stream: {ticks:?} ({s0:?}..{s1:?})"
    );
    let debug = std::fs::read_to_string(&dev.debug_log).unwrap_or_default();
    let stats = debug
        .lines()
        .rfind(|l| l.starts_with("stats:"))
        .expect("the firmware's debug console reports its stats");
    println!("device debug console: {stats}");
    // The UART reported no lost byte.
    assert!(stats.ends_with("overruns 0"), "{stats}");
    // Stack peaks (painted stack, release build), against docs/PORTING.md's budget.
    let number = |line: &str, after: &str| -> u64 {
        line.split(after)
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no figure in {line}"))
    };
    let last = |prefix: &str| {
        debug
            .lines()
            .rfind(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("the debug console lacks {prefix}"))
    };
    let boot_stage = number(last("stack: before passing control on"), " on ");
    let vm_boot = number(last("stack: vm until it serves"), " serves ");
    let serving = number(stats, "high-water mark ");
    println!(
        "stack peaks: boot stage {boot_stage} B, VM until it serves {vm_boot} B, serving a \
         64 KiB update {serving} B"
    );
    let doc = include_str!("../../../docs/PORTING.md");
    let budget = doc
        .lines()
        .find_map(|l| l.strip_prefix("| stack budget, any stage | "))
        .and_then(|r| {
            r.trim_end_matches(" |")
                .replace(',', "")
                .parse::<u64>()
                .ok()
        })
        .expect("docs/PORTING.md states the stack budget");
    for (what, used) in [
        ("the boot stage", boot_stage),
        ("the VM's boot", vm_boot),
        ("serving", serving),
    ] {
        assert!(
            used <= budget,
            "{what} used {used} B of stack, over {budget} B"
        );
    }
}

/// Slow flash: every sector erase takes 1.6 s (an STM32F4's 128 KiB sector takes 1 to
/// 2 s), the CPU busy meanwhile. Info says so, the host waits through it without sending
/// anything again, and the watchdog (its period longer than one erase, kicked by the
/// agent's unit hook after each) never fires during the update.
#[test]
fn slow_sector_erases_are_waited_on_and_the_watchdog_holds() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start_with(
        "bytecode",
        &dir.path().join("flash"),
        &["--erase-ms", "1600"],
    );
    let info = text(&dev.fota(&["--no-negotiate", "info"]));
    assert!(
        info.contains("erase        a sector in 1600 ms at worst"),
        "{info}"
    );
    // The trial deadline is the watchdog's reset: (1 s + the erase time, rounded up) twice.
    assert!(
        info.contains("trial        firmware must confirm within 6 s"),
        "{info}"
    );
    // A program that is reverted leaves bytecode slot 1 to erase before the next update.
    let faulty = sample(dir.path(), "faulty");
    let out = flash(&dev, &[faulty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let nmi_before = std::fs::read_to_string(&dev.debug_log)
        .unwrap_or_default()
        .matches("NMI: watchdog expired")
        .count();
    let big = dir.path().join("big.bin");
    let made = Command::new(FOTA)
        .args(["sample", "healthy", "--size", "12000", "-o"])
        .arg(&big)
        .output()
        .expect("fota sample");
    assert!(made.status.success(), "{}", text(&made));
    let t0 = Instant::now();
    let out = flash(&dev, &["-v", big.to_str().unwrap()]);
    let took = t0.elapsed();
    let log = text(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(log.contains("Erasing 12 KiB"), "{log}");
    assert!(
        !log.contains("sending it again") && !log.contains("no answer"),
        "{log}"
    );
    // Three sectors of 1.6 s, erased one per step.
    assert!(took >= Duration::from_millis(4800), "{took:?}");
    let nmi_after = std::fs::read_to_string(&dev.debug_log)
        .unwrap_or_default()
        .matches("NMI: watchdog expired")
        .count();
    assert_eq!(
        nmi_after, nmi_before,
        "the watchdog fired during the update"
    );
    println!(
        "update with 1.6 s sector erases over QEMU: {:.1} s",
        took.as_secs_f64()
    );
}

/// The sizes of the firmware images (release, opt-level "s", LTO), printed; what a port
/// budgets for. The test checks each image fits its slot.
#[test]
fn firmware_sizes() {
    use object::{Object, ObjectSection};
    let dir = tempfile::tempdir().unwrap();
    // `fota qemu` builds the firmware; its VM images sit beside the ELF files.
    let dev = Device::start("vm", &dir.path().join("flash"));
    let elf_dir = dev.vm_image(0, false).parent().unwrap().to_path_buf();
    drop(dev);
    for (name, limit) in [
        ("boot-bytecode", 64 * 1024),
        ("vm-bytecode-slot0", 128 * 1024),
        ("vm-vm-slot1", 128 * 1024),
    ] {
        let bytes = std::fs::read(elf_dir.join(name)).expect("the firmware ELF");
        let file = object::File::parse(&*bytes).expect("an ELF file");
        let (mut text, mut data, mut bss) = (0u64, 0u64, 0u64);
        for s in file.sections() {
            // cortex-m-rt's sections, as `size` counts them.
            match s.name().unwrap_or("") {
                ".vector_table" | ".text" | ".rodata" => text += s.size(),
                ".data" => data += s.size(),
                ".bss" | ".uninit" => bss += s.size(),
                _ => {}
            }
        }
        println!("{name}: text+rodata {text} B, data {data} B, bss {bss} B (slot {limit} B)");
        assert!(text + data <= limit, "{name} does not fit its slot");
    }
}

#[test]
fn a_damaged_program_is_never_run_and_its_trial_is_given_up() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::start("bytecode", &dir.path().join("flash"));
    let mut bytes = fota_bytecode::assemble(fota_bytecode::samples::BLINK_V2).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40; // in its data: the CRC no longer matches
    let damaged = dir.path().join("damaged.bin");
    std::fs::write(&damaged, bytes).unwrap();
    let out = flash(&dev, &[damaged.to_str().unwrap()]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(3), "{log}");
    assert!(log.contains("no program to run: damaged (CRC)"), "{log}");
    assert!(log.contains("giving the trial up"), "{log}");
    assert!(!log.contains("blink 2: self-test"), "it ran:\n{log}");
    assert_eq!(dev.slots(), (0, 0, 0, 0, false));
}

#[test]
fn a_state_file_for_another_layout_or_no_flash_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("flash");
    drop(Device::start("bytecode", &state));
    let qemu = |layout: &str, path: &Path| {
        Command::new(FOTA)
            .args(["qemu", "--layout", layout, "--state"])
            .arg(path)
            .output()
            .unwrap()
    };
    let out = qemu("vm", &state);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(log.contains("is not a flash file for this layout"), "{log}");
    assert!(log.contains("Use the --layout it was made with"), "{log}");
    let junk = dir.path().join("junk");
    std::fs::write(&junk, b"not a flash").unwrap();
    let out = qemu("bytecode", &junk);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        std::fs::read(&junk).unwrap(),
        b"not a flash",
        "left as it was"
    );
}

#[test]
fn vm_layout_power_cut_while_the_new_vm_streams_then_the_next_flash_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("flash");
    let healthy = sample(dir.path(), "healthy");
    let dev = Device::start("vm", &state);
    let vm1 = dev.vm_image(1, false);
    // The program streams first, then the VM: cut when the VM is half sent.
    let vm_len = std::fs::metadata(&vm1).unwrap().len() as f64;
    let mut cut = false;
    let mut child = flash_watching(
        &dev,
        &["--vm", vm1.to_str().unwrap(), healthy.to_str().unwrap()],
        |v, _| {
            cut = streamed_fraction(v).is_some_and(|f| f >= 0.5)
                && v["total"].as_f64() == Some(vm_len);
            cut
        },
    );
    assert!(cut, "the VM never streamed");
    dev.power_cut();
    let _ = child.wait();

    let dev = Device::start("vm", &state);
    assert_eq!(
        dev.slots(),
        (0, 0, 0, 0, false),
        "the old VM and program run"
    );
    let out = dev.fota(&[
        "--json",
        "flash",
        "--vm",
        vm1.to_str().unwrap(),
        healthy.to_str().unwrap(),
    ]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(log.contains("passes control to VM slot 1"), "{log}");
    let result: Value = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .find(|v: &Value| v["event"] == "result")
        .expect("a result line");
    assert!(
        result["skipped_bytes"].as_u64().unwrap() > 0,
        "resumed:\n{log}"
    );
    assert_eq!(dev.slots(), (1, 1, 1, 1, false));
}

/// The firmware built with image checks (`--features fota-agent/images`) into this
/// test's own directory.
fn firmware_with_image_checks() -> PathBuf {
    let boards = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fota-firmware/boards");
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fw-image-checks");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "--target",
            "thumbv7em-none-eabihf",
            "-p",
            "fota-board-mps2-an386",
            "--features",
            "fota-agent/images",
            "--target-dir",
        ])
        .arg(&target)
        .current_dir(&boards)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTFLAGS")
        .status()
        .expect("run cargo");
    assert!(status.success(), "building the firmware with image checks");
    target.join("thumbv7em-none-eabihf").join("release")
}

/// A record that makes an erased bytecode slot current (a Pending entry written into the
/// flash behind the agent, as an agent without checks would write it on `set_record`):
/// the firmware with image checks never starts it. Its boot decision goes back to the last
/// working configuration at once (no trial boot of the erased slot, no reset loop), and
/// the next boot runs it again.
#[test]
fn a_pending_erased_slot_is_never_started_by_a_firmware_with_image_checks() {
    let fw = firmware_with_image_checks();
    let fw = fw.to_str().expect("path");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("flash");
    let dev = Device::start_with("bytecode", &state, &["--firmware", fw]);
    assert_eq!(dev.slots(), (0, 0, 0, 0, false));
    let out = dev.fota(&["--json", "--no-negotiate", "info"]);
    assert!(out.status.success(), "{}", text(&out));
    let info: Value = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["event"] == "result")
        .expect("info");
    let record_addr = info["record_addr"].as_u64().expect("record_addr") as usize;
    let unit = info["write_granularity"].as_u64().expect("write unit") as usize;
    // The watchdog's reset, the NMI after 1 s and as much again: the trial deadline.
    assert_eq!(info["confirm_ms"], 2000, "{info}");
    dev.power_cut();

    // Append `Pending (vm 0/0, bytecode 1/0)` after the newest entry.
    let mut flash = std::fs::read(&state).expect("state file");
    let base = 0x2100_0000usize; // the board's FLASH_BASE: the file's first byte
    let stride = 20usize.div_ceil(unit) * unit;
    let at = record_addr - base;
    let mut seq = 0;
    let mut free = None;
    for k in 0..4096 / stride {
        let off = at + k * stride;
        match fota_agent::record::LogEntry::decode(&flash[off..off + 20]) {
            Some(e) => seq = seq.max(e.seq),
            None if free.is_none() && flash[off..off + stride].iter().all(|&b| b == 0xFF) => {
                free = Some(off)
            }
            None => {}
        }
    }
    let off = free.expect("an erased entry slot");
    let entry = fota_agent::record::LogEntry {
        seq: seq + 1,
        ..fota_agent::record::LogEntry::with_slots(0, 0, 1, 0)
    };
    flash[off..off + 20].copy_from_slice(&entry.encode());
    std::fs::write(&state, &flash).expect("write state");

    let dev = Device::start_with("bytecode", &state, &["--firmware", fw]);
    assert_eq!(
        dev.slots(),
        (0, 0, 0, 0, false),
        "back on bytecode 0, confirmed"
    );
    dev.power_cut();
    // The boot decision wrote the revert at once: the next entry is Confirmed (0, 0, 0,
    // 0); no Trial entry (the erased slot never booted on trial).
    let flash = std::fs::read(&state).expect("state file");
    let entries: Vec<_> = (0..4096 / stride)
        .filter_map(|k| {
            let off = at + k * stride;
            fota_agent::record::LogEntry::decode(&flash[off..off + 20])
        })
        .filter(|e| e.seq > seq)
        .collect();
    assert!(
        entries
            .iter()
            .all(|e| e.state != fota_agent::RecordState::Trial),
        "{entries:?}"
    );
    let newest = entries.iter().max_by_key(|e| e.seq).expect("entries");
    assert_eq!(
        (newest.seq, newest.state),
        (seq + 2, fota_agent::RecordState::Confirmed),
        "{entries:?}"
    );
    assert!(newest.same_slots(&fota_agent::record::LogEntry::factory()));
    // No loop: the next boot runs the same, with nothing to revert.
    let dev = Device::start_with("bytecode", &state, &["--firmware", fw]);
    assert_eq!(dev.slots(), (0, 0, 0, 0, false));
}
