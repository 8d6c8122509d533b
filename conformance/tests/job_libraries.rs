//! Five Python job libraries run their normal workflow against the fake Slurm exactly as against
//! real Slurm 22.05: submitit, PSI/J (`slurm` executor), parsl (SlurmProvider +
//! HighThroughputExecutor), dask-jobqueue (SLURMCluster) and ReFrame (`scheduler: 'slurm'`,
//! `launcher: 'srun'`). Each story runs one scenario script of `conformance/job-libraries/` with
//! the Python of `BATCHCI_JOB_LIBRARIES_PYTHON` (the venv `ci/test` builds from
//! `conformance/job-libraries/requirements.txt`): on a fresh simulated cluster (its `bin/` first
//! on `PATH`) and, when real Slurm is available, on it too. The scenario prints stable lines (no
//! ids, times or paths); each side must print exactly the expected lines, and so the same.
//!
//! Without the Python the stories fail with `CI=true` and otherwise say loudly that they did not
//! run. Real Slurm is required when `BATCHCI_REAL_SLURM=1` or `CI=true`, as in the differential
//! suite; the real node is taken with the same cross-process lock (`NodeLock`).

mod differential;

use std::path::{Path, PathBuf};

use conformance::slurm_env::{Backend, FakeCluster, RunOptions, RunOutput, SlurmEnv};
use differential::{NodeLock, loud, real_required};

/// Where `ci/test` puts the venv's Python.
const PYTHON_VAR: &str = "BATCHCI_JOB_LIBRARIES_PYTHON";

fn python() -> Option<PathBuf> {
    let python = PathBuf::from(std::env::var_os(PYTHON_VAR)?);
    python.is_file().then_some(python)
}

fn scenario(script: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("job-libraries")
        .join(script)
}

/// Runs the scenario in the environment's private working directory. `PATH` is the side's Slurm
/// commands first (the fakes' `bin/`, or the system's for real Slurm), then the venv's `bin/`:
/// parsl starts `process_worker_pool.py` and ReFrame is `reframe`, both found on `PATH`, also
/// inside the jobs (which inherit the submitter's environment, `--export=ALL`).
fn run_scenario(env: &SlurmEnv, python: &Path, script: &str) -> RunOutput {
    let venv_bin = python.parent().expect("the venv's bin directory");
    let system_path = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
    let path = match env.backend() {
        Backend::Fake { state_dir, .. } => format!(
            "{}:{}:{system_path}",
            state_dir.join("bin").display(),
            venv_bin.display()
        ),
        Backend::Real { .. } => format!("{}:{system_path}", venv_bin.display()),
    };
    let options = RunOptions {
        env: vec![
            ("PATH".into(), path),
            ("PYTHONUNBUFFERED".into(), "1".into()),
            // ReFrame imports the checks from the source tree: no __pycache__ there.
            ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
        ],
        ..RunOptions::default()
    };
    let script = scenario(script);
    env.run_with(
        &[&python.to_string_lossy(), &script.to_string_lossy()],
        &options,
    )
    .unwrap_or_else(|e| panic!("{} on the {} side: {e}", script.display(), env.kind()))
}

fn describe(side: &str, out: &RunOutput) -> String {
    format!(
        "--- {side} ({}) stdout:\n{}\n--- {side} stderr (last 60 lines):\n{}",
        out.status_text(),
        out.stdout,
        tail(&out.stderr, 60)
    )
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// One library's story: the scenario prints `expected` on the fakes and, when there is one, on
/// real Slurm.
fn story(library: &str, script: &str, expected: &str) {
    let Some(python) = python() else {
        let message = format!(
            "job_libraries: {library} DID NOT RUN: {PYTHON_VAR} names no Python (ci/test builds \
             the venv from conformance/job-libraries/requirements.txt)"
        );
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{message}, and CI=true");
        }
        loud(&message);
        return;
    };

    let fake = SlurmEnv::fake(&FakeCluster::mirroring_ci_slurm()).expect("a simulated cluster");
    let fake_out = run_scenario(&fake, &python, script);

    let real_out = match SlurmEnv::real_from_env() {
        Ok(Some(real)) => {
            let _node = NodeLock::acquire();
            Some(run_scenario(&real, &python, script))
        }
        Ok(None) if real_required() => {
            panic!("job_libraries: {library}: real Slurm is required here but does not answer")
        }
        Ok(None) => {
            loud(&format!(
                "job_libraries: {library} ran on the fakes only: real Slurm part DID NOT RUN \
                 (no SLURM_CONF or its controller does not answer)"
            ));
            None
        }
        Err(e) => panic!("job_libraries: {library}: real Slurm: {e}"),
    };

    let mut report = describe("fake", &fake_out);
    if let Some(real) = &real_out {
        report.push('\n');
        report.push_str(&describe("real", real));
    }
    assert_eq!(
        (fake_out.stdout.as_str(), fake_out.code),
        (expected, Some(0)),
        "{library} on the fakes\n{report}"
    );
    if let Some(real) = &real_out {
        assert_eq!(
            (real.stdout.as_str(), real.code),
            (expected, Some(0)),
            "{library} on real Slurm\n{report}"
        );
        assert_eq!(
            fake_out.stdout, real.stdout,
            "{library}: fake and real differ"
        );
    }
}

