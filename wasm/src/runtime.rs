//! [`Runtime`]: the engine, the linker, and the one typed call path every world goes through.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolConcurrencyLimitError, PoolingAllocationConfig,
    ResourceLimiter, Store, Trap,
};
use wasmtime_wasi::p2::pipe::SinkOutputStream;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::bindings::{self, generator, template, transformer};
use crate::cache;
use crate::{HostConfig, Limits, PluginError, PluginFailure, SecretBytes, SecretMap, World};

/// How often the epoch advances; deadlines are measured in these ticks.
const TICK: Duration = Duration::from_millis(5);

/// What the pool holds per component instance, beside its slot: a plugin is one component
/// with one linear memory; besides its main module it has a few small core instances (the
/// WASI adapter, the shim and fixup modules `wit-component` adds, each with a table). Python
/// and JavaScript components link more core modules into the same memory. A component needing
/// more than this still runs, but takes more than its share of the pool.
const CORE_INSTANCES_PER_INSTANCE: u32 = 8;
/// See [`CORE_INSTANCES_PER_INSTANCE`].
const TABLES_PER_INSTANCE: u32 = 4;
/// See [`CORE_INSTANCES_PER_INSTANCE`]. Memories are what costs address space (about 4 GiB
/// reserved each), so the pool has one per instance.
const MEMORIES_PER_INSTANCE: u32 = 1;

/// Per-call host state: the (empty) WASI context and the resource limiter.
pub(crate) struct HostState {
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
    max_instances: u32,
    pooling: bool,
    cache: Option<cache::Cache>,
    loads: AtomicU64,
}

#[derive(Clone)]
enum Pre {
    Generator(Arc<generator::GeneratorPluginPre<HostState>>),
    Transformer(Arc<transformer::TransformerPluginPre<HostState>>),
    Template(Arc<template::TemplatePluginPre<HostState>>),
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
    pub fn world(&self) -> World {
        match self.pre {
            Pre::Generator(_) => World::Generator,
            Pre::Transformer(_) => World::Transformer,
            Pre::Template(_) => World::Template,
        }
    }

    fn error(&self, kind: PluginFailure) -> PluginError {
        PluginError::new(self.name.clone(), kind)
    }
}

/// One world's typed bindings (`bindgen!`'s `*Pre`): where it sits in a [`Plugin`] and how
/// to instantiate it. What differs between worlds is only the export called and its types.
trait Bindings {
    const WORLD: World;
    type Instance;
    fn of(pre: &Pre) -> Option<&Self>;
    fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<Self::Instance>;
}

macro_rules! bindings {
    ($world:ident, $pre:ty, $instance:ty) => {
        impl Bindings for $pre {
            const WORLD: World = World::$world;
            type Instance = $instance;
            fn of(pre: &Pre) -> Option<&Self> {
                match pre {
                    Pre::$world(p) => Some(p),
                    _ => None,
                }
            }
            fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<$instance> {
                <$pre>::instantiate(self, store)
            }
        }
    };
}

bindings!(
    Generator,
    generator::GeneratorPluginPre<HostState>,
    generator::GeneratorPlugin
);
bindings!(
    Transformer,
    transformer::TransformerPluginPre<HostState>,
    transformer::TransformerPlugin
);
bindings!(
    Template,
    template::TemplatePluginPre<HostState>,
    template::TemplatePlugin
);

