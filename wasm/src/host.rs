//! [`PluginHost`]: the plugins a controller process uses, run for async callers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{OnceCell, Semaphore};

use crate::builtin::Builtin;
use crate::{
    Generated, HostConfig, OK_OUTCOME, Plugin, PluginError, PluginFailure, Runtime, SecretMap,
    TemplateOutput, TemplateRequest, World,
};

/// The most user plugins (name, world and digest) kept compiled at once; past it the least
/// recently used is dropped (and compiled again, or read from the compiled cache, when next
/// used). A bound, whatever tells the host that a plugin object was deleted
/// ([`PluginHost::forget_user_plugin`]) or not.
pub const MAX_USER_PLUGINS: usize = 128;

/// Where [`PluginHost`] reports each call: the controller counts them in its metrics.
pub trait CallObserver: Send + Sync {
    /// One call finished (or could not run).
    fn observe(&self, call: &CallStats<'_>);
}

/// One plugin call, as [`CallObserver`] sees it.
#[derive(Debug, Clone)]
pub struct CallStats<'a> {
    /// The plugin's name.
    pub plugin: &'a str,
    /// Its world.
    pub world: World,
    /// [`OK_OUTCOME`], or the failure's category (one of [`PluginFailure::CATEGORIES`]).
    pub outcome: &'static str,
    /// Time spent waiting for an instance slot.
    pub queued: Duration,
    /// Time the call took once admitted, instantiation included.
    pub elapsed: Duration,
}

impl CallObserver for () {
    fn observe(&self, _: &CallStats<'_>) {}
}

impl<T: CallObserver + ?Sized> CallObserver for Arc<T> {
    fn observe(&self, call: &CallStats<'_>) {
        (**self).observe(call)
    }
}

impl<T: CallObserver + ?Sized> CallObserver for &T {
    fn observe(&self, call: &CallStats<'_>) {
        (**self).observe(call)
    }
}

/// A user plugin as the host keys it: compiled once per digest, so editing the plugin object
/// to a new digest loads the new component and nothing else does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct UserKey {
    name: String,
    world: World,
    sha256: String,
}

/// A user plugin's compilation, shared by every caller that asks while it runs.
type Compiled = Arc<OnceCell<Result<Plugin, PluginError>>>;

struct UserEntry {
    compiled: Compiled,
    last_used: u64,
}

/// The plugins a controller process uses: one runtime, built-ins compiled on first use, user
/// plugins compiled once per digest, and calls admitted as instance slots allow.
pub struct PluginHost {
    runtime: Arc<Runtime>,
    /// One permit per instance slot of the runtime's pool, taken before a call leaves the
    /// async reactor: load beyond the pool waits here instead of failing in the allocator.
    slots: Arc<Semaphore>,
    builtins: [OnceLock<Result<Plugin, PluginError>>; Builtin::ALL.len()],
    user: Mutex<HashMap<UserKey, UserEntry>>,
    /// A logical clock for the user plugins' least-recently-used order.
    clock: AtomicU64,
}

impl PluginHost {
    /// A host with its own runtime built from `config`.
    pub fn new(config: HostConfig) -> Result<Arc<Self>, PluginError> {
        let runtime = Runtime::new(config)?;
        Ok(Arc::new(PluginHost {
            slots: Arc::new(Semaphore::new(runtime.max_instances() as usize)),
            runtime,
            builtins: Default::default(),
            user: Default::default(),
            clock: AtomicU64::new(0),
        }))
    }

    /// The runtime.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// A built-in plugin, compiled (or loaded from the cache) on first use.
    pub fn builtin(&self, which: Builtin) -> Result<Plugin, PluginError> {
        self.builtins[which as usize]
            .get_or_init(|| {
                self.runtime
                    .load(which.name(), which.world(), which.component())
            })
            .clone()
    }

    /// Loads every built-in now, so the first ExternalSecret does not wait for compilation.
    pub fn preload(&self) {
        for b in Builtin::ALL {
            if let Err(e) = self.builtin(b) {
                tracing::error!(error = %e, "could not load a built-in plugin");
            }
        }
    }

    /// A user plugin whose bytes were already checked against `sha256`: compiled (off the
    /// async reactor) the first time this name, world and digest are seen. Callers that ask
    /// while it compiles wait for that one compilation; a failure is shared with them, not
    /// kept, so the next use tries again.
    pub async fn user_plugin(
        self: &Arc<Self>,
        name: &str,
        world: World,
        sha256: &str,
        bytes: Vec<u8>,
    ) -> Result<Plugin, PluginError> {
        let key = UserKey {
            name: name.to_string(),
            world,
            sha256: sha256.to_string(),
        };
        let compiled = self.user_entry(&key);
        let result = compiled
            .get_or_init(|| async {
                let runtime = self.runtime.clone();
                let label = name.to_string();
                tokio::task::spawn_blocking(move || runtime.load(&label, world, &bytes))
                    .await
                    .unwrap_or_else(|e| {
                        Err(PluginError::new(
                            name,
                            PluginFailure::Host {
                                reason: format!("the compiler thread failed: {e}"),
                            },
                        ))
                    })
            })
            .await
            .clone();
        if result.is_err() {
            let mut user = self.user.lock().unwrap_or_else(|e| e.into_inner());
            if user
                .get(&key)
                .is_some_and(|e| Arc::ptr_eq(&e.compiled, &compiled))
            {
                user.remove(&key);
            }
        }
        result
    }

