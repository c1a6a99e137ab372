//! sprig's `semver` and `semverCompare` (Masterminds/semver v3): versions with an optional
//! `v`, missing minor/patch as 0, pre-release and metadata; constraints with `=`, `!=`, `>`,
//! `<`, `>=`, `<=`, `~`, `^`, wildcards (`x`, `X`, `*`), hyphen ranges, `,`/space (and) and
//! `||` (or). A constraint without a pre-release never matches a pre-release version.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::{Entry, Imp, call_err, t_arg};
use crate::value::Value;

pub const TABLE: &[Entry] = &[
    (
        "semver",
        1,
        Some(1),
        Imp::F(|a| {
            let v = Version::parse(&t_arg(&a[0])?).map_err(call_err)?;
            Ok(v.value())
        }),
    ),
    (
        "semverCompare",
        2,
        Some(2),
        Imp::F(|a| {
            let c = t_arg(&a[0])?;
            let v = Version::parse(&t_arg(&a[1])?).map_err(call_err)?;
            Ok(Value::Bool(matches(&c, &v).map_err(call_err)?))
        }),
    ),
];

#[derive(Clone, Debug, PartialEq, Eq)]
struct Version {
    major: u64,
    minor: u64,
    patch: u64,
    pre: String,
    meta: String,
    original: String,
}

const INVALID: &str = "Invalid Semantic Version";

/// Masterminds says `improper constraint: CONSTRAINT`; the constraint can be secret data
/// (`semverCompare .x "1.2.3"`), so it is not repeated.
const IMPROPER: &str = "improper constraint";

impl Version {
    fn parse(s: &str) -> Result<Version, String> {
        let t = s.strip_prefix('v').unwrap_or(s);
        let (t, meta) = t.split_once('+').unwrap_or((t, ""));
        let (core, pre) = t.split_once('-').unwrap_or((t, ""));
        let nums: Vec<&str> = core.split('.').collect();
        if nums.is_empty() || nums.len() > 3 || nums.iter().any(|n| n.is_empty()) {
            return Err(INVALID.into());
        }
        let num = |i: usize| -> Result<u64, String> {
            match nums.get(i) {
                None => Ok(0),
                Some(n) if n.bytes().all(|b| b.is_ascii_digit()) => {
                    n.parse().map_err(|_| INVALID.to_string())
                }
                Some(_) => Err(INVALID.into()),
            }
        };
        let ok_ident = |x: &str| {
            x.split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        };
        if (!pre.is_empty() && !ok_ident(pre)) || (!meta.is_empty() && !ok_ident(meta)) {
            return Err(INVALID.into());
        }
        if s.contains('+') && meta.is_empty() || t.contains('-') && pre.is_empty() {
            return Err(INVALID.into());
        }
        Ok(Version {
            major: num(0)?,
            minor: num(1)?,
            patch: num(2)?,
            pre: pre.to_string(),
            meta: meta.to_string(),
            original: s.to_string(),
        })
    }

    /// The version's fields as a template sees them (`.Major`, `.Minor`, …).
    fn value(&self) -> Value {
        let m: BTreeMap<String, Value> = [
            ("Major", Value::Int(self.major as i64)),
            ("Minor", Value::Int(self.minor as i64)),
            ("Patch", Value::Int(self.patch as i64)),
            ("Prerelease", Value::str(&self.pre)),
            ("Metadata", Value::str(&self.meta)),
            ("Original", Value::str(&self.original)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Value::map(m)
    }

    fn cmp(&self, o: &Version) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(o.major, o.minor, o.patch))
            .then_with(|| cmp_pre(&self.pre, &o.pre))
    }
}

/// Pre-release precedence (semver 2.0): none > some; numeric < alphanumeric; field by field.
fn cmp_pre(a: &str, b: &str) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        _ => {}
    }
    let (pa, pb): (Vec<&str>, Vec<&str>) = (a.split('.').collect(), b.split('.').collect());
    for (x, y) in pa.iter().zip(pb.iter()) {
        let o = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(i), Ok(j)) => i.cmp(&j),
            (Ok(_), Err(_)) => Ordering::Less,
            (Err(_), Ok(_)) => Ordering::Greater,
            _ => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    pa.len().cmp(&pb.len())
}

/// A constraint's version: parts may be wildcards or missing.
struct Partial {
    /// How many parts were given as numbers before the first wildcard or gap.
    exact: usize,
    version: Version,
}

fn partial(s: &str) -> Result<Partial, String> {
    let bad = || IMPROPER.to_string();
    let t = s.strip_prefix('v').unwrap_or(s);
    let (t, _) = t.split_once('+').unwrap_or((t, ""));
    let (core, pre) = t.split_once('-').unwrap_or((t, ""));
    let mut parts = [None; 3];
    let mut exact = 0;
    let mut wild = false;
    let items: Vec<&str> = core.split('.').collect();
    if items.len() > 3 || items.iter().any(|i| i.is_empty()) {
        return Err(bad());
    }
    for (i, p) in items.iter().enumerate() {
        if matches!(*p, "x" | "X" | "*") {
            wild = true;
            continue;
        }
        if wild {
            return Err(bad());
        }
        parts[i] = Some(p.parse().map_err(|_| bad())?);
        exact = i + 1;
    }
    let version = Version {
        major: parts[0].unwrap_or(0),
        minor: parts[1].unwrap_or(0),
        patch: parts[2].unwrap_or(0),
        pre: pre.to_string(),
        meta: String::new(),
        original: s.to_string(),
    };
    Ok(Partial { exact, version })
}

