//! Fake `sbatch`.

use std::collections::BTreeMap;
use std::io::Read;

use super::CONNECT_FAILURE;
use crate::cli::Call;
use crate::cli::getopt::Parsed;
use crate::cli::jobs::Waited;
use crate::model::{ArraySpec, JobKind, MAX_ARRAY_SIZE_LIMIT};
use crate::protocol::{Request, Response};

use super::options::{self, SBATCH};
use super::{ResourceOpts, apply_resource_opt, build_request, parse_signal_spec};

const HELP: &str = "Usage: sbatch [OPTIONS(0)...] [ : [OPTIONS(N)...]] script(0) [args(0)...]

Fake sbatch of mock-cluster: submits a batch script to the simulated cluster.

Common options:
  -A, --account=name          charge job to specified account
  -c, --cpus-per-task=ncpus   number of cpus required per task
  -D, --chdir=directory       set working directory for batch script
  -e, --error=err             file for batch script's standard error
      --export[=names]        specify environment variables to export
  -H, --hold                  submit job in held state
  -J, --job-name=jobname      name of job
      --mem=MB                minimum amount of real memory
      --mem-per-cpu=MB        maximum amount of real memory per allocated cpu
  -n, --ntasks=ntasks         number of tasks to run
  -N, --nodes=N               number of nodes on which to run
  -o, --output=out            file for batch script's standard output
      --parsable              outputs only the jobid and cluster name (if present)
  -p, --partition=partition   partition requested
  -q, --qos=qos               quality of service
  -Q, --quiet                 quiet mode (suppress informational messages)
      --signal=[R:]num[@time] send signal when time limit within time seconds
  -t, --time=minutes          time limit
  -W, --wait                  wait for completion of submitted job
      --wrap[=command string] wrap command string in a sh script and submit

Examples:
  sbatch --wait -o build-%j.out -J build job.sh
  sbatch --parsable -p debug -t 10 --mem=2G --wrap 'make test'
";

fn fail(msg: &str) -> i32 {
    eprintln!("sbatch: error: {msg}");
    1
}

/// Reads `#SBATCH` lines from the script header (up to the first command line).
fn directives(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in script.lines().skip(1) {
        let t = line.trim_start();
        if t.is_empty() {
            continue;
        }
        if let Some(rest) = t.strip_prefix("#SBATCH") {
            let rest = rest.split(" #").next().unwrap_or("");
            match shell_words::split(rest) {
                Ok(words) => out.extend(words),
                Err(_) => out.extend(rest.split_whitespace().map(str::to_string)),
            }
            continue;
        }
        if t.starts_with('#') {
            continue;
        }
        break;
    }
    out
}

