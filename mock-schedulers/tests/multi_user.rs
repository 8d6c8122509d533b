//! A cluster started by root and used by two local users, `ci-alice` and `ci-bob` (made by
//! `ci/users`), as a site's users share a real cluster: a job belongs to its submitter, runs as
//! its submitter (groups included), writes files its submitter owns, shows its submitter in
//! every scheduler's status commands, and another user cannot cancel it. The call record names
//! who called, as the kernel reports it.
//!
//! The stories need root and the two users. Without them they say loudly that they did not
//! run; with `CI=true` they fail.

mod common;

use std::io::Write as _;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{FAST_CLUSTER, TestCluster, wait_file_contains, wait_for};

/// A local test user.
struct Person {
    name: &'static str,
    uid: u32,
    gid: u32,
    home: PathBuf,
}

impl Person {
    fn lookup(name: &'static str) -> Option<Person> {
        let user = nix::unistd::User::from_name(name).ok().flatten()?;
        Some(Person {
            name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            home: user.dir,
        })
    }
}

/// Says loudly, past the test harness's capture, that a story did not run; fails under CI.
fn did_not_run(story: &str, why: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "multi-user story `{story}` must run with CI=true, but {why} (run `ci/users` as root)"
    );
    let _ = writeln!(
        std::io::stderr(),
        "\n!!! MULTI-USER STORY `{story}` DID NOT RUN: {why} (run `ci/users` as root)\n"
    );
}

/// A cluster started by root whose state directory and work directory the two users reach:
/// the work directory is ci-alice's.
struct Shared {
    c: TestCluster,
    alice: Person,
    bob: Person,
}

