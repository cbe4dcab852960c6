"""The ``durability`` setting: ledger moves and results writes that wait for a replica.

Redis replicates asynchronously: a write the primary acknowledged is lost if the primary
dies before a replica has it and the replica is promoted.  With ``durability =
"replica"``, each batch of ledger writes (a launch's submission, a tracker pass's moves)
and each results write is followed by ``WAIT 1 <durability_timeout_ms>`` on the same
connection (WAIT counts the replicas that have the writes *of that connection*), so
it returns only once a replica holds them or the timeout passed.  A submission no
replica confirmed stays in the journal, to be recorded again by a later command; a
tracker move no replica confirmed is redone by the next pass if a failover lost it;
a results write no replica confirmed is counted and logged (see docs/reliability.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.cluster import ClusterPipeline

from jobledger.config import Settings
from jobledger.errors import RedisUnavailable

__all__ = ["PRIMARY", "Durability", "NotConfirmed"]


class NotConfirmed(RedisUnavailable):
    """Writes the primary took but no replica confirmed within the timeout."""


@dataclass(frozen=True)
class Durability:
    """How many replicas must confirm a write (0: the primary's answer is enough)."""

    replicas: int = 0
    timeout_ms: int = 1000

    @classmethod
    def of(cls, settings: Settings) -> Durability:
        return cls(settings.replicas_to_wait, settings.wait_timeout_ms)

    def queue_wait(self, pipe: Any, key: str) -> bool:
        """Queue WAIT at the end of ``pipe`` (not a MULTI), on the connection that
        writes ``key``'s hash slot; False (nothing queued) when no replica is wanted."""
        if not self.replicas:
            return False
        if isinstance(pipe, ClusterPipeline):
            node = pipe.get_node_from_key(key)  # type: ignore[no-untyped-call]
            pipe.execute_command("WAIT", self.replicas, self.timeout_ms, target_nodes=node)  # type: ignore[no-untyped-call]
        else:
            pipe.execute_command("WAIT", self.replicas, self.timeout_ms)
        return True

    def check(self, acknowledged: Any, what: str) -> None:
        """Raise NotConfirmed unless WAIT's reply counts enough replicas."""
        if int(acknowledged) < self.replicas:
            raise NotConfirmed(
                f"{what}: no replica confirmed it within {self.timeout_ms} ms "
                f"(durability = replica; {int(acknowledged)} of {self.replicas})"
            )


PRIMARY = Durability()
"""The default: a write counts once the primary answered."""
