//! Job arrays through the fake Slurm commands: `sbatch --array`, task ids, the task
//! environment, throttles, and how squeue, scontrol, sacct and scancel show and act on arrays.
//! Observations cited as "observed" were made on Slurm 22.05 (docs/slurm-observed.md, 34-40).

mod common;

use common::{FAST_CLUSTER, TestCluster, wait_for};

/// Small tasks, so that two fit on the two-CPU node at once.
const SMALL: [&str; 4] = ["-c", "1", "--mem", "100"];

fn submit_array(c: &TestCluster, args: &[&str]) -> u32 {
    let mut all = SMALL.to_vec();
    all.extend_from_slice(args);
    c.submit(&all)
}

fn stdout(c: &TestCluster, prog: &str, args: &[&str]) -> String {
    let (out, err, code) = c.run(prog, args);
    assert_eq!(code, 0, "{prog} {args:?}: {err}");
    out
}

/// `sacct -n -P -X -j ID -o FIELDS` rows.
fn sacct(c: &TestCluster, id: &str, fields: &str) -> String {
    stdout(c, "sacct", &["-n", "-P", "-X", "-j", id, "-o", fields])
}

fn all_ended(c: &TestCluster, id: u32) -> bool {
    let states = sacct(c, &id.to_string(), "State");
    !states.is_empty() && !states.contains("PENDING") && !states.contains("RUNNING")
}

/// Observed: the first tasks to start get new job ids, the last one the array's own id; each
/// task sees SLURM_ARRAY_* and its own SLURM_JOB_ID; `%A_%a` names its output file.
#[test]
fn tasks_get_their_own_ids_and_the_array_environment() {
    let c = TestCluster::fast();
    let id = submit_array(
        &c,
        &[
            "-a",
            "1-3",
            "-o",
            "o-%A_%a.out",
            "--wrap",
            "echo $SLURM_JOB_ID $SLURM_ARRAY_JOB_ID $SLURM_ARRAY_TASK_ID $SLURM_ARRAY_TASK_COUNT \
             $SLURM_ARRAY_TASK_MIN $SLURM_ARRAY_TASK_MAX $SLURM_ARRAY_TASK_STEP",
        ],
    );
    wait_for("the array to end", || all_ended(&c, id));
    let read = |task: u32| std::fs::read_to_string(c.path(&format!("o-{id}_{task}.out"))).unwrap();
    // Tasks 1 and 2 fit together and split off first; task 3 is the array's own record.
    assert_eq!(read(1), format!("{} {id} 1 3 1 3 1\n", id + 1));
    assert_eq!(read(2), format!("{} {id} 2 3 1 3 1\n", id + 2));
    assert_eq!(read(3), format!("{id} {id} 3 3 1 3 1\n"));
    // sacct: JobID names the task, JobIDRaw the task's own id (observed).
    assert_eq!(
        stdout(
            &c,
            "sacct",
            &[
                "-n",
                "-P",
                "-j",
                &id.to_string(),
                "-o",
                "JobID,JobIDRaw,State"
            ]
        ),
        format!(
            "{id}_1|{a}|COMPLETED\n{id}_1.batch|{a}.batch|COMPLETED\n\
             {id}_2|{b}|COMPLETED\n{id}_2.batch|{b}.batch|COMPLETED\n\
             {id}_3|{id}|COMPLETED\n{id}_3.batch|{id}.batch|COMPLETED\n",
            a = id + 1,
            b = id + 2
        )
    );
    assert_eq!(
        sacct(&c, &format!("{id}_2"), "JobID,State"),
        format!("{id}_2|COMPLETED\n")
    );
}

