//! ESO's admission rules (its validating webhook's `validateExternalSecret` and
//! `validateStore` with the providers' `ValidateStore`), with ESO's messages. The controllers
//! apply them too, so a manifest the webhook would have refused gets the same message on its
//! status even where no webhook is installed.

use super::region::valid_region;
use super::{
    AwsProvider, CreationPolicy, DeletionPolicy, ExternalSecretDataFromRemoteRef,
    ExternalSecretSpec, FakeProvider, SecretStoreSpec,
};

pub mod push;
pub use push::{cluster_push_secret, push_secret};

/// How much of one detail (a regex error) a message repeats.
const MAX_DETAIL: usize = 512;
/// How many problems of one kind a message lists.
const MAX_LISTED: usize = 10;

/// Which store is validated: ESO's rules for credential references depend on it.
#[derive(Debug, Clone, Copy)]
pub enum StoreScope<'a> {
    /// A SecretStore in this namespace.
    Namespaced(&'a str),
    /// A ClusterSecretStore.
    Cluster,
}

/// The first rule store `name` breaks, in ESO's order and words (ESO's webhook stops at the
/// first); `None` when valid. A provider esox does not implement is not judged: ESO would
/// admit a valid one, and the store's status says esox cannot use it.
pub fn store(name: &str, scope: StoreScope<'_>, spec: &SecretStoreSpec) -> Option<String> {
    let mut regex_errs = Vec::new();
    'conditions: for (ci, condition) in spec.conditions.iter().enumerate() {
        for (ri, r) in condition.namespace_regexes.iter().enumerate() {
            if let Err(e) = regex::Regex::new(r) {
                // The regex crate's message repeats the pattern (a manifest can hold a
                // megabyte of one): keep the message, not all of it.
                regex_errs.push(format!(
                    "failed to compile {ri}th namespace regex in {ci}th condition: {}",
                    super::abbreviate(&e.to_string(), MAX_DETAIL)
                ));
                if regex_errs.len() == MAX_LISTED {
                    break 'conditions;
                }
            }
        }
    }
    if !regex_errs.is_empty() {
        return Some(regex_errs.join("\n"));
    }
    let names = spec.provider.names();
    if names.len() != 1 {
        return Some(format!(
            "store error for {name}: secret stores must only have exactly one backend specified, found {}",
            names.len()
        ));
    }
    if let Some(fake) = &spec.provider.fake {
        return fake_store(fake);
    }
    if let Some(aws) = &spec.provider.aws {
        return aws_store(scope, aws);
    }
    if let Some(vault) = &spec.provider.vault {
        return vault_store(scope, vault);
    }
    if let Some(bao) = &spec.provider.open_bao {
        return openbao_store(scope, bao);
    }
    if let Some(k) = &spec.provider.kubernetes {
        return kubernetes_store(scope, k);
    }
    None
}

