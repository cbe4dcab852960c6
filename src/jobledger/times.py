"""The clock and the one timestamp format of the ledger (light: no redis-py)."""

from __future__ import annotations

from datetime import datetime, timezone

__all__ = ["isoformat", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def isoformat(moment: datetime) -> str:
    """Timestamps are stored as ISO 8601 in UTC, readable with plain redis-cli."""
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")
