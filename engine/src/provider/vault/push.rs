//! PushSecret on Vault and OpenBao KV (ESO's `client_push.go` at v2.9.0: `PushSecret`,
//! `DeleteSecret`, and `SecretExists` in `client_get.go`).
//!
//! - The value: one source key's bytes, or the whole Secret as a JSON object of strings. With
//!   no `property` it must be a JSON object and becomes the secret's data; with one, it is set
//!   as a string under that key of the existing data (a missing secret starts empty; an
//!   existing non-string value there is `error converting <property> to string`).
//! - The mark: KV v2 keeps ESO's `custom_metadata` `managed-by: external-secrets`, KV v1 keeps
//!   it inside the data under `custom_metadata` (as ESO: a reader of that secret sees the
//!   key). A secret without it is never overwritten (`secret not managed by external-secrets`)
//!   nor deleted (a silent no-op), on v1 as on v2, as ESO.
//! - Compare before writing: nothing is written when the data already equals what would be
//!   pushed, as ESO.
//!
//! Where esox differs from ESO, on purpose:
//! - One read: the KV v2 data read carries the version and `custom_metadata`, so esox reads
//!   no metadata endpoint (ESO reads it once for the mark and once more for the CAS version).
//! - Every KV v2 write is a check-and-set with the version read (ESO only when the store says
//!   `checkAndSet.required`): a secret someone else changed between the read and the write is
//!   not clobbered. On a mismatch esox reads and plans again once, then reports the conflict.
//! - The metadata (the mark) is written only when esox creates the secret: ESO writes it on
//!   every change, replacing any other `custom_metadata` keys the owner added.
//! - A secret whose latest KV v2 version is deleted but whose metadata remains is still
//!   judged by its mark (ESO sees "no secret" and takes it over).
//! - Deleting a property that is not there writes nothing; deleting a whole KV v2 secret is
//!   one `DELETE <mount>/metadata/<key>` (all versions), where ESO also deletes the data first.

use serde_json::{Map, Value, json};

use super::VaultStore;
use super::http::describe;
use crate::provider::push::{MANAGED_BY_KEY, MANAGED_BY_VALUE};
use crate::provider::{ProviderError, PushOutcome, PushSecretData, Recorded, SourceSecret};
use crate::secret::SecretBytes;

/// Where KV v1 keeps ESO's mark: a key of the data.
const CUSTOM_METADATA: &str = "custom_metadata";

/// What a read of the remote secret found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Existing {
    /// Its data (KV v1: without `custom_metadata`); `None` when there is no live version.
    pub data: Option<Map<String, Value>>,
    /// Whether anything is there: data, or (KV v2) metadata of a deleted latest version.
    pub exists: bool,
    /// Whether it carries ESO's `managed-by: external-secrets`.
    pub managed: bool,
    /// KV v2: the version read (0 for a new secret), for check-and-set.
    pub version: u64,
}

/// What a push does.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// The remote data already is what would be pushed.
    Unchanged,
    /// Write `data`.
    Write {
        /// The secret's new data (without the mark).
        data: Map<String, Value>,
        /// KV v2: write the mark to the metadata first (a new secret).
        mark: bool,
    },
}

/// Decides a push without IO.
pub fn plan_push(
    existing: &Existing,
    value: &SecretBytes,
    property: Option<&str>,
    v1: bool,
) -> Result<Plan, ProviderError> {
    if existing.exists && !existing.managed {
        return Err(ProviderError::NotManaged { key: String::new() });
    }
    let mark = !v1 && !existing.exists;
    match property {
        None => {
            let incoming = match serde_json::from_slice::<Value>(value.expose()) {
                Ok(Value::Object(m)) => m,
                // ESO's messages; neither echoes the value.
                _ if existing.data.is_none() => {
                    return Err(ProviderError::InvalidPush(
                        "error unmarshalling vault secret: invalid JSON format".into(),
                    ));
                }
                _ => {
                    return Err(ProviderError::InvalidPush(
                        "error unmarshalling incoming secret value: invalid JSON format".into(),
                    ));
                }
            };
            if existing.data.as_ref() == Some(&incoming) {
                return Ok(Plan::Unchanged);
            }
            Ok(Plan::Write {
                data: incoming,
                mark,
            })
        }
        Some(p) => {
            let mut data = existing.data.clone().unwrap_or_default();
            let new = String::from_utf8_lossy(value.expose()).into_owned();
            match data.get(p) {
                Some(Value::String(s)) if *s == new => return Ok(Plan::Unchanged),
                Some(Value::String(_)) | None => {}
                Some(_) => {
                    return Err(ProviderError::InvalidPush(format!(
                        "error converting {p} to string"
                    )));
                }
            }
            data.insert(p.to_string(), Value::String(new));
            Ok(Plan::Write { data, mark })
        }
    }
}

