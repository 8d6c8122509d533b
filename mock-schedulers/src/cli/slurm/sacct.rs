//! Fake `sacct`: the accounting view (jobs stay visible after min_job_age).

use crate::cli::Call;
use crate::cli::getopt::{HasArg::*, Opt, opt};
use crate::model::{Job, JobKind, JobState, JobStep};
use crate::units;

use super::format::{JobSelector, date, elapsed, job_id_text, select_jobs, split_job_list};

const SPEC: &[Opt] = &[
    opt("allocations", Some('X'), No),
    opt("allusers", Some('a'), No),
    opt("brief", Some('b'), No),
    opt("duplicates", Some('D'), No),
    opt("endtime", Some('E'), Required),
    opt("format", Some('o'), Required),
    opt("help", Some('h'), No),
    opt("jobs", Some('j'), Required),
    opt("long", Some('l'), No),
    opt("name", None, Required),
    opt("noheader", Some('n'), No),
    opt("parsable", Some('p'), No),
    opt("parsable2", Some('P'), No),
    opt("partition", Some('r'), Required),
    opt("starttime", Some('S'), Required),
    opt("state", Some('s'), Required),
    opt("usage", None, No),
    opt("user", Some('u'), Required),
    opt("verbose", Some('v'), No),
    opt("version", Some('V'), No),
];

const HELP: &str = "Usage: sacct [OPTIONS]

Fake sacct of mock-cluster: accounting records of the simulated cluster's jobs.

  -D, --duplicates           also the runs of requeued jobs before their last (REQUEUED)
  -j, --jobs=job(.step)      comma separated list of jobs
  -n, --noheader             no header
  -o, --format=field[%len],. fields to print (JobID,JobName,State,ExitCode,Elapsed,...)
  -p, --parsable             '|' delimited output with a trailing '|'
  -P, --parsable2            '|' delimited output without a trailing '|'
  -X, --allocations          only the job allocation, no steps
  -s, --state=states         only jobs in these states
  -u, --user=user_list       only jobs of these users

Examples:
  sacct -j 42 -n -P -o State,ExitCode
  sacct -X -o JobID,JobName%20,State,Elapsed
";

const DEFAULT_FIELDS: &str = "JobID,JobName,Partition,Account,AllocCPUS,State,ExitCode";
const BRIEF_FIELDS: &str = "JobID,State,ExitCode";
const LONG_FIELDS: &str = "JobID,JobIDRaw,JobName,Partition,MaxVMSize,MaxVMSizeNode,MaxVMSizeTask,AveVMSize,MaxRSS,MaxRSSNode,MaxRSSTask,AveRSS,MaxPages,MaxPagesNode,MaxPagesTask,AvePages,MinCPU,MinCPUNode,MinCPUTask,AveCPU,NTasks,AllocCPUS,Elapsed,State,ExitCode,AveCPUFreq,ReqCPUFreqMin,ReqCPUFreqMax,ReqCPUFreqGov,ReqMem,ConsumedEnergy,MaxDiskRead,MaxDiskReadNode,MaxDiskReadTask,AveDiskRead,MaxDiskWrite,MaxDiskWriteNode,MaxDiskWriteTask,AveDiskWrite,ReqTRES,AllocTRES,TRESUsageInAve,TRESUsageInMax,TRESUsageInMaxNode,TRESUsageInMaxTask,TRESUsageInMin,TRESUsageInMinNode,TRESUsageInMinTask,TRESUsageInTot,TRESUsageOutMax,TRESUsageOutMaxNode,TRESUsageOutMaxTask,TRESUsageOutAve,TRESUsageOutTot";

/// One printed row: the job allocation or one of its steps.
struct Row<'a> {
    job: &'a Job,
    step: Option<&'a str>,
    /// The srun step this row shows, when it is one.
    srun_step: Option<&'a JobStep>,
    state: String,
    exit: String,
}

impl Row<'_> {
    /// Whether this is the job's own row, not one of its steps'.
    fn is_job(&self) -> bool {
        self.step.is_none() && self.srun_step.is_none()
    }
}

