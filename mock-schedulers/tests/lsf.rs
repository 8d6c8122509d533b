//! The fake IBM Spectrum LSF commands: bsub (batch, `-K`, `-I`), bjobs and bkill, on a
//! simulated cluster. Each comment names where the asserted behaviour comes from:
//! `reference N` is `scheduler-cli-reference.md`, `OL` the openlava source LSF grew from (see
//! `docs/mock-cluster.md`), `choice` a decision of the simulation.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use common::{TestCluster, wait_file_contains, wait_for};

/// Two nodes of two cores; one simulated minute per real second; finished jobs stay listed
/// for ten real minutes (LSF's CLEAN_PERIOD).
const CLUSTER: &str = r#"
cluster_name = "batchci"
time_scale = 60.0
kill_wait = 2
min_job_age = 36000

[[nodes]]
names = "node[01-02]"
cpus = 2
memory_mb = 8000

[[partitions]]
name = "debug"
nodes = "node[01-02]"
default = true
max_time = "UNLIMITED"

[[partitions]]
name = "gitlab-ci"
nodes = "node01"
max_time = 60
"#;

fn lsf() -> TestCluster {
    TestCluster::with_config(CLUSTER)
}

fn user() -> String {
    mock_cluster::cli::slurm::identity().0
}

fn host() -> String {
    mock_cluster::host::short_hostname()
}

fn work(c: &TestCluster) -> String {
    std::fs::canonicalize(&c.work)
        .unwrap()
        .display()
        .to_string()
}

/// `bjobs -noheader -o FIELDS ID`, trimmed.
fn field(c: &TestCluster, id: u32, fields: &str) -> String {
    let (out, _, _) = c.run("bjobs", &["-noheader", "-o", fields, &id.to_string()]);
    out.trim().to_string()
}

fn wait_stat(c: &TestCluster, id: u32, stat: &str) {
    wait_for(&format!("job {id} to be {stat}"), || {
        field(c, id, "stat") == stat
    });
}

/// bsub with `stdin` as its standard input: (stdout, stderr, exit code).
fn bsub_stdin(c: &TestCluster, args: &[&str], stdin: &str) -> (String, String, i32) {
    let out = c
        .cmd("bsub")
        .args(args)
        .write_stdin(stdin)
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// The lines a stream gives, as they come.
fn lines_of(stream: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
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

fn next_line(rx: &Receiver<String>) -> String {
    rx.recv_timeout(Duration::from_secs(20))
        .expect("a line within 20 s")
}

/// Everything a stream still gives, once it has ended.
fn rest(rx: &Receiver<String>) -> Vec<String> {
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) {
        lines.push(line);
    }
    lines
}

/// Reads a whole stream in the background.
fn collect(mut stream: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text);
        text
    })
}

