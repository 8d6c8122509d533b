//! Fake PBS `qsub` (reference 2.1; OpenPBS `src/cmds/qsub.c`, `src/cmds/qsub_sup.c`).

use crate::flavor::SchedulerAttributes;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use super::resources::{self, Chunk, SelectError};
use super::{Attrs, errno, exit_code};
use crate::cli::Call;
use crate::config::Cluster;
use crate::model::{Job, JobKind, JobRequest, JobState};
use crate::protocol::{CancelRequest, Request, Response};
use crate::units::TimeLimit;

/// qsub's option string (`GETOPT_ARGS` in `src/cmds/qsub_sup.c`).
const OPTSTRING: &str = "a:A:c:C:e:fhIj:J:k:l:m:M:N:o:p:q:r:R:S:u:v:VW:XzP:";

/// `usage` and `usage2` (`src/cmds/qsub_sup.c`, `print_usage`).
const USAGE: &str = "usage: qsub [-a date_time] [-A account_string] [-c interval]
\t[-C directive_prefix] [-e path] [-f ] [-h ] [-I [-X]] [-j oe|eo] [-J X-Y[:Z]]
\t[-k keep] [-l resource_list] [-m mail_options] [-M user_list]
\t[-N jobname] [-o path] [-p priority] [-P project] [-q queue] [-r y|n]
\t[-R o|e|oe] [-S path] [-u user_list] [-W otherattributes=value...]
\t[-v variable_list] [-V ] [-z] [script | -- command [arg1 ...]]
       qsub --version
";

/// `--help` of the simulated cluster (the real qsub has none and prints its usage).
pub const HELP: &str = "usage: qsub [options] [script | - | -- command [arg1 ...]]

Fake PBS qsub of mock-cluster: submits a batch job to the simulated cluster and prints
its id, <seq>.<server>. Options: -N -q -A -l -o -e -j -k -V -v -W block=true -h -z -S
-m -M -r -p -P -c -C -R -u -f, #PBS directives in the script.

Examples:
  qsub -N build -l walltime=00:10:00,select=1:ncpus=2:mem=1gb job.sh
  echo 'make test' | qsub -j oe -k oed -W block=true
  qsub -q gitlab-ci -- /bin/sleep 60
";

/// Precedence of an option: the command line wins over directives (`if_cmd_line` in
/// `process_opts`).
const CMDLINE: u8 = 3;
const DIRECTIVE: u8 = 2;

/// `BAD_W` (`src/cmds/qsub.c`).
const BAD_W: &str = "qsub: illegal -W value";

/// What the options asked for, command line and directives merged.
#[derive(Debug, Default)]
struct Opts {
    set_at: BTreeMap<char, u8>,
    account: Option<String>,
    project: Option<String>,
    checkpoint: Option<String>,
    prefix: Option<String>,
    error_path: Option<String>,
    output_path: Option<String>,
    hold: bool,
    join: Option<String>,
    keep: Option<String>,
    resources: Vec<(String, String)>,
    mail_points: Option<String>,
    mail_users: Option<String>,
    name: Option<String>,
    priority: Option<String>,
    destination: Option<String>,
    rerun: Option<String>,
    shell: Option<String>,
    variables: Option<Vec<(String, String)>>,
    export_all: bool,
    block: bool,
    quiet: bool,
    x11: bool,
}

/// Why option processing stops.
enum Stop {
    /// Exit now with this code (the message was printed).
    Exit(i32),
}

impl Opts {
    /// Whether an option may be set at `level` (`if_cmd_line`), recording that it was.
    fn may_set(&mut self, key: char, level: u8) -> bool {
        match self.set_at.get(&key) {
            Some(l) if *l > level => false,
            _ => {
                self.set_at.insert(key, level);
                true
            }
        }
    }

    /// `process_opts`: applies options; returns the number of errors (already reported).
    fn apply(&mut self, opts: &[(char, Option<String>)], level: u8) -> Result<u32, Stop> {
        let mut errors = 0;
        for (c, value) in opts {
            let v = value.clone().unwrap_or_default();
            match c {
                'a' => {
                    eprintln!("qsub: -a (deferred execution) is not supported by mock-cluster");
                    return Err(Stop::Exit(2));
                }
                'A' if self.may_set('A', level) => self.account = Some(v),
                'P' if self.may_set('P', level) => self.project = Some(v),
                'c' if self.may_set('c', level) => {
                    let v = v.trim_start().to_string();
                    if v == "u" {
                        eprintln!("qsub: illegal -c value");
                        errors += 1;
                    } else {
                        self.checkpoint = Some(v);
                    }
                }
                'C' if self.may_set('C', level) => self.prefix = Some(v),
                'e' if self.may_set('e', level) => self.error_path = Some(v),
                'h' if self.may_set('h', level) => self.hold = true,
                'f' => {}
                'I' => return Err(Stop::Exit(interactive_refused())),
                'j' if self.may_set('j', level) => self.join = Some(v),
                'J' => {
                    eprintln!("qsub: job arrays (-J) are not supported by mock-cluster");
                    return Err(Stop::Exit(2));
                }
                'k' if self.may_set('k', level) => self.keep = Some(v),
                'l' => match resources::parse_list(&v) {
                    Ok(list) => {
                        for (name, value) in list {
                            let existing = self.resources.iter().position(|(n, _)| *n == name);
                            match existing {
                                // The command line replaces, a directive only adds.
                                Some(i) if level == CMDLINE => self.resources[i].1 = value,
                                Some(_) => {}
                                None => self.resources.push((name, value)),
                            }
                        }
                    }
                    Err(()) => {
                        eprintln!("qsub: illegal -l value");
                        errors += 1;
                    }
                },
                'm' if self.may_set('m', level) => {
                    self.mail_points = Some(v.trim_start().to_string())
                }
                'M' if self.may_set('M', level) => self.mail_users = Some(v),
                'N' if self.may_set('N', level) => self.name = Some(v),
                'o' if self.may_set('o', level) => self.output_path = Some(v),
                'p' if self.may_set('p', level) => self.priority = Some(v.trim_start().into()),
                'q' if self.may_set('q', level) => self.destination = Some(v),
                'r' if self.may_set('r', level) => {
                    if v == "y" || v == "n" {
                        self.rerun = Some(v);
                    } else {
                        eprintln!("qsub: illegal -r value");
                        errors += 1;
                    }
                }
                'R' | 'u' => {}
                'S' if self.may_set('S', level) => self.shell = Some(v),
                'v' if self.may_set('v', level) => match expand_varlist(&v) {
                    Some(list) => self.variables = Some(list),
                    None => {
                        eprintln!("qsub: cannot send environment with the job");
                        return Err(Stop::Exit(1));
                    }
                },
                'V' if self.may_set('V', level) => self.export_all = true,
                'W' => errors += self.apply_w(&v, level)?,
                'X' if self.may_set('X', level) => {
                    if std::env::var_os("DISPLAY").is_none() {
                        eprintln!("qsub: DISPLAY not set");
                        errors += 1;
                    }
                    self.x11 = level == CMDLINE;
                }
                'z' if self.may_set('z', level) => self.quiet = true,
                _ => {}
            }
        }
        if self.x11 && errors == 0 {
            eprintln!("qsub: X11 Forwarding possible only for interactive jobs");
            return Err(Stop::Exit(1));
        }
        if errors == 0 && self.mail_points.as_deref().is_some_and(|m| m.contains('j')) {
            eprintln!("qsub: mail option 'j' can not be used without array job");
            return Err(Stop::Exit(1));
        }
        Ok(errors)
    }

