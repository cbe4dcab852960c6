"""Where a job's output goes and what it used: pure parts on literal text, then real
local jobs through the CLI on both real Redis servers."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import CLI
from jobledger.logs import (
    find_options,
    job_logs,
    job_values,
    output_options,
    partial,
    resolve,
    sbatch_directives,
)
from jobledger.schedulers import SubmitRequest
from jobledger.schedulers.slurm import SlurmScheduler
from jobledger.schedulers.slurm_parsers import (
    parse_sacct_rows,
    parse_sacct_usage,
    parse_sbatch_parsable,
    parse_squeue_rows,
)
from jobledger.states import State
from jobledger.usage import Usage, parse_cpu_time, parse_memory, usage_from_record
from test_local_jobs import launch, track_until, write_script

# --- filename patterns --------------------------------------------------------------


def test_patterns_resolve_as_sbatch_does() -> None:
    values = {"A": "123", "a": "7", "j": "130", "x": "exp", "u": "ann", "N": "node01"}
    assert resolve("/o/%x-%A_%a.out", values) == "/o/exp-123_7.out"
    assert resolve("/o/%j-%4a-%%-%u@%N.log", values) == "/o/130-0007-%-ann@node01.log"
    assert resolve("/o/%j.out", {"A": "1"}) is None  # %j of an array task: not known yet
    assert resolve("/o/\\%j.out", {}) == "/o/%j.out"  # a backslash turns interpolation off


def test_partial_fills_what_is_known_and_keeps_the_rest() -> None:
    assert partial("/o%%/%x-%A_%a.out", {"x": "a%b", "A": "5"}) == "/o%%/a%%b-5_%a.out"
    assert resolve(partial("/o/%x-%j.err", {"x": "n"}), {"j": "9"}) == "/o/n-9.err"


def test_job_values_of_a_plain_job_an_array_task_and_a_node_list() -> None:
    assert job_values("42", {})["j"] == "42"
    task = job_values("42_3", {"raw_job_id": "45", "nodes": "gpu[07-09],cpu1"})
    assert (task["A"], task["a"], task["j"], task["N"]) == ("42", "3", "45", "gpu07")
    assert "j" not in job_values("42_3", {})  # its own number comes from the tracker


def test_sbatch_options_are_read_from_arguments_and_script_headers() -> None:
    args = ["-o", "a.out", "--error=b.err", "-Dsub", "--output", "c.out"]
    assert output_options(args) == {"output": "c.out", "error": "b.err", "chdir": "sub"}
    head = (
        "#!/bin/bash\n#SBATCH --output=/logs/%j.out  # mine\n#SBATCH -c 4 --mem 2G\n"
        "echo hi\n#SBATCH --error=/ignored.err\n"
    )
    directives = sbatch_directives(head)
    assert directives == ["--output=/logs/%j.out", "-c", "4", "--mem", "2G"]
    table = {"cpus": ("--cpus-per-task", "-c"), "mem": ("--mem", "")}
    assert find_options(directives, table) == {"cpus": "4", "mem": "2G"}


def _request(tmp_path: Path, header: str, *extra: str, array: str | None = None) -> SubmitRequest:
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\n" + header + "exit 0\n")
    return SubmitRequest(
        script=script,
        tag="t",
        name="t",
        work_dir=tmp_path,
        output_dir=tmp_path / "outerr",
        extra_args=extra,
        array=array,
    )


def test_slurm_honours_the_scripts_own_output_lines_instead_of_overriding_them(
    tmp_path: Path,
) -> None:
    slurm = SlurmScheduler()
    ours = _request(tmp_path, "")
    assert slurm.log_patterns(ours) == (
        f"{tmp_path}/outerr/%x-%j.out",
        f"{tmp_path}/outerr/%x-%j.err",
    )
    assert any(a.startswith("--output=") for a in slurm.submit_argv(ours))
    theirs = _request(tmp_path, "#SBATCH -o logs/run-%A_%a.txt\n", array="1-3")
    out, err = slurm.log_patterns(theirs)
    assert out == err == f"{tmp_path}/logs/run-%A_%a.txt"  # stderr goes with stdout
    assert not any(a.startswith(("--output", "--error")) for a in slurm.submit_argv(theirs))
    default_out = _request(tmp_path, "", "-e", "/e/%j.err")
    assert slurm.log_patterns(default_out) == (f"{tmp_path}/slurm-%j.out", "/e/%j.err")


# --- usage parsers ----------------------------------------------------------------

SACCT_USAGE = """\
100|65|00:02:10.500|||4|1
100.batch|65|00:01:00|512000K|||1
100.extern|65|00:00:00.001|1024K|||1
100.0|60|00:01:10.499|2.5G|||1
101_3|3||||1|1
101_3.batch|3|00:00:01.200|10240K||1|1
102_[4-9]|0|00:00:00||4000Mc|1|1
103|7|1-02:03:04|||8|2
"""


def test_sacct_usage_takes_peak_memory_over_steps_and_cpu_from_the_job_row() -> None:
    usage, problems = parse_sacct_usage(SACCT_USAGE.replace("|||4|1", "||8G|4|1", 1))
    assert problems == []
    job = usage["100"]
    assert job == Usage(65.0, 130.5, int(2.5 * 1024**3), 8 * 1024**3, 4)
    assert job.cpu_efficiency == pytest.approx(130.5 / (65 * 4))
    assert job.mem_efficiency == pytest.approx(2.5 / 8)
    task = usage["101_3"]  # no TotalCPU on the job row: the steps' sum
    assert (task.cpu_s, task.max_rss_bytes, task.req_mem_bytes) == (1.2, 10240 * 1024, None)
    assert "102_4" not in usage  # pending tasks used nothing
    assert usage["103"].cpu_s == 93784.0 and usage["103"].req_cpus == 8


def test_memory_and_cpu_time_spellings() -> None:
    assert parse_memory("4000Mc", cpus=4) == 4000 * 1024**2 * 4
    assert parse_memory("2Gn", nodes=3) == 6 * 1024**3
    assert parse_memory("0") is None and parse_memory("") is None
    assert parse_cpu_time("00:03.150") == pytest.approx(3.15)
    assert parse_cpu_time("1:02:03") == 3723
    assert parse_memory("16?") is None  # sacct's spelling of a size it cannot name
    assert parse_memory("500", unit="M") == 500 * 1024**2
    # A value it cannot read is not measured; the job's row is still read, never skipped.
    usage, problems = parse_sacct_usage("104|5|bogus||16?|1|1\nnot a row\n")
    assert usage == {"104": Usage(elapsed_s=5.0, req_cpus=1)}
    assert problems == [("", "expected 7 fields: 'not a row'")]


def test_a_usage_field_edited_by_hand_counts_as_not_measured() -> None:
    assert usage_from_record({"elapsed_s": "nan", "cpu_s": "x"}) is None
    assert (
        usage_from_record({"elapsed_s": "10", "req_cpus": "2", "cpu_s": "5"}).cpu_efficiency == 0.25
    )


def test_squeue_on_several_clusters_skips_the_cluster_headers() -> None:
    text = (
        "CLUSTER: alpha\n7|7|j|RUNNING|None|n1|2026-01-01T00:00:00|2026-01-02T00:00:00\n"
        "CLUSTER: beta\n"
    )
    jobs, problems = parse_squeue_rows(text)
    assert list(jobs) == ["7"] and problems == []


# --- real local jobs ------------------------------------------------------------------

ALLOCATE = (
    '"$JOBLEDGER_PYTHON" -c "b = bytearray(120 * 1024 * 1024)\n'
    'for i in range(0, len(b), 4096): b[i] = 1"'
)


def test_a_failed_jobs_output_is_printed_by_logs_and_its_stderr_tail_by_show(cli: CLI) -> None:
    script = write_script(
        cli.cwd,
        "fail.sh",
        "#SBATCH --mem=1G\n" + ALLOCATE + "\n"
        'for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo "out $i"; echo "err $i" >&2; done\n'
        'echo "ValueError: bad x=3 in /data/run_3.csv" >&2\nexit 2',
    )
    [job_id] = launch(cli, "lg", script)
    track_until(cli, "lg", "done")
    out = cli("logs", job_id, "--tag", "lg")
    assert (out.code, out.err) == (0, "")
    assert out.out.splitlines() == [f"out {i}" for i in range(1, 13)]
    err = cli("logs", job_id, "--tag", "lg", "--err", "-n", "2")
    assert err.out.splitlines() == ["err 12", "ValueError: bad x=3 in /data/run_3.csv"]
    as_json = json.loads(cli("logs", job_id, "--tag", "lg", "--err", "--json").out)
    assert as_json["path"].endswith(f"/outerr/lg-{job_id}.err") and len(as_json["lines"]) == 13
    show = json.loads(cli("show", job_id, "--tag", "lg", "--json").out)
    assert show["logs"]["stdout"] == str(cli.cwd / "outerr" / f"lg-{job_id}.out")
    assert show["logs"]["stderr_tail"][-1] == "ValueError: bad x=3 in /data/run_3.csv"
    assert len(show["logs"]["stderr_tail"]) == 10
    assert show["record"]["stderr_last"] == "ValueError: bad x=3 in /data/run_3.csv"
    usage = show["usage"]
    assert usage["max_rss_bytes"] >= 120 * 1024**2  # the child's peak, from wait4
    assert usage["req_mem_bytes"] == 1024**3 and usage["req_cpus"] == 1
    assert 0 < usage["mem_efficiency"] < 1 and usage["elapsed_s"] > 0
    human = cli("show", job_id, "--tag", "lg").out
    assert "Last lines of stderr:" in human and "max RSS" in human and "of 1.0 GiB" in human


def test_logs_explains_a_missing_file_and_one_on_another_machine(cli: CLI, client: object) -> None:
    script = write_script(cli.cwd, "ok.sh", "echo hi")
    [job_id] = launch(cli, "gone", script)
    track_until(cli, "gone", "done")
    (cli.cwd / "outerr" / f"gone-{job_id}.out").unlink()
    run = cli("logs", job_id, "--tag", "gone")
    assert run.code == 2 and run.out == ""
    assert run.err.strip().endswith("does not exist: it was deleted or moved")
    client.hset(
        f"jobledger:gone:job:{job_id}",
        mapping={  # type: ignore[attr-defined]
            "nodes": "faraway7",
            "stdout": "/nonexistent-scratch/%j.out",
        },
    )
    run = cli("logs", job_id, "--tag", "gone")
    assert run.code == 2 and "on the disk of faraway7" in run.err
    assert len(run.err.splitlines()) == 1
    assert cli("logs", "999", "--tag", "gone").code == 2


def test_logs_follow_prints_what_a_running_job_writes_until_it_ends(cli: CLI) -> None:
    script = write_script(cli.cwd, "slow.sh", 'for i in 1 2 3; do echo "line $i"; sleep 1; done')
    [job_id] = launch(cli, "fl", script)
    tracker = subprocess.Popen(
        [sys.executable, "-m", "jobledger", "track", "--tag", "fl", "--interval", "0.5", "-q"],
        cwd=cli.cwd,
        env=cli.env,
    )
    try:
        started = time.monotonic()
        run = cli("logs", job_id, "--tag", "fl", "-f", timeout=60)
        assert (run.code, run.err) == (0, "")
        assert run.out.splitlines() == ["line 1", "line 2", "line 3"]
        assert time.monotonic() - started >= 2  # it waited for the lines
    finally:
        tracker.terminate()
        tracker.wait(timeout=30)
    assert cli("logs", job_id, "--tag", "fl", "-f", "--json").code == 2


def test_usage_summarises_per_state_and_lists_the_heaviest_jobs(cli: CLI) -> None:
    big = write_script(cli.cwd, "big.sh", "#SBATCH --mem=512M\n" + ALLOCATE)
    small = write_script(cli.cwd, "small.sh", "exit 1")
    ids = [launch(cli, "us", big)[0], launch(cli, "us", small)[0]]
    track_until(cli, "us", "done")
    data = json.loads(cli("usage", "--tag", "us", "--json").out)
    assert data["states"]["COMPLETED"]["count"] == 1
    assert data["states"]["FAILED"]["count"] == 1
    assert data["most_memory"][0]["job_id"] == ids[0]
    assert data["most_memory"][0]["max_rss_bytes"] >= 120 * 1024**2
    only = json.loads(cli("usage", "--tag", "us", "--state", "failed", "--json").out)
    assert list(only["states"]) == ["FAILED"]
    human = cli("usage", "--tag", "us").out
    assert human.splitlines()[0].startswith("state") and "Most memory:" in human
    assert cli("usage", "--tag", "us", "--state", "nope").code == 2


def test_a_job_records_where_its_output_goes_at_launch(cli: CLI) -> None:
    script = write_script(cli.cwd, "a.sh", "exit 0")
    ids = launch(cli, "arr", script, "--array", "0-2", "--output-dir", "o%d")
    record = json.loads(cli("show", ids[1], "--tag", "arr", "--json").out)["record"]
    base = ids[0].split("_")[0]
    assert record["stdout"] == f"{cli.cwd}/o%%d/arr-{base}_%a.out"  # a literal % doubled
    paths = job_logs(ids[1], record)
    assert paths.stdout == f"{cli.cwd}/o%d/arr-{base}_1.out"
    assert record["array"] == "0-2" and record["user"]
    track_until(cli, "arr", "done")
    assert os.path.exists(paths.stdout)


def test_a_configured_cluster_is_passed_to_sbatch_unless_the_arguments_name_one(
    tmp_path: Path,
) -> None:
    slurm = SlurmScheduler()
    plain = _request(tmp_path, "")
    assert not any(a.startswith("--clusters") for a in slurm.submit_argv(plain))
    named = dataclasses.replace(plain, cluster="alpha")
    assert slurm.submit_argv(named)[-1] == "--clusters=alpha"
    theirs = dataclasses.replace(plain, cluster="alpha", extra_args=("-M", "beta"))
    argv = slurm.submit_argv(theirs)
    assert "--clusters=alpha" not in argv and argv[-2:] == ["-M", "beta"]


def test_sacct_rows_of_a_named_cluster_parse_like_any_other() -> None:
    # `sacct -M alpha -X -P -n -o <fields>`, as the one-node cluster printed it.
    text = "259|259|wrap|FAILED|2:0|None|2026-12-01T23:57:16|2026-12-01T23:57:16|vm\n"
    jobs, problems = parse_sacct_rows(text)
    assert problems == [] and jobs["259"].state is State.FAILED and jobs["259"].exit_code == 2
    assert parse_sbatch_parsable("259;alpha\n") == ("259", "alpha")
