"""Commands that read one tag's books: status, last, show, top and tags."""

from __future__ import annotations

import json
from typing import Any

import click

from jobledger.cli.app import common, parse, states_option
from jobledger.cli.render import (
    IDS_SHOWN,
    compact_ids,
    console,
    human_bytes,
    human_seconds,
    print_results,
    printable,
    render_id_lists,
    render_status,
    render_top,
    shown_value,
)
from jobledger.errors import NotFound, UsageError
from jobledger.states import State
from jobledger.usage import USAGE_FIELDS, usage_from_record

__all__ = ["last", "show", "status", "tags", "top"]


@click.command()
@common
@click.option("--ids", "all_ids", is_flag=True, help="List every job ID (default: first 20).")
@states_option("Only these sets (FAILED, TIMEOUT, RUNNING, ...); with --ids: one ID per line.")
@click.option("--compact", is_flag=True, help="Fold array tasks into ranges: 123_[0-99].")
def status(**kwargs: Any) -> None:
    """Every state set of the tag, with its count and job IDs (seed: test_status.sh)."""
    from jobledger.keys import other_layout
    from jobledger.states import parse_states

    app, (all_ids, states_text, compact) = parse(kwargs, "all_ids", "states", "compact")
    names: list[str] | None = None
    states: list[State] | None = None
    if states_text is not None:
        words = [w.strip() for w in states_text.split(",") if w.strip()]
        wants_all = any(w.upper() == "ALL" for w in words)  # the <tag>_ALL set itself
        rest = [w for w in words if w.upper() != "ALL"]
        states = parse_states(",".join(rest)) if rest else []
        names = (["ALL"] if wants_all else []) + [s.value for s in states]
        if not names:
            raise UsageError("no state given (e.g. --state FAILED,TIMEOUT, or ALL)")
    ledger = app.ledger()
    # The default view shows IDS_SHOWN IDs of each set: no need to sort 100,000 of them.
    every_id = app.as_json or all_ids or compact
    hidden = None
    if every_id:
        snapshot = ledger.snapshot(names)
        counts = {k: len(v) for k, v in snapshot.items()}
        total = counts["ALL"] if "ALL" in counts else ledger.counts()["ALL"]
    else:
        snapshot, with_total = ledger.first_ids(names, IDS_SHOWN)
        counts = {k: with_total[k] for k in snapshot}
        total = with_total["ALL"]
        hidden = {k: counts[k] - len(v) for k, v in snapshot.items()}
    tracker = ledger.tracker_status()
    stalled = ledger.stalled() if states is None or State.PENDING_AND_RUNNING in states else []
    shown = {k: compact_ids(v) for k, v in snapshot.items()} if compact else snapshot

    def human() -> None:
        if names is not None and all_ids:
            # For xargs: IDs only, one per line, in the order of the sets asked for.
            for name in names or []:
                for job_id in shown[name]:
                    click.echo(printable(job_id))
            return
        if all_ids:
            render_id_lists(ledger.tag, shown, counts=counts, layout=ledger.layout)
            return
        render_status(
            ledger.tag,
            shown,
            tracker=tracker,
            stalled=stalled,
            total=total,
            counts=counts,
            hidden=hidden,
            layout=ledger.layout,
        )

    data: dict[str, Any] = {
        "tag": ledger.tag,
        "layout": ledger.layout.name,
        "counts": counts,
        "jobs": shown,
        "tracker": tracker,
        "stalled": len(stalled),
        "stalled_ids": stalled,
    }
    elsewhere = ledger.jobs_in_other_layout()
    if elsewhere:
        data["other_layout_jobs"] = elsewhere
        other = other_layout(ledger.layout).name
        click.echo(
            f"jobledger: warning: {elsewhere} job(s) of tag {ledger.tag} are under the {other} "
            f"key layout's names, which this {ledger.layout.name}-layout connection never "
            "reads (see docs/data-model.md, two key layouts)",
            err=True,
        )
    app.emit(data, human)


@click.command()
@common
def last(**kwargs: Any) -> None:
    """All keys/values of the most recent job of the tag (seed: test_lastjob.sh)."""
    from jobledger.store import Results

    app, _ = parse(kwargs)
    ledger = app.ledger()
    job_id = ledger.last_job()
    if job_id is None:
        raise NotFound(
            f"tag {ledger.tag!r} has no jobs ({ledger.layout.all_set(ledger.tag)} is empty)"
        )
    res = Results(app.client, ledger.tag, job_id)
    items = res.items()

    def human() -> None:
        click.echo(f"Job {job_id} (tag {ledger.tag}): {len(items)} results")
        print_results(res.prefix, items)

    app.emit({"tag": ledger.tag, "job_id": job_id, "results": items}, human)


