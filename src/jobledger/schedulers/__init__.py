"""Scheduler backends behind one interface: ``slurm`` and ``local``."""

from __future__ import annotations

import shutil
from pathlib import Path

from jobledger.errors import UsageError
from jobledger.schedulers.base import (
    JobInfo,
    QueryResult,
    Scheduler,
    Submission,
    SubmitRequest,
)

__all__ = [
    "NAMES",
    "JobInfo",
    "QueryResult",
    "Scheduler",
    "Submission",
    "SubmitRequest",
    "default_name",
    "get_scheduler",
]

NAMES = ("slurm", "local")


def default_name() -> str:
    """slurm where ``sbatch`` is on PATH, else the local process scheduler."""
    return "slurm" if shutil.which("sbatch") else "local"


def get_scheduler(name: str | None, *, home: Path) -> Scheduler:
    """The backend called ``name`` (None: the default for this machine)."""
    name = name or default_name()
    if name == "slurm":
        from jobledger.schedulers.slurm import SlurmScheduler

        return SlurmScheduler()
    if name == "local":
        from jobledger.schedulers.local import LocalScheduler

        return LocalScheduler(home)
    raise UsageError(f"unknown scheduler {name!r}: choose one of {', '.join(NAMES)}")
