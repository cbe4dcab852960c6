"""Failure groups, resubmission and stalled jobs: pure parts, then real local jobs through
the CLI on both real Redis servers."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import redis

from conftest import CLI, CLUSTER_KINDS, K
from jobledger.failures import UNREAD, group_failures, normalise
from jobledger.keys import CLUSTER_LAYOUT, layout_for
from jobledger.ledger import Ledger
from jobledger.process import identity
from jobledger.resubmit import plan_resubmission
from jobledger.schedulers.local import LocalScheduler, write_job_files
from jobledger.states import State
from jobledger.tracker import Tracker, TrackerSettings
from test_local_jobs import launch, track_until, write_script

REDIS_KINDS = CLUSTER_KINDS  # resubmit pipelines its claim scripts: on a cluster too

# --- pure -------------------------------------------------------------------------


def test_normalise_removes_what_differs_from_job_to_job() -> None:
    a = normalise("CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; /dev/nvidia3)")
    b = normalise("CUDA out of memory. Tried to allocate 1.5 MiB (GPU 1; /dev/nvidia0)")
    assert a == b == "CUDA out of memory. Tried to allocate <n> MiB (GPU <n>; <path>)"
    assert normalise("run 3f2a9b0c1d at 2026-12-01T10:00:00Z id 0xBEEF") == (
        "run <hex> at <time> id <hex>"
    )
    assert normalise("x1 = y2") == "x1 = y2"  # digits inside names stay


def test_groups_are_by_state_exit_reason_and_message_largest_first() -> None:
    jobs = [
        ("1", "FAILED", {"exit_code": "1"}, "KeyError: 'a1'"),
        ("2", "FAILED", {"exit_code": "1"}, "ValueError: 7 < 8"),
        ("3", "FAILED", {"exit_code": "1"}, "ValueError: 9 < 10"),
        ("4", "FAILED", {"exit_code": "2"}, "ValueError: 9 < 10"),
        ("5", "TIMEOUT", {"exit_code": "0", "signal": "15"}, None),
    ]
    groups = group_failures(jobs)
    assert [(g.count, g.state, g.exit, g.message) for g in groups] == [
        (2, "FAILED", "exit 1", "ValueError: <n> < <n>"),
        (1, "FAILED", "exit 1", "KeyError: 'a1'"),
        (1, "FAILED", "exit 2", "ValueError: <n> < <n>"),
        (1, "TIMEOUT", "signal 15", UNREAD),  # no stderr line could be read
    ]
    assert groups[0].job_ids == ["2", "3"] and groups[0].sample == "ValueError: 7 < 8"


def test_resubmission_plans_an_arrays_tasks_as_one_array_and_skips_what_it_must() -> None:
    base = {"scheduler": "slurm", "script": "/s.sh", "work_dir": "/w", "name": "n"}
    array = {**base, "array": "0-99%5", "sbatch_args": '["--partition=gpu"]'}
    jobs = [
        ("10_7", [State.FAILED], array),
        ("10_3", [State.TIMEOUT], array),
        ("11", [State.FAILED], base),
        ("12", [State.PENDING_AND_RUNNING], base),
        ("13", [State.FAILED], {**base, "resubmitted_as": "20"}),
        ("14", [State.FAILED], {"scheduler": "slurm"}),
    ]
    plans, skipped = plan_resubmission(jobs)
    assert [(p.old_ids, p.array, p.sbatch_args) for p in plans] == [
        (["10_3", "10_7"], "3,7%5", ("--partition=gpu",)),
        (["11"], None, ()),
    ]
    assert [s.job_id for s in skipped] == ["12", "13", "14"]
    assert "still pending or running" in skipped[0].why and "--again" in skipped[1].why
    again, _ = plan_resubmission(jobs, again=True)
    assert ["13"] in [p.old_ids for p in again]


# --- local jobs -------------------------------------------------------------------


def _failing(cli: CLI) -> Path:
    return write_script(
        cli.cwd,
        "fail.sh",
        'if [ "${SLURM_ARRAY_TASK_ID:-0}" = 2 ]; then echo "KeyError: task" >&2; exit 3; fi\n'
        'echo "OSError: cannot read /data/part-${SLURM_ARRAY_TASK_ID:-0}.bin" >&2\n'
        '[ "${SLURM_ARRAY_TASK_ID:-0}" = 0 ] && exit 0\nexit 1',
    )


def test_failures_groups_real_failed_jobs_and_resubmit_reruns_one_group(cli: CLI) -> None:
    script = _failing(cli)
    launch(cli, "fg", write_script(cli.cwd, "x.sh", "true"))  # COMPLETED: never a failure
    array = launch(cli, "fg", script, "--array", "0-5")
    track_until(cli, "fg", "done")
    data = json.loads(cli("failures", "--tag", "fg", "--json").out)
    assert data["total"] == 5
    first, second = data["groups"]
    assert (first["count"], first["exit"]) == (4, "exit 1")
    assert first["message"] == "OSError: cannot read <path>"
    assert first["job_ids"] == [array[1], array[3], array[4], array[5]]
    assert (second["count"], second["message"], second["exit"]) == (1, "KeyError: task", "exit 3")
    human = cli("failures", "--tag", "fg").out.splitlines()
    assert human[0] == "tag fg: 5 job(s) in 2 group(s)"
    assert human[1].startswith("  1.      4 x FAILED exit 1: OSError: cannot read <path>")

    dry = json.loads(cli("resubmit", "--tag", "fg", "--group", "1", "--dry-run", "--json").out)
    assert dry["submissions"][0]["array"] == "1,3,4,5"
    assert json.loads(cli("status", "--tag", "fg", "--json").out)["counts"]["ALL"] == 7

    run = cli("resubmit", "--tag", "fg", "--group", "1", "--json")
    assert run.code == 0, run.err
    pairs = json.loads(run.out)["resubmitted"]
    new_base = pairs[0]["new"].split("_")[0]
    assert [(p["old"], p["new"]) for p in pairs] == [
        (old, f"{new_base}_{old.split('_')[1]}") for old in first["job_ids"]
    ]
    old = json.loads(cli("show", array[3], "--tag", "fg", "--json").out)["record"]
    new = json.loads(cli("show", f"{new_base}_3", "--tag", "fg", "--json").out)["record"]
    assert old["resubmitted_as"] == f"{new_base}_3" and new["resubmit_of"] == array[3]
    assert new["script"] == str(script) and new["array"] == "1,3,4,5"
    track_until(cli, "fg", "done")
    after = json.loads(cli("failures", "--tag", "fg", "--json").out)
    assert after["resubmitted_not_grouped"] == 4  # the reruns failed alike: 4 new, 4 done
    assert after["groups"][0]["job_ids"] == [f"{new_base}_{i}" for i in (1, 3, 4, 5)]
    every = json.loads(cli("failures", "--tag", "fg", "--resubmitted", "--json").out)
    assert every["groups"][0]["count"] == 8
    assert cli("failures", "--tag", "fg", "--state", "COMPLETED").code == 2
    again = cli("resubmit", "--tag", "fg", array[3], "--json")
    assert json.loads(again.out)["skipped"][0]["why"].startswith("already resubmitted as")
    rerun = json.loads(cli("resubmit", "--tag", "fg", array[3], "--again", "--json").out)
    assert rerun["resubmitted"][0]["old"] == array[3]


def test_resubmit_asks_before_more_than_ten_jobs_and_needs_a_selection(cli: CLI) -> None:
    script = write_script(cli.cwd, "bad.sh", "exit 1")
    launch(cli, "many", script, "--array", "1-11")
    track_until(cli, "many", "done")
    run = cli("resubmit", "--tag", "many", "--state", "FAILED")
    assert run.code == 2 and "pass --yes" in run.err and run.out == ""
    assert cli("resubmit", "--tag", "many").code == 2
    assert cli("resubmit", "--tag", "many", "--group", "9").code == 2
    assert json.loads(cli("status", "--tag", "many", "--json").out)["counts"]["ALL"] == 11
    done = cli("resubmit", "--tag", "many", "--state", "FAILED", "--yes")
    assert done.code == 0 and len(done.out.splitlines()) == 11


def test_a_running_job_that_stops_heartbeating_is_stalled_and_can_be_cancelled(
    cli: CLI, client: redis.Redis
) -> None:
    if layout_for(client) is CLUSTER_LAYOUT:
        pytest.skip("40 s of heartbeat timing; the stall script on a cluster: test_ledger")
    hung = write_script(
        cli.cwd,
        "hung.sh",
        '"$JOBLEDGER_PYTHON" -c "import jobledger; jobledger.results().set(\'step\', 1)"\n'
        "sleep 120",
    )
    quiet = write_script(cli.cwd, "quiet.sh", "sleep 120")  # never heartbeats
    beating = write_script(
        cli.cwd,
        "beating.sh",
        '"$JOBLEDGER_PYTHON" -c "import jobledger, time\n'
        'r = jobledger.results(heartbeat_s=0.5)\ntime.sleep(120)"',
    )
    [hung_id] = launch(cli, "st", hung)
    [quiet_id] = launch(cli, "st", quiet)
    [beating_id] = launch(cli, "st", beating)
    deadline = time.monotonic() + 30
    while client.zcard("jobledger:st:heartbeats") < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(3)
    run = cli("track", "--once", "--tag", "st", "--stall-after", "2", "--json")
    assert run.code == 0, run.err
    assert json.loads(run.out)[0]["stalled"] == [hung_id]
    status = json.loads(cli("status", "--tag", "st", "--json").out)
    assert status["stalled"] == 1 and hung_id in status["jobs"]["PENDING_AND_RUNNING"]
    assert status["stalled_ids"] == [hung_id]
    assert (
        f"stalled: 1 running job(s) stopped heartbeating: {hung_id}"
        in cli("status", "--tag", "st").out
    )
    show = json.loads(cli("show", hung_id, "--tag", "st", "--json").out)
    assert show["stalled_since"] and show["states"] == ["PENDING_AND_RUNNING"]
    assert json.loads(cli("show", quiet_id, "--tag", "st", "--json").out)["stalled_since"] is None
    events = client.xrange(K(client, "jobledger:st:events"))
    assert next(e for _, e in events if e.get("event") == "stalled")["job"] == hung_id

    # A heartbeat brings it back; silence again, and --cancel-stalled ends it.
    client.zadd(K(client, "jobledger:st:heartbeats"), {hung_id: time.time()})
    again = json.loads(cli("track", "--once", "-t", "st", "--stall-after", "2", "--json").out)
    assert (
        again[0]["recovered"] == [hung_id] and client.scard(K(client, "jobledger:st:stalled")) == 0
    )
    time.sleep(2.5)
    run = cli("track", "--once", "-t", "st", "--stall-after", "2", "--cancel-stalled", "--json")
    assert json.loads(run.out)[0]["cancelled"] == [hung_id]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        cli("track", "--once", "-t", "st", "--stall-after", "2")
        if hung_id in json.loads(cli("status", "-t", "st", "--json").out)["jobs"]["CANCELLED"]:
            break
        time.sleep(0.3)
    status = json.loads(cli("status", "--tag", "st", "--json").out)
    assert status["jobs"]["CANCELLED"] == [hung_id] and status["stalled"] == 0
    assert status["tracker"]["problems"] == "0"
    assert set(status["jobs"]["PENDING_AND_RUNNING"]) == {quiet_id, beating_id}
    assert cli("cancel", quiet_id, beating_id, "--tag", "st").code == 0
    assert cli("track", "--once", "-t", "st", "--cancel-stalled", "--stall-after", "0").code == 2


# --- the tracker's extras never get in the way of filing ---------------------------


def _pass(client: redis.Redis, home: Path, tag: str, now: datetime, **settings: float) -> Any:
    """One tracker pass with these settings, its lease released (the next may differ)."""
    tracker = Tracker(
        client,
        lambda: [tag],
        scheduler=lambda _name: LocalScheduler(home),
        default_scheduler="local",
        home=home,
        settings=TrackerSettings(**settings),  # type: ignore[arg-type]
    )
    try:
        [report] = tracker.run_pass(now=now)
    finally:
        tracker.release()
    return report


def _local_job(
    client: redis.Redis, home: Path, tag: str, job_id: str, state: dict[str, object]
) -> None:
    fields = write_job_files(home, job_id, state, supervisor=identity(os.getpid()))
    Ledger(client, tag).record_submission(job_id, now=datetime.now(timezone.utc), fields=fields)


def test_only_a_job_its_scheduler_runs_now_is_stalled_by_a_heartbeat_of_this_run(
    jl_client: redis.Redis, tmp_path: Path
) -> None:
    now = datetime.now(timezone.utc)
    started = (now - timedelta(seconds=30)).isoformat()
    _local_job(jl_client, tmp_path, "q", "1", {"state": "PENDING"})  # queued
    _local_job(jl_client, tmp_path, "q", "2", {"state": "RUNNING", "started_at": started})
    _local_job(jl_client, tmp_path, "q", "3", {"state": "RUNNING", "started_at": started})
    _local_job(jl_client, tmp_path, "q", "4", {"state": "RUNNING", "started_at": started})
    _local_job(jl_client, tmp_path, "q", "5", {"state": "COMPLETED", "ended_at": started})
    beats = {
        "1": now.timestamp() - 600,
        "2": now.timestamp() - 600,  # before this run started: an earlier attempt's
        "3": now.timestamp() - 20,  # this run's, and stale
        "4": float("-inf"),  # written by hand
        "5": now.timestamp() - 600,  # ended: forgotten, with nothing in the stalled set
    }
    jl_client.zadd(K(jl_client, "jobledger:q:heartbeats"), beats)
    report = _pass(jl_client, tmp_path, "q", now, stall_after_s=10)
    assert report.problems == [] and report.stalled == ["3"]
    assert [m[0] for m in report.moved] == ["5"]
    assert jl_client.zscore(K(jl_client, "jobledger:q:heartbeats"), "5") is None
    assert jl_client.smembers(K(jl_client, "jobledger:q:stalled")) == {"3"}
    # A pass with a longer stall_after is no heartbeat: the job stays stalled.
    report = _pass(jl_client, tmp_path, "q", now, stall_after_s=3600)
    assert report.recovered == [] and jl_client.smembers(K(jl_client, "jobledger:q:stalled")) == {
        "3"
    }
    # A pass that gets no answer about it (scheduler state unreadable) changes nothing.
    task_dir = tmp_path / ".jobledger" / "local" / "3"
    task_dir.rename(tmp_path / "hidden")
    report = _pass(jl_client, tmp_path, "q", now, stall_after_s=10)
    assert report.recovered == [] and jl_client.smembers(K(jl_client, "jobledger:q:stalled")) == {
        "3"
    }
    (tmp_path / "hidden").rename(task_dir)
    jl_client.zadd(K(jl_client, "jobledger:q:heartbeats"), {"3": now.timestamp()})  # a new one is
    report = _pass(jl_client, tmp_path, "q", now, stall_after_s=10)
    assert report.recovered == ["3"] and jl_client.scard(K(jl_client, "jobledger:q:stalled")) == 0


def test_a_stderr_that_is_a_fifo_neither_hangs_nor_stops_the_filing(
    jl_client: redis.Redis, tmp_path: Path
) -> None:
    fifo = tmp_path / "err.fifo"
    os.mkfifo(fifo)
    now = datetime.now(timezone.utc)
    ended = {"state": "FAILED", "exit_code": 1, "started_at": now.isoformat()}
    _local_job(jl_client, tmp_path, "ff", "1", {**ended, "ended_at": now.isoformat()})
    jl_client.hset("jobledger:ff:job:1", "stderr", str(fifo))
    started = time.monotonic()
    report = _pass(jl_client, tmp_path, "ff", now)
    assert time.monotonic() - started < 10
    assert report.moved == [("1", "PENDING_AND_RUNNING", "FAILED")] and report.problems == []
    assert jl_client.hget(K(jl_client, "jobledger:ff:job:1"), "stderr_last") is None


def test_two_resubmits_at_once_rerun_each_job_once(cli: CLI) -> None:
    launch(cli, "twice", write_script(cli.cwd, "bad.sh", "exit 1"), "--array", "0-5")
    track_until(cli, "twice", "done")
    argv = ("resubmit", "--tag", "twice", "--state", "FAILED", "--json")
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(lambda _: cli(*argv), range(2)))
    pairs = [p for run in runs for p in json.loads(run.out)["resubmitted"]]
    assert sorted(p["old"] for p in pairs) == sorted(
        json.loads(cli("status", "-t", "twice", "--json").out)["jobs"]["FAILED"]
    )
    skipped = [s for run in runs for s in json.loads(run.out)["skipped"]]
    assert len(pairs) + len(skipped) == 12 and len(pairs) == 6
    status = json.loads(cli("status", "-t", "twice", "--json").out)
    assert status["counts"]["ALL"] == 12


def test_status_compact_counts_jobs_not_folded_entries(cli: CLI, client: redis.Redis) -> None:
    ids = [f"40_{i}" for i in range(100)]
    client.sadd(K(client, "c_ALL"), *ids)
    client.sadd(K(client, "c_FAILED"), *ids)
    lines = cli("status", "-t", "c", "--compact").out.splitlines()
    assert lines[0].startswith("c: 100 jobs")  # (cluster key layout) on a cluster
    assert lines[1].split() == [K(client, "c_ALL"), "100", "40_[0-99]"]


def test_resubmit_group_numbers_match_failures_with_the_same_states(cli: CLI) -> None:
    launch(cli, "gs", write_script(cli.cwd, "bad.sh", 'echo "boom" >&2; exit 1'))
    [slow] = launch(cli, "gs", write_script(cli.cwd, "slow.sh", "sleep 30"), "--time", "0:01")
    track_until(cli, "gs", "done")
    only = json.loads(cli("failures", "-t", "gs", "--state", "TIMEOUT", "--json").out)
    assert only["groups"][0]["job_ids"] == [slow]
    assert "--state TIMEOUT" in cli("failures", "-t", "gs", "--state", "TIMEOUT").out
    dry = cli("resubmit", "-t", "gs", "--group", "1", "--state", "TIMEOUT", "--dry-run", "--json")
    assert json.loads(dry.out)["submissions"][0]["jobs"] == [slow]
