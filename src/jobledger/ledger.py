"""The job ledger of one tag: the seed's state sets, job records and the event stream.

Every move between state sets is one Lua script: SMOVE is the compare-and-set
(it moves the ID only if it is still in the expected set) and the record,
history and event are written in the same atomic step only when it did.  A
MULTI/EXEC cannot make the record write conditional on SMOVE's answer, and
WATCH would cost one round trip per job, while these scripts can be pipelined
by the hundred in one round trip per tracker pass.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis

from jobledger import lua
from jobledger.durability import PRIMARY, Durability, NotConfirmed
from jobledger.ids import (
    highest_job_id,
    lowest_job_ids,
    sort_job_ids,
    validate_job_id,
    validate_tag,
)
from jobledger.keys import LAYOUT, KeyLayout, layout_for, other_layout
from jobledger.states import State
from jobledger.store import purge_results
from jobledger.times import isoformat, utcnow

log = logging.getLogger(__name__)

__all__ = [
    "CleanupReport",
    "JobView",
    "Ledger",
    "Transition",
    "allocate_local_id",
    "event_dicts",
    "isoformat",
    "skip_local_ids_to",
    "utcnow",
]

# ARGV[4] names the submission: a job already in the ledger under another submission is a
# different job that got the same ID (-1: refused), under the same one a replay (0).
# Every key is the tag's (one hash slot on a cluster): the tags registry is written apart.
_SUBMIT_LUA = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then
  if ARGV[4] ~= '' and redis.call('HGET', KEYS[3], 'submission') ~= ARGV[4] then return -1 end
  return 0
end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[3], 'state', 'PENDING_AND_RUNNING', 'updated_at', ARGV[2],
           unpack(ARGV, 5))
redis.call('HSETNX', KEYS[3], 'attempts', '1')
redis.call('RPUSH', KEYS[4], cjson.encode({['from']='', to='PENDING_AND_RUNNING',
           at=ARGV[2], by=ARGV[3]}))
redis.call('XADD', KEYS[5], '*', 'job', ARGV[1], 'from', '', 'to', 'PENDING_AND_RUNNING',
           'at', ARGV[2], 'by', ARGV[3])
return 1
"""

_MOVE_LUA = """
if ARGV[7] ~= '' and redis.call('GET', KEYS[6]) ~= ARGV[7] then return -1 end
if redis.call('SMOVE', KEYS[1], KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[3], 'state', ARGV[3], 'updated_at', ARGV[4], unpack(ARGV, 8))
if ARGV[6] == '1' then redis.call('HINCRBY', KEYS[3], 'attempts', 1) end
redis.call('RPUSH', KEYS[4], cjson.encode({['from']=ARGV[2], to=ARGV[3], at=ARGV[4],
           by=ARGV[5]}))
redis.call('XADD', KEYS[5], '*', 'job', ARGV[1], 'from', ARGV[2], 'to', ARGV[3],
           'at', ARGV[4], 'by', ARGV[5])
return 1
"""

# Update a record only while the job is still in the state the caller saw, so a
# late write can never resurrect a job that another process already moved.
_UPDATE_LUA = """
if ARGV[2] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[2] then return -1 end
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], unpack(ARGV, 3))
return 1
"""


# A stalled job stays in PENDING_AND_RUNNING (its scheduler still runs it): the record
# says since when, the stalled set counts them, the event stream tells watchers.
_STALL_LUA = """
if ARGV[2] ~= '' and redis.call('GET', KEYS[5]) ~= ARGV[2] then return -1 end
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then
  redis.call('SREM', KEYS[3], ARGV[1])
  return 0
end
local event = 'stalled'
if ARGV[3] == '' then
  event = 'recovered'
  redis.call('HDEL', KEYS[2], 'stalled_since')
  redis.call('SREM', KEYS[3], ARGV[1])
else
  redis.call('HSET', KEYS[2], 'stalled_since', ARGV[3])
  redis.call('SADD', KEYS[3], ARGV[1])
end
redis.call('XADD', KEYS[4], '*', 'job', ARGV[1], 'from', 'PENDING_AND_RUNNING',
           'to', 'PENDING_AND_RUNNING', 'at', ARGV[4], 'by', 'tracker', 'event', event)
return 1
"""

