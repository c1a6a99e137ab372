//! Plugin benchmark: the full plugin path (fresh instance per call) beside the same plugin
//! code compiled natively, and cold start with and without the compiled-component cache.
//!
//! Run: `scripts/bench.sh` (or `cargo bench -p esox-wasm --bench plugins`). Results and the
//! command are recorded in `BENCHMARKS.md`. This is a measurement, not a test: it asserts
//! nothing about timings (these machines are noisy); compare the ratios within one run.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use esox_plugin_sdk::template::{Entry, Scope, Template};
use esox_wasm::builtin::Builtin;
use esox_wasm::{HostConfig, Limits, Runtime, SecretBytes, SecretMap, TemplateRequest, World};

const SEED_TEMPLATE_JINJA: &str = "DB_USERNAME={{ db_user }}\nDB_PASSWORD={{ db_pass }}\nCONNECTION_STRING=jdbc:postgresql://{{ db_host }}:{{ db_port }}/main_db\n";
const SEED_TEMPLATE_GO: &str = "DB_USERNAME={{ .db_user }}\nDB_PASSWORD={{ .db_pass }}\nCONNECTION_STRING=jdbc:postgresql://{{ .db_host }}:{{ .db_port }}/main_db\n";
/// A helper-heavy template, the same work in both engines: JSON, base64, hashing, a loop.
const HELPERS_GO: &str = "{{ $j := .json | fromJson }}{{ range $k, $v := $j }}{{ $k | upper }}={{ $v | toString | b64enc }}\n{{ end }}sum={{ .db_pass | sha256sum }}\n";
const HELPERS_JINJA: &str = "{% set j = json | fromJson %}{% for k, v in j | items %}{{ k | upper }}={{ v | str | b64enc }}\n{% endfor %}sum={{ db_pass | sha256sum }}\n";

/// One engine rendering one template over `ctx`, through Wasm and natively.
fn engine_rows(
    rt: &Runtime,
    n: usize,
    ctx: &[(&str, &str)],
    rows: &[(&str, Builtin, &str)],
    native: impl Fn(Builtin, Vec<Template>, Vec<Entry>) -> bool,
) {
    let context: SecretMap = ctx
        .iter()
        .map(|(k, v)| (k.to_string(), SecretBytes::new(v.as_bytes().to_vec())))
        .collect();
    for (label, engine, text) in rows {
        let plugin = rt
            .load(engine.name(), World::Template, engine.component())
            .unwrap();
        let req = vec![TemplateRequest {
            name: "out".into(),
            text: text.to_string(),
            keys_and_values: false,
        }];
        let wasm = measure(n, || {
            let out = rt.render(&plugin, &req, &context, "{}").unwrap();
            assert!(out[0].1.is_ok(), "{label}: {:?}", out[0].1.as_ref().err());
        });
        let nat = measure(n, || {
            let t = vec![Template {
                name: "out".into(),
                text: text.to_string(),
                scope: Scope::Values,
            }];
            let c: Vec<Entry> = ctx
                .iter()
                .map(|(k, v)| Entry {
                    key: k.to_string(),
                    value: v.as_bytes().to_vec(),
                })
                .collect();
            assert!(native(*engine, t, c));
        });
        row(label, &wasm, &nat);
    }
}

struct Stats {
    p50: Duration,
    p99: Duration,
}

fn measure(iterations: usize, mut f: impl FnMut()) -> Stats {
    for _ in 0..iterations / 10 + 1 {
        f(); // warm-up
    }
    let mut samples: Vec<Duration> = (0..iterations)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    samples.sort();
    Stats {
        p50: samples[samples.len() / 2],
        p99: samples[samples.len() * 99 / 100],
    }
}

fn row(name: &str, wasm: &Stats, native: &Stats) {
    println!(
        "| {name} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1}× |",
        wasm.p50.as_secs_f64() * 1e6,
        wasm.p99.as_secs_f64() * 1e6,
        native.p50.as_secs_f64() * 1e6,
        native.p99.as_secs_f64() * 1e6,
        wasm.p50.as_secs_f64() / native.p50.as_secs_f64()
    );
}

