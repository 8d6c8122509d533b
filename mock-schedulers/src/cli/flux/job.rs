//! Fake `flux job attach`, `flux job status` and `flux job id` (`src/cmd/job/attach.c`,
//! `status.c`, `id.c`; options parsed by flux's optparse, GNU `getopt_long`).
//!
//! `flux job attach` follows a job by polling the daemon: it prints the job's output kept in
//! the fake's KVS (see `submit.rs`) as it grows, the redirect lines of `--output`/`--error`,
//! the fatal exception when there is one, and exits with the job's exit code once the job is
//! inactive. Jobs of `flux run` and `flux alloc` have no kept output (it went to their own
//! terminal): attaching to one waits for its end and reports it.

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

use super::info;
use super::{Fetch, NotAJobId, job_arg};
use crate::cli::Call;
use crate::cli::getopt::{self, HasArg, Opt, Parsed, opt};
use crate::flavor::flux::{self as rules, attr};
use crate::model::{Job, JobKind};

const USAGE: &str = "Usage: flux-job [OPTIONS] COMMAND ARGS
  -h, --help             Display this message.

Commands of the simulated cluster's flux job:
   attach    Interactively attach to job
   status    Wait for job(s) to complete and exit with largest exit code
   id        Convert jobid(s) to another form
";

/// Runs `flux job ...`; returns the exit code.
pub fn main(call: &mut Call, args: &[String]) -> i32 {
    let Some(sub) = args.first() else {
        eprint!("{USAGE}");
        return 1;
    };
    let rest = &args[1..];
    match sub.as_str() {
        "-h" | "--help" => {
            print!("{USAGE}");
            0
        }
        "attach" => attach(call, rest),
        "status" => status(call, rest),
        "id" => id(rest),
        _ => {
            eprint!("{USAGE}");
            1
        }
    }
}

fn parse(name: &str, args: &[String], spec: &[Opt]) -> Result<Parsed, i32> {
    let full = format!("flux-job {name}");
    let parsed = getopt::parse(&full, args, spec, false).map_err(|msg| {
        let msg = match msg.split_once(": invalid option -- ") {
            Some((prog, c)) => format!("{prog}: unrecognized option '-{}'", c.trim_matches('\'')),
            None => msg,
        };
        eprintln!("{msg}");
        eprintln!("Try `{full} --help' for more information.");
        1
    })?;
    Ok(parsed)
}

const ATTACH: &[Opt] = &[
    opt("show-events", Some('E'), HasArg::No),
    opt("show-exec", Some('X'), HasArg::No),
    opt("show-status", None, HasArg::No),
    opt("wait-event", Some('w'), HasArg::Required),
    opt("label-io", Some('l'), HasArg::No),
    opt("verbose", Some('v'), HasArg::No),
    opt("quiet", Some('q'), HasArg::No),
    opt("read-only", Some('r'), HasArg::No),
    opt("unbuffered", Some('u'), HasArg::No),
    opt("stdin-ranks", Some('i'), HasArg::Required),
    opt("tail", None, HasArg::Optional),
    opt("debug", None, HasArg::No),
    opt("debug-emulate", None, HasArg::No),
    opt("help", Some('h'), HasArg::No),
];

fn unreachable(e: &crate::client::Unreachable) -> i32 {
    eprintln!(
        "flux-job: flux_open: mock-cluster daemon not reachable at {}: {}",
        e.socket.display(),
        e.error
    );
    1
}

/// One stream of a job's output kept in the fake's KVS, read as it grows.
struct Tail {
    path: Option<String>,
    offset: u64,
}

