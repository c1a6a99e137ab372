//! The target Secret: what a sync does to it, decided without IO.
//!
//! [`plan`] takes the ExternalSecret, the Secret as it is now and the rendered output, and
//! returns a [`SecretPlan`]: create, replace, server-side apply, delete, leave alone, wait for
//! a `Merge` target, or refuse. Only [`super::external_secret`] talks to the apiserver; every
//! decision about creation and deletion policies, ownership, immutability and drift is here,
//! and is unit-tested below, table by table.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    FieldsV1, ManagedFieldsEntry, ObjectMeta, OwnerReference,
};
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::api::{CreationPolicy, DeletionPolicy, ExternalSecret};
use crate::pipeline::hash;
use crate::template;

/// Label ESO puts on every Secret it manages (and that esox watches).
pub const MANAGED_LABEL: &str = "reconcile.external-secrets.io/managed";
/// Label naming (as a hash) the ExternalSecret that created a Secret under `Owner`.
pub const CREATED_BY_LABEL: &str = "reconcile.external-secrets.io/created-by";
/// Annotation holding the hash of the Secret data esox wrote.
pub const DATA_HASH_ANNOTATION: &str = "reconcile.external-secrets.io/data-hash";
/// Field manager for Secret writes; the same as ESO's so GitOps ignore rules keep working.
pub const FIELD_MANAGER: &str = "external-secrets";
/// ESO's finalizer on every ExternalSecret: the controller removes the target Secret itself
/// under `deletionPolicy: Delete` before the ExternalSecret goes.
pub const FINALIZER: &str = "externalsecrets.external-secrets.io/externalsecret-cleanup";

/// What to do to the target Secret.
#[derive(Debug, Clone, PartialEq)]
pub enum SecretPlan {
    /// Create this Secret (`Owner`, `Orphan`).
    Create(Box<Secret>),
    /// Replace the Secret with this one (`Owner`, `Orphan`).
    Replace(Box<Secret>),
    /// Server-side apply this patch (`Merge`, `CreateOrMerge`); `exists` says whether it
    /// updates or creates.
    Apply {
        /// The apply configuration.
        patch: serde_json::Value,
        /// Whether the Secret exists already.
        exists: bool,
    },
    /// Delete the named Secret (`deletionPolicy: Delete` and no data).
    Delete(String),
    /// `deletionPolicy: Delete` and no data, and there is no Secret to delete.
    AlreadyDeleted,
    /// `deletionPolicy: Retain` and no data: leave the Secret as it is.
    Retain,
    /// The Secret already is what it should be.
    Unchanged,
    /// `creationPolicy: None`: esox writes no Secret.
    NotManaged,
    /// `creationPolicy: Merge` and the Secret does not exist (yet).
    Missing,
    /// The Secret cannot be written as asked.
    Refuse(TargetError),
}

impl SecretPlan {
    /// What the plan does, in a word (for logs: the plan itself holds secret data).
    pub fn action(&self) -> &'static str {
        match self {
            SecretPlan::Create(_) => "create",
            SecretPlan::Replace(_) => "replace",
            SecretPlan::Apply { exists: false, .. } => "apply-create",
            SecretPlan::Apply { exists: true, .. } => "apply-update",
            SecretPlan::Delete(_) => "delete",
            SecretPlan::AlreadyDeleted => "already-deleted",
            SecretPlan::Retain => "retain",
            SecretPlan::Unchanged => "unchanged",
            SecretPlan::NotManaged => "not-managed",
            SecretPlan::Missing => "missing",
            SecretPlan::Refuse(_) => "refuse",
        }
    }
}

/// The target Secret as the reconciler knows it.
#[derive(Debug, Clone, Copy)]
pub struct Current<'a> {
    /// The Secret. Its `data` is absent when it came from the cache.
    pub secret: &'a Secret,
    /// Whether it came from the metadata watch rather than a read: then esox knows its data
    /// still hashes to its data-hash annotation, because it wrote (or read and checked) that
    /// very resourceVersion, and `type`/`immutable` are what esox saw then.
    pub cached: bool,
}

impl<'a> Current<'a> {
    /// A Secret read in full from the apiserver.
    pub fn read(secret: &'a Secret) -> Self {
        Current {
            secret,
            cached: false,
        }
    }

    /// A Secret from the metadata watch, at a version esox knows to be valid.
    pub fn cached(secret: &'a Secret) -> Self {
        Current {
            secret,
            cached: true,
        }
    }
}

