//! text/template's predefined functions.

use super::{Entry, FnError, FnResult, Imp, call_err};
use crate::fmt::{sprint, sprintf, sprintln};
use crate::value::{Value, text};

pub const TABLE: &[Entry] = &[
    // `and`/`or` short-circuit in the evaluator; these entries give their arity.
    ("and", 1, None, Imp::F(|_| Ok(Value::Nil))),
    ("or", 1, None, Imp::F(|_| Ok(Value::Nil))),
    (
        "not",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::Bool(!a[0].truthy()))),
    ),
    ("len", 1, Some(1), Imp::F(len)),
    ("index", 1, None, Imp::F(index)),
    ("print", 0, None, Imp::F(|a| Ok(Value::str(sprint(&a))))),
    ("println", 0, None, Imp::F(|a| Ok(Value::str(sprintln(&a))))),
    ("printf", 1, None, Imp::F(printf)),
    (
        "html",
        0,
        None,
        Imp::F(|a| Ok(Value::str(html(&eval_args(&a))))),
    ),
    (
        "js",
        0,
        None,
        Imp::F(|a| Ok(Value::str(js(&eval_args(&a))))),
    ),
    (
        "urlquery",
        0,
        None,
        Imp::F(|a| Ok(Value::str(query_escape(&eval_args(&a))))),
    ),
    ("eq", 1, None, Imp::F(eq)),
    (
        "ne",
        2,
        Some(2),
        Imp::F(|a| Ok(Value::Bool(!equal(&a[0], &a[1])?))),
    ),
    (
        "lt",
        2,
        Some(2),
        Imp::F(|a| Ok(Value::Bool(less(&a[0], &a[1])?))),
    ),
    (
        "le",
        2,
        Some(2),
        Imp::F(|a| Ok(Value::Bool(less(&a[0], &a[1])? || equal(&a[0], &a[1])?))),
    ),
    (
        "gt",
        2,
        Some(2),
        Imp::F(|a| Ok(Value::Bool(!(less(&a[0], &a[1])? || equal(&a[0], &a[1])?)))),
    ),
    (
        "ge",
        2,
        Some(2),
        Imp::F(|a| Ok(Value::Bool(!less(&a[0], &a[1])?))),
    ),
    (
        "call",
        1,
        None,
        Imp::F(|_| {
            Err(call_err(
                "call of a non-function: templates here have no function values",
            ))
        }),
    ),
];

fn printf(a: Vec<Value>) -> FnResult {
    let f = match &a[0] {
        Value::Str(s) => s.clone(),
        other => {
            return Err(FnError::Type {
                expected: "string",
                got: other.type_name(),
            });
        }
    };
    Ok(Value::str(sprintf(&f, &a[1..])))
}

/// The text `html`, `js` and `urlquery` work on: a lone string, or `fmt.Sprint` of all.
fn eval_args(a: &[Value]) -> Vec<u8> {
    if let [Value::Str(s)] = a {
        return s.to_vec();
    }
    sprint(a)
}

fn len(a: Vec<Value>) -> FnResult {
    match &a[0] {
        Value::Str(s) => Ok(Value::Int(s.len() as i64)),
        Value::List(l) => Ok(Value::Int(l.len() as i64)),
        Value::Map(m) => Ok(Value::Int(m.borrow().entries.len() as i64)),
        Value::Nil => Err(call_err("len of untyped nil")),
        other => Err(call_err(format!("len of type {}", other.type_name()))),
    }
}

