//! Push, delete and exists on the Kubernetes provider: ESO's semantics
//! (`providers/v1/kubernetes/client.go`, `metadata.go`) with its quirks fixed on purpose.
//!
//! - A Secret esox creates carries the label [`MANAGED_LABEL`]`: external-secrets`; a push
//!   refuses to overwrite, and a delete leaves alone, a remote Secret without it (ESO
//!   overwrites and deletes any Secret of that name).
//! - `metadata.spec.remoteNamespace` (a ClusterSecretStore's override) is honoured by push,
//!   delete and exists alike (ESO #6809: delete and exists ignore it).
//! - Everything else is ESO's: no `property` replaces the remote data with the whole source
//!   Secret; a `property` without `secretKey` holds the whole source as JSON; with both, that
//!   one key. Type from the source (default `Opaque`); labels and annotations merged by
//!   `sourceMergePolicy` and `targetMergePolicy`. Nothing is written when the remote Secret
//!   already is what would be pushed.
//!
//! The decisions are pure ([`plan_push`], [`plan_delete`], [`exists_in`]); the store's
//! methods read the remote Secret once and carry the plan out.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, PostParams, Preconditions};
use serde::Deserialize;

use super::{KubernetesStore, failure};
use crate::api::StoreKind;
use crate::provider::{ProviderError, PushOutcome, PushSecretData, SourceSecret};

/// The label that marks a remote Secret as written by esox's PushSecret.
pub const MANAGED_LABEL: &str = "external-secrets.io/managed-by";
/// Its value.
pub const MANAGED_VALUE: &str = "external-secrets";

/// The provider's `PushSecretMetadata` spec.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PushMetadata {
    /// How the remote metadata takes the computed one: `Merge` (default), `Replace`, `Ignore`.
    #[serde(default)]
    pub target_merge_policy: String,
    /// How the source Secret's metadata takes `labels`/`annotations`: `Merge` (default) or
    /// `Replace`.
    #[serde(default)]
    pub source_merge_policy: String,
    /// Labels to add.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations to add.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Push into this namespace instead of `remoteNamespace` (ClusterSecretStore only).
    #[serde(default)]
    pub remote_namespace: String,
}

/// Decodes `metadata` (`apiVersion: kubernetes.external-secrets.io/v1alpha1`,
/// `kind: PushSecretMetadata`, `spec`).
pub fn parse_metadata(
    raw: Option<&serde_json::Value>,
) -> Result<Option<PushMetadata>, ProviderError> {
    let Some(raw) = raw.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let bad = |why: String| {
        ProviderError::InvalidPush(format!("unable to parse metadata parameters: {why}"))
    };
    let obj = raw.as_object().ok_or_else(|| bad("not an object".into()))?;
    if let Some(kind) = obj.get("kind").and_then(|k| k.as_str())
        && kind != "PushSecretMetadata"
    {
        return Err(bad(format!(
            "kind {:?}: expected PushSecretMetadata",
            crate::api::abbreviate(kind, 60)
        )));
    }
    let spec = obj.get("spec").cloned().unwrap_or(serde_json::json!({}));
    let meta: PushMetadata = serde_json::from_value(spec).map_err(|e| bad(format!("spec: {e}")))?;
    Ok(Some(meta))
}

/// The namespace an entry's remote Secret is in: the metadata's override (a
/// ClusterSecretStore's only), else the store's `remoteNamespace`.
pub fn target_namespace(
    store_namespace: &str,
    store_kind: StoreKind,
    meta: Option<&PushMetadata>,
) -> Result<String, ProviderError> {
    match meta
        .map(|m| m.remote_namespace.as_str())
        .filter(|n| !n.is_empty())
    {
        None => Ok(store_namespace.to_string()),
        Some(_) if store_kind != StoreKind::ClusterSecretStore => Err(ProviderError::InvalidPush(
            "remoteNamespace override is only supported with ClusterSecretStore".into(),
        )),
        Some(ns) => Ok(ns.to_string()),
    }
}

/// What to do to the remote Secret.
#[derive(Debug, Clone, PartialEq)]
pub enum PushPlan {
    /// Create it.
    Create(Box<Secret>),
    /// Replace it (the read's resourceVersion kept: a concurrent change conflicts).
    Update(Box<Secret>),
    /// It already is what would be pushed.
    Unchanged,
}

