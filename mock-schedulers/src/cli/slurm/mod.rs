//! The fake Slurm commands. Each command lives in its own file; this module holds what they
//! share (the caller's identity, job requests, daemon queries).

pub mod format;
pub mod multi_prog;
pub mod options;
pub mod parse_time;
pub mod sacct;
pub mod sbatch;
pub mod scancel;
pub mod scontrol;
pub mod sinfo;
pub mod squeue;
pub mod srun;
pub mod step;

use std::collections::BTreeMap;

use crate::cli::Call;
use crate::cli::getopt::{self, Opt, Parsed};
use crate::model::{Job, JobKind, JobRequest};
use crate::protocol::{Request, Response};
use crate::units::{self, TimeLimit};

/// The caller's user name, uid and gid.
pub fn identity() -> (String, u32, u32) {
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| uid.to_string());
    (name, uid, gid)
}

pub use crate::host::short_hostname;

/// The fake Slurm commands, by the name each is called as.
pub const COMMANDS: &[&str] = &[
    "sbatch", "squeue", "scancel", "sacct", "scontrol", "srun", "salloc", "sinfo",
];

/// Prefixes of the variables Slurm's commands read, kept in call records.
pub const ENV_PREFIXES: &[&str] = &[
    "SLURM_", "SBATCH_", "SRUN_", "SALLOC_", "SQUEUE_", "SACCT_", "SINFO_", "SCANCEL_",
];

/// Runs the Slurm command `prog`; `None` when it is not one.
pub fn run(prog: &str, call: &mut Call) -> Option<i32> {
    Some(match prog {
        "sbatch" => sbatch::main(call),
        "squeue" => squeue::main(call),
        "scancel" => scancel::main(call),
        "sacct" => sacct::main(call),
        "scontrol" => scontrol::main(call),
        "srun" => srun::main(call, false),
        "salloc" => srun::main(call, true),
        "sinfo" => sinfo::main(call),
        _ => return None,
    })
}

/// `slurm_strerror` of an unreachable controller.
pub const CONNECT_FAILURE: &str = "Unable to contact slurm controller (connect failure)";
/// `slurm_strerror` of a controller that did not answer in time (the status-timeout
/// injection).
pub const SOCKET_TIMEOUT: &str = "Socket timed out on send/recv operation";

/// Parses options; on error prints getopt's message and the hint, and returns the exit code.
pub fn parse_opts(
    call: &Call,
    spec: &[Opt],
    stop: bool,
    exit_code: i32,
    hint: bool,
) -> Result<Parsed, i32> {
    getopt::parse(&call.prog, &call.args(), spec, stop).map_err(|msg| {
        eprintln!("{msg}");
        if hint {
            eprintln!("Try \"{} --help\" for more information", call.prog);
        }
        exit_code
    })
}

/// Slurm's version line, as every command prints it for `--version`.
pub const VERSION_LINE: &str = "slurm 22.05.8";

/// Parses options like [`parse_opts`] and answers `--help`/`--usage` (with `help`) and
/// `--version` itself; `Err` carries the exit code to return in both cases.
pub fn parse_command_line(
    call: &Call,
    spec: &[Opt],
    stop: bool,
    exit_code: i32,
    hint: bool,
    help: &str,
) -> Result<Parsed, i32> {
    let cli = parse_opts(call, spec, stop, exit_code, hint)?;
    if cli.has("help") || cli.has("usage") {
        print!("{help}");
        return Err(0);
    }
    if cli.has("version") {
        println!("{VERSION_LINE}");
        return Err(0);
    }
    Ok(cli)
}

/// Fetches jobs; prints the error as `<what> error: <text>` and returns exit 1 on failure.
pub fn fetch_jobs(
    call: &mut Call,
    ids: Option<Vec<u32>>,
    accounting: bool,
    what: &str,
) -> Result<(Vec<Job>, f64, String), i32> {
    let prog = call.prog.clone();
    let conn = match call.conn() {
        Ok(c) => c,
        Err(e) => {
            call.unreachable(&e, &format!("{what} error: {CONNECT_FAILURE}"));
            return Err(1);
        }
    };
    match conn.call(&Request::Jobs {
        ids,
        accounting,
        status_command: true,
    }) {
        Ok(Response::Jobs {
            jobs,
            now,
            cluster_name,
        }) => {
            format::note_now(now);
            Ok((jobs, now, cluster_name))
        }
        Ok(Response::StatusTimeout) => {
            eprintln!("{what} error: {SOCKET_TIMEOUT}");
            Err(1)
        }
        Ok(Response::Error { message, .. }) => {
            eprintln!("{what} error: {message}");
            Err(1)
        }
        Ok(_) | Err(_) => {
            eprintln!("{prog}: error: {what}: unexpected answer from the daemon");
            Err(1)
        }
    }
}

