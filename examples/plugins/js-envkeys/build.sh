#!/usr/bin/env bash
# Builds app.js into a component for esox's transformer world: `build.sh [OUT]` prints OUT.
# The JS engine embedded in the component is StarlingMonkey (SpiderMonkey, through
# componentize-js; the default) or QuickJS (ESOX_JS_ENGINE=quickjs, through jco). The pinned
# toolchain (package.json, package-lock.json) is installed with `npm ci` under ~/.cache/esox,
# never in this directory.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tools=${ESOX_CACHE:-$HOME/.cache/esox}/componentize-js
if ! cmp -s "$here/package-lock.json" "$tools/package-lock.json" || [ ! -x "$tools/node_modules/.bin/componentize-js" ]; then
  mkdir -p "$tools"
  cp "$here/package.json" "$here/package-lock.json" "$tools/"
  npm ci --prefix "$tools" --no-audit --no-fund --loglevel=error >&2
fi
out=${1:-$here/js-envkeys.wasm}
mkdir -p "$(dirname "$out")"
case ${ESOX_JS_ENGINE:-starlingmonkey} in
  starlingmonkey)
    # componentize-js: SpiderMonkey, about 12 MB. Every WASI feature off: the component then
    # imports nothing but esox:plugin/types (esox discards plugin stdout/stderr anyway, and a
    # transformer needs no randomness or clocks); an uncaught JS exception traps.
    "$tools/node_modules/.bin/componentize-js" --wit "$here/../../../wit" --world-name transformer-plugin \
      --disable stdio random clocks http fetch-event -o "$out" "$here/app.js" >&2 ;;
  quickjs)
    # jco's QuickJS backend (componentize-qjs): about 1.6 MB; WASI imports replaced by trapping
    # stubs, so it too imports nothing but esox:plugin/types.
    "$tools/node_modules/.bin/jco" componentize "$here/app.js" --wit "$here/../../../wit" \
      --world-name transformer-plugin --backend qjs --backend-qjs-disable-async --backend-qjs-stub-wasi \
      -o "$out" >&2 ;;
  *) echo "ESOX_JS_ENGINE must be starlingmonkey or quickjs" >&2; exit 2 ;;
esac
echo "$out"
