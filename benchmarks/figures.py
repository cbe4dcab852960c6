"""A measured figure, the comparison measured beside it, and the target it is held to.

Every figure of ``python -m benchmarks`` is one :class:`Figure`: jobledger's value, the
comparison measured in the same run (the seed's way, or the lower bound), the ratio of
the two and whether the target of issue 10 is met.  Times are seconds, sizes bytes.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Target:
    """What a figure must reach.

    ``kind``: ``speedup`` (comparison / ours >= value), ``share`` (comparison / ours >=
    value: ours runs at that share of the comparison's speed), ``within`` (ours /
    comparison <= value), ``max`` (ours <= value), ``info`` (no target).
    """

    kind: str
    value: float = 0.0
    text: str = ""

    def met(self, ours: float, comparison: float | None) -> bool | None:
        if self.kind == "info":
            return None
        if self.kind == "max":
            return ours <= self.value
        if comparison is None or ours <= 0:
            return None
        if self.kind in ("speedup", "share"):
            return comparison / ours >= self.value
        if self.kind == "within":
            return ours / comparison <= self.value
        raise ValueError(f"unknown target kind {self.kind!r}")


def speedup(times: float) -> Target:
    return Target("speedup", times, f">= {times:g}x faster")


def share(fraction: float, of: str) -> Target:
    return Target("share", fraction, f">= {fraction:.0%} of {of}")


def within(times: float, of: str) -> Target:
    return Target("within", times, f"<= {times:g}x {of}")


def at_most(value: float, unit: str) -> Target:
    return Target("max", value, f"<= {format_value(value, unit)}")


INFO = Target("info")


@dataclass
class Figure:
    row: str
    what: str
    ours: float
    unit: str = "s"  # "s", "B" or "" (a count)
    comparison: float | None = None
    comparison_what: str = ""
    target: Target = INFO
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def met(self) -> bool | None:
        return self.target.met(self.ours, self.comparison)

    @property
    def ratio(self) -> str:
        if self.comparison is None or self.ours <= 0 or self.comparison <= 0:
            return ""
        if self.target.kind == "share":
            return f"{self.comparison / self.ours:.0%} of it"
        if self.unit == "s" and self.comparison > self.ours:
            return f"{self.comparison / self.ours:,.1f}x faster"
        return f"{self.ours / self.comparison:,.2f}x"

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["target"] = self.target.text or None
        data["ratio"] = self.ratio or None
        data["met"] = self.met
        return data

    def line(self) -> str:
        verdict = {True: "met", False: "MISSED", None: ""}[self.met]
        against = (
            f"  vs {format_value(self.comparison, self.unit)} {self.comparison_what}"
            if self.comparison is not None
            else ""
        )
        target = f"  target {self.target.text}" if self.target.text else ""
        ratio = f"  ({self.ratio})" if self.ratio else ""
        head = f"{self.row:>4}  {self.what}: {format_value(self.ours, self.unit)}"
        return f"{head}{against}{ratio}{target}  {verdict}".rstrip()


def format_value(value: float, unit: str) -> str:
    if unit == "s":
        if value >= 10:
            return f"{value:,.1f} s"
        if value >= 1:
            return f"{value:,.2f} s"
        if value >= 0.01:
            return f"{value * 1000:,.0f} ms"
        return f"{value * 1000:,.2f} ms"
    if unit == "B":
        if value >= 10 * 1024**2:
            return f"{value / 1024**2:,.0f} MiB"
        return f"{value:,.0f} B"
    return f"{value:,.0f}{(' ' + unit) if unit else ''}"


def clock(func: Callable[[], object]) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def median_time(func: Callable[[], object], repeat: int, *, warmup: int = 1) -> float:
    """Median wall time of ``repeat`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        func()
    return statistics.median(clock(func) for _ in range(repeat))
