#!/usr/bin/env bash
# config_exec: tell gitlab-runner who we are. builds_dir and cache_dir come from config.toml
# (a file system the compute nodes share).
cat <<JSON
{"driver": {"name": "sbatch-custom-executor", "version": "1.0"}, "job_env": {"SBATCH_EXECUTOR": "1"}}
JSON
