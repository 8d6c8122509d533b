"""parsl's normal workflow (SlurmProvider + HighThroughputExecutor) against whatever Slurm is
first on PATH.

Run from an empty working directory; prints one stable line per observation (no job ids, times
or paths), so that the output on real Slurm 22.05 and on the fakes can be compared as text.
conformance/tests/job_libraries.rs runs it and asserts the exact lines. The provider submits a
block with `sbatch <file>` (its `srun --ntasks N -l bash cmd_<name>.sh` starts the worker pool,
which connects back over TCP to 127.0.0.1), follows it with `sacct -X --noheader
--format=jobid,state%20 --job <ids>` (after probing `sacct -X`) and cancels it with `scancel`.
"""

import signal
import sys
import time

import parsl
from parsl.app.app import bash_app, python_app
from parsl.app.errors import BashExitFailure
from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.launchers import SrunLauncher
from parsl.providers import SlurmProvider

# A scenario that hangs must end: the test reports its output so far.
signal.alarm(200)


def say(*parts):
    print(*parts, flush=True)


@python_app
def add(a, b):
    return a + b


@python_app
def fail():
    raise ValueError("no good")


@bash_app
def shell(command):
    return command


@python_app
def where():
    import os
    import subprocess

    hosts = subprocess.run(
        ["scontrol", "show", "hostnames", os.environ["SLURM_JOB_NODELIST"]],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return hosts, os.environ["SLURM_JOB_NUM_NODES"], os.environ.get("SLURM_STEP_ID")


def main():
    provider = SlurmProvider(
        partition="debug",
        nodes_per_block=1,
        init_blocks=1,
        min_blocks=0,
        max_blocks=1,
        walltime="00:05:00",
        # Not the whole node: the real node is shared, and --mem keeps real Slurm from giving
        # the block all of the node's memory (docs/slurm-observed.md fact 2).
        exclusive=False,
        mem_per_node=1,
        cores_per_node=1,
        launcher=SrunLauncher(),
    )
    executor = HighThroughputExecutor(
        label="htex",
        address="127.0.0.1",
        max_workers_per_node=1,
        provider=provider,
    )
    parsl.load(Config(executors=[executor], run_dir="runinfo", strategy="none"))

    say("add", add(2, 3).result())
    try:
        fail().result()
    except ValueError as error:
        say("fail raised", type(error).__name__, error)
    say("shell ok", shell("echo fine > shell.out").result(), open("shell.out").read().strip())
    try:
        shell("exit 3").result()
    except BashExitFailure as error:
        say("shell exit", type(error).__name__, error.exitcode)
    hosts, num_nodes, step = where().result()
    say("where", hosts, "nodes", num_nodes, "step", step)

    job_ids = list(provider.resources)
    say("blocks", len(job_ids))
    # The block has run every app, but sacct may still say PENDING: accounting lags the
    # controller (observed on real Slurm 22.05). Polling, as parsl's strategy does, ends it.
    while [s.state.name for s in provider.status(job_ids)] != ["RUNNING"]:
        time.sleep(0.2)
    say("block status", [s.state.name for s in provider.status(job_ids)])
    say("cancel", provider.cancel(job_ids))
    say("block status after cancel", [s.state.name for s in provider.status(job_ids)])
    parsl.dfk().cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
