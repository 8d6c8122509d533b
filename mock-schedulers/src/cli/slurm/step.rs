//! `srun` inside an existing allocation (a batch script, `salloc`): a job step. The controller
//! numbers it (`<job>.0`, `<job>.1`, ... in sacct); its tasks run in a process group of their
//! own, apart from the batch shell, which is where `scancel --signal` and `--signal` without
//! `B:` reach; each task gets its rank in `SLURM_PROCID`, `SLURM_LOCALID` and `SLURM_NODEID`.
//! What the environment holds, the labels, the `%t` file names and the error lines follow what
//! Slurm 22.05 printed on the reference cluster (`docs/slurm-observed.md`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};

use super::CONNECT_FAILURE;
use super::ResourceOpts;
use crate::cli::Call;
use crate::cli::session::base_name;
use crate::pattern::{self, NO_ARRAY_TASK, PatternFields};
use crate::protocol::{Request, Response};

/// How srun was asked to run its step.
pub struct StepOptions<'a> {
    /// The resource options (`-n`, `-N`, `-c`).
    pub resources: &'a ResourceOpts,
    /// The command and its arguments.
    pub command: &'a [String],
    /// `--label`.
    pub label: bool,
    /// `--output` pattern.
    pub output: Option<&'a str>,
    /// `--error` pattern.
    pub error: Option<&'a str>,
    /// `--input=none`.
    pub stdin_none: bool,
    /// `--unbuffered`: with `--label`, output is passed on as it arrives, not by whole lines.
    pub unbuffered: bool,
    /// Real cores to bind the tasks to: the allocation's, for an srun that made its own; empty
    /// inside a job, whose processes are bound already.
    pub cpus: Vec<usize>,
    /// `--multi-prog`: each task's program comes from this file (`command` is the file and
    /// the arguments that follow each task's).
    pub multi_prog: Option<&'a super::multi_prog::MultiProg>,
}

/// How the step ended.
pub struct StepEnd {
    /// srun's exit code.
    pub code: i32,
    /// The raw wait status recorded for the step (the worst task's).
    pub status: i32,
}

/// One task's place: its rank, its node and its rank on that node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Placement {
    rank: u32,
    node: usize,
    local: u32,
}

/// Block distribution, Slurm's default: the first nodes take one task more when the tasks do
/// not divide evenly.
fn place(ntasks: u32, nodes: usize) -> Vec<Placement> {
    let nodes = nodes.clamp(1, ntasks.max(1) as usize);
    let base = ntasks / nodes as u32;
    let extra = ntasks % nodes as u32;
    let mut out = Vec::new();
    let mut rank = 0;
    for node in 0..nodes {
        let here = base + u32::from((node as u32) < extra);
        for local in 0..here {
            out.push(Placement { rank, node, local });
            rank += 1;
        }
    }
    out
}

/// `SLURM_STEP_TASKS_PER_NODE`: `2`, `2(x3)`, `2(x2),1`.
fn tasks_per_node(placements: &[Placement], nodes: usize) -> String {
    let counts: Vec<usize> = (0..nodes)
        .map(|n| placements.iter().filter(|p| p.node == n).count())
        .filter(|&c| c > 0)
        .collect();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < counts.len() {
        let mut j = i;
        while j + 1 < counts.len() && counts[j + 1] == counts[i] {
            j += 1;
        }
        parts.push(if j > i {
            format!("{}(x{})", counts[i], j - i + 1)
        } else {
            counts[i].to_string()
        });
        i = j + 1;
    }
    parts.join(",")
}

