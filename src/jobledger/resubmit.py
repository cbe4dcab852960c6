"""Resubmission: run ended jobs again, as they were submitted, and link old and new.

A job's record says how it was submitted (script, work directory, name, output
directory, time limit, array spec, sbatch arguments).  Jobs are resubmitted through
:func:`jobledger.launch.launch`, the same journaled path as ``jobledger launch``; the
array tasks of one submission go again as one new array of just those tasks (one
sbatch call, not one per task), each keeping its task index.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis

from jobledger.errors import Interrupted, JobledgerError, NotFound, UsageError
from jobledger.ids import job_sort_key
from jobledger.specs import array_throttle
from jobledger.states import REQUEUEABLE_STATES, State

__all__ = [
    "Outcome",
    "Plan",
    "Skipped",
    "gather",
    "new_ids_for",
    "plan_resubmission",
    "resubmit",
]


@dataclass(frozen=True)
class Skipped:
    job_id: str
    why: str


@dataclass
class Plan:
    """One submission to make again: the jobs it reruns, in task order."""

    scheduler: str
    script: str
    work_dir: str
    name: str
    output_dir: str
    time_limit: str | None
    sbatch_args: tuple[str, ...]
    max_running: int | None
    array: str | None  # the tasks to rerun as an array spec ("3,17,42%5"), or None
    cluster: str | None = None  # SLURM: the cluster the job ran on
    old_ids: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {
            "scheduler": self.scheduler,
            "script": self.script,
            "work_dir": self.work_dir,
            "name": self.name,
            "array": self.array,
            "cluster": self.cluster,
            "time_limit": self.time_limit,
            "sbatch_args": list(self.sbatch_args),
            "jobs": self.old_ids,
        }


# The fields that make two jobs' submissions the same.
_ALIKE = (
    "scheduler",
    "script",
    "work_dir",
    "name",
    "output_dir",
    "time_limit",
    "sbatch_args",
    "max_running",
    "array",
    "cluster",
)


def _why_not(
    states: Sequence[State],
    record: Mapping[str, str],
    *,
    again: bool,
    now: datetime | None,
    requeue_window_s: float,
) -> str:
    if not states:
        return "not in any state set"
    if State.PENDING_AND_RUNNING in states:
        return "still pending or running"
    if record.get("resubmitting") and not again:
        started = record["resubmitting"].partition("|")[2] or "?"
        return (
            f"a resubmission of it started at {started} did not finish (see status; "
            "--again to resubmit it anyway)"
        )
    if record.get("resubmitted_as") and not again:
        return f"already resubmitted as {record['resubmitted_as']} (--again to rerun it)"
    if not record.get("script") or not record.get("work_dir"):
        return "its record does not say how it was submitted (adopted, or an older jobledger)"
    if now is not None and any(s in REQUEUEABLE_STATES for s in states):
        ended = record.get("ended_at") or record.get("updated_at") or ""
        try:
            recent = (now - datetime.fromisoformat(ended)).total_seconds() < requeue_window_s
        except (TypeError, ValueError):
            recent = False
        if recent:
            return f"SLURM may still requeue it ({states[0].value} at {ended}); wait or --again"
    return ""


def plan_resubmission(
    jobs: Iterable[tuple[str, Sequence[State], Mapping[str, str]]],
    *,
    again: bool = False,
    now: datetime | None = None,
    requeue_window_s: float = 900.0,
) -> tuple[list[Plan], list[Skipped]]:
    """Group the jobs to rerun into submissions (pure); the others, and why, as skipped.

    Skipped: jobs not ended, already resubmitted (or being resubmitted) unless
    ``again``, without a record of how they were submitted, and NODE_FAIL/PREEMPTED
    jobs SLURM may still requeue (filed less than ``requeue_window_s`` before ``now``).
    """
    plans: dict[tuple[Any, ...], Plan] = {}
    skipped: list[Skipped] = []
    for job_id, states, record in sorted(jobs, key=lambda j: job_sort_key(j[0])):
        why = _why_not(states, record, again=again, now=now, requeue_window_s=requeue_window_s)
        if why:
            skipped.append(Skipped(job_id, why))
            continue
        base, _, task = job_id.partition("_")
        try:
            args = tuple(json.loads(record.get("sbatch_args") or "[]"))
        except ValueError:
            skipped.append(Skipped(job_id, "its record's sbatch_args is not a JSON list"))
            continue
        max_running = record.get("max_running") or ""
        throttle = array_throttle(record["array"]) if task and record.get("array") else None
        plan = Plan(
            scheduler=record.get("scheduler") or "",
            script=record["script"],
            work_dir=record["work_dir"],
            name=record.get("name") or "",
            output_dir=record.get("output_dir") or "",
            time_limit=record.get("time_limit"),
            sbatch_args=args,
            max_running=int(max_running) if max_running.isdigit() else None,
            array=f"%{throttle}" if throttle else None,  # the task list goes in front below
            cluster=record.get("cluster"),
        )
        # Jobs submitted alike go again together; an array's tasks as one new array.
        key = (*(getattr(plan, name) for name in _ALIKE), base if task else job_id)
        plans.setdefault(key, plan).old_ids.append(job_id)
    for plan in plans.values():
        tasks = [j.partition("_")[2] for j in plan.old_ids if "_" in j]
        if tasks:
            plan.array = ",".join(tasks) + (plan.array or "")
    return list(plans.values()), skipped


def new_ids_for(plan: Plan, job_ids: Sequence[str]) -> list[tuple[str, str]]:
    """(old, new) pairs: an array's tasks by their index, a single job one to one."""
    if plan.array is None:
        return list(zip(plan.old_ids, job_ids, strict=True))
    by_task = {j.partition("_")[2]: j for j in job_ids}
    return [(old, by_task[old.partition("_")[2]]) for old in plan.old_ids]