fn export_env(spec: Option<&str>) -> BTreeMap<String, String> {
    let all: BTreeMap<String, String> = crate::cli::environment();
    let Some(spec) = spec else { return all };
    let mut env = BTreeMap::new();
    let mut include_all = false;
    for item in spec.split(',') {
        match item {
            "ALL" => include_all = true,
            "NONE" | "NIL" | "" => {}
            kv => match kv.split_once('=') {
                Some((k, v)) => {
                    env.insert(k.to_string(), v.to_string());
                }
                None => {
                    if let Some(v) = all.get(kv) {
                        env.insert(kv.to_string(), v.clone());
                    }
                }
            },
        }
    }
    if include_all {
        let mut merged = all;
        merged.extend(env);
        env = merged;
    } else {
        // Slurm passes its own variables, and with NONE the job gets a login environment.
        for (k, v) in &all {
            if k.starts_with("SLURM_") {
                env.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        if spec == "NONE" {
            for k in ["HOME", "USER", "LOGNAME", "SHELL"] {
                if let Some(v) = all.get(k) {
                    env.entry(k.to_string()).or_insert_with(|| v.clone());
                }
            }
            env.entry("PATH".into())
                .or_insert_with(|| "/usr/local/bin:/usr/bin:/bin".into());
        }
    }
    if spec == "NONE" || spec.starts_with("ALL,") {
        env.insert("SLURM_GET_USER_ENV".into(), "1".into());
    }
    env.insert("SLURM_EXPORT_ENV".into(), spec.to_string());
    env
}

/// Runs sbatch; returns the exit code.
/// sbatch's input environment variables and the options they set (sbatch(1) of 22.05, INPUT
/// ENVIRONMENT VARIABLES): those of the options the simulated cluster acts on or records.
const INPUT_ENVIRONMENT: &[(&str, &str)] = &[
    ("SBATCH_ACCOUNT", "account"),
    ("SBATCH_ARRAY_INX", "array"),
    ("SBATCH_CONSTRAINT", "constraint"),
    ("SBATCH_EXCLUSIVE", "exclusive"),
    ("SBATCH_EXPORT", "export"),
    ("SBATCH_GET_USER_ENV", "get-user-env"),
    ("SBATCH_HINT", "hint"),
    ("SBATCH_JOB_NAME", "job-name"),
    ("SBATCH_MEM_PER_CPU", "mem-per-cpu"),
    ("SBATCH_MEM_PER_NODE", "mem"),
    ("SBATCH_NO_KILL", "no-kill"),
    ("SBATCH_NO_REQUEUE", "no-requeue"),
    ("SBATCH_OPEN_MODE", "open-mode"),
    ("SBATCH_OVERCOMMIT", "overcommit"),
    ("SBATCH_PARTITION", "partition"),
    ("SBATCH_QOS", "qos"),
    ("SBATCH_REQUEUE", "requeue"),
    ("SBATCH_RESERVATION", "reservation"),
    ("SBATCH_SIGNAL", "signal"),
    ("SBATCH_TIMELIMIT", "time"),
    ("SBATCH_WAIT", "wait"),
    ("SBATCH_WCKEY", "wckey"),
];

/// The options this process's environment sets, as if given in that order: a flag is set by
/// any value (`SBATCH_WAIT=1`), an option with a value takes the variable's text and is checked
/// like one on the command line (`SBATCH_TIMELIMIT=abc`: `Invalid --time specification`,
/// `SBATCH_EXCLUSIVE=1`: `Invalid --exclusive specification`, as Slurm 22.05 answers).
fn input_environment(spec: &[crate::cli::getopt::Opt]) -> Vec<(&'static str, Option<String>)> {
    INPUT_ENVIRONMENT
        .iter()
        .filter_map(|(var, long)| {
            let value = std::env::var(var).ok()?;
            let kind = spec.iter().find(|o| o.long == *long)?.arg;
            Some((
                *long,
                (kind != crate::cli::getopt::HasArg::No).then_some(value),
            ))
        })
        .collect()
}

pub fn main(call: &mut Call) -> i32 {
    let spec = options::spec(SBATCH);
    let cli = match super::parse_command_line(call, &spec, true, 255, true, HELP) {
        Ok(p) => p,
        Err(code) => return code,
    };
    // The script: a file, --wrap, or stdin.
    let (script, script_name, args) = if let Some(wrap) = cli.value("wrap") {
        (
            format!("#!/bin/sh\n# This script was created by sbatch --wrap.\n\n{wrap}\n"),
            "wrap".to_string(),
            cli.operands.clone(),
        )
    } else if let Some(path) = cli.operands.first() {
        match std::fs::read(path) {
            Ok(b) => {
                let name = std::path::Path::new(path)
                    .file_name()
                    .map_or(path.clone(), |f| f.to_string_lossy().into_owned());
                (
                    String::from_utf8_lossy(&b).into_owned(),
                    name,
                    cli.operands[1..].to_vec(),
                )
            }
            Err(_) => return fail(&format!("Unable to open file {path}")),
        }
    } else {
        let mut buf = Vec::new();
        if std::io::stdin().read_to_end(&mut buf).is_err() {
            return fail("Unable to read batch script from stdin");
        }
        (
            String::from_utf8_lossy(&buf).into_owned(),
            "sbatch".to_string(),
            Vec::new(),
        )
    };
    if script.trim().is_empty() {
        return fail("Batch script contains only whitespace!");
    }
    if !script.starts_with("#!") {
        eprintln!("sbatch: error: This does not look like a batch script.  The first");
        eprintln!("sbatch: error: line must start with #! followed by the path to an interpreter.");
        eprintln!("sbatch: error: For instance: #!/bin/sh");
        return 1;
    }
    // #SBATCH directives first, the command line overrides them.
    let dir_args = directives(&script);
    let from_script = match crate::cli::getopt::parse("sbatch", &dir_args, &spec, true) {
        Ok(p) => p,
        Err(msg) => {
            eprintln!("{msg}");
            eprintln!("Try \"sbatch --help\" for more information");
            return 255;
        }
    };
    // Input environment variables override `#SBATCH` lines, the command line overrides both
    // (sbatch(1), INPUT ENVIRONMENT VARIABLES; observed on Slurm 22.05).
    let mut all = Parsed {
        opts: from_script.opts,
        operands: Vec::new(),
    };
    all.opts.extend(input_environment(&spec));
    all.opts.extend(cli.opts.iter().cloned());
    let mut cluster = None;
    if let Err(code) = super::check_options("sbatch", &all.opts, || {
        let name = super::cluster_name(call);
        cluster = Some(name.clone());
        name
    }) {
        return code;
    }
    let mut r = ResourceOpts::default();
    let mut output = None;
    let mut error = None;
    let mut input = None;
    let mut signal = None;
    let mut append = false;
    let mut begin_after = None;
    let mut array = None;
    let mut dependency = None;
    let mut kill_on_invalid_dep = None;
    for (long, value) in &all.opts {
        match apply_resource_opt("sbatch", &mut r, long, value.as_deref()) {
            Ok(true) => continue,
            Ok(false) => {}
            Err((msg, code)) => {
                eprintln!("{msg}");
                return code;
            }
        }
        let v = value.as_deref().unwrap_or("");
        match *long {
            "output" => output = Some(v.to_string()),
            "error" => error = Some(v.to_string()),
            "input" => input = Some(v.to_string()),
            "open-mode" => append = v.starts_with('a'),
            "signal" => match parse_signal_spec(v) {
                Some((sig, secs, batch_shell)) => signal = Some((sig, secs, batch_shell)),
                None => return fail("Invalid --signal specification"),
            },
            "begin" => match super::parse_begin(v) {
                Some(after) => begin_after = Some(after),
                None => return fail(&format!("Invalid time specification {v}")),
            },
            // The controller checks MaxArraySize; this refuses what no cluster accepts, in the
            // controller's words (observed on Slurm 22.05: `-a 5-1`, `-a x`, `-a 1-3:0`).
            "array" => match ArraySpec::parse(v, MAX_ARRAY_SIZE_LIMIT) {
                Ok(spec) => array = spec,
                Err(_) => {
                    return fail("Batch job submission failed: Invalid job array specification");
                }
            },
            // The controller checks the dependency (and says "Job dependency problem").
            "dependency" => dependency = (!v.is_empty()).then(|| v.to_string()),
            "kill-on-invalid-dep" => match v {
                "yes" => kill_on_invalid_dep = Some(true),
                "no" => kill_on_invalid_dep = Some(false),
                _ => return fail("Invalid --kill-on-invalid-dep specification"),
            },
            _ => {}
        }
    }
    // Observed: the batch host's features must be among the job's constraints.
    if let Some(batch) = all.value("batch")
        && !options::batch_within_constraint(batch, r.constraint.as_deref())
    {
        return fail(
            "Batch job submission failed: Job --batch option is invalid or not a subset of --constraints",
        );
    }
    let env = export_env(all.value("export"));
    let command = match cli.operands.first() {
        Some(p) if cli.value("wrap").is_none() => {
            std::fs::canonicalize(p).map_or(p.clone(), |c| c.display().to_string())
        }
        _ => "(null)".into(),
    };
    let mut req = build_request(JobKind::Batch, &r, &script_name, env, command);
    // An array's default output is `slurm-%A_%a.out` (sbatch(1), filename pattern).
    if array.is_some() && output.is_none() {
        output = Some("slurm-%A_%a.out".into());
    }
    req.relations.array = array;
    req.relations.dependency = dependency;
    req.relations.kill_on_invalid_dep = kill_on_invalid_dep;
    req.stdout = output;
    req.stderr = error;
    req.stdin = input;
    req.append = append;
    // The later of --requeue and --no-requeue wins (command line, environment, #SBATCH).
    req.no_requeue = all
        .opts
        .iter()
        .rev()
        .find_map(|(long, _)| match *long {
            "no-requeue" => Some(true),
            "requeue" => Some(false),
            _ => None,
        })
        .unwrap_or(false);
    req.signal = signal.map(|(sig, secs, _)| (sig, secs));
    req.signal_batch_shell = signal.is_some_and(|(_, _, batch_shell)| batch_shell);
    req.begin_after = begin_after;
    req.name_from_stdin = script_name == "sbatch" && r.name.is_none();
    req.script = Some(script);
    req.args = args;
    if all.has("test-only") {
        return test_only(call, req, cli.has("quiet"), "sbatch");
    }
    // Observed on Slurm 22.05: `--wait` and `--parsable` count also in `#SBATCH` lines, `-Q`
    // only on the command line (sbatch reads it before the script, in its first pass over
    // the arguments).
    let wait = all.has("wait");
    let conn = match call.conn() {
        Ok(c) => c,
        Err(e) => {
            call.unreachable(
                &e,
                &format!("sbatch: error: Batch job submission failed: {CONNECT_FAILURE}"),
            );
            return 1;
        }
    };
    let id = match conn.call(&Request::Submit {
        req: Box::new(req),
        wait,
    }) {
        Ok(Response::Submitted { id }) => id,
        Ok(Response::Error { detail, message }) => {
            for d in detail {
                eprintln!("sbatch: error: {d}");
            }
            return fail(&format!("Batch job submission failed: {message}"));
        }
        Ok(_) | Err(_) => return fail(&format!("Batch job submission failed: {CONNECT_FAILURE}")),
    };
    call.set_job_id(id);
    if wait {
        // Before the id is out: whoever saw it may kill the waiter at once.
        catch_kills();
    }
    // Observed: with --clusters the id comes with the cluster's name.
    // Observed: the command line's `-Q` silences `--parsable` too.
    match (all.has("parsable"), &cluster) {
        _ if cli.has("quiet") => {}
        (true, Some(name)) => println!("{id};{name}"),
        (true, None) => println!("{id}"),
        (false, Some(name)) => println!("Submitted batch job {id} on cluster {name}"),
        (false, None) => println!("Submitted batch job {id}"),
    }
    if !wait {
        return 0;
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let Ok(conn) = call.take_conn() else { return 1 };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut conn = conn;
        let _ = tx.send(conn.recv());
    });
    let finished = loop {
        match rx.recv_timeout(KILL_CHECK) {
            Ok(Ok(Response::Finished { job })) => break Some(job),
            Ok(_) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break None,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if killed().is_some() {
                    die_of_kill(call);
                }
            }
        }
    };
    if let Some(job) = finished {
        if sleep_until_wait_check(&call.dir, &job).is_some() {
            die_of_kill(call);
        }
        return wait_exit_code(&job);
    }
    // The daemon went away (e.g. restarted): the job survives it, so poll until it ends.
    match crate::cli::jobs::wait_until(&call.dir, id, |job| job.run.state.is_finished()) {
        _ if killed().is_some() => die_of_kill(call),
        Waited::Done(job) => {
            if sleep_until_wait_check(&call.dir, &job).is_some() {
                die_of_kill(call);
            }
            wait_exit_code(&job)
        }
        Waited::Gone => fail(&format!("Job {id} no longer found and exit code not found")),
        Waited::Unreachable => fail(CONNECT_FAILURE),
    }
}

