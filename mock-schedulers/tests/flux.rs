//! The fake Flux commands: `flux alloc`, `flux run`, `flux submit`, `flux jobs`,
//! `flux job attach|status|id`, `flux cancel`. Each story cites where the behaviour comes
//! from: the reference section (`scheduler-cli-reference.md`) and flux-core's source or docs
//! (paths relative to flux-framework/flux-core at 4a5e79f56b).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use common::{TestCluster, wait_for};

/// The locale of a command: F58 ids are printed `ƒ...` in a UTF-8 locale, `f...` otherwise.
#[derive(Clone, Copy)]
enum Locale {
    Utf8,
    Ascii,
}

fn flux_command(c: &TestCluster, locale: Locale, args: &[&str]) -> Command {
    let mut cmd = Command::new(c.state.join("bin").join("flux"));
    // Jobs inherit the submitter's environment: none of the test process's own scheduler
    // variables (a real Slurm's SLURM_CONF under ci/test) may show in what the jobs print.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("SLURM_") || name.starts_with("FLUX_") {
            cmd.env_remove(name.as_ref());
        }
    }
    cmd.args(args)
        .env("MOCK_CLUSTER_STATE_DIR", &c.state)
        .env("PATH", c.path_var())
        .env_remove("LANG")
        .env_remove("LC_CTYPE")
        .env(
            "LC_ALL",
            match locale {
                Locale::Utf8 => "C.UTF-8",
                Locale::Ascii => "C",
            },
        )
        .current_dir(&c.work);
    cmd
}

/// Runs `flux ARGS` (UTF-8 locale) with stdin closed; (stdout, stderr, exit code).
fn flux(c: &TestCluster, args: &[&str]) -> (String, String, i32) {
    run_with(flux_command(c, Locale::Utf8, args))
}

