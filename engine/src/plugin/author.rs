//! Plugin authoring: `esox plugin new` scaffolds a plugin crate on the SDK, `esox plugin build`
//! builds it for `wasm32-wasip2` and prints the digest a `WasmPlugin` pins, `esox plugin test`
//! runs a component on local input under the controller's limits.
//!
//! The scaffold is a standalone crate (its own `[workspace]`), so it builds wherever it is
//! created, inside this repository or not; it depends on the SDK by path.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::{Limits, Runtime, TemplateRequest, World as Kind};
use crate::secret::{SecretBytes, SecretMap};

/// What went wrong while authoring (messages name files and commands).
#[derive(Debug, thiserror::Error)]
pub enum AuthorError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The target directory exists and is not empty.
    #[error("{0} already exists and is not empty; choose another directory")]
    Exists(PathBuf),
    /// The plugin name is not usable as a crate name.
    #[error(
        "invalid plugin name {0:?}: use lowercase letters, digits and dashes, starting with a letter"
    )]
    Name(String),
    /// `cargo` failed or could not be run.
    #[error("{0}")]
    Cargo(String),
    /// The component could not be loaded or run.
    #[error(transparent)]
    Plugin(#[from] super::PluginError),
    /// The input file is not what `esox plugin test` reads.
    #[error("input: {0}")]
    Input(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AuthorError + '_ {
    move |source| AuthorError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The SDK this binary was built with, for scaffolds made from a checkout.
pub fn default_sdk_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk")
}

/// Creates a plugin crate `name` of `kind` in `dir`.
pub fn scaffold(
    dir: &Path,
    name: &str,
    kind: Kind,
    sdk: &Path,
) -> Result<Vec<PathBuf>, AuthorError> {
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(AuthorError::Name(name.to_string()));
    }
    if dir.exists() && std::fs::read_dir(dir).map_err(io(dir))?.next().is_some() {
        return Err(AuthorError::Exists(dir.to_path_buf()));
    }
    let sdk = std::fs::canonicalize(sdk).map_err(io(sdk))?;
    std::fs::create_dir_all(dir.join("src")).map_err(io(dir))?;
    let files = [
        (
            "Cargo.toml",
            format!(
                "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n\
                 [lib]\ncrate-type = [\"cdylib\", \"rlib\"]\n\n\
                 [dependencies]\nesox-plugin-sdk = {{ path = {sdk:?} }}\nserde_json = \"1\"\n{extra}\n\
                 # A standalone crate: builds wherever it is.\n[workspace]\n\n\
                 [profile.release]\nopt-level = \"s\"\nstrip = true\nlto = true\n",
                extra = if kind == Kind::Generator {
                    "getrandom = \"0.3\"\n"
                } else {
                    ""
                }
            ),
        ),
        ("src/lib.rs", source(kind)),
        ("README.md", readme(name, kind)),
        (".gitignore", "/target\n".to_string()),
    ];
    let mut written = Vec::new();
    for (rel, text) in files {
        let path = dir.join(rel);
        std::fs::write(&path, text).map_err(io(&path))?;
        written.push(path);
    }
    Ok(written)
}

