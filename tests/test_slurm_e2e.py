"""SLURM end to end: the real ``jobledger`` CLI against the project's one-node cluster.

Every test drives ``python -m jobledger`` as a subprocess (launch, track --once, status,
show, last, adopt, cancel) against a real redis-server and the real slurmctld/slurmdbd.

Time is the scarce resource here: the node has 2 CPUs and a TIMEOUT job needs one of
them for 1-2 minutes.  So the module launches that job first, together with a batch of
quick jobs (``early`` fixture), and only checks the TIMEOUT near the end; the other
tests run while it sleeps.  All tests share one module-scoped Redis server (not the
suite's ``server`` fixture, whose ``client`` flushes it before every test and would wipe
the records of jobs launched earlier); tags are unique per test, since the cluster and
the server are shared.  The accounting-off test must stay last in the file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import CLI, Server, run_cluster_script, start_server

pytestmark = pytest.mark.slurm

FAILURE_SETS = ("FAILED", "TIMEOUT", "CANCELLED", "OUT_OF_MEMORY", "NODE_FAIL", "LOST")
SACCT_DUMP = "JobID,JobName,State,ExitCode,Reason,Submit,Start,End"

Status = dict[str, Any]


# --- helpers ----------------------------------------------------------------


def unique_tag(label: str) -> str:
    return f"e2e-{label}-{uuid.uuid4().hex[:8]}"


def base_id(job_id: str) -> str:
    return job_id.split("_")[0].split("+")[0]


def run(argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 60) -> str:
    """A command's stdout and stderr together (for failure messages; never raises)."""
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"$ {' '.join(argv)}: {exc}"
    return f"$ {' '.join(argv)} (exit {proc.returncode})\n{proc.stdout}{proc.stderr}"


def write_script(directory: Path, name: str, body: str) -> Path:
    path = directory / name
    path.write_text("#!/bin/bash\n" + body.strip() + "\n")
    return path


# Tags (= SLURM job names) this module submitted under, so teardown can scancel what a
# failed test left running; by name, so no one else's job can be hit.
SUBMITTED_TAGS: set[str] = set()


def launch(
    cli: CLI, tag: str, script: Path, *options: str, extra: tuple[str, ...] = ()
) -> list[str]:
    """``jobledger launch`` on SLURM; the job IDs it recorded."""
    SUBMITTED_TAGS.add(tag)
    argv = ["launch", "--tag", tag, "--scheduler", "slurm", "--json", *options, str(script)]
    result = cli(*argv, *(("--", *extra) if extra else ()))
    assert result.code == 0, f"launch failed ({result.code}): {result.err}"
    data = json.loads(result.out)
    assert data["recorded"] is True, data
    return list(data["job_ids"])