/// Whether a remote Secret carries esox's mark.
pub fn is_managed(secret: &Secret) -> bool {
    secret
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_LABEL))
        .is_some_and(|v| v == MANAGED_VALUE)
}

/// Plans a push of `entry` from `source` onto `existing` (in `namespace`).
pub fn plan_push(
    existing: Option<&Secret>,
    source: &SourceSecret,
    entry: &PushSecretData,
    meta: Option<&PushMetadata>,
    namespace: &str,
) -> Result<PushPlan, ProviderError> {
    let property = entry.property().filter(|p| !p.is_empty());
    let secret_key = entry.secret_key.as_deref().filter(|k| !k.is_empty());
    if property.is_none() && secret_key.is_some() {
        return Err(ProviderError::InvalidPush(
            "requires property in RemoteRef to push secret value if secret key is defined".into(),
        ));
    }
    if let Some(e) = existing
        && !is_managed(e)
    {
        return Err(ProviderError::NotManaged {
            key: format!("{namespace}/{}", entry.remote_key()),
        });
    }
    let mut remote = existing.cloned().unwrap_or_else(|| Secret {
        metadata: ObjectMeta {
            name: Some(entry.remote_key().to_string()),
            namespace: Some(namespace.to_string()),
            ..Default::default()
        },
        ..Default::default()
    });
    remote.type_ = Some(if source.type_.is_empty() {
        "Opaque".to_string()
    } else {
        source.type_.clone()
    });
    // Source metadata, then the target's (ESO's mergeSourceMetadata / mergeTargetMetadata).
    let (src_labels, src_annotations) = match meta {
        None => (source.labels.clone(), source.annotations.clone()),
        Some(m) => match m.source_merge_policy.as_str() {
            "" | "Merge" => {
                let mut l = source.labels.clone();
                l.extend(m.labels.clone());
                let mut a = source.annotations.clone();
                a.extend(m.annotations.clone());
                (l, a)
            }
            "Replace" => (m.labels.clone(), m.annotations.clone()),
            other => {
                return Err(ProviderError::InvalidPush(format!(
                    "failed to merge source metadata: unexpected source merge policy {:?}",
                    crate::api::abbreviate(other, 40)
                )));
            }
        },
    };
    let mut labels = remote.metadata.labels.clone().unwrap_or_default();
    let mut annotations = remote.metadata.annotations.clone().unwrap_or_default();
    match meta.map(|m| m.target_merge_policy.as_str()).unwrap_or("") {
        "" | "Merge" => {
            labels.extend(src_labels);
            annotations.extend(src_annotations);
        }
        "Replace" => {
            labels = src_labels;
            annotations = src_annotations;
        }
        "Ignore" => {}
        other => {
            return Err(ProviderError::InvalidPush(format!(
                "failed to merge target metadata: unexpected target merge policy {:?}",
                crate::api::abbreviate(other, 40)
            )));
        }
    }
    labels.insert(MANAGED_LABEL.into(), MANAGED_VALUE.into());
    remote.metadata.labels = Some(labels);
    remote.metadata.annotations = (!annotations.is_empty()).then_some(annotations);
    let mut data = remote.data.clone().unwrap_or_default();
    match (property, secret_key) {
        (None, _) => {
            data = source
                .data
                .iter()
                .map(|(k, v)| (k.clone(), ByteString(v.expose().to_vec())))
                .collect();
        }
        (Some(p), None) => {
            let whole: BTreeMap<&str, String> = source
                .data
                .iter()
                .map(|(k, v)| (k.as_str(), String::from_utf8_lossy(v.expose()).into_owned()))
                .collect();
            data.insert(
                p.to_string(),
                ByteString(serde_json::to_vec(&whole).unwrap_or_default()),
            );
        }
        (Some(p), Some(k)) => {
            let value = source.data.get(k).ok_or_else(|| {
                ProviderError::InvalidPush(format!("secret key {k:?} does not exist"))
            })?;
            data.insert(p.to_string(), ByteString(value.expose().to_vec()));
        }
    }
    remote.data = Some(data);
    remote.string_data = None;
    Ok(match existing {
        None => PushPlan::Create(Box::new(remote)),
        Some(e) if same(e, &remote) => PushPlan::Unchanged,
        Some(_) => PushPlan::Update(Box::new(remote)),
    })
}

