//! srun and salloc: allocation messages, stdin forwarding, exit codes, and the release of the
//! allocation when the command ends or the client dies.

mod common;

use std::io::Write;

use common::{TestCluster, normalize_times, wait_for};

#[test]
fn srun_runs_the_command_inside_an_allocation() {
    let c = TestCluster::fast();
    let (out, err, code) = c.run(
        "srun",
        &[
            "-c",
            "2",
            "--mem",
            "100",
            "-J",
            "step",
            "bash",
            "-c",
            "echo $SLURM_JOB_ID $SLURM_CPUS_ON_NODE $SLURM_STEP_ID $SLURM_JOB_NAME",
        ],
    );
    assert_eq!((out.as_str(), err.as_str(), code), ("1 2 0 step\n", "", 0));
    assert_eq!(c.job_field(1, "%T"), "COMPLETED");
    assert_eq!(
        c.run(
            "sacct",
            &["-j", "1", "-n", "-P", "-o", "JobID,JobName,State,ExitCode"]
        )
        .0,
        "1|step|COMPLETED|0:0\n1.0|bash|COMPLETED|0:0\n"
    );
}

/// Observed on Slurm 22.05 (docs/slurm-observed.md 55): srun's task has the task count also
/// without `-n`.
#[test]
fn srun_tasks_know_their_count() {
    let c = TestCluster::fast();
    assert_eq!(
        c.run(
            "srun",
            &[
                "--mem",
                "100",
                "bash",
                "-c",
                "echo $SLURM_NTASKS $SLURM_NPROCS"
            ]
        ),
        ("1 1\n".into(), String::new(), 0)
    );
}

#[test]
fn srun_exit_codes_and_messages() {
    let c = TestCluster::fast();
    assert_eq!(
        c.run("srun", &["bash", "-c", "exit 7"]),
        (
            String::new(),
            "srun: error: localhost: task 0: Exited with exit code 7\n".into(),
            7
        )
    );
    assert_eq!(
        c.run("srun", &["bash", "-c", "kill -TERM $$"]),
        (
            String::new(),
            "srun: error: localhost: task 0: Terminated\nsrun: Force Terminated StepId=2.0\n"
                .into(),
            143
        )
    );
    assert_eq!(
        c.run("srun", &["-p", "nope", "true"]),
        (
            String::new(),
            "srun: error: invalid partition specified: nope\nsrun: error: Unable to allocate resources: Invalid partition name specified\n".into(),
            1
        )
    );
    assert_eq!(
        c.run("srun", &["--bogus", "true"]),
        (
            String::new(),
            "srun: unrecognized option '--bogus'\nTry \"srun --help\" for more information\n"
                .into(),
            255
        )
    );
    assert_eq!(
        c.run("srun", &[]),
        (
            String::new(),
            "srun: fatal: No command given to execute.\n".into(),
            1
        )
    );
}

#[test]
fn placeholder_forwards_stdin_and_ends_when_it_closes() {
    let c = TestCluster::fast();
    let mut child = c.spawn(
        "srun",
        &[
            "-c",
            "2",
            "--mem",
            "100",
            "bash",
            "-c",
            "echo placeholder-ready; exec cat",
        ],
    );
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"line1\nline2\n").unwrap();
    wait_for("allocation", || c.job_field(1, "%T") == "RUNNING");
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "placeholder-ready\nline1\nline2\n"
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert_eq!(c.state_of(1), "COMPLETED");
    // The cores are free again.
    let (out, _, _) = c.run("sinfo", &["-h", "-o", "%C"]);
    assert_eq!(out, "0/2/0/2\n0/2/0/2\n");
}

#[test]
fn a_waiting_srun_says_so_and_a_killed_srun_releases_its_allocation() {
    let c = TestCluster::fast();
    let filler = c.submit(&["--wrap", "sleep 300"]);
    c.wait_state(filler, "RUNNING");
    let mut child = c.spawn(
        "srun",
        &["--mem", "100", "bash", "-c", "echo got-it; exec cat"],
    );
    wait_for("queued srun", || {
        c.job_field(2, "%T %r") == "PENDING Resources"
    });
    c.run("scancel", &[&filler.to_string()]);
    wait_for("srun allocation", || c.state_of(2) == "RUNNING");
    // The task has printed, so srun has said it got the allocation (the job runs a moment
    // before srun hears so).
    let mut first = [0u8; 7];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    assert_eq!(&first, b"got-it\n");
    // Kill the client: the step and the allocation go with it.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "srun: job 2 queued and waiting for resources\nsrun: job 2 has been allocated resources\n"
    );
    wait_for("release", || c.state_of(2) == "CANCELLED");
    assert_eq!(
        c.run("sinfo", &["-h", "-o", "%C", "-p", "debug"]).0,
        "0/2/0/2\n"
    );
}