/// ESO's `kubernetes.ValidateStore` (its messages), plus the rules ESO's CRD and client
/// enforce: one auth method, not both `auth` and `authRef`.
fn kubernetes_store(scope: StoreScope<'_>, k: &super::KubernetesProvider) -> Option<String> {
    const NOT_ALLOWED: &str = "namespace should either be empty or match the namespace of the SecretStore for a namespaced SecretStore";
    // ESO's `ValidateSecretSelector`: a ClusterSecretStore names the namespace, a SecretStore
    // only its own.
    let selector = |s: &super::SecretKeySelector| match scope {
        StoreScope::Cluster if s.namespace.is_none() => Some("cluster scope requires namespace"),
        StoreScope::Namespaced(own) if s.namespace.as_deref().is_some_and(|n| n != own) => {
            Some(NOT_ALLOWED)
        }
        _ => None,
    };
    if let Some(ca) = k.server.as_ref().and_then(|s| s.ca_provider.as_ref()) {
        match scope {
            StoreScope::Cluster if ca.namespace.is_none() => {
                return Some(
                    "CAProvider.namespace must not be empty with ClusterSecretStore".into(),
                );
            }
            StoreScope::Namespaced(_) if ca.namespace.is_some() => {
                return Some("CAProvider.namespace must be empty with SecretStore".into());
            }
            _ => {}
        }
    }
    if let Some(auth) = &k.auth {
        if k.auth_ref.is_some() {
            return Some("authRef and inline auth cannot both be set".into());
        }
        if auth.methods() > 1 {
            return Some(
                "multiple auth methods provided: set exactly one of Token, ServiceAccount, or Cert"
                    .into(),
            );
        }
        if let Some(cert) = &auth.cert {
            let empty = super::SecretKeySelector::default();
            let client_cert = cert.client_cert.as_ref().unwrap_or(&empty);
            if client_cert.name.is_empty() {
                return Some("ClientCert.Name cannot be empty".into());
            }
            if client_cert.key.as_deref().unwrap_or_default().is_empty() {
                return Some("ClientCert.Key cannot be empty".into());
            }
            if let Some(msg) = selector(client_cert) {
                return Some(msg.into());
            }
        }
        if let Some(token) = &auth.token {
            let empty = super::SecretKeySelector::default();
            let bearer = token.bearer_token.as_ref().unwrap_or(&empty);
            if bearer.name.is_empty() {
                return Some("BearerToken.Name cannot be empty".into());
            }
            if bearer.key.as_deref().unwrap_or_default().is_empty() {
                return Some("BearerToken.Key cannot be empty".into());
            }
            if let Some(msg) = selector(bearer) {
                return Some(msg.into());
            }
        }
        if let Some(sa) = &auth.service_account
            && let StoreScope::Namespaced(own) = scope
            && sa.namespace.as_deref().is_some_and(|n| n != own)
        {
            return Some(NOT_ALLOWED.into());
        }
    }
    if let Some(r) = &k.auth_ref
        && let StoreScope::Namespaced(own) = scope
        && r.namespace.as_deref().is_some_and(|n| n != own)
    {
        return Some(NOT_ALLOWED.into());
    }
    None
}

/// ESO's `openbao.ValidateStore`: references stay in a namespaced store's namespace.
fn openbao_store(scope: StoreScope<'_>, bao: &super::OpenBaoProvider) -> Option<String> {
    let foreign = |ns: Option<&String>| match scope {
        StoreScope::Namespaced(own) => ns.is_some_and(|n| !n.is_empty() && n != own),
        StoreScope::Cluster => false,
    };
    let auth = bao.auth.as_ref()?;
    let ns = |s: &Option<super::SecretKeySelector>| s.as_ref().and_then(|s| s.namespace.clone());
    let refs = [
        (
            "Auth.AppRole.RoleRef",
            auth.app_role.as_ref().and_then(|a| ns(&a.role_ref)),
        ),
        (
            "Auth.AppRole.SecretRef",
            auth.app_role.as_ref().and_then(|a| ns(&a.secret_ref)),
        ),
        ("Auth.TokenSecretRef", ns(&auth.token_secret_ref)),
        (
            "Auth.UserPass.SecretRef",
            auth.user_pass.as_ref().and_then(|u| ns(&u.secret_ref)),
        ),
    ];
    refs.into_iter().find(|(_, n)| foreign(n.as_ref())).map(|(field, _)| {
        format!("invalid {field}: namespace should either be empty or match the namespace of the SecretStore for a namespaced SecretStore")
    })
}

