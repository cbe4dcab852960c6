"""``python -m benchmarks``: every figure of issue 10 with its comparison, ratio and target.

    python -m benchmarks                  # the whole set (about 10 minutes here)
    python -m benchmarks --quick          # small sizes: checks that it all runs (tests)
    python -m benchmarks --only writes,memory --json out.json --markdown out.md

Needs Debian's /usr/bin/redis-server and, for the tracker rows, the project's one-node
SLURM cluster (``scripts/slurm-cluster.sh up``; without it those rows say "skipped").
Every figure is printed as it is measured; all of them go to the JSON file (default
``benchmark-results.json``) with the machine they ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.figures import Figure, format_value
from benchmarks.suite import QUICK, SECTIONS, Sizes, run_all


def markdown(figures: list[Figure]) -> str:
    lines = [
        "| # | what | jobledger | comparison, same run | ratio | target | |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for f in figures:
        against = (
            f"{f.comparison_what}: {format_value(f.comparison, f.unit)}"
            if f.comparison is not None
            else ""
        )
        verdict = {True: "met", False: "**missed**", None: ""}[f.met]
        lines.append(
            f"| {f.row} | {f.what} | {format_value(f.ours, f.unit)} | {against} | {f.ratio} "
            f"| {f.target.text} | {verdict} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--only", help=f"comma-separated sections: {', '.join(SECTIONS)}")
    parser.add_argument("--json", default="benchmark-results.json", help="where the figures go")
    parser.add_argument("--markdown", help="also write the figures as a Markdown table here")
    args = parser.parse_args()
    names = list(SECTIONS) if not args.only else [n.strip() for n in args.only.split(",")]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    if not Path("/usr/bin/redis-server").exists():
        parser.error("needs Debian's /usr/bin/redis-server (apt-get install redis-server)")
    sizes = QUICK if args.quick else Sizes()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="jobledger-bench-") as tmp:
        figures = list(run_all(sizes, names, Path(tmp)))
    elapsed = time.perf_counter() - started
    missed = [f for f in figures if f.met is False]
    report = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python -m benchmarks", *sys.argv[1:]]),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "sizes": sizes.__dict__,
        "seconds": round(elapsed, 1),
        "figures": [f.as_json() for f in figures],
    }
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(markdown(figures))
    print(
        f"\n{len(figures)} figures in {elapsed:.0f} s; {len(missed)} targets missed:"
        f" {', '.join(f.row for f in missed) or 'none'}; written to {args.json}"
    )


if __name__ == "__main__":
    main()
