"""PSI/J's normal workflow (its `slurm` executor) against whatever Slurm is first on PATH.

Run from an empty working directory; prints one stable line per observation (no job ids, times
or paths), so that the output on real Slurm 22.05 and on the fakes can be compared as text.
conformance/tests/job_libraries.rs runs it and asserts the exact lines. PSI/J submits with
`sbatch <file>`, follows jobs with `squeue -O JobArrayID,StateCompact,Reason -t all --me`, cancels
with `scancel -Q` and builds the node file with `scontrol show hostnames` inside the job.
"""

import signal
import sys
from datetime import timedelta
from pathlib import Path

from psij import Job, JobAttributes, JobExecutor, JobSpec, JobState, ResourceSpecV1
from psij.executors.batch.slurm import SlurmExecutorConfig, SlurmJobExecutor

# PSI/J's poll (`squeue ... -t all --me`) sees every job of the user, and asserts that each failed
# job's reason is one it knows. On the real Slurm, shared with the differential suite, other
# failed jobs (e.g. reason `RaisedSignal:15(Terminated)`) would fail the poll and, after three
# failed polls, every job of this scenario. The reasons of this scenario's own jobs are all known.
_known_message = SlurmJobExecutor._get_message
SlurmJobExecutor._get_message = lambda self, reason: (
    _known_message(self, reason) if reason in SlurmJobExecutor._REASONS_MAP else reason
)

# A scenario that hangs must end: the test reports its output so far.
signal.alarm(200)


def say(*parts):
    print(*parts, flush=True)


def spec(name, script, launcher=None, **resources):
    # --mem: without it a job takes the whole node's memory on real Slurm (docs/slurm-observed.md
    # fact 2) and jobs could not share the node.
    return JobSpec(
        name=name,
        executable="/bin/sh",
        arguments=["-c", script],
        directory=Path.cwd(),
        stdout_path=Path(f"{name}.out"),
        stderr_path=Path(f"{name}.err"),
        resources=ResourceSpecV1(memory=100 * 1024 * 1024, **resources),
        attributes=JobAttributes(queue_name="debug", duration=timedelta(minutes=5)),
        launcher=launcher,
    )


def main():
    config = SlurmExecutorConfig(
        work_directory=Path("psij-work"), queue_polling_interval=1, initial_queue_polling_delay=1
    )
    executor = JobExecutor.get_instance("slurm", config=config)

    job = Job(spec("hello", "echo hello on $SLURM_JOB_NODELIST"))
    executor.submit(job)
    status = job.wait(timeout=timedelta(seconds=120))
    say("hello state", status.state, "exit", status.exit_code)
    say("hello stdout", Path("hello.out").read_text().strip())

    job = Job(spec("fails", "echo to stderr >&2; exit 7"))
    executor.submit(job)
    status = job.wait(timeout=timedelta(seconds=120))
    say("fails state", status.state, "exit", status.exit_code)
    say("fails stderr", Path("fails.err").read_text().strip())

    job = Job(spec("nodes", "sort $PSIJ_NODEFILE | uniq -c", process_count=2))
    executor.submit(job)
    status = job.wait(timeout=timedelta(seconds=120))
    say("nodes state", status.state, "exit", status.exit_code)
    say("nodes nodefile", " ".join(Path("nodes.out").read_text().split()))

    # The `srun` launcher: the executable runs as a step of process_count tasks.
    job = Job(spec("ranks", "echo rank $SLURM_PROCID of $SLURM_NTASKS", launcher="srun", process_count=2))
    executor.submit(job)
    status = job.wait(timeout=timedelta(seconds=120))
    say("ranks state", status.state, "exit", status.exit_code)
    say("ranks stdout", sorted(Path("ranks.out").read_text().splitlines()))

    job = Job(spec("rankfails", "exit $((5 + SLURM_PROCID))", launcher="srun", process_count=2))
    executor.submit(job)
    status = job.wait(timeout=timedelta(seconds=120))
    say("rankfails state", status.state, "exit", status.exit_code)

    job = Job(spec("sleeper", "sleep 600"))
    executor.submit(job)
    status = job.wait(timeout=timedelta(seconds=120), target_states=[JobState.ACTIVE])
    say("sleeper state", status.state)
    say("sleeper listed", job.native_id in executor.list())
    # Another Job object follows the same Slurm job by its native id, as a restarted client does.
    attached = Job()
    executor.attach(attached, job.native_id)
    status = attached.wait(timeout=timedelta(seconds=120), target_states=[JobState.ACTIVE])
    say("attached state", status.state)
    job.cancel()
    status = job.wait(timeout=timedelta(seconds=120))
    say("sleeper state after cancel", status.state)
    status = attached.wait(timeout=timedelta(seconds=120))
    say("attached state after cancel", status.state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
