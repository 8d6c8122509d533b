//! Fake `flux jobs` (`src/cmd/flux-jobs.py`; fields and headings from
//! `src/bindings/python/flux/job/info.py`, filters from `job/list.py`).
//!
//! Without job ids: the caller's pending and running jobs (`-a`: also inactive ones; `-A`:
//! every user's jobs in every state; `-u`, `-f`, `--name`, `-q`), pending first (by priority),
//! then running (latest start first), then inactive (latest end first). With job ids: those
//! jobs whatever their state, filters ignored with a warning; `JobID <id> unknown` on stderr
//! for each unknown one, exit 1 when none is known.

use super::args::{self, Opt, Takes, opt, opt_alias};
use super::format::{Format, Value};
use super::{Fetch, info};
use crate::cli::Call;
use crate::flavor::flux::{self as rules, attr};
use crate::model::Job;

use Takes::{Flag, Optional, Value as Val};

const SPEC: &[Opt] = &[
    opt(Some('h'), "help", Flag),
    opt(Some('a'), "a", Flag),
    opt(Some('A'), "A", Flag),
    opt(Some('c'), "count", Val),
    opt(Some('f'), "filter", Val),
    opt(None, "since", Val),
    opt_alias(Some('n'), "no-header", Flag, &["suppress-header"]),
    opt(Some('u'), "user", Val),
    opt(None, "name", Val),
    opt(Some('q'), "queue", Val),
    opt(Some('i'), "include", Val),
    opt(Some('o'), "format", Val),
    opt(None, "sort", Val),
    opt(Some('w'), "width", Optional),
    opt(None, "json", Flag),
    opt(None, "color", Optional),
    opt(Some('R'), "recursive", Flag),
    opt(Some('L'), "level", Val),
    opt(None, "recurse-all", Flag),
    opt(None, "threads", Val),
    opt(None, "stats", Flag),
    opt(None, "stats-only", Flag),
    opt(None, "from-stdin", Flag),
];

/// Options Flux has that the simulated cluster refuses.
const REFUSED: &[&str] = &[
    "since",
    "include",
    "sort",
    "json",
    "recursive",
    "level",
    "recurse-all",
    "threads",
    "stats",
    "stats-only",
    "from-stdin",
];

/// Options that filter (`FilterAction` and friends in `flux-jobs.py`).
const FILTERS: &[&str] = &[
    "a", "A", "count", "filter", "since", "user", "name", "queue",
];

const USAGE: &str = "flux-jobs [-h] [-a] [-A] [-c N] [-f STATE|RESULT] [-n] [-u [USERNAME|UID]] [--name JOB-NAME] [-q QUEUE,...] [-o FORMAT] [-w [N]] [JOBID ...]";

const HELP: &str = "usage: flux-jobs [OPTIONS] [JOBID ...]

List jobs of the simulated Flux instance.

options:
  -h, --help            show this help message and exit
  -a                    List jobs in all states
  -A                    List all jobs for all users
  -c, --count N         Limit output to N jobs (default 1000)
  -f, --filter STATE|RESULT
                        List jobs with specific job state or result
  -n, --no-header       Suppress printing of header line
  -u, --user [USERNAME|UID]
                        Limit output to specific username or userid (Specify \"all\" for all users)
      --name JOB-NAME   Limit output to specific job name
  -q, --queue QUEUE,... Limit output to specific queue or queues
  -o, --format FORMAT   Specify output format using Python's string format syntax or a
                        defined format by name (default, long, deps, endreason)
  -w, --width [N]       Truncate output at width N

Example:
  flux jobs -a -n -o '{id.f58} {status} {returncode}'
";

/// The named formats (`FluxJobsConfig.builtin_formats`).
fn named_format(name: &str) -> Option<&'static str> {
    Some(match name {
        "default" => {
            "{id.f58:>12} ?:{queue:<8.8} +:{username:<8} {name:<10.10+} {status_abbrev:>2.2} {ntasks:>6} {nnodes:>6h} {contextual_time!F:>8h} {contextual_info}"
        }
        "long" => {
            "{id.f58:>12} ?:{queue:<8.8} +:{username:<8} {name:<10.10+} {status:>9.9} {ntasks:>6} {nnodes:>6h} {t_submit!d:%b%d %R::>12} {t_remaining!F:>12h} {contextual_time!F:>8h} {contextual_info}"
        }
        "deps" => {
            "{id.f58:>12} ?:{queue:<8.8} {name:<10.10+} {urgency:<3} {priority:<12} {state:<8.8} {dependencies}"
        }
        "endreason" => {
            "{id.f58:>12} ?:{queue:<8.8} +:{username:<8} {name:<10.10+} {status_abbrev:>2.2} {t_inactive!d:%b%d %R::>12h} {inactive_reason}"
        }
        _ => return None,
    })
}

