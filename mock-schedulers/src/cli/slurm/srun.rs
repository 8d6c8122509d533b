//! Fake `srun` and `salloc`: obtain an allocation from the daemon (holding it over the
//! connection), run the command locally inside it, release it when the command ends or when this
//! process dies (the daemon sees the connection close).

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;

use super::CONNECT_FAILURE;
use crate::cli::Call;
use crate::cli::session::{Denied, Granted, Progress, Ran, Revocation, Session, base_name};
use crate::model::{JobKind, JobState};

use super::options::{self, SALLOC, SRUN};
use super::{ResourceOpts, apply_resource_opt, build_request};

const SRUN_HELP: &str = "Usage: srun [OPTIONS(0)... [executable(0) [args(0)...]]]

Fake srun of mock-cluster: allocate resources in the simulated cluster (unless already inside
an allocation) and run a step of the command's tasks there. stdin is forwarded to the tasks;
the allocation is released when the step ends or srun dies.

  -c, --cpus-per-task=ncpus   number of cpus required per task
  -I, --immediate[=secs]      exit if resources are not available at once
  -i, --input=in              'none' closes the command's stdin
  -J, --job-name=jobname      name of job
  -l, --label                 prepend task number to lines of stdout/err
      --mem=MB                minimum amount of real memory
  -n, --ntasks=ntasks         number of tasks to run
  -N, --nodes=N               number of nodes on which to run
      --ntasks-per-node=n     number of tasks to invoke on each node
  -o, --output=out            file for stdout (%j, %s, %t, %N, ...)
  -p, --partition=partition   partition requested
  -q, --qos=qos               quality of service
  -t, --time=minutes          time limit
  -u, --unbuffered            do not line-buffer stdout/err

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

