"""A local write-ahead journal for submissions that Redis could not take.

``launch`` writes one small JSON file per submitted job before it records the
job in Redis and removes the file afterwards; if Redis is unreachable the file
stays, and any later command that reaches Redis replays it.  Replays are safe
to repeat or race: recording a submission is a no-op for a job already in the
ledger.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import redis

from jobledger.ledger import Ledger

__all__ = ["Journal", "JournalEntry"]


@dataclass(frozen=True)
class JournalEntry:
    """One submitted job waiting to be recorded in the ledger."""

    tag: str
    job_id: str
    submitted_at: str
    fields: dict[str, str]
    target: str = ""  # the server it belongs to (a secret-free URL); "" matches any


class Journal:
    """The journal directory of one experiment home (``.jobledger/journal``)."""

    def __init__(self, home: Path) -> None:
        self.dir = home / ".jobledger" / "journal"

    def write(self, entry: JournalEntry) -> Path:
        """Persist an entry durably (fsync) before anything else is attempted."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = f"{entry.tag}-{entry.job_id}-{uuid.uuid4().hex[:8]}.json"
        tmp = self.dir / f".{name}.tmp"
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump(asdict(entry), fh)
            fh.flush()
            os.fsync(fh.fileno())
        path = self.dir / name
        tmp.replace(path)
        return path

    def pending(self) -> Iterator[tuple[Path, JournalEntry]]:
        if not self.dir.is_dir():
            return
        for path in sorted(self.dir.glob("*.json")):
            try:
                data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
                yield path, JournalEntry(**data)
            except (OSError, ValueError, TypeError):
                continue  # vanished (replayed by another process) or being written

    def replay(self, client: redis.Redis, target: str) -> list[JournalEntry]:
        """Record the journaled jobs meant for ``target`` in Redis, then drop their files.

        Entries for another server stay: replaying them here would file the jobs
        in the wrong ledger.  Returns the entries this call recorded: a job that a
        concurrent replay (or launch itself) recorded first is not reported again.
        """
        done = []
        for path, entry in self.pending():
            if entry.target not in ("", target):
                continue
            added = Ledger(client, entry.tag).record_submission(
                entry.job_id,
                now=datetime.fromisoformat(entry.submitted_at),
                by="journal",
                fields=entry.fields,
            )
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            if added:
                done.append(entry)
        return done
