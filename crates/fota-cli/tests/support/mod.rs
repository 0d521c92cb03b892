//! What the command-line tests share: the `fota` binary, a running `fota sim`, a command's
//! output as text, and the firmware build (the binary's own code, included by path).
// Each test file uses a part of this.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

#[path = "../../src/firmware_build.rs"]
pub mod firmware_build;

pub const FOTA: &str = env!("CARGO_BIN_EXE_fota");

/// A running `fota sim`, killed when dropped.
pub struct Sim {
    child: Child,
    pub pty: Option<String>,
    pub ws: Option<String>,
}

impl Sim {
    /// `fota sim` with `args`, once it says it is ready.
    pub fn start(args: &[&str]) -> Sim {
        let mut child = Command::new(FOTA)
            .arg("sim")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start fota sim");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let (mut pty, mut ws) = (None, None);
        for line in lines.by_ref() {
            let line = line.expect("line");
            if let Some(p) = line.strip_prefix("pty: ") {
                pty = Some(p.to_string());
            } else if let Some(w) = line.strip_prefix("ws: ") {
                ws = Some(w.to_string());
            } else if line.starts_with("simulated device ready") {
                break;
            }
        }
        // Keep draining stdout so the simulator never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        Sim { child, pty, ws }
    }

    pub fn port(&self) -> &str {
        self.pty.as_deref().or(self.ws.as_deref()).expect("a port")
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL: a real power cut for the simulated device
        let _ = self.child.wait();
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `fota --port PORT ARGS`, keeping the rates it negotiates in `state_dir`.
pub fn fota_on(state_dir: &Path, port: &str, args: &[&str]) -> Output {
    Command::new(FOTA)
        .env("FOTA_STATE_DIR", state_dir)
        .arg("--port")
        .arg(port)
        .args(args)
        .output()
        .expect("run fota")
}

/// What a command printed, stdout then stderr.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The QEMU board's firmware built with `features` into `target_dir` (cargo does nothing
/// when it is up to date): the directory of its ELF files.
pub fn firmware(features: &[&str], target_dir: &str) -> PathBuf {
    match firmware_build::build(features, target_dir) {
        Ok(dir) => dir,
        Err(e) => panic!("building the firmware (features {features:?}) failed: {e:?}"),
    }
}
