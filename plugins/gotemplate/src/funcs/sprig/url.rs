//! `urlParse` and `urlJoin` (sprig's `url.go`), following Go's `net/url`.

use std::collections::BTreeMap;

use crate::funcs::{FnResult, d_arg, new_map, strval};
use crate::value::{Value, text};

/// url.Parse, as sprig's urlParse reports it.
pub(super) fn url_parse(s: &str) -> Value {
    let (rest, fragment) = s.split_once('#').unwrap_or((s, ""));
    let mut scheme = "";
    let mut rest = rest;
    if let Some(i) = rest.find(':') {
        let cand = &rest[..i];
        if !cand.is_empty()
            && cand.starts_with(|c: char| c.is_ascii_alphabetic())
            && cand
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            scheme = cand;
            rest = &rest[i + 1..];
        }
    }
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut opaque = "";
    let mut host = "";
    let mut userinfo = "";
    let mut path = rest;
    if !scheme.is_empty() && !rest.starts_with('/') {
        opaque = rest;
        path = "";
    } else if let Some(auth_path) = rest.strip_prefix("//") {
        let (auth, p) = match auth_path.find('/') {
            Some(i) => (&auth_path[..i], &auth_path[i..]),
            None => (auth_path, ""),
        };
        path = p;
        match auth.rfind('@') {
            Some(i) => {
                userinfo = &auth[..i];
                host = &auth[i + 1..];
            }
            None => host = auth,
        }
    }
    let hostname = if let Some(h) = host.strip_prefix('[') {
        h.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    let m: BTreeMap<String, Value> = [
        ("scheme", scheme.to_ascii_lowercase()),
        ("host", host.to_string()),
        ("hostname", hostname.to_string()),
        ("path", percent_decode(path)),
        ("query", query.to_string()),
        ("opaque", opaque.to_string()),
        ("fragment", percent_decode(fragment)),
        ("userinfo", userinfo.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Value::str(v)))
    .collect();
    new_map(m)
}

pub(super) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(super) fn url_join(a: Vec<Value>) -> FnResult {
    let d = d_arg(&a[0])?;
    let d = d.borrow();
    let get = |k: &str| {
        d.entries
            .get(k)
            .map(|v| text(&strval(v)).into_owned())
            .unwrap_or_default()
    };
    let (scheme, host, path, query, opaque, fragment, userinfo) = (
        get("scheme"),
        get("host"),
        get("path"),
        get("query"),
        get("opaque"),
        get("fragment"),
        get("userinfo"),
    );
    let mut out = String::new();
    if !scheme.is_empty() {
        out.push_str(&scheme);
        out.push(':');
    }
    if !opaque.is_empty() {
        out.push_str(&opaque);
    } else {
        if !scheme.is_empty() || !host.is_empty() || !userinfo.is_empty() {
            if !host.is_empty() || !path.is_empty() || !userinfo.is_empty() {
                out.push_str("//");
            }
            if !userinfo.is_empty() {
                out.push_str(&userinfo);
                out.push('@');
            }
            out.push_str(&host);
        }
        if !path.is_empty() && !path.starts_with('/') && !host.is_empty() {
            out.push('/');
        }
        let escaped: Vec<u8> = path
            .bytes()
            .flat_map(|c| {
                if c.is_ascii_alphanumeric() || b"-_.~/:@!$&'()*+,;=".contains(&c) {
                    vec![c]
                } else {
                    format!("%{c:02X}").into_bytes()
                }
            })
            .collect();
        out.push_str(&String::from_utf8_lossy(&escaped));
    }
    if !query.is_empty() {
        out.push('?');
        out.push_str(&query);
    }
    if !fragment.is_empty() {
        out.push('#');
        out.push_str(&fragment);
    }
    Ok(Value::str(out))
}
