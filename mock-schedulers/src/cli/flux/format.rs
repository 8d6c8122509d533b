//! `flux jobs -o FORMAT`: Python's `str.format` mini-language with Flux's extensions
//! (`src/bindings/python/flux/util.py` `OutputFormat`, `UtilFormatter`, `UtilDatetime`):
//! conversions `!d` (datetime, `{t_run!d:%H:%M::>8}`), `!D` (ISO 8601), `!F` (FSD), `!H`
//! (`H:MM:SS`), `!P` (percent); the spec suffixes `h` (an empty value shows as `-`) and `+`
//! (a truncated value ends in `+`); the field prefixes `?:` (drop the column when it is empty
//! for every row), `+:` (widen the column to its widest value) and `?+:`.

use chrono::TimeZone;

/// A value a field has.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean (Python prints `True`/`False`).
    Bool(bool),
    /// A job id: a Python `int` subclass whose `str()` is its F58.
    Id {
        /// The 64-bit id.
        id: u64,
        /// Its F58.
        f58: String,
    },
    /// A datetime made by `!d` from seconds since the epoch (0: unset).
    Datetime(f64),
    /// Flux's `EmptyObject`: a field the job does not have.
    Nothing,
}

impl Value {
    /// Python's `str()`.
    pub fn text(&self) -> String {
        match self {
            Value::Str(s) => s.clone(),
            Value::Int(n) => n.to_string(),
            Value::Float(f) => py_repr(*f),
            Value::Bool(b) => if *b { "True" } else { "False" }.into(),
            Value::Id { f58, .. } => f58.clone(),
            Value::Datetime(t) => local_time(*t, "%F %T").unwrap_or_default(),
            Value::Nothing => String::new(),
        }
    }
}

/// Python's `repr()` of a float.
pub fn py_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    let a = f.abs();
    if !(1e-4..1e16).contains(&a) {
        let s = format!("{f:e}");
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let e: i32 = e.parse().unwrap_or(0);
        let sign = if e < 0 { '-' } else { '+' };
        return format!("{m}e{sign}{:02}", e.abs());
    }
    let s = format!("{f}");
    if s.contains('.') { s } else { format!("{s}.0") }
}

fn local_time(t: f64, fmt: &str) -> Option<String> {
    use chrono::format::{Item, StrftimeItems};
    let items: Vec<Item<'_>> = StrftimeItems::new(fmt).collect();
    if items.iter().any(|i| matches!(i, Item::Error)) {
        return None;
    }
    let secs = t.floor() as i64;
    let nanos = ((t - t.floor()) * 1e9) as u32;
    let dt = chrono::Local.timestamp_opt(secs, nanos).single()?;
    Some(dt.format_with_items(items.into_iter()).to_string())
}

/// One literal text and the field after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    /// Literal text before the field.
    pub text: String,
    /// The field, if any.
    pub field: Option<Field>,
}

/// A replacement field.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Field name (without a `0.` prefix).
    pub name: String,
    /// Conversion letter (`!F`).
    pub conv: Option<char>,
    /// Format spec.
    pub spec: String,
}

/// Python's `string.Formatter().parse`.
pub fn parse(fmt: &str) -> Result<Vec<Piece>, String> {
    let chars: Vec<char> = fmt.chars().collect();
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '}' {
            if chars.get(i + 1) == Some(&'}') {
                text.push('}');
                i += 2;
                continue;
            }
            return Err("Single '}' encountered in format string".into());
        }
        if c != '{' {
            text.push(c);
            i += 1;
            continue;
        }
        if chars.get(i + 1) == Some(&'{') {
            text.push('{');
            i += 2;
            continue;
        }
        // A field: up to the matching '}' (nested braces in the spec count).
        let mut depth = 1;
        let mut j = i + 1;
        while j < chars.len() {
            match chars[j] {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            j += 1;
        }
        if j >= chars.len() {
            return Err(if i + 1 >= chars.len() {
                "Single '{' encountered in format string".into()
            } else {
                "expected '}' before end of string".into()
            });
        }
        let body: String = chars[i + 1..j].iter().collect();
        let (head, spec) = match body.find(':') {
            Some(k) => (&body[..k], body[k + 1..].to_string()),
            None => (body.as_str(), String::new()),
        };
        let (name, conv) = match head.split_once('!') {
            Some((n, c)) => {
                let mut cs = c.chars();
                match (cs.next(), cs.next()) {
                    (Some(c), None) => (n, Some(c)),
                    _ => {
                        return Err("expected ':' after conversion specifier".to_string());
                    }
                }
            }
            None => (head, None),
        };
        let name = name.strip_prefix("0.").unwrap_or(name).to_string();
        pieces.push(Piece {
            text: std::mem::take(&mut text),
            field: Some(Field { name, conv, spec }),
        });
        i = j + 1;
    }
    if !text.is_empty() {
        pieces.push(Piece { text, field: None });
    }
    Ok(pieces)
}

