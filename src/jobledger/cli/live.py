"""Views that stay open: ``watch`` (the terminal) and ``dashboard`` (a web page)."""

from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from typing import Any

import click

from jobledger.cli.app import common, interruptible, parse
from jobledger.cli.render import dumps, human_seconds, printable

__all__ = ["dashboard", "render_overview", "watch"]

_STATE_STYLE = {
    "PENDING_AND_RUNNING": "cyan",
    "COMPLETED": "green",
    "FAILED": "red",
    "TIMEOUT": "yellow",
    "CANCELLED": "magenta",
    "OUT_OF_MEMORY": "red",
}


def _age(stamp: str | None, now: datetime) -> str:
    if not stamp:
        return "never"
    try:
        then = datetime.fromisoformat(stamp)
    except ValueError:
        return printable(stamp)
    if then.tzinfo is None:
        then = then.replace(tzinfo=timezone.utc)
    return f"{human_seconds(max(0.0, (now - then).total_seconds()))} ago"


def _tracker_line(tracker: dict[str, str], now: datetime) -> str:
    if not tracker:
        return "tracker: none has run for this tag (jobledger track)"
    mode = tracker.get("mode", "ok")
    line = f"tracker: {mode}, last pass {_age(tracker.get('last_pass_at'), now)}"
    if mode == "degraded" and tracker.get("degraded_reason"):
        line += f" ({tracker['degraded_reason']})"
    if tracker.get("moved"):
        line += f", moved {tracker['moved']} of {tracker.get('checked', '?')} checked"
    return printable(line)


