//! ESO's own template functions (`runtime/template/v2`): PKCS#12 extraction, PEM filtering
//! and chain ordering (through esox-pem, inside this sandbox), and YAML.

use std::collections::BTreeMap;

use super::{Entry, FnResult, Imp, call_err, s_arg, t_arg};
use crate::value::{Value, format_g, text};

pub const TABLE: &[Entry] = &[
    ("pkcs12key", 1, Some(1), Imp::F(|a| key(&[], &a[0]))),
    (
        "pkcs12keyPass",
        2,
        Some(2),
        Imp::F(|a| key(&s_arg(&a[0])?, &a[1])),
    ),
    ("pkcs12cert", 1, Some(1), Imp::F(|a| cert(&[], &a[0]))),
    (
        "pkcs12certPass",
        2,
        Some(2),
        Imp::F(|a| cert(&s_arg(&a[0])?, &a[1])),
    ),
    (
        "pemToPkcs12",
        2,
        Some(2),
        Imp::F(|a| to_pkcs12(&a[0], &a[1], None, false)),
    ),
    (
        "pemToPkcs12Pass",
        3,
        Some(3),
        Imp::F(|a| to_pkcs12(&a[0], &a[1], Some(&a[2]), false)),
    ),
    (
        "fullPemToPkcs12",
        2,
        Some(2),
        Imp::F(|a| to_pkcs12(&a[0], &a[1], None, true)),
    ),
    (
        "fullPemToPkcs12Pass",
        3,
        Some(3),
        Imp::F(|a| to_pkcs12(&a[0], &a[1], Some(&a[2]), true)),
    ),
    (
        "pemTruststoreToPKCS12",
        1,
        Some(1),
        Imp::F(|a| trust_store(&a[0], None)),
    ),
    (
        "pemTruststoreToPKCS12Pass",
        2,
        Some(2),
        Imp::F(|a| trust_store(&a[0], Some(&a[1]))),
    ),
    (
        "filterPEM",
        2,
        Some(2),
        Imp::F(|a| {
            let (kind, input) = (t_arg(&a[0])?, t_arg(&a[1])?);
            esox_pem::pem::filter(&kind, &input)
                .map(Value::str)
                .map_err(|e| call_err(e.to_string()))
        }),
    ),
    (
        "filterCertChain",
        2,
        Some(2),
        Imp::F(|a| {
            let (kind, input) = (t_arg(&a[0])?, t_arg(&a[1])?);
            esox_pem::chain::filter(&kind, &input)
                .map(Value::str)
                .map_err(|e| call_err(e.to_string()))
        }),
    ),
    (
        "jwkPublicKeyPem",
        1,
        Some(1),
        Imp::F(|a| {
            esox_pem::keys::jwk_public_pem(&t_arg(&a[0])?)
                .map(Value::str)
                .map_err(|e| call_err(e.to_string()))
        }),
    ),
    (
        "jwkPrivateKeyPem",
        1,
        Some(1),
        Imp::F(|a| {
            esox_pem::keys::jwk_private_pem(&t_arg(&a[0])?)
                .map(Value::str)
                .map_err(|e| call_err(e.to_string()))
        }),
    ),
    (
        "certSANs",
        1,
        Some(1),
        Imp::F(|a| {
            esox_pem::keys::cert_sans(&t_arg(&a[0])?)
                .map(|v| Value::list(v.into_iter().map(Value::str).collect()))
                .map_err(|e| call_err(e.to_string()))
        }),
    ),
    (
        "toYaml",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::str(to_yaml(&a[0])))),
    ),
    (
        "fromYaml",
        1,
        Some(1),
        Imp::F(|a| Ok(from_yaml(&s_arg(&a[0])?))),
    ),
    ("rsaDecrypt", 4, Some(4), Imp::F(rsa_decrypt)),
];

/// ESO's pemToPkcs12 family: a base64 PKCS#12 of the first certificate (and, `full`, the rest
/// as CA certificates) with the key, in go-pkcs12's Modern layout.
fn to_pkcs12(cert: &Value, key: &Value, pass: Option<&Value>, full: bool) -> FnResult {
    use base64::Engine as _;
    let pass = match pass {
        Some(p) => t_arg(p)?,
        None => String::new(),
    };
    let certs = esox_pem::keys::certificates(&t_arg(cert)?).map_err(|e| call_err(e.to_string()))?;
    let key =
        esox_pem::keys::private_key_pkcs8(&t_arg(key)?).map_err(|e| call_err(e.to_string()))?;
    let cas: Vec<Vec<u8>> = if full {
        certs[1..].iter().map(|(d, _)| d.clone()).collect()
    } else {
        Vec::new()
    };
    let mut rand = host_random;
    let pfx = esox_pem::pkcs12_encode::encode(&key, &certs[0].0, &cas, &pass, &mut rand)
        .map_err(|e| call_err(e.to_string()))?;
    Ok(Value::str(
        base64::engine::general_purpose::STANDARD.encode(pfx),
    ))
}

