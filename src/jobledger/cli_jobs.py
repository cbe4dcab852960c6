"""CLI commands that touch a scheduler: launch, track, adopt, cancel and demo."""

from __future__ import annotations

import dataclasses
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from jobledger.cli import App, _app, cli, common, printable
from jobledger.errors import JobledgerError, NotFound, UsageError
from jobledger.ledger import utcnow
from jobledger.states import State

__all__ = ["adopt", "cancel", "demo", "launch", "track"]


def _scheduler_option(func: Any) -> Any:
    from jobledger.schedulers import NAMES

    return click.option(
        "--scheduler",
        type=click.Choice(NAMES),
        help="Scheduler backend (default: config, else slurm if sbatch is on PATH, else local).",
    )(func)


def _scheduler_name(app: App, chosen: str | None) -> str:
    from jobledger.schedulers import default_name

    return chosen or app.settings.scheduler or default_name()


def _scheduler_factory(app: App) -> Any:
    from jobledger.schedulers import get_scheduler

    cache: dict[str, Any] = {}

    def scheduler(name: str) -> Any:
        if name not in cache:
            cache[name] = get_scheduler(name, home=app.settings.home_dir)
        return cache[name]

    return scheduler


@cli.command(context_settings={"ignore_unknown_options": False})
@common
@_scheduler_option
@click.option("--name", help="Job name (default: the tag, as the seed's -J did).")
@click.option(
    "--time",
    "time_limit",
    help="Time limit, SLURM format: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS "
    "(local scheduler: default from the script's #SBATCH --time line).",
)
@click.option("--array", help="Array spec, SLURM format (1-10, 1-9:2, 1-100%5).")
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the job's .out/.err files (default: ./outerr, created if missing).",
)
@click.option(
    "--max-running",
    type=click.IntRange(1, 99_999),
    help="Local scheduler: at most this many local jobs run at once on this machine "
    "(default: local_max_running in the config, else the number of CPUs).",
)
@click.option("--dry-run", is_flag=True, help="Show what would be submitted; submit nothing.")
@click.argument("script", type=click.Path(path_type=Path))
@click.argument("scheduler_args", nargs=-1, type=click.UNPROCESSED)
def launch(**kwargs: Any) -> None:
    """Submit SCRIPT and record its job ID(s) in <tag>_ALL and <tag>_PENDING_AND_RUNNING.

    Arguments after `--` go to the scheduler unchanged (e.g. `-- --partition=gpu`).
    """
    from jobledger.connection import connect
    from jobledger.errors import Interrupted
    from jobledger.launch import check_script, job_environment, validate_request
    from jobledger.launch import launch as do_launch
    from jobledger.schedulers import SubmitRequest, get_scheduler

    app, (chosen, name, time_limit, array, output_dir, max_running, dry_run, script, extra) = _app(
        kwargs,
        "scheduler",
        "name",
        "time_limit",
        "array",
        "output_dir",
        "max_running",
        "dry_run",
        "script",
        "scheduler_args",
    )
    tag = app.tag
    scheduler = get_scheduler(_scheduler_name(app, chosen), home=app.settings.home_dir)
    if max_running is not None and scheduler.allocates_ids:
        raise UsageError(
            f"--max-running is for the local scheduler; with {scheduler.name}, limit an "
            "array with its %N (--array 1-100%5)"
        )
    if max_running is None and app.settings.local_max_running:
        max_running = int(app.settings.local_max_running)
    if dry_run:
        validate_request(time_limit=time_limit, array=array, name=name)
        script = check_script(script)
        env = job_environment(app.settings, tag, write=False)
        request = SubmitRequest(
            script=script,
            tag=tag,
            name=name or tag,
            work_dir=Path.cwd(),
            output_dir=(output_dir or Path("outerr")).resolve(),
            env=env,
            time_limit=time_limit,
            array=array,
            extra_args=extra,
            max_running=max_running,
        )
        argv = scheduler.describe(request)
        data: dict[str, Any] = {
            "scheduler": scheduler.name,
            "argv": argv,
            "env": env,
            "script": str(script),
        }

        def human_dry() -> None:
            click.echo(f"would submit {script} with the {scheduler.name} scheduler")
            if argv:
                click.echo("  " + " ".join(argv) + " < " + str(script))
            for key, value in env.items():
                click.echo(f"  {key}={value}")

        app.emit(data, human_dry)
        return
    result = do_launch(
        script,
        tag=tag,
        settings=app.settings,
        scheduler=scheduler,
        connect=lambda: connect(app.settings),  # no journal replay before our own entries
        name=name,
        time_limit=time_limit,
        array=array,
        output_dir=output_dir,
        extra_args=tuple(extra),
        max_running=max_running,
        now=utcnow(),
    )
    for warning in (*result.warnings, *([result.journal_note] if result.journal_note else [])):
        click.echo(f"jobledger: warning: {warning}", err=True)
    data = {
        "tag": tag,
        "scheduler": result.scheduler,
        "job_ids": list(result.job_ids),
        "recorded": result.recorded,
    }
    app.emit(data, lambda: click.echo("\n".join(result.job_ids)))
    if result.interrupted:
        how = "recorded" if result.recorded else "journaled"
        count = len(result.job_ids)
        raise Interrupted(
            f"interrupted: the scheduler had accepted {count} job(s), all {how} "
            f"({result.job_ids[0]}{' ... ' + result.job_ids[-1] if count > 1 else ''})",
            result.interrupted,
        )