/// Equal in what a push writes (an absent map equals an empty one).
fn same(a: &Secret, b: &Secret) -> bool {
    a.type_.as_deref().unwrap_or("Opaque") == b.type_.as_deref().unwrap_or("Opaque")
        && a.data.clone().unwrap_or_default() == b.data.clone().unwrap_or_default()
        && a.metadata.labels.clone().unwrap_or_default()
            == b.metadata.labels.clone().unwrap_or_default()
        && a.metadata.annotations.clone().unwrap_or_default()
            == b.metadata.annotations.clone().unwrap_or_default()
}

/// What a delete does to the remote Secret.
#[derive(Debug, Clone, PartialEq)]
pub enum DeletePlan {
    /// Nothing: it does not exist, lacks the property, or is not esox's.
    Nothing,
    /// Remove the property, keep the rest.
    RemoveKey(Box<Secret>),
    /// Delete the Secret.
    Delete,
}

/// Plans ESO's `DeleteSecret` for `property` (`None`: the whole Secret).
pub fn plan_delete(existing: Option<&Secret>, property: Option<&str>) -> DeletePlan {
    let Some(secret) = existing else {
        return DeletePlan::Nothing;
    };
    if !is_managed(secret) {
        return DeletePlan::Nothing;
    }
    let Some(p) = property.filter(|p| !p.is_empty()) else {
        return DeletePlan::Delete;
    };
    let data = secret.data.clone().unwrap_or_default();
    if !data.contains_key(p) {
        return DeletePlan::Nothing;
    }
    if data.len() > 1 {
        let mut kept = secret.clone();
        let mut data = data;
        data.remove(p);
        kept.data = Some(data);
        return DeletePlan::RemoveKey(Box::new(kept));
    }
    DeletePlan::Delete
}

/// ESO's `SecretExists`: the Secret, or its `property`.
pub fn exists_in(existing: Option<&Secret>, property: Option<&str>) -> bool {
    match (existing, property.filter(|p| !p.is_empty())) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(s), Some(p)) => s.data.as_ref().is_some_and(|d| d.contains_key(p)),
    }
}

impl KubernetesStore {
    fn namespace_for(&self, entry: &PushSecretData) -> Result<String, ProviderError> {
        let meta = parse_metadata(entry.metadata.as_ref())?;
        target_namespace(&self.namespace, self.store_kind, meta.as_ref())
    }

    /// Pushes one entry (ESO's `PushSecret`).
    pub async fn push(
        &self,
        source: &SourceSecret,
        entry: &PushSecretData,
    ) -> Result<PushOutcome, ProviderError> {
        let meta = parse_metadata(entry.metadata.as_ref())?;
        let ns = target_namespace(&self.namespace, self.store_kind, meta.as_ref())?;
        let existing = self.read(&ns, entry.remote_key()).await?;
        let plan = plan_push(existing.as_ref(), source, entry, meta.as_ref(), &ns)?;
        let name = entry.remote_key();
        let what = format!("push secret {ns}/{name}");
        match plan {
            PushPlan::Unchanged => Ok(PushOutcome::Unchanged),
            PushPlan::Create(secret) => {
                let nsr = ns.as_str();
                let secret = &*secret;
                let result = self
                    .call(|c| async move {
                        Self::secrets(c, nsr)
                            .create(&PostParams::default(), secret)
                            .await
                    })
                    .await?;
                self.calls.record("CreateSecret", &result);
                result.map_err(|e| failure(&e, &what))?;
                Ok(PushOutcome::Written)
            }
            PushPlan::Update(secret) => {
                let nsr = ns.as_str();
                let secret = &*secret;
                let result = self
                    .call(|c| async move {
                        Self::secrets(c, nsr)
                            .replace(name, &PostParams::default(), secret)
                            .await
                    })
                    .await?;
                self.calls.record("UpdateSecret", &result);
                result.map_err(|e| failure(&e, &what))?;
                Ok(PushOutcome::Written)
            }
        }
    }

