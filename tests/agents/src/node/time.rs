//! Time stamps in the API's wire formats (RFC 3339 seconds for `Time`, microseconds for `MicroTime`,
//! nanoseconds in CRI log lines).

use jiff::Timestamp;

/// `metav1.Time`: `2006-01-02T15:04:05Z`.
pub fn api_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `metav1.MicroTime`: `2006-01-02T15:04:05.000000Z`.
pub fn micro_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()
}

/// A CRI log line time stamp (RFC 3339 with nanoseconds, as the kubelet prints with `timestamps=true`).
pub fn log_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S.%9fZ").to_string()
}

/// The current time.
pub fn now() -> Timestamp {
    Timestamp::now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let t: Timestamp = "2024-03-01T10:20:30.123456789Z".parse().unwrap();
        assert_eq!(api_time(t), "2024-03-01T10:20:30Z");
        assert_eq!(micro_time(t), "2024-03-01T10:20:30.123456Z");
        assert_eq!(log_time(t), "2024-03-01T10:20:30.123456789Z");
    }
}
