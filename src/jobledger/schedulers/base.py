"""The one interface every scheduler backend implements, and the data it returns."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from jobledger.errors import UsageError
from jobledger.states import State

__all__ = ["JobInfo", "QueryResult", "Scheduler", "Submission", "SubmitRequest"]


@dataclass(frozen=True)
class JobInfo:
    """What a scheduler reports about one job at one moment."""

    job_id: str
    state: State
    raw_state: str
    exit_code: int | None = None
    signal: int | None = None
    reason: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    nodes: str | None = None
    name: str | None = None
    restarts: int | None = None


@dataclass(frozen=True)
class SubmitRequest:
    """Everything a backend needs to submit one job script."""

    script: Path
    tag: str
    name: str
    work_dir: Path
    output_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    time_limit: str | None = None
    array: str | None = None
    extra_args: Sequence[str] = ()


@dataclass(frozen=True)
class Submission:
    """A job the scheduler accepted: the IDs the ledger records (one per array task)."""

    job_ids: tuple[str, ...]
    cluster: str | None = None


@dataclass(frozen=True)
class QueryResult:
    """One batched state query: the jobs found, and whether data was degraded."""

    jobs: dict[str, JobInfo]
    degraded: str | None = None  # why the backend could not use its primary source


class Scheduler(Protocol):
    """A batch system jobledger can submit to and ask about jobs."""

    name: str

    def submit(self, request: SubmitRequest) -> Submission: ...

    def query(self, job_ids: Iterable[str]) -> QueryResult: ...

    def cancel(self, job_ids: Sequence[str]) -> None: ...

    def find_by_name(self, name: str, *, since: datetime | None = None) -> list[JobInfo]: ...


# ASCII digits, at most 9 per part: int() takes other scripts' digits, and fails on 4,300+.
_TIME_LIMIT = re.compile(r"(?:([0-9]{1,9})-)?([0-9]{1,9})(?::([0-9]{1,9}))?(?::([0-9]{1,9}))?")
_TIME_HELP = "use MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS"


def parse_time_limit(text: str) -> int:
    """Seconds in a SLURM time limit: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS."""
    m = _TIME_LIMIT.fullmatch(text.strip())
    if m is None:
        raise UsageError(f"invalid time limit {text!r}: {_TIME_HELP}")
    days, *rest = m.groups()
    numbers = [int(n) for n in rest if n is not None]
    if days is not None:
        units: tuple[int, ...] = (3600, 60, 1)
    else:
        units = {1: (60,), 2: (60, 1), 3: (3600, 60, 1)}[len(numbers)]
    total = int(days or 0) * 86400 + sum(n * u for n, u in zip(numbers, units, strict=False))
    if total <= 0:
        raise UsageError(f"invalid time limit {text!r}: must be positive")
    return total