def resubmit(
    plans: Sequence[Plan],
    *,
    submit: Callable[[Plan], tuple[Sequence[str], int | None]],
    link: Callable[[list[tuple[str, str]]], None],
    release: Callable[[list[str]], None],
) -> Outcome:
    """Submit each plan and link its jobs; a plan the scheduler refuses is reported (its
    claims released) and the others go on.

    ``submit`` returns the new job IDs and the signal that interrupted it (or None):
    after an interruption the jobs submitted so far are linked and nothing more is
    submitted.  A link that fails (Redis gone) leaves the old jobs claimed, so no later
    resubmit runs them again unasked; the outcome says which.
    """
    out = Outcome()
    for index, plan in enumerate(plans):
        try:
            new_ids, interrupted = submit(plan)
        except Interrupted:
            release([j for p in plans[index:] for j in p.old_ids])
            out.interrupted = True
            break
        except JobledgerError as exc:
            release(plan.old_ids)
            out.failed += [Skipped(j, f"resubmission failed: {exc}") for j in plan.old_ids]
            continue
        pairs = new_ids_for(plan, new_ids)
        try:
            link(pairs)
        except (JobledgerError, redis.RedisError) as exc:
            out.unlinked += pairs
            out.link_error = str(exc)
        else:
            out.done += pairs
        if interrupted:
            release([j for p in plans[index + 1 :] for j in p.old_ids])
            out.interrupted = True
            out.signal = interrupted
            break
    return out


@dataclass
class Outcome:
    """What a resubmission did: linked pairs, submitted-but-unlinked pairs, failures."""

    done: list[tuple[str, str]] = field(default_factory=list)
    unlinked: list[tuple[str, str]] = field(default_factory=list)
    failed: list[Skipped] = field(default_factory=list)
    link_error: str | None = None
    interrupted: bool = False
    signal: int | None = None


def gather(
    ledger: Any,
    *,
    job_ids: Sequence[str] = (),
    states: Sequence[State] = (),
    group: int | None = None,
    again: bool = False,
) -> list[tuple[str, list[State], dict[str, str]]]:
    """The jobs a resubmission is about, each with its state sets and record.

    ``job_ids`` are taken one by one (NotFound when one is not in the ledger); every
    job in ``states`` is added, its records read a pipelined chunk at a time.  With
    ``group``, ``states`` instead choose which end states the failure groups are made
    of (as ``jobledger failures --state`` does), and the jobs of group ``group`` are
    added (groups of jobs not resubmitted yet, or with ``again`` of all, as
    ``jobledger failures [--resubmitted]`` numbers them).
    """
    from jobledger.failures import FAILURE_STATES, tag_failures

    found: dict[str, tuple[str, list[State], dict[str, str]]] = {}
    for job_id in job_ids:
        view = ledger.job(job_id)
        if not (view.in_all or view.record):
            raise NotFound(f"job {job_id} is not in the ledger of tag {ledger.tag!r}")
        found[job_id] = (job_id, list(view.states), dict(view.record))
    members: dict[str, State] = {}
    if group is not None:
        chosen = list(states) or list(FAILURE_STATES)
        groups = tag_failures(ledger, chosen, resubmitted=again).groups
        if not 1 <= group <= len(groups):
            among = ", ".join(s.value for s in chosen) if states else "every failure state"
            raise UsageError(
                f"there are {len(groups)} failure group(s) of {among}; no group {group}"
            )
        members = dict.fromkeys(groups[group - 1].job_ids, State(groups[group - 1].state))
    else:
        for name, ids in ledger.snapshot([s.value for s in states]).items():
            members.update(dict.fromkeys(ids, State(name)))
    wanted = [j for j in members if j not in found]
    for job_id, record in ledger.records(wanted):
        found[job_id] = (job_id, [members[job_id]], record)
    return list(found.values())
