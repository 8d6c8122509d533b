//! The fake Cobalt commands: qsub, qstat, qdel and the job's `.cobaltlog` (reference section 5;
//! the Cobalt sources cited are those of ALCF Cobalt 1.0.33, `ido/cobalt` on GitHub).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{TestCluster, wait_file_contains, wait_for};

/// A two-node Cobalt cluster; `scale` simulated seconds pass per real second.
fn cluster_toml(scale: f64, kill_wait: u64) -> String {
    format!(
        r#"
cluster_name = "theta"
time_scale = {scale:?}
kill_wait = {kill_wait}
min_job_age = 300
flavor = "cobalt"

[[nodes]]
names = "nid[0001-0002]"
cpus = 2
memory_mb = 4000

[[partitions]]
name = "default"
nodes = "nid[0001-0002]"
default = true
max_time = 60

[[partitions]]
name = "debug-flat"
nodes = "nid0001"
max_time = "UNLIMITED"
"#
    )
}

/// Ten simulated minutes per real second: a 5-minute walltime lasts half a second.
fn fast() -> TestCluster {
    TestCluster::with_config(&cluster_toml(600.0, 2))
}

/// One simulated minute per real second: a job with a one-hour walltime keeps running.
fn steady() -> TestCluster {
    TestCluster::with_config(&cluster_toml(60.0, 30))
}

fn me() -> String {
    mock_cluster::cli::slurm::identity().0
}

