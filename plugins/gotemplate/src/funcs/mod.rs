//! The functions a template can call: text/template's builtins, the sprig set ESO exposes
//! (all but `env` and `expandenv`), and ESO's own. Later tables override earlier ones, as
//! `Funcs` overrides the builtins in Go (sprig's `slice` replaces the builtin `slice`).
//!
//! Go checks argument types by reflection against each function's signature; we check them
//! in the helpers below and report Go's `wrong type for value; expected T; got U`.

mod builtin;
mod dates;
mod eso;
mod semver;
mod sprig;

use std::collections::BTreeMap;
use std::rc::Rc;

use crate::value::{Map, Value, text};

/// A failed call: `Call` messages are prefixed `error calling NAME:` (the function returned
/// an error or panicked), `Plain` ones are argument errors Go reports before calling.
#[derive(Debug)]
pub enum FnError {
    Call(String),
    Plain(String),
    /// An argument of the wrong type; Go names the argument, so the evaluator finds it.
    Type {
        expected: &'static str,
        got: &'static str,
    },
}

pub type FnResult = Result<Value, FnError>;

#[derive(Clone, Copy)]
pub enum Imp {
    F(fn(Vec<Value>) -> FnResult),
    /// Known to ESO but not available here, with the reason.
    Unsupported(&'static str),
}

#[derive(Clone, Copy)]
pub struct Spec {
    pub min: usize,
    pub max: Option<usize>,
    pub imp: Imp,
}

/// `(name, min args, max args (None: variadic), implementation)`.
pub type Entry = (&'static str, usize, Option<usize>, Imp);

/// The tables, later ones first: a later table overrides an earlier one, as `Funcs` overrides
/// the builtins in Go.
const TABLES: [&[Entry]; 5] = [
    eso::TABLE,
    semver::TABLE,
    dates::TABLE,
    sprig::TABLE,
    builtin::TABLE,
];

/// Finds a function. A search over static tables, not a map built at start: every call runs
/// in a fresh Wasm instance, so anything built at start would be built on every call.
pub fn lookup(name: &str) -> Option<Spec> {
    TABLES.iter().find_map(|t| {
        t.iter()
            .find(|(n, ..)| *n == name)
            .map(|(_, min, max, imp)| Spec {
                min: *min,
                max: *max,
                imp: *imp,
            })
    })
}

/// Every function name, sorted, with why it is unsupported if it is (for the docs' table).
pub fn names() -> Vec<(&'static str, Option<&'static str>)> {
    let mut v: Vec<&'static str> = TABLES
        .iter()
        .flat_map(|t| t.iter())
        .map(|(n, ..)| *n)
        .collect();
    v.sort();
    v.dedup();
    v.into_iter()
        .map(|n| {
            let imp = lookup(n).expect("a listed function is found").imp;
            (
                n,
                match imp {
                    Imp::F(_) => None,
                    Imp::Unsupported(r) => Some(r),
                },
            )
        })
        .collect()
}

pub fn call_err(m: impl Into<String>) -> FnError {
    FnError::Call(m.into())
}

fn wrong_type(expected: &'static str, got: &Value) -> FnError {
    FnError::Type {
        expected,
        got: got.type_name(),
    }
}

/// A `string` parameter.
pub fn s_arg(v: &Value) -> Result<Rc<[u8]>, FnError> {
    match v {
        Value::Str(s) => Ok(s.clone()),
        other => Err(wrong_type("string", other)),
    }
}

/// A `string` parameter as text (lossy for invalid UTF-8, like Go's rune functions).
pub fn t_arg(v: &Value) -> Result<String, FnError> {
    Ok(text(&s_arg(v)?).into_owned())
}

/// An `int` parameter.
pub fn i_arg(v: &Value) -> Result<i64, FnError> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Ok(*f as i64),
        other => Err(wrong_type("int", other)),
    }
}

