"""Smaller defects, each with the test that showed it: connection files, incr, top,
cleanup racing launch, adopt of pending jobs, fsck of invalid members, URLs, names, get.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest
import redis

from conftest import CLI, Server, cli_for
from jobledger.config import Settings
from jobledger.errors import InvalidValue
from jobledger.fsck import check, repair
from jobledger.ledger import Ledger
from jobledger.states import State
from jobledger.store import Results, top_results

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


# --- the connection file for jobs -----------------------------------------------------


def test_each_target_server_has_its_own_connection_file(cli: CLI, tmp_path: Path) -> None:
    from jobledger.launch import job_environment

    secret = tmp_path / "pw"
    secret.write_text("s3cret")
    secret.chmod(0o600)
    home = str(cli.cwd)
    one = Settings(url="redis://127.0.0.1:1/0", password_file=str(secret), home=home)
    two = Settings(url="redis://127.0.0.1:2/0", password_file=str(secret), home=home)
    first = job_environment(one, "t")["JOBLEDGER_CONFIG"]
    second = job_environment(two, "t")["JOBLEDGER_CONFIG"]
    assert first != second  # a launch against another server redirects no queued job
    assert "127.0.0.1:1/" in Path(first).read_text()
    assert "127.0.0.1:2/" in Path(second).read_text()
    assert not list(Path(first).parent.glob(".*.tmp"))  # written aside, then renamed


@pytest.mark.parametrize("content", [None, ""])
def test_a_job_whose_connection_file_is_empty_or_unset_fails_clearly(
    cli: CLI, content: str | None
) -> None:
    env = {k: v for k, v in cli.env.items() if k != "JOBLEDGER_URL"}
    if content is None:
        env["JOBLEDGER_CONFIG"] = ""
        expected = "JOBLEDGER_CONFIG is set but empty"
    else:
        path = cli.cwd / "job-connection.toml"
        path.write_text(content)
        env["JOBLEDGER_CONFIG"] = str(path)
        expected = "is empty (it holds no settings)"
    run = CLI(cli.cwd, env)("status", "--tag", "t")
    assert run.code == 2
    assert expected in run.err and len(run.err.splitlines()) == 1
    assert not (cli.cwd / ".jobledger" / "redis.sock").exists()  # no embedded fallback


# --- Results.incr ---------------------------------------------------------------------


@pytest.mark.parametrize("amount", [float("inf"), float("-inf"), float("nan"), 2**64, -(2**63) - 1])
def test_incr_refuses_amounts_redis_cannot_take_with_a_typed_error(
    jl_client: redis.Redis, amount: float
) -> None:
    res = Results(jl_client, "t", "1")
    with pytest.raises(InvalidValue):
        res.incr("n", amount)
    assert res.get("n") is None


def test_an_int_incr_of_a_float_value_adds_as_float(jl_client: redis.Redis) -> None:
    res = Results(jl_client, "t", "1")
    res.set("loss", 0.5)
    assert res.incr("loss", 2) == 2.5
    assert res.get("loss") == "2.5"


def test_incr_of_a_value_that_is_not_a_number_says_so(jl_client: redis.Redis) -> None:
    res = Results(jl_client, "t", "1")
    res.set("name", "gnn")
    for amount in (1, 1.5):
        with pytest.raises(InvalidValue, match="is not a number"):
            res.incr("name", amount)


# --- top: same data, same answer --------------------------------------------------------


def test_top_gives_the_same_answer_twice_with_a_seed_style_running_job(
    jl_client: redis.Redis,
) -> None:
    for job_id, state in (("1", State.COMPLETED), ("2", State.PENDING_AND_RUNNING)):
        jl_client.sadd("t_ALL", job_id)
        jl_client.sadd(f"t_{state.value}", job_id)
        jl_client.set(f"t-{job_id}:reward", job_id)  # written by redis-cli, no index
    first, second = top_results(jl_client, "t", 5), top_results(jl_client, "t", 5)
    assert first == second
    assert [e.job_id for e in first] == ["1"]


@pytest.mark.parametrize("state", [State.NODE_FAIL, State.PREEMPTED])
def test_a_job_slurm_may_requeue_is_not_indexed_so_later_writes_show(
    jl_client: redis.Redis, state: State
) -> None:
    jl_client.sadd("t_ALL", "1")
    jl_client.sadd(f"t_{state.value}", "1")
    jl_client.set("t-1:a", "1")
    top_results(jl_client, "t", 5)
    jl_client.set("t-1:b", "2")  # the requeued job writes again
    Ledger(jl_client, "t").move(
        __import__("jobledger.ledger", fromlist=["Transition"]).Transition(
            "1", state, State.COMPLETED
        ),
        now=NOW,
        by="test",
    )
    assert sorted(e.key for e in top_results(jl_client, "t", 5)) == ["a", "b"]


# --- cleanup racing launch ----------------------------------------------------------------


def test_cleanup_racing_launches_removes_or_keeps_each_job_whole(jl_client: redis.Redis) -> None:
    ledger = Ledger(jl_client, "race")
    for i in range(1, 2001):
        ledger.record_submission(str(i), now=NOW)
    stop = threading.Event()
    launched: list[str] = []

    def launcher() -> None:
        client = redis.Redis(connection_pool=jl_client.connection_pool)
        other = Ledger(client, "race")
        n = 10_000
        while not stop.is_set():
            n += 1
            other.record_submission(str(n), now=NOW)
            launched.append(str(n))

    thread = threading.Thread(target=launcher)
    thread.start()
    try:
        ledger.cleanup()
    finally:
        stop.set()
        thread.join()
    members = {str(m) for m in jl_client.smembers("race_ALL")}
    records = {str(k).rpartition(":")[2] for k in jl_client.scan_iter(match="jobledger:race:job:*")}
    assert members == records  # no job in _ALL without its record, nor the reverse
    assert members <= set(launched)  # every job recorded before the cleanup is gone
    state_members = {str(m) for m in jl_client.smembers("race_PENDING_AND_RUNNING")}
    assert state_members == members


# --- fsck: members that are not job IDs; results kept by cleanup ---------------------------


def test_fsck_quarantines_members_that_are_not_job_ids(jl_client: redis.Redis) -> None:
    ledger = Ledger(jl_client, "q")
    ledger.record_submission("5", now=NOW)
    for bad in ("abc", "", "4238610.batch"):
        jl_client.sadd("q_ALL", bad)
        jl_client.sadd("q_FAILED", bad)
    report = check(jl_client, "q")
    [invalid] = [p for p in report.problems if p.kind == "invalid_member"]
    assert sorted(invalid.job_ids) == ["", "4238610.batch", "abc"]
    after = repair(jl_client, "q", report, now=NOW)
    assert after.clean, after.as_dict()
    assert jl_client.smembers("q_PENDING_AND_RUNNING") == {"5"}  # nothing sent to the tracker
    quarantine = jl_client.smembers("jobledger:q:quarantine")
    assert quarantine == {
        f"{s}:{m}" for s in ("q_ALL", "q_FAILED") for m in ("abc", "", "4238610.batch")
    }
    assert any("jobledger:q:quarantine" in line for line in after.repaired)


def test_results_kept_on_purpose_by_cleanup_are_not_an_fsck_error(
    jl_client: redis.Redis,
) -> None:
    ledger = Ledger(jl_client, "k")
    ledger.record_submission("1", now=NOW)
    Results(jl_client, "k", "1").set("reward", 1)
    jl_client.sadd("k_ALL", "2")
    jl_client.sadd("k_COMPLETED", "2")
    jl_client.set("k-2:reward", "2")  # a seed job's results
    ledger.cleanup()
    assert check(jl_client, "k").clean
    jl_client.set("k-3:stray", "x")  # results of a job the ledger never had
    [problem] = check(jl_client, "k").problems
    assert (problem.kind, problem.job_ids) == ("results_without_job", ["3"])


# --- URLs, names, dry runs ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://127.0.0.1:6379/0?foo=bar", "unknown URL parameter 'foo'"),
        ("redis://127.0.0.1:6379/0?socket_timeout=abc", "socket_timeout must be a number"),
        ("redis://127.0.0.1:6379/abc", "database 'abc' must be a whole number"),
        ("unix:///tmp/x.sock?db=x", "db must be a whole number"),
    ],
)
def test_bad_url_parts_are_one_line_usage_errors(tmp_path: Path, url: str, message: str) -> None:
    run = cli_for(url, tmp_path)("status", "--tag", "t")
    assert run.code == 2, run.err
    assert message in run.err and len(run.err.splitlines()) == 1
    assert "Traceback" not in run.err


@pytest.mark.parametrize("name", ["x/../../y", "a b", ""])
def test_a_job_name_that_could_escape_outerr_is_refused(cli: CLI, name: str) -> None:
    script = cli.cwd / "ok.sh"
    script.write_text("#!/bin/bash\nexit 0\n")
    for dry in ((), ("--dry-run",)):
        run = cli("launch", "--tag", "t", "--scheduler", "local", "--name", name, *dry, str(script))
        assert run.code == 2, run.err
        assert "job name" in run.err
    assert not (cli.cwd / ".jobledger" / "local").exists()


def test_a_dry_run_of_a_missing_script_is_an_error(cli: CLI) -> None:
    run = cli("launch", "--tag", "t", "--scheduler", "local", "--dry-run", "nope.sh")
    assert run.code == 2
    assert "nope.sh does not exist" in run.err


# --- get prints the value verbatim ----------------------------------------------------------


def test_get_prints_the_value_verbatim_as_redis_cli_does(
    server: Server, client: redis.Redis, tmp_path: Path
) -> None:
    raw = redis.Redis.from_url(server.url)
    value = b"line1\nline2\r\n\x1b[31m\x00\xff"
    raw.set(b"ns:v", value)
    cli = cli_for(server.url, tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "jobledger", "get", "--namespace", "ns", "v"],
        cwd=cli.cwd,
        env=cli.env,
        capture_output=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == value + b"\n"
    as_json = json.loads(cli("get", "--namespace", "ns", "v", "--json").out)
    assert as_json["value"] == "line1\nline2\r\n\x1b[31m\x00\\xff"
