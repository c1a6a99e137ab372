//! ESO's controller flags. esox accepts every flag an ESO Deployment can pass (its Helm chart's
//! `deploy/charts/external-secrets/templates/deployment.yaml`, `extraArgs`, the flags of
//! ESO's `cmd/controller/root.go` and of the feature flag sets its providers register), with
//! ESO's syntax, so that swapping ESO's image for esox's keeps the Deployment's args working:
//!
//! - booleans as Go's `pflag` takes them: `--flag` alone is true, `--flag=false` (or `=0`,
//!   `=f`, `=F`, `=FALSE`, `=False`, and the true spellings) sets a value; a bare value after
//!   a space is not the flag's;
//! - addresses as Go's `net.Listen` takes them: `:8080` is every interface;
//! - ESO's run command has no subcommand: arguments that start with a flag run the controller
//!   ([`with_default_command`]).
//!
//! Flags that mean something in esox are honoured (see docs/flags.md): the reconciler
//! switches and the flood gate ([`ReconcilerArgs`]), `--live-addr`, `--loglevel`, and aliases
//! of esox's own flags (`--enable-leader-election`, `--client-qps`, `--client-burst`, declared
//! beside them in `main`). The rest ([`NoEffectArgs`]) are checked as ESO checks them, then
//! named once at start as accepted with no effect.

use std::ffi::OsString;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use crate::controller::switches::Switches;

/// Parses a boolean as Go's `strconv.ParseBool` (what ESO's flags take).
pub fn go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!(
            "{s:?} is not a boolean (true, false, 1, 0, t, f, TRUE, FALSE, True, False)"
        )),
    }
}

