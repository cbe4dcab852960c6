"""Fault 2 at length: redis-server SIGKILLed and restarted under writers and trackers.

    python tests/stress/stress_redis_kill.py [--fsync always everysec] [--writers 8]
        [--kills 10] [--down 1.0] [--tracker-kills 10] [--no-strace]

Not collected by pytest; ``tests/test_faults.py`` runs two kills under four writers
and one kill during a tracker pass in CI.  For each ``appendfsync`` mode, against a
redis-server with an AOF started here on a fixed port:

1. ``--writers`` job-like processes write results through ``jobledger.results()``
   as fast as they can (``Results.set``: one MULTI/EXEC per key) and append each
   acknowledged key to a file.  ``--kills`` times, after 1-3 s of writing, the server
   gets SIGKILL, stays down ``--down`` s and is restarted on the same AOF.  Afterwards
   every acknowledged key must hold its value; the writers must never have seen an
   error (the results API reconnects by itself for up to JOB_RECONNECT_S).
2. ``--tracker-kills`` times, 1,000 finished local jobs wait to be filed and the server
   is SIGKILLed as soon as a ``track --once`` pass's first move reaches the event
   stream, then restarted; the pass either finishes after reconnecting or fails with
   one line.  One uncut pass at the end files the rest; the ledger must hold every job
   once, with one submit and one move event each.

SIGKILL of the server process loses nothing the kernel already has: Redis writes the
AOF before it replies in both modes, and the page cache outlives the process.  The
``everysec`` window is what a machine crash (power loss, kernel panic) would lose:
the data acknowledged but not yet fsync'd.  With strace (default when it is
installed, ``--no-strace`` to skip) the script records every fsync/fdatasync of the
server and reports, for each acknowledged write, how long until an fsync that started
after its acknowledgement had finished: the measured window.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conftest import CLI
from test_faults import (
    RestartableRedis,
    Writers,
    add_local_jobs,
    assert_consistent,
    assert_fsck_clean,
    base_env,
    fsck_available,
    jobledger_argv,
    wait_for,
)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class FsyncTrace:
    """strace of a redis-server's fsync/fdatasync calls (all threads), as (start, end)."""

    def __init__(self, pid: int, out: Path) -> None:
        self.out = out
        self.proc = subprocess.Popen(
            ["strace", "-f", "-ttt", "-T", "-e", "trace=fsync,fdatasync", "-p", str(pid)],
            stdout=subprocess.DEVNULL,
            stderr=out.open("w"),
        )
        time.sleep(0.5)  # attach

    def stop(self) -> list[tuple[float, float]]:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        calls = []
        for line in self.out.read_text(errors="replace").splitlines():
            # "[pid  123] 1700000000.123456 fdatasync(5) = 0 <0.001234>"
            words = line.replace("[pid", "").split()
            stamp = next((w for w in words if w[:1].isdigit() and "." in w and len(w) > 12), None)
            if stamp is None or "<" not in line or "sync(" not in line:
                continue
            took = float(line.rsplit("<", 1)[1].rstrip(">"))
            calls.append((float(stamp), float(stamp) + took))
        return sorted(calls)


def writers_run(root: Path, mode: str, args: argparse.Namespace, rng: random.Random) -> dict:
    """Writers through ``--kills`` SIGKILL + restart cycles; the figures."""
    tag = f"writes-{mode}"
    strace = args.strace and mode != "always"
    figures: dict = {"mode": mode, "restart_s": [], "aof_mb": [], "fsync_lag_s": []}
    with RestartableRedis(root / f"redis-{mode}", fsync=mode) as srv:
        client = srv.client()
        writers = Writers(tag, [str(i) for i in range(1, args.writers + 1)], root / f"w-{mode}")
        writers.directory.mkdir()
        traces: list[list[tuple[float, float]]] = []
        trace = None
        started = time.time()
        try:
            writers.start(client, srv.url)
            wait_for(lambda: writers.acked_since(started) >= 10, 120, "the writers to start")
            for kill in range(args.kills):
                if strace and trace is None:
                    assert srv.proc is not None
                    trace = FsyncTrace(srv.proc.pid, root / f"strace-{mode}-{kill}.txt")
                time.sleep(rng.uniform(1.0, 3.0))
                srv.kill()
                killed_at = time.time()
                if trace is not None:
                    traces.append(trace.stop())
                    trace = None
                aof = [f for f in srv.workdir.rglob("appendonly*") if f.is_file()]
                figures["aof_mb"].append(sum(f.stat().st_size for f in aof) / 1e6)
                time.sleep(args.down)
                figures["restart_s"].append(srv.start())
                print(
                    f"  {mode}: kill {kill + 1} at +{killed_at - started:.1f} s, "
                    f"restarted in {figures['restart_s'][-1]:.2f} s",
                    flush=True,
                )
            up = time.time()
            wait_for(lambda: writers.acked_since(up) >= 10, 120, "writes after the last restart")
        finally:
            writers.stop()
        elapsed = time.time() - started
        total, lost = writers.lost(client)
        errors, gaps = [], []
        for job_id in writers.job_ids:
            acked, errs, _ = writers.acked(job_id)
            errors += errs
            times = sorted(acked.values())
            gaps.append(max(b - a for a, b in itertools.pairwise(times)))
        for calls in traces:  # the crash window: ack -> end of an fsync begun after it
            starts = [s for s, _ in calls]
            for job_id in writers.job_ids:
                for at in writers.acked(job_id)[0].values():
                    i = bisect.bisect_left(starts, at)
                    if calls and starts[0] <= at and i < len(calls):
                        figures["fsync_lag_s"].append(calls[i][1] - at)
        try:
            assert_consistent(client, tag, dict.fromkeys(writers.job_ids, "PENDING_AND_RUNNING"))
            consistent = "yes"
        except AssertionError as exc:
            consistent = f"NO: {exc}"
        client.close()
    figures.update(
        acked=total,
        lost=len(lost),
        lost_sample=lost[:5],
        errors=len(errors),
        error_sample=errors[:3],
        writes_per_s=total / elapsed,
        longest_writer_pause_s=max(gaps),
        consistent=consistent,
        fsync_intervals=[],
    )
    for calls in traces:
        ends = [e for _, e in calls]
        figures["fsync_intervals"] += [b - a for a, b in itertools.pairwise(ends)]
    return figures


