//! Fake `srun` and `salloc`: obtain an allocation from the daemon (holding it over the
//! connection), run the command locally inside it, release it when the command ends or when this
//! process dies (the daemon sees the connection close).

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};

use super::CONNECT_FAILURE;
use crate::cli::Call;
use crate::cli::getopt::{HasArg::*, Opt, opt};
use crate::model::{JobKind, JobState};
use crate::protocol::{Request, Response};

use super::{ResourceOpts, apply_resource_opt, build_request};

const SPEC: &[Opt] = &[
    opt("account", Some('A'), Required),
    opt("chdir", Some('D'), Required),
    opt("constraint", Some('C'), Required),
    opt("cpu-bind", None, Required),
    opt("cpus-per-task", Some('c'), Required),
    opt("error", Some('e'), Required),
    opt("exclusive", None, Optional),
    opt("export", None, Required),
    opt("help", Some('h'), No),
    opt("hold", Some('H'), No),
    opt("immediate", Some('I'), Optional),
    opt("input", Some('i'), Required),
    opt("jobid", None, Required),
    opt("job-name", Some('J'), Required),
    opt("label", Some('l'), No),
    opt("mem", None, Required),
    opt("mem-per-cpu", None, Required),
    opt("mpi", None, Required),
    opt("nodelist", Some('w'), Required),
    opt("nodes", Some('N'), Required),
    opt("ntasks", Some('n'), Required),
    opt("output", Some('o'), Required),
    opt("overlap", None, No),
    opt("partition", Some('p'), Required),
    opt("pty", None, No),
    opt("qos", Some('q'), Required),
    opt("quiet", Some('Q'), No),
    opt("time", Some('t'), Required),
    opt("unbuffered", Some('u'), No),
    opt("usage", None, No),
    opt("verbose", Some('v'), No),
    opt("version", Some('V'), No),
];

const SRUN_HELP: &str = "Usage: srun [OPTIONS(0)... [executable(0) [args(0)...]]]

Fake srun of mock-cluster: allocate resources in the simulated cluster (unless already inside
an allocation) and run a command there. stdin is forwarded to the command; the allocation is
released when the command ends or srun dies.

  -c, --cpus-per-task=ncpus   number of cpus required per task
  -I, --immediate[=secs]      exit if resources are not available at once
  -i, --input=in              'none' closes the command's stdin
  -J, --job-name=jobname      name of job
      --mem=MB                minimum amount of real memory
  -p, --partition=partition   partition requested
  -q, --qos=qos               quality of service
  -t, --time=minutes          time limit

Examples:
  srun -c 2 --mem 1G -t 10 make -j2
  srun -J ci-placeholder bash -c 'echo $(hostname) $(cat /sys/fs/cgroup/cpuset.cpus 2>/dev/null); exec cat'
";

const SALLOC_HELP: &str =
    "Usage: salloc [OPTIONS(0)...] [ : [OPTIONS(N)...]] [command(0) [args(0)...]]

Fake salloc of mock-cluster: obtain an allocation in the simulated cluster, run a command (the
user's shell by default) with SLURM_JOB_ID set, then release the allocation.

Examples:
  salloc -c 2 -t 30 ./run-tests.sh
";

static CHILD_PGID: AtomicI32 = AtomicI32::new(0);
static REVOKED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn forward_signal(sig: libc::c_int) {
    let pgid = CHILD_PGID.load(Ordering::SeqCst);
    if pgid > 1 {
        // SAFETY: killpg is async-signal-safe.
        unsafe {
            if libc::killpg(pgid, sig) != 0 {
                libc::kill(pgid, sig);
            }
        }
    }
}

fn install_forwarding() {
    for sig in [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ] {
        // SAFETY: the handler only reads an atomic and calls killpg.
        unsafe {
            libc::signal(sig, forward_signal as *const () as libc::sighandler_t);
        }
    }
}

fn signal_text(sig: i32) -> &'static str {
    match sig {
        1 => "Hangup",
        2 => "Interrupt",
        6 => "Aborted",
        9 => "Killed",
        11 => "Segmentation fault",
        15 => "Terminated",
        _ => "Killed",
    }
}