/// What a generator produced.
#[derive(Debug)]
pub struct Generated {
    /// The data.
    pub data: SecretMap,
    /// State to hand back next time (reserved: the host passes none and keeps none yet).
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
    /// Builds the engine (and starts its epoch ticker). `config` may be just [`Limits`].
    pub fn new(config: impl Into<HostConfig>) -> Result<Arc<Self>, PluginError> {
        let config = config.into();
        let load_err =
            |reason: String| PluginError::new("(runtime)", PluginFailure::Load { reason });
        if config.max_instances == 0 {
            return Err(load_err("max_instances must be at least 1".into()));
        }
        let mut base = Config::new();
        base.wasm_component_model(true);
        base.epoch_interruption(true);
        // Each component compiles on its own (blocking) thread. With parallel compilation,
        // every compile shares one rayon pool the size of the machine, so one tenant's large
        // component (a componentize-py plugin is tens of MB) held every other plugin's first
        // compile behind it for minutes on 2 cores; alone, a small one takes about a second.
        base.parallel_compilation(false);
        let mut pooled = base.clone();
        pooled.allocation_strategy(InstanceAllocationStrategy::Pooling(pool(&config)));
        // The pool reserves its address space up front; where that is not available, run
        // without it rather than not at all (spin probes for the same reason).
        let (engine, pooling) = match Engine::new(&pooled) {
            Ok(engine) => (engine, true),
            Err(e) => {
                tracing::warn!(
                    max_instances = config.max_instances,
                    error = %format!("{e:#}"),
                    "could not reserve the plugin instance pool; allocating instances on demand (slower)"
                );
                let engine = Engine::new(&base).map_err(|e| load_err(format!("{e:#}")))?;
                (engine, false)
            }
        };
        let mut linker = Linker::new(&engine);
        // All of WASI p2 is linked, and each call's `WasiCtx` (`store()`) grants nothing: no
        // preopened directory, no address a socket may reach, no environment, output
        // discarded. Linking only what the built-ins and the SDK's plugins import would turn
        // that run-time denial into a load error, but also refuse components that import more
        // without using it. Measured (the imports of each component, wasmtime 48):
        // - the built-ins, the SDK scaffolds and the Rust examples: wasi:cli (environment,
        //   exit, stdio, terminal-*), wasi:io, wasi:clocks and wasi:random only (pinned by
        //   `tests::builtins_import_only_cli_io_clocks_and_random`);
        // - componentize-py's output (examples/plugins/python-prefix): also every
        //   wasi:filesystem and wasi:sockets interface, whatever the Python code does, so
        //   without them the Python example does not instantiate;
        // - componentize-js's (examples/plugins/js-envkeys, WASI features disabled): nothing
        //   but esox:plugin/types;
        // - the hostile fixture: wasi:filesystem and wasi:sockets, whose probes are how the
        //   tests prove the run-time denial.
        // So what is needed is all of p2, and all of it stays linked.
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
        let cache = config
            .cache_dir
            .as_deref()
            .map(|d| cache::Cache::new(&engine, d));
        Ok(Arc::new(Runtime {
            engine,
            linker,
            limits: config.limits,
            max_instances: config.max_instances,
            pooling,
            cache,
            loads: AtomicU64::new(0),
        }))
    }

    /// The limits every call runs under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// How many instances can be alive at once ([`HostConfig::max_instances`]).
    pub fn max_instances(&self) -> u32 {
        self.max_instances
    }

    /// Whether instances come from the pooling allocator (false: its address space could
    /// not be reserved, and instances are allocated on demand).
    pub fn pooling(&self) -> bool {
        self.pooling
    }

    /// Components loaded (compiled, or read from the cache) since the runtime started.
    pub fn loads(&self) -> u64 {
        self.loads.load(Ordering::Relaxed)
    }

    /// Compiles (or loads from the cache) and links a component for `world`.
    pub fn load(&self, name: &str, world: World, bytes: &[u8]) -> Result<Plugin, PluginError> {
        self.load_traced(name, world, bytes).map(|(p, _)| p)
    }

    /// The WASI interfaces a component imports (`wasi:cli/stdout`: versions dropped).
    #[cfg(test)]
    pub(crate) fn wasi_imports(&self, bytes: &[u8]) -> std::collections::BTreeSet<String> {
        let component = Component::new(&self.engine, bytes).expect("a component");
        component
            .component_type()
            .imports(&self.engine)
            .filter(|(name, _)| name.starts_with("wasi:"))
            .map(|(name, _)| name.split('@').next().unwrap_or(name).to_string())
            .collect()
    }

