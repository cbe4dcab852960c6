"""Speed of the views at 100,000 jobs: dashboard API, live updates, export, trend, watch.

    python benchmarks/bench_views.py [--jobs 100000] [--results 10] [--no-browser]

A tag of N jobs with R results each (tests/experiment.py: the ledger's own writes),
against a real redis-server started here.  The dashboard runs as the real command
(`jobledger dashboard`, its own process) and is asked over HTTP; the page is opened in
Debian's Chromium (Selenium) to time how long a state change takes to reach it.
export, trend and watch run as the real CLI; the peak memory of each is its process's
maximum RSS.  Targets (issue 9): the counts and the first page of the job table each
answered in under 300 ms; a live update on an open page within 3 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
from bench_core import start_server

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from browser import headless_chromium
from experiment import build
from jobledger.ledger import Ledger, Transition
from jobledger.states import State

TAG = "bench"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def ask(http: httpx.Client, path: str, **params: object) -> float:
    start = time.perf_counter()
    reply = http.get(path, params=params)
    elapsed = time.perf_counter() - start
    reply.raise_for_status()
    return elapsed


def report(label: str, http: httpx.Client, path: str, repeat: int = 20, **params: object) -> None:
    first = ask(http, path, **params)
    rest = [ask(http, path, **params) for _ in range(repeat)]
    print(
        f"{label:<52} first {ms(first)}   median {ms(statistics.median(rest))}"
        f"   max {ms(max(rest))}"
    )


def cli_run(env: dict[str, str], *args: str) -> tuple[float, float]:
    """Wall time and peak RSS (MiB) of one jobledger command (wait4: that process's own)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobledger", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"jobledger {' '.join(args)} failed with {proc.returncode}")
    return elapsed, usage.ru_maxrss / 1024


def live_latency(url: str, client: object, moves: list[str], runs: int) -> list[float]:
    """Seconds from a move in Redis to the changed count on the open page."""
    browser = headless_chromium(1400, 1000)
    ledger = Ledger(client, TAG)  # type: ignore[arg-type]
    got = []
    try:
        browser.get(url)
        deadline = time.monotonic() + 60
        while "of " not in browser.execute_script(
            "return document.getElementById('page-info').innerText"
        ):
            assert time.monotonic() < deadline, "the page did not load"
            time.sleep(0.05)
        for job_id in moves[:runs]:

            def count() -> str:
                return str(
                    browser.execute_script(
                        "return document.getElementById('count-COMPLETED').innerText"
                    )
                )

            before = count()
            start = time.perf_counter()
            move = Transition(job_id, State.PENDING_AND_RUNNING, State.COMPLETED)
            ledger.move(move, now=datetime.now(timezone.utc), by="bench")
            while count() == before:
                if time.perf_counter() - start > 30:
                    raise SystemExit("the page did not update within 30 s")
                time.sleep(0.02)
            got.append(time.perf_counter() - start)
            time.sleep(0.3)
    finally:
        browser.quit()
    return got


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--results", type=int, default=10)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, client = start_server(Path(tmp))
        try:
            start = time.perf_counter()
            ids = build(client, TAG, args.jobs, results_per_job=args.results)
            print(
                f"built {args.jobs:,} jobs x {args.results} results in "
                f"{time.perf_counter() - start:.1f} s; Redis used "
                f"{client.info('memory')['used_memory'] / 2**20:.0f} MiB"
            )
            port = client.connection_pool.connection_kwargs["port"]
            env = {
                **os.environ,
                "JOBLEDGER_URL": f"redis://127.0.0.1:{port}/0",
                "JOBLEDGER_TAG": TAG,
                "HOME": tmp,
            }
            run_views(env, client, ids, args, Path(tmp))
        finally:
            proc.terminate()
            proc.wait()


def run_views(env: dict[str, str], client: object, ids: list[str], args: object, tmp: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        web_port = s.getsockname()[1]
    web = subprocess.Popen(
        [sys.executable, "-m", "jobledger", "dashboard", "--port", str(web_port)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = web.stderr.readline()  # type: ignore[union-attr]
        assert "dashboard: http://" in line, line
        url = line.split()[2]  # with the token the dashboard made for this run
        token = url.partition("?token=")[2]
        base = f"http://127.0.0.1:{web_port}"
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, timeout=60, headers=auth) as http:
            print("\n-- dashboard API (HTTP to `jobledger dashboard`, its own process)")
            report("counts, tracker, events, top  /api/tags/T", http, f"/api/tags/{TAG}")
            report("job table, first page (50)    /jobs", http, f"/api/tags/{TAG}/jobs", limit=50)
            report(
                "  filtered: state=FAILED", http, f"/api/tags/{TAG}/jobs", state="FAILED", limit=50
            )
            report(
                "  sorted: elapsed_s, descending",
                http,
                f"/api/tags/{TAG}/jobs",
                sort="elapsed_s",
                desc=1,
                limit=50,
            )
            report(
                "  last page (offset N-50)",
                http,
                f"/api/tags/{TAG}/jobs",
                offset=len(ids) - 50,
                limit=50,
            )
            # A state change invalidates the cached order: the next first page sorts again.
            ledger = Ledger(client, TAG)  # type: ignore[arg-type]
            running = sorted(ledger.members(State.PENDING_AND_RUNNING))
            after_move = []
            for job_id in running[:10]:
                ledger.move(
                    Transition(job_id, State.PENDING_AND_RUNNING, State.FAILED),
                    now=datetime.now(timezone.utc),
                    by="bench",
                )
                after_move.append(ask(http, f"/api/tags/{TAG}/jobs", limit=50))
            print(
                f"{'  first page right after a state change (10x)':<52} "
                f"median {ms(statistics.median(after_move))}   max {ms(max(after_move))}"
            )
            report(
                "one job's page                /jobs/ID",
                http,
                f"/api/tags/{TAG}/jobs/{ids[len(ids) // 2]}",
                repeat=5,
            )
            report(
                "trend chart (600 bins)        /trend",
                http,
                f"/api/tags/{TAG}/trend",
                repeat=2,
                key="reward",
                bins=600,
            )
            report(
                "failure groups                /failures",
                http,
                f"/api/tags/{TAG}/failures",
                repeat=2,
            )
        if not args.no_browser:  # type: ignore[attr-defined]
            waits = live_latency(url, client, running[10:], 5)
            print(
                f"\n-- live update: a move in Redis -> the open page's count (5x, poll 1 s)\n"
                f"{'  seconds':<52} median {statistics.median(waits):.2f} s"
                f"   max {max(waits):.2f} s"
            )
    finally:
        web.terminate()
        web.wait()
    print("\n-- the CLI (process included; peak = the process's max RSS)")
    for label, argv in (
        ("export (CSV, job columns)", ["export", "-o", str(tmp / "a.csv")]),
        ("export --results (CSV, wide)", ["export", "--results", "-o", str(tmp / "b.csv")]),
        (
            "export --results --long (JSONL)",
            ["export", "--results", "--long", "-o", str(tmp / "c.jsonl")],
        ),
        ("export --results (Parquet)", ["export", "--results", "-o", str(tmp / "d.parquet")]),
        ("trend reward", ["trend", "reward"]),
        ("trend 'step_*' --agg mean", ["trend", "step_*", "--agg", "mean"]),
        ("watch --once", ["watch", "--once"]),
    ):
        elapsed, peak = cli_run(env, *argv)
        out = argv[-1] if argv[-1].startswith(str(tmp)) else None
        size = f", file {Path(out).stat().st_size / 2**20:.0f} MiB" if out else ""
        print(f"{label:<52} {elapsed:6.2f} s   peak RSS {peak:5.0f} MiB{size}")


if __name__ == "__main__":
    main()