    /// `-W attr=value[,attr=value]` (`parse_equal_string`).
    fn apply_w(&mut self, value: &str, level: u8) -> Result<u32, Stop> {
        let value = value.trim_start();
        if value.is_empty() {
            eprintln!("{BAD_W}");
            return Ok(1);
        }
        let Some(pairs) = parse_equal_list(value) else {
            eprintln!("{BAD_W}");
            return Ok(1);
        };
        for (key, val) in pairs {
            match key.as_str() {
                "block" if self.may_set('b', level) => {
                    if val.eq_ignore_ascii_case("true") {
                        self.block = true;
                    } else if val.eq_ignore_ascii_case("false") {
                        self.block = false;
                    } else {
                        eprintln!("{BAD_W}");
                        return Ok(1);
                    }
                }
                "interactive" => {
                    if val.eq_ignore_ascii_case("true") {
                        return Err(Stop::Exit(interactive_refused()));
                    } else if !val.eq_ignore_ascii_case("false") {
                        eprintln!("{BAD_W}");
                        return Ok(1);
                    }
                }
                "depend" => {
                    eprintln!(
                        "qsub: job dependencies (-W depend) are not supported by mock-cluster"
                    );
                    return Err(Stop::Exit(2));
                }
                "sandbox" if !val.eq_ignore_ascii_case("HOME") => {
                    eprintln!("qsub: -W sandbox={val} is not supported by mock-cluster");
                    return Err(Stop::Exit(2));
                }
                // Other attributes (umask, group_list, stagein, ...) are kept by the server and
                // change nothing the simulation shows.
                _ => {}
            }
        }
        Ok(0)
    }
}

/// `-I`: qsub needs a terminal (`interactive_port`); with one, the simulated cluster has no
/// interactive jobs.
fn interactive_refused() -> i32 {
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        eprintln!(
            "qsub:\tstandard input and output must be a terminal for\n\tinteractive job submission"
        );
    } else {
        eprintln!("qsub: interactive jobs (-I) are not supported by mock-cluster");
    }
    1
}

/// `name=value[,name=value]` as `parse_equal_string` splits it; `None` when malformed.
fn parse_equal_list(text: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    for item in split_unquoted_commas(text) {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let (k, v) = item.split_once('=')?;
        let k = k.trim();
        if k.is_empty() || k.contains(char::is_whitespace) {
            return None;
        }
        let v = v.trim();
        let v = v
            .strip_prefix(['"', '\''])
            .and_then(|x| x.strip_suffix(['"', '\'']))
            .unwrap_or(v);
        out.push((k.to_string(), v.to_string()));
    }
    Some(out)
}

/// Splits at commas outside quotes and not escaped by a backslash (`comma_token`).
fn split_unquoted_commas(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, '\\') => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (Some(q), c) if c == q => {
                quote = None;
                cur.push(c);
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                cur.push(c);
            }
            (None, ',') => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// `-v list` (`expand_varlist`): `NAME` takes its value from qsub's environment, `NAME=value`
/// is taken as given (quotes removed, `\` escapes); `PBS_O_*` names without a value are left
/// out. `None` when a named variable is not set or a quote is not closed.
fn expand_varlist(text: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    for token in split_unquoted_commas(text) {
        match token.split_once('=') {
            Some((name, raw)) => {
                let mut value = String::new();
                let mut quote = None;
                let mut chars = raw.chars();
                while let Some(c) = chars.next() {
                    match (quote, c) {
                        (_, '\\') => value.extend(chars.next()),
                        (Some(q), c) if c == q => quote = None,
                        (None, '"' | '\'') => quote = Some(c),
                        _ => value.push(c),
                    }
                }
                if quote.is_some() {
                    return None;
                }
                out.push((name.to_string(), value));
            }
            None if token.starts_with("PBS_O_") => {}
            None => out.push((token.clone(), std::env::var(&token).ok()?)),
        }
    }
    Some(out)
}

