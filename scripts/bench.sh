#!/usr/bin/env bash
# Plugin benchmark (release build): Wasm plugin path vs the same code native, and cold start
# with and without the compiled-component cache. Results go to BENCHMARKS.md by hand, with
# the date and machine. Usage: scripts/bench.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/esox/target}
export ESOX_WASM_TARGET_DIR=${ESOX_WASM_TARGET_DIR:-$HOME/.cache/esox/wasm-target}
rustup target list --installed 2>/dev/null | grep -q wasm32-wasip2 || rustup target add wasm32-wasip2
cargo bench -p esox-wasm --bench plugins -- "$@"
