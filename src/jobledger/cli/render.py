"""How the CLI prints: escaping of stored data, JSON, tables and the seed-style views.

Everything printed from Redis is data someone else wrote (a job ID, a result value):
it goes through :func:`printable` so a newline or an escape sequence cannot forge
output lines or move the terminal's cursor.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

import click

from jobledger.keys import LAYOUT, KeyLayout
from jobledger.text import json_safe, valid_text

__all__ = [
    "IDS_SHOWN",
    "compact_ids",
    "console",
    "dumps",
    "human_bytes",
    "human_seconds",
    "print_results",
    "printable",
    "render_id_lists",
    "render_status",
    "render_top",
    "shown_value",
]

SEED_SETS = ("ALL", "PENDING_AND_RUNNING", "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT")
IDS_SHOWN = 20
# Result values longer than this are cut in show/last (a 100 MB value took 2 minutes and
# 4 GB to print); --json and get print them whole.
_VALUE_SHOWN = 10_000


class _Escapes(dict[int, str]):
    """str.translate table: each non-printable character as its Python escape (\\n, \\x1b)."""

    def __missing__(self, code: int) -> str:
        char = chr(code)
        self[code] = char if char.isprintable() else repr(char)[1:-1]
        return self[code]


_ESCAPES = _Escapes()


def printable(value: object) -> str:
    """Text safe to print on one line: undecodable bytes and control characters (newline,
    NUL, ESC, ...) shown as Python escapes."""
    text = valid_text(value)
    return text if text.isprintable() else text.translate(_ESCAPES)


def shown_value(value: str) -> str:
    """A result value for show/last: printable, and cut after _VALUE_SHOWN characters."""
    if len(value) <= _VALUE_SHOWN:
        return printable(value)
    try:
        size = len(value.encode("utf-8", "surrogateescape"))  # the stored bytes
    except UnicodeEncodeError:
        size = len(value)
    unit = f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.1f} kB"
    return printable(value[:_VALUE_SHOWN]) + f" ... ({unit} value, truncated; --json has all)"


def dumps(data: Any, *, compact: bool = False) -> str:
    """The CLI's JSON: strict, ASCII-only, indented (``compact``: on one line)."""
    return json.dumps(
        json_safe(data), indent=None if compact else 2, default=str, ensure_ascii=True
    )


def console() -> Any:
    from rich.console import Console

    # emoji=False: a stored ":smile:" is text, not an emoji.
    return Console(highlight=False, soft_wrap=True, emoji=False)


def human_seconds(seconds: float | None, *, clock: bool = False) -> str:
    """``3725`` -> ``1:02:05``; ``2.5`` -> ``2.5 s`` (``clock``: ``0:00:03``); ``None``
    -> ``-``."""
    if seconds is None:
        return "-"
    if seconds < 60 and not clock:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    hms = f"{h}:{m:02d}:{s:02d}"
    return f"{days}-{hms}" if days else hms


def human_bytes(size: float | None) -> str:
    """``1536`` -> ``1.5 KiB``; ``None`` -> ``-``."""
    if size is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


_TASK = re.compile(r"(?P<base>\d+)_(?P<index>\d+)")


def compact_ids(ids: Iterable[str]) -> list[str]:
    """Job IDs with each array's consecutive tasks folded: ``123_[0-3,7]``.

    Order: as given, each array at the position of its first task.
    """
    out: list[str | tuple[str, list[int]]] = []
    arrays: dict[str, list[int]] = {}
    for job_id in ids:
        match = _TASK.fullmatch(job_id)
        if match is None or (len(match["index"]) > 1 and match["index"].startswith("0")):
            out.append(job_id)
            continue
        base = match["base"]
        if base not in arrays:
            arrays[base] = []
            out.append((base, arrays[base]))
        arrays[base].append(int(match["index"]))
    shown: list[str] = []
    for item in out:
        if isinstance(item, str):
            shown.append(item)
            continue
        base, indexes = item
        if len(indexes) == 1:
            shown.append(f"{base}_{indexes[0]}")
            continue
        shown.append(f"{base}_[{','.join(_ranges(sorted(set(indexes))))}]")
    return shown


