"""The tracker never dies of data, and its lease holds through passes longer than the lease.

Real Redis servers and the real local scheduler's files; SLURM rows that a one-node
cluster cannot produce are literal sacct output fed through the real parser.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import redis

from conftest import CLI
from jobledger.fsck import check
from jobledger.ledger import Ledger
from jobledger.schedulers.base import QueryResult, Records
from jobledger.schedulers.local import LocalScheduler, write_job_files
from jobledger.schedulers.slurm_parsers import parse_sacct, parse_sacct_rows
from jobledger.states import State
from jobledger.tracker import Tracker, TrackerSettings

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
P = State.PENDING_AND_RUNNING
DONE = {"state": "COMPLETED", "exit_code": 0, "ended_at": NOW.isoformat()}


def local_jobs(client: redis.Redis, tag: str, home: Path, ids: list[str]) -> None:
    """Finished local jobs, recorded as launch records them."""
    ledger = Ledger(client, tag)
    with client.pipeline(transaction=False) as pipe:
        for job_id in ids:
            fields = write_job_files(home, job_id, DONE)
            ledger.record_submission(job_id, now=NOW, fields=fields, pipeline=pipe)
        pipe.execute()


def tracker(
    client: redis.Redis,
    tags: list[str],
    home: Path,
    scheduler: object,
    **settings: float,
) -> Tracker:
    return Tracker(
        client,
        lambda: tags,
        scheduler=lambda name: scheduler,  # type: ignore[arg-type, return-value]
        default_scheduler="local",
        home=home,
        settings=TrackerSettings(**settings),  # type: ignore[arg-type]
    )


# --- bad data -----------------------------------------------------------------------


def test_a_malformed_record_field_skips_that_job_and_the_rest_are_filed(
    cli: CLI, jl_client: redis.Redis
) -> None:
    local_jobs(jl_client, "bad", cli.cwd, ["1", "3"])
    Ledger(jl_client, "bad").record_submission("2", now=NOW, fields={"scheduler": "local"})
    jl_client.hset("jobledger:bad:job:2", "missing_since", "yesterday")  # edited by hand
    run = cli("track", "--once", "--tag", "bad", "--scheduler", "local", "--json")
    assert run.code == 0, run.err
    [report] = json.loads(run.out)
    assert sorted(m[0] for m in report["moved"]) == ["1", "3"]
    assert report["problems"] == [
        ["2", "bad record: missing_since 'yesterday' is not an ISO 8601 time"]
    ]
    assert "job 2" in run.err and "Traceback" not in run.err  # logged with the job
    status = cli("status", "--tag", "bad")
    assert "tracker: last problem" in status.out and "job 2: bad record" in status.out
    fsck = check(jl_client, "bad")
    [problem] = [p for p in fsck.problems if p.kind == "bad_record"]
    assert problem.job_ids == ["2"]
    assert "missing_since" in problem.detail["2"]


SACCT = (
    "101|101|t|COMPLETED|0:0|None|2026-12-01T10:00:00|2026-12-01T10:05:00|n1\n"
    "102|102|t|NOT_A_STATE|0:0|None|2026-12-01T10:00:00|2026-12-01T10:05:00|n1\n"
    "103|103|t|FAILED|2:0|None|2026-12-01T10:00:00|2026-12-01T10:06:00|n1\n"
)


class LiteralSacct:
    """The SLURM backend's query step, on literal sacct output through the real parser."""

    name = "slurm"

    def __init__(self, text: str) -> None:
        self.text = text

    def query(self, jobs: Records) -> QueryResult:
        found, problems = parse_sacct_rows(self.text)
        return QueryResult({j: i for j, i in found.items() if j in jobs}, None, tuple(problems))


def test_an_unparseable_sacct_row_skips_its_job_and_files_the_others(
    jl_client: redis.Redis, tmp_path: Path
) -> None:
    ledger = Ledger(jl_client, "s")
    for job_id in ("101", "102", "103"):
        ledger.record_submission(job_id, now=NOW, fields={"scheduler": "slurm"})
    [report] = tracker(jl_client, ["s"], tmp_path, LiteralSacct(SACCT)).run_pass(now=NOW)
    assert sorted(report.moved) == [("101", P.value, "COMPLETED"), ("103", P.value, "FAILED")]
    assert [job for job, _ in report.problems] == ["102"]
    assert "NOT_A_STATE" in report.problems[0][1]
    assert "missing_since" not in ledger.job("102").record  # not taken for a missing job


def test_the_strict_parser_still_refuses_the_bad_row() -> None:
    import pytest

    from jobledger.errors import ParseError

    with pytest.raises(ParseError, match="NOT_A_STATE"):
        parse_sacct(SACCT)