/// `make_argv`: a directive's words, with quotes and backslashes as qsub reads them.
fn directive_words(line: &str) -> Result<Vec<String>, ()> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut have = false;
    let mut chars = line.trim_start().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                have = true;
                loop {
                    match chars.next() {
                        Some(n) if n == c => break,
                        Some(n) => cur.push(n),
                        None => return Err(()),
                    }
                }
            }
            '\\' => {
                have = true;
                cur.extend(chars.next());
            }
            c if c.is_whitespace() => {
                if have {
                    words.push(std::mem::take(&mut cur));
                    have = false;
                }
                while chars.peek().is_some_and(|n| n.is_whitespace()) {
                    chars.next();
                }
            }
            c => {
                have = true;
                cur.push(c);
            }
        }
    }
    if have {
        words.push(cur);
    }
    Ok(words)
}

/// `pbs_isexecutable`: a line that ends the directive block.
fn is_executable(line: &str) -> bool {
    if line.starts_with(':') || line.starts_with("#!") {
        return false;
    }
    let t = line.trim_start();
    !t.is_empty() && !t.starts_with('#')
}

/// The directives of a script (`get_script`): lines starting with the prefix before the first
/// command, a trailing backslash continuing a directive on the next line. Returns them and the
/// script as qsub copies it (a continued directive joined into one line).
fn directives(script: &str, prefix: &str) -> Result<(Vec<String>, String), i32> {
    let mut out = Vec::new();
    let mut copy = String::with_capacity(script.len());
    let mut lines = script.split_inclusive('\n');
    let mut exec = false;
    while let Some(line) = lines.next() {
        if line.ends_with("\r\n") {
            eprintln!("qsub: script contains cr, lf");
            return Err(1);
        }
        if exec {
            copy.push_str(line);
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if !prefix.is_empty() && line[indent..].starts_with(prefix) {
            let mut whole = line.to_string();
            // pbs_extendable_line: a backslash at the end (before white space) continues; the
            // backslash goes, the next line is appended as it is.
            while whole.trim_end().ends_with('\\') {
                let cut = whole.trim_end().len() - 1;
                whole.truncate(cut);
                match lines.next() {
                    Some(next) => whole.push_str(next),
                    None => break,
                }
            }
            let text = whole[indent + prefix.len()..].trim_end_matches('\n');
            out.push(text.to_string());
            copy.push_str(&whole);
        } else {
            if is_executable(line) {
                exec = true;
            }
            copy.push_str(line);
        }
    }
    Ok((out, copy))
}

/// `prepare_path`: an `-o`/`-e` value as an absolute path on this (single) file system; a
/// directory gets a trailing `/`. `None` for a value PBS refuses.
fn prepare_path(value: &str, cwd: &str) -> Option<String> {
    let v = value.trim_start();
    if v.is_empty() {
        return None;
    }
    let mut path = v;
    let host_len = v
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        .count();
    if v.contains(':') {
        match v[host_len..].chars().next() {
            Some(':') => path = &v[host_len + 1..],
            Some('/') => {}
            _ => return None,
        }
    }
    if path.is_empty() || !path.chars().all(|c| (' '..='~').contains(&c)) {
        return None;
    }
    let mut p = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{}/{path}", cwd.trim_end_matches('/'))
    };
    if !p.ends_with('/') && std::path::Path::new(&p).is_dir() {
        p.push('/');
    }
    Some(p)
}

/// A literal path in the daemon's output pattern language (`%` doubled).
fn literal(path: &str) -> String {
    path.replace('%', "%%")
}

/// The output pattern of a prepared path: a directory holds `<seq>.<server>.OU` (or `.ER`)
/// (`is_direct_write` in `src/resmom/stage_func.c`).
fn path_pattern(prepared: &str, server: &str, suffix: &str) -> String {
    if prepared.ends_with('/') {
        format!("{}%j.{}{suffix}", literal(prepared), literal(server))
    } else {
        literal(prepared)
    }
}

/// `check_job_name` (`src/lib/Libcmds/ck_job_name.c`): letters, digits, `- _ + .`; at most
/// `PBS_MAXJOBNAME` (230) characters.
fn check_job_name(name: &str) -> Result<(), &'static str> {
    if name.len() > 230 {
        return Err("qsub: Job name is too long ");
    }
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+' | '.'))
    {
        return Err("qsub: illegal -N value");
    }
    Ok(())
}

/// `verify_keepfiles_common`.
fn valid_keep(k: &str) -> bool {
    if k.is_empty() || !k.chars().all(|c| matches!(c, 'o' | 'e' | 'd' | 'n')) {
        return false;
    }
    let keep = k.contains(['o', 'e']);
    let none = k.contains('n');
    let direct = k.contains('d');
    !(keep && none || direct && !(keep || none))
}

/// `verify_value_mailpoints`.
fn valid_mail_points(m: &str) -> bool {
    m == "n" || (!m.is_empty() && m != "j" && m.chars().all(|c| matches!(c, 'a' | 'b' | 'e' | 'j')))
}

/// How one output stream reaches its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    /// Spooled on the node and copied to its path at the end (the default).
    Staged,
    /// Written directly to its final path (`-k d` with the stream's letter).
    Direct,
    /// Left in the job's home directory on the node under its default name (`-k o`/`-k e`).
    Kept,
}

fn delivery(keep: &str, stream: char) -> Delivery {
    if !keep.contains(stream) {
        Delivery::Staged
    } else if keep.contains('d') {
        Delivery::Direct
    } else {
        Delivery::Kept
    }
}

static SIGNALLED: AtomicI32 = AtomicI32::new(0);

extern "C" fn note_signal(sig: libc::c_int) {
    SIGNALLED.store(sig, Ordering::SeqCst);
}

/// The user's login shell, else `/bin/sh`.
fn login_shell(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.shell.display().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "/bin/sh".into())
}