/// The smallest version above every version `p` stands for (`1.2` → `1.3.0`, `1` → `2.0.0`).
fn upper(p: &Partial) -> Option<Version> {
    let v = &p.version;
    let (maj, min, pat) = match p.exact {
        0 => return None,
        1 => (v.major + 1, 0, 0),
        2 => (v.major, v.minor + 1, 0),
        _ => return None,
    };
    Some(Version {
        major: maj,
        minor: min,
        patch: pat,
        pre: String::new(),
        meta: String::new(),
        original: String::new(),
    })
}

fn check(op: &str, p: &Partial, v: &Version) -> bool {
    let lo = &p.version;
    let wild = p.exact < 3;
    let ge = |x: &Version| v.cmp(x) != Ordering::Less;
    let lt = |x: &Version| v.cmp(x) == Ordering::Less;
    let in_range = || ge(lo) && upper(p).is_none_or(|u| lt(&u));
    match op {
        "" | "=" => {
            if wild {
                in_range()
            } else {
                v.cmp(lo) == Ordering::Equal
            }
        }
        "!=" => {
            if wild {
                !in_range()
            } else {
                v.cmp(lo) != Ordering::Equal
            }
        }
        ">" => match (wild, upper(p)) {
            (true, Some(u)) => ge(&u),
            (true, None) => false,
            (false, _) => v.cmp(lo) == Ordering::Greater,
        },
        ">=" => ge(lo),
        "<" => lt(lo),
        "<=" => match (wild, upper(p)) {
            (true, Some(u)) => lt(&u),
            (true, None) => true,
            (false, _) => v.cmp(lo) != Ordering::Greater,
        },
        "~" | "~>" => {
            let u = Version {
                major: if p.exact <= 1 { lo.major + 1 } else { lo.major },
                minor: if p.exact <= 1 { 0 } else { lo.minor + 1 },
                patch: 0,
                pre: String::new(),
                meta: String::new(),
                original: String::new(),
            };
            ge(lo) && (p.exact == 0 || lt(&u))
        }
        "^" => {
            let u = if lo.major > 0 || p.exact <= 1 {
                (lo.major + 1, 0, 0)
            } else if lo.minor > 0 || p.exact == 2 {
                (0, lo.minor + 1, 0)
            } else {
                (0, 0, lo.patch + 1)
            };
            let u = Version {
                major: u.0,
                minor: u.1,
                patch: u.2,
                pre: String::new(),
                meta: String::new(),
                original: String::new(),
            };
            ge(lo) && (p.exact == 0 || lt(&u))
        }
        _ => false,
    }
}

/// Does `v` satisfy constraint `c`?
fn matches(c: &str, v: &Version) -> Result<bool, String> {
    let mut any_or = false;
    for group in c.split("||") {
        let group = group.trim();
        // Hyphen range: `A - B`.
        let terms: Vec<(String, String)> = if let Some((a, b)) = group.split_once(" - ") {
            vec![
                (">=".into(), a.trim().into()),
                ("<=".into(), b.trim().into()),
            ]
        } else {
            let mut out = Vec::new();
            let mut tokens = group.split([',', ' ']).filter(|t| !t.is_empty()).peekable();
            while let Some(tok) = tokens.next() {
                let op_len = tok
                    .find(|ch: char| ch.is_ascii_alphanumeric() || ch == '*')
                    .unwrap_or(tok.len());
                let (op, ver) = tok.split_at(op_len);
                // `>= 1.2`: the version is the next token.
                let ver = if ver.is_empty() {
                    tokens.next().unwrap_or("").to_string()
                } else {
                    ver.to_string()
                };
                if ![
                    "", "=", "!=", ">", "<", ">=", "<=", "~", "~>", "^", "=>", "=<",
                ]
                .contains(&op)
                {
                    return Err(IMPROPER.into());
                }
                let op = match op {
                    "=>" => ">=",
                    "=<" => "<=",
                    o => o,
                };
                out.push((op.to_string(), ver));
            }
            out
        };
        if terms.is_empty() {
            return Err(IMPROPER.into());
        }
        let mut all = true;
        for (op, ver) in &terms {
            let p = partial(ver).map_err(|_| IMPROPER.to_string())?;
            // A pre-release version only matches range terms that name a pre-release
            // (exact `=` and `!=` compare as they are, as Masterminds does).
            let exact_eq = p.exact == 3 && matches!(op.as_str(), "" | "=" | "!=");
            let pre_excluded = !v.pre.is_empty() && p.version.pre.is_empty() && !exact_eq;
            if pre_excluded || !check(op, &p, v) {
                all = false;
            }
        }
        if all {
            any_or = true;
        }
    }
    Ok(any_or)
}
