"""The tracker: ask each scheduler once per pass how the tag's jobs stand, file them.

A pass reads the jobs to watch (``PENDING_AND_RUNNING`` plus recently failed
jobs SLURM may requeue), asks every backend in one batched query, plans the
moves with the pure ``plan`` function and applies them as pipelined
compare-and-set moves.  A lease with a fencing token lets exactly one tracker
act per tag; the others wait and take over when it expires.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import redis

from jobledger import lua
from jobledger.durability import PRIMARY, Durability
from jobledger.errors import JobledgerError, RedisUnavailable, SchedulerError, UsageError
from jobledger.ids import base_job_id, is_job_id, job_sort_key
from jobledger.journal import Journal
from jobledger.keys import KeyLayout, layout_for
from jobledger.ledger import Ledger, Transition, isoformat, utcnow
from jobledger.logs import stderr_last_line
from jobledger.schedulers import Scheduler
from jobledger.schedulers.base import JobInfo
from jobledger.stalls import StallCheck
from jobledger.states import REQUEUEABLE_STATES, State
from jobledger.usage import usage_fields

__all__ = [
    "Lease",
    "PassReport",
    "Tracker",
    "TrackerSettings",
    "backoff",
    "info_fields",
    "parse_moment",
    "plan",
]

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


# The lease value is "<owner>|<token>|<expires, ms since the epoch>": expiry is decided by
# the trackers' clocks (passed in, so tests need not sleep), and the key's own TTL only
# collects a lease nobody renews.  A value of an earlier version ("<owner>|<token>") has
# no expiry of its own and lasts until its TTL.
_ACQUIRE_LUA = """
local holder = redis.call('GET', KEYS[1])
if holder then
  local owner, token, expires = string.match(holder, '^(.*)|(%d+)|(%d+)$')
  if owner == nil then owner, token = string.match(holder, '^(.*)|(%d+)$') end
  if owner == ARGV[1] then
    redis.call('SET', KEYS[1], owner .. '|' .. token .. '|' .. ARGV[3], 'PX', ARGV[4])
    return token
  end
  if expires == nil or tonumber(expires) > tonumber(ARGV[2]) then return false end
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. token .. '|' .. ARGV[3], 'PX', ARGV[4])
return tostring(token)
"""

_RELEASE_LUA = """
local holder = redis.call('GET', KEYS[1])
if holder and string.sub(holder, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. '|' then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# The tracker's status hash, written only while its fencing token is the current one.
_STATUS_LUA = """
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
return 1
"""


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class Lease:
    """Who may move the jobs of one tag: an expiring key plus a fencing counter."""

    def __init__(
        self,
        client: redis.Redis,
        tag: str,
        owner: str,
        ttl_s: float,
        *,
        layout: KeyLayout | None = None,
    ) -> None:
        self.client, self.tag, self.owner = client, tag, owner
        self.layout = layout_for(client, layout)
        self.ttl_ms = int(ttl_s * 1000)
        self._acquire = lua.register(client, _ACQUIRE_LUA)
        self._release = lua.register(client, _RELEASE_LUA)

    def acquire(self, now: datetime | None = None) -> str | None:
        """Take or renew the lease at ``now``; the fencing token while we hold it, else None."""
        now_ms = _ms(now or utcnow())
        reply = self._acquire(
            keys=[self.layout.tracker_lease(self.tag), self.layout.tracker_fence(self.tag)],
            args=[self.owner, now_ms, now_ms + self.ttl_ms, 2 * self.ttl_ms + 60_000],
        )
        return None if reply is None else str(reply)

    def release(self) -> None:
        self._release(keys=[self.layout.tracker_lease(self.tag)], args=[self.owner])


@dataclass(frozen=True)
class TrackerSettings:
    """How a tracker behaves; the defaults are documented in docs/cli.md."""

    interval_s: float = 30.0
    lost_grace_s: float = 600.0
    requeue_window_s: float = 900.0
    lease_ttl_s: float = 90.0
    max_backoff_s: float = 300.0
    query_chunk: int = 1000  # jobs per scheduler query; the lease is renewed between them
    stall_after_s: float = 3600.0  # a running job's heartbeat older than this: stalled (0: off)
    cancel_stalled: bool = False  # cancel stalled jobs through their scheduler
    share_tags: bool = False  # track --all-tags: split the tags among the live trackers


@dataclass
class PassReport:
    """What one pass over one tag saw and did.

    ``problems`` are the jobs (or the whole tag, job ``""``) this pass skipped, and why:
    a record field that does not parse, a scheduler row that does not, an error.
    """

    tag: str
    active: bool = True  # False when another tracker holds the lease (or the tag is theirs)
    checked: int = 0
    moved: list[tuple[str, str, str]] = field(default_factory=list)
    updated: int = 0
    degraded: str | None = None
    replayed: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)
    stalled: list[str] = field(default_factory=list)  # newly stalled this pass
    recovered: list[str] = field(default_factory=list)  # heartbeating again
    cancelled: list[str] = field(default_factory=list)  # stalled jobs cancelled


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
        "local_dir": info.location,
        "raw_job_id": info.raw_id if info.raw_id != info.job_id else None,
        **(usage_fields(info.usage) if info.usage else {}),
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