#[test]
fn cancelling_a_running_srun_aborts_the_step() {
    let c = TestCluster::fast();
    let mut child = c.spawn("srun", &["bash", "-c", "echo started; sleep 300"]);
    // Wait until the step has printed, so the cancel hits a running command.
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 8];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    assert_eq!(&first, b"started\n");
    assert_eq!(c.run("scancel", &["1"]).2, 0);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(143));
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert_eq!(rest, "");
    assert_eq!(
        normalize_times(&String::from_utf8_lossy(&out.stderr)),
        "srun: Job step aborted: Waiting up to 4 seconds for job step to finish.\nslurmstepd-localhost: error: *** STEP 1.0 ON localhost CANCELLED AT <TIME> ***\nsrun: error: localhost: task 0: Terminated\n"
    );
    assert_eq!(c.state_of(1), "CANCELLED");
}

#[test]
fn cancelling_a_pending_srun() {
    let c = TestCluster::fast();
    let filler = c.submit(&["--wrap", "sleep 300"]);
    c.wait_state(filler, "RUNNING");
    let mut child = c.spawn("srun", &["true"]);
    // Cancelled once srun has said it waits (the job is PENDING before srun hears so).
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut first).unwrap();
    assert_eq!(first, "srun: job 2 queued and waiting for resources\n");
    c.run("scancel", &["2"]);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert_eq!(
        rest,
        "srun: Job has been cancelled\nsrun: error: Unable to allocate resources: Job/step already completing or completed\n"
    );
    c.run("scancel", &[&filler.to_string()]);
}

#[test]
fn salloc_grants_runs_and_relinquishes() {
    let c = TestCluster::fast();
    assert_eq!(
        c.run("salloc", &["bash", "-c", "echo $SLURM_JOB_ID; exit 5"]),
        (
            "1\n".into(),
            "salloc: Granted job allocation 1\nsalloc: Relinquishing job allocation 1\n".into(),
            5
        )
    );
    // salloc's command is no step; its job is `interactive` (slurm-observed.md 67).
    assert_eq!(
        c.run(
            "sacct",
            &["-j", "1", "-n", "-P", "-o", "JobID,JobName,State,ExitCode"]
        )
        .0,
        "1|interactive|FAILED|5:0\n"
    );
    assert_eq!(
        c.run("salloc", &["-p", "nope", "true"]),
        (
            String::new(),
            "salloc: error: invalid partition specified: nope\nsalloc: error: Job submit/allocate failed: Invalid partition name specified\n".into(),
            1
        )
    );
    let filler = c.submit(&["--wrap", "sleep 300"]);
    c.wait_state(filler, "RUNNING");
    let child = c.spawn("salloc", &["true"]);
    wait_for("queued salloc", || c.job_field(3, "%T") == "PENDING");
    c.run("scancel", &[&filler.to_string()]);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "salloc: Pending job allocation 3\nsalloc: job 3 queued and waiting for resources\nsalloc: job 3 has been allocated resources\nsalloc: Granted job allocation 3\nsalloc: Relinquishing job allocation 3\n"
    );
}

#[test]
fn srun_inside_a_batch_job_runs_as_a_step() {
    let c = TestCluster::fast();
    let (_, _, code) = c.run(
        "sbatch",
        &[
            "--wait",
            "--wrap",
            "srun bash -c 'echo step $SLURM_JOB_ID $SLURM_STEP_ID'",
        ],
    );
    assert_eq!(code, 0);
    assert_eq!(
        std::fs::read_to_string(c.path("slurm-1.out")).unwrap(),
        "step 1 0\n"
    );
}

