//! The fake PBS commands (`qsub`, `qstat`, `qdel`) against a fast simulated cluster: one
//! simulated minute per real second, so walltimes cost no real time. References: "reference"
//! is `scheduler-cli-reference.md` section 2; paths are OpenPBS sources.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{TestCluster, wait_file_contains, wait_for};

const PBS_CLUSTER: &str = r#"
cluster_name = "batchci"
time_scale = 60.0
kill_wait = 2
min_job_age = 3000
flavor = "pbs"

[[nodes]]
names = "localhost"
cpus = 2
memory_mb = 8000

[[partitions]]
name = "workq"
nodes = "localhost"
default = true
max_time = "UNLIMITED"

[[partitions]]
name = "short"
nodes = "localhost"
max_time = 10
"#;

/// `usage` of qsub_sup.c plus `usage2` of qsub.c.
const QSUB_USAGE: &str = "usage: qsub [-a date_time] [-A account_string] [-c interval]
\t[-C directive_prefix] [-e path] [-f ] [-h ] [-I [-X]] [-j oe|eo] [-J X-Y[:Z]]
\t[-k keep] [-l resource_list] [-m mail_options] [-M user_list]
\t[-N jobname] [-o path] [-p priority] [-P project] [-q queue] [-r y|n]
\t[-R o|e|oe] [-S path] [-u user_list] [-W otherattributes=value...]
\t[-v variable_list] [-V ] [-z] [script | -- command [arg1 ...]]
       qsub --version
";

struct Pbs {
    c: TestCluster,
    home: PathBuf,
}

impl Pbs {
    fn new() -> Pbs {
        Pbs::with_config(PBS_CLUSTER)
    }

    fn with_config(toml: &str) -> Pbs {
        let c = TestCluster::with_config(toml);
        let home = c.tmp.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        Pbs { c, home }
    }

