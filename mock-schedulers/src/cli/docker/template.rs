//! The part of Go's `text/template` that `docker ... --format` templates use: text and
//! `{{ }}` actions with `{{-`/`-}}` trimming and comments, field chains (`.State.ExitCode`),
//! `$` variables, literals, pipelines (`|`), parenthesised pipelines, `if`/`else if`/`else`,
//! `range` (with `$i, $v :=`), `with`, Go's built-in functions (`index len print printf
//! println eq ne lt le gt ge and or not`) and the Docker CLI's own (`json join split upper
//! lower title truncate pad`; docker/cli `templates/templates.go`).
//!
//! Errors are worded as Go words them (`template: :1:8: executing "" at <.State.Foo>: map
//! has no entry for key "Foo"`); the line:column of an execution error is where the node
//! starts, as `parse.Tree.ErrorContext` reports it.

use std::collections::BTreeMap;

use super::json::J;

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
    text: String,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipe),
    If {
        pipe: Pipe,
        then: Vec<Node>,
        els: Vec<Node>,
    },
    Range {
        pipe: Pipe,
        body: Vec<Node>,
        els: Vec<Node>,
    },
    With {
        pipe: Pipe,
        body: Vec<Node>,
        els: Vec<Node>,
    },
}

#[derive(Debug, Clone, Default)]
struct Pipe {
    decl: Vec<String>,
    cmds: Vec<Cmd>,
}

#[derive(Debug, Clone)]
struct Cmd {
    args: Vec<Arg>,
}

#[derive(Debug, Clone)]
enum Arg {
    /// `.A.B` (an empty path is `.`); `pos` is where Go places the node.
    Field {
        path: Vec<String>,
        pos: usize,
    },
    /// `$x.A.B`.
    Var {
        name: String,
        path: Vec<String>,
        pos: usize,
    },
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Nil,
    Ident(String),
    /// `(pipeline).A.B`.
    Sub {
        pipe: Pipe,
        path: Vec<String>,
        pos: usize,
    },
}

const FUNCTIONS: &[&str] = &[
    "index", "len", "print", "printf", "println", "eq", "ne", "lt", "le", "gt", "ge", "and", "or",
    "not", "json", "join", "split", "upper", "lower", "title", "truncate", "pad",
];

/// How a missing field is reported.
#[derive(Debug, Clone, Copy)]
pub enum Missing<'a> {
    /// The value is a typed Go struct of this type (`*formatter.ContainerContext`).
    Typed(&'a str),
    /// Raw JSON decoded into maps, executed with `missingkey=error`.
    Raw,
    /// `docker inspect`: the typed value first (a missing key of a map field is its zero
    /// value, the empty string), then the raw JSON (a missing field is `map has no entry`).
    Inspect,
}

/// Parses a template; the error is Go's (`template: :1: function "x" not defined`).
pub fn parse(text: &str) -> Result<Template, String> {
    let mut p = Parser {
        text,
        items: lex(text)?,
        at: 0,
    };
    let (nodes, end) = p.list()?;
    if let Some((word, pos)) = end {
        return Err(format!(
            "template: :{}: unexpected {{{{{word}}}}}",
            line_of(text, pos)
        ));
    }
    Ok(Template {
        nodes,
        text: text.to_string(),
    })
}

fn line_of(text: &str, pos: usize) -> usize {
    1 + text[..pos.min(text.len())].matches('\n').count()
}

#[derive(Debug, Clone)]
enum Item {
    Text(String),
    /// An action's inside and where it starts.
    Action(String, usize),
}

