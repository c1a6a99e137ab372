//! The `esox` command: run the controller, print the CRDs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use futures::FutureExt;
use prometheus_client::registry::Registry;

use esox::controller::context::{Context, Settings};
use esox::metrics::Metrics;
use esox::ratelimit::Limiter;

#[derive(Parser)]
#[command(
    name = "esox",
    version,
    about = "External Secrets Operator for Kubernetes, with transformations sandboxed in WebAssembly"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller against the current kubeconfig (or in-cluster config).
    // A flag given twice takes its last value, as Go's flags do (ESO's chart renders some
    // flags that `extraArgs` may repeat).
    #[command(args_override_self = true)]
    Controller(Box<ControllerArgs>),
    /// Print the CustomResourceDefinitions (v1 stored, v1beta1 served) as YAML.
    Crds,
    /// Write, build and try plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Render an ExternalSecret offline through the controller's pipeline and print the Secret.
    Render(RenderArgs),
}

#[derive(clap::Args)]
struct RenderArgs {
    /// Manifest files: the ExternalSecret, its Fake store, ConfigMaps/Secrets for templateFrom.
    #[arg(short = 'f', long = "filename", required = true)]
    files: Vec<std::path::PathBuf>,
    /// Remote values as a JSON object (key -> string), instead of a store.
    #[arg(long)]
    data: Option<std::path::PathBuf>,
    /// A local component for a WasmPlugin/ClusterWasmPlugin the template declares (repeatable).
    #[arg(long = "plugin", value_name = "NAME=FILE")]
    plugins: Vec<String>,
    /// Which ExternalSecret, when the files hold several.
    #[arg(long)]
    name: Option<String>,
    /// Print values decoded (stringData) rather than base64 (data).
    #[arg(long)]
    decode: bool,
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Scaffold a plugin crate on the SDK.
    New {
        /// The plugin (and crate) name, e.g. `json-flatten`.
        name: String,
        /// What it is.
        #[arg(long, alias = "kind", value_enum, default_value = "transformer")]
        world: PluginWorldArg,
        /// Where to create it (default: ./NAME).
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
        /// An SDK directory to depend on by path (default: a copy of the SDK this esox
        /// embeds, written into the new crate's vendor/esox-plugin-sdk).
        #[arg(long)]
        sdk: Option<std::path::PathBuf>,
    },
    /// Build a plugin crate for wasm32-wasip2 and print the component's sha256.
    Build {
        /// The crate directory.
        #[arg(default_value = ".")]
        dir: std::path::PathBuf,
        /// Cargo target directory (default: the crate's).
        #[arg(long)]
        target_dir: Option<std::path::PathBuf>,
    },
    /// Print the Kubernetes objects that ship a component: ConfigMaps holding it
    /// gzip-compressed (split at 1 MB, the most a ConfigMap holds) and the plugin object
    /// pinning its sha256. `esox plugin pack x.wasm --name x | kubectl -n my-app apply -f -`
    Pack {
        /// The component (`.wasm`).
        wasm: std::path::PathBuf,
        /// The plugin's name.
        #[arg(long)]
        name: String,
        /// The world it implements.
        #[arg(long, alias = "kind", value_enum, default_value = "transformer")]
        world: PluginWorldArg,
        /// The namespace of the ConfigMaps (and of a WasmPlugin); default: where it is applied.
        #[arg(long, short = 'n')]
        namespace: Option<String>,
        /// A ClusterWasmPlugin (needs --namespace) instead of a WasmPlugin.
        #[arg(long)]
        cluster: bool,
        /// A generator's default configuration (JSON).
        #[arg(long)]
        config: Option<String>,
    },
    /// Run a component once on local input, under the controller's limits.
    Test {
        /// The component (`.wasm`).
        wasm: std::path::PathBuf,
        /// What it is.
        #[arg(long, alias = "kind", value_enum, default_value = "transformer")]
        world: PluginWorldArg,
        /// Input data: a JSON file of key -> value (`-` for stdin).
        #[arg(long)]
        input: Option<std::path::PathBuf>,
        /// Input data as key=value (repeatable).
        #[arg(long = "data", value_name = "KEY=VALUE")]
        data: Vec<String>,
        /// The plugin's JSON config.
        #[arg(long, default_value = "{}")]
        config: String,
        /// Wall-clock limit per call.
        #[arg(long, default_value = "2s", value_parser = parse_duration)]
        timeout: Duration,
        /// Linear-memory limit, in MiB.
        #[arg(long, default_value_t = 64)]
        memory_mib: usize,
    },
}

/// A plugin world (`--world`; `--kind` is its old name).
#[derive(Clone, Copy, clap::ValueEnum)]
enum PluginWorldArg {
    Transformer,
    Generator,
    Template,
}

