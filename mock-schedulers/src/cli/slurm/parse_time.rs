//! Slurm's `parse_time()` (22.05 `src/common/parse_time.c`), which reads `--deadline`: `now[+-N
//! [seconds|minutes|hours|days|weeks]]`, `HH:MM[:SS][AM|PM]`, `midnight`, `noon`, `fika`,
//! `teatime`, `today`, `tomorrow`, `YYYY-MM-DD[THH:MM[:SS]]`, `MM/DD[/YY]`, `MMDD[YY]`,
//! `MM.DD[.YY]` and `uts<seconds>`, in any order the loop of `parse_time()` takes them. A time
//! without a date is today if still to come, else tomorrow; a date without a year is this year
//! if still to come, else next year. A refusal carries the position `parse_time()` reports
//! (`Invalid time specification (pos=N): ...`, observed on Slurm 22.05).

use chrono::{Datelike, Duration, Local, NaiveDate, TimeZone, Timelike};

/// What `parse_time()` made of a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// Nothing was specified (the empty text): `parse_time()` returns 0 without a message.
    Nothing,
    /// A moment, in seconds since the epoch.
    At(i64),
}

/// The byte at `i`, `0` past the end (C's terminating NUL).
fn at(s: &[u8], i: usize) -> u8 {
    s.get(i).copied().unwrap_or(0)
}

fn digit(c: u8) -> bool {
    c.is_ascii_digit()
}

fn starts_with_ci(s: &[u8], i: usize, word: &str) -> bool {
    s.get(i..i + word.len())
        .is_some_and(|w| w.eq_ignore_ascii_case(word.as_bytes()))
}

/// `_get_delta()`: the count and unit after `now+`/`now-`; `pos` is the sign's index.
fn get_delta(s: &[u8], pos: usize) -> Result<(usize, i64), Option<usize>> {
    const UNITS: &[(&str, i64)] = &[
        ("seconds", 1),
        ("second", 1),
        ("sec", 1),
        ("minutes", 60),
        ("minute", 60),
        ("min", 60),
        ("hours", 3600),
        ("hour", 3600),
        ("days", 86_400),
        ("day", 86_400),
        ("weeks", 604_800),
        ("week", 604_800),
    ];
    let mut count: i64 = 0;
    let mut digits = 0;
    let mut offset = pos + 1;
    while at(s, offset) != 0 && at(s, offset) != b'\n' {
        let c = at(s, offset);
        if c.is_ascii_whitespace() {
            offset += 1;
            continue;
        }
        if let Some((name, mult)) = UNITS.iter().find(|(n, _)| starts_with_ci(s, offset, n)) {
            offset += name.len();
            count = count.saturating_mul(*mult);
            break;
        }
        if digit(c) {
            count = count.saturating_mul(10).saturating_add(i64::from(c - b'0'));
            digits += 1;
            offset += 1;
            continue;
        }
        return Err(Some(offset - 1));
    }
    if digits == 0 {
        // No number: the caller reports its own position.
        return Err(None);
    }
    Ok((offset - 1, count))
}