/// The step's task and node counts, as srun 22.05 works them out (`_opt_verify` in
/// src/srun/libsrun/opt.c): the job's `SLURM_NTASKS`, `SLURM_JOB_NUM_NODES` and
/// `SLURM_NTASKS_PER_NODE` stand for `-n`, `-N` and `--ntasks-per-node` not given (its
/// `env_vars[]`); with a node count and no task count there is one task per node, times
/// `--ntasks-per-node` (so srun in an `sbatch -N 2` job runs two tasks); fewer tasks than nodes
/// take fewer nodes, with srun's warning.
fn layout(r: &ResourceOpts, env: &BTreeMap<String, String>, job_nodes: usize) -> (u32, usize) {
    let env_number = |key: &str| env.get(key).and_then(|v| v.parse::<u32>().ok());
    let job_nodes = job_nodes.max(1);
    let nodes = r
        .nodes
        .or_else(|| env_number("SLURM_JOB_NUM_NODES"))
        .map_or(job_nodes, |n| n as usize)
        .clamp(1, job_nodes);
    let per_node = r
        .ntasks_per_node
        .or_else(|| env_number("SLURM_NTASKS_PER_NODE"))
        .unwrap_or(1)
        .max(1);
    let ntasks = r
        .ntasks
        .or_else(|| env_number("SLURM_NTASKS"))
        .unwrap_or_else(|| (nodes as u32).saturating_mul(per_node))
        .max(1);
    if (ntasks as usize) < nodes {
        eprintln!(
            "srun: Warning: can't run {ntasks} processes on {nodes} nodes, setting nnodes to {ntasks}"
        );
    }
    (ntasks, nodes.min(ntasks as usize))
}

/// Runs the step inside the job of `SLURM_JOB_ID` (a batch script, salloc's shell); returns
/// srun's exit code.
pub fn run(
    call: &mut Call,
    job_id: &str,
    user_env: BTreeMap<String, String>,
    o: &StepOptions<'_>,
) -> i32 {
    let Ok(job) = job_id.parse::<u32>() else {
        eprintln!("srun: error: Invalid job id specified");
        return 1;
    };
    run_in_job(call, job, user_env, o).code
}

