//! sprig's functions as ESO exposes them (`sprig.TxtFuncMap()` minus `env`/`expandenv`),
//! with sprig's quirks kept: `b64dec` returns the error text instead of failing, `fromJson`
//! and `toJson` swallow errors, `default`/`empty` use Go's zero values, maps are shared
//! references (`set` changes the map in place).

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{
    Entry, FnError, FnResult, Imp, b_arg, call_err, count_arg, d_arg, i_arg, is_empty, l_arg,
    new_map, random_below, random_bytes, s_arg, str_list, strslice, strval, t_arg, to_float64,
    to_int64,
};
use crate::fmt::quote;
use crate::value::{Value, text, to_json};

/// Why the key and certificate generators are left out.
const KEYS: &str = "a template renders on every refresh, so a key or certificate made here would change on every sync, and RSA key generation can outlast the plugin deadline; make keys once with a generator (dataFrom.sourceRef.generatorRef) or cert-manager";

pub const TABLE: &[Entry] = &[
    ("hello", 0, Some(0), Imp::F(|_| Ok(Value::str("Hello!")))),
    // Strings.
    ("abbrev", 2, Some(2), Imp::F(abbrev)),
    ("abbrevboth", 3, Some(3), Imp::F(abbrevboth)),
    ("trunc", 2, Some(2), Imp::F(trunc)),
    (
        "trim",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::str(t_arg(&a[0])?.trim()))),
    ),
    (
        "upper",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::str(t_arg(&a[0])?.to_uppercase()))),
    ),
    (
        "lower",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::str(t_arg(&a[0])?.to_lowercase()))),
    ),
    (
        "title",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::str(title(&t_arg(&a[0])?)))),
    ),
    (
        "untitle",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::str(untitle(&t_arg(&a[0])?)))),
    ),
    ("substr", 3, Some(3), Imp::F(substr)),
    ("repeat", 2, Some(2), Imp::F(repeat)),
    ("trimall", 2, Some(2), Imp::F(trim_all)),
    ("trimAll", 2, Some(2), Imp::F(trim_all)),
    (
        "trimSuffix",
        2,
        Some(2),
        Imp::F(|a| {
            let (suf, s) = (s_arg(&a[0])?, s_arg(&a[1])?);
            Ok(Value::str(s.strip_suffix(&*suf).unwrap_or(&s)))
        }),
    ),
    (
        "trimPrefix",
        2,
        Some(2),
        Imp::F(|a| {
            let (pre, s) = (s_arg(&a[0])?, s_arg(&a[1])?);
            Ok(Value::str(s.strip_prefix(&*pre).unwrap_or(&s)))
        }),
    ),
    (
        "nospace",
        1,
        Some(1),
        Imp::F(|a| {
            Ok(Value::str(
                t_arg(&a[0])?
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect::<String>(),
            ))
        }),
    ),
    (
        "initials",
        1,
        Some(1),
        Imp::F(|a| {
            Ok(Value::str(
                t_arg(&a[0])?
                    .split_whitespace()
                    .filter_map(|w| w.chars().next())
                    .collect::<String>(),
            ))
        }),
    ),
    (
        "randAlphaNum",
        1,
        Some(1),
        Imp::F(|a| {
            random_string(
                &a[0],
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
            )
        }),
    ),
    (
        "randAlpha",
        1,
        Some(1),
        Imp::F(|a| {
            random_string(
                &a[0],
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
            )
        }),
    ),
    (
        "randAscii",
        1,
        Some(1),
        Imp::F(|a| {
            random_string(
                &a[0],
                " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~",
            )
        }),
    ),
    (
        "randNumeric",
        1,
        Some(1),
        Imp::F(|a| random_string(&a[0], "0123456789")),
    ),
    (
        "swapcase",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::str(swapcase(&t_arg(&a[0])?)))),
    ),
    ("shuffle", 1, Some(1), Imp::F(shuffle)),
    (
        "snakecase",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::str(words(&t_arg(&a[0])?).join("_")))),
    ),
    (
        "camelcase",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::str(camelcase(&t_arg(&a[0])?)))),
    ),
    (
        "kebabcase",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::str(words(&t_arg(&a[0])?).join("-")))),
    ),
    (
        "wrap",
        2,
        Some(2),
        Imp::F(|a| {
            Ok(Value::str(wrap(
                &s_arg(&a[1])?,
                i_arg(&a[0])?,
                b"\n",
                false,
            )))
        }),
    ),
    (
        "wrapWith",
        3,
        Some(3),
        Imp::F(|a| {
            Ok(Value::str(wrap(
                &s_arg(&a[2])?,
                i_arg(&a[0])?,
                &s_arg(&a[1])?,
                true,
            )))
        }),
    ),
    (
        "contains",
        2,
        Some(2),
        Imp::F(|a| {
            let (sub, s) = (s_arg(&a[0])?, s_arg(&a[1])?);
            Ok(Value::Bool(find(&s, &sub).is_some()))
        }),
    ),
    (
        "hasPrefix",
        2,
        Some(2),
        Imp::F(|a| Ok(Value::Bool(s_arg(&a[1])?.starts_with(&s_arg(&a[0])?)))),
    ),
    (
        "hasSuffix",
        2,
        Some(2),
        Imp::F(|a| Ok(Value::Bool(s_arg(&a[1])?.ends_with(&s_arg(&a[0])?)))),
    ),
    (
        "quote",
        0,
        None,
        Imp::F(|a| Ok(Value::str(quote_all(&a, |s| quote(&s, false).into_bytes())))),
    ),
    (
        "squote",
        0,
        None,
        Imp::F(|a| {
            Ok(Value::str(quote_all(&a, |s| {
                [b"'".as_slice(), &s, b"'"].concat()
            })))
        }),
    ),
    (
        "cat",
        0,
        None,
        Imp::F(|a| {
            let parts: Vec<Vec<u8>> = a
                .iter()
                .filter(|v| !matches!(v, Value::Nil))
                .map(strval)
                .collect();
            Ok(Value::str(parts.join(&b' ')))
        }),
    ),
    (
        "indent",
        2,
        Some(2),
        Imp::F(|a| Ok(Value::str(indent(count_arg(&a[0])?, &s_arg(&a[1])?)))),
    ),
    (
        "nindent",
        2,
        Some(2),
        Imp::F(|a| {
            Ok(Value::str(
                [b"\n".as_slice(), &indent(count_arg(&a[0])?, &s_arg(&a[1])?)].concat(),
            ))
        }),
    ),
    (
        "replace",
        3,
        Some(3),
        Imp::F(|a| {
            let (old, new, src) = (s_arg(&a[0])?, s_arg(&a[1])?, s_arg(&a[2])?);
            Ok(Value::str(replace_all(&src, &old, &new)))
        }),
    ),
    (
        "plural",
        3,
        Some(3),
        Imp::F(|a| {
            let n = i_arg(&a[2])?;
            Ok(if n == 1 {
                Value::Str(s_arg(&a[0])?)
            } else {
                Value::Str(s_arg(&a[1])?)
            })
        }),
    ),
    (
        "sha1sum",
        1,
        Some(1),
        Imp::F(|a| {
            use sha1::Digest;
            Ok(Value::str(hex::encode(sha1::Sha1::digest(s_arg(&a[0])?))))
        }),
    ),
    (
        "sha256sum",
        1,
        Some(1),
        Imp::F(|a| {
            use sha2::Digest;
            Ok(Value::str(hex::encode(sha2::Sha256::digest(s_arg(&a[0])?))))
        }),
    ),
    (
        "sha512sum",
        1,
        Some(1),
        Imp::F(|a| {
            use sha2::Digest;
            Ok(Value::str(hex::encode(sha2::Sha512::digest(s_arg(&a[0])?))))
        }),
    ),
    (
        "adler32sum",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::str(adler32(&s_arg(&a[0])?).to_string()))),
    ),
    (
        "toString",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::str(strval(&a[0])))),
    ),
    (
        "atoi",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::Int(t_arg(&a[0])?.parse::<i64>().unwrap_or(0)))),
    ),
    (
        "int64",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::Int(to_int64(&a[0])))),
    ),
    (
        "int",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::Int(to_int64(&a[0])))),
    ),
    (
        "float64",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::Float(to_float64(&a[0])))),
    ),
    ("seq", 0, None, Imp::F(seq)),
    (
        "toDecimal",
        1,
        Some(1),
        Imp::F(|a| {
            Ok(Value::Int(
                i64::from_str_radix(&text(&strval(&a[0])), 8).unwrap_or(0),
            ))
        }),
    ),
    ("split", 2, Some(2), Imp::F(|a| split(&a[0], &a[1], -1))),
    (
        "splitList",
        2,
        Some(2),
        Imp::F(|a| {
            let (sep, s) = (s_arg(&a[0])?, s_arg(&a[1])?);
            Ok(str_list(go_split(&s, &sep, -1)))
        }),
    ),
    (
        "splitn",
        3,
        Some(3),
        Imp::F(|a| split(&a[0], &a[2], i_arg(&a[1])?)),
    ),
    (
        "toStrings",
        1,
        Some(1),
        Imp::F(|a| Ok(str_list(strslice(&a[0])))),
    ),
    (
        "until",
        1,
        Some(1),
        Imp::F(|a| {
            let n = i_arg(&a[0])?;
            Ok(int_list(until_step(0, n, if n < 0 { -1 } else { 1 })?))
        }),
    ),
    (
        "untilStep",
        3,
        Some(3),
        Imp::F(|a| {
            Ok(int_list(until_step(
                i_arg(&a[0])?,
                i_arg(&a[1])?,
                i_arg(&a[2])?,
            )?))
        }),
    ),
    // Arithmetic.
    (
        "add1",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::Int(to_int64(&a[0]).wrapping_add(1)))),
    ),
    (
        "add",
        0,
        None,
        Imp::F(|a| {
            Ok(Value::Int(
                a.iter().map(to_int64).fold(0i64, i64::wrapping_add),
            ))
        }),
    ),
    (
        "sub",
        2,
        Some(2),
        Imp::F(|a| Ok(Value::Int(to_int64(&a[0]).wrapping_sub(to_int64(&a[1]))))),
    ),
    (
        "div",
        2,
        Some(2),
        Imp::F(|a| {
            let d = to_int64(&a[1]);
            if d == 0 {
                return Err(call_err("runtime error: integer divide by zero"));
            }
            Ok(Value::Int(to_int64(&a[0]).wrapping_div(d)))
        }),
    ),
    (
        "mod",
        2,
        Some(2),
        Imp::F(|a| {
            let d = to_int64(&a[1]);
            if d == 0 {
                return Err(call_err("runtime error: integer divide by zero"));
            }
            Ok(Value::Int(to_int64(&a[0]).wrapping_rem(d)))
        }),
    ),
    (
        "mul",
        1,
        None,
        Imp::F(|a| {
            Ok(Value::Int(
                a.iter().map(to_int64).fold(1i64, i64::wrapping_mul),
            ))
        }),
    ),
    (
        "randInt",
        2,
        Some(2),
        Imp::F(|a| {
            let (lo, hi) = (i_arg(&a[0])?, i_arg(&a[1])?);
            if hi <= lo {
                return Err(call_err("invalid argument to Intn"));
            }
            Ok(Value::Int(lo + random_below((hi - lo) as u64)? as i64))
        }),
    ),
    (
        "add1f",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::Float(decimal_fold(&a[0], &[Value::Int(1)], Op::Add)))),
    ),
    (
        "addf",
        0,
        None,
        Imp::F(|a| Ok(Value::Float(decimal_fold(&Value::Float(0.0), &a, Op::Add)))),
    ),
    (
        "subf",
        1,
        None,
        Imp::F(|a| Ok(Value::Float(decimal_fold(&a[0], &a[1..], Op::Sub)))),
    ),
    (
        "divf",
        1,
        None,
        Imp::F(|a| Ok(Value::Float(decimal_fold(&a[0], &a[1..], Op::Div)))),
    ),
    (
        "mulf",
        1,
        None,
        Imp::F(|a| Ok(Value::Float(decimal_fold(&a[0], &a[1..], Op::Mul)))),
    ),
    (
        "biggest",
        1,
        None,
        Imp::F(|a| Ok(Value::Int(a.iter().map(to_int64).max().unwrap_or(0)))),
    ),
    (
        "max",
        1,
        None,
        Imp::F(|a| Ok(Value::Int(a.iter().map(to_int64).max().unwrap_or(0)))),
    ),
    (
        "min",
        1,
        None,
        Imp::F(|a| Ok(Value::Int(a.iter().map(to_int64).min().unwrap_or(0)))),
    ),
    (
        "maxf",
        1,
        None,
        Imp::F(|a| {
            Ok(Value::Float(
                a.iter().map(to_float64).fold(f64::NEG_INFINITY, f64::max),
            ))
        }),
    ),
    (
        "minf",
        1,
        None,
        Imp::F(|a| {
            Ok(Value::Float(
                a.iter().map(to_float64).fold(f64::INFINITY, f64::min),
            ))
        }),
    ),
    (
        "ceil",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::Float(to_float64(&a[0]).ceil()))),
    ),
    (
        "floor",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::Float(to_float64(&a[0]).floor()))),
    ),
    ("round", 2, Some(3), Imp::F(round)),
    (
        "join",
        2,
        Some(2),
        Imp::F(|a| {
            let sep = s_arg(&a[0])?;
            Ok(Value::str(strslice(&a[1]).join(&*sep)))
        }),
    ),
    (
        "sortAlpha",
        1,
        Some(1),
        Imp::F(|a| {
            let mut v = match &a[0] {
                Value::List(_) => strslice(&a[0]),
                other => vec![strval(other)],
            };
            v.sort();
            Ok(str_list(v))
        }),
    ),
    // Defaults and JSON.
    (
        "default",
        1,
        None,
        Imp::F(|a| {
            Ok(match a.get(1) {
                Some(given) if !is_empty(given) => given.clone(),
                _ => a[0].clone(),
            })
        }),
    ),
    (
        "empty",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::Bool(is_empty(&a[0])))),
    ),
    (
        "coalesce",
        0,
        None,
        Imp::F(|a| Ok(a.into_iter().find(|v| !is_empty(v)).unwrap_or(Value::Nil))),
    ),
    (
        "all",
        0,
        None,
        Imp::F(|a| Ok(Value::Bool(a.iter().all(|v| !is_empty(v))))),
    ),
    (
        "any",
        0,
        None,
        Imp::F(|a| Ok(Value::Bool(a.iter().any(|v| !is_empty(v))))),
    ),
    ("compact", 1, Some(1), Imp::F(compact)),
    ("mustCompact", 1, Some(1), Imp::F(compact)),
    (
        "fromJson",
        1,
        Some(1),
        Imp::F(|a| Ok(from_json(&s_arg(&a[0])?).unwrap_or(Value::Nil))),
    ),
    (
        "mustFromJson",
        1,
        Some(1),
        Imp::F(|a| from_json(&s_arg(&a[0])?)),
    ),
    (
        "toJson",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::str(to_json(&a[0], true, None).unwrap_or_default()))),
    ),
    (
        "toPrettyJson",
        1,
        Some(1),
        Imp::F(|a| {
            Ok(Value::str(
                to_json(&a[0], true, Some("  ")).unwrap_or_default(),
            ))
        }),
    ),
    (
        "toRawJson",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::str(to_json(&a[0], false, None).unwrap_or_default()))),
    ),
    (
        "mustToJson",
        1,
        Some(1),
        Imp::F(|a| must_json(&a[0], true, None)),
    ),
    (
        "mustToPrettyJson",
        1,
        Some(1),
        Imp::F(|a| must_json(&a[0], true, Some("  "))),
    ),
    (
        "mustToRawJson",
        1,
        Some(1),
        Imp::F(|a| must_json(&a[0], false, None)),
    ),
    (
        "ternary",
        3,
        Some(3),
        Imp::F(|a| {
            Ok(if b_arg(&a[2])? {
                a[0].clone()
            } else {
                a[1].clone()
            })
        }),
    ),
    ("deepCopy", 1, Some(1), Imp::F(|a| Ok(deep_copy(&a[0])))),
    ("mustDeepCopy", 1, Some(1), Imp::F(|a| Ok(deep_copy(&a[0])))),
    // Reflection.
    (
        "typeOf",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::str(a[0].type_name()))),
    ),
    (
        "typeIs",
        2,
        Some(2),
        Imp::F(|a| Ok(Value::Bool(*s_arg(&a[0])? == *a[1].type_name().as_bytes()))),
    ),
    (
        "typeIsLike",
        2,
        Some(2),
        Imp::F(|a| {
            let t = s_arg(&a[0])?;
            let n = a[1].type_name().as_bytes();
            Ok(Value::Bool(*t == *n || [b"*".as_slice(), &t].concat() == n))
        }),
    ),
    (
        "kindOf",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::str(a[0].kind_name()))),
    ),
    (
        "kindIs",
        2,
        Some(2),
        Imp::F(|a| Ok(Value::Bool(*s_arg(&a[0])? == *a[1].kind_name().as_bytes()))),
    ),
    (
        "deepEqual",
        2,
        Some(2),
        Imp::F(|a| Ok(Value::Bool(a[0].deep_equal(&a[1])))),
    ),
    // Paths (Linux: filepath and path agree).
    (
        "base",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::str(path_base(&t_arg(&a[0])?)))),
    ),
    (
        "dir",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::str(path_dir(&t_arg(&a[0])?)))),
    ),
    (
        "clean",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::str(path_clean(&t_arg(&a[0])?)))),
    ),
    (
        "ext",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::str(path_ext(&t_arg(&a[0])?)))),
    ),
    (
        "isAbs",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::Bool(s_arg(&a[0])?.starts_with(b"/")))),
    ),
    (
        "osBase",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::str(path_base(&t_arg(&a[0])?)))),
    ),
    (
        "osDir",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::str(path_dir(&t_arg(&a[0])?)))),
    ),
    (
        "osClean",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::str(path_clean(&t_arg(&a[0])?)))),
    ),
    (
        "osExt",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::str(path_ext(&t_arg(&a[0])?)))),
    ),
    (
        "osIsAbs",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::Bool(s_arg(&a[0])?.starts_with(b"/")))),
    ),
    // Encoding.
    (
        "b64enc",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::str(STANDARD.encode(s_arg(&a[0])?)))),
    ),
    (
        "b64dec",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::str(b64dec(&s_arg(&a[0])?)))),
    ),
    (
        "b32enc",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::str(b32enc(&s_arg(&a[0])?)))),
    ),
    (
        "b32dec",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::str(b32dec(&s_arg(&a[0])?)))),
    ),
    (
        "hexdec",
        1,
        Some(1),
        Imp::F(|a| {
            let s = s_arg(&a[0])?;
            Ok(Value::str(hex::decode(&*s).map_err(|_| {
                call_err("encoding/hex: invalid byte or odd length")
            })?))
        }),
    ),
    // Lists and dicts.
    ("tuple", 0, None, Imp::F(|a| Ok(Value::list(a)))),
    ("list", 0, None, Imp::F(|a| Ok(Value::list(a)))),
    ("dict", 0, None, Imp::F(dict)),
    (
        "get",
        2,
        Some(2),
        Imp::F(|a| {
            let d = d_arg(&a[0])?;
            let k = t_arg(&a[1])?;
            Ok(d.borrow()
                .entries
                .get(&k)
                .cloned()
                .unwrap_or_else(|| Value::str("")))
        }),
    ),
    (
        "set",
        3,
        Some(3),
        Imp::F(|a| {
            let d = d_arg(&a[0])?;
            let k = t_arg(&a[1])?;
            d.borrow_mut().entries.insert(k, a[2].clone());
            Ok(Value::Map(d))
        }),
    ),
    (
        "unset",
        2,
        Some(2),
        Imp::F(|a| {
            let d = d_arg(&a[0])?;
            let k = t_arg(&a[1])?;
            d.borrow_mut().entries.remove(&k);
            Ok(Value::Map(d))
        }),
    ),
    (
        "hasKey",
        2,
        Some(2),
        Imp::F(|a| {
            let d = d_arg(&a[0])?;
            Ok(Value::Bool(d.borrow().entries.contains_key(&t_arg(&a[1])?)))
        }),
    ),
    (
        "pluck",
        1,
        None,
        Imp::F(|a| {
            let k = t_arg(&a[0])?;
            let mut out = Vec::new();
            for d in &a[1..] {
                if let Some(v) = d_arg(d)?.borrow().entries.get(&k) {
                    out.push(v.clone());
                }
            }
            Ok(Value::list(out))
        }),
    ),
    (
        "keys",
        0,
        None,
        Imp::F(|a| {
            let mut out = Vec::new();
            for d in &a {
                out.extend(d_arg(d)?.borrow().entries.keys().cloned());
            }
            Ok(str_list(out))
        }),
    ),
    (
        "pick",
        1,
        None,
        Imp::F(|a| {
            let d = d_arg(&a[0])?;
            let d = d.borrow();
            let mut out = BTreeMap::new();
            for k in &a[1..] {
                let k = t_arg(k)?;
                if let Some(v) = d.entries.get(&k) {
                    out.insert(k, v.clone());
                }
            }
            Ok(new_map(out))
        }),
    ),
    (
        "omit",
        1,
        None,
        Imp::F(|a| {
            let d = d_arg(&a[0])?;
            let mut out = d.borrow().entries.clone();
            for k in &a[1..] {
                out.remove(&t_arg(k)?);
            }
            Ok(new_map(out))
        }),
    ),
    ("merge", 1, None, Imp::F(|a| merge(a, false))),
    ("mergeOverwrite", 1, None, Imp::F(|a| merge(a, true))),
    ("mustMerge", 1, None, Imp::F(|a| merge(a, false))),
    ("mustMergeOverwrite", 1, None, Imp::F(|a| merge(a, true))),
    (
        "values",
        1,
        Some(1),
        Imp::F(|a| {
            Ok(Value::list(
                d_arg(&a[0])?.borrow().entries.values().cloned().collect(),
            ))
        }),
    ),
    ("append", 2, Some(2), Imp::F(push)),
    ("push", 2, Some(2), Imp::F(push)),
    ("mustAppend", 2, Some(2), Imp::F(push)),
    ("mustPush", 2, Some(2), Imp::F(push)),
    ("prepend", 2, Some(2), Imp::F(prepend)),
    ("mustPrepend", 2, Some(2), Imp::F(prepend)),
    ("first", 1, Some(1), Imp::F(list_first)),
    ("mustFirst", 1, Some(1), Imp::F(list_first)),
    ("last", 1, Some(1), Imp::F(list_last)),
    ("mustLast", 1, Some(1), Imp::F(list_last)),
    ("rest", 1, Some(1), Imp::F(list_rest)),
    ("mustRest", 1, Some(1), Imp::F(list_rest)),
    ("initial", 1, Some(1), Imp::F(list_initial)),
    ("mustInitial", 1, Some(1), Imp::F(list_initial)),
    ("reverse", 1, Some(1), Imp::F(list_reverse)),
    ("mustReverse", 1, Some(1), Imp::F(list_reverse)),
    ("uniq", 1, Some(1), Imp::F(uniq)),
    ("mustUniq", 1, Some(1), Imp::F(uniq)),
    ("without", 1, None, Imp::F(without)),
    ("mustWithout", 1, None, Imp::F(without)),
    ("has", 2, Some(2), Imp::F(has)),
    ("mustHas", 2, Some(2), Imp::F(has)),
    ("slice", 1, None, Imp::F(slice)),
    ("mustSlice", 1, None, Imp::F(slice)),
    (
        "concat",
        0,
        None,
        Imp::F(|a| {
            let mut out = Vec::new();
            for l in &a {
                out.extend(l_arg(l, "concat")?.iter().cloned());
            }
            Ok(Value::list(out))
        }),
    ),
    ("dig", 2, None, Imp::F(dig)),
    ("chunk", 2, Some(2), Imp::F(chunk)),
    ("mustChunk", 2, Some(2), Imp::F(chunk)),
    // Crypto and random.
    (
        "bcrypt",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::str(bcrypt_hash(&s_arg(&a[0])?)?))),
    ),
    (
        "htpasswd",
        2,
        Some(2),
        Imp::F(|a| {
            let (user, pass) = (t_arg(&a[0])?, s_arg(&a[1])?);
            if user.contains(':') {
                return Ok(Value::str(format!("invalid username: {user}")));
            }
            Ok(Value::str(format!("{user}:{}", bcrypt_hash(&pass)?)))
        }),
    ),
    ("genPrivateKey", 1, Some(1), Imp::Unsupported(KEYS)),
    ("derivePassword", 5, Some(5), Imp::F(derive_password)),
    ("buildCustomCert", 2, Some(2), Imp::Unsupported(KEYS)),
    ("genCA", 2, Some(2), Imp::Unsupported(KEYS)),
    ("genCAWithKey", 3, Some(3), Imp::Unsupported(KEYS)),
    ("genSelfSignedCert", 4, Some(4), Imp::Unsupported(KEYS)),
    (
        "genSelfSignedCertWithKey",
        5,
        Some(5),
        Imp::Unsupported(KEYS),
    ),
    ("genSignedCert", 5, Some(5), Imp::Unsupported(KEYS)),
    ("genSignedCertWithKey", 6, Some(6), Imp::Unsupported(KEYS)),
    ("encryptAES", 2, Some(2), Imp::F(encrypt_aes)),
    ("decryptAES", 2, Some(2), Imp::F(decrypt_aes)),
    (
        "randBytes",
        1,
        Some(1),
        Imp::F(|a| {
            let n = count_arg(&a[0])?;
            Ok(Value::str(STANDARD.encode(random_bytes(n)?)))
        }),
    ),
    (
        "uuidv4",
        0,
        Some(0),
        Imp::F(|_| {
            let mut b = random_bytes(16)?;
            b[6] = (b[6] & 0x0f) | 0x40;
            b[8] = (b[8] & 0x3f) | 0x80;
            let h = hex::encode(b);
            Ok(Value::str(format!(
                "{}-{}-{}-{}-{}",
                &h[0..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..]
            )))
        }),
    ),
    ("fail", 1, Some(1), Imp::F(|a| Err(call_err(t_arg(&a[0])?)))),
    // Regular expressions (Go's RE2 syntax; Rust's regex crate implements the same).
    // sprig's regexMatch answers false for a bad pattern; mustRegexMatch fails.
    (
        "regexMatch",
        2,
        Some(2),
        Imp::F(|a| {
            let s = t_arg(&a[1])?;
            Ok(Value::Bool(re(&a[0]).is_ok_and(|r| r.is_match(&s))))
        }),
    ),
    (
        "mustRegexMatch",
        2,
        Some(2),
        Imp::F(|a| Ok(Value::Bool(re(&a[0])?.is_match(&t_arg(&a[1])?)))),
    ),
    ("regexFindAll", 3, Some(3), Imp::F(regex_find_all)),
    ("mustRegexFindAll", 3, Some(3), Imp::F(regex_find_all)),
    ("regexFind", 2, Some(2), Imp::F(regex_find)),
    ("mustRegexFind", 2, Some(2), Imp::F(regex_find)),
    ("regexReplaceAll", 3, Some(3), Imp::F(regex_replace_all)),
    ("mustRegexReplaceAll", 3, Some(3), Imp::F(regex_replace_all)),
    (
        "regexReplaceAllLiteral",
        3,
        Some(3),
        Imp::F(regex_replace_literal),
    ),
    (
        "mustRegexReplaceAllLiteral",
        3,
        Some(3),
        Imp::F(regex_replace_literal),
    ),
    ("regexSplit", 3, Some(3), Imp::F(regex_split)),
    ("mustRegexSplit", 3, Some(3), Imp::F(regex_split)),
    (
        "regexQuoteMeta",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::str(regex::escape(&t_arg(&a[0])?)))),
    ),
    // URLs.
    (
        "urlParse",
        1,
        Some(1),
        Imp::F(|a| Ok(url_parse(&t_arg(&a[0])?))),
    ),
    ("urlJoin", 1, Some(1), Imp::F(url_join)),
];

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

