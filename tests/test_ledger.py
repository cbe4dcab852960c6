"""Ledger behaviour on both real servers: seed-compatible sets, atomic compare-and-set moves."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import redis

from conftest import CLUSTER_KINDS, K
from jobledger.errors import UsageError
from jobledger.ledger import Ledger, Transition
from jobledger.states import State

REDIS_KINDS = CLUSTER_KINDS  # these suites run on Redis Cluster too

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def ledger(jl_client: redis.Redis) -> Ledger:
    return Ledger(jl_client, "rlmol_exp")


def test_submission_lands_in_the_seed_sets(ledger: Ledger, client: redis.Redis) -> None:
    assert ledger.record_submission("4226674", now=NOW, fields={"script": "job.sbatch"}) == 1
    assert client.smembers(K(client, "rlmol_exp_ALL")) == {"4226674"}
    assert client.smembers(K(client, "rlmol_exp_PENDING_AND_RUNNING")) == {"4226674"}
    record = client.hgetall(K(client, "jobledger:rlmol_exp:job:4226674"))
    assert record["state"] == "PENDING_AND_RUNNING"
    assert record["submitted_at"] == "2026-11-25T12:00:00+00:00"
    assert record["script"] == "job.sbatch"
    assert record["attempts"] == "1"
    assert client.xlen(K(client, "jobledger:rlmol_exp:events")) == 1


def test_replayed_submission_is_a_no_op(ledger: Ledger, client: redis.Redis) -> None:
    ledger.record_submission("1", now=NOW)
    ledger.move(Transition("1", State.PENDING_AND_RUNNING, State.COMPLETED), now=NOW, by="t")
    assert ledger.record_submission("1", now=NOW) == 0
    assert client.smembers(K(client, "rlmol_exp_PENDING_AND_RUNNING")) == set()
    assert client.smembers(K(client, "rlmol_exp_COMPLETED")) == {"1"}
    assert client.xlen(K(client, "jobledger:rlmol_exp:events")) == 2


def test_move_is_compare_and_set_and_idempotent(ledger: Ledger, client: redis.Redis) -> None:
    ledger.record_submission("7", now=NOW)
    tr = Transition("7", State.PENDING_AND_RUNNING, State.FAILED, {"exit_code": 3})
    assert ledger.apply([tr, tr], now=NOW, by="tracker") == [1, 0]
    assert client.smembers(K(client, "rlmol_exp_FAILED")) == {"7"}
    assert client.hget(K(client, "jobledger:rlmol_exp:job:7"), "exit_code") == "3"
    # A move from a state the job is not in changes nothing.
    wrong = Transition("7", State.PENDING_AND_RUNNING, State.COMPLETED)
    assert ledger.apply([wrong], now=NOW, by="tracker") == [0]
    assert ledger.job("7").states == [State.FAILED]
    assert [h["to"] for h in ledger.job("7").history] == ["PENDING_AND_RUNNING", "FAILED"]


def test_requeue_raises_the_attempt_count(ledger: Ledger) -> None:
    ledger.record_submission("9", now=NOW)
    ledger.move(Transition("9", State.PENDING_AND_RUNNING, State.NODE_FAIL), now=NOW, by="t")
    back = Transition("9", State.NODE_FAIL, State.PENDING_AND_RUNNING, new_attempt=True)
    ledger.move(back, now=NOW, by="t")
    view = ledger.job("9")
    assert view.states == [State.PENDING_AND_RUNNING]
    assert view.record["attempts"] == "2"


def test_update_record_only_touches_jobs_still_in_the_state(ledger: Ledger) -> None:
    ledger.record_submission("5", now=NOW)
    assert ledger.update_record("5", State.PENDING_AND_RUNNING, {"nodes": "n1"}) == 1
    assert ledger.update_record("5", State.COMPLETED, {"nodes": "n2"}) == 0
    assert ledger.update_record("404", State.PENDING_AND_RUNNING, {"nodes": "x"}) == 0
    assert ledger.job("5").record["nodes"] == "n1"
    assert ledger.job("404").record == {}


def test_snapshot_sorts_ids_numerically_with_array_tasks(
    ledger: Ledger, client: redis.Redis
) -> None:
    client.sadd(K(client, "rlmol_exp_ALL"), "10", "9", "100", "9_10", "9_2", "9+0")
    snap = ledger.snapshot()
    assert snap["ALL"] == ["9", "9_2", "9_10", "9+0", "10", "100"]
    assert ledger.last_job() == "100"


def test_seed_written_ids_without_records_are_moved(ledger: Ledger, client: redis.Redis) -> None:
    client.sadd(K(client, "rlmol_exp_ALL"), "4226674")
    client.sadd(K(client, "rlmol_exp_PENDING_AND_RUNNING"), "4226674")
    tr = Transition("4226674", State.PENDING_AND_RUNNING, State.CANCELLED)
    assert ledger.apply([tr], now=NOW, by="tracker") == [1]
    assert client.smembers(K(client, "rlmol_exp_CANCELLED")) == {"4226674"}


def test_cleanup_leaves_similar_tags_alone(jl_client: redis.Redis, client: redis.Redis) -> None:
    for tag in ("a", "a_b", "ab"):
        Ledger(jl_client, tag).record_submission("1", now=NOW)
        client.set(K(client, f"{tag}-1:reward"), "1")
    report = Ledger(jl_client, "a").cleanup(purge_results_too=True)
    assert (report.jobs, report.records, report.results) == (1, 1, 1)
    assert (
        client.exists(K(client, "a_ALL"), K(client, "a-1:reward"), K(client, "jobledger:a:job:1"))
        == 0
    )
    for tag in ("a_b", "ab"):
        assert client.smembers(K(client, f"{tag}_ALL")) == {"1"}
        assert client.get(K(client, f"{tag}-1:reward")) == "1"
        assert client.exists(K(client, f"jobledger:{tag}:job:1")) == 1


def test_cleanup_without_purge_keeps_results(jl_client: redis.Redis, client: redis.Redis) -> None:
    Ledger(jl_client, "t").record_submission("1", now=NOW)
    client.set(K(client, "t-1:x"), "0.5")
    Ledger(jl_client, "t").cleanup()
    assert client.get(K(client, "t-1:x")) == "0.5"
    assert (
        client.exists(
            K(client, "t_ALL"), K(client, "t_PENDING_AND_RUNNING"), K(client, "jobledger:t:events")
        )
        == 0
    )


@pytest.mark.parametrize("tag", ["a b", "a*", "x?", "[x]", "a:b", "é", "", "-x"])
def test_invalid_tags_are_refused(jl_client: redis.Redis, tag: str) -> None:
    with pytest.raises(UsageError):
        Ledger(jl_client, tag)


def test_cleanup_keeps_the_fencing_counter(jl_client: redis.Redis, client: redis.Redis) -> None:
    client.set(K(client, "jobledger:t:fence"), "7")
    Ledger(jl_client, "t").record_submission("1", now=NOW)
    Ledger(jl_client, "t").cleanup(purge_results_too=True)
    assert client.get(K(client, "jobledger:t:fence")) == "7"


def test_durability_replica_refuses_to_confirm_a_submission_no_replica_has(
    jl_client: redis.Redis,
) -> None:
    if server_has_replicas(jl_client):
        pytest.skip("the cluster's primaries have replicas: WAIT is confirmed there")
    from jobledger.durability import Durability, NotConfirmed
    from jobledger.journal import JournalEntry

    entry = JournalEntry("d", ("1", "2"), NOW.isoformat(), {"scheduler": "local"})
    with pytest.raises(NotConfirmed, match="no replica confirmed"):  # these servers have none
        entry.record(jl_client, by="launch", durability=Durability(1, 50))
    assert Ledger(jl_client, "d").counts()["ALL"] == 2  # on the primary: a replay is harmless
    assert entry.record(jl_client, by="journal") == (0, [])


def test_durability_replica_moves_still_happen_when_no_replica_confirms(
    jl_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    if server_has_replicas(jl_client):
        pytest.skip("the cluster's primaries have replicas: WAIT is confirmed there")
    from jobledger.durability import Durability

    ledger = Ledger(jl_client, "d", durability=Durability(1, 50))
    ledger.record_submission("1", now=NOW)
    tr = Transition("1", State.PENDING_AND_RUNNING, State.COMPLETED)
    assert ledger.apply([tr], now=NOW, by="tracker") == [1]
    assert "no replica confirmed" in caplog.text


def server_has_replicas(client: redis.Redis) -> bool:
    from jobledger.keys import CLUSTER_LAYOUT, layout_for

    return layout_for(client) is CLUSTER_LAYOUT


def test_a_stalled_mark_and_its_recovery_are_one_script_each(
    ledger: Ledger, client: redis.Redis
) -> None:
    ledger.record_submission("5", now=NOW)
    assert ledger.set_stalled("5", since="2026-11-25T11:00:00+00:00", now=NOW) == 1
    assert ledger.stalled() == ["5"]
    assert client.hget(K(client, "jobledger:rlmol_exp:job:5"), "stalled_since")
    assert ledger.set_stalled("5", since=None, now=NOW) == 1  # heartbeating again
    assert ledger.stalled() == []
    events = [e.get("event") for e in ledger.events()]
    assert events[-2:] == ["stalled", "recovered"]
