//! sprig's numeric functions (sprig's `numeric.go`): integer ranges (`until`, `untilStep`, `seq`)
//! and the decimal arithmetic of the float functions and `round`.

use crate::funcs::{FnError, FnResult, call_err, i_arg, to_float64};
use crate::value::Value;

/// Lists longer than this are refused: no Secret needs them, and they would only exhaust the
/// sandbox's memory.
pub(super) const MAX_LIST: usize = 1_000_000;

pub(super) fn until_step(start: i64, stop: i64, step: i64) -> Result<Vec<i64>, FnError> {
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

pub(super) fn int_list(v: Vec<i64>) -> Value {
    Value::list(v.into_iter().map(Value::Int).collect())
}

pub(super) fn seq(a: Vec<Value>) -> FnResult {
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
pub(super) enum Op {
    Add,
    Sub,
    Mul,
    Div,
}

/// A decimal as mantissa × 10^-scale, exact for the shortest form of a float64.
pub(super) fn to_decimal(f: f64) -> Option<(i128, u32)> {
    let s = crate::value::format_f_shortest(f);
    let (int, frac) = s.split_once('.').unwrap_or((&s, ""));
    let m: i128 = format!("{int}{frac}").parse().ok()?;
    Some((m, frac.len() as u32))
}

pub(super) fn decimal_op(a: f64, b: f64, op: Op) -> Option<f64> {
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

pub(super) fn decimal_fold(first: &Value, rest: &[Value], op: Op) -> f64 {
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

pub(super) fn round(a: Vec<Value>) -> FnResult {
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
