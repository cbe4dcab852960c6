"""The seed's way, re-implemented as its scripts do it, for the comparisons.

* the tracker: ``seed/jobtracker_pass.sh``, one pass of ``test_jobtracker.sh``'s loop
  (one ``sacct -j <id>`` and one ``redis-cli SMOVE`` per job);
* reading a job's results: ``KEYS <prefix>:*`` then one ``GET`` per key
  (``test_lastjob.sh``; here through redis-py, which is faster than its redis-cli loop);
* writing results: one ``SET`` per value (``test_process.py``).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis

TRACKER_PASS = Path(__file__).resolve().parent / "seed" / "jobtracker_pass.sh"


def tracker_pass(tag: str, port: int, env: dict[str, str] | None = None) -> float:
    """Seconds for one seed tracker pass over ``<tag>_PENDING_AND_RUNNING``."""
    start = time.perf_counter()
    subprocess.run(["bash", str(TRACKER_PASS), tag, str(port)], check=True, env=env)
    return time.perf_counter() - start


def read_results(client: redis.Redis, prefix: str) -> dict[str, str]:
    """``KEYS <prefix>:*``, then one GET per key, as test_lastjob.sh does."""
    return {str(k): str(client.get(k)) for k in client.keys(f"{prefix}:*")}


def write_results(client: redis.Redis, prefix: str, values: dict[str, float]) -> None:
    """One SET per value, as test_process.py does."""
    for key, value in values.items():
        client.set(f"{prefix}:{key}", value)
