//! What a PushSecret pushes to one store: its `data[]` entries and its `dataTo` rules expanded
//! against the source Secret (after the template), with ESO's precedence, checks and words
//! (`pkg/controllers/pushsecret/pushsecret_controller.go`, v2.9.0: `validateDataToStoreRefs`,
//! `filterDataToForStore`, `expandDataTo`, `mergeDataEntries`).
//!
//! - A `dataTo` rule targets the stores its `storeRef` names (name and kind) or whose labels
//!   its `labelSelector` matches; a named `storeRef` must be one of `secretStoreRefs`' names,
//!   and a selector must match at least one resolved store.
//! - Per-key mode (no `remoteKey`): each source key (after `conversionStrategy`) that matches
//!   `match.regexp` becomes one entry, its remote key the key renamed by `rewrite` in order
//!   (regexp, or a Go template run in the Wasm engine: [`crate::pipeline::rewrite::rename`]).
//! - Bundle mode (`remoteKey`): one entry pushing only the matched keys, as one JSON object.
//! - An explicit `data[]` entry wins over `dataTo` for the same source key; two entries
//!   writing one `(remoteKey, property)` are an error, as are two `dataTo` keys renamed to
//!   one remote key.
//!
//! One deliberate difference: ESO lets a whole-Secret `data[]` entry (no `secretKey`) drop
//! every `dataTo` bundle of the store (both have the source key `""`); here a bundle is not
//! "the same key" as anything and stays.
//!
//! Pure: no Kubernetes, no provider; the transform renames go through the injected
//! [`KeyRenamer`], so the table tests below run without Wasm.

use std::collections::{BTreeMap, BTreeSet};

use super::push_secret::{converted, to_provider};
use crate::api::push_secret::{
    PushSecretConversionStrategy, PushSecretData as SpecData, PushSecretDataTo, PushSecretMatch,
    PushSecretRemoteRef,
};
use crate::api::{SecretStoreRef, StoreKind};
use crate::pipeline::KeyRenamer;
use crate::provider::SourceSecret;
use crate::secret::SecretMap;

/// A store a PushSecret pushes to, as the `dataTo` rules see it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreInfo {
    /// `SecretStore` or `ClusterSecretStore`.
    pub kind: StoreKind,
    /// Its name.
    pub name: String,
    /// Its labels (for `storeRef.labelSelector`).
    pub labels: BTreeMap<String, String>,
}

impl StoreInfo {
    /// The store as a reference.
    pub fn store_ref(&self) -> SecretStoreRef {
        SecretStoreRef {
            name: self.name.clone(),
            kind: Some(self.kind),
        }
    }
}

/// One thing to push to a store.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The entry as ESO records it in `status.syncedPushSecrets` (a `dataTo` key becomes an
    /// entry of its own, so `deletionPolicy: Delete` removes it like any other).
    pub data: SpecData,
    /// The Secret the provider is handed for it: the source with the entry's key conversion,
    /// or, for a bundle, only the matched keys.
    pub view: SourceSecret,
}

/// ESO's `validateDataToMatchesResolvedStores`: a `dataTo` label selector that matches none of
/// the stores pushed to is an error, not a silent no-op.
pub fn check_selectors_match(
    data_to: &[PushSecretDataTo],
    stores: &[StoreInfo],
) -> Result<(), String> {
    for (i, d) in data_to.iter().enumerate() {
        let Some(r) = &d.store_ref else { continue };
        let Some(sel) = &r.label_selector else {
            continue;
        };
        if r.name.as_deref().is_some_and(|n| !n.is_empty()) {
            continue;
        }
        let kind = r.kind.unwrap_or_default();
        if !stores
            .iter()
            .any(|s| s.kind == kind && super::resolve::selector_matches(sel, &s.labels))
        {
            return Err(format!(
                "dataTo[{i}]: labelSelector does not match any store in secretStoreRefs"
            ));
        }
    }
    Ok(())
}

/// ESO's `dataToMatchesStore`: whether rule `d` pushes to `store`.
pub fn targets(d: &PushSecretDataTo, store: &StoreInfo) -> bool {
    let Some(r) = &d.store_ref else {
        return false;
    };
    let kind = r.kind.unwrap_or_default();
    if let Some(name) = r.name.as_deref().filter(|n| !n.is_empty()) {
        return name == store.name && kind == store.kind;
    }
    r.label_selector.as_ref().is_some_and(|sel| {
        kind == store.kind && super::resolve::selector_matches(sel, &store.labels)
    })
}