fn index(a: Vec<Value>) -> FnResult {
    let mut item = a[0].clone();
    if let Value::Nil = item {
        return Err(call_err("index of untyped nil"));
    }
    for idx in &a[1..] {
        item = match &item {
            Value::Nil => return Err(call_err("index of nil pointer")),
            Value::List(_) | Value::Str(_) => {
                let n = match &item {
                    Value::List(l) => l.len(),
                    Value::Str(s) => s.len(),
                    _ => unreachable!(),
                };
                let i = match idx {
                    Value::Int(i) => *i,
                    other => {
                        return Err(call_err(format!(
                            "cannot index slice/array with type {}",
                            other.type_name()
                        )));
                    }
                };
                if i < 0 || i as usize >= n {
                    return Err(call_err(format!("index out of range: {i}")));
                }
                match &item {
                    Value::List(l) => l[i as usize].clone(),
                    Value::Str(s) => Value::Int(i64::from(s[i as usize])),
                    _ => unreachable!(),
                }
            }
            Value::Map(m) => {
                let key = match idx {
                    Value::Str(s) => text(s).into_owned(),
                    other => {
                        return Err(call_err(format!(
                            "value has type {}; should be string",
                            other.type_name()
                        )));
                    }
                };
                let m = m.borrow();
                match m.entries.get(&key) {
                    Some(v) => v.clone(),
                    // The zero value of the map's element type.
                    None if m.of_strings => Value::str(""),
                    None => Value::Nil,
                }
            }
            other => {
                return Err(call_err(format!(
                    "can't index item of type {}",
                    other.type_name()
                )));
            }
        };
    }
    Ok(item)
}

#[derive(PartialEq)]
enum Kind {
    Bool,
    Int,
    Float,
    Str,
    Other,
}

fn kind(v: &Value) -> Kind {
    match v {
        Value::Bool(_) => Kind::Bool,
        Value::Int(_) => Kind::Int,
        Value::Float(_) => Kind::Float,
        Value::Str(_) => Kind::Str,
        _ => Kind::Other,
    }
}

fn equal(a: &Value, b: &Value) -> Result<bool, FnError> {
    let (ka, kb) = (kind(a), kind(b));
    if ka != kb {
        if matches!(a, Value::Nil) || matches!(b, Value::Nil) {
            return Ok(false);
        }
        return Err(incompatible(a, b));
    }
    Ok(match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Float(x), Value::Float(y)) => x == y,
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Nil, Value::Nil) => true,
        (Value::Nil, _) | (_, Value::Nil) => false,
        (x, _) => {
            return Err(call_err(format!("non-comparable type {}", x.type_name())));
        }
    })
}

fn incompatible(a: &Value, b: &Value) -> FnError {
    call_err(format!(
        "incompatible types for comparison: {} and {}",
        a.type_name(),
        b.type_name()
    ))
}

fn eq(a: Vec<Value>) -> FnResult {
    if a.len() < 2 {
        return Err(call_err("missing argument for comparison"));
    }
    for b in &a[1..] {
        if equal(&a[0], b)? {
            return Ok(Value::Bool(true));
        }
    }
    Ok(Value::Bool(false))
}

fn less(a: &Value, b: &Value) -> Result<bool, FnError> {
    let (ka, kb) = (kind(a), kind(b));
    if ka == Kind::Other || kb == Kind::Other {
        return Err(call_err("invalid type for comparison"));
    }
    if ka != kb {
        return Err(incompatible(a, b));
    }
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Ok(x < y),
        (Value::Float(x), Value::Float(y)) => Ok(x < y),
        (Value::Str(x), Value::Str(y)) => Ok(x < y),
        _ => Err(call_err("invalid type for comparison")),
    }
}

fn html(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    for &c in b {
        match c {
            b'"' => out.extend_from_slice(b"&#34;"),
            b'\'' => out.extend_from_slice(b"&#39;"),
            b'&' => out.extend_from_slice(b"&amp;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            0 => out.extend_from_slice("\u{FFFD}".as_bytes()),
            c => out.push(c),
        }
    }
    out
}

fn js(b: &[u8]) -> Vec<u8> {
    let mut out = String::new();
    for c in text(b).chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.into_bytes()
}

/// url.QueryEscape.
pub fn query_escape(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    for &c in b {
        match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(c),
            b' ' => out.push(b'+'),
            c => out.extend_from_slice(format!("%{c:02X}").as_bytes()),
        }
    }
    out
}
