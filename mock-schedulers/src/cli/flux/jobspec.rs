//! What `flux alloc`, `flux run` and `flux submit` share: their options
//! (`src/bindings/python/flux/cli/base.py` `MiniCmd`, `SubmitBaseCmd`, `BatchAllocCmd`), the
//! checks Python's Jobspec makes before anything is sent (`src/bindings/python/flux/job/
//! Jobspec.py`), the job's environment (`--env` rules), the checks the instance makes on
//! submission (queue time and size limits, the scheduler's feasibility check), and the small
//! job shell the fake runs tasks under.

use std::collections::BTreeMap;

use super::args::{self, Opt, Parsed, Takes, opt, opt_alias};
use super::units;
use crate::cli::Call;
use crate::config::{Cluster, Partition};
use crate::flavor::Flavor;
use crate::flavor::flux::{self as rules, attr};
use crate::model::{JobKind, JobRequest};
use crate::protocol::{Request, Response};
use crate::units::TimeLimit;

/// The submission command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmd {
    /// `flux alloc`.
    Alloc,
    /// `flux run`.
    Run,
    /// `flux submit`.
    Submit,
}

impl Cmd {
    /// The subcommand word.
    pub fn word(self) -> &'static str {
        match self {
            Cmd::Alloc => "alloc",
            Cmd::Run => "run",
            Cmd::Submit => "submit",
        }
    }

    /// The logger name of its error lines (`flux-run: ERROR: ...`).
    pub fn logger(self) -> String {
        format!("flux-{}", self.word())
    }

    /// argparse's program name (`flux run: error: ...`).
    pub fn prog(self) -> String {
        format!("flux {}", self.word())
    }

    /// argparse's usage line.
    pub fn usage(self) -> &'static str {
        match self {
            Cmd::Alloc => "flux alloc [OPTIONS...] [COMMAND] [ARGS...]",
            Cmd::Run => "flux run [OPTIONS...] COMMAND [ARGS...]",
            Cmd::Submit => "flux submit [OPTIONS...] COMMAND [ARGS...]",
        }
    }
}

use Takes::{Flag, Optional, Value};

/// `MiniCmd.create_parser`: every submission command.
const COMMON: &[Opt] = &[
    opt(None, "help", Optional),
    opt(Some('B'), "bank", Value),
    opt(Some('q'), "queue", Value),
    opt(Some('t'), "time-limit", Value),
    opt(None, "urgency", Value),
    opt(None, "job-name", Value),
    opt(Some('o'), "setopt", Value),
    opt(Some('S'), "setattr", Value),
    opt(None, "add-file", Value),
    opt(None, "dependency", Value),
    opt_alias(None, "requires", Value, &["require"]),
    opt(None, "begin-time", Value),
    opt(None, "env", Value),
    opt(None, "env-remove", Value),
    opt(None, "env-file", Value),
    opt(None, "rlimit", Value),
    opt(None, "input", Value),
    opt(None, "output", Value),
    opt(None, "error", Value),
    opt(Some('u'), "unbuffered", Flag),
    opt(Some('l'), "label-io", Flag),
    opt(None, "cwd", Value),
    opt(None, "flags", Value),
    opt(None, "signal", Value),
    opt_alias(None, "dry-run", Flag, &["dry"]),
    opt(None, "quiet", Flag),
    opt(None, "list-plugins", Flag),
    opt(None, "debug-emulate", Flag),
];

/// `SubmitBaseCmd`: `flux run` and `flux submit`.
const TASKS: &[Opt] = &[
    opt(None, "taskmap", Value),
    opt(Some('N'), "nodes", Value),
    opt(Some('x'), "exclusive", Flag),
    opt(Some('n'), "ntasks", Value),
    opt(Some('c'), "cores-per-task", Value),
    opt(Some('g'), "gpus-per-task", Value),
    opt(None, "cores", Value),
    opt(None, "tasks-per-node", Value),
    opt(None, "tasks-per-core", Value),
    opt(None, "gpus-per-node", Value),
    opt(Some('v'), "verbose", Flag),
];

