//! PushSecret on AWS Parameter Store, as ESO (`providers/v1/aws/parameterstore/
//! parameterstore.go` `PushSecret`, `DeleteSecret`, `SecretExists` at v2.9.0):
//!
//! - A parameter esox creates carries the tag `managed-by=external-secrets`; one without it is
//!   never overwritten (`secret not managed by external-secrets`) and never deleted (a silent
//!   no-op, as ESO).
//! - No `secretKey`: the whole Secret as a JSON object, its values base64 (Go's `[]byte`) or,
//!   with `encodeAsDecoded: true`, as strings, as ESO.
//! - `PushSecretMetadata` (`apiVersion: kubernetes.external-secrets.io/v1alpha1`): `secretType`
//!   (`String`, the default, `StringList`, `SecureString`), `kmsKeyID` (SecureString only,
//!   default `alias/aws/ssm`), `tier` (`{type: Advanced, policies: […]}`; Standard is the
//!   default), `encodeAsDecoded`, `tags` (`managed-by` refused), `description` (default
//!   `secret 'managed-by:external-secrets'`). Field names match case-insensitively and
//!   unknown fields are refused, as Go's `encoding/json` with `DisallowUnknownFields`.
//!
//! - `property` is ignored, as ESO ignores it: the value is the whole parameter, and a delete
//!   removes the whole (managed) parameter. A manifest written for ESO keeps its meaning: a
//!   consumer of the parameter reads the raw value, never a JSON object esox made up.
//!
//! Where esox differs from ESO, on purpose:
//! - Nothing is written when the parameter already holds the value with the type asked for;
//!   tags are kept in step even when the value is unchanged (ESO updates them only with a new
//!   value, and never when the type alone changes).
//! - A value that is not UTF-8 is refused with a clear error (ESO's Go string conversion
//!   sends it mangled).

use std::collections::BTreeMap;

use aws_sdk_ssm::types::{ParameterTier, ParameterType, ResourceTypeForTagging, Tag};
use base64::Engine as _;

use super::ParameterStore;
use crate::provider::aws::errors::{classify, is_not_found};
use crate::provider::push::{MANAGED_BY_KEY, MANAGED_BY_VALUE};
use crate::provider::{ProviderError, PushOutcome, PushSecretData, Recorded, SourceSecret};
use crate::secret::SecretBytes;

const METADATA_API_VERSION: &str = "kubernetes.external-secrets.io/v1alpha1";
const METADATA_KIND: &str = "PushSecretMetadata";
const DEFAULT_KMS_KEY: &str = "alias/aws/ssm";
const DEFAULT_DESCRIPTION: &str = "secret 'managed-by:external-secrets'";

/// `spec.data[].metadata` for Parameter Store, with ESO's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct PushMetadata {
    /// `secretType`: `String`, `StringList` or `SecureString`.
    pub secret_type: ParameterType,
    /// `kmsKeyID`, used for a SecureString.
    pub kms_key_id: String,
    /// `tier.type`: only `Advanced` is sent, as ESO.
    pub advanced: bool,
    /// `tier.policies`, raw JSON, sent with `Advanced`.
    pub policies: Option<String>,
    /// `encodeAsDecoded`: a whole Secret's values as strings rather than base64.
    pub encode_as_decoded: bool,
    /// Tags, `managed-by` included.
    pub tags: BTreeMap<String, String>,
    /// `description`.
    pub description: String,
}

impl Default for PushMetadata {
    fn default() -> Self {
        PushMetadata {
            secret_type: ParameterType::String,
            kms_key_id: DEFAULT_KMS_KEY.into(),
            advanced: false,
            policies: None,
            encode_as_decoded: false,
            tags: BTreeMap::from([(MANAGED_BY_KEY.to_string(), MANAGED_BY_VALUE.to_string())]),
            description: DEFAULT_DESCRIPTION.into(),
        }
    }
}

fn parse_error(why: impl std::fmt::Display) -> ProviderError {
    ProviderError::InvalidPush(format!(
        "failed to parse metadata: failed to parse {METADATA_API_VERSION} {METADATA_KIND}: {why}"
    ))
}

