"""Faults (issue 4): the ledger survives what an HPC site really does to it.

Each test breaks something for real -- SIGKILL to a tracker, to redis-server or to a
job; Redis down while jobs are launched; three trackers for one tag; slurmctld and
slurmdbd stopped -- then checks the ledger's invariants with ``assert_consistent``
(which also counts the events: exactly one per transition) and ``jobledger fsck``,
and that every submitted job is accounted for.  The long versions are
``tests/stress/stress_*.py``, which import the harnesses below;
``docs/reliability.md`` (Faults) has their figures.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import itertools
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis

from conftest import CLI, Server, free_port, run_cluster_script, start_server
from jobledger.journal import Journal, JournalEntry
from jobledger.ledger import Ledger, isoformat
from jobledger.process import identity
from jobledger.schedulers.local import task_state_path, write_job_files
from jobledger.states import State

CLUSTER_LOCK = Path("/run/lock/jobledger-slurm-cluster.lock")
REDIS_SERVER = "/usr/bin/redis-server"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
P = State.PENDING_AND_RUNNING.value
T = TypeVar("T")


# --- checks shared by every fault ---------------------------------------------------


def wait_for(
    predicate: Callable[[], T], timeout_s: float, what: str, *, interval: float = 0.05
) -> T:
    """Poll ``predicate`` until it returns something true; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        if interval:
            time.sleep(interval)


def assert_consistent(
    client: redis.Redis, tag: str, expected: Mapping[str, str] | None = None
) -> dict[str, int]:
    """Check the ledger invariants of ``tag``; return the set sizes and the event count.

    * every ID of ``<tag>_ALL`` is in exactly one state set, and ``_ALL`` is their union;
    * each job's record says the state of the set it is in;
    * exactly one event per transition: each job's events chain
      ``"" -> PENDING_AND_RUNNING -> ... -> <its set>`` with no gap and no repeat (a job
      moved twice, an event lost or duplicated, all break the chain), and its history
      list holds the same transitions in the same order; no event names a job outside
      ``_ALL``;
    * with ``expected`` (job ID -> state): exactly those jobs, each in that state.
    """
    problems: list[str] = []
    with client.pipeline(transaction=True) as pipe:
        pipe.smembers(f"{tag}_ALL")
        for s in State:
            pipe.smembers(f"{tag}_{s.value}")
        replies = pipe.execute()
    all_ids = {str(j) for j in replies[0]}
    where: dict[str, list[str]] = defaultdict(list)
    for s, members in zip(State, replies[1:], strict=True):
        for j in members:
            where[str(j)].append(s.value)
    problems += [f"job {j} is in {len(s)} state sets: {s}" for j, s in where.items() if len(s) > 1]
    if set(where) != all_ids:
        problems.append(
            f"{tag}_ALL is not the union of the state sets: only in _ALL "
            f"{sorted(all_ids - set(where))[:10]}, only in state sets "
            f"{sorted(set(where) - all_ids)[:10]}"
        )
    ids = sorted(all_ids)
    with client.pipeline(transaction=False) as pipe:
        for j in ids:
            pipe.hget(f"jobledger:{tag}:job:{j}", "state")
            pipe.lrange(f"jobledger:{tag}:history:{j}", 0, -1)
        replies = pipe.execute()
    events: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for _, data in client.xrange(f"jobledger:{tag}:events"):
        events[str(data["job"])].append((str(data["from"]), str(data["to"])))
    n_events = sum(len(chain) for chain in events.values())
    for j, record_state, history in zip(ids, replies[::2], replies[1::2], strict=True):
        current = where[j][0] if where.get(j) else None
        if record_state != current:
            problems.append(f"job {j}: record says {record_state}, its set {current}")
        chain = events.pop(j, [])
        if not chain or chain[0] != ("", P):
            problems.append(f"job {j}: events do not start with its submission: {chain}")
        for (_, reached), (source, target) in itertools.pairwise(chain):
            if source != reached:
                problems.append(f"job {j}: event {source} -> {target} after reaching {reached}")
        if chain and chain[-1][1] != current:
            problems.append(f"job {j}: last event leads to {chain[-1][1]}, its set is {current}")
        steps = [(h["from"], h["to"]) for h in map(json.loads, history)]
        if steps != chain:
            problems.append(f"job {j}: history {steps} differs from events {chain}")
    if events:
        problems.append(f"events of jobs not in {tag}_ALL: {sorted(events)[:10]}")
    if expected is not None:
        missing, extra = set(expected) - all_ids, all_ids - set(expected)
        if missing or extra:
            problems.append(
                f"jobs not accounted for: missing {sorted(missing)[:10]} ({len(missing)}), "
                f"unexpected {sorted(extra)[:10]} ({len(extra)})"
            )
        wrong = {j: (where.get(j), s) for j, s in expected.items() if where.get(j, []) != [s]}
        problems += [f"job {j} is in {got}, expected {want}" for j, (got, want) in wrong.items()]
    assert not problems, f"ledger of tag {tag!r} is inconsistent:\n" + "\n".join(problems[:30])
    return {"jobs": len(all_ids), "events": n_events, **Counter(s[0] for s in where.values())}


