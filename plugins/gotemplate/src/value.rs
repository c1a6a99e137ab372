//! Template values: the dynamic types a Go template sees when ESO runs it.
//!
//! ESO hands a template a `map[string]string` and sprig's functions produce `int64`,
//! `float64`, `[]interface{}` and `map[string]interface{}`. Go strings are byte strings, and
//! so are ours: `{{ .keystore | b64dec | pkcs12key }}` carries binary data through a string.
//! Printing follows Go's `fmt` (`%v`), because users see its output byte for byte.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// A Go value as a template sees it.
#[derive(Clone, Debug)]
pub enum Value {
    /// An untyped nil (`<no value>` when printed by an action).
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// A Go string: bytes, usually (not always) UTF-8.
    Str(Rc<[u8]>),
    List(Rc<Vec<Value>>),
    /// Go maps are references: sprig's `set` and `merge` change the map every holder sees.
    Map(Rc<RefCell<Map>>),
    /// A `time.Time` (sprig's date functions).
    Time(Rc<crate::time::Time>),
}

/// A Go map with string keys; Go iterates and prints them sorted, as a `BTreeMap` does.
#[derive(Clone, Debug, Default)]
pub struct Map {
    pub entries: BTreeMap<String, Value>,
    /// A `map[string]string` (the template's data): a missing key indexes as `""`, not nil.
    pub of_strings: bool,
}

impl Value {
    pub fn str(s: impl AsRef<[u8]>) -> Value {
        Value::Str(Rc::from(s.as_ref()))
    }

    pub fn list(v: Vec<Value>) -> Value {
        Value::List(Rc::new(v))
    }

    pub fn map(entries: BTreeMap<String, Value>) -> Value {
        Value::Map(Rc::new(RefCell::new(Map {
            entries,
            of_strings: false,
        })))
    }

    /// Go's type name, as `printf "%T"` and sprig's `typeOf` print it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::List(_) => "[]interface {}",
            Value::Map(m) if m.borrow().of_strings => "map[string]string",
            Value::Map(_) => "map[string]interface {}",
            Value::Time(_) => "time.Time",
        }
    }

    /// Go's reflect kind name, as sprig's `kindOf` prints it.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Nil => "invalid",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::List(_) => "slice",
            Value::Map(_) => "map",
            Value::Time(_) => "struct",
        }
    }

    /// text/template's truth: false, 0, nil and empty strings, lists and maps are false.
    pub fn truthy(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.borrow().entries.is_empty(),
            Value::Time(_) => true,
        }
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as `fmt.Sprint` prints it.
    pub fn to_go_string(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_v(&mut out);
        out
    }

    /// Appends `%v`.
    pub fn write_v(&self, out: &mut Vec<u8>) {
        match self {
            Value::Nil => out.extend_from_slice(b"<nil>"),
            Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
            Value::Float(f) => out.extend_from_slice(format_g(*f, None).as_bytes()),
            Value::Str(s) => out.extend_from_slice(s),
            Value::Time(t) => out.extend_from_slice(t.go_string().as_bytes()),
            Value::List(l) => {
                out.push(b'[');
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        out.push(b' ');
                    }
                    v.write_v(out);
                }
                out.push(b']');
            }
            Value::Map(m) => {
                out.extend_from_slice(b"map[");
                for (i, (k, v)) in m.borrow().entries.iter().enumerate() {
                    if i > 0 {
                        out.push(b' ');
                    }
                    out.extend_from_slice(k.as_bytes());
                    out.push(b':');
                    v.write_v(out);
                }
                out.push(b']');
            }
        }
    }

    /// Go's `reflect.DeepEqual` over our types.
    pub fn deep_equal(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Nil, Value::Nil) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Time(a), Value::Time(b)) => a == b,
            (Value::List(a), Value::List(b)) => {
                a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| x.deep_equal(y))
            }
            (Value::Map(a), Value::Map(b)) => {
                let (a, b) = (a.borrow(), b.borrow());
                a.of_strings == b.of_strings
                    && a.entries.len() == b.entries.len()
                    && a.entries
                        .iter()
                        .zip(b.entries.iter())
                        .all(|((ka, va), (kb, vb))| ka == kb && va.deep_equal(vb))
            }
            _ => false,
        }
    }

    /// A JSON document as Go's `encoding/json` decodes it into `interface{}`: numbers are
    /// `float64`, objects are maps.
    pub fn from_json(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Nil,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            serde_json::Value::String(s) => Value::str(s),
            serde_json::Value::Array(a) => Value::list(a.iter().map(Value::from_json).collect()),
            serde_json::Value::Object(o) => Value::map(
                o.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect(),
            ),
        }
    }
}

/// A Go string from text.
impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::str(s)
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::str(s)
    }
}

/// Lossy UTF-8, for the string functions that work on runes.
pub fn text(b: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(b)
}

