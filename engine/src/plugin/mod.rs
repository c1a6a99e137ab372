//! The WebAssembly plugin runtime: every transformation runs here, never natively.
//!
//! Why it is shaped this way:
//!
//! - **One [`Engine`] per process**, configured for epoch interruption (a wall-clock deadline
//!   that costs a counter check, not fuel metering on every instruction) and the pooling
//!   allocator (instance slots and copy-on-write memory images are reused, so a fresh instance
//!   per call costs microseconds). A component compiled by one engine configuration can only
//!   run on an engine with the same configuration, which is why there is exactly one.
//! - **Compile and link once per component** ([`InstancePre`](wasmtime::component::InstancePre)
//!   behind the typed `*Pre` bindings), **instantiate per call**: nothing a plugin saw for one
//!   ExternalSecret is visible to the next.
//! - **No ambient capabilities**: the WASI context has no preopened directories, no
//!   environment, no arguments, no stdin, and no network (socket address checks deny all).
//!   Randomness comes from the host CSPRNG. Guest stdout/stderr are discarded (writes
//!   succeed, so a chatty plugin does not crash): they could echo secret input.
//! - **Hard limits** ([`Limits`]): deadline, linear memory, table elements, input and output
//!   size. A trap, a timeout, an out-of-memory or a malformed result becomes a
//!   [`PluginError`] naming the plugin and what happened; the runtime stays usable.
//!
//! Calls are synchronous; async callers run them on a blocking thread.

pub mod bindings;
pub mod builtin;
pub mod cache;

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store,
    Trap,
};
use wasmtime_wasi::p2::pipe::SinkOutputStream;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::secret::{SecretBytes, SecretMap};

/// How often the epoch advances; deadlines are measured in these ticks.
const TICK: Duration = Duration::from_millis(5);

/// Limits applied to every plugin call. The defaults are safe for built-ins and user plugins.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Wall-clock time for one call.
    pub deadline: Duration,
    /// Linear memory, in bytes.
    pub max_memory: usize,
    /// Table elements.
    pub max_table_elements: usize,
    /// Input size (data, config, state), in bytes.
    pub max_input: usize,
    /// Output size (keys and values), in bytes: a Secret holds at most 1 MiB.
    pub max_output: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_secs(2),
            max_memory: 64 << 20,
            max_table_elements: 20_000,
            max_input: 4 << 20,
            max_output: 1 << 20,
        }
    }
}

/// The largest component esox decompresses: a bound against gzip bombs in a ConfigMap, well
/// above the ~20 MB of a Python component.
pub const MAX_COMPONENT_BYTES: u64 = 64 << 20;

/// The component in a stored blob. Blobs starting with gzip's magic bytes are decompressed
/// (up to [`MAX_COMPONENT_BYTES`]); anything else is the component as it is (wasmtime judges
/// it). Compression exists because a ConfigMap holds 1 MiB and JavaScript or Python
/// components are several megabytes.
pub fn unpack_component(stored: Vec<u8>) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    if !stored.starts_with(&[0x1f, 0x8b]) {
        return Ok(stored);
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(stored.as_slice())
        .take(MAX_COMPONENT_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("the stored component is not valid gzip: {e}"))?;
    if out.len() as u64 > MAX_COMPONENT_BYTES {
        return Err(format!(
            "the stored component decompresses to more than {} MiB",
            MAX_COMPONENT_BYTES >> 20
        ));
    }
    Ok(out)
}