/// Writes an executable script into the work directory.
fn script(c: &TestCluster, name: &str, text: &str) -> String {
    let path = c.path(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    name.to_string()
}

fn qsub(c: &TestCluster, args: &[&str]) -> u32 {
    let (out, err, code) = c.run("qsub", args);
    assert_eq!((code, err.as_str()), (0, ""), "qsub {args:?}");
    out.trim().parse().unwrap()
}

/// Replaces Cobalt timestamps (`Mon Jan 23 02:44:05 2017 +0000 (UTC)`) with `<TS>`.
fn norm(text: &str) -> String {
    const TAIL: &str = " +0000 (UTC)";
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(TAIL) {
        let start = i.saturating_sub(24);
        out.push_str(&rest[..start]);
        out.push_str("<TS>");
        rest = &rest[i + TAIL.len()..];
    }
    out.push_str(rest);
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Waits until `qstat <id>` says the job left the queue (nothing printed, exit 1).
fn wait_gone(c: &TestCluster, id: u32) {
    wait_for(&format!("job {id} to leave the queue"), || {
        c.run("qstat", &[&id.to_string()]) == (String::new(), String::new(), 1)
    });
}

fn state(c: &TestCluster, id: u32) -> String {
    let (out, _, _) = c.run("qstat", &["-l", "--header", "JobID:State", &id.to_string()]);
    out.lines()
        .find_map(|l| l.trim().strip_prefix("State :"))
        .unwrap_or("")
        .trim()
        .to_string()
}

fn wait_state(c: &TestCluster, id: u32, want: &str) {
    wait_for(&format!("job {id} to be {want}"), || state(c, id) == want);
}

#[test]
fn a_job_prints_only_its_id_runs_in_the_submit_directory_and_logs_its_exit_code() {
    // reference 5.1 (stdout only the id; default files in the submit directory; the job runs
    // the executable with its arguments in the submit cwd), 5.2 (the .cobaltlog lines);
    // src/clients/POSIX/qsub.py `logjob`, src/lib/Components/cqm.py `_sm_running__task_end`.
    let c = fast();
    let job = script(
        &c,
        "job.sh",
        "#!/bin/sh\necho \"out $0 $# $1 $2\"\npwd\necho err >&2\nexit 3\n",
    );
    let (out, err, code) = c.run("qsub", &["-t", "10", "-n", "1", &job, "a b", "c"]);
    assert_eq!((out.as_str(), err.as_str(), code), ("1\n", "", 0));
    let log = wait_file_contains(&c.path("1.cobaltlog"), "exit code of");
    let work = c.work.display().to_string();
    assert_eq!(
        norm(&log),
        format!(
            "Jobid: 1\nqsub -t 10 -n 1 job.sh a b c\n<TS> submitted with cwd set to: {work}\n<TS> Info: task completed normally with an exit code of 3; initiating job cleanup and removal\n"
        )
    );
    assert_eq!(
        read(&c.path("1.output")),
        format!("out {work}/job.sh 2 a b c\n{work}\n")
    );
    assert_eq!(read(&c.path("1.error")), "err\n");
    // A job that has ended has left the queue at once, whatever min_job_age says.
    assert_eq!(c.run("qstat", &["1"]), (String::new(), String::new(), 1));
}

#[test]
fn exit_codes_are_wexitstatus_or_128_plus_the_signal_and_output_files_are_appended() {
    // reference 5.2 / 6 (exit code value); src/lib/Components/base_forker.py `_wait`;
    // src/lib/Components/pg_forker.py `_open_output` opens the files with "a".
    let c = fast();
    let job = script(&c, "sig.sh", "#!/bin/sh\necho before\nkill -TERM $$\n");
    let id = qsub(&c, &["-t", "10", "-n", "1", "-o", "same.out", &job]);
    let log = wait_file_contains(&c.path(&format!("{id}.cobaltlog")), "exit code of");
    assert!(
        log.ends_with(
            "Info: task completed normally with an exit code of 143; initiating job cleanup and removal\n"
        ),
        "{log}"
    );
    let id2 = qsub(&c, &["-t", "10", "-n", "1", "-o", "same.out", &job]);
    wait_file_contains(&c.path(&format!("{id2}.cobaltlog")), "exit code of 143");
    assert_eq!(read(&c.path("same.out")), "before\nbefore\n");
}

#[test]
fn cobalt_directives_after_the_shebang_are_options_and_the_command_line_wins() {
    // reference 5.1 and man/POSIX/qsub.1 (SCRIPT JOB DIRECTIVES); src/clients/POSIX/qsub.py
    // `validate_args` puts `--mode script` and the directive words before the command line.
    let c = fast();
    let job = script(
        &c,
        "dir.sh",
        "#!/bin/sh\n#COBALT -t 10\n#COBALT -n 1 --jobname build\n# ordinary comment\n#COBALT -q nope\nexit 0\n",
    );
    let id = qsub(&c, &["-t", "20", "-h", &job]);
    let log = read(&c.path(&format!("{id}.cobaltlog")));
    assert_eq!(
        log.lines().nth(1),
        Some("qsub --mode script -t 10 -n 1 --jobname build -t 20 -h dir.sh")
    );
    let (out, _, code) = c.run(
        "qstat",
        &[
            "-l",
            "--header",
            "JobID:JobName:WallTime:Nodes:Queue:State",
            &id.to_string(),
        ],
    );
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!(
            "JobID: {id}\n    JobName  : build\n    WallTime : 00:20:00\n    Nodes    : 1\n    Queue    : default\n    State    : user_hold\n\n"
        )
    );
    // The directives alone are enough options.
    let only = script(&c, "only.sh", "#!/bin/sh\n#COBALT -t 5 -n 1\ntrue\n");
    qsub(&c, &[&only]);
}

#[test]
fn missing_options_and_executables_are_refused_with_qsubs_words() {
    // reference 5.1 (required -t and -n, usage without options); src/clients/POSIX/qsub.py
    // `validate_args`, `validate_options`; optparse's `print_usage` goes to stdout.
    let c = fast();
    let job = script(&c, "job.sh", "#!/bin/sh\ntrue\n");
    let usage = "Usage: qsub --help\nUsage: qsub [options] <executable> [<excutable options>]\n\nRefer to man pages for JOBID EXPANSION and SCRIPT JOB DIRECTIVES.\n\n\n";
    assert_eq!(
        c.run("qsub", &[]),
        (
            usage.to_string(),
            "No executable or script specified\n\n".to_string(),
            1
        )
    );
    assert_eq!(
        c.run("qsub", &[&job]),
        (
            usage.to_string(),
            "No required options provided\n\n".to_string(),
            1
        )
    );
    assert_eq!(
        c.run("qsub", &["-n", "1", &job]),
        (String::new(), "'time' not provided\n".to_string(), 1)
    );
    assert_eq!(
        c.run("qsub", &["-t", "5", &job]),
        (String::new(), "'nodecount' not provided\n".to_string(), 1)
    );
    let work = c.work.display().to_string();
    assert_eq!(
        c.run("qsub", &["-t", "5", "-n", "1", "nothere.sh"]),
        (
            String::new(),
            format!("command {work}/nothere.sh not found, or is not a file\n"),
            1
        )
    );
    std::fs::write(c.path("plain.sh"), "#!/bin/sh\n").unwrap();
    assert_eq!(
        c.run("qsub", &["-t", "5", "-n", "1", "plain.sh"]),
        (
            String::new(),
            format!("command {work}/plain.sh is not executable\n"),
            1
        )
    );
    // optparse: an unknown option or a bad integer prints the usage on stderr, exit 2.
    let (out, err, code) = c.run("qsub", &["-x", "-t", "5", &job]);
    assert_eq!(
        (out.as_str(), code),
        ("", 2),
        "src/lib/arg_parser.py uses optparse"
    );
    assert_eq!(err, format!("{usage}qsub: error: no such option: -x\n"));
    let (_, err, code) = c.run("qsub", &["-t", "5", "-n", "two", &job]);
    assert_eq!(code, 2);
    assert!(
        err.ends_with("qsub: error: option -n: invalid integer value: 'two'\n"),
        "{err}"
    );
    // src/lib/client_utils.py `cb_time`, `cb_nodes`, `cb_env`.
    assert_eq!(
        c.run("qsub", &["-t", "1:2:3:4:5", "-n", "1", &job]),
        (String::new(), "invalid time specification: time may be specified as minutes, HH:MM, HH:MM:SS, or DD:HH:MM:SS\n".to_string(), 1)
    );
    assert_eq!(
        c.run("qsub", &["-t", "5", "-n", "0", &job]),
        (
            String::new(),
            "node count out of realistic range\n".to_string(),
            1
        )
    );
    assert_eq!(
        c.run("qsub", &["-t", "5", "-n", "1", "--env", "NOVALUE", &job]),
        (
            String::new(),
            "Improperly formatted argument to env : ['NOVALUE']\n".to_string(),
            1
        )
    );
    assert_eq!(
        c.run("qsub", &["-t", "5", "-n", "1", "--proccount", "0", &job]),
        (
            String::new(),
            "--proccount is 0 which is greater <= to zero\n".to_string(),
            1
        )
    );
    // Nothing was queued by any of these.
    assert_eq!(c.run("qstat", &[]).0.lines().count(), 2);
    // Spaces in the executable's name are dropped (qsub.py `validate_args`).
    let id = qsub(&c, &["-t", "5", "-n", "1", "-h", "jo b.sh"]);
    let (out, _, _) = c.run(
        "qstat",
        &["-l", "--header", "JobID:Command", &id.to_string()],
    );
    assert_eq!(out, format!("JobID: {id}\n    Command : {work}/job.sh\n\n"));
}

#[test]
fn the_queue_manager_and_the_system_refuse_jobs_as_xml_rpc_faults() {
    // src/lib/Components/cluster_base_system.py `validate_job` (JobValidationError, fault
    // 1004, through client_utils.component_call); src/lib/Components/cqm.py
    // `QueueManager.add_jobs` and `Restriction.maxwalltime` (QueueError, fault 1001, logged
    // by qsub.py `run_job`).
    let c = fast();
    let job = script(&c, "job.sh", "#!/bin/sh\ntrue\n");
    let refused = |args: &[&str]| {
        let mut all = args.to_vec();
        all.push(&job);
        let (out, err, code) = c.run("qsub", &all);
        assert_eq!((out.as_str(), code), ("", 1), "{args:?}");
        err
    };
    assert_eq!(
        refused(&["-t", "5", "-n", "3"]),
        "component error: XMLRPC failure <Fault 1004: 'Node count out of realistic range'> in system.validate_job\n\n"
    );
    assert_eq!(
        refused(&["-t", "4", "-n", "1"]),
        "component error: XMLRPC failure <Fault 1004: 'Walltime less than minimum'> in system.validate_job\n\n"
    );
    assert_eq!(
        refused(&["-t", "5", "-n", "1", "-q", "nope"]),
        "<Fault 1001: \"trying to add job to non-existent queue 'nope'\">\n"
    );
    assert_eq!(
        refused(&["-t", "1:01:00", "-n", "1"]),
        "<Fault 1001: \"Walltime greater than the 'default' queue max walltime of 01:00:00\\n\">\n"
    );
    assert_eq!(
        refused(&["-t", "0", "-n", "1", "-q", "debug-flat"]),
        "<Fault 1001: 'No Max Walltime default or for queue \"debug-flat\" defined. Please contact system administrator'>\n"
    );
    // 0 is the queue's maximum walltime where it has one (man/POSIX/qsub.1 `-t`).
    let id = qsub(&c, &["-t", "0", "-n", "1", "-h", &job]);
    let (out, _, _) = c.run(
        "qstat",
        &["-l", "--header", "JobID:WallTime", &id.to_string()],
    );
    assert_eq!(out, format!("JobID: {id}\n    WallTime : 00:00:00\n\n"));
}

#[test]
fn injected_submission_failures_are_queue_manager_faults() {
    // brief: `mock-cluster inject submit-errors N --message TEXT`; the text is the queue
    // manager's fault as qsub.py `run_job` logs it.
    let c = fast();
    let job = script(&c, "job.sh", "#!/bin/sh\ntrue\n");
    // The first command starts the cluster.
    assert_eq!(c.run("qstat", &[]).2, 0);
    c.inject(&[
        "submit-errors",
        "1",
        "--message",
        "queue-manager is busy; try again",
    ]);
    assert_eq!(
        c.run("qsub", &["-t", "5", "-n", "1", &job]),
        (
            String::new(),
            "<Fault 1001: 'queue-manager is busy; try again'>\n".to_string(),
            1
        )
    );
    assert!(!c.path("1.cobaltlog").exists());
    assert_eq!(qsub(&c, &["-t", "5", "-n", "1", &job]), 1);
}

#[test]
fn output_prefix_and_paths_expand_the_job_id() {
    // reference 5.1 (`-O P` gives P.output, P.error, P.cobaltlog; `$jobid`/`$COBALT_JOBID`
    // expansion); src/clients/POSIX/qsub.py `update_outputprefix`, cqm.py `JobList.q_add`.
    let c = fast();
    std::fs::create_dir(c.path("logs")).unwrap();
    let job = script(&c, "job.sh", "#!/bin/sh\necho out; echo err >&2\n");
    let id = qsub(&c, &["-t", "5", "-n", "1", "-O", "logs/run-$jobid", &job]);
    let log = wait_file_contains(
        &c.path(&format!("logs/run-{id}.cobaltlog")),
        "exit code of 0",
    );
    assert!(log.starts_with(&format!("Jobid: {id}\n")));
    assert_eq!(read(&c.path(&format!("logs/run-{id}.output"))), "out\n");
    assert_eq!(read(&c.path(&format!("logs/run-{id}.error"))), "err\n");

    let id = qsub(
        &c,
        &[
            "-t",
            "5",
            "-n",
            "1",
            "-O",
            "pre",
            "-e",
            "e-$COBALT_JOBID.txt",
            "--debuglog",
            "100%-$jobid.log",
            &job,
        ],
    );
    wait_file_contains(&c.path(&format!("100%-{id}.log")), "exit code of 0");
    assert_eq!(read(&c.path("pre.output")), "out\n");
    assert_eq!(read(&c.path(&format!("e-{id}.txt"))), "err\n");
    assert!(!c.path("pre.cobaltlog").exists());
    // A missing directory is refused before anything is queued (qsub.py `update_paths`).
    let work = c.work.display().to_string();
    assert_eq!(
        c.run("qsub", &["-t", "5", "-n", "1", "-o", "nodir/x.out", &job]),
        (
            String::new(),
            format!("directory {work}/nodir/x.out does not exist\n"),
            1
        )
    );
}

#[test]
fn cwd_moves_the_job_and_its_default_files() {
    // reference 5.1 (the job runs in `--cwd`); cqm.py uses `outputdir` (the cwd) for the
    // default files and as the job's directory.
    let c = fast();
    std::fs::create_dir(c.path("sub")).unwrap();
    script(&c, "job.sh", "#!/bin/sh\npwd\n");
    // A relative executable is looked for in that directory (qsub.py `validate_args`).
    let id = qsub(&c, &["-t", "5", "-n", "1", "--cwd", "sub", "../job.sh"]);
    let sub = c.path("sub");
    let log = wait_file_contains(&sub.join(format!("{id}.cobaltlog")), "exit code of 0");
    assert!(log.contains(&format!("submitted with cwd set to: {}\n", sub.display())));
    assert_eq!(
        read(&sub.join(format!("{id}.output"))),
        format!("{}\n", sub.display())
    );
    assert_eq!(
        c.run(
            "qsub",
            &["-t", "5", "-n", "1", "--cwd", "sub", "-e", "x", "job.sh"]
        ),
        (
            String::new(),
            format!(
                "command {}/job.sh not found, or is not a file\n",
                sub.display()
            ),
            1
        )
    );
}

#[test]
fn the_job_gets_cobalts_variables_the_env_pairs_and_a_login_environment() {
    // reference 5.5; src/lib/Components/user_script_forker.py (HOME USER LOGNAME SHELL,
    // COBALT_PARTNAME/PARTSIZE/JOBSIZE), pg_forker.py (COBALT_JOBID, STARTTIME, ENDTIME),
    // cobalt-launcher.py / cluster_system.py (COBALT_NODEFILE), client_utils.py `cb_env`
    // (`\:` and `\=`), cqm.py `q_add` (`$jobid` in values), qsub.py `env_union`.
    let c = fast();
    let job = script(&c, "env.sh", "#!/bin/sh\nenv\n");
    let (out, err, code) = c
        .cmd("qsub")
        .args([
            "-t",
            "10",
            "-n",
            "2",
            "--proccount",
            "8",
            "--env",
            "A=B:C=x\\=1\\:y:RUN=run-$jobid",
            "--env",
            "D=/p:/q",
            &job,
        ])
        .env("CALLER_ONLY", "1")
        .output()
        .map(|o| {
            (
                String::from_utf8_lossy(&o.stdout).into_owned(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
                o.status.code(),
            )
        })
        .unwrap();
    assert_eq!((out.as_str(), err.as_str(), code), ("1\n", "", Some(0)));
    wait_file_contains(&c.path("1.cobaltlog"), "exit code of 0");
    let env = read(&c.path("1.output"));
    let has = |line: &str| env.lines().any(|l| l == line);
    for line in [
        "COBALT_JOBID=1",
        "COBALT_NODEFILE=/var/tmp/cobalt.1",
        "COBALT_PARTNAME=nid0001",
        "COBALT_PARTSIZE=2",
        "COBALT_JOBSIZE=8",
        "A=B",
        "C=x=1:y",
        "RUN=run-1",
        "D=/p:/q",
        &format!("USER={}", me()),
        &format!("LOGNAME={}", me()),
    ] {
        assert!(has(line), "{line} missing from\n{env}");
    }
    let get = |k: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or("")
            .to_string()
    };
    let start: u64 = get("COBALT_STARTTIME").parse().unwrap();
    let end: u64 = get("COBALT_ENDTIME").parse().unwrap();
    assert_eq!(end - start, 600);
    assert!(get("HOME").starts_with('/'));
    assert!(!env.contains("CALLER_ONLY"), "qsub passes only --env pairs");
    // Both --env options were merged into one before the job was queued.
    let log = read(&c.path("1.cobaltlog"));
    assert_eq!(
        log.lines().nth(1),
        Some("qsub -t 10 -n 2 --proccount 8 --env A=B:C=x\\=1\\:y:RUN=run-$jobid:D=/p:/q env.sh")
    );
}

#[test]
fn qstat_tables_show_queued_held_and_running_jobs() {
    // reference 5.3; src/lib/client_utils.py `header_info`, src/lib/Util.py `print_tabular`,
    // `print_vertical`, src/clients/POSIX/qstat.py (walltime `HH:MM:00`, Location `None`
    // until the job runs, sorted by job id), cqm.py `__get_job_state`.
    let c = steady();
    let sleeper = script(&c, "sleep.sh", "#!/bin/sh\nsleep 300\n");
    let running = qsub(&c, &["-t", "60", "-n", "2", &sleeper]);
    wait_state(&c, running, "running");
    let held = qsub(&c, &["-t", "30", "-n", "1", "-h", &sleeper]);
    let queued = qsub(
        &c,
        &["-t", "1:05:00", "-n", "1", "-q", "debug-flat", &sleeper],
    );
    let u = me();
    let w = u.len().max(4);
    let (out, err, code) = c.run("qstat", &[]);
    assert_eq!((err.as_str(), code), ("", 0));
    let line = |cells: [&str; 6]| {
        let widths = [5, w, 8, 5, 9, 14];
        let mut s = String::new();
        for (cell, width) in cells.iter().zip(widths) {
            s.push_str(&format!("{cell:<width$}  "));
        }
        s.push('\n');
        s
    };
    let mut expected = line(["JobID", "User", "WallTime", "Nodes", "State", "Location"]);
    expected.push_str(&"=".repeat(5 + w + 8 + 5 + 9 + 14 + 12));
    expected.push('\n');
    expected.push_str(&line([
        &running.to_string(),
        &u,
        "01:00:00",
        "2",
        "running",
        "nid[0001-0002]",
    ]));
    expected.push_str(&line([
        &held.to_string(),
        &u,
        "00:30:00",
        "1",
        "user_hold",
        "None",
    ]));
    expected.push_str(&line([
        &queued.to_string(),
        &u,
        "01:05:00",
        "1",
        "queued",
        "None",
    ]));
    assert_eq!(out, expected);

    // -f: the full header; a queue name selects its jobs.
    let (out, _, code) = c.run("qstat", &["-f", "debug-flat"]);
    assert_eq!(code, 0);
    let mut lines = out.lines();
    let head: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    assert_eq!(
        head,
        [
            "JobID",
            "JobName",
            "User",
            "WallTime",
            "QueuedTime",
            "RunTime",
            "TimeRemaining",
            "Nodes",
            "State",
            "Location",
            "Mode",
            "Procs",
            "Preemptable",
            "Queue",
            "StartTime",
            "Index"
        ]
    );
    lines.next();
    let row: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    assert_eq!(row.len(), 16, "{out}");
    assert_eq!(
        (
            row[0], row[1], row[5], row[6], row[8], row[10], row[11], row[13], row[14], row[15]
        ),
        (
            queued.to_string().as_str(),
            "N/A",
            "N/A",
            "N/A",
            "queued",
            "script",
            "1",
            "debug-flat",
            "N/A",
            "None"
        )
    );

    // --header and the short state column `S`; QSTAT_HEADER does the same.
    let (out, _, _) = c.run(
        "qstat",
        &[
            "--header",
            "JobID:short_state",
            &running.to_string(),
            &held.to_string(),
        ],
    );
    assert_eq!(
        out,
        format!("JobID  S  \n==========\n{running:<5}  R  \n{held:<5}  H  \n")
    );
    let out = c
        .cmd("qstat")
        .arg(queued.to_string())
        .env("QSTAT_HEADER", "JobID:Queue")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("JobID  Queue       \n===================\n{queued:<5}  debug-flat  \n")
    );
    // -l with the running job: the vertical form, RunTime and StartTime filled in.
    let (out, _, _) = c.run("qstat", &["-lf", &running.to_string()]);
    // Headers are padded to the longest, `ION_KernelOptions`, plus one.
    assert!(
        out.starts_with(&format!("JobID: {running}\n    {:<18}: N/A\n", "JobName")),
        "{out}"
    );
    assert!(
        out.contains(&format!("    {:<18}: nid[0001-0002]\n", "Location")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "    {:<18}: {}\n",
            "Command",
            c.path("sleep.sh").display()
        )),
        "{out}"
    );
    assert!(out.contains(" +0000 (UTC)\n"), "{out}");
    for id in [running, held, queued] {
        c.run("qdel", &[&id.to_string()]);
    }
}

