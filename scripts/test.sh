#!/usr/bin/env bash
# The test command.
#
#   scripts/test.sh         every test (what .ci/run runs): format and lint checks, unit tests,
#                           and integration tests against a real kube-apiserver + etcd started
#                           on loopback by scripts/stack.sh
#   scripts/test.sh unit    no stack: format and lint checks, and the unit tests of every crate
#                           but the integration tests' (esox, the SDK, the plugins)
#   scripts/test.sh help    this text
#
# Build outputs are kept outside the clone (scripts/lib.sh), so a fresh clone reuses them when
# they exist; kube-apiserver/etcd are cached in ${ESOX_CACHE:-$HOME/.cache/esox}/bin (see
# scripts/README.md). The stack is stopped at the end unless it was already running (or
# ESOX_KEEP_STACK=1).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
cd "$root"
# shellcheck source=lib.sh
source "$here/lib.sh"
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
mode=${1:-}
case "$mode" in
  "" | unit) ;;
  help | -h | --help) usage; exit 0 ;;
  *) usage >&2; exit 2 ;;
esac

step() { printf '\n[test] %s\n' "$*"; }

need_cargo
ensure_wasm_target

# Sums the `test result:` lines of every test binary in cargo's output ($1) into one closing
# line.
summary() {
  awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1); if ($i ~ /^ignored;?$/) s += $(i-1) } }
       END { printf "\ntests: %d passed, %d failed, %d skipped\n", p, f, s }' "$1"
}

# `cargo test "$@"`, teed, then the closing line; exits with cargo's status.
run_tests() {
  local log rc
  log=$(mktemp)
  set +e
  cargo test "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  summary "$log"
  rm -f "$log"
  exit "$rc"
}

step "cargo fmt --check"
cargo fmt --all --check

if [ "$mode" = unit ]; then
  step "cargo clippy -D warnings"
  cargo clippy --workspace --all-targets -- -D warnings
  step "cargo test (unit tests: every crate but esox-tests)"
  run_tests --workspace --exclude esox-tests
fi

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
# target into its own target dir (cold, the longest single step of the suite: see
# docs/first-run.md; warm: seconds).
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
# Every integration test runs its own namespaced controller in the test process and talks to
# the one apiserver; ESOX_TEST_THREADS (default 4) bounds how many run at once, so a 2-core
# machine stays responsive enough for the apiserver. `--no-fail-fast`: one failing test binary
# does not hide the results of the ones after it (a CI run reports every failure at once).
run_tests --workspace --no-fail-fast -- --test-threads="${ESOX_TEST_THREADS:-4}"
