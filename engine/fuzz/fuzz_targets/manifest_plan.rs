//! Arbitrary bytes as manifests (an ExternalSecret, a SecretStore whose Fake provider holds
//! the remote data, the target Secret as it exists; JSON or YAML) through everything the
//! controller does with them without IO: ESO's admission rules, `refreshInterval`, the
//! refresh decisions, the data pipeline (keys, properties, decoding, rewrites) and the plan
//! for the Secret. Nothing may panic, recurse or loop without bound, and the invariants of
//! `esox::pipeline::harness` must hold (bounded messages without secret values, writable
//! Secrets). Every corpus file is replayed by `cargo test -p esox --lib harness`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    esox::pipeline::harness::manifest_to_plan(input);
});
