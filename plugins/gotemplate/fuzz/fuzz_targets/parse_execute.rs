//! Parses and executes arbitrary templates over arbitrary data: neither the parser nor the
//! evaluator may panic, loop without bound or grow without bound, whatever the input.
//! The first line of the input is the template's data (`key=value;…`), the rest its text.
#![no_main]

use esox_plugin_gotemplate::{Options, data, parse};
use esox_plugin_sdk::template::Entry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let (head, tpl) = text.split_once('\n').unwrap_or(("", text));
    let context: Vec<Entry> = head
        .split(';')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| Entry {
            key: k.to_string(),
            value: v.as_bytes().to_vec(),
        })
        .collect();
    let root = data(&context);
    if let Ok(t) = parse("fuzz", tpl, &Options::default()) {
        let _ = t.execute(&root);
    }
    let custom = Options {
        left: "[[".into(),
        right: "]]".into(),
        ..Options::default()
    };
    if let Ok(t) = parse("fuzz", tpl, &custom) {
        let _ = t.execute(&root);
    }
});
