//! sprig's JSON functions (sprig's `defaults.go`): `fromJson`/`toJson` swallow these errors, their
//! `must` forms report them.

use crate::funcs::{FnResult, call_err};
use crate::value::{Value, to_json};

pub(super) fn from_json(b: &[u8]) -> FnResult {
    serde_json::from_slice::<serde_json::Value>(b)
        .map(|j| Value::from_json(&j))
        .map_err(|e| {
            call_err(format!(
                "invalid JSON at line {} column {}",
                e.line(),
                e.column()
            ))
        })
}

pub(super) fn must_json(v: &Value, esc: bool, indent: Option<&str>) -> FnResult {
    to_json(v, esc, indent)
        .map(Value::str)
        .ok_or_else(|| call_err("json: unsupported value: NaN or Inf"))
}