/// `RunCmd`.
const RUN: &[Opt] = &[opt(None, "wait-event", Value)];

/// `SubmitBulkCmd` and `SubmitCmd`.
const SUBMIT: &[Opt] = &[
    opt(None, "cc", Value),
    opt(None, "bcc", Value),
    opt(None, "wait-event", Value),
    opt(None, "wait", Flag),
    opt(None, "watch", Flag),
    opt(None, "log", Value),
    opt(None, "log-stderr", Value),
    opt(None, "progress", Flag),
    opt(None, "jps", Flag),
];

/// `BatchAllocCmd` and `AllocCmd`.
const ALLOC: &[Opt] = &[
    opt(None, "add-brokers", Value),
    opt(None, "conf", Value),
    opt_alias(None, "broker-opts", Value, &["broker-opt"]),
    opt(None, "dump", Optional),
    opt(Some('n'), "nslots", Value),
    opt(Some('c'), "cores-per-slot", Value),
    opt(Some('g'), "gpus-per-slot", Value),
    opt(Some('N'), "nodes", Value),
    opt(Some('x'), "exclusive", Flag),
    opt(Some('v'), "verbose", Flag),
    opt(None, "bg", Flag),
];

/// Options Flux has that the simulated cluster refuses rather than ignores.
const REFUSED: &[&str] = &[
    "dependency",
    "add-file",
    "dry-run",
    "cc",
    "bcc",
    "watch",
    "log",
    "log-stderr",
    "taskmap",
    "cores",
    "tasks-per-node",
    "tasks-per-core",
    "gpus-per-node",
    "add-brokers",
];

fn spec(cmd: Cmd) -> Vec<Opt> {
    let mut all: Vec<Opt> = COMMON.to_vec();
    match cmd {
        Cmd::Alloc => all.extend_from_slice(ALLOC),
        Cmd::Run => {
            all.extend_from_slice(TASKS);
            all.extend_from_slice(RUN);
        }
        Cmd::Submit => {
            all.extend_from_slice(TASKS);
            all.extend_from_slice(SUBMIT);
        }
    }
    all
}

fn help(cmd: Cmd) -> String {
    let what = match cmd {
        Cmd::Alloc => {
            "Allocate resources and start a new Flux instance. Once the instance\nhas started, attach to it interactively.\n\nSimulated cluster: COMMAND (default: $SHELL) runs in the allocation with\nFLUX_URI and FLUX_ENCLOSING_ID set; flux alloc exits with its exit code."
        }
        Cmd::Run => {
            "run a job interactively\n\nSimulated cluster: the tasks run in the allocation, their output is flux run's."
        }
        Cmd::Submit => {
            "enqueue a job\n\nSimulated cluster: prints the jobid; the output is kept for flux job attach\nunless --output/--error name files (mustache templates such as {{id}})."
        }
    };
    let resources = match cmd {
        Cmd::Alloc => {
            "  -N, --nodes=N             Distribute allocated resource slots across N nodes\n  -n, --nslots=N            Number of total resource slots requested\n  -c, --cores-per-slot=N    Number of cores to allocate per slot\n  -x, --exclusive           With -N, allocate nodes exclusively\n  -v, --verbose             Print the jobid on stderr\n      --bg                  Wait for the instance to start, print its jobid, exit\n"
        }
        _ => {
            "  -N, --nodes=N             Number of nodes to allocate\n  -n, --ntasks=N            Number of tasks to start\n  -c, --cores-per-task=N    Number of cores to allocate per task\n  -x, --exclusive           With -N, allocate nodes exclusively\n  -v, --verbose             Print the jobid on stderr (flux run)\n      --output=TEMPLATE     Redirect job stdout to a file\n      --error=TEMPLATE      Redirect job stderr to a file\n      --input=FILENAME      Redirect job stdin from a file\n"
        }
    };
    let example = match cmd {
        Cmd::Alloc => "  flux alloc -N1 -t 10m -v ./ci-script.sh",
        Cmd::Run => "  flux run -n2 -t 30s hostname",
        Cmd::Submit => "  flux submit -N1 --output=job-{{id}}.out ./build.sh",
    };
    format!(
        "usage: {}\n\n{what}\n\noptions:\n{resources}  -q, --queue=NAME          Submit a job to a specific named queue\n  -t, --time-limit=MIN|FSD  Time limit in minutes when no units provided,\n                            otherwise in FSD, e.g. 30s, 2d, 1.5h\n      --job-name=NAME       Set an optional name for job to NAME\n      --urgency=N           Set job urgency (0-31), hold=0, default=16\n      --env=RULE            Control how environment variables are exported\n      --env-remove=PATTERN  Remove environment variables matching PATTERN\n      --cwd=DIRECTORY       Set job working directory\n      --help                Show this help message and exit\n\nExample:\n{example}\n",
        cmd.usage()
    )
}

