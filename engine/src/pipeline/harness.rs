//! Manifest → plan, for the fuzzer and its regression corpus: everything the controller does
//! with a user's manifests that needs no IO, in the controller's order.
//!
//! [`manifest_to_plan`] reads arbitrary bytes as manifests (JSON as the apiserver sends it,
//! or YAML as users write it): an ExternalSecret, optionally a SecretStore or
//! ClusterSecretStore (its Fake provider stands in for the remote data) and optionally the
//! target Secret as it exists. It then runs ESO's admission rules, `refreshInterval`
//! parsing, the refresh decisions, [`super::collect`] (keys, properties, decoding, rewrites,
//! with a renamer that keeps names) and [`crate::controller::target::plan`], and checks what
//! a user must be able to rely on whatever they wrote:
//!
//! - nothing panics, loops or recurses without bound (the fuzzer finds those);
//! - every message is short enough for a status and names what is wrong without repeating a
//!   secret value;
//! - a plan that writes a Secret writes one the apiserver accepts (valid keys, at most 1 MiB).
//!
//! The fuzz target is `engine/fuzz` (`cargo +nightly fuzz run manifest_plan`); its seeds and
//! every input it ever found are replayed by a unit test below, so `cargo test` keeps them
//! fixed.

use std::collections::BTreeMap;
use std::future::Future;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use serde_json::Value;

use super::{DataSource, KeyRenamer, RenameError, Source, SourceError, collect};
use crate::api::validate::{self, StoreScope};
use crate::api::{ExternalSecret, SecretStoreSpec, duration};
use crate::controller::refresh::{self, RefreshState};
use crate::controller::target::{self, Current, MAX_SECRET_SIZE, SecretPlan};
use crate::provider::fake::FakeProvider;
use crate::provider::{FindQuery, GetRequest, Provider};
use crate::secret::{SecretBytes, SecretMap};
use crate::template;

/// The longest message any step may produce: a status condition, an Event note (the
/// recorder cuts those at 1 KiB) and a log line all carry it.
pub const MAX_MESSAGE: usize = 16 * 1024;

/// What one input did, for the replay test to show and check.
#[derive(Debug, Default)]
pub struct Report {
    /// Whether an ExternalSecret was found and decoded.
    pub external_secret: bool,
    /// ESO's admission messages, the `refreshInterval` error, the pipeline's or the plan's
    /// refusal: what would reach the status.
    pub messages: Vec<String>,
    /// The plan for the collected data ([`SecretPlan::action`]), when the pipeline succeeded.
    pub plan: Option<&'static str>,
}

/// Runs `input` through everything the controller does without IO; panics when an
/// invariant above does not hold.
pub fn manifest_to_plan(input: &[u8]) -> Report {
    let docs = documents(input);
    let run = run(&docs);
    check_messages(&run, |value| {
        self::run(&with_value_replaced(&docs, value)).report
    });
    run.report
}

/// One run's report, with what its messages must not repeat and what they may name.
struct Run {
    report: Report,
    /// The remote values (the Fake store's).
    values: Vec<Vec<u8>>,
    /// The manifests' own strings, without the remote values.
    allowed: String,
}

