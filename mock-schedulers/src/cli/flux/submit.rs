//! Fake `flux submit`: a batch job of the cluster; prints its jobid (F58) on stdout
//! (`src/bindings/python/flux/cli/base.py` `SubmitBulkCmd`, `submit_cb`).
//!
//! Real Flux keeps a job's output in the KVS, read back with `flux job attach`; the simulated
//! cluster keeps it in files under `<state dir>/flux/kvs/` (`<decimal id>.out` and `.err`),
//! which `flux job attach` reads. `--output` and `--error` name files instead, mustache
//! templates rendered by the job's rules (`{{id}}`, `{{name}}`, ...), relative to the job's
//! working directory; with `--output` alone stderr goes to the same file
//! (`src/shell/output/conf.c`).

use super::info::{self, caller_f58};
use super::jobspec::{self, Checked, Cmd, Submission};
use crate::cli::Call;
use crate::flavor::flux::attr;
use crate::protocol::{CancelRequest, Request, Response};

/// Runs `flux submit`; returns the exit code.
pub fn main(call: &mut Call, args: &[String]) -> i32 {
    let mut sub = match jobspec::prepare(call, Cmd::Submit, args) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let checked = match jobspec::check(call, &mut sub) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let root = jobspec::flux_root(call);
    let command = sub.command.clone();
    let id = match send_batch(call, &mut sub, &root, command) {
        Ok(id) => id,
        Err(code) => return code,
    };
    if !sub.parsed.has("quiet") {
        println!("{}", caller_f58(id));
    }
    if matches!(checked, Checked::Denied) {
        deny(call, id);
    }
    if !sub.parsed.has("wait") {
        return 0;
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // `--wait`: the job's exit code (128 + signal), at least 1 when an exception came before
    // the job started (`src/bindings/python/flux/job/watcher.py`).
    let dir = call.dir.clone();
    match super::wait_for(&dir, id, |j| j.run.state.is_finished()) {
        Some(job) => match info::waitstatus(&job) {
            Some(ws) => info::exit_code(ws).0,
            None => 1,
        },
        None => 1,
    }
}

/// The scheduler denies the job: cancel it while it is held (the Flux commands show it as
/// FAILED with an `alloc` exception, see [`info::exception`]).
fn deny(call: &mut Call, id: u32) {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    if let Ok(conn) = call.conn() {
        let _ = conn.call(&Request::Cancel(CancelRequest {
            ids: vec![id],
            uid,
            ..CancelRequest::default()
        }));
    }
}

/// Submits `sub` as a batch job running `command` under the job shell, its output in the
/// fake's KVS unless `--output`/`--error` name files; returns the job id, or the exit code
/// with the refusal printed.
pub fn send_batch(
    call: &mut Call,
    sub: &mut Submission,
    root: &str,
    command: Vec<String>,
) -> Result<u32, i32> {
    let cmd = sub.cmd;
    let kvs = format!("{root}/kvs");
    if let Err(e) = std::fs::create_dir_all(&kvs) {
        eprintln!("{}: ERROR: {kvs}: {e}", cmd.logger());
        return Err(1);
    }
    let req = &mut sub.req;
    let initial_program = cmd == Cmd::Alloc;
    match (&sub.output, &sub.error) {
        (Some(out), err) if !initial_program => {
            req.stdout = Some(out.clone());
            req.stderr = err.clone();
            req.attributes.insert(attr::OUTPUT.to_string(), out.clone());
        }
        (None, Some(err)) if !initial_program => {
            req.stdout = Some(format!("{kvs}/{{{{id.dec}}}}.out"));
            req.stderr = Some(err.clone());
        }
        _ => {
            req.stdout = Some(format!("{kvs}/{{{{id.dec}}}}.out"));
            req.stderr = Some(format!("{kvs}/{{{{id.dec}}}}.err"));
        }
    }
    if let Some(err) = &sub.error
        && !initial_program
    {
        req.attributes.insert(attr::ERROR.to_string(), err.clone());
    }
    if !initial_program {
        req.stdin = sub.input.clone();
    }
    let ntasks = if initial_program {
        1
    } else {
        req.ntasks.unwrap_or(1).max(1)
    };
    req.script = Some(format!("#!/bin/sh\n{}", jobspec::JOB_SHELL));
    let mut args = jobspec::shell_args(ntasks, 0, "", "", "", "");
    args.extend(command);
    req.args = args;
    let conn = match call.conn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "{}: ERROR: Unable to connect to Flux: mock-cluster daemon not reachable at {}: {}",
                cmd.logger(),
                e.socket.display(),
                e.error
            );
            return Err(1);
        }
    };
    match conn.call(&Request::Submit {
        req: Box::new(req.clone()),
        wait: false,
    }) {
        Ok(Response::Submitted { id }) => {
            call.set_job_id(id);
            Ok(id)
        }
        Ok(Response::Error { message, .. }) => Err(jobspec::refused(cmd, &message)),
        _ => {
            eprintln!(
                "{}: ERROR: Unable to connect to Flux: no answer from the mock-cluster daemon",
                cmd.logger()
            );
            Err(1)
        }
    }
}
