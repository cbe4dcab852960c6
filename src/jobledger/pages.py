"""A tag's jobs a page at a time, filtered by state and sorted, for views that show a few.

A page reads its jobs' records only (one pipelined HMGET per job on the page), never
the whole tag's: the order is computed from the state set alone when sorting by job
ID, or from one field of every job in the filter for another column, then brought up
to date from the tag's event stream (each job an event names is put in its new place)
and computed again after ``ttl_s`` (30 s; sorting by job ID: 300 s), so paging through
100,000 jobs, or a state change, does not sort them again.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from jobledger.errors import UsageError
from jobledger.ids import job_sort_key, sort_job_ids
from jobledger.ledger import Ledger
from jobledger.states import parse_states
from jobledger.store import as_number

__all__ = ["PAGE_FIELDS", "SORTS", "JobPages", "Page"]

PAGE_FIELDS = (
    "state",
    "submitted_at",
    "started_at",
    "ended_at",
    "elapsed_s",
    "exit_code",
    "reason",
    "attempts",
    "max_rss_bytes",
    "cpu_efficiency",
    "mem_efficiency",
    "name",
    "resubmitted_as",
    "resubmit_of",
    "stalled_since",
)
"""The record fields a page shows for each job."""

SORTS = (
    "job_id",
    "state",
    "submitted_at",
    "started_at",
    "ended_at",
    "elapsed_s",
    "exit_code",
    "attempts",
    "max_rss_bytes",
    "cpu_efficiency",
    "mem_efficiency",
)
"""The columns a page can be sorted by."""

_NUMERIC = frozenset(
    {"elapsed_s", "exit_code", "attempts", "max_rss_bytes", "cpu_efficiency", "mem_efficiency"}
)


@dataclass(frozen=True)
class Page:
    """``jobs`` (each: ``job_id`` and the :data:`PAGE_FIELDS` its record has) at
    ``offset`` of ``total`` jobs in the filter."""

    tag: str
    state: str
    sort: str
    descending: bool
    offset: int
    limit: int
    total: int
    jobs: list[dict[str, str]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "state": self.state,
            "sort": self.sort,
            "descending": self.descending,
            "offset": self.offset,
            "limit": self.limit,
            "total": self.total,
            "jobs": self.jobs,
        }


@dataclass
class _Order:
    """The sorted job IDs of one (tag, state set, sort column), as of event ``event_id``
    and set size ``size``: ``present`` (jobs with a value, ascending by value then job
    ID) then ``absent`` (jobs without one, by job ID)."""

    event_id: str
    size: int
    computed_at: float
    present: list[str]
    absent: list[str]
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return len(self.present) + len(self.absent)

    def at(self, i: int, descending: bool) -> str:
        n = len(self.present)
        if i < n:
            return self.present[n - 1 - i if descending else i]
        return self.absent[i - n]


class JobPages:
    """Pages of jobs, with the orders of the last few (tag, state, sort) kept and brought
    up to date from the tag's event stream (a move costs a few inserts, not a new sort)."""

    def __init__(self, *, ttl_s: float = 30.0, id_ttl_s: float = 300.0, kept: int = 16) -> None:
        # A full sort at least this often: it catches what no event announces (the
        # tracker records a start time or a requeue's attempts without one; a seed
        # script moves IDs).  Sorting by job ID depends on set membership only, which
        # the events and the set's size tell, so it re-sorts more rarely.
        self.ttl_s = ttl_s
        self.id_ttl_s = id_ttl_s
        self.kept = kept
        self._orders: OrderedDict[tuple[str, str, str], _Order] = OrderedDict()
        self._lock = threading.Lock()

    def page(
        self,
        ledger: Ledger,
        *,
        state: str = "ALL",
        sort: str = "job_id",
        descending: bool = False,
        offset: int = 0,
        limit: int = 50,
    ) -> Page:
        """One page; ``state`` is ``ALL`` or a state (``FAILED``, ``RUNNING``, ...)."""
        if sort not in SORTS:
            raise UsageError(f"cannot sort by {sort!r} (choose from {', '.join(SORTS)})")
        if offset < 0 or not 1 <= limit <= 1000:
            raise UsageError("offset must be >= 0 and limit between 1 and 1000")
        if state.upper() == "ALL":
            name = "ALL"
        else:
            chosen_states = parse_states(state)
            if len(chosen_states) > 1:
                raise UsageError("a page shows one state at a time (or ALL)")
            name = chosen_states[0].value
        order = self._order(ledger, name, sort)
        # Descending reverses only the jobs that have the value: the others stay last.
        chosen = [order.at(i, descending) for i in range(offset, min(offset + limit, order.total))]
        records = dict(ledger.records(chosen, fields=PAGE_FIELDS))
        jobs = [{"job_id": j, **records.get(j, {})} for j in chosen]
        return Page(ledger.tag, name, sort, descending, offset, limit, order.total, jobs)

    def _order(self, ledger: Ledger, name: str, sort: str) -> _Order:
        key = (ledger.tag, name, sort)
        newest, size = _stamp(ledger, name)
        with self._lock:  # one request brings an order up to date at a time
            order = self._orders.get(key)
            ttl = self.id_ttl_s if sort == "job_id" else self.ttl_s
            fresh = order is not None and time.monotonic() - order.computed_at < ttl
            if order is None or not fresh:
                order = _computed(ledger, name, sort, newest, size)
            elif (order.event_id, order.size) != (newest, size):
                order = _advanced(order, ledger, name, sort, size) or _computed(
                    ledger, name, sort, newest, size
                )
            self._orders[key] = order
            self._orders.move_to_end(key)
            while len(self._orders) > self.kept:
                self._orders.popitem(last=False)
            return order