/// Why the target Secret cannot be written as the ExternalSecret asks. The messages are
/// ESO's where ESO has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// `deletionPolicy: Delete` needs `creationPolicy: Owner`.
    #[error(
        "could not delete secret: unable to delete secret {secret}: creationPolicy={policy:?} is not Owner"
    )]
    DeleteNotOwner {
        /// The target.
        secret: String,
        /// The creation policy in force.
        policy: CreationPolicy,
    },
    /// The Secret to delete belongs to another ExternalSecret.
    #[error(
        "target secret {secret:?} is owned by another ExternalSecret {owner:?}; not deleting it"
    )]
    DeleteOwnedByOther {
        /// The target.
        secret: String,
        /// The ExternalSecret that controls it.
        owner: String,
    },
    /// The Secret to write belongs to another ExternalSecret.
    #[error(
        "target is owned by another ExternalSecret: secret {secret:?} is owned by ExternalSecret {owner:?}"
    )]
    OwnedByOther {
        /// The target.
        secret: String,
        /// The ExternalSecret that controls it.
        owner: String,
    },
    /// `Merge`/`CreateOrMerge` into an immutable Secret.
    #[error("target secret {0:?} is immutable; esox cannot merge into it")]
    ImmutableMerge(String),
    /// A changed immutable Secret.
    #[error("target secret {0:?} is immutable; esox will not overwrite it")]
    Immutable(String),
    /// The data (a template's output included) has keys Kubernetes does not accept.
    #[error("target secret {secret:?}: {keys}")]
    InvalidKeys {
        /// The target.
        secret: String,
        /// The bad keys.
        keys: crate::pipeline::InvalidKeys,
    },
    /// The data is larger than a Secret may be: the apiserver would refuse the write.
    #[error(
        "target secret {secret:?} would hold {size} bytes of data, more than the {MAX_SECRET_SIZE} bytes Kubernetes allows in a Secret"
    )]
    TooLarge {
        /// The target.
        secret: String,
        /// Keys and values, in bytes, as Kubernetes counts them.
        size: usize,
    },
}

/// Kubernetes' limit on a Secret's data: keys and values together (`MaxSecretSize`).
pub const MAX_SECRET_SIZE: usize = 1024 * 1024;

/// The size of Secret data as Kubernetes counts it: every key and every value.
fn data_size(data: &BTreeMap<String, ByteString>) -> usize {
    data.iter()
        .map(|(k, v)| k.len().saturating_add(v.0.len()))
        .fold(0, usize::saturating_add)
}

/// Refuses data the apiserver would refuse, with a message that says why (before a write
/// that would fail the same way on every retry).
fn check_data(target: &str, data: &BTreeMap<String, ByteString>) -> Result<(), TargetError> {
    crate::pipeline::keys::validate(data.keys()).map_err(|keys| TargetError::InvalidKeys {
        secret: target.to_string(),
        keys,
    })?;
    let size = data_size(data);
    if size > MAX_SECRET_SIZE {
        return Err(TargetError::TooLarge {
            secret: target.to_string(),
            size,
        });
    }
    Ok(())
}

