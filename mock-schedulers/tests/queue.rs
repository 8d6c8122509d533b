//! squeue and the queue: formats, filters, pending reasons, backfill, and the default state
//! filter. Snapshots hold the exact layouts.

mod common;

use common::{TestCluster, normalize_times, wait_file_contains};

/// Fills the one-node cluster (the job takes all memory, as jobs without --mem do) and
/// returns its id once it runs.
fn fill_node(c: &TestCluster) -> u32 {
    let id = c.submit(&["-J", "filler", "--wrap", "sleep 300"]);
    c.wait_state(id, "RUNNING");
    id
}

#[test]
fn default_listing_shows_pending_before_running_with_reasons() {
    let c = TestCluster::fast();
    let filler = fill_node(&c);
    let a = c.submit(&["-J", "second", "--wrap", "true"]);
    let b = c.submit(&["-J", "third", "--wrap", "true"]);
    common::wait_for("reasons", || {
        c.job_field(b, "%r") == "Priority" && c.job_field(a, "%r") == "Resources"
    });
    let (out, err, code) = c.run("squeue", &[]);
    assert_eq!((err.as_str(), code), ("", 0));
    let user = mock_cluster::cli::slurm::identity().0;
    let out = out.replace(&format!(" {:>8} ", user), " <USER>   ");
    // The TIME column (characters 50..60) depends on how long the filler has run.
    let out: String = out
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                format!("{l}\n")
            } else {
                format!("{}{:>10}{}\n", &l[..50], "<T>", &l[60..])
            }
        })
        .collect();
    insta::assert_snapshot!("squeue_default", out);
    c.run("scancel", &[&filler.to_string()]);
}