/// What `data[]` and the `dataTo` rules for `store` push from `source`, in order (the `dataTo`
/// entries first, then `data[]`), every key checked: an error (ESO's words, already prefixed
/// as ESO prefixes them under `set secret failed: `) means nothing is pushed to any store.
pub async fn plan(
    data: &[SpecData],
    data_to: &[PushSecretDataTo],
    store: &StoreInfo,
    source: &SourceSecret,
    renamer: &dyn KeyRenamer,
) -> Result<Vec<Entry>, String> {
    let mut expanded: Vec<Entry> = Vec::new();
    // remote key → `dataTo[i]:<source key>` (ESO's `registerRemoteKeys`).
    let mut remote_keys: BTreeMap<String, String> = BTreeMap::new();
    for (i, d) in data_to.iter().enumerate() {
        if !targets(d, store) {
            continue;
        }
        let entries = expand(d, source, renamer)
            .await
            .map_err(|e| format!("failed to expand dataTo: dataTo[{i}]: {e}"))?;
        for (source_key, entry) in entries {
            let remote = entry.data.match_.remote_ref.remote_key.clone();
            if let Some(first) = remote_keys.get(&remote) {
                return Err(format!(
                    "failed to expand dataTo: dataTo[{i}]: duplicate remote key {remote:?} from source key {source_key:?} (conflicts with {first})"
                ));
            }
            remote_keys.insert(remote, format!("dataTo[{i}]:{source_key}"));
            expanded.push(entry);
        }
    }

    // Explicit `data[]` wins for the same (original) source key.
    let explicit_keys: BTreeSet<String> = data
        .iter()
        .filter_map(|d| original_key(d, source))
        .collect();
    expanded.retain(|e| {
        e.data
            .match_
            .secret_key
            .as_ref()
            .is_none_or(|k| !explicit_keys.contains(k))
    });
    for d in data {
        let view = converted(source, d.conversion_strategy.unwrap_or_default());
        if let Some(k) = to_provider(d).secret_key
            && !view.data.contains_key(&k)
        {
            return Err(format!("secret key {k} does not exist"));
        }
        expanded.push(Entry {
            data: d.clone(),
            view,
        });
    }
    unique_remote_keys(&expanded).map_err(|e| format!("failed to merge data entries: {e}"))?;
    Ok(expanded)
}

/// The source key an explicit entry reads, as the source Secret spells it (ESO's
/// `resolveOriginalKey`); `None` for a whole-Secret entry.
fn original_key(d: &SpecData, source: &SourceSecret) -> Option<String> {
    let key = to_provider(d).secret_key?;
    match d.conversion_strategy.unwrap_or_default() {
        PushSecretConversionStrategy::None => Some(key),
        PushSecretConversionStrategy::ReverseUnicode => Some(
            source
                .data
                .keys()
                .find(|k| super::push_secret::reverse_unicode(k) == key)
                .cloned()
                .unwrap_or(key),
        ),
    }
}

/// ESO's `validateRemoteKeyUniqueness`: no two entries write one `(remoteKey, property)`.
fn unique_remote_keys(entries: &[Entry]) -> Result<(), String> {
    let dup = crate::api::validate::push::duplicate_remote_key(entries.iter().map(|e| {
        let r = &e.data.match_.remote_ref;
        (
            r.remote_key.as_str(),
            r.property.as_deref().unwrap_or_default(),
            e.data.match_.secret_key.as_deref().unwrap_or_default(),
        )
    }));
    dup.map_or(Ok(()), Err)
}