/// `sbatch --test-only` (and srun's, `prog`): asks when the job would start and submits
/// nothing, though a job id is used up. Observed on Slurm 22.05 (`docs/slurm-observed.md` 50,
/// 68): `<prog>: Job N to start at TIME using C processors on nodes NODES in partition P` on
/// stderr, exit 0, nothing on stdout (also with `--parsable`), nothing at all with `-Q`; a
/// refusal is `allocation failure: <reason>` (after the command's own detail lines), exit 1.
pub(super) fn test_only(
    call: &mut Call,
    req: crate::model::JobRequest,
    quiet: bool,
    prog: &str,
) -> i32 {
    let conn = match call.conn() {
        Ok(c) => c,
        Err(e) => {
            call.unreachable(&e, &format!("allocation failure: {CONNECT_FAILURE}"));
            return 1;
        }
    };
    match conn.call(&Request::TestOnly { req: Box::new(req) }) {
        Ok(Response::WouldRun {
            id,
            start,
            cpus,
            nodes,
            partition,
        }) => {
            call.set_job_id(id);
            if !quiet {
                eprintln!(
                    "{prog}: Job {id} to start at {} using {cpus} processors on nodes {nodes} in partition {partition}",
                    super::format::date(Some(start), "Unknown")
                );
            }
            0
        }
        Ok(Response::Error { detail, message }) => {
            for d in detail {
                eprintln!("{prog}: error: {d}");
            }
            eprintln!("allocation failure: {message}");
            1
        }
        Ok(_) | Err(_) => {
            eprintln!("allocation failure: {CONNECT_FAILURE}");
            1
        }
    }
}