@click.command()
@common
@click.argument("job_id")
def show(**kwargs: Any) -> None:
    """The record, history and results of one job."""
    from jobledger.details import job_details
    from jobledger.ids import validate_job_id

    app, (job_id,) = parse(kwargs, "job_id")
    validate_job_id(job_id)  # bad input is told before connecting
    ledger = app.ledger()
    data = job_details(ledger, job_id)
    states, record, logs = data["states"], data["record"], data["logs"]
    stalled, items = data["stalled_since"], data["results"]

    def human() -> None:
        out = console()
        where = ", ".join(states) or "no state set"
        if len(states) > 1:
            where += "  [red](inconsistent: the job is in several state sets)[/]"
        out.print(f"[bold]Job {job_id}[/] (tag {ledger.tag}): {where}")
        if stalled:
            out.print(f"  [red]stalled[/]: no heartbeat since {printable(stalled)}")
        for name, value in sorted(record.items()):
            if name not in _SHOWN_APART:
                out.print(f"  {name:<14} {printable(value)}", markup=False)
        used = usage_from_record(record)
        if used is not None:
            out.print("Usage:")
            out.print(f"  {usage_line(used)}", markup=False)
        if logs["stdout"] or logs["stderr"]:
            out.print("Logs:")
            for stream in ("stdout", "stderr"):
                out.print(f"  {stream:<6} {printable(logs[stream] or '-')}", markup=False)
        if logs["stderr_tail"]:
            out.print("Last lines of stderr:")
            for line in logs["stderr_tail"]:
                out.print(f"  | {printable(line)}", markup=False)
        if data["history"]:
            out.print("History:")
            for h in data["history"]:
                if isinstance(h, dict):  # entries written by hand may lack fields
                    g = h.get
                    line = f"  {g('at')}  {g('from') or '(new)'} -> {g('to')}  by {g('by')}"
                else:
                    line = f"  {json.dumps(h)}"
                out.print(printable(line), markup=False)
        out.print(f"Results ({len(items)}):")
        for key, value in items.items():
            out.print(f"  {printable(key)} = {shown_value(value)}", markup=False)

    app.emit(data, human)


# Shown in their own sections of `show`, not among the record's fields.
_SHOWN_APART = frozenset({*USAGE_FIELDS, "stdout", "stderr", "stderr_last", "stalled_since"})


def usage_line(u: Any) -> str:
    """``elapsed 0:01:05, CPU 0:00:58 (89% of 1 CPU), max RSS 1.2 GiB (60% of 2.0 GiB)``."""
    parts = [f"elapsed {human_seconds(u.elapsed_s)}"]
    if u.cpu_s is not None:
        eff = u.cpu_efficiency
        cpus = f"{u.req_cpus} CPU" + ("s" if (u.req_cpus or 0) > 1 else "")
        parts.append(
            f"CPU {human_seconds(u.cpu_s)}"
            + (f" ({100 * eff:.0f}% of {cpus})" if eff is not None else "")
        )
    if u.max_rss_bytes is not None:
        mem = u.mem_efficiency
        parts.append(
            f"max RSS {human_bytes(u.max_rss_bytes)}"
            + (f" ({100 * mem:.0f}% of {human_bytes(u.req_mem_bytes)})" if mem is not None else "")
        )
    return ", ".join(parts)


@click.command()
@common
@click.option(
    "-n",
    "count",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="How many results to show.",
)
@click.option("--job", "job_id", help="Only this job's results.")
@click.option("--key", help="Only this result key (e.g. --key reward).")
@click.option("--asc", "ascending", is_flag=True, help="Lowest first (for losses, errors).")
def top(**kwargs: Any) -> None:
    """The highest numeric results of one job or across the tag (non-numeric skipped)."""
    from jobledger.ids import validate_job_id, validate_result_key
    from jobledger.keys import layout_for
    from jobledger.store import Results, top_results

    app, (count, job_id, key, ascending) = parse(kwargs, "count", "job_id", "key", "ascending")
    tag = app.tag
    if key is not None:
        validate_result_key(key)
    if job_id is not None:
        validate_job_id(job_id)
        ledger = app.ledger()
        res = Results(app.client, tag, job_id)
        if not ledger.job(job_id).in_all and not res.keys():
            raise NotFound(f"job {job_id} is not in the ledger of tag {tag!r}")
        entries = res.top(count, key=key, ascending=ascending)
    else:
        entries = top_results(app.client, tag, count, key=key, ascending=ascending)
    rows = [{"job_id": e.job_id, "key": e.key, "value": e.value} for e in entries]

    app.emit({"tag": tag, "top": rows}, lambda: render_top(tag, entries, layout_for(app.client)))


@click.command()
@common
def tags(**kwargs: Any) -> None:
    """Tags jobledger has seen on this server, with their job counts."""
    from jobledger.keys import layout_for
    from jobledger.ledger import Ledger

    app, _ = parse(kwargs)
    from jobledger.ids import is_tag

    # A name written into the registry by hand that is no tag is skipped, not fatal.
    names = sorted(
        n for n in app.client.smembers(layout_for(app.client).tags_registry()) if is_tag(n)
    )
    counts = {n: Ledger(app.client, n).counts() for n in names}

    def human() -> None:
        if not counts:
            click.echo("no tags yet on this server (jobledger launch --tag NAME script.sh)")
        for name, c in counts.items():
            line = f"{name:<30} {c['ALL']:>7} jobs, {c['PENDING_AND_RUNNING']:>6} active"
            click.echo(printable(line))

    app.emit({"tags": counts}, human)