#[test]
fn qstat_argument_errors_and_jobs_that_are_gone() {
    // reference 5.3 (a job id no longer in the queue: no output, exit 1; a non-integer that
    // is no queue: `<arg> is not a valid jobid or queue name`); src/clients/POSIX/qstat.py
    // `get_output_for_jobs`; optparse stops at the first operand.
    let c = fast();
    assert_eq!(
        c.run("qstat", &["foo"]),
        (
            String::new(),
            "foo is not a valid jobid or queue name\n".to_string(),
            1
        )
    );
    assert_eq!(
        c.run("qstat", &["12", "-f"]),
        (
            String::new(),
            "-f is not a valid jobid or queue name\n".to_string(),
            1
        )
    );
    assert_eq!(c.run("qstat", &["99"]), (String::new(), String::new(), 1));
    assert_eq!(
        c.run("qstat", &["default"]),
        (String::new(), String::new(), 1)
    );
    // An empty queue without arguments: the header and the rule only.
    assert_eq!(
        c.run("qstat", &[]),
        (
            "JobID  User  WallTime  Nodes  State  Location  \n===============================================\n".to_string(),
            String::new(),
            0
        )
    );
    assert_eq!(c.run("qstat", &["-l"]), (String::new(), String::new(), 0));
}

#[test]
fn a_status_timeout_is_an_error_never_a_finished_job() {
    // Choice where the reference is silent: the queue manager not answering is reported
    // like src/lib/client_utils.py `component_call` reports an exception (stderr, exit 1),
    // so it differs from "not in the queue" (nothing at all, exit 1) by its stderr.
    let c = steady();
    let sleeper = script(&c, "sleep.sh", "#!/bin/sh\nsleep 300\n");
    let id = qsub(&c, &["-t", "60", "-n", "1", &sleeper]);
    wait_state(&c, id, "running");
    c.inject(&["status-timeout", "on"]);
    let (out, err, code) = c.run("qstat", &[&id.to_string()]);
    assert_eq!(
        (out.as_str(), err.as_str(), code),
        (
            "",
            "component error: Following exception occurred while trying to execute queue-manager.get_queues: timed out\n\n",
            1
        )
    );
    c.inject(&["status-timeout", "off"]);
    assert_eq!(state(&c, id), "running");
    c.run("qdel", &[&id.to_string()]);
}

