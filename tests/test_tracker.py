"""The tracker: pure planning rules, the lease with fencing, and crash safety on real Redis."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import redis

from conftest import CLI, CLUSTER_KINDS, K
from jobledger.ledger import Ledger, Transition
from jobledger.schedulers.base import JobInfo
from jobledger.schedulers.local import LocalScheduler, write_job_files
from jobledger.states import State
from jobledger.tracker import Lease, Tracker, TrackerSettings, backoff, plan

REDIS_KINDS = CLUSTER_KINDS  # these suites run on Redis Cluster too

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
P = State.PENDING_AND_RUNNING


def info(job_id: str, state: State, raw: str, **kw: object) -> JobInfo:
    return JobInfo(job_id=job_id, state=state, raw_state=raw, **kw)  # type: ignore[arg-type]


def test_terminal_report_moves_the_job_with_its_details() -> None:
    moves, updates = plan(
        {"1": P},
        {"1": {"raw_state": "RUNNING"}},
        {"1": info("1", State.FAILED, "FAILED", exit_code=3, nodes="n1", ended_at=NOW)},
        now=NOW,
        lost_grace_s=600,
    )
    assert [(m.job_id, m.source, m.target) for m in moves] == [("1", P, State.FAILED)]
    assert moves[0].fields["exit_code"] == 3
    assert updates == {}


def test_missing_job_is_lost_only_after_the_grace_period() -> None:
    moves, updates = plan({"1": P}, {"1": {}}, {}, now=NOW, lost_grace_s=600)
    assert moves == []
    assert updates["1"][1]["missing_since"] == NOW
    record = {"missing_since": (NOW - timedelta(seconds=599)).isoformat()}
    assert plan({"1": P}, {"1": record}, {}, now=NOW, lost_grace_s=600)[0] == []
    record = {"missing_since": (NOW - timedelta(seconds=600)).isoformat()}
    moves, _ = plan({"1": P}, {"1": record}, {}, now=NOW, lost_grace_s=600)
    assert [(m.job_id, m.target) for m in moves] == [("1", State.LOST)]


def test_a_job_seen_again_clears_its_missing_mark() -> None:
    record = {"missing_since": NOW.isoformat(), "raw_state": "PENDING"}
    _, updates = plan(
        {"1": P}, {"1": record}, {"1": info("1", P, "PENDING")}, now=NOW, lost_grace_s=600
    )
    assert updates["1"][1]["missing_since"] == ""


def test_requeued_node_fail_goes_back_to_pending_with_a_new_attempt() -> None:
    moves, _ = plan(
        {"1": State.NODE_FAIL},
        {"1": {}},
        {"1": info("1", P, "PENDING")},
        now=NOW,
        lost_grace_s=600,
    )
    assert [(m.source, m.target, m.new_attempt) for m in moves] == [(State.NODE_FAIL, P, True)]


def test_running_job_seen_pending_again_counts_an_attempt() -> None:
    _, updates = plan(
        {"1": P},
        {"1": {"raw_state": "RUNNING", "attempts": "1"}},
        {"1": info("1", P, "PENDING")},
        now=NOW,
        lost_grace_s=600,
    )
    assert updates["1"][1]["attempts"] == 2


def test_unchanged_running_job_needs_no_write() -> None:
    record = {"raw_state": "RUNNING", "nodes": "n1"}
    moves, updates = plan(
        {"1": P},
        {"1": record},
        {"1": info("1", P, "RUNNING", nodes="n1")},
        now=NOW,
        lost_grace_s=600,
    )
    assert (moves, updates) == ([], {})


def test_only_one_lease_holder_and_takeover_after_expiry(jl_client: redis.Redis) -> None:
    a = Lease(jl_client, "t", "a", ttl_s=30)
    b = Lease(jl_client, "t", "b", ttl_s=30)
    token_a = a.acquire(NOW)
    assert token_a is not None
    assert b.acquire(NOW + timedelta(seconds=29)) is None
    assert a.acquire(NOW + timedelta(seconds=29)) == token_a  # renewal keeps the token
    assert b.acquire(NOW + timedelta(seconds=58)) is None  # renewed: lasts until 59 s
    token_b = b.acquire(NOW + timedelta(seconds=60))
    assert token_b is not None and int(token_b) > int(token_a)
    assert a.acquire(NOW + timedelta(seconds=61)) is None


def test_a_fenced_out_tracker_cannot_move_jobs_or_update_records(jl_client: redis.Redis) -> None:
    ledger = Ledger(jl_client, "t")
    ledger.record_submission("1", now=NOW)
    stale = Lease(jl_client, "t", "old", ttl_s=10).acquire(NOW)
    assert Lease(jl_client, "t", "new", ttl_s=10).acquire(NOW + timedelta(seconds=11))
    tr = Transition("1", P, State.COMPLETED)
    assert ledger.apply([tr], now=NOW, by="tracker", fence=stale) == [-1]
    assert ledger.job("1").states == [P]
    assert ledger.update_record("1", P, {"nodes": "n9"}, fence=stale) == -1
    assert "nodes" not in ledger.job("1").record


def test_backoff_is_capped_even_after_thousands_of_failures() -> None:
    assert backoff(30, 1, 300) == 60
    assert backoff(30, 5000, 300) == 300


def _finished_local_jobs(home: Path, ids: list[str]) -> dict[str, dict[str, str]]:
    """Files exactly as the local scheduler leaves them; each job's record fields."""
    state = {"state": "COMPLETED", "exit_code": 0, "ended_at": NOW.isoformat()}
    return {job_id: write_job_files(home, job_id, state) for job_id in ids}