/// A submission, parsed and checked, ready to send.
#[derive(Debug, Clone)]
pub struct Submission {
    /// The command.
    pub cmd: Cmd,
    /// The parsed options.
    pub parsed: Parsed,
    /// The job's command (for `flux alloc`, its initial program; empty for `--bg` without one).
    pub command: Vec<String>,
    /// The request for the daemon.
    pub req: JobRequest,
    /// `-v` count.
    pub verbose: usize,
    /// `--output`.
    pub output: Option<String>,
    /// `--error`.
    pub error: Option<String>,
    /// `--input`.
    pub input: Option<String>,
    /// GPUs per task or slot.
    pub gpus: u32,
}

/// Prints argparse's error and returns its exit code.
pub fn usage_error(cmd: Cmd, msg: &str) -> i32 {
    eprintln!("usage: {}", cmd.usage());
    eprintln!("{}: error: {msg}", cmd.prog());
    2
}

/// A submission the instance refused: `flux run` and `flux alloc` let the error end the
/// command (`flux-run: ERROR: <text>`); `flux submit` prints the `OSError` of the submission
/// future (`base.py` `submit_cb`: `[Errno 22] <text>`). Exit 1.
pub fn refused(cmd: Cmd, msg: &str) -> i32 {
    if cmd == Cmd::Submit {
        eprintln!("[Errno {}] {msg}", libc::EINVAL);
        1
    } else {
        error(cmd, msg)
    }
}

fn error(cmd: Cmd, msg: &str) -> i32 {
    eprintln!("{}: ERROR: {msg}", cmd.logger());
    1
}

/// argparse `type=int`: Python's `int()` of a string.
fn python_int(text: &str) -> Option<i64> {
    let t = text.trim();
    let (sign, digits) = match t.strip_prefix('-') {
        Some(d) => (-1, d),
        None => (1, t.strip_prefix('+').unwrap_or(t)),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'_')
    {
        return None;
    }
    digits
        .replace('_', "")
        .parse::<i64>()
        .ok()
        .map(|n| sign * n)
}