/// Resource and placement options common to sbatch, srun and salloc.
#[derive(Debug, Default, Clone)]
pub struct ResourceOpts {
    /// Request under construction.
    pub name: Option<String>,
    /// -p
    pub partition: Option<String>,
    /// -q
    pub qos: Option<String>,
    /// -A
    pub account: Option<String>,
    /// -t
    pub time: Option<TimeLimit>,
    /// -n
    pub ntasks: Option<u32>,
    /// -c
    pub cpus_per_task: Option<u32>,
    /// -N
    pub nodes: Option<u32>,
    /// --ntasks-per-node (also shown in `scontrol show job`)
    pub ntasks_per_node: Option<u32>,
    /// --mem
    pub mem: Option<u64>,
    /// --mem-per-cpu
    pub mem_per_cpu: Option<u64>,
    /// -w
    pub nodelist: Option<Vec<String>>,
    /// -C
    pub constraint: Option<String>,
    /// --exclusive
    pub exclusive: bool,
    /// -H
    pub hold: bool,
    /// -I
    pub immediate: bool,
    /// -D
    pub chdir: Option<String>,
    /// -x
    pub exclude: Option<Vec<String>>,
    /// --nice
    pub nice: i32,
    /// --priority (root's)
    pub priority: Option<u32>,
    /// Options shown in `scontrol show job` without other effect.
    pub shown: options::Shown,
}