fn lex(text: &str) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    let mut rest = 0;
    let mut trim_next = false;
    while let Some(open) = text[rest..].find("{{").map(|i| i + rest) {
        let mut literal = &text[rest..open];
        if trim_next {
            literal = literal.trim_start();
        }
        let mut inner_start = open + 2;
        let trim_left = text[inner_start..].starts_with("- ")
            || text[inner_start..].starts_with("-\n")
            || text[inner_start..].starts_with("-\t");
        if trim_left {
            literal = literal.trim_end();
            inner_start += 1;
        }
        if !literal.is_empty() {
            items.push(Item::Text(literal.to_string()));
        }
        let Some(close) = find_close(text, inner_start) else {
            return Err(format!(
                "template: :{}: unclosed action",
                line_of(text, open)
            ));
        };
        let mut inner_end = close;
        trim_next = false;
        if close > inner_start
            && text[..close].ends_with('-')
            && text[..close - 1].ends_with([' ', '\n', '\t'])
        {
            inner_end = close - 1;
            trim_next = true;
        }
        let inner = &text[inner_start..inner_end];
        let trimmed = inner.trim();
        if !(trimmed.starts_with("/*") && trimmed.ends_with("*/")) {
            items.push(Item::Action(inner.to_string(), inner_start));
        }
        rest = close + 2;
    }
    let mut literal = &text[rest..];
    if trim_next {
        literal = literal.trim_start();
    }
    if !literal.is_empty() {
        items.push(Item::Text(literal.to_string()));
    }
    Ok(items)
}

/// The `}}` that closes an action starting at `from`, skipping quoted strings.
fn find_close(text: &str, from: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = from;
    while i + 1 < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'`' {
                    i += 1;
                }
            }
            b'}' if bytes[i + 1] == b'}' => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

struct Parser<'a> {
    text: &'a str,
    items: Vec<Item>,
    at: usize,
}

/// A keyword that ends a list: `end`, `else`, `else if ...`, with its position.
type Ending = Option<(String, usize)>;

