//! One linker script per binary: the boot stage at the boot address, each VM at its
//! slot. Each script sets MEMORY and includes cortex-m-rt's `link.x`; the `memory.x`
//! that `link.x` includes is left empty.
use std::{env, fs, path::PathBuf};

/// RAM for every image: 64 KiB like a small MCU, less the retained words at its top.
const RAM: &str = "RAM : ORIGIN = 0x20000000, LENGTH = 0xFF00";

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::write(
        out.join("memory.x"),
        "/* MEMORY is in each binary's script */\n",
    )
    .expect("write memory.x");
    // (binary, FLASH origin, FLASH length): keep in step with src/layout.rs.
    let images = [
        ("boot-bytecode", 0x0000_0000u32, 0x1_0000u32),
        ("boot-vm", 0x0000_0000, 0x1_0000),
        ("vm-bytecode-slot0", 0x2100_0000, 0x2_0000),
        ("vm-vm-slot0", 0x2100_0000, 0x2_0000),
        ("vm-vm-slot1", 0x2106_0000, 0x2_0000),
        ("vm-vm-slot1-crash", 0x2106_0000, 0x2_0000),
        ("agent-size", 0x0000_0000, 0x1_0000),
    ];
    for (bin, origin, len) in images {
        let script = format!(
            "MEMORY\n{{\n  FLASH : ORIGIN = {origin:#010x}, LENGTH = {len:#x}\n  {RAM}\n}}\nINCLUDE link.x\n"
        );
        let name = format!("{bin}.x");
        fs::write(out.join(&name), script).expect("write linker script");
        println!("cargo:rustc-link-arg-bin={bin}=-T{name}");
    }
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=build.rs");
}
