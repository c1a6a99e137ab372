#!/usr/bin/env bash
# Benchmarks (release builds). Results go to BENCHMARKS.md by hand, with the date and machine.
#
#   scripts/bench.sh [--quick]               plugin benchmark: the Wasm plugin path vs the same
#                                            code native, cold start with and without the
#                                            compiled-component cache
#   scripts/bench.sh controller [options]    upstream ESO and esox side by side, each alone on a
#                                            fresh local stack (scripts/bench/controller.py;
#                                            `scripts/bench.sh controller --help` for options)
#
# The controller benchmark builds what is missing: ESO (scripts/stack/eso/, Go module proxy,
# into ${ESOX_CACHE:-~/.cache/esox}/bin), esox (`cargo build --release -p esox`), the stack's
# binaries. ESOX_BENCH_ESO_BIN / ESOX_BENCH_ESOX_BIN use other binaries instead;
# ESOX_BENCH_DIR is the results directory (default ~/.cache/esox/bench/controller-<time>).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
# shellcheck source=lib.sh
source "$here/lib.sh"

controller_bench() {
  case " $* " in
    *" -h "* | *" --help "*) exec python3 "$here/bench/controller.py" --help ;;
  esac
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "python3 3.11 or newer is needed (the driver uses only its standard library)"
  local args=() needs
  local run_dir=${ESOX_BENCH_DIR:-$esox_cache/bench/controller-$(date +%Y%m%d-%H%M%S)}
  mkdir -p "$run_dir"
  # Which controllers the options select (the driver parses them).
  needs=$(python3 "$here/bench/controller.py" --print-needs "$@") || exit 2
  # The stack's binaries first, so the first configuration's `stack.sh up` does not build them.
  "$here/stack.sh" install

  if [[ " $needs " = *" eso "* ]]; then
    # v0.20.4: the last single-module ESO release the Go module proxy serves. v2.x is many modules
    # that require each other through local replace directives (a dependency's go.mod cannot
    # carry those), and the proxy refuses its pseudo-versions; see scripts/stack/eso/main.go.
    local eso_version eso_bin eso_dir
    eso_version=$(awk '$1 == "require" && $2 == "github.com/external-secrets/external-secrets" {print $3}' \
      "$here/stack/eso/go.mod")
    [ -n "$eso_version" ] || die "no ESO version in scripts/stack/eso/go.mod"
    eso_bin=${ESOX_BENCH_ESO_BIN:-$esox_cache/bin/eso-$eso_version}
    if [ ! -x "$eso_bin" ]; then
      command -v go >/dev/null || die "go is missing: install Go 1.25 or newer to build ESO"
      log "building ESO $eso_version from the Go module proxy (first run only; 6+ minutes on 2 cores)"
      mkdir -p "$(dirname "$eso_bin")"
      (cd "$here/stack/eso" && GONOSUMDB=github.com/previder GOFLAGS=-mod=mod GOGC=off \
        GOMEMLIMIT=${ESOX_GO_BUILD_MEMLIMIT:-3GiB} \
        go build -trimpath -ldflags='-s -w' -gcflags=all=-dwarf=false -o "$eso_bin.tmp" .) \
        || die "building ESO failed (see the Go output above)"
      mv "$eso_bin.tmp" "$eso_bin"
    fi
    # ESO's CRDs come from the same module (downloaded by the build above).
    eso_dir=$(cd "$here/stack/eso" && GONOSUMDB=github.com/previder GOFLAGS=-mod=mod \
      go list -m -f '{{.Dir}}' github.com/external-secrets/external-secrets) \
      || die "could not find ESO's module directory"
    args+=(--eso-bin "$eso_bin" --eso-crds "$eso_dir/config/crds/bases" --eso-version "$eso_version")
  fi

  if [[ " $needs " = *" esox "* ]]; then
    local esox_bin=${ESOX_BENCH_ESOX_BIN:-}
    if [ -z "$esox_bin" ]; then
      need_cargo
      ensure_wasm_target
      log "cargo build --release -p esox (first build: about 18 minutes on 2 cores)"
      cargo build --release -p esox >&2
      # A copy: a later build into the target dir must not change the binary mid-run (the
      # restart scenario starts it again).
      esox_bin=$run_dir/esox
      cp "$CARGO_TARGET_DIR/release/esox" "$esox_bin"
      args+=(--esox-bin-label "release build, $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- engine 2>/dev/null || echo '+local changes')")
    fi
    args+=(--esox-bin "$esox_bin")
  fi

  # The driver stops its controller and stacks itself; this catches what a killed driver left.
  # shellcheck disable=SC2064
  trap "cleanup_controller_bench '$run_dir'" EXIT
  python3 "$here/bench/controller.py" --run-dir "$run_dir" "${args[@]}" \
    --command "scripts/bench.sh controller $*" "$@"
}

cleanup_controller_bench() {
  local run_dir=$1 pid dir
  if [ -f "$run_dir/.controller.pid" ]; then
    pid=$(cat "$run_dir/.controller.pid")
    kill "$pid" 2>/dev/null || true
    rm -f "$run_dir/.controller.pid"
  fi
  if [ -f "$run_dir/.stacks" ]; then
    while read -r dir; do
      if [ -d "$dir" ]; then
        log "stopping the stack the driver left in $dir"
        ESOX_STACK_DIR=$dir "$here/stack.sh" down || true
      fi
    done <"$run_dir/.stacks"
    rm -f "$run_dir/.stacks"
  fi
}

if [ "${1:-}" = controller ]; then
  shift
  controller_bench "$@"
  exit
fi

need_cargo
ensure_wasm_target
cargo bench -p esox-wasm --bench plugins -- "$@"
