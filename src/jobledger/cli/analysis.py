"""Commands that say why jobs failed and what they used: logs, usage and failures."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from jobledger.cli.app import App, common, parse, states_option
from jobledger.cli.render import human_bytes, human_seconds, printable
from jobledger.errors import NotFound, UsageError
from jobledger.states import TERMINAL_STATES, State

__all__ = ["failures", "logs", "usage"]

_FOLLOW_POLL_S = 0.5
_STATE_POLL_S = 2.0
_GROUPS_SHOWN = 20


def _job(app: App, job_id: str) -> Any:
    from jobledger.ids import validate_job_id

    validate_job_id(job_id)
    ledger = app.ledger()
    view = ledger.job(job_id)
    if not (view.in_all or view.record):
        raise NotFound(f"job {job_id} is not in the ledger of tag {ledger.tag!r}")
    return ledger, view


def log_path(job_id: str, record: dict[str, str], stream: str) -> str:
    """The file of one stream of a job; NotFound saying why when it cannot be told."""
    from jobledger.logs import job_logs

    paths = job_logs(job_id, record)
    pattern = paths.pattern(stream)
    if pattern is None:
        raise NotFound(
            f"job {job_id} has no recorded {stream} file (it was adopted, or launched by a "
            "jobledger before 0.3); look in its work directory"
        )
    path = paths.path(stream)
    if path is None:
        raise NotFound(
            f"the {stream} of job {job_id} is {pattern}; the tracker fills in what that "
            "needs (the job's own number, its node) once the job runs"
        )
    return path


@click.command()
@common
@click.argument("job_id")
@click.option("--out", "stream", flag_value="stdout", default=True, help="Its stdout (default).")
@click.option("--err", "stream", flag_value="stderr", help="Its stderr.")
@click.option("-n", "lines", type=click.IntRange(min=0), help="Only the last LINES lines.")
@click.option(
    "-f", "--follow", is_flag=True, help="Keep printing what the job writes until it ends."
)
def logs(**kwargs: Any) -> None:
    """Print a job's stdout or stderr file (the tail with -n; -f follows it)."""
    from jobledger.logs import chunks, open_log, tail

    app, (job_id, stream, lines, follow) = parse(kwargs, "job_id", "stream", "lines", "follow")
    if follow and app.as_json:
        raise UsageError("--follow prints as the job writes; it cannot be --json")
    ledger, view = _job(app, job_id)
    if follow:
        view = _when_known(ledger, view, stream)
    path = log_path(job_id, view.record, stream)
    if follow:
        _follow(ledger, job_id, path, view.record, 10 if lines is None else lines)
        return
    fd = open_log(job_id, path, view.record)
    try:
        if app.as_json:
            found, _ = (
                tail(fd, lines) if lines is not None else (b"".join(chunks(fd)).split(b"\n"), 0)
            )
            if lines is None and found and found[-1] == b"":
                found.pop()
            text = [line.decode("utf-8", "surrogateescape") for line in found]
            app.emit(
                {
                    "tag": ledger.tag,
                    "job_id": job_id,
                    "stream": stream,
                    "path": path,
                    "lines": text,
                },
                lambda: None,
            )
            return
        out = sys.stdout.buffer
        if lines is not None:
            found, _ = tail(fd, lines)
            out.write(b"".join(line + b"\n" for line in found))
        else:
            for data in chunks(fd):
                out.write(data)
        out.flush()
    finally:
        os.close(fd)


def _when_known(ledger: Any, view: Any, stream: str) -> Any:
    """The job's view once its file's path can be told: a pending job's pattern may need
    what the tracker records when it starts (its node, an array task's own number)."""
    from jobledger.logs import job_logs

    while True:
        paths = job_logs(view.job_id, view.record)
        running = view.states == [State.PENDING_AND_RUNNING]
        if paths.path(stream) is not None or paths.pattern(stream) is None or not running:
            return view
        time.sleep(_STATE_POLL_S)
        view = ledger.job(view.job_id)