fn run_with(mut cmd: Command) -> (String, String, i32) {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// Starts `flux ARGS` in the background with piped output.
fn spawn_flux(c: &TestCluster, args: &[&str]) -> Child {
    flux_command(c, Locale::Utf8, args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Lines of a child's stream, as they come.
fn lines_of(stream: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The next line, within 20 s.
fn next_line(rx: &Receiver<String>, what: &str) -> String {
    rx.recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("no line: {what}"))
}

/// Waits for the child to exit, within 20 s.
fn exit_code(child: &mut Child) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        assert!(Instant::now() < deadline, "flux did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Remaining lines of a stream after the child exited.
fn rest(rx: &Receiver<String>) -> Vec<String> {
    let mut out = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(5)) {
        out.push(line);
    }
    out
}

/// `{state}` of a job, as `flux jobs` shows it.
fn state(c: &TestCluster, id: &str) -> String {
    flux(c, &["jobs", "-n", "-o", "{state}", id])
        .0
        .trim()
        .to_string()
}

fn wait_state(c: &TestCluster, id: &str, want: &str) {
    wait_for(&format!("{id} to be {want}"), || state(c, id) == want);
}

/// Replaces the seconds of `job.exception` lines (`12.345s:` → `<T>s:`).
fn untimed(text: &str) -> String {
    text.lines()
        .map(|l| match l.split_once("s: ") {
            Some((secs, rest))
                if !secs.is_empty() && secs.chars().all(|c| c.is_ascii_digit() || c == '.') =>
            {
                format!("<T>s: {rest}")
            }
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Submits a job that holds the one node of the fast cluster, and waits until it runs.
fn occupy(c: &TestCluster) -> String {
    let (out, err, code) = flux(c, &["submit", "-N1", "sleep", "300"]);
    assert_eq!(code, 0, "{err}");
    let id = out.trim().to_string();
    wait_state(c, &id, "RUN");
    id
}

// reference 4.2, 4.3; src/bindings/python/flux/cli/alloc.py (`print("jobid:", jobid)` with
// -v, then exec flux-job attach); src/cmd/job/attach.c (output streamed as it comes; a cancel
// prints the job.exception line, the tasks get SIGTERM, exit 128+15).
#[test]
fn alloc_verbose_streams_output_while_the_job_runs_and_a_cancel_ends_it() {
    let c = TestCluster::fast();
    let mut child = spawn_flux(
        &c,
        &[
            "alloc",
            "-v",
            "-N1",
            "sh",
            "-c",
            "echo started; sleep 300; echo never",
        ],
    );
    let out = lines_of(child.stdout.take().unwrap());
    let err = lines_of(child.stderr.take().unwrap());
    let jobid_line = next_line(&err, "jobid");
    let id = jobid_line.strip_prefix("jobid: ").unwrap().to_string();
    assert!(id.starts_with('\u{192}'), "{jobid_line}");
    // The line printed before the long sleep arrives while the job still runs.
    assert_eq!(next_line(&out, "output"), "started");
    assert_eq!(state(&c, &id), "RUN");
    assert!(child.try_wait().unwrap().is_none());
    let (o, e, code) = flux(&c, &["cancel", &id]);
    assert_eq!((o.as_str(), e.as_str(), code), ("", "", 0));
    assert_eq!(exit_code(&mut child), 143);
    assert!(rest(&out).is_empty());
    assert_eq!(
        untimed(&rest(&err).join("\n")),
        format!("<T>s: job.exception {id} type=cancel severity=0 \nflux-job: task(s) Terminated")
    );
    assert_eq!(
        flux(
            &c,
            &[
                "jobs",
                "-n",
                "-o",
                "{status} {returncode} {exception.type}",
                &id
            ]
        )
        .0,
        "CANCELED 143 cancel\n"
    );
}

// reference 4.3 and 6 (flux alloc/run column); src/common/libjob/job.c
// flux_job_waitstatus_to_exitcode: exit N → N with `task(s) exited with exit code N`; a
// task killed by signal S → 128+S with `task(s) <strsignal>` (the job shell exits 128+S).
#[test]
fn exit_codes_of_run_and_alloc() {
    let c = TestCluster::fast();
    assert_eq!(
        flux(&c, &["run", "true"]),
        (String::new(), String::new(), 0)
    );
    assert_eq!(
        flux(&c, &["run", "sh", "-c", "echo out; exit 7"]),
        (
            "out\n".into(),
            "flux-job: task(s) exited with exit code 7\n".into(),
            7
        )
    );
    assert_eq!(
        flux(&c, &["alloc", "-N1", "sh", "-c", "kill -KILL $$"]),
        (String::new(), "flux-job: task(s) Killed\n".into(), 137)
    );
    assert_eq!(
        flux(&c, &["run", "sh", "-c", "kill -SEGV $$"]),
        (
            String::new(),
            "flux-job: task(s) Segmentation fault\n".into(),
            139
        )
    );
    // src/shell/shell.c: a command that cannot start, exit 127 (126 when not permitted).
    let (out, err, code) = flux(&c, &["run", "-v", "no-such-command"]);
    assert_eq!((out.as_str(), code), ("", 127));
    let id = err
        .lines()
        .next()
        .unwrap()
        .strip_prefix("jobid: ")
        .unwrap()
        .to_string();
    let failed =
        "task 0 (host localhost): start failed: no-such-command: No such file or directory";
    assert_eq!(
        untimed(&err),
        format!(
            "jobid: {id}\n<T>s: flux-shell[0]: FATAL: {failed}\n<T>s: job.exception {id} type=exec severity=0 {failed}\nflux-job: task(s) exited with exit code 127"
        )
    );
    // {returncode} of inactive jobs (src/bindings/python/flux/job/info.py returncode); an
    // instance's name is `flux` (its command is `flux broker ...`).
    assert_eq!(
        flux(
            &c,
            &["jobs", "-a", "-n", "-o", "{name} {status} {returncode}"]
        )
        .0,
        "no-such-command FAILED 127\nsh FAILED 139\nflux FAILED 137\nsh FAILED 7\ntrue COMPLETED 0\n"
    );
}

// reference 4.3, 4.6, 6 (cancel while pending → 1); attach.c (no finish event: exit code 1;
// the exception line); info.py returncode -128 for a job canceled before it ran.
#[test]
fn a_cancel_while_pending_exits_1() {
    let c = TestCluster::fast();
    let blocker = occupy(&c);
    let mut child = spawn_flux(&c, &["alloc", "-v", "-N1", "sh", "-c", "echo never"]);
    let out = lines_of(child.stdout.take().unwrap());
    let err = lines_of(child.stderr.take().unwrap());
    let id = next_line(&err, "jobid")
        .strip_prefix("jobid: ")
        .unwrap()
        .to_string();
    wait_state(&c, &id, "SCHED");
    assert_eq!(flux(&c, &["cancel", &id]).2, 0);
    assert_eq!(exit_code(&mut child), 1);
    assert!(rest(&out).is_empty());
    assert_eq!(
        untimed(&rest(&err).join("\n")),
        format!("<T>s: job.exception {id} type=cancel severity=0 ")
    );
    assert_eq!(
        flux(
            &c,
            &[
                "jobs",
                "-n",
                "-o",
                "{state} {status} {returncode} {t_run}",
                &id
            ]
        )
        .0,
        "INACTIVE CANCELED -128 0.0\n"
    );
    // src/cmd/job/status.c: a fatal exception gives at least 1.
    assert_eq!(flux(&c, &["job", "status", &id]).2, 1);
    assert_eq!(flux(&c, &["cancel", &blocker]).2, 0);
}

// reference 4.7; doc/man7/flux-environment.rst; src/broker/runat.c (the initial program of
// flux alloc gets FLUX_URI and FLUX_ENCLOSING_ID, and FLUX_JOB_ID & co. are removed);
// src/shell/shell.c shell_setup_environment (tasks of flux run).
#[test]
fn the_environment_inside_alloc_differs_from_run() {
    let c = TestCluster::fast();
    let show = "env | grep -E '^(FLUX_|SLURM_)' | cut -d= -f1 | sort | tr '\\n' ' '";
    let mut alloc = flux_command(&c, Locale::Utf8, &["alloc", "-v", "-N1", "sh", "-c", show]);
    alloc.env("FLUX_JOB_ID", "stale").env("SLURM_JOB_ID", "7");
    let (out, err, code) = run_with(alloc);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "FLUX_ENCLOSING_ID FLUX_URI ");
    let id = err.trim().strip_prefix("jobid: ").unwrap().to_string();
    let (enclosing, _, _) = flux(&c, &["alloc", "-N1", "sh", "-c", "echo $FLUX_ENCLOSING_ID"]);
    assert!(enclosing.trim().starts_with('\u{192}'));
    assert_ne!(enclosing.trim(), id);

    let (out, err, code) = flux(&c, &["run", "-v", "sh", "-c", show]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "FLUX_JOB_ID FLUX_JOB_ID_PATH FLUX_JOB_NNODES FLUX_JOB_SIZE FLUX_JOB_TMPDIR FLUX_KVS_NAMESPACE FLUX_TASK_LOCAL_ID FLUX_TASK_RANK FLUX_URI "
    );
    let run_id = err.trim().strip_prefix("jobid: ").unwrap().to_string();
    let (out, _, _) = flux(
        &c,
        &[
            "run",
            "sh",
            "-c",
            "echo $FLUX_JOB_ID $FLUX_JOB_SIZE $FLUX_JOB_NNODES $FLUX_TASK_RANK; test -d $FLUX_JOB_TMPDIR && echo tmpdir",
        ],
    );
    let fields: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(fields[1..].to_vec(), ["1", "1", "0", "tmpdir"]);
    assert!(fields[0].starts_with('\u{192}') && fields[0] != run_id);
    // Several tasks: each with its rank, the largest exit code wins.
    let (out, err, code) = flux(
        &c,
        &[
            "run",
            "-n2",
            "sh",
            "-c",
            "echo rank=$FLUX_TASK_RANK size=$FLUX_JOB_SIZE; exit $FLUX_TASK_RANK",
        ],
    );
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["rank=0 size=2", "rank=1 size=2"]);
    assert_eq!(
        (err.as_str(), code),
        ("flux-job: task(s) exited with exit code 1\n", 1)
    );
}

// reference 4.1; src/common/libutil/fluid.c (F58 alphabet, `ƒ` in a UTF-8 locale unless
// FLUX_F58_FORCE_ASCII, `f` otherwise; decimal, hex, F58 and dothex all parse);
// src/cmd/job/id.c.
#[test]
fn job_ids_are_f58_and_every_form_is_accepted() {
    let c = TestCluster::fast();
    let (utf8, _, _) = flux(&c, &["submit", "true"]);
    let (ascii, _, _) = run_with(flux_command(&c, Locale::Ascii, &["submit", "true"]));
    let mut forced = flux_command(&c, Locale::Utf8, &["submit", "true"]);
    forced.env("FLUX_F58_FORCE_ASCII", "1");
    let (forced, _, _) = run_with(forced);
    // The simulated cluster's job n has the Flux id n << 24 ([ts:40 id:14 seq:10], ts = n).
    assert_eq!(utf8, format!("\u{192}{}\n", f58_of(1 << 24)));
    assert_eq!(ascii, format!("f{}\n", f58_of(2 << 24)));
    assert_eq!(forced, format!("f{}\n", f58_of(3 << 24)));
    let id = utf8.trim();
    assert_eq!(flux(&c, &["job", "id", id]).0, "16777216\n");
    let plain = ascii_of(id);
    assert_eq!(
        flux(
            &c,
            &["job", "id", "--to=f58", "16777216", "0x1000000", &plain]
        )
        .0,
        format!("{id}\n{id}\n{id}\n")
    );
    assert_eq!(
        flux(&c, &["job", "id", "--to=dothex", id]).0,
        "0000.0000.0100.0000\n"
    );
    assert_eq!(
        flux(&c, &["job", "id", "--to=kvs", id]).0,
        "job.0000.0000.0100.0000\n"
    );
    assert_eq!(
        flux(&c, &["job", "id", "nonsense"]),
        (
            String::new(),
            "flux-job: nonsense: malformed input\n".into(),
            1
        )
    );
    // Every form names the same job, once it has ended.
    wait_state(&c, id, "INACTIVE");
    for form in [
        id,
        "16777216",
        "0x1000000",
        "job.0000.0000.0100.0000",
        &ascii_of(id),
    ] {
        assert_eq!(state(&c, form), "INACTIVE", "{form}");
    }
}

/// base58 as F58 writes it (`fluid.c` `b58revenc`).
fn f58_of(mut n: u64) -> String {
    const DIGITS: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 58) as usize]);
        n /= 58;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap()
}

fn ascii_of(id: &str) -> String {
    id.replacen('\u{192}', "f", 1)
}

// reference 4.4; src/bindings/python/flux/cli/base.py submit_cb (the id on stdout);
// attach.c (the kept output, the exit message and code); status.c (largest exit code).
#[test]
fn submit_then_attach_and_status() {
    let c = TestCluster::fast();
    let (out, err, code) = flux(
        &c,
        &[
            "submit",
            "--job-name=build",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 4",
        ],
    );
    assert_eq!((err.as_str(), code), ("", 0));
    let id = out.trim().to_string();
    assert_eq!(
        flux(&c, &["job", "attach", &id]),
        (
            "out\n".into(),
            "err\nflux-job: task(s) exited with exit code 4\n".into(),
            4
        )
    );
    assert_eq!(
        flux(&c, &["job", "status", &id]),
        (String::new(), String::new(), 4)
    );
    let (ok, _, _) = flux(&c, &["submit", "true"]);
    assert_eq!(
        flux(&c, &["job", "status", "-v", ok.trim(), &id]),
        (
            String::new(),
            format!(
                "flux-job: fetching status for 2 jobs\nflux-job: all done.\nflux-job: {id}: exited with exit code 4\n"
            ),
            4
        )
    );
    assert_eq!(
        flux(
            &c,
            &[
                "jobs",
                "-n",
                "-o",
                "{name} {status} {returncode} {success}",
                &id
            ]
        )
        .0,
        "build FAILED 4 False\n"
    );
    // Unknown ids (status.c, attach.c).
    let unknown = format!("\u{192}{}", f58_of(99 << 24));
    assert_eq!(
        flux(&c, &["job", "status", &unknown]),
        (
            String::new(),
            format!("flux-job: {unknown}: No such job\n"),
            1
        )
    );
    assert_eq!(
        flux(&c, &["job", "attach", &unknown]),
        (
            String::new(),
            format!("flux-job: Failed to attach to {unknown}: No such job\n"),
            1
        )
    );
    assert_eq!(
        flux(&c, &["job", "attach", "x-y"]),
        (
            String::new(),
            "flux-job: error parsing jobid: \"x-y\"\n".into(),
            1
        )
    );
}

// reference 4.4; doc/man1/common/job-standard-io.rst (--output is a mustache template
// relative to the job's directory); src/shell/output/conf.c (stderr follows stdout's file);
// attach.c handle_output_redirect (`0: stdout redirected to <path>`).
#[test]
fn submit_output_templates_name_files() {
    let c = TestCluster::fast();
    let (out, _, _) = flux(
        &c,
        &[
            "submit",
            "--output=job-{{id}}.out",
            "sh",
            "-c",
            "echo to-out; echo to-err >&2",
        ],
    );
    let id = out.trim().to_string();
    assert_eq!(
        flux(&c, &["job", "attach", &id]),
        (
            String::new(),
            format!("0: stdout redirected to job-{id}.out\n0: stderr redirected to job-{id}.out\n"),
            0
        )
    );
    let file = c.path(&format!("job-{id}.out"));
    let content = std::fs::read_to_string(&file).unwrap();
    assert!(
        content == "to-out\nto-err\n" || content == "to-err\nto-out\n",
        "{content}"
    );
    let (out, _, _) = flux(
        &c,
        &[
            "submit",
            "--error=e-{{id.dec}}-{{name}}.txt",
            "sh",
            "-c",
            "echo kept; echo to-file >&2",
        ],
    );
    let id = out.trim().to_string();
    let (dec, _, _) = flux(&c, &["job", "id", &id]);
    assert_eq!(
        flux(&c, &["job", "attach", &id]),
        (
            "kept\n".into(),
            format!("0: stderr redirected to e-{}-sh.txt\n", dec.trim()),
            0
        )
    );
    assert_eq!(
        std::fs::read_to_string(c.path(&format!("e-{}-sh.txt", dec.trim()))).unwrap(),
        "to-file\n"
    );
}

// reference 4.5; src/cmd/flux-jobs.py (default: the caller's pending and running jobs, -a all,
// ids whatever their state); src/bindings/python/flux/job/info.py (headings, states);
// job/list.py (`JobID <id> unknown`, exit 1 when no id is known).
#[test]
fn flux_jobs_lists_states_and_formats() {
    let c = TestCluster::fast();
    let running = occupy(&c);
    let (out, _, _) = flux(&c, &["submit", "--job-name=waiting", "true"]);
    let pending = out.trim().to_string();
    wait_state(&c, &pending, "SCHED");
    let (out, _, code) = flux(&c, &["jobs"]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "       JOBID QUEUE    USER     NAME       ST NTASKS NNODES     TIME INFO"
    );
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[1].starts_with(&format!("{pending:>12} debug")),
        "{out}"
    );
    assert!(
        lines[1].contains("waiting     S      1      1        - "),
        "{out}"
    );
    assert!(
        lines[2].starts_with(&format!("{running:>12} debug")),
        "{out}"
    );
    assert!(
        lines[2].contains(" sleep       R      1      1 ") && lines[2].ends_with(" localhost"),
        "{out}"
    );
    assert_eq!(flux(&c, &["cancel", &running, &pending]).2, 0);
    wait_state(&c, &running, "INACTIVE");
    assert_eq!(flux(&c, &["jobs", "-n"]).0, "");
    assert_eq!(
        flux(
            &c,
            &[
                "jobs",
                "-a",
                "-n",
                "-o",
                "{id.f58} {state} {status} {returncode} {result_abbrev}"
            ]
        )
        .0,
        format!("{running} INACTIVE CANCELED 143 CA\n{pending} INACTIVE CANCELED -128 CA\n")
    );
    let unknown = format!("\u{192}{}", f58_of(77 << 24));
    assert_eq!(
        flux(&c, &["jobs", "-n", "-o", "{state}", &unknown, &pending]),
        ("INACTIVE\n".into(), format!("JobID {unknown} unknown\n"), 0)
    );
    assert_eq!(
        flux(&c, &["jobs", "-n", "-o", "{state}", &unknown]),
        (String::new(), format!("JobID {unknown} unknown\n"), 1)
    );
    assert_eq!(
        flux(&c, &["jobs", "-o", "{bogus}"]),
        (
            String::new(),
            "flux-jobs: ERROR: Error in user format: Unknown format field: bogus\n".into(),
            1
        )
    );
    // `?:` drops a column empty in every row, `+:` widens one to its widest value
    // (src/bindings/python/flux/util.py OutputFormat.filter).
    assert_eq!(
        flux(
            &c,
            &[
                "jobs",
                "-a",
                "-o",
                "{id.dec:>10} ?:{exception.note} +:{name:<3.3}",
                &pending
            ]
        )
        .0,
        format!("     JOBID NAME   \n{:>10} waiting\n", 2u64 << 24)
    );
}