impl Parser<'_> {
    fn err(&self, pos: usize, msg: &str) -> String {
        format!("template: :{}: {msg}", line_of(self.text, pos))
    }

    /// Nodes up to `{{end}}`/`{{else}}` (returned) or the end of the text.
    fn list(&mut self) -> Result<(Vec<Node>, Ending), String> {
        let mut nodes = Vec::new();
        while self.at < self.items.len() {
            let item = self.items[self.at].clone();
            self.at += 1;
            match item {
                Item::Text(t) => nodes.push(Node::Text(t)),
                Item::Action(inner, pos) => {
                    let trimmed = inner.trim();
                    let (word, rest) = match trimmed.split_once(char::is_whitespace) {
                        Some((w, r)) => (w, r),
                        None => (trimmed, &trimmed[trimmed.len()..]),
                    };
                    // `rest` lies inside `inner`: its offset there places its tokens.
                    let rest_pos = pos + (rest.as_ptr() as usize - inner.as_ptr() as usize);
                    match word {
                        "end" => return Ok((nodes, Some(("end".into(), pos)))),
                        "else" => {
                            let kw = if rest.trim().is_empty() {
                                "else".to_string()
                            } else {
                                format!("else {}", rest.trim())
                            };
                            return Ok((nodes, Some((kw, pos))));
                        }
                        "if" => nodes.push(self.conditional(rest, rest_pos, pos)?),
                        "range" | "with" => {
                            let pipe = self.pipeline(rest, rest_pos)?;
                            let (body, end) = self.list()?;
                            let els = match end {
                                Some((e, _)) if e == "end" => Vec::new(),
                                Some((e, p)) if e == "else" => {
                                    let (els, end) = self.list()?;
                                    self.expect_end(end, p)?;
                                    els
                                }
                                Some((_, p)) => return Err(self.err(p, "unexpected {{else}}")),
                                None => return Err(self.err(pos, "unexpected EOF")),
                            };
                            nodes.push(if word == "range" {
                                Node::Range { pipe, body, els }
                            } else {
                                Node::With { pipe, body, els }
                            });
                        }
                        "" => return Err(self.err(pos, "missing value for command")),
                        _ => nodes.push(Node::Action(self.pipeline(&inner, pos)?)),
                    }
                }
            }
        }
        Ok((nodes, None))
    }

    fn expect_end(&self, end: Ending, pos: usize) -> Result<(), String> {
        match end {
            Some((e, _)) if e == "end" => Ok(()),
            Some((_, p)) => Err(self.err(p, "expected end; found {{else}}")),
            None => Err(self.err(pos, "unexpected EOF")),
        }
    }

    /// `if PIPE` ... with its `else if` chain.
    fn conditional(&mut self, cond: &str, cond_pos: usize, pos: usize) -> Result<Node, String> {
        let pipe = self.pipeline(cond, cond_pos)?;
        let (then, end) = self.list()?;
        let els = match end {
            Some((e, _)) if e == "end" => Vec::new(),
            Some((e, p)) if e == "else" => {
                let (els, end) = self.list()?;
                self.expect_end(end, p)?;
                els
            }
            Some((e, p)) if e.starts_with("else if ") => {
                let inner = e["else if ".len()..].to_string();
                vec![self.conditional(&inner, p, p)?]
            }
            Some((_, p)) => return Err(self.err(p, "unexpected keyword")),
            None => return Err(self.err(pos, "unexpected EOF")),
        };
        Ok(Node::If { pipe, then, els })
    }

    fn pipeline(&self, text: &str, base: usize) -> Result<Pipe, String> {
        let tokens = tokenize(text, base).map_err(|(p, m)| self.err(p, &m))?;
        let mut at = 0;
        let pipe = self.pipe_tokens(&tokens, &mut at, base)?;
        if at < tokens.len() {
            return Err(self.err(
                tokens[at].pos,
                &format!("unexpected {:?} in operand", tokens[at].text),
            ));
        }
        Ok(pipe)
    }

    fn pipe_tokens(&self, tokens: &[Tok], at: &mut usize, base: usize) -> Result<Pipe, String> {
        let mut pipe = Pipe::default();
        // Declarations: `$x :=` or `$i, $v :=`.
        let mut probe = *at;
        let mut names = Vec::new();
        while probe < tokens.len() && tokens[probe].text.starts_with('$') {
            names.push(tokens[probe].text.clone());
            probe += 1;
            if probe < tokens.len() && tokens[probe].text == "," {
                probe += 1;
                continue;
            }
            break;
        }
        if !names.is_empty()
            && probe < tokens.len()
            && (tokens[probe].text == ":=" || tokens[probe].text == "=")
        {
            pipe.decl = names;
            *at = probe + 1;
        }
        let mut cmd = Cmd { args: Vec::new() };
        while *at < tokens.len() {
            let tok = &tokens[*at];
            match tok.text.as_str() {
                ")" => break,
                "|" => {
                    if cmd.args.is_empty() {
                        return Err(self.err(tok.pos, "missing command"));
                    }
                    pipe.cmds
                        .push(std::mem::replace(&mut cmd, Cmd { args: Vec::new() }));
                    *at += 1;
                }
                "(" => {
                    *at += 1;
                    let inner = self.pipe_tokens(tokens, at, base)?;
                    if *at >= tokens.len() || tokens[*at].text != ")" {
                        return Err(self.err(tok.pos, "unclosed left paren"));
                    }
                    *at += 1;
                    let mut path = Vec::new();
                    let mut pos = tok.pos;
                    while *at < tokens.len()
                        && tokens[*at].text.starts_with('.')
                        && tokens[*at].glued
                    {
                        pos = tokens[*at].pos;
                        path.extend(fields(&tokens[*at].text));
                        *at += 1;
                    }
                    cmd.args.push(Arg::Sub {
                        pipe: inner,
                        path,
                        pos,
                    });
                }
                _ => {
                    cmd.args.push(self.operand(tok)?);
                    *at += 1;
                }
            }
        }
        if cmd.args.is_empty() {
            let pos = tokens.last().map_or(base, |t| t.pos);
            return Err(self.err(pos, "missing value for command"));
        }
        pipe.cmds.push(cmd);
        Ok(pipe)
    }

    fn operand(&self, tok: &Tok) -> Result<Arg, String> {
        let t = tok.text.as_str();
        Ok(if t == "." {
            Arg::Field {
                path: Vec::new(),
                pos: tok.pos,
            }
        } else if let Some(rest) = t.strip_prefix('.') {
            let path = fields(t);
            // Go places a chain `.A.B` at its second field.
            let pos = if path.len() > 1 {
                tok.pos + 1 + rest.find('.').unwrap_or(0)
            } else {
                tok.pos
            };
            Arg::Field { path, pos }
        } else if t.starts_with('$') {
            let (name, path) = match t.find('.') {
                Some(i) => (t[..i].to_string(), fields(&t[i..])),
                None => (t.to_string(), Vec::new()),
            };
            Arg::Var {
                name,
                path,
                pos: tok.pos,
            }
        } else if t.starts_with('"') {
            Arg::Str(unquote(t).ok_or_else(|| self.err(tok.pos, "unterminated quoted string"))?)
        } else if t.starts_with('`') {
            Arg::Str(t.trim_matches('`').to_string())
        } else if t == "true" || t == "false" {
            Arg::Bool(t == "true")
        } else if t == "nil" {
            Arg::Nil
        } else if let Ok(i) = t.parse::<i64>() {
            Arg::Int(i)
        } else if let Ok(f) = t.parse::<f64>() {
            Arg::Float(f)
        } else if FUNCTIONS.contains(&t) {
            Arg::Ident(t.to_string())
        } else if t.chars().all(|c| c.is_alphanumeric() || c == '_') {
            return Err(self.err(tok.pos, &format!("function {t:?} not defined")));
        } else {
            return Err(self.err(tok.pos, &format!("unexpected {t:?} in operand")));
        })
    }
}