def status(cli: CLI, tag: str) -> Status:
    result = cli("status", "--tag", tag, "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)  # type: ignore[no-any-return]


def show(cli: CLI, tag: str, job_id: str) -> Status:
    result = cli("show", job_id, "--tag", tag, "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)  # type: ignore[no-any-return]


def sacct_report(tag: str, job_ids: list[str]) -> str:
    bases = sorted({base_id(j) for j in job_ids})
    selection = ["-j", ",".join(bases)] if bases else [f"--name={tag}"]
    return "\n".join(
        [
            run(["sacct", "-X", "-P", "-o", SACCT_DUMP, *selection]),
            run(["squeue", "-t", "all", "-o", "%i|%j|%T|%r|%S", *selection]),
        ]
    )


@dataclass
class Tracked:
    status: Status
    reports: list[dict[str, Any]]  # the last `track --once --json` answer


def track_until(
    cli: CLI,
    tag: str,
    predicate: Callable[[Status], bool],
    timeout_s: float,
    *,
    what: str = "the condition",
) -> Tracked:
    """Run ``track --once`` (then ``status --json``) until ``predicate(status)`` holds.

    A failing ``track`` is tolerated (sacct can hiccup) but reported on timeout, with the
    last status and what sacct/squeue say about the tag's jobs.
    """
    deadline = time.monotonic() + timeout_s
    last_err = ""
    while True:
        tracked = cli("track", "--once", "--tag", tag, "--scheduler", "slurm", "--json")
        reports: list[dict[str, Any]] = []
        if tracked.code == 0:
            reports = json.loads(tracked.out)
        else:
            last_err = f"track exit {tracked.code}: {tracked.err.strip()}"
        current = status(cli, tag)
        if tracked.code == 0 and predicate(current):
            return Tracked(current, reports)
        if time.monotonic() > deadline:
            pytest.fail(
                f"tag {tag}: {what} not reached in {timeout_s:.0f} s\n"
                f"last status: {json.dumps(current['jobs'])}\n"
                f"tracker: {current.get('tracker')}\n{last_err}\n"
                + sacct_report(tag, current["jobs"]["ALL"])
            )
        time.sleep(1.0)


def filed(job_id: str, state: str) -> Callable[[Status], bool]:
    return lambda s: job_id in s["jobs"][state]


def raw_state_is(cli: CLI, tag: str, job_id: str, *raw: str) -> Callable[[Status], bool]:
    """Predicate: the job's record says ``raw_state`` is one of ``raw``."""
    return lambda _s: show(cli, tag, job_id)["record"].get("raw_state", "").split(" ")[0] in raw


def assert_only_in(current: Status, job_id: str, state: str) -> None:
    """The job is in ``_ALL`` and in exactly one state set, ``state``."""
    jobs = current["jobs"]
    assert job_id in jobs["ALL"], jobs
    holding = [name for name, ids in jobs.items() if name != "ALL" and job_id in ids]
    assert holding == [state], f"{job_id} is in {holding}, expected only {state}: {jobs}"


# --- fixtures ---------------------------------------------------------------


@pytest.fixture(scope="module")
def slurm_redis(slurm_cluster: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One redis-server for the whole module (the ledger itself is tested on both kinds)."""
    srv = start_server("redis-server", tmp_path_factory.mktemp("slurm-redis"))
    yield srv
    for tag in sorted(SUBMITTED_TAGS):  # a test that failed half-way may leave a job behind
        subprocess.run(["scancel", f"--name={tag}"], capture_output=True, check=False)
    srv.process.terminate()
    srv.process.wait(timeout=10)


@pytest.fixture(scope="module")
def jl(slurm_redis: Server, tmp_path_factory: pytest.TempPathFactory) -> CLI:
    """The jobledger command, pointed at the module's server by JOBLEDGER_URL."""
    root = tmp_path_factory.mktemp("slurm-e2e")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBLEDGER_", "SLURM_"))}
    env.pop("REDIS_URL", None)
    env["HOME"] = str(root / "home")
    env["JOBLEDGER_URL"] = slurm_redis.url
    (root / "home").mkdir()
    (root / "exp").mkdir()
    return CLI(root / "exp", env)


@dataclass
class Early:
    """Jobs launched at the start of the module, checked by the tests below."""

    launched_at: float
    tags: dict[str, str]
    ids: dict[str, list[str]]


@pytest.fixture(scope="module")
def early(jl: CLI) -> Early:
    """Launch the TIMEOUT job first (it needs 1-2 min), then the quick ones behind it."""
    d = jl.cwd
    py = sys.executable
    scripts = {
        "timeout": (write_script(d, "sleep300.sh", "sleep 300"), ("--time", "0:01:00"), ()),
        "results": (
            write_script(
                d,
                "results.sh",
                f"""'{py}' -c 'import jobledger; jobledger.results().set("reward", 0.5)'""",
            ),
            (),
            (),
        ),
        "seed": (
            write_script(
                d,
                "seed.sh",
                """
case "$JOBLEDGER_URL" in
  unix://*) redis-cli -s "${JOBLEDGER_URL#unix://}" SET "${JOB_SPECIFIC_PREFIX}:k" 1 ;;
  *) redis-cli -u "$JOBLEDGER_URL" SET "${JOB_SPECIFIC_PREFIX}:k" 1 ;;
esac
""",
            ),
            (),
            (),
        ),
        "fail": (write_script(d, "exit3.sh", "exit 3"), (), ()),
        "array": (
            write_script(d, "array.sh", '[ "$SLURM_ARRAY_TASK_ID" = 2 ] && exit 4\nexit 0'),
            ("--array", "1-3"),
            (),
        ),
        "held": (write_script(d, "held.sh", "exit 0"), (), ("--hold",)),
    }
    started = time.monotonic()
    tags = {name: unique_tag(name) for name in scripts}
    ids = {
        name: launch(jl, tags[name], script, *options, extra=extra)
        for name, (script, options, extra) in scripts.items()
    }
    return Early(started, tags, ids)


# --- the tests --------------------------------------------------------------


def test_completed_job_results_are_readable(jl: CLI, early: Early) -> None:
    tag, [job_id] = early.tags["results"], early.ids["results"]
    done = track_until(jl, tag, filed(job_id, "COMPLETED"), 120, what="COMPLETED")
    assert_only_in(done.status, job_id, "COMPLETED")
    view = show(jl, tag, job_id)
    assert view["states"] == ["COMPLETED"]
    assert view["record"]["scheduler"] == "slurm"
    assert view["record"]["raw_state"] == "COMPLETED"
    assert view["record"]["exit_code"] == "0"
    assert view["results"] == {"reward": "0.5"}
    last = json.loads(jl("last", "--tag", tag, "--json").out)
    assert last["job_id"] == job_id
    assert last["results"] == {"reward": "0.5"}


def test_seed_style_bash_job_writes_under_job_specific_prefix(jl: CLI, early: Early) -> None:
    tag, [job_id] = early.tags["seed"], early.ids["seed"]
    done = track_until(jl, tag, filed(job_id, "COMPLETED"), 120, what="COMPLETED")
    assert_only_in(done.status, job_id, "COMPLETED")
    assert show(jl, tag, job_id)["results"] == {"k": "1"}
    last = json.loads(jl("last", "--tag", tag, "--json").out)
    assert last["job_id"] == job_id
    assert last["results"] == {"k": "1"}


def test_failing_job_is_filed_failed_with_its_exit_code(jl: CLI, early: Early) -> None:
    tag, [job_id] = early.tags["fail"], early.ids["fail"]
    done = track_until(jl, tag, filed(job_id, "FAILED"), 120, what="FAILED")
    assert_only_in(done.status, job_id, "FAILED")
    record = show(jl, tag, job_id)["record"]
    assert record["exit_code"] == "3"
    assert record["raw_state"] == "FAILED"


def test_array_tasks_are_filed_one_by_one(jl: CLI, early: Early) -> None:
    tag, ids = early.tags["array"], early.ids["array"]
    array_id = base_id(ids[0])
    assert ids == [f"{array_id}_1", f"{array_id}_2", f"{array_id}_3"]
    done = track_until(
        jl, tag, lambda s: s["counts"]["PENDING_AND_RUNNING"] == 0, 120, what="all tasks filed"
    )
    assert_only_in(done.status, f"{array_id}_1", "COMPLETED")
    assert_only_in(done.status, f"{array_id}_2", "FAILED")
    assert_only_in(done.status, f"{array_id}_3", "COMPLETED")
    assert show(jl, tag, f"{array_id}_2")["record"]["exit_code"] == "4"


def test_cancel_pending_job(jl: CLI, early: Early) -> None:
    tag, [job_id] = early.tags["held"], early.ids["held"]
    track_until(jl, tag, raw_state_is(jl, tag, job_id, "PENDING"), 60, what="raw_state PENDING")
    cancelled = jl("cancel", job_id, "--tag", tag)
    assert cancelled.code == 0, cancelled.err
    done = track_until(jl, tag, filed(job_id, "CANCELLED"), 60, what="CANCELLED")
    assert_only_in(done.status, job_id, "CANCELLED")
    record = show(jl, tag, job_id)["record"]
    assert record["raw_state"].startswith("CANCELLED")
    assert "started_at" not in record  # it never ran


def test_cancel_running_job(jl: CLI) -> None:
    tag = unique_tag("running")
    [job_id] = launch(jl, tag, write_script(jl.cwd, "sleep300b.sh", "sleep 300"))
    # The node has 2 CPUs and the TIMEOUT job holds one: this may queue for a while.
    track_until(jl, tag, raw_state_is(jl, tag, job_id, "RUNNING"), 150, what="raw_state RUNNING")
    cancelled = jl("cancel", job_id, "--tag", tag)
    assert cancelled.code == 0, cancelled.err
    done = track_until(jl, tag, filed(job_id, "CANCELLED"), 60, what="CANCELLED")
    assert_only_in(done.status, job_id, "CANCELLED")
    record = show(jl, tag, job_id)["record"]
    assert record["raw_state"].startswith("CANCELLED")
    assert record.get("started_at")


def test_requeued_job_stays_active_and_completes(jl: CLI) -> None:
    tag = unique_tag("requeue")
    script = write_script(jl.cwd, "sleep8.sh", "sleep 8")
    [job_id] = launch(jl, tag, script, extra=("--requeue",))
    track_until(jl, tag, raw_state_is(jl, tag, job_id, "RUNNING"), 150, what="raw_state RUNNING")
    requeued = subprocess.run(
        ["scontrol", "requeue", job_id], capture_output=True, text=True, check=False
    )
    assert requeued.returncode == 0, requeued.stderr

    def back_in_queue(s: Status) -> bool:
        assert not any(job_id in s["jobs"][f] for f in FAILURE_SETS), s["jobs"]
        return job_id in s["jobs"]["PENDING_AND_RUNNING"] and raw_state_is(
            jl, tag, job_id, "PENDING", "REQUEUED"
        )(s)

    after = track_until(jl, tag, back_in_queue, 60, what="PENDING after the requeue")
    assert_only_in(after.status, job_id, "PENDING_AND_RUNNING")
    # SLURM holds a requeued job ~2 minutes (reason BeginTime); let it start now.
    subprocess.run(
        ["scontrol", "update", f"JobId={job_id}", "StartTime=now"], capture_output=True, check=False
    )

    def completes(s: Status) -> bool:
        assert not any(job_id in s["jobs"][f] for f in FAILURE_SETS), s["jobs"]
        return job_id in s["jobs"]["COMPLETED"]

    done = track_until(jl, tag, completes, 180, what="COMPLETED after the requeue")
    assert_only_in(done.status, job_id, "COMPLETED")
    view = show(jl, tag, job_id)
    assert int(view["record"]["attempts"]) >= 2, view["record"]
    assert [h["to"] for h in view["history"]] == ["PENDING_AND_RUNNING", "COMPLETED"]


def sbatch_by_hand(jl: CLI, tag: str, *options: str) -> str:
    """Submit a trivial job named ``tag`` with plain sbatch, as the seed did; its ID."""
    SUBMITTED_TAGS.add(tag)
    argv = ["sbatch", "--parsable", f"--job-name={tag}", "--output=/dev/null", *options]
    sbatch = subprocess.run(
        [*argv, "--wrap", "exit 0"],
        cwd=jl.cwd,
        env=jl.env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert sbatch.returncode == 0, sbatch.stderr
    return sbatch.stdout.strip().split(";")[0]


def test_adopt_registers_a_job_submitted_without_jobledger(jl: CLI) -> None:
    tag = unique_tag("adopt")
    job_id = sbatch_by_hand(jl, tag)
    # sacct learns of a job a second or two after sbatch: adopt until it is found.
    deadline = time.monotonic() + 60
    while True:
        adopted = jl("adopt", "--tag", tag, "--scheduler", "slurm", "--json")
        assert adopted.code == 0, adopted.err
        first = json.loads(adopted.out)
        if first["adopted"]:
            break
        if time.monotonic() > deadline:
            pytest.fail(f"adopt never found job {job_id}\n" + sacct_report(tag, [job_id]))
        time.sleep(1.0)
    assert first["adopted"] == [job_id]
    assert first["already_known"] == 0
    done = track_until(jl, tag, filed(job_id, "COMPLETED"), 120, what="COMPLETED")
    assert_only_in(done.status, job_id, "COMPLETED")
    assert show(jl, tag, job_id)["record"]["adopted"] == "yes"
    again = jl("adopt", "--tag", tag, "--scheduler", "slurm", "--json")
    assert again.code == 0, again.err
    assert json.loads(again.out) == {"tag": tag, "adopted": [], "already_known": 1}


def test_adopt_finds_a_held_job_that_never_became_eligible(jl: CLI) -> None:
    """sacct by name and start time does not list a job held since submission: squeue does."""
    tag = unique_tag("held")
    job_id = sbatch_by_hand(jl, tag, "--hold")
    try:
        adopted = jl("adopt", "--tag", tag, "--scheduler", "slurm", "--json")
        assert adopted.code == 0, adopted.err
        assert json.loads(adopted.out)["adopted"] == [job_id], sacct_report(tag, [job_id])
        assert status(jl, tag)["jobs"]["PENDING_AND_RUNNING"] == [job_id]
    finally:
        subprocess.run(["scancel", job_id], capture_output=True, check=False)
    done = track_until(jl, tag, filed(job_id, "CANCELLED"), 120, what="CANCELLED")
    assert_only_in(done.status, job_id, "CANCELLED")


def test_a_job_that_begins_later_is_pending_not_lost(jl: CLI) -> None:
    """sacct does not list a job whose --begin is in the future: squeue does, so the
    tracker never takes it for unknown (and files it LOST once the grace has passed)."""
    tag = unique_tag("begin")
    script = write_script(jl.cwd, "later.sh", "true")
    [job_id] = launch(jl, tag, script, extra=("--begin=now+3600",))
    try:
        for _ in range(2):  # the second pass would file it LOST if the first had missed it
            tracked = jl("track", "--once", "--tag", tag, "--scheduler", "slurm",
                         "--lost-grace", "0", "--json")  # fmt: skip
            assert tracked.code == 0, tracked.err
        assert_only_in(status(jl, tag), job_id, "PENDING_AND_RUNNING")
        record = show(jl, tag, job_id)["record"]
        assert record.get("raw_state") == "PENDING", sacct_report(tag, [job_id])
        assert not record.get("missing_since")
    finally:
        subprocess.run(["scancel", job_id], capture_output=True, check=False)
    done = track_until(jl, tag, filed(job_id, "CANCELLED"), 120, what="CANCELLED")
    assert_only_in(done.status, job_id, "CANCELLED")


def test_sbatch_failure_is_one_error_line_and_records_nothing(jl: CLI) -> None:
    tag = unique_tag("nopart")
    script = write_script(jl.cwd, "ok.sh", "exit 0")
    result = jl(
        "launch", "--tag", tag, "--scheduler", "slurm", str(script), "--", "--partition=nope"
    )
    assert result.code == 1, result
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1, result.err
    assert lines[0].startswith("jobledger: error: sbatch:"), result.err
    assert status(jl, tag)["counts"]["ALL"] == 0


def test_dry_run_prints_argv_without_secret_and_submits_nothing(jl: CLI) -> None:
    tag = unique_tag("dry")
    script = write_script(jl.cwd, "dry.sh", "exit 0")
    url = "redis://:secret@127.0.0.1:1/0"  # nothing listens on port 1: must not connect
    common = ["launch", "--dry-run", "--url", url, "--tag", tag, "--scheduler", "slurm"]
    as_json = jl(*common, "--json", "--time", "5", str(script), "--", "--partition=debug")
    assert as_json.code == 0, as_json.err
    data = json.loads(as_json.out)
    argv = data["argv"]
    assert argv[0] == "sbatch"
    assert f"--job-name={tag}" in argv
    assert "--time=5" in argv
    assert argv[-1] == "--partition=debug"
    assert "secret" not in as_json.out + as_json.err
    human = jl(*common, str(script))
    assert human.code == 0, human.err
    assert "sbatch --parsable" in human.out
    assert "secret" not in human.out + human.err
    assert not (jl.cwd / ".jobledger" / "job-connection.toml").exists()  # a dry run writes nothing
    queued = subprocess.run(
        ["squeue", "-h", "-t", "all", f"--name={tag}"], capture_output=True, text=True, check=False
    )
    assert queued.returncode == 0, queued.stderr
    assert queued.stdout.strip() == ""


@pytest.mark.timeout(330)
def test_time_limit_is_filed_timeout(jl: CLI, early: Early) -> None:
    tag, [job_id] = early.tags["timeout"], early.ids["timeout"]
    remaining = max(early.launched_at + 240 - time.monotonic(), 10)
    done = track_until(jl, tag, filed(job_id, "TIMEOUT"), remaining, what="TIMEOUT")
    assert_only_in(done.status, job_id, "TIMEOUT")
    assert show(jl, tag, job_id)["record"]["raw_state"] == "TIMEOUT"


def _accounting(action: str, timeout_s: float) -> str | None:
    """Run ``slurm-cluster.sh accounting ACTION``; None on success, else what went wrong."""
    return run_cluster_script("accounting", action, timeout_s=timeout_s)


def _restore_accounting() -> None:
    """Accounting on, and sacct answering, whatever happened in the test."""
    problem = _accounting("on", 150)
    deadline = time.monotonic() + 60
    while True:
        probe = subprocess.run(["sacct", "-n", "-X"], capture_output=True, text=True, check=False)
        if probe.returncode == 0:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"accounting did not come back: {problem}\nsacct: {probe.stderr}")
        time.sleep(1.0)


# Keep this test last: it stops slurmdbd, which the other tests need.
@pytest.mark.timeout(420)
def test_degraded_mode_without_accounting_files_jobs_from_squeue(jl: CLI) -> None:
    tag = unique_tag("noacct")
    script = write_script(jl.cwd, "quick.sh", "exit 0")
    try:
        problem = _accounting("off", 120)
        assert problem is None, problem
        [job_id] = launch(jl, tag, script)
        done = track_until(jl, tag, filed(job_id, "COMPLETED"), 120, what="COMPLETED (squeue)")
        [report] = done.reports
        assert report["degraded"], report
        assert "squeue" in report["degraded"]
        assert [job_id, "PENDING_AND_RUNNING", "COMPLETED"] in report["moved"]
        assert_only_in(done.status, job_id, "COMPLETED")
        assert done.status["tracker"]["mode"] == "degraded"
        assert done.status["tracker"]["degraded_reason"]
        assert show(jl, tag, job_id)["record"]["raw_state"] == "COMPLETED"
    finally:
        _restore_accounting()