impl From<PluginWorldArg> for esox::plugin::World {
    fn from(w: PluginWorldArg) -> Self {
        match w {
            PluginWorldArg::Transformer => esox::plugin::World::Transformer,
            PluginWorldArg::Generator => esox::plugin::World::Generator,
            PluginWorldArg::Template => esox::plugin::World::Template,
        }
    }
}

#[derive(clap::Args)]
struct ControllerArgs {
    /// Watch only this namespace (scoped mode); default: the whole cluster.
    #[arg(long, env = "ESOX_NAMESPACE")]
    namespace: Option<String>,
    /// ExternalSecrets reconciled at once.
    #[arg(long, default_value_t = 32, env = "ESOX_CONCURRENT")]
    concurrent: u16,
    /// Kubernetes API requests per second (client-side limit). The default leaves the pacing
    /// to the apiserver's API Priority and Fairness (a first sync costs 4 writes per
    /// ExternalSecret; at 50/s, 1000 of them took 80 s where the apiserver takes about 8, see
    /// BENCHMARKS.md); lower it to be gentle with a shared apiserver.
    /// (`--client-qps` is ESO's name.)
    #[arg(
        long,
        alias = "client-qps",
        default_value_t = 500.0,
        env = "ESOX_KUBE_QPS"
    )]
    kube_api_qps: f64,
    /// Kubernetes API request burst (`--client-burst` is ESO's name).
    #[arg(
        long,
        alias = "client-burst",
        default_value_t = 1000,
        env = "ESOX_KUBE_BURST"
    )]
    kube_api_burst: u32,
    /// Default interval between store validations.
    #[arg(long, default_value = "5m", value_parser = parse_duration, env = "ESOX_STORE_REQUEUE_INTERVAL")]
    store_requeue_interval: Duration,
    /// Longest a provider call (a fetch, a search, connecting, a generator, a store
    /// validation) may take before it is cancelled and reported on its objects; `0`: no limit.
    #[arg(long, default_value = "2m", value_parser = parse_duration, env = "ESOX_PROVIDER_TIMEOUT")]
    provider_timeout: Duration,
    /// ExternalSecrets that may fetch from one store at once (0: as many as --concurrent). A
    /// reconcile waiting on a store gives its --concurrent turn back, so a slow store holds
    /// only its own share.
    #[arg(long, default_value_t = 0, env = "ESOX_STORE_CONCURRENCY")]
    store_concurrency: u16,
    /// Address for /metrics, /healthz and /readyz (`:8080`, as ESO writes it, is every
    /// interface).
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = esox::cli::eso::listen_addr, env = "ESOX_METRICS_ADDR")]
    metrics_addr: SocketAddr,
    /// Log line format. The level comes from `RUST_LOG`: a bare level (`trace`) is esox's
    /// own; dependencies log only at `info` unless named, and wire-logging ones never above
    /// their cap (see `esox::telemetry`).
    #[arg(long, value_enum, default_value_t, env = "ESOX_LOG_FORMAT")]
    log_format: esox::telemetry::LogFormat,
    /// Left delimiter of Go templates (ESO's flag of the same name).
    #[arg(long, default_value = "{{", env = "ESOX_TEMPLATE_LEFT_DELIMITER")]
    template_left_delimiter: String,
    /// Right delimiter of Go templates (ESO's flag of the same name).
    #[arg(long, default_value = "}}", env = "ESOX_TEMPLATE_RIGHT_DELIMITER")]
    template_right_delimiter: String,
    /// After SIGTERM (or Ctrl-C), how long reconciles in flight may take to finish; then the
    /// process exits anyway, logging how many it cut short. Keep it below the pod's
    /// terminationGracePeriodSeconds (30 s by default).
    #[arg(long, default_value = "15s", value_parser = parse_duration, env = "ESOX_SHUTDOWN_GRACE")]
    shutdown_grace: Duration,
    /// `/healthz` fails once ExternalSecrets have waited this long for a turn with no
    /// reconcile completing (the controller is wedged: every turn held by reconciles that do
    /// not return), so the kubelet restarts it.
    #[arg(long, default_value = "3m", value_parser = parse_duration, env = "ESOX_WEDGED_AFTER")]
    wedged_after: Duration,
    /// Also restart workloads annotated for Stakater Reloader
    /// (`secret.reloader.stakater.com/reload`, `reloader.stakater.com/auto`) when an
    /// esox-managed Secret they name or use changes. Watches Deployments, StatefulSets and
    /// DaemonSets (metadata only). Do not run it beside Reloader.
    #[arg(long, env = "ESOX_RELOADER_COMPAT")]
    reloader_compat: bool,
    #[command(flatten)]
    plugin: PluginArgs,
    #[command(flatten)]
    webhook: WebhookArgs,
    #[command(flatten)]
    leader: LeaderArgs,
    #[command(flatten)]
    shard: ShardArgs,
    #[command(flatten)]
    reconcilers: esox::cli::eso::ReconcilerArgs,
    #[command(flatten)]
    eso: esox::cli::eso::EsoArgs,
}

