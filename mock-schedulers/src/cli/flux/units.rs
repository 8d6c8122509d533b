//! Flux Standard Duration (RFC 23) as Flux's tools read and print it
//! (`src/bindings/python/flux/util.py` `parse_fsd`, `fsd`; `src/common/libutil/fsd.c`
//! `fsd_format_duration_ex`), and C's `%g`.

/// Parses an FSD (`30s`, `2.5m`, `2h`, `1d`, `100ms`, a bare number of seconds, `inf`).
pub fn parse_fsd(text: &str) -> Result<f64, String> {
    let invalid = || "invalid Flux standard duration".to_string();
    if matches!(text, "inf" | "infinity" | "INF" | "INFINITY") {
        return Ok(f64::INFINITY);
    }
    let (number, unit) = if let Some(n) = text.strip_suffix("ms") {
        (n, "ms")
    } else if let Some(n) = text.strip_suffix(['s', 'm', 'h', 'd']) {
        (n, &text[n.len()..])
    } else {
        (text, "s")
    };
    let value = python_float(number).ok_or_else(invalid)?;
    let seconds = match unit {
        "m" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86400.0,
        "ms" => value / 1000.0,
        _ => value,
    };
    if seconds < 0.0 || seconds.is_nan() || seconds.is_infinite() {
        return Err(invalid());
    }
    Ok(seconds)
}

/// Python's `float()` of a string: surrounding white space, `_` between digits, `inf`, `nan`.
pub fn python_float(text: &str) -> Option<f64> {
    let t = text.trim();
    if t.is_empty() || t.starts_with('_') || t.ends_with('_') || t.contains("__") {
        return None;
    }
    let cleaned = t.replace('_', "");
    let lower = cleaned.to_ascii_lowercase();
    let body = lower.trim_start_matches(['+', '-']);
    if matches!(body, "inf" | "infinity" | "nan") {
        return cleaned.parse::<f64>().ok().or_else(|| {
            let neg = lower.starts_with('-');
            Some(match body {
                "nan" => f64::NAN,
                _ if neg => f64::NEG_INFINITY,
                _ => f64::INFINITY,
            })
        });
    }
    if !body
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'+' | b'-'))
    {
        return None;
    }
    cleaned.parse::<f64>().ok()
}

/// The job time limit of `-t/--time-limit`: minutes when the value is a number, else an
/// FSD (`base.py`, `Jobspec.duration`). `Ok(None)`: zero, no limit.
pub fn parse_time_limit(text: &str) -> Result<Option<f64>, String> {
    let seconds = match python_float(text) {
        Some(minutes) => minutes * 60.0,
        None => parse_fsd(text)?,
    };
    if seconds < 0.0 {
        return Err("duration must not be negative".into());
    }
    if seconds.is_nan() || seconds.is_infinite() {
        return Err("duration must be a normal, finite value".into());
    }
    Ok((seconds > 0.0).then_some(seconds))
}

/// C's `%.<precision>g`.
pub fn fmt_g(value: f64, precision: usize) -> String {
    if value.is_nan() {
        return "nan".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.into();
    }
    let p = precision.max(1);
    if value == 0.0 {
        return "0".into();
    }
    let sci = format!("{:.*e}", p - 1, value);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if exp < -4 || exp >= p as i32 {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exp.abs())
    } else {
        let decimals = (p as i32 - 1 - exp).max(0) as usize;
        trim(&format!("{value:.decimals$}"))
    }
}

/// `fsd_format_duration_ex(..., precision)` (C tools and job-manager messages).
pub fn fsd_c(duration: f64, precision: usize) -> String {
    if duration.is_infinite() {
        return "infinity".into();
    }
    if duration < 0.1 && duration != 0.0 {
        format!("{}ms", fmt_g(duration * 1000.0, precision))
    } else if duration < 60.0 {
        format!("{}s", fmt_g(duration, precision))
    } else if duration < 3600.0 {
        format!("{}m", fmt_g(duration / 60.0, precision))
    } else if duration < 86400.0 {
        format!("{}h", fmt_g(duration / 3600.0, precision))
    } else {
        format!("{}d", fmt_g(duration / 86400.0, precision))
    }
}

/// Python `flux.util.fsd` (`flux jobs` `!F`).
pub fn fsd_py(secs: f64) -> String {
    if secs.is_infinite() {
        return "inf".into();
    }
    if secs < 1.0e-3 {
        "0s".into()
    } else if secs < 10.0 {
        format!("{secs:.3}s")
    } else if secs < 60.0 {
        format!("{}s", fmt_g(secs, 4))
    } else if secs < 3600.0 {
        format!("{}m", fmt_g(secs / 60.0, 4))
    } else if secs < 86400.0 {
        format!("{}h", fmt_g(secs / 3600.0, 4))
    } else {
        format!("{}d", fmt_g(secs / 86400.0, 4))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_fsd("30s"), Ok(30.0));
        assert_eq!(parse_fsd("2h"), Ok(7200.0));
        assert_eq!(parse_fsd("1.5m"), Ok(90.0));
        assert_eq!(parse_fsd("250ms"), Ok(0.25));
        assert_eq!(parse_fsd("12"), Ok(12.0));
        assert!(parse_fsd("2x").is_err());
        assert_eq!(parse_time_limit("5"), Ok(Some(300.0)));
        assert_eq!(parse_time_limit("30s"), Ok(Some(30.0)));
        assert_eq!(parse_time_limit("0"), Ok(None));
        assert_eq!(
            parse_time_limit("-1"),
            Err("duration must not be negative".into())
        );
        assert_eq!(
            parse_time_limit("inf"),
            Err("duration must be a normal, finite value".into())
        );
    }

    #[test]
    fn g_formatting_is_c_s() {
        assert_eq!(fmt_g(2.0, 2), "2");
        assert_eq!(fmt_g(1.5, 2), "1.5");
        assert_eq!(fmt_g(1.6667, 2), "1.7");
        assert_eq!(fmt_g(123456.0, 4), "1.235e+05");
        assert_eq!(fmt_g(0.0001234, 2), "0.00012");
        assert_eq!(fsd_c(7200.0, 2), "2h");
        assert_eq!(fsd_c(90.0 * 60.0, 2), "1.5h");
        assert_eq!(fsd_py(5.0), "5.000s");
        assert_eq!(fsd_py(125.0), "2.083m");
    }
}
