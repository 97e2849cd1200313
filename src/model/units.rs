//! Human units in the config: durations (`30s`, `1h30m`, `7d`), Kubernetes quantities
//! (`10Gi`, `500m`) and byte rates (`10MiB`, meaning per second).

use std::fmt;
use std::time::Duration;

/// A duration written as a sequence of `<number><unit>` parts, units `s`, `m`, `h`, `d` (24h)
/// and `w` (7d), e.g. `90s`, `1h30m`, `2d`. Kept as text-free data; `Display` prints the
/// canonical form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// A duration of whole seconds.
    pub const fn from_secs(secs: u64) -> Self {
        HumanDuration(Duration::from_secs(secs))
    }

    /// The number of whole seconds.
    pub fn as_secs(self) -> u64 {
        self.0.as_secs()
    }
}

/// Parses a human duration; the error says what was expected.
pub fn parse_duration(s: &str) -> Result<HumanDuration, String> {
    let expected = "expected a duration such as 30s, 5m, 1h30m, 2d or 1w";
    let t = s.trim();
    if t.is_empty() {
        return Err(format!("empty duration, {expected}"));
    }
    let mut total: u64 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(format!("{s:?}: {expected}"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{s:?}: number too large"))?;
        rest = &rest[digits..];
        let unit = rest.chars().next().ok_or_else(|| {
            format!("{s:?}: missing unit after {n} (use s, m, h, d or w), {expected}")
        })?;
        let factor = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            other => return Err(format!("{s:?}: unknown unit {other:?}, {expected}")),
        };
        rest = &rest[unit.len_utf8()..];
        total = n
            .checked_mul(factor)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("{s:?}: duration too large"))?;
    }
    Ok(HumanDuration(Duration::from_secs(total)))
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut secs = self.0.as_secs();
        if secs == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
            if secs >= size {
                write!(f, "{}{unit}", secs / size)?;
                secs %= size;
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_duration(s)
    }
}

impl<'de> serde::Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Checks a Kubernetes resource quantity (`100m`, `1.5Gi`, `2e3`, `512Mi`).
pub fn check_quantity(s: &str) -> Result<(), String> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let num_len = body
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .count();
    let (num, suffix) = body.split_at(num_len);
    let num_ok = !num.is_empty()
        && num != "."
        && num.matches('.').count() <= 1
        && num.chars().any(|c| c.is_ascii_digit());
    let suffix_ok = matches!(
        suffix,
        "" | "Ki"
            | "Mi"
            | "Gi"
            | "Ti"
            | "Pi"
            | "Ei"
            | "n"
            | "u"
            | "m"
            | "k"
            | "M"
            | "G"
            | "T"
            | "P"
            | "E"
    ) || (suffix.len() > 1
        && suffix.starts_with(['e', 'E'])
        && suffix[1..]
            .strip_prefix(['+', '-'])
            .unwrap_or(&suffix[1..])
            .chars()
            .all(|c| c.is_ascii_digit())
        && suffix[1..].chars().any(|c| c.is_ascii_digit()));
    if num_ok && suffix_ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a Kubernetes quantity (e.g. 100m, 512Mi, 10Gi)"
        ))
    }
}

/// The bytes a Kubernetes storage quantity stands for (`512Mi`, `10Gi`, `1.5G`, `2000`),
/// rounded up; `None` for what is not a quantity (or a milli-quantity of bytes).
pub fn quantity_bytes(s: &str) -> Option<u64> {
    check_quantity(s).ok()?;
    let num_len = s
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '+')
        .count();
    let (num, suffix) = s.split_at(num_len);
    let n: f64 = num.parse().ok()?;
    let factor: f64 = match suffix {
        "" => 1.0,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        e if e.starts_with(['e', 'E']) => 10f64.powi(e[1..].parse().ok()?),
        _ => return None,
    };
    let bytes = (n * factor).ceil();
    (bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// Parses a byte rate per second: `<number><unit>` with units `B`, `KB`/`KiB`, `MB`/`MiB`,
/// `GB`/`GiB`, optionally followed by `/s`. Returns bytes per second.
pub fn parse_byte_rate(s: &str) -> Result<u64, String> {
    let expected = "expected a rate such as 512KiB, 10MiB or 1GB (per second)";
    let t = s.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    let num_len = t.chars().take_while(|c| c.is_ascii_digit()).count();
    let (num, unit) = t.split_at(num_len);
    let n: u64 = num.parse().map_err(|_| format!("{s:?}: {expected}"))?;
    let factor: u64 = match unit {
        "B" => 1,
        "KB" => 1000,
        "KiB" => 1024,
        "MB" => 1000 * 1000,
        "MiB" => 1024 * 1024,
        "GB" => 1000 * 1000 * 1000,
        "GiB" => 1024 * 1024 * 1024,
        _ => return Err(format!("{s:?}: {expected}")),
    };
    let v = n
        .checked_mul(factor)
        .ok_or_else(|| format!("{s:?}: rate too large"))?;
    if v == 0 {
        return Err(format!(
            "{s:?}: a rate limit of zero would stop all transfers"
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_quantities_in_bytes() {
        assert_eq!(quantity_bytes("1Gi"), Some(1 << 30));
        assert_eq!(quantity_bytes("512Mi"), Some(512 << 20));
        assert_eq!(quantity_bytes("1.5G"), Some(1_500_000_000));
        assert_eq!(quantity_bytes("2000"), Some(2000));
        assert_eq!(quantity_bytes("1e3"), Some(1000));
        assert_eq!(quantity_bytes("100m"), None, "milli-bytes are not a size");
        assert_eq!(quantity_bytes("ten"), None);
    }

    #[test]
    fn durations_parse_and_print_canonically() {
        for (input, secs, canon) in [
            ("30s", 30, "30s"),
            ("5m", 300, "5m"),
            ("1h30m", 5400, "1h30m"),
            ("90m", 5400, "1h30m"),
            ("2d", 172_800, "2d"),
            ("1w", 604_800, "7d"),
            ("0s", 0, "0s"),
            ("1d1s", 86_401, "1d1s"),
        ] {
            let d = parse_duration(input).unwrap();
            assert_eq!(d.as_secs(), secs, "{input}");
            assert_eq!(d.to_string(), canon, "{input}");
        }
    }

    #[test]
    fn durations_reject_bad_input_with_reason() {
        assert!(parse_duration("30").unwrap_err().contains("missing unit"));
        assert!(
            parse_duration("5x")
                .unwrap_err()
                .contains("unknown unit 'x'")
        );
        assert!(parse_duration("").unwrap_err().contains("empty"));
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration("99999999999999999999s").is_err());
    }

    #[test]
    fn quantities() {
        for ok in ["100m", "1", "1.5Gi", "512Mi", "2e3", "10G", "+1k", "0.5"] {
            assert_eq!(check_quantity(ok), Ok(()), "{ok}");
        }
        for bad in ["", "Gi", "1GB", "1.2.3", "ten", "1e", "."] {
            assert!(check_quantity(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn byte_rates() {
        assert_eq!(parse_byte_rate("10MiB"), Ok(10 * 1024 * 1024));
        assert_eq!(parse_byte_rate("512KiB/s"), Ok(512 * 1024));
        assert_eq!(parse_byte_rate("1GB"), Ok(1_000_000_000));
        assert!(parse_byte_rate("10").is_err());
        assert!(parse_byte_rate("0MiB").unwrap_err().contains("zero"));
        assert!(parse_byte_rate("10mb").is_err());
    }
}