#[test]
fn formats_long_and_start() {
    let c = TestCluster::fast();
    fill_node(&c);
    let waiting = c.submit(&["-J", "waiting", "-t", "5", "--wrap", "true"]);
    // Reason `None` until the scheduling pass after the submission has tried the job.
    common::wait_for("the job's first pass", || {
        c.job_field(waiting, "%r") == "Resources"
    });
    let (out, _, _) = c.run("squeue", &["-h", "-o", "%i|%j|%T|%t|%l|%D|%C|%P|%R|%m"]);
    insta::assert_snapshot!("squeue_custom_format", out);
    let (out, _, _) = c.run("squeue", &["-O", "jobid:6,state:.9,name:5,reason"]);
    insta::assert_snapshot!("squeue_long_format_option", out);
    let (out, _, _) = c.run("squeue", &["--start", "-h", "-o", "%i %T %S"]);
    assert_eq!(out, "2 PENDING N/A\n");
    let (out, _, _) = c.run("squeue", &["-l"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[1],
        "             JOBID PARTITION     NAME     USER    STATE       TIME TIME_LIMI  NODES NODELIST(REASON)"
    );
}

#[test]
fn filters_by_id_name_user_state_and_me() {
    let c = TestCluster::fast();
    fill_node(&c);
    let a = c.submit(&["-J", "alpha", "--wrap", "true"]);
    c.submit(&["-J", "beta", "--wrap", "true"]);
    let me = mock_cluster::cli::slurm::identity().0;
    assert_eq!(
        c.run("squeue", &["-h", "-o", "%j", &format!("-j{a}")]).0,
        "alpha\n"
    );
    assert_eq!(
        c.run("squeue", &["-h", "-o", "%j", "-j", &a.to_string()]).0,
        "alpha\n"
    );
    assert_eq!(
        c.run("squeue", &["-h", "-o", "%j", "-n", "beta"]).0,
        "beta\n"
    );
    assert_eq!(
        c.run("squeue", &["-h", "-o", "%j", "-t", "R"]).0,
        "filler\n"
    );
    assert_eq!(
        c.run("squeue", &["-h", "-o", "%j", "-t", "PD", "--me"]).0,
        "alpha\nbeta\n"
    );
    assert_eq!(
        c.run("squeue", &["-h", "-o", "%j", "-u", &me, "-t", "running"])
            .0,
        "filler\n"
    );
    assert_eq!(
        c.run("squeue", &["-h", "-o", "%j", "-u", "nobody-here"]).0,
        ""
    );
}

#[test]
fn finished_jobs_are_hidden_unless_asked_for_and_unknown_ids_fail() {
    let c = TestCluster::fast();
    let (out, _, code) = c.run("sbatch", &["--wait", "--wrap", "exit 3"]);
    assert_eq!((out.as_str(), code), ("Submitted batch job 1\n", 3));
    assert_eq!(
        c.run("squeue", &["-h", "-j", "1"]),
        (String::new(), String::new(), 0)
    );
    assert_eq!(
        c.run("squeue", &["-j", "1"]).0,
        "             JOBID PARTITION     NAME     USER ST       TIME  NODES NODELIST(REASON)\n"
    );
    assert_eq!(
        c.run("squeue", &["-h", "-t", "all", "-j", "1", "-o", "%i %T %r"])
            .0,
        "1 FAILED NonZeroExitCode\n"
    );
    assert_eq!(
        c.run("squeue", &["-j", "999999"]),
        (
            String::new(),
            "slurm_load_jobs error: Invalid job id specified\n".into(),
            1
        )
    );
    assert_eq!(
        c.run("squeue", &["-j", "abc"]),
        (
            String::new(),
            "squeue: error: Invalid job id: abc\n".into(),
            1
        )
    );
    let (_, err, code) = c.run("squeue", &["-t", "bogus"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("squeue: error: Invalid job state specified: bogus\n"),
        "{err}"
    );
    assert_eq!(
        c.run("squeue", &["--bogus"]),
        (
            String::new(),
            "squeue: unrecognized option '--bogus'\nTry \"squeue --help\" for more information\n"
                .into(),
            1
        )
    );
}

#[test]
fn pending_reasons_follow_slurm() {
    let c = TestCluster::with_config(&format!(
        "{}\n[[qos]]\nname = \"one\"\nmax_jobs_per_user = 1\n[[qos]]\nname = \"small\"\nmax_cpus_per_job = 1\n",
        common::FAST_CLUSTER
    ));
    let cpus = c.submit(&["-c", "3", "--wrap", "true"]);
    // Within the node but over its QOS's MaxTRESPerJob cpu.
    let qos_cpus = c.submit(&["-q", "small", "-c", "2", "--wrap", "true"]);
    let time = c.submit(&["-p", "gitlab-ci", "-t", "120", "--wrap", "true"]);
    let nodes = c.submit(&["-N", "2", "--wrap", "true"]);
    let held = c.submit(&["-H", "--wrap", "true"]);
    let (_, err, code) = c.run("sbatch", &["--begin=tomorrow-ish", "--wrap", "true"]);
    assert_eq!(
        (err.as_str(), code),
        (
            "sbatch: error: Invalid time specification tomorrow-ish\n",
            1
        )
    );
    let q1 = c.submit(&["-q", "one", "--mem", "10", "--wrap", "sleep 300"]);
    c.wait_state(q1, "RUNNING");
    let q2 = c.submit(&["-q", "one", "--mem", "10", "--wrap", "true"]);
    common::wait_for("QOS reason", || {
        c.job_field(q2, "%r") == "QOSMaxJobsPerUserLimit"
    });
    assert_eq!(c.job_field(cpus, "%T %r"), "PENDING PartitionConfig");
    assert_eq!(c.job_field(time, "%T %r"), "PENDING PartitionTimeLimit");
    assert_eq!(c.job_field(nodes, "%T %r"), "PENDING PartitionNodeLimit");
    assert_eq!(c.job_field(held, "%T %r"), "PENDING JobHeldUser");
    assert_eq!(
        c.job_field(qos_cpus, "%T %r"),
        "PENDING QOSMaxCpuPerJobLimit"
    );
    let later = c.submit(&["--begin=now+60", "--mem", "10", "--wrap", "true"]);
    common::wait_for("begin reason", || c.job_field(later, "%r") == "BeginTime");
    // One simulated minute is one real second here.
    c.wait_state(later, "COMPLETED");
    let (_, err, code) = c.run("sbatch", &["-q", "nope", "--wrap", "true"]);
    assert_eq!(
        (err.as_str(), code),
        (
            "sbatch: error: Batch job submission failed: Invalid qos specification\n",
            1
        )
    );
    c.run("scancel", &["-u", &mock_cluster::cli::slurm::identity().0]);
}

#[test]
fn backfill_starts_a_small_job_past_a_blocked_big_one() {
    let c = TestCluster::fast();
    let running = c.submit(&["-c", "1", "--mem", "1000", "--wrap", "sleep 300"]);
    c.wait_state(running, "RUNNING");
    let big = c.submit(&["-c", "2", "--mem", "1000", "--wrap", "true"]);
    let small = c.submit(&[
        "-c",
        "1",
        "--mem",
        "1000",
        "-o",
        "small.out",
        "--wrap",
        "echo backfilled",
    ]);
    wait_file_contains(&c.path("small.out"), "backfilled");
    c.wait_state(small, "COMPLETED");
    assert_eq!(c.job_field(big, "%T %r"), "PENDING Resources");
    c.run("scancel", &[&running.to_string()]);
    c.wait_state(big, "COMPLETED");
}

#[test]
fn times_are_slurm_timestamps() {
    let c = TestCluster::fast();
    let id = c.submit(&["--wrap", "true"]);
    c.wait_state(id, "COMPLETED");
    let (out, _, _) = c.run("squeue", &["-h", "-t", "all", "-o", "%V|%S|%e"]);
    assert_eq!(normalize_times(&out), "<TIME>|<TIME>|<TIME>\n");
}

#[test]
fn sort_option_orders_rows() {
    let c = TestCluster::fast();
    let a = c.submit(&["-H", "-J", "b-job", "--wrap", "true"]);
    let b = c.submit(&["-H", "-J", "a-job", "--wrap", "true"]);
    assert_eq!(
        c.run("squeue", &["-h", "-o", "%i", "-S", "i"]).0,
        format!("{a}\n{b}\n")
    );
    assert_eq!(
        c.run("squeue", &["-h", "-o", "%i", "-S", "-i"]).0,
        format!("{b}\n{a}\n")
    );
    assert_eq!(
        c.run("squeue", &["-h", "-o", "%j", "-S", "j"]).0,
        "a-job\nb-job\n"
    );
}

/// A job's start as squeue prints it, in seconds since the epoch (a pending job's is its
/// begin time).
fn start_of(c: &TestCluster, id: u32) -> i64 {
    let out = c
        .cmd("squeue")
        .env("SLURM_TIME_FORMAT", "%s")
        .args(["-h", "-t", "all", "-j", &id.to_string(), "-o", "%S"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    text.parse()
        .unwrap_or_else(|_| panic!("squeue %S of job {id}: {text:?}"))
}

/// Stock Slurm starts a job whose begin time comes between scheduling events at the next
/// periodic pass (backfill every `bf_interval` = 30 s by default, slurm.conf(5)), not at the
/// begin time: `sched_interval` (default 30) models it. A begin time already come at the
/// job's first pass (`--begin=now`) needs no periodic pass, nor does one an update makes due
/// (`scontrol update StartTime=now` is a scheduling event).
#[test]
fn a_begin_time_between_scheduling_events_waits_for_the_next_periodic_pass() {
    // 60 simulated seconds a real one: a pass every half second.
    let c = TestCluster::fast();
    let later = c.submit(&["--begin=now+10", "--mem", "10", "--wrap", "true"]);
    let begin = start_of(&c, later);
    common::wait_for("begin reason", || c.job_field(later, "%r") == "BeginTime");
    c.wait_state(later, "COMPLETED");
    let started = start_of(&c, later);
    let pass = (begin + 29) / 30 * 30;
    assert_eq!(
        started, pass,
        "begin {begin}: the job started at {started}, not at the pass {pass}"
    );

    let now = c.submit(&["--begin=now", "--mem", "10", "--wrap", "true"]);
    let submitted = start_of(&c, now);
    c.wait_state(now, "COMPLETED");
    let started = start_of(&c, now);
    assert!(
        (submitted..submitted + 2).contains(&started),
        "--begin=now: submitted {submitted}, started {started}"
    );

    let moved = c.submit(&["--begin=now+1hour", "--mem", "10", "--wrap", "true"]);
    common::wait_for("begin reason", || c.job_field(moved, "%r") == "BeginTime");
    assert_eq!(
        c.run(
            "scontrol",
            &["update", &format!("jobid={moved}"), "StartTime=now"]
        )
        .2,
        0
    );
    let updated = start_of(&c, moved);
    c.wait_state(moved, "COMPLETED");
    let started = start_of(&c, moved);
    assert!(
        (updated..updated + 2).contains(&started),
        "StartTime=now at {updated}, started {started}"
    );
}
