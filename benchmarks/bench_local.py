"""What a big local array costs: submit, processes, filing, against a real redis-server.

    python benchmarks/bench_local.py [--tasks 10000] [--max-running 2]

Launches ``--array 1-N`` of a sleeping script through the real ``jobledger launch``,
then reports: the launch's wall time (every task ID recorded before any runs), the
processes the submission costs, one ``track --once`` pass while it runs, the time
for SIGTERM to the supervisor to cancel every task, and the pass that files them
all.  Figures go to docs/benchmarks.md with the command that produced them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_core import start_server


def jobledger(cwd: Path, env: dict[str, str], *args: str) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "jobledger", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return time.perf_counter() - start, proc.stdout


def processes_under(directory: Path) -> tuple[list[int], int]:
    """(supervisor PIDs of the submission in ``directory``, processes of its jobs)."""
    supervisors, jobs = [], 0
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            cwd = str((proc / "cwd").readlink())
        except OSError:
            continue
        if b"jobledger.schedulers.local_supervisor" in argv and os.fsencode(directory) in argv:
            supervisors.append(int(proc.name))
        elif cwd == str(directory.parent.parent.parent) and b"sleep.sh" in b" ".join(argv):
            jobs += 1
    return supervisors, jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--max-running", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server, client = start_server(root)
        try:
            exp = root / "exp"
            exp.mkdir()
            script = exp / "sleep.sh"
            script.write_text("#!/bin/bash\nsleep 600\n")
            script.chmod(0o755)
            env = {k: v for k, v in os.environ.items() if not k.startswith("JOBLEDGER_")}
            env["HOME"] = str(root)
            port = client.connection_pool.connection_kwargs["port"]
            env["JOBLEDGER_URL"] = f"redis://127.0.0.1:{port}/0"
            launch = ["launch", "--tag", "big", "--scheduler", "local", "--json"]
            launch += ["--array", f"1-{args.tasks}", "--max-running", str(args.max_running)]
            took, out = jobledger(exp, env, *launch, str(script))
            ids = json.loads(out)["job_ids"]
            print(f"launch --array 1-{args.tasks:,}: {took * 1000:,.0f} ms (every ID recorded)")
            print(f"  in the ledger right after: {client.scard('big_ALL'):,}")
            local_dir = exp / ".jobledger" / "local" / ids[0].split("_")[0]
            time.sleep(2)
            supervisors, jobs = processes_under(local_dir)
            print(f"  processes: {len(supervisors)} supervisor + {jobs} running job(s)")
            track = ["track", "--once", "--tag", "big", "--scheduler", "local"]
            took, _ = jobledger(exp, env, *track)
            print(
                f"track --once over {args.tasks:,} tasks (nothing to file): {took * 1000:,.0f} ms"
            )
            start = time.perf_counter()
            for pid in supervisors:
                os.kill(pid, signal.SIGTERM)
            while processes_under(local_dir)[0]:
                time.sleep(0.05)
            print(
                f"SIGTERM to the supervisor until every task is CANCELLED: "
                f"{(time.perf_counter() - start) * 1000:,.0f} ms"
            )
            took, _ = jobledger(exp, env, *track)
            print(f"track --once filing {args.tasks:,} CANCELLED tasks: {took * 1000:,.0f} ms")
            print(f"  CANCELLED: {client.scard('big_CANCELLED'):,}")
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