fn fields(chain: &str) -> Vec<String> {
    chain
        .split('.')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn unquote(t: &str) -> Option<String> {
    let inner = t.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            '\\' => out.push('\\'),
            '"' => out.push('"'),
            other => {
                out.push('\\');
                out.push(other);
            }
        }
    }
    Some(out)
}

#[derive(Debug, Clone)]
struct Tok {
    text: String,
    pos: usize,
    /// Directly after the previous token (a field chain on a parenthesis).
    glued: bool,
}

fn tokenize(text: &str, base: usize) -> Result<Vec<Tok>, (usize, String)> {
    let bytes = text.as_bytes();
    let mut toks = Vec::new();
    let mut i = 0;
    let mut glued = false;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
            glued = false;
            continue;
        }
        let start = i;
        match c {
            b'(' | b')' | b'|' | b',' => i += 1,
            b':' if bytes.get(i + 1) == Some(&b'=') => i += 2,
            b'=' => i += 1,
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                if i >= bytes.len() {
                    return Err((base + start, "unterminated quoted string".into()));
                }
                i += 1;
            }
            b'`' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'`' {
                    i += 1;
                }
                if i >= bytes.len() {
                    return Err((base + start, "unterminated raw quoted string".into()));
                }
                i += 1;
            }
            _ => {
                let ends_word = |i: usize| {
                    bytes[i].is_ascii_whitespace()
                        || matches!(bytes[i], b'(' | b')' | b'|' | b',' | b'"' | b'`')
                        || (bytes[i] == b':' && bytes.get(i + 1) == Some(&b'='))
                };
                while i < bytes.len() && !ends_word(i) {
                    i += 1;
                }
            }
        }
        toks.push(Tok {
            text: text[start..i].to_string(),
            pos: base + start,
            glued,
        });
        glued = matches!(c, b')');
    }
    Ok(toks)
}

/// A template run against one value.
struct Exec<'a> {
    text: &'a str,
    missing: Missing<'a>,
    vars: Vec<(String, Option<J>)>,
}

type Val = Option<J>;

impl Template {
    /// Runs the template with `dot`; the error is Go's execution error.
    pub fn execute(&self, dot: &J, missing: Missing<'_>) -> Result<String, String> {
        let mut exec = Exec {
            text: &self.text,
            missing,
            vars: vec![("$".into(), Some(dot.clone()))],
        };
        let mut out = String::new();
        exec.walk(&self.nodes, dot, &mut out)?;
        Ok(out)
    }
}

/// Go's `fmt.Sprint` of a template value (`<no value>` for a missing one).
pub fn print(v: &Val) -> String {
    match v {
        Some(j) => j.go_string(),
        None => "<no value>".into(),
    }
}