// reference 4.6; src/cmd/flux-cancel.py (silent on success, `<id>: <error>`, exit 1);
// src/modules/job-manager/raise.c (`unknown job id`, `job is inactive`).
#[test]
fn cancel_errors() {
    let c = TestCluster::fast();
    let (out, _, _) = flux(&c, &["submit", "true"]);
    let done = out.trim().to_string();
    wait_state(&c, &done, "INACTIVE");
    let unknown = format!("\u{192}{}", f58_of(42 << 24));
    assert_eq!(
        flux(&c, &["cancel", &done, &unknown]),
        (
            String::new(),
            format!(
                "flux-cancel: ERROR: {done}: job is inactive\nflux-cancel: ERROR: {unknown}: unknown job id\n"
            ),
            1
        )
    );
    assert_eq!(
        flux(&c, &["cancel"]),
        (
            String::new(),
            "flux-cancel: ERROR: No target jobs were provided\n".into(),
            1
        )
    );
    assert_eq!(
        flux(&c, &["cancel", "--all"]),
        (String::new(), "flux-cancel: Matched 0 jobs\n".into(), 0)
    );
    let running = occupy(&c);
    assert_eq!(
        flux(&c, &["cancel", "--all"]),
        (
            String::new(),
            "flux-cancel: Canceled 1 job (0 errors)\n".into(),
            0
        )
    );
    wait_state(&c, &running, "INACTIVE");
}

