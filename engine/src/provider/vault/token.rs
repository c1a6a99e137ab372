//! Vault tokens: one per store identity, shared, renewed, replaced and revoked — better than
//! ESO, which logs in on every reconcile (and revokes afterwards) unless a flag is set, and
//! never renews.
//!
//! A [`TokenSlot`] holds the token of one identity (server, namespace, auth method, mount, role
//! and the credentials' sources). Slots live in a process-wide registry, so the store
//! reconciler's validation and every ExternalSecret reading the store share one token:
//! - the first caller logs in; concurrent callers wait on the slot's lock and get the same
//!   token (single flight: no race that leaks a second token);
//! - a renewable token is renewed (`auth/token/renew-self`) once two thirds of its TTL have
//!   passed, on the first use after that; one past 90 % of its TTL, or refused with 403 while
//!   `lookup-self` refuses it too (revoked from outside, server restarted), is replaced by a
//!   new login;
//! - a slot no provider has held for 15 minutes (its store changed or was deleted, its
//!   credentials rotated) is revoked (`auth/token/revoke-self`) by a registry sweep, and so is
//!   one unused for a day; every token is revoked at shutdown.
//!
//! Tokens are [`Zeroizing`] strings, never formatted: messages name the call and the login
//! method, not the token.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use zeroize::Zeroizing;

use super::http::{Http, describe};
use crate::provider::{Calls, ProviderError, Recorded};

/// A slot unused this long has its token revoked.
const IDLE: Duration = Duration::from_secs(24 * 3600);
/// A slot no provider holds is kept this long after its last use before its token is
/// revoked: the store reconciler's validation holds it only while it validates, and the
/// ExternalSecrets' providers are built after (a store revalidates every few minutes).
const UNHELD: Duration = Duration::from_secs(15 * 60);

/// Where a JWT comes from.
pub enum JwtSource {
    /// A fixed token (from a Secret).
    Static(Zeroizing<String>),
    /// A fresh ServiceAccount token from the TokenRequest API for each login.
    TokenRequest {
        /// The ServiceAccounts of the namespace.
        api: Box<Api<ServiceAccount>>,
        /// The ServiceAccount.
        name: String,
        /// Audiences (empty: the apiserver's default).
        audiences: Vec<String>,
        /// Lifetime in seconds.
        expiration: i64,
    },
}

impl JwtSource {
    async fn jwt(&self) -> Result<Zeroizing<String>, ProviderError> {
        match self {
            JwtSource::Static(t) => Ok(t.clone()),
            JwtSource::TokenRequest {
                api,
                name,
                audiences,
                expiration,
            } => {
                let request = TokenRequest {
                    spec: TokenRequestSpec {
                        audiences: audiences.clone(),
                        expiration_seconds: Some(*expiration),
                        bound_object_ref: None,
                    },
                    ..Default::default()
                };
                let response: TokenRequest = api
                    .create_subresource("token", name, &PostParams::default(), &request)
                    .await
                    .map_err(|e| {
                        ProviderError::Unavailable(format!(
                            "cannot request Kubernetes service account token for service account {name:?}: {e}"
                        ))
                    })?;
                response
                    .status
                    .map(|s| Zeroizing::new(s.token))
                    .ok_or_else(|| {
                        ProviderError::Unavailable(format!(
                            "cannot request Kubernetes service account token for service account {name:?}: no token in the answer"
                        ))
                    })
            }
        }
    }
}

/// How a store logs in.
pub enum Login {
    /// No `auth`: calls carry no token.
    Anonymous,
    /// `tokenSecretRef`: used as is, never renewed or revoked.
    Static(Arc<Zeroizing<String>>),
    /// `appRole`.
    AppRole {
        /// Mount path.
        mount: String,
        /// Role ID.
        role_id: String,
        /// Secret ID.
        secret_id: Zeroizing<String>,
    },
    /// `kubernetes` or `jwt`: a JWT exchanged for a token.
    Jwt {
        /// Mount path.
        mount: String,
        /// Vault role (`None`: the mount's default role).
        role: Option<String>,
        /// Where the JWT comes from.
        jwt: JwtSource,
    },
    /// `userPass` or `ldap`.
    Password {
        /// Mount path.
        mount: String,
        /// Username.
        username: String,
        /// Password.
        password: Zeroizing<String>,
    },
    /// `cert`: the TLS client certificate is the credential.
    Cert {
        /// Mount path.
        mount: String,
        /// Certificate role (`name`).
        name: Option<String>,
    },
}

