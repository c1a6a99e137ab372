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
    /// Longer than Go's `time.Duration` can hold (`2562047h47m16.854775807s`): Go's
    /// `ParseDuration`, and so ESO, rejects it (the apiserver does not: the CRD field is a
    /// plain string).
    #[error(
        "time: invalid duration {0:?}: longer than 2562047h47m16.854775807s, the longest duration Go (and ESO) accepts"
    )]
    Overflow(String),
}

/// The longest duration Go's `time.Duration` holds: `i64::MAX` nanoseconds.
pub const MAX: Duration = Duration::new(9_223_372_036, 854_775_807);

/// `input` as an error message shows it ([`super::abbreviate`]): a manifest field can be a
/// megabyte long.
fn shown(input: &str) -> String {
    super::abbreviate(input, 64)
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
    let invalid = || DurationError::Invalid(shown(input));
    let overflow = || DurationError::Overflow(shown(input));
    let (negative, mut rest) = if let Some(r) = s.strip_prefix('-') {
        (true, r)
    } else {
        (false, s.strip_prefix('+').unwrap_or(s))
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: f64 = 0.0;
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..num_end];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(invalid());
        }
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        if unit.is_empty() {
            return Err(DurationError::MissingUnit(shown(input)));
        }
        let Some((_, scale)) = NANOS_PER_UNIT.iter().find(|(u, _)| *u == unit) else {
            return Err(DurationError::UnknownUnit {
                unit: shown(unit),
                input: shown(input),
            });
        };
        // Only digits reach here, so a number that does not parse is too long for a u128:
        // far beyond Go's limit.
        let (int, frac) = number.split_once('.').unwrap_or((number, ""));
        let int: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| overflow())?
        };
        total_nanos = total_nanos.saturating_add(int.saturating_mul(*scale));
        if !frac.is_empty() {
            // Only the first digits can matter (Go drops the rest too): a nanosecond of an
            // hour is the 13th decimal.
            let digits = &frac[..frac.len().min(18)];
            let f: f64 = format!("0.{digits}").parse().map_err(|_| invalid())?;
            total += f * (*scale as f64);
        }
    }
    // `as` saturates (a sum of fractions below 1 each is finite anyway).
    let nanos = total_nanos.saturating_add(total.round() as u128);
    if negative && nanos > 0 {
        return Err(DurationError::Negative(shown(input)));
    }
    if nanos > MAX.as_nanos() {
        return Err(overflow());
    }
    // Within Go's limit, so within a Duration: seconds fit in a u64 by far.
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| overflow())?;
    let subsec = u32::try_from(nanos % 1_000_000_000).map_err(|_| overflow())?;
    Ok(Duration::new(secs, subsec))
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

    /// Go's `ParseDuration` stops at `i64::MAX` nanoseconds; so does ESO, and so do we, with
    /// a message that says why (the apiserver accepts any string here).
    #[test]
    fn rejects_what_go_cannot_hold() {
        assert_eq!(
            parse("2562047h47m16.854775807s").unwrap(),
            MAX,
            "Go's longest duration is accepted"
        );
        assert_eq!(
            parse("2562047h").unwrap(),
            Duration::from_secs(2_562_047 * 3600)
        );
        for huge in [
            "2562048h",
            "9999999999h",
            "2562047h47m16.854775808s",
            "9223372036854775808ns",
            "99999999999999999999999999999999999999999999999h",
            "1h9999999999999999999999999999999999999999999999999999s",
        ] {
            let err = parse(huge).unwrap_err();
            assert!(matches!(err, DurationError::Overflow(_)), "{huge}: {err:?}");
        }
        assert_eq!(
            parse("9999999999h").unwrap_err().to_string(),
            "time: invalid duration \"9999999999h\": longer than 2562047h47m16.854775807s, \
             the longest duration Go (and ESO) accepts"
        );
        // Many components that each fit but add up past the limit.
        let many = "2562047h".repeat(3);
        assert!(matches!(parse(&many), Err(DurationError::Overflow(_))));
        // A sum of many fractions stays finite and is judged like any other.
        let fractions = "0.9999999999999999999999h".repeat(10_000);
        assert!(parse(&fractions).is_ok());
    }

    /// A megabyte of manifest is not repeated in the status, the Event or the log.
    #[test]
    fn long_inputs_are_shortened_in_messages() {
        let long = format!("{}x", "1".repeat(1 << 20));
        let msg = parse(&long).unwrap_err().to_string();
        assert!(msg.len() < 300, "{}", msg.len());
        assert!(msg.contains("(1048577 bytes)"), "{msg}");
        let unit = format!("1{}", "é".repeat(100_000));
        let msg = parse(&unit).unwrap_err().to_string();
        assert!(msg.len() < 600, "{}", msg.len());
        // Multi-byte characters are cut at a boundary.
        assert!(shown(&"é".repeat(100)).starts_with(&"é".repeat(32)));
        for odd in [
            "-", "+", "-+1h", "+-1h", "1h-1m", "µ", "1µ", ".", "1..5h", "\u{0}",
        ] {
            assert!(parse(odd).is_err(), "{odd}");
        }
        assert_eq!(parse("+1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse("-0").unwrap(), Duration::ZERO);
        assert_eq!(parse("1.h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse(".5s").unwrap(), Duration::from_millis(500));
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(format(Duration::from_secs(90)), "1m30s");
        assert_eq!(format(Duration::from_secs(5)), "5s");
        assert_eq!(format(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format(Duration::from_millis(500)), "500ms");
        assert_eq!(format(Duration::ZERO), "0s");
        assert_eq!(format(MAX), "2562047h47m16.854775807s");
        // Anything a Duration holds formats without overflowing.
        assert_eq!(format(Duration::MAX), "5124095576030431h0m15.999999999s");
    }
}