def test_an_error_in_one_tag_is_reported_and_the_other_tags_are_filed(
    cli: CLI, jl_client: redis.Redis
) -> None:
    local_jobs(jl_client, "good", cli.cwd, ["1"])
    jl_client.sadd("jobledger:tags", "broken")
    jl_client.set(f"broken_{P.value}", "not a set")  # WRONGTYPE for this tag only
    run = cli("track", "--once", "--all-tags", "--scheduler", "local", "--json")
    assert run.code == 0, run.err
    reports = {r["tag"]: r for r in json.loads(run.out)}
    assert reports["good"]["moved"] == [["1", P.value, "COMPLETED"]]
    assert "WRONGTYPE" in reports["broken"]["problems"][0][1]
    assert "WRONGTYPE" in jl_client.hget("jobledger:broken:tracker", "last_problem")


def test_the_daemon_outlives_an_unexpected_exception_in_a_pass(
    jl_client: redis.Redis, tmp_path: Path
) -> None:
    local_jobs(jl_client, "d", tmp_path, ["1"])
    local = LocalScheduler(tmp_path)
    calls: list[int] = []

    def flaky(name: str) -> LocalScheduler:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug in a backend")
        return local

    tr = Tracker(
        jl_client,
        lambda: ["d"],
        scheduler=flaky,  # type: ignore[arg-type]
        default_scheduler="local",
        home=tmp_path,
        settings=TrackerSettings(interval_s=0.05, max_backoff_s=0.1),
    )
    stop = threading.Event()
    passes: list[int] = []

    def on_pass(reports: object) -> None:
        passes.append(1)
        if jl_client.sismember("d_COMPLETED", "1"):
            stop.set()

    thread = threading.Thread(
        target=tr.run, args=(stop,), kwargs={"now": lambda: NOW, "on_pass": on_pass}
    )
    thread.start()
    thread.join(timeout=30)
    stop.set()
    assert not thread.is_alive()
    assert jl_client.sismember("d_COMPLETED", "1")
    assert len(calls) >= 2


# --- leases through long passes -----------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


class SlowLocal(LocalScheduler):
    """The local scheduler, where each query takes 0.6 lease-lengths of (logical) time;
    while it runs, the rival tracker tries to take the lease."""

    def __init__(self, home: Path, clock: Clock, ttl_s: float) -> None:
        super().__init__(home)
        self.clock, self.step = clock, timedelta(seconds=0.6 * ttl_s)
        self.rival: Callable[[], object] | None = None

    def query(self, jobs: Records) -> QueryResult:
        result = super().query(jobs)
        self.clock.now += self.step
        if self.rival is not None:
            self.rival()
        return result


def test_two_trackers_whose_passes_outlast_the_lease_still_file_every_job(
    jl_client: redis.Redis, tmp_path: Path
) -> None:
    ids = [str(i) for i in range(1, 3001)]
    local_jobs(jl_client, "long", tmp_path, ids)
    clock, ttl = Clock(), 10.0
    slow = SlowLocal(tmp_path, clock, ttl)
    one, two = (
        Tracker(
            jl_client,
            lambda: ["long"],
            scheduler=lambda name: slow,
            default_scheduler="local",
            home=tmp_path,
            settings=TrackerSettings(lease_ttl_s=ttl, query_chunk=1000),
            owner=owner,
            clock=clock,
        )
        for owner in ("one", "two")
    )
    reports = []
    for me, rival in ((one, two), (two, one), (one, two), (two, one)):
        slow.rival = lambda rival=rival: rival._lease("long").acquire(clock())
        reports += me.run_pass(now=clock())
        if jl_client.scard("long_COMPLETED") == len(ids):
            break
    assert jl_client.scard("long_COMPLETED") == len(ids), reports
    assert reports[0].active and len(reports[0].moved) == len(ids)  # the first pass did it all


class RecordingSacct(LiteralSacct):
    """LiteralSacct that remembers which jobs each query asked about."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.asked: list[list[str]] = []

    def query(self, jobs: Records) -> QueryResult:
        self.asked.append(sorted(jobs))
        return super().query(jobs)


def test_the_tasks_of_one_array_are_asked_in_one_query(
    jl_client: redis.Redis, tmp_path: Path
) -> None:
    """A chunk counts jobs or arrays, never splits an array: SLURM answers one row for a
    pending array, so splitting it repeated the same sacct call for every part."""
    ledger = Ledger(jl_client, "a")
    tasks = [f"700_{i}" for i in range(5)]
    for job_id in (*tasks, "101", "103"):
        ledger.record_submission(job_id, now=NOW, fields={"scheduler": "slurm"})
    sacct = RecordingSacct(SACCT.replace("102|102", "x|x") + "700|700_[0-4]|t|PENDING|0:0|None"
                           "|Unknown|Unknown|None\n")  # fmt: skip
    [report] = tracker(jl_client, ["a"], tmp_path, sacct, query_chunk=2).run_pass(now=NOW)
    # Two chunks of at most 2 jobs or arrays (7 jobs by task would have been 4 queries),
    # and the array's 5 tasks all in one of them.
    assert len(sacct.asked) == 2 and any(set(tasks) <= set(a) for a in sacct.asked)
    assert sorted(report.moved) == [("101", P.value, "COMPLETED"), ("103", P.value, "FAILED")]
    assert ledger.job("700_3").record["raw_state"] == "PENDING"