/// The shortest decimal digits that round-trip `f` (|f| > 0, finite), and the decimal
/// point position: `f = 0.d1d2d3… × 10^dp`.
fn shortest_digits(f: f64) -> (String, i32) {
    let s = format!("{:e}", f.abs());
    let (mant, exp) = s.split_once('e').expect("{:e} has an exponent");
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    (digits, exp + 1)
}

/// `digits` rounded to `n` significant digits (trailing zeros trimmed, as Go's decimal).
fn round_digits(f: f64, n: usize) -> (String, i32) {
    // A float64 has at most 767 significant decimal digits; Rust's formatter takes at most
    // 65535. Further digits are zeros (the callers pad).
    let s = format!("{:.*e}", n.saturating_sub(1).min(800), f.abs());
    let (mant, exp) = s.split_once('e').expect("{:e} has an exponent");
    let mut digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    (digits, exp + 1)
}

fn special(f: f64) -> Option<String> {
    if f.is_nan() {
        Some("NaN".into())
    } else if f.is_infinite() {
        Some(if f > 0.0 { "+Inf" } else { "-Inf" }.into())
    } else {
        None
    }
}

/// `%e` from digits.
fn fmt_e(neg: bool, digits: &str, dp: i32, prec: usize, upper: bool) -> String {
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    let d: Vec<char> = digits.chars().collect();
    out.push(d.first().copied().unwrap_or('0'));
    if prec > 0 {
        out.push('.');
        for i in 1..=prec {
            out.push(d.get(i).copied().unwrap_or('0'));
        }
    }
    let exp = if digits == "0" { 0 } else { dp - 1 };
    out.push(if upper { 'E' } else { 'e' });
    out.push(if exp < 0 { '-' } else { '+' });
    let a = exp.unsigned_abs();
    if a < 10 {
        out.push('0');
    }
    out.push_str(&a.to_string());
    out
}

/// `%f` from digits.
fn fmt_f(neg: bool, digits: &str, dp: i32, prec: usize) -> String {
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    let d: Vec<char> = digits.chars().collect();
    if dp > 0 {
        for i in 0..dp as usize {
            out.push(d.get(i).copied().unwrap_or('0'));
        }
    } else {
        out.push('0');
    }
    if prec > 0 {
        out.push('.');
        for i in 0..prec as i32 {
            let j = dp + i;
            out.push(if j < 0 {
                '0'
            } else {
                d.get(j as usize).copied().unwrap_or('0')
            });
        }
    }
    out
}

/// Go's `%g` (`prec` None: shortest, as `%v` prints a float64).
pub fn format_g(f: f64, prec: Option<usize>) -> String {
    format_g_case(f, prec, false)
}

pub fn format_g_case(f: f64, prec: Option<usize>, upper: bool) -> String {
    if let Some(s) = special(f) {
        return s;
    }
    let neg = f.is_sign_negative();
    if f == 0.0 {
        return if neg { "-0".into() } else { "0".into() };
    }
    let (digits, dp, mut p, shortest) = match prec {
        None => {
            let (d, dp) = shortest_digits(f);
            let n = d.len();
            (d, dp, n, true)
        }
        Some(p) => {
            let p = p.max(1);
            let (d, dp) = round_digits(f, p);
            (d, dp, p, false)
        }
    };
    let nd = digits.len();
    let mut eprec = p;
    if eprec > nd && nd as i32 >= dp {
        eprec = nd;
    }
    if shortest {
        eprec = 6;
    }
    let exp = dp - 1;
    if exp < -4 || exp >= eprec as i32 {
        if p > nd {
            p = nd;
        }
        return fmt_e(neg, &digits, dp, p - 1, upper);
    }
    if p as i32 > dp {
        p = nd;
    }
    fmt_f(neg, &digits, dp, (p as i32 - dp).max(0) as usize)
}

/// Go's `%e` with a precision (default 6).
pub fn format_e(f: f64, prec: usize, upper: bool) -> String {
    if let Some(s) = special(f) {
        return s;
    }
    let neg = f.is_sign_negative();
    if f == 0.0 {
        return fmt_e(neg, "0", 1, prec, upper);
    }
    let (digits, dp) = round_digits(f, prec + 1);
    fmt_e(neg, &digits, dp, prec, upper)
}

/// Go's `%f` with a precision (default 6).
pub fn format_f(f: f64, prec: usize) -> String {
    if let Some(s) = special(f) {
        return s;
    }
    // Digits past the 1100th decimal of a float64 are zeros; Rust's formatter stops at 65535.
    let p = prec.min(1100);
    let mut s = format!("{f:.p$}");
    s.extend(std::iter::repeat_n('0', prec - p));
    s
}