/// Field headings (`JobInfoFormat.headings`); `None` for an unknown field.
pub fn heading(field: &str) -> Option<String> {
    let known = match field {
        "id" | "id.dec" | "id.hex" | "id.f58" | "id.f58plain" | "id.emoji" | "id.kvs"
        | "id.words" | "id.dothex" => "JOBID",
        "userid" => "UID",
        "username" => "USER",
        "urgency" => "URG",
        "priority" => "PRI",
        "state" | "state_emoji" => "STATE",
        "state_single" => "S",
        "name" => "NAME",
        "cwd" => "CWD",
        "queue" => "QUEUE",
        "project" => "PROJECT",
        "bank" => "BANK",
        "ntasks" => "NTASKS",
        "ncores" => "NCORES",
        "duration" => "DURATION",
        "nnodes" => "NNODES",
        "expiration" => "EXPIRATION",
        "t_remaining" => "T_REMAINING",
        "ranks" => "RANKS",
        "nodelist" => "NODELIST",
        "success" => "SUCCESS",
        "result" | "result_emoji" => "RESULT",
        "result_abbrev" => "RS",
        "t_submit" => "T_SUBMIT",
        "t_depend" => "T_DEPEND",
        "t_priority" => "T_PRIORITY",
        "t_sched" => "T_SCHED",
        "t_run" => "T_RUN",
        "t_cleanup" => "T_CLEANUP",
        "t_inactive" => "T_INACTIVE",
        "runtime" => "RUNTIME",
        "status" | "status_emoji" => "STATUS",
        "status_abbrev" => "ST",
        "waitstatus" => "WSTATUS",
        "returncode" => "RC",
        "exception.occurred" => "EXCEPTION-OCCURRED",
        "exception.severity" => "EXCEPTION-SEVERITY",
        "exception.type" => "EXCEPTION-TYPE",
        "exception.note" => "EXCEPTION-NOTE",
        "annotations" => "ANNOTATIONS",
        "dependencies" => "DEPENDENCIES",
        "contextual_info" => "INFO",
        "contextual_time" => "TIME",
        "inactive_reason" => "INACTIVE-REASON",
        "annotations.sched.t_estimate" | "sched.t_estimate" => "T_ESTIMATE",
        "annotations.sched.reason_pending" | "sched.reason_pending" => "REASON",
        "annotations.sched.resource_summary" | "sched.resource_summary" => "RESOURCES",
        "sched" => "SCHED",
        "user" => "USER",
        "uri" | "uri.local" => "URI",
        _ => {
            if let Some(rest) = field.strip_prefix("annotations.") {
                return Some(rest.to_uppercase());
            }
            if field.starts_with("sched.") || field.starts_with("user.") {
                return Some(field.to_uppercase());
            }
            if let Some(rest) = field.strip_prefix("instance.") {
                let h = rest.to_uppercase();
                return Some(
                    h.strip_prefix("RESOURCES.")
                        .map_or(h.clone(), str::to_string),
                );
            }
            return None;
        }
    };
    Some(known.to_string())
}

/// What `flux jobs` knows of one job.
struct Row<'a> {
    job: &'a Job,
    now: f64,
    unicode: bool,
}