    /// A PBS command run in the work directory with HOME set to the cluster's home.
    fn cmd(&self, prog: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.c.state.join("bin").join(prog));
        cmd.args(args)
            .env("MOCK_CLUSTER_STATE_DIR", &self.c.state)
            .env("PATH", self.c.path_var())
            .env("HOME", &self.home)
            .env_remove("PBS_JOBID")
            .env_remove("PBS_DPREFIX")
            .env_remove("PBS_SHELL")
            .current_dir(&self.c.work);
        cmd
    }

    fn run(&self, prog: &str, args: &[&str]) -> (String, String, i32) {
        self.run_with(self.cmd(prog, args), "")
    }

    fn run_stdin(&self, prog: &str, args: &[&str], stdin: &str) -> (String, String, i32) {
        self.run_with(self.cmd(prog, args), stdin)
    }

    fn run_with(&self, mut cmd: Command, stdin: &str) -> (String, String, i32) {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A command that fails early does not read its input.
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        let out = child.wait_with_output().unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.status.code().unwrap_or(-1),
        )
    }

    fn spawn(&self, prog: &str, args: &[&str]) -> std::process::Child {
        self.cmd(prog, args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Writes a script into the work directory.
    fn script(&self, name: &str, text: &str) -> PathBuf {
        let p = self.c.work.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Submits and returns the printed id.
    fn submit(&self, args: &[&str], stdin: &str) -> String {
        let (out, err, code) = self.run_stdin("qsub", args, stdin);
        assert_eq!(code, 0, "qsub {args:?} failed: {err}");
        out.trim_end().to_string()
    }

    /// One attribute of `qstat -x -f ID`.
    fn attr(&self, id: &str, name: &str) -> Option<String> {
        let (out, _, _) = self.run("qstat", &["-x", "-f", "-w", id]);
        let prefix = format!("    {name} = ");
        out.lines()
            .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
    }

    fn wait_state(&self, id: &str, state: &str) {
        wait_for(&format!("job {id} in state {state}"), || {
            self.attr(id, "job_state").as_deref() == Some(state)
        });
    }

    fn path(&self, name: &str) -> PathBuf {
        self.c.work.join(name)
    }
}

fn user() -> String {
    mock_cluster::cli::slurm::identity().0
}

fn host() -> String {
    mock_cluster::host::short_hostname()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn qsub_prints_the_id_runs_in_home_and_stages_output_at_the_end() {
    let p = Pbs::new();
    // reference 2.1 stdout `<seq>.<server>`, job name = script base name, #PBS directives;
    // src/cmds/qsub.c main (printf of the id), qsub_sup.c get_script.
    p.script(
        "build.sh",
        "#!/bin/sh\n#PBS -l walltime=00:30:00\necho started\nwhile [ ! -e \"$PBS_O_WORKDIR/go\" ]; do sleep 0.02; done\n\
         echo \"cwd=$(pwd)\"\necho \"workdir=$PBS_O_WORKDIR\"\necho \"id=$PBS_JOBID name=$PBS_JOBNAME queue=$PBS_QUEUE env=$PBS_ENVIRONMENT\"\n\
         echo \"home=$HOME jobdir=$PBS_JOBDIR\"\necho to-stderr >&2\n",
    );
    let (out, err, code) = p.run("qsub", &["build.sh"]);
    assert_eq!((out.as_str(), err.as_str(), code), ("1.batchci\n", "", 0));
    p.wait_state("1", "R");
    // Output is spooled on the node and staged back at the end (reference 2.1 "Output files",
    // qsub.1B -k default n): nothing in the submit directory while the job runs.
    wait_file_contains(&p.c.state.join("jobs").join("1.OU"), "started");
    assert!(!p.path("build.sh.o1").exists());
    assert!(!p.path("build.sh.e1").exists());
    std::fs::write(p.path("go"), "").unwrap();
    p.wait_state("1", "F");
    // Job working directory: the user's home; PBS_O_WORKDIR the submit directory
    // (reference 2.1, qsub.1B sandbox/ENVIRONMENT; src/resmom/start_exec.c chdir(pw_dir)).
    let home = p.home.canonicalize().unwrap();
    let work = p.c.work.canonicalize().unwrap();
    assert_eq!(
        read(&p.path("build.sh.o1")),
        format!(
            "started\ncwd={}\nworkdir={}\nid=1.batchci name=build.sh queue=workq env=PBS_BATCH\nhome={} jobdir={}\n",
            home.display(),
            work.display(),
            home.display(),
            home.display()
        )
    );
    assert_eq!(read(&p.path("build.sh.e1")), "to-stderr\n");
    assert_eq!(p.attr("1", "Exit_status").as_deref(), Some("0"));
    assert_eq!(
        p.attr("1", "Output_Path"),
        Some(format!("{}:{}/build.sh.o1", host(), work.display()))
    );
    assert_eq!(
        p.attr("1", "Resource_List.walltime").as_deref(),
        Some("00:30:00")
    );
    // Without a select the server makes one of the job-wide resources, placed `pack`
    // (src/server/svr_jobfunc.c).
    assert_eq!(
        p.attr("1", "Resource_List.select").as_deref(),
        Some("1:ncpus=1")
    );
    assert_eq!(p.attr("1", "Resource_List.place").as_deref(), Some("pack"));
}

#[test]
fn stdin_and_command_jobs_are_named_stdin() {
    let p = Pbs::new();
    // reference 2.1 "Job name default": STDIN when read from stdin; `-` is stdin too; `--`
    // runs a command (src/cmds/qsub.c process_special_args, read_job_script).
    assert_eq!(
        p.submit(&["-W", "block=true"], "echo from-stdin\n"),
        "1.batchci"
    );
    assert_eq!(read(&p.path("STDIN.o1")), "from-stdin\n");
    assert_eq!(p.submit(&["-Wblock=true", "-"], "echo dash\n"), "2.batchci");
    assert_eq!(read(&p.path("STDIN.o2")), "dash\n");
    assert_eq!(
        p.submit(&["-Wblock=true", "--", "/bin/echo", "a b", "c"], ""),
        "3.batchci"
    );
    assert_eq!(read(&p.path("STDIN.o3")), "a b c\n");
    assert_eq!(
        p.attr("3", "executable").as_deref(),
        Some("<jsdl-hpcpa:Executable>/bin/echo</jsdl-hpcpa:Executable>")
    );
    // A script without `#!` runs under the user's shell, as pbs_mom's login shell runs it.
    assert_eq!(
        p.submit(&["-Wblock=true", "-N", "noshebang"], "x=1; echo \"x=$x\"\n"),
        "4.batchci"
    );
    assert_eq!(read(&p.path("noshebang.o4")), "x=1\n");
    // -z: no id on stdout (reference 2.1).
    let (out, _, code) = p.run_stdin("qsub", &["-z", "-Wblock=true"], "true\n");
    assert_eq!((out.as_str(), code), ("", 0));
}

#[test]
fn directives_apply_unless_the_command_line_says_otherwise() {
    let p = Pbs::new();
    // src/cmds/qsub.c process_opts `if_cmd_line`: the command line wins over #PBS lines; a
    // trailing backslash continues a directive (qsub_sup.c get_script, pbs_extendable_line),
    // and the continuation is not run as a command.
    p.script(
        "d.sh",
        "#!/bin/sh\n#PBS -N from_directive\n#PBS -j oe\n#PBS -l walltime=00:20:00,\\\nmem=100mb\n\necho out\necho err >&2\n#PBS -N ignored_after_a_command\n",
    );
    let (out, _, code) = p.run("qsub", &["-N", "cmdline", "-W", "block=true", "d.sh"]);
    assert_eq!((out.as_str(), code), ("1.batchci\n", 0));
    assert_eq!(read(&p.path("cmdline.o1")), "out\nerr\n");
    assert!(!p.path("cmdline.e1").exists());
    assert_eq!(p.attr("1", "Job_Name").as_deref(), Some("cmdline"));
    assert_eq!(p.attr("1", "Join_Path").as_deref(), Some("oe"));
    assert_eq!(p.attr("1", "Resource_List.mem").as_deref(), Some("100mb"));
    assert_eq!(
        p.attr("1", "Resource_List.walltime").as_deref(),
        Some("00:20:00")
    );
    // A bad directive: qsub_sup.c get_script → do_dir "qsub: directive error: ", exit 1.
    p.script("bad.sh", "#!/bin/sh\n#PBS -r maybe\ntrue\n");
    assert_eq!(
        p.run("qsub", &["bad.sh"]),
        (
            String::new(),
            "qsub: illegal -r value\nqsub: directive error: -r maybe \n".into(),
            1
        )
    );
    p.script("bad2.sh", "#!/bin/sh\n#PBS -k\ntrue\n");
    assert_eq!(
        p.run("qsub", &["bad2.sh"]),
        (
            String::new(),
            "qsub: option requires an argument -- 'k'\nqsub: directive error: -k \n".into(),
            1
        )
    );
    // -C changes the prefix (an empty one turns directives off).
    p.script(
        "c.sh",
        "#!/bin/sh\n#XX -N prefixed\n#PBS -N not_this\ntrue\n",
    );
    assert_eq!(p.submit(&["-C", "#XX", "c.sh"], ""), "2.batchci");
    assert_eq!(p.attr("2", "Job_Name").as_deref(), Some("prefixed"));
    // CR LF line ends are refused (qsub_sup.c check_crlf).
    p.script("dos.sh", "#!/bin/sh\r\ntrue\r\n");
    assert_eq!(
        p.run("qsub", &["dos.sh"]),
        (String::new(), "qsub: script contains cr, lf\n".into(), 1)
    );
}

#[test]
fn join_and_keep_decide_which_file_gets_what_and_when() {
    let p = Pbs::new();
    // reference 2.1/7: `-j eo` merges into the error path, the -o file gets nothing.
    p.submit(
        &["-j", "eo", "-o", "o.file", "-e", "e.file", "-Wblock=true"],
        "echo OUT\necho ERR >&2\n",
    );
    assert_eq!(read(&p.path("e.file")), "OUT\nERR\n");
    assert!(!p.path("o.file").exists());
    // `-o DIR`: `<seq>.<server>.OU` inside (reference 2.1; src/resmom/stage_func.c).
    std::fs::create_dir(p.path("logs")).unwrap();
    p.submit(
        &["-o", "logs", "-e", "logs", "-Wblock=true"],
        "echo o\necho e >&2\n",
    );
    assert_eq!(read(&p.path("logs/2.batchci.OU")), "o\n");
    assert_eq!(read(&p.path("logs/2.batchci.ER")), "e\n");
    // `-k oed`: written directly, so visible while the job runs (reference 2.1, qsub.1B -k).
    let id = p.submit(
        &["-k", "oed", "-o", "live.out", "-N", "live"],
        "echo live-line\nwhile [ ! -e \"$PBS_O_WORKDIR/stop\" ]; do sleep 0.02; done\n",
    );
    assert_eq!(id, "3.batchci");
    wait_file_contains(&p.path("live.out"), "live-line");
    assert_eq!(p.attr("3", "job_state").as_deref(), Some("R"));
    std::fs::write(p.path("stop"), "").unwrap();
    p.wait_state("3", "F");
    // `-k o`: stdout stays in the job's home directory under its default name, -o is
    // overridden (qsub.1B -k).
    p.submit(
        &["-k", "o", "-o", "ignored.out", "-N", "kept", "-Wblock=true"],
        "echo kept-line\n",
    );
    assert_eq!(read(&p.home.join("kept.o4")), "kept-line\n");
    assert!(!p.path("ignored.out").exists());
    // Illegal values (src/lib/Libecl/ecl_verify_values.c) → qsub.c handle_attribute_errors:
    // "qsub: illegal -<opt> value" and the usage, exit 2.
    for (opt, val) in [("-j", "oo"), ("-k", "d"), ("-o", "bad host:x")] {
        let (out, err, code) = p.run_stdin("qsub", &[opt, val], "true\n");
        let letter = &opt[1..];
        assert_eq!(
            (out.as_str(), err, code),
            (
                "",
                format!("qsub: illegal -{letter} value\n{QSUB_USAGE}"),
                2
            ),
            "{opt} {val}"
        );
    }
}

#[test]
fn block_exits_with_the_low_8_bits_of_exit_status() {
    let p = Pbs::new();
    // reference 2.1 -Wblock table and Exit_status values; src/cmds/qsub.c block()
    // exit_qsub(exitval); src/resmom/mom_main.c (256+signal).
    let (out, err, code) = p.run_stdin("qsub", &["-W", "block=true"], "exit 7\n");
    assert_eq!((out.as_str(), err.as_str(), code), ("1.batchci\n", "", 7));
    assert_eq!(p.attr("1", "Exit_status").as_deref(), Some("7"));
    let (_, _, code) = p.run_stdin("qsub", &["-W", "block=true"], "exit 300\n");
    assert_eq!(code, 300 & 0xff);
    // The shell killed by SIGTERM: Exit_status 271, qsub exits 271 & 0xff = 15.
    let (_, _, code) = p.run_stdin("qsub", &["-Wblock=true"], "kill -TERM $$\n");
    assert_eq!(code, 15);
    assert_eq!(p.attr("3", "Exit_status").as_deref(), Some("271"));
    assert_eq!(p.attr("3", "job_state").as_deref(), Some("F"));
    // block=false is a normal submission; another value is "qsub: illegal -W value".
    let (out, _, code) = p.run_stdin("qsub", &["-W", "block=false"], "true\n");
    assert_eq!((out.as_str(), code), ("4.batchci\n", 0));
    let (_, err, code) = p.run_stdin("qsub", &["-W", "block=maybe"], "true\n");
    assert_eq!(
        (err, code),
        (format!("qsub: illegal -W value\n{QSUB_USAGE}"), 2)
    );
}

#[test]
fn walltime_kill_gives_minus_29_and_block_exits_227() {
    let p = Pbs::new();
    // reference 2.1 "-29 JOB_EXEC_KILL_WALLTIME", section 6 (227); src/resmom/mom_main.c
    // job_over_limit (used > limit) and the "=>> PBS: job killed:" line in the job's stderr.
    let (out, _, code) = p.run_stdin(
        "qsub",
        &["-W", "block=true", "-l", "walltime=0:1:0", "-N", "wt"],
        "echo begun\nsleep 600\n",
    );
    assert_eq!((out.as_str(), code), ("1.batchci\n", 227));
    assert_eq!(read(&p.path("wt.o1")), "begun\n");
    // The used figure is the (simulated) time of the kill, at least limit + 1.
    let line = read(&p.path("wt.e1"));
    let used: u64 = line
        .strip_prefix("=>> PBS: job killed: walltime ")
        .and_then(|r| r.strip_suffix(" exceeded limit 60\n"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line:?}"));
    assert!((61..=66).contains(&used), "{line:?}");
    assert_eq!(p.attr("1", "Exit_status").as_deref(), Some("-29"));
    let comment = p.attr("1", "comment").unwrap();
    assert!(
        comment.ends_with(" and exceeded resource walltime"),
        "{comment}"
    );
}

#[test]
fn a_deleted_job_makes_block_exit_3_with_the_servers_message() {
    let p = Pbs::new();
    let who = format!("{}@{}", user(), host());
    // A held (never started) job: reference 2.1 "job deleted (qdel) | 3 | qsub: <id> Job to be
    // deleted at request of user@host" (msg_deletejob + msg_manager, pbs_messages.c).
    p.script("true.sh", "#!/bin/sh\ntrue\n");
    let waiter = p.spawn("qsub", &["-h", "-Wblock=true", "-N", "held", "true.sh"]);
    p.wait_state("1", "H");
    assert_eq!(
        p.run("qdel", &["1.batchci"]),
        (String::new(), String::new(), 0)
    );
    let out = waiter.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1.batchci\n");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("qsub: 1.batchci Job to be deleted at request of {who}\n")
    );
    assert_eq!(p.attr("1", "Exit_status"), None);
    // A running job: src/server/req_delete.c acct_del_write → check_block once the node has
    // the signal, so also 3 (reference: src-derived); Exit_status 256+SIGTERM.
    p.script("sleeper.sh", "#!/bin/sh\necho up\nsleep 600\n");
    let waiter = p.spawn("qsub", &["-Wblock=true", "sleeper.sh"]);
    p.wait_state("2", "R");
    wait_file_contains(&p.c.state.join("jobs").join("2.OU"), "up");
    // The bare sequence number is accepted (reference 8, PBS).
    assert_eq!(p.run("qdel", &["2"]), (String::new(), String::new(), 0));
    let out = waiter.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("qsub: 2.batchci Job to be deleted at request of {who}\n")
    );
    p.wait_state("2", "F");
    assert_eq!(p.attr("2", "Exit_status").as_deref(), Some("271"));
    assert_eq!(read(&p.path("sleeper.sh.o2")), "up\n");
}

#[test]
fn a_signal_to_a_blocked_qsub_deletes_the_job_and_exits_2() {
    let p = Pbs::new();
    // src/cmds/qsub.c block(): SIGINT while waiting → "qsub: wait for job <id> interrupted by
    // signal <n>" on stderr, bailout(2): "Job <id> is being deleted" on stdout, pbs_deljob.
    p.script("long.sh", "#!/bin/sh\nsleep 600\n");
    let mut waiter = p.spawn("qsub", &["-Wblock=true", "long.sh"]);
    let mut stdout = std::io::BufReader::new(waiter.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    assert_eq!(first, "1.batchci\n");
    p.wait_state("1", "R");
    // SAFETY: signalling a child process this test started.
    unsafe {
        libc::kill(waiter.id() as i32, libc::SIGINT);
    }
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let out = waiter.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(rest, "Job 1.batchci is being deleted\n");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "qsub: wait for job 1.batchci interrupted by signal 2\n"
    );
    p.wait_state("1", "F");
    assert_eq!(p.attr("1", "Exit_status").as_deref(), Some("271"));
}

#[test]
fn qstat_tables_show_queued_held_running_and_history() {
    let p = Pbs::new();
    let u = user();
    assert_eq!(p.run("qstat", &[]), (String::new(), String::new(), 0));
    p.script("run.sh", "#!/bin/sh\nsleep 600\n");
    p.submit(&["-l", "select=1:ncpus=2", "run.sh"], "");
    p.wait_state("1", "R");
    p.submit(&["-h", "-N", "a_rather_long_job_name"], "true\n");
    p.submit(&["-q", "short"], "true\n");
    // src/cmds/qstat.c display_statjob: "%-17s %-16s %-16s  %8s %1s %-16s", names of 16 or
    // more characters cut to 15 and '*'.
    let header = "Job id            Name             User              Time Use S Queue\n\
                  ----------------  ---------------- ----------------  -------- - -----\n";
    let row = |id: &str, name: &str, time: &str, s: &str, q: &str| {
        format!("{id:<17} {name:<16} {u:<16}  {time:>8} {s} {q:<16}\n")
    };
    let table = format!(
        "{header}{}{}{}",
        row("1.batchci", "run.sh", "00:00:00", "R", "workq"),
        row("2.batchci", "a_rather_long_j*", "0", "H", "workq"),
        row("3.batchci", "STDIN", "0", "Q", "short"),
    );
    assert_eq!(p.run("qstat", &[]), (table, String::new(), 0));
    // Several ids: the header once, with the first (qstat.c prints it with the server
    // status, asked for once).
    let (out, _, code) = p.run("qstat", &["3", "1.batchci"]);
    assert_eq!(
        (out, code),
        (
            format!(
                "{header}{}{}",
                row("3.batchci", "STDIN", "0", "Q", "short"),
                row("1.batchci", "run.sh", "00:00:00", "R", "workq")
            ),
            0
        )
    );
    // A queue as operand lists its jobs.
    let (out, _, _) = p.run("qstat", &["short"]);
    assert_eq!(
        out,
        format!("{header}{}", row("3.batchci", "STDIN", "0", "Q", "short"))
    );
    // -a: the alternate table (altdsp_statjob).
    let (out, _, _) = p.run("qstat", &["-a", "2"]);
    assert_eq!(
        out,
        format!(
            "\nbatchci: \n{:60}Req'd  Req'd   Elap\n\
             Job ID          Username Queue    Jobname    SessID NDS TSK Memory Time  S Time\n\
             --------------- -------- -------- ---------- ------ --- --- ------ ----- - -----\n\
             2.batchci       {:<8} workq    a_rather_*    --    1   1    --    --  H   -- \n",
            "",
            &u[..u.len().min(8)]
        )
    );
    // Finished jobs only with -x (reference 2.2 -x; state F).
    assert_eq!(p.run("qdel", &["1", "2", "3"]).2, 0);
    p.wait_state("1", "F");
    assert_eq!(p.run("qstat", &[]), (String::new(), String::new(), 0));
    let (out, _, _) = p.run("qstat", &["-x"]);
    assert_eq!(
        out,
        format!(
            "{header}{}{}{}",
            row("1.batchci", "run.sh", "00:00:00", "F", "workq"),
            row("2.batchci", "a_rather_long_j*", "0", "F", "workq"),
            row("3.batchci", "STDIN", "0", "F", "short"),
        )
    );
}

#[test]
fn qstat_errors_name_the_job_and_exit_with_the_low_bits_of_pbs_errno() {
    let p = Pbs::new();
    // reference 2.2 Errors: PBSE_UNKJOBID 15001 → 153, PBSE_HISTJOBID 15139 → 35
    // (src/cmds/qstat.c, src/lib/Libcmds/err_handling.c prt_job_err).
    assert_eq!(
        p.run("qstat", &["99"]),
        (
            String::new(),
            "qstat: Unknown Job Id 99.batchci\n".into(),
            153
        )
    );
    p.submit(&["-Wblock=true"], "true\n");
    assert_eq!(
        p.run("qstat", &["1.batchci"]),
        (
            String::new(),
            "qstat: 1.batchci Job has finished, use -x or -H to obtain historical job information\n"
                .into(),
            35
        )
    );
    assert_eq!(p.run("qstat", &["-x", "1"]).2, 0);
    // Known ones on stdout, one line per unknown one, the last error's code (reference 8;
    // qstat.c keeps any_failed once set).
    // The header belongs to the first operand only, so a failing first one has none.
    let (out, err, code) = p.run("qstat", &["-x", "98", "1"]);
    assert_eq!(
        (out.as_str(), err.as_str(), code),
        (
            format!(
                "{:<17} {:<16} {:<16}  {:>8} F {:<16}\n",
                "1.batchci",
                "STDIN",
                user(),
                "00:00:00",
                "workq"
            )
            .as_str(),
            "qstat: Unknown Job Id 98.batchci\n",
            153
        )
    );
    let (_, err, code) = p.run("qstat", &["1", "97"]);
    assert_eq!(
        (err.as_str(), code),
        (
            "qstat: 1.batchci Job has finished, use -x or -H to obtain historical job information\nqstat: Unknown Job Id 97.batchci\n",
            153
        )
    );
    // Another server's job, an unknown queue, a bad option.
    assert_eq!(
        p.run("qstat", &["1.elsewhere"]),
        (
            String::new(),
            "qstat: illegally formed job identifier: 1.elsewhere\n".into(),
            1
        )
    );
    assert_eq!(
        p.run("qstat", &["nosuchq"]),
        (String::new(), "qstat: Unknown queue nosuchq\n".into(), 170)
    );
    let (_, err, code) = p.run("qstat", &["-F", "json"]);
    assert!(
        err.starts_with("qstat: conflicting options.\nusage: \n"),
        "{err}"
    );
    assert_eq!(code, 2);
}

#[test]
fn qstat_full_and_json_show_the_attributes() {
    let p = Pbs::new();
    p.run_stdin(
        "qsub",
        &[
            "-W",
            "block=true",
            "-N",
            "full",
            "-A",
            "proj42",
            "-l",
            "walltime=01:00:00,select=1:ncpus=2:mem=1gb",
        ],
        "exit 4\n",
    );
    // reference 2.2: "Job Id: <id>" then "    attr = value" lines (qstat.c prt_attr).
    let (out, _, code) = p.run("qstat", &["-x", "-f", "1"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("Job Id: 1.batchci\n    Job_Name = full\n"),
        "{out}"
    );
    for line in [
        format!("    Job_Owner = {}@{}\n", user(), host()),
        "    job_state = F\n".into(),
        "    queue = workq\n".into(),
        "    server = batchci\n".into(),
        "    Account_Name = proj42\n".into(),
        "    Resource_List.mem = 1gb\n".into(),
        "    Resource_List.ncpus = 2\n".into(),
        "    Resource_List.nodect = 1\n".into(),
        "    Resource_List.place = free\n".into(),
        "    Resource_List.select = 1:ncpus=2:mem=1gb\n".into(),
        "    Resource_List.walltime = 01:00:00\n".into(),
        "    exec_vnode = (localhost:ncpus=2:mem=1gb)\n".into(),
        "    Exit_status = 4\n".into(),
        // Folded at a comma: the value would pass column 78 (prt_attr, CHAR_LINE_LIMIT).
        "    Submit_arguments = -W block=true -N full -A proj42 -l walltime=01:00:00,\n\tselect=1:ncpus=2:mem=1gb\n".into(),
    ] {
        assert!(out.contains(&line), "missing {line:?} in\n{out}");
    }
    assert!(out.ends_with("\n\n"));
    // Long values fold at commas to 78 columns, continued after a tab (prt_attr).
    let vl = out
        .split("    Variable_List = ")
        .nth(1)
        .unwrap()
        .split("\n    ")
        .next()
        .unwrap();
    assert!(vl.lines().all(|l| l.len() <= 80), "{vl}");
    assert!(vl.starts_with("PBS_O_HOME="), "{vl}");
    // -F json: Exit_status as a JSON number (reference 2.2, pbs_json_insert_parsed), resources
    // and Variable_List as objects, cJSON's tab layout.
    let (out, _, code) = p.run("qstat", &["-x", "-f", "-F", "json", "1"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("{\n\t\"timestamp\":\t"), "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["pbs_version"], "23.06.06");
    assert_eq!(v["pbs_server"], "batchci");
    let job = &v["Jobs"]["1.batchci"];
    assert_eq!(job["Exit_status"], serde_json::json!(4));
    assert_eq!(job["job_state"], "F");
    assert_eq!(job["Job_Name"], "full");
    assert_eq!(job["Resource_List"]["ncpus"], serde_json::json!(2));
    assert_eq!(job["Resource_List"]["walltime"], "01:00:00");
    assert_eq!(job["Variable_List"]["PBS_O_QUEUE"], "workq");
    assert_eq!(job["Variable_List"]["PBS_O_HOST"], host());
    // No job: the prologue only.
    let (out, _, _) = p.run("qstat", &["-f", "-F", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v.get("Jobs").is_none(), "{out}");
    // -F dsv: one line per job, `|` between attributes.
    let (out, _, _) = p.run("qstat", &["-x", "-f", "-F", "dsv", "1"]);
    assert!(out.starts_with("Job Id: 1.batchci|Job_Name=full|"), "{out}");
    assert!(out.contains("|Exit_status=4|"), "{out}");
    assert_eq!(out.lines().count(), 1);
}

#[test]
fn qdel_refuses_unknown_finished_and_exiting_jobs() {
    // A kill_wait long enough to see a job in state E (two real seconds).
    let p = Pbs::with_config(&PBS_CLUSTER.replace("kill_wait = 2", "kill_wait = 120"));
    // src/cmds/qdel.c process_deljobstat: "qdel: <pbse text> <id as given>", exit the last
    // pbs_errno & 0xff.
    assert_eq!(
        p.run("qdel", &["42"]),
        (String::new(), "qdel: Unknown Job Id 42\n".into(), 153)
    );
    p.submit(&["-Wblock=true"], "true\n");
    // A finished job: src/server/svr_chk_owner.c chk_job_request → PBSE_HISTJOBID
    // ("Job has finished", 15139 & 0xff = 35); with -x its history goes silently.
    assert_eq!(
        p.run("qdel", &["1.batchci"]),
        (
            String::new(),
            "qdel: Job has finished 1.batchci\n".into(),
            35
        )
    );
    assert_eq!(
        p.run("qdel", &["-x", "1"]),
        (String::new(), String::new(), 0)
    );
    assert_eq!(
        p.run("qdel", &["x1", "1.other"]),
        (
            String::new(),
            "qdel: illegally formed job identifier: x1\nqdel: illegally formed job identifier: 1.other\n"
                .into(),
            1
        )
    );
    let (_, err, code) = p.run("qdel", &[]);
    assert_eq!(
        (err.as_str(), code),
        (
            "usage:\n\tqdel [-W force|suppress_email=X] [-x] job_identifier...\n\tqdel --version\n",
            2
        )
    );
    // A job that ignores SIGTERM stays E until SIGKILL; a second qdel is refused with
    // PBSE_BADSTATE (chk_job_request, 15016 & 0xff = 168); -W force kills it (Exit_status
    // SIGKILL+0x100, reference 2.1).
    p.script(
        "stubborn.sh",
        "#!/bin/sh\ntrap 'echo got-TERM' TERM\necho up\nwhile :; do sleep 0.02; done\n",
    );
    p.submit(&["-k", "oed", "stubborn.sh"], "");
    wait_file_contains(&p.path("stubborn.sh.o2"), "up");
    assert_eq!(p.run("qdel", &["2"]), (String::new(), String::new(), 0));
    p.wait_state("2", "E");
    assert_eq!(
        p.run("qdel", &["2"]),
        (
            String::new(),
            "qdel: Request invalid for state of job 2\n".into(),
            168
        )
    );
    assert_eq!(
        p.run("qdel", &["-W", "force", "2"]),
        (String::new(), String::new(), 0)
    );
    p.wait_state("2", "F");
    assert_eq!(p.attr("2", "Exit_status").as_deref(), Some("265"));
    // A forced delete of a running job: SIGKILL at once.
    p.script("plain.sh", "#!/bin/sh\nsleep 600\n");
    p.submit(&["plain.sh"], "");
    p.wait_state("3", "R");
    assert_eq!(
        p.run("qdel", &["-Wforce", "3"]),
        (String::new(), String::new(), 0)
    );
    p.wait_state("3", "F");
    assert_eq!(p.attr("3", "Exit_status").as_deref(), Some("265"));
}

#[test]
fn submissions_are_refused_in_pbs_words() {
    let p = Pbs::new();
    // qsub: "qsub: <pbs_geterrmsg>" and exit pbs_errno & 0xff (src/cmds/qsub.c main →
    // exit_qsub(rc)); texts from src/lib/Liblog/pbs_messages.c.
    let cases: &[(&[&str], &str, i32)] = &[
        // PBSE_UNKQUE 15018.
        (&["-q", "nosuch"], "qsub: Unknown queue\n", 170),
        // ECL verification of the resource value: PBSE_BADATVAL 15014.
        (
            &["-l", "walltime=1:xx"],
            "qsub: Illegal attribute or resource value Resource_List.walltime\n",
            166,
        ),
        // PBSE_UNKRESC 15035 (reply_send.c adds the name for select resources).
        (&["-l", "foo=1"], "qsub: Unknown resource\n", 187),
        (
            &["-l", "select=1:ngpus=1"],
            "qsub: Unknown resource: ngpus\n",
            187,
        ),
        // Over the queue's maximum walltime: PBSE_EXCQRESC 15036.
        (
            &["-q", "short", "-l", "walltime=00:11:00"],
            "qsub: Job violates queue and/or server resource limits\n",
            188,
        ),
    ];
    for (args, err, code) in cases {
        assert_eq!(
            p.run_stdin("qsub", args, "true\n"),
            (String::new(), err.to_string(), *code),
            "{args:?}"
        );
    }
    // Options: getopt's message and the usage, exit 2 (qsub.c print_usage).
    assert_eq!(
        p.run("qsub", &["-Y"]),
        (
            String::new(),
            format!("qsub: invalid option -- 'Y'\n{QSUB_USAGE}"),
            2
        )
    );
    assert_eq!(
        p.run_stdin("qsub", &["-N", "two words"], "true\n"),
        (
            String::new(),
            format!("qsub: illegal -N value\n{QSUB_USAGE}"),
            2
        )
    );
    // The script must be the last argument; `--` needs a command.
    p.script("s.sh", "true\n");
    assert_eq!(p.run("qsub", &["s.sh", "extra"]).2, 2);
    assert_eq!(p.run("qsub", &["--"]).2, 2);
    // A missing script: perror("qsub: script file:"), exit 1.
    assert_eq!(
        p.run("qsub", &["missing.sh"]),
        (
            String::new(),
            "qsub: script file:: No such file or directory\n".into(),
            1
        )
    );
    // -v NAME needs NAME in qsub's environment (expand_varlist), exit 1.
    let mut cmd = p.cmd("qsub", &["-v", "SURELY_UNSET_VARIABLE"]);
    cmd.env_remove("SURELY_UNSET_VARIABLE");
    assert_eq!(
        p.run_with(cmd, "true\n"),
        (
            String::new(),
            "qsub: cannot send environment with the job\n".into(),
            1
        )
    );
    // Nothing was submitted.
    assert_eq!(p.run("qstat", &["-x"]).0, "");
    // --version (pbs_version.h.in PRINT_VERSION_AND_EXIT).
    assert_eq!(
        p.run("qsub", &["--version"]),
        ("pbs_version = 23.06.06\n".into(), String::new(), 0)
    );
}

#[test]
fn interactive_jobs_need_a_terminal() {
    let p = Pbs::new();
    // src/cmds/qsub.c interactive_port: without a terminal on stdin and stdout, exit 1.
    assert_eq!(
        p.run("qsub", &["-I"]),
        (
            String::new(),
            "qsub:\tstandard input and output must be a terminal for\n\tinteractive job submission\n"
                .into(),
            1
        )
    );
}

#[test]
fn the_job_environment_follows_v_and_capital_v() {
    let p = Pbs::new();
    let script = "for v in FROM_QSUB GIVEN PBS_O_WORKDIR PBS_O_QUEUE PBS_O_HOST PBS_ACCOUNT NCPUS; do eval \"echo $v=\\${$v-unset}\"; done\n\
                  test -d \"$TMPDIR\" && echo tmpdir-ok\ncat \"$PBS_NODEFILE\"\n";
    let work = p.c.work.canonicalize().unwrap();
    // Without -V only qsub's PBS_O_* variables and -v travel (reference 2.1 ENVIRONMENT;
    // qsub.c job_env_basic, set_job_env, expand_varlist).
    let mut cmd = p.cmd(
        "qsub",
        &[
            "-Wblock=true",
            "-N",
            "env1",
            "-v",
            "GIVEN=a\\,b",
            "-A",
            "acct",
            "-l",
            "ncpus=2",
        ],
    );
    cmd.env("FROM_QSUB", "yes");
    assert_eq!(p.run_with(cmd, script).2, 0);
    assert_eq!(
        read(&p.path("env1.o1")),
        format!(
            "FROM_QSUB=unset\nGIVEN=a,b\nPBS_O_WORKDIR={}\nPBS_O_QUEUE=workq\nPBS_O_HOST={}\nPBS_ACCOUNT=acct\nNCPUS=2\ntmpdir-ok\nlocalhost\n",
            work.display(),
            host()
        )
    );
    // The node's TMPDIR and node file go with the job (src/resmom/start_exec.c).
    assert!(!p.c.state.join("tmp").join("pbs.1.batchci").exists());
    // -V sends qsub's whole environment; -v NAME takes the value from it.
    let mut cmd = p.cmd("qsub", &["-Wblock=true", "-N", "env2", "-V", "-v", "GIVEN"]);
    cmd.env("FROM_QSUB", "yes").env("GIVEN", "from-env");
    assert_eq!(p.run_with(cmd, script).2, 0);
    let text = read(&p.path("env2.o2"));
    assert!(
        text.starts_with("FROM_QSUB=yes\nGIVEN=from-env\n"),
        "{text}"
    );
    // Without -V the job's PATH puts the cluster's commands first (a choice: a login PATH
    // where PBS is installed).
    p.submit(&["-Wblock=true", "-N", "env3"], "echo \"$PATH\"\n");
    assert_eq!(
        read(&p.path("env3.o3")),
        format!(
            "{}:/usr/local/bin:/usr/bin:/bin\n",
            p.c.state.join("bin").display()
        )
    );
}

#[test]
fn without_home_the_job_runs_in_the_submit_directory() {
    let p = Pbs::new();
    let mut cmd = p.cmd("qsub", &["-Wblock=true", "-N", "nohome"]);
    cmd.env_remove("HOME");
    assert_eq!(p.run_with(cmd, "pwd\necho \"$PBS_O_HOME\"\n").2, 0);
    // qsub.c job_env_basic: PBS_O_HOME is "/" when HOME is unset.
    assert_eq!(
        read(&p.path("nohome.o1")),
        format!("{}\n/\n", p.c.work.canonicalize().unwrap().display())
    );
}

#[test]
fn injected_failures_are_reported_as_pbs_would() {
    let p = Pbs::new();
    assert_eq!(p.run("qstat", &[]), (String::new(), String::new(), 0));
    // An injected submission failure: "qsub: <text>", exit PBSE_PROTOCOL (15031) & 0xff = 183
    // (choice: the reference only says "exit >0"; a server that does not answer is a protocol
    // error to qsub).
    p.c.inject(&["submit-errors", "1", "--message", "Server busy, try later"]);
    assert_eq!(
        p.run_stdin("qsub", &[], "true\n"),
        (String::new(), "qsub: Server busy, try later\n".into(), 183)
    );
    assert_eq!(p.submit(&[], "true\n"), "1.batchci");
    // A status timeout: what cnt2server and qstat print when the server does not answer
    // (perror "Connection timed out", "qstat: cannot connect to server <s> (errno=110)"), and
    // qstat's exit with the failed connection, -1 → 255 (choice: the reference is silent).
    p.c.inject(&["status-timeout", "on"]);
    assert_eq!(
        p.run("qstat", &[]),
        (
            String::new(),
            "Connection timed out\nqstat: cannot connect to server batchci (errno=110)\n".into(),
            255
        )
    );
    p.c.inject(&["status-timeout", "off"]);
    assert_eq!(p.run("qstat", &["-x", "1"]).2, 0);
    // Every call is recorded with its exit code.
    let calls = p.c.admin(&["calls", "--json"]);
    let calls: serde_json::Value = serde_json::from_slice(&calls.stdout).unwrap();
    let codes: Vec<(String, i64)> = calls
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["program"].as_str().unwrap().to_string(),
                c["exit_code"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        codes,
        vec![
            ("qstat".to_string(), 0),
            ("qsub".to_string(), 183),
            ("qsub".to_string(), 0),
            ("qstat".to_string(), 255),
            ("qstat".to_string(), 0)
        ]
    );
}

#[test]
fn smaller_qsub_rules() {
    let p = Pbs::new();
    // A directory is no script (qsub.c read_job_script).
    std::fs::create_dir(p.path("adir")).unwrap();
    assert_eq!(
        p.run("qsub", &["adir"]),
        (String::new(), "qsub: script not a file\n".into(), 1)
    );
    // More attribute checks (ecl_verify_values.c, ck_job_name.c; qsub.c
    // handle_attribute_errors).
    for (opt, val) in [("-m", "xyz"), ("-p", "5000"), ("-c", "u"), ("-r", "x")] {
        let (_, err, code) = p.run_stdin("qsub", &[opt, val], "true\n");
        assert_eq!(
            (err, code),
            (format!("qsub: illegal {opt} value\n{QSUB_USAGE}"), 2),
            "{opt} {val}"
        );
    }
    let long = "n".repeat(231);
    assert_eq!(
        p.run_stdin("qsub", &["-N", &long], "true\n"),
        (String::new(), "qsub: Job name is too long \n".into(), 2)
    );
    // `host:path` (prepare_path) and block=true from a directive (process_opts at directive
    // level) and PBS_DPREFIX (set_dir_prefix).
    p.script(
        "dir.sh",
        "#!/bin/sh\n#QQ -W block=true\n#QQ -o somehost:out.txt\nexit 5\n",
    );
    let mut cmd = p.cmd("qsub", &["dir.sh"]);
    cmd.env("PBS_DPREFIX", "#QQ");
    assert_eq!(
        p.run_with(cmd, ""),
        ("1.batchci\n".into(), String::new(), 5)
    );
    assert!(p.path("out.txt").exists());
    // A job id naming the server twice is accepted (parse_jobid.c: `.server@server`).
    assert_eq!(p.run("qstat", &["-x", "1.batchci@batchci"]).2, 0);
    // qstat -w: the wide table (display_statjob).
    p.script("run.sh", "#!/bin/sh\nsleep 600\n");
    p.submit(&["run.sh"], "");
    p.wait_state("2", "R");
    let (out, _, _) = p.run("qstat", &["-w", "2"]);
    assert_eq!(
        out,
        format!(
            "Job id                         Name            User             Time Use S Queue\n\
             -----------------------------  --------------- ---------------  -------- - ---------------\n\
             {:<30} {:<15} {:<15}  {:>8} R {:<15}\n",
            "2.batchci",
            "run.sh",
            user(),
            "00:00:00",
            "workq"
        )
    );
    // -an: the assigned nodes under the row (prt_nodes).
    let (out, _, _) = p.run("qstat", &["-an", "2"]);
    assert!(out.ends_with("\n   localhost/0\n"), "{out:?}");
    assert_eq!(p.run("qdel", &["2"]).2, 0);
}

/// `qstat -B`, which `batchci check` asks whether the server answers: `display_statserver`
/// (src/cmds/qstat.c): its two header lines, then the server's line, `%-16s` name, `%5s`
/// counts (Max is `max_running`, unset: 0), `%-10s` status; Tot counts unfinished jobs here
/// (choice).
#[test]
fn qstat_b_shows_the_servers_line_with_its_job_counts() {
    let p = Pbs::new();
    let header = "Server             Max   Tot   Que   Run   Hld   Wat   Trn   Ext Status\n\
                  ---------------- ----- ----- ----- ----- ----- ----- ----- ----- -----------\n";
    let line = |tot: u32, que: u32, run: u32, hld: u32| {
        format!(
            "batchci              0 {tot:>5} {que:>5} {run:>5} {hld:>5}     0     0     0 Active    \n"
        )
    };
    assert_eq!(
        p.run("qstat", &["-B"]),
        (format!("{header}{}", line(0, 0, 0, 0)), String::new(), 0)
    );
    p.script("run.sh", "#!/bin/sh\nsleep 600\n");
    p.submit(&["-l", "select=1:ncpus=2", "run.sh"], "");
    p.wait_state("1", "R");
    p.submit(&["-h"], "true\n");
    p.submit(&[], "true\n");
    assert_eq!(
        p.run("qstat", &["-B", "batchci"]),
        (format!("{header}{}", line(3, 1, 1, 1)), String::new(), 0)
    );
    // Another server name does not resolve: cnt2server's line, qstat's (which names the
    // default server), exit 255.
    assert_eq!(
        p.run("qstat", &["-B", "elsewhere"]),
        (
            String::new(),
            "Unknown Host.\nqstat: cannot connect to server batchci (errno=15008)\n".into(),
            255
        )
    );
}

#[test]
fn without_a_daemon_the_commands_cannot_connect() {
    let p = Pbs::new();
    assert_eq!(p.submit(&[], "true\n"), "1.batchci");
    // No daemon (and none may start): cnt2server's perror, then the command's line
    // (qsub.c do_connect, qstat.c, qdel.c), after the socket the simulation tried.
    assert!(p.c.admin(&["stop"]).status.success());
    let socket = p.c.state.join("daemon.sock");
    for (prog, args, line, code) in [
        (
            "qsub",
            vec!["-"],
            "qsub: cannot connect to server batchci (errno=111)",
            111,
        ),
        (
            "qstat",
            vec![],
            "qstat: cannot connect to server batchci (errno=111)",
            255,
        ),
        (
            "qstat",
            vec!["-B"],
            "qstat: cannot connect to server batchci (errno=111)",
            255,
        ),
        (
            "qdel",
            vec!["1"],
            "Couldn't connect to cluster: batchci",
            111,
        ),
    ] {
        let mut cmd = p.cmd(prog, &args);
        cmd.env("MOCK_CLUSTER_NO_AUTOSTART", "1");
        let (out, err, c) = p.run_with(cmd, "true\n");
        assert_eq!((out.as_str(), c), ("", code), "{prog}");
        assert!(
            err.starts_with(&format!(
                "{prog}: error: mock-cluster daemon not reachable at {}: ",
                socket.display()
            )),
            "{err}"
        );
        assert!(
            err.ends_with(&format!("\nConnection refused\n{line}\n")),
            "{err}"
        );
    }
}
