//! The controller's Kubernetes client: kube-rs's default stack, a client-side rate limit
//! ([`crate::ratelimit`]) and the managed-fields strip ([`crate::managed_fields`]).

use std::sync::Arc;

use kube::Client;
use kube::client::ClientBuilder;

use crate::managed_fields::StripManagedFieldsLayer;
use crate::ratelimit::{Limiter, RateLimitLayer};

/// The client the controller talks to the apiserver with.
pub fn build(config: kube::Config, limiter: Arc<Limiter>) -> Result<Client, kube::Error> {
    Ok(ClientBuilder::try_from(config)?
        .with_layer(&StripManagedFieldsLayer)
        .with_layer(&RateLimitLayer(limiter))
        .build())
}
