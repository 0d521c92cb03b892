//! One decoder, fed bytes the compiler cannot see, so all of its code is kept.
#![no_std]
#![no_main]

use core::ptr::{addr_of, addr_of_mut, read_volatile, write_volatile};

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}

static mut INPUT: [u8; 256] = [0; 256];
static mut OUTPUT: [u8; 1024] = [0; 1024];

fn input() -> [u8; 256] {
    // SAFETY: single-threaded program; a volatile read hides the contents.
    unsafe { read_volatile(addr_of!(INPUT)) }
}

fn sink(b: u8) {
    // SAFETY: as above.
    unsafe { write_volatile(addr_of_mut!(OUTPUT).cast::<u8>(), b) }
}

#[unsafe(no_mangle)]
pub extern "C" fn _start() -> ! {
    run(&input());
    loop {}
}

#[cfg(not(any(feature = "fota", feature = "miniz", feature = "lz4", feature = "heatshrink")))]
fn run(data: &[u8]) {
    sink(data[0]);
}

#[cfg(feature = "fota")]
fn run(data: &[u8]) {
    struct Flash;
    impl fota_codec::Flash for Flash {
        type Error = ();
        fn read_base(&mut self, _: u32, buf: &mut [u8]) -> Result<(), ()> {
            buf.iter_mut().for_each(|b| *b = input()[0]);
            Ok(())
        }
        fn read_target(&mut self, _: u32, buf: &mut [u8]) -> Result<(), ()> {
            buf.iter_mut().for_each(|b| *b = input()[1]);
            Ok(())
        }
        fn write_target(&mut self, _: u32, data: &[u8]) -> Result<(), ()> {
            data.iter().for_each(|&b| sink(b));
            Ok(())
        }
    }
    let mut d = fota_codec::Decoder::new(1 << 20, 1 << 20);
    let _ = d.feed(&mut Flash, data);
    report(d.finish().map(|s| s.written));
}

/// The function the "one-function change" build changes: what the program reports.
#[cfg(all(feature = "fota", not(feature = "changed")))]
#[inline(never)]
fn report(r: Result<u32, fota_codec::Error<core::convert::Infallible>>) {
    if r.is_ok() {
        sink(1);
    }
}

#[cfg(all(feature = "fota", feature = "changed"))]
#[inline(never)]
fn report(r: Result<u32, fota_codec::Error<core::convert::Infallible>>) {
    match r {
        Ok(written) => sink((written >> 8) as u8),
        Err(fota_codec::Error::Truncated) => sink(0xEE),
        Err(_) => sink(0xFF),
    }
}

#[cfg(feature = "miniz")]
fn run(data: &[u8]) {
    use miniz_oxide::inflate::core::{DecompressorOxide, decompress, inflate_flags};
    let mut d = DecompressorOxide::new();
    let mut out = [0u8; 32 * 1024];
    let (_, _, n) = decompress(&mut d, data, &mut out, 0, inflate_flags::TINFL_FLAG_PARSE_ZLIB_HEADER);
    sink(out[n % out.len()]);
}

#[cfg(feature = "lz4")]
fn run(data: &[u8]) {
    let mut out = [0u8; 1024];
    if let Ok(n) = lz4_flex::block::decompress_into(data, &mut out) {
        sink(out[n % out.len()]);
    }
}

#[cfg(feature = "heatshrink")]
fn run(data: &[u8]) {
    let mut out = [0u8; 1024];
    let cfg = heatshrink::Config::new(10, 4).unwrap_or_default();
    if let Ok(o) = heatshrink::decode(data, &mut out, &cfg) {
        sink(o.len() as u8);
    }
}
