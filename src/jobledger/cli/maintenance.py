"""Maintenance commands: cleanup, fsck, config and the embedded server."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from jobledger.cli.app import App, common, parse
from jobledger.cli.render import IDS_SHOWN, printable
from jobledger.errors import UsageError

__all__ = ["cleanup", "config", "fsck", "server"]


@click.command()
@common
@click.option("--purge-results", is_flag=True, help="Also delete the tag's result keys.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def cleanup(**kwargs: Any) -> None:
    """Empty the tag's state sets, records and events (seed: test_jobcleanup.sh)."""
    app, (purge, yes) = parse(kwargs, "purge_results", "yes")
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


@click.command()
@common
@click.option("--repair", is_flag=True, help="Fix what can be fixed safely (each fix is logged).")
def fsck(**kwargs: Any) -> None:
    """Check the tag's ledger: every job in exactly one state set, records, indexes.

    Exits 0 when clean and 1 when problems remain (after --repair, those it
    could not fix).
    """
    from jobledger.fsck import check, repair
    from jobledger.ledger import utcnow

    app, (do_repair,) = parse(kwargs, "repair")
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
            click.echo(f"tag {ledger.tag}: clean ({report.layout} key layout)")
        for p in report.problems:
            shown = " ".join(p.job_ids[:IDS_SHOWN])
            more = (
                f" ... (+{len(p.job_ids) - IDS_SHOWN} more)" if len(p.job_ids) > IDS_SHOWN else ""
            )
            fix = "" if p.repairable else " (not repairable: inspect by hand)"
            click.echo(f"{p.kind}: {len(p.job_ids)} job(s) {p.description}{fix}")
            click.echo(f"  {printable(shown)}{more}")
            for job_id, why in list(p.detail.items())[:IDS_SHOWN]:
                click.echo(f"  {printable(job_id)}: {printable(why)}")

    app.emit(report.as_dict(), human)
    if not report.clean:
        sys.exit(1)


@click.command()
@common
def config(**kwargs: Any) -> None:
    """Show every setting, its value and where it came from (passwords masked)."""
    app, _ = parse(kwargs)
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


@click.group()
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

    app, _ = parse(kwargs)
    paths = embedded.ensure_server(_embedded_home(app))
    info = embedded.server_status(app.settings.home_dir)
    app.emit(info, lambda: click.echo(f"embedded Redis running at {paths.url}"))


@server.command("stop")
@common
def server_stop(**kwargs: Any) -> None:
    """Stop the embedded server; its data is saved in .jobledger/."""
    from jobledger import embedded

    app, _ = parse(kwargs)
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

    app, _ = parse(kwargs)
    info = embedded.server_status(_embedded_home(app))

    def human() -> None:
        state = f"running (pid {info['pid']})" if info["running"] else "stopped"
        click.echo(f"embedded Redis {state}: {info['url']} (data in {info['data_dir']})")

    app.emit(info, human)
    if not info["running"]:
        sys.exit(3)