/// Decides what to do to the target. `output` is `None` when the provider returned no data
/// and the deletion policy decides (`Delete`, `Retain`); with `Merge` the caller renders the
/// empty data and passes it, so the keys esox applied go away.
///
/// A [`Current::cached`] target is only for `Owner` and `Orphan`: merging needs the data.
pub fn plan(
    es: &ExternalSecret,
    current: Option<Current<'_>>,
    output: Option<&template::Output>,
) -> SecretPlan {
    let existing = current.map(|c| c.secret);
    let Some(output) = output else {
        return plan_empty(es, existing);
    };
    let target = es.target_name();
    let policy = es.spec.target.creation_policy;
    let data: BTreeMap<String, ByteString> = output
        .data
        .iter()
        .map(|(k, v)| (k.clone(), ByteString(v.expose().to_vec())))
        .collect();
    match policy {
        CreationPolicy::None => SecretPlan::NotManaged,
        CreationPolicy::Merge | CreationPolicy::CreateOrMerge => {
            if existing.is_none() && policy == CreationPolicy::Merge {
                return SecretPlan::Missing;
            }
            debug_assert!(
                !current.is_some_and(|c| c.cached),
                "a Merge target is read in full"
            );
            if existing.is_some_and(|s| s.immutable == Some(true)) {
                return SecretPlan::Refuse(TargetError::ImmutableMerge(target));
            }
            // Server-side apply removes the keys we applied before and apply no longer (that
            // is deletionPolicy Merge on an empty result) and keeps everyone else's. Predict
            // that result: the hash covers the whole Secret as it will be, as ESO's does.
            let mut merged = existing.and_then(|s| s.data.clone()).unwrap_or_default();
            if let Some(s) = existing {
                for key in applied_data_keys(s) {
                    if !data.contains_key(&key) {
                        merged.remove(&key);
                    }
                }
            }
            merged.extend(data.clone());
            if let Err(e) = check_data(&target, &merged) {
                return SecretPlan::Refuse(e);
            }
            let renew_at = super::refresh::RENEW_AT_ANNOTATION;
            if current.is_some_and(|c| {
                let s = c.secret;
                secret_is_valid(Some(c), policy)
                    && s.data.as_ref() == Some(&merged)
                    && s.annotations().get(renew_at) == output.annotations.get(renew_at)
            }) {
                return SecretPlan::Unchanged;
            }
            let mut labels = output.labels.clone();
            labels.insert(MANAGED_LABEL.into(), "true".into());
            let mut annotations = output.annotations.clone();
            annotations.insert(DATA_HASH_ANNOTATION.into(), data_hash(&merged));
            let mut patch = json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": target,
                    "labels": labels,
                    "annotations": annotations,
                },
                "data": data,
            });
            if !output.finalizers.is_empty() {
                patch["metadata"]["finalizers"] = json!(output.finalizers);
            }
            if existing.is_none() {
                if let Some(t) = &output.type_ {
                    patch["type"] = json!(t);
                }
                if es.spec.target.immutable {
                    patch["immutable"] = json!(true);
                }
            }
            SecretPlan::Apply {
                patch,
                exists: existing.is_some(),
            }
        }
        CreationPolicy::Owner | CreationPolicy::Orphan => {
            if let Some(s) = existing
                && let Some(owner) = owned_by_other(es, s)
            {
                return SecretPlan::Refuse(TargetError::OwnedByOther {
                    secret: target,
                    owner,
                });
            }
            if let Err(e) = check_data(&target, &data) {
                return SecretPlan::Refuse(e);
            }
            let desired = desired_secret(es, existing, data, output);
            match current {
                None => SecretPlan::Create(Box::new(desired)),
                Some(current) if same_secret(current, &desired) => SecretPlan::Unchanged,
                Some(current) if current.secret.immutable == Some(true) => {
                    SecretPlan::Refuse(TargetError::Immutable(target))
                }
                Some(_) => SecretPlan::Replace(Box::new(desired)),
            }
        }
    }
}

/// No data from the provider: the deletion policy decides.
fn plan_empty(es: &ExternalSecret, existing: Option<&Secret>) -> SecretPlan {
    match es.spec.target.deletion_policy {
        DeletionPolicy::Delete => {
            let policy = es.spec.target.creation_policy;
            if policy != CreationPolicy::Owner {
                return SecretPlan::Refuse(TargetError::DeleteNotOwner {
                    secret: es.target_name(),
                    policy,
                });
            }
            let Some(secret) = existing else {
                return SecretPlan::AlreadyDeleted;
            };
            match owned_by_other(es, secret) {
                Some(owner) => SecretPlan::Refuse(TargetError::DeleteOwnedByOther {
                    secret: secret.name_any(),
                    owner,
                }),
                None => SecretPlan::Delete(secret.name_any()),
            }
        }
        // `Merge` renders the empty data (the caller never passes `None` for it); treat a
        // stray call like `Retain`, which writes nothing.
        DeletionPolicy::Retain | DeletionPolicy::Merge => SecretPlan::Retain,
    }
}

/// What deleting the ExternalSecret does to its target (ESO's `cleanupManagedSecrets`): the
/// Secret's name when `deletionPolicy: Delete` and this ExternalSecret controls it.
pub fn cleanup(es: &ExternalSecret, existing: Option<&Secret>) -> Option<String> {
    if es.spec.target.deletion_policy != DeletionPolicy::Delete {
        return None;
    }
    let secret = existing?;
    let uid = es.uid()?;
    secret
        .owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && o.uid == uid)
        .then(|| secret.name_any())
}

/// ESO's `isSecretValid`: the Secret exists, carries our marker, and its data still hashes to
/// what we wrote. Anything else is drift and triggers an immediate refresh. An `Orphan`
/// target is always valid: ESO does not recreate or revert it before the next refresh.
pub fn secret_is_valid(current: Option<Current<'_>>, policy: CreationPolicy) -> bool {
    if policy == CreationPolicy::Orphan {
        return true;
    }
    let Some(current) = current else { return false };
    let secret = current.secret;
    let managed = secret
        .labels()
        .get(MANAGED_LABEL)
        .is_some_and(|v| v == "true");
    let hash = secret.annotations().get(DATA_HASH_ANNOTATION);
    managed
        && hash.is_some_and(|h| {
            current.cached || *h == data_hash(&secret.data.clone().unwrap_or_default())
        })
}

/// ESO's hash of a Secret's data, as the data-hash annotation holds it.
pub fn data_hash(data: &BTreeMap<String, ByteString>) -> String {
    hash::data_hash(data.iter().map(|(k, v)| (k, v.0.as_slice())))
}

