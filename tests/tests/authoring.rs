//! Writing a plugin end to end: the example plugins in `examples/plugins/` built by
//! `esox plugin build`'s code, stored in a ConfigMap, pinned by their digest in a
//! `WasmPlugin`, and declared in ExternalSecrets (a transformer in `template.plugins`, a
//! generator in `generatorRef`); and the scaffold → build → test path a newcomer follows.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use esox::cli::plugin as author;
use esox::plugin::World;
use esox_tests::{TestEnv, repo_root, secret_strings};

/// Builds outside the clone and keeps the result, like the other build outputs.
fn target_dir() -> PathBuf {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/tmp".into());
    PathBuf::from(home).join(".cache/esox/plugin-authoring")
}

fn build(dir: &Path) -> author::Built {
    author::build(dir, Some(&target_dir())).expect("the example plugin builds")
}

fn wasm_plugin(name: &str, world: &str, built: &author::Built, config: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&built.path).unwrap());
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}-wasm}}\nbinaryData:\n  plugin.wasm: {b64}\n---\napiVersion: plugins.esox.dev/v1alpha1\nkind: WasmPlugin\nmetadata: {{name: {name}}}\nspec:\n  world: {world}\n  source:\n    configMap: {{name: {name}-wasm, key: plugin.wasm}}\n  sha256: {}\n  config: {config}\n",
        built.sha256
    )
}

#[tokio::test]
async fn example_plugins_run_in_the_cluster() {
    let env = TestEnv::new("authoring").await;
    let examples = repo_root().join("examples/plugins");
    let flatten = build(&examples.join("json-flatten"));
    let dotenv = build(&examples.join("dotenv"));
    let passphrase = build(&examples.join("passphrase"));
    env.apply(&wasm_plugin("json-flatten", "Transformer", &flatten, "{}"))
        .await
        .unwrap();
    env.apply(&wasm_plugin("dotenv", "Transformer", &dotenv, "{}"))
        .await
        .unwrap();
    env.apply(&wasm_plugin(
        "passphrase",
        "Generator",
        &passphrase,
        "{words: 5, separator: '.'}",
    ))
    .await
    .unwrap();
    env.apply(
        r#"apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {name: store}
spec:
  provider:
    fake:
      data:
      - key: app
        value: '{"db": {"user": "app", "port": 5432}, "region": "eu-west-1"}'
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: flattened}
spec:
  refreshInterval: 1h
  secretStoreRef: {name: store, kind: SecretStore}
  target:
    name: flattened
    template:
      mergePolicy: Merge
      plugins:
      - ref: {kind: WasmPlugin, name: json-flatten}
        config: {separator: "_"}
      - ref: {kind: WasmPlugin, name: dotenv}
        config: {key: app.env, keep: true}
  data:
  - secretKey: config
    remoteRef: {key: app}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: phrase}
spec:
  refreshInterval: 1h
  target: {name: phrase}
  dataFrom:
  - sourceRef:
      generatorRef: {apiVersion: plugins.esox.dev/v1alpha1, kind: WasmPlugin, name: passphrase}
"#,
    )
    .await
    .unwrap();
    // The first reconcile compiles both user plugins (cranelift, seconds each on a loaded
    // 2-core CI machine running other tests).
    let s = env
        .wait_secret_within(
            "flattened",
            "secret shaped by the example transformers",
            Duration::from_secs(120),
            |s| s.data.is_some(),
        )
        .await;
    let d = secret_strings(&s);
    assert_eq!(d["config_db_user"], "app");
    assert_eq!(d["config_db_port"], "5432");
    assert_eq!(d["config_region"], "eu-west-1");
    assert_eq!(
        d["app.env"],
        "CONFIG_DB_PORT=\"5432\"\nCONFIG_DB_USER=\"app\"\nCONFIG_REGION=\"eu-west-1\"\n"
    );
    let p = env
        .wait_secret_within(
            "phrase",
            "secret from the example generator",
            Duration::from_secs(120),
            |s| s.data.is_some(),
        )
        .await;
    let phrase = secret_strings(&p)["passphrase"].clone();
    assert_eq!(phrase.split('.').count(), 5, "{phrase}");
}

