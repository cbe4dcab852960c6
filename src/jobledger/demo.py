"""``jobledger demo``: a small experiment on this machine, from launch to results."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis

from jobledger.config import Settings
from jobledger.connection import connection_target
from jobledger.launch import launch
from jobledger.ledger import Ledger, utcnow
from jobledger.schedulers.local import LocalScheduler
from jobledger.states import State
from jobledger.tracker import Tracker, TrackerSettings

__all__ = ["DemoJob", "demo_jobs", "run_demo"]

_DEADLINE_S = 60.0


@dataclass(frozen=True)
class DemoJob:
    """One demo job: its script name, arguments and time limit."""

    name: str
    args: str
    time_limit: str | None = None


def demo_jobs(count: int) -> list[DemoJob]:
    """``count`` jobs that succeed, one that fails and one that runs past its time limit."""
    jobs = [
        DemoJob(f"reward-{i}", f"--rewards 5 --sleep {0.5 + i * 0.3:.1f}") for i in range(count)
    ]
    jobs.append(DemoJob("fails", "--rewards 2 --fail"))
    jobs.append(DemoJob("too-slow", "--rewards 1 --sleep 600", time_limit="0:03"))
    return jobs


def _write_script(directory: Path, job: DemoJob) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{job.name}.sh"
    path.write_text(
        "#!/bin/bash\n"
        "# A jobledger demo job (the seed's test_jobscript.sbatch, run locally).\n"
        f'exec "{sys.executable}" -m jobledger.demo_job {job.args}\n',
        encoding="utf-8",
    )
    return path


def run_demo(
    client: redis.Redis,
    settings: Settings,
    *,
    jobs: int = 4,
    progress: Callable[[int, int], None] | None = None,
    poll_s: float = 0.3,
) -> dict[str, object]:
    """Launch the demo jobs, track them to the end; returns the job IDs and final states."""
    tag = settings.tag or "demo"
    home = settings.home_dir
    ledger = Ledger(client, tag)
    ledger.cleanup(purge_results_too=True)  # a fresh demo each time
    scheduler = LocalScheduler(home)
    launched: dict[str, str] = {}
    for job in demo_jobs(jobs):
        result = launch(
            _write_script(home / ".jobledger" / "demo", job),
            tag=tag,
            settings=settings,
            scheduler=scheduler,
            connect=lambda: client,
            name=tag,
            time_limit=job.time_limit,
            output_dir=home / ".jobledger" / "demo" / "outerr",
            now=utcnow(),
        )
        launched.update({job_id: job.name for job_id in result.job_ids})
    tracker = Tracker(
        client,
        lambda: [tag],
        scheduler=lambda name: scheduler,
        default_scheduler="local",
        home=home,
        settings=TrackerSettings(interval_s=poll_s, lost_grace_s=_DEADLINE_S),
        journal_target=connection_target(settings),
    )
    deadline = time.monotonic() + _DEADLINE_S
    while True:
        tracker.run_pass(now=utcnow())
        active = len(ledger.members(State.PENDING_AND_RUNNING))
        if progress is not None:
            progress(len(launched) - active, len(launched))
        if active == 0 or time.monotonic() > deadline:
            break
        time.sleep(poll_s)
    tracker.release()
    states = {job_id: ledger.job(job_id).states for job_id in launched}
    return {
        "tag": tag,
        "jobs": {
            job_id: {"name": name, "state": [s.value for s in states[job_id]]}
            for job_id, name in launched.items()
        },
        "finished": all(s and s[0].is_terminal for s in states.values()),
    }