fn source(kind: Kind) -> String {
    match kind {
        Kind::Transformer => r##"//! A transformer: secret data in, secret data out.
//!
//! Config (JSON, from the ExternalSecret's `template.plugins[].config`):
//! `{"prefix": "APP_"}` adds a prefix to every key.

use esox_plugin_sdk::transformer::{Entry, Guest, PluginError, error};

/// The transformation, callable natively in tests.
pub fn transform(input: Vec<Entry>, config: &str) -> Result<Vec<Entry>, PluginError> {
    let config: serde_json::Value = serde_json::from_str(if config.trim().is_empty() { "{}" } else { config })
        .map_err(|e| error(format!("config is not JSON: {e}")))?;
    let prefix = config["prefix"].as_str().unwrap_or("");
    Ok(input
        .into_iter()
        .map(|e| Entry { key: format!("{prefix}{}", e.key), value: e.value })
        .collect())
}

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Plugin;

impl Guest for Plugin {
    fn transform(input: Vec<Entry>, config: String) -> Result<Vec<Entry>, PluginError> {
        transform(input, &config)
    }
}

#[cfg(target_arch = "wasm32")]
esox_plugin_sdk::transformer::export_transformer!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_keys() {
        let out = transform(vec![esox_plugin_sdk::transformer::entry("a", b"1")], r#"{"prefix": "X_"}"#).unwrap();
        assert_eq!(out[0].key, "X_a");
    }
}
"##
        .to_string(),
        Kind::Generator => r##"//! A generator: JSON config in, fresh secret data out (randomness from the host).
//!
//! Config (JSON, the WasmPlugin's `spec.config`): `{"length": 16}`.

use esox_plugin_sdk::generator::{Generated, Guest, PluginError, entry, error};

/// The generation, callable natively in tests.
pub fn generate(config: &str) -> Result<Generated, PluginError> {
    let config: serde_json::Value = serde_json::from_str(if config.trim().is_empty() { "{}" } else { config })
        .map_err(|e| error(format!("config is not JSON: {e}")))?;
    let length = config["length"].as_u64().unwrap_or(16) as usize;
    if length == 0 || length > 4096 {
        return Err(error("length must be between 1 and 4096"));
    }
    let mut bytes = vec![0u8; length];
    getrandom(&mut bytes)?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(Generated { data: vec![entry("token", token.as_bytes())], state: None })
}

/// WASI random: the host's CSPRNG, the only randomness a plugin has.
fn getrandom(buf: &mut [u8]) -> Result<(), PluginError> {
    getrandom::fill(buf).map_err(|e| error(format!("no randomness from the host: {e}")))
}

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Plugin;

impl Guest for Plugin {
    fn generate(config: String, _state: Option<Vec<u8>>) -> Result<Generated, PluginError> {
        generate(&config)
    }
}

#[cfg(target_arch = "wasm32")]
esox_plugin_sdk::generator::export_generator!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_has_the_length() {
        let g = generate(r#"{"length": 8}"#).unwrap();
        assert_eq!(g.data[0].value.len(), 16);
    }
}
"##
        .to_string(),
        Kind::Template => r##"//! A template engine: named templates over secret data.
//!
//! This one replaces `${key}` with the key's value.

use esox_plugin_sdk::template::{Entry, Guest, PluginError, Rendered, Scope, Template};

/// Renders one template (callable natively in tests).
pub fn render_one(text: &str, context: &[Entry]) -> Result<String, String> {
    let mut out = text.to_string();
    for e in context {
        let value = std::str::from_utf8(&e.value).map_err(|_| format!("{} is not text", e.key))?;
        out = out.replace(&format!("${{{}}}", e.key), value);
    }
    Ok(out)
}

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Plugin;

impl Guest for Plugin {
    fn render(templates: Vec<Template>, context: Vec<Entry>, _options: String) -> Vec<Rendered> {
        templates
            .into_iter()
            .map(|t| Rendered {
                output: match t.scope {
                    Scope::Values => render_one(&t.text, &context)
                        .map(|v| vec![Entry { key: t.name.clone(), value: v.into_bytes() }])
                        .map_err(|m| PluginError { message: m, key: Some(t.name.clone()) }),
                    Scope::KeysAndValues => Err(PluginError {
                        message: "KeysAndValues is not supported by this engine".into(),
                        key: Some(t.name.clone()),
                    }),
                },
                name: t.name,
            })
            .collect()
    }
}

#[cfg(target_arch = "wasm32")]
esox_plugin_sdk::template::export_template_engine!(Plugin);
"##
        .to_string(),
    }
}

fn readme(name: &str, kind: Kind) -> String {
    let world = match kind {
        Kind::Transformer => "Transformer",
        Kind::Generator => "Generator",
        Kind::Template => "Template",
    };
    format!(
        "# {name}\n\nAn esox {world} plugin.\n\n```sh\ncargo test                      # the logic, natively\nesox plugin build .             # the component, and its sha256\nesox plugin test target/wasm32-wasip2/release/{crate_}.wasm --kind {kind} --data key=value --config '{{}}'\n```\n\nShip it: put the `.wasm` in a ConfigMap (`kubectl create configmap {name} --from-file=plugin.wasm=target/wasm32-wasip2/release/{crate_}.wasm`)\nand declare a `WasmPlugin` (`plugins.esox.dev/v1alpha1`) with `world: {world}`, `source.configMap`\nand the `sha256` that `esox plugin build` printed.\n",
        crate_ = name.replace('-', "_"),
        kind = match kind {
            Kind::Transformer => "transformer",
            Kind::Generator => "generator",
            Kind::Template => "template",
        }
    )
}

/// The most one ConfigMap part holds. The apiserver refuses a ConfigMap over 1 MiB (data and
/// binaryData together), so a part leaves room for its key and metadata.
pub const PART_BYTES: usize = 1_000_000;

/// How to ship a component: as a namespaced `WasmPlugin` or a `ClusterWasmPlugin`.
#[derive(Debug, Clone)]
pub struct PackOptions<'a> {
    /// The plugin's name (also the ConfigMaps' name, or their prefix).
    pub name: &'a str,
    /// The ConfigMaps' namespace: required for a ClusterWasmPlugin; for a WasmPlugin, unset
    /// means "wherever it is applied" (`kubectl -n`).
    pub namespace: Option<&'a str>,
    /// A ClusterWasmPlugin rather than a WasmPlugin.
    pub cluster: bool,
    /// The world the component implements.
    pub world: crate::api::plugins::PluginWorld,
    /// A generator's default configuration (JSON).
    pub config: Option<serde_json::Value>,
}