#[test]
fn walltime_ends_the_job_with_the_termination_line_and_no_exit_code() {
    // reference 5.2 (killed jobs have no exit-code line); cqm.py `_sm_check_job_timers`.
    let c = fast();
    let sleeper = script(&c, "sleep.sh", "#!/bin/sh\necho started\nsleep 300\n");
    let id = qsub(&c, &["-t", "5", "-n", "1", &sleeper]);
    wait_gone(&c, id);
    let log = read(&c.path(&format!("{id}.cobaltlog")));
    let lines: Vec<String> = norm(&log).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 4, "{log}");
    assert_eq!(
        lines[3],
        "<TS> Info: maximum execution time exceeded; initiating job termination"
    );
    assert!(!log.contains("exit code of"));
    assert_eq!(read(&c.path(&format!("{id}.output"))), "started\n");
}

#[test]
fn qdel_of_a_queued_job_removes_it_from_the_queue() {
    // reference 5.4 (output `      Deleted Jobs` and the table), 5.2 (`user delete
    // requested; removing job from the queue`); src/clients/POSIX/qdel.py; cqm.py
    // `_sm_ready__kill`, `_sm_hold__kill`.
    let c = steady();
    let sleeper = script(&c, "sleep.sh", "#!/bin/sh\nsleep 300\n");
    let filler = qsub(&c, &["-t", "60", "-n", "2", &sleeper]);
    wait_state(&c, filler, "running");
    let waiting = qsub(&c, &["-t", "60", "-n", "1", &sleeper]);
    assert_eq!(state(&c, waiting), "queued");
    let u = me();
    let w = u.len().max(4);
    let (out, err, code) = c.run("qdel", &[&waiting.to_string()]);
    assert_eq!((err.as_str(), code), ("", 0));
    assert_eq!(
        out,
        format!(
            "      Deleted Jobs\nJobID  {:<w$}  \n{}\n{waiting:<5}  {u:<w$}  \n",
            "User",
            "=".repeat(5 + w + 4)
        )
    );
    let log = read(&c.path(&format!("{waiting}.cobaltlog")));
    assert_eq!(
        norm(&log).lines().last(),
        Some("<TS> Info: user delete requested; removing job from the queue")
    );
    assert!(!c.path(&format!("{waiting}.output")).exists());
    assert_eq!(
        c.run("qstat", &[&waiting.to_string()]),
        (String::new(), String::new(), 1)
    );
    c.run("qdel", &[&filler.to_string()]);
}

