//! sacct, scontrol and sinfo output formats (snapshots), after real jobs ran.

mod common;

use common::{TestCluster, normalize_times};

fn finished_jobs(c: &TestCluster) {
    for script in ["exit 0", "exit 3", "exit 255", "kill -TERM $$"] {
        c.run("sbatch", &["--wait", "-J", "acct", "--wrap", script]);
    }
}

#[test]
fn sacct_rows_and_exit_codes() {
    let c = TestCluster::fast();
    finished_jobs(&c);
    let (out, err, code) = c.run("sacct", &["-n", "-P", "-o", "JobID,JobName,State,ExitCode"]);
    assert_eq!((err.as_str(), code), ("", 0));
    insta::assert_snapshot!("sacct_parsable", out);
    let (out, _, _) = c.run(
        "sacct",
        &["-X", "-o", "JobID,JobName%6,State,ExitCode,AllocCPUS"],
    );
    insta::assert_snapshot!("sacct_fixed_width_allocations", out);
    let (out, _, _) = c.run("sacct", &["-j", "2", "-p", "-o", "JobID,ExitCode"]);
    assert_eq!(out, "JobID|ExitCode|\n2|3:0|\n2.batch|3:0|\n");
    let (out, _, _) = c.run("sacct", &["-j", "42", "-n"]);
    assert_eq!(out, "");
    // One width per field, the last given (src/sacct/options.c); `%0` prints nothing.
    let (out, _, _) = c.run(
        "sacct",
        &[
            "-j",
            "1",
            "-X",
            "-o",
            "JobName%6,JobName%-6,State%0,ExitCode%-3",
        ],
    );
    assert_eq!(
        out,
        "JobNam JobNam  Exi \n------ ------  --- \nacct   acct    0:0 \n"
    );
}

