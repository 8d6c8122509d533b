"""submitit's normal workflow against whatever Slurm is first on PATH.

Run from an empty working directory; prints one stable line per observation (no job ids, times
or paths), so that the output on real Slurm 22.05 and on the fakes can be compared as text.
conformance/tests/job_libraries.rs runs it and asserts the exact lines.
"""

import os
import signal
import subprocess
import sys
import time

import submitit

# A scenario that hangs must end: the test reports its output so far.
signal.alarm(200)


def say(*parts):
    print(*parts, flush=True)


def add(a, b):
    return a + b


def fail():
    raise ValueError("no good")


def square(x):
    return x * x


def inverse(x):
    return 1 / x


def where():
    env = submitit.JobEnvironment()
    nodelist = os.environ["SLURM_JOB_NODELIST"]
    hosts = subprocess.run(
        ["scontrol", "show", "hostnames", nodelist], check=True, capture_output=True, text=True
    ).stdout.split()
    return {
        "hostnames": env.hostnames,
        "scontrol": hosts,
        "num_nodes": env.num_nodes,
        "num_tasks": env.num_tasks,
        "global_rank": env.global_rank,
        "job_id_matches": env.job_id == os.environ["SLURM_JOB_ID"],
    }


INCOMPLETE = {"READY", "PENDING", "RUNNING", "UNKNOWN", "REQUEUED", "COMPLETING", "PREEMPTED"}


def forced_state(job):
    # job.state asks sacct at most every 2 s or more; a loop wants each answer fresh.
    return job.get_info(mode="force").get("State") or "UNKNOWN"


def final_state(job):
    # The result file can be there before sacct has recorded the end (as on real Slurm), and
    # job.done() trusts the file: ask sacct itself until it gives a final state.
    while True:
        state = forced_state(job)
        if state.split()[0] not in INCOMPLETE:
            return state
        time.sleep(0.2)


def nap(seconds):
    time.sleep(seconds)
    return "woke"


def main():
    executor = submitit.SlurmExecutor(folder="logs/%j")
    # --mem: without it a job takes the whole node's memory on real Slurm (docs/slurm-observed.md
    # fact 2) and the array's tasks could not run side by side.
    executor.update_parameters(partition="debug", time=5, mem="100M", cpus_per_task=1, ntasks_per_node=1)

    job = executor.submit(add, 2, 3)
    say("add result", job.result())
    say("add state", final_state(job))
    say("add stdout exists", os.path.exists(job.paths.stdout))
    say("add log says", [line.split(" - ")[-1] for line in job.stdout().splitlines() if "completed" in line])
    say("add stderr", repr(job.stderr()))

    job = executor.submit(fail)
    error = job.exception()
    say("fail exception", type(error).__name__)
    say("fail message has ValueError", "ValueError: no good" in str(error))
    say("fail state", final_state(job))

    job = executor.submit(submitit.helpers.CommandFunction(["sh", "-c", "echo out; exit 3"]))
    error = job.exception()
    say("exit 3 exception", type(error).__name__)
    say("exit 3 says code", "exit status 3" in str(error))
    say("exit 3 state", final_state(job))

    jobs = executor.map_array(square, [1, 2, 3, 4])
    say("array results", [j.result() for j in jobs])
    say("array ids share a job", len({j.job_id.split("_")[0] for j in jobs}))
    say("array tasks", sorted(j.job_id.split("_")[1] for j in jobs))
    say("array states", sorted({final_state(j) for j in jobs}))

    # One task of an array fails; the others are not affected.
    jobs = executor.map_array(inverse, [1, 0, 4])
    say("inverse states", [final_state(j) for j in jobs])
    say("inverse outcomes", [type(j.exception()).__name__ if j.exception() else j.result() for j in jobs])

    job = executor.submit(where)
    say("where", sorted(job.result().items()))

    job = executor.submit(nap, 600)
    while forced_state(job) != "RUNNING":
        time.sleep(0.2)
    say("nap state before cancel", forced_state(job))
    job.cancel()
    say("nap state after cancel", final_state(job).split()[0])
    say("nap exception", type(job.exception()).__name__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