/// ESO's pemTruststoreToPKCS12(+Pass): every certificate, trusted, named by its subject.
fn trust_store(cert: &Value, pass: Option<&Value>) -> FnResult {
    use base64::Engine as _;
    let pass = match pass {
        Some(p) => t_arg(p)?,
        None => String::new(),
    };
    let certs = esox_pem::keys::certificates(&t_arg(cert)?).map_err(|e| call_err(e.to_string()))?;
    let mut rand = host_random;
    let pfx = esox_pem::pkcs12_encode::encode_trust_store(&certs, &pass, &mut rand)
        .map_err(|e| call_err(e.to_string()))?;
    Ok(Value::str(
        base64::engine::general_purpose::STANDARD.encode(pfx),
    ))
}

/// Salts and IVs from the host's CSPRNG (WASI random).
fn host_random(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the host provides randomness");
}

/// ESO's rsaDecrypt(scheme, hash, ciphertext, privateKeyPem): scheme `None` passes the input
/// through, `RSA-OAEP` decrypts with the hash (SHA1, SHA256, SHA512; default SHA256).
fn rsa_decrypt(a: Vec<Value>) -> FnResult {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    let (scheme, hash, input, key) = (t_arg(&a[0])?, t_arg(&a[1])?, s_arg(&a[2])?, t_arg(&a[3])?);
    match scheme.as_str() {
        "None" => return Ok(Value::Str(input)),
        "RSA-OAEP" => {}
        other => {
            return Err(call_err(format!(
                "decryption scheme {other} is not supported"
            )));
        }
    }
    let start = key.find("-----BEGIN").unwrap_or(0);
    let der = esox_pem::pem::parse(&key[start..])
        .ok()
        .and_then(|b| b.into_iter().next())
        .ok_or_else(|| call_err("failed to decode PEM block"))?
        .der
        .clone();
    let private = match rsa::RsaPrivateKey::from_pkcs1_der(&der)
        .or_else(|_| rsa::RsaPrivateKey::from_pkcs8_der(&der))
    {
        Ok(k) => k,
        // A key Go parses (PKCS#8 of another algorithm, SEC 1 EC) that is not RSA.
        Err(_) if is_private_key_structure(&der) => {
            return Err(call_err("could not parse RSA private key"));
        }
        Err(_) => {
            return Err(call_err(
                "could not parse private key: unable to parse private key type",
            ));
        }
    };
    let padding = match hash.as_str() {
        "SHA1" => rsa::Oaep::new::<sha1::Sha1>(),
        "SHA512" => rsa::Oaep::new::<sha2::Sha512>(),
        _ => rsa::Oaep::new::<sha2::Sha256>(),
    };
    private
        .decrypt(padding, &input)
        .map(Value::str)
        .map_err(|_| call_err("error decrypting data with RSA: crypto/rsa: decryption error"))
}

/// SEQUENCE { INTEGER, … , … }: the outline of PKCS#8 and SEC 1 private keys.
fn is_private_key_structure(der: &[u8]) -> bool {
    yasna::parse_der(der, |r| {
        r.read_sequence(|r| {
            r.next().read_u8()?;
            r.next().read_der()?;
            r.next().read_der()?;
            r.read_optional(|r| r.read_der())?;
            Ok(())
        })
    })
    .is_ok()
}

fn key(pass: &[u8], input: &Value) -> FnResult {
    let der = s_arg(input)?;
    esox_pem::pkcs12_key(&der, &text(pass))
        .map(Value::str)
        .map_err(|e| call_err(format!("unable to decode pkcs12 with password: {e}")))
}

fn cert(pass: &[u8], input: &Value) -> FnResult {
    let der = s_arg(input)?;
    esox_pem::pkcs12_cert(&der, &text(pass))
        .map(Value::str)
        .map_err(|e| {
            call_err(format!(
                "unable to decode pkcs12 certificate with password: {e}"
            ))
        })
}