/// Why a plugin call failed. Messages name the plugin and the limit, never data.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PluginError {
    /// The component could not be compiled or linked (not a component, or for another world).
    #[error("plugin {plugin} could not be loaded: {reason}")]
    Load {
        /// Plugin name.
        plugin: String,
        /// Why.
        reason: String,
    },
    /// The call ran past its deadline.
    #[error("plugin {plugin} timed out after {deadline:?}")]
    Timeout {
        /// Plugin name.
        plugin: String,
        /// The deadline.
        deadline: Duration,
    },
    /// The plugin asked for more memory than allowed.
    #[error("plugin {plugin} ran out of memory (limit {limit} bytes)")]
    OutOfMemory {
        /// Plugin name.
        plugin: String,
        /// The limit.
        limit: usize,
    },
    /// The plugin trapped (panicked, hit `unreachable`, …).
    #[error("plugin {plugin} crashed: {reason}")]
    Trap {
        /// Plugin name.
        plugin: String,
        /// The trap.
        reason: String,
    },
    /// The input was larger than allowed.
    #[error("plugin {plugin} input is {size} bytes, over the {limit}-byte limit")]
    InputTooLarge {
        /// Plugin name.
        plugin: String,
        /// Input size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The output was larger than allowed.
    #[error("plugin {plugin} output is {size} bytes, over the {limit}-byte limit")]
    OutputTooLarge {
        /// Plugin name.
        plugin: String,
        /// Output size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The result breaks the contract (duplicate or invalid keys).
    #[error("plugin {plugin} returned a malformed result: {reason}")]
    Malformed {
        /// Plugin name.
        plugin: String,
        /// Why.
        reason: String,
    },
    /// The plugin reported an error itself.
    #[error("plugin {plugin}: {message}{}", key.as_ref().map(|k| format!(" (key {k:?})")).unwrap_or_default())]
    Failed {
        /// Plugin name.
        plugin: String,
        /// Its message.
        message: String,
        /// The key it concerns.
        key: Option<String>,
    },
}

impl PluginError {
    /// Every value [`PluginError::metric_label`] can return.
    pub const CATEGORIES: &[&str] = &[
        "load",
        "timeout",
        "out_of_memory",
        "trap",
        "input_too_large",
        "output_too_large",
        "malformed",
        "plugin_error",
    ];

    /// Low-cardinality label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            PluginError::Load { .. } => "load",
            PluginError::Timeout { .. } => "timeout",
            PluginError::OutOfMemory { .. } => "out_of_memory",
            PluginError::Trap { .. } => "trap",
            PluginError::InputTooLarge { .. } => "input_too_large",
            PluginError::OutputTooLarge { .. } => "output_too_large",
            PluginError::Malformed { .. } => "malformed",
            PluginError::Failed { .. } => "plugin_error",
        }
    }
}

/// Per-call host state: the (empty) WASI context and the resource limiter.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: Limiter,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Enforces memory and table limits, remembering a refused memory growth so the resulting
/// trap can be reported as out-of-memory.
struct Limiter {
    max_memory: usize,
    max_table: usize,
    memory_refused: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            self.memory_refused = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.max_table)
    }
}

/// The process's plugin runtime.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    limits: Limits,
    cache: Option<cache::Cache>,
}

/// The three plugin worlds of `wit/plugin.wit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `generator-plugin`.
    Generator,
    /// `transformer-plugin`.
    Transformer,
    /// `template-plugin`.
    Template,
}

#[derive(Clone)]
enum Pre {
    Generator(Arc<bindings::generator::GeneratorPluginPre<HostState>>),
    Transformer(Arc<bindings::transformer::TransformerPluginPre<HostState>>),
    Template(Arc<bindings::template::TemplatePluginPre<HostState>>),
}

/// A compiled and linked plugin, ready to instantiate (cheap to clone).
#[derive(Clone)]
pub struct Plugin {
    name: Arc<str>,
    pre: Pre,
}

impl Plugin {
    /// The name used in errors and metrics.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The world the plugin implements.
    pub fn kind(&self) -> Kind {
        match self.pre {
            Pre::Generator(_) => Kind::Generator,
            Pre::Transformer(_) => Kind::Transformer,
            Pre::Template(_) => Kind::Template,
        }
    }
}

/// A loaded generator plugin (kept as a name for readability at call sites).
pub type GeneratorPlugin = Plugin;

/// What a generator produced.
#[derive(Debug)]
pub struct Generated {
    /// The data.
    pub data: SecretMap,
    /// State to hand back next time.
    pub state: Option<Vec<u8>>,
}

/// One template to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateRequest {
    /// The target key (`Values`) or a name for errors (`KeysAndValues`).
    pub name: String,
    /// The template text.
    pub text: String,
    /// Whether the output is one value or a YAML map of keys and values.
    pub keys_and_values: bool,
}

/// One template's output: keys and values, or that template's own error.
pub type TemplateOutput = Result<Vec<(String, SecretBytes)>, PluginError>;

