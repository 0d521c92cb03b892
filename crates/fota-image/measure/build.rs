//! Makes the image the program verifies: 256 KiB of bytecode payload, packed for the
//! bytecode slot at 0x00010000, version 1.0.0, signed by a fixed key.

use fota_image::host::{PackOptions, SigningKey, pack};
use fota_image::{Kind, Version};

fn main() {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::copy("memory.x", out.join("memory.x")).expect("memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    let mut x = 0x1234_5678u32;
    let payload: Vec<u8> = (0..256 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let key = SigningKey::from_seed([0x42; 32]).expect("a key");
    let opts = PackOptions {
        kind: Kind::Bytecode,
        slot_addr: 0x0001_0000,
        version: Version::new(1, 0, 0),
        name: "measure".into(),
    };
    let image = pack("measure", &payload, &opts, &[&key]).expect("packs");
    std::fs::write(out.join("image.bin"), image).expect("image");
    std::fs::write(out.join("public.bin"), key.public().0).expect("key");
}
