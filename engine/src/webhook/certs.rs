//! The webhook's serving certificate, provisioned by esox itself.
//!
//! ESO runs a separate cert-controller Deployment for this; esox does it inside the controller
//! process, so there is one Deployment to operate and nothing to render at install time (the
//! chart's `genCA` needs `helm install`, which GitOps tools that only run `helm template`
//! do not do). The design, and why:
//!
//! - The CA and the serving certificate live in one Secret (`ca.crt`, `ca.key`, `tls.crt`,
//!   `tls.key`, ESO's key names) so every replica serves the same certificate and a restart
//!   reuses it. Replicas coordinate only through the apiserver's optimistic concurrency
//!   (create, or update at a resourceVersion); there is no elected writer, because the webhook
//!   must answer on every replica, leader or not.
//! - The ValidatingWebhookConfiguration's `caBundle` is kept equal to the Secret's `ca.crt`,
//!   and both objects are watched: a `helm upgrade` that empties the caBundle, or a deleted
//!   Secret, is mended within seconds rather than at the next timer.
//! - When the CA itself is replaced, `ca.crt` keeps the previous CA until it expires, so a
//!   replica still serving a certificate from the old CA stays trusted while it reloads.
//! - The served certificate is swapped in place (a rustls certificate resolver): rotation
//!   needs no restart and drops no connection.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt as _;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use zeroize::Zeroizing;

use super::WebhookError;

/// How long a serving certificate is valid.
pub const SERVING_VALIDITY: SignedDuration = SignedDuration::from_hours(365 * 24);
/// A serving certificate is replaced when it has less than this left.
pub const RENEW_BEFORE: SignedDuration = SignedDuration::from_hours(30 * 24);
/// How long a CA is valid. It is replaced when it would expire before a serving certificate
/// issued now, so a serving certificate never outlives its CA.
pub const CA_VALIDITY: SignedDuration = SignedDuration::from_hours(10 * 365 * 24);

const CA_CRT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";
const TLS_CRT: &str = "tls.crt";
const TLS_KEY: &str = "tls.key";

/// Where the certificate lives and what it must cover.
#[derive(Debug, Clone)]
pub struct CertSettings {
    /// Namespace of the Secret (the controller's own).
    pub namespace: String,
    /// Name of the Secret holding the CA and the serving certificate.
    pub secret: String,
    /// The ValidatingWebhookConfiguration whose `caBundle` esox keeps; none: not patched.
    pub webhook_config: Option<String>,
    /// DNS names (and IP addresses) the serving certificate is valid for.
    pub names: Vec<String>,
}

/// What the Secret needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// The serving certificate is good for a while: use it.
    Keep,
    /// Issue a new serving certificate.
    Issue {
        /// From a new CA too (none yet, or the current one expires too soon).
        new_ca: bool,
    },
}

/// A certificate's validity window and names, read from PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CertInfo {
    not_before: Timestamp,
    not_after: Timestamp,
    names: Vec<String>,
}

fn cert_infos(pem: &[u8]) -> Vec<CertInfo> {
    x509_parser::pem::Pem::iter_from_buffer(pem)
        .filter_map(Result::ok)
        .filter_map(|p| {
            let cert = p.parse_x509().ok()?;
            let v = cert.validity();
            let names = cert
                .subject_alternative_name()
                .ok()
                .flatten()
                .map(|san| {
                    san.value
                        .general_names
                        .iter()
                        .filter_map(|n| match n {
                            x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                            x509_parser::extensions::GeneralName::IPAddress(b) => match b.len() {
                                4 => Some(
                                    std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*b).ok()?)
                                        .to_string(),
                                ),
                                16 => Some(
                                    std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*b).ok()?)
                                        .to_string(),
                                ),
                                _ => None,
                            },
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            Some(CertInfo {
                not_before: Timestamp::from_second(v.not_before.timestamp()).ok()?,
                not_after: Timestamp::from_second(v.not_after.timestamp()).ok()?,
                names,
            })
        })
        .collect()
}

/// The Secret's data: key → bytes, wiped when dropped because `ca.key` and `tls.key` are
/// private keys.
pub type Material = BTreeMap<String, Zeroizing<Vec<u8>>>;

