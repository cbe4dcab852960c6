"""Commands that submit jobs: launch and demo."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import click

from jobledger.cli.app import common, parse, scheduler_name, scheduler_option, states_option
from jobledger.cli.render import printable, render_status, render_top
from jobledger.errors import JobledgerError, UsageError
from jobledger.times import utcnow

__all__ = ["demo", "launch", "resubmit"]


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
            cluster=app.settings.cluster,
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
        cluster=app.settings.cluster,
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
@click.argument("job_ids", nargs=-1)
@states_option(
    "Every job in these states (FAILED,TIMEOUT,...); with --group, the states the "
    "groups are made of."
)
@click.option(
    "--group",
    type=click.IntRange(min=1),
    help="The jobs of group N of `jobledger failures` (with --state: of `failures --state`).",
)
@click.option("--again", is_flag=True, help="Also jobs that were resubmitted before.")
@click.option("--dry-run", is_flag=True, help="Say what would be resubmitted; submit nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (above 10 jobs).")
def resubmit(**kwargs: Any) -> None:
    """Submit ended jobs again with the same script, options and arguments.

    Array tasks go again as tasks of one new array (each keeps its index). The old
    record gets resubmitted_as, the new one resubmit_of.
    """
    from jobledger.connection import connect
    from jobledger.errors import Interrupted
    from jobledger.ids import validate_job_id
    from jobledger.launch import launch as do_launch
    from jobledger.ledger import isoformat
    from jobledger.resubmit import Skipped, gather, plan_resubmission
    from jobledger.resubmit import resubmit as do_resubmit
    from jobledger.schedulers import get_scheduler
    from jobledger.states import parse_states

    app, (job_ids, states_text, group, again, dry_run, yes) = parse(
        kwargs, "job_ids", "states", "group", "again", "dry_run", "yes"
    )
    for job_id in job_ids:
        validate_job_id(job_id)
    states = parse_states(states_text) if states_text else []
    if not (job_ids or states or group):
        raise UsageError("say which jobs: JOBID..., --state FAILED,TIMEOUT or --group N")
    ledger = app.ledger()
    jobs = gather(ledger, job_ids=job_ids, states=states, group=group, again=again)
    now = utcnow()
    plans, skipped = plan_resubmission(jobs, again=again, now=now)
    count = sum(len(p.old_ids) for p in plans)
    if dry_run:
        app.emit(
            {
                "tag": ledger.tag,
                "dry_run": True,
                "submissions": [p.describe() for p in plans],
                "skipped": [vars(s) for s in skipped],
            },
            lambda: _print_plans(plans, skipped),
        )
        return
    if count > 10 and not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"resubmitting {count} jobs needs confirmation: pass --yes")
        click.confirm(f"Resubmit {count} jobs of tag {ledger.tag!r}?", abort=True, err=True)
    # Claim the jobs first: two resubmits at once never both run the same job again.
    import uuid

    claim = f"{uuid.uuid4().hex}|{isoformat(now)}"
    claimed = set(
        ledger.claim_resubmission([j for p in plans for j in p.old_ids], claim, again=again)
    )
    taken = [j for p in plans for j in p.old_ids if j not in claimed]
    skipped += [Skipped(j, "another resubmit claimed it meanwhile") for j in taken]
    if taken:
        plans, _ = plan_resubmission([j for j in jobs if j[0] in claimed], again=again, now=now)
    warnings: list[str] = []

    def submit(plan: Any) -> tuple[list[str], int | None]:
        if plan.array is None:
            link = {"resubmit_of": plan.old_ids[0]}
        else:  # one field for every task; each keeps its index
            link = {"resubmit_of_array": plan.old_ids[0].partition("_")[0]}
        result = do_launch(
            Path(plan.script),
            tag=ledger.tag,
            settings=app.settings,
            scheduler=get_scheduler(
                plan.scheduler or scheduler_name(app, None), home=app.settings.home_dir
            ),
            connect=lambda: connect(app.settings),
            name=plan.name or None,
            time_limit=plan.time_limit,
            array=plan.array,
            output_dir=Path(plan.output_dir) if plan.output_dir else None,
            extra_args=plan.sbatch_args,
            max_running=plan.max_running,
            extra_fields=link,
            work_dir=Path(plan.work_dir),
            cluster=plan.cluster,
            now=utcnow(),
        )
        warnings.extend(result.warnings)
        if result.journal_note:
            warnings.append(result.journal_note)
        return list(result.job_ids), result.interrupted

    outcome = do_resubmit(
        plans,
        submit=submit,
        link=ledger.link_resubmissions,
        release=lambda ids: ledger.release_resubmission(ids, claim),
    )
    for warning in dict.fromkeys(warnings):  # once, not once per submission
        click.echo(f"jobledger: warning: {warning}", err=True)
    skipped += outcome.failed

    def human() -> None:
        for old, new in outcome.done + outcome.unlinked:
            click.echo(f"{old} -> {new}")
        for s in skipped:
            click.echo(printable(f"skipped {s.job_id}: {s.why}"))
        if not (outcome.done or outcome.unlinked or skipped):
            click.echo("nothing to resubmit")

    app.emit(
        {
            "tag": ledger.tag,
            "resubmitted": [{"old": o, "new": n} for o, n in outcome.done + outcome.unlinked],
            "unlinked": [{"old": o, "new": n} for o, n in outcome.unlinked],
            "skipped": [vars(s) for s in skipped],
        },
        human,
    )
    if outcome.unlinked:
        raise JobledgerError(
            f"{len(outcome.unlinked)} job(s) were resubmitted but the links could not be "
            f"written ({outcome.link_error}); their old records keep a claim, so a later "
            "resubmit skips them unless --again"
        )
    if outcome.interrupted:
        raise Interrupted(
            "interrupted: the jobs above were resubmitted, the rest were not", outcome.signal or 2
        )
    if outcome.failed:
        raise JobledgerError(f"{len(outcome.failed)} job(s) could not be resubmitted (see above)")


def _print_plans(plans: list[Any], skipped: list[Any]) -> None:
    for plan in plans:
        what = f"array {plan.array}" if plan.array else "1 job"
        click.echo(printable(f"would resubmit {' '.join(plan.old_ids)}: {plan.script} ({what})"))
    for s in skipped:
        click.echo(printable(f"skipped {s.job_id}: {s.why}"))
    if not plans and not skipped:
        click.echo("nothing to resubmit")


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
        render_status(tag, ledger.snapshot(), tracker=ledger.tracker_status(), layout=ledger.layout)
        click.echo("Top results across the demo:")
        render_top(tag, top, ledger.layout)
        click.echo(f"Try: jobledger show <jobid> --tag {tag}   |   jobledger last --tag {tag}")

    app.emit(outcome, human)
    if not outcome["finished"]:
        raise JobledgerError("demo jobs did not finish within a minute")