/// ESO's fromYAML: a map, with a parse failure reported in its `Error` key. Numbers are
/// float64, as sigs.k8s.io/yaml (YAML → JSON → Go) makes them.
fn from_yaml(b: &[u8]) -> Value {
    let err = |m: String| Value::map(BTreeMap::from([("Error".to_string(), Value::str(m))]));
    let doc: serde_yaml::Value = match serde_yaml::from_slice(b) {
        Ok(d) => d,
        Err(e) => {
            return err(match e.location() {
                Some(l) => format!(
                    "error converting YAML to JSON: yaml: line {}: invalid YAML",
                    l.line()
                ),
                None => "error converting YAML to JSON: invalid YAML".to_string(),
            });
        }
    };
    match yaml_value(&doc) {
        Value::Map(m) => Value::Map(m),
        Value::Nil => Value::map(BTreeMap::new()),
        Value::List(_) => err("error unmarshaling JSON: while decoding JSON: json: cannot unmarshal array into Go value of type map[string]interface {}".into()),
        Value::Str(_) => err("error unmarshaling JSON: while decoding JSON: json: cannot unmarshal string into Go value of type map[string]interface {}".into()),
        Value::Bool(_) => err("error unmarshaling JSON: while decoding JSON: json: cannot unmarshal bool into Go value of type map[string]interface {}".into()),
        _ => err("error unmarshaling JSON: while decoding JSON: json: cannot unmarshal number into Go value of type map[string]interface {}".into()),
    }
}

fn yaml_value(v: &serde_yaml::Value) -> Value {
    match v {
        serde_yaml::Value::Null => Value::Nil,
        serde_yaml::Value::Bool(b) => Value::Bool(*b),
        serde_yaml::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        serde_yaml::Value::String(s) => Value::str(s),
        serde_yaml::Value::Sequence(s) => Value::list(s.iter().map(yaml_value).collect()),
        serde_yaml::Value::Mapping(m) => Value::map(
            m.iter()
                .map(|(k, v)| (yaml_key(k), yaml_value(v)))
                .collect(),
        ),
        serde_yaml::Value::Tagged(t) => yaml_value(&t.value),
    }
}

fn yaml_key(k: &serde_yaml::Value) -> String {
    match k {
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Number(n) => n.to_string(),
        serde_yaml::Value::Bool(b) => b.to_string(),
        serde_yaml::Value::Null => "null".to_string(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

/// ESO's toYAML: sigs.k8s.io/yaml's Marshal (JSON first, then go-yaml v2's block style),
/// without the final newline.
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    emit(v, 0, &mut out, Ctx::Top);
    while out.ends_with('\n') {
        out.pop();
    }
    out
}

#[derive(Clone, Copy, PartialEq)]
enum Ctx {
    Top,
    MapValue,
    SeqItem,
}

fn pad(n: usize) -> String {
    " ".repeat(n)
}

fn emit(v: &Value, indent: usize, out: &mut String, ctx: Ctx) {
    match v {
        Value::Map(m) => {
            let m = m.borrow();
            if m.entries.is_empty() {
                if ctx == Ctx::MapValue {
                    out.push(' ');
                }
                out.push_str("{}\n");
                return;
            }
            if ctx == Ctx::MapValue {
                out.push('\n');
            }
            for (i, (k, val)) in m.entries.iter().enumerate() {
                if !(ctx == Ctx::SeqItem && i == 0) {
                    out.push_str(&pad(indent));
                }
                out.push_str(&scalar(k, indent));
                out.push(':');
                match val {
                    Value::Map(_) => emit(val, indent + 2, out, Ctx::MapValue),
                    Value::List(l) if !l.is_empty() => {
                        out.push('\n');
                        emit(val, indent, out, Ctx::MapValue);
                    }
                    _ => {
                        out.push(' ');
                        emit(val, indent + 2, out, Ctx::MapValue);
                    }
                }
            }
        }
        Value::List(l) => {
            if l.is_empty() {
                out.push_str("[]\n");
                return;
            }
            for item in l.iter() {
                out.push_str(&pad(indent));
                out.push_str("- ");
                match item {
                    Value::Map(m) if !m.borrow().entries.is_empty() => {
                        emit(item, indent + 2, out, Ctx::SeqItem)
                    }
                    Value::List(il) if !il.is_empty() => {
                        // A nested sequence starts on the same line in go-yaml v2.
                        let mut inner = String::new();
                        emit(item, indent + 2, &mut inner, Ctx::SeqItem);
                        out.push_str(inner.trim_start());
                    }
                    _ => emit(item, indent + 2, out, Ctx::SeqItem),
                }
            }
        }
        Value::Nil => out.push_str("null\n"),
        Value::Bool(b) => out.push_str(&format!("{b}\n")),
        Value::Int(i) => out.push_str(&format!("{i}\n")),
        Value::Float(f) => {
            // JSON first: integral floats come back as YAML integers.
            if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e21 {
                out.push_str(&format!("{}\n", *f as i128));
            } else {
                out.push_str(&format!("{}\n", format_g(*f, None)));
            }
        }
        Value::Str(s) => {
            out.push_str(&scalar(&text(s), indent.max(2) - 2));
            out.push('\n');
        }
        // Through JSON a time is its RFC 3339 string.
        Value::Time(t) => {
            let s = t.format("2006-01-02T15:04:05.999999999Z07:00");
            out.push_str(&scalar(&s, indent.max(2) - 2));
            out.push('\n');
        }
    }
}

/// A string scalar the way go-yaml v2 writes it: plain when it reads back as the same
/// string, double-quoted when it would read as another type, single-quoted when only
/// its characters forbid plain, a literal block when it has line breaks.
fn scalar(s: &str, indent: usize) -> String {
    if s.contains('\n') && s.chars().all(|c| c == '\n' || c == '\t' || !c.is_control()) {
        let chomp = if !s.ends_with('\n') {
            "-"
        } else if s.ends_with("\n\n") {
            "+"
        } else {
            ""
        };
        let ind = if s.starts_with(' ') { "2" } else { "" };
        let body = s.strip_suffix('\n').unwrap_or(s);
        let mut out = format!("|{ind}{chomp}");
        for line in body.split('\n') {
            out.push('\n');
            if !line.is_empty() {
                out.push_str(&pad(indent + 2));
                out.push_str(line);
            }
        }
        return out;
    }
    if resolves_to_other_type(s) {
        return double_quoted(s);
    }
    if plain_ok(s) {
        return s.to_string();
    }
    if s.chars().all(|c| !c.is_control() && c != '\u{FEFF}') {
        return format!("'{}'", s.replace('\'', "''"));
    }
    double_quoted(s)
}

fn double_quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c if c.is_control() => out.push_str(&format!("\\x{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn resolves_to_other_type(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "", "~", "null", "Null", "NULL", "true", "True", "TRUE", "false", "False", "FALSE", "y",
        "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off",
        "OFF", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF",
        ".nan", ".NaN", ".NAN", "<<",
    ];
    if WORDS.contains(&s) {
        return true;
    }
    let t = s.replace('_', "");
    let body = t.strip_prefix(['+', '-']).unwrap_or(&t);
    if body.is_empty() {
        return false;
    }
    let lower = body.to_ascii_lowercase();
    if let Some(h) = lower.strip_prefix("0x") {
        return !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit());
    }
    if let Some(b) = lower.strip_prefix("0b") {
        return !b.is_empty() && b.chars().all(|c| c == '0' || c == '1');
    }
    if body.chars().all(|c| c.is_ascii_digit()) {
        return true;
    }
    // Floats: digits with one point and/or an exponent.
    let (mant, exp) = match lower.split_once('e') {
        Some((m, e)) => (m, Some(e)),
        None => (lower.as_str(), None),
    };
    let mant_ok = {
        let (i, f) = mant.split_once('.').unwrap_or((mant, ""));
        (i.chars().all(|c| c.is_ascii_digit()) && f.chars().all(|c| c.is_ascii_digit()))
            && (!i.is_empty() || !f.is_empty())
            && (mant.contains('.') || exp.is_some())
    };
    let exp_ok = exp.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && e.chars().all(|c| c.is_ascii_digit())
    });
    if mant_ok && exp_ok {
        return true;
    }
    // Base-60 numbers (1:20) read as numbers in YAML 1.1.
    s.contains(':')
        && s.split(':')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

