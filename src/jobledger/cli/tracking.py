"""Commands that follow jobs on their scheduler: track, adopt and cancel."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from typing import Any

import click

from jobledger.cli.app import common, parse, scheduler_factory, scheduler_name, scheduler_option
from jobledger.cli.render import printable
from jobledger.errors import NotFound, UsageError
from jobledger.ids import job_sort_key, sort_job_ids
from jobledger.states import State
from jobledger.times import utcnow

__all__ = ["adopt", "cancel", "track"]


def _configure_logging(level: int) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@click.command()
@common
@scheduler_option
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
@click.option(
    "--stall-after",
    "stall_after_s",
    type=click.FloatRange(min=0),
    help="Seconds without a heartbeat before a running job is marked stalled "
    "(default: stall_after in the config, else 3600; 0: never).",
)
@click.option("--cancel-stalled", is_flag=True, help="Cancel stalled jobs through their scheduler.")
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
    from jobledger.connection import connection_target
    from jobledger.durability import Durability
    from jobledger.keys import layout_for
    from jobledger.tracker import Tracker, TrackerSettings

    app, options = parse(
        kwargs,
        "scheduler",
        "once",
        "all_tags",
        "interval_s",
        "lost_grace_s",
        "stall_after_s",
        "cancel_stalled",
        "quiet",
        "lease_ttl_s",
    )
    chosen, once, all_tags, interval_s, lost_grace_s, stall_after_s, cancel_stalled = options[:7]
    quiet, ttl = options[7:]
    if stall_after_s is None:
        stall_after_s = float(app.settings.stall_after or 3600)
    if cancel_stalled and not stall_after_s:
        raise UsageError("--cancel-stalled needs stall detection on (--stall-after > 0)")
    if all_tags:

        def tags() -> list[str]:
            return sorted(
                str(t) for t in app.client.smembers(layout_for(app.client).tags_registry())
            )

    else:
        tag = app.tag

        def tags() -> list[str]:
            return [tag]

    tracker = Tracker(
        app.client,
        tags,
        scheduler=scheduler_factory(app),
        default_scheduler=scheduler_name(app, chosen),
        home=app.settings.home_dir,
        settings=TrackerSettings(
            interval_s=interval_s,
            lost_grace_s=lost_grace_s,
            lease_ttl_s=ttl,
            stall_after_s=stall_after_s,
            cancel_stalled=cancel_stalled,
            # Several `track --all-tags` daemons split the tags; a --once pass does them all.
            share_tags=all_tags and not once,
        ),
        journal_target=connection_target(app.settings),
        durability=Durability.of(app.settings),
    )
    if once:
        try:
            reports = tracker.run_pass(now=utcnow())
        finally:
            tracker.release()
        for r in reports:
            r.moved.sort(key=lambda move: job_sort_key(move[0]))
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
                for job_id in r.stalled:
                    click.echo(f"  {job_id}: stalled (no heartbeat for over {stall_after_s:g} s)")
                for job_id in r.recovered:
                    click.echo(f"  {job_id}: heartbeating again")
                if r.cancelled:
                    click.echo(f"  cancel requested for stalled: {' '.join(r.cancelled)}")
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


@click.command()
@common
@scheduler_option
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

    app, (chosen, name, since) = parse(kwargs, "scheduler", "name", "since")
    ledger = app.ledger()
    name_used = scheduler_name(app, chosen)
    scheduler = get_scheduler(name_used, home=app.settings.home_dir)
    cluster = app.settings.cluster if scheduler.allocates_ids else None
    found = scheduler.find_by_name(name or ledger.tag, since=since, cluster=cluster)
    known = {str(j) for j in app.client.smembers(ledger.layout.all_set(ledger.tag))}
    new = [info for info in found if info.job_id not in known]
    now = utcnow()
    with app.client.pipeline(transaction=False) as pipe:
        for info in new:
            fields = {"scheduler": name_used, "name": name or ledger.tag, "adopted": "yes"}
            if cluster:
                fields["cluster"] = cluster
            ledger.record_submission(
                info.job_id, now=now, by="adopt", fields=fields | info_fields(info), pipeline=pipe
            )
        pipe.execute()
    watched = {info.job_id: State.PENDING_AND_RUNNING for info in new}
    moves, _ = plan(watched, {}, {i.job_id: i for i in new}, now=now, lost_grace_s=0)
    ledger.apply(moves, now=now, by="adopt")
    ids = sort_job_ids([info.job_id for info in new])
    app.emit(
        {"tag": ledger.tag, "adopted": ids, "already_known": len(found) - len(new)},
        lambda: click.echo(
            f"adopted {len(ids)} job(s)"
            + (": " + " ".join(ids) if ids else "")
            + f"; {len(found) - len(new)} already in the ledger"
        ),
    )


@click.command()
@common
@click.argument("job_ids", nargs=-1, required=True)
def cancel(**kwargs: Any) -> None:
    """Cancel jobs through their scheduler; the tracker then files them as CANCELLED."""
    from jobledger.ids import validate_job_id

    app, (job_ids,) = parse(kwargs, "job_ids")
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
        name = view.record.get("scheduler") or scheduler_name(app, None)
        by_backend.setdefault(name, {})[job_id] = view.record
    factory = scheduler_factory(app)
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