/// `_get_time()`: `HH:MM[:SS][ ][AM|PM]` at `pos`; the position of its last byte.
fn get_time(s: &[u8], pos: usize) -> Result<(usize, u32, u32, u32), usize> {
    let mut o = pos;
    let two = |o: &mut usize, first_only: bool| -> Option<u32> {
        if !digit(at(s, *o)) {
            return None;
        }
        let mut n = u32::from(at(s, *o) - b'0');
        *o += 1;
        if first_only && at(s, *o) == b':' {
            return Some(n);
        }
        if !digit(at(s, *o)) {
            return None;
        }
        n = n * 10 + u32::from(at(s, *o) - b'0');
        *o += 1;
        Some(n)
    };
    let mut hour = two(&mut o, true).ok_or(o)?;
    if hour > 23 {
        return Err(o - 2);
    }
    if at(s, o) != b':' {
        return Err(o);
    }
    o += 1;
    let minute = two(&mut o, false).ok_or(o)?;
    if minute > 59 {
        return Err(o - 2);
    }
    let second = if at(s, o) == b':' {
        o += 1;
        let sec = two(&mut o, false).ok_or(o)?;
        if sec > 59 {
            return Err(o - 2);
        }
        sec
    } else {
        0
    };
    while at(s, o).is_ascii_whitespace() && at(s, o) != 0 {
        o += 1;
    }
    if starts_with_ci(s, o, "pm") {
        hour += 12;
        if hour > 23 {
            if hour == 24 {
                hour = 12;
            } else {
                return Err(o);
            }
        }
        o += 2;
    } else if starts_with_ci(s, o, "am") {
        if hour > 11 {
            if hour == 12 {
                hour = 0;
            } else {
                return Err(o);
            }
        }
        o += 2;
    }
    Ok((o - 1, hour, minute, second))
}

/// `_get_date()`: `YYYY-MM-DD`, or `MM[/.]DD[[/.]YY]`; month (1-12), day and year (when given).
/// One or two digits at `*o` (the first one checked by the caller) within `range`; out of it,
/// the position `_get_date()` reports: the number's start.
fn one_or_two_digits(
    s: &[u8],
    o: &mut usize,
    range: std::ops::RangeInclusive<u32>,
) -> Result<u32, usize> {
    let start = *o;
    let mut n = u32::from(at(s, *o).wrapping_sub(b'0'));
    *o += 1;
    if digit(at(s, *o)) {
        n = n * 10 + u32::from(at(s, *o) - b'0');
        *o += 1;
    }
    if range.contains(&n) {
        Ok(n)
    } else {
        Err(start.min(o.saturating_sub(2)))
    }
}

fn get_date(s: &[u8], pos: usize) -> Result<(usize, u32, u32, Option<i32>), usize> {
    let mut o = pos;
    let read = |o: &mut usize| -> u32 {
        let n = u32::from(at(s, *o).wrapping_sub(b'0'));
        *o += 1;
        n
    };
    if s.len() >= pos + 7 && at(s, pos + 4) == b'-' && at(s, pos + 7) == b'-' {
        let mut year = 0;
        for _ in 0..4 {
            if !digit(at(s, o)) {
                return Err(o);
            }
            year = year * 10 + read(&mut o);
        }
        o += 1;
        let month = one_or_two_digits(s, &mut o, 1..=12)?;
        o += 1;
        if !digit(at(s, o)) {
            return Err(o);
        }
        let day = one_or_two_digits(s, &mut o, 1..=31)?;
        return Ok((o - 1, month, day, i32::try_from(year).ok()));
    }
    let month = one_or_two_digits(s, &mut o, 1..=12)?;
    if matches!(at(s, o), b'.' | b'/') {
        o += 1;
    }
    if !digit(at(s, o)) {
        return Err(o);
    }
    let day = one_or_two_digits(s, &mut o, 1..=31)?;
    if matches!(at(s, o), b'.' | b'/') {
        o += 1;
    }
    let year = if digit(at(s, o)) {
        let mut y = read(&mut o);
        if !digit(at(s, o)) {
            return Err(o);
        }
        y = y * 10 + read(&mut o);
        // `yr + 100` years after 1900: `27` is 2027.
        i32::try_from(2000 + y).ok()
    } else {
        None
    };
    Ok((o - 1, month, day, year))
}

