//! Conformance with Go: every case in `conformance/cases.json` renders here exactly as Go's
//! text/template with sprig rendered it into `conformance/golden.json` (regenerate with
//! `go run .` in that directory).

use std::collections::BTreeMap;

use base64::Engine as _;
use esox_plugin_sdk::template::{Entry, Scope, Template};

use super::*;

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    template: String,
    #[serde(default)]
    data: BTreeMap<String, String>,
    #[serde(default)]
    data_b64: BTreeMap<String, String>,
    #[serde(default)]
    left: String,
    #[serde(default)]
    right: String,
}

#[derive(serde::Deserialize)]
struct Golden {
    output: Option<String>,
    error: Option<String>,
}

/// Cases whose error text differs from Go's on purpose, and why.
const MESSAGE_DIFFERS: &[(&str, &str)] = &[
    // Go quotes the offending input character; values can be secret, so we give the position.
    ("must_from_json_invalid", "no input in JSON errors"),
    // Go quotes the value that is not a date or a duration; it is template data (secrets).
    ("must_to_date_error", "no value in time parse errors"),
    (
        "must_date_modify_error",
        "no value in duration parse errors",
    ),
];

fn run(c: &Case) -> Result<String, String> {
    let mut ctx: Vec<Entry> = c
        .data
        .iter()
        .map(|(k, v)| Entry {
            key: k.clone(),
            value: v.as_bytes().to_vec(),
        })
        .collect();
    for (k, v) in &c.data_b64 {
        ctx.push(Entry {
            key: k.clone(),
            value: base64::engine::general_purpose::STANDARD.decode(v).unwrap(),
        });
    }
    let opts = Options::from_json(
        &serde_json::json!({"leftDelim": c.left, "rightDelim": c.right}).to_string(),
    )
    .unwrap();
    let t = parse(&c.name, &c.template, &opts)?;
    t.execute(&data(&ctx))
        .map(|b| String::from_utf8(b).expect("cases render text"))
}

/// This package's directory: cargo's run-time `CARGO_MANIFEST_DIR` (the checkout the tests run
/// in), else the one compiled in (a build reused from another checkout keeps its path).
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
}

