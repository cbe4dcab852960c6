"""The ``jobledger`` command: parses options, calls the library, prints, picks exit codes."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from jobledger import __version__
from jobledger.config import Settings, resolve
from jobledger.errors import JobledgerError, NotFound, UsageError

__all__ = ["cli", "main"]

F = TypeVar("F", bound=Callable[..., Any])
_SEED_SETS = ("ALL", "PENDING_AND_RUNNING", "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT")
_IDS_SHOWN = 20
# Result values longer than this are cut in show/last (a 100 MB value took 2 minutes and
# 4 GB to print); --json and get print them whole.
_VALUE_SHOWN = 10_000


# --- plumbing ---------------------------------------------------------------


class _Escapes(dict[int, str]):
    """str.translate table: each non-printable character as its Python escape (\\n, \\x1b)."""

    def __missing__(self, code: int) -> str:
        char = chr(code)
        self[code] = char if char.isprintable() else repr(char)[1:-1]
        return self[code]


_ESCAPES = _Escapes()


def _text(value: object) -> str:
    """``value`` as valid text: undecodable bytes (kept as surrogates) as \\x escapes."""
    text = str(value)
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that no decoding produced
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def printable(value: object) -> str:
    """Text safe to print on one line: undecodable bytes and control characters (newline,
    NUL, ESC, ...) shown as Python escapes."""
    text = _text(value)
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


def _json_safe(data: Any) -> Any:
    """``data`` with every string valid Unicode, so the JSON is strict (no lone surrogates)."""
    if isinstance(data, str):
        return data if data.isascii() else _text(data)
    if isinstance(data, dict):
        return {_json_safe(k): _json_safe(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_json_safe(v) for v in data]
    return data


class App:
    """Per-invocation state: resolved settings and a lazily opened Redis client."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.as_json: bool = options.pop("as_json", False)
        options.pop("debug", None)
        self.settings: Settings = resolve(options)
        for warning in self.settings.warnings:
            click.echo(f"jobledger: warning: {warning}", err=True)
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            from jobledger.connection import connect, connection_target
            from jobledger.journal import Journal

            self._client = connect(self.settings)
            # Submissions journaled while Redis was unreachable are recorded now.
            journal = Journal(self.settings.home_dir)
            for entry in journal.replay(self._client, connection_target(self.settings)):
                ids = entry.job_ids
                what = f"job {ids[0]}" if len(ids) == 1 else f"{len(ids)} jobs {ids[0]}..{ids[-1]}"
                click.echo(
                    f"jobledger: recorded {what} of tag {entry.tag} from the journal", err=True
                )
            for path, why in journal.bad:
                click.echo(
                    f"jobledger: warning: journal entry set aside as {path}: {why}", err=True
                )
            for path, conflicts in journal.conflicts:
                click.echo(
                    f"jobledger: warning: the ledger holds {' '.join(conflicts[:5])} for "
                    f"different jobs; the journaled submission is kept in {path}",
                    err=True,
                )
        return self._client

    @property
    def tag(self) -> str:
        from jobledger.ids import validate_tag

        if not self.settings.tag:
            raise UsageError(
                'no tag: pass --tag, set JOBLEDGER_TAG, or put tag = "..." in jobledger.toml'
            )
        return validate_tag(self.settings.tag)

    def ledger(self) -> Any:
        from jobledger.ledger import Ledger

        tag = self.tag  # validate before connecting: bad input beats a slow failure
        return Ledger(self.client, tag)

    def emit(self, data: Any, human: Callable[[], None]) -> None:
        if self.as_json:
            click.echo(json.dumps(_json_safe(data), indent=2, default=str, ensure_ascii=True))
        else:
            human()


