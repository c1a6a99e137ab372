//! Harness for esox's integration tests against the real local control plane.
//!
//! Start the stack first (`scripts/stack.sh up`); the harness reads its env file
//! (`$ESOX_STACK_ENV`, else `<repo>/.stack/env`). Each test gets its own namespace and its own
//! esox controller scoped to that namespace, running in the test's runtime, so tests are
//! hermetic and run in parallel. Tests that need the cluster-wide controller (for
//! ClusterSecretStore status) take [`cluster_lock`], which waits until no other test of the
//! binary holds a [`TestEnv`] and keeps new ones out: a cluster-wide controller reconciles
//! every namespace, and would otherwise be a second writer of the other tests' objects.
#![allow(missing_docs)]

pub mod audit;
pub mod manifests;
pub mod proxy;
pub mod push;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use esox::controller::context::{Context, Settings};
use esox::metrics::Metrics;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::GroupVersionKind;
use kube::discovery::pinned_kind;
use kube::{Api, Client, ResourceExt};
use prometheus_client::registry::Registry;

/// The repository root: from cargo's run-time `CARGO_MANIFEST_DIR` (the checkout the tests
/// run in), else the one compiled in. Cargo keeps a build fresh when the checkout moves (CI
/// clones elsewhere and reuses the build cache), and `env!` keeps the path it was built in.
pub fn repo_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Variables from the stack's env file.
pub fn stack_env() -> anyhow::Result<BTreeMap<String, String>> {
    let path = std::env::var("ESOX_STACK_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join(".stack/env"));
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!("no local control plane: {} is missing. Start it with `scripts/stack.sh up` (or run `scripts/test.sh`)", path.display())
    })?;
    Ok(text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            (
                k.to_string(),
                v.trim_matches(|c| c == '"' || c == '\'').to_string(),
            )
        })
        .collect())
}

/// The local apiserver's cluster-admin configuration.
async fn admin_config() -> anyhow::Result<kube::Config> {
    let env = stack_env()?;
    let kubeconfig = env
        .get("KUBECONFIG")
        .context("env file has no KUBECONFIG")?;
    let kc = Kubeconfig::read_from(kubeconfig).with_context(|| format!("reading {kubeconfig}"))?;
    Ok(kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?)
}

/// A client for the local apiserver as cluster admin.
pub async fn admin_client() -> anyhow::Result<Client> {
    Ok(Client::try_from(admin_config().await?)?)
}

/// The client an in-process controller uses: built as the binary builds its own (the
/// managed-fields strip, a rate limit as generous as the binary's default).
async fn controller_client() -> anyhow::Result<Client> {
    let limiter = esox::ratelimit::Limiter::new(500.0, 1000);
    Ok(esox::kube_client::build(admin_config().await?, limiter)?)
}

/// Captured controller logs of this test process (to check no secret value is ever logged).
pub fn logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned()
}

static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static TRACING: OnceLock<()> = OnceLock::new();

struct Capture;
impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        if std::env::var_os("ESOX_TEST_LOGS").is_some() {
            std::io::stderr().write_all(buf)?;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn init_tracing() {
    TRACING.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            // The controller's own filter (wire-logging targets capped), at trace level, so the
            // hygiene test sees everything a user could turn on.
            .with_env_filter(esox::telemetry::filter(
                &std::env::var("ESOX_TEST_LOG_FILTER").unwrap_or_else(|_| "trace".into()),
            ))
            .with_writer(|| Capture)
            .with_ansi(false)
            .try_init();
    });
}