#[test]
fn srun_time_limit_aborts_the_step_with_timeout() {
    let c = TestCluster::fast();
    let out = c
        .cmd("srun")
        .args([
            "-t",
            "1",
            "-q",
            "normal",
            "-p",
            "gitlab-ci",
            "bash",
            "-c",
            "echo started; exec sleep 300",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(143));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "started\n");
    assert_eq!(
        normalize_times(&String::from_utf8_lossy(&out.stderr)),
        "srun: Job step aborted: Waiting up to 4 seconds for job step to finish.\nslurmstepd-localhost: error: *** STEP 1.0 ON localhost CANCELLED AT <TIME> DUE TO TIME LIMIT ***\nsrun: error: localhost: task 0: Terminated\n"
    );
    assert_eq!(c.job_field(1, "%T %r %P"), "TIMEOUT TimeLimit gitlab-ci");
}

/// A batch script of several `srun` steps, as job libraries write them; what Slurm 22.05
/// printed for it on the reference cluster (docs/slurm-observed.md, steps).
const STEPS_SCRIPT: &str = r#"#!/bin/bash
srun -n 2 -l bash -c 'echo $SLURM_PROCID $SLURM_LOCALID $SLURM_NODEID $SLURM_STEP_ID $SLURM_NTASKS $SLURM_STEP_NUM_TASKS; exit $SLURM_PROCID'
echo "rc=$?"
srun -n 2 bash -c 'exit 3'
echo "rc=$?"
srun --output=task-%j-%s-%t.out -n 2 bash -c 'echo hi $SLURM_PROCID'
echo "rc=$?"
srun -n 3 true
echo "rc=$?"
"#;

#[test]
fn srun_in_a_batch_job_runs_numbered_steps_of_ranked_tasks() {
    let c = TestCluster::fast();
    std::fs::write(c.path("steps.sh"), STEPS_SCRIPT).unwrap();
    let id = c.submit(&["-n", "2", "-o", "steps.out", "steps.sh"]);
    c.wait_state(id, "COMPLETED");
    // Tasks print in any order; everything else in order.
    let text = std::fs::read_to_string(c.path("steps.out")).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[..2].sort_unstable();
    assert_eq!(
        lines,
        [
            "0: 0 0 0 0 2 2",
            "1: 1 1 0 0 2 2",
            "srun: error: localhost: task 1: Exited with exit code 1",
            "rc=1",
            "srun: error: localhost: tasks 0-1: Exited with exit code 3",
            "rc=3",
            "rc=0",
            &format!(
                "srun: error: Unable to create step for job {id}: More processors requested than permitted"
            ),
            "rc=1",
        ]
    );
    for task in 0..2 {
        assert_eq!(
            std::fs::read_to_string(c.path(&format!("task-{id}-2-{task}.out"))).unwrap(),
            format!("hi {task}\n")
        );
    }
    // The refused step used no step id; the job completed whatever its steps did.
    assert_eq!(
        c.run(
            "sacct",
            &[
                "-j",
                &id.to_string(),
                "-n",
                "-P",
                "-o",
                "JobID,JobName,State,ExitCode"
            ]
        )
        .0,
        format!(
            "{id}|steps.sh|COMPLETED|0:0\n{id}.batch|batch|COMPLETED|0:0\n\
             {id}.0|bash|FAILED|1:0\n{id}.1|bash|FAILED|3:0\n{id}.2|bash|COMPLETED|0:0\n"
        )
    );
}

/// Slurm 22.05's option table for srun and salloc (src/cli/slurm/options.rs); the texts were
/// observed on the reference cluster (docs/slurm-observed.md, "Options").
#[test]
fn srun_and_salloc_take_slurms_options_and_refuse_what_the_cluster_lacks() {
    let c = TestCluster::fast();
    let accepted = [
        "-c",
        "1",
        "--mem",
        "100",
        "--wckey=k",
        "--hint=nomultithread",
        "--nice=5",
        "--time-min=1",
        "--mincpus=1",
        "--threads-per-core=1",
        "--distribution=block",
        "--spread-job",
        "--switches=1",
        "--comment=c",
        "--clusters=batchci",
        "--no-kill",
        "echo",
        "ran",
    ];
    let (out, err, code) = c.run("srun", &accepted);
    assert_eq!((out.as_str(), err.as_str(), code), ("ran\n", "", 0));
    let (out, _, code) = c.run("salloc", &accepted);
    assert_eq!((out.as_str(), code), ("ran\n", 0));
    for (prog, failed) in [
        ("srun", "Unable to allocate resources"),
        ("salloc", "Job submit/allocate failed"),
    ] {
        assert_eq!(
            c.run(prog, &["--gres=gpu:1", "true"]),
            (
                String::new(),
                format!("{prog}: error: Invalid generic resource (gres) specification\n"),
                1
            )
        );
        assert_eq!(
            c.run(prog, &["--reservation=nosuch", "true"]),
            (
                String::new(),
                format!("{prog}: error: {failed}: Requested reservation is invalid\n"),
                1
            )
        );
        assert_eq!(
            c.run(prog, &["--licenses=x", "true"]),
            (
                String::new(),
                format!("{prog}: error: {failed}: Invalid license specification\n"),
                1
            )
        );
        assert_eq!(
            c.run(prog, &["--hint=bogus", "true"]),
            (
                String::new(),
                format!("{prog}: error: unrecognized --hint argument \"bogus\", see --hint=help\n"),
                1
            )
        );
        // --batch is sbatch's only.
        assert_eq!(
            c.run(prog, &["--batch=x", "true"]),
            (
                String::new(),
                format!(
                    "{prog}: unrecognized option '--batch=x'\nTry \"{prog} --help\" for more information\n"
                ),
                255
            )
        );
    }
    // --test-only is srun's and sbatch's, not salloc's.
    assert_eq!(c.run("salloc", &["--test-only", "true"]).2, 255);
}