/// A field's width in `sacct`'s `fields[]` (22.05 `src/sacct/sacct.c`): negative ones are
/// left-justified, header included (observed: only `JobID` and `JobIDRaw`).
fn default_width(field: &str) -> i64 {
    match field {
        "jobid" | "jobidraw" => -12,
        "exitcode" | "nnodes" | "reqcpus" | "ntasks" => 8,
        "derivedexitcode" => 15,
        "start" | "end" | "submit" | "eligible" => 19,
        "nodelist" => 15,
        "user" | "group" => 9,
        "uid" | "gid" => 6,
        "workdir" | "submitline" => 20,
        "reason" => 22,
        _ => 10,
    }
}

/// The width given after `%` (`JobName%20`, `State%-12`): read as `atoi()` reads it, so
/// text without digits is 0 (observed: `%0` prints the field empty).
fn given_width(text: &str) -> i64 {
    i64::from(super::options::leading_int(text)).clamp(
        -(super::format::MAX_FIELD_WIDTH as i64),
        super::format::MAX_FIELD_WIDTH as i64,
    )
}

/// One column: `field_len` wide, right-justified when positive, left when negative, as
/// `print_fields_str()` (22.05 `src/common/print_fields.c`) prints it; a value longer than
/// the width ends in `+`, the header is cut without one (observed: `Exi`, `wr+`).
fn column(value: &str, width: i64, header: bool) -> String {
    let w = width.unsigned_abs() as usize;
    let mut v: String = value.to_string();
    if v.chars().count() > w {
        v = if header || w == 0 {
            v.chars().take(w).collect()
        } else {
            v.chars().take(w - 1).collect::<String>() + "+"
        };
    }
    if width < 0 {
        format!("{v:<w$} ")
    } else {
        format!("{v:>w$} ")
    }
}

fn header_name(field: &str) -> String {
    let known = [
        "JobID",
        "JobIDRaw",
        "JobName",
        "Partition",
        "Account",
        "AllocCPUS",
        "NCPUS",
        "State",
        "ExitCode",
        "DerivedExitCode",
        "Elapsed",
        "ElapsedRaw",
        "Start",
        "End",
        "Submit",
        "Eligible",
        "Timelimit",
        "NodeList",
        "NNodes",
        "User",
        "UID",
        "GID",
        "Group",
        "WorkDir",
        "QOS",
        "ReqMem",
        "ReqCPUS",
        "Reason",
        "Cluster",
        "AllocNodes",
        "Priority",
        "SubmitLine",
    ];
    known
        .iter()
        .find(|k| k.eq_ignore_ascii_case(field))
        .map_or_else(|| field.to_string(), |k| k.to_string())
}