/// Glob matching with `*` and `?` (`fnmatch` as `--env` rules use it).
fn glob(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some(('?', rest)) => !n.is_empty() && go(rest, &n[1..]),
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

/// The job environment: the caller's, changed by `--env`, `--env-remove` and `--env-file`
/// rules in order (`doc/man1/common/job-environment.rst`: `VAR=VAL` sets, `PATTERN` copies
/// matching variables of the caller's environment, `-PATTERN` removes, `^FILE` reads rules
/// from a file). `$VAR` in values is not expanded.
fn job_environment(parsed: &Parsed, cmd: Cmd) -> Result<BTreeMap<String, String>, i32> {
    let caller = crate::cli::environment();
    let mut env = caller.clone();
    let mut rules_in_order: Vec<String> = Vec::new();
    for (long, value) in &parsed.opts {
        let Some(v) = value else { continue };
        match *long {
            "env" => rules_in_order.push(v.clone()),
            "env-remove" => rules_in_order.push(format!("-{v}")),
            "env-file" => rules_in_order.push(format!("^{v}")),
            _ => {}
        }
    }
    let mut queue: std::collections::VecDeque<String> = rules_in_order.into();
    while let Some(rule) = queue.pop_front() {
        if let Some(file) = rule.strip_prefix('^') {
            let text =
                std::fs::read_to_string(file).map_err(|e| error(cmd, &format!("{file}: {e}")))?;
            for line in text.lines().rev() {
                let line = line.trim();
                if !line.is_empty() && !line.starts_with('#') {
                    queue.push_front(line.to_string());
                }
            }
        } else if let Some(pattern) = rule.strip_prefix('-') {
            env.retain(|k, _| !glob(pattern, k));
        } else if let Some((k, v)) = rule.split_once('=') {
            env.insert(k.to_string(), v.to_string());
        } else {
            for (k, v) in &caller {
                if glob(&rule, k) {
                    env.insert(k.clone(), v.clone());
                }
            }
        }
    }
    Ok(env)
}

/// The caller's state directory as an absolute path, and the fake's Flux directory in it.
pub fn flux_root(call: &Call) -> String {
    let dir = if call.dir.is_absolute() {
        call.dir.clone()
    } else {
        std::env::current_dir()
            .map(|c| c.join(&call.dir))
            .unwrap_or_else(|_| call.dir.clone())
    };
    dir.join("flux").display().to_string()
}

/// Parses and checks a submission command line; `Err` is the exit code, with the message
/// printed.
pub fn prepare(call: &Call, cmd: Cmd, args: &[String]) -> Result<Submission, i32> {
    let table = spec(cmd);
    let parsed = args::parse(args, &table, true).map_err(|m| usage_error(cmd, &m))?;
    if parsed.has("help") {
        print!("{}", help(cmd));
        return Err(0);
    }
    if parsed.has("list-plugins") {
        return Err(0);
    }
    if let Some(name) = REFUSED.iter().find(|n| parsed.has(n)) {
        return Err(error(
            cmd,
            &format!("--{name} is not supported by mock-cluster"),
        ));
    }
    let mut command = parsed.operands.clone();
    if command.first().map(String::as_str) == Some("--") {
        command.remove(0);
    }
    let bg = parsed.has("bg");
    let mut exclusive = parsed.has("exclusive");
    let (ntasks, cpus_per_task, nodes, gpus);
    if cmd == Cmd::Alloc {
        // argparse type=int (exit 2), then `init_common`.
        let int = |long: &str, short: char| -> Result<Option<i64>, i32> {
            match parsed.value(long) {
                None => Ok(None),
                Some(v) => python_int(v).map(Some).ok_or_else(|| {
                    usage_error(
                        cmd,
                        &format!("argument -{short}/--{long}: invalid int value: '{v}'"),
                    )
                }),
            }
        };
        let nslots = int("nslots", 'n')?;
        let cores = int("cores-per-slot", 'c')?.unwrap_or(1);
        let gpu = int("gpus-per-slot", 'g')?.unwrap_or(0);
        let n_nodes = int("nodes", 'N')?;
        let slots = match nslots.filter(|n| *n != 0) {
            Some(n) => n,
            None => match n_nodes.filter(|n| *n != 0) {
                Some(n) => {
                    exclusive = true;
                    n
                }
                None => {
                    return Err(error(cmd, "Number of slots to allocate must be specified"));
                }
            },
        };
        if slots < 1 {
            return Err(error(cmd, "node, slot, or core count must be > 0"));
        }
        if cores < 1 {
            return Err(error(cmd, "node, slot, or core count must be > 0"));
        }
        if let Some(n) = n_nodes
            && n < 1
        {
            return Err(error(cmd, "node, slot, or core count must be > 0"));
        }
        if command.is_empty() && !bg {
            // runat.c get_shell: $SHELL, else /bin/bash.
            command.push(std::env::var("SHELL").unwrap_or_else(|_| "/bin/bash".into()));
        }
        ntasks = slots;
        cpus_per_task = cores;
        nodes = n_nodes;
        gpus = gpu;
    } else {
        if command.is_empty() {
            return Err(error(cmd, "job command and arguments are missing"));
        }
        // `SubmitBaseCmd.init_jobspec`: ints are converted here, not by argparse.
        let int = |long: &str| -> Result<Option<i64>, i32> {
            match parsed.value(long) {
                None | Some("") => Ok(None),
                Some(v) => python_int(v)
                    .map(Some)
                    .ok_or_else(|| error(cmd, &format!("--{long}: invalid int value '{v}'"))),
            }
        };
        let mut n = int("ntasks")?;
        let c = int("cores-per-task")?;
        let g = int("gpus-per-task")?;
        let nn = int("nodes")?;
        if n.is_none_or(|n| n == 0)
            && let Some(count) = nn.filter(|n| *n != 0)
        {
            n = Some(count);
            exclusive = true;
        }
        let n = n.unwrap_or(1);
        let c = c.unwrap_or(1);
        // `JobspecV1.from_command`.
        if n < 1 {
            return Err(error(cmd, "task count must be a integer >= 1"));
        }
        if c < 1 {
            return Err(error(cmd, "cores per task must be an integer >= 1"));
        }
        if g.is_some_and(|g| g < 0) {
            return Err(error(cmd, "gpus per task must be an integer >= 0"));
        }
        if let Some(count) = nn {
            if count < 1 {
                return Err(error(cmd, "node count must be an integer >= 1 (if set)"));
            }
            if count > n {
                return Err(error(cmd, "node count must not be greater than task count"));
            }
        } else if exclusive {
            return Err(error(cmd, "exclusive can only be set with a node count"));
        }
        ntasks = n;
        cpus_per_task = c;
        nodes = nn;
        gpus = g.unwrap_or(0);
    }
    let to_u32 = |v: i64| u32::try_from(v).unwrap_or(u32::MAX);
    let time_limit = match parsed.value("time-limit") {
        None => None,
        Some(t) => units::parse_time_limit(t)
            .map_err(|m| error(cmd, &m))?
            .map(|secs| TimeLimit::Seconds((secs.ceil() as u64).max(1))),
    };
    let urgency: u32 = match parsed.value("urgency").unwrap_or("16") {
        "default" => 16,
        "hold" => 0,
        "expedite" => 31,
        text => match python_int(text) {
            Some(u) if (0..=16).contains(&u) => u as u32,
            Some(_) => return Err(error(cmd, "urgency range is [0:16] for guests")),
            None => {
                return Err(error(
                    cmd,
                    &format!("invalid literal for int() with base 10: '{text}'"),
                ));
            }
        },
    };
    if let Some(flags) = parsed.values("flags").first() {
        for flag in flags.split(',') {
            if !matches!(flag, "debug" | "waitable" | "novalidate") {
                return Err(error(cmd, &format!("--flags: Unknown flag {flag}")));
            }
        }
    }
    let begin_after = match parsed.value("begin-time") {
        None => None,
        Some(b) => match b.strip_prefix('+').map(units::parse_fsd) {
            Some(Ok(secs)) => Some(secs),
            Some(Err(m)) => return Err(error(cmd, &m)),
            None => {
                return Err(error(
                    cmd,
                    "--begin-time other than +FSD is not supported by mock-cluster",
                ));
            }
        },
    };
    let signal = match parsed.value("signal") {
        None => None,
        Some(s) => Some(parse_signal(s).map_err(|m| error(cmd, &m))?),
    };
    let env = job_environment(&parsed, cmd)?;
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "/".into());
    let work_dir = match parsed.value("cwd") {
        Some(d) if d.starts_with('/') => d.to_string(),
        Some(d) => format!("{}/{d}", cwd.trim_end_matches('/')),
        None => cwd.clone(),
    };
    let name = match parsed.value("job-name") {
        Some(n) => n.to_string(),
        // An instance's command is `flux broker ...`; a job's name is its command's base name.
        None if cmd == Cmd::Alloc => "flux".into(),
        None => crate::cli::session::base_name(&command[0]),
    };
    let (user, uid, gid) = crate::cli::slurm::identity();
    let root = flux_root(call);
    let mut attributes = BTreeMap::new();
    let mode = match cmd {
        Cmd::Alloc => rules::MODE_ALLOC,
        Cmd::Run => rules::MODE_RUN,
        Cmd::Submit => rules::MODE_SUBMIT,
    };
    attributes.insert(attr::MODE.to_string(), mode.to_string());
    attributes.insert(attr::ROOT.to_string(), root);
    attributes.insert(attr::URGENCY.to_string(), urgency.to_string());
    let unicode = rules::unicode_prefix_in(&env);
    attributes.insert(
        attr::F58.to_string(),
        if unicode { "unicode" } else { "ascii" }.to_string(),
    );
    let output = parsed.value("output").map(str::to_string);
    let error_tmpl = parsed.value("error").map(str::to_string);
    let input = parsed.value("input").map(str::to_string);
    let batch = cmd == Cmd::Submit || bg;
    let req = JobRequest {
        kind: if batch {
            JobKind::Batch
        } else {
            JobKind::Interactive
        },
        name,
        partition: parsed.value("queue").map(str::to_string),
        qos: None,
        account: parsed.value("bank").map(str::to_string),
        time_limit,
        ntasks: Some(to_u32(ntasks)),
        cpus_per_task: Some(to_u32(cpus_per_task)),
        nodes: nodes.map(to_u32),
        mem_mb: None,
        mem_per_cpu_mb: None,
        nodelist: None,
        constraint: None,
        exclude: None,
        ntasks_per_node: None,
        nice: 0,
        priority: None,
        exclusive,
        hold: urgency == 0,
        begin: None,
        begin_after,
        immediate: false,
        signal,
        signal_batch_shell: false,
        no_requeue: false,
        work_dir,
        submit_dir: cwd,
        submit_host: crate::host::short_hostname(),
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
        command: format!("flux {} {}", cmd.word(), command.join(" "))
            .trim_end()
            .to_string(),
        name_from_stdin: false,
        flavor: Flavor::Flux,
        stage_out: false,
        debug_log: None,
        attributes,
        relations: Default::default(),
    };
    Ok(Submission {
        cmd,
        verbose: parsed.count("verbose"),
        parsed,
        command,
        req,
        output,
        error: error_tmpl,
        input,
        gpus: to_u32(gpus),
    })
}