// reference 4.3, 6 (walltime: 128+14); src/modules/job-exec/job-exec.c timelimit_cb (the
// `timeout` exception, `resource allocation expired`, SIGALRM).
#[test]
fn a_time_limit_raises_a_timeout_exception_and_sigalrm() {
    let c = TestCluster::fast();
    let (out, err, code) = flux(&c, &["run", "-t", "1m", "sh", "-c", "echo up; sleep 300"]);
    assert_eq!(out, "up\n");
    assert_eq!(code, 142, "{err}");
    let err = untimed(&err);
    assert!(err.starts_with("<T>s: job.exception "), "{err}");
    assert!(
        err.ends_with(
            " type=timeout severity=0 resource allocation expired\nflux-job: task(s) Alarm clock"
        ),
        "{err}"
    );
    let (id, _, _) = flux(&c, &["submit", "-t", "30s", "sleep", "300"]);
    let id = id.trim().to_string();
    let (out, err, code) = flux(&c, &["job", "attach", &id]);
    assert_eq!((out.as_str(), code), ("", 142));
    assert_eq!(
        untimed(&err),
        format!(
            "<T>s: job.exception {id} type=timeout severity=0 resource allocation expired\nflux-job: task(s) Alarm clock"
        )
    );
    assert_eq!(
        flux(
            &c,
            &[
                "jobs",
                "-n",
                "-o",
                "{status} {returncode} {inactive_reason}",
                &id
            ]
        )
        .0,
        "TIMEOUT 142 Timeout\n"
    );
}