impl Shared {
    /// `None` (said loudly) when this is not root or the users are missing.
    fn start(story: &str, toml: &str) -> Option<Shared> {
        if !nix::unistd::geteuid().is_root() {
            did_not_run(story, "the tests do not run as root");
            return None;
        }
        let (Some(alice), Some(bob)) = (Person::lookup("ci-alice"), Person::lookup("ci-bob"))
        else {
            did_not_run(story, "the users ci-alice and ci-bob do not exist");
            return None;
        };
        let c = TestCluster::with_config(toml);
        // The temporary directory is root's alone (0700); the users must reach inside it.
        set_mode(c.tmp.path(), 0o755);
        std::os::unix::fs::chown(&c.work, Some(alice.uid), Some(alice.gid)).unwrap();
        // Root starts the daemon, as a site's scheduler runs as root.
        let out = c.admin(&["start"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(Shared { c, alice, bob })
    }

    /// A fake command run by `who` in the work directory, with the environment a login of
    /// that user has (`USER`, `LOGNAME`, `HOME`).
    fn cmd(&self, who: &Person, prog: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.c.state.join("bin").join(prog));
        cmd.args(args)
            .env_clear()
            .env("PATH", self.c.path_var())
            .env("MOCK_CLUSTER_STATE_DIR", &self.c.state)
            .env("USER", who.name)
            .env("LOGNAME", who.name)
            .env("HOME", &who.home)
            .current_dir(&self.c.work)
            .uid(who.uid)
            .gid(who.gid);
        cmd
    }

    /// Runs a fake as `who` with `stdin`; (stdout, stderr, exit code).
    fn run_in(
        &self,
        who: &Person,
        prog: &str,
        args: &[&str],
        stdin: &str,
    ) -> (String, String, i32) {
        let mut child = self
            .cmd(who, prog, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        let out = child.wait_with_output().unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.status.code().unwrap_or(-1),
        )
    }

    fn run(&self, who: &Person, prog: &str, args: &[&str]) -> (String, String, i32) {
        self.run_in(who, prog, args, "")
    }

    /// The calls the cluster recorded, as `mock-cluster calls --json` prints them.
    fn calls(&self) -> Vec<serde_json::Value> {
        let out = self.c.admin(&["calls", "--json"]);
        assert!(out.status.success());
        let calls: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        calls.as_array().unwrap().clone()
    }

    /// `(program, user, uid, exit code)` of every recorded call.
    fn callers(&self) -> Vec<(String, String, u64, i64)> {
        self.calls()
            .iter()
            .map(|c| {
                (
                    c["program"].as_str().unwrap().to_string(),
                    c["user"].as_str().unwrap().to_string(),
                    c["uid"].as_u64().unwrap(),
                    c["exit_code"].as_i64().unwrap(),
                )
            })
            .collect()
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `(uid, gid)` owning a file.
fn owner(path: &Path) -> (u32, u32) {
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (meta.uid(), meta.gid())
}

fn with_flavor(flavor: &str) -> String {
    FAST_CLUSTER.replace(
        "min_job_age = 300\n",
        &format!("min_job_age = 300\nflavor = \"{flavor}\"\n"),
    )
}

/// What a job prints about itself: who it runs as, its groups and login variables.
const WHOAMI: &str = "id -un; id -Gn; echo \"HOME=$HOME USER=$USER\"; touch made-by-job";

#[test]
fn a_slurm_job_is_its_submitters_and_only_she_may_cancel_it() {
    let Some(s) = Shared::start("slurm", FAST_CLUSTER) else {
        return;
    };
    let (alice, bob) = (&s.alice, &s.bob);
    let (out, err, code) = s.run(
        alice,
        "sbatch",
        &[
            "--parsable",
            "-o",
            "out-%j-%u.txt",
            "--wrap",
            &format!("{WHOAMI}; srun id -un; echo started; exec sleep 600"),
        ],
    );
    assert_eq!((err.as_str(), code), ("", 0));
    let id = out.trim().to_string();
    let output = s.c.path(&format!("out-{id}-ci-alice.txt"));
    // The job runs as ci-alice with her groups (initgroups: ci-team too) and the
    // environment sbatch took from her login; so does its step.
    assert_eq!(
        wait_file_contains(&output, "started\n"),
        "ci-alice\nci-alice ci-team\nHOME=/home/ci-alice USER=ci-alice\nci-alice\nstarted\n"
    );
    assert_eq!(owner(&output), (alice.uid, alice.gid));
    assert_eq!(owner(&s.c.path("made-by-job")), (alice.uid, alice.gid));
    // Every status command shows her as the owner, whoever asks.
    assert_eq!(
        s.run(bob, "squeue", &["-h", "-o", "%i %u %U %g %T"]),
        (
            format!("{id} ci-alice {} ci-alice RUNNING\n", alice.uid),
            String::new(),
            0
        )
    );
    let (show, _, _) = s.run(bob, "scontrol", &["show", "job", &id]);
    assert_eq!(
        show.lines().nth(1),
        Some(
            format!(
                "   UserId=ci-alice({}) GroupId=ci-alice({}) MCS_label=N/A",
                alice.uid, alice.gid
            )
            .as_str()
        )
    );
    // --me and -u filter by owner.
    assert_eq!(
        s.run(bob, "squeue", &["-h", "--me"]),
        (String::new(), String::new(), 0)
    );
    assert_eq!(
        s.run(alice, "squeue", &["-h", "--me", "-o", "%i %u"]),
        (format!("{id} ci-alice\n"), String::new(), 0)
    );
    assert_eq!(
        s.run(bob, "squeue", &["-h", "-u", "ci-alice", "-o", "%i"]),
        (format!("{id}\n"), String::new(), 0)
    );
    // ci-bob may not touch it (observed on Slurm 22.05: exit 210, ESLURM_ACCESS_DENIED).
    let denied =
        format!("scancel: error: Kill job error on job id {id}: Access/permission denied\n");
    assert_eq!(
        s.run(bob, "scancel", &[&id]),
        (String::new(), denied.clone(), 210)
    );
    assert_eq!(
        s.run(bob, "scancel", &["-u", "ci-alice"]),
        (String::new(), denied, 210)
    );
    assert_eq!(
        s.run(bob, "scontrol", &["requeue", &id]),
        (
            String::new(),
            format!("Access/permission denied for job {id}\n"),
            1
        )
    );
    // Holding, releasing or changing her pending job: "Invalid user id" (observed).
    let (pending, _, code) = s.run(alice, "sbatch", &["--parsable", "-H", "--wrap", "true"]);
    assert_eq!(code, 0);
    let pending = pending.trim().to_string();
    for verb in ["hold", "uhold", "release"] {
        assert_eq!(
            s.run(bob, "scontrol", &[verb, &pending]),
            (
                String::new(),
                format!(
                    "Invalid user id for job {pending}\nslurm_suspend error: Invalid user id\n"
                ),
                1
            ),
            "{verb}"
        );
    }
    assert_eq!(
        s.run(
            bob,
            "scontrol",
            &[
                "update",
                &format!("jobid={pending}"),
                "dependency=afterok:1"
            ]
        ),
        (
            String::new(),
            format!("Invalid user id for job {pending}\n"),
            1
        )
    );
    assert_eq!(
        s.c.job_field(pending.parse().unwrap(), "%T %r"),
        "PENDING JobHeldUser"
    );
    let mut step = s.cmd(bob, "srun", &["true"]);
    step.env("SLURM_JOB_ID", &id);
    let out = step.output().unwrap();
    assert_eq!(
        (
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.status.code()
        ),
        (
            format!("srun: error: Unable to create step for job {id}: Access/permission denied\n"),
            Some(1)
        )
    );
    assert_eq!(s.c.state_of(id.parse().unwrap()), "RUNNING");
    // sacct shows a user his own jobs; named jobs are everyone's to see.
    let (held, _, code) = s.run(bob, "sbatch", &["--parsable", "-H", "--wrap", "true"]);
    assert_eq!(code, 0);
    let held = held.trim().to_string();
    assert_eq!(
        s.run(bob, "sacct", &["-X", "-n", "-P", "-o", "JobID,User"]),
        (format!("{held}|ci-bob\n"), String::new(), 0)
    );
    assert_eq!(
        s.run(
            bob,
            "sacct",
            &[
                "-j",
                &id,
                "-X",
                "-n",
                "-P",
                "-o",
                "JobID,User,Group,UID,GID"
            ]
        ),
        (
            format!("{id}|ci-alice|ci-alice|{}|{}\n", alice.uid, alice.gid),
            String::new(),
            0
        )
    );
    // She may.
    assert_eq!(
        s.run(alice, "scancel", &[&id]),
        (String::new(), String::new(), 0)
    );
    s.c.wait_state(id.parse().unwrap(), "CANCELLED");
    assert_eq!(
        s.run(
            alice,
            "sacct",
            &["-j", &id, "-X", "-n", "-P", "-o", "State"]
        ),
        (format!("CANCELLED by {}\n", alice.uid), String::new(), 0)
    );
    // The cluster is root's to stop.
    let mut stop = Command::new(common::exe());
    stop.args(["stop", "--state-dir"])
        .arg(&s.c.state)
        .env_clear()
        .uid(bob.uid)
        .gid(bob.gid);
    let out = stop.output().unwrap();
    assert_eq!(
        (
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.status.code()
        ),
        (
            "mock-cluster: error: only root may stop this cluster, not ci-bob\n".into(),
            Some(1)
        )
    );
    // The call record says who called, as the kernel told the daemon.
    let callers: Vec<(String, String, u64, i64)> = s
        .callers()
        .into_iter()
        .filter(|(p, ..)| p == "sbatch" || p == "scancel")
        .collect();
    let (a, b) = (u64::from(alice.uid), u64::from(bob.uid));
    assert_eq!(
        callers,
        [
            ("sbatch".into(), "ci-alice".into(), a, 0),
            ("scancel".into(), "ci-bob".into(), b, 210),
            ("scancel".into(), "ci-bob".into(), b, 210),
            ("sbatch".into(), "ci-alice".into(), a, 0),
            ("sbatch".into(), "ci-bob".into(), b, 0),
            ("scancel".into(), "ci-alice".into(), a, 0),
        ]
    );
}

#[test]
fn a_slurm_job_opens_its_files_as_its_submitter() {
    let Some(s) = Shared::start("slurm output files", FAST_CLUSTER) else {
        return;
    };
    // /root is root's alone: slurmstepd, acting as the user, cannot open the file there, and
    // the job fails to launch (observed on Slurm 22.05: FAILED, ExitCode 0:53).
    let (out, _, code) = s.run(
        &s.alice,
        "sbatch",
        &[
            "--parsable",
            "-o",
            "/root/mock-cluster-denied.out",
            "--wrap",
            "true",
        ],
    );
    assert_eq!(code, 0);
    let id: u32 = out.trim().parse().unwrap();
    s.c.wait_state(id, "FAILED");
    assert_eq!(
        s.run(
            &s.alice,
            "sacct",
            &[
                "-j",
                &id.to_string(),
                "-X",
                "-n",
                "-P",
                "-o",
                "State,ExitCode"
            ]
        ),
        ("FAILED|0:53\n".into(), String::new(), 0)
    );
    assert!(!Path::new("/root/mock-cluster-denied.out").exists());
    // A working directory she may not enter: slurmstepd says so (twice, as observed on Slurm
    // 22.05) and goes to /tmp.
    let out_path = s.c.path("chdir.out");
    let out_arg = out_path.display().to_string();
    let (out, _, code) = s.run(
        &s.alice,
        "sbatch",
        &["--parsable", "-D", "/root", "-o", &out_arg, "--wrap", "pwd"],
    );
    assert_eq!(code, 0);
    s.c.wait_state(out.trim().parse().unwrap(), "COMPLETED");
    assert_eq!(
        std::fs::read_to_string(&out_path).unwrap(),
        "slurmstepd-localhost: error: couldn't chdir to `/root': Permission denied: going to /tmp instead\n"
            .repeat(2)
            + "/tmp\n"
    );
    // Interactive jobs run in the caller's own process, as the caller.
    assert_eq!(
        s.run(&s.bob, "srun", &["id", "-un"]),
        ("ci-bob\n".into(), String::new(), 0)
    );
}

#[test]
fn a_pbs_job_is_its_submitters_and_only_she_may_delete_it() {
    let Some(s) = Shared::start("pbs", &with_flavor("pbs")) else {
        return;
    };
    let (alice, bob) = (&s.alice, &s.bob);
    // The script on stdin; the output comes back into the submission directory at the end.
    let (out, err, code) = s.run_in(
        alice,
        "qsub",
        &[],
        &format!(
            "{WHOAMI}; touch \"$TMPDIR/mine\" && echo tmpdir-ok; echo started >&2; sleep 600\n"
        ),
    );
    assert_eq!((err.as_str(), code), ("", 0));
    let id = out.trim().to_string();
    let seq = id.split('.').next().unwrap().to_string();
    wait_for("the job to run", || {
        s.run(bob, "qstat", &[&id]).0.contains(" R ")
    });
    let (table, _, _) = s.run(bob, "qstat", &[]);
    assert_eq!(
        table
            .lines()
            .nth(2)
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>()),
        Some(vec![id.as_str(), "STDIN", "ci-alice"])
    );
    let (full, _, _) = s.run(bob, "qstat", &["-f", &id]);
    let host = mock_cluster::host::short_hostname();
    assert!(
        full.contains(&format!("\n    Job_Owner = ci-alice@{host}\n")),
        "{full}"
    );
    assert!(
        full.contains("\n    euser = ci-alice\n    egroup = ci-alice\n"),
        "{full}"
    );
    // OpenPBS svr_chk_owner.c: PBSE_PERM "Unauthorized Request " (15007 & 0xff = 159).
    assert_eq!(
        s.run(bob, "qdel", &[&id]),
        (
            String::new(),
            format!("qdel: Unauthorized Request  {id}\n"),
            159
        )
    );
    assert_eq!(
        s.run(alice, "qdel", &[&id]),
        (String::new(), String::new(), 0)
    );
    let output = s.c.path(&format!("STDIN.o{seq}"));
    let error = s.c.path(&format!("STDIN.e{seq}"));
    assert_eq!(
        wait_file_contains(&output, "tmpdir-ok\n"),
        "ci-alice\nci-alice ci-team\nHOME=/home/ci-alice USER=ci-alice\ntmpdir-ok\n"
    );
    wait_file_contains(&error, "started\n");
    assert_eq!(owner(&output), (alice.uid, alice.gid));
    assert_eq!(owner(&error), (alice.uid, alice.gid));
}

#[test]
fn an_lsf_job_is_its_submitters_and_only_she_may_kill_it() {
    let Some(s) = Shared::start("lsf", FAST_CLUSTER) else {
        return;
    };
    let (alice, bob) = (&s.alice, &s.bob);
    let (out, err, code) = s.run(
        alice,
        "bsub",
        &[
            "-o",
            "lsf.out",
            &format!("{WHOAMI}; echo started; sleep 600"),
        ],
    );
    assert_eq!(
        (out.as_str(), err.as_str(), code),
        ("Job <1> is submitted to default queue <debug>.\n", "", 0)
    );
    wait_file_contains(&s.c.path("lsf.out"), "started\n");
    assert_eq!(owner(&s.c.path("lsf.out")), (alice.uid, alice.gid));
    assert_eq!(
        s.run(
            bob,
            "bjobs",
            &["-u", "all", "-noheader", "-o", "jobid user stat"]
        ),
        ("1       ci-alice RUN\n".into(), String::new(), 0)
    );
    // bjobs shows the caller's jobs by default.
    assert_eq!(
        s.run(bob, "bjobs", &[]),
        (String::new(), "No unfinished job found\n".into(), 0)
    );
    assert_eq!(
        s.run(bob, "bkill", &["1"]),
        (
            String::new(),
            "Job <1>: User permission denied\n".into(),
            255
        )
    );
    assert_eq!(
        s.run(alice, "bkill", &["1"]),
        ("Job <1> is being terminated\n".into(), String::new(), 0)
    );
    let report = wait_file_contains(&s.c.path("lsf.out"), "Sender: LSF System");
    assert!(
        report.starts_with(
            "ci-alice\nci-alice ci-team\nHOME=/home/ci-alice USER=ci-alice\nstarted\n"
        ),
        "{report}"
    );
    assert!(report.contains("by user <ci-alice>"), "{report}");
}

#[test]
fn a_flux_job_is_its_submitters_and_only_she_may_cancel_it() {
    let Some(s) = Shared::start("flux", FAST_CLUSTER) else {
        return;
    };
    let (alice, bob) = (&s.alice, &s.bob);
    let (out, err, code) = s.run(
        alice,
        "flux",
        &[
            "submit",
            "--output=flux.out",
            "sh",
            "-c",
            &format!("{WHOAMI}; echo started; sleep 600"),
        ],
    );
    assert_eq!((err.as_str(), code), ("", 0));
    let id = out.trim().to_string();
    wait_file_contains(&s.c.path("flux.out"), "started\n");
    assert_eq!(owner(&s.c.path("flux.out")), (alice.uid, alice.gid));
    assert_eq!(
        s.run(
            bob,
            "flux",
            &["jobs", "-A", "-n", "-o", "{id.f58} {username} {userid}"]
        ),
        (format!("{id} ci-alice {}\n", alice.uid), String::new(), 0)
    );
    // flux jobs lists the caller's own jobs by default.
    assert_eq!(
        s.run(bob, "flux", &["jobs", "-n"]),
        (String::new(), String::new(), 0)
    );
    // flux-core job-manager raise.c refuses a guest's exception on another user's job.
    assert_eq!(
        s.run(bob, "flux", &["cancel", &id]),
        (
            String::new(),
            format!(
                "flux-cancel: ERROR: {id}: guests can only raise exceptions on their own jobs\n"
            ),
            1
        )
    );
    assert_eq!(
        s.run(bob, "flux", &["cancel", "--all", "--user", "all"]),
        (
            String::new(),
            "flux-cancel: ERROR: guests can only raise exceptions on their own jobs\n".into(),
            1
        )
    );
    assert_eq!(
        s.run(alice, "flux", &["cancel", &id]),
        (String::new(), String::new(), 0)
    );
    assert_eq!(
        wait_file_contains(&s.c.path("flux.out"), "started\n"),
        "ci-alice\nci-alice ci-team\nHOME=/home/ci-alice USER=ci-alice\nstarted\n"
    );
}

#[test]
fn a_cobalt_job_is_its_submitters_and_another_users_qdel_finds_nothing() {
    let Some(s) = Shared::start("cobalt", &with_flavor("cobalt")) else {
        return;
    };
    let (alice, bob) = (&s.alice, &s.bob);
    let script = s.c.path("job.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\n{WHOAMI}\necho started\nsleep 600\n"),
    )
    .unwrap();
    set_mode(&script, 0o755);
    let (out, err, code) = s.run(alice, "qsub", &["-t", "10", "-n", "1", "./job.sh"]);
    assert_eq!((out.as_str(), err.as_str(), code), ("1\n", "", 0));
    wait_file_contains(&s.c.path("1.output"), "started\n");
    for file in ["1.output", "1.error", "1.cobaltlog"] {
        assert_eq!(owner(&s.c.path(file)), (alice.uid, alice.gid), "{file}");
    }
    let (table, _, _) = s.run(bob, "qstat", &[]);
    assert_eq!(
        table
            .lines()
            .nth(2)
            .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>()),
        Some(vec!["1", "ci-alice"])
    );
    // Cobalt's qdel deletes the caller's jobs among those named (cqm del_jobs matches the
    // user): another user's job is not found, and nothing is printed.
    assert_eq!(
        s.run(bob, "qdel", &["1"]),
        (String::new(), String::new(), 0)
    );
    assert_eq!(s.c.state_of(1), "RUNNING");
    let (out, _, code) = s.run(alice, "qdel", &["1"]);
    assert_eq!(
        (out.as_str(), code),
        (
            "      Deleted Jobs\nJobID  User      \n=================\n1      ci-alice  \n",
            0
        )
    );
    assert_eq!(
        std::fs::read_to_string(s.c.path("1.output")).unwrap(),
        "ci-alice\nci-alice ci-team\nHOME=/home/ci-alice USER=ci-alice\nstarted\n"
    );
}

