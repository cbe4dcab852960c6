"""Check a tag's ledger for inconsistencies, and repair what can be repaired safely.

The state sets are the seed's source of truth, so repairs bend everything else
(``_ALL``, records, indexes) towards them; only a job in no set or in several
sets needs a decision, and then the record's ``state`` (if it names one of the
candidates) wins, else the most final one.  Every repair is one WATCHed
transaction that gives up if a tracker changed the job meanwhile, and leaves an
event ``by=fsck`` in the tag's stream.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import redis

from jobledger.ids import is_job_id
from jobledger.keys import KeyLayout, layout_for, other_layout
from jobledger.ledger import Ledger, isoformat
from jobledger.states import State
from jobledger.store import as_number, index_result, scan_tag_results

__all__ = ["KINDS", "FsckReport", "Problem", "check", "repair"]

# kind -> (what it means, whether --repair fixes it)
KINDS: dict[str, tuple[str, bool]] = {
    "invalid_member": ("set members that are not job IDs (see detail for the sets)", True),
    "no_state": ("in <tag>_ALL but in no state set", True),
    "several_states": ("in more than one state set", True),
    "missing_from_all": ("in a state set but not in <tag>_ALL", True),
    "record_mismatch": ("record's state differs from the set holding the job", True),
    "orphan_record": ("a job record for a job in no set and not in <tag>_ALL", False),
    "bad_record": ("a job record with a field the tracker cannot read (see detail)", False),
    "results_without_job": ("result keys for a job that is not in the ledger", False),
    "stale_index": ("index entries for result keys that no longer exist", True),
    "stale_numeric": ("ranking entries that disagree with the stored value", True),
    "other_layout": ("jobs of this tag under the other key layout's names, never read", False),
}
_BATCH = 500


@dataclass
class Problem:
    """One kind of inconsistency and the job IDs it concerns."""

    kind: str
    job_ids: list[str]
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def description(self) -> str:
        return KINDS[self.kind][0]

    @property
    def repairable(self) -> bool:
        return KINDS[self.kind][1]


@dataclass
class FsckReport:
    """What fsck found (and, with repair, what it changed)."""

    tag: str
    layout: str = "seed"  # the key layout the check read (docs/data-model.md)
    problems: list[Problem] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "layout": self.layout,
            "clean": self.clean,
            "problems": [
                {**asdict(p), "description": p.description, "repairable": p.repairable}
                for p in self.problems
            ],
            "repaired": self.repaired,
            "skipped": self.skipped,
        }


def _chunks(items: list[str], size: int = _BATCH) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def check(client: redis.Redis, tag: str, *, layout: KeyLayout | None = None) -> FsckReport:
    """Find every inconsistency of ``tag``'s ledger, results index and rankings."""
    layout = layout_for(client, layout)
    ledger = Ledger(client, tag, layout=layout)
    snapshot = ledger.snapshot()
    in_all = set(snapshot.pop("ALL"))
    invalid: dict[str, list[str]] = {}  # member -> the sets holding it
    for job_id in in_all:
        if not is_job_id(job_id):
            invalid.setdefault(job_id, []).append(layout.all_set(tag))
    where: dict[str, list[State]] = {}
    for state in State:
        for job_id in snapshot[state.value]:
            if is_job_id(job_id):
                where.setdefault(job_id, []).append(state)
            else:
                invalid.setdefault(job_id, []).append(layout.state_set(tag, state))
    in_all -= invalid.keys()
    report = FsckReport(tag, layout=layout.name)
    found: dict[str, list[str]] = {kind: [] for kind in KINDS}
    elsewhere = other_layout(layout).all_set(tag)
    found["other_layout"] = sorted(str(j) for j in client.smembers(elsewhere))
    found["invalid_member"] = sorted(invalid)
    found["no_state"] = sorted(in_all - where.keys())
    found["several_states"] = sorted(j for j, states in where.items() if len(states) > 1)
    found["missing_from_all"] = sorted(where.keys() - in_all)
    record_states, bad = _record_states(client, tag, sorted(where.keys() | in_all), layout)
    for job_id, states in where.items():
        recorded = record_states.get(job_id)
        if len(states) == 1 and recorded and recorded != states[0].value:
            found["record_mismatch"].append(job_id)
    known = in_all | where.keys()
    found["orphan_record"] = sorted(_record_ids(client, tag, layout) - known)
    result_jobs = {job_id for _, job_id, _ in scan_tag_results(client, tag, layout=layout)}
    indexed = {str(j) for j in client.smembers(layout.indexed_jobs(tag))}
    retired = {str(j) for j in client.smembers(layout.retired_jobs(tag))}  # cleanup kept them
    found["results_without_job"] = sorted((result_jobs | indexed) - known - retired)
    stale, numeric = _index_problems(client, tag, sorted(indexed), layout)
    found["stale_index"], found["stale_numeric"] = sorted(stale), sorted(numeric)
    found["bad_record"] = sorted(bad)
    for kind, ids in found.items():
        if ids:
            detail: dict[str, Any] = {}
            if kind == "bad_record":
                detail = {j: bad[j] for j in ids}
            elif kind == "other_layout":
                detail = {"set": elsewhere, "layout": other_layout(layout).name}
            elif kind == "invalid_member":
                detail = {j: invalid[j] for j in ids}
            report.problems.append(Problem(kind, sorted(set(ids), key=_sort_key), detail))
    return report