/// One rule's entries, each with the (converted) source key it came from (`(bundle)` for a
/// bundle), in key order. Errors are ESO's, without the `dataTo[i]: ` prefix.
async fn expand(
    d: &PushSecretDataTo,
    source: &SourceSecret,
    renamer: &dyn KeyRenamer,
) -> Result<Vec<(String, Entry)>, String> {
    let bundle = d.remote_key.as_deref().filter(|k| !k.is_empty());
    if bundle.is_some() && !d.rewrite.is_empty() {
        return Err("remoteKey and rewrite are mutually exclusive: rewrite is only supported in per-key mode (without remoteKey)".into());
    }
    let strategy = d.conversion_strategy.unwrap_or_default();
    let view = converted(source, strategy);
    // converted key → the key as the source Secret spells it.
    let original: BTreeMap<String, String> = source
        .data
        .keys()
        .map(|k| match strategy {
            PushSecretConversionStrategy::None => (k.clone(), k.clone()),
            PushSecretConversionStrategy::ReverseUnicode => {
                (super::push_secret::reverse_unicode(k), k.clone())
            }
        })
        .collect();
    let pattern = d
        .match_
        .as_ref()
        .and_then(|m| m.regexp.as_deref())
        .filter(|p| !p.is_empty());
    let matched: Vec<String> = match pattern {
        None => view.data.keys().cloned().collect(),
        Some(p) => {
            let re =
                crate::api::validate::push::compile(p).map_err(|e| format!("match failed: {e}"))?;
            view.data
                .keys()
                .filter(|k| re.is_match(k))
                .cloned()
                .collect()
        }
    };
    if matched.is_empty() {
        return Ok(Vec::new());
    }
    let entry = |secret_key: Option<String>, remote_key: String| SpecData {
        match_: PushSecretMatch {
            secret_key,
            remote_ref: PushSecretRemoteRef {
                remote_key,
                property: None,
            },
        },
        metadata: d.metadata.clone(),
        conversion_strategy: None,
    };
    if let Some(remote) = bundle {
        let only: SecretMap = matched
            .iter()
            .filter_map(|k| view.data.get(k).map(|v| (k.clone(), v.clone())))
            .collect();
        return Ok(vec![(
            "(bundle)".into(),
            Entry {
                data: entry(None, remote.to_string()),
                view: SourceSecret {
                    data: only,
                    ..source.clone()
                },
            },
        )]);
    }
    let rewrites: Vec<_> = d
        .rewrite
        .iter()
        .map(|r| r.as_external_secret_rewrite())
        .collect();
    let renamed = crate::pipeline::rewrite::rename(&rewrites, matched.clone(), renamer)
        .await
        .map_err(|e| format!("rewrite failed: {e}"))?;
    let mut out = Vec::with_capacity(matched.len());
    for (key, remote) in matched.into_iter().zip(renamed) {
        if remote.is_empty() {
            return Err(format!("empty remote key produced for source key {key:?}"));
        }
        let secret_key = original.get(&key).cloned().unwrap_or_else(|| key.clone());
        out.push((
            key,
            Entry {
                data: entry(Some(secret_key), remote),
                // The entry names the key as the source spells it: the source unconverted.
                view: source.clone(),
            },
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::push_secret::{PushSecretDataToMatch, PushSecretRewrite, PushSecretStoreRef};
    use crate::api::{RewriteRegexp, RewriteTransform};
    use crate::pipeline::rewrite::tests::Upper;
    use crate::secret::SecretBytes;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    fn source() -> SourceSecret {
        SourceSecret {
            name: "src".into(),
            namespace: "ns".into(),
            type_: "Opaque".into(),
            data: [
                ("db-host", "h"),
                ("db-user", "u"),
                ("api-key", "k"),
                ("some-array_U005b_0_U005d_", "e"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), SecretBytes::from(v)))
            .collect(),
            ..Default::default()
        }
    }

    fn store(name: &str, labels: &[(&str, &str)]) -> StoreInfo {
        StoreInfo {
            kind: StoreKind::SecretStore,
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn named(name: &str) -> Option<PushSecretStoreRef> {
        Some(PushSecretStoreRef {
            name: Some(name.into()),
            ..Default::default()
        })
    }

    fn labelled(k: &str, v: &str) -> Option<PushSecretStoreRef> {
        Some(PushSecretStoreRef {
            label_selector: Some(LabelSelector {
                match_labels: Some([(k.to_string(), v.to_string())].into()),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    fn to(store_ref: Option<PushSecretStoreRef>) -> PushSecretDataTo {
        PushSecretDataTo {
            store_ref,
            ..Default::default()
        }
    }

    fn matching(mut d: PushSecretDataTo, re: &str) -> PushSecretDataTo {
        d.match_ = Some(PushSecretDataToMatch {
            regexp: Some(re.into()),
        });
        d
    }

    fn regexp(mut d: PushSecretDataTo, source: &str, target: &str) -> PushSecretDataTo {
        d.rewrite.push(PushSecretRewrite {
            regexp: Some(RewriteRegexp {
                source: source.into(),
                target: target.into(),
            }),
            transform: None,
        });
        d
    }

    fn upper(mut d: PushSecretDataTo) -> PushSecretDataTo {
        d.rewrite.push(PushSecretRewrite {
            regexp: None,
            transform: Some(RewriteTransform {
                template: "{{ .value | upper }}".into(),
            }),
        });
        d
    }

    fn data(key: Option<&str>, remote: &str, property: Option<&str>) -> SpecData {
        SpecData {
            match_: PushSecretMatch {
                secret_key: key.map(str::to_string),
                remote_ref: PushSecretRemoteRef {
                    remote_key: remote.into(),
                    property: property.map(str::to_string),
                },
            },
            ..Default::default()
        }
    }

    /// `(source key, remote key, pushed keys)` per entry.
    fn summary(entries: &[Entry]) -> Vec<(String, String, Vec<String>)> {
        entries
            .iter()
            .map(|e| {
                (
                    e.data.match_.secret_key.clone().unwrap_or_default(),
                    to_provider(&e.data).remote.status_key(),
                    e.view.data.keys().cloned().collect(),
                )
            })
            .collect()
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[tokio::test]
    async fn data_to_expands_as_eso_does() {
        let all = s(&["api-key", "db-host", "db-user", "some-array_U005b_0_U005d_"]);
        type Row = (
            &'static str,
            Vec<SpecData>,
            Vec<PushSecretDataTo>,
            Result<Vec<(&'static str, &'static str, Vec<String>)>, &'static str>,
        );
        let rows: Vec<Row> = vec![
            (
                "match all: one entry per key, named as the key",
                vec![],
                vec![to(named("a"))],
                Ok(vec![
                    ("api-key", "api-key", all.clone()),
                    ("db-host", "db-host", all.clone()),
                    ("db-user", "db-user", all.clone()),
                    (
                        "some-array_U005b_0_U005d_",
                        "some-array_U005b_0_U005d_",
                        all.clone(),
                    ),
                ]),
            ),
            (
                "regexp match and regexp rewrite",
                vec![],
                vec![regexp(
                    matching(to(named("a")), "^db-"),
                    "^db-(.*)$",
                    "app/db/$1",
                )],
                Ok(vec![
                    ("db-host", "app/db/host", all.clone()),
                    ("db-user", "app/db/user", all.clone()),
                ]),
            ),
            (
                "chained rewrites: regexp then transform",
                vec![],
                vec![upper(regexp(matching(to(named("a")), "^db-"), "-", "_"))],
                Ok(vec![
                    ("db-host", "DB_HOST", all.clone()),
                    ("db-user", "DB_USER", all.clone()),
                ]),
            ),
            (
                "explicit data wins for the same source key",
                vec![data(Some("db-host"), "explicit/host", None)],
                vec![matching(to(named("a")), "^db-")],
                Ok(vec![
                    ("db-user", "db-user", all.clone()),
                    ("db-host", "explicit/host", all.clone()),
                ]),
            ),
            (
                "bundle: the matched keys only, in one remote secret",
                vec![],
                vec![PushSecretDataTo {
                    remote_key: Some("app/db".into()),
                    ..matching(to(named("a")), "^db-")
                }],
                Ok(vec![("", "app/db", s(&["db-host", "db-user"]))]),
            ),
            (
                "bundle and per-key mixed",
                vec![],
                vec![
                    PushSecretDataTo {
                        remote_key: Some("app/db".into()),
                        ..matching(to(named("a")), "^db-")
                    },
                    matching(to(named("a")), "^api-"),
                ],
                Ok(vec![
                    ("", "app/db", s(&["db-host", "db-user"])),
                    ("api-key", "api-key", all.clone()),
                ]),
            ),
            (
                "a whole-Secret data entry keeps the bundle (ESO drops it)",
                vec![data(None, "whole", None)],
                vec![PushSecretDataTo {
                    remote_key: Some("app/db".into()),
                    ..matching(to(named("a")), "^db-")
                }],
                Ok(vec![
                    ("", "app/db", s(&["db-host", "db-user"])),
                    ("", "whole", all.clone()),
                ]),
            ),
            (
                "conversion: keys are matched and renamed converted, pushed as the source spells them",
                vec![],
                vec![PushSecretDataTo {
                    conversion_strategy: Some(PushSecretConversionStrategy::ReverseUnicode),
                    ..matching(to(named("a")), r"\[0\]$")
                }],
                Ok(vec![(
                    "some-array_U005b_0_U005d_",
                    "some-array[0]",
                    all.clone(),
                )]),
            ),
            (
                "a rule for another store adds nothing",
                vec![],
                vec![to(named("b")), to(labelled("team", "b"))],
                Ok(vec![]),
            ),
            (
                "a label selector picks this store",
                vec![],
                vec![matching(to(labelled("team", "a")), "^api-")],
                Ok(vec![("api-key", "api-key", all.clone())]),
            ),
            (
                "a regexp that matches nothing adds nothing",
                vec![],
                vec![matching(to(named("a")), "^nope")],
                Ok(vec![]),
            ),
            (
                "invalid match regexp",
                vec![],
                vec![matching(to(named("a")), "(")],
                Err(
                    "failed to expand dataTo: dataTo[0]: match failed: failed to compile regexp pattern \"(\": regex parse error:\n    (\n    ^\nerror: unclosed group",
                ),
            ),
            (
                "invalid rewrite regexp",
                vec![],
                vec![regexp(to(named("a")), "(", "")],
                Err(
                    "failed to expand dataTo: dataTo[0]: rewrite failed: invalid rewrite regexp \"(\": regex parse error:\n    (\n    ^\nerror: unclosed group",
                ),
            ),
            (
                "a rewrite to nothing",
                vec![],
                vec![regexp(matching(to(named("a")), "^api"), ".*", "")],
                Err(
                    "failed to expand dataTo: dataTo[0]: empty remote key produced for source key \"api-key\"",
                ),
            ),
            (
                "two keys renamed to one remote key",
                vec![],
                vec![regexp(matching(to(named("a")), "^db-"), ".*", "same")],
                Err(
                    "failed to expand dataTo: dataTo[0]: duplicate remote key \"same\" from source key \"db-user\" (conflicts with dataTo[0]:db-host)",
                ),
            ),
            (
                "duplicate remote keys across dataTo rules",
                vec![],
                vec![
                    matching(to(named("a")), "^api-"),
                    matching(to(named("a")), "^api-"),
                ],
                Err(
                    "failed to expand dataTo: dataTo[1]: duplicate remote key \"api-key\" from source key \"api-key\" (conflicts with dataTo[0]:api-key)",
                ),
            ),
            (
                "duplicate remote keys between dataTo and data",
                vec![data(Some("api-key"), "db-host", None)],
                vec![matching(to(named("a")), "^db-host")],
                Err(
                    "failed to merge data entries: duplicate remote key \"db-host\": source keys \"db-host\" and \"api-key\" both map to the same destination",
                ),
            ),
            (
                "remoteKey with rewrite",
                vec![],
                vec![PushSecretDataTo {
                    remote_key: Some("x".into()),
                    ..upper(to(named("a")))
                }],
                Err(
                    "failed to expand dataTo: dataTo[0]: remoteKey and rewrite are mutually exclusive: rewrite is only supported in per-key mode (without remoteKey)",
                ),
            ),
            (
                "explicit data: a missing key",
                vec![data(Some("unexisting"), "x", None)],
                vec![],
                Err("secret key unexisting does not exist"),
            ),
            (
                "explicit data: duplicate remote key and property",
                vec![
                    data(Some("db-host"), "a", Some("p")),
                    data(None, "a", Some("p")),
                ],
                vec![],
                Err(
                    "failed to merge data entries: duplicate remote key \"a\" with property \"p\": source keys \"db-host\" and \"\" both map to the same destination",
                ),
            ),
            (
                "explicit data with ReverseUnicode names the converted key",
                vec![SpecData {
                    conversion_strategy: Some(PushSecretConversionStrategy::ReverseUnicode),
                    ..data(Some("some-array[0]"), "x", None)
                }],
                vec![to(named("a"))],
                Ok(vec![
                    ("api-key", "api-key", all.clone()),
                    ("db-host", "db-host", all.clone()),
                    ("db-user", "db-user", all.clone()),
                    (
                        "some-array[0]",
                        "x",
                        s(&["api-key", "db-host", "db-user", "some-array[0]"]),
                    ),
                ]),
            ),
            (
                "explicit data without the conversion does not find the converted key",
                vec![data(Some("some-array[0]"), "x", None)],
                vec![],
                Err("secret key some-array[0] does not exist"),
            ),
            (
                "explicit data: one remote key, two properties",
                vec![
                    data(Some("db-host"), "a", Some("p")),
                    data(None, "a", Some("q")),
                ],
                vec![],
                Ok(vec![
                    ("db-host", "a/p", all.clone()),
                    ("", "a/q", all.clone()),
                ]),
            ),
        ];
        let a = store("a", &[("team", "a")]);
        for (what, data, data_to, want) in rows {
            let got = plan(&data, &data_to, &a, &source(), &Upper)
                .await
                .map(|e| summary(&e));
            let want = want.map(|v| {
                v.into_iter()
                    .map(|(k, r, keys)| (k.to_string(), r.to_string(), keys))
                    .collect::<Vec<_>>()
            });
            assert_eq!(got, want.map_err(str::to_string), "{what}");
        }
    }

    #[tokio::test]
    async fn data_to_entries_carry_the_rules_metadata_and_no_conversion() {
        let rule = PushSecretDataTo {
            metadata: Some(serde_json::json!({"kind": "PushSecretMetadata"})),
            conversion_strategy: Some(PushSecretConversionStrategy::ReverseUnicode),
            ..matching(to(named("a")), "^api")
        };
        let got = plan(&[], &[rule], &store("a", &[]), &source(), &Upper)
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].data.metadata,
            Some(serde_json::json!({"kind": "PushSecretMetadata"}))
        );
        assert_eq!(got[0].data.conversion_strategy, None);
        // The bundle's view holds the values of the matched keys.
        let bundle = PushSecretDataTo {
            remote_key: Some("b".into()),
            ..matching(to(named("a")), "^db-host$")
        };
        let got = plan(&[], &[bundle], &store("a", &[]), &source(), &Upper)
            .await
            .unwrap();
        assert_eq!(got[0].view.data["db-host"].expose(), b"h");
    }

    #[test]
    fn store_refs_are_checked_as_eso_checks_them() {
        let refs = vec![
            PushSecretStoreRef {
                name: Some("a".into()),
                ..Default::default()
            },
            PushSecretStoreRef {
                label_selector: labelled("team", "x").unwrap().label_selector,
                ..Default::default()
            },
        ];
        let rows: Vec<(Vec<PushSecretDataTo>, Result<(), &str>)> = vec![
            (vec![to(named("a")), to(labelled("team", "a"))], Ok(())),
            (vec![to(None)], Err("dataTo[0]: storeRef is required")),
            (
                vec![to(named("a")), to(Some(PushSecretStoreRef::default()))],
                Err("dataTo[1]: storeRef must have name or labelSelector"),
            ),
            (
                vec![to(named("b"))],
                Err("dataTo[0]: storeRef \"b\" not found in secretStoreRefs"),
            ),
            (
                vec![to(Some(PushSecretStoreRef {
                    name: Some("a".into()),
                    kind: Some(StoreKind::ClusterSecretStore),
                    ..Default::default()
                }))],
                Err("dataTo[0]: storeRef \"a\" not found in secretStoreRefs"),
            ),
        ];
        for (data_to, want) in rows {
            assert_eq!(
                crate::api::validate::push::data_to_store_refs(&data_to, &refs),
                want.map_err(str::to_string),
                "{data_to:?}"
            );
        }
        // A named storeRef when the refs only have a label selector.
        assert!(
            crate::api::validate::push::data_to_store_refs(&[to(named("x"))], &refs[1..]).is_err()
        );
        let stores = [store("a", &[("team", "a")])];
        assert_eq!(
            check_selectors_match(&[to(labelled("team", "a"))], &stores),
            Ok(())
        );
        assert_eq!(
            check_selectors_match(&[to(named("a")), to(labelled("team", "b"))], &stores),
            Err("dataTo[1]: labelSelector does not match any store in secretStoreRefs".into())
        );
    }
}