/// Decides what to do with the Secret's current `data` (`None`: no Secret) at `now`.
pub fn plan(data: Option<&Material>, names: &[String], now: Timestamp) -> Plan {
    let get = |k: &str| data.and_then(|d| d.get(k)).map(|v| v.as_slice());
    // The CA is reusable when its key is there and it outlives a certificate issued now.
    let ca_ok = match (get(CA_CRT), get(CA_KEY)) {
        (Some(crt), Some(key)) => {
            let key_ok = std::str::from_utf8(key)
                .ok()
                .is_some_and(|k| KeyPair::from_pem(k).is_ok());
            key_ok
                && cert_infos(crt)
                    .first()
                    .is_some_and(|ca| ca.not_before <= now && ca.not_after > now + SERVING_VALIDITY)
        }
        _ => false,
    };
    if !ca_ok {
        return Plan::Issue { new_ca: true };
    }
    let serving_ok = get(TLS_KEY).is_some()
        && get(TLS_CRT).is_some_and(|crt| {
            cert_infos(crt).first().is_some_and(|c| {
                c.not_before <= now
                    && c.not_after - RENEW_BEFORE > now
                    && names.iter().all(|n| c.names.contains(n))
            })
        });
    if serving_ok {
        Plan::Keep
    } else {
        Plan::Issue { new_ca: false }
    }
}

fn rcgen_time(t: Timestamp) -> Result<time::OffsetDateTime, WebhookError> {
    time::OffsetDateTime::from_unix_timestamp(t.as_second())
        .map_err(|e| WebhookError::Certificate(format!("time out of range: {e}")))
}

fn cert_err(what: &'static str) -> impl Fn(rcgen::Error) -> WebhookError {
    move |e| WebhookError::Certificate(format!("{what}: {e}"))
}

/// Issues what `plan` asked for, keeping whatever of `data` stays valid. Returns the Secret's
/// new data.
pub fn issue(
    data: Option<&Material>,
    names: &[String],
    now: Timestamp,
    new_ca: bool,
) -> Result<Material, WebhookError> {
    // Backdated a little: the apiserver's clock may lag ours.
    let not_before = now - SignedDuration::from_mins(5);
    let (ca_pem, ca_key_pem, bundle) = if new_ca {
        let key = KeyPair::generate().map_err(cert_err("generating the CA key"))?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "esox-webhook-ca");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = rcgen_time(not_before)?;
        params.not_after = rcgen_time(now + CA_VALIDITY)?;
        let cert = params
            .self_signed(&key)
            .map_err(cert_err("signing the CA"))?;
        let ca_pem = cert.pem();
        // Keep trusting the previous CAs while they are valid: replicas may still serve
        // certificates they issued.
        let mut bundle = ca_pem.clone();
        if let Some(old) = data.and_then(|d| d.get(CA_CRT)) {
            for p in x509_parser::pem::Pem::iter_from_buffer(old).filter_map(Result::ok) {
                let valid = p.parse_x509().ok().is_some_and(|c| {
                    Timestamp::from_second(c.validity().not_after.timestamp())
                        .is_ok_and(|t| t > now)
                });
                if valid {
                    bundle.push_str(&pem_block("CERTIFICATE", &p.contents));
                }
            }
        }
        (ca_pem, Zeroizing::new(key.serialize_pem()), bundle)
    } else {
        let d = data.expect("plan keeps the CA only when the Secret has one");
        let bundle = String::from_utf8_lossy(&d[CA_CRT]).into_owned();
        let first = x509_parser::pem::Pem::iter_from_buffer(&d[CA_CRT])
            .filter_map(Result::ok)
            .next()
            .ok_or_else(|| WebhookError::Certificate("ca.crt holds no certificate".into()))?;
        (
            pem_block("CERTIFICATE", &first.contents),
            Zeroizing::new(String::from_utf8_lossy(&d[CA_KEY]).into_owned()),
            bundle,
        )
    };
    let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(cert_err("reading the CA key"))?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).map_err(cert_err("reading the CA"))?;

    let key = KeyPair::generate().map_err(cert_err("generating the serving key"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name.push(
        DnType::CommonName,
        names.first().cloned().unwrap_or_default(),
    );
    params.subject_alt_names = names
        .iter()
        .map(|n| match n.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => n
                .clone()
                .try_into()
                .map(SanType::DnsName)
                .map_err(cert_err("a webhook DNS name")),
        })
        .collect::<Result<_, _>>()?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = rcgen_time(not_before)?;
    params.not_after = rcgen_time(now + SERVING_VALIDITY)?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(cert_err("signing the serving certificate"))?;

    let mut out = BTreeMap::new();
    out.insert(CA_CRT.to_string(), Zeroizing::new(bundle.into_bytes()));
    out.insert(
        CA_KEY.to_string(),
        Zeroizing::new(ca_key_pem.as_bytes().to_vec()),
    );
    out.insert(TLS_CRT.to_string(), Zeroizing::new(cert.pem().into_bytes()));
    out.insert(
        TLS_KEY.to_string(),
        Zeroizing::new(key.serialize_pem().into_bytes()),
    );
    Ok(out)
}