// Injected failures: submit-errors print the text as each command prints a refused
// submission (flux run/alloc: CLIMain `flux-run: ERROR: ...`, src/bindings/python/flux/util.py;
// flux submit: the OSError of submit_cb, `[Errno 22] ...`), exit 1. status-timeout: flux jobs
// fails like an RPC that timed out (choice: `flux-jobs: ERROR: Connection timed out`, exit 1).
#[test]
fn injected_failures() {
    let c = TestCluster::fast();
    assert_eq!(flux(&c, &["jobs"]).2, 0);
    c.inject(&[
        "submit-errors",
        "3",
        "--message",
        "Resource temporarily unavailable",
    ]);
    assert_eq!(
        flux(&c, &["run", "true"]),
        (
            String::new(),
            "flux-run: ERROR: Resource temporarily unavailable\n".into(),
            1
        )
    );
    assert_eq!(
        flux(&c, &["alloc", "-N1", "-v", "true"]),
        (
            String::new(),
            "flux-alloc: ERROR: Resource temporarily unavailable\n".into(),
            1
        )
    );
    assert_eq!(
        flux(&c, &["submit", "true"]),
        (
            String::new(),
            "[Errno 22] Resource temporarily unavailable\n".into(),
            1
        )
    );
    assert_eq!(flux(&c, &["run", "true"]).2, 0);
    c.inject(&["status-timeout", "on"]);
    assert_eq!(
        flux(&c, &["jobs", "-a"]),
        (
            String::new(),
            "flux-jobs: ERROR: Connection timed out\n".into(),
            1
        )
    );
    c.inject(&["status-timeout", "off"]);
    assert_eq!(
        flux(&c, &["jobs", "-a", "-n", "-o", "{status}"]).0,
        "COMPLETED\n"
    );
}

