//! The Vault provider (`spec.provider.vault`): HashiCorp Vault or OpenBao, KV v1 and v2, as
//! ESO reads them.
//!
//! - Paths are built exactly as ESO builds them ([`paths`]), keys that already hold the mount
//!   or `data/` included.
//! - `get` returns the secret's data as Go's `encoding/json` writes it (keys sorted, `<>&`
//!   escaped), and the pipeline extracts `property` (a literal key first, then a gjson path)
//!   as ESO's `getSecretValue` does; `metadataPolicy: Fetch` returns the metadata map (system
//!   keys overlaid by `custom_metadata`).
//! - `find` lists recursively under `path`, then filters by name (regexp) or by tags
//!   (custom_metadata), with ESO's results: names relative to the mount, `find.path`
//!   included.
//! - Tokens are cached per identity, shared, renewed and replaced ([`token`]); a read refused
//!   with 403 while the token itself is refused logs in again once and retries.
//! - PushSecret, DeleteSecret and SecretExists on KV v1 and v2 ([`push`]).
//!
//! Every call is counted under ESO's names (`externalsecret_provider_api_calls_count`,
//! provider `HashiCorp/Vault`: `ReadSecretData`, `WriteSecretData`, `DeleteSecret`,
//! `ListSecrets`, `Login`, `LookupSelf`, `RevokeSelf`, and esox's `RenewSelf`).

pub mod http;
pub mod leases;
pub mod paths;
pub mod push;
mod refs;
pub(crate) use refs::ca_bundle;
pub mod token;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use hyper::header::{HeaderName, HeaderValue};
use regex::Regex;

use self::http::{Http, Reply, describe};
use self::token::{Lease, TokenSlot};
use super::{
    BuildContext, Calls, Capabilities, Fetched, FindQuery, GetRequest, Lookup, Provider,
    ProviderBuildError, ProviderError, PushOutcome, PushSecretData, Recorded, SourceSecret,
};
use crate::api::{OpenBaoProvider, VaultAppRole, VaultAuth, VaultProvider};
use crate::secret::SecretBytes;

/// The `provider` label of Vault calls (ESO's `ProviderHCVault`).
pub const PROVIDER: &str = "HashiCorp/Vault";

/// Which ESO provider a store is: they read the same API with different rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `spec.provider.vault`.
    Vault,
    /// `spec.provider.openBao`: literal paths, one-level find by name only, plain "secret not
    /// found" errors, `metadataPolicy` ignored, validation by the mount's type and version.
    OpenBao,
}

/// A connected Vault store.
pub struct VaultStore {
    http: Http,
    slot: Arc<TokenSlot>,
    paths: paths::Paths,
    namespace: Option<String>,
    calls: Calls,
    flavor: Flavor,
    server: String,
}

/// Connects to Vault for one store (and one identity). Reads the Secrets the store's `auth`
/// and TLS settings name; logs in only when a call first needs a token.
pub async fn connect(
    spec: &VaultProvider,
    retry: Option<&crate::api::RetrySettings>,
    ctx: &BuildContext<'_>,
) -> Result<(Arc<dyn Provider>, String), ProviderBuildError> {
    let (store, identity) = connect_as(spec, Flavor::Vault, retry, ctx).await?;
    Ok((Arc::new(store), identity))
}

