//! Fake `squeue`.

use crate::cli::Call;
use crate::cli::getopt::{HasArg::*, Opt, opt};
use crate::model::{Job, JobState};
use crate::units;

use super::format::{
    JobSelector, array_task_text, date, dependency_text, elapsed, expand_array_records,
    field_width, fit, job_id_text, limit, parse_format, render, select_jobs, split_job_list,
};

const SPEC: &[Opt] = &[
    opt("all", Some('a'), No),
    opt("array", Some('r'), No),
    opt("Format", Some('O'), Required),
    opt("format", Some('o'), Required),
    opt("help", None, No),
    opt("hide", None, No),
    opt("iterate", Some('i'), Required),
    opt("jobs", Some('j'), Optional),
    opt("long", Some('l'), No),
    opt("me", None, No),
    opt("name", Some('n'), Required),
    opt("noheader", Some('h'), No),
    opt("partition", Some('p'), Required),
    opt("qos", Some('q'), Required),
    opt("sort", Some('S'), Required),
    opt("start", None, No),
    opt("states", Some('t'), Required),
    opt("usage", None, No),
    opt("user", Some('u'), Required),
    opt("verbose", Some('v'), No),
    opt("version", Some('V'), No),
];

const HELP: &str = "Usage: squeue [OPTIONS]

Fake squeue of mock-cluster: view jobs in the simulated cluster's queue.

  -h, --noheader                  no headers on output
  -j, --jobs=job(s)               comma separated list of jobs IDs to view
  -l, --long                      long report
      --me                        equivalent to --user=<my username>
  -n, --name=job_name(s)          comma separated list of job names to view
  -o, --format=format             format specification (e.g. '%.18i %.2t %R')
  -O, --Format=format             format specification (e.g. 'jobid:10,state')
  -p, --partition=partition(s)    comma separated list of partitions to view
      --start                     print expected start times of pending jobs
  -t, --states=states             comma separated list of states to view ('all' for all)
  -u, --user=user_name(s)         comma separated list of users to view

Examples:
  squeue -h -o '%T' -j 42
  squeue --me -t all -O jobid,state,reason
";

const DEFAULT_FORMAT: &str = "%.18i %.9P %.8j %.8u %.2t %.10M %.6D %R";
const LONG_FORMAT: &str = "%.18i %.9P %.8j %.8u %.8T %.10M %.9l %.6D %R";
const START_FORMAT: &str = "%.18i %.9P %.8j %.8u %.2t %.19S %.6D %20Y %R";

const ALL_STATES: &str = "PENDING,RUNNING,SUSPENDED,COMPLETED,CANCELLED,FAILED,TIMEOUT,NODE_FAIL,PREEMPTED,BOOT_FAIL,DEADLINE,OUT_OF_MEMORY,COMPLETING,CONFIGURING,RESIZING,RESV_DEL_HOLD,REQUEUED,REQUEUE_FED,REQUEUE_HOLD,REVOKED,SIGNALING,SPECIAL_EXIT,STAGE_OUT,STOPPED";

fn header(code: char) -> &'static str {
    match code {
        'i' | 'A' => "JOBID",
        'P' => "PARTITION",
        'j' => "NAME",
        'u' => "USER",
        't' => "ST",
        'T' => "STATE",
        'M' => "TIME",
        'l' => "TIME_LIMIT",
        'L' => "TIME_LEFT",
        'D' => "NODES",
        'R' => "NODELIST(REASON)",
        'N' => "NODELIST",
        'r' => "REASON",
        'C' => "CPUS",
        'c' => "MIN_CPUS",
        'm' => "MIN_MEMORY",
        'S' => "START_TIME",
        'V' => "SUBMIT_TIME",
        'e' => "END_TIME",
        'Q' => "PRIORITY",
        'q' => "QOS",
        'a' => "ACCOUNT",
        'Z' => "WORK_DIR",
        'o' => "COMMAND",
        'Y' => "SCHEDNODES",
        'B' => "EXEC_HOST",
        'F' => "ARRAY_JOB_ID",
        'K' => "ARRAY_TASK_ID",
        'E' => "DEPENDENCY",
        'U' => "UID",
        // Observed on Slurm 22.05: both are headed GROUP.
        'g' | 'G' => "GROUP",
        _ => "",
    }
}

/// Whether a job is shown in the compact state `CG` (being killed).
fn state_long(job: &Job) -> &'static str {
    if job.run.state == JobState::Running && job.run.term_sent.is_some() {
        "COMPLETING"
    } else {
        job.run.state.long()
    }
}