/// A count of things to make (characters, bytes, spaces): refused beyond what a template's
/// output may hold, so a typo cannot exhaust the sandbox's memory.
pub fn count_arg(v: &Value) -> Result<usize, FnError> {
    let n = i_arg(v)?;
    if n < 0 {
        return Err(call_err("count must be non-negative"));
    }
    if n as u64 > crate::limits::MAX_OUTPUT as u64 {
        return Err(call_err(format!(
            "count {n} is larger than a template's output may be ({} bytes)",
            crate::limits::MAX_OUTPUT
        )));
    }
    Ok(n as usize)
}

/// A `bool` parameter.
pub fn b_arg(v: &Value) -> Result<bool, FnError> {
    match v {
        Value::Bool(b) => Ok(*b),
        other => Err(wrong_type("bool", other)),
    }
}

/// A `map[string]interface{}` parameter (ESO's data, a `map[string]string`, is not one).
pub fn d_arg(v: &Value) -> Result<Rc<std::cell::RefCell<Map>>, FnError> {
    match v {
        Value::Map(m) if !m.borrow().of_strings => Ok(m.clone()),
        other => Err(wrong_type("map[string]interface {}", other)),
    }
}

/// cast.ToInt64 as sprig uses it: numbers, numeric strings (base prefixes allowed), bools;
/// anything else is 0.
pub fn to_int64(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::Float(f) => *f as i64,
        Value::Bool(b) => i64::from(*b),
        Value::Str(s) => {
            parse_int_base0(text(s).trim_end_matches(".0").trim_end_matches('.')).unwrap_or(0)
        }
        _ => 0,
    }
}

/// strconv.ParseInt(s, 0, 64).
pub fn parse_int_base0(s: &str) -> Option<i64> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let body = body.replace('_', "");
    let lower = body.to_ascii_lowercase();
    let v = if let Some(h) = lower.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()
    } else if let Some(b) = lower.strip_prefix("0b") {
        i64::from_str_radix(b, 2).ok()
    } else if let Some(o) = lower.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()
    } else if lower.len() > 1 && lower.starts_with('0') {
        i64::from_str_radix(&lower[1..], 8).ok()
    } else if lower.is_empty() || !lower.bytes().all(|b| b.is_ascii_digit()) {
        None
    } else {
        lower.parse().ok()
    }?;
    Some(if neg { -v } else { v })
}

/// cast.ToFloat64.
pub fn to_float64(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Str(s) => text(s).trim().parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

/// sprig's strval: strings as they are, everything else as `%v`.
pub fn strval(v: &Value) -> Vec<u8> {
    v.to_go_string()
}

/// sprig's strslice: a list's elements as strings (nil elements dropped), or the value alone.
pub fn strslice(v: &Value) -> Vec<Vec<u8>> {
    match v {
        Value::List(l) => l
            .iter()
            .filter(|e| !matches!(e, Value::Nil))
            .map(strval)
            .collect(),
        Value::Nil => Vec::new(),
        other => vec![strval(other)],
    }
}

/// sprig's `empty`.
pub fn is_empty(v: &Value) -> bool {
    !v.truthy()
}

/// A list of strings as a template value.
pub fn str_list(items: impl IntoIterator<Item = impl AsRef<[u8]>>) -> Value {
    Value::list(items.into_iter().map(Value::str).collect())
}

pub fn new_map(entries: BTreeMap<String, Value>) -> Value {
    Value::map(entries)
}

/// A list parameter of the sprig list functions (which take any slice).
pub fn l_arg(v: &Value, op: &str) -> Result<Rc<Vec<Value>>, FnError> {
    match v {
        Value::List(l) => Ok(l.clone()),
        other => Err(call_err(format!(
            "Cannot {op} on type {}",
            other.type_name()
        ))),
    }
}

/// Secure random bytes from the host (WASI random, the host's CSPRNG).
pub fn random_bytes(n: usize) -> Result<Vec<u8>, FnError> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).map_err(|e| call_err(format!("no randomness: {e}")))?;
    Ok(b)
}

/// A uniform random integer in `0..n` (n > 0), without modulo bias.
pub fn random_below(n: u64) -> Result<u64, FnError> {
    let zone = u64::MAX - (u64::MAX % n);
    loop {
        let b = random_bytes(8)?;
        let v = u64::from_le_bytes(b.try_into().expect("8 bytes"));
        if v < zone {
            return Ok(v % n);
        }
    }
}