/// `--signal=[SIG][@TIME]`: SIGUSR1 and 60 s by default.
fn parse_signal(text: &str) -> Result<(i32, u64), String> {
    let (sig, time) = match text.split_once('@') {
        Some((s, t)) => (s, Some(t)),
        None => (text, None),
    };
    let signo = if sig.is_empty() {
        libc::SIGUSR1
    } else {
        crate::cli::slurm::signal_number(sig)
            .ok_or_else(|| format!("--signal: invalid signal specification {sig}"))?
    };
    let secs = match time {
        Some(t) => units::parse_fsd(t)?,
        None => 60.0,
    };
    Ok((signo, secs.ceil() as u64))
}

/// Why the instance refuses or the scheduler denies a job, found before it is sent: `Err`
/// is a refusal at submission (job-manager's `limit-duration` and `limit-job-size` plugins),
/// `Ok(Some(note))` a job that is accepted and then denied by the scheduler
/// (`sched-fifo.py` through `flux/resource/Rv1Pool.py`: `unsatisfiable request: ...`).
pub fn feasibility(cluster: &Cluster, sub: &Submission) -> Result<Option<String>, String> {
    let part: Option<&Partition> = match &sub.req.partition {
        Some(name) => match cluster.partition(name) {
            Some(p) => Some(p),
            // The instance refuses the queue itself.
            None => return Ok(None),
        },
        None => cluster.default_partition(),
    };
    let Some(part) = part else { return Ok(None) };
    let queue = &part.name;
    if let (Some(TimeLimit::Seconds(want)), TimeLimit::Seconds(max)) =
        (sub.req.time_limit, part.max_time)
        && want > max
    {
        return Err(format!(
            "requested duration ({}) exceeds policy limit of {} for queue {queue}",
            units::fsd_c(want as f64, 2),
            units::fsd_c(max as f64, 2)
        ));
    }
    let nnodes = sub.req.nodes.unwrap_or(0);
    if let Some(max) = part.max_nodes
        && nnodes > max
    {
        return Err(format!(
            "requested nnodes ({nnodes}) exceeds policy limit of {max} for queue {queue}"
        ));
    }
    let cores: Vec<u32> = part
        .nodes
        .iter()
        .filter_map(|n| cluster.node(n))
        .map(|n| n.cpus)
        .collect();
    let nslots = sub.req.ntasks.unwrap_or(1).max(1);
    let slot_size = sub.req.cpus_per_task.unwrap_or(1).max(1);
    if sub.gpus > 0 {
        return Ok(Some(format!(
            "unsatisfiable request: need {nslots} slot(s) with {} GPU(s) each, only 0 available (total GPUs: 0)",
            sub.gpus
        )));
    }
    if sub.req.exclusive {
        let need = nnodes.max(1);
        let eligible = cores.iter().filter(|&&c| c >= slot_size).count();
        if (eligible as u32) < need {
            return Ok(Some(format!(
                "unsatisfiable request: need {need} exclusive node(s), only {eligible} eligible"
            )));
        }
        return Ok(None);
    }
    if let Some(slots_per_node) = nslots.checked_div(nnodes) {
        let per_node = slots_per_node.saturating_mul(slot_size);
        let eligible = cores.iter().filter(|&&c| c >= per_node).count();
        if (eligible as u32) < nnodes {
            return Ok(Some(format!(
                "unsatisfiable request: need {nnodes} node(s) with {per_node} cores each, only {eligible} eligible"
            )));
        }
        return Ok(None);
    }
    let available: u32 = cores.iter().map(|c| c / slot_size).sum();
    if available < nslots {
        let total: u32 = cores.iter().sum();
        return Ok(Some(format!(
            "unsatisfiable request: need {nslots} slot(s) of {slot_size} core(s), only {available} such slot(s) available (total cores: {total})"
        )));
    }
    Ok(None)
}