/// A parsed format spec (`OutputFormat.FormatSpec`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Spec {
    fill: Option<char>,
    align: Option<char>,
    sign: Option<char>,
    zero: bool,
    alt: bool,
    width: Option<usize>,
    grouping: Option<char>,
    precision: Option<usize>,
    ty: Option<char>,
}

fn parse_spec(spec: &str) -> Option<Spec> {
    let c: Vec<char> = spec.chars().collect();
    let mut s = Spec::default();
    let mut i = 0;
    let is_align = |ch: char| matches!(ch, '<' | '>' | '=' | '^');
    if c.len() >= 2 && is_align(c[1]) {
        s.fill = Some(c[0]);
        s.align = Some(c[1]);
        i = 2;
    } else if !c.is_empty() && is_align(c[0]) {
        s.align = Some(c[0]);
        i = 1;
    }
    if let Some(&ch) = c.get(i)
        && matches!(ch, '-' | '+' | ' ')
    {
        s.sign = Some(ch);
        i += 1;
    }
    if c.get(i) == Some(&'z') {
        i += 1;
    }
    if c.get(i) == Some(&'#') {
        s.alt = true;
        i += 1;
    }
    if c.get(i) == Some(&'0') {
        s.zero = true;
        i += 1;
    }
    let start = i;
    while c.get(i).is_some_and(char::is_ascii_digit) {
        i += 1;
    }
    if i > start {
        s.width = c[start..i].iter().collect::<String>().parse().ok();
    }
    if let Some(&ch) = c.get(i)
        && matches!(ch, '_' | ',')
    {
        s.grouping = Some(ch);
        i += 1;
    }
    if c.get(i) == Some(&'.') {
        i += 1;
        let start = i;
        while c.get(i).is_some_and(char::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
        s.precision = c[start..i].iter().collect::<String>().parse().ok();
    }
    if let Some(&ch) = c.get(i)
        && "bcdeEfFgGnosxX%".contains(ch)
    {
        s.ty = Some(ch);
        i += 1;
    }
    (i == c.len()).then_some(s)
}

/// Align and width of a spec, as the header row keeps them.
fn header_spec(spec: &str) -> String {
    let spec = match spec.find("::") {
        Some(k) => &spec[k + 2..],
        None => spec,
    };
    let spec = spec.strip_suffix('+').unwrap_or(spec);
    let spec = spec.strip_suffix('h').unwrap_or(spec);
    match parse_spec(spec) {
        Some(s) => format!(
            "{}{}",
            s.align.map(String::from).unwrap_or_default(),
            s.width.map(|w| w.to_string()).unwrap_or_default()
        ),
        None => String::new(),
    }
}

fn pad(body: &str, s: &Spec, default_align: char, sign_len: usize) -> String {
    let len = body.chars().count();
    let width = s.width.unwrap_or(0);
    if len >= width {
        return body.to_string();
    }
    let n = width - len;
    let (fill, align) = if s.zero && s.align.is_none() && default_align == '>' {
        ('0', '=')
    } else {
        (s.fill.unwrap_or(' '), s.align.unwrap_or(default_align))
    };
    let fills = |k: usize| fill.to_string().repeat(k);
    match align {
        '<' => format!("{body}{}", fills(n)),
        '^' => format!("{}{body}{}", fills(n / 2), fills(n - n / 2)),
        '=' => {
            let (sign, rest) = body.split_at(sign_len.min(body.len()));
            format!("{sign}{}{rest}", fills(n))
        }
        _ => format!("{}{body}", fills(n)),
    }
}

fn group(digits: &str, sep: char) -> String {
    let mut out = String::new();
    for (k, ch) in digits.chars().enumerate() {
        if k > 0 && (digits.len() - k).is_multiple_of(3) {
            out.push(sep);
        }
        out.push(ch);
    }
    out
}

fn sign_prefix(negative: bool, s: &Spec) -> &'static str {
    match (negative, s.sign) {
        (true, _) => "-",
        (false, Some('+')) => "+",
        (false, Some(' ')) => " ",
        _ => "",
    }
}