/// The default output of an array is `slurm-%A_%a.out` (sbatch(1), "filename pattern"); a
/// step shows in the environment (observed: `-a 0-6:3` gives STEP 3).
#[test]
fn an_array_writes_slurm_a_a_out_by_default() {
    let c = TestCluster::fast();
    let id = submit_array(
        &c,
        &["-a", "0-6:3", "--wrap", "echo $SLURM_ARRAY_TASK_STEP"],
    );
    wait_for("the array to end", || all_ended(&c, id));
    for task in [0, 3, 6] {
        let path = c.path(&format!("slurm-{id}_{task}.out"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "3\n", "{path:?}");
    }
}

/// A held array is one record: squeue shows `ID_[1-4%2]`, `-r` one row per task, `%F %K %A`
/// the array id, the tasks and the record's id; scontrol names ArrayJobId, ArrayTaskId and
/// ArrayTaskThrottle (all observed).
#[test]
fn a_pending_array_is_one_record_until_its_tasks_start() {
    let c = TestCluster::fast();
    let id = submit_array(&c, &["-H", "-a", "1-4%2", "--wrap", "true"]);
    let ids = id.to_string();
    assert_eq!(
        stdout(&c, "squeue", &["-h", "-j", &ids, "-o", "%i|%F|%K|%A|%T|%r"]),
        format!("{id}_[1-4%2]|{id}|1-4%2|{id}|PENDING|JobHeldUser\n")
    );
    assert_eq!(
        stdout(&c, "squeue", &["-h", "-r", "-j", &ids, "-o", "%i|%A|%K"]),
        format!("{id}_1|{id}|1\n{id}_2|{id}|2\n{id}_3|{id}|3\n{id}_4|{id}|4\n")
    );
    assert_eq!(
        stdout(
            &c,
            "squeue",
            &["-h", "-j", &format!("{id}_3"), "-o", "%i|%T"]
        ),
        format!("{id}_3|PENDING\n")
    );
    let show = stdout(&c, "scontrol", &["show", "job", &ids]);
    let mut lines = show.lines();
    assert_eq!(
        lines.next().unwrap(),
        format!("JobId={id} ArrayJobId={id} ArrayTaskId=1-4%2 ArrayTaskThrottle=2 JobName=wrap")
    );
    assert!(show.contains("   NodeList=\n"), "{show}");
    assert!(show.contains(" EligibleTime=Unknown\n"), "{show}");
    // The record's output pattern is expanded with Slurm's NO_VAL task id (observed).
    assert!(
        show.contains(&format!(
            "StdOut={}/slurm-{id}_4294967294.out\n",
            c.work.display()
        )),
        "{show}"
    );
    let task = stdout(&c, "scontrol", &["show", "job", &format!("{id}_3")]);
    assert_eq!(
        task.lines().next().unwrap(),
        format!("JobId={id} ArrayJobId={id} ArrayTaskId=3 ArrayTaskThrottle=2 JobName=wrap")
    );
    // A pending task's own view names its own output file (observed).
    assert!(
        task.contains(&format!("StdOut={}/slurm-{id}_3.out\n", c.work.display())),
        "{task}"
    );
    // Without a throttle there is no ArrayTaskThrottle (observed).
    let plain = submit_array(&c, &["-H", "-a", "1-2", "--wrap", "true"]);
    let show = stdout(&c, "scontrol", &["-o", "show", "job", &plain.to_string()]);
    assert!(
        show.starts_with(&format!(
            "JobId={plain} ArrayJobId={plain} ArrayTaskId=1-2 JobName=wrap "
        )),
        "{show}"
    );
    // A job that is no array: N/A for the task.
    let single = submit_array(&c, &["-H", "--wrap", "true"]);
    assert_eq!(
        c.job_field(single, "%i|%F|%K|%A"),
        format!("{single}|{single}|N/A|{single}")
    );
}

/// `%N` lets that many tasks run; the rest wait with reason JobArrayTaskLimit (observed:
/// `2997_[3-5%2] ... (JobArrayTaskLimit)` beside `2997_1` and `2997_2` running as 2998, 2999).
#[test]
fn a_throttle_holds_back_the_remaining_tasks() {
    let c = TestCluster::fast();
    let id = submit_array(&c, &["-a", "1-3%1", "--wrap", "sleep 300"]);
    let ids = id.to_string();
    wait_for("the first task to run", || {
        stdout(&c, "squeue", &["-h", "-j", &ids, "-o", "%i|%A|%T|%r"])
            == format!(
                "{id}_[2-3%1]|{id}|PENDING|JobArrayTaskLimit\n{id}_1|{}|RUNNING|None\n",
                id + 1
            )
    });
    let show = stdout(&c, "scontrol", &["show", "job", &format!("{id}_1")]);
    assert!(
        show.starts_with(&format!(
            "JobId={} ArrayJobId={id} ArrayTaskId=1 ArrayTaskThrottle=1 JobName=wrap\n",
            id + 1
        )),
        "{show}"
    );
    // scontrol show job of the array: the record first, then its tasks (observed).
    let all = stdout(&c, "scontrol", &["-o", "show", "job", &ids]);
    let firsts: Vec<&str> = all.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(firsts, [format!("JobId={id}"), format!("JobId={}", id + 1)]);
    // scancel of the array's id cancels every task (scancel(1)).
    let (_, err, code) = c.run("scancel", &[&ids]);
    assert_eq!((err.as_str(), code), ("", 0));
    wait_for("every task to end", || all_ended(&c, id));
    assert_eq!(
        sacct(&c, &ids, "JobID,State"),
        format!(
            "{id}_1|CANCELLED by {uid}\n{id}|CANCELLED by {uid}\n",
            uid = uid()
        )
    );
}

fn uid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

/// scancel of tasks still pending in the record takes them out of it, silently and with exit 0
/// also for a task the array does not have (observed: `scancel 3120_2`, `scancel
/// '3120_[3-4]'`, `scancel 3120_9`).
#[test]
fn scancel_takes_single_tasks_out_of_a_pending_array() {
    let c = TestCluster::fast();
    let id = submit_array(&c, &["-H", "-a", "1-4", "--wrap", "true"]);
    let ids = id.to_string();
    let row = || {
        stdout(
            &c,
            "squeue",
            &["-h", "-t", "all", "-j", &ids, "-o", "%i|%T"],
        )
    };
    assert_eq!(c.run("scancel", &[&format!("{id}_2")]).2, 0);
    assert_eq!(row(), format!("{id}_[1,3-4]|PENDING\n"));
    assert_eq!(c.run("scancel", &[&format!("{id}_[3-4]")]).2, 0);
    assert_eq!(row(), format!("{id}_[1]|PENDING\n"));
    assert_eq!(
        c.run("scancel", &[&format!("{id}_9")]),
        (String::new(), String::new(), 0)
    );
    assert_eq!(c.run("scancel", &[&ids]).2, 0);
    assert_eq!(row(), format!("{id}_[1]|CANCELLED\n"));
}

/// `sbatch --wait` on an array returns when every task has ended, with the highest exit code
/// (observed: tasks exiting 3, 2, 1 and 1, 2, 3 both give 3).
#[test]
fn sbatch_wait_on_an_array_exits_with_the_highest_task_exit_code() {
    let c = TestCluster::fast();
    let (out, err, code) = c.run(
        "sbatch",
        &[
            "--parsable",
            "-W",
            "-c",
            "1",
            "--mem",
            "100",
            "-a",
            "1-3",
            "--wrap",
            "exit $((4 - SLURM_ARRAY_TASK_ID))",
        ],
    );
    assert_eq!((err.as_str(), code), ("", 3), "{out}");
    let id: u32 = out.trim().parse().unwrap();
    assert!(all_ended(&c, id));
}

/// What sbatch refuses, and what it accepts that looks wrong (observed on Slurm 22.05; the
/// default MaxArraySize is 1001, slurm.conf(5)).
#[test]
fn bad_array_specifications_are_refused_in_slurms_words() {
    let c = TestCluster::fast();
    for bad in [
        "x",
        "1-",
        "5-1",
        "-1",
        "1-3:0",
        "1-3:x",
        "2:3",
        "0-1001",
        "1001",
        "1-4294967295",
    ] {
        let (out, err, code) = c.run("sbatch", &["-H", "-a", bad, "--wrap", "true"]);
        assert_eq!(
            (out.as_str(), err.as_str(), code),
            (
                "",
                "sbatch: error: Batch job submission failed: Invalid job array specification\n",
                1
            ),
            "{bad}"
        );
    }
    for (good, shown) in [
        ("1,,2", "[1-2]"),
        ("0-2%0", "[0-2]"),
        ("0-2%x", "[0-2]"),
        ("3%", "[3]"),
        ("1-5:2%1", "[1,3,5%1]"),
        ("7,1-3", "[1-3,7]"),
        ("1-2,2-3", "[1-3]"),
        ("1000", "[1000]"),
    ] {
        let id = c.submit(&["-H", "-a", good, "--wrap", "true"]);
        assert_eq!(c.job_field(id, "%i"), format!("{id}_{shown}"), "{good}");
    }
    // An empty --array is no array (observed).
    let id = c.submit(&["-H", "-a", "", "--wrap", "true"]);
    assert_eq!(c.job_field(id, "%i|%K"), format!("{id}|N/A"));
    // #SBATCH --array in the script works as the option does.
    std::fs::write(c.path("a.sh"), "#!/bin/sh\n#SBATCH --array=4-5\ntrue\n").unwrap();
    let id = c.submit(&["-H", "a.sh"]);
    assert_eq!(c.job_field(id, "%i"), format!("{id}_[4-5]"));
}

/// A cluster's own MaxArraySize (`max_array_size`) bounds the task ids.
#[test]
fn max_array_size_comes_from_the_cluster() {
    let c = TestCluster::with_config(&FAST_CLUSTER.replace(
        "min_job_age = 300",
        "min_job_age = 300\nmax_array_size = 10",
    ));
    let (_, err, code) = c.run("sbatch", &["-H", "-a", "10", "--wrap", "true"]);
    assert_eq!(
        (err.as_str(), code),
        (
            "sbatch: error: Batch job submission failed: Invalid job array specification\n",
            1
        )
    );
    let id = c.submit(&["-H", "-a", "0-9", "--wrap", "true"]);
    assert_eq!(c.job_field(id, "%i"), format!("{id}_[0-9]"));
}

/// The array's record and its split-off tasks survive a daemon restart, and the record goes
/// on starting its tasks afterwards.
#[test]
fn an_array_survives_a_daemon_restart() {
    let c = TestCluster::fast();
    let id = submit_array(
        &c,
        &[
            "-a",
            "1-3%1",
            "-o",
            "o-%a.out",
            "--wrap",
            "sleep 1; echo $SLURM_JOB_ID",
        ],
    );
    c.wait_state(id + 1, "RUNNING");
    assert!(c.admin(&["stop"]).status.success());
    assert!(c.admin(&["start"]).status.success());
    wait_for("the array to end", || all_ended(&c, id));
    let read = |t: u32| std::fs::read_to_string(c.path(&format!("o-{t}.out"))).unwrap();
    assert_eq!(read(1), format!("{}\n", id + 1));
    assert_eq!(read(2), format!("{}\n", id + 2));
    assert_eq!(read(3), format!("{id}\n"));
}
