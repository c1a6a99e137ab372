//! Admission rules for PushSecret and ClusterPushSecret.
//!
//! ESO has no webhook for these kinds (v2.9.0: only ExternalSecret, SecretStore and
//! ClusterSecretStore validators; `dataTo` has three CEL rules in the CRD, which esox's CRD
//! carries too). So these rules are the failures ESO's reconciler would reach anyway, caught
//! at admission, in the words ESO's reconciler uses: `refStore Name must be provided`, the
//! `dataTo[i]: …` store-reference and regexp errors, the duplicate remote keys, an unparsable
//! `refreshInterval`. Nothing ESO would push is refused: a `storeRef` with both a name and a
//! label selector is admitted (ESO ignores the selector, or for `secretStoreRefs` the name).
//! The reconciler applies the same rules, so a PushSecret admitted without the webhook gets
//! the same message on its status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::{MAX_DETAIL, MAX_LISTED};
use crate::api::push_secret::{
    ClusterPushSecretSpec, PushSecretDataTo, PushSecretSpec, PushSecretStoreRef,
};

/// Every rule a PushSecret's spec breaks (empty when valid).
pub fn push_secret(spec: &PushSecretSpec) -> Vec<String> {
    spec_rules(spec, "spec")
}

/// Every rule a ClusterPushSecret's spec breaks: its `pushSecretSpec` as a PushSecret's, its
/// `refreshTime` and namespace selectors.
pub fn cluster_push_secret(spec: &ClusterPushSecretSpec) -> Vec<String> {
    let mut errs = Vec::new();
    if let Some(i) = spec.refresh_interval.as_deref().filter(|i| !i.is_empty())
        && let Err(e) = crate::api::duration::parse(i)
    {
        errs.push(format!("spec.refreshTime: {e}"));
    }
    for (i, s) in spec.namespace_selectors.iter().enumerate() {
        errs.extend(label_selector(&format!("spec.namespaceSelectors[{i}]"), s));
    }
    errs.extend(spec_rules(&spec.push_secret_spec, "spec.pushSecretSpec"));
    errs
}

fn spec_rules(spec: &PushSecretSpec, at: &str) -> Vec<String> {
    let mut errs = Vec::new();
    // ESO decodes the field as a Go `metav1.Duration`: what Go cannot parse never reconciles.
    if let Some(i) = spec.refresh_interval.as_deref().filter(|i| !i.is_empty())
        && let Err(e) = crate::api::duration::parse(i)
    {
        errs.push(format!("{at}.refreshInterval: {e}"));
    }
    for (i, r) in spec.secret_store_refs.iter().enumerate() {
        match &r.label_selector {
            Some(sel) => errs.extend(label_selector(
                &format!("{at}.secretStoreRefs[{i}].labelSelector"),
                sel,
            )),
            None if r.name.as_deref().unwrap_or_default().is_empty() => {
                errs.push("refStore Name must be provided".into());
            }
            None => {}
        }
    }
    if let Some(secret) = &spec.selector.secret {
        let named = secret.name.as_deref().is_some_and(|n| !n.is_empty());
        match &secret.selector {
            Some(sel) if !named => errs.extend(label_selector(
                &format!("{at}.selector.secret.selector"),
                sel,
            )),
            None if !named => errs.push("no secret selector provided".into()),
            _ => {}
        }
    } else if spec.selector.generator_ref.is_none() {
        errs.push("no secret selector provided".into());
    }
    for (i, d) in spec.data.iter().enumerate() {
        if d.match_.remote_ref.remote_key.is_empty() {
            errs.push(format!(
                "{at}.data[{i}].match.remoteRef.remoteKey must not be empty"
            ));
        }
    }
    if let Some(e) = duplicate_remote_key(spec.data.iter().map(|d| {
        (
            d.match_.remote_ref.remote_key.as_str(),
            d.match_.remote_ref.property.as_deref().unwrap_or_default(),
            d.match_.secret_key.as_deref().unwrap_or_default(),
        )
    })) {
        errs.push(e);
    }
    if let Err(e) = data_to_store_refs(&spec.data_to, &spec.secret_store_refs) {
        errs.push(e);
    }
    for (i, d) in spec.data_to.iter().enumerate() {
        errs.extend(data_to(i, d, at));
    }
    let deep =
        |v: &Option<serde_json::Value>| v.as_ref().is_some_and(crate::api::free_form::too_deep);
    let too_deep = |field: String| {
        format!(
            "{field} is nested more than {} levels deep",
            crate::api::free_form::MAX_DEPTH
        )
    };
    for (i, d) in spec.data.iter().enumerate() {
        if deep(&d.metadata) {
            errs.push(too_deep(format!("{at}.data[{i}].metadata")));
        }
    }
    for (i, d) in spec.data_to.iter().enumerate() {
        if deep(&d.metadata) {
            errs.push(too_deep(format!("{at}.dataTo[{i}].metadata")));
        }
    }
    if let Some(t) = &spec.template {
        let plugins = t.plugins.iter().enumerate();
        for (i, p) in plugins {
            if deep(&p.config) {
                errs.push(too_deep(format!("{at}.template.plugins[{i}].config")));
            }
        }
    }
    let mut said = std::collections::HashSet::new();
    errs.retain(|e| said.insert(e.clone()));
    errs.truncate(MAX_LISTED);
    errs
}

