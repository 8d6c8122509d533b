"""dask-jobqueue's normal workflow (SLURMCluster) against whatever Slurm is first on PATH.

Run from an empty working directory; prints one stable line per observation (no job ids, times
or paths), so that the output on real Slurm 22.05 and on the fakes can be compared as text.
conformance/tests/job_libraries.rs runs it and asserts the exact lines. SLURMCluster submits one
job per worker with `sbatch <file>` (`#SBATCH -J -e -o -n --cpus-per-task --mem -t -p`), reads the
id with a `\\d+` regular expression, and cancels with `scancel <id>` when it scales down; the
worker connects back over TCP to the scheduler on 127.0.0.1.
"""

import os
import signal
import subprocess
import sys
import time

from dask.distributed import Client
from dask_jobqueue import SLURMCluster

# A scenario that hangs must end: the test reports its output so far.
signal.alarm(200)


def say(*parts):
    print(*parts, flush=True)


def add(a, b):
    return a + b


def fail():
    raise ValueError("no good")


def where():
    hosts = subprocess.run(
        ["scontrol", "show", "hostnames", os.environ["SLURM_JOB_NODELIST"]],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return hosts, os.environ["SLURM_JOB_NUM_NODES"], os.environ["SLURM_CPUS_ON_NODE"]


def squeue_count(job_id):
    # What the user checks after scaling down: is the worker's job still in the queue?
    out = subprocess.run(
        ["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True
    ).stdout.split()
    return [state for state in out if state in ("PENDING", "RUNNING", "CONFIGURING")]


def main():
    cluster = SLURMCluster(
        cores=1,
        processes=1,
        memory="1GB",
        queue="debug",
        walltime="00:05:00",
        log_directory="dask-logs",
        scheduler_options={"host": "127.0.0.1", "dashboard_address": None},
        interface=None,
        worker_extra_args=["--host", "127.0.0.1"],
    )
    script = cluster.job_script()
    say("script directives", sorted(line.split()[1] for line in script.splitlines() if line.startswith("#SBATCH")))
    client = Client(cluster)
    cluster.scale(jobs=1)
    client.wait_for_workers(1, timeout=120)
    say("workers", len(client.scheduler_info()["workers"]))

    say("add", client.submit(add, 2, 3).result())
    try:
        client.submit(fail).result()
    except ValueError as error:
        say("fail raised", type(error).__name__, error)
    say("where", client.submit(where).result())
    say("map", client.gather(client.map(lambda x: x * x, range(5))))

    job_ids = [job.job_id for job in cluster.workers.values()]
    say("jobs", len(job_ids))
    say("worker job queued", [squeue_count(job_id) for job_id in job_ids])
    cluster.scale(0)
    # scale() only schedules the change; the cluster's own view ends it (scancel of the job).
    deadline = time.monotonic() + 120
    while cluster.workers and time.monotonic() < deadline:
        time.sleep(0.2)
    say("jobs after scale down", len(cluster.workers))
    say("worker job queued after scale down", [squeue_count(job_id) for job_id in job_ids])
    client.close()
    cluster.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