/// What a delete does.
#[derive(Debug, Clone, PartialEq)]
pub enum DeletePlan {
    /// Nothing to do: missing, not managed, or the property is not there.
    Nothing,
    /// Rewrite the secret with the property removed.
    Rewrite(Map<String, Value>),
    /// Delete the whole secret.
    Delete,
}

/// Decides a delete without IO, as ESO's `DeleteSecret`: a missing or unmanaged secret is
/// left alone; a property is removed and the rest rewritten, the secret deleted when nothing
/// is left.
pub fn plan_delete(existing: &Existing, property: Option<&str>) -> DeletePlan {
    let Some(data) = &existing.data else {
        return DeletePlan::Nothing;
    };
    if !existing.managed {
        return DeletePlan::Nothing;
    }
    match property {
        None => DeletePlan::Delete,
        Some(p) if !data.contains_key(p) => DeletePlan::Nothing,
        Some(p) => {
            let mut left = data.clone();
            left.remove(p);
            if left.is_empty() {
                DeletePlan::Delete
            } else {
                DeletePlan::Rewrite(left)
            }
        }
    }
}

/// ESO's `SecretExists`: the secret has live data and, with a property, that property (a
/// literal key, else a gjson path) is there and not null.
pub fn exists_in(existing: &Existing, property: Option<&str>) -> bool {
    let Some(data) = &existing.data else {
        return false;
    };
    let Some(p) = property else { return true };
    match data.get(p) {
        Some(Value::Null) => false,
        Some(_) => true,
        None => crate::pipeline::property::find(&Value::Object(data.clone()), p)
            .is_some_and(|v| !v.is_null()),
    }
}

/// Reads what a KV read answered: `body` is the reply (`None` on a 404 without data).
pub fn existing_from(body: Option<&Value>, v1: bool) -> Existing {
    let Some(body) = body else {
        return Existing::default();
    };
    let outer = body.get("data");
    if v1 {
        let Some(Value::Object(map)) = outer else {
            return Existing::default();
        };
        let mut data = map.clone();
        let managed = marked(data.remove(CUSTOM_METADATA).as_ref());
        return Existing {
            data: Some(data),
            exists: true,
            managed,
            version: 0,
        };
    }
    let Some(outer) = outer.filter(|d| !d.is_null()) else {
        return Existing::default();
    };
    let meta = outer.get("metadata");
    let data = match outer.get("data") {
        Some(Value::Object(m)) => Some(m.clone()),
        _ => None,
    };
    Existing {
        exists: data.is_some() || meta.is_some_and(|m| m.is_object()),
        managed: marked(meta.and_then(|m| m.get(CUSTOM_METADATA))),
        version: meta
            .and_then(|m| m.get("version"))
            .and_then(|v| v.as_u64())
            .unwrap_or(0),
        data,
    }
}

fn marked(custom: Option<&Value>) -> bool {
    custom
        .and_then(|c| c.get(MANAGED_BY_KEY))
        .and_then(|v| v.as_str())
        == Some(MANAGED_BY_VALUE)
}

/// Whether Vault refused a write because its check-and-set version was stale.
fn cas_mismatch(e: &ProviderError) -> bool {
    matches!(e, ProviderError::InvalidConfig(m) if m.contains("check-and-set"))
}

