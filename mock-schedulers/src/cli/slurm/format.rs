//! Field formatting shared by squeue, sacct and scontrol: `%.18i`-style format strings and
//! Slurm's date rendering.

use crate::model::Job;
use crate::units;

/// One piece of a `%`-format: literal text or a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Literal text.
    Text(String),
    /// A field: code, width, right-justified.
    Field {
        /// Field letter.
        code: char,
        /// Width (0 = as is).
        width: usize,
        /// Right-justify.
        right: bool,
    },
}

/// Parses `%[.][width]code` format strings.
pub fn parse_format(fmt: &str) -> Vec<Piece> {
    let chars: Vec<char> = fmt.chars().collect();
    let mut out = Vec::new();
    let mut text = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '%' {
            text.push(chars[i]);
            i += 1;
            continue;
        }
        let mut j = i + 1;
        let right = chars.get(j) == Some(&'.');
        if right {
            j += 1;
        }
        let mut w = String::new();
        while j < chars.len() && chars[j].is_ascii_digit() {
            w.push(chars[j]);
            j += 1;
        }
        match chars.get(j) {
            Some(&code) => {
                if !text.is_empty() {
                    out.push(Piece::Text(std::mem::take(&mut text)));
                }
                out.push(Piece::Field {
                    code,
                    width: field_width(&w).unwrap_or(0),
                    right,
                });
                i = j + 1;
            }
            None => {
                text.extend(&chars[i..]);
                break;
            }
        }
    }
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
    out
}

/// The widest field a format may ask for, so that `%.9999999999i` cannot ask for lines of
/// gigabytes.
pub const MAX_FIELD_WIDTH: usize = 65_535;

/// A field width as written in a format (`18` in `%.18i`, `JobName%30`, `jobid:10`); `None`
/// when it is no number.
pub fn field_width(text: &str) -> Option<usize> {
    text.parse::<usize>().ok().map(|w| w.min(MAX_FIELD_WIDTH))
}

/// One output line: literal pieces as they are, each field's value from `value` fitted to its
/// width.
pub fn render(pieces: &[Piece], value: &dyn Fn(char) -> String) -> String {
    let mut line = String::new();
    for p in pieces {
        match p {
            Piece::Text(t) => line.push_str(t),
            Piece::Field { code, width, right } => {
                line.push_str(&fit(&value(*code), *width, *right))
            }
        }
    }
    line
}

/// Pads or truncates like Slurm's `_print_str`.
pub fn fit(value: &str, width: usize, right: bool) -> String {
    if width == 0 {
        return value.to_string();
    }
    let v: String = value.chars().take(width).collect();
    if right {
        format!("{v:>width$}")
    } else {
        format!("{v:<width$}")
    }
}

/// `YYYY-MM-DDTHH:MM:SS`, or `N/A`/`Unknown` when unset.
pub fn date(t: Option<f64>, unset: &str) -> String {
    match t {
        Some(t) => crate::daemon::format_sim_time(t),
        None => unset.into(),
    }
}

/// Elapsed run time of a job at simulated `now`.
pub fn elapsed(job: &Job, now: f64) -> u64 {
    match job.run.start_time {
        Some(s) => (job.run.end_time.unwrap_or(now) - s).max(0.0) as u64,
        None => 0,
    }
}

/// squeue's rendering of a job's limit.
pub fn limit(job: &Job) -> String {
    units::format_limit_squeue(job.shown_limit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_widths_are_capped_and_garbage_is_no_width() {
        assert_eq!(
            parse_format("%.9999999999i"),
            [Piece::Field {
                code: 'i',
                width: MAX_FIELD_WIDTH,
                right: true
            }]
        );
        assert_eq!(field_width("18"), Some(18));
        assert_eq!(field_width("99999999999999999999999"), None);
        assert_eq!(field_width("x"), None);
    }
}