/// A field of a JSON object by its name, case-insensitively (Go's `encoding/json`).
fn field<'a>(
    o: &'a serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Option<&'a serde_json::Value> {
    o.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Parses ESO's `PushSecretMetadata` for Parameter Store, with ESO's messages.
pub fn parse_metadata(raw: Option<&serde_json::Value>) -> Result<PushMetadata, ProviderError> {
    let mut out = PushMetadata::default();
    let Some(raw) = raw.filter(|r| !r.is_null()) else {
        return Ok(out);
    };
    let obj = raw
        .as_object()
        .ok_or_else(|| parse_error("expected an object"))?;
    for k in obj.keys() {
        if !["apiversion", "kind", "spec"].contains(&k.to_ascii_lowercase().as_str()) {
            return Err(parse_error(format!("json: unknown field {k:?}")));
        }
    }
    let text = |name: &str| {
        field(obj, name)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let api_version = text("apiVersion");
    if api_version != METADATA_API_VERSION {
        return Err(ProviderError::InvalidPush(format!(
            "failed to parse metadata: unexpected apiVersion {api_version:?}, expected {METADATA_API_VERSION:?}"
        )));
    }
    let kind = text("kind");
    if kind != METADATA_KIND {
        return Err(ProviderError::InvalidPush(format!(
            "failed to parse metadata: unexpected kind {kind:?}, expected {METADATA_KIND:?}"
        )));
    }
    let Some(spec) = field(obj, "spec").filter(|s| !s.is_null()) else {
        return Ok(out);
    };
    let spec = spec
        .as_object()
        .ok_or_else(|| parse_error("spec: expected an object"))?;
    for (k, v) in spec {
        let string = || {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| parse_error(format!("spec.{k}: expected a string")))
        };
        match k.to_ascii_lowercase().as_str() {
            "secrettype" => {
                out.secret_type = match string()?.as_str() {
                    "" | "String" => ParameterType::String,
                    "StringList" => ParameterType::StringList,
                    "SecureString" => ParameterType::SecureString,
                    other => {
                        return Err(ProviderError::InvalidPush(format!(
                            "invalid secretType {:?}: expected String, StringList or SecureString",
                            crate::api::abbreviate(other, 40)
                        )));
                    }
                }
            }
            "kmskeyid" => {
                let key = string()?;
                if !key.is_empty() {
                    out.kms_key_id = key;
                }
            }
            "description" => {
                let d = string()?;
                if !d.is_empty() {
                    out.description = d;
                }
            }
            "encodeasdecoded" => {
                out.encode_as_decoded = v
                    .as_bool()
                    .ok_or_else(|| parse_error("spec.encodeAsDecoded: expected a boolean"))?;
            }
            "tier" => {
                let tier = v
                    .as_object()
                    .ok_or_else(|| parse_error("spec.tier: expected an object"))?;
                for (tk, tv) in tier {
                    match tk.to_ascii_lowercase().as_str() {
                        "type" => {
                            out.advanced = match tv.as_str().unwrap_or_default() {
                                "" | "Standard" | "Intelligent-Tiering" => false,
                                "Advanced" => true,
                                other => {
                                    return Err(ProviderError::InvalidPush(format!(
                                        "invalid tier.type {:?}: expected Standard, Advanced or Intelligent-Tiering",
                                        crate::api::abbreviate(other, 40)
                                    )));
                                }
                            }
                        }
                        "policies" => {
                            out.policies = (!tv.is_null()).then(|| tv.to_string());
                        }
                        _ => return Err(parse_error(format!("json: unknown field {tk:?}"))),
                    }
                }
            }
            "tags" => {
                let tags: BTreeMap<String, String> = serde_json::from_value(v.clone())
                    .map_err(|e| parse_error(format!("spec.tags: {e}")))?;
                if tags.contains_key(MANAGED_BY_KEY) {
                    return Err(ProviderError::InvalidPush(
                        "error parsing tags in metadata: Cannot specify a 'managed-by' tag".into(),
                    ));
                }
                out.tags.extend(tags);
            }
            _ => return Err(parse_error(format!("json: unknown field {k:?}"))),
        }
    }
    Ok(out)
}

/// The value ESO pushes: one key's bytes, or the whole Secret as JSON (base64 values unless
/// `encodeAsDecoded`), as text.
pub fn value(
    secret: &SourceSecret,
    data: &PushSecretData,
    meta: &PushMetadata,
) -> Result<String, ProviderError> {
    let bytes = match (&data.secret_key, meta.encode_as_decoded) {
        (Some(_), _) | (None, true) => data.value(secret)?,
        (None, false) => {
            let map: BTreeMap<&str, String> = secret
                .data
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str(),
                        base64::engine::general_purpose::STANDARD.encode(v.expose()),
                    )
                })
                .collect();
            SecretBytes::new(serde_json::to_vec(&map).unwrap_or_default())
        }
    };
    String::from_utf8(bytes.expose().to_vec()).map_err(|_| {
        ProviderError::InvalidPush(
            "the value to push is not valid UTF-8: Parameter Store holds text".into(),
        )
    })
}

