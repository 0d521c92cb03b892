//! Decodes the micro:bit image's stream repeatedly (for profilers: perf, callgrind).
#[path = "../tests/common/mod.rs"]
mod common;

fn main() {
    let Some(image) = common::debian_micropython() else {
        return;
    };
    let s = fota_codec::encode::compress(&image, &Default::default())
        .unwrap()
        .to_bytes();
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let t = std::time::Instant::now();
    for _ in 0..n {
        let back = fota_codec::encode::decode(&s, &[], image.len() as u32).unwrap();
        assert_eq!(back, image);
    }
    let secs = t.elapsed().as_secs_f64();
    println!("{:.1} MB/s", (image.len() * n) as f64 / secs / 1e6);
}