/// Fills both nodes with a running job, so that the next job waits.
fn block_the_cluster(c: &TestCluster) -> u32 {
    let (out, _, code) = c.run("bsub", &["-n", "4", "-J", "blocker", "sleep 300"]);
    assert_eq!(code, 0);
    let id = out
        .trim()
        .strip_prefix("Job <")
        .and_then(|r| r.split('>').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    wait_stat(c, id, "RUN");
    id
}

/// Replaces the times of a job report with `<T>`.
fn mask_report_times(text: &str) -> String {
    text.split_inclusive('\n')
        .map(|l| {
            if l.starts_with("Started at ") {
                "Started at <T>\n".to_string()
            } else if l.starts_with("Results reported at ") {
                "Results reported at <T>\n".to_string()
            } else {
                l.to_string()
            }
        })
        .collect()
}

/// Replaces bjobs' `Mon dd hh:mm` times with `<T>`.
fn mask_short_times(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if i + 12 <= chars.len() {
            let s: String = chars[i..i + 12].iter().collect();
            let b = s.as_bytes();
            let shape = b[0].is_ascii_uppercase()
                && b[1].is_ascii_lowercase()
                && b[2].is_ascii_lowercase()
                && b[3] == b' '
                && (b[4] == b' ' || b[4].is_ascii_digit())
                && b[5].is_ascii_digit()
                && b[6] == b' '
                && b[7].is_ascii_digit()
                && b[8].is_ascii_digit()
                && b[9] == b':'
                && b[10].is_ascii_digit()
                && b[11].is_ascii_digit();
            if shape {
                out.push_str("<T>");
                i += 12;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// A `%-w.ws` cell.
fn cell(s: &str, w: usize) -> String {
    let cut: String = s.chars().take(w).collect();
    format!("{cut:<w$}")
}

const USAGE_START: &str = "Usage: bsub [-h] [-V]";

#[test]
fn a_batch_job_says_where_it_went_and_appends_the_job_report_to_its_output_file() {
    let c = lsf();
    // reference 3.1 (3p parsers read stdout); OL lsf/lsb/sub.c postSubMsg: "default queue"
    // when -q was not given.
    let (out, err, code) = c.run("bsub", &["-o", "out.%J", "echo hello; echo oops >&2"]);
    assert_eq!(
        (out.as_str(), err.as_str(), code),
        ("Job <1> is submitted to default queue <debug>.\n", "", 0)
    );
    wait_stat(&c, 1, "DONE");
    // reference 3.1: %J is the job id, -o without -e also takes stderr; reference 8: the -o
    // file gets LSF's job report; OL lsf/daemons/sbatchd/job.c: its lines (written after the
    // output, as when the output goes to the file directly).
    let text = wait_file_contains(&c.path("out.1"), "above this job summary");
    let home = std::env::var("HOME").unwrap();
    let (u, h, w) = (user(), host(), work(&c));
    let expected = format!(
        "hello
oops

------------------------------------------------------------
Sender: LSF System <{u}@node01>
Subject: Job 1: <echo hello; echo oops >&2> Done

Job <echo hello; echo oops >&2> was submitted from host <{h}> by user <{u}>.
Job was executed on host(s) <node01>, in queue <debug>, as user <{u}>.
<{home}> was used as the home directory.
<{w}> was used as the working directory.
Started at <T>
Results reported at <T>

Your job looked like:

------------------------------------------------------------
# LSBATCH: User input
echo hello; echo oops >&2
------------------------------------------------------------

Successfully completed.

Resource usage summary:

    CPU time   :      0.00 sec.

The output (if any) is above this job summary.

"
    );
    assert_eq!(mask_report_times(&text), expected);
    // reference 3.2: exit_code is `-` for exit 0; without -J the job is named after its
    // command (reference 3.1 LSB_JOBNAME; OL lsf/lsb/sub.c job description).
    assert_eq!(
        field(&c, 1, "stat exit_code job_name delimiter='|'"),
        "DONE|-|echo hello; echo oops >&2"
    );
}

#[test]
fn queues_refusals_and_injected_submit_errors() {
    let c = lsf();
    // reference 3.1: "queue <q>" when -q was given.
    assert_eq!(
        c.run("bsub", &["-q", "gitlab-ci", "true"]),
        (
            "Job <1> is submitted to queue <gitlab-ci>.\n".into(),
            String::new(),
            0
        )
    );
    // OL lsf/lsb/err.c "No such queue", sub_perror with the queue, do_sub's
    // ". Job not submitted."; reference 3.1: non-zero, 255 (3p).
    assert_eq!(
        c.run("bsub", &["-q", "nope", "true"]),
        (
            String::new(),
            "nope: No such queue. Job not submitted.\n".into(),
            255
        )
    );
    // OL prtErrMsg: LSBE_OVER_LIMIT names the limit; gitlab-ci's run limit is 60 minutes.
    assert_eq!(
        c.run("bsub", &["-q", "gitlab-ci", "-W", "61", "true"]),
        (
            String::new(),
            "RUNLIMIT: Cannot exceed queue's hard limit(s). Job not submitted.\n".into(),
            255
        )
    );
    // reference 3.1 (255 per 3p): the injected text in sub_perror's place.
    c.inject(&["submit-errors", "1", "--message", "mbatchd is busy"]);
    assert_eq!(
        c.run("bsub", &["true"]),
        (
            String::new(),
            "mbatchd is busy. Job not submitted.\n".into(),
            255
        )
    );
    // A refused job uses no id (choice, as the daemon refuses before numbering).
    assert_eq!(
        c.run("bsub", &["true"]).0,
        "Job <2> is submitted to default queue <debug>.\n"
    );
}

#[test]
fn bad_command_lines_are_refused_in_lsf_words() {
    let c = lsf();
    // OL lsf/lib/misc.c my_getopt, then subUsage_ and exit(-1).
    let (out, err, code) = c.run("bsub", &["-z", "true"]);
    assert_eq!((out.as_str(), code), ("", 255));
    let (first, usage) = err.split_once('\n').unwrap();
    assert_eq!(first, "bsub: illegal option -- z");
    assert!(usage.starts_with(USAGE_START), "{usage}");
    // OL setOption_: -I and -K exclude each other (the usage alone).
    let (_, err, code) = c.run("bsub", &["-I", "-K", "true"]);
    assert!(err.starts_with(USAGE_START) && code == 255, "{err}");
    // OL setOption_ texts, then ". Job not submitted.".
    for (args, text) in [
        (
            &["-n", "x", "true"][..],
            "Bad argument for option -n. Job not submitted.\n",
        ),
        (
            &["-n", "0", "true"][..],
            "The number of processors must be a positive integer. Job not submitted.\n",
        ),
        (
            &["-W", "1.5", "true"][..],
            "1.5: Bad RUNLIMIT specification. Job not submitted.\n",
        ),
        (
            &["-R", "span[hosts=1", "true"][..],
            "Bad resource requirement syntax. Job not submitted.\n",
        ),
        (&["-q"][..], "bsub: option requires an argument -- q\n"),
    ] {
        let (out, err, code) = c.run("bsub", args);
        assert_eq!((out.as_str(), code), ("", 255), "{args:?}");
        assert!(err.starts_with(text), "{args:?}: {err}");
    }
    // OL fillReq: a script with nothing to run (standard input is a pipe here).
    for script in ["", "#!/bin/sh\n# nothing\n\n"] {
        assert_eq!(
            bsub_stdin(&c, &[], script),
            (
                String::new(),
                "No command is specified. Job not submitted.\n".into(),
                255
            )
        );
    }
    // Nothing of that reached the queue.
    let (_, err, code) = c.run("bjobs", &["-a"]);
    assert_eq!((err.as_str(), code), ("No job found\n", 0));
}

#[test]
fn a_script_on_standard_input_takes_its_bsub_lines_but_the_command_line_wins() {
    let c = lsf();
    let script = "#!/bin/sh\n#BSUB -J from-script\n#BSUB -q gitlab-ci\n#BSUB -o script.out\necho \"$LSB_JOBNAME $LSB_QUEUE\"\n";
    // reference 8: `bsub < script` honours #BSUB lines; OL fillReq: command-line options win.
    let (out, err, code) = bsub_stdin(&c, &["-q", "debug"], script);
    assert_eq!(
        (out.as_str(), err.as_str(), code),
        ("Job <1> is submitted to queue <debug>.\n", "", 0)
    );
    wait_stat(&c, 1, "DONE");
    let text = wait_file_contains(&c.path("script.out"), "above this job summary");
    assert!(text.starts_with("from-script debug\n"), "{text}");
    // OL lsf/lsb/sub.c: without -J the name is the script, lines joined with `;`.
    let (out, _, _) = bsub_stdin(&c, &[], "#!/bin/sh\necho hi\n");
    assert_eq!(out, "Job <2> is submitted to default queue <debug>.\n");
    assert_eq!(field(&c, 2, "job_name"), "#!/bin/sh;echo hi");
}

#[test]
fn jobs_see_lsf_variables_and_run_where_they_were_submitted() {
    let c = lsf();
    let w = work(&c);
    // reference 3.1 job environment (OL lsf/daemons/sbatchd/job.c setJobEnv): three slots,
    // two per host (span[ptile=2]).
    let (out, _, code) = c.run(
        "bsub",
        &[
            "-n",
            "3",
            "-R",
            "span[ptile=2]",
            "-J",
            "envjob",
            "-o",
            "env.out",
            "pwd; echo \"$LSB_JOBID|$LSB_JOBNAME|$LSB_QUEUE|$LSB_HOSTS|$LSB_MCPU_HOSTS|$LSB_DJOB_NUMPROC|$LS_SUBCWD|$LSB_JOBINDEX|${LSB_INTERACTIVE:-no}\"; cat \"$LSB_DJOB_HOSTFILE\"",
        ],
    );
    assert_eq!(
        (out.as_str(), code),
        ("Job <1> is submitted to default queue <debug>.\n", 0)
    );
    let text = wait_file_contains(&c.path("env.out"), "above this job summary");
    let head: Vec<&str> = text.lines().take(5).collect();
    assert_eq!(
        head,
        vec![
            w.as_str(),
            &format!("1|envjob|debug|node01 node01 node02|node01 2 node02 1 |3|{w}|0|no"),
            "node01",
            "node01",
            "node02",
        ]
    );
    // bjobs shows the hosts as `slots*host` (choice), further hosts on their own line (OL
    // displayJobs).
    assert_eq!(
        field(&c, 1, "exec_host nexec_host slots delimiter=','"),
        "2*node01:node02,2,3"
    );
    // -cwd: the job's directory (relative to the submission directory, choice); -o relative
    // to it.
    std::fs::create_dir(c.path("sub")).unwrap();
    let (_, _, code) = c.run(
        "bsub",
        &["-cwd", "sub", "-o", "pwd.out", "pwd; echo $LS_SUBCWD"],
    );
    assert_eq!(code, 0);
    let text = wait_file_contains(&c.path("sub/pwd.out"), "above this job summary");
    assert!(text.starts_with(&format!("{w}/sub\n{w}\n")), "{text}");
}

#[test]
fn output_files_append_overwrite_split_and_go_into_directories() {
    let c = lsf();
    std::fs::write(c.path("a.out"), "old\n").unwrap();
    std::fs::write(c.path("b.out"), "old\n").unwrap();
    // reference 3.1: -o appends, -oo overwrites.
    assert_eq!(c.run("bsub", &["-K", "-o", "a.out", "echo new"]).2, 0);
    assert_eq!(c.run("bsub", &["-K", "-oo", "b.out", "echo new"]).2, 0);
    assert!(
        std::fs::read_to_string(c.path("a.out"))
            .unwrap()
            .starts_with("old\nnew\n\n---")
    );
    assert!(
        std::fs::read_to_string(c.path("b.out"))
            .unwrap()
            .starts_with("new\n\n---")
    );
    // -e takes stderr apart; the report goes to the output file only (OL sbatchd job.c).
    assert_eq!(
        c.run(
            "bsub",
            &[
                "-K",
                "-o",
                "o.txt",
                "-e",
                "e.txt",
                "echo o; echo e >&2; exit 3"
            ]
        )
        .2,
        3
    );
    assert_eq!(std::fs::read_to_string(c.path("e.txt")).unwrap(), "e\n");
    let o = std::fs::read_to_string(c.path("o.txt")).unwrap();
    assert!(
        o.starts_with("o\n\n---") && o.contains("\nExited with exit code 3.\n"),
        "{o}"
    );
    // OL sbatchd job.c: a directory gets <id>.out (and is created when the path ends in /).
    assert_eq!(c.run("bsub", &["-K", "-o", "logs/", "echo x"]).2, 0);
    assert!(
        std::fs::read_to_string(c.path("logs/4.out"))
            .unwrap()
            .starts_with("x\n")
    );
    // Without -o the output is mailed (reference 3.1): no file appears.
    assert_eq!(c.run("bsub", &["-K", "echo lost"]).2, 0);
    let mut names: Vec<String> = std::fs::read_dir(&c.work)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["a.out", "b.out", "e.txt", "logs", "o.txt"]);
}

#[test]
fn bsub_k_waits_and_exits_with_the_jobs_exit_code() {
    let c = lsf();
    // reference 3.1, IBM bsub -K: the job's exit code; OL nios.c: <<Job is finished>>.
    assert_eq!(
        c.run("bsub", &["-K", "exit 3"]),
        (
            "Job <1> is submitted to default queue <debug>.\n".into(),
            "<<Waiting for dispatch ...>>\n<<Job is finished>>\n".into(),
            3
        )
    );
    // The run limit: SIGUSR2 (choice after LSF's run-limit signal), so 128+12; bjobs says
    // EXIT with that code and why (choice: IBM termination reason names).
    let (_, err, code) = c.run("bsub", &["-K", "-W", "1", "sleep 30"]);
    assert_eq!(
        (err.as_str(), code),
        ("<<Waiting for dispatch ...>>\n<<Job is finished>>\n", 140)
    );
    assert_eq!(
        field(&c, 2, "stat exit_code exit_reason delimiter=','"),
        "EXIT,140,TERM_RUNLIMIT: job killed after reaching LSF run time limit"
    );
    // BSUB_QUIET2 keeps the <<...>> end line back (OL nios.c).
    let out = c
        .cmd("bsub")
        .args(["-K", "true"])
        .env("BSUB_QUIET2", "y")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "<<Waiting for dispatch ...>>\n"
    );
}

#[test]
fn bsub_k_of_a_job_killed_while_pending_exits_126() {
    let c = lsf();
    let blocker = block_the_cluster(&c);
    let mut child = c.spawn("bsub", &["-K", "echo never"]);
    let out = lines_of(child.stdout.take().unwrap());
    let err = collect(child.stderr.take().unwrap());
    assert_eq!(
        next_line(&out),
        "Job <2> is submitted to default queue <debug>."
    );
    wait_stat(&c, 2, "PEND");
    // reference 3.3: a pending job is removed.
    assert_eq!(
        c.run("bkill", &["2"]),
        ("Job <2> is being terminated\n".into(), String::new(), 0)
    );
    // reference 3.1 (IBM bsub -K): 126 when terminated while pending; OL nios.c line.
    assert_eq!(child.wait().unwrap().code(), Some(126));
    assert_eq!(
        err.join().unwrap(),
        "<<Waiting for dispatch ...>>\n<<Terminated while pending>>\n"
    );
    assert_eq!(field(&c, 2, "stat exit_code delimiter=','"), "EXIT,-");
    assert_eq!(c.run("bkill", &[&blocker.to_string()]).2, 0);
}

#[test]
fn bsub_i_streams_the_jobs_output_while_it_runs_and_a_bkill_ends_it_with_130() {
    let c = lsf();
    let mut child = c.spawn("bsub", &["-I", "echo before; sleep 30; echo after"]);
    let out = lines_of(child.stdout.take().unwrap());
    let err = collect(child.stderr.take().unwrap());
    // reference 3.1: the submission line (stdout, OL postSubMsg), then the job's output as
    // it comes (bsub -I doc: to the terminal), while the job still runs.
    assert_eq!(
        next_line(&out),
        "Job <1> is submitted to default queue <debug>."
    );
    assert_eq!(next_line(&out), "before");
    assert_eq!(field(&c, 1, "stat"), "RUN");
    // reference 3.3: bkill sends SIGINT first; reference 6: the signal exit, 130.
    assert_eq!(
        c.run("bkill", &["1"]),
        ("Job <1> is being terminated\n".into(), String::new(), 0)
    );
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert_eq!(rest(&out), Vec::<String>::new());
    // reference 3.1: the <<...>> lines on stderr (UNCONFIRMED there; OL nios.c writes them
    // to stderr).
    assert_eq!(
        err.join().unwrap(),
        "<<Waiting for dispatch ...>>\n<<Starting on node01>>\n"
    );
    assert_eq!(
        field(&c, 1, "stat exit_code exit_reason delimiter=','"),
        "EXIT,130,TERM_OWNER: job killed by owner"
    );
}

#[test]
fn bsub_i_exits_with_the_jobs_exit_code() {
    let c = lsf();
    // reference 6: exit N is N (UNCONFIRMED for -I; what the executor relies on).
    assert_eq!(
        c.run("bsub", &["-I", "exit 7"]),
        (
            "Job <1> is submitted to default queue <debug>.\n".into(),
            "<<Waiting for dispatch ...>>\n<<Starting on node01>>\n".into(),
            7
        )
    );
    // reference 6: killed by a signal: 128+S.
    assert_eq!(c.run("bsub", &["-I", "kill -TERM $$"]).2, 143);
    assert_eq!(field(&c, 2, "stat exit_code delimiter=','"), "EXIT,143");
    // The executor's form: the script on standard input (OL parseScript), arguments quoted as
    // OL CopyCommand quotes them, -q named.
    let script =
        "#!/bin/sh\necho \"from script $LSB_JOBNAME $LSB_INTERACTIVE $LSB_JOBID\"\nexit 4\n";
    assert_eq!(
        bsub_stdin(&c, &["-I", "-q", "gitlab-ci", "-J", "ci-job-7"], script),
        (
            "Job <3> is submitted to queue <gitlab-ci>.\nfrom script ci-job-7 Y 3\n".into(),
            "<<Waiting for dispatch ...>>\n<<Starting on node01>>\n".into(),
            4
        )
    );
    assert_eq!(
        c.run("bsub", &["-I", "sh", "-c", "echo \"$0:$1\"", "a b"])
            .0,
        "Job <4> is submitted to default queue <debug>.\na b:\n"
    );
    // -cwd and -env (choice: IBM's -env syntax): only what is named, in that directory.
    std::fs::create_dir(c.path("sub")).unwrap();
    let out = c
        .cmd("bsub")
        .args([
            "-I",
            "-cwd",
            "sub",
            "-env",
            "none, FOO=bar",
            "pwd; echo \"[$FOO][$NOT_PASSED]\"",
        ])
        .env("NOT_PASSED", "x")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "Job <5> is submitted to default queue <debug>.\n{}/sub\n[bar][]\n",
            work(&c)
        )
    );
}

