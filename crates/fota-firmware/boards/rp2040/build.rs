//! One linker script per binary, as for mps2-an386: the boot stage after boot2 at the
//! start of the flash, the VM at its slot. Only the boot stage carries boot2.
use std::{env, fs, path::PathBuf};

const RAM: &str = "RAM : ORIGIN = 0x20000000, LENGTH = 264K";

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::write(
        out.join("memory.x"),
        "/* MEMORY is in each binary's script */\n",
    )
    .expect("write memory.x");
    // (binary, FLASH origin, FLASH length, with boot2): keep in step with src/board.rs.
    let images = [
        ("rp2040-boot", 0x1000_0100u32, 0x1_0000u32 - 0x100, true),
        ("rp2040-vm-slot0", 0x1001_0000, 0x4_0000, false),
    ];
    for (bin, origin, len, boot2) in images {
        let script = format!(
            "MEMORY\n{{\n  BOOT2 : ORIGIN = 0x10000000, LENGTH = 0x100\n  FLASH : ORIGIN = {origin:#010x}, LENGTH = {len:#x}\n  {RAM}\n}}\nINCLUDE link.x\n{}",
            if boot2 { "INCLUDE link-rp.x\n" } else { "" }
        );
        let name = format!("{bin}.x");
        fs::write(out.join(&name), script).expect("write linker script");
        println!("cargo:rustc-link-arg-bin={bin}=--nmagic");
        println!("cargo:rustc-link-arg-bin={bin}=-T{name}");
    }
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=build.rs");
}