fn value(row: &Row<'_>, field: &str, now: f64, cluster: &str) -> String {
    let job = row.job;
    // Observed on Slurm 22.05: JobID of an array task is `123_4` (`123_4.batch`), JobIDRaw its
    // own id; a pending array record is `123_[5-9%2]`, one cancelled before its tasks started
    // just `123`.
    let with_step = |base: String| match (row.srun_step, row.step) {
        (Some(step), _) => format!("{base}.{}", step.id),
        (None, Some(s)) => format!("{base}.{s}"),
        (None, None) => base,
    };
    if let Some(step) = row.srun_step {
        match field {
            "jobname" => return step.name.clone(),
            "start" => return date(Some(step.start_time), "Unknown"),
            "end" => return date(step.end_time, "Unknown"),
            "elapsed" | "elapsedraw" => {
                let seconds = (step.end_time.unwrap_or(now) - step.start_time).max(0.0) as u64;
                return if field == "elapsed" {
                    units::format_long_duration(seconds)
                } else {
                    seconds.to_string()
                };
            }
            "ntasks" => return step.ntasks.to_string(),
            _ => {}
        }
    }
    let started = job.run.start_time.is_some();
    match field {
        "jobid" if job.is_array_record() && job.run.state.is_finished() => job.id.to_string(),
        "jobid" => with_step(job_id_text(job)),
        "jobidraw" => with_step(job.id.to_string()),
        "jobname" => match row.step {
            None => job.req.name.clone(),
            Some(s) => s.to_string(),
        },
        "partition" => {
            if row.is_job() {
                job.partition.clone()
            } else {
                String::new()
            }
        }
        // With accounting, the default account is the user's (as SLURM_JOB_ACCOUNT shows).
        "account" => job
            .req
            .account
            .clone()
            .unwrap_or_else(|| job.req.user.clone()),
        "alloccpus" | "ncpus" => {
            if started {
                job.cpus.to_string()
            } else {
                "0".into()
            }
        }
        "reqcpus" => job.cpus.to_string(),
        "state" => row.state.clone(),
        "exitcode" => row.exit.clone(),
        // Observed: the job's row only, like the user, group, work directory, reason and
        // priority below.
        "derivedexitcode" if !row.is_job() => String::new(),
        "uid" | "gid" | "group" | "workdir" | "reason" | "priority" if !row.is_job() => {
            String::new()
        }
        "derivedexitcode" => "0:0".into(),
        "elapsed" if job.run.start_unaccounted => units::format_long_duration(0),
        "elapsedraw" if job.run.start_unaccounted => "0".into(),
        "elapsed" => units::format_long_duration(elapsed(job, now)),
        "elapsedraw" => elapsed(job, now).to_string(),
        "start" => date(job.run.start_time, "Unknown"),
        "end" => date(job.run.end_time, "Unknown"),
        "eligible" if job.run.start_unaccounted => "Unknown".into(),
        "submit" | "eligible" => date(Some(job.submit_time), "Unknown"),
        "timelimit" => {
            if row.is_job() {
                match job.time_limit.seconds() {
                    Some(s) => units::format_long_duration(s),
                    None => "UNLIMITED".into(),
                }
            } else {
                String::new()
            }
        }
        "nodelist" => {
            if started {
                job.nodelist()
            } else {
                "None assigned".into()
            }
        }
        "nnodes" | "allocnodes" => job.num_nodes.to_string(),
        "user" => {
            if row.is_job() {
                job.req.user.clone()
            } else {
                String::new()
            }
        }
        "uid" => job.req.uid.to_string(),
        "gid" => job.req.gid.to_string(),
        "group" => crate::users::group_name(job.req.gid),
        // Observed: empty on the job's row, 1 on its batch step's.
        "ntasks" if row.is_job() => String::new(),
        "ntasks" => "1".into(),
        "workdir" => job.req.work_dir.clone(),
        "qos" => {
            if row.is_job() {
                job.qos.clone()
            } else {
                String::new()
            }
        }
        "reqmem" => {
            if row.is_job() {
                format!("{}M", job.mem_per_node_mb)
            } else {
                String::new()
            }
        }
        "reason" => job
            .run
            .accounting_reason
            .clone()
            .unwrap_or_else(|| job.run.reason.clone()),
        "cluster" => cluster.to_string(),
        "priority" => job.run.priority.to_string(),
        "submitline" => job.req.command.clone(),
        _ => String::new(),
    }
}

/// sacct prints exit values of 128 and above minus 128 (observed: 255 → `127:0`).
fn exit_text(status: i32) -> String {
    let code = (status >> 8) & 0xff;
    let code = if code >= 128 { code - 128 } else { code };
    format!("{code}:{}", status & 0x7f)
}

/// State of a finished step: a signal (also slurmstepd's launch failure, `0:53`) shows as
/// CANCELLED, a non-zero exit as FAILED (observed on Slurm 22.05).
fn step_state(status: i32) -> String {
    if status & 0x7f != 0 {
        "CANCELLED".into()
    } else if status == 0 {
        "COMPLETED".into()
    } else {
        "FAILED".into()
    }
}