/// Applies one resource option; Ok(false) when the option is not a resource option. Errors
/// are Slurm's `<prog>: error:` lines plus an exit code.
pub fn apply_resource_opt(
    prog: &str,
    r: &mut ResourceOpts,
    long: &str,
    value: Option<&str>,
) -> Result<bool, (String, i32)> {
    let v = value.unwrap_or("");
    let num = |what: &str| -> Result<u32, (String, i32)> {
        v.trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                (
                    format!("{prog}: error: Invalid numeric value \"{v}\" for {what}."),
                    1,
                )
            })
    };
    if matches!(long, "ntasks-per-node" | "tasks-per-node") {
        // Its value was checked with the other recorded options (`options::check`).
        r.ntasks_per_node = v.trim().parse::<u32>().ok().filter(|n| *n > 0);
    }
    if r.shown.apply(long, value) {
        return Ok(true);
    }
    match long {
        "job-name" => r.name = Some(v.to_string()),
        "partition" => r.partition = Some(v.to_string()),
        "qos" => r.qos = Some(v.to_string()),
        "account" => r.account = Some(v.to_string()),
        "time" => {
            r.time = Some(
                units::parse_time_limit(v)
                    .map_err(|_| (format!("{prog}: error: Invalid --time specification"), 255))?,
            )
        }
        "ntasks" => r.ntasks = Some(num("--ntasks")?),
        "cpus-per-task" => r.cpus_per_task = Some(num("--cpus-per-task")?),
        "nodes" => {
            let first = v.split('-').next().unwrap_or("");
            r.nodes = Some(
                first
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        (
                            format!("{prog}: error: \"{v}\" is not a valid node count"),
                            255,
                        )
                    })?,
            )
        }
        "mem" => {
            r.mem = Some(
                units::parse_memory_mb(v)
                    .map_err(|_| (format!("{prog}: error: Invalid --mem specification"), 255))?,
            )
        }
        "mem-per-cpu" => {
            r.mem_per_cpu = Some(units::parse_memory_mb(v).map_err(|_| {
                (
                    format!("{prog}: error: Invalid --mem-per-cpu specification"),
                    255,
                )
            })?)
        }
        // slurm_read_hostfile() (22.05 src/common/read_config.c): host lists one or more a
        // line, `#` starts a comment; the names replace --nodelist. Observed: an unreadable or
        // empty file (`docs/slurm-observed.md` 68).
        "nodefile" => {
            let invalid = |first: String| {
                (
                    format!("{first}\n{prog}: error: Invalid --nodefile node file"),
                    255,
                )
            };
            let text = std::fs::read_to_string(v).map_err(|e| {
                invalid(format!(
                    "{prog}: error: slurm_allocate_resources error opening file {v}, {}",
                    crate::cli::strerror(&e)
                ))
            })?;
            let mut nodes = Vec::new();
            for line in text.lines() {
                let line = line.split('#').next().unwrap_or("");
                for list in line.split_whitespace() {
                    nodes.extend(
                        crate::hostlist::expand(list).map_err(|_| {
                            (format!("{prog}: error: Invalid node name specified"), 1)
                        })?,
                    );
                }
            }
            if nodes.is_empty() {
                return Err(invalid(format!("{prog}: error: Hostlist is empty!")));
            }
            let mut seen = std::collections::HashSet::new();
            nodes.retain(|n| seen.insert(n.clone()));
            r.nodelist = Some(nodes);
        }
        "nodelist" | "exclude" => {
            let nodes = crate::hostlist::expand(v)
                .map_err(|_| (format!("{prog}: error: Invalid node name specified"), 1))?;
            if long == "nodelist" {
                r.nodelist = Some(nodes);
            } else {
                r.exclude = Some(nodes);
            }
        }
        "constraint" => r.constraint = Some(v.to_string()),
        // `--exclusive=user|mcs` share nodes with the user's (or label's) jobs: recorded.
        "exclusive" => r.exclusive = value.is_none(),
        "hold" => r.hold = true,
        "immediate" => r.immediate = true,
        "chdir" => r.chdir = Some(v.to_string()),
        // slurm_opt.c arg_set_nice: strtol of the value (so "abc" is 0), 100 without one.
        "nice" => r.nice = value.map_or(100, options::leading_int),
        // slurm_opt.c arg_set_priority: "TOP" or a number; the controller lets only an
        // operator set it and ignores it for others (job_mgr.c validate_job_create_req).
        "priority" => {
            r.priority = if v.eq_ignore_ascii_case("TOP") {
                Some(options::PRIORITY_TOP)
            } else {
                u32::try_from(options::leading_int(v))
                    .ok()
                    .filter(|p| *p > 0)
            }
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Builds a request from resource options.
pub fn build_request(
    kind: JobKind,
    r: &ResourceOpts,
    default_name: &str,
    env: BTreeMap<String, String>,
    command: String,
) -> JobRequest {
    let (user, uid, gid) = identity();
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "/".into());
    let work_dir = match &r.chdir {
        Some(d) if d.starts_with('/') => d.clone(),
        Some(d) => format!("{}/{}", cwd.trim_end_matches('/'), d),
        None => cwd.clone(),
    };
    // sbatch, salloc and srun (22.05 `_opt_verify` in src/sbatch/opt.c, src/salloc/opt.c,
    // src/srun/libsrun/opt.c): `--ntasks-per-node` with a node count and no task count makes
    // the task count, nodes × tasks per node. With a task count and no node count the
    // controller's node selection puts at most that many tasks on a node, so the job takes
    // ceil(tasks / per node) nodes (`sbatch -n 4 --ntasks-per-node=2`: 2 nodes,
    // SLURM_TASKS_PER_NODE `2(x2)`).
    let (ntasks, nodes) = match (r.ntasks, r.nodes, r.ntasks_per_node) {
        (None, Some(n), Some(per)) => (Some(n.saturating_mul(per)), Some(n)),
        (Some(t), None, Some(per)) if per > 0 => (Some(t), Some(t.div_ceil(per))),
        (t, n, _) => (t, n),
    };
    JobRequest {
        kind,
        name: r.name.clone().unwrap_or_else(|| default_name.to_string()),
        partition: r.partition.clone(),
        qos: r.qos.clone(),
        account: r.account.clone(),
        time_limit: r.time,
        ntasks,
        cpus_per_task: r.cpus_per_task,
        nodes,
        ntasks_per_node: r.ntasks_per_node,
        mem_mb: r.mem,
        mem_per_cpu_mb: r.mem_per_cpu,
        nodelist: r.nodelist.clone(),
        constraint: r.constraint.clone(),
        exclude: r.exclude.clone(),
        nice: r.nice,
        priority: r.priority.filter(|_| uid == 0),
        exclusive: r.exclusive,
        hold: r.hold,
        begin: None,
        begin_after: None,
        immediate: r.immediate,
        signal: None,
        signal_batch_shell: false,
        no_requeue: false,
        work_dir,
        submit_dir: cwd,
        submit_host: short_hostname(),
        stdout: None,
        stderr: None,
        stdin: None,
        append: false,
        script: None,
        args: Vec::new(),
        env,
        user,
        uid,
        gid,
        command,
        name_from_stdin: false,
        flavor: crate::flavor::Flavor::Slurm,
        stage_out: false,
        debug_log: None,
        attributes: r.shown.attributes(),
        relations: Default::default(),
    }
}