/// ESO's VaultDynamicSecret generator: one call with the provider's auth (the token shared
/// with stores of the same identity); `resultType` picks the answer's `data` (default),
/// `auth` or the whole body, whose values become strings as ESO's `GetByteValue` makes them.
/// Also returns when the answer's lease (or generated token) expires, if it does, so the
/// controller generates the next value before then whatever `refreshInterval` says.
pub async fn generate_dynamic(
    spec: &crate::api::generators::VaultDynamicSecretSpec,
    ctx: &BuildContext<'_>,
) -> Result<Generated, ProviderError> {
    if spec.path.is_empty() {
        return Err(ProviderError::InvalidConfig("spec.path is required".into()));
    }
    let (store, _) = connect_as(
        &spec.provider,
        Flavor::Vault,
        spec.retry_settings.as_ref(),
        ctx,
    )
    .await
    .map_err(|e| ProviderError::InvalidConfig(format!("unable to setup Vault client: {e}")))?;
    let method = spec
        .method
        .as_deref()
        .filter(|m| !m.is_empty())
        .unwrap_or("GET")
        .to_ascii_uppercase();
    let query: Vec<(&str, &str)> = spec
        .get_parameters
        .iter()
        .flat_map(|(k, vs)| vs.iter().map(move |v| (k.as_str(), v.as_str())))
        .collect();
    let (http_method, query, body): (&str, Vec<(&str, &str)>, Option<serde_json::Value>) =
        match method.as_str() {
            "GET" => ("GET", query, None),
            "LIST" => ("GET", vec![("list", "true")], None),
            "DELETE" => ("DELETE", vec![], None),
            other => {
                let body = spec
                    .parameters
                    .clone()
                    .unwrap_or_else(|| serde_json::json!({}));
                (
                    if other == "POST" { "POST" } else { "PUT" },
                    vec![],
                    Some(body),
                )
            }
        };
    let path = spec.path.trim_start_matches('/').to_string();
    let call_name = if body.is_some() {
        "WriteSecretData"
    } else {
        "ReadSecretData"
    };
    let reply = store
        .with_token(|lease| {
            let (store, path, query, body) = (&store, &path, &query, &body);
            async move {
                store
                    .http
                    .call(
                        http_method,
                        path,
                        query,
                        lease.as_deref(),
                        store.namespace.as_deref(),
                        body.as_ref(),
                    )
                    .await
                    .and_then(|r| check(r, http_method, path))
            }
        })
        .await
        .recorded(&store.calls, call_name)
        .map_err(|e| prefixed(e, "unable to get dynamic secret: "))?;
    let reply = reply.filter(|b| !b.is_null());
    let Some(body) = reply else {
        if spec.allow_empty_response {
            return Ok(Generated::default());
        }
        return Err(ProviderError::Unavailable(
            "unable to get dynamic secret: empty response from Vault".into(),
        ));
    };
    let issued = leases::Issued::from_answer(&body);
    let lease = body
        .get("auth")
        .and_then(|a| a.get("lease_duration"))
        .or_else(|| body.get("lease_duration"))
        .and_then(|d| d.as_i64())
        .filter(|d| *d > 0);
    let expires = lease.and_then(|secs| {
        jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::from_secs(secs))
            .ok()
    });
    let picked = match spec.result_type.as_deref() {
        Some("Auth") => body.get("auth").cloned().unwrap_or_default(),
        // ESO marshals the Go client's `Secret`: these fields, whatever else Vault sends.
        Some("Raw") => serde_json::Value::Object(
            body.as_object()
                .map(|m| {
                    m.iter()
                        .filter(|(k, _)| {
                            matches!(
                                k.as_str(),
                                "request_id"
                                    | "lease_id"
                                    | "lease_duration"
                                    | "renewable"
                                    | "data"
                                    | "warnings"
                                    | "auth"
                                    | "wrap_info"
                            )
                        })
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default(),
        ),
        _ => body.get("data").cloned().unwrap_or_default(),
    };
    let mut out = crate::secret::SecretMap::new();
    if let serde_json::Value::Object(map) = picked {
        for (k, v) in map {
            let bytes = match v {
                serde_json::Value::String(s) => s.into_bytes(),
                serde_json::Value::Null => Vec::new(),
                other => go_json(&other),
            };
            out.insert(k, SecretBytes::new(bytes));
        }
    }
    Ok(Generated {
        data: out,
        expires,
        lease: issued,
    })
}

/// What a VaultDynamicSecret produced.
#[derive(Default)]
pub struct Generated {
    /// The values.
    pub data: crate::secret::SecretMap,
    /// When the answer's lease (or generated token) ends, if it does.
    pub expires: Option<jiff::Timestamp>,
    /// The lease to renew and, once replaced, revoke.
    pub lease: Option<leases::Issued>,
}

/// Renews a lease a VaultDynamicSecret issued, with the generator's auth, by `increment`
/// seconds; returns the seconds Vault granted.
pub async fn renew_lease(
    spec: &crate::api::generators::VaultDynamicSecretSpec,
    ctx: &BuildContext<'_>,
    handle: &leases::Handle,
    increment: u64,
) -> Result<u64, ProviderError> {
    let (path, body) = match handle {
        leases::Handle::Lease(id) => (
            "sys/leases/renew",
            serde_json::json!({"lease_id": id, "increment": increment}),
        ),
        leases::Handle::Accessor(a) => (
            "auth/token/renew-accessor",
            serde_json::json!({"accessor": a, "increment": increment}),
        ),
    };
    let reply = lease_call(spec, ctx, path, body, "RenewLease").await?;
    let granted = reply
        .as_ref()
        .and_then(|b| {
            b.get("auth")
                .filter(|a| a.is_object())
                .and_then(|a| a.get("lease_duration"))
                .or_else(|| b.get("lease_duration"))
        })
        .and_then(|d| d.as_u64())
        .unwrap_or_default();
    Ok(granted)
}

/// Revokes a lease a VaultDynamicSecret issued, with the generator's auth. A lease Vault no
/// longer knows (ended, revoked by someone else) is revoked already.
pub async fn revoke_lease(
    spec: &crate::api::generators::VaultDynamicSecretSpec,
    ctx: &BuildContext<'_>,
    handle: &leases::Handle,
) -> Result<(), ProviderError> {
    let (path, body) = match handle {
        leases::Handle::Lease(id) => ("sys/leases/revoke", serde_json::json!({"lease_id": id})),
        leases::Handle::Accessor(a) => (
            "auth/token/revoke-accessor",
            serde_json::json!({"accessor": a}),
        ),
    };
    match lease_call(spec, ctx, path, body, "RevokeLease").await {
        Ok(_) => Ok(()),
        // An accessor or lease that no longer exists: what revoking wanted.
        Err(ProviderError::InvalidConfig(m))
            if m.contains("invalid") || m.contains("not found") =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

async fn lease_call(
    spec: &crate::api::generators::VaultDynamicSecretSpec,
    ctx: &BuildContext<'_>,
    path: &'static str,
    body: serde_json::Value,
    call_name: &'static str,
) -> Result<Option<serde_json::Value>, ProviderError> {
    let (store, _) = connect_as(
        &spec.provider,
        Flavor::Vault,
        spec.retry_settings.as_ref(),
        ctx,
    )
    .await
    .map_err(|e| ProviderError::InvalidConfig(format!("unable to setup Vault client: {e}")))?;
    store
        .with_token(|lease| {
            let (store, body) = (&store, &body);
            async move {
                store
                    .http
                    .call(
                        "PUT",
                        path,
                        &[],
                        lease.as_deref(),
                        store.namespace.as_deref(),
                        Some(body),
                    )
                    .await
                    .and_then(|r| check(r, "PUT", path))
            }
        })
        .await
        .recorded(&store.calls, call_name)
}

/// Connects an `openBao` store: its block read as the Vault block it is a subset of (mount
/// `kv` by default; exactly one of token, AppRole, username/password).
pub async fn connect_openbao(
    spec: &OpenBaoProvider,
    retry: Option<&crate::api::RetrySettings>,
    ctx: &BuildContext<'_>,
) -> Result<(Arc<dyn Provider>, String), ProviderBuildError> {
    let auth = match &spec.auth {
        None => None,
        Some(a) => {
            let set = [
                a.token_secret_ref.is_some(),
                a.app_role.is_some(),
                a.user_pass.is_some(),
            ];
            if set.iter().filter(|s| **s).count() != 1 {
                return Err(ProviderBuildError::Invalid(
                    "spec.provider.openBao.auth: exactly one of appRole, tokenSecretRef and userPass must be set".into(),
                ));
            }
            Some(VaultAuth {
                namespace: a.namespace.clone(),
                token_secret_ref: a.token_secret_ref.clone(),
                app_role: a.app_role.clone().map(|r| VaultAppRole {
                    role_id: r.role_id.filter(|id| !id.is_empty()),
                    ..r
                }),
                user_pass: a.user_pass.clone(),
                ..Default::default()
            })
        }
    };
    let vault = VaultProvider {
        server: spec.server.clone(),
        path: Some(
            spec.path
                .clone()
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "kv".into()),
        ),
        version: spec.version.clone(),
        namespace: spec.namespace.clone(),
        ca_bundle: spec.ca_bundle.clone(),
        ca_provider: spec.ca_provider.clone(),
        auth,
        ..Default::default()
    };
    let (store, identity) = connect_as(&vault, Flavor::OpenBao, retry, ctx).await?;
    Ok((Arc::new(store), identity))
}

async fn connect_as(
    spec: &VaultProvider,
    flavor: Flavor,
    retry: Option<&crate::api::RetrySettings>,
    ctx: &BuildContext<'_>,
) -> Result<(VaultStore, String), ProviderBuildError> {
    if spec.server.is_empty() {
        return Err(ProviderBuildError::Invalid(
            "spec.provider.vault.server is required".into(),
        ));
    }
    let v1 = match spec.version.as_deref() {
        None | Some("") | Some("v2") => false,
        Some("v1") => true,
        Some(other) => {
            return Err(ProviderBuildError::Invalid(format!(
                "invalid spec.provider.vault.version {:?}: expected v1 or v2",
                crate::api::abbreviate(other, 40)
            )));
        }
    };
    let resolved = refs::resolve(spec, ctx).await?;
    let mut headers = Vec::new();
    for (k, v) in &spec.headers {
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
            ProviderBuildError::Invalid(format!(
                "spec.provider.vault.headers: {:?} is not a valid header name",
                crate::api::abbreviate(k, 60)
            ))
        })?;
        let value = HeaderValue::from_str(v).map_err(|_| {
            ProviderBuildError::Invalid(format!(
                "spec.provider.vault.headers: the value of {k:?} is not a valid header value"
            ))
        })?;
        headers.push((name, value));
    }
    if spec.read_your_writes && spec.forward_inconsistent {
        headers.push((
            HeaderName::from_static("x-vault-inconsistent"),
            HeaderValue::from_static("forward-active-node"),
        ));
    }
    let mut http = Http::new(&spec.server, &resolved.tls, headers)
        .map_err(ProviderBuildError::Invalid)?
        .with_retry(retry_of(retry)?);
    // ESO: `ReadYourWrites = readYourWrites || forwardInconsistent`.
    if spec.read_your_writes || spec.forward_inconsistent {
        http = http.with_read_your_writes();
    }
    let namespace = spec.namespace.clone().filter(|n| !n.is_empty());
    let auth_namespace = spec
        .auth
        .as_ref()
        .and_then(|a| a.namespace.clone())
        .filter(|n| !n.is_empty())
        .or_else(|| namespace.clone());
    let calls = Calls::new(ctx.metrics, PROVIDER);
    let key = format!(
        "{}|{}|{}|{}",
        spec.server,
        auth_namespace.as_deref().unwrap_or_default(),
        resolved.identity,
        resolved.fingerprint
    );
    let (login, tls_http, slot_calls) = (resolved.login, http.clone(), calls.clone());
    let slot = token::slot(key, move || {
        TokenSlot::new(login, tls_http, auth_namespace, slot_calls)
    });
    let store = VaultStore {
        http,
        slot,
        paths: paths::Paths {
            mount: spec.path.clone(),
            v1,
            literal: flavor == Flavor::OpenBao,
        },
        namespace,
        calls,
        flavor,
        server: spec.server.clone(),
    };
    let kind = match flavor {
        Flavor::Vault => "vault",
        Flavor::OpenBao => "openBao",
    };
    let identity = format!("{kind} {} {}", spec.server, resolved.identity);
    Ok((store, identity))
}

