#!/usr/bin/env bash
# The full test command: format and lint checks, unit tests, and integration tests against a
# real kube-apiserver + etcd started on loopback by scripts/stack.sh.
#
# Build outputs are kept outside the clone so a fresh clone reuses them when they exist:
#   cargo target dir: ${CARGO_TARGET_DIR:-$HOME/.cache/esox/target}
#   kube-apiserver/etcd: ${ESOX_CACHE:-$HOME/.cache/esox}/bin (see scripts/README.md)
# The stack is stopped at the end unless it was already running (or ESOX_KEEP_STACK=1).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/esox/target}
export ESOX_PLUGIN_CACHE_DIR=${ESOX_PLUGIN_CACHE_DIR:-$HOME/.cache/esox/plugin-cache}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
# The Wasm plugins engine/build.rs builds, kept outside the clone like the cargo target dir.
export ESOX_WASM_TARGET_DIR=${ESOX_WASM_TARGET_DIR:-$HOME/.cache/esox/wasm-target}

step() { printf '\n[test] %s\n' "$*"; }

command -v cargo >/dev/null || { echo "[test] cargo is missing: install Rust with rustup (https://rustup.rs), stable toolchain" >&2; exit 1; }

# Plugins are WebAssembly components built for wasm32-wasip2 (by engine/build.rs).
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx wasm32-wasip2; then
  step "rustup target add wasm32-wasip2"
  rustup target add wasm32-wasip2
fi

step "cargo fmt --check"
cargo fmt --all --check

step "starting the local control plane"
started_here=0
if ! bash "$here/stack.sh" status >/dev/null 2>&1; then
  started_here=1
fi
bash "$here/stack.sh" up
# The tests (and the controllers they run) read KUBECONFIG, AWS_ENDPOINT_URL, … from here.
# shellcheck disable=SC1091
source "$(bash "$here/stack.sh" env)"
docker_started_here=0
cleanup() {
  if [ "$started_here" = 1 ] && [ "${ESOX_KEEP_STACK:-0}" != 1 ]; then
    bash "$here/stack.sh" down || true
  fi
  if [ "$docker_started_here" = 1 ] && [ "${ESOX_KEEP_STACK:-0}" != 1 ]; then
    bash "$here/docker.sh" down || true
  fi
}
trap cleanup EXIT

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo build (the esox binary some integration tests run as a process)"
cargo build -p esox

step "helm (scripts/helm.sh; the chart tests skip, saying why, if it cannot be built)"
ESOX_HELM=$(bash "$here/helm.sh") || ESOX_HELM=""
export ESOX_HELM

step "docker (scripts/docker.sh; the image test skips, saying why, if no daemon can run)"
# tests/tests/image.rs builds the image with scripts/image.sh: a release build for the musl
# target into ~/.cache/esox/target-image (cold: 26 min measured on a busy 2-core machine; warm: seconds).
docker_started_here=0
bash "$here/docker.sh" status >/dev/null 2>&1 || docker_started_here=1
if DOCKER_HOST=$(bash "$here/docker.sh"); then
  export DOCKER_HOST
else
  echo "[test] no Docker daemon could be started (see above)" >&2
  unset DOCKER_HOST
  docker_started_here=0
fi

step "cargo test (unit and integration tests)"
# Integration tests each run a namespaced controller; two test threads keep a 2-core machine
# responsive enough for the apiserver.
log=$(mktemp)
set +e
cargo test --workspace -- --test-threads="${ESOX_TEST_THREADS:-4}" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1); if ($i ~ /^ignored;?$/) s += $(i-1) } }
     END { printf "\ntests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
rm -f "$log"
exit "$rc"
