//! Issue 15, "Secret values never reach a message": a template function that fails over a
//! secret value names the function in the ExternalSecret's Ready condition, its events and
//! the controller's log, and never the value (raw or base64). One ExternalSecret per
//! data-handling function (Go engine and minijinja), each over a Fake store entry holding a
//! unique canary shaped to make that function fail.
//!
//! Against the engines before the fix, both tests fail: the value reached the Ready message,
//! the events, the status and the log for `fail`, `mustToDate`, `semverCompare`,
//! `mustDateModify`, `filterPEM` (Go and minijinja), `jwkPublicKeyPem`, `rsaDecrypt` and
//! minijinja's arithmetic (`unable to calculate <value> * …`).
//!
//! Run: `cargo test -p esox-tests --test leaks` against the local stack (`scripts/stack.sh up`).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use esox_tests::manifests::fake_store;
use esox_tests::{TestEnv, logs, secret_strings, wait_for};

/// One function under test.
struct Case {
    /// The ExternalSecret's (and the store key's) name.
    name: &'static str,
    /// `None` for the Go engine (ESO's default), `Some("minijinja")`.
    engine: Option<&'static str>,
    /// The data template over `v` (Go: `.v`).
    template: &'static str,
    /// The canary, from a unique token (`{}` is replaced by `canary-<name>-<random>`).
    value: &'static str,
    /// What the Ready message must contain (the function's name).
    names: &'static str,
}

const CASES: &[Case] = &[
    // Go engine (engineVersion v2, ESO's default).
    Case {
        name: "go-fail",
        engine: None,
        template: "{{ fail .v }}",
        value: "{}",
        names: "error calling fail",
    },
    Case {
        name: "go-musttodate",
        engine: None,
        template: "{{ .v | mustToDate \"2006-01-02\" }}",
        value: "2024-13-01{}",
        names: "error calling mustToDate",
    },
    Case {
        name: "go-semvercompare",
        engine: None,
        template: "{{ semverCompare .v \"1.2.3\" }}",
        value: ">= {}",
        names: "error calling semverCompare",
    },
    Case {
        name: "go-mustdatemodify",
        engine: None,
        template: "{{ now | mustDateModify .v }}",
        value: "3{}",
        names: "error calling mustDateModify",
    },
    Case {
        name: "go-semver",
        engine: None,
        template: "{{ semver .v }}",
        value: "1.2.3.{}",
        names: "error calling semver",
    },
    Case {
        name: "go-mustfromjson",
        engine: None,
        template: "{{ .v | mustFromJson }}",
        value: "{\"a\": {}}",
        names: "error calling mustFromJson",
    },
    Case {
        name: "go-mustregexmatch",
        engine: None,
        template: "{{ mustRegexMatch .v \"x\" }}",
        value: "{}(",
        names: "error calling mustRegexMatch",
    },
    Case {
        name: "go-filterpem",
        engine: None,
        template: "{{ .v | filterPEM \"CERTIFICATE\" }}",
        value: "-----BEGIN {}-----\nAAAA\n",
        names: "error calling filterPEM",
    },
    Case {
        name: "go-jwkpublickeypem",
        engine: None,
        template: "{{ .v | jwkPublicKeyPem }}",
        value: "{\"kty\": \"{}\"}",
        names: "error calling jwkPublicKeyPem",
    },
    Case {
        name: "go-pkcs12key",
        engine: None,
        template: "{{ .v | pkcs12key }}",
        value: "{}",
        names: "error calling pkcs12key",
    },
    Case {
        name: "go-rsadecrypt",
        engine: None,
        template: "{{ rsaDecrypt .v \"SHA256\" \"x\" \"y\" }}",
        value: "{}",
        names: "error calling rsaDecrypt",
    },
    Case {
        name: "go-decryptaes",
        engine: None,
        template: "{{ .v | decryptAES \"key\" }}",
        value: "{}",
        names: "error calling decryptAES",
    },
    // minijinja.
    Case {
        name: "jinja-fromjson",
        engine: Some("minijinja"),
        template: "{{ v | fromJson }}",
        value: "{\"a\": {}}",
        names: "fromJson",
    },
    Case {
        name: "jinja-fromyaml",
        engine: Some("minijinja"),
        template: "{{ v | fromYaml }}",
        value: "a: [{}",
        names: "fromYaml",
    },
    Case {
        name: "jinja-b64dec",
        engine: Some("minijinja"),
        template: "{{ v | b64dec }}",
        value: "{}",
        names: "b64dec",
    },
    Case {
        name: "jinja-int",
        engine: Some("minijinja"),
        template: "{{ v | int }}",
        value: "{}",
        names: "at \"int\"",
    },
    Case {
        name: "jinja-filterpem",
        engine: Some("minijinja"),
        template: "{{ v | filterPEM('CERTIFICATE') }}",
        value: "-----BEGIN {}-----\nAAAA\n",
        names: "filterPEM",
    },
    Case {
        name: "jinja-pkcs12key",
        engine: Some("minijinja"),
        template: "{{ v | pkcs12key }}",
        value: "{}",
        names: "pkcs12key",
    },
    Case {
        name: "jinja-overflow",
        engine: Some("minijinja"),
        template: "{{ (v | int) * 999999999999999999999999999999 }}",
        // Digits only, so `int` parses it and the multiplication fails.
        value: "#",
        names: "unable to calculate",
    },
];