fn run(docs: &[Value]) -> Run {
    let mut report = Report::default();
    let docs = docs.to_vec();
    let mut es: Option<ExternalSecret> = None;
    let mut store: Option<(String, bool, SecretStoreSpec)> = None;
    let mut current: Option<Secret> = None;
    for doc in docs {
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
        match kind {
            "ExternalSecret" => es = serde_json::from_value(doc).ok(),
            "SecretStore" | "ClusterSecretStore" => {
                let name = doc
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                if let Some(spec) = doc
                    .get("spec")
                    .and_then(|s| serde_json::from_value(s.clone()).ok())
                {
                    store = Some((name, kind == "ClusterSecretStore", spec));
                }
            }
            "Secret" => current = serde_json::from_value(doc).ok(),
            _ => {}
        }
    }

    let mut values: Vec<Vec<u8>> = Vec::new();
    // What a message may name: the manifests without the remote values.
    let mut allowed = String::new();
    let provider = store.as_ref().map(|(name, cluster, spec)| {
        let scope = if *cluster {
            StoreScope::Cluster
        } else {
            StoreScope::Namespaced("default")
        };
        if let Some(msg) = validate::store(name, scope, spec) {
            report.messages.push(msg);
        }
        let fake = spec.provider.fake.clone().unwrap_or_default();
        values.extend(fake.data.iter().map(|d| d.value.as_bytes().to_vec()));
        values.extend(
            fake.data
                .iter()
                .flat_map(|d| d.value_map.values())
                .map(|v| v.as_bytes().to_vec()),
        );
        let mut named = spec.clone();
        if let Some(f) = named.provider.fake.as_mut() {
            for d in &mut f.data {
                d.value.clear();
                d.value_map.values_mut().for_each(String::clear);
            }
        }
        allowed.push_str(name);
        raw_strings(
            &serde_json::to_value(&named).unwrap_or_default(),
            &mut allowed,
        );
        FakeProvider::new(&fake)
    });

    let Some(mut es) = es else {
        return Run {
            report,
            values,
            allowed,
        };
    };
    report.external_secret = true;
    if es.metadata.name.is_none() {
        es.metadata.name = Some("fuzz".into());
    }
    es.metadata
        .namespace
        .get_or_insert_with(|| "default".into());
    raw_strings(&serde_json::to_value(&es).unwrap_or_default(), &mut allowed);

    let invalid = validate::external_secret(&es.spec);
    report.messages.extend(invalid);
    let interval = match es.spec.refresh_interval.as_deref() {
        None | Some("") => Some(Duration::ZERO),
        Some(s) => match duration::parse(s) {
            Ok(d) => {
                assert!(d <= duration::MAX, "{s:?} parsed past Go's limit");
                // Printed back (printer columns, messages) without overflowing.
                let printed = duration::format(d);
                assert_eq!(duration::parse(&printed).ok(), Some(d), "{s:?} → {printed}");
                Some(d)
            }
            Err(e) => {
                report.messages.push(e.to_string());
                None
            }
        },
    };
    if let Some(interval) = interval {
        refresh_decisions(&es, interval, current.as_ref());
    }

    if let Some(provider) = provider {
        let source = Fake(provider);
        match ready(collect(&es.spec, &source, &KeepNames)) {
            Err(e) => report.messages.push(e.to_string()),
            Ok(data) => {
                let output = template::Output {
                    data,
                    ..Default::default()
                };
                let existing = current.as_ref().map(Current::read);
                let plan = target::plan(&es, existing, Some(&output));
                check_plan(&plan);
                report.plan = Some(plan.action());
                if let SecretPlan::Refuse(e) = &plan {
                    report.messages.push(e.to_string());
                }
                let empty = target::plan(&es, existing, None);
                check_plan(&empty);
                target::secret_is_valid(existing, es.spec.target.creation_policy);
                target::cleanup(&es, current.as_ref());
            }
        }
    }
    Run {
        report,
        values,
        allowed,
    }
}

/// The documents of `input`: JSON (one object or a list of them, as the apiserver and
/// `kubectl get -o json` give them), else YAML documents.
fn documents(input: &[u8]) -> Vec<Value> {
    match serde_json::from_slice::<Value>(input) {
        Ok(Value::Array(items)) => items,
        Ok(Value::Object(o)) => match o.get("items") {
            Some(Value::Array(items)) => items.clone(),
            _ => vec![Value::Object(o)],
        },
        Ok(_) => Vec::new(),
        Err(_) => std::str::from_utf8(input)
            .ok()
            .and_then(|text| crate::offline::documents::<Value>(text).ok())
            .unwrap_or_default(),
    }
}

/// The refresh rules over the status the manifest carries, at a few instants (now, the
/// extremes a timestamp holds): they decide and requeue within a timer's range.
fn refresh_decisions(es: &ExternalSecret, interval: Duration, current: Option<&Secret>) {
    let status = es.status.as_ref();
    let renew_at = current
        .and_then(|s| s.metadata.annotations.as_ref())
        .and_then(|a| a.get(refresh::RENEW_AT_ANNOTATION))
        .and_then(|t| t.parse().ok());
    let last = status.and_then(|s| s.refresh_time.as_ref()).map(|t| t.0);
    let phase = refresh::phase(&serde_json::to_string(&es.spec.data).unwrap_or_default());
    for now in [Timestamp::now(), Timestamp::MIN, Timestamp::MAX] {
        let state = RefreshState {
            policy: es.spec.refresh_policy.unwrap_or_default(),
            interval,
            last_refresh: last,
            synced_version: status.and_then(|s| s.synced_resource_version.as_deref()),
            current_version: "1-fuzz",
            renew_at,
            phase,
        };
        refresh::should_refresh(&state, now);
        if let Some(wait) = refresh::next_refresh(&state, now) {
            assert!(wait <= refresh::MAX_WAIT, "requeue after {wait:?}");
        }
        if let Some(last) = last
            && let Some(due) = refresh::due_at(last, interval, phase)
        {
            assert!(due >= last, "due {due} before the last refresh {last}");
        }
    }
}