#[test]
fn bsub_i_of_a_job_killed_while_pending_says_so_and_exits_126() {
    let c = lsf();
    let blocker = block_the_cluster(&c);
    let mut child = c.spawn("bsub", &["-I", "echo never"]);
    let out = lines_of(child.stdout.take().unwrap());
    let err = collect(child.stderr.take().unwrap());
    assert_eq!(
        next_line(&out),
        "Job <2> is submitted to default queue <debug>."
    );
    wait_stat(&c, 2, "PEND");
    assert_eq!(c.run("bkill", &["2"]).0, "Job <2> is being terminated\n");
    // reference 3.1 (IBM example messages) and 6 (126, as -K).
    assert_eq!(child.wait().unwrap().code(), Some(126));
    assert_eq!(
        err.join().unwrap(),
        "<<Waiting for dispatch ...>>\n<< Job <2> has been terminated by user or administrator >>\n<<Terminated while pending>>\n"
    );
    assert_eq!(rest(&out), Vec::<String>::new());
    assert_eq!(c.run("bkill", &[&blocker.to_string()]).2, 0);
}

#[test]
fn bkill_terminates_signals_and_says_why_it_cannot() {
    let c = lsf();
    let (out, _, _) = c.run(
        "bsub",
        &[
            "-J",
            "trapper",
            "trap 'echo got-usr1 >> sig.txt' USR1; echo ready > ready.txt; while true; do sleep 0.1; done",
        ],
    );
    assert_eq!(out, "Job <1> is submitted to default queue <debug>.\n");
    wait_file_contains(&c.path("ready.txt"), "ready");
    // reference 3.3: -s SIG "is being signaled".
    assert_eq!(
        c.run("bkill", &["-s", "USR1", "1"]),
        ("Job <1> is being signaled\n".into(), String::new(), 0)
    );
    wait_file_contains(&c.path("sig.txt"), "got-usr1");
    // reference 3.3: -J without 0 kills the last job of that name (OL getJobIds LAST_JOB).
    assert_eq!(
        c.run("bkill", &["-J", "trapper"]),
        ("Job <1> is being terminated\n".into(), String::new(), 0)
    );
    wait_stat(&c, 1, "EXIT");
    assert_eq!(field(&c, 1, "exit_code"), "130");
    // reference 3.3 lines (OL lsb_perror: on stderr); exit 255 (OL bkill.c exit(-1); the
    // reference leaves it open).
    assert_eq!(
        c.run("bkill", &["1"]),
        (
            String::new(),
            "Job <1>: Job has already finished\n".into(),
            255
        )
    );
    assert_eq!(
        c.run("bkill", &["42"]),
        (
            String::new(),
            "Job <42>: No matching job found\n".into(),
            255
        )
    );
    // A held job: signals need a started job (OL lsf/lsb/err.c), a kill removes it.
    assert_eq!(
        c.run("bsub", &["-H", "true"]).0,
        "Job <2> is submitted to default queue <debug>.\n"
    );
    assert_eq!(field(&c, 2, "stat"), "PSUSP");
    assert_eq!(
        c.run("bkill", &["-s", "USR1", "2"]),
        (
            String::new(),
            "Job <2>: Job has not started yet\n".into(),
            255
        )
    );
    assert_eq!(
        c.run("bkill", &["2", "42"]),
        (
            "Job <2> is being terminated\n".into(),
            "Job <42>: No matching job found\n".into(),
            255
        )
    );
    // OL bkill.c: no job named, a bad signal, a bad id.
    let (_, err, code) = c.run("bkill", &[]);
    assert_eq!(code, 255);
    assert!(
        err.starts_with(
            "Job ID or one of '-m', '-u' '-q' and '-J' must be specified.\nUsage: bkill"
        ),
        "{err}"
    );
    assert_eq!(
        c.run("bkill", &["-s", "BOGUS", "2"]),
        (String::new(), "BOGUS: Illegal signal value\n".into(), 255)
    );
    assert_eq!(
        c.run("bkill", &["x1"]),
        (String::new(), "x1: Illegal job ID.\n".into(), 255)
    );
    // `0`: every unfinished job of the caller; none left.
    assert_eq!(
        c.run("bkill", &["0"]),
        (String::new(), "No unfinished job found\n".into(), 255)
    );
}

