"""fsck finds each kind of inconsistency and repairs the safe ones, on both real servers."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
import redis

from conftest import CLI
from jobledger.fsck import check, repair
from jobledger.ledger import Ledger
from jobledger.store import Results

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def ledger(jl_client: redis.Redis, client: redis.Redis) -> Ledger:
    """Three submitted jobs (after both clients' fixtures have flushed the server)."""
    lg = Ledger(jl_client, "t")
    for job_id in ("1", "2", "3"):
        lg.record_submission(job_id, now=NOW)
    return lg


def kinds(client: redis.Redis) -> dict[str, list[str]]:
    return {p.kind: p.job_ids for p in check(client, "t").problems}


def test_a_consistent_ledger_is_clean(ledger: Ledger, jl_client: redis.Redis) -> None:
    Results(jl_client, "t", "1").update({"a": 1, "b": "x"})
    assert check(jl_client, "t").clean


def test_each_inconsistency_is_reported_with_its_jobs(
    ledger: Ledger, jl_client: redis.Redis, client: redis.Redis
) -> None:
    client.srem("t_PENDING_AND_RUNNING", "1")  # 1: in no set
    client.sadd("t_COMPLETED", "2")  # 2: in two sets
    client.sadd("t_FAILED", "9")  # 9: not in _ALL
    client.hset("jobledger:t:job:3", "state", "COMPLETED")  # 3: record disagrees
    client.hset("jobledger:t:job:77", "state", "FAILED")  # 77: record of nobody
    client.set("t-55:x", "1")  # 55: results of a job not in the ledger
    Results(jl_client, "t", "2").update({"gone": 1, "kept": 2})
    client.delete("t-2:gone")  # 2: index names a deleted key
    assert kinds(jl_client) == {
        "no_state": ["1"],
        "several_states": ["2"],
        "missing_from_all": ["9"],
        "record_mismatch": ["3"],
        "orphan_record": ["77"],
        "results_without_job": ["55"],
        "stale_index": ["2"],
        "stale_numeric": ["2"],
    }


def test_repair_fixes_what_is_safe_and_logs_each_fix(
    ledger: Ledger, jl_client: redis.Redis, client: redis.Redis
) -> None:
    client.srem("t_PENDING_AND_RUNNING", "1")
    client.sadd("t_COMPLETED", "2")
    client.hset("jobledger:t:job:2", "state", "COMPLETED")
    client.sadd("t_FAILED", "9")
    Results(jl_client, "t", "3").update({"gone": 1})
    client.delete("t-3:gone")
    client.set("t-55:x", "1")
    events_before = client.xlen("jobledger:t:events")
    after = repair(jl_client, "t", check(jl_client, "t"), now=NOW)
    assert [p.kind for p in after.problems] == ["results_without_job"]
    assert len(after.repaired) == 4
    assert client.smembers("t_PENDING_AND_RUNNING") == {"1", "3"}
    assert client.smembers("t_COMPLETED") == {"2"}  # the record's state wins
    assert client.smembers("t_FAILED") == {"9"}
    assert "9" in client.smembers("t_ALL")
    assert client.smembers("jobledger:t:index:3") == set()
    assert client.xlen("jobledger:t:events") == events_before + 3
    assert check(jl_client, "t").problems[0].kind == "results_without_job"


def test_fsck_command_exit_codes_and_json(cli: CLI, client: redis.Redis) -> None:
    client.sadd("t_ALL", "1")
    client.sadd("t_PENDING_AND_RUNNING", "1")
    clean = cli("fsck", "--tag", "t")
    assert (clean.code, clean.out) == (0, "tag t: clean (seed key layout)\n")
    client.sadd("t_COMPLETED", "1")
    broken = cli("fsck", "--tag", "t", "--json")
    assert broken.code == 1
    data = json.loads(broken.out)
    assert data["clean"] is False
    assert data["problems"][0]["kind"] == "several_states"
    fixed = cli("fsck", "--tag", "t", "--repair")
    assert fixed.code == 0
    assert fixed.out.splitlines() == [
        "repaired 1: kept in COMPLETED (was in PENDING_AND_RUNNING,COMPLETED)",
        "tag t: clean (seed key layout)",
    ]