/// The submit directory: `$PWD` when it is `.`, else the working directory (`job_env_basic`).
fn submit_dir() -> String {
    let cwd = std::env::current_dir().ok();
    if let (Some(pwd), Some(cwd)) = (std::env::var_os("PWD"), &cwd) {
        use std::os::unix::fs::MetadataExt;
        let same = std::fs::metadata(&pwd)
            .ok()
            .zip(std::fs::metadata(cwd).ok())
            .is_some_and(|(a, b)| a.dev() == b.dev() && a.ino() == b.ino());
        if same {
            return pwd.to_string_lossy().into_owned();
        }
    }
    cwd.map_or_else(|| "/".into(), |c| c.display().to_string())
}

/// Runs qsub; returns the exit code.
pub fn main(call: &mut Call) -> i32 {
    let args = call.args();
    if args.len() == 1 && args[0] == "--help" {
        print!("{HELP}");
        return 0;
    }
    let usage = |code: i32| {
        eprint!("{USAGE}");
        code
    };
    let cli = match super::getopt("qsub", &args, OPTSTRING, false) {
        Ok(o) => o,
        Err(msg) => {
            eprintln!("{msg}");
            return usage(2);
        }
    };
    let mut o = Opts::default();
    let errors = match o.apply(&cli.opts, CMDLINE) {
        Ok(n) => n,
        Err(Stop::Exit(code)) => return code,
    };
    // A script must be the last argument; `--` must be followed by the command.
    let operands_ok = if cli.dashdash {
        !cli.operands.is_empty()
    } else {
        cli.operands.len() <= 1
    };
    if errors > 0 || !operands_ok {
        return usage(2);
    }
    // The script: `-- command`, a file, or standard input.
    let script_name;
    let mut script;
    let mut executable = None;
    let mut argument_list = Vec::new();
    if cli.dashdash {
        script_name = "STDIN".to_string();
        executable = cli.operands.first().cloned();
        argument_list = cli.operands[1..].to_vec();
        script = String::new();
    } else {
        match cli.operands.first().map(String::as_str) {
            None | Some("-") => {
                if std::io::stdin().is_terminal() {
                    println!("Job script will be read from standard input. Submit with CTRL+D.");
                }
                let mut buf = Vec::new();
                if std::io::stdin().read_to_end(&mut buf).is_err() {
                    eprintln!("qsub: error reading script file");
                    return 1;
                }
                script_name = "STDIN".into();
                script = String::from_utf8_lossy(&buf).into_owned();
            }
            Some(path) => {
                let meta = match std::fs::metadata(path) {
                    Ok(m) => m,
                    Err(e) => {
                        eprintln!("qsub: script file:: {}", io_text(&e));
                        return 1;
                    }
                };
                if !meta.is_file() {
                    eprintln!("qsub: script not a file");
                    return 1;
                }
                let bytes = match std::fs::read(path) {
                    Ok(b) => b,
                    Err(e) => {
                        eprintln!("qsub: opening script file:: {}", io_text(&e));
                        return 8;
                    }
                };
                script_name = path.rsplit('/').next().unwrap_or(path).to_string();
                script = String::from_utf8_lossy(&bytes).into_owned();
            }
        }
        // #PBS directives (the command line wins; `-C` or PBS_DPREFIX change the prefix).
        let prefix = match &o.prefix {
            Some(p) => p.clone(),
            None => std::env::var("PBS_DPREFIX").unwrap_or_else(|_| "#PBS".into()),
        };
        let lines = match directives(&script, &prefix) {
            Ok((lines, copy)) => {
                script = copy;
                lines
            }
            Err(code) => return code,
        };
        for line in lines {
            let Ok(words) = directive_words(&line) else {
                eprintln!("qsub: unmatched ");
                return 1;
            };
            let failed = match super::getopt("qsub", &words, OPTSTRING, true) {
                Err(msg) => {
                    eprintln!("{msg}");
                    true
                }
                Ok(d) => match o.apply(&d.opts, DIRECTIVE) {
                    Ok(n) => n > 0 || !d.operands.is_empty() || d.dashdash,
                    Err(Stop::Exit(code)) => return code,
                },
            };
            if failed {
                let mut msg = "qsub: directive error: ".to_string();
                for w in &words {
                    msg.push_str(w);
                    msg.push(' ');
                }
                eprintln!("{msg}");
                return 1;
            }
        }
    }
    if o.shell.is_none()
        && let Ok(s) = std::env::var("PBS_SHELL")
    {
        o.shell = Some(s);
    }
    let cluster = super::cluster(&call.dir);
    let server = cluster.cluster_name.clone();
    // -q queue[@server]: parse_destination_id.
    let mut queue = None;
    if let Some(dest) = &o.destination {
        let (q, s) = match dest.split_once('@') {
            Some((q, s)) => (q, Some(s)),
            None => (dest.as_str(), None),
        };
        if s.is_some_and(|s| s.is_empty()) {
            eprintln!("qsub: illegally formed destination: {dest}");
            return 2;
        }
        if let Some(s) = s
            && !s.eq_ignore_ascii_case(&server)
        {
            // No other server resolves in the simulated cluster (cnt2server, do_connect).
            eprintln!("Unknown Host.");
            eprintln!("qsub: cannot connect to server {server} (errno=15008)");
            return exit_code(15008);
        }
        if !q.is_empty() {
            queue = Some(q.to_string());
        }
    }
    let (user, uid, gid) = crate::cli::slurm::identity();
    let cwd = submit_dir();
    let home = std::env::var("HOME").ok().filter(|h| !h.is_empty());
    let work_dir = home.clone().unwrap_or_else(|| cwd.clone());
    let name = o.name.clone().unwrap_or(script_name);
    // Client-side attribute checks (the IFL's ECL verification, src/lib/Libecl).
    let illegal = |opt: char| {
        eprintln!("qsub: illegal -{opt} value");
        usage(2)
    };
    match check_job_name(&name) {
        Ok(()) => {}
        Err(msg) if msg.contains("illegal") => {
            eprintln!("{msg}");
            return usage(2);
        }
        Err(msg) => {
            eprintln!("{msg}");
            return 2;
        }
    }
    let output = match o.output_path.as_deref().map(|p| prepare_path(p, &cwd)) {
        Some(None) => return illegal('o'),
        Some(Some(p)) => Some(p),
        None => None,
    };
    let error = match o.error_path.as_deref().map(|p| prepare_path(p, &cwd)) {
        Some(None) => return illegal('e'),
        Some(Some(p)) => Some(p),
        None => None,
    };
    let join = o.join.clone().unwrap_or_else(|| "n".into());
    if !matches!(join.as_str(), "oe" | "eo" | "n") {
        return illegal('j');
    }
    let keep = o.keep.clone().unwrap_or_else(|| "n".into());
    if !valid_keep(&keep) {
        return illegal('k');
    }
    let mail_points = o.mail_points.clone().unwrap_or_else(|| "a".into());
    if !valid_mail_points(&mail_points) {
        return illegal('m');
    }
    let priority = match o.priority.as_deref().map(str::parse::<i64>) {
        None => 0,
        Some(Ok(p)) if (-1024..=1023).contains(&p) => p,
        Some(_) => return illegal('p'),
    };
    if let Some(c) = &o.checkpoint
        && !valid_checkpoint(c)
    {
        return illegal('c');
    }
    // Resources: value types (client side), then names (server side).
    for (rname, value) in &o.resources {
        if resources::KNOWN.contains(&rname.as_str()) && !resources::valid_value(rname, value) {
            eprintln!("qsub: Illegal attribute or resource value Resource_List.{rname}");
            return exit_code(errno::BADATVAL);
        }
    }
    let request = match resource_request(&o.resources, queue.as_deref(), &cluster) {
        Ok(r) => r,
        Err(code) => return code,
    };
    // Output paths and how each stream is delivered (qsub.1B -o -e -j -k).
    let out_final = match &output {
        Some(p) => path_pattern(p, &server, ".OU"),
        None => format!(
            "{}/{}.o%j",
            literal(cwd.trim_end_matches('/')),
            literal(&name)
        ),
    };
    let err_final = match &error {
        Some(p) => path_pattern(p, &server, ".ER"),
        None => format!(
            "{}/{}.e%j",
            literal(cwd.trim_end_matches('/')),
            literal(&name)
        ),
    };
    let kept = |letter: char| {
        format!(
            "{}/{}.{letter}%j",
            literal(work_dir.trim_end_matches('/')),
            literal(&name)
        )
    };
    let (out_mode, err_mode) = (delivery(&keep, 'o'), delivery(&keep, 'e'));
    let target = |mode: Delivery, final_path: &str, letter: char| match mode {
        Delivery::Kept => kept(letter),
        _ => final_path.to_string(),
    };
    let (stdout_pattern, stderr_pattern, modes) = match join.as_str() {
        "oe" => {
            let t = target(out_mode, &out_final, 'o');
            (t.clone(), t, vec![out_mode])
        }
        "eo" => {
            let t = target(err_mode, &err_final, 'e');
            (t.clone(), t, vec![err_mode])
        }
        _ => (
            target(out_mode, &out_final, 'o'),
            target(err_mode, &err_final, 'e'),
            vec![out_mode, err_mode],
        ),
    };
    if [&stdout_pattern, &stderr_pattern]
        .iter()
        .any(|p| p.contains('\\'))
    {
        eprintln!("qsub: mock-cluster cannot write output paths that contain a backslash");
        return 2;
    }
    // The daemon stages both streams or neither: a stream written directly or kept on the
    // node makes both live.
    let stage_out = modes.iter().all(|m| *m == Delivery::Staged);
    // The job's environment: qsub's Variable_List (job_env_basic, -v, -V).
    let mut variables: Vec<(String, String)> = Vec::new();
    let env = crate::cli::environment();
    variables.push((
        "PBS_O_HOME".into(),
        home.clone().unwrap_or_else(|| "/".into()),
    ));
    for (var, pbs) in [
        ("LANG", "PBS_O_LANG"),
        ("LOGNAME", "PBS_O_LOGNAME"),
        ("PATH", "PBS_O_PATH"),
        ("MAIL", "PBS_O_MAIL"),
        ("SHELL", "PBS_O_SHELL"),
        ("TZ", "PBS_O_TZ"),
    ] {
        if let Some(v) = env.get(var) {
            variables.push((pbs.into(), v.clone()));
        }
    }
    variables.push(("PBS_O_WORKDIR".into(), cwd.clone()));
    variables.push(("PBS_O_SYSTEM".into(), uname_sysname()));
    for (k, v) in o.variables.iter().flatten() {
        if !k.starts_with("PBS_O_") {
            variables.push((k.clone(), v.clone()));
        }
    }
    if o.export_all {
        for (k, v) in &env {
            if !k.starts_with("PBS_O_") && k != "PBS_JOBCOOKIE" && k != "PBS_INTERACTIVE_COOKIE" {
                variables.push((k.clone(), v.clone()));
            }
        }
    }
    let queue_name = queue
        .clone()
        .or_else(|| cluster.default_partition().map(|p| p.name.clone()))
        .unwrap_or_default();
    let submit_host = crate::host::short_hostname();
    variables.push(("PBS_O_QUEUE".into(), queue_name));
    variables.push(("PBS_O_HOST".into(), submit_host.clone()));
    let mut job_env: BTreeMap<String, String> = variables.iter().cloned().collect();
    // What the node's login environment provides: PBS's commands on PATH (here the fakes),
    // and the simulated cluster the commands talk to.
    job_env.entry("PATH".into()).or_insert_with(|| {
        format!(
            "{}:/usr/local/bin:/usr/bin:/bin",
            call.dir.join("bin").display()
        )
    });
    job_env.insert(
        crate::client::STATE_DIR_ENV.into(),
        call.dir.display().to_string(),
    );
    // The shell: -S (first path), PBS_SHELL, else the login shell; a script without `#!`
    // runs under it, as pbs_mom's login shell runs it.
    let shell = o
        .shell
        .as_deref()
        .and_then(|s| s.split(',').next())
        .map(|s| s.split('@').next().unwrap_or(s).to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| login_shell(uid));
    // What Slurm's views of the job show as its command: the script or the executable.
    let command = match (&executable, cli.operands.first()) {
        (Some(exe), _) => std::iter::once(exe.clone())
            .chain(argument_list.iter().cloned())
            .collect::<Vec<_>>()
            .join(" "),
        (None, Some(p)) if p != "-" => {
            std::fs::canonicalize(p).map_or_else(|_| p.clone(), |c| c.display().to_string())
        }
        _ => "STDIN".into(),
    };
    let script_args;
    if let Some(exe) = &executable {
        script = "#!/bin/sh\nexec \"$@\"\n".into();
        let mut a = vec![exe.clone()];
        a.extend(argument_list.iter().cloned());
        script_args = a;
    } else {
        if !script.starts_with("#!") {
            script = format!("#!{shell}\n{script}");
        }
        script_args = Vec::new();
    }
    let attrs = Attrs {
        submit_arguments: args.clone(),
        variable_list: variables,
        output_path: out_final,
        error_path: err_final,
        join_path: join,
        keep_files: keep,
        mail_points,
        mail_users: o.mail_users.clone(),
        rerunable: o.rerun.as_deref() != Some("n"),
        priority,
        checkpoint: o.checkpoint.clone().unwrap_or_else(|| "u".into()),
        project: o
            .project
            .clone()
            .unwrap_or_else(|| "_pbs_project_default".into()),
        resources: request.shown,
        shell,
        shell_path_list: o.shell.clone(),
        block: o.block,
        executable,
        argument_list,
        submit_host: submit_host.clone(),
        server: server.clone(),
    };
    let req = JobRequest {
        kind: JobKind::Batch,
        name,
        partition: queue,
        qos: None,
        account: o.account.clone(),
        time_limit: request.walltime.map(TimeLimit::Seconds),
        ntasks: Some(request.ntasks),
        cpus_per_task: Some(request.cpus_per_task),
        nodes: Some(request.nodes),
        mem_mb: Some(request.mem_mb_per_node),
        mem_per_cpu_mb: None,
        nodelist: None,
        constraint: None,
        exclude: None,
        ntasks_per_node: None,
        nice: 0,
        priority: None,
        exclusive: request.exclusive,
        hold: o.hold,
        begin: None,
        begin_after: None,
        immediate: false,
        signal: None,
        signal_batch_shell: false,
        no_requeue: false,
        work_dir,
        submit_dir: cwd,
        submit_host,
        stdout: Some(stdout_pattern),
        stderr: Some(stderr_pattern),
        stdin: None,
        append: false,
        script: Some(script),
        args: script_args,
        env: job_env,
        user,
        uid,
        gid,
        command,
        name_from_stdin: false,
        flavor: crate::flavor::Flavor::Pbs,
        stage_out,
        debug_log: None,
        attributes: attrs.to_attributes(),
        relations: Default::default(),
    };
    let conn = match call.conn() {
        Ok(c) => c,
        Err(e) => {
            super::print_unreachable(call, &e, &server);
            return libc::ECONNREFUSED;
        }
    };
    let id = match conn.call(&Request::Submit {
        req: Box::new(req),
        wait: o.block,
    }) {
        Ok(Response::Submitted { id }) => id,
        Ok(Response::Error { detail, message }) => {
            let code = detail
                .first()
                .and_then(|d| d.parse::<i32>().ok())
                .unwrap_or(errno::PROTOCOL);
            eprintln!("qsub: {message}");
            return exit_code(code);
        }
        Ok(_) | Err(_) => {
            eprintln!("qsub: Error ({}) submitting job", errno::PROTOCOL);
            return exit_code(errno::PROTOCOL);
        }
    };
    call.set_job_id(id);
    let full_id = format!("{id}.{server}");
    if o.block {
        // block() catches these before it waits; here they are caught before the id is out,
        // so whoever saw the id can count on a signal deleting the job.
        for sig in [libc::SIGHUP, libc::SIGINT, libc::SIGQUIT, libc::SIGTERM] {
            // SAFETY: the handler only stores into an atomic.
            unsafe {
                libc::signal(sig, note_signal as *const () as libc::sighandler_t);
            }
        }
    }
    if !o.quiet {
        println!("{full_id}");
    }
    if !o.block {
        return 0;
    }
    let _ = std::io::stdout().flush();
    block(call, id, &full_id, uid)
}

