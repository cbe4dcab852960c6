"""Scheduler backends behind one interface, in one registry that config and the CLI read."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from jobledger.errors import UsageError
from jobledger.schedulers.base import (
    JobInfo,
    QueryResult,
    Records,
    Scheduler,
    Submission,
    SubmitRequest,
)

__all__ = [
    "BACKENDS",
    "NAMES",
    "Backend",
    "JobInfo",
    "QueryResult",
    "Records",
    "Scheduler",
    "Submission",
    "SubmitRequest",
    "default_name",
    "get_scheduler",
]


def _slurm(home: Path) -> Scheduler:
    from jobledger.schedulers.slurm import SlurmScheduler

    return SlurmScheduler()


def _local(home: Path) -> Scheduler:
    from jobledger.schedulers.local import LocalScheduler

    return LocalScheduler(home)


@dataclass(frozen=True)
class Backend:
    """A registered backend: its name, one line for --help, and how to build it."""

    name: str
    summary: str
    factory: Callable[[Path], Scheduler]


BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend("slurm", "sbatch, sacct, squeue and scancel", _slurm),
        Backend("local", "detached processes on this machine", _local),
    )
}
NAMES = tuple(BACKENDS)


def default_name() -> str:
    """slurm where ``sbatch`` is on PATH, else the local process scheduler."""
    return "slurm" if shutil.which("sbatch") else "local"


def get_scheduler(name: str | None, *, home: Path) -> Scheduler:
    """The backend called ``name`` (None: the default for this machine)."""
    name = name or default_name()
    backend = BACKENDS.get(name)
    if backend is None:
        raise UsageError(f"unknown scheduler {name!r}: choose one of {', '.join(NAMES)}")
    return backend.factory(home)
