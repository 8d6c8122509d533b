//! sbatch: submission, options, #SBATCH directives, output files, environment, --wait exit codes.
//! Expected texts are those observed on Slurm 22.05 (docs/slurm-observed.md).

mod common;

use std::time::Instant;

use common::{TestCluster, wait_file_contains};

#[test]
fn submit_prints_the_job_id_and_the_job_runs_in_the_submit_dir() {
    let c = TestCluster::fast();
    let (out, err, code) = c.run("sbatch", &["--wrap", "pwd; echo hello"]);
    assert_eq!(
        (out.as_str(), err.as_str(), code),
        ("Submitted batch job 1\n", "", 0)
    );
    let text = wait_file_contains(&c.path("slurm-1.out"), "hello");
    assert_eq!(text, format!("{}\nhello\n", c.work.display()));
}

#[test]
fn parsable_and_quiet_change_only_stdout() {
    let c = TestCluster::fast();
    assert_eq!(
        c.run("sbatch", &["--parsable", "--wrap", "true"]),
        ("1\n".into(), String::new(), 0)
    );
    assert_eq!(
        c.run("sbatch", &["-Q", "--wrap", "true"]),
        (String::new(), String::new(), 0)
    );
}

/// Observed on Slurm 22.05 (docs/slurm-observed.md 50): the answer on stderr, a job id used
/// up each time (but not for an unknown partition), nothing queued.
#[test]
fn test_only_answers_on_stderr_and_uses_up_an_id() {
    let c = TestCluster::fast();
    let (out, err, code) = c.run("sbatch", &["--test-only", "--parsable", "--wrap", "true"]);
    assert_eq!((out.as_str(), code), ("", 0));
    let err = common::normalize_times(&err);
    assert_eq!(
        err,
        "sbatch: Job 1 to start at <TIME> using 1 processors on nodes localhost in partition debug\n"
    );
    assert_eq!(
        c.run("sbatch", &["--test-only", "-c", "4", "--wrap", "true"]),
        (
            String::new(),
            "allocation failure: Requested node configuration is not available\n".into(),
            1
        )
    );
    assert_eq!(
        c.run("sbatch", &["--test-only", "-p", "nope", "--wrap", "true"]),
        (
            String::new(),
            "sbatch: error: invalid partition specified: nope\nallocation failure: Invalid partition name specified\n"
                .into(),
            1
        )
    );
    assert_eq!(
        c.run("sbatch", &["--test-only", "-Q", "--wrap", "true"]),
        (String::new(), String::new(), 0)
    );
    assert_eq!(
        c.run("sbatch", &["--parsable", "-H", "--wrap", "true"]),
        ("4\n".into(), String::new(), 0)
    );
    assert_eq!(
        c.run("squeue", &["-h", "-t", "all", "-o", "%i"]),
        ("4\n".into(), String::new(), 0)
    );
}

#[test]
fn wait_passes_exit_codes_through_like_slurm() {
    let c = TestCluster::fast();
    for (script, expected, state) in [
        ("exit 0", 0, "COMPLETED"),
        ("exit 3", 3, "FAILED"),
        ("exit 300", 44, "FAILED"),
        ("exit 256", 0, "COMPLETED"),
        ("kill -TERM $$", 1, "FAILED"),
        ("kill -KILL $$", 1, "FAILED"),
    ] {
        let (out, _, code) = c.run("sbatch", &["--wait", "--wrap", script]);
        assert_eq!(code, expected, "{script}");
        let id: u32 = out.trim().rsplit(' ').next().unwrap().parse().unwrap();
        assert_eq!(c.state_of(id), state, "{script}");
    }
    // A signal is recorded as ExitCode=0:<sig> with reason JobLaunchFailure.
    let (out, _, _) = c.run("scontrol", &["show", "job", "5"]);
    assert!(
        out.contains("JobState=FAILED Reason=JobLaunchFailure"),
        "{out}"
    );
    assert!(out.contains("ExitCode=0:15"), "{out}");
}

#[test]
fn wait_returns_when_slurms_polling_would_see_the_end() {
    // Real sbatch --wait looks at its job 2, 10, 42, ... s after submitting it (22.05
    // src/sbatch/sbatch.c _job_wait(), MinJobAge=300); ten simulated seconds per real one make
    // those 0.2, 1.0 and 4.2 real seconds. `sleep 0.3` (3 simulated seconds) is seen at 10.
    let c = TestCluster::with_config(
        &common::FAST_CLUSTER.replace("time_scale = 60.0", "time_scale = 10.0"),
    );
    for (script, from, to) in [("true", 0.2, 1.0), ("sleep 0.3", 1.0, 4.2)] {
        let started = Instant::now();
        let (out, _, code) = c.run("sbatch", &["--wait", "--wrap", script]);
        let secs = started.elapsed().as_secs_f64();
        assert_eq!((out.starts_with("Submitted batch job "), code), (true, 0));
        assert!(
            (from..to).contains(&secs),
            "`{script}` returned after {secs:.2} s, not in [{from}, {to})"
        );
    }
}