def _follow(ledger: Any, job_id: str, path: str, record: dict[str, str], lines: int) -> None:
    """``tail -f`` until the job has ended and everything it wrote is printed."""
    from jobledger.logs import chunks, elsewhere, open_log, tail

    out = sys.stdout.buffer
    running = ledger.job(job_id).states == [State.PENDING_AND_RUNNING]
    while running and not Path(path).exists():  # a pending job's file appears when it starts
        away = elsewhere(job_id, path, record)
        if away:
            raise NotFound(away)
        time.sleep(_FOLLOW_POLL_S)
        running = ledger.job(job_id).states == [State.PENDING_AND_RUNNING]
    fd = open_log(job_id, path, record)
    try:
        found, offset = tail(fd, lines)
        out.write(b"".join(line + b"\n" for line in found))
        out.flush()
        checked = time.monotonic()
        while True:
            if os.fstat(fd).st_size < offset:
                offset = 0  # truncated: start over, as tail -f does
            wrote = False
            for data in chunks(fd, offset):
                out.write(data)
                offset += len(data)
                wrote = True
            out.flush()
            if not running:
                return  # the job had ended before this last read
            if not wrote:
                time.sleep(_FOLLOW_POLL_S)
            if time.monotonic() - checked >= _STATE_POLL_S:
                checked = time.monotonic()
                running = ledger.job(job_id).states == [State.PENDING_AND_RUNNING]
    finally:
        os.close(fd)


# --- usage ------------------------------------------------------------------------------


def _states(
    text: str | None, default: tuple[State, ...], every: tuple[State, ...] = tuple(State)
) -> list[State]:
    """The states of a --state option: ``default`` when not given, ``every`` for ALL."""
    from jobledger.states import parse_states

    if not text:
        return list(default)
    if any(word.strip().upper() == "ALL" for word in text.split(",")):
        return list(every)
    return parse_states(text)


@click.command()
@common
@states_option("Only jobs in these states (default: every ended job).")
@click.option(
    "-n",
    "count",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="How many of the jobs that used the most to list.",
)
def usage(**kwargs: Any) -> None:
    """What the tag's jobs used: elapsed time, peak memory, CPU and memory efficiency."""
    from jobledger.usage import USAGE_FIELDS, summarize, usage_from_record

    app, (states_text, count) = parse(kwargs, "states", "count")
    states = _states(states_text, TERMINAL_STATES)
    ledger = app.ledger()
    members = ledger.snapshot([s.value for s in states])
    per_state: dict[str, Any] = {}
    measured: list[tuple[str, str, Any]] = []
    for state in states:
        ids = members[state.value]
        if not ids:
            continue
        found = [
            (job_id, u)
            for job_id, record in ledger.records(ids, fields=USAGE_FIELDS)
            if (u := usage_from_record(record)) is not None
        ]
        per_state[state.value] = {"count": len(ids), **summarize(u for _, u in found)}
        measured += [(job_id, state.value, u) for job_id, u in found]
    most_memory = sorted(
        (m for m in measured if m[2].max_rss_bytes is not None), key=lambda m: -m[2].max_rss_bytes
    )[:count]
    longest = sorted(
        (m for m in measured if m[2].elapsed_s is not None), key=lambda m: -m[2].elapsed_s
    )[:count]

    def row(job_id: str, state: str, u: Any) -> dict[str, Any]:
        return {"job_id": job_id, "state": state, **u.as_dict()}

    data = {
        "tag": ledger.tag,
        "states": per_state,
        "most_memory": [row(*m) for m in most_memory],
        "longest": [row(*m) for m in longest],
    }
    app.emit(data, lambda: _print_usage(ledger.tag, per_state, most_memory, longest))


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _print_usage(tag: str, per_state: dict[str, Any], most: list[Any], longest: list[Any]) -> None:
    if not per_state:
        click.echo(f"tag {tag}: no ended jobs in these states")
        return
    header = (
        f"{'state':<20} {'jobs':>6} {'measured':>8}  {'elapsed med/max':>19}  "
        f"{'max RSS med/max':>21}  {'CPU eff med':>11}  {'mem eff med':>11}"
    )
    click.echo(header)

    def hs(seconds: float | None) -> str:
        return human_seconds(seconds, clock=True)  # one format per column

    for state, s in per_state.items():
        e, r = s["elapsed_s"], s["max_rss_bytes"]
        click.echo(
            f"{state:<20} {s['count']:>6} {e['measured']:>8}  "
            f"{hs(e['median']) + ' / ' + hs(e['max']):>19}  "
            f"{human_bytes(r['median']) + ' / ' + human_bytes(r['max']):>21}  "
            f"{_percent(s['cpu_efficiency']['median']):>11}  "
            f"{_percent(s['mem_efficiency']['median']):>11}"
        )
    if most:
        click.echo("Most memory:")
        for job_id, state, u in most:
            share = f" ({_percent(u.mem_efficiency)} of requested)" if u.mem_efficiency else ""
            click.echo(
                printable(f"  {job_id:<14} {state:<12} {human_bytes(u.max_rss_bytes)}{share}")
            )
    if longest:
        click.echo("Longest:")
        for job_id, state, u in longest:
            eff = f" (CPU {_percent(u.cpu_efficiency)})" if u.cpu_efficiency is not None else ""
            click.echo(printable(f"  {job_id:<14} {state:<12} {human_seconds(u.elapsed_s)}{eff}"))


