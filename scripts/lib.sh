# shellcheck shell=bash
# The environment every esox script shares; sourced, never run:
#
#   here=$(cd "$(dirname "$0")" && pwd)
#   source "$here/lib.sh"
#
# One set of build directories, so the demo, the tests, the benchmark and the image build reuse
# each other's outputs. engine/build.rs declares `rerun-if-env-changed=ESOX_WASM_TARGET_DIR`:
# a script that left it unset (the demo did) re-ran the build script, changed ESOX_PLUGIN_DIR
# and recompiled esox and everything after it whenever one switched between scripts.
#
#   CARGO_TARGET_DIR       cargo's target dir                 ${ESOX_CACHE:-$HOME/.cache/esox}/target
#   ESOX_WASM_TARGET_DIR   the built-in plugins (build.rs)    …/wasm-target
#   ESOX_PLUGIN_CACHE_DIR  compiled components (controller    …/plugin-cache
#                          and tests)
#
# Each is kept when already set. ESOX_CACHE is the same root scripts/stack.sh, helm.sh and
# docker.sh cache their tools in.
#
# Also: log and die (prefixed with the calling script's name, on stderr) and
# ensure_wasm_target.

esox_cache=${ESOX_CACHE:-$HOME/.cache/esox}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$esox_cache/target}
export ESOX_WASM_TARGET_DIR=${ESOX_WASM_TARGET_DIR:-$esox_cache/wasm-target}
export ESOX_PLUGIN_CACHE_DIR=${ESOX_PLUGIN_CACHE_DIR:-$esox_cache/plugin-cache}

# The prefix of log lines: the calling script's name (`[test]`, `[demo]`, …) unless set.
: "${log_tag:=$(basename "$0" .sh)}"

# A progress line on stderr (stdout stays for what a script prints to be used, e.g. a path).
log() { printf '[%s] %s\n' "$log_tag" "$*" >&2; }

# An error line on stderr, then exit 1.
die() {
  printf '[%s] error: %s\n' "$log_tag" "$*" >&2
  exit 1
}

# Cargo, or what to install. Every script that builds calls this first.
need_cargo() {
  command -v cargo >/dev/null \
    || die "cargo is missing: install Rust with rustup (https://rustup.rs), stable toolchain"
}

# Installs the rustup targets the build needs when they are missing: wasm32-wasip2 (engine/build.rs
# builds the built-in plugins for it) and any target named as an argument. Without rustup
# (a distribution's Rust), the build says what is missing.
ensure_wasm_target() {
  command -v rustup >/dev/null || return 0
  local installed t
  installed=$(rustup target list --installed)
  for t in wasm32-wasip2 "$@"; do
    if ! grep -qx "$t" <<<"$installed"; then
      log "rustup target add $t"
      rustup target add "$t" >&2
    fi
  done
}