/// Two nodes of four CPUs: where tasks go across nodes.
const TWO_NODES: &str = r#"
cluster_name = "batchci"
time_scale = 60.0
kill_wait = 2

[[nodes]]
names = "node[01-02]"
cpus = 4
memory_mb = 8000

[[partitions]]
name = "debug"
nodes = "node[01-02]"
default = true
max_time = "UNLIMITED"
"#;

/// The fields `names` of `scontrol show job`, in that order.
fn scontrol_fields(c: &TestCluster, id: u32, names: &[&str]) -> String {
    let (out, _, _) = c.run("scontrol", &["show", "job", &id.to_string()]);
    names
        .iter()
        .filter_map(|name| {
            out.split_whitespace()
                .find(|word| word.starts_with(&format!("{name}=")))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A finished batch job's output, its lines sorted (tasks print in any order).
fn sorted_output(c: &TestCluster, id: u32, file: &str) -> Vec<String> {
    c.wait_state(id, "COMPLETED");
    let text = std::fs::read_to_string(c.path(file)).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort_unstable();
    lines
}

/// `--ntasks-per-node` and node counts, as Slurm 22.05 works them out (the reference cluster
/// has one node, so this is from the sources, not compared differentially): sbatch's
/// `_opt_verify` (src/sbatch/opt.c) makes `-N 2 --ntasks-per-node=2` four tasks; with `-n 4`
/// and no node count the controller puts at most two tasks on a node, so two nodes
/// (src/slurmctld/job_mgr.c, select/cons_tres); srun in the job reads the job's
/// `SLURM_NTASKS`, `SLURM_JOB_NUM_NODES` and `SLURM_NTASKS_PER_NODE` as its `-n`, `-N` and
/// `--ntasks-per-node` (`env_vars[]` of src/srun/libsrun/opt.c) and places its tasks in blocks.
#[test]
fn ntasks_per_node_spreads_the_job_and_its_steps_over_nodes() {
    let c = TestCluster::with_config(TWO_NODES);
    let probe = "echo job $SLURM_JOB_NUM_NODES $SLURM_NTASKS $SLURM_TASKS_PER_NODE $SLURM_NTASKS_PER_NODE; \
                 srun -l bash -c 'echo $SLURMD_NODENAME $SLURM_LOCALID $SLURM_STEP_TASKS_PER_NODE'";
    let id = c.submit(&[
        "-n",
        "4",
        "--ntasks-per-node=2",
        "-o",
        "a.out",
        "--wrap",
        probe,
    ]);
    assert_eq!(
        sorted_output(&c, id, "a.out"),
        [
            "0: node01 0 2(x2)",
            "1: node01 1 2(x2)",
            "2: node02 0 2(x2)",
            "3: node02 1 2(x2)",
            "job 2 4 2(x2) 2",
        ]
    );
    assert_eq!(
        scontrol_fields(&c, id, &["NumNodes", "NumCPUs", "NumTasks"]),
        "NumNodes=2 NumCPUs=4 NumTasks=4"
    );

    // srun given the counts again places its tasks alike.
    let explicit = probe.replace("srun -l", "srun -N 2 -n 4 --ntasks-per-node=2 -l");
    let id = c.submit(&[
        "-N",
        "2",
        "--ntasks-per-node=2",
        "-o",
        "b.out",
        "--wrap",
        &explicit,
    ]);
    assert_eq!(
        sorted_output(&c, id, "b.out"),
        [
            "0: node01 0 2(x2)",
            "1: node01 1 2(x2)",
            "2: node02 0 2(x2)",
            "3: node02 1 2(x2)",
            "job 2 4 2(x2) 2",
        ]
    );
    assert_eq!(
        scontrol_fields(&c, id, &["NumNodes", "NumCPUs", "NumTasks"]),
        "NumNodes=2 NumCPUs=4 NumTasks=4"
    );
}

/// `sbatch -N 2` without `-n`: one task per node (SLURM_NTASKS unset, `1(x2)`, one CPU on each
/// node); srun without `-n` runs one task per node, `srun -n 1` one task with srun's warning
/// (src/srun/libsrun/opt.c `_opt_verify`); four tasks do not fit its two CPUs.
#[test]
fn a_job_of_two_nodes_has_a_task_on_each() {
    let c = TestCluster::with_config(TWO_NODES);
    let script = "echo \"job [$SLURM_NTASKS] $SLURM_TASKS_PER_NODE $SLURM_JOB_CPUS_PER_NODE\"\n\
                  srun -l bash -c 'echo all $SLURMD_NODENAME $SLURM_NTASKS'\n\
                  srun -n 1 bash -c 'echo one $SLURMD_NODENAME $SLURM_NTASKS'\n\
                  srun -N 2 -n 4 --ntasks-per-node=2 true\n";
    std::fs::write(c.path("two.sh"), format!("#!/bin/bash\n{script}")).unwrap();
    let id = c.submit(&["-N", "2", "-o", "two.out", "two.sh"]);
    c.wait_state(id, "FAILED");
    assert_eq!(
        scontrol_fields(&c, id, &["NumNodes", "NumCPUs"]),
        "NumNodes=2 NumCPUs=2"
    );
    // The first line comes first; each srun's tasks print in any order.
    let text = std::fs::read_to_string(c.path("two.out")).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[1..3].sort_unstable();
    let refused = format!(
        "srun: error: Unable to create step for job {id}: More processors requested than permitted"
    );
    assert_eq!(
        lines,
        [
            "job [] 1(x2) 1(x2)",
            "0: all node01 2",
            "1: all node02 2",
            "srun: Warning: can't run 1 processes on 2 nodes, setting nnodes to 1",
            "one node01 1",
            &refused,
        ]
    );
}

/// srun outside a job runs its tasks over the nodes it was given, as inside one.
#[test]
fn srun_outside_a_job_spreads_its_tasks_over_its_nodes() {
    let c = TestCluster::with_config(TWO_NODES);
    let (out, err, code) = c.run(
        "srun",
        &[
            "-N",
            "2",
            "-l",
            "bash",
            "-c",
            "echo $SLURMD_NODENAME $SLURM_NTASKS $SLURM_STEP_NUM_NODES $SLURM_STEP_TASKS_PER_NODE",
        ],
    );
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        (lines, err.as_str(), code),
        (vec!["0: node01 2 2 1(x2)", "1: node02 2 2 1(x2)"], "", 0)
    );
    assert_eq!(
        c.run(
            "sacct",
            &["-j", "1", "-n", "-P", "-o", "JobID,NTasks,AllocCPUS,State"]
        )
        .0,
        "1||2|COMPLETED\n1.0|2|2|COMPLETED\n"
    );
}

/// `-u` with `-l`: each piece of output is passed on as it comes, every line of it labelled,
/// and a piece that ends inside a line is ended there; without `-u` whole lines (observed on
/// Slurm 22.05, docs/slurm-observed.md 67). The pauses make the task write in three pieces,
/// which is what is tested, not a wait for something.
#[test]
fn unbuffered_labelled_output_labels_every_piece() {
    let c = TestCluster::fast();
    let pieces = "printf a; sleep 0.3; printf 'b\\nc'; sleep 0.3; echo d";
    assert_eq!(
        c.run("srun", &["-l", "-u", "bash", "-c", pieces]),
        ("0: a\n0: b\n0: c\n0: d\n".into(), String::new(), 0)
    );
    assert_eq!(
        c.run("srun", &["-l", "bash", "-c", pieces]),
        ("0: ab\n0: cd\n".into(), String::new(), 0)
    );
    assert_eq!(
        c.run("srun", &["-u", "bash", "-c", pieces]),
        ("ab\ncd\n".into(), String::new(), 0)
    );
}
