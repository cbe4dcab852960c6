"""A local write-ahead journal for submissions that Redis could not take.

``launch`` writes one small JSON file per submitted job before it records the
job in Redis and removes the file afterwards; if Redis is unreachable the file
stays, and any later command that reaches Redis replays it.  Replays are safe
to repeat or race: recording a submission is a no-op for a job already in the
ledger.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

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

    def write(self, entry: JournalEntry) -> Held:
        """Persist an entry durably (fsync), locked until its writer lets go of it.

        The lock (taken before the file gets its final name) keeps replays from
        recording the job while launch itself is about to, so the history says
        ``launch`` and not ``journal`` for a launch that went through.
        """
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = f"{entry.tag}-{entry.job_id}-{uuid.uuid4().hex[:8]}.json"
        tmp = self.dir / f".{name}.tmp"
        fh = tmp.open("w", encoding="utf-8")
        fcntl.flock(fh, fcntl.LOCK_EX)
        json.dump(asdict(entry), fh)
        fh.flush()
        os.fsync(fh.fileno())
        path = self.dir / name
        tmp.replace(path)
        return Held(path, fh)

    def pending(self) -> Iterator[Path]:
        if self.dir.is_dir():
            yield from sorted(self.dir.glob("*.json"))

    def replay(self, client: redis.Redis, target: str) -> list[JournalEntry]:
        """Record the journaled jobs meant for ``target`` in Redis, then drop their files.

        Entries for another server stay: replaying them here would file the jobs
        in the wrong ledger.  Entries locked by a launch in progress are skipped.
        Returns the entries this call recorded: a job that a concurrent replay
        (or launch itself) recorded first is not reported again.
        """
        done = []
        for path in self.pending():
            try:
                fh = path.open(encoding="utf-8")
            except OSError:
                continue  # replayed and removed by another process meanwhile
            with fh:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its launch is still recording it
                try:
                    entry = JournalEntry(**json.load(fh))
                except (ValueError, TypeError):
                    continue  # not ours to judge: left for a human
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


@dataclass
class Held:
    """A journal entry its writer still holds locked."""

    path: Path
    handle: IO[str]

    def done(self) -> None:
        """The job is in the ledger: drop the entry."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.handle.close()

    def keep(self) -> None:
        """Redis did not take the job: leave the entry for a replay."""
        self.handle.close()
