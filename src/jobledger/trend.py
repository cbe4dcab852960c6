"""How a result changes from job to job: one value per job, in submission order.

The seed's purpose: "track how the rewards change from job to job as a result of
algorithm improvements".  ``KEY`` is a result key, or a glob pattern (``reward_*``,
``*``) whose matching keys of each job are folded into one value by ``agg``.  A job
without a numeric value is a gap (``value`` None, with why), never left out.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobledger.errors import UsageError
from jobledger.export import job_states, natural_key, replaced_atomically
from jobledger.ids import validate_result_key
from jobledger.ledger import Ledger
from jobledger.states import State
from jobledger.store import as_number, results_of

__all__ = [
    "AGGREGATES",
    "TrendPoint",
    "binned",
    "ensure_plotting",
    "is_pattern",
    "plot",
    "plot_format",
    "sparkline",
    "summarize",
    "trend",
]

AGGREGATES = ("last", "max", "mean", "min")
_BARS = "▁▂▃▄▅▆▇█"
_CHUNK = 1000


@dataclass(frozen=True)
class TrendPoint:
    """One job's value of the trended key (None: a gap, ``missing`` says why)."""

    job_id: str
    state: str
    submitted_at: str | None
    value: float | None
    keys: int = 0  # how many of the job's keys matched
    missing: str | None = None  # "no such key", "not a number"

    def as_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "state": self.state,
            "submitted_at": self.submitted_at,
            "value": self.value,
            "keys": self.keys,
            "missing": self.missing,
        }


def is_pattern(key: str) -> bool:
    return any(c in key for c in "*?[")


def mean(values: Sequence[float]) -> float:
    """The mean of finite values, also when their sum would overflow (1e308 + 1e308)."""
    try:
        return math.fsum(values) / len(values)
    except OverflowError:
        return math.fsum(v / len(values) for v in values)


def _fold(values: list[tuple[str, float]], agg: str) -> float:
    if agg == "last":  # the key that sorts last: the final step of reward_1 .. reward_N
        return max(values, key=lambda kv: natural_key(kv[0]))[1]
    numbers = [v for _, v in values]
    if agg == "max":
        return max(numbers)
    if agg == "min":
        return min(numbers)
    return mean(numbers)


def trend(
    ledger: Ledger,
    key: str,
    *,
    agg: str = "last",
    states: Sequence[State] | None = None,
) -> list[TrendPoint]:
    """One point per job of the tag (or of ``states``), ordered by submission time
    (then job ID; jobs without one last), for the result ``key`` or the keys matching
    the glob ``key``."""
    if agg not in AGGREGATES:
        raise UsageError(f"unknown aggregate {agg!r} (choose from {', '.join(AGGREGATES)})")
    pattern = is_pattern(key)
    if not pattern:
        validate_result_key(key)
    where = job_states(ledger, states)
    ids = list(where)
    submitted = {j: r.get("submitted_at") for j, r in ledger.records(ids, fields=["submitted_at"])}
    found = _matching(ledger, ids, key) if pattern else _exact(ledger, ids, key)
    points = []
    for job_id, values in found:
        numeric = [(k, n) for k, v in values if (n := as_number(v)) is not None]
        missing = None
        if not values:
            missing = "no such key"
        elif not numeric:
            missing = "not a number"
        points.append(
            TrendPoint(
                job_id=job_id,
                state=where[job_id],
                submitted_at=submitted.get(job_id),
                value=_fold(numeric, agg) if numeric else None,
                keys=len(values),
                missing=missing,
            )
        )
    order = {j: i for i, j in enumerate(ids)}  # job ID order breaks ties
    # Jobs without a submission time (the seed's scripts record none) come after.
    points.sort(key=lambda p: (p.submitted_at is None, p.submitted_at or "", order[p.job_id]))
    return points


def _exact(ledger: Ledger, ids: list[str], key: str) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """One MGET per chunk: works for jobs without an index (seed, redis-cli) too."""
    layout, tag = ledger.layout, ledger.tag
    for start in range(0, len(ids), _CHUNK):
        batch = ids[start : start + _CHUNK]
        values = ledger.client.mget([layout.result_key(tag, j, key) for j in batch])
        for job_id, value in zip(batch, values, strict=True):
            yield job_id, ([] if value is None else [(key, str(value))])