/// ESO's `validateDataToStoreRefs`: every `dataTo[].storeRef` has a name that is one of
/// `secretStoreRefs`' names (of the same kind), or a label selector. ESO's messages.
pub fn data_to_store_refs(
    data_to: &[PushSecretDataTo],
    refs: &[PushSecretStoreRef],
) -> Result<(), String> {
    for (i, d) in data_to.iter().enumerate() {
        let Some(r) = &d.store_ref else {
            return Err(format!("dataTo[{i}]: storeRef is required"));
        };
        let name = r.name.as_deref().unwrap_or_default();
        if name.is_empty() && r.label_selector.is_none() {
            return Err(format!(
                "dataTo[{i}]: storeRef must have name or labelSelector"
            ));
        }
        let kind = r.kind.unwrap_or_default();
        let listed = refs
            .iter()
            .any(|s| s.name.as_deref() == Some(name) && s.kind.unwrap_or_default() == kind);
        if !name.is_empty() && !listed {
            return Err(format!(
                "dataTo[{i}]: storeRef {name:?} not found in secretStoreRefs"
            ));
        }
    }
    Ok(())
}

/// The static rules of one `dataTo` entry: ESO's CEL rules (with their messages) and its
/// regexps.
fn data_to(i: usize, d: &PushSecretDataTo, at: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if let Some(sel) = d.store_ref.as_ref().and_then(|r| r.label_selector.as_ref()) {
        errs.extend(label_selector(
            &format!("{at}.dataTo[{i}].storeRef.labelSelector"),
            sel,
        ));
    }
    if d.remote_key.as_deref().is_some_and(|k| !k.is_empty()) && !d.rewrite.is_empty() {
        errs.push(format!("dataTo[{i}]: remoteKey and rewrite are mutually exclusive: rewrite is only supported in per-key mode (without remoteKey)"));
    }
    if let Some(p) = d
        .match_
        .as_ref()
        .and_then(|m| m.regexp.as_deref())
        .filter(|p| !p.is_empty())
        && let Err(e) = compile(p)
    {
        errs.push(format!("dataTo[{i}]: match failed: {e}"));
    }
    for (j, r) in d.rewrite.iter().enumerate() {
        match (&r.regexp, &r.transform) {
            (Some(re), None) => {
                if let Err(e) = regex::Regex::new(&re.source) {
                    errs.push(format!(
                        "dataTo[{i}]: rewrite failed: rewrite[{j}]: invalid regexp {:?}: {}",
                        super::super::abbreviate(&re.source, 256),
                        super::super::abbreviate(&e.to_string(), MAX_DETAIL)
                    ));
                }
            }
            (None, Some(_)) => {}
            _ => errs.push(format!(
                "{at}.dataTo[{i}].rewrite[{j}]: exactly one of regexp or transform must be set"
            )),
        }
    }
    errs
}

/// ESO's `validateRemoteKeyUniqueness` over `(remoteKey, property, source key)`: the first
/// remote location written twice, in ESO's words.
pub fn duplicate_remote_key<'a>(
    entries: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
) -> Option<String> {
    let mut seen: std::collections::HashMap<(&str, &str), &str> = Default::default();
    for (remote, property, source) in entries {
        if let Some(first) = seen.insert((remote, property), source) {
            return Some(if property.is_empty() {
                format!(
                    "duplicate remote key {remote:?}: source keys {first:?} and {source:?} both map to the same destination"
                )
            } else {
                format!(
                    "duplicate remote key {remote:?} with property {property:?}: source keys {first:?} and {source:?} both map to the same destination"
                )
            });
        }
    }
    None
}

