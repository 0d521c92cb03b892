#!/usr/bin/env bash
# Prints each candidate decoder's code size on thumbv7em-none-eabihf (opt-level "s", LTO):
# .text of a minimal program calling it, minus .text of the same program without it.
set -euo pipefail
cd "$(dirname "$0")"
size_of() {
    cargo build -q --release --target thumbv7em-none-eabihf --target-dir target ${1:+--features "$1"}
    size -A target/thumbv7em-none-eabihf/release/fota-codec-size | awk '$1 == ".text" { print $2 }'
}
base=$(size_of "")
printf '| decoder | code (.text, bytes) |\n|---|---|\n'
for f in fota miniz lz4 heatshrink; do
    t=$(size_of "$f")
    printf '| %s | %d |\n' "$f" $((t - base))
done
