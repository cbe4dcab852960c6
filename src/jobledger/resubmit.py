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
from typing import Any

from jobledger.errors import JobledgerError
from jobledger.ids import job_sort_key
from jobledger.specs import array_throttle
from jobledger.states import State

__all__ = ["Plan", "Skipped", "new_ids_for", "plan_resubmission", "resubmit"]


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


def _why_not(job_id: str, states: Sequence[State], record: Mapping[str, str], again: bool) -> str:
    if not states:
        return "not in any state set"
    if State.PENDING_AND_RUNNING in states:
        return "still pending or running"
    if record.get("resubmitted_as") and not again:
        return f"already resubmitted as {record['resubmitted_as']} (--again to rerun it)"
    if not record.get("script") or not record.get("work_dir"):
        return "its record does not say how it was submitted (adopted, or an older jobledger)"
    return ""


def plan_resubmission(
    jobs: Iterable[tuple[str, Sequence[State], Mapping[str, str]]], *, again: bool = False
) -> tuple[list[Plan], list[Skipped]]:
    """Group the jobs to rerun into submissions (pure); the others, and why, as skipped."""
    plans: dict[tuple[Any, ...], Plan] = {}
    skipped: list[Skipped] = []
    for job_id, states, record in sorted(jobs, key=lambda j: job_sort_key(j[0])):
        why = _why_not(job_id, states, record, again)
        if why:
            skipped.append(Skipped(job_id, why))
            continue
        base, _, task = job_id.partition("_")
        try:
            args = tuple(json.loads(record.get("sbatch_args") or "[]"))
        except ValueError:
            skipped.append(Skipped(job_id, "its record's sbatch_args is not a JSON list"))
            continue
        max_running = record.get("max_running")
        key = (
            record.get("scheduler") or "",
            record["script"],
            record["work_dir"],
            record.get("name") or "",
            record.get("output_dir") or "",
            record.get("time_limit"),
            args,
            max_running,
            record.get("cluster"),
            base if task else job_id,  # tasks of one array go again together
        )
        if key not in plans:
            plans[key] = Plan(
                scheduler=key[0],
                script=record["script"],
                work_dir=record["work_dir"],
                name=key[3],
                output_dir=key[4],
                time_limit=record.get("time_limit"),
                sbatch_args=args,
                max_running=int(max_running) if max_running and max_running.isdigit() else None,
                array=None,
                cluster=record.get("cluster"),
            )
            throttle = array_throttle(record["array"]) if record.get("array") else None
            plans[key].array = f"%{throttle}" if throttle and task else None
        plans[key].old_ids.append(job_id)
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
    submit: Callable[[Plan], Sequence[str]],
    link: Callable[[list[tuple[str, str]]], None],
) -> tuple[list[tuple[str, str]], list[Skipped]]:
    """Submit each plan and link its jobs; a plan that fails is reported, the rest go on."""
    done: list[tuple[str, str]] = []
    failed: list[Skipped] = []
    for plan in plans:
        try:
            new_ids = submit(plan)
        except JobledgerError as exc:
            failed += [Skipped(j, f"resubmission failed: {exc}") for j in plan.old_ids]
            continue
        pairs = new_ids_for(plan, new_ids)
        link(pairs)
        done += pairs
    return done, failed
