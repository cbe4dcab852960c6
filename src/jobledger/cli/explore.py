"""Commands that take a tag's data elsewhere: export (files) and trend (across jobs)."""

from __future__ import annotations

import shutil
from typing import Any

import click

from jobledger.cli.app import common, parse, states_option
from jobledger.cli.render import console, printable

__all__ = ["export", "trend"]


def _state_filter(text: str | None) -> Any:
    from jobledger.states import parse_states

    return None if text is None else parse_states(text, allow_all=True)


@click.command()
@common
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "json", "jsonl", "parquet"]),
    help="File format (default: from --output's suffix, else csv). Parquet needs the "
    "analysis extra.",
)
@click.option(
    "--output",
    "-o",
    metavar="FILE",
    help="Write to FILE (replaced only once the export is whole); default standard output.",
)
@click.option("--results", is_flag=True, help="Add each job's results, one column per key.")
@click.option("--long", is_flag=True, help="With --results: one row per job and result key.")
@states_option("Only jobs in these states (default: every job of the tag).")
def export(**kwargs: Any) -> None:
    """Every job of the tag as rows: state, times, exit code, usage, resubmission links."""
    from jobledger.errors import UsageError
    from jobledger.export import ensure_pyarrow, format_for, job_table, write

    app, (fmt, output, results, long, states_text) = parse(
        kwargs, "fmt", "output", "results", "long", "states"
    )
    if long and not results:
        raise UsageError("--long is a layout of --results: give both")
    if app.as_json:
        raise UsageError("export writes its own format: use --format json instead of --json")
    fmt = format_for(output, fmt)
    if fmt == "parquet":  # before reading anything: these fail fast
        if output in (None, "-"):
            raise UsageError("parquet is a binary file format: give --output FILE.parquet")
        ensure_pyarrow()
    states = _state_filter(states_text)
    ledger = app.ledger()
    table = job_table(
        ledger, states=states, results=results, long=long, typed_results=fmt == "parquet"
    )
    rows = write(table, fmt, output)
    if output not in (None, "-"):
        click.echo(f"wrote {rows} rows ({len(table.columns)} columns) to {output}", err=True)


@click.command()
@common
@click.argument("key")
@click.option(
    "--agg",
    type=click.Choice(["last", "max", "mean", "min"]),
    default="last",
    show_default=True,
    help="How a job's keys matching a pattern KEY become one value (last: the key that "
    "sorts last, reward_10 after reward_9).",
)
@click.option(
    "--plot",
    metavar="FILE.png",
    help="Also draw a line chart: .png, .svg or .pdf (analysis extra).",
)
@click.option(
    "-n",
    "count",
    type=click.IntRange(min=1),
    default=30,
    show_default=True,
    help="Table rows shown: the newest jobs (the sparkline covers every job).",
)
@click.option("--all", "show_all", is_flag=True, help="Show a table row for every job.")
@states_option("Only jobs in these states (default: every job).")
def trend(**kwargs: Any) -> None:
    """One value of result KEY per job, in submission order: a table and a sparkline.

    KEY is a result key (reward) or a glob pattern (reward_*, *) whose matching keys
    of each job are folded by --agg. Jobs without a numeric value are gaps, not dropped.
    """
    from jobledger.trend import plot, summarize
    from jobledger.trend import trend as compute

    app, (key, agg, plot_path, count, show_all, states_text) = parse(
        kwargs, "key", "agg", "plot", "count", "show_all", "states"
    )
    if plot_path is not None:
        from jobledger.trend import ensure_plotting, plot_format

        plot_format(plot_path)  # a wrong suffix or a missing extra fails before any work
        ensure_plotting()
    ledger = app.ledger()
    points = compute(ledger, key, agg=agg, states=_state_filter(states_text))
    if plot_path is not None:
        plot(points, plot_path, title=f"{ledger.tag}: {key} ({agg})")
    summary = summarize(points)

    def human() -> None:
        _print_trend(ledger.tag, key, agg, points, summary, None if show_all else count)
        if plot_path is not None:
            click.echo(f"chart written to {plot_path}", err=True)

    app.emit(
        {
            "tag": ledger.tag,
            "key": key,
            "agg": agg,
            "summary": summary,
            "points": [p.as_dict() for p in points],
            "plot": plot_path,
        },
        human,
    )


def _print_trend(
    tag: str, key: str, agg: str, points: list[Any], summary: dict[str, Any], rows: int | None
) -> None:
    from jobledger.trend import sparkline

    out = console()
    if not points:
        out.print(f"tag {printable(tag)} has no jobs", markup=False)
        return
    width = max(10, min(len(points), shutil.get_terminal_size((100, 20)).columns - 4))
    title = f"{key} ({agg}) over {len(points)} jobs of {tag}"
    out.print(printable(title), markup=False)
    out.print(f"  {sparkline([p.value for p in points], width)}", markup=False)

    def number(v: float | None) -> str:
        return "-" if v is None else f"{v:.6g}"

    out.print(
        f"  {summary['with_value']} with a value, {summary['gaps']} gaps; "
        f"min {number(summary['min'])}, mean {number(summary['mean'])}, "
        f"max {number(summary['max'])}",
        markup=False,
    )
    if not summary["with_value"]:
        out.print(
            f"  no job has a numeric value of {printable(key)} (jobledger show "
            f"{printable(points[-1].job_id)} lists the newest job's keys)",
            markup=False,
        )
    shown = points if rows is None else points[-rows:]
    if len(shown) < len(points):
        newest = "the newest job" if len(shown) == 1 else f"the newest {len(shown)} jobs"
        out.print(f"  {newest} (--all for every one):", markup=False)
    id_width = max(len("job"), *(len(printable(p.job_id)) for p in shown))
    click.echo(f"  {'job':<{id_width}}  {'state':<19}  {'submitted':<25}  value")
    for p in shown:
        value = number(p.value) if p.value is not None else f"({p.missing})"
        line = f"  {p.job_id:<{id_width}}  {p.state:<19}  {p.submitted_at or '-':<25}  {value}"
        click.echo(printable(line))
