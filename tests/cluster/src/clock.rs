//! Timestamps in the API's two layouts: `Time` (RFC 3339 seconds, UTC `Z`) and `MicroTime` (exactly 6 fractional digits).

use jiff::Timestamp;

/// `metav1.Time` layout: `2026-11-22T09:47:26Z`.
pub fn format_time(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The current time as `metav1.Time`.
pub fn now_time() -> String {
    format_time(Timestamp::now())
}

/// `metav1.MicroTime` layout: `2026-11-22T09:44:00.123456Z`.
pub fn format_micro(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()
}

/// Parse a `metav1.Time` (any RFC 3339 value, as Go's time.RFC3339 accepts).
pub fn parse_time(s: &str) -> Option<Timestamp> {
    s.parse::<Timestamp>().ok()
}

/// Parse a `MicroTime` the way Go parses the layout `2006-01-02T15:04:05.000000Z07:00`, with Go's error text.
pub fn parse_micro(s: &str) -> Result<Timestamp, String> {
    let layout = "2006-01-02T15:04:05.000000Z07:00";
    let err = |rest: &str, elem: &str| {
        Err(format!(
            "parsing time {s:?} as {layout:?}: cannot parse {rest:?} as {elem:?}"
        ))
    };
    let b = s.as_bytes();
    let digits = |from: usize, n: usize| {
        b.len() >= from + n && b[from..from + n].iter().all(u8::is_ascii_digit)
    };
    if !digits(0, 4) {
        return err(s, "2006");
    }
    let fields: [(usize, u8, &str, &str); 5] = [
        (4, b'-', "-", "01"),
        (7, b'-', "-", "02"),
        (10, b'T', "T", "15"),
        (13, b':', ":", "04"),
        (16, b':', ":", "05"),
    ];
    for (pos, sep, sep_s, elem) in fields {
        if b.get(pos) != Some(&sep) {
            return err(s.get(pos..).unwrap_or(""), sep_s);
        }
        if !digits(pos + 1, 2) {
            return err(s.get(pos + 1..).unwrap_or(""), elem);
        }
    }
    if b.get(19) != Some(&b'.') || !digits(20, 6) {
        return err(s.get(19..).unwrap_or(""), ".000000");
    }
    let zone = s.get(26..).unwrap_or("");
    let zone_ok = zone == "Z"
        || (zone.len() == 6
            && (zone.starts_with('+') || zone.starts_with('-'))
            && zone.as_bytes()[3] == b':'
            && zone[1..3].bytes().all(|c| c.is_ascii_digit())
            && zone[4..6].bytes().all(|c| c.is_ascii_digit()));
    if !zone_ok {
        return err(zone, "Z07:00");
    }
    s.parse::<Timestamp>()
        .map_err(|e| format!("parsing time {s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_time_accepts_exactly_six_digits_and_normalises_to_utc() {
        let t = parse_micro("2026-11-22T11:44:06.500000+02:00").unwrap();
        assert_eq!(format_micro(t), "2026-11-22T09:44:06.500000Z");
        assert_eq!(
            parse_micro("2026-11-22T09:44:00Z").unwrap_err(),
            r#"parsing time "2026-11-22T09:44:00Z" as "2006-01-02T15:04:05.000000Z07:00": cannot parse "Z" as ".000000""#
        );
        assert!(
            parse_micro("2026-11-22T09:44:00.123Z")
                .unwrap_err()
                .ends_with(r#"cannot parse ".123Z" as ".000000""#)
        );
        assert!(
            parse_micro("2026-11-22T09:44:00.987654321Z")
                .unwrap_err()
                .ends_with(r#"cannot parse "321Z" as "Z07:00""#)
        );
        assert!(
            parse_micro("yesterday")
                .unwrap_err()
                .ends_with(r#"cannot parse "yesterday" as "2006""#)
        );
    }

    #[test]
    fn time_has_seconds_and_z() {
        let t: Timestamp = "2026-11-22T09:47:26.9Z".parse().unwrap();
        assert_eq!(format_time(t), "2026-11-22T09:47:26Z");
    }
}