impl Login {
    /// The login call's path, for messages and the audit log.
    pub fn path(&self) -> Option<String> {
        match self {
            Login::Anonymous | Login::Static(_) => None,
            Login::AppRole { mount, .. } | Login::Jwt { mount, .. } | Login::Cert { mount, .. } => {
                Some(format!("auth/{mount}/login"))
            }
            Login::Password {
                mount, username, ..
            } => Some(format!("auth/{mount}/login/{username}")),
        }
    }
}

/// A token and what is known of its lifetime.
struct Token {
    value: Arc<Zeroizing<String>>,
    generation: u64,
    obtained: Instant,
    /// Zero: no expiry.
    ttl: Duration,
    renewable: bool,
}

impl Token {
    fn expiring(&self) -> bool {
        !self.ttl.is_zero() && self.obtained.elapsed() >= self.ttl.mul_f64(0.9)
    }

    fn due_for_renewal(&self) -> bool {
        self.renewable && !self.ttl.is_zero() && self.obtained.elapsed() >= self.ttl * 2 / 3
    }
}

static GENERATION: AtomicU64 = AtomicU64::new(1);

/// The token of one identity, shared by every provider built for it.
pub struct TokenSlot {
    login: Login,
    http: Http,
    /// The namespace logins (and token self-calls) are made in.
    auth_namespace: Option<String>,
    calls: Calls,
    state: tokio::sync::Mutex<Option<Token>>,
    last_used: Mutex<Instant>,
}

/// A token handed to a call: its value and its generation (to invalidate exactly it).
#[derive(Clone)]
pub struct Lease {
    /// The token (`None`: anonymous).
    pub token: Option<Arc<Zeroizing<String>>>,
    generation: u64,
}

impl Lease {
    /// The token as a header value.
    pub fn as_deref(&self) -> Option<&str> {
        self.token.as_deref().map(|t| t.as_str())
    }
}

impl TokenSlot {
    /// A slot (no token yet: the first [`TokenSlot::lease`] logs in).
    pub fn new(login: Login, http: Http, auth_namespace: Option<String>, calls: Calls) -> Self {
        TokenSlot {
            login,
            http,
            auth_namespace,
            calls,
            state: tokio::sync::Mutex::new(None),
            last_used: Mutex::new(Instant::now()),
        }
    }

    /// Whether this slot's token can be replaced by logging in again.
    pub fn can_login(&self) -> bool {
        !matches!(self.login, Login::Anonymous | Login::Static(_))
    }

    fn touch(&self) {
        *self
            .last_used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now();
    }

    fn idle(&self) -> Duration {
        self.last_used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .elapsed()
    }

    /// A usable token: the cached one, renewed when due, or a new login.
    pub async fn lease(&self) -> Result<Lease, ProviderError> {
        self.touch();
        match &self.login {
            Login::Anonymous => {
                return Ok(Lease {
                    token: None,
                    generation: 0,
                });
            }
            Login::Static(t) => {
                return Ok(Lease {
                    token: Some(t.clone()),
                    generation: 0,
                });
            }
            _ => {}
        }
        let mut state = self.state.lock().await;
        if let Some(t) = state.as_ref()
            && !t.expiring()
        {
            if !t.due_for_renewal() {
                return Ok(lease_of(t));
            }
            match self.renew(t).await {
                Ok(renewed) => {
                    let lease = lease_of(&renewed);
                    *state = Some(renewed);
                    return Ok(lease);
                }
                // Vault unreachable: the token is still valid, use it; the next use
                // tries again.
                Err(ProviderError::Unavailable(_) | ProviderError::Timeout { .. }) => {
                    return Ok(lease_of(t));
                }
                Err(e) => {
                    tracing::info!(error = %e, "vault token renewal refused; logging in again");
                }
            }
        }
        let fresh = self.login().await?;
        let lease = lease_of(&fresh);
        if let Some(old) = state.replace(fresh) {
            // Replaced before it expired (renewal refused): revoke it, best effort.
            if !old.expiring() {
                self.revoke_token(&old.value).await;
            }
        }
        Ok(lease)
    }

    /// Forgets the token of `lease` if it is still the current one (Vault refused it), so
    /// the next [`TokenSlot::lease`] logs in again.
    pub async fn invalidate(&self, lease: &Lease) {
        let mut state = self.state.lock().await;
        if state
            .as_ref()
            .is_some_and(|t| t.generation == lease.generation)
        {
            *state = None;
        }
    }