#[test]
fn a_cluster_of_another_user_refuses_roots_jobs_with_a_clear_error() {
    let Some(s) = Shared::start("non-root daemon", FAST_CLUSTER) else {
        return;
    };
    let bob = &s.bob;
    // ci-bob's own cluster, in a directory of his.
    let dir = s.c.tmp.path().join("bobs");
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(bob.uid), Some(bob.gid)).unwrap();
    let state = dir.join("state");
    let mc = |who: Option<&Person>, args: &[&str]| {
        let mut cmd = Command::new(common::exe());
        cmd.args(args).arg("--state-dir").arg(&state).env_clear();
        if let Some(p) = who {
            cmd.uid(p.uid).gid(p.gid).env("HOME", &p.home);
        }
        cmd.output().unwrap()
    };
    assert!(mc(Some(bob), &["env"]).status.success());
    assert!(mc(Some(bob), &["start"]).status.success());
    // Only ci-bob may connect to it.
    let mode = std::fs::metadata(state.join("daemon.sock")).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let sbatch = |who: Option<&Person>| {
        let mut cmd = Command::new(state.join("bin/sbatch"));
        cmd.args(["--wrap", "true"])
            .env_clear()
            .env("MOCK_CLUSTER_STATE_DIR", &state)
            .current_dir(&dir);
        if let Some(p) = who {
            cmd.uid(p.uid).gid(p.gid);
        }
        cmd.output().unwrap()
    };
    let out = sbatch(None);
    assert_eq!(
        (
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.status.code()
        ),
        (
            format!(
                "sbatch: error: Batch job submission failed: this simulated cluster's daemon runs as ci-bob (uid {0}), not as root, and runs jobs of ci-bob only, not of root (uid 0); start the cluster as root to run jobs of other users\n",
                bob.uid
            ),
            Some(1)
        )
    );
    let out = sbatch(Some(bob));
    assert_eq!(
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            out.status.code()
        ),
        ("Submitted batch job 1\n".into(), Some(0))
    );
    assert!(mc(Some(bob), &["stop", "--cancel-jobs"]).status.success());
}
