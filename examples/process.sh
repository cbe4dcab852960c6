#!/bin/bash
#SBATCH --ntasks=1
#SBATCH --time=00:05:00
# A bash job that writes its results with plain redis-cli, seed style:
#   jobledger launch --tag my_exp examples/process.sh
# JOB_SPECIFIC_PREFIX (<tag>-<jobid>) is set by `jobledger launch`. Adding each key
# to the job's index keeps `show`/`top` fast; without it they fall back to SCAN.
set -euo pipefail

if [[ "${JOBLEDGER_URL:-}" == unix://* ]]; then
  rcli() { redis-cli -s "${JOBLEDGER_URL#unix://}" "$@"; }
else
  rcli() { redis-cli -u "${JOBLEDGER_URL:-redis://127.0.0.1:6379/0}" "$@"; }
fi

job_id=${JOB_SPECIFIC_PREFIX##*-}
for i in 1 2 3 4 5; do
  key=$(cat /proc/sys/kernel/random/uuid)
  value=$(awk -v s="$RANDOM" 'BEGIN { srand(s); print rand() }')
  rcli SET "${JOB_SPECIFIC_PREFIX}:${key}" "$value" >/dev/null
  rcli SADD "jobledger:${JOBLEDGER_TAG}:index:${job_id}" "$key" >/dev/null
  rcli ZADD "jobledger:${JOBLEDGER_TAG}:numeric:${job_id}" "$value" "$key" >/dev/null
  rcli ZADD "jobledger:${JOBLEDGER_TAG}:numeric" "$value" "${job_id}:${key}" >/dev/null
done
rcli SADD "jobledger:${JOBLEDGER_TAG}:indexed" "$job_id" >/dev/null
echo "wrote 5 results under ${JOB_SPECIFIC_PREFIX}"