/// ESO's `vault.ValidateStore`: references stay in a namespaced store's namespace, client TLS
/// comes as a pair, check-and-set needs KV v2.
fn vault_store(scope: StoreScope<'_>, vault: &super::VaultProvider) -> Option<String> {
    const NOT_ALLOWED: &str = "namespace should either be empty or match the namespace of the SecretStore for a namespaced SecretStore";
    let foreign = |ns: Option<&String>| match scope {
        StoreScope::Namespaced(own) => ns.is_some_and(|n| !n.is_empty() && n != own),
        StoreScope::Cluster => false,
    };
    let sel = |s: &Option<super::SecretKeySelector>| s.as_ref().and_then(|s| s.namespace.clone());
    let mut refs: Vec<(&str, Option<String>)> = Vec::new();
    if let Some(auth) = &vault.auth {
        if let Some(a) = &auth.app_role {
            refs.push(("Auth.AppRole.SecretRef", sel(&a.secret_ref)));
            refs.push(("Auth.AppRole.RoleRef", sel(&a.role_ref)));
        }
        if let Some(c) = &auth.cert {
            refs.push(("Auth.Cert.ClientCert", sel(&c.client_cert)));
            refs.push(("Auth.Cert.SecretRef", sel(&c.secret_ref)));
        }
        if let Some(j) = &auth.jwt {
            refs.push(("Auth.Jwt.SecretRef", sel(&j.secret_ref)));
            refs.push((
                "Auth.Jwt.KubernetesServiceAccountToken.ServiceAccountRef",
                j.kubernetes_service_account_token
                    .as_ref()
                    .and_then(|k| k.service_account_ref.namespace.clone()),
            ));
        }
        if let Some(k) = &auth.kubernetes {
            refs.push((
                "Auth.Kubernetes.ServiceAccountRef",
                k.service_account_ref
                    .as_ref()
                    .and_then(|s| s.namespace.clone()),
            ));
            refs.push(("Auth.Kubernetes.SecretRef", sel(&k.secret_ref)));
        }
        if let Some(l) = &auth.ldap {
            refs.push(("Auth.Ldap.SecretRef", sel(&l.secret_ref)));
        }
        if let Some(u) = &auth.user_pass {
            refs.push(("Auth.UserPass.SecretRef", sel(&u.secret_ref)));
        }
        refs.push(("Auth.TokenSecretRef", sel(&auth.token_secret_ref)));
    }
    if let Some(tls) = &vault.tls {
        refs.push(("ClientTLS.ClientCert", sel(&tls.cert_secret_ref)));
        refs.push(("ClientTLS.SecretRef", sel(&tls.key_secret_ref)));
    }
    for (field, ns) in refs {
        if foreign(ns.as_ref()) {
            return Some(format!("invalid {field}: {NOT_ALLOWED}"));
        }
    }
    if let Some(tls) = &vault.tls
        && tls.cert_secret_ref.is_some() != tls.key_secret_ref.is_some()
    {
        return Some(
            "when provided, both ClientTLS.ClientCert and ClientTLS.SecretRef should be provided"
                .into(),
        );
    }
    let cas = vault
        .check_and_set
        .as_ref()
        .and_then(|c| c.get("required"))
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    if cas && vault.version.as_deref() == Some("v1") {
        return Some("checkAndSet is not supported with Vault KV version v1".into());
    }
    None
}

fn fake_store(fake: &FakeProvider) -> Option<String> {
    fake.data.iter().enumerate().find_map(|(pos, d)| {
        if d.key.is_empty() {
            Some(format!("key must be set in data {pos}"))
        } else if d.value.is_empty() && d.value_map.is_empty() {
            Some(format!(
                "at least one of value or valueMap must be set in data {pos}"
            ))
        } else {
            None
        }
    })
}

