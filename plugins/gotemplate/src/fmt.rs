//! Go's `fmt.Sprintf`, `Sprint` and `Sprintln` over template values: the verbs, flags,
//! width and precision a template's `printf` uses, and Go's `%!verb(type=value)` marks for
//! mismatches.

use crate::value::{Value, format_e, format_f, format_g_case, text};

#[derive(Default, Clone, Copy)]
struct Spec {
    plus: bool,
    minus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// `fmt.Sprint`: spaces between operands when neither side is a string.
pub fn sprint(args: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, a) in args.iter().enumerate() {
        let is_str = matches!(a, Value::Str(_));
        if i > 0 && !is_str && !matches!(args[i - 1], Value::Str(_)) {
            out.push(b' ');
        }
        a.write_v(&mut out);
    }
    out
}

/// `fmt.Sprintln`: always spaces, and a newline.
pub fn sprintln(args: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        a.write_v(&mut out);
    }
    out.push(b'\n');
    out
}

/// `fmt.Sprintf`.
pub fn sprintf(format: &[u8], args: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut argn = 0;
    let mut i = 0;
    let f = format;
    while i < f.len() {
        if f[i] != b'%' {
            let j = f[i..]
                .iter()
                .position(|b| *b == b'%')
                .map_or(f.len(), |p| i + p);
            out.extend_from_slice(&f[i..j]);
            i = j;
            continue;
        }
        i += 1;
        let mut s = Spec::default();
        while i < f.len() {
            match f[i] {
                b'+' => s.plus = true,
                b'-' => {
                    s.minus = true;
                    s.zero = false;
                }
                b'#' => s.sharp = true,
                b' ' => s.space = true,
                b'0' => s.zero = !s.minus,
                _ => break,
            }
            i += 1;
        }
        // Width: `*` takes an int argument; digits are read as Go's parsenum reads them
        // (a number past a million swallows the rest of the format).
        if i < f.len() && f[i] == b'*' {
            i += 1;
            match args.get(argn) {
                Some(Value::Int(w)) if w.unsigned_abs() <= 1_000_000 => {
                    if *w < 0 {
                        s.minus = true;
                        s.zero = false;
                    }
                    s.width = Some(w.unsigned_abs() as usize);
                }
                _ => out.extend_from_slice(b"%!(BADWIDTH)"),
            }
            argn += 1;
        } else {
            let (n, next) = parsenum(f, i);
            s.width = n;
            i = next;
        }
        // Precision.
        if i + 1 < f.len() && f[i] == b'.' {
            i += 1;
            if f[i] == b'*' {
                i += 1;
                match args.get(argn) {
                    Some(Value::Int(p)) if (0..=1_000_000).contains(p) => {
                        s.prec = Some(*p as usize)
                    }
                    Some(Value::Int(p)) if *p < 0 => {}
                    _ => out.extend_from_slice(b"%!(BADPREC)"),
                }
                argn += 1;
            } else {
                let (n, next) = parsenum(f, i);
                s.prec = Some(n.unwrap_or(0));
                i = next;
            }
        }
        if i >= f.len() {
            out.extend_from_slice(b"%!(NOVERB)");
            break;
        }
        let rest = text(&f[i..]);
        let verb = rest.chars().next().unwrap_or('?');
        i += verb.len_utf8();
        if verb == '%' {
            out.push(b'%');
            continue;
        }
        match args.get(argn) {
            None => out.extend_from_slice(format!("%!{verb}(MISSING)").as_bytes()),
            Some(a) => format_arg(&mut out, a, verb, s),
        }
        argn += 1;
    }
    if argn < args.len() {
        out.extend_from_slice(b"%!(EXTRA ");
        for (k, a) in args[argn..].iter().enumerate() {
            if k > 0 {
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(a.type_name().as_bytes());
            out.push(b'=');
            a.write_v(&mut out);
        }
        out.push(b')');
    }
    out
}

/// Go's parsenum: digits from `i`; past a million the number is dropped and the rest of the
/// format consumed.
fn parsenum(f: &[u8], mut i: usize) -> (Option<usize>, usize) {
    let mut num: usize = 0;
    let mut isnum = false;
    while i < f.len() && f[i].is_ascii_digit() {
        if num > 1_000_000 {
            return (None, f.len());
        }
        num = num * 10 + usize::from(f[i] - b'0');
        isnum = true;
        i += 1;
    }
    (isnum.then_some(num), i)
}

/// `%!verb(type=value)`; the value is printed with `%v` and the directive's flags, as Go does.
fn bad_verb(out: &mut Vec<u8>, a: &Value, verb: char, s: Spec) {
    out.extend_from_slice(format!("%!{verb}(").as_bytes());
    match a {
        Value::Nil => out.extend_from_slice(b"<nil>"),
        a => {
            out.extend_from_slice(a.type_name().as_bytes());
            out.push(b'=');
            format_arg(out, a, 'v', s);
        }
    }
    out.push(b')');
}

/// Pads to the width (counted in runes, as Go does).
fn pad(out: &mut Vec<u8>, body: &[u8], s: Spec, zero_ok: bool) {
    let n = text(body).chars().count();
    let w = s.width.unwrap_or(0);
    if n >= w {
        out.extend_from_slice(body);
        return;
    }
    let fill = w - n;
    if s.minus {
        out.extend_from_slice(body);
        out.extend(std::iter::repeat_n(b' ', fill));
    } else if s.zero && zero_ok {
        // Zeros go after a sign.
        let (sign, digits) = match body.first() {
            Some(b'+' | b'-' | b' ') => body.split_at(1),
            _ => body.split_at(0),
        };
        out.extend_from_slice(sign);
        out.extend(std::iter::repeat_n(b'0', fill));
        out.extend_from_slice(digits);
    } else {
        out.extend(std::iter::repeat_n(b' ', fill));
        out.extend_from_slice(body);
    }
}

fn format_arg(out: &mut Vec<u8>, a: &Value, verb: char, s: Spec) {
    if verb == 'T' {
        pad(out, a.type_name().as_bytes(), s, false);
        return;
    }
    match a {
        Value::Nil => match verb {
            'v' => pad(out, b"<nil>", s, false),
            _ => bad_verb(out, a, verb, s),
        },
        Value::Bool(b) => match verb {
            'v' | 't' => pad(out, if *b { b"true" } else { b"false" }, s, false),
            _ => bad_verb(out, a, verb, s),
        },
        Value::Int(i) => format_int(out, *i, verb, s, a),
        Value::Float(f) => format_float(out, *f, verb, s, a),
        Value::Str(b) => format_str(out, b, verb, s, a),
        // time.Time is a Stringer: %v and %s print Time.String().
        Value::Time(t) => match verb {
            'v' | 's' => pad(out, t.go_string().as_bytes(), s, false),
            _ => bad_verb(out, a, verb, s),
        },
        Value::List(l) => {
            if !matches!(
                verb,
                'v' | 's' | 'q' | 'd' | 'x' | 'X' | 'f' | 'g' | 'e' | 't'
            ) {
                bad_verb(out, a, verb, s);
                return;
            }
            out.push(b'[');
            for (k, e) in l.iter().enumerate() {
                if k > 0 {
                    out.push(b' ');
                }
                format_arg(out, e, verb, s);
            }
            out.push(b']');
        }
        Value::Map(m) => {
            out.extend_from_slice(b"map[");
            for (k, (key, v)) in m.borrow().entries.iter().enumerate() {
                if k > 0 {
                    out.push(b' ');
                }
                format_arg(out, &Value::str(key), verb, s);
                out.push(b':');
                format_arg(out, v, verb, s);
            }
            out.push(b']');
        }
    }
}

fn format_int(out: &mut Vec<u8>, i: i64, verb: char, s: Spec, a: &Value) {
    let neg = i < 0;
    let u = i.unsigned_abs();
    let (digits, prefix) = match verb {
        'v' | 'd' => (u.to_string(), ""),
        'b' => (format!("{u:b}"), if s.sharp { "0b" } else { "" }),
        'o' => (format!("{u:o}"), if s.sharp { "0" } else { "" }),
        'O' => (format!("{u:o}"), "0o"),
        'x' => (format!("{u:x}"), if s.sharp { "0x" } else { "" }),
        'X' => (format!("{u:X}"), if s.sharp { "0X" } else { "" }),
        'c' => {
            let c = char::from_u32(i as u32).unwrap_or('\u{FFFD}');
            pad(out, c.to_string().as_bytes(), s, false);
            return;
        }
        'q' => {
            let c = char::from_u32(i as u32).unwrap_or('\u{FFFD}');
            let q = quote_rune(c);
            pad(out, q.as_bytes(), s, false);
            return;
        }
        'U' => {
            let mut body = format!("U+{u:04X}");
            if s.sharp
                && let Some(c) = char::from_u32(i as u32)
            {
                body.push_str(&format!(" '{c}'"));
            }
            pad(out, body.as_bytes(), s, false);
            return;
        }
        'e' | 'E' | 'f' | 'F' | 'g' | 'G' | 's' | 't' => {
            bad_verb(out, a, verb, s);
            return;
        }
        _ => {
            bad_verb(out, a, verb, s);
            return;
        }
    };
    let mut digits = digits;
    if let Some(p) = s.prec {
        if p == 0 && u == 0 {
            digits.clear();
        }
        while digits.len() < p {
            digits.insert(0, '0');
        }
    }
    let sign = if neg {
        "-"
    } else if s.plus {
        "+"
    } else if s.space {
        " "
    } else {
        ""
    };
    let body = format!("{sign}{prefix}{digits}");
    pad(out, body.as_bytes(), s, s.prec.is_none());
}

fn format_float(out: &mut Vec<u8>, f: f64, verb: char, s: Spec, a: &Value) {
    let mut body = match verb {
        'v' => format_g_case(f, s.prec, false),
        'g' => format_g_case(f, s.prec, false),
        'G' => format_g_case(f, s.prec, true),
        'e' => format_e(f, s.prec.unwrap_or(6), false),
        'E' => format_e(f, s.prec.unwrap_or(6), true),
        'f' | 'F' => format_f(f, s.prec.unwrap_or(6)),
        _ => {
            bad_verb(out, a, verb, s);
            return;
        }
    };
    if !body.starts_with('-') {
        if s.plus {
            body.insert(0, '+');
        } else if s.space {
            body.insert(0, ' ');
        }
    }
    let finite = f.is_finite();
    pad(out, body.as_bytes(), s, finite);
}

fn format_str(out: &mut Vec<u8>, b: &[u8], verb: char, s: Spec, a: &Value) {
    match verb {
        'v' | 's' => {
            let body: Vec<u8> = match s.prec {
                Some(p) => text(b).chars().take(p).collect::<String>().into_bytes(),
                None => b.to_vec(),
            };
            pad(out, &body, s, true);
        }
        'q' => {
            let t: Vec<u8> = match s.prec {
                Some(p) => text(b).chars().take(p).collect::<String>().into_bytes(),
                None => b.to_vec(),
            };
            let q = if s.sharp && can_backquote(&t) {
                format!("`{}`", text(&t))
            } else {
                quote(&t, s.plus)
            };
            pad(out, q.as_bytes(), s, false);
        }
        'x' | 'X' => {
            let bytes = match s.prec {
                Some(p) => &b[..p.min(b.len())],
                None => b,
            };
            let mut body = String::new();
            for (k, byte) in bytes.iter().enumerate() {
                if s.space && k > 0 {
                    body.push(' ');
                }
                if s.sharp && (s.space || k == 0) {
                    body.push_str(if verb == 'x' { "0x" } else { "0X" });
                }
                if verb == 'x' {
                    body.push_str(&format!("{byte:02x}"));
                } else {
                    body.push_str(&format!("{byte:02X}"));
                }
            }
            pad(out, body.as_bytes(), s, false);
        }
        _ => bad_verb(out, a, verb, s),
    }
}

fn can_backquote(b: &[u8]) -> bool {
    match std::str::from_utf8(b) {
        Ok(s) => !s
            .chars()
            .any(|c| c == '`' || c == '\u{FEFF}' || (c.is_control() && c != '\t')),
        Err(_) => false,
    }
}

fn is_print(c: char) -> bool {
    !c.is_control()
        && !matches!(c, '\u{00AD}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
        && !(('\u{E000}'..='\u{F8FF}').contains(&c))
}

fn escape_char(out: &mut String, c: char, quote_ch: char, ascii_only: bool) {
    match c {
        '\u{7}' => out.push_str("\\a"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{b}' => out.push_str("\\v"),
        '\\' => out.push_str("\\\\"),
        c if c == quote_ch => {
            out.push('\\');
            out.push(c);
        }
        c if (ascii_only && !c.is_ascii()) || !is_print(c) => {
            let u = c as u32;
            if u < 0x80 && !is_print(c) {
                out.push_str(&format!("\\x{u:02x}"));
            } else if u < 0x10000 {
                out.push_str(&format!("\\u{u:04x}"));
            } else {
                out.push_str(&format!("\\U{u:08x}"));
            }
        }
        c => out.push(c),
    }
}

/// Go's strconv.Quote (`ascii_only`: QuoteToASCII, `%+q`).
pub fn quote(b: &[u8], ascii_only: bool) -> String {
    let mut out = String::from("\"");
    let mut rest = b;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                for c in s.chars() {
                    escape_char(&mut out, c, '"', ascii_only);
                }
                break;
            }
            Err(e) => {
                let good = e.valid_up_to();
                let s = std::str::from_utf8(&rest[..good]).expect("valid prefix");
                for c in s.chars() {
                    escape_char(&mut out, c, '"', ascii_only);
                }
                let bad = e.error_len().unwrap_or(rest.len() - good);
                for byte in &rest[good..good + bad] {
                    out.push_str(&format!("\\x{byte:02x}"));
                }
                rest = &rest[good + bad..];
            }
        }
    }
    out.push('"');
    out
}