#[test]
fn submitit_submits_maps_an_array_fails_and_cancels_as_on_slurm() {
    story(
        "submitit",
        "submitit_scenario.py",
        "\
add result 5
add state COMPLETED
add stdout exists True
add log says ['Job completed successfully']
add stderr ''
fail exception FailedJobError
fail message has ValueError True
fail state FAILED
exit 3 exception FailedJobError
exit 3 says code True
exit 3 state FAILED
array results [1, 4, 9, 16]
array ids share a job 1
array tasks ['0', '1', '2', '3']
array states ['COMPLETED']
inverse states ['COMPLETED', 'FAILED', 'COMPLETED']
inverse outcomes [1.0, 'FailedJobError', 0.25]
where [('global_rank', 0), ('hostnames', ['localhost']), ('job_id_matches', True), ('num_nodes', 1), ('num_tasks', 1), ('scontrol', ['localhost'])]
nap state before cancel RUNNING
nap state after cancel CANCELLED
nap exception UncompletedJobError
",
    );
}

#[test]
fn psij_runs_fails_builds_its_node_file_and_cancels_as_on_slurm() {
    story(
        "psij-python",
        "psij_scenario.py",
        "\
hello state COMPLETED exit 0
hello stdout hello on localhost
fails state FAILED exit 7
fails stderr to stderr
nodes state COMPLETED exit 0
nodes nodefile 2 localhost
ranks state COMPLETED exit 0
ranks stdout ['rank 0 of 2', 'rank 1 of 2']
rankfails state FAILED exit 6
sleeper state ACTIVE
sleeper listed True
attached state ACTIVE
sleeper state after cancel CANCELED
attached state after cancel CANCELED
",
    );
}

#[test]
fn parsl_runs_apps_on_a_slurm_block_and_cancels_it_as_on_slurm() {
    story(
        "parsl",
        "parsl_scenario.py",
        "\
add 5
fail raised ValueError no good
shell ok 0 fine
shell exit BashExitFailure 3
where ['localhost'] nodes 1 step 0
blocks 1
block status ['RUNNING']
cancel [True]
block status after cancel ['CANCELLED']
",
    );
}

#[test]
fn dask_jobqueue_scales_a_slurm_cluster_up_and_down_as_on_slurm() {
    story(
        "dask-jobqueue",
        "dask_jobqueue_scenario.py",
        "\
script directives ['--cpus-per-task=1', '--mem=954M', '-J', '-e', '-n', '-o', '-p', '-t']
workers 1
add 5
fail raised ValueError no good
where (['localhost'], '1', '1')
map [0, 1, 4, 9, 16]
jobs 1
worker job queued [['RUNNING']]
jobs after scale down 0
worker job queued after scale down [[]]
",
    );
}

#[test]
fn reframe_runs_passing_and_failing_tests_and_cancels_on_interrupt_as_on_slurm() {
    story(
        "reframe-hpc",
        "reframe_scenario.py",
        "\
run exit 1
ExitThree pass phase None exitcode 3 nodelist ['localhost'] jobid is a number True
Flexible pass phase None exitcode 0 nodelist ['localhost'] jobid is a number True
Hello pass phase None exitcode 0 nodelist ['localhost'] jobid is a number True
Hostnames pass phase None exitcode 0 nodelist ['localhost'] jobid is a number True
WrongOutput fail phase sanity exitcode 0 nodelist ['localhost'] jobid is a number True
summary 5 cases 1 failed
sleeper before interrupt ['RUNNING']
interrupted exit 1
interrupted says [    ABORT ] (1/1) Sleeper /3096fb9e @batchci:debug+plain
interrupted says [ ABORTED  ] Ran 0/1 test case(s) from 1 check(s) (0 failure(s), 0 expected failure(s), 0 skipped, 1 aborted)
interrupted says WARNING: run session stopped: cancelled by user
sleeper after interrupt []
",
    );
}