/// The Secret as `Owner`/`Orphan` want it: exactly the fetched data, existing labels and
/// annotations kept, our markers set, and an owner reference under `Owner` (adopting an
/// unowned Secret, as ESO does).
pub fn desired_secret(
    es: &ExternalSecret,
    existing: Option<&Secret>,
    data: BTreeMap<String, ByteString>,
    output: &template::Output,
) -> Secret {
    let mut meta = existing
        .map(|s| s.metadata.clone())
        .unwrap_or_else(|| ObjectMeta {
            name: Some(es.target_name()),
            namespace: es.namespace(),
            ..Default::default()
        });
    // Labels and annotations esox set last time and no longer sets go away (ESO tracks
    // them the same way, through the field manager's managed fields).
    if let Some(s) = existing {
        let labels = meta.labels.get_or_insert_default();
        for key in managed_meta_keys(s, "f:labels") {
            labels.remove(&key);
        }
        let annotations = meta.annotations.get_or_insert_default();
        for key in managed_meta_keys(s, "f:annotations") {
            annotations.remove(&key);
        }
    }
    meta.managed_fields = None;
    let labels = meta.labels.get_or_insert_default();
    labels.extend(output.labels.clone());
    labels.insert(MANAGED_LABEL.into(), "true".into());
    let finalizers = meta.finalizers.get_or_insert_default();
    for f in &output.finalizers {
        if !finalizers.contains(f) {
            finalizers.push(f.clone());
        }
    }
    if finalizers.is_empty() {
        meta.finalizers = None;
    }
    let annotations = meta.annotations.get_or_insert_default();
    annotations.extend(output.annotations.clone());
    annotations.insert(DATA_HASH_ANNOTATION.into(), data_hash(&data));
    if es.spec.target.creation_policy == CreationPolicy::Owner {
        let created_by = hash::data_hash_text(&format!(
            "{}/{}",
            es.namespace().unwrap_or_default(),
            es.name_any()
        ));
        meta.labels
            .get_or_insert_default()
            .insert(CREATED_BY_LABEL.into(), created_by);
        let owner: Option<OwnerReference> = es.controller_owner_ref(&());
        let refs = meta.owner_references.get_or_insert_default();
        if let Some(owner) = owner
            && !refs.iter().any(|r| r.uid == owner.uid)
        {
            refs.push(owner);
        }
    }
    let type_ = output
        .type_
        .clone()
        .or_else(|| existing.and_then(|s| s.type_.clone()))
        .or_else(|| Some("Opaque".to_string()));
    Secret {
        metadata: meta,
        data: Some(data),
        type_,
        immutable: if es.spec.target.immutable {
            Some(true)
        } else {
            existing.and_then(|s| s.immutable)
        },
        ..Default::default()
    }
}

/// Whether writing `desired` over `current` would change anything esox manages. A cached
/// target has no data to compare: its data-hash annotation stands for it (it is known to
/// match the data), and the annotations are compared below, `desired`'s hash included.
fn same_secret(current: Current<'_>, desired: &Secret) -> bool {
    let (cached, current) = (current.cached, current.secret);
    (cached || current.data.clone().unwrap_or_default() == desired.data.clone().unwrap_or_default())
        && current.string_data.is_none()
        && current.metadata.labels == desired.metadata.labels
        && current.metadata.annotations == desired.metadata.annotations
        && current.metadata.owner_references == desired.metadata.owner_references
        && current.metadata.finalizers == desired.metadata.finalizers
        && current.type_ == desired.type_
        && current.immutable == desired.immutable
}

/// The label and annotation keys esox's field manager owns on a Secret, kept instead of its
/// `managedFields` (see [`super::cache::strip_managed_fields`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManagedMetaKeys {
    labels: Box<[String]>,
    annotations: Box<[String]>,
}

impl ManagedMetaKeys {
    /// The keys esox owns on `secret` (read with its `managedFields`).
    pub fn of(secret: &Secret) -> Self {
        ManagedMetaKeys {
            labels: managed_meta_keys(secret, "f:labels").into(),
            annotations: managed_meta_keys(secret, "f:annotations").into(),
        }
    }

    /// A `managedFields` list that says the same to [`managed_meta_keys`] (one entry of
    /// esox's), or `None` when esox owns no label or annotation.
    pub fn entries(&self) -> Option<Vec<ManagedFieldsEntry>> {
        if self.labels.is_empty() && self.annotations.is_empty() {
            return None;
        }
        let set = |keys: &[String]| {
            serde_json::Value::Object(
                keys.iter()
                    .map(|k| (format!("f:{k}"), serde_json::json!({})))
                    .collect(),
            )
        };
        Some(vec![ManagedFieldsEntry {
            manager: Some(FIELD_MANAGER.into()),
            operation: Some("Update".into()),
            api_version: Some("v1".into()),
            fields_type: Some("FieldsV1".into()),
            fields_v1: Some(FieldsV1(serde_json::json!({
                "f:metadata": {
                    "f:labels": set(&self.labels),
                    "f:annotations": set(&self.annotations),
                }
            }))),
            ..Default::default()
        }])
    }
}

