# The esox controller image: the static esox binary on distroless/static, running as the
# distroless nonroot user (uid/gid 65532), which the Helm chart's securityContext expects.
#
# As upstream ESO's image, it packages a binary built outside Docker (a static musl build;
# engine/build.rs also needs the wasm32-wasip2 target for the built-in plugins):
#
#   scripts/image.sh     # builds bin/esox-linux-amd64, then this file; prints the image
#
# or by hand, for a release on the real base:
#
#   cargo build --release --locked --target x86_64-unknown-linux-musl -p esox --bin esox
#   mkdir -p bin && cp target/x86_64-unknown-linux-musl/release/esox bin/esox-linux-amd64
#   docker build -t ghcr.io/esox-dev/esox:0.1.0 .
#
# Tested (tests/tests/image.rs, in scripts/test.sh): this file built by scripts/image.sh with
# BASE=esox-local/static:nonroot, a stand-in scripts/image.sh assembles from the host (nonroot
# 65532 in /etc/passwd and /etc/group, the host's CA bundle, tzdata), because CI reaches no
# image registry; the container then runs under the chart's security context against the
# local apiserver. Not tested: the default BASE itself (never pulled in CI), and other
# architectures (TARGETARCH, which BuildKit sets, selects bin/esox-linux-<arch>).

ARG BASE=gcr.io/distroless/static-debian12:nonroot
FROM ${BASE}
ARG TARGETARCH=amd64
COPY bin/esox-linux-${TARGETARCH} /usr/local/bin/esox
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/esox"]
CMD ["controller"]