def tracker_run(root: Path, args: argparse.Namespace) -> dict:
    """``--tracker-kills`` passes cut by a server SIGKILL (appendfsync always)."""
    tag = "crash"
    outcomes: list[str] = []
    with RestartableRedis(root / "redis-tracker", fsync="always") as srv:
        client = srv.client()
        cli = CLI(root / "exp-tracker", base_env(root / "home", srv.url))
        cli.cwd.mkdir()
        rng = random.Random(5)
        jobs: dict[str, str] = {}
        stream = f"jobledger:{tag}:events"
        argv = jobledger_argv("track", "--once", "--tag", tag, "--scheduler", "local", "--json")
        for _ in range(args.tracker_kills):
            first = len(jobs) + 1
            new = {str(i): rng.choice(("COMPLETED", "FAILED")) for i in range(first, first + 1000)}
            add_local_jobs(client, tag, cli.cwd, new)
            jobs.update(new)
            client.delete(f"jobledger:{tag}:lease")
            base = int(client.xlen(stream))
            proc = subprocess.Popen(
                argv, cwd=cli.cwd, env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            wait_for(
                lambda proc=proc, base=base: client.xlen(stream) > base or proc.poll() is not None,
                120,
                "a move",
                interval=0,
            )
            moved_before = int(client.xlen(stream)) - base
            srv.kill()
            srv.start()
            out, err = proc.communicate(timeout=300)
            kept = int(client.xlen(stream)) - base
            if proc.returncode == 0:
                outcome = f"finished after reconnecting ({len(json.loads(out)[0]['moved'])} moved)"
            else:
                outcome = f"exit {proc.returncode}: {err.decode().strip()[:100]}"
            outcomes.append(f"{moved_before} moved at the kill, {kept} kept; {outcome}")
            print(f"  tracker pass: {outcomes[-1]}", flush=True)
        client.delete(f"jobledger:{tag}:lease")
        final = cli("track", "--once", "--tag", tag, "--scheduler", "local", "--json")
        assert final.code == 0, final.err
        try:
            counts = assert_consistent(client, tag, jobs)
            consistent = "yes" if counts["events"] == 2 * len(jobs) else f"events {counts}"
        except AssertionError as exc:
            consistent = f"NO: {exc}"
        fsck = "not available yet"
        if fsck_available():
            try:
                assert_fsck_clean(cli, tag)
                fsck = "clean"
            except AssertionError as exc:
                fsck = f"PROBLEMS: {exc}"
        client.close()
    return {"outcomes": outcomes, "jobs": len(jobs), "consistent": consistent, "fsck": fsck}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fsync", nargs="+", default=["always", "everysec"])
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--down", type=float, default=1.0, help="seconds Redis stays down")
    parser.add_argument("--tracker-kills", type=int, default=10)
    parser.add_argument("--no-strace", dest="strace", action="store_false")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    args.strace = args.strace and shutil.which("strace") is not None
    rng = random.Random(args.seed)
    bad = False
    with tempfile.TemporaryDirectory(prefix="jobledger-rkill-") as tmp:
        root = Path(tmp)
        for mode in args.fsync:
            fig = writers_run(root, mode, args, rng)
            print(f"\nappendfsync {mode}: {args.writers} writers, {args.kills} SIGKILLs, down "
                  f"{args.down:g} s each")  # fmt: skip
            print(f"  acknowledged writes {fig['acked']}, lost {fig['lost']} {fig['lost_sample']}")
            print(f"  writer errors {fig['errors']} {fig['error_sample']}")
            print(f"  throughput {fig['writes_per_s']:.0f} acknowledged writes/s (all writers)")
            print(f"  longest pause of a writer {fig['longest_writer_pause_s']:.2f} s")
            restarts = fig["restart_s"]
            print(
                f"  restart (AOF load) {min(restarts):.2f}-{max(restarts):.2f} s, AOF "
                f"{min(fig['aof_mb']):.1f}-{max(fig['aof_mb']):.1f} MB; consistent "
                f"{fig['consistent']}"
            )
            if fig["fsync_intervals"]:
                iv = fig["fsync_intervals"]
                print(
                    f"  fsync every {statistics.median(iv):.3f} s (median), max gap {max(iv):.3f} s"
                )
            if fig["fsync_lag_s"]:
                lag = fig["fsync_lag_s"]
                print(
                    f"  crash window, ack -> on disk: median {statistics.median(lag):.3f} s, "
                    f"p99 {percentile(lag, 0.99):.3f} s, max {max(lag):.3f} s "
                    f"({len(lag)} writes measured)"
                )
            bad |= bool(fig["lost"] or fig["errors"] or fig["consistent"] != "yes")
        if args.tracker_kills:
            result = tracker_run(root, args)
            print(f"\ntracker passes cut by a SIGKILL of Redis: {len(result['outcomes'])}")
            print(
                f"  jobs {result['jobs']}, consistent {result['consistent']}, fsck {result['fsck']}"
            )
            bad |= result["consistent"] != "yes" or result["fsck"].startswith("PROBLEMS")
    print("\nOK" if not bad else "\nPROBLEMS (see above)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