/// Sharding: several replicas that share the ExternalSecrets and PushSecrets.
#[derive(clap::Args)]
struct ShardArgs {
    /// Share ExternalSecrets and PushSecrets among every replica started with it: each holds a
    /// coordination.k8s.io Lease (`esox-shard-<identity>`, renewed with the
    /// --leader-election-* durations) and reconciles the objects it owns by a consistent hash
    /// of namespace/name; store validation, ClusterExternalSecrets and ClusterPushSecrets stay
    /// with the leader (--leader-election-id). See docs/sharding.md.
    #[arg(long = "shard-mode", env = "ESOX_SHARD_MODE")]
    enabled: bool,
    /// The members' group (the `shard.esox.io/group` label of their Leases): replicas with the
    /// same group share the objects. Default: --leader-election-id.
    #[arg(long = "shard-group", env = "ESOX_SHARD_GROUP")]
    group: Option<String>,
}

/// The Wasm plugin host.
#[derive(clap::Args)]
struct PluginArgs {
    /// Directory for compiled plugin components (must be private to esox; an emptyDir in a
    /// pod). Default: `$XDG_CACHE_HOME/esox/plugins` or `~/.cache/esox/plugins`.
    #[arg(long = "plugin-cache-dir", env = "ESOX_PLUGIN_CACHE_DIR")]
    cache_dir: Option<std::path::PathBuf>,
    /// Compile plugins at every start instead of caching them on disk.
    #[arg(long = "no-plugin-cache", env = "ESOX_NO_PLUGIN_CACHE")]
    no_cache: bool,
    /// Wall-clock limit for one plugin call.
    #[arg(long = "plugin-timeout", default_value = "2s", value_parser = parse_duration, env = "ESOX_PLUGIN_TIMEOUT")]
    timeout: Duration,
    /// Linear-memory limit for one plugin instance, in MiB.
    #[arg(
        long = "plugin-memory-mib",
        default_value_t = 64,
        env = "ESOX_PLUGIN_MEMORY_MIB"
    )]
    memory_mib: usize,
    /// Plugin instances alive at once (the pooling allocator's slots); calls beyond it wait
    /// for a slot. Each reserves address space, not memory.
    #[arg(
        long = "plugin-max-instances",
        default_value_t = esox::plugin::DEFAULT_MAX_INSTANCES,
        value_parser = clap::value_parser!(u32).range(1..),
        env = "ESOX_PLUGIN_MAX_INSTANCES"
    )]
    max_instances: u32,
}

/// The validating admission webhook.
#[derive(clap::Args)]
struct WebhookArgs {
    /// Serve the validating admission webhook on this port (0: off; ESO uses 9443).
    #[arg(long = "webhook-port", default_value_t = 0, env = "ESOX_WEBHOOK_PORT")]
    port: u16,
    /// Directory with the webhook's `tls.crt` and `tls.key`.
    #[arg(
        long = "webhook-cert-dir",
        default_value = "/tmp/k8s-webhook-server/serving-certs",
        env = "ESOX_WEBHOOK_CERT_DIR"
    )]
    cert_dir: std::path::PathBuf,
    /// Provision the webhook's certificate into this Secret (in the controller's namespace)
    /// and serve it, instead of reading `--webhook-cert-dir`: esox makes a CA and a serving
    /// certificate, renews them before they expire, and keeps `--webhook-config-name`'s
    /// caBundle in step.
    #[arg(long = "webhook-cert-secret", env = "ESOX_WEBHOOK_CERT_SECRET")]
    cert_secret: Option<String>,
    /// The ValidatingWebhookConfiguration whose caBundle esox keeps (with
    /// `--webhook-cert-secret`).
    #[arg(long = "webhook-config-name", env = "ESOX_WEBHOOK_CONFIG_NAME")]
    config_name: Option<String>,
    /// A DNS name or IP address for the provisioned certificate (repeat, or comma-separate in
    /// the environment variable), e.g. the webhook Service's `NAME.NAMESPACE.svc`.
    #[arg(
        long = "webhook-dns-name",
        env = "ESOX_WEBHOOK_DNS_NAMES",
        value_delimiter = ','
    )]
    dns_names: Vec<String>,
    /// Address the webhook binds.
    #[arg(
        long = "webhook-host",
        default_value = "0.0.0.0",
        env = "ESOX_WEBHOOK_HOST"
    )]
    host: String,
}

