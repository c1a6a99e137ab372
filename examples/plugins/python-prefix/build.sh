#!/usr/bin/env bash
# Builds app.py into a component for esox's transformer world with componentize-py (PyPI).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=${ESOX_CACHE:-$HOME/.cache/esox}/componentize-py
[ -x "$venv/bin/componentize-py" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q componentize-py==0.25.1; }
out=${1:-$here/python-prefix.wasm}
cd "$here"
"$venv/bin/componentize-py" -d ../../../wit -w transformer-plugin componentize app -o "$out" >&2
echo "$out"
