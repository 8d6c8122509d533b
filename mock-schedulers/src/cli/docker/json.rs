//! Values the way the Docker CLI shows them: JSON with Go's field order and escaping
//! (`encoding/json`: `<`, `>`, `&`, U+2028 and U+2029 escaped), `docker inspect`'s four-space
//! indentation, and Go's `fmt` `%v` printing for templates (`map[k:v]`, `[a b]`, `{a b}`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A value with its fields in order.
#[derive(Debug, Clone, PartialEq)]
pub enum J {
    /// `null` (`<nil>` in templates).
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string.
    Str(String),
    /// A list.
    Arr(Vec<J>),
    /// A Go struct: fields in declaration order.
    Struct(Vec<(String, J)>),
    /// A Go map: printed with sorted keys.
    Map(BTreeMap<String, J>),
}

impl J {
    /// A string value.
    pub fn s(text: impl Into<String>) -> J {
        J::Str(text.into())
    }

    /// A list of strings, or `null` when absent.
    pub fn strings(list: Option<&[String]>) -> J {
        match list {
            Some(items) => J::Arr(items.iter().map(|s| J::s(s.clone())).collect()),
            None => J::Null,
        }
    }

    /// A map of strings.
    pub fn string_map(map: &BTreeMap<String, String>) -> J {
        J::Map(
            map.iter()
                .map(|(k, v)| (k.clone(), J::s(v.clone())))
                .collect(),
        )
    }

    /// A struct from its fields.
    pub fn obj(fields: Vec<(&str, J)>) -> J {
        J::Struct(
            fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    }

    /// A field or map entry.
    pub fn get(&self, key: &str) -> Option<&J> {
        match self {
            J::Struct(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            J::Map(map) => map.get(key),
            _ => None,
        }
    }

    /// Go's truthiness (`if`): false, 0, nil, empty string, list or map are false.
    pub fn truthy(&self) -> bool {
        match self {
            J::Null => false,
            J::Bool(b) => *b,
            J::Int(i) => *i != 0,
            J::Float(f) => *f != 0.0,
            J::Str(s) => !s.is_empty(),
            J::Arr(a) => !a.is_empty(),
            J::Struct(_) => true,
            J::Map(m) => !m.is_empty(),
        }
    }

    /// Compact JSON (`json.Marshal`).
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        write_json(self, &mut out, None, 0);
        out
    }

    /// Indented JSON (`json.MarshalIndent(v, "", "    ")`).
    pub fn to_json_pretty(&self) -> String {
        let mut out = String::new();
        write_json(self, &mut out, Some("    "), 0);
        out
    }

    /// Go's `fmt.Sprint` of the value.
    pub fn go_string(&self) -> String {
        match self {
            J::Null => "<nil>".into(),
            J::Bool(b) => b.to_string(),
            J::Int(i) => i.to_string(),
            J::Float(f) => go_float(*f),
            J::Str(s) => s.clone(),
            J::Arr(items) => format!(
                "[{}]",
                items.iter().map(J::go_string).collect::<Vec<_>>().join(" ")
            ),
            J::Struct(fields) => format!(
                "{{{}}}",
                fields
                    .iter()
                    .map(|(_, v)| v.go_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            J::Map(map) => format!(
                "map[{}]",
                map.iter()
                    .map(|(k, v)| format!("{k}:{}", v.go_string()))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        }
    }
}

fn go_float(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e21 {
        format!("{f:.0}")
    } else {
        format!("{f}")
    }
}

/// A JSON string literal with Go's escaping.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn write_json(v: &J, out: &mut String, indent: Option<&str>, depth: usize) {
    let newline = |out: &mut String, depth: usize| {
        if let Some(unit) = indent {
            out.push('\n');
            for _ in 0..depth {
                out.push_str(unit);
            }
        }
    };
    let colon = if indent.is_some() { ": " } else { ":" };
    match v {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Int(i) => out.push_str(&i.to_string()),
        J::Float(f) => out.push_str(&go_float(*f)),
        J::Str(s) => out.push_str(&quote(s)),
        J::Arr(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, depth + 1);
                write_json(item, out, indent, depth + 1);
            }
            newline(out, depth);
            out.push(']');
        }
        J::Struct(fields) => {
            let entries: Vec<(&String, &J)> = fields.iter().map(|(k, v)| (k, v)).collect();
            write_object(&entries, out, indent, depth, colon);
        }
        J::Map(map) => {
            let entries: Vec<(&String, &J)> = map.iter().collect();
            write_object(&entries, out, indent, depth, colon);
        }
    }
}

fn write_object(
    entries: &[(&String, &J)],
    out: &mut String,
    indent: Option<&str>,
    depth: usize,
    colon: &str,
) {
    if entries.is_empty() {
        out.push_str("{}");
        return;
    }
    out.push('{');
    for (i, (k, v)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if let Some(unit) = indent {
            out.push('\n');
            for _ in 0..=depth {
                out.push_str(unit);
            }
        }
        out.push_str(&quote(k));
        out.push_str(colon);
        write_json(v, out, indent, depth + 1);
    }
    if let Some(unit) = indent {
        out.push('\n');
        for _ in 0..depth {
            out.push_str(unit);
        }
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_escaping_and_printing() {
        assert_eq!(quote("a<b>&\"\n"), r#""a\u003cb\u003e\u0026\"\n""#);
        let v = J::obj(vec![
            ("Status", J::s("exited")),
            ("OOMKilled", J::Bool(true)),
            ("ExitCode", J::Int(137)),
            (
                "Labels",
                J::Map(BTreeMap::from([
                    ("b".into(), J::s("2")),
                    ("a".into(), J::s("1")),
                ])),
            ),
            ("Env", J::Arr(vec![J::s("A=1"), J::s("B=2")])),
        ]);
        assert_eq!(
            v.to_json(),
            r#"{"Status":"exited","OOMKilled":true,"ExitCode":137,"Labels":{"a":"1","b":"2"},"Env":["A=1","B=2"]}"#
        );
        assert_eq!(v.go_string(), "{exited true 137 map[a:1 b:2] [A=1 B=2]}");
        assert_eq!(
            J::Arr(vec![J::obj(vec![("A", J::Arr(vec![])), ("B", J::Null)])]).to_json_pretty(),
            "[\n    {\n        \"A\": [],\n        \"B\": null\n    }\n]"
        );
    }
}