/// Leader election (for replicas > 1).
#[derive(clap::Args)]
struct LeaderArgs {
    /// Run the controllers only while holding a coordination.k8s.io Lease (for replicas > 1).
    /// `--enable-leader-election` is ESO's name.
    #[arg(
        long = "leader-elect",
        alias = "enable-leader-election",
        env = "ESOX_LEADER_ELECT",
        action = clap::ArgAction::Set,
        value_parser = esox::cli::eso::go_bool,
        num_args = 0..=1,
        require_equals = true,
        default_value = "false",
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    elect: bool,
    /// The Lease's name (ESO's default).
    #[arg(
        long = "leader-election-id",
        default_value = "external-secrets-controller",
        env = "ESOX_LEADER_ELECTION_ID"
    )]
    id: String,
    /// The Lease's namespace (default: $POD_NAMESPACE, the in-cluster namespace, or default).
    #[arg(
        id = "leader_election_namespace",
        long = "leader-election-namespace",
        env = "ESOX_LEADER_ELECTION_NAMESPACE"
    )]
    namespace: Option<String>,
    /// How long the Lease holds without renewal.
    #[arg(long = "leader-election-lease-duration", default_value = "15s", value_parser = parse_duration, env = "ESOX_LEADER_ELECTION_LEASE_DURATION")]
    lease_duration: Duration,
    /// How long the leader retries renewing before it steps down (exits).
    #[arg(long = "leader-election-renew-deadline", default_value = "10s", value_parser = parse_duration, env = "ESOX_LEADER_ELECTION_RENEW_DEADLINE")]
    renew_deadline: Duration,
    /// How often to try to acquire or renew the Lease.
    #[arg(long = "leader-election-retry-period", default_value = "2s", value_parser = parse_duration, env = "ESOX_LEADER_ELECTION_RETRY_PERIOD")]
    retry_period: Duration,
}

impl PluginArgs {
    fn cache(&self) -> Option<std::path::PathBuf> {
        if self.no_cache {
            return None;
        }
        self.cache_dir.clone().or_else(|| {
            let base = std::env::var_os("XDG_CACHE_HOME")
                .map(std::path::PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cache"))
                })?;
            Some(base.join("esox").join("plugins"))
        })
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    esox::api::duration::parse(s).map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // An ESO Deployment's args name no subcommand: they run the controller.
    match Cli::parse_from(esox::cli::eso::with_default_command(std::env::args_os())).command {
        Command::Crds => {
            print!("{}", esox::api::crd::to_yaml());
            Ok(())
        }
        Command::Controller(args) => {
            let result = run_controller(*args).await;
            // Exit here rather than by dropping the runtime, which would wait for blocking
            // tasks (a plugin call, a DNS lookup) the shutdown grace already gave up on.
            let code = match result {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("Error: {e:?}");
                    1
                }
            };
            std::process::exit(code)
        }
        Command::Plugin(cmd) => plugin_command(cmd),
        Command::Render(args) => render_command(args).await,
    }
}

async fn render_command(args: RenderArgs) -> anyhow::Result<()> {
    let mut docs = Vec::new();
    for f in &args.files {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        docs.extend(
            esox::offline::documents::<serde_yaml::Value>(&text)
                .with_context(|| format!("{}: not YAML", f.display()))?,
        );
    }
    let data = match &args.data {
        None => None,
        Some(p) => Some(
            serde_json::from_str(
                &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            )
            .with_context(|| format!("{}: expected a JSON object of key -> string", p.display()))?,
        ),
    };
    let mut plugins = std::collections::BTreeMap::new();
    for p in &args.plugins {
        let (name, file) = p
            .split_once('=')
            .with_context(|| format!("--plugin {p:?}: expected NAME=FILE"))?;
        plugins.insert(name.to_string(), std::path::PathBuf::from(file));
    }
    let host = esox::plugin::PluginHost::new(Default::default())?;
    let inputs = esox::offline::Inputs {
        docs,
        data,
        plugins,
        name: args.name,
    };
    print!(
        "{}",
        esox::offline::render(inputs, host, args.decode).await?
    );
    Ok(())
}

