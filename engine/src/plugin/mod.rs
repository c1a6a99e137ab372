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
}

/// A loaded generator plugin, ready to instantiate.
#[derive(Clone)]
pub struct GeneratorPlugin {
    name: String,
    pre: Arc<bindings::generator::GeneratorPluginPre<HostState>>,
}

/// What a generator produced.
#[derive(Debug)]
pub struct Generated {
    /// The data.
    pub data: SecretMap,
    /// State to hand back next time.
    pub state: Option<Vec<u8>>,
}

impl Runtime {
    /// Builds the engine (and starts its epoch ticker).
    pub fn new(limits: Limits) -> Result<Arc<Self>, PluginError> {
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
        Ok(Arc::new(Runtime {
            engine,
            linker,
            limits,
        }))
    }

    /// The limits every call runs under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Compiles and links a generator component.
    pub fn load_generator(&self, name: &str, bytes: &[u8]) -> Result<GeneratorPlugin, PluginError> {
        let load_err = |reason: String| PluginError::Load {
            plugin: name.to_string(),
            reason,
        };
        let started = Instant::now();
        let component =
            Component::new(&self.engine, bytes).map_err(|e| load_err(format!("{e:#}")))?;
        tracing::info!(plugin = name, bytes = bytes.len(), elapsed = ?started.elapsed(), "compiled plugin component");
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| load_err(format!("{e:#}")))?;
        let pre = bindings::generator::GeneratorPluginPre::new(pre)
            .map_err(|e| load_err(format!("{e:#}")))?;
        Ok(GeneratorPlugin {
            name: name.to_string(),
            pre: Arc::new(pre),
        })
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

    /// Runs a generator in a fresh instance.
    pub fn generate(
        &self,
        plugin: &GeneratorPlugin,
        config: &str,
        state: Option<&[u8]>,
    ) -> Result<Generated, PluginError> {
        let name = plugin.name.as_str();
        let size = config.len() + state.map_or(0, <[u8]>::len);
        if size > self.limits.max_input {
            return Err(PluginError::InputTooLarge {
                plugin: name.into(),
                size,
                limit: self.limits.max_input,
            });
        }
        let started = Instant::now();
        let mut store = self.store();
        let instance = match plugin.pre.instantiate(&mut store) {
            Ok(i) => i,
            Err(e) => return Err(self.classify(name, &store, e)),
        };
        let result = instance
            .esox_plugin_generator()
            .call_generate(&mut store, config, state);
        let generated = match result {
            Err(e) => return Err(self.classify(name, &store, e)),
            Ok(Err(e)) => {
                return Err(PluginError::Failed {
                    plugin: name.into(),
                    message: e.message,
                    key: e.key,
                });
            }
            Ok(Ok(g)) => g,
        };
        let mut data = SecretMap::new();
        let mut total = 0usize;
        for entry in generated.data {
            total += entry.key.len() + entry.value.len();
            if total > self.limits.max_output {
                return Err(PluginError::OutputTooLarge {
                    plugin: name.into(),
                    size: total,
                    limit: self.limits.max_output,
                });
            }
            if data
                .insert(entry.key.clone(), SecretBytes::new(entry.value))
                .is_some()
            {
                return Err(PluginError::Malformed {
                    plugin: name.into(),
                    reason: format!("duplicate key {:?}", entry.key),
                });
            }
        }
        tracing::debug!(plugin = name, elapsed = ?started.elapsed(), keys = data.len(), "plugin call done");
        Ok(Generated {
            data,
            state: generated.state,
        })
    }
}

#[cfg(test)]
mod tests;

/// The plugins a controller process uses: one runtime, built-ins compiled on first use.
pub struct PluginHost {
    runtime: Arc<Runtime>,
    generators:
        [std::sync::OnceLock<Result<GeneratorPlugin, PluginError>>; builtin::Generator::ALL.len()],
}

impl PluginHost {
    /// A host with its own runtime.
    pub fn new(limits: Limits) -> Result<Arc<Self>, PluginError> {
        Ok(Arc::new(PluginHost {
            runtime: Runtime::new(limits)?,
            generators: Default::default(),
        }))
    }

    /// The runtime.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// A built-in generator, compiled on first use.
    pub fn generator(&self, which: builtin::Generator) -> Result<GeneratorPlugin, PluginError> {
        self.generators[which as usize]
            .get_or_init(|| self.runtime.load_generator(which.name(), which.component()))
            .clone()
    }

    /// Runs a generator off the async reactor (plugin calls are CPU-bound and synchronous),
    /// counting the call, its outcome and its duration in `metrics`.
    pub async fn generate(
        self: &Arc<Self>,
        plugin: GeneratorPlugin,
        config: String,
        metrics: &crate::metrics::Metrics,
    ) -> Result<Generated, PluginError> {
        let host = self.clone();
        let name = plugin.name.clone();
        let thread_name = name.clone();
        let started = Instant::now();
        let result =
            tokio::task::spawn_blocking(move || host.runtime.generate(&plugin, &config, None))
                .await
                .unwrap_or_else(|e| {
                    Err(PluginError::Trap {
                        plugin: thread_name,
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
                plugin: name.clone(),
                outcome: outcome.to_string(),
            })
            .inc();
        metrics
            .plugin_duration
            .get_or_create(&crate::metrics::PluginLabels { plugin: name })
            .observe(started.elapsed().as_secs_f64());
        result
    }
}