#[test]
fn qdel_of_a_running_job_sends_sigterm_and_logs_the_user_and_no_exit_code() {
    // reference 5.4 (SIGTERM, then a forced kill; the job leaves qstat), 5.2 (`user delete
    // requested with signal SIGTERM by user <u>`); cqm.py `_sm_running__kill`,
    // `_sm_killing__kill` (a second qdel while the job is being killed).
    // Three real seconds between SIGTERM and SIGKILL.
    let c = TestCluster::with_config(&cluster_toml(60.0, 180));
    let stubborn = script(
        &c,
        "stubborn.sh",
        "#!/bin/sh\ntrap 'echo got TERM' TERM\necho started\nwhile :; do sleep 1; done\n",
    );
    let id = qsub(&c, &["-t", "60", "-n", "1", &stubborn]);
    wait_file_contains(&c.path(&format!("{id}.output")), "started");
    let (out, _, code) = c.run("qdel", &[&id.to_string()]);
    assert_eq!(code, 0);
    assert!(out.starts_with("      Deleted Jobs\n"), "{out}");
    // The script ignores SIGTERM: it is being killed until kill_wait has passed.
    assert_eq!(state(&c, id), "killing");
    let (out, _, code) = c.run("qdel", &[&id.to_string()]);
    assert_eq!(code, 0);
    assert!(out.contains(&format!("\n{id:<5}  {}", me())), "{out}");
    wait_gone(&c, id);
    let log = read(&c.path(&format!("{id}.cobaltlog")));
    let lines: Vec<String> = norm(&log).lines().map(str::to_string).collect();
    assert_eq!(
        lines[3..],
        [
            format!(
                "<TS> Info: user delete requested with signal SIGTERM by user {}",
                me()
            ),
            "<TS> Info: user delete request already pending with signal SIGTERM; ignoring user delete request".to_string(),
        ]
    );
    assert_eq!(
        read(&c.path(&format!("{id}.output"))),
        "started\ngot TERM\n"
    );
}

