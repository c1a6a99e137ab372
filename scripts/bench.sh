#!/usr/bin/env bash
# Plugin benchmark (release build): Wasm plugin path vs the same code native, and cold start
# with and without the compiled-component cache. Results go to BENCHMARKS.md by hand, with
# the date and machine. Usage: scripts/bench.sh [--quick]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
# shellcheck source=lib.sh
source "$here/lib.sh"
need_cargo
ensure_wasm_target
cargo bench -p esox-wasm --bench plugins -- "$@"