#[test]
fn a_waiting_sbatch_killed_with_sigterm_dies_of_it_and_is_still_recorded() {
    // Real sbatch installs no signal handler while it waits (22.05 src/sbatch/sbatch.c
    // _job_wait() only sleeps and polls): SIGTERM kills it, and the job goes on running.
    use std::io::BufRead;
    use std::os::unix::process::ExitStatusExt;
    let c = TestCluster::fast();
    let mut waiter = c.spawn("sbatch", &["--wait", "--parsable", "--wrap", "sleep 300"]);
    let mut line = String::new();
    std::io::BufReader::new(waiter.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let id = line.trim().to_string();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(waiter.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = waiter.wait().unwrap();
    assert_eq!((status.code(), status.signal()), (None, Some(15)));
    let (state, _, _) = c.run("squeue", &["-h", "-j", &id, "-o", "%T"]);
    assert!(
        matches!(state.as_str(), "PENDING\n" | "RUNNING\n"),
        "{state}"
    );
    let out = c.admin(&["calls", "--json"]);
    let calls: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sbatch = calls
        .as_array()
        .unwrap()
        .iter()
        .find(|call| call["program"] == "sbatch")
        .cloned();
    assert_eq!(
        sbatch.map(|call| (call["exit_code"].clone(), call["job_id"].clone())),
        Some((
            serde_json::json!(143),
            serde_json::json!(id.parse::<u64>().unwrap())
        ))
    );
    c.run("scancel", &[&id]);
}

#[test]
fn unknown_options_and_bad_values_give_slurms_messages() {
    let c = TestCluster::fast();
    assert_eq!(
        c.run("sbatch", &["--bogus", "--wrap", "true"]),
        (
            String::new(),
            "sbatch: unrecognized option '--bogus'\nTry \"sbatch --help\" for more information\n"
                .into(),
            255
        )
    );
    assert_eq!(
        c.run("sbatch", &["-Z"]),
        (
            String::new(),
            "sbatch: invalid option -- 'Z'\nTry \"sbatch --help\" for more information\n".into(),
            255
        )
    );
    assert_eq!(
        c.run("sbatch", &["--job-name"]),
        (String::new(), "sbatch: option '--job-name' requires an argument\nTry \"sbatch --help\" for more information\n".into(), 255)
    );
    assert_eq!(
        c.run("sbatch", &["-t", "abc", "--wrap", "true"]),
        (
            String::new(),
            "sbatch: error: Invalid --time specification\n".into(),
            255
        )
    );
    assert_eq!(
        c.run("sbatch", &["--mem", "abc", "--wrap", "true"]),
        (
            String::new(),
            "sbatch: error: Invalid --mem specification\n".into(),
            255
        )
    );
    assert_eq!(
        c.run("sbatch", &["-c", "x", "--wrap", "true"]),
        (
            String::new(),
            "sbatch: error: Invalid numeric value \"x\" for --cpus-per-task.\n".into(),
            1
        )
    );
}

#[test]
fn refused_submissions_name_the_reason() {
    let c = TestCluster::fast();
    assert_eq!(
        c.run("sbatch", &["-p", "nope", "--wrap", "true"]),
        (
            String::new(),
            "sbatch: error: invalid partition specified: nope\nsbatch: error: Batch job submission failed: Invalid partition name specified\n".into(),
            1
        )
    );
    assert_eq!(
        c.run("sbatch", &["--mem", "100000", "--wrap", "true"]),
        (
            String::new(),
            "sbatch: error: Memory specification can not be satisfied\nsbatch: error: Batch job submission failed: Requested node configuration is not available\n".into(),
            1
        )
    );
    // The refused job keeps a FAILED record, as slurmctld does.
    assert_eq!(c.job_field(1, "%T %r"), "FAILED BadConstraints");
    assert_eq!(
        c.run("sbatch", &["nonexistent.sh"]),
        (
            String::new(),
            "sbatch: error: Unable to open file nonexistent.sh\n".into(),
            1
        )
    );
}

#[test]
fn a_script_without_shebang_is_refused() {
    let c = TestCluster::fast();
    let out = c.cmd("sbatch").write_stdin("echo hi\n").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "sbatch: error: This does not look like a batch script.  The first\nsbatch: error: line must start with #! followed by the path to an interpreter.\nsbatch: error: For instance: #!/bin/sh\n"
    );
}

#[test]
fn sbatch_directives_apply_and_the_command_line_wins() {
    let c = TestCluster::fast();
    std::fs::write(
        c.path("job.sh"),
        "#!/bin/bash\n#SBATCH --job-name=from-directive\n#SBATCH -o out-%x.txt\n#SBATCH --partition gitlab-ci\n#SBATCH --time=2\n#SBATCH -c 2\necho \"name=$SLURM_JOB_NAME part=$SLURM_JOB_PARTITION cpus=$SLURM_CPUS_PER_TASK args=$*\"\n",
    )
    .unwrap();
    let (_, _, code) = c.run("sbatch", &["--wait", "job.sh", "a1", "b 2"]);
    assert_eq!(code, 0);
    let text = std::fs::read_to_string(c.path("out-from-directive.txt")).unwrap();
    assert_eq!(
        text,
        "name=from-directive part=gitlab-ci cpus=2 args=a1 b 2\n"
    );
    let (out, _, _) = c.run("scontrol", &["show", "job", "1"]);
    assert!(out.contains("TimeLimit=00:02:00"), "{out}");
    let (_, _, code) = c.run("sbatch", &["--wait", "-J", "cli-wins", "job.sh"]);
    assert_eq!(code, 0);
    assert!(c.path("out-cli-wins.txt").exists());
    // A bad directive is an unknown option.
    std::fs::write(c.path("bad.sh"), "#!/bin/sh\n#SBATCH --bogus\necho hi\n").unwrap();
    assert_eq!(
        c.run("sbatch", &["bad.sh"]),
        (
            String::new(),
            "sbatch: unrecognized option '--bogus'\nTry \"sbatch --help\" for more information\n"
                .into(),
            255
        )
    );
}

#[test]
fn output_file_patterns_expand_like_slurmstepd() {
    let c = TestCluster::fast();
    let host = mock_cluster::cli::slurm::short_hostname();
    let (_, _, code) = c.run(
        "sbatch",
        &[
            "--wait",
            "-J",
            "pat",
            "-o",
            "pat-%j-%x-%u-%N-%%-%4j-%A-%a.out",
            "--wrap",
            "echo x",
        ],
    );
    assert_eq!(code, 0);
    let user = mock_cluster::cli::slurm::identity().0;
    assert!(
        c.path(&format!("pat-1-pat-{user}-{host}-%-0001-1-4294967294.out"))
            .exists()
    );
    let (_, _, code) = c.run(
        "sbatch",
        &["--wait", "-o", "esc-\\%j.out", "--wrap", "echo x"],
    );
    assert_eq!(code, 0);
    assert!(c.path("esc-%j.out").exists());
}

#[test]
fn stderr_goes_to_the_output_file_unless_e_is_given() {
    let c = TestCluster::fast();
    c.run(
        "sbatch",
        &["--wait", "--wrap", "echo out-line; echo err-line >&2"],
    );
    assert_eq!(
        std::fs::read_to_string(c.path("slurm-1.out")).unwrap(),
        "out-line\nerr-line\n"
    );
    c.run(
        "sbatch",
        &[
            "--wait",
            "-o",
            "o-%j.out",
            "-e",
            "e-%j.err",
            "--wrap",
            "echo out-line; echo err-line >&2",
        ],
    );
    assert_eq!(
        std::fs::read_to_string(c.path("o-2.out")).unwrap(),
        "out-line\n"
    );
    assert_eq!(
        std::fs::read_to_string(c.path("e-2.err")).unwrap(),
        "err-line\n"
    );
}

#[test]
fn an_unwritable_output_file_fails_the_job_with_0_53() {
    let c = TestCluster::fast();
    let (_, _, code) = c.run(
        "sbatch",
        &["--wait", "-o", "/nonexistent/dir/x.out", "--wrap", "true"],
    );
    assert_eq!(code, 1);
    let (out, _, _) = c.run("scontrol", &["show", "job", "1"]);
    assert!(
        out.contains("JobState=FAILED Reason=JobLaunchFailure"),
        "{out}"
    );
    assert!(out.contains("ExitCode=0:53"), "{out}");
}

#[test]
fn the_job_gets_slurms_batch_environment() {
    let c = TestCluster::fast();
    let (_, _, code) = c.run(
        "sbatch",
        &[
            "--wait",
            "-J",
            "envjob",
            "-c",
            "2",
            "--mem",
            "100",
            "-n",
            "1",
            "--wrap",
            "env | grep -E '^SLURM|^ENVIRONMENT' | sort",
        ],
    );
    assert_eq!(code, 0);
    let text = std::fs::read_to_string(c.path("slurm-1.out")).unwrap();
    let host = mock_cluster::cli::slurm::short_hostname();
    for line in [
        "SLURM_JOB_ID=1",
        "SLURM_JOBID=1",
        "SLURM_JOB_NAME=envjob",
        "SLURM_JOB_PARTITION=debug",
        "SLURM_JOB_NODELIST=localhost",
        "SLURM_NODELIST=localhost",
        "SLURM_JOB_NUM_NODES=1",
        "SLURM_NNODES=1",
        "SLURM_CPUS_ON_NODE=2",
        "SLURM_JOB_CPUS_PER_NODE=2",
        "SLURM_CPUS_PER_TASK=2",
        "SLURM_MEM_PER_NODE=100",
        "SLURM_NTASKS=1",
        "SLURMD_NODENAME=localhost",
        "SLURM_CLUSTER_NAME=batchci",
        "ENVIRONMENT=BATCH",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line} in:\n{text}"
        );
    }
    assert!(
        text.lines()
            .any(|l| l == format!("SLURM_SUBMIT_DIR={}", c.work.display())),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l == format!("SLURM_SUBMIT_HOST={host}")),
        "{text}"
    );
}

