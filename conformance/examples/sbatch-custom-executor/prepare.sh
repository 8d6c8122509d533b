#!/usr/bin/env bash
# prepare_exec: nothing to set up, the job is submitted by run.sh.
echo "Running on $(hostname), build_script goes to Slurm"
