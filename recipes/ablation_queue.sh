#!/usr/bin/env bash
# Run ablation variants one after another on one core: bash recipes/ablation_queue.sh STEPS V1 V2 ...
# (start two queues side by side for the two cores). Logs: ${RUNS:-/work/runs}/abl-V.log
set -uo pipefail
steps=$1; shift
runs=${RUNS:-/work/runs}
for v in "$@"; do
    bash "$(dirname "$0")/ablation.sh" "$v" "$steps" > "$runs/abl-$v.log" 2>&1 \
        || echo "variant $v failed (see $runs/abl-$v.log)" >&2
done