/// What [`pack`] made.
#[derive(Debug)]
pub struct Packed {
    /// The component's sha256 (what the plugin object pins).
    pub sha256: String,
    /// Its size, and compressed.
    pub size: usize,
    /// The gzip-compressed size.
    pub compressed: usize,
    /// How many ConfigMaps hold it.
    pub parts: usize,
    /// The ConfigMaps and the plugin object, as a multi-document YAML stream.
    pub yaml: String,
}

/// Packs a component for the cluster: gzip-compressed, split into ConfigMaps of at most
/// [`PART_BYTES`], and the plugin object pinning the component's sha256.
pub fn pack(wasm: &[u8], opts: &PackOptions<'_>) -> Result<Packed, AuthorError> {
    use std::io::Write as _;
    if opts.cluster && opts.namespace.is_none() {
        return Err(AuthorError::Input(
            "a ClusterWasmPlugin needs --namespace: where its ConfigMaps live".into(),
        ));
    }
    if !wasm.starts_with(b"\0asm") {
        return Err(AuthorError::Input(
            "not a WebAssembly component (no \\0asm header)".into(),
        ));
    }
    let sha256 = hex::encode(Sha256::digest(wasm));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let compressed = gz
        .write_all(wasm)
        .and_then(|_| gz.finish())
        .map_err(|e| AuthorError::Input(format!("gzip: {e}")))?;
    let chunks: Vec<&[u8]> = compressed.chunks(PART_BYTES).collect();
    let key = "plugin.wasm.gz";
    let part_name = |i: usize| {
        if chunks.len() == 1 {
            opts.name.to_string()
        } else {
            format!("{}-{i}", opts.name)
        }
    };
    let mut docs = Vec::new();
    let mut refs = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        use base64::Engine as _;
        let mut metadata = serde_json::json!({
            "name": part_name(i),
            "labels": {"plugins.esox.dev/plugin": opts.name},
        });
        let mut r = serde_json::json!({"name": part_name(i), "key": key});
        if let Some(ns) = opts.namespace {
            metadata["namespace"] = ns.into();
            r["namespace"] = ns.into();
        }
        docs.push(serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata,
            "binaryData": {key: base64::engine::general_purpose::STANDARD.encode(chunk)},
        }));
        refs.push(r);
    }
    let source = if refs.len() == 1 {
        serde_json::json!({"configMap": refs[0]})
    } else {
        serde_json::json!({"configMaps": refs})
    };
    let mut spec = serde_json::json!({
        "world": opts.world,
        "source": source,
        "sha256": sha256,
    });
    if let Some(c) = &opts.config {
        spec["config"] = c.clone();
    }
    let mut metadata = serde_json::json!({"name": opts.name});
    if let (Some(ns), false) = (opts.namespace, opts.cluster) {
        metadata["namespace"] = ns.into();
    }
    docs.push(serde_json::json!({
        "apiVersion": "plugins.esox.dev/v1alpha1",
        "kind": if opts.cluster { "ClusterWasmPlugin" } else { "WasmPlugin" },
        "metadata": metadata,
        "spec": spec,
    }));
    let yaml = docs
        .iter()
        .map(|d| serde_yaml::to_string(d).expect("JSON values serialize as YAML"))
        .collect::<Vec<_>>()
        .join("---\n");
    Ok(Packed {
        sha256,
        size: wasm.len(),
        compressed: compressed.len(),
        parts: chunks.len(),
        yaml,
    })
}

/// A built component.
#[derive(Debug)]
pub struct Built {
    /// The `.wasm` file.
    pub path: PathBuf,
    /// Its sha256, lowercase hex (what a `WasmPlugin` pins).
    pub sha256: String,
    /// Its size in bytes.
    pub size: usize,
}

