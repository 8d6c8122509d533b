//! Slurm's textual units: time limits, memory sizes and the ways Slurm prints durations.

use thiserror::Error;

/// A unit string that does not parse.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum UnitError {
    /// Not a Slurm time string.
    #[error("invalid time specification `{0}`")]
    Time(String),
    /// Not a memory size.
    #[error("invalid memory specification `{0}`")]
    Memory(String),
}

/// A job or partition time limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TimeLimit {
    /// No limit.
    Unlimited,
    /// A limit in seconds (Slurm keeps whole minutes, so this is a multiple of 60).
    Seconds(u64),
}

impl TimeLimit {
    /// The limit in seconds, if any.
    pub fn seconds(self) -> Option<u64> {
        match self {
            TimeLimit::Unlimited => None,
            TimeLimit::Seconds(s) => Some(s),
        }
    }
}

/// Parses a Slurm time string: `min`, `min:sec`, `h:m:s`, `d-h`, `d-h:m`, `d-h:m:s`,
/// `UNLIMITED`/`INFINITE`/`-1`. `0` means no limit. Seconds round up to whole minutes as
/// slurmctld stores minutes.
pub fn parse_time_limit(text: &str) -> Result<TimeLimit, UnitError> {
    let err = || UnitError::Time(text.to_string());
    let t = text.trim();
    if t.eq_ignore_ascii_case("unlimited") || t.eq_ignore_ascii_case("infinite") || t == "-1" {
        return Ok(TimeLimit::Unlimited);
    }
    if t.is_empty() {
        return Err(err());
    }
    let num = |s: &str| -> Result<u64, UnitError> {
        if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        s.parse().map_err(|_| err())
    };
    let (days, rest) = match t.split_once('-') {
        Some((d, rest)) => (Some(num(d)?), rest),
        None => (None, t),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let secs = match (days, parts.as_slice()) {
        (None, [m]) => num(m)? * 60,
        (None, [m, s]) => num(m)? * 60 + num(s)?,
        (None, [h, m, s]) => num(h)? * 3600 + num(m)? * 60 + num(s)?,
        (Some(d), [h]) => d * 86400 + num(h)? * 3600,
        (Some(d), [h, m]) => d * 86400 + num(h)? * 3600 + num(m)? * 60,
        (Some(d), [h, m, s]) => d * 86400 + num(h)? * 3600 + num(m)? * 60 + num(s)?,
        _ => return Err(err()),
    };
    if secs == 0 {
        return Ok(TimeLimit::Unlimited);
    }
    Ok(TimeLimit::Seconds(secs.div_ceil(60) * 60))
}

/// Parses a memory size in MB; the default unit is MB, suffixes K, M, G and T.
pub fn parse_memory_mb(text: &str) -> Result<u64, UnitError> {
    let err = || UnitError::Memory(text.to_string());
    let t = text.trim();
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, ""),
    };
    if digits.is_empty() || digits.len() > 15 {
        return Err(err());
    }
    let n: u64 = digits.parse().map_err(|_| err())?;
    let mb = match unit.to_ascii_uppercase().as_str() {
        "" | "M" | "MB" => Some(n),
        "K" | "KB" => Some(n.div_ceil(1024)),
        "G" | "GB" => n.checked_mul(1024),
        "T" | "TB" => n.checked_mul(1024 * 1024),
        _ => None,
    };
    // A size beyond u64 megabytes is no size at all.
    mb.ok_or_else(err)
}

/// Formats seconds the way squeue prints `%M`/`%l`: `M:SS`, `H:MM:SS` or `D-HH:MM:SS`.
pub fn format_squeue_duration(secs: u64) -> String {
    let (d, h, m, s) = split_secs(secs);
    if d > 0 {
        format!("{d}-{h:02}:{m:02}:{s:02}")
    } else if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// Formats seconds the way scontrol and sacct print them: `HH:MM:SS` or `D-HH:MM:SS`.
pub fn format_long_duration(secs: u64) -> String {
    let (d, h, m, s) = split_secs(secs);
    if d > 0 {
        format!("{d}-{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

fn split_secs(secs: u64) -> (u64, u64, u64, u64) {
    (
        secs / 86400,
        (secs % 86400) / 3600,
        (secs % 3600) / 60,
        secs % 60,
    )
}

/// squeue's rendering of a limit (`%l`).
pub fn format_limit_squeue(limit: TimeLimit) -> String {
    match limit {
        TimeLimit::Unlimited => "UNLIMITED".into(),
        TimeLimit::Seconds(s) => format_squeue_duration(s),
    }
}

/// sinfo's rendering of a partition limit.
pub fn format_limit_sinfo(limit: TimeLimit) -> String {
    match limit {
        TimeLimit::Unlimited => "infinite".into(),
        TimeLimit::Seconds(s) => format_squeue_duration(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_forms() {
        assert_eq!(parse_time_limit("10"), Ok(TimeLimit::Seconds(600)));
        assert_eq!(parse_time_limit("0:30"), Ok(TimeLimit::Seconds(60)));
        assert_eq!(parse_time_limit("1:00:00"), Ok(TimeLimit::Seconds(3600)));
        assert_eq!(parse_time_limit("1-2"), Ok(TimeLimit::Seconds(93600)));
        assert_eq!(parse_time_limit("0"), Ok(TimeLimit::Unlimited));
        assert!(parse_time_limit("abc").is_err());
    }

    #[test]
    fn memory_forms() {
        assert_eq!(parse_memory_mb("100"), Ok(100));
        assert_eq!(parse_memory_mb("2G"), Ok(2048));
        assert!(parse_memory_mb("abc").is_err());
    }

    #[test]
    fn memory_beyond_u64_is_an_error_not_an_overflow() {
        assert_eq!(
            parse_memory_mb("999999999999999T"),
            Err(UnitError::Memory("999999999999999T".into()))
        );
        assert_eq!(
            parse_memory_mb("99999999999T"),
            Ok(99_999_999_999 * 1024 * 1024)
        );
    }

    #[test]
    fn time_with_too_many_digits_is_an_error() {
        assert_eq!(
            parse_time_limit("99999999999"),
            Err(UnitError::Time("99999999999".into()))
        );
        assert_eq!(
            parse_time_limit("999999999-999999999:999999999:999999999"),
            Ok(TimeLimit::Seconds(
                (999_999_999u64 * 86400 + 999_999_999 * 3600 + 999_999_999 * 60 + 999_999_999)
                    .div_ceil(60)
                    * 60
            ))
        );
    }
}
