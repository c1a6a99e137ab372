//! sprig's dict functions (sprig's `dict.go`). Maps are shared references, so `set` and `merge`
//! change them in place; `deepCopy` makes a new one.

use std::collections::BTreeMap;

use crate::funcs::{FnResult, call_err, d_arg, is_empty, new_map, strval, t_arg};
use crate::value::{Value, text};

pub(super) fn deep_copy(v: &Value) -> Value {
    match v {
        Value::List(l) => Value::list(l.iter().map(deep_copy).collect()),
        Value::Map(m) => {
            let m = m.borrow();
            let copy = crate::value::Map {
                entries: m
                    .entries
                    .iter()
                    .map(|(k, v)| (k.clone(), deep_copy(v)))
                    .collect(),
                of_strings: m.of_strings,
            };
            Value::Map(std::rc::Rc::new(std::cell::RefCell::new(copy)))
        }
        other => other.clone(),
    }
}

pub(super) fn dict(a: Vec<Value>) -> FnResult {
    let mut m = BTreeMap::new();
    let mut it = a.into_iter();
    while let Some(k) = it.next() {
        let key = text(&strval(&k)).into_owned();
        m.insert(key, it.next().unwrap_or_else(|| Value::str("")));
    }
    Ok(new_map(m))
}

pub(super) fn merge_into(
    dst: &mut BTreeMap<String, Value>,
    src: &BTreeMap<String, Value>,
    overwrite: bool,
) {
    for (k, v) in src {
        match (dst.get(k), v) {
            (Some(Value::Map(d)), Value::Map(s)) if !std::rc::Rc::ptr_eq(d, s) => {
                let s = s.borrow().entries.clone();
                merge_into(&mut d.borrow_mut().entries, &s, overwrite);
            }
            (Some(existing), _) if !overwrite && !is_empty(existing) => {}
            _ => {
                dst.insert(k.clone(), v.clone());
            }
        }
    }
}

pub(super) fn merge(a: Vec<Value>, overwrite: bool) -> FnResult {
    let dst = d_arg(&a[0])?;
    for s in &a[1..] {
        let src = d_arg(s)?;
        if std::rc::Rc::ptr_eq(&dst, &src) {
            continue;
        }
        let src = src.borrow().entries.clone();
        merge_into(&mut dst.borrow_mut().entries, &src, overwrite);
    }
    Ok(Value::Map(dst))
}

pub(super) fn dig(a: Vec<Value>) -> FnResult {
    let n = a.len();
    let dict = d_arg(&a[n - 1])?;
    let default = a[n - 2].clone();
    let keys: Vec<String> = a[..n - 2].iter().map(t_arg).collect::<Result<_, _>>()?;
    let mut cur = Value::Map(dict);
    for (i, k) in keys.iter().enumerate() {
        let next = match &cur {
            Value::Map(m) => m.borrow().entries.get(k).cloned(),
            _ => None,
        };
        match next {
            Some(v) if i == keys.len() - 1 => return Ok(v),
            Some(v @ Value::Map(_)) => cur = v,
            Some(_) => {
                return Err(call_err(format!(
                    "interface conversion: interface {{}} is not map[string]interface {{}} (key {k:?})"
                )));
            }
            None => return Ok(default),
        }
    }
    Ok(default)
}
