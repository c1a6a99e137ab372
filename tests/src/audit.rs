//! The apiserver's own count of what a controller asks of it: the `esox` binary runs as a
//! ServiceAccount of namespace [`SA_NAMESPACE`], whose every request the local stack's audit
//! policy records (scripts/stack.sh), and a test reads the audit log back.

use std::io::{BufRead, BufReader};

use serde_json::Value;

use crate::{TestEnv, service_account_kubeconfig, stack_env};

/// The namespace of the audited ServiceAccount; the stack audits every request of
/// `system:serviceaccounts:esox-budget`.
pub const SA_NAMESPACE: &str = "esox-budget";
/// The audited ServiceAccount.
pub const SA_NAME: &str = "esox";

/// One audited request: what it did, to what, when the apiserver received it.
#[derive(Debug)]
pub struct Request {
    /// The verb (`get`, `list`, `watch`, `create`, …).
    pub verb: String,
    /// `resource` or `resource/subresource` (`resource (probe)` for a one-item list, which
    /// asks whether a kind is installed and allowed); the request URI for non-resource
    /// requests.
    pub what: String,
    /// When the apiserver received it.
    pub at: jiff::Timestamp,
}

/// The stack's audit log: each request once (by audit ID) with when the apiserver received
/// it, for those received at or after `since`.
pub fn entries(since: jiff::Timestamp) -> Vec<(jiff::Timestamp, Value)> {
    let env = stack_env().unwrap();
    let file = std::fs::File::open(&env["ESOX_AUDIT_LOG"]).expect("the stack's audit log");
    let mut seen = std::collections::HashSet::new();
    BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| serde_json::from_str::<Value>(&line).ok())
        .filter_map(|ev| {
            let at = ev["requestReceivedTimestamp"]
                .as_str()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())?;
            (at >= since && seen.insert(ev["auditID"].as_str().unwrap_or_default().to_string()))
                .then_some((at, ev))
        })
        .collect()
}

/// The requests the audited ServiceAccount made in namespace `ns` (or cluster-wide, with no
/// namespace) received at or after `since`.
pub fn audited(ns: &str, since: jiff::Timestamp) -> Vec<Request> {
    let user = format!("system:serviceaccount:{SA_NAMESPACE}:{SA_NAME}");
    let mut out = Vec::new();
    for (at, ev) in entries(since) {
        if ev["user"]["username"] != user.as_str() {
            continue;
        }
        let obj = &ev["objectRef"];
        if obj["namespace"].as_str().is_some_and(|n| n != ns) {
            continue;
        }
        let uri = ev["requestURI"].as_str().unwrap_or_default();
        let what = match (obj["resource"].as_str(), obj["subresource"].as_str()) {
            (Some(r), Some(sub)) => format!("{r}/{sub}"),
            // A one-item list at start is a probe: is the kind installed and allowed?
            (Some(r), None) if uri.contains("limit=1&") || uri.ends_with("limit=1") => {
                format!("{r} (probe)")
            }
            (Some(r), None) => r.to_string(),
            _ => uri.to_string(),
        };
        out.push(Request {
            verb: ev["verb"].as_str().unwrap_or_default().to_string(),
            what,
            at,
        });
    }
    out
}

/// Asserts that the running stack audits [`SA_NAMESPACE`] (a stack started before the rule
/// was added does not).
pub fn assert_audited_stack() {
    let stack = stack_env().unwrap();
    let policy = std::path::Path::new(&stack["ESOX_STACK_DIR"]).join("audit-policy.yaml");
    assert!(
        std::fs::read_to_string(&policy)
            .unwrap_or_default()
            .contains(SA_NAMESPACE),
        "the running stack's audit policy ({}) predates the request-budget rule: restart it \
         (scripts/stack.sh down && scripts/stack.sh up)",
        policy.display()
    );
}

/// The audited ServiceAccount [`SA_NAME`], bound to cluster-admin, and a kubeconfig for it
/// in `dir`.
pub async fn identity(env: &TestEnv, dir: &std::path::Path) -> std::path::PathBuf {
    identity_named(env, SA_NAME, dir).await
}

/// An audited ServiceAccount `name` in [`SA_NAMESPACE`], bound to cluster-admin (what it may
/// do is not under test, only which requests it makes), and a kubeconfig for it in `dir`.
pub async fn identity_named(
    env: &TestEnv,
    name: &str,
    dir: &std::path::Path,
) -> std::path::PathBuf {
    env.apply(&format!(
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: {SA_NAMESPACE}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {name}
  namespace: {SA_NAMESPACE}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: esox-audited-{name}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: cluster-admin
subjects:
- kind: ServiceAccount
  name: {name}
  namespace: {SA_NAMESPACE}
"#
    ))
    .await
    .expect("the audited ServiceAccount and its binding");
    service_account_kubeconfig(&env.client, SA_NAMESPACE, name, dir).await
}