/// Label or annotation keys (`section` is `f:labels` or `f:annotations`) owned by esox's
/// field manager, whether written by update or apply.
fn managed_meta_keys(secret: &Secret, section: &str) -> Vec<String> {
    managed_keys(secret, None, |fields| {
        fields.get("f:metadata").and_then(|m| m.get(section))
    })
}

/// Data keys esox last applied to a Secret (its server-side-apply field set).
fn applied_data_keys(secret: &Secret) -> Vec<String> {
    managed_keys(secret, Some("Apply"), |fields| fields.get("f:data"))
}

/// The `f:` keys of one section of esox's managed-fields entries (of one operation, if
/// given).
fn managed_keys(
    secret: &Secret,
    operation: Option<&str>,
    section: impl Fn(&serde_json::Value) -> Option<&serde_json::Value>,
) -> Vec<String> {
    let mut keys = Vec::new();
    for entry in secret.metadata.managed_fields.iter().flatten() {
        if entry.manager.as_deref() != Some(FIELD_MANAGER)
            || operation.is_some_and(|op| entry.operation.as_deref() != Some(op))
        {
            continue;
        }
        let Some(fields) = entry.fields_v1.as_ref() else {
            continue;
        };
        if let Some(map) = section(&fields.0).and_then(|d| d.as_object()) {
            keys.extend(
                map.keys()
                    .filter_map(|k| k.strip_prefix("f:"))
                    .map(str::to_string),
            );
        }
    }
    keys
}