impl Tail {
    fn pump(&mut self, to: &mut dyn Write) {
        let Some(path) = &self.path else { return };
        let Ok(mut f) = std::fs::File::open(path) else {
            return;
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut buf = Vec::new();
        if f.read_to_end(&mut buf).is_ok() && !buf.is_empty() {
            self.offset += buf.len() as u64;
            let _ = to.write_all(&buf);
            let _ = to.flush();
        }
    }
}

/// The job's streams kept in the KVS (those `--output`/`--error` did not redirect).
fn tails(job: &Job) -> (Tail, Tail) {
    let batch = job.req.kind == JobKind::Batch;
    let out_redirected = job.req.attributes.contains_key(attr::OUTPUT);
    let err_redirected = out_redirected || job.req.attributes.contains_key(attr::ERROR);
    let path = |p: &Option<String>, redirected: bool| {
        if batch && !redirected {
            p.clone()
        } else {
            None
        }
    };
    (
        Tail {
            path: path(&job.run.stdout_path, out_redirected),
            offset: 0,
        },
        Tail {
            path: path(&job.run.stderr_path, err_redirected),
            offset: 0,
        },
    )
}

/// The redirect lines of a job whose shell started (`attach.c` `handle_output_redirect`).
fn redirects(job: &Job) -> Vec<String> {
    let render = |t: &str| rules::render(t, job.id, &job.req, &job.first_node());
    let out = job.req.attributes.get(attr::OUTPUT).map(|t| render(t));
    let err = job.req.attributes.get(attr::ERROR).map(|t| render(t));
    let mut lines = Vec::new();
    if let Some(o) = &out {
        lines.push(format!("0: stdout redirected to {o}"));
    }
    if let Some(e) = err.as_ref().or(out.as_ref()) {
        lines.push(format!("0: stderr redirected to {e}"));
    }
    lines
}

/// The exit code of an inactive job as `attach.c` computes it, with its message printed to
/// `err`: the job shell's exit code, 1 when no shell finished (a job cancelled while
/// pending), at least 1 after a fatal exception.
fn finish(job: &Job, err: &mut dyn Write) -> i32 {
    let mut code = 1;
    if let Some(ws) = info::waitstatus(job) {
        let (c, msg) = info::exit_code(ws);
        code = c;
        if let Some(m) = msg {
            let _ = writeln!(err, "flux-job: {m}");
        }
    }
    if info::exception(job).is_some() && code == 0 {
        code = 1;
    }
    code
}

/// What `flux job attach` prints for an inactive job, all at once; returns its exit code.
pub fn replay(job: &Job, jobid: &str, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    if info::started(job) && !job.req.attributes.contains_key(attr::DENIED) {
        for line in redirects(job) {
            let _ = writeln!(err, "{line}");
        }
    }
    let (mut o, mut e) = tails(job);
    o.pump(out);
    e.pump(err);
    if let Some(x) = info::exception(job) {
        let _ = writeln!(err, "{}", info::exception_line(jobid, job, &x));
    }
    finish(job, err)
}

fn attach(call: &mut Call, args: &[String]) -> i32 {
    let parsed = match parse("attach", args, ATTACH) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if parsed.has("help") {
        println!("Usage: flux-job attach [OPTIONS] id");
        return 0;
    }
    let [text] = parsed.operands.as_slice() else {
        eprintln!("Usage: flux-job attach [OPTIONS] id");
        return 1;
    };
    let Ok(id) = job_arg(text) else {
        eprintln!("flux-job: error parsing jobid: \"{text}\"");
        return 1;
    };
    let no_such = || {
        eprintln!("flux-job: Failed to attach to {text}: No such job");
        1
    };
    let Some(id) = id else { return no_such() };
    let first = match super::fetch(call, Some(vec![id]), false) {
        Ok((jobs, _)) => jobs.into_iter().next(),
        Err(Fetch::Unreachable(e)) => return unreachable(&e),
        Err(Fetch::TimedOut | Fetch::Other(_)) => None,
    };
    let Some(mut job) = first else {
        return no_such();
    };
    let quiet = parsed.has("quiet");
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    let (mut out, mut err) = tails(&job);
    let mut redirected = false;
    let mut excepted = false;
    let dir = call.dir.clone();
    let mut delay = Duration::from_millis(10);
    loop {
        if out.path.is_none() && err.path.is_none() {
            // Paths are known once the job is known; they do not change.
            let (o, e) = tails(&job);
            out.path = o.path;
            err.path = e.path;
        }
        if info::started(&job) && !redirected {
            redirected = true;
            if !quiet {
                for line in redirects(&job) {
                    eprintln!("{line}");
                }
            }
        }
        out.pump(&mut stdout);
        err.pump(&mut stderr);
        if !excepted && let Some(x) = info::exception(&job) {
            excepted = true;
            eprintln!("{}", info::exception_line(text, &job, &x));
        }
        if job.run.state.is_finished() {
            out.pump(&mut stdout);
            err.pump(&mut stderr);
            return finish(&job, &mut stderr);
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(100));
        match super::wait_for(&dir, id, |_| true) {
            Some(j) => job = j,
            None => {
                eprintln!("flux-job: lost contact with the mock-cluster daemon");
                return 1;
            }
        }
    }
}

const STATUS: &[Opt] = &[
    opt("verbose", Some('v'), HasArg::No),
    opt("exception-exit-code", Some('e'), HasArg::Required),
    opt("json", Some('j'), HasArg::No),
    opt("help", Some('h'), HasArg::No),
];

/// `status.c` `status_to_exitcode`: 128 + signal, the exit status, 0 without a status.
fn status_to_exitcode(status: Option<i32>) -> i32 {
    match status {
        None => 0,
        Some(s) if s & 0x7f != 0 => 128 + (s & 0x7f),
        Some(s) => (s >> 8) & 0xff,
    }
}

fn status(call: &mut Call, args: &[String]) -> i32 {
    let parsed = match parse("status", args, STATUS) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let usage = "Usage: flux-job status [OPTIONS] id [id...]";
    if parsed.has("help") {
        println!("{usage}");
        return 0;
    }
    if parsed.operands.is_empty() {
        eprintln!("{usage}");
        return 1;
    }
    if parsed.has("json") {
        eprintln!("flux-job: --json is not supported by mock-cluster");
        return 1;
    }
    let exception_exit_code = match parsed.value("exception-exit-code") {
        None => 1,
        Some(v) => match v.trim().parse::<i32>() {
            Ok(n) => n,
            Err(_) => {
                eprintln!(
                    "flux-job status: Option 'exception-exit-code' requires an integer argument"
                );
                return 1;
            }
        },
    };
    let verbose = parsed.opts.iter().filter(|(l, _)| *l == "verbose").count();
    let mut ids = Vec::new();
    for text in &parsed.operands {
        match job_arg(text) {
            Ok(id) => ids.push((text.clone(), id)),
            Err(NotAJobId) => {
                eprintln!("flux-job: error parsing jobid: \"{text}\"");
                return 1;
            }
        }
    }
    if let Err(e) = call.conn() {
        return unreachable(&e);
    }
    if verbose > 0 && ids.len() > 1 {
        eprintln!("flux-job: fetching status for {} jobs", ids.len());
    }
    let dir = call.dir.clone();
    let mut finished = Vec::new();
    for (text, id) in &ids {
        let job = id.and_then(|id| super::wait_for(&dir, id, |j| j.run.state.is_finished()));
        finished.push((text, job));
    }
    if verbose > 0 && ids.len() > 1 {
        eprintln!("flux-job: all done.");
    }
    let mut exit_code = 0;
    for (text, job) in finished {
        let Some(job) = job else {
            eprintln!("flux-job: {text}: No such job");
            return 1;
        };
        let ws = info::waitstatus(&job);
        let code = status_to_exitcode(ws);
        exit_code = exit_code.max(code);
        let exception = info::exception(&job);
        if exception.is_some() && exception_exit_code > exit_code {
            exit_code = exception_exit_code;
        }
        if verbose > 0 {
            if let Some(s) = ws.filter(|s| s & 0x7f != 0) {
                eprintln!("flux-job: {text}: job shell died by signal {}", s & 0x7f);
            } else if verbose > 1 || code != 0 {
                match &exception {
                    Some(x) => eprintln!("flux-job: {text}: exception type={}", x.kind),
                    None => eprintln!("flux-job: {text}: exited with exit code {code}"),
                }
            }
        }
    }
    exit_code
}

const ID: &[Opt] = &[
    opt("to", Some('t'), HasArg::Required),
    opt("help", Some('h'), HasArg::No),
];

fn id(args: &[String]) -> i32 {
    let parsed = match parse("id", args, ID) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if parsed.has("help") {
        println!("Usage: flux-job id [--to=dec|kvs|hex|dothex|words|f58] [id...]");
        return 0;
    }
    let to = parsed.value("to").unwrap_or("dec");
    let unicode = super::caller_unicode();
    let convert = |src: &str| -> Result<String, i32> {
        let Some(fluid) = rules::parse_jobid(src) else {
            eprintln!("flux-job: {src}: malformed input");
            return Err(1);
        };
        match rules::encode(fluid, to, unicode) {
            Some(text) => Ok(text),
            None if matches!(to.to_ascii_lowercase().as_str(), "words" | "emoji") => {
                eprintln!("flux-job: --to={to} is not supported by mock-cluster");
                Err(1)
            }
            None => {
                eprintln!("flux-job: Unknown to={to}");
                Err(1)
            }
        }
    };
    let inputs: Vec<String> = if parsed.operands.is_empty() {
        let mut text = String::new();
        let _ = std::io::stdin().read_to_string(&mut text);
        text.lines().map(|l| l.trim().to_string()).collect()
    } else {
        parsed.operands.clone()
    };
    if inputs.is_empty() {
        return 1;
    }
    for src in inputs {
        match convert(&src) {
            Ok(text) => println!("{text}"),
            Err(code) => return code,
        }
    }
    0
}