/// A store's `retrySettings` as ESO gives them to Vault's client: `maxRetries` (unset: 0),
/// `retryInterval` (a Go duration; unset: the client's 1 s). No `retrySettings`: no retry
/// (ESO's client then retries twice; esox retries by requeue, with per-object backoff).
fn retry_of(retry: Option<&crate::api::RetrySettings>) -> Result<http::Retry, ProviderBuildError> {
    let mut out = http::Retry::default();
    let Some(r) = retry else {
        return Ok(out);
    };
    out.max = r.max_retries.unwrap_or(0).clamp(0, 10) as u32;
    if let Some(interval) = r.retry_interval.as_deref() {
        out.wait = crate::api::duration::parse(interval).map_err(|e| {
            ProviderBuildError::Invalid(format!("spec.retrySettings.retryInterval: {e}"))
        })?;
    }
    Ok(out)
}

/// Judges a reply: the body on success, `None` when Vault says 404 with nothing in it (a
/// missing secret, an empty list), an error naming the call otherwise.
pub(crate) fn check(
    reply: Reply,
    method: &str,
    path: &str,
) -> Result<Option<serde_json::Value>, ProviderError> {
    let what = describe(method, path);
    let errors = reply.errors();
    let detail = if errors.is_empty() {
        String::new()
    } else {
        format!(": {errors}")
    };
    match reply.status {
        200..=299 => Ok(Some(reply.body)),
        404 => {
            let has_data = reply.body.get("data").is_some_and(|d| !d.is_null());
            Ok(has_data.then_some(reply.body))
        }
        403 => Err(ProviderError::AccessDenied(format!(
            "{what}: permission denied (HTTP 403){}",
            if errors == "permission denied" {
                String::new()
            } else {
                detail
            }
        ))),
        429 => Err(ProviderError::Throttled(format!(
            "{what}: HTTP 429{detail}"
        ))),
        400 => Err(ProviderError::InvalidConfig(format!(
            "{what}: HTTP 400{detail}"
        ))),
        503 => Err(ProviderError::Unavailable(format!(
            "{what}: HTTP 503{detail}"
        ))),
        status => Err(ProviderError::Unavailable(format!(
            "{what}: HTTP {status}{detail}"
        ))),
    }
}

