"""The tracker: ask each scheduler once per pass how the tag's jobs stand, file them.

A pass reads the jobs to watch (``PENDING_AND_RUNNING`` plus recently failed
jobs SLURM may requeue), asks every backend in one batched query, plans the
moves with the pure ``plan`` function and applies them as pipelined
compare-and-set moves.  A lease with a fencing token lets exactly one tracker
act per tag; the others wait and take over when it expires.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import redis

from jobledger import keys
from jobledger.errors import JobledgerError
from jobledger.journal import Journal
from jobledger.ledger import Ledger, Transition, isoformat
from jobledger.schedulers import Scheduler
from jobledger.schedulers.base import JobInfo
from jobledger.states import REQUEUEABLE_STATES, State

__all__ = ["Lease", "PassReport", "Tracker", "TrackerSettings", "info_fields", "plan"]

log = logging.getLogger("jobledger.tracker")
T = TypeVar("T")


def _again_if_restarted(run: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a pipeline of scripts, and once more if Redis restarted under it.

    redis-py loads a pipeline's scripts before sending it, but its reconnect retry
    re-sends the EVALSHAs to the restarted server, which has forgotten them (NOSCRIPT).
    The tracker's scripts are compare-and-set, so running the pipeline again is safe.
    """
    try:
        return run(*args, **kwargs)
    except redis.exceptions.NoScriptError:
        return run(*args, **kwargs)


_ACQUIRE_LUA = """
local holder = redis.call('GET', KEYS[1])
if holder and string.sub(holder, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. '|' then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return string.sub(holder, string.len(ARGV[1]) + 2)
end
if holder then return false end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. token, 'PX', ARGV[2])
return tostring(token)
"""

