//! Reading a `since` argument: how far back a channel summary reaches.
//!
//! Accepts a duration back from now (`90m`, `24h`, `7d`, `2 weeks`), a date
//! (`2024-05-01`, midnight UTC), a time (`2024-05-01T09:00:00Z`, with or without
//! an offset) or Unix seconds (a Slack `ts` too), and turns it into Unix seconds.
//! Parsing is by checked slices of ASCII digits, so no input can panic it; a
//! window longer than [`MAX_WINDOW_SECS`] and a time in the future are refused
//! with a message naming the argument and how to write it.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::Error;
use crate::model;

/// Longest `since` window accepted, in seconds (about ten years).
pub const MAX_WINDOW_SECS: i64 = 10 * 366 * 86_400;

/// Seconds since the Unix epoch now.
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

const SINCE_HELP: &str = "pass a duration back from now (90m, 24h, 7d, 2w), a date (2024-05-01), \
    a time (2024-05-01T09:00:00Z or with an offset such as +02:00) or Unix seconds";

/// Parses a `since` argument into Unix seconds, relative to `now`.
pub fn parse_since(since: &str, now: i64) -> Result<i64, Error> {
    let since = since.trim();
    let bad = || Error::invalid("since", format!("{since:?} is not a time; {SINCE_HELP}"));
    let oldest = if let Some(oldest) = parse_duration_ago(since, now) {
        oldest?
    } else if since.chars().all(|c| c.is_ascii_digit() || c == '.') {
        // Unix seconds or a Slack ts; short numbers are durations missing a unit.
        let secs = since.split('.').next().unwrap_or_default();
        if secs.len() < 9 {
            return Err(Error::invalid(
                "since",
                format!("{since:?} has no unit; write e.g. {since}h or {since}d, or {SINCE_HELP}"),
            ));
        }
        secs.parse::<i64>().map_err(|_| bad())?
    } else {
        parse_date_time(since).ok_or_else(bad)?
    };
    if oldest > now {
        return Err(Error::invalid(
            "since",
            format!(
                "{since:?} is in the future ({}); pass a time in the past",
                model::rfc3339(oldest)
            ),
        ));
    }
    Ok(oldest)
}

/// `90m`, `24h`, `7d`, `2w` (also `24 hours`, `7days`...) back from `now`; `None`
/// when `s` is not shaped like a duration.
fn parse_duration_ago(s: &str, now: i64) -> Option<Result<i64, Error>> {
    let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return None;
    }
    let unit = s[digits.len()..].trim().to_lowercase();
    let seconds = match unit.as_str() {
        "m" | "min" | "mins" | "minute" | "minutes" => 60,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3_600,
        "d" | "day" | "days" => 86_400,
        "w" | "wk" | "week" | "weeks" => 7 * 86_400,
        _ => return None,
    };
    let window = digits
        .parse::<i64>()
        .ok()
        .and_then(|n| n.checked_mul(seconds))
        .filter(|w| *w <= MAX_WINDOW_SECS);
    Some(match window {
        Some(window) => Ok(now - window),
        None => Err(Error::invalid(
            "since",
            format!("{s:?} reaches back more than ten years; pass a shorter window"),
        )),
    })
}

/// Parses `N` digits at the start of `s`.
fn number(s: &str, len: usize) -> Option<i64> {
    let part = s.get(..len)?;
    if part.chars().all(|c| c.is_ascii_digit()) {
        part.parse().ok()
    } else {
        None
    }
}

