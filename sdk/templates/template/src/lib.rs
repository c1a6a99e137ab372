//! A template engine: named templates over secret data.
//!
//! This one replaces `${key}` with the key's value.

use esox_plugin_sdk::template::{Entry, PluginError, Rendered, Scope, Template};

/// Renders one template (callable natively in tests).
pub fn render_one(text: &str, context: &[Entry]) -> Result<String, String> {
    let mut out = text.to_string();
    for e in context {
        let value = std::str::from_utf8(&e.value).map_err(|_| format!("{} is not text", e.key))?;
        out = out.replace(&format!("${{{}}}", e.key), value);
    }
    Ok(out)
}

/// Renders every template over `context`; each succeeds or fails on its own.
pub fn render(templates: Vec<Template>, context: Vec<Entry>, _options: &str) -> Vec<Rendered> {
    templates
        .into_iter()
        .map(|t| Rendered {
            output: match t.scope {
                Scope::Values => render_one(&t.text, &context)
                    .map(|v| {
                        vec![Entry {
                            key: t.name.clone(),
                            value: v.into_bytes(),
                        }]
                    })
                    .map_err(|m| PluginError {
                        message: m,
                        key: Some(t.name.clone()),
                    }),
                Scope::KeysAndValues => Err(PluginError {
                    message: "KeysAndValues is not supported by this engine".into(),
                    key: Some(t.name.clone()),
                }),
            },
            name: t.name,
        })
        .collect()
}

esox_plugin_sdk::template!(render);

#[cfg(test)]
mod tests {
    use super::*;
    use esox_plugin_sdk::template::entry;

    #[test]
    fn replaces_keys() {
        let ctx = [entry("user", b"app")];
        assert_eq!(render_one("hi ${user}", &ctx).unwrap(), "hi app");
        let t = Template {
            name: "greeting".into(),
            text: "hi ${user}".into(),
            scope: Scope::KeysAndValues,
        };
        let out = render(vec![t], ctx.to_vec(), "");
        assert_eq!(
            out[0].output.as_ref().unwrap_err().key.as_deref(),
            Some("greeting")
        );
    }
}