/// Shortest `'f'` formatting (strconv.FormatFloat(f, 'f', -1, 64)).
pub fn format_f_shortest(f: f64) -> String {
    if let Some(s) = special(f) {
        return s;
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let (digits, dp) = shortest_digits(f);
    let prec = (digits.len() as i32 - dp).max(0) as usize;
    fmt_f(f.is_sign_negative(), &digits, dp, prec)
}

/// Go's `encoding/json` number formatting for a float64.
pub fn json_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let (digits, dp) = shortest_digits(f);
        let mut s = fmt_e(f.is_sign_negative(), &digits, dp, digits.len() - 1, false);
        // Go cleans e-09 up to e-9.
        if let Some(pos) = s.find("e-0") {
            s.remove(pos + 2);
        } else if let Some(pos) = s.find("e+0") {
            s.remove(pos + 2);
        }
        s
    } else {
        format_f_shortest(f)
    }
}

/// Go's `json.Marshal` (`escape_html` as the default encoder does; sprig's toRawJson turns it
/// off). Returns None for values JSON cannot hold (NaN, ±Inf).
pub fn to_json(v: &Value, escape_html: bool, indent: Option<&str>) -> Option<String> {
    let mut out = String::new();
    write_json(v, escape_html, indent, 0, &mut out)?;
    Some(out)
}

fn write_json(
    v: &Value,
    esc: bool,
    indent: Option<&str>,
    depth: usize,
    out: &mut String,
) -> Option<()> {
    let newline = |out: &mut String, depth: usize| {
        if let Some(ind) = indent {
            out.push('\n');
            for _ in 0..depth {
                out.push_str(ind);
            }
        }
    };
    match v {
        Value::Nil => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Float(f) => {
            if !f.is_finite() {
                return None;
            }
            out.push_str(&json_float(*f));
        }
        Value::Str(s) => json_string(s, esc, out),
        Value::Time(t) => json_string(
            t.format("2006-01-02T15:04:05.999999999Z07:00").as_bytes(),
            esc,
            out,
        ),
        Value::List(l) => {
            out.push('[');
            for (i, e) in l.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, depth + 1);
                write_json(e, esc, indent, depth + 1, out)?;
            }
            if !l.is_empty() {
                newline(out, depth);
            }
            out.push(']');
        }
        Value::Map(m) => {
            let m = m.borrow();
            out.push('{');
            for (i, (k, e)) in m.entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, depth + 1);
                json_string(k.as_bytes(), esc, out);
                out.push(':');
                if indent.is_some() {
                    out.push(' ');
                }
                write_json(e, esc, indent, depth + 1, out)?;
            }
            if !m.entries.is_empty() {
                newline(out, depth);
            }
            out.push('}');
        }
    }
    Some(())
}

fn json_string(s: &[u8], esc: bool, out: &mut String) {
    out.push('"');
    for c in text(s).chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' if esc => out.push_str(&format!("\\u{:04x}", c as u32)),
            '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_go_does() {
        let cases = [
            (5432.0, "5432"),
            (1234567.0, "1.234567e+06"),
            (123456.0, "123456"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5, "1.5"),
            (-2.25, "-2.25"),
            (1e21, "1e+21"),
            (100.0, "100"),
            (0.1 + 0.2, "0.30000000000000004"),
        ];
        for (f, want) in cases {
            assert_eq!(format_g(f, None), want, "{f}");
        }
        assert_eq!(format_g(1.0, Some(3)), "1");
        assert_eq!(format_g(1234.5678, Some(3)), "1.23e+03");
        assert_eq!(format_g(0.5, Some(2)), "0.5");
        assert_eq!(format_e(1234.5678, 2, false), "1.23e+03");
        assert_eq!(format_e(0.0, 6, false), "0.000000e+00");
        assert_eq!(format_f(2.0 / 3.0, 2), "0.67");
    }

    #[test]
    fn json_numbers_and_escaping_follow_encoding_json() {
        assert_eq!(json_float(5432.0), "5432");
        assert_eq!(json_float(1e21), "1e+21");
        assert_eq!(json_float(1e-7), "1e-7");
        assert_eq!(json_float(0.000001), "0.000001");
        assert_eq!(json_float(123456789.0), "123456789");
        let v = Value::map(BTreeMap::from([
            ("b".to_string(), Value::str("<x&y>")),
            (
                "a".to_string(),
                Value::list(vec![Value::Int(1), Value::Nil]),
            ),
        ]));
        assert_eq!(
            to_json(&v, true, None).unwrap(),
            r#"{"a":[1,null],"b":"\u003cx\u0026y\u003e"}"#
        );
        assert_eq!(
            to_json(&v, false, Some("  ")).unwrap(),
            "{\n  \"a\": [\n    1,\n    null\n  ],\n  \"b\": \"<x&y>\"\n}"
        );
    }

    #[test]
    fn composite_values_print_as_fmt_v() {
        let v = Value::map(BTreeMap::from([
            (
                "k".to_string(),
                Value::list(vec![Value::str("a"), Value::Int(2)]),
            ),
            ("z".to_string(), Value::Bool(true)),
        ]));
        assert_eq!(v.to_go_string(), b"map[k:[a 2] z:true]");
    }
}
