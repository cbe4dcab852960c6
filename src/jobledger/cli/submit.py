"""Commands that submit jobs: launch and demo."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click

from jobledger.cli.app import common, parse, scheduler_name, scheduler_option
from jobledger.cli.render import render_status, render_top
from jobledger.errors import JobledgerError, UsageError
from jobledger.ledger import utcnow

__all__ = ["demo", "launch"]


@click.command(context_settings={"ignore_unknown_options": False})
@common
@scheduler_option
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

    app, (chosen, name, time_limit, array, output_dir, max_running, dry_run, script, extra) = parse(
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
    scheduler = get_scheduler(scheduler_name(app, chosen), home=app.settings.home_dir)
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


@click.command()
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

    app, (count,) = parse(kwargs, "count")
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
        ledger = app.ledger()
        render_status(tag, ledger.snapshot(), tracker=ledger.tracker_status())
        click.echo("Top results across the demo:")
        render_top(tag, top)
        click.echo(f"Try: jobledger show <jobid> --tag {tag}   |   jobledger last --tag {tag}")

    app.emit(outcome, human)
    if not outcome["finished"]:
        raise JobledgerError("demo jobs did not finish within a minute")