#[test]
fn scontrol_show_job_node_partition() {
    let c = TestCluster::fast();
    c.run(
        "sbatch",
        &[
            "--wait",
            "-J",
            "shown",
            "-o",
            "show-%j.out",
            "--wrap",
            "exit 3",
        ],
    );
    let (out, _, code) = c.run("scontrol", &["show", "job", "1"]);
    assert_eq!(code, 0);
    let user = mock_cluster::cli::slurm::identity().0;
    let host = mock_cluster::cli::slurm::short_hostname();
    let out = normalize_times(&out)
        .replace(&c.work.display().to_string(), "<CWD>")
        .replace(&format!("UserId={user}("), "UserId=<USER>(")
        .replace(&format!("Account={user} "), "Account=<USER> ")
        .replace(&format!("AllocNode:Sid={host}:"), "AllocNode:Sid=<HOST>:");
    let out: String = out
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("UserId=") {
                "   UserId=<USER> GroupId=<GROUP> MCS_label=N/A".to_string()
            } else {
                l.to_string()
            }
        })
        // The run time in simulated seconds depends on scheduling delays.
        .map(|l| match l.find("RunTime=") {
            Some(i) => format!("{}RunTime=<RUN>{}", &l[..i], &l[i + 16..]),
            None => l,
        })
        .map(|l| format!("{l}\n"))
        .collect();
    insta::assert_snapshot!("scontrol_show_job", out);
    let (out, _, _) = c.run("scontrol", &["-o", "show", "job", "1"]);
    assert_eq!(out.lines().count(), 1);
    assert!(out.starts_with("JobId=1 JobName=shown UserId="), "{out}");
    let (out, _, _) = c.run("scontrol", &["show", "node", "localhost"]);
    // What slurmd reads from the machine it runs on: this machine's kernel and load.
    let out: String = normalize_times(&out)
        .lines()
        .map(|l| {
            if l.starts_with("   OS=") {
                "   OS=<UNAME> \n".to_string()
            } else if let Some(i) = l.find("CPULoad=") {
                format!("{}CPULoad=<LOAD>\n", &l[..i])
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    insta::assert_snapshot!("scontrol_show_node", out);
    let (one, _, _) = c.run("scontrol", &["-o", "show", "node", "localhost"]);
    assert!(
        one.starts_with("NodeName=localhost Arch=x86_64 CoresPerSocket=1  CPUAlloc=0 "),
        "{one}"
    );
    assert!(
        one.contains(" Partitions=debug,gitlab-ci  BootTime="),
        "{one}"
    );
    assert!(one.ends_with(" ExtSensorsTemp=n/s\n"), "{one}");
    let (out, _, _) = c.run("scontrol", &["show", "partition", "gitlab-ci"]);
    insta::assert_snapshot!("scontrol_show_partition", out);
    assert_eq!(
        c.run("scontrol", &["show", "job", "999999"]),
        (
            String::new(),
            "slurm_load_jobs error: Invalid job id specified\n".into(),
            1
        )
    );
    assert_eq!(
        c.run("scontrol", &["show", "partition", "nope"]),
        ("Partition nope not found\n".into(), String::new(), 1)
    );
    assert_eq!(
        c.run("scontrol", &["bogus"]),
        (String::new(), "invalid keyword: bogus\n".into(), 1)
    );
}

#[test]
fn sinfo_summaries() {
    let c = TestCluster::default_cluster();
    let (out, _, code) = c.run("sinfo", &[]);
    assert_eq!(code, 0);
    insta::assert_snapshot!("sinfo_default_cluster", out);
    let id = c.submit(&["-c", "2", "--mem", "100", "--wrap", "sleep 300"]);
    c.wait_state(id, "RUNNING");
    assert_eq!(
        c.run("sinfo", &["-h", "-N", "-p", "debug", "-o", "%N %T %C"])
            .0,
        "node01 mixed 2/2/0/4\nnode02 idle 0/4/0/4\nnode03 idle 0/4/0/4\nnode04 idle 0/4/0/4\n"
    );
    c.run("scancel", &[&id.to_string()]);
}

#[test]
fn scontrol_turns_node_lists_into_names_and_back() {
    // Observed on Slurm 22.05 (docs/slurm-observed.md, host lists), pinned against it by the
    // differential case `scontrol_expands_and_compresses_host_lists`.
    let c = TestCluster::fast();
    assert_eq!(
        c.run("scontrol", &["show", "hostnames", "n[1-2]-ib[3-4],x07"]),
        (
            "n1-ib3\nn1-ib4\nn2-ib3\nn2-ib4\nx07\n".into(),
            String::new(),
            0
        )
    );
    assert_eq!(
        c.run("scontrol", &["show", "hostlist", "n9,n10,n08,n09"]),
        ("n[9-10,08-09]\n".into(), String::new(), 0)
    );
    assert_eq!(
        c.run("scontrol", &["show", "hostlistsorted", "n01,n1,n2,n10"]),
        ("n[1-2,01,10]\n".into(), String::new(), 0)
    );
    // Inside a job, without a list: the job's nodes.
    let out = c
        .cmd("scontrol")
        .args(["show", "hostnames"])
        .env("SLURM_NODELIST", "node[01-02]")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "node01\nnode02\n");
    // A reversed range: named, and still exit 0 for hostnames, 1 for hostlist.
    let reversed =
        "scontrol: error: _parse_single_range: Invalid range: `3-1'\nInvalid hostlist: n[3-1]\n";
    assert_eq!(
        c.run("scontrol", &["show", "hostnames", "n[3-1]"]),
        (String::new(), reversed.into(), 0)
    );
    assert_eq!(
        c.run("scontrol", &["show", "hostlist", "n[3-1]"]),
        (String::new(), reversed.into(), 1)
    );
    let (usage, error, code) = c.run("scontrol", &["show", "hostlist"]);
    assert!(
        usage.starts_with("scontrol [<OPTION>] [<COMMAND>]"),
        "{usage}"
    );
    assert_eq!((error.as_str(), code), ("invalid encode argument\n", 1));
}

#[test]
fn slurm_time_format_shapes_every_time_shown() {
    // src/common/parse_time.c `_make_time_str_internal` and `_relative_date_fmt`, checked on
    // Slurm 22.05 (docs/slurm-observed.md, SLURM_TIME_FORMAT).
    let c = TestCluster::fast();
    let id = c.submit(&["--hold", "--wrap", "true"]).to_string();
    let shown = |format: &str, argv: &[&str]| {
        let out = c
            .cmd(argv[0])
            .args(&argv[1..])
            .env("SLURM_TIME_FORMAT", format)
            .output()
            .unwrap();
        (
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let squeue = ["squeue", "-h", "-j", &id, "-o", "%V"];
    let iso = shown("standard", &squeue).0;
    assert_eq!(iso.len(), "2026-11-29T19:55:29".len(), "{iso}");
    assert_eq!(shown("", &squeue).0, iso);
    let epoch = shown("%s", &squeue).0;
    assert!(epoch.parse::<u64>().is_ok(), "{epoch}");
    // Today, relative: the time of day with seconds.
    let relative = shown("relative", &squeue).0;
    assert_eq!(relative, iso[11..]);
    assert_eq!(
        shown("%Y|%m", &squeue).0,
        format!("{}|{}", &iso[..4], &iso[5..7])
    );
    // No `%`: refused once per command, and the ISO form is used.
    assert_eq!(
        shown("bogus", &squeue),
        (
            iso.clone(),
            "squeue: error: invalid SLURM_TIME_FORMAT = 'bogus'\n".into()
        )
    );
    let (show, _) = shown("%s", &["scontrol", "show", "job", &id]);
    assert!(show.contains(&format!("SubmitTime={epoch} ")), "{show}");
}

/// The fields `scontrol show job` adds after `WorkDir=` and `Power=` for some options, in the
/// order and with the blanks of Slurm 22.05 (docs/slurm-observed.md 48).
#[test]
fn scontrol_show_job_optional_fields() {
    let c = TestCluster::fast();
    let id = c.submit(&[
        "-H",
        "--mem",
        "100",
        "-o",
        "/dev/null",
        "--comment=two words",
        "--switches=1@10",
        "--bb=x",
        "--cpu-freq=low-high:ondemand",
        "--power=level",
        "--spread-job",
        "--kill-on-invalid-dep=yes",
        "--gres-flags=enforce-binding",
        "--mail-type=end,begin",
        "--container=/tmp",
        "--cluster-constraint=x",
        "--reboot",
        "--wrap",
        "true",
    ]);
    let (out, _, code) = c.run("scontrol", &["-o", "show", "job", &id.to_string()]);
    assert_eq!(code, 0);
    let user = mock_cluster::cli::slurm::identity().0;
    let from = out.find(" Features=").unwrap_or(0);
    let tail = out[from..]
        .replace(&c.work.display().to_string(), "<CWD>")
        .replace(&format!("MailUser={user} "), "MailUser=<USER> ");
    insta::assert_snapshot!("scontrol_show_job_optional_fields", tail);
    assert!(out.contains(" Reboot=1 "), "{out}");
    assert!(out.contains(" AccrueTime=Unknown "), "{out}");
    assert!(out.contains(" NodeList= "), "{out}");
}