/// The text perror prints for an I/O error (without Rust's "(os error N)").
fn io_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// `verify_value_checkpoint`.
fn valid_checkpoint(c: &str) -> bool {
    if c.len() == 1 {
        return matches!(c, "n" | "s" | "c" | "w" | "u");
    }
    match c.split_once('=') {
        Some(("c" | "w", n)) => !n.is_empty() && n.chars().all(|d| d.is_ascii_digit()),
        _ => false,
    }
}

/// The system name PBS_O_SYSTEM carries (`uname -s`).
fn uname_sysname() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.sysname().to_string_lossy().into_owned())
        .unwrap_or_else(|_| "Linux".into())
}

/// What a job's resources ask of the simulated cluster, and how PBS shows them.
#[derive(Debug, Clone, PartialEq)]
struct ResourceRequest {
    walltime: Option<u64>,
    nodes: u32,
    ntasks: u32,
    cpus_per_task: u32,
    mem_mb_per_node: u64,
    exclusive: bool,
    /// `Resource_List` as qstat shows it, sorted by name.
    shown: Vec<(String, String)>,
}

/// Turns `-l` resources into a request: `select` chunks (or the old `nodes=`, or job-wide
/// `ncpus`/`mem`), `place`, `walltime`. Unknown names and limits over the queue's are refused
/// as the server refuses them.
fn resource_request(
    list: &[(String, String)],
    queue: Option<&str>,
    cluster: &Cluster,
) -> Result<ResourceRequest, i32> {
    let get = |n: &str| {
        list.iter()
            .rev()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    for (name, _) in list {
        if !resources::KNOWN.contains(&name.as_str()) {
            eprintln!("qsub: Unknown resource");
            return Err(exit_code(errno::UNKRESC));
        }
    }
    let bad_value = |name: &str| {
        eprintln!("qsub: Illegal attribute or resource value Resource_List.{name}");
        exit_code(errno::BADATVAL)
    };
    let (chunks, derived) = match (get("select"), get("nodes")) {
        (Some(sel), _) => match resources::parse_select(sel) {
            Ok(c) => (c, false),
            Err(SelectError::Unknown(r)) => {
                eprintln!("qsub: Unknown resource: {r}");
                return Err(exit_code(errno::UNKRESC));
            }
            Err(_) => return Err(bad_value("select")),
        },
        (None, Some(nodes)) => (resources::nodes_to_chunks(nodes), false),
        (None, None) => {
            // The server turns job-wide resources into one chunk (svr_jobfunc.c).
            let mut res = vec![("ncpus".to_string(), get("ncpus").unwrap_or("1").to_string())];
            if let Some(m) = get("mem") {
                res.push(("mem".to_string(), m.to_string()));
            }
            (
                vec![Chunk {
                    count: 1,
                    resources: res,
                }],
                true,
            )
        }
    };
    let total: u32 = chunks.iter().map(|c| c.count).sum::<u32>().max(1);
    let cpus_per_chunk = chunks.iter().map(Chunk::ncpus).max().unwrap_or(1).max(1);
    let mem_per_chunk = chunks.iter().filter_map(Chunk::mem).max();
    let ncpus_sum: u64 = chunks
        .iter()
        .map(|c| u64::from(c.count) * u64::from(c.ncpus()))
        .sum();
    let mut mem_sum: Option<u64> = None;
    for c in &chunks {
        if let Some(m) = c.mem() {
            let sum = m
                .checked_mul(u64::from(c.count))
                .and_then(|m| m.checked_add(mem_sum.unwrap_or(0)));
            match sum {
                Some(s) => mem_sum = Some(s),
                None => return Err(bad_value("mem")),
            }
        }
    }
    let place = get("place").map(str::to_string);
    let walltime = get("walltime").and_then(resources::parse_time);
    let partition = match queue {
        Some(q) => cluster.partition(q),
        None => cluster.default_partition(),
    };
    // A queue's maximum walltime (resources_max): longer requests are refused, shorter ones
    // run; a job that names none gets the maximum (as resources_default).
    let queue_max = partition.and_then(|p| p.max_time.seconds());
    if let (Some(w), Some(max)) = (walltime, queue_max)
        && w > max
    {
        eprintln!("qsub: Job violates queue and/or server resource limits");
        return Err(exit_code(errno::EXCQRESC));
    }
    let walltime = walltime.or(queue_max);
    // Placement: scatter puts one chunk per node, pack all on one; free (the default) packs
    // when the chunks fit the largest node of the queue.
    let words: Vec<&str> = place.as_deref().unwrap_or("").split(':').collect();
    let exclusive = words.contains(&"excl") || words.contains(&"exclhost");
    let scatter = words.contains(&"scatter") || words.contains(&"vscatter");
    let pack = words.contains(&"pack");
    let (max_cpus, max_mem) = partition
        .map(|p| {
            p.nodes
                .iter()
                .filter_map(|n| cluster.node(n))
                .fold((0u64, 0u64), |(c, m), n| {
                    (c.max(u64::from(n.cpus)), m.max(n.memory_mb))
                })
        })
        .unwrap_or((u64::MAX, u64::MAX));
    let mb = |bytes: u64| bytes.div_ceil(1 << 20).max(1);
    let fits_one = ncpus_sum <= max_cpus && mem_sum.is_none_or(|m| mb(m) <= max_mem);
    let one_node = !scatter && (pack || fits_one);
    let (nodes, mem_mb_per_node) = if one_node {
        (1, mem_sum.map_or(1, mb))
    } else {
        (total, mem_per_chunk.map_or(1, mb))
    };
    // Resource_List as the server keeps it: chunk sums as job-wide limits (set_chunk_sums).
    let mut shown: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in list {
        let v = if let Some(t) = resources::parse_time(v).filter(|_| {
            matches!(
                k.as_str(),
                "walltime" | "cput" | "pcput" | "soft_walltime" | "min_walltime" | "max_walltime"
            )
        }) {
            resources::format_time(t)
        } else if let Some((_, s)) = resources::parse_size(v)
            .filter(|_| matches!(k.as_str(), "mem" | "vmem" | "pmem" | "pvmem" | "file"))
        {
            s
        } else {
            v.clone()
        };
        shown.insert(k.clone(), v);
    }
    shown.remove("nodes");
    shown.insert("select".into(), resources::format_select(&chunks));
    shown.insert("ncpus".into(), ncpus_sum.to_string());
    shown.insert("nodect".into(), total.to_string());
    if let Some(m) = mem_sum
        && !(derived && get("mem").is_some())
    {
        shown.insert("mem".into(), resources::format_bytes(m));
    }
    shown
        .entry("place".into())
        .or_insert_with(|| if derived { "pack" } else { "free" }.into());
    if let Some(w) = walltime {
        shown.insert("walltime".into(), resources::format_time(w));
    }
    Ok(ResourceRequest {
        walltime,
        nodes,
        ntasks: total,
        cpus_per_task: cpus_per_chunk,
        mem_mb_per_node,
        exclusive,
        shown: shown.into_iter().collect(),
    })
}

/// `-W block=true` (`block()` in `src/cmds/qsub.c`, `check_block()` in
/// `src/server/svr_jobfunc.c`): waits for the job's end and exits with its Exit_status (low 8
/// bits); a deleted job gives 3 and `qsub: <id> Job to be deleted at request of <user>@<host>`
/// as soon as the deletion starts (`acct_del_write` in `src/server/req_delete.c`); SIGHUP,
/// SIGINT, SIGQUIT or SIGTERM delete the job and exit 2 (`bailout`).
fn block(call: &mut Call, id: u32, full_id: &str, uid: u32) -> i32 {
    let dir = call.dir.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    if let Ok(mut conn) = call.take_conn() {
        std::thread::spawn(move || {
            let _ = tx.send(conn.recv());
        });
    }
    let mut poll: Option<crate::client::Conn> = None;
    loop {
        if let Ok(Ok(Response::Finished { job })) = rx.recv_timeout(Duration::from_millis(100)) {
            return block_end(&job, full_id);
        }
        let sig = SIGNALLED.load(Ordering::SeqCst);
        if sig != 0 {
            eprintln!("qsub: wait for job {full_id} interrupted by signal {sig}");
            println!("Job {full_id} is being deleted");
            let _ = std::io::stdout().flush();
            if let Ok(mut c) = crate::client::Conn::connect_or_start(&dir) {
                let _ = c.call(&Request::Cancel(CancelRequest {
                    ids: vec![id],
                    uid,
                    ..CancelRequest::default()
                }));
            }
            return 2;
        }
        // The server's word on a deletion comes before the job's end; after a daemon restart
        // this poll is also what sees the end.
        if poll.is_none() {
            poll = crate::client::Conn::connect_or_start(&dir).ok();
        }
        let answer = poll.as_mut().map(|c| {
            c.call(&Request::Jobs {
                ids: Some(vec![id]),
                accounting: true,
                status_command: false,
            })
        });
        match answer {
            Some(Ok(Response::Jobs { jobs, .. })) => {
                if let Some(job) = jobs.first()
                    && (job.run.state.is_finished() || deleted(job))
                {
                    return block_end(job, full_id);
                }
            }
            _ => poll = None,
        }
    }
}

/// Whether the job is being deleted by qdel (its kill has started on a user's request).
fn deleted(job: &Job) -> bool {
    job.run.cancelled_by.is_some()
        && (job.run.state == JobState::Cancelled || job.run.ending == Some(JobState::Cancelled))
}

/// qsub's exit once the server has replied to a blocking job.
fn block_end(job: &Job, full_id: &str) -> i32 {
    if deleted(job) {
        let who = job
            .run
            .cancelled_by
            .map(super::user_name)
            .unwrap_or_default();
        eprintln!(
            "qsub: {full_id} Job to be deleted at request of {}",
            super::user_at_host(&who)
        );
        return 3;
    }
    // A job that never ran and was not deleted has no exit status; qsub's protocol-error exit
    // is the closest (choice where the source has no case).
    super::exit_status(job).map_or(3, |s| (s & 0xff) as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_stop_at_the_first_command() {
        let script = "#!/bin/sh\n#PBS -N a\n\n# comment\n  #PBS -l walltime=1:00 \\\n,mem=1gb\necho hi\n#PBS -N b\n";
        let (lines, copy) = directives(script, "#PBS").unwrap();
        assert_eq!(lines, vec![" -N a", " -l walltime=1:00 ,mem=1gb"]);
        assert_eq!(
            copy,
            "#!/bin/sh\n#PBS -N a\n\n# comment\n  #PBS -l walltime=1:00 ,mem=1gb\necho hi\n#PBS -N b\n"
        );
        assert_eq!(directives("#PBS -N a\r\n", "#PBS"), Err(1));
        assert!(directives("#PBS -N a\n", "").unwrap().0.is_empty());
    }

    #[test]
    fn directive_words_honour_quotes() {
        assert_eq!(
            directive_words(r#" -N "a b" -v X='1,2' c\ d"#).unwrap(),
            vec!["-N", "a b", "-v", "X=1,2", "c d"]
        );
        assert!(directive_words("-N 'open").is_err());
    }

    #[test]
    fn varlists_expand_like_qsub() {
        assert_eq!(
            expand_varlist("A=1,B='x,y',PBS_O_HOME").unwrap(),
            vec![
                ("A".to_string(), "1".to_string()),
                ("B".to_string(), "x,y".to_string())
            ]
        );
        assert!(expand_varlist("MOCK_CLUSTER_SURELY_UNSET_VARIABLE").is_none());
    }

    #[test]
    fn paths_are_prepared_like_prepare_path() {
        assert_eq!(prepare_path("out.txt", "/w").unwrap(), "/w/out.txt");
        assert_eq!(prepare_path("host:/a/b", "/w").unwrap(), "/a/b");
        assert_eq!(prepare_path("/tmp", "/w").unwrap(), "/tmp/");
        assert_eq!(prepare_path("a:b/c:d", "/w").unwrap(), "/w/b/c:d");
        assert_eq!(prepare_path("a b:c", "/w"), None);
        assert_eq!(prepare_path("   ", "/w"), None);
        assert_eq!(prepare_path("caf\u{e9}", "/w"), None);
    }

    #[test]
    fn keep_and_mail_values_follow_the_verifiers() {
        assert!(valid_keep("oed") && valid_keep("n") && valid_keep("nd") && valid_keep("eo"));
        assert!(!valid_keep("d") && !valid_keep("on") && !valid_keep("x"));
        assert!(valid_mail_points("abe") && valid_mail_points("n"));
        assert!(!valid_mail_points("j") && !valid_mail_points("an"));
        assert_eq!(check_job_name("build-1.sh"), Ok(()));
        assert!(check_job_name("a b").is_err());
    }
}
