#!/usr/bin/env bash
# Prints the verifier's cost on a Cortex-M4F: code size (the program minus the same
# program without verification), then the run in QEMU: instructions, steps, longest
# step, stack. With --compact-sha, SHA-256 uses the sha2 crate's compact software
# backend (RUSTFLAGS --cfg sha2_backend_soft="compact"), smaller and slower.
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
flags="-C link-arg=-Tlink.x"
label="sha2 unrolled (default)"
if [ "${1:-}" = "--compact-sha" ]; then
    flags="$flags --cfg sha2_backend_soft=\"compact\""
    label="sha2 compact"
fi
export RUSTFLAGS="$flags"
bin=target/thumbv7em-none-eabihf/release/fota-image-measure
cargo build --release -q --features baseline
base=$(llvm-size -A "$bin" | awk '$1 == ".text" {print $2}')
cargo build --release -q
full=$(llvm-size -A "$bin" | awk '$1 == ".text" {print $2}')
ram=$(llvm-size -A "$bin" | awk '$1 == ".data" || $1 == ".bss" {s += $2} END {print s}')
echo "$label: verifier code $((full - base)) bytes of .text (program $full, without verification $base); static RAM $ram bytes"
timeout 300 qemu-system-arm -M mps2-an386 -nographic -icount shift=0 \
    -semihosting-config enable=on,target=native -kernel "$bin"