fn plugin_command(cmd: PluginCommand) -> anyhow::Result<()> {
    use esox::cli::plugin as author;
    match cmd {
        PluginCommand::New {
            name,
            world,
            dir,
            sdk,
        } => {
            let dir = dir.unwrap_or_else(|| std::path::PathBuf::from(&name));
            let files = author::scaffold(&dir, &name, world.into(), sdk.as_deref())?;
            for f in files {
                println!("created {}", f.display());
            }
            println!("next: cd {} && esox plugin build .", dir.display());
        }
        PluginCommand::Build { dir, target_dir } => {
            let built = author::build(&dir, target_dir.as_deref())?;
            println!("component: {}", built.path.display());
            println!("size: {} bytes", built.size);
            println!("sha256: {}", built.sha256);
        }
        PluginCommand::Pack {
            wasm,
            name,
            world,
            namespace,
            cluster,
            config,
        } => {
            let world = match world {
                PluginWorldArg::Transformer => esox::api::plugins::PluginWorld::Transformer,
                PluginWorldArg::Generator => esox::api::plugins::PluginWorld::Generator,
                PluginWorldArg::Template => anyhow::bail!(
                    "template engines are built in; a user plugin is a transformer or a generator"
                ),
            };
            let config = config
                .map(|c| serde_json::from_str(&c).context("--config is not JSON"))
                .transpose()?;
            let bytes =
                std::fs::read(&wasm).with_context(|| format!("reading {}", wasm.display()))?;
            let packed = author::pack(
                &bytes,
                &author::PackOptions {
                    name: &name,
                    namespace: namespace.as_deref(),
                    cluster,
                    world,
                    config,
                },
            )?;
            eprintln!(
                "{}: {} bytes, {} gzip-compressed, in {} ConfigMap(s); sha256 {}",
                wasm.display(),
                packed.size,
                packed.compressed,
                packed.parts,
                packed.sha256
            );
            print!("{}", packed.yaml);
        }
        PluginCommand::Test {
            wasm,
            world,
            input,
            data,
            config,
            timeout,
            memory_mib,
        } => {
            let mut map = match input {
                None => Default::default(),
                Some(p) if p.as_os_str() == "-" => {
                    let mut s = String::new();
                    std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
                    author::read_input(&s)?
                }
                Some(p) => author::read_input(
                    &std::fs::read_to_string(&p)
                        .with_context(|| format!("reading {}", p.display()))?,
                )?,
            };
            for kv in data {
                let (k, v) = kv
                    .split_once('=')
                    .with_context(|| format!("--data {kv:?}: expected KEY=VALUE"))?;
                map.insert(
                    k.to_string(),
                    esox::secret::SecretBytes::new(v.as_bytes().to_vec()),
                );
            }
            let bytes =
                std::fs::read(&wasm).with_context(|| format!("reading {}", wasm.display()))?;
            let limits = esox::plugin::Limits {
                deadline: timeout,
                max_memory: memory_mib << 20,
                ..Default::default()
            };
            let out = author::run(&bytes, world.into(), limits, &map, &config)?;
            println!("{}", author::output_json(&out));
        }
    }
    Ok(())
}

async fn run_controller(args: ControllerArgs) -> anyhow::Result<()> {
    esox::telemetry::init(args.log_format, args.eso.loglevel.as_deref());
    for warning in args.eso.no_effect.warnings() {
        tracing::warn!("{warning}");
    }
    let no_effect = args.eso.no_effect.given();
    if !no_effect.is_empty() {
        tracing::info!(
            flags = ?no_effect,
            "ESO flags accepted with no effect in esox (see docs/flags.md)"
        );
    }
    let switches = args.reconcilers.switches();
    if !switches.disabled().is_empty() {
        tracing::info!(disabled = ?switches.disabled(), "controllers switched off");
    }
    let config = kube::Config::infer()
        .await
        .context("could not load a kubeconfig or in-cluster configuration")?;
    let limiter = Limiter::new(args.kube_api_qps, args.kube_api_burst);
    let client = esox::kube_client::build(config, limiter)
        .context("could not build the Kubernetes client")?;

    let mut registry = Registry::default();
    let metrics = Arc::new(Metrics::new(&mut registry));
    let registry = Arc::new(registry);
    let ready = Arc::new(AtomicBool::new(false));
    let health = Arc::new(esox::http::Health::new(ready.clone(), args.wedged_after));
    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .with_context(|| format!("could not listen on {}", args.metrics_addr))?;
    tokio::spawn(esox::http::serve(
        listener,
        registry.clone(),
        health.clone(),
    ));
    if let Some(addr) = args.eso.live_addr {
        // ESO's health endpoint (its chart points the probes at it): the same server.
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("could not listen on {addr} (--live-addr)"))?;
        tokio::spawn(esox::http::serve(
            listener,
            registry.clone(),
            health.clone(),
        ));
    }
    let stopping = shutdown_on_signal(args.shutdown_grace, health.clone());
    if args.webhook.port != 0 {
        // Every replica serves the webhook (it reads nothing but the object under review).
        let tls = match &args.webhook.cert_secret {
            Some(secret) => {
                let settings = esox::webhook::certs::CertSettings {
                    namespace: own_namespace(None),
                    secret: secret.clone(),
                    webhook_config: args.webhook.config_name.clone(),
                    names: args.webhook.dns_names.clone(),
                };
                let resolver = esox::webhook::certs::provision(client.clone(), settings)?;
                esox::webhook::tls_config_from(resolver)
            }
            None => esox::webhook::tls_config(&args.webhook.cert_dir)?,
        };
        let addr = format!("{}:{}", args.webhook.host, args.webhook.port);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("could not listen on {addr} for the webhook"))?;
        tracing::info!(%addr, "serving the validating webhook");
        tokio::spawn(esox::webhook::serve(listener, tls));
    }

    let limits = esox::plugin::Limits {
        deadline: args.plugin.timeout,
        max_memory: args.plugin.memory_mib << 20,
        ..Default::default()
    };
    if u32::from(args.concurrent) > args.plugin.max_instances {
        tracing::warn!(
            concurrent = args.concurrent,
            max_instances = args.plugin.max_instances,
            "--concurrent is above --plugin-max-instances: plugin calls beyond the pool wait for a slot"
        );
    }
    let plugins = esox::plugin::PluginHost::new(esox::plugin::HostConfig {
        limits,
        max_instances: args.plugin.max_instances,
        cache_dir: args.plugin.cache(),
    })
    .context("could not start the Wasm plugin runtime")?;
    {
        // Compile (or load from the cache) the built-ins before the first reconcile needs them.
        let plugins = plugins.clone();
        tokio::task::spawn_blocking(move || plugins.preload())
            .await
            .context("loading the built-in plugins")?;
    }
    let elector = args.leader.elect.then(|| {
        let mut s = esox::leader::LeaseSettings::new(
            &args.leader.id,
            &own_namespace(args.leader.namespace.clone()),
            &leader_identity(),
        );
        s.lease_duration = args.leader.lease_duration;
        s.renew_deadline = args.leader.renew_deadline;
        s.retry = args.leader.retry_period;
        esox::leader::Elector::new(client.clone(), s)
    });
    let ctx = Context::new(
        client,
        std::env::var("POD_NAME").ok(),
        plugins,
        metrics,
        Settings {
            namespace: args.namespace,
            store_requeue: args.store_requeue_interval,
            concurrency: args.concurrent,
            delimiters: esox::template::Delimiters {
                left: args.template_left_delimiter,
                right: args.template_right_delimiter,
            },
            provider_timeout: args.provider_timeout,
            store_concurrency: args.store_concurrency,
            switches,
            class: esox::controller::class::ControllerClass::new(&args.eso.controller_class),
        },
    );
    ctx.rollout
        .reloader_compat
        .store(args.reloader_compat, Ordering::Relaxed);
    if args.shard.enabled {
        let client = ctx.client.clone();
        return run_sharded(&args.leader, &args.shard, client, ctx, health, stopping).await;
    }
    let Some(elector) = elector else {
        tracing::info!(version = env!("CARGO_PKG_VERSION"), namespace = ?ctx.settings.namespace, "starting esox controller");
        esox::controller::run_until(ctx, health, stopping).await;
        revoke_vault_tokens().await;
        return Ok(());
    };
    // A standby is healthy and ready to take over: it reports ready while it waits.
    ready.store(true, Ordering::Relaxed);
    tokio::select! {
        _ = elector.acquire() => {}
        _ = stopping.clone() => return Ok(()),
    }
    tracing::info!(version = env!("CARGO_PKG_VERSION"), namespace = ?ctx.settings.namespace, "starting esox controller as leader");
    tokio::select! {
        _ = esox::controller::run_until(ctx, health, stopping) => {
            revoke_vault_tokens().await;
            // Bounded: an apiserver that does not answer must not hold the exit up.
            if tokio::time::timeout(Duration::from_secs(2), elector.release()).await.is_err() {
                tracing::warn!("could not release the leader Lease in time; it expires by itself");
            }
            Ok(())
        }
        _ = elector.hold() => {
            // Stop writing at once: the process exits and restarts as a standby.
            anyhow::bail!("lost the leader Lease; exiting so that only the new leader writes")
        }
    }
}

