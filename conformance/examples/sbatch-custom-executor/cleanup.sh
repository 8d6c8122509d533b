#!/usr/bin/env bash
# cleanup_exec: cancel whatever is left of the job in Slurm, remove its output file.
scancel --name="ci-$CUSTOM_ENV_CI_JOB_ID" 2>/dev/null
rm -f "$CUSTOM_ENV_CI_BUILDS_DIR/slurm-$CUSTOM_ENV_CI_JOB_ID.out"
exit 0
