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
    let year = at.year();
    if !(0..=9999).contains(&year) {
        return format_described(at);
    }
    // Digit by digit: every view and every event writes its times this way, and the
    // `time` crate's general formatter costs several times as much.
    let (hour, minute, second, milli) = at.to_hms_milli();
    let mut text = *b"0000-00-00T00:00:00.000Z";
    put_digits(&mut text[0..4], year.unsigned_abs());
    put_digits(&mut text[5..7], u32::from(u8::from(at.month())));
    put_digits(&mut text[8..10], u32::from(at.day()));
    put_digits(&mut text[11..13], u32::from(hour));
    put_digits(&mut text[14..16], u32::from(minute));
    put_digits(&mut text[17..19], u32::from(second));
    put_digits(&mut text[20..23], u32::from(milli));
    String::from_utf8(text.to_vec()).expect("digits and ASCII punctuation")
}

/// Writes `n` into `slot` in decimal, zero-padded to the slot's width.
fn put_digits(slot: &mut [u8], mut n: u32) {
    for digit in slot.iter_mut().rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// The same format through the `time` crate, for years outside 0–9999.
fn format_described(at: OffsetDateTime) -> String {
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

    proptest::proptest! {
        /// The digit-by-digit formatter writes what the `time` crate's would, over every
        /// millisecond of the years 0–9999 (outside them it is the `time` crate's).
        #[test]
        fn formats_as_the_time_crate_does(
            ms in (-62_167_219_200_000i64..253_402_300_800_000),
        ) {
            let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                .expect("in range");
            proptest::prop_assert_eq!(format_ms(ms), format_described(at));
        }
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