/// ESO's `json.Marshal` of a Vault map: keys sorted (serde_json's map is ordered), no
/// spaces, `<`, `>`, `&`, U+2028 and U+2029 escaped as Go escapes them.
pub fn go_json(value: &serde_json::Value) -> Vec<u8> {
    let text = serde_json::to_string(value).unwrap_or_default();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.into_bytes()
}

/// Go's `fmt.Sprintf("%v", v)` for the JSON values Vault metadata holds.
fn go_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "<nil>".into(),
        other => other.to_string(),
    }
}

/// `prefix` put before a message, keeping the error's kind.
fn prefixed(e: ProviderError, prefix: &str) -> ProviderError {
    match e {
        ProviderError::AccessDenied(m) => ProviderError::AccessDenied(format!("{prefix}{m}")),
        ProviderError::Throttled(m) => ProviderError::Throttled(format!("{prefix}{m}")),
        ProviderError::Unavailable(m) => ProviderError::Unavailable(format!("{prefix}{m}")),
        ProviderError::Unsupported(m) => ProviderError::Unsupported(format!("{prefix}{m}")),
        ProviderError::InvalidConfig(m) => ProviderError::InvalidConfig(format!("{prefix}{m}")),
        other => other,
    }
}

impl VaultStore {
    /// Runs `call` with a token; when Vault refuses it (403) and `lookup-self` refuses the
    /// token too (revoked, expired, the server restarted), logs in again once and retries.
    /// A 403 on a token that is still valid is a policy that does not allow the call.
    async fn with_token<T, F, Fut>(&self, call: F) -> Result<T, ProviderError>
    where
        F: Fn(Lease) -> Fut,
        Fut: std::future::Future<Output = Result<T, ProviderError>>,
    {
        let lease = self.slot.lease().await?;
        match call(lease.clone()).await {
            Err(ProviderError::AccessDenied(m)) if self.slot.can_login() => {
                match self.slot.lookup_self(&lease).await {
                    Err(ProviderError::AccessDenied(_)) => {
                        tracing::info!("vault refused the cached token; logging in again");
                        self.slot.invalidate(&lease).await;
                        let lease = self.slot.lease().await?;
                        call(lease).await
                    }
                    Ok(data) => {
                        let policies = data
                            .get("policies")
                            .and_then(|p| p.as_array())
                            .map(|a| {
                                a.iter()
                                    .filter_map(|v| v.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            })
                            .unwrap_or_default();
                        Err(ProviderError::AccessDenied(format!(
                            "{m}: the token is valid, its policies ({policies}) do not allow this"
                        )))
                    }
                    Err(_) => Err(ProviderError::AccessDenied(m)),
                }
            }
            other => other,
        }
    }

    /// One read: the reply body, `None` on 404.
    async fn read(
        &self,
        method: &'static str,
        path: &str,
        query: &[(&str, &str)],
        call_name: &str,
    ) -> Result<Option<serde_json::Value>, ProviderError> {
        self.with_token(|lease| async move {
            self.http
                .call(
                    method,
                    path,
                    query,
                    lease.as_deref(),
                    self.namespace.as_deref(),
                    None,
                )
                .await
                .and_then(|r| check(r, method, path))
        })
        .await
        .recorded(&self.calls, call_name)
    }

    /// ESO's `readSecret`: the secret's data map.
    async fn read_secret(
        &self,
        key: &str,
        version: Option<&str>,
    ) -> Result<serde_json::Map<String, serde_json::Value>, ProviderError> {
        let path = self.paths.data(key);
        let query: Vec<(&str, &str)> = version.map(|v| ("version", v)).into_iter().collect();
        let flavor = self.flavor;
        let no_secret = || match flavor {
            Flavor::Vault => ProviderError::NoSecret {
                key: key.to_string(),
                version: version.map(str::to_string),
            },
            // The OpenBao client's ErrSecretNotFound: not ESO's NoSecretErr.
            Flavor::OpenBao => ProviderError::Unsupported(format!("secret not found: at {path}")),
        };
        let body = self
            .read("GET", &path, &query, "ReadSecretData")
            .await
            .map_err(|e| prefixed(e, "cannot read secret data from Vault: "))?
            .ok_or_else(no_secret)?;
        let data = body.get("data").cloned().unwrap_or_default();
        let data = if self.paths.v1 {
            data
        } else {
            let Some(inner) = data.get("data") else {
                return Err(ProviderError::Unavailable(format!(
                    "{}: failed to find data field",
                    describe("GET", &path)
                )));
            };
            inner.clone()
        };
        match data {
            serde_json::Value::Object(map) => Ok(map),
            serde_json::Value::Null => Err(no_secret()),
            _ => Err(ProviderError::Unavailable(format!(
                "{}: failed to unmarshall JSON",
                describe("GET", &path)
            ))),
        }
    }

    /// ESO's `readSecretMetadata`: system keys (KV v2) overlaid by `custom_metadata`.
    async fn read_metadata(&self, key: &str) -> Result<BTreeMap<String, String>, ProviderError> {
        let path = self
            .paths
            .metadata(key)
            .map_err(ProviderError::InvalidConfig)?;
        let body = self
            .read("GET", &path, &[], "ReadSecretData")
            .await
            .map_err(|e| prefixed(e, "cannot read secret data from Vault: "))?
            .ok_or_else(|| {
                ProviderError::Unsupported(format!("secret not found: metadata of {key:?}"))
            })?;
        let data = body.get("data").cloned().unwrap_or_default();
        let mut out = BTreeMap::new();
        if !self.paths.v1 {
            for k in ["created_time", "current_version", "delete_version_after"] {
                if let Some(v) = data.get(k).filter(|v| !v.is_null()) {
                    out.insert(k.to_string(), go_text(v));
                }
            }
        }
        if let Some(custom) = data.get("custom_metadata").and_then(|c| c.as_object()) {
            for (k, v) in custom {
                out.insert(k.clone(), go_text(v));
            }
        }
        Ok(out)
    }

    /// ESO's `listSecrets`: every secret under `path` (ending in `/`, or empty for the
    /// mount's root), recursively, named relative to the mount.
    fn list<'a>(
        &'a self,
        path: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<Vec<String>, ProviderError>> {
        Box::pin(async move {
            let url = self
                .paths
                .metadata(path)
                .map_err(ProviderError::InvalidConfig)?;
            let body = self
                .read("GET", &url, &[("list", "true")], "ListSecrets")
                .await
                .map_err(|e| prefixed(e, "cannot read secret data from Vault: "))?
                .ok_or_else(|| ProviderError::NoSecret {
                    key: path.to_string(),
                    version: None,
                })?;
            let keys: Vec<String> = body
                .get("data")
                .and_then(|d| d.get("keys"))
                .and_then(|k| k.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let mut out = Vec::new();
            for k in keys {
                let full = format!("{path}{k}");
                if k.ends_with('/') {
                    out.extend(self.list(&full).await?);
                } else {
                    out.push(full);
                }
            }
            Ok(out)
        })
    }
}

impl VaultStore {
    /// ESO's OpenBao `GetAllSecrets`: by name only, one level under `path` (folders skipped),
    /// keys relative to `path`. (ESO then reads each name from the mount's root, which finds
    /// nothing when `path` is set; esox reads `path/name`.)
    async fn find_openbao(
        &self,
        query: &FindQuery,
    ) -> Result<BTreeMap<String, SecretBytes>, ProviderError> {
        if !query.tags.is_empty() {
            return Err(ProviderError::Unsupported(
                "tag based search is not implemented".into(),
            ));
        }
        let Some(re) = &query.name_regexp else {
            return Err(ProviderError::InvalidConfig(
                "find.name is required by the OpenBao provider".into(),
            ));
        };
        let regex = Regex::new(re).map_err(|e| {
            ProviderError::InvalidConfig(format!(
                "invalid find.name.regexp {:?}: {e}",
                crate::api::abbreviate(re, 100)
            ))
        })?;
        let base = query.path.as_deref().unwrap_or_default().trim_matches('/');
        let url = self
            .paths
            .metadata(base)
            .map_err(ProviderError::InvalidConfig)?;
        let Some(body) = self
            .read("GET", &url, &[("list", "true")], "ListSecrets")
            .await?
        else {
            return Ok(BTreeMap::new());
        };
        let keys: Vec<String> = body
            .get("data")
            .and_then(|d| d.get("keys"))
            .and_then(|k| k.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let mut out = BTreeMap::new();
        for name in keys {
            if name.ends_with('/') || !regex.is_match(&name) {
                continue;
            }
            let key = if base.is_empty() {
                name.clone()
            } else {
                format!("{base}/{name}")
            };
            let data = self.read_secret(&key, None).await?;
            out.insert(
                name,
                SecretBytes::new(go_json(&serde_json::Value::Object(data))),
            );
        }
        Ok(out)
    }

    /// ESO's OpenBao `Validate`: the mount exists, is `kv`, of the store's version.
    async fn validate_openbao(&self) -> Result<Option<String>, ProviderError> {
        let mount = self.paths.mount.clone().unwrap_or_default();
        let path = format!("sys/mounts/{mount}");
        let server = self.server.clone();
        let wrap = |e: ProviderError| prefixed(e, &format!("error while validating {server:?}: "));
        let body = self
            .read("GET", &path, &[], "ReadSecretData")
            .await
            .map_err(wrap)?
            .ok_or_else(|| {
                wrap(ProviderError::InvalidConfig(format!(
                    "{}: no such mount",
                    describe("GET", &path)
                )))
            })?;
        let data = body.get("data").cloned().unwrap_or(body);
        let kind = data
            .get("type")
            .and_then(|t| t.as_str())
            .unwrap_or_default();
        if kind != "kv" {
            return Err(ProviderError::InvalidConfig(format!(
                "expected mount type \"kv\" found {kind:?}"
            )));
        }
        let actual = data
            .get("options")
            .and_then(|o| o.get("version"))
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let expected = if self.paths.v1 { "1" } else { "2" };
        if actual != expected {
            return Err(ProviderError::InvalidConfig(format!(
                "expected kv engine version {expected} found version {actual}"
            )));
        }
        Ok(None)
    }
}

impl VaultStore {
    /// One secret's data as JSON (or, `metadataPolicy: Fetch`, its metadata).
    async fn value(&self, req: &GetRequest) -> Result<SecretBytes, ProviderError> {
        if self.flavor == Flavor::OpenBao {
            // ESO's OpenBao provider ignores metadataPolicy.
            if let Some(v) = &req.version {
                if self.paths.v1 {
                    return Err(ProviderError::Unsupported(
                        "OpenBao KVv1 secrets do not support versioning (use KVv2)".into(),
                    ));
                }
                if v.parse::<u64>().is_err() {
                    return Err(ProviderError::InvalidConfig(format!(
                        "invalid Ref.Version: {:?} is not an integer",
                        crate::api::abbreviate(v, 40)
                    )));
                }
            }
            let data = self.read_secret(&req.key, req.version.as_deref()).await?;
            return Ok(SecretBytes::new(go_json(&serde_json::Value::Object(data))));
        }
        if req.metadata {
            if self.paths.v1 {
                return Err(ProviderError::Unsupported(
                    "cannot perform metadata fetch operations with kv version v1".into(),
                ));
            }
            let meta = self.read_metadata(&req.key).await?;
            if meta.is_empty() {
                return Ok(SecretBytes::new(Vec::new()));
            }
            let value = serde_json::to_value(&meta).unwrap_or_default();
            return Ok(SecretBytes::new(go_json(&value)));
        }
        let data = self.read_secret(&req.key, req.version.as_deref()).await?;
        Ok(SecretBytes::new(go_json(&serde_json::Value::Object(data))))
    }
}

#[async_trait]
impl Provider for VaultStore {
    async fn get(&self, req: &GetRequest) -> Result<Fetched, ProviderError> {
        let lookup = match self.flavor {
            Flavor::OpenBao => Lookup::OpenBao,
            _ => Lookup::Vault,
        };
        let bytes = self.value(req).await?;
        Ok(Fetched::Value { bytes, lookup })
    }

    async fn find(
        &self,
        query: &FindQuery,
    ) -> Result<BTreeMap<String, SecretBytes>, ProviderError> {
        if self.flavor == Flavor::OpenBao {
            return self.find_openbao(query).await;
        }
        if self.paths.v1 && !query.tags.is_empty() {
            return Err(ProviderError::Unsupported(
                "cannot perform find by tag operations with kv version v1".into(),
            ));
        }
        let regex = match &query.name_regexp {
            Some(re) => Some(Regex::new(re).map_err(|e| {
                ProviderError::InvalidConfig(format!(
                    "invalid find.name.regexp {:?}: {e}",
                    crate::api::abbreviate(re, 100)
                ))
            })?),
            None => None,
        };
        let search = query
            .path
            .as_deref()
            .map(|p| format!("{p}/"))
            .unwrap_or_default();
        let candidates = self.list(&search).await?;
        let mut out = BTreeMap::new();
        for name in candidates {
            let wanted = match &regex {
                Some(re) => re.is_match(&name),
                None => {
                    let meta = self.read_metadata(&name).await?;
                    query
                        .tags
                        .iter()
                        .all(|(k, v)| meta.get(k).is_some_and(|m| m == v))
                }
            };
            if !wanted {
                continue;
            }
            match self.read_secret(&name, None).await {
                Ok(data) => {
                    out.insert(
                        name,
                        SecretBytes::new(go_json(&serde_json::Value::Object(data))),
                    );
                }
                Err(e) if e.is_no_secret() => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn validate(&self) -> Result<Option<String>, ProviderError> {
        if self.flavor == Flavor::OpenBao {
            return self.validate_openbao().await;
        }
        if !self.slot.can_login() && self.slot.lease().await?.token.is_none() {
            // No auth: nothing to check without reading a secret.
            return Ok(None);
        }
        let data = self
            .with_token(|lease| async move { self.slot.lookup_self(&lease).await })
            .await
            .map_err(|e| prefixed(e, "invalid vault credentials: "))?;
        let name = data
            .get("display_name")
            .and_then(|v| v.as_str())
            .unwrap_or("token");
        let policies = data
            .get("policies")
            .and_then(|p| p.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        Ok(Some(format!("{name} (policies: {policies})")))
    }

    /// Vault stores, and (unlike ESO 2.9, whose `openBao` block is read-only) OpenBao stores.
    fn capabilities(&self) -> Capabilities {
        Capabilities::ReadWrite
    }

    async fn push_secret(
        &self,
        secret: &SourceSecret,
        data: &PushSecretData,
    ) -> Result<PushOutcome, ProviderError> {
        self.push(secret, data).await
    }

    async fn delete_secret(&self, data: &PushSecretData) -> Result<(), ProviderError> {
        self.delete_pushed(data).await
    }

    async fn secret_exists(&self, data: &PushSecretData) -> Result<bool, ProviderError> {
        self.exists(data).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn retry_settings_as_eso_gives_them_to_vaults_client() {
        let settings = |max: Option<i32>, interval: Option<&str>| crate::api::RetrySettings {
            max_retries: max,
            retry_interval: interval.map(str::to_string),
        };
        let secs = std::time::Duration::from_secs;
        let cases = [
            (
                None,
                http::Retry {
                    max: 0,
                    wait: secs(1),
                },
            ),
            (
                Some(settings(None, None)),
                http::Retry {
                    max: 0,
                    wait: secs(1),
                },
            ),
            (
                Some(settings(Some(3), Some("2s"))),
                http::Retry {
                    max: 3,
                    wait: secs(2),
                },
            ),
            (
                Some(settings(Some(-1), Some("500ms"))),
                http::Retry {
                    max: 0,
                    wait: std::time::Duration::from_millis(500),
                },
            ),
            (
                Some(settings(Some(1000), None)),
                http::Retry {
                    max: 10,
                    wait: secs(1),
                },
            ),
        ];
        for (given, want) in cases {
            assert_eq!(retry_of(given.as_ref()).unwrap(), want, "{given:?}");
        }
        let bad = retry_of(Some(&settings(Some(1), Some("soon")))).unwrap_err();
        assert!(
            bad.to_string().contains("spec.retrySettings.retryInterval"),
            "{bad}"
        );
    }

    #[test]
    fn json_is_written_as_go_writes_it() {
        let v = json!({"b": "<a&b>", "a": {"y": 1, "x": [true, null]}});
        assert_eq!(
            String::from_utf8(go_json(&v)).unwrap(),
            r#"{"a":{"x":[true,null],"y":1},"b":"\u003ca\u0026b\u003e"}"#
        );
    }

    #[test]
    fn replies_are_judged_by_status() {
        let reply = |status, body| Reply { status, body };
        assert!(matches!(
            check(reply(200, json!({"data": {}})), "GET", "p"),
            Ok(Some(_))
        ));
        assert!(matches!(
            check(reply(404, json!({"errors": []})), "GET", "p"),
            Ok(None)
        ));
        let denied = check(
            reply(403, json!({"errors": ["permission denied"]})),
            "GET",
            "secret/data/x",
        )
        .unwrap_err();
        assert_eq!(
            denied.to_string(),
            "access denied: GET secret/data/x: permission denied (HTTP 403)"
        );
        let sealed = check(
            reply(503, json!({"errors": ["Vault is sealed"]})),
            "GET",
            "secret/data/x",
        )
        .unwrap_err();
        assert_eq!(
            sealed.to_string(),
            "provider unavailable: GET secret/data/x: HTTP 503: Vault is sealed"
        );
    }
}