/// Parses a listen address as Go's `net.Listen` does: `:8080` (every interface),
/// `127.0.0.1:8080`, `[::1]:8080` or `localhost:8080`.
pub fn listen_addr(s: &str) -> Result<SocketAddr, String> {
    if let Some(port) = s.strip_prefix(':') {
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{s:?}: the port is not a number from 0 to 65535"))?;
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    s.to_socket_addrs()
        .map_err(|e| format!("{s:?} is not an address to listen on (HOST:PORT or :PORT): {e}"))?
        .next()
        .ok_or_else(|| format!("{s:?} resolves to no address"))
}

/// Parses ESO's `--loglevel` (zap's levels) into the `RUST_LOG` level it means.
pub fn log_level(s: &str) -> Result<String, String> {
    match s {
        "debug" | "info" | "warn" | "error" => Ok(s.to_string()),
        // zap's levels above error all log as errors (and then panic or exit, which esox
        // does not do for a log line).
        "dpanic" | "panic" | "fatal" => Ok("error".to_string()),
        _ => Err(format!(
            "{s:?} is not a log level (debug, info, warn, error, dpanic, panic, fatal)"
        )),
    }
}

fn duration(s: &str) -> Result<Duration, String> {
    crate::api::duration::parse(s).map_err(|e| e.to_string())
}

/// The arguments esox runs with: `args` as given, with `controller` inserted when the first
/// argument is a flag (an ESO Deployment's args, which has no subcommand) other than
/// `--help`/`--version`.
pub fn with_default_command(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut args: Vec<OsString> = args.into_iter().collect();
    let first_is_flag = args
        .get(1)
        .and_then(|a| a.to_str())
        .is_some_and(|a| a.starts_with('-') && !matches!(a, "-h" | "--help" | "-V" | "--version"));
    if first_is_flag {
        args.insert(1, "controller".into());
    }
    args
}

/// ESO's reconciler switches and flood gate, honoured (see
/// [`crate::controller::switches`]). Each defaults to true, as in ESO.
#[derive(clap::Args, Debug, Clone)]
#[command(next_help_heading = "ESO's reconciler switches")]
pub struct ReconcilerArgs {
    /// Validate SecretStores (their Ready condition). When false they are still watched:
    /// ExternalSecrets and PushSecrets read them.
    #[arg(long, env = "ESOX_ENABLE_SECRET_STORE_RECONCILER", action = clap::ArgAction::Set, value_parser = go_bool, num_args = 0..=1, require_equals = true, default_value = "true", default_missing_value = "true", value_name = "BOOL")]
    pub enable_secret_store_reconciler: bool,
    /// Watch and validate ClusterSecretStores. When false nothing reads them: an
    /// ExternalSecret that reads one is left alone (another controller's), a PushSecret that
    /// pushes to one reports it.
    #[arg(long, env = "ESOX_ENABLE_CLUSTER_STORE_RECONCILER", action = clap::ArgAction::Set, value_parser = go_bool, num_args = 0..=1, require_equals = true, default_value = "true", default_missing_value = "true", value_name = "BOOL")]
    pub enable_cluster_store_reconciler: bool,
    /// Run ClusterExternalSecrets (no watch of them, nor of namespaces for them, when false).
    #[arg(long, env = "ESOX_ENABLE_CLUSTER_EXTERNAL_SECRET_RECONCILER", action = clap::ArgAction::Set, value_parser = go_bool, num_args = 0..=1, require_equals = true, default_value = "true", default_missing_value = "true", value_name = "BOOL")]
    pub enable_cluster_external_secret_reconciler: bool,
    /// Run PushSecrets (no watch of them when false; ClusterPushSecrets still stamp them).
    #[arg(long, env = "ESOX_ENABLE_PUSH_SECRET_RECONCILER", action = clap::ArgAction::Set, value_parser = go_bool, num_args = 0..=1, require_equals = true, default_value = "true", default_missing_value = "true", value_name = "BOOL")]
    pub enable_push_secret_reconciler: bool,
    /// Run ClusterPushSecrets (no watch of them when false).
    #[arg(long, env = "ESOX_ENABLE_CLUSTER_PUSH_SECRET_RECONCILER", action = clap::ArgAction::Set, value_parser = go_bool, num_args = 0..=1, require_equals = true, default_value = "true", default_missing_value = "true", value_name = "BOOL")]
    pub enable_cluster_push_secret_reconciler: bool,
    /// ESO's flood gate: an ExternalSecret is not synced through a store whose Ready
    /// condition is False.
    #[arg(long, env = "ESOX_ENABLE_FLOOD_GATE", action = clap::ArgAction::Set, value_parser = go_bool, num_args = 0..=1, require_equals = true, default_value = "true", default_missing_value = "true", value_name = "BOOL")]
    pub enable_flood_gate: bool,
}

impl ReconcilerArgs {
    /// The switches these flags set.
    pub fn switches(&self) -> Switches {
        Switches {
            secret_store: self.enable_secret_store_reconciler,
            cluster_store: self.enable_cluster_store_reconciler,
            cluster_external_secret: self.enable_cluster_external_secret_reconciler,
            push_secret: self.enable_push_secret_reconciler,
            cluster_push_secret: self.enable_cluster_push_secret_reconciler,
            flood_gate: self.enable_flood_gate,
        }
    }
}

/// ESO flags with a meaning in esox that are not esox's own spelling of a flag.
#[derive(clap::Args, Debug, Clone)]
#[command(next_help_heading = "ESO's flags")]
pub struct EsoArgs {
    /// Also serve /healthz and /readyz here (ESO's health endpoint; esox serves them on
    /// --metrics-addr too). `:8082` is every interface.
    #[arg(long, env = "ESOX_LIVE_ADDR", value_parser = listen_addr, value_name = "ADDR")]
    pub live_addr: Option<SocketAddr>,
    /// ESO's controller class: stores whose `spec.controller` names another class are left to
    /// that controller (not validated, not read, not pushed to), and so are the
    /// ExternalSecrets that read them. A store without `spec.controller` is every
    /// controller's.
    #[arg(long, env = "ESOX_CONTROLLER_CLASS", default_value = crate::controller::class::DEFAULT, value_name = "CLASS")]
    pub controller_class: String,
    /// ESO's log level (debug, info, warn, error; dpanic, panic and fatal log errors only),
    /// used when `RUST_LOG` is not set.
    #[arg(long, env = "ESOX_LOGLEVEL", value_parser = log_level, value_name = "LEVEL")]
    pub loglevel: Option<String>,
    /// The flags accepted with no effect.
    #[command(flatten)]
    pub no_effect: NoEffectArgs,
}

/// ESO flags esox accepts and checks but that change nothing in esox (docs/flags.md says why
/// for each). Those given are named at start ([`NoEffectArgs::given`]).
#[derive(clap::Args, Debug, Clone, Default)]
#[command(next_help_heading = "ESO's flags accepted with no effect")]
pub struct NoEffectArgs {
    /// ESO: serve metrics over HTTPS. esox serves them over HTTP.
    #[arg(long, env = "ESOX_METRICS_SECURE", action = clap::ArgAction::Set, value_parser = go_bool, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub metrics_secure: Option<bool>,
    /// ESO: authenticate and authorise metrics requests. esox does not.
    #[arg(long, env = "ESOX_METRICS_AUTH", action = clap::ArgAction::Set, value_parser = go_bool, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub metrics_auth: Option<bool>,
    /// ESO: the metrics TLS certificate's directory.
    #[arg(long, env = "ESOX_METRICS_CERT_DIR", value_name = "DIR")]
    pub metrics_cert_dir: Option<String>,
    /// ESO: the metrics TLS certificate's file name.
    #[arg(long, env = "ESOX_METRICS_CERT_NAME", value_name = "FILE")]
    pub metrics_cert_name: Option<String>,
    /// ESO: the metrics TLS key's file name.
    #[arg(long, env = "ESOX_METRICS_KEY_NAME", value_name = "FILE")]
    pub metrics_key_name: Option<String>,
    /// ESO: HTTP/2 on the metrics server. esox's serves HTTP/1.1.
    #[arg(long, env = "ESOX_ENABLE_HTTP2", action = clap::ArgAction::Set, value_parser = go_bool, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub enable_http2: Option<bool>,
    /// ESO: zap's time format. esox's log lines carry RFC 3339 times (see --log-format).
    #[arg(long, env = "ESOX_ZAP_TIME_ENCODING", value_name = "ENCODING")]
    pub zap_time_encoding: Option<String>,
    /// ESO: cache every Secret. esox caches only managed Secrets' metadata.
    #[arg(long, env = "ESOX_ENABLE_SECRETS_CACHING", action = clap::ArgAction::Set, value_parser = go_bool, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub enable_secrets_caching: Option<bool>,
    /// ESO: cache every ConfigMap. esox reads templateFrom ConfigMaps when it renders.
    #[arg(long, env = "ESOX_ENABLE_CONFIGMAPS_CACHING", action = clap::ArgAction::Set, value_parser = go_bool, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub enable_configmaps_caching: Option<bool>,
    /// ESO: a watch of managed Secrets. esox always has one (metadata only).
    #[arg(long, env = "ESOX_ENABLE_MANAGED_SECRETS_CACHING", action = clap::ArgAction::Set, value_parser = go_bool, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub enable_managed_secrets_caching: Option<bool>,
    /// ESO: read a Secret live when its two caches disagree. esox has one cache.
    #[arg(long, env = "ESOX_ENABLE_SECRET_API_READ_ON_CACHE_MISMATCH", action = clap::ArgAction::Set, value_parser = go_bool, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub enable_secret_api_read_on_cache_mismatch: Option<bool>,
    /// ESO: manage GeneratorState objects. esox keeps none.
    #[arg(long, env = "ESOX_ENABLE_GENERATOR_STATE", action = clap::ArgAction::Set, value_parser = go_bool, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub enable_generator_state: Option<bool>,
    /// ESO: how long a GeneratorState flagged for collection is kept.
    #[arg(long, env = "ESOX_GENERATOR_GC_GRACE_PERIOD", value_parser = duration, value_name = "DURATION")]
    pub generator_gc_grace_period: Option<Duration>,
    /// ESO: app.kubernetes.io/* labels on metrics.
    #[arg(long, env = "ESOX_ENABLE_EXTENDED_METRIC_LABELS", action = clap::ArgAction::Set, value_parser = go_bool, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub enable_extended_metric_labels: Option<bool>,
    /// ESO: its experimental v2 Provider controllers.
    #[arg(long, env = "ESOX_ENABLE_V2_PROVIDERS", action = clap::ArgAction::Set, value_parser = go_bool, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub enable_v2_providers: Option<bool>,
    /// ESO: ExternalSecret targets other than Secrets (ConfigMaps, custom resources).
    #[arg(long, env = "ESOX_UNSAFE_ALLOW_GENERIC_TARGETS", action = clap::ArgAction::Set, value_parser = go_bool, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub unsafe_allow_generic_targets: Option<bool>,
    /// ESO: cache Vault tokens. esox always keeps a store's token while it is valid.
    #[arg(long, alias = "experimental-enable-vault-token-cache", env = "ESOX_ENABLE_VAULT_TOKEN_CACHE", action = clap::ArgAction::Set, value_parser = go_bool, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub enable_vault_token_cache: Option<bool>,
    /// ESO: the Vault token cache's size.
    #[arg(
        long,
        alias = "experimental-vault-token-cache-size",
        env = "ESOX_VAULT_TOKEN_CACHE_SIZE",
        value_name = "N"
    )]
    pub vault_token_cache_size: Option<u64>,
    /// ESO: cache Doppler OIDC tokens (esox has no Doppler provider).
    #[arg(long, env = "ESOX_EXPERIMENTAL_ENABLE_DOPPLER_OIDC_CACHE", action = clap::ArgAction::Set, value_parser = go_bool, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub experimental_enable_doppler_oidc_cache: Option<bool>,
    /// ESO: the Doppler OIDC cache's size.
    #[arg(
        long,
        env = "ESOX_EXPERIMENTAL_DOPPLER_OIDC_CACHE_SIZE",
        value_name = "N"
    )]
    pub experimental_doppler_oidc_cache_size: Option<u64>,
    /// ESO: the Doppler ETag cache's size.
    #[arg(long, env = "ESOX_DOPPLER_ETAG_CACHE_SIZE", value_name = "N")]
    pub doppler_etag_cache_size: Option<u64>,
    /// ESO: the Nebius MysteryBox token cache's size (esox has no Nebius provider).
    #[arg(long, env = "ESOX_MYSTERYBOX_TOKENS_CACHE_SIZE", value_name = "N")]
    pub mysterybox_tokens_cache_size: Option<u64>,
    /// ESO: the Nebius MysteryBox connection cache's size.
    #[arg(long, env = "ESOX_MYSTERYBOX_CONNECTIONS_CACHE_SIZE", value_name = "N")]
    pub mysterybox_connections_cache_size: Option<u64>,
    /// ESO before 0.17: cache AWS sessions (removed from ESO; esox always reuses a store's
    /// connection).
    #[arg(long, env = "ESOX_EXPERIMENTAL_ENABLE_AWS_SESSION_CACHE", action = clap::ArgAction::Set, value_parser = go_bool, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub experimental_enable_aws_session_cache: Option<bool>,
}