fn rows(job: &Job, allocations_only: bool) -> Vec<Row<'_>> {
    let st = job.run.state;
    let job_state = match (st, job.run.cancelled_by) {
        (JobState::Cancelled, Some(uid)) => format!("CANCELLED by {uid}"),
        _ => st.long().to_string(),
    };
    // The controller's own SIGTERM (cancel, time limit) is not recorded in the job's exit code;
    // other signals (e.g. SIGKILL after kill_wait) are (observed on Slurm 22.05).
    let killed_by_controller = matches!(st, JobState::Cancelled | JobState::Timeout)
        && (job.run.exit_status & 0x7f == 15
            || job.run.exit_status == 0
            || job.run.start_time.is_none());
    let job_exit = if killed_by_controller {
        "0:0".to_string()
    } else {
        exit_text(job.run.exit_status)
    };
    let mut out = vec![Row {
        job,
        step: None,
        srun_step: None,
        state: job_state,
        exit: job_exit,
    }];
    if allocations_only || job.run.start_time.is_none() {
        return out;
    }
    let running = st == JobState::Running;
    let (step_state_text, step_exit) = match (running, job.run.step_status) {
        (true, _) => ("RUNNING".to_string(), "0:0".to_string()),
        (false, Some(s)) => (
            if matches!(st, JobState::Cancelled | JobState::Timeout) {
                "CANCELLED".into()
            } else if st == JobState::NodeFail {
                "FAILED".into()
            } else {
                step_state(s)
            },
            exit_text(s),
        ),
        (false, None) => ("CANCELLED".into(), "0:0".into()),
    };
    match job.req.kind {
        JobKind::Batch => out.push(Row {
            job,
            step: Some("batch"),
            srun_step: None,
            state: step_state_text.clone(),
            exit: step_exit.clone(),
        }),
        JobKind::Interactive => {}
    }
    // No `.extern` row: the reference cluster does not set PrologFlags=contain. salloc's
    // command is no step (observed on 22.05: `salloc true` has the job's row alone); srun's own
    // allocation has its step 0 among the steps below.
    // Steps srun started inside the allocation, after the batch step (observed).
    for step in &job.run.steps {
        let (state, exit) = match (step.end_time, step.status) {
            (None, _) => ("RUNNING".to_string(), "0:0".to_string()),
            (Some(_), Some(status)) if !step.killed => (step_state(status), exit_text(status)),
            (Some(_), Some(status)) => ("CANCELLED".into(), exit_text(status)),
            (Some(_), None) => ("CANCELLED".into(), "0:15".into()),
        };
        out.push(Row {
            job,
            step: None,
            srun_step: Some(step),
            state,
            exit,
        });
    }
    out
}

