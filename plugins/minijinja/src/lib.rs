//! The minijinja template engine, inside Wasm, with the helpers ESO users expect.
//!
//! Selected with `spec.target.template.engineVersion: minijinja`. Every fetched key is a
//! top-level variable (`{{ db_user }}`), and `data` is the whole map for keys that are not
//! identifiers (`{{ data["db-user"] }}`). Undefined variables are errors, as ESO's
//! `missingkey=error`. Filters (Jinja order: the piped value comes first):
//! `b64enc b64dec fromJson toJson fromYaml toYaml sha256sum pkcs12key pkcs12keyPass(pw)
//! pkcs12cert pkcs12certPass(pw) filterPEM(type) filterCertChain(type)` besides minijinja's
//! built-ins (`upper lower replace trim title indent join default ...`).

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use esox_plugin_sdk::template::{Entry, PluginError, Rendered, Scope, Template};
use minijinja::value::{Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior};

/// Renders every template over `context`; each template succeeds or fails on its own.
pub fn render(templates: Vec<Template>, context: Vec<Entry>, _options: &str) -> Vec<Rendered> {
    let env = environment();
    let mut vars: BTreeMap<String, Value> = BTreeMap::new();
    for e in &context {
        vars.insert(e.key.clone(), bytes_value(&e.value));
    }
    let mut root = vars.clone();
    root.insert("data".into(), Value::from(vars));
    let root = Value::from(root);
    templates
        .into_iter()
        .map(|t| {
            let output = render_one(&env, &t, &root, &context);
            Rendered {
                name: t.name,
                output,
            }
        })
        .collect()
}

fn render_one(
    env: &Environment<'_>,
    t: &Template,
    root: &Value,
    context: &[Entry],
) -> Result<Vec<Entry>, PluginError> {
    let text = env
        .render_str(&t.text, root)
        .map_err(|e| template_error(&t.name, &t.text, &e, context))?;
    match t.scope {
        Scope::Values => Ok(vec![Entry {
            key: t.name.clone(),
            value: text.into_bytes(),
        }]),
        Scope::KeysAndValues => esox_plugin_sdk::template::keys_and_values(text.as_bytes())
            .map_err(|message| PluginError {
                message,
                key: Some(t.name.clone()),
            }),
    }
}

/// What replaces a value that an error message would have repeated.
pub const REDACTED: &str = "<redacted>";

/// Values shorter than this are not searched for in messages (they would match too much).
const MIN_REDACTED_LEN: usize = 4;

/// The longest template excerpt an error quotes.
const MAX_EXCERPT: usize = 80;

/// The error's kind, detail, line and the failing expression of the template (which names the
/// filter or function: `at "v | int"`), never a value.
///
/// minijinja's `detail` mostly describes the template (undefined names, unknown filters,
/// syntax) and our filters' details name the filter and the problem only. What minijinja
/// quotes of values is removed: the operands of an arithmetic error (`unable to calculate
/// 3 * 4`), and, as a net under every detail, any context value it still contains (raw or
/// quoted).
fn template_error(name: &str, text: &str, e: &Error, context: &[Entry]) -> PluginError {
    let mut message = format!("unable to execute template at key {name}: {}", e.kind());
    if let Some(d) = e.detail() {
        message.push_str(": ");
        if d.starts_with("unable to calculate") {
            message.push_str("unable to calculate: the result overflows or is undefined");
        } else {
            message.push_str(d);
        }
    }
    if let Some(excerpt) = e
        .range()
        .and_then(|r| text.get(r))
        .filter(|x| !x.is_empty() && x.len() <= MAX_EXCERPT)
    {
        message.push_str(&format!(" at {excerpt:?}"));
    }
    if let Some(line) = e.line() {
        message.push_str(&format!(" (line {line})"));
    }
    PluginError {
        message: scrub(message, context),
        key: Some(name.to_string()),
    }
}

/// `message` without any context value, raw, trimmed or quoted.
fn scrub(mut message: String, context: &[Entry]) -> String {
    for e in context {
        let text = String::from_utf8_lossy(&e.value);
        for form in [&*text, text.trim()] {
            if form.len() < MIN_REDACTED_LEN {
                continue;
            }
            let quoted = format!("{form:?}");
            for needle in [&quoted[1..quoted.len() - 1], form] {
                if message.contains(needle) {
                    message = message.replace(needle, REDACTED);
                }
            }
        }
    }
    message
}