/// A plan that writes writes what the apiserver accepts.
fn check_plan(plan: &SecretPlan) {
    let data = match plan {
        SecretPlan::Create(s) | SecretPlan::Replace(s) => s.data.clone().unwrap_or_default(),
        SecretPlan::Apply { patch, .. } => patch
            .get("data")
            .and_then(|d| serde_json::from_value(d.clone()).ok())
            .unwrap_or_default(),
        _ => return,
    };
    assert!(
        super::keys::validate(data.keys()).is_ok(),
        "a plan writes invalid keys"
    );
    let size: usize = data.iter().map(|(k, v)| k.len() + v.0.len()).sum();
    assert!(size <= MAX_SECRET_SIZE, "a plan writes {size} bytes");
}

/// Messages are bounded and hold no secret value (one the manifest does not itself spell
/// out elsewhere: a fuzzer may well name a key after a value). A value a message contains may
/// still be esox's own words (a fuzzer also makes values such as `"plicate secretKey found: "`):
/// `rerun` runs the same manifests with that value replaced, and only a message that loses it
/// then was repeating it.
fn check_messages(run: &Run, rerun: impl Fn(&str) -> Report) {
    for msg in &run.report.messages {
        assert!(msg.len() <= MAX_MESSAGE, "a message of {} bytes", msg.len());
        for v in &run.values {
            let Ok(v) = std::str::from_utf8(v) else {
                continue;
            };
            if v.len() >= 12 && !run.allowed.contains(v) && msg.contains(v) {
                let again = rerun(v);
                assert!(
                    again.messages.iter().any(|m| m.contains(v)),
                    "a message repeats a secret value: {msg}"
                );
            }
        }
    }
}

/// `docs` with every Fake store value equal to `value` replaced by another as many characters
/// long that shares none of its characters.
fn with_value_replaced(docs: &[Value], value: &str) -> Vec<Value> {
    let other: String = value
        .chars()
        .map(|c| {
            if c == '\u{2603}' {
                '\u{2602}'
            } else {
                '\u{2603}'
            }
        })
        .collect();
    let mut docs = docs.to_vec();
    let replace = |v: &mut Value| {
        if v.as_str() == Some(value) {
            *v = Value::String(other.clone());
        }
    };
    for doc in &mut docs {
        let Some(data) = doc
            .pointer_mut("/spec/provider/fake/data")
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for entry in data {
            if let Some(v) = entry.get_mut("value") {
                replace(v);
            }
            if let Some(map) = entry.get_mut("valueMap").and_then(Value::as_object_mut) {
                map.values_mut().for_each(replace);
            }
        }
    }
    docs
}

/// Every string of `v` (keys and values, unescaped), one per line.
fn raw_strings(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => {
            out.push('\n');
            out.push_str(s);
        }
        Value::Array(items) => items.iter().for_each(|i| raw_strings(i, out)),
        Value::Object(map) => {
            for (k, v) in map {
                out.push('\n');
                out.push_str(k);
                raw_strings(v, out);
            }
        }
        _ => {}
    }
}

/// The remote data: the store's Fake provider.
struct Fake(FakeProvider);

#[async_trait]
impl DataSource for Fake {
    async fn get(
        &self,
        _: Source<'_>,
        req: &GetRequest,
    ) -> Result<crate::provider::Fetched, SourceError> {
        Ok(self.0.get(req).await?)
    }

    async fn find(
        &self,
        _: Source<'_>,
        q: &FindQuery,
    ) -> Result<BTreeMap<String, SecretBytes>, SourceError> {
        Ok(self.0.find(q).await?)
    }

    async fn generate(&self, _: &crate::api::GeneratorRef) -> Result<SecretMap, SourceError> {
        Ok([(
            "generated".to_string(),
            SecretBytes::from("value".to_string()),
        )]
        .into())
    }
}

/// `rewrite.transform` without the template engine: every key keeps its name (the engine
/// itself has its own fuzz target, `plugins/gotemplate/fuzz`).
struct KeepNames;

#[async_trait]
impl KeyRenamer for KeepNames {
    async fn rename_keys(&self, _: &str, keys: Vec<String>) -> Result<Vec<String>, RenameError> {
        Ok(keys)
    }
}

