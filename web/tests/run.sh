#!/usr/bin/env bash
# The web app's end-to-end tests in Debian's headless Chromium (playwright-core, run by
# node's built-in test runner).
#
#   web/tests/run.sh              build the release web app (trunk) and the fota CLI,
#                                     install the npm packages, run every test
#   web/tests/run.sh --no-build   use the dist/ already built (FOTA_DIST=DIR: another)
#
# Screenshots of every step land in web/tests/screenshots/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd -P)"
root="$(cd "$here/../.." && pwd -P)"
build=1
for arg in "$@"; do
    case "$arg" in
        --no-build) build=0 ;;
        *) echo "usage: $0 [--no-build]" >&2; exit 2 ;;
    esac
done
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

cd "$here"
if [ ! -d node_modules/playwright-core ] || [ ! -d node_modules/axe-core ] || [ ! -x node_modules/.bin/wasm-opt ]; then
    if [ -f package-lock.json ]; then
        say "npm ci"; npm ci --no-audit --no-fund --loglevel=error
    else
        say "npm install"; npm install --no-audit --no-fund --loglevel=error
    fi
fi
# wasm-opt from the npm package binaryen (Debian's is too old for current rustc output).
export PATH="$here/node_modules/.bin:$HOME/.cargo/bin:$PATH"
unset RUSTFLAGS # it would replace .cargo/config.toml's flags (Web Serial needs one)

if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
    say "apt-get install chromium"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

cd "$root"
if [ "$build" = 1 ] && [ -z "${FOTA_DIST:-}" ]; then
    say "trunk build --release"
    trunk build --release
fi
dist="${FOTA_DIST:-$root/dist}"
[ -f "$dist/index.html" ] || { echo "no web app build in $dist: run without --no-build" >&2; exit 1; }
if [ -z "${FOTA_CLI:-}" ]; then
    say "cargo build -p fota-cli (the simulated device behind the fake Web Serial port)"
    cargo build -q -p fota-cli
fi
wasm=$(ls "$dist"/*.wasm | head -n1)
printf 'release wasm: %s bytes, %s bytes gzipped (-9)\n' "$(wc -c <"$wasm")" "$(gzip -9 -c "$wasm" | wc -c)"

cd "$here"
say "node --test (headless Chromium: ${CHROMIUM:-/usr/bin/chromium})"
exec node --test --test-concurrency=1 --test-timeout=300000 tests/