fn aws_store(scope: StoreScope<'_>, aws: &AwsProvider) -> Option<String> {
    if !valid_region(&aws.region) {
        return Some(format!("region not found: {}", aws.region));
    }
    if let Some(sm) = &aws.secrets_manager {
        if super::free_form::too_deep(sm) {
            return Some(format!(
                "spec.provider.aws.secretsManager is nested more than {} levels deep",
                super::free_form::MAX_DEPTH
            ));
        }
        let window = sm
            .get("recoveryWindowInDays")
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(0);
        let force = sm
            .get("forceDeleteWithoutRecovery")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        if window != 0 && !(7..=30).contains(&window) {
            return Some(
                "invalid DeleteSecretInput: RecoveryWindowInDays must be between 7 and 30 days"
                    .into(),
            );
        }
        if window != 0 && force {
            return Some(
                "invalid DeleteSecretInput: ForceDeleteWithoutRecovery conflicts with RecoveryWindowInDays"
                    .into(),
            );
        }
    }
    // ESO's ValidateReferent*Selector: a namespaced store may only name its own namespace; a
    // cluster store may name any (or none: the ExternalSecret's, "referent" auth).
    let foreign = |ns: Option<&String>| match scope {
        StoreScope::Namespaced(own) => ns.is_some_and(|n| n != own),
        StoreScope::Cluster => false,
    };
    const NOT_ALLOWED: &str = "namespace should either be empty or match the namespace of the SecretStore for a namespaced SecretStore";
    let auth = aws.auth.as_ref()?;
    if let Some(r) = &auth.secret_ref {
        let refs = [
            ("AccessKeyID", &r.access_key_id_secret_ref),
            ("SecretAccessKey", &r.secret_access_key_secret_ref),
            ("SessionToken", &r.session_token_secret_ref),
        ];
        for (field, sel) in refs {
            if sel.as_ref().is_some_and(|s| foreign(s.namespace.as_ref())) {
                return Some(format!("invalid Auth.SecretRef.{field}: {NOT_ALLOWED}"));
            }
        }
    }
    if let Some(sa) = auth
        .jwt
        .as_ref()
        .and_then(|j| j.service_account_ref.as_ref())
        && foreign(sa.namespace.as_ref())
    {
        return Some(format!("invalid Auth.JWT.ServiceAccountRef: {NOT_ALLOWED}"));
    }
    None
}

/// Every rule `spec` breaks, in ESO's order and words (empty when valid).
pub fn external_secret(spec: &ExternalSecretSpec) -> Vec<String> {
    let mut errs = Vec::new();
    // ESO decodes the field as a Go `metav1.Duration` before any rule runs, so its webhook
    // refuses what Go's `ParseDuration` refuses (`1d`, `9999999999h`) with Go's message.
    if let Some(i) = spec.refresh_interval.as_deref().filter(|i| !i.is_empty())
        && let Err(e) = super::duration::parse(i)
    {
        errs.push(format!("spec.refreshInterval: {e}"));
    }
    let t = &spec.target;
    if t.deletion_policy == DeletionPolicy::Delete
        && matches!(
            t.creation_policy,
            CreationPolicy::Merge | CreationPolicy::None
        )
    {
        errs.push("deletionPolicy=Delete must not be used when the controller doesn't own the secret. Please set creationPolicy=Owner".to_string());
    }
    if t.deletion_policy == DeletionPolicy::Merge && t.creation_policy == CreationPolicy::None {
        errs.push("deletionPolicy=Merge must not be used with creationPolicy=None. There is no Secret to merge with".to_string());
    }
    if spec.data.is_empty() && spec.data_from.is_empty() {
        errs.push("either data or dataFrom should be specified".to_string());
    }
    for r in &spec.data_from {
        errs.extend(data_from(r));
    }
    errs.extend(too_deep(spec));
    // Thousands of broken entries say the same few things: list each message once.
    let mut said = std::collections::HashSet::new();
    errs.retain(|e| said.insert(e.clone()));
    if t.deletion_policy == DeletionPolicy::Retain {
        let mut seen = std::collections::HashSet::new();
        let mut duplicates = std::collections::BTreeSet::new();
        for d in &spec.data {
            if !seen.insert(d.secret_key.as_str())
                && duplicates.insert(d.secret_key.as_str())
                && duplicates.len() <= MAX_LISTED
            {
                errs.push(format!(
                    "duplicate secretKey found: {}",
                    super::abbreviate(&d.secret_key, MAX_DETAIL)
                ));
            }
        }
        if duplicates.len() > MAX_LISTED {
            errs.push(format!(
                "{} more duplicate secretKeys",
                duplicates.len() - MAX_LISTED
            ));
        }
    }
    errs
}