/// Runs the step in running job `job`, whose variables `user_env` holds; srun outside a job
/// calls this with the allocation it was just granted.
pub fn run_in_job(
    call: &mut Call,
    job: u32,
    user_env: BTreeMap<String, String>,
    o: &StepOptions<'_>,
) -> StepEnd {
    let job_nodes: Vec<String> = user_env
        .get("SLURM_JOB_NODELIST")
        .and_then(|list| crate::hostlist::expand(list).ok())
        .unwrap_or_else(|| vec![super::short_hostname()]);
    let (ntasks, step_nodes) = layout(o.resources, &user_env, job_nodes.len());
    let cpus_per_task = o.resources.cpus_per_task.unwrap_or(1).max(1);
    let nodes: Vec<String> = job_nodes.into_iter().take(step_nodes).collect();
    let name = base_name(&o.command[0]);
    let created = call
        .conn()
        .map_err(|_| CONNECT_FAILURE.to_string())
        .and_then(|conn| {
            match conn.call(&Request::StepCreate {
                job_id: job,
                name: name.clone(),
                ntasks,
                cpus: ntasks * cpus_per_task,
            }) {
                Ok(Response::StepCreated { step_id }) => Ok(step_id),
                Ok(Response::Error { message, .. }) => Err(message),
                _ => Err(CONNECT_FAILURE.to_string()),
            }
        });
    let step = match created {
        Ok(step) => step,
        Err(message) => {
            eprintln!("srun: error: Unable to create step for job {job}: {message}");
            return StepEnd {
                code: 1,
                status: 1 << 8,
            };
        }
    };
    let placements = place(ntasks, nodes.len());
    let nodelist = crate::hostlist::compress(&nodes);
    let mut env = user_env.clone();
    for (key, value) in [
        ("SLURM_STEP_ID", step.to_string()),
        ("SLURM_STEPID", step.to_string()),
        ("SLURM_STEP_NUM_TASKS", ntasks.to_string()),
        // The step's own counts replace the job's (observed on 22.05: `srun -n 1` in an
        // `sbatch -n 2` job has SLURM_NTASKS, SLURM_NPROCS and SLURM_TASKS_PER_NODE 1).
        ("SLURM_NTASKS", ntasks.to_string()),
        ("SLURM_NPROCS", ntasks.to_string()),
        (
            "SLURM_TASKS_PER_NODE",
            tasks_per_node(&placements, nodes.len()),
        ),
        ("SLURM_STEP_NUM_NODES", nodes.len().to_string()),
        ("SLURM_STEP_NODELIST", nodelist.clone()),
        (
            "SLURM_STEP_TASKS_PER_NODE",
            tasks_per_node(&placements, nodes.len()),
        ),
        ("SLURM_DISTRIBUTION", "block".into()),
        (
            "SLURM_GTIDS",
            (0..ntasks)
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join(","),
        ),
        ("SLURM_SRUN_COMM_HOST", "127.0.0.1".into()),
        ("SLURM_LAUNCH_NODE_IPADDR", "127.0.0.1".into()),
    ] {
        env.insert(key.into(), value);
    }
    if o.label {
        env.insert("SLURM_LABELIO".into(), "1".into());
    }
    if let Some(c) = o.resources.cpus_per_task {
        env.insert("SLURM_CPUS_PER_TASK".into(), c.to_string());
    }
    // In an array task `%A` and `%a` are the array's id and the task's index, as in the batch
    // script's file names (observed on real Slurm 22.05: `srun --output x_%A_%a_%j.out` in task
    // 1 of array 4623, whose own id is 4624, writes `x_4623_1_4624.out`).
    let env_id = |key: &str| env.get(key).and_then(|v| v.parse::<u32>().ok());
    let array_job_id = env_id("SLURM_ARRAY_JOB_ID").unwrap_or(job);
    let array_task_id = env_id("SLURM_ARRAY_TASK_ID").unwrap_or(NO_ARRAY_TASK);
    let user = env.get("SLURM_JOB_USER").cloned().unwrap_or_default();
    let job_name = env.get("SLURM_JOB_NAME").cloned().unwrap_or_default();
    let step_text = step.to_string();
    let broadcast = ntasks > 1 && !o.stdin_none;
    // The step's process group is srun's own, made and announced before any task runs, so a
    // signal sent as soon as a task has printed its first line finds the group. srun lets the
    // signals meant for its tasks pass (they reach the tasks through the group). On a terminal
    // srun stays in the foreground group and the tasks get a group of their own.
    let own_group = {
        // SAFETY: isatty, setpgid and getpgrp have no memory-safety preconditions.
        unsafe { libc::isatty(0) == 0 && libc::setpgid(0, 0) == 0 }
    };
    let mut pgid = 0;
    if own_group {
        // SAFETY: see above.
        pgid = unsafe { libc::getpgrp() };
        crate::cli::session::let_step_signals_pass(pgid);
        announce_running(call, job, step, pgid);
    }
    let mut children: Vec<(Placement, Child)> = Vec::new();
    // Tasks whose program could not be started: slurmstepd says so for each and the task
    // exits 2 (observed on 22.05: `srun -n 2 nonexistent` prints the `execve()` line twice and
    // `tasks 0-1: Exited with exit code 2`, rc 2).
    let mut not_started: Vec<Placement> = Vec::new();
    let mut unopenable = None;
    for p in &placements {
        let node = &nodes[p.node];
        let mut task_env = env.clone();
        task_env.insert("SLURM_PROCID".into(), p.rank.to_string());
        task_env.insert("SLURM_LOCALID".into(), p.local.to_string());
        task_env.insert("SLURM_NODEID".into(), p.node.to_string());
        task_env.insert("SLURMD_NODENAME".into(), node.clone());
        let argv: Vec<String> = match o.multi_prog {
            // load() made sure every rank has a line.
            Some(file) => file.argv(p.rank).unwrap_or_else(|| o.command.to_vec()),
            None => o.command.to_vec(),
        };
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]).env_clear().envs(&task_env);
        if !own_group {
            cmd.process_group(pgid);
        }
        let fields = PatternFields {
            job_id: job,
            array_job_id,
            array_task_id,
            job_name: &job_name,
            user: &user,
            node,
            step: &step_text,
        };
        let open = |pat: &str| {
            let path = pattern::expand_for_task(pat, &fields, p.rank, p.node as u32);
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
        };
        let out_file = match o.output.map(open).transpose() {
            Ok(f) => f,
            Err(e) => {
                unopenable = Some(("stdout", e));
                break;
            }
        };
        let err_file = match o.error.map(open).transpose() {
            Ok(f) => f,
            Err(e) => {
                unopenable = Some(("stderr", e));
                break;
            }
        };
        match (&out_file, o.label) {
            (Some(f), _) => {
                cmd.stdout(f.try_clone().map_or(Stdio::null(), Stdio::from));
            }
            (None, true) => {
                cmd.stdout(Stdio::piped());
            }
            (None, false) => {}
        }
        match (&err_file, &out_file, o.label) {
            (Some(f), _, _) | (None, Some(f), _) => {
                cmd.stderr(f.try_clone().map_or(Stdio::null(), Stdio::from));
            }
            (None, None, true) => {
                cmd.stderr(Stdio::piped());
            }
            (None, None, false) => {}
        }
        if !o.cpus.is_empty() {
            let cpus = o.cpus.clone();
            // SAFETY: bind_cpus only calls sched_setaffinity.
            unsafe {
                cmd.pre_exec(move || crate::daemon::launch::bind_cpus(&cpus));
            }
        }
        if o.stdin_none {
            cmd.stdin(Stdio::null());
        } else if broadcast {
            cmd.stdin(Stdio::piped());
        }
        match cmd.spawn() {
            Ok(child) => {
                if pgid == 0 {
                    pgid = child.id() as i32;
                }
                children.push((*p, child));
            }
            Err(e) => {
                eprintln!(
                    "slurmstepd-{node}: error: execve(): {}: {}",
                    argv[0],
                    strerror(&e)
                );
                not_started.push(*p);
            }
        }
    }
    if !own_group && pgid != 0 {
        announce_running(call, job, step, pgid);
        crate::cli::session::forward_signals_to(pgid);
    }
    let width = (ntasks - 1).to_string().len();
    let mut relays = Vec::new();
    let mut inputs = Vec::new();
    for (p, child) in &mut children {
        if let Some(out) = child.stdout.take() {
            relays.push(relay(out, p.rank, width, o.unbuffered, false));
        }
        if let Some(err) = child.stderr.take() {
            relays.push(relay(err, p.rank, width, o.unbuffered, true));
        }
        if let Some(input) = child.stdin.take() {
            inputs.push(input);
        }
    }
    if !inputs.is_empty() {
        std::thread::spawn(move || broadcast_stdin(inputs));
    }
    let mut outcomes: Vec<(Placement, Option<ExitStatus>)> = not_started
        .into_iter()
        .map(|p| (p, Some(ExitStatus::from_raw(2 << 8))))
        .collect();
    for (p, mut child) in children {
        outcomes.push((p, child.wait().ok()));
    }
    outcomes.sort_by_key(|(p, _)| p.rank);
    for relay in relays {
        let _ = relay.join();
    }
    let (mut code, worst_status) = report(&nodes, &outcomes, job, step);
    // A file srun cannot open (its directory does not exist) ends the step before any task
    // runs: `srun: error: Could not open stdout file: No such file or directory`, exit 1
    // (observed on real Slurm 22.05).
    if let Some((which, e)) = &unopenable {
        eprintln!("srun: error: Could not open {which} file: {}", strerror(e));
        code = 1;
    }
    if let Ok(conn) = call.conn() {
        let _ = conn.call(&Request::StepEnded {
            job_id: job,
            step_id: step,
            status: worst_status,
        });
    }
    StepEnd {
        code,
        status: worst_status,
    }
}

