"""Commands for plain keys in a namespace, as the seed's redis.config used them."""

from __future__ import annotations

import sys
from typing import Any

import click

from jobledger.cli.app import App, common, parse
from jobledger.cli.render import printable
from jobledger.errors import NotFound, UsageError

__all__ = ["del_cmd", "get_cmd", "keys_cmd", "set_cmd"]


def _namespace(app: App) -> Any:
    from jobledger.ids import validate_namespace
    from jobledger.namespace import Namespace

    if not app.settings.namespace:
        raise UsageError("no namespace: pass --namespace or set namespace in the config")
    validate_namespace(app.settings.namespace)  # bad input beats a slow connection failure
    return Namespace(app.client, app.settings.namespace)


@click.command("keys")
@common
@click.argument("pattern", default="*")
def keys_cmd(**kwargs: Any) -> None:
    """Keys of the namespace matching a glob PATTERN (uses SCAN, never KEYS)."""
    app, (pattern,) = parse(kwargs, "pattern")
    ns = _namespace(app)
    names = ns.keys(pattern)
    app.emit(
        {"namespace": ns.namespace, "keys": names},
        lambda: click.echo("\n".join(map(printable, names))) if names else None,
    )


@click.command("get")
@common
@click.argument("key")
def get_cmd(**kwargs: Any) -> None:
    """Print the value of <namespace>:KEY exactly as stored (as redis-cli GET does)."""
    app, (key,) = parse(kwargs, "key")
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


@click.command("set")
@common
@click.argument("key")
@click.argument("value")
def set_cmd(**kwargs: Any) -> None:
    """Set <namespace>:KEY to VALUE."""
    app, (key, value) = parse(kwargs, "key", "value")
    ns = _namespace(app)
    ns.set(key, value)
    app.emit({"key": key, "value": value}, lambda: None)


@click.command("del")
@common
@click.argument("names", nargs=-1, required=True, metavar="KEY...")
def del_cmd(**kwargs: Any) -> None:
    """Delete <namespace>:KEY for each KEY; prints how many existed."""
    app, (names,) = parse(kwargs, "names")
    ns = _namespace(app)
    deleted = ns.delete(list(names))
    app.emit({"deleted": deleted}, lambda: click.echo(f"deleted {deleted}"))