def _matching(
    ledger: Ledger, ids: list[str], pattern: str
) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    for job_id, values in results_of(ledger.client, ledger.tag, ids):
        yield job_id, [(k, v) for k, v in values.items() if fnmatch.fnmatchcase(k, pattern)]


def summarize(points: Sequence[TrendPoint]) -> dict[str, Any]:
    """How many jobs, how many with a value (and gaps), and the values' min, mean, max."""
    values = [p.value for p in points if p.value is not None]
    return {
        "jobs": len(points),
        "with_value": len(values),
        "gaps": len(points) - len(values),
        "min": min(values) if values else None,
        "max": max(values) if values else None,
        "mean": mean(values) if values else None,
    }


def binned(points: Sequence[TrendPoint], bins: int) -> list[dict[str, Any]]:
    """At most ``bins`` consecutive groups of points (for a chart of 100,000 jobs): each
    with its first and last job, how many jobs, and the min, mean and max of their values
    (None for a group of gaps only)."""
    out = []
    n = len(points)
    for b in range(min(bins, n)):
        part = points[b * n // min(bins, n) : (b + 1) * n // min(bins, n)]
        values = [p.value for p in part if p.value is not None]
        out.append(
            {
                "first": part[0].job_id,
                "last": part[-1].job_id,
                "jobs": len(part),
                "with_value": len(values),
                "min": min(values) if values else None,
                "mean": mean(values) if values else None,
                "max": max(values) if values else None,
            }
        )
    return out


def sparkline(values: Iterable[float | None], width: int | None = None) -> str:
    """Unicode bars, one per value (a space for a gap); with ``width``, values are
    averaged in that many equal bins first (a bin with no value is a gap)."""
    items = list(values)
    if width is not None and len(items) > width > 0:
        binned: list[float | None] = []
        for b in range(width):
            part = [
                v
                for v in items[b * len(items) // width : (b + 1) * len(items) // width]
                if v is not None
            ]
            binned.append(mean(part) if part else None)
        items = binned
    present = [v for v in items if v is not None and math.isfinite(v)]
    if not present:
        return " " * len(items)
    low, high = min(present), max(present)
    span = high - low
    if not math.isfinite(span):  # -1e308 .. 1e308: compare halves instead
        items = [None if v is None else v / 2 for v in items]
        low, high, span = low / 2, high / 2, high / 2 - low / 2
    out = []
    for v in items:
        if v is None or not math.isfinite(v):
            out.append(" ")
        elif span == 0:
            out.append(_BARS[len(_BARS) // 2])
        else:
            out.append(_BARS[min(len(_BARS) - 1, int((v - low) / span * len(_BARS)))])
    return "".join(out)


def ensure_plotting() -> Any:
    """matplotlib's pyplot on its file-only backend, or a UsageError naming the extra."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise UsageError(
            f"--plot needs matplotlib: pip install 'jobledger[analysis]' (import failed: {exc})"
        ) from None
    return plt


PLOT_FORMATS = ("png", "svg", "pdf")


def plot_format(path: str) -> str:
    """The chart format a ``--plot`` file's suffix names; UsageError for another."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in PLOT_FORMATS:
        raise UsageError(f"--plot writes .png, .svg or .pdf files, not {path!r}")
    return suffix


def plot(points: Sequence[TrendPoint], path: str, *, title: str) -> None:
    """A PNG line chart of the points (gaps break the line), with matplotlib."""
    plt = ensure_plotting()
    xs = list(range(1, len(points) + 1))
    ys = [math.nan if p.value is None else p.value for p in points]
    fig, ax = plt.subplots(figsize=(9, 4), dpi=100)
    try:
        ax.plot(xs, ys, marker="o" if len(points) <= 200 else None, markersize=3, linewidth=1)
        ax.set_title(title.replace("$", r"\$"))  # a key's "$" is text, not math
        ax.set_xlabel("job, in submission order")
        ax.set_ylabel("value")
        if 0 < len(points) <= 20:
            ax.set_xticks(xs, [p.job_id for p in points], rotation=45, ha="right", fontsize=8)
        gaps = sum(1 for p in points if p.value is None)
        if gaps:
            ax.text(
                0.99,
                0.02,
                f"{gaps} job(s) without a value",
                transform=ax.transAxes,
                ha="right",
                fontsize=8,
                color="gray",
            )
        ax.grid(True, alpha=0.3)
        fig.tight_layout()
        with replaced_atomically(path) as partial:
            fig.savefig(partial, format=plot_format(path))
    finally:
        plt.close(fig)
