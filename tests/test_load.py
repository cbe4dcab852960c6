"""Load, scaled down for CI: 40 concurrent local jobs x 200 results while status, top and a
tracker daemon run, on a dedicated redis-server.

The full-size run (200 jobs x 1,000 results) is ``tests/stress/stress_load.py``, the same
harness; its figures are in docs/reliability.md.  This test checks correctness only, never
timing: every result present with its value, the index and numeric sets matching the
stored values, every job in exactly one state set, ``_ALL`` the union of the state sets,
one history entry and one event per transition, and every status/top read taken during
the load consistent.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from conftest import start_server
from jobledger.ledger import Ledger, Transition, utcnow
from jobledger.states import State
from jobledger.store import Results
from stress.stress_load import TAG, LoadConfig, LoadReport, check_ledger, check_results, run_load

JOBS, RESULTS = 40, 200


@pytest.fixture(scope="module")
def load(tmp_path_factory: pytest.TempPathFactory) -> LoadReport:
    workdir = tmp_path_factory.mktemp("load")
    return run_load(LoadConfig(jobs=JOBS, results=RESULTS, cli_launches=2, workdir=workdir))


def test_every_job_ran_and_was_filed_once(load: LoadReport) -> None:
    assert len(load.job_ids) == JOBS
    assert len(set(load.job_ids)) == JOBS
    assert load.problems["jobs"] == []  # each job printed its timing line, nothing on stderr
    assert load.problems["tracker"] == []  # daemon + final passes moved each job exactly once
    assert load.figures["tracker"]["daemon_moved"] + load.figures["tracker"]["once_moved"] == JOBS


def test_every_result_is_present_and_indexed(load: LoadReport) -> None:
    assert load.problems["results"] == []
    assert load.figures["writes"]["results"] == JOBS * RESULTS
    styles = {s: load.figures["writes"][s]["jobs"] for s in ("set", "update")}
    assert styles == {"set": JOBS // 2, "update": JOBS // 2}


def test_the_ledger_is_consistent(load: LoadReport) -> None:
    assert load.problems["ledger"] == []  # includes `jobledger fsck` when it exists
    assert sum(load.facts["submitted_by"].values()) == JOBS
    assert set(load.facts["submitted_by"]) <= {"launch", "journal"}
    assert load.facts["events"] == 2 * JOBS


def test_readers_saw_a_consistent_ledger_throughout(load: LoadReport) -> None:
    assert load.problems["readers"] == []
    readers = load.figures["readers"]
    for name in ("status_cli", "top_cli", "status_lib", "top_lib"):
        assert readers[name]["all"]["n"] >= 1, name


def test_the_checks_catch_a_lost_result_and_a_job_in_two_sets(tmp_path: Path) -> None:
    """The verifier itself: a result lost behind the index's back and a job filed twice."""
    srv = start_server("redis-server", tmp_path / "redis")
    client = redis.Redis.from_url(srv.url, decode_responses=True)
    try:
        ledger = Ledger(client, TAG)
        now = utcnow()
        for job in ("1", "2"):
            ledger.record_submission(job, now=now, fields={"scheduler": "local"})
            Results(client, TAG, job).update(
                {
                    f"k{n}": int(job) * 100000 + n if n % 10 != 9 else f"v{job}-{n}"
                    for n in range(20)
                }
            )
            ledger.move(
                Transition(job, State.PENDING_AND_RUNNING, State.COMPLETED, {"exit_code": 0}),
                now=now,
                by="tracker",
            )
            client.hset(f"jobledger:{TAG}:job:{job}", "ended_at", now.isoformat())
        assert check_results(client, TAG, ["1", "2"], 20) == []
        assert check_ledger(client, TAG, ["1", "2"])[0] == []

        client.delete(f"{TAG}-1:k3")  # lost behind the index's back
        client.sadd(f"{TAG}_FAILED", "2")  # filed twice
        results = check_results(client, TAG, ["1", "2"], 20)
        assert any("job 1: 1 of 20 results missing" in p for p in results)
        assert any("result keys stored" in p for p in results)
        problems, _ = check_ledger(client, TAG, ["1", "2"])
        assert any("not in exactly one state set" in p for p in problems)
    finally:
        client.close()
        srv.process.terminate()
        srv.process.wait(timeout=10)
