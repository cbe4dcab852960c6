"""A local write-ahead journal for submissions that Redis could not take.

``launch`` writes one JSON file per submission (every job ID it produced, one per
array task), fsync'ed, before it records the jobs in Redis and removes the file
afterwards; if Redis is unreachable the file stays, and any later command that
reaches Redis replays it.  Replays are safe to repeat or race: recording a
submission is a no-op for a job already in the ledger under that submission.  A
job ID the ledger holds for a *different* submission is never overwritten: the
entry is renamed ``*.conflict`` and left for a human.
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
from typing import IO, Any

import redis

from jobledger.durability import PRIMARY, Durability, NotConfirmed
from jobledger.errors import UsageError
from jobledger.ledger import Ledger

__all__ = ["Journal", "JournalEntry"]


_CHUNK = 1000  # jobs per pipelined round trip


@dataclass(frozen=True)
class JournalEntry:
    """One submission (all of its job IDs) waiting to be recorded in the ledger."""

    tag: str
    job_ids: tuple[str, ...]
    submitted_at: str
    fields: dict[str, str]
    target: str = ""  # the server it belongs to (a secret-free URL); "" matches any
    submission: str = ""  # the launch that made it (see Ledger.record_submission)

    @classmethod
    def from_json(cls, data: object) -> JournalEntry:
        """An entry as stored; entries of earlier versions held one ``job_id`` each."""
        if not isinstance(data, dict):
            raise TypeError("journal entry is not an object")
        data = dict(data)
        if "job_id" in data:
            data["job_ids"] = [data.pop("job_id")]
        ids = data.get("job_ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise TypeError("journal entry without a list of job IDs")
        data["job_ids"] = tuple(ids)
        return cls(**data)

    def record(
        self, client: redis.Redis, *, by: str, durability: Durability = PRIMARY
    ) -> tuple[int, list[str]]:
        """Record every job in the ledger: (how many were new, IDs held by another job).

        With ``durability`` asking for a replica, NotConfirmed when none confirmed the
        writes in time (they are on the primary; recording again is a harmless replay).
        """
        ledger = Ledger(client, self.tag)
        now = datetime.fromisoformat(self.submitted_at)
        added, conflicts, unconfirmed = 0, [], False
        for start in range(0, len(self.job_ids), _CHUNK):
            chunk = self.job_ids[start : start + _CHUNK]

            def submit(pipe: Any, chunk: tuple[str, ...] = chunk) -> None:
                for job_id in chunk:
                    ledger.record_submission(
                        job_id,
                        now=now,
                        by=by,
                        fields=self.fields,
                        submission=self.submission,
                        pipeline=pipe,
                    )

            replies, acknowledged = durability.run(client, ledger.layout.all_set(self.tag), submit)
            added += sum(1 for r in replies if int(r) == 1)
            conflicts += [j for j, r in zip(chunk, replies, strict=True) if int(r) == -1]
            if acknowledged is not None:
                unconfirmed = unconfirmed or int(acknowledged) < durability.replicas
        if unconfirmed and not conflicts:  # a conflict is kept aside anyway, and says more
            durability.check(0, f"the submission of {len(self.job_ids)} job(s)")
        return added, conflicts


class Journal:
    """The journal directory of one experiment home (``.jobledger/journal``)."""

    def __init__(self, home: Path) -> None:
        self.dir = home / ".jobledger" / "journal"
        self.conflicts: list[tuple[Path, list[str]]] = []  # found by replay()
        self.bad: list[tuple[Path, str]] = []  # entries replay() could not read or record

    def write(self, entry: JournalEntry) -> Held:
        """Persist an entry durably (fsync), locked until its writer lets go of it.

        The lock (taken before the file gets its final name) keeps replays from
        recording the job while launch itself is about to, so the history says
        ``launch`` and not ``journal`` for a launch that went through.
        """
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = f"{entry.tag}-{entry.job_ids[0]}-{uuid.uuid4().hex[:8]}.json"
        tmp = self.dir / f".{name}.tmp"
        fh = tmp.open("w", encoding="utf-8")
        fcntl.flock(fh, fcntl.LOCK_EX)
        json.dump(asdict(entry), fh)
        fh.flush()
        os.fsync(fh.fileno())
        path = self.dir / name
        tmp.replace(path)
        dir_fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a power loss
        finally:
            os.close(dir_fd)
        return Held(path, fh)

    def pending(self) -> Iterator[Path]:
        if self.dir.is_dir():
            yield from sorted(self.dir.glob("*.json"))

    def replay(
        self, client: redis.Redis, target: str, durability: Durability = PRIMARY
    ) -> list[JournalEntry]:
        """Record the journaled jobs meant for ``target`` in Redis, then drop their files.

        Entries for another server stay: replaying them here would file the jobs
        in the wrong ledger.  Entries locked by a launch in progress are skipped.
        Returns the entries this call recorded: a job that a concurrent replay
        (or launch itself) recorded first is not reported again.  An entry whose
        IDs the ledger holds for other jobs is renamed ``.conflict`` (see
        :attr:`conflicts`).
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
                    entry = JournalEntry.from_json(json.load(fh))
                except (ValueError, TypeError):
                    continue  # not ours to judge: left for a human
                if entry.target not in ("", target):
                    continue
                try:
                    added, conflicts = entry.record(client, by="journal", durability=durability)
                except NotConfirmed:
                    # On the primary, on no replica yet: kept for a later replay.  No
                    # replica now means none for the next entries either: one WAIT
                    # timeout per replay, not one per entry.
                    break
                except (UsageError, ValueError, TypeError) as exc:
                    # Not a Redis failure: this entry can never be recorded as it is.
                    # Set aside for a human, so it cannot stop every later command.
                    path.replace(path.with_suffix(".bad"))
                    self.bad.append((path.with_suffix(".bad"), str(exc)))
                    continue
                if conflicts:
                    path.replace(path.with_suffix(".conflict"))
                    self.conflicts.append((path.with_suffix(".conflict"), conflicts))
                else:
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

    def keep_as_conflict(self) -> None:
        """The ledger holds these IDs for other jobs: keep the entry, out of replays."""
        conflict = self.path.with_suffix(".conflict")
        self.path.replace(conflict)
        self.path = conflict
        self.handle.close()