impl Runtime {
    /// Builds the engine (and starts its epoch ticker); no compiled-component cache.
    pub fn new(limits: Limits) -> Result<Arc<Self>, PluginError> {
        Self::with_cache(limits, None)
    }

    /// Builds the engine with compiled components cached under `cache_dir`
    /// (see [`cache`] for what makes an entry valid).
    pub fn with_cache(
        limits: Limits,
        cache_dir: Option<&std::path::Path>,
    ) -> Result<Arc<Self>, PluginError> {
        let load_err = |reason: String| PluginError::Load {
            plugin: "(runtime)".into(),
            reason,
        };
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(256);
        pool.total_core_instances(512);
        pool.total_memories(256);
        pool.total_tables(512);
        pool.max_memory_size(limits.max_memory);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(|e| load_err(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| load_err(format!("{e:#}")))?;
        // The epoch ticker: deadlines are counted in ticks of this thread.
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("esox-wasm-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(TICK);
                }
            })
            .map_err(|e| load_err(format!("could not start the epoch thread: {e}")))?;
        let cache = cache_dir.map(|d| cache::Cache::new(&engine, d));
        Ok(Arc::new(Runtime {
            engine,
            linker,
            limits,
            cache,
        }))
    }

    /// The limits every call runs under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Compiles (or loads from the cache) and links a component for `kind`'s world.
    pub fn load(&self, name: &str, kind: Kind, bytes: &[u8]) -> Result<Plugin, PluginError> {
        self.load_traced(name, kind, bytes).map(|(p, _)| p)
    }

    /// [`load`](Self::load), also telling whether the compiled cache served it.
    pub fn load_traced(
        &self,
        name: &str,
        kind: Kind,
        bytes: &[u8],
    ) -> Result<(Plugin, cache::Source), PluginError> {
        let load_err = |reason: String| PluginError::Load {
            plugin: name.to_string(),
            reason,
        };
        let started = Instant::now();
        let (component, source) = match &self.cache {
            Some(c) => c.load_or_compile(&self.engine, bytes),
            None => Component::new(&self.engine, bytes).map(|c| (c, cache::Source::Compiled)),
        }
        .map_err(|e| load_err(format!("{e:#}")))?;
        tracing::info!(plugin = name, bytes = bytes.len(), ?source, elapsed = ?started.elapsed(), "loaded plugin component");
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| load_err(format!("{e:#}")))?;
        let world = |e: wasmtime::Error| {
            load_err(format!(
                "not a {kind:?} plugin (the component does not implement that world of esox:plugin@0.1.0): {e:#}"
            ))
        };
        let pre = match kind {
            Kind::Generator => Pre::Generator(Arc::new(
                bindings::generator::GeneratorPluginPre::new(pre).map_err(world)?,
            )),
            Kind::Transformer => Pre::Transformer(Arc::new(
                bindings::transformer::TransformerPluginPre::new(pre).map_err(world)?,
            )),
            Kind::Template => Pre::Template(Arc::new(
                bindings::template::TemplatePluginPre::new(pre).map_err(world)?,
            )),
        };
        Ok((
            Plugin {
                name: name.into(),
                pre,
            },
            source,
        ))
    }

    /// Compiles and links a generator component.
    pub fn load_generator(&self, name: &str, bytes: &[u8]) -> Result<Plugin, PluginError> {
        self.load(name, Kind::Generator, bytes)
    }

    fn store(&self) -> Store<HostState> {
        let wasi = WasiCtxBuilder::new()
            .stdout(SinkOutputStream)
            .stderr(SinkOutputStream)
            .build();
        let state = HostState {
            wasi,
            table: ResourceTable::new(),
            limiter: Limiter {
                max_memory: self.limits.max_memory,
                max_table: self.limits.max_table_elements,
                memory_refused: false,
            },
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        let ticks = (self.limits.deadline.as_millis() / TICK.as_millis()).max(1) as u64;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        store
    }

    fn classify(
        &self,
        plugin: &str,
        store: &Store<HostState>,
        err: wasmtime::Error,
    ) -> PluginError {
        if store.data().limiter.memory_refused {
            return PluginError::OutOfMemory {
                plugin: plugin.into(),
                limit: self.limits.max_memory,
            };
        }
        match err.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => PluginError::Timeout {
                plugin: plugin.into(),
                deadline: self.limits.deadline,
            },
            Some(trap) => PluginError::Trap {
                plugin: plugin.into(),
                reason: trap.to_string(),
            },
            None => PluginError::Trap {
                plugin: plugin.into(),
                reason: format!("{err:#}"),
            },
        }
    }

    fn check_input(&self, plugin: &str, size: usize) -> Result<(), PluginError> {
        if size > self.limits.max_input {
            return Err(PluginError::InputTooLarge {
                plugin: plugin.into(),
                size,
                limit: self.limits.max_input,
            });
        }
        Ok(())
    }

    fn wrong_kind(plugin: &Plugin, want: Kind) -> PluginError {
        PluginError::Load {
            plugin: plugin.name().to_string(),
            reason: format!("it is a {:?} plugin, used as a {want:?}", plugin.kind()),
        }
    }

    /// Runs a generator in a fresh instance.
    pub fn generate(
        &self,
        plugin: &Plugin,
        config: &str,
        state: Option<&[u8]>,
    ) -> Result<Generated, PluginError> {
        let name = plugin.name();
        let Pre::Generator(pre) = &plugin.pre else {
            return Err(Self::wrong_kind(plugin, Kind::Generator));
        };
        self.check_input(name, config.len() + state.map_or(0, <[u8]>::len))?;
        let started = Instant::now();
        let mut store = self.store();
        let result = pre.instantiate(&mut store).and_then(|instance| {
            instance
                .esox_plugin_generator()
                .call_generate(&mut store, config, state)
        });
        let generated = match result {
            Err(e) => return Err(self.classify(name, &store, e)),
            Ok(Err(e)) => return Err(failed(name, e.message, e.key)),
            Ok(Ok(g)) => g,
        };
        let mut budget = self.limits.max_output;
        let data = collect_entries(name, generated.data, &mut budget)?;
        tracing::debug!(plugin = name, elapsed = ?started.elapsed(), keys = data.len(), "plugin call done");
        Ok(Generated {
            data,
            state: generated.state,
        })
    }

    /// Runs a transformer over `data` in a fresh instance.
    pub fn transform(
        &self,
        plugin: &Plugin,
        data: &SecretMap,
        config: &str,
    ) -> Result<SecretMap, PluginError> {
        let name = plugin.name();
        let Pre::Transformer(pre) = &plugin.pre else {
            return Err(Self::wrong_kind(plugin, Kind::Transformer));
        };
        self.check_input(name, config.len() + map_size(data))?;
        let input = entries(data);
        let mut store = self.store();
        let result = pre.instantiate(&mut store).and_then(|instance| {
            instance
                .esox_plugin_transformer()
                .call_transform(&mut store, &input.0, config)
        });
        drop(input);
        let out = match result {
            Err(e) => return Err(self.classify(name, &store, e)),
            Ok(Err(e)) => return Err(failed(name, e.message, e.key)),
            Ok(Ok(d)) => d,
        };
        let mut budget = self.limits.max_output;
        collect_entries(name, out, &mut budget)
    }

    /// Renders `templates` over `context` in one fresh instance; each template succeeds or
    /// fails on its own, in request order.
    pub fn render(
        &self,
        plugin: &Plugin,
        templates: &[TemplateRequest],
        context: &SecretMap,
        options: &str,
    ) -> Result<Vec<(String, TemplateOutput)>, PluginError> {
        use bindings::template::exports::esox::plugin::template_engine::{Scope, Template};
        let name = plugin.name();
        let Pre::Template(pre) = &plugin.pre else {
            return Err(Self::wrong_kind(plugin, Kind::Template));
        };
        let text_size: usize = templates.iter().map(|t| t.name.len() + t.text.len()).sum();
        self.check_input(name, options.len() + map_size(context) + text_size)?;
        let input = entries(context);
        let wit_templates: Vec<Template> = templates
            .iter()
            .map(|t| Template {
                name: t.name.clone(),
                text: t.text.clone(),
                scope: if t.keys_and_values {
                    Scope::KeysAndValues
                } else {
                    Scope::Values
                },
            })
            .collect();
        let mut store = self.store();
        let result = pre.instantiate(&mut store).and_then(|instance| {
            instance.esox_plugin_template_engine().call_render(
                &mut store,
                &wit_templates,
                &input.0,
                options,
            )
        });
        drop(input);
        let rendered = result.map_err(|e| self.classify(name, &store, e))?;
        if rendered.len() != templates.len() {
            return Err(PluginError::Malformed {
                plugin: name.into(),
                reason: format!(
                    "{} results for {} templates",
                    rendered.len(),
                    templates.len()
                ),
            });
        }
        let mut budget = self.limits.max_output;
        let mut out = Vec::with_capacity(rendered.len());
        for (r, t) in rendered.into_iter().zip(templates) {
            if r.name != t.name {
                return Err(PluginError::Malformed {
                    plugin: name.into(),
                    reason: format!("result {:?} answers template {:?}", r.name, t.name),
                });
            }
            let output = match r.output {
                Ok(entries) => {
                    collect_entries(name, entries, &mut budget).map(|m| m.into_iter().collect())
                }
                Err(e) => Err(failed(name, e.message, e.key)),
            };
            if let Err(e @ PluginError::OutputTooLarge { .. }) = &output {
                return Err(e.clone());
            }
            out.push((r.name, output));
        }
        Ok(out)
    }
}