_CLAIM_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[2] ~= '1' and (redis.call('HEXISTS', KEYS[1], 'resubmitting') == 1
                       or redis.call('HEXISTS', KEYS[1], 'resubmitted_as') == 1) then
  return 0
end
redis.call('HSET', KEYS[1], 'resubmitting', ARGV[1])
return 1
"""

_RELEASE_LUA = """
if redis.call('HGET', KEYS[1], 'resubmitting') == ARGV[1] then
  return redis.call('HDEL', KEYS[1], 'resubmitting')
end
return 0
"""

_LINK_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return redis.call('HSET', KEYS[1], 'resubmit_of', ARGV[1])
"""


def allocate_local_id(client: redis.Redis, layout: KeyLayout = LAYOUT) -> str:
    """A job ID no other local job of this server has: one INCR on the server."""
    return str(int(client.incr(layout.local_job_ids())))


_AT_LEAST_LUA = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if n < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
"""


def skip_local_ids_to(client: redis.Redis, highest: int, layout: KeyLayout = LAYOUT) -> None:
    """Move the local ID counter past ``highest`` (never back): after a server was reset."""
    client.eval(_AT_LEAST_LUA, 1, layout.local_job_ids(), str(highest))


# Cleanup: remove jobs wholly in one step.  KEYS: the ARGV[1] state sets (_ALL first), the
# retired set, then a record and a history per job; ARGV: the set count, "1" to spare jobs
# that are in _ALL (launched meanwhile), "1" to remember them as retired, the job IDs.
_FORGET_LUA = """
local nsets = tonumber(ARGV[1])
local removed = 0
for i = 4, #ARGV do
  local id = ARGV[i]
  if not (ARGV[2] == '1' and redis.call('SISMEMBER', KEYS[1], id) == 1) then
    for k = 1, nsets do redis.call('SREM', KEYS[k], id) end
    local own = nsets + 2 + 2 * (i - 4)
    removed = removed + redis.call('DEL', KEYS[own])
    redis.call('DEL', KEYS[own + 1])
    if ARGV[3] == '1' then redis.call('SADD', KEYS[nsets + 1], id) end
  end
end
return removed
"""


# Drop the events up to the last one cleanup saw (later ones are of jobs launched meanwhile);
# an emptied stream goes too, as a deleted one would.
_TRIM_LUA = """
local n = redis.call('XTRIM', KEYS[1], 'MINID', ARGV[1])
if redis.call('XLEN', KEYS[1]) == 0 then redis.call('DEL', KEYS[1]) end
return n
"""


def event_dicts(entries: Iterable[Any]) -> list[dict[str, str]]:
    """Stream entries (XRANGE replies) as dicts: ``id`` and the entry's fields."""
    return [
        {"id": str(eid), **{str(k): str(v) for k, v in (data or {}).items()}}
        for eid, data in entries
    ]