impl VaultStore {
    /// One write (PUT/POST/DELETE), counted under `call_name`.
    async fn write(
        &self,
        method: &'static str,
        path: &str,
        body: Option<&Value>,
        call_name: &str,
    ) -> Result<(), ProviderError> {
        self.with_token(|lease| async move {
            self.http
                .call(
                    method,
                    path,
                    &[],
                    lease.as_deref(),
                    self.namespace.as_deref(),
                    body,
                )
                .await
                .and_then(|r| super::check(r, method, path))
        })
        .await
        .recorded(&self.calls, call_name)
        .map(|_| ())
    }

    /// Reads the remote secret for a push, delete or exists check.
    async fn existing(&self, key: &str) -> Result<Existing, ProviderError> {
        let path = self.paths.data(key);
        let body = self
            .read("GET", &path, &[], "ReadSecretData")
            .await
            .map_err(|e| super::prefixed(e, "cannot read secret data from Vault: "))?;
        Ok(existing_from(body.as_ref(), self.paths.v1))
    }

    /// Writes `data` (with the mark on KV v1; with check-and-set on KV v2).
    async fn write_data(
        &self,
        key: &str,
        data: Map<String, Value>,
        version: u64,
    ) -> Result<(), ProviderError> {
        let path = self.paths.data(key);
        let body = if self.paths.v1 {
            let mut data = data;
            data.insert(
                CUSTOM_METADATA.into(),
                json!({ MANAGED_BY_KEY: MANAGED_BY_VALUE }),
            );
            Value::Object(data)
        } else {
            json!({"data": data, "options": {"cas": version}})
        };
        let method = if self.paths.v1 { "PUT" } else { "POST" };
        self.write(method, &path, Some(&body), "WriteSecretData")
            .await
    }

    pub(super) async fn push(
        &self,
        secret: &SourceSecret,
        data: &PushSecretData,
    ) -> Result<PushOutcome, ProviderError> {
        let value = data.value(secret)?;
        let key = data.remote_key();
        let not_managed = |e: ProviderError| match e {
            ProviderError::NotManaged { .. } => ProviderError::NotManaged {
                key: key.to_string(),
            },
            other => other,
        };
        let mut tries = 0;
        loop {
            let existing = self.existing(key).await?;
            let (new, mark) = match plan_push(&existing, &value, data.property(), self.paths.v1)
                .map_err(not_managed)?
            {
                Plan::Unchanged => return Ok(PushOutcome::Unchanged),
                Plan::Write { data, mark } => (data, mark),
            };
            if mark {
                // Before the data, as ESO: the secret is never there without its mark.
                let path = self
                    .paths
                    .metadata(key)
                    .map_err(ProviderError::InvalidConfig)?;
                self.write(
                    "PUT",
                    &path,
                    Some(&json!({ CUSTOM_METADATA: { MANAGED_BY_KEY: MANAGED_BY_VALUE } })),
                    "WriteSecretData",
                )
                .await
                .map_err(|e| super::prefixed(e, "failed to write secret metadata: "))?;
            }
            match self.write_data(key, new, existing.version).await {
                Ok(()) => return Ok(PushOutcome::Written),
                Err(e) if cas_mismatch(&e) && tries == 0 => {
                    tracing::info!(
                        remote = %key,
                        "the remote secret changed while esox wrote it (check-and-set); reading it again"
                    );
                    tries += 1;
                }
                Err(e) if cas_mismatch(&e) => {
                    return Err(ProviderError::Unavailable(format!(
                        "{}: the secret was changed by another writer while esox wrote it, twice (check-and-set version {} did not match); will try again",
                        describe("POST", &self.paths.data(key)),
                        existing.version
                    )));
                }
                Err(e) => return Err(super::prefixed(e, "failed to write secret data: ")),
            }
        }
    }