@functools.lru_cache(maxsize=1)
def fsck_available() -> bool:
    """Whether this jobledger has the ``fsck`` command (the stress scripts also run on
    checkouts from before it)."""
    proc = subprocess.run(
        [sys.executable, "-m", "jobledger", "fsck", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return proc.returncode == 0


def assert_fsck_clean(cli: CLI, tag: str, *args: str) -> dict[str, Any] | None:
    """``jobledger fsck --tag TAG --json`` finds nothing (exit 0); None without fsck."""
    if not fsck_available():
        return None
    run = cli("fsck", "--tag", tag, "--json", *args)
    assert run.code == 0, f"fsck of {tag} (exit {run.code}):\n{run.out}{run.err}"
    data: dict[str, Any] = json.loads(run.out)
    assert data["clean"] is True and not data["problems"], data
    return data


def base_env(home: Path, url: str) -> dict[str, str]:
    """The environment of a jobledger process pointed at ``url``, free of the caller's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBLEDGER_", "SLURM_"))}
    env.pop("REDIS_URL", None)
    home.mkdir(parents=True, exist_ok=True)
    env["HOME"] = str(home)
    env["JOBLEDGER_URL"] = url
    return env


def make_cli(root: Path, url: str) -> CLI:
    work = root / "exp"
    work.mkdir(parents=True, exist_ok=True)
    return CLI(work, base_env(root / "home", url))


def write_script(directory: Path, name: str, body: str) -> Path:
    path = directory / name
    path.write_text("#!/bin/bash\n" + body.strip() + "\n")
    return path


def jobledger_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "jobledger", *args]


# --- local-scheduler jobs written directly --------------------------------------------


def write_local_state(home: Path, job_id: str, raw: str) -> dict[str, str]:
    """Files as the local scheduler leaves them (RUNNING: run by this process); record fields."""
    state: dict[str, Any] = {"state": raw, "started_at": NOW.isoformat(), "node": "n1"}
    if raw == "RUNNING":
        state.update(pid=os.getpid())
    else:
        state.update(ended_at=NOW.isoformat(), exit_code=int(raw != "COMPLETED"), signal=0)
    return write_job_files(home, job_id, state, supervisor=identity(os.getpid()))


def add_local_jobs(client: redis.Redis, tag: str, home: Path, jobs: Mapping[str, str]) -> None:
    """Write ``jobs``' files (ID -> local state), then record them as launch does."""
    fields = {job_id: write_local_state(home, job_id, raw) for job_id, raw in jobs.items()}
    ledger = Ledger(client, tag)
    with client.pipeline(transaction=False) as pipe:
        for job_id in jobs:
            ledger.record_submission(job_id, now=NOW, fields=fields[job_id], pipeline=pipe)
        pipe.execute()


def filed_as(raw: str) -> str:
    """The ledger state of a local job whose state file says ``raw``."""
    return P if raw in ("PENDING", "RUNNING") else raw


# --- fault 1: trackers SIGKILLed mid-pass ---------------------------------------------


@dataclass
class KillFigures:
    """What ``kill_trackers_mid_pass`` did and where its kills landed."""

    rounds: int = 0
    kills: int = 0  # tracker processes SIGKILLed after they took the lease
    finished_first: int = 0  # passes that ended before the kill landed (not kills)
    landed: Counter[str] = field(default_factory=Counter)
    moved_at_kill: list[int] = field(default_factory=list)
    pass_s: float = 0.0  # one uninterrupted pass: lease taken -> process gone
    jobs: int = 0
    final_moved: int = 0
    elapsed_s: float = 0.0


LANDINGS = ("before the moves", "during the moves", "after the moves")


def kill_trackers_mid_pass(
    client: redis.Redis,
    tag: str,
    cwd: Path,
    env: dict[str, str],
    *,
    kills: int,
    batch: int = 1000,
    running: int = 50,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> tuple[KillFigures, dict[str, str]]:
    """SIGKILL ``track --once`` processes mid-pass ``kills`` times; return figures, jobs.

    Before each round the tag gets new finished jobs (a mix of end states) until
    ``batch`` of them wait to be filed, so every pass has ``batch`` moves to make; 50
    ``running`` jobs add record updates.  The first round runs uncut to time a pass;
    then rounds alternate between a kill at a random moment of the pass (after the
    lease is taken) and a kill as soon as the pass's first move shows in the event
    stream.  A round whose pass ends before the kill lands is not counted.  At the end
    one uncut pass files what is left and a second one must find nothing to do.

    Between rounds the dead tracker's lease (``jobledger:<tag>:lease``) is deleted: a
    SIGKILLed tracker cannot release it, so the next one would otherwise report
    "another tracker holds the lease" for the lease's 90 s.  Deleting it is what expiry
    does, minus the wait; the fencing counter is untouched, so the dead tracker's token
    stays invalid.  Takeover after expiry is fault 4's subject.
    """
    rng = random.Random(seed)
    lease, stream = f"jobledger:{tag}:lease", f"jobledger:{tag}:events"
    argv = jobledger_argv("track", "--once", "--scheduler", "local", "--tag", tag)
    jobs: dict[str, str] = {}
    ends = ("COMPLETED",) * 5 + ("FAILED", "TIMEOUT", "CANCELLED")

    def add(count: int, raw: str | None = None) -> None:
        first = len(jobs) + 1
        new = {str(i): raw or rng.choice(ends) for i in range(first, first + count)}
        add_local_jobs(client, tag, cwd, new)
        jobs.update(new)

    add(running, "RUNNING")
    running_ids = set(jobs)
    fig = KillFigures()
    started = time.monotonic()
    while fig.kills < kills:
        assert fig.rounds < 4 * kills + 5, f"only {fig.kills} kills landed in {fig.rounds} rounds"
        waiting = {str(j) for j in client.smembers(f"{tag}_{P}")} - running_ids
        if len(waiting) < batch:
            add(batch - len(waiting))
        to_move = max(len(waiting), batch)
        client.delete(lease)  # the previous round's dead tracker's (see above)
        base = int(client.xlen(stream))
        mode = "time" if not fig.pass_s else ("first move" if fig.rounds % 2 else "random")
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=err)
            try:
                wait_for(
                    lambda proc=proc: client.exists(lease) or proc.poll() is not None,
                    60,
                    "the tracker to take the lease",
                    interval=0.001,
                )
                taken = time.monotonic()
                if mode == "time":
                    proc.wait(timeout=60)
                    fig.pass_s = time.monotonic() - taken
                elif mode == "random":
                    time.sleep(rng.uniform(0, fig.pass_s))
                else:
                    wait_for(
                        lambda proc=proc, base=base: (
                            client.xlen(stream) > base or proc.poll() is not None
                        ),
                        60,
                        "the pass's first move",
                        interval=0,
                    )
            finally:
                proc.kill()  # SIGKILL (a no-op for a process that already exited)
                proc.wait()
            err.seek(0)
            message = err.read().decode(errors="replace")
        fig.rounds += 1
        moved = int(client.xlen(stream)) - base
        if proc.returncode == 0:
            fig.finished_first += mode != "time"
            continue
        assert proc.returncode == -signal.SIGKILL, f"tracker exit {proc.returncode}: {message}"
        fig.kills += 1
        fig.moved_at_kill.append(moved)
        landing = LANDINGS[0] if moved == 0 else LANDINGS[1 if moved < to_move else 2]
        fig.landed[landing] += 1
        if progress:
            progress(f"kill {fig.kills} ({mode}): {moved}/{to_move} moved, {landing}")
    client.delete(lease)
    final = subprocess.run(
        [*argv, "--json"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert final.returncode == 0, final.stderr
    [report] = json.loads(final.stdout)
    assert report["active"], report
    fig.final_moved = len(report["moved"])
    again = subprocess.run(
        [*argv, "--json"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)[0]["moved"] == [], "a job was moved a second time"
    fig.jobs = len(jobs)
    fig.elapsed_s = time.monotonic() - started
    return fig, {job_id: filed_as(raw) for job_id, raw in jobs.items()}


# One server kind: test_tracker.py kills trackers on both; the 50-kill run is the stress script.
@pytest.mark.parametrize("server", ["redis-server"], indirect=True)
def test_tracker_sigkilled_mid_pass_loses_duplicates_and_double_moves_nothing(
    cli: CLI, jl_client: redis.Redis
) -> None:
    fig, expected = kill_trackers_mid_pass(jl_client, "kill", cli.cwd, cli.env, kills=10, seed=1)
    counts = assert_consistent(jl_client, "kill", expected)
    filed = sum(state != P for state in expected.values())
    assert counts["events"] == len(expected) + filed  # one submit, one move per filed job
    assert fig.kills == 10
    assert fig.landed[LANDINGS[0]] + fig.landed[LANDINGS[1]] >= 1, fig  # some cut the moves
    assert_fsck_clean(cli, "kill")


# --- fault 2: redis-server SIGKILLed and restarted -----------------------------------


class RestartableRedis:
    """Debian's redis-server on a fixed port, SIGKILLed and restarted on the same data.

    ``fsync`` is the AOF's ``appendfsync`` (``always``, ``everysec``, ``no``); ``None``
    runs without any persistence (for an outage, not a crash).
    """

    def __init__(self, workdir: Path, *, fsync: str | None = "always", port: int = 0) -> None:
        if not Path(REDIS_SERVER).exists():
            pytest.fail(f"{REDIS_SERVER} is not installed; run ./scripts/test.sh")
        self.workdir = workdir
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.fsync = fsync
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    def argv(self) -> list[str]:
        persistence = ["--appendonly", "no"]
        if self.fsync is not None:
            persistence = ["--appendonly", "yes", "--appendfsync", self.fsync]
        return [
            REDIS_SERVER,
            *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir)),
            *("--save", "", *persistence),
        ]

    def start(self, timeout_s: float = 60) -> float:
        """Start it and wait until it answers (its AOF loaded); the seconds that took."""
        started = time.monotonic()
        log = (self.workdir / "redis.log").open("ab")
        with log:
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=log)
        probe = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        try:

            def answers() -> bool:
                assert self.proc is not None and self.proc.poll() is None, "redis-server died"
                try:
                    return bool(probe.ping())
                except redis.RedisError:  # refused, or still loading the AOF
                    return False

            wait_for(answers, timeout_s, f"redis-server on port {self.port}", interval=0.01)
        finally:
            probe.close()
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final fsync."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True)

    def __enter__(self) -> RestartableRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# Job code that writes results as fast as it can and notes each acknowledged key.
WRITER = """
import os, sys, time
import jobledger

acks, stop = sys.argv[1], sys.argv[2]
r = jobledger.results()  # tag, job and server from the environment, as in a job
errors = i = 0
with open(acks, "w", buffering=1) as out:
    while not os.path.exists(stop):
        try:
            r.set(f"k{i}", i)
        except Exception as exc:
            errors += 1
            out.write(f"! {time.time():.6f} {type(exc).__name__}: {exc}\\n")
        else:
            out.write(f"k{i} {time.time():.6f}\\n")
        i += 1
    out.write(f"# {i} writes, {errors} errors\\n")
"""


@dataclass
class Writers:
    """Job-like processes writing results through ``jobledger.results()``."""

    tag: str
    job_ids: list[str]
    directory: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def stop_file(self) -> Path:
        return self.directory / "stop"

    def acks_file(self, job_id: str) -> Path:
        return self.directory / f"acks-{job_id}"

    def start(self, client: redis.Redis, url: str) -> None:
        """Record the jobs in the ledger (so their results belong to it), then start them."""
        ledger = Ledger(client, self.tag)
        for job_id in self.job_ids:
            ledger.record_submission(job_id, now=NOW)
        script = self.directory / "writer.py"
        script.write_text(WRITER)
        for job_id in self.job_ids:
            env = base_env(self.directory / "home", url)
            env.update(JOBLEDGER_TAG=self.tag, JOBLEDGER_JOB_ID=job_id)
            argv = [sys.executable, str(script), str(self.acks_file(job_id)), str(self.stop_file)]
            self.procs.append(subprocess.Popen(argv, env=env, cwd=self.directory))

    def acked(self, job_id: str) -> tuple[dict[str, float], list[str], str]:
        """(acknowledged key -> time, error lines, summary line) written so far."""
        keys: dict[str, float] = {}
        errors: list[str] = []
        summary = ""
        with contextlib.suppress(FileNotFoundError):
            for line in self.acks_file(job_id).read_text().splitlines():
                if line.startswith("!"):
                    errors.append(line)
                elif line.startswith("#"):
                    summary = line
                elif len(parts := line.split()) == 2:
                    keys[parts[0]] = float(parts[1])
        return keys, errors, summary

    def acked_since(self, moment: float) -> int:
        """Acknowledged writes after ``moment`` (time.time()) by the slowest writer."""
        return min(sum(t > moment for t in self.acked(j)[0].values()) for j in self.job_ids)

    def stop(self) -> None:
        self.stop_file.touch()
        for proc in self.procs:
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def lost(self, client: redis.Redis) -> tuple[int, list[str]]:
        """(acknowledged writes, those missing or wrong now, as ``job:key``)."""
        total, lost = 0, []
        for job_id in self.job_ids:
            keys = list(self.acked(job_id)[0])
            total += len(keys)
            for start in range(0, len(keys), 1000):
                chunk = keys[start : start + 1000]
                values = client.mget([f"{self.tag}-{job_id}:{k}" for k in chunk])
                pairs = zip(chunk, values, strict=True)
                lost += [f"{job_id}:{k}" for k, v in pairs if v != k[1:]]
        return total, lost


def test_redis_sigkilled_during_heavy_result_writing_loses_no_acknowledged_write(
    tmp_path: Path,
) -> None:
    """appendfsync always: every write a job saw acknowledged survives SIGKILL + restart.

    Four writers keep going through two kills (each with Redis down for 1.5 s, longer
    than redis-py's own few retries): the results API reconnects by itself, so no write
    raises and every writer goes on writing after each restart.
    """
    tag = "writes"
    with RestartableRedis(tmp_path / "redis", fsync="always") as srv:
        client = srv.client()
        writers = Writers(tag, ["1", "2", "3", "4"], tmp_path / "writers")
        writers.directory.mkdir()
        try:
            writers.start(client, srv.url)
            up = time.time()
            for _ in range(2):
                wait_for(lambda up=up: writers.acked_since(up) >= 100, 60, "writes")
                srv.kill()
                time.sleep(1.5)  # the outage itself
                srv.start()
                up = time.time()
            wait_for(lambda: writers.acked_since(up) >= 100, 90, "writes after the restart")
        finally:
            writers.stop()
        for job_id in writers.job_ids:
            _, errors, summary = writers.acked(job_id)
            assert errors == [], errors[:5]
            assert summary.endswith(" 0 errors"), summary
        total, lost = writers.lost(client)
        assert total >= 4 * 300
        assert lost == [], f"{len(lost)} of {total} acknowledged writes lost: {lost[:10]}"
        assert_consistent(client, tag, dict.fromkeys(writers.job_ids, P))
        assert_fsck_clean(make_cli(tmp_path, srv.url), tag)
        client.close()


def test_redis_sigkilled_during_a_tracker_pass(tmp_path: Path) -> None:
    """Redis dies while a ``track --once`` pass applies its 1,000 moves and is back at
    once: the pass reconnects and finishes (re-sending its scripts, which the restarted
    server forgot), every job filed exactly once; a second pass has nothing to do."""
    tag = "crash"
    with RestartableRedis(tmp_path / "redis", fsync="always") as srv:
        client = srv.client()
        jl = make_cli(tmp_path, srv.url)
        rng = random.Random(2)
        jobs = {str(i): rng.choice(("COMPLETED", "FAILED", "TIMEOUT")) for i in range(1, 1001)}
        add_local_jobs(client, tag, jl.cwd, jobs)
        stream = f"jobledger:{tag}:events"
        base = int(client.xlen(stream))
        argv = jobledger_argv("track", "--once", "--tag", tag, "--scheduler", "local", "--json")
        proc = subprocess.Popen(
            argv, cwd=jl.cwd, env=jl.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            wait_for(
                lambda: client.xlen(stream) > base or proc.poll() is not None,
                60,
                "the pass's first move",
                interval=0,
            )
            srv.kill()
            srv.start()
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 0, err
        assert json.loads(out)[0]["active"]
        again = jl("track", "--once", "--tag", tag, "--scheduler", "local", "--json")
        assert again.code == 0, again.err
        assert json.loads(again.out)[0]["moved"] == []
        counts = assert_consistent(client, tag, jobs)
        assert counts["events"] == 2000
        assert_fsck_clean(jl, tag)
        client.close()


def test_tracker_daemon_resumes_after_redis_restarts(tmp_path: Path) -> None:
    """The daemon outlives a 5 s Redis outage: its passes fail, it backs off, then files on."""
    tag = "resume"
    with RestartableRedis(tmp_path / "redis", fsync="always") as srv:
        client = srv.client()
        jl = make_cli(tmp_path, srv.url)
        first = {str(i): "COMPLETED" for i in range(1, 201)}
        second = {str(i): "RUNNING" for i in range(201, 401)}
        add_local_jobs(client, tag, jl.cwd, {**first, **second})
        log = tmp_path / "tracker.log"
        argv = jobledger_argv(*("track", "--tag", tag, "--scheduler", "local", "--interval", "0.2"))
        with log.open("wb") as fh:
            daemon = subprocess.Popen(argv, cwd=jl.cwd, env=jl.env, stderr=fh)
        try:

            def filed() -> int:
                return int(client.scard(f"{tag}_COMPLETED"))

            wait_for(lambda: filed() == 200, 60, "the first 200 jobs filed")
            srv.kill()
            for job_id in second:
                write_local_state(jl.cwd, job_id, "FAILED")
            time.sleep(5)  # the outage
            srv.start()
            wait_for(lambda: client.scard(f"{tag}_FAILED") == 200, 120, "the daemon to resume")
            assert daemon.poll() is None, "the daemon died with Redis"
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        assert daemon.returncode == 0, log.read_text()[-2000:]
        text = log.read_text()
        assert "pass failed" in text, text[-2000:]
        assert_consistent(client, tag, {**first, **dict.fromkeys(second, "FAILED")})
        assert_fsck_clean(jl, tag)
        client.close()


# --- fault 3: Redis down while jobs are launched -------------------------------------

ANNOUNCED = re.compile(
    r"^jobledger: recorded (?:job (?P<one>\S+)|(?P<n>\d+) jobs (?P<first>\S+)\.\.\S+) "
    r"of tag (\S+) from the journal$"
)


def test_jobs_launched_while_redis_is_down_are_journaled_and_replayed_once(
    tmp_path: Path,
) -> None:
    """Three launches (one an array) against a stopped server, all at once: each job is
    journaled; once Redis is back two ``status`` commands replay at the same time and
    each job is recorded (one submit event) and announced exactly once.  The job that
    writes a result waits for Redis (the results API's reconnect window) and succeeds.
    """
    tag = "outage"
    srv = RestartableRedis(tmp_path / "redis", fsync=None)  # a known port, nothing on it yet
    jl = make_cli(tmp_path, srv.url)
    ok = write_script(jl.cwd, "ok.sh", "exit 0")
    py = sys.executable
    writes = write_script(
        jl.cwd,
        "writes.sh",
        f"'{py}' -c 'import jobledger; jobledger.results().set(\"reward\", 0.5)'",
    )
    launches = [(ok,), (ok, "--array", "1-4"), (writes,)]
    procs = [
        subprocess.Popen(
            jobledger_argv(
                "launch", "--tag", tag, "--scheduler", "local", "--json", *extra, str(script)
            ),
            cwd=jl.cwd,
            env=jl.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for script, *extra in launches
    ]
    ids: list[str] = []
    submissions: dict[str, int] = {}  # first job ID -> how many jobs
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "journaled" in err, err
        data = json.loads(out)
        assert data["recorded"] is False
        ids += data["job_ids"]
        submissions[data["job_ids"][0]] = len(data["job_ids"])
    [writer_id] = json.loads(out)["job_ids"]
    assert len(ids) == len(set(ids)) == 6
    journal = jl.cwd / ".jobledger" / "journal"
    assert len(list(journal.glob("*.json"))) == 3  # one entry per submission, arrays included
    state = task_state_path(jl.cwd / ".jobledger" / "local" / writer_id, writer_id)
    wait_for(lambda: state.exists() and b"RUNNING" in state.read_bytes(), 60, "the job to start")
    time.sleep(3)  # the outage goes on: the job is already waiting for Redis
    try:
        srv.start()
        argv = jobledger_argv("status", "--tag", tag, "--json")
        readers = [
            subprocess.Popen(
                argv,
                cwd=jl.cwd,
                env=jl.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        announced: Counter[str] = Counter()
        for reader in readers:
            out, err = reader.communicate(timeout=120)
            assert reader.returncode == 0, err
            for m in filter(None, map(ANNOUNCED.match, err.splitlines())):
                first = m["one"] or m["first"]
                announced[first] += 1
                assert submissions[first] == int(m["n"] or 1), m.group(0)
        assert not list(journal.glob("*.json"))
        assert sorted(announced) == sorted(submissions), announced
        assert set(announced.values()) == {1}, f"announced more than once: {announced}"
        client = srv.client()
        submits = Counter(
            d["job"] for _, d in client.xrange(f"jobledger:{tag}:events") if d["from"] == ""
        )
        assert submits == Counter(ids)
        assert {e["by"] for e in Ledger(client, tag).events()} == {"journal"}

        def all_filed() -> bool:
            run = jl("track", "--once", "--tag", tag, "--scheduler", "local")
            assert run.code == 0, run.err
            return client.scard(f"{tag}_{P}") == 0

        wait_for(all_filed, 90, "the jobs to be filed", interval=0.2)
        assert_consistent(client, tag, dict.fromkeys(ids, "COMPLETED"))
        view = json.loads(jl("show", writer_id, "--tag", tag, "--json").out)
        assert view["results"] == {"reward": "0.5"}
        assert_fsck_clean(jl, tag)
        client.close()
    finally:
        srv.stop()


def test_concurrent_journal_replays_record_and_report_each_job_once(
    server: Server, jl_client: redis.Redis, tmp_path: Path
) -> None:
    """Six replays of 300 journal entries started at the same instant (one client each)."""
    tag = "race"
    journal = Journal(tmp_path)
    ids = [str(i) for i in range(1, 301)]
    for job_id in ids:
        entry = JournalEntry(tag, (job_id,), isoformat(NOW), {"scheduler": "local"})
        journal.write(entry).keep()  # as a launch that could not reach Redis leaves it
    start = threading.Barrier(6)

    def replay(_: int) -> list[str]:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        try:
            start.wait(timeout=30)
            return [j for e in Journal(tmp_path).replay(client, server.url) for j in e.job_ids]
        finally:
            client.close()

    with ThreadPoolExecutor(6) as pool:
        reported = [j for done in pool.map(replay, range(6)) for j in done]
    assert not list(journal.dir.glob("*.json"))
    assert sorted(reported) == sorted(ids)  # each job reported by exactly one replay
    counts = assert_consistent(jl_client, tag, dict.fromkeys(ids, P))
    assert counts["events"] == 300


# --- fault 4: three trackers for one tag ---------------------------------------------

MOVE_LOG = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO jobledger\.tracker: (\S+) (\S+): (\S+) -> (\S+)$"
)


@dataclass
class Daemon:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    killed_at: float | None = None


class TrackerSwarm:
    """``jobledger track`` daemons for one tag, each logging its moves to its own file.

    A sampler thread reads the lease every 10 ms, so the test knows who held it when;
    the lease value is ``<owner>|<token>`` and the owner starts with the daemon's pid.
    """

    def __init__(
        self,
        client: redis.Redis,
        cli: CLI,
        tag: str,
        logs: Path,
        *,
        interval_s: float,
        lease_ttl_s: float,
    ) -> None:
        self.client, self.cli, self.tag, self.logs = client, cli, tag, logs
        self.interval_s, self.lease_ttl_s = interval_s, lease_ttl_s
        self.daemons: dict[int, Daemon] = {}
        self.samples: list[tuple[float, int | None]] = []  # (time.time(), holder pid)
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        logs.mkdir(parents=True, exist_ok=True)

    def start(self) -> Daemon:
        name = f"tracker{len(self.daemons) + 1}"
        log = self.logs / f"{name}.log"
        argv = jobledger_argv(
            *("track", "--tag", self.tag, "--scheduler", "local"),
            *("--interval", str(self.interval_s), "--lease-ttl", str(self.lease_ttl_s)),
        )
        with log.open("wb") as fh:
            proc = subprocess.Popen(
                argv, cwd=self.cli.cwd, env=self.cli.env, stdout=subprocess.DEVNULL, stderr=fh
            )
        daemon = Daemon(name, proc, log)
        self.daemons[proc.pid] = daemon
        if not self._sampler.is_alive():
            self._sampler.start()
        # Its signal handlers are set once it logs this: SIGTERM before would kill it.
        wait_for(lambda: b" tracking " in log.read_bytes(), 60, f"{name} to start")
        return daemon

    def holder_pid(self, client: redis.Redis | None = None) -> int | None:
        value = (client or self.client).get(f"jobledger:{self.tag}:lease")
        return None if value is None else int(str(value).split("|")[0].split("-")[0])

    def holder(self) -> Daemon | None:
        pid = self.holder_pid()
        return None if pid is None else self.daemons.get(pid)

    def _sample(self) -> None:
        client = redis.Redis.from_url(self.cli.env["JOBLEDGER_URL"], decode_responses=True)
        try:
            while not self._stop.wait(0.01):
                self.samples.append((time.time(), self.holder_pid(client)))
        finally:
            client.close()

    def kill(self, daemon: Daemon) -> float:
        daemon.proc.kill()
        daemon.killed_at = time.time()
        daemon.proc.wait()
        return daemon.killed_at

    def stop(self) -> dict[str, int]:
        """SIGTERM every live daemon (each finishes its pass, exit 0); their exit codes."""
        live = [d for d in self.daemons.values() if d.killed_at is None]
        for d in live:
            with contextlib.suppress(ProcessLookupError):
                d.proc.send_signal(signal.SIGTERM)
        codes = {}
        for d in live:
            try:
                codes[d.name] = d.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                d.proc.kill()
                codes[d.name] = d.proc.wait()
        self._stop.set()
        if self._sampler.is_alive():
            self._sampler.join(timeout=10)
        return codes

    def moves(self) -> list[tuple[float, str, str]]:
        """(time, daemon name, job) of every move the daemons logged."""
        out = []
        for d in self.daemons.values():
            for line in d.log.read_text(errors="replace").splitlines():
                m = MOVE_LOG.match(line)
                if m and m.group(2) == self.tag:
                    at = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
                    out.append((at, d.name, m.group(3)))
        return sorted(out)

    def holding_periods(self) -> dict[str, list[tuple[float, float]]]:
        """Per daemon, the [first, last] sample times of each run of samples it held."""
        periods: dict[str, list[tuple[float, float]]] = defaultdict(list)
        current: tuple[int, float, float] | None = None
        for at, pid in [*self.samples, (float("inf"), -1)]:
            if pid is None:
                continue
            if current and pid == current[0]:
                current = (pid, current[1], at)
                continue
            if current and current[0] in self.daemons:
                periods[self.daemons[current[0]].name].append(current[1:])
            current = (pid, at, at)
        return dict(periods)


@dataclass
class SwarmFigures:
    takeovers_s: list[float] = field(default_factory=list)
    moves_by: Counter[str] = field(default_factory=Counter)
    holders: list[str] = field(default_factory=list)  # in the order they held the lease
    jobs: int = 0


def run_tracker_swarm(
    client: redis.Redis,
    cli: CLI,
    tag: str,
    logs: Path,
    *,
    trackers: int = 3,
    kills: int = 2,
    interval_s: float = 0.2,
    lease_ttl_s: float = 3.0,
    kill_every_s: tuple[float, float] = (1.0, 2.0),
    duration_s: float = 0.0,
    feed_every_s: float = 0.1,
    feed: int = 5,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> tuple[SwarmFigures, dict[str, str]]:
    """``trackers`` daemons on one tag while finished jobs keep arriving; SIGKILL the
    lease holder ``kills`` times, and on until ``duration_s`` has passed, each after
    a random ``kill_every_s`` (starting a new daemon each time); time each takeover.

    Checks, besides the ledger: takeover within the lease TTL plus one interval (and
    2 s of slack); the holder changes only when it is killed; every logged move
    happened while its daemon held the lease; no job is logged as moved by two daemons.
    """
    rng = random.Random(seed)
    swarm = TrackerSwarm(client, cli, tag, logs, interval_s=interval_s, lease_ttl_s=lease_ttl_s)
    jobs: dict[str, str] = {}
    stop_feeding = threading.Event()
    feeder_errors: list[BaseException] = []

    def feeder() -> None:
        feed_client = redis.Redis.from_url(cli.env["JOBLEDGER_URL"], decode_responses=True)
        try:
            while not stop_feeding.wait(feed_every_s):
                first = len(jobs) + 1
                new = {str(i): "COMPLETED" for i in range(first, first + feed)}
                add_local_jobs(feed_client, tag, cli.cwd, new)
                jobs.update(new)
        except Exception as exc:  # noqa: BLE001 - the main thread reports it
            feeder_errors.append(exc)
        finally:
            feed_client.close()

    fig = SwarmFigures()
    feeding = threading.Thread(target=feeder, daemon=True)
    feeding.start()
    try:
        for _ in range(trackers):
            swarm.start()
        started = time.monotonic()
        while len(fig.takeovers_s) < kills or time.monotonic() - started < duration_s:
            holder = wait_for(swarm.holder, 60, "a tracker to hold the lease")
            time.sleep(rng.uniform(*kill_every_s))  # let it work a while
            holder = wait_for(swarm.holder, 60, "a tracker to hold the lease")
            killed_at = swarm.kill(holder)
            new = wait_for(
                lambda holder=holder: (h := swarm.holder()) is not None and h is not holder and h,
                lease_ttl_s + 60,
                "another tracker to take over",
                interval=0.005,
            )
            fig.takeovers_s.append(time.time() - killed_at)
            if progress:
                progress(
                    f"killed {holder.name}: {new.name} took over in {fig.takeovers_s[-1]:.2f} s"
                )
            swarm.start()
        stop_feeding.set()
        feeding.join(timeout=30)
        assert not feeder_errors, feeder_errors
        wait_for(lambda: client.scard(f"{tag}_{P}") == 0, 60, "the last jobs to be filed")
    finally:
        stop_feeding.set()
        codes = swarm.stop()
    assert set(codes.values()) == {0}, codes
    moves = swarm.moves()
    periods = swarm.holding_periods()
    fig.moves_by = Counter(name for _, name, _ in moves)
    fig.jobs = len(jobs)
    order = [pid for _, pid in swarm.samples if pid is not None]
    fig.holders = [swarm.daemons[p].name for p, _ in itertools.groupby(order) if p in swarm.daemons]
    dead = sorted(
        (d for d in swarm.daemons.values() if d.killed_at), key=lambda d: d.killed_at or 0
    )
    killed = [d.name for d in dead]  # in the order they were killed
    # The lease changed hands only when its holder was killed, never among live trackers.
    assert fig.holders[:-1] == [n for n in killed if n in fig.holders], (fig.holders, killed)
    assert len(fig.holders) == len(fig.takeovers_s) + 1, fig.holders
    assert max(fig.takeovers_s) <= lease_ttl_s + interval_s + 2.0, fig.takeovers_s
    # One actor at a time: each logged move lies in a period when its daemon held the
    # lease (0.5 s of slack for the sampling and the log's clock).
    for at, name, job in moves:
        spans = periods.get(name, [])
        assert any(a - 0.5 <= at <= b + 0.5 for a, b in spans), (name, job, at, spans)
    logged = Counter(job for _, _, job in moves)
    assert max(logged.values(), default=1) == 1, logged.most_common(3)
    return fig, dict(jobs)


@pytest.mark.parametrize("server", ["redis-server"], indirect=True)
def test_three_trackers_one_acts_and_takeover_after_sigkill_within_the_lease(
    cli: CLI, jl_client: redis.Redis, tmp_path: Path
) -> None:
    fig, jobs = run_tracker_swarm(jl_client, cli, "three", tmp_path / "logs", kills=2)
    assert len(fig.takeovers_s) == 2
    counts = assert_consistent(jl_client, "three", jobs)
    assert counts["events"] == 2 * len(jobs)
    assert sum(fig.moves_by.values()) >= len(jobs) - 50  # a killed tracker may not log its last
    assert_fsck_clean(cli, "three")


# --- fault 6: jobs SIGKILLed --------------------------------------------------------


def killed_job_scripts(directory: Path, id_var: str) -> dict[str, Path]:
    """Jobs that say they are ready (``ready-<id>``) and then wait to be killed: one
    before any result, one after three results; neither reaches its last write."""
    py = f"'{sys.executable}' -c"
    late = f"{py} 'import jobledger; jobledger.results().set(\"late\", 1)'"
    return {
        "no results": write_script(
            directory, "nores.sh", f'touch "ready-${id_var}"\nsleep 120\n{late}'
        ),
        "partial": write_script(
            directory,
            "partial.sh",
            f'{py} \'import jobledger; r = jobledger.results(); r.set("step", 1); '
            f'r.update({{"loss": 0.25, "note": "half"}})\'\n'
            f'touch "ready-${id_var}"\nsleep 120\n{late}',
        ),
    }


PARTIAL_RESULTS = {"step": "1", "loss": "0.25", "note": "half"}


def launch_json(cli: CLI, tag: str, scheduler: str, script: Path) -> str:
    run = cli("launch", "--tag", tag, "--scheduler", scheduler, "--json", str(script))
    assert run.code == 0, run.err
    data = json.loads(run.out)
    assert data["recorded"] is True, data
    [job_id] = data["job_ids"]
    return str(job_id)


def show_json(cli: CLI, tag: str, job_id: str) -> dict[str, Any]:
    run = cli("show", job_id, "--tag", tag, "--json")
    assert run.code == 0, run.err
    return json.loads(run.out)  # type: ignore[no-any-return]


@pytest.mark.parametrize("server", ["redis-server"], indirect=True)
def test_sigkilled_local_jobs_are_filed_by_their_scheduler_state(
    cli: CLI, jl_client: redis.Redis
) -> None:
    """SIGKILL to a job's processes: FAILED (signal 9), with the results it had written.
    SIGKILL to its supervisor too (the scheduler itself dies): LOST after the grace."""
    tag = "killed"
    scripts = killed_job_scripts(cli.cwd, "JOBLEDGER_JOB_ID")
    scripts["supervisor"] = scripts["no results"]
    ids = {what: launch_json(cli, tag, "local", script) for what, script in scripts.items()}
    states = {}
    for what, job_id in ids.items():
        wait_for((cli.cwd / f"ready-{job_id}").exists, 60, f"job {job_id} ({what}) to start")
        local_dir = cli.cwd / ".jobledger" / "local" / job_id
        states[what] = json.loads(task_state_path(local_dir, job_id).read_text())
        assert states[what]["state"] == "RUNNING", states[what]
    supervisor = json.loads(
        (cli.cwd / ".jobledger" / "local" / ids["supervisor"] / "supervisor.json").read_text()
    )
    os.kill(supervisor["pid"], signal.SIGKILL)
    for state in states.values():
        os.killpg(state["pid"], signal.SIGKILL)  # the job's process group: script and children

    def filed() -> bool:
        run = cli("track", "--once", "--tag", tag, "--scheduler", "local", "--lost-grace", "0")
        assert run.code == 0, run.err
        return jl_client.scard(f"{tag}_{P}") == 0

    wait_for(filed, 60, "the killed jobs to be filed", interval=0.2)
    expected = {ids["no results"]: "FAILED", ids["partial"]: "FAILED", ids["supervisor"]: "LOST"}
    assert_consistent(jl_client, tag, expected)
    nores, partial = show_json(cli, tag, ids["no results"]), show_json(cli, tag, ids["partial"])
    assert nores["results"] == {}
    for view in (nores, partial):
        assert (view["record"]["raw_state"], view["record"]["signal"]) == ("FAILED", "9")
    assert partial["results"] == PARTIAL_RESULTS
    top = json.loads(cli("top", "--tag", tag, "--job", ids["partial"], "--json").out)["top"]
    assert [(e["key"], e["value"]) for e in top] == [("step", 1.0), ("loss", 0.25)]
    lost = show_json(cli, tag, ids["supervisor"])
    assert lost["states"] == ["LOST"] and "unknown to the scheduler" in lost["record"]["reason"]
    assert_fsck_clean(cli, tag)


# --- SLURM: faults 5 and 6 on the project's one-node cluster --------------------------


def unique_tag(label: str) -> str:
    return f"fault-{label}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def slurm_jl(slurm_cluster: None, tmp_path: Path) -> Iterator[tuple[CLI, redis.Redis, list[str]]]:
    """A redis-server of its own, the CLI pointed at it, and the tags to scancel after."""
    srv = start_server("redis-server", tmp_path / "redis")
    tags: list[str] = []
    client = srv.client()
    try:
        yield make_cli(tmp_path, srv.url), client, tags
    finally:
        for tag in tags:
            subprocess.run(["scancel", f"--name={tag}"], capture_output=True, check=False)
        client.close()
        srv.process.terminate()
        srv.process.wait(timeout=10)


def batch_script_pid(job_id: str) -> int:
    """The pid of a SLURM job's batch script on this (the only) node."""
    proc = subprocess.run(
        ["scontrol", "listpids", job_id], capture_output=True, text=True, timeout=30, check=False
    )
    for line in proc.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] == "batch" and fields[3] == "0":
            return int(fields[0])
    raise AssertionError(f"no batch script pid for job {job_id}: {proc.stdout}{proc.stderr}")


def track_slurm_until(
    cli: CLI, tag: str, done: Callable[[dict[str, Any]], bool], timeout_s: float, what: str
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        cli("track", "--once", "--tag", tag, "--scheduler", "slurm")
        status = json.loads(cli("status", "--tag", tag, "--json").out)
        return status if done(status) else None

    return wait_for(check, timeout_s, what, interval=1.0)


@pytest.mark.slurm
def test_sigkilled_slurm_jobs_are_filed_as_sacct_says(
    slurm_jl: tuple[CLI, redis.Redis, list[str]],
) -> None:
    """kill -9 of a job's batch script: sacct says FAILED (0:9), the ledger too, and the
    results written before stay readable; ``scancel --signal=KILL``: sacct's word."""
    from jobledger.schedulers.slurm import SlurmScheduler

    jl, client, tags = slurm_jl
    tag = unique_tag("sigkill")
    tags.append(tag)
    scripts = killed_job_scripts(jl.cwd, "SLURM_JOB_ID")
    scripts["scancel"] = scripts["no results"]
    ids = {what: launch_json(jl, tag, "slurm", script) for what, script in scripts.items()}
    for what, job_id in ids.items():  # the node has 2 CPUs: the third starts after a kill
        wait_for((jl.cwd / f"ready-{job_id}").exists, 150, f"SLURM job {job_id} ({what}) to run")
        if what == "scancel":
            signalled = subprocess.run(
                ["scancel", "--signal=KILL", job_id], capture_output=True, text=True, check=False
            )
            assert signalled.returncode == 0, signalled.stderr
        else:
            os.killpg(os.getpgid(batch_script_pid(job_id)), signal.SIGKILL)
    status = track_slurm_until(
        jl, tag, lambda s: s["counts"][P] == 0, 120, "the killed jobs to be filed"
    )
    sacct = SlurmScheduler().query({job_id: {} for job_id in ids.values()}).jobs
    expected = {job_id: sacct[job_id].state.value for job_id in ids.values()}
    assert expected[ids["no results"]] == expected[ids["partial"]] == "FAILED", sacct
    assert_consistent(client, tag, expected)
    nores, partial = show_json(jl, tag, ids["no results"]), show_json(jl, tag, ids["partial"])
    assert nores["results"] == {}
    assert partial["results"] == PARTIAL_RESULTS
    for view in (nores, partial):
        assert view["record"]["signal"] == "9", view["record"]
    assert status["jobs"][expected[ids["scancel"]]].count(ids["scancel"]) == 1
    assert_fsck_clean(jl, tag)


def cluster(*args: str, timeout_s: float = 240) -> None:
    """``scripts/slurm-cluster.sh ARGS``, failing the test if it fails or hangs."""
    problem = run_cluster_script(*args, timeout_s=timeout_s)
    assert problem is None, problem


def cluster_usable() -> bool:
    """sinfo shows the node usable and sacct answers."""
    try:
        sinfo = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30, check=False
        )
        sacct = subprocess.run(
            ["sacct", "-n", "-X", "-S", "now"], capture_output=True, timeout=30, check=False
        )
    except subprocess.TimeoutExpired:
        return False
    usable = ("idle", "mixed", "allocated", "completing")
    node_ok = any(s.strip("*~#") in usable for s in sinfo.stdout.split())
    return sinfo.returncode == 0 and node_ok and sacct.returncode == 0


def restore_cluster() -> None:
    """Every daemon up again, the node usable, sacct answering: whatever the test did."""
    problem = None
    try:
        cluster("up")
    except AssertionError as exc:
        problem = exc
    wait_for(cluster_usable, 120, f"the SLURM cluster to come back ({problem})", interval=1.0)


@contextlib.contextmanager
def cluster_lock() -> Iterator[None]:
    """The lock slurm-cluster.sh takes, so no other run restarts daemons meanwhile."""
    with CLUSTER_LOCK.open("w") as fh:

        def locked() -> bool:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        wait_for(locked, 300, "the slurm-cluster.sh lock", interval=0.5)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def stop_slurmctld() -> None:
    """SIGTERM to slurmctld by the pid in its pidfile (checked to be slurmctld), as
    slurm-cluster.sh's own stop does; wait until it is gone."""
    pid = int(Path("/run/slurm/slurmctld.pid").read_text().strip())
    assert Path(f"/proc/{pid}/comm").read_text().strip() == "slurmctld", pid

    def gone() -> bool:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return True
        return stat.rsplit(") ", 1)[-1][:1] in ("Z", "X")

    os.kill(pid, signal.SIGTERM)
    wait_for(gone, 60, "slurmctld to stop", interval=0.1)


@pytest.mark.slurm
@pytest.mark.timeout(420)
def test_slurmctld_and_slurmdbd_down_no_move_on_missing_data_then_catch_up(
    slurm_jl: tuple[CLI, redis.Redis, list[str]], tmp_path: Path
) -> None:
    """Two jobs run, each its own tag: one tracked by ``track --once``, one by a daemon.
    slurmdbd and slurmctld stop for ~20 s while the jobs end.  Meanwhile ``track
    --once`` fails in one line and nothing moves; the daemon logs its failed passes and
    stays up.  Once the cluster is back both jobs are filed from sacct."""
    jl, client, tags = slurm_jl
    once_tag, daemon_tag = unique_tag("once"), unique_tag("daemon")
    tags += [once_tag, daemon_tag]
    ids = {
        tag: launch_json(jl, tag, "slurm", write_script(jl.cwd, f"{tag}.sh", body))
        for tag, code in ((once_tag, 0), (daemon_tag, 3))
        for body in [f'touch "ready-$SLURM_JOB_ID"\nsleep 12\nexit {code}']
    }
    log = tmp_path / "tracker.log"
    argv = jobledger_argv("track", "--tag", daemon_tag, "--scheduler", "slurm", "--interval", "1")
    with log.open("wb") as fh:
        daemon = subprocess.Popen(argv, cwd=jl.cwd, env=jl.env, stderr=fh)
    figures: dict[str, float] = {}
    once = None
    try:
        for job_id in ids.values():
            wait_for((jl.cwd / f"ready-{job_id}").exists, 150, f"SLURM job {job_id} to run")
        events = [f"jobledger:{tag}:events" for tag in ids]
        base = [int(client.xlen(stream)) for stream in events]
        before = [Ledger(client, tag).snapshot() for tag in ids]
        cluster("accounting", "off")
        with cluster_lock():
            down_at = time.monotonic()
            stop_slurmctld()
            once = jl("track", "--once", "--tag", once_tag, "--scheduler", "slurm", timeout=120)
            figures["track --once failed after s"] = time.monotonic() - down_at
            assert once.code == 1, (once.out, once.err)
            assert len(once.err.splitlines()) == 1 and once.err.startswith("jobledger: error: ")
            assert "squeue failed" in once.err, once.err
            wait_for(lambda: b"pass failed" in log.read_bytes(), 120, "the daemon to report")
            time.sleep(max(0.0, 20 - (time.monotonic() - down_at)))  # the rest of the outage
            assert [int(client.xlen(stream)) for stream in events] == base, "moved in the outage"
            assert [Ledger(client, tag).snapshot() for tag in ids] == before
            assert daemon.poll() is None, log.read_text()
        back_at = time.monotonic()
        restore_cluster()
        figures["outage s"] = time.monotonic() - down_at
        figures["restore s"] = time.monotonic() - back_at
        wait_for(lambda: client.scard(f"{daemon_tag}_{P}") == 0, 180, "the daemon to catch up")
        figures["daemon caught up after restore s"] = time.monotonic() - back_at
        track_slurm_until(
            jl, once_tag, lambda s: s["counts"][P] == 0, 120, "track --once to catch up"
        )
    finally:
        if not cluster_usable():
            restore_cluster()
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=180)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
    print({k: round(v, 1) for k, v in figures.items()}, once.err.strip() if once else "")
    assert daemon.returncode == 0, log.read_text()[-3000:]
    assert_consistent(client, once_tag, {ids[once_tag]: "COMPLETED"})
    assert_consistent(client, daemon_tag, {ids[daemon_tag]: "FAILED"})
    assert show_json(jl, daemon_tag, ids[daemon_tag])["record"]["exit_code"] == "3"
    for tag in ids:
        assert_fsck_clean(jl, tag)