def _configure_logging(level: int) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@cli.command()
@common
@_scheduler_option
@click.option("--once", is_flag=True, help="Do one pass and exit (for cron, or past jobs).")
@click.option("--all-tags", is_flag=True, help="Track every tag known to this Redis server.")
@click.option(
    "--interval",
    "interval_s",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="Seconds between passes (sacct load: keep it >= 30 on shared clusters).",
)
@click.option(
    "--lost-grace",
    "lost_grace_s",
    type=click.FloatRange(min=0),
    default=600.0,
    show_default=True,
    help="Seconds a job may be unknown to the scheduler before it is filed as LOST.",
)
@click.option("--quiet", "-q", is_flag=True, help="Log warnings only.")
@click.option(
    "--lease-ttl",
    "lease_ttl_s",
    type=click.FloatRange(min=0.5),
    default=90.0,
    hidden=True,  # for fault tests: a killed tracker blocks the others this long
    help="Seconds the tracker lease lasts without renewal (renewed every pass).",
)
def track(**kwargs: Any) -> None:
    """File each job by what its scheduler says: COMPLETED, FAILED, TIMEOUT, CANCELLED, ..."""
    from jobledger import keys
    from jobledger.connection import connection_target
    from jobledger.tracker import Tracker, TrackerSettings

    app, (chosen, once, all_tags, interval_s, lost_grace_s, quiet, lease_ttl_s) = _app(
        kwargs,
        "scheduler",
        "once",
        "all_tags",
        "interval_s",
        "lost_grace_s",
        "quiet",
        "lease_ttl_s",
    )
    if all_tags:

        def tags() -> list[str]:
            return sorted(str(t) for t in app.client.smembers(keys.tags_registry()))

    else:
        tag = app.tag

        def tags() -> list[str]:
            return [tag]

    tracker = Tracker(
        app.client,
        tags,
        scheduler=_scheduler_factory(app),
        default_scheduler=_scheduler_name(app, chosen),
        home=app.settings.home_dir,
        settings=TrackerSettings(
            interval_s=interval_s, lost_grace_s=lost_grace_s, lease_ttl_s=lease_ttl_s
        ),
        journal_target=connection_target(app.settings),
    )
    if once:
        try:
            reports = tracker.run_pass(now=utcnow())
        finally:
            tracker.release()
        data = [vars(r) for r in reports]

        def human() -> None:
            for r in reports:
                if not r.active:
                    click.echo(f"{r.tag}: another tracker holds the lease; nothing done")
                    continue
                mode = f" (degraded: {r.degraded})" if r.degraded else ""
                click.echo(f"{r.tag}: checked {r.checked}, moved {len(r.moved)}{mode}")
                for job_id, source, target in r.moved:
                    click.echo(f"  {job_id}: {source} -> {target}")
                for job_id, why in r.problems:
                    click.echo(printable(f"  skipped {job_id or 'the tag'}: {why}"))

        app.emit(data, human)
        return
    _configure_logging(logging.WARNING if quiet else logging.INFO)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()  # the current pass finishes; the loop then ends

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    logging.getLogger("jobledger.tracker").info(
        "tracking %s every %g s", ", ".join(tags()) or "(no tags yet)", interval_s
    )
    tracker.run(stop, now=utcnow)