# --- failures ---------------------------------------------------------------------------


@click.command()
@common
@states_option("Only these end states (default: every one but COMPLETED).")
@click.option("--resubmitted", is_flag=True, help="Also group jobs that were already resubmitted.")
def failures(**kwargs: Any) -> None:
    """Jobs that ended other than COMPLETED, grouped by state, exit code, reason and
    the last line of stderr (numbers, paths and hex IDs normalised away)."""
    from jobledger.failures import FAILURE_STATES, tag_failures

    app, (states_text, resubmitted) = parse(kwargs, "states", "resubmitted")
    states = _states(states_text, FAILURE_STATES, every=FAILURE_STATES)
    ledger = app.ledger()
    found = tag_failures(ledger, states, resubmitted=resubmitted)
    groups = found.groups
    total = sum(g.count for g in groups)

    def human() -> None:
        left_out = (
            f"; {found.resubmitted} already resubmitted, not grouped (--resubmitted)"
            if found.resubmitted
            else ""
        )
        if not groups:
            click.echo(f"tag {ledger.tag}: no failed jobs{left_out}")
            return
        click.echo(f"tag {ledger.tag}: {total} job(s) in {len(groups)} group(s){left_out}")
        for number, g in enumerate(groups[:_GROUPS_SHOWN], 1):
            message = g.message or "(empty stderr)"
            why = " ".join(p for p in (g.reason, message) if p)
            click.echo(printable(f"{number:>3}. {g.count:>6} x {g.state} {g.exit}: {why}"))
            examples = g.examples
            more = f" (+{g.count - len(examples)} more)" if g.count > len(examples) else ""
            click.echo(printable(f"       e.g. {' '.join(examples)}{more}"))
        if len(groups) > _GROUPS_SHOWN:
            click.echo(f"... {len(groups) - _GROUPS_SHOWN} more group(s): --json lists them all")
        also = f" --state {','.join(s.value for s in states)}" if states_text else ""
        also += " --again" if resubmitted else ""
        click.echo(f"Resubmit one group: jobledger resubmit --group N{also}")

    app.emit(
        {
            "tag": ledger.tag,
            "total": total,
            "resubmitted_not_grouped": found.resubmitted,
            "groups": [g.as_dict(n) for n, g in enumerate(groups, 1)],
        },
        human,
    )