/// What a push finds remotely.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Existing {
    /// The parameter's (decrypted) value and type.
    pub value: String,
    /// Its type.
    pub type_: Option<ParameterType>,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
}

/// What a push does to an existing parameter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// The value to write (`None`: the parameter already holds it, with the type asked for).
    pub put: Option<String>,
    /// Tag keys to remove.
    pub untag: Vec<String>,
    /// Tags to add or change (empty: none).
    pub tag: BTreeMap<String, String>,
}

/// Decides a push onto an existing parameter without IO.
pub fn plan_existing(
    existing: &Existing,
    desired: &str,
    meta: &PushMetadata,
) -> Result<Plan, ProviderError> {
    if existing.tags.get(MANAGED_BY_KEY).map(String::as_str) != Some(MANAGED_BY_VALUE) {
        return Err(ProviderError::NotManaged { key: String::new() });
    }
    let same_type = existing.type_.as_ref() == Some(&meta.secret_type);
    let put = (desired != existing.value || !same_type).then(|| desired.to_string());
    let untag = existing
        .tags
        .keys()
        .filter(|k| !meta.tags.contains_key(*k))
        .cloned()
        .collect();
    let tag = if meta
        .tags
        .iter()
        .any(|(k, v)| existing.tags.get(k) != Some(v))
    {
        meta.tags.clone()
    } else {
        BTreeMap::new()
    };
    Ok(Plan { put, untag, tag })
}

/// An error message with `value` taken out, should the service have echoed it.
fn scrubbed(e: ProviderError, value: &str) -> ProviderError {
    if value.len() < 4 {
        return e;
    }
    let clean = |m: String| m.replace(value, "<redacted>");
    match e {
        ProviderError::AccessDenied(m) => ProviderError::AccessDenied(clean(m)),
        ProviderError::Throttled(m) => ProviderError::Throttled(clean(m)),
        ProviderError::Unavailable(m) => ProviderError::Unavailable(clean(m)),
        ProviderError::Rejected(m) => ProviderError::Rejected(clean(m)),
        other => other,
    }
}

impl ParameterStore {
    /// `GetParameter` with decryption: the parameter's value and type, `None` when missing.
    async fn read_parameter(
        &self,
        name: &str,
    ) -> Result<Option<(String, Option<ParameterType>)>, ProviderError> {
        match self
            .client
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
            .recorded(&self.calls, "GetParameter")
        {
            Ok(out) => Ok(out.parameter().map(|p| {
                (
                    p.value().unwrap_or_default().to_string(),
                    p.r#type().cloned(),
                )
            })),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(classify(e, "ssm:GetParameter")),
        }
    }

    async fn tags(&self, name: &str) -> Result<BTreeMap<String, String>, ProviderError> {
        let out = self
            .client
            .list_tags_for_resource()
            .resource_type(ResourceTypeForTagging::Parameter)
            .resource_id(name)
            .send()
            .await
            .recorded(&self.calls, "ListTagsForResource")
            .map_err(|e| classify(e, "ssm:ListTagsForResource"))?;
        Ok(out
            .tag_list()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect())
    }

    /// `PutParameter`: a new parameter with its tags, or an overwrite (AWS takes no tags
    /// then).
    async fn put(
        &self,
        name: &str,
        value: &str,
        meta: &PushMetadata,
        create: bool,
    ) -> Result<(), ProviderError> {
        let mut call = self
            .client
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(meta.secret_type.clone())
            .overwrite(!create)
            .description(&meta.description);
        if meta.secret_type == ParameterType::SecureString {
            call = call.key_id(&meta.kms_key_id);
        }
        if meta.advanced {
            call = call
                .tier(ParameterTier::Advanced)
                .set_policies(meta.policies.clone());
        }
        if create {
            let tags: Result<Vec<Tag>, _> = meta
                .tags
                .iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect();
            call = call.set_tags(Some(
                tags.map_err(|e| ProviderError::InvalidPush(format!("tags: {e}")))?,
            ));
        }
        call.send()
            .await
            .recorded(&self.calls, "PutParameter")
            .map_err(|e| scrubbed(classify(e, "ssm:PutParameter"), value))
            .map(|_| ())
    }

