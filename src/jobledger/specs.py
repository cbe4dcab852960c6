"""The job specs users write in SLURM's syntax, shared by every backend: arrays and time limits.

``--array 1-100%5`` and ``--time 1-12:00`` mean the same to the local scheduler as to
``sbatch``, so both backends (and ``launch``'s input checks) read them here.
"""

from __future__ import annotations

import re
from pathlib import Path

from jobledger.errors import ParseError, UsageError

__all__ = [
    "MAX_ARRAY_TASKS",
    "array_throttle",
    "expand_array_spec",
    "parse_time_limit",
    "read_head",
]

MAX_ARRAY_TASKS = 100_000
"""The most task IDs one array spec may expand to; more is treated as garbage."""

# At most 9 digits: a task's ledger ID is <job>_<task>, and job IDs allow 9 after "_".
_NUM = "[0-9]{1,9}"
_NUM_RE = re.compile(_NUM)
_RANGE_RE = re.compile(rf"(?P<first>{_NUM})(?:-(?P<last>{_NUM})(?::(?P<step>{_NUM}))?)?")
# ASCII digits, at most 9 per part: int() takes other scripts' digits, and fails on 4,300+.
_TIME_LIMIT = re.compile(r"(?:([0-9]{1,9})-)?([0-9]{1,9})(?::([0-9]{1,9}))?(?::([0-9]{1,9}))?")
_TIME_HELP = "use MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS"


def _quote(text: str, limit: int = 120) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _split_throttle(spec: str) -> tuple[str, str | None]:
    body = spec.strip()
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1]
    body, percent, throttle = body.partition("%")
    if percent and not _NUM_RE.fullmatch(throttle):
        raise ParseError(f"bad throttle in job array spec {_quote(spec)}")
    return body, throttle if percent else None


def expand_array_spec(spec: str) -> list[str]:
    """Expand a job array index spec such as ``1-3,7,9-11%2`` or ``1-9:2`` into task IDs.

    Surrounding brackets are allowed.  A trailing ``%N`` is a throttle (how many tasks may
    run at once, see :func:`array_throttle`).  Duplicates are dropped; order is kept.
    """
    body, _ = _split_throttle(spec)
    bounds: list[tuple[int, int, int]] = []
    total = 0
    for item in body.split(","):
        match = _RANGE_RE.fullmatch(item.strip())
        if match is None:
            raise ParseError(f"bad job array spec {_quote(spec)}")
        first = int(match["first"])
        last = int(match["last"]) if match["last"] is not None else first
        step = int(match["step"]) if match["step"] is not None else 1
        if last < first or step < 1:
            raise ParseError(f"bad range {_quote(item)} in job array spec {_quote(spec)}")
        # Count before building anything, so a huge range costs nothing.
        total += (last - first) // step + 1
        if total > MAX_ARRAY_TASKS:
            raise ParseError(f"job array spec {_quote(spec)} has over {MAX_ARRAY_TASKS} tasks")
        bounds.append((first, last, step))
    tasks = (str(task) for first, last, step in bounds for task in range(first, last + 1, step))
    return list(dict.fromkeys(tasks))


def array_throttle(spec: str) -> int | None:
    """The ``%N`` of an array spec: at most N of its tasks run at once (None: no limit)."""
    _, throttle = _split_throttle(spec)
    if throttle is None:
        return None
    if int(throttle) < 1:
        raise ParseError(f"bad throttle in job array spec {_quote(spec)}: must be at least 1")
    return int(throttle)


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


def read_head(script: Path) -> str:
    """The first 64 kB of a job script, where sbatch reads its ``#SBATCH`` lines ("" if
    it cannot be read: the submission reports that)."""
    try:
        with script.open(encoding="utf-8", errors="replace") as fh:
            return fh.read(64 * 1024)
    except OSError:
        return ""