// Refusals before and at submission: src/bindings/python/flux/cli/base.py and
// job/Jobspec.py (local checks, `flux-<cmd>: ERROR:`), argparse (`usage:` and
// `flux run: error: ...`, exit 2), job/frobnicator/plugins/defaults.py (unknown queue),
// src/modules/job-manager/plugins/limit-duration.c (a limit above the queue's), the
// scheduler's feasibility (src/bindings/python/flux/resource/Rv1Pool.py: the job is accepted,
// then denied with an `alloc` exception).
#[test]
fn refusals_in_flux_words() {
    let c = TestCluster::fast();
    assert_eq!(
        flux(&c, &["run"]),
        (
            String::new(),
            "flux-run: ERROR: job command and arguments are missing\n".into(),
            1
        )
    );
    assert_eq!(
        flux(&c, &["alloc", "true"]),
        (
            String::new(),
            "flux-alloc: ERROR: Number of slots to allocate must be specified\n".into(),
            1
        )
    );
    assert_eq!(
        flux(&c, &["run", "--bogus", "true"]),
        (
            String::new(),
            "usage: flux run [OPTIONS...] COMMAND [ARGS...]\nflux run: error: unrecognized arguments: --bogus\n".into(),
            2
        )
    );
    assert_eq!(
        flux(&c, &["run", "-t", "soon", "true"]),
        (
            String::new(),
            "flux-run: ERROR: invalid Flux standard duration\n".into(),
            1
        )
    );
    assert_eq!(
        flux(&c, &["run", "-q", "nope", "true"]),
        (
            String::new(),
            "flux-run: ERROR: Invalid queue 'nope' specified\n".into(),
            1
        )
    );
    assert_eq!(
        flux(&c, &["submit", "-q", "gitlab-ci", "-t", "2h", "true"]),
        (
            String::new(),
            "[Errno 22] requested duration (2h) exceeds policy limit of 1h for queue gitlab-ci\n"
                .into(),
            1
        )
    );
    let (out, err, code) = flux(&c, &["run", "-v", "-N2", "true"]);
    let id = err
        .lines()
        .next()
        .unwrap()
        .strip_prefix("jobid: ")
        .unwrap()
        .to_string();
    assert_eq!((out.as_str(), code), ("", 1));
    assert_eq!(
        untimed(&err),
        format!(
            "jobid: {id}\n<T>s: job.exception {id} type=alloc severity=0 unsatisfiable request: need 2 exclusive node(s), only 1 eligible"
        )
    );
    assert_eq!(
        flux(
            &c,
            &[
                "jobs",
                "-n",
                "-o",
                "{status} {returncode} {inactive_reason}",
                &id
            ]
        )
        .0,
        "FAILED 1 Exception: type=alloc note=unsatisfiable request: need 2 exclusive node(s), only 1 eligible\n"
    );
    assert_eq!(
        flux(&c, &["flux-nonsense"]),
        (
            String::new(),
            "flux: `flux-nonsense' is not a flux command.  See 'flux --help'\n".into(),
            1
        )
    );
}

