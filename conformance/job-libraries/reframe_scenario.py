"""ReFrame's normal workflow against whatever Slurm is first on PATH: a system whose partition has
`scheduler: 'slurm'` and `launcher: 'srun'` (reframe/config.py), the tests of reframe/checks.py.

Run from an empty working directory; prints one stable line per observation (no job ids, times
or paths), so that the output on real Slurm 22.05 and on the fakes can be compared as text.
conformance/tests/job_libraries.rs runs it and asserts the exact lines. ReFrame submits with
`sbatch <file>`, polls `sacct -S <day> -P -j <ids> -o jobid,state,exitcode,end,nodelist` with
`SLURM_TIME_FORMAT=%s`, and cancels with `scancel` when it is interrupted.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

# A scenario that hangs must end: the test reports its output so far.
signal.alarm(200)

HERE = Path(__file__).resolve().parent / "reframe"
REFRAME = [str(Path(sys.executable).parent / "reframe")]


def say(*parts):
    print(*parts, flush=True)


def reframe(*args):
    return [
        *REFRAME,
        "-C",
        str(HERE / "config.py"),
        "-c",
        str(HERE / "checks.py"),
        "--prefix",
        str(Path.cwd() / "rfm"),
        "--nocolor",
        *args,
    ]


def squeue_states(name):
    out = subprocess.run(
        ["squeue", "--me", "-h", "-n", name, "-o", "%T"], capture_output=True, text=True, check=True
    ).stdout
    return out.split()


def main():
    # --flex-alloc-nodes=all: Flexible counts the partition's nodes whatever their state. With
    # the default (idle nodes only) it would depend on whether the jobs submitted just before
    # it have started yet: real Slurm shows the node IDLE until its scheduler starts them.
    run = subprocess.run(
        reframe(
            "-r",
            "-x",
            "Sleeper",
            "--exec-policy=async",
            "--flex-alloc-nodes=all",
            "--report-file",
            "report.json",
        ),
        capture_output=True,
        text=True,
    )
    say("run exit", run.returncode)
    report = json.loads(Path("report.json").read_text())
    cases = [case for one_run in report["runs"] for case in one_run["testcases"]]
    for case in sorted(cases, key=lambda c: c["name"]):
        say(
            case["name"],
            case["result"],
            "phase",
            case["fail_phase"],
            "exitcode",
            case.get("job_exitcode"),
            "nodelist",
            case.get("job_nodelist"),
            "jobid is a number",
            str(case.get("jobid")).isdigit(),
        )
    say("summary", report["session_info"]["num_cases"], "cases", report["session_info"]["num_failures"], "failed")

    # Interrupted while its job runs, reframe cancels the job (scancel) and says so.
    sleeper = subprocess.Popen(
        reframe("-r", "-n", "Sleeper"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    while squeue_states("rfm_Sleeper") != ["RUNNING"]:
        time.sleep(0.2)
    say("sleeper before interrupt", squeue_states("rfm_Sleeper"))
    # The job runs, but reframe may not have polled it yet; it knows the job id from sbatch.
    sleeper.send_signal(signal.SIGINT)
    output, _ = sleeper.communicate(timeout=120)
    say("interrupted exit", sleeper.returncode)
    for line in output.splitlines():
        if "ABORT" in line or "run session stopped" in line:
            say("interrupted says", line)
    while squeue_states("rfm_Sleeper"):
        time.sleep(0.2)
    say("sleeper after interrupt", squeue_states("rfm_Sleeper"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
