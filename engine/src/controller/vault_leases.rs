//! Keeping the leases of an ExternalSecret's VaultDynamicSecret values: the IO edge of
//! [`crate::provider::vault::leases`] (which plans, and says where the state lives).
//!
//! A maintenance pass runs when a lease is due and no refresh is: it renews the current
//! leases (the Secret keeps its value), revokes the replaced ones whose grace is over, and
//! says when the value must be generated again instead (not renewable, refused, or near its
//! max TTL: the new value is then generated while the old lease still runs). Failures are
//! logged (generator and call, never a handle) and retried at the next pass; the Secret is
//! never touched by a failed pass.

use jiff::{SignedDuration, Timestamp};
use tracing::{debug, info, warn};

use super::generators::vault_spec;
use super::resolve::StoreResolver;
use crate::api::StoreKind;
use crate::provider::BuildContext;
use crate::provider::vault::leases::{self, Record};

/// When a revocation Vault refused is tried again.
const RETRY: SignedDuration = SignedDuration::from_secs(30);

/// What a maintenance pass left.
#[derive(Debug)]
pub struct Maintained {
    /// The records to keep on the Secret.
    pub records: Vec<Record>,
    /// Whether they differ from the Secret's.
    pub changed: bool,
    /// Whether the value must be generated again.
    pub regenerate: bool,
}

/// Renews, revokes and drops what is due at `now` in `records` (the Secret's annotation).
pub async fn maintain(
    resolver: &StoreResolver<'_>,
    records: Vec<Record>,
    now: Timestamp,
) -> Maintained {
    let plan = leases::plan(&records, now);
    let mut regenerate = plan.regenerate;
    let mut changed = !plan.drop.is_empty();
    let mut keep: Vec<Option<Record>> = records.into_iter().map(Some).collect();
    for i in plan.drop {
        keep[i] = None;
    }
    let bctx = BuildContext::in_cluster(
        &resolver.ctx.metrics,
        &resolver.ctx.client,
        StoreKind::SecretStore,
        resolver.namespace,
    );
    for i in plan.revoke {
        let Some(r) = keep[i].as_mut() else { continue };
        changed = true;
        match vault_spec(resolver, &r.generator).await {
            Ok(Some(spec)) => {
                match crate::provider::vault::revoke_lease(&spec, &bctx, &r.handle).await {
                    Ok(()) => {
                        info!(generator = %r.generator, kind = r.handle.kind(), "revoked the replaced Vault lease");
                        keep[i] = None;
                    }
                    Err(e) => {
                        warn!(generator = %r.generator, kind = r.handle.kind(), error = %e, "could not revoke a replaced Vault lease; trying again later");
                        r.revoke_at = now.checked_add(RETRY).ok();
                    }
                }
            }
            Ok(None) => {
                warn!(generator = %r.generator, "the generator of a replaced Vault lease is gone: the lease ends on its own");
                keep[i] = None;
            }
            Err(e) => {
                warn!(generator = %r.generator, error = %e, "could not read the generator of a replaced Vault lease; trying again later");
                r.revoke_at = now.checked_add(RETRY).ok();
            }
        }
    }
    for i in plan.renew {
        let Some(r) = keep[i].as_mut() else { continue };
        let spec = match vault_spec(resolver, &r.generator).await {
            Ok(Some(spec)) => spec,
            Ok(None) => {
                debug!(generator = %r.generator, "the generator of a Vault lease is gone: not renewed");
                regenerate = true;
                continue;
            }
            Err(e) => {
                warn!(generator = %r.generator, error = %e, "could not read the generator of a Vault lease: not renewed");
                regenerate = true;
                continue;
            }
        };
        match crate::provider::vault::renew_lease(&spec, &bctx, &r.handle, r.ttl).await {
            Ok(granted) => {
                changed = true;
                if leases::renewed(r, granted, now) {
                    info!(generator = %r.generator, kind = r.handle.kind(), expires = %r.expires, "renewed a Vault lease");
                } else {
                    info!(generator = %r.generator, kind = r.handle.kind(), expires = %r.expires, "a Vault lease is near its max TTL: generating a new value");
                    regenerate = true;
                }
            }
            Err(e) => {
                warn!(generator = %r.generator, kind = r.handle.kind(), error = %e, "could not renew a Vault lease: generating a new value");
                regenerate = true;
            }
        }
    }
    Maintained {
        records: keep.into_iter().flatten().collect(),
        changed,
        regenerate,
    }
}