/// Builds the plugin crate in `dir` for `wasm32-wasip2` (release).
pub fn build(dir: &Path, target_dir: Option<&Path>) -> Result<Built, AuthorError> {
    let manifest = dir.join("Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let meta = Command::new(&cargo)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--manifest-path",
        ])
        .arg(&manifest)
        .output()
        .map_err(|e| AuthorError::Cargo(format!("could not run {cargo}: {e}")))?;
    if !meta.status.success() {
        return Err(AuthorError::Cargo(format!(
            "cargo metadata failed for {}: {}",
            manifest.display(),
            String::from_utf8_lossy(&meta.stderr).trim()
        )));
    }
    let meta: serde_json::Value = serde_json::from_slice(&meta.stdout)
        .map_err(|e| AuthorError::Cargo(format!("cargo metadata printed no JSON: {e}")))?;
    let canonical = std::fs::canonicalize(&manifest).map_err(io(&manifest))?;
    let package = meta["packages"]
        .as_array()
        .and_then(|ps| {
            ps.iter().find(|p| {
                p["manifest_path"]
                    .as_str()
                    .is_some_and(|m| Path::new(m) == canonical)
            })
        })
        .ok_or_else(|| AuthorError::Cargo(format!("no package in {}", manifest.display())))?;
    let name = package["name"].as_str().unwrap_or_default().to_string();
    let target = match target_dir {
        Some(t) => t.to_path_buf(),
        None => PathBuf::from(meta["target_directory"].as_str().unwrap_or("target")),
    };
    let mut cmd = Command::new(&cargo);
    cmd.args([
        "build",
        "--release",
        "--target",
        "wasm32-wasip2",
        "-p",
        &name,
        "--manifest-path",
    ])
    .arg(&manifest)
    .arg("--target-dir")
    .arg(&target);
    // Host build settings must not leak into the Wasm build.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "RUSTC_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .map_err(|e| AuthorError::Cargo(format!("could not run {cargo}: {e}")))?;
    if !status.success() {
        return Err(AuthorError::Cargo(format!(
            "cargo build --target wasm32-wasip2 failed for {name} (is the target installed? `rustup target add wasm32-wasip2`)"
        )));
    }
    let path = target
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    let bytes = std::fs::read(&path).map_err(io(&path))?;
    Ok(Built {
        sha256: hex::encode(Sha256::digest(&bytes)),
        size: bytes.len(),
        path,
    })
}

/// Reads `esox plugin test` input: a JSON object of key → string (or `{"base64": "…"}`).
pub fn read_input(json: &str) -> Result<SecretMap, AuthorError> {
    use base64::Engine as _;
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| AuthorError::Input(format!("not JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| AuthorError::Input("expected a JSON object of key → value".into()))?;
    let mut out = SecretMap::new();
    for (k, v) in obj {
        let bytes = match v {
            serde_json::Value::String(s) => s.as_bytes().to_vec(),
            serde_json::Value::Object(o) if o.contains_key("base64") => {
                base64::engine::general_purpose::STANDARD
                    .decode(o["base64"].as_str().unwrap_or_default())
                    .map_err(|_| AuthorError::Input(format!("{k}: invalid base64")))?
            }
            other => other.to_string().into_bytes(),
        };
        out.insert(k.clone(), SecretBytes::new(bytes));
    }
    Ok(out)
}

/// Output as JSON: text values as strings, binary ones as `{"base64": …}`.
pub fn output_json(data: &SecretMap) -> String {
    use base64::Engine as _;
    let m: serde_json::Map<String, serde_json::Value> = data
        .iter()
        .map(|(k, v)| {
            let value = match std::str::from_utf8(v.expose()) {
                Ok(s) => serde_json::Value::String(s.to_string()),
                Err(_) => serde_json::json!({
                    "base64": base64::engine::general_purpose::STANDARD.encode(v.expose())
                }),
            };
            (k.clone(), value)
        })
        .collect();
    serde_json::to_string_pretty(&m).expect("a JSON map serializes")
}

/// Runs the component at `wasm` of `kind` once, under `limits`, as the controller would.
pub fn run(
    wasm: &[u8],
    kind: Kind,
    limits: Limits,
    input: &SecretMap,
    config: &str,
) -> Result<SecretMap, AuthorError> {
    run_on(&*Runtime::new(limits)?, wasm, kind, input, config)
}

/// [`run`] on an existing runtime (whose limits and compiled-component cache apply).
pub fn run_on(
    rt: &Runtime,
    wasm: &[u8],
    kind: Kind,
    input: &SecretMap,
    config: &str,
) -> Result<SecretMap, AuthorError> {
    let plugin = rt.load("local", kind, wasm)?;
    Ok(match kind {
        Kind::Transformer => rt.transform(&plugin, input, config)?,
        Kind::Generator => rt.generate(&plugin, config, None)?.data,
        Kind::Template => {
            // Each input key named `template:NAME` is a template; the rest is its data.
            let (templates, context): (SecretMap, SecretMap) = input
                .clone()
                .into_iter()
                .partition(|(k, _)| k.starts_with("template:"));
            let reqs: Vec<TemplateRequest> = templates
                .iter()
                .map(|(k, v)| TemplateRequest {
                    name: k.trim_start_matches("template:").to_string(),
                    text: String::from_utf8_lossy(v.expose()).into_owned(),
                    keys_and_values: false,
                })
                .collect();
            let mut out = SecretMap::new();
            for (_, result) in rt.render(&plugin, &reqs, &context, config)? {
                out.extend(result?);
            }
            out
        }
    })
}