impl Exec<'_> {
    fn at(&self, pos: usize, node: &str, msg: &str) -> String {
        let before = &self.text[..pos.min(self.text.len())];
        let line = 1 + before.matches('\n').count();
        let col = match before.rfind('\n') {
            Some(nl) => pos - (nl + 1),
            None => pos,
        };
        format!("template: :{line}:{col}: executing \"\" at <{node}>: {msg}")
    }

    fn walk(&mut self, nodes: &[Node], dot: &J, out: &mut String) -> Result<(), String> {
        for node in nodes {
            match node {
                Node::Text(t) => out.push_str(t),
                Node::Action(pipe) => {
                    let v = self.pipe(pipe, dot)?;
                    if pipe.decl.is_empty() {
                        out.push_str(&print(&v));
                    }
                }
                Node::If { pipe, then, els } => {
                    let depth = self.vars.len();
                    let v = self.pipe(pipe, dot)?;
                    let branch = if v.as_ref().is_some_and(J::truthy) {
                        then
                    } else {
                        els
                    };
                    self.walk(branch, dot, out)?;
                    self.vars.truncate(depth);
                }
                Node::With { pipe, body, els } => {
                    let depth = self.vars.len();
                    let v = self.pipe(pipe, dot)?;
                    match v {
                        Some(v) if v.truthy() => self.walk(body, &v, out)?,
                        _ => self.walk(els, dot, out)?,
                    }
                    self.vars.truncate(depth);
                }
                Node::Range { pipe, body, els } => {
                    let depth = self.vars.len();
                    let plain = Pipe {
                        decl: Vec::new(),
                        cmds: pipe.cmds.clone(),
                    };
                    let v = self.pipe(&plain, dot)?;
                    let entries: Vec<(J, J)> = match v {
                        Some(J::Arr(items)) => items
                            .into_iter()
                            .enumerate()
                            .map(|(i, v)| (J::Int(i as i64), v))
                            .collect(),
                        Some(J::Map(map)) => map.into_iter().map(|(k, v)| (J::Str(k), v)).collect(),
                        Some(J::Int(n)) => (0..n).map(|i| (J::Int(i), J::Int(i))).collect(),
                        None | Some(J::Null) => Vec::new(),
                        Some(other) => {
                            return Err(format!(
                                "template: :1: range can't iterate over {}",
                                other.go_string()
                            ));
                        }
                    };
                    if entries.is_empty() {
                        self.walk(els, dot, out)?;
                    }
                    for (k, v) in entries {
                        let inner = self.vars.len();
                        match pipe.decl.as_slice() {
                            [one] => self.vars.push((one.clone(), Some(v.clone()))),
                            [first, second, ..] => {
                                self.vars.push((first.clone(), Some(k)));
                                self.vars.push((second.clone(), Some(v.clone())));
                            }
                            [] => {}
                        }
                        self.walk(body, &v, out)?;
                        self.vars.truncate(inner);
                    }
                    self.vars.truncate(depth);
                }
            }
        }
        Ok(())
    }

    fn pipe(&mut self, pipe: &Pipe, dot: &J) -> Result<Val, String> {
        let mut prev: Option<Val> = None;
        for cmd in &pipe.cmds {
            prev = Some(self.cmd(cmd, dot, prev)?);
        }
        let v = prev.unwrap_or(None);
        for name in &pipe.decl {
            self.vars.push((name.clone(), v.clone()));
        }
        Ok(v)
    }

    fn cmd(&mut self, cmd: &Cmd, dot: &J, prev: Option<Val>) -> Result<Val, String> {
        let first = &cmd.args[0];
        if let Arg::Ident(name) = first {
            let mut args = Vec::new();
            for a in &cmd.args[1..] {
                args.push(self.arg(a, dot)?);
            }
            if let Some(p) = prev {
                args.push(p);
            }
            return call(name, &args).map_err(|m| {
                format!("template: :1: executing \"\" at <{name}>: error calling {name}: {m}")
            });
        }
        let value = self.arg(first, dot)?;
        let extra = cmd.args.len() > 1 || prev.is_some();
        if !extra {
            return Ok(value);
        }
        // A method with an argument, such as the formatter's `.Label "name"` (a header row
        // has its heading there).
        if let (Arg::Field { .. }, Some(J::Str(_))) = (first, &value) {
            return Ok(value);
        }
        if let (Arg::Field { .. }, Some(J::Map(map))) = (first, &value) {
            let key = match cmd.args.get(1) {
                Some(a) => self.arg(a, dot)?,
                None => prev.unwrap_or(None),
            };
            let key = print(&key);
            return Ok(Some(map.get(&key).cloned().unwrap_or(J::s(""))));
        }
        Err(format!(
            "template: :1: can't give argument to non-function {}",
            print(&value)
        ))
    }

    fn arg(&mut self, arg: &Arg, dot: &J) -> Result<Val, String> {
        match arg {
            Arg::Field { path, pos } => self.walk_path(Some(dot.clone()), path, *pos, "", true),
            Arg::Var { name, path, pos } => {
                let Some((_, v)) = self.vars.iter().rev().find(|(n, _)| n == name) else {
                    return Err(format!("template: :1: undefined variable: {name}"));
                };
                self.walk_path(v.clone(), path, *pos, name, false)
            }
            Arg::Sub { pipe, path, pos } => {
                let v = self.pipe(pipe, dot)?;
                self.walk_path(v, path, *pos, "(...)", false)
            }
            Arg::Str(s) => Ok(Some(J::s(s.clone()))),
            Arg::Int(i) => Ok(Some(J::Int(*i))),
            Arg::Float(f) => Ok(Some(J::Float(*f))),
            Arg::Bool(b) => Ok(Some(J::Bool(*b))),
            Arg::Nil => Ok(Some(J::Null)),
            Arg::Ident(name) => call(name, &[]).map_err(|m| format!("template: :1: {m}")),
        }
    }

    fn walk_path(
        &self,
        start: Val,
        path: &[String],
        pos: usize,
        prefix: &str,
        is_dot: bool,
    ) -> Result<Val, String> {
        let node = format!(
            "{prefix}{}{}",
            if is_dot && path.is_empty() { "." } else { "" },
            path.iter().map(|p| format!(".{p}")).collect::<String>()
        );
        let mut cur = start;
        for (depth, field) in path.iter().enumerate() {
            cur = match cur {
                Some(J::Struct(fields)) => match fields.iter().find(|(k, _)| k == field) {
                    Some((_, v)) => Some(v.clone()),
                    None => {
                        let msg = match self.missing {
                            Missing::Typed(ty) if depth == 0 => {
                                format!("can't evaluate field {field} in type {ty}")
                            }
                            _ => format!("map has no entry for key {field:?}"),
                        };
                        return Err(self.at(pos, &node, &msg));
                    }
                },
                Some(J::Map(map)) => match (map.get(field), self.missing) {
                    (Some(v), _) => Some(v.clone()),
                    (None, Missing::Raw) => {
                        return Err(self.at(
                            pos,
                            &node,
                            &format!("map has no entry for key {field:?}"),
                        ));
                    }
                    (None, Missing::Inspect) => Some(J::s("")),
                    (None, Missing::Typed(_)) => None,
                },
                Some(J::Null) => {
                    return Err(self.at(
                        pos,
                        &node,
                        &format!("nil pointer evaluating interface {{}}.{field}"),
                    ));
                }
                None => None,
                Some(other) => {
                    return Err(self.at(
                        pos,
                        &node,
                        &format!("can't evaluate field {field} in type {}", go_type(&other)),
                    ));
                }
            };
        }
        Ok(cur)
    }
}