fn failed(plugin: &str, message: String, key: Option<String>) -> PluginError {
    PluginError::Failed {
        plugin: plugin.into(),
        message,
        key,
    }
}

fn map_size(data: &SecretMap) -> usize {
    data.iter().map(|(k, v)| k.len() + v.expose().len()).sum()
}

/// The data as WIT entries. The copies live only for the call (and are zeroized on drop by
/// the wrapper type the caller keeps).
fn entries(data: &SecretMap) -> WitEntries {
    WitEntries(
        data.iter()
            .map(|(k, v)| bindings::Entry {
                key: k.clone(),
                value: v.expose().to_vec(),
            })
            .collect(),
    )
}

/// WIT entries that zeroize their values when dropped.
struct WitEntries(Vec<bindings::Entry>);

impl std::ops::Deref for WitEntries {
    type Target = [bindings::Entry];
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Drop for WitEntries {
    fn drop(&mut self) {
        for e in &mut self.0 {
            zeroize::Zeroize::zeroize(&mut e.value);
        }
    }
}

/// Checks a plugin's output: the byte budget (shared across one call's outputs) and unique,
/// valid keys.
fn collect_entries(
    plugin: &str,
    entries: Vec<bindings::Entry>,
    budget: &mut usize,
) -> Result<SecretMap, PluginError> {
    let mut data = SecretMap::new();
    let limit = *budget;
    let mut used = 0usize;
    for entry in entries {
        used += entry.key.len() + entry.value.len();
        if used > limit {
            return Err(PluginError::OutputTooLarge {
                plugin: plugin.into(),
                size: used,
                limit,
            });
        }
        if data
            .insert(entry.key.clone(), SecretBytes::new(entry.value))
            .is_some()
        {
            return Err(PluginError::Malformed {
                plugin: plugin.into(),
                reason: format!("duplicate key {:?}", entry.key),
            });
        }
    }
    *budget -= used;
    Ok(data)
}

#[cfg(test)]
mod tests;

/// The plugins a controller process uses: one runtime, built-ins compiled on first use.
pub struct PluginHost {
    runtime: Arc<Runtime>,
    builtins: [std::sync::OnceLock<Result<Plugin, PluginError>>; builtin::Builtin::ALL.len()],
    /// User plugins by (name, world, sha256): compiled once per digest, so editing the
    /// plugin object to a new digest loads the new component and nothing else does.
    user: std::sync::Mutex<std::collections::HashMap<(String, u8, String), Plugin>>,
}

impl PluginHost {
    /// A host with its own runtime and no compiled-component cache.
    pub fn new(limits: Limits) -> Result<Arc<Self>, PluginError> {
        Self::with_cache(limits, None)
    }