impl NoEffectArgs {
    /// The flags given (on the command line or in the environment), as `--name`.
    pub fn given(&self) -> Vec<&'static str> {
        [
            ("--metrics-secure", self.metrics_secure.is_some()),
            ("--metrics-auth", self.metrics_auth.is_some()),
            ("--metrics-cert-dir", self.metrics_cert_dir.is_some()),
            ("--metrics-cert-name", self.metrics_cert_name.is_some()),
            ("--metrics-key-name", self.metrics_key_name.is_some()),
            ("--enable-http2", self.enable_http2.is_some()),
            ("--zap-time-encoding", self.zap_time_encoding.is_some()),
            (
                "--enable-secrets-caching",
                self.enable_secrets_caching.is_some(),
            ),
            (
                "--enable-configmaps-caching",
                self.enable_configmaps_caching.is_some(),
            ),
            (
                "--enable-managed-secrets-caching",
                self.enable_managed_secrets_caching.is_some(),
            ),
            (
                "--enable-secret-api-read-on-cache-mismatch",
                self.enable_secret_api_read_on_cache_mismatch.is_some(),
            ),
            (
                "--enable-generator-state",
                self.enable_generator_state.is_some(),
            ),
            (
                "--generator-gc-grace-period",
                self.generator_gc_grace_period.is_some(),
            ),
            (
                "--enable-extended-metric-labels",
                self.enable_extended_metric_labels.is_some(),
            ),
            ("--enable-v2-providers", self.enable_v2_providers.is_some()),
            (
                "--unsafe-allow-generic-targets",
                self.unsafe_allow_generic_targets.is_some(),
            ),
            (
                "--enable-vault-token-cache",
                self.enable_vault_token_cache.is_some(),
            ),
            (
                "--vault-token-cache-size",
                self.vault_token_cache_size.is_some(),
            ),
            (
                "--experimental-enable-doppler-oidc-cache",
                self.experimental_enable_doppler_oidc_cache.is_some(),
            ),
            (
                "--experimental-doppler-oidc-cache-size",
                self.experimental_doppler_oidc_cache_size.is_some(),
            ),
            (
                "--doppler-etag-cache-size",
                self.doppler_etag_cache_size.is_some(),
            ),
            (
                "--mysterybox-tokens-cache-size",
                self.mysterybox_tokens_cache_size.is_some(),
            ),
            (
                "--mysterybox-connections-cache-size",
                self.mysterybox_connections_cache_size.is_some(),
            ),
            (
                "--experimental-enable-aws-session-cache",
                self.experimental_enable_aws_session_cache.is_some(),
            ),
        ]
        .into_iter()
        .filter(|(_, given)| *given)
        .map(|(name, _)| name)
        .collect()
    }

    /// What deserves a warning of its own: settings a user may rely on for safety, which esox
    /// does not honour.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.metrics_secure == Some(true) || self.metrics_auth == Some(true) {
            out.push(
                "--metrics-secure/--metrics-auth: esox serves /metrics over plain HTTP without \
                 authentication; restrict it with a NetworkPolicy"
                    .to_string(),
            );
        }
        if self.unsafe_allow_generic_targets == Some(true) {
            out.push(
                "--unsafe-allow-generic-targets: esox writes Secrets only (no \
                 target.manifest: ConfigMaps and custom resources are not written)"
                    .to_string(),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    #[command(args_override_self = true)]
    struct Flags {
        #[command(flatten)]
        reconcilers: ReconcilerArgs,
        #[command(flatten)]
        eso: EsoArgs,
    }

    fn parse(args: &[&str]) -> Result<Flags, clap::Error> {
        Flags::try_parse_from(std::iter::once("esox").chain(args.iter().copied()))
    }

    #[test]
    fn booleans_take_gos_spellings() {
        for (given, want) in [
            ("--enable-push-secret-reconciler", true),
            ("--enable-push-secret-reconciler=true", true),
            ("--enable-push-secret-reconciler=1", true),
            ("--enable-push-secret-reconciler=T", true),
            ("--enable-push-secret-reconciler=TRUE", true),
            ("--enable-push-secret-reconciler=True", true),
            ("--enable-push-secret-reconciler=false", false),
            ("--enable-push-secret-reconciler=0", false),
            ("--enable-push-secret-reconciler=f", false),
            ("--enable-push-secret-reconciler=F", false),
            ("--enable-push-secret-reconciler=FALSE", false),
            ("--enable-push-secret-reconciler=False", false),
        ] {
            let flags = parse(&[given]).unwrap_or_else(|e| panic!("{given}: {e}"));
            assert_eq!(
                flags.reconcilers.enable_push_secret_reconciler, want,
                "{given}"
            );
        }
        for bad in [
            "--enable-push-secret-reconciler=no",
            "--enable-push-secret-reconciler=yes",
            "--enable-push-secret-reconciler=",
        ] {
            assert!(parse(&[bad]).is_err(), "{bad} is refused, as by ESO");
        }
        // pflag: a bool flag's value must be joined by `=`; a separate word is no value.
        assert!(parse(&["--enable-push-secret-reconciler", "false"]).is_err());
        // A repeat takes the last value (an `extraArgs` entry after the chart's own).
        let flags = parse(&[
            "--enable-push-secret-reconciler=false",
            "--enable-push-secret-reconciler=true",
        ])
        .unwrap();
        assert!(flags.reconcilers.enable_push_secret_reconciler);
    }

    #[test]
    fn every_switch_defaults_on_and_maps_to_its_controller() {
        assert_eq!(
            parse(&[]).unwrap().reconcilers.switches(),
            Switches::default()
        );
        type Field = fn(&Switches) -> bool;
        let cases: [(&str, Field); 6] = [
            ("--enable-secret-store-reconciler=false", |s| s.secret_store),
            ("--enable-cluster-store-reconciler=false", |s| {
                s.cluster_store
            }),
            ("--enable-cluster-external-secret-reconciler=false", |s| {
                s.cluster_external_secret
            }),
            ("--enable-push-secret-reconciler=false", |s| s.push_secret),
            ("--enable-cluster-push-secret-reconciler=false", |s| {
                s.cluster_push_secret
            }),
            ("--enable-flood-gate=false", |s| s.flood_gate),
        ];
        for (flag, field) in cases {
            let switches = parse(&[flag]).unwrap().reconcilers.switches();
            assert!(!field(&switches), "{flag}");
            assert_eq!(switches.disabled().len(), 1, "{flag} turns off one thing");
        }
    }

    #[test]
    fn addresses_take_gos_form() {
        assert_eq!(
            listen_addr(":8080").unwrap(),
            "0.0.0.0:8080".parse().unwrap()
        );
        assert_eq!(
            listen_addr("127.0.0.1:8082").unwrap(),
            "127.0.0.1:8082".parse().unwrap()
        );
        assert_eq!(
            listen_addr("[::1]:80").unwrap(),
            "[::1]:80".parse().unwrap()
        );
        assert!(listen_addr("localhost:8082").unwrap().ip().is_loopback());
        for bad in [":http", ":70000", "8080", ""] {
            assert!(listen_addr(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn log_levels_are_zaps() {
        assert_eq!(log_level("debug").unwrap(), "debug");
        assert_eq!(log_level("fatal").unwrap(), "error");
        assert!(log_level("trace").is_err(), "zap has no trace");
    }

    #[test]
    fn no_effect_flags_are_checked_and_named() {
        let flags = parse(&[
            "--enable-secrets-caching=true",
            "--enable-configmaps-caching",
            "--generator-gc-grace-period=2m",
            "--experimental-vault-token-cache-size=100",
        ])
        .unwrap();
        let no_effect = &flags.eso.no_effect;
        assert_eq!(
            no_effect.given(),
            [
                "--enable-secrets-caching",
                "--enable-configmaps-caching",
                "--generator-gc-grace-period",
                "--vault-token-cache-size"
            ]
        );
        assert!(no_effect.warnings().is_empty());
        assert_eq!(parse(&[]).unwrap().eso.controller_class, "default");
        assert_eq!(
            parse(&["--controller-class=esox"])
                .unwrap()
                .eso
                .controller_class,
            "esox"
        );
        assert!(parse(&["--generator-gc-grace-period=2 minutes"]).is_err());
        assert!(parse(&["--vault-token-cache-size=-1"]).is_err());
    }

    #[test]
    fn an_eso_deployments_args_run_the_controller() {
        let os = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            with_default_command(os(&["esox", "--concurrent=1"])),
            os(&["esox", "controller", "--concurrent=1"])
        );
        for unchanged in [
            &["esox", "controller", "--concurrent=1"][..],
            &["esox", "--help"],
            &["esox", "--version"],
            &["esox", "crds"],
            &["esox"],
        ] {
            assert_eq!(with_default_command(os(unchanged)), os(unchanged));
        }
    }
}
