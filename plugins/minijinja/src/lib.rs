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
            let output = render_one(&env, &t, &root);
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
) -> Result<Vec<Entry>, PluginError> {
    let text = env
        .render_str(&t.text, root)
        .map_err(|e| template_error(&t.name, &e))?;
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

/// The error's kind, detail and line. minijinja's `detail` describes the template (undefined
/// names, unknown filters, syntax); it does not quote values.
fn template_error(name: &str, e: &Error) -> PluginError {
    let mut message = format!("unable to execute template at key {name}: {}", e.kind());
    if let Some(d) = e.detail() {
        message.push_str(": ");
        message.push_str(d);
    }
    if let Some(line) = e.line() {
        message.push_str(&format!(" (line {line})"));
    }
    PluginError {
        message,
        key: Some(name.to_string()),
    }
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
        esox_pem::pkcs12_key(&input_bytes(&v)?, "").map_err(failed)
    });
    env.add_filter(
        "pkcs12keyPass",
        |v: Value, pass: String| -> Result<String, Error> {
            esox_pem::pkcs12_key(&input_bytes(&v)?, &pass).map_err(failed)
        },
    );
    env.add_filter("pkcs12cert", |v: Value| -> Result<String, Error> {
        esox_pem::pkcs12_cert(&input_bytes(&v)?, "").map_err(failed)
    });
    env.add_filter(
        "pkcs12certPass",
        |v: Value, pass: String| -> Result<String, Error> {
            esox_pem::pkcs12_cert(&input_bytes(&v)?, &pass).map_err(failed)
        },
    );
    env.add_filter(
        "filterPEM",
        |v: Value, kind: String| -> Result<String, Error> {
            let raw = input_bytes(&v)?;
            esox_pem::pem::filter(&kind, &String::from_utf8_lossy(&raw)).map_err(failed)
        },
    );
    env.add_filter(
        "filterCertChain",
        |v: Value, kind: String| -> Result<String, Error> {
            let raw = input_bytes(&v)?;
            esox_pem::chain::filter(&kind, &String::from_utf8_lossy(&raw)).map_err(failed)
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