    /// A host whose compiled components are cached under `cache_dir`.
    pub fn with_cache(
        limits: Limits,
        cache_dir: Option<&std::path::Path>,
    ) -> Result<Arc<Self>, PluginError> {
        Ok(Arc::new(PluginHost {
            runtime: Runtime::with_cache(limits, cache_dir)?,
            builtins: Default::default(),
            user: Default::default(),
        }))
    }

    /// The runtime.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// A built-in plugin, compiled (or loaded from the cache) on first use.
    pub fn builtin(&self, which: builtin::Builtin) -> Result<Plugin, PluginError> {
        self.builtins[which as usize]
            .get_or_init(|| {
                self.runtime
                    .load(which.name(), which.kind(), which.component())
            })
            .clone()
    }

    /// A user plugin whose bytes were already checked against `sha256`: compiled (off the
    /// async reactor) the first time this name, world and digest are seen.
    pub async fn user_plugin(
        self: &Arc<Self>,
        name: &str,
        kind: Kind,
        sha256: &str,
        bytes: Vec<u8>,
    ) -> Result<Plugin, PluginError> {
        let key = (name.to_string(), kind as u8, sha256.to_string());
        if let Some(p) = self
            .user
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(p.clone());
        }
        let host = self.clone();
        let label = name.to_string();
        let plugin = tokio::task::spawn_blocking(move || host.runtime.load(&label, kind, &bytes))
            .await
            .map_err(|e| PluginError::Load {
                plugin: name.to_string(),
                reason: format!("compiler thread failed: {e}"),
            })??;
        let mut user = self.user.lock().unwrap_or_else(|e| e.into_inner());
        // Older digests of the same plugin are no longer reachable.
        user.retain(|(n, k, _), _| !(n == name && *k == kind as u8));
        user.insert(key, plugin.clone());
        Ok(plugin)
    }

