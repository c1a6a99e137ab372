//! sprig's regular expression functions (sprig's `regex.go`): Go's RE2 syntax, which Rust's regex
//! crate implements.

use crate::funcs::{FnError, FnResult, call_err, i_arg, str_list, t_arg};
use crate::value::Value;

pub(super) fn re(v: &Value) -> Result<regex::Regex, FnError> {
    let pat = t_arg(v)?;
    regex::Regex::new(&pat).map_err(|e| {
        let msg = e.to_string();
        let last = msg
            .lines()
            .last()
            .unwrap_or("invalid regular expression")
            .trim();
        call_err(format!("error parsing regexp: {last}"))
    })
}

pub(super) fn regex_find_all(a: Vec<Value>) -> FnResult {
    let s = t_arg(&a[1])?;
    let n = i_arg(&a[2])?;
    let it = re(&a[0])?;
    let found: Vec<&str> = it
        .find_iter(&s)
        .take(if n < 0 { usize::MAX } else { n as usize })
        .map(|m| m.as_str())
        .collect();
    Ok(str_list(found))
}

pub(super) fn regex_split(a: Vec<Value>) -> FnResult {
    let s = t_arg(&a[1])?;
    let n = i_arg(&a[2])?;
    let r = re(&a[0])?;
    if n == 0 {
        return Ok(Value::Nil);
    }
    let parts: Vec<&str> = if n < 0 {
        r.split(&s).collect()
    } else {
        r.splitn(&s, n as usize).collect()
    };
    Ok(str_list(parts))
}

pub(super) fn regex_find(a: Vec<Value>) -> FnResult {
    let s = t_arg(&a[1])?;
    Ok(Value::str(
        re(&a[0])?.find(&s).map(|m| m.as_str()).unwrap_or(""),
    ))
}

pub(super) fn regex_replace_all(a: Vec<Value>) -> FnResult {
    let (s, r) = (t_arg(&a[1])?, t_arg(&a[2])?);
    Ok(Value::str(
        re(&a[0])?.replace_all(&s, r.as_str()).into_owned(),
    ))
}

pub(super) fn regex_replace_literal(a: Vec<Value>) -> FnResult {
    let (s, r) = (t_arg(&a[1])?, t_arg(&a[2])?);
    Ok(Value::str(
        re(&a[0])?.replace_all(&s, regex::NoExpand(&r)).into_owned(),
    ))
}