def _sort_key(job_id: str) -> tuple[int, int, int, str]:
    from jobledger.ids import job_sort_key

    return job_sort_key(job_id)


_TIMES = ("submitted_at", "updated_at", "started_at", "ended_at", "missing_since")


def _record_problem(values: dict[str, str | None]) -> str | None:
    """Why the tracker could not use a record with these fields, or None."""
    from jobledger.tracker import parse_moment

    for name in _TIMES:
        value = values.get(name)
        if value:
            try:
                parse_moment(value, name)
            except ValueError as exc:
                return str(exc)
    attempts = values.get("attempts")
    if attempts and not (attempts.isascii() and attempts.isdigit()):
        return f"attempts {attempts!r} is not a whole number"
    return None


def _record_states(
    client: redis.Redis, tag: str, job_ids: list[str], layout: KeyLayout
) -> tuple[dict[str, str], dict[str, str]]:
    """Each record's ``state``, and why records the tracker cannot read are bad."""
    names = ("state", "attempts", *_TIMES)
    out: dict[str, str] = {}
    bad: dict[str, str] = {}
    for chunk in _chunks(job_ids):
        with client.pipeline(transaction=False) as pipe:
            for job_id in chunk:
                pipe.hmget(layout.job_record(tag, job_id), names)
            for job_id, values in zip(chunk, pipe.execute(), strict=True):
                fields = dict(zip(names, values, strict=True))
                if fields["state"]:
                    out[job_id] = str(fields["state"])
                why = _record_problem(fields)
                if why:
                    bad[job_id] = why
    return out, bad


def _record_ids(client: redis.Redis, tag: str, layout: KeyLayout) -> set[str]:
    ids = set()
    for name in client.scan_iter(match=layout.own_pattern(tag), count=1000):
        kind, job_id = layout.own_key_kind(tag, str(name))
        if kind == "job" and job_id is not None:
            ids.add(job_id)
    return ids


def _index_problems(
    client: redis.Redis, tag: str, indexed: list[str], layout: KeyLayout
) -> tuple[set[str], set[str]]:
    """Jobs whose index names missing keys, and jobs whose rankings disagree with values."""
    stale: set[str] = set()
    numeric: set[str] = set()
    for chunk in _chunks(indexed, 200):
        # Two round trips per 200 jobs: their indexes and rankings, then their values.
        with client.pipeline(transaction=False) as pipe:
            for job_id in chunk:
                pipe.smembers(layout.result_index(tag, job_id))
                pipe.zrange(layout.job_numeric(tag, job_id), 0, -1, withscores=True)
            replies = pipe.execute()
        names_of = [sorted(str(n) for n in names) for names in replies[::2]]
        with client.pipeline(transaction=False) as pipe:
            for job_id, names in zip(chunk, names_of, strict=True):
                if names:
                    # execute_command: a cluster pipeline refuses mget() (one slot here)
                    pipe.execute_command(  # type: ignore[no-untyped-call]
                        "MGET", *(layout.result_key(tag, job_id, n) for n in names)
                    )
            values_of = iter(pipe.execute())
        for job_id, names, ranked in zip(chunk, names_of, replies[1::2], strict=True):
            values = next(values_of) if names else []
            if any(v is None for v in values):
                stale.add(job_id)
            numbers = ((n, as_number(v)) for n, v in zip(names, values, strict=True))
            expected = {n: x for n, x in numbers if x is not None}
            if {str(k): float(s) for k, s in ranked} != expected:
                numeric.add(job_id)
    return stale, numeric


def repair(
    client: redis.Redis,
    tag: str,
    report: FsckReport,
    *,
    now: datetime,
    layout: KeyLayout | None = None,
) -> FsckReport:
    """Fix the repairable problems of ``report``; returns a fresh check afterwards."""
    layout = layout_for(client, layout)
    ledger = Ledger(client, tag, layout=layout)
    done: list[str] = []
    skipped: list[str] = []
    attempted: set[tuple[object, str]] = set()
    for problem in report.problems:
        if not problem.repairable:
            continue
        for job_id in problem.job_ids:
            fix = _REPAIRS[problem.kind]
            if (fix, job_id) in attempted:
                continue  # one fix covers several kinds (e.g. stale index and rankings)
            attempted.add((fix, job_id))
            try:
                message = fix(client, ledger, job_id, now)
            except redis.WatchError:
                skipped.append(f"{job_id}: changed during repair; run fsck again")
                continue
            if message:
                done.append(f"{job_id}: {message}")
    after = check(client, tag, layout=layout)
    after.repaired, after.skipped = done, skipped
    return after