// reference 4.2 (--bg prints the jobid once the instance is ready, exit 0);
// src/bindings/python/flux/cli/alloc.py background (-v lines `<id>: <secs>s: <msg>`).
#[test]
fn alloc_bg_leaves_a_running_instance() {
    let c = TestCluster::fast();
    let (out, err, code) = flux(&c, &["alloc", "--bg", "-v", "-N1"]);
    assert_eq!(code, 0, "{err}");
    let id = out.trim().to_string();
    let lines: Vec<String> = err
        .lines()
        .map(|l| {
            let rest = l.strip_prefix(&format!("{id}: ")).unwrap_or(l);
            untimed(rest.trim_start())
        })
        .collect();
    assert_eq!(
        lines,
        [
            "<T>s: waiting for resources",
            "<T>s: resources allocated",
            "<T>s: waiting for instance",
            "<T>s: ready"
        ]
    );
    assert_eq!(state(&c, &id), "RUN");
    assert_eq!(
        flux(&c, &["jobs", "-n", "-o", "{name} {ntasks} {nnodes}", &id]).0,
        "flux 1 1\n"
    );
    assert_eq!(flux(&c, &["cancel", &id]).2, 0);
    wait_state(&c, &id, "INACTIVE");
    assert_eq!(flux(&c, &["job", "status", &id]).2, 143);
}

