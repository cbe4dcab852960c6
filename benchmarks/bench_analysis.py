"""Speed of the "why did it fail" views at scale, against a real redis-server started here.

    python benchmarks/bench_analysis.py [--jobs 100000]

A tag of N ended jobs (90% FAILED in 5 kinds of error whose lines differ in numbers
and paths, 10% TIMEOUT), each record holding usage fields and its last stderr line, as
the tracker leaves them.  Measures: the failure groups (`jobledger failures`), the
usage summary (`jobledger usage`), both through the real CLI (process included) and
as library calls; `status --state FAILED --ids` through the CLI; heartbeats
(`heartbeat()`, and `set()` which carries one); the tracker's stall check over N
running jobs when every heartbeat is fresh and when all are stale.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from bench_core import start_server, timed

from jobledger.failures import tag_failures
from jobledger.ledger import Ledger
from jobledger.schedulers.local import LocalScheduler
from jobledger.states import State
from jobledger.store import Results
from jobledger.tracker import Tracker, TrackerSettings
from jobledger.usage import USAGE_FIELDS, summarize, usage_from_record

NOW = datetime.now(timezone.utc)
ERRORS = (
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate {n}.00 MiB (GPU 0)",
    "FileNotFoundError: [Errno 2] No such file or directory: '/data/shard_{n}.bin'",
    "ValueError: loss is nan at step {n}",
    "KeyError: 'mol_{n}'",
    "RuntimeError: NCCL error in: /opt/src/ProcessGroupNCCL.cpp:{n}, unhandled system error",
)


def fill(client: object, tag: str, n: int) -> list[str]:
    """N ended jobs with records as the tracker writes them."""
    ledger = Ledger(client, tag)  # type: ignore[arg-type]
    ids = [str(i) for i in range(1, n + 1)]
    with client.pipeline(transaction=False) as pipe:  # type: ignore[attr-defined]
        for i, job_id in enumerate(ids):
            ledger.record_submission(job_id, now=NOW, pipeline=pipe, fields={"scheduler": "local"})
            if i % 1000 == 999:
                pipe.execute()
        pipe.execute()
    with client.pipeline(transaction=False) as pipe:  # type: ignore[attr-defined]
        for i, job_id in enumerate(ids):
            state = State.TIMEOUT if i % 10 == 9 else State.FAILED
            pipe.smove(f"{tag}_PENDING_AND_RUNNING", f"{tag}_{state.value}", job_id)
            pipe.hset(
                f"jobledger:{tag}:job:{job_id}",
                mapping={
                    "state": state.value,
                    "exit_code": "0" if state is State.TIMEOUT else "1",
                    "signal": "15" if state is State.TIMEOUT else "0",
                    "stderr_last": ERRORS[i % 5].format(n=i),
                    "elapsed_s": str(60 + i % 600),
                    "cpu_s": str(50 + i % 500),
                    "max_rss_bytes": str((1 + i % 4000) * 1024**2),
                    "req_mem_bytes": str(4 * 1024**3),
                    "req_cpus": "1",
                    "cpu_efficiency": "0.83",
                    "mem_efficiency": "0.5",
                },
            )
            if i % 1000 == 999:
                pipe.execute()
        pipe.execute()
    return ids


def cli(url: str, *args: str) -> str:
    env = {**os.environ, "JOBLEDGER_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "jobledger", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=100_000)
    n = parser.parse_args().jobs
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        proc, client = start_server(home)
        url = f"redis://127.0.0.1:{client.connection_pool.connection_kwargs['port']}/0"
        try:
            started = time.perf_counter()
            fill(client, "why", n)
            print(f"-- {n:,} ended jobs written in {time.perf_counter() - started:.1f} s")
            ledger = Ledger(client, "why")
            groups: list[object] = []
            timed(
                f"failure groups of {n:,} jobs (library)",
                lambda: groups.extend(tag_failures(ledger)),
                unit_count=n,
            )
            print(f"   {len(groups)} groups")
            timed(
                f"`jobledger failures` on {n:,} jobs (process)",
                lambda: cli(url, "failures", "-t", "why"),
            )

            def summary() -> None:
                ids = ledger.snapshot(["FAILED"])["FAILED"]
                records = ledger.records(ids, fields=USAGE_FIELDS)
                found = (usage_from_record(r) for _, r in records)
                summarize(u for u in found if u is not None)

            timed(f"usage summary of {n:,} jobs (library)", summary, unit_count=n)
            timed(
                f"`jobledger usage` on {n:,} jobs (process)", lambda: cli(url, "usage", "-t", "why")
            )
            timed(
                f"`jobledger status --state FAILED --ids` ({n * 9 // 10:,} IDs, process)",
                lambda: cli(url, "status", "-t", "why", "--state", "FAILED", "--ids"),
            )
            res = Results(client, "hb", "1")
            timed(
                "1,000 heartbeat() calls",
                lambda: [res.heartbeat() for _ in range(1000)],
                unit_count=1000,
            )
            timed(
                "1,000 results.set() calls (each with its heartbeat)",
                lambda: [res.set(f"k{i}", i) for i in range(1000)],
                unit_count=1000,
            )

            # The stall check over N running jobs: every heartbeat fresh, then all stale.
            run_ledger = Ledger(client, "run")
            with client.pipeline(transaction=False) as pipe:
                for i in range(1, n + 1):
                    run_ledger.record_submission(str(i), now=NOW, pipeline=pipe, fields={})
                    if i % 1000 == 0:
                        pipe.execute()
                pipe.execute()
            client.zadd("jobledger:run:heartbeats", {str(i): time.time() for i in range(1, n + 1)})
            local = LocalScheduler(home)
            passes = (
                (0.0, "warm-up (notes every job as unknown to the scheduler)"),
                (0.0, "stall check off"),
                (3600.0, "stall check on, all fresh"),
                (1e-9, "stall check on, all stale: marks them"),
            )
            for stall_after, label in passes:
                tracker = Tracker(
                    client,
                    lambda: ["run"],
                    scheduler=lambda _: local,
                    default_scheduler="local",
                    home=home,
                    settings=TrackerSettings(stall_after_s=stall_after, lost_grace_s=1e9),
                )
                time.sleep(0.01)
                timed(
                    f"tracker pass, {n:,} running jobs: {label}",
                    lambda t=tracker: t.run_pass(now=datetime.now(timezone.utc)),  # type: ignore[misc]
                )
                tracker.release()
            print(f"   stalled: {client.scard('jobledger:run:stalled'):,}")
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