def parse_moment(text: str, field_name: str) -> datetime:
    """A stored timestamp; ValueError naming the field if it is not ISO 8601 with a zone."""
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise ValueError(f"{field_name} {text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise ValueError(f"{field_name} {text!r} has no time zone")
    return moment


def _plan_one(
    job_id: str,
    current: State,
    record: Mapping[str, str],
    info: JobInfo | None,
    *,
    now: datetime,
    lost_grace_s: float,
) -> tuple[Transition | None, dict[str, Any] | None]:
    if info is None:
        if current is not State.PENDING_AND_RUNNING:
            return None, None
        since = record.get("missing_since")
        if not since:
            return None, {"missing_since": now}
        if (now - parse_moment(since, "missing_since")).total_seconds() >= lost_grace_s:
            reason = f"unknown to the scheduler since {since}"
            return Transition(job_id, current, State.LOST, {"reason": reason}), None
        return None, None
    fields = info_fields(info)
    if record.get("missing_since"):
        fields["missing_since"] = ""
    if info.state.is_terminal and info.ended_at is None:
        # slurmdbd replaying rows after an outage first writes an end state
        # without End time or exit code: wait for the complete row.
        return None, None
    if current is State.PENDING_AND_RUNNING:
        if info.state.is_terminal:
            return Transition(job_id, current, info.state, fields), None
        if record.get("raw_state") == "RUNNING" and info.raw_state in ("PENDING", "REQUEUED"):
            attempts = record.get("attempts") or "1"
            if not (attempts.isascii() and attempts.isdigit()):
                raise ValueError(f"attempts {attempts!r} is not a whole number")
            fields["attempts"] = int(attempts) + 1
        return None, _changed(record, fields) or None
    if current in REQUEUEABLE_STATES and info.state is not current:
        # SLURM requeued the job (or finished it after a requeue): not a failure.
        return Transition(job_id, current, info.state, fields, new_attempt=True), None
    return None, None


def plan(
    watched: Mapping[str, State],
    records: Mapping[str, Mapping[str, str]],
    infos: Mapping[str, JobInfo],
    *,
    now: datetime,
    lost_grace_s: float,
    skip: Iterable[str] = (),
    problems: list[tuple[str, str]] | None = None,
) -> tuple[list[Transition], dict[str, tuple[State, dict[str, Any]]]]:
    """Decide moves and record updates from what the scheduler reported (pure).

    Jobs in ``skip`` (their scheduler row did not parse) are left alone this pass.  A
    job whose record holds a field that does not parse is left alone too, and noted in
    ``problems``: one bad record never stops the others from being filed.
    """
    moves: list[Transition] = []
    updates: dict[str, tuple[State, dict[str, Any]]] = {}
    skipped = set(skip)
    for job_id, current in watched.items():
        if job_id in skipped:
            continue
        try:
            move, update = _plan_one(
                job_id,
                current,
                records.get(job_id, {}),
                infos.get(job_id),
                now=now,
                lost_grace_s=lost_grace_s,
            )
        except ValueError as exc:
            if problems is not None:
                problems.append((job_id, f"bad record: {exc}"))
            continue
        if move is not None:
            moves.append(move)
        if update:
            updates[job_id] = (current, update)
    return moves, updates


def _stderr_line(move: Transition, record: Mapping[str, str]) -> str | None:
    """The last line a job that did not complete wrote to stderr ("" if none), or None:
    not such a job, it never ran, or this machine cannot read the file."""
    if move.target is State.COMPLETED or move.source is not State.PENDING_AND_RUNNING:
        return None
    merged = {**record, **{k: str(v) for k, v in move.fields.items() if v is not None}}
    if not merged.get("started_at"):
        return None  # never ran (cancelled while queued): nothing to read
    return stderr_last_line(move.job_id, merged)


_STDERR_BUDGET_S = 20.0  # file reading per pass for stderr lines (a hung NFS mount)


class LostLease(Exception):
    """Another tracker took this tag's lease during our pass."""


# Errors that concern the whole pass (Redis or the scheduler is down): the daemon backs
# off.  Any other error concerns one tag: it is reported and the other tags go on.
_INFRASTRUCTURE = (redis.ConnectionError, redis.TimeoutError, RedisUnavailable, SchedulerError)


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
        clock: Callable[[], datetime] | None = None,
        layout: KeyLayout | None = None,
        durability: Durability = PRIMARY,
    ) -> None:
        self.client = client
        self.layout = layout_for(client, layout)
        self.durability = durability
        self.tags = tags
        self.scheduler = scheduler
        self.default_scheduler = default_scheduler
        self.settings = settings or TrackerSettings()
        self.owner = owner or f"{threading.get_native_id()}-{uuid.uuid4().hex[:8]}"
        self.journal = Journal(home)
        self.journal_target = journal_target
        self.clock = clock or utcnow
        self.leases: dict[str, Lease] = {}
        self._status = lua.register(client, _STATUS_LUA)

    def _lease(self, tag: str) -> Lease:
        if tag not in self.leases:
            self.leases[tag] = Lease(
                self.client, tag, self.owner, self.settings.lease_ttl_s, layout=self.layout
            )
        return self.leases[tag]

    def _renew(self, tag: str, token: str) -> None:
        """Renew the lease mid-pass; LostLease if another tracker holds it now."""
        if self._lease(tag).acquire(self.clock()) != token:
            raise LostLease(tag)

    def _watched(
        self, ledger: Ledger, now: datetime, problems: list[tuple[str, str]]
    ) -> tuple[dict[str, State], dict[str, Any]]:
        watch_states = [State.PENDING_AND_RUNNING, *sorted(REQUEUEABLE_STATES)]
        with self.client.pipeline(transaction=False) as pipe:
            for s in watch_states:
                pipe.smembers(self.layout.state_set(ledger.tag, s))
            members = pipe.execute()
        watched = {str(j): s for s, ids in zip(watch_states, members, strict=True) for j in ids}
        for job_id in [j for j in watched if not is_job_id(j)]:
            # Never sent to a scheduler (sacct would refuse the whole list): fsck quarantines.
            problems.append((job_id, "not a job ID (jobledger fsck --repair sets it aside)"))
            del watched[job_id]
        with self.client.pipeline(transaction=False) as pipe:
            for job_id in watched:
                pipe.hgetall(self.layout.job_record(ledger.tag, job_id))
            records = dict(zip(watched, pipe.execute(), strict=True))
        window = timedelta(seconds=self.settings.requeue_window_s)
        for job_id, state in list(watched.items()):
            if state in REQUEUEABLE_STATES:
                name = "ended_at" if records[job_id].get("ended_at") else "updated_at"
                ended = records[job_id].get(name)
                try:
                    if not ended or now - parse_moment(ended, name) > window:
                        del watched[job_id]
                except ValueError as exc:
                    problems.append((job_id, f"bad record: {exc}"))
                    del watched[job_id]
        return watched, records

    def _query(
        self,
        tag: str,
        token: str,
        watched: Iterable[str],
        records: Mapping[str, Any],
        report: PassReport,
    ) -> tuple[dict[str, JobInfo], set[str]]:
        """Ask each backend about its jobs, a chunk at a time, renewing the lease between."""
        by_backend: dict[str, dict[str, Mapping[str, str]]] = {}
        for job_id in watched:
            record = records.get(job_id, {})
            name = record.get("scheduler") or self.default_scheduler
            by_backend.setdefault(name, {})[job_id] = record
        infos: dict[str, JobInfo] = {}
        skip: set[str] = set()
        chunk = max(1, self.settings.query_chunk)
        queried = 0
        for name, jobs in by_backend.items():
            try:
                backend = self.scheduler(name)
            except UsageError as exc:  # a record naming a backend this version lacks
                report.problems += [(j, str(exc)) for j in jobs]
                skip |= set(jobs)
                continue
            # A chunk is so many jobs or arrays: every task of one array goes in the same
            # query, which SLURM answers for the array at once (10,000 tasks of one array
            # cost ten identical sacct calls, 0.9 s, when chunked by task).
            groups: dict[str, list[str]] = {}
            for job_id in jobs:
                groups.setdefault(base_job_id(job_id), []).append(job_id)
            bases = list(groups)
            for start in range(0, len(bases), chunk):
                if queried:  # between any two scheduler queries, whichever backend
                    self._renew(tag, token)
                part = {j: jobs[j] for b in bases[start : start + chunk] for j in groups[b]}
                result = backend.query(part)
                queried += 1
                infos.update(result.jobs)
                report.degraded = report.degraded or result.degraded
                for job_id, why in result.problems:
                    report.problems.append((job_id, f"{name}: {why}"))
                    # A row whose job cannot be told: no job of the chunk counts as missing.
                    skip |= {job_id} if job_id else set(part) - result.jobs.keys()
        return infos, skip

    def run_pass(self, *, now: datetime) -> list[PassReport]:
        """One pass over every tag: replay the journal, query, move, update.

        An error in one tag (bad data, a Redis error on one of its keys) is logged,
        reported in that tag's report and status, and the other tags go on.
        """
        replayed = len(self.journal.replay(self.client, self.journal_target, self.durability))
        reports = []
        tags = list(self.tags())
        mine = self._my_share(tags) if self.settings.share_tags else None
        for tag in tags:
            report = PassReport(tag, replayed=replayed)
            reports.append(report)
            if mine is not None and tag not in mine:
                report.active = False
                if tag in self.leases:  # it was ours before another tracker came up
                    with contextlib.suppress(redis.RedisError):
                        self.leases.pop(tag).release()
                continue
            try:
                self._pass_tag(tag, report, now)
            except LostLease:
                report.active = False
                log.warning("tag %s: another tracker took the lease mid-pass", tag)
            except _INFRASTRUCTURE:
                raise
            except Exception as exc:
                log.exception("tag %s: pass failed", tag)
                report.problems.append(("", f"{type(exc).__name__}: {exc}"))
                with contextlib.suppress(redis.RedisError):
                    self._write_status(tag, report, now, token=None)
        return reports

    def _my_share(self, tags: list[str]) -> set[str]:
        """The tags this tracker should track: those it ranks first among the live
        trackers (rendezvous hashing), so N trackers take about 1/N of the tags each and
        a tracker that comes or goes moves only its own share.

        Live trackers are ``jobledger:trackers`` (owner -> ms until which it counts as
        alive: one lease TTL after its last pass), a key of no tag, written apart from
        every tag's keys.  The per-tag lease stays what guarantees one tracker per tag;
        this only decides who asks for which lease.
        """
        now_ms = _ms(self.clock())  # the clock leases use: one tracker, one time
        registry = self.layout.trackers()
        with self.client.pipeline(transaction=False) as pipe:
            pipe.zadd(registry, {self.owner: now_ms + int(self.settings.lease_ttl_s * 1000)})
            pipe.zremrangebyscore(registry, "-inf", now_ms)  # trackers that stopped passing
            pipe.zrange(registry, 0, -1)
            live = [str(o) for o in pipe.execute()[2]] or [self.owner]
        return {t for t in tags if max(live, key=lambda owner: _rank(t, owner)) == self.owner}

    def _pass_tag(self, tag: str, report: PassReport, now: datetime) -> None:
        ledger = Ledger(self.client, tag, layout=self.layout, durability=self.durability)
        token = self._lease(tag).acquire(self.clock())
        if token is None:
            report.active = False
            return
        watched, records = self._watched(ledger, now, report.problems)
        report.checked = len(watched)
        if watched:
            infos, skip = self._query(tag, token, watched, records, report)
            moves, updates = plan(
                watched,
                records,
                infos,
                now=now,
                lost_grace_s=self.settings.lost_grace_s,
                skip=skip,
                problems=report.problems,
            )
            self._renew(tag, token)
            outcomes = _again_if_restarted(ledger.apply, moves, now=now, by="tracker", fence=token)
            filed: list[Transition] = []
            for tr, outcome in zip(moves, outcomes, strict=True):
                if outcome == -1:
                    raise LostLease(tag)
                if outcome == 1:
                    filed.append(tr)
                    report.moved.append((tr.job_id, tr.source.value, tr.target.value))
                    log.info("%s %s: %s -> %s", tag, tr.job_id, tr.source, tr.target)
            report.updated = _again_if_restarted(self._update, ledger, updates, token)
            # Extras come after the jobs are filed: a stuck file read can delay them, never
            # the filing itself.
            self._stderr_lines(ledger, token, filed, records)
            if self.settings.stall_after_s > 0:
                running = {j for j, st in watched.items() if st is State.PENDING_AND_RUNNING}
                running -= {tr.job_id for tr in moves}
                check = StallCheck(
                    self.client,
                    ledger,
                    token,
                    stall_after_s=self.settings.stall_after_s,
                    renew=lambda: self._renew(tag, token),
                )
                found = check.run(running, infos, records, now=now)
                if found.lost_lease:
                    raise LostLease(tag)
                if self.settings.cancel_stalled:
                    self._cancel_stalled(ledger, token, found.still_stalled, records, report, now)
                report.stalled, report.recovered = found.stalled, found.recovered
        for job_id, why in report.problems:
            log.warning("tag %s, job %s: skipped: %s", tag, job_id or "(unknown)", why)
        if self._write_status(tag, report, now, token=token) == -1:
            raise LostLease(tag)

    def _stderr_lines(
        self,
        ledger: Ledger,
        token: str,
        filed: list[Transition],
        records: Mapping[str, Mapping[str, str]],
    ) -> None:
        """Keep the last stderr line of each job just filed other than COMPLETED, for
        ``jobledger failures``; at most ``_STDERR_BUDGET_S`` of file reading per pass."""
        lines: list[tuple[Transition, str]] = []
        deadline = time.monotonic() + _STDERR_BUDGET_S
        for tr in filed:
            if time.monotonic() > deadline:
                log.warning(
                    "%s: stopped reading stderr files after %g s", ledger.tag, _STDERR_BUDGET_S
                )
                break
            try:
                line = _stderr_line(tr, records.get(tr.job_id, {}))
            except Exception:  # a hand-edited pattern, an odd file: never fail the pass
                log.warning("%s %s: cannot read its stderr", ledger.tag, tr.job_id, exc_info=True)
                continue
            if line is not None:
                lines.append((tr, line))
        if not lines:
            return
        self._renew(ledger.tag, token)
        with self.client.pipeline(transaction=False) as pipe:
            for tr, line in lines:
                fields = {"stderr_last": line}
                ledger.update_record(tr.job_id, tr.target, fields, fence=token, pipeline=pipe)
            if -1 in [int(r) for r in pipe.execute()]:
                raise LostLease(ledger.tag)

    def _cancel_stalled(
        self,
        ledger: Ledger,
        token: str,
        job_ids: set[str],
        records: Mapping[str, Mapping[str, str]],
        report: PassReport,
        now: datetime,
    ) -> None:
        """Cancel stalled jobs through their scheduler, once each (the record keeps when)."""
        by_backend: dict[str, dict[str, Mapping[str, str]]] = {}
        for job_id in sorted(job_ids, key=job_sort_key):
            record = records.get(job_id, {})
            if record.get("stall_cancelled_at"):
                continue
            name = record.get("scheduler") or self.default_scheduler
            by_backend.setdefault(name, {})[job_id] = record
        for name, jobs in by_backend.items():
            self._renew(ledger.tag, token)
            try:
                self.scheduler(name).cancel(jobs)
            except JobledgerError as exc:
                report.problems += [(j, f"cancel of a stalled job failed: {exc}") for j in jobs]
                continue
            stamp = {"stall_cancelled_at": now}
            with self.client.pipeline(transaction=False) as pipe:
                for job_id in jobs:
                    ledger.update_record(
                        job_id, State.PENDING_AND_RUNNING, stamp, fence=token, pipeline=pipe
                    )
                if -1 in [int(r) for r in pipe.execute()]:
                    raise LostLease(ledger.tag)
            report.cancelled += list(jobs)

    def _update(
        self, ledger: Ledger, updates: Mapping[str, tuple[State, dict[str, Any]]], token: str
    ) -> int:
        with self.client.pipeline(transaction=False) as pipe:
            for job_id, (state, fields) in updates.items():
                ledger.update_record(job_id, state, fields, fence=token, pipeline=pipe)
            replies = [int(r) for r in pipe.execute()]
        if -1 in replies:
            raise LostLease(ledger.tag)
        return sum(replies)

    def _write_status(
        self, tag: str, report: PassReport, now: datetime, *, token: str | None
    ) -> int:
        status: dict[str, Any] = {
            "owner": self.owner,
            "last_pass_at": isoformat(now),
            "mode": "degraded" if report.degraded else "ok",
            "degraded_reason": report.degraded or "",
            "checked": report.checked,
            "moved": len(report.moved),
            "problems": len(report.problems),
        }
        if report.problems:
            job_id, why = report.problems[-1]
            where = f"job {job_id}" if job_id else "the tag"
            status["last_problem"] = f"{where}: {why}"
            status["last_problem_at"] = isoformat(now)
        flat = [str(x) for pair in status.items() for x in pair]
        return int(
            self._status(
                keys=[self.layout.tracker_status(tag), self.layout.tracker_fence(tag)],
                args=[token or "", *flat],
            )
        )

    def run(
        self,
        stop: threading.Event,
        *,
        now: Callable[[], datetime],
        on_pass: Callable[[list[PassReport]], None] | None = None,
    ) -> None:
        """Pass after pass until ``stop`` is set; back off while a pass fails.

        Nothing a pass raises ends the loop: Redis or the scheduler being down is
        logged as a warning, anything else with its traceback, and the wait before the
        next try doubles up to ``max_backoff_s``.
        """
        failures = 0
        try:
            while not stop.is_set():
                try:
                    reports = self.run_pass(now=now())
                except Exception as exc:
                    failures += 1
                    wait = backoff(self.settings.interval_s, failures, self.settings.max_backoff_s)
                    if isinstance(exc, (JobledgerError, redis.RedisError)):
                        log.warning("pass failed (%s); retrying in %.0f s", exc, wait)
                    else:
                        log.exception("pass failed unexpectedly; retrying in %.0f s", wait)
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
        """Give up every lease so another tracker can act at once (not after the TTL), and
        leave the live trackers, so they take this one's share of the tags."""
        for lease in self.leases.values():
            with contextlib.suppress(redis.RedisError):  # otherwise it expires by itself
                lease.release()
        if self.settings.share_tags:
            with contextlib.suppress(redis.RedisError):
                self.client.zrem(self.layout.trackers(), self.owner)


def _rank(tag: str, owner: str) -> bytes:
    """Rendezvous hashing: the live tracker with the highest rank for a tag tracks it."""
    return hashlib.blake2b(f"{tag}\0{owner}".encode(), digest_size=8).digest()


def backoff(interval_s: float, failures: int, cap_s: float) -> float:
    """interval x 2^failures, at most ``cap_s`` (and no float overflow after 1,024 failures)."""
    return float(min(interval_s * 2 ** min(failures, 32), cap_s))