/// `parse_time(text, 0)` at `now` (seconds since the epoch, local time zone): the moment, or
/// the position `parse_time()` reports for a text it cannot read.
pub fn parse_time(text: &str, now: i64) -> Result<Parsed, usize> {
    let s = text.as_bytes();
    if starts_with_ci(s, 0, "uts") {
        return match text[3..].parse::<i64>() {
            Ok(uts) if uts >= 1_000_000 => Ok(Parsed::At(uts)),
            _ => Err(0),
        };
    }
    let Some(now_tm) = Local.timestamp_opt(now, 0).earliest() else {
        return Err(0);
    };
    let (mut hour, mut minute, mut second): (Option<u32>, u32, u32) = (None, 0, 0);
    let mut date: Option<(u32, u32)> = None;
    let mut year: Option<i32> = None;
    let set_day = |d: chrono::DateTime<Local>| (d.month(), d.day(), d.year());
    let mut pos = 0;
    while at(s, pos) != 0 && at(s, pos) != b'\n' {
        let c = at(s, pos);
        if c == b' ' || c == b'\t' || c == b'-' || c == b'T' {
            pos += 1;
            continue;
        }
        if starts_with_ci(s, pos, "today") {
            let (m, d, y) = set_day(now_tm);
            (date, year) = (Some((m, d)), Some(y));
            pos += 5;
            continue;
        }
        if starts_with_ci(s, pos, "tomorrow") {
            let (m, d, y) = set_day(now_tm + Duration::days(1));
            (date, year) = (Some((m, d)), Some(y));
            pos += 8;
            continue;
        }
        let named = [("midnight", 0), ("noon", 12), ("fika", 15), ("teatime", 16)];
        if let Some((word, h)) = named.iter().find(|(w, _)| starts_with_ci(s, pos, w)) {
            (hour, minute, second) = (Some(*h), 0, 0);
            pos += word.len();
            continue;
        }
        if starts_with_ci(s, pos, "now") {
            let mut i = pos + 3;
            let delta = loop {
                match at(s, i) {
                    b'+' | b'-' => {
                        let sign = if at(s, i) == b'-' { -1 } else { 1 };
                        match get_delta(s, i) {
                            Ok((end, d)) => {
                                pos = end;
                                break sign * d;
                            }
                            Err(p) => return Err(p.unwrap_or(i)),
                        }
                    }
                    b' ' | b'\t' => i += 1,
                    0 | b'\n' => {
                        pos = i - 1;
                        break 0;
                    }
                    _ => return Err(i),
                }
            };
            let Some(later) = Local.timestamp_opt(now.saturating_add(delta), 0).earliest() else {
                return Err(pos);
            };
            let (m, d, y) = set_day(later);
            (date, year) = (Some((m, d)), Some(y));
            (hour, minute, second) = (Some(later.hour()), later.minute(), later.second());
            pos += 1;
            continue;
        }
        if !digit(c) {
            return Err(pos);
        }
        if at(s, pos + 1) == b':' || at(s, pos + 2) == b':' {
            let (end, h, m, sec) = get_time(s, pos)?;
            (hour, minute, second) = (Some(h), m, sec);
            pos = end + 1;
            continue;
        }
        let (end, m, d, y) = get_date(s, pos)?;
        date = Some((m, d));
        if y.is_some() {
            year = y;
        }
        pos = end + 1;
    }
    let now_key = (now_tm.month(), now_tm.day(), now_tm.hour(), now_tm.minute());
    let (month, day) = match (hour, date) {
        (None, None) => return Ok(Parsed::Nothing),
        (None, Some(d)) => {
            hour = Some(0);
            (minute, second) = (0, 0);
            d
        }
        (Some(h), None) => {
            // Today if the time is still to come, else tomorrow.
            let day = if (h, minute) > (now_tm.hour(), now_tm.minute()) {
                now_tm
            } else {
                now_tm + Duration::days(1)
            };
            let (m, d, y) = set_day(day);
            year = Some(y);
            (m, d)
        }
        (Some(_), Some(d)) => d,
    };
    let hour = hour.unwrap_or(0);
    let year = year.unwrap_or_else(|| {
        if (month, day, hour, minute) > now_key {
            now_tm.year()
        } else {
            now_tm.year() + 1
        }
    });
    // mktime() rolls an impossible day over into the next month (`02/31`).
    let first = NaiveDate::from_ymd_opt(year, month, 1).ok_or(pos)?;
    let when = first
        .and_hms_opt(hour, minute, second)
        .ok_or(pos)?
        .checked_add_signed(Duration::days(i64::from(day) - 1))
        .ok_or(pos)?;
    match Local.from_local_datetime(&when).earliest() {
        Some(t) => Ok(Parsed::At(t.timestamp())),
        None => Err(pos),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-29T21:58:58 here.
    fn now() -> i64 {
        Local
            .with_ymd_and_hms(2026, 11, 29, 21, 58, 58)
            .earliest()
            .map(|t| t.timestamp())
            .unwrap_or(0)
    }

    fn shown(text: &str) -> String {
        match parse_time(text, now()) {
            Ok(Parsed::At(t)) => Local
                .timestamp_opt(t, 0)
                .earliest()
                .map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string())
                .unwrap_or_default(),
            Ok(Parsed::Nothing) => "nothing".into(),
            Err(pos) => format!("pos={pos}"),
        }
    }

    /// What `scontrol show job` showed as `Deadline=` on Slurm 22.05, submitted at
    /// 2026-11-29T21:58:58 (docs/slurm-observed.md 54).
    #[test]
    fn forms_observed_on_slurm() {
        for (text, want) in [
            ("now+1hour", "2026-11-29T22:58:58"),
            ("now+60", "2026-11-29T21:59:58"),
            ("now+1day", "2026-11-30T21:58:58"),
            ("now+1minutes", "2026-11-29T21:59:58"),
            ("now+2weeks", "2026-12-13T21:58:58"),
            ("now", "2026-11-29T21:58:58"),
            ("now-1hour", "2026-11-29T20:58:58"),
            ("23:59", "2026-11-29T23:59:00"),
            ("23:59:30", "2026-11-29T23:59:30"),
            ("10:00am", "2026-11-30T10:00:00"),
            ("2027-01-01", "2027-01-01T00:00:00"),
            ("2027-01-01T10:00", "2027-01-01T10:00:00"),
            ("2027-01-01T10:00:00", "2027-01-01T10:00:00"),
            ("12/31", "2026-12-31T00:00:00"),
            ("12/31/27", "2027-12-31T00:00:00"),
            ("tomorrow", "2026-11-30T00:00:00"),
            ("midnight", "2026-11-30T00:00:00"),
            ("noon", "2026-11-30T12:00:00"),
            ("fika", "2026-11-30T15:00:00"),
            ("teatime", "2026-11-30T16:00:00"),
            ("", "nothing"),
            ("now+1foo", "pos=4"),
            ("25:00", "pos=0"),
            ("2027-13-01", "pos=5"),
            ("now+", "pos=3"),
            ("5pm", "pos=1"),
            ("2027-01-01T25:00", "pos=11"),
            ("garbage", "pos=0"),
        ] {
            assert_eq!(shown(text), want, "{text}");
        }
    }

    #[test]
    fn odd_input_is_refused_without_panicking() {
        for text in [
            "now+99999999999999999999weeks",
            "9",
            "1/",
            "12/3x",
            "0000-00-00",
            "2027-02-31",
            "uts",
            "uts12",
            "now-",
            "ä",
            "1:",
            "12:5",
        ] {
            let _ = parse_time(text, now());
        }
        assert_eq!(shown("2027-02-31"), "2027-03-03T00:00:00");
    }

    proptest::proptest! {
        /// Whatever a user writes after `--deadline`: an answer, never a panic, and a refusal
        /// position inside the text.
        #[test]
        fn any_text_gets_an_answer(text in "(?s).{0,40}", tail in "[0-9:/.+ -]{0,20}") {
            for candidate in [text.clone(), format!("now+{tail}"), format!("{tail}{text}")] {
                if let Err(pos) = parse_time(&candidate, now()) {
                    proptest::prop_assert!(pos <= candidate.len());
                }
            }
        }
    }
}