fn plain_ok(s: &str) -> bool {
    let first = s.chars().next().unwrap_or(' ');
    let second = s.chars().nth(1);
    if s.starts_with(' ') || s.ends_with(' ') || s.starts_with('\t') || s.ends_with('\t') {
        return false;
    }
    if "#,[]{}&*!|>'\"%@`".contains(first) {
        return false;
    }
    if "-?:".contains(first) && second.is_none_or(|c| c == ' ' || c == '\t') {
        return false;
    }
    if s.starts_with("---") || s.starts_with("...") {
        return false;
    }
    if s.contains(": ") || s.contains(" #") || s.ends_with(':') || s.contains(":\t") {
        return false;
    }
    !s.chars().any(|c| c.is_control() || c == '\u{FEFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_like_go_yaml_v2() {
        let v = from_yaml(b"b: [1, two]\na:\n  x: true\n  y: null\nc: 'yes'\n");
        assert_eq!(
            to_yaml(&v),
            "a:\n  x: true\n  \"y\": null\nb:\n- 1\n- two\nc: \"yes\""
        );
        assert_eq!(to_yaml(&Value::str("a: b")), "'a: b'");
        assert_eq!(to_yaml(&Value::str("123")), "\"123\"");
        assert_eq!(to_yaml(&Value::str("line1\nline2")), "|-\n  line1\n  line2");
        assert_eq!(to_yaml(&Value::Float(1.5)), "1.5");
        let list_of_maps = from_yaml(b"l:\n- a: 1\n  b: 2\n");
        assert_eq!(to_yaml(&list_of_maps), "l:\n- a: 1\n  b: 2");
    }

    #[test]
    fn from_yaml_reports_errors_in_the_map() {
        let v = from_yaml(b"- a\n- b\n");
        let Value::Map(m) = v else { panic!() };
        assert!(m.borrow().entries.contains_key("Error"));
    }
}