def _flatten(fields: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for name, value in fields.items():
        if value is None:
            continue
        out += [name, isoformat(value) if isinstance(value, datetime) else str(value)]
    return out


def _history_entry(raw: str) -> dict[str, str]:
    """One history list entry; an entry some other writer mangled is shown, not fatal."""
    try:
        entry = json.loads(raw)
    except ValueError:
        entry = None
    if not isinstance(entry, dict):
        return {"from": "?", "to": "?", "at": "?", "by": f"unreadable entry {raw[:80]!r}"}
    return {k: str(entry.get(k, "?")) for k in ("from", "to", "at", "by")}


@dataclass(frozen=True)
class Transition:
    """One requested move of a job from one state set to another."""

    job_id: str
    source: State
    target: State
    fields: Mapping[str, Any] = field(default_factory=dict)
    new_attempt: bool = False


@dataclass(frozen=True)
class JobView:
    """Everything the ledger knows about one job."""

    job_id: str
    states: list[State]
    in_all: bool
    record: dict[str, str]
    history: list[dict[str, str]]


class Ledger:
    """State sets, records and events of one tag, on one Redis connection."""

    def __init__(
        self,
        client: redis.Redis,
        tag: str,
        *,
        layout: KeyLayout | None = None,
        durability: Durability = PRIMARY,
    ) -> None:
        self.client = client
        self.tag = validate_tag(tag)
        self.layout = layout_for(client, layout)
        self.durability = durability
        self._submit = lua.register(client, _SUBMIT_LUA)
        self._move = lua.register(client, _MOVE_LUA)
        self._update = lua.register(client, _UPDATE_LUA)
        self._stall = lua.register(client, _STALL_LUA)
        self._forget_script = lua.register(client, _FORGET_LUA)
        self._trim_script = lua.register(client, _TRIM_LUA)
        # pipelined by resubmit: a cluster pipeline has no eval(), lua.Script sends EVAL
        self._claim = lua.register(client, _CLAIM_LUA)
        self._release_claim = lua.register(client, _RELEASE_LUA)
        self._link = lua.register(client, _LINK_LUA)
        self._registered = False

    # --- writes -------------------------------------------------------------

    def register(self) -> None:
        """Add the tag to the tags registry (once per Ledger object).

        The registry is no tag's key (its own hash slot on a cluster), so it is never
        written in the scripts of a tag; SADD is idempotent, and it comes before the
        tag's first job, so a registered tag may have no jobs but a job's tag is known.
        """
        if not self._registered:
            self.client.sadd(self.layout.tags_registry(), self.tag)
            self._registered = True

    def record_submission(
        self,
        job_id: str,
        *,
        now: datetime,
        by: str = "launch",
        fields: Mapping[str, Any] | None = None,
        submission: str = "",
        pipeline: redis.client.Pipeline | None = None,
    ) -> Any:
        """Add a job to ``_ALL`` and ``_PENDING_AND_RUNNING`` unless it is already in the ledger.

        Returns 1 when it was added, 0 when it was already known (replays are harmless),
        and -1 when ``submission`` is given and the ledger holds that ID for another
        submission: a different job, which is refused rather than overwritten.  The tag
        is registered first (:meth:`register`), at once even when ``pipeline`` is given.
        """
        validate_job_id(job_id)
        self.register()
        t = self.tag
        record = {"submitted_at": now, **(fields or {})}
        if submission:
            record["submission"] = submission
        return self._submit(
            keys=[
                self.layout.all_set(t),
                self.layout.state_set(t, State.PENDING_AND_RUNNING),
                self.layout.job_record(t, job_id),
                self.layout.job_history(t, job_id),
                self.layout.events(t),
            ],
            args=[job_id, isoformat(now), by, submission, *_flatten(record)],
            client=pipeline or self.client,
        )

    def move(
        self,
        transition: Transition,
        *,
        now: datetime,
        by: str,
        fence: str | None = None,
        pipeline: redis.client.Pipeline | None = None,
    ) -> Any:
        """Move a job between state sets if (and only if) it is in ``transition.source``.

        Returns 1 when moved, 0 when the job was not in the source set, and -1 when
        ``fence`` (a tracker's fencing token) is no longer the tag's current one.
        """
        t, tr = self.tag, transition
        return self._move(
            keys=[
                self.layout.state_set(t, tr.source),
                self.layout.state_set(t, tr.target),
                self.layout.job_record(t, tr.job_id),
                self.layout.job_history(t, tr.job_id),
                self.layout.events(t),
                self.layout.tracker_fence(t),
            ],
            args=[
                tr.job_id,
                tr.source.value,
                tr.target.value,
                isoformat(now),
                by,
                "1" if tr.new_attempt else "0",
                fence or "",
                *_flatten(tr.fields),
            ],
            client=pipeline or self.client,
        )

    def apply(
        self,
        transitions: Iterable[Transition],
        *,
        now: datetime,
        by: str,
        fence: str | None = None,
    ) -> list[int]:
        """Apply many moves in one pipelined round trip; each reply as ``move`` returns it.

        With a durability that wants a replica, the round trip ends with WAIT; moves no
        replica confirmed are logged (a failover may undo them: the tracker's next pass
        files those jobs again, as the scheduler still knows how they ended)."""
        moves = list(transitions)

        def queue(pipe: Any) -> None:
            for tr in moves:
                self.move(tr, now=now, by=by, fence=fence, pipeline=pipe)

        replies, acknowledged = self.durability.run(
            self.client, self.layout.all_set(self.tag), queue
        )
        if acknowledged is not None:
            moved = sum(1 for r in replies if int(r) == 1)
            try:
                self.durability.check(acknowledged, f"{moved} move(s) of tag {self.tag}")
            except NotConfirmed as exc:
                log.warning("%s", exc)
        return [int(r) for r in replies]

    def update_record(
        self,
        job_id: str,
        state: State,
        fields: Mapping[str, Any],
        *,
        fence: str | None = None,
        pipeline: redis.client.Pipeline | None = None,
    ) -> Any:
        """Set record fields of a job that is still in ``state``.

        1 when written, 0 when the job has left ``state``, -1 when ``fence`` is no
        longer the tag's current fencing token (as for ``move``).
        """
        flat = _flatten(fields)
        if not flat:
            return 0
        return self._update(
            keys=[
                self.layout.state_set(self.tag, state),
                self.layout.job_record(self.tag, job_id),
                self.layout.tracker_fence(self.tag),
            ],
            args=[job_id, fence or "", *flat],
            client=pipeline or self.client,
        )

    def set_stalled(
        self,
        job_id: str,
        *,
        since: str | None,
        now: datetime,
        fence: str | None = None,
        pipeline: redis.client.Pipeline | None = None,
    ) -> Any:
        """Mark a running job stalled (``since``: its last heartbeat) or, with ``since``
        None, no longer stalled; an event either way.  Fenced like ``move``: 1 done, 0 the
        job is not running (it only leaves the stalled set), -1 the fence is stale."""
        t = self.tag
        return self._stall(
            keys=[
                self.layout.state_set(t, State.PENDING_AND_RUNNING),
                self.layout.job_record(t, job_id),
                self.layout.stalled_jobs(t),
                self.layout.events(t),
                self.layout.tracker_fence(t),
            ],
            args=[job_id, fence or "", since or "", isoformat(now)],
            client=pipeline or self.client,
        )

    # --- reads --------------------------------------------------------------

    def members(self, state: State) -> set[str]:
        return set(self.client.smembers(self.layout.state_set(self.tag, state)))  # type: ignore[arg-type]

    def snapshot(self, names: Sequence[str] | None = None) -> dict[str, list[str]]:
        """``ALL`` and every state set (or only the sets ``names``: ``ALL`` or state
        values), each as a numerically sorted list of job IDs."""
        names, replies = self._members(names)
        return {n: sort_job_ids(r) for n, r in zip(names, replies, strict=True)}

    def first_ids(
        self, names: Sequence[str] | None = None, first: int = 20
    ) -> tuple[dict[str, list[str]], dict[str, int]]:
        """Each set's ``first`` lowest job IDs (as :meth:`snapshot` orders them, without
        sorting them all: ``status`` of 100,000 jobs shows 20), and the number of jobs in
        each set and in ``ALL``, read in the same transaction as the IDs."""
        names, replies = self._members(names, with_total=True)
        sets, total = replies[:-1], int(replies[-1])
        counts = {n: len(r) for n, r in zip(names, sets, strict=True)}
        counts.setdefault("ALL", total)
        return {n: lowest_job_ids(r, first) for n, r in zip(names, sets, strict=True)}, counts

    def _members(
        self, names: Sequence[str] | None, *, with_total: bool = False
    ) -> tuple[list[str], list[Any]]:
        names = ["ALL", *(s.value for s in State)] if names is None else list(names)
        with self.client.pipeline(transaction=True) as pipe:
            for name in names:
                if name == "ALL":
                    pipe.smembers(self.layout.all_set(self.tag))
                else:
                    pipe.smembers(self.layout.state_set(self.tag, State(name)))
            if with_total:
                pipe.scard(self.layout.all_set(self.tag))
            replies = pipe.execute()
        return names, replies

    def jobs_in_other_layout(self) -> int:
        """How many jobs ``<tag>_ALL`` holds in the other key layout (``{tag}_ALL`` on a
        single server, ``tag_ALL`` on a cluster): data that this layout never reads, as
        when the seed scripts wrote without braces to a cluster, or a dump moved."""
        return int(self.client.scard(other_layout(self.layout).all_set(self.tag)))

    def stalled(self) -> list[str]:
        members = self.client.smembers(self.layout.stalled_jobs(self.tag))
        return sort_job_ids({str(j) for j in members})

    def counts(self) -> dict[str, int]:
        with self.client.pipeline(transaction=True) as pipe:
            pipe.scard(self.layout.all_set(self.tag))
            for s in State:
                pipe.scard(self.layout.state_set(self.tag, s))
            replies = pipe.execute()
        return dict(zip(["ALL", *(s.value for s in State)], replies, strict=True))

    def job(self, job_id: str) -> JobView:
        """The record, state sets and history of one job (all empty when unknown)."""
        validate_job_id(job_id)
        t = self.tag
        with self.client.pipeline(transaction=True) as pipe:
            pipe.sismember(self.layout.all_set(t), job_id)
            for s in State:
                pipe.sismember(self.layout.state_set(t, s), job_id)
            pipe.hgetall(self.layout.job_record(t, job_id))
            pipe.lrange(self.layout.job_history(t, job_id), 0, -1)
            replies = pipe.execute()
        in_all, flags, record, history = replies[0], replies[1:-2], replies[-2], replies[-1]
        states = [s for s, flag in zip(State, flags, strict=True) if flag]
        return JobView(
            job_id=job_id,
            states=states,
            in_all=bool(in_all),
            record=dict(record),
            history=[_history_entry(h) for h in history],
        )

    def claim_resubmission(self, job_ids: Sequence[str], claim: str, *, again: bool) -> list[str]:
        """Mark jobs as being resubmitted by ``claim`` (``<token>|<time>``), atomically per
        job; the jobs claimed.  Not claimed: jobs already resubmitted or being resubmitted
        by another run (unless ``again``), and jobs without a record."""
        with self.client.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                key = self.layout.job_record(self.tag, job_id)
                self._claim(keys=[key], args=[claim, "1" if again else ""], client=pipe)
            replies = pipe.execute()
        return [j for j, r in zip(job_ids, replies, strict=True) if int(r) == 1]

    def release_resubmission(self, job_ids: Sequence[str], claim: str) -> None:
        """Drop this run's claim on jobs it did not resubmit after all."""
        with self.client.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                key = self.layout.job_record(self.tag, job_id)
                self._release_claim(keys=[key], args=[claim], client=pipe)
            pipe.execute()

    def link_resubmissions(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Record that each old job was resubmitted as the new one, on both records (a
        new record not there yet, journaled while Redis was away, is left), and drop the
        old job's claim."""
        with self.client.pipeline(transaction=True) as pipe:
            for old, new in pairs:
                key = self.layout.job_record(self.tag, old)
                pipe.hset(key, "resubmitted_as", new)
                pipe.hdel(key, "resubmitting")
                key = self.layout.job_record(self.tag, new)
                self._link(keys=[key], args=[old], client=pipe)
            pipe.execute()

    def records(
        self, job_ids: Iterable[str], *, fields: Sequence[str] | None = None, chunk: int = 1000
    ) -> Iterator[tuple[str, dict[str, str]]]:
        """(job ID, record) for each of ``job_ids``, a pipelined chunk at a time (the
        records of 100,000 jobs are never all in memory); with ``fields``, only those
        (HMGET: a view over many jobs reads what it shows, not whole records; for many
        fields HGETALL is cheaper still: redis-py's cost is per argument sent)."""
        ids = list(job_ids)
        for start in range(0, len(ids), chunk):
            batch = ids[start : start + chunk]
            with self.client.pipeline(transaction=False) as pipe:
                for j in batch:
                    key = self.layout.job_record(self.tag, j)
                    if fields and len(fields) == 1:
                        pipe.hget(key, fields[0])
                    elif fields:
                        pipe.hmget(key, list(fields))
                    else:
                        pipe.hgetall(key)
                replies = pipe.execute()
            for j, reply in zip(batch, replies, strict=True):
                if fields and len(fields) == 1:
                    yield j, ({} if reply is None else {fields[0]: reply})
                elif fields:
                    yield j, {f: v for f, v in zip(fields, reply, strict=True) if v is not None}
                else:
                    yield j, dict(reply)

    def tracker_status(self) -> dict[str, str]:
        """What the tracker last wrote about this tag (mode, last pass); empty if none ran."""
        return {
            str(k): str(v)
            for k, v in (self.client.hgetall(self.layout.tracker_status(self.tag)) or {}).items()
        }

    def last_job(self) -> str | None:
        """The most recent job of the tag: the highest job ID in ``_ALL``."""
        return highest_job_id(self.client.smembers(self.layout.all_set(self.tag)))  # type: ignore[arg-type]

    def events(self, count: int | None = None) -> list[dict[str, str]]:
        """The newest ``count`` events of the tag (all when None), oldest first."""
        stream = self.layout.events(self.tag)
        if count is None:
            entries = list(self.client.xrange(stream) or [])
        else:
            entries = list(self.client.xrevrange(stream, count=count) or [])[::-1]
        return event_dicts(entries)

    def events_after(self, event_id: str, count: int = 1000) -> list[dict[str, str]]:
        """Up to ``count`` events newer than ``event_id``, oldest first (for followers)."""
        stream = self.layout.events(self.tag)
        return event_dicts(self.client.xrange(stream, min=f"({event_id}", count=count) or [])

    def cleanup(self, *, purge_results_too: bool = False) -> CleanupReport:
        """Empty the tag's state sets, records, histories and events (and results if asked).

        Safe against a launch running meanwhile: the jobs seen when cleanup starts are
        removed, each wholly in one atomic step (every set, record, history), and a job
        recorded during the cleanup is wholly kept.  Without ``purge_results_too`` the
        removed jobs are remembered in ``jobledger:<tag>:retired``, so that ``fsck``
        knows their results were kept on purpose.
        """
        t = self.tag
        with self.client.pipeline(transaction=True) as pipe:
            # Not pipe.sunion(): a cluster pipeline refuses multi-key methods, even when
            # every key is in one slot (as the cluster layout makes them).
            pipe.execute_command(  # type: ignore[no-untyped-call]
                "SUNION", self.layout.all_set(t), *(self.layout.state_set(t, s) for s in State)
            )
            pipe.xrevrange(self.layout.events(t), count=1)
            job_ids, last_event = pipe.execute()
        report = CleanupReport(jobs=len(job_ids))
        seen = sorted(str(j) for j in job_ids)
        report.records = self._forget(seen, only_if_unknown=False, retire=not purge_results_too)
        # Records and histories of no job in the sets (written by hand, or left by a crash):
        # removed unless their job is in the ledger by now (launched meanwhile).
        own = self.layout.own_pattern(t)
        strays: set[str] = set()
        doomed: list[str] = []
        for name in self.client.scan_iter(match=own, count=1000):
            kind, job_id = self.layout.own_key_kind(t, str(name))
            if kind in ("job", "history") and job_id is not None:
                strays.add(job_id)
            elif purge_results_too and kind not in ("lease", "fence", "job", "history"):
                doomed.append(str(name))
        report.records += self._forget(
            sorted(strays - set(seen)), only_if_unknown=True, retire=False
        )
        if last_event:
            last_id = str(last_event[0][0])
            ms, _, seq = last_id.partition("-")
            report.events = int(
                self._trim_script(keys=[self.layout.events(t)], args=[f"{ms}-{int(seq) + 1}"])
            )
        # The jobs are gone from the ledger: so is what the tracker knew of their liveness.
        doomed += [self.layout.tracker_status(t), self.layout.heartbeats(t)]
        doomed.append(self.layout.stalled_jobs(t))
        for start in range(0, len(doomed), 500):
            report.keys_deleted += int(self.client.unlink(*doomed[start : start + 500]))
        if purge_results_too:
            report.results = purge_results(self.client, t, layout=self.layout)
            if not self.client.scard(self.layout.all_set(t)):  # no launch came meanwhile
                self.client.srem(self.layout.tags_registry(), t)
        return report

    def _forget(self, job_ids: list[str], *, only_if_unknown: bool, retire: bool) -> int:
        """Remove jobs wholly (sets, record, history), a batch per atomic script call."""
        t = self.tag
        sets = [self.layout.all_set(t), *(self.layout.state_set(t, s) for s in State)]
        removed = 0
        for start in range(0, len(job_ids), 200):
            batch = job_ids[start : start + 200]
            own = [
                k
                for j in batch
                for k in (self.layout.job_record(t, j), self.layout.job_history(t, j))
            ]
            reply = self._forget_script(
                keys=[*sets, self.layout.retired_jobs(t), *own],
                args=[len(sets), "1" if only_if_unknown else "0", "1" if retire else "0", *batch],
            )
            removed += int(reply)
        return removed


@dataclass
class CleanupReport:
    """What ``cleanup`` deleted."""

    jobs: int = 0
    records: int = 0
    events: int = 0
    results: int = 0
    keys_deleted: int = 0
