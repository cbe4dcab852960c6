"""Fault 4 at length: several tracker daemons for one tag, the lease holder SIGKILLed.

    python tests/stress/stress_trackers.py [--minutes 5] [--trackers 3] [--lease-ttl 10]
        [--interval 1] [--kill-every 10 30] [--feed 20]

Not collected by pytest; ``tests/test_faults.py`` runs the same harness
(``run_tracker_swarm``) for two kills in CI.  Against a redis-server started here,
``--trackers`` real ``jobledger track`` daemons (local scheduler) share one tag while
``--feed`` finished jobs arrive every 0.5 s.  Every ``--kill-every`` seconds (random in
the range) the lease holder is SIGKILLed and a new daemon started, so there are always
``--trackers`` of them.  A sampler reads the lease every 10 ms.

Checked: every takeover within the lease TTL + one interval (+2 s slack); the lease
changes hands only when its holder is killed; every move a daemon logs falls in a
period when it held the lease; no job logged as moved by two daemons; the ledger
consistent, one submit and one move event per job.  Prints the figures; exit 1 on
any failed check.
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
    assert_consistent,
    assert_fsck_clean,
    base_env,
    fsck_available,
    run_tracker_swarm,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--trackers", type=int, default=3)
    parser.add_argument("--lease-ttl", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--kill-every", type=float, nargs=2, default=(10.0, 30.0))
    parser.add_argument("--feed", type=int, default=20, help="jobs arriving every 0.5 s")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    tag = "stress-trackers"
    problems: list[str] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="jobledger-trackers-") as tmp:
        root = Path(tmp)
        srv = start_server("redis-server", root / "redis")
        client = srv.client()
        try:
            work = root / "exp"
            work.mkdir()
            cli = CLI(work, base_env(root / "home", srv.url))
            print(
                f"{args.trackers} trackers, lease TTL {args.lease_ttl} s, interval "
                f"{args.interval} s, a kill every {args.kill_every[0]:g}-{args.kill_every[1]:g} s "
                f"for {args.minutes:g} min",
                flush=True,
            )
            try:
                fig, jobs = run_tracker_swarm(
                    client,
                    cli,
                    tag,
                    root / "logs",
                    trackers=args.trackers,
                    kills=1,
                    interval_s=args.interval,
                    lease_ttl_s=args.lease_ttl,
                    kill_every_s=tuple(args.kill_every),  # type: ignore[arg-type]
                    duration_s=args.minutes * 60,
                    feed_every_s=0.5,
                    feed=args.feed,
                    seed=args.seed,
                    progress=lambda line: print(line, flush=True),
                )
            except AssertionError as exc:
                print(f"FAILED: {exc}")
                return 1
            counts = {}
            try:
                counts = assert_consistent(client, tag, jobs)
                if counts["events"] != 2 * len(jobs):
                    problems.append(f"{counts['events']} events for {len(jobs)} jobs")
            except AssertionError as exc:
                problems.append(str(exc))
            fsck = "not available yet"
            if fsck_available():
                try:
                    assert_fsck_clean(cli, tag)
                    fsck = "clean"
                except AssertionError as exc:
                    problems.append(str(exc))
                    fsck = "PROBLEMS"
        finally:
            client.close()
            srv.process.terminate()
            srv.process.wait(timeout=30)
    takeovers = fig.takeovers_s
    print(f"\nran {time.monotonic() - started:.0f} s: {len(takeovers)} holders SIGKILLed")
    print(
        f"takeover after SIGKILL: min {min(takeovers):.2f} s, median "
        f"{statistics.median(takeovers):.2f} s, max {max(takeovers):.2f} s "
        f"(bound: TTL {args.lease_ttl:g} + interval {args.interval:g} s)"
    )
    print(f"lease holders in order: {' '.join(fig.holders)}")
    print(f"moves logged per tracker: {dict(sorted(fig.moves_by.items()))}")
    print(f"jobs {len(jobs)}, events {counts.get('events', '?')}, fsck {fsck}")
    print("two trackers acting at once: 0; job moved twice: 0" if not problems else "PROBLEMS:")
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