def test_two_trackers_at_once_act_once(jl_client: redis.Redis, tmp_path: Path) -> None:
    ledger = Ledger(jl_client, "t")
    ids = [str(i) for i in range(1, 51)]
    fields = _finished_local_jobs(tmp_path, ids)
    for job_id in ids:
        ledger.record_submission(job_id, now=NOW, fields=fields[job_id])
    local = LocalScheduler(tmp_path)
    trackers = [
        Tracker(
            jl_client,
            lambda: ["t"],
            scheduler=lambda n: local,
            default_scheduler="local",
            home=tmp_path,
            settings=TrackerSettings(lease_ttl_s=30),
            owner=owner,
        )
        for owner in ("one", "two")
    ]
    first, second = (t.run_pass(now=NOW)[0] for t in trackers)
    assert (first.active, len(first.moved)) == (True, 50)
    assert (second.active, second.moved) == (False, [])
    assert (
        jl_client.xlen(K(jl_client, "jobledger:t:events")) == 100
    )  # one submit + one move per job


def test_trackers_of_all_tags_share_the_tags_and_take_over_a_stopped_ones_share(
    jl_client: redis.Redis, tmp_path: Path
) -> None:
    tags = [f"s{i}" for i in range(30)]
    local = LocalScheduler(tmp_path)

    def tracker(owner: str) -> Tracker:
        return Tracker(
            jl_client,
            lambda: tags,
            scheduler=lambda n: local,
            default_scheduler="local",
            home=tmp_path,
            settings=TrackerSettings(lease_ttl_s=30, share_tags=True),
            owner=owner,
        )

    def active(t: Tracker) -> set[str]:
        return {r.tag for r in t.run_pass(now=NOW) if r.active}

    one, two, three = tracker("one"), tracker("two"), tracker("three")
    assert active(one) == set(tags)  # alone: every tag
    two.run_pass(now=NOW), three.run_pass(now=NOW)  # they come up: one gives their share
    shares = [active(t) for t in (one, two, three)]
    assert sorted(t for share in shares for t in share) == sorted(tags)  # each tag once
    assert all(4 <= len(share) <= 18 for share in shares), [len(s) for s in shares]
    three.release()  # stops: leaves the live trackers and its leases
    one.run_pass(now=NOW), two.run_pass(now=NOW)
    after = [active(t) for t in (one, two)]
    assert sorted(t for share in after for t in share) == sorted(tags)
    assert after[0] >= shares[0] and after[1] >= shares[1]  # only three's share moved


def test_tracker_killed_mid_pass_leaves_every_job_in_exactly_one_set(
    cli: CLI, jl_client: redis.Redis
) -> None:
    ids = [str(i) for i in range(1, 1001)]
    fields = _finished_local_jobs(cli.cwd, ids)
    ledger = Ledger(jl_client, "k")
    with jl_client.pipeline(transaction=False) as pipe:
        for job_id in ids:
            ledger.record_submission(job_id, now=NOW, fields=fields[job_id], pipeline=pipe)
        pipe.execute()
    rng = random.Random(1)
    argv = [
        sys.executable,
        "-m",
        "jobledger",
        "track",
        "--once",
        "--tag",
        "k",
        "--scheduler",
        "local",
    ]
    for _ in range(5):
        proc = subprocess.Popen(
            argv, cwd=cli.cwd, env=cli.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(0.2, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        jl_client.delete(
            K(jl_client, "jobledger:k:lease")
        )  # a dead tracker's lease would otherwise wait out
    assert cli("track", "--once", "--tag", "k", "--scheduler", "local").code == 0
    snapshot = ledger.snapshot()
    assert snapshot["COMPLETED"] == ids
    assert sum(len(v) for k, v in snapshot.items() if k != "ALL") == 1000
    events = ledger.events()
    moves = [e for e in events if e["to"] == "COMPLETED"]
    assert len(moves) == 1000 and len({e["job"] for e in moves}) == 1000


@pytest.mark.parametrize("interval", ["0", "-1", "abc"])
def test_track_refuses_a_bad_interval(cli: CLI, interval: str) -> None:
    run = cli("track", "--once", "--tag", "t", "--interval", interval)
    assert run.code == 2
    assert run.err.startswith("jobledger: error: ")


def test_daemon_files_jobs_logs_moves_and_stops_on_sigterm(cli: CLI) -> None:
    script = cli.cwd / "ok.sh"
    script.write_text("#!/bin/bash\nexit 0\n")
    run = cli("launch", "--tag", "d", "--scheduler", "local", str(script))
    job_id = run.out.strip()
    argv = [
        sys.executable,
        "-m",
        "jobledger",
        "track",
        "--tag",
        "d",
        "--scheduler",
        "local",
        "--interval",
        "0.2",
    ]
    proc = subprocess.Popen(
        argv, cwd=cli.cwd, env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 20
        while json.loads(cli("status", "--tag", "d", "--json").out)["jobs"]["COMPLETED"] != [
            job_id
        ]:
            assert time.monotonic() < deadline, "the daemon did not file the job"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert f"d {job_id}: PENDING_AND_RUNNING -> COMPLETED" in err


def test_an_end_state_without_end_time_waits_for_the_complete_row() -> None:
    half_written = info("1", State.FAILED, "FAILED", exit_code=0, ended_at=None)
    assert plan({"1": P}, {"1": {}}, {"1": half_written}, now=NOW, lost_grace_s=0) == ([], {})