    pub(super) async fn push(
        &self,
        secret: &SourceSecret,
        data: &PushSecretData,
    ) -> Result<PushOutcome, ProviderError> {
        let meta = parse_metadata(data.metadata.as_ref())?;
        let desired = value(secret, data, &meta)?;
        let key = data.remote_key();
        let name = self.id(key);
        let Some((current, type_)) = self.read_parameter(&name).await? else {
            self.put(&name, &desired, &meta, true).await?;
            return Ok(PushOutcome::Written);
        };
        let existing = Existing {
            value: current,
            type_,
            tags: self.tags(&name).await?,
        };
        let plan = plan_existing(&existing, &desired, &meta).map_err(|e| match e {
            ProviderError::NotManaged { .. } => ProviderError::NotManaged {
                key: key.to_string(),
            },
            other => other,
        })?;
        let mut outcome = PushOutcome::Unchanged;
        if let Some(v) = &plan.put {
            self.put(&name, v, &meta, false).await?;
            outcome = PushOutcome::Written;
        }
        if !plan.untag.is_empty() {
            self.client
                .remove_tags_from_resource()
                .resource_type(ResourceTypeForTagging::Parameter)
                .resource_id(&name)
                .set_tag_keys(Some(plan.untag.clone()))
                .send()
                .await
                .recorded(&self.calls, "RemoveTagsFromResource")
                .map_err(|e| classify(e, "ssm:RemoveTagsFromResource"))?;
            outcome = PushOutcome::Written;
        }
        if !plan.tag.is_empty() {
            let tags: Result<Vec<Tag>, _> = plan
                .tag
                .iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect();
            self.client
                .add_tags_to_resource()
                .resource_type(ResourceTypeForTagging::Parameter)
                .resource_id(&name)
                .set_tags(Some(
                    tags.map_err(|e| ProviderError::InvalidPush(format!("tags: {e}")))?,
                ))
                .send()
                .await
                .recorded(&self.calls, "AddTagsToResource")
                .map_err(|e| classify(e, "ssm:AddTagsToResource"))?;
            outcome = PushOutcome::Written;
        }
        Ok(outcome)
    }

