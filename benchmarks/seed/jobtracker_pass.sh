#!/usr/bin/env bash
# One pass of the seed's test_jobtracker.sh loop, as the original does it: for every
# ID in <tag>_PENDING_AND_RUNNING, one `sacct -j <id>` and, when the job ended, one
# `redis-cli SMOVE` to the set of its state.  The seed then sleeps and repeats; the
# benchmark times one pass.  Usage: jobtracker_pass.sh <tag> <redis port>
set -u
job_tag=$1
port=$2
for jobid in $(redis-cli -p "$port" SMEMBERS "${job_tag}_PENDING_AND_RUNNING"); do
    state=$(sacct -j "$jobid" --format=State --noheader -X | head -n 1 | xargs)
    case "$state" in
        COMPLETED) target=COMPLETED ;;
        FAILED) target=FAILED ;;
        TIMEOUT) target=TIMEOUT ;;
        CANCELLED*) target=CANCELLED ;;
        *) continue ;;
    esac
    redis-cli -p "$port" SMOVE "${job_tag}_PENDING_AND_RUNNING" "${job_tag}_${target}" "$jobid" >/dev/null
done