#[test]
fn qdel_of_nothing_prints_nothing_and_bad_ids_are_refused() {
    // reference 5.4 (nothing matched: nothing printed, exit 0); src/lib/client_utils.py
    // `validate_jobid_args`, `get_jobids`.
    let c = fast();
    assert_eq!(c.run("qdel", &["4242"]), (String::new(), String::new(), 0));
    assert_eq!(
        c.run("qdel", &["1", "x1"]),
        (
            String::new(),
            "jobid must be an integer: x1\n".to_string(),
            1
        )
    );
    assert_eq!(
        c.run("qdel", &[]),
        (
            "Usage: qdel [options] <jobid1> [ ... <jobidN>]\n\n".to_string(),
            "No Jobid(s) given\n\n".to_string(),
            1
        )
    );
    // A finished job is no longer in the queue either.
    let job = script(&c, "job.sh", "#!/bin/sh\ntrue\n");
    let id = qsub(&c, &["-t", "5", "-n", "1", &job]);
    wait_file_contains(&c.path(&format!("{id}.cobaltlog")), "exit code of 0");
    wait_gone(&c, id);
    assert_eq!(
        c.run("qdel", &[&id.to_string()]),
        (String::new(), String::new(), 0)
    );
}

#[test]
fn an_executable_that_is_gone_when_the_job_starts_fails_with_127() {
    // reference 5.1 (exec failure gives 126/127); src/clients/cobalt-launcher.py prints
    // `str(OSError)` and exits 127 for ENOENT.
    let c = steady();
    let sleeper = script(&c, "sleep.sh", "#!/bin/sh\nsleep 300\n");
    let filler = qsub(&c, &["-t", "60", "-n", "2", &sleeper]);
    wait_state(&c, filler, "running");
    let doomed = script(&c, "doomed.sh", "#!/bin/sh\necho never\n");
    let id = qsub(&c, &["-t", "10", "-n", "1", &doomed]);
    std::fs::remove_file(c.path(&doomed)).unwrap();
    c.run("qdel", &[&filler.to_string()]);
    let log = wait_file_contains(&c.path(&format!("{id}.cobaltlog")), "exit code of");
    assert!(log.contains("exit code of 127;"), "{log}");
    assert_eq!(
        read(&c.path(&format!("{id}.error"))),
        "[Errno 2] No such file or directory\n"
    );
}

#[test]
fn without_a_default_queue_the_clusters_default_partition_takes_the_job() {
    // Choice where the reference is silent: qsub asks for the queue `default`
    // (qsub.py `def_spec['queue']`); a cluster without such a partition gets the job in its
    // default partition.
    let toml = cluster_toml(600.0, 2).replace("name = \"default\"", "name = \"prod\"");
    let c = TestCluster::with_config(&toml);
    let job = script(&c, "job.sh", "#!/bin/sh\ntrue\n");
    let id = qsub(&c, &["-t", "5", "-n", "1", "-h", &job]);
    let (out, _, _) = c.run("qstat", &["-l", "--header", "JobID:Queue", &id.to_string()]);
    assert_eq!(out, format!("JobID: {id}\n    Queue : prod\n\n"));
}

