"""A tag filled through jobledger's own writes (launch's record, the tracker's moves, the
results API), fast enough for tests and benchmarks of the views: no scheduler runs."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import redis

from jobledger.ledger import Ledger, Transition
from jobledger.states import State
from jobledger.store import Results

START = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
# Of every 10 jobs: 6 completed, 2 failed, 1 timed out, 1 still running.
PATTERN = [State.COMPLETED] * 6 + [State.FAILED] * 2 + [State.TIMEOUT, State.PENDING_AND_RUNNING]


def state_of(i: int) -> State:
    return PATTERN[i % len(PATTERN)]


def build(
    client: redis.Redis,
    tag: str,
    n: int,
    *,
    results_per_job: int = 3,
    first_id: int = 1000,
    chunk: int = 1000,
) -> list[str]:
    """N jobs of ``tag`` with IDs ``first_id``.., submitted a minute apart; each ended one
    moved by the "tracker" with usage fields; results ``reward`` (rising with the job),
    ``loss`` and ``step_<k>`` keys through the results API (on every 7th job a
    non-numeric ``reward``)."""
    ledger = Ledger(client, tag)
    ids = [str(first_id + i) for i in range(n)]
    for start in range(0, n, chunk):
        batch = ids[start : start + chunk]
        with client.pipeline(transaction=False) as pipe:
            for i, job_id in enumerate(batch, start):
                ledger.record_submission(
                    job_id,
                    now=START + timedelta(minutes=i),
                    pipeline=pipe,
                    fields={"scheduler": "local", "name": f"{tag}-run"},
                )
            pipe.execute()
        moves = []
        for i, job_id in enumerate(batch, start):
            target = state_of(i)
            if target is State.PENDING_AND_RUNNING:
                continue
            fields = {
                "started_at": START + timedelta(minutes=i, seconds=5),
                "ended_at": START + timedelta(minutes=i, seconds=65 + i % 50),
                "elapsed_s": 60 + i % 50,
                "exit_code": 0 if target is State.COMPLETED else 1,
                "cpu_s": 30 + i % 20,
                "max_rss_bytes": (100 + i % 900) * 1024**2,
                "req_mem_bytes": 2 * 1024**3,
                "req_cpus": 1,
                "reason": "" if target is State.COMPLETED else "NonZeroExitCode",
            }
            moves.append(Transition(job_id, State.PENDING_AND_RUNNING, target, fields))
        ledger.apply(moves, now=START + timedelta(days=1), by="tracker")
        for i, job_id in enumerate(batch, start):
            if not results_per_job:
                continue
            values: dict[str, str | float] = {"reward": 0.001 * i, "loss": 1.0 / (1 + i)}
            if i % 7 == 3:
                values["reward"] = "n/a"
            for k in range(max(0, results_per_job - 2)):
                values[f"step_{k + 1}"] = float(k + i % 10)
            Results(client, tag, job_id).update(values)
    return ids
