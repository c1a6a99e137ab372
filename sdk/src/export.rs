//! One macro per world: each turns a plain function into the plugin. It expands to a unit
//! struct `Plugin`, the world's `Guest` impl forwarding to the function, and, in the wasm32
//! build only, the component's exports (host builds — unit tests, clippy — link the crate as
//! an ordinary library). Invoke it once per crate, at a level where no other item is named
//! `Plugin`.

/// Exports `f: fn(Vec<Entry>, &str) -> Result<Vec<Entry>, PluginError>` as a
/// `transformer-plugin`: the fetched data and the plugin's JSON config in, the data out.
///
/// ```
/// use esox_plugin_sdk::transformer::{Entry, Guest, PluginError};
///
/// fn upper(input: Vec<Entry>, _config: &str) -> Result<Vec<Entry>, PluginError> {
///     Ok(input.into_iter().map(|e| Entry { key: e.key.to_uppercase(), value: e.value }).collect())
/// }
///
/// esox_plugin_sdk::transformer!(upper);
///
/// # fn main() {
/// // What the host calls, natively.
/// let out = Plugin::transform(vec![esox_plugin_sdk::transformer::entry("a", b"1")], "{}".into());
/// assert_eq!(out.unwrap()[0].key, "A");
/// # }
/// ```
#[macro_export]
macro_rules! transformer {
    ($f:expr) => {
        /// The plugin: the `transformer-plugin` world's `Guest`, forwarding to the function.
        #[allow(dead_code)]
        struct Plugin;

        impl Plugin {
            /// The function, checked against the world's signature.
            const F: fn(
                ::std::vec::Vec<$crate::transformer::Entry>,
                &str,
            ) -> ::std::result::Result<
                ::std::vec::Vec<$crate::transformer::Entry>,
                $crate::transformer::PluginError,
            > = $f;
        }

        // Used in host builds too, where nothing calls the `Guest` impl.
        const _: () = {
            let _ = Plugin::F;
        };

        impl $crate::transformer::Guest for Plugin {
            fn transform(
                input: ::std::vec::Vec<$crate::transformer::Entry>,
                config: ::std::string::String,
            ) -> ::std::result::Result<
                ::std::vec::Vec<$crate::transformer::Entry>,
                $crate::transformer::PluginError,
            > {
                (Plugin::F)(input, &config)
            }
        }

        #[cfg(target_arch = "wasm32")]
        $crate::transformer::export_transformer!(Plugin with_types_in $crate::transformer);
    };
}

/// Exports `f: fn(&str) -> Result<Generated, PluginError>` as a `generator-plugin`: the
/// generator's spec as JSON in, the data out. The contract's `state` argument is reserved
/// (the host passes `none`), so the function does not take it; return `state: None`.
///
/// ```
/// use esox_plugin_sdk::generator::{Generated, Guest, PluginError, entry};
///
/// fn fixed(_config: &str) -> Result<Generated, PluginError> {
///     Ok(Generated { data: vec![entry("value", b"42")], state: None })
/// }
///
/// esox_plugin_sdk::generator!(fixed);
///
/// # fn main() {
/// assert_eq!(Plugin::generate("{}".into(), None).unwrap().data[0].value, b"42");
/// # }
/// ```
#[macro_export]
macro_rules! generator {
    ($f:expr) => {
        /// The plugin: the `generator-plugin` world's `Guest`, forwarding to the function.
        #[allow(dead_code)]
        struct Plugin;

        impl Plugin {
            /// The function, checked against the world's signature.
            const F: fn(
                &str,
            ) -> ::std::result::Result<
                $crate::generator::Generated,
                $crate::generator::PluginError,
            > = $f;
        }

        // Used in host builds too, where nothing calls the `Guest` impl.
        const _: () = {
            let _ = Plugin::F;
        };

        impl $crate::generator::Guest for Plugin {
            fn generate(
                config: ::std::string::String,
                _state: ::std::option::Option<::std::vec::Vec<u8>>,
            ) -> ::std::result::Result<$crate::generator::Generated, $crate::generator::PluginError>
            {
                (Plugin::F)(&config)
            }
        }

        #[cfg(target_arch = "wasm32")]
        $crate::generator::export_generator!(Plugin with_types_in $crate::generator);
    };
}

/// Exports `f: fn(Vec<Template>, Vec<Entry>, &str) -> Vec<Rendered>` as a
/// `template-plugin`: the templates, the data they read and the engine's JSON options in, one
/// result per template out (a failing template fails alone).
///
/// ```
/// use esox_plugin_sdk::template::{Entry, Guest, Rendered, Scope, Template};
///
/// fn echo(templates: Vec<Template>, _context: Vec<Entry>, _options: &str) -> Vec<Rendered> {
///     templates
///         .into_iter()
///         .map(|t| Rendered {
///             output: Ok(vec![Entry { key: t.name.clone(), value: t.text.into_bytes() }]),
///             name: t.name,
///         })
///         .collect()
/// }
///
/// esox_plugin_sdk::template!(echo);
///
/// # fn main() {
/// let t = Template { name: "k".into(), text: "v".into(), scope: Scope::Values };
/// let out = Plugin::render(vec![t], vec![], String::new());
/// assert_eq!(out[0].output.as_ref().unwrap()[0].value, b"v");
/// # }
/// ```
#[macro_export]
macro_rules! template {
    ($f:expr) => {
        /// The plugin: the `template-plugin` world's `Guest`, forwarding to the function.
        #[allow(dead_code)]
        struct Plugin;

        impl Plugin {
            /// The function, checked against the world's signature.
            const F: fn(
                ::std::vec::Vec<$crate::template::Template>,
                ::std::vec::Vec<$crate::template::Entry>,
                &str,
            ) -> ::std::vec::Vec<$crate::template::Rendered> = $f;
        }

        // Used in host builds too, where nothing calls the `Guest` impl.
        const _: () = {
            let _ = Plugin::F;
        };

        impl $crate::template::Guest for Plugin {
            fn render(
                templates: ::std::vec::Vec<$crate::template::Template>,
                context: ::std::vec::Vec<$crate::template::Entry>,
                options: ::std::string::String,
            ) -> ::std::vec::Vec<$crate::template::Rendered> {
                (Plugin::F)(templates, context, &options)
            }
        }

        #[cfg(target_arch = "wasm32")]
        $crate::template::export_template_engine!(Plugin with_types_in $crate::template);
    };
}
