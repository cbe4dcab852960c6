"""Failure groups: jobs that ended other than COMPLETED, grouped by why.

Two jobs are in one group when they ended in the same state, with the same exit code
or signal, for the same reason, and their last non-empty stderr line says the same
thing once what differs from job to job (numbers, paths, hex IDs) is normalised away.
3,000 failed jobs then read as a handful of lines: "2,980 x FAILED exit 1:
CUDA out of memory. Tried to allocate <n> MiB".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jobledger.errors import UsageError
from jobledger.ids import job_sort_key, sort_job_ids
from jobledger.logs import stderr_last_line
from jobledger.states import TERMINAL_STATES, State

__all__ = [
    "FAILURE_STATES",
    "UNREAD",
    "FailureGroup",
    "Failures",
    "group_failures",
    "normalise",
    "tag_failures",
]

FAILURE_STATES = tuple(s for s in TERMINAL_STATES if s is not State.COMPLETED)
UNREAD = "(stderr not readable here)"
"""The message of jobs whose stderr file is missing, unreadable or on another machine."""

_EXAMPLES = 5
# (placeholder, pattern), tried in this order at each position of the line: times and
# dates before the numbers they contain, hex IDs before numbers, paths before both.
_RULES = (
    ("<time>", r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?"),
    ("<date>", r"\b\d{4}-\d{2}-\d{2}\b"),
    ("<hex>", r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"),
    ("<hex>", r"\b0[xX][0-9a-fA-F]+\b"),
    # Absolute or ./relative paths, with at least one slash.
    ("<path>", r"(?<![\w<])(?:~|\.{1,2})?/[^\s'\":,;()\[\]]+"),
    # Long hex runs (hashes, container IDs) with at least one digit and one letter.
    ("<hex>", r"\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"),
    # Numbers, also after "_" or "-" (mol_123, run-7), but not inside a name (x1, fp16).
    ("<n>", r"(?<![A-Za-z0-9.])\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"),
)
# One pass over the line (a 100,000-job tag is 100,000 lines), whitespace runs included.
_ONE_PASS = re.compile(
    "|".join(f"(?P<r{i}>{pattern})" for i, (_, pattern) in enumerate(_RULES)) + r"|(?P<ws>\s+)"
)
_PLACEHOLDERS = {f"r{i}": placeholder for i, (placeholder, _) in enumerate(_RULES)} | {"ws": " "}


def normalise(line: str) -> str:
    """``line`` with numbers, paths, hex IDs and times replaced by placeholders."""
    return _ONE_PASS.sub(lambda m: _PLACEHOLDERS[m.lastgroup or "ws"], line.strip())[:300]


@dataclass
class FailureGroup:
    """Jobs that failed alike; ``key`` is what they share."""

    state: str
    exit: str
    reason: str
    message: str
    job_ids: list[str] = field(default_factory=list)
    sample: str = ""  # one job's stderr line as it was, for a human

    @property
    def count(self) -> int:
        return len(self.job_ids)

    @property
    def examples(self) -> list[str]:
        return sort_job_ids(self.job_ids)[:_EXAMPLES]

    def as_dict(self, number: int) -> dict[str, object]:
        job_ids = sort_job_ids(self.job_ids)
        return {
            "group": number,
            "count": self.count,
            "state": self.state,
            "exit": self.exit,
            "reason": self.reason,
            "message": self.message,
            "sample": self.sample,
            "examples": job_ids[:_EXAMPLES],
            "job_ids": job_ids,
        }


def _exit(record: Mapping[str, str]) -> str:
    signal, code = record.get("signal") or "0", record.get("exit_code")
    if signal not in ("", "0"):
        return f"signal {signal}"
    return f"exit {code}" if code else "exit ?"


def group_failures(
    jobs: Iterable[tuple[str, str, Mapping[str, str], str | None]],
) -> list[FailureGroup]:
    """Group ``(job ID, state, record, last stderr line)``, largest group first.

    Ties keep the order of the first job of each group (by job ID).  A job whose
    stderr could not be read (None) groups under ``UNREAD``, one with an empty stderr
    ("") under an empty message.
    """
    groups: dict[tuple[str, str, str, str], FailureGroup] = {}
    for job_id, state, record, last in sorted(jobs, key=lambda j: job_sort_key(j[0])):
        reason = normalise(record.get("reason") or "")
        message = UNREAD if last is None else normalise(last)
        key = (state, _exit(record), reason, message)
        if key not in groups:
            groups[key] = FailureGroup(state, key[1], reason, message, sample=last or "")
        groups[key].job_ids.append(job_id)
    return sorted(groups.values(), key=lambda g: -g.count)  # stable: first seen first


# What grouping reads of each record, and what finding a stderr file without one takes.
_FIELDS = (
    *("exit_code", "signal", "reason", "stderr_last", "resubmitted_as"),
    *("stderr", "nodes", "raw_job_id", "name", "user"),
)


@dataclass
class Failures:
    """A tag's failure groups, and how many failed jobs were left out as resubmitted."""

    groups: list[FailureGroup]
    resubmitted: int = 0


def tag_failures(
    ledger: Any, states: Sequence[State] = FAILURE_STATES, *, resubmitted: bool = False
) -> Failures:
    """The failure groups of a tag's jobs in ``states`` (end states other than COMPLETED;
    UsageError for others).  The stderr line comes from the record (the tracker keeps
    it) or, for jobs filed before it did, from the file.  Jobs already resubmitted are
    counted, not grouped, unless ``resubmitted``: a group is what still needs a rerun."""
    wrong = [s.value for s in states if s not in FAILURE_STATES]
    if wrong:
        raise UsageError(
            f"{', '.join(wrong)}: not a failure (failures are the end states other than "
            "COMPLETED: " + ", ".join(s.value for s in FAILURE_STATES) + ")"
        )
    members = ledger.snapshot([s.value for s in states])
    jobs = []
    left_out = 0
    for state in states:
        for job_id, record in ledger.records(members[state.value], fields=_FIELDS):
            if record.get("resubmitted_as") and not resubmitted:
                left_out += 1
                continue
            line = record.get("stderr_last")  # "": the tracker read it and found nothing
            if line is None:
                line = stderr_last_line(job_id, record)
            jobs.append((job_id, state.value, record, line))
    return Failures(group_failures(jobs), left_out)
