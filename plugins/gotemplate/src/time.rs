//! Go's `time.Time` as sprig's date functions use it: formatting and parsing with Go's
//! reference layout (`Mon Jan 2 15:04:05 MST 2006`), durations, Unix time.
//!
//! The sandbox has no time-zone database, so only UTC (and fixed offsets parsed from input)
//! exist; "Local" is UTC, as it is in ESO's container (no TZ set). A named zone fails with an
//! error naming it rather than silently shifting times.

use std::fmt::Write as _;

/// An instant with the offset it is shown in.
#[derive(Clone, Debug, PartialEq)]
pub struct Time {
    /// Seconds since the Unix epoch.
    pub unix: i64,
    pub nanos: u32,
    /// Seconds east of UTC.
    pub offset: i32,
    /// Zone abbreviation (`UTC`, or empty for a bare numeric offset).
    pub zone: String,
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Days since 1970-01-01 to (year, month 1-12, day 1-31) (proleptic Gregorian).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) to days since 1970-01-01.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

/// Broken-down local time.
struct Parts {
    year: i64,
    month: u32,
    day: u32,
    yday: u32,
    wday: usize,
    hour: u32,
    min: u32,
    sec: u32,
}

impl Time {
    pub fn utc(unix: i64, nanos: u32) -> Time {
        Time {
            unix,
            nanos,
            offset: 0,
            zone: "UTC".into(),
        }
    }

    fn parts(&self) -> Parts {
        let local = self.unix + i64::from(self.offset);
        let days = local.div_euclid(86_400);
        let secs = local.rem_euclid(86_400) as u32;
        let (year, month, day) = civil(days);
        let yday = (days - days_from_civil(year, 1, 1)) as u32 + 1;
        Parts {
            year,
            month,
            day,
            yday,
            wday: (days + 4).rem_euclid(7) as usize,
            hour: secs / 3600,
            min: secs / 60 % 60,
            sec: secs % 60,
        }
    }

    /// Go's `Time.String()` (without the monotonic clock reading).
    pub fn go_string(&self) -> String {
        self.format("2006-01-02 15:04:05.999999999 -0700 MST")
    }

    /// Go's `Time.Format(layout)`.
    pub fn format(&self, layout: &str) -> String {
        let p = self.parts();
        let mut out = String::new();
        let mut rest = layout;
        while !rest.is_empty() {
            let (prefix, chunk, suffix) = next_chunk(rest);
            out.push_str(prefix);
            let Some(chunk) = chunk else { break };
            self.write_chunk(&mut out, &p, chunk);
            rest = suffix;
        }
        out
    }