/// Runs a future that does no IO (every source here answers at once) to completion.
fn ready<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1_000 {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
    }
    panic!("the pipeline waited on something without IO to wait for");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The leak check tells a value a message repeats from esox's own words that a value
    /// happens to spell.
    #[test]
    fn a_repeated_value_is_caught_and_a_value_spelling_esox_words_is_not() {
        let run = |message: &str| Run {
            report: Report {
                messages: vec![message.to_string()],
                ..Default::default()
            },
            values: vec![b"hunter2hunter2".to_vec()],
            allowed: String::new(),
        };
        let leak = std::panic::catch_unwind(|| {
            check_messages(&run("bad value hunter2hunter2"), |_| Report {
                messages: vec!["bad value \u{2603}".into()],
                ..Default::default()
            })
        });
        assert!(leak.is_err(), "a repeated value is a leak");
        check_messages(&run("static text hunter2hunter2 here"), |_| Report {
            messages: vec!["static text hunter2hunter2 here".into()],
            ..Default::default()
        });
    }

    /// The fuzz target's corpus: hand-made hostile manifests and whatever the fuzzer found.
    fn corpus() -> Vec<(String, Vec<u8>)> {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/manifest_plan");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&p).unwrap())
            })
            .collect()
    }

    /// Every corpus file runs through the fuzz target's function without a panic and with
    /// every invariant holding: what the fuzzer found once stays fixed.
    #[test]
    fn corpus_replays() {
        let corpus = corpus();
        assert!(corpus.len() >= 20, "{} corpus files", corpus.len());
        for (name, input) in &corpus {
            let run = std::panic::catch_unwind(|| manifest_to_plan(input));
            match run {
                Ok(report) => eprintln!(
                    "{name}: {:?} {:?}",
                    report.plan,
                    report
                        .messages
                        .iter()
                        .map(|m| crate::api::abbreviate(m, 160))
                        .collect::<Vec<_>>()
                ),
                Err(_) => panic!("corpus file {name} panicked"),
            }
        }
    }

    fn run(name: &str) -> Report {
        let (_, input) = corpus()
            .into_iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no corpus file {name}"));
        manifest_to_plan(&input)
    }

    fn said(r: &Report, what: &str) -> bool {
        r.messages.iter().any(|m| m.contains(what))
    }

    /// The seeds say what they are about, in the words a user reads on the status.
    #[test]
    fn seeds_get_specific_messages() {
        let r = run("seed-refresh-overflow.yaml");
        assert!(
            said(
                &r,
                "time: invalid duration \"9999999999h\": longer than 2562047h47m16.854775807s"
            ),
            "{r:?}"
        );
        let r = run("seed-refresh-negative.yaml");
        assert!(said(&r, "negative duration"), "{r:?}");
        let r = run("seed-property-not-json.yaml");
        assert!(said(&r, "the secret is not valid JSON"), "{r:?}");
        let r = run("seed-deep-json-value.json");
        assert!(said(&r, "recursion limit exceeded"), "{r:?}");
        let r = run("seed-bad-rewrite-regexp.yaml");
        assert!(said(&r, "invalid rewrite regexp"), "{r:?}");
        let r = run("seed-bad-find-regexp.yaml");
        assert!(said(&r, "invalid find.name.regexp"), "{r:?}");
        let r = run("seed-invalid-keys.yaml");
        assert!(said(&r, "invalid secret keys"), "{r:?}");
        let r = run("seed-duplicate-keys.yaml");
        assert!(said(&r, "duplicate secretKey found: same"), "{r:?}");
        let r = run("seed-healthy.yaml");
        assert!(r.messages.is_empty(), "{r:?}");
        assert_eq!(r.plan, Some("create"));
    }

    /// The largest hostile cases are built here rather than stored (the corpus stays small).
    #[test]
    fn generated_hostile_manifests() {
        let store = |value: &str| {
            serde_json::json!({
                "kind": "SecretStore", "metadata": {"name": "s"},
                "spec": {"provider": {"fake": {"data": [{"key": "k", "value": value}]}}}
            })
        };
        let es = |data: Value| {
            serde_json::json!({
                "kind": "ExternalSecret", "metadata": {"name": "es"},
                "spec": {"secretStoreRef": {"name": "s"}, "data": data}
            })
        };
        // A 10 MB value is refused before any write, with its size.
        let big = "v".repeat(10 << 20);
        let input = serde_json::to_vec(&[
            store(&big),
            es(serde_json::json!([{"secretKey": "a", "remoteRef": {"key": "k"}}])),
        ])
        .unwrap();
        let r = manifest_to_plan(&input);
        assert_eq!(r.plan, Some("refuse"));
        assert!(said(&r, "would hold 10485761 bytes of data"), "{r:?}");
        // 2000 entries.
        let data: Vec<Value> = (0..2000)
            .map(|i| serde_json::json!({"secretKey": format!("k{i}"), "remoteRef": {"key": "k"}}))
            .collect();
        let input = serde_json::to_vec(&[store("v"), es(Value::Array(data))]).unwrap();
        assert_eq!(manifest_to_plan(&input).plan, Some("create"));
        // A 10k-level JSON value read with a property; a 100k-part property path.
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let path = vec!["a"; 100_000].join(".");
        let input = serde_json::to_vec(&[
            store(&deep),
            es(serde_json::json!([
                {"secretKey": "a", "remoteRef": {"key": "k", "property": path}}
            ])),
        ])
        .unwrap();
        let r = manifest_to_plan(&input);
        assert!(said(&r, "recursion limit exceeded"), "{r:?}");
    }
}