#[test]
fn bjobs_tables_formats_and_errors() {
    let c = lsf();
    // reference 3.2: nothing to list, exit 0 (OL jobInfoErr text, on stderr).
    assert_eq!(
        c.run("bjobs", &[]),
        (String::new(), "No unfinished job found\n".into(), 0)
    );
    assert_eq!(c.run("bsub", &["-H", "-J", "held", "true"]).2, 0);
    assert_eq!(
        c.run("bsub", &["-J", "a-rather-long-name", "sleep 300"]).2,
        0
    );
    wait_stat(&c, 2, "RUN");
    // reference 3.2 default columns; OL displayJobs widths, `*` cut names; running jobs before
    // pending ones (choice).
    let (u, h) = (user(), host());
    let row = |id: &str, stat: &str, exec: &str, name: &str| {
        format!(
            "{} {} {} {} {} {} {} <T>\n",
            cell(id, 7),
            cell(&u, 7),
            cell(stat, 5),
            cell("debug", 10),
            cell(&h, 11),
            cell(exec, 11),
            cell(name, 10)
        )
    };
    let header =
        "JOBID   USER    STAT  QUEUE      FROM_HOST   EXEC_HOST   JOB_NAME   SUBMIT_TIME\n";
    let (out, err, code) = c.run("bjobs", &[]);
    assert_eq!(
        (mask_short_times(&out), err.as_str(), code),
        (
            format!(
                "{header}{}{}",
                row("2", "RUN", "node01", "*long-name"),
                row("1", "PSUSP", "", "held")
            ),
            "",
            0
        )
    );
    let (out, _, _) = c.run("bjobs", &["-noheader", "-w", "2"]);
    assert_eq!(
        mask_short_times(&out),
        format!("2       {u:<7} RUN   debug      {h:<11} node01      a-rather-long-name <T>\n")
    );
    // reference 3.2: an unknown id is 255 (LSB_BJOBS_CONSISTENT_EXIT_CODE=N), the known ones
    // still listed.
    assert_eq!(
        c.run("bjobs", &["42"]),
        (String::new(), "Job <42> is not found\n".into(), 255)
    );
    let (out, err, code) = c.run("bjobs", &["-o", "jobid stat", "2", "42"]);
    assert_eq!(
        (out.as_str(), err.as_str(), code),
        (
            "JOBID   STAT\n2       RUN\n",
            "Job <42> is not found\n",
            255
        )
    );
    // reference 3.2: -o with delimiter, -noheader; ids in the order given (choice).
    assert_eq!(
        c.run(
            "bjobs",
            &[
                "-noheader",
                "-o",
                "JOBID stat queue delimiter=','",
                "2",
                "1"
            ]
        )
        .0,
        "2,RUN,debug\n1,PSUSP,debug\n"
    );
    assert_eq!(
        c.run("bjobs", &["-o", "jobid:3 stat:-6 exit_code", "2"]).0,
        "JOBID   STAT EXIT_CODE\n2      RUN -\n"
    );
    // reference 8: -json's shape, string values; pretty-printed (choice).
    assert_eq!(
        c.run("bjobs", &["-json", "-o", "jobid stat exit_code", "2"])
            .0,
        "{\n  \"COMMAND\":\"bjobs\",\n  \"JOBS\":1,\n  \"RECORDS\":[\n    {\n      \"JOBID\":\"2\",\n      \"STAT\":\"RUN\",\n      \"EXIT_CODE\":\"-\"\n    }\n  ]\n}\n"
    );
    // reference 3.2: -json requires -o and excludes -noheader (choice of words).
    assert_eq!(c.run("bjobs", &["-json"]).2, 255);
    assert_eq!(c.run("bjobs", &["-json", "-noheader", "-o", "stat"]).2, 255);
    assert_eq!(
        c.run("bjobs", &["-o", "jobid bogus"]),
        (String::new(), "bogus: Illegal field name.\n".into(), 255)
    );
    // Filters: -p, -r, -q, -J, -u.
    assert_eq!(c.run("bjobs", &["-noheader", "-o", "jobid", "-p"]).0, "1\n");
    assert_eq!(c.run("bjobs", &["-noheader", "-o", "jobid", "-r"]).0, "2\n");
    assert_eq!(
        c.run("bjobs", &["-noheader", "-o", "jobid", "-J", "a-*"]).0,
        "2\n"
    );
    assert_eq!(
        c.run("bjobs", &["-q", "gitlab-ci"]),
        (
            String::new(),
            "No unfinished job found in queue <gitlab-ci>\n".into(),
            0
        )
    );
    assert_eq!(
        c.run("bjobs", &["-u", "nobody-at-all"]),
        (String::new(), "No unfinished job found\n".into(), 0)
    );
    // Finished jobs: by id or with -a / -d (reference 3.2, CLEAN_PERIOD).
    assert_eq!(c.run("bkill", &["0"]).2, 0);
    wait_stat(&c, 2, "EXIT");
    assert_eq!(
        c.run("bjobs", &[]),
        (String::new(), "No unfinished job found\n".into(), 0)
    );
    assert_eq!(
        c.run(
            "bjobs",
            &[
                "-a",
                "-noheader",
                "-o",
                "jobid stat exit_code delimiter=' '"
            ]
        )
        .0,
        "1 EXIT -\n2 EXIT 130\n"
    );
    assert_eq!(
        c.run("bjobs", &["-d", "-noheader", "-o", "jobid"]).0,
        "1\n2\n"
    );
}