fn replace_all(src: &[u8], old: &[u8], new: &[u8]) -> Vec<u8> {
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
fn go_split(s: &[u8], sep: &[u8], n: i64) -> Vec<Vec<u8>> {
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

fn split(sep: &Value, s: &Value, n: i64) -> FnResult {
    let parts = go_split(&s_arg(s)?, &s_arg(sep)?, n);
    Ok(new_map(
        parts
            .into_iter()
            .enumerate()
            .map(|(i, p)| (format!("_{i}"), Value::str(p)))
            .collect(),
    ))
}

fn abbrev(a: Vec<Value>) -> FnResult {
    let (w, s) = (i_arg(&a[0])?, s_arg(&a[1])?);
    if w < 4 || s.len() as i64 <= w {
        return Ok(Value::Str(s));
    }
    Ok(Value::str([&s[..(w - 3) as usize], b"..."].concat()))
}

fn abbrevboth(a: Vec<Value>) -> FnResult {
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

fn trunc(a: Vec<Value>) -> FnResult {
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

fn substr(a: Vec<Value>) -> FnResult {
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

fn repeat(a: Vec<Value>) -> FnResult {
    let (n, s) = (i_arg(&a[0])?, s_arg(&a[1])?);
    if n < 0 {
        return Err(call_err("strings: negative Repeat count"));
    }
    if (n as u128) * (s.len() as u128) > crate::exec::MAX_OUTPUT as u128 {
        return Err(call_err("strings: Repeat output length overflow"));
    }
    Ok(Value::str(s.repeat(n as usize)))
}

fn trim_all(a: Vec<Value>) -> FnResult {
    let (cut, s) = (t_arg(&a[0])?, t_arg(&a[1])?);
    Ok(Value::str(s.trim_matches(|c| cut.contains(c))))
}

/// strings.Title: upper-case the first letter of each word.
fn title(s: &str) -> String {
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

fn is_separator(c: char) -> bool {
    if c.is_ascii() {
        return !(c.is_ascii_alphanumeric() || c == '_');
    }
    if c.is_alphanumeric() {
        return false;
    }
    c.is_whitespace()
}

/// goutils.Uncapitalize: lower-case the first letter of each whitespace-separated word.
fn untitle(s: &str) -> String {
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

fn swapcase(s: &str) -> String {
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
fn words(s: &str) -> Vec<String> {
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
fn camelcase(s: &str) -> String {
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
fn wrap(s: &[u8], width: i64, nl: &[u8], long_words: bool) -> Vec<u8> {
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

fn quote_all(a: &[Value], f: impl Fn(Vec<u8>) -> Vec<u8>) -> Vec<u8> {
    let parts: Vec<Vec<u8>> = a
        .iter()
        .filter(|v| !matches!(v, Value::Nil))
        .map(|v| f(strval(v)))
        .collect();
    parts.join(&b' ')
}

fn indent(n: usize, s: &[u8]) -> Vec<u8> {
    let pad = vec![b' '; n];
    let mut with_nl = b"\n".to_vec();
    with_nl.extend_from_slice(&pad);
    [pad.clone(), replace_all(s, b"\n", &with_nl)].concat()
}

fn adler32(b: &[u8]) -> u32 {
    let (mut a, mut s) = (1u32, 0u32);
    for &x in b {
        a = (a + u32::from(x)) % 65521;
        s = (s + a) % 65521;
    }
    (s << 16) | a
}

fn random_string(n: &Value, alphabet: &str) -> FnResult {
    let n = count_arg(n)?;
    let chars: Vec<char> = alphabet.chars().collect();
    let mut out = String::with_capacity(n);
    for _ in 0..n {
        out.push(chars[random_below(chars.len() as u64)? as usize]);
    }
    Ok(Value::str(out))
}

fn shuffle(a: Vec<Value>) -> FnResult {
    let mut cs: Vec<char> = t_arg(&a[0])?.chars().collect();
    for i in (1..cs.len()).rev() {
        let j = random_below(i as u64 + 1)? as usize;
        cs.swap(i, j);
    }
    Ok(Value::str(cs.into_iter().collect::<String>()))
}

/// Lists longer than this are refused: no Secret needs them, and they would only exhaust the
/// sandbox's memory.
const MAX_LIST: usize = 1_000_000;

fn until_step(start: i64, stop: i64, step: i64) -> Result<Vec<i64>, FnError> {
    let mut v = Vec::new();
    let mut i = start;
    let ascending = stop >= start;
    if (ascending && step <= 0) || (!ascending && step >= 0) {
        return Ok(v);
    }
    while (ascending && i < stop) || (!ascending && i > stop) {
        if v.len() == MAX_LIST {
            return Err(call_err(format!("more than {MAX_LIST} items")));
        }
        v.push(i);
        match i.checked_add(step) {
            Some(n) => i = n,
            None => break,
        }
    }
    Ok(v)
}

fn int_list(v: Vec<i64>) -> Value {
    Value::list(v.into_iter().map(Value::Int).collect())
}

fn seq(a: Vec<Value>) -> FnResult {
    let p: Vec<i64> = a.iter().map(i_arg).collect::<Result<_, _>>()?;
    let v = match p.as_slice() {
        [end] => {
            let inc = if *end < 1 { -1 } else { 1 };
            until_step(1, end.saturating_add(inc), inc)?
        }
        [start, end] => {
            let step = if end < start { -1 } else { 1 };
            until_step(*start, end.saturating_add(step), step)?
        }
        [start, step, end] => {
            let inc = if end < start { -1 } else { 1 };
            if end < start && *step > 0 {
                Vec::new()
            } else {
                until_step(*start, end.saturating_add(inc), *step)?
            }
        }
        _ => Vec::new(),
    };
    Ok(Value::str(
        v.iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(" "),
    ))
}

#[derive(Clone, Copy)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
}

/// A decimal as mantissa × 10^-scale, exact for the shortest form of a float64.
fn to_decimal(f: f64) -> Option<(i128, u32)> {
    let s = crate::value::format_f_shortest(f);
    let (int, frac) = s.split_once('.').unwrap_or((&s, ""));
    let m: i128 = format!("{int}{frac}").parse().ok()?;
    Some((m, frac.len() as u32))
}

fn decimal_op(a: f64, b: f64, op: Op) -> Option<f64> {
    let ((ma, sa), (mb, sb)) = (to_decimal(a)?, to_decimal(b)?);
    let scale = sa.max(sb);
    let ma = ma.checked_mul(10i128.checked_pow(scale - sa)?)?;
    let mb = mb.checked_mul(10i128.checked_pow(scale - sb)?)?;
    let (m, s) = match op {
        Op::Add => (ma.checked_add(mb)?, scale),
        Op::Sub => (ma.checked_sub(mb)?, scale),
        Op::Mul => (ma.checked_mul(mb)?, scale * 2),
        Op::Div => {
            if mb == 0 {
                return None;
            }
            // shopspring/decimal divides to 16 places, rounding half away from zero.
            let num = ma.checked_mul(10i128.pow(17))?;
            let q = num / mb;
            let r = if q >= 0 { (q + 5) / 10 } else { (q - 5) / 10 };
            (r, 16)
        }
    };
    format!("{}e-{}", m, s).parse().ok()
}

fn decimal_fold(first: &Value, rest: &[Value], op: Op) -> f64 {
    let mut acc = to_float64(first);
    for v in rest {
        let b = to_float64(v);
        acc = decimal_op(acc, b, op).unwrap_or(match op {
            Op::Add => acc + b,
            Op::Sub => acc - b,
            Op::Mul => acc * b,
            Op::Div => acc / b,
        });
    }
    acc
}

fn round(a: Vec<Value>) -> FnResult {
    let val = to_float64(&a[0]);
    let places = i_arg(&a[1])? as f64;
    let on = a.get(2).map(to_float64).unwrap_or(0.5);
    let pow = 10f64.powf(places);
    let digit = pow * val;
    let frac = digit.fract();
    let r = if frac >= on {
        digit.ceil()
    } else {
        digit.floor()
    };
    Ok(Value::Float(r / pow))
}

fn compact(a: Vec<Value>) -> FnResult {
    let l = l_arg(&a[0], "compact")?;
    Ok(Value::list(
        l.iter().filter(|v| !is_empty(v)).cloned().collect(),
    ))
}

fn from_json(b: &[u8]) -> FnResult {
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

fn must_json(v: &Value, esc: bool, indent: Option<&str>) -> FnResult {
    to_json(v, esc, indent)
        .map(Value::str)
        .ok_or_else(|| call_err("json: unsupported value: NaN or Inf"))
}

fn deep_copy(v: &Value) -> Value {
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

fn path_clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

fn path_base(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return "/".into();
    }
    t.rsplit('/').next().unwrap_or(t).to_string()
}

fn path_dir(p: &str) -> String {
    let dir = match p.rfind('/') {
        Some(i) => &p[..=i],
        None => "",
    };
    path_clean(dir)
}

fn path_ext(p: &str) -> String {
    for (i, c) in p.char_indices().rev() {
        if c == '/' {
            break;
        }
        if c == '.' {
            return p[i..].to_string();
        }
    }
    String::new()
}

/// Go's base64.StdEncoding.DecodeString; sprig returns the error text as the value.
fn b64dec(s: &[u8]) -> Vec<u8> {
    let clean: Vec<u8> = s
        .iter()
        .copied()
        .filter(|b| *b != b'\r' && *b != b'\n')
        .collect();
    // Go's StdEncoding requires padding but ignores non-zero trailing bits.
    const GO_STD: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    match GO_STD.decode(&clean) {
        Ok(v) => v,
        Err(e) => {
            let at = match e {
                base64::DecodeError::InvalidByte(i, _) => i,
                base64::DecodeError::InvalidLastSymbol { offset, .. } => offset,
                // Go reports where the incomplete quantum starts.
                base64::DecodeError::InvalidLength(_) | base64::DecodeError::InvalidPadding => {
                    clean.len() - clean.len() % 4
                }
            };
            format!("illegal base64 data at input byte {at}").into_bytes()
        }
    }
}

const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

fn b32enc(b: &[u8]) -> String {
    let mut out = String::new();
    for chunk in b.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let n = u64::from_be_bytes([0, 0, 0, buf[0], buf[1], buf[2], buf[3], buf[4]]);
        let chars = match chunk.len() {
            1 => 2,
            2 => 4,
            3 => 5,
            4 => 7,
            _ => 8,
        };
        for i in 0..8 {
            if i < chars {
                out.push(B32[((n >> (35 - 5 * i)) & 31) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn b32dec(s: &[u8]) -> Vec<u8> {
    let clean: Vec<u8> = s
        .iter()
        .copied()
        .filter(|b| *b != b'\r' && *b != b'\n')
        .collect();
    if !clean.len().is_multiple_of(8) {
        return format!(
            "illegal base32 data at input byte {}",
            clean.len() - clean.len() % 8
        )
        .into_bytes();
    }
    let mut out = Vec::new();
    for (ci, chunk) in clean.chunks(8).enumerate() {
        let pad = chunk.iter().rev().take_while(|b| **b == b'=').count();
        let mut n: u64 = 0;
        for (i, &c) in chunk.iter().enumerate() {
            let v = if i >= 8 - pad {
                0
            } else {
                match B32.iter().position(|x| *x == c) {
                    Some(v) => v as u64,
                    None => {
                        return format!("illegal base32 data at input byte {}", ci * 8 + i)
                            .into_bytes();
                    }
                }
            };
            n = (n << 5) | v;
        }
        let bytes = n.to_be_bytes();
        let keep = match pad {
            0 => 5,
            1 => 4,
            3 => 3,
            4 => 2,
            6 => 1,
            _ => {
                return format!("illegal base32 data at input byte {}", ci * 8 + 8 - pad)
                    .into_bytes();
            }
        };
        out.extend_from_slice(&bytes[3..3 + keep]);
    }
    out
}

fn dict(a: Vec<Value>) -> FnResult {
    let mut m = BTreeMap::new();
    let mut it = a.into_iter();
    while let Some(k) = it.next() {
        let key = text(&strval(&k)).into_owned();
        m.insert(key, it.next().unwrap_or_else(|| Value::str("")));
    }
    Ok(new_map(m))
}

fn merge_into(dst: &mut BTreeMap<String, Value>, src: &BTreeMap<String, Value>, overwrite: bool) {
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

fn merge(a: Vec<Value>, overwrite: bool) -> FnResult {
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

fn push(a: Vec<Value>) -> FnResult {
    let mut l = l_arg(&a[0], "push")?.as_ref().clone();
    l.push(a[1].clone());
    Ok(Value::list(l))
}

fn prepend(a: Vec<Value>) -> FnResult {
    let mut l = vec![a[1].clone()];
    l.extend(l_arg(&a[0], "prepend")?.iter().cloned());
    Ok(Value::list(l))
}

fn sublist(v: &Value, op: &str, f: impl Fn(&[Value]) -> Option<&[Value]>) -> FnResult {
    // An empty list gives Go's nil []interface{}, which prints as [].
    let l = l_arg(v, op)?;
    Ok(Value::list(f(&l).unwrap_or(&[]).to_vec()))
}

fn uniq(a: Vec<Value>) -> FnResult {
    let l = l_arg(&a[0], "uniq")?;
    let mut out: Vec<Value> = Vec::new();
    for v in l.iter() {
        if !out.iter().any(|o| o.deep_equal(v)) {
            out.push(v.clone());
        }
    }
    Ok(Value::list(out))
}

fn without(a: Vec<Value>) -> FnResult {
    let l = l_arg(&a[0], "find without")?;
    let omit = &a[1..];
    Ok(Value::list(
        l.iter()
            .filter(|v| !omit.iter().any(|o| o.deep_equal(v)))
            .cloned()
            .collect(),
    ))
}

fn has(a: Vec<Value>) -> FnResult {
    match &a[1] {
        Value::Nil => Ok(Value::Bool(false)),
        Value::List(l) => Ok(Value::Bool(l.iter().any(|v| v.deep_equal(&a[0])))),
        other => Err(call_err(format!(
            "Cannot find has on type {}",
            other.type_name()
        ))),
    }
}

fn slice(a: Vec<Value>) -> FnResult {
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

fn dig(a: Vec<Value>) -> FnResult {
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

fn chunk(a: Vec<Value>) -> FnResult {
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

fn bcrypt_hash(pw: &[u8]) -> Result<String, FnError> {
    let salt: [u8; 16] = random_bytes(16)?.try_into().expect("16 bytes");
    // bcrypt reads at most 72 bytes, as Go's does; Go refuses longer passwords.
    if pw.len() > 72 {
        return Err(call_err("bcrypt: password length exceeds 72 bytes"));
    }
    bcrypt::hash_with_salt(pw, 10, salt)
        .map(|h| h.format_for_version(bcrypt::Version::TwoA))
        .map_err(|e| call_err(format!("bcrypt: {e}")))
}

fn aes_key(pw: &[u8]) -> [u8; 32] {
    let mut key = [0u8; 32];
    let n = pw.len().min(32);
    key[..n].copy_from_slice(&pw[..n]);
    key
}

fn encrypt_aes(a: Vec<Value>) -> FnResult {
    use aes::cipher::{BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
    let (pw, plain) = (s_arg(&a[0])?, s_arg(&a[1])?);
    let iv: [u8; 16] = random_bytes(16)?.try_into().expect("16 bytes");
    let ct = cbc::Encryptor::<aes::Aes256>::new(&aes_key(&pw).into(), &iv.into())
        .encrypt_padded_vec_mut::<Pkcs7>(&plain);
    Ok(Value::str(STANDARD.encode([iv.as_slice(), &ct].concat())))
}

fn decrypt_aes(a: Vec<Value>) -> FnResult {
    use aes::cipher::{BlockDecryptMut, KeyIvInit, block_padding::Pkcs7};
    let (pw, enc) = (s_arg(&a[0])?, s_arg(&a[1])?);
    let raw = STANDARD
        .decode(&*enc)
        .map_err(|_| call_err("illegal base64 data"))?;
    if raw.len() < 16 || raw.len() % 16 != 0 {
        return Err(call_err("ciphertext too short"));
    }
    let (iv, ct) = raw.split_at(16);
    let iv: [u8; 16] = iv.try_into().expect("16 bytes");
    let plain = cbc::Decryptor::<aes::Aes256>::new(&aes_key(&pw).into(), &iv.into())
        .decrypt_padded_vec_mut::<Pkcs7>(ct)
        .map_err(|_| call_err("invalid padding"))?;
    Ok(Value::str(plain))
}

fn re(v: &Value) -> Result<regex::Regex, FnError> {
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

fn regex_find_all(a: Vec<Value>) -> FnResult {
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

fn regex_split(a: Vec<Value>) -> FnResult {
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

/// url.Parse, as sprig's urlParse reports it.
fn url_parse(s: &str) -> Value {
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

fn percent_decode(s: &str) -> String {
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

fn url_join(a: Vec<Value>) -> FnResult {
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

/// sprig's derivePassword: the Master Password algorithm (scrypt N=32768 r=8 p=2 over the
/// user, HMAC-SHA256 over the site and counter, a character template picked by the seed).
fn derive_password(a: Vec<Value>) -> FnResult {
    use hmac::Mac;
    const SEED: &[u8] = b"com.lyndir.masterpassword";
    let counter = i_arg(&a[0])? as u32;
    let (kind, password, user, site) = (t_arg(&a[1])?, s_arg(&a[2])?, s_arg(&a[3])?, s_arg(&a[4])?);
    let templates: &[&str] = match kind.as_str() {
        "maximum" => &["anoxxxxxxxxxxxxxxxxx", "axxxxxxxxxxxxxxxxxno"],
        "long" => &[
            "CvcvnoCvcvCvcv",
            "CvcvCvcvnoCvcv",
            "CvcvCvcvCvcvno",
            "CvccnoCvcvCvcv",
            "CvccCvcvnoCvcv",
            "CvccCvcvCvcvno",
            "CvcvnoCvccCvcv",
            "CvcvCvccnoCvcv",
            "CvcvCvccCvcvno",
            "CvcvnoCvcvCvcc",
            "CvcvCvcvnoCvcc",
            "CvcvCvcvCvccno",
            "CvccnoCvccCvcv",
            "CvccCvccnoCvcv",
            "CvccCvccCvcvno",
            "CvcvnoCvccCvcc",
            "CvcvCvccnoCvcc",
            "CvcvCvccCvccno",
            "CvccnoCvcvCvcc",
            "CvccCvcvnoCvcc",
            "CvccCvcvCvccno",
        ],
        "medium" => &["CvcnoCvc", "CvcCvcno"],
        "short" => &["Cvcn"],
        "basic" => &["aaanaaan", "aannaaan", "aaannaaa"],
        "pin" => &["nnnn"],
        other => return Ok(Value::str(format!("cannot find password template {other}"))),
    };
    let mut salt = SEED.to_vec();
    salt.extend_from_slice(&(user.len() as u32).to_be_bytes());
    salt.extend_from_slice(&user);
    let mut key = zeroize_vec(64);
    let params = scrypt::Params::new(15, 8, 2, 64).expect("valid scrypt parameters");
    scrypt::scrypt(&password, &salt, &params, &mut key)
        .map_err(|e| call_err(format!("failed to derive password: {e}")))?;
    let mut msg = SEED.to_vec();
    msg.extend_from_slice(&(site.len() as u32).to_be_bytes());
    msg.extend_from_slice(&site);
    msg.extend_from_slice(&counter.to_be_bytes());
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::digest::KeyInit>::new_from_slice(&key)
        .expect("HMAC takes any key length");
    mac.update(&msg);
    let seed = mac.finalize().into_bytes();
    let template = templates[seed[0] as usize % templates.len()];
    let chars = |c: u8| -> &'static str {
        match c {
            b'V' => "AEIOU",
            b'C' => "BCDFGHJKLMNPQRSTVWXYZ",
            b'v' => "aeiou",
            b'c' => "bcdfghjklmnpqrstvwxyz",
            b'A' => "AEIOUBCDFGHJKLMNPQRSTVWXYZ",
            b'a' => "AEIOUaeiouBCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz",
            b'n' => "0123456789",
            b'o' => "@&%?,=[]_:-+*$#!'^~;()/.",
            _ => "AEIOUaeiouBCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz0123456789!@#$%^&*()",
        }
    };
    let out: String = template
        .bytes()
        .enumerate()
        .map(|(i, c)| {
            let set = chars(c).as_bytes();
            set[seed[i + 1] as usize % set.len()] as char
        })
        .collect();
    Ok(Value::str(out))
}

/// A buffer for key material, wiped when dropped.
fn zeroize_vec(n: usize) -> zeroize::Zeroizing<Vec<u8>> {
    zeroize::Zeroizing::new(vec![0u8; n])
}

fn list_first(a: Vec<Value>) -> FnResult {
    Ok(l_arg(&a[0], "find first")?
        .first()
        .cloned()
        .unwrap_or(Value::Nil))
}

fn list_last(a: Vec<Value>) -> FnResult {
    Ok(l_arg(&a[0], "find last")?
        .last()
        .cloned()
        .unwrap_or(Value::Nil))
}

fn list_rest(a: Vec<Value>) -> FnResult {
    sublist(&a[0], "find rest", |l| l.get(1..))
}

fn list_initial(a: Vec<Value>) -> FnResult {
    sublist(&a[0], "find initial", |l| {
        l.get(..l.len().saturating_sub(1))
    })
}

fn list_reverse(a: Vec<Value>) -> FnResult {
    Ok(Value::list(
        l_arg(&a[0], "reverse")?.iter().rev().cloned().collect(),
    ))
}

fn regex_find(a: Vec<Value>) -> FnResult {
    let s = t_arg(&a[1])?;
    Ok(Value::str(
        re(&a[0])?.find(&s).map(|m| m.as_str()).unwrap_or(""),
    ))
}

fn regex_replace_all(a: Vec<Value>) -> FnResult {
    let (s, r) = (t_arg(&a[1])?, t_arg(&a[2])?);
    Ok(Value::str(
        re(&a[0])?.replace_all(&s, r.as_str()).into_owned(),
    ))
}

fn regex_replace_literal(a: Vec<Value>) -> FnResult {
    let (s, r) = (t_arg(&a[1])?, t_arg(&a[2])?);
    Ok(Value::str(
        re(&a[0])?.replace_all(&s, regex::NoExpand(&r)).into_owned(),
    ))
}
