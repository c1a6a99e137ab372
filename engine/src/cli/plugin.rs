//! Plugin authoring: `esox plugin new` scaffolds a plugin crate on the SDK, `esox plugin build`
//! builds it for `wasm32-wasip2` and prints the digest a `WasmPlugin` pins, `esox plugin test`
//! runs a component on local input under the controller's limits, `esox plugin pack` prints
//! the objects that ship it.
//!
//! # Where a scaffold's SDK comes from
//!
//! A plugin author needs the esox binary and cargo, not the esox source tree. The binary
//! embeds the whole `esox-plugin-sdk` package (`sdk/`: its manifest, sources and its copy of
//! the WIT contract; a test checks the list against the package), and `esox plugin new`
//! writes it into the new crate at [`VENDORED_SDK`]. The crate depends on it by version
//! requirement and path, so it builds offline from crates.io's point of view, in CI, on a
//! teammate's machine, with nothing but what is committed. `--sdk PATH` depends on another
//! copy instead (a checkout's `sdk/`); once the SDK is published, deleting the `path` key
//! (and `vendor/`) moves the crate to crates.io with the same requirement.
//!
//! # Where a scaffold's sources come from
//!
//! The scaffolds are real crates in `sdk/templates/{transformer,generator,template}/`, members
//! of the esox workspace, so CI builds, lints and unit-tests them. They are embedded here and
//! renamed: `esox-scaffold-KIND` becomes the plugin's name (`esox_scaffold_KIND` its crate
//! name), the SDK's `path = "../.."` the vendored copy, and the manifest gains `[workspace]`
//! (a standalone crate builds wherever it is created) and a size-optimised release profile.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::plugin::{Limits, Runtime, TemplateRequest, World as Kind};
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
        "invalid plugin name {0:?}: use lowercase letters, digits and dashes, starting with a letter, other than esox-plugin-sdk"
    )]
    Name(String),
    /// `cargo` failed or could not be run.
    #[error("{0}")]
    Cargo(String),
    /// The component could not be loaded or run.
    #[error(transparent)]
    Plugin(#[from] crate::plugin::PluginError),
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

/// Where `esox plugin new` writes the embedded SDK, inside the new crate.
pub const VENDORED_SDK: &str = "vendor/esox-plugin-sdk";

/// The `esox-plugin-sdk` package this binary embeds, file by file (relative path, text):
/// every file `cargo package -p esox-plugin-sdk` ships.
pub const SDK_FILES: Files = &[
    ("Cargo.toml", include_str!("../../../sdk/Cargo.toml")),
    ("README.md", include_str!("../../../sdk/README.md")),
    ("src/lib.rs", include_str!("../../../sdk/src/lib.rs")),
    ("src/export.rs", include_str!("../../../sdk/src/export.rs")),
    (
        "wit/plugin.wit",
        include_str!("../../../sdk/wit/plugin.wit"),
    ),
];

/// Files by relative path: (path, text).
type Files = &'static [(&'static str, &'static str)];

/// The scaffold of `kind` (its directory name and files), as `sdk/templates/KIND/` holds it.
fn template(kind: Kind) -> (&'static str, Files) {
    match kind {
        Kind::Transformer => (
            "transformer",
            &[
                (
                    "Cargo.toml",
                    include_str!("../../../sdk/templates/transformer/Cargo.toml"),
                ),
                (
                    "src/lib.rs",
                    include_str!("../../../sdk/templates/transformer/src/lib.rs"),
                ),
                (
                    "README.md",
                    include_str!("../../../sdk/templates/transformer/README.md"),
                ),
            ],
        ),
        Kind::Generator => (
            "generator",
            &[
                (
                    "Cargo.toml",
                    include_str!("../../../sdk/templates/generator/Cargo.toml"),
                ),
                (
                    "src/lib.rs",
                    include_str!("../../../sdk/templates/generator/src/lib.rs"),
                ),
                (
                    "README.md",
                    include_str!("../../../sdk/templates/generator/README.md"),
                ),
            ],
        ),
        Kind::Template => (
            "template",
            &[
                (
                    "Cargo.toml",
                    include_str!("../../../sdk/templates/template/Cargo.toml"),
                ),
                (
                    "src/lib.rs",
                    include_str!("../../../sdk/templates/template/src/lib.rs"),
                ),
                (
                    "README.md",
                    include_str!("../../../sdk/templates/template/README.md"),
                ),
            ],
        ),
    }
}

/// The template's dependency on the SDK (its workspace path), which a scaffold replaces.
const TEMPLATE_SDK_PATH: &str = r#"path = "../..""#;

/// What a scaffold's manifest gains over the template's.
const STANDALONE: &str = "
# A standalone crate: it builds wherever it is.
[workspace]

[profile.release]
opt-level = \"s\"
strip = true
lto = true
";

/// The scaffold of `kind` for the plugin `name`, depending on the SDK at `sdk_path` (as
/// written into the manifest): (relative path, text) per file.
pub fn scaffold_files(name: &str, kind: Kind, sdk_path: &str) -> Vec<(&'static str, String)> {
    let (slug, files) = template(kind);
    let placeholder = format!("esox-scaffold-{slug}");
    let crate_placeholder = placeholder.replace('-', "_");
    let mut out: Vec<(&'static str, String)> = files
        .iter()
        .map(|(rel, text)| {
            let mut text = text
                .replace(&placeholder, name)
                .replace(&crate_placeholder, &name.replace('-', "_"));
            if *rel == "Cargo.toml" {
                text = text.replacen(TEMPLATE_SDK_PATH, &format!("path = {sdk_path:?}"), 1);
                text.push_str(STANDALONE);
            }
            (*rel, text)
        })
        .collect();
    out.push((".gitignore", "/target\n".to_string()));
    out
}

/// Creates a plugin crate `name` of `kind` in `dir`, on the SDK at `sdk` or, when `None`, on
/// a copy of the SDK this binary embeds, written to `dir/`[`VENDORED_SDK`]. Returns the files
/// written.
pub fn scaffold(
    dir: &Path,
    name: &str,
    kind: Kind,
    sdk: Option<&Path>,
) -> Result<Vec<PathBuf>, AuthorError> {
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name != "esox-plugin-sdk";
    if !valid {
        return Err(AuthorError::Name(name.to_string()));
    }
    if dir.exists() && std::fs::read_dir(dir).map_err(io(dir))?.next().is_some() {
        return Err(AuthorError::Exists(dir.to_path_buf()));
    }
    let (sdk_path, vendored): (String, Files) = match sdk {
        Some(sdk) => {
            let sdk = std::fs::canonicalize(sdk).map_err(io(sdk))?;
            (sdk.to_string_lossy().into_owned(), &[])
        }
        None => (VENDORED_SDK.to_string(), SDK_FILES),
    };
    let files = scaffold_files(name, kind, &sdk_path)
        .into_iter()
        .map(|(rel, text)| (PathBuf::from(rel), text))
        .chain(
            vendored
                .iter()
                .map(|(rel, text)| (Path::new(VENDORED_SDK).join(rel), text.to_string())),
        );
    let mut written = Vec::new();
    for (rel, text) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, text).map_err(io(&path))?;
        written.push(path);
    }
    Ok(written)
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

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: [Kind; 3] = [Kind::Transformer, Kind::Generator, Kind::Template];

    fn sdk_dir() -> PathBuf {
        // Cargo's run-time CARGO_MANIFEST_DIR: a build reused from another checkout keeps
        // the path it was compiled in.
        std::env::var_os("CARGO_MANIFEST_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
            .join("../sdk")
    }

    /// Every file of the SDK package (`include` in sdk/Cargo.toml) is embedded, as it is.
    #[test]
    fn the_embedded_sdk_is_the_whole_package() {
        fn walk(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, ext, out);
                } else if p.extension().is_some_and(|x| x == ext) {
                    out.push(p);
                }
            }
        }
        let sdk = sdk_dir();
        let mut files = vec![sdk.join("Cargo.toml"), sdk.join("README.md")];
        walk(&sdk.join("src"), "rs", &mut files);
        walk(&sdk.join("wit"), "wit", &mut files);
        let mut on_disk: Vec<String> = files
            .iter()
            .map(|p| {
                p.strip_prefix(&sdk)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/")
            })
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = SDK_FILES.iter().map(|(r, _)| r.to_string()).collect();
        embedded.sort();
        assert_eq!(embedded, on_disk, "update SDK_FILES");
        for (rel, text) in SDK_FILES {
            assert_eq!(
                *text,
                std::fs::read_to_string(sdk.join(rel)).unwrap(),
                "{rel}"
            );
        }
        let manifest = SDK_FILES[0].1;
        assert!(
            manifest
                .contains(r#"include = ["Cargo.toml", "README.md", "src/**/*.rs", "wit/*.wit"]"#),
            "the package's include list changed: update SDK_FILES and this test"
        );
        // Written beside a plugin, the manifest has no workspace to inherit from.
        assert!(!manifest.contains("workspace = true"), "{manifest}");
    }

    /// The scaffolds require the version of the SDK that is embedded.
    #[test]
    fn scaffolds_require_the_embedded_sdk_version() {
        let version = SDK_FILES[0]
            .1
            .lines()
            .find_map(|l| l.strip_prefix("version = "))
            .expect("the SDK manifest has a version");
        for kind in KINDS {
            let (_, files) = template(kind);
            let manifest = files[0].1;
            let dep = manifest
                .lines()
                .find(|l| l.starts_with("esox-plugin-sdk = "))
                .expect("the template depends on the SDK");
            assert!(
                dep.contains(&format!("version = {version}")),
                "{dep} does not require {version}"
            );
            assert_eq!(manifest.matches(TEMPLATE_SDK_PATH).count(), 1, "{manifest}");
        }
    }

    #[test]
    fn scaffold_files_are_renamed_and_point_at_the_sdk() {
        for kind in KINDS {
            let files = scaffold_files("my-plugin", kind, VENDORED_SDK);
            let names: Vec<&str> = files.iter().map(|(r, _)| *r).collect();
            assert_eq!(
                names,
                ["Cargo.toml", "src/lib.rs", "README.md", ".gitignore"]
            );
            for (rel, text) in &files {
                assert!(!text.contains("scaffold-"), "{kind:?} {rel}: {text}");
                assert!(!text.contains("scaffold_"), "{kind:?} {rel}: {text}");
                assert!(!text.contains("../.."), "{kind:?} {rel}: {text}");
            }
            let manifest = &files[0].1;
            assert!(manifest.contains("name = \"my-plugin\"\n"), "{manifest}");
            assert!(
                manifest.contains(r#"path = "vendor/esox-plugin-sdk" }"#),
                "{manifest}"
            );
            assert!(manifest.contains("\n[workspace]\n"), "{manifest}");
            assert!(files[2].1.starts_with("# my-plugin\n"), "{}", files[2].1);
        }
        let readme = &scaffold_files("my-plugin", Kind::Transformer, VENDORED_SDK)[2].1;
        assert!(readme.contains("release/my_plugin.wasm"), "{readme}");
        let manifest = &scaffold_files("x", Kind::Generator, "/opt/esox/sdk")[0].1;
        assert!(
            manifest.contains(r#"path = "/opt/esox/sdk" }"#),
            "{manifest}"
        );
    }

    #[test]
    fn scaffold_writes_the_crate_and_the_sdk_beside_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("p");
        let written = scaffold(&dir, "p", Kind::Generator, None).unwrap();
        assert_eq!(written.len(), 4 + SDK_FILES.len());
        for (rel, text) in SDK_FILES {
            let got = std::fs::read_to_string(dir.join(VENDORED_SDK).join(rel)).unwrap();
            assert_eq!(&got, text, "{rel}");
        }
        let lib = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
        assert!(
            lib.contains("esox_plugin_sdk::generator!(generate);"),
            "{lib}"
        );
        // Not over a crate, nor with a name cargo cannot use or that shadows the SDK.
        let err = scaffold(&dir, "p", Kind::Generator, None).unwrap_err();
        assert!(matches!(err, AuthorError::Exists(_)), "{err}");
        for bad in ["Bad Name", "1st", "esox-plugin-sdk", ""] {
            let err = scaffold(&tmp.path().join("q"), bad, Kind::Generator, None).unwrap_err();
            assert!(matches!(err, AuthorError::Name(_)), "{bad}: {err}");
        }
        assert!(!tmp.path().join("q").exists());
        // `--sdk PATH`: nothing vendored, the path made absolute.
        let other = tmp.path().join("o");
        let written = scaffold(&other, "o", Kind::Transformer, Some(&sdk_dir())).unwrap();
        assert_eq!(written.len(), 4);
        let manifest = std::fs::read_to_string(other.join("Cargo.toml")).unwrap();
        let abs = std::fs::canonicalize(sdk_dir()).unwrap();
        assert!(
            manifest.contains(&format!("path = {:?}", abs.to_string_lossy())),
            "{manifest}"
        );
    }
}
