"""What a job used: elapsed and CPU time, peak memory, and its efficiency against the request.

Efficiencies are computed as SLURM's ``seff`` does: CPU efficiency is CPU time (user +
system, all steps) over elapsed time times the allocated CPUs; memory efficiency is the
peak resident set size (the largest of any step) over the memory requested.  A value
the scheduler did not measure stays None, and so does any efficiency that needs it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from jobledger.errors import ParseError

__all__ = [
    "USAGE_FIELDS",
    "Usage",
    "parse_cpu_time",
    "parse_memory",
    "summarize",
    "usage_fields",
    "usage_from_record",
]

USAGE_FIELDS = (
    "elapsed_s",
    "cpu_s",
    "max_rss_bytes",
    "req_mem_bytes",
    "req_cpus",
    "cpu_efficiency",
    "mem_efficiency",
)
"""The record fields a job's usage is stored in (the last two derived)."""

_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}
_MEMORY = re.compile(r"([0-9]+(?:\.[0-9]+)?)([KMGTP]?)([a-z?]?)", re.IGNORECASE)
_CPU_TIME = re.compile(r"(?:([0-9]+)-)?(?:([0-9]+):)?([0-9]+):([0-9]+(?:\.[0-9]+)?)")


@dataclass(frozen=True)
class Usage:
    """Resources one job used (None: not measured)."""

    elapsed_s: float | None = None
    cpu_s: float | None = None
    max_rss_bytes: int | None = None
    req_mem_bytes: int | None = None
    req_cpus: int | None = None

    @property
    def cpu_efficiency(self) -> float | None:
        if self.cpu_s is None or not self.elapsed_s or not self.req_cpus:
            return None
        return self.cpu_s / (self.elapsed_s * self.req_cpus)

    @property
    def mem_efficiency(self) -> float | None:
        if self.max_rss_bytes is None or not self.req_mem_bytes:
            return None
        return self.max_rss_bytes / self.req_mem_bytes

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "elapsed_s": self.elapsed_s,
            "cpu_s": self.cpu_s,
            "max_rss_bytes": self.max_rss_bytes,
            "req_mem_bytes": self.req_mem_bytes,
            "req_cpus": self.req_cpus,
            "cpu_efficiency": self.cpu_efficiency,
            "mem_efficiency": self.mem_efficiency,
        }


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


def usage_fields(usage: Usage) -> dict[str, str]:
    """The record fields for ``usage`` (unmeasured values left out)."""
    return {k: _number(v) for k, v in usage.as_dict().items() if v is not None}


def usage_from_record(record: Mapping[str, object]) -> Usage | None:
    """The usage in a job's record (strings) or a local task's state file (numbers);
    None when nothing was measured.  A value that is not a non-negative number (edited
    by hand) counts as not measured."""

    def read(name: str) -> float | None:
        value = record.get(name)
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            return None
        try:
            number = float(value)
        except ValueError:
            return None
        return number if 0 <= number < float("inf") else None

    def whole(name: str) -> int | None:
        value = read(name)
        return None if value is None else int(value)

    usage = Usage(
        elapsed_s=read("elapsed_s"),
        cpu_s=read("cpu_s"),
        max_rss_bytes=whole("max_rss_bytes"),
        req_mem_bytes=whole("req_mem_bytes"),
        req_cpus=whole("req_cpus"),
    )
    return None if usage == Usage() else usage


# --- SLURM's spellings (pure parsers, shared by the SLURM backend and the local one) ---


def parse_memory(
    text: str, *, cpus: int | None = None, nodes: int | None = None, unit: str = ""
) -> int | None:
    """``217252K`` / ``1.5G`` / ``4000Mc`` -> bytes; ``""`` and ``0`` -> None.

    A ``c`` suffix (per CPU, sacct before 21.08) is multiplied by ``cpus``, ``n`` (per
    node) by ``nodes``; any other suffix (sacct prints ``16?`` for a request it cannot
    name) means the size is unknown: None.  A number without unit is in ``unit``
    (bytes for MaxRSS, megabytes for ReqMem, as sacct and sbatch count them).
    """
    text = text.strip()
    if not text:
        return None
    match = _MEMORY.fullmatch(text)
    if match is None:
        raise ParseError(f"bad memory size {text!r}")
    value = float(match[1]) * _UNITS[(match[2] or unit).upper()]
    per = match[3].lower()
    if per == "c":
        value *= cpus or 1
    elif per == "n":
        value *= nodes or 1
    elif per:
        return None
    return int(value) or None


def parse_cpu_time(text: str) -> float | None:
    """sacct's ``TotalCPU``: ``[D-][HH:]MM:SS[.mmm]`` -> seconds; ``""`` -> None."""
    text = text.strip()
    if not text:
        return None
    match = _CPU_TIME.fullmatch(text)
    if match is None:
        raise ParseError(f"bad CPU time {text!r}")
    days, hours, minutes, seconds = match.groups()
    return int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)


# --- across jobs ----------------------------------------------------------------------


def summarize(usages: Iterable[Usage]) -> dict[str, dict[str, float | None]]:
    """Median and max of elapsed, max RSS and both efficiencies over ``usages``."""
    import statistics  # only the summaries need it; every command imports this module

    items = list(usages)
    out: dict[str, dict[str, float | None]] = {}
    for name in ("elapsed_s", "max_rss_bytes", "cpu_efficiency", "mem_efficiency"):
        values = [v for v in (getattr(u, name) for u in items) if v is not None]
        out[name] = {
            "median": statistics.median(values) if values else None,
            "max": max(values) if values else None,
            "measured": len(values),
        }
    return out
