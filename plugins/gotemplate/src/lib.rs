//! ESO's template engine (`engineVersion: v2`, the default): Go `text/template` with
//! `missingkey=error`, sprig's functions and ESO's own, inside Wasm.
//!
//! ESO parses each template key on its own (`template.New(key).Parse(text)`) and executes it
//! over the secret data as a `map[string]string`; so does this engine, so `{{ .db_user }}`,
//! `{{ index . "db-user" }}` and `{{ .p12 | b64dec | pkcs12key }}` render byte for byte as they
//! do in ESO. The engine is written here rather than taken from a crate: no maintained Rust
//! crate implements text/template's semantics (pipelines, variables, Go's fmt, sprig).
//!
//! Options (JSON): `{"leftDelim": "[[", "rightDelim": "]]"}`, ESO's
//! `--template-left-delimiter`/`--template-right-delimiter`.

pub mod exec;
pub mod fmt;
pub mod funcs;
pub mod lex;
pub mod limits;
pub mod parse;
pub mod time;
pub mod value;

use std::collections::BTreeMap;

use esox_plugin_sdk::template::{Entry, PluginError, Rendered, Scope, Template};

use value::{Map, Value};

/// A parse error: Go reports the line only.
#[derive(Debug, Clone)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// Delimiters (ESO's flags), and whether this call renames keys.
#[derive(Debug, Clone)]
pub struct Options {
    pub left: String,
    pub right: String,
    /// `dataFrom[].rewrite[].transform`: each template is the same key template, its name is
    /// the key, and its data is `{"value": key}`; ESO runs these without `missingkey=error`.
    pub key_transform: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            left: "{{".into(),
            right: "}}".into(),
            key_transform: false,
        }
    }
}

impl Options {
    /// Reads the options JSON; empty delimiters mean the defaults, as in Go.
    pub fn from_json(s: &str) -> Result<Options, String> {
        let mut o = Options::default();
        if s.trim().is_empty() {
            return Ok(o);
        }
        let v: serde_json::Value =
            serde_json::from_str(s).map_err(|e| format!("invalid engine options: {e}"))?;
        if let Some(l) = v.get("leftDelim").and_then(|x| x.as_str())
            && !l.is_empty()
        {
            o.left = l.to_string();
        }
        if let Some(r) = v.get("rightDelim").and_then(|x| x.as_str())
            && !r.is_empty()
        {
            o.right = r.to_string();
        }
        o.key_transform = v.get("keyTransform").and_then(|x| x.as_bool()) == Some(true);
        Ok(o)
    }
}

/// A parsed template, ready to execute many times.
pub struct Compiled {
    name: String,
    src: String,
    set: parse::Set,
}

/// `template.New(name).Option("missingkey=error").Funcs(…).Delims(…).Parse(text)`.
pub fn parse(name: &str, text: &str, opts: &Options) -> Result<Compiled, String> {
    let fail = |e: ParseError| format!("template: {name}:{}: {}", e.line, e.message);
    let items = lex::Lexer::lex(text, &opts.left, &opts.right).map_err(fail)?;
    let mut set = parse::Set::new();
    let is_func = |n: &str| funcs::lookup(n).is_some();
    parse::Parser::parse(items, name, &is_func, &mut set).map_err(fail)?;
    Ok(Compiled {
        name: name.to_string(),
        src: text.to_string(),
        set,
    })
}

impl Compiled {
    /// Executes over `data` (ESO's `map[string]string`).
    pub fn execute(&self, data: &Value) -> Result<Vec<u8>, String> {
        self.execute_with(data, true)
    }

    /// Executes with or without `missingkey=error`.
    pub fn execute_with(&self, data: &Value, missing_key_error: bool) -> Result<Vec<u8>, String> {
        let mut st = exec::State::new(&self.set, &self.name, &self.src);
        st.missing_key_error = missing_key_error;
        st.execute(&self.name, data.clone())?;
        Ok(st.out)
    }
}

/// The template's data: every key as a string, in a `map[string]string`.
pub fn data(context: &[Entry]) -> Value {
    let entries: BTreeMap<String, Value> = context
        .iter()
        .map(|e| (e.key.clone(), Value::str(&e.value)))
        .collect();
    Value::Map(std::rc::Rc::new(std::cell::RefCell::new(Map {
        entries,
        of_strings: true,
    })))
}

/// Renders one template text over `data`, as ESO's `execute` does.
pub fn render_text(
    name: &str,
    text: &str,
    data: &Value,
    opts: &Options,
) -> Result<Vec<u8>, String> {
    let t = parse(name, text, opts)
        .map_err(|e| format!("unable to parse template at key {name}: {e}"))?;
    t.execute(data)
}

/// Renders every template over `context`; each template succeeds or fails on its own.
pub fn render(templates: Vec<Template>, context: Vec<Entry>, options: &str) -> Vec<Rendered> {
    let opts = match Options::from_json(options) {
        Ok(o) => o,
        Err(m) => {
            return templates
                .into_iter()
                .map(|t| Rendered {
                    output: Err(PluginError {
                        message: m.clone(),
                        key: Some(t.name.clone()),
                    }),
                    name: t.name,
                })
                .collect();
        }
    };
    if opts.key_transform {
        // Every key of a rewrite comes with the same template text: parse it once.
        let mut parsed: Option<(String, Result<Compiled, String>)> = None;
        return templates
            .into_iter()
            .map(|t| Rendered {
                output: transform_key(&t, &mut parsed),
                name: t.name,
            })
            .collect();
    }
    let root = data(&context);
    templates
        .into_iter()
        .map(|t| {
            let output = render_one(&t, &root, &opts);
            Rendered {
                name: t.name,
                output,
            }
        })
        .collect()
}

/// ESO's `RewriteTransform`: `template.New("transform").Funcs(…).Parse(text)` executed over
/// `{"value": key}`; the output is the new key.
fn transform_key(
    t: &Template,
    parsed: &mut Option<(String, Result<Compiled, String>)>,
) -> Result<Vec<Entry>, PluginError> {
    let err = |message: String| PluginError {
        message,
        key: Some(t.name.clone()),
    };
    if parsed.as_ref().is_none_or(|(text, _)| *text != t.text) {
        // ESO parses transforms with the default delimiters, whatever its flags say.
        *parsed = Some((
            t.text.clone(),
            parse("transform", &t.text, &Options::default()),
        ));
    }
    let (_, compiled) = parsed.as_ref().expect("parsed above");
    let compiled = compiled
        .as_ref()
        .map_err(|e| err(format!("could not parse template: {e}")))?;
    let value = data(&[Entry {
        key: "value".into(),
        value: t.name.as_bytes().to_vec(),
    }]);
    let out = compiled
        .execute_with(&value, false)
        .map_err(|e| err(format!("could not execute template: {e}")))?;
    Ok(vec![Entry {
        key: t.name.clone(),
        value: out,
    }])
}

fn render_one(t: &Template, root: &Value, opts: &Options) -> Result<Vec<Entry>, PluginError> {
    let err = |m: String| PluginError {
        message: format!("unable to execute template at key {}: {m}", t.name),
        key: Some(t.name.clone()),
    };
    let out = render_text(&t.name, &t.text, root, opts).map_err(err)?;
    match t.scope {
        Scope::Values => Ok(vec![Entry {
            key: t.name.clone(),
            value: out,
        }]),
        Scope::KeysAndValues => {
            esox_plugin_sdk::template::keys_and_values(&out).map_err(|m| PluginError {
                message: m,
                key: Some(t.name.clone()),
            })
        }
    }
}

esox_plugin_sdk::template!(render);

#[cfg(test)]
mod tests;