/// The longest sleep between two looks of `sbatch --wait` (`MAX_WAIT_SLEEP_TIME`, 22.05
/// `src/sbatch/sbatch.c`).
const MAX_WAIT_SLEEP_TIME: u64 = 32;

/// The seconds after submission at which real `sbatch --wait` looks at its job, for the
/// controller's `MinJobAge`: Slurm 22.05 `src/sbatch/sbatch.c` `_job_wait()` sleeps 2 s, then
/// multiplies the sleep by 4 after each sleep while it is below both `min_job_age / 2` (integer
/// division) and `MAX_WAIT_SLEEP_TIME`, and loads the job after every sleep. With the default
/// `MinJobAge=300`: 2, 10, 42, 74, 106, ... (sleeps 2, 8, 32, 32, ...).
fn wait_check_offsets(min_job_age: u64) -> impl Iterator<Item = u64> {
    let mut sleep_time = 2;
    let mut at = 0;
    std::iter::from_fn(move || {
        at += sleep_time;
        if sleep_time < min_job_age / 2 && sleep_time < MAX_WAIT_SLEEP_TIME {
            sleep_time *= 4;
        }
        Some(at)
    })
}

/// The first look of real `sbatch --wait` that finds a job ended `ended_after` seconds after
/// its submission, in seconds after the submission. The gap between two looks grows only while
/// it is below `min_job_age / 2`, so the look comes before the controller purges the job (with
/// `MinJobAge=300` at most 32 s after its end). Real Slurm misses a job that ends just after a
/// look when the gap exceeds `MinJobAge` (1, 6, 7 and 18 to 31 s; and it purges only every
/// minute or so), and then prints `Job N no longer found`; the simulated cluster still reports
/// the job's exit code.
fn wait_return_offset(min_job_age: u64, ended_after: f64) -> u64 {
    let ended_after = if ended_after.is_finite() {
        ended_after.max(0.0)
    } else {
        0.0
    };
    wait_check_offsets(min_job_age)
        .find(|&at| at as f64 >= ended_after)
        .unwrap_or(0)
}

