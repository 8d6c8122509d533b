//! Fake Cobalt `qstat` (reference 5.3; `src/clients/POSIX/qstat.py`,
//! `src/lib/client_utils.py` `header_info`, `src/lib/Util.py` `print_tabular`/`print_vertical`,
//! `src/lib/Components/cqm.py` `__get_job_state`).
//!
//! A job leaves Cobalt's queue when it ends, so only jobs that have not ended are shown: a job
//! id asked for that is not there prints nothing and exits 1 — the executor's "job finished".

use std::cmp::Ordering;

use super::optparse::{self, Found, Kind, Opt, opt};
use super::{Usage, elapsed, tabular, timed_out, unexpected, unreachable, vertical};
use crate::cli::Call;
use crate::config::Cluster;
use crate::flavor::cobalt::{attr, cobalt_time, expand_id};
use crate::model::{Job, JobState};
use crate::protocol::{Request, Response};

const SPEC: &[Opt] = &[
    opt("version", &["--version"], Kind::Flag),
    opt("help", &["-h", "--help"], Kind::Flag),
    opt("debug", &["-d", "--debug"], Kind::Flag),
    opt("full", &["-f", "--full"], Kind::Flag),
    opt("long", &["-l", "--long"], Kind::Flag),
    opt("Q", &["-Q"], Kind::Flag),
    opt("reverse", &["--reverse"], Kind::Flag),
    opt("header", &["--header"], Kind::Str),
    opt("sort", &["--sort"], Kind::Str),
    opt("user", &["-u", "--user"], Kind::Str),
];

const USAGE: Usage = Usage {
    prog: "qstat",
    text: "%prog [options] <jobids1> ... <jobidsN>",
    revision: "406",
    help: &[
        ("-d, --debug", "turn non communication debugging"),
        ("-f, --full", "show more verbose information"),
        ("-l, --long", "show job info in vertical format"),
        ("-Q", "show queues and properties"),
        ("--reverse", "show output in reverse"),
        ("--header=HEADER", "specify custom header"),
        ("--sort=SORT", "sort output by specified attribute"),
        ("-u USER, --user=USER", "Specify username"),
    ],
};

const DEFAULT_HEADER: &[&str] = &["JobID", "User", "WallTime", "Nodes", "State", "Location"];

const FULL_HEADER: &[&str] = &[
    "JobID",
    "JobName",
    "User",
    "WallTime",
    "QueuedTime",
    "RunTime",
    "TimeRemaining",
    "Nodes",
    "State",
    "Location",
    "Mode",
    "Procs",
    "Preemptable",
    "Queue",
    "StartTime",
    "Index",
];

const LONG_HEADER: &[&str] = &[
    "JobID",
    "JobName",
    "User",
    "WallTime",
    "QueuedTime",
    "RunTime",
    "TimeRemaining",
    "Nodes",
    "State",
    "Location",
    "Mode",
    "Procs",
    "Preemptable",
    "User_Hold",
    "Admin_Hold",
    "Queue",
    "StartTime",
    "Index",
    "SubmitTime",
    "Path",
    "OutputDir",
    "ErrorPath",
    "OutputPath",
    "Envs",
    "Command",
    "Args",
    "Kernel",
    "KernelOptions",
    "ION_Kernel",
    "ION_KernelOptions",
    "Project",
    "Dependencies",
    "short_state",
    "Notify",
    "Score",
    "Maxtasktime",
    "attrs",
    "dep_frac",
    "user_list",
    "Geometry",
    "Est_Start_Time",
];

const QUEUE_HEADER: &[&str] = &[
    "Name",
    "Users",
    "Groups",
    "MinTime",
    "MaxTime",
    "MaxRunning",
    "MaxQueued",
    "MaxUserNodes",
    "MaxNodeHours",
    "TotalNodes",
    "State",
];

#[derive(Debug, Default)]
struct Options {
    full: bool,
    long: bool,
    queues: bool,
    reverse: bool,
    header: Option<Vec<String>>,
    sort: Option<Vec<String>>,
    user: Option<String>,
    args: Vec<String>,
}