    /// Loads every built-in now, so the first ExternalSecret does not wait for compilation.
    pub fn preload(&self) {
        for b in builtin::Builtin::ALL {
            if let Err(e) = self.builtin(b) {
                tracing::error!(error = %e, "could not load a built-in plugin");
            }
        }
    }

    /// Runs `call` off the async reactor (plugin calls are CPU-bound and synchronous),
    /// counting the call, its outcome and its duration in `metrics`.
    async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        plugin: &Plugin,
        metrics: &crate::metrics::Metrics,
        call: impl FnOnce(&Runtime) -> Result<T, PluginError> + Send + 'static,
    ) -> Result<T, PluginError> {
        let host = self.clone();
        let name = plugin.name().to_string();
        let span = tracing::Span::current();
        let started = Instant::now();
        let result = tokio::task::spawn_blocking(move || span.in_scope(|| call(&host.runtime)))
            .await
            .unwrap_or_else(|e| {
                Err(PluginError::Trap {
                    plugin: name.clone(),
                    reason: format!("plugin thread failed: {e}"),
                })
            });
        let outcome = result
            .as_ref()
            .err()
            .map_or("ok", PluginError::metric_label);
        metrics
            .plugin_calls
            .get_or_create(&crate::metrics::PluginCallLabels {
                plugin: plugin.name().to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        metrics
            .plugin_duration
            .get_or_create(&crate::metrics::PluginLabels {
                plugin: plugin.name().to_string(),
            })
            .observe(started.elapsed().as_secs_f64());
        result
    }

    /// Runs a generator.
    pub async fn generate(
        self: &Arc<Self>,
        plugin: GeneratorPlugin,
        config: String,
        metrics: &crate::metrics::Metrics,
    ) -> Result<Generated, PluginError> {
        let p = plugin.clone();
        self.run(&plugin, metrics, move |rt| rt.generate(&p, &config, None))
            .await
    }

    /// Runs a transformer.
    pub async fn transform(
        self: &Arc<Self>,
        plugin: Plugin,
        data: SecretMap,
        config: String,
        metrics: &crate::metrics::Metrics,
    ) -> Result<SecretMap, PluginError> {
        let p = plugin.clone();
        self.run(&plugin, metrics, move |rt| rt.transform(&p, &data, &config))
            .await
    }

    /// Renders templates.
    pub async fn render(
        self: &Arc<Self>,
        plugin: Plugin,
        templates: Vec<TemplateRequest>,
        context: SecretMap,
        options: String,
        metrics: &crate::metrics::Metrics,
    ) -> Result<Vec<(String, TemplateOutput)>, PluginError> {
        let p = plugin.clone();
        self.run(&plugin, metrics, move |rt| {
            rt.render(&p, &templates, &context, &options)
        })
        .await
    }
}