fn quote_rune(c: char) -> String {
    let mut out = String::from("'");
    escape_char(&mut out, c, '\'', false);
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(f: &str, args: &[Value]) -> String {
        String::from_utf8(sprintf(f.as_bytes(), args)).unwrap()
    }

    #[test]
    fn verbs_flags_width_precision() {
        assert_eq!(p("%s=%d", &["a".into(), Value::Int(5)]), "a=5");
        assert_eq!(
            p(
                "%05d|%-4d|%+d|%x|%#X",
                &[
                    Value::Int(42),
                    Value::Int(7),
                    Value::Int(3),
                    Value::Int(255),
                    Value::Int(255)
                ]
            ),
            "00042|7   |+3|ff|0XFF"
        );
        assert_eq!(
            p(
                "%.2f %e %g %v",
                &[
                    Value::Float(3.14158),
                    Value::Float(1234.5),
                    Value::Float(0.00001),
                    Value::Float(2.0)
                ]
            ),
            "3.14 1.234500e+03 1e-05 2"
        );
        assert_eq!(
            p(
                "%q %x %5s|%-5s|%.2s",
                &[
                    "a\"b\n".into(),
                    "hi".into(),
                    "ab".into(),
                    "ab".into(),
                    "abc".into()
                ]
            ),
            "\"a\\\"b\\n\" 6869    ab|ab   |ab"
        );
        assert_eq!(
            p(
                "%t %v %T %T",
                &[Value::Bool(true), Value::Nil, Value::Int(1), "s".into()]
            ),
            "true <nil> int string"
        );
        assert_eq!(
            p(
                "%c%c %U %q",
                &[
                    Value::Int(72),
                    Value::Int(105),
                    Value::Int(0x1F600),
                    Value::Int(120)
                ]
            ),
            "Hi U+1F600 'x'"
        );
        assert_eq!(p("100%%", &[]), "100%");
        assert_eq!(
            p("%06.2f|%8.3f", &[Value::Float(-3.14158), Value::Float(2.5)]),
            "-03.14|   2.500"
        );
    }

    #[test]
    fn mismatches_are_marked_as_go_marks_them() {
        assert_eq!(p("%d", &["x".into()]), "%!d(string=x)");
        assert_eq!(p("%d %d", &[Value::Int(1)]), "1 %!d(MISSING)");
        assert_eq!(
            p("%d", &[Value::Int(1), "a".into(), Value::Int(2)]),
            "1%!(EXTRA string=a, int=2)"
        );
        assert_eq!(p("%s", &[Value::Nil]), "%!s(<nil>)");
        assert_eq!(p("%z", &[Value::Int(1)]), "%!z(int=1)");
        assert_eq!(p("%", &[]), "%!(NOVERB)");
    }

    #[test]
    fn sprint_spacing() {
        assert_eq!(
            sprint(&["a".into(), Value::Int(1), Value::Int(2), "b".into()]),
            b"a1 2b"
        );
        assert_eq!(sprintln(&["a".into(), Value::Int(1)]), b"a 1\n");
    }
}