fn parse_options(argv: &[String]) -> Result<Options, i32> {
    let parsed = optparse::parse(argv, SPEC);
    let mut o = Options::default();
    for Found { dest, value, .. } in &parsed.found {
        let v = value.clone().unwrap_or_default();
        match *dest {
            "help" => return Err(USAGE.print_help()),
            "version" => return Err(USAGE.print_version()),
            "full" => o.full = true,
            "long" => o.long = true,
            "Q" => o.queues = true,
            "reverse" => o.reverse = true,
            "header" => o.header = Some(v.split(':').map(str::to_string).collect()),
            "sort" => o.sort = Some(v.split(':').map(str::to_string).collect()),
            "user" => o.user = Some(v),
            _ => {}
        }
    }
    if let Some(error) = parsed.error {
        return Err(USAGE.parse_error(&error));
    }
    o.args = parsed.args;
    Ok(o)
}

fn env_list(names: &[&str]) -> Option<Vec<String>> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok())
        .map(|v| v.split(':').map(str::to_string).collect())
}

/// `client_utils.header_info`.
fn header(o: &Options) -> Vec<String> {
    let owned = |h: &[&str]| h.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let custom = o
        .header
        .clone()
        .or_else(|| env_list(&["CQSTAT_HEADER", "QSTAT_HEADER"]));
    let custom_full = env_list(&["CQSTAT_HEADER_FULL", "QSTAT_HEADER_FULL"]);
    if o.queues {
        owned(QUEUE_HEADER)
    } else if o.full && o.long {
        owned(LONG_HEADER)
    } else if let (true, Some(h)) = (o.full, &custom_full) {
        h.clone()
    } else if o.full {
        owned(FULL_HEADER)
    } else if let Some(h) = custom {
        h
    } else {
        owned(DEFAULT_HEADER)
    }
}

/// Python's `int()` of a job id argument: `Some(None)` for a number no job can have.
fn jobid(arg: &str) -> Option<Option<u32>> {
    let t = arg.trim();
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(t.strip_prefix('+').unwrap_or(t).parse::<u32>().ok())
}

/// What the arguments select (qstat.py `get_output_for_jobs` query).
enum Select {
    All,
    Queue(String),
    Id(Option<u32>),
}

/// The queue-manager state of a job that has not ended (cqm `__get_job_state` and
/// `__get_short_job_state`): queued or held, running, or being killed after a qdel or its
/// walltime.
fn states(job: &Job) -> (&'static str, &'static str) {
    match job.run.state {
        JobState::Pending if job.req.hold || job.run.priority == 0 => ("user_hold", "H"),
        JobState::Pending => ("queued", "Q"),
        _ if job.run.term_sent.is_some() => ("killing", "K"),
        _ => ("running", "R"),
    }
}

/// `"%02d:%02d:00" % (h, m)` of a walltime in minutes.
fn walltime(minutes: u64) -> String {
    format!("{:02}:{:02}:00", minutes / 60, minutes % 60)
}

/// One field of a job as qstat.py computes it; `-` for a name the queue manager was not asked
/// for.
fn field(job: &Job, name: &str, now: f64, id_width: usize) -> String {
    let attrs = &job.req.attributes;
    let start = job.run.start_time;
    let limit = job.time_limit.seconds().unwrap_or(0);
    let nodes = job.req.nodes.unwrap_or(job.num_nodes).to_string();
    let none = || "None".to_string();
    match name {
        "jobid" => format!("{:>id_width$}", job.id),
        "jobname" => expand_id(&job.req.name, job.id),
        "user" => job.req.user.clone(),
        // cqm keeps a walltime of 0 (the maximum) until the job starts.
        "walltime" if job.req.time_limit.is_none() && start.is_none() => walltime(0),
        "walltime" => walltime(limit / 60),
        "queuedtime" => elapsed(start.unwrap_or(now) - job.submit_time),
        "runtime" => start.map_or("N/A".into(), |s| elapsed(now - s)),
        "timeremaining" => start.map_or("N/A".into(), |s| elapsed(limit as f64 - (now - s))),
        "nodes" => nodes,
        "state" => states(job).0.into(),
        "short_state" => states(job).1.into(),
        "location" if job.run.alloc.is_empty() => none(),
        "location" => job.nodelist(),
        "mode" => "script".into(),
        "procs" => attrs.get(attr::PROCS).cloned().unwrap_or(nodes),
        "preemptable" | "admin_hold" => "False".into(),
        "user_hold" => if job.req.hold { "True" } else { "False" }.into(),
        "queue" => job.partition.clone(),
        "starttime" => start.map_or("N/A".into(), cobalt_time),
        "index" | "kerneloptions" | "ion_kerneloptions" | "dependencies" | "maxtasktime"
        | "dep_frac" => none(),
        "submittime" => cobalt_time(job.submit_time),
        "path" => attrs.get(attr::PATH).cloned().unwrap_or_else(none),
        "outputdir" => job.req.work_dir.clone(),
        "errorpath" => job.run.stderr_path.clone().unwrap_or_else(none),
        "outputpath" => job.run.stdout_path.clone().unwrap_or_else(none),
        "envs" => attrs.get(attr::ENVS).cloned().unwrap_or_default(),
        "command" => job.req.command.clone(),
        "args" => job.req.args.join(" "),
        "kernel" | "ion_kernel" => "default".into(),
        "project" => job.req.account.clone().unwrap_or_else(none),
        "notify" => attrs.get(attr::NOTIFY).cloned().unwrap_or_else(none),
        "score" => "0.0".into(),
        "attrs" => attrs
            .get(attr::ATTRS)
            .cloned()
            .unwrap_or_else(|| "{}".into()),
        "user_list" => attrs
            .get(attr::USER_LIST)
            .cloned()
            .unwrap_or_else(|| job.req.user.clone()),
        "geometry" => "Any".into(),
        "est_start_time" => "-".into(),
        _ => "-".into(),
    }
}

