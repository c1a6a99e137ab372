#!/usr/bin/env bash
# Builds the esox controller image from the repository's Dockerfile and prints its reference
# (stdout is only that; progress goes to stderr).
#
#   bash scripts/image.sh                       # -> esox-local/esox:dev, on the local base
#   ESOX_IMAGE=ghcr.io/esox-dev/esox:0.1.0 \
#   ESOX_IMAGE_BASE=gcr.io/distroless/static-debian12:nonroot bash scripts/image.sh
#
# 1. The static binary: `cargo build --release --target x86_64-unknown-linux-musl` (musl-gcc
#    from Debian's musl-tools compiles ring's and aws-lc-sys's C), checked to have no dynamic
#    section, copied to bin/esox-linux-amd64 (the Dockerfile's input, as in upstream ESO).
#    Cargo target dir: ${ESOX_IMAGE_TARGET_DIR:-$cache/target-image}, never $CARGO_TARGET_DIR:
#    tests/tests/image.rs runs this script from inside `cargo test`, which holds that
#    directory's lock. The Wasm plugins go to scripts/lib.sh's ESOX_WASM_TARGET_DIR, shared
#    with the debug build. Cold, this is a long build (docs/first-run.md has the figure).
# 2. The base: $ESOX_IMAGE_BASE when set (it must already be in the daemon or pullable);
#    otherwise esox-local/static:nonroot, a stand-in for distroless/static-debian12:nonroot
#    made here with `docker import` (the same nonroot user 65532, the host's CA bundle,
#    tzdata), because this project's machines reach no image registry.
# 3. `docker build --build-arg BASE=<base>` of the Dockerfile; the context is bin/ only
#    (.dockerignore).
#
# The Docker daemon is scripts/docker.sh's (which reuses $DOCKER_HOST when it answers).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
# shellcheck source=lib.sh
source "$here/lib.sh"
cache=$esox_cache
target=x86_64-unknown-linux-musl
arch=amd64
image=${ESOX_IMAGE:-esox-local/esox:dev}
local_base=esox-local/static:nonroot

[ "$(uname -m)" = x86_64 ] || die "only x86_64 (linux/amd64) images are built by this script (host: $(uname -m))"
need_cargo

# --- the daemon --------------------------------------------------------------------------------
DOCKER_HOST=$(bash "$here/docker.sh") || die "no Docker daemon (scripts/docker.sh failed; see above)"
export DOCKER_HOST

# --- 1. the static binary ----------------------------------------------------------------------
ensure_wasm_target "$target"
if ! command -v musl-gcc >/dev/null; then
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null \
    || die "musl-gcc is missing (ring and aws-lc-sys compile C for the musl target): apt-get install musl-tools"
  log "installing musl-tools (musl-gcc) with apt-get"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends musl-tools >&2 \
    || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends musl-tools >&2; } \
    || die "apt-get install musl-tools failed"
fi
target_dir=${ESOX_IMAGE_TARGET_DIR:-$cache/target-image}
log "cargo build --release --target $target (target dir $target_dir; cold: tens of minutes on 2 cores)"
start=$SECONDS
(
  cd "$root"
  CARGO_TARGET_DIR=$target_dir \
    cargo build --release --locked --target "$target" -p esox --bin esox >&2
) || die "cargo build for $target failed (see above)"
log "built in $((SECONDS - start))s"
built=$target_dir/$target/release/esox
# Static means no dynamic section and no program interpreter: the image has no libc to load.
if readelf -d "$built" 2>/dev/null | grep -q NEEDED || readelf -l "$built" | grep -q INTERP; then
  die "$built is dynamically linked ($(file -b "$built")); the distroless/static base has no libc"
fi
mkdir -p "$root/bin"
out=$root/bin/esox-linux-$arch
# Stripped as upstream ESO's Go binaries are (-s -w): symbols are not needed at run time.
strip -o "$out.tmp" "$built" 2>/dev/null || cp "$built" "$out.tmp"
mv "$out.tmp" "$out"
log "bin/esox-linux-$arch: $(file -b "$out" | cut -d, -f1-2), $(du -h "$out" | cut -f1)"

# --- 2. the base -------------------------------------------------------------------------------
local_base_image() {
  local rootfs
  rootfs=$(mktemp -d)
  mkdir -p "$rootfs"/{etc/ssl/certs,home/nonroot,root,tmp,usr/share,usr/local/bin}
  # distroless/static-debian12's users and groups.
  cat >"$rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
  cat >"$rootfs/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
tty:x:5:
staff:x:50:
nonroot:x:65532:
EOF
  printf 'hosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
  cat >"$rootfs/etc/os-release" <<'EOF'
PRETTY_NAME="esox local stand-in for distroless/static-debian12:nonroot (scripts/image.sh)"
ID=esox-local-static
EOF
  [ -s /etc/ssl/certs/ca-certificates.crt ] \
    || die "the host has no CA bundle at /etc/ssl/certs/ca-certificates.crt (apt-get install ca-certificates)"
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
  if [ -d /usr/share/zoneinfo ]; then cp -a /usr/share/zoneinfo "$rootfs/usr/share/"; fi
  chmod 0700 "$rootfs/root" "$rootfs/home/nonroot"
  chmod 1777 "$rootfs/tmp"
  chmod -R go-w "$rootfs/etc" "$rootfs/usr"
  # A reproducible tarball: its digest names the content, so an unchanged base is not
  # re-imported (a new import would change the base's ID and invalidate the build cache).
  # Owned by root, but nonroot's home by nonroot, as in distroless.
  local owner=(--owner=0 --group=0)
  if [ "$(id -u)" = 0 ]; then
    chown -R 0:0 "$rootfs"
    chown 65532:65532 "$rootfs/home/nonroot"
    owner=()
  fi
  tar -C "$rootfs" --sort=name --mtime=@0 --numeric-owner "${owner[@]}" -cf "$rootfs.tar" .
  local digest have
  digest=$(sha256sum "$rootfs.tar" | cut -d' ' -f1)
  have=$(docker image inspect -f '{{index .Config.Labels "dev.esox.rootfs-sha256"}}' "$local_base" 2>/dev/null || true)
  if [ "$have" = "$digest" ]; then
    log "base $local_base is up to date"
  else
    log "importing $local_base (stand-in for gcr.io/distroless/static-debian12:nonroot)"
    docker import \
      --change "LABEL dev.esox.rootfs-sha256=$digest" \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
      --change 'USER 65532:65532' \
      --change 'WORKDIR /home/nonroot' \
      "$rootfs.tar" "$local_base" >/dev/null
  fi
  rm -rf "$rootfs" "$rootfs.tar"
}

if [ -n "${ESOX_IMAGE_BASE:-}" ]; then
  base=$ESOX_IMAGE_BASE
  log "base: $base"
else
  local_base_image
  base=$local_base
  log "base: $base (a local stand-in; set ESOX_IMAGE_BASE=gcr.io/distroless/static-debian12:nonroot for the real one)"
fi

# --- 3. docker build ---------------------------------------------------------------------------
start=$SECONDS
# The legacy builder when buildx is absent (docker prints a deprecation note); the Dockerfile
# uses nothing BuildKit-only, so both build it.
docker build --build-arg "BASE=$base" --build-arg "TARGETARCH=$arch" -t "$image" "$root" >&2 \
  || die "docker build failed (see above)"
log "built $image in $((SECONDS - start))s"
echo "$image"
