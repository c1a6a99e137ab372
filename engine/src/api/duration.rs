//! Go `time.Duration` strings, as ESO's manifests carry them (`refreshInterval: "1h30m"`).
//!
//! ESO's CRDs declare these fields as `metav1.Duration`, so users write Go syntax: a sequence
//! of decimal numbers with unit suffixes (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`), optionally
//! signed, or a bare `0`. We parse exactly that grammar so a manifest that ESO accepts is
//! accepted here, and we format back the way Go's `Duration.String()` does so printer columns
//! and status messages read the same as under ESO.

use std::time::Duration;

/// Why a duration string was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DurationError {
    /// The string is empty.
    #[error("invalid duration \"\": empty string")]
    Empty,
    /// The string does not follow Go's duration grammar.
    #[error("time: invalid duration {0:?}")]
    Invalid(String),
    /// A number is missing its unit (only a bare `0` may go without one).
    #[error("time: missing unit in duration {0:?}")]
    MissingUnit(String),
    /// The unit is not one Go knows.
    #[error("time: unknown unit {unit:?} in duration {input:?}")]
    UnknownUnit {
        /// The offending unit.
        unit: String,
        /// The whole input.
        input: String,
    },
    /// Negative durations make no sense for intervals.
    #[error("time: negative duration {0:?} is not allowed")]
    Negative(String),
}

const NANOS_PER_UNIT: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parses a Go duration string (`"1h"`, `"90s"`, `"1.5h"`, `"0"`).
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let (negative, mut rest) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(DurationError::Invalid(input.to_string()));
    }
    let mut total: f64 = 0.0;
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..num_end];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(DurationError::Invalid(input.to_string()));
        }
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        if unit.is_empty() {
            return Err(DurationError::MissingUnit(input.to_string()));
        }
        let Some((_, scale)) = NANOS_PER_UNIT.iter().find(|(u, _)| *u == unit) else {
            return Err(DurationError::UnknownUnit {
                unit: unit.to_string(),
                input: input.to_string(),
            });
        };
        if let Some((int, frac)) = number.split_once('.') {
            let int: u128 = if int.is_empty() {
                0
            } else {
                int.parse()
                    .map_err(|_| DurationError::Invalid(input.to_string()))?
            };
            total_nanos = total_nanos.saturating_add(int.saturating_mul(*scale));
            if !frac.is_empty() {
                let f: f64 = format!("0.{frac}")
                    .parse()
                    .map_err(|_| DurationError::Invalid(input.to_string()))?;
                total += f * (*scale as f64);
            }
        } else {
            let n: u128 = number
                .parse()
                .map_err(|_| DurationError::Invalid(input.to_string()))?;
            total_nanos = total_nanos.saturating_add(n.saturating_mul(*scale));
        }
    }
    let nanos = total_nanos.saturating_add(total.round() as u128);
    if negative && nanos > 0 {
        return Err(DurationError::Negative(input.to_string()));
    }
    let secs = (nanos / 1_000_000_000).min(u64::MAX as u128) as u64;
    Ok(Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

/// Formats a duration the way Go's `time.Duration.String()` does (`1h0m0s`, `1m30s`, `500ms`).
pub fn format(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000_000_000 {
        let (value, unit) = if nanos < 1_000 {
            return format!("{nanos}ns");
        } else if nanos < 1_000_000 {
            (nanos as f64 / 1_000.0, "µs")
        } else {
            (nanos as f64 / 1_000_000.0, "ms")
        };
        return format!("{}{unit}", trim_float(value));
    }
    let total_secs = d.as_secs();
    let h = total_secs / 3600;
    let m = (total_secs % 3600) / 60;
    let s = total_secs % 60;
    let frac = d.subsec_nanos();
    let secs = if frac == 0 {
        format!("{s}")
    } else {
        let f = format!("{:09}", frac);
        format!("{s}.{}", f.trim_end_matches('0'))
    };
    if h > 0 {
        format!("{h}h{m}m{secs}s")
    } else if m > 0 {
        format!("{m}m{secs}s")
    } else {
        format!("{secs}s")
    }
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.9}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
        assert_eq!(parse("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse("24h").unwrap(), Duration::from_secs(86400));
        assert_eq!(parse("1m0s").unwrap(), Duration::from_secs(60));
    }

    #[test]
    fn rejects_what_go_rejects() {
        assert!(matches!(parse("10"), Err(DurationError::MissingUnit(_))));
        assert!(matches!(
            parse("1d"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(parse(""), Err(DurationError::Empty)));
        assert!(matches!(parse("h"), Err(DurationError::Invalid(_))));
        assert!(matches!(parse("-1h"), Err(DurationError::Negative(_))));
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(format(Duration::from_secs(90)), "1m30s");
        assert_eq!(format(Duration::from_secs(5)), "5s");
        assert_eq!(format(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format(Duration::from_millis(500)), "500ms");
        assert_eq!(format(Duration::ZERO), "0s");
    }
}