/// Runs srun (or salloc); returns the exit code.
pub fn main(call: &mut Call, salloc: bool) -> i32 {
    let prog = if salloc { "salloc" } else { "srun" };
    let cli = match super::parse_command_line(
        call,
        SPEC,
        true,
        255,
        true,
        if salloc { SALLOC_HELP } else { SRUN_HELP },
    ) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let mut r = ResourceOpts::default();
    for (long, value) in &cli.opts {
        if let Err((msg, code)) = apply_resource_opt(prog, &mut r, long, value.as_deref()) {
            eprintln!("{msg}");
            return code;
        }
    }
    let mut command = cli.operands.clone();
    if command.is_empty() {
        if salloc {
            command.push(std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into()));
        } else {
            eprintln!("srun: fatal: No command given to execute.");
            return 1;
        }
    }
    let stdin_none = cli
        .value("input")
        .is_some_and(|i| i == "none" || i == "/dev/null");
    let quiet = cli.has("quiet");
    let user_env: BTreeMap<String, String> = crate::cli::environment();

    // A step inside an existing allocation (e.g. srun in a batch script) runs directly.
    if !salloc && let Some(job_id) = user_env.get("SLURM_JOB_ID").cloned() {
        let mut env = user_env.clone();
        env.insert("SLURM_STEP_ID".into(), "0".into());
        env.insert("SLURM_STEPID".into(), "0".into());
        env.insert(
            "SLURM_STEP_NUM_TASKS".into(),
            r.ntasks.unwrap_or(1).to_string(),
        );
        env.insert("SLURM_STEP_NUM_NODES".into(), "1".into());
        if let Some(nl) = user_env.get("SLURM_JOB_NODELIST") {
            env.insert("SLURM_STEP_NODELIST".into(), nl.clone());
        }
        let _ = job_id;
        return run_local(prog, &command, env, Vec::new(), stdin_none, None).0;
    }

    let cmdline = command.join(" ");
    let mut req = build_request(
        JobKind::Interactive,
        &r,
        &base_name(&command[0]),
        user_env.clone(),
        format!("{prog} {cmdline}"),
    );
    req.time_limit = r.time;
    let conn = match call.take_conn() {
        Ok(c) => c,
        Err(e) => {
            let line = if salloc {
                format!("salloc: error: Job submit/allocate failed: {CONNECT_FAILURE}")
            } else {
                format!("srun: error: Unable to allocate resources: {CONNECT_FAILURE}")
            };
            call.unreachable(&e, &line);
            return 1;
        }
    };
    let (mut writer, mut reader) = conn.split();
    let send = |w: &mut std::os::unix::net::UnixStream, req: &Request| -> std::io::Result<()> {
        let mut line = serde_json::to_vec(req).map_err(std::io::Error::other)?;
        line.push(b'\n');
        w.write_all(&line)
    };
    let recv = |r: &mut std::io::BufReader<std::os::unix::net::UnixStream>| -> Option<Response> {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => serde_json::from_str(&line).ok(),
        }
    };
    if send(&mut writer, &Request::Allocate { req: Box::new(req) }).is_err() {
        eprintln!("{prog}: error: Unable to allocate resources: {CONNECT_FAILURE}");
        return 1;
    }
    // Until the allocation is granted, Ctrl-C or a kill just ends us; the daemon then drops
    // the pending job because the connection closes.
    let mut queued = false;
    let (job, cpus, job_env) = loop {
        match recv(&mut reader) {
            Some(Response::Queued { id }) => {
                call.set_job_id(id);
                queued = true;
                if !quiet {
                    if salloc {
                        eprintln!("salloc: Pending job allocation {id}");
                    }
                    eprintln!("{prog}: job {id} queued and waiting for resources");
                }
            }
            Some(Response::Allocated { job, cpus, env }) => {
                call.set_job_id(job.id);
                if !quiet {
                    if queued {
                        eprintln!("{prog}: job {} has been allocated resources", job.id);
                    }
                    if salloc {
                        eprintln!("salloc: Granted job allocation {}", job.id);
                    }
                }
                break (job, cpus, env);
            }
            Some(Response::Error { detail, message }) => {
                for d in detail {
                    eprintln!("{prog}: error: {d}");
                }
                if salloc && !r.immediate {
                    eprintln!("salloc: error: Job submit/allocate failed: {message}");
                } else {
                    eprintln!("{prog}: error: Unable to allocate resources: {message}");
                }
                return 1;
            }
            Some(Response::Finished { job }) => {
                // Cancelled while pending.
                if salloc {
                    eprintln!("salloc: Job allocation {} has been revoked.", job.id);
                } else {
                    eprintln!("srun: Job has been cancelled");
                    eprintln!(
                        "srun: error: Unable to allocate resources: Job/step already completing or completed"
                    );
                }
                return 1;
            }
            Some(_) => {}
            None => {
                eprintln!("{prog}: error: Unable to allocate resources: {CONNECT_FAILURE}");
                return 1;
            }
        }
    };
    let id = job.id;
    let node = job.first_node();
    let mut env = user_env;
    env.extend(job_env);
    if !salloc {
        env.insert("SLURM_STEP_ID".into(), "0".into());
        env.insert("SLURM_STEPID".into(), "0".into());
        env.insert("SLURM_STEP_NODELIST".into(), job.nodelist());
        env.insert(
            "SLURM_STEP_NUM_NODES".into(),
            job.run.alloc.len().max(1).to_string(),
        );
        env.insert(
            "SLURM_STEP_NUM_TASKS".into(),
            job.req.ntasks.unwrap_or(1).to_string(),
        );
        env.insert(
            "SLURM_STEP_TASKS_PER_NODE".into(),
            job.req.ntasks.unwrap_or(1).to_string(),
        );
        env.insert("SLURM_SRUN_COMM_HOST".into(), "127.0.0.1".into());
        env.insert("SLURM_LAUNCH_NODE_IPADDR".into(), "127.0.0.1".into());
    }
    // Events from the daemon while the command runs.
    let mut event_writer = writer.try_clone().ok();
    let events = std::thread::spawn(move || {
        while let Some(resp) = recv(&mut reader) {
            match resp {
                Response::Revoked {
                    ending,
                    at,
                    node,
                    kill_wait,
                } => {
                    REVOKED.store(true, Ordering::SeqCst);
                    if salloc {
                        if ending == JobState::Timeout {
                            eprintln!(
                                "salloc: Job {id} has exceeded its time limit and its allocation has been revoked."
                            );
                        } else {
                            eprintln!("salloc: Job allocation {id} has been revoked.");
                        }
                    } else {
                        let suffix = if ending == JobState::Timeout {
                            " DUE TO TIME LIMIT"
                        } else {
                            ""
                        };
                        eprintln!(
                            "srun: Job step aborted: Waiting up to {} seconds for job step to finish.",
                            kill_wait.saturating_add(2)
                        );
                        eprintln!(
                            "slurmstepd-{node}: error: *** STEP {id}.0 ON {node} CANCELLED AT {at}{suffix} ***"
                        );
                    }
                    let pgid = CHILD_PGID.load(Ordering::SeqCst);
                    if pgid > 1 {
                        // SAFETY: signalling our own child's process group.
                        unsafe {
                            for sig in [libc::SIGCONT, libc::SIGTERM] {
                                if libc::killpg(pgid, sig) != 0 {
                                    libc::kill(pgid, sig);
                                }
                            }
                        }
                    }
                }
                Response::Finished { .. } => {}
                _ => {}
            }
        }
    });
    let (code, status) = run_local(
        prog,
        &command,
        env,
        if salloc { Vec::new() } else { cpus },
        stdin_none,
        event_writer.as_mut().map(|w| (w, id, node.clone())),
    );
    let _ = send(&mut writer, &Request::Release { status });
    let _ = send(&mut writer, &Request::Record(Box::new(call.record(code))));
    call.recorded = true;
    let _ = writer.shutdown(std::net::Shutdown::Write);
    let _ = events.join();
    if salloc && !quiet {
        eprintln!("salloc: Relinquishing job allocation {id}");
    }
    code
}