fn format_float(f: f64, s: &Spec) -> Result<String, String> {
    let negative = f.is_sign_negative() && f != 0.0;
    let a = f.abs();
    let body = match s.ty {
        None => match s.precision {
            None => py_repr(a),
            Some(p) => {
                let g = super::units::fmt_g(a, p.max(1));
                if g.contains(['.', 'e', 'n', 'i']) {
                    g
                } else {
                    format!("{g}.0")
                }
            }
        },
        Some('f' | 'F') => format!("{a:.*}", s.precision.unwrap_or(6)),
        Some('e' | 'E') => {
            let text = format!("{a:.*e}", s.precision.unwrap_or(6));
            let (m, e) = text.split_once('e').unwrap_or((&text, "0"));
            let e: i32 = e.parse().unwrap_or(0);
            let sign = if e < 0 { '-' } else { '+' };
            let out = format!("{m}e{sign}{:02}", e.abs());
            if s.ty == Some('E') {
                out.to_uppercase()
            } else {
                out
            }
        }
        Some('g' | 'G' | 'n') => {
            let out = super::units::fmt_g(a, s.precision.unwrap_or(6).max(1));
            if s.ty == Some('G') {
                out.to_uppercase()
            } else {
                out
            }
        }
        Some('%') => format!("{:.*}%", s.precision.unwrap_or(6), a * 100.0),
        Some(t) => {
            return Err(format!(
                "Unknown format code '{t}' for object of type 'float'"
            ));
        }
    };
    let sign = sign_prefix(negative, s);
    Ok(pad(&format!("{sign}{body}"), s, '>', sign.len()))
}

fn format_int(n: i64, s: &Spec) -> Result<String, String> {
    if matches!(s.ty, Some('e' | 'E' | 'f' | 'F' | 'g' | 'G' | '%')) {
        return format_float(n as f64, s);
    }
    if s.precision.is_some() {
        return Err("Precision not allowed in integer format specifier".into());
    }
    let a = n.unsigned_abs();
    let body = match s.ty {
        None | Some('d' | 'n') => {
            let d = a.to_string();
            match s.grouping {
                Some(g) => group(&d, g),
                None => d,
            }
        }
        Some('x') => format!("{}{a:x}", if s.alt { "0x" } else { "" }),
        Some('X') => format!("{}{a:X}", if s.alt { "0X" } else { "" }),
        Some('o') => format!("{}{a:o}", if s.alt { "0o" } else { "" }),
        Some('b') => format!("{}{a:b}", if s.alt { "0b" } else { "" }),
        Some('c') => char::from_u32(a as u32)
            .map(String::from)
            .unwrap_or_default(),
        Some(t) => {
            return Err(format!(
                "Unknown format code '{t}' for object of type 'int'"
            ));
        }
    };
    let sign = sign_prefix(n < 0, s);
    Ok(pad(&format!("{sign}{body}"), s, '>', sign.len()))
}

fn format_str(text: &str, s: &Spec) -> Result<String, String> {
    if let Some(t) = s.ty.filter(|t| *t != 's') {
        return Err(format!(
            "Unknown format code '{t}' for object of type 'str'"
        ));
    }
    if s.sign.is_some() {
        return Err("Sign not allowed in string format specifier".into());
    }
    if s.align == Some('=') {
        return Err("'=' alignment not allowed in string format specifier".into());
    }
    let body: String = match s.precision {
        Some(p) => text.chars().take(p).collect(),
        None => text.to_string(),
    };
    Ok(pad(&body, s, '<', 0))
}

