"""The ``jobledger`` command, built in one place from the command modules.

Dependencies point one way: this module -> the command modules -> :mod:`.app` and
:mod:`.render` -> the library.  No command registers itself by being imported.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from jobledger import __version__
from jobledger.cli import analysis, explore, live, maintenance, plain, submit, tracking, views
from jobledger.cli.app import run

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="jobledger")
@click.option("--debug", is_flag=True, hidden=True)
def cli(debug: bool) -> None:
    """Keep the books of batch jobs in Redis.

    Jobs of one experiment share a tag; the ledger keeps their IDs in the seed's
    sets <tag>_ALL, <tag>_PENDING_AND_RUNNING, <tag>_COMPLETED, ... and their
    results in plain keys <tag>-<jobid>:<key>.
    """


for _command in (
    # reading one tag's books
    views.status,
    views.last,
    views.show,
    views.top,
    views.tags,
    # why jobs failed, what they used
    analysis.logs,
    analysis.usage,
    analysis.failures,
    # seeing the experiment
    explore.export,
    explore.trend,
    live.watch,
    live.dashboard,
    # plain keys of a namespace
    plain.keys_cmd,
    plain.get_cmd,
    plain.set_cmd,
    plain.del_cmd,
    # maintenance
    maintenance.cleanup,
    maintenance.fsck,
    maintenance.config,
    maintenance.server,
    # the scheduler
    submit.launch,
    submit.resubmit,
    submit.demo,
    tracking.track,
    tracking.adopt,
    tracking.cancel,
):
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the CLI: one line per error, exit 2 for bad input, 1 for runtime failures."""
    run(cli, argv)


if __name__ == "__main__":
    main()