#[test]
fn qstat_aligns_ids_filters_by_user_sorts_and_lists_queues() {
    // src/clients/POSIX/qstat.py (`jobidfmt` right-aligns the ids, `-u`, `--sort`,
    // `--reverse`, `-Q`), src/lib/client_utils.py `header_info` (`QSTAT_HEADER_FULL` with
    // `-f`); cqm.py `Job.__init__` (the name from `-o`).
    let toml = cluster_toml(60.0, 30).replace("flavor", "first_job_id = 9\nflavor");
    let c = TestCluster::with_config(&toml);
    let job = script(&c, "job.sh", "#!/bin/sh\ntrue\n");
    let nine = qsub(
        &c,
        &[
            "-t",
            "5",
            "-n",
            "2",
            "-h",
            "-o",
            "build-$jobid.output",
            &job,
        ],
    );
    let ten = qsub(&c, &["-t", "6", "-n", "1", "-h", "-q", "debug-flat", &job]);
    assert_eq!((nine, ten), (9, 10));
    let (out, _, _) = c.run("qstat", &["--header", "JobID:JobName:Nodes"]);
    assert_eq!(
        out,
        "JobID  JobName  Nodes  \n=======================\n 9     build-9  2      \n10     N/A      1      \n"
    );
    // --sort takes shown columns only (case-insensitive); otherwise the first column.
    let (out, _, _) = c.run("qstat", &["--header", "JobID:Nodes", "--sort", "nodes"]);
    assert_eq!(
        out,
        "JobID  Nodes  \n==============\n10     1      \n 9     2      \n"
    );
    let (out, _, _) = c.run(
        "qstat",
        &["--header", "JobID:WallTime", "--sort", "Nodes", "--reverse"],
    );
    assert_eq!(
        out,
        "JobID  WallTime  \n=================\n10     00:06:00  \n 9     00:05:00  \n"
    );
    // Another user's jobs only: none.
    assert_eq!(
        c.run("qstat", &["-u", "nobody-here", "--header", "JobID"]),
        ("JobID  \n=======\n".to_string(), String::new(), 0)
    );
    assert_eq!(
        c.run("qstat", &["-u", "nobody-here", "9"]),
        (String::new(), String::new(), 1)
    );
    let out = c
        .cmd("qstat")
        .args(["-f", "10"])
        .env("QSTAT_HEADER_FULL", "JobID:Procs:Queue")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "JobID  Procs  Queue       \n==========================\n10     1      debug-flat  \n"
    );
    // -Q: the partitions as queues.
    let (out, _, code) = c.run("qstat", &["-Q"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "Name        Users  Groups  MinTime  MaxTime   MaxRunning  MaxQueued  MaxUserNodes  MaxNodeHours  TotalNodes  State    \n\
         ======================================================================================================================\n\
         debug-flat  *      *       None     None      None        None       None          None          None        running  \n\
         default     *      *       None     01:00:00  None        None       None          None          None        running  \n"
    );
    // Jobs submitted with the Slurm commands are in the same queue.
    let slurm = c.submit(&["-H", "--wrap", "true"]);
    assert_eq!(state(&c, slurm), "user_hold");
}

#[test]
fn draining_and_dead_queues_refuse_jobs() {
    // src/lib/Components/cqm.py `Queue.can_queue` ("The '%s' queue is %s"); a partition in
    // state DRAIN is a draining queue, INACTIVE a dead one.
    let toml = cluster_toml(600.0, 2).replace(
        "max_time = \"UNLIMITED\"",
        "max_time = \"UNLIMITED\"\nstate = \"DRAIN\"",
    );
    let c = TestCluster::with_config(&toml);
    let job = script(&c, "job.sh", "#!/bin/sh\ntrue\n");
    assert_eq!(
        c.run("qsub", &["-t", "5", "-n", "1", "-q", "debug-flat", &job]),
        (
            String::new(),
            "<Fault 1001: \"The 'debug-flat' queue is draining\">\n".to_string(),
            1
        )
    );
    let toml = cluster_toml(600.0, 2).replace(
        "max_time = \"UNLIMITED\"",
        "max_time = \"UNLIMITED\"\nstate = \"INACTIVE\"",
    );
    let c = TestCluster::with_config(&toml);
    let job = script(&c, "job.sh", "#!/bin/sh\ntrue\n");
    assert_eq!(
        c.run("qsub", &["-t", "5", "-n", "1", "-q", "debug-flat", &job])
            .1,
        "<Fault 1001: \"The 'debug-flat' queue is dead\">\n"
    );
}

