"""The benchmark command keeps working: a smoke run at small sizes (its timings assert
nothing; the figures live in docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slurm
def test_the_benchmark_command_measures_every_row_with_its_comparison(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    table = tmp_path / "figures.md"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--json", str(out),
         "--markdown", str(table)],
        cwd=ROOT, capture_output=True, text=True, timeout=280, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    rows = {f["row"]: f for f in report["figures"]}
    for row in ("1", "1b", "1c", "2", "2s", "2x", "3", "3b", "4", "4m", "5", "5b", "5c", "6",
                "7", "7b"):  # fmt: skip
        assert row in rows, f"row {row} missing: {sorted(rows)}"
        assert "skipped" not in rows[row]["what"], rows[row]
        assert rows[row]["ours"] > 0 or row == "6", rows[row]  # 6: a difference, may be < 0
    for row in ("1", "2", "3", "3b", "5", "5b", "6", "7", "7b"):
        assert rows[row]["comparison"] is not None and rows[row]["met"] in (True, False)
    assert rows["1n"]["ours"] >= 1  # the tracker asked sacct
    assert rows["6"]["extra"]["first_s"] > 0
    assert "| 3b |" in table.read_text()