/// Without `-N`, the scheduler spreads slots over as many nodes as they need: the daemon's
/// request names that node count when the slots do not fit on the largest node.
fn spread(cluster: &Cluster, req: &mut JobRequest) {
    if req.nodes.is_some() {
        return;
    }
    let part = match &req.partition {
        Some(name) => cluster.partition(name),
        None => cluster.default_partition(),
    };
    let Some(part) = part else { return };
    let largest = part
        .nodes
        .iter()
        .filter_map(|n| cluster.node(n))
        .map(|n| n.cpus)
        .max()
        .unwrap_or(0);
    let slot = req.cpus_per_task.unwrap_or(1).max(1);
    let slots = req.ntasks.unwrap_or(1).max(1);
    let per_node = largest / slot;
    if per_node == 0 || slots.saturating_mul(slot) <= largest {
        return;
    }
    req.nodes = Some(slots.div_ceil(per_node));
}

/// What checking a submission against the cluster found.
pub enum Checked {
    /// Send it as it is.
    Go,
    /// Send it held: the scheduler denies it at once (the note is in the request).
    Denied,
}

/// Checks a submission against the cluster (see [`feasibility`]); a refusal is printed and
/// its exit code returned.
pub fn check(call: &mut Call, sub: &mut Submission) -> Result<Checked, i32> {
    let cmd = sub.cmd;
    let conn = match call.conn() {
        Ok(c) => c,
        Err(e) => {
            return Err(error(
                cmd,
                &format!(
                    "Unable to connect to Flux: mock-cluster daemon not reachable at {}: {}",
                    e.socket.display(),
                    e.error
                ),
            ));
        }
    };
    let cluster = match conn.call(&Request::Cluster {
        status_command: false,
    }) {
        Ok(Response::Cluster { cluster, .. }) => cluster,
        _ => return Err(error(cmd, "Unable to connect to Flux: no answer")),
    };
    match feasibility(&cluster, sub) {
        Err(m) => Err(refused(cmd, &m)),
        Ok(None) => {
            spread(&cluster, &mut sub.req);
            Ok(Checked::Go)
        }
        Ok(Some(note)) => {
            sub.req.attributes.insert(attr::DENIED.to_string(), note);
            sub.req.hold = true;
            Ok(Checked::Denied)
        }
    }
}