/// Secret values are bytes; most are text. Text becomes a string, anything else bytes.
fn bytes_value(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) => Value::from(s),
        Err(_) => Value::from_bytes(b.to_vec()),
    }
}

fn input_bytes(v: &Value) -> Result<Vec<u8>, Error> {
    if let Some(b) = v.as_bytes() {
        return Ok(b.to_vec());
    }
    if let Some(s) = v.as_str() {
        return Ok(s.as_bytes().to_vec());
    }
    Err(Error::new(
        ErrorKind::InvalidOperation,
        format!("expected a string or bytes, got {}", v.kind()),
    ))
}

fn failed(e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::InvalidOperation, e.to_string())
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Debug info would copy the template's variables (secret values) into every error.
    env.set_debug(false);
    // Secret files are not HTML: never escape.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_keep_trailing_newline(true);
    env.add_filter("b64enc", |v: Value| -> Result<String, Error> {
        Ok(STANDARD.encode(input_bytes(&v)?))
    });
    env.add_filter("b64dec", |v: Value| -> Result<Value, Error> {
        let raw = input_bytes(&v)?;
        let decoded = STANDARD
            .decode(raw.trim_ascii())
            .map_err(|_| failed("b64dec: input is not valid base64"))?;
        Ok(bytes_value(&decoded))
    });
    env.add_filter("fromJson", |v: Value| -> Result<Value, Error> {
        let raw = input_bytes(&v)?;
        let json: serde_json::Value = serde_json::from_slice(&raw).map_err(|e| {
            failed(format!(
                "fromJson: invalid JSON at line {} column {}",
                e.line(),
                e.column()
            ))
        })?;
        Ok(Value::from_serialize(&json))
    });
    env.add_filter("toJson", |v: Value| -> Result<String, Error> {
        serde_json::to_string(&v).map_err(|_| failed("toJson: value cannot be encoded"))
    });
    env.add_filter("fromYaml", |v: Value| -> Result<Value, Error> {
        let raw = input_bytes(&v)?;
        let y: serde_yaml::Value = serde_yaml::from_slice(&raw).map_err(|e| {
            failed(format!(
                "fromYaml: {}",
                esox_plugin_sdk::template::yaml_error_position(&e)
            ))
        })?;
        Ok(Value::from_serialize(&y))
    });
    env.add_filter("toYaml", |v: Value| -> Result<String, Error> {
        let s = serde_yaml::to_string(&v).map_err(|_| failed("toYaml: value cannot be encoded"))?;
        Ok(s.trim_end_matches('\n').to_string())
    });
    env.add_filter("sha256sum", |v: Value| -> Result<String, Error> {
        use sha2::Digest;
        Ok(hex::encode(sha2::Sha256::digest(input_bytes(&v)?)))
    });
    env.add_filter("pkcs12key", |v: Value| -> Result<String, Error> {
        esox_pem::pkcs12_key(&input_bytes(&v)?, "").map_err(|e| failed(format!("pkcs12key: {e}")))
    });
    env.add_filter(
        "pkcs12keyPass",
        |v: Value, pass: String| -> Result<String, Error> {
            esox_pem::pkcs12_key(&input_bytes(&v)?, &pass)
                .map_err(|e| failed(format!("pkcs12keyPass: {e}")))
        },
    );
    env.add_filter("pkcs12cert", |v: Value| -> Result<String, Error> {
        esox_pem::pkcs12_cert(&input_bytes(&v)?, "").map_err(|e| failed(format!("pkcs12cert: {e}")))
    });
    env.add_filter(
        "pkcs12certPass",
        |v: Value, pass: String| -> Result<String, Error> {
            esox_pem::pkcs12_cert(&input_bytes(&v)?, &pass)
                .map_err(|e| failed(format!("pkcs12certPass: {e}")))
        },
    );
    env.add_filter(
        "filterPEM",
        |v: Value, kind: String| -> Result<String, Error> {
            let raw = input_bytes(&v)?;
            esox_pem::pem::filter(&kind, &String::from_utf8_lossy(&raw))
                .map_err(|e| failed(format!("filterPEM: {e}")))
        },
    );
    env.add_filter(
        "filterCertChain",
        |v: Value, kind: String| -> Result<String, Error> {
            let raw = input_bytes(&v)?;
            esox_pem::chain::filter(&kind, &String::from_utf8_lossy(&raw))
                .map_err(|e| failed(format!("filterCertChain: {e}")))
        },
    );
    // `string` on bytes would print a byte list; make it the text users expect.
    env.add_filter("str", |v: Value| -> Result<String, Error> {
        match v.kind() {
            ValueKind::Bytes => Ok(String::from_utf8_lossy(&input_bytes(&v)?).into_owned()),
            _ => Ok(v.to_string()),
        }
    });
    env
}

