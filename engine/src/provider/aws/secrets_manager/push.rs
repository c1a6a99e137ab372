//! PushSecret on AWS Secrets Manager, as ESO (`providers/v1/aws/secretsmanager/
//! secretsmanager.go` `PushSecret`, `DeleteSecret`, `SecretExists`):
//!
//! - A secret esox creates carries the tag `managed-by=external-secrets`; one without it is
//!   never overwritten (`secret not managed by external-secrets`) and never deleted (a
//!   silent no-op, as ESO).
//! - No `secretKey`: the whole Secret as a JSON object of strings. A `property` is set in a
//!   JSON document (dots nest, as ESO's `sjson.Set`); an existing non-JSON value is an error.
//! - `SecretBinary` unless the metadata says `secretPushFormat: string`.
//! - `PushSecretMetadata` (`apiVersion: kubernetes.external-secrets.io/v1alpha1`): `secretPushFormat`,
//!   `kmsKeyID` and `description` (on create), `tags` (kept in step; `managed-by` refused).
//! - Delete honours the store's `secretsManager.forceDeleteWithoutRecovery` /
//!   `recoveryWindowInDays` (7–30) and deletes the whole secret whatever the `property`.
//! - Better than ESO: an unchanged value is not written again (ESO #5443), and a resource
//!   policy is deleted only when one exists (ESO calls `DeleteResourcePolicy` on every push).
//!   `resourcePolicy` and `replicationLocations` are refused with a clear error: esox does not
//!   support them yet.

use std::collections::BTreeMap;

use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_secretsmanager::types::Tag;

use super::SecretsManager;
use crate::provider::aws::errors::{classify, is_not_found};
use crate::provider::push::{MANAGED_BY_KEY, MANAGED_BY_VALUE};
use crate::provider::{
    ProviderError, PushOutcome, PushSecretData, Recorded, RemoteRef, SourceSecret,
};
use crate::secret::SecretBytes;

/// ESO's token for the first version of a secret it creates.
const INITIAL_VERSION: &str = "00000000-0000-0000-0000-000000000001";
/// The metadata `apiVersion` and `kind` ESO requires.
const METADATA_API_VERSION: &str = "kubernetes.external-secrets.io/v1alpha1";
const METADATA_KIND: &str = "PushSecretMetadata";
/// ESO's defaults for a secret it creates.
const DEFAULT_KMS_KEY: &str = "alias/aws/secretsmanager";
const DEFAULT_DESCRIPTION: &str = "secret 'managed-by:external-secrets'";

/// `spec.data[].metadata` for AWS Secrets Manager, with ESO's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct PushMetadata {
    /// Push as `SecretString` (else `SecretBinary`).
    pub as_string: bool,
    /// KMS key for a new secret.
    pub kms_key_id: String,
    /// Description of a new secret.
    pub description: String,
    /// Tags besides `managed-by`.
    pub tags: BTreeMap<String, String>,
}

impl Default for PushMetadata {
    fn default() -> Self {
        PushMetadata {
            as_string: false,
            kms_key_id: DEFAULT_KMS_KEY.into(),
            description: DEFAULT_DESCRIPTION.into(),
            tags: BTreeMap::new(),
        }
    }
}

fn metadata_error(why: impl std::fmt::Display) -> ProviderError {
    ProviderError::InvalidPush(format!(
        "failed to parse push secret metadata: failed to parse {METADATA_API_VERSION} {METADATA_KIND}: {why}"
    ))
}