#[test]
fn a_job_that_cannot_start_properly_fails_as_the_launcher_says() {
    // reference 5.1 (exec failure gives 126/127); src/clients/cobalt-launcher.py (`os.chdir`
    // raising: a traceback, exit 1; `execvpe` failing: `str(OSError)`, 126 for EACCES), cqm.py
    // `execution failure` (here: an output file that cannot be opened).
    let c = steady();
    let sleeper = script(&c, "sleep.sh", "#!/bin/sh\nsleep 300\n");
    let filler = qsub(&c, &["-t", "60", "-n", "2", &sleeper]);
    wait_state(&c, filler, "running");
    std::fs::create_dir(c.path("gone")).unwrap();
    std::fs::create_dir(c.path("outs")).unwrap();
    let job = script(&c, "job.sh", "#!/bin/sh\necho ran\n");
    let locked = script(&c, "locked.sh", "#!/bin/sh\necho ran\n");
    let work = c.work.display().to_string();
    let chdir = qsub(
        &c,
        &[
            "-t",
            "5",
            "-n",
            "1",
            "--cwd",
            "gone",
            "-O",
            &format!("{work}/cd"),
            "../job.sh",
        ],
    );
    let noexec = qsub(&c, &["-t", "5", "-n", "1", "-O", "x", &locked]);
    let noout = qsub(
        &c,
        &[
            "-t", "5", "-n", "1", "-o", "outs/o", "-e", "outs/e", "-O", "y", &job,
        ],
    );
    std::fs::remove_dir(c.path("gone")).unwrap();
    std::fs::remove_dir(c.path("outs")).unwrap();
    std::fs::set_permissions(c.path(&locked), std::fs::Permissions::from_mode(0o644)).unwrap();
    c.run("qdel", &[&filler.to_string()]);
    for id in [chdir, noexec, noout] {
        wait_gone(&c, id);
    }
    let last = |file: &str| {
        norm(&read(&c.path(file)))
            .lines()
            .last()
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(
        last("cd.cobaltlog"),
        "<TS> Info: task completed normally with an exit code of 1; initiating job cleanup and removal"
    );
    assert_eq!(
        read(&c.path("cd.error")),
        format!(
            "Traceback (most recent call last):\n  File \"/usr/bin/cobalt-launcher.py\", line 69, in <module>\n    main()\n  File \"/usr/bin/cobalt-launcher.py\", line 47, in main\n    os.chdir(opt.cwd)\nOSError: [Errno 2] No such file or directory: '{work}/gone'\n"
        )
    );
    assert_eq!(read(&c.path("cd.output")), "");
    assert_eq!(
        last("x.cobaltlog"),
        "<TS> Info: task completed normally with an exit code of 126; initiating job cleanup and removal"
    );
    assert_eq!(read(&c.path("x.error")), "[Errno 13] Permission denied\n");
    assert_eq!(
        last("y.cobaltlog"),
        "<TS> ERROR: execution failure; initiating job cleanup and removal"
    );
}

#[test]
fn a_qdel_during_the_walltime_kill_is_noted_and_ignored() {
    // src/lib/Components/cqm.py `_sm_killing__kill` ("job is already being terminated for
    // exceeding a time limit; ignoring user delete request").
    let c = TestCluster::with_config(&cluster_toml(600.0, 1800));
    let stubborn = script(
        &c,
        "stubborn.sh",
        "#!/bin/sh\ntrap 'echo got TERM' TERM\nwhile :; do sleep 1; done\n",
    );
    let id = qsub(&c, &["-t", "5", "-n", "1", &stubborn]);
    wait_state(&c, id, "killing");
    let (out, _, code) = c.run("qdel", &[&id.to_string()]);
    assert_eq!(code, 0);
    assert!(out.starts_with("      Deleted Jobs\n"), "{out}");
    wait_gone(&c, id);
    let log = norm(&read(&c.path(&format!("{id}.cobaltlog"))));
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(
        lines[3..],
        [
            "<TS> Info: maximum execution time exceeded; initiating job termination",
            "<TS> Info: job is already being terminated for exceeding a time limit; ignoring user delete request",
        ]
    );
}

#[test]
fn an_unreachable_cluster_is_a_component_error() {
    // Choice modelled on src/lib/client_utils.py `component_call` (ComponentLookupError).
    let c = fast();
    assert_eq!(c.run("qstat", &[]).2, 0);
    assert!(c.admin(&["stop"]).status.success());
    let out = c
        .cmd("qstat")
        .arg("1")
        .env("MOCK_CLUSTER_NO_AUTOSTART", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!((out.status.code(), out.stdout.is_empty()), (Some(1), true));
    assert!(
        err.ends_with("component error: Failed to connect to queue-manager: queue-manager\n\n"),
        "{err}"
    );
    assert!(
        err.starts_with("qstat: error: mock-cluster daemon not reachable at "),
        "{err}"
    );
}

#[test]
fn a_failed_node_ends_its_job_with_the_exit_code_of_sigkill() {
    // Choice where the reference is silent: the processes die by SIGKILL and the queue
    // manager writes its usual line with 128 + 9 (src/lib/Components/base_forker.py `_wait`).
    let c = steady();
    let sleeper = script(&c, "sleep.sh", "#!/bin/sh\nsleep 300\n");
    let id = qsub(&c, &["-t", "60", "-n", "1", &sleeper]);
    wait_state(&c, id, "running");
    c.inject(&["fail-node", "nid0001"]);
    let log = wait_file_contains(&c.path(&format!("{id}.cobaltlog")), "exit code of");
    assert!(
        log.ends_with(
            "Info: task completed normally with an exit code of 137; initiating job cleanup and removal\n"
        ),
        "{log}"
    );
    wait_gone(&c, id);
}

#[test]
fn help_and_version_answer_on_stdout() {
    // optparse's `--help` and `--version` (src/lib/arg_parser.py); the version line is the
    // one of src/clients/POSIX/qsub.py.
    let c = fast();
    let (out, err, code) = c.run("qsub", &["--help"]);
    assert_eq!((err.as_str(), code), ("", 0));
    assert!(
        out.starts_with("Usage: qsub --help\nUsage: qsub [options] <executable>"),
        "{out}"
    );
    assert!(
        out.contains("  -h, --held            hold this job once submitted\n"),
        "{out}"
    );
    assert_eq!(
        c.run("qsub", &["--version"]),
        (
            "version: \"qsub \" + $Revision: 559 $ + , Cobalt  + $Version$\n".to_string(),
            String::new(),
            0
        )
    );
    let (out, _, code) = c.run("qstat", &["-h"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("Usage: qstat [options] <jobids1> ... <jobidsN>\n"),
        "{out}"
    );
}