fn base_name(cmd: &str) -> String {
    std::path::Path::new(cmd)
        .file_name()
        .map_or(cmd.to_string(), |f| f.to_string_lossy().into_owned())
}

/// Runs the command; returns srun's exit code and the raw wait status.
fn run_local(
    prog: &str,
    command: &[String],
    env: BTreeMap<String, String>,
    cpus: Vec<usize>,
    stdin_none: bool,
    step: Option<(&mut std::os::unix::net::UnixStream, u32, String)>,
) -> (i32, i32) {
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..]).env_clear().envs(&env);
    // Own process group so signals reach the whole step, except on a terminal, where the step
    // must stay in the foreground group to read it.
    // SAFETY: isatty has no preconditions.
    if unsafe { libc::isatty(0) } == 0 {
        cmd.process_group(0);
    }
    if stdin_none {
        cmd.stdin(Stdio::null());
    }
    // SAFETY: bind_cpus only calls sched_setaffinity.
    unsafe {
        cmd.pre_exec(move || crate::daemon::launch::bind_cpus(&cpus));
    }
    let salloc = prog == "salloc";
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let node = step.as_ref().map(|s| s.2.clone()).unwrap_or_default();
            if salloc {
                eprintln!("salloc: error: {}: {e}", command[0]);
            } else {
                eprintln!("slurmstepd-{node}: error: execve(): {}: {e}", command[0]);
                eprintln!("srun: error: {node}: task 0: Exited with exit code 2");
            }
            return (if salloc { 1 } else { 2 }, 2 << 8);
        }
    };
    let pgid = child.id() as i32;
    CHILD_PGID.store(pgid, Ordering::SeqCst);
    install_forwarding();
    let node = step.as_ref().map(|s| s.2.clone()).unwrap_or_default();
    let step_id = step.as_ref().map(|s| s.1);
    if let Some((w, _, _)) = step {
        let mut line = serde_json::to_vec(&Request::StepStarted {
            pgid,
            name: base_name(&command[0]),
        })
        .unwrap_or_default();
        line.push(b'\n');
        let _ = w.write_all(&line);
    }
    let status = match child.wait() {
        Ok(s) => s,
        Err(_) => return (1, 1 << 8),
    };
    let raw = status.into_raw();
    let code = match (status.code(), status.signal()) {
        (Some(c), _) => {
            if c != 0 && !salloc {
                eprintln!("srun: error: {node}: task 0: Exited with exit code {c}");
            }
            c
        }
        (None, Some(sig)) => {
            if salloc {
                if matches!(sig, 1 | 2 | 3 | 9) { 0 } else { 1 }
            } else {
                eprintln!("srun: error: {node}: task 0: {}", signal_text(sig));
                if let Some(id) = step_id
                    && !REVOKED.load(Ordering::SeqCst)
                {
                    eprintln!("srun: Force Terminated StepId={id}.0");
                }
                128 + sig
            }
        }
        _ => 1,
    };
    (code, raw)
}
