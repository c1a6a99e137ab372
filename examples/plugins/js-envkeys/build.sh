#!/usr/bin/env bash
# Builds app.js into a component for esox's transformer world with componentize-js (npm),
# which embeds the StarlingMonkey (SpiderMonkey) engine. The pinned toolchain (package.json,
# package-lock.json) is installed with `npm ci` under ~/.cache/esox, never in this directory.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tools=${ESOX_CACHE:-$HOME/.cache/esox}/componentize-js
if ! cmp -s "$here/package-lock.json" "$tools/package-lock.json" || [ ! -x "$tools/node_modules/.bin/componentize-js" ]; then
  mkdir -p "$tools"
  cp "$here/package.json" "$here/package-lock.json" "$tools/"
  npm ci --prefix "$tools" --no-audit --no-fund --loglevel=error >&2
fi
out=${1:-$here/js-envkeys.wasm}
# Every WASI feature off: the component imports nothing but esox:plugin/types, so it needs
# none of the host's WASI (esox discards plugin stdout/stderr anyway, and a transformer needs
# no randomness or clocks). An uncaught JS exception then traps instead of printing.
"$tools/node_modules/.bin/componentize-js" --wit "$here/../../../wit" --world-name transformer-plugin \
  --disable stdio random clocks http fetch-event -o "$out" "$here/app.js" >&2
echo "$out"
