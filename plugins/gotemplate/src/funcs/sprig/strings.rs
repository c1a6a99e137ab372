//! sprig's string functions (sprig's `strings.go`): Go's `strings` package and the `goutils` and
//! `xstrings` helpers sprig calls (abbreviation, case, wrapping), and the random strings.

use crate::funcs::{
    FnResult, call_err, count_arg, i_arg, new_map, random_below, s_arg, strval, t_arg,
};
use crate::value::{Value, text};

pub(super) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

pub(super) fn replace_all(src: &[u8], old: &[u8], new: &[u8]) -> Vec<u8> {
    if old.is_empty() {
        // strings.Replace with an empty old inserts `new` around every rune.
        let t = text(src);
        let mut out = new.to_vec();
        for c in t.chars() {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            out.extend_from_slice(new);
        }
        return out;
    }
    let mut out = Vec::with_capacity(src.len());
    let mut i = 0;
    while i < src.len() {
        if src[i..].starts_with(old) {
            out.extend_from_slice(new);
            i += old.len();
        } else {
            out.push(src[i]);
            i += 1;
        }
    }
    out
}

/// strings.Split / SplitN (n < 0: all).
pub(super) fn go_split(s: &[u8], sep: &[u8], n: i64) -> Vec<Vec<u8>> {
    if n == 0 {
        return Vec::new();
    }
    if sep.is_empty() {
        let chars: Vec<String> = text(s).chars().map(String::from).collect();
        let mut out: Vec<Vec<u8>> = Vec::new();
        for (i, c) in chars.iter().enumerate() {
            if n > 0 && out.len() as i64 == n - 1 {
                out.push(chars[i..].concat().into_bytes());
                return out;
            }
            out.push(c.clone().into_bytes());
        }
        return out;
    }
    let mut out = Vec::new();
    let mut rest = s;
    while n < 0 || (out.len() as i64) < n - 1 {
        match find(rest, sep) {
            Some(i) => {
                out.push(rest[..i].to_vec());
                rest = &rest[i + sep.len()..];
            }
            None => break,
        }
    }
    out.push(rest.to_vec());
    out
}

pub(super) fn split(sep: &Value, s: &Value, n: i64) -> FnResult {
    let parts = go_split(&s_arg(s)?, &s_arg(sep)?, n);
    Ok(new_map(
        parts
            .into_iter()
            .enumerate()
            .map(|(i, p)| (format!("_{i}"), Value::str(p)))
            .collect(),
    ))
}

pub(super) fn abbrev(a: Vec<Value>) -> FnResult {
    let (w, s) = (i_arg(&a[0])?, s_arg(&a[1])?);
    if w < 4 || s.len() as i64 <= w {
        return Ok(Value::Str(s));
    }
    Ok(Value::str([&s[..(w - 3) as usize], b"..."].concat()))
}

pub(super) fn abbrevboth(a: Vec<Value>) -> FnResult {
    let (left, right, s) = (i_arg(&a[0])?, i_arg(&a[1])?, s_arg(&a[2])?);
    if right < 4 || (left > 0 && right < 7) || s.is_empty() || s.len() as i64 <= right {
        return Ok(Value::Str(s));
    }
    let len = s.len() as i64;
    let mut offset = left.min(len);
    if len - offset < right - 3 {
        offset = len - (right - 3);
    }
    if offset <= 4 {
        return Ok(Value::str([&s[..(right - 3) as usize], b"..."].concat()));
    }
    if offset + right - 3 < len {
        let inner = &s[offset as usize..];
        let w = right - 3;
        let abbreviated = if inner.len() as i64 <= w {
            inner.to_vec()
        } else {
            [&inner[..(w - 3) as usize], b"..."].concat()
        };
        return Ok(Value::str([b"...".as_slice(), &abbreviated].concat()));
    }
    Ok(Value::str(
        [b"...".as_slice(), &s[(len - (right - 3)) as usize..]].concat(),
    ))
}

pub(super) fn trunc(a: Vec<Value>) -> FnResult {
    let (c, s) = (i_arg(&a[0])?, s_arg(&a[1])?);
    let len = s.len() as i64;
    if c < 0 && len + c > 0 {
        return Ok(Value::str(&s[(len + c) as usize..]));
    }
    if c >= 0 && len > c {
        return Ok(Value::str(&s[..c as usize]));
    }
    Ok(Value::Str(s))
}

pub(super) fn substr(a: Vec<Value>) -> FnResult {
    let (start, end, s) = (i_arg(&a[0])?, i_arg(&a[1])?, s_arg(&a[2])?);
    let len = s.len() as i64;
    let oob = || call_err("runtime error: slice bounds out of range");
    if start < 0 {
        if end < 0 || end > len {
            return Err(oob());
        }
        return Ok(Value::str(&s[..end as usize]));
    }
    if end < 0 || end > len {
        if start > len {
            return Err(oob());
        }
        return Ok(Value::str(&s[start as usize..]));
    }
    if start > end {
        return Err(oob());
    }
    Ok(Value::str(&s[start as usize..end as usize]))
}

pub(super) fn repeat(a: Vec<Value>) -> FnResult {
    let (n, s) = (i_arg(&a[0])?, s_arg(&a[1])?);
    if n < 0 {
        return Err(call_err("strings: negative Repeat count"));
    }
    if (n as u128) * (s.len() as u128) > crate::limits::MAX_OUTPUT as u128 {
        return Err(call_err("strings: Repeat output length overflow"));
    }
    Ok(Value::str(s.repeat(n as usize)))
}