def common(func: F) -> F:
    """The options every command takes (so they work after the command name)."""
    options = [
        click.option("--tag", "-t", help="Experiment tag (the seed's job_tag)."),
        click.option("--url", help="Redis URL: redis://, rediss:// or unix://."),
        click.option("--namespace", help="Namespace for plain keys (the seed's namespace)."),
        click.option(
            "--config", "config", type=click.Path(dir_okay=True), help="Config file (TOML)."
        ),
        click.option(
            "--password-file",
            type=click.Path(dir_okay=False),
            help="Read the Redis password from this file (keeps it out of argv).",
        ),
        click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output."),
        click.option("--debug", is_flag=True, help="Show tracebacks on errors."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _app(kwargs: dict[str, Any], *names: str) -> tuple[App, list[Any]]:
    keys = ("tag", "url", "namespace", "config", "password_file", "as_json", "debug")
    options = {k: kwargs.pop(k) for k in keys}
    return App(options), [kwargs.pop(n) for n in names]


def _console() -> Any:
    from rich.console import Console

    # emoji=False: a stored ":smile:" is text, not an emoji.
    return Console(highlight=False, soft_wrap=True, emoji=False)


# --- read side --------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="jobledger")
@click.option("--debug", is_flag=True, hidden=True)
def cli(debug: bool) -> None:
    """Keep the books of batch jobs in Redis.

    Jobs of one experiment share a tag; the ledger keeps their IDs in the seed's
    sets <tag>_ALL, <tag>_PENDING_AND_RUNNING, <tag>_COMPLETED, ... and their
    results in plain keys <tag>-<jobid>:<key>.
    """


def render_status(
    tag: str,
    snapshot: dict[str, list[str]],
    *,
    all_ids: bool = False,
    tracker: dict[str, str] | None = None,
) -> None:
    """Print the seed-style status: each set's name, count and (some) job IDs."""
    console = _console()
    console.print(f"[bold]{tag}[/]: {len(snapshot['ALL'])} jobs")
    for name, ids in snapshot.items():
        if not ids and name not in _SEED_SETS:
            continue
        shown = ids if all_ids else ids[:_IDS_SHOWN]
        more = len(ids) - len(shown)
        text = " ".join(map(printable, shown)) + (f" ... (+{more} more, use --ids)" if more else "")
        # Job IDs are data (seed sets may hold anything): "[/]" must not be read as markup.
        console.print(f"  {tag}_{name:<20} {len(ids):>6}  {text}".rstrip(), markup=False)
    if tracker:
        mode = tracker.get("mode", "ok")
        extra = f": {tracker.get('degraded_reason')}" if mode == "degraded" else ""
        line = f"tracker: last pass {tracker.get('last_pass_at')}, mode {mode}{extra}"
        console.print(printable(line), markup=False)
        if tracker.get("last_problem"):
            problem = (
                f"tracker: last problem {tracker.get('last_problem_at')}: {tracker['last_problem']}"
                f" (last pass: {tracker.get('problems', '0')} problem(s))"
            )
            console.print(printable(problem), markup=False)


def render_top(tag: str, entries: list[Any]) -> None:
    """Print ranked numeric results as ``rank. value  <tag>-<job>:<key>``."""
    from jobledger import keys

    if not entries:
        click.echo("no numeric results")
    for rank, e in enumerate(entries, 1):
        name = keys.result_key(tag, e.job_id, e.key)
        click.echo(f"{rank:>3}. {e.value!r:<24} {printable(name)}")


@cli.command()
@common
@click.option("--ids", "all_ids", is_flag=True, help="List every job ID (default: first 20).")
def status(**kwargs: Any) -> None:
    """Every state set of the tag, with its count and job IDs (seed: test_status.sh)."""
    app, (all_ids,) = _app(kwargs, "all_ids")
    ledger = app.ledger()
    snapshot = ledger.snapshot()

    tracker = ledger.tracker_status()

    def human() -> None:
        render_status(ledger.tag, snapshot, all_ids=all_ids, tracker=tracker)

    app.emit(
        {
            "tag": ledger.tag,
            "counts": {k: len(v) for k, v in snapshot.items()},
            "jobs": snapshot,
            "tracker": tracker,
        },
        human,
    )


def _print_results(prefix: str, items: dict[str, str]) -> None:
    for key, value in items.items():
        click.echo(f"Key:  {printable(prefix)}:{printable(key)}")
        click.echo(f"Value: {shown_value(value)}")
        click.echo("---")


@cli.command()
@common
def last(**kwargs: Any) -> None:
    """All keys/values of the most recent job of the tag (seed: test_lastjob.sh)."""
    from jobledger.store import Results

    app, _ = _app(kwargs)
    ledger = app.ledger()
    job_id = ledger.last_job()
    if job_id is None:
        raise NotFound(f"tag {ledger.tag!r} has no jobs ({ledger.tag}_ALL is empty)")
    res = Results(app.client, ledger.tag, job_id)
    items = res.items()

    def human() -> None:
        click.echo(f"Job {job_id} (tag {ledger.tag}): {len(items)} results")
        _print_results(res.prefix, items)

    app.emit({"tag": ledger.tag, "job_id": job_id, "results": items}, human)


@cli.command()
@common
@click.argument("job_id")
def show(**kwargs: Any) -> None:
    """The record, history and results of one job."""
    from jobledger.ids import validate_job_id
    from jobledger.store import Results

    app, (job_id,) = _app(kwargs, "job_id")
    validate_job_id(job_id)
    ledger = app.ledger()
    view = ledger.job(job_id)
    res = Results(app.client, ledger.tag, job_id)
    items = res.items()
    if not (view.in_all or view.states or view.record or items):
        raise NotFound(f"job {job_id} is not in the ledger of tag {ledger.tag!r}")
    states = [s.value for s in view.states]

    def human() -> None:
        console = _console()
        where = ", ".join(states) or "no state set"
        if len(states) > 1:
            where += "  [red](inconsistent: the job is in several state sets)[/]"
        console.print(f"[bold]Job {job_id}[/] (tag {ledger.tag}): {where}")
        for name, value in sorted(view.record.items()):
            console.print(f"  {name:<14} {printable(value)}", markup=False)
        if view.history:
            console.print("History:")
            for h in view.history:
                if isinstance(h, dict):  # entries written by hand may lack fields
                    g = h.get
                    line = f"  {g('at')}  {g('from') or '(new)'} -> {g('to')}  by {g('by')}"
                else:
                    line = f"  {json.dumps(h)}"
                console.print(printable(line), markup=False)
        console.print(f"Results ({len(items)}):")
        for key, value in items.items():
            console.print(f"  {printable(key)} = {shown_value(value)}", markup=False)

    app.emit(
        {
            "tag": ledger.tag,
            "job_id": job_id,
            "in_all": view.in_all,
            "states": states,
            "record": view.record,
            "history": view.history,
            "results": items,
        },
        human,
    )


@cli.command()
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
def top(**kwargs: Any) -> None:
    """The highest numeric results of one job or across the tag (non-numeric skipped)."""
    from jobledger.ids import validate_job_id
    from jobledger.store import Results, top_results

    app, (count, job_id) = _app(kwargs, "count", "job_id")
    tag = app.tag
    if job_id is not None:
        validate_job_id(job_id)
        ledger = app.ledger()
        res = Results(app.client, tag, job_id)
        if not ledger.job(job_id).in_all and not res.keys():
            raise NotFound(f"job {job_id} is not in the ledger of tag {tag!r}")
        entries = res.top(count)
    else:
        entries = top_results(app.client, tag, count)
    rows = [{"job_id": e.job_id, "key": e.key, "value": e.value} for e in entries]

    app.emit({"tag": tag, "top": rows}, lambda: render_top(tag, entries))


@cli.command()
@common
def tags(**kwargs: Any) -> None:
    """Tags jobledger has seen on this server, with their job counts."""
    from jobledger import keys
    from jobledger.ledger import Ledger

    app, _ = _app(kwargs)
    names = sorted(app.client.smembers(keys.tags_registry()))
    counts = {n: Ledger(app.client, n).counts() for n in names}

    def human() -> None:
        for name, c in counts.items():
            line = f"{name:<30} {c['ALL']:>7} jobs, {c['PENDING_AND_RUNNING']:>6} active"
            click.echo(printable(line))

    app.emit({"tags": counts}, human)


# --- plain keys in a namespace ----------------------------------------------


def _namespace(app: App) -> Any:
    from jobledger.ids import validate_namespace
    from jobledger.namespace import Namespace

    if not app.settings.namespace:
        raise UsageError("no namespace: pass --namespace or set namespace in the config")
    validate_namespace(app.settings.namespace)  # bad input beats a slow connection failure
    return Namespace(app.client, app.settings.namespace)


@cli.command("keys")
@common
@click.argument("pattern", default="*")
def keys_cmd(**kwargs: Any) -> None:
    """Keys of the namespace matching a glob PATTERN (uses SCAN, never KEYS)."""
    app, (pattern,) = _app(kwargs, "pattern")
    ns = _namespace(app)
    names = ns.keys(pattern)
    app.emit(
        {"namespace": ns.namespace, "keys": names},
        lambda: click.echo("\n".join(map(printable, names))) if names else None,
    )


@cli.command("get")
@common
@click.argument("key")
def get_cmd(**kwargs: Any) -> None:
    """Print the value of <namespace>:KEY exactly as stored (as redis-cli GET does)."""
    app, (key,) = _app(kwargs, "key")
    ns = _namespace(app)
    value = ns.get(key)
    if value is None:
        raise NotFound(f"key {ns.namespace}:{key} does not exist")

    def verbatim() -> None:
        # As redis-cli GET prints it: the stored bytes and a newline, nothing escaped.
        out = sys.stdout.buffer
        out.write(value.encode("utf-8", "surrogateescape") + b"\n")
        out.flush()

    app.emit({"key": key, "value": value}, verbatim)


@cli.command("set")
@common
@click.argument("key")
@click.argument("value")
def set_cmd(**kwargs: Any) -> None:
    """Set <namespace>:KEY to VALUE."""
    app, (key, value) = _app(kwargs, "key", "value")
    ns = _namespace(app)
    ns.set(key, value)
    app.emit({"key": key, "value": value}, lambda: None)


@cli.command("del")
@common
@click.argument("names", nargs=-1, required=True, metavar="KEY...")
def del_cmd(**kwargs: Any) -> None:
    """Delete <namespace>:KEY for each KEY; prints how many existed."""
    app, (names,) = _app(kwargs, "names")
    ns = _namespace(app)
    deleted = ns.delete(list(names))
    app.emit({"deleted": deleted}, lambda: click.echo(f"deleted {deleted}"))


# --- maintenance --------------------------------------------------------------


@cli.command()
@common
@click.option("--purge-results", is_flag=True, help="Also delete the tag's result keys.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def cleanup(**kwargs: Any) -> None:
    """Empty the tag's state sets, records and events (seed: test_jobcleanup.sh)."""
    app, (purge, yes) = _app(kwargs, "purge_results", "yes")
    ledger = app.ledger()
    what = "job sets, records, events" + (" AND ALL RESULT KEYS" if purge else "")
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError("cleanup needs confirmation: pass --yes when not on a terminal")
        click.confirm(f"Delete the {what} of tag {ledger.tag!r}?", abort=True, err=True)
    report = ledger.cleanup(purge_results_too=purge)
    data = {"tag": ledger.tag, **vars(report)}
    app.emit(
        data,
        lambda: click.echo(
            f"tag {ledger.tag}: removed {report.jobs} job IDs, {report.records} records, "
            f"{report.events} events"
            + (f", {report.results} result keys" if purge else " (results kept)")
        ),
    )


@cli.command()
@common
@click.option("--repair", is_flag=True, help="Fix what can be fixed safely (each fix is logged).")
def fsck(**kwargs: Any) -> None:
    """Check the tag's ledger: every job in exactly one state set, records, indexes.

    Exits 0 when clean and 1 when problems remain (after --repair, those it
    could not fix).
    """
    from jobledger.fsck import check, repair
    from jobledger.ledger import utcnow

    app, (do_repair,) = _app(kwargs, "repair")
    ledger = app.ledger()
    report = check(app.client, ledger.tag)
    if do_repair and not report.clean:
        report = repair(app.client, ledger.tag, report, now=utcnow())

    def human() -> None:
        for line in report.repaired:
            click.echo(f"repaired {printable(line)}")
        for line in report.skipped:
            click.echo(f"skipped {printable(line)}")
        if report.clean:
            click.echo(f"tag {ledger.tag}: clean")
        for p in report.problems:
            shown = " ".join(p.job_ids[:_IDS_SHOWN])
            more = (
                f" ... (+{len(p.job_ids) - _IDS_SHOWN} more)" if len(p.job_ids) > _IDS_SHOWN else ""
            )
            fix = "" if p.repairable else " (not repairable: inspect by hand)"
            click.echo(f"{p.kind}: {len(p.job_ids)} job(s) {p.description}{fix}")
            click.echo(f"  {printable(shown)}{more}")
            for job_id, why in list(p.detail.items())[:_IDS_SHOWN]:
                click.echo(f"  {printable(job_id)}: {printable(why)}")

    app.emit(report.as_dict(), human)
    if not report.clean:
        sys.exit(1)


@cli.command()
@common
def config(**kwargs: Any) -> None:
    """Show every setting, its value and where it came from (passwords masked)."""
    app, _ = _app(kwargs)
    rows = app.settings.describe()
    defaults: dict[str, tuple[str, str]] = {}
    if not app.settings.scheduler:
        from jobledger.schedulers import default_name

        name = default_name()
        why = "sbatch is on PATH" if name == "slurm" else "no sbatch on PATH"
        defaults["scheduler"] = (name, f"default ({why})")
    if not app.settings.local_max_running:
        from jobledger.schedulers.local import default_max_running

        defaults["local_max_running"] = (str(default_max_running()), "default (the CPUs)")
    rows = [(n, *defaults[n]) if n in defaults else (n, v, src) for n, v, src in rows]

    def human() -> None:
        for name, value, source in rows:
            click.echo(f"{name:<17} {value:<50} {source}".rstrip())

    app.emit({name: {"value": value, "source": src} for name, value, src in rows}, human)


@cli.group()
def server() -> None:
    """Manage the embedded Redis server (used when no URL is configured)."""


def _embedded_home(app: App) -> Path:
    if not app.settings.embedded:
        raise UsageError(
            f"a Redis URL is configured ({app.settings.sources.get('url')}); "
            "the embedded server is not in use"
        )
    return app.settings.home_dir


@server.command("start")
@common
def server_start(**kwargs: Any) -> None:
    """Start the embedded server (no-op if it already runs)."""
    from jobledger import embedded

    app, _ = _app(kwargs)
    paths = embedded.ensure_server(_embedded_home(app))
    info = embedded.server_status(app.settings.home_dir)
    app.emit(info, lambda: click.echo(f"embedded Redis running at {paths.url}"))


@server.command("stop")
@common
def server_stop(**kwargs: Any) -> None:
    """Stop the embedded server; its data is saved in .jobledger/."""
    from jobledger import embedded

    app, _ = _app(kwargs)
    stopped = embedded.stop_server(_embedded_home(app))
    app.emit(
        {"stopped": stopped},
        lambda: click.echo("embedded Redis stopped" if stopped else "embedded Redis not running"),
    )


@server.command("status")
@common
def server_status(**kwargs: Any) -> None:
    """Say whether the embedded server runs, where, and its pid."""
    from jobledger import embedded

    app, _ = _app(kwargs)
    info = embedded.server_status(_embedded_home(app))

    def human() -> None:
        state = f"running (pid {info['pid']})" if info["running"] else "stopped"
        click.echo(f"embedded Redis {state}: {info['url']} (data in {info['data_dir']})")

    app.emit(info, human)
    if not info["running"]:
        sys.exit(3)


# The scheduler commands live in their own module; importing it registers them.
from jobledger import cli_jobs  # noqa: E402, F401

# --- entry point --------------------------------------------------------------


def _fail(message: str, code: int) -> NoReturn:
    # One line always: Redis and redis-server messages sometimes span several.
    one_line = " ".join(line.strip() for line in message.splitlines() if line.strip())
    click.echo(f"jobledger: error: {one_line}", err=True)
    sys.exit(code)


class _Interrupt(BaseException):
    """Ctrl-C, raised past click (which would print a blank line and turn it into Abort)."""


def _on_sigint(signum: int, frame: object) -> None:
    raise _Interrupt


def main(argv: Sequence[str] | None = None) -> None:
    """Run the CLI: one line per error, exit 2 for bad input, 1 for runtime failures."""
    import redis

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or bool(os.environ.get("JOBLEDGER_DEBUG"))
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_sigint)
    try:
        cli.main(args=args, prog_name="jobledger", standalone_mode=False)
    except _Interrupt:
        _fail("interrupted", 130)
    except click.exceptions.Abort as exc:
        # click turns Ctrl-C into Abort, as it does a "no" at a confirmation prompt.
        if isinstance(exc.__context__, KeyboardInterrupt):
            _fail("interrupted", 130)
        _fail("aborted", 1)
    except click.UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `jobledger` (click >= 8.2)
            click.echo(exc.format_message(), err=True)
            sys.exit(2)
        if debug:
            raise
        hint = (
            f" (see 'jobledger {exc.ctx.command_path.partition(' ')[2]} --help')".replace("  ", " ")
            if exc.ctx
            else ""
        )
        _fail(exc.format_message() + hint, 2)
    except click.ClickException as exc:
        if debug:
            raise
        _fail(exc.format_message(), exc.exit_code)
    except JobledgerError as exc:
        if debug:
            raise
        _fail(str(exc), exc.exit_code)
    except redis.RedisError as exc:
        if debug:
            raise
        _fail(f"Redis error: {exc}", 1)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except BrokenPipeError:
        # Output piped into `head`: leave quietly, also when Python flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except OSError as exc:  # e.g. .jobledger/ not writable: a runtime failure, not a bug
        if debug:
            raise
        _fail(str(exc), 1)


if __name__ == "__main__":
    main()
