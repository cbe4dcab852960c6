"""The one interface every scheduler backend implements, and the data it returns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from jobledger.states import State
from jobledger.usage import Usage

__all__ = [
    "JobInfo",
    "QueryResult",
    "Records",
    "Scheduler",
    "Submission",
    "SubmitRequest",
]

Records = Mapping[str, Mapping[str, str]]
"""Job ID -> its ledger record: how a backend finds a job's state (never the current directory)."""


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
    location: str | None = None  # where the backend keeps the job (local: its local_dir)
    raw_id: str | None = None  # SLURM: an array task's own job number (JobIDRaw)
    usage: Usage | None = None  # what the job used, once it has ended


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
    job_id: str | None = None  # allocated by the ledger, for backends that take one
    max_running: int | None = None  # local scheduler: how many jobs may run at once
    cluster: str | None = None  # SLURM: the cluster to submit to (sbatch --clusters)


@dataclass(frozen=True)
class Submission:
    """A job the scheduler accepted: the IDs the ledger records (one per array task).

    ``fields`` go into every job's record (the local scheduler: where its state lives).
    """

    job_ids: tuple[str, ...]
    cluster: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class QueryResult:
    """One batched state query: the jobs found, and whether data was degraded.

    ``problems`` are rows or records the backend could not read, as (job ID or "", why);
    the jobs they concern are simply absent from ``jobs``.
    """

    jobs: dict[str, JobInfo]
    degraded: str | None = None  # why the backend could not use its primary source
    problems: tuple[tuple[str, str], ...] = ()


class Scheduler(Protocol):
    """A batch system jobledger can submit to and ask about jobs.

    ``allocates_ids``: the scheduler names its jobs (sbatch); otherwise the ledger
    allocates an ID and passes it in ``SubmitRequest.job_id``.  ``remote_nodes``: jobs
    may run on other machines, which cannot reach a unix socket on this one.
    """

    name: str
    allocates_ids: bool
    remote_nodes: bool

    def submit(self, request: SubmitRequest) -> Submission: ...

    def start(self, submission: Submission) -> None:
        """Let the accepted jobs run; called once their IDs are recorded or journaled."""
        ...

    def log_patterns(self, request: SubmitRequest) -> tuple[str, str]:
        """Where the jobs' stdout and stderr go: absolute SLURM filename patterns."""
        ...

    def describe(self, request: SubmitRequest) -> list[str]:
        """What ``launch --dry-run`` shows: the command that would run, if any."""
        ...

    def query(self, jobs: Records) -> QueryResult: ...

    def cancel(self, jobs: Records) -> list[str]:
        """Cancel jobs; returns those that had already ended (nothing was sent to them)."""
        ...

    def find_by_name(
        self, name: str, *, since: datetime | None = None, cluster: str | None = None
    ) -> list[JobInfo]:
        """Jobs the scheduler knows by ``name`` (SLURM: on ``cluster``, else the default)."""
        ...