_MAX_EVENTS = 20_000  # more changes than this since the last page: sort again instead


def _stamp(ledger: Ledger, name: str) -> tuple[str, int]:
    """The tag's newest event ID and the set's size: every move adds an event."""
    with ledger.client.pipeline(transaction=True) as pipe:
        pipe.xrevrange(ledger.layout.events(ledger.tag), count=1)
        pipe.scard(_set_key(ledger, name))
        newest, size = pipe.execute()
    return (str(newest[0][0]) if newest else ""), int(size)


def _set_key(ledger: Ledger, name: str) -> str:
    return ledger.layout.set_name(ledger.tag, name)


def _sort_values(ledger: Ledger, ids: list[str], sort: str) -> dict[str, Any]:
    values: dict[str, Any] = {j: None for j in ids}
    for job_id, record in ledger.records(ids, fields=[sort]):
        value = record.get(sort)
        values[job_id] = as_number(value) if sort in _NUMERIC else value
    return values


def _computed(ledger: Ledger, name: str, sort: str, newest: str, size: int) -> _Order:
    """The set's job IDs sorted from scratch (one SMEMBERS; another column: one HMGET of
    that field per job)."""
    ids = sort_job_ids({str(j) for j in ledger.client.smembers(_set_key(ledger, name))})
    now = time.monotonic()
    if sort == "job_id":
        return _Order(newest, size, now, ids, [])
    values = _sort_values(ledger, ids, sort)
    present = [j for j in ids if values[j] is not None]
    present.sort(key=values.__getitem__)  # stable: ties stay in job ID order
    absent = [j for j in ids if values[j] is None]
    return _Order(newest, size, now, present, absent, values)


def _advanced(order: _Order, ledger: Ledger, name: str, sort: str, size: int) -> _Order | None:
    """``order`` moved forward by the events since it was made: each job an event names
    leaves its place and, if the set holds it now, is inserted at its new one.  None when
    that cannot be trusted (too many events, or the set's size disagrees: a cleanup, or
    a move made without jobledger), so the caller sorts again."""
    if not order.event_id:
        return None
    events = ledger.events_after(order.event_id, _MAX_EVENTS + 1)
    if len(events) > _MAX_EVENTS:
        return None
    now_in: dict[str, str] = {}
    for event in events:
        now_in[event.get("job", "")] = event.get("to", "")
    touched = set(now_in)
    members = [j for j, to in now_in.items() if j and (name == "ALL" or to == name)]
    present = [j for j in order.present if j not in touched]
    absent = [j for j in order.absent if j not in touched]
    values = order.values
    if sort == "job_id":
        for job_id in members:
            bisect.insort(present, job_id, key=job_sort_key)
    else:
        values = {**order.values, **_sort_values(ledger, members, sort)}
        for job_id in members:
            if values[job_id] is None:
                bisect.insort(absent, job_id, key=job_sort_key)
            else:
                bisect.insort(present, job_id, key=lambda j: (values[j], job_sort_key(j)))
    if len(present) + len(absent) != size:
        return None
    newest = events[-1]["id"] if events else order.event_id
    return _Order(newest, size, order.computed_at, present, absent, values)
