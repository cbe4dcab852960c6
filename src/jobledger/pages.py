"""A tag's jobs a page at a time, filtered by state and sorted, for views that show a few.

A page reads its jobs' records only (one pipelined HMGET per job on the page), never
the whole tag's: the order is computed from the state set alone when sorting by job
ID, or from one field of every job in the filter for another column, and kept for as
long as the tag has no new event (and at most ``ttl_s``), so paging through 100,000
jobs sorts them once.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from jobledger.errors import UsageError
from jobledger.ids import sort_job_ids
from jobledger.ledger import Ledger
from jobledger.states import State, parse_states
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


class JobPages:
    """Pages of jobs, with the orders of the last few (tag, state, sort) kept."""

    def __init__(self, *, ttl_s: float = 30.0, kept: int = 16) -> None:
        self.ttl_s = ttl_s
        self.kept = kept
        self._orders: OrderedDict[tuple[str, str, str], tuple[str, float, list[str], int]] = (
            OrderedDict()
        )
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
        name = "ALL" if state.upper() == "ALL" else parse_states(state)[0].value
        order, present = self._order(ledger, name, sort)
        # Descending reverses only the jobs that have the value: the others stay last.
        shown = range(offset, min(offset + limit, len(order)))
        chosen = [order[present - 1 - i if descending and i < present else i] for i in shown]
        records = dict(ledger.records(chosen, fields=PAGE_FIELDS))
        jobs = [{"job_id": j, **records.get(j, {})} for j in chosen]
        return Page(ledger.tag, name, sort, descending, offset, limit, len(order), jobs)

    def _order(self, ledger: Ledger, name: str, sort: str) -> tuple[list[str], int]:
        key = (ledger.tag, name, sort)
        stamp = _stamp(ledger, name)
        now = time.monotonic()
        with self._lock:
            cached = self._orders.get(key)
            if cached is not None and cached[0] == stamp and now - cached[1] < self.ttl_s:
                self._orders.move_to_end(key)
                return cached[2], cached[3]
        order, present = _sorted_ids(ledger, name, sort)
        with self._lock:
            self._orders[key] = (stamp, now, order, present)
            self._orders.move_to_end(key)
            while len(self._orders) > self.kept:
                self._orders.popitem(last=False)
        return order, present


def _stamp(ledger: Ledger, name: str) -> str:
    """Changes whenever a job enters or leaves the set: every move adds an event."""
    with ledger.client.pipeline(transaction=True) as pipe:
        pipe.xrevrange(ledger.layout.events(ledger.tag), count=1)
        pipe.scard(_set_key(ledger, name))
        newest, size = pipe.execute()
    return f"{newest[0][0] if newest else ''}|{size}"


def _set_key(ledger: Ledger, name: str) -> str:
    if name == "ALL":
        return ledger.layout.all_set(ledger.tag)
    return ledger.layout.state_set(ledger.tag, State(name))


def _sorted_ids(ledger: Ledger, name: str, sort: str) -> tuple[list[str], int]:
    """The set's job IDs in ascending order of ``sort``, jobs without a value last, and
    how many have one (descending order reverses only those)."""
    ids = sort_job_ids({str(j) for j in ledger.client.smembers(_set_key(ledger, name))})
    if sort == "job_id":
        return ids, len(ids)
    values: dict[str, Any] = {j: r.get(sort) for j, r in ledger.records(ids, fields=[sort])}
    if sort in _NUMERIC:
        values = {j: as_number(v) for j, v in values.items()}
    present = [j for j in ids if values[j] is not None]
    present.sort(key=values.__getitem__)  # stable: ties stay in job ID order
    return present + [j for j in ids if values[j] is None], len(present)
