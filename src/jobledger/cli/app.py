"""One invocation of the CLI: its settings, its Redis client, its errors and exit codes.

Commands take the common options, turn them into an :class:`App`, call the library
and hand the data to :meth:`App.emit`; :func:`run` maps what they raise to one line
on stderr and an exit code (2 for bad input, 1 for runtime failures, 130 for Ctrl-C).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import click

from jobledger.cli.render import dumps
from jobledger.config import Settings, resolve
from jobledger.errors import JobledgerError, UsageError

__all__ = [
    "App",
    "common",
    "interruptible",
    "parse",
    "run",
    "scheduler_factory",
    "scheduler_name",
    "scheduler_option",
    "states_option",
]

F = TypeVar("F", bound=Callable[..., Any])
_COMMON = ("tag", "url", "namespace", "config", "password_file", "as_json", "debug")


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
            from jobledger.durability import Durability
            from jobledger.journal import Journal

            self._client = connect(self.settings)
            # Submissions journaled while Redis was unreachable are recorded now.
            journal = Journal(self.settings.home_dir)
            target, durability = connection_target(self.settings), Durability.of(self.settings)
            for entry in journal.replay(self._client, target, durability):
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
            click.echo(dumps(data))
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


def parse(kwargs: dict[str, Any], *names: str) -> tuple[App, list[Any]]:
    """The App built from the common options, and the command's own ``names`` in order."""
    options = {k: kwargs.pop(k) for k in _COMMON}
    return App(options), [kwargs.pop(n) for n in names]


def states_option(help: str) -> Callable[[F], F]:
    """``--state STATE[,STATE...]``, kept as text in ``states`` (each command reads it)."""
    return click.option("--state", "states", metavar="STATE[,STATE...]", help=help)


# --- schedulers -----------------------------------------------------------------


def scheduler_option(func: F) -> F:
    from jobledger.schedulers import NAMES

    return click.option(
        "--scheduler",
        type=click.Choice(NAMES),
        help="Scheduler backend (default: config, else slurm if sbatch is on PATH, else local).",
    )(func)


def scheduler_name(app: App, chosen: str | None) -> str:
    from jobledger.schedulers import default_name

    return chosen or app.settings.scheduler or default_name()


def scheduler_factory(app: App) -> Callable[[str], Any]:
    """``name -> scheduler``, each backend built once per invocation."""
    from jobledger.schedulers import get_scheduler

    cache: dict[str, Any] = {}

    def scheduler(name: str) -> Any:
        if name not in cache:
            cache[name] = get_scheduler(name, home=app.settings.home_dir)
        return cache[name]

    return scheduler


# --- errors and exit codes --------------------------------------------------------


def _fail(message: str, code: int) -> NoReturn:
    # One line always: Redis and redis-server messages sometimes span several.
    one_line = " ".join(line.strip() for line in message.splitlines() if line.strip())
    click.echo(f"jobledger: error: {one_line}", err=True)
    sys.exit(code)


class _Interrupt(BaseException):
    """Ctrl-C, raised past click (which would print a blank line and turn it into Abort)."""


def _on_sigint(signum: int, frame: object) -> None:
    raise _Interrupt


@contextmanager
def interruptible() -> Iterator[None]:
    """Ctrl-C ends the block quietly (exit 0): for views that run until they are stopped."""
    try:
        yield
    except (_Interrupt, KeyboardInterrupt):
        click.echo("", err=True)


class _NotRaised(Exception):
    """Stands for redis-py's errors while redis-py is not imported (none can be raised)."""


def _redis_error() -> type[Exception]:
    """redis.RedisError once redis-py is loaded: ``--help`` and usage errors never load it."""
    module = sys.modules.get("redis.exceptions")
    return module.RedisError if module is not None else _NotRaised


def run(group: click.Group, argv: Sequence[str] | None = None) -> None:
    """Run ``group``: one line per error, exit 2 for bad input, 1 for runtime failures."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or bool(os.environ.get("JOBLEDGER_DEBUG"))
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_sigint)
    try:
        group.main(args=args, prog_name="jobledger", standalone_mode=False)
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
    except _redis_error() as exc:
        if debug:
            raise
        hint = ""
        if str(exc).startswith("MOVED"):  # a plain redis:// URL of a cluster node
            hint = " (this server is a Redis Cluster node: use a redis+cluster:// URL)"
        _fail(f"Redis error: {exc}{hint}", 1)
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
