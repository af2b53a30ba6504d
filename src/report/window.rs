//! The report's time window: `--from` and `--to` as RFC 3339, or a plain date meaning midnight
//! UTC; a release is in the window when it was requested at or after `from` and before `to`.

use crate::clock::Timestamp;
use time::Date;

/// Parses a `--from`/`--to` value: RFC 3339 (`2026-03-03T09:30:00Z`, any offset, fractions
/// cut to the millisecond) or a date (`2026-03-03`, midnight UTC).
pub(crate) fn parse_time(raw: &str) -> Result<Timestamp, String> {
    let raw = raw.trim();
    if let Some(t) = Timestamp::parse_rfc3339(raw) {
        return Ok(t);
    }
    let date = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = Date::parse(raw, &date) {
        return Ok(Timestamp::from_datetime(d.midnight().assume_utc()));
    }
    Err("expected an RFC 3339 time (2026-03-03T09:30:00Z, 2026-03-03T10:30:00+01:00) \
         or a date (2026-03-03, meaning midnight UTC)"
        .into())
}

/// `[from, to)`, never empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub from: Timestamp,
    pub to: Timestamp,
}

impl Window {
    /// Refuses a window that ends at or before its start.
    pub(crate) fn new(from: Timestamp, to: Timestamp) -> Result<Self, String> {
        if from >= to {
            return Err(format!("--from ({from}) must be before --to ({to})"));
        }
        Ok(Self { from, to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(raw: &str) -> String {
        parse_time(raw).unwrap().rfc3339()
    }

    #[test]
    fn a_time_is_rfc3339_in_any_offset_or_a_date_at_midnight_utc() {
        assert_eq!(at("2026-03-03T09:30:00Z"), "2026-03-03T09:30:00.000Z");
        assert_eq!(at("2026-03-03T10:30:00.1234+01:00"), "2026-03-03T09:30:00.123Z");
        assert_eq!(at("2026-03-03"), "2026-03-03T00:00:00.000Z");
        assert_eq!(at(" 2026-03-03 "), "2026-03-03T00:00:00.000Z");
    }

    #[test]
    fn anything_else_is_refused_with_the_forms_it_takes() {
        for bad in ["", "yesterday", "2026-13-01", "2026-03-03 09:30", "2026-03-03T09:30:00", "1772530200"] {
            let e = parse_time(bad).unwrap_err();
            assert!(e.contains("RFC 3339") && e.contains("2026-03-03"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_window_must_end_after_it_starts() {
        let (a, b) = (parse_time("2026-03-03").unwrap(), parse_time("2026-03-04").unwrap());
        assert_eq!(Window::new(a, b), Ok(Window { from: a, to: b }));
        assert!(Window::new(b, a).unwrap_err().contains("must be before"));
        assert!(Window::new(a, a).is_err());
    }
}