def render_overview(view: Any, *, interval: float) -> Any:
    """The full-screen frame of ``watch`` for one :class:`~jobledger.overview.Overview`."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    now = datetime.now(timezone.utc)
    head = Text(f"jobledger watch: tag {view.tag}, {view.counts['ALL']} jobs", style="bold")
    head.append(f"   {view.at}, every {interval:g} s, Ctrl-C to quit", style="dim")

    counts = Table(box=None, show_header=False, pad_edge=False)
    counts.add_column("state")
    counts.add_column("jobs", justify="right")
    for name, n in view.counts.items():
        if name != "ALL" and (n or name in _STATE_STYLE):
            counts.add_row(Text(name, style=_STATE_STYLE.get(name, "")), Text(str(n)))
    stalled = Text(f"stalled: {view.stalled}", style="red" if view.stalled else "dim")
    if view.stalled_ids:
        shown = " ".join(printable(j) for j in view.stalled_ids[:10])
        stalled.append(f"  {shown}{' ...' if view.stalled > 10 else ''}")
    tracker = Text(_tracker_line(view.tracker, now))

    events = Table(box=None, pad_edge=False)
    for name in ("at", "job", "change", "by"):
        events.add_column(name)
    for e in reversed(view.events):
        change = f"{e.get('from') or '(new)'} -> {e.get('to', '?')}"
        if e.get("event"):
            change = e["event"]
        events.add_row(
            *(Text(printable(x)) for x in (e.get("at", ""), e.get("job", ""), change, e.get("by")))
        )
    top = Table(box=None, pad_edge=False)
    for name, justify in (("job", "left"), ("key", "left"), ("value", "right")):
        top.add_column(name, justify=justify)  # type: ignore[arg-type]
    for entry in view.top:
        top.add_row(Text(printable(entry.job_id)), Text(printable(entry.key)), f"{entry.value:.6g}")
    return Group(
        head,
        Panel(Group(counts, stalled, tracker), title="jobs", title_align="left"),
        Panel(
            events if view.events else Text("no events yet"),
            title="newest transitions",
            title_align="left",
        ),
        Panel(
            top if view.top else Text("no numeric results yet"),
            title="top results",
            title_align="left",
        ),
    )


def _plain_line(view: Any) -> str:
    """One line per refresh when the output is not a terminal."""
    parts = [f"{name} {n}" for name, n in view.counts.items() if n or name == "ALL"]
    now = datetime.now(timezone.utc)
    line = f"{view.at} {view.tag}: " + ", ".join(parts)
    line += f"; stalled {view.stalled}; " + _tracker_line(view.tracker, now)
    return printable(line)


@click.command()
@common
@click.option(
    "--interval",
    "-i",
    type=click.FloatRange(min=0.2),
    default=2.0,
    show_default=True,
    help="Seconds between refreshes.",
)
@click.option("--once", is_flag=True, help="Show the view once and exit.")
@click.option(
    "--events",
    "event_count",
    type=click.IntRange(min=0, max=1000),
    default=10,
    show_default=True,
    help="How many of the newest transitions to show.",
)
@click.option("--key", "top_key", help="Top results of this result key only.")
def watch(**kwargs: Any) -> None:
    """A live view of the tag: counts, newest transitions, stalled jobs, top results.

    Reads Redis only (never the scheduler), so any number of people can watch. Not a
    terminal (or --json): one line (or JSON object) per refresh, with the new events.
    """
    from jobledger.ids import validate_result_key
    from jobledger.overview import overview

    app, (interval, once, event_count, top_key) = parse(
        kwargs, "interval", "once", "event_count", "top_key"
    )
    if top_key is not None:
        validate_result_key(top_key)
    ledger = app.ledger()

    def take() -> Any:
        return overview(ledger, events=event_count, top=5, top_key=top_key)

    with interruptible():
        if app.as_json or once or not sys.stdout.isatty():
            _watch_lines(app, ledger, take, interval, once)
        else:
            _watch_screen(take, interval)


def _watch_lines(app: Any, ledger: Any, take: Any, interval: float, once: bool) -> None:
    seen: str | None = None
    while True:
        view = take()
        fresh = ledger.events_after(seen) if seen else []
        if app.as_json:
            data = view.as_dict()
            if seen:
                data["new_events"] = fresh
            click.echo(dumps(data, compact=not once))
        else:
            click.echo(_plain_line(view))
            for e in fresh:
                change = e.get("event") or f"{e.get('from') or '(new)'} -> {e.get('to')}"
                click.echo(printable(f"  {e.get('at')} job {e.get('job')}: {change}"))
        sys.stdout.flush()
        seen = (fresh[-1]["id"] if fresh else None) or seen or view.last_event_id or "0-0"
        if once:
            return
        time.sleep(interval)


def _watch_screen(take: Any, interval: float) -> None:
    from rich.live import Live

    from jobledger.cli.render import console

    with Live(console=console(), screen=True, auto_refresh=False) as live:
        while True:
            live.update(render_overview(take(), interval=interval), refresh=True)
            time.sleep(interval)


@click.command()
@common
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True)
@click.option(
    "--token",
    help="Token every request must carry (default: none on 127.0.0.1; generated and "
    "printed for any other address). Visible to other users in ps: prefer "
    "JOBLEDGER_DASHBOARD_TOKEN.",
)
@click.option(
    "--poll",
    "poll_s",
    type=click.FloatRange(min=0.2, max=60),
    default=1.0,
    show_default=True,
    help="Seconds between the page's checks for new transitions.",
)
def dashboard(**kwargs: Any) -> None:
    """A read-only web dashboard of every tag on this Redis server (web extra).

    Counts per state, a job table filtered, sorted and paged on the server, job pages
    (record, usage, history, results, log tails), failure groups and trend charts,
    updated live; the JSON API behind it is in docs/cli.md.
    """
    import os
    import secrets

    from jobledger.errors import UsageError

    app, (host, port, token, poll_s) = parse(kwargs, "host", "port", "token", "poll_s")
    try:
        import uvicorn

        from jobledger.dashboard import create_app, is_loopback
    except ImportError as exc:
        raise UsageError(
            f"the dashboard needs the web extra: pip install 'jobledger[web]' ({exc})"
        ) from None
    token = token or os.environ.get("JOBLEDGER_DASHBOARD_TOKEN") or None
    generated = False
    if token is None and not is_loopback(host):
        token, generated = secrets.token_urlsafe(24), True
    _can_listen(host, port)  # a port in use is one clear line, not uvicorn's log
    client = _read_only_client(app)
    client.ping()  # an unreachable server is told now, not on the first page
    web = create_app(client, token=token, poll_ms=int(poll_s * 1000))
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{port}/"
    if token is not None and generated:
        url += f"?token={token}"
    config = uvicorn.Config(web, host=host, port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)

    def announce() -> None:  # once it listens: Ctrl-C from then on is uvicorn's to handle
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started:
            click.echo(f"jobledger dashboard: {url}  (read-only; Ctrl-C to stop)", err=True)
            if generated:
                click.echo(
                    "  (a new token for this run: whoever has this URL can read the ledger)",
                    err=True,
                )

    import threading

    threading.Thread(target=announce, daemon=True).start()
    with interruptible():
        server.run()


def _can_listen(host: str, port: int) -> None:
    import socket

    from jobledger.errors import JobledgerError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise JobledgerError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _read_only_client(app: Any) -> Any:
    """A client of the configured server that does not replay the launch journal: the
    dashboard never writes."""
    from jobledger.connection import connect

    return connect(app.settings)
