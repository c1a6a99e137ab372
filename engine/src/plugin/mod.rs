//! The WebAssembly plugin host, re-exported from its own crate (`esox-wasm`, in `wasm/`) under
//! the paths the engine uses (`esox::plugin::…`); plugin authoring is [`crate::cli::plugin`].
//!
//! The host knows no Kubernetes and no provider; the one thing it needs from the controller,
//! somewhere to count calls, crosses the seam as [`CallObserver`], implemented here for the
//! controller's [`Metrics`](crate::metrics::Metrics).

pub use esox_wasm::*;

impl CallObserver for crate::metrics::Metrics {
    fn observe(&self, call: &CallStats<'_>) {
        self.plugin_calls
            .get_or_create(&crate::metrics::PluginCallLabels {
                plugin: call.plugin.to_string(),
                outcome: call.outcome.to_string(),
            })
            .inc();
        self.plugin_duration
            .get_or_create(&crate::metrics::PluginLabels {
                plugin: call.plugin.to_string(),
            })
            .observe(call.elapsed.as_secs_f64());
    }
}

#[cfg(test)]
mod tests;
