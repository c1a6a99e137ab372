//! sprig's functions as ESO exposes them (`sprig.TxtFuncMap()` minus `env`/`expandenv`),
//! with sprig's quirks kept: `b64dec` returns the error text instead of failing, `fromJson`
//! and `toJson` swallow errors, `default`/`empty` use Go's zero values, maps are shared
//! references (`set` changes the map in place).

mod crypto;
mod defaults;
mod dict;
mod encoding;
mod list;
mod numeric;
mod paths;
mod regex;
mod strings;
mod url;

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{
    Entry, Imp, b_arg, call_err, count_arg, d_arg, i_arg, is_empty, l_arg, new_map, random_below,
    random_bytes, s_arg, str_list, strslice, strval, t_arg, to_float64, to_int64,
};
use crate::fmt::quote;
use crate::value::{Value, text, to_json};
use crypto::{adler32, bcrypt_hash, decrypt_aes, derive_password, encrypt_aes};
use defaults::{from_json, must_json};
use dict::{deep_copy, dict, dig, merge};
use encoding::{b32dec, b32enc, b64dec};
use list::{
    chunk, compact, has, list_first, list_initial, list_last, list_rest, list_reverse, prepend,
    push, slice, uniq, without,
};
use numeric::{Op, decimal_fold, int_list, round, seq, until_step};
use paths::{path_base, path_clean, path_dir, path_ext};
use regex::{
    re, regex_find, regex_find_all, regex_replace_all, regex_replace_literal, regex_split,
};
use strings::{
    abbrev, abbrevboth, camelcase, find, go_split, indent, quote_all, random_string, repeat,
    replace_all, shuffle, split, substr, swapcase, title, trim_all, trunc, untitle, words, wrap,
};
use url::{url_join, url_parse};

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
        Imp::F(|a| Ok(Value::str(::regex::escape(&t_arg(&a[0])?)))),
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