/// Parses ESO's `PushSecretMetadata` (field names match case-insensitively, as Go's
/// `encoding/json`; unknown fields are refused, as ESO's `DisallowUnknownFields`).
pub fn parse_metadata(raw: Option<&serde_json::Value>) -> Result<PushMetadata, ProviderError> {
    let mut out = PushMetadata::default();
    let Some(raw) = raw else { return Ok(out) };
    if raw.is_null() {
        return Ok(out);
    }
    let obj = raw
        .as_object()
        .ok_or_else(|| metadata_error("expected an object"))?;
    let field = |o: &serde_json::Map<String, serde_json::Value>, name: &str| {
        o.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    for k in obj.keys() {
        if !["apiversion", "kind", "spec"].contains(&k.to_ascii_lowercase().as_str()) {
            return Err(metadata_error(format!("json: unknown field {k:?}")));
        }
    }
    let api_version = field(obj, "apiVersion")
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    if api_version != METADATA_API_VERSION {
        return Err(metadata_error(format!(
            "unexpected apiVersion {api_version:?}, expected {METADATA_API_VERSION:?}"
        )));
    }
    let kind = field(obj, "kind")
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    if kind != METADATA_KIND {
        return Err(metadata_error(format!(
            "unexpected kind {kind:?}, expected {METADATA_KIND:?}"
        )));
    }
    let Some(spec) = field(obj, "spec") else {
        return Ok(out);
    };
    let spec = spec
        .as_object()
        .ok_or_else(|| metadata_error("spec: expected an object"))?;
    for (k, v) in spec {
        let string = || {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| metadata_error(format!("spec.{k}: expected a string")))
        };
        match k.to_ascii_lowercase().as_str() {
            "secretpushformat" => match string()?.as_str() {
                "binary" | "" => out.as_string = false,
                "string" => out.as_string = true,
                other => {
                    return Err(ProviderError::InvalidPush(format!(
                        "invalid secret push format: {}",
                        crate::api::abbreviate(other, 64)
                    )));
                }
            },
            "kmskeyid" => out.kms_key_id = string()?,
            "description" => out.description = string()?,
            "tags" => {
                let tags: BTreeMap<String, String> = serde_json::from_value(v.clone())
                    .map_err(|e| metadata_error(format!("spec.tags: {e}")))?;
                if tags.contains_key(MANAGED_BY_KEY) {
                    return Err(ProviderError::InvalidPush(
                        "error parsing tags in metadata: Cannot specify a 'managed-by' tag".into(),
                    ));
                }
                out.tags = tags;
            }
            "resourcepolicy" | "replicationlocations" => {
                return Err(ProviderError::InvalidPush(format!(
                    "PushSecretMetadata spec.{k} is not supported by esox yet"
                )));
            }
            _ => return Err(metadata_error(format!("json: unknown field {k:?}"))),
        }
    }
    Ok(out)
}

/// Sets the dotted `path` in the JSON document `doc` (empty = `{}`) to `value` as a string,
/// as ESO's `sjson.Set`. `None` when it already holds exactly that string.
pub fn set_property(
    doc: &[u8],
    path: &str,
    value: &SecretBytes,
) -> Result<Option<SecretBytes>, ProviderError> {
    let not_json = || {
        ProviderError::InvalidPush(
            "PushSecret for aws secrets manager with a pushSecretData property requires a json secret"
                .into(),
        )
    };
    let mut root: serde_json::Value = if doc.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Object(Default::default())
    } else {
        serde_json::from_slice(doc).map_err(|_| not_json())?
    };
    let new = serde_json::Value::String(String::from_utf8_lossy(value.expose()).into_owned());
    let parts: Vec<&str> = path.split('.').collect();
    let mut at = &mut root;
    for (i, part) in parts.iter().enumerate() {
        if !at.is_object() {
            if i == 0 {
                return Err(not_json());
            }
            *at = serde_json::Value::Object(Default::default());
        }
        let obj = at.as_object_mut().ok_or_else(not_json)?;
        if i + 1 == parts.len() {
            if obj.get(*part) == Some(&new) {
                return Ok(None);
            }
            obj.insert((*part).to_string(), new);
            break;
        }
        at = obj
            .entry((*part).to_string())
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
    }
    Ok(Some(SecretBytes::new(
        serde_json::to_vec(&root).unwrap_or_default(),
    )))
}

/// The store's `secretsManager` deletion options, checked as ESO checks them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    /// `forceDeleteWithoutRecovery`.
    pub force: bool,
    /// `recoveryWindowInDays` (0 = AWS's default).
    pub recovery_window_days: i64,
}

impl DeleteOptions {
    /// Reads `spec.provider.aws.secretsManager`.
    pub fn from_spec(raw: Option<&serde_json::Value>) -> Result<Self, String> {
        let Some(raw) = raw else {
            return Ok(DeleteOptions::default());
        };
        let force = raw
            .get("forceDeleteWithoutRecovery")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let days = raw
            .get("recoveryWindowInDays")
            .and_then(|v| v.as_i64())
            .unwrap_or(0);
        if days != 0 && !(7..=30).contains(&days) {
            return Err(
                "invalid DeleteSecretInput: RecoveryWindowInDays must be between 7 and 30 days"
                    .into(),
            );
        }
        if force && days != 0 {
            return Err(
                "invalid DeleteSecretInput: ForceDeleteWithoutRecovery conflicts with RecoveryWindowInDays"
                    .into(),
            );
        }
        Ok(DeleteOptions {
            force,
            recovery_window_days: days,
        })
    }
}