/// Runs srun (or salloc); returns the exit code.
pub fn main(call: &mut Call, salloc: bool) -> i32 {
    let prog = if salloc { "salloc" } else { "srun" };
    let spec = options::spec(if salloc { SALLOC } else { SRUN });
    let cli = match super::parse_command_line(
        call,
        &spec,
        true,
        255,
        true,
        if salloc { SALLOC_HELP } else { SRUN_HELP },
    ) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if let Err(code) = super::check_options(prog, &cli.opts, || super::cluster_name(call)) {
        return code;
    }
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
    let user_env: BTreeMap<String, String> = crate::cli::environment();
    // srun checks the file before it asks for anything (22.05 `verify_multi_name()`, exit 1).
    let multi_prog = if !salloc && cli.has("multi-prog") {
        let given = r
            .ntasks
            .or_else(|| user_env.get("SLURM_NTASKS").and_then(|n| n.parse().ok()));
        match super::multi_prog::load(&command[0], &command[1..], given) {
            Ok((file, ntasks)) => {
                r.ntasks = Some(ntasks);
                Some(file)
            }
            Err(lines) => {
                for line in lines {
                    eprintln!("srun: error: {line}");
                }
                return 1;
            }
        }
    } else {
        None
    };
    let stdin_none = cli
        .value("input")
        .is_some_and(|i| i == "none" || i == "/dev/null");
    let quiet = cli.has("quiet");

    let mut step_options = super::step::StepOptions {
        resources: &r,
        command: &command,
        label: cli.has("label"),
        output: cli.value("output"),
        error: cli.value("error"),
        stdin_none,
        unbuffered: cli.has("unbuffered"),
        cpus: Vec::new(),
        multi_prog: multi_prog.as_ref(),
    };
    // Observed on 22.05: srun --test-only asks about a new allocation of its own, also inside
    // one (`docs/slurm-observed.md` 68), and runs nothing.
    if !salloc && cli.has("test-only") {
        let mut req = build_request(
            JobKind::Interactive,
            &r,
            &base_name(&command[0]),
            user_env,
            format!("srun {}", command.join(" ")),
        );
        req.time_limit = r.time;
        return super::sbatch::test_only(call, req, quiet, "srun");
    }
    // A step inside an existing allocation (a batch script, salloc's shell).
    if !salloc && let Some(job_id) = user_env.get("SLURM_JOB_ID").cloned() {
        return super::step::run(call, &job_id, user_env, &step_options);
    }

    let cmdline = command.join(" ");
    let mut req = build_request(
        JobKind::Interactive,
        &r,
        // Observed on 22.05: salloc's job is named `interactive` whatever it runs; srun's
        // after its program.
        &if salloc {
            "interactive".to_string()
        } else {
            base_name(&command[0])
        },
        user_env.clone(),
        format!("{prog} {cmdline}"),
    );
    req.time_limit = r.time;
    let mut session = match Session::request(call, req) {
        Ok(session) => session,
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
    let mut queued = false;
    let granted = session.wait(call, |progress| match progress {
        Progress::Queued(id) => {
            queued = true;
            if !quiet {
                if salloc {
                    eprintln!("salloc: Pending job allocation {id}");
                }
                eprintln!("{prog}: job {id} queued and waiting for resources");
            }
        }
    });
    let Granted {
        job,
        cpus,
        env: job_env,
    } = match granted {
        Ok(granted) => granted,
        Err(Denied::Refused { detail, message }) => {
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
        Err(Denied::CancelledWhilePending(job)) => {
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
        Err(Denied::Lost) => {
            eprintln!("{prog}: error: Unable to allocate resources: {CONNECT_FAILURE}");
            return 1;
        }
    };
    if !quiet {
        if queued {
            eprintln!("{prog}: job {} has been allocated resources", job.id);
        }
        if salloc {
            eprintln!("salloc: Granted job allocation {}", job.id);
        }
    }
    let id = job.id;
    let mut env = user_env;
    env.extend(job_env);
    if !salloc {
        // The allocation srun made runs its step 0 as a step in any job runs (srun(1): srun
        // "creates a job allocation ... and then launches the application"; observed on 22.05:
        // `srun -n 2 -l` prints both tasks' labelled lines and sacct has `<id>.0` with 2 tasks).
        session.watch(|revocation| say_revoked(false, revocation));
        step_options.cpus = cpus;
        let end = super::step::run_in_job(call, id, env, &step_options);
        session.finish(call, end.status, end.code);
        return end.code;
    }
    let ran = session.run(&command, &env, Vec::new(), stdin_none, move |revocation| {
        say_revoked(true, revocation)
    });
    let code = exit_code(&command, &ran);
    session.finish(call, ran.raw_status(), code);
    if !quiet {
        eprintln!("salloc: Relinquishing job allocation {id}");
    }
    code
}

/// What srun and salloc say when Slurm takes their allocation back.
fn say_revoked(salloc: bool, revocation: &Revocation) {
    let id = revocation.job_id;
    if salloc {
        if revocation.ending == JobState::Timeout {
            eprintln!(
                "salloc: Job {id} has exceeded its time limit and its allocation has been revoked."
            );
        } else {
            eprintln!("salloc: Job allocation {id} has been revoked.");
        }
    } else {
        let suffix = if revocation.ending == JobState::Timeout {
            " DUE TO TIME LIMIT"
        } else {
            ""
        };
        eprintln!(
            "srun: Job step aborted: Waiting up to {} seconds for job step to finish.",
            revocation.kill_wait.saturating_add(2)
        );
        eprintln!(
            "slurmstepd-{node}: error: *** STEP {id}.0 ON {node} CANCELLED AT {at}{suffix} ***",
            node = revocation.node,
            at = revocation.at
        );
    }
}

/// salloc's exit code for how its command ran, with what salloc says about it.
fn exit_code(command: &[String], ran: &Ran) -> i32 {
    let status = match ran {
        Ran::Ended(status) => status,
        Ran::NotStarted(e) => {
            eprintln!("salloc: error: {}: {e}", command[0]);
            return 1;
        }
    };
    match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(sig)) => {
            if matches!(sig, 1 | 2 | 3 | 9) {
                0
            } else {
                1
            }
        }
        _ => 1,
    }
}