fn state_short(job: &Job) -> &'static str {
    if job.run.state == JobState::Running && job.run.term_sent.is_some() {
        "CG"
    } else {
        job.run.state.short()
    }
}

fn field(job: &Job, code: char, now: f64) -> String {
    let running = job.run.state == JobState::Running;
    match code {
        // Observed on Slurm 22.05: `%i` is `123_4` (or `123_[5-9%2]`), `%A` the task's own job
        // id, `%F` the array's id, `%K` the task (or `5-9%2`).
        'i' => job_id_text(job),
        'A' => job.id.to_string(),
        'F' => job.array_job_id().to_string(),
        'K' => array_task_text(job, false),
        'P' => job.partition.clone(),
        'j' => job.req.name.clone(),
        'u' => job.req.user.clone(),
        'U' => job.req.uid.to_string(),
        'g' => crate::users::group_name(job.req.gid),
        'G' => job.req.gid.to_string(),
        't' => state_short(job).into(),
        'T' => state_long(job).into(),
        'M' => units::format_squeue_duration(elapsed(job, now)),
        'l' => limit(job),
        'L' => match (job.time_limit.seconds(), running) {
            (Some(l), _) => units::format_squeue_duration(l.saturating_sub(elapsed(job, now))),
            (None, _) => "UNLIMITED".into(),
        },
        'D' => job.num_nodes.to_string(),
        'R' => {
            let finished_with_reason = job.run.state.is_finished()
                && (job.run.alloc.is_empty() || job.run.reason != "None");
            if job.run.state == JobState::Pending || finished_with_reason {
                format!("({})", job.run.reason)
            } else {
                job.nodelist()
            }
        }
        'N' => job.nodelist(),
        'B' => job
            .run
            .alloc
            .first()
            .map_or("n/a".into(), |a| a.node.clone()),
        'r' => job.run.reason.clone(),
        'C' | 'c' => job.cpus.to_string(),
        'm' => format!("{}M", job.mem_per_node_mb),
        // A pending job's start is its begin time when it has one, and its end then unknown
        // (`NONE`), as Slurm 22.05 shows them (docs/slurm-observed.md, times of pending jobs).
        'S' => date(job.run.start_time.or(pending_begin(job)), "N/A"),
        'V' => date(Some(job.submit_time), "N/A"),
        'e' if job.run.end_time.is_none() && pending_begin(job).is_some() => "NONE".into(),
        'e' => date(job.run.end_time, "N/A"),
        'Q' => job.run.priority.to_string(),
        'q' => job.qos.clone(),
        'a' => job
            .req
            .account
            .clone()
            .unwrap_or_else(|| job.req.user.clone()),
        'Z' => job.req.work_dir.clone(),
        'o' => job.req.command.clone(),
        'Y' => "(null)".into(),
        'E' => dependency_text(job),
        _ => String::new(),
    }
}

fn compare_by(a: &Job, b: &Job, key: char, now: f64) -> std::cmp::Ordering {
    use crate::cli::slurm::format::elapsed;
    match key {
        'i' | 'A' => a.id.cmp(&b.id),
        'p' | 'Q' => a.run.priority.cmp(&b.run.priority),
        'M' => elapsed(a, now).cmp(&elapsed(b, now)),
        'D' => a.num_nodes.cmp(&b.num_nodes),
        'C' => a.cpus.cmp(&b.cpus),
        'V' => a.submit_time.total_cmp(&b.submit_time),
        'S' => a
            .run
            .start_time
            .unwrap_or(0.0)
            .total_cmp(&b.run.start_time.unwrap_or(0.0)),
        'e' => a
            .run
            .end_time
            .unwrap_or(0.0)
            .total_cmp(&b.run.end_time.unwrap_or(0.0)),
        other => field(a, other, now).cmp(&field(b, other, now)),
    }
}

