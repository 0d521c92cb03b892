#!/usr/bin/env bash
# Fetches the real firmware the codec tests and the measuring tool use, from package
# registries, into target/testdata (or $FOTA_TESTDATA), checking every file's SHA-256.
# See README.md here for what each file is. Quick when everything is there.
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
dir="${FOTA_TESTDATA:-$root/target/testdata}"
mkdir -p "$dir"

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "need root for: $*" >&2; return 1; fi
}

# MicroPython for the BBC micro:bit, as Debian ships it (Intel HEX).
hex=/usr/share/firmware-microbit-micropython/firmware.hex
if [ ! -f "$hex" ]; then
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq firmware-microbit-micropython >/dev/null
fi

# Consecutive MicroPython releases as embedded in uflash's source (its _RUNTIME string):
# uflash 1.2.2 = MicroPython 1.0.0-rc.3, 1.2.3 = 1.0.0, 1.2.4 = 1.0.1.
fetch_uflash() {
    local version=$1 sdist_sha=$2 py_sha=$3
    local out="$dir/uflash-$version.py"
    if [ -f "$out" ] && echo "$py_sha  $out" | sha256sum -c --status; then return; fi
    local tmp
    tmp=$(mktemp -d)
    python3 -m pip download -q --no-deps --no-binary :all: -d "$tmp" "uflash==$version"
    echo "$sdist_sha  $tmp/uflash-$version.tar.gz" | sha256sum -c --quiet
    tar -xzf "$tmp/uflash-$version.tar.gz" -C "$tmp" "uflash-$version/uflash.py"
    echo "$py_sha  $tmp/uflash-$version/uflash.py" | sha256sum -c --quiet
    mv "$tmp/uflash-$version/uflash.py" "$out"
    rm -rf "$tmp"
}
fetch_uflash 1.2.2 da0930d73d2b24b32a7c78b7d590ad91d1e788a52c9582ddd436366328a92e2d \
    d7e330eee6de4f93ab57dde4bbe4bbd0e4697ddef9454dfc421548ed1b889bff
fetch_uflash 1.2.3 e8aa905d233711a216955024af926ad629c3d68284f4086f825a3494ed471a9f \
    9db737e9dfd850a7f00d2109de02b33e06c823c21c93f8642654e36c38068a92
fetch_uflash 1.2.4 92f7f51e00e9f48cf818226e375017b103715511e27817c80943f747a5ebecd8 \
    a700120c335dd464f087510372c38ce8bf67d6a4e5344a020c2cf04ec9ec10da

# Two builds of a small program of this project's own (the fota decoder in a minimal
# Cortex-M4 firmware) that differ in one function: the "one-function change" delta.
size_dir="$root/crates/fota-codec/size"
for variant in a b; do
    features=fota
    [ "$variant" = b ] && features=fota,changed
    cargo build -q --release --manifest-path "$size_dir/Cargo.toml" --target-dir "$dir/size-target" \
        --target thumbv7em-none-eabihf --features "$features"
    cp "$dir/size-target/thumbv7em-none-eabihf/release/fota-codec-size" "$dir/onefn-$variant.elf"
done
