//! Time as the contract writes it: RFC 3339, UTC, milliseconds; stored as Unix milliseconds.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

/// Milliseconds since the Unix epoch, UTC: how the store keeps every time.
pub type Millis = i64;

/// Now, in milliseconds.
pub fn now_ms() -> Millis {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as Millis
}

/// `2025-01-15T10:30:00.000Z`.
pub fn format_ms(ms: Millis) -> String {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    at.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    ))
    .unwrap_or_default()
}

/// A day as patients read it, in UTC: "31 January 2027" (invitation messages).
pub fn format_day(ms: Millis) -> String {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    at.format(format_description!(
        "[day padding:none] [month repr:long] [year]"
    ))
    .expect("the format fits every date")
}

/// Parses any RFC 3339 time (any offset) into milliseconds.
pub fn parse_rfc3339(text: &str) -> Option<Millis> {
    let at = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    Some((at.to_offset(UtcOffset::UTC).unix_timestamp_nanos() / 1_000_000) as Millis)
}

/// Serialises an optional time field in the contract's format.
pub fn format_opt(ms: Option<Millis>) -> Option<String> {
    ms.map(format_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_milliseconds_in_utc() {
        assert_eq!(format_ms(1_736_937_000_123), "2025-01-15T10:30:00.123Z");
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn parses_offsets_into_utc() {
        assert_eq!(
            parse_rfc3339("2025-01-15T11:30:00.123+01:00"),
            Some(1_736_937_000_123)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
