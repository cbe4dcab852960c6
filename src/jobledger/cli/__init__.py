"""The ``jobledger`` command, built in one place from the command modules.

Dependencies point one way: this module -> the command modules -> :mod:`.app` and
:mod:`.render` -> the library.  No command registers itself by being imported.

A command's module is imported only when that command runs (or shows its help):
``jobledger status`` never pays for the imports of ``launch`` or ``dashboard``, and
``jobledger --help`` lists the commands from :data:`COMMANDS` without importing any.
``tests/test_cli.py`` checks that this index and the modules agree.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import click

from jobledger import __version__
from jobledger.cli.app import run

__all__ = ["COMMANDS", "cli", "main"]

# section -> (command, module under jobledger.cli, its attribute, one line for the index)
COMMANDS: dict[str, list[tuple[str, str, str, str]]] = {
    "Reading one tag's books": [
        ("status", "views", "status", "Each state set of the tag: count and job IDs."),
        ("last", "views", "last", "Every result of the tag's most recent job."),
        ("show", "views", "show", "One job: record, history, results, logs."),
        ("top", "views", "top", "The highest numeric results, of one job or the tag."),
        ("tags", "views", "tags", "Tags on this server, with their job counts."),
    ],
    "Why jobs failed, what they used": [
        ("logs", "analysis", "logs", "A job's stdout or stderr (tail, follow)."),
        ("usage", "analysis", "usage", "Elapsed time, memory and CPU used, per state."),
        ("failures", "analysis", "failures", "Ended jobs grouped by why they failed."),
    ],
    "Seeing the experiment": [
        ("export", "explore", "export", "Jobs and results as CSV, JSON, JSONL or Parquet."),
        ("trend", "explore", "trend", "One result per job in submission order, with a plot."),
        ("watch", "live", "watch", "A live view of the tag in the terminal."),
        ("dashboard", "live", "dashboard", "A read-only web dashboard (web extra)."),
    ],
    "Plain keys of a namespace": [
        ("keys", "plain", "keys_cmd", "Keys of the namespace matching a pattern (SCAN)."),
        ("get", "plain", "get_cmd", "Print <namespace>:KEY as stored."),
        ("set", "plain", "set_cmd", "Set <namespace>:KEY to VALUE."),
        ("del", "plain", "del_cmd", "Delete <namespace>:KEY keys."),
    ],
    "Maintenance": [
        ("cleanup", "maintenance", "cleanup", "Empty the tag's sets, records and events."),
        ("fsck", "maintenance", "fsck", "Check the ledger's consistency; --repair fixes it."),
        ("config", "maintenance", "config", "Every setting, its value and its source."),
        ("server", "maintenance", "server", "Start, stop or inspect the embedded Redis."),
    ],
    "The scheduler": [
        ("launch", "submit", "launch", "Submit a job script and record its job IDs."),
        ("resubmit", "submit", "resubmit", "Submit ended jobs again, as they were."),
        ("demo", "submit", "demo", "Run a small experiment on this machine."),
        ("track", "tracking", "track", "File each job by what its scheduler says."),
        ("adopt", "tracking", "adopt", "Register jobs submitted without jobledger."),
        ("cancel", "tracking", "cancel", "Cancel jobs through their scheduler."),
    ],
}
_WHERE = {name: (module, attr) for rows in COMMANDS.values() for name, module, attr, _ in rows}


class _Commands(click.Group):
    """Loads a command's module on first use; lists the commands from the index."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_WHERE)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        where = _WHERE.get(cmd_name)
        if where is None:
            return None
        command = getattr(importlib.import_module(f"jobledger.cli.{where[0]}"), where[1])
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        for section, rows in COMMANDS.items():
            with formatter.section(section):
                formatter.write_dl([(name, text) for name, _, _, text in rows])


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="jobledger")
@click.option("--debug", is_flag=True, hidden=True)
def cli(debug: bool) -> None:
    """Keep the books of batch jobs in Redis.

    Jobs of one experiment share a tag; the ledger keeps their IDs in the seed's
    sets <tag>_ALL, <tag>_PENDING_AND_RUNNING, <tag>_COMPLETED, ... and their
    results in plain keys <tag>-<jobid>:<key>.  'jobledger COMMAND --help' tells more.
    """


def main(argv: Sequence[str] | None = None) -> None:
    """Run the CLI: one line per error, exit 2 for bad input, 1 for runtime failures."""
    run(cli, argv)


if __name__ == "__main__":
    main()
