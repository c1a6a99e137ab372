# syntax=docker/dockerfile:1
# The esox controller image: a static musl binary on distroless/static, running as the
# distroless nonroot user (uid/gid 65532), which the Helm chart's securityContext expects.
#
#   docker build -t ghcr.io/esox-dev/esox:0.1.0 .
#
# Untested: this file was written without a Docker daemon (see deploy/README.md).

ARG RUST_VERSION=1.95

# --- build ------------------------------------------------------------------------------------
# Alpine's Rust is a native x86_64/aarch64-unknown-linux-musl toolchain: binaries link
# statically by default, and buildx can build each platform natively.
FROM rust:${RUST_VERSION}-alpine AS build
# C compilers and headers for aws-lc-sys and ring (TLS and crypto for the kube and AWS
# clients); cmake and perl for aws-lc-sys when it cannot use its cc-only build.
RUN apk add --no-cache musl-dev gcc g++ make cmake perl linux-headers
# engine/build.rs builds the built-in plugins as WebAssembly components.
RUN rustup target add wasm32-wasip2
WORKDIR /src
COPY . .
# The plugins' nested cargo build keeps its own target directory (engine/build.rs); both are
# cache mounts, so the binary is copied out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    ESOX_WASM_TARGET_DIR=/src/target/wasm \
    cargo build --release --locked -p esox --bin esox \
 && cp target/release/esox /esox \
 && ! ldd /esox 2>/dev/null | grep -q '=>'

# --- run --------------------------------------------------------------------------------------
# distroless/static: CA certificates, /etc/passwd with nonroot, no shell, no libc.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /esox /usr/local/bin/esox
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/esox"]
CMD ["controller"]
