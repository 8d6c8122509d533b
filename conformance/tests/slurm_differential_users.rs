//! Differential case of two local users sharing a cluster (`ci-alice` and `ci-bob`, made by
//! `ci/users`): a job of ci-alice runs as her, its files are hers, every command shows her as
//! its owner, and ci-bob's attempts to cancel, requeue, hold or step into it are refused with
//! Slurm's words. The same calls on real Slurm 22.05 and on the simulated cluster (started by
//! root, as `slurmctld` runs) must print the same lines and exit alike. The shared machinery is
//! in `differential/mod.rs`.
//!
//! Needs root and the two users; without them the case says loudly that it did not run, and
//! with `CI=true` it fails.

mod differential;

use std::os::unix::fs::MetadataExt;

use conformance::normalize::submitted_job_id;
use conformance::poll::poll_until;
use conformance::slurm_env::{FakeCluster, LocalUser, RunOptions};
use differential::*;

fn differential(name: &str, fake: FakeCluster, case: Case) {
    if let Err(report) = differential_result(name, fake, case) {
        panic!("{report}");
    }
}

/// Whether this process can run commands as the two users; says loudly when not, and fails
/// under `CI=true`.
fn users_ready(name: &str) -> bool {
    let why = if !nix::unistd::geteuid().is_root() {
        "the tests do not run as root"
    } else if LocalUser::lookup("ci-alice").is_none() || LocalUser::lookup("ci-bob").is_none() {
        "the users ci-alice and ci-bob do not exist"
    } else {
        return true;
    };
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "case `{name}` must run with CI=true, but {why} (run `ci/users` as root)"
    );
    loud(&format!(
        "DIFFERENTIAL CASE `{name}` DID NOT RUN: {why} (run `ci/users` as root)"
    ));
    false
}

fn user(name: &str) -> Result<LocalUser, CaseError> {
    LocalUser::lookup(name).map_or_else(|| fail(format!("no user {name}")), Ok)
}

fn as_user(who: &LocalUser) -> RunOptions {
    RunOptions {
        user: Some(who.clone()),
        ..RunOptions::default()
    }
}

/// Runs a submission as `options` says, records it and learns the job id it printed.
fn submit_with(
    s: &mut Side,
    key: &str,
    argv: &[&str],
    options: &RunOptions,
) -> Result<u64, CaseError> {
    let out = s.run_with(key, argv, options)?;
    match submitted_job_id(&out.stdout) {
        Some(id) => {
            s.norm.learn(id);
            Ok(id)
        }
        None => fail(format!(
            "`{}` printed no job id: stdout {:?}, stderr {:?}",
            argv.join(" "),
            out.stdout,
            out.stderr
        )),
    }
}

/// `user:group` owning a file below the working directory.
fn owner_of(s: &Side, relative: &str) -> String {
    match std::fs::metadata(s.env.cwd().join(relative)) {
        Ok(meta) => {
            let user = nix::unistd::User::from_uid(meta.uid().into())
                .ok()
                .flatten()
                .map_or_else(|| meta.uid().to_string(), |u| u.name);
            let group = nix::unistd::Group::from_gid(meta.gid().into())
                .ok()
                .flatten()
                .map_or_else(|| meta.gid().to_string(), |g| g.name);
            format!("{user}:{group}")
        }
        Err(e) => format!("(no owner: {e})"),
    }
}