/// Installs the CRDs (server-side apply) and waits until they are established.
pub async fn install_crds(client: &Client) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in esox::api::crd::all() {
        let name = crd.name_any();
        api.patch(
            &name,
            &PatchParams::apply("esox-tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .with_context(|| format!("applying CRD {name}"))?;
        wait_for(
            Duration::from_secs(30),
            &format!("CRD {name} established"),
            || {
                let api = api.clone();
                let name = name.clone();
                async move {
                    let crd = api.get(&name).await.ok()?;
                    crd.status?
                        .conditions?
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                        .then_some(())
                }
            },
        )
        .await?;
    }
    Ok(())
}

/// Polls `check` until it returns `Some`, or fails after `timeout` naming `what`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// One test's world: a fresh namespace and an esox controller watching it.
pub struct TestEnv {
    pub client: Client,
    pub ns: String,
    pub registry: Arc<Registry>,
    controller: Option<tokio::task::JoinHandle<()>>,
    /// Keeps cluster-wide controllers of other tests out while this env lives.
    _share: Option<Arc<Share>>,
}

/// The process's plugin host: one Wasm engine per process, as in the controller.
pub fn plugin_host() -> Arc<esox::plugin::PluginHost> {
    static HOST: OnceLock<Arc<esox::plugin::PluginHost>> = OnceLock::new();
    HOST.get_or_init(|| {
        // Compiled components are cached across test binaries, as the controller caches them
        // across restarts.
        let cache = std::env::var_os("ESOX_PLUGIN_CACHE_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("esox-plugin-cache"));
        esox::plugin::PluginHost::new(esox::plugin::HostConfig {
            cache_dir: Some(cache),
            ..Default::default()
        })
        .expect("plugin runtime")
    })
    .clone()
}

/// Options for [`TestEnv`].
#[derive(Default)]
pub struct Options {
    /// Run the controller cluster-wide (also reconciles ClusterSecretStores).
    pub cluster_wide: bool,
    /// Do not start a controller.
    pub no_controller: bool,
    /// Labels for the namespace.
    pub namespace_labels: BTreeMap<String, String>,
    /// ExternalSecrets reconciled at once (default 4).
    pub concurrency: Option<u16>,
    /// The provider-call deadline (default: the controller's, 30 s).
    pub provider_timeout: Option<Duration>,
    /// ExternalSecrets fetching from one store at once (default: as many as `concurrency`).
    pub store_concurrency: Option<u16>,
}

/// Tests of one binary share the cluster: namespaced [`TestEnv`]s share it, a test that runs
/// a cluster-wide controller ([`cluster_lock`]) has it alone. Fair: a waiting cluster-wide
/// test keeps new namespaced ones out, so it is not starved.
static CLUSTER: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

thread_local! {
    /// Whether this thread (a test: each runs on its own thread and runtime) holds
    /// [`cluster_lock`], so its own [`TestEnv`]s need no share.
    static HOLDS_CLUSTER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// The share this thread's [`TestEnv`]s hold, if any: a second env of the same test
    /// reuses it (taking a second share behind a waiting writer would deadlock).
    static SHARE: std::cell::RefCell<std::sync::Weak<Share>> =
        const { std::cell::RefCell::new(std::sync::Weak::new()) };
}

/// A namespaced test's share of the cluster.
struct Share(#[allow(dead_code)] tokio::sync::RwLockReadGuard<'static, ()>);

/// The cluster to this test alone, for as long as it is held: see [`CLUSTER`].
pub struct ClusterGuard(#[allow(dead_code)] tokio::sync::RwLockWriteGuard<'static, ()>);

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        HOLDS_CLUSTER.with(|h| h.set(false));
    }
}

/// Serialises tests that run a cluster-wide controller, and keeps every other test of the
/// binary out while one runs.
pub async fn cluster_lock() -> ClusterGuard {
    let guard = CLUSTER.write().await;
    HOLDS_CLUSTER.with(|h| h.set(true));
    ClusterGuard(guard)
}

/// This test's share of the cluster (none while it holds [`cluster_lock`]).
async fn cluster_share() -> Option<Arc<Share>> {
    if HOLDS_CLUSTER.with(std::cell::Cell::get) {
        return None;
    }
    if let Some(held) = SHARE.with(|s| s.borrow().upgrade()) {
        return Some(held);
    }
    let share = Arc::new(Share(CLUSTER.read().await));
    SHARE.with(|s| *s.borrow_mut() = Arc::downgrade(&share));
    Some(share)
}

impl TestEnv {
    /// A namespaced test environment with a controller scoped to it.
    pub async fn new(test: &str) -> TestEnv {
        Self::with(test, Options::default()).await
    }

    /// A test environment whose controller the test starts itself (a process, or none).
    pub async fn without_controller(test: &str) -> TestEnv {
        Self::with(
            test,
            Options {
                no_controller: true,
                ..Default::default()
            },
        )
        .await
    }

    /// A test environment whose controller runs cluster-wide (it also reconciles
    /// ClusterSecretStores and the cluster-scoped kinds), holding [`cluster_lock`] for the test.
    pub async fn cluster_wide(test: &str) -> (ClusterGuard, TestEnv) {
        let guard = cluster_lock().await;
        let env = Self::with(
            test,
            Options {
                cluster_wide: true,
                ..Default::default()
            },
        )
        .await;
        (guard, env)
    }

    /// A test environment with options.
    pub async fn with(test: &str, opts: Options) -> TestEnv {
        init_tracing();
        let share = cluster_share().await;
        let client = admin_client()
            .await
            .expect("connect to the local apiserver");
        install_crds(&client).await.expect("install CRDs");
        let suffix: u32 = rand::random::<u32>() % 100_000;
        let ns = format!("{}-{suffix}", test.replace('_', "-"));
        let nsapi: Api<Namespace> = Api::all(client.clone());
        let mut nsobj = Namespace::default();
        nsobj.metadata.name = Some(ns.clone());
        nsobj.metadata.labels = Some(opts.namespace_labels.clone());
        nsapi
            .create(&PostParams::default(), &nsobj)
            .await
            .expect("create test namespace");
        let mut registry = Registry::default();
        let metrics = Arc::new(Metrics::new(&mut registry));
        let registry = Arc::new(registry);
        let controller_client = controller_client()
            .await
            .expect("connect to the local apiserver");
        let controller = (!opts.no_controller).then(|| {
            let ctx = Context::new(
                controller_client,
                None,
                plugin_host(),
                metrics,
                Settings {
                    namespace: if opts.cluster_wide {
                        None
                    } else {
                        Some(ns.clone())
                    },
                    store_requeue: Duration::from_secs(300),
                    concurrency: opts.concurrency.unwrap_or(4),
                    delimiters: Default::default(),
                    provider_timeout: opts.provider_timeout.unwrap_or(Settings::PROVIDER_TIMEOUT),
                    store_concurrency: opts.store_concurrency.unwrap_or(0),
                    switches: Default::default(),
                    class: Default::default(),
                },
            );
            tokio::spawn(esox::controller::run(ctx, Arc::new(AtomicBool::new(false))))
        });
        TestEnv {
            client,
            ns,
            registry,
            controller,
            _share: share,
        }
    }

    /// Stops the controller (the namespace is left for inspection; names are unique).
    pub fn stop_controller(&mut self) {
        if let Some(h) = self.controller.take() {
            h.abort();
        }
    }

    /// Applies a multi-document YAML manifest as written (any apiVersion), in this namespace
    /// unless a document says otherwise or is cluster-scoped.
    pub async fn apply(&self, yaml: &str) -> anyhow::Result<()> {
        for value in esox::offline::documents::<serde_json::Value>(yaml)? {
            let obj: DynamicObject = serde_json::from_value(value.clone())?;
            let tm = obj
                .types
                .clone()
                .context("manifest without apiVersion/kind")?;
            let (group, version) = tm
                .api_version
                .rsplit_once('/')
                .unwrap_or(("", &tm.api_version));
            let gvk = GroupVersionKind::gvk(group, version, &tm.kind);
            let (ar, caps) = pinned_kind(&self.client, &gvk)
                .await
                .with_context(|| format!("discovering {gvk:?}"))?;
            let api: Api<DynamicObject> = if caps.scope == kube::discovery::Scope::Cluster {
                Api::all_with(self.client.clone(), &ar)
            } else {
                Api::namespaced_with(
                    self.client.clone(),
                    obj.namespace().as_deref().unwrap_or(&self.ns),
                    &ar,
                )
            };
            api.patch(
                &obj.name_any(),
                &PatchParams::apply("esox-tests").force(),
                &Patch::Apply(&value),
            )
            .await
            .with_context(|| format!("applying {} {}", tm.kind, obj.name_any()))?;
        }
        Ok(())
    }

    /// The Secret API of this namespace.
    pub fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// The ExternalSecret API of this namespace.
    pub fn external_secrets(&self) -> Api<esox::api::ExternalSecret> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Waits until Secret `name` exists and `check` accepts it.
    pub async fn wait_secret(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&Secret) -> bool,
    ) -> Secret {
        self.wait_secret_within(name, what, Duration::from_secs(30), check)
            .await
    }

    /// [`TestEnv::wait_secret`] with its own timeout (a first use of a plugin compiles it,
    /// which takes long on a loaded 2-core machine).
    pub async fn wait_secret_within(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        check: impl Fn(&Secret) -> bool,
    ) -> Secret {
        let api = self.secrets();
        let found = wait_for(timeout, what, || {
            let api = api.clone();
            let check = &check;
            async move { api.get_opt(name).await.ok().flatten().filter(|s| check(s)) }
        })
        .await;
        match found {
            Ok(secret) => secret,
            Err(e) => panic!("{e}\n{}", self.external_secret_states().await),
        }
    }

    /// One line per ExternalSecret of this namespace with its Ready condition, and its
    /// Events: what a test that timed out waiting prints, so a CI failure says why.
    pub async fn external_secret_states(&self) -> String {
        let mut out = String::from("ExternalSecrets in the namespace:");
        let list = self
            .external_secrets()
            .list(&Default::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        for es in list {
            let name = es.name_any();
            let ready = es
                .status
                .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"))
                .map(|c| {
                    format!(
                        "Ready={} {} {}",
                        c.status,
                        c.reason.unwrap_or_default(),
                        c.message.unwrap_or_default()
                    )
                })
                .unwrap_or_else(|| "no Ready condition".into());
            let events = self.events_for(&name).await.join(" | ");
            out.push_str(&format!("\n  {name}: {ready}; events: {events}"));
        }
        out
    }

    /// Every Event of this namespace, as text.
    pub async fn namespace_events(&self) -> String {
        let api: Api<k8s_openapi::api::core::v1::Event> =
            Api::namespaced(self.client.clone(), &self.ns);
        let events = api.list(&Default::default()).await.map(|l| l.items);
        serde_json::to_string(&events.unwrap_or_default()).unwrap_or_default()
    }

    /// Force-syncs ExternalSecret `name` as ESO documents it: by changing an annotation.
    pub async fn force_sync(&self, name: &str) {
        self.external_secrets()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(
                    serde_json::json!({"metadata": {"annotations": {"force-sync": "1"}}}),
                ),
            )
            .await
            .expect("annotate the ExternalSecret");
    }

    /// Waits until Secret `name` holds `value` under `key`.
    pub async fn wait_value(&self, name: &str, key: &str, value: &str) -> Secret {
        let what = format!("Secret {name} with {key}={value}");
        self.wait_secret(name, &what, |s| {
            secret_strings(s).get(key).map(String::as_str) == Some(value)
        })
        .await
    }

    /// Waits until SecretStore `name`'s Ready condition satisfies `check`; returns
    /// (status, reason, message).
    pub async fn wait_store(
        &self,
        name: &str,
        check: impl Fn(&str, &str, &str) -> bool,
    ) -> (String, String, String) {
        let api: Api<esox::api::SecretStore> = Api::namespaced(self.client.clone(), &self.ns);
        let check = &check;
        wait_for(
            Duration::from_secs(30),
            &format!("SecretStore {name} status"),
            || {
                let api = api.clone();
                async move {
                    let c = api
                        .get_opt(name)
                        .await
                        .ok()??
                        .status?
                        .conditions
                        .into_iter()
                        .find(|c| c.type_ == "Ready")?;
                    let (s, r, m) = (
                        c.status,
                        c.reason.unwrap_or_default(),
                        c.message.unwrap_or_default(),
                    );
                    check(&s, &r, &m).then_some((s, r, m))
                }
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Waits until ExternalSecret `name`'s Ready condition has `status` and `reason`; returns
    /// the condition message.
    pub async fn wait_ready(&self, name: &str, status: &str, reason: &str) -> String {
        let api = self.external_secrets();
        let what = format!("ExternalSecret {name} Ready={status} reason={reason}");
        let last = Mutex::new(String::new());
        let r = wait_for(Duration::from_secs(30), &what, || {
            let api = api.clone();
            let last = &last;
            async move {
                let es = api.get_opt(name).await.ok().flatten()?;
                let cond = es
                    .status?
                    .conditions
                    .into_iter()
                    .find(|c| c.type_ == "Ready")?;
                *last.lock().unwrap() = format!("{cond:?}");
                (cond.status == status && cond.reason.as_deref() == Some(reason))
                    .then(|| cond.message.unwrap_or_default())
            }
        })
        .await;
        r.unwrap_or_else(|e| panic!("{e}; last condition: {}", last.lock().unwrap()))
    }

    /// Events recorded for an object in this namespace, as `reason: note` lines.
    pub async fn events_for(&self, name: &str) -> Vec<String> {
        let api: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.client.clone(), &self.ns);
        let list = api
            .list(&Default::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        list.into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .map(|e| {
                format!(
                    "{}: {}",
                    e.reason.unwrap_or_default(),
                    e.note.unwrap_or_default()
                )
            })
            .collect()
    }

    /// The value of a metric sample line (`name{labels}`) from this test's registry.
    pub fn metrics(&self) -> String {
        esox::metrics::render(&self.registry)
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        self.stop_controller();
    }
}

/// A Secret's data as strings.
/// `GET path` on `addr` (`host:port`): the raw HTTP answer, empty while nothing answers.
pub async fn http_get(addr: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return String::new();
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let _ = s.write_all(request.as_bytes()).await;
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    out
}

/// `kubectl ARGS` against the stack (its kubeconfig); its stdout, panicking on failure.
pub fn kubectl(args: &[&str]) -> String {
    let env = stack_env().expect("the stack's env file");
    stdout_ok(
        std::process::Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", &env["KUBECONFIG"]),
    )
}

/// Waits (90 s: a cluster-wide controller also works through other tests' leftovers) until
/// Secret `name` in `namespace` holds `key` = `value`; the Secret.
pub async fn wait_secret_value(
    client: &Client,
    namespace: &str,
    name: &str,
    key: &str,
    value: &str,
) -> Secret {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    wait_for(
        Duration::from_secs(90),
        &format!("Secret {namespace}/{name} with {key}={value}"),
        || {
            let api = api.clone();
            async move {
                let s = api.get_opt(name).await.ok()??;
                (secret_strings(&s).get(key).map(String::as_str) == Some(value)).then_some(s)
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

pub fn secret_strings(s: &Secret) -> BTreeMap<String, String> {
    s.data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
        .collect()
}

/// AWS SDK configuration for the stack's moto server (from the environment `scripts/test.sh`
/// sources: `AWS_ENDPOINT_URL` and keys moto accepts).
pub async fn aws_config() -> aws_config::SdkConfig {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "AWS_ENDPOINT_URL is not set: run the tests through scripts/test.sh, or `source .stack/env` first"
    );
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await
}

/// Creates or updates a Secrets Manager secret in moto; returns the new version id.
pub async fn put_aws_secret(name: &str, value: &str, tags: &[(&str, &str)]) -> String {
    let sm = aws_sdk_secretsmanager::Client::new(&aws_config().await);
    let tags: Vec<_> = tags
        .iter()
        .map(|(k, v)| {
            aws_sdk_secretsmanager::types::Tag::builder()
                .key(*k)
                .value(*v)
                .build()
        })
        .collect();
    match sm
        .create_secret()
        .name(name)
        .secret_string(value)
        .set_tags(Some(tags))
        .send()
        .await
    {
        Ok(out) => out.version_id().unwrap_or_default().to_string(),
        Err(_) => {
            let out = sm
                .put_secret_value()
                .secret_id(name)
                .secret_string(value)
                .send()
                .await
                .expect("put_secret_value");
            out.version_id().unwrap_or_default().to_string()
        }
    }
}

/// The `esox` binary of this build (tests that need a controller with its own environment,
/// such as a different AWS endpoint, run it as a process).
pub fn esox_bin() -> PathBuf {
    if let Ok(p) = std::env::var("ESOX_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join("target"));
    let bin = target.join("debug/esox");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p esox` (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// An `esox controller` process scoped to one namespace; killed on drop.
pub struct ControllerProcess {
    child: std::process::Child,
    /// Base URL of its metrics and probe endpoint.
    pub http: String,
}

impl ControllerProcess {
    /// Fetches `/metrics` from the process.
    pub async fn metrics(&self) -> String {
        self.get("/metrics").await
    }

    /// The raw HTTP response of its endpoint `path` (empty while it does not answer).
    pub async fn get(&self, path: &str) -> String {
        http_get(self.http.trim_start_matches("http://"), path).await
    }

    /// Waits until its `/readyz` answers 200 (the ExternalSecret cache has synced).
    pub async fn wait_ready(&self) {
        wait_for(
            Duration::from_secs(60),
            "controller /readyz 200",
            || async {
                self.get("/readyz")
                    .await
                    .starts_with("HTTP/1.1 200")
                    .then_some(())
            },
        )
        .await
        .unwrap();
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestEnv {
    /// Runs the `esox` binary against this namespace with extra environment variables.
    pub fn spawn_controller(&self, extra_env: &[(&str, &str)]) -> ControllerProcess {
        self.spawn_controller_logging(extra_env, std::process::Stdio::inherit())
    }

    /// Like [`TestEnv::spawn_controller`], with the process's log (stderr) going to `log`.
    pub fn spawn_controller_logging(
        &self,
        extra_env: &[(&str, &str)],
        log: impl Into<std::process::Stdio>,
    ) -> ControllerProcess {
        let env = stack_env().unwrap();
        let kubeconfig = std::path::Path::new(&env["KUBECONFIG"]);
        self.spawn_process(kubeconfig, "warn", extra_env, log, Some(&self.ns), &[])
    }

    /// `esox controller` on `namespace` (or the whole cluster) through `kubeconfig`, at
    /// `RUST_LOG=log_level` unless `ESOX_TEST_CONTROLLER_LOG` says otherwise, with extra
    /// command-line `args`.
    fn spawn_process(
        &self,
        kubeconfig: &std::path::Path,
        log_level: &str,
        extra_env: &[(&str, &str)],
        log: impl Into<std::process::Stdio>,
        namespace: Option<&str>,
        args: &[&str],
    ) -> ControllerProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = std::process::Command::new(esox_bin());
        cmd.args(["controller", "--metrics-addr", &format!("127.0.0.1:{port}")]);
        if let Some(ns) = namespace {
            cmd.args(["--namespace", ns]);
        }
        cmd.args(args)
            .env("KUBECONFIG", kubeconfig)
            .env(
                "RUST_LOG",
                std::env::var("ESOX_TEST_CONTROLLER_LOG").unwrap_or_else(|_| log_level.into()),
            )
            .stdout(std::process::Stdio::null())
            .stderr(log);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start esox controller");
        ControllerProcess {
            child,
            http: format!("http://127.0.0.1:{port}"),
        }
    }
}

/// An AWS SDK configuration for an explicit endpoint and key pair (`id:secret`).
pub async fn aws_config_for(endpoint: &str, key: &str) -> aws_config::SdkConfig {
    let (id, secret) = key.split_once(':').expect("key is id:secret");
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_credential_types::Credentials::new(
            id, secret, None, None, "test",
        ))
        .load()
        .await
}

/// Runs `program args` in `dir`; fails the test with the command's stderr if it fails.
pub fn run_ok(dir: &std::path::Path, program: &str, args: &[&str]) {
    stdout_ok(
        std::process::Command::new(program)
            .current_dir(dir)
            .args(args),
    );
}

/// Runs `cmd`; its stdout, or the test fails with the command line and what it printed.
pub fn stdout_ok(cmd: &mut std::process::Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("could not run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// helm from `$ESOX_HELM` (scripts/test.sh exports it), else built by `scripts/helm.sh`; why
/// not, when neither gives one.
pub fn helm_bin() -> Result<PathBuf, String> {
    match std::env::var("ESOX_HELM") {
        Ok(p) if !p.is_empty() && std::path::Path::new(&p).is_file() => Ok(PathBuf::from(p)),
        Ok(p) if !p.is_empty() => Err(format!(
            "ESOX_HELM={p:?} is not a helm binary (scripts/helm.sh could not build helm)"
        )),
        _ => {
            let out = std::process::Command::new("bash")
                .arg(repo_root().join("scripts/helm.sh"))
                .stderr(std::process::Stdio::inherit())
                .output()
                .map_err(|e| format!("could not run scripts/helm.sh: {e}"))?;
            if out.status.success() {
                Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
            } else {
                Err(format!("scripts/helm.sh exited with {}", out.status))
            }
        }
    }
}

/// helm, with its state directories kept out of the user's home.
pub fn helm_command(bin: &std::path::Path, args: &[&str]) -> std::process::Command {
    let home = std::env::temp_dir().join("esox-helm-tests");
    let mut cmd = std::process::Command::new(bin);
    cmd.args(args)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"));
    cmd
}

/// `helm args`; its stdout, or the test fails with what helm printed.
pub fn helm_ok(bin: &std::path::Path, args: &[&str]) -> String {
    stdout_ok(&mut helm_command(bin, args))
}

/// A kubeconfig (in `dir`) that authenticates as a ServiceAccount with a fresh token from
/// the TokenRequest API, as the pod's projected token would.
pub async fn service_account_kubeconfig(
    admin: &Client,
    namespace: &str,
    name: &str,
    dir: &std::path::Path,
) -> PathBuf {
    let api: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(admin.clone(), namespace);
    let request = k8s_openapi::api::authentication::v1::TokenRequest {
        spec: k8s_openapi::api::authentication::v1::TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(3600),
            bound_object_ref: None,
        },
        ..Default::default()
    };
    let response: k8s_openapi::api::authentication::v1::TokenRequest = api
        .create_subresource("token", name, &PostParams::default(), &request)
        .await
        .expect("TokenRequest for the ServiceAccount");
    let token = response.status.expect("token").token;
    let env = stack_env().unwrap();
    let ca = std::path::Path::new(&env["ESOX_STACK_DIR"]).join("pki/ca.crt");
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "local", "cluster": {
            "server": env["ESOX_APISERVER_URL"], "certificate-authority": ca}}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": "local", "user": name}}],
        "current-context": name,
    });
    let path = dir.join("kubeconfig");
    std::fs::write(&path, serde_yaml::to_string(&kubeconfig).unwrap()).unwrap();
    path
}

/// A local stack of its own (state directory `dir`, free ports), for tests that stop its
/// kube-apiserver or etcd: the suite's stack and the tests sharing it are unaffected.
pub struct PrivateStack {
    /// Its state directory (`ESOX_STACK_DIR`).
    pub dir: PathBuf,
    /// Its env file's variables.
    pub env: BTreeMap<String, String>,
}

impl PrivateStack {
    /// Starts a stack in `dir` (`scripts/stack.sh up`; cached binaries, so seconds). A
    /// detached watchdog brings it down when this process exits, however it exits.
    pub fn up(dir: &std::path::Path) -> PrivateStack {
        let stack = PrivateStack {
            dir: dir.to_path_buf(),
            env: BTreeMap::new(),
        };
        stack.run(&["up"]);
        let script = repo_root().join("scripts/stack.sh");
        let watchdog = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; ESOX_STACK_DIR={dir} bash {script} down",
            pid = std::process::id(),
            dir = dir.display(),
            script = script.display()
        );
        // `setsid -f`: the watchdog forks off in a session of its own and `setsid` returns.
        let started = std::process::Command::new("setsid")
            .args(["-f", "bash", "-c", &watchdog])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(started, "could not start the private stack's watchdog");
        let text = std::fs::read_to_string(dir.join("env")).expect("the private stack's env file");
        let env = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        PrivateStack { env, ..stack }
    }

    /// `scripts/stack.sh args` on this stack; fails the test if it fails.
    pub fn run(&self, args: &[&str]) {
        let status = std::process::Command::new("bash")
            .arg(repo_root().join("scripts/stack.sh"))
            .args(args)
            .env("ESOX_STACK_DIR", &self.dir)
            .status()
            .expect("run scripts/stack.sh");
        assert!(status.success(), "scripts/stack.sh {args:?} failed");
    }

    /// Its kubeconfig (cluster admin).
    pub fn kubeconfig(&self) -> &str {
        &self.env["KUBECONFIG"]
    }

    /// A cluster-admin client.
    pub async fn client(&self) -> Client {
        let kc = Kubeconfig::read_from(self.kubeconfig()).expect("the private kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .expect("a client configuration");
        Client::try_from(config).expect("a client")
    }
}

impl TestEnv {
    /// A test environment (fresh namespace, CRDs installed, no controller) on another
    /// apiserver than the suite's, e.g. a [`PrivateStack`].
    pub async fn on_client(client: Client, test: &str) -> TestEnv {
        init_tracing();
        install_crds(&client).await.expect("install CRDs");
        let suffix: u32 = rand::random::<u32>() % 100_000;
        let ns = format!("{}-{suffix}", test.replace('_', "-"));
        let nsapi: Api<Namespace> = Api::all(client.clone());
        let mut nsobj = Namespace::default();
        nsobj.metadata.name = Some(ns.clone());
        nsapi
            .create(&PostParams::default(), &nsobj)
            .await
            .expect("create test namespace");
        TestEnv {
            client,
            ns,
            registry: Arc::new(Registry::default()),
            controller: None,
            _share: None,
        }
    }

    /// Runs the `esox` binary against this namespace with `kubeconfig`, its log (stderr) to
    /// `log`.
    pub fn spawn_controller_on(
        &self,
        kubeconfig: &std::path::Path,
        extra_env: &[(&str, &str)],
        log: impl Into<std::process::Stdio>,
    ) -> ControllerProcess {
        self.spawn_process(kubeconfig, "info", extra_env, log, Some(&self.ns), &[])
    }

    /// `esox controller` on the whole cluster (no `--namespace`) through `kubeconfig`, with
    /// extra command-line `args`, its log (stderr, at `info`) to `log`.
    pub fn spawn_cluster_controller(
        &self,
        kubeconfig: &std::path::Path,
        args: &[&str],
        log: impl Into<std::process::Stdio>,
    ) -> ControllerProcess {
        self.spawn_process(kubeconfig, "info", &[], log, None, args)
    }
}

impl ControllerProcess {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills it with SIGKILL (a crash) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits up to `timeout` for it to exit: its exit status and how long
    /// it took, or `None` if it was still running (it is then killed).
    pub fn terminate(&mut self, timeout: Duration) -> Option<(std::process::ExitStatus, Duration)> {
        let start = Instant::now();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(sent, "could not send SIGTERM to the controller");
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some((status, start.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
        None
    }
}

/// What a test's controller logs (kept in a file, printed when a check fails).
pub struct Log(pub PathBuf);

impl Drop for Log {
    fn drop(&mut self) {
        // Kept for a failed test (its panic message has the tail; the file has it all), or
        // with ESOX_TESTS_KEEP_LOGS set.
        if !std::thread::panicking() && std::env::var_os("ESOX_TESTS_KEEP_LOGS").is_none() {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

impl Log {
    /// A log file for the controller `name` (and the handle to give the process).
    pub fn new(name: &str) -> (Log, std::fs::File) {
        let path =
            std::env::temp_dir().join(format!("esox-tests-{}-{name}.log", std::process::id()));
        let file = std::fs::File::create(&path).unwrap();
        (Log(path), file)
    }

    /// Its last 40 lines.
    pub fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.0).unwrap_or_default();
        let lines: Vec<_> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

/// Asserts that the secret value `canary` (raw or base64) is in none of the `logs` (the
/// controller's, at trace), the Events of `env`'s namespace or its ExternalSecrets' and
/// PushSecrets' statuses.
pub async fn assert_no_secret_value(env: &TestEnv, logs: &[&std::path::Path], canary: &str) {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(canary);
    let mut places = Vec::new();
    for path in logs {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            text.len() > 1000,
            "{} holds a controller's log at trace",
            path.display()
        );
        places.push((path.display().to_string(), text));
    }
    let statuses = env
        .external_secrets()
        .list(&Default::default())
        .await
        .map(|l| {
            l.items
                .into_iter()
                .map(|es| serde_json::to_string(&es.status).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    places.push(("the ExternalSecrets' statuses".into(), statuses));
    let pushes: Api<esox::api::PushSecret> = Api::namespaced(env.client.clone(), &env.ns);
    let statuses = pushes
        .list(&Default::default())
        .await
        .map(|l| {
            l.items
                .into_iter()
                .map(|ps| serde_json::to_string(&ps.status).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    places.push(("the PushSecrets' statuses".into(), statuses));
    places.push((
        "the namespace's Events".into(),
        env.namespace_events().await,
    ));
    for (what, text) in places {
        assert!(
            !text.contains(canary) && !text.contains(&encoded),
            "the secret value reached {what}"
        );
    }
}