    /// [`load`](Self::load), also telling whether the compiled cache served it.
    pub fn load_traced(
        &self,
        name: &str,
        world: World,
        bytes: &[u8],
    ) -> Result<(Plugin, cache::Source), PluginError> {
        let load_err = |reason: String| PluginError::new(name, PluginFailure::Load { reason });
        let started = Instant::now();
        self.loads.fetch_add(1, Ordering::Relaxed);
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
        let wrong = |e: wasmtime::Error| {
            load_err(format!(
                "not a {world:?} plugin (the component does not implement that world of esox:plugin@0.1.0): {e:#}"
            ))
        };
        let pre = match world {
            World::Generator => Pre::Generator(Arc::new(
                generator::GeneratorPluginPre::new(pre).map_err(wrong)?,
            )),
            World::Transformer => Pre::Transformer(Arc::new(
                transformer::TransformerPluginPre::new(pre).map_err(wrong)?,
            )),
            World::Template => Pre::Template(Arc::new(
                template::TemplatePluginPre::new(pre).map_err(wrong)?,
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

    /// What a failed instantiation or call means.
    fn classify(&self, store: &Store<HostState>, err: &wasmtime::Error) -> PluginFailure {
        if store.data().limiter.memory_refused {
            return PluginFailure::OutOfMemory {
                limit: self.limits.max_memory,
            };
        }
        if let Some(pool) = err.downcast_ref::<PoolConcurrencyLimitError>() {
            return PluginFailure::PoolExhausted {
                reason: pool.to_string(),
            };
        }
        match err.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => PluginFailure::Timeout {
                deadline: self.limits.deadline,
            },
            Some(trap) => PluginFailure::Trap {
                reason: trap.to_string(),
            },
            None => PluginFailure::Trap {
                reason: format!("{err:#}"),
            },
        }
    }

    /// The one call path: checks the world and the input size, makes a fresh store,
    /// instantiates, calls `invoke`, classifies a failure, and hands the result to `collect`
    /// with the call's output budget.
    fn call<B: Bindings, R, T>(
        &self,
        plugin: &Plugin,
        input_size: usize,
        invoke: impl FnOnce(&B::Instance, &mut Store<HostState>) -> wasmtime::Result<R>,
        collect: impl FnOnce(R, &mut Output<'_>) -> Result<T, PluginError>,
    ) -> Result<T, PluginError> {
        let Some(pre) = B::of(&plugin.pre) else {
            return Err(plugin.error(PluginFailure::Load {
                reason: format!(
                    "it is a {:?} plugin, used as a {:?}",
                    plugin.world(),
                    B::WORLD
                ),
            }));
        };
        if input_size > self.limits.max_input {
            return Err(plugin.error(PluginFailure::InputTooLarge {
                size: input_size,
                limit: self.limits.max_input,
            }));
        }
        let started = Instant::now();
        let mut store = self.store();
        let raw = pre
            .instantiate(&mut store)
            .and_then(|instance| invoke(&instance, &mut store))
            .map_err(|e| plugin.error(self.classify(&store, &e)))?;
        drop(store);
        let mut output = Output {
            plugin,
            budget: self.limits.max_output,
        };
        let out = collect(raw, &mut output)?;
        tracing::debug!(plugin = plugin.name(), world = ?B::WORLD, elapsed = ?started.elapsed(), "plugin call done");
        Ok(out)
    }

    /// Runs a generator in a fresh instance.
    pub fn generate(
        &self,
        plugin: &Plugin,
        config: &str,
        state: Option<&[u8]>,
    ) -> Result<Generated, PluginError> {
        self.call::<generator::GeneratorPluginPre<HostState>, _, _>(
            plugin,
            config.len() + state.map_or(0, <[u8]>::len),
            |instance, store| {
                instance
                    .esox_plugin_generator()
                    .call_generate(store, config, state)
            },
            |result, out| {
                let generated = result.map_err(|e| out.failed(e))?;
                Ok(Generated {
                    data: out.entries(generated.data)?,
                    state: generated.state,
                })
            },
        )
    }

    /// Runs a transformer over `data` in a fresh instance.
    pub fn transform(
        &self,
        plugin: &Plugin,
        data: &SecretMap,
        config: &str,
    ) -> Result<SecretMap, PluginError> {
        self.call::<transformer::TransformerPluginPre<HostState>, _, _>(
            plugin,
            config.len() + map_size(data),
            |instance, store| {
                let input = entries(data);
                instance
                    .esox_plugin_transformer()
                    .call_transform(store, &input.0, config)
            },
            |result, out| out.entries(result.map_err(|e| out.failed(e))?),
        )
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
        use template::exports::esox::plugin::template_engine::{Scope, Template};
        let text_size: usize = templates.iter().map(|t| t.name.len() + t.text.len()).sum();
        self.call::<template::TemplatePluginPre<HostState>, _, _>(
            plugin,
            options.len() + map_size(context) + text_size,
            |instance, store| {
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
                instance.esox_plugin_template_engine().call_render(
                    store,
                    &wit_templates,
                    &input.0,
                    options,
                )
            },
            |rendered, out| {
                if rendered.len() != templates.len() {
                    return Err(out.malformed(format!(
                        "{} results for {} templates",
                        rendered.len(),
                        templates.len()
                    )));
                }
                let mut results = Vec::with_capacity(rendered.len());
                for (r, t) in rendered.into_iter().zip(templates) {
                    if r.name != t.name {
                        return Err(out.malformed(format!(
                            "result {:?} answers template {:?}",
                            r.name, t.name
                        )));
                    }
                    let output = match r.output {
                        Ok(entries) => out.entries(entries).map(|m| m.into_iter().collect()),
                        Err(e) => Err(out.failed(e)),
                    };
                    // The output budget is the whole call's: past it, the call fails.
                    if let Err(e) = &output
                        && matches!(e.kind, PluginFailure::OutputTooLarge { .. })
                    {
                        return Err(e.clone());
                    }
                    results.push((r.name, output));
                }
                Ok(results)
            },
        )
    }
}

/// The pooling allocator's sizes, all derived from [`HostConfig::max_instances`].
fn pool(config: &HostConfig) -> PoolingAllocationConfig {
    let n = config.max_instances;
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(n);
    pool.total_core_instances(n.saturating_mul(CORE_INSTANCES_PER_INSTANCE));
    pool.total_memories(n.saturating_mul(MEMORIES_PER_INSTANCE));
    pool.total_tables(n.saturating_mul(TABLES_PER_INSTANCE));
    pool.max_memory_size(config.limits.max_memory);
    pool
}

/// The output side of one call: whose it is, and the byte budget all its outputs share.
struct Output<'a> {
    plugin: &'a Plugin,
    budget: usize,
}

impl Output<'_> {
    /// An error the guest returned.
    fn failed(&self, e: bindings::GuestError) -> PluginError {
        self.plugin.error(PluginFailure::Failed {
            message: e.message,
            key: e.key,
        })
    }

    fn malformed(&self, reason: String) -> PluginError {
        self.plugin.error(PluginFailure::Malformed { reason })
    }

    /// Checks entries against the budget and for unique keys, and takes them as secret data.
    fn entries(&mut self, entries: Vec<bindings::Entry>) -> Result<SecretMap, PluginError> {
        let mut data = SecretMap::new();
        let limit = self.budget;
        let mut used = 0usize;
        for entry in entries {
            used += entry.key.len() + entry.value.len();
            if used > limit {
                return Err(self
                    .plugin
                    .error(PluginFailure::OutputTooLarge { size: used, limit }));
            }
            if data
                .insert(entry.key.clone(), SecretBytes::new(entry.value))
                .is_some()
            {
                return Err(self.malformed(format!("duplicate key {:?}", entry.key)));
            }
        }
        self.budget -= used;
        Ok(data)
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