fn jobs_of_other_users(s: &mut Side) -> CaseResult {
    let alice = user("ci-alice")?;
    let bob = user("ci-bob")?;
    s.env.share_with_local_users()?;
    let home = s.env.cwd().join("alice");
    std::fs::create_dir(&home).map_err(|e| CaseError(format!("mkdir alice: {e}")))?;
    std::os::unix::fs::chown(&home, Some(alice.uid), Some(alice.gid))
        .map_err(|e| CaseError(format!("chown alice: {e}")))?;
    let in_her_dir = RunOptions {
        subdir: Some("alice".into()),
        ..as_user(&alice)
    };
    let as_bob = as_user(&bob);

    let id = submit_with(
        s,
        "sbatch as ci-alice",
        &[
            "sbatch",
            "--parsable",
            "-c",
            "1",
            "--mem",
            "100",
            "-o",
            "out.txt",
            "--wrap",
            "id -un; id -Gn; echo \"HOME=$HOME USER=$USER\"; srun id -un; echo started; exec sleep 300",
        ],
        &in_her_dir,
    )?;
    s.wait_for_state(id, &["RUNNING"])?;
    let output = s.env.cwd().join("alice/out.txt");
    if !poll_until(STATE_DEADLINE, || {
        std::fs::read_to_string(&output).is_ok_and(|t| t.contains("started\n"))
    }) {
        return fail("her job printed nothing");
    }
    let job = id.to_string();
    // Real accounting records the job's owner with its start (slurm-observed.md 61): wait for
    // it, so that sacct compares the owner, not that race.
    if real_accounting() {
        s.poll_output(
            "accounting did not hear of her job's start",
            &["sacct", "-j", &job, "-X", "-n", "-P", "-o", "UID,State"],
            |out| out.trim() == format!("{}|RUNNING", alice.uid),
        )?;
    }
    s.run_with(
        "squeue as ci-bob",
        &["squeue", "-h", "-j", &job, "-o", "%u %U %g %G %T"],
        &as_bob,
    )?;
    s.run_with("squeue --me as ci-bob", &["squeue", "-h", "--me"], &as_bob)?;
    s.record_scontrol("her job", id, &["UserId", "GroupId"])?;
    s.run_with("scancel as ci-bob", &["scancel", &job], &as_bob)?;
    s.run_with(
        "scancel -u ci-alice as ci-bob",
        &["scancel", "-u", "ci-alice"],
        &as_bob,
    )?;
    s.run_with(
        "scontrol requeue as ci-bob",
        &["scontrol", "requeue", &job],
        &as_bob,
    )?;
    s.run_with(
        "a step in her job as ci-bob",
        &["srun", "true"],
        &RunOptions {
            env: vec![("SLURM_JOB_ID".into(), job.clone())],
            ..as_user(&bob)
        },
    )?;
    s.record_state("her job after ci-bob", id)?;

    let held = submit_with(
        s,
        "sbatch -H as ci-alice",
        &[
            "sbatch",
            "--parsable",
            "-H",
            "-c",
            "1",
            "--mem",
            "100",
            "-o",
            "/dev/null",
            "--wrap",
            "true",
        ],
        &in_her_dir,
    )?;
    let held_job = held.to_string();
    for verb in ["hold", "uhold", "release"] {
        s.run_with(
            &format!("scontrol {verb} as ci-bob"),
            &["scontrol", verb, &held_job],
            &as_bob,
        )?;
    }
    s.run_with(
        "scontrol update as ci-bob",
        &[
            "scontrol",
            "update",
            &format!("jobid={held_job}"),
            "dependency=afterok:1",
        ],
        &as_bob,
    )?;
    s.record_state("her held job after ci-bob", held)?;

    s.run_with(
        "scancel as ci-alice",
        &["scancel", &job, &held_job],
        &in_her_dir,
    )?;
    s.wait_until_finished(id)?;
    s.wait_until_finished(held)?;
    s.record_file("her output", "alice/out.txt");
    let owner = owner_of(s, "alice/out.txt");
    s.note("owner of her output", owner);
    if real_accounting() {
        let argv = [
            "sacct",
            "-j",
            &job,
            "-X",
            "-n",
            "-P",
            "-o",
            "JobID,User,Group,UID,GID,State",
        ];
        let mut last = None;
        poll_until(SACCT_DEADLINE, || {
            let out = s.env.run_with(&argv, &as_bob);
            let done = out
                .as_ref()
                .is_ok_and(|o| o.stdout.contains("|CANCELLED by "));
            last = out.ok();
            done
        });
        match last {
            Some(out) => s.record("sacct -j as ci-bob", &argv, &out),
            None => return fail("sacct did not run"),
        }
    } else {
        s.note(
            "sacct -j as ci-bob",
            "(not compared: real Slurm has no accounting)",
        );
    }

    // Her files are opened as her, and her working directory entered as her.
    let failed = submit_with(
        s,
        "output where she may not write",
        &[
            "sbatch",
            "--parsable",
            "-c",
            "1",
            "--mem",
            "100",
            "-o",
            "/root/batchci-not-hers.out",
            "--wrap",
            "true",
        ],
        &in_her_dir,
    )?;
    s.record_final_state("output where she may not write, state", failed)?;
    s.record_sacct("output where she may not write, sacct", failed, 1)?;
    let chdir_out = format!("{}/chdir.out", home.display());
    let chdir = submit_with(
        s,
        "working directory she may not enter",
        &[
            "sbatch",
            "--parsable",
            "-c",
            "1",
            "--mem",
            "100",
            "-D",
            "/root",
            "-o",
            &chdir_out,
            "--wrap",
            "pwd",
        ],
        &in_her_dir,
    )?;
    s.wait_until_finished(chdir)?;
    s.record_file(
        "working directory she may not enter, output",
        "alice/chdir.out",
    );
    Ok(())
}

#[test]
fn a_job_belongs_to_its_submitter_and_runs_as_her() {
    let name = "jobs_of_other_users";
    if users_ready(name) {
        differential(name, FakeCluster::mirroring_ci_slurm(), jobs_of_other_users);
    }
}
