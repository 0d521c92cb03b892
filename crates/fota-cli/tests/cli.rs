//! The `fota` command line against `fota sim`, over real pseudo-terminals and WebSockets,
//! with real process kills for power cuts and interrupted transfers.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;
use support::{FOTA, Sim, text};

fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    drop(l);
    addr
}

/// Where `fota` keeps the rate it negotiated on each port: the tests' own directory.
fn state_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("fota-state")
}

fn fota(port: &str, args: &[&str]) -> Output {
    support::fota_on(&state_dir(), port, args)
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write");
    p
}

fn sample(dir: &Path, which: &str) -> PathBuf {
    let p = dir.join(format!("{which}.bin"));
    let o = Command::new(FOTA)
        .args(["sample", which, "-o"])
        .arg(&p)
        .output()
        .expect("fota sample");
    assert!(o.status.success(), "{}", text(&o));
    p
}

fn big_image(dir: &Path, kib: usize) -> PathBuf {
    let bytes = fota_sim::images::sample_image(
        fota_protocol::SlotKind::Bytecode,
        "big",
        "9",
        true,
        kib * 1024,
    );
    write_file(dir, "big.bin", &bytes)
}

/// Every JSON line of an output.
fn json_lines(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn record(port: &str) -> Vec<u64> {
    let o = fota(port, &["--json", "record"]);
    assert!(o.status.success(), "{}", text(&o));
    let rec = json_lines(&o)
        .into_iter()
        .find(|v| v["event"] == "record")
        .expect("a record line");
    rec["record"]
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_u64().expect("number"))
        .collect()
}

fn result(o: &Output) -> Value {
    json_lines(o)
        .into_iter()
        .find(|v| v["event"] == "result")
        .unwrap_or_else(|| panic!("no result line in: {}", text(o)))
}

#[test]
fn pty_bytecode_update_is_accepted() {
    let dir = tempfile::tempdir().expect("tmp");
    let sim = Sim::start(&["--pty"]);
    let image = sample(dir.path(), "healthy");
    let o = fota(sim.port(), &["flash", image.to_str().expect("path")]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("has confirmed itself"), "{}", text(&o));
    let r = record(sim.port());
    assert_eq!(
        (r[0], r[4], r[5]),
        (1, 1, 1),
        "valid, current and last working bytecode: {r:?}"
    );
}