    /// Deletes what a push wrote (ESO's `DeleteSecret`), in the entry's namespace.
    pub async fn delete(&self, entry: &PushSecretData) -> Result<(), ProviderError> {
        let ns = self.namespace_for(entry)?;
        let name = entry.remote_key();
        let existing = self.read(&ns, name).await?;
        let what = format!("delete secret {ns}/{name}");
        let nsr = ns.as_str();
        match plan_delete(existing.as_ref(), entry.property()) {
            DeletePlan::Nothing => Ok(()),
            DeletePlan::RemoveKey(secret) => {
                let secret = &*secret;
                let result = self
                    .call(|c| async move {
                        Self::secrets(c, nsr)
                            .replace(name, &PostParams::default(), secret)
                            .await
                    })
                    .await?;
                self.calls.record("UpdateSecret", &result);
                result.map(|_| ()).map_err(|e| failure(&e, &what))
            }
            DeletePlan::Delete => {
                // Only the Secret that was read (and found to be esox's) is deleted.
                let meta = existing.map(|s| s.metadata).unwrap_or_default();
                let dp = DeleteParams {
                    preconditions: Some(Preconditions {
                        resource_version: meta.resource_version,
                        uid: meta.uid,
                    }),
                    ..Default::default()
                };
                let dp = &dp;
                let result = self
                    .call(|c| async move { Self::secrets(c, nsr).delete(name, dp).await })
                    .await?;
                self.calls.record("DeleteSecret", &result);
                match result {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                    Err(e) => Err(failure(&e, &what)),
                }
            }
        }
    }