/// Runs sacct; returns the exit code.
pub fn main(call: &mut Call) -> i32 {
    let cli = match super::parse_command_line(call, SPEC, false, 1, false, HELP) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let mut ids: Option<Vec<u32>> = None;
    let mut selectors = Vec::new();
    // Every `-j` adds to the list (observed on real Slurm 22.05: `-j 4700 -j 4701` reports both;
    // submitit polls with one `-j` per job it follows).
    let lists = cli.values("jobs");
    if !lists.is_empty() {
        for item in lists.into_iter().flat_map(split_job_list) {
            match JobSelector::parse(item) {
                Some(s) => selectors.push(s),
                None => {
                    eprintln!("sacct: fatal: Bad job/step specified: {item}");
                    return 1;
                }
            }
        }
        ids = Some(selectors.iter().map(|s| s.id).collect());
    }
    let states: Option<Vec<JobState>> = match cli.value("state") {
        Some(list) => {
            let mut v = Vec::new();
            for s in list.split(',') {
                match JobState::parse(s) {
                    Some(st) => v.push(st),
                    None => {
                        eprintln!("sacct: fatal: unrecognized job state value {s}");
                        return 1;
                    }
                }
            }
            Some(v)
        }
        None => None,
    };
    let fields_text = cli.value("format").map(str::to_string).unwrap_or_else(|| {
        if cli.has("brief") {
            BRIEF_FIELDS.into()
        } else if cli.has("long") {
            LONG_FIELDS.into()
        } else {
            DEFAULT_FIELDS.into()
        }
    });
    let mut fields: Vec<(String, String, i64)> = Vec::new();
    for f in fields_text.split(',').filter(|f| !f.is_empty()) {
        let (name, width) = match f.split_once('%') {
            Some((n, w)) => (n, Some(given_width(w))),
            None => (f, None),
        };
        let key = name.to_ascii_lowercase();
        fields.push((
            header_name(name),
            key.clone(),
            width.unwrap_or_else(|| default_width(&key)),
        ));
    }
    // sacct sets a given width on its one entry per field (`fields[i].len = newlen` in
    // 22.05 `src/sacct/options.c`), so a field named twice has the last width given both
    // times (observed: `JobName%10,JobName%-10` prints both left-justified).
    let given: Vec<(String, i64)> = fields_text
        .split(',')
        .filter_map(|f| f.split_once('%'))
        .map(|(n, w)| (n.to_ascii_lowercase(), given_width(w)))
        .collect();
    for (_, key, width) in &mut fields {
        if let Some((_, w)) = given.iter().rev().find(|(k, _)| k == key) {
            *width = *w;
        }
    }
    let named_jobs = ids.is_some();
    let (jobs, now, cluster) = match super::fetch_jobs(call, ids, true, "sacct: error: slurmdbd") {
        Ok(x) => x,
        Err(code) => return code,
    };
    let mut jobs = select_jobs(jobs, &selectors);
    // An array's jobs together, by task (observed: `123_1`, `123_2`, `123_[3-5%2]`).
    jobs.sort_by_key(|j| (j.array_job_id(), j.first_task()));
    let users: Option<Vec<String>> = cli
        .value("user")
        .map(|u| u.split(',').map(str::to_string).collect());
    // Observed on Slurm 22.05: without -j, -u or -a a user sees its own jobs, root everyone's.
    let (_, uid, _) = super::identity();
    let users = users.or_else(|| {
        (!named_jobs && !cli.has("allusers") && uid != 0).then(|| vec![uid.to_string()])
    });
    let names: Option<Vec<&str>> = cli.value("name").map(|n| n.split(',').collect());
    let parsable = cli.has("parsable2") || cli.has("parsable");
    let trailing = cli.has("parsable") && !cli.has("parsable2");
    let mut out = String::new();
    let line = |vals: Vec<String>, header: bool, out: &mut String| {
        if parsable {
            out.push_str(&vals.join("|"));
            if trailing {
                out.push('|');
            }
        } else {
            for (v, (_, _, w)) in vals.iter().zip(&fields) {
                out.push_str(&column(v, *w, header));
            }
        }
        out.push('\n');
    };
    if !cli.has("noheader") {
        line(
            fields.iter().map(|(h, _, _)| h.clone()).collect(),
            true,
            &mut out,
        );
        if !parsable {
            line(
                fields
                    .iter()
                    .map(|(_, _, w)| "-".repeat(w.unsigned_abs() as usize))
                    .collect(),
                true,
                &mut out,
            );
        }
    }
    for job in &jobs {
        if states.as_ref().is_some_and(|s| !s.contains(&job.run.state)) {
            continue;
        }
        if users.as_ref().is_some_and(|u| {
            !u.iter()
                .any(|u| u == &job.req.user || u == &job.req.uid.to_string())
        }) {
            continue;
        }
        if names
            .as_ref()
            .is_some_and(|n| !n.contains(&job.req.name.as_str()))
        {
            continue;
        }
        // Observed on Slurm 22.05: with -D every earlier run of a requeued job comes first,
        // its record `REQUEUED` with exit code 0:0, its steps as they ended
        // (slurm-observed.md 63).
        let earlier: Vec<Job> = if cli.has("duplicates") {
            job.run
                .previous_runs
                .iter()
                .map(|run| Job {
                    run: run.clone(),
                    ..job.clone()
                })
                .collect()
        } else {
            Vec::new()
        };
        let requeued = earlier.iter().map(|j| (j, true));
        for (shown, requeued) in requeued.chain(std::iter::once((job, false))) {
            for mut row in rows(shown, cli.has("allocations")) {
                if requeued && row.is_job() {
                    row.state = "REQUEUED".into();
                    row.exit = "0:0".into();
                }
                let vals = fields
                    .iter()
                    .map(|(_, key, _)| value(&row, key, now, &cluster))
                    .collect();
                line(vals, false, &mut out);
            }
        }
    }
    print!("{out}");
    0
}