    pub(super) async fn delete_pushed(&self, data: &PushSecretData) -> Result<(), ProviderError> {
        let key = data.remote_key();
        let existing = self.existing(key).await?;
        if existing.data.is_some() && !existing.managed {
            tracing::info!(remote = %key, "not deleting a secret esox does not manage");
        }
        match plan_delete(&existing, data.property()) {
            DeletePlan::Nothing => Ok(()),
            DeletePlan::Rewrite(left) => self.write_data(key, left, existing.version).await,
            DeletePlan::Delete => {
                // KV v2: the metadata endpoint removes every version and the metadata.
                let path = if self.paths.v1 {
                    self.paths.data(key)
                } else {
                    self.paths
                        .metadata(key)
                        .map_err(ProviderError::InvalidConfig)?
                };
                self.write("DELETE", &path, None, "DeleteSecret")
                    .await
                    .map_err(|e| super::prefixed(e, &format!("could not delete secret {key}: ")))
            }
        }
    }

    pub(super) async fn exists(&self, data: &PushSecretData) -> Result<bool, ProviderError> {
        let existing = self.existing(data.remote_key()).await?;
        Ok(exists_in(&existing, data.property()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn managed(data: Value, version: u64) -> Existing {
        Existing {
            data: Some(map(data)),
            exists: true,
            managed: true,
            version,
        }
    }

    fn write(data: Value, mark: bool) -> Plan {
        Plan::Write {
            data: map(data),
            mark,
        }
    }

    /// A case: name, what is there, the value, the property, KV v1, the plan or error.
    type Case = (
        &'static str,
        Existing,
        SecretBytes,
        Option<&'static str>,
        bool,
        Result<Plan, String>,
    );

    /// ESO's `client_push_test.go` cases, by name.
    #[test]
    fn pushes_are_planned_as_eso_plans_them() {
        let none = Existing::default();
        let v = |s: &str| SecretBytes::from(s);
        let cases: Vec<Case> = vec![
            (
                "SetSecretKV2",
                none.clone(),
                v(r#"{"a":"b"}"#),
                None,
                false,
                Ok(write(json!({"a": "b"}), true)),
            ),
            (
                "SetSecretKV1",
                none.clone(),
                v(r#"{"a":"b"}"#),
                None,
                true,
                Ok(write(json!({"a": "b"}), false)),
            ),
            (
                "SetSecretEqualsPushSecretV2",
                managed(json!({"a": "b"}), 3),
                v(r#"{"a":"b"}"#),
                None,
                false,
                Ok(Plan::Unchanged),
            ),
            (
                "SetSecretEqualsPushSecretV1",
                managed(json!({"a": "b"}), 0),
                v(r#"{"a":"b"}"#),
                None,
                true,
                Ok(Plan::Unchanged),
            ),
            (
                "WholeSecretKV2",
                managed(json!({"a": "b"}), 3),
                v(r#"{"a":"c","d":"e"}"#),
                None,
                false,
                Ok(write(json!({"a": "c", "d": "e"}), false)),
            ),
            (
                "PushSecretPropertyKV2",
                none.clone(),
                v("x"),
                Some("p"),
                false,
                Ok(write(json!({"p": "x"}), true)),
            ),
            (
                "PushSecretUpdatePropertyKV2",
                managed(json!({"p": "old", "q": "y"}), 2),
                v("x"),
                Some("p"),
                false,
                Ok(write(json!({"p": "x", "q": "y"}), false)),
            ),
            (
                "PushSecretPropertyNoUpdateKV1",
                managed(json!({"p": "x"}), 0),
                v("x"),
                Some("p"),
                true,
                Ok(Plan::Unchanged),
            ),
            (
                "SetSecretNotManagedByESOV2",
                Existing {
                    managed: false,
                    ..managed(json!({"a": "b"}), 1)
                },
                v(r#"{"a":"b"}"#),
                None,
                false,
                Err("secret not managed by external-secrets".into()),
            ),
            (
                "SetSecretNotManagedByESOV1",
                Existing {
                    managed: false,
                    ..managed(json!({"a": "b"}), 0)
                },
                v("x"),
                Some("a"),
                true,
                Err("secret not managed by external-secrets".into()),
            ),
            (
                "deleted latest version, unmanaged",
                Existing {
                    data: None,
                    exists: true,
                    managed: false,
                    version: 4,
                },
                v(r#"{"a":"b"}"#),
                None,
                false,
                Err("secret not managed by external-secrets".into()),
            ),
            (
                "deleted latest version, managed",
                Existing {
                    data: None,
                    exists: true,
                    managed: true,
                    version: 4,
                },
                v(r#"{"a":"b"}"#),
                None,
                false,
                Ok(write(json!({"a": "b"}), false)),
            ),
            (
                "non-string property",
                managed(json!({"p": {"n": 1}}), 1),
                v("x"),
                Some("p"),
                false,
                Err("error converting p to string".into()),
            ),
            (
                "InvalidJSONDoesNotLeakSecretDataKV2 (new)",
                none.clone(),
                v("canary-secret"),
                None,
                false,
                Err("error unmarshalling vault secret: invalid JSON format".into()),
            ),
            (
                "InvalidJSONDoesNotLeakSecretDataKV1 (existing)",
                managed(json!({"a": "b"}), 0),
                v("canary-secret"),
                None,
                true,
                Err("error unmarshalling incoming secret value: invalid JSON format".into()),
            ),
            (
                "a number is not the string pushed",
                managed(json!({"a": 1}), 1),
                v(r#"{"a":"1"}"#),
                None,
                false,
                Ok(write(json!({"a": "1"}), false)),
            ),
        ];
        for (name, existing, value, property, v1, want) in cases {
            let got = plan_push(&existing, &value, property, v1).map_err(|e| e.to_string());
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn deletes_are_planned_as_eso_plans_them() {
        let cases = [
            (
                "DeleteSecretNoOp",
                Existing::default(),
                None,
                DeletePlan::Nothing,
            ),
            (
                "DeleteSecretNotManaged",
                Existing {
                    managed: false,
                    ..managed(json!({"a": "b"}), 1)
                },
                None,
                DeletePlan::Nothing,
            ),
            (
                "DeleteSecretUpdateProperty",
                managed(json!({"a": "b", "c": "d"}), 1),
                Some("a"),
                DeletePlan::Rewrite(map(json!({"c": "d"}))),
            ),
            (
                "DeleteSecretIfNoOtherProperties",
                managed(json!({"a": "b"}), 1),
                Some("a"),
                DeletePlan::Delete,
            ),
            (
                "property not there: no write",
                managed(json!({"a": "b"}), 1),
                Some("z"),
                DeletePlan::Nothing,
            ),
            (
                "whole",
                managed(json!({"a": "b"}), 1),
                None,
                DeletePlan::Delete,
            ),
        ];
        for (name, existing, property, want) in cases {
            assert_eq!(plan_delete(&existing, property), want, "{name}");
        }
    }

    #[test]
    fn reads_are_understood_on_both_versions() {
        let v2 = json!({"data": {
            "data": {"a": "b"},
            "metadata": {"version": 7, "custom_metadata": {"managed-by": "external-secrets"}}
        }});
        assert_eq!(
            existing_from(Some(&v2), false),
            managed(json!({"a": "b"}), 7)
        );
        let deleted =
            json!({"data": {"data": null, "metadata": {"version": 2, "custom_metadata": null}}});
        assert_eq!(
            existing_from(Some(&deleted), false),
            Existing {
                data: None,
                exists: true,
                managed: false,
                version: 2
            }
        );
        let v1 = json!({"data": {"a": "b", "custom_metadata": {"managed-by": "external-secrets"}}});
        assert_eq!(
            existing_from(Some(&v1), true),
            managed(json!({"a": "b"}), 0)
        );
        let unmarked = json!({"data": {"a": "b"}});
        assert!(!existing_from(Some(&unmarked), true).managed);
        assert_eq!(existing_from(None, false), Existing::default());
    }

    #[test]
    fn exists_as_eso_answers_it() {
        let e = managed(json!({"a": "b", "n": null, "j": {"k": "v"}}), 1);
        assert!(exists_in(&e, None));
        assert!(exists_in(&e, Some("a")));
        assert!(!exists_in(&e, Some("n")));
        assert!(!exists_in(&e, Some("z")));
        assert!(exists_in(&e, Some("j.k")));
        assert!(!exists_in(&Existing::default(), None));
    }
}