/// The job shell the fake runs a job's tasks under: redirects the standard streams, checks
/// that the command can start (`src/shell/shell.c`: `start failed`, exit 127 or 126), starts
/// the tasks with their `FLUX_TASK_RANK` and `FLUX_TASK_LOCAL_ID`, waits for all, and exits with
/// the largest exit status (128 + the signal for a task killed by one), as the job shell does.
/// Arguments: `ntasks nnodes input output error node COMMAND...` (`error` may be `&1`: the
/// output file).
pub const JOB_SHELL: &str = r#"n=$1 nn=$2 in=$3 out=$4 err=$5 node=$6
shift 6
[ -n "$nn" ] || nn=${FLUX_JOB_NNODES:-1}
[ -n "$node" ] || node=$(uname -n)
if [ -n "$in" ]; then exec <"$in" || exit 1; fi
if [ -n "$out" ]; then exec >"$out" || exit 1; fi
if [ "$err" = "&1" ]; then exec 2>&1; elif [ -n "$err" ]; then exec 2>"$err" || exit 1; fi
start_failed() {
  echo "flux-shell[0]: FATAL: task 0 (host $node): start failed: $1: $2" >&2
  exit "$3"
}
case $1 in
*/*) if [ ! -e "$1" ]; then start_failed "$1" "No such file or directory" 127
     elif [ -d "$1" ] || [ ! -x "$1" ]; then start_failed "$1" "Permission denied" 126; fi ;;
*) command -v "$1" >/dev/null 2>&1 || start_failed "$1" "No such file or directory" 127 ;;
esac
if [ -n "$FLUX_JOB_TMPDIR" ]; then mkdir -p "$FLUX_JOB_TMPDIR" 2>/dev/null; fi
rc=0
if [ "$n" -le 1 ]; then
  "$@"
  rc=$?
else
  per=$(( (n + nn - 1) / nn ))
  i=0
  pids=
  while [ "$i" -lt "$n" ]; do
    FLUX_TASK_RANK=$i FLUX_TASK_LOCAL_ID=$((i % per)) "$@" &
    pids="$pids $!"
    i=$((i + 1))
  done
  for p in $pids; do
    wait "$p"
    s=$?
    if [ "$s" -gt "$rc" ]; then rc=$s; fi
  done
fi
if [ -n "$FLUX_JOB_TMPDIR" ]; then rm -rf "$FLUX_JOB_TMPDIR"; fi
exit "$rc"
"#;

/// The job shell's arguments before the command (`nnodes` 0: `FLUX_JOB_NNODES`).
pub fn shell_args(
    ntasks: u32,
    nnodes: u32,
    input: &str,
    output: &str,
    error: &str,
    node: &str,
) -> Vec<String> {
    vec![
        ntasks.to_string(),
        if nnodes == 0 {
            String::new()
        } else {
            nnodes.to_string()
        },
        input.to_string(),
        output.to_string(),
        error.to_string(),
        node.to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_ints_and_globs() {
        assert_eq!(python_int(" 4 "), Some(4));
        assert_eq!(python_int("1_0"), Some(10));
        assert_eq!(python_int("-2"), Some(-2));
        assert_eq!(python_int("x"), None);
        assert_eq!(python_int("4.0"), None);
        assert!(glob("SLURM_*", "SLURM_JOB_ID"));
        assert!(glob("A?C", "ABC"));
        assert!(!glob("A?C", "AC"));
        assert!(glob("*", ""));
    }
}