def _event(pipe: Any, ledger: Ledger, job_id: str, source: str, target: str, now: datetime) -> None:
    pipe.xadd(
        ledger.layout.events(ledger.tag),
        {"job": job_id, "from": source, "to": target, "at": isoformat(now), "by": "fsck"},
    )


def _states_of(client: redis.Redis, ledger: Ledger, job_id: str) -> list[State]:
    with client.pipeline(transaction=False) as pipe:
        for state in State:
            pipe.sismember(ledger.layout.state_set(ledger.tag, state), job_id)
        flags = pipe.execute()
    return [s for s, flag in zip(State, flags, strict=True) if flag]


def _settle(client: redis.Redis, ledger: Ledger, job_id: str, now: datetime) -> str | None:
    """Leave the job in exactly one state set, in _ALL, with a matching record."""
    tag = ledger.tag
    watched = [ledger.layout.all_set(tag), ledger.layout.job_record(tag, job_id)]
    watched += [ledger.layout.state_set(tag, s) for s in State]
    with client.pipeline(transaction=True) as pipe:
        pipe.watch(*watched)  # type: ignore[no-untyped-call]
        states = _states_of(client, ledger, job_id)
        recorded = client.hget(ledger.layout.job_record(tag, job_id), "state")
        if len(states) == 1:
            keep = states[0]
        elif states:
            by_record = [s for s in states if s.value == recorded]
            keep = by_record[0] if by_record else next(s for s in states if s.is_terminal)
        else:
            valid = {s.value for s in State}
            keep = State(recorded) if recorded in valid else State.PENDING_AND_RUNNING
        pipe.multi()
        pipe.sadd(ledger.layout.all_set(tag), job_id)
        for state in states:
            if state is not keep:
                pipe.srem(ledger.layout.state_set(tag, state), job_id)
        pipe.sadd(ledger.layout.state_set(tag, keep), job_id)
        pipe.hset(
            ledger.layout.job_record(tag, job_id),
            mapping={"state": keep.value, "updated_at": isoformat(now)},
        )
        source = ",".join(s.value for s in states) or "(none)"
        _event(pipe, ledger, job_id, source, keep.value, now)
        pipe.execute()
    if states == [keep]:
        return f"in {keep.value}: {ledger.layout.all_set(tag)} and the record's state made to match"
    return f"kept in {keep.value} (was in {source})"


def _reindex(client: redis.Redis, ledger: Ledger, job_id: str, now: datetime) -> str | None:
    """Rebuild one job's index and rankings from the values that exist now."""
    tag = ledger.tag
    index, ranked = ledger.layout.result_index(tag, job_id), ledger.layout.job_numeric(tag, job_id)
    with client.pipeline(transaction=True) as pipe:
        pipe.watch(index, ranked)  # type: ignore[no-untyped-call]
        names = sorted(str(n) for n in client.smembers(index))
        values = (
            client.mget([ledger.layout.result_key(tag, job_id, n) for n in names]) if names else []
        )
        pipe.multi()
        gone = [n for n, v in zip(names, values, strict=True) if v is None]
        if gone:
            pipe.srem(index, *gone)
        pipe.delete(ranked)
        members = [ledger.layout.tag_numeric_member(job_id, n) for n in names]
        if members:
            pipe.zrem(ledger.layout.tag_numeric(tag), *members)
        for name, value in zip(names, values, strict=True):
            if value is not None:
                index_result(pipe, tag, job_id, name, value, layout=ledger.layout)
        pipe.execute()
    return f"index rebuilt ({len(gone)} stale entries dropped)"


def _quarantine(client: redis.Redis, ledger: Ledger, member: str, now: datetime) -> str | None:
    """Move a member that is not a job ID out of every set, into the tag's quarantine."""
    tag = ledger.tag
    sets = [ledger.layout.all_set(tag), *(ledger.layout.state_set(tag, s) for s in State)]
    with client.pipeline(transaction=True) as pipe:
        pipe.watch(*sets)  # type: ignore[no-untyped-call]
        with client.pipeline(transaction=False) as probe:
            for name in sets:
                probe.sismember(name, member)
            holding = [name for name, flag in zip(sets, probe.execute(), strict=True) if flag]
        pipe.multi()
        for name in holding:
            pipe.srem(name, member)
            pipe.sadd(ledger.layout.quarantine(tag), f"{name}:{member}")
        pipe.execute()
    return f"not a job ID: moved from {', '.join(holding)} to {ledger.layout.quarantine(tag)}"


_REPAIRS = {
    "invalid_member": _quarantine,
    "no_state": _settle,
    "several_states": _settle,
    "missing_from_all": _settle,
    "record_mismatch": _settle,
    "stale_index": _reindex,
    "stale_numeric": _reindex,
}