/// After the job has ended, waits (in real time) until the look of real `sbatch --wait` that
/// would find it ended: at `submit_time + wait_return_offset(...)` in simulated time.
///
/// Returns the exit code of a kill that came meanwhile, if one did.
fn sleep_until_wait_check(dir: &std::path::Path, job: &crate::model::Job) -> Option<i32> {
    let cluster = crate::config::Cluster::load(&crate::daemon::stored_config_path(dir))
        .unwrap_or_else(|_| crate::config::Cluster::embedded_default());
    let end = job.run.end_time.unwrap_or(job.submit_time);
    let ended_after = end - job.submit_time;
    let check = job.submit_time + wait_return_offset(cluster.min_job_age, ended_after) as f64;
    let real = (check - end) / cluster.time_scale;
    if !(real.is_finite() && real > 0.0) {
        return killed();
    }
    let until = std::time::Instant::now() + std::time::Duration::from_secs_f64(real.min(1.0e6));
    loop {
        if let Some(code) = killed() {
            return Some(code);
        }
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return None;
        }
        std::thread::sleep(left.min(KILL_CHECK));
    }
}

/// The signal that killed a waiting `sbatch`, 0 while none did. Real sbatch installs no
/// handler for SIGHUP, SIGINT or SIGTERM while it waits (`_job_wait()` only sleeps and polls),
/// so they kill it and its parent sees 128 + the signal. The fake catches them only so that
/// the call is still recorded, with that code, before it goes.
static KILLED_BY: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// How often a waiting fake `sbatch` looks whether it was killed.
const KILL_CHECK: std::time::Duration = std::time::Duration::from_millis(50);

extern "C" fn note_kill(sig: libc::c_int) {
    KILLED_BY.store(sig, std::sync::atomic::Ordering::SeqCst);
}