    /// The compilation for `key`: the existing one, or a new (empty) one that replaces older
    /// digests of the same plugin and, past [`MAX_USER_PLUGINS`], the least recently used.
    fn user_entry(&self, key: &UserKey) -> Compiled {
        let now = self.clock.fetch_add(1, Ordering::Relaxed);
        let mut user = self.user.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = user.get_mut(key) {
            entry.last_used = now;
            return entry.compiled.clone();
        }
        // Older digests of the same plugin are no longer reachable.
        user.retain(|k, _| !(k.name == key.name && k.world == key.world));
        while user.len() >= MAX_USER_PLUGINS {
            let Some(oldest) = user
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            user.remove(&oldest);
        }
        let compiled = Compiled::default();
        user.insert(
            key.clone(),
            UserEntry {
                compiled: compiled.clone(),
                last_used: now,
            },
        );
        compiled
    }

    /// Drops every compiled digest of the user plugin `name`: the controller calls it when the
    /// plugin object is deleted or pinned to another component. A call already holding the
    /// plugin finishes with it; the next use compiles again (or reads the compiled cache).
    pub fn forget_user_plugin(&self, name: &str) {
        self.user
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| k.name != name);
    }

    /// The digests of the user plugin `name` kept compiled (or compiling), sorted.
    pub fn user_plugin_digests(&self, name: &str) -> Vec<String> {
        let mut digests: Vec<String> = self
            .user
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .filter(|k| k.name == name)
            .map(|k| k.sha256.clone())
            .collect();
        digests.sort();
        digests
    }

    /// How many user plugins are kept compiled (or compiling).
    pub fn user_plugins(&self) -> usize {
        self.user.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Runs `call` off the async reactor (plugin calls are CPU-bound and synchronous) once an
    /// instance slot is free, and reports it to `observer`.
    async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        plugin: &Plugin,
        observer: &(impl CallObserver + ?Sized),
        call: impl FnOnce(&Runtime) -> Result<T, PluginError> + Send + 'static,
    ) -> Result<T, PluginError> {
        let waiting = Instant::now();
        // The permit moves into the blocking task: the slot is free again when the instance
        // is gone, even if this future is dropped before.
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("the slot semaphore is never closed");
        let queued = waiting.elapsed();
        let host = self.clone();
        let span = tracing::Span::current();
        let started = Instant::now();
        let result = tokio::task::spawn_blocking(move || {
            let _slot = permit;
            span.in_scope(|| call(&host.runtime))
        })
        .await
        .unwrap_or_else(|e| {
            Err(PluginError::new(
                plugin.name(),
                PluginFailure::Host {
                    reason: format!("the plugin thread failed: {e}"),
                },
            ))
        });
        observer.observe(&CallStats {
            plugin: plugin.name(),
            world: plugin.world(),
            outcome: result
                .as_ref()
                .err()
                .map_or(OK_OUTCOME, PluginError::metric_label),
            queued,
            elapsed: started.elapsed(),
        });
        result
    }

    /// Runs a generator.
    pub async fn generate(
        self: &Arc<Self>,
        plugin: Plugin,
        config: String,
        observer: &(impl CallObserver + ?Sized),
    ) -> Result<Generated, PluginError> {
        let p = plugin.clone();
        self.run(&plugin, observer, move |rt| rt.generate(&p, &config, None))
            .await
    }

    /// Runs a transformer.
    pub async fn transform(
        self: &Arc<Self>,
        plugin: Plugin,
        data: SecretMap,
        config: String,
        observer: &(impl CallObserver + ?Sized),
    ) -> Result<SecretMap, PluginError> {
        let p = plugin.clone();
        self.run(&plugin, observer, move |rt| {
            rt.transform(&p, &data, &config)
        })
        .await
    }

    /// Renders templates.
    pub async fn render(
        self: &Arc<Self>,
        plugin: Plugin,
        templates: Vec<TemplateRequest>,
        context: SecretMap,
        options: String,
        observer: &(impl CallObserver + ?Sized),
    ) -> Result<Vec<(String, TemplateOutput)>, PluginError> {
        let p = plugin.clone();
        self.run(&plugin, observer, move |rt| {
            rt.render(&p, &templates, &context, &options)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> UserKey {
        UserKey {
            name: format!("p{i}"),
            world: World::Transformer,
            sha256: "d".into(),
        }
    }

    #[test]
    fn user_plugins_are_bounded_least_recently_used_first() {
        let host = PluginHost::new(HostConfig {
            max_instances: 1,
            ..Default::default()
        })
        .unwrap();
        for i in 0..MAX_USER_PLUGINS {
            host.user_entry(&key(i));
        }
        // p0 is used again, so p1 is the oldest when p{MAX} arrives.
        let p0 = host.user_entry(&key(0));
        host.user_entry(&key(MAX_USER_PLUGINS));
        let user = host.user.lock().unwrap();
        assert_eq!(user.len(), MAX_USER_PLUGINS);
        assert!(Arc::ptr_eq(&user[&key(0)].compiled, &p0));
        assert!(!user.contains_key(&key(1)));
        assert!(user.contains_key(&key(MAX_USER_PLUGINS)));
    }
}