fn long_field_code(name: &str) -> Option<char> {
    Some(match name.to_ascii_lowercase().as_str() {
        "jobarrayid" => 'i',
        "jobid" => 'A',
        "arrayjobid" => 'F',
        "arraytaskid" => 'K',
        "partition" => 'P',
        "name" => 'j',
        "username" | "user" => 'u',
        "userid" | "uid" => 'U',
        "groupname" => 'g',
        "groupid" => 'G',
        "statecompact" => 't',
        "state" => 'T',
        "timeused" => 'M',
        "timelimit" => 'l',
        "timeleft" => 'L',
        "numnodes" => 'D',
        "nodelist" => 'N',
        "reason" => 'r',
        "reasonlist" => 'R',
        "numcpus" | "mincpus" => 'C',
        "minmemory" => 'm',
        "starttime" => 'S',
        "submittime" => 'V',
        "endtime" => 'e',
        "priority" | "prioritylong" => 'Q',
        "qos" => 'q',
        "account" => 'a',
        "workdir" => 'Z',
        "command" => 'o',
        "batchhost" => 'B',
        _ => return None,
    })
}

/// Runs squeue; returns the exit code.
pub fn main(call: &mut Call) -> i32 {
    let mut cli = match super::parse_command_line(call, SPEC, false, 1, true, HELP) {
        Ok(p) => p,
        Err(code) => return code,
    };
    // `-j 12` (space, optional argument): the id arrives as an operand.
    let mut jobs_arg = cli.value("jobs").map(str::to_string);
    if cli.has("jobs") && jobs_arg.is_none() && !cli.operands.is_empty() {
        jobs_arg = Some(cli.operands.remove(0));
    }
    if let Some(extra) = cli.operands.first() {
        eprintln!("squeue: error: Unrecognized option: {extra}");
        eprintln!("Usage: squeue [-A account] [--clusters names] [-i seconds] [--job jobid]");
        return 1;
    }
    let mut ids: Option<Vec<u32>> = None;
    let mut selectors = Vec::new();
    if let Some(list) = &jobs_arg {
        for item in split_job_list(list) {
            match JobSelector::parse(item) {
                Some(s) if s.id > 0 => selectors.push(s),
                _ => {
                    eprintln!("squeue: error: Invalid job id: {item}");
                    return 1;
                }
            }
        }
        ids = Some(selectors.iter().map(|s| s.id).collect());
    }
    let states: Option<Vec<JobState>> = match cli.value("states") {
        Some(list) if list.eq_ignore_ascii_case("all") => None,
        Some(list) => {
            let mut v = Vec::new();
            for s in list.split(',') {
                if s.eq_ignore_ascii_case("all") {
                    v.clear();
                    break;
                }
                match JobState::parse(s) {
                    Some(st) => v.push(st),
                    None if [
                        "SUSPENDED",
                        "S",
                        "COMPLETING",
                        "CG",
                        "PREEMPTED",
                        "PR",
                        "CONFIGURING",
                        "CF",
                    ]
                    .iter()
                    .any(|k| k.eq_ignore_ascii_case(s)) => {}
                    None => {
                        eprintln!("squeue: error: Invalid job state specified: {s}");
                        eprintln!("squeue: error: Valid job states include: {ALL_STATES}");
                        return 1;
                    }
                }
            }
            if v.is_empty() && list.split(',').any(|s| s.eq_ignore_ascii_case("all")) {
                None
            } else {
                Some(v)
            }
        }
        None => Some(vec![JobState::Pending, JobState::Running]),
    };
    let (jobs, now, _) = match super::fetch_jobs(call, ids.clone(), false, "slurm_load_jobs") {
        Ok(x) => x,
        Err(code) => return code,
    };
    let jobs = select_jobs(jobs, &selectors);
    // `-r`: one row per pending task of an array (observed).
    let jobs = if cli.has("array") {
        expand_array_records(jobs)
    } else {
        jobs
    };
    if let Some(ids) = &ids
        && ids.len() == 1
        && jobs.is_empty()
    {
        eprintln!("slurm_load_jobs error: Invalid job id specified");
        return 1;
    }
    let me = super::identity().0;
    let users: Option<Vec<String>> = if cli.has("me") {
        Some(vec![me])
    } else {
        cli.value("user")
            .map(|u| u.split(',').map(str::to_string).collect())
    };
    let names: Option<Vec<&str>> = cli.value("name").map(|n| n.split(',').collect());
    let parts: Option<Vec<&str>> = cli.value("partition").map(|n| n.split(',').collect());
    let start = cli.has("start");
    let mut shown: Vec<&Job> = jobs
        .iter()
        .filter(|j| states.as_ref().is_none_or(|s| s.contains(&j.run.state)))
        .filter(|j| !start || j.run.state == JobState::Pending)
        .filter(|j| {
            users.as_ref().is_none_or(|u| {
                u.iter()
                    .any(|u| u == &j.req.user || u == &j.req.uid.to_string())
            })
        })
        .filter(|j| {
            names
                .as_ref()
                .is_none_or(|n| n.contains(&j.req.name.as_str()))
        })
        .filter(|j| {
            parts
                .as_ref()
                .is_none_or(|p| p.contains(&j.partition.as_str()))
        })
        .collect();
    // -S: comma-separated keys, `-` for descending; Slurm's default is "P,t,-p".
    let sort_spec = cli.value("sort").unwrap_or("P,t,-p").to_string();
    let keys: Vec<(char, bool)> = sort_spec
        .split(',')
        .filter_map(|k| {
            let desc = k.starts_with('-');
            k.trim_start_matches(['-', '+'])
                .chars()
                .next()
                .map(|c| (c, desc))
        })
        .collect();
    shown.sort_by(|a, b| {
        for (key, desc) in &keys {
            let ord = compare_by(a, b, *key, now);
            let ord = if *desc { ord.reverse() } else { ord };
            if ord != std::cmp::Ordering::Equal {
                return ord;
            }
        }
        a.id.cmp(&b.id)
    });
    let mut out = String::new();
    let noheader = cli.has("noheader");
    if let Some(long_fmt) = cli.value("Format") {
        let mut cols: Vec<(char, usize, bool)> = Vec::new();
        for item in long_fmt.split(',') {
            let (name, w) = match item.split_once(':') {
                Some((n, w)) => (n, Some(w)),
                None => (item, None),
            };
            let Some(code) = long_field_code(name) else {
                eprintln!("Invalid job format specification: {name}");
                return 1;
            };
            let (right, width) = match w {
                Some(w) => (
                    w.starts_with('.'),
                    field_width(w.trim_start_matches('.')).unwrap_or(20),
                ),
                None => (false, 20),
            };
            cols.push((code, width, right));
        }
        let names: Vec<String> = long_fmt
            .split(',')
            .map(|i| i.split(':').next().unwrap_or("").to_uppercase())
            .collect();
        if !noheader {
            for ((_, w, r), n) in cols.iter().zip(&names) {
                out.push_str(&fit(&long_header(n), *w, *r));
            }
            out.push('\n');
        }
        for job in &shown {
            for (code, w, r) in &cols {
                out.push_str(&fit(&field(job, *code, now), *w, *r));
            }
            out.push('\n');
        }
    } else {
        let fmt = cli.value("format").unwrap_or(if start {
            START_FORMAT
        } else if cli.has("long") {
            LONG_FORMAT
        } else {
            DEFAULT_FORMAT
        });
        if cli.has("long") && cli.value("format").is_none() {
            out.push_str(
                &chrono::Local::now()
                    .format("%a %b %d %H:%M:%S %Y\n")
                    .to_string(),
            );
        }
        let pieces = parse_format(fmt);
        if !noheader {
            out.push_str(&render(&pieces, &|c| {
                if c == 'l' && cli.has("long") {
                    "TIME_LIMIT".into()
                } else {
                    header(c).to_string()
                }
            }));
            out.push('\n');
        }
        for job in &shown {
            out.push_str(&render(&pieces, &|c| {
                if start && c == 'S' {
                    date(job.run.start_time, "N/A")
                } else {
                    field(job, c, now)
                }
            }));
            out.push('\n');
        }
    }
    print!("{out}");
    0
}

fn long_header(name: &str) -> String {
    match name {
        "USERNAME" => "USER".into(),
        "STATECOMPACT" => "ST".into(),
        "TIMEUSED" => "TIME".into(),
        "NUMNODES" => "NODES".into(),
        "NUMCPUS" => "CPUS".into(),
        "REASONLIST" => "NODELIST(REASON)".into(),
        "TIMELIMIT" => "TIME_LIMIT".into(),
        "TIMELEFT" => "TIME_LEFT".into(),
        "STARTTIME" => "START_TIME".into(),
        "SUBMITTIME" => "SUBMIT_TIME".into(),
        "ENDTIME" => "END_TIME".into(),
        "MINMEMORY" => "MIN_MEMORY".into(),
        "WORKDIR" => "WORK_DIR".into(),
        other => other.into(),
    }
}

/// The begin time (`--begin`) of a job still pending.
pub fn pending_begin(job: &Job) -> Option<f64> {
    (job.run.state == JobState::Pending)
        .then(|| job.begin_time())
        .flatten()
}