fn managed(tags: &[Tag]) -> bool {
    tags.iter()
        .any(|t| t.key() == Some(MANAGED_BY_KEY) && t.value() == Some(MANAGED_BY_VALUE))
}

fn new_token() -> String {
    use rand::RngExt as _;
    let b: [u8; 16] = rand::rng().random();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

impl SecretsManager {
    pub(super) async fn push(
        &self,
        secret: &SourceSecret,
        data: &PushSecretData,
    ) -> Result<PushOutcome, ProviderError> {
        let meta = parse_metadata(data.metadata.as_ref())?;
        let value = data.value(secret)?;
        let key = data.remote_key();
        let name = self.id(key);
        let client = &self.api.client;
        let calls = &self.api.calls;
        let described = client
            .describe_secret()
            .secret_id(&name)
            .send()
            .await
            .recorded(calls, "DescribeSecret");
        let desc = match described {
            Ok(d) => d,
            Err(e) if is_not_found(&e) => {
                let body = match data.property() {
                    Some(p) => set_property(b"", p, &value)?.unwrap_or_default(),
                    None => value,
                };
                let mut tags: Vec<Tag> = meta
                    .tags
                    .iter()
                    .map(|(k, v)| Tag::builder().key(k).value(v).build())
                    .collect();
                tags.push(
                    Tag::builder()
                        .key(MANAGED_BY_KEY)
                        .value(MANAGED_BY_VALUE)
                        .build(),
                );
                let mut call = client
                    .create_secret()
                    .name(&name)
                    .set_tags(Some(tags))
                    .description(&meta.description)
                    .kms_key_id(&meta.kms_key_id)
                    .client_request_token(INITIAL_VERSION);
                call = if meta.as_string {
                    call.secret_string(String::from_utf8_lossy(body.expose()))
                } else {
                    call.secret_binary(Blob::new(body.expose().to_vec()))
                };
                call.send()
                    .await
                    .recorded(calls, "CreateSecret")
                    .map_err(|e| classify(e, "secretsmanager:CreateSecret"))?;
                return Ok(PushOutcome::Written);
            }
            Err(e) => return Err(classify(e, "secretsmanager:DescribeSecret")),
        };
        if !managed(desc.tags()) {
            return Err(ProviderError::NotManaged {
                key: key.to_string(),
            });
        }
        let arn = desc.arn().unwrap_or(&name).to_string();
        if !meta.tags.is_empty() {
            self.sync_tags(&arn, desc.tags(), &meta.tags).await?;
        }
        self.drop_resource_policy(&arn).await?;

        let has_versions = desc.version_ids_to_stages().is_some_and(|v| !v.is_empty());
        let existing = if has_versions {
            let out = client
                .get_secret_value()
                .secret_id(&arn)
                .version_stage("AWSCURRENT")
                .send()
                .await
                .recorded(calls, "GetSecretValue")
                .map_err(|e| classify(e, "secretsmanager:GetSecretValue"))?;
            Some(super::value_of(
                out.secret_string(),
                out.secret_binary().map(|b| b.as_ref()),
            ))
        } else {
            None
        };
        let body = match data.property() {
            Some(p) => {
                let doc = existing.as_ref().map(|v| v.expose()).unwrap_or_default();
                match set_property(doc, p, &value)? {
                    Some(b) => b,
                    None => return Ok(PushOutcome::Unchanged),
                }
            }
            None => value,
        };
        if existing.as_ref() == Some(&body) {
            return Ok(PushOutcome::Unchanged);
        }
        let token = if has_versions {
            new_token()
        } else {
            INITIAL_VERSION.to_string()
        };
        let mut call = client
            .put_secret_value()
            .secret_id(&arn)
            .client_request_token(token);
        call = if meta.as_string {
            call.secret_string(String::from_utf8_lossy(body.expose()))
        } else {
            call.secret_binary(Blob::new(body.expose().to_vec()))
        };
        call.send()
            .await
            .recorded(calls, "PutSecretValue")
            .map_err(|e| classify(e, "secretsmanager:PutSecretValue"))?;
        Ok(PushOutcome::Written)
    }

    async fn sync_tags(
        &self,
        arn: &str,
        have: &[Tag],
        want: &BTreeMap<String, String>,
    ) -> Result<(), ProviderError> {
        let client = &self.api.client;
        let calls = &self.api.calls;
        let stale: Vec<String> = have
            .iter()
            .filter_map(|t| t.key())
            .filter(|k| *k != MANAGED_BY_KEY && !want.contains_key(*k))
            .map(str::to_string)
            .collect();
        if !stale.is_empty() {
            client
                .untag_resource()
                .secret_id(arn)
                .set_tag_keys(Some(stale))
                .send()
                .await
                .recorded(calls, "UntagResource")
                .map_err(|e| classify(e, "secretsmanager:UntagResource"))?;
        }
        let changed = want.iter().any(|(k, v)| {
            !have
                .iter()
                .any(|t| t.key() == Some(k.as_str()) && t.value() == Some(v.as_str()))
        });
        if changed {
            let tags: Vec<Tag> = want
                .iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect();
            client
                .tag_resource()
                .secret_id(arn)
                .set_tags(Some(tags))
                .send()
                .await
                .recorded(calls, "TagResource")
                .map_err(|e| classify(e, "secretsmanager:TagResource"))?;
        }
        Ok(())
    }

    /// ESO removes a resource policy the metadata does not declare (removal by omission,
    /// ESO #6806); esox reads first and deletes only one that exists.
    async fn drop_resource_policy(&self, arn: &str) -> Result<(), ProviderError> {
        let client = &self.api.client;
        let calls = &self.api.calls;
        let policy = match client
            .get_resource_policy()
            .secret_id(arn)
            .send()
            .await
            .recorded(calls, "GetResourcePolicy")
        {
            Ok(out) => out.resource_policy().map(str::to_string),
            Err(e) if is_not_found(&e) => None,
            Err(e) => return Err(classify(e, "secretsmanager:GetResourcePolicy")),
        };
        if policy.is_some_and(|p| !p.trim().is_empty()) {
            client
                .delete_resource_policy()
                .secret_id(arn)
                .send()
                .await
                .recorded(calls, "DeleteResourcePolicy")
                .map_err(|e| classify(e, "secretsmanager:DeleteResourcePolicy"))?;
        }
        Ok(())
    }

    /// ESO's DeleteSecret, made idempotent: a secret that is gone, or already marked for
    /// deletion (by another writer, by hand, or by an earlier attempt whose answer was lost),
    /// is deleted. ESO reads the value first and fails on such a secret for ever, which leaves
    /// a PushSecret stuck behind its finalizer; DescribeSecret answers the same questions
    /// (exists, managed, replicated, deleted) without reading the value.
    pub(super) async fn delete_pushed(&self, remote: &RemoteRef) -> Result<(), ProviderError> {
        let name = self.id(&remote.remote_key);
        let client = &self.api.client;
        let calls = &self.api.calls;
        let desc = match client
            .describe_secret()
            .secret_id(&name)
            .send()
            .await
            .recorded(calls, "DescribeSecret")
        {
            Ok(desc) => desc,
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => return Err(classify(e, "secretsmanager:DescribeSecret")),
        };
        if desc.deleted_date().is_some() || !managed(desc.tags()) {
            return Ok(());
        }
        let arn = desc.arn().unwrap_or(&name).to_string();
        let regions: Vec<String> = desc
            .replication_status()
            .iter()
            .filter_map(|r| r.region().map(str::to_string))
            .collect();
        if !regions.is_empty() {
            client
                .remove_regions_from_replication()
                .secret_id(&arn)
                .set_remove_replica_regions(Some(regions))
                .send()
                .await
                .recorded(calls, "RemoveRegionsFromReplication")
                .map_err(|e| classify(e, "secretsmanager:RemoveRegionsFromReplication"))?;
        }
        let opts = self.delete_options;
        let mut call = client.delete_secret().secret_id(&arn);
        if opts.force {
            call = call.force_delete_without_recovery(true);
        } else if opts.recovery_window_days != 0 {
            call = call.recovery_window_in_days(opts.recovery_window_days);
        }
        match call.send().await.recorded(calls, "DeleteSecret") {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => {
                let err = classify(e, "secretsmanager:DeleteSecret");
                // Another writer deleted it between our two calls.
                if matches!(err, ProviderError::Rejected(_)) && self.marked_for_deletion(&arn).await
                {
                    return Ok(());
                }
                Err(err)
            }
        }
    }

    /// Whether the secret is gone or scheduled for deletion (a failed look says no).
    async fn marked_for_deletion(&self, id: &str) -> bool {
        match self
            .api
            .client
            .describe_secret()
            .secret_id(id)
            .send()
            .await
            .recorded(&self.api.calls, "DescribeSecret")
        {
            Ok(d) => d.deleted_date().is_some(),
            Err(e) => is_not_found(&e),
        }
    }

    pub(super) async fn exists(&self, remote: &RemoteRef) -> Result<bool, ProviderError> {
        match self
            .api
            .client
            .get_secret_value()
            .secret_id(self.id(&remote.remote_key))
            .send()
            .await
            .recorded(&self.api.calls, "GetSecretValue")
        {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(classify(e, "secretsmanager:GetSecretValue")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metadata_as_eso_parses_it() {
        assert_eq!(parse_metadata(None).unwrap(), PushMetadata::default());
        let m = parse_metadata(Some(&json!({
            "apiVersion": "kubernetes.external-secrets.io/v1alpha1",
            "kind": "PushSecretMetadata",
            "spec": {"secretPushFormat": "string", "kmsKeyId": "k", "description": "d", "tags": {"team": "a"}}
        })))
        .unwrap();
        assert!(m.as_string);
        assert_eq!(m.kms_key_id, "k");
        assert_eq!(m.tags["team"], "a");
        let err = parse_metadata(Some(&json!({"spec": {}}))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to parse push secret metadata: failed to parse kubernetes.external-secrets.io/v1alpha1 PushSecretMetadata: unexpected apiVersion \"\", expected \"kubernetes.external-secrets.io/v1alpha1\""
        );
        let err = parse_metadata(Some(&json!({
            "apiVersion": "kubernetes.external-secrets.io/v1alpha1",
            "kind": "PushSecretMetadata",
            "spec": {"tags": {"managed-by": "me"}}
        })))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "error parsing tags in metadata: Cannot specify a 'managed-by' tag"
        );
        let err = parse_metadata(Some(&json!({
            "apiVersion": "kubernetes.external-secrets.io/v1alpha1",
            "kind": "PushSecretMetadata",
            "spec": {"secretPushFormat": "yaml"}
        })))
        .unwrap_err();
        assert_eq!(err.to_string(), "invalid secret push format: yaml");
    }

    #[test]
    fn properties_nest_like_sjson() {
        let v = SecretBytes::from("x");
        let got = set_property(b"", "a.b", &v).unwrap().unwrap();
        assert_eq!(got.expose(), br#"{"a":{"b":"x"}}"#);
        assert!(set_property(got.expose(), "a.b", &v).unwrap().is_none());
        let got = set_property(br#"{"q":1}"#, "p", &v).unwrap().unwrap();
        assert_eq!(got.expose(), br#"{"p":"x","q":1}"#);
        let err = set_property(b"not-json-canary", "p", &v).unwrap_err();
        assert!(!err.to_string().contains("canary"), "{err}");
    }

    #[test]
    fn delete_options_are_checked_as_eso() {
        assert_eq!(
            DeleteOptions::from_spec(Some(&json!({"recoveryWindowInDays": 3}))).unwrap_err(),
            "invalid DeleteSecretInput: RecoveryWindowInDays must be between 7 and 30 days"
        );
        assert!(
            DeleteOptions::from_spec(Some(
                &json!({"recoveryWindowInDays": 7, "forceDeleteWithoutRecovery": true})
            ))
            .unwrap_err()
            .contains("conflicts")
        );
        assert!(
            DeleteOptions::from_spec(Some(&json!({"forceDeleteWithoutRecovery": true})))
                .unwrap()
                .force
        );
    }

    #[test]
    fn tokens_look_like_uuids() {
        let t = new_token();
        assert_eq!(t.len(), 36);
        assert_ne!(t, new_token());
    }
}