/// Python's `format(value, spec)`.
fn py_format(value: &Value, spec: &str) -> Result<String, String> {
    if let Value::Datetime(t) = value {
        let (timefmt, rest) = match spec.split_once("::") {
            Some((t, r)) => (t, r),
            None => (spec, ""),
        };
        let timefmt = if timefmt.is_empty() { "%FT%T" } else { timefmt };
        let mut result = if *t == 0.0 {
            String::new()
        } else {
            local_time(*t, timefmt).ok_or_else(|| format!("Invalid format string {timefmt}"))?
        };
        let mut rest = rest.to_string();
        if let Some(r) = rest.strip_suffix('h') {
            if result.is_empty() {
                result = "-".into();
            }
            rest = format!("{r}s");
        }
        return py_format(&Value::Str(result), &rest);
    }
    if spec.is_empty() {
        return Ok(value.text());
    }
    let s = parse_spec(spec).ok_or_else(|| "Invalid format specifier".to_string())?;
    match value {
        Value::Str(t) => format_str(t, &s),
        Value::Nothing => {
            let spec = spec.trim_end_matches(|c| "bcdoxXeEfFgGn%".contains(c));
            let s = parse_spec(spec).unwrap_or_default();
            format_str("", &s)
        }
        Value::Int(n) => format_int(*n, &s),
        Value::Bool(b) => format_int(i64::from(*b), &s),
        Value::Id { id, .. } => format_int(i64::try_from(*id).unwrap_or(i64::MAX), &s),
        Value::Float(f) => format_float(*f, &s),
        Value::Datetime(_) => Ok(String::new()),
    }
}

