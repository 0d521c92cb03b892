//! `fota sample`: sample images to try the tool with `fota sim`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use fota_host::Problem;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum SampleArg {
    /// A bytecode program that tests itself and confirms itself (accept).
    Healthy,
    /// A bytecode program that hangs before it confirms itself: the watchdog resets the
    /// device and it reverts.
    Faulty,
    /// A bytecode program whose self-test fails: it gives its trial up and the device
    /// reverts.
    Failing,
    /// A VM image (for the VM + bytecode layout).
    Vm,
}

#[derive(Args)]
pub struct SampleArgs {
    #[arg(value_enum)]
    which: SampleArg,
    /// Where to write it.
    #[arg(long, short)]
    out: PathBuf,
    /// For `healthy`: make the program this many bytes (it carries data), to
    /// measure updates of a given size.
    #[arg(long)]
    size: Option<usize>,
}

pub fn run(args: &SampleArgs) -> Result<(), Problem> {
    let SampleArgs { which, out, size } = args;
    let program =
        |src: &str| fota_bytecode::assemble(src).map_err(|e| Problem::new(e.to_string(), ""));
    let bytes = match (which, size) {
        (SampleArg::Healthy, Some(n)) if *n >= 128 => {
            program(&fota_bytecode::samples::healthy_of_size("2", *n))?
        }
        (_, Some(_)) => {
            return Err(Problem::new(
                "--size works for `healthy` only, from 128 bytes",
                "Write `fota sample healthy --size 65536 -o big.bin`.",
            ));
        }
        (SampleArg::Healthy, None) => program(fota_bytecode::samples::BLINK_V2)?,
        (SampleArg::Faulty, None) => program(fota_bytecode::samples::BLINK_V3_BROKEN)?,
        (SampleArg::Failing, None) => program(fota_bytecode::samples::BLINK_V4_FAILING)?,
        (SampleArg::Vm, None) => fota_sim::images::vm_v2(),
    };
    std::fs::write(out, &bytes).map_err(|e| {
        Problem::new(
            format!("cannot write {}: {e}", out.display()),
            "Check the path.",
        )
    })?;
    eprintln!("wrote {} ({} bytes)", out.display(), bytes.len());
    Ok(())
}
