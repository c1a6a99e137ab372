#!/usr/bin/env bash
# Installs helm (helm.sh/helm/v3 cmd/helm) into ${ESOX_CACHE:-$HOME/.cache/esox}/bin when it is
# missing, built from the Go module proxy by the wrapper module in scripts/stack/helm/ (only
# go.mod/go.sum are committed, like scripts/stack/kube-apiserver), and prints its path.
#
#   bash scripts/helm.sh            # -> /root/.cache/esox/bin/helm-v3.22.0
#   export ESOX_HELM=$(bash scripts/helm.sh)
#
# Build logs go to stderr; stdout is only the path, so the script composes with $(…).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${ESOX_CACHE:-$HOME/.cache/esox}
bin=$cache/bin
HELM_VERSION=v3.22.0
helm_bin=$bin/helm-$HELM_VERSION

# shellcheck source=lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh" # log, die

if [ ! -x "$helm_bin" ]; then
  command -v go >/dev/null 2>&1 || die "go is missing: install Go 1.26 or newer (Debian: apt-get install golang-go, or https://go.dev/dl)"
  mkdir -p "$bin"
  log "building helm $HELM_VERSION from the Go module proxy (first run only; a few minutes on 2 cores)"
  start=$SECONDS
  # The Go build cache stays under $HOME so later builds (and the stack's) reuse it.
  (cd "$here/stack/helm" && GOFLAGS=-mod=mod GOCACHE=${GOCACHE:-$HOME/.cache/go-build} \
    go build -trimpath \
      -ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
      -o "$helm_bin.tmp.$$" helm.sh/helm/v3/cmd/helm) \
    || { rm -f "$helm_bin.tmp.$$"; die "building helm.sh/helm/v3/cmd/helm failed (see the Go output above)"; }
  mv "$helm_bin.tmp.$$" "$helm_bin"
  log "built helm $HELM_VERSION in $((SECONDS - start))s"
fi
echo "$helm_bin"