fn catch_kills() {
    for sig in [libc::SIGHUP, libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores into an atomic.
        unsafe {
            libc::signal(sig, note_kill as *const () as libc::sighandler_t);
        }
    }
}

/// Records the call with the code a shell reports for the kill (128 + the signal), then dies
/// of the signal as real sbatch does.
fn die_of_kill(call: &mut crate::cli::Call) -> ! {
    let sig = KILLED_BY.load(std::sync::atomic::Ordering::SeqCst);
    call.finish(128 + sig);
    call.recorded = true;
    // SAFETY: restoring the default action and raising the signal that came.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
    std::process::exit(128 + sig)
}

/// The exit code of a kill that came, as a shell reports it (128 + the signal).
fn killed() -> Option<i32> {
    match KILLED_BY.load(std::sync::atomic::Ordering::SeqCst) {
        0 => None,
        sig => Some(128 + sig),
    }
}

/// `sbatch --wait`'s exit code: the job's exit code, 1 for a signal (0 when never started).
fn wait_exit_code(job: &crate::model::Job) -> i32 {
    let status = job.run.exit_status;
    if status & 0x7f == 0 {
        (status >> 8) & 0xff
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(min_job_age: u64, n: usize) -> Vec<u64> {
        wait_check_offsets(min_job_age).take(n).collect()
    }

    /// Slurm 22.05 `src/sbatch/sbatch.c` `_job_wait()`: `sleep_time = 2`, and after each
    /// `sleep(sleep_time)` `if ((sleep_time < (slurm_conf.min_job_age / 2)) && (sleep_time <
    /// MAX_WAIT_SLEEP_TIME)) sleep_time *= 4;` with `MAX_WAIT_SLEEP_TIME` 32.
    #[test]
    fn checks_follow_slurms_job_wait() {
        // MinJobAge=300 (the default, and ci/slurm's): sleeps 2, 8, 32, 32, ...
        assert_eq!(first(300, 6), [2, 10, 42, 74, 106, 138]);
        // 2 < 10/2 grows to 8; 8 < 5 does not: sleeps 2, 8, 8, ...
        assert_eq!(first(10, 5), [2, 10, 18, 26, 34]);
        // 8 < 17/2 (8, integer division) does not hold: the sleep stays 8.
        assert_eq!(first(17, 4), [2, 10, 18, 26]);
        // 8 < 18/2 holds: 32, the cap.
        assert_eq!(first(18, 4), [2, 10, 42, 74]);
        // 2 < 5/2 (2) does not hold: always 2; MinJobAge=0 (never purge) the same.
        assert_eq!(first(5, 4), [2, 4, 6, 8]);
        assert_eq!(first(0, 4), [2, 4, 6, 8]);
        // 2 < 6/2 holds, 8 < 3 does not.
        assert_eq!(first(6, 4), [2, 10, 18, 26]);
    }

    #[test]
    fn the_first_check_after_the_end_returns() {
        // What the differential case `sbatch_wait_returns_at_its_polling_times` observes on the
        // real Slurm: `true` is seen at 2 s, `sleep 3` at 10 s.
        assert_eq!(wait_return_offset(300, 0.02), 2);
        assert_eq!(wait_return_offset(300, 3.1), 10);
        // A job that ends exactly at a check is seen finished by it.
        assert_eq!(wait_return_offset(300, 10.0), 10);
        assert_eq!(wait_return_offset(300, 10.5), 42);
        // Real Slurm's one-minute time limit seen at 106 s (docs/slurm-observed.md, 18).
        assert_eq!(wait_return_offset(300, 86.0), 106);
        assert_eq!(wait_return_offset(300, f64::NAN), 2);
        assert_eq!(wait_return_offset(300, -1.0), 2);
    }

    #[test]
    fn with_the_default_min_job_age_the_job_is_seen_before_it_is_purged() {
        // A job ending anywhere in its first hour is looked at less than MinJobAge after its end.
        for tenths in 0..36_000 {
            let ended_after = f64::from(tenths) / 10.0;
            let seen = wait_return_offset(300, ended_after) as f64;
            assert!(seen - ended_after < 300.0, "{ended_after}");
            assert!(seen - ended_after <= 32.0, "{ended_after}");
        }
    }
}
