//! sprig's date functions over [`crate::time`]. Their quirks are kept: `date` of a value that
//! is not a time or a Unix integer formats *now*, `toDate` of bad input gives the zero time,
//! `dateModify` of a bad duration returns the date unchanged, `durationRound` drops the sign.

use std::rc::Rc;

use super::{Entry, FnError, FnResult, Imp, call_err, s_arg, t_arg};
use crate::time::{Time, duration_string, parse_duration};
use crate::value::{Value, text};

pub const TABLE: &[Entry] = &[
    ("now", 0, Some(0), Imp::F(|_| Ok(time(now()?)))),
    (
        "date",
        2,
        Some(2),
        Imp::F(|a| format_date(&a[1], &t_arg(&a[0])?, "Local")),
    ),
    (
        "dateInZone",
        3,
        Some(3),
        Imp::F(|a| format_date(&a[1], &t_arg(&a[0])?, &t_arg(&a[2])?)),
    ),
    (
        "date_in_zone",
        3,
        Some(3),
        Imp::F(|a| format_date(&a[1], &t_arg(&a[0])?, &t_arg(&a[2])?)),
    ),
    (
        "htmlDate",
        1,
        Some(1),
        Imp::F(|a| format_date(&a[0], "2006-01-02", "Local")),
    ),
    (
        "htmlDateInZone",
        2,
        Some(2),
        Imp::F(|a| format_date(&a[0], "2006-01-02", &t_arg(&a[1])?)),
    ),
    (
        "toDate",
        2,
        Some(2),
        Imp::F(|a| {
            Ok(time(
                Time::parse(&t_arg(&a[0])?, &t_arg(&a[1])?).unwrap_or_else(|_| zero()),
            ))
        }),
    ),
    (
        "mustToDate",
        2,
        Some(2),
        Imp::F(|a| {
            Time::parse(&t_arg(&a[0])?, &t_arg(&a[1])?)
                .map(time)
                .map_err(call_err)
        }),
    ),
    (
        "unixEpoch",
        1,
        Some(1),
        Imp::F(|a| Ok(Value::str(time_arg(&a[0])?.unix.to_string()))),
    ),
    (
        "dateModify",
        2,
        Some(2),
        Imp::F(|a| modify(&a[0], &a[1], false)),
    ),
    (
        "date_modify",
        2,
        Some(2),
        Imp::F(|a| modify(&a[0], &a[1], false)),
    ),
    (
        "mustDateModify",
        2,
        Some(2),
        Imp::F(|a| modify(&a[0], &a[1], true)),
    ),
    (
        "must_date_modify",
        2,
        Some(2),
        Imp::F(|a| modify(&a[0], &a[1], true)),
    ),
    (
        "duration",
        1,
        Some(1),
        Imp::F(|a| {
            let secs: i64 = match &a[0] {
                Value::Str(s) => text(s).parse().unwrap_or(0),
                Value::Int(i) => *i,
                _ => 0,
            };
            Ok(Value::str(duration_string(
                i128::from(secs) * 1_000_000_000,
            )))
        }),
    ),
    ("durationRound", 1, Some(1), Imp::F(duration_round)),
    (
        "ago",
        1,
        Some(1),
        Imp::F(|a| {
            let now = now()?;
            let t = match &a[0] {
                Value::Time(t) => t.as_ref().clone(),
                Value::Int(i) => Time::utc(*i, 0),
                _ => now.clone(),
            };
            let d = nanos_between(&t, &now);
            // Round to seconds, half away from zero, as Duration.Round does.
            let r = (d + d.signum() * 500_000_000) / 1_000_000_000 * 1_000_000_000;
            Ok(Value::str(duration_string(r)))
        }),
    ),
];

fn time(t: Time) -> Value {
    Value::Time(Rc::new(t))
}

/// Go's zero time, 0001-01-01 00:00:00 UTC.
fn zero() -> Time {
    Time::utc(-62_135_596_800, 0)
}

/// The wall clock, from the host (WASI clocks).
fn now() -> Result<Time, FnError> {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| call_err("the clock is before 1970"))?;
    Ok(Time::utc(d.as_secs() as i64, d.subsec_nanos()))
}

fn nanos_between(from: &Time, to: &Time) -> i128 {
    (i128::from(to.unix) - i128::from(from.unix)) * 1_000_000_000 + i128::from(to.nanos)
        - i128::from(from.nanos)
}

fn time_arg(v: &Value) -> Result<Time, FnError> {
    match v {
        Value::Time(t) => Ok(t.as_ref().clone()),
        other => Err(FnError::Type {
            expected: "time.Time",
            got: other.type_name(),
        }),
    }
}

/// The sandbox has no zone database: UTC and Local (UTC in ESO's container) only.
fn zone_offset(zone: &str) -> Result<(), FnError> {
    match zone {
        "" | "UTC" | "Local" | "Etc/UTC" | "GMT" => Ok(()),
        other => Err(call_err(format!(
            "time zone {other:?} is not available: esox plugins carry no time-zone database; use UTC"
        ))),
    }
}

fn format_date(date: &Value, layout: &str, zone: &str) -> FnResult {
    zone_offset(zone)?;
    let t = match date {
        Value::Time(t) => t.as_ref().clone(),
        Value::Int(i) => Time::utc(*i, 0),
        _ => now()?,
    };
    let utc = Time::utc(t.unix, t.nanos);
    Ok(Value::str(utc.format(layout)))
}

fn modify(fmt: &Value, date: &Value, must: bool) -> FnResult {
    let t = time_arg(date)?;
    let d = match parse_duration(&t_arg(fmt)?) {
        Ok(d) => d,
        Err(e) if must => return Err(call_err(e)),
        Err(_) => return Ok(time(t)),
    };
    let total = i128::from(t.unix) * 1_000_000_000 + i128::from(t.nanos) + d;
    Ok(time(Time {
        unix: total.div_euclid(1_000_000_000) as i64,
        nanos: total.rem_euclid(1_000_000_000) as u32,
        ..t
    }))
}

fn duration_round(a: Vec<Value>) -> FnResult {
    let d: i128 = match &a[0] {
        Value::Str(_) => parse_duration(&text(&s_arg(&a[0])?)).unwrap_or(0),
        Value::Int(i) => i128::from(*i),
        Value::Time(t) => nanos_between(t, &now()?),
        _ => 0,
    };
    let u = d.unsigned_abs();
    let hour: u128 = 3_600_000_000_000;
    let units: [(u128, &str); 6] = [
        (hour * 24 * 365, "y"),
        (hour * 24 * 30, "mo"),
        (hour * 24, "d"),
        (hour, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
    ];
    for (size, unit) in units {
        if u > size {
            return Ok(Value::str(format!("{}{unit}", u / size)));
        }
    }
    Ok(Value::str("0s"))
}
