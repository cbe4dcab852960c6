"""What a tag looks like right now, for the views that refresh (``watch``, the dashboard).

Read from Redis only, in two round trips (one pipeline for the counts, the stalled
set, the tracker's status and the newest events; one for the top results): no
scheduler call and no write, however often a view asks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jobledger.ids import sort_job_ids
from jobledger.ledger import Ledger, event_dicts, isoformat, utcnow
from jobledger.states import State
from jobledger.store import TopEntry, top_results

__all__ = ["Overview", "overview"]


@dataclass
class Overview:
    """Counts per state set, stalled jobs, the tracker's last pass, the newest events
    (newest last) and the best results of one tag, as of ``at``."""

    tag: str
    at: str
    counts: dict[str, int]
    stalled: int
    stalled_ids: list[str]
    tracker: dict[str, str]
    events: list[dict[str, str]]
    top: list[TopEntry] = field(default_factory=list)
    newest_event_id: str | None = None

    @property
    def last_event_id(self) -> str | None:
        """The ID of the tag's newest event (also when no events were asked for)."""
        return self.newest_event_id

    def as_dict(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "at": self.at,
            "counts": self.counts,
            "stalled": self.stalled,
            "stalled_ids": self.stalled_ids,
            "tracker": self.tracker,
            "events": self.events,
            "last_event_id": self.last_event_id,
            "top": [{"job_id": e.job_id, "key": e.key, "value": e.value} for e in self.top],
        }


def overview(
    ledger: Ledger,
    *,
    events: int = 10,
    top: int = 5,
    top_key: str | None = None,
    stalled_shown: int = 20,
) -> Overview:
    """The tag now; ``events``/``top``/``stalled_shown``: how many of each to return."""
    layout, tag = ledger.layout, ledger.tag
    with ledger.client.pipeline(transaction=True) as pipe:
        pipe.scard(layout.all_set(tag))
        for s in State:
            pipe.scard(layout.state_set(tag, s))
        pipe.scard(layout.stalled_jobs(tag))
        pipe.srandmember(layout.stalled_jobs(tag), 1000)
        pipe.hgetall(layout.tracker_status(tag))
        pipe.xrevrange(layout.events(tag), count=max(events, 1))  # 1: the newest event's ID
        replies = pipe.execute()
    names = ["ALL", *(s.value for s in State)]
    counts = dict(zip(names, (int(r) for r in replies[: len(names)]), strict=True))
    stalled, stalled_some, tracker, newest = replies[len(names) :]
    entries = event_dicts(reversed(newest or []))
    last_id = entries[-1]["id"] if entries else None
    ranked = top_results(ledger.client, tag, top, key=top_key, index=False) if top else []
    return Overview(
        tag=tag,
        at=isoformat(utcnow()),
        counts=counts,
        stalled=int(stalled),
        stalled_ids=sort_job_ids({str(j) for j in stalled_some or []})[:stalled_shown],
        tracker={str(k): str(v) for k, v in (tracker or {}).items()},
        events=entries[-events:] if events else [],
        top=ranked,
        newest_event_id=last_id,
    )