fn go_type(v: &J) -> &'static str {
    match v {
        J::Bool(_) => "bool",
        J::Int(_) => "int",
        J::Float(_) => "float64",
        J::Str(_) => "string",
        J::Arr(_) => "[]interface {}",
        _ => "interface {}",
    }
}

fn as_str(v: &Val) -> String {
    match v {
        Some(J::Str(s)) => s.clone(),
        other => print(other),
    }
}

fn as_int(v: &Val) -> Result<i64, String> {
    match v {
        Some(J::Int(i)) => Ok(*i),
        Some(J::Float(f)) => Ok(*f as i64),
        other => Err(format!("expected integer; found {}", print(other))),
    }
}

fn compare(a: &Val, b: &Val) -> Result<std::cmp::Ordering, String> {
    match (a, b) {
        (Some(J::Int(x)), Some(J::Int(y))) => Ok(x.cmp(y)),
        (Some(J::Str(x)), Some(J::Str(y))) => Ok(x.cmp(y)),
        (Some(J::Bool(x)), Some(J::Bool(y))) => Ok(x.cmp(y)),
        (Some(x), Some(y)) => {
            let (fx, fy) = (num(x), num(y));
            match (fx, fy) {
                (Some(fx), Some(fy)) => fx
                    .partial_cmp(&fy)
                    .ok_or_else(|| "incompatible types for comparison".to_string()),
                _ => Err("incompatible types for comparison".into()),
            }
        }
        _ => Err("invalid type for comparison".into()),
    }
}