/// A PKCS#12 with an RSA-2048 leaf, intermediate and root (about 4 KiB), made by openssl.
fn make_p12(dir: &Path) -> Vec<u8> {
    let script = "for n in root inter leaf; do openssl genrsa -out $n.key 2048 2>/dev/null; done
        printf 'basicConstraints=critical,CA:TRUE\\nsubjectKeyIdentifier=hash\\nauthorityKeyIdentifier=keyid\\n' > ca.ext
        openssl req -x509 -new -key root.key -subj /CN=Bench-Root -days 9 -out root.crt
        openssl req -new -key inter.key -subj /CN=Bench-Intermediate -out inter.csr
        openssl x509 -req -in inter.csr -CA root.crt -CAkey root.key -CAcreateserial -days 9 -extfile ca.ext -out inter.crt 2>/dev/null
        openssl req -new -key leaf.key -subj /CN=bench.example.com -out leaf.csr
        openssl x509 -req -in leaf.csr -CA inter.crt -CAkey inter.key -CAcreateserial -days 9 -out leaf.crt 2>/dev/null
        cat inter.crt root.crt > chain.crt
        openssl pkcs12 -export -inkey leaf.key -in leaf.crt -certfile chain.crt -passout pass:bench -out ks.p12";
    let out = Command::new("sh")
        .current_dir(dir)
        .arg("-ec")
        .arg(script)
        .output()
        .expect("openssl is needed for the PKCS#12 benchmark");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(dir.join("ks.p12")).unwrap()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n = if quick { 200 } else { 2000 };
    let rt = Runtime::new(Limits::default()).unwrap();
    println!("esox plugin benchmark ({n} calls per row after warm-up; times in µs)\n");
    println!("| work | Wasm p50 | Wasm p99 | native p50 | native p99 | p50 ratio |");
    println!("|---|---|---|---|---|---|");

    // (a) The seeds' db-config.properties template, in both engines; then a helper-heavy one.
    let ctx: Vec<(&str, &str)> = vec![
        ("db_user", "app"),
        ("db_pass", "s3cr3t-p4ss"),
        ("db_host", "rds-prod-01.aws.com"),
        ("db_port", "5432"),
        (
            "json",
            r#"{"user":"app","port":"5432","region":"eu-west-1"}"#,
        ),
    ];
    engine_rows(
        &rt,
        n,
        &ctx,
        &[
            (
                "(a) seeds' db-config.properties, Go engine (default)",
                Builtin::GoTemplate,
                SEED_TEMPLATE_GO,
            ),
            (
                "(a) seeds' db-config.properties, minijinja",
                Builtin::Minijinja,
                SEED_TEMPLATE_JINJA,
            ),
            (
                "(a') JSON + base64 + sha256 + loop, Go engine",
                Builtin::GoTemplate,
                HELPERS_GO,
            ),
            (
                "(a') JSON + base64 + sha256 + loop, minijinja",
                Builtin::Minijinja,
                HELPERS_JINJA,
            ),
        ],
        |engine, t, c| {
            let out = match engine {
                Builtin::GoTemplate => esox_plugin_gotemplate::render(t, c, "{}"),
                _ => esox_plugin_minijinja::render(t, c, "{}"),
            };
            out[0].output.is_ok()
        },
    );

    // (b) PKCS#12 extraction (key + ordered chain) from a ~4 KiB file.
    let dir = tempfile::tempdir().unwrap();
    let p12 = make_p12(dir.path());
    let pkcs12 = rt
        .load("pkcs12", World::Transformer, Builtin::Pkcs12.component())
        .unwrap();
    let input: SecretMap = [
        ("keystore".to_string(), SecretBytes::new(p12.clone())),
        ("pass".to_string(), SecretBytes::new(b"bench".to_vec())),
    ]
    .into();
    let config = r#"{"key":"keystore","passwordKey":"pass"}"#;
    let m = n / 4;
    let wasm = measure(m, || {
        let out = rt.transform(&pkcs12, &input, config).unwrap();
        assert!(out.contains_key("tls.crt"));
    });
    let native = measure(m, || {
        let data = vec![
            Entry {
                key: "keystore".into(),
                value: p12.clone(),
            },
            Entry {
                key: "pass".into(),
                value: b"bench".to_vec(),
            },
        ];
        let out = esox_plugin_pkcs12::transform(data, config).unwrap();
        assert_eq!(out.len(), 4);
    });
    row(
        &format!("(b) PKCS#12 extraction, {} B file", p12.len()),
        &wasm,
        &native,
    );

    // (c) A 32-character password.
    let password = rt
        .load("password", World::Generator, Builtin::Password.component())
        .unwrap();
    let spec = r#"{"length":32,"digits":5,"symbols":5,"noUpper":false,"allowRepeat":true}"#;
    let wasm = measure(n, || {
        let out = rt.generate(&password, spec, None).unwrap();
        assert_eq!(out.data["password"].len(), 32);
    });
    let native = measure(n, || {
        let out = esox_plugin_password::generate(spec).unwrap();
        assert_eq!(out.data[0].value.len(), 32);
    });
    row("(c) 32-character password", &wasm, &native);

    // Cold start: a new runtime loading every built-in, compiling vs from the cache.
    println!(
        "\n| cold start: new engine + all {} built-ins | ms |",
        Builtin::ALL.len()
    );
    println!("|---|---|");
    let cache = tempfile::tempdir().unwrap();
    let load_all = |dir: Option<&Path>| {
        let t = Instant::now();
        let rt = Runtime::new(HostConfig {
            cache_dir: dir.map(Into::into),
            ..Default::default()
        })
        .unwrap();
        for b in Builtin::ALL {
            rt.load(b.name(), b.world(), b.component()).unwrap();
        }
        t.elapsed()
    };
    let compiled = load_all(None);
    println!(
        "| compiled (no cache) | {:.1} |",
        compiled.as_secs_f64() * 1e3
    );
    load_all(Some(cache.path())); // fills the cache
    let mut from_cache: Vec<Duration> = (0..5).map(|_| load_all(Some(cache.path()))).collect();
    from_cache.sort();
    println!(
        "| from the compiled cache (median of 5) | {:.1} |",
        from_cache[2].as_secs_f64() * 1e3
    );
}