_RELEASE_LUA = """
local holder = redis.call('GET', KEYS[1])
if holder and string.sub(holder, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. '|' then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Lease:
    """Who may move the jobs of one tag: an expiring key plus a fencing counter."""

    def __init__(self, client: redis.Redis, tag: str, owner: str, ttl_s: float) -> None:
        self.client, self.tag, self.owner = client, tag, owner
        self.ttl_ms = int(ttl_s * 1000)
        self._acquire = client.register_script(_ACQUIRE_LUA)
        self._release = client.register_script(_RELEASE_LUA)

    def acquire(self) -> str | None:
        """Take or renew the lease; the fencing token while we hold it, else None."""
        reply = self._acquire(
            keys=[keys.tracker_lease(self.tag), keys.tracker_fence(self.tag)],
            args=[self.owner, self.ttl_ms],
        )
        return None if reply is None else str(reply)

    def release(self) -> None:
        self._release(keys=[keys.tracker_lease(self.tag)], args=[self.owner])


@dataclass(frozen=True)
class TrackerSettings:
    """How a tracker behaves; the defaults are documented in docs/cli.md."""

    interval_s: float = 30.0
    lost_grace_s: float = 600.0
    requeue_window_s: float = 900.0
    lease_ttl_s: float = 90.0
    max_backoff_s: float = 300.0


@dataclass
class PassReport:
    """What one pass over one tag saw and did."""

    tag: str
    active: bool = True  # False when another tracker holds the lease
    checked: int = 0
    moved: list[tuple[str, str, str]] = field(default_factory=list)
    updated: int = 0
    degraded: str | None = None
    replayed: int = 0


def info_fields(info: JobInfo) -> dict[str, Any]:
    """Record fields taken from a scheduler report (None values are left out on write)."""
    return {
        "raw_state": info.raw_state,
        "exit_code": info.exit_code,
        "signal": info.signal,
        "reason": info.reason,
        "started_at": info.started_at,
        "ended_at": info.ended_at,
        "nodes": info.nodes,
    }


def _changed(record: Mapping[str, str], fields: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for name, value in fields.items():
        if value is None:
            continue
        text = isoformat(value) if isinstance(value, datetime) else str(value)
        if record.get(name) != text:
            out[name] = value
    return out


def plan(
    watched: Mapping[str, State],
    records: Mapping[str, Mapping[str, str]],
    infos: Mapping[str, JobInfo],
    *,
    now: datetime,
    lost_grace_s: float,
) -> tuple[list[Transition], dict[str, tuple[State, dict[str, Any]]]]:
    """Decide moves and record updates from what the scheduler reported (pure)."""
    moves: list[Transition] = []
    updates: dict[str, tuple[State, dict[str, Any]]] = {}
    for job_id, current in watched.items():
        record = records.get(job_id, {})
        info = infos.get(job_id)
        if info is None:
            if current is not State.PENDING_AND_RUNNING:
                continue
            since = record.get("missing_since")
            if not since:
                updates[job_id] = (current, {"missing_since": now})
            elif (now - datetime.fromisoformat(since)).total_seconds() >= lost_grace_s:
                reason = f"unknown to the scheduler since {since}"
                moves.append(Transition(job_id, current, State.LOST, {"reason": reason}))
            continue
        fields = info_fields(info)
        if record.get("missing_since"):
            fields["missing_since"] = ""
        if info.state.is_terminal and info.ended_at is None:
            # slurmdbd replaying rows after an outage first writes an end state
            # without End time or exit code: wait for the complete row.
            continue
        if current is State.PENDING_AND_RUNNING:
            if info.state.is_terminal:
                moves.append(Transition(job_id, current, info.state, fields))
                continue
            if record.get("raw_state") == "RUNNING" and info.raw_state in ("PENDING", "REQUEUED"):
                fields["attempts"] = int(record.get("attempts") or 1) + 1
            changed = _changed(record, fields)
            if changed:
                updates[job_id] = (current, changed)
        elif current in REQUEUEABLE_STATES and info.state is not current:
            # SLURM requeued the job (or finished it after a requeue): not a failure.
            moves.append(Transition(job_id, current, info.state, fields, new_attempt=True))
    return moves, updates


class Tracker:
    """Files the jobs of some tags by asking their schedulers; one pass at a time."""

    def __init__(
        self,
        client: redis.Redis,
        tags: Callable[[], Iterable[str]],
        *,
        scheduler: Callable[[str], Scheduler],
        default_scheduler: str,
        home: Path,
        settings: TrackerSettings | None = None,
        owner: str | None = None,
        journal_target: str = "",
    ) -> None:
        self.client = client
        self.tags = tags
        self.scheduler = scheduler
        self.default_scheduler = default_scheduler
        self.settings = settings or TrackerSettings()
        self.owner = owner or f"{threading.get_native_id()}-{uuid.uuid4().hex[:8]}"
        self.journal = Journal(home)
        self.journal_target = journal_target
        self.leases: dict[str, Lease] = {}

    def _lease(self, tag: str) -> Lease:
        if tag not in self.leases:
            self.leases[tag] = Lease(self.client, tag, self.owner, self.settings.lease_ttl_s)
        return self.leases[tag]

    def _watched(self, ledger: Ledger, now: datetime) -> tuple[dict[str, State], dict[str, Any]]:
        watch_states = [State.PENDING_AND_RUNNING, *sorted(REQUEUEABLE_STATES)]
        with self.client.pipeline(transaction=False) as pipe:
            for s in watch_states:
                pipe.smembers(keys.state_set(ledger.tag, s))
            members = pipe.execute()
        watched = {str(j): s for s, ids in zip(watch_states, members, strict=True) for j in ids}
        with self.client.pipeline(transaction=False) as pipe:
            for job_id in watched:
                pipe.hgetall(keys.job_record(ledger.tag, job_id))
            records = dict(zip(watched, pipe.execute(), strict=True))
        window = timedelta(seconds=self.settings.requeue_window_s)
        for job_id, state in list(watched.items()):
            if state in REQUEUEABLE_STATES:
                ended = records[job_id].get("ended_at") or records[job_id].get("updated_at")
                if not ended or now - datetime.fromisoformat(ended) > window:
                    del watched[job_id]
        return watched, records

    def _query(
        self, watched: Iterable[str], records: Mapping[str, Any]
    ) -> tuple[dict[str, JobInfo], str | None]:
        by_backend: dict[str, list[str]] = {}
        for job_id in watched:
            name = records.get(job_id, {}).get("scheduler") or self.default_scheduler
            by_backend.setdefault(name, []).append(job_id)
        infos: dict[str, JobInfo] = {}
        degraded = None
        for name, ids in by_backend.items():
            result = self.scheduler(name).query(ids)
            infos.update(result.jobs)
            degraded = degraded or result.degraded
        return infos, degraded

    def run_pass(self, *, now: datetime) -> list[PassReport]:
        """One pass over every tag: replay the journal, query, move, update."""
        replayed = len(self.journal.replay(self.client, self.journal_target))
        reports = []
        for tag in self.tags():
            ledger = Ledger(self.client, tag)
            report = PassReport(ledger.tag, replayed=replayed)
            reports.append(report)
            token = self._lease(tag).acquire()
            if token is None:
                report.active = False
                continue
            watched, records = self._watched(ledger, now)
            report.checked = len(watched)
            if not watched:
                self._write_status(ledger.tag, report, now)
                continue
            infos, report.degraded = self._query(watched, records)
            moves, updates = plan(
                watched, records, infos, now=now, lost_grace_s=self.settings.lost_grace_s
            )
            outcomes = _again_if_restarted(ledger.apply, moves, now=now, by="tracker", fence=token)
            for tr, outcome in zip(moves, outcomes, strict=True):
                if outcome == -1:
                    report.active = False
                    log.warning("tag %s: lost the tracker lease mid-pass", ledger.tag)
                    break
                if outcome == 1:
                    report.moved.append((tr.job_id, tr.source.value, tr.target.value))
                    log.info("%s %s: %s -> %s", ledger.tag, tr.job_id, tr.source, tr.target)
            if not report.active:
                continue  # a newer tracker holds the lease: leave the rest to it
            report.updated = _again_if_restarted(self._update, ledger, updates)
            self._write_status(ledger.tag, report, now)
        return reports

    def _update(self, ledger: Ledger, updates: Mapping[str, tuple[State, dict[str, Any]]]) -> int:
        with self.client.pipeline(transaction=False) as pipe:
            for job_id, (state, fields) in updates.items():
                ledger.update_record(job_id, state, fields, pipeline=pipe)
            return sum(int(r) for r in pipe.execute())

    def _write_status(self, tag: str, report: PassReport, now: datetime) -> None:
        self.client.hset(
            keys.tracker_status(tag),
            mapping={
                "owner": self.owner,
                "last_pass_at": isoformat(now),
                "mode": "degraded" if report.degraded else "ok",
                "degraded_reason": report.degraded or "",
                "checked": report.checked,
                "moved": len(report.moved),
            },
        )

    def run(
        self,
        stop: threading.Event,
        *,
        now: Callable[[], datetime],
        on_pass: Callable[[list[PassReport]], None] | None = None,
    ) -> None:
        """Pass after pass until ``stop`` is set; back off while Redis or the scheduler fail."""
        failures = 0
        try:
            while not stop.is_set():
                try:
                    reports = self.run_pass(now=now())
                except (JobledgerError, redis.RedisError) as exc:
                    failures += 1
                    wait = min(self.settings.interval_s * 2**failures, self.settings.max_backoff_s)
                    log.warning("pass failed (%s); retrying in %.0f s", exc, wait)
                    stop.wait(wait)
                    continue
                failures = 0
                for report in reports:
                    if report.degraded:
                        log.warning("tag %s: degraded mode: %s", report.tag, report.degraded)
                if on_pass is not None:
                    on_pass(reports)
                stop.wait(self.settings.interval_s)
        finally:
            self.release()

    def release(self) -> None:
        """Give up every lease so another tracker can act at once (not after the TTL)."""
        for lease in self.leases.values():
            with contextlib.suppress(redis.RedisError):  # otherwise it expires by itself
                lease.release()