/// `--shard-mode`: every replica reconciles its share; the leader also does the leader-only
/// work. Losing the membership (the Lease not renewed in time) or the leadership exits the
/// process at once, before another replica may take over.
async fn run_sharded(
    leader_args: &LeaderArgs,
    shard_args: &ShardArgs,
    client: kube::Client,
    ctx: Arc<Context>,
    health: Arc<esox::http::Health>,
    stopping: futures::future::Shared<futures::future::BoxFuture<'static, ()>>,
) -> anyhow::Result<()> {
    use esox::shard::membership;
    let identity = leader_identity();
    let namespace = own_namespace(leader_args.namespace.clone());
    let shard = esox::shard::Shard::new(&identity, Some(ctx.metrics.clone()));
    if ctx.shard.set(shard.clone()).is_err() {
        anyhow::bail!("the shard state was set twice");
    }
    ctx.leader.set(false);
    let settings = membership::ShardSettings {
        namespace: namespace.clone(),
        group: shard_args
            .group
            .clone()
            .unwrap_or_else(|| leader_args.id.clone()),
        identity: identity.clone(),
        lease_duration: leader_args.lease_duration,
        renew_deadline: leader_args.renew_deadline,
        retry: leader_args.retry_period,
    };
    anyhow::ensure!(
        settings.renew_deadline < settings.lease_duration,
        "--leader-election-renew-deadline must be shorter than --leader-election-lease-duration"
    );
    let mut lease = esox::leader::LeaseSettings::new(&leader_args.id, &namespace, &identity);
    lease.lease_duration = leader_args.lease_duration;
    lease.renew_deadline = leader_args.renew_deadline;
    lease.retry = leader_args.retry_period;
    let elector = Arc::new(esox::leader::Elector::new(client.clone(), lease));
    let (leave_tx, leave_rx) = tokio::sync::oneshot::channel::<()>();
    let mut members = tokio::spawn(membership::run(
        client,
        settings,
        shard,
        health.clone(),
        async move {
            let _ = leave_rx.await;
        },
    ));
    let leading = {
        let (elector, ctx, stopping) = (elector.clone(), ctx.clone(), stopping.clone());
        async move {
            tokio::select! {
                _ = elector.acquire() => {}
                _ = stopping => return futures::future::pending::<()>().await,
            }
            ctx.leader.set(true);
            tracing::info!(
                "leading: validating stores, running ClusterExternalSecrets and ClusterPushSecrets"
            );
            elector.hold().await;
        }
    };
    tracing::info!(version = env!("CARGO_PKG_VERSION"), %identity, namespace = ?ctx.settings.namespace, "starting esox controller in shard mode");
    let leader = ctx.clone();
    tokio::select! {
        _ = esox::controller::run_until(ctx, health, stopping) => {
            revoke_vault_tokens().await;
            // Every reconcile has ended: leave the membership (the others take over at once).
            let _ = leave_tx.send(());
            match tokio::time::timeout(Duration::from_secs(3), members).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => tracing::warn!(error = %e, "shard membership"),
                Ok(Err(_)) | Err(_) => tracing::warn!("could not leave the shard membership in time; this replica's Lease expires by itself"),
            }
            if leader.leader.is_leader()
                && tokio::time::timeout(Duration::from_secs(2), elector.release()).await.is_err()
            {
                tracing::warn!("could not release the leader Lease in time; it expires by itself");
            }
            Ok(())
        }
        res = &mut members => match res {
            Ok(Ok(())) => anyhow::bail!("the shard membership ended"),
            Ok(Err(e)) => Err(anyhow::Error::new(e).context("left the shard membership; exiting so that only the new owners write")),
            Err(e) => anyhow::bail!("the shard membership task failed: {e}"),
        },
        _ = leading => {
            anyhow::bail!("lost the leader Lease; exiting so that only the new leader writes")
        }
    }
}