/// `fota sim --require-signatures KEY`: a raw image is refused before anything is
/// written, the same firmware packed and signed with the key is installed, the same again
/// is "already installed", an older version is a downgrade that needs `--allow-downgrade`.
#[test]
fn a_device_that_requires_signatures_takes_only_signed_images() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let run = |args: &[&str]| {
        let o = Command::new(FOTA)
            .current_dir(d)
            .args(args)
            .output()
            .expect("run fota");
        assert!(o.status.success(), "{}", text(&o));
    };
    run(&["image", "keygen", "-o", "k.pem"]);
    let app = sample(d, "healthy");
    let app_s = app.to_str().expect("path");
    let pack = |version: &str, out: &str| {
        run(&[
            "image",
            "pack",
            app_s,
            "--layout",
            "bytecode",
            "--version",
            version,
            "--key",
            "k.pem",
            "-o",
            out,
        ])
    };
    pack("1.0.0", "app-1.0.0.img");
    pack("0.9.0", "app-0.9.0.img");
    let public = d.join("k.pem.pub.pem");
    let sim = Sim::start(&["--pty", "--require-signatures", public.to_str().expect("p")]);

    let o = fota(sim.port(), &["flash", app_s]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("the device runs only signed images"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("fota image sign"), "{}", text(&o));
    assert_eq!(record(sim.port())[4], 0, "nothing switched");

    let img = |name: &str| d.join(name).to_str().expect("p").to_string();
    let o = fota(sim.port(), &["flash", &img("app-1.0.0.img")]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("version 1.0.0"), "{}", text(&o));
    assert!(text(&o).contains("signed by"), "{}", text(&o));
    let o = fota(sim.port(), &["info"]);
    assert!(text(&o).contains("signed images only"), "{}", text(&o));
    assert!(
        text(&o).contains("bytecode version 1.0.0 or newer"),
        "{}",
        text(&o)
    );

    let o = fota(sim.port(), &["flash", &img("app-1.0.0.img")]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("already installed"), "{}", text(&o));

    let o = fota(sim.port(), &["flash", &img("app-0.9.0.img")]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("downgrade from version 1.0.0 to 0.9.0"),
        "{}",
        text(&o)
    );
    let o = fota(
        sim.port(),
        &["flash", &img("app-0.9.0.img"), "--allow-downgrade"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = fota(sim.port(), &["info"]);
    assert!(
        text(&o).contains("bytecode version 0.9.0 or newer"),
        "{}",
        text(&o)
    );
}

#[test]
fn pty_faulty_bytecode_is_reverted() {
    let dir = tempfile::tempdir().expect("tmp");
    let sim = Sim::start(&["--pty"]);
    let image = sample(dir.path(), "faulty");
    let o = fota(sim.port(), &["flash", image.to_str().expect("path")]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("went back to the previous firmware"),
        "{}",
        text(&o)
    );
    let r = record(sim.port());
    assert_eq!((r[4], r[5]), (0, 0), "{r:?}");
}

#[test]
fn ws_vm_and_bytecode_update_is_accepted() {
    let dir = tempfile::tempdir().expect("tmp");
    let addr = free_addr();
    let sim = Sim::start(&["--layout", "vm", "--ws", &addr]);
    let bc = sample(dir.path(), "healthy");
    let vm = sample(dir.path(), "vm");
    let o = fota(
        sim.port(),
        &[
            "--json",
            "flash",
            bc.to_str().expect("p"),
            "--vm",
            vm.to_str().expect("p"),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(result(&o)["outcome"], "Accepted");
    let r = record(sim.port());
    assert_eq!((r[1], r[2], r[3], r[4], r[5]), (1, 1, 1, 1, 1), "{r:?}");
}

#[test]
fn ws_faulty_update_on_the_vm_layout_is_reverted() {
    let dir = tempfile::tempdir().expect("tmp");
    let addr = free_addr();
    let sim = Sim::start(&["--layout", "vm", "--ws", &addr]);
    let bc = sample(dir.path(), "faulty");
    let vm = sample(dir.path(), "vm");
    let o = fota(
        sim.port(),
        &[
            "flash",
            bc.to_str().expect("p"),
            "--vm",
            vm.to_str().expect("p"),
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let r = record(sim.port());
    assert_eq!((r[2], r[4]), (0, 0), "back on VM 0 and bytecode 0: {r:?}");
}

#[test]
fn record_watch_sees_the_accept() {
    let dir = tempfile::tempdir().expect("tmp");
    let sim = Sim::start(&["--pty", "--accept-after-ms", "2500"]);
    let image = sample(dir.path(), "healthy");
    let o = fota(
        sim.port(),
        &["flash", "--no-restart", image.to_str().expect("p")],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = fota(sim.port(), &["--json", "restart"]);
    assert!(o.status.success(), "{}", text(&o));
    let on_trial = json_lines(&o)
        .into_iter()
        .find(|v| v["event"] == "record")
        .expect("record");
    assert_eq!(on_trial["on_trial"], true, "{on_trial}");
    let o = fota(
        sim.port(),
        &["--json", "record", "--watch", "--timeout", "6"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let records: Vec<Value> = json_lines(&o)
        .into_iter()
        .filter(|v| v["event"] == "record")
        .collect();
    assert!(records.len() >= 2, "the watch saw no change: {records:?}");
    assert_eq!(records[0]["on_trial"], true);
    let last = records.last().expect("last");
    assert_eq!(last["on_trial"], false);
    assert_eq!(last["record"][4], 1);
    assert_eq!(last["record"][5], 1);
}

/// The `--json` record line of a command's output.
fn record_line(o: &Output) -> Value {
    json_lines(o)
        .into_iter()
        .find(|v| v["event"] == "record")
        .unwrap_or_else(|| panic!("no record line in: {}", text(o)))
}

/// Tried as a new user would: `fota flash --no-restart`, `fota restart`,
/// `fota attempt --bc 1 --force`, `fota restart`. The attempt of the configuration on
/// trial must not arm it for another trial: the second restart brings back slot 0. Along
/// the way `fota record` shows the state and the running slots, and `fota accept` says
/// why there was nothing to accept.
#[test]
fn a_trial_is_never_re_armed_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tmp");
    // The new firmware takes a minute to confirm itself: it stays on trial here.
    let sim = Sim::start(&["--pty", "--accept-after-ms", "60000"]);
    let image = sample(dir.path(), "healthy");
    let port = sim.port();
    let o = fota(port, &["flash", "--no-restart", image.to_str().expect("p")]);
    assert!(o.status.success(), "{}", text(&o));
    let pending = record_line(&fota(port, &["--json", "record"]));
    assert_eq!(pending["state"], "Pending", "{pending}");
    assert_eq!(pending["running"]["bytecode"], 0, "{pending}");
    let o = fota(port, &["--json", "accept"]);
    assert!(o.status.success(), "{}", text(&o));
    let acc = json_lines(&o)
        .into_iter()
        .find(|v| v["event"] == "accept")
        .expect("accept line");
    assert_eq!(acc["outcome"], "NotRestarted", "{acc}");
    let trial = record_line(&fota(port, &["--json", "restart"]));
    assert_eq!(trial["state"], "Trial", "{trial}");
    assert_eq!(
        (&trial["running"]["bytecode"], &trial["record"][4]),
        (&Value::from(1), &Value::from(1)),
        "{trial}"
    );
    let o = fota(port, &["--json", "attempt", "--bc", "1", "--force"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(record_line(&o)["state"], "Trial", "the trial was re-armed");
    let back = record_line(&fota(port, &["--json", "restart"]));
    assert_eq!(back["state"], "Confirmed", "{back}");
    assert_eq!(back["record"][4], 0, "the restart did not revert: {back}");
    assert_eq!(back["running"]["bytecode"], 0, "{back}");
    // Plain text: the state and what runs, and accept's answer.
    let o = fota(port, &["record"]);
    let t = text(&o);
    assert!(
        t.contains("state    Confirmed") && t.contains("running  VM slot 0, bytecode slot 0"),
        "{t}"
    );
    let t = text(&fota(port, &["accept"]));
    assert!(
        t.contains("nothing to accept: the running configuration already is the last working one"),
        "{t}"
    );
}

/// Run `fota --json flash` and kill it (SIGKILL) once the stream passed `fraction`.
fn flash_and_kill_host_at(port: &str, image: &Path, fraction: f64) {
    let mut child = Command::new(FOTA)
        .args(["--port", port, "--json", "flash"])
        .arg(image)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("flash");
    let stdout = child.stdout.take().expect("stdout");
    for line in BufReader::new(stdout).lines() {
        let Ok(v) = serde_json::from_str::<Value>(&line.expect("line")) else {
            continue;
        };
        if v["event"] == "progress" && v["phase"] == "stream" {
            let done = v["done"].as_f64().unwrap_or(0.0);
            let total = v["total"].as_f64().unwrap_or(1.0);
            if done / total >= fraction {
                break;
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_transfer_killed_half_way_resumes_with_only_the_missing_part() {
    let dir = tempfile::tempdir().expect("tmp");
    let sim = Sim::start(&["--pty"]);
    let image = big_image(dir.path(), 200);
    let len = std::fs::metadata(&image).expect("meta").len();
    flash_and_kill_host_at(sim.port(), &image, 0.5);
    let o = fota(sim.port(), &["--json", "flash", image.to_str().expect("p")]);
    assert!(o.status.success(), "{}", text(&o));
    let r = result(&o);
    let sent = r["sent_bytes"].as_u64().expect("sent");
    let skipped = r["skipped_bytes"].as_u64().expect("skipped");
    assert_eq!(r["outcome"], "Accepted");
    assert!(
        skipped >= len * 4 / 10,
        "only {skipped} of {len} bytes were kept"
    );
    assert!(
        sent <= len * 6 / 10 + 8192,
        "sent {sent} of {len}: not a resume"
    );
    eprintln!("resume: {skipped} bytes kept, {sent} sent of {len}");
}

/// The firmware a device runs after a power cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Runs {
    /// The factory program, byte for byte.
    Old,
    /// The image the update sent, byte for byte.
    New,
}

/// Which image the running bytecode slot holds, byte for byte (the device's MD5 of the
/// slot over each image's length, compared with the image by `fota checksum --image`).
/// Panics if it holds neither.
fn running_image(port: &str, old: &Path, new: &Path, case: &str) -> (Runs, Value) {
    let o = fota(port, &["--json", "record"]);
    assert!(o.status.success(), "{case}: {}", text(&o));
    let rec = json_lines(&o)
        .into_iter()
        .find(|v| v["event"] == "record")
        .expect("a record line");
    let slot = rec["running"]["bytecode"]
        .as_u64()
        .expect("the running bytecode slot")
        .to_string();
    let mut found = None;
    for (runs, image) in [(Runs::Old, old), (Runs::New, new)] {
        let o = fota(
            port,
            &[
                "--json",
                "checksum",
                "--slot",
                &slot,
                "--image",
                image.to_str().expect("path"),
            ],
        );
        let matches = json_lines(&o)
            .into_iter()
            .find(|v| v["event"] == "result")
            .map(|v| v["matches"] == true);
        assert_eq!(
            matches.unwrap_or(false),
            o.status.success(),
            "{case}: fota checksum's exit status says otherwise: {}",
            text(&o)
        );
        if o.status.success() {
            found = Some(runs);
        }
    }
    let runs = found.unwrap_or_else(|| {
        panic!("{case}: bytecode slot {slot} runs, and holds neither the old nor the new image")
    });
    (runs, rec)
}

/// Kill the simulator (a power cut) once `flash` reports `trigger`, start it again on the
/// same flash file, check the device runs the old or the new program byte for byte
/// (`expect` says which may run), and finish the update.
fn power_cut_case(
    trigger: &dyn Fn(&Value) -> bool,
    sim_args: &[&str],
    case: &str,
    expect: &[Runs],
) {
    let dir = tempfile::tempdir().expect("tmp");
    let state = dir.path().join("flash.state");
    let state_s = state.to_str().expect("p");
    let mut args = vec!["--pty", "--state", state_s];
    args.extend_from_slice(sim_args);
    let mut sim = Sim::start(&args);
    let image = big_image(dir.path(), 96);
    let old = write_file(dir.path(), "factory.bin", &fota_sim::images::blink_v1());
    let mut child = Command::new(FOTA)
        .args(["--port", sim.port(), "--json", "flash"])
        .arg(&image)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("flash");
    let stdout = child.stdout.take().expect("stdout");
    let mut hit = false;
    for line in BufReader::new(stdout).lines() {
        let Ok(v) = serde_json::from_str::<Value>(&line.expect("line")) else {
            continue;
        };
        if trigger(&v) {
            hit = true;
            break;
        }
    }
    assert!(hit, "{case}: the flash never reached the cut point");
    sim.kill();
    let _ = child.kill();
    let _ = child.wait();

    let sim = Sim::start(&args);
    let r = record(sim.port());
    assert_eq!(r[0], 1, "{case}: record not valid after the cut: {r:?}");
    let (runs, rec) = running_image(sim.port(), &old, &image, case);
    assert!(
        expect.contains(&runs),
        "{case}: the device runs the {runs:?} program after the cut, expected one of \
         {expect:?}: {rec}"
    );
    if runs == Runs::Old {
        // Back on the previous firmware: confirmed, nothing on trial.
        assert_eq!(rec["on_trial"], false, "{case}: {rec}");
    }
    let o = fota(
        sim.port(),
        &[
            "--json",
            "flash",
            image.to_str().expect("p"),
            "--wait",
            "20",
        ],
    );
    // Cut after the attempt was recorded, the new firmware may have passed its trial and
    // accepted itself once the power came back: then it is installed, nothing to do.
    let installed = runs == Runs::New && text(&o).contains("already installed");
    if !installed {
        assert!(
            o.status.success(),
            "{case}: the update could not be finished: {}",
            text(&o)
        );
        assert_eq!(result(&o)["outcome"], "Accepted", "{case}");
    }
    assert_eq!(
        running_image(sim.port(), &old, &image, case).0,
        Runs::New,
        "{case}: after the update"
    );
}

#[test]
fn power_cut_in_the_middle_of_the_stream() {
    power_cut_case(
        &|v| {
            v["event"] == "progress"
                && v["phase"] == "stream"
                && v["done"].as_f64().unwrap_or(0.0) >= 0.5 * v["total"].as_f64().unwrap_or(1.0)
        },
        &[],
        "stream",
        &[Runs::Old],
    );
}

#[test]
fn power_cut_at_attempt() {
    power_cut_case(
        &|v| v["event"] == "step" && v["step"] == "Attempt",
        &[],
        "attempt",
        &[Runs::Old, Runs::New],
    );
}

#[test]
fn power_cut_while_the_trial_runs_before_accept() {
    power_cut_case(
        &|v| v["event"] == "step" && v["step"] == "Outcome",
        &["--accept-after-ms", "3000"],
        "trial",
        // A trial cut before it accepted comes back on the previous firmware.
        &[Runs::Old],
    );
}

/// The trial deadline the device declares (`Info` tag 7): the simulator's watchdog resets
/// a firmware that has not accepted within 1.5 s.
#[test]
fn info_shows_the_time_a_trial_has_to_confirm() {
    let sim = Sim::start(&["--pty"]);
    let o = fota(sim.port(), &["info"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("trial        firmware must confirm within 1.5 s"),
        "{}",
        text(&o)
    );
    let o = fota(sim.port(), &["--json", "info"]);
    assert!(o.status.success(), "{}", text(&o));
    let result = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["event"] == "result")
        .expect("a result line");
    assert_eq!(result["confirm_ms"], 1500, "{result}");
    // The block erases the simulated W25Q128JV offers (tag 10), both ways.
    assert_eq!(result["block_erases"][1]["size"], 65536, "{result}");
    assert_eq!(result["block_erases"][1]["ms"], 150, "{result}");
    let o = fota(sim.port(), &["info"]);
    assert!(
        text(&o).contains("block erase  64.0 KiB in 150 ms"),
        "{}",
        text(&o)
    );
}

/// `fota sim` erases in the background (the W25Q128JV's erase suspend, `Info` tag 11)
/// and `fota info` says so; `--no-erase-suspend` models a driver that waits for each
/// erase, and an update goes through on both.
#[test]
fn info_says_whether_erases_run_in_the_background() {
    let dir = tempfile::tempdir().expect("tmp");
    let image = sample(dir.path(), "healthy");
    for (args, background) in [
        (&["--pty"][..], true),
        (&["--pty", "--no-erase-suspend"][..], false),
    ] {
        let sim = Sim::start(args);
        let port = sim.port();
        let t = text(&fota(port, &["info"]));
        assert_eq!(
            t.contains("erase        in the background"),
            background,
            "{t}"
        );
        let o = fota(port, &["--json", "info"]);
        let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        assert_eq!(doc["background_erase"], background, "{doc}");
        let o = fota(port, &["flash", image.to_str().expect("utf-8")]);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
    }
}

/// `fota sim --flash stm32f4`: 16, 64 and 128 KiB sectors, 2 s to erase a bytecode
/// sector. `fota info` shows them, and a 200 KiB program (two 128 KiB sectors, erased
/// in real time) goes in without a request sent twice.
#[test]
fn an_update_on_stm32f4_sectors_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tmp");
    let sim = Sim::start(&["--pty", "--flash", "stm32f4"]);
    let port = sim.port();
    let t = text(&fota(port, &["info"]));
    assert!(
        t.contains("sectors      7 x 128.0 KiB from 0x00020000"),
        "{t}"
    );
    assert!(
        t.contains("erase        a sector in 2000 ms at worst"),
        "{t}"
    );
    assert!(
        !t.contains("in the background"),
        "no erase suspend on it: {t}"
    );
    let image = dir.path().join("big.bin");
    let o = Command::new(FOTA)
        .args(["sample", "healthy", "--size", "204800", "-o"])
        .arg(&image)
        .output()
        .expect("fota sample");
    assert!(o.status.success(), "{}", text(&o));
    // A used slot 1 first (a reverted program), so that the update must erase.
    let broken = sample(dir.path(), "faulty");
    let o = fota(port, &["flash", broken.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let start = Instant::now();
    let o = fota(port, &["-v", "flash", image.to_str().expect("utf-8")]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(!t.contains("sending it again"), "{t}");
    assert!(t.contains("Erasing 128 KiB"), "{t}");
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    // The rate it negotiated is remembered for this port: the next run tries it when the
    // base rate gets no answer.
    let memo = std::fs::read_to_string(state_dir().join("baud")).expect("the rate memo");
    assert!(memo.contains(&format!("{port}\t921600")), "{memo}");
}

#[test]
fn error_port_busy() {
    let sim = Sim::start(&["--pty"]);
    let mut holder = Command::new(FOTA)
        .args(["--port", sim.port(), "record", "--watch", "--timeout", "8"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("holder");
    std::thread::sleep(Duration::from_millis(700));
    let o = fota(sim.port(), &["info"]);
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("busy") && t.contains("another program"), "{t}");
}

#[test]
fn error_permission_denied() {
    // Root may open any terminal: drop to an unprivileged user to meet the real error.
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false);
    let runuser = Path::new("/usr/sbin/runuser").exists() || Path::new("/sbin/runuser").exists();
    if !is_root || !runuser {
        eprintln!("skipped: needs root and runuser to run as an unprivileged user");
        return;
    }
    let sim = Sim::start(&["--pty"]);
    let o = Command::new("runuser")
        .args(["-u", "nobody", "--", FOTA, "--port", sim.port(), "info"])
        .output()
        .expect("runuser");
    let t = text(&o);
    if t.contains("Permission denied") && t.contains(FOTA) {
        eprintln!("skipped: the test binary is not reachable by the unprivileged user: {t}");
        return;
    }
    assert!(!o.status.success());
    assert!(
        t.contains("permission denied") && t.contains("dialout"),
        "{t}"
    );
}

#[test]
fn error_no_answer() {
    // A terminal with nothing behind it: no agent answers.
    let (master, slave) = serialport::TTYPort::pair().expect("pty");
    let name = serialport::SerialPort::name(&slave).expect("name");
    drop(slave);
    let start = Instant::now();
    let o = fota(&name, &["info"]);
    drop(master);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("no answer") && t.contains("baud rate"), "{t}");
    assert!(start.elapsed() < Duration::from_secs(30));
}

#[test]
fn error_fota_unsupported() {
    let sim = Sim::start(&["--pty", "--unsupported"]);
    let o = fota(sim.port(), &["info"]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("no FOTA support") && t.contains("help:"), "{t}");
}

#[test]
fn error_image_larger_than_the_slot() {
    let dir = tempfile::tempdir().expect("tmp");
    let sim = Sim::start(&["--pty"]);
    let image = write_file(dir.path(), "huge.bin", &vec![0x5A; 300 * 1024]);
    let before = record(sim.port());
    let o = fota(sim.port(), &["flash", image.to_str().expect("p")]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("larger than the 262144-byte slot"), "{t}");
    assert_eq!(record(sim.port()), before);
}

#[test]
fn error_empty_image() {
    let dir = tempfile::tempdir().expect("tmp");
    let sim = Sim::start(&["--pty"]);
    let image = write_file(dir.path(), "empty.bin", &[]);
    let o = fota(sim.port(), &["flash", image.to_str().expect("p")]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("is empty") && t.contains("help:"), "{t}");
}

#[test]
fn error_no_such_port() {
    let o = fota("/dev/ttyNOSUCHPORT0", &["info"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("no such serial port"), "{}", text(&o));
}

#[test]
fn bridge_carries_a_whole_update_from_a_websocket_to_a_serial_port() {
    let dir = tempfile::tempdir().expect("tmp");
    let sim = Sim::start(&["--pty"]);
    let addr = free_addr();
    let mut bridge = Command::new(FOTA)
        .args(["--port", sim.port(), "bridge", "--ws", &addr])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("bridge");
    // It prints the URL programs connect with (the token in it) once it listens.
    let url = printed_url(&mut bridge);
    let image = sample(dir.path(), "healthy");
    let o = fota(&url, &["--json", "flash", image.to_str().expect("p")]);
    let _ = bridge.kill();
    let _ = bridge.wait();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(result(&o)["outcome"], "Accepted");
}

/// The `ws: URL` line a `fota sim --ws` or `fota bridge` prints on its stdout.
fn printed_url(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let url = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("ws: ").map(str::to_string))
        .expect("a ws: line");
    std::thread::spawn(move || for _ in lines {});
    url
}

/// The status line a WebSocket handshake to `addr` gets, sent byte for byte as a browser
/// (with `origin`) or a program (without) sends it.
fn handshake(addr: &str, path: &str, origin: Option<&str>) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let origin = origin.map_or(String::new(), |o| format!("Origin: {o}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{origin}\r\n"
    )
    .expect("send");
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// A `fota sim --ws` with its stderr collected, and the URL it printed.
fn sim_ws(extra: &[&str]) -> (Child, String, std::sync::Arc<std::sync::Mutex<String>>) {
    let addr = free_addr();
    let mut child = Command::new(FOTA)
        .args(["sim", "--ws", &addr])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("fota sim");
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let stderr = child.stderr.take().expect("stderr");
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(mut l) = sink.lock() {
                l.push_str(&line);
                l.push('\n');
            }
        }
    });
    let url = printed_url(&mut child);
    (child, url, log)
}

fn wait_for_log(log: &std::sync::Mutex<String>, what: &str) -> String {
    let start = Instant::now();
    loop {
        let text = log.lock().map(|l| l.clone()).unwrap_or_default();
        if text.contains(what) || start.elapsed() > Duration::from_secs(10) {
            return text;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn handshake_from_a_foreign_origin_is_refused() {
    let (mut child, url, log) = sim_ws(&[]);
    let addr = url_addr(&url);
    let status = handshake(&addr, "/", Some("https://evil.example"));
    assert!(status.starts_with("HTTP/1.1 403"), "{status}");
    // Even with the right token: a page's origin decides.
    let status = handshake(&addr, &url_path(&url), Some("https://evil.example"));
    assert!(status.starts_with("HTTP/1.1 403"), "{status}");
    let log = wait_for_log(&log, "--allow-origin https://evil.example");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        log.contains("a page from https://evil.example is not an allowed origin")
            && log.contains("start again with --allow-origin https://evil.example"),
        "{log}"
    );
}

#[test]
fn handshake_without_a_token_is_refused() {
    let (mut child, url, log) = sim_ws(&[]);
    let status = handshake(&url_addr(&url), "/", None);
    let log = wait_for_log(&log, "no token");
    let _ = child.kill();
    let _ = child.wait();
    assert!(status.starts_with("HTTP/1.1 401"), "{status}");
    assert!(
        log.contains("refused a WebSocket") && log.contains("no token"),
        "{log}"
    );
}

#[test]
fn handshake_with_a_wrong_token_is_refused() {
    let (mut child, url, log) = sim_ws(&[]);
    let status = handshake(
        &url_addr(&url),
        "/?token=0123456789abcdef0123456789abcdef",
        None,
    );
    let log = wait_for_log(&log, "wrong token");
    // And the CLI says what to do.
    let wrong = format!(
        "ws://{}/?token=0123456789abcdef0123456789abcdef",
        url_addr(&url)
    );
    let o = fota(&wrong, &["info"]);
    let none = fota(&format!("ws://{}", url_addr(&url)), &["info"]);
    let _ = child.kill();
    let _ = child.wait();
    assert!(status.starts_with("HTTP/1.1 401"), "{status}");
    assert!(log.contains("wrong token"), "{log}");
    assert!(!o.status.success());
    assert!(
        text(&o).contains("the bridge refused the token") && text(&o).contains("?token="),
        "{}",
        text(&o)
    );
    assert!(
        !text(&o).contains("0123456789abcdef"),
        "the token stays out of messages: {}",
        text(&o)
    );
    assert!(
        text(&none).contains("the bridge wants a token"),
        "{}",
        text(&none)
    );
}

#[test]
fn handshake_from_the_web_app_origin_or_with_the_token_is_accepted() {
    let (mut child, url, _log) = sim_ws(&["--allow-origin", "https://FOTA.example.com:443/"]);
    let addr = url_addr(&url);
    assert!(url.contains("/?token="), "{url}");
    let results: Vec<String> = [
        handshake(&addr, "/", Some("http://127.0.0.1:8080")),
        handshake(&addr, "/", Some("http://localhost:8080")),
        handshake(&addr, "/", Some("https://fota.example.com")),
        handshake(&addr, &url_path(&url), None),
    ]
    .into();
    let o = fota(&url, &["--json", "info"]);
    let _ = child.kill();
    let _ = child.wait();
    for status in &results {
        assert!(status.starts_with("HTTP/1.1 101"), "{results:?}");
    }
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn no_token_opens_the_socket_to_programs_but_not_to_foreign_pages() {
    let (mut child, url, log) = sim_ws(&["--no-token"]);
    let addr = url_addr(&url);
    let program = handshake(&addr, "/", None);
    let page = handshake(&addr, "/", Some("https://evil.example"));
    let log = wait_for_log(&log, "evil");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(url, format!("ws://{addr}"));
    assert!(program.starts_with("HTTP/1.1 101"), "{program}");
    assert!(page.starts_with("HTTP/1.1 403"), "{page}");
    assert!(log.contains("warning: --no-token"), "{log}");
}

#[test]
fn the_bridge_refuses_foreign_origins_and_programs_without_the_token() {
    let sim = Sim::start(&["--pty"]);
    let addr = free_addr();
    let mut bridge = Command::new(FOTA)
        .args(["--port", sim.port(), "bridge", "--ws", &addr])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bridge");
    let url = printed_url(&mut bridge);
    let foreign = handshake(&addr, "/", Some("https://evil.example"));
    let program = handshake(&addr, "/", None);
    let ours = handshake(&addr, "/", Some("http://127.0.0.1:8080"));
    let _ = bridge.kill();
    let mut err = String::new();
    if let Some(mut e) = bridge.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    let _ = bridge.wait();
    assert!(url.starts_with(&format!("ws://{addr}/?token=")), "{url}");
    assert!(foreign.starts_with("HTTP/1.1 403"), "{foreign}");
    assert!(program.starts_with("HTTP/1.1 401"), "{program}");
    assert!(ours.starts_with("HTTP/1.1 101"), "{ours}");
    assert!(err.contains("--allow-origin https://evil.example"), "{err}");
}

#[test]
fn an_origin_that_is_not_one_is_refused_at_start() {
    let o = Command::new(FOTA)
        .args([
            "sim",
            "--ws",
            "127.0.0.1:0",
            "--allow-origin",
            "fota.example.com",
        ])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("an origin starts with http:// or https://"),
        "{}",
        text(&o)
    );
}

fn url_addr(url: &str) -> String {
    let rest = url.strip_prefix("ws://").expect("ws://");
    rest.split('/').next().expect("addr").to_string()
}

fn url_path(url: &str) -> String {
    let rest = url.strip_prefix("ws://").expect("ws://");
    rest.find('/')
        .map_or("/".to_string(), |i| rest[i..].to_string())
}

#[test]
fn bridge_refuses_a_non_loopback_address() {
    let o = fota("/dev/null", &["bridge", "--ws", "0.0.0.0:9000"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("not a loopback address"), "{}", text(&o));
}

#[test]
fn an_unusable_number_is_an_error_not_a_crash() {
    for args in [
        &["sim", "--pty", "--latency-ms", "inf"][..],
        &["sim", "--pty", "--latency-ms", "NaN"][..],
    ] {
        let o = Command::new(FOTA).args(args).output().expect("run");
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert!(text(&o).contains("not a usable number"), "{}", text(&o));
    }
    let o = fota(
        "/dev/ttyNOSUCHPORT0",
        &["record", "--watch", "--timeout", "-1"],
    );
    assert!(!o.status.success());
}

#[test]
fn attempt_checks_the_slot_against_the_image_first() {
    let dir = tempfile::tempdir().expect("tmp");
    let sim = Sim::start(&["--pty"]);
    let healthy = sample(dir.path(), "healthy");
    let faulty = sample(dir.path(), "faulty");
    let o = fota(
        sim.port(),
        &["flash", "--no-restart", healthy.to_str().expect("p")],
    );
    assert!(o.status.success(), "{}", text(&o));
    // Undo the attempt (unchecked: the current configuration), then try the checks.
    let o = fota(sim.port(), &["attempt", "--bc", "0", "--force"]);
    assert!(o.status.success(), "{}", text(&o));
    let before = record(sim.port());
    let o = fota(sim.port(), &["attempt", "--bc", "1"]);
    assert!(
        !o.status.success() && text(&o).contains("--image FILE"),
        "{}",
        text(&o)
    );
    let o = fota(
        sim.port(),
        &[
            "attempt",
            "--bc",
            "1",
            "--image",
            faulty.to_str().expect("p"),
        ],
    );
    assert!(
        !o.status.success() && text(&o).contains("nothing was attempted"),
        "{}",
        text(&o)
    );
    assert_eq!(
        record(sim.port()),
        before,
        "a refused attempt changes nothing"
    );
    let o = fota(
        sim.port(),
        &[
            "--json",
            "attempt",
            "--bc",
            "1",
            "--image",
            healthy.to_str().expect("p"),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let r = record(sim.port());
    assert_eq!((r[4], r[5]), (1, 0), "slot 1 is attempted: {r:?}");
}

#[test]
fn the_catalogue_names_the_handshake_tests() {
    let doc = include_str!("../../../docs/BAD_INPUTS.md");
    let source = include_str!("cli.rs");
    let named: Vec<&str> = doc
        .lines()
        .filter_map(|l| l.split("`cli.rs::").nth(1))
        .filter_map(|s| s.split('`').next())
        .collect();
    assert!(named.len() >= 4, "{named:?}");
    for name in &named {
        assert!(
            source.contains(&format!("#[test]\nfn {name}()")),
            "docs/BAD_INPUTS.md names {name}, which is no test in cli.rs"
        );
    }
    for test in [
        "handshake_from_a_foreign_origin_is_refused",
        "handshake_without_a_token_is_refused",
        "handshake_with_a_wrong_token_is_refused",
        "an_origin_that_is_not_one_is_refused_at_start",
    ] {
        assert!(named.contains(&test), "docs/BAD_INPUTS.md lacks {test}");
    }
}

/// A raw HTTP GET to `addr`: the status line and the headers (lowercase names), the body.
fn http_get(addr: &str, path: &str, extra: &str) -> (String, Vec<(String, String)>, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n"
    )
    .expect("send");
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let split = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header");
    let head = String::from_utf8_lossy(&got[..split]).to_string();
    let mut lines = head.lines();
    let status = lines.next().unwrap_or_default().to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, got[split + 4..].to_vec())
}

#[test]
fn serve_sends_the_policy_and_precompressed_files() {
    let dir = tempfile::tempdir().expect("tmp");
    write_file(dir.path(), "index.html", b"<!doctype html><p>app</p>");
    write_file(dir.path(), "app.js", b"plain");
    write_file(dir.path(), "app.js.gz", b"gzipped");
    let mut child = Command::new(FOTA)
        .args([
            "serve",
            dir.path().to_str().expect("p"),
            "--addr",
            "127.0.0.1:0",
        ])
        .args(["--connect-src", "wss://bridge.example:9000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("fota serve");
    let stdout = child.stdout.take().expect("stdout");
    let url = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("web app: ").map(str::to_string))
        .expect("a web app: line");
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let page = http_get(&addr, "/", "");
    let gz = http_get(&addr, "/app.js", "Accept-Encoding: gzip\r\n");
    let plain = http_get(&addr, "/app.js", "");
    let missing = http_get(&addr, "/../etc/passwd", "");
    let _ = child.kill();
    let _ = child.wait();
    let header = |r: &(String, Vec<(String, String)>, Vec<u8>), name: &str| {
        r.1.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert!(page.0.contains("200"), "{}", page.0);
    assert_eq!(page.2, b"<!doctype html><p>app</p>");
    let csp = header(&page, "content-security-policy");
    assert!(
        csp.starts_with("default-src 'none'; script-src 'self' 'wasm-unsafe-eval';"),
        "{csp}"
    );
    assert!(
        csp.contains(
            "connect-src 'self' ws://127.0.0.1:* ws://localhost:* wss://bridge.example:9000;"
        ),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(header(&page, "x-content-type-options"), "nosniff");
    assert_eq!(header(&gz, "content-encoding"), "gzip");
    assert_eq!(gz.2, b"gzipped");
    assert_eq!(header(&gz, "content-security-policy"), csp);
    assert_eq!(plain.2, b"plain");
    assert!(!missing.0.contains("200"), "{}", missing.0);
}

#[test]
fn serve_refuses_a_source_that_would_add_a_directive() {
    let dir = tempfile::tempdir().expect("tmp");
    write_file(dir.path(), "index.html", b"x");
    let o = Command::new(FOTA)
        .args([
            "serve",
            dir.path().to_str().expect("p"),
            "--addr",
            "127.0.0.1:0",
        ])
        .args(["--connect-src", "https://a; script-src *"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("not a source like"), "{}", text(&o));
}

/// `fota` with its own, empty memory of negotiated rates.
fn fota_forgetful(port: &str, memo: &Path, args: &[&str]) -> Output {
    Command::new(FOTA)
        .env("FOTA_STATE_DIR", memo)
        .arg("--port")
        .arg(port)
        .args(args)
        .output()
        .expect("run fota")
}

#[test]
fn a_host_killed_at_a_negotiated_rate_leaves_the_agent_there_and_the_next_host_finds_it() {
    // The pseudo-terminal carries the rate its client set, as a UART does: a host that
    // vanishes without Goodbye leaves the agent at 921600, where a host at 115200 gets
    // answer there until the agent's idle time (10 s) brings it back. A host that does not
    // remember the rate finds the agent at the fast rate after its first Hellos fail.
    let sim = Sim::start(&["--pty"]);
    let port = sim.port().to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let image = big_image(dir.path(), 96);
    let mut host = Command::new(FOTA)
        .env("FOTA_STATE_DIR", dir.path().join("killed"))
        .args(["--json", "--port", &port, "flash", "--no-restart"])
        .arg(&image)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("fota flash");
    let lines = BufReader::new(host.stdout.take().expect("stdout")).lines();
    let mut seen = String::new();
    for line in lines {
        let line = line.expect("line");
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("\"stream\"") {
            break;
        }
    }
    assert!(seen.contains("921600"), "negotiated first: {seen}");
    let _ = host.kill(); // SIGKILL: no Goodbye
    let _ = host.wait();
    let killed = Instant::now();

    let fresh = dir.path().join("fresh");
    let o = fota_forgetful(&port, &fresh, &["--json", "--no-negotiate", "record"]);
    let t = text(&o);
    assert!(
        killed.elapsed() < Duration::from_secs(10),
        "{:?}",
        killed.elapsed()
    );
    assert!(
        t.contains("no answer to Hello"),
        "the agent is still at 921600: {t}"
    );
    assert!(t.contains("answers at 921600 baud"), "{t}");
    assert!(o.status.success(), "{t}");

    // That run ended with Goodbye: the agent is back at its base rate at once.
    let o = fota_forgetful(&port, &fresh, &["--json", "--no-negotiate", "record"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(!t.contains("no answer to Hello"), "{t}");
}