/// A `dataTo[].match.regexp` compiled, or ESO's message (a long pattern and the regex
/// crate's long answers shortened).
pub fn compile(pattern: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(pattern).map_err(|e| {
        format!(
            "failed to compile regexp pattern {:?}: {}",
            super::super::abbreviate(pattern, 256),
            super::super::abbreviate(&e.to_string(), MAX_DETAIL)
        )
    })
}

/// A label selector the apiserver would refuse to list with (apimachinery's checks).
fn label_selector(field: &str, s: &LabelSelector) -> Vec<String> {
    let mut errs = Vec::new();
    for (i, e) in s.match_expressions.iter().flatten().enumerate() {
        let n = e.values.as_ref().map_or(0, Vec::len);
        let bad = match e.operator.as_str() {
            "In" | "NotIn" if n == 0 => {
                Some("for 'in', 'notin' operators, values set can't be empty".to_string())
            }
            "Exists" | "DoesNotExist" if n > 0 => {
                Some("values set must be empty for exists and does not exist".to_string())
            }
            "In" | "NotIn" | "Exists" | "DoesNotExist" => None,
            other => Some(format!(
                "{:?} is not a valid label selector operator",
                super::super::abbreviate(other, 64)
            )),
        };
        if let Some(b) = bad {
            errs.push(format!("{field}.matchExpressions[{i}]: {b}"));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> PushSecretSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn a_valid_push_secret_breaks_no_rule() {
        let s = spec(
            r#"
refreshInterval: 10s
secretStoreRefs: [{name: a}, {labelSelector: {matchLabels: {team: x}}, kind: ClusterSecretStore}]
selector: {secret: {name: src}}
data:
- match: {secretKey: k, remoteRef: {remoteKey: r, property: p}}
- match: {remoteRef: {remoteKey: r, property: q}}
dataTo:
- storeRef: {name: a}
  match: {regexp: '^db-'}
  rewrite: [{regexp: {source: '^db-(.*)', target: 'app/$1'}}, {transform: {template: '{{ .value | upper }}'}}]
- storeRef: {labelSelector: {matchLabels: {team: x}}, kind: ClusterSecretStore}
  remoteKey: bundle
template:
  engineVersion: minijinja
  data: {x: '{{ k }}'}
"#,
        );
        assert_eq!(push_secret(&s), Vec::<String>::new());
    }

    #[test]
    fn push_secret_rules_in_esos_words() {
        let rows: &[(&str, &[&str])] = &[
            (
                "refreshInterval: 1d\nsecretStoreRefs: [{name: a}]\nselector: {secret: {name: s}}",
                &["spec.refreshInterval: time: unknown unit \"d\" in duration \"1d\""],
            ),
            (
                "secretStoreRefs: [{kind: SecretStore}]\nselector: {secret: {name: s}}",
                &["refStore Name must be provided"],
            ),
            (
                "secretStoreRefs: [{name: a}]\nselector: {secret: {}}",
                &["no secret selector provided"],
            ),
            (
                "secretStoreRefs: [{name: a}]\nselector: {secret: {selector: {matchExpressions: [{key: app, operator: Equals, values: [x]}]}}}",
                &[
                    "spec.selector.secret.selector.matchExpressions[0]: \"Equals\" is not a valid label selector operator",
                ],
            ),
            (
                "secretStoreRefs: [{labelSelector: {matchExpressions: [{key: app, operator: In}]}}]\nselector: {secret: {name: s}}",
                &[
                    "spec.secretStoreRefs[0].labelSelector.matchExpressions[0]: for 'in', 'notin' operators, values set can't be empty",
                ],
            ),
            (
                "secretStoreRefs: [{name: a}]\nselector: {secret: {name: s}}\ndata: [{match: {secretKey: k, remoteRef: {remoteKey: ''}}}]",
                &["spec.data[0].match.remoteRef.remoteKey must not be empty"],
            ),
            (
                "secretStoreRefs: [{name: a}]\nselector: {secret: {name: s}}\ndata: [{match: {secretKey: k, remoteRef: {remoteKey: r}}}, {match: {secretKey: l, remoteRef: {remoteKey: r}}}]",
                &[
                    "duplicate remote key \"r\": source keys \"k\" and \"l\" both map to the same destination",
                ],
            ),
            (
                "secretStoreRefs: [{name: a}]\nselector: {secret: {name: s}}\ndataTo: [{storeRef: {name: b}}]",
                &["dataTo[0]: storeRef \"b\" not found in secretStoreRefs"],
            ),
            (
                "secretStoreRefs: [{labelSelector: {matchLabels: {a: b}}}]\nselector: {secret: {name: s}}\ndataTo: [{storeRef: {name: a}}]",
                &["dataTo[0]: storeRef \"a\" not found in secretStoreRefs"],
            ),
            (
                "secretStoreRefs: [{name: a}]\nselector: {secret: {name: s}}\ndataTo: [{storeRef: {kind: SecretStore}}]",
                &["dataTo[0]: storeRef must have name or labelSelector"],
            ),
            (
                "secretStoreRefs: [{name: a}]\nselector: {secret: {name: s}}\ndataTo: [{remoteKey: x}]",
                &["dataTo[0]: storeRef is required"],
            ),
            (
                "secretStoreRefs: [{name: a}]\nselector: {secret: {name: s}}\ndataTo: [{storeRef: {name: a}, match: {regexp: '('}}]",
                &[
                    "dataTo[0]: match failed: failed to compile regexp pattern \"(\": regex parse error:\n    (\n    ^\nerror: unclosed group",
                ],
            ),
            (
                "secretStoreRefs: [{name: a}]\nselector: {secret: {name: s}}\ndataTo: [{storeRef: {name: a}, rewrite: [{regexp: {source: '(', target: ''}}]}]",
                &[
                    "dataTo[0]: rewrite failed: rewrite[0]: invalid regexp \"(\": regex parse error:\n    (\n    ^\nerror: unclosed group",
                ],
            ),
            (
                "secretStoreRefs: [{name: a}]\nselector: {secret: {name: s}}\ndataTo: [{storeRef: {name: a}, remoteKey: x, rewrite: [{transform: {template: t}}]}]",
                &[
                    "dataTo[0]: remoteKey and rewrite are mutually exclusive: rewrite is only supported in per-key mode (without remoteKey)",
                ],
            ),
            (
                "secretStoreRefs: [{name: a}]\nselector: {secret: {name: s}}\ndataTo: [{storeRef: {name: a}, rewrite: [{}]}]",
                &["spec.dataTo[0].rewrite[0]: exactly one of regexp or transform must be set"],
            ),
        ];
        for (yaml, want) in rows {
            assert_eq!(push_secret(&spec(yaml)), *want, "{yaml}");
        }
    }

    #[test]
    fn metadata_nested_too_deep_is_named() {
        let deep = format!("{}1{}", "{a: ".repeat(40), "}".repeat(40));
        let s = spec(&format!(
            "secretStoreRefs: [{{name: a}}]\nselector: {{secret: {{name: s}}}}\ndata: [{{match: {{remoteRef: {{remoteKey: r}}}}, metadata: {deep}}}]\ndataTo: [{{storeRef: {{name: a}}, metadata: {deep}}}]"
        ));
        assert_eq!(
            push_secret(&s),
            [
                "spec.data[0].metadata is nested more than 32 levels deep",
                "spec.dataTo[0].metadata is nested more than 32 levels deep"
            ]
        );
    }

    #[test]
    fn cluster_push_secret_rules_name_the_nested_fields() {
        let s: ClusterPushSecretSpec = serde_yaml::from_str(
            r#"
refreshTime: 5x
namespaceSelectors: [{matchExpressions: [{key: a, operator: Exists, values: [b]}]}]
pushSecretSpec:
  refreshInterval: nope
  secretStoreRefs: [{name: a}]
  selector: {secret: {name: s}}
"#,
        )
        .unwrap();
        assert_eq!(
            cluster_push_secret(&s),
            [
                "spec.refreshTime: time: unknown unit \"x\" in duration \"5x\"",
                "spec.namespaceSelectors[0].matchExpressions[0]: values set must be empty for exists and does not exist",
                "spec.pushSecretSpec.refreshInterval: time: invalid duration \"nope\"",
            ]
        );
    }
}
