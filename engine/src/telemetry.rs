//! Log filtering that keeps secret values out of logs even at `trace`.
//!
//! Our own code never logs values (they travel as [`crate::secret::SecretBytes`]), but HTTP
//! and SDK crates log wire traffic at `debug`/`trace`: the AWS SDK's orchestrator can print
//! response bodies (a `GetSecretValue` answer is the secret), and HTTP clients print headers
//! (credentials). Whatever filter the user asks for, those targets are capped here.

use tracing_subscriber::EnvFilter;

/// Targets that may log wire data, and the most verbose level they may use.
pub const CAPPED_TARGETS: &[&str] = &[
    "aws_smithy_runtime=info",
    "aws_smithy_runtime_api=info",
    "aws_smithy_http_client=info",
    "aws_smithy_types=info",
    "aws_sigv4=info",
    "aws_config=info",
    "aws_runtime=info",
    "hyper=info",
    "hyper_util=info",
    "h2=info",
    "rustls=info",
    "tower=info",
    "tower_http=info",
    "kube_client=debug",
    // Not about secrets but about cost: the Wasm compiler traces every function it compiles,
    // which turns a sub-second component compile into a minute at `trace`.
    "cranelift=info",
    "regalloc2=info",
    "wasmtime=info",
    "wasmparser=info",
    "wit_parser=info",
];

/// Builds the log filter from `spec` (a `RUST_LOG`-style string), with the wire-logging
/// targets capped.
pub fn filter(spec: &str) -> EnvFilter {
    let mut f = EnvFilter::try_new(spec).unwrap_or_else(|_| EnvFilter::new("info"));
    for directive in CAPPED_TARGETS {
        f = f.add_directive(directive.parse().expect("static directives parse"));
    }
    f
}