fn num(v: &J) -> Option<f64> {
    match v {
        J::Int(i) => Some(*i as f64),
        J::Float(f) => Some(*f),
        _ => None,
    }
}

fn call(name: &str, args: &[Val]) -> Result<Val, String> {
    let want = |n: usize| -> Result<(), String> {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!(
                "wrong number of args for {name}: want {n} got {}",
                args.len()
            ))
        }
    };
    Ok(Some(match name {
        "json" => {
            want(1)?;
            J::s(match &args[0] {
                Some(v) => v.to_json(),
                None => "null".into(),
            })
        }
        "index" => {
            let mut cur = args.first().cloned().unwrap_or(None);
            for key in &args[1..] {
                cur = match (cur, key) {
                    (Some(J::Map(m)), k) => Some(m.get(&as_str(k)).cloned().unwrap_or(J::s(""))),
                    (Some(J::Struct(f)), k) => {
                        let k = as_str(k);
                        f.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
                    }
                    (Some(J::Arr(a)), k) => {
                        let i = as_int(k)?;
                        match usize::try_from(i).ok().and_then(|i| a.get(i)) {
                            Some(v) => Some(v.clone()),
                            None => return Err(format!("index out of range: {i}")),
                        }
                    }
                    (other, _) => {
                        return Err(format!("can't index item of type {}", print(&other)));
                    }
                };
            }
            return Ok(cur);
        }
        "len" => {
            want(1)?;
            J::Int(match &args[0] {
                Some(J::Str(s)) => s.len() as i64,
                Some(J::Arr(a)) => a.len() as i64,
                Some(J::Map(m)) => m.len() as i64,
                other => return Err(format!("len of type {}", print(other))),
            })
        }
        "print" => J::s(args.iter().map(as_str).collect::<Vec<_>>().join("")),
        "println" => J::s(format!(
            "{}\n",
            args.iter().map(as_str).collect::<Vec<_>>().join(" ")
        )),
        "printf" => {
            let Some(format) = args.first() else {
                return Err("wrong number of args for printf".into());
            };
            J::s(printf(&as_str(format), &args[1..]))
        }
        "eq" => {
            let Some(first) = args.first() else {
                return Err("missing argument for comparison".into());
            };
            let mut any = false;
            for other in &args[1..] {
                if compare(first, other)? == std::cmp::Ordering::Equal {
                    any = true;
                }
            }
            J::Bool(any)
        }
        "ne" | "lt" | "le" | "gt" | "ge" => {
            want(2)?;
            let o = compare(&args[0], &args[1])?;
            use std::cmp::Ordering::*;
            J::Bool(match name {
                "ne" => o != Equal,
                "lt" => o == Less,
                "le" => o != Greater,
                "gt" => o == Greater,
                _ => o != Less,
            })
        }
        "and" => {
            return Ok(args
                .iter()
                .find(|a| !a.as_ref().is_some_and(J::truthy))
                .or(args.last())
                .cloned()
                .unwrap_or(None));
        }
        "or" => {
            return Ok(args
                .iter()
                .find(|a| a.as_ref().is_some_and(J::truthy))
                .or(args.last())
                .cloned()
                .unwrap_or(None));
        }
        "not" => {
            want(1)?;
            J::Bool(!args[0].as_ref().is_some_and(J::truthy))
        }
        "join" => {
            want(2)?;
            let items: Vec<String> = match &args[0] {
                Some(J::Arr(a)) => a.iter().map(|v| as_str(&Some(v.clone()))).collect(),
                other => vec![as_str(other)],
            };
            J::s(items.join(&as_str(&args[1])))
        }
        "split" => {
            want(2)?;
            J::Arr(
                as_str(&args[0])
                    .split(as_str(&args[1]).as_str())
                    .map(J::s)
                    .collect(),
            )
        }
        "upper" => {
            want(1)?;
            J::s(as_str(&args[0]).to_uppercase())
        }
        "lower" => {
            want(1)?;
            J::s(as_str(&args[0]).to_lowercase())
        }
        "title" => {
            want(1)?;
            J::s(
                as_str(&args[0])
                    .split(' ')
                    .map(|w| {
                        let mut c = w.chars();
                        match c.next() {
                            Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                            None => String::new(),
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
            )
        }
        "truncate" => {
            want(2)?;
            let s = as_str(&args[0]);
            let n = usize::try_from(as_int(&args[1])?).unwrap_or(0);
            J::s(s.chars().take(n).collect::<String>())
        }
        "pad" => {
            want(3)?;
            let s = as_str(&args[0]);
            let l = usize::try_from(as_int(&args[1])?).unwrap_or(0);
            let r = usize::try_from(as_int(&args[2])?).unwrap_or(0);
            J::s(format!("{}{s}{}", " ".repeat(l), " ".repeat(r)))
        }
        _ => return Err(format!("function {name:?} not defined")),
    }))
}

/// `fmt.Sprintf` for `%s %v %d %q %%`.
fn printf(format: &str, args: &[Val]) -> String {
    let mut out = String::new();
    let mut it = args.iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('q') => out.push_str(&format!("{:?}", it.next().map(as_str).unwrap_or_default())),
            Some(verb) => match it.next() {
                Some(v) => out.push_str(&as_str(v)),
                None => out.push_str(&format!("%!{verb}(MISSING)")),
            },
            None => out.push_str("%!(NOVERB)"),
        }
    }
    out
}

