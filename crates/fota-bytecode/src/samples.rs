//! The sample programs `fota sample` writes and the QEMU device starts with, as assembly.

/// The factory program: checks itself, accepts, then ticks twice a second.
pub const BLINK_V1: &str = r#"; The factory program of a fresh device.
name "blink"
version "1"
        print "blink 1: starting"
        sleep 20
        check clock
        accept
again:  tick
        sleep 500
        jump again
assets: data 8192       ; what a real program carries: tables, strings, fonts
"#;

/// A healthy update: a self-test, `accept`, then the tick loop.
pub const BLINK_V2: &str = r#"; A healthy update: it tests itself, then confirms itself with accept.
name "blink"
version "2"
        print "blink 2: self-test"
        sleep 20
        check clock
        check ram 2048
        check image
        check record
        print "blink 2: self-test passed"
        accept
again:  tick
        sleep 500
        jump again
assets: data 16384
"#;

/// A faulty update: it starts, then hangs before confirming itself; the watchdog resets
/// the device and the boot goes back to the last working program.
pub const BLINK_V3_BROKEN: &str = r#"; A faulty update: it hangs before it confirms itself.
name "blink"
version "3-broken"
        print "blink 3-broken: starting"
        count 3
again:  tick
        sleep 500
        loop again
        print "blink 3-broken: stuck"
        hang
assets: data 16384
"#;

/// An update whose self-test fails: it gives its trial up (the device restarts into the
/// last working program).
pub const BLINK_V4_FAILING: &str = r#"; An update whose self-test fails: it never confirms itself.
name "blink"
version "4-failing"
        print "blink 4-failing: self-test"
        sleep 20
        check clock
        fail 7
assets: data 16384
"#;

/// A program of `size` bytes (at least 128): healthy, with `data` to make up the size.
pub fn healthy_of_size(version: &str, size: usize) -> String {
    // Header (64) + the instructions below (52 with a short version) + data header (5).
    let code = format!(
        "name \"big\"\nversion \"{version}\"\n        print \"big {version}: self-test\"\n        sleep 20\n        check clock\n        check image\n        accept\nagain:  tick\n        sleep 500\n        jump again\n"
    );
    let without_data = crate::assemble(&code).map_or(0, |img| img.len());
    let pad = size.saturating_sub(without_data + 5);
    format!("{code}        data {pad}\n")
}