fn pem_block(tag: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = format!("-----BEGIN {tag}-----\n");
    for line in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        s.push('\n');
    }
    s.push_str(&format!("-----END {tag}-----\n"));
    s
}

/// The certificate the webhook serves, replaced in place on rotation.
#[derive(Debug)]
pub struct Resolver {
    current: RwLock<Option<(Vec<u8>, Arc<CertifiedKey>)>>,
}

impl Resolver {
    fn new() -> Self {
        Resolver {
            current: RwLock::new(None),
        }
    }

    /// Serves `crt`/`key` (PEM) from now on, unless they are what is served already.
    fn set(&self, crt: &[u8], key: &[u8]) -> Result<bool, WebhookError> {
        if self
            .current
            .read()
            .expect("resolver lock")
            .as_ref()
            .is_some_and(|(c, _)| c == crt)
        {
            return Ok(false);
        }
        let certified = certified_key(crt, key)?;
        *self.current.write().expect("resolver lock") = Some((crt.to_vec(), Arc::new(certified)));
        Ok(true)
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current
            .read()
            .expect("resolver lock")
            .as_ref()
            .map(|(_, k)| k.clone())
    }
}

fn certified_key(crt: &[u8], key: &[u8]) -> Result<CertifiedKey, WebhookError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(crt)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| WebhookError::Tls(format!("tls.crt: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(key)
        .map_err(|e| WebhookError::Tls(format!("tls.key: {e}")))?;
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    CertifiedKey::from_der(certs, key, &provider).map_err(|e| WebhookError::Tls(e.to_string()))
}

/// Makes sure the Secret holds a good certificate, serves it, and keeps the caBundle in step;
/// returns when the certificate must next be looked at.
async fn keep_once(
    client: &kube::Client,
    settings: &CertSettings,
    resolver: &Resolver,
) -> Result<Timestamp, WebhookError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &settings.namespace);
    let kube_err = |what: String| move |e: kube::Error| WebhookError::Kube(format!("{what}: {e}"));
    let name = &settings.secret;
    let now = Timestamp::now();
    let mut existing = api
        .get_opt(name)
        .await
        .map_err(kube_err(format!("could not get Secret {name:?}")))?;
    // Moved out of the object (not copied), so the keys live only in wiped buffers.
    let data: Option<Material> = existing.as_mut().map(|s| {
        s.data
            .take()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, Zeroizing::new(v.0)))
            .collect()
    });
    let data = match plan(data.as_ref(), &settings.names, now) {
        Plan::Keep => data.expect("Keep needs a Secret"),
        Plan::Issue { new_ca } => {
            let new = issue(data.as_ref(), &settings.names, now, new_ca)?;
            // The request body is the one copy outside a wiped buffer; it is dropped with the
            // object once the call returns.
            let bytes: BTreeMap<String, ByteString> = new
                .iter()
                .map(|(k, v)| (k.clone(), ByteString(v.to_vec())))
                .collect();
            match existing {
                None => {
                    let secret = Secret {
                        metadata: ObjectMeta {
                            name: Some(name.clone()),
                            namespace: Some(settings.namespace.clone()),
                            labels: Some(
                                [
                                    ("app.kubernetes.io/component", "webhook"),
                                    ("app.kubernetes.io/managed-by", "esox"),
                                ]
                                .into_iter()
                                .map(|(k, v)| (k.to_string(), v.to_string()))
                                .collect(),
                            ),
                            ..Default::default()
                        },
                        type_: Some("kubernetes.io/tls".into()),
                        data: Some(bytes),
                        ..Default::default()
                    };
                    // AlreadyExists: another replica won; the next round reads its Secret.
                    api.create(&PostParams::default(), &secret)
                        .await
                        .map_err(kube_err(format!("could not create Secret {name:?}")))?;
                }
                Some(mut secret) => {
                    secret.data = Some(bytes);
                    // Conflict: another replica rotated first; the next round reads its Secret.
                    api.replace(name, &PostParams::default(), &secret)
                        .await
                        .map_err(kube_err(format!("could not update Secret {name:?}")))?;
                }
            }
            tracing::info!(secret = %name, new_ca, "issued a new webhook serving certificate");
            new
        }
    };
    if resolver.set(&data[TLS_CRT], &data[TLS_KEY])? {
        tracing::info!(secret = %name, "serving the webhook certificate from the Secret");
    }
    if let Some(config) = &settings.webhook_config {
        patch_ca_bundle(client, config, &data[CA_CRT]).await?;
    }
    let renew = cert_infos(&data[TLS_CRT])
        .first()
        .map(|c| c.not_after - RENEW_BEFORE)
        .unwrap_or(now);
    Ok(renew)
}