/// Revokes the Vault tokens esox logged in for (bounded: a Vault that does not answer must not
/// hold the exit up; the tokens then expire on their own).
async fn revoke_vault_tokens() {
    let revoke = esox::provider::vault::token::revoke_all();
    if tokio::time::timeout(Duration::from_secs(2), revoke)
        .await
        .is_err()
    {
        tracing::warn!("could not revoke the Vault tokens in time; they expire on their own");
    }
}

/// Stops the process on SIGTERM or Ctrl-C: the returned future resolves at the first signal
/// (the controllers then start no new reconcile and wait for those in flight); after `grace`,
/// or at a second signal, the process exits anyway, saying how many reconciles it cut short.
fn shutdown_on_signal(
    grace: Duration,
    health: Arc<esox::http::Health>,
) -> futures::future::Shared<futures::future::BoxFuture<'static, ()>> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        esox::controller::shutdown_signal().await;
        let (running, waiting) = health.work();
        tracing::info!(
            ?grace,
            running,
            waiting,
            "shutting down: no new reconciles; waiting for those running"
        );
        let _ = tx.send(());
        let second = tokio::select! {
            _ = tokio::time::sleep(grace) => false,
            _ = esox::controller::shutdown_signal() => true,
        };
        let (running, waiting) = health.work();
        tracing::warn!(
            ?grace,
            second_signal = second,
            running,
            waiting,
            "shutdown grace over: exiting with {running} reconciles cut short (they run again at the next start)"
        );
        std::process::exit(1);
    });
    rx.map(|_| ()).boxed().shared()
}

/// Who we are in the Lease: the pod name (or host name) and a per-process suffix.
fn leader_identity() -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "esox".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{host}_{}_{nanos:08x}", std::process::id())
}