pub(super) fn trim_all(a: Vec<Value>) -> FnResult {
    let (cut, s) = (t_arg(&a[0])?, t_arg(&a[1])?);
    Ok(Value::str(s.trim_matches(|c| cut.contains(c))))
}

/// strings.Title: upper-case the first letter of each word.
pub(super) fn title(s: &str) -> String {
    let mut prev = ' ';
    s.chars()
        .map(|c| {
            let sep = is_separator(prev);
            prev = c;
            if sep {
                c.to_uppercase().next().unwrap_or(c)
            } else {
                c
            }
        })
        .collect()
}

pub(super) fn is_separator(c: char) -> bool {
    if c.is_ascii() {
        return !(c.is_ascii_alphanumeric() || c == '_');
    }
    if c.is_alphanumeric() {
        return false;
    }
    c.is_whitespace()
}

/// goutils.Uncapitalize: lower-case the first letter of each whitespace-separated word.
pub(super) fn untitle(s: &str) -> String {
    let mut prev_space = true;
    s.chars()
        .map(|c| {
            let out = if prev_space {
                c.to_lowercase().next().unwrap_or(c)
            } else {
                c
            };
            prev_space = c.is_whitespace();
            out
        })
        .collect()
}

pub(super) fn swapcase(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_uppercase() {
                c.to_lowercase().collect::<Vec<_>>()
            } else if c.is_lowercase() {
                c.to_uppercase().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// Words for snake and kebab case: split at separators and case changes ("HTTPServer" →
/// http, server).
pub(super) fn words(s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if c.is_uppercase() && !cur.is_empty() {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if prev.is_lowercase() || prev.is_ascii_digit() || (prev.is_uppercase() && next_lower) {
                out.push(std::mem::take(&mut cur));
            }
        }
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// xstrings.ToCamelCase: "some_words" → "SomeWords" (leading/trailing underscores kept).
pub(super) fn camelcase(s: &str) -> String {
    let lead = s.len() - s.trim_start_matches('_').len();
    let trail = s.len() - s.trim_end_matches('_').len();
    let core = &s[lead..s.len() - trail.min(s.len() - lead)];
    let mut out = "_".repeat(lead);
    for part in core.split(['_', ' ', '-']).filter(|p| !p.is_empty()) {
        let mut cs = part.chars();
        if let Some(f) = cs.next() {
            out.extend(f.to_uppercase());
            out.push_str(cs.as_str());
        }
    }
    out.push_str(&"_".repeat(trail.min(s.len() - lead)));
    out
}

/// goutils.WrapCustom.
pub(super) fn wrap(s: &[u8], width: i64, nl: &[u8], long_words: bool) -> Vec<u8> {
    if s.is_empty() {
        return Vec::new();
    }
    let nl: &[u8] = if nl.is_empty() { b"\n" } else { nl };
    let w = width.max(1) as usize;
    let len = s.len();
    let mut off = 0;
    let mut out = Vec::new();
    while len - off > w {
        if s[off] == b' ' {
            off += 1;
            continue;
        }
        let end = (w + off + 1).min(len);
        match s[off..end].iter().rposition(|b| *b == b' ') {
            Some(i) => {
                out.extend_from_slice(&s[off..off + i]);
                out.extend_from_slice(nl);
                off += i + 1;
            }
            None if long_words => {
                out.extend_from_slice(&s[off..off + w]);
                out.extend_from_slice(nl);
                off += w;
            }
            None => match s[w + off..].iter().position(|b| *b == b' ') {
                None => {
                    out.extend_from_slice(&s[off..]);
                    off = len;
                }
                Some(i) => {
                    let at = i + w + off;
                    out.extend_from_slice(&s[off..at]);
                    out.extend_from_slice(nl);
                    off = at + 1;
                }
            },
        }
    }
    out.extend_from_slice(&s[off..]);
    out
}

pub(super) fn quote_all(a: &[Value], f: impl Fn(Vec<u8>) -> Vec<u8>) -> Vec<u8> {
    let parts: Vec<Vec<u8>> = a
        .iter()
        .filter(|v| !matches!(v, Value::Nil))
        .map(|v| f(strval(v)))
        .collect();
    parts.join(&b' ')
}

pub(super) fn indent(n: usize, s: &[u8]) -> Vec<u8> {
    let pad = vec![b' '; n];
    let mut with_nl = b"\n".to_vec();
    with_nl.extend_from_slice(&pad);
    [pad.clone(), replace_all(s, b"\n", &with_nl)].concat()
}

pub(super) fn random_string(n: &Value, alphabet: &str) -> FnResult {
    let n = count_arg(n)?;
    let chars: Vec<char> = alphabet.chars().collect();
    let mut out = String::with_capacity(n);
    for _ in 0..n {
        out.push(chars[random_below(chars.len() as u64)? as usize]);
    }
    Ok(Value::str(out))
}

pub(super) fn shuffle(a: Vec<Value>) -> FnResult {
    let mut cs: Vec<char> = t_arg(&a[0])?.chars().collect();
    for i in (1..cs.len()).rev() {
        let j = random_below(i as u64 + 1)? as usize;
        cs.swap(i, j);
    }
    Ok(Value::str(cs.into_iter().collect::<String>()))
}