/// Sets every webhook's `clientConfig.caBundle` in `config` to `bundle` (when it differs).
async fn patch_ca_bundle(
    client: &kube::Client,
    config: &str,
    bundle: &[u8],
) -> Result<(), WebhookError> {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let Some(mut vwc) = api.get_opt(config).await.map_err(|e| {
        WebhookError::Kube(format!(
            "could not get ValidatingWebhookConfiguration {config:?}: {e}"
        ))
    })?
    else {
        tracing::warn!(
            webhook_config = config,
            "ValidatingWebhookConfiguration not found; its caBundle will be set once it exists"
        );
        return Ok(());
    };
    let mut changed = false;
    for hook in vwc.webhooks.iter_mut().flatten() {
        if hook
            .client_config
            .ca_bundle
            .as_ref()
            .map(|b| b.0.as_slice())
            != Some(bundle)
        {
            hook.client_config.ca_bundle = Some(ByteString(bundle.to_vec()));
            changed = true;
        }
    }
    if changed {
        api.replace(config, &PostParams::default(), &vwc)
            .await
            .map_err(|e| {
                WebhookError::Kube(format!(
                    "could not update the caBundle of ValidatingWebhookConfiguration {config:?}: {e}"
                ))
            })?;
        tracing::info!(
            webhook_config = config,
            "set the webhook caBundle from the certificate Secret"
        );
    }
    Ok(())
}