/// qstat.py `human_format` of a score.
fn human_format(x: f64) -> String {
    let units = ["  ", " K", " M", " G", " T", " P"];
    let mut stuff = x;
    for (i, unit) in units.iter().enumerate() {
        if stuff < 1000.0 || i == units.len() - 1 {
            return format!("{:5.1}{unit}", stuff.max(0.1));
        }
        stuff /= 1000.0;
    }
    format!("{:5.1}{}", stuff.max(0.1), units[units.len() - 1])
}

/// The queues (`qstat -Q`): the cluster's partitions.
fn queue_rows(cluster: &Cluster, names: &[String]) -> Vec<Vec<String>> {
    cluster
        .partitions
        .iter()
        .filter(|p| names.is_empty() || names.contains(&p.name))
        .map(|p| {
            let max = p
                .max_time
                .seconds()
                .map_or("None".into(), |s| walltime(s / 60));
            let state = match p.state.as_str() {
                "DOWN" => "stopped",
                "DRAIN" => "draining",
                "INACTIVE" => "dead",
                _ => "running",
            };
            let mut row = vec![p.name.clone(), "*".into(), "*".into(), "None".into(), max];
            row.extend(std::iter::repeat_n("None".to_string(), 5));
            row.push(state.into());
            row
        })
        .collect()
}