/// `YYYY-MM-DD` (midnight UTC) or `YYYY-MM-DD[T ]HH:MM[:SS[.frac]][Z|±HH:MM]`
/// (UTC when no offset is given), as Unix seconds.
fn parse_date_time(s: &str) -> Option<i64> {
    let year = number(s, 4)?;
    let month = number(s.get(5..)?, 2)?;
    let day = number(s.get(8..)?, 2)?;
    if s.get(4..5)? != "-" || s.get(7..8)? != "-" || !(1..=12).contains(&month) {
        return None;
    }
    let days_in_month = model::days_from_civil(year + i64::from(month == 12), month % 12 + 1, 1)
        - model::days_from_civil(year, month, 1);
    if !(1..=days_in_month).contains(&day) {
        return None;
    }
    let midnight = model::days_from_civil(year, month, day) * 86_400;
    let rest = &s[10..];
    if rest.is_empty() {
        return Some(midnight);
    }
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let hour = number(rest, 2)?;
    let minute = number(rest.get(3..)?, 2)?;
    if rest.get(2..3)? != ":" || hour > 23 || minute > 59 {
        return None;
    }
    let mut rest = &rest[5..];
    let mut second = 0;
    if let Some(after) = rest.strip_prefix(':') {
        second = number(after, 2)?;
        if second > 60 {
            return None;
        }
        rest = &after[2..];
        if let Some(frac) = rest.strip_prefix('.') {
            let digits = frac.chars().take_while(char::is_ascii_digit).count();
            if digits == 0 {
                return None;
            }
            rest = &frac[digits..];
        }
    }
    let offset = match rest {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = match rest.get(..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let zone = &rest[1..];
            let (h, m) = match zone.len() {
                5 if zone.get(2..3)? == ":" => (number(zone, 2)?, number(&zone[3..], 2)?),
                4 => (number(zone, 2)?, number(&zone[2..], 2)?),
                2 => (number(zone, 2)?, 0),
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            sign * (h * 3_600 + m * 60)
        }
    };
    Some(midnight + hour * 3_600 + minute * 60 + second - offset)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const NOW: i64 = 1_714_600_000; // 2024-05-01T21:46:40Z

    #[test]
    fn durations_count_back_from_now() {
        assert_eq!(parse_since("24h", NOW).ok(), Some(NOW - 86_400));
        assert_eq!(parse_since("90m", NOW).ok(), Some(NOW - 5_400));
        assert_eq!(parse_since("7d", NOW).ok(), Some(NOW - 7 * 86_400));
        assert_eq!(parse_since("2 weeks", NOW).ok(), Some(NOW - 14 * 86_400));
        assert_eq!(parse_since(" 3 Hours ", NOW).ok(), Some(NOW - 3 * 3_600));
    }

    #[test]
    fn dates_times_and_unix_seconds_are_absolute() {
        assert_eq!(parse_since("2024-05-01", NOW).ok(), Some(1_714_521_600));
        assert_eq!(
            parse_since("2024-05-01T09:30:00Z", NOW).ok(),
            Some(1_714_521_600 + 9 * 3_600 + 1_800)
        );
        assert_eq!(
            parse_since("2024-05-01T09:30+02:00", NOW).ok(),
            Some(1_714_521_600 + 7 * 3_600 + 1_800)
        );
        assert_eq!(
            parse_since("2024-05-01 09:30:15.250-0100", NOW).ok(),
            Some(1_714_521_600 + 10 * 3_600 + 1_815)
        );
        assert_eq!(parse_since("1714521600", NOW).ok(), Some(1_714_521_600));
        assert_eq!(
            parse_since("1714521600.123456", NOW).ok(),
            Some(1_714_521_600)
        );
    }

    #[test]
    fn bad_or_future_times_name_the_argument_and_the_fix() {
        for bad in [
            "yesterday",
            "24",
            "2024-13-01",
            "2024-02-30",
            "2024-05-01T25:00",
            "2024-05-01T09:00+2",
            "5 fortnights",
            "99999999999999999999d",
            "2030-01-01",
        ] {
            let Err(error) = parse_since(bad, NOW) else {
                panic!("{bad:?} was accepted");
            };
            let message = error.to_string();
            assert!(message.starts_with("invalid argument since: "), "{message}");
            assert!(message.contains(bad.trim()), "{message}");
        }
        let Err(error) = parse_since("24", NOW) else {
            panic!("24 was accepted");
        };
        assert!(error.to_string().contains("24h"), "{error}");
    }

    #[test]
    fn leap_days_are_dates() {
        assert!(parse_since("2024-02-29", NOW).is_ok());
        assert!(parse_since("2023-02-29", NOW).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever a model passes, the answer is a time no later than now, or
        /// an error naming the argument.
        #[test]
        fn any_text_is_a_past_time_or_an_error(text in "\\PC{0,40}") {
            match parse_since(&text, NOW) {
                Ok(oldest) => prop_assert!(oldest <= NOW),
                Err(error) => prop_assert!(error.to_string().starts_with("invalid argument since: ")),
            }
        }

        /// Text shaped like a date or duration, with any characters mixed in.
        #[test]
        fn near_misses_never_panic(
            shape in prop::sample::select(vec!["2024-05-01T09:30:00+02:00", "1714521600.5", "24 hours", "2024-02-29"]),
            cut in 0usize..30,
            insert in "\\PC{0,3}",
        ) {
            let mut text: String = shape.chars().take(cut).collect();
            text.push_str(&insert);
            text.extend(shape.chars().skip(cut));
            let _ = parse_since(&text, NOW);
        }
    }
}
