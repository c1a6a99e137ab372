//! The esox WebAssembly plugin host: every transformation runs here, never natively.
//!
//! This crate knows nothing of Kubernetes or of any secret provider: it takes secret data
//! ([`SecretMap`]) and a component, and returns secret data or a [`PluginError`]. The
//! controller (crate `esox`) re-exports it as `esox::plugin`.
//!
//! Why it is shaped this way:
//!
//! - **One [`Engine`](wasmtime::Engine) per process**, configured for epoch interruption (a
//!   wall-clock deadline that costs a counter check, not fuel metering on every instruction)
//!   and the pooling allocator (instance slots and copy-on-write memory images are reused, so
//!   a fresh instance per call costs microseconds). A component compiled by one engine
//!   configuration can only run on an engine with the same configuration, which is why there
//!   is exactly one.
//! - **One setting sizes the pool and admits the calls**: [`HostConfig::max_instances`] is
//!   both the pooling allocator's number of instance slots (its memories, tables and core
//!   instances derive from it) and the size of [`PluginHost`]'s semaphore, taken before a
//!   call leaves the async reactor. Load beyond the pool waits for a slot instead of failing.
//!   Where the pool's address space cannot be reserved (a 39-bit address space, a `ulimit -v`),
//!   the runtime falls back to on-demand allocation, and says so in a log line.
//! - **Compile and link once per component** ([`InstancePre`](wasmtime::component::InstancePre)
//!   behind the typed `*Pre` bindings), **instantiate per call**: nothing a plugin saw for one
//!   ExternalSecret is visible to the next. Two callers that first use the same new component
//!   at once wait for one compilation.
//! - **No ambient capabilities**: the WASI context has no preopened directories, no
//!   environment, no arguments, no stdin, and no network (socket address checks deny all).
//!   Randomness comes from the host CSPRNG. Guest stdout/stderr are discarded (writes
//!   succeed, so a chatty plugin does not crash; they are neither captured nor logged): they
//!   could echo secret input.
//! - **Hard limits** ([`Limits`]): deadline, linear memory, table elements, input and output
//!   size. A trap, a timeout, an out-of-memory or a malformed result becomes a
//!   [`PluginError`] naming the plugin and what happened; the runtime stays usable.
//! - **One call path**: every world's call is the same sequence (check the input, make a
//!   store, instantiate, call, classify the failure, collect the output under the output
//!   budget), written once in [`Runtime`].
//!
//! [`Runtime`] calls are synchronous; [`PluginHost`] runs them on blocking threads for async
//! callers, and reports each call to a [`CallObserver`] (the controller's metrics).
#![warn(missing_docs)]

pub mod bindings;
pub mod builtin;
pub mod cache;
mod component;
mod error;
mod host;
mod runtime;

use std::path::PathBuf;
use std::time::Duration;

pub use component::{MAX_COMPONENT_BYTES, UnpackError, unpack_component};
pub use error::{OK_OUTCOME, PluginError, PluginFailure};
pub use esox_secret::{SecretBytes, SecretMap};
pub use host::{CallObserver, CallStats, MAX_USER_PLUGINS, PluginHost};
pub use runtime::{Generated, Plugin, Runtime, TemplateOutput, TemplateRequest};

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

/// The default [`HostConfig::max_instances`]: the pool size esox has always had.
pub const DEFAULT_MAX_INSTANCES: u32 = 256;

/// The environment variable a controller reads [`HostConfig::max_instances`] from (the
/// `esox` binary wires it to a flag; this crate never reads the environment itself).
pub const MAX_INSTANCES_ENV: &str = "ESOX_PLUGIN_MAX_INSTANCES";

/// How the process's plugin runtime is built.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The limits every call runs under.
    pub limits: Limits,
    /// Plugin instances alive at once: the pooling allocator's slots, and the number of calls
    /// [`PluginHost`] admits at once (the rest wait). Each slot reserves address space (about
    /// 4 GiB for its linear memory), not memory.
    pub max_instances: u32,
    /// Where compiled components are cached (see [`cache`] for what makes an entry valid);
    /// `None` compiles every component at every start.
    pub cache_dir: Option<PathBuf>,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            limits: Limits::default(),
            max_instances: DEFAULT_MAX_INSTANCES,
            cache_dir: None,
        }
    }
}

impl From<Limits> for HostConfig {
    fn from(limits: Limits) -> Self {
        HostConfig {
            limits,
            ..Default::default()
        }
    }
}

/// The three plugin worlds of `wit/plugin.wit`: what a component implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum World {
    /// `transformer-plugin`: secret data in, secret data out.
    Transformer,
    /// `generator-plugin`: configuration in, fresh secret data out.
    Generator,
    /// `template-plugin`: named templates over secret data.
    Template,
}

impl World {
    /// Every world.
    pub const ALL: [World; 3] = [World::Transformer, World::Generator, World::Template];

    /// The world's name in `wit/plugin.wit`.
    pub fn wit_name(self) -> &'static str {
        match self {
            World::Transformer => "transformer-plugin",
            World::Generator => "generator-plugin",
            World::Template => "template-plugin",
        }
    }
}

#[cfg(test)]
mod tests;