/// esox's own rule: free-form fields nested deeper than esox reads them
/// ([`super::free_form`]) are refused by name rather than silently cut.
fn too_deep(spec: &ExternalSecretSpec) -> Vec<String> {
    let deep = |v: &Option<serde_json::Value>| v.as_ref().is_some_and(super::free_form::too_deep);
    let message = |field: String| {
        format!(
            "{field} is nested more than {} levels deep",
            super::free_form::MAX_DEPTH
        )
    };
    let mut errs = Vec::new();
    for (i, r) in spec.data_from.iter().enumerate() {
        for (j, rw) in r.rewrite.iter().enumerate() {
            if deep(&rw.merge) {
                errs.push(message(format!("spec.dataFrom[{i}].rewrite[{j}].merge")));
            }
        }
    }
    let plugins = spec.target.template.iter().flat_map(|t| &t.plugins);
    for (i, p) in plugins.enumerate() {
        if deep(&p.config) {
            errs.push(message(format!("spec.target.template.plugins[{i}].config")));
        }
    }
    errs.truncate(MAX_LISTED);
    errs
}

fn data_from(r: &ExternalSecretDataFromRemoteRef) -> Vec<String> {
    let mut errs = Vec::new();
    let generator = r
        .source_ref
        .as_ref()
        .is_some_and(|s| s.generator_ref.is_some());
    let set = [r.find.is_some(), r.extract.is_some(), generator]
        .iter()
        .filter(|b| **b)
        .count();
    if set > 1 {
        errs.push("extract, find, or generatorRef cannot be set at the same time".to_string());
    }
    if r.find.is_none() && r.extract.is_none() && r.source_ref.is_none() {
        errs.push("either extract, find, or sourceRef must be set to dataFrom".to_string());
    }
    if let Some(s) = &r.source_ref
        && s.generator_ref.is_none()
        && s.store_ref.is_none()
    {
        errs.push(
            "generatorRef or storeRef must be set when using sourceRef in dataFrom".to_string(),
        );
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> ExternalSecretSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn eso_rules_and_messages() {
        let ok = spec("data: [{secretKey: a, remoteRef: {key: k}}]");
        assert!(external_secret(&ok).is_empty());
        let bad = spec(
            "target: {creationPolicy: Merge, deletionPolicy: Delete}\ndata: [{secretKey: a, remoteRef: {key: k}}, {secretKey: a, remoteRef: {key: j}}]",
        );
        assert_eq!(
            external_secret(&bad),
            [
                "deletionPolicy=Delete must not be used when the controller doesn't own the secret. Please set creationPolicy=Owner"
            ]
        );
        let dup = spec(
            "data: [{secretKey: a, remoteRef: {key: k}}, {secretKey: a, remoteRef: {key: j}}]",
        );
        assert_eq!(external_secret(&dup), ["duplicate secretKey found: a"]);
        let none = spec("target: {creationPolicy: None, deletionPolicy: Merge}");
        assert_eq!(
            external_secret(&none),
            [
                "deletionPolicy=Merge must not be used with creationPolicy=None. There is no Secret to merge with",
                "either data or dataFrom should be specified"
            ]
        );
        let from = spec(
            "dataFrom:\n- {extract: {key: a}, find: {name: {regexp: x}}}\n- {sourceRef: {}}\n- {}\n",
        );
        assert_eq!(
            external_secret(&from),
            [
                "extract, find, or generatorRef cannot be set at the same time",
                "generatorRef or storeRef must be set when using sourceRef in dataFrom",
                "either extract, find, or sourceRef must be set to dataFrom"
            ]
        );
    }

    /// Thousands of broken entries make a short message, not a megabyte of status.
    #[test]
    fn many_problems_make_a_bounded_message() {
        let mut spec = spec("data: [{secretKey: a, remoteRef: {key: k}}]");
        let entry = spec.data[0].clone();
        spec.data = vec![entry; 2000];
        spec.data_from = vec![Default::default(); 2000];
        let errs = external_secret(&spec);
        assert_eq!(
            errs,
            [
                "either extract, find, or sourceRef must be set to dataFrom",
                "duplicate secretKey found: a"
            ]
        );
        let keys: Vec<String> = (0..2000).map(|i| format!("k{}", i / 2)).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let errs = external_secret(&spec_of_keys(&keys));
        assert_eq!(errs.len(), 11, "{errs:?}");
        assert_eq!(errs[0], "duplicate secretKey found: k0");
        assert_eq!(errs[10], "990 more duplicate secretKeys");
        let long_key = "k".repeat(100_000);
        let errs = external_secret(&spec_of_keys(&[&long_key, &long_key]));
        assert_eq!(errs.len(), 1);
        assert!(errs[0].len() < 700, "{}", errs[0].len());

        let bad = format!("({}", "a".repeat(100_000));
        let store_spec: SecretStoreSpec = serde_json::from_value(serde_json::json!({
            "provider": {"fake": {}},
            "conditions": [{"namespaceRegexes": vec![bad; 1000]}],
        }))
        .unwrap();
        let msg = store("s", StoreScope::Cluster, &store_spec).unwrap();
        assert_eq!(
            msg.lines()
                .filter(|l| l.starts_with("failed to compile"))
                .count(),
            10
        );
        assert!(msg.len() < 10 * 700, "{}", msg.len());
    }

    #[test]
    fn refresh_intervals_go_cannot_parse_are_refused() {
        let with = |i: &str| {
            spec(&format!(
                "refreshInterval: '{i}'\ndata: [{{secretKey: a, remoteRef: {{key: k}}}}]"
            ))
        };
        assert!(external_secret(&with("1h30m")).is_empty());
        assert!(external_secret(&with("0")).is_empty());
        assert!(external_secret(&with("")).is_empty());
        assert_eq!(
            external_secret(&with("9999999999h")),
            [
                "spec.refreshInterval: time: invalid duration \"9999999999h\": longer than 2562047h47m16.854775807s, the longest duration Go (and ESO) accepts"
            ]
        );
        assert_eq!(
            external_secret(&with("1d")),
            ["spec.refreshInterval: time: unknown unit \"d\" in duration \"1d\""]
        );
    }

    #[test]
    fn free_form_fields_nested_too_deep_are_named() {
        let nested =
            |levels: usize| format!("{}1{}", r#"{"a":"#.repeat(levels), "}".repeat(levels));
        let text = format!(
            r#"{{"dataFrom":[{{"extract":{{"key":"k"}},"rewrite":[{{"regexp":{{"source":"a","target":"b"}}}},{{"merge":{deep}}}]}}],
               "target":{{"template":{{"plugins":[{{"ref":{{"kind":"Builtin","name":"p"}},"config":{deep}}}]}}}}}}"#,
            deep = nested(10_000)
        );
        let spec: ExternalSecretSpec = serde_json::from_str(&text).unwrap();
        assert_eq!(
            external_secret(&spec),
            [
                "spec.dataFrom[0].rewrite[1].merge is nested more than 32 levels deep",
                "spec.target.template.plugins[0].config is nested more than 32 levels deep"
            ]
        );
        let store_text = format!(
            r#"{{"provider":{{"aws":{{"service":"SecretsManager","region":"eu-west-1","secretsManager":{}}}}}}}"#,
            nested(200)
        );
        let s: SecretStoreSpec = serde_json::from_str(&store_text).unwrap();
        assert_eq!(
            store("s", StoreScope::Cluster, &s).as_deref(),
            Some("spec.provider.aws.secretsManager is nested more than 32 levels deep")
        );
    }

    fn spec_of_keys(keys: &[&str]) -> ExternalSecretSpec {
        serde_json::from_value(serde_json::json!({
            "data": keys.iter().map(|k| serde_json::json!({"secretKey": k, "remoteRef": {"key": "r"}})).collect::<Vec<_>>(),
        }))
        .unwrap()
    }

    #[test]
    fn store_rules_in_esos_words() {
        let spec = |yaml: &str| -> SecretStoreSpec { serde_yaml::from_str(yaml).unwrap() };
        let ns = StoreScope::Namespaced("team-a");
        let check = |scope, yaml: &str| store("s", scope, &spec(yaml));
        assert_eq!(
            check(ns, "provider: {fake: {data: [{key: k, value: v}]}}"),
            None
        );
        assert_eq!(
            check(ns, "provider: {}").as_deref(),
            Some(
                "store error for s: secret stores must only have exactly one backend specified, found 0"
            )
        );
        assert_eq!(
            check(
                ns,
                "provider: {fake: {}, aws: {service: SecretsManager, region: us-east-1}}"
            )
            .as_deref(),
            Some(
                "store error for s: secret stores must only have exactly one backend specified, found 2"
            )
        );
        let bad_regex = check(
            StoreScope::Cluster,
            "provider: {fake: {}}\nconditions: [{namespaceRegexes: ['ok', '(']}]",
        )
        .unwrap();
        assert!(
            bad_regex.starts_with("failed to compile 1th namespace regex in 0th condition: "),
            "{bad_regex}"
        );
        assert_eq!(
            check(
                ns,
                "provider: {fake: {data: [{key: k, value: v}, {key: '', value: v}]}}"
            )
            .as_deref(),
            Some("key must be set in data 1")
        );
        assert_eq!(
            check(ns, "provider: {fake: {data: [{key: k}]}}").as_deref(),
            Some("at least one of value or valueMap must be set in data 0")
        );
        assert_eq!(
            check(
                ns,
                "provider: {aws: {service: SecretsManager, region: nowhere}}"
            )
            .as_deref(),
            Some("region not found: nowhere")
        );
        assert_eq!(
            check(
                ns,
                "provider: {aws: {service: SecretsManager, region: eu-west-1, secretsManager: {recoveryWindowInDays: 3}}}"
            )
            .as_deref(),
            Some("invalid DeleteSecretInput: RecoveryWindowInDays must be between 7 and 30 days")
        );
        assert_eq!(
            check(
                ns,
                "provider: {aws: {service: SecretsManager, region: eu-west-1, secretsManager: {recoveryWindowInDays: 7, forceDeleteWithoutRecovery: true}}}"
            )
            .as_deref(),
            Some("invalid DeleteSecretInput: ForceDeleteWithoutRecovery conflicts with RecoveryWindowInDays")
        );
        let foreign_key = "provider: {aws: {service: SecretsManager, region: eu-west-1, auth: {secretRef: {accessKeyIDSecretRef: {name: a, key: k, namespace: team-b}, secretAccessKeySecretRef: {name: a, key: k}}}}}";
        assert_eq!(
            check(ns, foreign_key).as_deref(),
            Some(
                "invalid Auth.SecretRef.AccessKeyID: namespace should either be empty or match the namespace of the SecretStore for a namespaced SecretStore"
            )
        );
        assert_eq!(check(StoreScope::Cluster, foreign_key), None);
        assert_eq!(
            check(StoreScope::Namespaced("team-b"), foreign_key),
            None,
            "its own namespace"
        );
        let foreign_sa = "provider: {aws: {service: SecretsManager, region: eu-west-1, auth: {jwt: {serviceAccountRef: {name: sa, namespace: kube-system}}}}}";
        assert_eq!(
            check(ns, foreign_sa).as_deref(),
            Some(
                "invalid Auth.JWT.ServiceAccountRef: namespace should either be empty or match the namespace of the SecretStore for a namespaced SecretStore"
            )
        );
        let vault =
            |auth: &str| format!("provider: {{vault: {{server: 'https://v', auth: {auth}}}}}");
        assert_eq!(
            check(
                ns,
                &vault(
                    "{kubernetes: {role: r, serviceAccountRef: {name: sa, namespace: kube-system}}}"
                )
            )
            .as_deref(),
            Some(
                "invalid Auth.Kubernetes.ServiceAccountRef: namespace should either be empty or match the namespace of the SecretStore for a namespaced SecretStore"
            )
        );
        assert_eq!(
            check(
                StoreScope::Cluster,
                &vault(
                    "{kubernetes: {role: r, serviceAccountRef: {name: sa, namespace: kube-system}}}"
                )
            ),
            None
        );
        assert_eq!(
            check(
                ns,
                &vault("{appRole: {roleId: x, secretRef: {name: s, key: k, namespace: other}}}")
            )
            .as_deref(),
            Some(
                "invalid Auth.AppRole.SecretRef: namespace should either be empty or match the namespace of the SecretStore for a namespaced SecretStore"
            )
        );
        assert_eq!(
            check(ns, "provider: {vault: {server: 'https://v', version: v1, checkAndSet: {required: true}}}").as_deref(),
            Some("checkAndSet is not supported with Vault KV version v1")
        );
        assert_eq!(
            check(
                ns,
                "provider: {vault: {server: 'https://v', tls: {certSecretRef: {name: c}}}}"
            )
            .as_deref(),
            Some(
                "when provided, both ClientTLS.ClientCert and ClientTLS.SecretRef should be provided"
            )
        );
        // A provider esox does not implement is ESO's to judge, not ours.
        assert_eq!(check(ns, "provider: {gcpsm: {projectID: p}}"), None);
    }

    #[test]
    fn kubernetes_store_rules_in_esos_words() {
        let check = |scope: StoreScope<'_>, provider: &str| {
            let spec: SecretStoreSpec =
                serde_yaml::from_str(&format!("provider: {{kubernetes: {provider}}}")).unwrap();
            store("s", scope, &spec)
        };
        let ns = StoreScope::Namespaced("team");
        assert_eq!(check(ns, "{auth: {serviceAccount: {name: sa}}}"), None);
        assert_eq!(
            check(
                ns,
                "{server: {caProvider: {type: ConfigMap, name: c, key: ca.crt, namespace: team}}}"
            )
            .as_deref(),
            Some("CAProvider.namespace must be empty with SecretStore")
        );
        assert_eq!(
            check(
                StoreScope::Cluster,
                "{server: {caProvider: {type: ConfigMap, name: c, key: ca.crt}}}"
            )
            .as_deref(),
            Some("CAProvider.namespace must not be empty with ClusterSecretStore")
        );
        assert_eq!(
            check(ns, "{auth: {token: {bearerToken: {name: t}}}}").as_deref(),
            Some("BearerToken.Key cannot be empty")
        );
        assert_eq!(
            check(ns, "{auth: {token: {bearerToken: {key: t}}}}").as_deref(),
            Some("BearerToken.Name cannot be empty")
        );
        assert_eq!(
            check(
                ns,
                "{auth: {cert: {clientCert: {name: c}, clientKey: {name: c, key: k}}}}"
            )
            .as_deref(),
            Some("ClientCert.Key cannot be empty")
        );
        assert_eq!(
            check(
                StoreScope::Cluster,
                "{auth: {token: {bearerToken: {name: t, key: k}}}}"
            )
            .as_deref(),
            Some("cluster scope requires namespace")
        );
        assert!(
            check(
                ns,
                "{auth: {token: {bearerToken: {name: t, key: k, namespace: other}}}}"
            )
            .unwrap()
            .starts_with("namespace should either be empty")
        );
        assert_eq!(
            check(
                ns,
                "{auth: {serviceAccount: {name: sa}, token: {bearerToken: {name: t, key: k}}}}"
            )
            .as_deref(),
            Some(
                "multiple auth methods provided: set exactly one of Token, ServiceAccount, or Cert"
            )
        );
        assert_eq!(
            check(
                ns,
                "{authRef: {name: kc, key: config}, auth: {serviceAccount: {name: sa}}}"
            )
            .as_deref(),
            Some("authRef and inline auth cannot both be set")
        );
    }
}