impl Row<'_> {
    fn duration(&self) -> f64 {
        self.job.time_limit.seconds().map_or(0.0, |s| s as f64)
    }

    fn t_run(&self) -> f64 {
        if info::started(self.job) {
            self.job.run.start_time.unwrap_or(0.0)
        } else {
            0.0
        }
    }

    fn t_cleanup(&self) -> f64 {
        let j = self.job;
        if j.run.state.is_finished() {
            j.run.term_sent.or(j.run.end_time).unwrap_or(0.0)
        } else {
            j.run.term_sent.unwrap_or(0.0)
        }
    }

    fn runtime(&self) -> f64 {
        let (run, cleanup) = (self.t_run(), self.t_cleanup());
        if cleanup > 0.0 && run > 0.0 {
            cleanup - run
        } else if run > 0.0 {
            self.now - run
        } else {
            0.0
        }
    }

    fn urgency(&self) -> i64 {
        self.job
            .req
            .attributes
            .get(attr::URGENCY)
            .and_then(|u| u.parse().ok())
            .unwrap_or(16)
    }

    fn nodelist(&self) -> String {
        if info::started(self.job) {
            self.job.nodelist()
        } else {
            String::new()
        }
    }

    fn pending(&self) -> bool {
        matches!(info::state(self.job), "DEPEND" | "PRIORITY" | "SCHED")
    }

    fn inactive_reason(&self) -> String {
        let Some(result) = info::result(self.job) else {
            return String::new();
        };
        let exception = info::exception(self.job);
        let rc = info::returncode(self.job).unwrap_or(0);
        match result {
            "CANCELED" => match exception {
                Some(x) if x.kind == "cancel" && !x.note.is_empty() => {
                    format!("Canceled: {}", x.note)
                }
                _ => "Canceled".into(),
            },
            "FAILED" => match exception {
                Some(x) if x.kind != "exec" => {
                    let note = if x.note.is_empty() {
                        String::new()
                    } else {
                        format!(" note={}", x.note)
                    };
                    format!("Exception: type={}{note}", x.kind)
                }
                _ if rc > 128 => info::strsignal((rc - 128) as i32),
                _ if rc == 126 => "Command invoked cannot execute".into(),
                _ if rc == 127 => "command not found".into(),
                _ if rc == 128 => "Invalid argument to exit".into(),
                _ => format!("Exit {rc}"),
            },
            "TIMEOUT" => "Timeout".into(),
            _ => format!("Exit {rc}"),
        }
    }

    fn value(&self, field: &str) -> Value {
        let j = self.job;
        let fluid = rules::flux_id(j.id);
        let s = |t: &str| Value::Str(t.to_string());
        let empty = || Value::Str(String::new());
        if let Some(form) = field.strip_prefix("id.") {
            return rules::encode(fluid, form, self.unicode).map_or(Value::Nothing, Value::Str);
        }
        let result = info::result(j);
        let exception = info::exception(j);
        match field {
            "id" => Value::Id {
                id: fluid,
                f58: rules::f58(fluid, self.unicode),
            },
            "userid" => Value::Int(i64::from(j.req.uid)),
            "username" => s(&j.req.user),
            "urgency" => Value::Int(self.urgency()),
            "priority" => Value::Int(if j.req.hold { 0 } else { self.urgency() }),
            "state" => s(info::state(j)),
            "state_single" => s(info::state_single(j)),
            "name" => s(&j.req.name),
            "cwd" => s(&j.req.work_dir),
            "queue" => s(&j.partition),
            "project" => empty(),
            "bank" => s(j.req.account.as_deref().unwrap_or("")),
            "ntasks" => Value::Int(i64::from(j.req.ntasks.unwrap_or(1).max(1))),
            "ncores" => Value::Int(i64::from(j.cpus)),
            "duration" => Value::Float(self.duration()),
            "nnodes" => Value::Int(if j.run.alloc.is_empty() {
                i64::from(j.num_nodes)
            } else {
                j.run.alloc.len() as i64
            }),
            "expiration" => Value::Float(if self.t_run() > 0.0 && self.duration() > 0.0 {
                self.t_run() + self.duration()
            } else {
                0.0
            }),
            "t_remaining" => Value::Float(if info::status(j) == "RUN" && self.duration() > 0.0 {
                (self.t_run() + self.duration() - self.now).max(0.0)
            } else {
                0.0
            }),
            "nodelist" => s(&self.nodelist()),
            "success" => match result {
                Some(r) => Value::Bool(r == "COMPLETED"),
                None => empty(),
            },
            "result" => s(result.unwrap_or("")),
            "result_abbrev" => s(result.map_or("", info::result_abbrev)),
            "t_submit" | "t_depend" | "t_priority" | "t_sched" => Value::Float(j.submit_time),
            "t_run" => Value::Float(self.t_run()),
            "t_cleanup" => Value::Float(self.t_cleanup()),
            "t_inactive" => Value::Float(if j.run.state.is_finished() {
                j.run.end_time.unwrap_or(0.0)
            } else {
                0.0
            }),
            "runtime" => Value::Float(self.runtime()),
            "status" => s(info::status(j)),
            "status_abbrev" => s(info::status_abbrev(j)),
            "waitstatus" => info::waitstatus(j).map_or_else(empty, |w| Value::Int(i64::from(w))),
            "returncode" => info::returncode(j).map_or_else(empty, Value::Int),
            "exception.occurred" => Value::Bool(exception.is_some()),
            "exception.severity" => exception.as_ref().map_or_else(empty, |_| Value::Int(0)),
            "exception.type" => s(exception.as_ref().map_or("", |x| x.kind)),
            "exception.note" => s(exception.as_ref().map_or("", |x| x.note.as_str())),
            "dependencies" => empty(),
            "contextual_info" => {
                if self.pending() {
                    if self.urgency() == 0 || j.req.hold {
                        s("held")
                    } else {
                        empty()
                    }
                } else {
                    s(&self.nodelist())
                }
            }
            "contextual_time" => Value::Float(if self.pending() {
                self.duration()
            } else {
                self.runtime()
            }),
            "inactive_reason" => s(&self.inactive_reason()),
            _ => Value::Nothing,
        }
    }
}