/// The ExternalSecret that controls `secret`, when it is not `es`.
fn owned_by_other(es: &ExternalSecret, secret: &Secret) -> Option<String> {
    secret
        .owner_references()
        .iter()
        .find(|o| {
            o.controller == Some(true)
                && o.kind == "ExternalSecret"
                && o.uid != es.uid().unwrap_or_default()
        })
        .map(|o| o.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretBytes;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};

    const UID: &str = "es-uid";

    fn es(creation: &str, deletion: &str) -> ExternalSecret {
        serde_json::from_value(json!({
            "apiVersion": "external-secrets.io/v1",
            "kind": "ExternalSecret",
            "metadata": {"name": "es", "namespace": "ns", "uid": UID},
            "spec": {
                "secretStoreRef": {"name": "store"},
                "target": {"name": "target", "creationPolicy": creation, "deletionPolicy": deletion},
            }
        }))
        .unwrap()
    }

    fn output(pairs: &[(&str, &str)]) -> template::Output {
        template::Output {
            data: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), SecretBytes::new(v.as_bytes().to_vec())))
                .collect(),
            ..Default::default()
        }
    }

    /// The Secret esox would have written for `pairs` (so it is valid and up to date).
    fn synced(es: &ExternalSecret, pairs: &[(&str, &str)]) -> Secret {
        let out = output(pairs);
        // A Merge target is never created by esox: as it would be after someone created it
        // and esox merged into it.
        let mut es = es.clone();
        if es.spec.target.creation_policy == CreationPolicy::Merge {
            es.spec.target.creation_policy = CreationPolicy::CreateOrMerge;
        }
        match plan(&es, None, Some(&out)) {
            SecretPlan::Create(s) => *s,
            SecretPlan::Apply { patch, .. } => serde_json::from_value(patch).unwrap(),
            other => panic!("expected a creation, got {other:?}"),
        }
    }

    fn owned_by(secret: &mut Secret, name: &str, uid: &str) {
        secret.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "external-secrets.io/v1".into(),
            kind: "ExternalSecret".into(),
            name: name.into(),
            uid: uid.into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]);
    }

    fn read(secret: &Option<Secret>) -> Option<Current<'_>> {
        secret.as_ref().map(Current::read)
    }

    fn kind(plan: &SecretPlan) -> &'static str {
        plan.action()
    }

    #[derive(Clone, Copy)]
    enum Existing {
        None,
        /// What esox wrote for the same data.
        Synced,
        /// What esox wrote, then someone changed a value.
        Edited,
        /// Someone else's Secret, no markers.
        Foreign,
        /// Controlled by another ExternalSecret.
        OtherOwner,
        /// Immutable, with other data.
        Immutable,
    }

    fn existing(es: &ExternalSecret, e: Existing) -> Option<Secret> {
        let data = [("k", "v")];
        match e {
            Existing::None => None,
            Existing::Synced => Some(synced(es, &data)),
            Existing::Edited => {
                let mut s = synced(es, &data);
                s.data
                    .get_or_insert_default()
                    .insert("k".into(), ByteString(b"edited".to_vec()));
                Some(s)
            }
            Existing::Foreign => Some(Secret {
                metadata: ObjectMeta {
                    name: Some("target".into()),
                    namespace: Some("ns".into()),
                    ..Default::default()
                },
                data: Some([("other".to_string(), ByteString(b"x".to_vec()))].into()),
                ..Default::default()
            }),
            Existing::OtherOwner => {
                let mut s = synced(&self::es("Owner", "Retain"), &data);
                owned_by(&mut s, "other-es", "other-uid");
                Some(s)
            }
            Existing::Immutable => Some(Secret {
                metadata: ObjectMeta {
                    name: Some("target".into()),
                    ..Default::default()
                },
                data: Some([("k".to_string(), ByteString(b"old".to_vec()))].into()),
                immutable: Some(true),
                ..Default::default()
            }),
        }
    }

    /// Every creation policy against every state of the target, with data `k=v`.
    #[test]
    fn creation_policies() {
        use Existing::*;
        let table: &[(&str, Existing, &str)] = &[
            ("Owner", None, "create"),
            ("Owner", Synced, "unchanged"),
            ("Owner", Edited, "replace"),
            ("Owner", Foreign, "replace"),
            ("Owner", OtherOwner, "refuse"),
            ("Owner", Immutable, "refuse"),
            ("Orphan", None, "create"),
            ("Orphan", Synced, "unchanged"),
            ("Orphan", Edited, "replace"),
            ("Orphan", Foreign, "replace"),
            ("Orphan", OtherOwner, "refuse"),
            ("Orphan", Immutable, "refuse"),
            ("Merge", None, "missing"),
            ("Merge", Synced, "unchanged"),
            ("Merge", Edited, "apply-update"),
            ("Merge", Foreign, "apply-update"),
            ("Merge", Immutable, "refuse"),
            ("CreateOrMerge", None, "apply-create"),
            ("CreateOrMerge", Synced, "unchanged"),
            ("CreateOrMerge", Edited, "apply-update"),
            ("CreateOrMerge", Foreign, "apply-update"),
            ("CreateOrMerge", Immutable, "refuse"),
            ("None", None, "not-managed"),
            ("None", Foreign, "not-managed"),
        ];
        for (policy, state, want) in table {
            let es = es(policy, "Retain");
            let current = existing(&es, *state);
            let got = plan(&es, read(&current), Some(&output(&[("k", "v")])));
            assert_eq!(kind(&got), *want, "creationPolicy {policy} with {state:?}");
        }
    }

    impl std::fmt::Debug for Existing {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(match self {
                Existing::None => "no Secret",
                Existing::Synced => "the synced Secret",
                Existing::Edited => "an edited Secret",
                Existing::Foreign => "someone else's Secret",
                Existing::OtherOwner => "another ExternalSecret's Secret",
                Existing::Immutable => "an immutable Secret",
            })
        }
    }

    /// No data from the provider: every deletion policy (Merge renders the empty data).
    #[test]
    fn deletion_policies_on_empty_data() {
        use Existing::*;
        let table: &[(&str, &str, Existing, &str)] = &[
            ("Owner", "Delete", None, "already-deleted"),
            ("Owner", "Delete", Synced, "delete"),
            ("Owner", "Delete", Foreign, "delete"),
            ("Owner", "Delete", OtherOwner, "refuse"),
            ("Orphan", "Delete", Synced, "refuse"),
            ("Merge", "Delete", Synced, "refuse"),
            ("Owner", "Retain", Synced, "retain"),
            ("Owner", "Retain", None, "retain"),
            ("Merge", "Retain", Synced, "retain"),
        ];
        for (creation, deletion, state, want) in table {
            let es = es(creation, deletion);
            let current = existing(&es, *state);
            let got = plan(&es, read(&current), Option::None);
            assert_eq!(
                kind(&got),
                *want,
                "creationPolicy {creation}, deletionPolicy {deletion}, {state:?}"
            );
        }
        // deletionPolicy Merge: the empty output removes the keys esox applied, keeps others.
        let es = es("Merge", "Merge");
        let mut current = existing(&es, Foreign).unwrap();
        current
            .data
            .get_or_insert_default()
            .insert("mine".into(), ByteString(b"v".to_vec()));
        current.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
            manager: Some(FIELD_MANAGER.into()),
            operation: Some("Apply".into()),
            fields_v1: Some(FieldsV1(json!({"f:data": {"f:mine": {}}}))),
            ..Default::default()
        }]);
        let SecretPlan::Apply { patch, exists } =
            plan(&es, Some(Current::read(&current)), Some(&output(&[])))
        else {
            panic!("deletionPolicy Merge applies the empty data");
        };
        assert!(exists);
        assert_eq!(patch["data"], json!({}));
        let mut remaining = BTreeMap::new();
        remaining.insert("other".to_string(), ByteString(b"x".to_vec()));
        assert_eq!(
            patch["metadata"]["annotations"][DATA_HASH_ANNOTATION],
            json!(data_hash(&remaining)),
            "the hash covers the Secret as it will be: the foreign key only"
        );
    }

    #[test]
    fn refusals_say_what_and_whose() {
        let es = es("Owner", "Delete");
        let other = existing(&es, Existing::OtherOwner);
        assert_eq!(
            plan(&es, read(&other), Some(&output(&[("k", "v")]))),
            SecretPlan::Refuse(TargetError::OwnedByOther {
                secret: "target".into(),
                owner: "other-es".into()
            })
        );
        assert_eq!(
            TargetError::DeleteNotOwner {
                secret: "target".into(),
                policy: CreationPolicy::Orphan
            }
            .to_string(),
            "could not delete secret: unable to delete secret target: creationPolicy=Orphan is not Owner"
        );
    }

    #[test]
    fn owner_sets_the_owner_reference_and_created_by_orphan_does_not() {
        let owner = es("Owner", "Retain");
        let SecretPlan::Create(s) = plan(&owner, None, Some(&output(&[("k", "v")]))) else {
            panic!()
        };
        let refs = s.metadata.owner_references.clone().unwrap();
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].uid, UID);
        assert_eq!(refs[0].controller, Some(true));
        assert!(s.labels().contains_key(CREATED_BY_LABEL));
        assert_eq!(s.labels()[MANAGED_LABEL], "true");
        assert_eq!(s.type_.as_deref(), Some("Opaque"));

        let orphan = es("Orphan", "Retain");
        let SecretPlan::Create(s) = plan(&orphan, None, Some(&output(&[("k", "v")]))) else {
            panic!()
        };
        assert!(
            s.metadata
                .owner_references
                .as_deref()
                .unwrap_or_default()
                .is_empty()
        );
        assert!(!s.labels().contains_key(CREATED_BY_LABEL));
    }

    #[test]
    fn labels_esox_no_longer_sets_are_removed_and_foreign_ones_kept() {
        let es = es("Owner", "Retain");
        let mut current = synced(&es, &[("k", "v")]);
        let labels = current.metadata.labels.get_or_insert_default();
        labels.insert("old-template-label".into(), "x".into());
        labels.insert("someone-elses".into(), "y".into());
        current.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
            manager: Some(FIELD_MANAGER.into()),
            operation: Some("Update".into()),
            fields_v1: Some(FieldsV1(
                json!({"f:metadata": {"f:labels": {"f:old-template-label": {}}}}),
            )),
            ..Default::default()
        }]);
        let SecretPlan::Replace(s) = plan(
            &es,
            Some(Current::read(&current)),
            Some(&output(&[("k", "v")])),
        ) else {
            panic!("the stale label is a change")
        };
        assert!(!s.labels().contains_key("old-template-label"));
        assert_eq!(s.labels()["someone-elses"], "y");
        assert!(s.metadata.managed_fields.is_none());
    }

    #[test]
    fn validity_follows_eso() {
        let es = es("Owner", "Retain");
        let good = synced(&es, &[("k", "v")]);
        assert!(secret_is_valid(
            Some(Current::read(&good)),
            CreationPolicy::Owner
        ));
        assert!(!secret_is_valid(None, CreationPolicy::Owner));
        let edited = existing(&es, Existing::Edited).unwrap();
        assert!(!secret_is_valid(
            Some(Current::read(&edited)),
            CreationPolicy::Owner
        ));
        let mut unlabelled = good.clone();
        unlabelled.metadata.labels = None;
        assert!(!secret_is_valid(
            Some(Current::read(&unlabelled)),
            CreationPolicy::Owner
        ));
        for policy in [CreationPolicy::Merge, CreationPolicy::CreateOrMerge] {
            assert!(!secret_is_valid(Some(Current::read(&edited)), policy));
            assert!(!secret_is_valid(None, policy));
        }
        // ESO exempts Orphan (a deleted or edited Orphan target waits for the next refresh),
        // not None.
        assert!(secret_is_valid(None, CreationPolicy::Orphan));
        assert!(secret_is_valid(
            Some(Current::read(&edited)),
            CreationPolicy::Orphan
        ));
        assert!(!secret_is_valid(None, CreationPolicy::None));
        assert!(secret_is_valid(
            Some(Current::read(&good)),
            CreationPolicy::None
        ));
    }

    #[test]
    fn cleanup_deletes_only_what_this_external_secret_controls_under_delete() {
        let delete = es("Owner", "Delete");
        let mine = synced(&delete, &[("k", "v")]);
        assert_eq!(cleanup(&delete, Some(&mine)), Some("target".into()));
        assert_eq!(cleanup(&delete, None), None);
        let theirs = existing(&delete, Existing::OtherOwner).unwrap();
        assert_eq!(cleanup(&delete, Some(&theirs)), None);
        let foreign = existing(&delete, Existing::Foreign).unwrap();
        assert_eq!(cleanup(&delete, Some(&foreign)), None);
        let retain = es("Owner", "Retain");
        assert_eq!(cleanup(&retain, Some(&mine)), None);
    }

    #[test]
    fn renew_at_changes_make_a_merge_target_stale() {
        let es = es("CreateOrMerge", "Retain");
        let mut out = output(&[("k", "v")]);
        let current = synced(&es, &[("k", "v")]);
        assert_eq!(
            plan(&es, Some(Current::read(&current)), Some(&out)),
            SecretPlan::Unchanged
        );
        out.annotations.insert(
            super::super::refresh::RENEW_AT_ANNOTATION.into(),
            "2030-01-01T00:00:00Z".into(),
        );
        assert_eq!(
            kind(&plan(&es, Some(Current::read(&current)), Some(&out))),
            "apply-update"
        );
    }

    #[test]
    fn immutable_targets_are_created_immutable() {
        let mut es = es("Owner", "Retain");
        es.spec.target.immutable = true;
        let SecretPlan::Create(s) = plan(&es, None, Some(&output(&[("k", "v")]))) else {
            panic!()
        };
        assert_eq!(s.immutable, Some(true));
    }

    /// A target from the metadata cache (no data) plans like the Secret read in full.
    #[test]
    fn a_cached_target_plans_like_the_one_read() {
        for policy in ["Owner", "Orphan"] {
            let es = es(policy, "Retain");
            let full = synced(&es, &[("k", "v")]);
            let mut meta_only = full.clone();
            meta_only.data = None;
            let cached = Some(Current::cached(&meta_only));
            assert!(secret_is_valid(cached, CreationPolicy::Owner));
            assert_eq!(
                plan(&es, cached, Some(&output(&[("k", "v")]))),
                SecretPlan::Unchanged,
                "{policy}"
            );
            let SecretPlan::Replace(s) = plan(&es, cached, Some(&output(&[("k", "v2")]))) else {
                panic!("new data is a change ({policy})")
            };
            assert_eq!(s.data.unwrap()["k"].0, b"v2");
            // Data read in full and the same metadata: no data means empty data.
            assert_eq!(
                kind(&plan(
                    &es,
                    Some(Current::read(&meta_only)),
                    Some(&output(&[("k", "v")]))
                )),
                "replace"
            );
        }
    }

    /// Data the apiserver would refuse is refused here, with a message that says why, for
    /// every policy that writes; the existing Secret is left as it is.
    #[test]
    fn oversized_data_and_bad_keys_are_refused_before_writing() {
        let big = "x".repeat(MAX_SECRET_SIZE);
        for policy in ["Owner", "Orphan", "Merge", "CreateOrMerge"] {
            let es = es(policy, "Retain");
            let current = synced(&es, &[("k", "v")]);
            for existing in [None, Some(Current::read(&current))] {
                if existing.is_none() && policy == "Merge" {
                    continue;
                }
                let SecretPlan::Refuse(e) = plan(&es, existing, Some(&output(&[("k", &big)])))
                else {
                    panic!("{policy}: a Secret over 1 MiB is refused")
                };
                assert_eq!(
                    e.to_string(),
                    format!(
                        "target secret \"target\" would hold {} bytes of data, more than the 1048576 bytes Kubernetes allows in a Secret",
                        MAX_SECRET_SIZE + 1
                    )
                );
                let SecretPlan::Refuse(e) =
                    plan(&es, existing, Some(&output(&[("bad key", "v"), ("", "v")])))
                else {
                    panic!("{policy}: invalid keys are refused")
                };
                assert!(
                    e.to_string()
                        .starts_with("target secret \"target\": invalid secret keys"),
                    "{e}"
                );
            }
            // Exactly at the limit is fine (a one-byte key and the rest of a MiB).
            let at_limit = "x".repeat(MAX_SECRET_SIZE - 1);
            let es2 = if policy == "Merge" {
                self::es("CreateOrMerge", "Retain")
            } else {
                es.clone()
            };
            assert!(
                !matches!(
                    plan(&es2, None, Some(&output(&[("k", &at_limit)]))),
                    SecretPlan::Refuse(_)
                ),
                "{policy}"
            );
        }
        // The None policy writes nothing, so there is nothing to refuse.
        let es = es("None", "Retain");
        assert_eq!(
            plan(&es, None, Some(&output(&[("k", &big)]))),
            SecretPlan::NotManaged
        );
    }
}
