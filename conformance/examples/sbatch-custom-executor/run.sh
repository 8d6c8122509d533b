#!/usr/bin/env bash
# run_exec <script> <stage>: the job's own steps go to Slurm with sbatch --wait, every other
# stage (sources, after_script, ...) runs here on the runner host.
script=$1
stage=$2

case "$stage" in
    build_script|step_*)
        out="$CUSTOM_ENV_CI_BUILDS_DIR/slurm-$CUSTOM_ENV_CI_JOB_ID.out"
        # shellcheck disable=SC2086 # SCHEDULER_PARAMETERS is a list of options
        sbatch --wait --job-name="ci-$CUSTOM_ENV_CI_JOB_ID" --output="$out" \
            $CUSTOM_ENV_SCHEDULER_PARAMETERS "$script"
        rc=$?
        cat "$out" 2>/dev/null
        if [ "$rc" -ne 0 ]; then
            exit "$BUILD_FAILURE_EXIT_CODE"
        fi
        ;;
    *)
        bash "$script" || exit "$BUILD_FAILURE_EXIT_CODE"
        ;;
esac