def _ranges(numbers: Sequence[int]) -> list[str]:
    parts: list[str] = []
    start = prev = numbers[0]
    for n in [*numbers[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return parts


def render_status(
    tag: str,
    snapshot: dict[str, list[str]],
    *,
    tracker: dict[str, str] | None = None,
    stalled: Sequence[str] = (),
    total: int | None = None,
    counts: dict[str, int] | None = None,
    hidden: dict[str, int] | None = None,
    layout: KeyLayout = LAYOUT,
) -> None:
    """Print the seed-style status: each set's name, count and (some) job IDs.

    ``counts``: the jobs per set, when ``snapshot`` lists them folded (``123_[0-99]``)
    or only in part; ``hidden``: per set, how many IDs its list leaves out."""
    counts = counts or {name: len(ids) for name, ids in snapshot.items()}
    total = counts["ALL"] if total is None else total
    where = "" if layout is LAYOUT else f" ({layout.name} key layout)"
    click.echo(click.style(printable(tag), bold=True) + f": {total} jobs{where}")
    for name, ids in snapshot.items():
        if not ids and name not in SEED_SETS:
            continue
        shown = ids[:IDS_SHOWN]
        more = len(ids) - len(shown) + (hidden or {}).get(name, 0)
        text = " ".join(map(printable, shown)) + (f" ... (+{more} more, use --ids)" if more else "")
        set_name = printable(layout.set_name(tag, name))
        click.echo(f"  {set_name:<{len(tag) + 21}} {counts[name]:>6}  {text}".rstrip())
    if stalled:
        names = " ".join(map(printable, stalled[:5])) + (" ..." if len(stalled) > 5 else "")
        click.echo(f"  stalled: {len(stalled)} running job(s) stopped heartbeating: {names}")
    if tracker:
        mode = tracker.get("mode", "ok")
        extra = f": {tracker.get('degraded_reason')}" if mode == "degraded" else ""
        line = f"tracker: last pass {tracker.get('last_pass_at')}, mode {mode}{extra}"
        click.echo(printable(line))
        if tracker.get("last_problem"):
            problem = (
                f"tracker: last problem {tracker.get('last_problem_at')}: {tracker['last_problem']}"
                f" (last pass: {tracker.get('problems', '0')} problem(s))"
            )
            click.echo(printable(problem))


def render_id_lists(
    tag: str,
    snapshot: dict[str, list[str]],
    width: int = 100,
    counts: dict[str, int] | None = None,
    layout: KeyLayout = LAYOUT,
) -> None:
    """Each non-empty set's name and count, then its IDs wrapped into lines of ``width``."""
    counts = counts or {name: len(ids) for name, ids in snapshot.items()}
    for name, ids in snapshot.items():
        if not ids and name not in SEED_SETS:
            continue
        click.echo(printable(f"{layout.set_name(tag, name)} {counts[name]}"))
        line: list[str] = []
        used = 0
        for job_id in map(printable, ids):
            if line and used + 1 + len(job_id) > width - 2:
                click.echo("  " + " ".join(line))
                line, used = [], 0
            line.append(job_id)
            used += len(job_id) + (1 if used else 0)
        if line:
            click.echo("  " + " ".join(line))


def render_top(tag: str, entries: list[Any], layout: KeyLayout = LAYOUT) -> None:
    """Print ranked numeric results as ``rank. value  <tag>-<job>:<key>``."""
    if not entries:
        click.echo("no numeric results")
    for rank, e in enumerate(entries, 1):
        name = layout.result_key(tag, e.job_id, e.key)
        click.echo(f"{rank:>3}. {e.value!r:<24} {printable(name)}")


def print_results(prefix: str, items: dict[str, str]) -> None:
    """Results as the seed's test_lastjob.sh printed them."""
    for key, value in items.items():
        click.echo(f"Key:  {printable(prefix)}:{printable(key)}")
        click.echo(f"Value: {shown_value(value)}")
        click.echo("---")
