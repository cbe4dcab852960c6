"""Stalled jobs: running jobs whose code stopped heartbeating.

Job code heartbeats through the results API (every write, ``heartbeat()``, the
``heartbeat_s`` thread): one ``ZADD`` to ``jobledger:<tag>:heartbeats``.  In each pass
the tracker hands :class:`StallCheck` the jobs still running after its moves; the
check reads only the stale end of that index and the (small) stalled set, marks and
clears stalls through the fenced :meth:`Ledger.set_stalled`, and forgets heartbeats
of jobs that ended.  A stalled job stays in PENDING_AND_RUNNING: its scheduler still
runs it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from jobledger.ids import job_sort_key
from jobledger.ledger import Ledger, isoformat
from jobledger.schedulers.base import JobInfo

__all__ = ["StallCheck", "Stalls"]

log = logging.getLogger("jobledger.tracker")


@dataclass
class Stalls:
    """What one check found: newly stalled, recovered, and every job still stalled."""

    stalled: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)
    still_stalled: set[str] = field(default_factory=set)
    lost_lease: bool = False


class StallCheck:
    """One tag's stall check within a tracker pass (``token``: the pass's fence)."""

    def __init__(
        self,
        client: Any,
        ledger: Ledger,
        token: str,
        *,
        stall_after_s: float,
        renew: Callable[[], None],
    ) -> None:
        self.client, self.ledger, self.token = client, ledger, token
        self.stall_after_s = stall_after_s
        self.renew = renew
        self.beats = ledger.layout.heartbeats(ledger.tag)
        self.stalled_set = ledger.layout.stalled_jobs(ledger.tag)

    def run(
        self,
        running: set[str],
        infos: Mapping[str, JobInfo],
        records: Mapping[str, Mapping[str, str]],
        *,
        now: datetime,
    ) -> Stalls:
        """Mark, clear and forget, as the module says.

        Only a job its scheduler reports RUNNING now can stall, and only on a heartbeat
        of this run of it (not one from before a requeue).  A stalled job is back when a
        heartbeat comes after the one it stalled on, or when its scheduler says it no
        longer runs it; a job this pass has no answer about stays as it is.
        """
        threshold = now.timestamp() - self.stall_after_s
        with self.client.pipeline(transaction=False) as pipe:
            pipe.zrangebyscore(self.beats, "-inf", threshold, withscores=True)
            pipe.smembers(self.stalled_set)
            old_beats, members = pipe.execute()
        stale = {str(m): float(score) for m, score in old_beats or []}
        stalled = {str(j) for j in members}
        marks: dict[str, str | None] = {}
        for job_id, beat in stale.items():
            if job_id not in running or job_id in stalled:
                continue
            info = infos.get(job_id)
            moment = _moment(beat)
            if info is None or not _executing(info) or moment is None:
                continue
            if info.started_at is not None and beat < info.started_at.timestamp():
                continue  # the heartbeat of an earlier run of the job (before a requeue)
            marks[job_id] = isoformat(moment)
        watched = [j for j in stalled if j in running]
        with self.client.pipeline(transaction=False) as pipe:
            for job_id in watched:
                pipe.zscore(self.beats, job_id)
            scores = pipe.execute() if watched else []
        recovered = [
            j
            for j, score in zip(watched, scores, strict=True)
            if (j in infos and not _executing(infos[j])) or _beat_since(score, records.get(j, {}))
        ]
        marks.update(dict.fromkeys(recovered))
        found = self._write(marks, stale, stalled, running, now)
        found.still_stalled = (stalled - set(recovered)) & running | set(found.stalled)
        # One line per pass, not per job: 100,000 jobs can stall at once (a hung filesystem).
        for ids, what in ((found.stalled, "stalled"), (found.recovered, "heartbeating again")):
            if ids:
                shown = " ".join(sorted(ids, key=job_sort_key)[:20])
                more = f" (+{len(ids) - 20} more)" if len(ids) > 20 else ""
                log.info("%s: %d job(s) %s: %s%s", self.ledger.tag, len(ids), what, shown, more)
        return found

    def _write(
        self,
        marks: Mapping[str, str | None],
        stale: Mapping[str, float],
        stalled: set[str],
        running: set[str],
        now: datetime,
    ) -> Stalls:
        gone_beats = [j for j in stale if j not in running]  # ended: it means nothing now
        gone_stalled = [j for j in stalled if j not in running]
        self.renew()
        with self.client.pipeline(transaction=False) as pipe:
            for job_id, since in marks.items():
                self.ledger.set_stalled(
                    job_id, since=since, now=now, fence=self.token, pipeline=pipe
                )
            if gone_beats:
                pipe.zrem(self.beats, *gone_beats)
            if gone_stalled:
                pipe.srem(self.stalled_set, *gone_stalled)
            replies = pipe.execute()
        found = Stalls()
        for (job_id, since), reply in zip(marks.items(), replies, strict=False):
            if reply == -1:
                found.lost_lease = True
            elif reply == 1:
                (found.stalled if since else found.recovered).append(job_id)
        return found


def _moment(unix_time: float) -> datetime | None:
    """A heartbeat's time; None for a score no clock gives (-inf, 1e300: written by hand)."""
    try:
        return datetime.fromtimestamp(unix_time, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def _beat_since(score: float | None, record: Mapping[str, str]) -> bool:
    """A heartbeat newer than the one the job was marked stalled on (the mark is in whole
    seconds, so newer means more than a second after it)."""
    since = record.get("stalled_since")
    if score is None or not since:
        return False
    try:
        marked = datetime.fromisoformat(since).timestamp()
    except ValueError:
        return True  # a mark that cannot be read: let the job be judged afresh
    return float(score) >= marked + 1.0


def _executing(info: JobInfo | None) -> bool:
    """The scheduler says the job runs now (not pending, requeued, suspended, ending)."""
    return info is not None and info.raw_state.split(" ")[0].rstrip("+") == "RUNNING"