#[test]
fn an_unanswered_status_query_is_reported_like_a_silent_mbatchd() {
    let c = lsf();
    assert_eq!(c.run("bsub", &["true"]).2, 0);
    c.inject(&["status-timeout", "on"]);
    // choice: OL lsf/lsb/comm.c retry line, then LSBE_CONN_TIMEOUT; exit 255.
    assert_eq!(
        c.run("bjobs", &["1"]),
        (
            String::new(),
            "batch system daemon not responding ... still trying\nTimeout on connect call to server\n"
                .into(),
            255
        )
    );
    // Submissions are no status queries.
    assert_eq!(
        c.run("bsub", &["true"]).0,
        "Job <2> is submitted to default queue <debug>.\n"
    );
    c.inject(&["status-timeout", "off"]);
    wait_stat(&c, 2, "DONE");
}

/// `bhosts`, which `batchci check` asks whether mbatchd answers (IBM bhosts reference; OL
/// `lsbatch/cmd/bhosts.c` `prtHostsShort`, `cmd.prt.c`): the header (each title followed by
/// a space), one line per host sorted by name, a host whose slots are all taken `closed`
/// (`closed_Full` with `-w`), JL/U `-`, MAX its CPUs; an unknown host, or a mbatchd that does
/// not answer, exit 255.
#[test]
fn bhosts_lists_the_hosts_their_slots_and_whether_they_are_full() {
    let c = lsf();
    let header =
        "HOST_NAME          STATUS       JL/U    MAX  NJOBS    RUN  SSUSP  USUSP    RSV \n";
    let idle = "node01             ok              -      2      0      0      0      0      0\n\
                node02             ok              -      2      0      0      0      0      0\n";
    assert_eq!(
        c.run("bhosts", &[]),
        (format!("{header}{idle}"), String::new(), 0)
    );
    let (out, _, code) = c.run("bsub", &["-n", "2", "-q", "gitlab-ci", "sleep 300"]);
    assert_eq!(
        (out.as_str(), code),
        ("Job <1> is submitted to queue <gitlab-ci>.\n", 0)
    );
    wait_stat(&c, 1, "RUN");
    assert_eq!(
        c.run("bhosts", &[]),
        (
            format!(
                "{header}node01             closed          -      2      2      2      0      0      0\n\
                 node02             ok              -      2      0      0      0      0      0\n"
            ),
            String::new(),
            0
        )
    );
    assert_eq!(
        c.run("bhosts", &["-w", "node01"]).0,
        "HOST_NAME          STATUS          JL/U    MAX  NJOBS    RUN  SSUSP  USUSP    RSV \n\
         node01             closed_Full        -      2      2      2      0      0      0\n"
    );
    assert_eq!(
        c.run("bhosts", &["node09"]),
        (
            String::new(),
            "node09: Bad host name, host group name or cluster name\n".into(),
            255
        )
    );
    c.inject(&["status-timeout", "on"]);
    assert_eq!(
        c.run("bhosts", &[]),
        (
            String::new(),
            "batch system daemon not responding ... still trying\nTimeout on connect call to server\n"
                .into(),
            255
        )
    );
}
