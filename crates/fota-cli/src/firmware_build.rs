//! The cargo invocation that builds the QEMU board's firmware, written once: `fota qemu`
//! runs it, and the tests that measure or run the firmware include this file by path
//! (`tests/support/mod.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The board firmware's target: QEMU's mps2-an386, a Cortex-M4F.
pub const TARGET: &str = "thumbv7em-none-eabihf";

/// The firmware sources: their own workspace, beside this crate.
pub fn boards_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fota-firmware/boards")
}

/// Why the firmware was not built.
#[derive(Debug)]
pub enum BuildError {
    /// cargo could not be started.
    Cargo(std::io::Error),
    /// cargo ran and failed (it printed why).
    Failed,
}

/// Build the QEMU board's binaries with `features` into `target_dir` (a directory of the
/// boards workspace); cargo does nothing when they are up to date. Returns the directory
/// of the ELF files. The host's cargo settings (target, flags) are left out: they are for
/// the host build that runs this.
pub fn build(features: &[&str], target_dir: &str) -> Result<PathBuf, BuildError> {
    let boards = boards_dir();
    let target = boards.join(target_dir);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.args([
        "build",
        "--release",
        "--quiet",
        "--target",
        TARGET,
        "-p",
        "fota-board-mps2-an386",
    ]);
    if !features.is_empty() {
        command.arg("--features").arg(features.join(","));
    }
    let status = command
        .arg("--target-dir")
        .arg(&target)
        .current_dir(&boards)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTFLAGS")
        .status()
        .map_err(BuildError::Cargo)?;
    if !status.success() {
        return Err(BuildError::Failed);
    }
    Ok(target.join(TARGET).join("release"))
}