/// qstat.py `process_the_output`: sort (by score when shown, else by the first column),
/// numbers compared as numbers.
fn sort_rows(rows: &mut [Vec<String>], header: &[String], sort: Option<&[String]>) {
    let lower: Vec<String> = header.iter().map(|h| h.to_lowercase()).collect();
    let wanted: Vec<String> = match sort {
        Some(fields) => fields.iter().map(|f| f.to_lowercase()).collect(),
        None => vec!["score".into()],
    };
    let mut idxes: Vec<usize> = wanted
        .iter()
        .filter_map(|f| lower.iter().position(|h| h == f))
        .collect();
    if idxes.is_empty() {
        idxes.push(0);
    }
    let cmp = |a: &Vec<String>, b: &Vec<String>| {
        for &i in &idxes {
            let (x, y) = (
                a.get(i).map_or("", String::as_str),
                b.get(i).map_or("", String::as_str),
            );
            let o = match (x.trim().parse::<f64>(), y.trim().parse::<f64>()) {
                (Ok(p), Ok(q)) => p.partial_cmp(&q).unwrap_or(Ordering::Equal),
                _ => x.cmp(y),
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    };
    rows.sort_by(cmp);
}

/// Runs qstat; returns the exit code.
pub fn main(call: &mut Call) -> i32 {
    let o = match parse_options(&call.args()) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let mut header = header(&o);
    let cluster = match call.conn() {
        Ok(conn) => match conn.call(&Request::Cluster {
            status_command: true,
        }) {
            Ok(Response::Cluster { cluster, .. }) => cluster,
            Ok(Response::StatusTimeout) => return timed_out("queue-manager", "get_queues"),
            _ => return unexpected(call, "queue-manager", "get_queues"),
        },
        Err(e) => return unreachable(call, &e, "queue-manager"),
    };
    let mut rows = if o.queues {
        let rows = queue_rows(&cluster, &o.args);
        if !o.args.is_empty() && rows.is_empty() {
            return 1;
        }
        rows
    } else {
        match job_rows(call, &o, &cluster, &header) {
            Ok(rows) => rows,
            Err(code) => return code,
        }
    };
    sort_rows(&mut rows, &header, o.sort.as_deref());
    if o.reverse {
        rows.reverse();
    }
    let lower: Vec<String> = header.iter().map(|h| h.to_lowercase()).collect();
    if let Some(i) = lower.iter().position(|h| h == "short_state") {
        header[i] = "S".into();
    }
    if let Some(i) = lower.iter().position(|h| h == "score") {
        for row in &mut rows {
            let score = row[i].parse::<f64>().unwrap_or(0.0);
            row[i] = human_format(score);
        }
    }
    let mut all = vec![header];
    all.extend(rows);
    print!(
        "{}",
        if o.long {
            vertical(&all)
        } else {
            tabular(&all)
        }
    );
    0
}

/// The rows of the jobs the arguments select; `Err` with the exit code when qstat stops.
fn job_rows(
    call: &mut Call,
    o: &Options,
    cluster: &Cluster,
    header: &[String],
) -> Result<Vec<Vec<String>>, i32> {
    let mut select = Vec::new();
    for n in &o.args {
        if n == "*" {
            select.push(Select::All);
        } else if cluster.partition(n).is_some() {
            select.push(Select::Queue(n.clone()));
        } else {
            match jobid(n) {
                Some(id) => select.push(Select::Id(id)),
                None => {
                    eprintln!("{n} is not a valid jobid or queue name");
                    return Err(1);
                }
            }
        }
    }
    if select.is_empty() {
        select.push(Select::All);
    }
    let answer = match call.conn() {
        Ok(conn) => conn.call(&Request::Jobs {
            ids: None,
            accounting: false,
            status_command: true,
        }),
        Err(e) => return Err(unreachable(call, &e, "queue-manager")),
    };
    let (jobs, now) = match answer {
        Ok(Response::Jobs { jobs, now, .. }) => (jobs, now),
        Ok(Response::StatusTimeout) => return Err(timed_out("queue-manager", "get_jobs")),
        _ => return Err(unexpected(call, "queue-manager", "get_jobs")),
    };
    let user = o.user.as_deref().filter(|u| *u != "*");
    let chosen: Vec<Job> = jobs
        .into_iter()
        .filter(|j| !j.run.state.is_finished())
        .filter(|j| user.is_none_or(|u| j.req.user == u))
        .filter(|j| {
            select.iter().any(|s| match s {
                Select::All => true,
                Select::Queue(q) => &j.partition == q,
                Select::Id(id) => *id == Some(j.id),
            })
        })
        .collect();
    if !o.args.is_empty() && chosen.is_empty() {
        return Err(1);
    }
    let width = chosen
        .iter()
        .map(|j| j.id.to_string().len())
        .max()
        .unwrap_or(0);
    let lower: Vec<String> = header.iter().map(|h| h.to_lowercase()).collect();
    Ok(chosen
        .iter()
        .map(|j| {
            lower
                .iter()
                .map(|h| {
                    if LONG_HEADER.iter().any(|l| l.eq_ignore_ascii_case(h)) {
                        field(j, h, now, width)
                    } else {
                        "-".into()
                    }
                })
                .collect()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_print_like_human_format() {
        assert_eq!(human_format(0.0), "  0.1  ");
        assert_eq!(human_format(1500.0), "  1.5 K");
    }

    #[test]
    fn job_ids_are_python_ints() {
        assert_eq!(jobid("12"), Some(Some(12)));
        assert_eq!(jobid(" +12 "), Some(Some(12)));
        assert_eq!(jobid("-1"), Some(None));
        assert_eq!(jobid("99999999999"), Some(None));
        assert_eq!(jobid("12.batch"), None);
    }
}