use crate::cli::strerror;

/// Tells the controller which process group the step's tasks run in.
fn announce_running(call: &mut Call, job: u32, step: u32, pgid: i32) {
    if let Ok(conn) = call.conn() {
        let _ = conn.call(&Request::StepRunning {
            job_id: job,
            step_id: step,
            pgid,
        });
    }
}

/// Copies a task's output to srun's, each line behind the task's rank (`--label`). Whole lines
/// by default; with `--unbuffered` each piece as it arrives, every line of it behind the rank
/// and a piece that ends within a line ended there (observed on 22.05: `printf a; sleep;
/// printf "b\nc"; sleep; echo d` under `srun -l -u` prints `0: a`, `0: b`, `0: c`, `0: d`,
/// and without `-u` `0: ab`, `0: cd`).
fn relay(
    mut from: impl Read + Send + 'static,
    rank: u32,
    width: usize,
    unbuffered: bool,
    stderr: bool,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let label = format!("{rank:>width$}: ").into_bytes();
        let write = |lines: &[u8]| {
            let mut labelled = Vec::with_capacity(lines.len() + label.len());
            for line in lines.split_inclusive(|b| *b == b'\n') {
                labelled.extend_from_slice(&label);
                labelled.extend_from_slice(line);
            }
            if unbuffered && !labelled.ends_with(b"\n") {
                labelled.push(b'\n');
            }
            if stderr {
                let _ = std::io::stderr().lock().write_all(&labelled);
            } else {
                let _ = std::io::stdout().lock().write_all(&labelled);
            }
        };
        if unbuffered {
            let mut buf = [0u8; 8192];
            loop {
                match from.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => write(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            return;
        }
        let mut reader = BufReader::new(from);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            write(&line);
            line.clear();
        }
    })
}