/// Provisions the certificate and keeps it: renews it before it expires and mends the Secret
/// and the caBundle when someone else changes them. Returns at once with the resolver the TLS
/// server uses; handshakes fail until the first certificate is in (the apiserver then applies
/// the webhook's failurePolicy), so a slow or failing apiserver never holds up the controllers.
pub fn provision(
    client: kube::Client,
    settings: CertSettings,
) -> Result<Arc<Resolver>, WebhookError> {
    if settings.names.is_empty() {
        return Err(WebhookError::Certificate(
            "a provisioned certificate needs at least one DNS name (--webhook-dns-name)".into(),
        ));
    }
    let resolver = Arc::new(Resolver::new());
    let keeper = resolver.clone();
    tokio::spawn(async move {
        let fields =
            |name: &str| watcher::Config::default().fields(&format!("metadata.name={name}"));
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &settings.namespace);
        // Backoff on watch errors (it also paces the warnings below): the controllers' short
        // one, so the keeper is back within seconds of an apiserver outage.
        let mut secret_events = watcher(secrets, fields(&settings.secret))
            .backoff(crate::controller::watch::Backoff::new())
            .boxed();
        let mut config_events = match &settings.webhook_config {
            Some(name) => {
                let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
                watcher(api, fields(name))
                    .backoff(crate::controller::watch::Backoff::new())
                    .boxed()
            }
            None => futures::stream::pending().boxed(),
        };
        let mut failures = 0u32;
        loop {
            let next = match keep_once(&client, &settings, &keeper).await {
                Ok(next) => {
                    failures = 0;
                    next
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, "could not provision the webhook certificate; retrying");
                    // 2 s doubling to 32 s: an apiserver that is back is retried soon.
                    let wait = SignedDuration::from_secs(1 << failures.min(5));
                    Timestamp::now() + wait
                }
            };
            // Wake for any change to either object, or when the certificate is due; at least
            // hourly, so a lost watch cannot leave an expiring certificate unnoticed.
            let due = Duration::try_from(next.duration_since(Timestamp::now()))
                .unwrap_or_default()
                .min(Duration::from_secs(3600));
            tokio::select! {
                e = secret_events.next() => if let Some(Err(e)) = e {
                    tracing::warn!(error = %e, "watching the webhook certificate Secret failed");
                },
                e = config_events.next() => if let Some(Err(e)) = e {
                    tracing::warn!(error = %e, "watching the ValidatingWebhookConfiguration failed");
                },
                _ = tokio::time::sleep(due) => {}
            }
        }
    });
    Ok(resolver)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["esox-webhook.esox.svc".into(), "127.0.0.1".into()]
    }

    #[test]
    fn issues_a_ca_and_a_serving_certificate_and_renews_them_in_time() {
        let now = Timestamp::now();
        assert_eq!(plan(None, &names(), now), Plan::Issue { new_ca: true });
        let first = issue(None, &names(), now, true).unwrap();
        assert_eq!(
            first.keys().collect::<Vec<_>>(),
            ["ca.crt", "ca.key", "tls.crt", "tls.key"]
        );
        let serving = &cert_infos(&first["tls.crt"])[0];
        assert_eq!(serving.names, names());
        assert_eq!(plan(Some(&first), &names(), now), Plan::Keep);
        // A new name (a renamed Service) needs a new certificate from the same CA.
        let more = [names(), vec!["other.svc".into()]].concat();
        assert_eq!(
            plan(Some(&first), &more, now),
            Plan::Issue { new_ca: false }
        );
        // 30 days before the serving certificate expires: a new one, same CA.
        let late = now + SERVING_VALIDITY - RENEW_BEFORE + SignedDuration::from_hours(1);
        assert_eq!(
            plan(Some(&first), &names(), late),
            Plan::Issue { new_ca: false }
        );
        let renewed = issue(Some(&first), &names(), late, false).unwrap();
        assert_eq!(renewed["ca.crt"], first["ca.crt"]);
        assert_eq!(renewed["ca.key"], first["ca.key"]);
        assert_ne!(renewed["tls.crt"], first["tls.crt"]);
        assert_eq!(plan(Some(&renewed), &names(), late), Plan::Keep);
        // A CA that would expire before a new serving certificate is replaced; the old one
        // stays in the bundle while it is valid.
        let ca_late = now + CA_VALIDITY - SERVING_VALIDITY + SignedDuration::from_hours(1);
        assert_eq!(
            plan(Some(&renewed), &names(), ca_late),
            Plan::Issue { new_ca: true }
        );
        let rotated = issue(Some(&renewed), &names(), ca_late, true).unwrap();
        assert_eq!(cert_infos(&rotated["ca.crt"]).len(), 2);
        assert_ne!(rotated["ca.key"], renewed["ca.key"]);
        // Garbage is replaced, never served.
        let mut broken = first.clone();
        broken.insert("ca.key".into(), Zeroizing::new(b"not a key".to_vec()));
        assert_eq!(
            plan(Some(&broken), &names(), now),
            Plan::Issue { new_ca: true }
        );
        let mut broken = first.clone();
        broken.insert("tls.crt".into(), Zeroizing::new(b"garbage".to_vec()));
        assert_eq!(
            plan(Some(&broken), &names(), now),
            Plan::Issue { new_ca: false }
        );
    }

    #[test]
    fn the_serving_certificate_verifies_against_the_bundle() {
        let now = Timestamp::now();
        let d = issue(None, &names(), now, true).unwrap();
        let resolver = Resolver::new();
        assert!(resolver.set(&d["tls.crt"], &d["tls.key"]).unwrap());
        assert!(
            !resolver.set(&d["tls.crt"], &d["tls.key"]).unwrap(),
            "unchanged"
        );
        use rustls::client::danger::ServerCertVerifier as _;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls::pki_types::CertificateDer::pem_slice_iter(&d["ca.crt"]) {
            roots.add(c.unwrap()).unwrap();
        }
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        )
        .build()
        .unwrap();
        let leaf = rustls::pki_types::CertificateDer::from_pem_slice(&d["tls.crt"]).unwrap();
        for name in ["esox-webhook.esox.svc", "127.0.0.1"] {
            verifier
                .verify_server_cert(
                    &leaf,
                    &[],
                    &rustls::pki_types::ServerName::try_from(name).unwrap(),
                    &[],
                    rustls::pki_types::UnixTime::now(),
                )
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