    fn write_chunk(&self, out: &mut String, p: &Parts, c: Chunk) {
        let h12 = match p.hour % 12 {
            0 => 12,
            h => h,
        };
        match c {
            Chunk::LongYear => {
                let _ = write!(out, "{:04}", p.year);
            }
            Chunk::Year => {
                let _ = write!(out, "{:02}", p.year.rem_euclid(100));
            }
            Chunk::Month => out.push_str(&MONTHS[p.month as usize - 1][..3]),
            Chunk::LongMonth => out.push_str(MONTHS[p.month as usize - 1]),
            Chunk::NumMonth => {
                let _ = write!(out, "{}", p.month);
            }
            Chunk::ZeroMonth => {
                let _ = write!(out, "{:02}", p.month);
            }
            Chunk::WeekDay => out.push_str(&DAYS[p.wday][..3]),
            Chunk::LongWeekDay => out.push_str(DAYS[p.wday]),
            Chunk::Day => {
                let _ = write!(out, "{}", p.day);
            }
            Chunk::UnderDay => {
                let _ = write!(out, "{:>2}", p.day);
            }
            Chunk::ZeroDay => {
                let _ = write!(out, "{:02}", p.day);
            }
            Chunk::UnderYearDay => {
                let _ = write!(out, "{:>3}", p.yday);
            }
            Chunk::ZeroYearDay => {
                let _ = write!(out, "{:03}", p.yday);
            }
            Chunk::Hour => {
                let _ = write!(out, "{:02}", p.hour);
            }
            Chunk::Hour12 => {
                let _ = write!(out, "{h12}");
            }
            Chunk::ZeroHour12 => {
                let _ = write!(out, "{h12:02}");
            }
            Chunk::Minute => {
                let _ = write!(out, "{}", p.min);
            }
            Chunk::ZeroMinute => {
                let _ = write!(out, "{:02}", p.min);
            }
            Chunk::Second => {
                let _ = write!(out, "{}", p.sec);
            }
            Chunk::ZeroSecond => {
                let _ = write!(out, "{:02}", p.sec);
            }
            Chunk::PM => out.push_str(if p.hour >= 12 { "PM" } else { "AM" }),
            Chunk::Pm => out.push_str(if p.hour >= 12 { "pm" } else { "am" }),
            Chunk::Tz => {
                if self.zone.is_empty() {
                    self.write_offset(out, false, false, true, false);
                } else {
                    out.push_str(&self.zone);
                }
            }
            Chunk::Offset {
                iso,
                colon,
                minutes,
                seconds,
            } => {
                if iso && self.offset == 0 {
                    out.push('Z');
                } else {
                    self.write_offset(out, colon, seconds, minutes, true);
                }
            }
            Chunk::Frac { digits, trim } => {
                let f = format!("{:09}", self.nanos);
                let mut d = f[..digits.min(9)].to_string();
                if trim {
                    while d.ends_with('0') {
                        d.pop();
                    }
                    if d.is_empty() {
                        return;
                    }
                }
                out.push('.');
                out.push_str(&d);
            }
        }
    }

    fn write_offset(
        &self,
        out: &mut String,
        colon: bool,
        seconds: bool,
        minutes: bool,
        _num: bool,
    ) {
        let off = self.offset;
        out.push(if off < 0 { '-' } else { '+' });
        let a = off.unsigned_abs();
        let _ = write!(out, "{:02}", a / 3600);
        if minutes {
            if colon {
                out.push(':');
            }
            let _ = write!(out, "{:02}", a / 60 % 60);
        }
        if seconds {
            if colon {
                out.push(':');
            }
            let _ = write!(out, "{:02}", a % 60);
        }
    }

