//! Fake `flux alloc` and `flux run`: submit a job and attach to it. Both hold the allocation
//! over the daemon connection (the shared allocation session) and run the command here, its
//! standard streams flux's own, the way `flux job attach` streams a job's output
//! (`src/bindings/python/flux/cli/alloc.py`, `cli/run.py` exec `flux-job attach`; exit code
//! and messages from `src/cmd/job/attach.c`).
//!
//! `flux alloc`'s command is the initial program of a new Flux instance: it sees `FLUX_URI`
//! and `FLUX_ENCLOSING_ID` and none of the job variables (`src/broker/runat.c`). `flux run`'s
//! command is a job's tasks: `FLUX_JOB_ID`, `FLUX_JOB_SIZE`, `FLUX_TASK_RANK`... With more
//! than one task, or with `--output`, `--error` or `--input`, the tasks run under a small job
//! shell ([`jobspec::JOB_SHELL`]).

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;

use super::info::{self, caller_f58};
use super::jobspec::{self, Checked, Cmd, Submission};
use crate::cli::Call;
use crate::cli::session::{Denied, Granted, Progress, Ran, Revocation, Session};
use crate::flavor::flux::{self as rules, attr};
use crate::model::{Job, JobState};
use crate::protocol::{CancelRequest, Request, Response};

/// Runs `flux alloc` or `flux run`; returns the exit code.
pub fn main(call: &mut Call, cmd: Cmd, args: &[String]) -> i32 {
    let mut sub = match jobspec::prepare(call, cmd, args) {
        Ok(s) => s,
        Err(code) => return code,
    };
    if cmd == Cmd::Alloc {
        sub.req
            .env
            .retain(|k, _| !rules::blocked_in_initial_program(k));
    }
    let checked = match jobspec::check(call, &mut sub) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if cmd == Cmd::Alloc && sub.parsed.has("bg") {
        return background(call, sub);
    }
    attached(call, sub, checked)
}

fn error(cmd: Cmd, msg: &str) -> i32 {
    eprintln!("{}: ERROR: {msg}", cmd.logger());
    1
}

/// Cancels a job over a connection of its own (the scheduler denying a job).
fn cancel(dir: &std::path::Path, id: u32) {
    if let Ok(mut conn) = crate::client::Conn::connect(dir) {
        // SAFETY: getuid cannot fail.
        let uid = unsafe { libc::getuid() };
        let _ = conn.call(&Request::Cancel(CancelRequest {
            ids: vec![id],
            uid,
            ..CancelRequest::default()
        }));
    }
}

/// What the job shell says about a command that cannot start, and its exit code
/// (`src/shell/shell.c`: 127 when not found, 126 when not permitted).
fn start_failure(e: &std::io::Error) -> i32 {
    match e.kind() {
        std::io::ErrorKind::NotFound => 127,
        std::io::ErrorKind::PermissionDenied => 126,
        _ => 1,
    }
}

use crate::cli::strerror;

fn attached(call: &mut Call, sub: Submission, checked: Checked) -> i32 {
    let cmd = sub.cmd;
    let dir = call.dir.clone();
    let denied = matches!(checked, Checked::Denied);
    let user_env = sub.req.env.clone();
    let mut session = match Session::request(call, sub.req.clone()) {
        Ok(s) => s,
        Err(e) => {
            return error(
                cmd,
                &format!(
                    "Unable to connect to Flux: mock-cluster daemon not reachable at {}: {}",
                    e.socket.display(),
                    e.error
                ),
            );
        }
    };
    let verbose = sub.verbose > 0;
    let mut announced = false;
    let announce = |id: u32, announced: &mut bool| {
        if verbose && !*announced {
            eprintln!("jobid: {}", caller_f58(id));
        }
        *announced = true;
    };
    let granted = session.wait(call, |progress| match progress {
        Progress::Queued(id) => {
            announce(id, &mut announced);
            if denied {
                cancel(&dir, id);
            }
        }
    });
    let Granted {
        job,
        cpus,
        env: job_env,
    } = match granted {
        Ok(g) => g,
        Err(Denied::Refused { detail, message }) => {
            for d in detail {
                eprintln!("{}: ERROR: {d}", cmd.logger());
            }
            return jobspec::refused(cmd, &message);
        }
        Err(Denied::CancelledWhilePending(job)) => {
            announce(job.id, &mut announced);
            if let Some(e) = info::exception(&job) {
                eprintln!("{}", info::exception_line(&caller_f58(job.id), &job, &e));
            }
            // attach.c: no finish event, the exit code stays 1.
            return 1;
        }
        Err(Denied::Lost) => {
            eprintln!("flux-job: lost contact with the mock-cluster daemon");
            return 1;
        }
    };
    announce(job.id, &mut announced);
    let id = job.id;
    let jobid = caller_f58(id);
    let node = job.first_node();
    let mut env: BTreeMap<String, String> = user_env;
    env.extend(job_env);
    let tmpdir = env.get("FLUX_JOB_TMPDIR").cloned();
    if let Some(t) = &tmpdir {
        let _ = std::fs::create_dir_all(t);
    }
    let command = match cmd {
        Cmd::Run => task_command(&sub, &job, &node),
        _ => sub.command.clone(),
    };
    let revoked_dir = dir.clone();
    let revoked_id = jobid.clone();
    let on_revoked = move |r: &Revocation| {
        say_exception(&revoked_dir, &revoked_id, r);
    };
    let ran = session.run(&command, &env, cpus, false, on_revoked);
    let (raw, code) = match &ran {
        Ran::Ended(status) => {
            let ws = info::shell_status(status.into_raw());
            let (mut code, msg) = info::exit_code(ws);
            if let Some(m) = msg {
                eprintln!("flux-job: {m}");
            }
            if crate::cli::session::was_revoked() && code == 0 {
                code = 1;
            }
            (status.into_raw(), code)
        }
        Ran::NotStarted(e) => {
            let code = start_failure(e);
            let text = format!(
                "task 0 (host {node}): start failed: {}: {}",
                command.first().map_or("", String::as_str),
                strerror(e)
            );
            let secs = elapsed(&dir, &job);
            eprintln!("{secs:.3}s: flux-shell[0]: FATAL: {text}");
            eprintln!("{secs:.3}s: job.exception {jobid} type=exec severity=0 {text}");
            eprintln!("flux-job: task(s) exited with exit code {code}");
            (code << 8, code)
        }
    };
    session.finish(call, raw, code);
    if let Some(t) = &tmpdir {
        let _ = std::fs::remove_dir_all(t);
    }
    code
}