fn error(msg: &str) -> i32 {
    eprintln!("flux-jobs: ERROR: {msg}");
    1
}

fn user_uid(user: &str) -> Option<u32> {
    if let Ok(uid) = user.parse::<u32>() {
        return Some(uid);
    }
    nix::unistd::User::from_name(user)
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw())
}

/// Whether a job passes a `-f` filter name (a state, a state group, or a result).
fn passes(job: &Job, filters: &[String]) -> Result<bool, String> {
    let state = info::state(job);
    let result = info::result(job);
    let mut any = false;
    for f in filters {
        let hit = match f.to_ascii_lowercase().as_str() {
            "depend" => state == "DEPEND",
            "priority" => state == "PRIORITY",
            "sched" => state == "SCHED",
            "run" => state == "RUN",
            "cleanup" => state == "CLEANUP",
            "inactive" => state == "INACTIVE",
            "pending" => matches!(state, "DEPEND" | "PRIORITY" | "SCHED"),
            "running" => matches!(state, "RUN" | "CLEANUP"),
            "active" => state != "INACTIVE",
            "completed" => result == Some("COMPLETED"),
            "failed" => result == Some("FAILED"),
            "canceled" | "cancelled" => result == Some("CANCELED"),
            "timeout" => result == Some("TIMEOUT"),
            _ => return Err(format!("Invalid filter specified: {f}")),
        };
        any |= hit;
    }
    Ok(any)
}

/// Pending first (highest priority, then oldest), running (latest start first), inactive
/// (latest end first) (`job-list`'s order).
fn order(jobs: &mut [Job]) {
    let rank = |j: &Job| match info::state(j) {
        "DEPEND" | "PRIORITY" | "SCHED" => 0,
        "RUN" | "CLEANUP" => 1,
        _ => 2,
    };
    jobs.sort_by(|a, b| {
        rank(a).cmp(&rank(b)).then_with(|| match rank(a) {
            0 => b
                .run
                .priority
                .cmp(&a.run.priority)
                .then(a.submit_time.total_cmp(&b.submit_time))
                .then(a.id.cmp(&b.id)),
            1 => b
                .run
                .start_time
                .unwrap_or(0.0)
                .total_cmp(&a.run.start_time.unwrap_or(0.0))
                .then(b.id.cmp(&a.id)),
            _ => b
                .run
                .end_time
                .unwrap_or(0.0)
                .total_cmp(&a.run.end_time.unwrap_or(0.0))
                .then(b.id.cmp(&a.id)),
        })
    });
}