    /// Go's `time.ParseInLocation(layout, value, UTC)`. Go's errors quote the value; these
    /// name the layout and what is wrong, never the value (it is secret data in a template).
    pub fn parse(layout: &str, value: &str) -> Result<Time, String> {
        let bad = || format!("parsing time as {layout:?}: the value does not match the layout");
        let (mut year, mut month, mut day, mut hour, mut min, mut sec, mut nanos) =
            (1i64, 1u32, 1u32, 0u32, 0u32, 0u32, 0u32);
        let mut pm: Option<bool> = None;
        let mut offset: Option<i32> = None;
        let mut zone = String::new();
        let mut l = layout;
        let mut v = value;
        while !l.is_empty() {
            let (prefix, chunk, suffix) = next_chunk(l);
            v = v.strip_prefix(prefix).ok_or_else(bad)?;
            let Some(chunk) = chunk else { break };
            l = suffix;
            let num = |v: &mut &str, min: usize, max: usize| -> Result<u32, String> {
                let n = v.bytes().take(max).take_while(u8::is_ascii_digit).count();
                if n < min {
                    return Err(bad());
                }
                let x = v[..n].parse().map_err(|_| bad())?;
                *v = &v[n..];
                Ok(x)
            };
            match chunk {
                Chunk::LongYear => year = i64::from(num(&mut v, 4, 4)?),
                Chunk::Year => {
                    let y = i64::from(num(&mut v, 2, 2)?);
                    year = if y >= 69 { 1900 + y } else { 2000 + y };
                }
                Chunk::Month | Chunk::LongMonth => {
                    let long = chunk == Chunk::LongMonth;
                    let (i, len) = MONTHS
                        .iter()
                        .enumerate()
                        .find_map(|(i, m)| {
                            let name = if long { *m } else { &m[..3] };
                            v.get(..name.len())
                                .filter(|p| p.eq_ignore_ascii_case(name))
                                .map(|_| (i, name.len()))
                        })
                        .ok_or_else(bad)?;
                    month = i as u32 + 1;
                    v = &v[len..];
                }
                Chunk::NumMonth | Chunk::ZeroMonth => {
                    month = num(&mut v, if chunk == Chunk::ZeroMonth { 2 } else { 1 }, 2)?;
                }
                Chunk::WeekDay | Chunk::LongWeekDay => {
                    let long = chunk == Chunk::LongWeekDay;
                    let len = DAYS
                        .iter()
                        .find_map(|d| {
                            let name = if long { *d } else { &d[..3] };
                            v.get(..name.len())
                                .filter(|p| p.eq_ignore_ascii_case(name))
                                .map(|_| name.len())
                        })
                        .ok_or_else(bad)?;
                    v = &v[len..];
                }
                Chunk::Day | Chunk::ZeroDay | Chunk::UnderDay => {
                    if chunk == Chunk::UnderDay {
                        v = v.strip_prefix(' ').unwrap_or(v);
                    }
                    day = num(&mut v, if chunk == Chunk::ZeroDay { 2 } else { 1 }, 2)?;
                }
                Chunk::UnderYearDay | Chunk::ZeroYearDay => {
                    v = v.trim_start_matches(' ');
                    num(&mut v, 1, 3)?;
                }
                Chunk::Hour => hour = num(&mut v, 2, 2)?,
                Chunk::Hour12 | Chunk::ZeroHour12 => {
                    hour = num(&mut v, if chunk == Chunk::ZeroHour12 { 2 } else { 1 }, 2)?;
                }
                Chunk::Minute | Chunk::ZeroMinute => {
                    min = num(&mut v, if chunk == Chunk::ZeroMinute { 2 } else { 1 }, 2)?;
                }
                Chunk::Second | Chunk::ZeroSecond => {
                    sec = num(&mut v, if chunk == Chunk::ZeroSecond { 2 } else { 1 }, 2)?;
                    // Go accepts a fraction after seconds even when the layout has none.
                    if !matches!(next_chunk(l).1, Some(Chunk::Frac { .. }))
                        && let Some(rest) = v.strip_prefix(['.', ','])
                        && rest.starts_with(|c: char| c.is_ascii_digit())
                    {
                        let n = rest.bytes().take_while(u8::is_ascii_digit).count();
                        nanos = frac_nanos(&rest[..n]);
                        v = &rest[n..];
                    }
                }
                Chunk::PM | Chunk::Pm => {
                    let p = v.get(..2).ok_or_else(bad)?;
                    pm = Some(match p.to_ascii_uppercase().as_str() {
                        "PM" => true,
                        "AM" => false,
                        _ => return Err(bad()),
                    });
                    v = &v[2..];
                }
                Chunk::Tz => {
                    let n = v.bytes().take_while(u8::is_ascii_uppercase).count();
                    if n < 3 {
                        return Err(bad());
                    }
                    zone = v[..n].to_string();
                    v = &v[n..];
                }
                Chunk::Offset {
                    iso,
                    colon,
                    minutes,
                    seconds,
                } => {
                    if iso && let Some(r) = v.strip_prefix('Z') {
                        offset = Some(0);
                        v = r;
                        continue;
                    }
                    let sign = match v.chars().next() {
                        Some('+') => 1,
                        Some('-') => -1,
                        _ => return Err(bad()),
                    };
                    v = &v[1..];
                    let hh = num(&mut v, 2, 2)? as i32;
                    let mut mm = 0;
                    let mut ss = 0;
                    if minutes {
                        if colon {
                            v = v.strip_prefix(':').ok_or_else(bad)?;
                        }
                        mm = num(&mut v, 2, 2)? as i32;
                    }
                    if seconds {
                        if colon {
                            v = v.strip_prefix(':').ok_or_else(bad)?;
                        }
                        ss = num(&mut v, 2, 2)? as i32;
                    }
                    offset = Some(sign * (hh * 3600 + mm * 60 + ss));
                }
                Chunk::Frac { digits, trim } => {
                    let rest = v.strip_prefix(['.', ',']);
                    match rest {
                        Some(r) => {
                            let n = r.bytes().take_while(u8::is_ascii_digit).count();
                            if !trim && n != digits {
                                return Err(bad());
                            }
                            nanos = frac_nanos(&r[..n]);
                            v = &r[n..];
                        }
                        None if trim => {}
                        None => return Err(bad()),
                    }
                }
            }
        }
        if !v.is_empty() {
            return Err(format!(
                "parsing time as {layout:?}: extra text after the layout ({} bytes)",
                v.len()
            ));
        }
        if let Some(p) = pm {
            if hour > 12 {
                return Err("parsing time: hour out of range".to_string());
            }
            if p && hour < 12 {
                hour += 12;
            } else if !p && hour == 12 {
                hour = 0;
            }
        }
        let dim = [
            31,
            if is_leap(year) { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        if !(1..=12).contains(&month) {
            return Err("parsing time: month out of range".to_string());
        }
        if day < 1 || day > dim[month as usize - 1] {
            return Err("parsing time: day out of range".to_string());
        }
        if hour > 23 || min > 59 || sec > 59 {
            return Err("parsing time: hour/minute/second out of range".to_string());
        }
        let local = days_from_civil(year, month, day) * 86_400
            + i64::from(hour) * 3600
            + i64::from(min) * 60
            + i64::from(sec);
        let (offset, zone) = match (offset, zone.as_str()) {
            (Some(o), _) => (
                o,
                if o == 0 {
                    "UTC".to_string()
                } else {
                    String::new()
                },
            ),
            (None, "" | "UTC" | "GMT") => (0, "UTC".to_string()),
            // Go fabricates a zone with offset 0 for an unknown abbreviation.
            (None, z) => (0, z.to_string()),
        };
        Ok(Time {
            unix: local - i64::from(offset),
            nanos,
            offset,
            zone,
        })
    }
}

fn frac_nanos(digits: &str) -> u32 {
    let mut d = digits.to_string();
    d.truncate(9);
    while d.len() < 9 {
        d.push('0');
    }
    d.parse().unwrap_or(0)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Chunk {
    LongYear,
    Year,
    Month,
    LongMonth,
    NumMonth,
    ZeroMonth,
    WeekDay,
    LongWeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    PM,
    Pm,
    Tz,
    Offset {
        iso: bool,
        colon: bool,
        minutes: bool,
        seconds: bool,
    },
    Frac {
        digits: usize,
        trim: bool,
    },
}

fn lower_follows(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
}

/// Go's nextStdChunk: the text before the first layout element, the element, and the rest.
fn next_chunk(layout: &str) -> (&str, Option<Chunk>, &str) {
    let b = layout.as_bytes();
    let at = |i: usize, s: &str| layout.get(i..).is_some_and(|r| r.starts_with(s));
    for i in 0..b.len() {
        let hit = |n: usize, c: Chunk| Some((&layout[..i], Some(c), &layout[i + n..]));
        let found = match b[i] {
            b'J' if at(i, "Jan") => {
                if at(i, "January") {
                    hit(7, Chunk::LongMonth)
                } else if !lower_follows(&layout[i + 3..]) {
                    hit(3, Chunk::Month)
                } else {
                    None
                }
            }
            b'M' if at(i, "Mon") => {
                if at(i, "Monday") {
                    hit(6, Chunk::LongWeekDay)
                } else if !lower_follows(&layout[i + 3..]) {
                    hit(3, Chunk::WeekDay)
                } else {
                    None
                }
            }
            b'M' if at(i, "MST") => hit(3, Chunk::Tz),
            b'0' if i + 1 < b.len() && (b'1'..=b'6').contains(&b[i + 1]) => hit(
                2,
                [
                    Chunk::ZeroMonth,
                    Chunk::ZeroDay,
                    Chunk::ZeroHour12,
                    Chunk::ZeroMinute,
                    Chunk::ZeroSecond,
                    Chunk::Year,
                ][(b[i + 1] - b'1') as usize],
            ),
            b'0' if at(i, "002") => hit(3, Chunk::ZeroYearDay),
            b'1' if at(i, "15") => hit(2, Chunk::Hour),
            b'1' => hit(1, Chunk::NumMonth),
            b'2' if at(i, "2006") => hit(4, Chunk::LongYear),
            b'2' => hit(1, Chunk::Day),
            b'_' if at(i, "_2006") => {
                return (&layout[..i + 1], Some(Chunk::LongYear), &layout[i + 5..]);
            }
            b'_' if at(i, "_2") => hit(2, Chunk::UnderDay),
            b'_' if at(i, "__2") => hit(3, Chunk::UnderYearDay),
            b'3' => hit(1, Chunk::Hour12),
            b'4' => hit(1, Chunk::Minute),
            b'5' => hit(1, Chunk::Second),
            b'P' if at(i, "PM") => hit(2, Chunk::PM),
            b'p' if at(i, "pm") => hit(2, Chunk::Pm),
            b'-' | b'Z' => {
                let iso = b[i] == b'Z';
                let forms: [(&str, bool, bool, bool); 5] = [
                    ("070000", false, true, true),
                    ("07:00:00", true, true, true),
                    ("0700", false, true, false),
                    ("07:00", true, true, false),
                    ("07", false, false, false),
                ];
                forms.iter().find(|(f, ..)| at(i + 1, f)).and_then(
                    |(f, colon, minutes, seconds)| {
                        hit(
                            1 + f.len(),
                            Chunk::Offset {
                                iso,
                                colon: *colon,
                                minutes: *minutes,
                                seconds: *seconds,
                            },
                        )
                    },
                )
            }
            b'.' | b',' if i + 1 < b.len() && (b[i + 1] == b'0' || b[i + 1] == b'9') => {
                let ch = b[i + 1];
                let mut j = i + 1;
                while j < b.len() && b[j] == ch {
                    j += 1;
                }
                if j < b.len() && b[j].is_ascii_digit() {
                    None
                } else {
                    Some((
                        &layout[..i],
                        Some(Chunk::Frac {
                            digits: j - i - 1,
                            trim: ch == b'9',
                        }),
                        &layout[j..],
                    ))
                }
            }
            _ => None,
        };
        if let Some(f) = found {
            return f;
        }
    }
    (layout, None, "")
}

/// Go's `Duration.String()`: `1h2m3.5s`, `1.5s`, `300ms`, `0s`.
pub fn duration_string(nanos: i128) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let neg = nanos < 0;
    let u = nanos.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        // Sub-second: ns, µs or ms with a fraction.
        let (unit, scale) = if u < 1_000 {
            ("ns", 1)
        } else if u < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        out.push_str(&frac(u, scale));
        out.push_str(unit);
    } else {
        let secs = u / 1_000_000_000;
        let h = secs / 3600;
        let m = secs / 60 % 60;
        if h > 0 {
            let _ = write!(out, "{h}h");
        }
        if h > 0 || m > 0 {
            let _ = write!(out, "{m}m");
        }
        let s_nanos = u % 60_000_000_000;
        out.push_str(&frac(s_nanos, 1_000_000_000));
        out.push('s');
    }
    if neg {
        out.insert(0, '-');
    }
    out
}

fn frac(v: u128, scale: u128) -> String {
    let whole = v / scale;
    let rem = v % scale;
    if rem == 0 {
        return whole.to_string();
    }
    let width = scale.ilog10() as usize;
    let mut f = format!("{rem:0width$}");
    while f.ends_with('0') {
        f.pop();
    }
    format!("{whole}.{f}")
}

/// Go's `time.ParseDuration`. Go's errors quote the text; these do not (it can be data).
pub fn parse_duration(s: &str) -> Result<i128, String> {
    let err = || "time: invalid duration".to_string();
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(err());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let n = rest
            .bytes()
            .take_while(|c| c.is_ascii_digit() || *c == b'.')
            .count();
        if n == 0 {
            return Err(err());
        }
        let value: f64 = rest[..n].parse().map_err(|_| err())?;
        rest = &rest[n..];
        let u = rest
            .bytes()
            .take_while(|c| !c.is_ascii_digit() && *c != b'.')
            .count();
        let unit = &rest[..u];
        rest = &rest[u..];
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err("time: missing unit in duration".into()),
            _ => return Err("time: unknown unit in duration (units: ns us ms s m h)".into()),
        };
        total += value * scale;
    }
    let n = total.round() as i128;
    Ok(if neg { -n } else { n })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_go_layouts() {
        // 2024-03-15 14:05:09.12 UTC, a Friday.
        let t = Time::utc(1_710_511_509, 120_000_000);
        assert_eq!(
            t.format("2006-01-02T15:04:05Z07:00"),
            "2024-03-15T14:05:09Z"
        );
        assert_eq!(
            t.format("Mon Jan _2 3:04PM .000 .999 MST 06 002"),
            "Fri Mar 15 2:05PM .120 .12 UTC 24 075"
        );
        assert_eq!(t.go_string(), "2024-03-15 14:05:09.12 +0000 UTC");
        let p = Time::parse("2006-01-02 15:04:05 -0700", "2024-03-15 16:05:09 +0200").unwrap();
        assert_eq!(p.unix, 1_710_511_509);
        assert_eq!(p.format("15:04 -07:00"), "16:05 +02:00");
        assert!(Time::parse("2006-01-02", "2024-02-30").is_err());
    }

    #[test]
    fn durations_like_go() {
        assert_eq!(duration_string(3_723_000_000_000), "1h2m3s");
        assert_eq!(duration_string(1_500_000_000), "1.5s");
        assert_eq!(duration_string(300_000_000), "300ms");
        assert_eq!(duration_string(-90_000_000_000), "-1m30s");
        assert_eq!(parse_duration("1h30m").unwrap(), 5_400_000_000_000);
        assert_eq!(parse_duration("-1.5h").unwrap(), -5_400_000_000_000);
        assert!(parse_duration("10").is_err());
    }

    /// Parse errors name the layout and the problem, never the value (template data).
    #[test]
    fn parse_errors_never_quote_the_value() {
        let v = "2024-13-01-canary";
        for (layout, value) in [
            ("2006-01-02", "canary-not-a-date"),
            ("2006-01-02", v),
            ("2006-01-02", "2024-13-01"),
            ("2006-01-02", "2024-02-31"),
            ("15:04 PM", "13:00 PM"),
        ] {
            let e = Time::parse(layout, value).unwrap_err();
            assert!(e.starts_with("parsing time"), "{e}");
            assert!(!e.contains(value) && !e.contains("canary"), "{e}");
        }
        for d in ["canary", "3 canaries", "12", "1h-canary"] {
            let e = parse_duration(d).unwrap_err();
            assert!(e.starts_with("time: "), "{e}");
            assert!(!e.contains("canar") && !e.contains(d), "{e}");
        }
    }
}
