//! sprig's list functions (sprig's `list.go`).

use crate::funcs::{FnResult, call_err, i_arg, is_empty, l_arg, to_int64};
use crate::value::Value;

pub(super) fn compact(a: Vec<Value>) -> FnResult {
    let l = l_arg(&a[0], "compact")?;
    Ok(Value::list(
        l.iter().filter(|v| !is_empty(v)).cloned().collect(),
    ))
}

pub(super) fn push(a: Vec<Value>) -> FnResult {
    let mut l = l_arg(&a[0], "push")?.as_ref().clone();
    l.push(a[1].clone());
    Ok(Value::list(l))
}

pub(super) fn prepend(a: Vec<Value>) -> FnResult {
    let mut l = vec![a[1].clone()];
    l.extend(l_arg(&a[0], "prepend")?.iter().cloned());
    Ok(Value::list(l))
}

pub(super) fn sublist(v: &Value, op: &str, f: impl Fn(&[Value]) -> Option<&[Value]>) -> FnResult {
    // An empty list gives Go's nil []interface{}, which prints as [].
    let l = l_arg(v, op)?;
    Ok(Value::list(f(&l).unwrap_or(&[]).to_vec()))
}

pub(super) fn uniq(a: Vec<Value>) -> FnResult {
    let l = l_arg(&a[0], "uniq")?;
    let mut out: Vec<Value> = Vec::new();
    for v in l.iter() {
        if !out.iter().any(|o| o.deep_equal(v)) {
            out.push(v.clone());
        }
    }
    Ok(Value::list(out))
}

pub(super) fn without(a: Vec<Value>) -> FnResult {
    let l = l_arg(&a[0], "find without")?;
    let omit = &a[1..];
    Ok(Value::list(
        l.iter()
            .filter(|v| !omit.iter().any(|o| o.deep_equal(v)))
            .cloned()
            .collect(),
    ))
}

pub(super) fn has(a: Vec<Value>) -> FnResult {
    match &a[1] {
        Value::Nil => Ok(Value::Bool(false)),
        Value::List(l) => Ok(Value::Bool(l.iter().any(|v| v.deep_equal(&a[0])))),
        other => Err(call_err(format!(
            "Cannot find has on type {}",
            other.type_name()
        ))),
    }
}

pub(super) fn slice(a: Vec<Value>) -> FnResult {
    let l = l_arg(&a[0], "slice")?;
    let idx: Vec<i64> = a[1..].iter().map(to_int64).collect();
    let (start, end) = match idx.as_slice() {
        [] => (0, l.len() as i64),
        [s] => (*s, l.len() as i64),
        [s, e, ..] => (*s, *e),
    };
    if start < 0 || end < start || end > l.len() as i64 {
        return Err(call_err(format!(
            "runtime error: slice bounds out of range [{start}:{end}] with capacity {}",
            l.len()
        )));
    }
    Ok(Value::list(l[start as usize..end as usize].to_vec()))
}

pub(super) fn chunk(a: Vec<Value>) -> FnResult {
    let size = i_arg(&a[0])?;
    let l = l_arg(&a[1], "chunk")?;
    if size <= 0 {
        return Err(call_err("runtime error: integer divide by zero"));
    }
    Ok(Value::list(
        l.chunks(size as usize)
            .map(|c| Value::list(c.to_vec()))
            .collect(),
    ))
}

pub(super) fn list_first(a: Vec<Value>) -> FnResult {
    Ok(l_arg(&a[0], "find first")?
        .first()
        .cloned()
        .unwrap_or(Value::Nil))
}

pub(super) fn list_last(a: Vec<Value>) -> FnResult {
    Ok(l_arg(&a[0], "find last")?
        .last()
        .cloned()
        .unwrap_or(Value::Nil))
}

pub(super) fn list_rest(a: Vec<Value>) -> FnResult {
    sublist(&a[0], "find rest", |l| l.get(1..))
}

pub(super) fn list_initial(a: Vec<Value>) -> FnResult {
    sublist(&a[0], "find initial", |l| {
        l.get(..l.len().saturating_sub(1))
    })
}

pub(super) fn list_reverse(a: Vec<Value>) -> FnResult {
    Ok(Value::list(
        l_arg(&a[0], "reverse")?.iter().rev().cloned().collect(),
    ))
}
