#!/usr/bin/env bash
# Installs what building and testing need, skipping what is already there:
# Rust targets, the wasm-bindgen CLI matching Cargo.lock, Trunk, cargo-deny, Chromium, lrzsz,
# QEMU (for the firmware on an emulated Cortex-M4), real firmware for tests (the micro:bit
# MicroPython HEX and its earlier releases) and the browser tests' npm packages
# (playwright-core, binaryen's wasm-opt).
set -euo pipefail
cd "$(dirname "$0")/.."

WASM_BINDGEN_VERSION=0.2.130
TRUNK_VERSION=0.21.14
CARGO_DENY_VERSION=0.20.2
export PATH="$HOME/.cargo/bin:$PATH"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "need root for: $*" >&2; return 1; fi
}

apt_updated=0
apt_install() {
    if [ "$apt_updated" = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

installed_targets=$(rustup target list --installed)
# thumbv6m: the RP2040 port of the firmware (built, not run).
for t in thumbv7em-none-eabihf thumbv6m-none-eabi wasm32-unknown-unknown; do
    grep -qx "$t" <<<"$installed_targets" || { say "rustup target add $t"; rustup target add "$t"; }
done
for c in rustfmt clippy; do
    rustup component list --installed | grep -q "^$c" || rustup component add "$c"
done

if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
    say "cargo install wasm-bindgen-cli $WASM_BINDGEN_VERSION (about 2 minutes)"
    # Not --locked: one of its locked dependency versions is not on the registry.
    cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi
if [ "$(trunk --version 2>/dev/null | awk '{print $2}')" != "$TRUNK_VERSION" ]; then
    say "cargo install trunk $TRUNK_VERSION (about 6 minutes)"
    cargo install trunk --version "$TRUNK_VERSION" --locked --force
fi

if [ "$(cargo deny --version 2>/dev/null | awk '{print $2}')" != "$CARGO_DENY_VERSION" ]; then
    say "cargo install cargo-deny $CARGO_DENY_VERSION (about 8 minutes)"
    cargo install cargo-deny --version "$CARGO_DENY_VERSION" --locked --force
fi

need_apt=()
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v sz >/dev/null || need_apt+=(lrzsz)
# Real firmware for the image readers' tests (MicroPython for the BBC micro:bit, Intel HEX).
[ -f /usr/share/firmware-microbit-micropython/firmware.hex ] || need_apt+=(firmware-microbit-micropython)
if [ "${#need_apt[@]}" -gt 0 ]; then say "apt-get install ${need_apt[*]}"; apt_install "${need_apt[@]}"; fi
if ! command -v qemu-system-arm >/dev/null; then
    say "apt-get install qemu-system-arm (the firmware's tests run on its mps2-an386)"
    apt_install --no-install-recommends qemu-system-arm
fi

# Real firmware for the codec tests (Debian's and PyPI's MicroPython for the micro:bit).
crates/fota-codec/testdata/fetch.sh

BROWSER_DIR=web/tests
if [ ! -x "$BROWSER_DIR/node_modules/.bin/wasm-opt" ] || [ ! -d "$BROWSER_DIR/node_modules/playwright-core" ]; then
    say "npm ci in $BROWSER_DIR"
    (cd "$BROWSER_DIR" && npm ci --no-audit --no-fund --loglevel=error)
fi