/// Runs `flux jobs`; returns the exit code.
pub fn main(call: &mut Call, argv: &[String]) -> i32 {
    let parsed = match args::parse(argv, SPEC, false) {
        Ok(p) => p,
        Err(m) => {
            eprintln!("usage: {USAGE}");
            eprintln!("flux-jobs: error: {m}");
            return 2;
        }
    };
    if parsed.has("help") {
        print!("{HELP}");
        return 0;
    }
    if let Some(name) = REFUSED.iter().find(|n| parsed.has(n)) {
        return error(&format!("--{name} is not supported by mock-cluster"));
    }
    let mut ids: Vec<(String, Option<u32>)> = Vec::new();
    for text in &parsed.operands {
        match super::job_arg(text) {
            Ok(id) => ids.push((text.clone(), id)),
            Err(super::NotAJobId) => {
                eprintln!("usage: {USAGE}");
                eprintln!("flux-jobs: error: argument JOBID: invalid JobID value: '{text}'");
                return 2;
            }
        }
    }
    let count: usize = match parsed.value("count") {
        None => 1000,
        Some(c) => match c.trim().parse::<i64>() {
            Ok(n) if n >= 0 => n as usize,
            Ok(_) => 0,
            Err(_) => {
                eprintln!("usage: {USAGE}");
                eprintln!("flux-jobs: error: argument -c/--count: invalid int value: '{c}'");
                return 2;
            }
        },
    };
    let width: Option<usize> = match parsed.value("width") {
        None => None,
        Some(w) => match w.trim().parse::<i64>() {
            Ok(n) if n > 0 => Some(n as usize),
            Ok(_) => None,
            Err(_) => {
                eprintln!("usage: {USAGE}");
                eprintln!("flux-jobs: error: argument -w/--width: invalid int value: '{w}'");
                return 2;
            }
        },
    };
    let filtered = FILTERS.iter().any(|f| parsed.has(f));
    if !ids.is_empty() && filtered {
        eprintln!("flux-jobs: WARNING: Filtering options ignored with jobid list");
    }
    let fmt_text = parsed.value("format").unwrap_or("default");
    let fmt_text = named_format(fmt_text).unwrap_or(fmt_text);
    let format = match Format::new(fmt_text, &heading) {
        Ok(f) => f,
        Err(m) => return error(&format!("Error in user format: {m}")),
    };
    let mut filters: Vec<String> = parsed
        .values("filter")
        .iter()
        .flat_map(|f| f.split(','))
        .map(str::to_string)
        .collect();
    let all_users = parsed.has("A");
    if parsed.has("a") || all_users {
        if filters.is_empty() {
            filters = vec!["pending".into(), "running".into(), "inactive".into()];
        } else {
            eprintln!("flux-jobs: WARNING: Both -a and --filter specified, ignoring -a");
        }
    }
    if filters.is_empty() {
        filters = vec!["pending".into(), "running".into()];
    }
    // SAFETY: getuid cannot fail.
    let me = unsafe { libc::getuid() };
    let user: Option<u32> = match parsed.value("user") {
        _ if all_users => None,
        Some("all") => None,
        Some(u) => match user_uid(u) {
            Some(uid) => Some(uid),
            None => return error(&format!("Invalid user {u} specified")),
        },
        None => Some(me),
    };
    let queues: Vec<String> = parsed
        .values("queue")
        .iter()
        .flat_map(|q| q.split(','))
        .map(str::to_string)
        .collect();
    let wanted: Option<Vec<u32>> = if ids.is_empty() {
        None
    } else {
        Some(ids.iter().filter_map(|(_, id)| *id).collect())
    };
    let (found, now) = match super::fetch(call, wanted, true) {
        Ok(r) => r,
        Err(Fetch::Unreachable(e)) => {
            return error(&format!(
                "Unable to connect to Flux: mock-cluster daemon not reachable at {}: {}",
                e.socket.display(),
                e.error
            ));
        }
        // The broker did not answer: the RPC's ETIMEDOUT (CLIMain prints its strerror).
        Err(Fetch::TimedOut) => return error("Connection timed out"),
        Err(Fetch::Other(m)) => return error(&m),
    };
    let mut jobs: Vec<Job>;
    let mut truncated = false;
    if ids.is_empty() {
        jobs = Vec::new();
        for j in found {
            let keep = match passes(&j, &filters) {
                Ok(k) => k,
                Err(m) => return error(&m),
            };
            if !keep
                || user.is_some_and(|u| u != j.req.uid)
                || parsed.value("name").is_some_and(|n| n != j.req.name)
                || (!queues.is_empty() && !queues.contains(&j.partition))
            {
                continue;
            }
            jobs.push(j);
        }
        order(&mut jobs);
        if count > 0 && jobs.len() > count {
            jobs.truncate(count);
            truncated = true;
        }
    } else {
        jobs = Vec::new();
        for (text, id) in &ids {
            match id.and_then(|id| found.iter().find(|j| j.id == id)) {
                Some(j) => jobs.push(j.clone()),
                None => eprintln!("JobID {text} unknown"),
            }
        }
        if jobs.is_empty() {
            return 1;
        }
    }
    let unicode = super::caller_unicode();
    let rows: Vec<Row<'_>> = jobs.iter().map(|job| Row { job, now, unicode }).collect();
    let no_header = parsed.has("no-header");
    let format = format.filter(
        &rows,
        &|r: &Row<'_>, f: &str| r.value(f),
        &heading,
        no_header,
    );
    let cut = |line: String| -> String {
        match width {
            Some(w) if line.chars().count() > w => {
                let mut s: String = line.chars().take(w.saturating_sub(1)).collect();
                s.push('+');
                s
            }
            _ => line,
        }
    };
    let mut out = String::new();
    if !no_header {
        out.push_str(&cut(format.header(&heading)));
        out.push('\n');
    }
    for r in &rows {
        match format.row(&|f| r.value(f)) {
            Ok(line) => {
                out.push_str(&cut(line));
                out.push('\n');
            }
            Err(m) => return error(&m),
        }
    }
    print!("{out}");
    if !no_header && truncated {
        eprintln!("warning: output truncated at {count} jobs.");
        eprintln!("Use --count to increase returned results or use filters to alter results.");
    }
    0
}
