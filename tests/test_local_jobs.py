"""The local scheduler end to end through the real CLI: launch, track, cancel, results."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import CLI, CLUSTER_KINDS, free_port

REDIS_KINDS = CLUSTER_KINDS  # local jobs, launched and tracked through a cluster too


def write_script(directory: Path, name: str, body: str) -> Path:
    path = directory / name
    path.write_text("#!/bin/bash\n" + body + "\n")
    return path


def track_until(cli: CLI, tag: str, done: str, timeout_s: float = 30.0) -> dict:
    """Run ``track --once`` until ``done`` (a state name) holds every job of the tag."""
    deadline = time.monotonic() + timeout_s
    while True:
        run = cli("track", "--once", "--tag", tag, "--scheduler", "local")
        assert run.code == 0, run.err
        status = json.loads(cli("status", "--tag", tag, "--json").out)
        if status["counts"]["PENDING_AND_RUNNING"] == 0 or time.monotonic() > deadline:
            return status
        time.sleep(0.2)


def launch(cli: CLI, tag: str, script: Path, *extra: str) -> list[str]:
    run = cli("launch", "--tag", tag, "--scheduler", "local", "--json", *extra, str(script))
    assert run.code == 0, run.err
    return json.loads(run.out)["job_ids"]


def test_completed_failed_and_timed_out_jobs_are_filed(cli: CLI) -> None:
    ok = write_script(cli.cwd, "ok.sh", "exit 0")
    bad = write_script(cli.cwd, "bad.sh", "exit 3")
    slow = write_script(cli.cwd, "slow.sh", "sleep 60")
    [ok_id] = launch(cli, "exp", ok)
    [bad_id] = launch(cli, "exp", bad)
    [slow_id] = launch(cli, "exp", slow, "--time", "0:01")
    status = track_until(cli, "exp", "done")
    assert status["jobs"]["COMPLETED"] == [ok_id]
    assert status["jobs"]["FAILED"] == [bad_id]
    assert status["jobs"]["TIMEOUT"] == [slow_id]
    assert status["jobs"]["ALL"] == sorted([ok_id, bad_id, slow_id], key=int)
    show = json.loads(cli("show", bad_id, "--tag", "exp", "--json").out)
    assert show["record"]["exit_code"] == "3"
    assert show["record"]["scheduler"] == "local"
    assert [h["to"] for h in show["history"]] == ["PENDING_AND_RUNNING", "FAILED"]


def test_job_results_are_readable_with_show_and_last(cli: CLI) -> None:
    script = write_script(
        cli.cwd,
        "job.sh",
        '"$JOBLEDGER_PYTHON" -c "import jobledger; jobledger.results().set(\'reward\', 0.75)"\n'
        'case "$JOBLEDGER_URL" in\n'
        # Redis Cluster: any node, -c to follow redirections (docs/data-model.md)
        "  redis+cluster://*) node=${JOBLEDGER_URL#*://}; node=${node%%,*}\n"
        '    redis-cli -c -h "${node%:*}" -p "${node##*:}" SET "${JOB_SPECIFIC_PREFIX}:bash_key" hi'
        " ;;\n"
        '  unix://*) redis-cli -s "${JOBLEDGER_URL#unix://}"'
        ' SET "${JOB_SPECIFIC_PREFIX}:bash_key" hi ;;\n'
        '  *) redis-cli -u "$JOBLEDGER_URL" SET "${JOB_SPECIFIC_PREFIX}:bash_key" hi ;;\n'
        "esac >/dev/null  # its exit code is the job's: COMPLETED says the write went in",
    )
    [job_id] = launch(cli, "res", script)
    track_until(cli, "res", "done")
    show = json.loads(cli("show", job_id, "--tag", "res", "--json").out)
    assert show["states"] == ["COMPLETED"]
    assert show["results"]["reward"] == "0.75"
    last = json.loads(cli("last", "--tag", "res", "--json").out)
    assert last["job_id"] == job_id
    assert last["results"]["reward"] == "0.75"


def test_cancelled_job_is_filed_cancelled(cli: CLI) -> None:
    [job_id] = launch(cli, "c", write_script(cli.cwd, "sleep.sh", "sleep 60"))
    run = cli("cancel", job_id, "--tag", "c")
    assert run.code == 0, run.err
    status = track_until(cli, "c", "done")
    assert status["jobs"]["CANCELLED"] == [job_id]


def test_array_with_a_failing_task(cli: CLI) -> None:
    script = write_script(cli.cwd, "arr.sh", '[ "$JOBLEDGER_ARRAY_TASK_ID" != 2 ]')
    ids = launch(cli, "arr", script, "--array", "1-3")
    base = ids[0].split("_")[0]
    assert ids == [f"{base}_1", f"{base}_2", f"{base}_3"]
    status = track_until(cli, "arr", "done")
    assert status["jobs"]["COMPLETED"] == [f"{base}_1", f"{base}_3"]
    assert status["jobs"]["FAILED"] == [f"{base}_2"]


def test_output_directory_is_created_and_named_like_slurm(cli: CLI) -> None:
    [job_id] = launch(cli, "out", write_script(cli.cwd, "hi.sh", "echo hello"))
    track_until(cli, "out", "done")
    assert (cli.cwd / "outerr" / f"out-{job_id}.out").read_text() == "hello\n"


def test_launch_journals_when_redis_is_down_and_next_command_replays(
    cli: CLI, tmp_path: Path
) -> None:
    script = write_script(cli.cwd, "ok.sh", "exit 0")
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"  # nothing listens there yet
    run = cli("launch", "--tag", "j", "--scheduler", "local", "--url", url, "--json", str(script))
    assert run.code == 0, run.err
    assert "journaled" in run.err
    [job_id] = json.loads(run.out)["job_ids"]
    assert json.loads(run.out)["recorded"] is False
    assert list((cli.cwd / ".jobledger" / "journal").glob("*.json"))
    # Another server (the session's) must not receive the job.
    other = cli("status", "--tag", "j", "--json")
    assert json.loads(other.out)["counts"]["ALL"] == 0
    proc = subprocess.Popen(
        ["/usr/bin/redis-server", "--port", str(port), "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while cli("status", "--tag", "x", "--url", url).code != 0:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        status = cli("status", "--tag", "j", "--url", url, "--json")
        assert json.loads(status.out)["jobs"]["ALL"] == [job_id]
        assert not list((cli.cwd / ".jobledger" / "journal").glob("*.json"))
        again = cli("status", "--tag", "j", "--url", url, "--json")
        assert json.loads(again.out)["counts"]["ALL"] == 1
    finally:
        proc.terminate()
        proc.wait()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--time", "soon"], "invalid time limit 'soon'"),
        (["--array", "1-x"], "invalid --array '1-x'"),
        (["--tag", "bad tag"], "invalid tag 'bad tag'"),
    ],
)
def test_bad_launch_input_is_refused_before_submitting(
    cli: CLI, args: list[str], message: str
) -> None:
    script = write_script(cli.cwd, "ok.sh", "exit 0")
    run = cli("launch", "--scheduler", "local", "--tag", "t", *args, str(script))
    assert run.code == 2
    assert run.err.startswith(f"jobledger: error: {message}")
    assert len(run.err.splitlines()) == 1
    assert not (cli.cwd / ".jobledger" / "local").exists()


def test_missing_script_is_a_usage_error(cli: CLI) -> None:
    run = cli("launch", "--scheduler", "local", "--tag", "t", "nope.sh")
    assert run.code == 2
    assert "nope.sh does not exist" in run.err


def test_cancel_of_unknown_job_is_refused(cli: CLI) -> None:
    run = cli("cancel", "999", "--tag", "t")
    assert (run.code, run.err) == (2, "jobledger: error: job 999 is not in the ledger of tag 't'\n")


def test_demo_runs_on_the_embedded_default(bare_cli: CLI) -> None:
    run = bare_cli("demo", "--jobs", "2", "--json", timeout=120)
    assert run.code == 0, run.err
    outcome = json.loads(run.out)
    states = sorted(job["state"][0] for job in outcome["jobs"].values())
    assert states == ["COMPLETED", "COMPLETED", "FAILED", "TIMEOUT"]
    assert len(outcome["top"]) == 5
    assert (bare_cli.cwd / ".jobledger" / "redis.sock").exists()


def test_sbatch_time_directive_is_honoured_by_the_local_scheduler(cli: CLI) -> None:
    script = write_script(cli.cwd, "slow.sh", "#SBATCH --ntasks=1\n#SBATCH --time=0:01\nsleep 60")
    [job_id] = launch(cli, "tl", script)
    status = track_until(cli, "tl", "done")
    assert status["jobs"]["TIMEOUT"] == [job_id]


def test_local_scheduler_refuses_sbatch_arguments(cli: CLI) -> None:
    script = write_script(cli.cwd, "ok.sh", "exit 0")
    run = cli("launch", "--tag", "t", "--scheduler", "local", str(script), "--", "--partition=gpu")
    assert run.code == 2
    assert run.err == (
        "jobledger: error: arguments after -- are for sbatch; the local scheduler takes none "
        "(got --partition=gpu)\n"
    )


def test_job_missing_from_the_scheduler_is_lost_after_the_grace_period(cli: CLI) -> None:
    [job_id] = launch(cli, "lost", write_script(cli.cwd, "ok.sh", "exit 0"))
    time.sleep(0.5)
    shutil.rmtree(cli.cwd / ".jobledger" / "local" / job_id)  # the scheduler forgot it
    args = ("track", "--once", "--tag", "lost", "--scheduler", "local", "--json")
    first = json.loads(cli(*args, "--lost-grace", "0").out)[0]
    assert first["moved"] == []  # first sighting only starts the grace period
    second = json.loads(cli(*args, "--lost-grace", "0").out)[0]
    assert second["moved"] == [[job_id, "PENDING_AND_RUNNING", "LOST"]]


def test_adopt_registers_local_jobs_the_ledger_lost(cli: CLI) -> None:
    [job_id] = launch(cli, "ad", write_script(cli.cwd, "ok.sh", "exit 0"))
    track_until(cli, "ad", "done")
    assert cli("cleanup", "--tag", "ad", "--yes").code == 0
    run = cli("adopt", "--tag", "ad", "--scheduler", "local", "--json")
    assert json.loads(run.out)["adopted"] == [job_id]
    status = json.loads(cli("status", "--tag", "ad", "--json").out)
    assert status["jobs"]["COMPLETED"] == [job_id]
    again = json.loads(cli("adopt", "--tag", "ad", "--scheduler", "local", "--json").out)
    assert again["adopted"] == []


def test_demo_never_empties_the_configured_tag(bare_cli: CLI) -> None:
    bare_cli.env["JOBLEDGER_TAG"] = "precious"
    script = write_script(bare_cli.cwd, "ok.sh", "exit 0")
    assert bare_cli("launch", "--scheduler", "local", str(script)).code == 0
    run = bare_cli("demo", "--jobs", "1", "--json", timeout=120)
    assert run.code == 0, run.err
    assert json.loads(run.out)["tag"] == "demo"
    assert json.loads(bare_cli("status", "--json").out)["counts"]["ALL"] == 1