/// Parses `--begin=now+N[seconds|minutes|hours|days]` into seconds; `now` is 0.
pub fn parse_begin(v: &str) -> Option<f64> {
    let rest = v.strip_prefix("now")?;
    if rest.is_empty() {
        return Some(0.0);
    }
    let rest = rest.strip_prefix('+')?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let n: f64 = digits.parse().ok()?;
    let unit = rest.get(digits.len()..)?;
    let mult = match unit {
        "" | "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
        "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
        "h" | "hour" | "hours" => 3600.0,
        "d" | "day" | "days" => 86400.0,
        _ => return None,
    };
    // So many digits that the offset is no number any more: no time at all.
    Some(n * mult).filter(|secs| secs.is_finite())
}

/// How srun describes a task killed by `sig` (`strsignal`'s words).
pub fn signal_description(sig: i32) -> &'static str {
    match sig {
        1 => "Hangup",
        2 => "Interrupt",
        6 => "Aborted",
        9 => "Killed",
        10 => "User defined signal 1",
        11 => "Segmentation fault",
        12 => "User defined signal 2",
        15 => "Terminated",
        _ => "Killed",
    }
}

/// Parses `--signal=[{R|B}:]<sig>[@<secs>]`.
pub fn parse_signal_spec(v: &str) -> Option<(i32, u64, bool)> {
    let (flags, rest) = match v.split_once(':') {
        Some((f, r)) if f.chars().all(|c| matches!(c, 'R' | 'B')) => (f, r),
        _ => ("", v),
    };
    let (sig, secs) = match rest.split_once('@') {
        Some((s, t)) => (s, t.parse::<u64>().ok()?),
        None => (rest, 60),
    };
    Some((signal_number(sig)?, secs, flags.contains('B')))
}

/// Signal number from a number or name (`TERM`, `SIGTERM`, `15`).
pub fn signal_number(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let name = s.to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    Some(match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ABRT" => 6,
        "KILL" => 9,
        "USR1" => 10,
        "SEGV" => 11,
        "USR2" => 12,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        "CONT" => 18,
        "STOP" => 19,
        "TSTP" => 20,
        "URG" => 23,
        "XCPU" => 24,
        "WINCH" => 28,
        _ => return None,
    })
}

/// Checks every option as the Slurm command does before and while it asks the controller
/// (`options::check`), prints what it says about options it ignores, and on a refusal prints
/// it and returns the exit code. `cluster` gives the cluster's name, asked only when an option
/// names a cluster.
pub fn check_options(
    prog: &str,
    opts: &[(&'static str, Option<String>)],
    cluster: impl FnOnce() -> String,
) -> Result<(), i32> {
    let cluster = if opts
        .iter()
        .any(|(l, _)| matches!(*l, "cluster" | "clusters"))
    {
        cluster()
    } else {
        String::new()
    };
    let mut deferred = None;
    for (long, value) in opts {
        match options::check(prog, long, value.as_deref(), &cluster) {
            Ok(()) => {}
            Err(refusal) if refusal.deferred => {
                deferred.get_or_insert(refusal);
            }
            Err(refusal) => return Err(say(&refusal)),
        }
        if let Some(line) = options::notice(prog, long) {
            eprintln!("{line}");
        }
    }
    // job_mgr.c validate_job_create_req: only an operator may lower the nice value.
    let nice = opts
        .iter()
        .rev()
        .find(|(l, _)| *l == "nice")
        .map(|(_, v)| v.as_deref().map_or(100, options::leading_int));
    if nice.is_some_and(|n| n < 0) && identity().1 != 0 {
        deferred.get_or_insert(options::Refusal::controller(prog, "Invalid --nice value"));
    }
    match deferred {
        Some(refusal) => Err(say(&refusal)),
        None => Ok(()),
    }
}

fn say(refusal: &options::Refusal) -> i32 {
    for line in &refusal.stdout {
        println!("{line}");
    }
    for line in &refusal.lines {
        eprintln!("{line}");
    }
    refusal.code
}

/// The cluster's name, as `--clusters` compares it (empty when the daemon does not answer).
pub fn cluster_name(call: &mut Call) -> String {
    let Ok(conn) = call.conn() else {
        return String::new();
    };
    match conn.call(&Request::Cluster {
        status_command: false,
    }) {
        Ok(Response::Cluster { cluster, .. }) => cluster.cluster_name.clone(),
        _ => String::new(),
    }
}