    /// `auth/token/lookup-self` with `lease`: the token's data.
    pub async fn lookup_self(&self, lease: &Lease) -> Result<serde_json::Value, ProviderError> {
        const PATH: &str = "auth/token/lookup-self";
        let reply = self
            .http
            .call(
                "GET",
                PATH,
                &[],
                lease.as_deref(),
                self.auth_namespace.as_deref(),
                None,
            )
            .await
            .and_then(|r| super::check(r, "GET", PATH))
            .recorded(&self.calls, "LookupSelf")?;
        Ok(reply
            .and_then(|b| b.get("data").cloned())
            .unwrap_or_default())
    }

    async fn login(&self) -> Result<Token, ProviderError> {
        let Some(path) = self.login.path() else {
            return Err(ProviderError::InvalidConfig(
                "no login method configured".into(),
            ));
        };
        let body = match &self.login {
            Login::AppRole {
                role_id, secret_id, ..
            } => json!({"role_id": role_id, "secret_id": secret_id.as_str()}),
            Login::Jwt { role, jwt, .. } => {
                let jwt = jwt.jwt().await?;
                match role {
                    Some(r) => json!({"role": r, "jwt": jwt.as_str()}),
                    None => json!({"jwt": jwt.as_str()}),
                }
            }
            Login::Password { password, .. } => json!({"password": password.as_str()}),
            Login::Cert { name, .. } => match name {
                Some(n) => json!({"name": n}),
                None => json!({}),
            },
            Login::Anonymous | Login::Static(_) => json!({}),
        };
        let result = self
            .http
            .call(
                "PUT",
                &path,
                &[],
                None,
                self.auth_namespace.as_deref(),
                Some(&body),
            )
            .await;
        drop(body);
        let reply = result
            .and_then(|r| super::check(r, "PUT", &path))
            .map_err(|e| login_error(&path, e))
            .recorded(&self.calls, "Login")?
            .unwrap_or_default();
        let auth = reply.get("auth").cloned().unwrap_or_default();
        let value = auth
            .get("client_token")
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ProviderError::Unavailable(format!(
                    "{}: the answer holds no client token",
                    describe("PUT", &path)
                ))
            })?;
        let ttl = auth
            .get("lease_duration")
            .and_then(|d| d.as_u64())
            .unwrap_or(0);
        let renewable = auth
            .get("renewable")
            .and_then(|r| r.as_bool())
            .unwrap_or(false);
        tracing::debug!(path = %path, ttl, renewable, "vault login");
        Ok(Token {
            value: Arc::new(Zeroizing::new(value.to_string())),
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
            obtained: Instant::now(),
            ttl: Duration::from_secs(ttl),
            renewable,
        })
    }

    async fn renew(&self, t: &Token) -> Result<Token, ProviderError> {
        const PATH: &str = "auth/token/renew-self";
        let reply = self
            .http
            .call(
                "PUT",
                PATH,
                &[],
                Some(t.value.as_str()),
                self.auth_namespace.as_deref(),
                Some(&json!({})),
            )
            .await
            .and_then(|r| super::check(r, "PUT", PATH))
            .recorded(&self.calls, "RenewSelf")?
            .unwrap_or_default();
        let auth = reply.get("auth").cloned().unwrap_or_default();
        let ttl = auth
            .get("lease_duration")
            .and_then(|d| d.as_u64())
            .unwrap_or(0);
        if ttl == 0 {
            // At its max TTL: nothing left to renew (0 here is not "no expiry").
            return Err(ProviderError::InvalidConfig(
                "the token reached its maximum TTL".into(),
            ));
        }
        tracing::debug!(ttl, "vault token renewed");
        Ok(Token {
            value: t.value.clone(),
            generation: t.generation,
            obtained: Instant::now(),
            ttl: Duration::from_secs(ttl),
            renewable: auth
                .get("renewable")
                .and_then(|r| r.as_bool())
                .unwrap_or(false),
        })
    }

    async fn revoke_token(&self, token: &Zeroizing<String>) {
        const PATH: &str = "auth/token/revoke-self";
        let result = self
            .http
            .call(
                "PUT",
                PATH,
                &[],
                Some(token.as_str()),
                self.auth_namespace.as_deref(),
                Some(&json!({})),
            )
            .await
            .and_then(|r| super::check(r, "PUT", PATH))
            .recorded(&self.calls, "RevokeSelf");
        if let Err(e) = result {
            tracing::info!(error = %e, "vault token revocation failed (it expires on its own)");
        }
    }

    /// Revokes the current token, if any (the slot logs in again when used again).
    pub async fn revoke(&self) {
        let taken = self.state.lock().await.take();
        if let Some(t) = taken
            && !t.expiring()
        {
            self.revoke_token(&t.value).await;
        }
    }
}

