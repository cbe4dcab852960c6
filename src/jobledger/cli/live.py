"""Views that stay open: ``watch`` (the terminal) and ``dashboard`` (a web page)."""

from __future__ import annotations

import re
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
        """The overview, or the text of why Redis cannot give it now (a view keeps
        trying: a restarting server is shown, not fatal)."""
        import redis

        try:
            return overview(ledger, events=event_count, top=5, top_key=top_key)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            if once:
                raise
            why = " ".join(str(exc).split())
            return f"Redis unreachable ({why}); retrying every {interval:g} s"

    with interruptible():
        if app.as_json or once or not sys.stdout.isatty():
            _watch_lines(app, ledger, take, interval, once)
        else:
            _watch_screen(take, interval)


def _watch_lines(app: Any, ledger: Any, take: Any, interval: float, once: bool) -> None:
    import redis

    seen: str | None = None
    while True:
        view = take()
        if isinstance(view, str):  # Redis away: say so, try again
            click.echo(
                printable(
                    f"{datetime.now(timezone.utc).isoformat(timespec='seconds')} "
                    f"{ledger.tag}: {view}"
                )
            )
            sys.stdout.flush()
            time.sleep(interval)
            continue
        try:
            fresh = ledger.events_after(seen) if seen else []
        except redis.RedisError:  # gone again since: the next refresh says so
            fresh = []
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
            view = take()
            if isinstance(view, str):
                from rich.text import Text

                live.update(Text(printable(view), style="red"), refresh=True)
            else:
                live.update(render_overview(view, interval=interval), refresh=True)
            time.sleep(interval)


@click.command()
@common
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8765,
    show_default=True,
    help="Port to listen on.",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False),
    help="Read the token every request must carry from this file (default: "
    "JOBLEDGER_DASHBOARD_TOKEN, else a new one, printed in the URL).",
)
@click.option(
    "--token",
    help="The token itself (visible to other users in ps: prefer --token-file).",
)
@click.option(
    "--no-token",
    is_flag=True,
    help="No token, for a machine only you use (loopback addresses only).",
)
@click.option(
    "--no-logs",
    is_flag=True,
    help="Do not show the tails of job logs (the files are read as your user).",
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
    updated live; the JSON API behind it is in docs/cli.md. Every request needs the
    token printed in the URL (other users of a shared login node reach 127.0.0.1 too).
    """
    from jobledger.errors import UsageError

    app, (host, port, token_file, token, no_token, no_logs, poll_s) = parse(
        kwargs, "host", "port", "token_file", "token", "no_token", "no_logs", "poll_s"
    )
    try:
        import uvicorn

        from jobledger.dashboard import create_app, is_loopback
    except ImportError as exc:
        raise UsageError(
            f"the dashboard needs the web extra: pip install 'jobledger[web]' ({exc})"
        ) from None
    given = token
    token, shown = _dashboard_token(token, token_file, no_token, host, is_loopback(host))
    if given is not None:
        click.echo(
            "jobledger: warning: --token is visible to other users in ps; prefer "
            "--token-file or JOBLEDGER_DASHBOARD_TOKEN",
            err=True,
        )
    _can_listen(host, port)  # a port in use is one clear line, not uvicorn's log
    client = _read_only_client(app)
    client.ping()  # an unreachable server is told now, not on the first page
    web = create_app(
        client,
        token=token,
        poll_ms=int(poll_s * 1000),
        cookie=f"jobledger_token_{port}",
        logs=not no_logs,
        tag=app.settings.tag or None,  # the page opens on --tag / JOBLEDGER_TAG
    )
    if host in ("0.0.0.0", "::"):  # every address: name the machine, which others can open
        import socket

        shown_host = socket.gethostname()
        click.echo(
            "jobledger: warning: the dashboard speaks plain HTTP to every network this "
            "machine is on; an SSH tunnel to 127.0.0.1 keeps the token off the wire",
            err=True,
        )
    else:
        shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{port}/" + (f"?token={token}" if shown and token else "")
    config = uvicorn.Config(web, host=host, port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)

    def announce() -> None:  # once it listens: Ctrl-C from then on is uvicorn's to handle
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started:
            click.echo(f"jobledger dashboard: {url}  (read-only; Ctrl-C to stop)", err=True)
            if token and not shown:
                click.echo("  open it with ?token=<your token> once (it sets a cookie)", err=True)

    import threading

    threading.Thread(target=announce, daemon=True).start()
    with interruptible():
        server.run()


_TOKEN = re.compile(r"[A-Za-z0-9._~-]{16,200}")


def _dashboard_token(
    given: str | None, token_file: str | None, no_token: bool, host: str, loopback: bool
) -> tuple[str | None, bool]:
    """The token and whether to print it in the URL (a generated one only)."""
    import os
    import secrets
    from pathlib import Path

    from jobledger.errors import UsageError

    if no_token:
        if given or token_file:
            raise UsageError("--no-token contradicts --token/--token-file")
        if not loopback:
            raise UsageError(f"--no-token needs a loopback --host (127.0.0.1), not {host}")
        return None, False
    if token_file:
        path = Path(token_file).expanduser()
        try:
            given = path.read_text(encoding="utf-8").strip()
            mode = path.stat().st_mode
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or str(exc)
            raise UsageError(f"cannot read --token-file {token_file}: {why}") from None
        if not given:
            raise UsageError(f"--token-file {token_file} is empty")
        if mode & 0o077:
            click.echo(
                f"jobledger: warning: {token_file} holds the dashboard's token and is readable "
                f"by others (mode {mode & 0o777:o}); chmod 600 it",
                err=True,
            )
    given = given or os.environ.get("JOBLEDGER_DASHBOARD_TOKEN") or None
    if given is None:
        return secrets.token_urlsafe(24), True
    if not _TOKEN.fullmatch(given):
        raise UsageError(
            "a dashboard token is 16 to 200 of the characters A-Z a-z 0-9 . _ ~ - "
            "(python3 -c 'import secrets; print(secrets.token_urlsafe(24))' makes one)"
        )
    return given, False


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