@cli.command()
@common
@_scheduler_option
@click.option("--name", help="Scheduler job name to look for (default: the tag).")
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]),
    help="Only jobs submitted since this date (default: 7 days ago for SLURM).",
)
def adopt(**kwargs: Any) -> None:
    """Register jobs the scheduler knows by name (the tag) that the ledger is missing."""
    from jobledger.schedulers import get_scheduler
    from jobledger.tracker import info_fields, plan

    app, (chosen, name, since) = _app(kwargs, "scheduler", "name", "since")
    ledger = app.ledger()
    name_used = _scheduler_name(app, chosen)
    scheduler = get_scheduler(name_used, home=app.settings.home_dir)
    found = scheduler.find_by_name(name or ledger.tag, since=since)
    known = {str(j) for j in app.client.smembers(ledger.layout.all_set(ledger.tag))}
    new = [info for info in found if info.job_id not in known]
    now = utcnow()
    with app.client.pipeline(transaction=False) as pipe:
        for info in new:
            fields = {"scheduler": name_used, "name": name or ledger.tag, "adopted": "yes"}
            ledger.record_submission(
                info.job_id, now=now, by="adopt", fields=fields | info_fields(info), pipeline=pipe
            )
        pipe.execute()
    watched = {info.job_id: State.PENDING_AND_RUNNING for info in new}
    moves, _ = plan(watched, {}, {i.job_id: i for i in new}, now=now, lost_grace_s=0)
    ledger.apply(moves, now=now, by="adopt")
    ids = [info.job_id for info in new]
    app.emit(
        {"tag": ledger.tag, "adopted": ids, "already_known": len(found) - len(new)},
        lambda: click.echo(
            f"adopted {len(ids)} job(s)"
            + (": " + " ".join(ids) if ids else "")
            + f"; {len(found) - len(new)} already in the ledger"
        ),
    )


@cli.command()
@common
@click.argument("job_ids", nargs=-1, required=True)
def cancel(**kwargs: Any) -> None:
    """Cancel jobs through their scheduler; the tracker then files them as CANCELLED."""
    from jobledger.ids import validate_job_id

    app, (job_ids,) = _app(kwargs, "job_ids")
    for job_id in job_ids:
        validate_job_id(job_id)
    ledger = app.ledger()
    by_backend: dict[str, dict[str, dict[str, str]]] = {}
    ended: dict[str, str] = {}
    for job_id in dict.fromkeys(job_ids):
        view = ledger.job(job_id)
        if not view.in_all:
            raise NotFound(f"job {job_id} is not in the ledger of tag {ledger.tag!r}")
        if view.states and all(s.is_terminal for s in view.states):
            ended[job_id] = view.states[0].value
            continue
        name = view.record.get("scheduler") or _scheduler_name(app, None)
        by_backend.setdefault(name, {})[job_id] = view.record
    factory = _scheduler_factory(app)
    for name, jobs in by_backend.items():
        for job_id in factory(name).cancel(jobs):
            ended[job_id] = "ended"
    sent = [j for jobs in by_backend.values() for j in jobs if j not in ended]

    def human() -> None:
        if sent:
            click.echo(f"cancel requested: {' '.join(sent)}")
        for job_id, state in ended.items():
            shown = "" if state == "ended" else f" ({state})"
            click.echo(f"job {job_id} already ended{shown}: nothing to cancel")

    data: dict[str, Any] = {"tag": ledger.tag, "cancelled": sent, "already_ended": sorted(ended)}
    app.emit(data, human)


@cli.command()
@common
@click.option(
    "--jobs",
    "count",
    type=click.IntRange(1, 50),
    default=4,
    show_default=True,
    help="How many successful jobs to launch (one failing and one timing-out job are added).",
)
def demo(**kwargs: Any) -> None:
    """Run a small experiment on this machine: launch, track to the end, show results.

    Uses the local scheduler; with no configuration, Redis is the embedded server
    in ./.jobledger (stop it with `jobledger server stop`). The jobs write random
    rewards like the seed's test_process.py; one fails on purpose and one exceeds
    its 3-second time limit. The tag is `demo` (or --tag): it is emptied first,
    results included.
    """
    from rich.progress import Progress

    from jobledger.demo import run_demo
    from jobledger.store import top_results

    app, (count,) = _app(kwargs, "count")
    # The demo empties its tag first: never take it from the environment or a config
    # file (that is the user's real experiment), only from an explicit --tag.
    if app.settings.sources.get("tag") != "command line":
        app.settings = dataclasses.replace(app.settings, tag="demo")
    tag = app.tag
    if app.as_json:
        outcome = run_demo(app.client, app.settings, jobs=count)
    else:
        click.echo(f"demo: launching {count + 2} jobs of tag {tag!r} with the local scheduler")
        with Progress(transient=False) as bar:
            task = bar.add_task("tracking jobs", total=count + 2)
            outcome = run_demo(
                app.client,
                app.settings,
                jobs=count,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    top = top_results(app.client, tag, 5)
    outcome["top"] = [{"job_id": e.job_id, "key": e.key, "value": e.value} for e in top]

    def human() -> None:
        from jobledger.cli import render_status, render_top

        ledger = app.ledger()
        render_status(tag, ledger.snapshot(), tracker=ledger.tracker_status())
        click.echo("Top results across the demo:")
        render_top(tag, top)
        click.echo(f"Try: jobledger show <jobid> --tag {tag}   |   jobledger last --tag {tag}")

    app.emit(outcome, human)
    if not outcome["finished"]:
        raise JobledgerError("demo jobs did not finish within a minute")