fn lease_of(t: &Token) -> Lease {
    Lease {
        token: Some(t.value.clone()),
        generation: t.generation,
    }
}

/// A login refused: said so, naming the method's path.
fn login_error(path: &str, e: ProviderError) -> ProviderError {
    match e {
        ProviderError::AccessDenied(m) => {
            ProviderError::AccessDenied(format!("login refused: {m}"))
        }
        ProviderError::InvalidConfig(m) => {
            ProviderError::InvalidConfig(format!("login refused: {m}"))
        }
        ProviderError::NoSecret { .. } => ProviderError::InvalidConfig(format!(
            "login refused: {}: no auth method is mounted there",
            describe("PUT", path)
        )),
        other => other,
    }
}

/// The process-wide slots, by identity.
static SLOTS: LazyLock<Mutex<HashMap<String, Arc<TokenSlot>>>> = LazyLock::new(Default::default);

/// The slot of `key`, made by `make` when there is none. Sweeps the registry on the way:
/// slots nobody else has held for [`UNHELD`], or unused for [`IDLE`], have their token
/// revoked.
pub fn slot(key: String, make: impl FnOnce() -> TokenSlot) -> Arc<TokenSlot> {
    let mut slots = SLOTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut stale = Vec::new();
    slots.retain(|k, s| {
        let unheld = *k != key && Arc::strong_count(s) == 1 && s.idle() > UNHELD;
        if unheld || s.idle() > IDLE {
            stale.push(s.clone());
            false
        } else {
            true
        }
    });
    let slot = slots.entry(key).or_insert_with(|| Arc::new(make())).clone();
    drop(slots);
    if !stale.is_empty()
        && let Ok(rt) = tokio::runtime::Handle::try_current()
    {
        rt.spawn(async move {
            for s in stale {
                s.revoke().await;
            }
        });
    }
    slot
}

/// Revokes every cached token (at shutdown).
pub async fn revoke_all() {
    let slots: Vec<Arc<TokenSlot>> = SLOTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .drain()
        .map(|(_, s)| s)
        .collect();
    for s in slots {
        s.revoke().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A Vault that answers every request with a login reply, counting requests.
    async fn fake_vault(count: Arc<AtomicUsize>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let count = count.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    count.fetch_add(1, Ordering::SeqCst);
                    // Slow enough that concurrent callers overlap.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let body = r#"{"auth":{"client_token":"s.test","lease_duration":3600,"renewable":true}}"#;
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = s.write_all(reply.as_bytes()).await;
                });
            }
        });
        format!("http://{addr}")
    }

    fn slot(url: &str) -> TokenSlot {
        let metrics = Arc::new(crate::metrics::Metrics::new(
            &mut prometheus_client::registry::Registry::default(),
        ));
        let http = Http::new(url, &super::super::http::TlsMaterial::default(), vec![]).unwrap();
        TokenSlot::new(
            Login::AppRole {
                mount: "approle".into(),
                role_id: "r".into(),
                secret_id: Zeroizing::new("s".into()),
            },
            http,
            None,
            Calls::new(&metrics, super::super::PROVIDER),
        )
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_login() {
        let count = Arc::new(AtomicUsize::new(0));
        let url = fake_vault(count.clone()).await;
        let slot = Arc::new(slot(&url));
        let leases = futures::future::join_all((0..20).map(|_| {
            let slot = slot.clone();
            async move { slot.lease().await.unwrap() }
        }))
        .await;
        assert_eq!(count.load(Ordering::SeqCst), 1, "one login for 20 callers");
        assert!(leases.iter().all(|l| l.as_deref() == Some("s.test")));
        // Invalidated: the next caller logs in again, once.
        slot.invalidate(&leases[0]).await;
        slot.lease().await.unwrap();
        slot.lease().await.unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn tokens_are_renewed_at_two_thirds_and_replaced_at_nine_tenths() {
        let token = |age: u64, ttl: u64, renewable: bool| Token {
            value: Arc::new(Zeroizing::new("t".into())),
            generation: 1,
            obtained: Instant::now() - Duration::from_secs(age),
            ttl: Duration::from_secs(ttl),
            renewable,
        };
        assert!(!token(60, 100, true).due_for_renewal());
        assert!(token(67, 100, true).due_for_renewal());
        assert!(!token(67, 100, false).due_for_renewal());
        assert!(!token(89, 100, true).expiring());
        assert!(token(90, 100, true).expiring());
        // No TTL: never expires, never renewed.
        assert!(!token(1_000_000, 0, true).expiring());
        assert!(!token(1_000_000, 0, true).due_for_renewal());
    }
}