    pub(super) async fn delete_pushed(&self, data: &PushSecretData) -> Result<(), ProviderError> {
        let name = self.id(data.remote_key());
        if self.read_parameter(&name).await?.is_none() {
            return Ok(());
        }
        let tags = self.tags(&name).await?;
        if tags.get(MANAGED_BY_KEY).map(String::as_str) != Some(MANAGED_BY_VALUE) {
            tracing::info!(remote = %data.remote_key(), "not deleting a parameter esox does not manage");
            return Ok(());
        }
        match self
            .client
            .delete_parameter()
            .name(&name)
            .send()
            .await
            .recorded(&self.calls, "DeleteParameter")
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(classify(e, "ssm:DeleteParameter")),
        }
    }

    pub(super) async fn exists(&self, data: &PushSecretData) -> Result<bool, ProviderError> {
        Ok(self
            .read_parameter(&self.id(data.remote_key()))
            .await?
            .is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn envelope(spec: serde_json::Value) -> serde_json::Value {
        json!({"apiVersion": METADATA_API_VERSION, "kind": METADATA_KIND, "spec": spec})
    }

    /// ESO's `TestConstructMetadataWithDefaults` and the parse errors.
    #[test]
    fn metadata_as_eso_parses_it() {
        let d = parse_metadata(None).unwrap();
        assert_eq!(d.secret_type, ParameterType::String);
        assert_eq!(d.kms_key_id, "alias/aws/ssm");
        assert_eq!(d.description, "secret 'managed-by:external-secrets'");
        assert_eq!(d.tags["managed-by"], "external-secrets");
        let m = parse_metadata(Some(&envelope(json!({
            "secretType": "SecureString", "kmsKeyId": "k", "description": "d",
            "tier": {"type": "Advanced", "policies": [{"Type": "Expiration"}]},
            "encodeAsDecoded": true, "tags": {"team": "a"}
        }))))
        .unwrap();
        assert_eq!(m.secret_type, ParameterType::SecureString);
        assert_eq!(m.kms_key_id, "k");
        assert!(m.advanced && m.encode_as_decoded);
        assert_eq!(m.policies.as_deref(), Some(r#"[{"Type":"Expiration"}]"#));
        assert_eq!(m.tags.len(), 2);
        let err = |v| parse_metadata(Some(&v)).unwrap_err().to_string();
        assert_eq!(
            err(json!({"spec": {}})),
            "failed to parse metadata: unexpected apiVersion \"\", expected \"kubernetes.external-secrets.io/v1alpha1\""
        );
        assert_eq!(
            err(envelope(json!({"tags": {"managed-by": "me"}}))),
            "error parsing tags in metadata: Cannot specify a 'managed-by' tag"
        );
        assert!(err(envelope(json!({"nope": 1}))).ends_with("json: unknown field \"nope\""));
        assert!(err(envelope(json!({"secretType": "Blob"}))).starts_with("invalid secretType"));
    }

    #[test]
    fn a_whole_secret_is_json_with_base64_values_unless_decoded() {
        let secret = SourceSecret {
            data: [
                ("b".to_string(), SecretBytes::from("2")),
                ("a".to_string(), SecretBytes::from("<1>")),
            ]
            .into(),
            ..Default::default()
        };
        let whole = PushSecretData::default();
        let mut meta = PushMetadata::default();
        assert_eq!(
            value(&secret, &whole, &meta).unwrap(),
            r#"{"a":"PDE+","b":"Mg=="}"#
        );
        meta.encode_as_decoded = true;
        assert_eq!(
            value(&secret, &whole, &meta).unwrap(),
            r#"{"a":"<1>","b":"2"}"#
        );
        let bad = SourceSecret {
            data: [("k".to_string(), SecretBytes::new(vec![0xff, 0xfe]))].into(),
            ..Default::default()
        };
        let one = PushSecretData {
            secret_key: Some("k".into()),
            ..Default::default()
        };
        assert!(value(&bad, &one, &meta).is_err());
    }

    #[test]
    fn pushes_onto_an_existing_parameter_are_planned() {
        let meta = PushMetadata::default();
        let managed = Existing {
            value: "v1".into(),
            type_: Some(ParameterType::String),
            tags: meta.tags.clone(),
        };
        // Same value, same type, same tags: nothing.
        assert_eq!(
            plan_existing(&managed, "v1", &meta).unwrap(),
            Plan::default()
        );
        // A new value.
        assert_eq!(
            plan_existing(&managed, "v2", &meta).unwrap().put,
            Some("v2".into())
        );
        // The type alone changes: written again.
        let secure = PushMetadata {
            secret_type: ParameterType::SecureString,
            ..PushMetadata::default()
        };
        assert_eq!(
            plan_existing(&managed, "v1", &secure).unwrap().put,
            Some("v1".into())
        );
        // Tags are kept in step with an unchanged value.
        let mut tagged = meta.clone();
        tagged.tags.insert("team".into(), "a".into());
        let mut stale = managed.clone();
        stale.tags.insert("old".into(), "x".into());
        let plan = plan_existing(&stale, "v1", &tagged).unwrap();
        assert_eq!(plan.put, None);
        assert_eq!(plan.untag, ["old"]);
        assert_eq!(plan.tag, tagged.tags);
        // Unmanaged: refused.
        let unmanaged = Existing {
            tags: BTreeMap::new(),
            ..managed.clone()
        };
        assert_eq!(
            plan_existing(&unmanaged, "v1", &meta)
                .unwrap_err()
                .to_string(),
            "secret not managed by external-secrets"
        );
        // The value is the whole parameter (ESO ignores `property`): a JSON document is
        // replaced, never merged into.
        let doc = Existing {
            value: r#"{"a":"1"}"#.into(),
            ..managed.clone()
        };
        assert_eq!(
            plan_existing(&doc, "2", &meta).unwrap().put,
            Some("2".into())
        );
    }

    #[test]
    fn echoed_values_are_scrubbed() {
        // SSM answers a bad value with a ValidationException that may quote it.
        for e in [
            ProviderError::Rejected("Value 'hunter22' at 'value' failed".into()),
            ProviderError::Unavailable("Value 'hunter22' at 'value' failed".into()),
        ] {
            let e = scrubbed(e, "hunter22");
            assert!(!e.to_string().contains("hunter22"), "{e}");
        }
    }
}