// The call record keeps flux's argv and the job it made (mock-cluster calls).
#[test]
fn calls_are_recorded_with_their_job() {
    let c = TestCluster::fast();
    assert_eq!(flux(&c, &["run", "true"]).2, 0);
    let out = c.admin(&["calls", "--json"]);
    let calls: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let call = &calls[0];
    assert_eq!(call["program"], "flux");
    assert_eq!(call["argv"][1], "run");
    assert_eq!(call["argv"][2], "true");
    assert_eq!(call["exit_code"], 0);
    assert_eq!(call["job_id"], 1);
}

/// `flux uptime`, which `batchci check` asks whether the instance answers
/// (`src/cmd/builtin/uptime.c` `default_summary`, `doc/man1/flux-uptime.rst`): one line,
/// ` HH:MM:SS run <FSD, 2 digits>,  owner <user>,  depth 0,  size <brokers>` (one broker per
/// node here); without a broker `log_err_exit ("flux_open")`, exit 1.
#[test]
fn uptime_says_the_instance_runs_its_owner_and_size() {
    let c = TestCluster::fast();
    let (out, err, code) = flux(&c, &["uptime"]);
    assert_eq!((err.as_str(), code), ("", 0));
    let owner = mock_cluster::cli::slurm::identity().0;
    let fields: Vec<&str> = out.trim_end_matches('\n').split(",  ").collect();
    assert_eq!(
        fields[1..],
        [format!("owner {owner}").as_str(), "depth 0", "size 1"],
        "{out:?}"
    );
    let head: Vec<&str> = fields[0].split(' ').collect();
    assert_eq!(head.len(), 4, "{out:?}");
    assert_eq!((head[0], head[2]), ("", "run"), "{out:?}");
    assert!(
        head[1].len() == 8 && head[1].chars().filter(|ch| *ch == ':').count() == 2,
        "{out:?}"
    );
    let unit = head[3].trim_start_matches(|ch: char| ch.is_ascii_digit() || ch == '.');
    assert!(["ms", "s", "m", "h", "d"].contains(&unit), "{out:?}");
    assert_eq!(out.lines().count(), 1, "{out:?}");

    assert!(c.admin(&["stop"]).status.success());
    let mut command = flux_command(&c, Locale::Utf8, &["uptime"]);
    command.env("MOCK_CLUSTER_NO_AUTOSTART", "1");
    let (out, err, code) = run_with(command);
    assert_eq!((out.as_str(), code), ("", 1));
    assert!(
        err.starts_with(&format!(
            "flux-uptime: flux_open: mock-cluster daemon not reachable at {}: ",
            c.state.join("daemon.sock").display()
        )),
        "{err}"
    );
}
