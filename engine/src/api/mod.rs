//! The `external-secrets.io` API, as ESO defines it.
//!
//! These types stand alone (no controller code) so tests and tools can use them.

pub mod condition;
pub mod crd;
pub mod duration;
pub mod external_secret;
pub mod generators;
pub mod plugins;
pub mod region;
pub mod secret_store;
pub mod validate;

pub use condition::Condition;
pub use external_secret::*;
pub use secret_store::*;

/// The API group shared with ESO.
pub const GROUP: &str = "external-secrets.io";

/// Schema for a free-form JSON object kept verbatim by the apiserver (structural schemas need a
/// `type`, so a bare `serde_json::Value` would be rejected).
pub(crate) fn preserve_unknown_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}