    /// Whether the entry's remote Secret (or property) exists (ESO's `SecretExists`), in the
    /// entry's namespace.
    pub async fn exists(&self, entry: &PushSecretData) -> Result<bool, ProviderError> {
        let ns = self.namespace_for(entry)?;
        let existing = self.read(&ns, entry.remote_key()).await?;
        Ok(exists_in(existing.as_ref(), entry.property()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretBytes;

    fn source() -> SourceSecret {
        SourceSecret {
            type_: "kubernetes.io/tls".into(),
            data: [
                ("tls.crt".to_string(), SecretBytes::from("CERT")),
                ("tls.key".to_string(), SecretBytes::from("KEY")),
            ]
            .into(),
            labels: [("app".to_string(), "web".to_string())].into(),
            ..Default::default()
        }
    }

    fn entry(key: Option<&str>, property: Option<&str>) -> PushSecretData {
        PushSecretData {
            secret_key: key.map(str::to_string),
            remote: crate::provider::RemoteRef {
                remote_key: "remote".into(),
                property: property.map(str::to_string),
            },
            metadata: None,
        }
    }

    fn created(plan: PushPlan) -> Secret {
        match plan {
            PushPlan::Create(s) | PushPlan::Update(s) => *s,
            PushPlan::Unchanged => panic!("expected a write"),
        }
    }

    fn data(s: &Secret) -> BTreeMap<String, String> {
        s.data
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
            .collect()
    }

    #[test]
    fn the_three_shapes_of_a_push_and_the_mark() {
        let whole = created(plan_push(None, &source(), &entry(None, None), None, "ns").unwrap());
        assert_eq!(whole.type_.as_deref(), Some("kubernetes.io/tls"));
        assert_eq!(data(&whole)["tls.crt"], "CERT");
        assert!(is_managed(&whole));
        assert_eq!(whole.metadata.labels.as_ref().unwrap()["app"], "web");
        let json =
            created(plan_push(None, &source(), &entry(None, Some("all")), None, "ns").unwrap());
        assert_eq!(data(&json)["all"], r#"{"tls.crt":"CERT","tls.key":"KEY"}"#);
        let one = created(
            plan_push(
                None,
                &source(),
                &entry(Some("tls.key"), Some("k")),
                None,
                "ns",
            )
            .unwrap(),
        );
        assert_eq!(
            data(&one),
            BTreeMap::from([("k".to_string(), "KEY".to_string())])
        );
        let err =
            plan_push(None, &source(), &entry(Some("tls.key"), None), None, "ns").unwrap_err();
        assert_eq!(
            err.to_string(),
            "requires property in RemoteRef to push secret value if secret key is defined"
        );
    }

    #[test]
    fn an_unmanaged_secret_is_never_overwritten_and_an_equal_one_never_rewritten() {
        let mut foreign = Secret::default();
        foreign.metadata.name = Some("remote".into());
        let err = plan_push(Some(&foreign), &source(), &entry(None, None), None, "ns").unwrap_err();
        assert!(matches!(err, ProviderError::NotManaged { .. }), "{err}");
        let ours = created(plan_push(None, &source(), &entry(None, None), None, "ns").unwrap());
        assert_eq!(
            plan_push(Some(&ours), &source(), &entry(None, None), None, "ns").unwrap(),
            PushPlan::Unchanged
        );
        let mut changed = source();
        changed
            .data
            .insert("tls.crt".into(), SecretBytes::from("NEW"));
        assert!(matches!(
            plan_push(Some(&ours), &changed, &entry(None, None), None, "ns").unwrap(),
            PushPlan::Update(_)
        ));
    }

    #[test]
    fn merge_policies_as_eso() {
        let mut remote =
            created(plan_push(None, &source(), &entry(None, None), None, "ns").unwrap());
        remote
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("theirs".into(), "1".into());
        let meta = |t: &str, s: &str| PushMetadata {
            target_merge_policy: t.into(),
            source_merge_policy: s.into(),
            labels: [("extra".to_string(), "x".to_string())].into(),
            ..Default::default()
        };
        let labels = |m: &PushMetadata| {
            let plan =
                plan_push(Some(&remote), &source(), &entry(None, None), Some(m), "ns").unwrap();
            let after = match plan {
                PushPlan::Unchanged => remote.clone(),
                plan => created(plan),
            };
            after
                .metadata
                .labels
                .unwrap()
                .into_keys()
                .collect::<Vec<_>>()
        };
        assert_eq!(
            labels(&meta("", "")),
            ["app", "external-secrets.io/managed-by", "extra", "theirs"]
        );
        assert_eq!(
            labels(&meta("Replace", "")),
            ["app", "external-secrets.io/managed-by", "extra"]
        );
        assert_eq!(
            labels(&meta("Replace", "Replace")),
            ["external-secrets.io/managed-by", "extra"]
        );
        assert_eq!(
            labels(&meta("Ignore", "")),
            ["app", "external-secrets.io/managed-by", "theirs"]
        );
        assert!(
            plan_push(
                Some(&remote),
                &source(),
                &entry(None, None),
                Some(&meta("Nope", "")),
                "ns"
            )
            .is_err()
        );
    }

    #[test]
    fn remote_namespace_overrides_only_on_a_cluster_store() {
        let meta = parse_metadata(Some(&serde_json::json!({
            "apiVersion": "kubernetes.external-secrets.io/v1alpha1",
            "kind": "PushSecretMetadata",
            "spec": {"remoteNamespace": "other"}
        })))
        .unwrap();
        assert_eq!(
            target_namespace("base", StoreKind::ClusterSecretStore, meta.as_ref()).unwrap(),
            "other"
        );
        assert_eq!(
            target_namespace("base", StoreKind::SecretStore, meta.as_ref())
                .unwrap_err()
                .to_string(),
            "remoteNamespace override is only supported with ClusterSecretStore"
        );
        assert_eq!(
            target_namespace("base", StoreKind::SecretStore, None).unwrap(),
            "base"
        );
        assert!(parse_metadata(Some(&serde_json::json!({"kind": "Other"}))).is_err());
    }

    #[test]
    fn deletes_and_exists_as_eso_but_only_for_managed_secrets() {
        let ours = created(plan_push(None, &source(), &entry(None, None), None, "ns").unwrap());
        assert_eq!(plan_delete(None, None), DeletePlan::Nothing);
        assert_eq!(plan_delete(Some(&ours), None), DeletePlan::Delete);
        assert_eq!(
            plan_delete(Some(&ours), Some("missing")),
            DeletePlan::Nothing
        );
        match plan_delete(Some(&ours), Some("tls.key")) {
            DeletePlan::RemoveKey(kept) => assert_eq!(data(&kept).len(), 1),
            other => panic!("{other:?}"),
        }
        let mut foreign = ours.clone();
        foreign.metadata.labels = None;
        assert_eq!(plan_delete(Some(&foreign), None), DeletePlan::Nothing);
        assert!(exists_in(Some(&ours), None));
        assert!(exists_in(Some(&ours), Some("tls.crt")));
        assert!(!exists_in(Some(&ours), Some("nope")));
        assert!(!exists_in(None, None));
    }
}