/// Simulated seconds since the job's submission.
fn elapsed(dir: &std::path::Path, job: &Job) -> f64 {
    let Ok(mut conn) = crate::client::Conn::connect(dir) else {
        return 0.0;
    };
    match conn.call(&Request::Jobs {
        ids: Some(vec![job.id]),
        accounting: true,
        status_command: false,
    }) {
        Ok(Response::Jobs { now, .. }) => (now - job.submit_time).max(0.0),
        _ => 0.0,
    }
}

/// The `job.exception` line of an allocation the scheduler takes back (`flux cancel`, the
/// time limit), printed before the command's group gets its signal.
fn say_exception(dir: &std::path::Path, jobid: &str, r: &Revocation) {
    match super::fetch_one(dir, r.job_id) {
        Some(job) => {
            if let Some(e) = info::exception(&job) {
                eprintln!("{}", info::exception_line(jobid, &job, &e));
            }
        }
        None => {
            let (kind, note) = if r.ending == JobState::Timeout {
                ("timeout", "resource allocation expired")
            } else {
                ("cancel", "")
            };
            eprintln!("0.000s: job.exception {jobid} type={kind} severity=0 {note}");
        }
    }
}

/// `flux run`'s command: the command itself for one task with flux's own standard streams,
/// else the job shell starting the tasks with their redirections. Redirections are told as
/// `flux job attach` tells the shell's redirect events (`attach.c`
/// `handle_output_redirect`: `0: stdout redirected to <path>`).
fn task_command(sub: &Submission, job: &Job, node: &str) -> Vec<String> {
    let ntasks = job.req.ntasks.unwrap_or(1).max(1);
    let render = |t: &str| rules::render(t, job.id, &sub.req, node);
    let output = sub.output.as_deref().map(render);
    let error = sub.error.as_deref().map(render);
    let input = sub.input.as_deref().map(render);
    if ntasks <= 1 && output.is_none() && error.is_none() && input.is_none() {
        return sub.command.clone();
    }
    if let Some(o) = &output {
        eprintln!("0: stdout redirected to {o}");
    }
    match (&error, &output) {
        (Some(e), _) => eprintln!("0: stderr redirected to {e}"),
        (None, Some(o)) => eprintln!("0: stderr redirected to {o}"),
        _ => {}
    }
    let err_arg = match (&error, &output) {
        (Some(e), _) => e.clone(),
        (None, Some(_)) => "&1".into(),
        _ => String::new(),
    };
    let nnodes = job.run.alloc.len().max(1) as u32;
    let mut argv = vec![
        "/bin/sh".to_string(),
        "-c".to_string(),
        jobspec::JOB_SHELL.to_string(),
        "flux-shell".to_string(),
    ];
    argv.extend(jobspec::shell_args(
        ntasks,
        nnodes,
        input.as_deref().unwrap_or(""),
        output.as_deref().unwrap_or(""),
        &err_arg,
        node,
    ));
    argv.extend(sub.command.iter().cloned());
    argv
}

/// `flux alloc --bg`: the instance is a batch job of the cluster (its initial program, if
/// any, runs there; without one it lives until cancelled or its time limit). Waits until it
/// runs, prints its jobid on stdout, exits 0 (`alloc.py` `background`; `-v` lines from
/// `AllocCmd.log`).
fn background(call: &mut Call, mut sub: Submission) -> i32 {
    let cmd = sub.cmd;
    let root = jobspec::flux_root(call);
    let args = if sub.command.is_empty() {
        vec!["sleep".to_string(), "2147483647".to_string()]
    } else {
        sub.command.clone()
    };
    let denied = sub.req.attributes.contains_key(attr::DENIED);
    let id = match super::submit::send_batch(call, &mut sub, &root, args) {
        Ok(id) => id,
        Err(code) => return code,
    };
    let jobid = caller_f58(id);
    let dir = call.dir.clone();
    if denied {
        cancel(&dir, id);
    }
    let log = |ts: f64, msg: &str| {
        if sub.verbose > 0 {
            eprintln!("{jobid}: {ts:6.3}s: {msg}");
        }
    };
    log(0.0, "waiting for resources");
    let Some(job) = super::wait_for(&dir, id, |j| j.run.state != JobState::Pending) else {
        return error(cmd, &format!("{jobid}: unexpectedly exited"));
    };
    if job.run.state != JobState::Running {
        // alloc.py runs `flux job attach` to show what happened, then fails.
        let mut err = std::io::stderr();
        let mut err2 = std::io::stderr();
        super::job::replay(&job, &jobid, &mut err, &mut err2);
        return error(cmd, &format!("{jobid}: unexpectedly exited"));
    }
    let ts = job.run.start_time.unwrap_or(job.submit_time) - job.submit_time;
    log(ts, "resources allocated");
    log(ts, "waiting for instance");
    log(ts, "ready");
    println!("{jobid}");
    0
}