#[test]
fn a_script_from_stdin_is_named_sbatch_without_slurm_job_name() {
    let c = TestCluster::fast();
    let out = c
        .cmd("sbatch")
        .arg("--wait")
        .write_stdin("#!/bin/sh\necho \"name=${SLURM_JOB_NAME-unset}\"\n")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        std::fs::read_to_string(c.path("slurm-1.out")).unwrap(),
        "name=unset\n"
    );
    assert_eq!(c.job_field(1, "%j"), "sbatch");
}

#[test]
fn export_and_chdir_shape_the_job() {
    let c = TestCluster::fast();
    std::fs::create_dir_all(c.path("wd")).unwrap();
    let out = c
        .cmd("sbatch")
        .env("KEEP_ME", "yes")
        .env("DROP_ME", "no")
        .args([
            "--wait",
            "-D",
            "wd",
            "-o",
            "rel.out",
            "--export=KEEP_ME,EXTRA=1",
            "--wrap",
            "pwd; echo ${KEEP_ME-} ${DROP_ME-gone} ${EXTRA-}; echo $SLURM_SUBMIT_DIR",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = std::fs::read_to_string(c.path("wd/rel.out")).unwrap();
    assert_eq!(
        text,
        format!(
            "{}/wd\nyes gone 1\n{}\n",
            c.work.display(),
            c.work.display()
        )
    );
}

#[test]
fn a_missing_working_directory_sends_the_job_to_tmp() {
    // Observed on Slurm 22.05: slurmstepd says so twice (before it starts the task, and the
    // task), the job runs in /tmp and ends well.
    let c = TestCluster::fast();
    let out = c.path("missing.out");
    let (_, _, code) = c.run(
        "sbatch",
        &[
            "--wait",
            "-D",
            "/nonexistent-mock-cluster",
            "-o",
            out.to_str().unwrap(),
            "--wrap",
            "pwd",
        ],
    );
    assert_eq!(code, 0);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "slurmstepd-localhost: error: couldn't chdir to `/nonexistent-mock-cluster': No such file or directory: going to /tmp instead\n"
            .repeat(2)
            + "/tmp\n"
    );
}

#[test]
fn cpu_affinity_is_the_allocated_cores() {
    let c = TestCluster::fast();
    let (_, _, code) = c.run(
        "sbatch",
        &[
            "--wait",
            "-c",
            "1",
            "--mem",
            "10",
            "--wrap",
            "grep Cpus_allowed_list /proc/self/status",
        ],
    );
    assert_eq!(code, 0);
    let text = std::fs::read_to_string(c.path("slurm-1.out")).unwrap();
    let allowed = text.trim().rsplit('\t').next().unwrap().to_string();
    let real = mock_cluster::daemon::launch::available_cpus();
    assert_eq!(
        allowed,
        real[0].to_string(),
        "one allocated core maps to one real core"
    );
}

#[test]
fn slurm_task_pid_is_the_scripts_own_pid() {
    let c = TestCluster::fast();
    let (_, _, code) = c.run("sbatch", &["--wait", "--wrap", "echo $$ $SLURM_TASK_PID"]);
    assert_eq!(code, 0);
    let text = std::fs::read_to_string(c.path("slurm-1.out")).unwrap();
    let pids: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(pids.len(), 2, "{text}");
    assert_eq!(pids[0], pids[1]);
}

#[test]
fn memory_per_cpu_account_and_tasks_reach_the_job() {
    let c = TestCluster::fast();
    let (_, _, code) = c.run(
        "sbatch",
        &[
            "--wait",
            "-A",
            "proj1",
            "-c",
            "2",
            "--mem-per-cpu",
            "1G",
            "-N",
            "1",
            "--wrap",
            "echo $SLURM_JOB_ACCOUNT $SLURM_MEM_PER_CPU $SLURM_CPUS_ON_NODE",
        ],
    );
    assert_eq!(code, 0);
    assert_eq!(
        std::fs::read_to_string(c.path("slurm-1.out")).unwrap(),
        "proj1 1024 2\n"
    );
    let (show, _, _) = c.run("scontrol", &["show", "job", "1"]);
    assert!(show.contains("Account=proj1 "), "{show}");
    assert!(
        show.contains("TRES=cpu=2,mem=2048M,node=1,billing=2"),
        "{show}"
    );
}

#[test]
fn first_job_id_sets_where_ids_start() {
    let c = TestCluster::with_config(&format!("first_job_id = 1234\n{}", common::FAST_CLUSTER));
    assert_eq!(
        c.run(
            "sbatch",
            &["--parsable", "-o", "%4j-%3j.out", "--wrap", "true"]
        )
        .0,
        "1234\n"
    );
    c.wait_state(1234, "COMPLETED");
    assert!(c.path("1234-1234.out").exists());
}

// ---------------------------------------------------------------------------------------------
// Slurm 22.05's whole option table (mock-schedulers/src/cli/slurm/options.rs). Every text below
// was observed on the reference cluster (docs/slurm-observed.md, "Options").

/// The `scontrol show job` fields of job `id` named in `keys`, as `Key=value` words.
fn fields(c: &TestCluster, id: u32, keys: &[&str]) -> String {
    let (out, _, _) = c.run("scontrol", &["-o", "show", "job", &id.to_string()]);
    keys.iter()
        .map(|k| {
            out.split_whitespace()
                .find(|w| w.starts_with(&format!("{k}=")))
                .unwrap_or("(missing)")
                .to_string()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn options_real_sbatch_takes_are_taken_and_what_slurm_shows_of_them_is_shown() {
    let c = TestCluster::fast();
    // submitit puts --wckey in every job; none of these has an effect on a one-node cluster
    // without wckey tracking, topology or power management (observed: all accepted).
    let (out, err, code) = c.run(
        "sbatch",
        &[
            "-H",
            "--wckey=mykey",
            "--spread-job",
            "--kill-on-invalid-dep=yes",
            "--switches=1@10",
            "--distribution=block:cyclic",
            "--acctg-freq=30",
            "--cpu-freq=high",
            "--mail-type=END,FAIL",
            "--gres=none",
            "--licenses=",
            "--use-min-nodes",
            "-k",
            "--wrap",
            "true",
        ],
    );
    assert_eq!(
        (out.as_str(), err.as_str(), code),
        ("Submitted batch job 1\n", "", 0)
    );
    // Observed: each of these shows in its scontrol field.
    let id = c.submit(&[
        "-H",
        "--nice=10",
        "--exclude=localhost",
        "--time-min=10",
        "--mincpus=2",
        "--delay-boot=5",
        "--contiguous",
        "--tmp=100",
        "--threads-per-core=1",
        "--ntasks-per-core=1",
        "--network=x",
        "--no-requeue",
        "--oversubscribe",
        "--wrap",
        "true",
    ]);
    assert_eq!(
        fields(
            &c,
            id,
            &[
                "Nice",
                "Requeue",
                "TimeMin",
                "ExcNodeList",
                "ReqB:S:C:T",
                "NtasksPerN:B:S:C",
                "MinCPUsNode",
                "MinTmpDiskNode",
                "DelayBoot",
                "OverSubscribe",
                "Contiguous",
                "Network"
            ]
        ),
        "Nice=10 Requeue=0 TimeMin=00:10:00 ExcNodeList=localhost ReqB:S:C:T=0:0:*:1 \
         NtasksPerN:B:S:C=0:0:*:1 MinCPUsNode=2 MinTmpDiskNode=100M DelayBoot=00:05:00 \
         OverSubscribe=YES Contiguous=1 Network=x"
    );
    // Observed: `--nice` alone is 100; a deadline brings TimeMin=00:01:00.
    let id = c.submit(&["-H", "--nice", "--deadline=now+1hour", "--wrap", "true"]);
    assert_eq!(
        fields(&c, id, &["Nice", "TimeMin"]),
        "Nice=100 TimeMin=00:01:00"
    );
    let (out, _, _) = c.run("scontrol", &["show", "job", &id.to_string()]);
    assert!(!out.contains("Deadline=N/A"), "{out}");
    // Observed: AllowSpecResourcesUsage is off, so -S is ignored with an error line.
    let (out, err, code) = c.run("sbatch", &["-H", "-S", "1", "--wrap", "true"]);
    assert_eq!(
        (out.as_str(), err.as_str(), code),
        (
            "Submitted batch job 4\n",
            "sbatch: error: Ignoring -S since it's not allowed by configuration (AllowSpecResourcesUsage = No)\n",
            0
        )
    );
}

#[test]
fn nice_and_roots_priority_order_the_queue() {
    let c = TestCluster::fast();
    let plain = c.submit(&["--begin=now+1hour", "--wrap", "true"]);
    let nice = c.submit(&["--begin=now+1hour", "--nice=10", "--wrap", "true"]);
    let p = |id: u32| -> i64 { c.job_field(id, "%Q").parse().unwrap() };
    // Observed: the next job is one lower, and nice=10 takes 10 more (priority/basic).
    assert_eq!(p(plain) - p(nice), 11);
    // Observed for root: --priority sets it; TOP is the highest there is. Other users' are
    // ignored (job_mgr.c validate_job_create_req).
    let id = c.submit(&["--begin=now+1hour", "--priority=100", "--wrap", "true"]);
    let top = c.submit(&["--begin=now+1hour", "--priority=TOP", "--wrap", "true"]);
    if nix::unistd::getuid().is_root() {
        assert_eq!((p(id), p(top)), (100, 4_294_967_293));
    } else {
        assert_eq!(p(plain) - p(id), 2);
    }
}

#[test]
fn excluding_every_node_is_refused_unless_held() {
    let c = TestCluster::fast();
    // Observed: refused at submission, but a held job is not tried and is accepted.
    assert_eq!(
        c.run("sbatch", &["--exclude=localhost", "--wrap", "true"]),
        (
            String::new(),
            "sbatch: error: Batch job submission failed: Requested node configuration is not available\n".into(),
            1
        )
    );
    assert_eq!(
        c.run("sbatch", &["-H", "-x", "localhost", "--wrap", "true"])
            .2,
        0
    );
}

#[test]
fn options_for_what_this_cluster_lacks_are_refused_as_slurm_refuses_them() {
    let c = TestCluster::fast();
    let gres = "sbatch: error: Invalid generic resource (gres) specification\n";
    for opt in [
        "--gres=gpu:1",
        "--gpus=1",
        "--gpus-per-node=1",
        "--gpus-per-task=1",
        "--gpus-per-socket=1",
        "--cpus-per-gpu=1",
        "--mem-per-gpu=1G",
    ] {
        assert_eq!(
            c.run("sbatch", &["-H", opt, "--wrap", "true"]),
            (String::new(), gres.into(), 1),
            "{opt}"
        );
    }
    let failed = |text: &str| format!("sbatch: error: Batch job submission failed: {text}\n");
    for (opt, text) in [
        ("--licenses=x", "Invalid license specification"),
        ("--reservation=nosuch", "Requested reservation is invalid"),
        ("--prefer=x", "Invalid preferred feature specification"),
        (
            "--batch=x",
            "Job --batch option is invalid or not a subset of --constraints",
        ),
    ] {
        assert_eq!(
            c.run("sbatch", &["-H", opt, "--wrap", "true"]),
            (String::new(), failed(text), 1),
            "{opt}"
        );
    }
    assert_eq!(
        c.run("sbatch", &["--ntasks-per-gpu=1", "--wrap", "true"]),
        (
            String::new(),
            "sbatch: error: gres_job_state_validate: --ntasks-per-tres needs either a GRES GPU specification or a node/ntask specification\n\
             sbatch: error: Invalid generic resource (gres) specification\n"
                .into(),
            1
        )
    );
    assert_eq!(
        c.run("sbatch", &["--clusters=other", "--wrap", "true"]),
        (
            String::new(),
            "sbatch: error: No cluster 'other' known by database.\n\
             sbatch: error: 'other' can't be reached now, or it is an invalid entry for --cluster.  Use 'sacctmgr list clusters' to see available clusters.\n"
                .into(),
            1
        )
    );
    // Nothing was submitted: the next job is job 1.
    assert_eq!(
        c.run("sbatch", &["-H", "-M", "batchci", "--wrap", "true"]),
        (
            "Submitted batch job 1 on cluster batchci\n".into(),
            String::new(),
            0
        )
    );
    assert_eq!(
        c.run(
            "sbatch",
            &["-H", "--cluster=batchci", "--parsable", "--wrap", "true"]
        ),
        ("2;batchci\n".into(), String::new(), 0)
    );
}

#[test]
fn option_values_are_checked_as_sbatch_checks_them() {
    let c = TestCluster::fast();
    for (args, err, code) in [
        (
            &["--hint=bogus"][..],
            "sbatch: error: unrecognized --hint argument \"bogus\", see --hint=help\n",
            1,
        ),
        (
            &["--distribution=bogus"],
            "sbatch: error: Invalid --distribution specification\n",
            255,
        ),
        (
            &["--deadline=garbage"],
            "Invalid time specification (pos=0): garbage\nsbatch: error: Invalid --deadline specification\n",
            255,
        ),
        (
            &["--time-min=abc"],
            "sbatch: error: Invalid --time-min specification\n",
            255,
        ),
        (
            &["--mincpus=abc"],
            "sbatch: error: Invalid numeric value \"abc\" for --mincpus.\n",
            1,
        ),
        (
            &["--switches=abc"],
            "sbatch: error: Invalid numeric value \"abc\" for --switches.\n",
            1,
        ),
        (
            &["--delay-boot=abc"],
            "sbatch: error: Invalid --delay-boot specification\n",
            255,
        ),
        (
            &["--kill-on-invalid-dep=bogus"],
            "sbatch: error: Invalid --kill-on-invalid-dep specification\n",
            255,
        ),
        (
            &["--mail-type=bogus"],
            "sbatch: error: Invalid --mail-type specification\n",
            255,
        ),
        (
            &["--exclusive=bogus"],
            "sbatch: error: Invalid --exclusive specification\n",
            255,
        ),
        (
            &["--propagate=bogus"],
            "sbatch: error: Bad rlimit name: bogus\nsbatch: error: --propagate=bogus is not valid.\n",
            1,
        ),
        // A command-line error comes before the controller's answer.
        (
            &["--reservation=x", "--time-min=abc"],
            "sbatch: error: Invalid --time-min specification\n",
            255,
        ),
        // x11 is srun's and salloc's.
        (
            &["--x11"],
            "sbatch: unrecognized option '--x11'\nTry \"sbatch --help\" for more information\n",
            255,
        ),
    ] {
        let mut argv = args.to_vec();
        argv.extend(["--wrap", "true"]);
        assert_eq!(
            c.run("sbatch", &argv),
            (String::new(), err.into(), code),
            "{args:?}"
        );
    }
    // Observed: --nice takes any text (strtol), so "abc" is 0.
    let id = c.submit(&["-H", "--nice=abc", "--wrap", "true"]);
    assert_eq!(fields(&c, id, &["Nice"]), "Nice=0");
}

#[test]
fn sbatch_directives_take_the_same_options() {
    let c = TestCluster::fast();
    std::fs::write(
        c.path("job.sh"),
        "#!/bin/sh\n#SBATCH --wckey=k --nice=7\n#SBATCH --time-min=2 -x localhost\n#SBATCH -H\ntrue\n",
    )
    .unwrap();
    let id = c.submit(&["job.sh"]);
    assert_eq!(
        fields(&c, id, &["Nice", "TimeMin", "ExcNodeList"]),
        "Nice=7 TimeMin=00:02:00 ExcNodeList=localhost"
    );
    std::fs::write(c.path("gpu.sh"), "#!/bin/sh\n#SBATCH --gres=gpu:1\ntrue\n").unwrap();
    assert_eq!(
        c.run("sbatch", &["gpu.sh"]),
        (
            String::new(),
            "sbatch: error: Invalid generic resource (gres) specification\n".into(),
            1
        )
    );
}

/// Observed on Slurm 22.05 (docs/slurm-observed.md 51): a held job is not tried against the
/// nodes; released, it pends for what it asks.
#[test]
fn a_held_job_is_not_checked_against_the_nodes() {
    let c = TestCluster::fast();
    let mem = c.submit(&["-H", "--mem", "9000", "--wrap", "true"]);
    assert_eq!(c.job_field(mem, "%T|%r"), "PENDING|JobHeldUser");
    let id = mem.to_string();
    assert_eq!(
        c.run("scontrol", &["release", &id]),
        (String::new(), String::new(), 0)
    );
    common::wait_for("BadConstraints", || {
        c.job_field(mem, "%T|%r") == "PENDING|BadConstraints"
    });
    let cpus = c.submit(&["-H", "-c", "4", "--wrap", "true"]);
    let id = cpus.to_string();
    assert_eq!(
        c.run("scontrol", &["release", &id]),
        (
            String::new(),
            format!(
                "Requested partition configuration not available now for job {cpus}\nslurm_suspend error: Requested partition configuration not available now\n"
            ),
            1
        )
    );
    common::wait_for("PartitionConfig", || {
        c.job_field(cpus, "%T|%r") == "PENDING|PartitionConfig"
    });
    // Not held, the memory is refused at once.
    assert_eq!(c.run("sbatch", &["--mem", "9000", "--wrap", "true"]).2, 1);
}

/// Observed on Slurm 22.05 (docs/slurm-observed.md 52): `#SBATCH --parsable` counts, `#SBATCH
/// -Q` does not, and the command line's `-Q` silences `--parsable`.
#[test]
fn directives_take_parsable_but_not_quiet() {
    let c = TestCluster::fast();
    std::fs::write(
        c.path("p.sh"),
        "#!/bin/sh\n#SBATCH --parsable\n#SBATCH -H\ntrue\n",
    )
    .unwrap();
    std::fs::write(
        c.path("q.sh"),
        "#!/bin/sh\n#SBATCH --quiet\n#SBATCH -H\ntrue\n",
    )
    .unwrap();
    assert_eq!(c.run("sbatch", &["p.sh"]), ("1\n".into(), String::new(), 0));
    assert_eq!(
        c.run("sbatch", &["q.sh"]),
        ("Submitted batch job 2\n".into(), String::new(), 0)
    );
    assert_eq!(
        c.run("sbatch", &["-Q", "p.sh"]),
        (String::new(), String::new(), 0)
    );
    assert_eq!(
        c.run("sbatch", &["-Q", "--parsable", "-H", "--wrap", "true"]),
        (String::new(), String::new(), 0)
    );
}

/// A job never starts before its `sbatch` has returned, however short `sched_delay` is
/// (slurm-observed.md 56). An `sbatch` held up while printing the id (its stdout is a full pipe)
/// has not returned: its job stays pending with reason `None` while a later job submitted and
/// run shows that scheduling passes went on; once the id is read, the job runs.
#[test]
fn a_job_never_starts_before_its_sbatch_has_returned() {
    use std::io::{Read, Write};
    let c = TestCluster::with_config(&format!("sched_delay = 0\n{}", common::FAST_CLUSTER));
    let (mut reader, mut writer) = std::io::pipe().unwrap();
    // SAFETY: F_GETPIPE_SZ only reads the pipe's capacity.
    let capacity =
        unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&writer), libc::F_GETPIPE_SZ) };
    let capacity = usize::try_from(capacity).expect("the pipe's capacity");
    writer.write_all(&vec![b'.'; capacity]).unwrap();
    let mut held = c.spawn_with_stdout("sbatch", &["-J", "held-up", "--wrap", "true"], writer);
    common::wait_for("the held-up job to be queued", || {
        c.run("squeue", &["-h", "-n", "held-up", "-o", "%T|%r"]).0 == "PENDING|None\n"
    });
    let later = c.submit(&["-J", "later", "--wrap", "true"]);
    c.wait_state(later, "COMPLETED");
    assert_eq!(
        c.run("squeue", &["-h", "-n", "held-up", "-o", "%T|%r"]).0,
        "PENDING|None\n"
    );
    let mut printed = Vec::new();
    reader.read_to_end(&mut printed).unwrap();
    assert!(held.wait().unwrap().success());
    let printed = String::from_utf8_lossy(&printed[capacity..]).into_owned();
    let id: u32 = printed
        .trim()
        .strip_prefix("Submitted batch job ")
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("sbatch printed {printed:?}"));
    c.wait_state(id, "COMPLETED");
}

/// With the default `sched_delay` (0.3 s) and real time, `squeue` right after `sbatch` shows
/// what Slurm 22.05 showed: pending, reason `None`, no start time; the pass then starts it.
#[test]
fn a_fresh_job_waits_for_the_next_pass_with_reason_none() {
    let c = TestCluster::with_config(
        &common::FAST_CLUSTER.replace("time_scale = 60.0", "time_scale = 1.0"),
    );
    let id = c.submit(&["--wrap", "true"]);
    assert_eq!(c.job_field(id, "%T|%r|%S"), "PENDING|None|N/A");
    c.wait_state(id, "COMPLETED");
}
