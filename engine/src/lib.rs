//! esox: an External Secrets Operator whose transformations run in a WebAssembly sandbox.
//!
//! The data path reads top-down: an [`api::ExternalSecret`] names a store; the store's
//! [`provider`] fetches remote data; [`pipeline`] turns it into Secret data (decoding,
//! property extraction, rewrites, key conversion and validation); the
//! [`controller`] applies it to a Kubernetes Secret and reports status, events and metrics.
#![warn(missing_docs)]

pub mod api;
pub mod cli;
pub mod controller;
pub mod http;
pub mod kube_client;
pub mod leader;
pub mod managed_fields;
pub mod metrics;
pub mod offline;
pub mod pipeline;
pub mod plugin;
pub mod provider;
pub mod ratelimit;
pub mod secret;
pub mod shard;
pub mod telemetry;
pub mod template;
pub mod webhook;