#[test]
fn renders_what_go_renders() {
    let dir = manifest_dir().join("conformance");
    let dir = dir.display();
    let cases: Vec<Case> =
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}/cases.json")).unwrap())
            .unwrap();
    let golden: BTreeMap<String, Golden> =
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}/golden.json")).unwrap())
            .unwrap();
    let mut failures = Vec::new();
    for c in &cases {
        let g = golden.get(&c.name).unwrap_or_else(|| {
            panic!(
                "no golden result for {}: run go run . in conformance/",
                c.name
            )
        });
        let got = run(c);
        match (&g.output, &g.error, &got) {
            (Some(want), _, Ok(out)) if want == out => {}
            (_, Some(want), Err(e)) => {
                if want != e && !MESSAGE_DIFFERS.iter().any(|(n, _)| *n == c.name) {
                    failures.push(format!("{}: error\n   go: {want}\n  got: {e}", c.name));
                }
            }
            _ => failures.push(format!(
                "{}:\n   go: {:?}\n  got: {:?}",
                c.name,
                g.output.as_ref().ok_or(g.error.as_ref()),
                got
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from Go:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn key_transforms_render_over_the_key_without_missingkey_error() {
    let t = |name: &str, text: &str| Template {
        name: name.into(),
        text: text.into(),
        scope: Scope::Values,
    };
    let out = render(
        vec![
            t("db-user", "{{ .value | upper | replace \"-\" \"_\" }}"),
            t("x", "{{ .value }}-{{ .other }}"),
            t("bad", "{{ .value "),
        ],
        vec![],
        r#"{"keyTransform": true, "leftDelim": "[["}"#,
    );
    assert_eq!(out[0].output.as_ref().unwrap()[0].value, b"DB_USER");
    assert_eq!(out[1].output.as_ref().unwrap()[0].value, b"x-<no value>");
    let err = out[2].output.as_ref().unwrap_err();
    assert!(
        err.message
            .starts_with("could not parse template: template: transform:1:"),
        "{}",
        err.message
    );
}

#[test]
fn every_template_fails_alone_and_errors_name_the_key() {
    let t = |name: &str, text: &str| Template {
        name: name.into(),
        text: text.into(),
        scope: Scope::Values,
    };
    let ctx = vec![Entry {
        key: "pw".into(),
        value: b"hunter2".to_vec(),
    }];
    let out = render(
        vec![
            t("a", "{{ .pw | b64enc }}"),
            t("b", "{{ .nope }}"),
            t("c", "{{ range .pw }}{{ end }}"),
        ],
        ctx,
        "{}",
    );
    assert_eq!(out[0].output.as_ref().unwrap()[0].value, b"aHVudGVyMg==");
    let b = out[1].output.as_ref().unwrap_err();
    assert_eq!(b.key.as_deref(), Some("b"));
    assert!(
        b.message
            .starts_with("unable to execute template at key b: template: b:1:3:"),
        "{}",
        b.message
    );
    let c = out[2].output.as_ref().unwrap_err();
    assert!(!c.message.contains("hunter2"), "{}", c.message);
}

#[test]
fn keys_and_values_scope_reads_yaml() {
    let out = render(
        vec![Template {
            name: "kv".into(),
            text: "{{ range $k, $v := . }}{{ $k }}_x: {{ $v | quote }}\n{{ end }}".into(),
            scope: Scope::KeysAndValues,
        }],
        vec![Entry {
            key: "a".into(),
            value: b"1".to_vec(),
        }],
        "{}",
    );
    let entries = out[0].output.as_ref().unwrap();
    assert_eq!(entries[0].key, "a_x");
    assert_eq!(entries[0].value, b"1");
}

#[test]
fn output_is_deterministic() {
    let c = data(&[Entry {
        key: "json".into(),
        value: br#"{"b":1,"a":[1,2],"c":{"z":1,"y":2}}"#.to_vec(),
    }]);
    let t = parse(
        "d",
        "{{ .json | fromJson | toYaml }}{{ range $k, $v := (.json | fromJson) }}{{ $k }}{{ end }}",
        &Options::default(),
    )
    .unwrap();
    let first = t.execute(&c).unwrap();
    for _ in 0..20 {
        assert_eq!(t.execute(&c).unwrap(), first);
    }
}

#[test]
fn runaway_templates_stop_with_a_clear_error() {
    let root = data(&[]);
    let run = |text: &str| {
        parse("t", text, &Options::default())
            .unwrap()
            .execute(&root)
    };
    let err = run("{{ until 2000000 | len }}").unwrap_err();
    assert!(
        err.contains("error calling until: more than 1000000 items"),
        "{err}"
    );
    let t = parse(
        "t",
        "{{ range until 1000 }}{{ range until 1000 }}{{ end }}{{ end }}",
        &Options::default(),
    )
    .unwrap();
    let mut st = exec::State::new(&t.set, "t", &t.src);
    st.max_steps = 100_000;
    let err = st.execute("t", root.clone()).unwrap_err();
    assert!(
        err.contains("template exceeds 100000 evaluation steps"),
        "{err}"
    );
    let err =
        run("{{ define \"r\" }}{{ template \"r\" }}{{ end }}{{ template \"r\" }}").unwrap_err();
    assert!(
        err.contains("exceeded maximum template depth (1000)"),
        "{err}"
    );
    let err = run("{{ repeat 20000000 \"x\" }}").unwrap_err();
    assert!(err.contains("Repeat output length overflow"), "{err}");
}

/// Found by the fuzzer: sizes a template asks for are bounded before anything is allocated.
#[test]
fn huge_sizes_are_refused_not_allocated() {
    let root = data(&[]);
    let run = |text: &str| {
        parse("t", text, &Options::default())
            .unwrap()
            .execute(&root)
    };
    assert!(run("{{ randAlphaNum 1888888888888888888888888888888888888888888886 }}").is_err());
    assert!(
        run("{{ randBytes 4611686018427387904 }}")
            .unwrap_err()
            .contains("larger than a template's output")
    );
    assert!(run("{{ indent 4611686018427387904 \"x\" }}").is_err());
    assert!(run("{{ printf \"%.70000f\" 0.5 }}").is_ok());
}

/// The compatibility table in docs/gotemplate.md lists every function with its real status.
#[test]
fn compatibility_table_matches_the_function_table() {
    let doc = std::fs::read_to_string(manifest_dir().join("../../docs/gotemplate.md")).unwrap();
    for (name, unsupported) in funcs::names() {
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| `{name}` |")))
            .unwrap_or_else(|| panic!("docs/gotemplate.md has no row for {name}"));
        assert_eq!(
            row.contains("| **no** |"),
            unsupported.is_some(),
            "status of {name} in docs/gotemplate.md: {row}"
        );
    }
}

/// Found by the fuzzer: trimmed text around multi-byte characters.
#[test]
fn trim_markers_around_multibyte_text() {
    let t = parse(
        "t",
        "a  {{- .a -}} \u{79d}\u{0}3 {{- .a }}\n\n  x",
        &Options::default(),
    )
    .unwrap();
    let out = t
        .execute(&data(&[Entry {
            key: "a".into(),
            value: b"v".to_vec(),
        }]))
        .unwrap();
    assert_eq!(out, "av\u{79d}\u{0}3v\n\n  x".as_bytes());
    assert!(parse("t", "{{- .a -}} \u{79d}\u{0}3 {{- }", &Options::default()).is_err());
}

/// The canary's marker: no error may contain it, in any case, whole or in part.
const MARK: &str = "zq9x";

/// Values shaped to get past the first checks of the parsers (dates, semver, JSON, PEM,
/// base64, URLs, regexps), so their deeper errors are reached too.
const CANARIES: &[&str] = &[
    "canary-zq9x-value",
    "2024-13-01zq9x",
    "1.2.3 zq9x",
    ">= 1.2.zq9x",
    "3dzq9x",
    "{\"a\": zq9x}",
    "-----BEGIN ZQ9X-----\nzq9x\n",
    "-----BEGIN CERTIFICATE-----\nzq9x\n-----END CERTIFICATE-----\n",
    "zq9x(",
    "http://[zq9x",
    "{\"kty\": \"zq9x\", \"crv\": \"zq9x\"}",
    "{\"kty\": \"EC\", \"crv\": \"zq9x\", \"x\": \"zq9x\"}",
    "{\"kty\": \"OKP\", \"crv\": \"zq9x\"}",
];

/// Slow functions whose errors come from their argument types only (bcrypt's cost).
const SLOW: &[&str] = &["bcrypt", "htpasswd", "derivePassword"];

fn leaked(message: &str, canary: &str) -> bool {
    let lower = message.to_lowercase();
    lower.contains(MARK)
        || message.contains(&base64::engine::general_purpose::STANDARD.encode(canary))
        || message.contains(&hex::encode(canary))
}

/// Every function of the engine, with a secret value in every argument position (and as the
/// piped value), beside literal strings and numbers: whatever fails names the function and
/// never the value.
#[test]
fn no_function_error_carries_its_data() {
    let opts = Options::default();
    let mut leaks = Vec::new();
    let mut failures = 0;
    for canary in CANARIES {
        let root = data(&[Entry {
            key: "c".into(),
            value: canary.as_bytes().to_vec(),
        }]);
        for (name, unsupported) in funcs::names() {
            if unsupported.is_some() || SLOW.contains(&name) {
                continue;
            }
            let spec = funcs::lookup(name).unwrap();
            let max = spec.max.unwrap_or(spec.min + 2).min(4);
            for n in spec.min.max(1)..=max {
                // Besides the value: a string, a number, a time and a version, so functions
                // get past their other arguments' checks (all five up to three arguments).
                let choices: &[&str] = if n <= 3 {
                    &[".c", "\"x\"", "3", "now", "\"1.2.3\""]
                } else {
                    &[".c", "\"x\"", "3"]
                };
                let k = choices.len();
                for combo in 0..k.pow(n as u32) {
                    let args: Vec<&str> = (0..n)
                        .map(|i| choices[(combo / k.pow(i as u32)) % k])
                        .collect();
                    if !args.contains(&".c") {
                        continue;
                    }
                    let mut texts = vec![format!("{{{{ {name} {} }}}}", args.join(" "))];
                    if args[n - 1] == ".c" {
                        texts.push(format!("{{{{ .c | {name} {} }}}}", args[..n - 1].join(" ")));
                    }
                    for text in texts {
                        if let Err(e) = render_text("k", &text, &root, &opts) {
                            failures += 1;
                            if leaked(&e, canary) {
                                leaks.push(format!("{text} over {canary:?}: {e}"));
                            } else if !e.contains("error calling")
                                && !e.contains("wrong type")
                                && !e.contains("wrong number")
                            {
                                leaks.push(format!("{text}: unexpected error {e}"));
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(
        failures > 1000,
        "only {failures} errors: the audit reached too little"
    );
    assert!(
        leaks.is_empty(),
        "{} leaks:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
}

#[test]
fn fail_shows_a_literal_message_and_hides_a_computed_one() {
    let root = data(&[Entry {
        key: "pw".into(),
        value: b"canary-fail-zq9x".to_vec(),
    }]);
    let opts = Options::default();
    let e = render_text("k", "{{ fail \"no password set\" }}", &root, &opts).unwrap_err();
    assert!(e.ends_with("error calling fail: no password set"), "{e}");
    for text in [
        "{{ fail .pw }}",
        "{{ .pw | fail }}",
        "{{ fail (printf \"bad %s\" .pw) }}",
        "{{ fail (.pw | upper) }}",
        "{{ fail (.pw | b64enc) }}",
    ] {
        let e = render_text("k", text, &root, &opts).unwrap_err();
        assert!(
            e.ends_with(&format!("error calling fail: {}", exec::FAIL_NOT_SHOWN)),
            "{text}: {e}"
        );
        assert!(!leaked(&e, "canary-fail-zq9x"), "{text}: {e}");
    }
}

#[test]
fn the_measured_leaks_name_the_function_only() {
    let canary = "canary-measured-zq9x";
    let root = data(&[Entry {
        key: "v".into(),
        value: canary.as_bytes().to_vec(),
    }]);
    let opts = Options::default();
    for (text, want) in [
        (
            "{{ .v | mustToDate \"2006-01-02\" }}",
            "error calling mustToDate: parsing time as \"2006-01-02\": the value does not match the layout",
        ),
        (
            "{{ semverCompare .v \"1.2.3\" }}",
            "error calling semverCompare: improper constraint",
        ),
        (
            "{{ now | mustDateModify .v }}",
            "error calling mustDateModify: time: invalid duration",
        ),
        (
            "{{ fail .v }}",
            "error calling fail: the message is not shown",
        ),
    ] {
        let e = render_text("k", text, &root, &opts).unwrap_err();
        assert!(e.contains(want), "{text}: {e}");
        assert!(!leaked(&e, canary), "{text}: {e}");
    }
}