esox_plugin_sdk::template!(render);

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(pairs: &[(&str, &str)]) -> Vec<Entry> {
        pairs
            .iter()
            .map(|(k, v)| Entry {
                key: k.to_string(),
                value: v.as_bytes().to_vec(),
            })
            .collect()
    }

    fn one(text: &str, scope: Scope, context: &[(&str, &str)]) -> Result<Vec<Entry>, PluginError> {
        let t = Template {
            name: "out".into(),
            text: text.into(),
            scope,
        };
        render(vec![t], ctx(context), "{}").remove(0).output
    }

    fn text(r: Result<Vec<Entry>, PluginError>) -> String {
        String::from_utf8(r.unwrap().remove(0).value).unwrap()
    }

    #[test]
    fn renders_the_seed_properties_file() {
        let out = one(
            "DB_USERNAME={{ db_user }}\nDB_PASSWORD={{ db_pass }}\nCONNECTION_STRING=jdbc:postgresql://{{ db_host }}:{{ db_port }}/main_db\n",
            Scope::Values,
            &[
                ("db_user", "app"),
                ("db_pass", "s3cr3t"),
                ("db_host", "db.example.com"),
                ("db_port", "5432"),
            ],
        );
        assert_eq!(
            text(out),
            "DB_USERNAME=app\nDB_PASSWORD=s3cr3t\nCONNECTION_STRING=jdbc:postgresql://db.example.com:5432/main_db\n"
        );
    }

    #[test]
    fn helpers_and_dashed_keys() {
        let out = one(
            "{{ data['db-user'] | upper }} {{ blob | b64dec }} {{ (js | fromJson).a.b }} {{ 'x' | b64enc }} {{ 'abc' | sha256sum }}",
            Scope::Values,
            &[
                ("db-user", "app"),
                ("blob", "aGk="),
                ("js", r#"{"a":{"b":7}}"#),
            ],
        );
        assert_eq!(
            text(out),
            "APP hi 7 eA== ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn keys_and_values_parse_yaml() {
        let out = one(
            "{% for k in ['a','b'] %}{{ k }}_key: {{ v }}\n{% endfor %}",
            Scope::KeysAndValues,
            &[("v", "1")],
        )
        .unwrap();
        let keys: Vec<_> = out.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["a_key", "b_key"]);
    }

    #[test]
    fn undefined_is_an_error_naming_the_variable_not_values() {
        let err = one("{{ nope }}", Scope::Values, &[("pw", "hunter2")]).unwrap_err();
        assert!(err.message.contains("undefined"), "{}", err.message);
        assert!(!err.message.contains("hunter2"));
        assert_eq!(err.key.as_deref(), Some("out"));
        let err = one("{{ pw | fromJson }}", Scope::Values, &[("pw", "hunter2")]).unwrap_err();
        assert!(!err.message.contains("hunter2"), "{}", err.message);
    }

    /// The canary's marker: no error may contain it, in any case, whole or in part.
    const MARK: &str = "zq9x";

    const CANARIES: &[&str] = &[
        "canary-zq9x-value",
        "12345678909876",
        "{\"a\": zq9x}",
        "a: [zq9x",
        "-----BEGIN ZQ9X-----\nzq9x\n",
        "-----BEGIN CERTIFICATE-----\nzq9x\n-----END CERTIFICATE-----\n",
        "zq9x%s%d",
    ];

    const FILTERS: &[&str] = &[
        "b64enc",
        "b64dec",
        "fromJson",
        "toJson",
        "fromYaml",
        "toYaml",
        "sha256sum",
        "pkcs12key",
        "pkcs12keyPass",
        "pkcs12cert",
        "pkcs12certPass",
        "filterPEM",
        "filterCertChain",
        "str",
        "abs",
        "attr",
        "batch",
        "bool",
        "capitalize",
        "count",
        "default",
        "dictsort",
        "escape",
        "first",
        "float",
        "groupby",
        "indent",
        "int",
        "items",
        "join",
        "last",
        "length",
        "lines",
        "list",
        "lower",
        "map",
        "max",
        "min",
        "pprint",
        "reject",
        "rejectattr",
        "replace",
        "reverse",
        "round",
        "safe",
        "select",
        "selectattr",
        "slice",
        "sort",
        "split",
        "string",
        "sum",
        "title",
        "tojson",
        "trim",
        "unique",
        "upper",
        "urlencode",
        "chain",
        "zip",
        "format",
    ];

    fn leaked(message: &str, canary: &str) -> bool {
        message.to_lowercase().contains(MARK)
            || message.contains(&STANDARD.encode(canary))
            || message.contains(&hex::encode(canary))
            || canary
                .lines()
                .any(|l| l.len() >= 8 && message.contains(l.trim()))
    }

    /// Every filter (ours and minijinja's), test and operator with a secret value as input
    /// and as argument: whatever fails names the filter or expression, never the value.
    #[test]
    fn no_filter_error_carries_its_data() {
        let mut texts: Vec<String> = Vec::new();
        for f in FILTERS {
            for t in [
                "{{ c | F }}",
                "{{ c | F(c) }}",
                "{{ c | F('x') }}",
                "{{ c | F(3) }}",
                "{{ 'x' | F(c) }}",
                "{{ 3 | F(c) }}",
                "{{ [c] | F(c) }}",
                "{{ c | F(c, c) }}",
                "{{ c | b64enc | F }}",
                "{{ c | b64dec | F }}",
            ] {
                texts.push(t.replace('F', f));
            }
        }
        for t in [
            "{{ c * 3 }}",
            "{{ c + 3 }}",
            "{{ c - 3 }}",
            "{{ c / 0 }}",
            "{{ (c | int) * 999999999999999999999999999999 }}",
            "{{ (c | int) // 0 }}",
            "{{ (c | int) ** 99999 }}",
            "{{ c is divisibleby(c) }}",
            "{{ c is startingwith(3) }}",
            "{{ c() }}",
            "{{ c.x }}",
            "{{ c[3] }}",
            "{{ range(c) }}",
            "{{ dict(c) }}",
            "{{ c ~ nope }}",
            "{{ (c | fromJson).x }}",
            "{% for a, b in c %}{% endfor %}",
            "{{ c | format(c) }}",
            "{{ c % 3 }}",
        ] {
            texts.push(t.to_string());
        }
        let mut failures = 0;
        let mut leaks = Vec::new();
        for canary in CANARIES {
            for text in &texts {
                if let Err(e) = one(text, Scope::Values, &[("c", canary)]) {
                    failures += 1;
                    if leaked(&e.message, canary) {
                        leaks.push(format!("{text} over {canary:?}: {}", e.message));
                    }
                }
            }
        }
        assert!(
            failures > 300,
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
    fn errors_name_the_failing_expression() {
        let err = one("{{ v | int }}", Scope::Values, &[("v", "canary-zq9x")]).unwrap_err();
        assert!(err.message.contains("at \"int\""), "{}", err.message);
        let err = one("{{ v | fromJson }}", Scope::Values, &[("v", "canary-zq9x")]).unwrap_err();
        assert!(err.message.contains("fromJson"), "{}", err.message);
        let err = one(
            "{{ (v | int) * 999999999999999999999999999999 }}",
            Scope::Values,
            &[("v", "9123456789")],
        )
        .unwrap_err();
        assert!(!err.message.contains("9123456789"), "{}", err.message);
        assert!(
            err.message.contains("unable to calculate"),
            "{}",
            err.message
        );
    }

    #[test]
    fn bad_templates_fail_alone() {
        let t = |n: &str, text: &str| Template {
            name: n.into(),
            text: text.into(),
            scope: Scope::Values,
        };
        let out = render(vec![t("bad", "{{ x "), t("good", "ok")], vec![], "{}");
        assert!(out[0].output.is_err());
        assert_eq!(out[1].output.as_ref().unwrap()[0].value, b"ok");
    }
}