/// srun's stdin goes to every task.
fn broadcast_stdin(mut inputs: Vec<std::process::ChildStdin>) {
    let mut stdin = std::io::stdin().lock();
    let mut buf = [0u8; 8192];
    loop {
        match stdin.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => inputs.retain_mut(|input| input.write_all(&buf[..n]).is_ok()),
        }
        if inputs.is_empty() {
            break;
        }
    }
}

/// What srun says about its tasks' ends, grouped by node and outcome as Slurm groups them
/// (`srun: error: node01: tasks 0-1: Exited with exit code 3`), its exit code (the largest
/// task exit code, 128 + a signal) and the raw status recorded for the step.
fn report(
    nodes: &[String],
    outcomes: &[(Placement, Option<ExitStatus>)],
    job: u32,
    step: u32,
) -> (i32, i32) {
    let mut code = 0;
    let mut worst = 0;
    // (node, text) -> ranks, in the order first seen.
    let mut groups: Vec<((usize, String), Vec<u32>)> = Vec::new();
    let mut signalled = false;
    for (p, status) in outcomes {
        let Some(status) = status else { continue };
        let (text, task_code) = match (status.code(), status.signal()) {
            (Some(0), _) => continue,
            (Some(c), _) => (format!("Exited with exit code {c}"), c),
            (None, Some(sig)) => {
                signalled = true;
                (super::signal_description(sig).to_string(), 128 + sig)
            }
            _ => continue,
        };
        if task_code > code {
            code = task_code;
            worst = status.into_raw();
        }
        let key = (p.node, text);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, ranks)) => ranks.push(p.rank),
            None => groups.push((key, vec![p.rank])),
        }
    }
    for ((node, text), ranks) in groups {
        let node = nodes.get(node).cloned().unwrap_or_default();
        let list = rank_ranges(&ranks);
        let noun = if ranks.len() > 1 { "tasks" } else { "task" };
        eprintln!("srun: error: {node}: {noun} {list}: {text}");
    }
    if signalled && !crate::cli::session::was_revoked() {
        eprintln!("srun: Force Terminated StepId={job}.{step}");
    }
    (code, worst)
}

/// Task ranks as srun lists them: `0-1,3`.
fn rank_ranges(ranks: &[u32]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < ranks.len() {
        let mut j = i;
        while j + 1 < ranks.len() && ranks[j + 1] == ranks[j] + 1 {
            j += 1;
        }
        parts.push(if j > i {
            format!("{}-{}", ranks[i], ranks[j])
        } else {
            ranks[i].to_string()
        });
        i = j + 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_distribution_gives_the_first_nodes_the_extra_tasks() {
        let p = place(3, 2);
        assert_eq!(
            p.iter()
                .map(|p| (p.rank, p.node, p.local))
                .collect::<Vec<_>>(),
            [(0, 0, 0), (1, 0, 1), (2, 1, 0)]
        );
        assert_eq!(tasks_per_node(&p, 2), "2,1");
        assert_eq!(tasks_per_node(&place(4, 2), 2), "2(x2)");
        assert_eq!(tasks_per_node(&place(2, 1), 1), "2");
        // More nodes than tasks: one task each on the first nodes.
        assert_eq!(place(2, 4).len(), 2);
    }
}