/// A map of strings as a template value.
pub fn string_map(map: &BTreeMap<String, String>) -> J {
    J::string_map(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> J {
        J::obj(vec![
            ("Name", J::s("/ci")),
            (
                "State",
                J::obj(vec![
                    ("Status", J::s("exited")),
                    ("OOMKilled", J::Bool(true)),
                    ("ExitCode", J::Int(137)),
                ]),
            ),
            (
                "Config",
                J::obj(vec![(
                    "Labels",
                    J::Map(BTreeMap::from([
                        ("a".into(), J::s("1")),
                        ("b".into(), J::s("2")),
                    ])),
                )]),
            ),
        ])
    }

    fn run(text: &str) -> Result<String, String> {
        parse(text)?.execute(&state(), Missing::Raw)
    }

    #[test]
    fn fields_json_and_functions() {
        assert_eq!(run("{{.State.ExitCode}}").unwrap(), "137");
        assert_eq!(run("{{.State.OOMKilled}} {{.Name}}").unwrap(), "true /ci");
        assert_eq!(
            run("{{json .State}}").unwrap(),
            r#"{"Status":"exited","OOMKilled":true,"ExitCode":137}"#
        );
        assert_eq!(run(r#"{{index .Config.Labels "b"}}"#).unwrap(), "2");
        assert_eq!(run("{{.Config.Labels}}").unwrap(), "map[a:1 b:2]");
        assert_eq!(
            run("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}").unwrap(),
            "a=1;b=2;"
        );
        assert_eq!(
            run("{{if .State.OOMKilled}}oom{{else}}ok{{end}}").unwrap(),
            "oom"
        );
        assert_eq!(run("{{.State.Status | upper}}").unwrap(), "EXITED");
        assert_eq!(run("a {{- \" b \" -}} c").unwrap(), "a b c");
        assert_eq!(
            run("{{if eq .State.ExitCode 137}}killed{{end}}").unwrap(),
            "killed"
        );
    }

    #[test]
    fn errors_are_worded_as_go_words_them() {
        assert_eq!(
            run("{{.State.Foo}}").unwrap_err(),
            r#"template: :1:8: executing "" at <.State.Foo>: map has no entry for key "Foo""#
        );
        assert_eq!(
            run("{{.Foo}}").unwrap_err(),
            r#"template: :1:2: executing "" at <.Foo>: map has no entry for key "Foo""#
        );
        assert_eq!(
            parse("{{foo .}}").unwrap_err(),
            r#"template: :1: function "foo" not defined"#
        );
        assert_eq!(
            parse("{{.Name").unwrap_err(),
            "template: :1: unclosed action"
        );
        assert_eq!(
            parse("{{if .Name}}x").unwrap_err(),
            "template: :1: unexpected EOF"
        );
        let typed = parse("{{.Foo}}")
            .unwrap()
            .execute(&state(), Missing::Typed("*formatter.ContainerContext"))
            .unwrap_err();
        assert_eq!(
            typed,
            r#"template: :1:2: executing "" at <.Foo>: can't evaluate field Foo in type *formatter.ContainerContext"#
        );
    }
}