/// The newcomer's path: scaffold, build, try locally, all with esox's own tooling.
#[test]
fn scaffold_build_and_test_locally() {
    let dir = tempfile::tempdir().unwrap();
    let crate_dir = dir.path().join("my-transformer");
    let files = author::scaffold(&crate_dir, "my-transformer", World::Transformer, None).unwrap();
    assert!(files.iter().any(|f| f.ends_with("src/lib.rs")));
    assert!(
        files
            .iter()
            .any(|f| f.ends_with("vendor/esox-plugin-sdk/wit/plugin.wit"))
    );
    let built = build(&crate_dir);
    assert_eq!(built.sha256.len(), 64);
    let wasm = std::fs::read(&built.path).unwrap();
    let input = author::read_input(r#"{"user": "app", "blob": {"base64": "//4="}}"#).unwrap();
    let out = author::run(
        &wasm,
        World::Transformer,
        Default::default(),
        &input,
        r#"{"prefix": "APP_"}"#,
    )
    .unwrap();
    assert_eq!(out["APP_user"].expose(), b"app");
    assert_eq!(out["APP_blob"].expose(), &[0xff, 0xfe]);
    assert!(author::output_json(&out).contains(r#""APP_blob": {"#));
    // The scaffold's typed config refuses a misspelt field, naming it.
    let err = author::run(
        &wasm,
        World::Transformer,
        Default::default(),
        &input,
        r#"{"prefx": "APP_"}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("unknown field `prefx`"), "{err}");
    // A component used as the wrong kind is refused with the reason.
    let err = author::run(&wasm, World::Generator, Default::default(), &input, "{}").unwrap_err();
    assert!(err.to_string().contains("not a Generator plugin"), "{err}");
}

/// A plugin author needs the esox binary and cargo, nothing else: a copy of the binary, run
/// outside the repository with an environment that names nothing of it, scaffolds each kind,
/// builds it and runs it; the scaffolds depend on nothing in the repository.
#[test]
fn plugin_new_build_and_test_from_a_copied_binary_outside_the_repository() {
    let root = std::fs::canonicalize(repo_root()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let home = std::fs::canonicalize(tmp.path()).unwrap();
    assert!(
        !home.starts_with(&root),
        "{} is inside the repository",
        home.display()
    );
    let bin = home.join("bin/esox");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::copy(esox_tests::esox_bin(), &bin).unwrap();
    let work = home.join("work");
    std::fs::create_dir_all(&work).unwrap();
    // Only what a user's shell has for cargo and rustup; no CARGO_MANIFEST_DIR, no CARGO.
    let esox = |args: &[&str]| {
        let mut cmd = std::process::Command::new(&bin);
        cmd.args(args).current_dir(&work).env_clear();
        for var in [
            "PATH",
            "HOME",
            "CARGO_HOME",
            "RUSTUP_HOME",
            "RUSTUP_TOOLCHAIN",
            "TMPDIR",
        ] {
            if let Some(v) = std::env::var_os(var) {
                cmd.env(var, v);
            }
        }
        // Warm builds: the dependencies are shared with the other authoring tests.
        cmd.env("CARGO_TARGET_DIR", target_dir());
        esox_tests::stdout_ok(&mut cmd)
    };
    let component = |out: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix("component: "))
            .unwrap_or_else(|| panic!("no component line in {out}"))
            .to_string()
    };
    let cases: [(&str, &[&str], &str); 3] = [
        (
            "transformer",
            &["--data", "user=app", "--config", r#"{"prefix":"X_"}"#],
            r#""X_user": "app""#,
        ),
        (
            "generator",
            &["--config", r#"{"length":8}"#],
            r#""token": ""#,
        ),
        (
            "template",
            &[
                "--data",
                "template:greeting=hi ${user}",
                "--data",
                "user=app",
            ],
            r#""greeting": "hi app""#,
        ),
    ];
    for (kind, test_args, expected) in cases {
        let name = format!("outside-{kind}");
        let out = esox(&["plugin", "new", &name, "--kind", kind]);
        assert!(out.contains("vendor/esox-plugin-sdk/Cargo.toml"), "{out}");
        let dir = work.join(&name);
        // Nothing written names the repository.
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(
            manifest.contains(
                r#"esox-plugin-sdk = { version = "0.1.0", path = "vendor/esox-plugin-sdk" }"#
            ),
            "{manifest}"
        );
        for file in walk(&dir) {
            let text = std::fs::read_to_string(&file).unwrap();
            assert!(
                !text.contains(root.to_str().unwrap()),
                "{} names the repository",
                file.display()
            );
        }
        let wasm = component(&esox(&["plugin", "build", &name]));
        assert!(
            wasm.ends_with(&format!("{}.wasm", name.replace('-', "_"))),
            "{wasm}"
        );
        let mut args = vec!["plugin", "test", wasm.as_str(), "--kind", kind];
        args.extend_from_slice(test_args);
        let out = esox(&args);
        assert!(out.contains(expected), "{kind}: {out}");
    }
    // Without a config, the default: 16 random bytes in hex.
    let wasm = target_dir().join("wasm32-wasip2/release/outside_generator.wasm");
    let out = esox(&[
        "plugin",
        "test",
        wasm.to_str().unwrap(),
        "--kind",
        "generator",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["token"].as_str().unwrap().len(), 32, "{out}");
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The first `sh` block under `heading` in the README.
fn readme_block(heading: &str) -> String {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let at = readme
        .find(heading)
        .unwrap_or_else(|| panic!("README has no {heading:?}"));
    let start = readme[at..].find("```sh\n").expect("a sh block") + at + "```sh\n".len();
    let end = readme[start..].find("```").expect("the block ends") + start;
    readme[start..end].to_string()
}

/// The README's "Your first plugin" block, run by bash as a newcomer pastes it against the
/// demo: scaffold, build, local test, `plugin pack | kubectl apply`, an ExternalSecret that
/// declares the plugin, and the Secret it shaped. Only the namespace (the test's own instead
/// of the demo's `my-app`) and the esox path (this build's) are substituted, so an edit that
/// breaks the README breaks this test.
// Multi-threaded: the script runs blocking on one thread while the controller works on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_first_plugin_block_runs_as_written() {
    let env = TestEnv::new("readme-plugin").await;
    // The demo's stores, which the block reads from.
    let stores = std::fs::read_to_string(repo_root().join("examples/stores/fake.yaml")).unwrap();
    env.apply(&stores).await.unwrap();
    let block = readme_block("## Your first plugin");
    let set_esox = block
        .lines()
        .find(|l| l.starts_with("E="))
        .expect("the block sets E to the esox binary");
    assert!(
        block.contains("-n my-app"),
        "the block targets the demo's namespace"
    );
    let script = block
        .replace(set_esox, &format!("E={}", esox_tests::esox_bin().display()))
        .replace("-n my-app", &format!("-n {}", env.ns));
    let dir = tempfile::tempdir().unwrap();
    let stack = esox_tests::stack_env().unwrap();
    let out = esox_tests::stdout_ok(
        std::process::Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .current_dir(dir.path())
            .env("KUBECONFIG", &stack["KUBECONFIG"])
            // Warm builds: the plugin's dependencies are shared with the other authoring tests.
            .env("CARGO_TARGET_DIR", target_dir()),
    );
    // `esox plugin test` printed the local result, and the cluster's Secret holds the
    // plugin's output, as the README says.
    assert!(out.contains(r#""X_user": "app""#), "{out}");
    assert_eq!(out.lines().last(), Some("X_token=tok-4f9b2c"), "{out}");
    let s = env.secrets().get("shouted").await.unwrap();
    assert_eq!(
        secret_strings(&s),
        [("X_token".to_string(), "tok-4f9b2c".to_string())].into()
    );
}

/// `esox render`: the seeds' example rendered offline through the controller's pipeline and
/// the Go engine plugin, and an example plugin supplied as a local file.
#[tokio::test]
async fn render_offline_through_the_same_pipeline() {
    let read_docs = |p: &Path| -> Vec<serde_yaml::Value> {
        esox::offline::documents(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    let root = repo_root();
    let mut docs = read_docs(&root.join("examples/external-secrets/dynamic-db-secret.yaml"));
    docs.extend(read_docs(&root.join("examples/stores/fake.yaml")));
    let host = esox::plugin::PluginHost::new(Default::default()).unwrap();
    let inputs = esox::offline::Inputs {
        docs,
        data: None,
        plugins: Default::default(),
        name: None,
    };
    let out = esox::offline::render(inputs, host.clone(), true)
        .await
        .unwrap();
    assert!(out.contains("name: app-db-config-secret"), "{out}");
    assert!(out.contains("    DB_USERNAME=admin\n    DB_PASSWORD=superSecretPassword123\n    CONNECTION_STRING=jdbc:postgresql://rds-prod-01.aws.com:5432/main_db\n"), "{out}");

    let flatten = build(&root.join("examples/plugins/json-flatten"));
    let es: serde_yaml::Value = serde_yaml::from_str(
        "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: app}\nspec:\n  target:\n    template:\n      plugins:\n      - ref: {kind: WasmPlugin, name: json-flatten}\n      data:\n        summary: '{{ .cfg_db_user }}:{{ .cfg_db_port }}'\n  data:\n  - secretKey: cfg\n    remoteRef: {key: app}\n",
    )
    .unwrap();
    let inputs = esox::offline::Inputs {
        docs: vec![es.clone()],
        data: Some(
            [(
                "app".to_string(),
                r#"{"db": {"user": "u", "port": 1}}"#.to_string(),
            )]
            .into(),
        ),
        plugins: [("json-flatten".to_string(), flatten.path.clone())].into(),
        name: None,
    };
    let out = esox::offline::render(inputs, host.clone(), true)
        .await
        .unwrap();
    assert!(out.contains("summary: u:1"), "{out}");
    let inputs = esox::offline::Inputs {
        docs: vec![es],
        data: Some([("app".to_string(), "{}".to_string())].into()),
        plugins: Default::default(),
        name: None,
    };
    let err = esox::offline::render(inputs, host, true)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("is not available offline: pass --plugin json-flatten=FILE.wasm"),
        "{err}"
    );
}

/// A plugin written in Python (componentize-py against our WIT) runs in the same sandbox, and
/// ships to the cluster with `esox plugin pack`: 18 MB, over what one ConfigMap holds, so
/// gzip-compressed and split across several, joined and checked against its digest by esox.
#[tokio::test]
async fn python_plugin_builds_runs_and_ships_packed() {
    let script = repo_root().join("examples/plugins/python-prefix/build.sh");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("python-prefix.wasm");
    let status = std::process::Command::new("bash")
        .arg(&script)
        .arg(&out)
        .status()
        .expect("run build.sh");
    assert!(status.success(), "componentize-py build failed");
    let wasm = std::fs::read(&out).unwrap();
    let input = author::read_input(r#"{"a": "1"}"#).unwrap();
    // On the test process's runtime, whose compiled-component cache the controller below
    // shares: the 18 MB component is compiled once.
    let rt = esox_tests::plugin_host().runtime().clone();
    let got = author::run_on(
        &rt,
        &wasm,
        World::Transformer,
        &input,
        r#"{"prefix": "PY_"}"#,
    )
    .unwrap();
    assert_eq!(got["PY_a"].expose(), b"1");
    let err =
        author::run_on(&rt, &wasm, World::Transformer, &input, r#"{"prefix": 1}"#).unwrap_err();
    assert!(err.to_string().contains("prefix must be a string"), "{err}");

    let env = TestEnv::new("authoring-py").await;
    let packed = author::pack(
        &wasm,
        &author::PackOptions {
            name: "python-prefix",
            namespace: None,
            cluster: false,
            world: esox::api::plugins::PluginWorld::Transformer,
            config: None,
        },
    )
    .unwrap();
    assert!(packed.parts > 1, "{} parts", packed.parts);
    env.apply(&packed.yaml).await.unwrap();
    env.apply("apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {name: store}\nspec:\n  provider:\n    fake:\n      data: [{key: app, value: s3cr3t}]\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: py}\nspec:\n  refreshInterval: 1h\n  secretStoreRef: {name: store, kind: SecretStore}\n  target:\n    template:\n      mergePolicy: Merge\n      plugins:\n      - ref: {kind: WasmPlugin, name: python-prefix}\n        config: {prefix: PY_}\n  data:\n  - secretKey: token\n    remoteRef: {key: app}\n")
        .await
        .unwrap();
    // Compiling 18 MB of Python takes a while on a busy 2-core machine.
    let api = env.secrets();
    let s = esox_tests::wait_for(
        std::time::Duration::from_secs(240),
        "a Secret from the packed Python plugin",
        || {
            let api = api.clone();
            async move {
                api.get_opt("py")
                    .await
                    .ok()
                    .flatten()
                    .filter(|s| s.data.is_some())
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(secret_strings(&s)["PY_token"], "s3cr3t");
}

/// `esox render` against an AWS store (moto here) with the default credential chain.
#[tokio::test]
async fn render_offline_from_aws() {
    let key = format!("render/{}", std::process::id());
    esox_tests::put_aws_secret(&key, r#"{"user":"app","pass":"s3cr3t"}"#, &[]).await;
    let name = &key;
    let docs: Vec<serde_yaml::Value> = esox::offline::documents(&format!(
        "apiVersion: external-secrets.io/v1beta1\nkind: SecretStore\nmetadata: {{name: aws}}\nspec:\n  provider:\n    aws: {{service: SecretsManager, region: us-east-1}}\n---\napiVersion: external-secrets.io/v1beta1\nkind: ExternalSecret\nmetadata: {{name: app}}\nspec:\n  secretStoreRef: {{name: aws, kind: SecretStore}}\n  target:\n    template:\n      data:\n        dsn: 'postgres://{{{{ .user }}}}:{{{{ .pass }}}}@db/app'\n  dataFrom:\n  - extract: {{key: {name}}}\n"
    ))
    .unwrap();
    let host = esox::plugin::PluginHost::new(Default::default()).unwrap();
    let inputs = esox::offline::Inputs {
        docs,
        data: None,
        plugins: Default::default(),
        name: None,
    };
    let out = esox::offline::render(inputs, host, true).await.unwrap();
    assert!(out.contains("dsn: postgres://app:s3cr3t@db/app"), "{out}");
}