/// The ExternalSecret of one case: `v` from the store key of the same name, one data
/// template.
fn external_secret(name: &str, engine: Option<&str>, template: &str) -> String {
    let engine = engine
        .map(|e| format!("      engineVersion: {e}\n"))
        .unwrap_or_default();
    format!(
        r#"apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {{name: {name}}}
spec:
  refreshInterval: 1h
  secretStoreRef: {{name: store}}
  target:
    template:
{engine}      data:
        out: {template}
  data:
  - {{secretKey: v, remoteRef: {{key: {name}}}}}
"#,
        template = serde_json::to_string(template).unwrap(),
    )
}

/// The forms of a canary that must appear nowhere.
fn forms(canary: &str, token: &str) -> Vec<String> {
    vec![
        token.to_string(),
        canary.to_string(),
        STANDARD.encode(canary),
        STANDARD.encode(token),
    ]
}

fn assert_clean(what: &str, text: &str, forms: &[String]) {
    for f in forms {
        assert!(!text.contains(f.as_str()), "{what} holds {f:?}: {text}");
    }
}

#[tokio::test]
async fn failing_template_functions_name_the_function_never_the_value() {
    let env = TestEnv::new("leaks").await;
    let run: u32 = rand::random::<u32>() % 1_000_000;
    // (case, token, canary)
    let canaries: Vec<(&Case, String, String)> = CASES
        .iter()
        .map(|c| {
            let token = if c.value == "#" {
                format!("9{run:06}{}", c.name.len() + 100_000)
            } else {
                format!("canary-{}-{run}", c.name)
            };
            let canary = if c.value == "#" {
                token.clone()
            } else {
                c.value.replace("{}", &token)
            };
            (c, token, canary)
        })
        .collect();
    let entries: Vec<(&str, &str)> = canaries
        .iter()
        .map(|(c, _, canary)| (c.name, canary.as_str()))
        .collect();
    env.apply(&fake_store("store", &entries)).await.unwrap();
    for (c, _, _) in &canaries {
        env.apply(&external_secret(c.name, c.engine, c.template))
            .await
            .unwrap();
    }

    let mut messages = Vec::new();
    for (c, _, _) in &canaries {
        let msg = env.wait_ready(c.name, "False", "SecretSyncedError").await;
        messages.push(msg);
    }
    // Let retries run, so every event and log line a failure makes is there.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let logs = logs();
    let mut failures = Vec::new();
    for ((c, token, canary), msg) in canaries.iter().zip(&messages) {
        let forms = forms(canary, token);
        let check = |text: &str| forms.iter().all(|f| !text.contains(f.as_str()));
        if !msg.contains(c.names) {
            failures.push(format!(
                "{}: the message does not name {:?}: {msg}",
                c.name, c.names
            ));
        }
        if !check(msg) {
            failures.push(format!(
                "{}: the Ready message holds the value: {msg}",
                c.name
            ));
        }
        let events = wait_for(Duration::from_secs(10), "a Warning event", || async {
            let e = env.events_for(c.name).await;
            (!e.is_empty()).then_some(e)
        })
        .await
        .unwrap();
        for e in &events {
            if !check(e) {
                failures.push(format!("{}: an event holds the value: {e}", c.name));
            }
        }
        let es = env.external_secrets().get(c.name).await.unwrap();
        let status = serde_json::to_string(&es.status).unwrap();
        if !check(&status) {
            failures.push(format!("{}: the status holds the value: {status}", c.name));
        }
        for line in logs.lines().filter(|l| !check(l)) {
            failures.push(format!("{}: a log line holds the value: {line}", c.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} leaks:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A Secret that synced keeps its content when the template starts failing over the value
/// (ESO's keep-last-good), and the failure shows nothing of the value.
#[tokio::test]
async fn a_synced_secret_is_kept_when_its_template_starts_failing() {
    let env = TestEnv::new("leaks-keep").await;
    let token = format!("canary-keep-{}", rand::random::<u32>() % 1_000_000);
    env.apply(&fake_store("store", &[("keep", &token)]))
        .await
        .unwrap();
    env.apply(&external_secret("keep", None, "{{ .v | b64enc }}"))
        .await
        .unwrap();
    let good = STANDARD.encode(&token);
    env.wait_value("keep", "out", &good).await;

    env.apply(&external_secret(
        "keep",
        None,
        "{{ .v | mustToDate \"2006-01-02\" }}",
    ))
    .await
    .unwrap();
    let msg = env.wait_ready("keep", "False", "SecretSyncedError").await;
    assert!(msg.contains("error calling mustToDate"), "{msg}");
    let forms = forms(&token, &token);
    assert_clean("the Ready message", &msg, &forms);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = env.secrets().get("keep").await.unwrap();
    assert_eq!(
        secret_strings(&s).get("out").map(String::as_str),
        Some(good.as_str()),
        "the last good content is kept"
    );
    for e in env.events_for("keep").await {
        assert_clean("an event", &e, &forms);
    }
    assert_clean("the log", &logs(), &forms);
}
