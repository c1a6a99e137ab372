//! Conformance with Go: every case in `conformance/cases.json` renders here exactly as Go's
//! text/template with sprig rendered it into `conformance/golden.json` (regenerate with
//! `go run .` in that directory).

use std::collections::BTreeMap;

use base64::Engine as _;
use esox_plugin_sdk::template::Entry;

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

#[test]
fn renders_what_go_renders() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/conformance");
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
