"""Logs, usage, failure groups, resubmission and multi-cluster addressing on the real
one-node SLURM cluster (with accounting), through the real CLI."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from conftest import CLI
from test_slurm_e2e import (  # noqa: F401 (module fixtures, one server for this module)
    filed,
    jl,
    launch,
    show,
    slurm_redis,
    status,
    track_until,
    unique_tag,
    write_script,
)

pytestmark = pytest.mark.slurm


def ended(count: int) -> object:
    return lambda s: len(s["jobs"]["ALL"]) >= count and not s["jobs"]["PENDING_AND_RUNNING"]


def test_a_failed_jobs_stderr_usage_and_group_come_from_slurm(jl: CLI) -> None:  # noqa: F811
    tag = unique_tag("why")
    script = write_script(
        jl.cwd,
        "mem-fail.sh",
        """
#SBATCH --mem=400M
"$JOBLEDGER_PYTHON" -c "
import time
b = bytearray(150 * 1024 * 1024)
for i in range(0, len(b), 4096): b[i] = 1
t = time.time()
while time.time() - t < 3: pass
"
echo "RuntimeError: diverged at step 1234 (loss=nan) in /scratch/run_$SLURM_JOB_ID" >&2
exit 7
""",
    )
    [job_id] = launch(jl, tag, script)
    track_until(jl, tag, filed(job_id, "FAILED"), 120, what="the job failing")
    record = show(jl, tag, job_id)
    assert record["logs"]["stderr_tail"][-1].startswith("RuntimeError: diverged at step 1234")
    assert record["record"]["stderr_last"].startswith("RuntimeError: diverged")
    usage = record["usage"]
    assert usage["req_mem_bytes"] == 400 * 1024**2 and usage["req_cpus"] == 1
    assert usage["max_rss_bytes"] >= 100 * 1024**2  # sampled by jobacct_gather/linux
    assert usage["cpu_s"] >= 2 and usage["elapsed_s"] >= 3
    assert 0 < usage["cpu_efficiency"] <= 1.5 and 0 < usage["mem_efficiency"] < 1
    logs = jl("logs", job_id, "--tag", tag, "--err")
    assert logs.code == 0 and "RuntimeError: diverged" in logs.out
    groups = json.loads(jl("failures", "--tag", tag, "--json").out)["groups"]
    assert groups[0]["message"] == ("RuntimeError: diverged at step <n> (loss=nan) in <path>")
    assert groups[0]["exit"] == "exit 7" and groups[0]["job_ids"] == [job_id]
    summary = json.loads(jl("usage", "--tag", tag, "--json").out)
    assert summary["states"]["FAILED"]["count"] == 1
    assert summary["most_memory"][0]["job_id"] == job_id


def test_array_tasks_keep_their_index_when_resubmitted_and_the_scripts_output_line_is_kept(
    jl: CLI,  # noqa: F811
) -> None:
    tag = unique_tag("rerun")
    script = write_script(
        jl.cwd,
        "odd.sh",
        """
#SBATCH --output=mine/%x.%A.%a.log
echo "task $SLURM_ARRAY_TASK_ID"
[ $((SLURM_ARRAY_TASK_ID % 2)) -eq 1 ] && { echo "odd $SLURM_ARRAY_TASK_ID" >&2; exit 1; }
exit 0
""",
    )
    (jl.cwd / "mine").mkdir(exist_ok=True)
    ids = launch(jl, tag, script, "--array", "0-3")
    track_until(jl, tag, ended(4), 120, what="the array ending")
    base = ids[0].split("_")[0]
    record = show(jl, tag, ids[1])
    assert record["logs"]["stdout"] == record["logs"]["stderr"]
    assert record["logs"]["stdout"] == f"{jl.cwd}/mine/{tag}.{base}.1.log"
    out = jl("logs", ids[1], "--tag", tag)
    assert out.out.splitlines() == ["task 1", "odd 1"]  # one file: stdout and stderr
    run = jl("resubmit", "--tag", tag, "--state", "FAILED", "--json")
    assert run.code == 0, run.err
    pairs = {p["old"]: p["new"] for p in json.loads(run.out)["resubmitted"]}
    assert set(pairs) == {ids[1], ids[3]}
    new_base = pairs[ids[1]].split("_")[0]
    assert pairs == {ids[1]: f"{new_base}_1", ids[3]: f"{new_base}_3"}  # one sbatch
    track_until(jl, tag, ended(6), 120, what="the resubmitted tasks ending")
    again = jl("logs", f"{new_base}_3", "--tag", tag)
    assert again.out.splitlines() == ["task 3", "odd 3"]
    assert show(jl, tag, f"{new_base}_3")["record"]["resubmit_of"] == ids[3]


def test_jobs_on_a_named_cluster_are_tracked_and_cancelled_with_dash_m(jl: CLI) -> None:  # noqa: F811
    tag = unique_tag("mc")
    cluster = subprocess.run(
        ["scontrol", "show", "config"], capture_output=True, text=True, check=True
    ).stdout
    name = next(
        line.split("=", 1)[1].strip()
        for line in cluster.splitlines()
        if line.startswith("ClusterName")
    )
    env_cli = CLI(jl.cwd, {**jl.env, "JOBLEDGER_CLUSTER": name})
    dry = json.loads(
        env_cli(
            "launch",
            "--tag",
            tag,
            "--dry-run",
            "--json",
            str(write_script(jl.cwd, "mc.sh", "exit 0")),
        ).out
    )
    assert f"--clusters={name}" in dry["argv"]
    [done] = launch(env_cli, tag, jl.cwd / "mc.sh")
    [held] = launch(
        jl, tag, write_script(jl.cwd, "mc-held.sh", "exit 0"), extra=("-M", name, "--hold")
    )
    assert show(jl, tag, done)["record"]["cluster"] == name
    assert show(jl, tag, held)["record"]["cluster"] == name
    track_until(jl, tag, filed(done, "COMPLETED"), 120, what="the -M job completing")
    assert jl("cancel", held, "--tag", tag).code == 0
    tracked = track_until(jl, tag, filed(held, "CANCELLED"), 120, what="scancel -M")
    assert tracked.status["jobs"]["PENDING_AND_RUNNING"] == []


def test_a_hung_slurm_job_is_stalled_and_cancelled_through_scancel(jl: CLI) -> None:  # noqa: F811
    tag = unique_tag("hang")
    script = write_script(
        jl.cwd,
        "hang.sh",
        """
"$JOBLEDGER_PYTHON" -c "import jobledger; jobledger.results().set('epoch', 1)"
sleep 300
""",
    )
    [job_id] = launch(jl, tag, script)

    def beating_and_running(_s: object) -> bool:
        # Only a job its scheduler reports RUNNING can stall; under load sacct can still
        # say PENDING for a few seconds after the job wrote its first result.
        job = show(jl, tag, job_id)
        return "epoch" in job["results"] and job["record"].get("raw_state") == "RUNNING"

    track_until(jl, tag, beating_and_running, 120, what="a heartbeat of a RUNNING job")
    time.sleep(3)
    tracked = jl("track", "--once", "-t", tag, "--stall-after", "2", "--cancel-stalled", "--json")
    report = json.loads(tracked.out)[0]
    assert report["stalled"] == [job_id] and report["cancelled"] == [job_id]
    assert show(jl, tag, job_id)["record"]["stall_cancelled_at"]
    done = track_until(jl, tag, filed(job_id, "CANCELLED"), 120, what="scancel of the stalled job")
    assert done.status["stalled"] == 0