/// `timedelta(seconds=round(value))` as Python prints it.
fn timedelta(secs: f64) -> String {
    let v = if secs > 0.0 && secs < 1.0 { 1.0 } else { secs };
    let total = v.round_ties_even() as i64;
    let days = total.div_euclid(86400);
    let rest = total.rem_euclid(86400);
    let hms = format!("{}:{:02}:{:02}", rest / 3600, (rest % 3600) / 60, rest % 60);
    match days {
        0 => hms,
        1 | -1 => format!("{days} day, {hms}"),
        _ => format!("{days} days, {hms}"),
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Int(n) => Some(*n as f64),
        Value::Float(f) => Some(*f),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

/// `UtilFormatter.convert_field`.
fn convert(value: Value, conv: Option<char>) -> Result<Value, String> {
    let Some(c) = conv else { return Ok(value) };
    let empty = matches!(&value, Value::Str(s) if s.is_empty()) || value == Value::Nothing;
    Ok(match c {
        'd' => match number(&value) {
            Some(t) => Value::Datetime(t),
            None if empty => Value::Datetime(0.0),
            None => return Err(format!("cannot convert {} to a datetime", value.text())),
        },
        'D' => match number(&value) {
            Some(t) if t != 0.0 => Value::Str(local_time(t, "%FT%T").unwrap_or_default()),
            _ => Value::Str(String::new()),
        },
        'F' => match number(&value) {
            Some(t) => Value::Str(super::units::fsd_py(t)),
            None if empty => Value::Str(String::new()),
            None => return Err(format!("cannot convert {} to a duration", value.text())),
        },
        'H' => match number(&value) {
            Some(t) => Value::Str(timedelta(t)),
            None => Value::Str(String::new()),
        },
        'P' => match number(&value) {
            Some(t) => {
                let p = t * 100.0;
                Value::Str(if p > 0.0 && p < 1.0 {
                    format!("{p:.2}%")
                } else {
                    format!("{}%", super::units::fmt_g(p, 3))
                })
            }
            None => Value::Str(String::new()),
        },
        's' => Value::Str(value.text()),
        'r' => match value {
            Value::Str(s) => Value::Str(format!("'{s}'")),
            v => Value::Str(v.text()),
        },
        other => return Err(format!("Unknown conversion specifier {other}")),
    })
}

/// Outputs that count as empty for `?:` and `h` (`util.py` `empty_outputs`).
fn is_empty_output(s: &str) -> bool {
    matches!(s, "" | "0s" | "0.0" | "0:00:00" | "1970-01-01T00:00:00")
        || local_time(0.0, "%FT%T").is_some_and(|e| e == s)
}

/// `UtilFormatter.format_field` after the conversion.
fn format_field(value: &Value, spec: &str) -> Result<String, String> {
    let (spec, truncation) = match spec.strip_suffix('+') {
        Some(s) => (s, true),
        None => (spec, false),
    };
    let (value, spec) = match (spec.strip_suffix('h'), value) {
        (Some(base), v) if !matches!(v, Value::Datetime(_)) => {
            let text = v.text();
            let shown = if is_empty_output(&text) {
                "-".into()
            } else {
                text
            };
            (Value::Str(shown), format!("{base}s"))
        }
        _ => (value.clone(), spec.to_string()),
    };
    let mut out = py_format(&value, &spec)?;
    let full = value.text();
    if truncation && out.chars().count() < full.chars().count() {
        out.pop();
        out.push('+');
    }
    Ok(out)
}

/// A checked output format.
#[derive(Debug, Clone)]
pub struct Format {
    pieces: Vec<Piece>,
}

const SENTINELS: [&str; 3] = ["?+:", "?:", "+:"];

impl Format {
    /// Parses `fmt`, refusing fields that have no heading. A `sort:KEYS` prefix is dropped
    /// (the simulated cluster does not sort by it).
    pub fn new(fmt: &str, heading: &dyn Fn(&str) -> Option<String>) -> Result<Format, String> {
        let fmt = match fmt.strip_prefix("sort:") {
            Some(rest) => match rest.find([' ', '{']) {
                Some(k) => rest[k..].strip_prefix(' ').unwrap_or(&rest[k..]),
                None => "",
            },
            None => fmt,
        };
        let pieces = parse(fmt)?;
        for p in &pieces {
            if let Some(f) = &p.field
                && heading(&f.name).is_none()
            {
                return Err(format!("Unknown format field: {}", f.name));
            }
        }
        Ok(Format { pieces })
    }

    /// `OutputFormat.filter`: drops `?:` columns empty in every row, widens `+:` columns to
    /// their widest value (and heading, unless there is no header), removes the prefixes.
    pub fn filter<T>(
        &self,
        items: &[T],
        lookup: &dyn Fn(&T, &str) -> Value,
        heading: &dyn Fn(&str) -> Option<String>,
        no_header: bool,
    ) -> Format {
        let mut pieces = Vec::new();
        for p in &self.pieces {
            let Some(f) = &p.field else {
                pieces.push(p.clone());
                continue;
            };
            let Some(sentinel) = SENTINELS.iter().find(|s| p.text.ends_with(*s)) else {
                pieces.push(p.clone());
                continue;
            };
            let drop_empty = sentinel.starts_with('?');
            let widen = sentinel.contains('+');
            let base = header_spec(&f.spec);
            let spec_width = parse_spec(&base).and_then(|s| s.width).unwrap_or(0);
            let mut maxwidth = spec_width;
            if widen && !no_header {
                maxwidth = maxwidth.max(heading(&f.name).map_or(0, |h| h.chars().count()));
            }
            let mut width = 0;
            for item in items {
                let shown = convert(lookup(item, &f.name), f.conv)
                    .and_then(|v| format_field(&v, ""))
                    .unwrap_or_default();
                let w = if is_empty_output(&shown) {
                    0
                } else {
                    shown.chars().count()
                };
                width = width.max(w);
                maxwidth = maxwidth.max(w);
            }
            if width == 0 && drop_empty {
                continue;
            }
            let mut field = f.clone();
            if widen {
                field.spec = widen_spec(&f.spec, maxwidth);
            }
            pieces.push(Piece {
                text: p.text.clone(),
                field: Some(field),
            });
        }
        for p in &mut pieces {
            for s in SENTINELS {
                p.text = p.text.replace(s, "");
            }
        }
        Format { pieces }
    }

    /// The header row.
    pub fn header(&self, heading: &dyn Fn(&str) -> Option<String>) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            out.push_str(&p.text);
            if let Some(f) = &p.field {
                let h = heading(&f.name).unwrap_or_default();
                let spec = parse_spec(&header_spec(&f.spec)).unwrap_or_default();
                out.push_str(&pad(&h, &spec, '<', 0));
            }
        }
        out
    }

    /// One row.
    pub fn row(&self, lookup: &dyn Fn(&str) -> Value) -> Result<String, String> {
        let mut out = String::new();
        for p in &self.pieces {
            out.push_str(&p.text);
            if let Some(f) = &p.field {
                let v = convert(lookup(&f.name), f.conv)?;
                out.push_str(&format_field(&v, &f.spec)?);
            }
        }
        Ok(out)
    }
}