/// The controller's own namespace (for its Lease and its webhook certificate): the flag,
/// $POD_NAMESPACE, the in-cluster namespace, or `default`.
fn own_namespace(flag: Option<String>) -> String {
    flag.or_else(|| std::env::var("POD_NAMESPACE").ok())
        .or_else(|| {
            std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_controller_flag_can_be_set_from_the_environment() {
        let cmd = Cli::command();
        let controller = cmd
            .find_subcommand("controller")
            .expect("a controller subcommand");
        let missing: Vec<_> = controller
            .get_arguments()
            .filter(|a| a.get_long().is_some() && a.get_env().is_none())
            .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
            .map(|a| a.get_id().to_string())
            .collect();
        assert!(missing.is_empty(), "flags without `env`: {missing:?}");
    }

    #[test]
    fn flags_keep_their_names() {
        let args = Cli::try_parse_from([
            "esox",
            "controller",
            "--webhook-port",
            "9443",
            "--leader-elect",
            "--leader-election-id",
            "x",
            "--plugin-timeout",
            "3s",
            "--no-plugin-cache",
            "--log-format",
            "json",
        ])
        .unwrap();
        let Command::Controller(args) = args.command else {
            panic!("controller")
        };
        assert_eq!(args.webhook.port, 9443);
        assert!(args.leader.elect);
        assert_eq!(args.leader.id, "x");
        assert_eq!(args.plugin.timeout, Duration::from_secs(3));
        assert!(args.plugin.cache().is_none());
        assert_eq!(args.log_format, esox::telemetry::LogFormat::Json);
    }

    /// Every flag ESO's chart (`deploy/charts/external-secrets/templates/deployment.yaml`)
    /// renders, with every value set, plus ESO flags a user passes through `extraArgs`, with
    /// no subcommand as in an ESO Deployment: accepted, and the ones esox has honoured.
    #[test]
    fn an_eso_deployments_args_are_accepted() {
        let argv = [
            "esox",
            "--enable-leader-election=true",
            "--leader-election-id=eso",
            "--leader-election-lease-duration=30s",
            "--leader-election-renew-deadline=20s",
            "--leader-election-retry-period=4s",
            "--namespace=team-a",
            "--enable-cluster-store-reconciler=false",
            "--enable-cluster-external-secret-reconciler=false",
            "--enable-cluster-push-secret-reconciler=false",
            "--enable-push-secret-reconciler=false",
            "--enable-secret-store-reconciler=false",
            "--store-requeue-interval=1m30s",
            "--controller-class=default",
            "--enable-extended-metric-labels=true",
            "--enable-http2=true",
            "--enable-vault-token-cache=true",
            "--vault-token-cache-size=262144",
            "--concurrent=1",
            "--unsafe-allow-generic-targets=true",
            // extraArgs
            "--client-qps=50",
            "--client-burst=100",
            "--enable-flood-gate=false",
            "--enable-secrets-caching",
            "--enable-configmaps-caching=false",
            "--enable-managed-secrets-caching=true",
            "--enable-secret-api-read-on-cache-mismatch=false",
            "--enable-generator-state=false",
            "--generator-gc-grace-period=2m",
            "--enable-v2-providers=false",
            "--experimental-enable-vault-token-cache=true",
            "--experimental-vault-token-cache-size=100",
            "--experimental-enable-doppler-oidc-cache=false",
            "--experimental-doppler-oidc-cache-size=10",
            "--doppler-etag-cache-size=10",
            "--mysterybox-tokens-cache-size=10",
            "--mysterybox-connections-cache-size=10",
            "--experimental-enable-aws-session-cache=true",
            // A repeat takes the last value, as with Go's flags.
            "--concurrent=3",
            "--concurrent=1",
            "--template-left-delimiter=[[",
            "--template-right-delimiter=]]",
            // always rendered
            "--metrics-addr=:8080",
            "--loglevel=debug",
            "--zap-time-encoding=epoch",
            "--live-addr=:8082",
            "--metrics-secure=true",
            "--metrics-cert-dir=/etc/tls",
            "--metrics-cert-name=tls.crt",
            "--metrics-key-name=tls.key",
            "--metrics-auth=true",
        ];
        let cli = Cli::try_parse_from(esox::cli::eso::with_default_command(
            argv.iter().map(std::ffi::OsString::from),
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let Command::Controller(args) = cli.command else {
            panic!("an ESO Deployment's args run the controller")
        };
        assert!(args.leader.elect);
        assert_eq!(args.leader.id, "eso");
        assert_eq!(args.leader.lease_duration, Duration::from_secs(30));
        assert_eq!(args.namespace.as_deref(), Some("team-a"));
        assert_eq!(args.store_requeue_interval, Duration::from_secs(90));
        assert_eq!(args.concurrent, 1);
        assert_eq!(args.kube_api_qps, 50.0);
        assert_eq!(args.kube_api_burst, 100);
        assert_eq!(args.metrics_addr, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(args.eso.live_addr, Some("0.0.0.0:8082".parse().unwrap()));
        assert_eq!(args.eso.loglevel.as_deref(), Some("debug"));
        assert_eq!(args.template_left_delimiter, "[[");
        let switches = args.reconcilers.switches();
        assert!(!switches.cluster_store && !switches.cluster_external_secret);
        assert!(!switches.push_secret && !switches.cluster_push_secret);
        assert!(!switches.secret_store && !switches.flood_gate);
        assert_eq!(args.eso.controller_class, "default");
        assert_eq!(args.eso.no_effect.given().len(), 24);
    }

    #[test]
    fn leader_election_takes_eso_booleans() {
        for (flag, want) in [
            ("--leader-elect", true),
            ("--leader-elect=false", false),
            ("--enable-leader-election", true),
            ("--enable-leader-election=false", false),
        ] {
            let cli = Cli::try_parse_from(["esox", "controller", flag]).unwrap();
            let Command::Controller(args) = cli.command else {
                panic!("controller")
            };
            assert_eq!(args.leader.elect, want, "{flag}");
        }
    }
}
