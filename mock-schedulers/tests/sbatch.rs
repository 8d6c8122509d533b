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