/// A spec with its width set to `width` (and a string precision below it raised to it),
/// keeping everything else (`FormatSpec.width` setter).
fn widen_spec(spec: &str, width: usize) -> String {
    let (prefix, body) = match spec.find("::") {
        Some(k) => (&spec[..k + 2], &spec[k + 2..]),
        None => ("", spec),
    };
    let (body, plus) = match body.strip_suffix('+') {
        Some(b) => (b, "+"),
        None => (body, ""),
    };
    let (body, h) = match body.strip_suffix('h') {
        Some(b) => (b, "h"),
        None => (body, ""),
    };
    let Some(mut s) = parse_spec(body) else {
        return spec.to_string();
    };
    s.width = Some(width);
    if matches!(s.ty, None | Some('s')) && s.precision.is_some_and(|p| p > 0 && p < width) {
        s.precision = Some(width);
    }
    let mut out = String::from(prefix);
    if let Some(a) = s.align {
        if let Some(f) = s.fill {
            out.push(f);
        }
        out.push(a);
    }
    if let Some(sign) = s.sign {
        out.push(sign);
    }
    if s.alt {
        out.push('#');
    }
    if s.zero {
        out.push('0');
    }
    out.push_str(&width.to_string());
    if let Some(g) = s.grouping {
        out.push(g);
    }
    if let Some(p) = s.precision {
        out.push_str(&format!(".{p}"));
    }
    if let Some(t) = s.ty {
        out.push(t);
    }
    out.push_str(h);
    out.push_str(plus);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(value: Value, spec: &str) -> String {
        format_field(&value, spec).unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn python_format_specs() {
        assert_eq!(fmt(Value::Str("abc".into()), ">6"), "   abc");
        assert_eq!(
            fmt(Value::Str("abcdefghijkl".into()), "<10.10+"),
            "abcdefghi+"
        );
        assert_eq!(fmt(Value::Int(5), "6"), "     5");
        assert_eq!(fmt(Value::Int(-3), ""), "-3");
        assert_eq!(fmt(Value::Str(String::new()), ">6h"), "     -");
        assert_eq!(fmt(Value::Str("0s".into()), "h"), "-");
        assert_eq!(fmt(Value::Float(1.5), ".2f"), "1.50");
        assert_eq!(fmt(Value::Float(2.0), ""), "2.0");
        assert_eq!(fmt(Value::Bool(true), ""), "True");
        assert_eq!(
            fmt(Value::Str("x".into()), "d"),
            "ERR Unknown format code 'd' for object of type 'str'"
        );
        assert_eq!(timedelta(3725.0), "1:02:05");
        assert_eq!(timedelta(90000.0), "1 day, 1:00:00");
        assert_eq!(py_repr(1700000000.25), "1700000000.25");
        assert_eq!(py_repr(1e-5), "1e-05");
    }

    #[test]
    fn parsing_and_sentinels() {
        let p = parse("{id.f58:>12} ?:{queue:<8.8} x{{y}}").unwrap_or_default();
        assert_eq!(p.len(), 3);
        assert_eq!(p[1].text, " ?:");
        assert_eq!(p[2].text, " x{y}");
        assert!(parse("{a").is_err());
        assert!(parse("a}").is_err());
        assert_eq!(widen_spec("<8.8", 10), "<10.10");
        assert_eq!(header_spec("%b%d %R::>12h"), ">12");
    }
}
